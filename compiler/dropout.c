/* dropout.c: Dropout, inverted dropout as PyTorch's: while training, zero
 * each value with probability p and scale the rest by 1/(1-p); identity at
 * eval time.
 *
 *   in S -> out S (any shape), no parameters
 * Positional form: Dropout(p) = p, default 0.5. */
#include "cnnc.h"

#include <inttypes.h>

enum { DROPOUT_P, DROPOUT_NARGS };

static const ArgSpec dropout_args[DROPOUT_NARGS] = {
    [DROPOUT_P] = {.key = "p", .type = ARG_FLOAT, .position = 0, .fmin = 0, .fmax = 1,
                   .fmax_open = true, .doc = "probability of zeroing a value (0.5)"},
};

/* S -> S. */
static bool dropout_infer(Layer *l, Diag *d)
{
    (void)d;
    if (!l->args[DROPOUT_P].given)
        l->args[DROPOUT_P].u.f = 0.5;
    l->out = l->in;
    return true;
}

/* The mask of the last training forward: one real per value, at the batch. */
static int64_t dropout_scratch_bytes(const Layer *l, int64_t batch, int64_t lane_samples,
                                     int64_t real_size)
{
    (void)lane_samples;
    return batch * shape_elems(l->out) * real_size;
}

/* The mask of each sample is drawn from its own stream (cnnrt_sample_rng:
 * keyed by the call and the sample's place in the batch), one value after
 * another in element order, so that it depends on the seed alone, not on
 * micro-batches, lanes or threads; the samples run in parallel. The fast
 * tier keeps the mask for backward; the reference tier draws it again. */
static void dropout_forward(Emitter *e, const LayerCode *c)
{
    const char *L = c->name;
    int64_t count = shape_elems(c->l->out);
    double p = c->l->args[DROPOUT_P].u.f;
    bool fast = c->kernels == KERNELS_FAST;
    emit(e, "/* y[n][%" PRId64 "] = x[n][%" PRId64 "] * mask while training, mask[n][%" PRId64
            "] 0 with probability %.17g, else 1/(1 - %.17g); y = x otherwise */",
         count, count, count, p, p);
    emit_forward_begin(e, c);
    emit(e, "if (!ln->home->training) {");
    emit(e, "memcpy(y, x, sizeof(real) * (size_t)n * %" PRId64 ");", count);
    emit(e, "return;");
    emit(e, "}");
    if (fast)
        emit_local(e, "mask", "real *restrict mask = work(ln, %s_SCRATCH);", L);
    emit_local(e, "scale", "const real scale = 1 / (1 - (real)%.17g);", p);
    emit_loop(e, c, "i", "n", 1);
    emit(e, "cnnrt_rng r = cnnrt_sample_rng(ln, i);");
    emit(e, "for (size_t j = (size_t)i * %" PRId64 "; j < (size_t)(i + 1) * %" PRId64 "; j++) {",
         count, count);
    if (fast) {
        emit(e, "mask[j] = cnnrt_rng_uniformf(&r) >= %.17g ? scale : 0;", p);
        emit(e, "y[j] = x[j] * mask[j];");
    } else {
        emit(e, "y[j] = x[j] * (cnnrt_rng_uniformf(&r) >= %.17g ? scale : 0);", p);
    }
    emit(e, "}");
    emit_loop_end(e, c);
    emit_function_end(e);
}

static void dropout_backward(Emitter *e, const LayerCode *c)
{
    const char *L = c->name;
    int64_t count = shape_elems(c->l->out);
    double p = c->l->args[DROPOUT_P].u.f;
    emit(e, "/* dx[n][%" PRId64 "] %s dy[n][%" PRId64 "] * the mask of the last forward"
            " (only called while training) */", count, dx_op(c, 0), count);
    emit_backward_begin(e, c);
    emit(e, "(void)x;");
    emit(e, "(void)y;");
    if (c->kernels == KERNELS_FAST) {
        emit_local(e, "mask", "const real *restrict mask = work(ln, %s_SCRATCH);", L);
        char total[64];
        snprintf(total, sizeof total, "n * %" PRId64, count);
        emit_parallel(e, "j", total, 4096);
        emit(e, "dx[j] %s dy[j] * mask[j];", dx_op(c, 0));
        emit_parallel_end(e);
    } else {
        emit_comment(e, "the mask again: the same draws from the same streams");
        emit(e, "const real scale = 1 / (1 - (real)%.17g);", p);
        emit(e, "for (int i = 0; i < n; i++) {");
        emit(e, "cnnrt_rng r = cnnrt_sample_rng(ln, i);");
        emit(e, "for (size_t j = (size_t)i * %" PRId64 "; j < (size_t)(i + 1) * %" PRId64
                "; j++)", count, count);
        emit(e, "    dx[j] %s dy[j] * (cnnrt_rng_uniformf(&r) >= %.17g ? scale : 0);",
             dx_op(c, 0), p);
        emit(e, "}");
    }
    emit_function_end(e);
}

const LayerKind layer_dropout = {
    .name = "Dropout",
    .auto_prefix = "dropout",
    .args = dropout_args,
    .nargs = DROPOUT_NARGS,
    .infer = dropout_infer,
    .flops = layer_no_flops,
    .scratch_bytes = dropout_scratch_bytes,
    .emit_forward = dropout_forward,
    .emit_backward = dropout_backward,
    .ref_forward = dropout_forward,
    .ref_backward = dropout_backward,
};
