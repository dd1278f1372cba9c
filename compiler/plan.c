/* plan.c: the memory plan of one training step at the Train batch.
 *
 * Counted in values (real_size bytes each):
 *   params       every parameter tensor
 *   grads        one gradient per parameter
 *   opt_state    sgd 0; momentum, nesterov 1x params (the velocity);
 *                adam 2x params (the first and second moments)
 *   activations  what forward keeps for backward: batch x (the network's
 *                input + each layer's output), except that Flatten keeps
 *                nothing (its output is its input, seen flat) and Dropout
 *                keeps its mask too (one value per element: 2x its output)
 *   scratch      two gradient buffers used in turn (dL/d out of a layer and
 *                dL/d in), each as large as the largest activation, at the
 *                batch
 * Every sum and product is checked: false when one overflows int64. */
#include "cnnc.h"

/* Values layer l keeps per sample for backward. */
static int64_t kept_per_sample(const Layer *l)
{
    int64_t out = shape_elems(l->out);
    if (l->kind == &layer_flatten)
        return 0;
    if (l->kind == &layer_dropout)
        return 2 * out;
    return out;
}

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

static bool count_params(const Network *n, int64_t *params)
{
    *params = 0;
    for (int i = 0; i < n->nlayers; i++)
        for (int j = 0; j < n->layers[i].nparams; j++)
            if (!add_ok(*params, n->layers[i].params[j].count, params))
                return false;
    return true;
}

/* Per sample: the sum kept for backward and the largest activation. */
static bool count_activations(const Network *n, int64_t *kept, int64_t *largest)
{
    *kept = *largest = shape_elems(n->input);
    for (int i = 0; i < n->nlayers; i++) {
        int64_t out = shape_elems(n->layers[i].out);
        if (!add_ok(*kept, kept_per_sample(&n->layers[i]), kept))
            return false;
        if (out > *largest)
            *largest = out;
    }
    return true;
}

bool plan_network(const Network *n, int64_t real_size, MemPlan *p)
{
    int64_t kept, largest, total;
    *p = (MemPlan){.real_size = real_size, .batch = n->train.batch};
    bool ok = count_params(n, &p->params) && count_activations(n, &kept, &largest);
    p->grads = p->params;
    ok = ok && mul_ok(p->params, opt_slots(n->train.optimizer), &p->opt_state) &&
         mul_ok(kept, p->batch, &p->activations) && mul_ok(largest, p->batch, &p->scratch) &&
         mul_ok(p->scratch, 2, &p->scratch);
    ok = ok && add_ok(p->params, p->grads, &total) && add_ok(total, p->opt_state, &total) &&
         add_ok(total, p->activations, &total) && add_ok(total, p->scratch, &total) &&
         mul_ok(total, real_size, &p->total_bytes);
    return ok;
}
