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
static void globalavgpool_forward(Emitter *e, const LayerCode *c)
{
    const Layer *l = c->l;
    int64_t h = l->in.h, w = l->in.w, ch = l->in.c, hw = h * w;
    emit(e, "/* y[n][%" PRId64 "] = the mean of x[n][%" PRId64 "][%" PRId64 "][%" PRId64
            "] over its %" PRId64 " pixels, per channel */", ch, h, w, ch, hw);
    emit_forward_begin(e, c);
    emit(e, "(void)ln;");
    emit_loop(e, c, "i", "n", 1);
    emit(e, "const real *restrict xi = x + (size_t)i * %" PRId64 ";", hw * ch);
    emit(e, "real *restrict yi = y + (size_t)i * %" PRId64 ";", ch);
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) yi[c] = 0;", ch);
    emit(e, "for (int p = 0; p < %" PRId64 "; p++)", hw);
    emit(e, "    for (int c = 0; c < %" PRId64 "; c++) yi[c] += xi[p * %" PRId64 " + c];", ch,
         ch);
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) yi[c] /= %" PRId64 ";", ch, hw);
    emit_loop_end(e, c);
    emit_function_end(e);
}

static void globalavgpool_backward(Emitter *e, const LayerCode *c)
{
    const Layer *l = c->l;
    int64_t h = l->in.h, w = l->in.w, ch = l->in.c, hw = h * w;
    emit(e, "/* dx[n][%" PRId64 "][%" PRId64 "][%" PRId64 "] %s dy[n][%" PRId64
            "] / %" PRId64 " at every pixel */", h, w, ch, dx_op(c, 0), ch, hw);
    emit_backward_begin(e, c);
    emit(e, "(void)ln;");
    emit(e, "(void)x;");
    emit(e, "(void)y;");
    emit_loop(e, c, "i", "n", 1);
    emit(e, "const real *restrict dyi = dy + (size_t)i * %" PRId64 ";", ch);
    emit(e, "real *restrict dxi = dx + (size_t)i * %" PRId64 ";", hw * ch);
    emit(e, "for (int p = 0; p < %" PRId64 "; p++)", hw);
    emit(e, "    for (int c = 0; c < %" PRId64 "; c++) dxi[p * %" PRId64 " + c] %s dyi[c] / %"
            PRId64 ";", ch, ch, dx_op(c, 0), hw);
    emit_loop_end(e, c);
    emit_function_end(e);
}

const LayerKind layer_globalavgpool = {
    .name = "GlobalAvgPool",
    .auto_prefix = "globalavgpool",
    .on_vector_hint = "remove this GlobalAvgPool: its input is already a vector",
    .infer = globalavgpool_infer,
    .flops = layer_no_flops,
    .emit_forward = globalavgpool_forward,
    .emit_backward = globalavgpool_backward,
    .ref_forward = globalavgpool_forward,
    .ref_backward = globalavgpool_backward,
};
