/* activation.c: the elementwise activations ReLU, LeakyReLU, Sigmoid, Tanh.
 *
 *   in S -> out S (any shape), no parameters
 *   LeakyReLU(alpha) = LeakyReLU(alpha=0.01): x if x > 0 else alpha*x */
#include "cnnc.h"

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

const LayerKind layer_relu = {
    .name = "ReLU",
    .auto_prefix = "relu",
    .infer = activation_infer,
    .flops = layer_no_flops,
};

const LayerKind layer_leakyrelu = {
    .name = "LeakyReLU",
    .auto_prefix = "leakyrelu",
    .args = leaky_args,
    .nargs = LEAKY_NARGS,
    .infer = leaky_infer,
    .flops = layer_no_flops,
};

const LayerKind layer_sigmoid = {
    .name = "Sigmoid",
    .auto_prefix = "sigmoid",
    .infer = activation_infer,
    .flops = layer_no_flops,
};

const LayerKind layer_tanh = {
    .name = "Tanh",
    .auto_prefix = "tanh",
    .infer = activation_infer,
    .flops = layer_no_flops,
};
