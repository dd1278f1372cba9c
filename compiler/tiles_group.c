/* tiles_group.c: the fast tier of a grouped Conv (groups > 1), depthwise
 * included (conv.c holds the kind).
 *
 * A group g of G reads input channels g*CPG .. g*CPG + CPG-1 and writes
 * output channels g*OPG .. g*OPG + OPG-1 (CPG = C/G, OPG = n/G); the weight
 * is w[co][ci < CPG][kh][kw], PyTorch's. A depthwise convolution (CPG = 1)
 * has no sum over channels: each output channel is a KHxKW stencil of one
 * input channel, so the dense tiles' register blocking over (pixels x
 * output channels x input channels) has nothing to block and the work is
 * bound by moving x and y. The kernels here therefore run along the
 * channels of a pixel, which are contiguous in NHWC: a block of channels
 * of accumulators (a few vector registers) sums the taps of one output
 * pixel, and loops of a constant trip count over contiguous channels are
 * what the compiler turns into vector code.
 *
 * Scratch, in reals, each part whole 64-byte lines:
 *   wt[tap][CPG][n]    w repacked so that a tap's weights of a block of
 *                      output channels are contiguous (forward, and dx
 *                      when CPG = 1)
 *   wx[tap][n][CPG]    w repacked for dx when CPG > 1 (the block runs
 *                      along input channels)
 *   dwt[tap][CPG][n]   the weight gradient's sums before they are added
 *                      to dw in PyTorch's layout
 * Every sum runs in a fixed order whatever the threads: each output
 * element (y, dx, dwt) is summed by one loop item, in the order of its
 * loop, so trainers on any thread count agree bitwise.
 */
#include "tiles.h"

#include <inttypes.h>

/* Bytes of accumulators a block keeps: 8 AVX2 or 4 AVX-512 registers, enough
 * independent sums to cover the FMA latency. */
#define GROUP_BLOCK_BYTES 256

static int64_t group_taps(const ConvGeom *g)
{
    return g->kh * g->kw;
}

static int64_t per_group_in(const ConvGeom *g)
{
    return g->ci / g->groups;
}

static int64_t per_group_out(const ConvGeom *g)
{
    return g->co / g->groups;
}

/* The reals of one repacked weight, rounded up to whole 64-byte lines. */
static int64_t group_part_len(const ConvGeom *g, int64_t real_size)
{
    int64_t reals = group_taps(g) * per_group_in(g) * g->co, line = 64 / real_size;
    return (reals + line - 1) / line * line;
}

int64_t tiles_group_scratch_bytes(const ConvGeom *g, int64_t real_size)
{
    return 3 * group_part_len(g, real_size) * real_size;
}

/* A block's channels: at most GROUP_BLOCK_BYTES of accumulators, and within
 * a group when the block runs along output channels of CPG > 1. */
static int64_t block_len(int64_t channels, int64_t real_size)
{
    return min64(channels, GROUP_BLOCK_BYTES / real_size);
}

/* The range of taps [k0, k1) of one axis whose input position o*s + k - p
 * is inside 0..in-1, for the loop variable O: as C declarations. */
static void emit_tap_range(Emitter *e, const char *k0, const char *k1, const char *o, int64_t s,
                           int64_t p, int64_t k, int64_t in)
{
    emit(e, "const int %s = %s * %" PRId64 " < %" PRId64 " ? %" PRId64 " - %s * %" PRId64
            " : 0;", k0, o, s, p, p, o, s);
    emit(e, "const int %s = %s * %" PRId64 " + %" PRId64 " > %" PRId64 " ? %" PRId64
            " - %s * %" PRId64 " : %" PRId64 ";", k1, o, s, k, in + p, in + p, o, s, k);
}

/* "for (int cb = 0; cb < FULL; cb++) { BODY(len, start) }" and the rest:
 * the blocks of LEN channels along COUNT channels, from BASE. */
typedef void BlockBody(Emitter *e, const ConvGeom *g, int64_t len, const char *c0,
                       const void *arg);

static void emit_blocks(Emitter *e, const ConvGeom *g, int64_t count, const char *base,
                        BlockBody *body, const void *arg)
{
    int64_t len = block_len(count, emit_real_size(e));
    int64_t full = count / len, rest = count % len;
    char c0[96];
    emit(e, "for (int cb = 0; cb < %" PRId64 "; cb++) {", full);
    snprintf(c0, sizeof c0, "%s%scb * %" PRId64, base, *base ? " + " : "", len);
    body(e, g, len, c0, arg);
    emit(e, "}");
    if (rest) {
        emit(e, "{ /* the last %" PRId64 " */", rest);
        snprintf(c0, sizeof c0, "%s%s%" PRId64, base, *base ? " + " : "", full * len);
        body(e, g, rest, c0, arg);
        emit(e, "}");
    }
}

/* The blocks along output channels: all n at once when CPG = 1 (any block
 * of output channels reads its own inputs), else group by group. */
static void emit_out_blocks(Emitter *e, const ConvGeom *g, BlockBody *body, const void *arg)
{
    if (per_group_in(g) == 1) {
        emit_blocks(e, g, g->co, "", body, arg);
        return;
    }
    emit_for(e, "g", g->groups);
    char base[32];
    snprintf(base, sizeof base, "g * %" PRId64, per_group_out(g));
    emit_blocks(e, g, per_group_out(g), base, body, arg);
    emit(e, "}");
}

/* The input channel that output channel CO of a CPG = 1 convolution reads. */
static const char *depthwise_input(char *buf, size_t size, const ConvGeom *g, const char *co)
{
    if (per_group_out(g) == 1)
        snprintf(buf, size, "%s", co);
    else
        snprintf(buf, size, "(%s) / %" PRId64, co, per_group_out(g));
    return buf;
}

/* ---- the repacks (once a step on each lane: the weights change only
 * between steps) */

/* dst[tap][a][b] = w[co][ci][tap], with (a, b) = (ci, co) for wt (the
 * forward's rows of output channels) or (co, ci) for wx (dx's rows of input
 * channels). */
static void emit_repack(Emitter *e, const ConvGeom *g, const char *dst, bool co_inner)
{
    int64_t cpg = per_group_in(g), taps = group_taps(g);
    int64_t rows = co_inner ? cpg : g->co, cols = co_inner ? g->co : cpg;
    emit(e, "if (ln->first) { /* %s[tap][%s][%s] = w[co][ci][tap] */", dst,
         co_inner ? "ci" : "co", co_inner ? "co" : "ci");
    emit_for(e, "co", g->co);
    emit_for(e, "ci", cpg);
    emit_for(e, "t", taps);
    emit(e, "%s[(t * %" PRId64 " + %s) * %" PRId64 " + %s] = w[(co * %" PRId64 " + ci) * %" PRId64
            " + t];", dst, rows, co_inner ? "ci" : "co", cols, co_inner ? "co" : "ci", cpg, taps);
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
}

/* "const real *xp = ...": the input pixel that tap (ky, kx) of output pixel
 * (oy, ox) of sample i reads, inside the loops over ky0..ky1, kx0..kx1. */
static void emit_tap_pixel(Emitter *e, const ConvGeom *g)
{
    emit(e, "const real *xp = xi + ((oy * %" PRId64 " + ky - %" PRId64 ") * %" PRId64
            " + ox * %" PRId64 " + kx - %" PRId64 ") * %" PRId64 ";", g->sh, g->pt, g->w, g->sw,
         g->pl, g->ci);
}

/* ---- forward */

/* One block of output channels c0..c0+len-1 at pixel (oy, ox) of sample i:
 * the bias, the taps inside the input, the ReLU after it, stored. */
static void forward_block(Emitter *e, const ConvGeom *g, int64_t len, const char *c0,
                          const void *arg)
{
    (void)arg;
    int64_t cpg = per_group_in(g);
    char in[64];
    emit(e, "const int c0 = %s;", c0);
    emit(e, "real acc[%" PRId64 "];", len);
    emit_for(e, "k", len);
    emit(e, "acc[k] = %s;", g->bias ? "b[c0 + k]" : "0");
    emit(e, "}");
    emit(e, "for (int ky = ky0; ky < ky1; ky++) {");
    emit(e, "for (int kx = kx0; kx < kx1; kx++) {");
    emit_tap_pixel(e, g);
    emit(e, "const real *wk = wt + (ky * %" PRId64 " + kx) * %" PRId64 " + c0;", g->kw,
         cpg * g->co);
    if (cpg == 1) {
        emit_for(e, "k", len);
        emit(e, "acc[k] += xp[%s] * wk[k];", depthwise_input(in, sizeof in, g, "c0 + k"));
        emit(e, "}");
    } else {
        emit_for(e, "ci", cpg);
        emit(e, "const real xv = xp[g * %" PRId64 " + ci];", cpg);
        emit_for(e, "k", len);
        emit(e, "acc[k] += xv * wk[ci * %" PRId64 " + k];", g->co);
        emit(e, "}");
        emit(e, "}");
    }
    emit(e, "}");
    emit(e, "}");
    emit_for(e, "k", len);
    if (g->relu_out)
        emit(e, "yp[c0 + k] = acc[k] < 0 ? 0 : acc[k]; /* the ReLU after it */");
    else
        emit(e, "yp[c0 + k] = acc[k];");
    emit(e, "}");
}

/* ---- the statistics of y for a BatchNorm after it
 *
 * While training, each row of output pixels also writes, per channel, the
 * mean of its pixels and their sum of squared deviations from it (a pass
 * over the row just written, still in L1) to a slot of its own; after the
 * rows, the slots are merged in row order into the BatchNorm's share of
 * the lane. So y is not read again from memory for them, and the numbers
 * do not depend on the thread count. */

int64_t tiles_group_stats_bytes(const ConvGeom *g, int64_t samples, int64_t real_size)
{
    return samples * g->oh * 2 * g->co * real_size;
}

/* The row's slot: per channel the mean of its pixels and their sum of
 * squared deviations, from sums of d = y - y at the row's first pixel and
 * of d^2 (one pass over the row just written, in L1; the shift keeps the
 * sum of squares accurate whatever the channel's mean). */
static void group_emit_row_stats(Emitter *e, const ConvGeom *g)
{
    emit(e, "if (stats) { /* the row's mean and sum of squared deviations per channel */");
    emit(e, "const real *yr = y + (size_t)r * %" PRId64 ";", g->ow * g->co);
    emit(e, "real sd[%" PRId64 "] = {0}, sq[%" PRId64 "] = {0};", g->co, g->co);
    emit(e, "for (int ox = 1; ox < %" PRId64 "; ox++) {", g->ow);
    emit_for(e, "k", g->co);
    emit(e, "const real d = yr[ox * %" PRId64 " + k] - yr[k];", g->co);
    emit(e, "sd[k] += d;");
    emit(e, "sq[k] += d * d;");
    emit(e, "}");
    emit(e, "}");
    emit(e, "real *slot = parts + (size_t)r * %" PRId64 ";", 2 * g->co);
    emit_for(e, "k", g->co);
    emit(e, "slot[k] = yr[k] + sd[k] / %" PRId64 ", slot[%" PRId64 " + k] = sq[k] - sd[k] * "
            "sd[k] / %" PRId64 ";", g->ow, g->co, g->ow);
    emit(e, "}");
    emit(e, "}");
}

static void group_emit_stats_merge(Emitter *e, const ConvGeom *g)
{
    emit(e, "if (stats) { /* the rows' statistics merged in row order */");
    batchnorm_emit_lane_stats(e, g->stats_to, g->co);
    emit_for(e, "k", g->co);
    emit(e, "bn_mean[k] = bn_m2[k] = 0;");
    emit(e, "}");
    emit(e, "double counted = 0;");
    emit(e, "for (int r = 0; r < n * %" PRId64 "; r++) {", g->oh);
    emit(e, "const real *sm = parts + (size_t)r * %" PRId64 ", *sq = sm + %" PRId64 ";",
         2 * g->co, g->co);
    emit(e, "const double more = %" PRId64 ";", g->ow);
    tiles_emit_chan_merge(e, "bn_mean", "bn_m2", g->co);
    emit(e, "}");
    emit(e, "}");
}

void tiles_group_forward(Emitter *e, const LayerCode *c, const ConvGeom *g)
{
    const char *L = c->name;
    emit(e, "/* y[n][%" PRId64 "][%" PRId64 "][%" PRId64 "] = x[n][%" PRId64 "][%" PRId64
            "][%" PRId64 "] (*) w[%" PRId64 "][%" PRId64 "][%" PRId64 "][%" PRId64 "]"
            " in %" PRId64 " groups%s, stride %" PRId64 "x%" PRId64 "%s */",
         g->oh, g->ow, g->co, g->h, g->w, g->ci, g->co, per_group_in(g), g->kh, g->kw,
         g->groups, per_group_in(g) == 1 ? " (depthwise)" : "", g->sh, g->sw,
         g->relu_out ? ", then max(y, 0) for the ReLU after it" : "");
    emit_forward_begin(e, c);
    emit(e, "const real *w = param(ln) + %s_weight;", L);
    if (g->bias)
        emit_local(e, "b", "const real *b = param(ln) + %s_bias;", L);
    emit_local(e, "wt", "real *restrict wt = work(ln, %s_SCRATCH); /* [tap][%" PRId64
               "][%" PRId64 "] */", L, per_group_in(g), g->co);
    emit_repack(e, g, "wt", true);
    if (g->stats_to) {
        emit_local(e, "stats", "const int stats = ln->home->training; /* %s's statistics "
                   "of y */", g->stats_to);
        emit_local(e, "parts", "real *restrict parts = (real *)((char *)work(ln, %s_SCRATCH) + "
                   "%" PRId64 "); /* [row][mean, sum of squares][%" PRId64 "] */", L,
                   tiles_group_scratch_bytes(g, emit_real_size(e)), g->co);
    }
    emit_comment(e, "a row of output pixels of one sample at a time");
    char rows[64];
    snprintf(rows, sizeof rows, "n * %" PRId64, g->oh);
    emit_parallel(e, "r", rows, 1);
    emit(e, "const int i = r / %" PRId64 ", oy = r %% %" PRId64 ";", g->oh, g->oh);
    emit_tap_range(e, "ky0", "ky1", "oy", g->sh, g->pt, g->kh, g->h);
    emit(e, "const real *xi = x + (size_t)i * %" PRId64 ";", g->h * g->w * g->ci);
    emit_for(e, "ox", g->ow);
    emit_tap_range(e, "kx0", "kx1", "ox", g->sw, g->pl, g->kw, g->w);
    emit(e, "real *yp = y + (((size_t)i * %" PRId64 " + oy) * %" PRId64 " + ox) * %" PRId64 ";",
         g->oh, g->ow, g->co);
    emit_out_blocks(e, g, forward_block, NULL);
    emit(e, "}");
    if (g->stats_to)
        group_emit_row_stats(e, g);
    emit_parallel_end(e);
    if (g->stats_to)
        group_emit_stats_merge(e, g);
    emit_function_end(e);
}

/* ---- weight gradient */

/* One block's sums dwt[tap][ci][c0..c0+len-1] over every pixel of every
 * sample (and db's), in the order of the samples, rows, columns, taps;
 * then added to dw in PyTorch's layout. */
static void weights_block(Emitter *e, const ConvGeom *g, int64_t len, const char *c0,
                          const void *arg)
{
    (void)arg;
    int64_t cpg = per_group_in(g), taps = group_taps(g);
    char in[64];
    emit(e, "const int c0 = %s;", c0);
    emit_for(e, "t", taps);
    emit_for(e, "ci", cpg);
    emit_for(e, "k", len);
    emit(e, "dwt[(t * %" PRId64 " + ci) * %" PRId64 " + c0 + k] = 0;", cpg, g->co);
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    if (g->bias) {
        emit(e, "real dbs[%" PRId64 "];", len);
        emit_for(e, "k", len);
        emit(e, "dbs[k] = 0;");
        emit(e, "}");
    }
    emit(e, "for (int i = 0; i < n; i++) {");
    emit(e, "const real *xi = x + (size_t)i * %" PRId64 ";", g->h * g->w * g->ci);
    emit_for(e, "oy", g->oh);
    emit_tap_range(e, "ky0", "ky1", "oy", g->sh, g->pt, g->kh, g->h);
    emit_for(e, "ox", g->ow);
    emit_tap_range(e, "kx0", "kx1", "ox", g->sw, g->pl, g->kw, g->w);
    emit(e, "const real *d = dy + (((size_t)i * %" PRId64 " + oy) * %" PRId64 " + ox) * %" PRId64
            " + c0;", g->oh, g->ow, g->co);
    if (g->bias) {
        emit_for(e, "k", len);
        emit(e, "dbs[k] += d[k];");
        emit(e, "}");
    }
    emit(e, "for (int ky = ky0; ky < ky1; ky++) {");
    emit(e, "for (int kx = kx0; kx < kx1; kx++) {");
    emit_tap_pixel(e, g);
    emit(e, "real *dk = dwt + (ky * %" PRId64 " + kx) * %" PRId64 " + c0;", g->kw, cpg * g->co);
    if (cpg == 1) {
        emit_for(e, "k", len);
        emit(e, "dk[k] += d[k] * xp[%s];", depthwise_input(in, sizeof in, g, "c0 + k"));
        emit(e, "}");
    } else {
        emit_for(e, "ci", cpg);
        emit(e, "const real xv = xp[g * %" PRId64 " + ci];", cpg);
        emit_for(e, "k", len);
        emit(e, "dk[ci * %" PRId64 " + k] += d[k] * xv;", g->co);
        emit(e, "}");
        emit(e, "}");
    }
    for (int k = 0; k < 5; k++)
        emit(e, "}");
    emit_for(e, "k", len);
    if (g->bias)
        emit(e, "db[c0 + k] += dbs[k];");
    emit_for(e, "ci", cpg);
    emit_for(e, "t", taps);
    emit(e, "dw[((c0 + k) * %" PRId64 " + ci) * %" PRId64 " + t] += dwt[(t * %" PRId64
            " + ci) * %" PRId64 " + c0 + k];", cpg, taps, cpg, g->co);
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
}

/* The items of the weight gradient: the blocks of emit_out_blocks, one each. */
static int64_t weight_items(const ConvGeom *g, int64_t real_size)
{
    int64_t count = per_group_in(g) == 1 ? g->co : per_group_out(g);
    int64_t len = block_len(count, real_size);
    int64_t blocks = (count + len - 1) / len;
    return per_group_in(g) == 1 ? blocks : blocks * g->groups;
}

static void group_weights_phase(Emitter *e, const LayerCode *c, const void *geom)
{
    const ConvGeom *g = geom;
    const char *L = c->name;
    emit_local(e, "dw", "real *dw = grad(ln) + %s_weight;", L);
    if (g->bias)
        emit_local(e, "db", "real *db = grad(ln) + %s_bias;", L);
    emit_local(e, "dwt", "real *restrict dwt = (real *)work(ln, %s_SCRATCH) + %" PRId64 ";", L,
               2 * group_part_len(g, emit_real_size(e)));
    emit_comment(e, "a block of output channels at a time: its sums are its own");
    char items[32];
    snprintf(items, sizeof items, "%" PRId64, weight_items(g, emit_real_size(e)));
    emit_parallel(e, "j", items, 1);
    int64_t cpg1 = per_group_in(g) == 1;
    int64_t count = cpg1 ? g->co : per_group_out(g);
    int64_t len = block_len(count, emit_real_size(e));
    int64_t blocks = (count + len - 1) / len, full = count / len, rest = count % len;
    if (!cpg1)
        emit(e, "const int g = j / %" PRId64 ";", blocks);
    emit(e, "const int cb = j %% %" PRId64 ";", blocks);
    char c0[64];
    if (cpg1)
        snprintf(c0, sizeof c0, "cb * %" PRId64, len);
    else
        snprintf(c0, sizeof c0, "g * %" PRId64 " + cb * %" PRId64, per_group_out(g), len);
    if (rest) {
        emit(e, "if (cb == %" PRId64 ") {", full);
        weights_block(e, g, rest, c0, NULL);
        emit(e, "} else {");
    } else {
        emit(e, "{");
    }
    weights_block(e, g, len, c0, NULL);
    emit(e, "}");
    emit_parallel_end(e);
}

/* ---- input gradient */

/* One block of input channels c0..c0+len-1 at input pixel (iy, ix): the
 * taps that reach it (iy + PT = oy*SH + ky), the ReLU before it, stored. */
static void data_block(Emitter *e, const ConvGeom *g, int64_t len, const char *c0,
                       const void *arg)
{
    const LayerCode *c = arg;
    int64_t cpg = per_group_in(g), opg = per_group_out(g);
    emit(e, "const int c0 = %s;", c0);
    emit(e, "real acc[%" PRId64 "];", len);
    emit_for(e, "k", len);
    emit(e, "acc[k] = 0;");
    emit(e, "}");
    emit_for(e, "ky", g->kh);
    emit(e, "const int ty = iy + %" PRId64 " - ky; /* = oy * %" PRId64 " */", g->pt, g->sh);
    emit(e, "if (ty < 0%s || ty / %" PRId64 " >= %" PRId64 ") continue;",
         g->sh > 1 ? " || ty % SH != 0" : "", g->sh, g->oh);
    emit_for(e, "kx", g->kw);
    emit(e, "const int tx = ix + %" PRId64 " - kx; /* = ox * %" PRId64 " */", g->pl, g->sw);
    emit(e, "if (tx < 0%s || tx / %" PRId64 " >= %" PRId64 ") continue;",
         g->sw > 1 ? " || tx % SW != 0" : "", g->sw, g->ow);
    emit(e, "const real *d = dyi + (ty / %" PRId64 " * %" PRId64 " + tx / %" PRId64 ") * %" PRId64
            ";", g->sh, g->ow, g->sw, g->co);
    emit(e, "const int t = ky * %" PRId64 " + kx;", g->kw);
    if (cpg == 1 && opg == 1) {
        emit(e, "const real *wk = wt + t * %" PRId64 " + c0;", g->co);
        emit_for(e, "k", len);
        emit(e, "acc[k] += d[c0 + k] * wk[k];");
        emit(e, "}");
    } else if (cpg == 1) {
        /* input channel c feeds outputs c*OPG .. c*OPG + OPG-1 */
        emit_for(e, "k", len);
        emit_for(e, "m", opg);
        emit(e, "const int co = (c0 + k) * %" PRId64 " + m;", opg);
        emit(e, "acc[k] += d[co] * wt[t * %" PRId64 " + co];", g->co);
        emit(e, "}");
        emit(e, "}");
    } else {
        emit_for(e, "o", opg);
        emit(e, "const int co = g * %" PRId64 " + o;", opg);
        emit(e, "const real dv = d[co];");
        emit(e, "const real *wk = wx + (t * %" PRId64 " + co) * %" PRId64 " + (c0 - g * %" PRId64
                ");", g->co, cpg, cpg);
        emit_for(e, "k", len);
        emit(e, "acc[k] += dv * wk[k];");
        emit(e, "}");
        emit(e, "}");
    }
    emit(e, "}");
    emit(e, "}");
    emit_for(e, "k", len);
    if (g->relu_in)
        emit(e, "dxp[c0 + k] %s xp[c0 + k] > 0 ? acc[k] : 0; /* the ReLU before it */",
             dx_op(c, 0));
    else
        emit(e, "dxp[c0 + k] %s acc[k];", dx_op(c, 0));
    emit(e, "}");
}

static void group_data_phase(Emitter *e, const LayerCode *c, const void *geom)
{
    const ConvGeom *g = geom;
    const char *L = c->name;
    int64_t cpg = per_group_in(g);
    if (cpg == 1) {
        emit_local(e, "wt", "const real *restrict wt = work(ln, %s_SCRATCH); /* [tap][%" PRId64
                   "] */", L, g->co);
    } else {
        emit(e, "const real *w = param(ln) + %s_weight;", L);
        emit_local(e, "wx", "real *restrict wx = (real *)work(ln, %s_SCRATCH) + %" PRId64
                   "; /* [tap][%" PRId64 "][%" PRId64 "] */", L,
                   group_part_len(g, emit_real_size(e)), g->co, cpg);
        emit_repack(e, g, "wx", false);
    }
    if (g->sh > 1)
        emit_local(e, "SH", "enum { SH = %" PRId64 " };", g->sh);
    if (g->sw > 1)
        emit_local(e, "SW", "enum { SW = %" PRId64 " };", g->sw);
    emit_comment(e, "a row of input pixels of one sample at a time; each dx is gathered whole");
    char rows[64];
    snprintf(rows, sizeof rows, "n * %" PRId64, g->h);
    emit_parallel(e, "r", rows, 1);
    emit(e, "const int i = r / %" PRId64 ", iy = r %% %" PRId64 ";", g->h, g->h);
    emit(e, "const real *dyi = dy + (size_t)i * %" PRId64 ";", g->oh * g->ow * g->co);
    emit_for(e, "ix", g->w);
    emit(e, "real *dxp = dx + (((size_t)i * %" PRId64 " + iy) * %" PRId64 " + ix) * %" PRId64 ";",
         g->h, g->w, g->ci);
    if (g->relu_in)
        emit(e, "const real *xp = x + (((size_t)i * %" PRId64 " + iy) * %" PRId64 " + ix) * %" PRId64
                ";", g->h, g->w, g->ci);
    if (cpg == 1) {
        emit_blocks(e, g, g->ci, "", data_block, c);
    } else {
        emit_for(e, "g", g->groups);
        char base[32];
        snprintf(base, sizeof base, "g * %" PRId64, cpg);
        emit_blocks(e, g, cpg, base, data_block, c);
        emit(e, "}");
    }
    emit(e, "}");
    emit_parallel_end(e);
}

void tiles_group_backward(Emitter *e, const LayerCode *c, const ConvGeom *g)
{
    emit(e, "/* from dy[n][%" PRId64 "][%" PRId64 "][%" PRId64 "], %" PRId64 " groups: dw, db%s */",
         g->oh, g->ow, g->co, g->groups,
         !c->need_dx[0] ? " (no layer before it learns: no dx)"
         : c->relu_in ? " and dx, 0 where x <= 0 (the ReLU before)"
         : c->dx_add[0] ? " and dx (added)" : " and dx");
    emit_backward_phases(e, c, group_weights_phase, group_data_phase, g);
}
