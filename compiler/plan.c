/* plan.c: where every buffer of a training step lives, decided once.
 *
 * The code generator lays its trainer out exactly as this plan says and
 * --summary reports the same plan, so the numbers a user reads are the bytes
 * the trainer allocates (besides the runtime's data and one batch).
 *
 *   parameter block   every tensor in layer order, PyTorch's layouts
 *   gradients         one per parameter, the same layout
 *   optimizer state   sgd 0; momentum, nesterov 1x parameters; adam 2x
 *   workspace         a small state header; the network's output, its
 *                     logits and dL/d(logits) at the whole batch (a few
 *                     values per sample); then at the micro-batch:
 *                       every layer's output (what backward reads back;
 *                       ReLU, Sigmoid and Tanh after a Conv or Dense write
 *                       over its output, which nothing else reads),
 *                       two gradient buffers used in turn (dL/d output of a
 *                       layer, dL/d its input), each as large as the largest
 *                       activation,
 *                       each layer's own scratch (repacked weights, pool
 *                       argmax indices, dropout masks),
 *                       the input in reals, where a step from uint8 data
 *                       converts it
 *
 * A training step runs the batch through forward and backward a micro-batch
 * at a time, summing the gradients, and updates once: the same step as one
 * pass over the whole batch (there is no batch statistic), with the large
 * maps of a micro-batch small enough to stay near the cache. The
 * micro-batch is the batch halved until the maps and gradient buffers of
 * every lane fit PLAN_MICRO_BUDGET, or what --micro-batch says.
 *
 * Lanes: micro-batch k of a step goes to lane k mod lanes. A lane has a
 * workspace of its own (all of the above but the parameters) and, but lane
 * 0, gradients of its own; it takes its micro-batches through forward, loss
 * and backward on a thread (or a team) of its own, so the threads of a step
 * meet once, at its end, where the lanes' gradients are added in lane
 * order. The count is fixed here, not by the thread count, so that every
 * sum is the same on any number of threads.
 *
 * Byte offsets are rounded up to 64 so vector loads stay aligned. Every sum
 * and product is checked: planning fails rather than wrap. */
#include "cnnc.h"

#include <stdlib.h>

/* The header of the workspace: what forward leaves for loss and backward. */
enum { PLAN_STATE_BYTES = 256 };

/* The bytes a micro-batch's maps and gradient buffers may fill before it is
 * halved: at 24 MiB the seed network runs 16 samples at a time, as fast as
 * the whole batch of 128 (measured) in a quarter of the memory. */
#define PLAN_MICRO_BUDGET ((int64_t)24 << 20)

/* Lanes when a step has several micro-batches: the cores of the machine
 * cnnc is tuned on. A larger team splits each lane's layers among
 * threads / lanes threads. */
enum { PLAN_LANES = 2 };

static int64_t opt_slots(Optimizer o)
{
    switch (o) {
    case OPT_SGD: return 0;
    case OPT_MOMENTUM:
    case OPT_NESTEROV: return 1;
    case OPT_ADAM: return 2;
    }
    return 0;
}

/* *off += bytes, then rounded up to 64; false on overflow. */
static bool take(int64_t *off, int64_t bytes)
{
    return add_ok(*off, bytes, off) && add_ok(*off, 63, off) && ((*off &= ~(int64_t)63), true);
}

/* bytes = micro * elems * real_size, checked. */
static bool batch_bytes(const MemPlan *p, int64_t elems, int64_t *bytes)
{
    return mul_ok(p->micro, elems, bytes) && mul_ok(*bytes, p->real_size, bytes);
}

/* Whether layer i may write its output over its input: an activation whose
 * backward reads only its output, after a layer whose backward does not
 * read its own output (Conv, Dense). */
static bool writes_in_place(const Network *n, int i)
{
    return i > 0 && n->layers[i].kind->in_place && n->layers[i - 1].kind->ignores_own_output;
}

/* A layer streams (below) when its map at the micro-batch would be this
 * large: more than half of a core's L2 (2 MiB on the machine cnnc is tuned
 * on), so that it would leave the cache before the next layer reads it;
 * and a sample's map at least PLAN_STREAM_SAMPLE_BYTES, enough work for a
 * call of its own. Smaller maps gain nothing and lose Conv's tiles across
 * samples (seed's C5, 7x7, went from 5.7 to 6.1 ms a step when streamed). */
#define PLAN_STREAM_BYTES ((int64_t)1 << 20)
#define PLAN_STREAM_SAMPLE_BYTES ((int64_t)64 << 10)

/* Whether layer i may stream its output into the layer after it (after the
 * ReLU it applies, when that one's backward goes into the layer after too):
 * the two go a sample at a time, so the output lives for one sample, in
 * cache, and is never read back. Neither backward may need it. */
static bool streams(const Network *n, const MemPlan *p, int i)
{
    int64_t bytes, sample;
    if (!batch_bytes(p, shape_elems(n->layers[i].out), &bytes) || bytes <= PLAN_STREAM_BYTES ||
        !mul_ok(shape_elems(n->layers[i].out), p->real_size, &sample) ||
        sample < PLAN_STREAM_SAMPLE_BYTES)
        return false;
    const LayerKind *k = n->layers[i].kind;
    int j = i + 1; /* the layer that takes the output */
    bool relu = j < n->nlayers && n->layers[j].kind == &layer_relu && writes_in_place(n, j) &&
                k->relu_forward;
    if (relu)
        j++;
    if (p->micro <= 1 || !k->ignores_own_output || writes_in_place(n, i) || j >= n->nlayers ||
        j > p->backward_from || !n->layers[j].kind->sample_forward)
        return false;
    /* the ReLU's backward, which reads its output, must go into layer j */
    return !relu || !p->at[j - 1].need_dx || n->layers[j].kind->relu_backward;
}

static bool place_params(const Network *n, MemPlan *p)
{
    bool learns_before = false;
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        for (int j = 0; j < l->nparams; j++) {
            p->at[i].param_off[j] = p->params;
            if (!add_ok(p->params, l->params[j].count, &p->params))
                return false;
        }
        p->at[i].need_dx = learns_before;
        learns_before |= l->nparams > 0;
    }
    return mul_ok(p->params, opt_slots(n->train.optimizer), &p->opt_state);
}

/* The network's output, logits and their gradient, at the whole batch. */
static bool place_full_batch(const Network *n, MemPlan *p, int64_t *off)
{
    int64_t bytes, k = shape_elems(n->layers[n->nlayers - 1].out);
    if (!mul_ok(p->batch, k, &bytes) || !mul_ok(bytes, p->real_size, &bytes))
        return false;
    p->full_out_off = *off;
    if (!take(off, bytes))
        return false;
    p->full_logits_off = *off;
    if (!take(off, bytes))
        return false;
    p->full_dy_off = *off;
    return take(off, bytes);
}

/* The lanes' workspaces side by side, then the gradients of lanes 1... */
static bool place_lanes(MemPlan *p)
{
    int64_t grads;
    return mul_ok(p->lane_bytes, p->lanes, &p->lane_grads_off) &&
           mul_ok(p->params, p->real_size, &grads) && mul_ok(grads, p->lanes - 1, &grads) &&
           add_ok(p->lane_grads_off, grads, &p->workspace);
}

/* How many lanes, and the most samples one takes in a step. */
static void count_lanes(MemPlan *p)
{
    int64_t micros = (p->batch + p->micro - 1) / p->micro;
    p->lanes = micros < PLAN_LANES ? (int)micros : PLAN_LANES;
    p->lane_samples = (micros + p->lanes - 1) / p->lanes * p->micro;
}

static bool place_workspace(const Network *n, MemPlan *p)
{
    count_lanes(p);
    int64_t off = PLAN_STATE_BYTES, largest = shape_elems(n->input), bytes, start;
    if (!place_full_batch(n, p, &off))
        return false;
    start = off;
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        p->at[i].in_place = writes_in_place(n, i);
        if (p->at[i].in_place) {
            p->at[i].out_off = p->at[i - 1].out_off;
            continue;
        }
        p->at[i].out_off = off;
        p->at[i].streamed = streams(n, p, i);
        if (p->at[i].streamed ? !mul_ok(shape_elems(l->out), p->real_size, &bytes)
                              : !batch_bytes(p, shape_elems(l->out), &bytes))
            return false;
        if (!take(&off, bytes))
            return false;
        if (shape_elems(l->out) > largest)
            largest = shape_elems(l->out);
    }
    p->activations = off - start;
    start = off;
    for (int k = 0; k < 2; k++) {
        p->dbuf_off[k] = off;
        if (!batch_bytes(p, largest, &bytes) || !take(&off, bytes))
            return false;
    }
    p->gradient_buffers = off - start;
    start = off;
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        p->at[i].scratch_off = off;
        bytes = l->kind->scratch_bytes
                    ? l->kind->scratch_bytes(l, p->micro, p->lane_samples, p->real_size) : 0;
        if (bytes < 0 || !take(&off, bytes))
            return false;
    }
    p->layer_scratch = off - start;
    p->input_off = off;
    if (!batch_bytes(p, shape_elems(n->input), &bytes) || !take(&off, bytes))
        return false;
    p->input_bytes = off - p->input_off;
    p->lane_bytes = off;
    return place_lanes(p);
}


/* The workspace at micro-batch p->micro; then, unless it was given, halved
 * while the workspace exceeds the budget. */
static bool place_micro_batches(const Network *n, int64_t micro, MemPlan *p)
{
    p->micro = micro > 0 && micro < p->batch ? micro : p->batch;
    if (!place_workspace(n, p))
        return false;
    while (micro <= 0 && p->micro > 1 &&
           p->lanes * (p->activations + p->gradient_buffers) > PLAN_MICRO_BUDGET) {
        p->micro = (p->micro + 1) / 2;
        if (!place_workspace(n, p))
            return false;
    }
    return true;
}

/* A ReLU that writes over a Conv's or Dense's output is applied by that
 * layer's forward as it stores; its backward, by the next layer's backward
 * when that one can (dx = 0 where its input, the ReLU's output, is 0). Then
 * the gradient buffers: the loss's gradient in DBUF0, each layer's dx in
 * the other buffer from its dy, layers whose backward is fused skipped. */
static void place_fusions(const Network *n, MemPlan *p)
{
    for (int i = 1; i < n->nlayers; i++) {
        LayerPlace *at = &p->at[i];
        if (n->layers[i].kind != &layer_relu || !at->in_place)
            continue;
        if (n->layers[i - 1].kind->relu_forward) {
            at->forward_fused = true;
            p->at[i - 1].relu_out = true;
        }
        if (at->need_dx && i + 1 <= p->backward_from && n->layers[i + 1].kind->relu_backward) {
            at->backward_fused = true;
            p->at[i + 1].relu_in = true;
        }
    }
    int buf = 0;
    for (int i = p->backward_from; i >= 0; i--) {
        if (p->at[i].backward_fused)
            continue;
        p->at[i].dy_buf = buf;
        buf = 1 - buf;
    }
}

bool plan_network(const Network *n, int64_t real_size, int64_t micro, MemPlan *p)
{
    *p = (MemPlan){.real_size = real_size, .batch = n->train.batch};
    p->at = xcalloc((size_t)n->nlayers, sizeof *p->at);
    p->backward_from = n->train.loss == LOSS_CROSS_ENTROPY ? n->nlayers - 2 : n->nlayers - 1;
    int64_t values, bytes;
    bool ok = place_params(n, p) && place_micro_batches(n, micro, p) &&
              (place_fusions(n, p), true) &&
              add_ok(p->params, p->params, &values) && add_ok(values, p->opt_state, &values) &&
              mul_ok(values, real_size, &bytes) && add_ok(bytes, p->workspace, &p->total_bytes);
    if (!ok)
        plan_free(p);
    return ok;
}

void plan_free(MemPlan *p)
{
    free(p->at);
    p->at = NULL;
}
