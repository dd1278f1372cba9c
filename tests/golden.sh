#!/bin/sh
# golden.sh: cnnc's diagnostics, byte for byte, on the models in tests/golden.
#
# Each case NAME is a set of files in tests/golden:
#   NAME.net     the model: a bad one (one class of problem per file, mostly)
#                or one that draws a warning
#   NAME.err     the exact standard error of `cnnc --check NAME.net`, run in
#                tests/golden so that messages name the file as just NAME.net
#   NAME.status  the exit status that run must end with (0, 1 or 2), alone on
#                its line
#   NAME.opts    (optional) more options, put before --check: "-Werror",
#                "--max-errors=3"
#   NAME.pending (optional) the case shows a message judged wrong or unclear,
#                which is not blessed: the file says what is wrong. Only the
#                exit status is checked (no NAME.err is kept) and the run
#                prints what the compiler says now, marked PENDING. Once the
#                message is fixed: golden.sh --update NAME, read NAME.err,
#                delete NAME.pending.
# Standard output must stay empty: --check prints nothing there.
#
# Usage:
#   tests/golden.sh                    run every case (make check does this)
#   tests/golden.sh NAME...            run only these cases
#   tests/golden.sh --update [NAME...] rewrite NAME.err and NAME.status from
#                                      what the compiler says now (pending
#                                      cases get their .err only when named).
#                                      Read every
#                                      changed file (git diff tests/golden)
#                                      before committing: a golden file is only
#                                      as good as the eye that blessed it.
#
# Environment: CNNC, the compiler to test (default ./cnnc); srcdir, the
# source tree's top (default: the directory above this script). make check
# sets both. Exit status: 0 all passed, 1 some failed, 77 (skip) when there
# is no compiler to test.

update=no
if [ "${1-}" = "--update" ]; then
    update=yes
    shift
fi

: "${srcdir:=$(dirname "$0")/..}"
: "${CNNC:=./cnnc}"
case $CNNC in
/*) ;;
*) CNNC=$(pwd)/$CNNC ;;
esac
if [ ! -x "$CNNC" ]; then
    echo "SKIP: no compiler at $CNNC (set CNNC)"
    exit 77
fi
golden=$srcdir/tests/golden
if [ ! -d "$golden" ]; then
    echo "golden.sh: no directory $golden (set srcdir)" >&2
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cnnc-golden.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# The cases to run: the arguments, or every NAME.net (names hold no spaces).
named=yes
# shellcheck disable=SC2046
if [ $# -eq 0 ]; then
    named=no
    set -- $(cd "$golden" && for f in *.net; do
                 [ -f "$f" ] && printf '%s\n' "${f%.net}"
             done)
fi

pass=0
fail=0
pending=0
for name in "$@"; do
    name=${name%.net}
    name=${name##*/}
    if [ ! -f "$golden/$name.net" ]; then
        echo "FAIL: $name: no $name.net in $golden"
        fail=$((fail + 1))
        continue
    fi
    opts=
    if [ -f "$golden/$name.opts" ]; then
        opts=$(cat "$golden/$name.opts")
    fi
    # Word splitting of $opts is wanted: one option per word.
    # shellcheck disable=SC2086
    (cd "$golden" && exec "$CNNC" $opts --check "$name.net") \
        <"/dev/null" >"$tmp/out" 2>"$tmp/err"
    status=$?

    if [ "$update" = yes ]; then
        echo "$status" >"$golden/$name.status"
        if [ -f "$golden/$name.pending" ] && [ $named = no ]; then
            # Not blessed wholesale: name it to write its .err.
            echo "SKIPPED: $name is pending (golden.sh --update $name to write $name.err)"
        elif [ -f "$golden/$name.pending" ]; then
            cp "$tmp/err" "$golden/$name.err"
            echo "UPDATED: $name (status $status): if $name.err reads right now, delete $name.pending"
        else
            cp "$tmp/err" "$golden/$name.err"
            echo "UPDATED: $name (status $status)"
        fi
        continue
    fi

    ok=yes
    is_pending=no
    if [ -f "$golden/$name.pending" ]; then
        is_pending=yes
        expected_status=$(cat "$golden/$name.status" 2>/dev/null)
        if [ "$status" != "$expected_status" ]; then
            echo "FAIL: $name: exit status $status, expected $expected_status"
            ok=no
        fi
    elif [ ! -f "$golden/$name.err" ] || [ ! -f "$golden/$name.status" ]; then
        echo "FAIL: $name: $name.err or $name.status is missing (golden.sh --update $name, then read it)"
        ok=no
    else
        expected_status=$(cat "$golden/$name.status")
        if [ "$status" != "$expected_status" ]; then
            echo "FAIL: $name: exit status $status, expected $expected_status"
            ok=no
        fi
        if ! cmp -s "$golden/$name.err" "$tmp/err"; then
            echo "FAIL: $name: standard error differs from $name.err:"
            diff -u "$golden/$name.err" "$tmp/err" | sed 's/^/    /'
            ok=no
        fi
    fi
    if [ -s "$tmp/out" ]; then
        echo "FAIL: $name: --check wrote to standard output:"
        sed 's/^/    /' "$tmp/out"
        ok=no
    fi
    if [ $ok = yes ] && [ $is_pending = yes ]; then
        echo "PENDING: $name: $(head -n 1 "$golden/$name.pending")"
        sed 's/^/    /' "$tmp/err"
        pending=$((pending + 1))
    elif [ $ok = yes ]; then
        echo "PASS: $name"
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
    fi
done

[ "$update" = yes ] && exit 0
echo "golden: $pass passed, $fail failed, $pending pending (messages not yet right)"
[ $fail -eq 0 ]
