/* flatten.c: Flatten, a map seen as a vector.
 *
 *   in HxWxC -> out H*W*C, no parameters, no arguments.
 * The data do not move: the order of the vector is the order the map has in
 * memory. (A Dense after it numbers its weights' inputs in PyTorch's flatten
 * order, c*H*W + y*W + x; that is the Dense emitter's business.) */
#include "cnnc.h"

/* HxWxC -> H*W*C. */
static bool flatten_infer(Layer *l, Diag *d)
{
    if (l->in.rank == 1) {
        char buf[64];
        diag_error(d, l->loc, "Flatten needs an HxWxC map, but %s (line %d) already gives "
                              "a vector of %s",
                   l->in_from, l->in_line, shape_str(l->in, buf, sizeof buf));
        diag_hint(d, "remove this Flatten");
        return false;
    }
    l->out = shape_vector(shape_elems(l->in));
    return true;
}

const LayerKind layer_flatten = {
    .name = "Flatten",
    .auto_prefix = "flatten",
    .infer = flatten_infer,
    .flops = layer_no_flops,
};
