/* cnnc.h: the compiler's one internal header, a section per source file.
 *
 * Data flows one way:
 *   source text  --lexer.l/parser.y-->  Ast (statements with locations)
 *                --check.c-->           Network (every layer with its shapes,
 *                                       settled arguments and parameters)
 *                --plan.c/summary.c/emit*.c--> memory plan, summary, C.
 * No phase reaches back into an earlier one's internals: the checker reads the
 * Ast, everything after it reads only the Network.
 */
#ifndef CNNC_H
#define CNNC_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__)
#define CNNC_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CNNC_PRINTF(f, a)
#endif

/* ------------------------------------------------------------------------
 * util.c: memory that never returns NULL, checked size arithmetic
 */

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) CNNC_PRINTF(1, 2);
char *xvasprintf(const char *fmt, va_list ap) CNNC_PRINTF(1, 0);

/* The largest element count of one sample's tensor. Generated code indexes a
 * sample with int, so every per-sample size must stay below this. */
#define CNNC_MAX_ELEMS INT32_MAX

/* *out = a * b, false when the product overflows int64 or a or b < 0. */
bool mul_ok(int64_t a, int64_t b, int64_t *out);
bool add_ok(int64_t a, int64_t b, int64_t *out);

/* [A-Za-z_][A-Za-z0-9_]*: a name the scanner could read, as opposed to a
 * bad one it kept for recovery (with '?' for stray bytes) or the "" of a
 * statement lost to a syntax error. */
bool is_name(const char *s);

/* Edit distance counting a swap of adjacent characters as one edit (optimal
 * string alignment), for "did you mean" hints. */
int edit_distance(const char *a, const char *b);

/* ------------------------------------------------------------------------
 * source.c: a whole input file in memory, with its lines indexed
 */

typedef struct Source {
    char *name;         /* as given on the command line; "<stdin>" for "-" */
    char *text;         /* the bytes, NUL-terminated (may hold NULs inside) */
    size_t len;         /* bytes in text, without the terminator */
    size_t *line_start; /* byte offset of each line's start; line i at [i-1] */
    int nlines;
} Source;

/* Reads path ("-" is standard input). On failure prints
 * "cnnc: error: PATH: reason" to stderr and returns NULL. */
Source *source_read(const char *path);
Source *source_from_string(const char *name, const char *text, size_t len);
void source_free(Source *s);
/* The text of line (1-based) without its newline; *len gets its length. */
const char *source_line(const Source *s, int line, size_t *len);

/* ------------------------------------------------------------------------
 * diag.c: the one diagnostics path
 *
 *   bad.net:7:5: error: Dense needs a vector, but MaxPool (line 6) gives 10x10x105
 *       7 |     Dense(n=945)
 *         |     ^~~~~
 *         = hint: insert Flatten before it
 */

/* A source range. Lines and columns are 1-based; columns count bytes.
 * last_column is the column of the range's last byte (inclusive), as bison's
 * default location tracking makes it when the lexer sets it so. */
typedef struct Loc {
    int first_line, first_column;
    int last_line, last_column;
} Loc;

typedef struct Diag {
    const Source *src;
    FILE *out;        /* stderr, or a memory stream in tests */
    int errors;
    int warnings;
    int max_errors;   /* stop reporting after this many errors */
    bool werror;      /* warnings count as errors */
    bool stopped;     /* the limit was hit; further messages are dropped */
    bool last_shown;  /* the last error/warning was printed: its notes and
                         hints may follow */
} Diag;

#define DIAG_DEFAULT_MAX_ERRORS 20

void diag_init(Diag *d, const Source *src, FILE *out);
void diag_error(Diag *d, Loc loc, const char *fmt, ...) CNNC_PRINTF(3, 4);
void diag_warning(Diag *d, Loc loc, const char *fmt, ...) CNNC_PRINTF(3, 4);
/* A note about another place ("previous definition here"), after an error. */
void diag_note(Diag *d, Loc loc, const char *fmt, ...) CNNC_PRINTF(3, 4);
/* "= hint: ..." under the last error or warning printed. */
void diag_hint(Diag *d, const char *fmt, ...) CNNC_PRINTF(2, 3);
void diag_verror(Diag *d, Loc loc, const char *fmt, va_list ap);
/* An error with no place in the file (e.g. an empty file). */
void diag_file_error(Diag *d, const char *fmt, ...) CNNC_PRINTF(2, 3);
/* True once an error past the limit was dropped: callers may stop early. */
bool diag_full(const Diag *d);

/* ------------------------------------------------------------------------
 * ast.c: the syntax tree the parser builds; every node keeps its range
 */

typedef enum ValueKind {
    VAL_INT,   /* 40, -3 */
    VAL_FLOAT, /* 0.01, 1e-3, .5 */
    VAL_BOOL,  /* true, false */
    VAL_NAME,  /* valid, he_normal, momentum */
    VAL_DIMS,  /* 4x4, 96x96x3 */
    VAL_LIST,  /* [0.49, 0.48, 0.45]: numbers */
} ValueKind;

/* The most numbers a [list] holds: one per channel of an image. */
#define CNNC_MAX_LIST 16

typedef struct Value {
    ValueKind kind;
    Loc loc;
    union {
        int64_t i;
        double f;
        bool b;
        char *name;
        struct {
            int n;          /* 2 or 3 */
            int64_t d[3];
        } dims;
        struct {
            int n;          /* 1 .. CNNC_MAX_LIST */
            double v[CNNC_MAX_LIST];
        } list;
    } u;
} Value;

/* key=value, or a positional value when key is NULL. */
typedef struct Arg {
    char *key;
    Loc key_loc;
    Value value;
    Loc loc;            /* the whole argument */
    struct Arg *next;
} Arg;

/* [LABEL ':'] Word ['(' arguments ')'] ['->' SHAPE] */
typedef struct Stmt {
    char *label;          /* NULL when unlabelled */
    Loc label_loc;
    char *word;           /* "" for a statement lost to a syntax error; a bad
                             name (not is_name) when the scanner met stray
                             bytes in it */
    Loc word_loc;
    Arg *args;            /* in source order */
    bool has_parens;      /* "ReLU()" as opposed to "ReLU" */
    bool has_annotation;
    Value annotation;     /* VAL_DIMS or VAL_INT */
    Loc loc;              /* the whole statement */
    struct Stmt *next;
} Stmt;

typedef struct Ast {
    Stmt *first;
    int nstmts;
} Ast;

Stmt *stmt_new(void);
Arg *arg_new(void);
void value_free(Value *v);
void arg_free_list(Arg *a);
void stmt_free(Stmt *s);
void ast_free(Ast *a);
/* Prints a value as written: "4x4", "0.01", "true". */
void value_print(FILE *f, const Value *v);

/* ------------------------------------------------------------------------
 * parse.c (driving lexer.l and parser.y): source -> Ast
 */

/* Parses the whole source. Syntax errors go to d; the Ast holds every
 * statement that parsed. Returns NULL only when nothing could be parsed at all
 * (the caller still checks d->errors). */
Ast *parse_source(const Source *src, Diag *d);

/* Longest identifier accepted: labels end up in C names and checkpoints. */
#define CNNC_MAX_IDENT 255

/* ------------------------------------------------------------------------
 * shape.c: per-sample tensor shapes
 */

typedef struct Shape {
    int rank;           /* 3: an HxWxC map; 1: a vector of c features */
    int64_t h, w, c;    /* for a vector, h = w = 1 */
} Shape;

Shape shape_map(int64_t h, int64_t w, int64_t c);
Shape shape_vector(int64_t n);
int64_t shape_elems(Shape s);          /* h*w*c; callers keep it in range */
bool shape_equal(Shape a, Shape b);
/* "47x47x40" or "945" into buf (at least 64 bytes); returns buf. */
char *shape_str(Shape s, char *buf, size_t size);

/* ------------------------------------------------------------------------
 * args.c: argument schemas, matched against what the source says
 */

typedef enum ArgType {
    ARG_INT,      /* an integer in [imin, imax] */
    ARG_FLOAT,    /* a number (integers accepted) in the range given */
    ARG_BOOL,     /* true | false */
    ARG_SIZE2,    /* HxW, or N meaning NxN: kernels, windows, strides */
    ARG_PADDING,  /* valid | same | P | PHxPW */
    ARG_CHOICE,   /* one name of choices[] */
    ARG_SHAPE,    /* HxWxC | HxW | F: Input's */
    ARG_FLOATS,   /* a number, or [a list] of them, each in the range given */
} ArgType;

typedef struct ArgSpec {
    const char *key;
    ArgType type;
    bool required;
    int position;               /* 0-based position when given positionally,
                                   -1: keyword only */
    int64_t imin, imax;         /* ARG_INT, ARG_SIZE2 (each side), ARG_PADDING */
    double fmin, fmax;          /* ARG_FLOAT */
    bool fmin_open, fmax_open;  /* exclusive bounds */
    const char *const *choices; /* ARG_CHOICE, NULL-terminated */
    const char *doc;            /* for messages and --help: "output channels" */
} ArgSpec;

typedef enum PadMode { PAD_VALID, PAD_SAME, PAD_EXPLICIT } PadMode;

/* A padding once the shape rule has resolved it. */
typedef struct Pad {
    PadMode mode;
    int64_t top, bottom, left, right;
} Pad;

/* One settled argument: the source's value, or the default. */
typedef struct ArgVal {
    bool given;       /* written in the source (else a default) */
    Loc loc;          /* of the value when given */
    union {
        int64_t i;
        double f;
        bool b;
        int choice;               /* index into spec->choices */
        struct { int64_t h, w; } size;
        Pad pad;
        Shape shape;
        struct {
            int n;
            double v[CNNC_MAX_LIST];
        } list;                   /* ARG_FLOATS: one number is a list of 1 */
    } u;
} ArgVal;

#define CNNC_MAX_ARGS 32

/* Matches the statement's arguments against specs[0..n): reports unknown,
 * duplicate, missing, ill-typed and out-of-range arguments (with a "did you
 * mean" hint for near-miss keys), and fills vals[i] for each spec. Values not
 * given are left with given=false and zeroed; the caller applies defaults.
 * Returns false when an argument was bad. */
bool args_match(const Stmt *st, const ArgSpec *specs, int n, ArgVal *vals, Diag *d);

/* The name of names[] (NULL-terminated) closest to word, for "did you mean"
 * hints: equal but for case, a few edits away, or one holding the other
 * ("kernel_size" -> "kernel"). NULL when none is close. */
const char *nearest_name(const char *word, const char *const names[]);

/* ------------------------------------------------------------------------
 * Layer kinds: one file each (conv.c, pool.c, ...), listed in layers.def
 */

struct Layer;
struct Network;
struct Emitter;
struct LayerCode;

/* A parameter tensor, in PyTorch's layout ("weight" [n, C_in, KH, KW]). */
typedef struct Param {
    const char *suffix;   /* "weight" or "bias" */
    int rank;
    int64_t dims[4];
    int64_t count;
    int64_t fan_in, fan_out;   /* for the initializers */
    bool is_bias;              /* starts at zero */
    bool is_one;               /* starts at one (BatchNorm's weight) */
} Param;

/* A buffer: a layer's state that is no parameter, saved in checkpoints
 * (PyTorch's register_buffer): BatchNorm's running statistics. */
typedef struct Buffer {
    const char *suffix;   /* "running_mean", "num_batches_tracked" */
    int64_t count;        /* elements: [count], or a scalar when scalar */
    bool scalar;          /* rank 0 */
    bool is_int64;        /* int64 elements, else the trainer's reals */
    double start;         /* the value before training */
} Buffer;

/* The most inputs of a merge layer (Add, Concat). */
#define CNNC_MAX_INPUTS 16

/* Writes one of a layer's functions (see the emit.c section). */
typedef void LayerEmitter(struct Emitter *e, const struct LayerCode *c);

typedef struct LayerKind {
    const char *name;          /* as written in source: "Conv" */
    const char *auto_prefix;   /* automatic labels: "conv" -> conv1, conv2 */
    const ArgSpec *args;
    int nargs;
    bool merge;                /* takes two or more inputs, named by label as
                                  its arguments: Add(a, b) */
    bool must_be_last;         /* Softmax */
    const char *on_vector_hint; /* the hint when it is given a vector but
                                  needs a map (NULL: none) */

    /* What the planner (plan.c) and the checker know of the kind. */
    bool in_place;             /* elementwise, backward from y alone: may
                                  write its output over its input */
    bool ignores_own_output;   /* backward never reads the layer's y */
    bool needs_no_input;       /* backward never reads its inputs x (Add) */
    bool relu_forward;         /* can apply a ReLU to its output (LayerCode.relu_out) */
    bool relu_backward;        /* can apply a ReLU before it to its dx
                                  (LayerCode.relu_in) */
    bool sample_forward;       /* emits L_forward_sample (one sample at a
                                  time, see emit.c) and its backward never
                                  reads x: the layer before may stream */
    bool is_relu;              /* the ReLU, which a layer with relu_forward
                                  applies as it stores, and one with
                                  relu_backward to its dx */
    bool is_softmax;           /* probabilities out: cross-entropy needs it
                                  last, and fuses its backward into the loss */
    bool batch_stats;          /* while training it normalises with the whole
                                  batch's statistics (BatchNorm): the lanes
                                  meet before its forward and backward */

    /* The shape rule: from l->ins (l->in is the first) and l->args, set
     * l->out and l->params. Reports problems at l->loc or an argument's loc;
     * returns false when no output shape can be given (checking goes on
     * past the layer). */
    bool (*infer)(struct Layer *l, Diag *d);
    /* Forward FLOP per sample: 2 per multiply-add of Conv and Dense; 0 for
     * layers that only move or compare data. */
    double (*flops)(const struct Layer *l);
    /* Bytes of workspace the fast kernels need at the batch (repacked
     * weights, masks, argmax indices), when a lane takes at most
     * lane_samples samples through it in a step; NULL when none. The
     * reference kernels need none. */
    int64_t (*scratch_bytes)(const struct Layer *l, int64_t batch, int64_t lane_samples,
                             int64_t real_size);
    /* A kind whose fast forward can also write the lane's share of the
     * statistics of its output for the batch_stats layer that is its only
     * consumer (LayerCode.stats_to), saving that layer's pass over it: the
     * scratch bytes it needs for that beyond scratch_bytes, 0 when it
     * cannot for this layer; NULL when it never can. */
    int64_t (*stats_bytes)(const struct Layer *l, int64_t batch, int64_t lane_samples,
                           int64_t real_size);
    /* The layer's functions, forward and backward, in the two tiers: fast
     * (register tiles, threads) and reference (the plain loops of the math).
     * Signatures in the emit.c section below. */
    LayerEmitter *emit_forward, *emit_backward;
    LayerEmitter *ref_forward, *ref_backward;
    /* A batch_stats kind's fast tier also writes, with the signatures of
     * emit.c's section: L_stats (the lane's share of the statistics of x),
     * L_combine (the lanes' into the batch's, running statistics updated),
     * L_bsums (the lane's share of the sums backward needs) and L_bcombine
     * (the lanes' into the batch's, and the parameters' gradients). */
    LayerEmitter *emit_stats, *emit_combine, *emit_bsums, *emit_bcombine;
} LayerKind;

/* batchnorm.c: "double *bn_mean, *bn_m2", the lane's share of BatchNorm
 * LABEL's statistics, for the layer before it to write (stats_to). */
void batchnorm_emit_lane_stats(struct Emitter *e, const char *label, int64_t channels);

/* conv.c: the sliding-window rule that Conv, MaxPool and AvgPool share. */
typedef struct Window {
    const char *what;   /* "kernel" or "window", for messages */
    Loc loc;            /* where to report: the kernel's or size's value */
    int64_t kh, kw;     /* its size */
    int64_t sh, sw;     /* its stride */
    Pad pad;            /* as written; the sides of same are filled in */
} Window;
/* The output size of w slid over l->in (a map): valid floor((in-k)/s)+1,
 * same ceil(in/s) (padding split TensorFlow's way, the extra at the
 * bottom/right), explicit floor((in+2p-k)/s)+1. Reports a window larger than
 * its padded input; warns when the last rows/columns are never covered. */
bool window_rule(const struct Layer *l, Window *w, int64_t *oh, int64_t *ow, Diag *d);

/* The registered kinds, in layers.def order. */
#define LAYER(kind_, var_) extern const LayerKind var_;
#include "layers.def"
#undef LAYER
extern const LayerKind *const layer_kinds[];
extern const int nlayer_kinds;
const LayerKind *layer_kind_find(const char *name);

/* ------------------------------------------------------------------------
 * check.c: Ast -> Network, with every rule of the language spec
 */

typedef enum Loss { LOSS_CROSS_ENTROPY, LOSS_MSE } Loss;
typedef enum Optimizer { OPT_SGD, OPT_MOMENTUM, OPT_NESTEROV, OPT_ADAM, OPT_ADAMW } Optimizer;
typedef enum Schedule { SCHEDULE_CONSTANT, SCHEDULE_STEP, SCHEDULE_COSINE } Schedule;
typedef enum Init { INIT_HE_NORMAL, INIT_HE_UNIFORM, INIT_GLOROT_NORMAL, INIT_GLOROT_UNIFORM } Init;

/* Names in the same order as the enums above (tag: enum-names). */
extern const char *const loss_names[];
extern const char *const optimizer_names[];
extern const char *const init_names[];
extern const char *const schedule_names[];

typedef struct Train {
    int64_t batch, epochs;
    Loss loss;
    Optimizer optimizer;
    double lr, momentum, beta1, beta2, eps, decay;
    Init init;
    uint64_t seed;
    Schedule schedule;
    double gamma;          /* schedule=step's factor */
    int64_t step_size;     /* schedule=step's epochs */
    double warmup;         /* epochs */
    double label_smoothing;
    double clip;           /* 0: off */
    bool flip;
    int64_t crop;
    bool declared;     /* a Train statement was written */
    Loc loc;
} Train;

/* The graph: tensor 0 is the network's input, tensor i + 1 the output of
 * layer i. Layers come in source order, which is a topological order:
 * a layer reads only tensors of statements before it. */
#define INPUT_TENSOR 0

typedef struct Layer {
    const LayerKind *kind;
    int index;             /* 0-based position among the layers */
    char *label;           /* the source's label or the automatic name */
    bool auto_label;
    Loc loc;               /* the kind's word in the source */
    Loc stmt_loc;
    int inputs[CNNC_MAX_INPUTS];  /* the tensors it reads */
    int ninputs;
    Shape ins[CNNC_MAX_INPUTS];   /* their shapes */
    Shape in, out;         /* in: the first input's shape */
    /* For messages, what gives each input: "MaxPool", "Input" or a label,
     * and its line; in_from and in_line are the first input's. */
    const char *ins_from[CNNC_MAX_INPUTS];
    int ins_line[CNNC_MAX_INPUTS];
    Loc ins_loc[CNNC_MAX_INPUTS]; /* where a merge layer names each input */
    const char *ins_label[CNNC_MAX_INPUTS]; /* the label of each input's layer,
                                 or of Input ("Input" when it has none) */
    const char *in_from;
    int in_line;
    ArgVal args[CNNC_MAX_ARGS];   /* settled, indexed as kind->args */
    Param params[2];
    int nparams;
    Buffer buffers[3];
    int nbuffers;
    Init init;             /* the layer's init= or Train's */
} Layer;

typedef struct Tensor {
    Shape shape;
    int producer;          /* its layer, or -1 for the input */
    int *consumers;        /* the layers that read it, in source order (a
                              layer reading it twice is listed twice) */
    int nconsumers;
} Tensor;

typedef struct Network {
    char *name;            /* file stem: "seed" for models/seed.net */
    char *source_name;
    Shape input;
    Loc input_loc;
    char *input_label;     /* "img" of "img: Input(...)", or NULL */
    /* Input(mean=, std=): inputs become (x - mean[c]) / std[c], channel by
     * channel, after the uint8 scaling; norm_channels 0 when not given. */
    int norm_channels;
    double input_mean[CNNC_MAX_LIST], input_std[CNNC_MAX_LIST];
    Layer *layers;
    int nlayers;
    Tensor *tensors;       /* [nlayers + 1] */
    Train train;
} Network;

/* Checks the Ast. Returns the Network when it has no errors (warnings are
 * fine), NULL otherwise; all problems are reported through d. */
Network *check_ast(const Ast *ast, const char *source_name, Diag *d);
void network_free(Network *n);

/* The tensor layer l writes. */
static inline int layer_output(const Layer *l)
{
    return l->index + 1;
}
/* The tensor's name in generated code and messages: its layer's label, or
 * "input". */
const char *tensor_name(const Network *n, int t);
/* Whether cross-entropy fuses the last layer (a Softmax) into the loss. */
bool network_fuses_softmax(const Network *n);

/* Train's defaults as the spec gives them. */
Train train_defaults(void);

/* For the shape rules in the layer files: check that l->in is a map (or a
 * vector), else report "Dense needs a vector, but MaxPool (line 6) gives
 * 10x10x105" at l->loc with the hint given (may be NULL). */
bool layer_need_map(const Layer *l, const char *hint, Diag *d);
bool layer_need_vector(const Layer *l, const char *hint, Diag *d);
/* Appends a parameter tensor (dims in PyTorch's layout) to l->params; the
 * suffix "bias" marks a bias. Reports a tensor whose element count
 * overflows or exceeds CNNC_MAX_ELEMS. */
bool layer_add_param(Layer *l, const char *suffix, int rank, const int64_t dims[],
                     int64_t fan_in, int64_t fan_out, Diag *d);
/* Appends a buffer of count elements (a scalar when count is 0) to
 * l->buffers. */
void layer_add_buffer(Layer *l, const char *suffix, int64_t count, bool is_int64, double start);
/* LayerKind.flops of the kinds that do no multiply-adds: 0. */
double layer_no_flops(const Layer *l);

/* ------------------------------------------------------------------------
 * plan.c: the memory plan, shared by --summary and the code generator
 */

/* Where tensor t's values and gradient live in a lane's workspace. */
typedef struct TensorPlace {
    int64_t off;            /* bytes: its values [micro][elems] (or the
                               buffer it shares); the input's: none */
    int over;               /* the tensor whose buffer it writes over (its
                               layer works in place), else -1 */
    bool one_sample;        /* the buffer holds one sample: its layer
                               streams it into its one consumer */
    bool needs_grad;        /* backward computes dL/d it: a layer that
                               learns lies upstream, and a consumer uses it */
    int grad_slot;          /* its gradient's buffer, while it lives */
} TensorPlace;

/* Where layer i's things live and what its code does. */
typedef struct LayerPlace {
    int64_t param_off[2];   /* values into the parameter block: weight, bias */
    int64_t buffer_off[3];  /* bytes into the buffer block */
    int64_t scratch_off;    /* bytes into the workspace: its own scratch */
    bool in_place;          /* its output is written over its input */
    bool relu_out;          /* forward applies the ReLU after it */
    bool relu_in;           /* backward applies the ReLU before it: dx = 0
                               where x <= 0 */
    bool forward_fused;     /* a ReLU: forward done by the layer before */
    bool backward_fused;    /* a ReLU: backward done by the layer after */
    int stats_to;           /* forward also writes the lane's statistics of
                               its output for this batch_stats layer, its
                               only consumer; -1: none */
    bool stats_fused;       /* a batch_stats layer whose lane statistics the
                               layer before writes: no L_stats */
    bool streamed;          /* its output is kept for one sample: its
                               consumer (after the ReLU it applies) takes it
                               a sample at a time, and no backward reads it */
    int stream_to;          /* that consumer */
    bool backward;          /* backward runs it (not a Softmax fused into
                               the loss, nor a fused ReLU) */
    /* For each input: backward writes dL/d it into dx_tensor's gradient
     * (the input itself, or the input of the ReLU fused before it), adding
     * (+=) when another consumer wrote there first, else overwriting. */
    bool need_dx[CNNC_MAX_INPUTS];
    bool dx_add[CNNC_MAX_INPUTS];
    int dx_tensor[CNNC_MAX_INPUTS];
    int dy_tensor;          /* whose gradient it reads as dy */
} LayerPlace;

typedef struct MemPlan {
    int kernels;            /* the tier planned for (Kernels) */
    bool *compact;          /* [nlayers] in a fast trainer, the layers given
                               the compact (reference) kernels; NULL: none */
    int64_t real_size;      /* bytes of one value: 4 (f32) or 8 (f64) */
    int64_t batch;          /* the compiled (largest) batch */
    int64_t micro;          /* samples per pass through the layers */
    LayerPlace *at;         /* [nlayers] */
    TensorPlace *t;         /* [nlayers + 1] */
    int loss_tensor;        /* the tensor whose gradient the loss gives: the
                               output, or a fused Softmax's input */
    int64_t full_out_off;   /* bytes: the network's output [batch][outputs] */
    int64_t full_logits_off; /* bytes: the input of a fused Softmax, [batch][outputs] */
    int64_t full_dy_off;    /* bytes: dL/d those, [batch][outputs] */
    int64_t params;         /* values (and as many gradients) */
    int64_t opt_state;      /* values */
    int64_t buffer_bytes;   /* the buffer block (running statistics) */
    bool phased;            /* a layer normalises with the batch's statistics
                               (BatchNorm), fast tier: each lane takes its
                               share of the batch as one micro-batch, and a
                               training step goes in phases between which the
                               lanes meet (emit.c) */
    int ngrad_slots;        /* gradient buffers: fast, each as large as the
                               largest tensor at the micro-batch; reference,
                               one per tensor */
    int64_t *grad_slot_off; /* [ngrad_slots] bytes */
    int64_t *grad_slot_elems; /* [ngrad_slots] values per sample */
    int64_t activations;    /* bytes: the tensors kept at the micro-batch */
    int64_t gradient_buffers; /* bytes */
    int64_t layer_scratch;  /* bytes: repacked weights, argmax, masks */
    int64_t input_off;      /* bytes: a micro-batch's input in reals, which a
                               step from bytes converts it to */
    int64_t input_bytes;    /* its bytes */
    int64_t lane_bytes;     /* bytes of one lane's workspace, header and
                               alignment included */
    int lanes_asked;        /* --lanes; 0: the plan's choice (PLAN_LANES) */
    int lanes;              /* lanes a step's micro-batches are dealt to */
    int64_t lane_samples;   /* the most samples a lane takes in a step */
    int64_t lane_grads_off; /* bytes: the gradients of lanes 1.., after the
                               lanes' workspaces */
    int64_t workspace;      /* bytes in all: lanes * lane_bytes + the lanes'
                               gradients */
    int64_t total_bytes;    /* parameters, gradients, state and workspace */
} MemPlan;

/* The kernels a trainer is made of: fast (tiled, threaded) or reference
 * (the plain loops of the math: one micro-batch, one lane, one thread). */
typedef enum Kernels { KERNELS_FAST, KERNELS_REFERENCE } Kernels;

/* The most lanes cnnc --lanes plans: each has a workspace and a copy of
 * the gradients, and more than the cores of a large machine only cost
 * memory. */
#define PLAN_MAX_LANES 64

/* False when a size would overflow int64; the plan is then empty.
 * plan_free releases a plan that succeeded. micro: samples per pass (0:
 * the plan's choice; the reference tier takes the whole batch). lanes:
 * the fast tier's lanes, 1 to PLAN_MAX_LANES, which plan_lanes_fit must
 * have accepted (0: two, or one when the batch is one micro-batch; the
 * reference tier has one). */
bool plan_network(const Network *n, int64_t real_size, int64_t micro, int lanes,
                  Kernels kernels, MemPlan *p);
/* The same, with the layers where compact[i] holds given the reference
 * kernels in a fast trainer: nothing fused into them, nothing streamed, no
 * scratch (emit.c's budget of generated code decides which). */
bool plan_network_mixed(const Network *n, int64_t real_size, int64_t micro, int lanes,
                        Kernels kernels, const bool *compact, MemPlan *p);
void plan_free(MemPlan *p);
/* Whether a fast trainer of n can deal a step to `lanes` lanes (each needs
 * a micro-batch) at micro-batch micro (0: the plan's choice); if not, why,
 * in why[size] (cnnc's message, after "error: "). */
bool plan_lanes_fit(const Network *n, int64_t micro, int lanes, char *why, size_t size);

/* ------------------------------------------------------------------------
 * summary.c: cnnc --summary
 */

/* micro: samples per pass, lanes: the lanes (0: the plan's choice). */
void summary_print(FILE *f, const Network *n, int64_t real_size, int64_t micro, int lanes,
                   Kernels kernels, int64_t fast_budget);

/* ------------------------------------------------------------------------
 * emit.c: Network -> the C of its trainer (against runtime/cnnrt.h and
 * runtime/cnnrt_gen.h)
 *
 * The emitted file holds, per layer, a forward and a backward function
 * whose signatures are the same for every kind with one input:
 *
 *   static void L_forward(const cnnrt_lane *ln, int n,
 *                         const real *restrict x,   // [n][in]
 *                         real *restrict y);        // [n][out]
 *   static void L_backward(const cnnrt_lane *ln, int n,
 *                          const real *restrict x, const real *restrict y,
 *                          const real *restrict dy, // [n][out]
 *                          real *restrict dx);      // [n][in]: NULL when
 *                                                   // nobody needs it
 *
 * and for a merge layer of k inputs x0.. x{k-1} (and dx0.. dx{k-1}) in
 * place of x (and dx). ln is the lane (runtime/cnnrt.h): its workspace,
 * gradients and micro-batch. Backward adds (+=) the layer's parameter
 * gradients into ln->grads at L_weight / L_bias, summed over the lane's
 * micro-batches, and writes dx, overwriting it or adding to it as
 * LayerCode.dx_add says (the reference tier always adds: its gradients
 * start at zero). Maps are NHWC per sample; parameters keep PyTorch's
 * layout in the parameter block (what checkpoints hold) and fast kernels
 * repack them into their scratch as they need.
 */

typedef struct Emitter Emitter;

/* What the driver decided for one layer; its emitters read only this. */
typedef struct LayerCode {
    const Layer *l;
    const char *name;      /* the C prefix: the layer's label */
    Kernels kernels;
    int ninputs;
    bool need_dx[CNNC_MAX_INPUTS]; /* compute dL/d input k */
    bool dx_add[CNNC_MAX_INPUTS];  /* add into dx k rather than overwrite */
    bool fused_into_loss;  /* the last Softmax under cross-entropy: the loss
                              computes its input gradient; emit no backward */
    int64_t batch;         /* samples per call at most: the micro-batch */
    int64_t lane_samples;  /* samples per lane and step at most (a multiple
                              of batch; batch when a lane has one call) */
    bool in_place;         /* x and y are the same buffer */
    bool relu_out;         /* forward: y = max(y, 0), for the ReLU after it */
    bool relu_in;          /* backward: dx = 0 where x <= 0, for the ReLU
                              before it (x is that ReLU's output) */
    bool forward_fused;    /* a ReLU whose forward the layer before does: emit none */
    bool backward_fused;   /* a ReLU whose backward the layer after does: emit none */
    bool streamed_into;    /* forward_sample is called (the layer before streams) */
    const char *stats_to;  /* forward also writes the lane's statistics of y
                              for this batch_stats layer (its label); NULL:
                              none */
    bool stats_fused;      /* a batch_stats layer: the layer before writes
                              the lane's statistics; emit no L_stats */
    int64_t scratch_off;   /* bytes into the workspace: the layer's scratch */
} LayerCode;

/* Whether the layer computes any input gradient. */
bool code_needs_dx(const LayerCode *c);

/* Emits one line of C: the text is formatted, indented, and a line ending in
 * '{' opens a level, one starting with '}' closes it. */
void emit(Emitter *e, const char *fmt, ...) CNNC_PRINTF(2, 3);
void emit_blank(Emitter *e);
/* A comment line "/" "* text *" "/", indented. */
void emit_comment(Emitter *e, const char *fmt, ...) CNNC_PRINTF(2, 3);
/* Emits "for (int VAR = 0; VAR < LIMIT; VAR++) {". */
void emit_for(Emitter *e, const char *var, int64_t limit);
/* The value size of the trainer being written: 4 (float) or 8 (double). */
int64_t emit_real_size(const Emitter *e);

/* The arguments of a layer function: forward (ln, n, x, y); backward (ln,
 * n, x, y, dy, dx); its weight phase (ln, n, x, dy) and data phase (ln, n,
 * x, dy, dx); a forward of one sample (ln, i, xi, yi), i its place in the
 * micro-batch; and statistics of the input (ln, n, x). */
typedef enum Signature {
    SIG_FORWARD, SIG_BACKWARD, SIG_WEIGHTS, SIG_DATA, SIG_SAMPLE, SIG_STATS
} Signature;
/* A layer function: "static void L_PHASE(...) {" with the arguments of sig,
 * and its end. Parallel loops inside it become functions of their own,
 * written before it (see emit_parallel). noinline: keep it out of line, so
 * that a profile names it. */
void emit_function_begin(Emitter *e, const LayerCode *c, const char *phase, Signature sig,
                         bool noinline);
void emit_function_end(Emitter *e);
/* The forward / backward of c with the uniform signature. */
void emit_forward_begin(Emitter *e, const LayerCode *c);
void emit_backward_begin(Emitter *e, const LayerCode *c);
/* A declaration (or a few statements) the function's parallel loops may
 * need too: written here, and again at the top of each loop function that
 * names NAME (with what it names in turn). NAME may list several names
 * separated by spaces (an enum's). */
void emit_local(Emitter *e, const char *name, const char *fmt, ...) CNNC_PRINTF(3, 4);
/* "for (int VAR = 0; VAR < COUNT; VAR++) {" whose iterations are shared
 * among the threads: the body, up to emit_parallel_end, becomes a function
 * of its own that cnnrt_parallel calls on chunks of at least GRAIN
 * iterations. COUNT is a C expression of the function's locals. */
void emit_parallel(Emitter *e, const char *var, const char *count, int64_t grain);
void emit_parallel_end(Emitter *e);
/* A loop of independent items as c's tier writes it: shared among the
 * threads (emit_parallel) in the fast tier, a plain for in the reference. */
void emit_loop(Emitter *e, const LayerCode *c, const char *var, const char *count,
               int64_t grain);
void emit_loop_end(Emitter *e, const LayerCode *c);

/* The whole backward of a layer without parameters when no input needs a
 * gradient: a comment, the signature and every argument cast to void. */
void emit_backward_nothing(Emitter *e, const LayerCode *c);
/* The backward of a layer with parameters as two phases of their own,
 * L_backward_weights (dw, db from x and dy: WEIGHTS writes its body) and,
 * when c needs dx, L_backward_data (dx from dy, and x for a ReLU before
 * it: DATA), and the L_backward that calls them; kept out of line so that
 * a profile names each phase. */
typedef void BackwardPhase(Emitter *e, const LayerCode *c, const void *geom);
void emit_backward_phases(Emitter *e, const LayerCode *c, BackwardPhase *weights,
                          BackwardPhase *data, const void *geom);
/* "dx[j] = V" or "dx[j] += V" as c->dx_add[k] says: the operator. */
const char *dx_op(const LayerCode *c, int k);
/* For a kernel that can only add into dx: "memset(dx, 0, ...)" for each
 * input whose gradient it writes first (c->dx_add[k] false). */
void emit_dx_clear(Emitter *e, const LayerCode *c);

/* Whether the kernel window of taps is small enough to unroll. */
#define EMIT_UNROLL_TAPS 16

typedef struct EmitOptions {
    int64_t real_size;     /* 4 or 8 */
    int64_t micro;         /* samples per pass through the layers; 0: the plan's */
    int lanes;             /* lanes a step is dealt to (--lanes); 0: the plan's */
    Kernels kernels;
    int64_t fast_budget;   /* bytes of fast layer code at most (0: 8 MiB) */
    bool note_compact;     /* say on stderr when layers get compact kernels */
    const bool *compact;   /* the layers with compact kernels, as
                              emit_kernels_checked chose them; NULL: choose */
    const Source *src;     /* embedded in the trainer (checkpoint metadata) */
} EmitOptions;

/* Writes the trainer's C for n to out. False on a write error, or (with a
 * message) when the trainer would be too large to compile. */
bool emit_network(FILE *out, const Network *n, const EmitOptions *o);
/* Which layers of a fast trainer get compact (reference) kernels so that
 * its code stays within budget: compact[nlayers], *ncompact of them, and
 * about *bytes of C in all. False when even then it is too large. */
bool emit_choose_kernels(const Network *n, int64_t real_size, int64_t micro, int lanes,
                         int64_t budget, bool *compact, int *ncompact, int64_t *bytes);
/* emit_choose_kernels for o, with the error when the trainer would be too
 * large (false) and, when o asks, the note when layers get compact kernels. */
bool emit_kernels_checked(const Network *n, const EmitOptions *o, bool *compact, int *ncompact);

/* FLOP per sample of one training step: forward, the weight gradients, and
 * the input gradients that are computed. */
double network_train_flops(const Network *n);

/* ------------------------------------------------------------------------
 * dot.c: the network as a Graphviz picture
 */
bool emit_dot(FILE *out, const Network *n);

#endif /* CNNC_H */
