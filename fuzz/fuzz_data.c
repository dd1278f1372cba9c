/* fuzz_data.c: libFuzzer target for fitting data files to a model (data.c).
 *
 * One input is a model and one or two files, laid out as
 *
 *   byte 0      flags: 1 a labels file is given, 2 labels are required,
 *               4 the loss is mse (else cross_entropy), 8 a double
 *               trainer (else float), 16 a vector input (else a map),
 *               32 the model trains from bytes (train_step_bytes)
 *   bytes 1-3   H, W, C of the input map (0 counts as 1); a vector
 *               input has H*W*C features
 *   byte 4      the model's outputs (0 counts as 1)
 *   bytes 5-6   the inputs file's length, little-endian (cut to what is
 *               left)
 *   then        the inputs file, and the labels file: the rest
 *
 * rt_data_fit parses and checks them as rt_data_load does once the files
 * are open. When it accepts them, the arrays must lie inside their files,
 * and converting samples (rt_data_inputs, rt_data_input_bytes,
 * rt_data_targets) must give finite inputs and labels within the classes.
 *
 *   make fuzz FUZZ_SECONDS=600      (fuzz/README.md)
 */
#include "fuzz.h"

#include <math.h>

enum {
    HAS_LABELS = 1, NEED_LABELS = 2, MSE = 4, DOUBLE = 8, VECTOR = 16, BYTES = 32,
    HEADER = 7
};

/* Never called: rt_data_bytes only asks whether the model has it. */
static double no_step(cnnrt_ctx *ctx, int n, const uint8_t *x, const int32_t *labels,
                      const void *targets)
{
    (void)ctx, (void)n, (void)x, (void)labels, (void)targets;
    abort();
}

static int64_t at_least_1(uint8_t b)
{
    return b ? b : 1;
}

static cnnrt_model model_of(const uint8_t *h)
{
    int64_t hh = at_least_1(h[1]), w = at_least_1(h[2]), c = at_least_1(h[3]);
    cnnrt_model m = {
        .abi_version = CNNRT_ABI_VERSION, .name = "fuzz",
        .real_size = h[0] & DOUBLE ? 8 : 4,
        .input_rank = h[0] & VECTOR ? 1 : 3,
        .input_shape = {hh, w, c}, .input_size = hh * w * c,
        .outputs = at_least_1(h[4]),
        .loss_kind = h[0] & MSE ? CNNRT_MSE : CNNRT_CROSS_ENTROPY,
        .max_batch = 4,
        .train_step_bytes = h[0] & BYTES ? no_step : NULL,
    };
    if (m.input_rank == 1) {
        m.input_shape[0] = m.input_size;
        m.input_shape[1] = m.input_shape[2] = 0;
    }
    return m;
}

/* Samples 0, 1, n/2 and n-1 converted as a training step would. */
static void convert_samples(const rt_data *d, const cnnrt_model *m)
{
    int64_t idx[4] = {0, d->n > 1 ? 1 : 0, d->n / 2, d->n - 1};
    int n = 4;
    size_t row = (size_t)m->input_size;
    void *x = malloc(n * row * (size_t)m->real_size);
    uint8_t *bytes = malloc(n * row);
    int32_t labels[4];
    void *targets = malloc(n * (size_t)m->outputs * (size_t)m->real_size);
    if (!x || !bytes || !targets)
        fuzz_fail("out of memory");

    rt_data_inputs(d, m, idx, n, x, NULL);
    for (size_t i = 0; i < n * row; i++) {
        double v = rt_get(m->real_size, x, (int64_t)i);
        if (!isfinite(v) || (d->x.dtype == RT_U8 && (v < 0 || v > 1)))
            fuzz_fail("rt_data_inputs gave a non-finite input, or a byte outside [0, 1]");
    }
    if (rt_data_bytes(d, m))
        rt_data_input_bytes(d, m, idx, n, bytes, NULL);
    if (d->has_y) {
        rt_data_targets(d, m, idx, n, labels, m->loss_kind == CNNRT_MSE ? targets : NULL);
        for (int i = 0; i < n && d->y_is_labels; i++)
            if (labels[i] < 0 || labels[i] >= m->outputs)
                fuzz_fail("rt_data_targets gave a label outside the model's classes");
        for (int64_t i = 0; m->loss_kind == CNNRT_MSE && i < n * m->outputs; i++)
            if (!isfinite(rt_get(m->real_size, targets, i)))
                fuzz_fail("rt_data_targets gave a non-finite target");
    }
    free(x);
    free(bytes);
    free(targets);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HEADER)
        return 0;
    cnnrt_model m = model_of(data);
    size_t rest = size - HEADER;
    size_t xlen = (size_t)(data[5] | data[6] << 8);
    if (xlen > rest)
        xlen = rest;
    size_t ylen = rest - xlen;
    /* rt_file_open refuses empty files: an empty one is not given. */
    if (xlen == 0 || ((data[0] & HAS_LABELS) && ylen == 0))
        return 0;

    rt_data d;
    memset(&d, 0, sizeof d);
    d.xf = fuzz_file("x.bin", data + HEADER, xlen);
    if (data[0] & HAS_LABELS)
        d.yf = fuzz_file("y.bin", data + HEADER + xlen, ylen);
    fuzz_clear_error();
    int rc = rt_data_fit(&d, &m, data[0] & NEED_LABELS);
    if (rc != 0) {
        fuzz_check_failed();
        if (rc == -2 && (d.has_y || !(data[0] & NEED_LABELS)))
            fuzz_fail("rt_data_fit said labels were missing where they were not");
        return 0;
    }
    if (d.n != d.x.n || (d.has_y && d.y.n != d.n))
        fuzz_fail("rt_data_fit: the sample counts of inputs and labels differ");
    fuzz_check_array(&d.xf, &d.x);
    if (d.has_y)
        fuzz_check_array(d.yf.size ? &d.yf : &d.xf, &d.y);
    convert_samples(&d, &m);
    return 0;
}
