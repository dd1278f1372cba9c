/* ckpt.c: checkpoints in the safetensors format.
 *
 *   8 bytes   N, the header length, little-endian
 *   N bytes   a JSON object: "name": {"dtype": "F32", "shape": [...],
 *             "data_offsets": [begin, end]} per tensor, offsets into the data;
 *             "__metadata__": string -> string; padded with spaces to 8 bytes
 *   the data  each tensor's elements, little-endian, C order
 *
 * Two kinds of file, both safetensors so that any tool reads them:
 *
 * - the checkpoint (--save): the parameters under their table names
 *   ("C1.weight") in table order, then the buffers (BatchNorm's
 *   "bn.running_mean", "bn.running_var" in the model's precision,
 *   "bn.num_batches_tracked" I64 of shape []): a PyTorch model's state_dict,
 *   which load_state_dict(strict=True) takes as it is. __metadata__ holds
 *   "format": "pt", "cnnc.model", "cnnc.hash" (16 hex digits),
 *   "cnnc.source", "cnnc.precision" (f32|f64), "cnnc.optimizer", "cnnc.step";
 * - the training state beside it (CKPT.state, for --resume): the optimizer's
 *   slots as "__opt__.<param>.<slot>" with PyTorch's slot names
 *   (momentum_buffer; exp_avg, exp_avg_sq) in the model's precision, and in
 *   __metadata__ "format": "cnnc-state", the same model, hash, optimizer
 *   and step, and the run's position (cnnc.run.*, cnnc.rng.*: rt_run).
 *
 * What is read is checked as the safetensors library checks it, and then
 * some: the header at most 10^8 bytes, the tensors covering the data exactly
 * (no byte shared, between or after them), and cnnc's metadata numbers
 * well-formed. rt_ckpt_load_buffer reads from memory (for the fuzzer).
 */
#include "rt.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADER 100000000u   /* as the reference implementation (10^8, not 2^20 * 100) */

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

static void write_tensor_entry(FILE *f, const char *name, const char *dtype, int rank,
                               const int64_t *shape, int64_t count, uint64_t *offset, int esize)
{
    fputc(',', f);
    rt_json_write_str(f, name);
    fprintf(f, ":{\"dtype\":\"%s\",\"shape\":[", dtype);
    for (int i = 0; i < rank; i++)
        fprintf(f, "%s%lld", i ? "," : "", (long long)shape[i]);
    uint64_t end = *offset + (uint64_t)count * (uint64_t)esize;
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

/* A buffer's elements: int64 (num_batches_tracked) or reals, little-endian. */
static void write_buffer(FILE *f, const cnnrt_ctx *ctx, const cnnrt_buffer *b)
{
    const char *at = (const char *)ctx->buffers + b->offset;
    if (!b->is_int64) {
        write_reals(f, ctx->model->real_size, at, b->count);
        return;
    }
    for (int64_t j = 0; j < b->count; j++) {
        int64_t v;
        unsigned char le[8];
        memcpy(&v, at + 8 * j, 8);
        rt_put_le64(le, (uint64_t)v);
        fwrite(le, 1, 8, f);
    }
}

static char *state_name(const cnnrt_param *p, const char *slot)
{
    size_t n = strlen(p->name) + strlen(slot) + 16;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "__opt__.%s.%s", p->name, slot);
    return s;
}

/* A run's position as __metadata__ strings: counts in decimal, reals as C99
 * hex floats (exact both ways), hashes and RNG states in hex digits. */
static void write_run_metadata(FILE *h, const rt_run *run)
{
    const struct { const char *key; int64_t v; } counts[] = {
        {"cnnc.run.step", run->step}, {"cnnc.run.per_epoch", run->per_epoch},
        {"cnnc.run.epoch", run->epoch}, {"cnnc.run.epoch_step", run->epoch_step},
        {"cnnc.run.seen", run->seen}, {"cnnc.run.correct", run->correct},
        {"cnnc.run.saved_epoch", run->saved_epoch},
    };
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        fprintf(h, ",\"%s\":\"%lld\"", counts[i].key, (long long)counts[i].v);
    fprintf(h, ",\"cnnc.run.loss_sum\":\"%a\",\"cnnc.run.best\":\"%a\"", run->loss_sum,
            run->best);
    fprintf(h, ",\"cnnc.run.flags\":\"%016llx\",\"cnnc.run.weights\":\"%016llx\"",
            (unsigned long long)run->flags, (unsigned long long)run->weights);
    const struct { const char *key; const cnnrt_rng *r; } rngs[] = {
        {"cnnc.rng.shuffle", &run->shuffle}, {"cnnc.rng.dropout", &run->dropout},
        {"cnnc.rng.augment", &run->augment},
    };
    for (size_t i = 0; i < sizeof rngs / sizeof rngs[0]; i++)
        fprintf(h, ",\"%s\":\"%016llx%016llx%016llx%016llx\"", rngs[i].key,
                (unsigned long long)rngs[i].r->s[0], (unsigned long long)rngs[i].r->s[1],
                (unsigned long long)rngs[i].r->s[2], (unsigned long long)rngs[i].r->s[3]);
}

/* The header's JSON: __metadata__, then the entries, padded to 8 bytes. A
 * checkpoint (run NULL) lists the parameters and buffers; a training state
 * the optimizer's slots. */
static int build_header(const cnnrt_ctx *ctx, const rt_run *run, char **header, size_t *hlen)
{
    const cnnrt_model *m = ctx->model;
    int rs = m->real_size;
    const char *dtype = rs == 4 ? "F32" : "F64";
    FILE *h = open_memstream(header, hlen);
    if (!h) {
        rt_error("out of memory");
        return -1;
    }
    fprintf(h, "{\"__metadata__\":{\"format\":\"%s\",\"cnnc.model\":",
            run ? "cnnc-state" : "pt");
    rt_json_write_str(h, m->name);
    fprintf(h, ",\"cnnc.hash\":\"%016llx\",\"cnnc.precision\":\"%s\",\"cnnc.optimizer\":\"%s\","
               "\"cnnc.step\":\"%lld\"",
            (unsigned long long)m->source_hash, rs == 4 ? "f32" : "f64",
            rt_optimizer_name(ctx->optimizer), (long long)ctx->step);
    if (run) {
        write_run_metadata(h, run);
    } else {
        fputs(",\"cnnc.source\":", h);
        rt_json_write_str(h, m->source ? m->source : "");
    }
    fputc('}', h);
    uint64_t offset = 0;
    bool ok = true;
    if (!run) {
        for (int i = 0; i < m->nparams; i++)
            write_tensor_entry(h, m->params[i].name, dtype, m->params[i].rank,
                               m->params[i].shape, m->params[i].count, &offset, rs);
        for (int i = 0; i < m->nbuffers; i++) {
            const cnnrt_buffer *b = &m->buffers[i];
            write_tensor_entry(h, b->name, b->is_int64 ? "I64" : dtype, b->rank, b->shape,
                               b->count, &offset, b->is_int64 ? 8 : rs);
        }
    }
    for (int k = 0; run && ok && k < cnnrt_opt_slots(ctx->optimizer); k++)
        for (int i = 0; ok && i < m->nparams; i++) {
            char *name = state_name(&m->params[i], slot_names[ctx->optimizer][k]);
            if ((ok = name != NULL))
                write_tensor_entry(h, name, dtype, m->params[i].rank, m->params[i].shape,
                                   m->params[i].count, &offset, rs);
            free(name);
        }
    fputc('}', h);
    while (ftell(h) % 8 != 0)
        fputc(' ', h);
    if (fclose(h) != 0 || !ok) {
        free(*header);
        rt_error("out of memory");
        return -1;
    }
    return 0;
}

/* The file: the header's length, the header, the tensors in its order. */
static int save(const cnnrt_ctx *ctx, const char *path, const rt_run *run)
{
    const cnnrt_model *m = ctx->model;
    int rs = m->real_size;
    char *header;
    size_t hlen;
    if (build_header(ctx, run, &header, &hlen) != 0)
        return -1;
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
    if (!run) {
        for (int i = 0; i < m->nparams; i++)
            write_reals(f, rs, (const char *)ctx->params + m->params[i].offset * rs,
                        m->params[i].count);
        for (int i = 0; i < m->nbuffers; i++)
            write_buffer(f, ctx, &m->buffers[i]);
    }
    for (int k = 0; run && k < cnnrt_opt_slots(ctx->optimizer); k++)
        for (int i = 0; i < m->nparams; i++)
            write_reals(f, rs,
                        (const char *)ctx->opt_state +
                            (k * m->param_count + m->params[i].offset) * rs,
                        m->params[i].count);
    return rt_output_commit(&out);
}

int rt_ckpt_save(const cnnrt_ctx *ctx, const char *path)
{
    return save(ctx, path, NULL);
}

int rt_state_save(const cnnrt_ctx *ctx, const char *path, const rt_run *run)
{
    return save(ctx, path, run);
}

char *rt_state_path(const char *ckpt)
{
    size_t n = strlen(ckpt) + sizeof ".state";
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s.state", ckpt);
    else
        rt_error("out of memory");
    return s;
}

/* ---- reading --------------------------------------------------------------- */

typedef struct Entry {
    const char *name;
    const char *dtype;
    int esize;
    int rank;
    uint64_t shape[8];
    uint64_t begin, end;
    const cnnrt_param *param;   /* what it is for: a parameter ... */
    const cnnrt_buffer *buffer; /* ... or a buffer (running statistics) */
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
    for (int i = 0; i < m->nbuffers; i++)
        if (strcmp(e->name, m->buffers[i].name) == 0) {
            e->buffer = &m->buffers[i];
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
    int rank = e->param ? e->param->rank : e->buffer->rank;
    const int64_t *shape = e->param ? e->param->shape : e->buffer->shape;
    bool same = e->rank == rank;
    for (int i = 0; same && i < rank; i++)
        same = e->shape[i] == (uint64_t)shape[i];
    char a[160], b[160];
    if (!same) {
        uint64_t want[4];
        for (int i = 0; i < rank; i++)
            want[i] = (uint64_t)shape[i];
        rt_error("%s: tensor %s has shape %s; the model %s expects %s", path, e->name,
                 shape_str(e->shape, e->rank, a, sizeof a), m->name,
                 shape_str(want, rank, b, sizeof b));
        return -1;
    }
    if (e->buffer && e->buffer->is_int64) {
        if (strcmp(e->dtype, "I64") != 0) {
            rt_error("%s: tensor %s has dtype %s; expected I64 (a count)", path, e->name,
                     e->dtype);
            return -1;
        }
        return 0;
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
    int64_t count = e->param ? e->param->count : e->buffer->count;
    for (int64_t j = 0; j < count; j++) {
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

/* A metadata value for a message: quoted, bytes outside printable ASCII as
 * \xNN, cut at about 40 characters. */
static const char *quoted(const char *s, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "\"");
    for (; *s && used + 8 < size; s++) {
        if (used > 40) {
            used += (size_t)snprintf(buf + used, size - used, "...");
            break;
        }
        unsigned char c = (unsigned char)*s;
        if (c >= 32 && c < 127 && c != '"' && c != '\\')
            buf[used++] = (char)c;
        else
            used += (size_t)snprintf(buf + used, size - used, "\\x%02x", c);
    }
    snprintf(buf + used, size - used, "\"");
    return buf;
}

/* Digits only, no sign, no spaces; at most max. */
static bool parse_decimal(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9' || !rt_mul_ok(v, 10, &v) ||
            !rt_add_ok(v, (uint64_t)(*s - '0'), &v))
            return false;
    *out = v;
    return v <= max;
}

/* Exactly 16 hex digits, as the writer puts them. */
static bool parse_hash(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    size_t n = strlen(s);
    if (n != 16 || strspn(s, "0123456789abcdefABCDEF") != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        int c = s[i];
        int d = c <= '9' ? c - '0' : c <= 'F' ? c - 'A' + 10 : c - 'a' + 10;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return true;
}

/* A checkpoint being read: where its parts are, and what its header says. */
typedef struct Reader {
    const char *name;               /* the file, for messages */
    const unsigned char *data;      /* the tensors' bytes ... */
    uint64_t data_size;
    uint64_t data_start;            /* ... from this offset of the file */
    rt_json top;                    /* the header */
    const rt_json *meta;            /* its __metadata__, or NULL */
    Entry *entries;                 /* its tensors, sorted by offset */
    size_t n;
    /* from __metadata__ */
    bool has_hash, has_step;
    uint64_t hash;
    int64_t step;
} Reader;

/* The 8-byte length, the header's JSON, where the data starts. */
static int read_framing(Reader *r, const unsigned char *buf, size_t size)
{
    if (size < 8) {
        rt_error("%s: truncated: %zu bytes, shorter than the 8-byte header length",
                 r->name, size);
        return -1;
    }
    uint64_t hlen = rt_le64(buf);
    if (hlen > size - 8) {
        rt_error("%s: the header length %llu (bytes 0-7) runs past the end of the "
                 "file (%zu bytes); not a safetensors file, or truncated", r->name,
                 (unsigned long long)hlen, size);
        return -1;
    }
    if (hlen > MAX_HEADER) {
        rt_error("%s: the header length %llu (bytes 0-7) is above the limit of %u",
                 r->name, (unsigned long long)hlen, MAX_HEADER);
        return -1;
    }
    size_t err_off;
    if (rt_json_parse((const char *)buf + 8, hlen, &r->top, &err_off) != 0) {
        char why[1024];
        snprintf(why, sizeof why, "%s", rt_errmsg());
        rt_error("%s: bad JSON in the header at byte %zu: %s", r->name, 8 + err_off, why);
        return -1;
    }
    if (r->top.type != RT_JOBJ) {
        rt_error("%s: the header (byte 8) is not a JSON object", r->name);
        return -1;
    }
    r->data_start = 8 + hlen;
    r->data = buf + r->data_start;
    r->data_size = size - r->data_start;
    return 0;
}

/* Every member of the header: __metadata__, or a tensor checked on its own. */
static int read_entries(Reader *r)
{
    r->entries = rt_calloc(r->top.n, sizeof *r->entries);
    if (!r->entries)
        return -1;
    for (size_t i = 0; i < r->top.n; i++) {
        if (strcmp(r->top.keys[i], "__metadata__") == 0) {
            r->meta = &r->top.items[i];
            bool ok = r->meta->type == RT_JOBJ;
            for (size_t j = 0; ok && j < r->meta->n; j++)
                ok = r->meta->items[j].type == RT_JSTR;
            if (!ok) {
                rt_error("%s: __metadata__ (header byte %zu) must map strings to strings",
                         r->name, 8 + r->meta->off);
                return -1;
            }
            continue;
        }
        if (read_entry(r->name, r->data_size, r->top.keys[i], &r->top.items[i],
                       &r->entries[r->n]) != 0)
            return -1;
        r->n++;
    }
    return 0;
}

/* Bytes [from, to) of the data that no tensor holds; where says where. */
static int uncovered(const Reader *r, uint64_t from, uint64_t to, const char *where)
{
    rt_error("%s: data bytes [%llu, %llu) (file bytes [%llu, %llu)) lie %s and belong "
             "to no tensor; safetensors needs the tensors to cover the data exactly",
             r->name, (unsigned long long)from, (unsigned long long)to,
             (unsigned long long)(r->data_start + from),
             (unsigned long long)(r->data_start + to), where);
    return -1;
}

/* As safetensors: the tensors, in the order of their offsets, cover the data
 * exactly, each starting where the one before it ends; no two share bytes,
 * and no byte lies between or after them. */
static int check_layout(Reader *r)
{
    Entry *e = r->entries;
    char where[600];
    qsort(e, r->n, sizeof *e, cmp_begin);
    for (size_t i = 0; i < r->n; i++) {
        uint64_t covered = i ? e[i - 1].end : 0;
        if (e[i].begin < covered) {
            rt_error("%s: tensors %s (bytes %llu-%llu) and %s (bytes %llu-%llu) overlap",
                     r->name, e[i - 1].name, (unsigned long long)e[i - 1].begin,
                     (unsigned long long)e[i - 1].end, e[i].name,
                     (unsigned long long)e[i].begin, (unsigned long long)e[i].end);
            return -1;
        }
        if (e[i].begin > covered) {
            if (i)
                snprintf(where, sizeof where, "between the tensors %s and %s",
                         e[i - 1].name, e[i].name);
            else
                snprintf(where, sizeof where, "before the first tensor (%s)", e[i].name);
            return uncovered(r, covered, e[i].begin, where);
        }
    }
    uint64_t end = r->n ? e[r->n - 1].end : 0;
    if (end < r->data_size) {
        if (r->n)
            snprintf(where, sizeof where, "after the last tensor (%s)", e[r->n - 1].name);
        else
            snprintf(where, sizeof where, "after a header that lists no tensor");
        return uncovered(r, end, r->data_size, where);
    }
    return 0;
}

/* cnnc's numbers in __metadata__, each refused unless well-formed. */
static int read_metadata(Reader *r)
{
    char q[64];
    const rt_json *hash = metadata_string(r->meta, "cnnc.hash");
    if (hash && !(r->has_hash = parse_hash(hash->str, &r->hash))) {
        rt_error("%s: __metadata__ cnnc.hash is %s; expected 16 hex digits", r->name,
                 quoted(hash->str, q, sizeof q));
        return -1;
    }
    const rt_json *step = metadata_string(r->meta, "cnnc.step");
    uint64_t s;
    if (step && !parse_decimal(step->str, RT_MAX_STEP, &s)) {
        rt_error("%s: __metadata__ cnnc.step is %s; expected a step count: digits only, "
                 "at most %llu (2^53)", r->name, quoted(step->str, q, sizeof q),
                 (unsigned long long)RT_MAX_STEP);
        return -1;
    }
    r->has_step = step != NULL;
    r->step = step ? (int64_t)s : 0;
    return 0;
}

/* Every tensor must be the model's, of the right shape and dtype. */
static int check_tensors(const Reader *r, const cnnrt_model *m)
{
    for (size_t i = 0; i < r->n; i++) {
        if (identify(m, &r->entries[i]) != 0) {
            rt_error("%s: unexpected tensor %s: the model %s has no such parameter",
                     r->name, r->entries[i].name, m->name);
            return -1;
        }
        if (check_fit(r->name, m, &r->entries[i]) != 0)
            return -1;
    }
    return 0;
}

/* A buffer (BatchNorm's running statistics, as PyTorch's state_dict holds
 * them): required, as load_state_dict(strict=True) requires them; a count
 * (num_batches_tracked) must not be negative. */
static int load_buffer(const Reader *r, cnnrt_ctx *ctx, const cnnrt_buffer *b)
{
    const cnnrt_model *m = ctx->model;
    const Entry *e = NULL;
    for (size_t i = 0; i < r->n && !e; i++)
        if (r->entries[i].buffer == b)
            e = &r->entries[i];
    if (!e) {
        rt_error("%s: missing tensor %s (%s) of the model %s", r->name, b->name,
                 b->is_int64 ? "a count" : "running statistics", m->name);
        return -1;
    }
    char *at = (char *)ctx->buffers + b->offset;
    if (!b->is_int64)
        return load_values(r->name, e, r->data, m->real_size, at);
    for (int64_t j = 0; j < b->count; j++) {
        int64_t v = (int64_t)rt_le64(r->data + e->begin + 8 * j);
        if (v < 0) {
            rt_error("%s: tensor %s holds %lld at element %lld; expected a count, not "
                     "negative", r->name, e->name, (long long)v, (long long)j);
            return -1;
        }
        memcpy(at + 8 * j, &v, 8);
    }
    return 0;
}

static int load_params(const Reader *r, cnnrt_ctx *ctx)
{
    const cnnrt_model *m = ctx->model;
    for (int p = 0; p < m->nparams; p++) {
        const Entry *e = NULL;
        for (size_t i = 0; i < r->n && !e; i++)
            if (r->entries[i].param == &m->params[p] && r->entries[i].slot < 0)
                e = &r->entries[i];
        if (!e) {
            char s[160];
            rt_error("%s: missing tensor %s (shape %s) of the model %s", r->name,
                     m->params[p].name, param_shape_str(&m->params[p], s, sizeof s),
                     m->name);
            return -1;
        }
        if (load_values(r->name, e, r->data, m->real_size,
                        (char *)ctx->params + m->params[p].offset * m->real_size) != 0)
            return -1;
    }
    for (int k = 0; k < m->nbuffers; k++)
        if (load_buffer(r, ctx, &m->buffers[k]) != 0)
            return -1;
    if (r->has_hash && r->hash != m->source_hash)
        fprintf(stderr, "%s: warning: %s was saved by a different network (hash %016llx, "
                "this one %016llx); its tensors fit, so it is loaded\n", rt_prog, r->name,
                (unsigned long long)r->hash, (unsigned long long)m->source_hash);
    return 0;
}

/* The optimizer state of a training state: the slots of ctx's optimizer,
 * every one, and nothing else. */
static int load_state(const Reader *r, cnnrt_ctx *ctx)
{
    const cnnrt_model *m = ctx->model;
    const char *opt = rt_optimizer_name(ctx->optimizer);
    const rt_json *saved = metadata_string(r->meta, "cnnc.optimizer");
    if (!saved || strcmp(saved->str, opt) != 0) {
        char q[64];
        rt_error("%s: the state of %s, not of %s; --resume goes on with the optimizer "
                 "of the run that saved it", r->name,
                 saved ? quoted(saved->str, q, sizeof q) : "an unnamed optimizer", opt);
        return -1;
    }
    int slots = cnnrt_opt_slots(ctx->optimizer);
    for (size_t i = 0; i < r->n; i++)
        if (r->entries[i].slot < 0 || r->entries[i].slot >= slots ||
            strcmp(slot_names[r->entries[i].opt][r->entries[i].slot],
                   slot_names[ctx->optimizer][r->entries[i].slot]) != 0) {
            rt_error("%s: unexpected tensor %s: the state of %s holds only its %s", r->name,
                     r->entries[i].name, opt, slots ? "slots (__opt__.<param>.<slot>)"
                                                    : "step count, no tensor");
            return -1;
        }
    for (int k = 0; k < slots; k++)
        for (int p = 0; p < m->nparams; p++) {
            const Entry *e = NULL;
            for (size_t i = 0; i < r->n && !e; i++)
                if (r->entries[i].param == &m->params[p] && r->entries[i].slot == k)
                    e = &r->entries[i];
            if (!e) {
                rt_error("%s: missing tensor __opt__.%s.%s: the %s state is incomplete",
                         r->name, m->params[p].name, slot_names[ctx->optimizer][k], opt);
                return -1;
            }
            if (load_values(r->name, e, r->data, m->real_size,
                            (char *)ctx->opt_state +
                                (k * m->param_count + m->params[p].offset) * m->real_size) != 0)
                return -1;
        }
    ctx->step = r->step;
    return 0;
}

/* ---- a run's position, from a training state's __metadata__ ---------------- */

static const char *required(const Reader *r, const char *key)
{
    const rt_json *v = metadata_string(r->meta, key);
    if (!v)
        rt_error("%s: __metadata__ lacks %s; a training state holds the run's position",
                 r->name, key);
    return v ? v->str : NULL;
}

static int meta_count(const Reader *r, const char *key, int64_t *out)
{
    const char *s = required(r, key);
    uint64_t v;
    char q[64];
    if (!s)
        return -1;
    if (!parse_decimal(s, RT_MAX_STEP, &v)) {
        rt_error("%s: __metadata__ %s is %s; expected a count: digits only, at most 2^53",
                 r->name, key, quoted(s, q, sizeof q));
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

/* A real as write_run_metadata puts it (%a), or any strtod number; the whole
 * string, no NaN. */
static int meta_real(const Reader *r, const char *key, double *out)
{
    const char *s = required(r, key);
    char *end, q[64];
    if (!s)
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || isnan(v) || isspace((unsigned char)*s)) {
        rt_error("%s: __metadata__ %s is %s; expected a number", r->name, key,
                 quoted(s, q, sizeof q));
        return -1;
    }
    *out = v;
    return 0;
}

static int meta_hex(const Reader *r, const char *key, uint64_t *out, int words)
{
    const char *s = required(r, key);
    char q[64], word[17] = {0};
    if (!s)
        return -1;
    bool ok = strlen(s) == (size_t)(16 * words);
    for (int i = 0; ok && i < words; i++) {
        memcpy(word, s + 16 * i, 16);
        ok = parse_hash(word, &out[i]);
    }
    if (!ok)
        rt_error("%s: __metadata__ %s is %s; expected %d hex digits", r->name, key,
                 quoted(s, q, sizeof q), 16 * words);
    return ok ? 0 : -1;
}

/* A generator's state: 64 hex digits, not all zero (where xoshiro256**
 * stays, giving zeros for ever). */
static int meta_rng(const Reader *r, const char *key, cnnrt_rng *rng)
{
    if (meta_hex(r, key, rng->s, 4) != 0)
        return -1;
    if (rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3])
        return 0;
    rt_error("%s: __metadata__ %s is all zeros, which no generator's state is", r->name,
             key);
    return -1;
}

static int read_run(const Reader *r, rt_run *run)
{
    memset(run, 0, sizeof *run);
    if (meta_count(r, "cnnc.run.step", &run->step) || meta_count(r, "cnnc.run.per_epoch",
        &run->per_epoch) || meta_count(r, "cnnc.run.epoch", &run->epoch) ||
        meta_count(r, "cnnc.run.epoch_step", &run->epoch_step) ||
        meta_count(r, "cnnc.run.seen", &run->seen) ||
        meta_count(r, "cnnc.run.correct", &run->correct) ||
        meta_count(r, "cnnc.run.saved_epoch", &run->saved_epoch) ||
        meta_real(r, "cnnc.run.loss_sum", &run->loss_sum) ||
        meta_real(r, "cnnc.run.best", &run->best) ||
        meta_hex(r, "cnnc.run.flags", &run->flags, 1) ||
        meta_hex(r, "cnnc.run.weights", &run->weights, 1) ||
        meta_rng(r, "cnnc.rng.shuffle", &run->shuffle) ||
        meta_rng(r, "cnnc.rng.dropout", &run->dropout) ||
        meta_rng(r, "cnnc.rng.augment", &run->augment))
        return -1;
    /* what the loop relies on: a step inside an epoch, counts that agree */
    if (run->per_epoch < 1 || run->epoch < 1 || run->epoch_step >= run->per_epoch ||
        run->correct > run->seen || run->saved_epoch >= run->epoch ||
        (run->epoch_step == 0) != (run->seen == 0)) {
        rt_error("%s: the run's position does not add up (epoch %lld, step %lld of %lld "
                 "in it, %lld samples seen, %lld correct, last saved epoch %lld)", r->name,
                 (long long)run->epoch, (long long)run->epoch_step, (long long)run->per_epoch,
                 (long long)run->seen, (long long)run->correct, (long long)run->saved_epoch);
        return -1;
    }
    return 0;
}

static bool is_state(const Reader *r)
{
    const rt_json *f = metadata_string(r->meta, "format");
    return f && strcmp(f->str, "cnnc-state") == 0;
}

static int read_file(Reader *r, const cnnrt_model *m, const unsigned char *buf, size_t size)
{
    return read_framing(r, buf, size) == 0 && read_entries(r) == 0 && check_layout(r) == 0 &&
                   read_metadata(r) == 0 && check_tensors(r, m) == 0
               ? 0 : -1;
}

int rt_ckpt_load_buffer(cnnrt_ctx *ctx, const char *name, const unsigned char *buf,
                        size_t size)
{
    Reader r = {.name = name};
    int rc = read_file(&r, ctx->model, buf, size);
    if (rc == 0 && is_state(&r)) {
        rt_error("%s is the training state beside a checkpoint, not a checkpoint; give "
                 "the checkpoint (the same name without .state)", name);
        rc = -1;
    }
    if (rc == 0)
        rc = load_params(&r, ctx);
    free(r.entries);
    rt_json_free(&r.top);
    return rc;
}

int rt_ckpt_load(cnnrt_ctx *ctx, const char *path)
{
    rt_file f;
    if (rt_file_open(&f, path) != 0)
        return -1;
    int rc = rt_ckpt_load_buffer(ctx, path, f.data, f.size);
    rt_file_close(&f);
    return rc;
}

int rt_state_load_buffer(cnnrt_ctx *ctx, const char *name, const unsigned char *buf,
                         size_t size, rt_run *run)
{
    Reader r = {.name = name};
    int rc = read_file(&r, ctx->model, buf, size);
    if (rc == 0 && !is_state(&r)) {
        rt_error("%s: not a training state (its __metadata__ lacks \"format\": "
                 "\"cnnc-state\"); --save writes one beside its checkpoint", name);
        rc = -1;
    }
    if (rc == 0 && (!r.has_hash || r.hash != ctx->model->source_hash)) {
        rt_error("%s: the training state of another network (hash %016llx; %s is "
                 "%016llx)", name, (unsigned long long)r.hash, ctx->model->name,
                 (unsigned long long)ctx->model->source_hash);
        rc = -1;
    }
    if (rc == 0)
        rc = load_state(&r, ctx) == 0 && read_run(&r, run) == 0 ? 0 : -1;
    free(r.entries);
    rt_json_free(&r.top);
    return rc;
}

int rt_state_load(cnnrt_ctx *ctx, const char *path, rt_run *run)
{
    rt_file f;
    if (rt_file_open(&f, path) != 0)
        return -1;
    int rc = rt_state_load_buffer(ctx, path, f.data, f.size, run);
    rt_file_close(&f);
    return rc;
}
