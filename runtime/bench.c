/* bench.c: training steps on synthetic data, timed.
 *
 * Each timed step is what a step of train costs: the batch's uint8 pixels
 * (as images arrive) gathered, as bytes for a model that converts them
 * itself (train_step_bytes), else converted to the model's reals; then
 * forward, loss, backward and the optimizer's update. */
#include "rt.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int rt_cmd_bench(const cnnrt_model *m, const rt_opts *o)
{
    int rs = m->real_size;
    int batch = o->batch_given ? (int)o->batch : m->max_batch;
    int64_t steps = o->steps ? o->steps : 10;
    cnnrt_ctx ctx;
    int rc = RT_OK;
    if (cnnrt_ctx_init(&ctx, m, m->train.optimizer, (int)o->threads) != 0) {
        rt_print_error();
        rc = RT_FAIL;
    }
    /* on several processes (MPI), they share each step as in train */
    int64_t shape[2] = {batch, steps};
    if ((rc = rt_group_agree(m, rc, rt_hash(0, shape, sizeof shape), 0)) != RT_OK) {
        cnnrt_ctx_free(&ctx);
        return rc;
    }
    rt_data d = {.x = {.dtype = RT_U8, .rank = 1, .dims = {batch}, .n = batch,
                       .row = m->input_size, .stride = (size_t)m->input_size},
                 .n = batch};
    bool bytes = rt_data_bytes(&d, m);
    void *x = rt_aligned_alloc((size_t)batch * (size_t)m->input_size * (size_t)(bytes ? 1 : rs));
    void *targets = m->loss_kind == CNNRT_MSE
                        ? rt_aligned_alloc((size_t)batch * (size_t)m->outputs * (size_t)rs)
                        : NULL;
    int32_t *labels = rt_calloc((size_t)batch, sizeof *labels);
    unsigned char *pixels = rt_calloc((size_t)batch * (size_t)m->input_size, 1);
    int64_t *idx = rt_calloc((size_t)batch, sizeof *idx);
    double *times = rt_calloc((size_t)steps, sizeof *times);
    rc = RT_FAIL;
    if (!x || !labels || !pixels || !idx || !times ||
        (m->loss_kind == CNNRT_MSE && !targets)) {
        rt_print_error();
        goto out;
    }
    cnnrt_init_params(&ctx, o->seed);
    cnnrt_rng r;
    cnnrt_rng_seed(&r, o->seed, 4);
    for (int64_t j = 0; j < (int64_t)batch * m->input_size; j++)
        pixels[j] = (unsigned char)cnnrt_rng_below(&r, 256);
    d.x.base = pixels;
    for (int i = 0; i < batch; i++)
        idx[i] = i;
    for (int i = 0; i < batch; i++) {
        labels[i] = (int32_t)cnnrt_rng_below(&r, (uint64_t)m->outputs);
        for (int64_t j = 0; targets && j < m->outputs; j++)
            rt_set(rs, targets, i * m->outputs + j, j == labels[i]);
    }
    for (int64_t s = 0; s < o->warmup + steps; s++) {
        double t0 = rt_now();
        if (bytes) {
            rt_data_input_bytes(&d, m, idx, batch, x, ctx.pool);
            rt_train_step_bytes(&ctx, batch, x, labels, targets);
        } else {
            rt_data_inputs(&d, m, idx, batch, x, ctx.pool);
            rt_train_step(&ctx, batch, x, labels, targets);
        }
        if (s >= o->warmup)
            times[s - o->warmup] = rt_now() - t0;
    }
    rc = RT_OK;
    if (!rt_group_leader())
        goto out;
    qsort(times, (size_t)steps, sizeof *times, cmp_double);
    double med = steps % 2 ? times[steps / 2] : (times[steps / 2 - 1] + times[steps / 2]) / 2;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("bench %s (%s): batch %d of uint8 inputs, %d thread%s, %lld steps after %lld "
           "warm-up", m->name,
           rs == 4 ? "f32" : "f64", batch, ctx.threads, ctx.threads == 1 ? "" : "s",
           (long long)steps, (long long)o->warmup);
    if (rt_group_size() > 1)
        printf(", %d processes", rt_group_size());
    printf("\n");
    printf("median %.3f ms/step  %.1f images/s  %.2f GFLOP/s  peak RSS %.1f MiB\n",
           med * 1e3, batch / med, m->train_flops * batch / med / 1e9,
           ru.ru_maxrss / 1024.0);
    rc = RT_OK;
out:
    free(x);
    free(targets);
    free(labels);
    free(pixels);
    free(idx);
    free(times);
    cnnrt_ctx_free(&ctx);
    return rc;
}
