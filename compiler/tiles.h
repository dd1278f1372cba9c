/* tiles.h: the fast tier's kernel library.
 *
 * A layer kind's file (conv.c, dense.c, pool.c) holds the kind: its
 * arguments, its shape rule and its reference loops, the math as a person
 * writes it. What makes the fast tier fast lives here instead: register
 * tiles of GCC/Clang vector types, per-target tile shapes, border classes,
 * stride phases, repacked weights and blocked sums. The kind's file hands
 * its numbers (a ...Geom) to the entry points below.
 *
 *   tiles.c         the pieces every kernel shares
 *   tiles_conv.c    Conv: forward, weight gradient, input gradient
 *   tiles_group.c   grouped and depthwise Conv
 *   tiles_dense.c   Dense: the three matrix products
 *   tiles_pool.c    MaxPool and AvgPool
 */
#ifndef CNNC_TILES_H
#define CNNC_TILES_H

#include "cnnc.h"

/* ------------------------------------------------------------------------
 * tiles.c: shared pieces
 */

/* len cut into ceil(len / most) tiles as even as can be: the first extra
 * tiles hold base + 1, the others base. */
typedef struct Split {
    int64_t tiles, base, extra;
} Split;

Split split_even(int64_t len, int64_t most);
int64_t pow2_floor(int64_t v);   /* the largest power of two <= v (>= 1) */
int64_t min64(int64_t a, int64_t b);

/* How a tile's accumulators a{r}_{v} start: at zero; declared only (to be
 * loaded); at PRE{v} (a vector per column: Conv's bias); at PRE{r}POST (a
 * value per row, broadcast: Dense's bias). */
typedef enum AccStart { ACC_ZERO, ACC_DECLARED, ACC_BY_VECTOR, ACC_BY_ROW } AccStart;
/* "TYPE a{r}_0, a{r}_1, ...;", a line per row r of the tile. */
void tiles_accs(Emitter *e, const char *type, int rows, int nv, AccStart start, const char *pre,
                const char *post);

/* Declare and load nv vectors NAME0.. of TYPE from BASE + c0, BASE + c1, ...;
 * and the tile's multiply-adds a{r}_{v} += PRE{r}POST * VEC{v}. */
void emit_vloads(Emitter *e, const char *type, const char *name, int nv, const char *base);
void emit_fmas(Emitter *e, int rows, int nv, const char *pre, const char *post, const char *vec);
/* "typedef ... TYPE_mask;": the integer lanes a comparison of TYPEs gives,
 * to mask with (C has no ?: on vectors): the fused ReLUs of Conv and Dense. */
void emit_mask_type(Emitter *e, const char *type);
/* a{r}_{v} = max(a{r}_{v}, 0), lane by lane as the ReLU layer's
 * x < 0 ? 0 : x: the lanes below 0 cleared, NaN (which the divergence check
 * looks for) and -0 kept. */
void tiles_relu_out(Emitter *e, const char *type, int r, int v);
/* a{r}_{v} = 0 where the input at ADDR is not > 0: the ReLU layer's
 * backward, y > 0 ? dy : 0 (its y, this layer's x; NaN gives 0). */
void tiles_relu_in(Emitter *e, const char *type, int r, int v, const char *addr);

/* The statistics of a part merged into those so far (Chan et al.): MEAN[l]
 * and M2[l] (doubles: the mean and the sum of squared deviations of
 * `counted` values) with sm[l] and sq[l] (those of `more` values), for
 * lanes l; counted += more. */
void tiles_emit_chan_merge(Emitter *e, const char *mean, const char *m2, int64_t lanes);

/* ------------------------------------------------------------------------
 * tiles_conv.c: Conv
 */

typedef struct ConvGeom {
    int64_t h, w, ci;        /* input */
    int64_t oh, ow, co;      /* output */
    int64_t kh, kw, sh, sw;  /* kernel and stride */
    int64_t pt, pl;          /* padding at the top and left */
    bool bias;
    bool relu_out, relu_in;  /* the ReLUs fused in (LayerCode's) */
    bool dx_add;             /* dx adds to what another consumer wrote */
    int64_t groups;          /* channel groups: 1, or tiles_group.c's */
    const char *stats_to;    /* forward also writes the lane's statistics of
                                y for this BatchNorm (LayerCode's) */
    int64_t samples;         /* a call's at most: the micro-batch (LayerCode's
                                batch; 0: not known) */
} ConvGeom;

/* Whether some tap of some output lands on a padded row / column. */
bool conv_rows_padded(const ConvGeom *g);
bool conv_cols_padded(const ConvGeom *g);
/* Bytes of the fast kernels' scratch: the repacked weights and the weight
 * gradient's partial sums. */
int64_t tiles_conv_scratch_bytes(const ConvGeom *g, int64_t real_size);
/* Bytes of scratch beyond that for the forward's statistics of y (a
 * mean and a sum of squared deviations per tile) at most `samples` a call. */
int64_t tiles_conv_stats_bytes(const ConvGeom *g, int64_t samples, int64_t real_size);
void tiles_conv_forward(Emitter *e, const LayerCode *c, const ConvGeom *g);
void tiles_conv_backward(Emitter *e, const LayerCode *c, const ConvGeom *g);

/* ------------------------------------------------------------------------
 * tiles_group.c: Conv with groups > 1, depthwise included
 */

int64_t tiles_group_scratch_bytes(const ConvGeom *g, int64_t real_size);
/* Bytes of scratch beyond that for the forward's statistics of y (a mean
 * and a sum of squared deviations per row of pixels) at most `samples` a
 * call. */
int64_t tiles_group_stats_bytes(const ConvGeom *g, int64_t samples, int64_t real_size);
void tiles_group_forward(Emitter *e, const LayerCode *c, const ConvGeom *g);
void tiles_group_backward(Emitter *e, const LayerCode *c, const ConvGeom *g);

/* ------------------------------------------------------------------------
 * tiles_dense.c: Dense
 */

typedef struct DenseGeom {
    const char *L;         /* the layer's C prefix */
    int64_t f, nout;       /* F inputs, N outputs */
    bool bias;
    bool relu_out, relu_in; /* the ReLUs fused in (LayerCode's) */
    bool dx_add;           /* dx adds to what another consumer wrote */
    const struct DenseTiles *t; /* the tiles being emitted (tiles_dense.c's) */
} DenseGeom;

/* Bytes of the fast kernels' scratch at the micro-batch batch, a lane
 * taking lane_samples samples a step. -1 when the count overflows. */
int64_t tiles_dense_scratch_bytes(const DenseGeom *g, int64_t batch, int64_t lane_samples,
                                  int64_t real_size);
void tiles_dense_forward(Emitter *e, const LayerCode *c, const DenseGeom *g);
void tiles_dense_backward(Emitter *e, const LayerCode *c, const DenseGeom *g);

/* ------------------------------------------------------------------------
 * tiles_pool.c: MaxPool and AvgPool
 */

typedef struct PoolGeom {
    int64_t h, w, c;        /* input */
    int64_t oh, ow;         /* output (C channels too) */
    int64_t kh, kw, sh, sw; /* window and stride */
    int64_t pt, pl;         /* padding at the top and left */
    bool padded;            /* some window is clipped */
} PoolGeom;

int64_t pool_in_elems(const PoolGeom *g);   /* per sample */
int64_t pool_out_elems(const PoolGeom *g);
/* "x[n][H][W][C]" into buf. */
const char *pool_dims4(char *buf, size_t size, const char *name, int64_t h, int64_t w,
                       int64_t c);
/* "o * s - p" into buf, without a stride or padding of 1 or 0. */
const char *pool_window_start(char *buf, size_t size, const char *o, int64_t s, int64_t p);
void tiles_maxpool_forward(Emitter *e, const LayerCode *c, const PoolGeom *g);
void tiles_maxpool_backward(Emitter *e, const LayerCode *c, const PoolGeom *g);
void tiles_avgpool_forward(Emitter *e, const LayerCode *c, const PoolGeom *g);
void tiles_avgpool_backward(Emitter *e, const LayerCode *c, const PoolGeom *g);

#endif /* CNNC_TILES_H */
