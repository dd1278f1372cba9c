#!/bin/sh
# fuzz_corpus.sh: every fuzz target over its seed corpus, without libFuzzer.
#
# make check builds fuzz/replay_NAME from fuzz/fuzz_NAME.c and fuzz/replay.c
# for each NAME in FUZZ_TARGETS (Makefile.am), with the build's compiler and
# flags: so every target compiles wherever the tests run, and the inputs
# kept in fuzz/corpus/NAME (the crashes fuzzing found among them) run again
# under --enable-sanitizers. A target aborts where the runtime or the
# compiler breaks a promise. Exit status: 0 all passed, 1 some failed.

: "${RT_BUILDDIR:=.}" "${srcdir:=.}"
if [ -z "${FUZZ_TARGETS:-}" ]; then
    echo "FAIL: FUZZ_TARGETS is not set (make check sets it)"
    exit 1
fi
status=0
for t in $FUZZ_TARGETS; do
    corpus=$srcdir/fuzz/corpus/$t
    if [ -z "$(ls "$corpus" 2>/dev/null)" ]; then
        echo "FAIL: $t: no seed corpus in $corpus"
        status=1
    elif "$RT_BUILDDIR/fuzz/replay_$t" "$corpus"; then
        echo "PASS: $t"
    else
        echo "FAIL: $t: fuzz/replay_$t $corpus"
        status=1
    fi
done
exit $status
