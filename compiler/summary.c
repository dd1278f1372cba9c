/* summary.c: cnnc --summary, a table of the layers, the totals, the training
 * settings and the memory plan at the batch.
 *
 *   layer  kind     output    parameters  MFLOP
 *   -      Input    96x96x3            -      -
 *   C1     Conv     47x47x40       1,960   8.48
 *   ...
 *   total                      1,598,990  57.47
 *
 * Columns size themselves to the longest entry, so long labels stay aligned.
 * MFLOP are forward, per sample, 10^6 FLOP (2 per multiply-add). */
#include "cnnc.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* 1598990 -> "1,598,990" */
static const char *commas(int64_t v, char *buf, size_t size)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%" PRId64, v < 0 ? -v : v);
    size_t used = 0;
    if (v < 0 && used + 1 < size)
        buf[used++] = '-';
    for (int i = 0; i < n && used + 1 < size; i++) {
        buf[used++] = digits[i];
        if ((n - 1 - i) % 3 == 0 && i != n - 1 && used + 1 < size)
            buf[used++] = ',';
    }
    buf[used] = '\0';
    return buf;
}

static int64_t layer_params(const Layer *l)
{
    int64_t sum = 0;
    for (int i = 0; i < l->nparams; i++)
        sum += l->params[i].count;   /* each < 2^31, at most two */
    return sum;
}

typedef struct Widths {
    int label, kind, shape, params, mflop;
} Widths;

static int max_int(int a, int b)
{
    return a > b ? a : b;
}

static Widths measure(const Network *n, int64_t total_params, double total_mflop)
{
    char buf[64];
    Widths w = {.label = 5, .kind = 5, .shape = 6, .params = 10, .mflop = 5};
    w.shape = max_int(w.shape, (int)strlen(shape_str(n->input, buf, sizeof buf)));
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        w.label = max_int(w.label, (int)strlen(l->label));
        w.kind = max_int(w.kind, (int)strlen(l->kind->name));
        w.shape = max_int(w.shape, (int)strlen(shape_str(l->out, buf, sizeof buf)));
    }
    w.params = max_int(w.params, (int)strlen(commas(total_params, buf, sizeof buf)));
    w.mflop = max_int(w.mflop, snprintf(buf, sizeof buf, "%.2f", total_mflop));
    return w;
}

static void print_row(FILE *f, const Widths *w, const char *label, const char *kind,
                      const char *shape, const char *params, const char *mflop)
{
    fprintf(f, "  %-*s  %-*s  %-*s  %*s  %*s\n", w->label, label, w->kind, kind, w->shape,
            shape, w->params, params, w->mflop, mflop);
}

static void print_layers(FILE *f, const Network *n)
{
    int64_t total_params = 0;
    double total_flops = 0;
    for (int i = 0; i < n->nlayers; i++) {
        total_params += layer_params(&n->layers[i]);
        total_flops += n->layers[i].kind->flops(&n->layers[i]);
    }
    Widths w = measure(n, total_params, total_flops / 1e6);
    char shape[64], params[32], mflop[32];
    print_row(f, &w, "layer", "kind", "output", "parameters", "MFLOP");
    print_row(f, &w, "-", "Input", shape_str(n->input, shape, sizeof shape), "-", "-");
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        snprintf(mflop, sizeof mflop, "%.2f", l->kind->flops(l) / 1e6);
        print_row(f, &w, l->label, l->kind->name, shape_str(l->out, shape, sizeof shape),
                  commas(layer_params(l), params, sizeof params), mflop);
    }
    snprintf(mflop, sizeof mflop, "%.2f", total_flops / 1e6);
    print_row(f, &w, "total", "", "", commas(total_params, params, sizeof params), mflop);
}

static void print_train(FILE *f, const Train *t)
{
    fprintf(f, "training%s: batch %" PRId64 ", %" PRId64 " epoch%s, loss %s, optimizer %s "
            "(lr %g", t->declared ? "" : " (defaults)", t->batch, t->epochs,
            t->epochs == 1 ? "" : "s", loss_names[t->loss], optimizer_names[t->optimizer],
            t->lr);
    if (t->optimizer == OPT_MOMENTUM || t->optimizer == OPT_NESTEROV)
        fprintf(f, ", momentum %g", t->momentum);
    if (t->optimizer == OPT_ADAM)
        fprintf(f, ", beta1 %g, beta2 %g, eps %g", t->beta1, t->beta2, t->eps);
    if (t->optimizer == OPT_ADAMW)
        fprintf(f, ", beta1 %g, beta2 %g, eps %g", t->beta1, t->beta2, t->eps);
    if (t->decay > 0)
        fprintf(f, ", decay %g", t->decay);
    fprintf(f, "), init %s, seed %" PRIu64, init_names[t->init], t->seed);
    if (t->schedule == SCHEDULE_STEP)
        fprintf(f, ", schedule step (gamma %g every %" PRId64 " epoch%s)", t->gamma,
                t->step_size, t->step_size == 1 ? "" : "s");
    else if (t->schedule == SCHEDULE_COSINE)
        fprintf(f, ", schedule cosine");
    if (t->warmup > 0)
        fprintf(f, ", warm-up %g epoch%s", t->warmup, t->warmup == 1 ? "" : "s");
    if (t->label_smoothing > 0)
        fprintf(f, ", label smoothing %g", t->label_smoothing);
    if (t->clip > 0)
        fprintf(f, ", gradients clipped to norm %g", t->clip);
    if (t->flip)
        fprintf(f, ", random flips");
    if (t->crop > 0)
        fprintf(f, ", random crops (padding %" PRId64 ")", t->crop);
    fputc('\n', f);
}

static void print_values_row(FILE *f, const char *what, int64_t values, int64_t real_size)
{
    char v[32], b[32];
    fprintf(f, "  %-28s %14s values %16s bytes %10.2f MiB\n", what, commas(values, v, sizeof v),
            commas(values * real_size, b, sizeof b),
            (double)values * (double)real_size / (1024.0 * 1024.0));
}

static void print_bytes_row(FILE *f, const char *what, int64_t bytes)
{
    char b[32];
    fprintf(f, "  %-28s %14s        %16s bytes %10.2f MiB\n", what, "", commas(bytes, b, sizeof b),
            (double)bytes / (1024.0 * 1024.0));
}

/* The plan the generated trainer allocates (plan.c). */
static void print_plan(FILE *f, const Network *n, int64_t real_size, int64_t micro, int lanes,
                       Kernels kernels, int64_t fast_budget)
{
    MemPlan p;
    bool *compact = xcalloc((size_t)n->nlayers + 1, sizeof *compact);
    int ncompact = 0;
    int64_t code_bytes = 0;
    if (kernels == KERNELS_FAST)
        emit_choose_kernels(n, real_size, micro, lanes, fast_budget, compact, &ncompact,
                            &code_bytes);
    bool planned = plan_network_mixed(n, real_size, micro, lanes, kernels,
                                      ncompact ? compact : NULL, &p);
    if (!planned) {
        free(compact);
        fputs("memory plan: too large to count in 64 bits\n", f);
        return;
    }
    if (ncompact > 0) {
        fprintf(f, "kernels: %d of %d layers compact (the reference tier's loops), to keep the "
                "generated C within budget:", ncompact, n->nlayers);
        for (int i = 0, shown = 0; i < n->nlayers; i++)
            if (compact[i] && shown++ < 8)
                fprintf(f, " %s", n->layers[i].label);
        fputs(ncompact > 8 ? " ...\n\n" : "\n\n", f);
    }
    free(compact);
    fprintf(f, "memory plan at batch %" PRId64 " in micro-batches of %" PRId64 " on %d lane%s"
            " (f%d, %" PRId64 " bytes per value):\n",
            p.batch, p.micro, p.lanes, p.lanes == 1 ? "" : "s", (int)(real_size * 8), real_size);
    /* Each lane has its own maps, buffers, scratch and (but lane 0, whose
     * are the trainer's) gradients. */
    print_values_row(f, "parameters", p.params, real_size);
    print_values_row(f, "gradients", p.params * p.lanes, real_size);
    print_values_row(f, "optimizer state", p.opt_state, real_size);
    print_bytes_row(f, "activations for backward", p.activations * p.lanes);
    char what[64];
    snprintf(what, sizeof what, "gradient buffers (%d a lane)", p.ngrad_slots);
    print_bytes_row(f, what, p.gradient_buffers * p.lanes);
    print_bytes_row(f, "layer scratch", p.layer_scratch * p.lanes);
    print_bytes_row(f, "input from bytes", p.input_bytes * p.lanes);
    print_bytes_row(f, "total", p.total_bytes);
    plan_free(&p);
}

void summary_print(FILE *f, const Network *n, int64_t real_size, int64_t micro, int lanes,
                   Kernels kernels, int64_t fast_budget)
{
    char shape[64];
    fprintf(f, "%s (%s): input %s, %d layer%s\n\n", n->name, n->source_name,
            shape_str(n->input, shape, sizeof shape), n->nlayers, n->nlayers == 1 ? "" : "s");
    print_layers(f, n);
    fputc('\n', f);
    print_train(f, &n->train);
    fputc('\n', f);
    print_plan(f, n, real_size, micro, lanes, kernels, fast_budget);
}
