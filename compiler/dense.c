/* dense.c: Dense, a fully connected layer as PyTorch's Linear.
 *
 *   in F (a vector) -> out n
 *   weight [n, F], bias [n]   (PyTorch's layout: out, in)
 *
 * Positional form: Dense(n) = n; e.g. Dense(10, bias=false). */
#include "cnnc.h"

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
 * Dense's code
 *
 * Without -ffast-math a sum of floats does not vectorize, so no loop here
 * sums along its innermost index: each innermost loop updates a row of
 * independent accumulators, acc[j] += v * row[j]. Forward wants w
 * transposed for that, so it repacks the weight [N][F] into wt[F][N] in its
 * scratch on each call. Rows (samples, or outputs for dw) go in blocks of
 * DENSE_ROWS, so that each weight (or input) row loaded serves the whole
 * block; every value is still summed by one thread in a fixed order.
 */

#define DENSE_ROWS 4

/* The repacked weight wt[F][N]. */
static int64_t dense_scratch_bytes(const Layer *l, int64_t batch, int64_t real_size)
{
    (void)batch;
    return l->in.c * l->out.c * real_size;
}

/* Opens a parallel loop over blocks of DENSE_ROWS rows r0.. of limit
 * (one level to close), with rows, the rows in this block. */
static void dense_emit_blocks(Emitter *e, const char *r0, const char *limit)
{
    emit(e, "PARALLEL_FOR");
    emit(e, "for (int %s = 0; %s < %s; %s += %d) {", r0, r0, limit, r0, DENSE_ROWS);
    emit(e, "const int rows = %s - %s < %d ? %s - %s : %d;", limit, r0, DENSE_ROWS, limit, r0,
         DENSE_ROWS);
}

static void dense_emit_forward(Emitter *e, const LayerCode *c, int64_t f, int64_t nout,
                               bool bias)
{
    const char *L = c->name;
    emit(e, "/* y[n][%" PRId64 "] = x[n][%" PRId64 "] w^T%s, w[%" PRId64 "][%" PRId64 "]"
            " (PyTorch's layout) repacked to wt[%" PRId64 "][%" PRId64 "] in scratch */",
         nout, f, bias ? " + b" : "", nout, f, f, nout);
    emit_forward_begin(e, c);
    emit(e, "const real *restrict w = param(ctx) + %s_weight;", L);
    if (bias)
        emit(e, "const real *restrict b = param(ctx) + %s_bias;", L);
    emit(e, "real *restrict wt = work(ctx, %s_SCRATCH);", L);
    emit(e, "PARALLEL_FOR");
    emit(e, "for (int k = 0; k < %" PRId64 "; k++)", f);
    emit(e, "    for (int o = 0; o < %" PRId64 "; o++) wt[(size_t)k * %" PRId64
            " + o] = w[(size_t)o * %" PRId64 " + k];", nout, nout, f);
    dense_emit_blocks(e, "i0", "n");
    emit(e, "real *restrict yb = y + (size_t)i0 * %" PRId64 ";", nout);
    emit(e, "for (int r = 0; r < rows; r++)");
    emit(e, "    for (int o = 0; o < %" PRId64 "; o++) yb[(size_t)r * %" PRId64 " + o] = %s;",
         nout, nout, bias ? "b[o]" : "0");
    emit_for(e, "k", f);
    emit(e, "const real *restrict wk = wt + (size_t)k * %" PRId64 ";", nout);
    emit(e, "for (int r = 0; r < rows; r++) {");
    emit(e, "const real xv = x[(size_t)(i0 + r) * %" PRId64 " + k];", f);
    emit(e, "real *restrict yr = yb + (size_t)r * %" PRId64 ";", nout);
    emit(e, "for (int o = 0; o < %" PRId64 "; o++) yr[o] += xv * wk[o];", nout);
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
}

static void dense_emit_backward(Emitter *e, const LayerCode *c, int64_t f, int64_t nout,
                                bool bias)
{
    const char *L = c->name;
    emit(e, "/* from dy[n][%" PRId64 "]: dw[%" PRId64 "][%" PRId64 "] = dy^T x%s%s */", nout,
         nout, f, bias ? ", db = dy summed over samples" : "",
         c->need_dx ? ", dx = dy w" : " (no layer before it learns: no dx)");
    emit_backward_begin(e, c);
    emit(e, "(void)y;");
    emit(e, "real *restrict dw = grad(ctx) + %s_weight;", L);
    if (bias)
        emit(e, "real *restrict db = grad(ctx) + %s_bias;", L);
    char outs[32];
    snprintf(outs, sizeof outs, "%" PRId64, nout);
    dense_emit_blocks(e, "o0", outs);
    emit(e, "real *restrict dwb = dw + (size_t)o0 * %" PRId64 ";", f);
    emit(e, "for (int r = 0; r < rows; r++) {");
    if (bias)
        emit(e, "real sum = 0;");
    emit(e, "for (int k = 0; k < %" PRId64 "; k++) dwb[(size_t)r * %" PRId64 " + k] = 0;", f, f);
    if (bias) {
        emit(e, "for (int i = 0; i < n; i++) sum += dy[(size_t)i * %" PRId64 " + o0 + r];",
             nout);
        emit(e, "db[o0 + r] = sum;");
    }
    emit(e, "}");
    emit(e, "for (int i = 0; i < n; i++) {");
    emit(e, "const real *restrict xi = x + (size_t)i * %" PRId64 ";", f);
    emit(e, "for (int r = 0; r < rows; r++) {");
    emit(e, "const real g = dy[(size_t)i * %" PRId64 " + o0 + r];", nout);
    emit(e, "real *restrict dwr = dwb + (size_t)r * %" PRId64 ";", f);
    emit(e, "for (int k = 0; k < %" PRId64 "; k++) dwr[k] += g * xi[k];", f);
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    if (!c->need_dx) {
        emit(e, "(void)dx;");
        emit(e, "}");
        return;
    }
    emit(e, "const real *restrict w = param(ctx) + %s_weight;", L);
    dense_emit_blocks(e, "i0", "n");
    emit(e, "real *restrict dxb = dx + (size_t)i0 * %" PRId64 ";", f);
    emit(e, "for (int r = 0; r < rows; r++)");
    emit(e, "    for (int k = 0; k < %" PRId64 "; k++) dxb[(size_t)r * %" PRId64 " + k] = 0;", f,
         f);
    emit_for(e, "o", nout);
    emit(e, "const real *restrict wo = w + (size_t)o * %" PRId64 ";", f);
    emit(e, "for (int r = 0; r < rows; r++) {");
    emit(e, "const real g = dy[(size_t)(i0 + r) * %" PRId64 " + o];", nout);
    emit(e, "real *restrict dxr = dxb + (size_t)r * %" PRId64 ";", f);
    emit(e, "for (int k = 0; k < %" PRId64 "; k++) dxr[k] += g * wo[k];", f);
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
}

static void dense_emit(Emitter *e, const LayerCode *c)
{
    const Layer *l = c->l;
    int64_t f = l->in.c, nout = l->out.c;
    bool bias = l->args[DENSE_BIAS].u.b;
    dense_emit_forward(e, c, f, nout, bias);
    emit_blank(e);
    dense_emit_backward(e, c, f, nout, bias);
}

const LayerKind layer_dense = {
    .name = "Dense",
    .auto_prefix = "dense",
    .args = dense_args,
    .nargs = DENSE_NARGS,
    .infer = dense_infer,
    .flops = dense_flops,
    .scratch_bytes = dense_scratch_bytes,
    .emit = dense_emit,
};
