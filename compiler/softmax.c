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
 * is emitted. */
static void softmax_emit(Emitter *e, const LayerCode *c)
{
    int64_t k = shape_elems(c->l->out);
    emit(e, "/* y[n][%" PRId64 "] = exp(x - max x) / sum of exp(x - max x), per sample */", k);
    emit_forward_begin(e, c);
    emit(e, "(void)ctx;");
    emit(e, "PARALLEL_FOR");
    emit(e, "for (int i = 0; i < n; i++) {");
    emit(e, "const real *restrict xi = x + (size_t)i * %" PRId64 ";", k);
    emit(e, "real *restrict yi = y + (size_t)i * %" PRId64 ";", k);
    emit(e, "real max = xi[0], sum = 0;");
    emit(e, "for (int j = 1; j < %" PRId64 "; j++) max = xi[j] > max ? xi[j] : max;", k);
    emit(e, "for (int j = 0; j < %" PRId64 "; j++) sum += yi[j] = EXP(xi[j] - max);", k);
    emit(e, "for (int j = 0; j < %" PRId64 "; j++) yi[j] /= sum;", k);
    emit(e, "}");
    emit(e, "}");
    emit_blank(e);
    if (c->fused_into_loss) {
        emit_comment(e, "backward: fused with cross-entropy in loss_all, dL/dx = (y - onehot)/n");
        return;
    }
    if (!c->need_dx) {
        emit_backward_nothing(e, c);
        return;
    }
    emit(e, "/* dx[n][%" PRId64 "] = y * (dy - sum of y*dy), per sample (loss=mse only) */", k);
    emit_backward_begin(e, c);
    emit(e, "(void)ctx;");
    emit(e, "(void)x;");
    emit(e, "PARALLEL_FOR");
    emit(e, "for (int i = 0; i < n; i++) {");
    emit(e, "const real *restrict yi = y + (size_t)i * %" PRId64 ";", k);
    emit(e, "const real *restrict dyi = dy + (size_t)i * %" PRId64 ";", k);
    emit(e, "real *restrict dxi = dx + (size_t)i * %" PRId64 ";", k);
    emit(e, "real dot = 0;");
    emit(e, "for (int j = 0; j < %" PRId64 "; j++) dot += yi[j] * dyi[j];", k);
    emit(e, "for (int j = 0; j < %" PRId64 "; j++) dxi[j] = yi[j] * (dyi[j] - dot);", k);
    emit(e, "}");
    emit(e, "}");
}

const LayerKind layer_softmax = {
    .name = "Softmax",
    .auto_prefix = "softmax",
    .must_be_last = true,
    .infer = softmax_infer,
    .flops = layer_no_flops,
    .emit = softmax_emit,
};
