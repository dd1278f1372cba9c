/* pool.c: MaxPool and AvgPool, which share their schema and window rule.
 *
 *   in HxWxC -> out OHxOWxC, no parameters
 *   stride defaults to the window (PyTorch's MaxPool2d); padding is valid or
 *   explicit (P or PHxPW), at most half the window as PyTorch requires, so
 *   that no window sees mostly padding. AvgPool never counts padding into
 *   the mean (PyTorch's count_include_pad=False).
 *
 * Positional form: MaxPool(KHxKW, S) = size, stride; e.g. MaxPool(3x3, stride=2). */
#include "tiles.h"

#include <inttypes.h>
#include <string.h>

enum { POOL_SIZE, POOL_STRIDE, POOL_PADDING, POOL_NARGS };

static const ArgSpec pool_args[POOL_NARGS] = {
    [POOL_SIZE] = {.key = "size", .type = ARG_SIZE2, .required = true, .position = 0,
                   .imin = 1, .imax = CNNC_MAX_ELEMS, .doc = "the window's size, e.g. 2x2"},
    [POOL_STRIDE] = {.key = "stride", .type = ARG_SIZE2, .position = 1, .imin = 1,
                     .imax = CNNC_MAX_ELEMS, .doc = "step of the window (the window's size)"},
    [POOL_PADDING] = {.key = "padding", .type = ARG_PADDING, .position = -1, .imin = 0,
                      .imax = CNNC_MAX_ELEMS, .doc = "valid, P or PHxPW"},
};

static void pool_defaults(ArgVal *a)
{
    if (!a[POOL_STRIDE].given)
        a[POOL_STRIDE].u.size = a[POOL_SIZE].u.size;
    if (!a[POOL_PADDING].given)
        a[POOL_PADDING].u.pad = (Pad){.mode = PAD_VALID};
}

/* valid or explicit, each side at most half the window (PyTorch's rule). */
static bool pool_padding_ok(const Layer *l, Diag *d)
{
    const ArgVal *a = l->args;
    const Pad *p = &a[POOL_PADDING].u.pad;
    int64_t kh = a[POOL_SIZE].u.size.h, kw = a[POOL_SIZE].u.size.w;
    if (p->mode == PAD_SAME) {
        diag_error(d, a[POOL_PADDING].loc, "%s takes padding=valid or explicit padding, not same",
                   l->kind->name);
        diag_hint(d, "write the padding as a number, e.g. padding=%" PRId64, kh / 2);
        return false;
    }
    if (p->mode == PAD_EXPLICIT && (2 * p->top > kh || 2 * p->left > kw)) {
        diag_error(d, a[POOL_PADDING].loc,
                   "padding %" PRId64 "x%" PRId64 " is more than half the %" PRId64 "x%" PRId64
                   " window",
                   p->top, p->left, kh, kw);
        diag_hint(d, "as in PyTorch, at most %" PRId64 "x%" PRId64 " here", kh / 2, kw / 2);
        return false;
    }
    return true;
}

/* HxWxC -> OHxOWxC. */
static bool pool_infer(Layer *l, Diag *d)
{
    ArgVal *a = l->args;
    if (!layer_need_map(l, NULL, d))
        return false;
    pool_defaults(a);
    if (!pool_padding_ok(l, d))
        return false;
    Window w = {.what = "window", .loc = a[POOL_SIZE].loc,
                .kh = a[POOL_SIZE].u.size.h, .kw = a[POOL_SIZE].u.size.w,
                .sh = a[POOL_STRIDE].u.size.h, .sw = a[POOL_STRIDE].u.size.w,
                .pad = a[POOL_PADDING].u.pad};
    int64_t oh, ow;
    if (!window_rule(l, &w, &oh, &ow, d))
        return false;
    a[POOL_PADDING].u.pad = w.pad;
    l->out = shape_map(oh, ow, l->in.c);
    return true;
}

/* Comparisons and sums only: no multiply-adds. */
static double pool_flops(const Layer *l)
{
    (void)l;
    return 0.0;
}

/* ------------------------------------------------------------------------
 * The two tiers (the fast one in tiles_pool.c)
 */

/* The layer's numbers, as both tiers take them. */
static PoolGeom pool_geom(const Layer *l)
{
    const ArgVal *a = l->args;
    const Pad *p = &a[POOL_PADDING].u.pad;
    PoolGeom g = {.h = l->in.h, .w = l->in.w, .c = l->in.c, .oh = l->out.h, .ow = l->out.w,
                  .kh = a[POOL_SIZE].u.size.h, .kw = a[POOL_SIZE].u.size.w,
                  .sh = a[POOL_STRIDE].u.size.h, .sw = a[POOL_STRIDE].u.size.w,
                  .pt = p->top, .pl = p->left};
    /* Windows reach past the bottom/right edge only through padding there. */
    g.padded = p->top > 0 || p->left > 0 || (g.oh - 1) * g.sh + g.kh - g.pt > g.h ||
               (g.ow - 1) * g.sw + g.kw - g.pl > g.w;
    return g;
}

/* MaxPool keeps, per output element, the index of the input element (within
 * its sample) that won: int32 at the batch. */
static int64_t maxpool_scratch_bytes(const Layer *l, int64_t batch, int64_t lane_samples,
                                     int64_t real_size)
{
    (void)lane_samples;
    (void)real_size;
    return batch * shape_elems(l->out) * (int64_t)sizeof(int32_t);
}

static void maxpool_forward(Emitter *e, const LayerCode *c)
{
    PoolGeom g = pool_geom(c->l);
    tiles_maxpool_forward(e, c, &g);
}

static void maxpool_backward(Emitter *e, const LayerCode *c)
{
    PoolGeom g = pool_geom(c->l);
    tiles_maxpool_backward(e, c, &g);
}

static void avgpool_forward(Emitter *e, const LayerCode *c)
{
    PoolGeom g = pool_geom(c->l);
    tiles_avgpool_forward(e, c, &g);
}

static void avgpool_backward(Emitter *e, const LayerCode *c)
{
    PoolGeom g = pool_geom(c->l);
    tiles_avgpool_backward(e, c, &g);
}

/* ------------------------------------------------------------------------
 * The reference tier: each window as the math has it
 *
 * Output pixel (oy, ox) of channel c looks at the taps (ky, kx) of its
 * window, input row iy = oy*SH - PT + ky and column ix = ox*SW - PL + kx;
 * taps in the padding (outside the input) take no part.
 */

/* Opens the loops over samples, output pixels, channels and the window's
 * taps inside the input (six levels to close), with xi the sample's input
 * (when READS_X), o the output element and at the tap's input element (when
 * WANT_AT);
 * START declares the window's sums before its taps. */
static void pool_ref_windows(Emitter *e, const PoolGeom *g, bool reads_x, const char *start,
                             bool want_at)
{
    char iy[64], ix[64];
    emit(e, "for (int i = 0; i < n; i++) {");
    if (reads_x)
        emit(e, "const real *xi = x + (size_t)i * %" PRId64 ";", pool_in_elems(g));
    emit_for(e, "oy", g->oh);
    emit_for(e, "ox", g->ow);
    emit_for(e, "c", g->c);
    emit(e, "const size_t o = (size_t)i * %" PRId64 " + (oy * %" PRId64 " + ox) * %" PRId64
            " + c;", pool_out_elems(g), g->ow, g->c);
    for (const char *p = start; *p;) {
        size_t len = strcspn(p, "\n");
        emit(e, "%.*s", (int)len, p);
        p += len + (p[len] == '\n');
    }
    emit_for(e, "ky", g->kh);
    emit_for(e, "kx", g->kw);
    if (want_at || g->padded)
        emit(e, "const int iy = %s + ky, ix = %s + kx;",
             pool_window_start(iy, sizeof iy, "oy", g->sh, g->pt),
             pool_window_start(ix, sizeof ix, "ox", g->sw, g->pl));
    if (g->padded)
        emit(e, "if (iy < 0 || iy >= %" PRId64 " || ix < 0 || ix >= %" PRId64 ") continue;",
             g->h, g->w);
    if (want_at)
        emit(e, "const int at = (iy * %" PRId64 " + ix) * %" PRId64 " + c;", g->w, g->c);
}

/* Closes the loops of pool_ref_windows: the taps', then the rest. */
static void pool_ref_close_taps(Emitter *e)
{
    emit(e, "}");
    emit(e, "}");
}

static void pool_ref_close_pixels(Emitter *e)
{
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
}

/* MaxPool: y = the largest tap of the window (the first of equal ones);
 * backward sends dy to that tap, found again. */
static void maxpool_ref_forward(Emitter *e, const LayerCode *c)
{
    PoolGeom g = pool_geom(c->l);
    char in[96], out[96];
    emit(e, "/* %s = the max of each %" PRId64 "x%" PRId64 " window of %s at stride %" PRId64
            "x%" PRId64 ", the first of equal values winning%s */",
         pool_dims4(out, sizeof out, "y", g.oh, g.ow, g.c), g.kh, g.kw,
         pool_dims4(in, sizeof in, "x", g.h, g.w, g.c), g.sh, g.sw,
         g.padded ? "; the padding never wins" : "");
    emit_forward_begin(e, c);
    emit(e, "(void)ln;");
    pool_ref_windows(e, &g, true, "real best = 0;\nint found = 0;", true);
    emit(e, "if (found == 0 || xi[at] > best) { best = xi[at]; found = 1; }");
    pool_ref_close_taps(e);
    emit(e, "y[o] = best;");
    pool_ref_close_pixels(e);
    emit_function_end(e);
}

static void maxpool_ref_backward(Emitter *e, const LayerCode *c)
{
    PoolGeom g = pool_geom(c->l);
    char in[96], out[96];
    emit(e, "/* %s += each of %s at the input element that won its window (found again) */",
         pool_dims4(in, sizeof in, "dx", g.h, g.w, g.c), pool_dims4(out, sizeof out, "dy", g.oh, g.ow, g.c));
    emit_backward_begin(e, c);
    emit_dx_clear(e, c);
    emit(e, "(void)ln;");
    emit(e, "(void)y;");
    pool_ref_windows(e, &g, true, "real best = 0;\nint arg = -1;", true);
    emit(e, "if (arg < 0 || xi[at] > best) { best = xi[at]; arg = at; }");
    pool_ref_close_taps(e);
    emit(e, "dx[(size_t)i * %" PRId64 " + arg] += dy[o];", pool_in_elems(&g));
    pool_ref_close_pixels(e);
    emit_function_end(e);
}

/* AvgPool: y = the mean of the window's taps inside the input; backward
 * spreads dy evenly over them. */
static void avgpool_ref_forward(Emitter *e, const LayerCode *c)
{
    PoolGeom g = pool_geom(c->l);
    char in[96], out[96];
    emit(e, "/* %s = the mean of each %" PRId64 "x%" PRId64 " window of %s at stride %" PRId64
            "x%" PRId64 "%s */", pool_dims4(out, sizeof out, "y", g.oh, g.ow, g.c), g.kh, g.kw,
         pool_dims4(in, sizeof in, "x", g.h, g.w, g.c), g.sh, g.sw,
         g.padded ? ", over its elements inside the input" : "");
    emit_forward_begin(e, c);
    emit(e, "(void)ln;");
    pool_ref_windows(e, &g, true, "real sum = 0;\nint count = 0;", true);
    emit(e, "sum += xi[at];");
    emit(e, "count++;");
    pool_ref_close_taps(e);
    emit(e, "y[o] = sum / count;");
    pool_ref_close_pixels(e);
    emit_function_end(e);
}

static void avgpool_ref_backward(Emitter *e, const LayerCode *c)
{
    PoolGeom g = pool_geom(c->l);
    char in[96], out[96];
    emit(e, "/* %s += each of %s spread evenly over its window's elements */",
         pool_dims4(in, sizeof in, "dx", g.h, g.w, g.c), pool_dims4(out, sizeof out, "dy", g.oh, g.ow, g.c));
    emit_backward_begin(e, c);
    emit_dx_clear(e, c);
    emit(e, "(void)ln;");
    emit(e, "(void)y;");
    emit(e, "(void)x;");
    emit_comment(e, "first the window's size (its taps inside the input), then the spread");
    pool_ref_windows(e, &g, false, "int count = 0;", false);
    emit(e, "count++;");
    pool_ref_close_taps(e);
    emit_for(e, "ky", g.kh);
    emit_for(e, "kx", g.kw);
    char iy[64], ix[64];
    emit(e, "const int iy = %s + ky, ix = %s + kx;", pool_window_start(iy, sizeof iy, "oy", g.sh, g.pt),
         pool_window_start(ix, sizeof ix, "ox", g.sw, g.pl));
    if (g.padded)
        emit(e, "if (iy < 0 || iy >= %" PRId64 " || ix < 0 || ix >= %" PRId64 ") continue;",
             g.h, g.w);
    emit(e, "dx[(size_t)i * %" PRId64 " + (iy * %" PRId64 " + ix) * %" PRId64 " + c] += dy[o] / "
            "count;", pool_in_elems(&g), g.w, g.c);
    pool_ref_close_taps(e);
    pool_ref_close_pixels(e);
    emit_function_end(e);
}

const LayerKind layer_maxpool = {
    .name = "MaxPool",
    .auto_prefix = "maxpool",
    .args = pool_args,
    .nargs = POOL_NARGS,
    .infer = pool_infer,
    .flops = pool_flops,
    .relu_backward = true,
    .sample_forward = true,
    .scratch_bytes = maxpool_scratch_bytes,
    .emit_forward = maxpool_forward,
    .emit_backward = maxpool_backward,
    .ref_forward = maxpool_ref_forward,
    .ref_backward = maxpool_ref_backward,
};

const LayerKind layer_avgpool = {
    .name = "AvgPool",
    .auto_prefix = "avgpool",
    .args = pool_args,
    .nargs = POOL_NARGS,
    .infer = pool_infer,
    .flops = pool_flops,
    .emit_forward = avgpool_forward,
    .emit_backward = avgpool_backward,
    .ref_forward = avgpool_ref_forward,
    .ref_backward = avgpool_ref_backward,
};
