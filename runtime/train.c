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

static FILE *log_open(const char *path)
{
    FILE *log = fopen(path, "w");
    if (!log) {
        rt_error("--log %s: cannot create the file: %s", path, strerror(errno));
        return NULL;
    }
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

/* The checkpoint of a run stopped by Ctrl-C, and the message. Status 130:
 * what a shell reports for a command ended by SIGINT. */
static int stop_interrupted(cnnrt_ctx *ctx, const rt_opts *o, int64_t epoch)
{
    if (!rt_group_leader())
        return 130;
    if (o->save && params_finite(ctx)) {
        if (rt_ckpt_save(ctx, o->save) != 0) {
            rt_print_error();
            return RT_FAIL;
        }
        fprintf(stderr, "%s: interrupted in epoch %lld at step %lld; saved %s\n", rt_prog,
                (long long)epoch, (long long)ctx->step, o->save);
    } else {
        fprintf(stderr, "%s: interrupted in epoch %lld at step %lld; nothing saved%s\n",
                rt_prog, (long long)epoch, (long long)ctx->step,
                o->save ? " (the parameters are not finite)" : " (no --save)");
    }
    return 130;
}

/* The steps this run takes, by --steps or --epochs, refused when they would
 * take the step count (from --init, else 0) past RT_MAX_STEP. */
static int steps_of_run(const rt_opts *o, int64_t per_epoch, int64_t step, int64_t *total)
{
    uint64_t n = (uint64_t)o->steps;
    if (!o->steps && (!rt_mul_ok((uint64_t)o->epochs, (uint64_t)per_epoch, &n) ||
                      n > (uint64_t)RT_MAX_STEP)) {
        rt_error("train: --epochs %lld of %lld steps each come to more than 2^53 steps, "
                 "the most a run counts", (long long)o->epochs, (long long)per_epoch);
        return -1;
    }
    if (n > (uint64_t)(RT_MAX_STEP - step)) {
        rt_error("train: --init %s has taken %lld steps; %llu more would pass 2^53, the "
                 "most a run counts", o->init, (long long)step, (unsigned long long)n);
        return -1;
    }
    *total = (int64_t)n;
    return 0;
}

/* What every process of a run must agree on (rt_group_agree): the flags
 * that shape the training (not paths, nor --threads) and the state it
 * starts from; and the data, byte for byte. */
static uint64_t flags_hash(const rt_opts *o, const cnnrt_ctx *ctx)
{
    const cnnrt_model *m = ctx->model;
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
    size_t reals = (size_t)m->param_count * (size_t)m->real_size;
    uint64_t h = rt_hash(0xcbf29ce484222325ull, &f, sizeof f);
    h = rt_hash(h, ctx->params, reals);
    if (ctx->opt_state)
        h = rt_hash(h, ctx->opt_state, (size_t)cnnrt_opt_slots(ctx->optimizer) * reals);
    if (ctx->buffers)
        h = rt_hash(h, ctx->buffers, m->buffer_bytes);
    return h;
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

/* On several processes (MPI), every rank trains alike (each its share of
 * every step) and knows the same losses and parameters, so every decision
 * below is the same on all; rank 0 alone prints, logs and saves. A failure
 * before the ranks agree to run is agreed on (rt_group_agree); one after,
 * on one rank only, ends them all (rt_group_abort). */
int rt_cmd_train(const cnnrt_model *m, const rt_opts *o)
{
    rt_data data, val;
    cnnrt_ctx ctx;
    Batch b;
    FILE *log = NULL;
    int64_t *order = NULL;
    int rc = RT_FAIL;
    void (*old_sigint)(int) = SIG_ERR;
    bool agreed = false, leader = rt_group_leader();
    memset(&val, 0, sizeof val);
    memset(&ctx, 0, sizeof ctx);
    memset(&b, 0, sizeof b);

    if ((rc = load_data(&data, m, o->data, o->labels, o)) != RT_OK)
        return rt_group_agree(m, rc, 0, 0);
    if (o->val_data && (rc = load_data(&val, m, o->val_data, o->val_labels, o)) != RT_OK) {
        rt_data_free(&data);
        return rt_group_agree(m, rc, 0, 0);
    }
    if ((rc = rt_data_check(&data, &val, o->val_split > 0, o->resize)) != RT_OK) {
        rt_print_error();
        rt_data_free(&val);
        rt_data_free(&data);
        return rt_group_agree(m, rc, 0, 0);
    }
    rc = RT_FAIL;
    int64_t n_val = 0;
    if (o->val_split > 0) {
        n_val = (int64_t)floor((double)data.n * o->val_split);
        if (n_val < 1 || n_val >= data.n) {
            rt_error("--val-split %g of the %lld samples of %s leaves %lld for "
                     "validation and %lld for training; expected at least one of each",
                     o->val_split, (long long)data.n, o->data, (long long)n_val,
                     (long long)(data.n - n_val));
            goto fail;
        }
    }
    int64_t n_train = data.n - n_val;
    if (rt_augment_check(m, o) != 0) {
        rt_print_error();
        rc = rt_group_agree(m, RT_USAGE, 0, 0);
        goto out;
    }
    if (leader && o->save && rt_check_writable(o->save, "--save") != 0)
        goto fail;
    if (leader && o->log && rt_check_writable(o->log, "--log") != 0)
        goto fail;
    if (leader && o->save_best && rt_check_writable(o->save_best, "--save-best") != 0)
        goto fail;
    if (o->save_best && !o->val_data && o->val_split <= 0) {
        rt_error("--save-best keeps the epoch of the best validation accuracy; give "
                 "--val-data and --val-labels, or --val-split");
        rt_print_error();
        rc = rt_group_agree(m, RT_USAGE, 0, 0);
        goto out;
    }
    if (cnnrt_ctx_init(&ctx, m, o->optimizer, (int)o->threads) != 0)
        goto fail;
    ctx.lr = o->lr;
    ctx.momentum = o->momentum;
    ctx.beta1 = o->beta1;
    ctx.beta2 = o->beta2;
    ctx.eps = o->eps;
    ctx.decay = o->decay;
    ctx.label_smoothing = o->label_smoothing;
    ctx.clip = o->clip;
    if (o->init) {
        bool state;
        if (rt_ckpt_load(&ctx, o->init, true, &state) != 0)
            goto fail;
    } else {
        cnnrt_init_params(&ctx, o->seed);
    }
    int batch = (int)o->batch;
    int64_t per_epoch = (n_train + batch - 1) / batch;
    int64_t total;
    if (steps_of_run(o, per_epoch, ctx.step, &total) != 0)
        goto fail;
    if (batch_alloc(&b, m, batch, rt_data_bytes(&data, m)) != 0 || !(order = rt_calloc((size_t)n_train, sizeof *order)))
        goto fail;
    agreed = true;
    if ((rc = rt_group_agree(m, RT_OK, flags_hash(o, &ctx), data_hash(&data, &val))) != RT_OK)
        goto out;
    rc = RT_FAIL;
    if (leader && o->log && !(log = log_open(o->log)))
        goto fail;

    cnnrt_rng shuffle;
    cnnrt_rng_seed(&shuffle, o->seed, 2);
    cnnrt_rng_seed(&ctx.rng, o->seed, 3);
    cnnrt_rng augment;
    cnnrt_rng_seed(&augment, o->seed, 4);
    int64_t epochs = (total + per_epoch - 1) / per_epoch;
    int64_t done = 0, saved_epoch = 0;
    Progress prog = {isatty(2) != 0, 0, 0, epochs};
    if (!o->save && leader)
        fprintf(stderr, "%s: note: no --save given; the trained parameters will not be "
                "kept\n", rt_prog);

    double best = -INFINITY;
    interrupted = 0;
    old_sigint = signal(SIGINT, on_sigint);
    for (int64_t epoch = 1; epoch <= epochs; epoch++) {
        prog.epoch = epoch;
        for (int64_t i = 0; i < n_train; i++)
            order[i] = i;
        if (!o->no_shuffle)
            for (int64_t i = n_train - 1; i > 0; i--) {
                int64_t j = (int64_t)cnnrt_rng_below(&shuffle, (uint64_t)i + 1);
                int64_t t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
        double t0 = rt_now(), loss_sum = 0;
        int64_t seen = 0, correct = 0, steps = 0;
        int64_t this_epoch = total - done < per_epoch ? total - done : per_epoch;
        for (int64_t s = 0; s < this_epoch; s++) {
            int n = (int)(n_train - s * batch < batch ? n_train - s * batch : batch);
            batch_fill(&b, &data, m, order + s * batch, n, ctx.pool);
            if ((b.x8 ? rt_augment(m, o, b.x8, 1, n, &augment)
                      : rt_augment(m, o, b.x, (size_t)m->real_size, n, &augment)) != 0)
                goto fail;
            ctx.lr = rt_schedule_lr(o, done, per_epoch, total);
            const int32_t *labels = data.y_is_labels ? b.labels : NULL;
            double loss = b.x8 ? rt_train_step_bytes(&ctx, n, b.x8, labels, b.targets)
                               : rt_train_step(&ctx, n, b.x, labels, b.targets);
            if (!isfinite(loss)) {
                if (log && log_close(log, o->log) != 0)
                    rt_print_error();
                log = NULL;
                char what[64];
                snprintf(what, sizeof what, "the loss is %g", loss);
                rc = report_divergence(&ctx, ctx.step + (m->train_step ? 0 : 1), epoch,
                                       what, o->save, saved_epoch);
                goto out;
            }
            loss_sum += loss * n;
            correct += rt_count_correct(&ctx, n, labels);
            seen += n;
            steps++;
            done++;
            double el = rt_now() - t0;
            progress_draw(&prog, steps, this_epoch, loss_sum / (double)seen,
                          labels ? (double)correct / (double)seen : -1, (double)seen / el,
                          el / (double)steps * (double)(this_epoch - steps),
                          steps == this_epoch);
            if (interrupted) {
                if (prog.tty)
                    fprintf(stderr, "\n");
                rc = stop_interrupted(&ctx, o, epoch);
                goto out;
            }
        }
        double elapsed = rt_now() - t0;
        double ips = elapsed > 0 ? (double)seen / elapsed : 0;
        double tl = loss_sum / (double)seen;
        double ta = data.y_is_labels ? (double)correct / (double)seen : -1;
        double vl = 0, va = -1;
        bool has_val = o->val_data || n_val > 0;
        if (has_val) {
            int ev = o->val_data ? rt_evaluate(&ctx, &val, 0, val.n, batch, &vl, &va)
                                 : rt_evaluate(&ctx, &data, n_train, n_val, batch, &vl, &va);
            if (ev == 1) {
                /* Parameters that give NaN on validation are as lost as a
                 * NaN training loss: stop before the save that would put
                 * them over the last good checkpoint. */
                char what[1200];
                snprintf(what, sizeof what, "on validation, %s", rt_errmsg());
                rc = report_divergence(&ctx, ctx.step, epoch, what, o->save, saved_epoch);
                goto out;
            }
            if (ev != 0)
                goto fail;
        }
        if (leader)
            print_epoch(&prog, epoch, ctx.step, tl, ta, has_val, vl, va, ips, elapsed);
        if (log && log_epoch(log, o->log, epoch, ctx.step, tl, ta, has_val, vl, va, ips) != 0)
            goto fail;
        if (o->save) {
            if (!params_finite(&ctx)) {
                rc = report_divergence(&ctx, ctx.step, epoch,
                                       "the parameters are no longer finite", o->save,
                                       saved_epoch);
                goto out;
            }
            if (leader && rt_ckpt_save(&ctx, o->save) != 0)
                goto fail;
            saved_epoch = epoch;
        }
        /* the best: by accuracy, or by loss where there is none (mse) */
        double score = va >= 0 ? va : -vl;
        if (o->save_best && score > best) {
            best = score;
            if (leader && rt_ckpt_save(&ctx, o->save_best) != 0)
                goto fail;
            if (leader)
                fprintf(stderr, "best so far: saved %s (epoch %lld)\n", o->save_best,
                        (long long)epoch);
        }
    }
    if (o->save && leader)
        fprintf(stderr, "saved %s (step %lld)\n", o->save, (long long)ctx.step);
    rc = RT_OK;
    goto out;
fail:
    rt_print_error();
    rc = RT_FAIL;
    if (!agreed)
        rc = rt_group_agree(m, rc, 0, 0);
    else if (rt_group_size() > 1)
        rt_group_abort(rc);
out:
    if (old_sigint != SIG_ERR)
        signal(SIGINT, old_sigint);
    if (log && log_close(log, o->log) != 0 && rc == RT_OK) {
        rt_print_error();
        rc = RT_FAIL;
    }
    free(order);
    batch_free(&b);
    cnnrt_ctx_free(&ctx);
    rt_data_free(&val);
    rt_data_free(&data);
    return rc;
}
