/* lanes.c: a call's micro-batches dealt to the model's lanes.
 *
 * The generated code plans a fixed number of lanes (the compiler's plan.c),
 * each with a workspace and gradients of its own; micro-batch k of a call
 * goes to lane k mod lanes, and a lane takes its micro-batches in order. The
 * lanes are the items of one cnnrt_parallel loop, so they run side by side
 * on as many threads as there are, or one after another on one, and any
 * thread that is free takes the next lane: none is bound to a thread that
 * another process may be holding up. Their gradients are added in lane
 * order afterwards, so that every sum is the same on any number of
 * threads. */
#include "rt.h"

#include <string.h>

typedef struct lanes_call {
    cnnrt_ctx *ctx;
    int n;                  /* samples in the call */
    int first_lane;         /* the lanes this process runs start here */
    int threads;            /* the threads a lane can count on */
    int zero;               /* the lanes' gradients start at zero */
    uint64_t key;
    cnnrt_micro_job *job;
    void *arg;
} lanes_call;

static size_t grad_bytes(const cnnrt_model *m)
{
    return (size_t)m->param_count * (size_t)m->real_size;
}

static void *lane_grads(cnnrt_ctx *ctx, int l)
{
    const cnnrt_model *m = ctx->model;
    if (l == 0)
        return ctx->grads;
    return (char *)ctx->workspace + m->lane_grads_offset + (size_t)(l - 1) * grad_bytes(m);
}

/* Lanes lo..hi-1, each through its micro-batches. */
static void run_lanes_body(void *arg, int lo, int hi)
{
    const lanes_call *c = arg;
    const cnnrt_model *m = c->ctx->model;
    int micros = (c->n + m->micro_batch - 1) / m->micro_batch;
    for (int l = c->first_lane + lo; l < c->first_lane + hi; l++) {
        cnnrt_lane lane = {
            .home = c->ctx,
            .workspace = (char *)c->ctx->workspace + (size_t)l * m->lane_bytes,
            .grads = lane_grads(c->ctx, l),
            .index = l,
            .threads = c->threads,
            .key = c->key,
        };
        if (c->zero)
            memset(lane.grads, 0, grad_bytes(m));
        for (int k = l; k < micros; k += m->lanes) {
            lane.i0 = k * m->micro_batch;
            lane.n = c->n - lane.i0 < m->micro_batch ? c->n - lane.i0 : m->micro_batch;
            lane.first = k == l;
            lane.last = k + m->lanes >= micros;
            c->job(&lane, c->arg);
        }
    }
}

void cnnrt_run_lanes(cnnrt_ctx *ctx, int n, int zero, uint64_t key, cnnrt_micro_job *job,
                     void *arg)
{
    int lo, hi;
    rt_group_own_lanes(ctx->model, &lo, &hi);
    int threads = ctx->threads / (hi - lo > 0 ? hi - lo : 1);
    lanes_call c = {ctx, n, lo, threads > 1 ? threads : 1, zero, key, job, arg};
    cnnrt_parallel(ctx, hi - lo, 1, run_lanes_body, &c);
}

/* g += the lane's gradients over [lo, hi), in the model's real type. */
typedef struct add_call {
    void *g;
    const void *gl;
    int real_size;
} add_call;

static void add_body(void *arg, int lo, int hi)
{
    const add_call *c = arg;
    if (c->real_size == 4) {
        float *restrict g = c->g;
        const float *restrict gl = c->gl;
        for (int j = lo; j < hi; j++)
            g[j] += gl[j];
    } else {
        double *restrict g = c->g;
        const double *restrict gl = c->gl;
        for (int j = lo; j < hi; j++)
            g[j] += gl[j];
    }
}

/* In a step the processes share, each lane's gradients come from its owner
 * first; every process then adds them as one would. */
void cnnrt_add_lanes(cnnrt_ctx *ctx)
{
    const cnnrt_model *m = ctx->model;
    if (rt_group_splits())
        for (int l = 0; l < m->lanes; l++)
            rt_comm_bcast(lane_grads(ctx, l), grad_bytes(m), rt_group_lane_owner(m, l));
    for (int l = 1; l < m->lanes; l++) {
        add_call c = {ctx->grads, lane_grads(ctx, l), m->real_size};
        cnnrt_parallel(ctx, (int)m->param_count, 4096, add_body, &c);
    }
}

void cnnrt_parallel(const cnnrt_ctx *ctx, int count, int grain, cnnrt_body *body, void *arg)
{
    rt_pool_run(ctx ? ctx->pool : NULL, count, grain, body, arg);
}
