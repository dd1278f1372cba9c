/* ckpt.c: checkpoints in the safetensors format.
 *
 *   8 bytes   N, the header length, little-endian
 *   N bytes   a JSON object: "name": {"dtype": "F32", "shape": [...],
 *             "data_offsets": [begin, end]} per tensor, offsets into the data;
 *             "__metadata__": string -> string; padded with spaces to 8 bytes
 *   the data  each tensor's elements, little-endian, C order
 *
 * What cnnc writes: the parameters under their table names ("C1.weight") in
 * table order, then the optimizer state as "__opt__.<param>.<slot>" with
 * PyTorch's slot names (momentum_buffer; exp_avg, exp_avg_sq), all in the
 * model's precision. __metadata__ holds "format": "pt", and "cnnc.model",
 * "cnnc.hash" (16 hex digits), "cnnc.source", "cnnc.precision" (f32|f64),
 * "cnnc.optimizer" and "cnnc.step".
 */
#include "rt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADER (100u << 20)   /* as the reference implementation */

static const char *const slot_names[5][2] = {
    [CNNRT_SGD] = {NULL, NULL},
    [CNNRT_MOMENTUM] = {"momentum_buffer", NULL},
    [CNNRT_NESTEROV] = {"momentum_buffer", NULL},
    [CNNRT_ADAM] = {"exp_avg", "exp_avg_sq"},
    [CNNRT_ADAMW] = {"exp_avg", "exp_avg_sq"},
};

int cnnrt_opt_slots(cnnrt_optimizer opt)
{
    return opt == CNNRT_ADAM || opt == CNNRT_ADAMW ? 2 : opt == CNNRT_SGD ? 0 : 1;
}

/* ---- writing --------------------------------------------------------------- */

static void write_tensor_entry(FILE *f, const char *name, const char *dtype,
                               const cnnrt_param *p, uint64_t *offset, int rs)
{
    fputc(',', f);
    rt_json_write_str(f, name);
    fprintf(f, ":{\"dtype\":\"%s\",\"shape\":[", dtype);
    for (int i = 0; i < p->rank; i++)
        fprintf(f, "%s%lld", i ? "," : "", (long long)p->shape[i]);
    uint64_t end = *offset + (uint64_t)p->count * (uint64_t)rs;
    fprintf(f, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)*offset,
            (unsigned long long)end);
    *offset = end;
}

static void write_reals(FILE *f, int rs, const void *p, int64_t count)
{
    const uint16_t probe = 1;
    if (*(const unsigned char *)&probe == 1) {
        fwrite(p, (size_t)rs, (size_t)count, f);
        return;
    }
    const unsigned char *b = p;
    for (int64_t i = 0; i < count; i++)
        for (int j = rs - 1; j >= 0; j--)
            fputc(b[i * rs + j], f);
}

static char *state_name(const cnnrt_param *p, const char *slot)
{
    size_t n = strlen(p->name) + strlen(slot) + 16;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "__opt__.%s.%s", p->name, slot);
    return s;
}

int rt_ckpt_save(const cnnrt_ctx *ctx, const char *path)
{
    const cnnrt_model *m = ctx->model;
    int rs = m->real_size;
    const char *dtype = rs == 4 ? "F32" : "F64";
    int slots = cnnrt_opt_slots(ctx->optimizer);
    char *header = NULL;
    size_t hlen = 0;
    FILE *h = open_memstream(&header, &hlen);
    if (!h) {
        rt_error("out of memory");
        return -1;
    }
    char hash[32], step[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)m->source_hash);
    snprintf(step, sizeof step, "%lld", (long long)ctx->step);
    fputs("{\"__metadata__\":{\"format\":\"pt\",\"cnnc.model\":", h);
    rt_json_write_str(h, m->name);
    fprintf(h, ",\"cnnc.hash\":\"%s\",\"cnnc.precision\":\"%s\",\"cnnc.optimizer\":\"%s\","
               "\"cnnc.step\":\"%s\",\"cnnc.source\":",
            hash, rs == 4 ? "f32" : "f64", rt_optimizer_name(ctx->optimizer), step);
    rt_json_write_str(h, m->source ? m->source : "");
    fputc('}', h);
    uint64_t offset = 0;
    for (int i = 0; i < m->nparams; i++)
        write_tensor_entry(h, m->params[i].name, dtype, &m->params[i], &offset, rs);
    for (int k = 0; k < slots; k++)
        for (int i = 0; i < m->nparams; i++) {
            char *name = state_name(&m->params[i], slot_names[ctx->optimizer][k]);
            if (!name) {
                fclose(h);
                free(header);
                rt_error("out of memory");
                return -1;
            }
            write_tensor_entry(h, name, dtype, &m->params[i], &offset, rs);
            free(name);
        }
    fputc('}', h);
    while (ftell(h) % 8 != 0)
        fputc(' ', h);
    if (fclose(h) != 0) {
        free(header);
        rt_error("out of memory");
        return -1;
    }
    rt_output out;
    FILE *f = rt_output_open(&out, path);
    if (!f) {
        free(header);
        return -1;
    }
    unsigned char len[8];
    rt_put_le64(len, hlen);
    fwrite(len, 1, 8, f);
    fwrite(header, 1, hlen, f);
    free(header);
    for (int i = 0; i < m->nparams; i++)
        write_reals(f, rs, (const char *)ctx->params + m->params[i].offset * rs,
                    m->params[i].count);
    for (int k = 0; k < slots; k++)
        for (int i = 0; i < m->nparams; i++)
            write_reals(f, rs,
                        (const char *)ctx->opt_state +
                            (k * m->param_count + m->params[i].offset) * rs,
                        m->params[i].count);
    return rt_output_commit(&out);
}

/* ---- reading --------------------------------------------------------------- */

typedef struct Entry {
    const char *name;
    const char *dtype;
    int esize;
    int rank;
    uint64_t shape[8];
    uint64_t begin, end;
    const cnnrt_param *param;   /* what it is for */
    int slot;                   /* -1: the parameter itself */
    cnnrt_optimizer opt;        /* for a slot */
} Entry;

static int dtype_size(const char *d)
{
    static const struct { const char *name; int size; } known[] = {
        {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4},
        {"I16", 2}, {"I8", 1}, {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1},
        {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(d, known[i].name) == 0)
            return known[i].size;
    return 0;
}

static char *shape_str(const uint64_t *s, int rank, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%llu", i ? ", " : "",
                                 (unsigned long long)s[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
    return buf;
}

static char *param_shape_str(const cnnrt_param *p, char *buf, size_t size)
{
    uint64_t s[4];
    for (int i = 0; i < p->rank; i++)
        s[i] = (uint64_t)p->shape[i];
    return shape_str(s, p->rank, buf, size);
}

/* One "name": {...} member of the header, checked on its own. */
static int read_entry(const char *path, uint64_t data_size, const char *name,
                      const rt_json *v, Entry *e)
{
    memset(e, 0, sizeof *e);
    e->name = name;
    e->slot = -1;
    size_t at = 8 + v->off;
    if (v->type != RT_JOBJ) {
        rt_error("%s: tensor %s (header byte %zu): expected an object with dtype, "
                 "shape and data_offsets", path, name, at);
        return -1;
    }
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->keys[i], "dtype") != 0 && strcmp(v->keys[i], "shape") != 0 &&
            strcmp(v->keys[i], "data_offsets") != 0) {
            rt_error("%s: tensor %s (header byte %zu): unexpected key \"%s\"; expected "
                     "dtype, shape and data_offsets", path, name, at, v->keys[i]);
            return -1;
        }
    const rt_json *dt = rt_json_get(v, "dtype");
    const rt_json *sh = rt_json_get(v, "shape");
    const rt_json *off = rt_json_get(v, "data_offsets");
    if (!dt || !sh || !off) {
        rt_error("%s: tensor %s (header byte %zu): lacks \"%s\"", path, name, at,
                 !dt ? "dtype" : !sh ? "shape" : "data_offsets");
        return -1;
    }
    if (dt->type != RT_JSTR || (e->esize = dtype_size(dt->str)) == 0) {
        rt_error("%s: tensor %s (header byte %zu): dtype is not a safetensors dtype "
                 "(F32, F64, ...)", path, name, 8 + dt->off);
        return -1;
    }
    e->dtype = dt->str;
    if (sh->type != RT_JARR || sh->n > 8) {
        rt_error("%s: tensor %s (header byte %zu): shape must be an array of at most "
                 "8 non-negative integers", path, name, 8 + sh->off);
        return -1;
    }
    uint64_t count = 1, bytes;
    e->rank = (int)sh->n;
    for (size_t i = 0; i < sh->n; i++) {
        if (sh->items[i].type != RT_JNUM || !sh->items[i].is_uint) {
            rt_error("%s: tensor %s (header byte %zu): shape must hold non-negative "
                     "integers", path, name, 8 + sh->items[i].off);
            return -1;
        }
        e->shape[i] = sh->items[i].u;
        if (!rt_mul_ok(count, e->shape[i], &count)) {
            rt_error("%s: tensor %s (header byte %zu): the element count overflows",
                     path, name, 8 + sh->off);
            return -1;
        }
    }
    if (!rt_mul_ok(count, (uint64_t)e->esize, &bytes)) {
        rt_error("%s: tensor %s (header byte %zu): the byte size overflows", path,
                 name, 8 + sh->off);
        return -1;
    }
    if (off->type != RT_JARR || off->n != 2 || off->items[0].type != RT_JNUM ||
        !off->items[0].is_uint || off->items[1].type != RT_JNUM || !off->items[1].is_uint) {
        rt_error("%s: tensor %s (header byte %zu): data_offsets must be [begin, end], "
                 "two non-negative integers", path, name, 8 + off->off);
        return -1;
    }
    e->begin = off->items[0].u;
    e->end = off->items[1].u;
    if (e->begin > e->end || e->end > data_size) {
        rt_error("%s: tensor %s (header byte %zu): data_offsets [%llu, %llu] are out "
                 "of range; the data holds %llu bytes", path, name, 8 + off->off,
                 (unsigned long long)e->begin, (unsigned long long)e->end,
                 (unsigned long long)data_size);
        return -1;
    }
    if (e->end - e->begin != bytes) {
        rt_error("%s: tensor %s (header byte %zu): data_offsets span %llu bytes, but "
                 "%s of shape %s needs %llu", path, name, 8 + off->off,
                 (unsigned long long)(e->end - e->begin), e->dtype,
                 shape_str(e->shape, e->rank, (char[160]){0}, 160),
                 (unsigned long long)bytes);
        return -1;
    }
    return 0;
}

static int cmp_begin(const void *a, const void *b)
{
    const Entry *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1
         : x->end < y->end ? -1 : x->end > y->end;
}

/* Which parameter or optimizer slot the entry is for; -1 if none. */
static int identify(const cnnrt_model *m, Entry *e)
{
    for (int i = 0; i < m->nparams; i++)
        if (strcmp(e->name, m->params[i].name) == 0) {
            e->param = &m->params[i];
            return 0;
        }
    if (strncmp(e->name, "__opt__.", 8) != 0)
        return -1;
    const char *rest = e->name + 8;
    for (int i = 0; i < m->nparams; i++) {
        size_t n = strlen(m->params[i].name);
        if (strncmp(rest, m->params[i].name, n) != 0 || rest[n] != '.')
            continue;
        for (int o = CNNRT_MOMENTUM; o <= CNNRT_ADAMW; o++)
            for (int k = 0; k < cnnrt_opt_slots((cnnrt_optimizer)o); k++)
                if (strcmp(rest + n + 1, slot_names[o][k]) == 0) {
                    e->param = &m->params[i];
                    e->slot = k;
                    e->opt = (cnnrt_optimizer)o;
                    return 0;
                }
    }
    return -1;
}

static int check_fit(const char *path, const cnnrt_model *m, const Entry *e)
{
    const cnnrt_param *p = e->param;
    bool same = e->rank == p->rank;
    for (int i = 0; same && i < p->rank; i++)
        same = e->shape[i] == (uint64_t)p->shape[i];
    char a[160], b[160];
    if (!same) {
        rt_error("%s: tensor %s has shape %s; the model %s expects %s", path, e->name,
                 shape_str(e->shape, e->rank, a, sizeof a), m->name,
                 param_shape_str(p, b, sizeof b));
        return -1;
    }
    if (strcmp(e->dtype, "F32") != 0 && !(m->real_size == 8 && strcmp(e->dtype, "F64") == 0)) {
        rt_error("%s: tensor %s has dtype %s; expected %s", path, e->name, e->dtype,
                 m->real_size == 8 ? "F64 or F32" : "F32 (this is a float trainer)");
        return -1;
    }
    return 0;
}

static int load_values(const char *path, const Entry *e, const unsigned char *data,
                       int rs, void *dst)
{
    const unsigned char *src = data + e->begin;
    for (int64_t j = 0; j < e->param->count; j++) {
        double v = e->esize == 4 ? rt_lef32(src + 4 * j) : rt_lef64(src + 8 * j);
        if (!isfinite(v)) {
            rt_error("%s: tensor %s holds a non-finite value (%g) at element %lld",
                     path, e->name, v, (long long)j);
            return -1;
        }
        rt_set(rs, dst, j, v);
    }
    return 0;
}

static const rt_json *metadata_string(const rt_json *meta, const char *key)
{
    const rt_json *v = meta ? rt_json_get(meta, key) : NULL;
    return v && v->type == RT_JSTR ? v : NULL;
}

int rt_ckpt_load(cnnrt_ctx *ctx, const char *path, bool want_state, bool *state_loaded)
{
    const cnnrt_model *m = ctx->model;
    rt_file f;
    rt_json top = {0};
    Entry *entries = NULL;
    int rc = -1;
    *state_loaded = false;
    if (rt_file_open(&f, path) != 0)
        return -1;
    if (f.size < 8) {
        rt_error("%s: truncated: %zu bytes, shorter than the 8-byte header length",
                 path, f.size);
        goto out;
    }
    uint64_t hlen = rt_le64(f.data);
    if (hlen > f.size - 8) {
        rt_error("%s: the header length %llu (bytes 0-7) runs past the end of the "
                 "file (%zu bytes); not a safetensors file, or truncated", path,
                 (unsigned long long)hlen, f.size);
        goto out;
    }
    if (hlen > MAX_HEADER) {
        rt_error("%s: the header length %llu (bytes 0-7) is above the limit of %u",
                 path, (unsigned long long)hlen, MAX_HEADER);
        goto out;
    }
    size_t err_off;
    if (rt_json_parse((const char *)f.data + 8, hlen, &top, &err_off) != 0) {
        char why[1024];
        snprintf(why, sizeof why, "%s", rt_errmsg());
        rt_error("%s: bad JSON in the header at byte %zu: %s", path, 8 + err_off, why);
        goto out;
    }
    if (top.type != RT_JOBJ) {
        rt_error("%s: the header (byte 8) is not a JSON object", path);
        goto out;
    }
    uint64_t data_size = f.size - 8 - hlen;
    const unsigned char *data = f.data + 8 + hlen;
    const rt_json *meta = NULL;
    entries = calloc(top.n ? top.n : 1, sizeof *entries);
    if (!entries) {
        rt_error("out of memory");
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < top.n; i++) {
        if (strcmp(top.keys[i], "__metadata__") == 0) {
            meta = &top.items[i];
            bool ok = meta->type == RT_JOBJ;
            for (size_t j = 0; ok && j < meta->n; j++)
                ok = meta->items[j].type == RT_JSTR;
            if (!ok) {
                rt_error("%s: __metadata__ (header byte %zu) must map strings to strings",
                         path, 8 + meta->off);
                goto out;
            }
            continue;
        }
        if (read_entry(path, data_size, top.keys[i], &top.items[i], &entries[n]) != 0)
            goto out;
        n++;
    }
    /* No two tensors may share bytes. */
    qsort(entries, n, sizeof *entries, cmp_begin);
    for (size_t i = 1; i < n; i++)
        if (entries[i].begin < entries[i - 1].end) {
            rt_error("%s: tensors %s (bytes %llu-%llu) and %s (bytes %llu-%llu) overlap",
                     path, entries[i - 1].name, (unsigned long long)entries[i - 1].begin,
                     (unsigned long long)entries[i - 1].end, entries[i].name,
                     (unsigned long long)entries[i].begin,
                     (unsigned long long)entries[i].end);
            goto out;
        }
    /* Every tensor must be the model's, of the right shape and dtype. */
    for (size_t i = 0; i < n; i++) {
        if (identify(m, &entries[i]) != 0) {
            rt_error("%s: unexpected tensor %s: the model %s has no such parameter",
                     path, entries[i].name, m->name);
            goto out;
        }
        if (check_fit(path, m, &entries[i]) != 0)
            goto out;
    }
    for (int p = 0; p < m->nparams; p++) {
        const Entry *e = NULL;
        for (size_t i = 0; i < n && !e; i++)
            if (entries[i].param == &m->params[p] && entries[i].slot < 0)
                e = &entries[i];
        if (!e) {
            char s[160];
            rt_error("%s: missing tensor %s (shape %s) of the model %s", path,
                     m->params[p].name, param_shape_str(&m->params[p], s, sizeof s), m->name);
            goto out;
        }
        if (load_values(path, e, data, m->real_size,
                        (char *)ctx->params + m->params[p].offset * m->real_size) != 0)
            goto out;
    }

    const rt_json *hash = metadata_string(meta, "cnnc.hash");
    char ours[32];
    snprintf(ours, sizeof ours, "%016llx", (unsigned long long)m->source_hash);
    if (hash && strcmp(hash->str, ours) != 0)
        fprintf(stderr, "%s: warning: %s was saved by a different network (hash %s, "
                "this one %s); its tensors fit, so it is loaded\n", rt_prog, path,
                hash->str, ours);

    /* Optimizer state: only for the optimizer in use, and only when complete. */
    int slots = cnnrt_opt_slots(ctx->optimizer);
    size_t nstate = 0, other = 0;
    for (size_t i = 0; i < n; i++)
        if (entries[i].slot >= 0) {
            bool mine = slot_names[entries[i].opt][entries[i].slot] &&
                        slots > entries[i].slot &&
                        strcmp(slot_names[entries[i].opt][entries[i].slot],
                               slot_names[ctx->optimizer][entries[i].slot]) == 0;
            if (mine)
                nstate++;
            else
                other++;
        }
    if (!want_state || slots == 0 || (nstate == 0 && other == 0)) {
        rc = 0;
        goto out;
    }
    if (nstate == 0) {
        fprintf(stderr, "%s: warning: %s holds optimizer state for another optimizer; "
                "%s starts from zero state\n", rt_prog, path,
                rt_optimizer_name(ctx->optimizer));
        rc = 0;
        goto out;
    }
    for (int k = 0; k < slots; k++)
        for (int p = 0; p < m->nparams; p++) {
            const Entry *e = NULL;
            for (size_t i = 0; i < n && !e; i++)
                if (entries[i].param == &m->params[p] && entries[i].slot == k &&
                    strcmp(slot_names[entries[i].opt][k], slot_names[ctx->optimizer][k]) == 0)
                    e = &entries[i];
            if (!e) {
                rt_error("%s: missing tensor __opt__.%s.%s: the %s state is incomplete",
                         path, m->params[p].name, slot_names[ctx->optimizer][k],
                         rt_optimizer_name(ctx->optimizer));
                goto out;
            }
            if (load_values(path, e, data, m->real_size,
                            (char *)ctx->opt_state +
                                (k * m->param_count + m->params[p].offset) * m->real_size) != 0)
                goto out;
        }
    const rt_json *step = metadata_string(meta, "cnnc.step");
    ctx->step = 0;
    if (step) {
        char *end;
        long long s = strtoll(step->str, &end, 10);
        if (*end || end == step->str || s < 0) {
            rt_error("%s: __metadata__ cnnc.step is \"%s\"; expected a non-negative "
                     "integer", path, step->str);
            goto out;
        }
        ctx->step = s;
    }
    *state_loaded = true;
    rc = 0;
out:
    free(entries);
    rt_json_free(&top);
    rt_file_close(&f);
    return rc;
}
