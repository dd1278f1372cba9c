/* cnnrt_gen.h: the part of every generated trainer that does not depend on
 * its network's shapes: value type helpers, vectors, the loss, the
 * optimizers' update, the random numbers of a sample.
 *
 * A trainer that cnnc writes defines its value type and includes this
 * header after cnnrt.h:
 *
 *     typedef float real;
 *     #define REAL_SIZE 4
 *     #include "cnnrt_gen.h"
 *
 * It is C the compiler sees like any other (tests/test_gen.c builds it in
 * both precisions with every warning), compiled into each trainer with the
 * trainer's own flags, so that its arithmetic is the trainer's: the same
 * vectorization and the same contraction of multiply-adds. */
#ifndef CNNRT_GEN_H
#define CNNRT_GEN_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cnnrt.h"

#if !defined(REAL_SIZE) || (REAL_SIZE != 4 && REAL_SIZE != 8)
#error "define real and REAL_SIZE (4 or 8) before including cnnrt_gen.h"
#endif

#if REAL_SIZE == 8
#define EXP exp
#define LOG log
#define TANH tanh
#define SQRT sqrt
#define ERF erf
#else
#define EXP expf
#define LOG logf
#define TANH tanhf
#define SQRT sqrtf
#define ERF erff
#endif

/* Vectors: CNNC_VL reals fill the target's widest vector register
 * (AVX-512, AVX, else 16 bytes: SSE2, NEON or plain C). */
#if defined(__AVX512F__)
#define CNNC_VEC_BYTES 64
#elif defined(__AVX__)
#define CNNC_VEC_BYTES 32
#else
#define CNNC_VEC_BYTES 16
#endif
#define CNNC_VL (CNNC_VEC_BYTES / REAL_SIZE)
/* The first element of vector j (vl lanes) of a row of c >= vl elements:
 * the last vector ends at c, overlapping its neighbour. */
#define VEC_AT(j, vl, c) ((j) * (vl) < (c) - (vl) ? (j) * (vl) : (c) - (vl))
/* Unaligned vector load and store. */
#define VLOAD(v, p) memcpy(&(v), (p), sizeof(v))
#define VSTORE(p, v) memcpy((p), &(v), sizeof(v))

/* The phases of a backward stay functions of their own, which profiles name. */
#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

/* Ask for the cache line at p ahead of its use, to read or to write (a
 * hint: never faults). */
#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#define PREFETCH_W(p) __builtin_prefetch(p, 1)
#else
#define PREFETCH(p) ((void)(p))
#define PREFETCH_W(p) ((void)(p))
#endif
/* Reals in a cache line (64 bytes on the machines we know). */
#define CNNC_LINE (64 / REAL_SIZE)

/* A lane's parameters, gradients and workspace (cnnrt.h's cnnrt_lane). */
static inline const real *param(const cnnrt_lane *ln)
{
    return (const real *)ln->home->params;
}
static inline real *grad(const cnnrt_lane *ln)
{
    return (real *)ln->grads;
}
static inline void *work(const cnnrt_lane *ln, size_t off)
{
    return (char *)ln->workspace + off;
}

/* What a layer function hands the loops it shares out (cnnrt_parallel):
 * its own arguments. */
typedef struct cnnc_args {
    const cnnrt_lane *ln;
    int n;                   /* samples (a sample's place, for one sample) */
    const real *x, *y, *dy;
    real *out, *dx;          /* forward's y; backward's dx */
    const real *const *xs;   /* a merge layer's inputs */
    real *const *dxs;        /* and their gradients */
} cnnc_args;

/* The random numbers of sample i of the lane's micro-batch: a stream of its
 * own for each sample of the call, so that they depend on neither the
 * micro-batch, nor the lane, nor the thread count. */
static inline cnnrt_rng cnnrt_sample_rng(const cnnrt_lane *ln, int i)
{
    cnnrt_rng r;
    cnnrt_rng_seed(&r, ln->key, (uint64_t)(ln->i0 + i));
    return r;
}

/* ------------------------------------------------------------------------
 * Bytes to reals
 */

typedef struct cnnrt_bytes_job {
    real *restrict to;
    const uint8_t *restrict from;
} cnnrt_bytes_job;

static void cnnrt_bytes_body(void *arg, int lo, int hi)
{
    const cnnrt_bytes_job *j = arg;
    for (long k = lo; k < hi; k++)
        j->to[k] = (real)j->from[k] / (real)255;
}

/* to[k] = from[k] / 255 for k < count, as the runtime converts uint8
 * images (the same float or double). */
static inline void cnnrt_bytes_to_reals(const cnnrt_lane *ln, real *to, const uint8_t *from,
                                        int count)
{
    cnnrt_bytes_job j = {to, from};
    cnnrt_parallel(ln->home, count, 4096, cnnrt_bytes_body, &j);
}

/* The same, then normalised per channel: to[k] = (from[k] / 255 -
 * mean[c]) / std[c], c = k mod period (the runtime's order of operations,
 * torchvision's ToTensor and Normalize). */
typedef struct cnnrt_normal_job {
    real *restrict to;
    const uint8_t *restrict from;
    const real *mean, *std;
    int period;
} cnnrt_normal_job;

static void cnnrt_normal_body(void *arg, int lo, int hi)
{
    const cnnrt_normal_job *j = arg;
    for (long k = lo; k < hi; k++) {
        int c = (int)(k % j->period);
        j->to[k] = ((real)j->from[k] / (real)255 - j->mean[c]) / j->std[c];
    }
}

static inline void cnnrt_bytes_to_normal(const cnnrt_lane *ln, real *to, const uint8_t *from,
                                         int count, const real *mean, const real *std,
                                         int period)
{
    cnnrt_normal_job j = {to, from, mean, std, period};
    cnnrt_parallel(ln->home, count, 4096, cnnrt_normal_body, &j);
}

/* ------------------------------------------------------------------------
 * The loss, for m rows of a batch of n
 */

/* Softmax and cross-entropy fused: from the logits z[m][k] and the
 * probabilities p[m][k], the loss is logsumexp(z) - z[label] (finite where
 * log(p) would not be) and dL/dz = (p - onehot(label)) / n. With label
 * smoothing eps (PyTorch's CrossEntropyLoss(label_smoothing=eps)) the target
 * is (1 - eps) onehot + eps / k: the loss (1 - eps) (lse - z[label]) +
 * eps/k sum_j (lse - z_j), dL/dz = (p - target) / n. Returns the loss
 * summed over the rows. */
static inline double cnnrt_cross_entropy_rows(const real *p, const real *z, int m, int k,
                                              int n, const int32_t *labels,
                                              real *restrict dy, double eps)
{
    double total = 0;
    if (eps > 0) {
        const real on = (real)(1 - eps + eps / k), off = (real)(eps / k);
        for (int i = 0; i < m; i++) {
            const real *zi = z + (size_t)i * k;
            const int label = labels[i];
            real zmax = zi[0];
            for (int j = 1; j < k; j++)
                zmax = zi[j] > zmax ? zi[j] : zmax;
            double sum = 0, zsum = 0;
            for (int j = 0; j < k; j++) {
                sum += exp((double)zi[j] - zmax);
                zsum += zi[j];
            }
            double lse = log(sum) + zmax;
            total += (1 - eps) * (lse - zi[label]) + eps / k * (k * lse - zsum);
            for (int j = 0; j < k; j++)
                dy[(size_t)i * k + j] = (p[(size_t)i * k + j] - (j == label ? on : off)) / (real)n;
        }
        return total;
    }
    for (int i = 0; i < m; i++) {
        const real *zi = z + (size_t)i * k;
        const int label = labels[i];
        real zmax = zi[0];
        for (int j = 1; j < k; j++)
            zmax = zi[j] > zmax ? zi[j] : zmax;
        double sum = 0;
        for (int j = 0; j < k; j++)
            sum += exp((double)zi[j] - zmax);
        total += log(sum) + zmax - zi[label];
        for (int j = 0; j < k; j++)
            dy[(size_t)i * k + j] = (p[(size_t)i * k + j] - (j == label)) / (real)n;
    }
    return total;
}

/* Squared error of the outputs p[m][k] against the targets t[m][k] (or,
 * when t is NULL, the one-hot labels); dL/dp of the mean over all n*k
 * values, as PyTorch's MSELoss. Returns the summed squares. */
static inline double cnnrt_mse_rows(const real *p, const real *t, int m, int k, int n,
                                    const int32_t *labels, real *restrict dy)
{
    double total = 0;
    const size_t count = (size_t)n * k;
    for (size_t j = 0; j < (size_t)m * k; j++) {
        real target = t ? t[j] : (real)((int)(j % k) == labels[j / k]);
        real diff = p[j] - target;
        total += (double)diff * diff;
        dy[j] = 2 * diff / (real)count;
    }
    return total;
}

/* ------------------------------------------------------------------------
 * The optimizers, elementwise over the whole parameter block, in PyTorch's
 * semantics (torch.optim.SGD with momentum or nesterov, torch.optim.Adam)
 */

typedef struct cnnrt_update_job {
    real *restrict w;
    const real *restrict g;
    real *restrict s;         /* the optimizer's state slots */
    long count;
    real lr, mu, decay, b1, b2, eps, bc2_sqrt, step_size;
} cnnrt_update_job;

static void cnnrt_sgd_body(void *arg, int lo, int hi)
{
    const cnnrt_update_job *u = arg;
    real *restrict w = u->w;
    const real *restrict g = u->g;
    const real lr = u->lr, decay = u->decay;
    for (long j = lo; j < hi; j++)
        w[j] -= lr * (g[j] + decay * w[j]);
}

static void cnnrt_momentum_body(void *arg, int lo, int hi)
{
    const cnnrt_update_job *u = arg;
    real *restrict w = u->w, *restrict s = u->s;
    const real *restrict g = u->g;
    const real lr = u->lr, mu = u->mu, decay = u->decay;
    for (long j = lo; j < hi; j++) {
        real gj = g[j] + decay * w[j];
        s[j] = mu * s[j] + gj;
        w[j] -= lr * s[j];
    }
}

static void cnnrt_nesterov_body(void *arg, int lo, int hi)
{
    const cnnrt_update_job *u = arg;
    real *restrict w = u->w, *restrict s = u->s;
    const real *restrict g = u->g;
    const real lr = u->lr, mu = u->mu, decay = u->decay;
    for (long j = lo; j < hi; j++) {
        real gj = g[j] + decay * w[j];
        s[j] = mu * s[j] + gj;
        w[j] -= lr * (gj + mu * s[j]);
    }
}

/* PyTorch's Adam: w -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps). */
static void cnnrt_adam_body(void *arg, int lo, int hi)
{
    const cnnrt_update_job *u = arg;
    real *restrict w = u->w, *restrict m = u->s, *restrict v = u->s + u->count;
    const real *restrict g = u->g;
    const real b1 = u->b1, b2 = u->b2, eps = u->eps, decay = u->decay;
    const real bc2_sqrt = u->bc2_sqrt, step_size = u->step_size;
    for (long j = lo; j < hi; j++) {
        real gj = g[j] + decay * w[j];
        m[j] = b1 * m[j] + (1 - b1) * gj;
        v[j] = b2 * v[j] + (1 - b2) * gj * gj;
        w[j] -= step_size * m[j] / (SQRT(v[j]) / bc2_sqrt + eps);
    }
}

/* PyTorch's AdamW: w *= 1 - lr*decay, then Adam without decay. */
static void cnnrt_adamw_body(void *arg, int lo, int hi)
{
    const cnnrt_update_job *u = arg;
    real *restrict w = u->w, *restrict m = u->s, *restrict v = u->s + u->count;
    const real *restrict g = u->g;
    const real b1 = u->b1, b2 = u->b2, eps = u->eps, shrink = 1 - u->lr * u->decay;
    const real bc2_sqrt = u->bc2_sqrt, step_size = u->step_size;
    for (long j = lo; j < hi; j++) {
        real gj = g[j];
        w[j] *= shrink;
        m[j] = b1 * m[j] + (1 - b1) * gj;
        v[j] = b2 * v[j] + (1 - b2) * gj * gj;
        w[j] -= step_size * m[j] / (SQRT(v[j]) / bc2_sqrt + eps);
    }
}

/* Clipping: the sums of squares of fixed chunks of the gradients, added in
 * chunk order after, so that the norm is the same on any thread count. */
enum { CNNRT_NORM_CHUNK = 16384 };

typedef struct cnnrt_norm_job {
    const real *g;
    long count;
    double *parts;
} cnnrt_norm_job;

static void cnnrt_norm_body(void *arg, int lo, int hi)
{
    const cnnrt_norm_job *job = arg;
    for (int c = lo; c < hi; c++) {
        long end = (long)(c + 1) * CNNRT_NORM_CHUNK;
        double sum = 0;
        for (long j = (long)c * CNNRT_NORM_CHUNK; j < end && j < job->count; j++)
            sum += (double)job->g[j] * job->g[j];
        job->parts[c] = sum;
    }
}

typedef struct cnnrt_scale_job {
    real *g;
    real factor;
} cnnrt_scale_job;

static void cnnrt_scale_body(void *arg, int lo, int hi)
{
    const cnnrt_scale_job *job = arg;
    for (long j = lo; j < hi; j++)
        job->g[j] *= job->factor;
}

/* PyTorch's clip_grad_norm_(max_norm): when the gradients' L2 norm is over
 * max_norm, all are scaled by max_norm / (norm + 1e-6). Returns the norm
 * (NaN when a gradient is not finite: then nothing is scaled). */
static inline double cnnrt_clip_gradients(cnnrt_ctx *ctx, long count, double max_norm)
{
    int chunks = (int)((count + CNNRT_NORM_CHUNK - 1) / CNNRT_NORM_CHUNK);
    double *parts = malloc(sizeof(double) * (size_t)(chunks > 0 ? chunks : 1));
    if (!parts)
        return NAN;
    cnnrt_norm_job job = {(const real *)ctx->grads, count, parts};
    cnnrt_parallel(ctx, chunks, 1, cnnrt_norm_body, &job);
    double sum = 0;
    for (int c = 0; c < chunks; c++)
        sum += parts[c];
    free(parts);
    double norm = sqrt(sum);
    if (isfinite(norm) && norm > max_norm) {
        cnnrt_scale_job s = {(real *)ctx->grads, (real)(max_norm / (norm + 1e-6))};
        cnnrt_parallel(ctx, (int)count, 4096, cnnrt_scale_body, &s);
    }
    return norm;
}

/* One optimizer step of ctx's parameters from ctx->grads (clipped first
 * when ctx->clip asks). */
static inline void cnnrt_update(cnnrt_ctx *ctx, long count)
{
    if (ctx->clip > 0)
        cnnrt_clip_gradients(ctx, count, ctx->clip);
    cnnrt_update_job u = {.w = (real *)ctx->params, .g = (const real *)ctx->grads,
                          .s = (real *)ctx->opt_state, .count = count,
                          .lr = (real)ctx->lr, .mu = (real)ctx->momentum,
                          .decay = (real)ctx->decay};
    cnnrt_body *body = cnnrt_sgd_body;
    switch (ctx->optimizer) {
    case CNNRT_SGD: break;
    case CNNRT_MOMENTUM: body = cnnrt_momentum_body; break;
    case CNNRT_NESTEROV: body = cnnrt_nesterov_body; break;
    case CNNRT_ADAM:
    case CNNRT_ADAMW: {
        const real bc1 = (real)(1 - pow(ctx->beta1, (double)ctx->step));
        u.b1 = (real)ctx->beta1;
        u.b2 = (real)ctx->beta2;
        u.eps = (real)ctx->eps;
        u.bc2_sqrt = (real)sqrt(1 - pow(ctx->beta2, (double)ctx->step));
        u.step_size = u.lr / bc1;
        body = ctx->optimizer == CNNRT_ADAM ? cnnrt_adam_body : cnnrt_adamw_body;
        break;
    }
    }
    cnnrt_parallel(ctx, (int)count, 1024, body, &u);
}

#endif /* CNNRT_GEN_H */
