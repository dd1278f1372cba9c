/* folder.c: a folder of images as a data set, as torchvision's ImageFolder
 * reads one:
 *
 *   DIR/cat/001.png  DIR/cat/x/002.jpg  DIR/dog/003.jpeg ...
 *
 * Each subfolder is a class; classes are numbered in the sorted (byte)
 * order of their names, and the images of a class are taken in the order
 * of sorted(os.walk(...)): by folder path, then by name. A class folder's
 * images may be nested in folders of their own (symbolic links are
 * followed; a loop is an error). Names starting with '.' are skipped
 * (ImageFolder would take a hidden .ipynb_checkpoints for a class). Files
 * named *.png, *.jpg, *.jpeg (any case) are images, decoded by their magic
 * bytes; other image formats ImageFolder takes (*.bmp, *.gif, *.ppm, *.pgm,
 * *.tif, *.tiff, *.webp) are refused by name rather than left out, and any
 * other file is skipped; so are files directly in DIR.
 *
 * Every image is decoded once, at load, into one uint8 N x H x W x C array
 * (the trainer's uint8 path then takes it as it takes a .npy), on a pool of
 * threads, each image into its own place: the result does not depend on
 * the threads. When images are broken, the first in that order is named.
 */
#include "rt.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* Folders nested deeper than this in a class folder are refused. */
enum { MAX_DEPTH = 64 };

typedef struct Image {
    char *dir;        /* the folder holding it, for the sort */
    char *name;
    char *path;       /* dir/name */
    int label;
} Image;

typedef struct Listing {
    Image *images;
    size_t n, cap;
} Listing;

bool rt_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    while (a > 1 && dir[a - 1] == '/')
        a--;
    char *p = malloc(a + b + 2);
    if (!p) {
        rt_error("out of memory for a file name");
        return NULL;
    }
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static bool has_ext(const char *name, const char *ext)
{
    size_t n = strlen(name), e = strlen(ext);
    return n > e && strcasecmp(name + n - e, ext) == 0;
}

static bool is_image_name(const char *name)
{
    return has_ext(name, ".png") || has_ext(name, ".jpg") || has_ext(name, ".jpeg");
}

/* Formats that ImageFolder would read and this runtime does not. */
static const char *other_image_format(const char *name)
{
    static const struct { const char *ext, *format; } other[] = {
        {".bmp", "BMP"}, {".gif", "GIF"}, {".ppm", "PPM"}, {".pgm", "PGM"},
        {".tif", "TIFF"}, {".tiff", "TIFF"}, {".webp", "WebP"},
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        if (has_ext(name, other[i].ext))
            return other[i].format;
    return NULL;
}

static int name_order(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in dir, sorted, without those starting with '.'. */
static int read_names(const char *dir, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        rt_error("%s: cannot read the folder: %s", dir, strerror(errno));
        return -1;
    }
    size_t cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            char **more = realloc(*names, cap * sizeof *more);
            if (!more) {
                rc = -1;
                break;
            }
            *names = more;
        }
        if (!((*names)[*n] = strdup(e->d_name))) {
            rc = -1;
            break;
        }
        (*n)++;
    }
    closedir(d);
    if (rc != 0)
        rt_error("%s: out of memory listing the folder", dir);
    else if (*n > 1)   /* qsort's pointer may not be NULL, even for 0 items */
        qsort(*names, *n, sizeof **names, name_order);
    return rc;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static int add_image(Listing *l, const char *dir, const char *name, char *path, int label)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        Image *more = realloc(l->images, cap * sizeof *more);
        if (!more)
            goto oom;
        l->images = more;
        l->cap = cap;
    }
    Image *im = &l->images[l->n];
    im->dir = strdup(dir);
    im->name = strdup(name);
    im->path = path;
    im->label = label;
    if (!im->dir || !im->name) {
        free(im->dir);
        free(im->name);
        goto oom;
    }
    l->n++;
    return 0;
oom:
    free(path);
    rt_error("%s: out of memory listing the images", dir);
    return -1;
}

/* The folders from the data folder down to the one being read, to catch
 * a symbolic link back to one of them. */
typedef struct Trail {
    dev_t dev[MAX_DEPTH + 2];     /* the data folder, the class folder, ... */
    ino_t ino[MAX_DEPTH + 2];
    int depth;
} Trail;

static int walk(Listing *l, const char *dir, int label, Trail *t);

/* One entry of a class folder's tree: an image, a folder to walk, or a
 * file to skip. */
static int visit(Listing *l, const char *dir, const char *name, int label, Trail *t)
{
    char *path = join(dir, name);
    struct stat st;
    if (!path)
        return -1;
    if (stat(path, &st) != 0) {
        rt_error("%s: cannot read: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        for (int k = 0; k < t->depth; k++)
            if (t->dev[k] == st.st_dev && t->ino[k] == st.st_ino) {
                rt_error("%s: a symbolic link loop: the folder is one that contains it",
                         path);
                free(path);
                return -1;
            }
        if (t->depth == MAX_DEPTH + 2) {
            rt_error("%s: folders nested more than %d deep in a class folder", path,
                     MAX_DEPTH);
            free(path);
            return -1;
        }
        t->dev[t->depth] = st.st_dev;
        t->ino[t->depth++] = st.st_ino;
        int rc = walk(l, path, label, t);
        t->depth--;
        free(path);
        return rc;
    }
    if (S_ISREG(st.st_mode) && is_image_name(name))
        return add_image(l, dir, name, path, label);
    const char *other = S_ISREG(st.st_mode) ? other_image_format(name) : NULL;
    if (other) {
        rt_error("%s: a %s image (by its name), which is not read; expected PNG or JPEG "
                 "(convert it, or move it out of the folder)", path, other);
        free(path);
        return -1;
    }
    free(path);
    return 0;
}

static int walk(Listing *l, const char *dir, int label, Trail *t)
{
    char **names;
    size_t n;
    if (read_names(dir, &names, &n) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = visit(l, dir, names[i], label, t);
    free_names(names, n);
    return rc;
}

/* sorted(os.walk(class folder)): by the folder, then by the name. */
static int image_order(const void *a, const void *b)
{
    const Image *x = a, *y = b;
    int c = strcmp(x->dir, y->dir);
    return c ? c : strcmp(x->name, y->name);
}

/* The class folders of dir, sorted, into d->classes. */
static int find_classes(rt_data *d, const char *dir)
{
    char **names;
    size_t n;
    if (read_names(dir, &names, &n) != 0)
        return -1;
    d->classes = rt_calloc(n + 1, sizeof *d->classes);
    for (size_t i = 0; d->classes && i < n; i++) {
        char *path = join(dir, names[i]);
        if (path && rt_is_dir(path)) {
            d->classes[d->nclasses++] = names[i];
            names[i] = NULL;
        }
        free(path);
    }
    free_names(names, n);
    return d->classes ? 0 : -1;
}

/* Starts a trail at path. */
static void trail_start(Trail *t, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && t->depth < 2) {
        t->dev[t->depth] = st.st_dev;
        t->ino[t->depth++] = st.st_ino;
    }
}

static int list_images(Listing *l, const rt_data *d, const char *dir)
{
    for (int k = 0; k < d->nclasses; k++) {
        char *cdir = join(dir, d->classes[k]);
        Trail t = {.depth = 0};
        if (!cdir)
            return -1;
        trail_start(&t, dir);
        trail_start(&t, cdir);
        size_t first = l->n;
        int rc = walk(l, cdir, k, &t);
        if (rc == 0 && l->n == first) {
            rt_error("%s: a class folder with no images; expected PNG or JPEG files "
                     "(*.png, *.jpg, *.jpeg)", cdir);
            rc = -1;
        }
        free(cdir);
        if (rc != 0)
            return -1;
        if (l->n - first > 1)
            qsort(l->images + first, l->n - first, sizeof *l->images, image_order);
    }
    return 0;
}

static void free_listing(Listing *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->images[i].dir);
        free(l->images[i].name);
        free(l->images[i].path);
    }
    free(l->images);
}

/* The classes against the model: an image Input of 1 or 3 channels, one
 * output per class. */
static int fit_classes(const rt_data *d, const cnnrt_model *m, const char *dir)
{
    if (m->input_rank != 3) {
        rt_error("%s: a folder of images needs a network whose Input is an image "
                 "(H x W x C); %s takes vectors of %lld", dir, m->name,
                 (long long)m->input_shape[0]);
        return -1;
    }
    if (m->input_shape[2] != 1 && m->input_shape[2] != 3) {
        rt_error("%s: a folder of images gives 1 channel (gray) or 3 (RGB); the Input "
                 "of %s has %lld", dir, m->name, (long long)m->input_shape[2]);
        return -1;
    }
    if (d->nclasses == 0) {
        rt_error("%s: holds no class folders; expected one subfolder of PNG or JPEG "
                 "images per class", dir);
        return -1;
    }
    if (d->nclasses == 1) {
        rt_error("%s: holds one class folder (%s); expected one per class, at least two",
                 dir, d->classes[0]);
        return -1;
    }
    if (d->nclasses != m->outputs) {
        rt_error("%s: holds %d class folders; %s has %lld outputs, expected a class "
                 "folder for each", dir, d->nclasses, m->name, (long long)m->outputs);
        return -1;
    }
    return 0;
}

/* ---- decoding on the pool -------------------------------------------------- */

typedef struct LoadJob {
    const Listing *l;
    const cnnrt_model *m;
    bool resize;
    unsigned char *pixels;       /* n x H x W x C */
    char **errors;               /* the message of each image that failed */
    _Atomic int first_bad;       /* images after it need not be read */
} LoadJob;

/* Image i into its place; the message recorded on failure. */
static int load_one(const LoadJob *job, int i)
{
    const char *path = job->l->images[i].path;
    int h = (int)job->m->input_shape[0], w = (int)job->m->input_shape[1];
    int c = (int)job->m->input_shape[2];
    unsigned char *out = job->pixels + (size_t)i * (size_t)h * (size_t)w * (size_t)c;
    rt_file f;
    rt_image img;
    if (rt_file_open(&f, path) != 0)
        return -1;
    int rc = rt_image_decode(path, f.data, f.size, &img);
    rt_file_close(&f);
    if (rc == 0)
        rc = rt_image_to_channels(&img, c, path);
    if (rc == 0 && img.h == h && img.w == w) {
        memcpy(out, img.px, (size_t)h * (size_t)w * (size_t)c);
    } else if (rc == 0 && job->resize) {
        rt_image_resize(&img, h, w, out);
    } else if (rc == 0) {
        rt_error("%s: a %d x %d image (H x W); the Input of %s is %d x %d (give --resize "
                 "to scale the images to it)", path, img.h, img.w, job->m->name, h, w);
        rc = -1;
    }
    rt_image_free(&img);
    return rc;
}

static void load_body(void *arg, int lo, int hi)
{
    LoadJob *job = arg;
    for (int i = lo; i < hi; i++) {
        if (i > atomic_load(&job->first_bad))
            return;
        if (load_one(job, i) == 0)
            continue;
        job->errors[i] = strdup(rt_errmsg());   /* rt_error's buffer is per thread */
        int bad = atomic_load(&job->first_bad);
        while (i < bad && !atomic_compare_exchange_weak(&job->first_bad, &bad, i))
            ;
    }
}

static int decode_all(rt_data *d, const Listing *l, const cnnrt_model *m,
                      const rt_data_opts *o, const char *dir)
{
    size_t row = (size_t)m->input_size;
    LoadJob job = {.l = l, .m = m, .resize = o && o->resize};
    atomic_init(&job.first_bad, INT_MAX);
    if (l->n > INT_MAX) {
        rt_error("%s: holds more than %d images", dir, INT_MAX);
        return -1;
    }
    d->pixels = rt_aligned_alloc(l->n * row);
    job.pixels = d->pixels;
    job.errors = rt_calloc(l->n, sizeof *job.errors);
    rt_pool *pool = o && o->threads > 1 ? rt_pool_new(o->threads) : NULL;
    if (!d->pixels || !job.errors || (o && o->threads > 1 && !pool)) {
        free(job.errors);
        return -1;
    }
    rt_pool_run(pool, (int)l->n, 1, load_body, &job);
    rt_pool_free(pool);
    int bad = atomic_load(&job.first_bad);
    if (bad != INT_MAX)
        rt_error("%s", job.errors[bad] ? job.errors[bad] : "out of memory");
    for (size_t i = 0; i < l->n; i++)
        free(job.errors[i]);
    free(job.errors);
    return bad == INT_MAX ? 0 : -1;
}

/* The arrays over the pixels and the labels. */
static int settle(rt_data *d, const Listing *l, const cnnrt_model *m, const char *dir)
{
    int64_t n = (int64_t)l->n;
    d->label_bytes = rt_calloc(l->n, 4);
    if (!d->label_bytes)
        return -1;
    for (size_t i = 0; i < l->n; i++)
        for (int k = 0; k < 4; k++)
            d->label_bytes[4 * i + k] = (unsigned char)((uint32_t)l->images[i].label >> (8 * k));
    d->x = (rt_array){.path = dir, .format = "image folder", .dtype = RT_U8, .rank = 4,
                      .dims = {n, m->input_shape[0], m->input_shape[1], m->input_shape[2]},
                      .n = n, .row = m->input_size, .base = d->pixels,
                      .stride = (size_t)m->input_size};
    d->y = (rt_array){.path = dir, .format = "image folder", .dtype = RT_I32, .rank = 1,
                      .dims = {n}, .n = n, .row = 1, .base = d->label_bytes, .stride = 4};
    d->has_y = true;
    d->n = n;
    return 0;
}

int rt_folder_load(rt_data *d, const cnnrt_model *m, const char *dir,
                   const rt_data_opts *o)
{
    Listing l = {NULL, 0, 0};
    int rc = -1;
    d->folder = true;
    if (find_classes(d, dir) == 0 && fit_classes(d, m, dir) == 0 &&
        list_images(&l, d, dir) == 0 && decode_all(d, &l, m, o, dir) == 0)
        rc = settle(d, &l, m, dir);
    free_listing(&l);
    return rc;
}
