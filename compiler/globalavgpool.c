/* globalavgpool.c: GlobalAvgPool, the mean of each channel over the map,
 * as Keras' GlobalAveragePooling2D (PyTorch: AdaptiveAvgPool2d(1) + flatten).
 *
 *   in HxWxC -> out C (a vector), no parameters, no arguments */
#include "cnnc.h"

/* HxWxC -> C. */
static bool globalavgpool_infer(Layer *l, Diag *d)
{
    if (!layer_need_map(l, NULL, d))
        return false;
    l->out = shape_vector(l->in.c);
    return true;
}

const LayerKind layer_globalavgpool = {
    .name = "GlobalAvgPool",
    .auto_prefix = "globalavgpool",
    .args = NULL,
    .nargs = 0,
    .infer = globalavgpool_infer,
    .flops = layer_no_flops,
};
