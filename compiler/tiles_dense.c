/* tiles_dense.c: the fast tier of Dense (dense.c holds the kind: its shape
 * rule and its reference loops).
 *
 * Three matrix products, with n the samples of a call (known at run time
 * only, often a micro-batch of 16 or 32), F the inputs and N the outputs:
 *
 *   forward   y[n][N]   = x[n][F] w^T + b     summed over k < F
 *   backward  dw[N][F] += dy^T x              summed over the samples
 *             db[N]    += dy                  summed over the samples
 *             dx[n][F]  = dy[n][N] w          summed over o < N
 *
 * Without -ffast-math a sum of floats does not vectorize, so no kernel sums
 * along a vector. Each is a register tile of rows by a few vectors of
 * accumulators a{r}_{v}, which the C compiler keeps in registers: a step of
 * the sum broadcasts a scalar s_r per row and loads a vector v_v per column,
 * a{r}_{v} += s_r * v_v, so that each load serves a whole row or column of
 * the tile. The vectors run along rows of memory, so w keeps PyTorch's
 * layout: along k (rows of x, w, dw and dx) for backward, and for forward
 * along the samples, with x repacked transposed, xt[F][n], as y^T = w xt.
 * That repacking moves n*F values, where repacking w would move F*N, as
 * many as the multiply-adds of a micro-batch of 16.
 *
 * Vectors are GCC/Clang vector types as wide as the target's registers
 * (CNNC_VL reals, chosen by the preprocessor of the generated file, so one
 * file builds for any target). Along k they are no wider than F, and a row
 * of F is covered by ceil(F / VK) vectors, the last ending at F and
 * overlapping its neighbour (VEC_AT): nothing reads or writes past a row.
 * Along the samples, xt is padded with zeros to whole vectors. The tiles
 * are as large as the target's vector registers allow, so each kernel is
 * emitted twice, for 16 registers and for 32 (chosen by the preprocessor).
 * PARALLEL_FOR deals out tiles; each sums its values in a fixed order, so
 * results do not depend on the thread count.
 *
 * At a micro-batch of 16, each weight (and gradient) loaded serves only 16
 * multiply-adds: when w and dw do not fit the cache, memory bandwidth
 * bounds these kernels as much as the FMA units do, so every loop walks
 * them row by row, as the hardware prefetcher likes.
 */
#include "tiles.h"

#include <inttypes.h>

/* Register tiles with at most 12 accumulators (24 with 32 registers), which
 * leaves room for the loaded vectors and a broadcast. */
typedef struct DenseTiles {
    int fwd_rows1; /* forward: rows of w by one vector of samples */
    int fwd_rows2; /* forward: rows of w by a pair of vectors */
    int bwd_rows;  /* dw: rows of outputs, dx: samples; by BWD_VECS vectors of k */
} DenseTiles;

static const DenseTiles tiles16 = {12, 6, 4}, tiles32 = {16, 8, 8};

/* The preprocessor's test for 32 vector registers: AVX-512 and AArch64. */
#define DENSE_REGS32 "defined(__AVX512F__) || defined(__aarch64__)"

enum {
    BWD_VECS = 3,  /* vectors along k in a backward tile */
    DX_CHUNK = 32, /* rows of w that dx's tiles meet before the next tiles */
};

/* The most reals in a vector: 64 bytes (AVX-512). Forward pads the samples
 * to whole vectors of CNNC_VL reals, which divides it. */
static int64_t dense_max_lanes(int64_t real_size)
{
    return 64 / real_size;
}

/* The reals of forward's xt[F][batch padded to whole vectors]; false when
 * the count overflows. */
static bool dense_xt_reals(int64_t f, int64_t batch, int64_t real_size, int64_t *reals)
{
    int64_t lanes = dense_max_lanes(real_size);
    return batch <= INT64_MAX - lanes && mul_ok(f, (batch + lanes - 1) / lanes * lanes, reals);
}

/* Whether dw waits for the lane's last micro-batch (see
 * dense_emit_weights_phase): when a lane takes more than one. */
static bool dense_defers_dw(int64_t batch, int64_t lane_samples)
{
    return lane_samples > batch;
}

/* xt for forward; for dx, after it, a row of N zeros (the dy of the rows
 * past n in the last tile) and a row of F (their dx, thrown away); then,
 * when dw waits, the x[lane_samples][F] and dy[lane_samples][N] of the
 * lane's micro-batches so far and their count. -1 when the size
 * overflows. */
int64_t tiles_dense_scratch_bytes(const DenseGeom *g, int64_t batch, int64_t lane_samples,
                                  int64_t real_size)
{
    int64_t reals, kept, bytes;
    if (!dense_xt_reals(g->f, batch, real_size, &reals) ||
        !add_ok(reals, g->nout + g->f, &reals))
        return -1;
    if (dense_defers_dw(batch, lane_samples) &&
        (!mul_ok(lane_samples, g->f + g->nout, &kept) || !add_ok(reals, kept, &reals) ||
         !add_ok(reals, 64 / real_size, &reals)))
        return -1;
    return mul_ok(reals, real_size, &bytes) ? bytes : -1;
}

/* Where the kept x starts, in reals. */
static int64_t dense_kept_at(const DenseGeom *g, int64_t batch, int64_t real_size)
{
    int64_t xt = 0;
    dense_xt_reals(g->f, batch, real_size, &xt); /* planned: no overflow */
    return xt + g->nout + g->f;
}

/* ---- pieces of tiles */

/* VLOAD(a{r}_{v}, ROW(r) + c{v}) for the whole tile (load), or VSTORE back;
 * ROW(r) is ROW + r * STRIDE when stride > 0, else the pointer ROW{r}. */
static void emit_tile_memory(Emitter *e, bool load, int rows, int nv, const char *row,
                             int64_t stride)
{
    for (int r = 0; r < rows; r++) {
        char at[64];
        if (stride == 0)
            snprintf(at, sizeof at, "%s%d", row, r);
        else if (r == 0)
            snprintf(at, sizeof at, "%s", row);
        else
            snprintf(at, sizeof at, "%s + %" PRId64, row, r * stride);
        for (int v = 0; v < nv; v++) {
            if (load)
                emit(e, "VLOAD(a%d_%d, %s + c%d);", r, v, at, v);
            else
                emit(e, "VSTORE(%s + c%d, a%d_%d);", at, v, r, v);
        }
    }
}

/* a{r}_{v} = max(a{r}_{v}, 0) for the whole tile, lane by lane as the ReLU
 * layer's x < 0 ? 0 : x: the lanes below 0 cleared, NaN (which the
 * divergence check looks for) and -0 kept. */
static void emit_tile_relu_out(Emitter *e, const char *type, int rows, int nv)
{
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < nv; v++)
            tiles_relu_out(e, type, r, v);
}

/* a{r}_{v} = 0 for the whole tile where x at ROW{r} + c{v} is not > 0: the
 * ReLU layer's backward, y > 0 ? dy : 0 (its y, this layer's x; NaN gives 0). */
static void emit_tile_relu_in(Emitter *e, const char *type, int rows, int nv, const char *row)
{
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < nv; v++) {
            char addr[64];
            snprintf(addr, sizeof addr, "%s%d + c%d", row, r, v);
            tiles_relu_in(e, type, r, v, addr);
        }
}

/* "const int O0 = ...;", the first row of tile OB of split s, then the tile
 * of base + 1 or base rows by nv vectors. */
static void dense_emit_rows(Emitter *e, const DenseGeom *g, const Split *s, const char *o0,
                            const char *ob, int nv,
                            void (*tile)(Emitter *, const DenseGeom *, int rows, int nv))
{
    if (s->extra == 0) {
        emit(e, "const int %s = %s * %" PRId64 ";", o0, ob, s->base);
        tile(e, g, (int)s->base, nv);
        return;
    }
    emit(e, "const int %s = %s * %" PRId64 " + (%s < %" PRId64 " ? %s : %" PRId64 ");", o0, ob,
         s->base, ob, s->extra, ob, s->extra);
    emit(e, "if (%s < %" PRId64 ") {", ob, s->extra);
    tile(e, g, (int)s->base + 1, nv);
    emit(e, "} else {");
    tile(e, g, (int)s->base, nv);
    emit(e, "}");
}

/* LOOP(g) for 32 vector registers and for 16, each under its #if. */
static void dense_emit_by_registers(Emitter *e, const DenseGeom *g,
                                    void (*loop)(Emitter *, const DenseGeom *))
{
    DenseGeom big = *g, small = *g;
    big.t = &tiles32;
    small.t = &tiles16;
    emit(e, "#if %s /* 32 vector registers */", DENSE_REGS32);
    loop(e, &big);
    emit(e, "#else /* 16 vector registers */");
    loop(e, &small);
    emit(e, "#endif");
}

/* The vector type vk of VK reals along k, and NVK, the vectors that cover a
 * row of F, in KGROUPS groups of at most BWD_VECS. */
static void dense_emit_klanes(Emitter *e, const DenseGeom *g)
{
    int64_t most = pow2_floor(g->f);
    emit(e, "/* vk: VK reals along k, the target's widest vector but at most %" PRId64
            "; NVK of them cover %" PRId64 " inputs, in KGROUPS groups of up to %d */",
         most, g->f, BWD_VECS);
    emit_local(e, "VK NVK KGROUPS", "enum { VK = CNNC_VL < %" PRId64 " ? CNNC_VL : %" PRId64
               ", NVK = (%" PRId64 " + VK - 1) / VK, KGROUPS = (NVK + %d) / %d };", most, most,
               g->f, BWD_VECS - 1, BWD_VECS);
    emit_local(e, "vk", "typedef real vk __attribute__((vector_size(VK * REAL_SIZE)));");
}

/* BODY(nv) for group kg of the vectors along k, as c0, c1, ...: the first
 * NVK % BWD_VECS vectors (when not 0) make group 0, then groups of
 * BWD_VECS, so that the overlapping last two are always in one group. */
static void dense_emit_kgroups(Emitter *e, const DenseGeom *g,
                               void (*body)(Emitter *, const DenseGeom *, int nv))
{
    for (int lead = 1; lead < BWD_VECS; lead++) {
        char which[32] = "vector 0";
        if (lead > 1)
            snprintf(which, sizeof which, "vectors 0 to %d", lead - 1);
        emit(e, "%sif (NVK %% %d == %d && kg == 0) { /* %s alone */", lead > 1 ? "} else " : "",
             BWD_VECS, lead, which);
        for (int v = 0; v < lead; v++)
            emit(e, "const int c%d = VEC_AT(%d, VK, %" PRId64 ");", v, v, g->f);
        body(e, g, lead);
    }
    emit(e, "%s{ /* vectors j to j + %d */", BWD_VECS > 1 ? "} else " : "", BWD_VECS - 1);
    emit(e, "const int j = NVK %% %d + (kg - (NVK %% %d != 0)) * %d;", BWD_VECS, BWD_VECS,
         BWD_VECS);
    for (int v = 0; v < BWD_VECS; v++)
        emit(e, "const int c%d = VEC_AT(j + %d, VK, %" PRId64 ");", v, v, g->f);
    body(e, g, BWD_VECS);
    emit(e, "}");
}

/* ---- forward */

/* Rows o0 + r of w by nv vectors of samples at c0 (, c1):
 * a{r}_{v} = b[o0 + r] + sum over k of w[o0 + r][k] * xt[k][c_v..] (then
 * max(a, 0) for a ReLU after it), then each sample i < n of the vectors
 * stores its row y[i][o0..]. */
static void dense_emit_forward_tile(Emitter *e, const DenseGeom *g, int rows, int nv)
{
    emit(e, "const real *wr = w + (size_t)o0 * %" PRId64 ";", g->f);
    tiles_accs(e, "vx", rows, nv, g->bias ? ACC_BY_ROW : ACC_ZERO, "zero + b[o0 + ", "]");
    emit_for(e, "k", g->f);
    emit(e, "const real *xk = xt + (size_t)k * np;");
    emit_vloads(e, "vx", "x", nv, "xk");
    char pre[64];
    snprintf(pre, sizeof pre, "wr[k + %" PRId64 " * ", g->f);
    emit_fmas(e, rows, nv, pre, "]", "x");
    emit(e, "}");
    if (g->relu_out)
        emit_tile_relu_out(e, "vx", rows, nv);
    for (int v = 0; v < nv; v++) {
        emit(e, "for (int l = 0; l < VX && c%d + l < n; l++) {", v);
        emit(e, "real *yl = y + (size_t)(c%d + l) * %" PRId64 " + o0;", v, g->nout);
        for (int r = 0; r < rows; r += 4) {
            char line[512];
            size_t len = 0;
            for (int q = r; q < rows && q < r + 4; q++)
                len += (size_t)snprintf(line + len, sizeof line - len, "%syl[%d] = a%d_%d[l];",
                                        q > r ? " " : "", q, q, v);
            emit(e, "%s", line);
        }
        emit(e, "}");
    }
}

/* The tiles: rows of w by vector 0 alone when the vectors of samples are
 * odd in number, then by pairs; the blocks of rows outer, so that a block
 * of w meets every vector while it is in the cache. */
static void dense_emit_forward_tiles(Emitter *e, const DenseGeom *g)
{
    Split one = split_even(g->nout, g->t->fwd_rows1), two = split_even(g->nout, g->t->fwd_rows2);
    emit(e, "/* tiles: vector 0 alone by %" PRId64 " blocks of up to %d rows of w when nvx is"
            " odd, then %" PRId64 " blocks of up to %d by each pair */", one.tiles,
         g->t->fwd_rows1, two.tiles, g->t->fwd_rows2);
    emit_local(e, "singles", "const int singles = nvx %% 2 ? %" PRId64 " : 0;", one.tiles);
    emit_local(e, "pairs", "const int pairs = nvx / 2;");
    char count[64];
    snprintf(count, sizeof count, "singles + pairs * %" PRId64, two.tiles);
    emit_parallel(e, "t", count, 1);
    emit(e, "if (t < singles) {");
    emit(e, "const int c0 = 0;");
    dense_emit_rows(e, g, &one, "o0", "t", 1, dense_emit_forward_tile);
    emit(e, "} else { /* block ob by the pair at c0, c1 */");
    emit(e, "const int ob = (t - singles) / pairs, pair = (t - singles) %% pairs;");
    emit(e, "const int c0 = (nvx %% 2 + 2 * pair) * VX, c1 = c0 + VX;");
    dense_emit_rows(e, g, &two, "o0", "ob", 2, dense_emit_forward_tile);
    emit(e, "}");
    emit_parallel_end(e);
}

/* y[n][N] = x[n][F] w^T + b, as its transpose y^T = w xt. */
void tiles_dense_forward(Emitter *e, const LayerCode *c, const DenseGeom *g)
{
    emit(e, "/* y[n][%" PRId64 "] = %sx[n][%" PRId64 "] w^T%s%s, w[%" PRId64 "][%" PRId64 "]"
            " (PyTorch's layout): computed transposed, y^T = w x^T */", g->nout,
         g->relu_out ? "max(" : "", g->f, g->bias ? " + b" : "",
         g->relu_out ? ", 0) for the ReLU after it" : "", g->nout, g->f);
    emit_forward_begin(e, c);
    emit(e, "/* vx: VX reals, the target's widest vector, along the samples: nvx of them"
            " cover n, padded to np */");
    emit_local(e, "VX", "enum { VX = CNNC_VL };");
    emit(e, "_Static_assert(VX <= %" PRId64 ", \"the scratch pads the samples to %" PRId64
            "\");", dense_max_lanes(emit_real_size(e)), dense_max_lanes(emit_real_size(e)));
    emit_local(e, "vx", "typedef real vx __attribute__((vector_size(VX * REAL_SIZE)));");
    if (g->relu_out)
        emit_mask_type(e, "vx");
    emit_local(e, "w", "const real *w = param(ln) + %s_weight;", g->L);
    if (g->bias) {
        emit_local(e, "b", "const real *b = param(ln) + %s_bias;", g->L);
        emit_local(e, "zero", "const vx zero = {0};");
    }
    emit_local(e, "nvx", "const int nvx = (n + VX - 1) / VX;");
    emit_local(e, "np", "const int np = nvx * VX;");
    emit_local(e, "xt", "real *restrict xt = work(ln, %s_SCRATCH); /* [%" PRId64 "][np]: x^T, "
               "zeros past n */", g->L, g->f);
    char f[32];
    snprintf(f, sizeof f, "%" PRId64, g->f);
    emit_parallel(e, "k", f, 1);
    emit(e, "for (int i = 0; i < np; i++) xt[(size_t)k * np + i] = i < n ? x[(size_t)i * %"
            PRId64 " + k] : 0;", g->f);
    emit_parallel_end(e);
    dense_emit_by_registers(e, g, dense_emit_forward_tiles);
    emit_function_end(e);
}

/* ---- backward: the weight gradient */

/* Rows o0 + r of dw by nv vectors of k at c0, ...: the sums so far plus,
 * sample by sample, dy[i][o0 + r] * x[i][c_v..]. */
static void dense_emit_dw_tile(Emitter *e, const DenseGeom *g, int rows, int nv)
{
    emit(e, "real *dwr = dw + (size_t)o0 * %" PRId64 ";", g->f);
    tiles_accs(e, "vk", rows, nv, ACC_DECLARED, "", "");
    emit_tile_memory(e, true, rows, nv, "dwr", g->f);
    emit(e, "for (int i = 0; i < n; i++) {");
    emit(e, "const real *dyi = dy + (size_t)i * %" PRId64 " + o0;", g->nout);
    char base[64];
    snprintf(base, sizeof base, "x + (size_t)i * %" PRId64, g->f);
    emit_vloads(e, "vk", "x", nv, base);
    emit_fmas(e, rows, nv, "dyi[", "]", "x");
    emit(e, "}");
    emit_tile_memory(e, false, rows, nv, "dwr", g->f);
}

/* Block ob of rows of dw by group kg of vectors along k. */
static void dense_emit_dw_block(Emitter *e, const DenseGeom *g, int nv)
{
    Split s = split_even(g->nout, g->t->bwd_rows);
    dense_emit_rows(e, g, &s, "o0", "ob", nv, dense_emit_dw_tile);
}

/* The tiles: blocks of rows by groups of vectors, rows outer, so that a
 * thread walks its rows of dw from start to end. */
static void dense_emit_dw_tiles(Emitter *e, const DenseGeom *g)
{
    Split s = split_even(g->nout, g->t->bwd_rows);
    emit(e, "/* tiles: %" PRId64 " blocks of up to %d rows (outputs) by KGROUPS groups */",
         s.tiles, g->t->bwd_rows);
    char count[64];
    snprintf(count, sizeof count, "%" PRId64 " * KGROUPS", s.tiles);
    emit_parallel(e, "t", count, 1);
    emit(e, "const int ob = t / KGROUPS, kg = t %% KGROUPS;");
    dense_emit_kgroups(e, g, dense_emit_dw_block);
    emit_parallel_end(e);
}

/* dw[N][F] += dy^T x; db += dy, over n samples. */
static void dense_emit_weight_grad(Emitter *e, const DenseGeom *g)
{
    emit_local(e, "dw", "real *restrict dw = grad(ln) + %s_weight; /* adds to the sums so far */",
               g->L);
    dense_emit_by_registers(e, g, dense_emit_dw_tiles);
    if (!g->bias)
        return;
    emit(e, "real *restrict db = grad(ln) + %s_bias;", g->L);
    emit(e, "for (int i = 0; i < n; i++)");
    emit(e, "    for (int o = 0; o < %" PRId64 "; o++) db[o] += dy[(size_t)i * %" PRId64 " + o];",
         g->nout, g->nout);
}

/* ---- backward: the input gradient */

/* Samples i0 + r (or the zero row, past n) by nv vectors of k at c0, ...:
 * a{r}_{v} = the sums of the chunks before (none at oc = 0) plus, over the
 * chunk's rows o, dy[i0 + r][o] * w[o][c_v..]; for a ReLU before it, after
 * the last chunk, 0 where x[i0 + r][c_v..] is not > 0 (past n, x's row 0
 * stands in: that dx goes to the sink). */
static void dense_emit_dx_tile(Emitter *e, const DenseGeom *g, int nv)
{
    int rows = g->t->bwd_rows;
    for (int r = 0; r < rows; r++)
        emit(e, "const real *d%d = i0 + %d < n ? dy + (size_t)(i0 + %d) * %" PRId64
                " : zero; real *dx%d = i0 + %d < n ? dx + (size_t)(i0 + %d) * %" PRId64
                " : sink;", r, r, r, g->nout, r, r, r, g->f);
    if (g->relu_in)
        for (int r = 0; r < rows; r++)
            emit(e, "const real *x%d = x + (size_t)(i0 + %d < n ? i0 + %d : 0) * %" PRId64 ";", r,
                 r, r, g->f);
    tiles_accs(e, "vk", rows, nv, ACC_ZERO, "", "");
    emit(e, g->dx_add ? "{ /* dx adds to another consumer's gradient */" : "if (oc > 0) {");
    emit_tile_memory(e, true, rows, nv, "dx", 0);
    emit(e, "}");
    emit(e, "for (int o = oc; o < oc1; o++) {");
    char base[64];
    snprintf(base, sizeof base, "w + (size_t)o * %" PRId64, g->f);
    emit_vloads(e, "vk", "w", nv, base);
    emit_fmas(e, rows, nv, "d", "[o]", "w");
    emit(e, "}");
    if (g->relu_in) {
        emit(e, "if (oc1 == %" PRId64 ") { /* the last chunk */", g->nout);
        emit_tile_relu_in(e, "vk", rows, nv, "x");
        emit(e, "}");
    }
    emit_tile_memory(e, false, rows, nv, "dx", 0);
}

/* The tiles: blocks of samples by groups of vectors along k. Each thread
 * takes a run of them (a run of columns of dx), and takes the rows of w a
 * chunk at a time through all of its tiles: the chunk's part of w, read
 * row by row, then serves every block of samples from the cache. */
static void dense_emit_dx_tiles(Emitter *e, const DenseGeom *g)
{
    int rows = g->t->bwd_rows;
    emit(e, "/* tiles: blocks of %d samples by KGROUPS groups, group outer; a run of them per"
            " thread, over chunks of %d rows of w */", rows, DX_CHUNK);
    emit_local(e, "blocks", "const int blocks = (n + %d) / %d;", rows - 1, rows);
    emit_local(e, "tiles", "const int tiles = KGROUPS * blocks;");
    emit_parallel(e, "part", "parts", 1);
    emit(e, "const int t0 = (int)((int64_t)tiles * part / parts), t1 = (int)((int64_t)tiles *"
            " (part + 1) / parts);");
    emit(e, "for (int oc = 0; oc < %" PRId64 "; oc += %d) {", g->nout, DX_CHUNK);
    emit(e, "const int oc1 = oc + %d < %" PRId64 " ? oc + %d : %" PRId64 ";", DX_CHUNK, g->nout,
         DX_CHUNK, g->nout);
    emit(e, "for (int t = t0; t < t1; t++) {");
    emit(e, "const int kg = t / blocks, i0 = t %% blocks * %d;", rows);
    dense_emit_kgroups(e, g, dense_emit_dx_tile);
    emit(e, "}");
    emit(e, "}");
    emit_parallel_end(e);
}

/* dx[n][F] = dy w (overwritten). The samples past n in the last block read
 * a row of zeros and write a row nobody reads. */
static void dense_emit_input_grad(Emitter *e, const LayerCode *c, const DenseGeom *g)
{
    emit_local(e, "w", "const real *w = param(ln) + %s_weight;", g->L);
    int64_t xt = 0;
    dense_xt_reals(g->f, c->batch, emit_real_size(e), &xt); /* planned: no overflow */
    emit_local(e, "zero", "real *zero = (real *)work(ln, %s_SCRATCH) + %" PRId64 "; /* [%" PRId64
               "], then sink [%" PRId64 "] */", g->L, xt, g->nout, g->f);
    emit_local(e, "sink", "real *sink = zero + %" PRId64 ";", g->nout);
    emit(e, "memset(zero, 0, %" PRId64 " * sizeof(real));", g->nout);
    if (g->relu_in)
        emit_mask_type(e, "vk");
    emit_local(e, "parts", "const int parts = ln->threads;");
    dense_emit_by_registers(e, g, dense_emit_dx_tiles);
}

/* "static void L_weight_sums(ln, n, x, dy)": dw, db += the sums over n
 * samples, for a weight phase that waits. */
static void dense_emit_weight_sums(Emitter *e, const LayerCode *c, const DenseGeom *g)
{
    emit_function_begin(e, c, "weight_sums", SIG_WEIGHTS, false);
    dense_emit_klanes(e, g);
    dense_emit_weight_grad(e, g);
    emit_function_end(e);
    emit_blank(e);
}

/* dw += dy^T x. At a micro-batch of 8 each weight meets 8 samples: dw, read
 * and written once per micro-batch, bounds the kernel when it does not fit
 * the cache. So with more than one micro-batch on a lane, the lane keeps
 * x and dy of each (a few KiB a sample) and sums dw over all of them at
 * once, on its last. */
static void dense_emit_weights_phase(Emitter *e, const LayerCode *c, const void *geom)
{
    const DenseGeom *g = geom;
    if (!dense_defers_dw(c->batch, c->lane_samples)) {
        dense_emit_klanes(e, g);
        dense_emit_weight_grad(e, g);
        return;
    }
    int64_t at = dense_kept_at(g, c->batch, emit_real_size(e));
    emit(e, "real *kx = (real *)work(ln, %s_SCRATCH) + %" PRId64 "; /* [%" PRId64 "][%" PRId64
            "]: x of the lane's samples so far */", g->L, at, c->lane_samples, g->f);
    emit(e, "real *kdy = kx + %" PRId64 "; /* [%" PRId64 "][%" PRId64 "]: their dy */",
         c->lane_samples * g->f, c->lane_samples, g->nout);
    emit(e, "int *kept = (int *)(kdy + %" PRId64 ");", c->lane_samples * g->nout);
    emit(e, "if (ln->first) *kept = 0;");
    emit(e, "memcpy(kx + (size_t)*kept * %" PRId64 ", x, sizeof(real) * (size_t)n * %" PRId64
            ");", g->f, g->f);
    emit(e, "memcpy(kdy + (size_t)*kept * %" PRId64 ", dy, sizeof(real) * (size_t)n * %" PRId64
            ");", g->nout, g->nout);
    emit(e, "*kept += n;");
    emit(e, "if (ln->last) %s_weight_sums(ln, *kept, kx, kdy);", g->L);
}

static void dense_emit_data_phase(Emitter *e, const LayerCode *c, const void *g)
{
    dense_emit_klanes(e, g);
    dense_emit_input_grad(e, c, g);
}

void tiles_dense_backward(Emitter *e, const LayerCode *c, const DenseGeom *g)
{
    if (dense_defers_dw(c->batch, c->lane_samples))
        dense_emit_weight_sums(e, c, g);
    emit(e, "/* from dy[n][%" PRId64 "]: dw[%" PRId64 "][%" PRId64 "] += dy^T x%s%s */", g->nout,
         g->nout, g->f, g->bias ? ", db += dy summed over samples" : "",
         !c->need_dx[0] ? " (no layer before it learns: no dx)"
         : c->relu_in ? ", dx = dy w, 0 where x <= 0 (the ReLU before)"
         : c->dx_add[0] ? ", dx += dy w" : ", dx = dy w");
    emit_backward_phases(e, c, dense_emit_weights_phase, dense_emit_data_phase, g);
}
