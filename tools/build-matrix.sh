#!/bin/sh
# tools/build-matrix.sh: cnnc, and the C it generates, build without a
# warning with every compiler, optimisation level and sanitizer setting we
# support.
#
# For each combination of compiler (gcc, clang), level (-O0 .. -O3) and
# sanitizers (none, or -fsanitize=address,undefined given in the user's
# CFLAGS and LDFLAGS, the way a user would), in a fresh build tree under
# $MATRIX_DIR:
#   build     configure --enable-werror, make, and the test programs (make
#             check TESTS=): any warning in hand-written code fails it;
#   trainers  cnnc turns each network of $NETS into C in each variant of
#             $VARIANTS, and the combination's compiler and flags compile it
#             (-c) with -Wall -Wextra: any warning fails it, as it would a
#             user's -Werror.
# Then, once every combination is built, make check in the combinations of
# $CHECK (which also links and runs the tests' trainers, built with the
# project's warnings and -Werror). Prints a line per step and exits non-zero
# if any failed. Not run by make check: it takes long. On 2 cores shared
# with other work (load 15 to 45) the 16 builds took 25 minutes, the
# trainers of 8 networks in 2 variants 40 minutes (from 23 s at gcc -O0 to
# 13 minutes at gcc -O3 with sanitizers), and a make check is 10 minutes or
# more, 30 or more with sanitizers.
#
# Usage, from the source tree (after autoreconf -fi):
#   tools/build-matrix.sh [COMBO...]     e.g. gcc-O2-san clang-O1
# Environment:
#   CCS="gcc clang" LEVELS="O0 O1 O2 O3" SANS="no san"   the matrix
#   NETS="models/*.net tests/nets/*.net"   networks, as paths or bare names
#   VARIANTS="f32:fast f64:fast f32:reference"   --precision:--kernels
#   CHECK="gcc-O2 clang-O2 gcc-O1-san"   or all, or none
#   STEPS="build trainers check"   fewer to reuse the trees of an earlier run
#   JOBS=2   make -j and compilers at once; MATRIX_DIR=_matrix   the trees
set -u
cd "$(dirname "$0")/.." || exit 2
[ -x configure ] || { echo "build-matrix.sh: no ./configure; run autoreconf -fi first" >&2; exit 2; }
CCS=${CCS:-gcc clang}
LEVELS=${LEVELS:-O0 O1 O2 O3}
SANS=${SANS:-no san}
NETS=${NETS:-$(echo models/*.net tests/nets/*.net)}
VARIANTS=${VARIANTS:-f32:fast f64:fast f32:reference}
CHECK=${CHECK:-gcc-O2 clang-O2 gcc-O1-san}
STEPS=${STEPS:-build trainers check}
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

# run_step LOG COMMAND...: the command's output to LOG; its status, and the
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

# The combination $name: its compiler $cc, flags $cflags and $ldflags, and
# its build tree $dir.
set_combo() {
    cc=$1 level=$2 san=$3
    name=$cc-$level
    cflags="-$level -g" ldflags=
    if [ "$san" = san ]; then
        name=$name-san
        cflags="$cflags $SAN_FLAGS"
        ldflags=$SAN_FLAGS
    fi
    dir=$top/$MATRIX_DIR/$name
    label=$(printf '%-13s %-52s' "$name" "CC=$cc CFLAGS=\"$cflags\"")
}

# build: configure --enable-werror and make, in a fresh tree.
build() {
    rm -rf "$dir" && mkdir -p "$dir" || return 1
    if ! (cd "$dir" && run_step configure.log "$top/configure" --enable-werror CC="$cc" \
            CFLAGS="$cflags" LDFLAGS="$ldflags"); then
        echo "$label build: configure FAILED (see $dir/configure.log)"
        return 1
    fi
    if ! (cd "$dir" && run_step build.log sh -c \
            "make -j$JOBS && make -j$JOBS check TESTS=" && echo "$took" >build.time); then
        echo "$label build FAILED (see $dir/build.log):"
        grep -m 5 -E 'error|warning' "$dir/build.log" | sed 's/^/    /'
        return 1
    fi
    warnings=$(grep -c 'warning:' "$dir/build.log")
    if [ "$warnings" -ne 0 ]; then
        echo "$label build has $warnings warning(s) (see $dir/build.log)"
        return 1
    fi
    echo "$label build clean ($(cat "$dir/build.time") s)"
}

# The path of network $1, given as a path or a bare name.
net_path() {
    for p in "$1" "models/$1.net" "tests/nets/$1.net"; do
        [ -f "$p" ] && { echo "$top/$p"; return 0; }
    done
    echo "build-matrix.sh: no network '$1' (a path, or a name in models/ or tests/nets/)" >&2
    return 1
}

# trainers: each network in each variant through this tree's cnnc, then
# compiled, $JOBS at a time, with the combination's compiler and flags.
trainers() {
    gen=$dir/gen
    rm -rf "$gen" && mkdir -p "$gen" || return 1
    t0=$(now)
    count=0
    for net in $NETS; do
        path=$(net_path "$net") || return 1
        for v in $VARIANTS; do
            c=$gen/$(basename "$path" .net)-${v%%:*}-${v#*:}.c
            if ! "$dir/cnnc" --precision="${v%%:*}" --kernels="${v#*:}" "$path" -o "$c" \
                    2>"$c.cnnc.log"; then
                echo "$label trainers: cnnc FAILED on $net ($v; see $c.cnnc.log)"
                return 1
            fi
            count=$((count + 1))
        done
    done
    # shellcheck disable=SC2016 # expanded by the inner sh
    find "$gen" -name '*.c' -print0 |
        CC=$cc CFLAGS=$cflags RT=$top/runtime xargs -0 -P "$JOBS" -n 1 sh -c \
        '$CC $CFLAGS -Wall -Wextra -I"$RT" -c "$1" -o "$1.o" 2>"$1.cc.log" ||
         echo "$1" >>"${1%/*}/failed"' sh
    took=$(( $(now) - t0 ))
    warnings=$(cat "$gen"/*.cc.log | grep -c 'warning:')
    if [ -f "$gen/failed" ] || [ "$warnings" -ne 0 ]; then
        echo "$label trainers: $count compiled, $warnings warning(s), failed:" \
            "$( [ -f "$gen/failed" ] && wc -l <"$gen/failed" || echo 0) (see $gen/*.cc.log)"
        grep -h -m 3 -E 'warning:|error:' "$gen"/*.cc.log | head -n 5 | sed 's/^/    /'
        return 1
    fi
    echo "$label trainers: $count compiled clean ($took s)"
}

# check: make check in the tree built.
check() {
    if (cd "$dir" && run_step check.log make -j"$JOBS" check && echo "$took" >check.time); then
        echo "$label make check passed ($(cat "$dir/check.time") s)"
    else
        echo "$label make check FAILED (see $dir/check.log and $dir/tests/*.log):"
        grep -E '^(FAIL|ERROR)' "$dir/check.log" | sed 's/^/    /'
        return 1
    fi
}

# for_each STEP ONLY-CHECKED ARGS...: STEP in every combination wanted
# (and, if ONLY-CHECKED is yes, in $CHECK) whose build succeeded.
for_each() {
    step=$1 only_checked=$2
    shift 2
    for cc in $CCS; do
        for level in $LEVELS; do
            for san in $SANS; do
                set_combo "$cc" "$level" "$san"
                wanted "$@" || continue
                [ "$only_checked" = yes ] && ! checked && continue
                [ "$step" != build ] && [ ! -f "$dir/build.time" ] && continue
                $step || failed=$((failed + 1))
            done
        done
    done
}

asked() {
    case " $STEPS " in *" $1 "*) return 0 ;; esac
    return 1
}

start=$(now)
asked build && for_each build no "$@"
asked trainers && for_each trainers no "$@"
asked check && for_each check yes "$@"
echo "$failed step(s) failed; $(( $(now) - start )) s in all"
[ "$failed" -eq 0 ]
