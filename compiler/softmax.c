/* softmax.c: Softmax over a vector, the last layer only (the checker
 * enforces must_be_last; with loss=cross_entropy the trainer fuses it with
 * the loss).
 *
 *   in F -> out F, no parameters, no arguments */
#include "cnnc.h"

#include <inttypes.h>

/* F -> F. */
static bool softmax_infer(Layer *l, Diag *d)
{
    if (!layer_need_vector(l, "insert Flatten or GlobalAvgPool before it", d))
        return false;
    l->out = l->in;
    return true;
}

/* Forward subtracts each row's max before exp, so no exp overflows. Backward
 * is the Jacobian-vector product of softmax; with loss=cross_entropy the
 * trainer's loss gives the gradient of the logits directly, and no backward
 * is emitted. One sample per loop item in both tiers: a row is short. */
static void softmax_forward(Emitter *e, const LayerCode *c)
{
    int64_t k = shape_elems(c->l->out);
    emit(e, "/* y[n][%" PRId64 "] = exp(x - max x) / sum of exp(x - max x), per sample */", k);
    emit_forward_begin(e, c);
    emit(e, "(void)ln;");
    emit_loop(e, c, "i", "n", 1);
    emit(e, "const real *restrict xi = x + (size_t)i * %" PRId64 ";", k);
    emit(e, "real *restrict yi = y + (size_t)i * %" PRId64 ";", k);
    emit(e, "real max = xi[0], sum = 0;");
    emit(e, "for (int j = 1; j < %" PRId64 "; j++) max = xi[j] > max ? xi[j] : max;", k);
    emit(e, "for (int j = 0; j < %" PRId64 "; j++) sum += yi[j] = EXP(xi[j] - max);", k);
    emit(e, "for (int j = 0; j < %" PRId64 "; j++) yi[j] /= sum;", k);
    emit_loop_end(e, c);
    emit_function_end(e);
}

/* dx = y * (dy - sum of y*dy): only under loss=mse. */
static void softmax_backward(Emitter *e, const LayerCode *c)
{
    int64_t k = shape_elems(c->l->out);
    emit(e, "/* dx[n][%" PRId64 "] %s y * (dy - sum of y*dy), per sample (loss=mse only) */", k,
         dx_op(c, 0));
    emit_backward_begin(e, c);
    emit(e, "(void)ln;");
    emit(e, "(void)x;");
    emit_loop(e, c, "i", "n", 1);
    emit(e, "const real *restrict yi = y + (size_t)i * %" PRId64 ";", k);
    emit(e, "const real *restrict dyi = dy + (size_t)i * %" PRId64 ";", k);
    emit(e, "real *restrict dxi = dx + (size_t)i * %" PRId64 ";", k);
    emit(e, "real dot = 0;");
    emit(e, "for (int j = 0; j < %" PRId64 "; j++) dot += yi[j] * dyi[j];", k);
    emit(e, "for (int j = 0; j < %" PRId64 "; j++) dxi[j] %s yi[j] * (dyi[j] - dot);", k,
         dx_op(c, 0));
    emit_loop_end(e, c);
    emit_function_end(e);
}

const LayerKind layer_softmax = {
    .name = "Softmax",
    .auto_prefix = "softmax",
    .must_be_last = true,
    .is_softmax = true,
    .infer = softmax_infer,
    .flops = layer_no_flops,
    .emit_forward = softmax_forward,
    .emit_backward = softmax_backward,
    .ref_forward = softmax_forward,
    .ref_backward = softmax_backward,
};
