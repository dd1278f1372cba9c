/* plan.c: where every buffer of a training step lives, decided once.
 *
 * The code generator lays its trainer out exactly as this plan says and
 * --summary reports the same plan, so the numbers a user reads are the bytes
 * the trainer allocates (besides the runtime's data and one batch).
 *
 *   parameter block   every tensor in layer order, PyTorch's layouts
 *   gradients         one per parameter, the same layout
 *   optimizer state   sgd 0; momentum, nesterov 1x parameters; adam 2x
 *   workspace         a small header; the network's output, its logits
 *                     and dL/d(logits) at the whole batch (a few values per
 *                     sample); then at the micro-batch:
 *                       every layer's output tensor (what backward reads
 *                       back; ReLU, Sigmoid and Tanh after a Conv or Dense
 *                       write over its output, which nothing else reads),
 *                       gradient buffers, each as large as the largest
 *                       tensor, which the tensors' gradients take in turn
 *                       (two for a chain: dL/d a layer's output, dL/d its
 *                       input),
 *                       each layer's own scratch (repacked weights, pool
 *                       argmax indices, dropout masks),
 *                       the input in reals, where a step from uint8 data
 *                       converts it
 *
 * The network is a graph (check.c): tensors with a producer and consumers.
 * Every decision below reads consumers, not neighbours: a layer writes over
 * its input when it is that tensor's only consumer, a ReLU fuses into the
 * layer that made its input when it is that output's only consumer, and a
 * tensor's gradient is the sum of what its consumers send back: the first
 * of them in backward order writes it, the others add to it.
 *
 * A training step runs the batch through forward and backward a micro-batch
 * at a time, summing the gradients, and updates once: the same step as one
 * pass over the whole batch (there is no batch statistic), with the large
 * maps of a micro-batch small enough to stay near the cache. The
 * micro-batch is the batch halved until the maps and gradient buffers of
 * the lanes that run at once fit PLAN_MICRO_BUDGET and every lane has a
 * micro-batch, or what --micro-batch says.
 *
 * Lanes: micro-batch k of a step goes to lane k mod lanes. A lane has a
 * workspace of its own (all of the above but the parameters) and, but lane
 * 0, gradients of its own; it takes its micro-batches through forward, loss
 * and backward on a thread of its own (runtime/lanes.c), so the threads of
 * a step meet once, at its end, where the lanes' gradients are added in
 * lane order. The count is fixed here (--lanes, else PLAN_LANES), not by
 * the thread count, so that every sum is the same on any number of
 * threads; under MPI the lanes are dealt to the processes, so the count is
 * also the most processes a trainer runs on.
 *
 * The reference tier's plan is the plain one: one lane, every tensor and
 * every gradient a buffer of its own (the gradients zeroed before each
 * micro-batch's backward, every consumer adding to them), no layer writing
 * over another's output, nothing fused or streamed, no scratch.
 *
 * Byte offsets are rounded up to 64 so vector loads stay aligned. Every sum
 * and product is checked: planning fails rather than wrap. */
#include "cnnc.h"

#include <inttypes.h>
#include <stdlib.h>

/* The header of the workspace: what forward leaves for loss and backward. */
enum { PLAN_STATE_BYTES = 256 };

/* The bytes the maps and gradient buffers of the lanes that run at once
 * (at most PLAN_LANES, the cores cnnc is tuned on) may fill before the
 * micro-batch is halved. At 24 MiB the seed network ran 16 samples at a
 * time, as fast as the whole batch of 128 (measured) in a quarter of the
 * memory; its maps have grown since, to 8 at a time. With --lanes=4 it
 * runs 8 at a time too: 4, this budget spread over all four lanes, was
 * about 10% slower on two threads (three runs each, on a loaded machine). */
#define PLAN_MICRO_BUDGET ((int64_t)24 << 20)

/* Lanes when none are asked for (--lanes) and a step has several
 * micro-batches: the cores of the machine cnnc is tuned on. */
enum { PLAN_LANES = 2 };

static int64_t opt_slots(Optimizer o)
{
    switch (o) {
    case OPT_SGD: return 0;
    case OPT_MOMENTUM:
    case OPT_NESTEROV: return 1;
    case OPT_ADAM:
    case OPT_ADAMW: return 2;
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

static bool fast(Kernels k)
{
    return k == KERNELS_FAST;
}

/* Whether layer i has the fast tier's kernels: in a fast trainer, all but
 * those given compact ones (emit.c's code budget). */
static bool layer_fast(const MemPlan *p, int i)
{
    return p->kernels == KERNELS_FAST && !(p->compact && p->compact[i]);
}

/* The one consumer of tensor t, or -1 when it has none or several. */
static int only_consumer(const Network *n, int t)
{
    return n->tensors[t].nconsumers == 1 ? n->tensors[t].consumers[0] : -1;
}

/* ------------------------------------------------------------------------
 * What backward computes
 */

/* A tensor needs a gradient when a layer that learns lies upstream of it
 * and its gradient reaches back from the loss: t is the loss's tensor, or
 * a consumer that runs backward sends it one. */
static void place_gradients_needed(const Network *n, MemPlan *p)
{
    int nt = n->nlayers + 1;
    bool *learns = xcalloc((size_t)nt, sizeof *learns);   /* upstream */
    bool *reaches = xcalloc((size_t)nt, sizeof *reaches); /* from the loss */
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        bool up = l->nparams > 0;
        for (int k = 0; k < l->ninputs; k++)
            up |= learns[l->inputs[k]];
        learns[layer_output(l)] = up;
    }
    reaches[p->loss_tensor] = true;
    for (int i = n->nlayers - 1; i >= 0; i--) {
        const Layer *l = &n->layers[i];
        if (!reaches[layer_output(l)] || layer_output(l) > p->loss_tensor)
            continue;
        for (int k = 0; k < l->ninputs; k++)
            reaches[l->inputs[k]] = true;
    }
    for (int t = 0; t < nt; t++)
        p->t[t].needs_grad = t != INPUT_TENSOR && learns[t] && reaches[t];
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        LayerPlace *at = &p->at[i];
        bool any = false;
        for (int k = 0; k < l->ninputs; k++) {
            at->need_dx[k] = p->t[l->inputs[k]].needs_grad && reaches[layer_output(l)] &&
                             layer_output(l) <= p->loss_tensor;
            at->dx_tensor[k] = l->inputs[k];
            any |= at->need_dx[k];
        }
        at->dy_tensor = layer_output(l);
        at->backward = layer_output(l) <= p->loss_tensor && reaches[layer_output(l)] &&
                       (l->nparams > 0 || any);
    }
    free(learns);
    free(reaches);
}

/* ------------------------------------------------------------------------
 * In place, fusion, streaming (the fast tier)
 */

/* Whether layer i may write its output over its input: an activation whose
 * backward reads only its output, the only consumer of an output that its
 * producer's backward does not read (Conv, Dense). */
static bool writes_in_place(const Network *n, int i)
{
    const Layer *l = &n->layers[i];
    int t = l->inputs[0];
    if (!l->kind->in_place || l->ninputs != 1 || t == INPUT_TENSOR)
        return false;
    return n->layers[n->tensors[t].producer].kind->ignores_own_output &&
           only_consumer(n, t) == i;
}

/* A layer streams (below) when its map at the micro-batch would be this
 * large: more than half of a core's L2 (2 MiB on the machine cnnc is tuned
 * on), so that it would leave the cache before the next layer reads it;
 * and a sample's map at least PLAN_STREAM_SAMPLE_BYTES, enough work for a
 * call of its own. Smaller maps gain nothing and lose Conv's tiles across
 * samples (seed's C5, 7x7, went from 5.7 to 6.1 ms a step when streamed). */
#define PLAN_STREAM_BYTES ((int64_t)1 << 20)
#define PLAN_STREAM_SAMPLE_BYTES ((int64_t)64 << 10)

/* The layer that layer i may stream its output into (after the ReLU it
 * applies, when that one's backward goes into the layer after too), or -1:
 * the two go a sample at a time, so the output lives for one sample, in
 * cache, and is never read back. Neither backward may need it. The two (or
 * three) are next to each other in source order, each the only consumer of
 * the one before. */
static int stream_target(const Network *n, const MemPlan *p, int i)
{
    const Layer *l = &n->layers[i];
    int64_t bytes, sample;
    if (!layer_fast(p, i) || !batch_bytes(p, shape_elems(l->out), &bytes) ||
        bytes <= PLAN_STREAM_BYTES ||
        !mul_ok(shape_elems(l->out), p->real_size, &sample) ||
        sample < PLAN_STREAM_SAMPLE_BYTES || p->micro <= 1 || !l->kind->ignores_own_output ||
        p->at[i].in_place)
        return -1;
    int j = only_consumer(n, layer_output(l));
    bool relu = j == i + 1 && n->layers[j].kind->is_relu && p->at[j].in_place &&
                l->kind->relu_forward;
    int r = j;
    if (relu)
        j = only_consumer(n, layer_output(&n->layers[r]));
    if (j < 0 || j != (relu ? i + 2 : i + 1) || !n->layers[j].kind->sample_forward ||
        !p->at[j].backward || !layer_fast(p, j))
        return -1;
    /* the ReLU's backward, which reads its output, must go into layer j */
    return !relu || !p->at[r].need_dx[0] || n->layers[j].kind->relu_backward ? j : -1;
}

/* A ReLU that writes over a Conv's or Dense's output is applied by that
 * layer's forward as it stores; its backward, by its consumer's backward
 * when that one can (dx = 0 where its input, the ReLU's output, is 0). */
static void place_fusions(const Network *n, MemPlan *p)
{
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        LayerPlace *at = &p->at[i];
        if (!l->kind->is_relu || !at->in_place)
            continue;
        int producer = n->tensors[l->inputs[0]].producer;
        if (n->layers[producer].kind->relu_forward && layer_fast(p, producer)) {
            at->forward_fused = true;
            p->at[producer].relu_out = true;
        }
        int j = only_consumer(n, layer_output(l));
        if (at->need_dx[0] && j >= 0 && p->at[j].backward && n->layers[j].kind->relu_backward &&
            n->layers[j].ninputs == 1 && layer_fast(p, j)) {
            at->backward_fused = true;
            at->backward = false;
            p->at[j].relu_in = true;
            p->at[j].dx_tensor[0] = l->inputs[0];
        }
    }
}

/* ------------------------------------------------------------------------
 * Gradient buffers
 */

/* The lowest buffer no live gradient holds, adding one when all are held. */
static int free_slot(MemPlan *p, bool **busy)
{
    for (int s = 0; s < p->ngrad_slots; s++)
        if (!(*busy)[s]) {
            (*busy)[s] = true;
            return s;
        }
    *busy = xrealloc(*busy, (size_t)(p->ngrad_slots + 1) * sizeof **busy);
    (*busy)[p->ngrad_slots] = true;
    return p->ngrad_slots++;
}

/* Backward runs the layers in reverse source order. A tensor's gradient
 * takes a buffer when the first of its consumers writes it (the loss's
 * tensor, before backward starts) and gives it back when its producer has
 * read it. The reference tier keeps every gradient in a buffer of its own,
 * all zeroed before backward, and every consumer adds. */
static void place_grad_slots(const Network *n, MemPlan *p, Kernels kernels)
{
    bool *busy = NULL;
    for (int t = 0; t <= n->nlayers; t++)
        p->t[t].grad_slot = -1;
    p->t[p->loss_tensor].grad_slot = free_slot(p, &busy);
    for (int i = n->nlayers - 1; i >= 0; i--) {
        LayerPlace *at = &p->at[i];
        if (!at->backward)
            continue;
        for (int k = 0; k < n->layers[i].ninputs; k++) {
            TensorPlace *dx = &p->t[at->dx_tensor[k]];
            if (!at->need_dx[k])
                continue;
            at->dx_add[k] = dx->grad_slot >= 0 || !fast(kernels);
            if (dx->grad_slot < 0)
                dx->grad_slot = free_slot(p, &busy);
        }
        if (fast(kernels))
            busy[p->t[at->dy_tensor].grad_slot] = false;
    }
    free(busy);
}

/* ------------------------------------------------------------------------
 * The workspace
 */

/* The parameter block, and the buffer block: each buffer 8-byte aligned. */
static bool place_params(const Network *n, MemPlan *p)
{
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        for (int j = 0; j < l->nparams; j++) {
            p->at[i].param_off[j] = p->params;
            if (!add_ok(p->params, l->params[j].count, &p->params))
                return false;
        }
        for (int j = 0; j < l->nbuffers; j++) {
            int64_t bytes;
            p->at[i].buffer_off[j] = p->buffer_bytes;
            if (!mul_ok(l->buffers[j].count, l->buffers[j].is_int64 ? 8 : p->real_size,
                        &bytes) || !add_ok(p->buffer_bytes, (bytes + 7) / 8 * 8,
                                           &p->buffer_bytes))
                return false;
        }
    }
    return mul_ok(p->params, opt_slots(n->train.optimizer), &p->opt_state);
}

/* Whether a layer normalises with the whole batch's statistics. */
static bool has_batch_stats(const Network *n)
{
    for (int i = 0; i < n->nlayers; i++)
        if (n->layers[i].kind->batch_stats)
            return true;
    return false;
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

static int64_t micro_batches(int64_t batch, int64_t micro)
{
    return (batch + micro - 1) / micro;
}

/* How many lanes, and the most samples one takes in a step: as many as
 * asked (plan_lanes_fit saw that each gets a micro-batch); unasked, two
 * when there are two micro-batches or more. */
static void count_lanes(MemPlan *p, Kernels kernels)
{
    int64_t micros = micro_batches(p->batch, p->micro);
    if (!fast(kernels))
        p->lanes = 1;
    else if (p->lanes_asked > 0)
        p->lanes = p->lanes_asked;
    else
        p->lanes = micros < PLAN_LANES ? 1 : PLAN_LANES;
    p->lane_samples = (micros + p->lanes - 1) / p->lanes * p->micro;
}

/* Every layer's output tensor, or its input's buffer when it writes over
 * it; streamed ones for one sample. */
static bool place_tensors(const Network *n, MemPlan *p, Kernels kernels, int64_t *off)
{
    for (int i = 0; i < n->nlayers; i++) {
        p->at[i].in_place = fast(kernels) && writes_in_place(n, i);
        p->at[i].streamed = false;
    }
    if (fast(kernels))
        place_fusions(n, p);
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        TensorPlace *t = &p->t[layer_output(l)];
        int64_t bytes;
        t->over = -1;
        t->one_sample = false;
        if (p->at[i].in_place) {
            t->over = l->inputs[0];
            t->off = p->t[l->inputs[0]].off;
            t->one_sample = p->t[l->inputs[0]].one_sample;
            continue;
        }
        p->at[i].stream_to = fast(kernels) ? stream_target(n, p, i) : -1;
        p->at[i].streamed = p->at[i].stream_to >= 0;
        t->one_sample = p->at[i].streamed;
        t->off = *off;
        if (t->one_sample ? !mul_ok(shape_elems(l->out), p->real_size, &bytes)
                          : !batch_bytes(p, shape_elems(l->out), &bytes))
            return false;
        if (!take(off, bytes))
            return false;
    }
    return true;
}

/* The layer (a Conv) whose forward also writes the lane's statistics of its
 * output for the batch_stats layer (BatchNorm) that is its only consumer,
 * when its kind can for it (LayerKind.stats_bytes): the map is not read a
 * second time for them. Phased trainers only: there the lanes meet at the
 * batch_stats layer, each with the statistics of its own share. */
static void place_stats_fusions(const Network *n, MemPlan *p)
{
    for (int i = 0; i < n->nlayers; i++) {
        p->at[i].stats_to = -1;
        p->at[i].stats_fused = false;
    }
    for (int i = 0; p->phased && i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        int from = n->tensors[l->inputs[0]].producer;
        if (!l->kind->batch_stats || !layer_fast(p, i) || from < 0 || !layer_fast(p, from) ||
            only_consumer(n, l->inputs[0]) != i || p->at[from].streamed ||
            p->at[from].relu_out || !n->layers[from].kind->stats_bytes ||
            n->layers[from].kind->stats_bytes(&n->layers[from], p->micro, p->lane_samples,
                                              p->real_size) <= 0)
            continue;
        p->at[from].stats_to = i;
        p->at[i].stats_fused = true;
    }
}

static int64_t largest_tensor(const Network *n)
{
    int64_t largest = shape_elems(n->input);
    for (int i = 0; i < n->nlayers; i++)
        if (shape_elems(n->layers[i].out) > largest)
            largest = shape_elems(n->layers[i].out);
    return largest;
}

static bool place_workspace(const Network *n, MemPlan *p, Kernels kernels)
{
    count_lanes(p, kernels);
    int64_t off = PLAN_STATE_BYTES, bytes, start;
    if (!place_full_batch(n, p, &off))
        return false;
    start = off;
    if (!place_tensors(n, p, kernels, &off))
        return false;
    p->activations = off - start;
    place_grad_slots(n, p, kernels);
    start = off;
    p->grad_slot_off = xrealloc(p->grad_slot_off, (size_t)p->ngrad_slots * sizeof(int64_t));
    p->grad_slot_elems = xrealloc(p->grad_slot_elems, (size_t)p->ngrad_slots * sizeof(int64_t));
    for (int s = 0; s < p->ngrad_slots; s++)
        p->grad_slot_elems[s] = largest_tensor(n);
    if (!fast(kernels)) /* a buffer per tensor, of its size */
        for (int t = 0; t <= n->nlayers; t++)
            if (p->t[t].grad_slot >= 0)
                p->grad_slot_elems[p->t[t].grad_slot] = shape_elems(n->tensors[t].shape);
    for (int s = 0; s < p->ngrad_slots; s++) {
        p->grad_slot_off[s] = off;
        if (!batch_bytes(p, p->grad_slot_elems[s], &bytes) || !take(&off, bytes))
            return false;
    }
    p->gradient_buffers = off - start;
    start = off;
    place_stats_fusions(n, p);
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        p->at[i].scratch_off = off;
        bytes = layer_fast(p, i) && l->kind->scratch_bytes
                    ? l->kind->scratch_bytes(l, p->micro, p->lane_samples, p->real_size) : 0;
        if (bytes < 0 || !take(&off, bytes))
            return false;
        bytes = p->at[i].stats_to >= 0
                    ? l->kind->stats_bytes(l, p->micro, p->lane_samples, p->real_size) : 0;
        if (!take(&off, bytes))
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

/* The micro-batch of a network with batch statistics: each of `lanes`
 * lanes takes its share of the batch as one. */
static int64_t stats_micro(int64_t batch, int lanes)
{
    return (batch + lanes - 1) / lanes;
}

/* The workspace at micro-batch p->micro; then, unless it was given, halved
 * while the workspace exceeds the budget or some lane asked for has no
 * micro-batch. A network with batch statistics keeps every lane's share of
 * the batch for the whole step: one micro-batch a lane (the reference
 * tier: the whole batch at once). */
static bool place_micro_batches(const Network *n, int64_t micro, Kernels kernels, MemPlan *p)
{
    if (has_batch_stats(n)) {
        p->phased = fast(kernels);
        p->micro = fast(kernels) && p->batch > 1
                       ? stats_micro(p->batch, p->lanes_asked > 0 ? p->lanes_asked : PLAN_LANES)
                       : p->batch;
        p->ngrad_slots = 0;
        return place_workspace(n, p, kernels);
    }
    p->micro = micro > 0 && micro < p->batch ? micro : p->batch;
    p->ngrad_slots = 0;
    if (!place_workspace(n, p, kernels))
        return false;
    while (micro <= 0 && p->micro > 1 &&
           ((p->lanes < PLAN_LANES ? p->lanes : PLAN_LANES) *
                (p->activations + p->gradient_buffers) > PLAN_MICRO_BUDGET ||
            (fast(kernels) && micro_batches(p->batch, p->micro) < p->lanes_asked))) {
        p->micro = (p->micro + 1) / 2;
        p->ngrad_slots = 0;
        if (!place_workspace(n, p, kernels))
            return false;
    }
    return true;
}

bool plan_network(const Network *n, int64_t real_size, int64_t micro, int lanes,
                  Kernels kernels, MemPlan *p)
{
    return plan_network_mixed(n, real_size, micro, lanes, kernels, NULL, p);
}

bool plan_network_mixed(const Network *n, int64_t real_size, int64_t micro, int lanes,
                        Kernels kernels, const bool *compact, MemPlan *p)
{
    *p = (MemPlan){.kernels = kernels, .real_size = real_size, .batch = n->train.batch,
                   .lanes_asked = lanes > 0 ? lanes : 0};
    if (compact) {
        p->compact = xcalloc((size_t)n->nlayers + 1, sizeof *p->compact);
        for (int i = 0; i < n->nlayers; i++)
            p->compact[i] = compact[i];
    }
    p->at = xcalloc((size_t)n->nlayers, sizeof *p->at);
    p->t = xcalloc((size_t)n->nlayers + 1, sizeof *p->t);
    p->loss_tensor = network_fuses_softmax(n) ? n->layers[n->nlayers - 1].inputs[0]
                                              : layer_output(&n->layers[n->nlayers - 1]);
    place_gradients_needed(n, p);
    int64_t values, bytes;
    bool ok = place_params(n, p) && place_micro_batches(n, micro, kernels, p) &&
              add_ok(p->params, p->params, &values) && add_ok(values, p->opt_state, &values) &&
              mul_ok(values, real_size, &bytes) && add_ok(bytes, p->workspace, &p->total_bytes);
    if (!ok)
        plan_free(p);
    return ok;
}

bool plan_lanes_fit(const Network *n, int64_t micro, int lanes, char *why, size_t size)
{
    int64_t batch = n->train.batch;
    if (lanes <= 1)
        return true;
    if (batch < lanes) {
        snprintf(why, size, "--lanes=%d: a step of this network is a batch of %" PRId64
                 " sample%s, at most %" PRId64 " micro-batch%s, and each lane needs one; "
                 "ask for at most %" PRId64 " lane%s, or train in larger batches "
                 "(Train(batch=))", lanes, batch, batch == 1 ? "" : "s", batch,
                 batch == 1 ? "" : "es", batch, batch == 1 ? "" : "s");
        return false;
    }
    if (has_batch_stats(n)) {
        int64_t m = stats_micro(batch, lanes), micros = micro_batches(batch, m);
        if (micros < lanes) {
            snprintf(why, size, "--lanes=%d: with batch statistics (BatchNorm) each lane takes "
                     "its share of the batch as one micro-batch, and a batch of %" PRId64
                     " in shares of %" PRId64 " is only %" PRId64 " micro-batches; ask for "
                     "%" PRId64 " lanes, or a batch that %d divides", lanes, batch,
                     m, micros, micros, lanes);
            return false;
        }
        return true;
    }
    if (micro <= 0)
        return true;    /* the plan halves the batch until every lane has one */
    int64_t m = micro < batch ? micro : batch, micros = micro_batches(batch, m);
    if (micros < lanes) {
        /* the largest micro-batch that makes `lanes` of the batch */
        int64_t most = (batch + lanes - 2) / (lanes - 1) - 1;
        snprintf(why, size, "--lanes=%d needs at least %d micro-batches a step (each lane "
                 "takes one or more), but --micro-batch=%" PRId64 " makes %" PRId64
                 " of the batch of %" PRId64 "; give --micro-batch=%" PRId64 " or less, or "
                 "leave --micro-batch out (then the batch is halved until every lane has one)",
                 lanes, lanes, micro, micros, batch, most);
        return false;
    }
    return true;
}

void plan_free(MemPlan *p)
{
    free(p->at);
    free(p->t);
    free(p->grad_slot_off);
    free(p->grad_slot_elems);
    free(p->compact);
    p->compact = NULL;
    p->at = NULL;
    p->t = NULL;
    p->grad_slot_off = NULL;
    p->grad_slot_elems = NULL;
}
