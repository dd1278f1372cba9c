/* data.c: a data set checked against the model, converted batch by batch.
 *
 * The files stay in memory in their own element type; rt_data_inputs and
 * rt_data_targets convert the samples of one batch to the model's reals.
 */
#include "rt.h"

#include <math.h>
#include <string.h>

static double element(const rt_array *a, const unsigned char *p)
{
    switch (a->dtype) {
    case RT_U8: return p[0];
    case RT_I32: return (double)(int32_t)rt_le32(p);
    case RT_I64: return (double)(int64_t)rt_le64(p);
    case RT_F32: return rt_lef32(p);
    case RT_F64: return rt_lef64(p);
    }
    return 0;
}

static int64_t int_element(const rt_array *a, const unsigned char *p)
{
    switch (a->dtype) {
    case RT_U8: return p[0];
    case RT_I32: return (int32_t)rt_le32(p);
    case RT_I64: return (int64_t)rt_le64(p);
    default: return 0;
    }
}

static bool is_float(rt_dtype t)
{
    return t == RT_F32 || t == RT_F64;
}

static char *model_input_str(const cnnrt_model *m, char *buf, size_t size)
{
    if (m->input_rank == 3)
        snprintf(buf, size, "N x %lld x %lld x %lld", (long long)m->input_shape[0],
                 (long long)m->input_shape[1], (long long)m->input_shape[2]);
    else
        snprintf(buf, size, "N x %lld", (long long)m->input_shape[0]);
    return buf;
}

static int fit_inputs(const rt_array *x, const cnnrt_model *m)
{
    char want[128], found[256];
    if (!(x->dtype == RT_U8 || is_float(x->dtype))) {
        rt_error("%s: inputs must be uint8 or float32, found %s", x->path,
                 rt_dtype_names[x->dtype]);
        return -1;
    }
    bool fits;
    if (m->input_rank == 3) {
        const int64_t *s = m->input_shape;
        fits = (x->rank == 4 && x->dims[1] == s[0] && x->dims[2] == s[1] &&
                x->dims[3] == s[2]) ||
               (x->rank == 3 && s[2] == 1 && x->dims[1] == s[0] && x->dims[2] == s[1]);
    } else {
        /* A vector model takes any sample shape of F elements, in file order. */
        fits = x->rank >= 2 && x->row == m->input_shape[0];
    }
    if (!fits) {
        rt_error("%s: inputs of shape %s do not fit the model %s: expected %s%s",
                 x->path, rt_dims_str(x, found, sizeof found), m->name,
                 model_input_str(m, want, sizeof want),
                 m->input_rank == 3 && m->input_shape[2] == 1
                     ? " (or N x H x W)" : "");
        return -1;
    }
    if (is_float(x->dtype)) {
        int size = rt_dtype_size(x->dtype);
        for (int64_t i = 0; i < x->n; i++) {
            const unsigned char *p = x->base + (size_t)i * x->stride;
            for (int64_t j = 0; j < x->row; j++)
                if (!isfinite(element(x, p + j * size))) {
                    rt_error("%s: sample %lld holds a non-finite value (%g at element "
                             "%lld); inputs must be finite", x->path, (long long)i,
                             element(x, p + j * size), (long long)j);
                    return -1;
                }
        }
    }
    return 0;
}

static int fit_targets(rt_data *d, const cnnrt_model *m)
{
    const rt_array *y = &d->y, *x = &d->x;
    char found[256];
    if (y->n != x->n) {
        rt_error("%s: %lld labels for the %lld samples of %s; expected as many",
                 y->path, (long long)y->n, (long long)x->n, x->path);
        return -1;
    }
    if (!is_float(y->dtype)) {
        if (!(y->rank == 1 || (y->rank == 2 && y->dims[1] == 1))) {
            rt_error("%s: labels of shape %s; expected one label per sample (shape N)",
                     y->path, rt_dims_str(y, found, sizeof found));
            return -1;
        }
        for (int64_t i = 0; i < y->n; i++) {
            int64_t v = int_element(y, y->base + (size_t)i * y->stride);
            if (v < 0 || v >= m->outputs) {
                rt_error("%s: label %lld of sample %lld is out of range; the model "
                         "has %lld classes, expected 0 to %lld", y->path, (long long)v,
                         (long long)i, (long long)m->outputs, (long long)m->outputs - 1);
                return -1;
            }
        }
        d->y_is_labels = true;
        return 0;
    }
    if (m->loss_kind != CNNRT_MSE) {
        rt_error("%s: labels must be integer class indices (uint8, int32 or int64), "
                 "found %s", y->path, rt_dtype_names[y->dtype]);
        return -1;
    }
    bool fits = (y->rank == 2 && y->dims[1] == m->outputs) ||
                (y->rank == 1 && m->outputs == 1);
    if (!fits) {
        rt_error("%s: targets of shape %s do not fit the model's %lld outputs; "
                 "expected N x %lld float32 targets or N integer labels", y->path,
                 rt_dims_str(y, found, sizeof found), (long long)m->outputs,
                 (long long)m->outputs);
        return -1;
    }
    int size = rt_dtype_size(y->dtype);
    for (int64_t i = 0; i < y->n; i++)
        for (int64_t j = 0; j < y->row; j++) {
            double v = element(y, y->base + (size_t)i * y->stride + (size_t)(j * size));
            if (!isfinite(v)) {
                rt_error("%s: the target of sample %lld holds a non-finite value (%g at "
                         "element %lld)", y->path, (long long)i, v, (long long)j);
                return -1;
            }
        }
    d->y_is_labels = false;
    return 0;
}

int rt_data_load(rt_data *d, const cnnrt_model *m, const char *xpath,
                 const char *ypath, bool need_y)
{
    memset(d, 0, sizeof *d);
    if (rt_file_open(&d->xf, xpath) != 0)
        goto fail;
    if (rt_is_cifar(&d->xf)) {
        if (ypath) {
            rt_error("%s: is a CIFAR-10 batch, which holds its own labels; "
                     "expected no labels file, found %s", xpath, ypath);
            goto fail;
        }
        if (rt_cifar_parse(&d->xf, &d->x, &d->y) != 0)
            goto fail;
        d->has_y = true;
    } else {
        if (rt_array_parse(&d->xf, &d->x) != 0)
            goto fail;
        if (strcmp(d->x.format, "IDX") == 0 && d->xf.size % RT_CIFAR_RECORD == 0)
            fprintf(stderr, "%s: note: %s could also be a CIFAR-10 batch of %zu records; "
                    "read as IDX, whose header fits the file's size exactly\n", rt_prog,
                    xpath, d->xf.size / RT_CIFAR_RECORD);
        if (ypath) {
            if (rt_file_open(&d->yf, ypath) != 0 || rt_array_parse(&d->yf, &d->y) != 0)
                goto fail;
            d->has_y = true;
        }
    }
    if (fit_inputs(&d->x, m) != 0)
        goto fail;
    if (d->has_y && fit_targets(d, m) != 0)
        goto fail;
    if (need_y && !d->has_y) {
        rt_error("%s holds no labels: expected a labels file with it (--labels, "
                 "--val-labels); only CIFAR-10 batches carry their own", xpath);
        rt_data_free(d);
        return -2;
    }
    d->n = d->x.n;
    return 0;
fail:
    rt_data_free(d);
    return -1;
}

void rt_data_free(rt_data *d)
{
    rt_file_close(&d->xf);
    rt_file_close(&d->yf);
    memset(d, 0, sizeof *d);
}

/* What a loop over a batch's samples needs (rt_pool_run). */
typedef struct batch_job {
    const rt_data *d;
    const cnnrt_model *m;
    const int64_t *idx;
    void *x;
} batch_job;

/* Samples lo..hi-1 of the batch converted to reals. */
static void inputs_body(void *arg, int lo, int hi)
{
    const batch_job *job = arg;
    const rt_array *a = &job->d->x;
    void *x = job->x;
    int rs = job->m->real_size;
    int64_t row = job->m->input_size;
    int size = rt_dtype_size(a->dtype);
    for (int i = lo; i < hi; i++) {
        const int64_t *idx = job->idx;
        const unsigned char *src = a->base + (size_t)idx[i] * a->stride;
        int64_t o = (int64_t)i * row;
        if (a->chw) {
            /* CIFAR-10 planes: element (y, x, c) of HWC is c*H*W + y*W + x. */
            int64_t h = a->dims[1], w = a->dims[2], c = a->dims[3];
            for (int64_t yy = 0; yy < h; yy++)
                for (int64_t xx = 0; xx < w; xx++)
                    for (int64_t cc = 0; cc < c; cc++)
                        rt_set(rs, x, o + (yy * w + xx) * c + cc,
                               src[cc * h * w + yy * w + xx] / 255.0);
        } else if (a->dtype == RT_U8 && rs == 4) {
            /* the common case, kept tight: images into a float model, in
             * float division as PyTorch's x.float() / 255 (for every byte
             * the same float as (float)(v / 255.0)); it vectorizes */
            float *dst = (float *)x + o;
            for (int64_t j = 0; j < row; j++)
                dst[j] = (float)src[j] / 255.0f;
        } else if (a->dtype == RT_U8) {
            double *dst = (double *)x + o;
            for (int64_t j = 0; j < row; j++)
                dst[j] = src[j] / 255.0;
        } else {
            for (int64_t j = 0; j < row; j++)
                rt_set(rs, x, o + j, element(a, src + j * size));
        }
    }
}

void rt_data_inputs(const rt_data *d, const cnnrt_model *m, const int64_t *idx,
                    int n, void *x, rt_pool *pool)
{
    /* A batch of the seed's images is 3.5 million bytes to convert: on one
     * thread, 3% of a training step. */
    batch_job job = {d, m, idx, x};
    rt_pool_run(pool, n, 1, inputs_body, &job);
}

bool rt_data_bytes(const rt_data *d, const cnnrt_model *m)
{
    return m->train_step_bytes && d->x.dtype == RT_U8;
}

static void bytes_body(void *arg, int lo, int hi)
{
    const batch_job *job = arg;
    const rt_array *a = &job->d->x;
    size_t row = (size_t)job->m->input_size;
    for (int i = lo; i < hi; i++) {
        const unsigned char *src = a->base + (size_t)job->idx[i] * a->stride;
        uint8_t *dst = (uint8_t *)job->x + (size_t)i * row;
        if (a->chw) {
            /* CIFAR-10 planes: element (y, x, c) of HWC is c*H*W + y*W + x. */
            int64_t h = a->dims[1], w = a->dims[2], c = a->dims[3];
            for (int64_t yy = 0; yy < h; yy++)
                for (int64_t xx = 0; xx < w; xx++)
                    for (int64_t cc = 0; cc < c; cc++)
                        dst[(yy * w + xx) * c + cc] = src[cc * h * w + yy * w + xx];
        } else {
            memcpy(dst, src, row);
        }
    }
}

void rt_data_input_bytes(const rt_data *d, const cnnrt_model *m, const int64_t *idx,
                         int n, uint8_t *x, rt_pool *pool)
{
    batch_job job = {d, m, idx, x};
    rt_pool_run(pool, n, 1, bytes_body, &job);
}

void rt_data_targets(const rt_data *d, const cnnrt_model *m, const int64_t *idx,
                     int n, int32_t *labels, void *targets)
{
    const rt_array *a = &d->y;
    int rs = m->real_size;
    int64_t k = m->outputs;
    int size = rt_dtype_size(a->dtype);
    for (int i = 0; i < n; i++) {
        const unsigned char *src = a->base + (size_t)idx[i] * a->stride;
        if (d->y_is_labels) {
            int32_t label = (int32_t)int_element(a, src);
            if (labels)
                labels[i] = label;
            if (targets)
                for (int64_t j = 0; j < k; j++)
                    rt_set(rs, targets, i * k + j, j == label ? 1.0 : 0.0);
        } else if (targets) {
            for (int64_t j = 0; j < k; j++)
                rt_set(rs, targets, i * k + j, element(a, src + j * size));
        }
    }
}
