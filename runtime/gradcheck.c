/* gradcheck.c: backward's gradients against central finite differences.
 *
 * In the model's own precision, on a small random batch with random labels
 * (inputs uniform in [0, 1), mse targets too). For each checked element w:
 *   numeric = (L(w + h) - L(w - h)) / ((w + h) - (w - h)),  h = step*max(1, |w|)
 * with the denominators taken after rounding to the model's reals. An element
 * fails when |numeric - analytic| > atol and the relative error
 * |numeric - analytic| / max(|numeric|, |analytic|, atol) > tolerance, unless
 * the one-sided slopes (L(w+h) - L(w))/h and (L(w) - L(w-h))/h differ by at
 * least 1.5 times that error: then a kink of ReLU or max lies within h and the
 * element is skipped (a wrong gradient leaves the slopes alike). An element
 * that fails gets more tries with h/4 and h/16, which a kink may no longer
 * span. A tensor fails when more than a fraction (--max-failures: 0 for f64;
 * 0.05 for f32, where h must be large and deep ReLU/max networks put kinks
 * everywhere) of its checked elements fail. f64 is the precise check.
 * Dropout sees
 * the same mask in every evaluation: ctx->rng is reset before each forward.
 */
#include "rt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Check {
    cnnrt_ctx *ctx;
    int n;
    const void *x, *targets;
    const int32_t *labels;
    cnnrt_rng dropout;
} Check;

static double eval_loss(Check *c)
{
    const cnnrt_model *m = c->ctx->model;
    c->ctx->rng = c->dropout;
    c->ctx->training = 1;
    m->forward(c->ctx, c->n, c->x);
    return m->loss(c->ctx, c->n, c->labels, c->targets);
}

/* Smaller steps tried after a failure: h/4, h/16. */
#define RETRIES 2
typedef enum { PASSED, KINK, FAILED } VerdictKind;

typedef struct Verdict {
    VerdictKind kind;
    double abs_err, rel_err;
} Verdict;

/* Parameter element j against its analytic gradient with step h. */
static Verdict judge(Check *c, int64_t j, double h, double base, double ana,
                     double atol, double rtol)
{
    int rs = c->ctx->model->real_size;
    void *params = c->ctx->params;
    double w = rt_get(rs, params, j);
    double step = h * (fabs(w) > 1 ? fabs(w) : 1);
    rt_set(rs, params, j, w + step);
    double wp = rt_get(rs, params, j);
    double lp = eval_loss(c);
    rt_set(rs, params, j, w - step);
    double wm = rt_get(rs, params, j);
    double lm = eval_loss(c);
    rt_set(rs, params, j, w);
    double num = (lp - lm) / (wp - wm);
    Verdict v = {PASSED, fabs(num - ana), 0};
    v.rel_err = v.abs_err / fmax(fmax(fabs(num), fabs(ana)), atol);
    if (!isfinite(num) || !isfinite(ana)) {
        v.kind = FAILED;
        v.abs_err = v.rel_err = INFINITY;
    } else if (v.abs_err > atol && v.rel_err > rtol) {
        /* A kink (ReLU, max) between w - h and w + h makes the one-sided
         * slopes differ by twice the central difference's error; a wrong
         * gradient leaves them alike. */
        double up = (lp - base) / (wp - w), down = (base - lm) / (w - wm);
        v.kind = fabs(up - down) >= 1.5 * v.abs_err ? KINK : FAILED;
    }
    return v;
}

int rt_cmd_gradcheck(const cnnrt_model *m, const rt_opts *o)
{
    int rs = m->real_size;
    double h = o->step_size > 0 ? o->step_size : rs == 8 ? 1e-6 : 1.0 / 256;
    double rtol = o->tolerance > 0 ? o->tolerance : rs == 8 ? 1e-6 : 2e-2;
    double atol = o->atol > 0 ? o->atol : rs == 8 ? 1e-8 : 1e-3;
    double max_fail = o->max_fail >= 0 ? o->max_fail : rs == 8 ? 0 : 0.05;
    int n = o->batch_given ? (int)o->batch : m->max_batch < 4 ? m->max_batch : 4;
    cnnrt_ctx ctx;
    if (cnnrt_ctx_init(&ctx, m, CNNRT_SGD, (int)o->threads) != 0) {
        rt_print_error();
        return RT_FAIL;
    }
    void *x = rt_aligned_alloc((size_t)n * (size_t)m->input_size * (size_t)rs);
    void *targets = m->loss_kind == CNNRT_MSE
                        ? rt_aligned_alloc((size_t)n * (size_t)m->outputs * (size_t)rs)
                        : NULL;
    int32_t *labels = rt_calloc((size_t)n, sizeof *labels);
    double *analytic = rt_calloc((size_t)m->param_count, sizeof *analytic);
    int rc = RT_FAIL;
    if (!x || !labels || !analytic || (m->loss_kind == CNNRT_MSE && !targets)) {
        rt_print_error();
        goto out;
    }
    cnnrt_init_params(&ctx, o->seed);
    cnnrt_rng r;
    cnnrt_rng_seed(&r, o->seed, 4);
    for (int64_t j = 0; j < (int64_t)n * m->input_size; j++)
        rt_set(rs, x, j, cnnrt_rng_uniform(&r));
    for (int i = 0; i < n; i++)
        labels[i] = (int32_t)cnnrt_rng_below(&r, (uint64_t)m->outputs);
    if (targets)
        for (int64_t j = 0; j < (int64_t)n * m->outputs; j++)
            rt_set(rs, targets, j, cnnrt_rng_uniform(&r));

    Check c = {&ctx, n, x, targets, targets ? NULL : labels, {{0}}};
    cnnrt_rng_seed(&c.dropout, o->seed, 3);
    double base = eval_loss(&c);
    m->backward(&ctx, n);
    for (int64_t j = 0; j < m->param_count; j++)
        analytic[j] = rt_get(rs, ctx.grads, j);
    if (!isfinite(base)) {
        rt_error("gradcheck: the loss of the random batch is %g, not finite", base);
        rt_print_error();
        goto out;
    }
    if (eval_loss(&c) != base)
        fprintf(stderr, "%s: warning: two forward passes of the same batch gave "
                "different losses; finite differences will be noisy\n", rt_prog);

    printf("gradcheck %s (%s): batch %d, h %g, tolerance %g relative, %g absolute\n",
           m->name, rs == 4 ? "f32" : "f64", n, h, rtol, atol);
    int64_t total = 0, failed = 0, skipped = 0;
    for (int t = 0; t < m->nparams; t++) {
        const cnnrt_param *p = &m->params[t];
        int64_t k = p->count <= o->samples ? p->count : o->samples;
        double max_abs = 0, max_rel = 0;
        int64_t bad = 0, kinks = 0;
        for (int64_t s = 0; s < k; s++) {
            int64_t e = k == p->count ? s : (int64_t)cnnrt_rng_below(&r, (uint64_t)p->count);
            int64_t j = p->offset + e;
            Verdict v = judge(&c, j, h, base, analytic[j], atol, rtol);
            /* More chances with smaller steps, which a kink may no longer span. */
            for (int again = 1; v.kind == FAILED && again <= RETRIES; again++) {
                Verdict v2 = judge(&c, j, h / pow(4, again), base, analytic[j], atol, rtol);
                if (v2.kind != FAILED)
                    v = v2;
            }
            if (v.kind == KINK) {
                kinks++;
                continue;
            }
            bad += v.kind == FAILED;
            max_abs = fmax(max_abs, v.abs_err);
            max_rel = fmax(max_rel, v.rel_err);
        }
        int64_t allowed = (int64_t)floor(max_fail * (double)(k - kinks));
        total += k;
        failed += bad > allowed;
        skipped += kinks;
        printf("  %-24s %8lld/%-9lld max abs %.3e  max rel %.3e  %s\n", p->name,
               (long long)k, (long long)p->count, max_abs, max_rel,
               bad > allowed ? "FAIL" : "ok");
        if (bad)
            printf("    %lld element%s beyond tolerance (%lld allowed)\n", (long long)bad,
                   bad == 1 ? "" : "s", (long long)allowed);
        if (kinks)
            printf("    %lld element%s skipped: not differentiable within h\n",
                   (long long)kinks, kinks == 1 ? "" : "s");
    }
    printf("%s: %lld elements of %d tensors checked, %lld skipped, %lld tensor%s failed\n",
           failed ? "FAIL" : "ok", (long long)total, m->nparams, (long long)skipped,
           (long long)failed, failed == 1 ? "" : "s");
    rc = failed ? RT_FAIL : RT_OK;
out:
    free(x);
    free(targets);
    free(labels);
    free(analytic);
    cnnrt_ctx_free(&ctx);
    return rc;
}
