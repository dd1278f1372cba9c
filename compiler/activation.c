/* activation.c: the elementwise activations ReLU, LeakyReLU, Sigmoid, Tanh.
 *
 *   in S -> out S (any shape), no parameters
 *   LeakyReLU(alpha) = LeakyReLU(alpha=0.01): x if x > 0 else alpha*x */
#include "cnnc.h"

#include <inttypes.h>
#include <math.h>

enum { LEAKY_ALPHA, LEAKY_NARGS };

static const ArgSpec leaky_args[LEAKY_NARGS] = {
    [LEAKY_ALPHA] = {.key = "alpha", .type = ARG_FLOAT, .position = 0, .fmin = 0,
                     .fmax = INFINITY, .doc = "slope for x < 0 (0.01)"},
};

/* S -> S: maps and vectors alike. */
static bool activation_infer(Layer *l, Diag *d)
{
    (void)d;
    l->out = l->in;
    return true;
}

static bool leaky_infer(Layer *l, Diag *d)
{
    if (!l->args[LEAKY_ALPHA].given)
        l->args[LEAKY_ALPHA].u.f = 0.01;
    return activation_infer(l, d);
}

/* ------------------------------------------------------------------------
 * The activations' code: one flat loop over the n*S values each way, in
 * parallel chunks that vectorize. Backward needs x (LeakyReLU) or y (the
 * others) besides dy.
 */

typedef struct ActCode {
    const char *formula;   /* for the comment: "y = max(x, 0)" */
    const char *forward;   /* y[j] from x[j] */
    const char *backward;  /* dx[j] from dy[j] and x[j] or y[j] */
    bool uses_x;           /* backward reads x (else y) */
} ActCode;

static void activation_emit_forward(Emitter *e, const LayerCode *c, const ActCode *a,
                                    const char *alpha, int64_t count)
{
    emit(e, "/* %s, elementwise over x[n][%" PRId64 "] */", a->formula, count);
    emit_forward_begin(e, c);
    emit(e, "(void)ctx;");
    if (alpha)
        emit(e, "const real alpha = %s;", alpha);
    emit(e, "const size_t count = (size_t)n * %" PRId64 ";", count);
    emit(e, "PARALLEL_FOR");
    emit(e, "for (size_t j = 0; j < count; j++) y[j] = %s;", a->forward);
    emit(e, "}");
    emit_blank(e);
}

static void activation_emit_code(Emitter *e, const LayerCode *c, const ActCode *a,
                                 const char *alpha)
{
    int64_t count = shape_elems(c->l->in);
    if (c->forward_fused)
        emit_comment(e, "%s forward: %s, in the layer before as it stores", c->name, a->formula);
    else
        activation_emit_forward(e, c, a, alpha, count);
    if (c->backward_fused) {
        emit_comment(e, "%s backward: in the layer after, which zeroes its dx where its input"
                        " (this y) is 0", c->name);
        return;
    }
    if (!c->need_dx) {
        emit_backward_nothing(e, c);
        return;
    }
    emit(e, "/* dx[n][%" PRId64 "] from dy[n][%" PRId64 "] and %s */", count, count,
         a->uses_x ? "x" : "y");
    emit_backward_begin(e, c);
    emit(e, "(void)ctx;");
    emit(e, "(void)%s;", a->uses_x ? "y" : "x");
    if (alpha)
        emit(e, "const real alpha = %s;", alpha);
    emit(e, "const size_t count = (size_t)n * %" PRId64 ";", count);
    emit(e, "PARALLEL_FOR");
    emit(e, "for (size_t j = 0; j < count; j++) dx[j] = %s;", a->backward);
    emit(e, "}");
}

static void relu_emit(Emitter *e, const LayerCode *c)
{
    /* x < 0 ? 0 : x lets a NaN through, as PyTorch's relu does. */
    static const ActCode a = {.formula = "y = max(x, 0)",
                              .forward = "x[j] < 0 ? 0 : x[j]",
                              .backward = "y[j] > 0 ? dy[j] : 0"};
    activation_emit_code(e, c, &a, NULL);
}

/* alpha goes in as a constant with every digit of the double. */
static void leaky_emit(Emitter *e, const LayerCode *c)
{
    static const ActCode a = {.formula = "y = x > 0 ? x : alpha*x",
                              .forward = "x[j] > 0 ? x[j] : alpha * x[j]",
                              .backward = "x[j] > 0 ? dy[j] : alpha * dy[j]",
                              .uses_x = true};
    double alpha = c->l->args[LEAKY_ALPHA].u.f;
    char text[64];
    if (isfinite(alpha))
        snprintf(text, sizeof text, "(real)%.17g", alpha);
    else
        snprintf(text, sizeof text, "(real)INFINITY");
    activation_emit_code(e, c, &a, text);
}

static void sigmoid_emit(Emitter *e, const LayerCode *c)
{
    static const ActCode a = {.formula = "y = 1/(1 + exp(-x)); dx = dy*y*(1 - y)",
                              .forward = "1 / (1 + EXP(-x[j]))",
                              .backward = "dy[j] * y[j] * (1 - y[j])"};
    activation_emit_code(e, c, &a, NULL);
}

static void tanh_emit(Emitter *e, const LayerCode *c)
{
    static const ActCode a = {.formula = "y = tanh(x); dx = dy*(1 - y*y)",
                              .forward = "TANH(x[j])",
                              .backward = "dy[j] * (1 - y[j] * y[j])"};
    activation_emit_code(e, c, &a, NULL);
}

const LayerKind layer_relu = {
    .name = "ReLU",
    .auto_prefix = "relu",
    .in_place = true,
    .infer = activation_infer,
    .flops = layer_no_flops,
    .emit = relu_emit,
};

const LayerKind layer_leakyrelu = {
    .name = "LeakyReLU",
    .auto_prefix = "leakyrelu",
    .args = leaky_args,
    .nargs = LEAKY_NARGS,
    .infer = leaky_infer,
    .flops = layer_no_flops,
    .emit = leaky_emit,
};

const LayerKind layer_sigmoid = {
    .name = "Sigmoid",
    .auto_prefix = "sigmoid",
    .in_place = true,
    .infer = activation_infer,
    .flops = layer_no_flops,
    .emit = sigmoid_emit,
};

const LayerKind layer_tanh = {
    .name = "Tanh",
    .auto_prefix = "tanh",
    .in_place = true,
    .infer = activation_infer,
    .flops = layer_no_flops,
    .emit = tanh_emit,
};
