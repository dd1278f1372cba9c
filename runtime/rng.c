/* rng.c: seeding, bounded integers and normal variates (the generator itself,
 * xoshiro256**, is inline in cnnrt.h). */
#include "rt.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

void cnnrt_rng_seed(cnnrt_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0x9E3779B97F4A7C15u);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

/* Lemire, "Fast random integer generation in an interval" (2019). */
uint64_t cnnrt_rng_below(cnnrt_rng *r, uint64_t n)
{
    unsigned __int128 m = (unsigned __int128)cnnrt_rng_next(r) * n;
    uint64_t low = (uint64_t)m;
    if (low < n) {
        uint64_t threshold = -n % n;
        while (low < threshold) {
            m = (unsigned __int128)cnnrt_rng_next(r) * n;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double cnnrt_rng_normal(cnnrt_rng *r)
{
    double u, v, s;
    do {
        u = 2.0 * cnnrt_rng_uniform(r) - 1.0;
        v = 2.0 * cnnrt_rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    return u * sqrt(-2.0 * log(s) / s);
}
