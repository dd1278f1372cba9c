/* dense.c: Dense, a fully connected layer as PyTorch's Linear.
 *
 *   in F (a vector) -> out n
 *   weight [n, F], bias [n]   (PyTorch's layout: out, in)
 *
 * Positional form: Dense(n) = n; e.g. Dense(10, bias=false). */
#include "cnnc.h"

enum { DENSE_N, DENSE_BIAS, DENSE_INIT, DENSE_NARGS };

static const ArgSpec dense_args[DENSE_NARGS] = {
    [DENSE_N] = {.key = "n", .type = ARG_INT, .required = true, .position = 0, .imin = 1,
                 .imax = CNNC_MAX_ELEMS, .doc = "output features"},
    [DENSE_BIAS] = {.key = "bias", .type = ARG_BOOL, .position = -1, .doc = "add a bias"},
    [DENSE_INIT] = {.key = "init", .type = ARG_CHOICE, .position = -1, .choices = init_names,
                    .doc = "weight initializer"},
};

/* F -> n; weight [n, F], bias [n]. PyTorch's fans: fan_in F, fan_out n. */
static bool dense_infer(Layer *l, Diag *d)
{
    ArgVal *a = l->args;
    if (!layer_need_vector(l, "insert Flatten before it", d))
        return false;
    if (!a[DENSE_BIAS].given)
        a[DENSE_BIAS].u.b = true;
    int64_t n = a[DENSE_N].u.i, f = l->in.c;
    l->out = shape_vector(n);
    int64_t weight[2] = {n, f}, bias[1] = {n};
    if (!layer_add_param(l, "weight", 2, weight, f, n, d))
        return false;
    if (a[DENSE_BIAS].u.b && !layer_add_param(l, "bias", 1, bias, f, n, d))
        return false;
    return true;
}

/* One multiply-add per weight. */
static double dense_flops(const Layer *l)
{
    return 2.0 * (double)l->in.c * (double)l->out.c;
}

const LayerKind layer_dense = {
    .name = "Dense",
    .auto_prefix = "dense",
    .args = dense_args,
    .nargs = DENSE_NARGS,
    .infer = dense_infer,
    .flops = dense_flops,
};
