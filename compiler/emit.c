/* emit.c: Network -> the C of its trainer.
 *
 * The file it writes, top to bottom:
 *   the prelude (real type, OpenMP macros), the parameter offsets, the
 *   workspace layout, each layer's forward and backward side by side, the
 *   network's forward / loss / backward / update, the parameter table and the
 *   cnnrt_model that runtime/cnnrt.h describes, and main().
 * Layer bodies come from each kind's emit hook; this file knows no kind but
 * through LayerKind, except for the loss, which fuses Softmax with
 * cross-entropy as the language defines. */
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
 * The plan: where every buffer lives
 */

/* Byte offsets are rounded up to a cache line so vector loads stay aligned. */
static int64_t align64(int64_t n)
{
    return (n + 63) & ~(int64_t)63;
}

/* Per layer i: where its parameters, output and scratch live. */
typedef struct LayerPlace {
    int64_t param_off[2];      /* reals into the parameter block */
    int64_t out_off;           /* bytes: the output [B][out] */
    int64_t scratch_off;       /* bytes: the layer's own scratch */
    bool need_dx;              /* an earlier layer has parameters */
} LayerPlace;

typedef struct Layout {
    LayerPlace *at;            /* [nlayers] */
    int64_t param_count;
    int64_t dbuf_off[2];       /* bytes: the gradient ping-pong buffers */
    int64_t workspace;         /* bytes in all */
    int backward_from;         /* the last layer backward runs through */
} Layout;

/* State the generated code keeps at the workspace's start. */
#define STATE_BYTES 64

static bool has_params(const Layer *l)
{
    return l->nparams > 0;
}

static bool fused_softmax(const Network *n)
{
    return n->train.loss == LOSS_CROSS_ENTROPY;
}

static void layout_network(const Network *n, int64_t real_size, Layout *lay)
{
    memset(lay, 0, sizeof *lay);
    lay->at = xcalloc((size_t)n->nlayers, sizeof *lay->at);
    int64_t B = n->train.batch, off = STATE_BYTES, dmax = shape_elems(n->input);
    bool params_before = false;
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        for (int p = 0; p < l->nparams; p++) {
            lay->at[i].param_off[p] = lay->param_count;
            lay->param_count += l->params[p].count;
        }
        lay->at[i].need_dx = params_before;
        params_before |= has_params(l);
        lay->at[i].out_off = off;
        off = align64(off + B * shape_elems(l->out) * real_size);
        if (shape_elems(l->out) > dmax)
            dmax = shape_elems(l->out);
    }
    for (int k = 0; k < 2; k++) {
        lay->dbuf_off[k] = off;
        off = align64(off + B * dmax * real_size);
    }
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        lay->at[i].scratch_off = off;
        if (l->kind->scratch_bytes)
            off = align64(off + l->kind->scratch_bytes(l, B, real_size));
    }
    lay->workspace = off;
    lay->backward_from = fused_softmax(n) ? n->nlayers - 2 : n->nlayers - 1;
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
    emit(e, "#define SET_THREADS(ctx) omp_set_num_threads((ctx)->threads > 0 ? (ctx)->threads : 1)");
    emit(e, "#else");
    emit(e, "#define PARALLEL_FOR");
    emit(e, "#define SET_THREADS(ctx) ((void)(ctx))");
    emit(e, "#endif");
    emit_blank(e);
    emit(e, "static inline real *param(cnnrt_ctx *ctx) { return (real *)ctx->params; }");
    emit(e, "static inline real *grad(cnnrt_ctx *ctx) { return (real *)ctx->grads; }");
    emit(e, "static inline void *work(cnnrt_ctx *ctx, size_t off) "
            "{ return (char *)ctx->workspace + off; }");
    emit_blank(e);
}

static void emit_offsets(Emitter *e, const Layout *lay)
{
    const Network *n = e->net;
    emit_comment(e, "Parameter tensors: offsets in reals into the parameter (and gradient) block.");
    emit(e, "enum {");
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        for (int p = 0; p < l->nparams; p++)
            emit(e, "%s_%s = %" PRId64 ",", l->label, l->params[p].suffix, lay->at[i].param_off[p]);
    }
    emit(e, "PARAM_COUNT = %" PRId64, lay->param_count);
    emit(e, "};");
    emit_blank(e);
    emit_comment(e, "The workspace, in bytes at the batch of %" PRId64 ".", n->train.batch);
    emit(e, "#define BATCH %" PRId64, n->train.batch);
    emit(e, "#define WS_BYTES %" PRId64 "u", lay->workspace);
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        char sh[64];
        emit(e, "#define %s_OUT %" PRId64 "u /* [BATCH][%s] */", l->label, lay->at[i].out_off,
             shape_str(l->out, sh, sizeof sh));
        emit(e, "#define %s_SCRATCH %" PRId64 "u", l->label, lay->at[i].scratch_off);
    }
    emit(e, "#define DBUF0 %" PRId64 "u", lay->dbuf_off[0]);
    emit(e, "#define DBUF1 %" PRId64 "u", lay->dbuf_off[1]);
    emit_blank(e);
    emit_comment(e, "What forward leaves for loss and backward, at the workspace's start.");
    emit(e, "typedef struct net_state { const real *x; int n; } net_state;");
    emit_blank(e);
}

static void emit_layer(Emitter *e, const Layer *l, const Layout *lay, int i)
{
    char in[64], out[64];
    emit(e, "/* ---- %s: %s, %s -> %s %s */", l->label, l->kind->name,
         shape_str(l->in, in, sizeof in), shape_str(l->out, out, sizeof out),
         "------------------------------------------------");
    LayerCode c = {.l = l, .name = l->label, .need_dx = lay->at[i].need_dx,
                   .batch = e->net->train.batch, .scratch_off = lay->at[i].scratch_off};
    l->kind->emit(e, &c);
    emit_blank(e);
}

/* The input of layer i: the network input or the previous layer's output. */
static void emit_layer_input(Emitter *e, const Network *n, int i, const char *var)
{
    if (i == 0)
        emit(e, "const real *%s = st->x;", var);
    else
        emit(e, "const real *%s = work(ctx, %s_OUT);", var, n->layers[i - 1].label);
}

static void emit_forward(Emitter *e)
{
    const Network *n = e->net;
    emit(e, "static void net_forward(cnnrt_ctx *ctx, int n, const void *x)");
    emit(e, "{");
    emit(e, "SET_THREADS(ctx);");
    emit(e, "net_state *st = work(ctx, 0);");
    emit(e, "st->x = x;");
    emit(e, "st->n = n;");
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        if (i == 0)
            emit(e, "%s_forward(ctx, n, x, work(ctx, %s_OUT));", l->label, l->label);
        else
            emit(e, "%s_forward(ctx, n, work(ctx, %s_OUT), work(ctx, %s_OUT));", l->label,
                 n->layers[i - 1].label, l->label);
    }
    emit(e, "ctx->output = work(ctx, %s_OUT);", n->layers[n->nlayers - 1].label);
    emit(e, "}");
    emit_blank(e);
}

static void emit_loss(Emitter *e, const Layout *lay)
{
    const Network *n = e->net;
    const Layer *last = &n->layers[n->nlayers - 1];
    int64_t k = shape_elems(last->out);
    int dy = lay->backward_from % 2;
    emit_comment(e, "The mean loss of the last forward; leaves dL/d(output of %s) in DBUF%d.",
                 lay->backward_from >= 0 ? n->layers[lay->backward_from].label : "the input", dy);
    emit(e, "static double net_loss(cnnrt_ctx *ctx, int n, const int32_t *labels, "
            "const void *targets)");
    emit(e, "{");
    emit(e, "net_state *st = work(ctx, 0);");
    emit(e, "real *dy = work(ctx, DBUF%d);", dy);
    emit(e, "double total = 0;");
    if (fused_softmax(n)) {
        emit(e, "(void)targets;");
        emit(e, "/* Softmax and cross-entropy fused: from the logits z, the loss is");
        emit(e, "   logsumexp(z) - z[label] (finite where log(p) would not be) and");
        emit(e, "   dL/dz = (p - onehot(label)) / n. */");
        if (n->nlayers >= 2)
            emit(e, "const real *z = work(ctx, %s_OUT);", n->layers[n->nlayers - 2].label);
        else
            emit(e, "const real *z = st->x;");
        emit(e, "const real *p = work(ctx, %s_OUT);", last->label);
        emit(e, "for (int i = 0; i < n; i++) {");
        emit(e, "const real *zi = z + (size_t)i * %" PRId64 ";", k);
        emit(e, "real zmax = zi[0];");
        emit(e, "for (int j = 1; j < %" PRId64 "; j++) zmax = zi[j] > zmax ? zi[j] : zmax;", k);
        emit(e, "double sum = 0;");
        emit(e, "for (int j = 0; j < %" PRId64 "; j++) sum += exp((double)zi[j] - zmax);", k);
        emit(e, "total += log(sum) + zmax - zi[labels[i]];");
        emit(e, "for (int j = 0; j < %" PRId64 "; j++)", k);
        emit(e, "    dy[(size_t)i * %" PRId64 " + j] = (p[(size_t)i * %" PRId64
                " + j] - (j == labels[i])) / (real)n;", k, k);
        emit(e, "}");
        emit(e, "return total / n;");
    } else {
        emit_comment(e, "Mean squared error over all n*%" PRId64 " outputs, as PyTorch's MSELoss.",
                     k);
        emit(e, "(void)st;");
        emit(e, "const real *y = work(ctx, %s_OUT);", last->label);
        emit(e, "const real *t = targets;");
        emit(e, "const size_t count = (size_t)n * %" PRId64 ";", k);
        emit(e, "for (size_t j = 0; j < count; j++) {");
        emit(e, "real target = t ? t[j] : (real)((int)(j %% %" PRId64 ") == labels[j / %" PRId64
                "]);", k, k);
        emit(e, "real diff = y[j] - target;");
        emit(e, "total += (double)diff * diff;");
        emit(e, "dy[j] = 2 * diff / (real)count;");
        emit(e, "}");
        emit(e, "return total / count;");
    }
    emit(e, "}");
    emit_blank(e);
}

static void emit_backward(Emitter *e, const Layout *lay)
{
    const Network *n = e->net;
    emit(e, "static void net_backward(cnnrt_ctx *ctx, int n)");
    emit(e, "{");
    emit(e, "SET_THREADS(ctx);");
    emit(e, "net_state *st = work(ctx, 0);");
    emit(e, "memset(ctx->grads, 0, sizeof(real) * PARAM_COUNT);");
    for (int i = lay->backward_from; i >= 0; i--) {
        const Layer *l = &n->layers[i];
        if (!lay->at[i].need_dx && !has_params(l))
            continue;  /* nothing before it learns: no gradient to pass on */
        emit(e, "{");
        emit_layer_input(e, n, i, "x");
        emit(e, "%s_backward(ctx, n, x, work(ctx, %s_OUT), work(ctx, DBUF%d), %s);", l->label,
             l->label, i % 2, lay->at[i].need_dx ? (i % 2 ? "work(ctx, DBUF0)" : "work(ctx, DBUF1)")
                                              : "NULL");
        emit(e, "}");
    }
    emit(e, "(void)st;");
    emit(e, "}");
    emit_blank(e);
}

/* The optimizers, elementwise over the whole parameter block, in PyTorch's
 * semantics (torch.optim.SGD with momentum/nesterov, torch.optim.Adam). */
static void emit_update(Emitter *e)
{
    emit(e, "static void net_update(cnnrt_ctx *ctx)");
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

static void emit_first_nonfinite(Emitter *e)
{
    const Network *n = e->net;
    emit(e, "static const char *net_first_nonfinite(cnnrt_ctx *ctx)");
    emit(e, "{");
    emit(e, "const net_state *st = work(ctx, 0);");
    emit(e, "static const struct { const char *label; size_t off, per_sample; } outs[] = {");
    for (int i = 0; i < n->nlayers; i++)
        emit(e, "{\"%s\", %s_OUT, %" PRId64 "},", n->layers[i].label, n->layers[i].label,
             shape_elems(n->layers[i].out));
    emit(e, "};");
    emit(e, "for (size_t k = 0; k < sizeof outs / sizeof outs[0]; k++) {");
    emit(e, "const real *y = work(ctx, outs[k].off);");
    emit(e, "for (size_t j = 0; j < (size_t)st->n * outs[k].per_sample; j++)");
    emit(e, "    if (!isfinite(y[j])) return outs[k].label;");
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
    emit(e, ".forward = net_forward,");
    emit(e, ".loss = net_loss,");
    emit(e, ".backward = net_backward,");
    emit(e, ".update = net_update,");
    emit(e, ".first_nonfinite = net_first_nonfinite,");
    emit(e, ".train_step = NULL,");
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
    Layout lay;
    layout_network(n, o->real_size, &lay);
    emit_prelude(&e, o);
    emit_offsets(&e, &lay);
    for (int i = 0; i < n->nlayers; i++)
        emit_layer(&e, &n->layers[i], &lay, i);
    emit(&e, "/* ---- the network ---------------------------------------------- */");
    emit_blank(&e);
    emit_forward(&e);
    emit_loss(&e, &lay);
    emit_backward(&e, &lay);
    emit_update(&e);
    emit_first_nonfinite(&e);
    emit_param_table(&e);
    emit_string(&e, "net_source", o->src->text, o->src->len);
    char *summary = NULL;
    size_t summary_len = 0;
    FILE *s = open_memstream(&summary, &summary_len);
    summary_print(s, n, o->real_size);
    fclose(s);
    emit_string(&e, "net_summary", summary, summary_len);
    free(summary);
    emit_model(&e, o);
    free(lay.at);
    return !ferror(out);
}
