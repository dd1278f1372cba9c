/* infer.h: what infer.c (float inference C) and quant.c (int8) share: the
 * steps a network becomes at inference, and pieces of the writer. */
#ifndef CNNC_INFER_H
#define CNNC_INFER_H

#include "deploy.h"
#include "emitter.h"

/* Floats per vector in the fast path (WIDE_VEC where the target has
 * AVX-512), and the most vectors of output channels one pixel keeps in
 * registers. */
enum { VEC = 8, WIDE_VEC = 16, MAX_ACCS = 8 };

/* Buffers start at multiples of this many floats (64 bytes). */
enum { ALIGN_FLOATS = 16 };

typedef enum Op {
    OP_ALIAS,     /* output = an input, no code */
    OP_CONV,      /* Conv or Dense */
    OP_MAXPOOL, OP_AVGPOOL, OP_GLOBALAVG,
    OP_ACT,       /* an elementwise activation */
    OP_SCALE,     /* BatchNorm not folded: y = x * s[c] + t[c] */
    OP_ADD, OP_CONCAT, OP_SOFTMAX,
    OP_FLATTEN,   /* HWC -> CHW */
} Op;

typedef struct ConvStep {
    int64_t h, w, ci, oh, ow, co, kh, kw, sh, sw, pt, pl;
    int64_t groups;       /* Conv(groups=G): output channel co reads the cig
                             input channels from (co / cog) * cig */
    int64_t cig, cog;     /* channels in and out per group */
    int64_t cop;          /* co padded to a multiple of VEC */
    double *wt;           /* [kh][kw][cig][cop] */
    double *bias;         /* [cop] */
    bool relu;            /* a ReLU after it, applied as it stores */
    bool padded;          /* reads a zero-bordered copy of its input, hp x wp
                             x ci at pad_off in the arena, so that every
                             window lies inside what it reads */
    int64_t hp, wp, pad_off;
} ConvStep;

typedef struct Step {
    Op op;
    int alias;            /* OP_ALIAS: the tensor it stands for */
    ConvStep conv;
    double *scale, *shift; /* OP_SCALE: [c] */
    int64_t off;          /* floats into the arena: its output */
} Step;

typedef struct Plan {
    Step *at;             /* [nlayers] */
    int *root;            /* [nlayers + 1] the tensor whose floats each is */
    int64_t arena;        /* floats */
} Plan;

/* What plan_steps places in the arena beside the layers' outputs. */
typedef struct Placing {
    bool pad_grouped;     /* zero-bordered copies for grouped Convs too
                             (every padded Conv of groups 1 has one) */
    int64_t slack;        /* elements past every buffer's end that a kernel
                             may read (int8 reads a window row's bytes in
                             groups of four, the last group's extra bytes
                             times zero weights) */
} Placing;

bool is_kind(const Layer *l, const LayerKind *k);
/* The steps of n with w's values (BatchNorm folded, ReLU fused, Flatten
 * absorbed, buffers placed, with room for the zero-bordered copies of
 * padded convolutions' inputs as how says); plan_release frees them. */
Plan plan_steps(const Network *n, const Weights *w, const Placing *how);
void plan_release(const Network *n, Plan *p);
/* "const int K0 = ..., K1 = ...;": the kernel rows [K0, K1) inside the input
 * for output row O (stride s, padding p, input in, kernel kn, outputs on). */
/* "const TYPE *NAME = x + ((oy * sh + KH - pt) * w + ox * sw + KW - pl) * c" and
 * then MORE (or nothing): where the tap (KH, KW) of output pixel (oy, ox) reads
 * an HWC input of row width w and c channels. */
void emit_window_at(Emitter *e, const char *type, const char *name, const char *kh,
                    const char *kw, const char *more, int64_t sh, int64_t pt, int64_t w,
                    int64_t sw, int64_t pl, int64_t c);
void tap_range(Emitter *e, const char *k, const char *o, int64_t s, int64_t p, int64_t in,
               int64_t kn, int64_t on);
/* A Conv as its kernels read their input: where the plan gave it a
 * zero-bordered copy, L_pad(x, p) is written first (the copy of elements of
 * type, float or int8_t) and the Conv returned reads the copy, hp x wp and
 * no padding; else the Conv as it is. */
ConvStep emit_pad_view(Emitter *e, const char *L, const ConvStep *step, const char *type);
/* "static const float NAME[COUNT] = { hex floats };" with dims as a comment. */
void emit_array(Emitter *e, const char *name, const char *dims, const double *v,
                int64_t count);

#endif /* CNNC_INFER_H */
