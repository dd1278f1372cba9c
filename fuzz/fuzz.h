/* fuzz.h: what the runtime's fuzz targets share.
 *
 * A target is fuzz/fuzz_NAME.c defining LLVMFuzzerTestOneInput; it is built
 * with libFuzzer for `make fuzz` and with fuzz/replay.c for `make check`,
 * which runs it over its seed corpus fuzz/corpus/NAME (see fuzz/README.md).
 * A target that finds the runtime breaking a promise aborts, so that the
 * fuzzer keeps the input as a crash.
 */
#ifndef CNNC_FUZZ_H
#define CNNC_FUZZ_H

#include "rt.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stops the run: the runtime broke a promise that the message names. */
static inline void fuzz_fail(const char *what)
{
    fprintf(stderr, "fuzz: %s\n", what);
    abort();
}

/* The bytes as a file that rt_file_open has opened. Built directly rather
 * than through rt_file_open, so that it works whether rt_file maps or reads
 * its file; never given to rt_file_close, as the bytes are the caller's.
 * (void *): the bytes go in whether rt_file's pointer is const or not. */
static inline rt_file fuzz_file(const char *path, const uint8_t *data, size_t size)
{
    return (rt_file){.path = path, .data = (void *)data, .size = size};
}

/* Clears the recorded error, so that fuzz_check_failed can tell a failure
 * that said why from one that did not. */
static inline void fuzz_clear_error(void)
{
    rt_error("%s", "");
}

/* A function returned failure: it must have said why. */
static inline void fuzz_check_failed(void)
{
    if (rt_errmsg()[0] == '\0')
        fuzz_fail("a failure recorded no message");
}

/* What a parsed array promises: a consistent shape, and n samples of row
 * elements each, stride bytes apart, inside the file. Reads every byte of
 * them, so that AddressSanitizer sees any that is not. */
static inline void fuzz_check_array(const rt_file *f, const rt_array *a)
{
    if (a->rank < 1 || a->rank > RT_MAX_RANK || a->n < 1 || a->dims[0] != a->n)
        fuzz_fail("array: rank or sample count out of range");
    uint64_t row = 1;
    for (int i = 1; i < a->rank; i++)
        if (a->dims[i] < 0 || !rt_mul_ok(row, (uint64_t)a->dims[i], &row))
            fuzz_fail("array: a negative dimension, or the sample size overflows");
    if (row != (uint64_t)a->row)
        fuzz_fail("array: row is not the product of the sample's dimensions");
    if (a->row < 1)
        fuzz_fail("array: samples of no elements (N of them would fit any file)");
    uint64_t sample = (uint64_t)a->row * (uint64_t)rt_dtype_size(a->dtype), end;
    if (sample > a->stride)
        fuzz_fail("array: samples overlap (stride below the sample's bytes)");
    if (a->base < f->data || (size_t)(a->base - f->data) > f->size ||
        !rt_mul_ok((uint64_t)(a->n - 1), a->stride, &end) || !rt_add_ok(end, sample, &end) ||
        end > f->size - (size_t)(a->base - f->data))
        fuzz_fail("array: the samples run outside the file");
    unsigned sum = 0;
    for (int64_t i = 0; i < a->n; i++)
        for (uint64_t j = 0; j < sample; j++)
            sum += a->base[(size_t)i * a->stride + j];
    /* Keeps the reads from being optimized away. */
    volatile unsigned sink = sum;
    (void)sink;
    char dims[256], tiny[8];
    rt_dims_str(a, dims, sizeof dims);
    rt_dims_str(a, tiny, sizeof tiny);
}

#endif /* CNNC_FUZZ_H */
