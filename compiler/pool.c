/* pool.c: MaxPool and AvgPool, which share their schema and window rule.
 *
 *   in HxWxC -> out OHxOWxC, no parameters
 *   stride defaults to the window (PyTorch's MaxPool2d); padding is valid or
 *   explicit (P or PHxPW), at most half the window as PyTorch requires, so
 *   that no window sees mostly padding. AvgPool never counts padding into
 *   the mean (PyTorch's count_include_pad=False).
 *
 * Positional form: MaxPool(KHxKW, S) = size, stride; e.g. MaxPool(3x3, stride=2). */
#include "cnnc.h"

#include <inttypes.h>

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

const LayerKind layer_maxpool = {
    .name = "MaxPool",
    .auto_prefix = "maxpool",
    .args = pool_args,
    .nargs = POOL_NARGS,
    .infer = pool_infer,
    .flops = pool_flops,
};

const LayerKind layer_avgpool = {
    .name = "AvgPool",
    .auto_prefix = "avgpool",
    .args = pool_args,
    .nargs = POOL_NARGS,
    .infer = pool_infer,
    .flops = pool_flops,
};
