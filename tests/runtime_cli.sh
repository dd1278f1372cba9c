#!/bin/sh
# runtime_cli.sh: a trainer's command line and cnnc-data, as a user runs them:
# exit statuses, messages, output streams, files left behind.
#
# Usage: tests/runtime_cli.sh (make check sets RT_BUILDDIR, the build tree
# holding cnnc-data and tests/runtime_example, a trainer built from
# runtime/example_model.c, and tests/runtime_example_image, the same with an
# Input of 2x2x1 images). Exit status: 0 all passed, 1 some failed, 77 skip.

: "${RT_BUILDDIR:=.}"
model=$RT_BUILDDIR/tests/runtime_example
data=$RT_BUILDDIR/cnnc-data
for p in "$model" "$data"; do
    if [ ! -x "$p" ]; then
        echo "SKIP: $p is not built (set RT_BUILDDIR)"
        exit 77
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cnnrt-cli.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

pass=0
fail=0
ok() { echo "PASS: $1"; pass=$((pass + 1)); }
not_ok() { echo "FAIL: $1"; fail=$((fail + 1)); sed 's/^/    /' "$tmp/err" 2>/dev/null | head -5; }

# expect STATUS 'PHRASE' NAME -- COMMAND...: the exit status, and the phrase in
# standard error (an empty phrase: anything).
expect() {
    want=$1 phrase=$2 name=$3
    shift 4
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    if [ "$got" -ne "$want" ]; then
        not_ok "$name (exit $got, expected $want)"
    elif [ -n "$phrase" ] && ! grep -qF -- "$phrase" "$tmp/err"; then
        not_ok "$name (stderr lacks '$phrase')"
    else
        ok "$name"
    fi
}

d=$tmp/blobs
"$data" blobs --out "$d" --train 300 --test 90 --seed 4 || exit 1

# ---- cnnc-data ----------------------------------------------------------------
"$data" blobs --out "$tmp/blobs2" --train 300 --test 90 --seed 4
if cmp -s "$d/train-images.npy" "$tmp/blobs2/train-images.npy" &&
   cmp -s "$d/test-labels.npy" "$tmp/blobs2/test-labels.npy"; then
    ok "cnnc-data: same arguments, same bytes"
else
    not_ok "cnnc-data: same arguments, same bytes"
fi
"$data" shapes --out "$tmp/shapes" --train 40 --test 8 --seed 2
size=$(wc -c <"$tmp/shapes/train-images.npy")
if [ "$size" -eq $((128 + 40 * 96 * 96 * 3)) ] &&
   [ "$(wc -c <"$tmp/shapes/test-labels.npy")" -eq $((128 + 8)) ]; then
    ok "cnnc-data shapes: 96x96x3 uint8 images"
else
    not_ok "cnnc-data shapes: 96x96x3 uint8 images (size $size)"
fi
"$data" shapes --out "$tmp/shapesf" --train 4 --test 2 --seed 2 --dtype float32
size=$(wc -c <"$tmp/shapesf/train-images.npy")
if [ "$size" -eq $((128 + 4 * 96 * 96 * 3 * 4)) ]; then
    ok "cnnc-data shapes --dtype float32: 96x96x3 float32 images"
else
    not_ok "cnnc-data shapes --dtype float32: 96x96x3 float32 images (size $size)"
fi
expect 2 "--dtype: expected uint8 or float32, found 'f16'" "cnnc-data: bad --dtype" -- \
    "$data" blobs --out "$tmp/x" --dtype f16
expect 2 "unknown flag '--bogus'" "cnnc-data: unknown flag" -- "$data" blobs --out "$tmp/x" --bogus 1
expect 2 "--train: expected" "cnnc-data: bad count" -- "$data" shapes --out "$tmp/x" --train 0
expect 2 "--out DIR is required" "cnnc-data: no --out" -- "$data" shapes
expect 1 "cnnc-data: error: $tmp/no/such/dir: cannot create the directory: No such file or directory" \
    "cnnc-data: bad directory" -- "$data" blobs --out "$tmp/no/such/dir"

# ---- training, non-interactive -------------------------------------------------
expect 0 "epoch 4/4" "train" -- "$model" train --data "$d/train-images.npy" \
    --labels "$d/train-labels.npy" --epochs 4 --save "$tmp/ck.st" --log "$tmp/log.csv"
lines=$(grep -c '^epoch [0-9]*/4 ' "$tmp/err")
if [ "$lines" -eq 4 ] && ! grep -q "$(printf '\r')" "$tmp/err"; then
    ok "train: one plain line per epoch when stderr is not a terminal"
else
    not_ok "train: one plain line per epoch when stderr is not a terminal"
fi
if [ "$(wc -l <"$tmp/log.csv")" -eq 5 ]; then ok "train: --log"; else not_ok "train: --log"; fi
expect 0 "" "eval" -- "$model" eval --data "$d/test-images.npy" --labels "$d/test-labels.npy" \
    --weights "$tmp/ck.st"
if grep -q '^loss [0-9.]*  accuracy [0-9.]*% ([0-9]*/90)$' "$tmp/out"; then
    ok "eval: prints loss and accuracy"
else
    not_ok "eval: prints loss and accuracy"
fi
expect 0 "" "predict to stdout" -- "$model" predict --data "$d/test-images.npy" \
    --weights "$tmp/ck.st"
if [ "$(wc -l <"$tmp/out")" -eq 90 ]; then ok "predict: a line per sample"; else not_ok "predict: a line per sample"; fi

# A terminal gets the progress bar (when script(1) can give us one).
if command -v script >/dev/null 2>&1; then
    script -qec "$model train --data $d/train-images.npy --labels $d/train-labels.npy --epochs 2" \
        /dev/null >"$tmp/tty" 2>&1 </dev/null
    if grep -q 'ETA' "$tmp/tty" && grep -q 'img/s' "$tmp/tty" && grep -q "$(printf '\r')" "$tmp/tty"; then
        ok "train: a progress bar on a terminal"
    else
        not_ok "train: a progress bar on a terminal"
    fi
fi

# ---- the recipe, --save-best, predict to .npy, Ctrl-C -------------------------
expect 2 "--schedule: expected constant, step or cosine, found 'linear'" "--schedule linear" -- \
    "$model" train --data "$d/train-images.npy" --labels "$d/train-labels.npy" --schedule linear
expect 2 "--flip and --crop move the pixels of images; the input of example is a vector" \
    "--flip on a vector input" -- "$model" train --data "$d/train-images.npy" \
    --labels "$d/train-labels.npy" --flip
expect 2 "--save-best keeps the epoch of the best validation accuracy" \
    "--save-best without validation" -- "$model" train --data "$d/train-images.npy" \
    --labels "$d/train-labels.npy" --save-best "$tmp/best.st"
[ ! -e "$tmp/best.st" ] && ok "--save-best refused: no file" || not_ok "--save-best refused: no file"
expect 0 "best so far: saved $tmp/best.st (epoch 1)" "--save-best" -- "$model" train \
    --data "$d/train-images.npy" --labels "$d/train-labels.npy" --val-split 0.2 --epochs 3 \
    --schedule cosine --warmup 0.5 --label-smoothing 0.1 --clip 1 --save-best "$tmp/best.st"
expect 0 "" "predict -o FILE.npy" -- "$model" predict --data "$d/test-images.npy" \
    --weights "$tmp/ck.st" -o "$tmp/pred.npy"
# NumPy's format 1.0: magic, a 118-byte header padded to 128 bytes, 90 int32
if [ "$(head -c 6 "$tmp/pred.npy" | tail -c 5)" = NUMPY ] &&
   [ "$(wc -c <"$tmp/pred.npy")" -eq $((128 + 4 * 90)) ] &&
   head -c 128 "$tmp/pred.npy" | grep -q "'descr': '<i4'.*'shape': (90,)"; then
    ok "predict -o FILE.npy: int32 classes in NumPy's format"
else
    not_ok "predict -o FILE.npy: int32 classes in NumPy's format"
fi
# Ctrl-C once: the step finishes, the checkpoint is saved, status 130. The
# signal goes once the first epoch is logged (the handler is in place).
"$model" train --data "$d/train-images.npy" --labels "$d/train-labels.npy" --epochs 1000000 \
    --save "$tmp/int.st" --log "$tmp/int.csv" >"$tmp/out" 2>"$tmp/err" &
pid=$!
tries=0
while [ "$(wc -l <"$tmp/int.csv" 2>/dev/null || echo 0)" -lt 2 ] && [ $tries -lt 600 ]; do
    sleep 0.1
    tries=$((tries + 1))
done
kill -INT $pid
wait $pid
got=$?
if [ $got -eq 130 ] && grep -q "interrupted in epoch [0-9]* after step [0-9]*; saved $tmp/int.st (--resume $tmp/int.st goes on from here)" \
       "$tmp/err" && [ -s "$tmp/int.st" ] && [ -s "$tmp/int.st.state" ]; then
    ok "Ctrl-C: saves the checkpoint and the training state, says where, exits 130"
else
    not_ok "Ctrl-C: saves the checkpoint and the training state, says where, exits 130 (exit $got)"
fi
# --resume goes on from the step Ctrl-C stopped at, and appends to the log.
at=$(sed -n 's/.* after step \([0-9]*\);.*/\1/p' "$tmp/err")
lines=$(wc -l <"$tmp/int.csv")
"$model" train --data "$d/train-images.npy" --labels "$d/train-labels.npy" --epochs 1000000 \
    --resume "$tmp/int.st" --save "$tmp/int.st" --log "$tmp/int.csv" --pause-after 3 \
    >"$tmp/out" 2>"$tmp/err"
got=$?
if [ $got -eq 0 ] && [ -n "$at" ] &&
   grep -q "paused in epoch [0-9]* after step $((at + 3)); saved $tmp/int.st" "$tmp/err" &&
   [ "$(wc -l <"$tmp/int.csv")" -ge "$lines" ] && [ "$(grep -c '^epoch,' "$tmp/int.csv")" -eq 1 ]; then
    ok "--resume after Ctrl-C: goes on from step $at, pauses 3 steps later, one log"
else
    not_ok "--resume after Ctrl-C: goes on from step $at, pauses 3 steps later (exit $got: $(cat "$tmp/err"))"
fi

# ---- usage errors: exit 2 --------------------------------------------------------
expect 2 "no command given" "no command" -- "$model"
expect 2 "unknown command 'fit'" "unknown command" -- "$model" fit
expect 2 "unknown flag '--learning-rate'" "unknown flag" -- "$model" train --data x --learning-rate 1
# A flag one edit from one of the command's: the hint names it.
prog=$(basename "$model")
expect 2 "$prog: error: train: unknown flag '--epoch'; did you mean '--epochs'?" \
    "unknown flag: did you mean" -- "$model" train --data x --epoch 3
expect 2 "$prog: error: train: unknown flag '--no-shufle'; did you mean '--no-shuffle'?" \
    "unknown switch: did you mean" -- "$model" train --data x --no-shufle
expect 2 "$prog: error: eval: unknown flag '--wieghts'; did you mean '--weights'?" \
    "unknown flag, two letters swapped: did you mean" -- "$model" eval --data x --wieghts=w
# Not a flag of another command: --epochs is train's, not bench's.
expect 2 "$prog: error: bench: unknown flag '--epoch' (see '$prog bench --help')" \
    "unknown flag near another command's: no hint" -- "$model" bench --epoch 3
expect 2 "--lr: expected a number > 0, found 'fast'" "non-numeric number" -- "$model" train --data x --lr fast
expect 2 "--batch: expected an integer from 1 to 16 (the compiled batch), found '0'" "--batch 0" -- \
    "$model" train --data x --batch 0
expect 2 "found '17'" "--batch above the compiled batch" -- "$model" bench --batch 17
expect 2 "--weights is required" "eval without weights" -- "$model" eval --data x --labels y
expect 2 "--labels" "train without labels" -- "$model" train --data "$d/train-images.npy"
expect 0 "" "--help" -- "$model" --help
expect 0 "" "train --help" -- "$model" train --help

# ---- bad input: exit 1, nothing written --------------------------------------------
echo OLD >"$tmp/keep.st"
expect 1 "$tmp/missing.npy: cannot open" "missing data file" -- "$model" train \
    --data "$tmp/missing.npy" --labels "$d/train-labels.npy" --save "$tmp/keep.st"
expect 1 "$tmp: is a folder of images, labelled by its class folders; expected no labels file" \
    "a directory as data, with labels" -- "$model" train --data "$tmp" \
    --labels "$d/train-labels.npy" --save "$tmp/keep.st"
# Inputs that are not regular files: refused at once, never waited for; a
# pipe with a writer is read to its end.
# (under timeout(1) where there is one: the old trainer hung here)
to=
command -v timeout >/dev/null 2>&1 && to="timeout 60"
mkfifo "$tmp/fifo"
expect 1 "$tmp/fifo: is a FIFO that no process is writing into; expected a regular file, or a pipe with a writer (such as bash's <(command))" \
    "a FIFO with no writer as data" -- $to "$model" train --data "$tmp/fifo" \
    --labels "$d/train-labels.npy" --save "$tmp/keep.st"
rm -f "$tmp/fifo"
expect 1 "/dev/null: is a character device; expected a regular file" "a device as data" -- \
    "$model" train --data /dev/null --labels "$d/train-labels.npy" --save "$tmp/keep.st"
if cat "$d/test-images.npy" | "$model" eval --data /dev/stdin --labels "$d/test-labels.npy" \
       --weights "$tmp/ck.st" >"$tmp/out" 2>"$tmp/err" &&
   grep -q '(.*/90)$' "$tmp/out"; then
    ok "data from a pipe (/dev/stdin) is read to its end"
else
    not_ok "data from a pipe (/dev/stdin) is read to its end"
fi
expect 1 "300 labels for the 90 samples" "label count mismatch" -- "$model" train \
    --data "$d/test-images.npy" --labels "$d/train-labels.npy" --save "$tmp/keep.st"
head -c 1000 "$d/train-images.npy" >"$tmp/short.npy"
expect 1 "truncated" "truncated data" -- "$model" train --data "$tmp/short.npy" \
    --labels "$d/train-labels.npy" --save "$tmp/keep.st"
expect 1 "directory $tmp/nodir does not exist" "--save into a missing directory" -- "$model" train \
    --data "$d/train-images.npy" --labels "$d/train-labels.npy" --save "$tmp/nodir/ck.st"
expect 1 "keep.st: truncated" "a bad checkpoint" -- "$model" eval --data "$d/test-images.npy" \
    --labels "$d/test-labels.npy" --weights "$tmp/keep.st"
expect 1 "does not exist" "predict -o into a missing directory" -- "$model" predict \
    --data "$d/test-images.npy" --weights "$tmp/ck.st" -o "$tmp/nodir/p.txt"

# An output that is one of the inputs: refused before anything is written.
x=$d/train-images.npy
y=$d/train-labels.npy
size=$(wc -c <"$x")
expect 2 "--log $x is the same file as --data $x; writing it would destroy the input" \
    "--log naming --data" -- "$model" train --data "$x" --labels "$y" --log "$x"
ln "$y" "$tmp/labels-link"
expect 2 "--save $tmp/labels-link is the same file as --labels $y; writing it would destroy the input" \
    "--save naming --labels through a hard link" -- "$model" train --data "$x" --labels "$y" \
    --save "$tmp/labels-link"
expect 2 "-o $tmp/ck.st is the same file as --weights $tmp/ck.st; writing it would destroy the input" \
    "predict -o naming --weights" -- "$model" predict --data "$x" --weights "$tmp/ck.st" -o "$tmp/ck.st"
expect 2 "--log $tmp/both is the same file as --save $tmp/both; each output needs its own" \
    "--log naming --save" -- "$model" train --data "$x" --labels "$y" --save "$tmp/both" --log "$tmp/both"
if [ "$(wc -c <"$x")" -eq "$size" ] && [ ! -e "$tmp/both" ] &&
   cmp -s "$y" "$tmp/labels-link"; then
    ok "an output naming an input leaves the input alone"
else
    not_ok "an output naming an input leaves the input alone"
fi
rm -f "$tmp/labels-link"
cp "$tmp/ck.st" "$tmp/resume.st"
expect 0 "saved $tmp/resume.st" "--save may name the --init checkpoint" -- "$model" train \
    --data "$x" --labels "$y" --epochs 1 --init "$tmp/resume.st" --save "$tmp/resume.st"
rm -f "$tmp/resume.st"
# --resume's refusals: no training state beside it, another run's batch, --init too.
cp "$tmp/ck.st" "$tmp/lone.st"
expect 1 "--resume $tmp/lone.st: there is no $tmp/lone.st.state, the training state that --save writes beside its checkpoint; to start a new run from these weights, give --init $tmp/lone.st" \
    "--resume without the training state" -- "$model" train --data "$x" --labels "$y" \
    --resume "$tmp/lone.st"
"$model" train --data "$x" --labels "$y" --epochs 2 --save "$tmp/run.st" --pause-after 1 \
    2>/dev/null
expect 1 "its run took" "--resume with another batch" -- "$model" train --data "$x" \
    --labels "$y" --epochs 2 --resume "$tmp/run.st" --batch 3
expect 1 "is the training state beside a checkpoint, not a checkpoint" \
    "--resume naming the training state" -- "$model" train --data "$x" --labels "$y" \
    --resume "$tmp/run.st.state"
expect 2 "--init starts a new run and --resume goes on with one" "--init and --resume" -- \
    "$model" train --data "$x" --labels "$y" --init "$tmp/run.st" --resume "$tmp/run.st"
expect 2 "--pause-after needs --save" "--pause-after without --save" -- \
    "$model" train --data "$x" --labels "$y" --pause-after 3
rm -f "$tmp/run.st" "$tmp/run.st.state" "$tmp/lone.st"
# A log that cannot be written (a full disk) fails the run.
expect 1 "--log /dev/full: cannot write: No space left on device" "--log on a full disk" -- \
    "$model" train --data "$x" --labels "$y" --epochs 1 --log /dev/full
if [ "$(cat "$tmp/keep.st")" = OLD ] && [ -z "$(find "$tmp" -maxdepth 1 -name '.*tmp*')" ]; then
    ok "bad input leaves --save untouched and no temporary files"
else
    not_ok "bad input leaves --save untouched and no temporary files"
fi

# ---- a kill never leaves a half-written checkpoint --------------------------------------
# Many short epochs, a save at the end of each; the kill comes once the first
# save is there (so that saves are under way), at once or a little later.
# The verdict does not hang on timing: wherever the kill lands, the
# checkpoint must be absent or whole, and the trainer must have been running
# (killed, status 137) rather than stopped by itself. The wait for the first
# save only guards against a trainer that never saves (60 s).
good=0
for delay in 0 0.1 0.3; do
    rm -f "$tmp/killed.st"
    "$model" train --data "$d/test-images.npy" --labels "$d/test-labels.npy" --epochs 1000000 \
        --batch 1 --save "$tmp/killed.st" 2>/dev/null &
    pid=$!
    waited=0
    while [ ! -e "$tmp/killed.st" ] && [ "$waited" -lt 1200 ]; do
        sleep 0.05
        waited=$((waited + 1))
    done
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    status=$?
    if [ "$status" -eq 137 ] && { [ ! -e "$tmp/killed.st" ] ||
       "$model" eval --data "$d/test-images.npy" --labels "$d/test-labels.npy" \
           --weights "$tmp/killed.st" >/dev/null 2>&1; }; then
        good=$((good + 1))
    else
        echo "    kill after ${delay}s: trainer status $status, checkpoint not whole" >"$tmp/err"
    fi
done
if [ "$good" -eq 3 ]; then ok "kill -9 while saving: the checkpoint stays whole"; else not_ok "kill -9 while saving: the checkpoint stays whole"; fi
# A killed run's temporary is removed by the next save of the same file.
"$model" train --data "$d/test-images.npy" --labels "$d/test-labels.npy" --epochs 1 \
    --save "$tmp/killed.st" 2>/dev/null
if [ -z "$(find "$tmp" -maxdepth 1 -name '.killed.st.tmp-*')" ]; then
    ok "kill -9: the next save removes the temporaries of killed runs"
else
    not_ok "kill -9: the next save removes the temporaries of killed runs"
fi
# SIGTERM and SIGHUP remove the temporary of a save under way. (Not SIGINT:
# a background job of a non-interactive shell ignores it; test_runtime.c
# checks all three, deterministically.)
# A SIGHUP ignored when this script started (nohup) stays ignored in the
# trainers, as it should: then SIGTERM alone. A guard ends a trainer that
# outlives its signal by 30 s, so that the test fails instead of hanging.
sigs="TERM HUP TERM HUP"
ignored=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/$$/status 2>/dev/null)
if [ -n "$ignored" ] && [ $((0x$ignored & 1)) -ne 0 ]; then
    echo "# SIGHUP is ignored here (nohup?): SIGTERM only"
    sigs="TERM TERM TERM TERM"
fi
good=0
for sig in $sigs; do
    "$model" train --data "$d/test-images.npy" --labels "$d/test-labels.npy" --epochs 1000000 \
        --batch 1 --save "$tmp/killed.st" 2>/dev/null &
    pid=$!
    sleep 0.3
    kill -"$sig" "$pid" 2>/dev/null
    (sleep 30; kill -KILL "$pid" 2>/dev/null) &
    guard=$!
    wait "$pid" 2>/dev/null
    status=$?
    kill "$guard" 2>/dev/null
    if [ "$status" -gt 128 ] && [ -z "$(find "$tmp" -maxdepth 1 -name '.killed.st.tmp-*')" ]; then
        good=$((good + 1))
    fi
done
if [ "$good" -eq 4 ]; then
    ok "SIGTERM, SIGHUP while saving: no temporary left"
else
    not_ok "SIGTERM, SIGHUP while saving: no temporary left ($good of 4)"
fi

# ---- a data file truncated under a running trainer -----------------------------------------
# The trainer saves after each epoch. Once a first save shows that it has
# read its data and is training, the data and labels files are truncated to
# nothing and the checkpoint removed; a checkpoint saved again means whole
# epochs ran after the truncation (where a trainer that mapped its data
# would die of SIGBUS at the first of them). No verdict hangs on timing: the
# waits only guard against a trainer that never saves (60 s each).
wait_for_save() {
    waited=0
    while [ ! -e "$tmp/shrunk.st" ] && [ "$waited" -lt 1200 ] && kill -0 "$pid" 2>/dev/null; do
        sleep 0.05
        waited=$((waited + 1))
    done
    [ -e "$tmp/shrunk.st" ]
}
cp "$d/test-images.npy" "$tmp/shrinking-images.npy"
cp "$d/test-labels.npy" "$tmp/shrinking-labels.npy"
"$model" train --data "$tmp/shrinking-images.npy" --labels "$tmp/shrinking-labels.npy" \
    --epochs 1000000 --batch 1 --save "$tmp/shrunk.st" 2>"$tmp/err" &
pid=$!
saved=no
if wait_for_save; then
    : >"$tmp/shrinking-images.npy"
    : >"$tmp/shrinking-labels.npy"
    rm -f "$tmp/shrunk.st"
    wait_for_save && saved=yes
fi
kill -TERM "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
status=$?
if [ "$saved" = yes ] && [ "$status" -eq 143 ]; then
    ok "data truncated under a running trainer: training goes on"
else
    not_ok "data truncated under a running trainer: training goes on (saved again: $saved, status $status)"
fi
rm -f "$tmp/shrunk.st" "$tmp/shrinking-images.npy" "$tmp/shrinking-labels.npy"

# ---- outputs that are not regular files --------------------------------------------------
# Private device nodes where they can be made (root), so that a regression
# cannot replace the machine's /dev/null; else the real ones, which a user
# without root could not replace anyway.
null= full=
if mknod "$tmp/null" c 1 3 2>/dev/null && mknod "$tmp/full" c 1 7 2>/dev/null; then
    null=$tmp/null full=$tmp/full
elif [ "$(id -u)" -ne 0 ]; then
    null=/dev/null full=/dev/full
fi
x=$d/test-images.npy
if [ -n "$null" ]; then
    expect 0 "" "predict -o a character device" -- "$model" predict --data "$x" \
        --weights "$tmp/ck.st" -o "$null"
    if [ -c "$null" ]; then ok "predict -o a device: still a device"; else not_ok "predict -o a device: still a device"; fi
    expect 1 "$full: cannot write: No space left on device" "predict -o a full device" -- \
        "$model" predict --data "$x" --weights "$tmp/ck.st" -o "$full"
    if [ -c "$full" ]; then ok "predict -o a full device: still a device"; else not_ok "predict -o a full device: still a device"; fi
fi
mkfifo "$tmp/pfifo"
cat "$tmp/pfifo" >"$tmp/from-fifo" &
reader=$!
expect 0 "" "predict -o a FIFO" -- $to "$model" predict --data "$x" --weights "$tmp/ck.st" \
    -o "$tmp/pfifo"
wait "$reader"
if [ -p "$tmp/pfifo" ] && [ "$(wc -l <"$tmp/from-fifo")" -eq 90 ]; then
    ok "predict -o a FIFO: its reader gets the lines, the FIFO stays"
else
    not_ok "predict -o a FIFO: its reader gets the lines, the FIFO stays"
fi
rm -f "$tmp/pfifo" "$tmp/from-fifo"
ln -s /proc/self/fd/1 "$tmp/to-stdout"
n=$("$model" predict --data "$x" --weights "$tmp/ck.st" -o "$tmp/to-stdout" | wc -l)
if [ "$n" -eq 90 ] && [ -h "$tmp/to-stdout" ]; then
    ok "predict -o a link to /proc/self/fd/1: written to the pipe, the link stays"
else
    not_ok "predict -o a link to /proc/self/fd/1: written to the pipe, the link stays ($n lines)"
fi
echo OLD >"$tmp/pred-real"
ln -s pred-real "$tmp/pred-link"
ln -s "$tmp/pred-new" "$tmp/pred-dangling"
"$model" predict --data "$x" --weights "$tmp/ck.st" -o "$tmp/pred-link" &&
"$model" predict --data "$x" --weights "$tmp/ck.st" -o "$tmp/pred-dangling"
if [ -h "$tmp/pred-link" ] && [ "$(wc -l <"$tmp/pred-real")" -eq 90 ] &&
   [ -h "$tmp/pred-dangling" ] && [ "$(wc -l <"$tmp/pred-new")" -eq 90 ]; then
    ok "predict -o a symbolic link: its target is replaced (or created), not the link"
else
    not_ok "predict -o a symbolic link: its target is replaced (or created), not the link"
fi
# the temporary of a process that is gone goes; a live process's stays
sh -c 'exit 0' &
gone=$!
wait "$gone"
touch "$tmp/.pred.txt.tmp-$gone-Ab12Cd" "$tmp/.pred.txt.tmp-$$-Ab12Cd"
"$model" predict --data "$x" --weights "$tmp/ck.st" -o "$tmp/pred.txt"
if [ ! -e "$tmp/.pred.txt.tmp-$gone-Ab12Cd" ] && [ -e "$tmp/.pred.txt.tmp-$$-Ab12Cd" ] &&
   [ "$(wc -l <"$tmp/pred.txt")" -eq 90 ]; then
    ok "predict -o: removes the temporaries of dead processes, keeps a live one's"
else
    not_ok "predict -o: removes the temporaries of dead processes, keeps a live one's"
fi
rm -f "$tmp/.pred.txt.tmp-$$-Ab12Cd"

# ---- gzip-compressed files and folders of images ------------------------------------
gzip -c "$d/train-images.npy" >"$tmp/x.npy.gz"
gzip -c "$d/train-labels.npy" >"$tmp/y-labels"   # no suffix: the magic bytes tell
expect 0 "epoch 2/2" "train on gzip-compressed .npy files" -- "$model" train \
    --data "$tmp/x.npy.gz" --labels "$tmp/y-labels" --epochs 2 --save "$tmp/gz.st"
"$model" train --data "$d/train-images.npy" --labels "$d/train-labels.npy" --epochs 2 \
    --save "$tmp/plain.st" 2>/dev/null
if cmp -s "$tmp/gz.st" "$tmp/plain.st"; then
    ok "gzip-compressed data trains bitwise as the plain files"
else
    not_ok "gzip-compressed data trains bitwise as the plain files"
fi
head -c 300 "$tmp/x.npy.gz" >"$tmp/cut.gz"
expect 1 "$tmp/cut.gz: truncated gzip file: the compressed data ends before the gzip stream does" \
    "a truncated gzip file" -- "$model" train --data "$tmp/cut.gz" --labels "$d/train-labels.npy"
{ cat "$tmp/x.npy.gz"; printf 'junk'; } >"$tmp/junk.gz"
expect 1 "$tmp/junk.gz: 4 bytes after the end of the gzip data" "bytes after the gzip data" -- \
    "$model" train --data "$tmp/junk.gz" --labels "$d/train-labels.npy"
size=$(wc -c <"$tmp/x.npy.gz")
{ head -c $((size - 8)) "$tmp/x.npy.gz"; printf '\001\002\003\004'; tail -c 4 "$tmp/x.npy.gz"; } \
    >"$tmp/crc.gz"
expect 1 "$tmp/crc.gz: damaged gzip file: the CRC-32 of the decompressed data does not match the one in the gzip trailer" \
    "a gzip file with a wrong CRC-32" -- "$model" train --data "$tmp/crc.gz" \
    --labels "$d/train-labels.npy"
{ gzip -c "$d/train-images.npy"; gzip -c </dev/null; } >"$tmp/two.gz"
expect 0 "" "a gzip file of two members (the second empty)" -- "$model" train \
    --data "$tmp/two.gz" --labels "$d/train-labels.npy" --epochs 1

img=$RT_BUILDDIR/tests/runtime_example_image   # Input(2x2x1), 3 classes
f=$tmp/folders
"$data" blobs --out "$f" --shape 2x2x1 --classes 3 --train 120 --test 30 --seed 5 \
    --noise 0.05 --format png || exit 1
expect 0 "val_acc 100.00%" "train on a folder of PNG images, validate on another" -- \
    "$img" train --data "$f/train" --val-data "$f/test" --epochs 40 --save "$tmp/img.st"
expect 0 "" "eval on a folder of images" -- "$img" eval --data "$f/test" --weights "$tmp/img.st"
if grep -q '^loss [0-9.]*  accuracy 100.00% (30/30)$' "$tmp/out"; then
    ok "eval on a folder: its labels from the class folders"
else
    not_ok "eval on a folder: its labels from the class folders"
fi
"$data" blobs --out "$tmp/jpeg" --shape 2x2x1 --classes 3 --train 60 --test 30 --seed 5 \
    --noise 0.05 --format jpeg || exit 1
expect 0 "" "eval on a folder of JPEG images" -- "$img" eval --data "$tmp/jpeg/test" \
    --weights "$tmp/img.st"
expect 1 "$f/train: is a folder of images, labelled by its class folders; expected no labels file, found $d/train-labels.npy" \
    "--labels with a folder" -- "$img" train --data "$f/train" --labels "$d/train-labels.npy"
expect 2 "--val-split: $f/train is a folder of images, whose last samples are those of its last classes; give the validation images as --val-data DIR" \
    "--val-split with a folder" -- "$img" train --data "$f/train" --val-split 0.2
expect 1 "$f/train: a folder of images needs a network whose Input is an image (H x W x C); example takes vectors of 4" \
    "a folder for a vector Input" -- "$model" train --data "$f/train"
expect 2 "--resize scales the images of a folder; $d/train-images.npy is a file (its samples are taken at their own size)" \
    "--resize without a folder" -- "$model" train --data "$d/train-images.npy" \
    --labels "$d/train-labels.npy" --resize
mkdir -p "$tmp/empty"
expect 1 "$tmp/empty: holds no class folders; expected one subfolder of PNG or JPEG images per class" \
    "an empty folder" -- "$img" train --data "$tmp/empty"
mkdir -p "$tmp/one/cats"
cp "$f/train/0/"*.png "$tmp/one/cats/"
expect 1 "$tmp/one: holds one class folder (cats); expected one per class, at least two" \
    "a folder of one class" -- "$img" train --data "$tmp/one"
mkdir -p "$tmp/one/dogs" "$tmp/one/eels"
expect 1 "$tmp/one/dogs: a class folder with no images; expected PNG or JPEG files (*.png, *.jpg, *.jpeg)" \
    "a class folder with no images" -- "$img" train --data "$tmp/one"
# broken images, named; a mis-sized one, refused and then resized
cp -r "$f/train" "$tmp/broken"
first=$(ls "$tmp/broken/1" | head -n 1)
head -c 40 "$f/train/1/$first" >"$tmp/broken/1/$first"
expect 1 "$tmp/broken/1/$first: broken PNG image: truncated: the file ends before the image does" \
    "a truncated PNG" -- "$img" train --data "$tmp/broken"
cp "$f/train/1/$first" "$tmp/broken/1/$first"
jpg=$(ls "$tmp/jpeg/train/2" | head -n 1)
head -c 200 "$tmp/jpeg/train/2/$jpg" >"$tmp/broken/2/x.jpg"
expect 1 "$tmp/broken/2/x.jpg: broken JPEG image: Premature end of JPEG file" \
    "a truncated JPEG" -- "$img" train --data "$tmp/broken"
rm -f "$tmp/broken/2/x.jpg"
"$data" blobs --out "$tmp/big" --shape 5x3x1 --classes 3 --train 3 --test 1 --format png || exit 1
big=$(ls "$tmp/big/train/0" | head -n 1)
cp "$tmp/big/train/0/$big" "$tmp/broken/0/zz.png"
expect 1 "$tmp/broken/0/zz.png: a 5 x 3 image (H x W); the Input of example is 2 x 2 (give --resize to scale the images to it)" \
    "an image of another size" -- "$img" train --data "$tmp/broken" --epochs 1
expect 0 "epoch 1/1" "an image of another size, with --resize" -- "$img" train \
    --data "$tmp/broken" --epochs 1 --resize
expect 2 "--format png: writes uint8 images of 1 or 3 channels; expected --shape HxWx1 or HxWx3" \
    "cnnc-data --format png of vectors" -- "$data" blobs --out "$tmp/v" --format png
expect 2 "--format jpeg: writes uint8 images of 1 or 3 channels; expected no --dtype float32" \
    "cnnc-data --format jpeg of floats" -- "$data" shapes --out "$tmp/v" --format jpeg \
    --dtype float32
expect 2 "cnnc-data: error: --format: expected npy, png or jpeg, found 'gif'" \
    "cnnc-data --format gif" -- "$data" shapes --out "$tmp/v" --format gif
expect 1 "$f/train: the folder is not empty; expected a new or empty one" \
    "cnnc-data --format png into a folder with images" -- "$data" blobs --out "$f" \
    --shape 2x2x1 --classes 3 --format png
mkdir -p "$tmp/filed" && : >"$tmp/filed/train"
expect 1 "cnnc-data: error: $tmp/filed/train: cannot create the directory: File exists" \
    "cnnc-data --format png where a file has the split's name" -- "$data" blobs \
    --out "$tmp/filed" --shape 2x2x1 --classes 3 --format png
expect 0 "" "train --help" -- "$img" train --help
if grep -q -- '--resize' "$tmp/out" && grep -q 'gzip' "$tmp/out"; then
    ok "train --help: folders, --resize and gzip"
else
    not_ok "train --help: folders, --resize and gzip"
fi

# ---- gradcheck and bench ---------------------------------------------------------------
expect 0 "" "gradcheck" -- "$model" gradcheck --seed 2
expect 0 "" "bench" -- "$model" bench --steps 3
if grep -q 'ms/step.*images/s.*GFLOP/s.*peak RSS' "$tmp/out"; then ok "bench: its figures"; else not_ok "bench: its figures"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
