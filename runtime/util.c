/* util.c: errors, memory, checked arithmetic, byte order, the clock. */
#include "rt.h"

#include <sys/mman.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *rt_prog = "cnnrt";

/* One message per thread: images are decoded on the pool's threads, each
 * reporting its own failure (folder.c). */
static _Thread_local char errbuf[2048];

void rt_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
}

const char *rt_errmsg(void)
{
    return errbuf;
}

const char *cnnrt_last_error(void)
{
    return errbuf;
}

void rt_print_error(void)
{
    fprintf(stderr, "%s: error: %s\n", rt_prog, errbuf);
}

void *rt_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        rt_error("out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *rt_aligned_alloc(size_t bytes)
{
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded < bytes) {
        rt_error("out of memory: %zu bytes", bytes);
        return NULL;
    }
    /* Blocks of a few MiB and more (parameters, gradients, the workspace)
     * on 2 MiB pages where the kernel has them: the kernels sweep them
     * with strides that would miss the TLB on 4 KiB pages. */
    size_t huge = (size_t)2 << 20;
    bool big = rounded >= 2 * huge;
    if (big)
        rounded = rounded / huge * huge + (rounded % huge ? huge : 0);
    if (rounded < bytes) {
        rt_error("out of memory: %zu bytes", bytes);
        return NULL;
    }
    void *p = aligned_alloc(big ? huge : 64, rounded ? rounded : 64);
    if (!p) {
        rt_error("out of memory allocating %zu bytes", bytes);
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    if (big)
        (void)madvise(p, rounded, MADV_HUGEPAGE); /* advice only: may fail */
#endif
    memset(p, 0, rounded ? rounded : 64);
    return p;
}

bool rt_mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a != 0 && b > UINT64_MAX / a)
        return false;
    *out = a * b;
    return true;
}

bool rt_add_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    if (b > UINT64_MAX - a)
        return false;
    *out = a + b;
    return true;
}

/* The optimal string alignment distance, as the compiler's edit_distance
 * (the runtime does not link the compiler): insertions, deletions,
 * substitutions and swaps of adjacent characters, one edit each. */
int rt_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return (int)(la > lb ? la : lb);
    int rows[3][65];
    int *before = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            int best = sub < del ? sub : del;
            best = best < ins ? best : ins;
            bool swapped = i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1];
            if (swapped && before[j - 2] + 1 < best)
                best = before[j - 2] + 1;
            cur[j] = best;
        }
        int *oldest = before;
        before = prev;
        prev = cur;
        cur = oldest;
    }
    return prev[lb];
}

uint16_t rt_le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

uint32_t rt_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

uint64_t rt_le64(const unsigned char *p)
{
    return (uint64_t)rt_le32(p) | (uint64_t)rt_le32(p + 4) << 32;
}

uint32_t rt_be32(const unsigned char *p)
{
    return (uint32_t)p[3] | (uint32_t)p[2] << 8 | (uint32_t)p[1] << 16 |
           (uint32_t)p[0] << 24;
}

float rt_lef32(const unsigned char *p)
{
    uint32_t u = rt_le32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

double rt_lef64(const unsigned char *p)
{
    uint64_t u = rt_le64(p);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

void rt_put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

double rt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
