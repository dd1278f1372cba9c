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

const LayerKind layer_conv = {
    .name = "Conv",
    .auto_prefix = "conv",
    .args = conv_args,
    .nargs = CONV_NARGS,
    .infer = conv_infer,
    .flops = conv_flops,
};
