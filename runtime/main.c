/* main.c: cnnrt_main, the context, initialisation, summary. */
#include "rt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Catches a code generator's slip before it can do harm. */
int rt_model_check(const cnnrt_model *m)
{
    const char *why = NULL;
    if (m->abi_version != CNNRT_ABI_VERSION)
        why = "abi_version differs from this runtime's CNNRT_ABI_VERSION";
    else if (m->real_size != 4 && m->real_size != 8)
        why = "real_size must be 4 or 8";
    else if (!(m->input_rank == 1 || m->input_rank == 3))
        why = "input_rank must be 1 or 3";
    else if (m->input_size != (m->input_rank == 1 ? m->input_shape[0]
                               : m->input_shape[0] * m->input_shape[1] * m->input_shape[2]) ||
             m->input_size < 1)
        why = "input_size is not the product of input_shape";
    else if (m->outputs < 1 || m->max_batch < 1)
        why = "outputs and max_batch must be positive";
    else if (!m->forward || !m->loss || !m->backward || !m->update ||
             !m->first_nonfinite || !m->workspace_bytes)
        why = "an entry point is NULL";
    else if (m->nparams < 0 || (m->nparams > 0 && !m->params) || m->param_count < 0)
        why = "the parameter table is missing";
    for (int i = 0; !why && i < m->nparams; i++) {
        const cnnrt_param *p = &m->params[i];
        int64_t count = 1;
        for (int k = 0; k < p->rank && k < 4; k++)
            count *= p->shape[k];
        if (!p->name || p->rank < 1 || p->rank > 4 || count != p->count ||
            p->offset < 0 || p->offset + p->count > m->param_count)
            why = "a parameter's rank, shape, count or offset is inconsistent";
    }
    if (why) {
        rt_error("the model %s is malformed: %s", m->name ? m->name : "(unnamed)", why);
        return -1;
    }
    return 0;
}

int cnnrt_ctx_init(cnnrt_ctx *ctx, const cnnrt_model *m, cnnrt_optimizer opt, int threads)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->model = m;
    ctx->threads = threads > 0 ? threads : 1;
    ctx->optimizer = opt;
    ctx->lr = m->train.lr;
    ctx->momentum = m->train.momentum;
    ctx->beta1 = m->train.beta1;
    ctx->beta2 = m->train.beta2;
    ctx->eps = m->train.eps;
    ctx->decay = m->train.decay;
    cnnrt_rng_seed(&ctx->rng, m->train.seed, 3);
    size_t rs = (size_t)m->real_size, n = (size_t)m->param_count;
    int slots = cnnrt_opt_slots(opt);
    ctx->workspace_size = m->workspace_bytes(ctx->threads);
    if (!(ctx->params = rt_aligned_alloc(n * rs)) ||
        !(ctx->grads = rt_aligned_alloc(n * rs)) ||
        (slots && !(ctx->opt_state = rt_aligned_alloc((size_t)slots * n * rs))) ||
        !(ctx->workspace = rt_aligned_alloc(ctx->workspace_size)) ||
        (m->buffer_bytes && !(ctx->buffers = rt_aligned_alloc(m->buffer_bytes))) ||
        (ctx->threads > 1 && !(ctx->pool = rt_pool_new(ctx->threads)))) {
        cnnrt_ctx_free(ctx);
        return -1;
    }
    return 0;
}

void cnnrt_ctx_free(cnnrt_ctx *ctx)
{
    free(ctx->params);
    free(ctx->grads);
    free(ctx->opt_state);
    free(ctx->workspace);
    free(ctx->buffers);
    rt_pool_free(ctx->pool);
    memset(ctx, 0, sizeof *ctx);
}

void cnnrt_init_params(cnnrt_ctx *ctx, uint64_t seed)
{
    const cnnrt_model *m = ctx->model;
    cnnrt_rng r;
    cnnrt_rng_seed(&r, seed, 1);
    for (int i = 0; i < m->nparams; i++) {
        const cnnrt_param *p = &m->params[i];
        double fan_in = (double)(p->fan_in > 0 ? p->fan_in : 1);
        double fan_avg = (double)(p->fan_in + p->fan_out > 0 ? p->fan_in + p->fan_out : 1);
        for (int64_t j = 0; j < p->count; j++) {
            double v = 0;
            if (!p->is_bias && !p->is_one) {
                switch (p->init) {
                case CNNRT_HE_NORMAL: v = sqrt(2.0 / fan_in) * cnnrt_rng_normal(&r); break;
                case CNNRT_HE_UNIFORM:
                    v = sqrt(6.0 / fan_in) * (2.0 * cnnrt_rng_uniform(&r) - 1.0);
                    break;
                case CNNRT_GLOROT_NORMAL:
                    v = sqrt(2.0 / fan_avg) * cnnrt_rng_normal(&r);
                    break;
                case CNNRT_GLOROT_UNIFORM:
                    v = sqrt(6.0 / fan_avg) * (2.0 * cnnrt_rng_uniform(&r) - 1.0);
                    break;
                }
            }
            rt_set(m->real_size, ctx->params, p->offset + j, p->is_one ? 1.0 : v);
        }
    }
    rt_init_buffers(ctx);
}

void rt_init_buffers(cnnrt_ctx *ctx)
{
    const cnnrt_model *m = ctx->model;
    for (int i = 0; i < m->nbuffers; i++) {
        const cnnrt_buffer *b = &m->buffers[i];
        char *at = (char *)ctx->buffers + b->offset;
        for (int64_t j = 0; j < b->count; j++) {
            if (b->is_int64)
                ((int64_t *)(void *)at)[j] = (int64_t)b->start;
            else
                rt_set(m->real_size, at, j, b->start);
        }
    }
}

static int run(const cnnrt_model *m, int argc, char **argv);

static int summary(const cnnrt_model *m)
{
    if (m->summary) {
        fputs(m->summary, stdout);
        return RT_OK;
    }
    printf("network %s (%s), input ", m->name, m->real_size == 4 ? "f32" : "f64");
    if (m->input_rank == 3)
        printf("%lldx%lldx%lld", (long long)m->input_shape[0],
               (long long)m->input_shape[1], (long long)m->input_shape[2]);
    else
        printf("%lld", (long long)m->input_shape[0]);
    printf(", %lld outputs, batch up to %d\n", (long long)m->outputs, m->max_batch);
    for (int i = 0; i < m->nparams; i++) {
        const cnnrt_param *p = &m->params[i];
        char shape[128];
        size_t used = (size_t)snprintf(shape, sizeof shape, "[");
        for (int k = 0; k < p->rank; k++)
            used += (size_t)snprintf(shape + used, sizeof shape - used, "%s%lld",
                                     k ? ", " : "", (long long)p->shape[k]);
        snprintf(shape + used, sizeof shape - used, "]");
        printf("  %-24s %-20s %12lld\n", p->name, shape, (long long)p->count);
    }
    printf("total: %lld parameters, %lld bytes\n", (long long)m->param_count,
           (long long)m->param_count * m->real_size);
    return RT_OK;
}

/* Several processes (MPI) share train and bench; the other commands are
 * rank 0's alone, the others wait for it at the end. */
int cnnrt_main(const cnnrt_model *m, int argc, char **argv)
{
    if (rt_group_start(&argc, &argv) != 0) {
        fprintf(stderr, "%s: error: cannot start MPI\n", argc > 0 ? argv[0] : "trainer");
        return RT_FAIL;
    }
    int rc = run(m, argc, argv);
    rt_group_end();
    return rc;
}

static int run(const cnnrt_model *m, int argc, char **argv)
{
    if (argc > 0 && argv[0]) {
        const char *slash = strrchr(argv[0], '/');
        rt_prog = slash ? slash + 1 : argv[0];
    }
    if (rt_model_check(m) != 0) {
        rt_print_error();
        return RT_FAIL;
    }
    rt_opts o;
    int rc = rt_parse_args(m, argc, argv, &o);
    if (rc != RT_OK) {
        rt_print_error();
        fprintf(stderr, "(run '%s --help' for usage)\n", rt_prog);
        return rc;
    }
    if (o.cmd == RT_CMD_HELP) {
        rt_usage(m, stdout);
        return RT_OK;
    }
    if (o.help)
        return rt_print_command_help(m, o.cmd);
    if (!rt_group_leader() && o.cmd != RT_CMD_TRAIN && o.cmd != RT_CMD_BENCH)
        return RT_OK;
    switch (o.cmd) {
    case RT_CMD_TRAIN: return rt_cmd_train(m, &o);
    case RT_CMD_EVAL: return rt_cmd_eval(m, &o);
    case RT_CMD_PREDICT: return rt_cmd_predict(m, &o);
    case RT_CMD_GRADCHECK: return rt_cmd_gradcheck(m, &o);
    case RT_CMD_BENCH: return rt_cmd_bench(m, &o);
    case RT_CMD_SUMMARY: return summary(m);
    case RT_CMD_HELP: break;
    }
    return RT_OK;
}
