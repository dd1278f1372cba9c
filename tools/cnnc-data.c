/* cnnc-data: deterministic data sets for trying and testing trainers.
 *
 *   cnnc-data shapes --out DIR [--train N] [--test N] [--seed S]
 *       96x96 RGB images of 8 shapes (the seed question's input): uint8
 *       N x 96 x 96 x 3 and uint8 labels.
 *   cnnc-data blobs --out DIR [--train N] [--test N] [--seed S]
 *                   [--shape F|HxWxC] [--classes K] [--noise F]
 *       small separable sets: for a vector shape F, float32 N x F points
 *       around K random centres; for HxWxC, uint8 images, each class a fixed
 *       random pattern plus noise.
 *
 * Both write DIR/train-images.npy, train-labels.npy, test-images.npy and
 * test-labels.npy, each atomically. Same arguments, same bytes. Images are
 * uint8, or with --dtype float32 the floats x / 255 that a trainer makes of
 * those bytes (so the two train bitwise alike: tests/trainers.sh).
 *
 * With --format png or jpeg, images are written instead as folders of
 * image files, as a trainer's --data DIR reads them (runtime/folder.c):
 * DIR/train/CLASS/INDEX.png, CLASS named so that the sorted order of the
 * names is the order of the labels (shapes: 0-circle, 1-square, ...;
 * blobs: 0, 1, ... zero-padded), INDEX the sample's place in the .npy the
 * same arguments write, zero-padded.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>

#include "rt.h"

enum { SIDE = 96, SHAPE_CLASSES = 8 };

/* Class names, in label order (tag: shapes-classes). */
static const char *const shape_names[SHAPE_CLASSES] = {
    "circle", "square", "triangle", "cross", "horizontal bars", "vertical bars",
    "ring", "diagonal stripes",
};

/* Whether pixel offset (dx, dy) from the centre is inside shape c of
 * "radius" r. Stripes are w pixels wide. */
static int inside(int c, double dx, double dy, double r)
{
    double w = r / 4 > 2 ? r / 4 : 2;
    double ax = fabs(dx), ay = fabs(dy), d2 = dx * dx + dy * dy;
    int in_square = ax <= r && ay <= r;
    switch (c) {
    case 0: return d2 <= r * r;
    case 1: return ax <= 0.8 * r && ay <= 0.8 * r;
    case 2: return dy >= -r && dy <= r && ax <= (dy + r) / 2;
    case 3: return (ax <= r / 4 && ay <= r) || (ay <= r / 4 && ax <= r);
    case 4: return in_square && (long)floor((dy + r) / w) % 2 == 0;
    case 5: return in_square && (long)floor((dx + r) / w) % 2 == 0;
    case 6: return d2 <= r * r && d2 >= 0.36 * r * r;
    case 7: return in_square && (long)floor((dx + dy + 2 * r) / (1.5 * w)) % 2 == 0;
    }
    return 0;
}

static unsigned char clamp255(double v)
{
    return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5);
}

/* One image of class c into img (SIDE x SIDE x 3). */
static void draw_shape(cnnrt_rng *r, int c, unsigned char *img)
{
    double bg[3], fg[3], diff;
    for (int k = 0; k < 3; k++)
        bg[k] = 255 * cnnrt_rng_uniform(r);
    do {   /* a foreground colour that stands out */
        diff = 0;
        for (int k = 0; k < 3; k++) {
            fg[k] = 255 * cnnrt_rng_uniform(r);
            diff += fabs(fg[k] - bg[k]);
        }
    } while (diff < 200);
    double rad = 12 + 18 * cnnrt_rng_uniform(r);
    double lo = rad + 2, span = SIDE - 2 * lo;
    double cx = lo + span * cnnrt_rng_uniform(r), cy = lo + span * cnnrt_rng_uniform(r);
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) {
            const double *col = inside(c, x - cx, y - cy, rad) ? fg : bg;
            for (int k = 0; k < 3; k++)
                img[(y * SIDE + x) * 3 + k] =
                    clamp255(col[k] + 48 * (cnnrt_rng_uniform(r) - 0.5));
        }
}

typedef struct Opts {
    const char *out;
    int64_t train, test;
    uint64_t seed;
    int rank;
    int64_t shape[3];
    int64_t classes;
    double noise;
    bool floats; /* --dtype float32: images as float32 x / 255, not uint8 */
    const char *format; /* "npy", "png" or "jpeg" */
} Opts;

/* Digits of the numbers 0 to n - 1. */
static int digits(int64_t n)
{
    int d = 1;
    for (int64_t v = n - 1; v >= 10; v /= 10)
        d++;
    return d;
}

/* v in decimal, zero-padded to the digits of n - 1 (sorted names then
 * keep the order of the numbers), into buf[32]; n is at most 10^7. */
static void padded(char *buf, int64_t v, int64_t n)
{
    char num[24];
    int len = snprintf(num, sizeof num, "%lld", (long long)v), k = 0;
    for (; k < digits(n) - len; k++)
        buf[k] = '0';
    memcpy(buf + k, num, (size_t)len + 1);
}

/* A new folder, or one that is there ("File exists" if a file is). */
static int make_dir(const char *path)
{
    struct stat st;
    if (mkdir(path, 0777) == 0)
        return 0;
    int why = errno;
    if (why == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    rt_error("%s: cannot create the directory: %s", path, strerror(why));
    return -1;
}

/* DIR/SPLIT/CLASS into path. */
static void class_dir(char *path, size_t size, const Opts *o, const char *split, int64_t c,
                     int64_t classes, const char *const *class_names)
{
    char num[32];
    padded(num, c, classes);
    if (class_names)
        snprintf(path, size, "%s/%s/%s-%s", o->out, split, num, class_names[c]);
    else
        snprintf(path, size, "%s/%s/%s", o->out, split, num);
}

/* DIR/SPLIT/CLASS/INDEX.png: one file per image, made into a new or empty
 * folder (files of an earlier, larger set would stay and be read). */
static int write_folder(const Opts *o, const char *split, const int64_t *dims,
                        const unsigned char *x, const unsigned char *labels, int64_t classes,
                        const char *const *class_names)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", o->out, split);
    if (make_dir(path) != 0)
        return -1;
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            closedir(d);
            rt_error("%s: the folder is not empty; expected a new or empty one", path);
            return -1;
        }
    if (d)
        closedir(d);
    for (int64_t c = 0; c < classes; c++) {
        class_dir(path, sizeof path, o, split, c, classes, class_names);
        if (make_dir(path) != 0)
            return -1;
    }
    int h = (int)dims[1], w = (int)dims[2], ch = (int)dims[3];
    size_t size = (size_t)h * (size_t)w * (size_t)ch;
    bool png = strcmp(o->format, "png") == 0;
    for (int64_t i = 0; i < dims[0]; i++) {
        char dir[4000], name[40];
        class_dir(dir, sizeof dir, o, split, labels[i], classes, class_names);
        padded(name, i, dims[0]);
        strcat(name, png ? ".png" : ".jpg");
        snprintf(path, sizeof path, "%s/%s", dir, name);
        const unsigned char *img = x + (size_t)i * size;
        if ((png ? rt_png_write(path, h, w, ch, img)
                 : rt_jpeg_write(path, h, w, ch, img, 90)) != 0)
            return -1;
    }
    return 0;
}

static int write_split(const Opts *o, const char *split, int rank, const int64_t *dims,
                       rt_dtype t, const void *x, const unsigned char *labels,
                       int64_t classes, const char *const *class_names)
{
    char path[4096];
    if (strcmp(o->format, "npy") != 0)
        return write_folder(o, split, dims, x, labels, classes, class_names);
    snprintf(path, sizeof path, "%s/%s-images.npy", o->out, split);
    if (o->floats && t == RT_U8) {
        /* the floats a trainer would make of the bytes: the same step */
        size_t n = 1;
        for (int k = 0; k < rank; k++)
            n *= (size_t)dims[k];
        float *f = malloc(n * sizeof *f + 1);
        if (!f) {
            rt_error("out of memory");
            return -1;
        }
        for (size_t j = 0; j < n; j++)
            f[j] = (float)((const unsigned char *)x)[j] / 255.0f;
        int rc = rt_npy_write(path, RT_F32, rank, dims, f);
        free(f);
        if (rc != 0)
            return -1;
    } else if (rt_npy_write(path, t, rank, dims, x) != 0) {
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s-labels.npy", o->out, split);
    return rt_npy_write(path, RT_U8, 1, dims, labels);
}

static int make_shapes(const Opts *o)
{
    for (int split = 0; split < 2; split++) {
        int64_t n = split ? o->test : o->train;
        size_t size = (size_t)SIDE * SIDE * 3;
        unsigned char *x = malloc((size_t)n * size + 1), *y = malloc((size_t)n + 1);
        if (!x || !y) {
            rt_error("out of memory for %lld images", (long long)n);
            return -1;
        }
        cnnrt_rng r;
        cnnrt_rng_seed(&r, o->seed, split ? 102 : 101);
        for (int64_t i = 0; i < n; i++) {
            y[i] = (unsigned char)cnnrt_rng_below(&r, SHAPE_CLASSES);
            draw_shape(&r, y[i], x + (size_t)i * size);
        }
        int64_t dims[4] = {n, SIDE, SIDE, 3};
        int rc = write_split(o, split ? "test" : "train", 4, dims, RT_U8, x, y,
                             SHAPE_CLASSES, shape_names);
        free(x);
        free(y);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int make_blobs(const Opts *o)
{
    int64_t row = o->rank == 1 ? o->shape[0] : o->shape[0] * o->shape[1] * o->shape[2];
    double *centre = malloc((size_t)(o->classes * row) * sizeof *centre);
    if (!centre) {
        rt_error("out of memory");
        return -1;
    }
    cnnrt_rng r;
    cnnrt_rng_seed(&r, o->seed, 100);
    for (int64_t j = 0; j < o->classes * row; j++)
        centre[j] = o->rank == 1 ? 4 * cnnrt_rng_uniform(&r) - 2 : cnnrt_rng_uniform(&r);
    int rc = 0;
    for (int split = 0; split < 2 && rc == 0; split++) {
        int64_t n = split ? o->test : o->train;
        float *xf = o->rank == 1 ? malloc((size_t)(n * row) * sizeof *xf + 1) : NULL;
        unsigned char *xu = o->rank == 3 ? malloc((size_t)(n * row) + 1) : NULL;
        unsigned char *y = malloc((size_t)n + 1);
        if ((!xf && !xu) || !y) {
            rt_error("out of memory");
            rc = -1;
        }
        cnnrt_rng_seed(&r, o->seed, split ? 102 : 101);
        for (int64_t i = 0; rc == 0 && i < n; i++) {
            int64_t c = (int64_t)cnnrt_rng_below(&r, (uint64_t)o->classes);
            y[i] = (unsigned char)c;
            for (int64_t j = 0; j < row; j++) {
                double v = centre[c * row + j] + o->noise * cnnrt_rng_normal(&r);
                if (xf)
                    xf[i * row + j] = (float)v;
                else
                    xu[i * row + j] = clamp255(255 * v);
            }
        }
        int64_t dims[4] = {n, o->shape[0], o->shape[1], o->shape[2]};
        if (rc == 0)
            rc = write_split(o, split ? "test" : "train", o->rank == 1 ? 2 : 4, dims,
                             xf ? RT_F32 : RT_U8, xf ? (void *)xf : (void *)xu, y,
                             o->classes, NULL);
        free(xf);
        free(xu);
        free(y);
    }
    free(centre);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cnnc-data shapes --out DIR [--train N] [--test N] [--seed S]\n"
            "                        [--dtype uint8|float32] [--format npy|png|jpeg]\n"
            "       cnnc-data blobs  --out DIR [--train N] [--test N] [--seed S]\n"
            "                        [--shape F|HxWxC] [--classes K] [--noise F]\n"
            "                        [--dtype uint8|float32] [--format npy|png|jpeg]\n"
            "Writes DIR/train-images.npy, train-labels.npy, test-images.npy, "
            "test-labels.npy;\n"
            "with --format png or jpeg, folders of images instead: DIR/train/CLASS/INDEX.png\n"
            "and DIR/test/..., as a trainer's --data DIR reads them (INDEX: the sample's\n"
            "place in the .npy; the classes' sorted names in label order).\n"
            "shapes: uint8 96x96x3 images of 8 classes:");
    for (int c = 0; c < SHAPE_CLASSES; c++)
        fprintf(f, "%s %d %s", c ? "," : "", c, shape_names[c]);
    fprintf(f, ".\nblobs: defaults --shape 4 --classes 3 --noise 0.3 (images: 0.1).\n"
               "--dtype float32: images as the floats x / 255 of their bytes (uint8 the "
               "default).\n");
}

static int bad(const char *flag, const char *expected, const char *found)
{
    fprintf(stderr, "cnnc-data: error: %s: expected %s, found '%s'\n", flag, expected, found);
    return 2;
}

static int parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < min || v > max || strspn(s, "0123456789") != strlen(s))
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    rt_prog = "cnnc-data";
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc < 2 || (strcmp(argv[1], "shapes") != 0 && strcmp(argv[1], "blobs") != 0)) {
        fprintf(stderr, "cnnc-data: error: expected the command shapes or blobs, found %s\n",
                argc < 2 ? "nothing" : argv[1]);
        usage(stderr);
        return 2;
    }
    bool shapes = !strcmp(argv[1], "shapes");
    Opts o = {NULL, shapes ? 8000 : 600, shapes ? 2000 : 300, 1, 1, {4, 1, 1}, 3, -1, false,
              "npy"};
    if (shapes) {
        o.rank = 3;
        o.shape[0] = o.shape[1] = SIDE;
        o.shape[2] = 3;
    }
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i];
        if (i + 1 >= argc)
            return bad(f, "a flag with a value", "the end of the command line");
        const char *v = argv[++i];
        int64_t n;
        if (!strcmp(f, "--out")) {
            o.out = v;
        } else if (!strcmp(f, "--train") || !strcmp(f, "--test")) {
            if (parse_int(v, 1, 10000000, &n) != 0)
                return bad(f, "a number of samples from 1 to 10000000", v);
            *(f[3] == 'r' ? &o.train : &o.test) = n;
        } else if (!strcmp(f, "--dtype")) {
            if (strcmp(v, "uint8") != 0 && strcmp(v, "float32") != 0)
                return bad(f, "uint8 or float32", v);
            o.floats = !strcmp(v, "float32");
        } else if (!strcmp(f, "--format")) {
            if (strcmp(v, "npy") != 0 && strcmp(v, "png") != 0 && strcmp(v, "jpeg") != 0)
                return bad(f, "npy, png or jpeg", v);
            o.format = v;
        } else if (!strcmp(f, "--seed")) {
            if (parse_int(v, 0, INT64_MAX, &n) != 0)
                return bad(f, "a non-negative integer", v);
            o.seed = (uint64_t)n;
        } else if (!shapes && !strcmp(f, "--classes")) {
            if (parse_int(v, 2, 256, &n) != 0)
                return bad(f, "a number of classes from 2 to 256", v);
            o.classes = n;
        } else if (!shapes && !strcmp(f, "--noise")) {
            char *end;
            o.noise = strtod(v, &end);
            if (*end || !*v || !(o.noise >= 0 && o.noise <= 100))
                return bad(f, "a number from 0 to 100", v);
        } else if (!shapes && !strcmp(f, "--shape")) {
            long long a, b, c;
            char extra;
            if (sscanf(v, "%lldx%lldx%lld%c", &a, &b, &c, &extra) == 3 && a > 0 && b > 0 &&
                c > 0 && a <= 4096 && b <= 4096 && c <= 64) {
                o.rank = 3;
                o.shape[0] = a, o.shape[1] = b, o.shape[2] = c;
            } else if (parse_int(v, 1, 1 << 20, &n) == 0) {
                o.rank = 1;
                o.shape[0] = n;
            } else {
                return bad(f, "F or HxWxC", v);
            }
        } else {
            fprintf(stderr, "cnnc-data: error: unknown flag '%s' for %s\n", f, argv[1]);
            return 2;
        }
    }
    if (!o.out) {
        fprintf(stderr, "cnnc-data: error: --out DIR is required\n");
        return 2;
    }
    if (strcmp(o.format, "npy") != 0 &&
        (o.floats || o.rank != 3 || (o.shape[2] != 1 && o.shape[2] != 3))) {
        fprintf(stderr, "cnnc-data: error: --format %s: writes uint8 images of 1 or 3 "
                "channels; expected %s\n", o.format,
                o.floats ? "no --dtype float32" : "--shape HxWx1 or HxWx3");
        return 2;
    }
    if (o.noise < 0)
        o.noise = o.rank == 1 ? 0.3 : 0.1;
    if (make_dir(o.out) != 0 || (shapes ? make_shapes(&o) : make_blobs(&o)) != 0) {
        rt_print_error();
        return 1;
    }
    return 0;
}
