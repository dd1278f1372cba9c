#!/bin/sh
# torch_compare.sh: generated trainers against PyTorch, step for step.
#
# Optional: skipped (exit 77) when no Python with torch and numpy is found
# ($PYTHON if set, then /usr/bin/python3, python3, python). Builds the
# trainers of tests/nets/torch_*.net in f64 and f32, then
# tests/torch_compare.py trains each a few steps from a random checkpoint
# with every optimizer and compares the saved parameters and optimizer state,
# eval and predict with the same model trained by PyTorch (float64).
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

py=
for p in ${PYTHON:-} /usr/bin/python3 python3 python; do
    if "$p" -c 'import torch, numpy' >/dev/null 2>&1; then
        py=$p
        break
    fi
done
if [ -z "$py" ]; then
    echo "SKIP: no Python with torch and numpy found (tried ${PYTHON:+$PYTHON, }/usr/bin/python3, python3, python; set PYTHON)"
    exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/cnnc-torch.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "== using $py: torch $("$py" -c 'import torch; print(torch.__version__)')"

# build NET PRECISION, in the background; a failure leaves no trainer, which
# the Python side reports as a failed case.
build() {
    name=$(basename "$1" .net)_$2
    if "$CNNC" --precision="$2" "$1" -o "$work/$name.c" 2>"$work/$name.cnnc.log"; then
        # shellcheck disable=SC2086
        if $CC $CFLAGS_T -I"$srcdir/runtime" "$work/$name.c" "$RT_BUILDDIR/libcnnrt.a" $CNNRT_LIBS \
                -o "$work/$name" 2>"$work/$name.cc.log"; then
            cat "$work/$name.cc.log" # the warnings, where they are not errors
        else
            echo "FAIL: build $name:"
            cat "$work/$name.cc.log"
        fi
    else
        echo "FAIL: cnnc $name:"
        cat "$work/$name.cnnc.log"
    fi
}
for net in "$srcdir"/tests/nets/torch_*.net; do
    for p in f64 f32; do
        build "$net" "$p" &
    done
done
wait

"$py" "$srcdir/tests/torch_compare.py" --bin "$work" --nets "$srcdir/tests/nets" \
    --cnnc-data "$RT_BUILDDIR/cnnc-data" --work "$work"
