/* tiles_conv.c: the fast tier of Conv (conv.c holds the kind: its shape
 * rule and its reference loops).
 *
 * Maps are NHWC; the weight stays [n][C][KH][KW] (PyTorch's) in the
 * parameter block and is repacked per call so that channels run contiguous,
 * [tap][C][n] for forward and [tap][n][C] for the input gradient, each
 * vector of channels in an aligned slot of its own. A tap is one (kh, kw) of
 * the kernel, t = kh*KW + kw.
 *
 * All three are matrix products at heart, register-blocked the same way: a
 * tile of a few pixels (for the weight gradient, rows (tap, ci) of dw) by a
 * group of vectors of channels keeps its sums in named vector variables
 * a{p}_{v}, which the C compiler keeps in registers; the inner loop loads a
 * vector per group member and a scalar per tile row, broadcast into the
 * products. Vectors are GCC/Clang vector types as wide as the target's
 * registers but no wider than the channel count. A row of C channels is
 * covered by ceil(C / VL) vectors, the last one ending at C and overlapping
 * its neighbour (VEC_AT), so no load or store reaches past a row and nothing
 * needs padding. The tile shapes depend on the target's registers, so the
 * kernels are written once per target under #if on CNNC_VEC_BYTES (the
 * prelude's), and one file still builds for any. Tiles of pixels are flat
 * over samples and rows, so that small maps (and micro-batches) still fill
 * them. Every value is computed by one thread in a fixed order, whatever
 * the thread count.
 */
#include "tiles.h"

#include <inttypes.h>
#include <stdlib.h>

/* The targets, told apart by CNNC_VEC_BYTES: AVX-512's 32 vector registers
 * hold a tile of 24 sums, the group's (up to 4) vectors and a broadcast; the
 * 16 of AVX2 and SSE2 (and of anything else: NEON, plain C) a tile of 12
 * sums by at most 2 vectors. */
typedef struct Target {
    const char *cond;  /* the #if that picks it; NULL: any other target */
    int64_t bytes;     /* of a vector register */
    int sums;          /* accumulators in a tile */
    int group;         /* most vectors of channels in a tile */
} Target;

static const Target conv_targets[] = {
    {"CNNC_VEC_BYTES == 64", 64, 24, 4},
    {"CNNC_VEC_BYTES == 32", 32, 12, 2},
    {NULL, 16, 12, 2},
};

enum {
    NTARGETS = sizeof conv_targets / sizeof conv_targets[0],
    /* Pixels of a tile each have a pointer: 8 and the loop's own fit the
     * 16 general registers. Rows of a weight-gradient tile share one. */
    TILE_PIX = 8,
    TILE_ROWS = 12,
    /* Bytes of dy a weight-gradient block holds, to stay in L1 while
     * every tile of a thread sweeps it. */
    WGRAD_BLOCK_BYTES = 24 << 10,
    /* How many tiles ahead gappy tiles ask for their pixels
     * (fashion_resnet's conv6 forward: 26% of the peak without, 55% one
     * tile ahead, 58% two). */
    PREFETCH_TILES = 2,
};
/* A core's L2, as the prefetching takes it (Zen 4 and 5: 1 MiB). */
static const int64_t L2_BYTES = 1 << 20;

/* Whether some tap of some output lands on a padded row / column. */
bool conv_rows_padded(const ConvGeom *g)
{
    return g->pt > 0 || (g->oh - 1) * g->sh + g->kh - 1 - g->pt >= g->h;
}

bool conv_cols_padded(const ConvGeom *g)
{
    return g->pl > 0 || (g->ow - 1) * g->sw + g->kw - 1 - g->pl >= g->w;
}

static int64_t conv_taps(const ConvGeom *g)
{
    return g->kh * g->kw;
}

/* The weight gradient's runs of rows (see wgrad_runs). */
static bool row_runs(const ConvGeom *g)
{
    return !conv_cols_padded(g);
}

static int64_t run_len(const ConvGeom *g)
{
    return row_runs(g) ? g->kw * g->ci : g->ci;
}

/* A row of channels on a target: nv vectors of vl reals, in groups of at
 * most t->group vectors whose sizes differ by at most one, the smaller
 * first. So the last group, which holds the overlapping last pair, has both:
 * no two tiles (maybe on two threads) write the same channel of a pixel. */
typedef struct Lanes {
    int64_t channels, vl, nv;
    int sums, group;
    Split groups;
} Lanes;

/* Whether the conv is a 1x1 that skips pixels (stride 2: every other pixel
 * of every other row). The hardware's prefetchers follow a stream; through
 * a gappy one each tile's first loads wait on memory (half of such a
 * forward's time, by perf), so its tiles ask ahead for their pixels. */
static bool gappy_1x1(const ConvGeom *g)
{
    return g->kh == 1 && g->kw == 1 && (g->sh > 1 || g->sw > 1);
}

/* Whether backward_data's stores leave gaps in a dx larger than a core's
 * L2 (a phase of a stride 2 writes every other pixel of every other row):
 * then its tiles ask for the pixels of the tile PREFETCH_TILES on (conv4
 * of fashion_resnet, 3x3 stride 2, dx 3.2 MB a call: 53-62% -> 64-72% of
 * the peak). Where dx stays in the cache (resnet8's micro-batches) the
 * asking only costs (50% -> 45%); so it does for a 1x1's one phase with
 * taps (fashion_resnet's conv6: 66% -> 61%). */
static bool gappy_dx(const ConvGeom *g, int64_t real_size)
{
    return (g->sh > 1 || g->sw > 1) && !gappy_1x1(g) &&
           g->samples * g->h * g->w * g->ci * real_size > L2_BYTES;
}

static Lanes conv_lanes(const Target *t, int64_t channels, int64_t real_size)
{
    int64_t vl = min64(t->bytes / real_size, pow2_floor(channels));
    int64_t nv = (channels + vl - 1) / vl;
    return (Lanes){channels, vl, nv, t->sums, t->group, split_even(nv, t->group)};
}

/* A row of channels in a repacked weight: each vector's reals in a slot of
 * their own, VL apart (the overlapping last vector repeats channels), so that
 * the weight's loads are aligned. The slots of the widest target: enough for
 * any. */
static int64_t weight_slots(int64_t channels, int64_t real_size)
{
    int64_t most = 0;
    for (int k = 0; k < NTARGETS; k++) {
        Lanes ln = conv_lanes(&conv_targets[k], channels, real_size);
        if (ln.nv * ln.vl > most)
            most = ln.nv * ln.vl;
    }
    return most;
}

/* reals rounded up to whole 64-byte lines, so that what follows is aligned. */
static int64_t whole_lines(int64_t reals, int64_t real_size)
{
    int64_t per = 64 / real_size;
    return (reals + per - 1) / per * per;
}

/* The scratch, in reals: the weight repacked [tap][C][slots of n] for
 * forward; [tap][n][slots of C] for the input gradient (both repacked on
 * the lane's first micro-batch of a step: the weights change only between
 * steps); the weight gradient's two halves dwp[h][tap][C][slots of n] and
 * db's two halves, which sum over all of the lane's micro-batches. */
static int64_t wp_len(const ConvGeom *g, int64_t real_size)
{
    return whole_lines(conv_taps(g) * g->ci * weight_slots(g->co, real_size), real_size);
}

static int64_t wt_len(const ConvGeom *g, int64_t real_size)
{
    return whole_lines(conv_taps(g) * g->co * weight_slots(g->ci, real_size), real_size);
}

/* Where the halves of dwp and db's halves start. */
static int64_t dwp0_at(const ConvGeom *g, int64_t real_size)
{
    return wp_len(g, real_size) + wt_len(g, real_size);
}

static int64_t dwp1_at(const ConvGeom *g, int64_t real_size)
{
    return dwp0_at(g, real_size) + wp_len(g, real_size);
}

static int64_t dbp_at(const ConvGeom *g, int64_t real_size)
{
    return dwp1_at(g, real_size) + wp_len(g, real_size);
}

int64_t tiles_conv_scratch_bytes(const ConvGeom *g, int64_t real_size)
{
    int64_t dbp = g->bias ? 2 * whole_lines(g->co, real_size) : 0;
    return (dbp_at(g, real_size) + dbp) * real_size;
}

/* The groups of one size (set 0 the smaller, 1 the larger): count of them,
 * size vectors each, the first one's first vector. */
typedef struct GroupSet {
    int64_t count, size, first;
} GroupSet;

static GroupSet group_set(const Lanes *ln, int k)
{
    int64_t small = ln->groups.tiles - ln->groups.extra;
    if (k == 0)
        return (GroupSet){small, ln->groups.base, 0};
    return (GroupSet){ln->groups.extra, ln->groups.base + 1, small * ln->groups.base};
}

/* Tiles a loop item of the forward takes when it also gives a BatchNorm's
 * statistics (see the forward's section). */
enum { STATS_RUN = 8 };

/* Reals a run's slot of statistics holds: a mean and a sum of squares per
 * channel of the largest group. */
static int64_t stats_slot(const Lanes *ln)
{
    return 2 * (ln->groups.base + (ln->groups.extra > 0)) * ln->vl;
}

/* Pixels in a tile of nv vectors: as many as the sums allow, at most 8. */
static int tile_pixels(const Lanes *ln, int64_t nv)
{
    return (int)min64(ln->sums / nv, TILE_PIX);
}

/* "typedef real TYPE ..." for the target's vectors, with what they cover. */
static void emit_vec_type(Emitter *e, const char *type, const Lanes *ln)
{
    emit(e, "/* %s: %" PRId64 " reals; %" PRId64 " of them cover %" PRId64 " channels, in "
            "groups of at most %d */", type, ln->vl, ln->nv, ln->channels, ln->group);
    emit_local(e, type, "typedef real %s __attribute__((vector_size(%" PRId64 " * REAL_SIZE)));",
               type, ln->vl);
}

/* "const int c0 = VEC_AT(j0, VL, C), ...": the channels of the group's nv
 * vectors, from j0, its first. */
static void emit_group_channels(Emitter *e, const Lanes *ln, int nv)
{
    char line[512];
    size_t len = (size_t)snprintf(line, sizeof line, "const int");
    for (int v = 0; v < nv; v++)
        len += (size_t)snprintf(line + len, sizeof line - len, "%s c%d = VEC_AT(j0 + %d, %"
                                PRId64 ", %" PRId64 ")", v ? "," : "", v, v, ln->vl,
                                ln->channels);
    emit(e, "%s;", line);
}

/* SECTION for each target, under #if / #elif / #else where their lanes
 * differ (targets with the same lanes share one). */
typedef void Section(Emitter *e, const ConvGeom *g, const Lanes *ln, const void *arg);

static bool lanes_same(const Lanes *a, const Lanes *b)
{
    return a->vl == b->vl && a->sums == b->sums && a->group == b->group;
}

static void conv_emit_targets(Emitter *e, const ConvGeom *g, int64_t channels,
                              Section *section, const void *arg)
{
    Lanes ln[NTARGETS];
    for (int k = 0; k < NTARGETS; k++)
        ln[k] = conv_lanes(&conv_targets[k], channels, emit_real_size(e));
    for (int k = 0, end; k < NTARGETS; k = end) {
        for (end = k + 1; end < NTARGETS && lanes_same(&ln[k], &ln[end]);)
            end++;
        if (k == 0 && end == NTARGETS) {
            section(e, g, &ln[k], arg);
            return;
        }
        if (end == NTARGETS) {
            emit(e, "#else");
        } else {
            char cond[256];
            size_t len = 0;
            for (int t = k; t < end; t++)
                len += (size_t)snprintf(cond + len, sizeof cond - len, "%s%s",
                                        t > k ? " || " : "", conv_targets[t].cond);
            emit(e, "#%s %s", k == 0 ? "if" : "elif", cond);
        }
        section(e, g, &ln[k], arg);
    }
    emit(e, "#endif");
}

/* The weight w[co][ci][t] repacked for the target: dst[t][a][slot of b],
 * with (a, b) = (ci, co) (forward) or (co, ci) (input gradient): slot
 * j*VL + l holds channel VEC_AT(j) + l of b. A vector of slots at a time
 * (the threads share them out), so that each line of dst is written whole
 * and the lines of w it reads stay in L1. Once a step on each lane. */
static void conv_emit_repack(Emitter *e, const ConvGeom *g, const Lanes *ln, const char *dst,
                             bool co_inner)
{
    int64_t taps = conv_taps(g), rows = co_inner ? g->ci : g->co;
    emit(e, "if (ln->first) { /* the weights change only between steps */");
    char nv[32];
    snprintf(nv, sizeof nv, "%" PRId64, ln->nv);
    emit_parallel(e, "j", nv, 1);
    emit_for(e, "r", rows);
    emit_for(e, "t", taps);
    emit_for(e, "l", ln->vl);
    emit(e, "const int c = VEC_AT(j, %" PRId64 ", %" PRId64 ") + l;", ln->vl, ln->channels);
    emit(e, "%s[((t * %" PRId64 " + r) * %" PRId64 " + j) * %" PRId64 " + l] = w[(%s * %" PRId64
            " + %s) * %" PRId64 " + t];", dst, rows, ln->nv, ln->vl, co_inner ? "c" : "r",
         g->ci, co_inner ? "r" : "c", taps);
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    emit_parallel_end(e);
    emit(e, "}");
}

/* "vco w0, w1; VLOAD(w0, BASE); VLOAD(w1, BASE + VL);": a row of the
 * group's slots of a repacked weight. */
static void emit_wloads(Emitter *e, const char *type, const Lanes *ln, int nv, const char *base)
{
    char line[256];
    size_t len = (size_t)snprintf(line, sizeof line, "%s", type);
    for (int v = 0; v < nv; v++)
        len += (size_t)snprintf(line + len, sizeof line - len, "%s w%d", v ? "," : "", v);
    emit(e, "%s;", line);
    for (int v = 0; v < nv; v++)
        emit(e, "VLOAD(w%d, %s + %" PRId64 ");", v, base, v * ln->vl);
}

/* ---- classes: pixels that meet the same taps (forward and input gradient)
 *
 * Near the border of a map a pixel meets fewer taps (the others fall in
 * the padding, or, for the input gradient, outside dy). The pixels of a map
 * fall in classes, rectangles of rows by columns that meet the same taps,
 * kernel rows a0..a1 by kernel columns b0..b1: the map's interior, its
 * edges and corners. The pixels are taken class by class (sample by sample
 * within a class) in tiles that stay in one class, so a tile meets exactly
 * its class's taps: no tap in the padding, no test, no zeros. */

/* Along one axis, the taps t0..t1 that position q meets (none: t0 > t1).
 * Forward: output q meets inputs q*s - p + t, t < k, in [0, in). Input
 * gradient, a phase whose taps are t = 0..k-1: input q meets outputs q - t
 * in [0, out). */
typedef struct AxisRule {
    bool input_grad;
    int64_t in, out, k, s, p;
} AxisRule;

static void axis_taps(const AxisRule *r, int64_t q, int64_t *t0, int64_t *t1)
{
    if (r->input_grad) {
        *t0 = q - (r->out - 1) > 0 ? q - (r->out - 1) : 0;
        *t1 = q < r->k - 1 ? q : r->k - 1;
    } else {
        int64_t first = q * r->s - r->p;
        *t0 = first < 0 ? -first : 0;
        *t1 = r->in - 1 - first < r->k - 1 ? r->in - 1 - first : r->k - 1;
    }
    if (*t0 > *t1)
        *t0 = 0, *t1 = -1;
}

/* Positions q0..q1 of an axis that meet the same taps t0..t1. */
typedef struct Segment {
    int64_t q0, q1, t0, t1;
} Segment;

/* Positions lo..hi cut where the taps they meet change; seg holds
 * hi - lo + 1. Returns the count. */
static int axis_segments(const AxisRule *r, int64_t lo, int64_t hi, Segment *seg)
{
    int count = 0;
    for (int64_t q = lo; q <= hi; q++) {
        int64_t t0, t1;
        axis_taps(r, q, &t0, &t1);
        if (count && seg[count - 1].t0 == t0 && seg[count - 1].t1 == t1)
            seg[count - 1].q1 = q;
        else
            seg[count++] = (Segment){q, q, t0, t1};
    }
    return count;
}

/* An axis: its rule and its positions lo..hi. */
typedef struct Axis {
    AxisRule rule;
    int64_t lo, hi;
} Axis;

/* The forward's axes: output rows and columns, by the taps each meets. */
static void forward_axes(const ConvGeom *g, Axis *y, Axis *x)
{
    *y = (Axis){{false, g->h, g->oh, g->kh, g->sh, g->pt}, 0, g->oh - 1};
    *x = (Axis){{false, g->w, g->ow, g->kw, g->sw, g->pl}, 0, g->ow - 1};
}

/* Classes of the forward: rectangles of output pixels that meet the same taps. */
static int64_t forward_classes(const ConvGeom *g)
{
    Axis y, x;
    forward_axes(g, &y, &x);
    Segment *seg = xrealloc(NULL, (size_t)(g->oh > g->ow ? g->oh : g->ow) * sizeof *seg);
    int64_t classes = (int64_t)axis_segments(&y.rule, y.lo, y.hi, seg) *
                      axis_segments(&x.rule, x.lo, x.hi, seg);
    free(seg);
    return classes;
}

/* A slot per loop item (group, run of STATS_RUN tiles): a group's tiles of
 * np pixels are ceil(samples * pixels / np) a class, at most samples * oh *
 * ow / np + 1; room for the target that needs the most. */
int64_t tiles_conv_stats_bytes(const ConvGeom *g, int64_t samples, int64_t real_size)
{
    int64_t most = 0, classes = forward_classes(g);
    for (int t = 0; t < NTARGETS; t++) {
        Lanes ln = conv_lanes(&conv_targets[t], g->co, real_size);
        int64_t items = 0;
        for (int k = 0; k < 2; k++) {
            GroupSet set = group_set(&ln, k);
            int np = tile_pixels(&ln, set.size);
            int64_t tiles = (samples * g->oh * g->ow + np - 1) / np + classes;
            items += set.count * ((tiles + STATS_RUN - 1) / STATS_RUN);
        }
        if (items * stats_slot(&ln) > most)
            most = items * stats_slot(&ln);
    }
    return most * real_size;
}

/* "static const struct conv_class cls[] = ...": the classes, rows (axis
 * y) by columns (axis x): the first row and column, rows, columns, pixels
 * (per sample), taps a0..a1 along y and b0..b1 along x. Returns their
 * count. */
static int conv_emit_classes(Emitter *e, const Axis *y, const Axis *x)
{
    Segment *ys = xrealloc(NULL, (size_t)(y->hi - y->lo + 1) * sizeof *ys);
    Segment *xs = xrealloc(NULL, (size_t)(x->hi - x->lo + 1) * sizeof *xs);
    int ny = axis_segments(&y->rule, y->lo, y->hi, ys);
    int nx = axis_segments(&x->rule, x->lo, x->hi, xs);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fprintf(f, "struct conv_class { int row, col, rows, cols, pixels, a0, a1, b0, b1; };\n");
    fprintf(f, "static const struct conv_class cls[%d] = {\n", ny * nx);
    for (int r = 0; r < ny; r++)
        for (int c = 0; c < nx; c++) {
            int64_t rows = ys[r].q1 - ys[r].q0 + 1, cols = xs[c].q1 - xs[c].q0 + 1;
            fprintf(f, "{%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 ", %"
                       PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 "},\n", ys[r].q0,
                    xs[c].q0, rows, cols, rows * cols, ys[r].t0, ys[r].t1, xs[c].t0, xs[c].t1);
        }
    fprintf(f, "};");
    fclose(f);
    emit_local(e, "cls conv_class", "%s", text);
    free(text);
    free(ys);
    free(xs);
    return ny * nx;
}

/* BODY for one tile: np pixels of class k (in cls) from mt on (up to
 * last, its final pixel, which the last tile repeats) by the nv vectors of
 * a group from vector j0 on. */
typedef void TileBody(Emitter *e, const ConvGeom *g, const Lanes *ln, int nv, int np,
                      const void *arg);

/* "tilesK[c]": the tiles of np pixels before class c (n samples). */
static void emit_class_tile_counts(Emitter *e, int set, int classes, int np)
{
    char name[sizeof "tiles" + 11]; /* room for any int: gcc -O1 -fsanitize warns otherwise */
    snprintf(name, sizeof name, "tiles%d", set);
    emit_local(e, name, "int tiles%d[%d]; /* before each class: tiles of %d pixels */\n"
               "tiles%d[0] = 0;\n"
               "for (int c = 0; c < %d; c++) tiles%d[c + 1] = tiles%d[c] + (n * cls[c].pixels + %d)"
               " / %d;", set, classes + 1, np, set, classes, set, set, np - 1, np);
}

/* A loop item of several tiles (forward with a BatchNorm's statistics):
 * `tiles` consecutive tiles of a group, BEGIN before the first and END
 * after the last. */
typedef struct ItemOfTiles {
    int tiles;
    TileBody *begin, *end;
} ItemOfTiles;

/* The parallel loop over every (group, tile of a class), a group at a time,
 * the groups of set 0 before those of set 1; with `several`, over every
 * (group, run of several->tiles tiles). */
static void conv_emit_class_tiles(Emitter *e, const ConvGeom *g, const Lanes *ln, int classes,
                                  TileBody *body, const ItemOfTiles *several, const void *arg)
{
    GroupSet set[2] = {group_set(ln, 0), group_set(ln, 1)};
    char runs[2][32];   /* a group's items: its tiles, or its runs of tiles */
    char items[256];
    size_t len = 0;
    for (int k = 0; k < 2; k++) {
        if (!set[k].count)
            continue;
        emit_class_tile_counts(e, k, classes, tile_pixels(ln, set[k].size));
        snprintf(runs[k], sizeof runs[k], "tiles%d[%d]", k, classes);
        if (several) {
            snprintf(runs[k], sizeof runs[k], "runs%d", k);
            emit_local(e, runs[k], "const int runs%d = (tiles%d[%d] + %d) / %d; /* of %d tiles "
                       "*/", k, k, classes, several->tiles - 1, several->tiles, several->tiles);
        }
        len += (size_t)snprintf(items + len, sizeof items - len, "%s%" PRId64 " * %s",
                                len ? " + " : "", set[k].count, runs[k]);
    }
    emit_parallel(e, "it", items, 1);
    for (int k = 0; k < 2; k++) {
        if (!set[k].count)
            continue;
        bool second = k == 1 && set[0].count;  /* the else of set 0 */
        char idx[64] = "it";
        if (k == 0 && set[1].count)
            emit(e, "if (it < %" PRId64 " * %s) {", set[0].count, runs[0]);
        if (second) {
            emit(e, "} else {");
            snprintf(idx, sizeof idx, "(it - %" PRId64 " * %s)", set[0].count, runs[0]);
        }
        int np = tile_pixels(ln, set[k].size);
        emit(e, "const int j0 = %" PRId64 " + %s / %s * %" PRId64 ", %s = %s %% %s;",
             set[k].first, idx, runs[k], set[k].size, several ? "run" : "t", idx, runs[k]);
        if (several) {
            several->begin(e, g, ln, (int)set[k].size, np, arg);
            emit(e, "for (int t = run * %d; t < (run + 1) * %d && t < tiles%d[%d]; t++) {",
                 several->tiles, several->tiles, k, classes);
        }
        if (classes == 1) { /* a constant: the class's sizes fold into the arithmetic */
            emit(e, "const int c = 0; /* the one class */");
        } else {
            emit(e, "int c = 0; /* the tile's class */");
            emit(e, "while (t >= tiles%d[c + 1]) c++;", k);
        }
        emit(e, "const struct conv_class *k = &cls[c];");
        emit(e, "const int last = n * k->pixels - 1, mt = (t - tiles%d[c]) * %d;", k, np);
        body(e, g, ln, (int)set[k].size, np, arg);
        if (several) {
            emit(e, "}");
            several->end(e, g, ln, (int)set[k].size, np, arg);
        }
        if (second)
            emit(e, "}");
    }
    emit_parallel_end(e);
}

/* "int iP, ROWP, COLP": the sample, row and column of pixel p of the
 * tile: the first by division, each next one a step on from the one before
 * (none past the class's last pixel, which the last tile repeats). */
static void emit_class_pixels(Emitter *e, int np, const char *row, const char *col)
{
    emit(e, "int i0 = mt / k->pixels, %s0 = k->row + mt %% k->pixels / k->cols, %s0 = k->col + "
            "mt %% k->cols;", row, col);
    for (int p = 1; p < np; p++) {
        emit(e, "int i%d = i%d, %s%d = %s%d, %s%d = %s%d + (mt + %d <= last);", p, p - 1, row, p,
             row, p - 1, col, p, col, p - 1, p);
        emit(e, "if (%s%d == k->col + k->cols) { %s%d = k->col; if (++%s%d == k->row + k->rows)"
                " { %s%d = k->row; i%d++; } }", col, p, col, p, row, p, row, p, p);
    }
}

/* ---- forward */

/* The statistics of y for a BatchNorm after the Conv (ConvGeom.stats_to):
 * while training, a loop item takes a run of STATS_RUN tiles of a group,
 * and each tile, from the sums still in registers, gives per channel the
 * mean of its pixels and their sum of squared deviations from it, merged
 * into the run's (Chan et al.'s update, in registers); the run's go to a
 * slot of the item's own (`it`). After the tiles, the slots are merged in
 * order (the same update, in double) into the BatchNorm's share of the
 * lane: the same numbers whatever the thread count, and y is not read
 * again for them. A slot a run rather than a tile keeps the slots' traffic
 * and the merge's work small beside a pass over y. */
/* sd{v}, sq{v}: the sums over the tile's pixels after the first of d =
 * y - y at the first pixel, and of d^2 (when `masked`, each times keep{p}:
 * pixel p is not a repeat of the last). The shift keeps the sum of squares
 * accurate whatever the channel's mean. */
static void conv_emit_tile_sums(Emitter *e, int nv, int np, bool masked)
{
    for (int p = 1; masked && p < np; p++)
        emit(e, "const real keep%d = (real)(%d < count);", p, p);
    for (int v = 0; v < nv; v++) {
        emit(e, "sd%d = sq%d = (vco){0};", v, v);
        for (int p = 1; p < np; p++) {
            char keep[32] = "";
            if (masked)
                snprintf(keep, sizeof keep, " * keep%d", p);
            emit(e, "{ const vco d = (a%d_%d - a0_%d)%s; sd%d += d; sq%d += d * d; }", p, v, v,
                 keep, v, v);
        }
    }
}

/* "vco A0 INIT, B0 INIT, A1 INIT, ...": a pair of vectors per vector of the
 * group. */
static void emit_vector_pairs(Emitter *e, int nv, const char *a, const char *b, const char *init)
{
    char line[512];
    size_t len = (size_t)snprintf(line, sizeof line, "vco");
    for (int v = 0; v < nv; v++)
        len += (size_t)snprintf(line + len, sizeof line - len, "%s %s%d%s, %s%d%s", v ? "," : "",
                                a, v, init, b, v, init);
    emit(e, "%s;", line);
}

/* Before a run's tiles: its mean rm{v} and sum of squares rq{v} of the
 * `counted` pixels so far. */
static void conv_emit_run_begin(Emitter *e, const ConvGeom *g, const Lanes *ln, int nv, int np,
                                const void *arg)
{
    (void)g, (void)ln, (void)np, (void)arg;
    emit_vector_pairs(e, nv, "rm", "rq", " = {0}");
    emit(e, "real counted = 0;");
}

/* A tile's mean and sum of squared deviations of its `count` pixels (the
 * last tile of a class repeats its last pixel: that counts once), merged
 * into the run's. */
static void conv_emit_tile_stats(Emitter *e, int nv, int np)
{
    emit(e, "if (stats) {");
    emit(e, "const int count = last - mt + 1 < %d ? last - mt + 1 : %d;", np, np);
    emit_vector_pairs(e, nv, "sd", "sq", "");
    emit(e, "if (count == %d) {", np);
    conv_emit_tile_sums(e, nv, np, false);
    emit(e, "} else {");
    conv_emit_tile_sums(e, nv, np, true);
    emit(e, "}");
    emit(e, "const real per = (real)1 / (real)count, all = counted + (real)count;");
    emit(e, "const real f = (real)count / all, h = counted * f;");
    for (int v = 0; v < nv; v++) {
        emit(e, "const vco delta%d = a0_%d + sd%d * per - rm%d;", v, v, v, v);
        emit(e, "rm%d += delta%d * f;", v, v);
        emit(e, "rq%d += sq%d - sd%d * sd%d * per + delta%d * delta%d * h;", v, v, v, v, v, v);
    }
    emit(e, "counted = all;");
    emit(e, "}");
}

/* After a run's tiles: its slot. */
static void conv_emit_run_end(Emitter *e, const ConvGeom *g, const Lanes *ln, int nv, int np,
                              const void *arg)
{
    (void)g, (void)np, (void)arg;
    emit(e, "if (stats) {");
    emit(e, "real *slot = parts + (size_t)it * %" PRId64 ";", stats_slot(ln));
    for (int v = 0; v < nv; v++) {
        emit(e, "VSTORE(slot + %" PRId64 ", rm%d);", v * ln->vl, v);
        emit(e, "VSTORE(slot + %" PRId64 ", rq%d);", (nv + v) * ln->vl, v);
    }
    emit(e, "}");
}

static const ItemOfTiles stats_runs = {STATS_RUN, conv_emit_run_begin, conv_emit_run_end};

/* The slots of the runs merged, group by group, each channel's in order,
 * into the BatchNorm's lane mean and sum of squared deviations. A run's
 * pixels: those of its tiles. */
static void conv_emit_stats_merge(Emitter *e, const ConvGeom *g, const Lanes *ln, int classes)
{
    GroupSet set[2] = {group_set(ln, 0), group_set(ln, 1)};
    emit(e, "if (stats) { /* the runs' statistics merged in order */");
    batchnorm_emit_lane_stats(e, g->stats_to, g->co);
    for (int k = 0; k < 2; k++) {
        if (!set[k].count)
            continue;
        int64_t lanes = set[k].size * ln->vl;
        int np = tile_pixels(ln, set[k].size);
        emit(e, "for (int gi = 0; gi < %" PRId64 "; gi++) {", set[k].count);
        emit(e, "const int j0 = %" PRId64 " + gi * %" PRId64 ";", set[k].first, set[k].size);
        char before[64] = "0"; /* the items of set 0 */
        if (k && set[0].count)
            snprintf(before, sizeof before, "%" PRId64 " * runs0", set[0].count);
        emit(e, "const real *group = parts + ((size_t)%s + (size_t)gi * runs%d) * %" PRId64 ";",
             before, k, stats_slot(ln));
        emit(e, "double mean[%" PRId64 "] = {0}, m2[%" PRId64 "] = {0}, counted = 0, more = 0;",
             lanes, lanes);
        emit(e, "for (int c = 0, t = 0; c < %d; c++) {", classes);
        emit(e, "const int pixels = n * cls[c].pixels;");
        emit(e, "for (int mt = 0; mt < pixels; mt += %d, t++) {", np);
        emit(e, "more += pixels - mt < %d ? pixels - mt : %d;", np, np);
        emit(e, "if ((t + 1) %% %d && t + 1 < tiles%d[%d])", STATS_RUN, k, classes);
        emit(e, "    continue; /* the run goes on */");
        emit(e, "const real *sm = group + (size_t)(t / %d) * %" PRId64 ", *sq = sm + %" PRId64
                ";", STATS_RUN, stats_slot(ln), lanes);
        tiles_emit_chan_merge(e, "mean", "m2", lanes);
        emit(e, "more = 0;");
        emit(e, "}");
        emit(e, "}");
        emit_for(e, "v", set[k].size);
        emit_for(e, "l", ln->vl);
        emit(e, "const int ch = VEC_AT(j0 + v, %" PRId64 ", %" PRId64 ") + l;", ln->vl, g->co);
        emit(e, "bn_mean[ch] = mean[v * %" PRId64 " + l], bn_m2[ch] = m2[v * %" PRId64 " + l];",
             ln->vl, ln->vl);
        emit(e, "}");
        emit(e, "}");
        emit(e, "}");
    }
    emit(e, "}");
}

/* Ask for the lines of the pixels of the tile PREFETCH_TILES on: pixels
 * PREFETCH_TILES*np + p of this one's class (the last repeated, as the
 * tiles do), (pi, prow, pcol), stepped as the tile's own; `offset` places
 * one in `map` (reals from the map's start, in those names), whose `span`
 * reals from there the tile uses, clamped to the map (n samples of
 * `sample` reals). `write`: the tile will store there. */
static void conv_emit_prefetch_ahead(Emitter *e, int np, const char *map, int64_t sample,
                                     int64_t span, const char *offset, bool write)
{
    int ahead = PREFETCH_TILES * np;
    emit(e, "{ /* the tile %d on */", PREFETCH_TILES);
    emit(e, "const int m = mt + %d < last ? mt + %d : last;", ahead, ahead);
    emit(e, "int pi = m / k->pixels, prow = k->row + m %% k->pixels / k->cols, pcol = k->col + "
            "m %% k->cols;");
    emit(e, "for (int p = 0; p < %d; p++) {", np);
    emit(e, "const int64_t at = %s, end = (int64_t)n * %" PRId64 " - %" PRId64 ";", offset,
         sample, span);
    emit(e, "const int64_t in = at < 0 ? 0 : at < end ? at : end;");
    emit(e, "for (int l = 0; l < %" PRId64 "; l += CNNC_LINE) %s(%s + in + l);", span,
         write ? "PREFETCH_W" : "PREFETCH", map);
    emit(e, "if (m + p < last && ++pcol == k->col + k->cols) { pcol = k->col; if (++prow == "
            "k->row + k->rows) { prow = k->row; pi++; } }");
    emit(e, "}");
    emit(e, "}");
}

/* The forward's: the next pixels of a gappy 1x1 (their windows, one pixel
 * each, at kernel column b0 as the tile's own). */
static void conv_emit_forward_prefetch(Emitter *e, const ConvGeom *g, int np)
{
    int64_t rowlen = g->w * g->ci;
    char offset[256];
    snprintf(offset, sizeof offset, "(int64_t)pi * %" PRId64 " + (int64_t)(prow * %" PRId64
             " - %" PRId64 ") * %" PRId64 " + (pcol * %" PRId64 " - %" PRId64 " + k->b0) * %"
             PRId64, g->h * rowlen, g->sh, g->pt, rowlen, g->sw, g->pl, g->ci);
    conv_emit_prefetch_ahead(e, np, "x", g->h * rowlen, g->ci, offset, false);
}

/* One tile: y at np pixels by nv vectors of channels = b + the sum over
 * the class's taps and ci of x[i][oy*SH + kh - PT][ox*SW + kw - PL][ci] *
 * wp[t][ci][c_v] (then max(y, 0) for a ReLU after it). Its kernel columns
 * b0..b1 are one run of reals in x and in wp, a kernel row at a time. */
static void conv_emit_forward_tile(Emitter *e, const ConvGeom *g, const Lanes *ln, int nv,
                                   int np, const void *arg)
{
    (void)arg;
    int64_t rowlen = g->w * g->ci, slots = ln->nv * ln->vl;
    emit_group_channels(e, ln, nv);
    if (g->bias)
        emit_vloads(e, "vco", "b", nv, "b");
    tiles_accs(e, "vco", np, nv, g->bias ? ACC_BY_VECTOR : ACC_ZERO, "b", "");
    emit_class_pixels(e, np, "oy", "ox");
    for (int p = 0; p < np; p++)
        emit(e, "const int64_t o%d = (int64_t)i%d * %" PRId64 " + (int64_t)(oy%d * %" PRId64 " - %"
                PRId64 ") * %" PRId64 " + (ox%d * %" PRId64 " - %" PRId64 " + k->b0) * %" PRId64
                "; /* at kernel row 0, column b0 */", p, p, g->h * rowlen, p, g->sh, g->pt,
             rowlen, p, g->sw, g->pl, g->ci);
    if (gappy_1x1(g))
        conv_emit_forward_prefetch(e, g, np);
    emit(e, "const int run = (k->b1 - k->b0 + 1) * %" PRId64 ";", g->ci);
    emit(e, "const real *wg = wp + j0 * %" PRId64 " + (size_t)k->b0 * %" PRId64
            "; /* the group's slots at column b0 */", ln->vl, g->ci * slots);
    emit(e, "for (int kh = k->a0; kh <= k->a1; kh++) {");
    for (int p = 0; p < np; p++)
        emit(e, "const real *xk%d = x + (o%d + (int64_t)kh * %" PRId64 ");", p, p, rowlen);
    emit(e, "const real *wk = wg + (size_t)kh * %" PRId64 ";", g->kw * g->ci * slots);
    emit(e, "for (int q = 0; q < run; q++) {");
    char base[64];
    snprintf(base, sizeof base, "wk + q * %" PRId64, slots);
    emit_wloads(e, "vco", ln, nv, base);
    emit_fmas(e, np, nv, "xk", "[q]", "w");
    emit(e, "}");
    emit(e, "}");
    for (int p = 0; p < np; p++)
        for (int v = 0; v < nv; v++) {
            if (g->relu_out)
                tiles_relu_out(e, "vco", p, v);
            emit(e, "VSTORE(y + ((size_t)(i%d * %" PRId64 " + oy%d) * %" PRId64 " + ox%d) * %"
                    PRId64 " + c%d, a%d_%d);", p, g->oh, p, g->ow, p, g->co, v, p, v);
        }
    if (g->stats_to)
        conv_emit_tile_stats(e, nv, np);
}

static void conv_emit_forward_section(Emitter *e, const ConvGeom *g, const Lanes *ln,
                                      const void *arg)
{
    (void)arg;
    emit_vec_type(e, "vco", ln);
    if (g->relu_out)
        emit_mask_type(e, "vco");
    conv_emit_repack(e, g, ln, "wp", true);
    Axis y, x;
    forward_axes(g, &y, &x);
    int classes = conv_emit_classes(e, &y, &x);
    conv_emit_class_tiles(e, g, ln, classes, conv_emit_forward_tile,
                          g->stats_to ? &stats_runs : NULL, NULL);
    if (g->stats_to)
        conv_emit_stats_merge(e, g, ln, classes);
}

/* y[i][oy][ox][co] = b[co] + sum over taps and ci of x[i][iy][ix][ci] * w[co][ci][t] */
void tiles_conv_forward(Emitter *e, const LayerCode *c, const ConvGeom *g)
{
    const char *L = c->name;
    emit(e, "/* y[n][%" PRId64 "][%" PRId64 "][%" PRId64 "] = x[n][%" PRId64 "][%" PRId64
            "][%" PRId64 "] (*) w[%" PRId64 "][%" PRId64 "][%" PRId64 "][%" PRId64 "]"
            " + b, stride %" PRId64 "x%" PRId64 "%s */",
         g->oh, g->ow, g->co, g->h, g->w, g->ci, g->co, g->ci, g->kh, g->kw, g->sh, g->sw,
         g->relu_out ? ", then max(y, 0) for the ReLU after it" : "");
    emit_forward_begin(e, c);
    emit_local(e, "w", "const real *w = param(ln) + %s_weight;", L);
    if (g->bias)
        emit_local(e, "b", "const real *b = param(ln) + %s_bias;", L);
    emit_local(e, "wp", "real *restrict wp = work(ln, %s_SCRATCH); /* [tap][%" PRId64
               "][slots of %" PRId64 "] */", L, g->ci, g->co);
    if (g->stats_to) {
        emit_local(e, "stats", "const int stats = ln->home->training; /* %s's statistics "
                   "of y */", g->stats_to);
        emit_local(e, "parts", "real *restrict parts = (real *)((char *)work(ln, %s_SCRATCH) + "
                   "%" PRId64 "); /* [run of tiles][mean, sum of squares][group's channels] */",
                   L, tiles_conv_scratch_bytes(g, emit_real_size(e)));
    }
    conv_emit_targets(e, g, g->co, conv_emit_forward_section, NULL);
    emit_function_end(e);
}

/* ---- weight gradient */

/* The output rows (or columns) a tap k meets: o with o*s + k - p in
 * [0, in), clipped to [0, out). Emitted as constants when the tap is known,
 * else as expressions of k. */
static void conv_emit_out_range(Emitter *e, const char *o, const char *k, int64_t in,
                                int64_t out, int64_t s, int64_t p, int64_t ksize)
{
    if (p == 0 && (out - 1) * s + ksize - 1 <= in - 1) {
        /* No padding reached: every tap of every output lands inside. */
        emit(e, "const int %s0 = 0, %s1 = %" PRId64 ";", o, o, out - 1);
        return;
    }
    emit(e, "const int %s0 = %s < %" PRId64 " ? (%" PRId64 " - %s + %" PRId64 ") / %" PRId64
            " : 0;", o, k, p, p, k, s - 1, s);
    emit(e, "const int %s_hi = %" PRId64 " - %s;", o, in - 1 + p, k);
    emit(e, "const int %s1 = %s_hi < 0 ? -1 : (%s_hi / %" PRId64 " < %" PRId64 " ? %s_hi / %"
            PRId64 " : %" PRId64 ");", o, o, o, s, out - 1, o, s, out - 1);
}

/* dw's rows, r = t*CI + ci, as runs: without padded columns a kernel
 * row's KW*CI (a window's row is one run of KW pixels of CI channels in x),
 * else a tap's CI. A tile takes nr rows of one run by a group of vectors. */
static int64_t wgrad_runs(const ConvGeom *g)
{
    return row_runs(g) ? g->kh : conv_taps(g);
}

static Split wgrad_row_tiles(const ConvGeom *g, const Lanes *ln, int64_t nv)
{
    return split_even(run_len(g), min64(ln->sums / nv, TILE_ROWS));
}

/* A block: this many rows (i, oy) of dy, about WGRAD_BLOCK_BYTES. */
static int64_t wgrad_block(const ConvGeom *g, int64_t real_size)
{
    int64_t rows = WGRAD_BLOCK_BYTES / (g->ow * g->co * real_size);
    return rows < 1 ? 1 : rows;
}

/* Without padding every tap meets every output pixel: a block's pixels run
 * flat, one loop over them (small maps make short rows), dy's contiguous
 * and x's windows at the offsets of a table. */
static bool wgrad_flat(const ConvGeom *g)
{
    return !conv_rows_padded(g) && !conv_cols_padded(g);
}

/* "(size_t)(R / OH) * ... ": the offset in x of the first window row of dy's
 * row R (a sample and an output row). */
static void wgrad_row_offset(char *buf, size_t size, const ConvGeom *g, const char *r)
{
    snprintf(buf, size, "(size_t)(%s / %" PRId64 ") * %" PRId64 " + (size_t)(%s %% %" PRId64
             ") * %" PRId64, r, g->oh, g->h * g->w * g->ci, r, g->oh, g->sh * g->w * g->ci);
}

/* The flat block: dyb its dy, xoff[p] the offset in x of pixel p's window. */
static void conv_emit_wgrad_flat_block(Emitter *e, const ConvGeom *g, int64_t block)
{
    char at[160];
    emit(e, "const real *dyb = dy + (size_t)r0 * %" PRId64 ";", g->ow * g->co);
    emit(e, "const int pixels = (r1 - r0) * %" PRId64 ";", g->ow);
    emit(e, "size_t xoff[%" PRId64 "]; /* of each pixel's window in x */", block * g->ow);
    emit(e, "for (int r = r0, p = 0; r < r1; r++) {");
    wgrad_row_offset(at, sizeof at, g, "r");
    emit(e, "const size_t row = %s;", at);
    if (gappy_1x1(g)) { /* and, while this block's tiles run, ask for the next one's pixels */
        wgrad_row_offset(at, sizeof at, g, "rn");
        emit(e, "const int rn = r + %" PRId64 " < hi ? r + %" PRId64 " : r; const size_t next = "
                "%s;", block, block, at);
    }
    emit_for(e, "ox", g->ow);
    emit(e, "xoff[p++] = row + (size_t)ox * %" PRId64 ";", g->sw * g->ci);
    if (gappy_1x1(g))
        emit(e, "for (int l = 0; l < %" PRId64 "; l += CNNC_LINE) PREFETCH(x + next + (size_t)ox "
                "* %" PRId64 " + l);", g->ci, g->sw * g->ci);
    emit(e, "}");
    emit(e, "}");
}

/* The tile's sums over the flat block's pixels. */
static void conv_emit_wgrad_flat_loop(Emitter *e, const ConvGeom *g, int nr, int nv)
{
    emit(e, "const int off = u * %" PRId64 " + k0; /* the run's rows in a window */",
         g->w * g->ci);
    emit(e, "for (int p = 0; p < pixels; p++) {");
    emit(e, "const real *xp = x + (xoff[p] + off);");
    char base[64];
    snprintf(base, sizeof base, "dyb + p * %" PRId64, g->co);
    emit_vloads(e, "vco", "d", nv, base);
    emit_fmas(e, nr, nv, "xp[", "]", "d");
    emit(e, "}");
}

/* The tile's sums over the block's rows, each over the columns the run
 * meets (rows the run misses skipped). */
static void conv_emit_wgrad_row_loop(Emitter *e, const ConvGeom *g, int nr, int nv)
{
    int64_t rowlen = g->w * g->ci;
    if (row_runs(g)) {
        emit(e, "const int kh = u;");
        conv_emit_out_range(e, "oy", "kh", g->h, g->oh, g->sh, g->pt, g->kh);
        emit(e, "const int ox0 = 0, ox1 = %" PRId64 ";", g->ow - 1);
        emit(e, "const int off = (kh - %" PRId64 ") * %" PRId64 " + k0;", g->pt, rowlen);
    } else {
        emit(e, "const int kh = u / %" PRId64 ", kw = u %% %" PRId64 ";", g->kw, g->kw);
        conv_emit_out_range(e, "oy", "kh", g->h, g->oh, g->sh, g->pt, g->kh);
        conv_emit_out_range(e, "ox", "kw", g->w, g->ow, g->sw, g->pl, g->kw);
        emit(e, "const int off = ((kh - %" PRId64 ") * %" PRId64 " + kw - %" PRId64 ") * %"
                PRId64 " + k0;", g->pt, g->w, g->pl, g->ci);
    }
    emit(e, "for (int r = r0; r < r1; r++) {");
    emit(e, "const int oy = r %% %" PRId64 ";", g->oh);
    emit(e, "if (oy < oy0 || oy > oy1) continue;");
    emit(e, "const real *xr = x + (size_t)(r / %" PRId64 ") * %" PRId64 ";", g->oh,
         g->h * rowlen);
    emit(e, "const int xo = oy * %" PRId64 " + off;", g->sh * rowlen);
    emit(e, "const real *dyr = dy + (size_t)r * %" PRId64 ";", g->ow * g->co);
    emit(e, "for (int ox = ox0; ox <= ox1; ox++) {");
    emit(e, "const real *xp = xr + (xo + ox * %" PRId64 ");", g->sw * g->ci);
    char base[64];
    snprintf(base, sizeof base, "dyr + ox * %" PRId64, g->co);
    emit_vloads(e, "vco", "d", nv, base);
    emit_fmas(e, nr, nv, "xp[", "]", "d");
    emit(e, "}");
    emit(e, "}");
}

/* One tile: nr rows k0 + k of run u of dwp[r][slots of co], by nv vectors: the sums
 * so far plus, over the block's pixels (i, oy, ox) the run meets,
 * x[i][oy*SH + kh - PT][ox*SW + kw - PL][ci] * dy[i][oy][ox][c_v]. The rows
 * of a run lie side by side in x, at xp[0], xp[1], ... */
static void conv_emit_wgrad_tile(Emitter *e, const ConvGeom *g, const Lanes *ln, int nr,
                                 int nv)
{
    int64_t slots = ln->nv * ln->vl;
    emit(e, "real *dr = dwh + (u * %" PRId64 " + k0) * %" PRId64 " + j0 * %" PRId64
            "; /* the group's slots */", run_len(g), slots, ln->vl);
    tiles_accs(e, "vco", nr, nv, ACC_DECLARED, "", "");
    for (int k = 0; k < nr; k++)
        for (int v = 0; v < nv; v++)
            emit(e, "VLOAD(a%d_%d, dr + %" PRId64 "); /* the sums so far */", k, v,
                 k * slots + v * ln->vl);
    if (wgrad_flat(g))
        conv_emit_wgrad_flat_loop(e, g, nr, nv);
    else
        conv_emit_wgrad_row_loop(e, g, nr, nv);
    for (int k = 0; k < nr; k++)
        for (int v = 0; v < nv; v++)
            emit(e, "VSTORE(dr + %" PRId64 ", a%d_%d);", k * slots + v * ln->vl, k, v);
}

/* dbh[c_v] (+)= dy summed over the block's pixels. */
static void conv_emit_bias_tile(Emitter *e, const ConvGeom *g, int nv)
{
    tiles_accs(e, "vco", 1, nv, ACC_DECLARED, "", "");
    for (int v = 0; v < nv; v++)
        emit(e, "VLOAD(a0_%d, dbh + c%d); /* the sums so far */", v, v);
    emit(e, "for (size_t q = (size_t)r0 * %" PRId64 "; q < (size_t)r1 * %" PRId64 "; q += %"
            PRId64 ") {", g->ow * g->co, g->ow * g->co, g->co);
    emit_vloads(e, "vco", "d", nv, "dy + q");
    for (int v = 0; v < nv; v++)
        emit(e, "a0_%d += d%d;", v, v);
    emit(e, "}");
    for (int v = 0; v < nv; v++)
        emit(e, "VSTORE(dbh + c%d, a0_%d);", v, v);
}

/* db's half, one item: the groups in turn (one thread writes all of it,
 * whose lines the groups share). */
static void conv_emit_bias_item(Emitter *e, const ConvGeom *g, const Lanes *ln)
{
    for (int k = 0; k < 2; k++) {
        GroupSet s = group_set(ln, k);
        if (!s.count)
            continue;
        emit(e, "for (int j0 = %" PRId64 "; j0 < %" PRId64 "; j0 += %" PRId64 ") {", s.first,
             s.first + s.count * s.size, s.size);
        emit_group_channels(e, ln, (int)s.size);
        conv_emit_bias_tile(e, g, (int)s.size);
        emit(e, "}");
    }
}

/* "const int j0 = ..., u = ..., rt = ..., k0 = ...;": item k of set s, a
 * group of vectors from j0 on, a run u and its tile rt, of rows from k0 on. */
static void conv_emit_wgrad_decode(Emitter *e, const ConvGeom *g, const Lanes *ln, GroupSet s,
                                   const char *k)
{
    Split rows = wgrad_row_tiles(g, ln, s.size);
    int64_t per_group = wgrad_runs(g) * rows.tiles;
    emit(e, "const int j0 = %" PRId64 " + %s / %" PRId64 " * %" PRId64 ", u = %s / %" PRId64
            " %% %" PRId64 ", rt = %s %% %" PRId64 ";", s.first, k, per_group, s.size, k,
         rows.tiles, wgrad_runs(g), k, rows.tiles);
    emit(e, "const int k0 = rt * %" PRId64 " + (rt < %" PRId64 " ? rt : %" PRId64 ");",
         rows.base, rows.extra, rows.extra);
}

static void conv_emit_wgrad_item(Emitter *e, const ConvGeom *g, const Lanes *ln, GroupSet s,
                                 const char *k)
{
    Split rows = wgrad_row_tiles(g, ln, s.size);
    conv_emit_wgrad_decode(e, g, ln, s, k);
    emit_group_channels(e, ln, (int)s.size);
    if (rows.extra) {
        emit(e, "if (rt < %" PRId64 ") {", rows.extra);
        conv_emit_wgrad_tile(e, g, ln, (int)rows.base + 1, (int)s.size);
        emit(e, "} else {");
        conv_emit_wgrad_tile(e, g, ln, (int)rows.base, (int)s.size);
        emit(e, "}");
    } else {
        conv_emit_wgrad_tile(e, g, ln, (int)rows.base, (int)s.size);
    }
}

/* "if (it < END0) { ... } else if (it < END1) { ..." over the sets of dw's
 * items, BODY for each (the caller closes the chain). */
static void conv_emit_wgrad_sets(Emitter *e, const ConvGeom *g, const Lanes *ln,
                                 void (*body)(Emitter *, const ConvGeom *, const Lanes *,
                                              GroupSet, const char *))
{
    bool open = false;
    for (int k = 0, start = 0; k < 2; k++) {
        GroupSet s = group_set(ln, k);
        if (!s.count)
            continue;
        int64_t end = start + s.count * wgrad_runs(g) * wgrad_row_tiles(g, ln, s.size).tiles;
        emit(e, "%sif (it < %" PRId64 ") {", open ? "} else " : "", end);
        open = true;
        char idx[64];
        snprintf(idx, sizeof idx, "(it - %d)", start);
        body(e, g, ln, s, idx);
        start = (int)end;
    }
}

/* On the lane's last micro-batch, dw[co][ci][t] += the halves' sums,
 * dwp[h][t][ci][slot of co], and db[co] += its halves: a vector of slots at
 * a time (the threads share them out), so that each line of dwp is read
 * once and the lines of dw it meets stay in L1. Of the overlapping last
 * pair, which hold the same sums, the channels past vector NV - 2 come from
 * the last. */
static void conv_emit_wgrad_add(Emitter *e, const ConvGeom *g, const Lanes *ln)
{
    int64_t taps = conv_taps(g), slots = ln->nv * ln->vl;
    emit(e, "if (ln->last) {");
    char nv[32];
    snprintf(nv, sizeof nv, "%" PRId64, ln->nv);
    emit_parallel(e, "j", nv, 1);
    emit(e, "const int c = VEC_AT(j, %" PRId64 ", %" PRId64 "), l0 = j == %" PRId64 " ? %" PRId64
            " : 0;", ln->vl, g->co, ln->nv - 1, slots - g->co);
    if (g->bias) {
        emit(e, "for (int l = l0; l < %" PRId64 "; l++)", ln->vl);
        emit(e, "    db[c + l] += dbp[c + l] + dbp[%" PRId64 " + c + l];",
             whole_lines(g->co, emit_real_size(e)));
    }
    emit_for(e, "ci", g->ci);
    emit_for(e, "t", taps);
    emit(e, "const real *s0 = dwp0 + (size_t)(t * %" PRId64 " + ci) * %" PRId64 " + j * %" PRId64
            ", *s1 = dwp1 + (s0 - dwp0);", g->ci, slots, ln->vl);
    emit(e, "real *d = dw + (size_t)(c * %" PRId64 " + ci) * %" PRId64 " + t;", g->ci, taps);
    emit(e, "for (int l = l0; l < %" PRId64 "; l++)", ln->vl);
    emit(e, "    d[(size_t)l * %" PRId64 "] += s0[l] + s1[l];",
         g->ci * taps);
    emit(e, "}");
    emit(e, "}");
    emit_parallel_end(e);
    emit(e, "}");
}

/* The units of work: each half of the pixels by a share of the items (the
 * row tiles of set 0's groups, of set 1's, then db's half), a run of them,
 * taken through the half a block at a time. Then dw, db += the halves. */
static void conv_emit_wgrad_section(Emitter *e, const ConvGeom *g, const Lanes *ln,
                                    const void *arg)
{
    (void)arg;
    emit_vec_type(e, "vco", ln);
    int64_t items = g->bias ? 1 : 0, block = wgrad_block(g, emit_real_size(e));
    for (int k = 0; k < 2; k++) {
        GroupSet s = group_set(ln, k);
        items += s.count * wgrad_runs(g) * wgrad_row_tiles(g, ln, s.size).tiles;
    }
    emit(e, "/* items: tiles of rows of dw by groups of vectors%s */", g->bias ? ", then db" : "");
    emit_parallel(e, "unit", "2 * shares", 1);
    emit(e, "const int h = unit %% 2, share = unit / 2, lo = h ? mid : 0, hi = h ? rows : mid;");
    emit(e, "real *restrict dwh = h ? dwp1 : dwp0;");
    if (g->bias)
        emit(e, "real *restrict dbh = dbp + h * %" PRId64 ";", whole_lines(g->co, emit_real_size(e)));
    emit(e, "const int it0 = share * %" PRId64 " / shares, it1 = (share + 1) * %" PRId64
            " / shares;", items, items);
    emit(e, "for (int r0 = lo; r0 < hi; r0 += %" PRId64 ") { /* a block */", block);
    emit(e, "const int r1 = r0 + %" PRId64 " < hi ? r0 + %" PRId64 " : hi;", block, block);
    if (wgrad_flat(g))
        conv_emit_wgrad_flat_block(e, g, block);
    emit(e, "for (int it = it0; it < it1; it++) {");
    conv_emit_wgrad_sets(e, g, ln, conv_emit_wgrad_item);
    if (g->bias) {
        emit(e, "} else {");
        conv_emit_bias_item(e, g, ln);
    }
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    emit_parallel_end(e);
    conv_emit_wgrad_add(e, g, ln);
}

/* dw[co][ci][t] = sum over samples and output pixels of
 * x[i][oy*S + kh - P][ox*S + kw - P][ci] * dy[i][oy][ox][co]: the
 * correlation of x with the stride-dilated dy, as index arithmetic; db the
 * sum of dy. The pixels come in two halves, whatever the thread count, so
 * that two threads each read half of x and dy: each half's sums build up in
 * dwp[h][t][ci][slots of co] (and db's in dbp[h]) in tiles, each thread
 * taking a half and a share of the tiles; then dw += the halves in order.
 * A thread takes dy a block of rows at a time, and every one of its tiles
 * through the block, so that the block's dy (and x) serve them all from
 * L1; no barrier between blocks. Every value is summed by one tile, in
 * sample and pixel order. */
static void conv_emit_weight_grad(Emitter *e, const LayerCode *c, const ConvGeom *g)
{
    const char *L = c->name;
    int64_t block = wgrad_block(g, emit_real_size(e));
    emit_local(e, "dwp0", "real *restrict dwp0 = (real *)work(ln, %s_SCRATCH) + %" PRId64
               "; /* [tap][%" PRId64 "][slots of %" PRId64 "], the first half's sums */", L,
               dwp0_at(g, emit_real_size(e)), g->ci, g->co);
    emit_local(e, "dwp1", "real *restrict dwp1 = (real *)work(ln, %s_SCRATCH) + %" PRId64
               "; /* the second's */", L, dwp1_at(g, emit_real_size(e)));
    if (g->bias) {
        emit_local(e, "dbp", "real *restrict dbp = (real *)work(ln, %s_SCRATCH) + %" PRId64
                   "; /* [2][%" PRId64 "] */", L, dbp_at(g, emit_real_size(e)), g->co);
        emit_local(e, "db", "real *restrict db = grad(ln) + %s_bias; /* adds to the sums so "
                   "far */", L);
    }
    emit_local(e, "dw", "real *restrict dw = grad(ln) + %s_weight;", L);
    emit(e, "if (ln->first) /* the halves' sums (and db's) start */");
    emit(e, "    memset(dwp0, 0, %" PRId64 "u);", tiles_conv_scratch_bytes(g, emit_real_size(e)) -
         dwp0_at(g, emit_real_size(e)) * emit_real_size(e));
    emit(e, "/* halves of the rows (i, oy), whole blocks: rows [0, mid) and [mid, rows) */");
    emit_local(e, "rows", "const int rows = n * %" PRId64 ";", g->oh);
    emit_local(e, "mid", "const int mid = rows > %" PRId64 " ? (rows / 2 + %" PRId64 ") / %"
               PRId64 " * %" PRId64 " : rows;", block, block - 1, block, block);
    emit_local(e, "shares", "const int shares = ln->threads > 1 ? ln->threads / 2 : 1; "
               "/* of the items */");
    conv_emit_targets(e, g, g->co, conv_emit_wgrad_section, NULL);
}

/* ---- input gradient */

/* One axis of a phase of the stride: the inputs q*s + ph - p for q in
 * [lo, hi] meet the taps ph + a*s, a < taps, at outputs q - a (those in
 * range). False when the phase has no inputs. */
typedef struct PhaseAxis {
    int64_t ph, lo, hi, taps;
} PhaseAxis;

static bool phase_axis(int64_t in, int64_t k, int64_t s, int64_t p, int64_t ph, PhaseAxis *a)
{
    int64_t top = in - 1 + p - ph;
    if (top < 0)
        return false;
    a->ph = ph;
    a->lo = ph >= p ? 0 : (p - ph + s - 1) / s;
    a->hi = top / s;
    a->taps = ph < k ? (k - ph + s - 1) / s : 0;
    return a->lo <= a->hi;
}

typedef struct Phase {
    PhaseAxis y, x;
} Phase;

/* One tile of a phase (py, px): dx at np of its inputs (i, qy, qx), the
 * input (qy*SH + py - PT, qx*SW + px - PL), by nv vectors of channels: the
 * sum over its class's taps kh = py + a*SH, kw = px + b*SW and over co of
 * dy[i][qy - a][qx - b][co] * wt[t][co][c_v]; for a ReLU before it, 0 where
 * x there is not > 0. */
static void conv_emit_input_tile(Emitter *e, const ConvGeom *g, const Lanes *ln, int nv,
                                 int np, const void *arg)
{
    const Phase *ph = arg;
    emit_group_channels(e, ln, nv);
    tiles_accs(e, "vci", np, nv, ACC_ZERO, "", "");
    emit_class_pixels(e, np, "qy", "qx");
    if (gappy_dx(g, emit_real_size(e))) { /* ask ahead for dx's pixels */
        char offset[256];
        snprintf(offset, sizeof offset, "(int64_t)pi * %" PRId64 " + ((int64_t)(prow * %" PRId64
                 " + %" PRId64 ") * %" PRId64 " + pcol * %" PRId64 " + %" PRId64 ") * %" PRId64
                 " + c0", g->h * g->w * g->ci, g->sh, ph->y.ph - g->pt, g->w, g->sw,
                 ph->x.ph - g->pl, g->ci);
        conv_emit_prefetch_ahead(e, np, "dx", g->h * g->w * g->ci, nv * ln->vl, offset, true);
    }
    for (int p = 0; p < np; p++)
        emit(e, "const real *dyi%d = dy + (size_t)i%d * %" PRId64 ";", p, p,
             g->oh * g->ow * g->co);
    emit(e, "const real *wg = wt + j0 * %" PRId64 "; /* the group's slots */", ln->vl);
    emit(e, "for (int a = k->a0; a <= k->a1; a++) {");
    emit(e, "for (int b = k->b0; b <= k->b1; b++) {");
    for (int p = 0; p < np; p++)
        emit(e, "const real *d%d = dyi%d + ((qy%d - a) * %" PRId64 " + qx%d - b) * %" PRId64 ";",
             p, p, p, g->ow, p, g->co);
    emit(e, "const real *wk = wg + ((%" PRId64 " + a * %" PRId64 ") * %" PRId64 " + %" PRId64
            " + b * %" PRId64 ") * %" PRId64 ";", ph->y.ph, g->sh, g->kw, ph->x.ph, g->sw,
         g->co * ln->nv * ln->vl);
    emit_for(e, "co", g->co);
    char base[64];
    snprintf(base, sizeof base, "wk + co * %" PRId64, ln->nv * ln->vl);
    emit_wloads(e, "vci", ln, nv, base);
    emit_fmas(e, np, nv, "d", "[co]", "w");
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    /* dx adding to another consumer's: every old value loaded before any
     * store, so that the overlapping last vectors add it once */
    for (int pass = g->dx_add ? 0 : 1; pass < 2; pass++)
        for (int p = 0; p < np; p++)
            for (int v = 0; v < nv; v++) {
                char at[256];
                snprintf(at, sizeof at, "(size_t)i%d * %" PRId64 " + ((qy%d * %" PRId64 " + %"
                         PRId64 ") * %" PRId64 " + qx%d * %" PRId64 " + %" PRId64 ") * %" PRId64
                         " + c%d", p, g->h * g->w * g->ci, p, g->sh, ph->y.ph - g->pt, g->w, p,
                         g->sw, ph->x.ph - g->pl, g->ci, v);
                if (pass == 0) {
                    emit(e, "{ vci old; VLOAD(old, dx + %s); a%d_%d += old; }", at, p, v);
                    continue;
                }
                if (g->relu_in) {
                    char addr[300];
                    snprintf(addr, sizeof addr, "x + %s", at);
                    tiles_relu_in(e, "vci", p, v, addr);
                }
                emit(e, "VSTORE(dx + %s, a%d_%d);", at, p, v);
            }
}

/* A phase: its inputs by class (see above), every (group, tile) in one
 * parallel loop. */
static void conv_emit_input_phase(Emitter *e, const ConvGeom *g, const Lanes *ln,
                                  const Phase *ph)
{
    Axis y = {{true, g->h, g->oh, ph->y.taps, g->sh, g->pt}, ph->y.lo, ph->y.hi};
    Axis x = {{true, g->w, g->ow, ph->x.taps, g->sw, g->pl}, ph->x.lo, ph->x.hi};
    int classes = conv_emit_classes(e, &y, &x);
    conv_emit_class_tiles(e, g, ln, classes, conv_emit_input_tile, NULL, ph);
}

/* A phase no tap reaches (kernel smaller than the stride: of a 1x1 of
 * stride 2, three in four inputs) has dx = 0. Its tiles would sum nothing
 * and store zeros through the whole tile machinery, a quarter of dx at a
 * time; instead one loop over dx's rows clears them: whole rows of a
 * tapless row phase, the tapless columns of the others. Nothing to do when
 * dx adds to another consumer's. */
/* Whether a phase K..S-1 of an axis (k < s: no tap) has inputs. */
static bool axis_tapless(int64_t in, int64_t k, int64_t s, int64_t p)
{
    PhaseAxis a;
    for (int64_t ph = k; ph < s; ph++)
        if (phase_axis(in, k, s, p, ph, &a))
            return true;
    return false;
}

static bool has_tapless_phase(const ConvGeom *g)
{
    return axis_tapless(g->h, g->kh, g->sh, g->pt) || axis_tapless(g->w, g->kw, g->sw, g->pl);
}

static void conv_emit_tapless_phases(Emitter *e, const ConvGeom *g)
{
    int64_t rowlen = g->w * g->ci;
    emit(e, "/* the inputs no tap reaches: dx = 0, row by row */");
    char count[64];
    snprintf(count, sizeof count, "n * %" PRId64, g->h);
    emit_parallel(e, "r", count, 1);
    emit(e, "real *restrict dxr = dx + (size_t)r * %" PRId64 ";", rowlen);
    if (axis_tapless(g->h, g->kh, g->sh, g->pt)) { /* a row phase py >= KH */
        emit(e, "if ((r %% %" PRId64 " + %" PRId64 ") %% %" PRId64 " >= %" PRId64 ") { /* its "
                "row phase */", g->h, g->pt, g->sh, g->kh);
        emit(e, "memset(dxr, 0, sizeof(real) * %" PRId64 ");", rowlen);
        emit(e, "continue;");
        emit(e, "}");
    }
    for (int64_t px = g->kw; px < g->sw; px++) {
        PhaseAxis a;
        if (!phase_axis(g->w, g->kw, g->sw, g->pl, px, &a))
            continue;
        emit(e, "for (int qx = %" PRId64 "; qx <= %" PRId64 "; qx++) /* columns qx*%" PRId64
                " + %" PRId64 " */", a.lo, a.hi, g->sw, px - g->pl);
        emit(e, "    memset(dxr + (qx * %" PRId64 " + %" PRId64 ") * %" PRId64 ", 0, sizeof(real) "
                "* %" PRId64 ");", g->sw, px - g->pl, g->ci, g->ci);
    }
    emit_parallel_end(e);
}

/* Phase by phase, but for the ones no tap reaches. */
static void conv_emit_input_section(Emitter *e, const ConvGeom *g, const Lanes *ln,
                                    const void *arg)
{
    (void)arg;
    emit_vec_type(e, "vci", ln);
    if (g->relu_in)
        emit_mask_type(e, "vci");
    conv_emit_repack(e, g, ln, "wt", false);
    for (int64_t py = 0; py < g->sh; py++)
        for (int64_t px = 0; px < g->sw; px++) {
            Phase ph;
            if (!phase_axis(g->h, g->kh, g->sh, g->pt, py, &ph.y) ||
                !phase_axis(g->w, g->kw, g->sw, g->pl, px, &ph.x))
                continue;
            if (!ph.y.taps || !ph.x.taps)
                continue;
            emit(e, "{ /* phase (%" PRId64 ", %" PRId64 "): rows qy*%" PRId64 " + %" PRId64
                    ", qy in [%" PRId64 ", %" PRId64 "]; columns qx*%" PRId64 " + %" PRId64
                    ", qx in [%" PRId64 ", %" PRId64 "] */", py, px, g->sh, py - g->pt,
                 ph.y.lo, ph.y.hi, g->sw, px - g->pl, ph.x.lo, ph.x.hi);
            conv_emit_input_phase(e, g, ln, &ph);
            emit(e, "}");
        }
}

/* dx[i][iy][ix][ci] = sum over the taps that reach it of
 * dy[i][oy][ox][co] * w[co][ci][kh][kw], with iy + PT = oy*SH + kh. For a
 * stride S only the taps kh = (iy + PT) mod S, + S, + 2S, ... reach row iy,
 * each at oy = (iy + PT) div S - a: the phases of the stride (and the same
 * for columns); of those, the inputs near the border meet fewer (their
 * class). The code gathers exactly those, so no dilated (zero-inserted)
 * gradient exists. */
static void conv_emit_input_grad(Emitter *e, const LayerCode *c, const ConvGeom *g)
{
    const char *L = c->name;
    emit_local(e, "wt", "real *restrict wt = (real *)work(ln, %s_SCRATCH) + %" PRId64
               "; /* [tap][%" PRId64 "][slots of %" PRId64 "] */", L,
               wp_len(g, emit_real_size(e)), g->co, g->ci);
    conv_emit_targets(e, g, g->ci, conv_emit_input_section, NULL);
    if (has_tapless_phase(g) && !g->dx_add)
        conv_emit_tapless_phases(e, g);
}

static void conv_emit_weights_phase(Emitter *e, const LayerCode *c, const void *g)
{
    conv_emit_weight_grad(e, c, g);
}

static void conv_emit_data_phase(Emitter *e, const LayerCode *c, const void *g)
{
    emit_local(e, "w", "const real *w = param(ln) + %s_weight;", c->name);
    conv_emit_input_grad(e, c, g);
}

void tiles_conv_backward(Emitter *e, const LayerCode *c, const ConvGeom *g)
{
    emit(e, "/* from dy[n][%" PRId64 "][%" PRId64 "][%" PRId64 "]: dw, db%s */", g->oh, g->ow,
         g->co, !c->need_dx[0] ? " (no layer before it learns: no dx)"
                : c->relu_in ? " and dx, 0 where x <= 0 (the ReLU before)"
                : c->dx_add[0] ? " and dx (added)" : " and dx");
    emit_backward_phases(e, c, conv_emit_weights_phase, conv_emit_data_phase, g);
}
