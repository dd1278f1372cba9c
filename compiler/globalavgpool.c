/* globalavgpool.c: GlobalAvgPool, the mean of each channel over the map,
 * as Keras' GlobalAveragePooling2D (PyTorch: AdaptiveAvgPool2d(1) + flatten).
 *
 *   in HxWxC -> out C (a vector), no parameters, no arguments */
#include "cnnc.h"

#include <inttypes.h>

/* HxWxC -> C. */
static bool globalavgpool_infer(Layer *l, Diag *d)
{
    if (!layer_need_map(l, NULL, d))
        return false;
    l->out = shape_vector(l->in.c);
    return true;
}

/* y[i][c] = the mean of x[i][.][.][c]; summed over the pixels in order, with
 * the innermost loop over contiguous channels. */
static void globalavgpool_emit(Emitter *e, const LayerCode *c)
{
    const Layer *l = c->l;
    int64_t h = l->in.h, w = l->in.w, ch = l->in.c, hw = h * w;
    emit(e, "/* y[n][%" PRId64 "] = the mean of x[n][%" PRId64 "][%" PRId64 "][%" PRId64
            "] over its %" PRId64 " pixels, per channel */", ch, h, w, ch, hw);
    emit(e, "static void %s_forward(cnnrt_ctx *ctx, int n, const real *restrict x, "
            "real *restrict y)", c->name);
    emit(e, "{");
    emit(e, "(void)ctx;");
    emit(e, "PARALLEL_FOR");
    emit(e, "for (int i = 0; i < n; i++) {");
    emit(e, "const real *restrict xi = x + (size_t)i * %" PRId64 ";", hw * ch);
    emit(e, "real *restrict yi = y + (size_t)i * %" PRId64 ";", ch);
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) yi[c] = 0;", ch);
    emit(e, "for (int p = 0; p < %" PRId64 "; p++)", hw);
    emit(e, "    for (int c = 0; c < %" PRId64 "; c++) yi[c] += xi[p * %" PRId64 " + c];", ch,
         ch);
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) yi[c] /= %" PRId64 ";", ch, hw);
    emit(e, "}");
    emit(e, "}");
    emit_blank(e);
    if (c->need_dx)
        emit(e, "/* dx[n][%" PRId64 "][%" PRId64 "][%" PRId64 "] = dy[n][%" PRId64
                "] / %" PRId64 " at every pixel */", h, w, ch, ch, hw);
    else
        emit_comment(e, "no layer before it learns: nothing to do");
    emit(e, "static void %s_backward(cnnrt_ctx *ctx, int n, const real *restrict x, "
            "const real *restrict y, const real *restrict dy, real *restrict dx)", c->name);
    emit(e, "{");
    emit(e, "(void)ctx;");
    emit(e, "(void)x;");
    emit(e, "(void)y;");
    if (c->need_dx) {
        emit(e, "PARALLEL_FOR");
        emit(e, "for (int i = 0; i < n; i++) {");
        emit(e, "const real *restrict dyi = dy + (size_t)i * %" PRId64 ";", ch);
        emit(e, "real *restrict dxi = dx + (size_t)i * %" PRId64 ";", hw * ch);
        emit(e, "for (int p = 0; p < %" PRId64 "; p++)", hw);
        emit(e, "    for (int c = 0; c < %" PRId64 "; c++) dxi[p * %" PRId64
                " + c] = dyi[c] / %" PRId64 ";", ch, ch, hw);
        emit(e, "}");
    } else {
        emit(e, "(void)n;");
        emit(e, "(void)dy;");
        emit(e, "(void)dx;");
    }
    emit(e, "}");
}

const LayerKind layer_globalavgpool = {
    .name = "GlobalAvgPool",
    .auto_prefix = "globalavgpool",
    .args = NULL,
    .nargs = 0,
    .infer = globalavgpool_infer,
    .flops = layer_no_flops,
    .emit = globalavgpool_emit,
};
