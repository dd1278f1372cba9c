#!/bin/sh
# mpi.sh: data-parallel training on two processes (mpirun, libcnnrt_mpi).
#
# For every tests/nets/*.net, compiled so that a step has two lanes
# (cnnc --micro-batch, half the batch): the checkpoint of an epoch on two
# processes (with validation, a short last batch) is bitwise the one of a
# single process of the same trainer, and only one prints. Some, compiled
# with more lanes (cnnc --lanes), on every process count up to the lanes:
# the checkpoint of one process each time.
# Then the faults: a rank killed with SIGKILL mid-run ends the whole run
# well within 30 s and leaves the last checkpoint; ranks given other flags
# or other data, or more processes than lanes, are refused with a message
# and write nothing.
#
# The processes talk over TCP (--mca btl tcp,self), the transport between
# machines. Skips (77) unless configured --with-mpi.
#
# Environment (from make check): CNNC, srcdir, RT_BUILDDIR, MPIRUN,
# MPI_CFLAGS, MPI_LIBS; CC and TRAINER_CFLAGS to build trainers.
set -u
: "${CNNC:?}" "${srcdir:?}" "${RT_BUILDDIR:?}"
if [ -z "${MPIRUN:-}" ] || [ ! -f "$RT_BUILDDIR/libcnnrt_mpi.a" ]; then
    echo "SKIP: not configured --with-mpi"
    exit 77
fi
CC=${CC:-cc}
: "${CNNRT_LIBS:=-lpng16 -ljpeg -lz -lpthread -lm}"   # from make check: configure's
# -O1 after the build's flags: 22 trainers compile in a third of the time,
# and both sides of each comparison are the same binary.
CFLAGS_T="-std=c11 ${TRAINER_WARN_CFLAGS--Wall -Wextra} -pthread ${TRAINER_CFLAGS:-} -O1"
work=$(mktemp -d "${TMPDIR:-/tmp}/cnnc-mpi.XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=0 passed=0

pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# Open MPI refuses root unless told; one core each is plenty, and binding
# two ranks to the cores of a shared machine only gets in the way.
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM
mpirun_() {
    "$MPIRUN" --oversubscribe --bind-to none --mca btl tcp,self "$@"
}

# build NET NAME [LANES] -> the trainer $work/NAME, with cnnc --lanes=LANES
# if given, else with two lanes when the batch allows (the step's
# micro-batch half the batch)
build() {
    "$CNNC" ${3:+--lanes=$3} "$1" -o "$work/$2.c" 2>"$work/$2.log" || return 1
    batch=$(sed -n 's/^#define BATCH \([0-9]*\).*/\1/p' "$work/$2.c")
    lanes=$(sed -n 's/^#define LANES \([0-9]*\).*/\1/p' "$work/$2.c")
    if [ -z "${3:-}" ] && [ "$lanes" -lt 2 ] && [ "$batch" -ge 2 ]; then
        "$CNNC" --micro-batch=$(((batch + 1) / 2)) "$1" -o "$work/$2.c" \
            2>"$work/$2.log" || return 1
    fi
    # shellcheck disable=SC2086
    $CC $CFLAGS_T $MPI_CFLAGS -I"$srcdir/runtime" "$work/$2.c" \
        "$RT_BUILDDIR/libcnnrt_mpi.a" $MPI_LIBS $CNNRT_LIBS -o "$work/$2" 2>>"$work/$2.log"
}

echo "== two processes train bitwise as one"
for net in "$srcdir"/tests/nets/*.net; do
    name=$(basename "$net" .net)
    t="$work/$name"
    build "$net" "$name" || { cat "$t.log"; fail "build $name"; continue; }
    if ! grep -q '^#define LANES 2' "$t.c"; then
        fail "$name: no two lanes with cnnc --micro-batch"
        continue
    fi
    shape=$("$t" summary | sed -n '1s/.*: input \([0-9x]*\),.*/\1/p')
    outs=$("$t" summary | awk '$1 == "total" { print o; exit } { o = $3 }' |
           awk -F x '{ n = 1; for (i = 1; i <= NF; i++) n *= $i; print n }')
    classes=$((outs < 4 ? outs : 4))
    d="$work/data_$name"
    "$RT_BUILDDIR/cnnc-data" blobs --out "$d" --shape "$shape" --classes "$classes" \
        --train 42 --test 8 --seed 9 >/dev/null 2>&1 || { fail "cnnc-data for $name"; continue; }
    # an epoch of 34 samples: the last batch may leave the second lane empty
    set -- train --data "$d/train-images.npy" --labels "$d/train-labels.npy" --epochs 1 \
        --threads 1 --val-split 0.2
    if "$t" "$@" --save "$t.one.st" >"$t.one.log" 2>&1 &&
       mpirun_ -np 2 "$t" "$@" --save "$t.two.st" >"$t.two.log" 2>&1; then
        if cmp -s "$t.one.st" "$t.two.st"; then
            pass "$name: 2 processes, the checkpoint of 1, bitwise"
        else
            fail "$name: 2 processes and 1 give different checkpoints"
        fi
        # rank 0 alone prints: as many lines as one process
        if [ "$(wc -l <"$t.one.log")" -eq "$(wc -l <"$t.two.log")" ]; then
            pass "$name: one process's output"
        else
            cat "$t.one.log" "$t.two.log"
            fail "$name: 2 processes print $(wc -l <"$t.two.log") lines, 1 prints $(wc -l <"$t.one.log")"
        fi
    else
        cat "$t.one.log" "$t.two.log"
        fail "$name: training failed"
    fi
done

echo "== more lanes (cnnc --lanes): any process count up to the lanes trains bitwise as one"
# NET:LANES; with 34 samples an epoch, the last batch leaves lanes, and so
# whole ranks, without a micro-batch
for case in batchnorm:4 torch_batchnorm:4 dense_tails:4 grouped:4 torch_residual:4 \
            activations:3; do
    name=${case%:*} lanes=${case#*:}
    t="$work/${name}_l$lanes"
    build "$srcdir/tests/nets/$name.net" "${name}_l$lanes" "$lanes" ||
        { cat "$t.log"; fail "build $name --lanes=$lanes"; continue; }
    if ! grep -q "^#define LANES $lanes\$" "$t.c"; then
        fail "$name: not $lanes lanes with cnnc --lanes=$lanes"
        continue
    fi
    d="$work/data_$name"   # made above
    set -- train --data "$d/train-images.npy" --labels "$d/train-labels.npy" --epochs 1 \
        --threads 1 --val-split 0.2
    if ! "$t" "$@" --save "$t.one.st" >"$t.one.log" 2>&1; then
        cat "$t.one.log"
        fail "$name --lanes=$lanes: training on one process failed"
        continue
    fi
    k=2
    while [ $k -le "$lanes" ]; do
        if ! mpirun_ -np $k "$t" "$@" --save "$t.$k.st" >"$t.$k.log" 2>&1; then
            cat "$t.$k.log"
            fail "$name --lanes=$lanes: training on $k processes failed"
        elif cmp -s "$t.one.st" "$t.$k.st"; then
            pass "$name, $lanes lanes: $k processes, the checkpoint of 1, bitwise"
        else
            fail "$name, $lanes lanes: $k processes and 1 give different checkpoints"
        fi
        k=$((k + 1))
    done
done

echo "== --resume: paused on some processes, resumed on others, bitwise as one run"
# batchnorm with 4 lanes: 2 epochs on one process, against a run paused
# inside the first epoch on 2 processes, resumed on 4 and paused again
# inside the second, and finished on one.
t="$work/batchnorm_l4"
d="$work/data_batchnorm"
if [ -x "$t" ]; then
    set -- train --data "$d/train-images.npy" --labels "$d/train-labels.npy" --epochs 2 \
        --threads 1 --val-split 0.2
    rm -f "$t.r.st" "$t.r.st.state"
    if "$t" "$@" --save "$t.whole.st" >"$t.whole.log" 2>&1 &&
       mpirun_ -np 2 "$t" "$@" --save "$t.r.st" --pause-after 3 >"$t.r1.log" 2>&1 &&
       mpirun_ -np 4 "$t" "$@" --resume "$t.r.st" --save "$t.r.st" --pause-after 2 \
           >"$t.r2.log" 2>&1 &&
       "$t" "$@" --resume "$t.r.st" --save "$t.r.st" >"$t.r3.log" 2>&1; then
        if cmp -s "$t.whole.st" "$t.r.st" && cmp -s "$t.whole.st.state" "$t.r.st.state"; then
            pass "batchnorm, 4 lanes: paused on 2 processes, resumed on 4, then 1: the checkpoint and state of one run, bitwise"
        else
            fail "batchnorm, 4 lanes: paused and resumed on 2, 4, 1 processes differs from one run"
        fi
    else
        cat "$t.whole.log" "$t.r1.log" "$t.r2.log" "$t.r3.log"
        fail "batchnorm, 4 lanes: a run paused and resumed failed"
    fi
else
    fail "no batchnorm trainer with 4 lanes for --resume"
fi

# A trainer with a BatchNorm for the faults: tests/nets/batchnorm.net
t="$work/batchnorm"
d="$work/data_batchnorm"
set -- train --data "$d/train-images.npy" --labels "$d/train-labels.npy" --threads 1

echo "== a rank killed mid-run ends the run, the last checkpoint stays"
if [ -x "$t" ]; then
    rm -f "$t.kill.st"
    start=$(date +%s)
    timeout 30 "$MPIRUN" --oversubscribe --bind-to none --mca btl tcp,self -np 2 \
        "$t" "$@" --epochs 100000 --save "$t.kill.st" >"$t.kill.log" 2>&1 &
    run=$!
    # wait for the first epoch's checkpoint, then kill rank 1
    i=0
    while [ ! -s "$t.kill.st" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
    rank1=
    for p in $(pgrep -f "$t train"); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then
            rank1=$p
        fi
    done
    if [ -n "$rank1" ]; then
        kill -KILL "$rank1"
        wait $run
        status=$?
        took=$(($(date +%s) - start))
        if [ $status -ne 0 ] && [ $status -ne 124 ] && [ $took -lt 30 ]; then
            pass "killed rank 1: the run ended with status $status after $took s"
        else
            cat "$t.kill.log"
            fail "killed rank 1: status $status after $took s (124: a hang, ended by timeout)"
        fi
        if "$t" eval --data "$d/test-images.npy" --labels "$d/test-labels.npy" \
               --weights "$t.kill.st" >"$t.kill.eval" 2>&1; then
            pass "killed rank 1: the last checkpoint loads"
        else
            cat "$t.kill.eval"
            fail "killed rank 1: the last checkpoint does not load"
        fi
    else
        kill $run 2>/dev/null
        wait $run
        cat "$t.kill.log"
        fail "killed rank 1: no rank 1 found to kill"
    fi
else
    fail "no batchnorm trainer for the fault tests"
fi

# refused RUN EXPECTED...: RUN fails with status 2, nothing saved, and the
# output holds each EXPECTED line
refused() {
    what=$1
    shift
    rm -f "$t.bad.st"
    mpirun_ "$@" >"$t.bad.log" 2>&1
    status=$?
    if [ $status -eq 2 ] && [ ! -e "$t.bad.st" ] && grep -qF "$expected" "$t.bad.log"; then
        pass "$what: refused"
    else
        cat "$t.bad.log"
        fail "$what: status $status (expected 2), or not the message: $expected"
    fi
}

echo "== ranks that disagree are refused"
shape=$("$t" summary | sed -n '1s/.*: input \([0-9x]*\),.*/\1/p')
"$RT_BUILDDIR/cnnc-data" blobs --out "$work/other" --shape "$shape" --classes 3 --train 40 \
    --test 8 --seed 10 >/dev/null 2>&1 || fail "cnnc-data for other data"
expected="batchnorm: error: rank 1's flags (or --init checkpoint) differ from rank 0's; every process of an MPI run must train on the same data with the same flags"
refused "--lr 0.1 and 0.2" -np 1 "$t" "$@" --steps 2 --lr 0.1 --save "$t.bad.st" : \
    -np 1 "$t" "$@" --steps 2 --lr 0.2 --save "$t.bad.st"
expected="batchnorm: error: rank 1's data differ from rank 0's; every process of an MPI run must train on the same data with the same flags"
refused "other data" -np 1 "$t" "$@" --steps 2 --save "$t.bad.st" : \
    -np 1 "$t" train --data "$work/other/train-images.npy" \
    --labels "$work/other/train-labels.npy" --threads 1 --steps 2 --save "$t.bad.st"
expected="batchnorm: error: 3 processes, but this trainer deals a step to 2 lanes, so it trains on at most 2 processes (cnnc --lanes sets how many)"
refused "3 processes" -np 3 "$t" "$@" --steps 2 --save "$t.bad.st"

echo "mpi.sh: $passed passed, $failed failed"
[ $failed -eq 0 ]
