/* conv.c: Conv, a 2-D cross-correlation as PyTorch's Conv2d; and the
 * sliding-window rule that Conv and the pools share.
 *
 *   in HxWxC -> out OHxOWxn
 *   weight [n, C/G, KH, KW], bias [n]   (PyTorch's layout; G = groups)
 *
 * With groups=G the channels split into G groups: output channel co, of
 * group g = co / (n/G), sums over the C/G input channels g*(C/G) .. of its
 * group only. groups=C is a depthwise convolution.
 *
 * Positional form: Conv(KHxKW, n) = kernel, n; the rest by key. */
#include "tiles.h"

#include <inttypes.h>
#include <stdlib.h>

enum {
    CONV_KERNEL, CONV_N, CONV_STRIDE, CONV_PADDING, CONV_BIAS, CONV_INIT, CONV_GROUPS,
    CONV_NARGS
};

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
    [CONV_GROUPS] = {.key = "groups", .type = ARG_INT, .position = -1, .imin = 1,
                     .imax = CNNC_MAX_ELEMS, .doc = "channel groups (C: depthwise)"},
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
 * say so, since it is usually a mistake in the stride or the window. A
 * window smaller than its stride (ResNet's 1x1 shortcut at stride 2) skips
 * rows between every two windows by design: the last ones are no mistake,
 * and that axis says nothing. */
static void warn_unused(const Layer *l, const Window *w, int64_t ph, int64_t pw, Diag *d)
{
    int64_t rows = w->kh < w->sh ? 0 : (ph - w->kh) % w->sh;
    int64_t cols = w->kw < w->sw ? 0 : (pw - w->kw) % w->sw;
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
    if (!a[CONV_GROUPS].given)
        a[CONV_GROUPS].u.i = 1;
}

/* G must divide both channel counts: each group has C/G inputs, n/G outputs. */
static bool groups_divide(const Layer *l, int64_t c, int64_t n, Diag *d)
{
    const ArgVal *a = l->args;
    int64_t g = a[CONV_GROUPS].u.i;
    if (c % g == 0 && n % g == 0)
        return true;
    diag_error(d, a[CONV_GROUPS].loc, "groups=%" PRId64 " must divide both the input's %" PRId64
               " channels and n=%" PRId64, g, c, n);
    return false;
}

/* HxWxC -> OHxOWxn; weight [n, C/G, KH, KW], bias [n]. */
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
    if (!groups_divide(l, c, n, d))
        return false;
    l->out = shape_map(oh, ow, n);

    /* PyTorch's fans (of the weight's shape): fan_in = C/G*KH*KW,
     * fan_out = n*KH*KW. */
    int64_t area = mul_sat(w.kh, w.kw);
    c /= a[CONV_GROUPS].u.i;
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
    double per_out = (double)(l->in.c / a[CONV_GROUPS].u.i) * (double)a[CONV_KERNEL].u.size.h *
                     (double)a[CONV_KERNEL].u.size.w;
    return 2.0 * (double)l->out.h * (double)l->out.w * (double)l->out.c * per_out;
}

/* ------------------------------------------------------------------------
 * The two tiers
 */

/* The layer's numbers, as both tiers take them. */
static ConvGeom conv_geom(const Layer *l)
{
    const ArgVal *a = l->args;
    return (ConvGeom){.h = l->in.h, .w = l->in.w, .ci = l->in.c,
                      .oh = l->out.h, .ow = l->out.w, .co = l->out.c,
                      .kh = a[CONV_KERNEL].u.size.h, .kw = a[CONV_KERNEL].u.size.w,
                      .sh = a[CONV_STRIDE].u.size.h, .sw = a[CONV_STRIDE].u.size.w,
                      .pt = a[CONV_PADDING].u.pad.top, .pl = a[CONV_PADDING].u.pad.left,
                      .bias = a[CONV_BIAS].u.b, .groups = a[CONV_GROUPS].u.i};
}

static ConvGeom conv_code_geom(const LayerCode *c)
{
    ConvGeom g = conv_geom(c->l);
    g.relu_out = c->relu_out;
    g.relu_in = c->relu_in;
    g.dx_add = c->dx_add[0];
    g.stats_to = c->stats_to;
    g.samples = c->batch;
    return g;
}

static void conv_forward(Emitter *e, const LayerCode *c)
{
    ConvGeom g = conv_code_geom(c);
    if (g.groups > 1)
        tiles_group_forward(e, c, &g);
    else
        tiles_conv_forward(e, c, &g);
}

static void conv_backward(Emitter *e, const LayerCode *c)
{
    ConvGeom g = conv_code_geom(c);
    if (g.groups > 1)
        tiles_group_backward(e, c, &g);
    else
        tiles_conv_backward(e, c, &g);
}

/* The fast tier's repacked weights and gradient sums (tiles_conv.c). */
static int64_t conv_scratch_bytes(const Layer *l, int64_t batch, int64_t lane_samples,
                                  int64_t real_size)
{
    (void)batch, (void)lane_samples;
    ConvGeom g = conv_geom(l);
    return g.groups > 1 ? tiles_group_scratch_bytes(&g, real_size)
                        : tiles_conv_scratch_bytes(&g, real_size);
}

/* The statistics of y for a BatchNorm after it, per tile (tiles_conv.c) or
 * per row (tiles_group.c). */
static int64_t conv_stats_bytes(const Layer *l, int64_t batch, int64_t lane_samples,
                                int64_t real_size)
{
    ConvGeom g = conv_geom(l);
    int64_t samples = batch > lane_samples ? batch : lane_samples;
    return g.groups > 1 ? tiles_group_stats_bytes(&g, samples, real_size)
                        : tiles_conv_stats_bytes(&g, samples, real_size);
}

/* ------------------------------------------------------------------------
 * The reference tier: the sums of the math, one output (or input) element
 * at a time, for a person to read and for the fast tier to be checked
 * against. Element (i, y, x, c) of an NHWC map of H x W x C is at
 * ((i*H + y)*W + x)*C + c; w[co][ci][kh][kw] at ((co*C + ci)*KH + kh)*KW + kw.
 */

/* "oy*2 + kh - 1" (the input row a tap reads), without a stride of 1 or a
 * padding of 0. */
static const char *tap_at(char *buf, size_t size, const char *o, int64_t s, const char *k,
                          int64_t p)
{
    int len = snprintf(buf, size, "%s", o);
    if (s != 1)
        len += snprintf(buf + len, size - (size_t)len, " * %" PRId64, s);
    len += snprintf(buf + len, size - (size_t)len, " + %s", k);
    if (p != 0)
        snprintf(buf + len, size - (size_t)len, " - %" PRId64, p);
    return buf;
}

/* The comment above a reference Conv: what it computes, with its numbers. */
static void conv_ref_comment(Emitter *e, const LayerCode *c, const ConvGeom *g)
{
    char iy[64], ix[64];
    emit(e, "/* %s: Conv, kernel %" PRId64 "x%" PRId64 ", %" PRId64 " filters, stride %" PRId64
            "x%" PRId64 ", padding %" PRId64 " top, %" PRId64 " left: %" PRId64 "x%" PRId64
            "x%" PRId64 " -> %" PRId64 "x%" PRId64 "x%" PRId64, c->name, g->kh, g->kw, g->co,
         g->sh, g->sw, g->pt, g->pl, g->h, g->w, g->ci, g->oh, g->ow, g->co);
    emit(e, " *   y[i][oy][ox][co] = %ssum over kh < %" PRId64 ", kw < %" PRId64 ", ci < %" PRId64
            " of", g->bias ? "b[co] + " : "", g->kh, g->kw, g->ci / g->groups);
    emit(e, " *       w[co][ci][kh][kw] * x[i][%s][%s][%s]",
         tap_at(iy, sizeof iy, "oy", g->sh, "kh", g->pt),
         tap_at(ix, sizeof ix, "ox", g->sw, "kw", g->pl), g->groups > 1 ? "c0 + ci" : "ci");
    if (g->groups > 1)
        emit(e, " *   in %" PRId64 " groups: c0 = (co / %" PRId64 ") * %" PRId64
                ", the first input channel of co's group", g->groups, g->co / g->groups,
             g->ci / g->groups);
    if (conv_rows_padded(g) || conv_cols_padded(g))
        emit(e, " *   (a tap that falls in the padding, outside the input, adds nothing) */");
    else
        emit(e, " *   (every tap of every output lands inside the input) */");
}

/* "const int iy = oy*S + kh - P;" and the test that it is inside the input,
 * when padding can put it outside. */
static void conv_ref_tap_row(Emitter *e, const char *var, const char *o, int64_t s,
                             const char *k, int64_t p, int64_t in, bool padded)
{
    char at[64];
    emit(e, "const int %s = %s;", var, tap_at(at, sizeof at, o, s, k, p));
    if (padded)
        emit(e, "if (%s < 0 || %s >= %" PRId64 ") continue;", var, var, in);
}

/* Input channels per group: C/G (C without groups). */
static int64_t conv_group_in(const ConvGeom *g)
{
    return g->ci / g->groups;
}

/* "const int c0 = ...;": the first input channel of output co's group. */
static void conv_ref_group_start(Emitter *e, const ConvGeom *g)
{
    if (g->groups > 1)
        emit(e, "const int c0 = co / %" PRId64 " * %" PRId64 "; /* co's group's first input */",
             g->co / g->groups, conv_group_in(g));
}

static void conv_ref_forward(Emitter *e, const LayerCode *c)
{
    ConvGeom g = conv_code_geom(c);
    conv_ref_comment(e, c, &g);
    emit_forward_begin(e, c);
    emit(e, "const real *w = param(ln) + %s_weight; /* [%" PRId64 "][%" PRId64 "][%" PRId64
            "][%" PRId64 "] */", c->name, g.co, conv_group_in(&g), g.kh, g.kw);
    if (g.bias)
        emit(e, "const real *b = param(ln) + %s_bias; /* [%" PRId64 "] */", c->name, g.co);
    emit(e, "for (int i = 0; i < n; i++) {");
    emit_for(e, "oy", g.oh);
    emit_for(e, "ox", g.ow);
    emit_for(e, "co", g.co);
    emit(e, "real sum = %s;", g.bias ? "b[co]" : "0");
    conv_ref_group_start(e, &g);
    emit_for(e, "kh", g.kh);
    conv_ref_tap_row(e, "iy", "oy", g.sh, "kh", g.pt, g.h, conv_rows_padded(&g));
    emit_for(e, "kw", g.kw);
    conv_ref_tap_row(e, "ix", "ox", g.sw, "kw", g.pl, g.w, conv_cols_padded(&g));
    emit_for(e, "ci", conv_group_in(&g));
    emit(e, "sum += w[((co * %" PRId64 " + ci) * %" PRId64 " + kh) * %" PRId64 " + kw] *",
         conv_group_in(&g), g.kh, g.kw);
    emit(e, "       x[(((size_t)i * %" PRId64 " + iy) * %" PRId64 " + ix) * %" PRId64 " + %sci];",
         g.h, g.w, g.ci, g.groups > 1 ? "c0 + " : "");
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    emit(e, "y[(((size_t)i * %" PRId64 " + oy) * %" PRId64 " + ox) * %" PRId64 " + co] = sum;",
         g.oh, g.ow, g.co);
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    emit_function_end(e);
}

/* One axis of the input gradient's derivation: which taps of the kernel
 * reach input position q, and from which output positions, phase by phase:
 *   o*S + k - P = q, so k = (q + P) - o*S: k has the remainder of q + P
 *   divided by S, and o = ((q + P) - k) / S. */
static void conv_ref_phases(Emitter *e, const char *q, const char *o, const char *k,
                            int64_t ksize, int64_t s, int64_t p, int64_t out)
{
    if (s == 1) {
        emit(e, " *   %s = %s - %s%s: every tap %s < %" PRId64 " reaches %s, from %s = %s%s - %s.",
             o, q, k, p ? " + P" : "", k, ksize, q, o, q, p ? " + P" : "", k);
        return;
    }
    for (int64_t r = 0; r < s; r++) {
        char taps[256] = "", from[256] = "";
        size_t tl = 0, fl = 0;
        for (int64_t a = 0; r + a * s < ksize; a++) {
            tl += (size_t)snprintf(taps + tl, sizeof taps - tl, "%s%" PRId64, a ? ", " : "",
                                   r + a * s);
            if (a == 0)
                fl += (size_t)snprintf(from + fl, sizeof from - fl, "%s", "m");
            else
                fl += (size_t)snprintf(from + fl, sizeof from - fl, ", m - %" PRId64, a);
        }
        char lhs[64];
        if (p)
            snprintf(lhs, sizeof lhs, "%s + %" PRId64 " = %" PRId64 "m + %" PRId64, q, p, s, r);
        else
            snprintf(lhs, sizeof lhs, "%s = %" PRId64 "m + %" PRId64, q, s, r);
        if (tl)
            emit(e, " *     %-18s taps %s = %s, from %s = %s", lhs, k, taps, o, from);
        else
            emit(e, " *     %-18s no tap reaches it", lhs);
    }
    emit(e, " *   (an %s outside 0..%" PRId64 " adds nothing: the edges get fewer).", o, out - 1);
}

/* The comment above the reference backward: the three sums, and the
 * derivation of dx for this layer's stride. */
static void conv_ref_backward_comment(Emitter *e, const LayerCode *c, const ConvGeom *g)
{
    char iy[64], ix[64];
    tap_at(iy, sizeof iy, "oy", g->sh, "kh", g->pt);
    tap_at(ix, sizeof ix, "ox", g->sw, "kw", g->pl);
    emit(e, "/* %s backward, from dy[n][%" PRId64 "][%" PRId64 "][%" PRId64 "]:", c->name, g->oh,
         g->ow, g->co);
    emit(e, " *   dw[co][ci][kh][kw] += sum over i, oy, ox of dy[i][oy][ox][co] * "
            "x[i][%s][%s][%s]", iy, ix, g->groups > 1 ? "c0 + ci" : "ci");
    if (g->groups > 1)
        emit(e, " *   (%" PRId64 " groups: ci < %" PRId64 ", c0 the first input channel of co's "
                "group; dx sums over the co of ci's group only)", g->groups, g->ci / g->groups);
    if (g->bias)
        emit(e, " *   db[co] += sum over i, oy, ox of dy[i][oy][ox][co]");
    if (!c->need_dx[0] && g->sh == 1 && g->sw == 1) {
        emit(e, " *   (no layer before it learns: no dx) */");
        return;
    }
    if (!c->need_dx[0])
        emit(e, " * No layer before it learns, so dx is not computed; were it, it would be");
    emit(e, " *   dx[i][iy][ix][ci] += sum over co and the taps that reach (iy, ix) of");
    emit(e, " *                        dy[i][oy][ox][co] * w[co][ci][kh][kw],");
    emit(e, " *   where oy, kh are such that %s = iy (and ox, kw such that %s = ix).", iy, ix);
    emit(e, " * Rows (the stride is %" PRId64 "):", g->sh);
    conv_ref_phases(e, "iy", "oy", "kh", g->kh, g->sh, g->pt, g->oh);
    emit(e, " * Columns (the stride is %" PRId64 "):", g->sw);
    conv_ref_phases(e, "ix", "ox", "kw", g->kw, g->sw, g->pl, g->ow);
    if (g->sh > 1 || g->sw > 1) {
        emit(e, " * Gathering by the remainder like this is what \"dilating dy\" does: a dy with");
        emit(e, " * %" PRId64 " row%s and %" PRId64 " column%s of zeros put between its own "
                "would feed the other taps", g->sh - 1, g->sh == 2 ? "" : "s", g->sw - 1,
             g->sw == 2 ? "" : "s");
        emit(e, " * zeros. %s */", c->need_dx[0] ? "Below, the test (t %% S != 0) skips exactly "
                                                 "those taps." : "Nothing of it runs here.");
    } else {
        emit(e, " * (This is the correlation of dy with the kernel turned by 180 degrees.) */");
    }
}

static void conv_ref_backward(Emitter *e, const LayerCode *c)
{
    ConvGeom g = conv_code_geom(c);
    conv_ref_backward_comment(e, c, &g);
    emit_backward_begin(e, c);
    emit_dx_clear(e, c);
    emit(e, "(void)y;");
    emit(e, "const real *w = param(ln) + %s_weight;", c->name);
    emit(e, "real *dw = grad(ln) + %s_weight;", c->name);
    if (g.bias)
        emit(e, "real *db = grad(ln) + %s_bias;", c->name);
    if (!c->need_dx[0])
        emit(e, "(void)w, (void)dx;");
    emit(e, "for (int i = 0; i < n; i++) {");
    emit(e, "const real *xi = x + (size_t)i * %" PRId64 ";", g.h * g.w * g.ci);
    emit(e, "const real *dyi = dy + (size_t)i * %" PRId64 ";", g.oh * g.ow * g.co);
    emit_comment(e, "dw and db: every output's dy times what each tap read");
    emit_for(e, "oy", g.oh);
    emit_for(e, "ox", g.ow);
    emit_for(e, "co", g.co);
    emit(e, "const real d = dyi[(oy * %" PRId64 " + ox) * %" PRId64 " + co];", g.ow, g.co);
    if (g.bias)
        emit(e, "db[co] += d;");
    conv_ref_group_start(e, &g);
    emit_for(e, "kh", g.kh);
    conv_ref_tap_row(e, "iy", "oy", g.sh, "kh", g.pt, g.h, conv_rows_padded(&g));
    emit_for(e, "kw", g.kw);
    conv_ref_tap_row(e, "ix", "ox", g.sw, "kw", g.pl, g.w, conv_cols_padded(&g));
    emit_for(e, "ci", conv_group_in(&g));
    emit(e, "dw[((co * %" PRId64 " + ci) * %" PRId64 " + kh) * %" PRId64 " + kw] += d * "
            "xi[(iy * %" PRId64 " + ix) * %" PRId64 " + %sci];", conv_group_in(&g), g.kh, g.kw,
         g.w, g.ci, g.groups > 1 ? "c0 + " : "");
    for (int k = 0; k < 6; k++)
        emit(e, "}");
    if (c->need_dx[0]) {
        emit_comment(e, "dx: each input gathers the taps that reach it (see above)");
        emit(e, "real *dxi = dx + (size_t)i * %" PRId64 ";", g.h * g.w * g.ci);
        emit_for(e, "iy", g.h);
        emit_for(e, "ix", g.w);
        emit_for(e, "ci", g.ci);
        emit(e, "real sum = 0;");
        emit_for(e, "kh", g.kh);
        char phase[64] = "";
        if (g.sh > 1)
            snprintf(phase, sizeof phase, " || ty %% %" PRId64 " != 0", g.sh);
        emit(e, "const int ty = iy + %" PRId64 " - kh; /* = oy * %" PRId64 " */", g.pt, g.sh);
        emit(e, "if (ty < 0%s || ty / %" PRId64 " >= %" PRId64 ") continue;", phase, g.sh, g.oh);
        emit(e, "const int oy = ty / %" PRId64 ";", g.sh);
        emit_for(e, "kw", g.kw);
        emit(e, "const int tx = ix + %" PRId64 " - kw; /* = ox * %" PRId64 " */", g.pl, g.sw);
        phase[0] = '\0';
        if (g.sw > 1)
            snprintf(phase, sizeof phase, " || tx %% %" PRId64 " != 0", g.sw);
        emit(e, "if (tx < 0%s || tx / %" PRId64 " >= %" PRId64 ") continue;", phase, g.sw, g.ow);
        emit(e, "const int ox = tx / %" PRId64 ";", g.sw);
        if (g.groups > 1) {
            int64_t opg = g.co / g.groups;
            emit(e, "for (int co = ci / %" PRId64 " * %" PRId64 "; co < (ci / %" PRId64
                    " + 1) * %" PRId64 "; co++) { /* the outputs of ci's group */",
                 conv_group_in(&g), opg, conv_group_in(&g), opg);
            emit(e, "sum += dyi[(oy * %" PRId64 " + ox) * %" PRId64 " + co] *", g.ow, g.co);
            emit(e, "       w[((co * %" PRId64 " + ci %% %" PRId64 ") * %" PRId64 " + kh) * %" PRId64
                    " + kw];", conv_group_in(&g), conv_group_in(&g), g.kh, g.kw);
        } else {
            emit_for(e, "co", g.co);
            emit(e, "sum += dyi[(oy * %" PRId64 " + ox) * %" PRId64 " + co] *", g.ow, g.co);
            emit(e, "       w[((co * %" PRId64 " + ci) * %" PRId64 " + kh) * %" PRId64 " + kw];",
                 g.ci, g.kh, g.kw);
        }
        emit(e, "}");
        emit(e, "}");
        emit(e, "}");
        emit(e, "dxi[(iy * %" PRId64 " + ix) * %" PRId64 " + ci] += sum;", g.w, g.ci);
        emit(e, "}");
        emit(e, "}");
        emit(e, "}");
    }
    emit(e, "}");
    emit_function_end(e);
}

const LayerKind layer_conv = {
    .name = "Conv",
    .auto_prefix = "conv",
    .args = conv_args,
    .nargs = CONV_NARGS,
    .infer = conv_infer,
    .flops = conv_flops,
    .scratch_bytes = conv_scratch_bytes,
    .stats_bytes = conv_stats_bytes,
    .emit_forward = conv_forward,
    .emit_backward = conv_backward,
    .ref_forward = conv_ref_forward,
    .ref_backward = conv_ref_backward,
    .ignores_own_output = true, /* backward reads x and dy, never y */
    .relu_forward = true,
    .relu_backward = true,
};
