#!/bin/sh
# tools/build-matrix.sh: cnnc builds without a warning with every compiler,
# optimisation level and sanitizer setting we support.
#
# For each combination of compiler (gcc, clang), level (-O0 .. -O3) and
# sanitizers (none, or -fsanitize=address,undefined given in the user's
# CFLAGS, the way a user would): a fresh build tree under $MATRIX_DIR,
# configure --enable-werror, make, and the test programs (make check
# TESTS=); so any warning in hand-written code fails that combination. Then
# make check itself for the combinations in $CHECK, which also build the
# generated trainers with the project's warnings and -Werror. Prints a line
# per combination and exits non-zero if any failed. Not run by make check:
# it takes a while (about 8 minutes without make check on 2 cores, plus
# 3 to 6 minutes per make check; more with sanitizers).
#
# Usage, from the source tree (after autoreconf -fi):
#   tools/build-matrix.sh [COMBO...]     e.g. gcc-O2-san clang-O1
# Environment:
#   CCS="gcc clang" LEVELS="O0 O1 O2 O3" SANS="no san"   the matrix
#   CHECK="gcc-O0 gcc-O2-san clang-O1 clang-O3 clang-O1-san"   or all, none
#   JOBS=2   make -j; MATRIX_DIR=_matrix   the build trees (kept for logs)
set -u
cd "$(dirname "$0")/.." || exit 2
[ -x configure ] || { echo "build-matrix.sh: no ./configure; run autoreconf -fi first" >&2; exit 2; }
CCS=${CCS:-gcc clang}
LEVELS=${LEVELS:-O0 O1 O2 O3}
SANS=${SANS:-no san}
CHECK=${CHECK:-gcc-O0 gcc-O2-san clang-O1 clang-O3 clang-O1-san}
JOBS=${JOBS:-2}
MATRIX_DIR=${MATRIX_DIR:-_matrix}
SAN_FLAGS="-fsanitize=address,undefined"
top=$(pwd)
failed=0

# The combinations asked for on the command line, or all of them.
wanted() {
    [ $# -eq 0 ] && return 0
    for w in "$@"; do [ "$w" = "$name" ] && return 0; done
    return 1
}
checked() {
    case " $CHECK " in *" all "*|*" $name "*) return 0 ;; esac
    return 1
}
now() { date +%s; }

# run_step LOG COMMAND...: the command's output to LOG; status, and the
# seconds it took in $took.
run_step() {
    log=$1
    shift
    t0=$(now)
    "$@" >"$log" 2>&1
    rc=$?
    took=$(( $(now) - t0 ))
    return $rc
}

# one CC LEVEL SAN: one combination, one line of report.
one() {
    cc=$1 level=$2 san=$3
    cflags="-$level -g" ldflags=
    [ "$san" = san ] && { cflags="$cflags $SAN_FLAGS"; ldflags=$SAN_FLAGS; }
    dir=$top/$MATRIX_DIR/$name
    rm -rf "$dir" && mkdir -p "$dir" || return 1
    line=$(printf '%-14s %-48s' "$name" "CC=$cc CFLAGS=\"$cflags\"")
    if ! (cd "$dir" && run_step configure.log "$top/configure" --enable-werror CC="$cc" \
            CFLAGS="$cflags" LDFLAGS="$ldflags"); then
        echo "$line configure FAILED (see $dir/configure.log)"
        return 1
    fi
    if ! (cd "$dir" && run_step build.log sh -c \
            "make -j$JOBS && make -j$JOBS check TESTS=" && echo "$took" >build.time); then
        echo "$line build FAILED (see $dir/build.log):"
        grep -m 5 -E 'error|warning' "$dir/build.log" | sed 's/^/    /'
        return 1
    fi
    warnings=$(grep -c 'warning:' "$dir/build.log")
    if [ "$warnings" -ne 0 ]; then
        echo "$line build has $warnings warning(s) (see $dir/build.log)"
        return 1
    fi
    line="$line built clean ($(cat "$dir/build.time") s)"
    if checked; then
        if (cd "$dir" && run_step check.log make -j"$JOBS" check && echo "$took" >check.time); then
            line="$line, make check passed ($(cat "$dir/check.time") s)"
        else
            echo "$line, make check FAILED (see $dir/check.log and $dir/tests/*.log):"
            grep -E '^(FAIL|ERROR)' "$dir/check.log" | sed 's/^/    /'
            return 1
        fi
    fi
    echo "$line"
}

start=$(now)
for cc in $CCS; do
    for level in $LEVELS; do
        for san in $SANS; do
            name=$cc-$level
            [ "$san" = san ] && name=$name-san
            wanted "$@" || continue
            one "$cc" "$level" "$san" || failed=$((failed + 1))
        done
    done
done
echo "$failed failed; $(( $(now) - start )) s in all"
[ "$failed" -eq 0 ]
