/* eval.c: the eval and predict commands. */
#include "rt.h"

#include <stdlib.h>
#include <string.h>

static int setup(const cnnrt_model *m, const rt_opts *o, rt_data *d, bool need_y,
                 cnnrt_ctx *ctx)
{
    rt_data_opts how = {o->resize, (int)o->threads};
    int rc = rt_data_load(d, m, o->data, o->labels, need_y, &how);
    if (rc != 0) {
        rt_print_error();
        return rc == -2 ? RT_USAGE : RT_FAIL;
    }
    if ((rc = rt_data_check(d, NULL, false, o->resize)) != RT_OK) {
        rt_print_error();
        rt_data_free(d);
        return rc;
    }
    bool ok = cnnrt_ctx_init(ctx, m, CNNRT_SGD, (int)o->threads) == 0;
    /* Running statistics start where training starts them, not at the
     * zeroes of the allocation (a variance of 0), before the checkpoint's
     * replace them. */
    if (ok)
        rt_init_buffers(ctx);
    if (!ok || rt_ckpt_load(ctx, o->weights) != 0) {
        rt_print_error();
        cnnrt_ctx_free(ctx);
        rt_data_free(d);
        return RT_FAIL;
    }
    return RT_OK;
}

int rt_cmd_eval(const cnnrt_model *m, const rt_opts *o)
{
    rt_data d;
    cnnrt_ctx ctx;
    int rc = setup(m, o, &d, true, &ctx);
    if (rc != RT_OK)
        return rc;
    double loss, acc;
    int ev = rt_evaluate(&ctx, &d, 0, d.n, (int)o->batch, &loss, &acc);
    if (ev == 1) {
        /* A mean of NaN printed with exit 0 would pass for a result. */
        char why[1024], where[300];
        snprintf(why, sizeof why, "%s", rt_errmsg());
        rt_nonfinite_where(&ctx, where, sizeof where);
        rt_error("the weights in %s give NaN or infinity: %s; %s", o->weights, why, where);
    }
    if (ev != 0) {
        rt_print_error();
        rc = RT_FAIL;
    } else if (acc >= 0) {
        printf("loss %.6f  accuracy %.2f%% (%lld/%lld)\n", loss, 100 * acc,
               (long long)(acc * (double)d.n + 0.5), (long long)d.n);
    } else {
        printf("loss %.6f  (%lld samples)\n", loss, (long long)d.n);
    }
    cnnrt_ctx_free(&ctx);
    rt_data_free(&d);
    return rc;
}

/* Whether path names a NumPy file: predict writes binary there. */
static bool is_npy_path(const char *path)
{
    size_t n = path ? strlen(path) : 0;
    return n > 4 && strcmp(path + n - 4, ".npy") == 0;
}

/* The header of a .npy (format 1.0) of `count` rows: int32 classes [count],
 * or the outputs [count, k] in the model's precision; padded with spaces
 * to 64 bytes and a newline, as NumPy writes it. */
static void write_npy_header(FILE *f, bool classes, int64_t count, int64_t k, int real_size)
{
    char dict[160];
    int len = classes ? snprintf(dict, sizeof dict, "{'descr': '<i4', 'fortran_order': False, "
                                                    "'shape': (%lld,), }", (long long)count)
                      : snprintf(dict, sizeof dict, "{'descr': '<f%d', 'fortran_order': False, "
                                                    "'shape': (%lld, %lld), }",
                                 real_size, (long long)count, (long long)k);
    int total = (10 + len + 1 + 63) / 64 * 64;
    int hlen = total - 10;
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(hlen & 0xff, f);
    fputc(hlen >> 8, f);
    fwrite(dict, 1, (size_t)len, f);
    for (int i = 10 + len; i < total - 1; i++)
        fputc(' ', f);
    fputc('\n', f);
}

/* Row i of the outputs as NumPy stores it: classes as int32, else the
 * outputs' reals, little-endian. */
static void write_npy_row(FILE *f, const cnnrt_model *m, const void *output, int i,
                          bool classes)
{
    unsigned char b[8];
    if (classes) {
        uint32_t c = (uint32_t)rt_argmax(m, output, i);
        for (int k = 0; k < 4; k++)
            b[k] = (unsigned char)(c >> (8 * k));
        fwrite(b, 1, 4, f);
        return;
    }
    for (int64_t j = 0; j < m->outputs; j++) {
        double v = rt_get(m->real_size, output, (int64_t)i * m->outputs + j);
        uint64_t bits;
        if (m->real_size == 4) {
            float fv = (float)v;
            uint32_t u;
            memcpy(&u, &fv, 4);
            bits = u;
        } else {
            memcpy(&bits, &v, 8);
        }
        for (int k = 0; k < m->real_size; k++)
            b[k] = (unsigned char)(bits >> (8 * k));
        fwrite(b, 1, (size_t)m->real_size, f);
    }
}

int rt_cmd_predict(const cnnrt_model *m, const rt_opts *o)
{
    rt_data d;
    cnnrt_ctx ctx;
    rt_opts po = *o;
    po.labels = NULL;   /* predict reads no labels */
    int rc = setup(m, &po, &d, false, &ctx);
    if (rc != RT_OK)
        return rc;
    rt_output dest = {.slot = -1};
    FILE *out = stdout;
    bool to_file = o->out && strcmp(o->out, "-") != 0;
    int batch = (int)o->batch;
    int64_t *idx = rt_calloc((size_t)batch, sizeof *idx);
    void *x = rt_aligned_alloc((size_t)batch * (size_t)m->input_size * (size_t)m->real_size);
    if (!idx || !x || (to_file && !(out = rt_output_open(&dest, o->out)))) {
        rt_print_error();
        rc = RT_FAIL;
        goto out;
    }
    ctx.training = 0;
    bool npy = to_file && is_npy_path(o->out);
    bool classes_only = m->loss_kind == CNNRT_CROSS_ENTROPY && !o->probabilities;
    if (npy)
        write_npy_header(out, classes_only, d.n, m->outputs, m->real_size);
    for (int64_t s = 0; s < d.n; s += batch) {
        int n = (int)(d.n - s < batch ? d.n - s : batch);
        for (int i = 0; i < n; i++)
            idx[i] = s + i;
        rt_data_inputs(&d, m, idx, n, x, ctx.pool);
        m->forward(&ctx, n, x);
        for (int i = 0; i < n && npy; i++)
            write_npy_row(out, m, ctx.output, i, classes_only);
        for (int i = 0; i < n && !npy; i++) {
            bool classes = m->loss_kind == CNNRT_CROSS_ENTROPY;
            if (classes || o->probabilities)
                fprintf(out, "%d", rt_argmax(m, ctx.output, i));
            if (classes && !o->probabilities) {
                fputc('\n', out);
                continue;
            }
            for (int64_t j = 0; j < m->outputs; j++)
                fprintf(out, "%s%.*g", j || o->probabilities ? " " : "",
                        m->real_size == 4 ? 9 : 17,
                        rt_get(m->real_size, ctx.output, (int64_t)i * m->outputs + j));
            fputc('\n', out);
        }
    }
    if (to_file) {
        if (rt_output_commit(&dest) != 0) {
            rt_print_error();
            rc = RT_FAIL;
        }
    } else if (fflush(stdout) != 0) {
        rt_error("cannot write the predictions to standard output");
        rt_print_error();
        rc = RT_FAIL;
    }
out:
    if (rc != RT_OK && dest.f)
        rt_output_abort(&dest);
    free(idx);
    free(x);
    cnnrt_ctx_free(&ctx);
    rt_data_free(&d);
    return rc;
}
