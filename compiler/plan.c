/* plan.c: where every buffer of a training step lives, decided once.
 *
 * The code generator lays its trainer out exactly as this plan says and
 * --summary reports the same plan, so the numbers a user reads are the bytes
 * the trainer allocates (besides the runtime's data and one batch).
 *
 *   parameter block   every tensor in layer order, PyTorch's layouts
 *   gradients         one per parameter, the same layout
 *   optimizer state   sgd 0; momentum, nesterov 1x parameters; adam 2x
 *   workspace         a small state header, then at the batch:
 *                       every layer's output (what backward reads back),
 *                       two gradient buffers used in turn (dL/d output of a
 *                       layer, dL/d its input), each as large as the largest
 *                       activation,
 *                       each layer's own scratch (repacked weights, pool
 *                       argmax indices, dropout masks)
 * Byte offsets are rounded up to 64 so vector loads stay aligned. Every sum
 * and product is checked: planning fails rather than wrap. */
#include "cnnc.h"

#include <stdlib.h>

/* The header of the workspace: what forward leaves for loss and backward. */
enum { PLAN_STATE_BYTES = 64 };

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

/* bytes = batch * elems * real_size, checked. */
static bool batch_bytes(const MemPlan *p, int64_t elems, int64_t *bytes)
{
    return mul_ok(p->batch, elems, bytes) && mul_ok(*bytes, p->real_size, bytes);
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

static bool place_workspace(const Network *n, MemPlan *p)
{
    int64_t off = PLAN_STATE_BYTES, largest = shape_elems(n->input), bytes, start;
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        p->at[i].out_off = off;
        if (!batch_bytes(p, shape_elems(l->out), &bytes) || !take(&off, bytes))
            return false;
        if (shape_elems(l->out) > largest)
            largest = shape_elems(l->out);
    }
    p->activations = off - PLAN_STATE_BYTES;
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
        bytes = l->kind->scratch_bytes ? l->kind->scratch_bytes(l, p->batch, p->real_size) : 0;
        if (bytes < 0 || !take(&off, bytes))
            return false;
    }
    p->layer_scratch = off - start;
    p->workspace = off;
    return true;
}

bool plan_network(const Network *n, int64_t real_size, MemPlan *p)
{
    *p = (MemPlan){.real_size = real_size, .batch = n->train.batch};
    p->at = xcalloc((size_t)n->nlayers, sizeof *p->at);
    p->backward_from = n->train.loss == LOSS_CROSS_ENTROPY ? n->nlayers - 2 : n->nlayers - 1;
    int64_t values, bytes;
    bool ok = place_params(n, p) && place_workspace(n, p) &&
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
