/* array.c: .npy, IDX and CIFAR-10 files seen as arrays of samples.
 *
 * Nothing is copied: an rt_array points into the file's bytes. Every size is
 * checked against the file before anything is read, with overflow-checked
 * arithmetic, so a hostile header can only earn a message.
 */
#include "rt.h"

#include <stdlib.h>
#include <string.h>

const char *const rt_dtype_names[] = {"uint8", "int32", "int64", "float32", "float64"};

int rt_dtype_size(rt_dtype t)
{
    static const int size[] = {1, 4, 8, 4, 8};
    return size[t];
}

char *rt_dims_str(const rt_array *a, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < a->rank && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? " x " : "",
                                 (long long)a->dims[i]);
    return buf;
}

/* Fills n, row and stride from dims and checks that the data fits the
 * avail bytes exactly. */
static int settle(rt_array *a, size_t avail)
{
    uint64_t row = 1, total;
    for (int i = 1; i < a->rank; i++)
        if (!rt_mul_ok(row, (uint64_t)a->dims[i], &row) || row > INT64_MAX) {
            rt_error("%s: %s header: the sample size overflows", a->path, a->format);
            return -1;
        }
    a->n = a->dims[0];
    a->row = (int64_t)row;
    if (!rt_mul_ok(row, (uint64_t)rt_dtype_size(a->dtype), &row) ||
        !rt_mul_ok(row, (uint64_t)a->n, &total) || row > SIZE_MAX) {
        rt_error("%s: %s header: the data size overflows", a->path, a->format);
        return -1;
    }
    a->stride = (size_t)row;
    char dims[256];
    if (total > avail) {
        rt_error("%s: truncated: a %s array of shape %s needs %llu bytes of data, "
                 "the file holds %zu", a->path, rt_dtype_names[a->dtype],
                 rt_dims_str(a, dims, sizeof dims), (unsigned long long)total, avail);
        return -1;
    }
    if (total < avail) {
        rt_error("%s: %zu bytes of unexpected data after the %s array of shape %s",
                 a->path, avail - (size_t)total, rt_dtype_names[a->dtype],
                 rt_dims_str(a, dims, sizeof dims));
        return -1;
    }
    if (a->n == 0) {
        rt_error("%s: holds no samples (shape %s)", a->path,
                 rt_dims_str(a, dims, sizeof dims));
        return -1;
    }
    return 0;
}

/* ---- .npy -------------------------------------------------------------- */

/* The header is a Python dict literal:
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (60000, 28, 28), }
 * This reads that subset and nothing more. */
typedef struct NpyScan {
    const char *path;
    const unsigned char *p, *end;
} NpyScan;

static void npy_ws(NpyScan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int npy_fail(NpyScan *s, const char *expected)
{
    if (s->p >= s->end)
        rt_error("%s: malformed .npy header: expected %s, found the end of the header",
                 s->path, expected);
    else
        rt_error("%s: malformed .npy header: expected %s, found '%c'", s->path,
                 expected, *s->p >= 32 && *s->p < 127 ? *s->p : '?');
    return -1;
}

static int npy_char(NpyScan *s, char c, const char *expected)
{
    npy_ws(s);
    if (s->p >= s->end || *s->p != c)
        return npy_fail(s, expected);
    s->p++;
    return 0;
}

/* A quoted string without escapes into buf. */
static int npy_string(NpyScan *s, char *buf, size_t size)
{
    npy_ws(s);
    if (s->p >= s->end || (*s->p != '\'' && *s->p != '"'))
        return npy_fail(s, "a quoted string");
    unsigned char q = *s->p++;
    size_t n = 0;
    while (s->p < s->end && *s->p != q) {
        if (*s->p == '\\' || *s->p < 32 || n + 1 >= size)
            return npy_fail(s, "a short string");
        buf[n++] = (char)*s->p++;
    }
    if (s->p >= s->end)
        return npy_fail(s, "the closing quote");
    s->p++;
    buf[n] = '\0';
    return 0;
}

static int npy_shape(NpyScan *s, rt_array *a)
{
    if (npy_char(s, '(', "'(' starting the shape tuple") != 0)
        return -1;
    a->rank = 0;
    for (;;) {
        npy_ws(s);
        if (s->p < s->end && *s->p == ')') {
            s->p++;
            return 0;
        }
        if (s->p >= s->end || *s->p < '0' || *s->p > '9')
            return npy_fail(s, "a non-negative integer in the shape tuple");
        uint64_t v = 0;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
            if (!rt_mul_ok(v, 10, &v) || !rt_add_ok(v, (uint64_t)(*s->p - '0'), &v) ||
                v > INT64_MAX) {
                rt_error("%s: .npy header: a dimension of the shape overflows", s->path);
                return -1;
            }
            s->p++;
        }
        if (s->p < s->end && *s->p == 'L')   /* Python 2 long */
            s->p++;
        if (a->rank == RT_MAX_RANK) {
            rt_error("%s: .npy header: more than %d dimensions", s->path, RT_MAX_RANK);
            return -1;
        }
        a->dims[a->rank++] = (int64_t)v;
        npy_ws(s);
        if (s->p < s->end && *s->p == ',')
            s->p++;
        else if (s->p >= s->end || *s->p != ')')
            return npy_fail(s, "',' or ')' in the shape tuple");
    }
}

static int npy_descr(const char *path, const char *d, rt_dtype *t)
{
    static const struct { const char *descr; rt_dtype t; } known[] = {
        {"|u1", RT_U8}, {"<u1", RT_U8}, {"u1", RT_U8}, {"|b1", RT_U8},
        {"<i4", RT_I32}, {"<i8", RT_I64}, {"<f4", RT_F32}, {"<f8", RT_F64},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(d, known[i].descr) == 0) {
            *t = known[i].t;
            return 0;
        }
    if (d[0] == '>')
        rt_error("%s: big-endian data ('%s'); expected little-endian uint8, int32, "
                 "int64, float32 or float64", path, d);
    else
        rt_error("%s: element type '%s' is not supported; expected uint8 ('|u1'), "
                 "int32 ('<i4'), int64 ('<i8'), float32 ('<f4') or float64 ('<f8')",
                 path, d);
    return -1;
}

static int npy_parse(const rt_file *f, rt_array *a)
{
    const unsigned char *p = f->data;
    if (f->size < 10) {
        rt_error("%s: truncated .npy file: %zu bytes, shorter than the 10-byte preamble",
                 f->path, f->size);
        return -1;
    }
    int major = p[6], minor = p[7];
    size_t hstart, hlen;
    if (major == 1) {
        hstart = 10;
        hlen = rt_le16(p + 8);
    } else if (major == 2 || major == 3) {
        if (f->size < 12) {
            rt_error("%s: truncated .npy file: %zu bytes, shorter than the 12-byte "
                     "preamble of version %d.%d", f->path, f->size, major, minor);
            return -1;
        }
        hstart = 12;
        hlen = rt_le32(p + 8);
    } else {
        rt_error("%s: .npy version %d.%d is not supported; expected 1.0 or 2.0",
                 f->path, major, minor);
        return -1;
    }
    if (hlen > f->size - hstart) {
        rt_error("%s: .npy header length %zu at byte 8 runs past the end of the "
                 "file (%zu bytes)", f->path, hlen, f->size);
        return -1;
    }
    NpyScan s = {f->path, p + hstart, p + hstart + hlen};
    bool seen_descr = false, seen_order = false, seen_shape = false, fortran = false;
    char key[64], descr[64];
    if (npy_char(&s, '{', "'{' starting the header dict") != 0)
        return -1;
    for (;;) {
        npy_ws(&s);
        if (s.p < s.end && *s.p == '}') {
            s.p++;
            break;
        }
        if (npy_string(&s, key, sizeof key) != 0 || npy_char(&s, ':', "':'") != 0)
            return -1;
        bool *seen;
        if (strcmp(key, "descr") == 0) {
            seen = &seen_descr;
            if (npy_string(&s, descr, sizeof descr) != 0)
                return -1;
        } else if (strcmp(key, "fortran_order") == 0) {
            seen = &seen_order;
            npy_ws(&s);
            if ((size_t)(s.end - s.p) >= 4 && memcmp(s.p, "True", 4) == 0) {
                fortran = true;
                s.p += 4;
            } else if ((size_t)(s.end - s.p) >= 5 && memcmp(s.p, "False", 5) == 0) {
                s.p += 5;
            } else {
                return npy_fail(&s, "True or False for 'fortran_order'");
            }
        } else if (strcmp(key, "shape") == 0) {
            seen = &seen_shape;
            if (npy_shape(&s, a) != 0)
                return -1;
        } else {
            rt_error("%s: .npy header: unexpected key '%s'; expected 'descr', "
                     "'fortran_order' and 'shape'", f->path, key);
            return -1;
        }
        if (*seen) {
            rt_error("%s: .npy header: key '%s' appears twice", f->path, key);
            return -1;
        }
        *seen = true;
        npy_ws(&s);
        if (s.p < s.end && *s.p == ',')
            s.p++;
        else if (s.p >= s.end || *s.p != '}')
            return npy_fail(&s, "',' or '}' in the header dict");
    }
    npy_ws(&s);
    if (s.p != s.end)
        return npy_fail(&s, "only white space after the header dict");
    if (!seen_descr || !seen_order || !seen_shape) {
        rt_error("%s: .npy header lacks the key '%s'", f->path,
                 !seen_descr ? "descr" : !seen_order ? "fortran_order" : "shape");
        return -1;
    }
    if (npy_descr(f->path, descr, &a->dtype) != 0)
        return -1;
    if (a->rank == 0) {
        rt_error("%s: holds a single scalar (shape ()); expected an array of samples",
                 f->path);
        return -1;
    }
    if (fortran && a->rank > 1) {
        rt_error("%s: the array is in Fortran order; expected C order "
                 "(save it with numpy.ascontiguousarray)", f->path);
        return -1;
    }
    a->base = p + hstart + hlen;
    return settle(a, f->size - hstart - hlen);
}

/* ---- IDX ----------------------------------------------------------------- */

static int idx_parse(const rt_file *f, rt_array *a)
{
    const unsigned char *p = f->data;
    int type = p[2], rank = p[3];
    if (type != 0x08) {
        static const char *const names[] = {
            [0x09] = "signed byte", [0x0B] = "int16", [0x0C] = "int32",
            [0x0D] = "float32", [0x0E] = "float64"};
        rt_error("%s: IDX element type 0x%02X (%s) is not supported; expected 0x08 "
                 "(unsigned byte)", f->path, type, type <= 0x0E && names[type] ? names[type] : "unknown");
        return -1;
    }
    if (rank < 1 || rank > 4) {
        rt_error("%s: IDX file of %d dimensions; expected 1 to 4", f->path, rank);
        return -1;
    }
    size_t hlen = 4 + 4 * (size_t)rank;
    if (f->size < hlen) {
        rt_error("%s: truncated IDX header: %zu bytes, the %d dimensions need %zu",
                 f->path, f->size, rank, hlen);
        return -1;
    }
    a->dtype = RT_U8;
    a->rank = rank;
    for (int i = 0; i < rank; i++)
        a->dims[i] = rt_be32(p + 4 + 4 * i);
    a->base = p + hlen;
    return settle(a, f->size - hlen);
}

static bool is_npy(const rt_file *f)
{
    return f->size >= 6 && memcmp(f->data, "\x93NUMPY", 6) == 0;
}

/* The four bytes of an IDX magic: 00 00 TYPE RANK. */
static bool idx_magic(const rt_file *f)
{
    const unsigned char *p = f->data;
    return f->size >= 4 && p[0] == 0 && p[1] == 0 && p[2] >= 0x08 && p[2] <= 0x0E &&
           p[3] >= 1 && p[3] <= 8;
}

/* The magic, and dimensions whose elements fill the rest of the file
 * exactly. Four bytes alone prove little: a CIFAR-10 batch whose first
 * record has label 0 and pixels 0, 8, 1 starts with 00 00 08 01. */
static bool idx_fits(const rt_file *f)
{
    static const int size[] = {[0x08] = 1, [0x09] = 1, [0x0B] = 2, [0x0C] = 4,
                               [0x0D] = 4, [0x0E] = 8};
    if (!idx_magic(f) || !size[f->data[2]])
        return false;
    int rank = f->data[3];
    size_t hlen = 4 + 4 * (size_t)rank;
    uint64_t total = (uint64_t)size[f->data[2]];
    if (f->size < hlen)
        return false;
    for (int i = 0; i < rank; i++)
        if (!rt_mul_ok(total, rt_be32(f->data + 4 + 4 * i), &total))
            return false;
    return total == f->size - hlen;
}

int rt_array_parse(const rt_file *f, rt_array *a)
{
    memset(a, 0, sizeof *a);
    a->path = f->path;
    if (is_npy(f)) {
        a->format = "npy";
        return npy_parse(f, a);
    }
    if (idx_magic(f)) {
        a->format = "IDX";
        return idx_parse(f, a);
    }
    const unsigned char *p = f->data;
    char start[64] = "";
    size_t used = 0;
    for (size_t i = 0; i < f->size && i < 4; i++)
        used += (size_t)snprintf(start + used, sizeof start - used, "%s%02x", i ? " " : "", p[i]);
    rt_error("%s: not a .npy, IDX or CIFAR-10 file: expected the magic \"\\x93NUMPY\", "
             "00 00 08 <rank>, or for --data a CIFAR-10 batch of 3073-byte records; "
             "found %zu bytes, starting with %s", f->path, f->size, start);
    return -1;
}

/* ---- CIFAR-10 -------------------------------------------------------------- */

/* A file of whole records that is not a .npy file, nor an IDX file whose
 * header fits its size (rt_data_load says so when a file is both). */
bool rt_is_cifar(const rt_file *f)
{
    return !is_npy(f) && !idx_fits(f) && f->size % RT_CIFAR_RECORD == 0;
}

int rt_cifar_parse(const rt_file *f, rt_array *images, rt_array *labels)
{
    memset(images, 0, sizeof *images);
    memset(labels, 0, sizeof *labels);
    if (f->size % RT_CIFAR_RECORD != 0) {
        rt_error("%s: a CIFAR-10 batch holds records of %d bytes (1 label + 3072 "
                 "pixels); the file's %zu bytes are not a multiple of that",
                 f->path, RT_CIFAR_RECORD, f->size);
        return -1;
    }
    int64_t n = (int64_t)(f->size / RT_CIFAR_RECORD);
    *images = (rt_array){.path = f->path, .format = "CIFAR-10", .dtype = RT_U8,
                         .rank = 4, .dims = {n, 32, 32, 3}, .n = n, .row = 3072,
                         .base = f->data + 1, .stride = RT_CIFAR_RECORD, .chw = true};
    *labels = (rt_array){.path = f->path, .format = "CIFAR-10", .dtype = RT_U8,
                         .rank = 1, .dims = {n}, .n = n, .row = 1,
                         .base = f->data, .stride = RT_CIFAR_RECORD};
    return 0;
}

/* ---- writing .npy ---------------------------------------------------------- */

int rt_npy_write(const char *path, rt_dtype t, int rank, const int64_t *dims,
                 const void *data)
{
    static const char *const descr[] = {"|u1", "<i4", "<i8", "<f4", "<f8"};
    char header[512];
    int len = snprintf(header, sizeof header,
                       "{'descr': '%s', 'fortran_order': False, 'shape': (", descr[t]);
    uint64_t count = 1;
    for (int i = 0; i < rank; i++) {
        len += snprintf(header + len, sizeof header - (size_t)len, "%lld%s",
                        (long long)dims[i], rank == 1 || i + 1 < rank ? ", " : "");
        count *= (uint64_t)dims[i];
    }
    if (rank == 1)
        len -= 1;   /* "(5,)" */
    len += snprintf(header + len, sizeof header - (size_t)len, "), }");
    /* Pad with spaces so that the data starts at a multiple of 64 bytes. */
    while ((10 + len + 1) % 64 != 0)
        header[len++] = ' ';
    header[len++] = '\n';

    rt_output out;
    FILE *f = rt_output_open(&out, path);
    if (!f)
        return -1;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                             (unsigned char)(len & 0xff), (unsigned char)(len >> 8)};
    fwrite(pre, 1, sizeof pre, f);
    fwrite(header, 1, (size_t)len, f);
    int size = rt_dtype_size(t);
    const unsigned char *src = data;
    unsigned char buf[8];
    for (uint64_t i = 0; i < count; i++) {
        /* Elements are in host order; write them little-endian. */
        uint64_t v = 0;
        switch (t) {
        case RT_U8: v = src[i]; break;
        case RT_I32: case RT_F32: { uint32_t u; memcpy(&u, src + 4 * i, 4); v = u; break; }
        case RT_I64: case RT_F64: memcpy(&v, src + 8 * i, 8); break;
        }
        rt_put_le64(buf, v);
        fwrite(buf, 1, (size_t)size, f);
    }
    return rt_output_commit(&out);
}
