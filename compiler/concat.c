/* concat.c: Concat, tensors joined along their channels (maps of one
 * height and width) or their features (vectors): Inception's branches,
 * DenseNet's growth.
 *
 *   Concat(a, b, ...): HxWxC1, HxWxC2, ... -> HxWx(C1 + C2 + ...);
 *                      F1, F2, ... -> F1 + F2 + ...; no parameters
 * Its inputs are named by label, in order (check.c resolves them). Maps are
 * NHWC, so each pixel's channels are the inputs' channels one after
 * another: y[i][p][off_k + c] = xk[i][p][c]. */
#include "cnnc.h"

#include <inttypes.h>

/* The inputs' ranks and sides agree; the channels (features) add up. */
static bool concat_infer(Layer *l, Diag *d)
{
    char first[64], other[64];
    int64_t channels = 0;
    for (int k = 0; k < l->ninputs; k++) {
        const Shape *a = &l->ins[0], *b = &l->ins[k];
        if (b->rank != a->rank || (a->rank == 3 && (b->h != a->h || b->w != a->w))) {
            diag_error(d, l->ins_loc[k], "Concat needs %s, but %s (line %d) gives %s and %s "
                       "(line %d) gives %s",
                       a->rank != b->rank ? "all maps or all vectors"
                                          : "maps of one height and width",
                       l->ins_label[0], l->ins_line[0], shape_str(*a, first, sizeof first),
                       l->ins_label[k], l->ins_line[k], shape_str(*b, other, sizeof other));
            return false;
        }
        channels += b->c;   /* each at most CNNC_MAX_ELEMS, at most 16 of them */
    }
    l->out = l->ins[0].rank == 3 ? shape_map(l->ins[0].h, l->ins[0].w, channels)
                                 : shape_vector(channels);
    return true;
}

/* The pixels of a sample: H*W for maps, 1 for vectors. */
static int64_t concat_pixels(const Layer *l)
{
    return l->out.h * l->out.w;
}

/* For each sample and pixel, the inputs' channels one after another. */
static void concat_forward(Emitter *e, const LayerCode *c)
{
    const Layer *l = c->l;
    int64_t px = concat_pixels(l), co = l->out.c;
    emit(e, "/* y[n][%" PRId64 "][%" PRId64 "]: each pixel's channels, those of x0..x%d in "
            "turn */", px, co, c->ninputs - 1);
    emit_forward_begin(e, c);
    emit(e, "(void)ln;");
    emit_loop(e, c, "i", "n", 1);
    emit_for(e, "p", px);
    emit(e, "real *yp = y + ((size_t)i * %" PRId64 " + p) * %" PRId64 ";", px, co);
    int64_t off = 0;
    for (int k = 0; k < c->ninputs; k++) {
        int64_t ck = l->ins[k].c;
        emit(e, "memcpy(yp + %" PRId64 ", x%d + ((size_t)i * %" PRId64 " + p) * %" PRId64
                ", sizeof(real) * %" PRId64 ");", off, k, px, ck, ck);
        off += ck;
    }
    emit(e, "}");
    emit_loop_end(e, c);
    emit_function_end(e);
}

/* Each input's gradient is its slice of dy's channels. */
static void concat_backward(Emitter *e, const LayerCode *c)
{
    const Layer *l = c->l;
    int64_t px = concat_pixels(l), co = l->out.c;
    emit(e, "/* dxk: xk's slice of each pixel's channels of dy[n][%" PRId64 "][%" PRId64 "] */",
         px, co);
    emit_backward_begin(e, c);
    emit(e, "(void)ln, (void)y;");
    for (int k = 0; k < c->ninputs; k++) {
        emit(e, "(void)x%d;", k);
        if (!c->need_dx[k])
            emit(e, "(void)dx%d;", k);
    }
    emit_loop(e, c, "i", "n", 1);
    emit_for(e, "p", px);
    emit(e, "const real *dyp = dy + ((size_t)i * %" PRId64 " + p) * %" PRId64 ";", px, co);
    int64_t off = 0;
    for (int k = 0; k < c->ninputs; k++) {
        int64_t ck = l->ins[k].c;
        if (c->need_dx[k]) {
            emit(e, "real *dxp%d = dx%d + ((size_t)i * %" PRId64 " + p) * %" PRId64 ";", k, k,
                 px, ck);
            if (c->dx_add[k])
                emit(e, "for (int c = 0; c < %" PRId64 "; c++) dxp%d[c] += dyp[%" PRId64
                        " + c];", ck, k, off);
            else
                emit(e, "memcpy(dxp%d, dyp + %" PRId64 ", sizeof(real) * %" PRId64 ");", k,
                     off, ck);
        }
        off += ck;
    }
    emit(e, "}");
    emit_loop_end(e, c);
    emit_function_end(e);
}

const LayerKind layer_concat = {
    .name = "Concat",
    .auto_prefix = "concat",
    .merge = true,
    .ignores_own_output = true,
    .needs_no_input = true,
    .infer = concat_infer,
    .flops = layer_no_flops,
    .emit_forward = concat_forward,
    .emit_backward = concat_backward,
    .ref_forward = concat_forward,
    .ref_backward = concat_backward,
};
