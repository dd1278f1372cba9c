/* conv.c: Conv, a 2-D cross-correlation as PyTorch's Conv2d; and the
 * sliding-window rule that Conv and the pools share.
 *
 *   in HxWxC -> out OHxOWxn
 *   weight [n, C, KH, KW], bias [n]   (PyTorch's layout)
 *
 * Positional form: Conv(KHxKW, n) = kernel, n; the rest by key. */
#include "cnnc.h"

#include <inttypes.h>

enum { CONV_KERNEL, CONV_N, CONV_STRIDE, CONV_PADDING, CONV_BIAS, CONV_INIT, CONV_NARGS };

static const ArgSpec conv_args[CONV_NARGS] = {
    [CONV_KERNEL] = {.key = "kernel", .type = ARG_SIZE2, .required = true, .position = 0,
                     .imin = 1, .imax = CNNC_MAX_ELEMS, .doc = "the kernel's size, e.g. 3x3"},
    [CONV_N] = {.key = "n", .type = ARG_INT, .required = true, .position = 1, .imin = 1,
                .imax = CNNC_MAX_ELEMS, .doc = "output channels"},
    [CONV_STRIDE] = {.key = "stride", .type = ARG_SIZE2, .position = -1, .imin = 1,
                     .imax = CNNC_MAX_ELEMS, .doc = "step of the kernel, S or SHxSW"},
    [CONV_PADDING] = {.key = "padding", .type = ARG_PADDING, .position = -1, .imin = 0,
                      .imax = CNNC_MAX_ELEMS, .doc = "valid, same, P or PHxPW"},
    [CONV_BIAS] = {.key = "bias", .type = ARG_BOOL, .position = -1, .doc = "add a bias"},
    [CONV_INIT] = {.key = "init", .type = ARG_CHOICE, .position = -1, .choices = init_names,
                   .doc = "weight initializer"},
};

/* ------------------------------------------------------------------------
 * The window rule
 */

/* TensorFlow's same: out = ceil(in/s), and the padding that makes the
 * windows reach the end, split with the extra row at the bottom/right.
 *   in 5, k 2, s 2: out 3, total 1 -> before 0, after 1 */
static void same_split(int64_t in, int64_t k, int64_t s, int64_t *before, int64_t *after)
{
    int64_t out = (in + s - 1) / s;
    int64_t total = (out - 1) * s + k - in;
    if (total < 0)
        total = 0;
    *before = total / 2;
    *after = total - *before;
}

static const char *plural(int64_t n)
{
    return n == 1 ? "" : "s";
}

/* Darknet and PyTorch silently drop input rows that no window reaches;
 * say so, since it is usually a mistake in the stride or the window. */
static void warn_unused(const Layer *l, const Window *w, int64_t ph, int64_t pw, Diag *d)
{
    int64_t rows = (ph - w->kh) % w->sh, cols = (pw - w->kw) % w->sw;
    if (rows == 0 && cols == 0)
        return;
    char what[96];
    if (rows && cols)
        snprintf(what, sizeof what, "%" PRId64 " row%s and %" PRId64 " column%s", rows,
                 plural(rows), cols, plural(cols));
    else if (rows)
        snprintf(what, sizeof what, "%" PRId64 " row%s", rows, plural(rows));
    else
        snprintf(what, sizeof what, "%" PRId64 " column%s", cols, plural(cols));
    char stride[48];
    if (w->sh == w->sw)
        snprintf(stride, sizeof stride, "%" PRId64, w->sh);
    else
        snprintf(stride, sizeof stride, "%" PRId64 "x%" PRId64, w->sh, w->sw);
    char input[96];
    if (ph == l->in.h && pw == l->in.w)
        snprintf(input, sizeof input, "%" PRId64 "x%" PRId64 " input", ph, pw);
    else
        snprintf(input, sizeof input, "input padded to %" PRId64 "x%" PRId64, ph, pw);
    diag_warning(d, l->loc, "%s %s %" PRId64 "x%" PRId64 " at stride %s leaves the last %s of its %s unused",
                 l->kind->name, w->what, w->kh, w->kw, stride, what, input);
    if (rows)
        diag_hint(d, "%" PRId64 " - %" PRId64 " is not a multiple of the stride %" PRId64, ph,
                  w->kh, w->sh);
    else
        diag_hint(d, "%" PRId64 " - %" PRId64 " is not a multiple of the stride %" PRId64, pw,
                  w->kw, w->sw);
}

static void report_too_large(const Layer *l, const Window *w, int64_t ph, int64_t pw, Diag *d)
{
    if (ph == l->in.h && pw == l->in.w)
        diag_error(d, w->loc,
                   "%s %" PRId64 "x%" PRId64 " is larger than its %" PRId64 "x%" PRId64
                   " input (from %s, line %d): the output would be empty",
                   w->what, w->kh, w->kw, l->in.h, l->in.w, l->in_from, l->in_line);
    else
        diag_error(d, w->loc,
                   "%s %" PRId64 "x%" PRId64 " is larger than its %" PRId64 "x%" PRId64
                   " input padded to %" PRId64 "x%" PRId64 ": the output would be empty",
                   w->what, w->kh, w->kw, l->in.h, l->in.w, ph, pw);
}

bool window_rule(const Layer *l, Window *w, int64_t *oh, int64_t *ow, Diag *d)
{
    Pad *p = &w->pad;
    if (p->mode == PAD_VALID)
        p->top = p->bottom = p->left = p->right = 0;
    else if (p->mode == PAD_SAME) {
        same_split(l->in.h, w->kh, w->sh, &p->top, &p->bottom);
        same_split(l->in.w, w->kw, w->sw, &p->left, &p->right);
    }
    /* Each term is at most CNNC_MAX_ELEMS: no overflow. */
    int64_t ph = l->in.h + p->top + p->bottom, pw = l->in.w + p->left + p->right;
    if (ph < w->kh || pw < w->kw) {
        report_too_large(l, w, ph, pw, d);
        return false;
    }
    *oh = (ph - w->kh) / w->sh + 1;
    *ow = (pw - w->kw) / w->sw + 1;
    warn_unused(l, w, ph, pw, d);
    return true;
}

/* ------------------------------------------------------------------------
 * Conv
 */

/* a*b, or INT64_MAX when it overflows (layer_add_param then reports). */
static int64_t mul_sat(int64_t a, int64_t b)
{
    int64_t r;
    return mul_ok(a, b, &r) ? r : INT64_MAX;
}

static void conv_defaults(ArgVal *a)
{
    if (!a[CONV_STRIDE].given)
        a[CONV_STRIDE].u.size.h = a[CONV_STRIDE].u.size.w = 1;
    if (!a[CONV_PADDING].given)
        a[CONV_PADDING].u.pad = (Pad){.mode = PAD_VALID};
    if (!a[CONV_BIAS].given)
        a[CONV_BIAS].u.b = true;
}

/* HxWxC -> OHxOWxn; weight [n, C, KH, KW], bias [n]. */
static bool conv_infer(Layer *l, Diag *d)
{
    ArgVal *a = l->args;
    if (!layer_need_map(l, NULL, d))
        return false;
    conv_defaults(a);
    Window w = {.what = "kernel", .loc = a[CONV_KERNEL].loc,
                .kh = a[CONV_KERNEL].u.size.h, .kw = a[CONV_KERNEL].u.size.w,
                .sh = a[CONV_STRIDE].u.size.h, .sw = a[CONV_STRIDE].u.size.w,
                .pad = a[CONV_PADDING].u.pad};
    int64_t oh, ow;
    if (!window_rule(l, &w, &oh, &ow, d))
        return false;
    a[CONV_PADDING].u.pad = w.pad;
    int64_t n = a[CONV_N].u.i, c = l->in.c;
    l->out = shape_map(oh, ow, n);

    /* PyTorch's fans: fan_in = C*KH*KW, fan_out = n*KH*KW. */
    int64_t area = mul_sat(w.kh, w.kw);
    int64_t weight[4] = {n, c, w.kh, w.kw};
    if (!layer_add_param(l, "weight", 4, weight, mul_sat(c, area), mul_sat(n, area), d))
        return false;
    int64_t bias[1] = {n};
    if (a[CONV_BIAS].u.b && !layer_add_param(l, "bias", 1, bias, mul_sat(c, area),
                                             mul_sat(n, area), d))
        return false;
    return true;
}

/* One multiply-add per weight per output position. */
static double conv_flops(const Layer *l)
{
    const ArgVal *a = l->args;
    double per_out = (double)l->in.c * (double)a[CONV_KERNEL].u.size.h *
                     (double)a[CONV_KERNEL].u.size.w;
    return 2.0 * (double)l->out.h * (double)l->out.w * (double)l->out.c * per_out;
}

/* ------------------------------------------------------------------------
 * Conv's code: forward, and backward to the weights and to the input
 *
 * Maps are NHWC; the weight stays [n][C][KH][KW] (PyTorch's) in the
 * parameter block and is repacked per call so that channels run contiguous:
 * [tap][C][n] for forward, [tap][n][C] for the input gradient. A tap is one
 * (kh, kw) of the kernel, t = kh*KW + kw.
 *
 * Every kernel is register-blocked: a tile of a few pixels (or, for the
 * weight gradient, rows of (tap, ci)) by two vectors of channels keeps its
 * sums in named vector variables a{p}_{v}, which the C compiler keeps in
 * registers. The inner loop loads a vector per tile column and a scalar per
 * tile row, broadcast into the products. Vectors are GCC/Clang vector types
 * as wide as the target's registers (CNNC_VL reals, chosen by the
 * preprocessor in the generated file, so one file builds for any target),
 * but no wider than the channel count. A row of C channels is covered by
 * ceil(C / VL) vectors, the last one ending at C and overlapping its
 * neighbour (VEC_AT), so no load or store reaches past a row and nothing
 * needs padding. Every value is computed by one thread in a fixed order.
 */

/* Tiles: TILE_PIX pixels (TILE_ROWS rows of the weight gradient) by two
 * vectors, 12 accumulators: with two weight vectors and a broadcast they fit
 * the 16 vector registers of SSE2 and AVX2. (The vector pairs are spelt out
 * in conv_emit_vectors and conv_emit_weight_grad.) */
enum { TILE_PIX = 6, TILE_ROWS = 6 };

typedef struct ConvGeom {
    int64_t h, w, ci;        /* input */
    int64_t oh, ow, co;      /* output */
    int64_t kh, kw, sh, sw;  /* kernel and stride */
    int64_t pt, pl;          /* padding at the top and left */
    bool bias;
} ConvGeom;

static ConvGeom conv_geom(const Layer *l)
{
    const ArgVal *a = l->args;
    return (ConvGeom){.h = l->in.h, .w = l->in.w, .ci = l->in.c,
                      .oh = l->out.h, .ow = l->out.w, .co = l->out.c,
                      .kh = a[CONV_KERNEL].u.size.h, .kw = a[CONV_KERNEL].u.size.w,
                      .sh = a[CONV_STRIDE].u.size.h, .sw = a[CONV_STRIDE].u.size.w,
                      .pt = a[CONV_PADDING].u.pad.top, .pl = a[CONV_PADDING].u.pad.left,
                      .bias = a[CONV_BIAS].u.b};
}

static int64_t conv_taps(const ConvGeom *g)
{
    return g->kh * g->kw;
}

/* The weight repacked [tap][C][n] (forward; backward sums dw there) and
 * [tap][n][C] (input gradient), then a row of max(C, n) zeros that stands
 * for a pixel in the padding. */
static int64_t conv_scratch_bytes(const Layer *l, int64_t batch, int64_t real_size)
{
    (void)batch;
    ConvGeom g = conv_geom(l);
    return (2 * conv_taps(&g) * g.ci * g.co + (g.ci > g.co ? g.ci : g.co)) * real_size;
}

/* Whether some tap of some output lands on a padded row / column. */
static bool rows_padded(const ConvGeom *g)
{
    return g->pt > 0 || (g->oh - 1) * g->sh + g->kh - 1 - g->pt >= g->h;
}

static bool cols_padded(const ConvGeom *g)
{
    return g->pl > 0 || (g->ow - 1) * g->sw + g->kw - 1 - g->pl >= g->w;
}

/* len cut into ceil(len / most) tiles as even as can be: the first extra
 * tiles hold base + 1, the others base. */
typedef struct Split {
    int64_t tiles, base, extra;
} Split;

static Split split_even(int64_t len, int64_t most)
{
    int64_t tiles = (len + most - 1) / most;
    return (Split){tiles, len / tiles, len % tiles};
}

static int64_t pow2_floor(int64_t v)
{
    int64_t p = 1;
    while (p <= v / 2)
        p *= 2;
    return p;
}

/* The vector definitions every Conv shares, once per file: before the
 * network's first Conv. */
static void conv_emit_vec_prelude(Emitter *e, const LayerCode *c)
{
    for (int i = 0; i < c->l->index; i++)
        if (e->net->layers[i].kind == &layer_conv)
            return;
    emit(e, "#ifndef CNNC_VEC_DEFINED");
    emit(e, "#define CNNC_VEC_DEFINED");
    emit(e, "/* Conv's vectors: CNNC_VL reals fill the target's widest vector register");
    emit(e, "   (AVX-512, AVX, else 16 bytes: SSE2, NEON or plain C). */");
    emit(e, "#if defined(__AVX512F__)");
    emit(e, "#define CNNC_VEC_BYTES 64");
    emit(e, "#elif defined(__AVX__)");
    emit(e, "#define CNNC_VEC_BYTES 32");
    emit(e, "#else");
    emit(e, "#define CNNC_VEC_BYTES 16");
    emit(e, "#endif");
    emit(e, "#define CNNC_VL (CNNC_VEC_BYTES / REAL_SIZE)");
    emit(e, "/* The first channel of vector j (vl lanes) of a row of c >= vl channels:");
    emit(e, "   the last vector ends at c, overlapping its neighbour. */");
    emit(e, "#define VEC_AT(j, vl, c) ((j) * (vl) < (c) - (vl) ? (j) * (vl) : (c) - (vl))");
    emit(e, "/* Unaligned vector load and store. */");
    emit(e, "#define VLOAD(v, p) memcpy(&(v), (p), sizeof(v))");
    emit(e, "#define VSTORE(p, v) memcpy((p), &(v), sizeof(v))");
    emit(e, "#endif");
    emit_blank(e);
}

/* The vector type TYPE of VL lanes for rows of channels, and NVL, the
 * vectors that cover a row. */
static void conv_emit_lanes(Emitter *e, const char *type, const char *vl, int64_t channels)
{
    int64_t most = pow2_floor(channels);
    emit(e, "/* %s: %s reals, the target's widest vector but at most %" PRId64
            "; N%s of them cover %" PRId64 " channels */", type, vl, most, vl, channels);
    emit(e, "enum { %s = CNNC_VL < %" PRId64 " ? CNNC_VL : %" PRId64 ", N%s = (%" PRId64
            " + %s - 1) / %s };", vl, most, most, vl, channels, vl, vl);
    emit(e, "typedef real %s __attribute__((vector_size(%s * REAL_SIZE)));", type, vl);
}

/* "vco a0_0 = INIT0, a0_1 = INIT1;" for each tile row: init "b" gives b0, b1;
 * NULL zeros; "" leaves them to be loaded. */
static void emit_accs(Emitter *e, const char *type, int rows, int nv, const char *init)
{
    for (int p = 0; p < rows; p++) {
        char line[256];
        size_t len = (size_t)snprintf(line, sizeof line, "%s", type);
        for (int v = 0; v < nv; v++) {
            len += (size_t)snprintf(line + len, sizeof line - len, "%s a%d_%d", v ? "," : "", p, v);
            if (!init)
                len += (size_t)snprintf(line + len, sizeof line - len, " = {0}");
            else if (init[0])
                len += (size_t)snprintf(line + len, sizeof line - len, " = %s%d", init, v);
        }
        emit(e, "%s;", line);
    }
}

/* "vco w0, w1; VLOAD(w0, BASE + c0); VLOAD(w1, BASE + c1);" */
static void emit_vloads(Emitter *e, const char *type, const char *name, int nv, const char *base)
{
    if (nv > 1)
        emit(e, "%s %s0, %s1;", type, name, name);
    else
        emit(e, "%s %s0;", type, name);
    for (int v = 0; v < nv; v++)
        emit(e, "VLOAD(%s%d, %s + c%d);", name, v, base, v);
}

/* a{p}_{v} += PRE{p}POST * VEC{v}, a line per tile row. */
static void emit_fmas(Emitter *e, int rows, int nv, const char *pre, const char *post,
                      const char *vec)
{
    for (int p = 0; p < rows; p++) {
        char line[256];
        size_t len = 0;
        for (int v = 0; v < nv; v++)
            len += (size_t)snprintf(line + len, sizeof line - len, "%sa%d_%d += %s%d%s * %s%d;",
                                    v ? " " : "", p, v, pre, p, post, vec, v);
        emit(e, "%s", line);
    }
}

/* BODY(nv) for the vectors of a row of channels, as c0 (, c1): vector 0 alone
 * when their count N{vl} is odd, then pairs (j, j + 1). The overlapping last
 * two vectors are always one pair. */
static void conv_emit_vectors(Emitter *e, const ConvGeom *g, const char *vl, int64_t channels,
                              void (*body)(Emitter *, const ConvGeom *, int))
{
    emit(e, "if (N%s %% 2) { /* an odd count: vector 0 alone */", vl);
    emit(e, "const int c0 = 0;");
    body(e, g, 1);
    emit(e, "}");
    emit(e, "for (int j = N%s %% 2; j < N%s; j += 2) {", vl, vl);
    emit(e, "const int c0 = VEC_AT(j, %s, %" PRId64 "), c1 = VEC_AT(j + 1, %s, %" PRId64 ");",
         vl, channels, vl, channels);
    body(e, g, 2);
    emit(e, "}");
}

/* The zero row, cleared: what a tile reads for a pixel in the padding. */
static void conv_emit_zero_row(Emitter *e, const char *L, const ConvGeom *g, int64_t len)
{
    emit(e, "real *restrict zrow = (real *)work(ctx, %s_SCRATCH) + %" PRId64 "; /* [%" PRId64
            "] */", L, 2 * conv_taps(g) * g->ci * g->co, len);
    emit(e, "memset(zrow, 0, %" PRId64 " * sizeof(real));", len);
    emit(e, "const real *zero = zrow;");
}

/* dst[t][a][b] = w[co][ci][t], with (a, b) = (ci, co) or (co, ci). */
static void conv_emit_repack(Emitter *e, const ConvGeom *g, const char *dst, bool co_inner)
{
    int64_t taps = conv_taps(g);
    emit_for(e, "co", g->co);
    emit_for(e, "ci", g->ci);
    emit_for(e, "t", taps);
    if (co_inner)
        emit(e, "%s[(t * %" PRId64 " + ci) * %" PRId64 " + co] = w[(co * %" PRId64
                " + ci) * %" PRId64 " + t];", dst, g->ci, g->co, g->ci, taps);
    else
        emit(e, "%s[(t * %" PRId64 " + co) * %" PRId64 " + ci] = w[(co * %" PRId64
                " + ci) * %" PRId64 " + t];", dst, g->co, g->ci, g->ci, taps);
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
}

/* ---- forward */

/* One tile: outputs (oy, ox + p), p < np, by nv vectors of channels at c0
 * (, c1): a{p}_{v} = b + sum over taps and ci of x[iy][ix + p*SW][ci] *
 * wp[t][ci][c_v]. A tap off the input skips (rows) or reads zeros (columns). */
static void conv_emit_forward_tile(Emitter *e, const ConvGeom *g, int np, int nv)
{
    if (g->bias) {
        emit_vloads(e, "vco", "b", nv, "b");
    }
    emit_accs(e, "vco", np, nv, g->bias ? "b" : NULL);
    emit_for(e, "kh", g->kh);
    emit(e, "const int iy = oy * %" PRId64 " + kh - %" PRId64 ";", g->sh, g->pt);
    if (rows_padded(g))
        emit(e, "if (iy < 0 || iy >= %" PRId64 ") continue;", g->h);
    emit(e, "const real *xr = xi + iy * %" PRId64 ";", g->w * g->ci);
    emit_for(e, "kw", g->kw);
    emit(e, "const int ix = ox * %" PRId64 " + kw - %" PRId64 "; /* of pixel 0 */", g->sw, g->pl);
    for (int p = 0; p < np; p++) {
        if (cols_padded(g))
            emit(e, "const real *x%d = (unsigned)(ix + %" PRId64 ") < %" PRId64 "u ? xr + (ix + %"
                    PRId64 ") * %" PRId64 " : zero;", p, p * g->sw, g->w, p * g->sw, g->ci);
        else
            emit(e, "const real *x%d = xr + (ix + %" PRId64 ") * %" PRId64 ";", p, p * g->sw,
                 g->ci);
    }
    emit(e, "const real *wk = wp + (kh * %" PRId64 " + kw) * %" PRId64 ";", g->kw, g->ci * g->co);
    emit_for(e, "ci", g->ci);
    char base[64];
    snprintf(base, sizeof base, "wk + ci * %" PRId64, g->co);
    emit_vloads(e, "vco", "w", nv, base);
    emit_fmas(e, np, nv, "x", "[ci]", "w");
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    for (int p = 0; p < np; p++)
        for (int v = 0; v < nv; v++)
            emit(e, "VSTORE(yr + (ox + %d) * %" PRId64 " + c%d, a%d_%d);", p, g->co, v, p, v);
}

/* The row's outputs in tiles of at most TILE_PIX pixels. */
static void conv_emit_forward_pixels(Emitter *e, const ConvGeom *g, int nv)
{
    Split s = split_even(g->ow, TILE_PIX);
    int64_t wide = s.extra * (s.base + 1);
    if (s.extra) {
        emit(e, "for (int ox = 0; ox < %" PRId64 "; ox += %" PRId64 ") {", wide, s.base + 1);
        conv_emit_forward_tile(e, g, (int)s.base + 1, nv);
        emit(e, "}");
    }
    if (wide < g->ow) {
        emit(e, "for (int ox = %" PRId64 "; ox < %" PRId64 "; ox += %" PRId64 ") {", wide, g->ow,
             s.base);
        conv_emit_forward_tile(e, g, (int)s.base, nv);
        emit(e, "}");
    }
}

/* y[i][oy][ox][co] = b[co] + sum over taps and ci of x[i][iy][ix][ci] * w[co][ci][t] */
static void conv_emit_forward(Emitter *e, const LayerCode *c, const ConvGeom *g)
{
    const char *L = c->name;
    emit(e, "/* y[n][%" PRId64 "][%" PRId64 "][%" PRId64 "] = x[n][%" PRId64 "][%" PRId64
            "][%" PRId64 "] (*) w[%" PRId64 "][%" PRId64 "][%" PRId64 "][%" PRId64 "]"
            " + b, stride %" PRId64 "x%" PRId64 " */",
         g->oh, g->ow, g->co, g->h, g->w, g->ci, g->co, g->ci, g->kh, g->kw, g->sh, g->sw);
    emit_forward_begin(e, c);
    conv_emit_lanes(e, "vco", "VCO", g->co);
    emit(e, "const real *w = param(ctx) + %s_weight;", L);
    if (g->bias)
        emit(e, "const real *b = param(ctx) + %s_bias;", L);
    emit(e, "real *restrict wp = work(ctx, %s_SCRATCH); /* [tap][%" PRId64 "][%" PRId64 "] */",
         L, g->ci, g->co);
    conv_emit_repack(e, g, "wp", true);
    if (cols_padded(g))
        conv_emit_zero_row(e, L, g, g->ci);
    emit(e, "PARALLEL_FOR");
    emit(e, "for (int r = 0; r < n * %" PRId64 "; r++) {", g->oh);
    emit(e, "const int i = r / %" PRId64 ", oy = r %% %" PRId64 ";", g->oh, g->oh);
    emit(e, "const real *xi = x + (size_t)i * %" PRId64 ";", g->h * g->w * g->ci);
    emit(e, "real *yr = y + (size_t)r * %" PRId64 ";", g->ow * g->co);
    conv_emit_vectors(e, g, "VCO", g->co, conv_emit_forward_pixels);
    emit(e, "}");
    emit(e, "}");
}

/* ---- weight gradient */

/* The output rows (or columns) a tap k meets: o with o*s + k - p in
 * [0, in), clipped to [0, out). Emitted as constants when the tap is known,
 * else as expressions of k. */
static void conv_emit_out_range(Emitter *e, const char *o, const char *k, int64_t in,
                                int64_t out, int64_t s, int64_t p, int64_t ksize)
{
    if (p == 0 && (out - 1) * s + ksize - 1 <= in - 1) {
        /* No padding reached: every tap of every output lands inside. */
        emit(e, "const int %s0 = 0, %s1 = %" PRId64 ";", o, o, out - 1);
        return;
    }
    emit(e, "const int %s0 = %s < %" PRId64 " ? (%" PRId64 " - %s + %" PRId64 ") / %" PRId64
            " : 0;", o, k, p, p, k, s - 1, s);
    emit(e, "const int %s_hi = %" PRId64 " - %s;", o, in - 1 + p, k);
    emit(e, "const int %s1 = %s_hi < 0 ? -1 : (%s_hi / %" PRId64 " < %" PRId64 " ? %s_hi / %"
            PRId64 " : %" PRId64 ");", o, o, o, s, out - 1, o, s, out - 1);
}

/* Samples per pass of the weight gradient: about 1 MiB of x and dy, which
 * stays in cache while every tile sweeps it. */
static int64_t conv_chunk(const ConvGeom *g, int64_t real_size)
{
    int64_t per = (g->h * g->w * g->ci + g->oh * g->ow * g->co) * real_size;
    int64_t k = ((int64_t)1 << 20) / per;
    return k < 1 ? 1 : k;
}

/* db[c0..] (+)= dy summed over the chunk's pixels. */
static void conv_emit_bias_tile(Emitter *e, const ConvGeom *g, int nv)
{
    emit_accs(e, "vco", 1, nv, "");
    for (int v = 0; v < nv; v++)
        emit(e, "VLOAD(a0_%d, db + c%d);", v, v);
    emit(e, "for (int i = i0; i < i1; i++) {");
    emit(e, "const real *dyi = dy + (size_t)i * %" PRId64 ";", g->oh * g->ow * g->co);
    emit_for(e, "p", g->oh * g->ow);
    char base[64];
    snprintf(base, sizeof base, "dyi + p * %" PRId64, g->co);
    emit_vloads(e, "vco", "d", nv, base);
    for (int v = 0; v < nv; v++)
        emit(e, "a0_%d += d%d;", v, v);
    emit(e, "}");
    emit(e, "}");
    for (int v = 0; v < nv; v++)
        emit(e, "VSTORE(db + c%d, a0_%d);", v, v);
}

/* nr rows r0 + k of dwp[r][co], r = t*CI + ci, by nv vectors: the sums so far
 * plus x[i][oy*SH + kh - PT][ox*SW + kw - PL][ci] * dy[i][oy][ox][c_v] over
 * the chunk's samples and the pixels the tap meets. flat: the rows may span
 * taps (no padding), row k at offset ok from the pixel's corner; else one
 * tap's rows ci0 + k. */
static void conv_emit_wgrad_tile(Emitter *e, const ConvGeom *g, bool flat, int nr, int nv)
{
    if (flat)
        for (int k = 0; k < nr; k++)
            emit(e, "const int t%d = (r0 + %d) / %" PRId64 ", o%d = (t%d / %" PRId64 " * %" PRId64
                    " + t%d %% %" PRId64 ") * %" PRId64 " + (r0 + %d) %% %" PRId64 ";",
                 k, k, g->ci, k, k, g->kw, g->w, k, g->kw, g->ci, k, g->ci);
    emit_accs(e, "vco", nr, nv, "");
    for (int k = 0; k < nr; k++)
        for (int v = 0; v < nv; v++)
            emit(e, "VLOAD(a%d_%d, dwp + (r0 + %d) * %" PRId64 " + c%d);", k, v, k, g->co, v);
    emit(e, "for (int i = i0; i < i1; i++) {");
    emit(e, "const real *xi = x + (size_t)i * %" PRId64 "%s;", g->h * g->w * g->ci,
         flat ? "" : " + ci0");
    emit(e, "const real *dyi = dy + (size_t)i * %" PRId64 ";", g->oh * g->ow * g->co);
    emit(e, "for (int oy = oy0; oy <= oy1; oy++) {");
    if (flat)
        emit(e, "const real *xr = xi + oy * %" PRId64 ";", g->sh * g->w * g->ci);
    else
        emit(e, "const real *xr = xi + (oy * %" PRId64 " + kh - %" PRId64 ") * %" PRId64 ";",
             g->sh, g->pt, g->w * g->ci);
    emit(e, "const real *dr = dyi + oy * %" PRId64 ";", g->ow * g->co);
    emit(e, "for (int ox = ox0; ox <= ox1; ox++) {");
    if (flat)
        emit(e, "const real *xp = xr + ox * %" PRId64 ";", g->sw * g->ci);
    else
        emit(e, "const real *xp = xr + (ox * %" PRId64 " + kw - %" PRId64 ") * %" PRId64 ";",
             g->sw, g->pl, g->ci);
    char base[64];
    snprintf(base, sizeof base, "dr + ox * %" PRId64, g->co);
    emit_vloads(e, "vco", "d", nv, base);
    emit_fmas(e, nr, nv, flat ? "xp[o" : "xp[", "]", "d");
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    for (int k = 0; k < nr; k++)
        for (int v = 0; v < nv; v++)
            emit(e, "VSTORE(dwp + (r0 + %d) * %" PRId64 " + c%d, a%d_%d);", k, g->co, v, k, v);
}

/* Block blk of rows (or db, the last block) by the vectors at c0 (, c1). */
static void conv_emit_wgrad_block(Emitter *e, const ConvGeom *g, int nv)
{
    int64_t taps = conv_taps(g);
    bool flat = !rows_padded(g) && !cols_padded(g);
    Split s = split_even(flat ? taps * g->ci : g->ci, TILE_ROWS);
    if (g->bias) {
        emit(e, "if (blk == %" PRId64 ") {", (flat ? 1 : taps) * s.tiles);
        conv_emit_bias_tile(e, g, nv);
        emit(e, "} else {");
    }
    if (flat) {
        emit(e, "const int rb = blk;");
        emit(e, "const int oy0 = 0, oy1 = %" PRId64 ", ox0 = 0, ox1 = %" PRId64 ";", g->oh - 1,
             g->ow - 1);
        emit(e, "const int r0 = rb * %" PRId64 " + (rb < %" PRId64 " ? rb : %" PRId64 ");",
             s.base, s.extra, s.extra);
    } else {
        emit(e, "const int t = blk / %" PRId64 ", rb = blk %% %" PRId64 ";", s.tiles, s.tiles);
        emit(e, "const int kh = t / %" PRId64 ", kw = t %% %" PRId64 ";", g->kw, g->kw);
        conv_emit_out_range(e, "oy", "kh", g->h, g->oh, g->sh, g->pt, g->kh);
        conv_emit_out_range(e, "ox", "kw", g->w, g->ow, g->sw, g->pl, g->kw);
        emit(e, "const int ci0 = rb * %" PRId64 " + (rb < %" PRId64 " ? rb : %" PRId64
                "), r0 = t * %" PRId64 " + ci0;", s.base, s.extra, s.extra, g->ci);
    }
    if (s.extra) {
        emit(e, "if (rb < %" PRId64 ") {", s.extra);
        conv_emit_wgrad_tile(e, g, flat, (int)s.base + 1, nv);
        emit(e, "} else {");
        conv_emit_wgrad_tile(e, g, flat, (int)s.base, nv);
        emit(e, "}");
    } else {
        conv_emit_wgrad_tile(e, g, flat, (int)s.base, nv);
    }
    if (g->bias)
        emit(e, "}");
}

/* dw[co][ci][t] = sum over samples and output pixels of
 * x[i][oy*S + kh - P][ox*S + kw - P][ci] * dy[i][oy][ox][co]: the
 * correlation of x with the stride-dilated dy, as index arithmetic; db the
 * sum of dy. The sums build up in dwp[t][ci][co] and db in blocks (rows of
 * dwp, or db, by a pair of vectors), dealt out to the threads in turn; each
 * thread takes its blocks through the samples a chunk at a time, so that the
 * chunk's x and dy serve all of them from cache, with no barrier between
 * chunks. Every value is summed by one block, in sample and pixel order,
 * whatever the thread count. */
static void conv_emit_weight_grad(Emitter *e, const LayerCode *c, const ConvGeom *g)
{
    const char *L = c->name;
    int64_t taps = conv_taps(g), chunk = conv_chunk(g, e->real_size);
    bool flat = !rows_padded(g) && !cols_padded(g);
    Split s = split_even(flat ? taps * g->ci : g->ci, TILE_ROWS);
    conv_emit_lanes(e, "vco", "VCO", g->co);
    emit(e, "real *restrict dwp = work(ctx, %s_SCRATCH); /* [tap][%" PRId64 "][%" PRId64 "] */",
         L, g->ci, g->co);
    emit(e, "memset(dwp, 0, %" PRId64 " * sizeof(real));", taps * g->ci * g->co);
    if (g->bias) {
        emit(e, "real *restrict db = grad(ctx) + %s_bias;", L);
        emit(e, "memset(db, 0, %" PRId64 " * sizeof(real));", g->co);
    }
    emit(e, "/* blocks: %s rows of %" PRId64 " (%" PRId64 " tiles of %" PRId64 "%s)%s; pairs of "
            "vectors */", flat ? "the" : "each tap's", flat ? taps * g->ci : g->ci, s.tiles,
         s.base, s.extra ? " or one more" : "", g->bias ? ", then db" : "");
    emit(e, "enum { BLOCKS = %" PRId64 ", PAIRS = (NVCO + 1) / 2 };",
         (flat ? 1 : taps) * s.tiles + (g->bias ? 1 : 0));
    emit(e, "const int parts = ctx->threads > 0 ? ctx->threads : 1;");
    emit(e, "PARALLEL_FOR");
    emit(e, "for (int part = 0; part < parts; part++) {");
    emit(e, "for (int i0 = 0; i0 < n; i0 += %" PRId64 ") {", chunk);
    emit(e, "const int i1 = i0 + %" PRId64 " < n ? i0 + %" PRId64 " : n;", chunk, chunk);
    emit(e, "for (int bp = part; bp < BLOCKS * PAIRS; bp += parts) {");
    emit(e, "const int blk = bp / PAIRS, pair = bp %% PAIRS;");
    emit(e, "if (NVCO %% 2 && pair == 0) { /* an odd count: vector 0 alone */");
    emit(e, "const int c0 = 0;");
    conv_emit_wgrad_block(e, g, 1);
    emit(e, "} else { /* vectors j, j + 1; the overlapping last two are one pair */");
    emit(e, "const int j = 2 * pair - NVCO %% 2;");
    emit(e, "const int c0 = VEC_AT(j, VCO, %" PRId64 "), c1 = VEC_AT(j + 1, VCO, %" PRId64 ");",
         g->co, g->co);
    conv_emit_wgrad_block(e, g, 2);
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    emit(e, "real *dw = grad(ctx) + %s_weight;", L);
    emit(e, "PARALLEL_FOR");
    emit_for(e, "co", g->co);
    emit_for(e, "ci", g->ci);
    emit_for(e, "t", taps);
    emit(e, "dw[(co * %" PRId64 " + ci) * %" PRId64 " + t] = dwp[(t * %" PRId64 " + ci) * %"
            PRId64 " + co];", g->ci, taps, g->ci, g->co);
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
}

/* ---- input gradient */

/* The columns of phase px: ix = qx*SW + px - PL for qx in [*lo, *hi];
 * false when none. */
static bool phase_cols(const ConvGeom *g, int64_t px, int64_t *lo, int64_t *hi)
{
    int64_t top = g->w - 1 + g->pl - px;
    if (top < 0)
        return false;
    *lo = px >= g->pl ? 0 : (g->pl - px + g->sw - 1) / g->sw;
    *hi = top / g->sw;
    return *lo <= *hi;
}

/* Whether a tap of phase px can meet a dy column outside [0, OW). */
static bool phase_cols_clip(const ConvGeom *g, int64_t px)
{
    int64_t lo, hi;
    if (px >= g->kw || !phase_cols(g, px, &lo, &hi))
        return false;
    return (g->kw - 1 - px) / g->sw > lo || hi >= g->ow;
}

static bool input_grad_needs_zero(const ConvGeom *g)
{
    for (int64_t px = 0; px < g->sw; px++)
        if (phase_cols_clip(g, px))
            return true;
    return false;
}

/* One tile of phase (py, px): pixels ix = (qx + p)*SW + px - PL of row iy by
 * nv vectors of input channels at c0 (, c1): the taps kh = py + a*SH,
 * kw = px + b*SW meet dy at oy = qy - a, ox = qx + p - b, so
 * a{p}_{v} = sum over them and co of dy[i][oy][ox][co] * wt[t][co][c_v]. */
static void conv_emit_input_tile(Emitter *e, const ConvGeom *g, int64_t px, int np, int nv)
{
    bool clip = phase_cols_clip(g, px);
    emit_accs(e, "vci", np, nv, NULL);
    emit(e, "for (int kh = %s, oy = qy; kh < %" PRId64 " && oy >= 0; kh += %" PRId64 ", oy--) {",
         g->sh > 1 ? "py" : "0", g->kh, g->sh);
    emit(e, "if (oy >= %" PRId64 ") continue;", g->oh);
    emit(e, "const real *dr = dyi + oy * %" PRId64 ";", g->ow * g->co);
    emit(e, "for (int kw = %" PRId64 ", ox = qx; kw < %" PRId64 "; kw += %" PRId64
            ", ox--) { /* pixel p meets column ox + p */", px, g->kw, g->sw);
    if (clip) {
        emit(e, "if (ox >= %" PRId64 ") continue;", g->ow);
        emit(e, "if (ox + %d < 0) break;", np - 1);
    }
    for (int p = 0; p < np; p++) {
        if (clip)
            emit(e, "const real *d%d = (unsigned)(ox + %d) < %" PRId64 "u ? dr + (ox + %d) * %"
                    PRId64 " : zero;", p, p, g->ow, p, g->co);
        else
            emit(e, "const real *d%d = dr + (ox + %d) * %" PRId64 ";", p, p, g->co);
    }
    emit(e, "const real *wk = wt + (kh * %" PRId64 " + kw) * %" PRId64 ";", g->kw, g->co * g->ci);
    emit_for(e, "co", g->co);
    char base[64];
    snprintf(base, sizeof base, "wk + co * %" PRId64, g->ci);
    emit_vloads(e, "vci", "w", nv, base);
    emit_fmas(e, np, nv, "d", "[co]", "w");
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    for (int p = 0; p < np; p++)
        for (int v = 0; v < nv; v++)
            emit(e, "VSTORE(dxr + ((qx + %d) * %" PRId64 " + (%" PRId64 ")) * %" PRId64
                    " + c%d, a%d_%d);", p, g->sw, px - g->pl, g->ci, v, p, v);
}

/* The row's pixels phase by phase (px), in tiles of at most TILE_PIX. */
static void conv_emit_input_phases(Emitter *e, const ConvGeom *g, int nv)
{
    for (int64_t px = 0; px < g->sw; px++) {
        int64_t lo, hi;
        if (!phase_cols(g, px, &lo, &hi))
            continue;
        emit(e, "/* phase px = %" PRId64 ": ix = qx*%" PRId64 " + %" PRId64 ", qx in [%" PRId64
                ", %" PRId64 "] */", px, g->sw, px - g->pl, lo, hi);
        Split s = split_even(hi - lo + 1, TILE_PIX);
        int64_t wide = lo + s.extra * (s.base + 1);
        if (s.extra) {
            emit(e, "for (int qx = %" PRId64 "; qx < %" PRId64 "; qx += %" PRId64 ") {", lo, wide,
                 s.base + 1);
            conv_emit_input_tile(e, g, px, (int)s.base + 1, nv);
            emit(e, "}");
        }
        if (wide <= hi) {
            emit(e, "for (int qx = %" PRId64 "; qx <= %" PRId64 "; qx += %" PRId64 ") {", wide,
                 hi, s.base);
            conv_emit_input_tile(e, g, px, (int)s.base, nv);
            emit(e, "}");
        }
    }
}

/* dx[i][iy][ix][ci] = sum over the taps that reach it of
 * dy[i][oy][ox][co] * w[co][ci][kh][kw], with iy + PT = oy*SH + kh. For a
 * stride S only the taps kh = (iy + PT) mod S, + S, + 2S, ... reach row iy,
 * each at oy = (iy + PT) div S - a: the phases of the stride (and the same
 * for columns). The code gathers exactly those, so no dilated
 * (zero-inserted) gradient exists. */
static void conv_emit_input_grad(Emitter *e, const LayerCode *c, const ConvGeom *g)
{
    const char *L = c->name;
    conv_emit_lanes(e, "vci", "VCI", g->ci);
    emit(e, "real *restrict wt = (real *)work(ctx, %s_SCRATCH) + %" PRId64
            "; /* [tap][%" PRId64 "][%" PRId64 "] */", L, conv_taps(g) * g->ci * g->co, g->co,
         g->ci);
    conv_emit_repack(e, g, "wt", false);
    if (input_grad_needs_zero(g))
        conv_emit_zero_row(e, L, g, g->co);
    emit(e, "PARALLEL_FOR");
    emit(e, "for (int r = 0; r < n * %" PRId64 "; r++) {", g->h);
    emit(e, "const int i = r / %" PRId64 ", iy = r %% %" PRId64 ";", g->h, g->h);
    if (g->sh > 1)
        emit(e, "const int py = (iy + %" PRId64 ") %% %" PRId64 ", qy = (iy + %" PRId64
                ") / %" PRId64 ";", g->pt, g->sh, g->pt, g->sh);
    else
        emit(e, "const int qy = iy + %" PRId64 ";", g->pt);
    emit(e, "const real *dyi = dy + (size_t)i * %" PRId64 ";", g->oh * g->ow * g->co);
    emit(e, "real *dxr = dx + (size_t)r * %" PRId64 ";", g->w * g->ci);
    conv_emit_vectors(e, g, "VCI", g->ci, conv_emit_input_phases);
    emit(e, "}");
}

static void conv_emit_backward(Emitter *e, const LayerCode *c, const ConvGeom *g)
{
    const char *L = c->name;
    emit(e, "/* from dy[n][%" PRId64 "][%" PRId64 "][%" PRId64 "]: dw, db%s */", g->oh, g->ow,
         g->co, c->need_dx ? " and dx" : " (no layer before it learns: no dx)");
    emit_backward_begin(e, c);
    emit(e, "(void)y;");
    conv_emit_weight_grad(e, c, g);
    if (c->need_dx) {
        emit(e, "const real *w = param(ctx) + %s_weight;", L);
        conv_emit_input_grad(e, c, g);
    } else {
        emit(e, "(void)dx;");
    }
    emit(e, "}");
}

static void conv_emit(Emitter *e, const LayerCode *c)
{
    ConvGeom g = conv_geom(c->l);
    conv_emit_vec_prelude(e, c);
    conv_emit_forward(e, c, &g);
    emit_blank(e);
    conv_emit_backward(e, c, &g);
}

const LayerKind layer_conv = {
    .name = "Conv",
    .auto_prefix = "conv",
    .args = conv_args,
    .nargs = CONV_NARGS,
    .infer = conv_infer,
    .flops = conv_flops,
    .scratch_bytes = conv_scratch_bytes,
    .emit = conv_emit,
};
