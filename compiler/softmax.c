/* softmax.c: Softmax over a vector, the last layer only (the checker
 * enforces must_be_last; with loss=cross_entropy the trainer fuses it with
 * the loss).
 *
 *   in F -> out F, no parameters, no arguments */
#include "cnnc.h"

/* F -> F. */
static bool softmax_infer(Layer *l, Diag *d)
{
    if (!layer_need_vector(l, "insert Flatten or GlobalAvgPool before it", d))
        return false;
    l->out = l->in;
    return true;
}

const LayerKind layer_softmax = {
    .name = "Softmax",
    .auto_prefix = "softmax",
    .must_be_last = true,
    .infer = softmax_infer,
    .flops = layer_no_flops,
};
