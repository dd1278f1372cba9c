/* emit.c: Network -> the C of its trainer.
 *
 * The file it writes, top to bottom:
 *   the prelude (real type, OpenMP macros), the parameter offsets, the
 *   workspace layout, each layer's forward and backward side by side, the
 *   network's forward / loss / backward / update, the parameter table and the
 *   cnnrt_model that runtime/cnnrt.h describes, and main().
 * Layer bodies come from each kind's emit hook; this file knows no kind but
 * through LayerKind, except for the loss, which fuses Softmax with
 * cross-entropy as the language defines.
 *
 * Names: everything of a layer is LABEL_forward, LABEL_backward,
 * LABEL_weight, LABEL_bias, LABEL_OUT, LABEL_SCRATCH. The driver's own names
 * (forward_all, loss_all, net_params, ...) end in none of those suffixes, so
 * no label, not even one that is a C keyword, can collide with them. */
#include "config.h"
#include "cnnc.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Writing lines
 */

/* Whether a line ends in '{', before any trailing comment. */
static bool opens_block(const char *line)
{
    size_t len = strlen(line);
    const char *comment = strstr(line, "/*");
    if (comment && strstr(comment, "*/") == line + len - 2)
        len = (size_t)(comment - line);
    while (len > 0 && line[len - 1] == ' ')
        len--;
    return len > 0 && line[len - 1] == '{';
}

void emit(Emitter *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *line = xvasprintf(fmt, ap);
    va_end(ap);
    if (line[0] == '}' && e->indent > 0)
        e->indent--;
    if (line[0] != '\0')
        for (int i = 0; i < e->indent; i++)
            fputs("    ", e->out);
    fputs(line, e->out);
    fputc('\n', e->out);
    if (opens_block(line))
        e->indent++;
    free(line);
}

void emit_blank(Emitter *e)
{
    fputc('\n', e->out);
}

void emit_for(Emitter *e, const char *var, int64_t limit)
{
    emit(e, "for (int %s = 0; %s < %" PRId64 "; %s++) {", var, var, limit, var);
}

/* The vector tiles of Conv and Dense: "TYPE w0, w1;" then
 * "VLOAD(w0, BASE + c0); VLOAD(w1, BASE + c1);" for nv vectors. */
void emit_vloads(Emitter *e, const char *type, const char *name, int nv, const char *base)
{
    char line[512];
    size_t len = (size_t)snprintf(line, sizeof line, "%s", type);
    for (int v = 0; v < nv; v++)
        len += (size_t)snprintf(line + len, sizeof line - len, "%s %s%d", v ? "," : "", name, v);
    emit(e, "%s;", line);
    for (int v = 0; v < nv; v++)
        emit(e, "VLOAD(%s%d, %s + c%d);", name, v, base, v);
}

/* a{r}_{v} += PRE{r}POST * VEC{v}: a line per tile row r, nv vectors. */
void emit_fmas(Emitter *e, int rows, int nv, const char *pre, const char *post, const char *vec)
{
    for (int r = 0; r < rows; r++) {
        char line[512];
        size_t len = 0;
        for (int v = 0; v < nv; v++)
            len += (size_t)snprintf(line + len, sizeof line - len, "%sa%d_%d += %s%d%s * %s%d;",
                                    v ? " " : "", r, v, pre, r, post, vec, v);
        emit(e, "%s", line);
    }
}

void emit_mask_type(Emitter *e, const char *type)
{
    emit(e, "typedef __typeof__((%s){0} < (%s){0}) %s_mask; /* a comparison's lanes */", type,
         type, type);
}

/* The uniform signatures (see cnnc.h), written once for every kind. */
void emit_forward_begin(Emitter *e, const LayerCode *c)
{
    if (c->in_place)
        emit(e, "static void %s_forward(cnnrt_ctx *ctx, int n, const real *x, real *y) "
                "/* y == x */", c->name);
    else
        emit(e, "static void %s_forward(cnnrt_ctx *ctx, int n, const real *restrict x, "
                "real *restrict y)", c->name);
    emit(e, "{");
}

void emit_backward_begin(Emitter *e, const LayerCode *c)
{
    emit(e, "static void %s_backward(cnnrt_ctx *ctx, int n, const real *restrict x, "
            "const real *restrict y, const real *restrict dy, real *restrict dx)", c->name);
    emit(e, "{");
}

void emit_backward_phases(Emitter *e, const LayerCode *c, BackwardPhase *weights,
                          BackwardPhase *data, const void *geom)
{
    const char *L = c->name;
    emit(e, "static NOINLINE void %s_backward_weights(cnnrt_ctx *ctx, int n, "
            "const real *restrict x, const real *restrict dy)", L);
    emit(e, "{");
    weights(e, c, geom);
    emit(e, "}");
    emit_blank(e);
    if (c->need_dx) {
        emit(e, "static NOINLINE void %s_backward_data(cnnrt_ctx *ctx, int n, "
                "const real *restrict x, const real *restrict dy, real *restrict dx)", L);
        emit(e, "{");
        emit(e, "(void)x;");
        data(e, c, geom);
        emit(e, "}");
        emit_blank(e);
    }
    emit_backward_begin(e, c);
    emit(e, "(void)y;");
    emit(e, "%s_backward_weights(ctx, n, x, dy);", L);
    if (c->need_dx)
        emit(e, "%s_backward_data(ctx, n, x, dy, dx);", L);
    else
        emit(e, "(void)dx; /* no layer before it learns */");
    emit(e, "}");
}

void emit_backward_nothing(Emitter *e, const LayerCode *c)
{
    emit_comment(e, "no layer before it learns: nothing to do");
    emit_backward_begin(e, c);
    emit(e, "(void)ctx;");
    emit(e, "(void)n;");
    emit(e, "(void)x;");
    emit(e, "(void)y;");
    emit(e, "(void)dy;");
    emit(e, "(void)dx;");
    emit(e, "}");
}

void emit_comment(Emitter *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = xvasprintf(fmt, ap);
    va_end(ap);
    emit(e, "/* %s */", text);
    free(text);
}

/* ------------------------------------------------------------------------
 * The plan (plan.c) decides where every buffer lives
 */

static bool has_params(const Layer *l)
{
    return l->nparams > 0;
}

static bool fused_softmax(const Network *n)
{
    return n->train.loss == LOSS_CROSS_ENTROPY;
}

double network_train_flops(const Network *n)
{
    double total = 0;
    bool params_before = false;
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        double f = l->kind->flops ? l->kind->flops(l) : 0;
        total += f;                      /* forward */
        if (has_params(l))
            total += f;                  /* weight gradients */
        if (params_before)
            total += f;                  /* input gradients */
        params_before |= has_params(l);
    }
    return total;
}

/* ------------------------------------------------------------------------
 * The file's parts
 */

static void emit_prelude(Emitter *e, const EmitOptions *o)
{
    const Network *n = e->net;
    emit(e, "/* %s.c: the trainer of %s, generated by cnnc %s. */", n->name,
         n->source_name, PACKAGE_VERSION);
    emit(e, "/* Build: cc -O3 -march=native %s.c $(pkg-config --cflags --libs cnnrt) -o %s */",
         n->name, n->name);
    emit(e, "#include <math.h>");
    emit(e, "#include <stdint.h>");
    emit(e, "#include <string.h>");
    emit(e, "#include \"cnnrt.h\"");
    emit_blank(e);
    emit(e, "typedef %s real;", o->real_size == 8 ? "double" : "float");
    emit(e, "#define REAL_SIZE %" PRId64, o->real_size);
    emit(e, "#define EXP %s", o->real_size == 8 ? "exp" : "expf");
    emit(e, "#define LOG %s", o->real_size == 8 ? "log" : "logf");
    emit(e, "#define TANH %s", o->real_size == 8 ? "tanh" : "tanhf");
    emit(e, "#define SQRT %s", o->real_size == 8 ? "sqrt" : "sqrtf");
    emit_blank(e);
    emit(e, "/* Loops over samples or rows run on ctx->threads OpenMP threads; every");
    emit(e, "   value is computed by one thread in a fixed order, so results do not");
    emit(e, "   depend on the thread count. */");
    emit(e, "#ifdef _OPENMP");
    emit(e, "#include <omp.h>");
    emit(e, "#define PARALLEL_FOR _Pragma(\"omp parallel for schedule(static)\")");
    emit(e, "/* One thread per lane (see run_lanes), each its own team for the loops */");
    emit(e, "#define LANES_FOR _Pragma(\"omp parallel for schedule(static, 1) num_threads(team)\")");
    emit(e, "#define SET_THREADS(ctx) (omp_set_max_active_levels(2), "
            "omp_set_num_threads((ctx)->threads > 0 ? (ctx)->threads : 1))");
    emit(e, "#else");
    emit(e, "#define PARALLEL_FOR");
    emit(e, "#define LANES_FOR");
    emit(e, "#define SET_THREADS(ctx) ((void)(ctx))");
    emit(e, "#endif");
    emit_blank(e);
    emit(e, "/* Vectors: CNNC_VL reals fill the target's widest vector register");
    emit(e, "   (AVX-512, AVX, else 16 bytes: SSE2, NEON or plain C). */");
    emit(e, "#if defined(__AVX512F__)");
    emit(e, "#define CNNC_VEC_BYTES 64");
    emit(e, "#elif defined(__AVX__)");
    emit(e, "#define CNNC_VEC_BYTES 32");
    emit(e, "#else");
    emit(e, "#define CNNC_VEC_BYTES 16");
    emit(e, "#endif");
    emit(e, "#define CNNC_VL (CNNC_VEC_BYTES / REAL_SIZE)");
    emit(e, "/* The first element of vector j (vl lanes) of a row of c >= vl elements:");
    emit(e, "   the last vector ends at c, overlapping its neighbour. */");
    emit(e, "#define VEC_AT(j, vl, c) ((j) * (vl) < (c) - (vl) ? (j) * (vl) : (c) - (vl))");
    emit(e, "/* Unaligned vector load and store. */");
    emit(e, "#define VLOAD(v, p) memcpy(&(v), (p), sizeof(v))");
    emit(e, "#define VSTORE(p, v) memcpy((p), &(v), sizeof(v))");
    emit_blank(e);
    emit(e, "/* The phases of a backward stay functions of their own, which profiles name.");
    emit(e, "   MAYBE_UNUSED marks the helpers that only some networks call. */");
    emit(e, "#if defined(__GNUC__)");
    emit(e, "#define NOINLINE __attribute__((noinline))");
    emit(e, "#define MAYBE_UNUSED __attribute__((unused))");
    emit(e, "#else");
    emit(e, "#define NOINLINE");
    emit(e, "#define MAYBE_UNUSED");
    emit(e, "#endif");
    emit_blank(e);
    emit(e, "static inline real *param(cnnrt_ctx *ctx) { return (real *)ctx->params; }");
    emit(e, "static inline real *grad(cnnrt_ctx *ctx) { return (real *)ctx->grads; }");
    emit(e, "static inline void *work(cnnrt_ctx *ctx, size_t off) "
            "{ return (char *)ctx->workspace + off; }");
    emit_blank(e);
}

/* The lanes (plan.c): a context for each, and the loop that deals the
 * micro-batches of n samples out to them. */
static void emit_lanes(Emitter *e)
{
    emit_comment(e, "Lane l's context: ctx with the lane's workspace and gradients, and THREADS");
    emit_comment(e, "for the loops of the layers.");
    emit(e, "static cnnrt_ctx lane_ctx(const cnnrt_ctx *ctx, int l, int threads)");
    emit(e, "{");
    emit(e, "cnnrt_ctx lane = *ctx;");
    emit(e, "lane.workspace = (char *)ctx->workspace + (size_t)l * LANE_BYTES;");
    emit(e, "if (l > 0)");
    emit(e, "    lane.grads = (real *)work((cnnrt_ctx *)ctx, LANE_GRADS) + (size_t)(l - 1) * PARAM_COUNT;");
    emit(e, "lane.threads = threads;");
    emit(e, "return lane;");
    emit(e, "}");
    emit_blank(e);
    emit_comment(e, "What a lane does with samples i0..i0+m-1 of the batch of ctx (home).");
    emit(e, "typedef void micro_job(cnnrt_ctx *lane, cnnrt_ctx *home, int l, int i0, int m, void *arg);");
    emit_blank(e);
    emit_comment(e, "Lane l's micro-batches of n samples, k = l, l + LANES, ...: JOB on each.");
    emit_comment(e, "ZERO: the lane's gradients start at zero.");
    emit(e, "static void run_lane(cnnrt_ctx *ctx, int l, int threads, int n, int zero, "
            "micro_job *job, void *arg)");
    emit(e, "{");
    emit(e, "const int micros = (n + MICRO - 1) / MICRO;");
    emit(e, "cnnrt_ctx lane = lane_ctx(ctx, l, threads);");
    emit(e, "SET_THREADS(&lane);");
    emit(e, "net_state *st = work(&lane, 0);");
    emit(e, "st->micro_n = 0;");
    emit(e, "if (zero) memset(lane.grads, 0, sizeof(real) * PARAM_COUNT);");
    emit(e, "for (int k = l; k < micros; k += LANES) {");
    emit(e, "const int i0 = k * MICRO;");
    emit(e, "st->first = k == l;");
    emit(e, "st->last = k + LANES >= micros;");
    emit(e, "job(&lane, ctx, l, i0, n - i0 < MICRO ? n - i0 : MICRO, arg);");
    emit(e, "}");
    emit(e, "}");
    emit_blank(e);
    emit_comment(e, "JOB on each micro-batch of n samples, micro-batch k on lane k mod LANES:");
    emit_comment(e, "the lanes side by side, a thread each (a team each where there are more");
    emit_comment(e, "threads), or one after the other on one thread, whose loops then take");
    emit_comment(e, "all the threads.");
    emit(e, "static void run_lanes(cnnrt_ctx *ctx, int n, int zero, micro_job *job, void *arg)");
    emit(e, "{");
    emit(e, "const int threads = ctx->threads > 0 ? ctx->threads : 1;");
    emit(e, "const int team = threads < LANES ? threads : LANES;");
    emit(e, "if (team > 1) {");
    emit(e, "LANES_FOR");
    emit(e, "for (int l = 0; l < LANES; l++)");
    emit(e, "    run_lane(ctx, l, threads / LANES > 1 ? threads / LANES : 1, n, zero, job, arg);");
    emit(e, "} else {");
    emit(e, "for (int l = 0; l < LANES; l++)");
    emit(e, "    run_lane(ctx, l, threads, n, zero, job, arg);");
    emit(e, "}");
    emit(e, "SET_THREADS(ctx);");
    emit(e, "}");
    emit_blank(e);
    emit_comment(e, "grad(ctx) += the gradients of lanes 1.., in lane order.");
    emit(e, "static void add_lanes(cnnrt_ctx *ctx)");
    emit(e, "{");
    emit(e, "real *restrict g = grad(ctx);");
    emit(e, "for (int l = 1; l < LANES; l++) {");
    emit(e, "const real *restrict gl = (const real *)work(ctx, LANE_GRADS) + (size_t)(l - 1) * PARAM_COUNT;");
    emit(e, "PARALLEL_FOR");
    emit(e, "for (long j = 0; j < PARAM_COUNT; j++) g[j] += gl[j];");
    emit(e, "}");
    emit(e, "}");
    emit_blank(e);
}

/* Whether layer i's output buffer holds one sample: it streams, or writes
 * over the output of one that does. */
static bool one_sample(const MemPlan *lay, int i)
{
    return lay->at[i].streamed || (lay->at[i].in_place && lay->at[i - 1].streamed);
}

static void emit_offsets(Emitter *e, const MemPlan *lay)
{
    const Network *n = e->net;
    emit_comment(e, "Parameter tensors: offsets in reals into the parameter (and gradient) block.");
    emit(e, "enum {");
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        for (int p = 0; p < l->nparams; p++)
            emit(e, "%s_%s = %" PRId64 ",", l->label, l->params[p].suffix, lay->at[i].param_off[p]);
    }
    emit(e, "PARAM_COUNT = %" PRId64, lay->params);
    emit(e, "};");
    emit_blank(e);
    emit_comment(e, "The batch goes through the layers MICRO samples at a time.");
    emit(e, "#define BATCH %" PRId64, lay->batch);
    emit(e, "#define MICRO %" PRId64, lay->micro);
    emit(e, "#define INPUT_SIZE %" PRId64 " /* reals per sample in */", shape_elems(n->input));
    emit(e, "#define OUTPUTS %" PRId64 " /* reals per sample out */",
         shape_elems(n->layers[n->nlayers - 1].out));
    emit_comment(e, "Micro-batch k of a step runs on lane k mod LANES, each lane in a workspace");
    emit_comment(e, "of its own (the offsets below are into it) and, but lane 0, gradients of");
    emit_comment(e, "its own; the lanes' gradients are added in lane order. Bytes:");
    emit(e, "#define LANES %d", lay->lanes);
    emit(e, "#define LANE_BYTES %" PRId64 "u", lay->lane_bytes);
    emit(e, "#define LANE_GRADS %" PRId64 "u /* [LANES - 1][PARAM_COUNT] */", lay->lane_grads_off);
    emit(e, "#define WS_BYTES %" PRId64 "u", lay->workspace);
    emit(e, "#define FULL_OUT %" PRId64 "u /* [BATCH][OUTPUTS]: the network's output */",
         lay->full_out_off);
    emit(e, "#define FULL_LOGITS %" PRId64 "u /* [BATCH][OUTPUTS]: a fused Softmax's input */",
         lay->full_logits_off);
    emit(e, "#define FULL_DY %" PRId64 "u /* [BATCH][OUTPUTS]: dL/d what backward starts from */",
         lay->full_dy_off);
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        char sh[64];
        emit(e, "#define %s_OUT %" PRId64 "u /* [%s][%s]%s */", l->label, lay->at[i].out_off,
             one_sample(lay, i) ? "1" : "MICRO", shape_str(l->out, sh, sizeof sh),
             lay->at[i].in_place ? ", over its input" : "");
        emit(e, "#define %s_SCRATCH %" PRId64 "u", l->label, lay->at[i].scratch_off);
    }
    emit(e, "#define DBUF0 %" PRId64 "u", lay->dbuf_off[0]);
    emit(e, "#define DBUF1 %" PRId64 "u", lay->dbuf_off[1]);
    emit(e, "#define LANE_INPUT %" PRId64 "u /* [MICRO][INPUT_SIZE]: a step's input from bytes */",
         lay->input_off);
    emit_blank(e);
    emit_comment(e, "At the start of each lane's workspace: the batch of the last forward (in");
    emit_comment(e, "reals, or in bytes for a step from bytes) and its size (lane 0's), the");
    emit_comment(e, "first sample and the size of the lane's last micro-batch through the");
    emit_comment(e, "layers, whether that is the lane's first or last of the call, and the");
    emit_comment(e, "step's key for Dropout's masks.");
    emit(e, "typedef struct net_state { const real *x; const uint8_t *x8; int n, i0, micro_n, "
            "first, last; uint64_t key; } net_state;");
    emit(e, "_Static_assert(sizeof(net_state) <= %d, \"the workspace header\");",
         (int)lay->full_out_off);
    emit_blank(e);
    emit_comment(e, "The random numbers of sample i of the micro-batch in the layers: a stream");
    emit_comment(e, "of its own for each sample of the step, so they depend on neither the");
    emit_comment(e, "micro-batch, nor the lane, nor the thread count.");
    emit(e, "static inline MAYBE_UNUSED cnnrt_rng sample_rng(cnnrt_ctx *ctx, int i)");
    emit(e, "{");
    emit(e, "const net_state *st = work(ctx, 0);");
    emit(e, "cnnrt_rng r;");
    emit(e, "cnnrt_rng_seed(&r, st->key, (uint64_t)(st->i0 + i));");
    emit(e, "return r;");
    emit(e, "}");
    emit_blank(e);
    emit_comment(e, "Whether the micro-batch in the layers is its lane's first (last) of the");
    emit_comment(e, "call: the layers repack their weights on the first and keep sums of their");
    emit_comment(e, "gradients across micro-batches until the last.");
    emit(e, "static inline MAYBE_UNUSED int lane_first(cnnrt_ctx *ctx) "
            "{ return ((const net_state *)work(ctx, 0))->first; }");
    emit(e, "static inline MAYBE_UNUSED int lane_last(cnnrt_ctx *ctx) "
            "{ return ((const net_state *)work(ctx, 0))->last; }");
    emit_blank(e);
    emit_lanes(e);
}

static void emit_layer(Emitter *e, const Layer *l, const MemPlan *lay, int i)
{
    char in[64], out[64];
    emit(e, "/* ---- %s: %s, %s -> %s %s */", l->label, l->kind->name,
         shape_str(l->in, in, sizeof in), shape_str(l->out, out, sizeof out),
         "------------------------------------------------");
    LayerCode c = {.l = l, .name = l->label, .need_dx = lay->at[i].need_dx,
                   .fused_into_loss = i > lay->backward_from, .batch = lay->micro,
                   .lane_samples = lay->lane_samples,
                   .in_place = lay->at[i].in_place, .relu_out = lay->at[i].relu_out,
                   .relu_in = lay->at[i].relu_in, .forward_fused = lay->at[i].forward_fused,
                   .backward_fused = lay->at[i].backward_fused,
                   .scratch_off = lay->at[i].scratch_off};
    l->kind->emit(e, &c);
    emit_blank(e);
}

/* The input of layer i in a micro-batch: x, or the previous layer's output. */
static void emit_layer_input(Emitter *e, const Network *n, int i, const char *var)
{
    if (i == 0)
        emit(e, "const real *%s = x;", var);
    else
        emit(e, "const real *%s = work(ctx, %s_OUT);", var, n->layers[i - 1].label);
}

/* memcpy of m rows of OUTPUTS reals from FROM to rows i0.. of BUF. */
static void emit_copy_rows(Emitter *e, const char *buf, const char *from)
{
    emit(e, "memcpy((real *)work(home, %s) + (size_t)i0 * OUTPUTS, %s, "
            "sizeof(real) * (size_t)m * OUTPUTS);", buf, from);
}

/* Layer i streams into layer j (plan.c): for each sample, i into its
 * one-sample buffer, then j from there into its row of the micro-batch. */
static void emit_streamed_pair(Emitter *e, int i, int j)
{
    const Network *n = e->net;
    const char *a = n->layers[i].label, *b = n->layers[j].label;
    emit_comment(e, "%s into %s a sample at a time: %s's map stays in cache", a, b, a);
    emit(e, "for (int s = 0; s < m; s++) {");
    if (i == 0)
        emit(e, "const real *in = x + (size_t)s * INPUT_SIZE;");
    else
        emit(e, "const real *in = (const real *)work(ctx, %s_OUT) + (size_t)s * %" PRId64 ";",
             n->layers[i - 1].label, shape_elems(n->layers[i].in));
    emit(e, "%s_forward(ctx, 1, in, work(ctx, %s_OUT));", a, a);
    emit(e, "%s_forward_sample(ctx, s, work(ctx, %s_OUT), (real *)work(ctx, %s_OUT) + "
            "(size_t)s * %" PRId64 ");", b, n->layers[j - 1].label, b,
         shape_elems(n->layers[j].out));
    emit(e, "}");
}

static void emit_forward(Emitter *e, const MemPlan *lay)
{
    const Network *n = e->net;
    emit_comment(e, "The layers forward over samples i0..i0+m-1 (m <= MICRO) at x, in the");
    emit_comment(e, "lane's workspace; the network's output (and logits) go to rows i0.. of");
    emit_comment(e, "the full-batch buffers of home.");
    emit(e, "static void forward_micro(cnnrt_ctx *ctx, cnnrt_ctx *home, int i0, int m, "
            "const real *x)");
    emit(e, "{");
    emit(e, "net_state *st = work(ctx, 0);");
    emit(e, "st->i0 = i0;");
    emit(e, "st->micro_n = m;");
    emit(e, "st->key = ((const net_state *)work(home, 0))->key;");
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        if (lay->at[i].forward_fused) {
            emit_comment(e, "%s: in %s_forward", l->label, n->layers[i - 1].label);
            continue;
        }
        emit(e, "{");
        if (lay->at[i].streamed) {
            int j = lay->at[i + 1].forward_fused ? i + 2 : i + 1;
            emit_streamed_pair(e, i, j);
            emit(e, "}");
            if (j == i + 2)
                emit_comment(e, "%s: in %s_forward", n->layers[i + 1].label, l->label);
            i = j;
            continue;
        }
        emit_layer_input(e, n, i, "in");
        emit(e, "%s_forward(ctx, m, in, work(ctx, %s_OUT));", l->label, l->label);
        emit(e, "}");
    }
    char from[96];
    snprintf(from, sizeof from, "work(ctx, %s_OUT)", n->layers[n->nlayers - 1].label);
    emit_copy_rows(e, "FULL_OUT", from);
    if (fused_softmax(n)) {
        if (n->nlayers >= 2)
            snprintf(from, sizeof from, "work(ctx, %s_OUT)", n->layers[n->nlayers - 2].label);
        else
            snprintf(from, sizeof from, "x");
        emit_copy_rows(e, "FULL_LOGITS", from);
    }
    emit(e, "}");
    emit_blank(e);
    emit(e, "static void forward_job(cnnrt_ctx *lane, cnnrt_ctx *home, int l, int i0, int m, "
            "void *arg)");
    emit(e, "{");
    emit(e, "(void)l, (void)arg;");
    emit(e, "const net_state *st = work(home, 0);");
    emit(e, "forward_micro(lane, home, i0, m, st->x + (size_t)i0 * INPUT_SIZE);");
    emit(e, "}");
    emit_blank(e);
    emit_comment(e, "A forward pass; while training, it draws the key of Dropout's masks.");
    emit(e, "static void forward_all(cnnrt_ctx *ctx, int n, const void *x)");
    emit(e, "{");
    emit(e, "SET_THREADS(ctx);");
    emit(e, "net_state *st = work(ctx, 0);");
    emit(e, "*st = (net_state){.x = x, .n = n, .key = ctx->training ? cnnrt_rng_next(&ctx->rng) : 0};");
    emit(e, "run_lanes(ctx, n, 0, forward_job, NULL);");
    emit(e, "ctx->output = work(ctx, FULL_OUT);");
    emit(e, "}");
    emit_blank(e);
}

/* The divisor that makes the summed loss a mean, in PyTorch's meaning. */
static const char *loss_mean_divisor(const Network *n)
{
    return fused_softmax(n) ? "(double)n" : "((double)n * OUTPUTS)";
}

static void emit_loss(Emitter *e, const MemPlan *lay)
{
    const Network *n = e->net;
    emit_comment(e, "The loss summed over samples i0..i0+m-1 of the last forward, and");
    emit_comment(e, "dy[m][OUTPUTS] = dL/d(output of %s) for them, of the mean over all n.",
                 lay->backward_from >= 0 ? n->layers[lay->backward_from].label : "the input");
    emit(e, "static double loss_rows(cnnrt_ctx *home, int i0, int m, int n, "
            "const int32_t *labels, const void *targets, real *restrict dy)");
    emit(e, "{");
    emit(e, "double total = 0;");
    emit(e, "const real *p = (const real *)work(home, FULL_OUT) + (size_t)i0 * OUTPUTS;");
    if (fused_softmax(n)) {
        emit(e, "(void)targets;");
        emit(e, "/* Softmax and cross-entropy fused: from the logits z, the loss is");
        emit(e, "   logsumexp(z) - z[label] (finite where log(p) would not be) and");
        emit(e, "   dL/dz = (p - onehot(label)) / n. */");
        emit(e, "const real *z = (const real *)work(home, FULL_LOGITS) + (size_t)i0 * OUTPUTS;");
        emit(e, "for (int i = 0; i < m; i++) {");
        emit(e, "const real *zi = z + (size_t)i * OUTPUTS;");
        emit(e, "const int label = labels[i0 + i];");
        emit(e, "real zmax = zi[0];");
        emit(e, "for (int j = 1; j < OUTPUTS; j++) zmax = zi[j] > zmax ? zi[j] : zmax;");
        emit(e, "double sum = 0;");
        emit(e, "for (int j = 0; j < OUTPUTS; j++) sum += exp((double)zi[j] - zmax);");
        emit(e, "total += log(sum) + zmax - zi[label];");
        emit(e, "for (int j = 0; j < OUTPUTS; j++)");
        emit(e, "    dy[(size_t)i * OUTPUTS + j] = (p[(size_t)i * OUTPUTS + j] - (j == label)) "
                "/ (real)n;");
        emit(e, "}");
    } else {
        emit_comment(e, "Squared error over the m*OUTPUTS outputs; the mean over all n*OUTPUTS, "
                        "as PyTorch's MSELoss.");
        emit(e, "const real *t = targets ? (const real *)targets + (size_t)i0 * OUTPUTS : NULL;");
        emit(e, "const size_t count = (size_t)n * OUTPUTS;");
        emit(e, "for (size_t j = 0; j < (size_t)m * OUTPUTS; j++) {");
        emit(e, "real target = t ? t[j] : (real)((int)(j %% OUTPUTS) == labels[i0 + j / OUTPUTS]);");
        emit(e, "real diff = p[j] - target;");
        emit(e, "total += (double)diff * diff;");
        emit(e, "dy[j] = 2 * diff / (real)count;");
        emit(e, "}");
    }
    emit(e, "return total;");
    emit(e, "}");
    emit_blank(e);
    emit_comment(e, "The mean loss of the last forward's n samples; dL/d(output) to FULL_DY.");
    emit(e, "static double loss_all(cnnrt_ctx *ctx, int n, const int32_t *labels, "
            "const void *targets)");
    emit(e, "{");
    emit(e, "return loss_rows(ctx, 0, n, n, labels, targets, work(ctx, FULL_DY)) / %s;",
         loss_mean_divisor(n));
    emit(e, "}");
    emit_blank(e);
}

static void emit_backward(Emitter *e, const MemPlan *lay)
{
    const Network *n = e->net;
    const int dy = 0; /* plan.c: backward starts from DBUF0 */
    emit_comment(e, "The layers backward over the last micro-batch forward (m samples at x),");
    emit_comment(e, "from dL/d(output of %s) in DBUF%d; gradients add to grad(ctx).",
                 lay->backward_from >= 0 ? n->layers[lay->backward_from].label : "the input", dy);
    emit(e, "static void backward_micro(cnnrt_ctx *ctx, int m, const real *x)");
    emit(e, "{");
    for (int i = lay->backward_from; i >= 0; i--) {
        const Layer *l = &n->layers[i];
        const LayerPlace *at = &lay->at[i];
        if (at->backward_fused) {
            emit_comment(e, "%s: in %s_backward", l->label, n->layers[i + 1].label);
            continue;
        }
        emit(e, "{");
        emit_layer_input(e, n, i, "in");
        emit(e, "%s_backward(ctx, m, in, work(ctx, %s_OUT), work(ctx, DBUF%d), %s);", l->label,
             l->label, at->dy_buf, at->need_dx ? (at->dy_buf ? "work(ctx, DBUF0)"
                                                            : "work(ctx, DBUF1)") : "NULL");
        emit(e, "}");
    }
    emit(e, "(void)ctx, (void)m, (void)x;");
    emit(e, "}");
    emit_blank(e);
    emit(e, "static void backward_job(cnnrt_ctx *lane, cnnrt_ctx *home, int l, int i0, int m, "
            "void *arg)");
    emit(e, "{");
    emit(e, "(void)l, (void)arg;");
    emit(e, "const net_state *st = work(home, 0);");
    emit(e, "const real *x = st->x + (size_t)i0 * INPUT_SIZE;");
    emit(e, "if (st->n > MICRO) forward_micro(lane, home, i0, m, x);");
    emit(e, "memcpy(work(lane, DBUF%d), (real *)work(home, FULL_DY) + (size_t)i0 * OUTPUTS, "
            "sizeof(real) * (size_t)m * OUTPUTS);", dy);
    emit(e, "backward_micro(lane, m, x);");
    emit(e, "}");
    emit_blank(e);
    emit_comment(e, "Gradients of the last forward and loss. One micro-batch's maps are still");
    emit_comment(e, "there; of more, each goes forward again before its backward, with the");
    emit_comment(e, "same Dropout masks (train_step needs no repeat).");
    emit(e, "static void backward_all(cnnrt_ctx *ctx, int n)");
    emit(e, "{");
    emit(e, "SET_THREADS(ctx);");
    emit(e, "run_lanes(ctx, n, 1, backward_job, NULL);");
    emit(e, "add_lanes(ctx);");
    emit(e, "}");
    emit_blank(e);
}

/* One optimizer step on n samples, forward, loss and backward micro-batch by
 * micro-batch: the maps of one micro-batch live only until its backward. */
static void emit_train_step(Emitter *e)
{
    const Network *n = e->net;
    emit_comment(e, "What the lanes of a training step need, and their summed losses.");
    emit(e, "typedef struct step_job { const int32_t *labels; const void *targets; "
            "double total[LANES]; } step_job;");
    emit_blank(e);
    emit_comment(e, "m samples of bytes x as reals in the lane: x / 255, as the runtime");
    emit_comment(e, "converts them (the same float or double), a micro-batch at a time.");
    emit(e, "static const real *lane_input(cnnrt_ctx *lane, const uint8_t *restrict x, int m)");
    emit(e, "{");
    emit(e, "real *restrict in = work(lane, LANE_INPUT);");
    emit(e, "PARALLEL_FOR");
    emit(e, "for (long j = 0; j < (long)m * INPUT_SIZE; j++) in[j] = (real)x[j] / (real)255;");
    emit(e, "return in;");
    emit(e, "}");
    emit_blank(e);
    emit_comment(e, "A micro-batch of a step: forward, its loss, backward; a lane whose loss");
    emit_comment(e, "is not finite stops.");
    emit(e, "static void step_micro(cnnrt_ctx *lane, cnnrt_ctx *home, int l, int i0, int m, "
            "void *arg)");
    emit(e, "{");
    emit(e, "step_job *job = arg;");
    emit(e, "const net_state *st = work(home, 0);");
    emit(e, "if (!isfinite(job->total[l])) return;");
    emit(e, "const real *x = st->x8 ? lane_input(lane, st->x8 + (size_t)i0 * INPUT_SIZE, m) "
            ": st->x + (size_t)i0 * INPUT_SIZE;");
    emit(e, "forward_micro(lane, home, i0, m, x);");
    emit(e, "job->total[l] += loss_rows(home, i0, m, st->n, job->labels, job->targets, "
            "work(lane, DBUF0));");
    emit(e, "if (isfinite(job->total[l])) backward_micro(lane, m, x);");
    emit(e, "}");
    emit_blank(e);
    emit_comment(e, "A training step on inputs x (reals) or x8 (bytes): the micro-batches on");
    emit_comment(e, "their lanes, forward, loss and backward each; the lanes' gradients added;");
    emit_comment(e, "then the update. Returns the mean loss, without updating if it is not");
    emit_comment(e, "finite.");
    emit(e, "static double step_all(cnnrt_ctx *ctx, int n, const real *x, const uint8_t *x8, "
            "const int32_t *labels, const void *targets)");
    emit(e, "{");
    emit(e, "SET_THREADS(ctx);");
    emit(e, "net_state *st = work(ctx, 0);");
    emit(e, "*st = (net_state){.x = x, .x8 = x8, .n = n, .key = cnnrt_rng_next(&ctx->rng)};");
    emit(e, "ctx->output = work(ctx, FULL_OUT);");
    emit(e, "step_job job = {.labels = labels, .targets = targets};");
    emit(e, "run_lanes(ctx, n, 1, step_micro, &job);");
    emit(e, "double total = 0;");
    emit(e, "for (int l = 0; l < LANES; l++) total += job.total[l];");
    emit(e, "if (!isfinite(total)) return total;");
    emit(e, "add_lanes(ctx);");
    emit(e, "update_all(ctx);");
    emit(e, "return total / %s;", loss_mean_divisor(n));
    emit(e, "}");
    emit_blank(e);
    emit(e, "static double train_step(cnnrt_ctx *ctx, int n, const void *x, "
            "const int32_t *labels, const void *targets)");
    emit(e, "{");
    emit(e, "return step_all(ctx, n, x, NULL, labels, targets);");
    emit(e, "}");
    emit_blank(e);
    emit(e, "static double train_step_bytes(cnnrt_ctx *ctx, int n, const uint8_t *x, "
            "const int32_t *labels, const void *targets)");
    emit(e, "{");
    emit(e, "return step_all(ctx, n, NULL, x, labels, targets);");
    emit(e, "}");
    emit_blank(e);
}

/* The optimizers, elementwise over the whole parameter block, in PyTorch's
 * semantics (torch.optim.SGD with momentum/nesterov, torch.optim.Adam). */
static void emit_update(Emitter *e)
{
    emit(e, "static void update_all(cnnrt_ctx *ctx)");
    emit(e, "{");
    emit(e, "SET_THREADS(ctx);");
    emit(e, "real *w = param(ctx), *g = grad(ctx), *s = ctx->opt_state;");
    emit(e, "const real lr = (real)ctx->lr, mu = (real)ctx->momentum, decay = (real)ctx->decay;");
    emit(e, "switch (ctx->optimizer) {");
    emit(e, "case CNNRT_SGD:");
    emit(e, "PARALLEL_FOR");
    emit(e, "for (long j = 0; j < PARAM_COUNT; j++) w[j] -= lr * (g[j] + decay * w[j]);");
    emit(e, "break;");
    emit(e, "case CNNRT_MOMENTUM:");
    emit(e, "PARALLEL_FOR");
    emit(e, "for (long j = 0; j < PARAM_COUNT; j++) {");
    emit(e, "real gj = g[j] + decay * w[j];");
    emit(e, "s[j] = mu * s[j] + gj;");
    emit(e, "w[j] -= lr * s[j];");
    emit(e, "}");
    emit(e, "break;");
    emit(e, "case CNNRT_NESTEROV:");
    emit(e, "PARALLEL_FOR");
    emit(e, "for (long j = 0; j < PARAM_COUNT; j++) {");
    emit(e, "real gj = g[j] + decay * w[j];");
    emit(e, "s[j] = mu * s[j] + gj;");
    emit(e, "w[j] -= lr * (gj + mu * s[j]);");
    emit(e, "}");
    emit(e, "break;");
    emit(e, "case CNNRT_ADAM: {");
    emit_comment(e, "PyTorch's Adam: w -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps).");
    emit(e, "const real b1 = (real)ctx->beta1, b2 = (real)ctx->beta2, eps = (real)ctx->eps;");
    emit(e, "const real bc1 = (real)(1 - pow(ctx->beta1, (double)ctx->step));");
    emit(e, "const real bc2_sqrt = (real)sqrt(1 - pow(ctx->beta2, (double)ctx->step));");
    emit(e, "const real step_size = lr / bc1;");
    emit(e, "real *m = s, *v = s + PARAM_COUNT;");
    emit(e, "PARALLEL_FOR");
    emit(e, "for (long j = 0; j < PARAM_COUNT; j++) {");
    emit(e, "real gj = g[j] + decay * w[j];");
    emit(e, "m[j] = b1 * m[j] + (1 - b1) * gj;");
    emit(e, "v[j] = b2 * v[j] + (1 - b2) * gj * gj;");
    emit(e, "w[j] -= step_size * m[j] / (SQRT(v[j]) / bc2_sqrt + eps);");
    emit(e, "}");
    emit(e, "break;");
    emit(e, "}");
    emit(e, "}");
    emit(e, "}");
    emit_blank(e);
}

static void emit_first_nonfinite(Emitter *e, const MemPlan *lay)
{
    const Network *n = e->net;
    emit_comment(e, "The first layer whose output holds a NaN or infinity in the last");
    emit_comment(e, "micro-batch of any lane (in its last sample, for one that streams).");
    emit(e, "static const char *first_nonfinite_all(cnnrt_ctx *ctx)");
    emit(e, "{");
    emit(e, "static const struct { const char *label; size_t off, per_sample; int one; } outs[] = {");
    for (int i = 0; i < n->nlayers; i++)
        emit(e, "{\"%s\", %s_OUT, %" PRId64 ", %d},", n->layers[i].label, n->layers[i].label,
             shape_elems(n->layers[i].out), one_sample(lay, i));
    emit(e, "};");
    emit(e, "for (size_t k = 0; k < sizeof outs / sizeof outs[0]; k++) {");
    emit(e, "for (int l = 0; l < LANES; l++) {");
    emit(e, "cnnrt_ctx lane = lane_ctx(ctx, l, ctx->threads);");
    emit(e, "const net_state *st = work(&lane, 0);");
    emit(e, "const real *y = work(&lane, outs[k].off);");
    emit(e, "const size_t samples = outs[k].one && st->micro_n > 0 ? 1 : (size_t)st->micro_n;");
    emit(e, "for (size_t j = 0; j < samples * outs[k].per_sample; j++)");
    emit(e, "    if (!isfinite(y[j])) return outs[k].label;");
    emit(e, "}");
    emit(e, "}");
    emit(e, "return NULL;");
    emit(e, "}");
    emit_blank(e);
}

/* A C string literal of text, one source line per literal line. */
static void emit_string(Emitter *e, const char *name, const char *text, size_t len)
{
    fprintf(e->out, "static const char %s[] =\n    \"", name);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '\n')
            fputs(i + 1 < len ? "\\n\"\n    \"" : "\\n", e->out);
        else if (ch == '"' || ch == '\\')
            fprintf(e->out, "\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            fprintf(e->out, "\\%03o", ch);
        else
            fputc(ch, e->out);
        /* "??" could start a trigraph in strict modes: split it. */
        if (ch == '?' && i + 1 < len && text[i + 1] == '?')
            fputs("\" \"", e->out);
    }
    fputs("\";\n\n", e->out);
}

/* FNV-1a of the source: the network's identity in checkpoints. */
static uint64_t fnv1a(const char *text, size_t len)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)text[i];
        h *= 0x100000001b3u;
    }
    return h;
}

static void emit_param_table(Emitter *e)
{
    const Network *n = e->net;
    emit(e, "static const cnnrt_param net_params[] = {");
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        for (int p = 0; p < l->nparams; p++) {
            const Param *pr = &l->params[p];
            emit(e, "{\"%s.%s\", %d, {%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 "}, "
                    "%s_%s, %" PRId64 ", %" PRId64 ", %" PRId64 ", %d, %d},",
                 l->label, pr->suffix, pr->rank, pr->dims[0], pr->rank > 1 ? pr->dims[1] : 0,
                 pr->rank > 2 ? pr->dims[2] : 0, pr->rank > 3 ? pr->dims[3] : 0, l->label,
                 pr->suffix, pr->count, pr->fan_in, pr->fan_out, (int)l->init, pr->is_bias);
        }
    }
    emit(e, "};");
    emit_blank(e);
    emit(e, "static const char *const net_labels[] = {");
    for (int i = 0; i < n->nlayers; i++)
        emit(e, "\"%s\",", n->layers[i].label);
    emit(e, "};");
    emit_blank(e);
}

static size_t count_params(const Network *n)
{
    size_t k = 0;
    for (int i = 0; i < n->nlayers; i++)
        k += (size_t)n->layers[i].nparams;
    return k;
}

/* A C identifier from the network's name: cnnrt_model_<name>. */
static char *model_symbol(const char *name)
{
    char *sym = xasprintf("cnnrt_model_%s", name);
    for (char *p = sym; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            *p = '_';
    return sym;
}

static void emit_model(Emitter *e, const EmitOptions *o)
{
    const Network *n = e->net;
    const Train *t = &n->train;
    const Layer *last = &n->layers[n->nlayers - 1];
    char *sym = model_symbol(n->name);
    emit(e, "static size_t net_workspace_bytes(int threads) { (void)threads; return WS_BYTES; }");
    emit_blank(e);
    emit(e, "const cnnrt_model %s = {", sym);
    emit(e, ".abi_version = CNNRT_ABI_VERSION,");
    emit(e, ".name = \"%s\",", n->name);
    emit(e, ".source = net_source,");
    emit(e, ".source_hash = UINT64_C(0x%016" PRIx64 "),", fnv1a(o->src->text, o->src->len));
    emit(e, ".real_size = REAL_SIZE,");
    if (n->input.rank == 3)
        emit(e, ".input_rank = 3, .input_shape = {%" PRId64 ", %" PRId64 ", %" PRId64 "},",
             n->input.h, n->input.w, n->input.c);
    else
        emit(e, ".input_rank = 1, .input_shape = {%" PRId64 ", 0, 0},", n->input.c);
    emit(e, ".input_size = %" PRId64 ",", shape_elems(n->input));
    emit(e, ".outputs = %" PRId64 ",", shape_elems(last->out));
    emit(e, ".loss_kind = %s,", t->loss == LOSS_MSE ? "CNNRT_MSE" : "CNNRT_CROSS_ENTROPY");
    emit(e, ".max_batch = BATCH,");
    static const char *const opt[] = {"CNNRT_SGD", "CNNRT_MOMENTUM", "CNNRT_NESTEROV",
                                      "CNNRT_ADAM"};
    emit(e, ".train = {.batch = BATCH, .epochs = %" PRId64 ", .lr = %.17g, .momentum = %.17g,",
         t->epochs, t->lr, t->momentum);
    emit(e, "          .beta1 = %.17g, .beta2 = %.17g, .eps = %.17g, .decay = %.17g,", t->beta1,
         t->beta2, t->eps, t->decay);
    emit(e, "          .optimizer = %s, .seed = UINT64_C(%" PRIu64 ")},", opt[t->optimizer],
         t->seed);
    emit(e, ".params = net_params,");
    emit(e, ".nparams = %zu,", count_params(n));
    emit(e, ".param_count = PARAM_COUNT,");
    emit(e, ".workspace_bytes = net_workspace_bytes,");
    emit(e, ".layer_labels = net_labels,");
    emit(e, ".nlayers = %d,", n->nlayers);
    emit(e, ".summary = net_summary,");
    emit(e, ".train_flops = %.17g,", network_train_flops(n));
    emit(e, ".forward = forward_all,");
    emit(e, ".loss = loss_all,");
    emit(e, ".backward = backward_all,");
    emit(e, ".update = update_all,");
    emit(e, ".first_nonfinite = first_nonfinite_all,");
    emit(e, ".train_step = train_step,");
    emit(e, ".train_step_bytes = train_step_bytes,");
    emit(e, "};");
    emit_blank(e);
    emit(e, "int main(int argc, char **argv)");
    emit(e, "{");
    emit(e, "return cnnrt_main(&%s, argc, argv);", sym);
    emit(e, "}");
    free(sym);
}

bool emit_network(FILE *out, const Network *n, const EmitOptions *o)
{
    Emitter e = {.out = out, .net = n, .real_size = o->real_size};
    MemPlan lay;
    if (!plan_network(n, o->real_size, o->micro, &lay)) {
        fprintf(stderr, "cnnc: error: %s: the buffers at batch %" PRId64
                " do not fit in 64-bit sizes\n", n->source_name, n->train.batch);
        return false;
    }
    emit_prelude(&e, o);
    emit_offsets(&e, &lay);
    for (int i = 0; i < n->nlayers; i++)
        emit_layer(&e, &n->layers[i], &lay, i);
    emit(&e, "/* ---- the network ---------------------------------------------- */");
    emit_blank(&e);
    emit_forward(&e, &lay);
    emit_loss(&e, &lay);
    emit_backward(&e, &lay);
    emit_update(&e);
    emit_train_step(&e);
    emit_first_nonfinite(&e, &lay);
    emit_param_table(&e);
    emit_string(&e, "net_source", o->src->text, o->src->len);
    char *summary = NULL;
    size_t summary_len = 0;
    FILE *s = open_memstream(&summary, &summary_len);
    summary_print(s, n, o->real_size, o->micro);
    fclose(s);
    emit_string(&e, "net_summary", summary, summary_len);
    free(summary);
    emit_model(&e, o);
    plan_free(&lay);
    return !ferror(out);
}
