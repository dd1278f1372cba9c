#!/bin/sh
# deploy.sh: --emit=inference and --emit=onnx end to end.
#
# For every tests/nets/*.net and models/*.net: train the trainer a few steps
# on data cnnc-data makes, emit the inference C from its checkpoint, build
# it warning-free as strict C99 (-std=c99 -pedantic -Wall -Wextra -Werror)
# with gcc and clang, fast (vector: -mavx2 -mfma where the machine has AVX2)
# and portable paths, and check that its
# outputs equal the trainer's `predict --probabilities` within 1e-5 and its
# classes are the same. Then an aarch64 cross build run under qemu must give
# the same classes (skipped without the cross compiler or qemu).
#
# The int8 file (--quantize=int8), where int8 covers the network: strict
# C99 under both compilers, its AVX2 path (-mavx2, run where the machine
# has AVX2), its -march=native one and its portable one giving the same
# bytes; with Input(mean=, std=), outputs within 0.05 of the trainer's.
# Both files' fast paths are also built with -march=native and run, so that
# the widest vector code of the machine running the tests is checked too.
#
# The ONNX export of the same checkpoint must pass onnx.checker (where a
# python3 with the onnx module is found; Debian's python3-onnx) and give the
# trainer's outputs within 1e-4 in ONNX Runtime (onnx_run.js under node,
# with onnxruntime-node under ORT_NODE_DIR; skipped when either is absent).
#
# Environment (from make check): CNNC, srcdir, RT_BUILDDIR; CC; ORT_NODE_DIR.
set -u
# The suites that build and run many generated trainers take the longest by
# far; CI's sanitizer and distcheck runs skip them (CNNC_SKIP_HEAVY=1), its
# plain and clang runs do not.
if [ -n "${CNNC_SKIP_HEAVY:-}" ]; then
    echo "SKIP: CNNC_SKIP_HEAVY is set"
    exit 77
fi
: "${CNNC:?}" "${srcdir:?}" "${RT_BUILDDIR:?}"
CC=${CC:-cc}
STRICT="-std=c99 -pedantic -Wall -Wextra -Werror -O2"
: "${CNNRT_LIBS:=-lpng16 -ljpeg -lz -lpthread -lm}"   # from make check: configure's
work=$(mktemp -d "${TMPDIR:-/tmp}/cnnc-infer.XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=0 passed=0

pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# same A B [TOLERANCE]: the class columns equal, every output within
# TOLERANCE (1e-5)
same() {
    paste -d '\n' "$1" "$2" | awk -v tol="${3:-1e-5}" '
        NR % 2 == 1 { k = split($0, a, " ") }
        NR % 2 == 0 { split($0, b, " ")
                      if (a[1] != b[1]) classes++
                      for (i = 2; i <= k; i++) { d = a[i] - b[i]; if (d < 0) d = -d
                                                 if (d > worst) worst = d } }
        END { printf "largest difference %g, %d classes differ\n", worst, classes
              exit !(worst <= tol + 0 && classes == 0 && NR > 0) }'
}

# near A B TOLERANCE: every output within TOLERANCE (the classes may differ)
near() {
    paste -d '\n' "$1" "$2" | awk -v tol="$3" '
        NR % 2 == 1 { k = split($0, a, " ") }
        NR % 2 == 0 { split($0, b, " ")
                      for (i = 2; i <= k; i++) { d = a[i] - b[i]; if (d < 0) d = -d
                                                 if (d > worst) worst = d } }
        END { printf "largest difference %g\n", worst
              exit !(worst <= tol + 0 && NR > 0) }'
}

# train NET -> the directory with the trainer, its data and checkpoint
train() {
    name=$(basename "$1" .net)
    d="$work/$name"
    mkdir -p "$d"
    # the reference tier (the oracle; its C compiles fastest)
    "$CNNC" --kernels=reference "$1" -o "$d/t.c" 2>/dev/null &&
    $CC -O1 -I"$srcdir/runtime" "$d/t.c" "$RT_BUILDDIR/libcnnrt.a" $CNNRT_LIBS -pthread \
        -o "$d/t" || return 1
    shape=$("$d/t" summary | sed -n '1s/.*: input \([0-9x]*\),.*/\1/p')
    outs=$("$d/t" summary | awk '$1 == "total" { print o; exit } { o = $3 }' |
           awk -F x '{ n = 1; for (i = 1; i <= NF; i++) n *= $i; print n }')
    classes=$((outs < 4 ? outs : 4))
    compiled=$("$d/t" summary | sed -n 's/^memory plan at batch \([0-9]*\).*/\1/p')
    batch=$((compiled < 8 ? compiled : 8))
    "$RT_BUILDDIR/cnnc-data" blobs --out "$d/data" --shape "$shape" --classes "$classes" \
        --train 80 --test 20 --seed 9 --dtype float32 >/dev/null 2>&1 &&
    "$d/t" train --data "$d/data/train-images.npy" --labels "$d/data/train-labels.npy" \
        --steps 3 --batch "$batch" --threads 2 --save "$d/w.st" >"$d/train.log" 2>&1 &&
    "$d/t" predict --data "$d/data/test-images.npy" --weights "$d/w.st" --probabilities \
        -o "$d/expected" >>"$d/train.log" 2>&1 || { cat "$d/train.log"; return 1; }
    echo "$d"
}

compilers="$CC"
command -v clang >/dev/null 2>&1 && [ "$CC" != clang ] && compilers="$compilers clang"
# aarch64: the cross compiler with its C library, and qemu to run it
cross=
printf '#include <stdio.h>\nint main(void) { puts("ok"); return 0; }\n' >"$work/hello.c"
if command -v qemu-aarch64 >/dev/null 2>&1 &&
   aarch64-linux-gnu-gcc "$work/hello.c" -o "$work/hello" 2>/dev/null &&
   [ "$(qemu-aarch64 -L /usr/aarch64-linux-gnu "$work/hello" 2>/dev/null)" = ok ]; then
    cross=aarch64-linux-gnu-gcc
fi

# int8's paths: AVX2 where the compiler takes -mavx2 (x86), run where the
# machine has it; the portable one everywhere
int8_paths=portable
avx2_runs=
if $CC -mavx2 -dM -E - </dev/null 2>/dev/null | grep __AVX2__ >/dev/null; then
    int8_paths="avx2 portable"
    grep -w avx2 /proc/cpuinfo >/dev/null 2>&1 && avx2_runs=yes
fi
# The float file's vector path needs AVX (or NEON): on x86 its "fast" build
# takes -mavx2 -mfma where the machine runs AVX2, else it is the portable
# loops again.
fast_flags=
[ -n "$avx2_runs" ] && fast_flags="-mavx2 -mfma"
# and both files' widest vector code this machine runs (-march=native: on
# an AVX-512 machine the 16-float tiles, vpdpbusd, the 512-bit
# requantisation), built and run with $CC, where it takes the flag
native=
$CC -march=native -E - </dev/null >/dev/null 2>&1 && native=-march=native
[ -n "$native" ] && int8_paths="native $int8_paths"

# onnx.checker: a python3 with the onnx module (Debian's is /usr/bin/python3)
checker=
for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import onnx' 2>/dev/null; then
        checker=$py
        break
    fi
done
# ONNX Runtime: node and onnxruntime-node
ort=
if command -v node >/dev/null 2>&1 && [ -d "${ORT_NODE_DIR:-/nonexistent}/node_modules/onnxruntime-node" ]; then
    ort=yes
fi

for net in "$srcdir"/tests/nets/*.net "$srcdir"/models/*.net; do
    name=$(basename "$net" .net)
    d=$(train "$net") || { fail "$name: training the trainer"; continue; }
    if ! "$CNNC" --emit=inference --weights "$d/w.st" --prefix net "$net" -o "$d/net.c" \
            2>"$d/cnnc.log"; then
        cat "$d/cnnc.log"
        fail "$name: cnnc --emit=inference"
        continue
    fi
    for cc in $compilers; do
        for path in native fast portable; do
            flags=$fast_flags
            [ $path = portable ] && flags=-Dnet_PORTABLE
            if [ $path = native ]; then
                [ "$cc" = "$CC" ] && [ -n "$native" ] || continue
                flags=$native
            fi
            # one compiler runs every path; the others build them and run the fast one
            run=yes
            [ "$cc" != "$CC" ] && [ $path = portable ] && run=
            # the file alone, as strict C99
            # shellcheck disable=SC2086
            if ! $cc $STRICT $flags -c "$d/net.c" -o "$d/net.o" 2>"$d/cc.log"; then
                cat "$d/cc.log"
                fail "$name: $cc $path: the inference C does not build warning-free"
                continue
            fi
            [ -n "$run" ] || { pass "$name: $cc $path: builds warning-free"; continue; }
            # shellcheck disable=SC2086
            $cc -O1 $flags -DINFER_C="\"$d/net.c\"" "$srcdir/tests/infer_run.c" -lm \
                -o "$d/run" 2>"$d/cc.log" &&
            "$d/run" "$d/data/test-images.npy" >"$d/got" ||
                { cat "$d/cc.log"; fail "$name: $cc $path: running"; continue; }
            if why=$(same "$d/expected" "$d/got"); then
                pass "$name: $cc $path: $why"
            else
                fail "$name: $cc $path: $why"
            fi
        done
    done
    if [ -n "$cross" ]; then
        if $cross -O1 -DINFER_C="\"$d/net.c\"" "$srcdir/tests/infer_run.c" -lm \
                -o "$d/run-aarch64" 2>"$d/cc.log" &&
           qemu-aarch64 -L /usr/aarch64-linux-gnu "$d/run-aarch64" \
               "$d/data/test-images.npy" >"$d/got-aarch64"; then
            if [ "$(cut -d ' ' -f 1 "$d/expected")" = "$(cut -d ' ' -f 1 "$d/got-aarch64")" ]; then
                pass "$name: aarch64 under qemu: the same classes"
            else
                fail "$name: aarch64 under qemu: other classes"
            fi
        else
            cat "$d/cc.log"
            fail "$name: aarch64 build or run"
        fi
    fi
    # int8: builds warning-free where it is supported (both paths), and its
    # AVX2 and portable paths under each compiler give the same bytes; with
    # Input(mean=, std=), its outputs are the trainer's within 0.05 (without
    # the normalisation they are 0.3 off). Refused with a message elsewhere.
    if "$CNNC" --emit=inference --weights "$d/w.st" --quantize=int8 \
            --calibrate "$d/data/train-images.npy" --prefix net "$net" -o "$d/net8.c" \
            2>"$d/q8.log"; then
        first=
        for cc in $compilers; do
            for path in $int8_paths; do
                flags=-Dnet_PORTABLE
                [ $path = avx2 ] && flags=-mavx2
                if [ $path = native ]; then
                    [ "$cc" = "$CC" ] || continue
                    flags=$native
                fi
                # shellcheck disable=SC2086
                if ! $cc $STRICT $flags -c "$d/net8.c" -o "$d/net8.o" 2>"$d/cc.log"; then
                    cat "$d/cc.log"
                    fail "$name: int8: $cc $path: does not build warning-free"
                    continue
                fi
                [ $path = avx2 ] && [ -z "$avx2_runs" ] &&
                    { pass "$name: int8: $cc $path: builds warning-free"; continue; }
                # shellcheck disable=SC2086
                $cc -O1 $flags -DINFER_C="\"$d/net8.c\"" "$srcdir/tests/infer_run.c" -lm \
                    -o "$d/run8" 2>"$d/cc.log" &&
                "$d/run8" "$d/data/test-images.npy" >"$d/got8-$cc-$path" ||
                    { cat "$d/cc.log"; fail "$name: int8: $cc $path: running"; continue; }
                if [ -z "$first" ]; then
                    first="$cc-$path"
                    pass "$name: int8: $cc $path: builds warning-free and runs"
                elif cmp -s "$d/got8-$first" "$d/got8-$cc-$path"; then
                    pass "$name: int8: $cc $path: builds warning-free, the outputs of $first"
                else
                    fail "$name: int8: $cc $path: outputs other than $first's"
                fi
            done
        done
        if [ -n "$first" ] && grep '^Input(.*mean=' "$net" >/dev/null; then
            if why=$(near "$d/expected" "$d/got8-$first" 0.05); then
                pass "$name: int8 with Input(mean=, std=): $why"
            else
                fail "$name: int8 with Input(mean=, std=): $why"
            fi
        fi
    elif grep 'does not support' "$d/q8.log" >/dev/null && [ ! -e "$d/net8.c" ]; then
        pass "$name: int8: refused: $(sed 's/.*: error: //' "$d/q8.log")"
    else
        cat "$d/q8.log"
        fail "$name: int8"
    fi
    if ! "$CNNC" --emit=onnx --weights "$d/w.st" "$net" -o "$d/net.onnx" 2>"$d/cnnc.log"; then
        if grep 'does not support' "$d/cnnc.log" >/dev/null && [ ! -e "$d/net.onnx" ]; then
            pass "$name: onnx: refused: $(sed 's/.*: error: //' "$d/cnnc.log")"
        else
            cat "$d/cnnc.log"
            fail "$name: cnnc --emit=onnx"
        fi
        continue
    fi
    if [ -n "$checker" ]; then
        if "$checker" -c 'import onnx, sys
onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)' "$d/net.onnx" 2>"$d/check.log"; then
            pass "$name: onnx.checker"
        else
            cat "$d/check.log"
            fail "$name: onnx.checker"
        fi
    fi
    if [ -n "$ort" ]; then
        if node "$srcdir/tests/onnx_run.js" "$d/net.onnx" "$d/data/test-images.npy" \
                >"$d/got-ort" 2>"$d/ort.log"; then
            if why=$(same "$d/expected" "$d/got-ort" 1e-4); then
                pass "$name: ONNX Runtime: $why"
            else
                fail "$name: ONNX Runtime: $why"
            fi
        else
            cat "$d/ort.log"
            fail "$name: ONNX Runtime failed to run the model"
        fi
    fi
done

# int8 accuracy: models trained a little longer on cnnc-data's blobs; the
# int8 file's held-out accuracy within 1 point of the float file's, and
# its weights (.rodata) at most 30% of the float file's.
accuracy() { # accuracy RUN-OUTPUT LABELS.npy -> percent correct
    start=$(od -An -tu1 -j 8 -N 2 "$2" | awk '{ print 10 + $1 + 256 * $2 }')
    od -An -v -tu1 -j "$start" "$2" | tr -s ' ' '\n' | sed '/^$/d' >"$2.txt"
    cut -d ' ' -f 1 "$1" | paste -d ' ' - "$2.txt" |
        awk '{ n++; if ($1 == $2) ok++ } END { printf "%.2f\n", 100 * ok / n }'
}
rodata() { size -A "$1" | awk '$1 == ".rodata" { print $2 }'; }
for model in lenet5 mlp; do
    d="$work/acc_$model"
    mkdir -p "$d"
    "$CNNC" --kernels=reference "$srcdir/models/$model.net" -o "$d/t.c" 2>/dev/null &&
    $CC -O1 -I"$srcdir/runtime" "$d/t.c" "$RT_BUILDDIR/libcnnrt.a" $CNNRT_LIBS -pthread -o "$d/t" ||
        { fail "int8 accuracy $model: trainer"; continue; }
    shape=$("$d/t" summary | sed -n '1s/.*: input \([0-9x]*\),.*/\1/p')
    "$RT_BUILDDIR/cnnc-data" blobs --out "$d/data" --shape "$shape" --classes 10 --noise 0.4 \
        --train 1000 --test 400 --seed 4 --dtype float32 >/dev/null 2>&1 &&
    "$d/t" train --data "$d/data/train-images.npy" --labels "$d/data/train-labels.npy" \
        --epochs 3 --threads 2 --save "$d/w.st" >"$d/train.log" 2>&1 &&
    "$CNNC" --emit=inference --weights "$d/w.st" --prefix net "$srcdir/models/$model.net" \
        -o "$d/f.c" 2>/dev/null &&
    "$CNNC" --emit=inference --weights "$d/w.st" --prefix net --quantize=int8 \
        --calibrate "$d/data/train-images.npy" "$srcdir/models/$model.net" -o "$d/q.c" \
        2>/dev/null &&
    $CC -O1 -DINFER_C="\"$d/f.c\"" "$srcdir/tests/infer_run.c" -lm -o "$d/runf" &&
    $CC -O1 -DINFER_C="\"$d/q.c\"" "$srcdir/tests/infer_run.c" -lm -o "$d/runq" &&
    "$d/runf" "$d/data/test-images.npy" >"$d/f.out" && "$d/runq" "$d/data/test-images.npy" >"$d/q.out" &&
    $CC -O2 -c "$d/f.c" -o "$d/f.o" && $CC -O2 -c "$d/q.c" -o "$d/q.o" ||
        { cat "$d/train.log"; fail "int8 accuracy $model: building or running"; continue; }
    af=$(accuracy "$d/f.out" "$d/data/test-labels.npy")
    aq=$(accuracy "$d/q.out" "$d/data/test-labels.npy")
    rf=$(rodata "$d/f.o")
    rq=$(rodata "$d/q.o")
    if awk -v f="$af" -v q="$aq" 'BEGIN { d = f - q; exit !(d <= 1 && d >= -1) }'; then
        pass "int8 accuracy $model: float $af%, int8 $aq%"
    else
        fail "int8 accuracy $model: float $af%, int8 $aq% (more than 1 point apart)"
    fi
    if [ -n "$rf" ] && [ -n "$rq" ] && [ $((rq * 10)) -le $((rf * 3)) ]; then
        pass "int8 weights $model: .rodata $rq bytes against $rf in float"
    else
        fail "int8 weights $model: .rodata $rq bytes against $rf in float"
    fi
done

echo "deploy.sh: $passed passed, $failed failed"
[ -n "$cross" ] || echo "deploy.sh: aarch64 skipped (no aarch64 cross compiler with its C library, or no qemu-aarch64)"
[ -n "$checker" ] || echo "deploy.sh: onnx.checker skipped (no python3 with the onnx module)"
[ -n "$ort" ] || echo "deploy.sh: ONNX Runtime skipped (no node, or no onnxruntime-node under ORT_NODE_DIR)"
[ $failed -eq 0 ]
