/* flatten.c: Flatten, a map seen as a vector.
 *
 *   in HxWxC -> out H*W*C, no parameters, no arguments.
 * The vector is numbered in PyTorch's flatten order, c*H*W + y*W + x, so
 * that a Dense after it has PyTorch's weight layout (checkpoints move
 * between the two unchanged): our maps are NHWC, so forward permutes each
 * sample HWC -> CHW and backward permutes the gradient back. When H*W or C
 * is 1 the two orders agree and the data are copied as they are. */
#include "cnnc.h"

#include <inttypes.h>

/* HxWxC -> H*W*C. */
static bool flatten_infer(Layer *l, Diag *d)
{
    if (l->in.rank == 1) {
        char buf[64];
        diag_error(d, l->loc, "Flatten needs an HxWxC map, but %s (line %d) already gives "
                              "a vector of %s",
                   l->in_from, l->in_line, shape_str(l->in, buf, sizeof buf));
        diag_hint(d, "remove this Flatten");
        return false;
    }
    l->out = shape_vector(shape_elems(l->in));
    return true;
}

/* y[i][c*HW + p] = x[i][p*C + c], p = y*W + x: read in memory order, write
 * with the stride HW. */
static void flatten_forward(Emitter *e, const LayerCode *c)
{
    const Layer *l = c->l;
    int64_t h = l->in.h, w = l->in.w, ch = l->in.c, hw = h * w, count = hw * ch;
    bool same_order = hw == 1 || ch == 1;
    emit(e, "/* y[n][%" PRId64 "] = x[n][%" PRId64 "][%" PRId64 "][%" PRId64 "]%s */", count, h,
         w, ch, same_order ? " as it is (HWC and CHW orders agree)"
                           : " in PyTorch's order: channel-major (CHW)");
    emit_forward_begin(e, c);
    emit(e, "(void)ln;");
    if (same_order) {
        emit(e, "memcpy(y, x, sizeof(real) * (size_t)n * %" PRId64 ");", count);
    } else {
        emit_loop(e, c, "i", "n", 1);
        emit(e, "const real *restrict xi = x + (size_t)i * %" PRId64 ";", count);
        emit(e, "real *restrict yi = y + (size_t)i * %" PRId64 ";", count);
        emit(e, "for (int p = 0; p < %" PRId64 "; p++)", hw);
        emit(e, "    for (int c = 0; c < %" PRId64 "; c++) yi[c * %" PRId64 " + p] = xi[p * %"
                PRId64 " + c];", ch, hw, ch);
        emit_loop_end(e, c);
    }
    emit_function_end(e);
}

static void flatten_backward(Emitter *e, const LayerCode *c)
{
    const Layer *l = c->l;
    int64_t h = l->in.h, w = l->in.w, ch = l->in.c, hw = h * w, count = hw * ch;
    bool same_order = hw == 1 || ch == 1;
    emit(e, "/* dx[n][%" PRId64 "][%" PRId64 "][%" PRId64 "] %s dy[n][%" PRId64 "]%s */", h, w,
         ch, dx_op(c, 0), count, same_order ? " as it is" : " back from CHW to HWC");
    emit_backward_begin(e, c);
    emit(e, "(void)ln;");
    emit(e, "(void)x;");
    emit(e, "(void)y;");
    if (same_order && !c->dx_add[0]) {
        emit(e, "memcpy(dx, dy, sizeof(real) * (size_t)n * %" PRId64 ");", count);
    } else {
        emit_loop(e, c, "i", "n", 1);
        emit(e, "const real *restrict dyi = dy + (size_t)i * %" PRId64 ";", count);
        emit(e, "real *restrict dxi = dx + (size_t)i * %" PRId64 ";", count);
        if (same_order) {
            emit(e, "for (int j = 0; j < %" PRId64 "; j++) dxi[j] += dyi[j];", count);
        } else {
            emit(e, "for (int p = 0; p < %" PRId64 "; p++)", hw);
            emit(e, "    for (int c = 0; c < %" PRId64 "; c++) dxi[p * %" PRId64 " + c] %s "
                    "dyi[c * %" PRId64 " + p];", ch, ch, dx_op(c, 0), hw);
        }
        emit_loop_end(e, c);
    }
    emit_function_end(e);
}

const LayerKind layer_flatten = {
    .name = "Flatten",
    .auto_prefix = "flatten",
    .infer = flatten_infer,
    .flops = layer_no_flops,
    .emit_forward = flatten_forward,
    .emit_backward = flatten_backward,
    .ref_forward = flatten_forward,
    .ref_backward = flatten_backward,
};
