/* emit.c: Network -> the C of its trainer.
 *
 * The file it writes, top to bottom:
 *   the value type and runtime/cnnrt_gen.h (what every trainer shares), the
 *   parameter offsets, the workspace layout, each layer's forward and
 *   backward side by side, the network's forward and backward over a
 *   micro-batch (in source order and back, each tensor in the buffer the
 *   plan gave it), the entry points that deal micro-batches to lanes
 *   (runtime/lanes.c), the parameter table and the cnnrt_model that
 *   runtime/cnnrt.h describes, and main().
 * Layer bodies come from each kind's emitters, fast or reference; this file
 * knows no kind but through LayerKind, and the plan (plan.c) has decided
 * where every buffer lives.
 *
 * Names: everything of a layer is LABEL_forward, LABEL_backward,
 * LABEL_weight, LABEL_bias, LABEL_OUT, LABEL_SCRATCH. The driver's own names
 * (forward_all, loss_all, net_params, ...) end in none of those suffixes, so
 * no label, not even one that is a C keyword, can collide with them. */
#include "config.h"
#include "emitter.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Helpers for the kinds' emitters
 */

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
    char name[64];
    snprintf(name, sizeof name, "%s_mask", type);
    emit_local(e, name, "typedef __typeof__((%s){0} < (%s){0}) %s_mask; /* a comparison's lanes */",
               type, type, type);
}

bool code_needs_dx(const LayerCode *c)
{
    for (int k = 0; k < c->ninputs; k++)
        if (c->need_dx[k])
            return true;
    return false;
}

const char *dx_op(const LayerCode *c, int k)
{
    return c->dx_add[k] ? "+=" : "=";
}

void emit_backward_nothing(Emitter *e, const LayerCode *c)
{
    emit_comment(e, "no input needs a gradient: nothing to do");
    emit_backward_begin(e, c);
    emit(e, "(void)ln, (void)n, (void)y, (void)dy;");
    for (int k = 0; k < c->ninputs; k++)
        if (c->ninputs > 1)
            emit(e, "(void)x%d, (void)dx%d;", k, k);
        else
            emit(e, "(void)x, (void)dx;");
    emit_function_end(e);
}

void emit_backward_phases(Emitter *e, const LayerCode *c, BackwardPhase *weights,
                          BackwardPhase *data, const void *geom)
{
    emit_function_begin(e, c, "backward_weights", SIG_WEIGHTS, true);
    weights(e, c, geom);
    emit_function_end(e);
    emit_blank(e);
    if (c->need_dx[0]) {
        emit_function_begin(e, c, "backward_data", SIG_DATA, true);
        emit(e, "(void)x;");
        data(e, c, geom);
        emit_function_end(e);
        emit_blank(e);
    }
    emit_backward_begin(e, c);
    emit(e, "(void)y;");
    emit(e, "%s_backward_weights(ln, n, x, dy);", c->name);
    if (c->need_dx[0])
        emit(e, "%s_backward_data(ln, n, x, dy, dx);", c->name);
    else
        emit(e, "(void)dx; /* no layer before it learns */");
    emit_function_end(e);
}

/* ------------------------------------------------------------------------
 * Counting
 */

double network_train_flops(const Network *n)
{
    double total = 0;
    bool *learns = xcalloc((size_t)n->nlayers + 1, sizeof *learns);
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        double f = l->kind->flops ? l->kind->flops(l) : 0;
        bool upstream = false;
        for (int k = 0; k < l->ninputs; k++)
            upstream |= learns[l->inputs[k]];
        total += f;                      /* forward */
        if (l->nparams > 0)
            total += f;                  /* weight gradients */
        if (upstream)
            total += f;                  /* input gradients */
        learns[layer_output(l)] = upstream || l->nparams > 0;
    }
    free(learns);
    return total;
}

/* ------------------------------------------------------------------------
 * The file's parts
 */

static bool fast_tier(const Emitter *e, const EmitOptions *o)
{
    (void)e;
    return o->kernels == KERNELS_FAST;
}

static void emit_prelude(Emitter *e, const EmitOptions *o)
{
    const Network *n = e->net;
    emit(e, "/* %s.c: the trainer of %s, generated by cnnc %s%s. */", n->name,
         n->source_name, PACKAGE_VERSION,
         fast_tier(e, o) ? "" : " with the reference kernels (the plain loops of the math)");
    emit(e, "/* Build: cc -O2 %s.c $(pkg-config --cflags --libs cnnrt) -o %s */", n->name,
         n->name);
    emit(e, "#include \"cnnrt.h\"");
    emit_blank(e);
    emit(e, "typedef %s real;", o->real_size == 8 ? "double" : "float");
    emit(e, "#define REAL_SIZE %" PRId64, o->real_size);
    emit(e, "#include \"cnnrt_gen.h\" /* vectors, the loss, the optimizers: every trainer's */");
    emit_blank(e);
}

/* The C expression of tensor t's values in a lane: x for the input. */
static char *tensor_at(const Network *n, int t)
{
    return t == INPUT_TENSOR ? xstrdup("x")
                             : xasprintf("work(ln, %s_OUT)", n->layers[t - 1].label);
}

/* The C expression of tensor t's gradient in a lane. */
static char *grad_at(const MemPlan *lay, int t)
{
    return xasprintf("work(ln, DBUF%d)", lay->t[t].grad_slot);
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
        const TensorPlace *t = &lay->t[layer_output(l)];
        char sh[64];
        emit(e, "#define %s_OUT %" PRId64 "u /* [%s][%s]%s%s */", l->label, t->off,
             t->one_sample ? "1" : "MICRO", shape_str(l->out, sh, sizeof sh),
             t->over >= 0 ? ", over " : "", t->over >= 0 ? tensor_name(n, t->over) : "");
        if (lay->kernels == KERNELS_FAST)
            emit(e, "#define %s_SCRATCH %" PRId64 "u", l->label, lay->at[i].scratch_off);
    }
    for (int s = 0; s < lay->ngrad_slots; s++) {
        int owner = -1; /* the reference tier's: one tensor a buffer */
        for (int t = 0; t <= n->nlayers && lay->kernels == KERNELS_REFERENCE; t++)
            if (lay->t[t].grad_slot == s)
                owner = t;
        if (owner >= 0)
            emit(e, "#define DBUF%d %" PRId64 "u /* [MICRO][%" PRId64 "]: dL/d %s */", s,
                 lay->grad_slot_off[s], lay->grad_slot_elems[s], tensor_name(n, owner));
        else
            emit(e, "#define DBUF%d %" PRId64 "u /* [MICRO][%" PRId64 "]: gradients */", s,
                 lay->grad_slot_off[s], lay->grad_slot_elems[s]);
    }
    emit(e, "#define LANE_INPUT %" PRId64 "u /* [MICRO][INPUT_SIZE]: a step's input from bytes */",
         lay->input_off);
    emit_blank(e);
    emit_comment(e, "At the start of each lane's workspace: the driver's record of the last");
    emit_comment(e, "call (its input and size, on lane 0) and the size of the lane's last");
    emit_comment(e, "micro-batch. The layers never read it.");
    emit(e, "typedef struct lane_record { const real *x; const uint8_t *x8; int n, micro_n; "
            "uint64_t key; } lane_record;");
    emit(e, "_Static_assert(sizeof(lane_record) <= %d, \"the workspace header\");",
         (int)lay->full_out_off);
    emit_blank(e);
    emit(e, "static lane_record *record(const cnnrt_lane *ln) { return work(ln, 0); }");
    emit(e, "static lane_record *home_record(cnnrt_ctx *ctx) { return ctx->workspace; }");
    emit_comment(e, "Rows i0.. of a full-batch buffer of the home workspace.");
    emit(e, "static real *home_rows(const cnnrt_lane *ln, size_t off)");
    emit(e, "{");
    emit(e, "return (real *)((char *)ln->home->workspace + off) + (size_t)ln->i0 * OUTPUTS;");
    emit(e, "}");
    emit_blank(e);
}

/* What the plan decided for layer i, as its emitters read it. */
static LayerCode layer_code(const Emitter *e, const MemPlan *lay, int i, Kernels kernels)
{
    const Network *n = e->net;
    const Layer *l = &n->layers[i];
    const LayerPlace *at = &lay->at[i];
    LayerCode c = {.l = l, .name = l->label, .kernels = kernels, .ninputs = l->ninputs,
                   .fused_into_loss = !at->backward && layer_output(l) > lay->loss_tensor,
                   .batch = lay->micro, .lane_samples = lay->lane_samples,
                   .in_place = at->in_place, .relu_out = at->relu_out, .relu_in = at->relu_in,
                   .forward_fused = at->forward_fused, .backward_fused = at->backward_fused,
                   .scratch_off = at->scratch_off};
    for (int k = 0; k < l->ninputs; k++) {
        c.need_dx[k] = at->need_dx[k];
        c.dx_add[k] = at->dx_add[k];
    }
    for (int j = 0; j < i; j++)
        c.streamed_into |= lay->at[j].stream_to == i && lay->at[j].streamed;
    return c;
}

static void emit_layer(Emitter *e, const MemPlan *lay, int i, Kernels kernels)
{
    const Layer *l = &e->net->layers[i];
    char in[64], out[64];
    emit(e, "/* ---- %s: %s, %s -> %s %s */", l->label, l->kind->name,
         shape_str(l->in, in, sizeof in), shape_str(l->out, out, sizeof out),
         "------------------------------------------------");
    LayerCode c = layer_code(e, lay, i, kernels);
    bool fast = kernels == KERNELS_FAST;
    (fast ? l->kind->emit_forward : l->kind->ref_forward)(e, &c);
    emit_blank(e);
    if (lay->at[i].backward)
        (fast ? l->kind->emit_backward : l->kind->ref_backward)(e, &c);
    else if (c.backward_fused)
        emit_comment(e, "%s backward: in the layer after it, which zeroes its dx where its "
                        "input (this y) is 0", c.name);
    else if (c.fused_into_loss)
        emit_comment(e, "%s backward: fused with cross-entropy in the loss, "
                        "dL/dx = (y - onehot)/n", c.name);
    else
        emit_comment(e, "%s backward: none (no gradient flows through it)", c.name);
    emit_blank(e);
}

/* ------------------------------------------------------------------------
 * The network over a micro-batch
 */

/* "const real *in0 = ..., ..." then the call of L_forward. */
static void emit_forward_call(Emitter *e, int i)
{
    const Network *n = e->net;
    const Layer *l = &n->layers[i];
    Buf b = {0};
    b.f = open_memstream(&b.text, &b.len);
    fprintf(b.f, "%s_forward(ln, m", l->label);
    for (int k = 0; k < l->ninputs; k++) {
        char *at = tensor_at(n, l->inputs[k]);
        fprintf(b.f, ", %s", at);
        free(at);
    }
    fprintf(b.f, ", work(ln, %s_OUT));", l->label);
    fclose(b.f);
    emit(e, "%s", b.text);
    free(b.text);
}

/* Layer i streams into layer j (plan.c): for each sample, i into its
 * one-sample buffer, then j from there into its row of the micro-batch. */
static void emit_streamed_pair(Emitter *e, int i, int j)
{
    const Network *n = e->net;
    const Layer *a = &n->layers[i], *b = &n->layers[j];
    int t = a->inputs[0];
    emit_comment(e, "%s into %s a sample at a time: %s's map stays in cache", a->label,
                 b->label, a->label);
    emit(e, "for (int s = 0; s < m; s++) {");
    if (t == INPUT_TENSOR)
        emit(e, "const real *in = x + (size_t)s * INPUT_SIZE;");
    else
        emit(e, "const real *in = (const real *)work(ln, %s_OUT) + (size_t)s * %" PRId64 ";",
             tensor_name(n, t), shape_elems(a->in));
    emit(e, "%s_forward(ln, 1, in, work(ln, %s_OUT));", a->label, a->label);
    emit(e, "%s_forward_sample(ln, s, work(ln, %s_OUT), (real *)work(ln, %s_OUT) + "
            "(size_t)s * %" PRId64 ");", b->label, n->layers[j - 1].label, b->label,
         shape_elems(b->out));
    emit(e, "}");
}

static void emit_forward_micro(Emitter *e, const MemPlan *lay)
{
    const Network *n = e->net;
    emit_comment(e, "The layers forward over the lane's micro-batch at x (m samples), in");
    emit_comment(e, "source order; the network's output (and logits) go to its rows of the");
    emit_comment(e, "full-batch buffers of home.");
    emit(e, "static void forward_micro(const cnnrt_lane *ln, const real *x)");
    emit(e, "{");
    emit(e, "const int m = ln->n;");
    emit(e, "record(ln)->micro_n = m;");
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        if (lay->at[i].forward_fused) {
            emit_comment(e, "%s: in %s_forward", l->label,
                         tensor_name(n, l->inputs[0]));
            continue;
        }
        if (lay->at[i].streamed) {
            int j = lay->at[i].stream_to;
            emit_streamed_pair(e, i, j);
            if (j == i + 2)
                emit_comment(e, "%s: in %s_forward", n->layers[i + 1].label, l->label);
            i = j;
            continue;
        }
        emit_forward_call(e, i);
    }
    char *out = tensor_at(n, layer_output(&n->layers[n->nlayers - 1]));
    emit(e, "memcpy(home_rows(ln, FULL_OUT), %s, sizeof(real) * (size_t)m * OUTPUTS);", out);
    free(out);
    if (network_fuses_softmax(n)) {
        char *logits = tensor_at(n, lay->loss_tensor);
        emit(e, "memcpy(home_rows(ln, FULL_LOGITS), %s, sizeof(real) * (size_t)m * OUTPUTS);",
             logits);
        free(logits);
    }
    emit(e, "}");
    emit_blank(e);
}

static void emit_backward_call(Emitter *e, const MemPlan *lay, int i)
{
    const Network *n = e->net;
    const Layer *l = &n->layers[i];
    const LayerPlace *at = &lay->at[i];
    Buf b = {0};
    b.f = open_memstream(&b.text, &b.len);
    fprintf(b.f, "%s_backward(ln, m", l->label);
    for (int k = 0; k < l->ninputs; k++) {
        char *x = tensor_at(n, l->inputs[k]);
        fprintf(b.f, ", %s", x);
        free(x);
    }
    char *dy = grad_at(lay, at->dy_tensor);
    fprintf(b.f, ", work(ln, %s_OUT), %s", l->label, dy);
    free(dy);
    for (int k = 0; k < l->ninputs; k++) {
        char *dx = at->need_dx[k] ? grad_at(lay, at->dx_tensor[k]) : xstrdup("NULL");
        fprintf(b.f, ", %s", dx);
        free(dx);
    }
    fputs(");", b.f);
    fclose(b.f);
    emit(e, "%s", b.text);
    free(b.text);
}

static void emit_backward_micro(Emitter *e, const MemPlan *lay, Kernels kernels)
{
    const Network *n = e->net;
    emit_comment(e, "The layers backward over the lane's last micro-batch forward (x), in");
    emit_comment(e, "reverse order, from dL/d%s in DBUF%d; each adds its parameters'",
                 tensor_name(n, lay->loss_tensor), lay->t[lay->loss_tensor].grad_slot);
    emit_comment(e, "gradients to the lane's and sends dL/d its inputs back%s.",
                 kernels == KERNELS_FAST ? " (the first consumer of a tensor writes its "
                                           "gradient, the others add to it)"
                                         : " (added to gradients that start at zero)");
    emit(e, "static void backward_micro(const cnnrt_lane *ln, const real *x)");
    emit(e, "{");
    emit(e, "const int m = ln->n;");
    if (kernels == KERNELS_REFERENCE)
        for (int s = 0; s < lay->ngrad_slots; s++)
            if (s != lay->t[lay->loss_tensor].grad_slot)
                emit(e, "memset(work(ln, DBUF%d), 0, sizeof(real) * (size_t)m * %" PRId64 ");",
                     s, lay->grad_slot_elems[s]);
    for (int i = n->nlayers - 1; i >= 0; i--) {
        const Layer *l = &n->layers[i];
        if (lay->at[i].backward_fused)
            emit_comment(e, "%s: in %s_backward", l->label,
                         n->layers[n->tensors[layer_output(l)].consumers[0]].label);
        else if (lay->at[i].backward)
            emit_backward_call(e, lay, i);
    }
    emit(e, "(void)ln, (void)m, (void)x;");
    emit(e, "}");
    emit_blank(e);
}
/* ------------------------------------------------------------------------
 * The entry points: micro-batches dealt to the lanes (runtime/lanes.c)
 */

/* The divisor that makes the summed loss a mean, in PyTorch's meaning. */
static const char *loss_mean_divisor(const Network *n)
{
    return network_fuses_softmax(n) ? "(double)n" : "((double)n * OUTPUTS)";
}

static void emit_loss(Emitter *e, const MemPlan *lay)
{
    const Network *n = e->net;
    emit_comment(e, "The loss summed over rows i0..i0+m-1 of the last forward, and");
    emit_comment(e, "dy[m][OUTPUTS] = dL/d%s for them, of the mean over all n.",
                 tensor_name(n, lay->loss_tensor));
    emit(e, "static double loss_rows(cnnrt_ctx *home, int i0, int m, int n, "
            "const int32_t *labels, const void *targets, real *restrict dy)");
    emit(e, "{");
    emit(e, "const real *p = (const real *)((char *)home->workspace + FULL_OUT) + "
            "(size_t)i0 * OUTPUTS;");
    if (network_fuses_softmax(n)) {
        emit(e, "const real *z = (const real *)((char *)home->workspace + FULL_LOGITS) + "
                "(size_t)i0 * OUTPUTS;");
        emit(e, "(void)targets;");
        emit(e, "return cnnrt_cross_entropy_rows(p, z, m, OUTPUTS, n, labels + i0, dy);");
    } else {
        emit(e, "const real *t = targets ? (const real *)targets + (size_t)i0 * OUTPUTS : NULL;");
        emit(e, "return cnnrt_mse_rows(p, t, m, OUTPUTS, n, labels ? labels + i0 : NULL, dy);");
    }
    emit(e, "}");
    emit_blank(e);
    emit_comment(e, "The mean loss of the last forward's n samples; dL/d(output) to FULL_DY.");
    emit(e, "static double loss_all(cnnrt_ctx *ctx, int n, const int32_t *labels, "
            "const void *targets)");
    emit(e, "{");
    emit(e, "return loss_rows(ctx, 0, n, n, labels, targets, "
            "(real *)((char *)ctx->workspace + FULL_DY)) / %s;", loss_mean_divisor(n));
    emit(e, "}");
    emit_blank(e);
}

static void emit_forward_all(Emitter *e)
{
    emit(e, "static void forward_job(const cnnrt_lane *ln, void *arg)");
    emit(e, "{");
    emit(e, "const lane_record *call = arg;");
    emit(e, "forward_micro(ln, call->x + (size_t)ln->i0 * INPUT_SIZE);");
    emit(e, "}");
    emit_blank(e);
    emit_comment(e, "A forward pass; while training, it draws the key of Dropout's masks.");
    emit(e, "static void forward_all(cnnrt_ctx *ctx, int n, const void *x)");
    emit(e, "{");
    emit(e, "lane_record *call = home_record(ctx);");
    emit(e, "*call = (lane_record){.x = x, .n = n, .key = ctx->training ? "
            "cnnrt_rng_next(&ctx->rng) : 0};");
    emit(e, "cnnrt_run_lanes(ctx, n, 0, call->key, forward_job, call);");
    emit(e, "ctx->output = (char *)ctx->workspace + FULL_OUT;");
    emit(e, "}");
    emit_blank(e);
}

static void emit_backward_all(Emitter *e, const MemPlan *lay)
{
    emit(e, "static void backward_job(const cnnrt_lane *ln, void *arg)");
    emit(e, "{");
    emit(e, "const lane_record *call = arg;");
    emit(e, "const real *x = call->x + (size_t)ln->i0 * INPUT_SIZE;");
    emit(e, "if (call->n > MICRO) forward_micro(ln, x);");
    emit(e, "memcpy(work(ln, DBUF%d), (real *)((char *)ln->home->workspace + FULL_DY) + "
            "(size_t)ln->i0 * OUTPUTS, sizeof(real) * (size_t)ln->n * OUTPUTS);",
         lay->t[lay->loss_tensor].grad_slot);
    emit(e, "backward_micro(ln, x);");
    emit(e, "}");
    emit_blank(e);
    emit_comment(e, "Gradients of the last forward and loss. One micro-batch's maps are still");
    emit_comment(e, "there; of more, each goes forward again before its backward, with the");
    emit_comment(e, "same Dropout masks (train_step needs no repeat).");
    emit(e, "static void backward_all(cnnrt_ctx *ctx, int n)");
    emit(e, "{");
    emit(e, "const lane_record *call = home_record(ctx);");
    emit(e, "(void)n;");
    emit(e, "cnnrt_run_lanes(ctx, call->n, 1, call->key, backward_job, (void *)call);");
    emit(e, "cnnrt_add_lanes(ctx);");
    emit(e, "}");
    emit_blank(e);
}

/* One optimizer step on n samples, forward, loss and backward micro-batch by
 * micro-batch: the maps of one micro-batch live only until its backward. */
static void emit_train_step(Emitter *e, const MemPlan *lay)
{
    const Network *n = e->net;
    emit_comment(e, "What the lanes of a training step need, and their summed losses.");
    emit(e, "typedef struct step_job { const real *x; const uint8_t *x8; int n; "
            "const int32_t *labels; const void *targets; double total[LANES]; } step_job;");
    emit_blank(e);
    emit_comment(e, "A micro-batch of a step: its input (from bytes, converted in the lane),");
    emit_comment(e, "forward, its loss, backward; a lane whose loss is not finite stops.");
    emit(e, "static void step_micro(const cnnrt_lane *ln, void *arg)");
    emit(e, "{");
    emit(e, "step_job *job = arg;");
    emit(e, "if (!isfinite(job->total[ln->index])) return;");
    emit(e, "const real *x = work(ln, LANE_INPUT);");
    emit(e, "if (job->x8)");
    emit(e, "    cnnrt_bytes_to_reals(ln, work(ln, LANE_INPUT), job->x8 + (size_t)ln->i0 * "
            "INPUT_SIZE, ln->n * INPUT_SIZE);");
    emit(e, "else");
    emit(e, "    x = job->x + (size_t)ln->i0 * INPUT_SIZE;");
    emit(e, "forward_micro(ln, x);");
    emit(e, "job->total[ln->index] += loss_rows(ln->home, ln->i0, ln->n, job->n, job->labels, "
            "job->targets, work(ln, DBUF%d));", lay->t[lay->loss_tensor].grad_slot);
    emit(e, "if (isfinite(job->total[ln->index])) backward_micro(ln, x);");
    emit(e, "}");
    emit_blank(e);
    emit_comment(e, "A training step on inputs x (reals) or x8 (bytes): the micro-batches on");
    emit_comment(e, "their lanes, forward, loss and backward each; the lanes' gradients added;");
    emit_comment(e, "then the update. Returns the mean loss, without updating if it is not");
    emit_comment(e, "finite.");
    emit(e, "static double step_all(cnnrt_ctx *ctx, int n, const real *x, const uint8_t *x8, "
            "const int32_t *labels, const void *targets)");
    emit(e, "{");
    emit(e, "lane_record *call = home_record(ctx);");
    emit(e, "*call = (lane_record){.x = x, .x8 = x8, .n = n, .key = cnnrt_rng_next(&ctx->rng)};");
    emit(e, "ctx->output = (char *)ctx->workspace + FULL_OUT;");
    emit(e, "step_job job = {.x = x, .x8 = x8, .n = n, .labels = labels, .targets = targets};");
    emit(e, "cnnrt_run_lanes(ctx, n, 1, call->key, step_micro, &job);");
    emit(e, "double total = 0;");
    emit(e, "for (int l = 0; l < LANES; l++) total += job.total[l];");
    emit(e, "if (!isfinite(total)) return total;");
    emit(e, "cnnrt_add_lanes(ctx);");
    emit(e, "cnnrt_update(ctx, PARAM_COUNT);");
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
    emit(e, "static void update_all(cnnrt_ctx *ctx)");
    emit(e, "{");
    emit(e, "cnnrt_update(ctx, PARAM_COUNT);");
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
             shape_elems(n->layers[i].out), lay->t[layer_output(&n->layers[i])].one_sample);
    emit(e, "};");
    emit(e, "for (size_t k = 0; k < sizeof outs / sizeof outs[0]; k++) {");
    emit(e, "for (int l = 0; l < LANES; l++) {");
    emit(e, "const char *ws = (const char *)ctx->workspace + (size_t)l * LANE_BYTES;");
    emit(e, "const int micro_n = ((const lane_record *)ws)->micro_n;");
    emit(e, "const real *y = (const real *)(ws + outs[k].off);");
    emit(e, "const size_t samples = outs[k].one && micro_n > 0 ? 1 : (size_t)micro_n;");
    emit(e, "for (size_t j = 0; j < samples * outs[k].per_sample; j++)");
    emit(e, "    if (!isfinite(y[j])) return outs[k].label;");
    emit(e, "}");
    emit(e, "}");
    emit(e, "return NULL;");
    emit(e, "}");
    emit_blank(e);
}

/* ------------------------------------------------------------------------
 * Tables and the model
 */

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
    emit(e, ".lanes = LANES,");
    emit(e, ".micro_batch = MICRO,");
    emit(e, ".lane_bytes = LANE_BYTES,");
    emit(e, ".lane_grads_offset = LANE_GRADS,");
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
    if (!plan_network(n, o->real_size, o->micro, o->kernels, &lay)) {
        fprintf(stderr, "cnnc: error: %s: the buffers at batch %" PRId64
                " do not fit in 64-bit sizes\n", n->source_name, n->train.batch);
        return false;
    }
    emit_prelude(&e, o);
    emit_offsets(&e, &lay);
    for (int i = 0; i < n->nlayers; i++)
        emit_layer(&e, &lay, i, o->kernels);
    emit(&e, "/* ---- the network ---------------------------------------------- */");
    emit_blank(&e);
    emit_forward_micro(&e, &lay);
    emit_backward_micro(&e, &lay, o->kernels);
    emit_loss(&e, &lay);
    emit_forward_all(&e);
    emit_backward_all(&e, &lay);
    emit_train_step(&e, &lay);
    emit_first_nonfinite(&e, &lay);
    emit_param_table(&e);
    emit_string(&e, "net_source", o->src->text, o->src->len);
    char *summary = NULL;
    size_t summary_len = 0;
    FILE *s = open_memstream(&summary, &summary_len);
    summary_print(s, n, o->real_size, o->micro, o->kernels);
    fclose(s);
    emit_string(&e, "net_summary", summary, summary_len);
    free(summary);
    emit_model(&e, o);
    plan_free(&lay);
    free(e.locals);
    return !ferror(out);
}
