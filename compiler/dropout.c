/* dropout.c: Dropout, inverted dropout as PyTorch's: while training, zero
 * each value with probability p and scale the rest by 1/(1-p); identity at
 * eval time.
 *
 *   in S -> out S (any shape), no parameters
 * Positional form: Dropout(p) = p, default 0.5. */
#include "cnnc.h"

enum { DROPOUT_P, DROPOUT_NARGS };

static const ArgSpec dropout_args[DROPOUT_NARGS] = {
    [DROPOUT_P] = {.key = "p", .type = ARG_FLOAT, .position = 0, .fmin = 0, .fmax = 1,
                   .fmax_open = true, .doc = "probability of zeroing a value (0.5)"},
};

/* S -> S. */
static bool dropout_infer(Layer *l, Diag *d)
{
    (void)d;
    if (!l->args[DROPOUT_P].given)
        l->args[DROPOUT_P].u.f = 0.5;
    l->out = l->in;
    return true;
}

const LayerKind layer_dropout = {
    .name = "Dropout",
    .auto_prefix = "dropout",
    .args = dropout_args,
    .nargs = DROPOUT_NARGS,
    .infer = dropout_infer,
    .flops = layer_no_flops,
};
