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
 * parameter block and is repacked per call so the innermost loop runs over
 * contiguous channels: [tap][C][n] for forward, [tap][n][C] for the input
 * gradient. A tap is one (kh, kw) of the kernel, t = kh*KW + kw.
 */

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

/* Two repacked copies of the weight: [tap][C][n] and [tap][n][C]. */
static int64_t conv_scratch_bytes(const Layer *l, int64_t batch, int64_t real_size)
{
    (void)batch;
    ConvGeom g = conv_geom(l);
    return 2 * conv_taps(&g) * g.ci * g.co * real_size;
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

/* The bounds a tap needs: "iy >= 0" only where top padding can reach it,
 * "iy < H" only where bottom padding can. Empty when the tap always lands
 * inside the input (every tap of a valid convolution). */
static void tap_bounds(const ConvGeom *g, int64_t kh, int64_t kw, char *buf, size_t size)
{
    buf[0] = '\0';
    size_t len = 0;
    const char *sep = "";
#define COND(test, ...)                                                            \
    if (test) {                                                                    \
        len += (size_t)snprintf(buf + len, size - len, "%s", sep);                 \
        len += (size_t)snprintf(buf + len, size - len, __VA_ARGS__);               \
        sep = " && ";                                                              \
    }
    COND(kh < g->pt, "iy >= 0")
    COND((g->oh - 1) * g->sh + kh - g->pt >= g->h, "iy < %" PRId64, g->h)
    COND(kw < g->pl, "ix >= 0")
    COND((g->ow - 1) * g->sw + kw - g->pl >= g->w, "ix < %" PRId64, g->w)
#undef COND
}

/* acc[co] += x[iy][ix][ci] * wp[t][ci][co] over ci, for one tap. */
static void conv_emit_forward_tap(Emitter *e, const ConvGeom *g, const char *t)
{
    emit(e, "const real *xp = xi + (iy * %" PRId64 " + ix) * %" PRId64 ";", g->w, g->ci);
    emit(e, "const real *wk = wp + (%s) * %" PRId64 ";", t, g->ci * g->co);
    emit_for(e, "ci", g->ci);
    emit(e, "const real xv = xp[ci];");
    emit(e, "for (int co = 0; co < %" PRId64 "; co++) acc[co] += xv * wk[ci * %" PRId64 " + co];",
         g->co, g->co);
    emit(e, "}");
}

static void conv_emit_forward_taps(Emitter *e, const ConvGeom *g)
{
    char cond[160];
    if (conv_taps(g) <= EMIT_UNROLL_TAPS) {
        for (int64_t kh = 0; kh < g->kh; kh++)
            for (int64_t kw = 0; kw < g->kw; kw++) {
                tap_bounds(g, kh, kw, cond, sizeof cond);
                emit(e, "{ /* tap (%" PRId64 ", %" PRId64 ") */", kh, kw);
                emit(e, "const int iy = oy * %" PRId64 " + %" PRId64 ", ix = ox * %" PRId64
                        " + %" PRId64 ";", g->sh, kh - g->pt, g->sw, kw - g->pl);
                if (cond[0])
                    emit(e, "if (%s) {", cond);
                char t[32];
                snprintf(t, sizeof t, "%" PRId64, kh * g->kw + kw);
                conv_emit_forward_tap(e, g, t);
                if (cond[0])
                    emit(e, "}");
                emit(e, "}");
            }
        return;
    }
    emit_for(e, "kh", g->kh);
    emit(e, "const int iy = oy * %" PRId64 " + kh - %" PRId64 ";", g->sh, g->pt);
    if (g->pt > 0 || (g->oh - 1) * g->sh + g->kh - 1 - g->pt >= g->h)
        emit(e, "if (iy < 0 || iy >= %" PRId64 ") continue;", g->h);
    emit_for(e, "kw", g->kw);
    emit(e, "const int ix = ox * %" PRId64 " + kw - %" PRId64 ";", g->sw, g->pl);
    if (g->pl > 0 || (g->ow - 1) * g->sw + g->kw - 1 - g->pl >= g->w)
        emit(e, "if (ix < 0 || ix >= %" PRId64 ") continue;", g->w);
    char t[32];
    snprintf(t, sizeof t, "kh * %" PRId64 " + kw", g->kw);
    conv_emit_forward_tap(e, g, t);
    emit(e, "}");
    emit(e, "}");
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
    emit(e, "const real *w = param(ctx) + %s_weight;", L);
    if (g->bias)
        emit(e, "const real *b = param(ctx) + %s_bias;", L);
    emit(e, "real *restrict wp = work(ctx, %s_SCRATCH); /* [tap][%" PRId64 "][%" PRId64 "] */",
         L, g->ci, g->co);
    conv_emit_repack(e, g, "wp", true);
    emit(e, "PARALLEL_FOR");
    emit(e, "for (int r = 0; r < n * %" PRId64 "; r++) {", g->oh);
    emit(e, "const int i = r / %" PRId64 ", oy = r %% %" PRId64 ";", g->oh, g->oh);
    emit(e, "const real *xi = x + (size_t)i * %" PRId64 ";", g->h * g->w * g->ci);
    emit(e, "real *yr = y + (size_t)r * %" PRId64 ";", g->ow * g->co);
    emit_for(e, "ox", g->ow);
    if (g->bias) {
        emit(e, "real acc[%" PRId64 "];", g->co);
        emit(e, "for (int co = 0; co < %" PRId64 "; co++) acc[co] = b[co];", g->co);
    } else {
        emit(e, "real acc[%" PRId64 "] = {0};", g->co);
    }
    conv_emit_forward_taps(e, g);
    emit(e, "for (int co = 0; co < %" PRId64 "; co++) yr[ox * %" PRId64 " + co] = acc[co];",
         g->co, g->co);
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
}

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

/* dw[co][ci][t] = sum over samples and output pixels of
 * x[i][oy*S + kh - P][ox*S + kw - P][ci] * dy[i][oy][ox][co]: the
 * correlation of x with the stride-dilated dy, as index arithmetic. One
 * (tap, ci) row per iteration, so each value is summed by one thread. */
static void conv_emit_weight_grad(Emitter *e, const LayerCode *c, const ConvGeom *g)
{
    const char *L = c->name;
    int64_t taps = conv_taps(g);
    if (g->bias) {
        emit(e, "{ /* db[co] = sum of dy over samples and pixels */");
        emit(e, "real *db = grad(ctx) + %s_bias;", L);
        emit(e, "real acc[%" PRId64 "] = {0};", g->co);
        emit(e, "for (size_t p = 0; p < (size_t)n * %" PRId64 "; p++)", g->oh * g->ow);
        emit(e, "    for (int co = 0; co < %" PRId64 "; co++) acc[co] += dy[p * %" PRId64
                " + co];", g->co, g->co);
        emit(e, "for (int co = 0; co < %" PRId64 "; co++) db[co] = acc[co];", g->co);
        emit(e, "}");
    }
    emit(e, "real *dw = grad(ctx) + %s_weight;", L);
    emit(e, "PARALLEL_FOR");
    emit(e, "for (int tc = 0; tc < %" PRId64 "; tc++) {", taps * g->ci);
    emit(e, "const int t = tc / %" PRId64 ", ci = tc %% %" PRId64 ";", g->ci, g->ci);
    emit(e, "const int kh = t / %" PRId64 ", kw = t %% %" PRId64 ";", g->kw, g->kw);
    conv_emit_out_range(e, "oy", "kh", g->h, g->oh, g->sh, g->pt, g->kh);
    conv_emit_out_range(e, "ox", "kw", g->w, g->ow, g->sw, g->pl, g->kw);
    emit(e, "real acc[%" PRId64 "] = {0};", g->co);
    emit(e, "for (int i = 0; i < n; i++) {");
    emit(e, "const real *xi = x + (size_t)i * %" PRId64 " + ci;", g->h * g->w * g->ci);
    emit(e, "const real *dyi = dy + (size_t)i * %" PRId64 ";", g->oh * g->ow * g->co);
    emit(e, "for (int oy = oy0; oy <= oy1; oy++) {");
    emit(e, "const int iy = oy * %" PRId64 " + kh - %" PRId64 ";", g->sh, g->pt);
    emit(e, "for (int ox = ox0; ox <= ox1; ox++) {");
    emit(e, "const int ix = ox * %" PRId64 " + kw - %" PRId64 ";", g->sw, g->pl);
    emit(e, "const real xv = xi[(iy * %" PRId64 " + ix) * %" PRId64 "];", g->w, g->ci);
    emit(e, "const real *d = dyi + (oy * %" PRId64 " + ox) * %" PRId64 ";", g->ow, g->co);
    emit(e, "for (int co = 0; co < %" PRId64 "; co++) acc[co] += xv * d[co];", g->co);
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    emit(e, "for (int co = 0; co < %" PRId64 "; co++) dw[(co * %" PRId64 " + ci) * %" PRId64
            " + t] = acc[co];", g->co, g->ci, taps);
    emit(e, "}");
}

/* acc[ci] += dy[i][oy][ox][co] * wt[t][co][ci] over co, for one tap. */
static void conv_emit_input_tap(Emitter *e, const ConvGeom *g, const char *t)
{
    emit(e, "const real *d = dyi + (oy * %" PRId64 " + ox) * %" PRId64 ";", g->ow, g->co);
    emit(e, "const real *wk = wt + (%s) * %" PRId64 ";", t, g->co * g->ci);
    emit_for(e, "co", g->co);
    emit(e, "const real dv = d[co];");
    emit(e, "for (int ci = 0; ci < %" PRId64 "; ci++) acc[ci] += dv * wk[co * %" PRId64 " + ci];",
         g->ci, g->ci);
    emit(e, "}");
}

/* The taps of one phase (py, px): kh = py + a*SH meets output row
 * oy = qy - a, kw = px + b*SW meets column ox = qx - b. Bounds are emitted
 * only where they can fail. */
static void conv_emit_phase(Emitter *e, const ConvGeom *g, int64_t py, int64_t px)
{
    int64_t qy_max = (g->h - 1 + g->pt) / g->sh, qx_max = (g->w - 1 + g->pl) / g->sw;
    for (int64_t a = 0; py + a * g->sh < g->kh; a++)
        for (int64_t b = 0; px + b * g->sw < g->kw; b++) {
            int64_t kh = py + a * g->sh, kw = px + b * g->sw;
            char cond[160] = "";
            size_t len = 0;
            const char *sep = "";
            if (a > 0) {
                len += (size_t)snprintf(cond + len, sizeof cond - len, "%soy >= 0", sep);
                sep = " && ";
            }
            if (qy_max - a >= g->oh) {
                len += (size_t)snprintf(cond + len, sizeof cond - len, "%soy < %" PRId64, sep,
                                        g->oh);
                sep = " && ";
            }
            if (b > 0) {
                len += (size_t)snprintf(cond + len, sizeof cond - len, "%sox >= 0", sep);
                sep = " && ";
            }
            if (qx_max - b >= g->ow)
                snprintf(cond + len, sizeof cond - len, "%sox < %" PRId64, sep, g->ow);
            emit(e, "{ /* tap (%" PRId64 ", %" PRId64 ") */", kh, kw);
            emit(e, "const int oy = qy - %" PRId64 ", ox = qx - %" PRId64 ";", a, b);
            if (cond[0])
                emit(e, "if (%s) {", cond);
            char t[32];
            snprintf(t, sizeof t, "%" PRId64, kh * g->kw + kw);
            conv_emit_input_tap(e, g, t);
            if (cond[0])
                emit(e, "}");
            emit(e, "}");
        }
}

/* Large kernels: the same phase arithmetic in loops. */
static void conv_emit_phase_loops(Emitter *e, const ConvGeom *g)
{
    emit(e, "for (int kh = %s, oy = qy; kh < %" PRId64 " && oy >= 0; kh += %" PRId64 ", oy--) {",
         g->sh > 1 ? "py" : "0", g->kh, g->sh);
    emit(e, "if (oy >= %" PRId64 ") continue;", g->oh);
    emit(e, "for (int kw = %s, ox = qx; kw < %" PRId64 " && ox >= 0; kw += %" PRId64 ", ox--) {",
         g->sw > 1 ? "px" : "0", g->kw, g->sw);
    emit(e, "if (ox >= %" PRId64 ") continue;", g->ow);
    char t[32];
    snprintf(t, sizeof t, "kh * %" PRId64 " + kw", g->kw);
    conv_emit_input_tap(e, g, t);
    emit(e, "}");
    emit(e, "}");
}

/* dx[i][iy][ix][ci] = sum over the taps that reach it of
 * dy[i][oy][ox][co] * w[co][ci][kh][kw], with iy + PT = oy*SH + kh. For a
 * stride S only the taps kh = (iy + PT) mod S, + S, + 2S, ... reach row iy,
 * each at oy = (iy + PT) div S - a: the phases of the stride. The code
 * gathers exactly those, so no dilated (zero-inserted) gradient exists. */
static void conv_emit_input_grad(Emitter *e, const LayerCode *c, const ConvGeom *g)
{
    const char *L = c->name;
    emit(e, "real *restrict wt = (real *)work(ctx, %s_SCRATCH) + %" PRId64
            "; /* [tap][%" PRId64 "][%" PRId64 "] */", L, conv_taps(g) * g->ci * g->co, g->co,
         g->ci);
    conv_emit_repack(e, g, "wt", false);
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
    emit_for(e, "ix", g->w);
    if (g->sw > 1)
        emit(e, "const int px = (ix + %" PRId64 ") %% %" PRId64 ", qx = (ix + %" PRId64
                ") / %" PRId64 ";", g->pl, g->sw, g->pl, g->sw);
    else
        emit(e, "const int qx = ix + %" PRId64 ";", g->pl);
    emit(e, "real acc[%" PRId64 "] = {0};", g->ci);
    if (conv_taps(g) > EMIT_UNROLL_TAPS) {
        conv_emit_phase_loops(e, g);
    } else if (g->sh * g->sw == 1) {
        conv_emit_phase(e, g, 0, 0);
    } else {
        const char *py = g->sh > 1 ? "py" : "0", *px = g->sw > 1 ? "px" : "0";
        emit(e, "switch (%s * %" PRId64 " + %s) {", py, g->sw, px);
        for (int64_t y = 0; y < g->sh; y++)
            for (int64_t x = 0; x < g->sw; x++) {
                emit(e, "case %" PRId64 ": { /* phase (%" PRId64 ", %" PRId64 ") */",
                     y * g->sw + x, y, x);
                conv_emit_phase(e, g, y, x);
                emit(e, "break;");
                emit(e, "}");
            }
        emit(e, "}");
    }
    emit(e, "for (int ci = 0; ci < %" PRId64 "; ci++) dxr[ix * %" PRId64 " + ci] = acc[ci];",
         g->ci, g->ci);
    emit(e, "}");
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
