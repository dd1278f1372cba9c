#!/bin/sh
# runtime_cli.sh: a trainer's command line and cnnc-data, as a user runs them:
# exit statuses, messages, output streams, files left behind.
#
# Usage: tests/runtime_cli.sh (make check sets RT_BUILDDIR, the build tree
# holding cnnc-data and tests/runtime_example, a trainer built from
# runtime/example_model.c). Exit status: 0 all passed, 1 some failed, 77 skip.

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
expect 1 "cannot create the directory" "cnnc-data: bad directory" -- \
    "$data" blobs --out "$tmp/no/such/dir"

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

# ---- usage errors: exit 2 --------------------------------------------------------
expect 2 "no command given" "no command" -- "$model"
expect 2 "unknown command 'fit'" "unknown command" -- "$model" fit
expect 2 "unknown flag '--learning-rate'" "unknown flag" -- "$model" train --data x --learning-rate 1
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
expect 1 "is a directory" "a directory as data" -- "$model" train --data "$tmp" \
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
# A log that cannot be written (a full disk) fails the run.
expect 1 "--log /dev/full: cannot write: No space left on device" "--log on a full disk" -- \
    "$model" train --data "$x" --labels "$y" --epochs 1 --log /dev/full
if [ "$(cat "$tmp/keep.st")" = OLD ] && [ -z "$(find "$tmp" -maxdepth 1 -name '.*tmp*')" ]; then
    ok "bad input leaves --save untouched and no temporary files"
else
    not_ok "bad input leaves --save untouched and no temporary files"
fi

# ---- a kill never leaves a half-written checkpoint --------------------------------------
# Many short epochs, so that saves are under way when the kill comes.
good=0
for delay in 0.2 0.35 0.5; do
    "$model" train --data "$d/test-images.npy" --labels "$d/test-labels.npy" --epochs 1000000 \
        --batch 1 --save "$tmp/killed.st" 2>/dev/null &
    pid=$!
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    if [ ! -e "$tmp/killed.st" ] ||
       "$model" eval --data "$d/test-images.npy" --labels "$d/test-labels.npy" \
           --weights "$tmp/killed.st" >/dev/null 2>&1; then
        good=$((good + 1))
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
good=0
for sig in TERM HUP TERM HUP; do
    "$model" train --data "$d/test-images.npy" --labels "$d/test-labels.npy" --epochs 1000000 \
        --batch 1 --save "$tmp/killed.st" 2>/dev/null &
    pid=$!
    sleep 0.3
    kill -"$sig" "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    status=$?
    if [ "$status" -gt 128 ] && [ -z "$(find "$tmp" -maxdepth 1 -name '.killed.st.tmp-*')" ]; then
        good=$((good + 1))
    fi
done
if [ "$good" -eq 4 ]; then
    ok "SIGTERM, SIGHUP while saving: no temporary left"
else
    not_ok "SIGTERM, SIGHUP while saving: no temporary left ($good of 4)"
fi

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

# ---- gradcheck and bench ---------------------------------------------------------------
expect 0 "" "gradcheck" -- "$model" gradcheck --seed 2
expect 0 "" "bench" -- "$model" bench --steps 3
if grep -q 'ms/step.*images/s.*GFLOP/s.*peak RSS' "$tmp/out"; then ok "bench: its figures"; else not_ok "bench: its figures"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
