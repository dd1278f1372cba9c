/* infer_run.c: runs an inference file (--emit=inference --prefix net) over a
 * float32 .npy of samples and prints, a line per sample, the class and the
 * outputs as the trainer's `predict --probabilities` does.
 *
 *   cc -DINFER_C='"model_infer.c"' infer_run.c -lm -o run && ./run x.npy
 *
 * Every other sample passes its own work area, the others NULL (the static
 * arena): both paths are run.
 *
 *   ./run x.npy --bench N   the median latency in microseconds of N calls
 *                           on the first sample, after N/10 (at least 10)
 *                           calls of warm-up (make bench-infer) */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include INFER_C

static unsigned char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0, got;
    unsigned char *b = malloc(cap);
    while (b && (got = fread(b + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap)
            b = realloc(b, cap *= 2);
    }
    fclose(f);
    *size = len;
    return b;
}

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of n timed calls on x, after a warm-up. */
static double bench(const float *x, int n)
{
    static float out[net_OUTPUT_SIZE];
    double *t = malloc((size_t)n * sizeof *t);
    for (int i = 0; i < (n / 10 > 10 ? n / 10 : 10); i++)
        net_predict(x, out, NULL);
    for (int i = 0; i < n; i++) {
        double t0 = now_us();
        net_predict(x, out, NULL);
        t[i] = now_us() - t0;
    }
    qsort(t, (size_t)n, sizeof *t, by_value);
    double median = t[n / 2];
    free(t);
    return median;
}

int main(int argc, char **argv)
{
    size_t size;
    int runs = argc == 4 && strcmp(argv[2], "--bench") == 0 ? atoi(argv[3]) : 0;
    unsigned char *npy = argc == 2 || runs > 0 ? read_all(argv[1], &size) : NULL;
    if (!npy || size < 10 || memcmp(npy, "\x93NUMPY", 6) != 0) {
        fprintf(stderr, "usage: %s X.npy (float32, a version 1 .npy)\n", argv[0]);
        return 2;
    }
    size_t header = 10 + (size_t)(npy[8] | npy[9] << 8);
    char *dict = malloc(header - 9);
    memcpy(dict, npy + 10, header - 10);
    dict[header - 10] = '\0';
    int is_f4 = strstr(dict, "'<f4'") != NULL;
    free(dict);
    if (!is_f4) {
        fprintf(stderr, "%s: expected float32 samples\n", argv[1]);
        return 2;
    }
    size_t per = (size_t)net_INPUT_SIZE * sizeof(float);
    size_t n = (size - header) / per;
    float *x = malloc(per), out[net_OUTPUT_SIZE];
    void *work = malloc(net_WORK_BYTES);
    if (runs > 0 && n > 0) {
        memcpy(x, npy + header, per);
        printf("%.1f\n", bench(x, runs));
        n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(x, npy + header + i * per, per);
        int best = net_predict(x, out, i % 2 ? work : NULL);
        printf("%d", best);
        for (int j = 0; j < net_OUTPUT_SIZE; j++)
            printf(" %.9g", out[j]);
        putchar('\n');
    }
    free(x);
    free(work);
    free(npy);
    return 0;
}
