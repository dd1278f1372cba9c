#!/bin/sh
# cli.sh: cnnc's command line: options, exit statuses, files and streams.
#
# Usage: tests/cli.sh (make check sets CNNC, the compiler to test, and srcdir,
# the source tree's top). Exit status: 0 all passed, 1 some failed, 77 (skip)
# when there is no compiler to test.

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
models=$srcdir/models

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cnnc-cli.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

pass=0
fail=0
ok() { echo "PASS: $1"; pass=$((pass + 1)); }
not_ok() {
    echo "FAIL: $1"
    shift
    for line in "$@"; do echo "    $line"; done
    if [ -s "$tmp/out" ]; then echo "    stdout:"; sed 's/^/      /' "$tmp/out"; fi
    if [ -s "$tmp/err" ]; then echo "    stderr:"; sed 's/^/      /' "$tmp/err"; fi
    fail=$((fail + 1))
}

# run ARGS...: runs cnnc with standard input from /dev/null (unless the
# caller redirects it), leaves $tmp/out, $tmp/err and $status.
run() {
    "$CNNC" "$@" >"$tmp/out" 2>"$tmp/err"
    status=$?
}

# expect NAME STATUS: the last run ended with STATUS.
expect() {
    if [ "$status" -eq "$2" ]; then
        ok "$1"
    else
        not_ok "$1" "exit status $status, expected $2"
    fi
}

# expect_out NAME STRING...: stdout holds every STRING (fixed strings).
expect_out() {
    name=$1
    shift
    for s in "$@"; do
        if ! grep -F -e "$s" "$tmp/out" >/dev/null; then
            not_ok "$name" "stdout lacks '$s'"
            return
        fi
    done
    ok "$name"
}

# expect_err NAME STRING: stderr holds STRING.
expect_err() {
    if grep -F -e "$2" "$tmp/err" >/dev/null; then
        ok "$1"
    else
        not_ok "$1" "stderr lacks '$2'"
    fi
}

# expect_empty NAME FILE: FILE (out or err) is empty.
expect_empty() {
    if [ -s "$tmp/$2" ]; then
        not_ok "$1" "std$2 should be empty"
    else
        ok "$1"
    fi
}

# ---- help and version ------------------------------------------------------
run --help </dev/null
expect "--help exits 0" 0
expect_out "--help shows usage" "Usage: cnnc" "--check" "--summary" "--precision" "-o FILE"
expect_empty "--help writes nothing to stderr" err

run -h </dev/null
expect "-h exits 0" 0

run --version </dev/null
expect "--version exits 0" 0
expect_out "--version names cnnc" "cnnc "

# ---- usage errors: status 2 ------------------------------------------------
run </dev/null
expect "no model file: status 2" 2
expect_err "no model file: says so" "no model file given"
expect_empty "no model file: nothing on stdout" out

run --check "$tmp/does-not-exist.net" </dev/null
expect "missing file: status 2" 2
expect_err "missing file: names it and why" "does-not-exist.net: No such file or directory"

run --check "$tmp" </dev/null
expect "directory: status 2" 2
expect_err "directory: says so" "is a directory"

run --frobnicate --check "$models/seed.net" </dev/null
expect "unknown option: status 2" 2
expect_err "unknown option: names it" "frobnicate"
expect_err "unknown option: points to --help" "cnnc --help"

run --precision=f16 --check "$models/seed.net" </dev/null
expect "--precision=f16: status 2" 2
expect_err "--precision=f16: names the choices" "f32 or f64"

run --max-errors=0 --check "$models/seed.net" </dev/null
expect "--max-errors=0: status 2" 2

run --max-errors=many --check "$models/seed.net" </dev/null
expect "--max-errors=many: status 2" 2

run --micro-batch=0 "$models/seed.net" -o "$tmp/seed.c" </dev/null
expect "--micro-batch=0: status 2" 2
expect_err "--micro-batch=0: says what it needs" \
    "cnnc: error: --micro-batch needs a positive number of samples, not '0'"
run --micro-batch=8x --summary "$models/seed.net" </dev/null
expect "--micro-batch=8x: status 2" 2
expect_err "--micro-batch=8x: says what it needs" \
    "cnnc: error: --micro-batch needs a positive number of samples, not '8x'"
run --micro-batch=32 --summary "$models/seed.net" </dev/null
expect "--micro-batch=32 --summary: status 0" 0
expect_out "--micro-batch=32 --summary: the plan says so" "at batch 128 in micro-batches of 32"

# --lanes: how many lanes a step is dealt to (and MPI processes it can run on)
run --lanes=65 "$models/seed.net" -o "$tmp/seed.c" </dev/null
expect "--lanes=65: status 2" 2
expect_err "--lanes=65: says the limit" \
    "cnnc: error: --lanes needs a number of lanes from 1 to 64, not '65'"
run --lanes=0 --summary "$models/seed.net" </dev/null
expect "--lanes=0: status 2" 2
run --lanes=4 --summary "$models/lenet5.net" </dev/null
expect_out "--lanes=4: the batch halved until each lane has a micro-batch" \
    "at batch 64 in micro-batches of 16 on 4 lanes"
run --lanes=4 --micro-batch=64 "$models/seed.net" -o "$tmp/lanes.c" </dev/null
expect "--lanes=4 --micro-batch=64: status 2" 2
expect_err "--lanes=4 --micro-batch=64: says which micro-batch would do" \
    "--micro-batch=64 makes 2 of the batch of 128; give --micro-batch=42 or less"
if [ -e "$tmp/lanes.c" ]; then not_ok "--lanes=4 --micro-batch=64: nothing written"
else ok "--lanes=4 --micro-batch=64: nothing written"; fi
run --lanes=6 --summary "$srcdir/tests/nets/batchnorm.net" </dev/null
expect "--lanes=6, BatchNorm, batch 8: status 2" 2
expect_err "--lanes=6, BatchNorm, batch 8: says how many lanes would do" \
    "a batch of 8 in shares of 2 is only 4 micro-batches; ask for 4 lanes"
run --lanes=9 --summary "$srcdir/tests/nets/batchnorm.net" </dev/null
expect_err "--lanes=9, batch 8: more lanes than samples" \
    "a step of this network is a batch of 8 samples, at most 8 micro-batches"

run --check "$models/seed.net" "$models/mlp.net" </dev/null
expect "two model files: status 2" 2

run --check --summary "$models/seed.net" </dev/null
expect "--check with --summary: status 2" 2

run "$models/seed.net" </dev/null
expect "no -o and no --check: status 2" 2

# ---- the shipped models check cleanly ----------------------------------------
for m in "$models"/*.net; do
    run --check "$m" </dev/null
    expect "--check $(basename "$m"): status 0" 0
    expect_empty "--check $(basename "$m"): no diagnostics" err
    expect_empty "--check $(basename "$m"): nothing on stdout" out
    run -Werror --check "$m" </dev/null
    expect "-Werror --check $(basename "$m"): no warnings either" 0
done

for p in f32 f64; do
    run --precision=$p --check "$models/lenet5.net" </dev/null
    expect "--precision=$p --check: status 0" 0
done

# ---- --summary on the seed network -----------------------------------------
run --summary "$models/seed.net" </dev/null
expect "--summary seed.net: status 0" 0
expect_out "--summary seed.net: every shape" \
    47x47x40 23x23x40 22x22x105 10x10x105 9x9x158 8x8x158 7x7x105 3x3x105 945
expect_out "--summary seed.net: labels" C1 C2 C3 C4 C5 D1 D2 D3
expect_out "--summary seed.net: total parameters" "1,598,990"
expect_empty "--summary seed.net: no diagnostics" err

run --summary --precision=f64 "$models/seed.net" </dev/null
expect "--summary --precision=f64: status 0" 0
expect_out "--summary --precision=f64: same parameters" "1,598,990"

# ---- standard input ----------------------------------------------------------
run --check - <"$models/seed.net"
expect "--check - (stdin): status 0" 0

run --summary - <"$models/seed.net"
expect "--summary - (stdin): status 0" 0
expect_out "--summary - (stdin): shapes" 47x47x40 945 "1,598,990"

printf 'Input(8)\nDense(n=0)\n' >"$tmp/bad.net"
run --check - <"$tmp/bad.net"
expect "bad model on stdin: status 1" 1
expect_err "bad model on stdin: messages name <stdin>" "<stdin>:2:"

# ---- a bad model: status 1, diagnostics only on stderr -----------------------
cat >"$tmp/bad.net" <<'EOF'
Input(28x28x1)
Conv(kernel=5x5, n=6)
Dense(n=10)
Softmax
EOF
run --check "$tmp/bad.net" </dev/null
expect "bad model --check: status 1" 1
expect_err "bad model --check: file:line:col: error:" "bad.net:3:1: error:"
expect_empty "bad model --check: nothing on stdout" out

run --summary "$tmp/bad.net" </dev/null
expect "bad model --summary: status 1" 1
expect_empty "bad model --summary: nothing on stdout" out

# ---- warnings: -Werror turns them into errors ----------------------------------
cat >"$tmp/warn.net" <<'EOF'
Input(10x10x1)
MaxPool(size=3x3, stride=2)
Flatten
Dense(n=2)
Softmax
EOF
run --check "$tmp/warn.net" </dev/null
expect "warning only: status 0" 0
expect_err "warning only: says warning" "warning:"
run -Werror --check "$tmp/warn.net" </dev/null
expect "-Werror turns the warning into an error: status 1" 1
expect_err "-Werror: says error" "error:"

# ---- --max-errors -----------------------------------------------------------------
{
    echo "Input(8)"
    i=0
    while [ $i -lt 30 ]; do
        echo "Dense(n=0)"
        i=$((i + 1))
    done
} >"$tmp/many.net"
run --check "$tmp/many.net" </dev/null
expect "30 errors: status 1" 1
n=$(grep -c ': error: ' "$tmp/err")
if [ "$n" -eq 20 ]; then ok "30 errors: stops after 20"; else not_ok "30 errors: stops after 20" "$n errors shown"; fi
run --max-errors=3 --check "$tmp/many.net" </dev/null
expect "--max-errors=3: status 1" 1
n=$(grep -c ': error: ' "$tmp/err")
if [ "$n" -eq 3 ]; then ok "--max-errors=3: three errors shown"; else not_ok "--max-errors=3: three errors shown" "$n errors shown"; fi

# ---- -o: where the trainer goes ------------------------------------------------
# (the writer is the runtime's, runtime/output.c; test_runtime.c tests it
# in depth, this that cnnc uses it)
run "$models/mlp.net" -o "$tmp/mlp.c" </dev/null
expect "-o a new file: status 0" 0
if [ -s "$tmp/mlp.c" ] && [ -z "$(find "$tmp" -maxdepth 1 -name '.mlp.c.tmp-*')" ]; then
    ok "-o a new file: written, no temporary left"
else
    not_ok "-o a new file: written, no temporary left"
fi
run "$models/mlp.net" -o - </dev/null
expect "-o -: status 0" 0
if cmp -s "$tmp/out" "$tmp/mlp.c"; then ok "-o -: the same C on stdout"; else not_ok "-o -: the same C on stdout"; fi
# Private device nodes where they can be made (root), not the machine's.
null= full=
if mknod "$tmp/null" c 1 3 2>/dev/null && mknod "$tmp/full" c 1 7 2>/dev/null; then
    null=$tmp/null full=$tmp/full
elif [ "$(id -u)" -ne 0 ]; then
    null=/dev/null full=/dev/full
fi
if [ -n "$null" ]; then
    run "$models/mlp.net" -o "$null" </dev/null
    expect "-o a character device: status 0" 0
    if [ -c "$null" ]; then ok "-o a character device: still a device"; else not_ok "-o a character device: still a device"; fi
    run "$models/mlp.net" -o "$full" </dev/null
    expect "-o a full device: status 2" 2
    expect_err "-o a full device: says so" "cnnc: error: $full: cannot write: No space left on device"
    if [ -c "$full" ]; then ok "-o a full device: still a device"; else not_ok "-o a full device: still a device"; fi
fi
echo OLD >"$tmp/real.c"
ln -s real.c "$tmp/link.c"
run "$models/mlp.net" -o "$tmp/link.c" </dev/null
expect "-o a symbolic link: status 0" 0
if [ -h "$tmp/link.c" ] && cmp -s "$tmp/real.c" "$tmp/mlp.c"; then
    ok "-o a symbolic link: its target is replaced, not the link"
else
    not_ok "-o a symbolic link: its target is replaced, not the link"
fi
cp "$models/mlp.net" "$tmp/m.net"
run "$tmp/m.net" -o "$tmp/m.net" </dev/null
expect "-o the model file: status 2" 2
expect_err "-o the model file: says so" \
    "cnnc: error: -o $tmp/m.net is the model file $tmp/m.net itself; writing the trainer there would destroy the model"
if cmp -s "$tmp/m.net" "$models/mlp.net"; then ok "-o the model file: the model stays"; else not_ok "-o the model file: the model stays"; fi
sh -c 'exit 0' &
gone=$!
wait "$gone"
touch "$tmp/.mlp.c.tmp-$gone-Ab12Cd"
run "$models/mlp.net" -o "$tmp/mlp.c" </dev/null
if [ "$status" -eq 0 ] && [ ! -e "$tmp/.mlp.c.tmp-$gone-Ab12Cd" ]; then
    ok "-o: the temporary of a killed cnnc is removed"
else
    not_ok "-o: the temporary of a killed cnnc is removed"
fi

# ---- the budget of generated code -------------------------------------------
# 60,000 layers: no C compiler would take the trainer; refused before -o is
# touched, with exit status 1 (the model's fault).
awk 'BEGIN { print "Input(4x4x2)"; for (i = 0; i < 30000; i++) { print "Conv(1x1, 2)"; print "ReLU" }
             print "Flatten"; print "Dense(3)"; print "Softmax" }' >"$tmp/huge.net"
echo OLD >"$tmp/huge.c"
run "$tmp/huge.net" -o "$tmp/huge.c" </dev/null
expect "a network of 60,003 layers: status 1" 1
expect_err "a network of 60,003 layers: says why" \
    "cnnc: error: $tmp/huge.net: the trainer of these 60003 layers would be over 32 MiB of C, more than a C compiler takes in reasonable time"
if [ "$(cat "$tmp/huge.c")" = OLD ]; then ok "a network too large: -o untouched"; else not_ok "a network too large: -o untouched"; fi
run --check "$tmp/huge.net" </dev/null
expect "a network of 60,003 layers: --check passes (it is the trainer that is too large)" 0
run --fast-budget=0 "$models/mlp.net" -o "$tmp/mlp.c" </dev/null
expect "--fast-budget=0: status 2" 2
expect_err "--fast-budget=0: says what it takes" \
    "cnnc: error: --fast-budget needs a size in KiB from 1 to 1073741824, not '0'"

# ---- --emit=dot: the graph, and Graphviz renders it -----------------------------
run --emit=dot "$models/resnet8.net" -o "$tmp/resnet8.dot" </dev/null
expect "--emit=dot: status 0" 0
# the shortcut of the second stage: s2 feeds both its branch and p2's projection
if grep -q '^digraph "resnet8"' "$tmp/resnet8.dot" &&
   [ "$(grep -c -- '->' "$tmp/resnet8.dot")" -ge 20 ] && grep -q 'Add' "$tmp/resnet8.dot"; then
    ok "--emit=dot: a digraph with the Adds and every edge"
else
    not_ok "--emit=dot: a digraph with the Adds and every edge"
fi
if command -v dot >/dev/null 2>&1; then
    if dot -Tsvg "$tmp/resnet8.dot" -o "$tmp/resnet8.svg" 2>"$tmp/dot.err" &&
       grep -q '<svg' "$tmp/resnet8.svg"; then
        ok "--emit=dot: Graphviz renders it"
    else
        not_ok "--emit=dot: Graphviz renders it"
    fi
fi

# ---- --emit=inference and --emit=onnx: the checkpoint they read ---------------
# safetensors FILE HEADER DATA_BYTES: a checkpoint with that JSON header
# (padded with spaces to 8 bytes) and that many zero bytes of data.
safetensors() {
    h=$2
    while [ $((${#h} % 8)) -ne 0 ]; do h="$h "; done
    n=${#h}
    printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $((n & 255)) $((n >> 8 & 255)) $((n >> 16 & 255)) $((n >> 24 & 255)))\0\0\0\0" >"$1"
    printf '%s' "$h" >>"$1"
    head -c "$3" /dev/zero >>"$1"
}
printf 'Input(2)\nD: Dense(n=2)\nSoftmax\n' >"$tmp/tiny.net"
w='"D.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}'
b='"D.bias":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}'
safetensors "$tmp/good.st" "{$w,$b}" 24
run --emit=inference --weights "$tmp/good.st" "$tmp/tiny.net" -o "$tmp/tiny.c"
expect "--emit=inference: status 0" 0
if grep -F 'int tiny_predict(const float *input, float *output, void *work)' "$tmp/tiny.c" >/dev/null; then
    ok "--emit=inference: NAME_predict named after the model"
else
    not_ok "--emit=inference: NAME_predict named after the model"
fi
run --emit=inference --weights "$tmp/good.st" --prefix digits "$tmp/tiny.net" -o "$tmp/tiny.c"
if grep -F '#define digits_WORK_BYTES' "$tmp/tiny.c" >/dev/null; then
    ok "--prefix: names the interface"
else
    not_ok "--prefix: names the interface"
fi
run --emit=onnx --weights "$tmp/good.st" "$tmp/tiny.net" -o "$tmp/tiny.onnx"
expect "--emit=onnx: status 0" 0
run --emit=inference "$tmp/tiny.net" -o "$tmp/tiny.c"
expect "--emit=inference without --weights: status 2" 2
expect_err "--emit=inference without --weights: says so" \
    "cnnc: error: --emit=inference needs the trained weights: --weights CKPT"
run --weights "$tmp/good.st" "$tmp/tiny.net" -o "$tmp/tiny.c"
expect "--weights with a trainer: status 2" 2
expect_err "--weights with a trainer: says so" \
    "cnnc: error: --weights goes with --emit=inference or --emit=onnx"
run --emit=inference --weights "$tmp/good.st" --prefix 9lives "$tmp/tiny.net" -o "$tmp/tiny.c"
expect "--prefix 9lives: status 2" 2
expect_err "--prefix 9lives: says what it takes" \
    "cnnc: error: --prefix needs a C name ([A-Za-z_][A-Za-z0-9_]*, at most 64 characters), not '9lives'"
run --emit=onnx --weights "$tmp/good.st" --prefix p "$tmp/tiny.net" -o "$tmp/tiny.onnx"
expect "--prefix with onnx: status 2" 2
expect_err "--prefix with onnx: says so" "cnnc: error: --prefix goes with --emit=inference"
# bad checkpoint: ckpt_case NAME FILE MESSAGE: status 1, the message, no output
ckpt_case() {
    rm -f "$tmp/bad.c"
    run --emit=inference --weights "$2" "$tmp/tiny.net" -o "$tmp/bad.c"
    expect "$1: status 1" 1
    expect_err "$1: says why" "$3"
    if [ -e "$tmp/bad.c" ]; then not_ok "$1: no output file"; else ok "$1: no output file"; fi
}
ckpt_case "missing checkpoint" "$tmp/none.st" \
    "cnnc: error: $tmp/none.st: cannot open: No such file or directory"
safetensors "$tmp/other.st" "{$w,$b,\"E.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[24,28]}}" 28
ckpt_case "a checkpoint of another network" "$tmp/other.st" \
    "cnnc: error: $tmp/other.st: unexpected tensor E.weight: the model tiny has no such parameter"
safetensors "$tmp/shape.st" "{\"D.weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]},\"D.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]}}" 32
ckpt_case "a mis-shaped tensor" "$tmp/shape.st" \
    "cnnc: error: $tmp/shape.st: tensor D.weight has shape [3, 2]; the model tiny expects [2, 2]"
safetensors "$tmp/missing.st" "{$w}" 16
ckpt_case "a missing tensor" "$tmp/missing.st" \
    "cnnc: error: $tmp/missing.st: missing tensor D.bias (shape [2]) of the model tiny"
head -c 30 "$tmp/good.st" >"$tmp/cut.st"
ckpt_case "a truncated checkpoint" "$tmp/cut.st" \
    "cnnc: error: $tmp/cut.st: the header length 128 (bytes 0-7) runs past the end of the file (30 bytes); not a safetensors file, or truncated"
run --emit=onnx --weights "$tmp/good.st" "$tmp/tiny.net" -o "$tmp/no/such/dir/tiny.onnx"
expect "--emit=onnx to an unwritable place: status 2" 2

# ---- --quantize=int8 --calibrate X --------------------------------------------
# npy FILE SHAPE BYTES: a float32 .npy of that shape (a Python tuple) holding
# BYTES zero bytes
npy() {
    h="{'descr': '<f4', 'fortran_order': False, 'shape': $2, }"
    while [ $(((10 + ${#h} + 1) % 64)) -ne 0 ]; do h="$h "; done
    n=$((${#h} + 1))
    printf "\223NUMPY\001\000$(printf '\\%03o\\%03o' $((n & 255)) $((n >> 8)))" >"$1"
    printf '%s\n' "$h" >>"$1"
    head -c "$3" /dev/zero >>"$1"
}
npy "$tmp/calib.npy" "(4, 2)" 32
run --emit=inference --weights "$tmp/good.st" --quantize=int8 --calibrate "$tmp/calib.npy" \
    "$tmp/tiny.net" -o "$tmp/tiny8.c"
expect "--quantize=int8: status 0" 0
expect_err "--quantize=int8: reports the calibration" \
    "cnnc: int8 calibration on 4 samples of $tmp/calib.npy: scale = max |x| / 127 per tensor"
expect_err "--quantize=int8: reports each layer's scales" "cnnc: int8 D: Dense, input scale"
run --emit=inference --weights "$tmp/good.st" --quantize=int8 "$tmp/tiny.net" -o "$tmp/tiny8.c"
expect "--quantize without --calibrate: status 2" 2
expect_err "--quantize without --calibrate: says so" \
    "cnnc: error: --quantize=int8 needs samples to calibrate on: --calibrate X"
run --emit=inference --weights "$tmp/good.st" --quantize=int4 --calibrate "$tmp/calib.npy" \
    "$tmp/tiny.net" -o "$tmp/tiny8.c"
expect "--quantize=int4: status 2" 2
expect_err "--quantize=int4: says what it takes" "cnnc: error: --quantize takes int8, not 'int4'"
run --emit=onnx --weights "$tmp/good.st" --quantize=int8 --calibrate "$tmp/calib.npy" \
    "$tmp/tiny.net" -o "$tmp/tiny.onnx"
expect "--quantize with onnx: status 2" 2
expect_err "--quantize with onnx: says so" "cnnc: error: --quantize goes with --emit=inference"
# calib_case NAME FILE MESSAGE: status 1, the message, no output
calib_case() {
    rm -f "$tmp/bad8.c"
    run --emit=inference --weights "$tmp/good.st" --quantize=int8 --calibrate "$2" \
        "$tmp/tiny.net" -o "$tmp/bad8.c"
    expect "$1: status 1" 1
    expect_err "$1: says why" "$3"
    if [ -e "$tmp/bad8.c" ]; then not_ok "$1: no output file"; else ok "$1: no output file"; fi
}
npy "$tmp/wide.npy" "(4, 3)" 48
calib_case "calibration data of the wrong shape" "$tmp/wide.npy" \
    "cnnc: error: --calibrate: $tmp/wide.npy: inputs of shape 4 x 3 do not fit the model tiny: expected N x 2"
npy "$tmp/empty.npy" "(0, 2)" 0
calib_case "empty calibration data" "$tmp/empty.npy" \
    "cnnc: error: --calibrate: $tmp/empty.npy: holds no samples (shape 0 x 2)"
printf 'Input(2)\nD: Dense(n=2)\nSigmoid\nTrain(loss=mse)\n' >"$tmp/sig.net"
rm -f "$tmp/sig8.c"
run --emit=inference --weights "$tmp/good.st" --quantize=int8 --calibrate "$tmp/calib.npy" \
    "$tmp/sig.net" -o "$tmp/sig8.c"
expect "int8 of a Sigmoid: status 1" 1
expect_err "int8 of a Sigmoid: says it is not supported" \
    "cnnc: error: $tmp/sig.net:3: --quantize=int8 does not support Sigmoid yet"
if [ -e "$tmp/sig8.c" ]; then not_ok "int8 of a Sigmoid: no output file"; else ok "int8 of a Sigmoid: no output file"; fi
calib_case "missing calibration data" "$tmp/none.npy" \
    "cnnc: error: --calibrate: $tmp/none.npy: cannot open: No such file or directory"

echo "cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
