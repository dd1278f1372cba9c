/* test_runtime.c: the runtime library, unit by unit and end to end.
 *
 * The end-to-end tests drive cnnrt_main with the hand-written example model
 * (runtime/example_model.c) in four variants: f64 and f32 cross_entropy, f64
 * mse, f64 with dropout. Every file a test needs is written into a fresh
 * temporary directory.
 */
#define _GNU_SOURCE   /* nftw */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jpeglib.h>
#include <zlib.h>

#include "rt.h"

extern const cnnrt_model cnnrt_model_example, cnnrt_model_example_f32,
    cnnrt_model_example_mse, cnnrt_model_example_drop;

/* ---- helpers ---------------------------------------------------------------- */

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cnnrt-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

/* The temporary directory and everything in it (folders of images too);
 * symbolic links are removed, not followed. */
static void remove_tmpdir(void)
{
    nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A path in the temporary directory (a few rotating buffers). */
static const char *tmp(const char *name)
{
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return b;
}

static int count_files(void)
{
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* A .npy file with a hand-made header (no padding rules enforced). */
static void write_npy_raw(const char *path, int major, const char *header,
                          const void *data, size_t n)
{
    size_t hl = strlen(header);
    unsigned char pre[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', (unsigned char)major, 0};
    size_t pl = major == 1 ? 10 : 12;
    if (major == 1) {
        pre[8] = (unsigned char)hl;
        pre[9] = (unsigned char)(hl >> 8);
    } else {
        for (int i = 0; i < 4; i++)
            pre[8 + i] = (unsigned char)(hl >> (8 * i));
    }
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(pre, 1, pl, f);
    fwrite(header, 1, hl, f);
    if (n)
        fwrite(data, 1, n, f);
    fclose(f);
}

static void write_f32(const char *path, int rank, const int64_t *dims, const float *v)
{
    ck_assert_int_eq(rt_npy_write(path, RT_F32, rank, dims, v), 0);
}

static void write_u8(const char *path, int rank, const int64_t *dims, const unsigned char *v)
{
    ck_assert_int_eq(rt_npy_write(path, RT_U8, rank, dims, v), 0);
}

#define assert_err(...) assert_err_(__FILE__, __LINE__, __VA_ARGS__, NULL)
/* Every given phrase occurs in the recorded error message. */
static void assert_err_(const char *file, int line, const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *))
        if (!strstr(rt_errmsg(), s))
            ck_abort_msg("%s:%d: error message \"%s\" lacks \"%s\"", file, line,
                         rt_errmsg(), s);
    va_end(ap);
}

static int parse_file(const char *path, rt_file *f, rt_array *a)
{
    if (rt_file_open(f, path) != 0)
        return -1;
    int rc = rt_array_parse(f, a);
    if (rc != 0)
        rt_file_close(f);
    return rc;
}

/* Runs cnnrt_main with a command line split at spaces; stdout and stderr are
 * captured into out and err (malloc'd, may be NULL). */
static int run(const cnnrt_model *m, char **out, char **err, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char *argv[64];
    int argc = 0;
    argv[argc++] = "model";
    for (char *t = strtok(cmd, " "); t && argc < 63; t = strtok(NULL, " "))
        argv[argc++] = t;
    argv[argc] = NULL;

    char opath[600], epath[600];
    snprintf(opath, sizeof opath, "%s/.stdout", tmpdir);
    snprintf(epath, sizeof epath, "%s/.stderr", tmpdir);
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    int fo = open(opath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int fe = open(epath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fo, 1);
    dup2(fe, 2);
    close(fo);
    close(fe);
    int rc = cnnrt_main(m, argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    char *o = read_all(opath, NULL), *e = read_all(epath, NULL);
    unlink(opath);
    unlink(epath);
    if (out)
        *out = o;
    else
        free(o);
    if (err)
        *err = e;
    else
        free(e);
    return rc;
}

/* Three well separated classes in 4 features, n samples: blobs.npy and
 * blobs-labels.npy. */
static void write_blobs(int n, const char *x_name, const char *y_name)
{
    static const float centre[3][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 1}};
    float *x = malloc((size_t)n * 4 * sizeof *x);
    unsigned char *y = malloc((size_t)n);
    cnnrt_rng r;
    cnnrt_rng_seed(&r, 7, 0);
    for (int i = 0; i < n; i++) {
        y[i] = (unsigned char)(i % 3);
        for (int j = 0; j < 4; j++)
            x[i * 4 + j] = centre[y[i]][j] + 0.2f * (float)cnnrt_rng_normal(&r);
    }
    int64_t dims[2] = {n, 4};
    write_f32(tmp(x_name), 2, dims, x);
    write_u8(tmp(y_name), 1, dims, y);
    free(x);
    free(y);
}

/* Sends stderr to /dev/null until unquiet(): for tests that provoke warnings
 * by the thousand. */
static int saved_stderr = -1;

static void quiet(void)
{
    fflush(stderr);
    saved_stderr = dup(2);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    close(null);
}

static void unquiet(void)
{
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
}

static void setup(void)
{
    make_tmpdir();
}

static void teardown(void)
{
    remove_tmpdir();
}

/* ---- random numbers ------------------------------------------------------------ */

START_TEST(rng_splitmix_reference)
{
    /* seed 0, stream 0: x = 0, and splitmix64's first output from 0 is the
     * published 0xE220A8397B1DCDAF. */
    cnnrt_rng r;
    cnnrt_rng_seed(&r, 0, 0);
    ck_assert_uint_eq(r.s[0], 0xE220A8397B1DCDAFu);
    ck_assert_uint_eq(r.s[1], 0x6E789E6AA1B965F4u);
}
END_TEST

START_TEST(rng_deterministic)
{
    cnnrt_rng a, b, c;
    cnnrt_rng_seed(&a, 42, 1);
    cnnrt_rng_seed(&b, 42, 1);
    cnnrt_rng_seed(&c, 42, 2);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = cnnrt_rng_next(&a);
        ck_assert_uint_eq(x, cnnrt_rng_next(&b));
        differ += x != cnnrt_rng_next(&c);
    }
    ck_assert_int_gt(differ, 990);
}
END_TEST

/* 200000 draws of each kind. Violations are counted and asserted once: an
 * assertion per draw costs Check a write to its pipe, 800000 of them took
 * seconds, against the test's time limit. */
START_TEST(rng_distributions)
{
    cnnrt_rng r;
    cnnrt_rng_seed(&r, 3, 9);
    enum { N = 200000 };
    double sum = 0, sq = 0;
    int counts[7] = {0};
    int bad_uniform = 0, bad_uniformf = 0, bad_below = 0;
    for (int i = 0; i < N; i++) {
        double u = cnnrt_rng_uniform(&r);
        bad_uniform += !(u >= 0 && u < 1);
        float uf = cnnrt_rng_uniformf(&r);
        bad_uniformf += !(uf >= 0 && uf < 1);
        uint64_t k = cnnrt_rng_below(&r, 7);
        if (k < 7)
            counts[k]++;
        else
            bad_below++;
        double z = cnnrt_rng_normal(&r);
        sum += z;
        sq += z * z;
    }
    ck_assert_msg(bad_uniform == 0 && bad_uniformf == 0 && bad_below == 0,
                  "out of range: %d uniform, %d uniformf, %d below(7) of %d draws each",
                  bad_uniform, bad_uniformf, bad_below, N);
    for (int k = 0; k < 7; k++)
        ck_assert_msg(fabs(counts[k] - N / 7.0) < 0.03 * N / 7.0, "below(7) gave %d %d times",
                      k, counts[k]);
    ck_assert(fabs(sum / N) < 0.01);
    ck_assert(fabs(sq / N - 1) < 0.02);
    ck_assert_uint_eq(cnnrt_rng_below(&r, 1), 0);
}
END_TEST

/* A model made only of a parameter table, for initialisation. */
static cnnrt_param big_params[] = {
    {"A.weight", 2, {1000, 100}, 0, 100000, 100, 1000, CNNRT_HE_NORMAL, 0, 0},
    {"A.bias", 1, {1000}, 100000, 1000, 100, 1000, CNNRT_HE_NORMAL, 1, 0},
    {"B.weight", 2, {1000, 100}, 101000, 100000, 100, 1000, CNNRT_HE_UNIFORM, 0, 0},
    {"C.weight", 2, {1000, 100}, 201000, 100000, 100, 1000, CNNRT_GLOROT_NORMAL, 0, 0},
    {"D.weight", 2, {1000, 100}, 301000, 100000, 100, 1000, CNNRT_GLOROT_UNIFORM, 0, 0},
};

static double *init_big(uint64_t seed)
{
    static cnnrt_model m;
    m = cnnrt_model_example;
    m.params = big_params;
    m.nparams = 5;
    m.param_count = 401000;
    cnnrt_ctx ctx = {.model = &m};
    ctx.params = malloc(401000 * sizeof(double));
    cnnrt_init_params(&ctx, seed);
    return ctx.params;
}

static void moments(const double *p, int n, double *sd, double *maxabs)
{
    double s = 0, q = 0, mx = 0;
    for (int i = 0; i < n; i++) {
        s += p[i];
        q += p[i] * p[i];
        mx = fmax(mx, fabs(p[i]));
    }
    *sd = sqrt(q / n - (s / n) * (s / n));
    *maxabs = mx;
}

START_TEST(init_kinds_and_determinism)
{
    double *a = init_big(5), *b = init_big(5), *c = init_big(6);
    ck_assert_int_eq(memcmp(a, b, 401000 * sizeof(double)), 0);
    ck_assert_int_ne(memcmp(a, c, 100000 * sizeof(double)), 0);
    double sd, mx;
    moments(a, 100000, &sd, &mx);                      /* he_normal */
    ck_assert(fabs(sd - sqrt(2.0 / 100)) < 0.01 * sqrt(2.0 / 100));
    for (int i = 0; i < 1000; i++)                      /* bias */
        ck_assert(a[100000 + i] == 0);
    moments(a + 101000, 100000, &sd, &mx);             /* he_uniform */
    ck_assert(mx <= sqrt(6.0 / 100) && mx > 0.99 * sqrt(6.0 / 100));
    ck_assert(fabs(sd - sqrt(2.0 / 100)) < 0.01 * sqrt(2.0 / 100));
    moments(a + 201000, 100000, &sd, &mx);             /* glorot_normal */
    ck_assert(fabs(sd - sqrt(2.0 / 1100)) < 0.01 * sqrt(2.0 / 1100));
    moments(a + 301000, 100000, &sd, &mx);             /* glorot_uniform */
    ck_assert(mx <= sqrt(6.0 / 1100) && mx > 0.99 * sqrt(6.0 / 1100));
    free(a);
    free(b);
    free(c);
}
END_TEST

/* ---- .npy ------------------------------------------------------------------------ */

START_TEST(npy_good)
{
    float v[6] = {1, 2, 3, 4, 5, 6.5f};
    int64_t dims[2] = {3, 2};
    write_f32(tmp("a.npy"), 2, dims, v);
    rt_file f;
    rt_array a;
    ck_assert_int_eq(parse_file(tmp("a.npy"), &f, &a), 0);
    ck_assert_int_eq(a.dtype, RT_F32);
    ck_assert_int_eq(a.rank, 2);
    ck_assert_int_eq(a.n, 3);
    ck_assert_int_eq(a.row, 2);
    ck_assert(rt_lef32(a.base + 5 * 4) == 6.5f);
    ck_assert_uint_eq((size_t)(a.base - f.data) % 64, 0);
    rt_file_close(&f);

    /* version 2.0, int64 labels, a Python 2 long and double quotes */
    int64_t lab[2] = {7, 1};
    write_npy_raw(tmp("b.npy"), 2,
                  "{\"descr\": '<i8', 'shape': (2L,), 'fortran_order': False}\n", lab, 16);
    ck_assert_int_eq(parse_file(tmp("b.npy"), &f, &a), 0);
    ck_assert_int_eq(a.dtype, RT_I64);
    ck_assert_int_eq(a.n, 2);
    rt_file_close(&f);

    /* uint8, rank 4 */
    unsigned char img[2 * 3 * 3 * 1] = {0};
    int64_t d4[4] = {2, 3, 3, 1};
    write_u8(tmp("c.npy"), 4, d4, img);
    ck_assert_int_eq(parse_file(tmp("c.npy"), &f, &a), 0);
    ck_assert_int_eq(a.row, 9);
    rt_file_close(&f);
}
END_TEST

typedef struct BadNpy {
    const char *header;
    int major;
    size_t data;        /* bytes of data after the header */
    const char *phrase; /* in the message */
} BadNpy;

static const BadNpy bad_npys[] = {
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", 1, 20, "truncated"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", 1, 28, "unexpected data"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (0, 2), }", 1, 0, "no samples"},
    /* found by fuzz_array: 2^63 - 1 samples of nothing, in 128 bytes */
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775807, 0), }", 1, 0,
     "samples hold no elements (shape 9223372036854775807 x 0)"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (5, 2, 0), }", 1, 0,
     "samples hold no elements (shape 5 x 2 x 0)"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 1, 4, "scalar"},
    {"{'descr': '>f4', 'fortran_order': False, 'shape': (3, 2), }", 1, 24, "big-endian"},
    {"{'descr': '<c8', 'fortran_order': False, 'shape': (3, 2), }", 1, 48, "'<c8' is not supported"},
    {"{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }", 1, 24, "Fortran order"},
    {"{'descr': '<f4', 'shape': (3, 2), }", 1, 24, "lacks the key 'fortran_order'"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), 'x': 1}", 1, 24, "unexpected key 'x'"},
    {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3, 2)}", 1, 24, "appears twice"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2)", 1, 24, "malformed .npy header"},
    {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (3, 2)}", 1, 24, "True or False"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, -2)}", 1, 24, "non-negative integer"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", 1, 0, "overflows"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296)}", 1, 0, "overflows"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2)} junk", 1, 24, "only white space"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2)}", 9, 24, "version 9.0"},
};

START_TEST(npy_bad)
{
    const BadNpy *b = &bad_npys[_i];
    char data[64] = {0};
    write_npy_raw(tmp("bad.npy"), b->major, b->header, data, b->data);
    rt_file f;
    rt_array a;
    ck_assert_int_eq(parse_file(tmp("bad.npy"), &f, &a), -1);
    assert_err(tmp("bad.npy"), b->phrase);
}
END_TEST

START_TEST(npy_bad_preamble)
{
    rt_file f;
    rt_array a;
    write_bytes(tmp("short.npy"), "\x93NUMPY\x01", 7);
    ck_assert_int_eq(parse_file(tmp("short.npy"), &f, &a), -1);
    assert_err("short.npy", "truncated", "preamble");
    /* header length 0x7fff, far beyond the file */
    write_bytes(tmp("long.npy"), "\x93NUMPY\x01\x00\xff\x7f{}", 12);
    ck_assert_int_eq(parse_file(tmp("long.npy"), &f, &a), -1);
    assert_err("long.npy", "header length 32767", "runs past the end");
    write_bytes(tmp("garbage.npy"), "hello, world", 12);
    ck_assert_int_eq(parse_file(tmp("garbage.npy"), &f, &a), -1);
    assert_err("garbage.npy", "starting with 68 65 6c 6c", "CIFAR-10");
    write_bytes(tmp("empty.npy"), "", 0);
    ck_assert_int_eq(parse_file(tmp("empty.npy"), &f, &a), -1);
    assert_err("empty.npy", "empty");
    ck_assert_int_eq(parse_file(tmp("missing.npy"), &f, &a), -1);
    assert_err("missing.npy", "cannot open");
    ck_assert_int_eq(parse_file(tmpdir, &f, &a), -1);
    assert_err(tmpdir, "is a directory");
}
END_TEST

/* ---- input files ------------------------------------------------------------------ */

/* Read, not mapped: the bytes stay readable when another program truncates
 * the file under the reader (a mapping would end in SIGBUS). */
START_TEST(file_truncated_under_the_reader)
{
    char data[3 * 4096];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 13);
    write_bytes(tmp("x.bin"), data, sizeof data);
    rt_file f;
    ck_assert_int_eq(rt_file_open(&f, tmp("x.bin")), 0);
    ck_assert_int_eq(truncate(tmp("x.bin"), 0), 0);
    ck_assert_uint_eq(f.size, sizeof data);
    ck_assert_int_eq(memcmp(f.data, data, sizeof data), 0);
    rt_file_close(&f);
}
END_TEST

/* Files under /proc report st_size 0 and still have content. */
START_TEST(file_proc_read_to_its_end)
{
    if (access("/proc/self/status", R_OK) != 0)
        return;
    rt_file f;
    ck_assert_int_eq(rt_file_open(&f, "/proc/self/status"), 0);
    ck_assert_uint_gt(f.size, 0);
    ck_assert_int_eq(memcmp(f.data, "Name:", 5), 0);
    rt_file_close(&f);
}
END_TEST

START_TEST(file_not_regular)
{
    rt_file f;
    ck_assert_int_eq(rt_file_open(&f, "/dev/null"), -1);
    ck_assert_str_eq(rt_errmsg(), "/dev/null: is a character device; expected a regular file");
    ck_assert_int_eq(rt_file_open(&f, tmpdir), -1);
    char want[512];
    snprintf(want, sizeof want, "%s: is a directory; expected a regular file", tmpdir);
    ck_assert_str_eq(rt_errmsg(), want);
    /* a FIFO nobody writes into: refused at once, never waited for */
    ck_assert_int_eq(mkfifo(tmp("fifo"), 0600), 0);
    ck_assert_int_eq(rt_file_open(&f, tmp("fifo")), -1);
    snprintf(want, sizeof want, "%s: is a FIFO that no process is writing into; expected "
             "a regular file, or a pipe with a writer (such as bash's <(command))",
             tmp("fifo"));
    ck_assert_str_eq(rt_errmsg(), want);
}
END_TEST

/* A pipe with a writer (bash's <(command) is /dev/fd/63) is read to its end,
 * however late the writer's bytes come. */
START_TEST(file_pipe_with_a_writer)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        close(p[0]);
        usleep(50 * 1000);
        ssize_t a = write(p[1], "first ", 6);
        usleep(50 * 1000);
        ssize_t b = write(p[1], "second", 6);
        _exit(a == 6 && b == 6 ? 0 : 1);
    }
    close(p[1]);
    char path[64];
    snprintf(path, sizeof path, "/dev/fd/%d", p[0]);
    rt_file f;
    ck_assert_int_eq(rt_file_open(&f, path), 0);
    close(p[0]);
    ck_assert_uint_eq(f.size, 12);
    ck_assert_int_eq(memcmp(f.data, "first second", 12), 0);
    rt_file_close(&f);
    int status;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

/* ---- IDX and CIFAR-10 -------------------------------------------------------------- */

START_TEST(idx_good_and_bad)
{
    unsigned char img[16 + 2 * 3 * 4] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4};
    img[16 + 5] = 200;
    write_bytes(tmp("imgs-idx3-ubyte"), img, sizeof img);
    unsigned char lab[8 + 2] = {0, 0, 8, 1, 0, 0, 0, 2, 1, 0};
    write_bytes(tmp("labs-idx1-ubyte"), lab, sizeof lab);
    rt_file f;
    rt_array a;
    ck_assert_int_eq(parse_file(tmp("imgs-idx3-ubyte"), &f, &a), 0);
    ck_assert_str_eq(a.format, "IDX");
    ck_assert_int_eq(a.rank, 3);
    ck_assert_int_eq(a.dims[1], 3);
    ck_assert_int_eq(a.dims[2], 4);
    ck_assert_int_eq(a.base[5], 200);
    rt_file_close(&f);
    ck_assert_int_eq(parse_file(tmp("labs-idx1-ubyte"), &f, &a), 0);
    ck_assert_int_eq(a.n, 2);
    rt_file_close(&f);

    write_bytes(tmp("t1"), img, sizeof img - 1);
    ck_assert_int_eq(parse_file(tmp("t1"), &f, &a), -1);
    assert_err("t1", "truncated", "needs 24 bytes", "holds 23");
    write_bytes(tmp("t2"), img, 10);
    ck_assert_int_eq(parse_file(tmp("t2"), &f, &a), -1);
    assert_err("t2", "truncated IDX header");
    unsigned char fl[8] = {0, 0, 0x0D, 1, 0, 0, 0, 0};
    write_bytes(tmp("t3"), fl, 8);
    ck_assert_int_eq(parse_file(tmp("t3"), &f, &a), -1);
    assert_err("t3", "0x0D (float32)", "expected 0x08");
    unsigned char huge[16] = {0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                              0xff, 0xff, 0xff, 0xff};
    write_bytes(tmp("t4"), huge, 16);
    ck_assert_int_eq(parse_file(tmp("t4"), &f, &a), -1);
    assert_err("t4", "overflows");
    unsigned char empty_rows[12] = {0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    write_bytes(tmp("t5"), empty_rows, 12);
    ck_assert_int_eq(parse_file(tmp("t5"), &f, &a), -1);
    assert_err("t5", "samples hold no elements (shape 4294967295 x 0)");
}
END_TEST

static cnnrt_model image_model(int64_t h, int64_t w, int64_t c, int64_t outputs)
{
    cnnrt_model m = cnnrt_model_example;
    m.input_rank = 3;
    m.input_shape[0] = h;
    m.input_shape[1] = w;
    m.input_shape[2] = c;
    m.input_size = h * w * c;
    m.outputs = outputs;
    return m;
}

/* Crop then flip, as torchvision's RandomCrop(padding=P) and then
 * RandomHorizontalFlip: each sample against the window at the drawn offset
 * of the zero-padded image, mirrored when drawn so, the draws replayed from
 * the same seed. */
START_TEST(augment_crop_flip)
{
    enum { H = 4, W = 5, C = 2, P = 2, N = 6, HP = H + 2 * P, WP = W + 2 * P };
    cnnrt_model m = image_model(H, W, C, 3);
    rt_opts o;
    memset(&o, 0, sizeof o);
    o.flip = true;
    o.crop = P;
    unsigned char x[N][H][W][C], padded[HP][WP][C];
    memset(padded, 0, sizeof padded);
    for (int y = 0; y < H; y++)
        for (int xx = 0; xx < W; xx++)
            for (int c = 0; c < C; c++)
                padded[y + P][xx + P][c] = (unsigned char)(1 + y * 16 + xx * 2 + c);
    for (int i = 0; i < N; i++)
        for (int y = 0; y < H; y++)
            memcpy(x[i][y], padded[y + P][P], sizeof x[i][y]);
    cnnrt_rng rng, replay;
    cnnrt_rng_seed(&rng, 11, 4);
    cnnrt_rng_seed(&replay, 11, 4);
    ck_assert_int_eq(rt_augment(&m, &o, x, 1, N, &rng), 0);
    int flips = 0, moved = 0;
    for (int i = 0; i < N; i++) {
        int dy = (int)cnnrt_rng_below(&replay, 2 * P + 1);
        int dx = (int)cnnrt_rng_below(&replay, 2 * P + 1);
        bool flip = cnnrt_rng_below(&replay, 2) == 1;
        flips += flip;
        moved += dy != P || dx != P;
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++)
                for (int c = 0; c < C; c++) {
                    int from = flip ? W - 1 - xx : xx;
                    ck_assert_int_eq(x[i][y][xx][c], padded[y + dy][from + dx][c]);
                }
    }
    ck_assert(flips > 0 && flips < N);   /* seed 11 draws both */
    ck_assert(moved > 0);
}
END_TEST

/* The learning rate of each step: warm-up, then the schedule. */
START_TEST(schedule_rates)
{
    rt_opts o;
    memset(&o, 0, sizeof o);
    o.lr = 0.8;
    ck_assert_double_eq(rt_schedule_lr(&o, 7, 3, 10), 0.8);
    o.schedule = CNNRT_STEP;
    o.gamma = 0.5;
    o.step_epochs = 2;
    /* 3 steps an epoch: epochs 0-1 at lr, 2-3 at lr/2, 4 at lr/4 */
    ck_assert_double_eq(rt_schedule_lr(&o, 5, 3, 20), 0.8);
    ck_assert_double_eq(rt_schedule_lr(&o, 6, 3, 20), 0.4);
    ck_assert_double_eq(rt_schedule_lr(&o, 12, 3, 20), 0.2);
    o.schedule = CNNRT_COSINE;
    ck_assert_double_eq(rt_schedule_lr(&o, 0, 3, 10), 0.8);
    ck_assert_double_eq_tol(rt_schedule_lr(&o, 5, 3, 10), 0.4, 1e-15);
    ck_assert_double_eq_tol(rt_schedule_lr(&o, 10, 3, 10), 0, 1e-15);
    o.warmup_epochs = 1;   /* 3 steps: lr/3, 2lr/3, lr, then cosine over 7 */
    ck_assert_double_eq_tol(rt_schedule_lr(&o, 0, 3, 10), 0.8 / 3, 1e-15);
    ck_assert_double_eq_tol(rt_schedule_lr(&o, 2, 3, 10), 0.8, 1e-15);
    ck_assert_double_eq(rt_schedule_lr(&o, 3, 3, 10), 0.8);
    ck_assert_double_eq_tol(rt_schedule_lr(&o, 9, 3, 10), 0.8 * (1 + cos(3.14159265358979323846 * 6 / 7)) / 2, 1e-15);
}
END_TEST

START_TEST(augment_needs_images)
{
    rt_opts o;
    memset(&o, 0, sizeof o);
    o.crop = 1;
    ck_assert_int_eq(rt_augment_check(&cnnrt_model_example, &o), -1);
    ck_assert_str_eq(rt_errmsg(), "--flip and --crop move the pixels of images; the input of "
                                  "example is a vector of 4");
}
END_TEST

START_TEST(cifar_records)
{
    enum { REC = 3073 };
    unsigned char *buf = calloc(3, REC);
    for (int r = 0; r < 3; r++) {
        buf[r * REC] = (unsigned char)(r + 7);
        for (int i = 0; i < 3072; i++)
            buf[r * REC + 1 + i] = (unsigned char)((i * 7 + r) % 251);
    }
    write_bytes(tmp("data_batch_1.bin"), buf, 3 * REC);
    cnnrt_model m = image_model(32, 32, 3, 10);
    rt_data d;
    ck_assert_int_eq(rt_data_load(&d, &m, tmp("data_batch_1.bin"), NULL, true, NULL), 0);
    ck_assert_int_eq(d.n, 3);
    int64_t idx[2] = {2, 0};
    double *x = malloc(2 * 3072 * sizeof *x);
    int32_t labels[2];
    rt_data_inputs(&d, &m, idx, 2, x, NULL);
    rt_data_targets(&d, &m, idx, 2, labels, NULL);
    ck_assert_int_eq(labels[0], 9);
    ck_assert_int_eq(labels[1], 7);
    /* HWC element (y, x, c) comes from CHW byte c*1024 + y*32 + x */
    int y = 5, xx = 17, c = 2;
    int chw = c * 1024 + y * 32 + xx;
    ck_assert(x[(y * 32 + xx) * 3 + c] == ((chw * 7 + 2) % 251) / 255.0);
    ck_assert(x[3072 + (y * 32 + xx) * 3 + c] == ((chw * 7 + 0) % 251) / 255.0);
    free(x);
    rt_data_free(&d);

    /* labels beyond the model's classes */
    cnnrt_model m8 = image_model(32, 32, 3, 8);
    ck_assert_int_eq(rt_data_load(&d, &m8, tmp("data_batch_1.bin"), NULL, true, NULL), -1);
    assert_err("data_batch_1.bin", "label 8 of sample 1", "8 classes");
    /* a separate labels file makes no sense */
    ck_assert_int_eq(rt_data_load(&d, &m, tmp("data_batch_1.bin"), tmp("x"), true, NULL), -1);
    assert_err("CIFAR-10", "holds its own labels");
    /* a truncated batch is not recognised */
    write_bytes(tmp("short.bin"), buf, 3 * REC - 1);
    ck_assert_int_eq(rt_data_load(&d, &m, tmp("short.bin"), NULL, true, NULL), -1);
    assert_err("short.bin", "CIFAR-10", "3073");
    /* label 0, pixels 0 8 1: IDX's magic 00 00 08 01 by chance, but no IDX
     * header fits the size: a CIFAR-10 batch */
    memcpy(buf, "\x00\x00\x08\x01", 4);
    write_bytes(tmp("magic.bin"), buf, 3 * REC);
    rt_file f;
    ck_assert_int_eq(rt_file_open(&f, tmp("magic.bin")), 0);
    ck_assert(rt_is_cifar(&f));
    rt_file_close(&f);
    ck_assert_int_eq(rt_data_load(&d, &m, tmp("magic.bin"), NULL, true, NULL), 0);
    ck_assert_str_eq(d.x.format, "CIFAR-10");
    ck_assert_int_eq(d.n, 3);
    rt_data_targets(&d, &m, idx, 2, labels, NULL);
    ck_assert_int_eq(labels[1], 0);
    rt_data_free(&d);
    free(buf);
}
END_TEST

/* ---- data against the model -------------------------------------------------------- */

START_TEST(data_fit_vector)
{
    const cnnrt_model *m = &cnnrt_model_example;   /* 4 inputs, 3 classes */
    float x[5 * 4] = {0};
    unsigned char y[5] = {0, 1, 2, 1, 0};
    int64_t d5[2] = {5, 4}, d4[1] = {4}, d55[2] = {5, 5};
    rt_data d;
    write_f32(tmp("x.npy"), 2, d5, x);
    write_u8(tmp("y.npy"), 1, d5, y);
    ck_assert_int_eq(rt_data_load(&d, m, tmp("x.npy"), tmp("y.npy"), true, NULL), 0);
    ck_assert(d.y_is_labels);
    rt_data_free(&d);

    ck_assert_int_eq(rt_data_load(&d, m, tmp("x.npy"), NULL, true, NULL), -2);
    assert_err("x.npy", "--labels");

    write_u8(tmp("y4.npy"), 1, d4, y);
    ck_assert_int_eq(rt_data_load(&d, m, tmp("x.npy"), tmp("y4.npy"), true, NULL), -1);
    assert_err("y4.npy", "4 labels for the 5 samples");

    float x55[25] = {0};
    write_f32(tmp("x55.npy"), 2, d55, x55);
    ck_assert_int_eq(rt_data_load(&d, m, tmp("x55.npy"), tmp("y.npy"), true, NULL), -1);
    assert_err("x55.npy", "shape 5 x 5", "expected N x 4");

    unsigned char y3[5] = {0, 1, 3, 1, 0};
    write_u8(tmp("y3.npy"), 1, d5, y3);
    ck_assert_int_eq(rt_data_load(&d, m, tmp("x.npy"), tmp("y3.npy"), true, NULL), -1);
    assert_err("y3.npy", "label 3 of sample 2", "expected 0 to 2");

    int32_t yn[5] = {0, 1, -1, 1, 0};
    ck_assert_int_eq(rt_npy_write(tmp("yn.npy"), RT_I32, 1, d5, yn), 0);
    ck_assert_int_eq(rt_data_load(&d, m, tmp("x.npy"), tmp("yn.npy"), true, NULL), -1);
    assert_err("yn.npy", "label -1 of sample 2");

    float yf[5] = {0};
    write_f32(tmp("yf.npy"), 1, d5, yf);
    ck_assert_int_eq(rt_data_load(&d, m, tmp("x.npy"), tmp("yf.npy"), true, NULL), -1);
    assert_err("yf.npy", "integer class indices", "float32");

    x[7] = NAN;
    write_f32(tmp("xnan.npy"), 2, d5, x);
    ck_assert_int_eq(rt_data_load(&d, m, tmp("xnan.npy"), tmp("y.npy"), true, NULL), -1);
    assert_err("xnan.npy", "sample 1", "non-finite");
    x[7] = INFINITY;
    write_f32(tmp("xinf.npy"), 2, d5, x);
    ck_assert_int_eq(rt_data_load(&d, m, tmp("xinf.npy"), tmp("y.npy"), true, NULL), -1);
    assert_err("xinf.npy", "non-finite");

    /* found by fuzz_data: finite in float64, inf once in a float trainer */
    double x64[20] = {0};
    x64[6] = 1e300;
    ck_assert_int_eq(rt_npy_write(tmp("x64.npy"), RT_F64, 2, d5, x64), 0);
    ck_assert_int_eq(rt_data_load(&d, &cnnrt_model_example_f32, tmp("x64.npy"), tmp("y.npy"),
                                  true, NULL), -1);
    assert_err("x64.npy: sample 1 holds 1e+300 at element 2, beyond the float32 range "
               "(3.40282e+38) of the model ");
    ck_assert_int_eq(rt_data_load(&d, m, tmp("x64.npy"), tmp("y.npy"), true, NULL), 0);
    rt_data_free(&d);

    int32_t xi[20] = {0};
    ck_assert_int_eq(rt_npy_write(tmp("xi.npy"), RT_I32, 2, d5, xi), 0);
    ck_assert_int_eq(rt_data_load(&d, m, tmp("xi.npy"), tmp("y.npy"), true, NULL), -1);
    assert_err("xi.npy", "uint8 or float32", "int32");

    int64_t d52[2] = {5, 2};
    unsigned char y52[10] = {0};
    write_u8(tmp("y52.npy"), 2, d52, y52);
    ck_assert_int_eq(rt_data_load(&d, m, tmp("x.npy"), tmp("y52.npy"), true, NULL), -1);
    assert_err("y52.npy", "one label per sample");
}
END_TEST

START_TEST(data_fit_images)
{
    cnnrt_model m1 = image_model(2, 3, 1, 3), m3 = image_model(2, 3, 3, 3);
    unsigned char px[4 * 2 * 3 * 3];
    for (size_t i = 0; i < sizeof px; i++)
        px[i] = (unsigned char)(i * 13);
    unsigned char y[4] = {0, 1, 2, 0};
    int64_t hw[3] = {4, 2, 3}, hwc[4] = {4, 2, 3, 3}, hw1[4] = {4, 2, 3, 1};
    write_u8(tmp("y.npy"), 1, hw, y);
    write_u8(tmp("hw.npy"), 3, hw, px);
    write_u8(tmp("hw1.npy"), 4, hw1, px);
    write_u8(tmp("hwc.npy"), 4, hwc, px);
    rt_data d;
    /* N x H x W fits one channel, and so does N x H x W x 1 */
    ck_assert_int_eq(rt_data_load(&d, &m1, tmp("hw.npy"), tmp("y.npy"), true, NULL), 0);
    rt_data_free(&d);
    ck_assert_int_eq(rt_data_load(&d, &m1, tmp("hw1.npy"), tmp("y.npy"), true, NULL), 0);
    rt_data_free(&d);
    ck_assert_int_eq(rt_data_load(&d, &m1, tmp("hwc.npy"), tmp("y.npy"), true, NULL), -1);
    assert_err("hwc.npy", "4 x 2 x 3 x 3", "N x 2 x 3 x 1");
    ck_assert_int_eq(rt_data_load(&d, &m3, tmp("hw.npy"), tmp("y.npy"), true, NULL), -1);
    assert_err("hw.npy", "expected N x 2 x 3 x 3");
    /* uint8 scaled by 1/255, in file order (NHWC) */
    ck_assert_int_eq(rt_data_load(&d, &m3, tmp("hwc.npy"), tmp("y.npy"), true, NULL), 0);
    int64_t idx[1] = {1};
    double x[18];
    rt_data_inputs(&d, &m3, idx, 1, x, NULL);
    for (int j = 0; j < 18; j++)
        ck_assert(x[j] == px[18 + j] / 255.0);
    rt_data_free(&d);
    /* and converted to float for a float model */
    cnnrt_model mf = m3;
    mf.real_size = 4;
    ck_assert_int_eq(rt_data_load(&d, &mf, tmp("hwc.npy"), tmp("y.npy"), true, NULL), 0);
    float xf[18];
    rt_data_inputs(&d, &mf, idx, 1, xf, NULL);
    ck_assert(xf[3] == (float)(px[21] / 255.0));
    rt_data_free(&d);
}
END_TEST

START_TEST(data_mse_targets)
{
    const cnnrt_model *m = &cnnrt_model_example_mse;   /* 3 outputs */
    float x[3 * 4] = {0}, t[3 * 3] = {0.5f, 1, 2, 3, 4, 5, 6, 7, 8.25f};
    unsigned char y[3] = {2, 0, 1};
    int64_t d34[2] = {3, 4}, d33[2] = {3, 3}, d32[2] = {3, 2};
    write_f32(tmp("x.npy"), 2, d34, x);
    write_f32(tmp("t.npy"), 2, d33, t);
    write_f32(tmp("t2.npy"), 2, d32, t);
    write_u8(tmp("y.npy"), 1, d33, y);
    rt_data d;
    int64_t idx[2] = {2, 0};
    double tg[6];
    int32_t labels[2];
    ck_assert_int_eq(rt_data_load(&d, m, tmp("x.npy"), tmp("t.npy"), true, NULL), 0);
    ck_assert(!d.y_is_labels);
    rt_data_targets(&d, m, idx, 2, labels, tg);
    ck_assert(tg[2] == 8.25 && tg[3] == 0.5);
    rt_data_free(&d);
    /* integer labels become one-hot targets */
    ck_assert_int_eq(rt_data_load(&d, m, tmp("x.npy"), tmp("y.npy"), true, NULL), 0);
    rt_data_targets(&d, m, idx, 2, labels, tg);
    ck_assert_int_eq(labels[0], 1);
    ck_assert(tg[0] == 0 && tg[1] == 1 && tg[2] == 0 && tg[3] == 0 && tg[4] == 0 && tg[5] == 1);
    rt_data_free(&d);
    ck_assert_int_eq(rt_data_load(&d, m, tmp("x.npy"), tmp("t2.npy"), true, NULL), -1);
    assert_err("t2.npy", "3 x 2", "3 outputs");
    t[4] = NAN;
    write_f32(tmp("tn.npy"), 2, d33, t);
    ck_assert_int_eq(rt_data_load(&d, m, tmp("x.npy"), tmp("tn.npy"), true, NULL), -1);
    assert_err("tn.npy", "sample 1", "non-finite");
    /* found by fuzz_data: a float64 target beyond float32, for a float trainer */
    double t64[9] = {0};
    t64[5] = -1e39;
    ck_assert_int_eq(rt_npy_write(tmp("t64.npy"), RT_F64, 2, d33, t64), 0);
    cnnrt_model mf = *m;
    mf.real_size = 4;
    ck_assert_int_eq(rt_data_load(&d, &mf, tmp("x.npy"), tmp("t64.npy"), true, NULL), -1);
    assert_err("t64.npy: the target of sample 1 holds -1e+39 at element 2, beyond the "
               "float32 range");
    ck_assert_int_eq(rt_data_load(&d, m, tmp("x.npy"), tmp("t64.npy"), true, NULL), 0);
    rt_data_free(&d);
}
END_TEST

/* ---- JSON --------------------------------------------------------------------------- */

START_TEST(json_good)
{
    const char *text = " {\"a\": [1, 2.5, -3, 1e2, true, false, null],"
                       " \"s\": \"x\\u00e9\\ud83d\\ude00\\n\\\"\","
                       " \"big\": 18446744073709551615, \"bigger\": 18446744073709551616,"
                       " \"o\": {}} ";
    rt_json v;
    size_t off;
    ck_assert_int_eq(rt_json_parse(text, strlen(text), &v, &off), 0);
    ck_assert_int_eq(v.type, RT_JOBJ);
    const rt_json *a = rt_json_get(&v, "a");
    ck_assert_uint_eq(a->n, 7);
    ck_assert(a->items[0].is_uint && a->items[0].u == 1);
    ck_assert(!a->items[1].is_uint && a->items[1].num == 2.5);
    ck_assert(!a->items[2].is_uint && a->items[2].num == -3);
    ck_assert(!a->items[3].is_uint && a->items[3].num == 100);
    ck_assert(a->items[4].type == RT_JBOOL && a->items[4].b);
    ck_assert(a->items[6].type == RT_JNULL);
    ck_assert_str_eq(rt_json_get(&v, "s")->str, "x\xc3\xa9\xf0\x9f\x98\x80\n\"");
    ck_assert(rt_json_get(&v, "big")->is_uint);
    ck_assert_uint_eq(rt_json_get(&v, "big")->u, UINT64_MAX);
    ck_assert(!rt_json_get(&v, "bigger")->is_uint);
    ck_assert_uint_eq(rt_json_get(&v, "o")->n, 0);
    rt_json_free(&v);
}
END_TEST

typedef struct BadJson {
    const char *text;
    size_t off;
    const char *phrase;
} BadJson;

static const BadJson bad_jsons[] = {
    {"", 0, "expected a value"},
    {"{\"a\": 1,}", 8, "'\"' starting a key"},
    {"[1, 2,]", 6, "expected a value"},
    {"{\"a\": 01}", 7, "leading zeros"},
    {"{\"a\": \"abc}", 6, "closing"},
    {"{\"a\": \"a\tb\"}", 8, "control"},
    {"{\"a\": \"\xff\"}", 7, "UTF-8"},
    {"{\"a\": \"\xc0\xaf\"}", 7, "UTF-8"},
    {"{\"a\": \"\\ud800x\"}", 7, "low surrogate"},
    {"{\"a\": \"\\udc00\"}", 7, "high surrogate"},
    {"{\"a\": \"\\q\"}", 8, "escape"},
    {"{\"a\": \"\\u12g4\"}", 11, "hex digits"},
    {"{\"a\": \"\\u0000\"}", 7, "\\u0000"},
    {"{\"a\": 1, \"a\": 2}", 14, "duplicate key \"a\""},
    {"{\"a\": 1} x", 9, "nothing after"},
    {"{'a': 1}", 1, "'\"' starting a key"},
    {"{\"a\": NaN}", 6, "expected a value"},
    {"{\"a\" 1}", 5, "':'"},
    {"[1 2]", 3, "',' or ']'"},
    {"{\"a\": 1.}", 8, "digit after '.'"},
    {"{\"a\": 1e}", 8, "exponent"},
    {"{\"a\": -}", 7, "digit"},
    {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", 32, "32 deep"},
};

START_TEST(json_bad)
{
    const BadJson *b = &bad_jsons[_i];
    rt_json v;
    size_t off = 999;
    ck_assert_int_eq(rt_json_parse(b->text, strlen(b->text), &v, &off), -1);
    if (!strstr(rt_errmsg(), b->phrase))
        ck_abort_msg("%s: message \"%s\" lacks \"%s\"", b->text, rt_errmsg(), b->phrase);
    ck_assert_msg(off == b->off, "%s: offset %zu, expected %zu", b->text, off, b->off);
}
END_TEST

/* ---- checkpoints -------------------------------------------------------------------- */

static void ctx_new(cnnrt_ctx *ctx, const cnnrt_model *m, cnnrt_optimizer opt, uint64_t seed)
{
    ck_assert_int_eq(cnnrt_ctx_init(ctx, m, opt, 1), 0);
    cnnrt_init_params(ctx, seed);
}

/* A run's position with every field unlike its neighbours'. */
static rt_run example_run(void)
{
    rt_run r = {.step = 17, .per_epoch = 5, .epoch = 4, .epoch_step = 2,
                .loss_sum = 1.0 / 3, .seen = 9, .correct = 4, .best = -INFINITY,
                .saved_epoch = 3, .flags = 0x0123456789abcdefull, .weights = 42};
    cnnrt_rng_seed(&r.shuffle, 5, 2);
    cnnrt_rng_seed(&r.dropout, 5, 3);
    cnnrt_rng_seed(&r.augment, 5, 4);
    return r;
}

START_TEST(ckpt_round_trip)
{
    for (int opt = CNNRT_SGD; opt <= CNNRT_ADAM; opt++) {
        const cnnrt_model *m = opt == CNNRT_NESTEROV ? &cnnrt_model_example_f32
                                                     : &cnnrt_model_example;
        cnnrt_ctx a, b;
        ctx_new(&a, m, (cnnrt_optimizer)opt, 11);
        ctx_new(&b, m, (cnnrt_optimizer)opt, 12);
        int slots = cnnrt_opt_slots((cnnrt_optimizer)opt);
        for (int64_t j = 0; j < slots * m->param_count; j++)
            rt_set(m->real_size, a.opt_state, j, 0.25 * (double)j - 3);
        a.step = 1234;
        rt_run run = example_run(), got;
        ck_assert_int_eq(rt_ckpt_save(&a, tmp("rt.safetensors")), 0);
        ck_assert_int_eq(rt_state_save(&a, tmp("rt.safetensors.state"), &run), 0);
        ck_assert_int_eq(rt_ckpt_load(&b, tmp("rt.safetensors")), 0);
        ck_assert_int_eq(b.step, 0);   /* a checkpoint holds weights alone */
        ck_assert_int_eq(rt_state_load(&b, tmp("rt.safetensors.state"), &got), 0);
        size_t rs = (size_t)m->real_size;
        ck_assert_int_eq(memcmp(a.params, b.params, (size_t)m->param_count * rs), 0);
        if (slots)   /* sgd has no state: opt_state is NULL */
            ck_assert_int_eq(memcmp(a.opt_state, b.opt_state,
                                    (size_t)(slots * m->param_count) * rs), 0);
        ck_assert_int_eq(b.step, 1234);
        ck_assert_int_eq(memcmp(&run, &got, sizeof run), 0);
        /* and the checkpoint lists no optimizer state: a PyTorch state_dict */
        size_t n;
        char *bytes = read_all(tmp("rt.safetensors"), &n);
        ck_assert(memmem(bytes, n, "__opt__", 7) == NULL);
        free(bytes);
        cnnrt_ctx_free(&a);
        cnnrt_ctx_free(&b);
    }
}
END_TEST

START_TEST(ckpt_precisions)
{
    cnnrt_ctx f, d;
    ctx_new(&f, &cnnrt_model_example_f32, CNNRT_SGD, 3);
    ctx_new(&d, &cnnrt_model_example, CNNRT_SGD, 4);
    ck_assert_int_eq(rt_ckpt_save(&f, tmp("f32.st")), 0);
    /* an f64 trainer reads F32 */
    ck_assert_int_eq(rt_ckpt_load(&d, tmp("f32.st")), 0);
    for (int j = 0; j < 67; j++)
        ck_assert(((double *)d.params)[j] == ((float *)f.params)[j]);
    /* an f32 trainer refuses F64 */
    ck_assert_int_eq(rt_ckpt_save(&d, tmp("f64.st")), 0);
    ck_assert_int_eq(rt_ckpt_load(&f, tmp("f64.st")), -1);
    assert_err("f64.st", "D1.weight", "dtype F64", "expected F32");
    cnnrt_ctx_free(&f);
    cnnrt_ctx_free(&d);
}
END_TEST

/* A safetensors file from a header and data bytes. */
static void write_st(const char *path, const char *header, const void *data, size_t n)
{
    size_t hl = strlen(header);
    unsigned char len[8];
    rt_put_le64(len, hl);
    FILE *f = fopen(path, "wb");
    fwrite(len, 1, 8, f);
    fwrite(header, 1, hl, f);
    if (n)
        fwrite(data, 1, n, f);
    fclose(f);
}

/* The example's four tensors as F64 entries, then extra text. */
#define T_D1W "\"D1.weight\":{\"dtype\":\"F64\",\"shape\":[8,4],\"data_offsets\":[0,256]}"
#define T_D1B "\"D1.bias\":{\"dtype\":\"F64\",\"shape\":[8],\"data_offsets\":[256,320]}"
#define T_D2W "\"D2.weight\":{\"dtype\":\"F64\",\"shape\":[3,8],\"data_offsets\":[320,512]}"
#define T_D2B "\"D2.bias\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[512,536]}"
#define T_ALL T_D1W "," T_D1B "," T_D2W "," T_D2B

typedef struct BadCkpt {
    const char *header;
    size_t data;
    const char *phrase1, *phrase2;
} BadCkpt;

static const BadCkpt bad_ckpts[] = {
    {"{" T_ALL "}", 535, "D2.bias", "out of range"},
    {"{" T_ALL ",}", 536, "bad JSON", "at byte"},
    {"[1]", 536, "not a JSON object", ""},
    {"{\"__metadata__\":{\"a\":1}," T_ALL "}", 536, "__metadata__", "strings to strings"},
    {"{" T_D1W "," T_D1B "," T_D2W "}", 512, "missing tensor D2.bias", "[3]"},
    {"{" T_ALL ",\"D3.weight\":{\"dtype\":\"F64\",\"shape\":[0],\"data_offsets\":[536,536]}}", 536,
     "unexpected tensor D3.weight", ""},
    {"{" T_D1W "," T_D1B "," T_D2W ",\"D2.bias\":{\"dtype\":\"F64\",\"shape\":[1,3],"
     "\"data_offsets\":[512,536]}}", 536, "D2.bias has shape [1, 3]", "expects [3]"},
    {"{" T_D1W "," T_D1B "," T_D2W ",\"D2.bias\":{\"dtype\":\"I64\",\"shape\":[3],"
     "\"data_offsets\":[512,536]}}", 536, "D2.bias has dtype I64", ""},
    {"{" T_D1W "," T_D1B "," T_D2W ",\"D2.bias\":{\"dtype\":\"F65\",\"shape\":[3],"
     "\"data_offsets\":[512,536]}}", 536, "D2.bias", "not a safetensors dtype"},
    {"{" T_D1W "," T_D1B "," T_D2W ",\"D2.bias\":{\"dtype\":\"F64\",\"shape\":[-3],"
     "\"data_offsets\":[512,536]}}", 536, "D2.bias", "non-negative integers"},
    {"{" T_D1W "," T_D1B "," T_D2W ",\"D2.bias\":{\"dtype\":\"F64\",\"shape\":[3.5],"
     "\"data_offsets\":[512,536]}}", 536, "D2.bias", "non-negative integers"},
    {"{" T_D1W "," T_D1B "," T_D2W ",\"D2.bias\":{\"dtype\":\"F64\",\"shape\":[3],"
     "\"data_offsets\":[536,512]}}", 536, "D2.bias", "out of range"},
    {"{" T_D1W "," T_D1B "," T_D2W ",\"D2.bias\":{\"dtype\":\"F64\",\"shape\":[3],"
     "\"data_offsets\":[504,528]}}", 536, "D2.weight (bytes 320-512) and D2.bias (bytes 504-528) overlap", ""},
    {"{" T_D1W "," T_D1B "," T_D2W ",\"D2.bias\":{\"dtype\":\"F64\",\"shape\":[4],"
     "\"data_offsets\":[512,536]}}", 536, "D2.bias", "needs 32"},
    {"{" T_D1W "," T_D1B "," T_D2W ",\"D2.bias\":{\"dtype\":\"F64\",\"shape\":[4294967296,"
     "4294967296],\"data_offsets\":[512,536]}}", 536, "D2.bias", "overflows"},
    {"{" T_D1W "," T_D1B "," T_D2W ",\"D2.bias\":{\"dtype\":\"F64\",\"shape\":[2147483648,"
     "2147483648,2],\"data_offsets\":[512,536]}}", 536, "D2.bias", "overflows"},
    {"{" T_D1W "," T_D1B "," T_D2W ",\"D2.bias\":{\"dtype\":\"F64\",\"shape\":[3],"
     "\"data_offsets\":[512]}}", 536, "D2.bias", "[begin, end]"},
    {"{" T_D1W "," T_D1B "," T_D2W ",\"D2.bias\":{\"dtype\":\"F64\",\"shape\":[3],"
     "\"data_offsets\":[512,536],\"x\":1}}", 536, "D2.bias", "unexpected key \"x\""},
    {"{" T_D1W "," T_D1B "," T_D2W ",\"D2.bias\":{\"shape\":[3],"
     "\"data_offsets\":[512,536]}}", 536, "D2.bias", "lacks \"dtype\""},
    {"{" T_D1W "," T_D1B "," T_D2W ",\"D2.bias\":[]}", 536, "D2.bias", "expected an object"},
    {"{" T_ALL ",\"__opt__.D9.weight.exp_avg\":{\"dtype\":\"F64\",\"shape\":[8,4],"
     "\"data_offsets\":[536,792]}}", 792, "unexpected tensor __opt__.D9.weight.exp_avg", ""},
};

START_TEST(ckpt_bad)
{
    const BadCkpt *b = &bad_ckpts[_i];
    unsigned char *data = calloc(1, 1024);
    write_st(tmp("bad.st"), b->header, data, b->data);
    free(data);
    cnnrt_ctx ctx;
    ctx_new(&ctx, &cnnrt_model_example, CNNRT_ADAM, 1);
    ck_assert_int_eq(rt_ckpt_load(&ctx, tmp("bad.st")), -1);
    assert_err("bad.st", b->phrase1, b->phrase2);
    cnnrt_ctx_free(&ctx);
}
END_TEST

START_TEST(ckpt_bad_framing)
{
    cnnrt_ctx ctx;
    ctx_new(&ctx, &cnnrt_model_example, CNNRT_SGD, 1);
    write_bytes(tmp("tiny.st"), "\x05\0\0", 3);
    ck_assert_int_eq(rt_ckpt_load(&ctx, tmp("tiny.st")), -1);
    assert_err("tiny.st", "truncated");
    write_bytes(tmp("len.st"), "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10);
    ck_assert_int_eq(rt_ckpt_load(&ctx, tmp("len.st")), -1);
    assert_err("len.st", "header length 18446744073709551615", "runs past the end");
    write_bytes(tmp("json.st"), "\x04\0\0\0\0\0\0\0{\"a\"", 12);
    ck_assert_int_eq(rt_ckpt_load(&ctx, tmp("json.st")), -1);
    assert_err("json.st", "bad JSON in the header at byte 12");
    /* a non-finite value */
    unsigned char data[536] = {0};
    double inf = INFINITY;
    memcpy(data + 512 + 8, &inf, 8);
    write_st(tmp("inf.st"), "{" T_ALL "}", data, sizeof data);
    ck_assert_int_eq(rt_ckpt_load(&ctx, tmp("inf.st")), -1);
    assert_err("inf.st", "D2.bias", "non-finite", "element 1");
    /* and the same file, finite, loads; no metadata is needed */
    memset(data, 0, sizeof data);
    write_st(tmp("ok.st"), "{" T_ALL "}", data, sizeof data);
    ck_assert_int_eq(rt_ckpt_load(&ctx, tmp("ok.st")), 0);
    cnnrt_ctx_free(&ctx);
}
END_TEST

/* Loads path into a fresh Adam context; returns what rt_ckpt_load does. */
static int load_fresh(const char *path)
{
    cnnrt_ctx ctx;
    ctx_new(&ctx, &cnnrt_model_example, CNNRT_ADAM, 1);
    int rc = rt_ckpt_load(&ctx, path);
    cnnrt_ctx_free(&ctx);
    return rc;
}

/* Fails unless the message is exactly "PATH: " followed by want. */
static void assert_errmsg(const char *path, const char *want)
{
    char full[2048];
    snprintf(full, sizeof full, "%s: %s", path, want);
    ck_assert_str_eq(rt_errmsg(), full);
}

/* Bytes no tensor holds are refused, as safetensors refuses them: between
 * tensors, before the first, after the last (trailing garbage). */
typedef struct Uncovered {
    const char *header;
    size_t data;
    unsigned from, to;      /* the data bytes named */
    const char *where;
} Uncovered;

static const Uncovered uncovereds[] = {
    {"{" T_ALL "}", 540, 536, 540, "after the last tensor (D2.bias)"},
    {"{" T_D1W "," T_D1B "," T_D2W ",\"D2.bias\":{\"dtype\":\"F64\",\"shape\":[3],"
     "\"data_offsets\":[520,544]}}", 544, 512, 520, "between the tensors D2.weight and D2.bias"},
    {"{\"D2.bias\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[8,32]}}", 32, 0, 8,
     "before the first tensor (D2.bias)"},
    {"{\"__metadata__\":{}}", 3, 0, 3, "after a header that lists no tensor"},
};

START_TEST(ckpt_uncovered_bytes)
{
    const Uncovered *u = &uncovereds[_i];
    unsigned char data[1024] = {0};
    write_st(tmp("gap.st"), u->header, data, u->data);
    ck_assert_int_eq(load_fresh(tmp("gap.st")), -1);
    size_t start = 8 + strlen(u->header);
    char want[1024];
    snprintf(want, sizeof want, "data bytes [%u, %u) (file bytes [%zu, %zu)) lie %s and "
             "belong to no tensor; safetensors needs the tensors to cover the data exactly",
             u->from, u->to, start + u->from, start + u->to, u->where);
    assert_errmsg(tmp("gap.st"), want);
}
END_TEST

/* A header longer than safetensors' limit of 10^8 bytes, in a sparse file
 * long enough to hold it. */
START_TEST(ckpt_header_limit)
{
    for (uint64_t hlen = 100000000; hlen <= 100000001; hlen++) {
        unsigned char len[8];
        rt_put_le64(len, hlen);
        write_bytes(tmp("huge.st"), len, 8);
        ck_assert_int_eq(truncate(tmp("huge.st"), (off_t)(8 + hlen)), 0);
        ck_assert_int_eq(load_fresh(tmp("huge.st")), -1);
        if (hlen == 100000000)   /* at the limit: read, and the JSON is bad */
            assert_err("bad JSON in the header at byte 8");
        else
            assert_errmsg(tmp("huge.st"), "the header length 100000001 (bytes 0-7) is above "
                                          "the limit of 100000000");
    }
}
END_TEST

/* cnnc.step and cnnc.hash: digits only, in range; refused by name and value,
 * whether or not the state is wanted. */
typedef struct BadMeta {
    const char *key, *value;
    const char *message;
} BadMeta;

#define STEP_WANT "; expected a step count: digits only, at most 9007199254740992 (2^53)"
static const BadMeta bad_metas[] = {
    {"cnnc.step", "9223372036854775807", "__metadata__ cnnc.step is \"9223372036854775807\"" STEP_WANT},
    {"cnnc.step", "99999999999999999999", "__metadata__ cnnc.step is \"99999999999999999999\"" STEP_WANT},
    {"cnnc.step", "9007199254740993", "__metadata__ cnnc.step is \"9007199254740993\"" STEP_WANT},
    {"cnnc.step", " 5", "__metadata__ cnnc.step is \" 5\"" STEP_WANT},
    {"cnnc.step", "5\\n", "__metadata__ cnnc.step is \"5\\x0a\"" STEP_WANT},
    {"cnnc.step", "+5", "__metadata__ cnnc.step is \"+5\"" STEP_WANT},
    {"cnnc.step", "-1", "__metadata__ cnnc.step is \"-1\"" STEP_WANT},
    {"cnnc.step", "1e3", "__metadata__ cnnc.step is \"1e3\"" STEP_WANT},
    {"cnnc.step", "", "__metadata__ cnnc.step is \"\"" STEP_WANT},
    {"cnnc.step", "0x10", "__metadata__ cnnc.step is \"0x10\"" STEP_WANT},
    {"cnnc.step", "12345678901234567890123456789012345678901234567890",
     "__metadata__ cnnc.step is \"1234567890123456789012345678901234567890...\"" STEP_WANT},
    {"cnnc.hash", "abc", "__metadata__ cnnc.hash is \"abc\"; expected 16 hex digits"},
    {"cnnc.hash", "0123456789abcdefg", "__metadata__ cnnc.hash is \"0123456789abcdefg\"; "
     "expected 16 hex digits"},
    {"cnnc.hash", " 123456789abcdef", "__metadata__ cnnc.hash is \" 123456789abcdef\"; "
     "expected 16 hex digits"},
};

START_TEST(ckpt_bad_metadata)
{
    const BadMeta *b = &bad_metas[_i];
    char header[2048];
    snprintf(header, sizeof header, "{\"__metadata__\":{\"%s\":\"%s\"}," T_ALL "}", b->key,
             b->value);
    unsigned char data[536] = {0};
    write_st(tmp("meta.st"), header, data, sizeof data);
    ck_assert_int_eq(load_fresh(tmp("meta.st")), -1);
    assert_errmsg(tmp("meta.st"), b->message);
}
END_TEST

/* The largest step count loads; a hash in capitals is the same number. */
START_TEST(ckpt_metadata_limits)
{
    cnnrt_ctx a, b;
    ctx_new(&a, &cnnrt_model_example, CNNRT_ADAM, 1);
    ctx_new(&b, &cnnrt_model_example, CNNRT_ADAM, 2);
    a.step = RT_MAX_STEP;
    rt_run run = example_run();
    ck_assert_int_eq(rt_ckpt_save(&a, tmp("max.st")), 0);
    ck_assert_int_eq(rt_state_save(&a, tmp("max.st.state"), &run), 0);
    ck_assert_int_eq(rt_ckpt_load(&b, tmp("max.st")), 0);
    ck_assert_int_eq(rt_state_load(&b, tmp("max.st.state"), &run), 0);
    ck_assert_int_eq(b.step, RT_MAX_STEP);
    char header[512];
    snprintf(header, sizeof header, "{\"__metadata__\":{\"cnnc.hash\":\"%016llX\"}," T_ALL "}",
             (unsigned long long)cnnrt_model_example.source_hash);
    unsigned char data[536] = {0};
    write_st(tmp("caps.st"), header, data, sizeof data);
    fflush(stderr);
    quiet();   /* no warning expected, but a wrong one must not clutter the log */
    ck_assert_int_eq(rt_ckpt_load(&b, tmp("caps.st")), 0);
    unquiet();
    cnnrt_ctx_free(&a);
    cnnrt_ctx_free(&b);
}
END_TEST

/* rt_ckpt_load_buffer and rt_state_load_buffer, what the fuzzer calls: the
 * same checks from memory. */
START_TEST(ckpt_from_memory)
{
    cnnrt_ctx a, b;
    ctx_new(&a, &cnnrt_model_example, CNNRT_MOMENTUM, 1);
    ctx_new(&b, &cnnrt_model_example, CNNRT_MOMENTUM, 2);
    a.step = 77;
    rt_run run = example_run(), got;
    ck_assert_int_eq(rt_ckpt_save(&a, tmp("mem.st")), 0);
    ck_assert_int_eq(rt_state_save(&a, tmp("mem.st.state"), &run), 0);
    size_t n, ns;
    char *bytes = read_all(tmp("mem.st"), &n);
    char *state = read_all(tmp("mem.st.state"), &ns);
    ck_assert_int_eq(rt_ckpt_load_buffer(&b, "memory", (unsigned char *)bytes, n), 0);
    ck_assert_int_eq(memcmp(a.params, b.params, 67 * sizeof(double)), 0);
    ck_assert_int_eq(rt_state_load_buffer(&b, "memory", (unsigned char *)state, ns, &got), 0);
    ck_assert_int_eq(b.step, 77);
    ck_assert_int_eq(rt_ckpt_load_buffer(&b, "memory", (unsigned char *)bytes, 5), -1);
    ck_assert_str_eq(rt_errmsg(), "memory: truncated: 5 bytes, shorter than the 8-byte "
                                  "header length");
    /* each refuses the other kind of file, saying which it is */
    ck_assert_int_eq(rt_ckpt_load_buffer(&b, "m.state", (unsigned char *)state, ns), -1);
    ck_assert_str_eq(rt_errmsg(), "m.state is the training state beside a checkpoint, not "
                                  "a checkpoint; give the checkpoint (the same name without "
                                  ".state)");
    ck_assert_int_eq(rt_state_load_buffer(&b, "m.st", (unsigned char *)bytes, n, &got), -1);
    ck_assert_str_eq(rt_errmsg(), "m.st: not a training state (its __metadata__ lacks "
                                  "\"format\": \"cnnc-state\"); --save writes one beside "
                                  "its checkpoint");
    free(bytes);
    free(state);
    cnnrt_ctx_free(&a);
    cnnrt_ctx_free(&b);
}
END_TEST

/* --resume goes on with the run's optimizer: another one's state, even
 * nesterov's take on momentum's buffer, is refused by name. */
START_TEST(ckpt_other_optimizer_state)
{
    cnnrt_ctx a, b;
    ctx_new(&a, &cnnrt_model_example, CNNRT_MOMENTUM, 1);
    rt_run run = example_run();
    ck_assert_int_eq(rt_state_save(&a, tmp("m.st.state"), &run), 0);
    const cnnrt_optimizer others[] = {CNNRT_ADAM, CNNRT_NESTEROV, CNNRT_SGD};
    const char *names[] = {"adam", "nesterov", "sgd"};
    for (int i = 0; i < 3; i++) {
        ctx_new(&b, &cnnrt_model_example, others[i], 2);
        ck_assert_int_eq(rt_state_load(&b, tmp("m.st.state"), &run), -1);
        char want[300];
        snprintf(want, sizeof want, "the state of \"momentum\", not of %s; --resume goes on "
                 "with the optimizer of the run that saved it", names[i]);
        assert_errmsg(tmp("m.st.state"), want);
        cnnrt_ctx_free(&b);
    }
    cnnrt_ctx_free(&a);
}
END_TEST

/* A training state whose tensors or position do not add up is refused. */
START_TEST(ckpt_bad_state)
{
    cnnrt_ctx a, b;
    ctx_new(&a, &cnnrt_model_example, CNNRT_ADAM, 1);
    ctx_new(&b, &cnnrt_model_example, CNNRT_ADAM, 2);
    rt_run run = example_run(), got;
    run.epoch_step = run.per_epoch;   /* a step past its epoch's end */
    ck_assert_int_eq(rt_state_save(&a, tmp("pos.state"), &run), 0);
    ck_assert_int_eq(rt_state_load(&b, tmp("pos.state"), &got), -1);
    assert_errmsg(tmp("pos.state"), "the run's position does not add up (epoch 4, step 5 "
                  "of 5 in it, 9 samples seen, 4 correct, last saved epoch 3)");
    /* a generator stuck at zero would hang the shuffle */
    run = example_run();
    memset(&run.augment, 0, sizeof run.augment);
    ck_assert_int_eq(rt_state_save(&a, tmp("rng.state"), &run), 0);
    ck_assert_int_eq(rt_state_load(&b, tmp("rng.state"), &got), -1);
    assert_errmsg(tmp("rng.state"), "__metadata__ cnnc.rng.augment is all zeros, which no "
                  "generator's state is");
    /* a state with one slot short */
    char header[1024];
    snprintf(header, sizeof header, "{\"__metadata__\":{\"format\":\"cnnc-state\","
             "\"cnnc.hash\":\"%016llx\",\"cnnc.optimizer\":\"adam\"},"
             "\"__opt__.D1.weight.exp_avg\":{\"dtype\":\"F64\",\"shape\":[8,4],"
             "\"data_offsets\":[0,256]}}",
             (unsigned long long)cnnrt_model_example.source_hash);
    unsigned char data[256] = {0};
    write_st(tmp("short.state"), header, data, sizeof data);
    ck_assert_int_eq(rt_state_load(&b, tmp("short.state"), &got), -1);
    assert_errmsg(tmp("short.state"), "missing tensor __opt__.D1.bias.exp_avg: the adam "
                  "state is incomplete");
    cnnrt_ctx_free(&a);
    cnnrt_ctx_free(&b);
}
END_TEST

START_TEST(ckpt_save_atomic_on_failure)
{
    cnnrt_ctx a;
    ctx_new(&a, &cnnrt_model_example, CNNRT_SGD, 1);
    ck_assert_int_eq(rt_ckpt_save(&a, tmp("nodir/x.st")), -1);
    assert_err("nodir", "does not exist");
    ck_assert_int_eq(rt_ckpt_save(&a, tmpdir), -1);
    assert_err("is a directory");
    ck_assert_int_eq(count_files(), 0);
    cnnrt_ctx_free(&a);
}
END_TEST

/* ---- atomic files ----------------------------------------------------------------------- */

START_TEST(output_abort_and_commit)
{
    write_bytes(tmp("target"), "old", 3);
    rt_output af;
    FILE *f = rt_output_open(&af, tmp("target"));
    ck_assert_ptr_nonnull(f);
    fputs("new and longer", f);
    ck_assert_int_eq(count_files(), 2);
    rt_output_abort(&af);
    char *s = read_all(tmp("target"), NULL);
    ck_assert_str_eq(s, "old");
    free(s);
    ck_assert_int_eq(count_files(), 1);

    f = rt_output_open(&af, tmp("target"));
    fputs("new", f);
    /* until the commit, the target keeps its old content */
    s = read_all(tmp("target"), NULL);
    ck_assert_str_eq(s, "old");
    free(s);
    ck_assert_int_eq(rt_output_commit(&af), 0);
    s = read_all(tmp("target"), NULL);
    ck_assert_str_eq(s, "new");
    free(s);
    ck_assert_int_eq(count_files(), 1);
    /* with the permissions a new file gets, not mkstemp's 0600 */
    struct stat st;
    mode_t mask = umask(022);
    umask(mask);
    ck_assert_int_eq(stat(tmp("target"), &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0666 & ~mask);
}
END_TEST

/* Character devices and FIFOs are written through: replacing them would
 * put a regular file in their place (as root, in /dev). */
START_TEST(output_through_devices_and_fifos)
{
    rt_output o;
    FILE *f;
    struct stat st;
    char want[600];
    /* private device nodes (root only), not the machine's /dev/null */
    if (mknod(tmp("null"), S_IFCHR | 0666, makedev(1, 3)) == 0) {
        ck_assert_ptr_nonnull(f = rt_output_open(&o, tmp("null")));
        ck_assert_ptr_null(o.tmp);
        fputs("gone", f);
        ck_assert_int_eq(rt_output_commit(&o), 0);
        ck_assert_int_eq(lstat(tmp("null"), &st), 0);
        ck_assert(S_ISCHR(st.st_mode));
        ck_assert_int_eq(rt_check_writable(tmp("null"), "--save"), 0);
    }
    if (mknod(tmp("full"), S_IFCHR | 0666, makedev(1, 7)) == 0) {
        ck_assert_ptr_nonnull(f = rt_output_open(&o, tmp("full")));
        fputs("no room", f);
        ck_assert_int_eq(rt_output_commit(&o), -1);
        snprintf(want, sizeof want, "%s: cannot write: No space left on device", tmp("full"));
        ck_assert_str_eq(rt_errmsg(), want);
        ck_assert_int_eq(lstat(tmp("full"), &st), 0);
        ck_assert(S_ISCHR(st.st_mode));
    }
    /* a FIFO: its reader gets the bytes */
    ck_assert_int_eq(mkfifo(tmp("fifo"), 0600), 0);
    pid_t reader = fork();
    ck_assert_int_ge(reader, 0);
    if (reader == 0) {
        char buf[64] = "";
        int fd = open(tmp("fifo"), O_RDONLY);
        ssize_t n = read(fd, buf, sizeof buf - 1);
        _exit(n == 16 && memcmp(buf, "through the pipe", 16) == 0 ? 0 : 1);
    }
    ck_assert_ptr_nonnull(f = rt_output_open(&o, tmp("fifo")));
    fputs("through the pipe", f);
    ck_assert_int_eq(rt_output_commit(&o), 0);
    int status;
    ck_assert_int_eq(waitpid(reader, &status, 0), reader);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_eq(lstat(tmp("fifo"), &st), 0);
    ck_assert(S_ISFIFO(st.st_mode));
    /* nothing else left behind */
    ck_assert_int_eq(count_files(), 1 + (stat(tmp("null"), &st) == 0) +
                                        (stat(tmp("full"), &st) == 0));
}
END_TEST

/* A symbolic link's target is replaced, never the link. */
START_TEST(output_follows_symlinks)
{
    rt_output o;
    FILE *f;
    struct stat st;
    write_bytes(tmp("real"), "old", 3);
    ck_assert_int_eq(symlink("real", tmp("link")), 0);
    ck_assert_int_eq(symlink("link", tmp("link2")), 0);
    ck_assert_ptr_nonnull(f = rt_output_open(&o, tmp("link2")));
    fputs("new", f);
    ck_assert_int_eq(rt_output_commit(&o), 0);
    char *s = read_all(tmp("real"), NULL);
    ck_assert_str_eq(s, "new");
    free(s);
    ck_assert(lstat(tmp("link"), &st) == 0 && S_ISLNK(st.st_mode));
    ck_assert(lstat(tmp("link2"), &st) == 0 && S_ISLNK(st.st_mode));
    /* a dangling link: its target is created */
    ck_assert_int_eq(symlink(tmp("made"), tmp("dangling")), 0);
    ck_assert_ptr_nonnull(f = rt_output_open(&o, tmp("dangling")));
    fputs("made", f);
    ck_assert_int_eq(rt_output_commit(&o), 0);
    s = read_all(tmp("made"), NULL);
    ck_assert_str_eq(s, "made");
    free(s);
    ck_assert(lstat(tmp("dangling"), &st) == 0 && S_ISLNK(st.st_mode));
    ck_assert_int_eq(count_files(), 5);
    /* a loop */
    ck_assert_int_eq(symlink("loop2", tmp("loop1")), 0);
    ck_assert_int_eq(symlink("loop1", tmp("loop2")), 0);
    ck_assert_ptr_null(rt_output_open(&o, tmp("loop1")));
    char want[600];
    snprintf(want, sizeof want, "output %s: cannot follow the symbolic link: Too many "
             "levels of symbolic links", tmp("loop1"));
    ck_assert_str_eq(rt_errmsg(), want);
}
END_TEST

/* A temporary whose writer was killed (SIGKILL) is removed by the next
 * writer of the same output; a live process's, or another output's, stay. */
START_TEST(output_removes_stale_temporaries)
{
    pid_t gone = fork();
    ck_assert_int_ge(gone, 0);
    if (gone == 0)
        _exit(0);
    waitpid(gone, NULL, 0);
    char stale[64], live[64], other[64];
    snprintf(stale, sizeof stale, ".out.txt.tmp-%ld-Ab12Cd", (long)gone);
    snprintf(live, sizeof live, ".out.txt.tmp-%ld-Ab12Cd", (long)getppid());
    snprintf(other, sizeof other, ".other.txt.tmp-%ld-Ab12Cd", (long)gone);
    write_bytes(tmp(stale), "x", 1);
    write_bytes(tmp(live), "x", 1);
    write_bytes(tmp(other), "x", 1);
    write_bytes(tmp(".out.txt.tmp-Ab12Cd"), "x", 1);   /* whose, cannot be told */
    rt_output o;
    FILE *f = rt_output_open(&o, tmp("out.txt"));
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(rt_output_commit(&o), 0);
    ck_assert_int_ne(access(tmp(stale), F_OK), 0);
    ck_assert_int_eq(access(tmp(live), F_OK), 0);
    ck_assert_int_eq(access(tmp(other), F_OK), 0);
    ck_assert_int_eq(access(tmp(".out.txt.tmp-Ab12Cd"), F_OK), 0);
    ck_assert_int_eq(count_files(), 4);
}
END_TEST

/* SIGINT, SIGTERM, SIGHUP while an output is being written: the temporary
 * goes, and the process still dies of the signal. */
START_TEST(output_signal_removes_temporary)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++) {
        pid_t child = fork();
        ck_assert_int_ge(child, 0);
        if (child == 0) {
            /* as in a fresh program: Check's runner handles these itself */
            for (int k = 0; k < 3; k++)
                signal(sigs[k], SIG_DFL);
            rt_output o;
            FILE *f = rt_output_open(&o, tmp("sig.out"));
            if (!f)
                _exit(2);
            fputs("half", f);
            fflush(f);
            raise(sigs[i]);
            _exit(3);
        }
        int status;
        ck_assert_int_eq(waitpid(child, &status, 0), child);
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == sigs[i],
                      "signal %d: status %d", sigs[i], status);
        ck_assert_int_eq(count_files(), 0);
    }
    /* a program that ignores SIGHUP (nohup) goes on ignoring it */
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        signal(SIGHUP, SIG_IGN);
        rt_output o;
        FILE *f = rt_output_open(&o, tmp("sig.out"));
        if (!f)
            _exit(2);
        raise(SIGHUP);
        fputs("whole", f);
        _exit(rt_output_commit(&o) == 0 ? 0 : 4);
    }
    int status;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char *s = read_all(tmp("sig.out"), NULL);
    ck_assert_str_eq(s, "whole");
    free(s);
    ck_assert_int_eq(count_files(), 1);
}
END_TEST

START_TEST(output_same_file)
{
    write_bytes(tmp("a"), "a", 1);
    write_bytes(tmp("b"), "b", 1);
    ck_assert_int_eq(link(tmp("a"), tmp("hard")), 0);
    ck_assert_int_eq(symlink("a", tmp("soft")), 0);
    ck_assert(rt_same_file(tmp("a"), tmp("hard")));
    ck_assert(rt_same_file(tmp("soft"), tmp("a")));
    ck_assert(!rt_same_file(tmp("a"), tmp("b")));
    ck_assert(!rt_same_file(tmp("a"), tmp("new")));
    /* neither exists yet: the same path once resolved */
    ck_assert_int_eq(mkdir(tmp("d"), 0700), 0);
    ck_assert(rt_same_file(tmp("d/../new"), tmp("new")));
    ck_assert(!rt_same_file(tmp("new"), tmp("new2")));
    ck_assert_int_eq(symlink("new", tmp("to-new")), 0);
    ck_assert(rt_same_file(tmp("to-new"), tmp("new")));
    rmdir(tmp("d"));
}
END_TEST

/* ---- the command line --------------------------------------------------------------------- */

static int parse(rt_opts *o, const char *line)
{
    /* static: the options point into it after the call (o->out, o->data) */
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s", line);
    char *argv[32];
    int argc = 0;
    argv[argc++] = "model";
    for (char *t = strtok(buf, " "); t; t = strtok(NULL, " "))
        argv[argc++] = t;
    return rt_parse_args(&cnnrt_model_example, argc, argv, o);
}

START_TEST(cli_good)
{
    rt_opts o;
    ck_assert_int_eq(parse(&o, "train --data x --labels y --lr=0.5 --batch 8 --epochs 3 "
                               "--optimizer adam --seed 18446744073709551615 --no-shuffle "
                               "--val-split 0.25 --threads 3 --decay 1e-4"), RT_OK);
    ck_assert_int_eq(o.cmd, RT_CMD_TRAIN);
    ck_assert(o.lr == 0.5 && o.batch == 8 && o.batch_given && o.epochs == 3);
    ck_assert_int_eq(o.optimizer, CNNRT_ADAM);
    ck_assert_uint_eq(o.seed, UINT64_MAX);
    ck_assert(o.no_shuffle && o.val_split == 0.25 && o.threads == 3 && o.decay == 1e-4);
    /* defaults from Train(...) */
    ck_assert_int_eq(parse(&o, "train --data x --labels y"), RT_OK);
    ck_assert(o.lr == 0.1 && o.batch == 16 && !o.batch_given && o.epochs == 20);
    ck_assert_int_eq(o.optimizer, CNNRT_MOMENTUM);
    ck_assert_int_eq(parse(&o, "predict --data x --weights w -o out"), RT_OK);
    ck_assert_str_eq(o.out, "out");
    ck_assert_int_eq(parse(&o, "--help"), RT_OK);
    ck_assert_int_eq(o.cmd, RT_CMD_HELP);
    ck_assert_int_eq(parse(&o, "train --help"), RT_OK);
    ck_assert(o.help);
}
END_TEST

typedef struct BadCli {
    const char *line;
    const char *phrase1, *phrase2;
} BadCli;

static const BadCli bad_clis[] = {
    {"", "no command", ""},
    {"fly", "unknown command 'fly'", ""},
    {"train --data x --labels y --bogus 1", "unknown flag '--bogus'", ""},
    {"train --data x --labels y --lr abc", "--lr", "found 'abc'"},
    {"train --data x --labels y --lr 0", "--lr", "> 0"},
    {"train --data x --labels y --lr nan", "--lr", "'nan'"},
    {"train --data x --labels y --batch 0", "--batch", "from 1 to 16"},
    {"train --data x --labels y --batch 17", "--batch", "compiled batch"},
    {"train --data x --labels y --batch 4x", "--batch", "'4x'"},
    {"train --data x --labels y --epochs -1", "--epochs", "'-1'"},
    {"train --data x --labels y --epochs 1.5", "--epochs", "'1.5'"},
    {"train --data x --labels y --steps 0", "--steps", "from 1"},
    {"train --data x --labels y --threads 0", "--threads", "from 1"},
    {"train --data x --labels y --momentum 1.5", "--momentum", "<= 1"},
    {"train --data x --labels y --beta2 1", "--beta2", "< 1"},
    {"train --data x --labels y --val-split 1", "--val-split", "< 1"},
    {"train --data x --labels y --val-split 0", "--val-split", "> 0"},
    {"train --data x --labels y --optimizer rmsprop", "--optimizer", "'rmsprop'"},
    {"train --data x --labels y --seed -3", "--seed", "'-3'"},
    {"train --data x --labels y --seed 99999999999999999999", "--seed", "below 2^64"},
    {"train --data x --labels y --lr", "--lr needs a value", ""},
    {"train --data x --labels y --weights w", "--weights", "belongs to eval, predict"},
    {"train --data x --labels y extra", "unexpected argument 'extra'", ""},
    {"train --data x --labels y --no-shuffle=yes", "--no-shuffle takes no value", ""},
    {"train --labels y", "--data is required", ""},
    {"train --data x --labels y --val-labels v", "--val-labels needs --val-data", ""},
    {"train --data x --labels y --val-data v --val-split 0.1", "exclude each other", ""},
    {"eval --data x --labels y", "--weights is required", ""},
    {"predict --weights w", "--data is required", ""},
    {"bench --epochs 3", "--epochs", "belongs to train"},
    {"gradcheck --tolerance -1", "--tolerance", "'-1'"},
    {"train --data= --labels y", "--data", "empty"},
    {"train --data x --labels y --log x", "--log x is the same file as --data x", ""},
    {"train --data x --labels y --save ./y", "--save ./y is the same file as --labels y", ""},
    {"train --data x --labels y --val-data v --val-labels w --log w", "as --val-labels w", ""},
    {"train --data x --labels y --init c --log c", "--log c is the same file as --init c", ""},
    {"train --data x --labels y --save s --log s", "--log s is the same file as --save s",
     "each output needs its own"},
    {"predict --data x --weights w -o x", "-o x is the same file as --data x", "destroy"},
};

START_TEST(cli_bad)
{
    const BadCli *b = &bad_clis[_i];
    rt_opts o;
    ck_assert_msg(parse(&o, b->line) == RT_USAGE, "'%s' was accepted", b->line);
    if (!strstr(rt_errmsg(), b->phrase1) || !strstr(rt_errmsg(), b->phrase2))
        ck_abort_msg("'%s': message \"%s\" lacks \"%s\" or \"%s\"", b->line, rt_errmsg(),
                     b->phrase1, b->phrase2);
}
END_TEST

/* ---- end to end ------------------------------------------------------------------------------ */

START_TEST(e2e_train_eval_predict)
{
    write_blobs(300, "x.npy", "y.npy");
    write_blobs(90, "vx.npy", "vy.npy");
    char *out, *err;
    int rc = run(&cnnrt_model_example, NULL, &err,
                 "train --data %s --labels %s --val-data %s --val-labels %s --epochs 3 "
                 "--save %s --log %s", tmp("x.npy"), tmp("y.npy"), tmp("vx.npy"),
                 tmp("vy.npy"), tmp("ck.st"), tmp("log.csv"));
    ck_assert_msg(rc == 0, "train failed: %s", err);
    ck_assert_ptr_nonnull(strstr(err, "epoch 3/3"));
    ck_assert_ptr_nonnull(strstr(err, "val_acc"));
    free(err);
    char *log = read_all(tmp("log.csv"), NULL);
    ck_assert_ptr_nonnull(strstr(log, "epoch,step,loss,acc,val_loss,val_acc,images_per_s\n1,19,"));
    ck_assert_ptr_nonnull(strstr(log, "\n3,57,"));
    free(log);

    rc = run(&cnnrt_model_example, &out, &err, "eval --data %s --labels %s --weights %s",
             tmp("vx.npy"), tmp("vy.npy"), tmp("ck.st"));
    ck_assert_msg(rc == 0, "eval failed: %s", err);
    double loss, acc;
    ck_assert_int_eq(sscanf(out, "loss %lf accuracy %lf%%", &loss, &acc), 2);
    ck_assert_msg(acc >= 95, "accuracy %g%% after training", acc);
    free(out);
    free(err);

    rc = run(&cnnrt_model_example, &out, NULL, "predict --data %s --weights %s -o %s",
             tmp("vx.npy"), tmp("ck.st"), tmp("pred.txt"));
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(out, "");
    free(out);
    char *pred = read_all(tmp("pred.txt"), NULL);
    int lines = 0, right = 0;
    for (char *p = pred; *p; p = strchr(p, '\n') + 1) {
        ck_assert(*p >= '0' && *p <= '2' && p[1] == '\n');
        right += *p - '0' == lines % 3;
        lines++;
    }
    ck_assert_int_eq(lines, 90);
    ck_assert_int_ge(right, 85);
    free(pred);
    /* and to stdout */
    rc = run(&cnnrt_model_example, &out, NULL, "predict --data %s --weights %s",
             tmp("vx.npy"), tmp("ck.st"));
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(strlen(out), 180);
    free(out);
}
END_TEST

START_TEST(e2e_deterministic)
{
    write_blobs(100, "x.npy", "y.npy");
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(run(&cnnrt_model_example_drop, NULL, NULL,
                             "train --data %s --labels %s --epochs 2 --seed %d --save %s",
                             tmp("x.npy"), tmp("y.npy"), i == 2 ? 8 : 7,
                             tmp(i == 0 ? "a.st" : i == 1 ? "b.st" : "c.st")), 0);
    size_t na, nb, nc;
    char *a = read_all(tmp("a.st"), &na), *b = read_all(tmp("b.st"), &nb),
         *c = read_all(tmp("c.st"), &nc);
    ck_assert_uint_eq(na, nb);
    ck_assert_int_eq(memcmp(a, b, na), 0);
    ck_assert(na != nc || memcmp(a, c, na) != 0);
    free(a);
    free(b);
    free(c);
}
END_TEST

/* --no-shuffle and one step: the checkpoint must equal one step taken by
 * hand on samples 0..B-1 from the same initialisation. */
START_TEST(e2e_no_shuffle_first_batch)
{
    write_blobs(40, "x.npy", "y.npy");
    ck_assert_int_eq(run(&cnnrt_model_example, NULL, NULL,
                         "train --data %s --labels %s --steps 1 --batch 8 --no-shuffle "
                         "--seed 5 --optimizer sgd --lr 0.5 --save %s",
                         tmp("x.npy"), tmp("y.npy"), tmp("one.st")), 0);
    const cnnrt_model *m = &cnnrt_model_example;
    cnnrt_ctx ctx, got;
    ctx_new(&ctx, m, CNNRT_SGD, 5);
    ctx.lr = 0.5;
    rt_data d;
    ck_assert_int_eq(rt_data_load(&d, m, tmp("x.npy"), tmp("y.npy"), true, NULL), 0);
    int64_t idx[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    double x[8 * 4];
    int32_t labels[8];
    rt_data_inputs(&d, m, idx, 8, x, NULL);
    rt_data_targets(&d, m, idx, 8, labels, NULL);
    rt_train_step(&ctx, 8, x, labels, NULL);
    ctx_new(&got, m, CNNRT_SGD, 99);
    ck_assert_int_eq(rt_ckpt_load(&got, tmp("one.st")), 0);
    ck_assert_int_eq(memcmp(ctx.params, got.params, 67 * sizeof(double)), 0);
    /* a shuffled first batch is another one */
    ck_assert_int_eq(run(&cnnrt_model_example, NULL, NULL,
                         "train --data %s --labels %s --steps 1 --batch 8 --seed 5 "
                         "--optimizer sgd --lr 0.5 --save %s",
                         tmp("x.npy"), tmp("y.npy"), tmp("shuf.st")), 0);
    ck_assert_int_eq(rt_ckpt_load(&got, tmp("shuf.st")), 0);
    ck_assert_int_ne(memcmp(ctx.params, got.params, 67 * sizeof(double)), 0);
    rt_data_free(&d);
    cnnrt_ctx_free(&ctx);
    cnnrt_ctx_free(&got);
}
END_TEST

static int64_t ckpt_step(const char *path)
{
    char *s = read_all(path, NULL);
    char *p = strstr(s + 8, "\"cnnc.step\":\"");
    ck_assert_ptr_nonnull(p);
    int64_t step = strtoll(p + 13, NULL, 10);
    free(s);
    return step;
}

START_TEST(e2e_steps_partial_batches_resume)
{
    write_blobs(20, "x.npy", "y.npy");
    /* 20 samples at batch 16: the last partial batch counts, 2 steps */
    ck_assert_int_eq(run(&cnnrt_model_example, NULL, NULL,
                         "train --data %s --labels %s --epochs 1 --save %s",
                         tmp("x.npy"), tmp("y.npy"), tmp("a.st")), 0);
    ck_assert_int_eq(ckpt_step(tmp("a.st")), 2);
    /* --steps overrides --epochs */
    ck_assert_int_eq(run(&cnnrt_model_example, NULL, NULL,
                         "train --data %s --labels %s --epochs 9 --steps 3 --save %s",
                         tmp("x.npy"), tmp("y.npy"), tmp("b.st")), 0);
    ck_assert_int_eq(ckpt_step(tmp("b.st")), 3);
    /* --init starts a new run from the weights: a fresh optimizer, step 0 */
    ck_assert_int_eq(run(&cnnrt_model_example, NULL, NULL,
                         "train --data %s --labels %s --epochs 1 --init %s --save %s",
                         tmp("x.npy"), tmp("y.npy"), tmp("a.st"), tmp("c.st")), 0);
    ck_assert_int_eq(ckpt_step(tmp("c.st")), 2);
    /* --resume goes on with the run: paused inside the first epoch, then at
     * its end, it writes the bytes of the run that never stopped */
    const char *flags = "--epochs 3 --optimizer adam --val-split 0.25";
    ck_assert_int_eq(run(&cnnrt_model_example_drop, NULL, NULL,
                         "train --data %s --labels %s %s --save %s", tmp("x.npy"),
                         tmp("y.npy"), flags, tmp("whole.st")), 0);
    for (int pause = 1; pause <= 2; pause++) {
        ck_assert_int_eq(run(&cnnrt_model_example_drop, NULL, NULL,
                             "train --data %s --labels %s %s --save %s --pause-after %d",
                             tmp("x.npy"), tmp("y.npy"), flags, tmp("p.st"), pause), 0);
        ck_assert_int_eq(ckpt_step(tmp("p.st")), pause);
        ck_assert_int_eq(run(&cnnrt_model_example_drop, NULL, NULL,
                             "train --data %s --labels %s %s --resume %s --save %s",
                             tmp("x.npy"), tmp("y.npy"), flags, tmp("p.st"), tmp("p.st")), 0);
        size_t nw, np;
        char *w = read_all(tmp("whole.st"), &nw), *p = read_all(tmp("p.st"), &np);
        ck_assert_uint_eq(nw, np);
        ck_assert_int_eq(memcmp(w, p, nw), 0);
        free(w);
        free(p);
    }
    /* --val-split: the last 25% validate */
    ck_assert_int_eq(run(&cnnrt_model_example, NULL, NULL,
                         "train --data %s --labels %s --epochs 1 --val-split 0.25 --log %s "
                         "--save %s", tmp("x.npy"), tmp("y.npy"), tmp("l.csv"), tmp("d.st")), 0);
    ck_assert_int_eq(ckpt_step(tmp("d.st")), 1);
    char *log = read_all(tmp("l.csv"), NULL);
    int epoch, step;
    double loss, acc, vloss, vacc;
    ck_assert_int_eq(sscanf(strchr(log, '\n') + 1, "%d,%d,%lf,%lf,%lf,%lf", &epoch, &step,
                            &loss, &acc, &vloss, &vacc), 6);
    ck_assert(vacc >= 0 && vacc <= 1 && vloss > 0);
    free(log);
    char *err;
    ck_assert_int_eq(run(&cnnrt_model_example, NULL, &err,
                         "train --data %s --labels %s --val-split 0.01",
                         tmp("x.npy"), tmp("y.npy")), 1);
    ck_assert_ptr_nonnull(strstr(err, "leaves 0 for validation"));
    free(err);
}
END_TEST

/* The step count stops at 2^53: a run that would pass it is refused before
 * it starts, whether by --resume's count or by --epochs. */
START_TEST(e2e_step_limit)
{
    write_blobs(20, "x.npy", "y.npy");
    cnnrt_ctx a;
    ctx_new(&a, &cnnrt_model_example, CNNRT_MOMENTUM, 1);
    a.step = RT_MAX_STEP - 1;
    /* a run at its start (2 steps an epoch) whose optimizer has counted
     * 2^53 - 1 steps before it */
    rt_run r = {.per_epoch = 2, .epoch = 1, .best = -INFINITY,
                .weights = rt_weights_hash(&a)};
    cnnrt_rng_seed(&r.shuffle, 1, 2);
    cnnrt_rng_seed(&r.dropout, 1, 3);
    cnnrt_rng_seed(&r.augment, 1, 4);
    ck_assert_int_eq(rt_ckpt_save(&a, tmp("late.st")), 0);
    ck_assert_int_eq(rt_state_save(&a, tmp("late.st.state"), &r), 0);
    cnnrt_ctx_free(&a);
    char *err;
    int rc = run(&cnnrt_model_example, NULL, &err,
                 "train --data %s --labels %s --steps 1 --resume %s --save %s",
                 tmp("x.npy"), tmp("y.npy"), tmp("late.st"), tmp("last.st"));
    ck_assert_msg(rc == 0, "%s", err);
    free(err);
    ck_assert_int_eq(ckpt_step(tmp("last.st")), RT_MAX_STEP);
    rc = run(&cnnrt_model_example, NULL, &err,
             "train --data %s --labels %s --steps 2 --resume %s --log %s",
             tmp("x.npy"), tmp("y.npy"), tmp("late.st"), tmp("refused.csv"));
    ck_assert_int_eq(rc, 1);
    ck_assert_int_ne(access(tmp("refused.csv"), F_OK), 0);   /* refused before the log */
    char want[1024];
    snprintf(want, sizeof want, "model: error: train: --resume %s had taken "
             "9007199254740991 steps before its run; 2 more would pass 2^53, the most a run "
             "counts\n", tmp("late.st"));
    ck_assert_ptr_nonnull(strstr(err, want));
    free(err);
    /* 9008 steps an epoch (batch 1) times 10^12 epochs */
    write_blobs(9008, "big.npy", "big-y.npy");
    rc = run(&cnnrt_model_example, NULL, &err,
             "train --data %s --labels %s --batch 1 --epochs 1000000000000",
             tmp("big.npy"), tmp("big-y.npy"));
    ck_assert_int_eq(rc, 1);
    ck_assert_str_eq(err, "model: error: train: --epochs 1000000000000 of 9008 steps each "
                          "come to more than 2^53 steps, the most a run counts\n");
    free(err);
}
END_TEST

START_TEST(e2e_optimizers_and_losses)
{
    write_blobs(64, "x.npy", "y.npy");
    const char *opts[] = {"sgd", "momentum", "nesterov", "adam"};
    for (int i = 0; i < 4; i++) {
        char *err;
        int rc = run(&cnnrt_model_example_f32, NULL, &err,
                     "train --data %s --labels %s --epochs 2 --optimizer %s --decay 0.01 "
                     "--lr 0.05 --save %s", tmp("x.npy"), tmp("y.npy"), opts[i], tmp("o.st"));
        ck_assert_msg(rc == 0, "%s: %s", opts[i], err);
        free(err);
        char *s = read_all(tmp("o.st"), NULL), *st = read_all(tmp("o.st.state"), NULL);
        const char *h = s + 8, *sh = st + 8;   /* the headers, after their lengths */
        ck_assert_ptr_nonnull(strstr(h, "\"D1.weight\":{\"dtype\":\"F32\""));
        ck_assert_ptr_null(strstr(h, "__opt__"));
        ck_assert((strstr(sh, "exp_avg_sq") != NULL) == (i == 3));
        ck_assert((strstr(sh, "momentum_buffer") != NULL) == (i == 1 || i == 2));
        free(s);
        free(st);
    }
    /* mse with integer labels (one-hot) and with float targets */
    ck_assert_int_eq(run(&cnnrt_model_example_mse, NULL, NULL,
                         "train --data %s --labels %s --epochs 2 --save %s",
                         tmp("x.npy"), tmp("y.npy"), tmp("mse.st")), 0);
    float t[64 * 3];
    for (int i = 0; i < 64 * 3; i++)
        t[i] = (float)(i % 5) / 4;
    int64_t dims[2] = {64, 3};
    write_f32(tmp("t.npy"), 2, dims, t);
    char *out;
    ck_assert_int_eq(run(&cnnrt_model_example_mse, NULL, NULL,
                         "train --data %s --labels %s --epochs 1", tmp("x.npy"), tmp("t.npy")), 0);
    ck_assert_int_eq(run(&cnnrt_model_example_mse, &out, NULL,
                         "eval --data %s --labels %s --weights %s",
                         tmp("x.npy"), tmp("t.npy"), tmp("mse.st")), 0);
    ck_assert_ptr_nonnull(strstr(out, "loss "));
    ck_assert_ptr_null(strstr(out, "accuracy"));
    free(out);
    ck_assert_int_eq(run(&cnnrt_model_example_mse, &out, NULL,
                         "predict --data %s --weights %s", tmp("x.npy"), tmp("mse.st")), 0);
    double a, b, c;
    ck_assert_int_eq(sscanf(out, "%lf %lf %lf\n", &a, &b, &c), 3);
    free(out);
}
END_TEST

START_TEST(e2e_bad_input_leaves_save)
{
    write_blobs(20, "x.npy", "y.npy");
    unsigned char y[20] = {0};
    y[13] = 3;
    int64_t dims[1] = {20};
    write_u8(tmp("bad-y.npy"), 1, dims, y);
    write_bytes(tmp("keep.st"), "OLD", 3);
    char *err;
    ck_assert_int_eq(run(&cnnrt_model_example, NULL, &err,
                         "train --data %s --labels %s --save %s",
                         tmp("x.npy"), tmp("bad-y.npy"), tmp("keep.st")), 1);
    ck_assert_ptr_nonnull(strstr(err, "model: error: "));
    ck_assert_ptr_nonnull(strstr(err, "bad-y.npy: label 3 of sample 13"));
    free(err);
    ck_assert_int_eq(run(&cnnrt_model_example, NULL, &err,
                         "train --data %s --labels %s --save %s --init %s",
                         tmp("x.npy"), tmp("y.npy"), tmp("keep.st"), tmp("keep.st")), 1);
    ck_assert_ptr_nonnull(strstr(err, "keep.st: truncated"));
    free(err);
    char *s = read_all(tmp("keep.st"), NULL);
    ck_assert_str_eq(s, "OLD");
    free(s);
    /* a missing labels file for non-CIFAR data is a usage error */
    ck_assert_int_eq(run(&cnnrt_model_example, NULL, NULL, "train --data %s", tmp("x.npy")), 2);
    ck_assert_int_eq(count_files(), 4);
}
END_TEST

START_TEST(e2e_divergence)
{
    /* huge inputs and a huge rate overflow the float model within steps */
    float x[32 * 4];
    unsigned char y[32];
    for (int i = 0; i < 32; i++) {
        y[i] = (unsigned char)(i % 3);
        for (int j = 0; j < 4; j++)
            x[i * 4 + j] = (i + j) % 2 ? 1e18f : -1e18f;
    }
    int64_t dims[2] = {32, 4};
    write_f32(tmp("x.npy"), 2, dims, x);
    write_u8(tmp("y.npy"), 1, dims, y);
    write_bytes(tmp("keep.st"), "OLD", 3);
    char *err;
    int rc = run(&cnnrt_model_example_f32, NULL, &err,
                 "train --data %s --labels %s --lr 1e10 --epochs 5 --save %s",
                 tmp("x.npy"), tmp("y.npy"), tmp("keep.st"));
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(err, "training diverged at step ") && strstr(err, "(epoch 1)") &&
                      strstr(err, "non-finite outputs is D") && strstr(err, "no checkpoint"),
                  "message: %s", err);
    free(err);
    char *s = read_all(tmp("keep.st"), NULL);
    ck_assert_str_eq(s, "OLD");
    free(s);
}
END_TEST

/* A file that is both a whole IDX file and whole CIFAR-10 records is read as
 * IDX, and the trainer says so. */
START_TEST(e2e_idx_or_cifar)
{
    enum { N = 3070 };   /* 12 + N * 4 bytes = 4 records of 3073 */
    unsigned char *buf = calloc(1, 4 * 3073);
    memcpy(buf, "\x00\x00\x08\x02\x00\x00\x0b\xfe\x00\x00\x00\x04", 12);
    for (int i = 0; i < N * 4; i++)
        buf[12 + i] = (unsigned char)(i * 31);
    write_bytes(tmp("both-idx3-ubyte"), buf, 4 * 3073);
    free(buf);
    cnnrt_ctx ctx;
    ctx_new(&ctx, &cnnrt_model_example, CNNRT_SGD, 3);
    ck_assert_int_eq(rt_ckpt_save(&ctx, tmp("w.st")), 0);
    cnnrt_ctx_free(&ctx);
    char *out, *err, want[600];
    ck_assert_int_eq(run(&cnnrt_model_example, &out, &err, "predict --data %s --weights %s",
                         tmp("both-idx3-ubyte"), tmp("w.st")), 0);
    snprintf(want, sizeof want, "model: note: %s could also be a CIFAR-10 batch of 4 records; "
             "read as IDX, whose header fits the file's size exactly\n", tmp("both-idx3-ubyte"));
    ck_assert_str_eq(err, want);
    ck_assert_uint_eq(strlen(out), 2 * N);
    free(out);
    free(err);
}
END_TEST

/* Weights whose D1 is huge: finite (a checkpoint takes them), but any
 * input other than 0 overflows D1's outputs. */
static void write_huge_weights(const cnnrt_model *m, const char *name)
{
    cnnrt_ctx ctx;
    ctx_new(&ctx, m, CNNRT_SGD, 5);
    const cnnrt_param *w = &m->params[0];
    ck_assert_str_eq(w->name, "D1.weight");
    for (int64_t j = 0; j < w->count; j++)
        rt_set(m->real_size, ctx.params, w->offset + j, m->real_size == 4 ? 1e38 : 1e308);
    ck_assert_int_eq(rt_ckpt_save(&ctx, tmp(name)), 0);
    cnnrt_ctx_free(&ctx);
}

/* 20 samples of four features: the first zeros of them zero, the rest 2. */
static void write_zeros_then_twos(const char *x_name, const char *y_name, int zeros)
{
    float x[20 * 4];
    unsigned char y[20];
    for (int i = 0; i < 20; i++) {
        y[i] = (unsigned char)(i % 3);
        for (int j = 0; j < 4; j++)
            x[i * 4 + j] = i < zeros ? 0.0f : 2.0f;
    }
    int64_t dims[2] = {20, 4};
    write_f32(tmp(x_name), 2, dims, x);
    write_u8(tmp(y_name), 1, dims, y);
}

/* eval of weights that give NaN says where and exits 1, printing no mean. */
START_TEST(e2e_eval_nonfinite)
{
    write_huge_weights(&cnnrt_model_example, "huge.st");
    write_zeros_then_twos("x.npy", "y.npy", 16);
    char *out, *err, want[1024];
    ck_assert_int_eq(run(&cnnrt_model_example, &out, &err,
                         "eval --data %s --labels %s --weights %s --batch 16",
                         tmp("x.npy"), tmp("y.npy"), tmp("huge.st")), 1);
    ck_assert_str_eq(out, "");
    snprintf(want, sizeof want, "model: error: the weights in %s give NaN or infinity: the "
             "loss is NaN on samples 16 to 19 (batch 2 of 2) of %s; the first layer with "
             "non-finite outputs is D1\n", tmp("huge.st"), tmp("x.npy"));
    ck_assert_str_eq(err, want);
    free(out);
    free(err);
    /* the f32 trainer too */
    write_huge_weights(&cnnrt_model_example_f32, "huge32.st");
    ck_assert_int_eq(run(&cnnrt_model_example_f32, NULL, &err,
                         "eval --data %s --labels %s --weights %s --batch 8",
                         tmp("x.npy"), tmp("y.npy"), tmp("huge32.st")), 1);
    ck_assert_msg(strstr(err, "on samples 16 to 19 (batch 3 of 3)"), "message: %s", err);
    free(err);
}
END_TEST

/* Validation that gives NaN stops training as a NaN training loss does,
 * before the save that would replace the last good checkpoint. */
START_TEST(e2e_validation_nonfinite)
{
    write_huge_weights(&cnnrt_model_example, "huge.st");
    write_zeros_then_twos("x.npy", "y.npy", 20);    /* trains: D1 sees only zeros */
    write_zeros_then_twos("vx.npy", "vy.npy", 0);
    write_bytes(tmp("keep.st"), "OLD", 3);
    char *err, want[1024];
    ck_assert_int_eq(run(&cnnrt_model_example, NULL, &err,
                         "train --data %s --labels %s --val-data %s --val-labels %s "
                         "--init %s --save %s --batch 16 --epochs 3", tmp("x.npy"),
                         tmp("y.npy"), tmp("vx.npy"), tmp("vy.npy"), tmp("huge.st"),
                         tmp("keep.st")), 1);
    snprintf(want, sizeof want, "model: error: training diverged at step 2 (epoch 1): on "
             "validation, the loss is NaN on samples 0 to 15 (batch 1 of 2) of %s; the "
             "first layer with non-finite outputs is D1; no checkpoint was written (try a "
             "lower --lr)\n", tmp("vx.npy"));
    ck_assert_ptr_nonnull(strstr(err, want));
    free(err);
    char *s = read_all(tmp("keep.st"), NULL);
    ck_assert_str_eq(s, "OLD");
    free(s);
    /* --val-split: the samples are numbered in the --data file */
    write_zeros_then_twos("x.npy", "y.npy", 16);
    ck_assert_int_eq(run(&cnnrt_model_example, NULL, &err,
                         "train --data %s --labels %s --val-split 0.2 --init %s --batch 16 "
                         "--epochs 1 --no-shuffle", tmp("x.npy"), tmp("y.npy"),
                         tmp("huge.st")), 1);
    snprintf(want, sizeof want, "on validation, the loss is NaN on samples 16 to 19 (batch 1 "
             "of 1) of %s", tmp("x.npy"));
    ck_assert_msg(strstr(err, want), "message: %s", err);
    free(err);
}
END_TEST

/* The example with a wrong backward: gradcheck must notice. */
static void bad_backward(cnnrt_ctx *ctx, int n)
{
    cnnrt_model_example.backward(ctx, n);
    ((double *)ctx->grads)[40] *= 1.001;   /* an element of D2.weight */
}

START_TEST(e2e_gradcheck)
{
    char *out;
    ck_assert_int_eq(run(&cnnrt_model_example, &out, NULL, "gradcheck"), 0);
    ck_assert_ptr_nonnull(strstr(out, "D2.bias"));
    ck_assert_ptr_nonnull(strstr(out, "ok: 67 elements of 4 tensors checked, 0 skipped, 0 tensors failed"));
    free(out);
    ck_assert_int_eq(run(&cnnrt_model_example_f32, &out, NULL, "gradcheck --seed 3"), 0);
    free(out);
    ck_assert_int_eq(run(&cnnrt_model_example_mse, &out, NULL, "gradcheck"), 0);
    free(out);
    ck_assert_int_eq(run(&cnnrt_model_example_drop, &out, NULL, "gradcheck --batch 16"), 0);
    free(out);
    ck_assert_int_eq(run(&cnnrt_model_example, NULL, NULL, "gradcheck --samples 5"), 0);

    cnnrt_model broken = cnnrt_model_example;
    broken.backward = bad_backward;
    ck_assert_int_eq(run(&broken, &out, NULL, "gradcheck"), 1);
    ck_assert_ptr_nonnull(strstr(out, "D2.weight"));
    ck_assert_ptr_nonnull(strstr(out, "FAIL"));
    ck_assert_ptr_nonnull(strstr(out, "1 element beyond tolerance (0 allowed)"));
    free(out);
    /* a looser tolerance lets it pass */
    ck_assert_int_eq(run(&broken, NULL, NULL, "gradcheck --tolerance 0.01"), 0);
    /* as does allowing one element in twenty to fail (D2.weight has 24) */
    ck_assert_int_eq(run(&broken, NULL, NULL, "gradcheck --max-failures 0.05"), 0);
    ck_assert_int_eq(run(&broken, NULL, NULL, "gradcheck --max-failures 0.04"), 1);
}
END_TEST

START_TEST(e2e_bench_summary_help)
{
    char *out, *err;
    ck_assert_int_eq(run(&cnnrt_model_example, &out, NULL,
                         "bench --steps 5 --batch 8 --threads 2"), 0);
    ck_assert_ptr_nonnull(strstr(out, "batch 8 of uint8 inputs, 2 threads, 5 steps"));
    ck_assert_ptr_nonnull(strstr(out, "ms/step"));
    ck_assert_ptr_nonnull(strstr(out, "GFLOP/s"));
    ck_assert_ptr_nonnull(strstr(out, "peak RSS"));
    free(out);
    ck_assert_int_eq(run(&cnnrt_model_example, &out, NULL, "summary"), 0);
    ck_assert_ptr_nonnull(strstr(out, "D1.weight"));
    ck_assert_ptr_nonnull(strstr(out, "67 parameters"));
    free(out);
    ck_assert_int_eq(run(&cnnrt_model_example, &out, NULL, "--help"), 0);
    ck_assert_ptr_nonnull(strstr(out, "model train"));
    free(out);
    ck_assert_int_eq(run(&cnnrt_model_example, &out, NULL, "eval --help"), 0);
    ck_assert_ptr_nonnull(strstr(out, "--weights"));
    free(out);
    ck_assert_int_eq(run(&cnnrt_model_example, NULL, &err, "train --data x --batch 0"), 2);
    ck_assert_ptr_nonnull(strstr(err, "model: error: --batch: expected an integer from 1 to 16"));
    free(err);
    cnnrt_model old = cnnrt_model_example;
    old.abi_version = 0;
    ck_assert_int_eq(run(&old, NULL, &err, "summary"), 1);
    ck_assert_ptr_nonnull(strstr(err, "abi_version"));
    free(err);
}
END_TEST

/* ---- robustness: every truncation refused, random damage never crashes ------------- */

/* In memory, each input in a block of its own size (so that the sanitizer
 * build catches a read past its end), with failures counted and asserted
 * once: a file and an assertion per case cost seconds. */
static unsigned char *exact_copy(const char *bytes, size_t n)
{
    unsigned char *c = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(c);
    memcpy(c, bytes, n);
    return c;
}

START_TEST(ckpt_truncations_and_damage)
{
    cnnrt_ctx a, b;
    ctx_new(&a, &cnnrt_model_example, CNNRT_ADAM, 1);
    ctx_new(&b, &cnnrt_model_example, CNNRT_ADAM, 2);
    ck_assert_int_eq(rt_ckpt_save(&a, tmp("good.st")), 0);
    size_t n;
    char *good = read_all(tmp("good.st"), &n);
    size_t loaded = 0, shortest = n;
    for (size_t len = 0; len < n; len++) {
        unsigned char *cut = exact_copy(good, len);
        if (rt_ckpt_load_buffer(&b, "cut.st", cut, len) != -1) {
            loaded++;
            shortest = len < shortest ? len : shortest;
        }
        free(cut);
    }
    ck_assert_msg(loaded == 0, "%zu cuts of the %zu-byte checkpoint loaded, the shortest "
                  "%zu bytes", loaded, n, shortest);
    /* Damage within the header (or its length) gives a message or a load
     * of finite values, never a crash: the sanitizer build makes this bite. */
    size_t hlen = (size_t)rt_le64((const unsigned char *)good) + 8;
    cnnrt_rng r;
    cnnrt_rng_seed(&r, 77, 0);
    int nonfinite = 0;
    quiet();
    for (int i = 0; i < 3000; i++) {
        unsigned char *bad = exact_copy(good, n);
        int flips = 1 + (int)cnnrt_rng_below(&r, 3);
        for (int k = 0; k < flips; k++)
            bad[cnnrt_rng_below(&r, hlen)] = (unsigned char)cnnrt_rng_below(&r, 256);
        if (rt_ckpt_load_buffer(&b, "bad.st", bad, n) == 0)
            for (int j = 0; j < 67; j++)
                nonfinite += !isfinite(((double *)b.params)[j]);
        free(bad);
    }
    unquiet();
    ck_assert_msg(nonfinite == 0, "damaged checkpoints loaded %d non-finite values", nonfinite);
    free(good);
    cnnrt_ctx_free(&a);
    cnnrt_ctx_free(&b);
}
END_TEST

/* An rt_file over bytes in memory, as rt_file_open would give it. */
static int parse_memory(const char *name, const unsigned char *bytes, size_t n, rt_array *a)
{
    rt_file f = {.path = name, .data = bytes, .size = n};
    return rt_array_parse(&f, a);
}

START_TEST(npy_truncations_and_damage)
{
    float v[12] = {0};
    int64_t dims[2] = {3, 4};
    write_f32(tmp("good.npy"), 2, dims, v);
    size_t n;
    char *good = read_all(tmp("good.npy"), &n);
    rt_array a;
    size_t accepted = 0, shortest = n;
    for (size_t len = 1; len < n; len++) {   /* rt_file_open refuses an empty file */
        unsigned char *cut = exact_copy(good, len);
        if (parse_memory("cut.npy", cut, len, &a) != -1) {
            accepted++;
            shortest = len < shortest ? len : shortest;
        }
        free(cut);
    }
    ck_assert_msg(accepted == 0, "%zu cuts of the %zu-byte .npy file were accepted, the "
                  "shortest %zu bytes", accepted, n, shortest);
    cnnrt_rng r;
    cnnrt_rng_seed(&r, 78, 0);
    int outside = 0;
    for (int i = 0; i < 3000; i++) {
        unsigned char *bad = exact_copy(good, n);
        bad[cnnrt_rng_below(&r, 128)] = (unsigned char)cnnrt_rng_below(&r, 256);
        /* whatever it says, it fits in the file */
        if (parse_memory("bad.npy", bad, n, &a) == 0)
            outside += a.base + (size_t)a.n * a.stride > bad + n;
        free(bad);
    }
    ck_assert_msg(outside == 0, "%d damaged .npy files were read as reaching past their end",
                  outside);
    free(good);
}
END_TEST

/* ---- the suite --------------------------------------------------------------------------- */

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Check kills a test that runs longer than its time limit (4 s unless set),
 * which made verdicts depend on the machine's load. The limit here only
 * catches a hang: 300 s, some 200 times the slowest test (1.5 s under the
 * sanitizers on the 2-core machine at a load average of 5). Tests keep
 * their loops cheap instead (one assertion over counted failures, damaged
 * files in memory). */
enum { HANG_SECONDS = 300 };

static TCase *tcase_new(const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, HANG_SECONDS);
    return tc;
}

/* ---- gzip-compressed data files ------------------------------------------------- */

/* n bytes of src as one gzip member into out (cap bytes); its size. */
static size_t gzip_bytes(const void *src, size_t n, unsigned char *out, size_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
                     Z_OK);
    z.next_in = (Bytef *)(uintptr_t)src;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t len = z.total_out;
    deflateEnd(&z);
    return len;
}

/* The file name (in the temporary directory) gzipped into name.gz. */
static void gzip_file(const char *name)
{
    size_t n, cap;
    char *data = read_all(tmp(name), &n);
    ck_assert_ptr_nonnull(data);
    cap = n + n / 2 + 1024;
    unsigned char *gz = malloc(cap);
    size_t len = gzip_bytes(data, n, gz, cap);
    char gzname[256];
    snprintf(gzname, sizeof gzname, "%s.gz", name);
    write_bytes(tmp(gzname), gz, len);
    free(gz);
    free(data);
}

/* rt_file_open's verdict on a file of these bytes. */
static int open_bytes(const char *name, const void *data, size_t n)
{
    rt_file f;
    write_bytes(tmp(name), data, n);
    int rc = rt_file_open(&f, tmp(name));
    rt_file_close(&f);
    return rc;
}

#define assert_msg(...) assert_msg_(__FILE__, __LINE__, __VA_ARGS__)
/* The recorded message is exactly the formatted one. */
static void assert_msg_(const char *file, int line, const char *fmt, ...) RT_PRINTF(3, 4);
static void assert_msg_(const char *file, int line, const char *fmt, ...)
{
    char want[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(want, sizeof want, fmt, ap);
    va_end(ap);
    if (strcmp(rt_errmsg(), want) != 0)
        ck_abort_msg("%s:%d: error message\n  \"%s\"\nexpected\n  \"%s\"", file, line,
                     rt_errmsg(), want);
}

START_TEST(gzip_each_format)
{
    /* .npy: inputs and labels, both compressed, read as the plain files */
    write_blobs(30, "x.npy", "y.npy");
    gzip_file("x.npy");
    gzip_file("y.npy");
    const cnnrt_model *m = &cnnrt_model_example;
    rt_data plain, gz;
    ck_assert_int_eq(rt_data_load(&plain, m, tmp("x.npy"), tmp("y.npy"), true, NULL), 0);
    ck_assert_int_eq(rt_data_load(&gz, m, tmp("x.npy.gz"), tmp("y.npy.gz"), true, NULL), 0);
    ck_assert(gz.xf.gzip && gz.yf.gzip && !plain.xf.gzip);
    ck_assert_uint_eq(gz.xf.size, plain.xf.size);
    ck_assert(memcmp(gz.xf.data, plain.xf.data, plain.xf.size) == 0);
    ck_assert(memcmp(gz.yf.data, plain.yf.data, plain.yf.size) == 0);
    ck_assert_int_eq(gz.n, 30);
    rt_data_free(&plain);
    rt_data_free(&gz);

    /* IDX, by its magic once decompressed, whatever the name */
    unsigned char img[16 + 2 * 3 * 4] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4};
    img[16 + 5] = 200;
    write_bytes(tmp("imgs-idx3-ubyte"), img, sizeof img);
    gzip_file("imgs-idx3-ubyte");
    rename(tmp("imgs-idx3-ubyte.gz"), tmp("no-suffix"));
    rt_file f;
    rt_array a;
    ck_assert_int_eq(parse_file(tmp("no-suffix"), &f, &a), 0);
    ck_assert_str_eq(a.format, "IDX");
    ck_assert_int_eq(a.dims[2], 4);
    ck_assert_int_eq(a.base[5], 200);
    rt_file_close(&f);

    /* a CIFAR-10 batch, its labels with it */
    enum { REC = 3073 };
    unsigned char *buf = calloc(2, REC);
    buf[0] = 3;
    buf[REC] = 9;
    buf[REC + 1] = 77;
    write_bytes(tmp("data_batch_1.bin"), buf, 2 * REC);
    free(buf);
    gzip_file("data_batch_1.bin");
    cnnrt_model m10 = image_model(32, 32, 3, 10);
    rt_data d;
    ck_assert_int_eq(rt_data_load(&d, &m10, tmp("data_batch_1.bin.gz"), NULL, true, NULL), 0);
    ck_assert_str_eq(d.x.format, "CIFAR-10");
    ck_assert_int_eq(d.n, 2);
    int64_t idx[2] = {0, 1};
    int32_t labels[2];
    rt_data_targets(&d, &m10, idx, 2, labels, NULL);
    ck_assert_int_eq(labels[0], 3);
    ck_assert_int_eq(labels[1], 9);
    ck_assert_int_eq(d.x.base[d.x.stride], 77);
    rt_data_free(&d);
}
END_TEST

START_TEST(gzip_damaged)
{
    enum { N = 5000 };
    unsigned char plain[N], gz[2 * N + 64], bad[4 * N];
    for (int i = 0; i < N; i++)
        plain[i] = (unsigned char)(i * i % 7 + i / 100);
    size_t len = gzip_bytes(plain, N, gz, sizeof gz);
    const char *p = tmp("d.gz");

    /* cut inside the trailer, the deflate data, the header */
    ck_assert_int_eq(open_bytes("d.gz", gz, len - 1), -1);
    assert_msg("%s: truncated gzip file: the compressed data ends before the gzip stream "
               "does (after %d decompressed bytes)", p, N);
    ck_assert_int_eq(open_bytes("d.gz", gz, len / 2), -1);
    assert_err("d.gz: truncated gzip file: the compressed data ends before the gzip stream "
               "does (after ");
    ck_assert_int_eq(open_bytes("d.gz", gz, 5), -1);
    assert_msg("%s: truncated gzip file: the compressed data ends before the gzip stream "
               "does (after 0 decompressed bytes)", p);

    /* the trailer: CRC-32, then ISIZE */
    memcpy(bad, gz, len);
    bad[len - 8] ^= 1;
    ck_assert_int_eq(open_bytes("d.gz", bad, len), -1);
    assert_msg("%s: damaged gzip file: the CRC-32 of the decompressed data does not match "
               "the one in the gzip trailer", p);
    memcpy(bad, gz, len);
    bad[len - 4] ^= 1;
    ck_assert_int_eq(open_bytes("d.gz", bad, len), -1);
    assert_msg("%s: damaged gzip file: the decompressed size does not match the size in "
               "the gzip trailer (ISIZE)", p);
    /* the deflate data: a block of the reserved type 3 */
    memcpy(bad, gz, len);
    bad[10] = 0x07;
    ck_assert_int_eq(open_bytes("d.gz", bad, len), -1);
    assert_msg("%s: damaged gzip file: invalid block type (zlib) near compressed byte 11", p);

    /* bytes after the member: garbage, zeros */
    memcpy(bad, gz, len);
    memcpy(bad + len, "junk", 4);
    ck_assert_int_eq(open_bytes("d.gz", bad, len + 4), -1);
    assert_msg("%s: 4 bytes after the end of the gzip data (from byte %zu) that are not "
               "another gzip member; expected the end of the file", p, len);
    memset(bad + len, 0, 512);
    ck_assert_int_eq(open_bytes("d.gz", bad, len + 512), -1);
    assert_msg("%s: 512 bytes after the end of the gzip data (from byte %zu) that are not "
               "another gzip member; expected the end of the file", p, len);

    /* two members: their contents one after the other; a damaged second
     * one is named */
    size_t len2 = gzip_bytes("tail", 4, bad + len, sizeof bad - len);
    memcpy(bad, gz, len);
    rt_file f;
    write_bytes(p, bad, len + len2);
    ck_assert_int_eq(rt_file_open(&f, p), 0);
    ck_assert_uint_eq(f.size, N + 4);
    ck_assert(memcmp(f.data, plain, N) == 0 && memcmp(f.data + N, "tail", 4) == 0);
    rt_file_close(&f);
    bad[len + len2 - 8] ^= 0x80;
    ck_assert_int_eq(open_bytes("d.gz", bad, len + len2), -1);
    assert_msg("%s: damaged gzip file: the CRC-32 of the decompressed data does not match "
               "the one in the gzip trailer (gzip member 2, from byte %zu)", p, len);
    bad[len + len2 - 8] ^= 0x80;
    ck_assert_int_eq(open_bytes("d.gz", bad, len + len2 - 3), -1);
    assert_msg("%s: truncated gzip file: the compressed data ends before the gzip stream "
               "does (after %d decompressed bytes) (gzip member 2, from byte %zu)", p, N + 4,
               len);

    /* nothing inside */
    len2 = gzip_bytes("", 0, bad, sizeof bad);
    ck_assert_int_eq(open_bytes("d.gz", bad, len2), -1);
    assert_msg("%s: the file is empty once decompressed (gzip)", p);
}
END_TEST

START_TEST(gzip_bomb)
{
    /* the bound, lowered for the test: 1 MiB passes, a byte more does not */
    size_t saved = rt_gzip_limit;
    rt_gzip_limit = (size_t)1 << 20;
    unsigned char *zeros = calloc(1, (1 << 20) + 1), gz[8192];
    size_t len = gzip_bytes(zeros, 1 << 20, gz, sizeof gz);
    rt_file f;
    write_bytes(tmp("z.gz"), gz, len);
    ck_assert_int_eq(rt_file_open(&f, tmp("z.gz")), 0);
    ck_assert_uint_eq(f.size, 1 << 20);
    rt_file_close(&f);
    len = gzip_bytes(zeros, (1 << 20) + 1, gz, sizeof gz);
    ck_assert_int_eq(open_bytes("z.gz", gz, len), -1);
    assert_msg("%s: decompresses to more than 1 MiB, the limit for a gzip-compressed file "
               "(a guard against decompression bombs); decompress it first (gzip -dk) if "
               "it is meant to be that large", tmp("z.gz"));
    rt_gzip_limit = saved;
    free(zeros);
}
END_TEST

/* ---- images ------------------------------------------------------------------------ */

static void put_be32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (24 - 8 * i));
}

/* Appends a PNG chunk with its length and CRC to buf at *len. */
static void png_chunk(unsigned char *buf, size_t *len, const char *type, const void *data,
                      size_t n)
{
    put_be32(buf + *len, (uint32_t)n);
    memcpy(buf + *len + 4, type, 4);
    if (n)
        memcpy(buf + *len + 8, data, n);
    put_be32(buf + *len + 8 + n, (uint32_t)crc32(0, buf + *len + 4, (uInt)(n + 4)));
    *len += 12 + n;
}

/* A PNG made by hand, of any colour type and depth: raw holds the
 * scanlines, each after its filter byte (0). Returns the file's size. */
static size_t make_png(unsigned char *buf, uint32_t w, uint32_t h, int depth, int type,
                       int interlace, const void *raw, size_t raw_len, const void *plte,
                       size_t plte_len, const void *trns, size_t trns_len)
{
    size_t len = 8;
    memcpy(buf, "\x89PNG\r\n\x1a\n", 8);
    unsigned char ihdr[13];
    put_be32(ihdr, w);
    put_be32(ihdr + 4, h);
    ihdr[8] = (unsigned char)depth;
    ihdr[9] = (unsigned char)type;
    ihdr[10] = ihdr[11] = 0;
    ihdr[12] = (unsigned char)interlace;
    png_chunk(buf, &len, "IHDR", ihdr, 13);
    if (plte)
        png_chunk(buf, &len, "PLTE", plte, plte_len);
    if (trns)
        png_chunk(buf, &len, "tRNS", trns, trns_len);
    unsigned char z[4096];
    uLongf zlen = sizeof z;
    ck_assert_int_eq(compress(z, &zlen, raw, (uLong)raw_len), Z_OK);
    png_chunk(buf, &len, "IDAT", z, zlen);
    png_chunk(buf, &len, "IEND", NULL, 0);
    return len;
}

/* Decodes a file of the temporary directory; 0 or -1. */
static int decode(const char *name, rt_image *img)
{
    rt_file f;
    memset(img, 0, sizeof *img);
    if (rt_file_open(&f, tmp(name)) != 0)
        return -1;
    int rc = rt_image_decode(tmp(name), f.data, f.size, img);
    rt_file_close(&f);
    return rc;
}

#define assert_pixels(img, H, W, C, ...) do {                                   \
        const unsigned char want_[] = {__VA_ARGS__};                             \
        ck_assert_int_eq((img)->h, H);                                           \
        ck_assert_int_eq((img)->w, W);                                           \
        ck_assert_int_eq((img)->c, C);                                           \
        ck_assert_uint_eq(sizeof want_, (size_t)(H) * (W) * (C));                \
        ck_assert_mem_eq((img)->px, want_, sizeof want_);                        \
    } while (0)

/* Writes a hand-made PNG and decodes it into img. */
#define png_case(img, w, h, depth, type, interlace, raw, plte, trns) do {        \
        unsigned char file_[8192];                                                \
        size_t n_ = make_png(file_, w, h, depth, type, interlace, raw, sizeof raw, \
                             plte, (plte) ? sizeof(plte) - 1 : 0, trns,          \
                             (trns) ? sizeof(trns) - 1 : 0);                     \
        write_bytes(tmp("c.png"), file_, n_);                                     \
        ck_assert_int_eq(decode("c.png", img), 0);                                \
    } while (0)

START_TEST(image_png_kinds)
{
    rt_image img;
    static const char none[] = "";
    /* gray 8, 1, 4 and 16 bits */
    png_case(&img, 3, 1, 8, 0, 0, "\0\x00\x80\xff", NULL, NULL);
    assert_pixels(&img, 1, 3, 1, 0, 128, 255);
    rt_image_free(&img);
    png_case(&img, 8, 1, 1, 0, 0, "\0\xa5", NULL, NULL);
    assert_pixels(&img, 1, 8, 1, 255, 0, 255, 0, 0, 255, 0, 255);
    rt_image_free(&img);
    png_case(&img, 4, 1, 4, 0, 0, "\0\x0f\x5a", NULL, NULL);
    assert_pixels(&img, 1, 4, 1, 0, 255, 85, 170);
    rt_image_free(&img);
    /* 16 bits to 8: round(v * 255 / 65535) */
    png_case(&img, 4, 1, 16, 0, 0, "\0\x12\x34\xff\xff\x00\x80\x00\x81", NULL, NULL);
    assert_pixels(&img, 1, 4, 1, 18, 255, 0, 1);
    rt_image_free(&img);
    png_case(&img, 1, 1, 16, 2, 0, "\0\x12\x34\x56\x78\x9a\xbc", NULL, NULL);
    assert_pixels(&img, 1, 1, 3, 18, 86, 154);
    rt_image_free(&img);
    /* alpha dropped: gray + alpha, RGBA, gray with tRNS */
    png_case(&img, 2, 1, 8, 4, 0, "\0\x10\x00\x30\xff", NULL, NULL);
    assert_pixels(&img, 1, 2, 1, 16, 48);
    rt_image_free(&img);
    png_case(&img, 1, 2, 8, 6, 0, "\0\x01\x02\x03\x00\0\x05\x06\x07\x80", NULL, NULL);
    assert_pixels(&img, 2, 1, 3, 1, 2, 3, 5, 6, 7);
    rt_image_free(&img);
    png_case(&img, 2, 1, 8, 0, 0, "\0\x05\x06", NULL, "\x00\x05");
    assert_pixels(&img, 1, 2, 1, 5, 6);
    rt_image_free(&img);
    /* palette (8 and 2 bits), with transparency: the palette's colours */
    png_case(&img, 3, 1, 8, 3, 0, "\0\x02\x00\x01", "\x0a\x0b\x0c\x14\x15\x16\x1e\x1f\x20",
             "\x00\x80");
    assert_pixels(&img, 1, 3, 3, 30, 31, 32, 10, 11, 12, 20, 21, 22);
    rt_image_free(&img);
    png_case(&img, 4, 1, 2, 3, 0, "\0\x1b", "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b",
             NULL);
    assert_pixels(&img, 1, 4, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11);
    rt_image_free(&img);
    /* Adam7: 3 x 3 in passes 1 (0,0), 4 (2,0), 5 (0,2 2,2), 6 (1,0 1,2),
     * 7 (row 1) */
    png_case(&img, 3, 3, 8, 0, 1,
             "\0\x01" "\0\x03" "\0\x07\x09" "\0\x02" "\0\x08" "\0\x04\x05\x06", NULL, NULL);
    assert_pixels(&img, 3, 3, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9);
    rt_image_free(&img);
    (void)none;
}
END_TEST

START_TEST(image_channels_and_resize)
{
    rt_image img = {1, 4, 3, malloc(12)};
    const unsigned char rgb[12] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30};
    memcpy(img.px, rgb, 12);
    /* PIL's convert("L"): (19595 R + 38470 G + 7471 B + 32768) >> 16 */
    ck_assert_int_eq(rt_image_to_channels(&img, 1, "x"), 0);
    assert_pixels(&img, 1, 4, 1, 76, 150, 29, 18);
    ck_assert_int_eq(rt_image_to_channels(&img, 3, "x"), 0);
    assert_pixels(&img, 1, 4, 3, 76, 76, 76, 150, 150, 150, 29, 29, 29, 18, 18, 18);
    rt_image_free(&img);

    /* align_corners=False: down 4 -> 2 averages pairs (halves round up) */
    img = (rt_image){4, 4, 1, malloc(16)};
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            img.px[y * 4 + x] = (unsigned char)(10 * y + x);
    unsigned char out[9];
    rt_image_resize(&img, 2, 2, out);
    ck_assert_mem_eq(out, "\x06\x08\x1a\x1c", 4);
    rt_image_free(&img);
    /* up 2 -> 3: source 0, 0.5, 1.17 (the last clamped to the edge), as
     * F.interpolate([0, 90], size=3, mode="bilinear") */
    img = (rt_image){1, 2, 1, malloc(2)};
    img.px[0] = 0;
    img.px[1] = 90;
    rt_image_resize(&img, 1, 3, out);
    ck_assert_mem_eq(out, "\x00\x2d\x5a", 3);
    rt_image_free(&img);
}
END_TEST

/* A JPEG of the given colour space written with libjpeg (CMYK: 4 components). */
static void write_cmyk_jpeg(const char *path)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr err;
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ci.err = jpeg_std_error(&err);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = 8;
    ci.image_height = 8;
    ci.input_components = 4;
    ci.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&ci);
    jpeg_start_compress(&ci, TRUE);
    unsigned char row[32] = {0};
    JSAMPROW r = row;
    while (ci.next_scanline < 8)
        jpeg_write_scanlines(&ci, &r, 1);
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    fclose(f);
}

/* A valid progressive 8 x 8 gray JPEG of 631 scans: the DC, then each of
 * the 63 AC coefficients alone, in ten bits of successive approximation. */
static void write_many_scans_jpeg(const char *path)
{
    static jpeg_scan_info scans[1 + 63 * 10];
    int n = 0;
    scans[n++] = (jpeg_scan_info){.comps_in_scan = 1, .Ss = 0, .Se = 0, .Ah = 0, .Al = 0};
    for (int k = 1; k < 64; k++)
        for (int al = 9; al >= 0; al--)
            scans[n++] = (jpeg_scan_info){.comps_in_scan = 1, .Ss = k, .Se = k,
                                          .Ah = al == 9 ? 0 : al + 1, .Al = al};
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr err;
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ci.err = jpeg_std_error(&err);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = 8;
    ci.image_height = 8;
    ci.input_components = 1;
    ci.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&ci);
    ci.scan_info = scans;
    ci.num_scans = n;
    jpeg_start_compress(&ci, TRUE);
    unsigned char row[8];
    JSAMPROW r = row;
    while (ci.next_scanline < 8) {
        for (int x = 0; x < 8; x++)
            row[x] = (unsigned char)(31 * x + 17 * ci.next_scanline);
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    fclose(f);
}

START_TEST(image_jpeg)
{
    unsigned char flat[8 * 16 * 3];
    memset(flat, 100, sizeof flat);
    ck_assert_int_eq(rt_jpeg_write(tmp("g.jpg"), 8, 16, 1, flat, 90), 0);
    ck_assert_int_eq(rt_jpeg_write(tmp("c.jpg"), 8, 16, 3, flat, 90), 0);
    rt_image img;
    ck_assert_int_eq(decode("g.jpg", &img), 0);
    ck_assert(img.h == 8 && img.w == 16 && img.c == 1);
    ck_assert_int_le(abs(img.px[77] - 100), 1);
    rt_image_free(&img);
    ck_assert_int_eq(decode("c.jpg", &img), 0);
    ck_assert(img.h == 8 && img.w == 16 && img.c == 3);
    ck_assert_int_le(abs(img.px[200] - 100), 1);
    rt_image_free(&img);

    /* cut short: libjpeg's warning is an error here */
    size_t n;
    char *data = read_all(tmp("c.jpg"), &n);
    write_bytes(tmp("cut.jpg"), data, n / 2);
    ck_assert_int_eq(decode("cut.jpg", &img), -1);
    assert_msg("%s: broken JPEG image: Premature end of JPEG file", tmp("cut.jpg"));
    /* a marker where none may be */
    data[2] = (char)0xff;
    data[3] = (char)0xd9;
    write_bytes(tmp("eoi.jpg"), data, n);
    ck_assert_int_eq(decode("eoi.jpg", &img), -1);
    assert_err("eoi.jpg: broken JPEG image: ");
    free(data);
    write_cmyk_jpeg(tmp("cmyk.jpg"));
    ck_assert_int_eq(decode("cmyk.jpg", &img), -1);
    assert_msg("%s: a JPEG image in CMYK with 4 components; expected grayscale or colour "
               "(YCbCr or RGB)", tmp("cmyk.jpg"));
    /* a few bytes a scan: a small file of many scans takes long to decode
     * at a larger size, so their number is bounded */
    write_many_scans_jpeg(tmp("scans.jpg"));
    ck_assert_int_eq(decode("scans.jpg", &img), -1);
    assert_msg("%s: broken JPEG image: more than 500 scans", tmp("scans.jpg"));
}
END_TEST

START_TEST(image_broken)
{
    unsigned char file[8192];
    size_t n = make_png(file, 2, 2, 8, 0, 0, "\0\x01\x02\0\x03\x04", 6, NULL, 0, NULL, 0);
    rt_image img;
    /* without IEND, and cut inside IDAT */
    write_bytes(tmp("b.png"), file, n - 12);
    ck_assert_int_eq(decode("b.png", &img), -1);
    assert_msg("%s: broken PNG image: truncated: the file ends before the image does",
               tmp("b.png"));
    write_bytes(tmp("b.png"), file, n - 16);
    ck_assert_int_eq(decode("b.png", &img), -1);
    assert_msg("%s: broken PNG image: truncated: the file ends before the image does",
               tmp("b.png"));
    /* the image data's CRC */
    file[n - 12 - 1] ^= 1;
    write_bytes(tmp("b.png"), file, n);
    ck_assert_int_eq(decode("b.png", &img), -1);
    assert_msg("%s: broken PNG image: IDAT: CRC error", tmp("b.png"));
    /* a header of width 0 */
    n = make_png(file, 0, 2, 8, 0, 0, "\0", 1, NULL, 0, NULL, 0);
    write_bytes(tmp("b.png"), file, n);
    ck_assert_int_eq(decode("b.png", &img), -1);
    assert_err("b.png: broken PNG image: ");
    /* larger than the bound */
    n = make_png(file, 40000, 1, 8, 0, 0, "\0", 1, NULL, 0, NULL, 0);
    write_bytes(tmp("b.png"), file, n);
    ck_assert_int_eq(decode("b.png", &img), -1);
    assert_msg("%s: a PNG image of 1 x 40000 pixels (H x W); the largest image read has "
               "32768 pixels a side and 67108864 pixels in all", tmp("b.png"));
    /* neither */
    write_bytes(tmp("b.png"), "hello, world", 12);
    ck_assert_int_eq(decode("b.png", &img), -1);
    assert_msg("%s: not a PNG or JPEG image: it starts with 68 65 6c 6c; expected "
               "89 50 4e 47 (PNG) or ff d8 ff (JPEG)", tmp("b.png"));
}
END_TEST

/* The entries of tmp, besides . and .. */
static int tmp_entries(void)
{
    DIR *d = opendir(tmpdir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    if (d)
        closedir(d);
    return n;
}

START_TEST(image_write_refused)
{
    /* what libpng and libjpeg say of an image they cannot write, and no
     * file, not even a temporary one, left behind */
    unsigned char px[4] = {0};
    int before = tmp_entries();
    ck_assert_int_eq(rt_png_write(tmp("w.png"), 2, 0, 1, px), -1);
    assert_msg("%s: cannot write the PNG image: Invalid IHDR data", tmp("w.png"));
    ck_assert_int_eq(rt_jpeg_write(tmp("w.jpg"), 0, 2, 1, px, 90), -1);
    assert_msg("%s: cannot write the JPEG image: Empty JPEG image (DNL not supported)",
               tmp("w.jpg"));
    ck_assert_int_eq(tmp_entries(), before);
}
END_TEST

/* ---- folders of images ------------------------------------------------------------------ */

/* tmp/path, with the folders on the way made. */
static const char *make_path(const char *path)
{
    static char buf[600];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, path);
    for (char *p = buf + strlen(tmpdir) + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0777);
            *p = '/';
        }
    return buf;
}

/* A 2 x 2 gray image, every pixel v, at tmp/path. */
static void gray_png(const char *path, int v)
{
    unsigned char px[4];
    memset(px, v, 4);
    ck_assert_int_eq(rt_png_write(make_path(path), 2, 2, 1, px), 0);
}

static int load_folder(rt_data *d, const cnnrt_model *m, const char *dir, bool resize,
                       int threads)
{
    rt_data_opts o = {resize, threads};
    return rt_data_load(d, m, tmp(dir), NULL, true, &o);
}

START_TEST(folder_order_and_labels)
{
    cnnrt_model m = image_model(2, 2, 1, 3);
    /* sorted(os.walk(class)): folder paths as strings ("s-t" before "s/u"),
     * then names; hidden entries, other files, files at the top skipped */
    gray_png("f/b/z.PNG", 2);
    gray_png("f/b/a.png", 1);
    gray_png("f/b/s/u/x.png", 4);
    gray_png("f/b/s-t/x.png", 3);
    gray_png("f/b/.hidden.png", 99);
    write_bytes(make_path("f/b/notes.txt"), "x", 1);
    gray_png("f/a/1.png", 0);
    gray_png("f/c/only.jpg.png", 5);
    gray_png("f/.git/x.png", 99);
    gray_png("f/top.png", 99);
    rt_data d;
    ck_assert_int_eq(load_folder(&d, &m, "f", false, 1), 0);
    ck_assert(d.folder && d.has_y && d.y_is_labels);
    ck_assert_int_eq(d.n, 6);
    ck_assert_int_eq(d.nclasses, 3);
    ck_assert_str_eq(d.classes[2], "c");
    static const int want_px[6] = {0, 1, 2, 3, 4, 5}, want_label[6] = {0, 1, 1, 1, 1, 2};
    int64_t idx[6] = {0, 1, 2, 3, 4, 5};
    int32_t labels[6];
    rt_data_targets(&d, &m, idx, 6, labels, NULL);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(d.pixels[4 * i + 3], want_px[i]);
        ck_assert_int_eq(labels[i], want_label[i]);
    }
    ck_assert(rt_data_bytes(&d, &m) == false);   /* the example has no byte step */
    uint8_t bytes[8];
    int64_t two[2] = {5, 0};
    rt_data_input_bytes(&d, &m, two, 2, bytes, NULL);
    ck_assert_mem_eq(bytes, "\x05\x05\x05\x05\x00\x00\x00\x00", 8);
    rt_data_free(&d);

    /* gray into RGB: the level three times */
    cnnrt_model m3 = image_model(2, 2, 3, 3);
    ck_assert_int_eq(load_folder(&d, &m3, "f", false, 1), 0);
    ck_assert_int_eq(d.x.dims[3], 3);
    ck_assert_int_eq(d.pixels[12 * 5 + 11], 5);
    rt_data_free(&d);
}
END_TEST

START_TEST(folder_threads_and_first_broken)
{
    cnnrt_model m = image_model(2, 2, 1, 3);
    char name[64];
    for (int i = 0; i < 60; i++) {
        snprintf(name, sizeof name, "f/%c/%02d.png", "abc"[i % 3], i);
        gray_png(name, i);
    }
    rt_data one, four;
    ck_assert_int_eq(load_folder(&one, &m, "f", false, 1), 0);
    ck_assert_int_eq(load_folder(&four, &m, "f", false, 4), 0);
    ck_assert_mem_eq(one.pixels, four.pixels, 60 * 4);
    rt_data_free(&one);
    rt_data_free(&four);
    /* two broken images: the first in the folder's order is named, on any
     * number of threads */
    write_bytes(make_path("f/c/59.png"), "not a png", 9);
    write_bytes(make_path("f/a/03.png"), "\x89PNG\r\n\x1a\n", 8);
    for (int t = 1; t <= 4; t++) {
        ck_assert_int_eq(load_folder(&one, &m, "f", false, t), -1);
        assert_msg("%s/a/03.png: broken PNG image: truncated: the file ends before the "
                   "image does", tmp("f"));
    }
}
END_TEST

START_TEST(folder_sizes)
{
    cnnrt_model m = image_model(2, 2, 1, 2);
    gray_png("f/a/1.png", 10);
    unsigned char px[16];
    for (int i = 0; i < 16; i++)
        px[i] = (unsigned char)(10 * (i / 4) + i % 4);
    ck_assert_int_eq(rt_png_write(make_path("f/b/big.png"), 4, 4, 1, px), 0);
    rt_data d;
    ck_assert_int_eq(load_folder(&d, &m, "f", false, 1), -1);
    assert_msg("%s/b/big.png: a 4 x 4 image (H x W); the Input of example is 2 x 2 (give "
               "--resize to scale the images to it)", tmp("f"));
    ck_assert_int_eq(load_folder(&d, &m, "f", true, 2), 0);
    ck_assert_mem_eq(d.pixels + 4, "\x06\x08\x1a\x1c", 4);
    ck_assert_mem_eq(d.pixels, "\x0a\x0a\x0a\x0a", 4);
    rt_data_free(&d);
    /* an RGB image into a gray Input: luma */
    unsigned char rgb[12] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30};
    ck_assert_int_eq(rt_png_write(make_path("f/b/big.png"), 2, 2, 3, rgb), 0);
    ck_assert_int_eq(load_folder(&d, &m, "f", false, 1), 0);
    ck_assert_mem_eq(d.pixels + 4, "\x4c\x96\x1d\x12", 4);
    rt_data_free(&d);
}
END_TEST

START_TEST(folder_refused)
{
    cnnrt_model m = image_model(2, 2, 1, 3);
    rt_data d;
    char f[512];
    snprintf(f, sizeof f, "%s", tmp("f"));
    mkdir(f, 0777);
    ck_assert_int_eq(load_folder(&d, &m, "f", false, 1), -1);
    assert_msg("%s: holds no class folders; expected one subfolder of PNG or JPEG images "
               "per class", f);
    gray_png("f/a/1.png", 1);
    ck_assert_int_eq(load_folder(&d, &m, "f", false, 1), -1);
    assert_msg("%s: holds one class folder (a); expected one per class, at least two", f);
    gray_png("f/b/1.png", 1);
    ck_assert_int_eq(load_folder(&d, &m, "f", false, 1), -1);
    assert_msg("%s: holds 2 class folders; example has 3 outputs, expected a class folder "
               "for each", f);
    mkdir(make_path("f/c"), 0777);
    write_bytes(make_path("f/c/readme.txt"), "x", 1);
    ck_assert_int_eq(load_folder(&d, &m, "f", false, 1), -1);
    assert_msg("%s/c: a class folder with no images; expected PNG or JPEG files (*.png, "
               "*.jpg, *.jpeg)", f);
    write_bytes(make_path("f/c/x.BMP"), "BM", 2);
    ck_assert_int_eq(load_folder(&d, &m, "f", false, 1), -1);
    assert_msg("%s/c/x.BMP: a BMP image (by its name), which is not read; expected PNG or "
               "JPEG (convert it, or move it out of the folder)", f);
    unlink(make_path("f/c/x.BMP"));
    gray_png("f/c/1.png", 1);
    ck_assert_int_eq(load_folder(&d, &m, "f", false, 1), 0);
    rt_data_free(&d);

    /* the model */
    ck_assert_int_eq(rt_data_load(&d, &cnnrt_model_example, f, NULL, true, NULL), -1);
    assert_msg("%s: a folder of images needs a network whose Input is an image (H x W x C); "
               "example takes vectors of 4", f);
    cnnrt_model m4 = image_model(1, 1, 4, 3);
    ck_assert_int_eq(rt_data_load(&d, &m4, f, NULL, true, NULL), -1);
    assert_msg("%s: a folder of images gives 1 channel (gray) or 3 (RGB); the Input of "
               "example has 4", f);
    /* labels besides */
    ck_assert_int_eq(rt_data_load(&d, &m, f, tmp("y.npy"), true, NULL), -1);
    assert_msg("%s: is a folder of images, labelled by its class folders; expected no "
               "labels file, found %s", f, tmp("y.npy"));
    /* a link to nothing, named as an image (ImageFolder fails on it too) */
    ck_assert_int_eq(symlink("nowhere.png", make_path("f/c/gone.png")), 0);
    ck_assert_int_eq(load_folder(&d, &m, "f", false, 1), -1);
    assert_msg("%s/c/gone.png: cannot read: No such file or directory", f);
    unlink(make_path("f/c/gone.png"));
    /* folders too deep */
    char deep[600] = "f/c";
    for (int i = 0; i < 65; i++)
        strcat(deep, "/d");
    char want[1200]; /* tmpdir, then deep */
    snprintf(want, sizeof want, "%s/%s", tmpdir, deep);
    strcat(deep, "/1.png");
    gray_png(deep, 1);
    ck_assert_int_eq(load_folder(&d, &m, "f", false, 1), -1);
    assert_msg("%s: folders nested more than 64 deep in a class folder", want);
    /* a link back up */
    ck_assert_int_eq(symlink("..", make_path("f/b/up")), 0);
    ck_assert_int_eq(load_folder(&d, &m, "f", false, 1), -1);
    assert_msg("%s/b/up: a symbolic link loop: the folder is one that contains it", f);
}
END_TEST

START_TEST(folder_unreadable)
{
    /* a folder that stat sees and opendir cannot open: here, for want of a
     * file descriptor (permissions would not stop root) */
    cnnrt_model m = image_model(2, 2, 1, 3);
    gray_png("f/a/1.png", 1);
    struct rlimit old, low;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    int next = dup(0);
    ck_assert_int_ge(next, 0);
    close(next);
    low = old;
    low.rlim_cur = (rlim_t)next;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    rt_data d;
    int rc = load_folder(&d, &m, "f", false, 1);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    ck_assert_int_eq(rc, -1);
    assert_msg("%s: cannot read the folder: Too many open files", tmp("f"));
}
END_TEST

START_TEST(folder_checks_of_a_command)
{
    cnnrt_model m = image_model(2, 2, 1, 3);
    gray_png("t/a/1.png", 1);
    gray_png("t/b/1.png", 1);
    gray_png("t/c/1.png", 1);
    gray_png("v/a/1.png", 1);
    gray_png("v/b/1.png", 1);
    gray_png("v/d/1.png", 1);
    rt_data t, v, x;
    ck_assert_int_eq(load_folder(&t, &m, "t", false, 1), 0);
    ck_assert_int_eq(load_folder(&v, &m, "v", false, 1), 0);
    ck_assert_int_eq(rt_data_check(&t, &v, false, false), RT_FAIL);
    assert_msg("%s: class 2 is 'd' where %s has 'c'; expected the same class folders for "
               "training and validation", tmp("v"), tmp("t"));
    ck_assert_int_eq(rt_data_check(&t, &t, false, true), RT_OK);
    ck_assert_int_eq(rt_data_check(&t, NULL, true, false), RT_USAGE);
    assert_msg("--val-split: %s is a folder of images, whose last samples are those of its "
               "last classes; give the validation images as --val-data DIR", tmp("t"));
    unsigned char pixels[6 * 4] = {0}, labels[6] = {0, 1, 2, 0, 1, 2};
    int64_t dims[3] = {6, 2, 2};
    write_u8(tmp("x.npy"), 3, dims, pixels);
    write_u8(tmp("y.npy"), 1, dims, labels);
    ck_assert_int_eq(rt_data_load(&x, &m, tmp("x.npy"), tmp("y.npy"), true, NULL), 0);
    ck_assert_int_eq(rt_data_check(&x, NULL, false, true), RT_USAGE);
    assert_msg("--resize scales the images of a folder; %s is a file (its samples are "
               "taken at their own size)", tmp("x.npy"));
    ck_assert_int_eq(rt_data_check(&x, &t, false, true), RT_OK);
    rt_data_free(&t);
    rt_data_free(&v);
    rt_data_free(&x);
}
END_TEST

/* Three classes of 2 x 2 gray images that a Dense layer tells apart: a
 * bright pixel in a different place for each. */
static void three_class_folder(const char *dir, int per_class)
{
    char path[256];
    cnnrt_rng r;
    cnnrt_rng_seed(&r, 11, 0);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < per_class; i++) {
            unsigned char px[4];
            for (int k = 0; k < 4; k++)
                px[k] = (unsigned char)(30 * cnnrt_rng_uniform(&r));
            px[c] = 220;
            snprintf(path, sizeof path, "%s/class%d/%03d.png", dir, c, i);
            ck_assert_int_eq(rt_png_write(make_path(path), 2, 2, 1, px), 0);
        }
}

START_TEST(e2e_image_folder)
{
    cnnrt_model m = image_model(2, 2, 1, 3);
    three_class_folder("train", 40);
    three_class_folder("val", 10);
    char *out, *err;
    ck_assert_int_eq(run(&m, NULL, &err, "train --data %s --val-data %s --epochs 30 --save %s",
                         tmp("train"), tmp("val"), tmp("w.st")), 0);
    ck_assert_ptr_nonnull(strstr(err, "epoch 30/30"));
    ck_assert_ptr_nonnull(strstr(err, "val_acc 100.00%"));
    free(err);
    ck_assert_int_eq(run(&m, &out, NULL, "eval --data %s --weights %s", tmp("val"),
                         tmp("w.st")), 0);
    ck_assert_ptr_nonnull(strstr(out, "accuracy 100.00% (30/30)"));
    free(out);
    ck_assert_int_eq(run(&m, &out, NULL, "predict --data %s --weights %s", tmp("val"),
                         tmp("w.st")), 0);
    ck_assert_str_eq(out, "0\n0\n0\n0\n0\n0\n0\n0\n0\n0\n1\n1\n1\n1\n1\n1\n1\n1\n1\n1\n"
                          "2\n2\n2\n2\n2\n2\n2\n2\n2\n2\n");
    free(out);
    ck_assert_int_eq(run(&m, NULL, &err, "train --data %s --labels %s", tmp("train"),
                         tmp("x")), 1);
    free(err);
    ck_assert_int_eq(run(&m, NULL, &err, "train --data %s --val-split 0.1", tmp("train")), 2);
    ck_assert_ptr_nonnull(strstr(err, "--val-split: "));
    free(err);
}
END_TEST

static Suite *runtime_suite(void)
{
    Suite *s = suite_create("runtime");
    TCase *tc;

    tc = tcase_new("rng");
    tcase_add_test(tc, rng_splitmix_reference);
    tcase_add_test(tc, rng_deterministic);
    tcase_add_test(tc, rng_distributions);
    tcase_add_test(tc, init_kinds_and_determinism);
    /* Check's default of 4 s is too little on a busy machine, under
     * sanitizers: every case gets a minute */
    suite_add_tcase(s, tc);

    tc = tcase_new("files");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, npy_good);
    tcase_add_loop_test(tc, npy_bad, 0, N(bad_npys));
    tcase_add_test(tc, npy_bad_preamble);
    tcase_add_test(tc, file_truncated_under_the_reader);
    tcase_add_test(tc, file_proc_read_to_its_end);
    tcase_add_test(tc, file_not_regular);
    tcase_add_test(tc, file_pipe_with_a_writer);
    tcase_add_test(tc, idx_good_and_bad);
    tcase_add_test(tc, cifar_records);
    tcase_add_test(tc, data_fit_vector);
    tcase_add_test(tc, data_fit_images);
    tcase_add_test(tc, data_mse_targets);
    tcase_add_test(tc, output_abort_and_commit);
    tcase_add_test(tc, output_through_devices_and_fifos);
    tcase_add_test(tc, output_follows_symlinks);
    tcase_add_test(tc, output_removes_stale_temporaries);
    tcase_add_test(tc, output_signal_removes_temporary);
    tcase_add_test(tc, output_same_file);
    suite_add_tcase(s, tc);

    tc = tcase_new("data formats");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, gzip_each_format);
    tcase_add_test(tc, gzip_damaged);
    tcase_add_test(tc, gzip_bomb);
    tcase_add_test(tc, image_png_kinds);
    tcase_add_test(tc, image_channels_and_resize);
    tcase_add_test(tc, image_jpeg);
    tcase_add_test(tc, image_broken);
    tcase_add_test(tc, image_write_refused);
    tcase_add_test(tc, folder_order_and_labels);
    tcase_add_test(tc, folder_threads_and_first_broken);
    tcase_add_test(tc, folder_sizes);
    tcase_add_test(tc, folder_refused);
    tcase_add_test(tc, folder_unreadable);
    tcase_add_test(tc, folder_checks_of_a_command);
    suite_add_tcase(s, tc);

    tc = tcase_new("recipe");
    tcase_add_test(tc, augment_crop_flip);
    tcase_add_test(tc, schedule_rates);
    tcase_add_test(tc, augment_needs_images);
    suite_add_tcase(s, tc);

    tc = tcase_new("json");
    tcase_add_test(tc, json_good);
    tcase_add_loop_test(tc, json_bad, 0, N(bad_jsons));
    suite_add_tcase(s, tc);

    tc = tcase_new("checkpoints");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, ckpt_round_trip);
    tcase_add_test(tc, ckpt_precisions);
    tcase_add_loop_test(tc, ckpt_bad, 0, N(bad_ckpts));
    tcase_add_test(tc, ckpt_bad_framing);
    tcase_add_loop_test(tc, ckpt_uncovered_bytes, 0, N(uncovereds));
    tcase_add_test(tc, ckpt_header_limit);
    tcase_add_loop_test(tc, ckpt_bad_metadata, 0, N(bad_metas));
    tcase_add_test(tc, ckpt_metadata_limits);
    tcase_add_test(tc, ckpt_from_memory);
    tcase_add_test(tc, ckpt_other_optimizer_state);
    tcase_add_test(tc, ckpt_bad_state);
    tcase_add_test(tc, ckpt_save_atomic_on_failure);
    suite_add_tcase(s, tc);

    tc = tcase_new("robustness");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, ckpt_truncations_and_damage);
    tcase_add_test(tc, npy_truncations_and_damage);
    suite_add_tcase(s, tc);

    tc = tcase_new("cli");
    tcase_add_test(tc, cli_good);
    tcase_add_loop_test(tc, cli_bad, 0, N(bad_clis));
    suite_add_tcase(s, tc);

    tc = tcase_new("end to end");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, e2e_train_eval_predict);
    tcase_add_test(tc, e2e_deterministic);
    tcase_add_test(tc, e2e_no_shuffle_first_batch);
    tcase_add_test(tc, e2e_steps_partial_batches_resume);
    tcase_add_test(tc, e2e_step_limit);
    tcase_add_test(tc, e2e_optimizers_and_losses);
    tcase_add_test(tc, e2e_bad_input_leaves_save);
    tcase_add_test(tc, e2e_divergence);
    tcase_add_test(tc, e2e_idx_or_cifar);
    tcase_add_test(tc, e2e_eval_nonfinite);
    tcase_add_test(tc, e2e_validation_nonfinite);
    tcase_add_test(tc, e2e_gradcheck);
    tcase_add_test(tc, e2e_bench_summary_help);
    tcase_add_test(tc, e2e_image_folder);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(runtime_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
