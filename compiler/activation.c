/* activation.c: the elementwise activations ReLU, LeakyReLU, Sigmoid, Tanh,
 * SiLU and GELU.
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
 * The activations' code: one flat loop over the n*S values each way (in
 * the fast tier shared out among the threads in chunks that vectorize).
 * Backward needs x (LeakyReLU) or y (the others) besides dy.
 */

typedef struct ActCode {
    const char *formula;   /* for the comment: "y = max(x, 0)" */
    const char *forward;   /* y[j] from x[j] */
    const char *backward;  /* dx[j] from dy[j] and x[j] or y[j] */
    const char *derivative; /* for the comment: "dx = dy where y > 0" */
    bool uses_x;           /* backward reads x (else y) */
} ActCode;

/* Chunks of at least this many values: enough work to be worth a thread. */
enum { ACT_GRAIN = 4096 };

/* "const real alpha = ...;" for LeakyReLU. */
static void emit_alpha(Emitter *e, const char *alpha)
{
    if (alpha)
        emit_local(e, "alpha", "const real alpha = %s;", alpha);
}

static void activation_forward(Emitter *e, const LayerCode *c, const ActCode *a,
                               const char *alpha)
{
    int64_t count = shape_elems(c->l->in);
    if (c->forward_fused) {
        emit_comment(e, "%s forward: %s, in the layer before as it stores", c->name, a->formula);
        return;
    }
    emit(e, "/* %s, elementwise over x[n][%" PRId64 "] */", a->formula, count);
    emit_forward_begin(e, c);
    emit(e, "(void)ln;");
    emit_alpha(e, alpha);
    char total[64];
    snprintf(total, sizeof total, "n * %" PRId64, count);
    emit_loop(e, c, "j", total, ACT_GRAIN);
    emit(e, "y[j] = %s;", a->forward);
    emit_loop_end(e, c);
    emit_function_end(e);
}

static void activation_backward(Emitter *e, const LayerCode *c, const ActCode *a,
                                const char *alpha)
{
    int64_t count = shape_elems(c->l->in);
    emit(e, "/* dx[n][%" PRId64 "] %s dy[n][%" PRId64 "] * f'(x): %s */", count, dx_op(c, 0),
         count, a->derivative);
    emit_backward_begin(e, c);
    emit(e, "(void)ln;");
    emit(e, "(void)%s;", a->uses_x ? "y" : "x");
    emit_alpha(e, alpha);
    char total[64];
    snprintf(total, sizeof total, "n * %" PRId64, count);
    emit_loop(e, c, "j", total, ACT_GRAIN);
    emit(e, "dx[j] %s %s;", dx_op(c, 0), a->backward);
    emit_loop_end(e, c);
    emit_function_end(e);
}

/* x < 0 ? 0 : x lets a NaN through, as PyTorch's relu does. */
static const ActCode relu_code = {.formula = "y = max(x, 0)",
                                  .forward = "x[j] < 0 ? 0 : x[j]",
                                  .backward = "y[j] > 0 ? dy[j] : 0",
                                  .derivative = "1 where y > 0, else 0"};

static void relu_forward(Emitter *e, const LayerCode *c)
{
    activation_forward(e, c, &relu_code, NULL);
}

static void relu_backward(Emitter *e, const LayerCode *c)
{
    activation_backward(e, c, &relu_code, NULL);
}

static const ActCode leaky_code = {.formula = "y = x > 0 ? x : alpha*x",
                                   .forward = "x[j] > 0 ? x[j] : alpha * x[j]",
                                   .backward = "x[j] > 0 ? dy[j] : alpha * dy[j]",
                                   .derivative = "1 where x > 0, else alpha",
                                   .uses_x = true};

/* alpha goes in as a constant with every digit of the double. */
static const char *leaky_alpha(const LayerCode *c, char *text, size_t size)
{
    double alpha = c->l->args[LEAKY_ALPHA].u.f;
    if (isfinite(alpha))
        snprintf(text, size, "(real)%.17g", alpha);
    else
        snprintf(text, size, "(real)INFINITY");
    return text;
}

static void leaky_forward(Emitter *e, const LayerCode *c)
{
    char alpha[64];
    activation_forward(e, c, &leaky_code, leaky_alpha(c, alpha, sizeof alpha));
}

static void leaky_backward(Emitter *e, const LayerCode *c)
{
    char alpha[64];
    activation_backward(e, c, &leaky_code, leaky_alpha(c, alpha, sizeof alpha));
}

static const ActCode sigmoid_code = {.formula = "y = 1/(1 + exp(-x))",
                                     .forward = "1 / (1 + EXP(-x[j]))",
                                     .backward = "dy[j] * y[j] * (1 - y[j])",
                                     .derivative = "y*(1 - y)"};

static void sigmoid_forward(Emitter *e, const LayerCode *c)
{
    activation_forward(e, c, &sigmoid_code, NULL);
}

static void sigmoid_backward(Emitter *e, const LayerCode *c)
{
    activation_backward(e, c, &sigmoid_code, NULL);
}

static const ActCode tanh_code = {.formula = "y = tanh(x)",
                                  .forward = "TANH(x[j])",
                                  .backward = "dy[j] * (1 - y[j] * y[j])",
                                  .derivative = "1 - y*y"};

static void tanh_forward(Emitter *e, const LayerCode *c)
{
    activation_forward(e, c, &tanh_code, NULL);
}

static void tanh_backward(Emitter *e, const LayerCode *c)
{
    activation_backward(e, c, &tanh_code, NULL);
}

/* x * sigmoid(x); the derivative s (1 + x (1 - s)), s = sigmoid(x). */
static const ActCode silu_code = {.formula = "y = x / (1 + exp(-x))",
                                  .forward = "x[j] / (1 + EXP(-x[j]))",
                                  .backward = "dy[j] * (1 / (1 + EXP(-x[j]))) * "
                                              "(1 + x[j] * (1 - 1 / (1 + EXP(-x[j]))))",
                                  .derivative = "s (1 + x (1 - s)), s = 1/(1 + exp(-x))",
                                  .uses_x = true};

static void silu_forward(Emitter *e, const LayerCode *c)
{
    activation_forward(e, c, &silu_code, NULL);
}

static void silu_backward(Emitter *e, const LayerCode *c)
{
    activation_backward(e, c, &silu_code, NULL);
}

/* PyTorch's default GELU, the exact form with erf; the derivative
 * Phi(x) + x phi(x). */
static const ActCode gelu_code = {.formula = "y = x/2 (1 + erf(x / sqrt 2))",
                                  .forward = "(real)0.5 * x[j] * (1 + ERF(x[j] * "
                                             "(real)0.70710678118654752440))",
                                  .backward = "dy[j] * ((real)0.5 * (1 + ERF(x[j] * "
                                              "(real)0.70710678118654752440)) + x[j] * "
                                              "(real)0.39894228040143267794 * "
                                              "EXP((real)-0.5 * x[j] * x[j]))",
                                  .derivative = "Phi(x) + x phi(x)",
                                  .uses_x = true};

static void gelu_forward(Emitter *e, const LayerCode *c)
{
    activation_forward(e, c, &gelu_code, NULL);
}

static void gelu_backward(Emitter *e, const LayerCode *c)
{
    activation_backward(e, c, &gelu_code, NULL);
}

const LayerKind layer_relu = {
    .name = "ReLU",
    .auto_prefix = "relu",
    .in_place = true,
    .is_relu = true,
    .infer = activation_infer,
    .flops = layer_no_flops,
    .emit_forward = relu_forward,
    .emit_backward = relu_backward,
    .ref_forward = relu_forward,
    .ref_backward = relu_backward,
};

const LayerKind layer_leakyrelu = {
    .name = "LeakyReLU",
    .auto_prefix = "leakyrelu",
    .args = leaky_args,
    .nargs = LEAKY_NARGS,
    .infer = leaky_infer,
    .flops = layer_no_flops,
    .emit_forward = leaky_forward,
    .emit_backward = leaky_backward,
    .ref_forward = leaky_forward,
    .ref_backward = leaky_backward,
};

const LayerKind layer_sigmoid = {
    .name = "Sigmoid",
    .auto_prefix = "sigmoid",
    .in_place = true,
    .infer = activation_infer,
    .flops = layer_no_flops,
    .emit_forward = sigmoid_forward,
    .emit_backward = sigmoid_backward,
    .ref_forward = sigmoid_forward,
    .ref_backward = sigmoid_backward,
};

const LayerKind layer_tanh = {
    .name = "Tanh",
    .auto_prefix = "tanh",
    .in_place = true,
    .infer = activation_infer,
    .flops = layer_no_flops,
    .emit_forward = tanh_forward,
    .emit_backward = tanh_backward,
    .ref_forward = tanh_forward,
    .ref_backward = tanh_backward,
};

const LayerKind layer_silu = {
    .name = "SiLU",
    .auto_prefix = "silu",
    .infer = activation_infer,
    .flops = layer_no_flops,
    .emit_forward = silu_forward,
    .emit_backward = silu_backward,
    .ref_forward = silu_forward,
    .ref_backward = silu_backward,
};

const LayerKind layer_gelu = {
    .name = "GELU",
    .auto_prefix = "gelu",
    .infer = activation_infer,
    .flops = layer_no_flops,
    .emit_forward = gelu_forward,
    .emit_backward = gelu_backward,
    .ref_forward = gelu_forward,
    .ref_backward = gelu_backward,
};
