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
 *     ratio, in int64.
 *   - The input is quantised as NAME_predict starts; the last tensor is
 *     turned back into floats, or, when the network ends in Softmax, its
 *     input is and the Softmax runs in float.
 * Activation scales: s = max |x| / 127 over the calibration samples, for
 * the tensors that Conv, Dense and Add produce (computed by running the
 * float network, folded as it is emitted, in double over every sample).
 * The other kinds (LeakyReLU, Sigmoid, Tanh, SiLU, GELU, Concat, a
 * BatchNorm that cannot fold) are refused for now. */
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
                     .input_size = shape_elems(n->input), .outputs = 1};
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

/* The Conv's int8 weights, int32 bias and per-channel multipliers. */
static void emit_qconv(Emitter *e, const Layer *l, const ConvStep *c, double s_in, double s_out)
{
    const char *L = l->label;
    int64_t rows = c->kh * c->kw * c->cig, nw = rows * c->cop;
    int64_t *wq = xcalloc((size_t)nw, sizeof *wq), *bq = xcalloc((size_t)c->cop, sizeof *bq);
    int64_t *mult = xcalloc((size_t)c->cop, sizeof *mult), *shift = xcalloc((size_t)c->cop, sizeof *shift);
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
            "scale %.6g (range %.6g)\n", L, l->kind->name, s_in, smin, smax, s_out, s_out * 127);
    char name[300], dims[128];
    snprintf(name, sizeof name, "%s_wq", L);
    snprintf(dims, sizeof dims, "[%" PRId64 "][%" PRId64 "][%" PRId64 "][%" PRId64 "]", c->kh,
             c->kw, c->cig, c->cop);
    emit_int_array(e, "int8_t", name, dims, wq, nw);
    snprintf(dims, sizeof dims, "[%" PRId64 "]", c->cop);
    snprintf(name, sizeof name, "%s_bq", L);
    emit_int_array(e, "int32_t", name, dims, bq, c->cop);
    snprintf(name, sizeof name, "%s_mult", L);
    emit_int_array(e, "int32_t", name, dims, mult, c->cop);
    snprintf(name, sizeof name, "%s_shift", L);
    emit_int_array(e, "int8_t", name, dims, shift, c->cop);
    free(wq);
    free(bq);
    free(mult);
    free(shift);
    emit(e, "/* %s: %s in int8, %" PRId64 "x%" PRId64 "x%" PRId64 " -> %" PRId64 "x%" PRId64 "x%"
            PRId64 "%s: int32 sums, requantised per output channel */", L, l->kind->name, c->h,
         c->w, c->ci, c->oh, c->ow, c->co, c->relu ? ", then ReLU" : "");
    emit(e, "static void %s_forward(const int8_t *restrict x, int8_t *restrict y)", L);
    emit(e, "{");
    emit_for(e, "oy", c->oh);
    tap_range(e, "kh", "oy", c->sh, c->pt, c->h, c->kh, c->oh);
    emit_for(e, "ox", c->ow);
    tap_range(e, "kw", "ox", c->sw, c->pl, c->w, c->kw, c->ow);
    emit(e, "int8_t *yp = y + (oy * %" PRId64 " + ox) * %" PRId64 ";", c->ow, c->co);
    emit(e, "int32_t acc[%" PRId64 "];", c->cop);
    emit(e, "memcpy(acc, %s_bq, sizeof acc);", L);
    emit(e, "for (int kh = kh0; kh < kh1; kh++) {");
    emit(e, "for (int kw = kw0; kw < kw1; kw++) {");
    emit(e, "const int8_t *xp = x + ((oy * %" PRId64 " + kh - %" PRId64 ") * %" PRId64
            " + ox * %" PRId64 " + kw - %" PRId64 ") * %" PRId64 ";", c->sh, c->pt, c->w,
         c->sw, c->pl, c->ci);
    emit(e, "const int8_t *wp = %s_wq + (kh * %" PRId64 " + kw) * %" PRId64 ";", L, c->kw,
         c->cig * c->cop);
    emit(e, "for (int j = 0; j < %" PRId64 "; j++, wp += %" PRId64 ") {", c->cig, c->cop);
    if (c->groups == 1) {
        emit(e, "const int32_t v = xp[j];");
        emit(e, "for (int co = 0; co < %" PRId64 "; co++) acc[co] += v * wp[co];", c->cop);
    } else if (c->cig == 1 && c->cog == 1) {
        emit(e, "for (int co = 0; co < %" PRId64 "; co++) acc[co] += xp[co] * wp[co];", c->co);
    } else {
        emit(e, "for (int co = 0; co < %" PRId64 "; co++) acc[co] += xp[co / %" PRId64 " * %"
                PRId64 " + j] * wp[co];", c->co, c->cog, c->cig);
    }
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    emit(e, "for (int co = 0; co < %" PRId64 "; co++)", c->co);
    emit(e, "    yp[co] = clamp8(requantize(acc[co], %s_mult[co], %s_shift[co]), %s);", L, L,
         c->relu ? "0" : "-127");
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
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
        emit_for(e, "c", c);
        emit(e, "int32_t sum = 0;");
        emit(e, "for (int p = 0; p < %" PRId64 "; p++) sum += x[p * %" PRId64 " + c];", hw, c);
        emit(e, "y[c] = (int8_t)divide_round(sum, %" PRId64 ");", hw);
        emit(e, "}");
        emit(e, "}");
        return;
    }
    bool max = op == OP_MAXPOOL;
    int64_t kh = layer_arg(l, "size")->u.size.h, kw = layer_arg(l, "size")->u.size.w;
    int64_t sh = layer_arg(l, "stride")->u.size.h, sw = layer_arg(l, "stride")->u.size.w;
    int64_t pt = layer_arg(l, "padding")->u.pad.top, pl = layer_arg(l, "padding")->u.pad.left;
    emit(e, "/* %s: %s in int8 (the input's scale) */", l->label, l->kind->name);
    emit(e, "static void %s_forward(const int8_t *restrict x, int8_t *restrict y)", l->label);
    emit(e, "{");
    emit_for(e, "oy", l->out.h);
    tap_range(e, "kh", "oy", sh, pt, h, kh, l->out.h);
    emit_for(e, "ox", l->out.w);
    tap_range(e, "kw", "ox", sw, pl, w, kw, l->out.w);
    emit(e, "int8_t *yp = y + (oy * %" PRId64 " + ox) * %" PRId64 ";", l->out.w, c);
    emit_for(e, "c", c);
    emit(e, "int32_t acc = %s;", max ? "-128" : "0");
    emit(e, "for (int kh = kh0; kh < kh1; kh++) {");
    emit(e, "for (int kw = kw0; kw < kw1; kw++) {");
    emit(e, "const int32_t v = x[((oy * %" PRId64 " + kh - %" PRId64 ") * %" PRId64
            " + ox * %" PRId64 " + kw - %" PRId64 ") * %" PRId64 " + c];", sh, pt, w, sw, pl,
         c);
    emit(e, max ? "acc = v > acc ? v : acc;" : "acc += v;");
    emit(e, "}");
    emit(e, "}");
    emit(e, max ? "yp[c] = (int8_t)acc;"
                : "yp[c] = (int8_t)divide_round(acc, (kh1 - kh0) * (kw1 - kw0));");
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
}

/* Add: sum of the inputs each times q_k = round(s_k / s_out * 2^16). */
static void emit_qadd(Emitter *e, const Layer *l, const Plan *p, const double *scale)
{
    int t = layer_output(l);
    emit(e, "/* %s: Add in int8: each input brought to the output's scale %.6g */", l->label,
         scale[t]);
    char args[CNNC_MAX_INPUTS * 40] = "", sum[CNNC_MAX_INPUTS * 48] = "";
    size_t a = 0, b = 0;
    for (int k = 0; k < l->ninputs; k++) {
        a += (size_t)snprintf(args + a, sizeof args - a, "const int8_t *restrict x%d, ", k);
        int64_t q = llround(scale[p->root[l->inputs[k]]] / scale[t] * 65536.0);
        b += (size_t)snprintf(sum + b, sizeof sum - b, "%s(int64_t)x%d[j] * %" PRId64,
                              k ? " + " : "", k, q);
    }
    emit(e, "static void %s_forward(%sint8_t *restrict y)", l->label, args);
    emit(e, "{");
    emit(e, "for (int j = 0; j < %" PRId64 "; j++)", shape_elems(l->out));
    emit(e, "    y[j] = clamp8(shift_round(%s, 16), -127);", sum);
    emit(e, "}");
}

static void emit_qlayer(Emitter *e, const Network *n, const Plan *p, int i, const double *scale)
{
    const Layer *l = &n->layers[i];
    const Step *s = &p->at[i];
    switch (s->op) {
    case OP_CONV:
        emit_qconv(e, l, &s->conv, scale[p->root[l->inputs[0]]], scale[i + 1]);
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

static void emit_qprelude(Emitter *e, const Network *n, const Plan *p, const InferOptions *o)
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
         round_up8(p->arena > 0 ? p->arena : 1) + round_up8(shape_elems(n->input)));
    emit_blank(e);
    emit(e, "int %s_predict(const float *input, float *output, void *work);", P);
    emit_blank(e);
    bool has[OP_FLATTEN + 1] = {false};
    for (int i = 0; i < n->nlayers; i++)
        has[p->at[i].op] = true;
    if (has[OP_CONV] || has[OP_ADD]) {
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
    }
    if (has[OP_CONV]) {
        emit(e, "/* acc * mult * 2^-shift: the fixed-point multiplier of a scale ratio. */");
        emit(e, "static int32_t requantize(int32_t acc, int32_t mult, int shift)");
        emit(e, "{");
        emit(e, "return (int32_t)shift_round((int64_t)acc * mult, shift);");
        emit(e, "}");
    }
    if (has[OP_AVGPOOL] || has[OP_GLOBALAVG]) {
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
    emit(e, "for (int j = 0; j < %s_INPUT_SIZE; j++) {", P);
    emit(e, "const float v = input[j] * (float)%.17g;", 1 / scale[0]);
    emit(e, "const int32_t r = v >= 0 ? (int32_t)(v + 0.5f) : -(int32_t)(-v + 0.5f);");
    emit(e, "q[j] = (int8_t)(r < -127 ? -127 : r > 127 ? 127 : r);");
    emit(e, "}");
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        if (p->at[i].op == OP_ALIAS || p->at[i].op == OP_SOFTMAX)
            continue;
        char args[CNNC_MAX_INPUTS * 48] = "", buf[48];
        size_t used = 0;
        for (int k = 0; k < l->ninputs; k++)
            used += (size_t)snprintf(args + used, sizeof args - used, "%s, ",
                                     qtensor(n, p, l->inputs[k], buf, sizeof buf));
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
    q->plan = plan_steps(n, w);
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
    emit_qprelude(&e, n, &q->plan, o);
    for (int i = 0; i < n->nlayers; i++)
        emit_qlayer(&e, n, &q->plan, i, q->scale);
    emit_qpredict(&e, n, &q->plan, q->scale, o);
    return !ferror(out);
}
