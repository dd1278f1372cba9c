/* infer.c: --emit=inference, the network as one self-contained C99 file
 * that computes its outputs for one sample.
 *
 *   #define NAME_INPUT_SIZE   H*W*C floats, HWC (what a float32 data file holds)
 *   #define NAME_OUTPUT_SIZE  outputs of the last layer
 *   #define NAME_WORK_BYTES   the arena
 *   int NAME_predict(const float *input, float *output, void *work);
 *
 * What it holds: the weights as static const float arrays (hex literals:
 * bitwise the checkpoint's, or for a Conv with a BatchNorm folded in, the
 * folded products rounded once); a function per layer with its shapes as
 * constants; NAME_predict calling them in source order over one arena.
 *
 * The steps, decided before anything is written (plan_steps):
 *   - Dropout vanishes (the identity at inference): its output is an alias
 *     of its input. So does a Flatten read by one Dense only: the trainer
 *     numbers a flattened map channel-major (CHW, PyTorch's order, see
 *     flatten.c), and that Dense's weight columns are permuted to the NHWC
 *     order the map already has. Any other Flatten permutes the floats.
 *   - A BatchNorm right after a Conv (or Dense) that nobody else reads is
 *     folded into it: w' = w * s, b' = b * s + t per output channel, with
 *     s = gamma / sqrt(running_var + eps), t = beta - running_mean * s.
 *     Elsewhere it is a per-channel scale and shift.
 *   - A ReLU whose input only it reads, produced by a Conv or Dense (through
 *     a folded BatchNorm or a Flatten), is applied as that layer stores.
 *   - Dense is a 1x1 convolution of a 1x1 map: one kernel for both.
 * Buffers are placed in the arena by liveness (place_buffers): a tensor's
 * floats are free once its last reader has run.
 *
 * The convolution keeps a pixel's output channels in registers: weights
 * repacked [kh][kw][ci][co] (co padded to a multiple of 8 with zeros), and
 * for every output pixel, every tap and every input channel, one input
 * value times a row of co weights is added to the accumulators. A padded
 * Conv reads a zero-bordered copy of its input (NAME_pad, in the arena), so
 * that every window lies inside what it reads and no pixel needs a border
 * case. With GCC or Clang on a target with AVX or NEON the accumulators
 * are vectors (the fast path, chosen in the file by #if): of 16 floats
 * where the target has AVX-512, else of 8, in tiles of several pixels by
 * several vectors; any other target or C99 compiler gets the same loops
 * over a float array (the portable path, also forced by defining
 * NAME_PORTABLE). */
#include "infer.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "emitter.h"

/* ------------------------------------------------------------------------
 * The steps
 */

bool is_kind(const Layer *l, const LayerKind *k)
{
    return l->kind == k;
}

static int64_t round_up(int64_t v, int64_t m)
{
    return (v + m - 1) / m * m;
}

/* Where the trainer's Dense input j (channel-major over a map hw x c, as
 * its Flatten numbers them) lies in the NHWC map. */
static int64_t hwc_index(int64_t j, int64_t hw, int64_t c)
{
    return j % hw * c + j / hw;
}

/* Conv's numbers and its weights repacked; Dense as a 1x1 convolution.
 * flat: the map a Dense reads through an absorbed Flatten (else NULL). */
static ConvStep conv_step(const Layer *l, const LayerWeights *lw, const Shape *flat)
{
    ConvStep s = {0};
    if (is_kind(l, &layer_conv)) {
        const ArgVal *k = layer_arg(l, "kernel"), *st = layer_arg(l, "stride"),
                     *p = layer_arg(l, "padding");
        s = (ConvStep){.h = l->in.h, .w = l->in.w, .ci = l->in.c, .oh = l->out.h,
                       .ow = l->out.w, .co = l->out.c, .kh = k->u.size.h, .kw = k->u.size.w,
                       .sh = st->u.size.h, .sw = st->u.size.w, .pt = p->u.pad.top,
                       .pl = p->u.pad.left, .groups = layer_arg(l, "groups")->u.i};
    } else {
        s = (ConvStep){.h = 1, .w = 1, .ci = l->in.c, .oh = 1, .ow = 1, .co = l->out.c,
                       .kh = 1, .kw = 1, .sh = 1, .sw = 1, .groups = 1};
    }
    s.cig = s.ci / s.groups;
    s.cog = s.co / s.groups;
    s.cop = round_up(s.co, VEC);
    s.wt = xcalloc((size_t)(s.kh * s.kw * s.cig * s.cop), sizeof(double));
    s.bias = xcalloc((size_t)s.cop, sizeof(double));
    const double *w = lw->param[0];
    for (int64_t o = 0; o < s.co; o++)
        for (int64_t c = 0; c < s.cig; c++)
            for (int64_t y = 0; y < s.kh; y++)
                for (int64_t x = 0; x < s.kw; x++) {
                    int64_t at = flat ? hwc_index(c, flat->h * flat->w, flat->c)
                                      : (y * s.kw + x) * s.cig + c;
                    s.wt[at * s.cop + o] = w[((o * s.cig + c) * s.kh + y) * s.kw + x];
                }
    if (l->nparams > 1)
        memcpy(s.bias, lw->param[1], (size_t)s.co * sizeof(double));
    return s;
}

/* BatchNorm at inference: y = x * s + t per channel. */
static void bn_scale_shift(const Layer *l, const LayerWeights *lw, double **scale,
                           double **shift)
{
    int64_t c = l->in.c;
    double eps = layer_arg(l, "eps")->u.f;
    bool affine = layer_arg(l, "affine")->u.b;
    *scale = xcalloc((size_t)c, sizeof(double));
    *shift = xcalloc((size_t)c, sizeof(double));
    for (int64_t j = 0; j < c; j++) {
        double s = 1 / sqrt(lw->buffer[1][j] + eps);
        if (affine)
            s *= lw->param[0][j];
        (*scale)[j] = s;
        (*shift)[j] = (affine ? lw->param[1][j] : 0) - lw->buffer[0][j] * s;
    }
}

/* Whether the floats of tensor t are read by only the one consumer of each
 * tensor on its way from the layer that computed them: that layer may then
 * change what it stores (a folded BatchNorm, a fused ReLU). */
static bool sole_reader(const Network *n, const Plan *p, int t)
{
    for (;;) {
        if (n->tensors[t].nconsumers != 1 || t == n->nlayers)
            return false;
        int producer = n->tensors[t].producer;
        if (producer < 0)
            return false;
        if (p->at[producer].op != OP_ALIAS)
            return true;
        t = p->at[producer].alias;
    }
}

/* The Conv step whose output tensor t is an alias of, or NULL. */
static ConvStep *conv_behind(const Network *n, Plan *p, int t)
{
    int r = p->root[t];
    int producer = n->tensors[r].producer;
    return producer >= 0 && p->at[producer].op == OP_CONV ? &p->at[producer].conv : NULL;
}

static void fold_batchnorm(ConvStep *c, const double *scale, const double *shift)
{
    for (int64_t i = 0; i < c->kh * c->kw * c->cig; i++)
        for (int64_t o = 0; o < c->co; o++)
            c->wt[i * c->cop + o] *= scale[o];
    for (int64_t o = 0; o < c->co; o++)
        c->bias[o] = c->bias[o] * scale[o] + shift[o];
}

static void alias(Plan *p, int i, int t)
{
    p->at[i].op = OP_ALIAS;
    p->at[i].alias = t;
    p->root[i + 1] = p->root[t];
}

static void plan_step(const Network *n, const Weights *w, Plan *p, int i)
{
    const Layer *l = &n->layers[i];
    Step *s = &p->at[i];
    int in = l->inputs[0];
    p->root[i + 1] = i + 1;
    if (is_kind(l, &layer_conv) || is_kind(l, &layer_dense)) {
        int producer = n->tensors[in].producer;
        bool through_flatten = producer >= 0 && p->at[producer].op == OP_ALIAS &&
                               is_kind(&n->layers[producer], &layer_flatten);
        s->op = OP_CONV;
        s->conv = conv_step(l, &w->at[i], through_flatten ? &n->layers[producer].in : NULL);
    } else if (is_kind(l, &layer_dropout)) {
        alias(p, i, in);
    } else if (is_kind(l, &layer_flatten)) {
        const Tensor *t = &n->tensors[i + 1];
        bool orders_agree = l->in.h * l->in.w == 1 || l->in.c == 1;
        if (orders_agree || (t->nconsumers == 1 && i + 1 != n->nlayers &&
                             is_kind(&n->layers[t->consumers[0]], &layer_dense)))
            alias(p, i, in);
        else
            s->op = OP_FLATTEN;
    } else if (is_kind(l, &layer_batchnorm)) {
        double *scale, *shift;
        bn_scale_shift(l, &w->at[i], &scale, &shift);
        int producer = n->tensors[in].producer;
        if (producer >= 0 && p->at[producer].op == OP_CONV && !p->at[producer].conv.relu &&
            sole_reader(n, p, in)) {
            fold_batchnorm(&p->at[producer].conv, scale, shift);
            free(scale);
            free(shift);
            alias(p, i, in);
        } else {
            s->op = OP_SCALE;
            s->scale = scale;
            s->shift = shift;
        }
    } else if (is_kind(l, &layer_relu) && conv_behind(n, p, in) &&
               !conv_behind(n, p, in)->relu && sole_reader(n, p, in)) {
        conv_behind(n, p, in)->relu = true;
        alias(p, i, in);
    } else if (is_kind(l, &layer_maxpool)) {
        s->op = OP_MAXPOOL;
    } else if (is_kind(l, &layer_avgpool)) {
        s->op = OP_AVGPOOL;
    } else if (is_kind(l, &layer_globalavgpool)) {
        s->op = OP_GLOBALAVG;
    } else if (is_kind(l, &layer_add)) {
        s->op = OP_ADD;
    } else if (is_kind(l, &layer_concat)) {
        s->op = OP_CONCAT;
    } else if (is_kind(l, &layer_softmax)) {
        s->op = OP_SOFTMAX;
    } else {
        s->op = OP_ACT;
    }
}

/* A live buffer: its floats and the last layer that reads it. */
typedef struct Block {
    int64_t off, size;
    int last;
} Block;

/* First fit: the lowest offset where size floats fit between the live
 * blocks (sorted by offset). */
static int64_t first_fit(const Block *live, int nlive, int64_t size)
{
    int64_t at = 0;
    for (int k = 0; k < nlive; k++) {
        if (live[k].off >= at + size)
            return at;
        if (live[k].off + live[k].size > at)
            at = round_up(live[k].off + live[k].size, ALIGN_FLOATS);
    }
    return at;
}

static int by_offset(const void *a, const void *b)
{
    const Block *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Offsets by liveness: a layer's output is placed while its inputs are
 * still live (no kernel writes over what it reads), and a buffer is freed
 * after its last reader. */
/* A zero-bordered copy of a padded Conv's input: hp x wp, what its windows
 * span. */
static bool pad_copy(ConvStep *c)
{
    c->hp = (c->oh - 1) * c->sh + c->kh;
    c->wp = (c->ow - 1) * c->sw + c->kw;
    return c->pt > 0 || c->pl > 0 || c->hp - c->pt > c->h || c->wp - c->pl > c->w;
}

static int64_t place(Block *live, int *nlive, int64_t size, int last, int64_t *arena)
{
    int64_t off = first_fit(live, *nlive, size);
    live[(*nlive)++] = (Block){.off = off, .size = size, .last = last};
    qsort(live, (size_t)*nlive, sizeof *live, by_offset);
    if (off + size > *arena)
        *arena = off + size;
    return off;
}

static void place_buffers(const Network *n, Plan *p, const Placing *how)
{
    int *last = xcalloc((size_t)n->nlayers + 1, sizeof *last);
    for (int i = 0; i < n->nlayers; i++)
        if (p->at[i].op != OP_ALIAS)
            for (int k = 0; k < n->layers[i].ninputs; k++) {
                int r = p->root[n->layers[i].inputs[k]];
                if (last[r] < i)
                    last[r] = i;
            }
    last[p->root[n->nlayers]] = n->nlayers;
    Block *live = xcalloc((size_t)n->nlayers * 2 + 1, sizeof *live);
    int nlive = 0;
    for (int i = 0; i < n->nlayers; i++) {
        int kept = 0;
        for (int k = 0; k < nlive; k++)
            if (live[k].last >= i)
                live[kept++] = live[k];
        nlive = kept;
        if (p->at[i].op == OP_ALIAS)
            continue;
        int64_t size = round_up(shape_elems(n->layers[i].out) + how->slack, ALIGN_FLOATS);
        p->at[i].off = place(live, &nlive, size, last[i + 1] > i ? last[i + 1] : i, &p->arena);
        ConvStep *c = &p->at[i].conv;
        if (p->at[i].op == OP_CONV && (c->groups == 1 || how->pad_grouped) && pad_copy(c)) {
            c->padded = true;
            c->pad_off = place(live, &nlive,
                               round_up(c->hp * c->wp * c->ci + how->slack, ALIGN_FLOATS), i,
                               &p->arena);
        }
    }
    free(live);
    free(last);
}

Plan plan_steps(const Network *n, const Weights *w, const Placing *how)
{
    Plan p = {.at = xcalloc((size_t)n->nlayers + 1, sizeof *p.at),
              .root = xcalloc((size_t)n->nlayers + 1, sizeof *p.root)};
    p.root[INPUT_TENSOR] = INPUT_TENSOR;
    for (int i = 0; i < n->nlayers; i++)
        plan_step(n, w, &p, i);
    place_buffers(n, &p, how);
    return p;
}

void plan_release(const Network *n, Plan *p)
{
    for (int i = 0; i < n->nlayers; i++) {
        free(p->at[i].conv.wt);
        free(p->at[i].conv.bias);
        free(p->at[i].scale);
        free(p->at[i].shift);
    }
    free(p->at);
    free(p->root);
}

/* ------------------------------------------------------------------------
 * Writing: weights
 */

/* A float as a hex literal: the exact value, whichever way the reader's
 * compiler rounds decimals. */
static void put_float(FILE *f, double v)
{
    float x = (float)v;
    if (x == 0)
        fputs(signbit(x) ? "-0.0f" : "0.0f", f);
    else
        fprintf(f, "%af", (double)x);
}

void emit_array(Emitter *e, const char *name, const char *dims, const double *v,
                       int64_t count)
{
    emit(e, "static const float %s[%" PRId64 "] = { /* %s */", name, count, dims);
    for (int64_t i = 0; i < count; i++) {
        fputs(i % 6 == 0 ? "    " : " ", e->out);
        put_float(e->out, v[i]);
        fputs(i + 1 < count ? "," : "", e->out);
        if (i % 6 == 5 || i + 1 == count)
            fputc('\n', e->out);
    }
    emit(e, "};");
}

/* ------------------------------------------------------------------------
 * Writing: the layers' functions
 */

static void conv_comment(Emitter *e, const Layer *l, const ConvStep *c)
{
    if (is_kind(l, &layer_dense))
        emit(e, "/* %s: Dense %" PRId64 " -> %" PRId64 "%s, as a 1x1 convolution", l->label,
             c->ci, c->co, c->relu ? ", then ReLU" : "");
    else
        emit(e, "/* %s: Conv %" PRId64 "x%" PRId64 ", stride %" PRId64 "x%" PRId64
                ", padding %" PRId64 " top %" PRId64 " left: %" PRId64 "x%" PRId64 "x%"
                PRId64 " -> %" PRId64 "x%" PRId64 "x%" PRId64 "%s", l->label, c->kh, c->kw,
             c->sh, c->sw, c->pt, c->pl, c->h, c->w, c->ci, c->oh, c->ow, c->co,
             c->relu ? ", then ReLU" : "");
    emit(e, " *   y[oy][ox][co] = b[co] + sum over kh, kw, ci of");
    emit(e, " *       w[kh][kw][ci][co] * x[oy*%" PRId64 " + kh - %" PRId64 "][ox*%" PRId64
            " + kw - %" PRId64 "][ci]", c->sh, c->pt, c->sw, c->pl);
    if (c->groups > 1)
        emit(e, " *   in %" PRId64 " groups: ci runs over the %" PRId64 " channels from (co / %"
                PRId64 ") * %" PRId64, c->groups, c->cig, c->cog, c->cig);
    if (c->padded)
        emit(e, " *   (x is %s_pad's copy, the padding zeros in it: every tap inside it;",
             l->label);
    else
        emit(e, " *   (taps in the padding add nothing;");
    emit(e, " *   w's co padded to %" PRId64 ") */", c->cop);
}

/* The range of kernel rows [k0, k1) that land inside the input for output
 * row o: declared only when padding makes it vary. */
void emit_window_at(Emitter *e, const char *type, const char *name, const char *kh,
                    const char *kw, const char *more, int64_t sh, int64_t pt, int64_t w,
                    int64_t sw, int64_t pl, int64_t c)
{
    emit(e, "const %s *%s = x + ((oy * %" PRId64 " + %s - %" PRId64 ") * %" PRId64 " + ox * %"
            PRId64 " + %s - %" PRId64 ") * %" PRId64 "%s;", type, name, sh, kh, pt, w, sw, kw,
         pl, c, more);
}

void tap_range(Emitter *e, const char *k, const char *o, int64_t s, int64_t p,
                      int64_t in, int64_t kn, int64_t on)
{
    bool low = p > 0, high = (on - 1) * s + kn - p > in;
    if (!low && !high) {
        emit(e, "const int %s0 = 0, %s1 = %" PRId64 ";", k, k, kn);
        return;
    }
    emit(e, "int %s0 = 0, %s1 = %" PRId64 ";", k, k, kn);
    if (low)
        emit(e, "if (%s * %" PRId64 " - %" PRId64 " < 0) %s0 = (int)(%" PRId64 " - %s * %"
                PRId64 ");", o, s, p, k, p, o, s);
    if (high)
        emit(e, "if (%s * %" PRId64 " - %" PRId64 " + %" PRId64 " > %" PRId64 ") %s1 = (int)(%"
                PRId64 " - %s * %" PRId64 " + %" PRId64 ");", o, s, p, kn, in, k, in, o, s, p);
}

/* A vector of the fast path: `lanes` output channels from `from`. */
typedef struct Vec {
    int64_t from;
    int lanes;
} Vec;

/* The vectors of a row of cop channels (a multiple of VEC) with vectors of
 * `lanes` floats (VEC, or WIDE_VEC with AVX-512): whole ones, and a last one
 * of VEC where cop is an odd multiple of it (40 channels: 16 + 16 + 8).
 * v holds cop / VEC; returns the count. */
static int row_vectors(const ConvStep *c, int lanes, Vec *v)
{
    int n = 0;
    for (int64_t from = 0; from < c->cop; from += v[n - 1].lanes) {
        v[n].from = from;
        v[n].lanes = c->cop - from >= lanes ? lanes : VEC;
        n++;
    }
    return n;
}

/* "" or "16": the suffix of the vector type and macros of v's width. */
static const char *wide(const Vec *v)
{
    return v->lanes == VEC ? "" : "16";
}

/* Inside the loops over kh and kw: xp at the tap's input pixel, wp at its
 * weights from channel co0, and the loop over the input channels opened. */
static void emit_tap_loop(Emitter *e, const ConvStep *c, const char *L, int64_t co0)
{
    emit_window_at(e, "float", "xp", "kh", "kw", "", c->sh, c->pt, c->w, c->sw, c->pl,
                   c->ci);
    emit(e, "const float *wp = %s_w + (kh * %" PRId64 " + kw) * %" PRId64 " + %" PRId64 ";",
         L, c->kw, c->ci * c->cop, co0);
    emit(e, "for (int ci = 0; ci < %" PRId64 "; ci++, wp += %" PRId64 ") {", c->ci, c->cop);
}

/* The accumulator named acc, of vector v, stored at yp + at + v's first
 * channel: after ReLU if the step has one, without the lanes past co. */
static void emit_vstore(Emitter *e, const ConvStep *c, const Vec *v, const char *acc,
                        int64_t at)
{
    int64_t count = c->co - v->from < v->lanes ? c->co - v->from : v->lanes;
    if (c->relu)
        emit(e, "%s = VRELU%s(%s);", acc, wide(v), acc);
    if (count == v->lanes)
        emit(e, "VSTORE%s(yp + %" PRId64 ", %s);", wide(v), at + v->from, acc);
    else
        emit(e, "VSTORE_PART(yp + %" PRId64 ", %s, %" PRId64 ");", at + v->from, acc, count);
}

static void conv_portable(Emitter *e, const ConvStep *c, const char *L)
{
    emit(e, "float acc[%" PRId64 "];", c->cop);
    emit(e, "memcpy(acc, %s_b, sizeof acc);", L);
    emit(e, "for (int kh = kh0; kh < kh1; kh++) {");
    emit(e, "for (int kw = kw0; kw < kw1; kw++) {");
    emit_window_at(e, "float", "xp", "kh", "kw", "", c->sh, c->pt, c->w, c->sw, c->pl,
                   c->ci);
    emit(e, "const float *wp = %s_w + (kh * %" PRId64 " + kw) * %" PRId64 ";", L, c->kw,
         c->ci * c->cop);
    emit(e, "for (int ci = 0; ci < %" PRId64 "; ci++, wp += %" PRId64 ") {", c->ci, c->cop);
    emit(e, "const float v = xp[ci];");
    emit(e, "for (int co = 0; co < %" PRId64 "; co++) acc[co] += v * wp[co];", c->cop);
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    if (c->relu)
        emit(e, "for (int co = 0; co < %" PRId64 "; co++) yp[co] = acc[co] < 0 ? 0 : acc[co];",
             c->co);
    else
        emit(e, "for (int co = 0; co < %" PRId64 "; co++) yp[co] = acc[co];", c->co);
}

/* Conv(groups=G): the sum runs over the cig input channels of co's group,
 * (co / cog) * cig + j. Plain loops; a depthwise layer (cig = cog = 1) has
 * vectors of its own in the fast path (conv_depthwise_fast). */
static void conv_grouped(Emitter *e, const ConvStep *c, const char *L)
{
    emit(e, "float acc[%" PRId64 "];", c->cop);
    emit(e, "memcpy(acc, %s_b, sizeof acc);", L);
    emit(e, "for (int kh = kh0; kh < kh1; kh++) {");
    emit(e, "for (int kw = kw0; kw < kw1; kw++) {");
    emit_window_at(e, "float", "xp", "kh", "kw", "", c->sh, c->pt, c->w, c->sw, c->pl,
                   c->ci);
    emit(e, "const float *wp = %s_w + (kh * %" PRId64 " + kw) * %" PRId64 ";", L, c->kw,
         c->cig * c->cop);
    emit(e, "for (int j = 0; j < %" PRId64 "; j++, wp += %" PRId64 ")", c->cig, c->cop);
    if (c->cig == 1 && c->cog == 1)
        emit(e, "    for (int co = 0; co < %" PRId64 "; co++) acc[co] += xp[co] * wp[co];",
             c->co);
    else
        emit(e, "    for (int co = 0; co < %" PRId64 "; co++) acc[co] += xp[co / %" PRId64
                " * %" PRId64 " + j] * wp[co];", c->co, c->cog, c->cig);
    emit(e, "}");
    emit(e, "}");
    if (c->relu)
        emit(e, "for (int co = 0; co < %" PRId64 "; co++) yp[co] = acc[co] < 0 ? 0 : acc[co];",
             c->co);
    else
        emit(e, "for (int co = 0; co < %" PRId64 "; co++) yp[co] = acc[co];", c->co);
}

/* The largest count of vectors at most `most` that divides nv. */
static int accs_per_block(int64_t nv, int most)
{
    for (int k = most; k > 1; k--)
        if (nv % k == 0)
            return k;
    return 1;
}

/* A tile of np pixels of a row (ox ... ox + np - 1, every tap inside x)
 * by the nv vectors from v[0]: each weight vector loaded serves np pixels
 * and each input value nv vectors, where one pixel at a time would load a
 * weight vector for every multiply-add. Each output adds its products in
 * the order of the portable path (kh, kw, ci). */
static void conv_fast_tile(Emitter *e, const ConvStep *c, const char *L, const Vec *v, int nv,
                           int np)
{
    emit(e, "{");
    for (int q = 0; q < np; q++)
        for (int k = 0; k < nv; k++)
            emit(e, "vfloat%s a%d_%d = VLOAD%s(%s_b + %" PRId64 ");", wide(&v[k]), q, k,
                 wide(&v[k]), L, v[k].from);
    emit(e, "for (int kh = kh0; kh < kh1; kh++) {");
    emit(e, "for (int kw = 0; kw < %" PRId64 "; kw++) {", c->kw);
    emit_tap_loop(e, c, L, v[0].from);
    for (int k = 0; k < nv; k++)
        emit(e, "const vfloat%s w%d = VLOAD%s(wp + %" PRId64 ");", wide(&v[k]), k, wide(&v[k]),
             v[k].from - v[0].from);
    for (int q = 0; q < np; q++) {
        emit(e, "const float v%d = xp[ci + %" PRId64 "];", q, q * c->sw * c->ci);
        for (int k = 0; k < nv; k++)
            emit(e, "a%d_%d += v%d * w%d;", q, k, q, k);
    }
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    for (int q = 0; q < np; q++)
        for (int k = 0; k < nv; k++) {
            char acc[32];
            snprintf(acc, sizeof acc, "a%d_%d", q, k);
            emit_vstore(e, c, &v[k], acc, q * c->co);
        }
    emit(e, "}");
}

/* Vectors a tile (a divisor of nvec) and pixels a tile, for a row of ow
 * pixels.
 * With 8 floats a vector (AVX or AVX2, NEON: the targets without AVX-512,
 * 16 registers of 8 floats): 12 accumulators, up to 4 vectors by as many
 * pixels (3 by 4, 4 by 3, 6 by 2, 12 by 1). On the Zen 5 built with -mavx2
 * -mfma (7 alternated runs): cifar10 685 us against 884 with the 6 by 4
 * tiles of before (24 accumulators, spilled: they had been measured where
 * AVX-512's 32 registers were there for 8-float vectors too), fashion_cnn
 * 389 against 536, fashion_resnet 861 against 1152, resnet8 252 against
 * 303, mobilenet 367 against 485; seed, lenet5 and mlp level.
 * With 16 (AVX-512, 32 registers): up to 12 pixels, a divisor of the row
 * where one from 6 to 12 divides it (28: 7 by 4, 14: 7 by 2), and as many
 * vectors as keep 24 accumulators, at most 8 (a Dense: 1 pixel by 8). On a
 * Zen 5 the models' latency changed less than 5% (noise) from 8 to 14
 * pixels and 24 to 28 accumulators; 32 was 10% slower (spills). */
static void tile_shape(int nvec, int lanes, int64_t ow, int *nv, int *np)
{
    if (lanes == VEC) {
        enum { ACCS8 = 12 };
        *nv = accs_per_block(nvec, 4);
        *np = ACCS8 / *nv;
        if (ow < *np) {
            /* rows of fewer pixels (a Dense: 1) take more vectors */
            *np = (int)ow;
            int most = ACCS8 / *np;
            *nv = accs_per_block(nvec, most < MAX_ACCS ? most : MAX_ACCS);
        }
        return;
    }
    enum { MOST_PIXELS = 12, ACCS = 24, MOST_VECTORS = 8 };
    *np = (int)(ow < MOST_PIXELS ? ow : MOST_PIXELS);
    for (int d = MOST_PIXELS; d >= MOST_PIXELS / 2 && ow > MOST_PIXELS; d--)
        if (ow % d == 0) {
            *np = d;
            break;
        }
    int most = ACCS / *np < MOST_VECTORS ? ACCS / *np : MOST_VECTORS;
    *nv = accs_per_block(nvec, most < 1 ? 1 : most);
}

/* A row's tiles of np pixels by the vectors from v[0], and one tile of the
 * pixels left. */
static void conv_fast_row(Emitter *e, const ConvStep *c, const char *L, const Vec *v, int nv,
                          int np)
{
    int64_t rest = c->ow % np;
    emit(e, "for (int ox = 0; ox < %" PRId64 "; ox += %d) {", c->ow - rest, np);
    emit(e, "float *yp = y + (oy * %" PRId64 " + ox) * %" PRId64 ";", c->ow, c->co);
    conv_fast_tile(e, c, L, v, nv, np);
    emit(e, "}");
    if (rest > 0) {
        emit(e, "{");
        emit(e, "const int ox = %" PRId64 ";", c->ow - rest);
        emit(e, "float *yp = y + (oy * %" PRId64 " + ox) * %" PRId64 ";", c->ow, c->co);
        conv_fast_tile(e, c, L, v, nv, (int)rest);
        emit(e, "}");
    }
}

/* The vector path, where every window lies inside x (a padded Conv reads
 * its zero-bordered copy): tiles of pixels by blocks of vectors of output
 * channels, blocks outermost, so that a block's weights stay in the cache
 * while all the rows go by (a late layer's 3x3x160x160 floats are 900 KiB;
 * on cifar10 with AVX-512, 352 us against 399 with rows outermost). */
static void conv_fast(Emitter *e, const ConvStep *c, const char *L, int lanes)
{
    Vec *v = xcalloc((size_t)(c->cop / VEC), sizeof *v);
    int nvec = row_vectors(c, lanes, v), tile, np;
    tile_shape(nvec, lanes, c->ow, &tile, &np);
    for (int b = 0; b < nvec; b += tile) {
        emit_for(e, "oy", c->oh);
        emit(e, "const int kh0 = 0, kh1 = %" PRId64 ";", c->kh);
        conv_fast_row(e, c, L, v + b, tile, np);
        emit(e, "}");
    }
    free(v);
}

/* A depthwise Conv (groups = ci = co) in vectors: output channel co reads
 * input channel co alone, so a vector of channels multiplies a vector of
 * inputs by a vector of weights, per tap. */
static void conv_depthwise_fast(Emitter *e, const ConvStep *c, const char *L, int lanes)
{
    Vec *v = xcalloc((size_t)(c->cop / VEC), sizeof *v);
    int nvec = row_vectors(c, lanes, v);
    emit_for(e, "oy", c->oh);
    tap_range(e, "kh", "oy", c->sh, c->pt, c->h, c->kh, c->oh);
    emit_for(e, "ox", c->ow);
    tap_range(e, "kw", "ox", c->sw, c->pl, c->w, c->kw, c->ow);
    emit(e, "float *yp = y + (oy * %" PRId64 " + ox) * %" PRId64 ";", c->ow, c->co);
    int per = accs_per_block(nvec, MAX_ACCS);
    for (int b = 0; b < nvec; b += per) {
        emit(e, "{");
        for (int k = 0; k < per; k++)
            emit(e, "vfloat%s a%d = VLOAD%s(%s_b + %" PRId64 ");", wide(&v[b + k]), k,
                 wide(&v[b + k]), L, v[b + k].from);
        emit(e, "for (int kh = kh0; kh < kh1; kh++) {");
        emit(e, "for (int kw = kw0; kw < kw1; kw++) {");
        emit_window_at(e, "float", "xp", "kh", "kw", "", c->sh, c->pt, c->w, c->sw, c->pl,
                       c->ci);
        emit(e, "const float *wp = %s_w + (kh * %" PRId64 " + kw) * %" PRId64 ";", L, c->kw,
             c->cop);
        for (int k = 0; k < per; k++) {
            const Vec *u = &v[b + k];
            int64_t count = c->co - u->from;
            if (count >= u->lanes) {
                emit(e, "a%d += VLOAD%s(xp + %" PRId64 ") * VLOAD%s(wp + %" PRId64 ");", k,
                     wide(u), u->from, wide(u), u->from);
                continue;
            }
            /* the last channels: a whole vector would read past the map */
            emit(e, "{");
            emit(e, "vfloat%s t = {0};", wide(u));
            emit(e, "memcpy(&t, xp + %" PRId64 ", %" PRId64 " * sizeof(float));", u->from,
                 count);
            emit(e, "a%d += t * VLOAD%s(wp + %" PRId64 ");", k, wide(u), u->from);
            emit(e, "}");
        }
        emit(e, "}");
        emit(e, "}");
        for (int k = 0; k < per; k++) {
            char acc[32];
            snprintf(acc, sizeof acc, "a%d", k);
            emit_vstore(e, c, &v[b + k], acc, 0);
        }
        emit(e, "}");
    }
    emit(e, "}");
    emit(e, "}");
    free(v);
}

/* L_pad: the zero-bordered copy a padded Conv reads, hp x wp x ci with the
 * input at row pt, column pl (the rows and columns no window reaches left
 * out; the slack past its end is not written). */
static void emit_pad(Emitter *e, const char *L, const ConvStep *c, const char *type)
{
    int64_t rows = c->hp - c->pt < c->h ? c->hp - c->pt : c->h;
    int64_t cols = c->wp - c->pl < c->w ? c->wp - c->pl : c->w;
    int64_t right = c->wp - c->pl - cols, bottom = c->hp - c->pt - rows;
    emit(e, "/* %s's input with its padding as zeros: %" PRId64 "x%" PRId64 "x%" PRId64
            ", every window inside it */", L, c->hp, c->wp, c->ci);
    emit(e, "static void %s_pad(const %s *restrict x, %s *restrict p)", L, type, type);
    emit(e, "{");
    if (c->pt > 0)
        emit(e, "memset(p, 0, %" PRId64 " * sizeof(%s));", c->pt * c->wp * c->ci, type);
    emit_for(e, "r", rows);
    emit(e, "%s *row = p + (r + %" PRId64 ") * %" PRId64 ";", type, c->pt, c->wp * c->ci);
    if (c->pl > 0)
        emit(e, "memset(row, 0, %" PRId64 " * sizeof(%s));", c->pl * c->ci, type);
    emit(e, "memcpy(row + %" PRId64 ", x + r * %" PRId64 ", %" PRId64 " * sizeof(%s));",
         c->pl * c->ci, c->w * c->ci, cols * c->ci, type);
    if (right > 0)
        emit(e, "memset(row + %" PRId64 ", 0, %" PRId64 " * sizeof(%s));",
             (c->pl + cols) * c->ci, right * c->ci, type);
    emit(e, "}");
    if (bottom > 0)
        emit(e, "memset(p + %" PRId64 ", 0, %" PRId64 " * sizeof(%s));",
             (c->pt + rows) * c->wp * c->ci, bottom * c->wp * c->ci, type);
    emit(e, "}");
    emit_blank(e);
}

ConvStep emit_pad_view(Emitter *e, const char *L, const ConvStep *step, const char *type)
{
    ConvStep view = *step;
    if (step->padded) {
        emit_pad(e, L, step, type);
        view.h = step->hp;
        view.w = step->wp;
        view.pt = view.pl = 0;
    }
    return view;
}

static void emit_conv(Emitter *e, const Layer *l, const ConvStep *step)
{
    const char *L = l->label;
    const ConvStep padded = emit_pad_view(e, L, step, "float");
    const ConvStep *c = &padded;
    char name[300], dims[160];
    snprintf(name, sizeof name, "%s_w", L);
    snprintf(dims, sizeof dims, "[%" PRId64 "][%" PRId64 "][%" PRId64 "][%" PRId64 "]", c->kh,
             c->kw, c->cig, c->cop);
    emit_array(e, name, dims, c->wt, c->kh * c->kw * c->cig * c->cop);
    snprintf(name, sizeof name, "%s_b", L);
    snprintf(dims, sizeof dims, "[%" PRId64 "]", c->cop);
    emit_array(e, name, dims, c->bias, c->cop);
    emit_blank(e);
    conv_comment(e, l, step);
    emit(e, "static void %s_forward(const float *restrict x, float *restrict y)", L);
    emit(e, "{");
    bool dense = c->groups == 1, depthwise = c->cig == 1 && c->cog == 1;
    if (dense || depthwise) {
        void (*fast)(Emitter *, const ConvStep *, const char *, int) =
            dense ? conv_fast : conv_depthwise_fast;
        emit(e, "#if INFER_WIDE");
        fast(e, c, L, WIDE_VEC);
        emit(e, "#elif INFER_VECTORS");
        fast(e, c, L, VEC);
        emit(e, "#else");
    }
    emit_for(e, "oy", c->oh);
    tap_range(e, "kh", "oy", c->sh, c->pt, c->h, c->kh, c->oh);
    emit_for(e, "ox", c->ow);
    tap_range(e, "kw", "ox", c->sw, c->pl, c->w, c->kw, c->ow);
    emit(e, "float *yp = y + (oy * %" PRId64 " + ox) * %" PRId64 ";", c->ow, c->co);
    if (c->groups > 1)
        conv_grouped(e, c, L);
    else
        conv_portable(e, c, L);
    emit(e, "}");
    emit(e, "}");
    if (dense || depthwise)
        emit(e, "#endif");
    emit(e, "}");
}

/* The window's rows [ky0, ky1) inside the input for output row o. */
static void pool_range(Emitter *e, const char *k, const char *o, int64_t s, int64_t p,
                       int64_t in, int64_t kn, int64_t on)
{
    tap_range(e, k, o, s, p, in, kn, on);
}

static void emit_pool(Emitter *e, const Layer *l, bool max)
{
    const ArgVal *size = layer_arg(l, "size"), *st = layer_arg(l, "stride"),
                 *pad = layer_arg(l, "padding");
    int64_t kh = size->u.size.h, kw = size->u.size.w, sh = st->u.size.h, sw = st->u.size.w;
    int64_t pt = pad->u.pad.top, pl = pad->u.pad.left;
    int64_t h = l->in.h, w = l->in.w, c = l->in.c, oh = l->out.h, ow = l->out.w;
    emit(e, "/* %s: %s %" PRId64 "x%" PRId64 ", stride %" PRId64 "x%" PRId64 ", padding %"
            PRId64 " top %" PRId64 " left: %" PRId64 "x%" PRId64 "x%" PRId64 " -> %" PRId64 "x%"
            PRId64 "x%" PRId64 " (%s) */", l->label, l->kind->name, kh, kw, sh, sw, pt, pl, h,
         w, c, oh, ow, c, max ? "the padding never wins" : "the mean of the taps inside the input");
    emit(e, "static void %s_forward(const float *restrict x, float *restrict y)", l->label);
    emit(e, "{");
    emit_for(e, "oy", oh);
    pool_range(e, "kh", "oy", sh, pt, h, kh, oh);
    emit_for(e, "ox", ow);
    pool_range(e, "kw", "ox", sw, pl, w, kw, ow);
    emit(e, "float *yp = y + (oy * %" PRId64 " + ox) * %" PRId64 ";", ow, c);
    if (max) {
        emit_window_at(e, "float", "first", "kh0", "kw0", "", sh, pt, w, sw, pl, c);
        emit(e, "for (int c = 0; c < %" PRId64 "; c++) yp[c] = first[c];", c);
    } else {
        emit(e, "for (int c = 0; c < %" PRId64 "; c++) yp[c] = 0;", c);
    }
    emit(e, "for (int kh = kh0; kh < kh1; kh++) {");
    emit(e, "for (int kw = kw0; kw < kw1; kw++) {");
    emit_window_at(e, "float", "xp", "kh", "kw", "", sh, pt, w, sw, pl, c);
    if (max)
        emit(e, "for (int c = 0; c < %" PRId64 "; c++) yp[c] = xp[c] > yp[c] ? xp[c] : yp[c];",
             c);
    else
        emit(e, "for (int c = 0; c < %" PRId64 "; c++) yp[c] += xp[c];", c);
    emit(e, "}");
    emit(e, "}");
    if (!max) {
        emit(e, "const float count = (float)((kh1 - kh0) * (kw1 - kw0));");
        emit(e, "for (int c = 0; c < %" PRId64 "; c++) yp[c] /= count;", c);
    }
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
}

static void emit_globalavg(Emitter *e, const Layer *l)
{
    int64_t hw = l->in.h * l->in.w, c = l->in.c;
    emit(e, "/* %s: GlobalAvgPool %" PRId64 "x%" PRId64 "x%" PRId64 " -> %" PRId64
            ": the mean of each channel */", l->label, l->in.h, l->in.w, c, c);
    emit(e, "static void %s_forward(const float *restrict x, float *restrict y)", l->label);
    emit(e, "{");
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) y[c] = 0;", c);
    emit(e, "for (int p = 0; p < %" PRId64 "; p++)", hw);
    emit(e, "    for (int c = 0; c < %" PRId64 "; c++) y[c] += x[p * %" PRId64 " + c];", c, c);
    emit(e, "for (int c = 0; c < %" PRId64 "; c++) y[c] /= %" PRId64 ";", c, hw);
    emit(e, "}");
}

/* y[j] from x[j]: the trainer's formulas, in float. */
static const char *activation_formula(const Layer *l, char *buf, size_t size)
{
    if (is_kind(l, &layer_relu))
        return "x[j] < 0 ? 0 : x[j]";
    if (is_kind(l, &layer_leakyrelu)) {
        double a = layer_arg(l, "alpha")->u.f;
        if (isfinite(a))
            snprintf(buf, size, "x[j] > 0 ? x[j] : %.9gf * x[j]", a);
        else
            snprintf(buf, size, "x[j] > 0 ? x[j] : (float)HUGE_VAL * x[j]");
        return buf;
    }
    if (is_kind(l, &layer_sigmoid))
        return "1 / (1 + expf(-x[j]))";
    if (is_kind(l, &layer_tanh))
        return "tanhf(x[j])";
    if (is_kind(l, &layer_silu))
        return "x[j] / (1 + expf(-x[j]))";
    if (is_kind(l, &layer_gelu))
        return "0.5f * x[j] * (1 + erff(x[j] * 0.70710678118654752440f))";
    fprintf(stderr, "cnnc: internal error: no inference code for %s\n", l->kind->name);
    exit(2);
}

static void emit_activation(Emitter *e, const Layer *l)
{
    char buf[128];
    const char *f = activation_formula(l, buf, sizeof buf);
    emit(e, "/* %s: %s, elementwise over %" PRId64 " values */", l->label, l->kind->name,
         shape_elems(l->in));
    emit(e, "static void %s_forward(const float *restrict x, float *restrict y)", l->label);
    emit(e, "{");
    emit(e, "for (int j = 0; j < %" PRId64 "; j++) y[j] = %s;", shape_elems(l->in), f);
    emit(e, "}");
}

static void emit_scale(Emitter *e, const Layer *l, const Step *s)
{
    char name[300], dims[64];
    int64_t c = l->in.c, rows = l->in.h * l->in.w;
    snprintf(dims, sizeof dims, "[%" PRId64 "]", c);
    snprintf(name, sizeof name, "%s_scale", l->label);
    emit_array(e, name, dims, s->scale, c);
    snprintf(name, sizeof name, "%s_shift", l->label);
    emit_array(e, name, dims, s->shift, c);
    emit(e, "/* %s: BatchNorm with the running statistics, y = x * scale[c] + shift[c], "
            "scale = weight / sqrt(running_var + eps), shift = bias - running_mean * scale */",
         l->label);
    emit(e, "static void %s_forward(const float *restrict x, float *restrict y)", l->label);
    emit(e, "{");
    emit(e, "for (int r = 0; r < %" PRId64 "; r++)", rows);
    emit(e, "    for (int c = 0; c < %" PRId64 "; c++) y[r * %" PRId64 " + c] = x[r * %" PRId64
            " + c] * %s_scale[c] + %s_shift[c];", c, c, c, l->label, l->label);
    emit(e, "}");
}

/* The parameter list of a merge layer: x0, x1, ... */
static void emit_merge_begin(Emitter *e, const Layer *l)
{
    char args[CNNC_MAX_INPUTS * 32] = "";
    size_t used = 0;
    for (int k = 0; k < l->ninputs; k++)
        used += (size_t)snprintf(args + used, sizeof args - used, "const float *restrict x%d, ",
                                 k);
    emit(e, "static void %s_forward(%sfloat *restrict y)", l->label, args);
    emit(e, "{");
}

static void emit_add(Emitter *e, const Layer *l)
{
    emit(e, "/* %s: Add of %d tensors of %" PRId64 " values */", l->label, l->ninputs,
         shape_elems(l->out));
    emit_merge_begin(e, l);
    char sum[CNNC_MAX_INPUTS * 16] = "";
    size_t used = 0;
    for (int k = 0; k < l->ninputs; k++)
        used += (size_t)snprintf(sum + used, sizeof sum - used, "%sx%d[j]", k ? " + " : "", k);
    emit(e, "for (int j = 0; j < %" PRId64 "; j++) y[j] = %s;", shape_elems(l->out), sum);
    emit(e, "}");
}

static void emit_concat(Emitter *e, const Layer *l)
{
    int64_t rows = l->out.h * l->out.w, c = l->out.c;
    emit(e, "/* %s: Concat along the channels: each of the %" PRId64 " pixels gets the "
            "inputs' channels one after another */", l->label, rows);
    emit_merge_begin(e, l);
    emit(e, "for (int r = 0; r < %" PRId64 "; r++) {", rows);
    int64_t at = 0;
    for (int k = 0; k < l->ninputs; k++) {
        int64_t ck = l->ins[k].c;
        emit(e, "memcpy(y + r * %" PRId64 " + %" PRId64 ", x%d + r * %" PRId64 ", %" PRId64
                " * sizeof(float));", c, at, k, ck, ck);
        at += ck;
    }
    emit(e, "}");
    emit(e, "}");
}

static void emit_softmax(Emitter *e, const Layer *l)
{
    int64_t k = l->in.c;
    emit(e, "/* %s: Softmax over %" PRId64 " values: exp(x - max x) / sum of those */",
         l->label, k);
    emit(e, "static void %s_forward(const float *restrict x, float *restrict y)", l->label);
    emit(e, "{");
    emit(e, "float max = x[0], sum = 0;");
    emit(e, "for (int j = 1; j < %" PRId64 "; j++) max = x[j] > max ? x[j] : max;", k);
    emit(e, "for (int j = 0; j < %" PRId64 "; j++) sum += y[j] = expf(x[j] - max);", k);
    emit(e, "for (int j = 0; j < %" PRId64 "; j++) y[j] /= sum;", k);
    emit(e, "}");
}

static void emit_flatten(Emitter *e, const Layer *l)
{
    int64_t hw = l->in.h * l->in.w, c = l->in.c;
    emit(e, "/* %s: Flatten %" PRId64 "x%" PRId64 "x%" PRId64 " in the trainer's (PyTorch's) "
            "channel-major order: y[c*%" PRId64 " + p] = x[p*%" PRId64 " + c] */", l->label,
         l->in.h, l->in.w, c, hw, c);
    emit(e, "static void %s_forward(const float *restrict x, float *restrict y)", l->label);
    emit(e, "{");
    emit(e, "for (int p = 0; p < %" PRId64 "; p++)", hw);
    emit(e, "    for (int c = 0; c < %" PRId64 "; c++) y[c * %" PRId64 " + p] = x[p * %" PRId64
            " + c];", c, hw, c);
    emit(e, "}");
}

static void emit_layer(Emitter *e, const Layer *l, const Step *s)
{
    switch (s->op) {
    case OP_ALIAS: return;
    case OP_CONV: emit_conv(e, l, &s->conv); break;
    case OP_MAXPOOL: emit_pool(e, l, true); break;
    case OP_AVGPOOL: emit_pool(e, l, false); break;
    case OP_GLOBALAVG: emit_globalavg(e, l); break;
    case OP_ACT: emit_activation(e, l); break;
    case OP_SCALE: emit_scale(e, l, s); break;
    case OP_ADD: emit_add(e, l); break;
    case OP_CONCAT: emit_concat(e, l); break;
    case OP_SOFTMAX: emit_softmax(e, l); break;
    case OP_FLATTEN: emit_flatten(e, l); break;
    }
    emit_blank(e);
}

/* ------------------------------------------------------------------------
 * Writing: the file
 */

static void emit_prelude(Emitter *e, const Network *n, const Plan *p, const InferOptions *o)
{
    const char *P = o->prefix;
    emit(e, "/* %s inference: generated by cnnc from %s with the weights of %s.", P, o->source,
         o->weights_path);
    emit(e, " *");
    emit(e, " * One sample in, its outputs out; C99 with only <stddef.h>, <stdint.h>,");
    emit(e, " * <string.h> and <math.h>; no allocation, no I/O, no global state but the");
    emit(e, " * static arena used when work is NULL (then not reentrant).");
    emit(e, " *");
    emit(e, " *   int %s_predict(const float *input, float *output, void *work);", P);
    emit(e, " *     input   %s_INPUT_SIZE floats, HWC order: pixels / 255, as a float32", P);
    emit(e, " *             data file holds them");
    emit(e, " *     output  %s_OUTPUT_SIZE floats: the last layer's (probabilities after", P);
    emit(e, " *             Softmax)");
    emit(e, " *     work    %s_WORK_BYTES bytes aligned for float, or NULL", P);
    emit(e, " *     returns the index of the largest output (the first of equal ones)");
    emit(e, " *");
    emit(e, " * Compiled with GCC or Clang for a target with AVX or NEON the convolutions");
    emit(e, " * use vectors of 8 floats (16 with AVX-512); elsewhere, or with %s_PORTABLE", P);
    emit(e, " * defined, plain loops. */");
    emit(e, "#include <stddef.h>");
    emit(e, "#include <stdint.h>");
    emit(e, "#include <string.h>");
    emit(e, "#include <math.h>");
    emit_blank(e);
    emit(e, "#define %s_INPUT_SIZE %" PRId64, P, shape_elems(n->input));
    emit(e, "#define %s_OUTPUT_SIZE %" PRId64, P, shape_elems(n->tensors[n->nlayers].shape));
    emit(e, "#define %s_WORK_BYTES %" PRId64, P, (p->arena > 0 ? p->arena : 1) * 4);
    emit_blank(e);
    emit(e, "int %s_predict(const float *input, float *output, void *work);", P);
    emit_blank(e);
    emit(e, "/* Vectors where the target has registers for them: on x86-64 without AVX");
    emit(e, " * (SSE only) GCC's 8-float vectors ran 2.5 to 6 times slower than the plain");
    emit(e, " * loops, which it vectorises itself. */");
    emit(e, "#if defined(__GNUC__) && !defined(%s_PORTABLE) && (defined(__AVX__) || "
            "defined(__ARM_NEON))", P);
    emit(e, "#define INFER_VECTORS 1");
    emit(e, "typedef float vfloat __attribute__((vector_size(%d)));", VEC * 4);
    emit(e, "typedef int32_t vint __attribute__((vector_size(%d)));", VEC * 4);
    emit(e, "/* The same vector at any float's alignment, for loads and stores; macros, as");
    emit(e, " * functions taking or returning vectors wider than the target's would change");
    emit(e, " * their ABI (GCC's -Wpsabi). */");
    emit(e, "typedef float vfloat_u __attribute__((vector_size(%d), aligned(4), may_alias));",
         VEC * 4);
    emit(e, "#define VLOAD(p) (*(const vfloat_u *)(const void *)(p))");
    emit(e, "#define VSTORE(p, v) (*(vfloat_u *)(void *)(p) = (v))");
    emit(e, "#define VSTORE_PART(p, v, count) memcpy((p), &(v), (size_t)(count) * sizeof(float))");
    emit(e, "/* max(v, 0) lane by lane: the lanes not above 0 cleared. */");
    emit(e, "#define VRELU(v) ((vfloat)((vint)(v) & (vint)((v) > (vfloat){0})))");
    emit(e, "#if defined(__AVX512F__)");
    emit(e, "/* AVX-512: vectors of 16 floats too, where a row of channels has them */");
    emit(e, "#define INFER_WIDE 1");
    emit(e, "typedef float vfloat16 __attribute__((vector_size(%d)));", WIDE_VEC * 4);
    emit(e, "typedef int32_t vint16 __attribute__((vector_size(%d)));", WIDE_VEC * 4);
    emit(e, "typedef float vfloat16_u __attribute__((vector_size(%d), aligned(4), may_alias));",
         WIDE_VEC * 4);
    emit(e, "#define VLOAD16(p) (*(const vfloat16_u *)(const void *)(p))");
    emit(e, "#define VSTORE16(p, v) (*(vfloat16_u *)(void *)(p) = (v))");
    emit(e, "#define VRELU16(v) ((vfloat16)((vint16)(v) & (vint16)((v) > (vfloat16){0})))");
    emit(e, "#endif");
    emit(e, "#else");
    emit(e, "#define INFER_VECTORS 0");
    emit(e, "#endif");
    emit(e, "#ifndef INFER_WIDE");
    emit(e, "#define INFER_WIDE 0");
    emit(e, "#endif");
    emit_blank(e);
}

/* "arena + OFF" or "input" for tensor t. */
static const char *tensor_ref(const Plan *p, const Network *n, int t, char *buf, size_t size)
{
    int r = p->root[t];
    if (r == INPUT_TENSOR)
        return "in";
    snprintf(buf, size, "a + %" PRId64, p->at[n->tensors[r].producer].off);
    return buf;
}

/* "const float *in": the input, or, for Input(mean=, std=), its copy
 * normalised as the trainer does it: (x - mean[c]) / std[c] in float. */
static void emit_normalise(Emitter *e, const Network *n, const char *P)
{
    if (!n->norm_channels) {
        emit(e, "const float *in = input;");
        return;
    }
    char mean[CNNC_MAX_LIST * 28] = "", std[CNNC_MAX_LIST * 28] = "";
    size_t um = 0, us = 0;
    for (int c = 0; c < n->norm_channels; c++) {
        um += (size_t)snprintf(mean + um, sizeof mean - um, "%s%.9gf", c ? ", " : "",
                               (double)(float)n->input_mean[c]);
        us += (size_t)snprintf(std + us, sizeof std - us, "%s%.9gf", c ? ", " : "",
                               (double)(float)n->input_std[c]);
    }
    emit(e, "/* Input(mean=, std=): (x - mean[c]) / std[c], as the trainer */");
    emit(e, "static const float mean[%d] = {%s};", n->norm_channels, mean);
    emit(e, "static const float std[%d] = {%s};", n->norm_channels, std);
    emit(e, "static float %s_normal[%s_INPUT_SIZE];", P, P);
    emit(e, "for (int j = 0; j < %s_INPUT_SIZE; j++)", P);
    emit(e, "    %s_normal[j] = (input[j] - mean[j %% %d]) / std[j %% %d];", P, n->norm_channels,
         n->norm_channels);
    emit(e, "const float *in = %s_normal;", P);
}

static void emit_predict(Emitter *e, const Network *n, const Plan *p, const InferOptions *o)
{
    const char *P = o->prefix;
    emit(e, "static float %s_arena[%" PRId64 "];", P, p->arena > 0 ? p->arena : 1);
    emit_blank(e);
    emit(e, "int %s_predict(const float *input, float *output, void *work)", P);
    emit(e, "{");
    emit(e, "float *a = work ? (float *)work : %s_arena;", P);
    emit(e, "(void)a;");
    emit_normalise(e, n, P);
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        if (p->at[i].op == OP_ALIAS) {
            emit(e, "/* %s: %s, no code */", l->label, l->kind->name);
            continue;
        }
        char args[CNNC_MAX_INPUTS * 48] = "", buf[48];
        size_t used = 0;
        for (int k = 0; k < l->ninputs; k++)
            used += (size_t)snprintf(args + used, sizeof args - used, "%s, ",
                                     tensor_ref(p, n, l->inputs[k], buf, sizeof buf));
        if (p->at[i].op == OP_CONV && p->at[i].conv.padded) {
            emit(e, "%s_pad(%sa + %" PRId64 ");", l->label, args, p->at[i].conv.pad_off);
            snprintf(args, sizeof args, "a + %" PRId64 ", ", p->at[i].conv.pad_off);
        }
        emit(e, "%s_forward(%sa + %" PRId64 ");", l->label, args, p->at[i].off);
    }
    char buf[48];
    emit(e, "memcpy(output, %s, %s_OUTPUT_SIZE * sizeof(float));",
         tensor_ref(p, n, n->nlayers, buf, sizeof buf), P);
    emit(e, "int best = 0;");
    emit(e, "for (int j = 1; j < %s_OUTPUT_SIZE; j++)", P);
    emit(e, "    if (output[j] > output[best]) best = j;");
    emit(e, "return best;");
    emit(e, "}");
}

bool emit_inference(FILE *out, const Network *n, const Weights *w, const InferOptions *o)
{
    Plan p = plan_steps(n, w, &(Placing){.pad_grouped = true});
    Emitter e = {.out = out, .net = n, .real_size = 4};
    emit_prelude(&e, n, &p, o);
    for (int i = 0; i < n->nlayers; i++)
        emit_layer(&e, &n->layers[i], &p.at[i]);
    emit_predict(&e, n, &p, o);
    plan_release(n, &p);
    return !ferror(out);
}
