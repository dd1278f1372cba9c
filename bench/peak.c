/* peak.c: this machine's fp32 FMA peak, measured rather than looked up.
 *
 * Each thread runs ACC independent chains acc = acc * a + b on GCC vector
 * types; ACC is well above the FMA latency (4 cycles) times the FMA ports
 * (2), so the chains keep every port busy. Built with -O3 -march=native
 * -ffp-contract=fast the multiply-add is one FMA instruction (bench/README.md
 * shows how to check with objdump). Every FMA counts 2 flops per lane.
 *
 * Widths: 256-bit vectors (AVX2/FMA) and, where the compiler targets
 * AVX-512, 512-bit ones; the peak is the faster of the two. Each figure is
 * the best of several timed runs of about --seconds each: a peak, not a
 * typical speed.
 *
 * The factors a and b come from the command line and the sums are printed,
 * so the compiler can neither fold the loop nor drop it.
 *
 *   peak [--threads N] [--seconds S]    prints, for 1 thread and for N:
 *   peak threads=1 bits=256 gflops=123.4
 *   ...
 *   peak threads=1 gflops=... (the best width), then a summary line.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The chains must fit the vector registers with a and b beside them: 32 with
 * AVX-512, 16 without (AVX2), where 16 chains spill to memory and measure
 * half the peak (seen on an AVX2 Zen 3: 58 GFLOP/s a core against 116). 10
 * still covers 4 cycles of latency times 2 ports. */
#if defined(__AVX512F__)
enum { ACC = 16, REPS = 5 };
#else
enum { ACC = 10, REPS = 5 };
#endif

typedef float v8f __attribute__((vector_size(32)));
#if defined(__AVX512F__)
typedef float v16f __attribute__((vector_size(64)));
#endif

/* KERNEL(name, type, lanes): float name(long iters, float a, float b) runs
 * iters x ACC vector FMAs and returns the sum of every lane, so the result
 * is live. The accumulators stay in registers (ACC + 2 <= the registers). */
#define KERNEL(name, type, lanes)                                                 \
    static float name(long iters, float a, float b)                               \
    {                                                                             \
        type acc[ACC], va = (type){0} + a, vb = (type){0} + b;                    \
        for (int i = 0; i < ACC; i++)                                             \
            for (int l = 0; l < (lanes); l++)                                     \
                acc[i][l] = 0.001f * (float)(i * (lanes) + l);                    \
        for (long n = 0; n < iters; n++) {                                        \
            _Pragma("GCC unroll 16") for (int i = 0; i < ACC; i++) acc[i] =       \
                acc[i] * va + vb;                                                 \
        }                                                                         \
        float s = 0;                                                              \
        for (int i = 0; i < ACC; i++)                                             \
            for (int l = 0; l < (lanes); l++)                                     \
                s += acc[i][l];                                                   \
        return s;                                                                 \
    }

KERNEL(fma256, v8f, 8)
#if defined(__AVX512F__)
KERNEL(fma512, v16f, 16)
#endif

typedef float (*kernel_fn)(long, float, float);

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static volatile float sink;

/* Seconds for iters iterations on each of `threads` threads, wall clock from
 * a barrier before the loops to a barrier after them. */
static double timed(kernel_fn k, int threads, long iters, float a, float b)
{
    double t0 = 0, t1 = 0;
    float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
#pragma omp barrier
#pragma omp master
        t0 = now();
        total += k(iters, a, b);
#pragma omp barrier
#pragma omp master
        t1 = now();
    }
    sink = total;
    return t1 - t0;
}

/* GFLOP/s of k on `threads` threads: iterations scaled so one run takes
 * about `seconds`, best of REPS runs. */
static double measure(kernel_fn k, int lanes, int threads, double seconds, float a, float b)
{
    long iters = 1 << 16;
    double t;
    while ((t = timed(k, threads, iters, a, b)) < 0.05)
        iters *= 2;
    iters = (long)((double)iters * seconds / t) + 1;
    double best = 0;
    for (int r = 0; r < REPS; r++) {
        t = timed(k, threads, iters, a, b);
        double gf = 2.0 * lanes * ACC * (double)iters * threads / t / 1e9;
        if (gf > best)
            best = gf;
    }
    return best;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: peak [--threads N] [--seconds S]\n"
               "  fp32 FMA GFLOP/s on 1 thread and on N (default: omp_get_max_threads())\n");
}

int main(int argc, char **argv)
{
    int threads = omp_get_max_threads();
    double seconds = 0.2;
    float a = 0.999999f, b = 1e-6f;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (threads < 1 || seconds <= 0) {
        usage(stderr);
        return 2;
    }
    struct {
        const char *isa;
        kernel_fn k;
        int lanes, bits;
    } widths[] = {
#if defined(__FMA__)
        {"AVX2+FMA", fma256, 8, 256},
#else
        {"AVX (mul+add, no FMA)", fma256, 8, 256},
#endif
#if defined(__AVX512F__)
        {"AVX-512", fma512, 16, 512},
#endif
    };
    int nw = (int)(sizeof widths / sizeof widths[0]);
    int counts[2] = {1, threads};
    double best[2] = {0, 0};
    const char *best_isa[2] = {"", ""};
    for (int c = 0; c < (threads > 1 ? 2 : 1); c++)
        for (int w = 0; w < nw; w++) {
            double gf = measure(widths[w].k, widths[w].lanes, counts[c], seconds, a, b);
            printf("peak threads=%d bits=%d gflops=%.1f\n", counts[c], widths[w].bits, gf);
            if (gf > best[c]) {
                best[c] = gf;
                best_isa[c] = widths[w].isa;
            }
        }
    for (int c = 0; c < (threads > 1 ? 2 : 1); c++)
        printf("peak threads=%d gflops=%.1f isa=%s\n", counts[c], best[c], best_isa[c]);
    printf("fp32 FMA peak: %.1f GFLOP/s on 1 thread (%s)", best[0], best_isa[0]);
    if (threads > 1)
        printf(", %.1f GFLOP/s on %d threads", best[1], threads);
    printf("\n");
    return 0;
}
