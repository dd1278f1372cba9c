/* batchnorm.c: BatchNorm, PyTorch's BatchNorm2d (maps: per channel over
 * the samples and pixels) and BatchNorm1d (vectors: per feature over the
 * samples).
 *
 *   in S -> out S; weight [C] (1), bias [C] (0) when affine
 *   buffers running_mean [C] (0), running_var [C] (1), num_batches_tracked
 *   Positional form: none; BatchNorm(momentum=0.1, eps=1e-5, affine=true).
 *
 * While training, with N = samples x pixels of the whole batch:
 *   mean = sum x / N,  var = sum (x - mean)^2 / N          (biased)
 *   y = (x - mean) / sqrt(var + eps) * weight + bias
 *   running_mean = (1 - momentum) running_mean + momentum mean
 *   running_var  = (1 - momentum) running_var + momentum var N / (N - 1)
 * and at evaluation y = (x - running_mean) / sqrt(running_var + eps) *
 * weight + bias. Backward, with xhat = (x - mean) / sqrt(var + eps):
 *   dbias = sum dy,  dweight = sum dy xhat,
 *   dx = weight / sqrt(var + eps) (dy - sum dy / N - xhat sum dy xhat / N).
 *
 * The statistics are the whole batch's, whatever the micro-batches, lanes
 * and threads: the reference tier takes the batch in one pass and sums
 * over it; the fast tier's lanes each hold their share of the batch, and
 * the trainer's driver meets them before BatchNorm's forward (L_stats,
 * L_combine) and backward (L_bsums, L_bcombine), adding their parts in lane
 * order. Sums are in double, in chunks of rows added in a fixed order, so
 * the results do not depend on the thread count. When the BatchNorm's input
 * is a Conv's output and goes nowhere else, the Conv's forward writes the
 * lane's share of the statistics as it stores the map (tiles_conv.c,
 * tiles_group.c): the map is not read again for them, and there is no
 * L_stats. */
#include "cnnc.h"

#include <inttypes.h>
#include <math.h>

enum { BN_MOMENTUM, BN_EPS, BN_AFFINE, BN_NARGS };

static const ArgSpec bn_args[BN_NARGS] = {
    [BN_MOMENTUM] = {.key = "momentum", .type = ARG_FLOAT, .position = -1, .fmin = 0,
                     .fmax = 1, .doc = "the running statistics' update factor (0.1)"},
    [BN_EPS] = {.key = "eps", .type = ARG_FLOAT, .position = -1, .fmin = 0, .fmin_open = true,
                .fmax = INFINITY, .doc = "added to the variance (1e-5)"},
    [BN_AFFINE] = {.key = "affine", .type = ARG_BOOL, .position = -1,
                   .doc = "learn a weight and a bias per channel (true)"},
};

/* S -> S; the parameters and buffers of its C channels (features). */
static bool bn_infer(Layer *l, Diag *d)
{
    ArgVal *a = l->args;
    if (!a[BN_MOMENTUM].given)
        a[BN_MOMENTUM].u.f = 0.1;
    if (!a[BN_EPS].given)
        a[BN_EPS].u.f = 1e-5;
    if (!a[BN_AFFINE].given)
        a[BN_AFFINE].u.b = true;
    l->out = l->in;
    int64_t c = l->in.c, dims[1] = {c};
    if (a[BN_AFFINE].u.b) {
        if (!layer_add_param(l, "weight", 1, dims, c, c, d) ||
            !layer_add_param(l, "bias", 1, dims, c, c, d))
            return false;
        l->params[0].is_one = true;
    }
    layer_add_buffer(l, "running_mean", c, false, 0);
    layer_add_buffer(l, "running_var", c, false, 1);
    layer_add_buffer(l, "num_batches_tracked", 0, true, 0);
    return true;
}

/* ------------------------------------------------------------------------
 * The numbers both tiers write in
 */

typedef struct BnGeom {
    const char *L;
    int64_t c;          /* channels (features) */
    int64_t hw;         /* pixels of a sample: H*W for a map, 1 for a vector */
    double momentum, eps;
    bool affine;
} BnGeom;

static BnGeom bn_geom(const LayerCode *c)
{
    const Layer *l = c->l;
    return (BnGeom){.L = c->name, .c = l->in.c, .hw = l->in.h * l->in.w,
                    .momentum = l->args[BN_MOMENTUM].u.f, .eps = l->args[BN_EPS].u.f,
                    .affine = l->args[BN_AFFINE].u.b};
}

/* "const real *g = ...; const real *be = ...;": the weight and bias, or
 * nothing (the kernels then use 1 and 0). */
static void bn_emit_affine_pointers(Emitter *e, const BnGeom *g, bool as_locals)
{
    if (!g->affine)
        return;
    if (as_locals) {
        emit_local(e, "gam", "const real *gam = param(ln) + %s_weight;", g->L);
        emit_local(e, "bet", "const real *bet = param(ln) + %s_bias;", g->L);
    } else {
        emit(e, "const real *gam = param(ln) + %s_weight;", g->L);
        emit(e, "const real *bet = param(ln) + %s_bias;", g->L);
    }
}

/* The running statistics in the model's buffers. */
static void bn_emit_running(Emitter *e, const BnGeom *g, const char *ctx)
{
    emit(e, "real *rmean = (real *)((char *)%s->buffers + %s_running_mean);", ctx, g->L);
    emit(e, "real *rvar = (real *)((char *)%s->buffers + %s_running_var);", ctx, g->L);
    emit(e, "int64_t *tracked = (int64_t *)((char *)%s->buffers + %s_num_batches_tracked);",
         ctx, g->L);
}

/* ------------------------------------------------------------------------
 * The reference tier: the batch in one pass, the sums as the math has them
 */

static void bn_ref_comment(Emitter *e, const BnGeom *g, const char *what)
{
    emit(e, "/* %s: BatchNorm over %" PRId64 " channel%s%s, %s */", g->L, g->c,
         g->c == 1 ? "" : "s", g->hw > 1 ? " (each over every sample and pixel)" : "", what);
}

/* For channel c, the batch's mean and 1/sqrt(var + eps) into bmean and
 * binv, from its rows values at x[r*C + c]. */
static void bn_ref_emit_batch_stats(Emitter *e, const BnGeom *g, bool update_running)
{
    emit(e, "double sum = 0, squares = 0;");
    emit(e, "for (int64_t r = 0; r < rows; r++) sum += x[r * %" PRId64 " + c];", g->c);
    emit(e, "const double bmean = sum / rows;");
    emit(e, "for (int64_t r = 0; r < rows; r++) {");
    emit(e, "const double d = x[r * %" PRId64 " + c] - bmean;", g->c);
    emit(e, "squares += d * d;");
    emit(e, "}");
    emit(e, "const double binv = 1 / sqrt(squares / rows + %.17g); /* the biased variance */",
         g->eps);
    if (update_running) {
        emit(e, "rmean[c] = (real)((1 - %.17g) * rmean[c] + %.17g * bmean);", g->momentum,
             g->momentum);
        emit(e, "rvar[c] = (real)((1 - %.17g) * rvar[c] + %.17g * squares / (rows > 1 ? rows "
                "- 1 : 1)); /* the unbiased */", g->momentum, g->momentum);
    }
}

static void bn_ref_forward(Emitter *e, const LayerCode *c)
{
    BnGeom g = bn_geom(c);
    bn_ref_comment(e, &g, "y = (x - mean) / sqrt(var + eps) * weight + bias; while training "
                          "the batch's mean and variance, updating the running ones");
    emit_forward_begin(e, c);
    bn_emit_running(e, &g, "ln->home");
    bn_emit_affine_pointers(e, &g, false);
    emit(e, "const int64_t rows = (int64_t)n * %" PRId64 "; /* values per channel */", g.hw);
    emit_for(e, "c", g.c);
    emit(e, "double mean = rmean[c], inv = 1 / sqrt((double)rvar[c] + %.17g);", g.eps);
    emit(e, "if (ln->home->training) {");
    bn_ref_emit_batch_stats(e, &g, true);
    emit(e, "mean = bmean, inv = binv;");
    emit(e, "}");
    emit(e, "for (int64_t r = 0; r < rows; r++)");
    emit(e, "    y[r * %" PRId64 " + c] = (real)((x[r * %" PRId64 " + c] - mean) * inv * %s + "
            "%s);", g.c, g.c, g.affine ? "gam[c]" : "1", g.affine ? "bet[c]" : "0");
    emit(e, "}");
    emit(e, "if (ln->home->training)");
    emit(e, "    (*tracked)++;");
    emit_function_end(e);
}

static void bn_ref_backward(Emitter *e, const LayerCode *c)
{
    BnGeom g = bn_geom(c);
    bn_ref_comment(e, &g, "backward from dy, with the statistics of the batch again: "
                          "dx = weight * inv * (dy - sum dy / N - xhat * sum dy xhat / N)");
    emit_backward_begin(e, c);
    emit_dx_clear(e, c);
    emit(e, "(void)ln, (void)y;");
    bn_emit_affine_pointers(e, &g, false);
    if (g.affine) {
        emit(e, "real *dgam = grad(ln) + %s_weight, *dbet = grad(ln) + %s_bias;", g.L, g.L);
        emit(e, "(void)bet;");
    }
    emit(e, "const int64_t rows = (int64_t)n * %" PRId64 "; /* values per channel */", g.hw);
    emit_for(e, "c", g.c);
    bn_ref_emit_batch_stats(e, &g, false);
    emit(e, "double sum_dy = 0, sum_dy_xhat = 0;");
    emit(e, "for (int64_t r = 0; r < rows; r++) {");
    emit(e, "sum_dy += dy[r * %" PRId64 " + c];", g.c);
    emit(e, "sum_dy_xhat += dy[r * %" PRId64 " + c] * (x[r * %" PRId64 " + c] - bmean) * binv;",
         g.c, g.c);
    emit(e, "}");
    if (g.affine) {
        emit(e, "dgam[c] += (real)sum_dy_xhat;");
        emit(e, "dbet[c] += (real)sum_dy;");
    }
    if (c->need_dx[0]) {
        emit(e, "for (int64_t r = 0; r < rows; r++) {");
        emit(e, "const double xhat = (x[r * %" PRId64 " + c] - bmean) * binv;", g.c);
        emit(e, "dx[r * %" PRId64 " + c] += (real)(%s * binv * (dy[r * %" PRId64 " + c] - "
                "sum_dy / rows - xhat * sum_dy_xhat / rows));", g.c,
             g.affine ? "gam[c]" : "1", g.c);
        emit(e, "}");
    } else {
        emit(e, "(void)dx;");
    }
    emit(e, "}");
    emit_function_end(e);
}

/* ------------------------------------------------------------------------
 * The fast tier: a lane's share, in chunks of rows, and the meetings
 *
 * A lane holds its share of the batch (one micro-batch: the driver plans
 * it so). Its scratch, in doubles [BN_SLOTS][C], then the reals of the
 * forward's scale and shift [2][C], then the chunks' partial sums
 * [chunks][2][C] in doubles:
 */
enum {
    BN_LANE_MEAN, BN_LANE_M2,        /* the lane's share: L_stats */
    BN_MEAN, BN_INV,                 /* the batch's: L_combine, in every lane */
    BN_LANE_DY, BN_LANE_DYX,         /* the lane's sums of dy, dy xhat: L_bsums */
    BN_MEAN_DY, BN_MEAN_DYX,         /* the batch's means: L_bcombine, in every lane */
    BN_SLOTS,
    BN_CHUNK = 256                   /* rows (samples x pixels) a chunk */
};

static int64_t bn_chunks(int64_t samples, int64_t hw)
{
    return (samples * hw + BN_CHUNK - 1) / BN_CHUNK;
}

static int64_t bn_scratch_bytes(const Layer *l, int64_t batch, int64_t lane_samples,
                                int64_t real_size)
{
    int64_t c = l->in.c, hw = l->in.h * l->in.w;
    int64_t most = batch > lane_samples ? batch : lane_samples;
    return (BN_SLOTS * c + 2 * c * bn_chunks(most, hw)) * 8 + 2 * c * real_size + 64;
}

/* The scratch's parts, as locals: st (the slots), ab (scale, shift), parts. */
static void bn_emit_scratch(Emitter *e, const BnGeom *g)
{
    emit_local(e, "st", "double *st = work(ln, %s_SCRATCH); /* [%d][%" PRId64 "] */", g->L,
               BN_SLOTS, g->c);
    emit_local(e, "ab", "real *ab = (real *)(st + %" PRId64 "); /* scale, shift [2][%" PRId64
               "] */", BN_SLOTS * g->c, g->c);
    emit_local(e, "parts", "double *parts = (double *)((char *)ab + %" PRId64
               " * sizeof(real) + 64 - (%" PRId64 " * sizeof(real)) %% 64); /* [chunks][2][%"
               PRId64 "] */", 2 * g->c, 2 * g->c, g->c);
}

/* "double *bn_mean = ..., *bn_m2 = ...;": where the lane's mean and sum of
 * squared deviations of BatchNorm `label`'s input go, for the layer before
 * that writes them (LayerCode.stats_to) in L_stats's stead. */
void batchnorm_emit_lane_stats(Emitter *e, const char *label, int64_t channels)
{
    emit(e, "double *bn_mean = (double *)work(ln, %s_SCRATCH) + %d * %" PRId64 ", *bn_m2 = "
            "bn_mean + %d * %" PRId64 "; /* %s's share of the lane */", label, BN_LANE_MEAN,
         channels, BN_LANE_M2 - BN_LANE_MEAN, channels, label);
}

static void bn_emit_rows(Emitter *e, const BnGeom *g)
{
    emit_local(e, "rows", "const int rows = n * %" PRId64 ";", g->hw);
    emit_local(e, "chunks", "const int chunks = (rows + %d) / %d;", BN_CHUNK - 1, BN_CHUNK);
}

/* y = x * scale + shift per channel, the scale and shift from the batch's
 * statistics (training: the driver met the lanes before) or the running
 * ones; then max(y, 0) for a ReLU after it. */
static void bn_forward(Emitter *e, const LayerCode *c)
{
    BnGeom g = bn_geom(c);
    emit(e, "/* %s: y[n][%" PRId64 "][%" PRId64 "] = x * scale + shift per channel, scale = "
            "weight / sqrt(var + eps), shift = bias - mean * scale (the batch's statistics "
            "while training, else the running ones)%s */", g.L, g.hw, g.c,
         c->relu_out ? ", then max(y, 0) for the ReLU after it" : "");
    emit_forward_begin(e, c);
    bn_emit_scratch(e, &g);
    bn_emit_affine_pointers(e, &g, false);
    emit(e, "if (ln->home->training) {");
    emit_for(e, "c", g.c);
    emit(e, "const double s = st[%d * %" PRId64 " + c]%s;", BN_INV, g.c,
         g.affine ? " * gam[c]" : "");
    emit(e, "ab[c] = (real)s;");
    emit(e, "ab[%" PRId64 " + c] = (real)(%s - st[%d * %" PRId64 " + c] * s);", g.c,
         g.affine ? "bet[c]" : "0", BN_MEAN, g.c);
    emit(e, "}");
    emit(e, "} else {");
    emit(e, "const real *rmean = (const real *)((char *)ln->home->buffers + %s_running_mean);",
         g.L);
    emit(e, "const real *rvar = (const real *)((char *)ln->home->buffers + %s_running_var);",
         g.L);
    emit_for(e, "c", g.c);
    emit(e, "const double s = 1 / sqrt((double)rvar[c] + %.17g)%s;", g.eps,
         g.affine ? " * gam[c]" : "");
    emit(e, "ab[c] = (real)s;");
    emit(e, "ab[%" PRId64 " + c] = (real)(%s - rmean[c] * s);", g.c,
         g.affine ? "bet[c]" : "0");
    emit(e, "}");
    emit(e, "}");
    char count[64];
    snprintf(count, sizeof count, "n * %" PRId64, g.hw);
    emit_parallel(e, "r", count, 64);
    emit(e, "const real *xr = x + (size_t)r * %" PRId64 ";", g.c);
    emit(e, "real *yr = y + (size_t)r * %" PRId64 ";", g.c);
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) {", g.c);
    emit(e, "const real v = xr[c] * ab[c] + ab[%" PRId64 " + c];", g.c);
    emit(e, c->relu_out ? "yr[c] = v < 0 ? 0 : v;" : "yr[c] = v;");
    emit(e, "}");
    emit_parallel_end(e);
    emit_function_end(e);
}

/* The lane's share of the statistics: each chunk of rows its count, mean
 * and sum of squared deviations (two passes over the chunk, in cache),
 * merged in chunk order (Chan et al.'s pairwise update) into the lane's. */
static void bn_stats(Emitter *e, const LayerCode *c)
{
    BnGeom g = bn_geom(c);
    emit(e, "/* %s: the lane's mean and sum of squared deviations of x, per channel */", g.L);
    emit_function_begin(e, c, "stats", SIG_STATS, false);
    bn_emit_scratch(e, &g);
    bn_emit_rows(e, &g);
    emit_parallel(e, "k", "chunks", 1);
    emit(e, "const int r0 = k * %d, r1 = r0 + %d < rows ? r0 + %d : rows;", BN_CHUNK, BN_CHUNK,
         BN_CHUNK);
    emit(e, "double *m = parts + (size_t)k * %" PRId64 ", *q = m + %" PRId64 ";", 2 * g.c, g.c);
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) m[c] = q[c] = 0;", g.c);
    emit(e, "for (int r = r0; r < r1; r++)");
    emit(e, "    for (int c = 0; c < %" PRId64 "; c++) m[c] += x[(size_t)r * %" PRId64 " + c];",
         g.c, g.c);
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) m[c] /= r1 - r0;", g.c);
    emit(e, "for (int r = r0; r < r1; r++) {");
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) {", g.c);
    emit(e, "const double d = x[(size_t)r * %" PRId64 " + c] - m[c];", g.c);
    emit(e, "q[c] += d * d;");
    emit(e, "}");
    emit(e, "}");
    emit_parallel_end(e);
    emit(e, "double *mean = st + %d * %" PRId64 ", *m2 = st + %d * %" PRId64 ";", BN_LANE_MEAN,
         g.c, BN_LANE_M2, g.c);
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) mean[c] = parts[c], m2[c] = parts[%" PRId64
            " + c];", g.c, g.c);
    emit(e, "for (int k = 1, counted = %d; k < chunks; k++) {", BN_CHUNK);
    emit(e, "const int more = k + 1 < chunks ? %d : rows - k * %d;", BN_CHUNK, BN_CHUNK);
    emit(e, "const double *m = parts + (size_t)k * %" PRId64 ", *q = m + %" PRId64 ";", 2 * g.c,
         g.c);
    emit(e, "const double all = counted + more;");
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) {", g.c);
    emit(e, "const double delta = m[c] - mean[c];");
    emit(e, "mean[c] += delta * more / all;");
    emit(e, "m2[c] += q[c] + delta * delta * counted * more / all;");
    emit(e, "}");
    emit(e, "counted += more;");
    emit(e, "}");
    emit_function_end(e);
}

/* The lanes' shares merged in lane order (each lane's rows: the part of
 * the call's n samples its one micro-batch holds), written to every lane;
 * the running statistics updated. */
static void bn_combine(Emitter *e, const LayerCode *c)
{
    BnGeom g = bn_geom(c);
    emit(e, "/* %s: the batch's mean and 1/sqrt(var + eps) from the lanes', in lane order; "
            "the running statistics */", g.L);
    emit(e, "static void %s_combine(cnnrt_ctx *ctx, int n)", g.L);
    emit(e, "{");
    emit(e, "cnnrt_share_lanes(ctx, n, %s_SCRATCH + %d * %" PRId64 " * sizeof(double), "
            "2 * %" PRId64 " * sizeof(double)); /* from the lanes of other processes */",
         g.L, BN_LANE_MEAN, g.c, g.c);
    emit(e, "/* merged into lane 0's slots of the batch's mean and (for now) sum of squares */");
    emit(e, "double *st0 = (double *)((char *)ctx->workspace + %s_SCRATCH);", g.L);
    emit(e, "double *mean = st0 + %d * %" PRId64 ", *m2 = st0 + %d * %" PRId64 ", counted = 0;",
         BN_MEAN, g.c, BN_INV, g.c);
    emit(e, "for (int l = 0; l < LANES; l++) {");
    emit(e, "const int samples = n - l * MICRO < MICRO ? n - l * MICRO : MICRO;");
    emit(e, "if (samples <= 0) break;");
    emit(e, "const double more = (double)samples * %" PRId64 ", all = counted + more;", g.hw);
    emit(e, "const double *st = (const double *)((char *)ctx->workspace + (size_t)l * "
            "LANE_BYTES + %s_SCRATCH);", g.L);
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) {", g.c);
    emit(e, "const double lm = st[%d * %" PRId64 " + c], lq = st[%d * %" PRId64 " + c];",
         BN_LANE_MEAN, g.c, BN_LANE_M2, g.c);
    emit(e, "if (counted == 0) { mean[c] = lm; m2[c] = lq; continue; }");
    emit(e, "const double delta = lm - mean[c];");
    emit(e, "mean[c] += delta * more / all;");
    emit(e, "m2[c] += lq + delta * delta * counted * more / all;");
    emit(e, "}");
    emit(e, "counted = all;");
    emit(e, "}");
    bn_emit_running(e, &g, "ctx");
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) {", g.c);
    emit(e, "rmean[c] = (real)((1 - %.17g) * rmean[c] + %.17g * mean[c]);", g.momentum,
         g.momentum);
    emit(e, "rvar[c] = (real)((1 - %.17g) * rvar[c] + %.17g * m2[c] / (counted > 1 ? "
            "counted - 1 : 1));", g.momentum, g.momentum);
    emit(e, "m2[c] = 1 / sqrt(m2[c] / counted + %.17g); /* now 1/sqrt(var + eps) */", g.eps);
    emit(e, "}");
    emit(e, "(*tracked)++;");
    emit(e, "for (int l = 1; l < LANES; l++) {");
    emit(e, "double *st = (double *)((char *)ctx->workspace + (size_t)l * LANE_BYTES + "
            "%s_SCRATCH);", g.L);
    emit(e, "memcpy(st + %d * %" PRId64 ", mean, sizeof(double) * %" PRId64 ");", BN_MEAN, g.c,
         g.c);
    emit(e, "memcpy(st + %d * %" PRId64 ", m2, sizeof(double) * %" PRId64 ");", BN_INV, g.c, g.c);
    emit(e, "}");
    emit(e, "}");
    emit_blank(e);
}

/* The lane's sums of dy and dy xhat per channel, in chunks merged in order. */
static void bn_bsums(Emitter *e, const LayerCode *c)
{
    BnGeom g = bn_geom(c);
    emit(e, "/* %s: the lane's sums of dy and dy * xhat, per channel */", g.L);
    emit_function_begin(e, c, "bsums", SIG_WEIGHTS, false);
    bn_emit_scratch(e, &g);
    bn_emit_rows(e, &g);
    emit_parallel(e, "k", "chunks", 1);
    emit(e, "const int r0 = k * %d, r1 = r0 + %d < rows ? r0 + %d : rows;", BN_CHUNK, BN_CHUNK,
         BN_CHUNK);
    emit(e, "double *sd = parts + (size_t)k * %" PRId64 ", *sx = sd + %" PRId64 ";", 2 * g.c,
         g.c);
    emit(e, "const double *mean = st + %d * %" PRId64 ", *inv = st + %d * %" PRId64 ";", BN_MEAN,
         g.c, BN_INV, g.c);
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) sd[c] = sx[c] = 0;", g.c);
    emit(e, "for (int r = r0; r < r1; r++) {");
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) {", g.c);
    emit(e, "const double d = dy[(size_t)r * %" PRId64 " + c];", g.c);
    emit(e, "sd[c] += d;");
    emit(e, "sx[c] += d * (x[(size_t)r * %" PRId64 " + c] - mean[c]) * inv[c];", g.c);
    emit(e, "}");
    emit(e, "}");
    emit_parallel_end(e);
    emit(e, "double *sum_dy = st + %d * %" PRId64 ", *sum_dyx = st + %d * %" PRId64 ";",
         BN_LANE_DY, g.c, BN_LANE_DYX, g.c);
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) sum_dy[c] = sum_dyx[c] = 0;", g.c);
    emit(e, "for (int k = 0; k < chunks; k++) {");
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) {", g.c);
    emit(e, "sum_dy[c] += parts[(size_t)k * %" PRId64 " + c];", 2 * g.c);
    emit(e, "sum_dyx[c] += parts[(size_t)k * %" PRId64 " + %" PRId64 " + c];", 2 * g.c, g.c);
    emit(e, "}");
    emit(e, "}");
    emit_function_end(e);
}

/* The lanes' sums added in lane order: the weight's and bias's gradients,
 * and the means backward's dx needs, written to every lane. */
static void bn_bcombine(Emitter *e, const LayerCode *c)
{
    BnGeom g = bn_geom(c);
    emit(e, "/* %s: the batch's sums of dy and dy * xhat from the lanes', in lane order */",
         g.L);
    emit(e, "static void %s_bcombine(cnnrt_ctx *ctx, int n)", g.L);
    emit(e, "{");
    emit(e, "cnnrt_share_lanes(ctx, n, %s_SCRATCH + %d * %" PRId64 " * sizeof(double), "
            "2 * %" PRId64 " * sizeof(double)); /* from the lanes of other processes */",
         g.L, BN_LANE_DY, g.c, g.c);
    emit(e, "/* added into lane 0's slots of the batch's means, then divided */");
    emit(e, "double *st0 = (double *)((char *)ctx->workspace + %s_SCRATCH);", g.L);
    emit(e, "double *sd = st0 + %d * %" PRId64 ", *sx = st0 + %d * %" PRId64 ";", BN_MEAN_DY, g.c,
         BN_MEAN_DYX, g.c);
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) sd[c] = sx[c] = 0;", g.c);
    emit(e, "for (int l = 0; l < LANES && l * MICRO < n; l++) {");
    emit(e, "const double *st = (const double *)((char *)ctx->workspace + (size_t)l * "
            "LANE_BYTES + %s_SCRATCH);", g.L);
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) {", g.c);
    emit(e, "sd[c] += st[%d * %" PRId64 " + c];", BN_LANE_DY, g.c);
    emit(e, "sx[c] += st[%d * %" PRId64 " + c];", BN_LANE_DYX, g.c);
    emit(e, "}");
    emit(e, "}");
    if (g.affine) {
        emit(e, "real *dgam = (real *)ctx->grads + %s_weight, *dbet = (real *)ctx->grads + "
                "%s_bias;", g.L, g.L);
        emit(e, "for (int c = 0; c < %" PRId64 "; c++) {", g.c);
        emit(e, "dgam[c] += (real)sx[c];");
        emit(e, "dbet[c] += (real)sd[c];");
        emit(e, "}");
    }
    emit(e, "const double rows = (double)n * %" PRId64 ";", g.hw);
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) {", g.c);
    emit(e, "sd[c] /= rows;");
    emit(e, "sx[c] /= rows;");
    emit(e, "}");
    emit(e, "for (int l = 1; l < LANES; l++) {");
    emit(e, "double *st = (double *)((char *)ctx->workspace + (size_t)l * LANE_BYTES + "
            "%s_SCRATCH);", g.L);
    emit(e, "memcpy(st + %d * %" PRId64 ", sd, sizeof(double) * %" PRId64 ");", BN_MEAN_DY, g.c,
         g.c);
    emit(e, "memcpy(st + %d * %" PRId64 ", sx, sizeof(double) * %" PRId64 ");", BN_MEAN_DYX, g.c,
         g.c);
    emit(e, "}");
    emit(e, "}");
    emit_blank(e);
}

/* dx = weight * inv * (dy - mean dy - xhat * mean dy xhat), the means the
 * batch's (the driver met the lanes before). */
static void bn_backward(Emitter *e, const LayerCode *c)
{
    BnGeom g = bn_geom(c);
    emit(e, "/* %s: dx %s weight * inv * (dy - mean dy - xhat * mean(dy xhat)), the batch's "
            "means (the weight's and bias's gradients: %s_bcombine) */", g.L, dx_op(c, 0), g.L);
    emit_backward_begin(e, c);
    emit(e, "(void)y;");
    if (!c->need_dx[0]) {
        emit(e, "(void)ln, (void)n, (void)x, (void)dy, (void)dx;");
        emit_function_end(e);
        return;
    }
    bn_emit_scratch(e, &g);
    bn_emit_affine_pointers(e, &g, true);
    char count[64];
    snprintf(count, sizeof count, "n * %" PRId64, g.hw);
    emit_parallel(e, "r", count, 64);
    emit(e, "const real *xr = x + (size_t)r * %" PRId64 ", *dyr = dy + (size_t)r * %" PRId64 ";",
         g.c, g.c);
    emit(e, "real *dxr = dx + (size_t)r * %" PRId64 ";", g.c);
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) {", g.c);
    emit(e, "const double inv = st[%d * %" PRId64 " + c];", BN_INV, g.c);
    emit(e, "const double xhat = (xr[c] - st[%d * %" PRId64 " + c]) * inv;", BN_MEAN, g.c);
    emit(e, "dxr[c] %s (real)(%s * inv * (dyr[c] - st[%d * %" PRId64 " + c] - xhat * st[%d * %"
            PRId64 " + c]));", dx_op(c, 0), g.affine ? "gam[c]" : "1", BN_MEAN_DY, g.c,
         BN_MEAN_DYX, g.c);
    emit(e, "}");
    emit_parallel_end(e);
    emit_function_end(e);
}

const LayerKind layer_batchnorm = {
    .name = "BatchNorm",
    .auto_prefix = "batchnorm",
    .args = bn_args,
    .nargs = BN_NARGS,
    .batch_stats = true,
    .ignores_own_output = true,   /* backward reads x, dy and the statistics */
    .relu_forward = true,
    .infer = bn_infer,
    .flops = layer_no_flops,
    .scratch_bytes = bn_scratch_bytes,
    .emit_forward = bn_forward,
    .emit_backward = bn_backward,
    .ref_forward = bn_ref_forward,
    .ref_backward = bn_ref_backward,
    .emit_stats = bn_stats,
    .emit_combine = bn_combine,
    .emit_bsums = bn_bsums,
    .emit_bcombine = bn_bcombine,
};
