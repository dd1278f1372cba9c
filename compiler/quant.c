/* quant.c: --quantize=int8 --calibrate X, the inference C in 8-bit
 * integers.
 *
 * Every tensor between the layers is int8 with one scale s (value = s * q,
 * symmetric, no zero point), kept in an arena of bytes:
 *   - Conv and Dense: weights int8 per output channel, w = sw[co] * wq
 *     (sw[co] = max |w[co]| / 127); bias int32 at the scale s_in * sw[co];
 *     the sum in int32; the result brought to the output's scale by a
 *     fixed-point multiplier M = s_in sw[co] / s_out = m * 2^-(31 + shift),
 *     m in [2^30, 2^31), rounded to nearest (half away from zero), clamped
 *     to [-127, 127] ([0, 127] with the ReLU fused). No floating point.
 *   - MaxPool, AvgPool, GlobalAvgPool, ReLU, Flatten, Dropout keep their
 *     input's scale: no requantisation (the averages round to nearest).
 *   - Add: each input brought to the output's scale by a 16-bit fixed-point
 *     ratio, in int32 (int64 where the ratios are too large for it).
 *   - The input is quantised as NAME_predict starts; the last tensor is
 *     turned back into floats, or, when the network ends in Softmax, its
 *     input is and the Softmax runs in float.
 * Activation scales: s = max |x| / 127 over the calibration samples, for
 * the tensors that Conv, Dense and Add produce (computed by running the
 * float network, folded as it is emitted, in double over every sample).
 * The other kinds (LeakyReLU, Sigmoid, Tanh, SiLU, GELU, Concat, a
 * BatchNorm that cannot fold) are refused for now.
 *
 * Two paths in the file, the same integers in both, so the same bytes:
 * compiled with AVX2 (-mavx2, -march=native on a core that has it), Conv
 * and Dense run on pmaddubsw/pmaddwd (vpdpbusd with AVX-512 VNNI) over
 * groups of four taps of a kernel row (qlayout), in tiles of pixels by
 * vectors of channels, depthwise Conv on 16-bit products, and
 * requantisation in 64-bit lanes; otherwise, or with NAME_PORTABLE, plain
 * C99 loops over the same arrays. A padded Conv (groups 1) reads a
 * zero-bordered copy of its input, as the float file's do, so that every
 * window lies inside what it reads. Input(mean=, std=) is applied as the
 * input is quantised. */
#include "infer.h"
#include "rt.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int64_t round_up8(int64_t v)
{
    return (v + 7) / 8 * 8;
}

/* ------------------------------------------------------------------------
 * What int8 covers
 */

/* Whether int8 covers every step; else says which layer it does not. */
static bool supported(const Network *n, const Plan *p)
{
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        Op op = p->at[i].op;
        bool ok = op == OP_ALIAS || op == OP_CONV || op == OP_MAXPOOL || op == OP_AVGPOOL ||
                  op == OP_GLOBALAVG || op == OP_ADD || op == OP_FLATTEN ||
                  (op == OP_SOFTMAX && i == n->nlayers - 1) ||
                  (op == OP_ACT && is_kind(l, &layer_relu));
        if (!ok) {
            fprintf(stderr, "cnnc: error: %s:%d: --quantize=int8 does not support %s%s yet\n",
                    n->source_name, l->loc.first_line, l->kind->name,
                    is_kind(l, &layer_batchnorm) ? " where it cannot fold into the Conv or "
                                                   "Dense before it" : "");
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------------------
 * Calibration: the float network in double, over every sample
 */

static void run_conv(const ConvStep *c, const double *x, double *y)
{
    for (int64_t oy = 0; oy < c->oh; oy++)
        for (int64_t ox = 0; ox < c->ow; ox++)
            for (int64_t co = 0; co < c->co; co++) {
                double sum = c->bias[co];
                int64_t c0 = co / c->cog * c->cig;
                for (int64_t kh = 0; kh < c->kh; kh++) {
                    int64_t iy = oy * c->sh + kh - c->pt;
                    if (iy < 0 || iy >= c->h)
                        continue;
                    for (int64_t kw = 0; kw < c->kw; kw++) {
                        int64_t ix = ox * c->sw + kw - c->pl;
                        if (ix < 0 || ix >= c->w)
                            continue;
                        for (int64_t j = 0; j < c->cig; j++)
                            sum += c->wt[((kh * c->kw + kw) * c->cig + j) * c->cop + co] *
                                   x[(iy * c->w + ix) * c->ci + c0 + j];
                    }
                }
                y[(oy * c->ow + ox) * c->co + co] = c->relu && sum < 0 ? 0 : sum;
            }
}

static void run_pool(const Layer *l, bool max, const double *x, double *y)
{
    int64_t kh = layer_arg(l, "size")->u.size.h, kw = layer_arg(l, "size")->u.size.w;
    int64_t sh = layer_arg(l, "stride")->u.size.h, sw = layer_arg(l, "stride")->u.size.w;
    int64_t pt = layer_arg(l, "padding")->u.pad.top, pl = layer_arg(l, "padding")->u.pad.left;
    int64_t h = l->in.h, w = l->in.w, c = l->in.c;
    for (int64_t oy = 0; oy < l->out.h; oy++)
        for (int64_t ox = 0; ox < l->out.w; ox++)
            for (int64_t ch = 0; ch < c; ch++) {
                double acc = max ? -INFINITY : 0;
                int count = 0;
                for (int64_t a = 0; a < kh; a++)
                    for (int64_t b = 0; b < kw; b++) {
                        int64_t iy = oy * sh + a - pt, ix = ox * sw + b - pl;
                        if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                            continue;
                        double v = x[(iy * w + ix) * c + ch];
                        acc = max ? (v > acc ? v : acc) : acc + v;
                        count++;
                    }
                y[(oy * l->out.w + ox) * c + ch] = max ? acc : acc / count;
            }
}

/* Layer i's output from its inputs (float steps of the plan). */
static void run_step(const Network *n, const Plan *p, int i, double **val)
{
    const Layer *l = &n->layers[i];
    const Step *s = &p->at[i];
    const double *x = val[p->root[l->inputs[0]]];
    double *y = val[i + 1];
    int64_t count = shape_elems(l->out);
    switch (s->op) {
    case OP_ALIAS: return;
    case OP_CONV: run_conv(&s->conv, x, y); return;
    case OP_MAXPOOL: run_pool(l, true, x, y); return;
    case OP_AVGPOOL: run_pool(l, false, x, y); return;
    case OP_GLOBALAVG: {
        int64_t hw = l->in.h * l->in.w, c = l->in.c;
        for (int64_t ch = 0; ch < c; ch++) {
            double sum = 0;
            for (int64_t q = 0; q < hw; q++)
                sum += x[q * c + ch];
            y[ch] = sum / (double)hw;
        }
        return;
    }
    case OP_ACT:
        for (int64_t j = 0; j < count; j++)
            y[j] = x[j] < 0 ? 0 : x[j];
        return;
    case OP_ADD:
        memset(y, 0, (size_t)count * sizeof *y);
        for (int k = 0; k < l->ninputs; k++)
            for (int64_t j = 0; j < count; j++)
                y[j] += val[p->root[l->inputs[k]]][j];
        return;
    case OP_FLATTEN: {
        int64_t hw = l->in.h * l->in.w, c = l->in.c;
        for (int64_t q = 0; q < hw; q++)
            for (int64_t ch = 0; ch < c; ch++)
                y[ch * hw + q] = x[q * c + ch];
        return;
    }
    case OP_SOFTMAX:
        memcpy(y, x, (size_t)count * sizeof *y);   /* its input's range is what counts */
        return;
    default:
        return;
    }
}

/* The calibration samples as doubles, read with the runtime's data reader
 * (every format the trainer takes); NULL with a message when they do not
 * fit the network's input or there are none. */
static double *read_samples(const Network *n, const char *path, int64_t *count)
{
    cnnrt_model m = {.abi_version = CNNRT_ABI_VERSION, .name = n->name, .real_size = 8,
                     .input_rank = n->input.rank,
                     .input_size = shape_elems(n->input), .outputs = 1,
                     .input_norm = n->norm_channels, .input_mean = n->input_mean,
                     .input_std = n->input_std};
    if (n->input.rank == 3) {
        m.input_shape[0] = n->input.h;
        m.input_shape[1] = n->input.w;
        m.input_shape[2] = n->input.c;
    } else {
        m.input_shape[0] = n->input.c;
    }
    rt_data d;
    rt_prog = "cnnc";
    if (rt_data_load(&d, &m, path, NULL, false, NULL) != 0) {
        fprintf(stderr, "cnnc: error: --calibrate: %s\n", rt_errmsg());
        return NULL;
    }
    if (d.n == 0) {
        fprintf(stderr, "cnnc: error: --calibrate %s holds no samples\n", path);
        rt_data_free(&d);
        return NULL;
    }
    int64_t *idx = xcalloc((size_t)d.n, sizeof *idx);
    for (int64_t i = 0; i < d.n; i++)
        idx[i] = i;
    double *x = xcalloc((size_t)(d.n * m.input_size), sizeof *x);
    rt_data_inputs(&d, &m, idx, (int)d.n, x, NULL);
    free(idx);
    *count = d.n;
    rt_data_free(&d);
    return x;
}

/* max |x| of every tensor over the samples: range[t] for the root tensors. */
static bool calibrate_ranges(const Network *n, const Plan *p, const char *path, double *range,
                      int64_t *samples)
{
    double *xs = read_samples(n, path, samples);
    if (!xs)
        return false;
    double **val = xcalloc((size_t)n->nlayers + 1, sizeof *val);
    for (int t = 1; t <= n->nlayers; t++)
        val[t] = xcalloc((size_t)shape_elems(n->tensors[t].shape), sizeof(double));
    int64_t in = shape_elems(n->input);
    for (int64_t s = 0; s < *samples; s++) {
        val[0] = xs + s * in;
        for (int i = 0; i < n->nlayers; i++)
            run_step(n, p, i, val);
        for (int t = 0; t <= n->nlayers; t++) {
            if (p->root[t] != t)
                continue;
            int64_t count = shape_elems(n->tensors[t].shape);
            for (int64_t j = 0; j < count; j++)
                if (fabs(val[t][j]) > range[t])
                    range[t] = fabs(val[t][j]);
        }
    }
    for (int t = 1; t <= n->nlayers; t++)
        free(val[t]);
    free(val);
    free(xs);
    return true;
}

/* ------------------------------------------------------------------------
 * Scales
 */

/* The scale of each root tensor: its own for the input and for what Conv,
 * Dense and Add produce; its input's for the layers that keep it. */
static void tensor_scales(const Network *n, const Plan *p, const double *range, double *scale)
{
    for (int t = 0; t <= n->nlayers; t++) {
        if (p->root[t] != t)
            continue;
        Op op = t == 0 ? OP_CONV : p->at[t - 1].op;
        if (t == 0 || op == OP_CONV || op == OP_ADD || op == OP_SOFTMAX) {
            scale[t] = range[t] > 0 ? range[t] / 127 : 1;
        } else {
            const Layer *l = &n->layers[t - 1];
            scale[t] = scale[p->root[l->inputs[0]]];
        }
    }
}

/* M = m * 2^-(31 + shift), m in [2^30, 2^31); m = 0 when M is too small to
 * matter (below 2^-31 of an int32 sum). */
typedef struct Fixed {
    int32_t m;
    int shift;
} Fixed;

static Fixed fixed_point(double M)
{
    Fixed f = {0, 0};
    if (!(M > 0))
        return f;
    int e;
    double frac = frexp(M, &e);      /* M = frac * 2^e, frac in [0.5, 1) */
    int64_t m = llround(frac * 2147483648.0);
    if (m == INT64_C(2147483648)) {
        m /= 2;
        e++;
    }
    f.shift = -e;
    if (31 + f.shift > 62 || 31 + f.shift < 1)
        return (Fixed){0, 0};
    f.m = (int32_t)m;
    return f;
}

/* ------------------------------------------------------------------------
 * Writing
 */

static void emit_int_array(Emitter *e, const char *type, const char *name, const char *dims,
                           const int64_t *v, int64_t count)
{
    emit(e, "static const %s %s[%" PRId64 "] = { /* %s */", type, name, count, dims);
    for (int64_t i = 0; i < count; i++) {
        fprintf(e->out, "%s%" PRId64 "%s", i % 12 == 0 ? "    " : " ", v[i],
                i + 1 < count ? "," : "");
        if (i % 12 == 11 || i + 1 == count)
            fputc('\n', e->out);
    }
    emit(e, "};");
}

/* Whether tensor t holds no negative value: what a ReLU (fused or not)
 * produced, and what pools, Flatten and Add make of such tensors (an Add's
 * ratios are positive). The int8 convolution then skips the sign trick. */
static bool nonnegative(const Network *n, const Plan *p, int t)
{
    int r = p->root[t];
    if (r == INPUT_TENSOR)
        return false;
    int i = n->tensors[r].producer;
    const Layer *l = &n->layers[i];
    switch (p->at[i].op) {
    case OP_CONV: return p->at[i].conv.relu;
    case OP_ACT: return true;   /* int8 has ReLU only */
    case OP_MAXPOOL: case OP_AVGPOOL: case OP_GLOBALAVG: case OP_FLATTEN:
        return nonnegative(n, p, l->inputs[0]);
    case OP_ADD:
        for (int k = 0; k < l->ninputs; k++)
            if (!nonnegative(n, p, l->inputs[k]))
                return false;
        return true;
    default: return false;
    }
}

/* A Conv with groups == 1 (or a Dense) in int8, as the fast path wants it.
 * A kernel row's kw * ci taps are contiguous in x (HWC), so the sum runs
 * over r = kw * ci + c in groups of four, the last group padded with zero
 * weights: one 32-bit broadcast of x and one pmaddubsw then pmaddwd give
 * 8 output channels 4 products each. The output channels go in chunks of
 * cw (at most QACCS vectors of 8 accumulators, held in registers), each
 * chunk's weights contiguous: wq[chunk][kh][g][cw][4]. */
enum { QACCS = 8 };

/* Bytes past every buffer's end that a window row's last group of four
 * may read (q.g * 4 - q.r <= 3; their weights are zero): the plan keeps
 * them free. */
enum { Q8_SLACK = 4 };

typedef struct QLayout {
    int64_t r, g;        /* a kernel row's taps; groups of four */
    int64_t cw, chunks;  /* output channels per chunk (a multiple of VEC); chunks */
    int64_t cpad;        /* chunks * cw >= co: the arrays per output channel */
} QLayout;

static QLayout qlayout(const ConvStep *c)
{
    QLayout q = {.r = c->kw * c->ci};
    q.g = (q.r + 3) / 4;
    int64_t nv = c->cop / VEC;
    q.chunks = (nv + QACCS - 1) / QACCS;
    q.cw = (nv + q.chunks - 1) / q.chunks * VEC;
    q.cpad = q.chunks * q.cw;
    return q;
}

/* The Conv's weights in int8 per output channel, [kh][kw][cig][cop] as
 * c->wt, its bias in int32 and its multipliers, into arrays of cop. */
static void quantize_conv(const Layer *l, const ConvStep *c, double s_in, double s_out,
                          int64_t *wq, int64_t *bq, int64_t *mult, int64_t *shift)
{
    int64_t rows = c->kh * c->kw * c->cig;
    double smin = INFINITY, smax = 0;
    for (int64_t o = 0; o < c->co; o++) {
        double wmax = 0;
        for (int64_t r = 0; r < rows; r++)
            if (fabs(c->wt[r * c->cop + o]) > wmax)
                wmax = fabs(c->wt[r * c->cop + o]);
        double sw = wmax > 0 ? wmax / 127 : 1;
        smin = sw < smin ? sw : smin;
        smax = sw > smax ? sw : smax;
        for (int64_t r = 0; r < rows; r++)
            wq[r * c->cop + o] = llround(c->wt[r * c->cop + o] / sw);
        bq[o] = llround(c->bias[o] / (s_in * sw));
        Fixed f = fixed_point(s_in * sw / s_out);
        mult[o] = f.m;
        shift[o] = 31 + f.shift;
    }
    fprintf(stderr, "cnnc: int8 %s: %s, input scale %.6g, weight scales %.6g to %.6g, output "
            "scale %.6g (range %.6g)\n", l->label, l->kind->name, s_in, smin, smax, s_out,
            s_out * 127);
}

static void emit_qarrays(Emitter *e, const char *L, const char *dims, int64_t count,
                         const int64_t *bq, const int64_t *mult, const int64_t *shift)
{
    char name[300];
    snprintf(name, sizeof name, "%s_bq", L);
    emit_int_array(e, "int32_t", name, dims, bq, count);
    snprintf(name, sizeof name, "%s_mult", L);
    emit_int_array(e, "int32_t", name, dims, mult, count);
    snprintf(name, sizeof name, "%s_shift", L);
    emit_int_array(e, "int8_t", name, dims, shift, count);
}

/* A depthwise Conv (one channel in and out per group) whose channels come
 * in sixteens: its AVX2 path takes 16 at a time. */
static bool depthwise16(const ConvStep *c)
{
    return c->groups > 1 && c->cig == 1 && c->cog == 1 && c->co % 16 == 0;
}

/* The vector widths of the depthwise int8 path: 16 or 32 channels a step,
 * the products in 16-bit lanes split into two vectors of 32-bit sums (lo,
 * hi), stored by q8_store2 16 channels at a time. */
typedef struct DwLanes {
    int step;
    const char *type, *load, *widen, *mullo, *add, *cvt, *lo, *hi;
} DwLanes;

static const DwLanes dw256 = {16, "__m256i", "Q8_LOAD", "q8_widen16", "_mm256_mullo_epi16",
                              "_mm256_add_epi32", "_mm256_cvtepi16_epi32",
                              "_mm256_castsi256_si128(p)", "_mm256_extracti128_si256(p, 1)"};
static const DwLanes dw512 = {32, "__m512i", "Q8_LOAD512", "q8_widen32", "_mm512_mullo_epi16",
                              "_mm512_add_epi32", "_mm512_cvtepi16_epi32",
                              "_mm512_castsi512_si256(p)", "_mm512_extracti64x4_epi64(p, 1)"};

/* A depthwise Conv's vector loop over the channels, k->step at a time: the
 * products in 16 bits (at most 127 * 127), added into two vectors of
 * 32-bit sums. */
static void emit_qdepthwise_avx(Emitter *e, const ConvStep *c, const char *L, const DwLanes *k)
{
    const char *low = c->relu ? "0" : "-127";
    emit(e, "for (int c = 0; c < %" PRId64 "; c += %d) {", c->co, k->step);
    emit(e, "%s lo = %s(%s_bq + c), hi = %s(%s_bq + c + %d);", k->type, k->load, L, k->load,
         L, k->step / 2);
    emit(e, "for (int kh = kh0; kh < kh1; kh++) {");
    emit(e, "for (int kw = kw0; kw < kw1; kw++) {");
    emit_window_at(e, "int8_t", "xp", "kh", "kw", " + c", c->sh, c->pt, c->w, c->sw, c->pl,
                   c->ci);
    emit(e, "const int8_t *wp = %s_wq + (kh * %" PRId64 " + kw) * %" PRId64 " + c;", L, c->kw,
         c->cop);
    emit(e, "const %s p = %s(%s(xp), %s(wp));", k->type, k->mullo, k->widen, k->widen);
    emit(e, "lo = %s(lo, %s(%s));", k->add, k->cvt, k->lo);
    emit(e, "hi = %s(hi, %s(%s));", k->add, k->cvt, k->hi);
    emit(e, "}");
    emit(e, "}");
    if (k->step == 16)
        emit(e, "q8_store2(yp + c, lo, hi, %s_mult + c, %s_shift + c, %s, 16);", L, L, low);
    else
        for (int h = 0; h < 2; h++)
            emit(e, "q8_store2(yp + c + %d, _mm512_castsi512_si256(%s), "
                    "_mm512_extracti64x4_epi64(%s, 1), %s_mult + c + %d, %s_shift + c + %d, "
                    "%s, 16);", h * 16, h ? "hi" : "lo", h ? "hi" : "lo", L, h * 16, L, h * 16,
                 low);
    emit(e, "}");
}

/* Conv(groups=G) in int8: the plain loops of the float file; a depthwise
 * one of 16k channels has an AVX2 path too. */
static void emit_qconv_grouped(Emitter *e, const Layer *l, const ConvStep *c, const int64_t *wq,
                               const int64_t *bq, const int64_t *mult, const int64_t *shift)
{
    const char *L = l->label;
    char name[300], dims[128];
    snprintf(name, sizeof name, "%s_wq", L);
    snprintf(dims, sizeof dims, "[%" PRId64 "][%" PRId64 "][%" PRId64 "][%" PRId64 "]", c->kh,
             c->kw, c->cig, c->cop);
    emit_int_array(e, "int8_t", name, dims, wq, c->kh * c->kw * c->cig * c->cop);
    snprintf(dims, sizeof dims, "[%" PRId64 "]", c->cop);
    emit_qarrays(e, L, dims, c->cop, bq, mult, shift);
    emit(e, "/* %s: %s in int8, %" PRId64 "x%" PRId64 "x%" PRId64 " -> %" PRId64 "x%" PRId64 "x%"
            PRId64 " in %" PRId64 " groups%s: int32 sums, requantised per output channel */", L,
         l->kind->name, c->h, c->w, c->ci, c->oh, c->ow, c->co, c->groups,
         c->relu ? ", then ReLU" : "");
    emit(e, "static void %s_forward(const int8_t *restrict x, int8_t *restrict y)", L);
    emit(e, "{");
    emit_for(e, "oy", c->oh);
    tap_range(e, "kh", "oy", c->sh, c->pt, c->h, c->kh, c->oh);
    emit_for(e, "ox", c->ow);
    tap_range(e, "kw", "ox", c->sw, c->pl, c->w, c->kw, c->ow);
    emit(e, "int8_t *yp = y + (oy * %" PRId64 " + ox) * %" PRId64 ";", c->ow, c->co);
    bool dw = depthwise16(c);
    if (dw) {
        /* AVX-512: 32 channels a step where they divide co; AVX2: 16 */
        if (c->co % 32 == 0) {
            emit(e, "#if INT8_AVX2 && defined(__AVX512BW__) && defined(__AVX512VL__)");
            emit_qdepthwise_avx(e, c, L, &dw512);
            emit(e, "#elif INT8_AVX2");
        } else {
            emit(e, "#if INT8_AVX2");
        }
        emit_qdepthwise_avx(e, c, L, &dw256);
        emit(e, "#else");
    }
    emit(e, "int32_t acc[%" PRId64 "];", c->cop);
    emit(e, "memcpy(acc, %s_bq, sizeof acc);", L);
    emit(e, "for (int kh = kh0; kh < kh1; kh++) {");
    emit(e, "for (int kw = kw0; kw < kw1; kw++) {");
    emit_window_at(e, "int8_t", "xp", "kh", "kw", "", c->sh, c->pt, c->w, c->sw, c->pl,
                   c->ci);
    emit(e, "const int8_t *wp = %s_wq + (kh * %" PRId64 " + kw) * %" PRId64 ";", L, c->kw,
         c->cig * c->cop);
    emit(e, "for (int j = 0; j < %" PRId64 "; j++, wp += %" PRId64 ") {", c->cig, c->cop);
    if (c->cig == 1 && c->cog == 1)
        emit(e, "for (int co = 0; co < %" PRId64 "; co++) acc[co] += xp[co] * wp[co];", c->co);
    else
        emit(e, "for (int co = 0; co < %" PRId64 "; co++) acc[co] += xp[co / %" PRId64 " * %"
                PRId64 " + j] * wp[co];", c->co, c->cog, c->cig);
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    emit(e, "for (int co = 0; co < %" PRId64 "; co++)", c->co);
    emit(e, "    yp[co] = clamp8(requantize(acc[co], %s_mult[co], %s_shift[co]), %s);", L, L,
         c->relu ? "0" : "-127");
    if (dw)
        emit(e, "#endif");
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
}

/* Inside chunk k: the loops over the kernel's rows and a row's groups of
 * four taps opened, xp at the group's input bytes, wp at its weights. */
static void emit_qtap_loops(Emitter *e, const ConvStep *c, const QLayout *q, const char *L)
{
    emit(e, "for (int kh = kh0; kh < kh1; kh++) {");
    emit(e, "const int8_t *xp = xr[kh];");
    emit(e, "const int8_t *wp = %s_wq + (k * %" PRId64 " + kh) * %" PRId64 ";", L, c->kh,
         q->g * q->cw * 4);
    emit(e, "for (int g = 0; g < %" PRId64 "; g++, xp += 4, wp += %" PRId64 ") {", q->g,
         q->cw * 4);
}

/* q8_store (or q8_store2 with two accumulators, "a, b") of the sums acc of
 * the channels from k * cw + at, to yp + where (at in the chunk; where
 * names it for the code). */
static void emit_q8_store(Emitter *e, const ConvStep *c, const char *L, const char *where,
                          const char *acc, bool two, int at, const char *low)
{
    const QLayout q = qlayout(c);
    emit(e, "q8_store%s(yp + %s, %s, %s_mult + k * %" PRId64 " + %d, %s_shift + k * %" PRId64
            " + %d, %s, %" PRId64 " - (k * %" PRId64 " + %d));", two ? "2" : "", where, acc, L,
         q.cw, at, L, q.cw, at, low, c->co, q.cw, at);
}

/* The fast path for a tile of np pixels of a row (ox ... ox + np - 1,
 * every window inside x): for each chunk, tv of its vectors at a time,
 * each weight vector loaded serves np pixels (one pixel at a time sweeps
 * all the layer's weights per pixel, from L2 on a late layer), each
 * accumulator gets 8 channels times 4 products a group of four taps. With
 * an input that may be negative, pmaddubsw (unsigned times signed bytes)
 * takes |x| and the weights with x's sign: |x| * (w * sign x) = x * w. */
static void emit_qconv_tile(Emitter *e, const ConvStep *c, const QLayout *q, const char *L,
                            bool unsigned_x, int np, int tv)
{
    int nv = (int)(q->cw / VEC);
    const char *low = c->relu ? "0" : "-127";
    emit(e, "for (int k = 0; k < %" PRId64 "; k++) {", q->chunks);
    for (int b = 0; b < nv; b += tv) {
        int n = nv - b < tv ? nv - b : tv;
        emit(e, "{");
        for (int p = 0; p < np; p++)
            for (int v = 0; v < n; v++)
                emit(e, "__m256i a%d_%d = Q8_LOAD(%s_bq + k * %" PRId64 " + %d);", p, v, L,
                     q->cw, (b + v) * VEC);
        emit(e, "for (int kh = kh0; kh < kh1; kh++) {");
        emit_window_at(e, "int8_t", "xp", "kh", "0", "", c->sh, c->pt, c->w, c->sw, c->pl,
                       c->ci);
        emit(e, "const int8_t *wp = %s_wq + (k * %" PRId64 " + kh) * %" PRId64 " + %d;", L,
             c->kh, q->g * q->cw * 4, b * 32);
        emit(e, "for (int g = 0; g < %" PRId64 "; g++, xp += 4, wp += %" PRId64 ") {", q->g,
             q->cw * 4);
        for (int v = 0; v < n; v++)
            emit(e, "const __m256i w%d = Q8_LOAD(wp + %d);", v, v * 32);
        for (int p = 0; p < np; p++) {
            if (unsigned_x) {
                emit(e, "const __m256i u%d = q8_broadcast4(xp + %" PRId64 ");", p,
                     p * c->sw * c->ci);
                for (int v = 0; v < n; v++)
                    emit(e, "a%d_%d = q8_dot(a%d_%d, u%d, w%d);", p, v, p, v, p, v);
            } else {
                emit(e, "const __m256i s%d = q8_broadcast4(xp + %" PRId64 "), u%d = "
                        "_mm256_abs_epi8(s%d);", p, p * c->sw * c->ci, p, p);
                for (int v = 0; v < n; v++)
                    emit(e, "a%d_%d = q8_dot(a%d_%d, u%d, _mm256_sign_epi8(w%d, s%d));", p, v,
                         p, v, p, v, p);
            }
        }
        emit(e, "}");
        emit(e, "}");
        for (int p = 0; p < np; p++) {
            char at[80], acc[64];
            for (int v = 0; v < n; v += 2) {
                snprintf(at, sizeof at, "%" PRId64 " + k * %" PRId64 " + %d", p * c->co, q->cw,
                         (b + v) * VEC);
                if (v + 1 < n)
                    snprintf(acc, sizeof acc, "a%d_%d, a%d_%d", p, v, p, v + 1);
                else
                    snprintf(acc, sizeof acc, "a%d_%d", p, v);
                emit_q8_store(e, c, L, at, acc, v + 1 < n, (b + v) * VEC, low);
            }
        }
        emit(e, "}");
    }
    emit(e, "}");
}

/* The portable path: the same sums over the same layout, in plain C. */
static void emit_qconv_portable(Emitter *e, const ConvStep *c, const QLayout *q, const char *L)
{
    emit(e, "for (int k = 0; k < %" PRId64 "; k++) {", q->chunks);
    emit(e, "int32_t acc[%" PRId64 "];", q->cw);
    emit(e, "memcpy(acc, %s_bq + k * %" PRId64 ", sizeof acc);", L, q->cw);
    emit_qtap_loops(e, c, q, L);
    emit(e, "const int32_t x0 = xp[0], x1 = xp[1], x2 = xp[2], x3 = xp[3];");
    emit(e, "for (int c = 0; c < %" PRId64 "; c++)", q->cw);
    emit(e, "    acc[c] += x0 * wp[4 * c] + x1 * wp[4 * c + 1] + x2 * wp[4 * c + 2] + "
            "x3 * wp[4 * c + 3];");
    emit(e, "}");
    emit(e, "}");
    emit(e, "for (int c = 0; c < %" PRId64 " && k * %" PRId64 " + c < %" PRId64 "; c++)", q->cw,
         q->cw, c->co);
    emit(e, "    yp[k * %" PRId64 " + c] = clamp8(requantize(acc[c], %s_mult[k * %" PRId64
            " + c], %s_shift[k * %" PRId64 " + c]), %s);", q->cw, L, q->cw, L, q->cw,
         c->relu ? "0" : "-127");
    emit(e, "}");
}

/* Pixels (np) and vectors (tv, of the chunk's nv) a tile, for a row of ow
 * pixels and at most accs accumulators (24 with AVX-512VL's 32 registers,
 * 12 with AVX2's 16): up to 4 vectors by as many pixels as fill accs, at
 * most 12; a row of fewer pixels (a Dense: 1) takes more vectors. (On the
 * Zen 5, np a divisor of the row, 28 as 4 tiles of 7 rather than 6 + 6 +
 * 6 + 6 + 4, was no faster on the models.) */
static void qtile_shape(int nv, int accs, int64_t ow, int *np, int *tv)
{
    enum { MOST_PIXELS = 12, MOST_VECTORS = 4 };
    int most = accs / (nv < MOST_VECTORS ? nv : MOST_VECTORS);
    *np = (int)(ow < most ? ow : most < MOST_PIXELS ? most : MOST_PIXELS);
    *tv = accs / *np < nv ? accs / *np : nv;
}

/* A row of output pixels in tiles (every window lies inside x: a padded
 * Conv reads its zero-bordered copy), the pixels left in one smaller tile. */
static void emit_qconv_row(Emitter *e, const ConvStep *c, const QLayout *q, const char *L,
                           bool unsigned_x, int accs)
{
    int tv, np;
    qtile_shape((int)(q->cw / VEC), accs, c->ow, &np, &tv);
    int64_t rest = c->ow % np;
    if (c->ow - rest > 0) {
        emit(e, "for (int ox = 0; ox < %" PRId64 "; ox += %d) {", c->ow - rest, np);
        emit(e, "int8_t *yp = y + (oy * %" PRId64 " + ox) * %" PRId64 ";", c->ow, c->co);
        emit_qconv_tile(e, c, q, L, unsigned_x, np, tv);
        emit(e, "}");
    }
    if (rest > 0) {
        emit(e, "{");
        emit(e, "const int ox = %" PRId64 ";", c->ow - rest);
        emit(e, "int8_t *yp = y + (oy * %" PRId64 " + ox) * %" PRId64 ";", c->ow, c->co);
        emit_qconv_tile(e, c, q, L, unsigned_x, (int)rest, tv);
        emit(e, "}");
    }
}

/* Conv (groups == 1) or Dense in int8: the weights in the layout of
 * qlayout, and a function whose two paths (AVX2, portable) sum the same
 * integers and so give the same bytes. A padded Conv reads the
 * zero-bordered copy of its input that L_pad makes, so that every window
 * lies inside what it reads; a window row's last group of four may read up
 * to 3 bytes past it (times zero weights), inside the buffer's slack. */
static void emit_qconv_rows(Emitter *e, const Layer *l, const ConvStep *step, bool unsigned_x,
                            const int64_t *wq, const int64_t *bq, const int64_t *mult,
                            const int64_t *shift)
{
    const char *L = l->label;
    const ConvStep padded = emit_pad_view(e, L, step, "int8_t");
    const ConvStep *c = &padded;
    QLayout q = qlayout(c);
    int64_t rp = q.g * 4, nw = q.chunks * c->kh * rp * q.cw;
    int64_t *w = xcalloc((size_t)nw, sizeof *w);
    for (int64_t k = 0; k < q.chunks; k++)
        for (int64_t kh = 0; kh < c->kh; kh++)
            for (int64_t r = 0; r < q.r; r++)
                for (int64_t o = 0; o < q.cw && k * q.cw + o < c->co; o++)
                    w[(((k * c->kh + kh) * q.g + r / 4) * q.cw + o) * 4 + r % 4] =
                        wq[(kh * q.r + r) * c->cop + k * q.cw + o];
    char name[300], dims[160];
    snprintf(name, sizeof name, "%s_wq", L);
    snprintf(dims, sizeof dims, "[%" PRId64 "][%" PRId64 "][%" PRId64 "][%" PRId64
             "][4]: [chunk][kh][(kw * %" PRId64 " + ci) / 4][co in the chunk][(kw * %" PRId64
             " + ci) %% 4]", q.chunks, c->kh, q.g, q.cw, c->ci, c->ci);
    emit_int_array(e, "int8_t Q8_ALIGNED", name, dims, w, nw);
    free(w);
    snprintf(dims, sizeof dims, "[%" PRId64 "]", q.cpad);
    int64_t *pad = xcalloc((size_t)q.cpad * 3, sizeof *pad);
    memcpy(pad, bq, (size_t)c->co * sizeof *pad);
    memcpy(pad + q.cpad, mult, (size_t)c->co * sizeof *pad);
    memcpy(pad + 2 * q.cpad, shift, (size_t)c->co * sizeof *pad);
    for (int64_t o = c->co; o < q.cpad; o++)
        pad[2 * q.cpad + o] = 31;
    emit_qarrays(e, L, dims, q.cpad, pad, pad + q.cpad, pad + 2 * q.cpad);
    free(pad);
    if (is_kind(l, &layer_dense))
        emit(e, "/* %s: Dense %" PRId64 " -> %" PRId64 "%s in int8, as a 1x1 convolution:",
             L, c->ci, c->co, c->relu ? ", then ReLU" : "");
    else
        emit(e, "/* %s: Conv %" PRId64 "x%" PRId64 ", stride %" PRId64 "x%" PRId64
                ", padding %" PRId64 " top %" PRId64 " left, in int8: %" PRId64 "x%" PRId64
                "x%" PRId64 " -> %" PRId64 "x%" PRId64 "x%" PRId64 "%s:", L, c->kh, c->kw,
             c->sh, c->sw, step->pt, step->pl, step->h, step->w, c->ci, c->oh, c->ow, c->co,
             c->relu ? ", then ReLU" : "");
    emit(e, " *   acc[co] = bq[co] + sum over kh and r < %" PRId64 " of w[kh][r][co] * xr[kh][r]",
         rp);
    emit(e, " *   y[oy][ox][co] = requantize(acc[co]) clamped to [%s, 127]",
         c->relu ? "0" : "-127");
    emit(e, " * where xr[kh] is %s row oy*%" PRId64 " + kh from column ox*%" PRId64 ": its %"
            PRId64 "x%" PRId64 " taps, contiguous in x, and the sum in int32 */",
         step->padded ? "the zero-bordered copy's" : "input", c->sh, c->sw, c->kw, c->ci);
    emit(e, "static void %s_forward(const int8_t *restrict x, int8_t *restrict y)", L);
    emit(e, "{");
    emit_for(e, "oy", c->oh);
    emit(e, "const int kh0 = 0, kh1 = %" PRId64 ";", c->kh);
    emit(e, "#if INT8_AVX2 && defined(__AVX512VL__)");
    emit_qconv_row(e, c, &q, L, unsigned_x, 24);
    emit(e, "#elif INT8_AVX2");
    emit_qconv_row(e, c, &q, L, unsigned_x, 12);
    emit(e, "#else");
    emit_for(e, "ox", c->ow);
    emit(e, "int8_t *yp = y + (oy * %" PRId64 " + ox) * %" PRId64 ";", c->ow, c->co);
    emit(e, "const int8_t *xr[%" PRId64 "];", c->kh);
    emit(e, "for (int kh = 0; kh < %" PRId64 "; kh++)", c->kh);
    emit(e, "    xr[kh] = x + ((oy * %" PRId64 " + kh) * %" PRId64 " + ox * %" PRId64 ") * %"
            PRId64 ";", c->sh, c->w, c->sw, c->ci);
    emit_qconv_portable(e, c, &q, L);
    emit(e, "}");
    emit(e, "#endif");
    emit(e, "}");
    emit(e, "}");
}

/* The Conv's int8 weights, int32 bias and per-channel multipliers, and
 * its function. */
static void emit_qconv(Emitter *e, const Layer *l, const ConvStep *c, double s_in, double s_out,
                       bool unsigned_x)
{
    int64_t nw = c->kh * c->kw * c->cig * c->cop;
    int64_t *wq = xcalloc((size_t)nw, sizeof *wq), *bq = xcalloc((size_t)c->cop, sizeof *bq);
    int64_t *mult = xcalloc((size_t)c->cop, sizeof *mult);
    int64_t *shift = xcalloc((size_t)c->cop, sizeof *shift);
    quantize_conv(l, c, s_in, s_out, wq, bq, mult, shift);
    if (c->groups > 1)
        emit_qconv_grouped(e, l, c, wq, bq, mult, shift);
    else
        emit_qconv_rows(e, l, c, unsigned_x, wq, bq, mult, shift);
    free(wq);
    free(bq);
    free(mult);
    free(shift);
}

static void emit_qpool(Emitter *e, const Layer *l, Op op)
{
    int64_t h = l->in.h, w = l->in.w, c = l->in.c;
    if (op == OP_GLOBALAVG) {
        int64_t hw = h * w;
        emit(e, "/* %s: GlobalAvgPool in int8: each channel's mean, rounded */", l->label);
        emit(e, "static void %s_forward(const int8_t *restrict x, int8_t *restrict y)",
             l->label);
        emit(e, "{");
        emit(e, "int32_t sum[%" PRId64 "] = {0};", c);
        emit(e, "for (int p = 0; p < %" PRId64 "; p++)", hw);
        emit(e, "    for (int c = 0; c < %" PRId64 "; c++) sum[c] += x[p * %" PRId64 " + c];", c,
             c);
        emit(e, "for (int c = 0; c < %" PRId64 "; c++) y[c] = (int8_t)divide_round(sum[c], %"
                PRId64 ");", c, hw);
        emit(e, "}");
        return;
    }
    bool max = op == OP_MAXPOOL;
    int64_t kh = layer_arg(l, "size")->u.size.h, kw = layer_arg(l, "size")->u.size.w;
    int64_t sh = layer_arg(l, "stride")->u.size.h, sw = layer_arg(l, "stride")->u.size.w;
    int64_t pt = layer_arg(l, "padding")->u.pad.top, pl = layer_arg(l, "padding")->u.pad.left;
    emit(e, "/* %s: %s in int8 (the input's scale)%s */", l->label, l->kind->name,
         max ? ": every window has a tap inside the input" : "");
    emit(e, "static void %s_forward(const int8_t *restrict x, int8_t *restrict y)", l->label);
    emit(e, "{");
    emit_for(e, "oy", l->out.h);
    tap_range(e, "kh", "oy", sh, pt, h, kh, l->out.h);
    emit_for(e, "ox", l->out.w);
    tap_range(e, "kw", "ox", sw, pl, w, kw, l->out.w);
    emit(e, "int8_t *yp = y + (oy * %" PRId64 " + ox) * %" PRId64 ";", l->out.w, c);
    if (max) {
        emit_window_at(e, "int8_t", "first", "kh0", "kw0", "", sh, pt, w, sw, pl, c);
        emit(e, "for (int c = 0; c < %" PRId64 "; c++) yp[c] = first[c];", c);
    } else {
        emit(e, "int32_t acc[%" PRId64 "] = {0};", c);
    }
    emit(e, "for (int kh = kh0; kh < kh1; kh++) {");
    emit(e, "for (int kw = kw0; kw < kw1; kw++) {");
    emit_window_at(e, "int8_t", "xp", "kh", "kw", "", sh, pt, w, sw, pl, c);
    if (max)
        emit(e, "for (int c = 0; c < %" PRId64 "; c++) yp[c] = xp[c] > yp[c] ? xp[c] : yp[c];",
             c);
    else
        emit(e, "for (int c = 0; c < %" PRId64 "; c++) acc[c] += xp[c];", c);
    emit(e, "}");
    emit(e, "}");
    if (!max)
        emit(e, "for (int c = 0; c < %" PRId64 "; c++) yp[c] = (int8_t)divide_round(acc[c], "
                "(kh1 - kh0) * (kw1 - kw0));", c);
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
}

/* An Add's ratios q_k = round(s_k / s_out * 2^16), and whether its sums
 * fit int32 (they do unless an input's scale is above 128 times the
 * output's). */
static bool add_ratios(const Layer *l, const Plan *p, const double *scale, int64_t *q)
{
    int t = layer_output(l);
    int64_t bound = 32768;
    for (int k = 0; k < l->ninputs; k++) {
        q[k] = llround(scale[p->root[l->inputs[k]]] / scale[t] * 65536.0);
        bound += 128 * q[k];
    }
    return bound <= INT32_MAX;
}

/* Add: sum of the inputs each times q_k, * 2^-16 rounded. */
static void emit_qadd(Emitter *e, const Layer *l, const Plan *p, const double *scale)
{
    int t = layer_output(l);
    int64_t q[CNNC_MAX_INPUTS];
    bool narrow = add_ratios(l, p, scale, q);
    emit(e, "/* %s: Add in int8: each input brought to the output's scale %.6g */", l->label,
         scale[t]);
    char args[CNNC_MAX_INPUTS * 40] = "", sum[CNNC_MAX_INPUTS * 48] = "";
    size_t a = 0, b = 0;
    for (int k = 0; k < l->ninputs; k++) {
        a += (size_t)snprintf(args + a, sizeof args - a, "const int8_t *restrict x%d, ", k);
        b += (size_t)snprintf(sum + b, sizeof sum - b, "%s(%s)x%d[j] * %" PRId64,
                              k ? " + " : "", narrow ? "int32_t" : "int64_t", k, q[k]);
    }
    emit(e, "static void %s_forward(%sint8_t *restrict y)", l->label, args);
    emit(e, "{");
    emit(e, "for (int j = 0; j < %" PRId64 "; j++) {", shape_elems(l->out));
    if (narrow) {
        /* shift_round(v, 16) and clamp8 in int32: the sum cannot overflow */
        emit(e, "const int32_t v = %s;", sum);
        emit(e, "const int32_t r = v >= 0 ? (v + 32768) >> 16 : -((-v + 32768) >> 16);");
        emit(e, "y[j] = (int8_t)(r < -127 ? -127 : r > 127 ? 127 : r);");
    } else {
        emit(e, "y[j] = clamp8(shift_round(%s, 16), -127);", sum);
    }
    emit(e, "}");
    emit(e, "}");
}

static void emit_qlayer(Emitter *e, const Network *n, const Plan *p, int i, const double *scale)
{
    const Layer *l = &n->layers[i];
    const Step *s = &p->at[i];
    switch (s->op) {
    case OP_CONV:
        emit_qconv(e, l, &s->conv, scale[p->root[l->inputs[0]]], scale[i + 1],
                   nonnegative(n, p, l->inputs[0]));
        break;
    case OP_MAXPOOL: case OP_AVGPOOL: case OP_GLOBALAVG:
        emit_qpool(e, l, s->op);
        break;
    case OP_ADD:
        emit_qadd(e, l, p, scale);
        fprintf(stderr, "cnnc: int8 %s: Add, output scale %.6g (range %.6g)\n", l->label,
                scale[i + 1], scale[i + 1] * 127);
        break;
    case OP_ACT:
        emit(e, "/* %s: ReLU in int8 */", l->label);
        emit(e, "static void %s_forward(const int8_t *restrict x, int8_t *restrict y)",
             l->label);
        emit(e, "{");
        emit(e, "for (int j = 0; j < %" PRId64 "; j++) y[j] = x[j] < 0 ? 0 : x[j];",
             shape_elems(l->out));
        emit(e, "}");
        break;
    case OP_FLATTEN: {
        int64_t hw = l->in.h * l->in.w, c = l->in.c;
        emit(e, "/* %s: Flatten in channel-major order */", l->label);
        emit(e, "static void %s_forward(const int8_t *restrict x, int8_t *restrict y)",
             l->label);
        emit(e, "{");
        emit(e, "for (int p = 0; p < %" PRId64 "; p++)", hw);
        emit(e, "    for (int c = 0; c < %" PRId64 "; c++) y[c * %" PRId64 " + p] = x[p * %"
                PRId64 " + c];", c, hw, c);
        emit(e, "}");
        break;
    }
    default:
        return;
    }
    emit_blank(e);
}

/* "#if COND" before a helper when it is used on one path only ("" when on
 * both), and its "#endif". */
static void guard_begin(Emitter *e, const char *cond)
{
    if (cond[0])
        emit(e, "#if %s", cond);
}

static void guard_end(Emitter *e, const char *cond)
{
    if (cond[0])
        emit(e, "#endif");
}

/* The AVX2 path of the Conv and Dense layers (groups == 1: rows) and of
 * the depthwise ones (dw): its helpers. */
static void emit_avx2_helpers(Emitter *e, const char *P, bool rows, bool dw)
{
    emit(e, "/* With AVX2 (e.g. -mavx2 or -march=native on x86-64) the convolutions and");
    emit(e, " * dense layers use its 8-bit multiply-adds; define %s_PORTABLE for the plain", P);
    emit(e, " * loops. Both sum the same integers: the outputs are the same bytes. */");
    emit(e, "#if defined(__AVX2__) && !defined(%s_PORTABLE)", P);
    emit(e, "#define INT8_AVX2 1");
    emit(e, "#include <immintrin.h>");
    emit(e, "#define Q8_LOAD(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))");
    if (rows) {
        emit(e, "/* Four bytes of x in every 32-bit lane. */");
        emit(e, "static __m256i q8_broadcast4(const int8_t *p)");
        emit(e, "{");
        emit(e, "int32_t v;");
        emit(e, "memcpy(&v, p, 4);");
        emit(e, "return _mm256_set1_epi32(v);");
        emit(e, "}");
        emit(e, "/* acc + the sums of 4 products of unsigned bytes u and signed bytes s per");
        emit(e, " * 32-bit lane: pmaddubsw adds pairs into 16 bits (at most 2 * 128 * 127 <");
        emit(e, " * 2^15, never saturated), pmaddwd by ones adds those pairs into 32. */");
        emit(e, "static __m256i q8_dot(__m256i acc, __m256i u, __m256i s)");
        emit(e, "{");
        emit(e, "#if defined(__AVX512VNNI__) && defined(__AVX512VL__)");
        emit(e, "/* AVX-512 VNNI: the same sums in one instruction (vpdpbusd) */");
        emit(e, "return _mm256_dpbusd_epi32(acc, u, s);");
        emit(e, "#else");
        emit(e, "const __m256i pairs = _mm256_maddubs_epi16(u, s);");
        emit(e, "return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));");
        emit(e, "#endif");
        emit(e, "}");
    }
    if (dw) {
        emit(e, "/* Sixteen bytes as 16-bit lanes. */");
        emit(e, "#if defined(__GNUC__)");
        emit(e, "__attribute__((unused))");
        emit(e, "#endif");
        emit(e, "static __m256i q8_widen16(const int8_t *p)");
        emit(e, "{");
        emit(e, "return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)p));");
        emit(e, "}");
        emit(e, "#if defined(__AVX512BW__)");
        emit(e, "#define Q8_LOAD512(p) _mm512_loadu_si512((const void *)(p))");
        emit(e, "/* Thirty-two bytes as 16-bit lanes. */");
        emit(e, "#if defined(__GNUC__)");
        emit(e, "__attribute__((unused))");
        emit(e, "#endif");
        emit(e, "static __m512i q8_widen32(const int8_t *p)");
        emit(e, "{");
        emit(e, "return _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(const void *)p));");
        emit(e, "}");
        emit(e, "#endif");
    }
    emit(e, "/* requantize() and clamp8() of 8 sums, stored to y[0 .. count) (count may be");
    emit(e, " * 8 or more, or 0 or less). The same integers: |acc| * mult (below 2^62) plus");
    emit(e, " * the half, shifted, in 64-bit lanes; its low 32 bits with acc's sign.");
    emit(e, " * Not inlined: GCC 12 inlining it into the 24 stores of a tile made the");
    emit(e, " * convolutions 1.5 times slower. */");
    emit(e, "#if defined(__GNUC__)");
    emit(e, "__attribute__((noinline, unused))");
    emit(e, "#endif");
    emit(e, "static void q8_store(int8_t *y, __m256i acc, const int32_t *mult, const int8_t *shift,");
    emit(e, "                     int low, int count)");
    emit(e, "{");
    emit(e, "const __m256i one = _mm256_set1_epi64x(1), m = Q8_LOAD(mult);");
    emit(e, "const __m256i n = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)shift));");
    emit(e, "const __m256i n_even = _mm256_and_si256(n, _mm256_set1_epi64x(0xffffffff));");
    emit(e, "const __m256i n_odd = _mm256_srli_epi64(n, 32);");
    emit(e, "const __m256i mag = _mm256_abs_epi32(acc);");
    emit(e, "__m256i even = _mm256_mul_epu32(mag, m);");
    emit(e, "__m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(mag, 32), _mm256_srli_epi64(m, 32));");
    emit(e, "even = _mm256_add_epi64(even, _mm256_sllv_epi64(one, _mm256_sub_epi64(n_even, one)));");
    emit(e, "odd = _mm256_add_epi64(odd, _mm256_sllv_epi64(one, _mm256_sub_epi64(n_odd, one)));");
    emit(e, "even = _mm256_srlv_epi64(even, n_even);");
    emit(e, "odd = _mm256_srlv_epi64(odd, n_odd);");
    emit(e, "__m256i r = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xaa);");
    emit(e, "r = _mm256_max_epi32(_mm256_sign_epi32(r, acc), _mm256_set1_epi32(low));");
    emit(e, "#if defined(__AVX512VL__)");
    emit(e, "/* to 8 bits saturating (the clamp to 127), the first count stored */");
    emit(e, "const __mmask8 keep = count >= 8 ? 0xff : count > 0 ? (__mmask8)((1u << count) - 1) : 0;");
    emit(e, "_mm256_mask_cvtsepi32_storeu_epi8(y, keep, r);");
    emit(e, "#else");
    emit(e, "/* to 16 then 8 bits, saturating: the clamp to 127 */");
    emit(e, "__m128i b = _mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));");
    emit(e, "b = _mm_packs_epi16(b, b);");
    emit(e, "if (count >= 8) {");
    emit(e, "_mm_storel_epi64((__m128i *)(void *)y, b);");
    emit(e, "} else if (count > 0) {");
    emit(e, "int8_t t[16];");
    emit(e, "_mm_storeu_si128((__m128i *)(void *)t, b);");
    emit(e, "memcpy(y, t, (size_t)count);");
    emit(e, "}");
    emit(e, "#endif");
    emit(e, "}");
    emit(e, "/* q8_store of two vectors of sums, lo then hi (16 channels): with AVX-512");
    emit(e, " * in one pass of 512-bit lanes, the same integers for half the instructions");
    emit(e, " * (requantisation is most of a thin layer's time: a depthwise 3x3 does 9");
    emit(e, " * multiply-adds an output). */");
    emit(e, "#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)");
    emit(e, "#if defined(__GNUC__)");
    emit(e, "__attribute__((noinline, unused))");
    emit(e, "#endif");
    emit(e, "static void q8_store2(int8_t *y, __m256i lo, __m256i hi, const int32_t *mult,");
    emit(e, "                      const int8_t *shift, int low, int count)");
    emit(e, "{");
    emit(e, "const __m512i one = _mm512_set1_epi64(1), zero = _mm512_setzero_si512();");
    emit(e, "const __m512i acc = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);");
    emit(e, "const __m512i m = _mm512_loadu_si512((const void *)mult);");
    emit(e, "const __m512i n = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)shift));");
    emit(e, "const __m512i n_even = _mm512_and_si512(n, _mm512_set1_epi64(0xffffffff));");
    emit(e, "const __m512i n_odd = _mm512_srli_epi64(n, 32);");
    emit(e, "const __m512i mag = _mm512_abs_epi32(acc);");
    emit(e, "__m512i even = _mm512_mul_epu32(mag, m);");
    emit(e, "__m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(mag, 32), _mm512_srli_epi64(m, 32));");
    emit(e, "even = _mm512_add_epi64(even, _mm512_sllv_epi64(one, _mm512_sub_epi64(n_even, one)));");
    emit(e, "odd = _mm512_add_epi64(odd, _mm512_sllv_epi64(one, _mm512_sub_epi64(n_odd, one)));");
    emit(e, "even = _mm512_srlv_epi64(even, n_even);");
    emit(e, "odd = _mm512_srlv_epi64(odd, n_odd);");
    emit(e, "__m512i r = _mm512_mask_blend_epi32(0xaaaa, even, _mm512_slli_epi64(odd, 32));");
    emit(e, "r = _mm512_mask_sub_epi32(r, _mm512_cmplt_epi32_mask(acc, zero), zero, r);");
    emit(e, "r = _mm512_max_epi32(r, _mm512_set1_epi32(low));");
    emit(e, "const __mmask16 keep = count >= 16 ? 0xffff : count > 0 ? (__mmask16)((1u << count) - 1) : 0;");
    emit(e, "_mm512_mask_cvtsepi32_storeu_epi8(y, keep, r);");
    emit(e, "}");
    emit(e, "#else");
    emit(e, "#if defined(__GNUC__)");
    emit(e, "__attribute__((unused))");
    emit(e, "#endif");
    emit(e, "static void q8_store2(int8_t *y, __m256i lo, __m256i hi, const int32_t *mult,");
    emit(e, "                      const int8_t *shift, int low, int count)");
    emit(e, "{");
    emit(e, "q8_store(y, lo, mult, shift, low, count);");
    emit(e, "q8_store(y + 8, hi, mult + 8, shift + 8, low, count - 8);");
    emit(e, "}");
    emit(e, "#endif");
    emit(e, "#else");
    emit(e, "#define INT8_AVX2 0");
    emit(e, "#endif");
    emit(e, "#if defined(__GNUC__)");
    emit(e, "#define Q8_ALIGNED __attribute__((aligned(64)))");
    emit(e, "#else");
    emit(e, "#define Q8_ALIGNED");
    emit(e, "#endif");
    emit_blank(e);
}

static void emit_qprelude(Emitter *e, const Network *n, const Plan *p, const double *scale,
                          const InferOptions *o)
{
    const char *P = o->prefix;
    emit(e, "/* %s int8 inference: generated by cnnc from %s with the weights of %s,", P,
         o->source, o->weights_path);
    emit(e, " * quantised with the activation ranges of %s.", o->calibrate);
    emit(e, " *");
    emit(e, " * The interface of the float file: %s_predict(input, output, work), input", P);
    emit(e, " * %s_INPUT_SIZE floats (HWC, pixels / 255), output %s_OUTPUT_SIZE floats,", P, P);
    emit(e, " * work %s_WORK_BYTES bytes or NULL. Between the layers every tensor is", P);
    emit(e, " * int8 with a scale of its own; convolutions and dense layers sum in int32");
    emit(e, " * and requantise with fixed-point multipliers, without floating point. */");
    emit(e, "#include <stddef.h>");
    emit(e, "#include <stdint.h>");
    emit(e, "#include <string.h>");
    emit(e, "#include <math.h>");
    emit_blank(e);
    emit(e, "#define %s_INPUT_SIZE %" PRId64, P, shape_elems(n->input));
    emit(e, "#define %s_OUTPUT_SIZE %" PRId64, P, shape_elems(n->tensors[n->nlayers].shape));
    emit(e, "#define %s_WORK_BYTES %" PRId64, P,
         round_up8(p->arena > 0 ? p->arena : 1) + round_up8(shape_elems(n->input) + Q8_SLACK));
    emit_blank(e);
    emit(e, "int %s_predict(const float *input, float *output, void *work);", P);
    emit_blank(e);
    /* Which helpers the layers call, and on which path: the plain Conv and
     * Dense call requantize() on the portable one only. */
    bool rows = false, dw = false, grouped = false, wide_add = false, avg = false;
    for (int i = 0; i < n->nlayers; i++) {
        const Step *s = &p->at[i];
        int64_t q[CNNC_MAX_INPUTS];
        rows |= s->op == OP_CONV && s->conv.groups == 1;
        dw |= s->op == OP_CONV && depthwise16(&s->conv);
        grouped |= s->op == OP_CONV && s->conv.groups > 1 && !depthwise16(&s->conv);
        wide_add |= s->op == OP_ADD && !add_ratios(&n->layers[i], p, scale, q);
        avg |= s->op == OP_AVGPOOL || s->op == OP_GLOBALAVG;
    }
    if (rows || dw)
        emit_avx2_helpers(e, P, rows, dw);
    const char *requant = grouped ? "" : rows || dw ? "!INT8_AVX2" : NULL;
    const char *rounding = grouped || wide_add ? "" : requant;
    if (rounding) {
        guard_begin(e, rounding);
        emit(e, "/* v * 2^-n rounded to nearest, halves away from zero (n >= 1). */");
        emit(e, "static int64_t shift_round(int64_t v, int n)");
        emit(e, "{");
        emit(e, "const int64_t half = (int64_t)1 << (n - 1);");
        emit(e, "return v >= 0 ? (v + half) >> n : -((-v + half) >> n);");
        emit(e, "}");
        emit(e, "static int8_t clamp8(int64_t v, int low)");
        emit(e, "{");
        emit(e, "return (int8_t)(v < low ? low : v > 127 ? 127 : v);");
        emit(e, "}");
        guard_end(e, rounding);
    }
    if (requant) {
        guard_begin(e, requant);
        emit(e, "/* acc * mult * 2^-shift: the fixed-point multiplier of a scale ratio. */");
        emit(e, "static int32_t requantize(int32_t acc, int32_t mult, int shift)");
        emit(e, "{");
        emit(e, "return (int32_t)shift_round((int64_t)acc * mult, shift);");
        emit(e, "}");
        guard_end(e, requant);
    }
    if (avg) {
        emit(e, "/* v / d rounded to nearest, halves away from zero. */");
        emit(e, "static int32_t divide_round(int32_t v, int32_t d)");
        emit(e, "{");
        emit(e, "return v >= 0 ? (v + d / 2) / d : -((-v + d / 2) / d);");
        emit(e, "}");
    }
    emit_blank(e);
}

/* "a + OFF" (the arena) or "q" (the quantised input) for tensor t. */
static const char *qtensor(const Network *n, const Plan *p, int t, char *buf, size_t size)
{
    int r = p->root[t];
    if (r == INPUT_TENSOR)
        return "q";
    snprintf(buf, size, "a + %" PRId64, p->at[n->tensors[r].producer].off);
    return buf;
}

static void emit_qpredict(Emitter *e, const Network *n, const Plan *p, const double *scale,
                          const InferOptions *o)
{
    const char *P = o->prefix;
    int64_t arena = round_up8(p->arena > 0 ? p->arena : 1);
    bool softmax = p->at[n->nlayers - 1].op == OP_SOFTMAX;
    int last = softmax ? n->layers[n->nlayers - 1].inputs[0] : n->nlayers;
    emit(e, "static int8_t %s_arena[%s_WORK_BYTES];", P, P);
    emit_blank(e);
    emit(e, "int %s_predict(const float *input, float *output, void *work)", P);
    emit(e, "{");
    emit(e, "int8_t *a = work ? (int8_t *)work : %s_arena;", P);
    emit(e, "int8_t *q = a + %" PRId64 "; /* the input, quantised */", arena);
    if (n->norm_channels) {
        int np = n->norm_channels;
        char mean[CNNC_MAX_LIST * 28] = "", mul[CNNC_MAX_LIST * 28] = "";
        size_t um = 0, uk = 0;
        for (int c = 0; c < np; c++) {
            um += (size_t)snprintf(mean + um, sizeof mean - um, "%s%.9gf", c ? ", " : "",
                                   (double)(float)n->input_mean[c]);
            uk += (size_t)snprintf(mul + uk, sizeof mul - uk, "%s%.9gf", c ? ", " : "",
                                   (double)(float)(1 / (n->input_std[c] * scale[0])));
        }
        emit(e, "/* Input(mean=, std=) as the input is quantised: (x - mean[c]) / std[c] / %.6g,",
             scale[0]);
        emit(e, " * the division and the scale in one multiplier per channel */");
        emit(e, "static const float mean[%d] = {%s};", np, mean);
        emit(e, "static const float mul[%d] = {%s};", np, mul);
        emit(e, "for (int j = 0; j < %s_INPUT_SIZE; j += %d)", P, np);
        emit(e, "    for (int c = 0; c < %d; c++) {", np);
        emit(e, "const float v = (input[j + c] - mean[c]) * mul[c];");
        emit(e, "const int32_t r = v >= 0 ? (int32_t)(v + 0.5f) : -(int32_t)(-v + 0.5f);");
        emit(e, "q[j + c] = (int8_t)(r < -127 ? -127 : r > 127 ? 127 : r);");
        emit(e, "}");
    } else {
        emit(e, "for (int j = 0; j < %s_INPUT_SIZE; j++) {", P);
        emit(e, "const float v = input[j] * (float)%.17g;", 1 / scale[0]);
        emit(e, "const int32_t r = v >= 0 ? (int32_t)(v + 0.5f) : -(int32_t)(-v + 0.5f);");
        emit(e, "q[j] = (int8_t)(r < -127 ? -127 : r > 127 ? 127 : r);");
        emit(e, "}");
    }
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        if (p->at[i].op == OP_ALIAS || p->at[i].op == OP_SOFTMAX)
            continue;
        char args[CNNC_MAX_INPUTS * 48] = "", buf[48];
        size_t used = 0;
        for (int k = 0; k < l->ninputs; k++)
            used += (size_t)snprintf(args + used, sizeof args - used, "%s, ",
                                     qtensor(n, p, l->inputs[k], buf, sizeof buf));
        if (p->at[i].op == OP_CONV && p->at[i].conv.padded) {
            emit(e, "%s_pad(%sa + %" PRId64 ");", l->label, args, p->at[i].conv.pad_off);
            snprintf(args, sizeof args, "a + %" PRId64 ", ", p->at[i].conv.pad_off);
        }
        emit(e, "%s_forward(%sa + %" PRId64 ");", l->label, args, p->at[i].off);
    }
    char buf[48];
    emit(e, "const int8_t *last = %s;", qtensor(n, p, last, buf, sizeof buf));
    emit(e, "for (int j = 0; j < %s_OUTPUT_SIZE; j++) output[j] = last[j] * (float)%.17g;", P,
         scale[p->root[last]]);
    if (softmax) {
        emit(e, "/* %s: Softmax in float */", n->layers[n->nlayers - 1].label);
        emit(e, "float max = output[0], sum = 0;");
        emit(e, "for (int j = 1; j < %s_OUTPUT_SIZE; j++) max = output[j] > max ? output[j] : max;",
             P);
        emit(e, "for (int j = 0; j < %s_OUTPUT_SIZE; j++) sum += output[j] = expf(output[j] - max);",
             P);
        emit(e, "for (int j = 0; j < %s_OUTPUT_SIZE; j++) output[j] /= sum;", P);
    }
    emit(e, "int best = 0;");
    emit(e, "for (int j = 1; j < %s_OUTPUT_SIZE; j++)", P);
    emit(e, "    if (output[j] > output[best]) best = j;");
    emit(e, "return best;");
    emit(e, "}");
}

struct Quantized {
    const Network *n;
    Plan plan;
    double *scale;     /* [nlayers + 1] of the root tensors */
    int64_t samples;
};

Quantized *quant_prepare(const Network *n, const Weights *w, const char *calibrate)
{
    Quantized *q = xcalloc(1, sizeof *q);
    q->n = n;
    q->plan = plan_steps(n, w, &(Placing){.slack = Q8_SLACK});
    if (!supported(n, &q->plan)) {
        quant_free(q);
        return NULL;
    }
    double *range = xcalloc((size_t)n->nlayers + 1, sizeof *range);
    if (!calibrate_ranges(n, &q->plan, calibrate, range, &q->samples)) {
        free(range);
        quant_free(q);
        return NULL;
    }
    q->scale = xcalloc((size_t)n->nlayers + 1, sizeof *q->scale);
    tensor_scales(n, &q->plan, range, q->scale);
    fprintf(stderr, "cnnc: int8 calibration on %" PRId64 " samples of %s: scale = max |x| / 127 "
            "per tensor; input range %.6g, scale %.6g\n", q->samples, calibrate, range[0],
            q->scale[0]);
    free(range);
    return q;
}

void quant_free(Quantized *q)
{
    if (!q)
        return;
    plan_release(q->n, &q->plan);
    free(q->scale);
    free(q);
}

bool emit_quantized(FILE *out, const Quantized *q, const InferOptions *o)
{
    const Network *n = q->n;
    Emitter e = {.out = out, .net = n, .real_size = 4};
    emit_qprelude(&e, n, &q->plan, q->scale, o);
    for (int i = 0; i < n->nlayers; i++)
        emit_qlayer(&e, n, &q->plan, i, q->scale);
    emit_qpredict(&e, n, &q->plan, q->scale, o);
    return !ferror(out);
}
