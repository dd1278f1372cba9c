/* rt.h: the runtime's internal header, a section per source file.
 *
 * Public names start with cnnrt_ (cnnrt.h); names shared between the
 * runtime's files start with rt_; file-local helpers have no prefix.
 *
 * Errors: a function that fails records one message with rt_error() and
 * returns -1 (or NULL). The message names the file, tensor or flag, says what
 * was expected and what was found; the command that called it prints it as
 * "PROG: error: MESSAGE" and picks the exit status.
 */
#ifndef CNNRT_RT_H
#define CNNRT_RT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cnnrt.h"

#if defined(__GNUC__)
#define RT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define RT_PRINTF(f, a)
#endif

/* Exit statuses of the trainer. */
enum { RT_OK = 0, RT_FAIL = 1, RT_USAGE = 2 };

/* ------------------------------------------------------------------------
 * util.c: errors, memory, checked arithmetic, values of either precision
 */

void rt_error(const char *fmt, ...) RT_PRINTF(1, 2);
const char *rt_errmsg(void);
/* Prints "PROG: error: <the recorded message>" on stderr. */
void rt_print_error(void);
/* The program name used in messages (basename of argv[0]). */
extern const char *rt_prog;

void *rt_calloc(size_t n, size_t size);   /* NULL + rt_error on failure */
void *rt_aligned_alloc(size_t bytes);     /* 64-byte aligned, zeroed */

bool rt_mul_ok(uint64_t a, uint64_t b, uint64_t *out);
bool rt_add_ok(uint64_t a, uint64_t b, uint64_t *out);
/* Edits from a to b, a swap of adjacent characters counting one (for "did
 * you mean" hints). */
int rt_edit_distance(const char *a, const char *b);

/* Element i of a block of reals of real_size bytes. */
static inline double rt_get(int real_size, const void *p, int64_t i)
{
    return real_size == 4 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}
static inline void rt_set(int real_size, void *p, int64_t i, double v)
{
    if (real_size == 4)
        ((float *)p)[i] = (float)v;
    else
        ((double *)p)[i] = v;
}

/* Little-endian decoding of unaligned bytes. */
uint16_t rt_le16(const unsigned char *p);
uint32_t rt_le32(const unsigned char *p);
uint64_t rt_le64(const unsigned char *p);
uint32_t rt_be32(const unsigned char *p);
float rt_lef32(const unsigned char *p);
double rt_lef64(const unsigned char *p);
void rt_put_le64(unsigned char *p, uint64_t v);

double rt_now(void);   /* seconds, monotonic */

/* ------------------------------------------------------------------------
 * pool.c: threads that share out loops (see cnnrt_parallel)
 */

typedef struct rt_pool rt_pool;

/* A pool of threads - 1 workers besides its caller; NULL with the reason
 * recorded when a thread cannot start. */
rt_pool *rt_pool_new(int threads);
void rt_pool_free(rt_pool *p);
int rt_pool_threads(const rt_pool *p);
/* body over [0, count) in chunks of at least grain, on the pool's threads
 * (p NULL: on the caller's alone). */
void rt_pool_run(rt_pool *p, int count, int grain, cnnrt_body *body, void *arg);

/* ------------------------------------------------------------------------
 * file.c: input files, read whole into memory
 */

typedef struct rt_file {
    const char *path;
    const unsigned char *data;   /* size bytes of malloc, owned */
    size_t size;
    bool gzip;                   /* data is the file's content decompressed */
} rt_file;

/* Reads the whole of path into memory (not mapped: a file truncated by
 * another program while it is read must give a message, not SIGBUS), to its
 * end rather than to st_size (files under /proc report 0). Refuses a missing
 * or empty file and what is not a regular file: a directory, a device, a
 * socket, and a FIFO (named pipe) that no process is writing into. A pipe
 * with a writer, such as bash's <(zcat x.gz) (/dev/fd/63), is read to its
 * end; opening never waits for a writer. A gzip file (magic 1f 8b, any
 * name) is decompressed (gzip.c): data and size are then its content. */
int rt_file_open(rt_file *f, const char *path);
void rt_file_close(rt_file *f);

/* ------------------------------------------------------------------------
 * gzip.c: gzip-compressed files (zlib)
 */

/* The most bytes a gzip file may decompress to: 8 GiB (tests lower it). */
extern size_t rt_gzip_limit;
/* Whether data starts with gzip's magic bytes 1f 8b. */
bool rt_is_gzip(const unsigned char *data, size_t size);
/* Inflates the gzip members of in[0..size), one after another, into
 * *out (malloc, owned by the caller; 0 bytes possible). Refuses, naming
 * path: truncated or damaged data, a CRC-32 or ISIZE that does not match,
 * bytes after the last member that do not start another, and more than
 * rt_gzip_limit bytes. */
int rt_gunzip(const char *path, const unsigned char *in, size_t size,
              unsigned char **out, size_t *out_size);

/* ------------------------------------------------------------------------
 * output.c: output files, replaced atomically or written through (output.h,
 * shared with the compiler)
 */

#include "output.h"

/* ------------------------------------------------------------------------
 * array.c: .npy, IDX and CIFAR-10 files as arrays of samples
 */

typedef enum rt_dtype { RT_U8, RT_I32, RT_I64, RT_F32, RT_F64 } rt_dtype;

extern const char *const rt_dtype_names[];   /* "uint8", ... */
int rt_dtype_size(rt_dtype t);

#define RT_MAX_RANK 8

/* A file's contents seen as n samples; nothing is copied or converted. */
typedef struct rt_array {
    const char *path;
    const char *format;         /* "npy", "IDX", "CIFAR-10" */
    rt_dtype dtype;
    int rank;
    int64_t dims[RT_MAX_RANK];  /* dims[0] = n */
    int64_t n;
    int64_t row;                /* elements per sample */
    const unsigned char *base;  /* sample 0's first element */
    size_t stride;              /* bytes from a sample to the next */
    bool chw;                   /* CIFAR: C planes to be read as HWC */
} rt_array;

/* A .npy or IDX file, by its magic number (for the messages of a damaged
 * file; rt_is_cifar asks more of IDX). */
int rt_array_parse(const rt_file *f, rt_array *a);
/* A CIFAR-10 binary batch: images (n x 32 x 32 x 3, uint8) and labels. */
int rt_cifar_parse(const rt_file *f, rt_array *images, rt_array *labels);
/* Bytes of a CIFAR-10 record: a label, then 3 planes of 32 x 32. */
enum { RT_CIFAR_RECORD = 1 + 3 * 32 * 32 };
/* Whether a file is to be read as a CIFAR-10 batch: whole records, and not
 * .npy, nor IDX with a header that fits the file's size exactly (a batch
 * may start with IDX's magic by chance; a file that is both is read as
 * IDX). */
bool rt_is_cifar(const rt_file *f);
/* "N x 28 x 28" into buf. */
char *rt_dims_str(const rt_array *a, char *buf, size_t size);

/* Writes a .npy (version 1.0) file through rt_output. */
int rt_npy_write(const char *path, rt_dtype t, int rank, const int64_t *dims,
                 const void *data);

/* ------------------------------------------------------------------------
 * image.c: PNG and JPEG images (libpng, libjpeg-turbo)
 */

/* The largest image read: its sides, and its pixels, 2^26 (8192 x 8192,
 * or 32768 x 2048) unless lowered (the fuzzer lowers it). */
enum { RT_IMAGE_MAX_SIDE = 32768 };
extern int64_t rt_image_max_pixels;

typedef struct rt_image {
    int h, w, c;              /* c: 1 (gray) or 3 (RGB) */
    unsigned char *px;        /* h x w x c bytes, rows top first, malloc */
} rt_image;

bool rt_is_png(const unsigned char *data, size_t size);
bool rt_is_jpeg(const unsigned char *data, size_t size);
/* A PNG or JPEG (by its magic bytes) in data[0..size) as 8-bit gray or
 * RGB, as image.c's head says; the message names path. */
int rt_image_decode(const char *path, const unsigned char *data, size_t size,
                    rt_image *img);
/* To c channels (1 or 3): gray repeated, or RGB to luma as PIL does. */
int rt_image_to_channels(rt_image *img, int c, const char *path);
/* Bilinear to h x w x img->c into out, with align_corners=False and no
 * antialiasing (PyTorch's F.interpolate(mode="bilinear")), computed in
 * double and rounded to the nearest byte. */
void rt_image_resize(const rt_image *img, int h, int w, unsigned char *out);
void rt_image_free(rt_image *img);
/* 8-bit gray (c 1) or RGB (c 3) images, written atomically (rt_output). */
int rt_png_write(const char *path, int h, int w, int c, const unsigned char *px);
int rt_jpeg_write(const char *path, int h, int w, int c, const unsigned char *px,
                  int quality);

/* ------------------------------------------------------------------------
 * data.c: a data set fitted to the model, converted per batch
 */

typedef struct rt_data {
    rt_file xf, yf;
    rt_array x, y;
    bool has_y;
    bool y_is_labels;    /* integer class labels (else float targets) */
    int64_t n;
    /* a folder of images (folder.c): x and y are over these, owned */
    bool folder;
    unsigned char *pixels;        /* n x H x W x C */
    unsigned char *label_bytes;   /* n int32, little-endian */
    char **classes;               /* the class folders' names, sorted */
    int nclasses;
} rt_data;

/* How a folder of images is read. */
typedef struct rt_data_opts {
    bool resize;         /* --resize: scale images to the Input's size */
    int threads;         /* decode on this many threads (0, 1: the caller's) */
} rt_data_opts;

/* Loads inputs (and labels or targets from ypath, or from a CIFAR-10 file,
 * or from the class folders of a folder of images) and checks that they fit
 * the model. need_y: labels are required. o may be NULL (no resizing, one
 * thread). Returns 0, -1 for bad data, -2 when need_y and no labels were
 * given (usage). */
int rt_data_load(rt_data *d, const cnnrt_model *m, const char *xpath,
                 const char *ypath, bool need_y, const rt_data_opts *o);
/* What rt_data_load does once the files are open (or, for the fuzz target,
 * built from memory): parses d->xf, and d->yf when its path is set, and fits
 * them to the model. A labels file with a CIFAR-10 batch is refused before
 * it is read, from its path alone. Same returns and note on stderr; frees
 * nothing on failure. */
int rt_data_fit(rt_data *d, const cnnrt_model *m, bool need_y);
void rt_data_free(rt_data *d);
/* The checks of a command's data as a whole, after loading (d and val; val
 * may be NULL or not loaded): a validation folder must have the training
 * folder's classes; --val-split cannot split a folder (its last samples
 * are its last classes); --resize needs a folder. Returns RT_OK, or
 * RT_FAIL or RT_USAGE with the message recorded. */
int rt_data_check(const rt_data *d, const rt_data *val, bool val_split, bool resize);

/* ------------------------------------------------------------------------
 * folder.c: a folder of class folders of PNG and JPEG images
 */

bool rt_is_dir(const char *path);
/* Lists, decodes and labels the images of dir into d (see folder.c). */
int rt_folder_load(rt_data *d, const cnnrt_model *m, const char *dir,
                   const rt_data_opts *o);

/* Samples idx[0..n) converted to the model's real type into x (n*input_size
 * reals, NHWC), on the pool's threads (each sample by one). */
void rt_data_inputs(const rt_data *d, const cnnrt_model *m, const int64_t *idx,
                    int n, void *x, rt_pool *pool);
/* Whether a train step takes d's inputs as bytes: the model has
 * train_step_bytes and the data is uint8. */
bool rt_data_bytes(const rt_data *d, const cnnrt_model *m);
/* Samples idx[0..n) of uint8 data as bytes into x (n*input_size, NHWC:
 * CIFAR-10's planes transposed), on the pool's threads. */
void rt_data_input_bytes(const rt_data *d, const cnnrt_model *m, const int64_t *idx,
                         int n, uint8_t *x, rt_pool *pool);
/* Their labels into labels (NULL when the data has none) and, for mse,
 * targets into targets (n*outputs reals, one-hot from labels). */
void rt_data_targets(const rt_data *d, const cnnrt_model *m, const int64_t *idx,
                     int n, int32_t *labels, void *targets);

/* ------------------------------------------------------------------------
 * json.c: a strict, bounded JSON parser (RFC 8259) for safetensors headers
 */

typedef enum rt_jtype { RT_JNULL, RT_JBOOL, RT_JNUM, RT_JSTR, RT_JARR, RT_JOBJ } rt_jtype;

typedef struct rt_json {
    rt_jtype type;
    size_t off;             /* byte offset of the value in the text */
    bool b;
    /* numbers: the value as a double, and exactly when it is a
     * non-negative integer below 2^64 written without fraction/exponent */
    double num;
    bool is_uint;
    uint64_t u;
    char *str;              /* strings, decoded, NUL-terminated */
    size_t len;
    size_t n;               /* array items / object members */
    struct rt_json *items;  /* n values */
    char **keys;            /* objects: n keys, decoded */
} rt_json;

#define RT_JSON_MAX_DEPTH 32

/* Parses text[0..len) as exactly one JSON value (surrounding white space
 * allowed). Refuses duplicate keys, invalid UTF-8, nesting beyond the
 * limit. On failure returns -1 with *err_off the byte offset of the problem
 * and the reason recorded by rt_error (without the offset). */
int rt_json_parse(const char *text, size_t len, rt_json *out, size_t *err_off);
void rt_json_free(rt_json *v);
const rt_json *rt_json_get(const rt_json *obj, const char *key);
/* Writes s as a JSON string, escaping what must be; bytes that are not
 * valid UTF-8 become U+FFFD. */
void rt_json_write_str(FILE *f, const char *s);
/* Length of the valid UTF-8 sequence at s[0..n), or 0 when invalid. */
size_t rt_utf8_len(const unsigned char *s, size_t n);

/* ------------------------------------------------------------------------
 * ckpt.c: safetensors checkpoints
 */

/* The most steps a checkpoint (cnnc.step) or a run counts: 2^53, up to which
 * a double (Adam's bias correction takes the step as one) holds every count
 * exactly; no run comes near it, and ctx->step + 1 can never overflow. */
#define RT_MAX_STEP (INT64_C(1) << 53)

/* The checkpoint --save writes: the parameters and buffers alone, the
 * state_dict a PyTorch model loads with strict=True. */
int rt_ckpt_save(const cnnrt_ctx *ctx, const char *path);
/* Loads parameters and buffers. Tensors "__opt__.*" (optimizer state, as
 * checkpoints of cnnc before the training state moved beside them held it)
 * are checked and ignored. */
int rt_ckpt_load(cnnrt_ctx *ctx, const char *path);
/* The same from size bytes in memory; name stands for the file in messages. */
int rt_ckpt_load_buffer(cnnrt_ctx *ctx, const char *name, const unsigned char *buf,
                        size_t size);

/* Where a run stands between two steps: what --resume needs beyond the
 * parameters, the buffers and the optimizer state to go on as if it had
 * never stopped. */
typedef struct rt_run {
    int64_t step;          /* steps this run has taken: the schedule's clock */
    int64_t per_epoch;     /* steps an epoch */
    int64_t epoch;         /* the epoch of the next step, from 1 */
    int64_t epoch_step;    /* steps of that epoch already taken */
    cnnrt_rng shuffle;     /* as at that epoch's start, before its order is drawn */
    cnnrt_rng dropout, augment;
    double loss_sum;       /* that epoch's figures so far */
    int64_t seen, correct;
    double best;           /* --save-best's best score; -inf before the first */
    int64_t saved_epoch;   /* the last epoch whose end --save wrote; 0 none */
    uint64_t flags;        /* hash of the flags that shape the run */
    uint64_t weights;      /* rt_weights_hash of the checkpoint it goes with */
} rt_run;

/* The training state beside checkpoint PATH: PATH with ".state" appended
 * (malloc'd; NULL when out of memory). */
char *rt_state_path(const char *ckpt);
/* The training state: the optimizer's slots as "__opt__.<param>.<slot>"
 * with PyTorch's slot names, the step count and run in __metadata__. */
int rt_state_save(const cnnrt_ctx *ctx, const char *path, const rt_run *run);
/* Loads the optimizer state and step count into ctx and the rest into run;
 * refuses a state of another network or optimizer, or an incomplete one. */
int rt_state_load(cnnrt_ctx *ctx, const char *path, rt_run *run);
int rt_state_load_buffer(cnnrt_ctx *ctx, const char *name, const unsigned char *buf,
                         size_t size, rt_run *run);

/* ------------------------------------------------------------------------
 * cli.c: the command line
 */

typedef enum rt_cmd {
    RT_CMD_TRAIN, RT_CMD_EVAL, RT_CMD_PREDICT, RT_CMD_GRADCHECK, RT_CMD_BENCH,
    RT_CMD_SUMMARY, RT_CMD_HELP
} rt_cmd;

typedef struct rt_opts {
    rt_cmd cmd;
    const char *data, *labels, *val_data, *val_labels;
    const char *init, *save, *log, *weights, *out;
    const char *resume;           /* a checkpoint whose run goes on */
    int64_t pause_after;          /* steps of this session; 0: no pause */
    const char *save_best;        /* the best validation epoch's checkpoint */
    double val_split;             /* 0: none */
    int64_t epochs, steps;        /* steps 0: by epochs */
    int64_t batch;
    bool batch_given;             /* --batch was on the command line */
    double lr, momentum, beta1, beta2, eps, decay;
    cnnrt_optimizer optimizer;
    uint64_t seed;
    bool no_shuffle;
    bool resize;                  /* scale a folder's images to the Input */
    /* the recipe (Train's settings, overridden) */
    cnnrt_schedule schedule;
    double gamma;                 /* schedule step: the factor ... */
    int64_t step_epochs;          /* ... every this many epochs */
    double warmup_epochs;         /* linear warm-up, in epochs */
    double label_smoothing, clip; /* clip 0: off */
    bool flip;                    /* augmentation of training images */
    int64_t crop;
    bool probabilities;           /* predict: the outputs after the class */
    int64_t threads;
    /* gradcheck */
    double tolerance, atol, step_size;
    double max_fail;              /* < 0: the precision's default */
    int64_t samples;
    /* bench */
    int64_t warmup;
    bool help;                    /* <cmd> --help */
} rt_opts;

/* Parses argv into o, with defaults from the model. Returns RT_OK, or
 * RT_USAGE with the message recorded. */
int rt_parse_args(const cnnrt_model *m, int argc, char **argv, rt_opts *o);
void rt_usage(const cnnrt_model *m, FILE *f);
/* `COMMAND --help` on stdout. */
int rt_print_command_help(const cnnrt_model *m, rt_cmd cmd);

/* ------------------------------------------------------------------------
 * train.c, eval.c, gradcheck.c, bench.c: the subcommands; each returns the
 * exit status and prints its own errors.
 */

int rt_cmd_train(const cnnrt_model *m, const rt_opts *o);

/* recipe.c: the learning rate of step `step` (0 the run's first) of
 * `total`, `per_epoch` an epoch; whether the model can take o's
 * augmentation and label smoothing (-1 with the message recorded); and
 * the augmentation of n training samples of elem-byte values, in place,
 * drawing from rng. */
double rt_schedule_lr(const rt_opts *o, int64_t step, int64_t per_epoch, int64_t total);
int rt_augment_check(const cnnrt_model *m, const rt_opts *o);
int rt_augment(const cnnrt_model *m, const rt_opts *o, void *x, size_t elem, int n,
               cnnrt_rng *rng);
int rt_cmd_eval(const cnnrt_model *m, const rt_opts *o);
int rt_cmd_predict(const cnnrt_model *m, const rt_opts *o);
int rt_cmd_gradcheck(const cnnrt_model *m, const rt_opts *o);
int rt_cmd_bench(const cnnrt_model *m, const rt_opts *o);

/* Helpers shared by the subcommands (train.c). */
/* One training step on n samples (train_step, or forward, loss, backward,
 * update); a non-finite loss stops it before backward. Returns the loss. */
double rt_train_step(cnnrt_ctx *ctx, int n, const void *x, const int32_t *labels,
                     const void *targets);
/* The same step from bytes (see cnnrt_model.train_step_bytes, which the
 * model must have). */
double rt_train_step_bytes(cnnrt_ctx *ctx, int n, const uint8_t *x, const int32_t *labels,
                           const void *targets);
int rt_argmax(const cnnrt_model *m, const void *out, int i);
int rt_count_correct(const cnnrt_ctx *ctx, int n, const int32_t *labels);
/* Evaluates samples [start, start+count) of d in batches: mean loss, and
 * accuracy when the data has labels (else *acc = -1). Returns 0; -1 on
 * failure; 1 when a batch's loss is NaN or infinite, with the message
 * "the loss is NaN on samples A to B (batch I of N) of FILE" recorded and
 * the model's activations still those of that batch (rt_nonfinite_where). */
int rt_evaluate(cnnrt_ctx *ctx, const rt_data *d, int64_t start, int64_t count,
                int batch, double *loss, double *acc);
/* "the first layer with non-finite outputs is D1", or that every layer's
 * outputs are finite, after the last forward. */
void rt_nonfinite_where(const cnnrt_ctx *ctx, char *buf, size_t size);
const char *rt_optimizer_name(cnnrt_optimizer o);
int rt_model_check(const cnnrt_model *m);
/* The model's buffers at their starting values (running means 0,
 * variances 1, counts 0); cnnrt_init_params calls it. */
void rt_init_buffers(cnnrt_ctx *ctx);

/* ------------------------------------------------------------------------
 * group.c: the processes that train together (MPI); comm_mpi.c or
 * comm_none.c: their transport
 */

/* Starts the transport (MPI_Init); rank and size of this process. */
int rt_group_start(int *argc, char ***argv);
void rt_group_end(void);
int rt_group_rank(void);
int rt_group_size(void);
/* Rank 0: the one that prints, logs and writes checkpoints. */
bool rt_group_leader(void);
/* Training steps shared by the ranks from now (on) or not (off); a no-op
 * in one process. */
void rt_group_split(bool on);
bool rt_group_splits(void);
/* The rank that runs lane l (this one when steps are not split). */
int rt_group_lane_owner(const cnnrt_model *m, int l);
/* The lanes [*lo, *hi) this rank runs. */
void rt_group_own_lanes(const cnnrt_model *m, int *lo, int *hi);
/* Every rank passes its status after setting up a run (RT_OK or its
 * failure, already printed) and hashes of its flags and data; returns the
 * run's status, the same on every rank: the worst, or RT_USAGE when flags
 * or data differ or there are more ranks than lanes (rank 0 prints why). */
int rt_group_agree(const cnnrt_model *m, int status, uint64_t flags, uint64_t data);
/* Ends every process of the run with status (a failure on one rank only,
 * after the ranks agreed to run: the others would wait for it forever). */
void rt_group_abort(int status) __attribute__((noreturn));
/* A 64-bit hash of size bytes, continuing from h (start with any constant). */
uint64_t rt_hash(uint64_t h, const void *data, size_t size);
/* Which checkpoint a training state goes with (rt_run.weights): a hash of
 * ctx's parameters and buffers. */
uint64_t rt_weights_hash(const cnnrt_ctx *ctx);

int rt_comm_start(int *argc, char ***argv, int *rank, int *size);
void rt_comm_bcast(void *buf, size_t bytes, int root);
/* all[r*bytes ..] = rank r's mine, for every r. */
void rt_comm_allgather(const void *mine, size_t bytes, void *all);
void rt_comm_abort(int status) __attribute__((noreturn));
void rt_comm_end(void);

#endif /* CNNRT_RT_H */
