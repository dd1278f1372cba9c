/* weights.c: a trainer's checkpoint read into the compiler, with the
 * runtime's own safetensors reader (runtime/ckpt.c, linked into cnnc as
 * runtime/output.c is): the same checks and the same messages as the
 * trainer's `--weights`, not a second reader that could drift from it.
 *
 * The network is described to the reader as a trainer describes itself (a
 * cnnrt_model of its parameters and buffers, in double so that F32 and F64
 * checkpoints both load exactly); the values are then copied per layer. */
#include "deploy.h"
#include "rt.h"

#include <stdlib.h>
#include <string.h>

/* ckpt.c's writer names the optimizer in a checkpoint's metadata with the
 * runtime's name for it (runtime/cli.c, which cnnc does not link). The
 * compiler only reads checkpoints, but the linker wants the symbol: the
 * compiler's own table holds the same names in the same order (tag:
 * enum-names). */
const char *rt_optimizer_name(cnnrt_optimizer o)
{
    return optimizer_names[o];
}

/* FNV-1a of the source text, as the trainer's model records it (emit.c),
 * so that a checkpoint of another network is warned about the same way. */
static uint64_t source_hash(const Source *src)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < src->len; i++) {
        h ^= (unsigned char)src->text[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

/* The model the reader checks the checkpoint against: every layer's
 * parameters ("C1.weight") and buffers ("bn1.running_mean"), in layer
 * order, as the trainer's table lists them. */
typedef struct Described {
    cnnrt_model m;
    cnnrt_param *params;
    cnnrt_buffer *buffers;
    char **names;
    int nnames;
} Described;

static char *tensor_name_of(Described *d, const Layer *l, const char *suffix)
{
    char *s = xasprintf("%s.%s", l->label, suffix);
    d->names[d->nnames++] = s;
    return s;
}

static void describe(const Network *n, const Source *src, Described *d)
{
    int np = 0, nb = 0;
    for (int i = 0; i < n->nlayers; i++) {
        np += n->layers[i].nparams;
        nb += n->layers[i].nbuffers;
    }
    d->params = xcalloc((size_t)np + 1, sizeof *d->params);
    d->buffers = xcalloc((size_t)nb + 1, sizeof *d->buffers);
    d->names = xcalloc((size_t)(np + nb) + 1, sizeof *d->names);
    int64_t offset = 0;
    size_t boff = 0;
    np = nb = 0;
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        for (int k = 0; k < l->nparams; k++) {
            const Param *p = &l->params[k];
            cnnrt_param *q = &d->params[np++];
            q->name = tensor_name_of(d, l, p->suffix);
            q->rank = p->rank;
            for (int j = 0; j < p->rank; j++)
                q->shape[j] = p->dims[j];
            q->offset = offset;
            q->count = p->count;
            offset += p->count;
        }
        for (int k = 0; k < l->nbuffers; k++) {
            const Buffer *b = &l->buffers[k];
            cnnrt_buffer *q = &d->buffers[nb++];
            q->name = tensor_name_of(d, l, b->suffix);
            q->rank = b->scalar ? 0 : 1;
            q->shape[0] = b->scalar ? 0 : b->count;
            q->count = b->scalar ? 1 : b->count;
            q->is_int64 = b->is_int64;
            q->offset = boff;
            q->start = b->start;
            boff += (size_t)q->count * 8;
        }
    }
    d->m = (cnnrt_model){.abi_version = CNNRT_ABI_VERSION, .name = n->name,
                         .source_hash = source_hash(src), .real_size = 8,
                         .params = d->params, .nparams = np, .param_count = offset,
                         .buffers = nb ? d->buffers : NULL, .nbuffers = nb,
                         .buffer_bytes = boff};
}

static void described_free(Described *d)
{
    for (int i = 0; i < d->nnames; i++)
        free(d->names[i]);
    free(d->names);
    free(d->params);
    free(d->buffers);
}

/* Each layer's values out of the reader's blocks. */
static Weights *split_by_layer(const Network *n, const Described *d, const double *params,
                               const unsigned char *buffers)
{
    Weights *w = xcalloc(1, sizeof *w);
    w->nlayers = n->nlayers;
    w->at = xcalloc((size_t)n->nlayers + 1, sizeof *w->at);
    int np = 0, nb = 0;
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        for (int k = 0; k < l->nparams; k++) {
            const cnnrt_param *q = &d->params[np++];
            w->at[i].param[k] = xcalloc((size_t)q->count, sizeof(double));
            memcpy(w->at[i].param[k], params + q->offset, (size_t)q->count * sizeof(double));
        }
        for (int k = 0; k < l->nbuffers; k++) {
            const cnnrt_buffer *q = &d->buffers[nb++];
            double *v = xcalloc((size_t)q->count, sizeof(double));
            for (int64_t j = 0; j < q->count; j++) {
                const unsigned char *at = buffers + q->offset + (size_t)j * 8;
                if (q->is_int64) {
                    int64_t x;
                    memcpy(&x, at, 8);
                    v[j] = (double)x;
                } else {
                    memcpy(&v[j], at, 8);
                }
            }
            w->at[i].buffer[k] = v;
        }
    }
    return w;
}

Weights *weights_load(const Network *n, const Source *src, const char *path)
{
    Described d = {0};
    describe(n, src, &d);
    double *params = xcalloc((size_t)d.m.param_count + 1, sizeof(double));
    unsigned char *buffers = xcalloc(d.m.buffer_bytes + 8, 1);
    /* The buffers start at their starting values: a checkpoint that does
     * not hold them (the trainer's do not yet) leaves them there, as the
     * trainer's predict does. */
    for (int i = 0; i < d.m.nbuffers; i++)
        for (int64_t j = 0; j < d.buffers[i].count; j++) {
            unsigned char *at = buffers + d.buffers[i].offset + (size_t)j * 8;
            if (d.buffers[i].is_int64) {
                int64_t x = (int64_t)d.buffers[i].start;
                memcpy(at, &x, 8);
            } else {
                memcpy(at, &d.buffers[i].start, 8);
            }
        }
    cnnrt_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.model = &d.m;
    ctx.params = params;
    ctx.buffers = buffers;
    Weights *w = NULL;
    rt_prog = "cnnc";
    if (rt_ckpt_load(&ctx, path) != 0)
        fprintf(stderr, "cnnc: error: %s\n", rt_errmsg());
    else
        w = split_by_layer(n, &d, params, buffers);
    free(params);
    free(buffers);
    described_free(&d);
    return w;
}

void weights_free(Weights *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->nlayers; i++) {
        for (int k = 0; k < 2; k++)
            free(w->at[i].param[k]);
        for (int k = 0; k < 3; k++)
            free(w->at[i].buffer[k]);
    }
    free(w->at);
    free(w);
}
