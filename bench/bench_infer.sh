#!/bin/sh
# bench_infer.sh: batch-1 latency of the inference C (float and int8)
# against ONNX Runtime on the ONNX export, one thread, for every model
# (make bench-infer). Each model's trainer (reference kernels) takes one
# step on cnnc-data blobs to have a checkpoint; the latencies do not depend
# on the values. Each run is the median of BENCH_RUNS calls after a
# warm-up; with BENCH_ROUNDS=N the three run in turn N times and each
# figure is the median of its N runs (on a shared or virtual machine one
# run can be 20% off). Timings are not tests: make check never runs this.
#
# Environment: CNNC, CNNC_DATA, RT_BUILDDIR, srcdir, CC, BENCH_CFLAGS,
# BENCH_RUNS, BENCH_ROUNDS, ORT_NODE_DIR; BENCH_NETS (the .net files).
set -u
work=${BENCH_WORK:-bench/infer}
mkdir -p "$work"
work=$(cd "$work" && pwd)   # #include "..." of a relative path is from infer_run.c
runs=${BENCH_RUNS:-2000}
rounds=${BENCH_ROUNDS:-1}

# median FILE: the middle line of a file of numbers ("-" when empty)
median() {
    sort -n "$1" | awk '{v[NR] = $1} END {print NR ? v[int((NR + 1) / 2)] : "-"}'
}
# the runtime's libraries, as deploy.sh links them (make check passes configure's)
: "${CNNRT_LIBS:=-lpng16 -ljpeg -lz -lpthread -lm}"
echo "load: $(uptime | sed 's/.*load average: //')"
printf '%-16s %12s %12s %12s\n' model "float (us)" "int8 (us)" "ORT (us)"
for net in $BENCH_NETS; do
    name=$(basename "$net" .net)
    d="$work/$name"
    mkdir -p "$d"
    if ! { "$CNNC" --kernels=reference "$net" -o "$d/t.c" 2>/dev/null &&
           $CC -O1 -I"$srcdir/runtime" "$d/t.c" "$RT_BUILDDIR/libcnnrt.a" $CNNRT_LIBS -pthread -o "$d/t"; }; then
        printf '%-16s %12s\n' "$name" "(no trainer)"
        continue
    fi
    shape=$("$d/t" summary | sed -n '1s/.*: input \([0-9x]*\),.*/\1/p')
    "$CNNC_DATA" blobs --out "$d/data" --shape "$shape" --classes 2 --train 64 --test 8 \
        --seed 1 --dtype float32 >/dev/null 2>&1
    "$d/t" train --data "$d/data/train-images.npy" --labels "$d/data/train-labels.npy" \
        --steps 1 --batch 1 --threads 1 --save "$d/w.st" >/dev/null 2>&1
    x="$d/data/test-images.npy"
    rm -f "$d/f" "$d/q" "$d/m.onnx" "$d"/*.times
    "$CNNC" --emit=inference --weights "$d/w.st" --prefix net "$net" -o "$d/f.c" 2>/dev/null &&
        $CC $BENCH_CFLAGS -DINFER_C="\"$d/f.c\"" "$srcdir/tests/infer_run.c" -lm -o "$d/f"
    "$CNNC" --emit=inference --weights "$d/w.st" --prefix net --quantize=int8 \
        --calibrate "$d/data/train-images.npy" "$net" -o "$d/q.c" 2>/dev/null &&
        $CC $BENCH_CFLAGS -DINFER_C="\"$d/q.c\"" "$srcdir/tests/infer_run.c" -lm -o "$d/q"
    "$CNNC" --emit=onnx --weights "$d/w.st" "$net" -o "$d/m.onnx" 2>/dev/null
    touch "$d/f.times" "$d/q.times" "$d/o.times"
    i=0
    while [ "$i" -lt "$rounds" ]; do
        i=$((i + 1))
        [ -x "$d/f" ] && "$d/f" "$x" --bench "$runs" >>"$d/f.times"
        [ -x "$d/q" ] && "$d/q" "$x" --bench "$runs" >>"$d/q.times"
        [ -f "$d/m.onnx" ] &&
            node "$srcdir/tests/onnx_run.js" "$d/m.onnx" "$x" --bench "$runs" >>"$d/o.times" 2>/dev/null
    done
    printf '%-16s %12s %12s %12s\n' "$name" "$(median "$d/f.times")" "$(median "$d/q.times")" \
        "$(median "$d/o.times")"
done
