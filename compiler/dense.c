/* dense.c: Dense, a fully connected layer as PyTorch's Linear.
 *
 *   in F (a vector) -> out n
 *   weight [n, F], bias [n]   (PyTorch's layout: out, in)
 *
 * Positional form: Dense(n) = n; e.g. Dense(10, bias=false). */
#include "tiles.h"

#include <inttypes.h>

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

/* ------------------------------------------------------------------------
 * The two tiers
 */

static DenseGeom dense_geom(const LayerCode *c)
{
    const Layer *l = c->l;
    return (DenseGeom){.L = c->name, .f = l->in.c, .nout = l->out.c,
                       .bias = l->args[DENSE_BIAS].u.b, .relu_out = c->relu_out,
                       .relu_in = c->relu_in, .dx_add = c->dx_add[0]};
}

static void dense_forward(Emitter *e, const LayerCode *c)
{
    DenseGeom g = dense_geom(c);
    tiles_dense_forward(e, c, &g);
}

static void dense_backward(Emitter *e, const LayerCode *c)
{
    DenseGeom g = dense_geom(c);
    tiles_dense_backward(e, c, &g);
}

/* The fast tier's transposed input, and the kept inputs and gradients of a
 * lane's micro-batches (tiles_dense.c). */
static int64_t dense_scratch_bytes(const Layer *l, int64_t batch, int64_t lane_samples,
                                   int64_t real_size)
{
    DenseGeom g = {.f = l->in.c, .nout = l->out.c};
    return tiles_dense_scratch_bytes(&g, batch, lane_samples, real_size);
}

/* ------------------------------------------------------------------------
 * The reference tier: the three products as sums
 */

static void dense_ref_forward(Emitter *e, const LayerCode *c)
{
    DenseGeom g = dense_geom(c);
    emit(e, "/* y[n][%" PRId64 "] = x[n][%" PRId64 "] w^T%s: y[i][o] = %ssum over k of "
            "w[o][k] * x[i][k], w[%" PRId64 "][%" PRId64 "] (PyTorch's layout) */", g.nout, g.f,
         g.bias ? " + b" : "", g.bias ? "b[o] + " : "", g.nout, g.f);
    emit_forward_begin(e, c);
    emit(e, "const real *w = param(ln) + %s_weight;", g.L);
    if (g.bias)
        emit(e, "const real *b = param(ln) + %s_bias;", g.L);
    emit(e, "for (int i = 0; i < n; i++) {");
    emit_for(e, "o", g.nout);
    emit(e, "real sum = %s;", g.bias ? "b[o]" : "0");
    emit_for(e, "k", g.f);
    emit(e, "sum += w[o * %" PRId64 " + k] * x[(size_t)i * %" PRId64 " + k];", g.f, g.f);
    emit(e, "}");
    emit(e, "y[(size_t)i * %" PRId64 " + o] = sum;", g.nout);
    emit(e, "}");
    emit(e, "}");
    emit_function_end(e);
}

static void dense_ref_backward(Emitter *e, const LayerCode *c)
{
    DenseGeom g = dense_geom(c);
    emit(e, "/* from dy[n][%" PRId64 "]: dw[o][k] += sum over i of dy[i][o] * x[i][k]%s%s */",
         g.nout, g.bias ? "; db[o] += sum over i of dy[i][o]" : "",
         c->need_dx[0] ? "; dx[i][k] += sum over o of dy[i][o] * w[o][k]" : "");
    emit_backward_begin(e, c);
    emit_dx_clear(e, c);
    emit(e, "(void)y;");
    emit(e, "const real *w = param(ln) + %s_weight;", g.L);
    emit(e, "real *dw = grad(ln) + %s_weight;", g.L);
    if (g.bias)
        emit(e, "real *db = grad(ln) + %s_bias;", g.L);
    if (!c->need_dx[0])
        emit(e, "(void)w, (void)dx;");
    emit(e, "for (int i = 0; i < n; i++) {");
    emit(e, "const real *xi = x + (size_t)i * %" PRId64 ", *dyi = dy + (size_t)i * %" PRId64 ";",
         g.f, g.nout);
    emit_for(e, "o", g.nout);
    if (g.bias)
        emit(e, "db[o] += dyi[o];");
    emit_for(e, "k", g.f);
    emit(e, "dw[o * %" PRId64 " + k] += dyi[o] * xi[k];", g.f);
    if (c->need_dx[0])
        emit(e, "dx[(size_t)i * %" PRId64 " + k] += dyi[o] * w[o * %" PRId64 " + k];", g.f,
             g.f);
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    emit_function_end(e);
}

const LayerKind layer_dense = {
    .name = "Dense",
    .auto_prefix = "dense",
    .ignores_own_output = true,
    .relu_forward = true,
    .relu_backward = true,
    .args = dense_args,
    .nargs = DENSE_NARGS,
    .infer = dense_infer,
    .flops = dense_flops,
    .scratch_bytes = dense_scratch_bytes,
    .emit_forward = dense_forward,
    .emit_backward = dense_backward,
    .ref_forward = dense_ref_forward,
    .ref_backward = dense_ref_backward,
};
