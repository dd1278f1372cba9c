#!/bin/sh
# trainers.sh: generated trainers, checked numerically end to end.
#
# For every tests/nets/*.net and models/*.net: compile with cnnc in f64 and
# f32, in both kernel tiers (fast and reference), build each warning-free
# against the runtime, and run gradcheck (backward against central finite
# differences on every parameter). Then, on data that cnnc-data makes: the
# fast tier against the reference tier on every network (f64, 3 steps,
# every output), the f32 trainer against the f64 one, a step in
# micro-batches against one over the whole batch, bitwise determinism (same
# seed; 1 thread against 2), and a small network trained to a held-out
# accuracy.
#
# Environment (from make check): CNNC, srcdir, RT_BUILDDIR; CC,
# TRAINER_CFLAGS and TRAINER_WARN_CFLAGS to build trainers. The generated C
# is meant to compile without warnings; with TRAINER_WARN_CFLAGS holding
# -Werror (configure --enable-werror, as CI has it) a warning fails the
# build of the trainer, otherwise it is shown in the log.
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
: "${CNNRT_LIBS:=-lpng16 -ljpeg -lz -lpthread -lm}"   # from make check: configure's
CFLAGS_T="-std=c11 -O2 ${TRAINER_WARN_CFLAGS--Wall -Wextra} -pthread ${TRAINER_CFLAGS:-}"
work=$(mktemp -d "${TMPDIR:-/tmp}/cnnc-trainers.XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=0 passed=0

pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# build NET PRECISION [MICRO [KERNELS [LANES]]] -> prints the trainer's
# path, or nothing on failure; MICRO: cnnc --micro-batch, KERNELS: cnnc
# --kernels, LANES: cnnc --lanes
build() {
    name=$(basename "$1" .net)_$2${3:+_m$3}${4:+_$4}${5:+_l$5}
    if [ -x "$work/$name" ]; then
        echo "$work/$name"
        return 0
    fi
    if ! "$CNNC" --precision="$2" ${3:+--micro-batch=$3} ${4:+--kernels=$4} ${5:+--lanes=$5} \
            "$1" -o "$work/$name.c" 2>"$work/$name.cnnc.log"; then
        cat "$work/$name.cnnc.log" >&2
        return 1
    fi
    # shellcheck disable=SC2086
    $CC $CFLAGS_T -I"$srcdir/runtime" "$work/$name.c" "$RT_BUILDDIR/libcnnrt.a" $CNNRT_LIBS \
        -o "$work/$name" 2>"$work/$name.cc.log" || { cat "$work/$name.cc.log" >&2; return 1; }
    cat "$work/$name.cc.log" >&2 # the warnings, where they are not errors
    echo "$work/$name"
}

nets="$srcdir/tests/nets/*.net $srcdir/models/lenet5.net $srcdir/models/mlp.net"
nets="$nets $srcdir/models/resnet8.net"
echo "== gradcheck, f64 (tight) and f32 (loose), fast and reference kernels"
for net in $nets; do
    for k in fast reference; do
        for p in f64 f32; do
            t=$(build "$net" "$p" "" "$k") || { fail "build $(basename "$net") $p $k"; continue; }
            # the models are larger: fewer elements a tensor
            case $net in */models/*) few="--samples 24" ;; *) few= ;; esac
            # shellcheck disable=SC2086
            if "$t" gradcheck --seed 3 $few >"$t.grad.log" 2>&1; then
                pass "gradcheck $(basename "$net") $p $k: $(tail -n 1 "$t.grad.log")"
            else
                cat "$t.grad.log"
                fail "gradcheck $(basename "$net") $p $k"
            fi
        done
    done
done

# worst A B: the largest relative difference between the numbers of two
# files of outputs, line by line and field by field.
worst() {
    paste -d ' ' "$1" "$2" | awk '{ h = NF / 2
        for (i = 1; i <= h; i++) { d = $i - $(i + h); if (d < 0) d = -d
            s = $i < 0 ? -$i : $i; r = d / (s + 1e-300); if (r > w) w = r } } END { printf "%.3g\n", w + 0 }'
}

# A fast trainer whose code budget is spent gives its layers with the least
# FLOP the compact (reference) kernels, in the same trainer: gradcheck it,
# and compare it with the all-fast one below (as "mixed").
mixed_net="$srcdir/tests/nets/torch_residual.net"
if "$CNNC" --precision=f64 --fast-budget=24 "$mixed_net" -o "$work/mixed_f64.c" \
        2>"$work/mixed.cnnc.log" && grep -q "layers get compact kernels" "$work/mixed.cnnc.log" &&
   $CC $CFLAGS_T -I"$srcdir/runtime" "$work/mixed_f64.c" "$RT_BUILDDIR/libcnnrt.a" $CNNRT_LIBS \
        -o "$work/mixed_f64" 2>"$work/mixed.cc.log" &&
   "$work/mixed_f64" gradcheck --seed 3 >"$work/mixed.grad.log" 2>&1; then
    pass "gradcheck torch_residual.net f64 with compact kernels past a 24 KiB budget: $(tail -n 1 "$work/mixed.grad.log")"
else
    cat "$work/mixed.cnnc.log" "$work/mixed.cc.log" "$work/mixed.grad.log" 2>/dev/null
    fail "torch_residual.net with compact kernels past a 24 KiB budget"
fi

echo "== the fast kernels against the reference kernels: f64, 3 steps, every output"
for net in $nets; do
    name=$(basename "$net" .net)
    tf=$(build "$net" f64 "" fast) && tr=$(build "$net" f64 "" reference) ||
        { fail "build $name f64 fast and reference"; continue; }
    others="$tr"
    [ "$net" = "$mixed_net" ] && [ -x "$work/mixed_f64" ] && others="$tr $work/mixed_f64"
    # the input's shape and the outputs, from the summary
    shape=$("$tf" summary | sed -n '1s/.*: input \([0-9x]*\),.*/\1/p')
    outs=$("$tf" summary | awk '$1 == "total" { print o; exit } { o = $3 }' |
           awk -F x '{ n = 1; for (i = 1; i <= NF; i++) n *= $i; print n }')
    classes=$((outs < 4 ? outs : 4))
    compiled=$("$tf" summary | sed -n 's/^memory plan at batch \([0-9]*\).*/\1/p')
    batch=$((compiled < 8 ? compiled : 8))
    d="$work/data_$name"
    "$RT_BUILDDIR/cnnc-data" blobs --out "$d" --shape "$shape" --classes "$classes" \
        --train 80 --test 20 --seed 9 >/dev/null 2>&1 || { fail "cnnc-data for $name"; continue; }
    ok=1
    for t in "$tf" $others; do
        "$t" train --data "$d/train-images.npy" --labels "$d/train-labels.npy" --steps 3 \
            --batch "$batch" --threads 2 --save "$t.cmp.st" >"$t.cmp.log" 2>&1 &&
        "$t" predict --data "$d/test-images.npy" --weights "$t.cmp.st" --probabilities \
            -o "$t.cmp.out" >>"$t.cmp.log" 2>&1 || { cat "$t.cmp.log"; ok=0; }
    done
    if [ $ok = 0 ]; then
        fail "fast and reference $name: training or predict failed"
        continue
    fi
    for t in $others; do
        what=reference
        [ "$t" = "$tr" ] || what="mixed (compact kernels past the budget)"
        w=$(worst "$tf.cmp.out" "$t.cmp.out")
        if [ -s "$tf.cmp.out" ] && awk -v w="$w" 'BEGIN { exit !(w <= 1e-9) }'; then
            pass "fast and $what $name agree after 3 steps: worst relative difference $w"
        else
            fail "fast and $what $name differ after 3 steps: worst relative difference $w"
        fi
    done
done

echo "== the seed and CIFAR models build warning-free in both precisions"
for net in "$srcdir"/models/seed.net "$srcdir"/models/cifar10.net; do
    for p in f32 f64; do
        if build "$net" "$p" >/dev/null; then pass "build $(basename "$net") $p"
        else fail "build $(basename "$net") $p"; fi
    done
done

echo "== training: f32 against f64, determinism, accuracy"
data="$work/blobs"
"$RT_BUILDDIR/cnnc-data" blobs --out "$data" --shape 12x12x2 --classes 3 --train 600 \
    --test 200 --seed 5 >/dev/null || fail "cnnc-data blobs"
cat > "$work/small.net" <<'NET'
Input(12x12x2)
C1: Conv(kernel=3x3, n=6, padding=same)
ReLU
MaxPool(2x2)
C2: Conv(kernel=3x3, n=8, stride=2)
ReLU
Flatten
D1: Dense(n=16)
ReLU
Dropout(p=0.2)
D2: Dense(n=3)
Softmax
Train(batch=32, optimizer=momentum, lr=0.05, epochs=3)
NET
t32=$(build "$work/small.net" f32) || fail "build small f32"
t64=$(build "$work/small.net" f64) || fail "build small f64"
train() {  # trainer checkpoint threads [extra flags]
    tr=$1 ck=$2 th=$3
    shift 3
    "$tr" train --data "$data/train-images.npy" --labels "$data/train-labels.npy" \
        --threads "$th" --save "$ck" "$@" >"$ck.log" 2>&1
}
if train "$t32" "$work/a32.st" 2 --steps 5 --no-shuffle &&
   train "$t64" "$work/a64.st" 2 --steps 5 --no-shuffle; then
    l32=$("$t64" eval --data "$data/test-images.npy" --labels "$data/test-labels.npy" \
        --weights "$work/a32.st" | sed -n 's/.*loss \([0-9.e+-]*\).*/\1/p')
    l64=$("$t64" eval --data "$data/test-images.npy" --labels "$data/test-labels.npy" \
        --weights "$work/a64.st" | sed -n 's/.*loss \([0-9.e+-]*\).*/\1/p')
    if awk -v a="$l32" -v b="$l64" 'BEGIN { d = a - b; if (d < 0) d = -d;
            exit !(a != "" && d <= 1e-4 * (b < 0 ? -b : b) + 1e-6) }'; then
        pass "f32 and f64 trainers agree after 5 steps: loss $l32 vs $l64"
    else
        fail "f32 and f64 trainers differ after 5 steps: loss '$l32' vs '$l64'"
    fi
else
    cat "$work/a32.st.log" "$work/a64.st.log"
    fail "training 5 steps"
fi

# A step in micro-batches of 5 (32 = 6 x 5 + 2; Dropout's masks drawn in the
# same order) is the step over the whole batch up to rounding: f64 trainers
# of small.net under the mean squared error (predict prints every output)
# after 5 steps; and gradcheck through backward's repeated forward.
sed 's/^Train(batch=32,/Train(batch=32, loss=mse,/' "$work/small.net" >"$work/smallmse.net"
tw=$(build "$work/smallmse.net" f64) || fail "build smallmse f64"
tm=$(build "$work/smallmse.net" f64 5) || fail "build smallmse f64 --micro-batch=5"
if train "$tw" "$work/w.st" 2 --steps 5 --no-shuffle && train "$tm" "$work/m.st" 2 --steps 5 --no-shuffle &&
   "$tw" predict --data "$data/test-images.npy" --weights "$work/w.st" -o "$work/w.out" &&
   "$tw" predict --data "$data/test-images.npy" --weights "$work/m.st" -o "$work/m.out"; then
    worst=$(worst "$work/w.out" "$work/m.out")
    if [ -s "$work/w.out" ] && awk -v w="$worst" 'BEGIN { exit !(w <= 1e-10) }'; then
        pass "micro-batches of 5 and the whole batch of 32 agree after 5 steps: worst relative difference $worst"
    else
        fail "micro-batches of 5 and the whole batch differ after 5 steps: worst relative difference $worst"
    fi
else
    cat "$work/w.st.log" "$work/m.st.log"
    fail "training 5 steps in micro-batches"
fi
for case in "$work/small.net 3 8" "$srcdir/tests/nets/conv_strides.net 1 3" \
            "$srcdir/tests/nets/pools.net 1 2" "$srcdir/tests/nets/streams.net 2 4"; do
    set -- $case
    t=$(build "$1" f64 "$2") || { fail "build $(basename "$1") f64 --micro-batch=$2"; continue; }
    if "$t" gradcheck --seed 3 --batch "$3" >"$t.grad.log" 2>&1; then
        pass "gradcheck $(basename "$1") f64, batch $3 in micro-batches of $2: $(tail -n 1 "$t.grad.log")"
    else
        cat "$t.grad.log"
        fail "gradcheck $(basename "$1") f64, batch $3 in micro-batches of $2"
    fi
done

if train "$t32" "$work/d1.st" 1 --epochs 1 && train "$t32" "$work/d2.st" 2 --epochs 1 &&
   train "$t32" "$work/d3.st" 2 --epochs 1; then
    if cmp -s "$work/d2.st" "$work/d3.st"; then pass "same seed, same threads: bitwise the same checkpoint"
    else fail "same seed, same threads: checkpoints differ"; fi
    if cmp -s "$work/d1.st" "$work/d2.st"; then pass "1 thread and 2 threads: bitwise the same checkpoint"
    else fail "1 thread and 2 threads: checkpoints differ"; fi
else
    fail "training for determinism"
fi
# same_on_threads WHAT NET TAG FAILURE [MICRO [LANES [THREADS]]]: NET's
# f32 trainer (with --micro-batch MICRO and --lanes LANES if given) trained
# an epoch on each of THREADS (default: 1 2 4) threads must save bitwise the
# same checkpoint, $work/TAG1.st on one thread.
same_on_threads() {
    threads=${7:-1 2 4}
    t=$(build "$2" f32 "${5:-}" "" "${6:-}") || { fail "$4"; return; }
    for th in $threads; do
        train "$t" "$work/$3$th.st" "$th" --epochs 1 || { fail "$4 on $th threads"; return; }
    done
    same=yes
    for th in $threads; do
        cmp -s "$work/${3}1.st" "$work/$3$th.st" || same=
    done
    list=$(echo "$threads" | awk '{ s = $1; for (i = 2; i <= NF; i++) s = s (i < NF ? ", " : " and ") $i; print s }')
    if [ -n "$same" ]; then
        pass "$1 on $list threads: bitwise the same checkpoint"
    else
        fail "$1 on $list threads: checkpoints differ"
    fi
}
# In micro-batches of 5, a step's 7 micro-batches run on two lanes (one
# thread each, or a team each with 4 threads, or one after the other on 1
# thread), Dropout included: still bitwise the same checkpoint.
same_on_threads "two lanes" "$work/small.net" l "training in micro-batches of 5 for determinism" 5
# cnnc --lanes=4: the same 7 micro-batches on four lanes (two each, the
# last one), on fewer threads than lanes, as many, and more; 3 threads
# share 4 lanes unevenly.
same_on_threads "four lanes" "$work/small.net" q "training on four lanes for determinism" 5 4 \
    "1 2 3 4 8"
tl=$(build "$work/small.net" f32 5) || tl=   # built above: its path, for the float32 check below
# BatchNorm's statistics are the whole batch's, gathered from the lanes in
# a fixed order (the Conv before each writes its lane's as it stores the
# map: tiles of pixels, or rows for the depthwise one): bitwise the same
# checkpoint (running statistics included) on 1, 2 and 4 threads.
cat > "$work/smallbn.net" <<'NET'
Input(12x12x2)
Conv(kernel=3x3, n=6, padding=same, bias=false)
BatchNorm
ReLU
Conv(kernel=3x3, n=6, groups=6, padding=same, bias=false)
BatchNorm
ReLU
MaxPool(2x2)
Conv(kernel=3x3, n=8, stride=2)
BatchNorm(momentum=0.3)
ReLU
Flatten
Dense(n=16)
BatchNorm
ReLU
Dense(n=3)
Softmax
Train(batch=32, optimizer=momentum, lr=0.05)
NET
same_on_threads "BatchNorm" "$work/smallbn.net" b "training with BatchNorm for determinism"
# ... and on four lanes, each a micro-batch of 8 that meets the others at
# every BatchNorm
same_on_threads "BatchNorm on four lanes" "$work/smallbn.net" p \
    "training with BatchNorm on four lanes for determinism" "" 4 "1 3 4 8"
# Grouped and depthwise Conv sum each weight gradient in one loop item, in
# a fixed order: bitwise the same checkpoint on 1, 2 and 4 threads.
cat > "$work/smallgroups.net" <<'NET'
Input(12x12x2)
Conv(kernel=3x3, n=8, padding=same)
ReLU
Conv(kernel=3x3, n=8, groups=8, padding=same)
ReLU
Conv(kernel=1x1, n=16, groups=2)
ReLU
Conv(kernel=3x3, n=32, groups=16, stride=2, padding=same)
GlobalAvgPool
Dense(n=3)
Softmax
Train(batch=32, optimizer=adamw, lr=0.01)
NET
same_on_threads "grouped and depthwise Conv" "$work/smallgroups.net" g "training with grouped Conv for determinism"
# From uint8 images a step converts each micro-batch in its lane
# (train_step_bytes); from float32 images of x / 255 it takes the reals the
# runtime read. The same step: bitwise the checkpoints above (uint8, 1 and
# 2 threads), with a last micro-batch of 2.
"$RT_BUILDDIR/cnnc-data" blobs --out "$work/blobsf" --shape 12x12x2 --classes 3 --train 600 \
    --test 200 --seed 5 --dtype float32 >/dev/null || fail "cnnc-data blobs --dtype float32"
if [ -n "${tl:-}" ] &&
   "$tl" train --data "$work/blobsf/train-images.npy" --labels "$work/blobsf/train-labels.npy" \
       --threads 2 --epochs 1 --save "$work/lf.st" >"$work/lf.st.log" 2>&1 &&
   [ -s "$work/l1.st" ]; then
    if cmp -s "$work/l1.st" "$work/lf.st" && cmp -s "$work/l2.st" "$work/lf.st"; then
        pass "uint8 images converted in the lanes and float32 images: bitwise the same checkpoint"
    else
        fail "uint8 images converted in the lanes and float32 images: checkpoints differ"
    fi
else
    cat "$work/lf.st.log"
    fail "training on float32 images"
fi

if train "$t32" "$work/acc.st" 2 --epochs 3 \
        --val-data "$data/test-images.npy" --val-labels "$data/test-labels.npy"; then
    out=$("$t32" eval --data "$data/test-images.npy" --labels "$data/test-labels.npy" \
        --weights "$work/acc.st")
    acc=$(echo "$out" | sed -n 's/.*accuracy \([0-9.]*\).*/\1/p')
    if awk -v a="$acc" 'BEGIN { exit !(a != "" && a + 0 >= 0.9) }'; then
        pass "small network learns: held-out $out"
    else
        cat "$work/acc.st.log"
        fail "small network did not reach 0.9 held-out accuracy: $out"
    fi
else
    cat "$work/acc.st.log"
    fail "training to accuracy"
fi

echo "== data as people have it: Fashion-MNIST as shipped (gzip), folders of images"
# The files of Debian's dataset-fashion-mnist, read as they are: gzip.
fm=/usr/share/datasets/fashion-mnist
if ! tn=$(build "$srcdir/models/lenet5.net" f32 "" fast); then
    fail "build lenet5 f32"
elif [ -r "$fm/train-images-idx3-ubyte.gz" ]; then
    if "$tn" train --data "$fm/train-images-idx3-ubyte.gz" --labels "$fm/train-labels-idx1-ubyte.gz" \
           --steps 60 --threads 2 --save "$work/fm.st" >"$work/fm.log" 2>&1 &&
       out=$("$tn" eval --data "$fm/t10k-images-idx3-ubyte.gz" \
           --labels "$fm/t10k-labels-idx1-ubyte.gz" --weights "$work/fm.st" 2>>"$work/fm.log"); then
        acc=$(echo "$out" | sed -n 's/.*accuracy \([0-9.]*\).*/\1/p')
        if awk -v a="$acc" 'BEGIN { exit !(a != "" && a + 0 >= 50) }'; then
            pass "lenet5 on Fashion-MNIST's .gz files, 60 steps: $out"
        else
            fail "lenet5 on Fashion-MNIST's .gz files, 60 steps: below 50%: $out"
        fi
    else
        cat "$work/fm.log"
        fail "lenet5 on Fashion-MNIST's .gz files"
    fi
else
    echo "SKIP: Fashion-MNIST's files are not in $fm (Debian: apt-get install dataset-fashion-mnist)"
fi
# A folder of PNG images is the .npy of the same arguments: a trainer
# (uint8 steps) trains on it, and predicts for each image what it predicts
# for that sample of the .npy (INDEX.png names its place there), bitwise.
fd="$work/folder"
if [ -n "${tn:-}" ] &&
   "$RT_BUILDDIR/cnnc-data" blobs --out "$fd" --shape 28x28x1 --classes 10 --train 200 \
       --test 50 --seed 3 >/dev/null &&
   "$RT_BUILDDIR/cnnc-data" blobs --out "$fd" --shape 28x28x1 --classes 10 --train 200 \
       --test 50 --seed 3 --format png >/dev/null &&
   "$tn" train --data "$fd/train" --epochs 1 --threads 2 --save "$work/fd.st" \
       >"$work/fd.log" 2>&1 &&
   "$tn" predict --data "$fd/test" --weights "$work/fd.st" --probabilities \
       -o "$work/fd-folder.out" 2>>"$work/fd.log" &&
   "$tn" predict --data "$fd/test-images.npy" --weights "$work/fd.st" --probabilities \
       -o "$work/fd-npy.out" 2>>"$work/fd.log"; then
    (cd "$fd/test" && LC_ALL=C ls -d */*.png) | sed 's|.*/0*\([0-9][0-9]*\)\.png$|\1|' |
        while read -r i; do sed -n "$((i + 1))p" "$work/fd-npy.out"; done >"$work/fd-npy-sorted.out"
    if [ -s "$work/fd-folder.out" ] && cmp -s "$work/fd-folder.out" "$work/fd-npy-sorted.out"; then
        pass "lenet5 on a folder of PNG images: trains, and predicts as on the .npy, bitwise"
    else
        fail "lenet5 on a folder of PNG images: predictions differ from the .npy's"
    fi
else
    cat "$work/fd.log" 2>/dev/null
    fail "lenet5 on a folder of PNG images"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
