/* gzip.c: gzip-compressed files, inflated whole into memory (zlib).
 *
 * A file is gzip when it starts with the magic bytes 1f 8b, whatever its
 * name. As gzip -d does, a file of several members (gzip a >x; gzip b >>x)
 * decompresses to their contents one after the other; unlike gzip -d,
 * which warns and ignores them, bytes after the last member that do not
 * start another one are refused, zeros too: a damaged download must not
 * pass for data. Each member's CRC-32 and length (ISIZE) are checked by
 * zlib against its trailer.
 *
 * The decompressed size is bounded (rt_gzip_limit, 8 GiB): a small file
 * can inflate a thousand times over, and a data file is held whole in
 * memory, so a "decompression bomb" is refused by name before it eats the
 * machine's memory, not by the kernel's OOM killer after.
 */
#include "rt.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

size_t rt_gzip_limit = (size_t)8 << 30;

/* zlib takes at most UINT_MAX bytes at a time, in and out. */
#define ZCHUNK ((size_t)1 << 30)

bool rt_is_gzip(const unsigned char *data, size_t size)
{
    return size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
}

/* "8 GiB", "64 MiB", or bytes. */
static void size_str(char *buf, size_t size, size_t n)
{
    if (n >= ((size_t)1 << 30) && n % ((size_t)1 << 30) == 0)
        snprintf(buf, size, "%zu GiB", n >> 30);
    else if (n >= ((size_t)1 << 20) && n % ((size_t)1 << 20) == 0)
        snprintf(buf, size, "%zu MiB", n >> 20);
    else
        snprintf(buf, size, "%zu bytes", n);
}

/* The inflation under way. */
typedef struct Gunzip {
    const char *path;
    z_stream z;
    const unsigned char *in;
    size_t in_size, in_pos;      /* in_pos: bytes consumed by zlib */
    unsigned char *out;
    size_t cap, len;
    int member;                  /* 1, 2, ... */
    size_t member_start;         /* its first byte in the file */
} Gunzip;

/* " (gzip member 2, from byte 1234)" for members after the first. */
static const char *member_str(const Gunzip *g, char *buf, size_t size)
{
    buf[0] = '\0';
    if (g->member > 1)
        snprintf(buf, size, " (gzip member %d, from byte %zu)", g->member, g->member_start);
    return buf;
}

/* Whether the output has passed the limit (the message recorded). */
static bool too_large(const Gunzip *g)
{
    if (g->len <= rt_gzip_limit)
        return false;
    char lim[64];
    size_str(lim, sizeof lim, rt_gzip_limit);
    rt_error("%s: decompresses to more than %s, the limit for a gzip-compressed "
             "file (a guard against decompression bombs); decompress it first "
             "(gzip -dk) if it is meant to be that large", g->path, lim);
    return true;
}

/* Room for more output: doubles the buffer, up to one byte past the
 * limit (that byte filled means the data is too large). */
static int grow(Gunzip *g)
{
    if (too_large(g))
        return -1;
    size_t cap = g->cap <= SIZE_MAX / 2 ? g->cap * 2 : SIZE_MAX;
    if (cap > rt_gzip_limit + 1)
        cap = rt_gzip_limit + 1;
    unsigned char *more = realloc(g->out, cap);
    if (!more) {
        rt_error("%s: out of memory decompressing it (%zu bytes so far)", g->path, g->len);
        return -1;
    }
    g->out = more;
    g->cap = cap;
    return 0;
}

/* A first guess at the size: the last member's ISIZE (the size modulo
 * 2^32, exact for the usual one member under 4 GiB), no more than deflate
 * can make of the file (1032:1), no more than the limit allows. */
static size_t first_capacity(const unsigned char *in, size_t n)
{
    size_t guess = n >= 4 ? rt_le32(in + n - 4) : 0, most = n;
    if (n <= SIZE_MAX / 1032)
        most = n * 1032;
    if (guess > most)
        guess = most;
    if (guess < 4096)
        guess = 4096;
    return guess > rt_gzip_limit + 1 ? rt_gzip_limit + 1 : guess;
}

static int data_error(Gunzip *g)
{
    char where[96];
    member_str(g, where, sizeof where);
    const char *msg = g->z.msg ? g->z.msg : "invalid data";
    if (strcmp(msg, "incorrect data check") == 0)
        rt_error("%s: damaged gzip file: the CRC-32 of the decompressed data does not "
                 "match the one in the gzip trailer%s", g->path, where);
    else if (strcmp(msg, "incorrect length check") == 0)
        rt_error("%s: damaged gzip file: the decompressed size does not match the size "
                 "in the gzip trailer (ISIZE)%s", g->path, where);
    else
        rt_error("%s: damaged gzip file: %s (zlib) near compressed byte %zu%s", g->path,
                 msg, g->in_pos, where);
    return -1;
}

/* After a member's end: the next member, the end of the file, or bytes
 * that are neither. Returns 1 to go on, 0 at the end, -1 on error. */
static int next_member(Gunzip *g)
{
    size_t rest = g->in_size - g->in_pos;
    if (rest == 0)
        return 0;
    if (!rt_is_gzip(g->in + g->in_pos, rest)) {
        rt_error("%s: %zu bytes after the end of the gzip data (from byte %zu) that are "
                 "not another gzip member; expected the end of the file", g->path, rest,
                 g->in_pos);
        return -1;
    }
    g->member++;
    g->member_start = g->in_pos;
    return inflateReset(&g->z) == Z_OK ? 1 : -1;
}

/* Runs zlib until the end of the input. */
static int inflate_all(Gunzip *g)
{
    for (;;) {
        if (g->len == g->cap && grow(g) != 0)
            return -1;
        size_t in_avail = g->in_size - g->in_pos, out_avail = g->cap - g->len;
        g->z.next_in = (unsigned char *)(uintptr_t)(g->in + g->in_pos);
        g->z.avail_in = (uInt)(in_avail < ZCHUNK ? in_avail : ZCHUNK);
        g->z.next_out = g->out + g->len;
        g->z.avail_out = (uInt)(out_avail < ZCHUNK ? out_avail : ZCHUNK);
        uInt in_before = g->z.avail_in, out_before = g->z.avail_out;
        int rc = inflate(&g->z, Z_NO_FLUSH);
        g->in_pos += in_before - g->z.avail_in;
        g->len += out_before - g->z.avail_out;
        if (rc == Z_STREAM_END) {
            int more = next_member(g);
            if (more <= 0)
                return more;
        } else if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT) {
            return data_error(g);
        } else if (rc == Z_MEM_ERROR) {
            rt_error("%s: out of memory decompressing it", g->path);
            return -1;
        } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
            return data_error(g);
        } else if (g->in_pos == g->in_size && g->len < g->cap) {
            /* zlib wants input that the file does not have */
            char where[96];
            rt_error("%s: truncated gzip file: the compressed data ends before the "
                     "gzip stream does (after %zu decompressed bytes)%s", g->path,
                     g->len, member_str(g, where, sizeof where));
            return -1;
        }
    }
}

int rt_gunzip(const char *path, const unsigned char *in, size_t size,
              unsigned char **out, size_t *out_size)
{
    Gunzip g = {.path = path, .in = in, .in_size = size, .member = 1};
    *out = NULL;
    *out_size = 0;
    g.cap = first_capacity(in, size);
    g.out = malloc(g.cap);
    if (!g.out) {
        rt_error("%s: out of memory decompressing it (%zu bytes)", path, g.cap);
        return -1;
    }
    /* 16 + 15: a gzip wrapper only, windows up to 32 KiB */
    if (inflateInit2(&g.z, 16 + MAX_WBITS) != Z_OK) {
        rt_error("%s: cannot start zlib: %s", path, g.z.msg ? g.z.msg : "out of memory");
        free(g.out);
        return -1;
    }
    int rc = inflate_all(&g);
    if (rc == 0 && too_large(&g))
        rc = -1;
    inflateEnd(&g.z);
    if (rc != 0) {
        free(g.out);
        return -1;
    }
    *out = g.out;
    *out_size = g.len;
    return 0;
}
