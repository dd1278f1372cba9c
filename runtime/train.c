/* train.c: the training loop, its progress output, and the helpers that
 * eval and bench share (one step, accuracy, evaluation in batches). */
#include "rt.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int rt_argmax(const cnnrt_model *m, const void *out, int i)
{
    int best = 0;
    int64_t k = m->outputs;
    double bv = rt_get(m->real_size, out, (int64_t)i * k);
    for (int64_t j = 1; j < k; j++) {
        double v = rt_get(m->real_size, out, (int64_t)i * k + j);
        if (v > bv) {
            bv = v;
            best = (int)j;
        }
    }
    return best;
}

int rt_count_correct(const cnnrt_ctx *ctx, int n, const int32_t *labels)
{
    int correct = 0;
    if (!labels)
        return 0;
    for (int i = 0; i < n; i++)
        correct += rt_argmax(ctx->model, ctx->output, i) == labels[i];
    return correct;
}

double rt_train_step(cnnrt_ctx *ctx, int n, const void *x, const int32_t *labels,
                     const void *targets)
{
    const cnnrt_model *m = ctx->model;
    ctx->training = 1;
    if (m->train_step) {
        ctx->step++;
        rt_group_split(true);
        double loss = m->train_step(ctx, n, x, labels, targets);
        rt_group_split(false);
        return loss;
    }
    m->forward(ctx, n, x);
    double loss = m->loss(ctx, n, labels, targets);
    if (!isfinite(loss))
        return loss;
    m->backward(ctx, n);
    ctx->step++;
    m->update(ctx);
    return loss;
}

double rt_train_step_bytes(cnnrt_ctx *ctx, int n, const uint8_t *x, const int32_t *labels,
                           const void *targets)
{
    ctx->training = 1;
    ctx->step++;
    rt_group_split(true);
    double loss = ctx->model->train_step_bytes(ctx, n, x, labels, targets);
    rt_group_split(false);
    return loss;
}

/* A batch's buffers: its inputs in the model's reals (x), or as bytes (x8)
 * for a train step that takes them so. */
typedef struct Batch {
    void *x, *targets;
    uint8_t *x8;
    int32_t *labels;
    int64_t *idx;
} Batch;

static int batch_alloc(Batch *b, const cnnrt_model *m, int batch, bool bytes)
{
    memset(b, 0, sizeof *b);
    size_t inputs = (size_t)batch * (size_t)m->input_size;
    if (bytes)
        b->x8 = rt_aligned_alloc(inputs);
    else
        b->x = rt_aligned_alloc(inputs * (size_t)m->real_size);
    b->labels = rt_calloc((size_t)batch, sizeof *b->labels);
    b->idx = rt_calloc((size_t)batch, sizeof *b->idx);
    if (m->loss_kind == CNNRT_MSE)
        b->targets = rt_aligned_alloc((size_t)batch * (size_t)m->outputs *
                                      (size_t)m->real_size);
    return (b->x || b->x8) && b->labels && b->idx && (m->loss_kind != CNNRT_MSE || b->targets)
               ? 0 : -1;
}

static void batch_free(Batch *b)
{
    free(b->x);
    free(b->x8);
    free(b->targets);
    free(b->labels);
    free(b->idx);
}

/* Fills the batch from samples order[0..n) of d. */
static void batch_fill(Batch *b, const rt_data *d, const cnnrt_model *m,
                       const int64_t *order, int n, rt_pool *pool)
{
    if (b->x8)
        rt_data_input_bytes(d, m, order, n, b->x8, pool);
    else
        rt_data_inputs(d, m, order, n, b->x, pool);
    rt_data_targets(d, m, order, n, b->labels, b->targets);
}

int rt_evaluate(cnnrt_ctx *ctx, const rt_data *d, int64_t start, int64_t count,
                int batch, double *loss, double *acc)
{
    const cnnrt_model *m = ctx->model;
    Batch b;
    if (batch_alloc(&b, m, batch, false) != 0) {
        batch_free(&b);
        return -1;
    }
    int saved = ctx->training, rc = 0;
    ctx->training = 0;
    double sum = 0;
    int64_t correct = 0;
    for (int64_t s = 0; s < count; s += batch) {
        int n = (int)(count - s < batch ? count - s : batch);
        for (int i = 0; i < n; i++)
            b.idx[i] = start + s + i;
        batch_fill(&b, d, m, b.idx, n, ctx->pool);
        const int32_t *labels = d->y_is_labels ? b.labels : NULL;
        m->forward(ctx, n, b.x);
        double batch_loss = m->loss(ctx, n, labels, b.targets);
        if (!isfinite(batch_loss)) {
            rt_error("the loss is %s on samples %lld to %lld (batch %lld of %lld) of %s",
                     isnan(batch_loss) ? "NaN" : "infinite", (long long)(start + s),
                     (long long)(start + s + n - 1), (long long)(s / batch + 1),
                     (long long)((count + batch - 1) / batch), d->x.path);
            rc = 1;
            break;
        }
        sum += batch_loss * n;
        correct += rt_count_correct(ctx, n, labels);
    }
    ctx->training = saved;
    *loss = sum / (double)count;
    *acc = d->y_is_labels ? (double)correct / (double)count : -1;
    batch_free(&b);
    return rc;
}

/* ---- progress ---------------------------------------------------------------- */

typedef struct Progress {
    bool tty;
    double last_draw;
    int64_t epoch, epochs;
} Progress;

static void fmt_time(char *buf, size_t size, double s)
{
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

static void progress_draw(Progress *p, int64_t step, int64_t steps, double loss,
                          double acc, double ips, double eta, bool force)
{
    double now = rt_now();
    if (!p->tty || !rt_group_leader() || (!force && now - p->last_draw < 0.1))
        return;
    p->last_draw = now;
    enum { WIDTH = 24 };
    char bar[WIDTH + 1];
    int filled = (int)(WIDTH * step / (steps ? steps : 1));
    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < filled ? '=' : i == filled ? '>' : ' ';
    bar[WIDTH] = '\0';
    char etas[32], accs[32] = "";
    fmt_time(etas, sizeof etas, eta);
    if (acc >= 0)
        snprintf(accs, sizeof accs, "  acc %.2f%%", 100 * acc);
    fprintf(stderr, "\r\033[Kepoch %lld/%lld [%s] %lld/%lld  loss %.4f%s  %.0f img/s  ETA %s",
            (long long)p->epoch, (long long)p->epochs, bar, (long long)step,
            (long long)steps, loss, accs, ips, etas);
    fflush(stderr);
}

/* ---- the CSV log ---------------------------------------------------------------- */

/* Every write of the log is checked: on a full disk fprintf and fflush fail
 * without a word, and the run would end with status 0 and a short log. */
static int log_flush(FILE *log, const char *path)
{
    errno = 0;
    if (fflush(log) == 0 && !ferror(log))
        return 0;
    rt_error("--log %s: cannot write: %s", path, strerror(errno ? errno : EIO));
    return -1;
}

static int log_close(FILE *log, const char *path)
{
    int rc = log_flush(log, path);
    if (fclose(log) != 0 && rc == 0) {
        rt_error("--log %s: cannot write: %s", path, strerror(errno));
        rc = -1;
    }
    return rc;
}

/* A new log starts with its header; a resumed run's log (append) goes on
 * after the lines already there, or starts one where there is none. */
static FILE *log_open(const char *path, bool append)
{
    FILE *log = fopen(path, append ? "a" : "w");
    if (!log) {
        rt_error("--log %s: cannot %s the file: %s", path, append ? "open" : "create",
                 strerror(errno));
        return NULL;
    }
    if (!append || (fseek(log, 0, SEEK_END) == 0 && ftell(log) == 0))
        fputs("epoch,step,loss,acc,val_loss,val_acc,images_per_s\n", log);
    if (log_flush(log, path) != 0) {
        fclose(log);
        return NULL;
    }
    return log;
}

/* One epoch's line; an empty field for what there is none of. */
static int log_epoch(FILE *log, const char *path, int64_t epoch, int64_t step, double tl,
                     double ta, bool has_val, double vl, double va, double ips)
{
    char acc[32] = "", vloss[32] = "", vacc[32] = "";
    if (ta >= 0)
        snprintf(acc, sizeof acc, "%.6f", ta);
    if (has_val)
        snprintf(vloss, sizeof vloss, "%.6g", vl);
    if (has_val && va >= 0)
        snprintf(vacc, sizeof vacc, "%.6f", va);
    fprintf(log, "%lld,%lld,%.6g,%s,%s,%s,%.1f\n", (long long)epoch, (long long)step, tl,
            acc, vloss, vacc, ips);
    return log_flush(log, path);
}

/* ---- the loop ----------------------------------------------------------------- */

void rt_nonfinite_where(const cnnrt_ctx *ctx, char *buf, size_t size)
{
    const char *layer = ctx->model->first_nonfinite((cnnrt_ctx *)ctx);
    if (layer)
        snprintf(buf, size, "the first layer with non-finite outputs is %s", layer);
    else
        snprintf(buf, size, "every layer's outputs are finite, the loss is not");
}

/* The line that closes an epoch. */
static void print_epoch(const Progress *p, int64_t epoch, int64_t step, double tl, double ta,
                        bool has_val, double vl, double va, double ips, double elapsed)
{
    if (p->tty)
        fprintf(stderr, "\r\033[K");
    fprintf(stderr, "epoch %lld/%lld  step %lld  loss %.4f", (long long)epoch,
            (long long)p->epochs, (long long)step, tl);
    if (ta >= 0)
        fprintf(stderr, "  acc %.2f%%", 100 * ta);
    if (has_val) {
        fprintf(stderr, "  val_loss %.4f", vl);
        if (va >= 0)
            fprintf(stderr, "  val_acc %.2f%%", 100 * va);
    }
    fprintf(stderr, "  %.0f img/s  %.1f s\n", ips, elapsed);
}

/* what: "the loss is nan", ... */
static int report_divergence(const cnnrt_ctx *ctx, int64_t step, int64_t epoch,
                             const char *what, const char *save, int64_t saved_epoch)
{
    if (!rt_group_leader())     /* every rank diverges alike; one says so */
        return RT_FAIL;
    char kept[512];
    if (save && saved_epoch > 0)
        snprintf(kept, sizeof kept, "%s keeps the checkpoint of epoch %lld", save,
                 (long long)saved_epoch);
    else
        snprintf(kept, sizeof kept, "no checkpoint was written");
    char where[300];
    rt_nonfinite_where(ctx, where, sizeof where);
    rt_error("training diverged at step %lld (epoch %lld): %s; %s; %s "
             "(try a lower --lr)", (long long)step, (long long)epoch, what, where, kept);
    rt_print_error();
    return RT_FAIL;
}

static bool params_finite(const cnnrt_ctx *ctx)
{
    const cnnrt_model *m = ctx->model;
    for (int64_t j = 0; j < m->param_count; j++)
        if (!isfinite(rt_get(m->real_size, ctx->params, j)))
            return false;
    return true;
}

static int load_data(rt_data *d, const cnnrt_model *m, const char *x, const char *y,
                     const rt_opts *o)
{
    rt_data_opts how = {o->resize, (int)o->threads};
    int rc = rt_data_load(d, m, x, y, true, &how);
    if (rc == 0)
        return RT_OK;
    rt_print_error();
    return rc == -2 ? RT_USAGE : RT_FAIL;
}

/* Ctrl-C: the first asks the loop to stop after the step it is in (and
 * save); the second ends the process at once, as SIGINT does by default. */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    interrupted = 1;
    signal(sig, SIG_DFL);
}

/* --save's checkpoint and, beside it, the training state that --resume
 * reads (not beside a device or FIFO, which keeps nothing). The checkpoint
 * first: a kill between the two leaves a state that names other weights,
 * which --resume refuses, and a checkpoint that --init still takes. */
static int save_run(const cnnrt_ctx *ctx, const char *path, rt_run *run)
{
    if (rt_ckpt_save(ctx, path) != 0)
        return -1;
    if (rt_is_stream(path))
        return 0;
    run->weights = rt_weights_hash(ctx);
    run->dropout = ctx->rng;
    char *state = rt_state_path(path);
    int rc = state && rt_state_save(ctx, state, run) == 0 ? 0 : -1;
    free(state);
    return rc;
}

/* A run stopped between steps, by Ctrl-C (status 130: what a shell reports
 * for a command ended by SIGINT) or by --pause-after (0): saved where
 * --resume goes on, and the message. */
static int stop_early(cnnrt_ctx *ctx, const rt_opts *o, rt_run *run, bool paused)
{
    int status = paused ? RT_OK : 130;
    const char *why = paused ? "paused" : "interrupted";
    if (!rt_group_leader())
        return status;
    if (o->save && params_finite(ctx)) {
        if (save_run(ctx, o->save, run) != 0) {
            rt_print_error();
            return RT_FAIL;
        }
        fprintf(stderr, "%s: %s in epoch %lld after step %lld; saved %s (--resume %s goes "
                "on from here)\n", rt_prog, why, (long long)run->epoch, (long long)ctx->step,
                o->save, o->save);
    } else {
        fprintf(stderr, "%s: %s in epoch %lld after step %lld; nothing saved%s\n", rt_prog,
                why, (long long)run->epoch, (long long)ctx->step,
                o->save ? " (the parameters are not finite)" : " (no --save)");
    }
    return status;
}

/* The steps this run takes, by --steps or --epochs, refused when they would
 * take the optimizer's step count past RT_MAX_STEP: `before` is its count
 * when the run began (that of --resume's run, else 0). */
static int steps_of_run(const rt_opts *o, int64_t per_epoch, int64_t before, int64_t *total)
{
    uint64_t n = (uint64_t)o->steps;
    if (!o->steps && (!rt_mul_ok((uint64_t)o->epochs, (uint64_t)per_epoch, &n) ||
                      n > (uint64_t)RT_MAX_STEP)) {
        rt_error("train: --epochs %lld of %lld steps each come to more than 2^53 steps, "
                 "the most a run counts", (long long)o->epochs, (long long)per_epoch);
        return -1;
    }
    if (n > (uint64_t)(RT_MAX_STEP - before)) {
        rt_error("train: --resume %s had taken %lld steps before its run; %llu more would "
                 "pass 2^53, the most a run counts", o->resume, (long long)before,
                 (unsigned long long)n);
        return -1;
    }
    *total = (int64_t)n;
    return 0;
}

/* The flags that shape a run (not paths, nor --threads, nor how long this
 * session goes on): what a resumed run should share with the one it goes
 * on, and every process of an MPI run with the others. */
static uint64_t run_flags_hash(const rt_opts *o, const cnnrt_model *m)
{
    struct {
        int64_t epochs, steps, batch, optimizer, no_shuffle, has_val;
        double lr, momentum, beta1, beta2, eps, decay, val_split;
        uint64_t seed, source;
        int64_t schedule, step_epochs, flip, crop;
        double gamma, warmup, label_smoothing, clip;
    } f;
    memset(&f, 0, sizeof f);
    f.epochs = o->epochs;
    f.steps = o->steps;
    f.batch = o->batch;
    f.optimizer = o->optimizer;
    f.no_shuffle = o->no_shuffle;
    f.has_val = o->val_data != NULL;
    f.lr = o->lr;
    f.momentum = o->momentum;
    f.beta1 = o->beta1;
    f.beta2 = o->beta2;
    f.eps = o->eps;
    f.decay = o->decay;
    f.val_split = o->val_split;
    f.seed = o->seed;
    f.source = m->source_hash;
    f.schedule = o->schedule;
    f.step_epochs = o->step_epochs;
    f.flip = o->flip;
    f.crop = o->crop;
    f.gamma = o->gamma;
    f.warmup = o->warmup_epochs;
    f.label_smoothing = o->label_smoothing;
    f.clip = o->clip;
    return rt_hash(0xcbf29ce484222325ull, &f, sizeof f);
}

/* What every process of a run must agree on (rt_group_agree): the flags,
 * the state it starts from (so also --init's and --resume's checkpoints)
 * and where it starts; and the data, byte for byte (data_hash). */
static uint64_t start_hash(const rt_opts *o, const cnnrt_ctx *ctx, const rt_run *run)
{
    const cnnrt_model *m = ctx->model;
    size_t reals = (size_t)m->param_count * (size_t)m->real_size;
    rt_run where = *run;
    where.per_epoch = 0;   /* follows from the data, which data_hash compares */
    uint64_t h = rt_hash(run_flags_hash(o, m), &where, sizeof where);
    h = rt_hash(h, &ctx->step, sizeof ctx->step);
    h = rt_hash(h, ctx->params, reals);
    if (ctx->opt_state)
        h = rt_hash(h, ctx->opt_state, (size_t)cnnrt_opt_slots(ctx->optimizer) * reals);
    if (ctx->buffers)
        h = rt_hash(h, ctx->buffers, m->buffer_bytes);
    return h;
}

/* Where a run starts: at its beginning, from the seed or --init's weights
 * (with a fresh optimizer), or where --resume's run stood. */
static int begin_run(cnnrt_ctx *ctx, const rt_opts *o, int64_t per_epoch, rt_run *run)
{
    memset(run, 0, sizeof *run);
    run->per_epoch = per_epoch;
    run->epoch = 1;
    run->best = -INFINITY;
    run->flags = run_flags_hash(o, ctx->model);
    cnnrt_rng_seed(&run->shuffle, o->seed, 2);
    cnnrt_rng_seed(&run->dropout, o->seed, 3);
    cnnrt_rng_seed(&run->augment, o->seed, 4);
    if (o->init)
        return rt_ckpt_load(ctx, o->init);
    if (!o->resume) {
        cnnrt_init_params(ctx, o->seed);
        return 0;
    }
    char *state = rt_state_path(o->resume);
    if (!state)
        return -1;
    int rc = -1;
    if (rt_ckpt_load(ctx, o->resume) == 0) {
        if (access(state, F_OK) != 0 && errno == ENOENT)
            rt_error("--resume %s: there is no %s, the training state that --save writes "
                     "beside its checkpoint; to start a new run from these weights, give "
                     "--init %s", o->resume, state, o->resume);
        else if (rt_state_load(ctx, state, run) == 0)
            rc = 0;
    }
    if (rc == 0 && run->weights != rt_weights_hash(ctx)) {
        rt_error("--resume %s: %s goes with other weights than %s holds (was the run "
                 "stopped between writing the two?); --init %s starts a new run from "
                 "the weights", o->resume, state, o->resume, o->resume);
        rc = -1;
    }
    if (rc == 0 && run->per_epoch != per_epoch) {
        rt_error("--resume %s: its run took %lld steps an epoch, this one would take "
                 "%lld (another --batch, data set or --val-split); it cannot go on",
                 o->resume, (long long)run->per_epoch, (long long)per_epoch);
        rc = -1;
    }
    if (rc == 0 && run->flags != run_flags_hash(o, ctx->model) && rt_group_leader())
        fprintf(stderr, "%s: warning: --resume %s: the flags differ from those of the run "
                "that saved it; it goes on with these, not as it would have\n", rt_prog,
                o->resume);
    run->flags = run_flags_hash(o, ctx->model);
    free(state);
    return rc;
}

static uint64_t data_hash(const rt_data *d, const rt_data *val)
{
    uint64_t h = 0xcbf29ce484222325ull;
    const rt_file *files[] = {&d->xf, &d->yf, &val->xf, &val->yf};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        h = rt_hash(h, &files[i]->size, sizeof files[i]->size);
        if (files[i]->data)
            h = rt_hash(h, files[i]->data, files[i]->size);
    }
    /* folders of images: the pixels decoded, and their labels */
    const rt_data *sets[] = {d, val};
    for (size_t i = 0; i < 2; i++)
        if (sets[i]->pixels) {
            size_t per = (size_t)sets[i]->x.stride;
            h = rt_hash(h, sets[i]->pixels, (size_t)sets[i]->n * per);
            if (sets[i]->label_bytes)
                h = rt_hash(h, sets[i]->label_bytes, (size_t)sets[i]->n * 4);
        }
    return h;
}

/* A training run in progress: what its epochs share. */
typedef struct Trainer {
    const cnnrt_model *m;
    const rt_opts *o;
    cnnrt_ctx ctx;
    rt_data data, val;
    Batch b;
    int64_t *order;          /* the epoch's order of the training samples */
    int64_t n_train, n_val;  /* the first n_train samples train, the rest validate */
    int batch;
    int64_t total, done;     /* steps of the run, and taken */
    int64_t session;         /* steps taken since this process started */
    rt_run run;              /* where the run stands, as --resume finds it */
    cnnrt_rng shuffle, augment;
    FILE *log;
    Progress prog;
    bool leader;
} Trainer;

/* What the epoch functions return: EPOCH_DONE to go on, EPOCH_FAILED for
 * an error recorded (rt_error) and not yet printed, or the status to end
 * the run with, its message printed. */
enum { EPOCH_DONE = -1, EPOCH_FAILED = -2 };

/* The steps of epoch `epoch` from its step `first` on (a resumed run starts
 * inside one). */
static int train_steps(Trainer *t, int64_t epoch, int64_t first, int64_t this_epoch)
{
    const cnnrt_model *m = t->m;
    const rt_opts *o = t->o;
    rt_run *run = &t->run;
    double t0 = rt_now();
    int64_t seen0 = run->seen;
    for (int64_t s = first; s < this_epoch; s++) {
        int n = (int)(t->n_train - s * t->batch < t->batch ? t->n_train - s * t->batch
                                                             : t->batch);
        Batch *b = &t->b;
        batch_fill(b, &t->data, m, t->order + s * t->batch, n, t->ctx.pool);
        if ((b->x8 ? rt_augment(m, o, b->x8, 1, n, &t->augment)
                   : rt_augment(m, o, b->x, (size_t)m->real_size, n, &t->augment)) != 0)
            return EPOCH_FAILED;
        t->ctx.lr = rt_schedule_lr(o, t->done, run->per_epoch, t->total);
        const int32_t *labels = t->data.y_is_labels ? b->labels : NULL;
        double loss = b->x8 ? rt_train_step_bytes(&t->ctx, n, b->x8, labels, b->targets)
                            : rt_train_step(&t->ctx, n, b->x, labels, b->targets);
        if (!isfinite(loss)) {
            if (t->log && log_close(t->log, o->log) != 0)
                rt_print_error();
            t->log = NULL;
            char what[64];
            snprintf(what, sizeof what, "the loss is %g", loss);
            return report_divergence(&t->ctx, t->ctx.step + (m->train_step ? 0 : 1), epoch,
                                     what, o->save, run->saved_epoch);
        }
        run->loss_sum += loss * n;
        run->correct += rt_count_correct(&t->ctx, n, labels);
        run->seen += n;
        run->epoch_step = s + 1;
        run->step = ++t->done;
        t->session++;
        double el = rt_now() - t0;
        progress_draw(&t->prog, s + 1, this_epoch, run->loss_sum / (double)run->seen,
                      labels ? (double)run->correct / (double)run->seen : -1,
                      (double)(run->seen - seen0) / el,
                      el / (double)(s + 1 - first) * (double)(this_epoch - s - 1),
                      s + 1 == this_epoch);
        bool paused = t->session == o->pause_after;
        if ((interrupted || paused) && s + 1 < this_epoch) {
            if (t->prog.tty)
                fprintf(stderr, "\n");
            run->augment = t->augment;
            return stop_early(&t->ctx, o, run, paused);
        }
    }
    return EPOCH_DONE;
}

/* The end of an epoch: validation, its line, the log, the checkpoints.
 * `seen` samples of it took `elapsed` seconds in this session. */
static int end_epoch(Trainer *t, int64_t epoch, int64_t seen, double elapsed)
{
    const rt_opts *o = t->o;
    rt_run *run = &t->run;
    double tl = run->loss_sum / (double)run->seen;
    double ta = t->data.y_is_labels ? (double)run->correct / (double)run->seen : -1;
    double ips = elapsed > 0 ? (double)seen / elapsed : 0;
    double vl = 0, va = -1;
    bool has_val = o->val_data || t->n_val > 0;
    if (has_val) {
        int ev = o->val_data
                     ? rt_evaluate(&t->ctx, &t->val, 0, t->val.n, t->batch, &vl, &va)
                     : rt_evaluate(&t->ctx, &t->data, t->n_train, t->n_val, t->batch, &vl, &va);
        if (ev == 1) {
            /* Parameters that give NaN on validation are as lost as a NaN
             * training loss: stop before the save that would put them
             * over the last good checkpoint. */
            char what[1200];
            snprintf(what, sizeof what, "on validation, %s", rt_errmsg());
            return report_divergence(&t->ctx, t->ctx.step, epoch, what, o->save,
                                     run->saved_epoch);
        }
        if (ev != 0)
            return EPOCH_FAILED;
    }
    if (t->leader)
        print_epoch(&t->prog, epoch, t->ctx.step, tl, ta, has_val, vl, va, ips, elapsed);
    if (t->log && log_epoch(t->log, o->log, epoch, t->ctx.step, tl, ta, has_val, vl, va,
                            ips) != 0)
        return EPOCH_FAILED;
    /* the position the next epoch starts from */
    run->epoch = epoch + 1;
    run->epoch_step = 0;
    run->loss_sum = 0;
    run->seen = run->correct = 0;
    run->shuffle = t->shuffle;
    run->augment = t->augment;
    /* the best: by accuracy, or by loss where there is none (mse) */
    double score = va >= 0 ? va : -vl;
    bool best = o->save_best && score > run->best;
    if (best)
        run->best = score;
    if (o->save) {
        if (!params_finite(&t->ctx))
            return report_divergence(&t->ctx, t->ctx.step, epoch,
                                     "the parameters are no longer finite", o->save,
                                     run->saved_epoch);
        run->saved_epoch = epoch;
        if (t->leader && save_run(&t->ctx, o->save, run) != 0)
            return EPOCH_FAILED;
    }
    if (best && t->leader) {
        if (rt_ckpt_save(&t->ctx, o->save_best) != 0)
            return EPOCH_FAILED;
        fprintf(stderr, "best so far: saved %s (epoch %lld)\n", o->save_best,
                (long long)epoch);
    }
    return EPOCH_DONE;
}

/* One epoch: its order drawn, its steps, its end. */
static int train_epoch(Trainer *t, int64_t epoch)
{
    t->prog.epoch = epoch;
    t->run.shuffle = t->shuffle;   /* where this epoch's order comes from */
    for (int64_t i = 0; i < t->n_train; i++)
        t->order[i] = i;
    if (!t->o->no_shuffle)
        for (int64_t i = t->n_train - 1; i > 0; i--) {
            int64_t j = (int64_t)cnnrt_rng_below(&t->shuffle, (uint64_t)i + 1);
            int64_t tmp = t->order[i];
            t->order[i] = t->order[j];
            t->order[j] = tmp;
        }
    int64_t per_epoch = t->run.per_epoch;
    int64_t left = t->total - (epoch - 1) * per_epoch;
    int64_t this_epoch = left < per_epoch ? left : per_epoch;
    double t0 = rt_now();
    int64_t seen0 = t->run.seen;
    int rc = train_steps(t, epoch, t->run.epoch_step, this_epoch);
    if (rc != EPOCH_DONE)
        return rc;
    if ((rc = end_epoch(t, epoch, t->run.seen - seen0, rt_now() - t0)) != EPOCH_DONE)
        return rc;
    bool paused = t->session == t->o->pause_after;
    if ((interrupted || paused) && t->done < t->total) {
        if (t->prog.tty)
            fprintf(stderr, "\n");
        return stop_early(&t->ctx, t->o, &t->run, paused);
    }
    return EPOCH_DONE;
}

/* The data, the validation split, the checks of the outputs: RT_OK or the
 * status to stop with before any process starts. */
static int prepare(Trainer *t)
{
    const rt_opts *o = t->o;
    const cnnrt_model *m = t->m;
    int rc;
    if ((rc = load_data(&t->data, m, o->data, o->labels, o)) != RT_OK)
        return rc;
    if (o->val_data && (rc = load_data(&t->val, m, o->val_data, o->val_labels, o)) != RT_OK)
        return rc;
    if ((rc = rt_data_check(&t->data, &t->val, o->val_split > 0, o->resize)) != RT_OK) {
        rt_print_error();
        return rc;
    }
    if (o->val_split > 0) {
        t->n_val = (int64_t)floor((double)t->data.n * o->val_split);
        if (t->n_val < 1 || t->n_val >= t->data.n) {
            rt_error("--val-split %g of the %lld samples of %s leaves %lld for "
                     "validation and %lld for training; expected at least one of each",
                     o->val_split, (long long)t->data.n, o->data, (long long)t->n_val,
                     (long long)(t->data.n - t->n_val));
            rt_print_error();
            return RT_FAIL;
        }
    }
    t->n_train = t->data.n - t->n_val;
    if (rt_augment_check(m, o) != 0) {
        rt_print_error();
        return RT_USAGE;
    }
    if (o->save_best && !o->val_data && o->val_split <= 0) {
        rt_error("--save-best keeps the epoch of the best validation accuracy; give "
                 "--val-data and --val-labels, or --val-split");
        rt_print_error();
        return RT_USAGE;
    }
    if (t->leader && ((o->save && rt_check_writable(o->save, "--save") != 0) ||
                      (o->log && rt_check_writable(o->log, "--log") != 0) ||
                      (o->save_best && rt_check_writable(o->save_best, "--save-best") != 0))) {
        rt_print_error();
        return RT_FAIL;
    }
    return RT_OK;
}

/* The model's state where the run starts, the batch, the order. */
static int start(Trainer *t)
{
    const rt_opts *o = t->o;
    cnnrt_ctx *ctx = &t->ctx;
    if (cnnrt_ctx_init(ctx, t->m, o->optimizer, (int)o->threads) != 0)
        return -1;
    ctx->lr = o->lr;
    ctx->momentum = o->momentum;
    ctx->beta1 = o->beta1;
    ctx->beta2 = o->beta2;
    ctx->eps = o->eps;
    ctx->decay = o->decay;
    ctx->label_smoothing = o->label_smoothing;
    ctx->clip = o->clip;
    t->batch = (int)o->batch;
    int64_t per_epoch = (t->n_train + t->batch - 1) / t->batch;
    if (begin_run(ctx, o, per_epoch, &t->run) != 0 ||
        steps_of_run(o, per_epoch, ctx->step - t->run.step, &t->total) != 0)
        return -1;
    t->done = t->run.step;
    t->shuffle = t->run.shuffle;
    t->augment = t->run.augment;
    ctx->rng = t->run.dropout;
    return batch_alloc(&t->b, t->m, t->batch, rt_data_bytes(&t->data, t->m)) != 0 ||
                   !(t->order = rt_calloc((size_t)t->n_train, sizeof *t->order))
               ? -1 : 0;
}

/* On several processes (MPI), every rank trains alike (each its share of
 * every step) and knows the same losses and parameters, so every decision
 * below is the same on all; rank 0 alone prints, logs and saves. A failure
 * before the ranks agree to run is agreed on (rt_group_agree); one after,
 * on one rank only, ends them all (rt_group_abort). */
int rt_cmd_train(const cnnrt_model *m, const rt_opts *o)
{
    Trainer t;
    memset(&t, 0, sizeof t);
    t.m = m;
    t.o = o;
    t.leader = rt_group_leader();
    void (*old_sigint)(int) = SIG_ERR;
    int rc = prepare(&t);
    if (rc != RT_OK || start(&t) != 0) {
        if (rc == RT_OK) {
            rt_print_error();
            rc = RT_FAIL;
        }
        rc = rt_group_agree(m, rc, 0, 0);
        goto out;
    }
    if ((rc = rt_group_agree(m, RT_OK, start_hash(o, &t.ctx, &t.run),
                             data_hash(&t.data, &t.val))) != RT_OK)
        goto out;
    if (t.done >= t.total) {
        if (t.leader)
            fprintf(stderr, "%s: --resume %s: its run has taken all %lld of its steps; "
                    "nothing to do (give more --epochs or --steps)\n", rt_prog, o->resume,
                    (long long)t.total);
        goto out;
    }
    if (t.leader && o->log && !(t.log = log_open(o->log, o->resume != NULL)))
        goto fail;
    int64_t epochs = (t.total + t.run.per_epoch - 1) / t.run.per_epoch;
    t.prog = (Progress){isatty(2) != 0, 0, 0, epochs};
    if (!o->save && t.leader)
        fprintf(stderr, "%s: note: no --save given; the trained parameters will not be "
                "kept\n", rt_prog);
    interrupted = 0;
    old_sigint = signal(SIGINT, on_sigint);
    rc = EPOCH_DONE;
    for (int64_t epoch = t.run.epoch; epoch <= epochs && rc == EPOCH_DONE; epoch++)
        rc = train_epoch(&t, epoch);
    if (rc == EPOCH_FAILED)
        goto fail;
    if (rc != EPOCH_DONE)
        goto out;
    if (o->save && t.leader)
        fprintf(stderr, "saved %s (step %lld)\n", o->save, (long long)t.ctx.step);
    rc = RT_OK;
    goto out;
fail:
    rt_print_error();
    rc = RT_FAIL;
    if (rt_group_size() > 1)
        rt_group_abort(rc);
out:
    if (old_sigint != SIG_ERR)
        signal(SIGINT, old_sigint);
    if (t.log && log_close(t.log, o->log) != 0 && rc == RT_OK) {
        rt_print_error();
        rc = RT_FAIL;
    }
    free(t.order);
    batch_free(&t.b);
    cnnrt_ctx_free(&t.ctx);
    rt_data_free(&t.val);
    rt_data_free(&t.data);
    return rc;
}
