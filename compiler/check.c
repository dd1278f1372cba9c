/* check.c: the shape checker, Ast -> Network.
 *
 * A survey of the statements first (where Input is, which layers have which
 * labels, which layer is last), then one pass in source order, so that the
 * messages come out in the order of the file:
 *
 *   Input(HxWxC | HxW | F)       first, once; it starts shape inference
 *   [LABEL:] Layer(args) [-> S]  args matched against the kind's schema,
 *                                the kind's shape rule run on the shape so
 *                                far, the annotation compared with it
 *   Train(settings)              once, anywhere
 *
 * After errors: shape inference stops at the first layer that cannot give an
 * output shape (bad arguments, a failed shape rule, an output too large),
 * since every later shape would be a guess and its errors noise. Later
 * statements still have their words, labels and arguments checked, and the
 * file-wide rules (Softmax last, loss, no layers) are checked at the end.
 * When syntax errors dropped statements from the Ast, rules about what is
 * missing (no Input, no layers) are not checked: the statement may be there.
 * Likewise an unknown word is taken for the layer or declaration it failed
 * to name: shapes stop there, a misspelt Input is no "missing Input", and
 * unknown layers are no "network with no layers".
 *
 * A statement whose word is no name at all ("" for one the parser lost to a
 * syntax error, "R?LU" for one with a stray byte) has been reported by the
 * parser or the scanner: the checker says nothing more about it, but stops
 * inferring shapes there. The Network is returned only when there are no
 * errors at all. */
#include "cnnc.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------------
 * The registry of layer kinds and the enum names
 */

const LayerKind *const layer_kinds[] = {
#define LAYER(kind_, var_) &var_,
#include "layers.def"
#undef LAYER
};
const int nlayer_kinds = (int)(sizeof layer_kinds / sizeof layer_kinds[0]);

const LayerKind *layer_kind_find(const char *name)
{
    for (int i = 0; i < nlayer_kinds; i++)
        if (strcmp(layer_kinds[i]->name, name) == 0)
            return layer_kinds[i];
    return NULL;
}

static int kind_index(const LayerKind *k)
{
    for (int i = 0; i < nlayer_kinds; i++)
        if (layer_kinds[i] == k)
            return i;
    return 0;
}

/* tag: enum-names. NULL-terminated: they are ARG_CHOICE lists too. */
const char *const loss_names[] = {"cross_entropy", "mse", NULL};
const char *const optimizer_names[] = {"sgd", "momentum", "nesterov", "adam", "adamw", NULL};
const char *const schedule_names[] = {"constant", "step", "cosine", NULL};
const char *const init_names[] = {"he_normal", "he_uniform", "glorot_normal",
                                  "glorot_uniform", NULL};

/* ------------------------------------------------------------------------
 * Schemas of the declarations
 */

enum { INPUT_SHAPE, INPUT_MEAN, INPUT_STD, INPUT_NARGS };

/* Input(HxWxC) = Input(shape=HxWxC). Each side may be as large as int64
 * holds here, so that a too-large input gets the "holds N values" message.
 * mean= and std= normalise, one number or one per channel. */
static const ArgSpec input_args[INPUT_NARGS] = {
    [INPUT_SHAPE] = {.key = "shape", .type = ARG_SHAPE, .required = true, .position = 0,
                     .imin = 1, .imax = INT64_MAX, .doc = "HxWxC, HxW or F, e.g. 28x28x1"},
    [INPUT_MEAN] = {.key = "mean", .type = ARG_FLOATS, .position = -1, .fmin = -INFINITY,
                    .fmax = INFINITY, .doc = "subtracted: one number, or [one per channel]"},
    [INPUT_STD] = {.key = "std", .type = ARG_FLOATS, .position = -1, .fmin = 0,
                   .fmin_open = true, .fmax = INFINITY,
                   .doc = "divided by: one number, or [one per channel]"},
};

enum {
    TRAIN_BATCH, TRAIN_EPOCHS, TRAIN_LOSS, TRAIN_OPTIMIZER, TRAIN_LR, TRAIN_MOMENTUM,
    TRAIN_BETA1, TRAIN_BETA2, TRAIN_EPS, TRAIN_DECAY, TRAIN_INIT, TRAIN_SEED,
    TRAIN_SCHEDULE, TRAIN_GAMMA, TRAIN_STEP_SIZE, TRAIN_WARMUP, TRAIN_LABEL_SMOOTHING,
    TRAIN_CLIP, TRAIN_FLIP, TRAIN_CROP, TRAIN_NARGS
};

/* Ranges as PyTorch checks them, but eps > 0 (Adam divides by it when a
 * gradient is exactly zero) and momentum < 1 (it would never forget). */
_Static_assert(TRAIN_NARGS <= CNNC_MAX_ARGS, "Train's settings fit an ArgVal array");
static const ArgSpec train_args[TRAIN_NARGS] = {
    [TRAIN_BATCH] = {.key = "batch", .type = ARG_INT, .position = -1, .imin = 1,
                     .imax = CNNC_MAX_ELEMS, .doc = "samples per step"},
    [TRAIN_EPOCHS] = {.key = "epochs", .type = ARG_INT, .position = -1, .imin = 1,
                      .imax = INT32_MAX, .doc = "passes over the data"},
    [TRAIN_LOSS] = {.key = "loss", .type = ARG_CHOICE, .position = -1, .choices = loss_names},
    [TRAIN_OPTIMIZER] = {.key = "optimizer", .type = ARG_CHOICE, .position = -1,
                         .choices = optimizer_names},
    [TRAIN_LR] = {.key = "lr", .type = ARG_FLOAT, .position = -1, .fmin = 0,
                  .fmin_open = true, .fmax = INFINITY, .doc = "learning rate"},
    [TRAIN_MOMENTUM] = {.key = "momentum", .type = ARG_FLOAT, .position = -1, .fmin = 0,
                        .fmax = 1, .fmax_open = true},
    [TRAIN_BETA1] = {.key = "beta1", .type = ARG_FLOAT, .position = -1, .fmin = 0, .fmax = 1,
                     .fmax_open = true},
    [TRAIN_BETA2] = {.key = "beta2", .type = ARG_FLOAT, .position = -1, .fmin = 0, .fmax = 1,
                     .fmax_open = true},
    [TRAIN_EPS] = {.key = "eps", .type = ARG_FLOAT, .position = -1, .fmin = 0,
                   .fmin_open = true, .fmax = INFINITY},
    [TRAIN_DECAY] = {.key = "decay", .type = ARG_FLOAT, .position = -1, .fmin = 0,
                     .fmax = INFINITY, .doc = "L2 weight decay"},
    [TRAIN_INIT] = {.key = "init", .type = ARG_CHOICE, .position = -1, .choices = init_names},
    [TRAIN_SEED] = {.key = "seed", .type = ARG_INT, .position = -1, .imin = 0,
                    .imax = INT64_MAX},
    [TRAIN_SCHEDULE] = {.key = "schedule", .type = ARG_CHOICE, .position = -1,
                        .choices = schedule_names, .doc = "the learning rate's course"},
    [TRAIN_GAMMA] = {.key = "gamma", .type = ARG_FLOAT, .position = -1, .fmin = 0,
                     .fmin_open = true, .fmax = INFINITY, .doc = "schedule=step's factor"},
    [TRAIN_STEP_SIZE] = {.key = "step_size", .type = ARG_INT, .position = -1, .imin = 1,
                         .imax = INT32_MAX, .doc = "schedule=step: epochs between steps"},
    [TRAIN_WARMUP] = {.key = "warmup", .type = ARG_FLOAT, .position = -1, .fmin = 0,
                      .fmax = 1e9, .doc = "epochs of linear warm-up"},
    [TRAIN_LABEL_SMOOTHING] = {.key = "label_smoothing", .type = ARG_FLOAT, .position = -1,
                               .fmin = 0, .fmax = 1, .fmax_open = true},
    [TRAIN_CLIP] = {.key = "clip", .type = ARG_FLOAT, .position = -1, .fmin = 0,
                    .fmin_open = true, .fmax = INFINITY, .doc = "the gradients' L2 norm at most"},
    [TRAIN_FLIP] = {.key = "flip", .type = ARG_BOOL, .position = -1,
                    .doc = "random horizontal flips"},
    [TRAIN_CROP] = {.key = "crop", .type = ARG_INT, .position = -1, .imin = 0, .imax = 1 << 20,
                    .doc = "random crops after padding this many pixels"},
};

Train train_defaults(void)
{
    return (Train){
        .batch = 32,
        .epochs = 1,
        .loss = LOSS_CROSS_ENTROPY,
        .optimizer = OPT_SGD,
        .lr = 0.01,
        .momentum = 0.9,
        .beta1 = 0.9,
        .beta2 = 0.999,
        .eps = 1e-8,
        .decay = 0,
        .init = INIT_HE_NORMAL,
        .seed = 1,
        .schedule = SCHEDULE_CONSTANT,
        .gamma = 0.1,
        .step_size = 1,
    };
}

/* ------------------------------------------------------------------------
 * Helpers for the layer files' shape rules
 */

double layer_no_flops(const Layer *l)
{
    (void)l;
    return 0.0;
}

bool layer_need_map(const Layer *l, const char *hint, Diag *d)
{
    if (l->in.rank == 3)
        return true;
    char buf[64];
    diag_error(d, l->loc, "%s needs an HxWxC map, but %s (line %d) gives a vector of %s",
               l->kind->name, l->in_from, l->in_line, shape_str(l->in, buf, sizeof buf));
    if (!hint)
        hint = l->kind->on_vector_hint;
    if (hint)
        diag_hint(d, "%s", hint);
    return false;
}

bool layer_need_vector(const Layer *l, const char *hint, Diag *d)
{
    if (l->in.rank == 1)
        return true;
    char buf[64];
    diag_error(d, l->loc, "%s needs a vector, but %s (line %d) gives %s", l->kind->name,
               l->in_from, l->in_line, shape_str(l->in, buf, sizeof buf));
    if (hint)
        diag_hint(d, "%s", hint);
    return false;
}

/* "10,000,000,000": a count as people read it (v >= 0). */
static const char *grouped(int64_t v, char *buf, size_t size)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%" PRId64, v);
    size_t used = 0;
    for (int i = 0; i < n && used + 2 < size; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[used++] = ',';
        buf[used++] = digits[i];
    }
    buf[used] = '\0';
    return buf;
}

/* "[945, 945]" */
static const char *dims_text(int rank, const int64_t dims[], char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%" PRId64, i ? ", " : "",
                                 dims[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
    return buf;
}

bool layer_add_param(Layer *l, const char *suffix, int rank, const int64_t dims[],
                     int64_t fan_in, int64_t fan_out, Diag *d)
{
    int64_t count = 1;
    bool fits = true;
    for (int i = 0; i < rank; i++)
        fits = fits && mul_ok(count, dims[i], &count);
    if (!fits || count > CNNC_MAX_ELEMS) {
        char buf[128], n[32], most[32];
        dims_text(rank, dims, buf, sizeof buf);
        grouped(CNNC_MAX_ELEMS, most, sizeof most);
        if (fits)
            diag_error(d, l->loc, "%s.%s %s holds %s values; at most %s per tensor", l->label,
                       suffix, buf, grouped(count, n, sizeof n), most);
        else
            diag_error(d, l->loc, "%s.%s %s holds more than %s values; at most %s per tensor",
                       l->label, suffix, buf, grouped(INT64_MAX, n, sizeof n), most);
        return false;
    }
    Param *p = &l->params[l->nparams++];
    *p = (Param){.suffix = suffix, .rank = rank, .count = count, .fan_in = fan_in,
                 .fan_out = fan_out, .is_bias = strcmp(suffix, "bias") == 0};
    for (int i = 0; i < rank; i++)
        p->dims[i] = dims[i];
    return true;
}

void layer_add_buffer(Layer *l, const char *suffix, int64_t count, bool is_int64, double start)
{
    l->buffers[l->nbuffers++] = (Buffer){.suffix = suffix, .count = count ? count : 1,
                                         .scalar = count == 0, .is_int64 = is_int64,
                                         .start = start};
}

/* ------------------------------------------------------------------------
 * The checker's state
 */

typedef struct Checker {
    Diag *d;
    Network *net;
    /* From the survey. */
    const Stmt *input;        /* the first Input */
    const Stmt *train;        /* the first Train */
    const Stmt *first_layer, *last_layer;
    bool input_late;          /* a layer comes before the first Input */
    bool input_misspelt;      /* an unknown word looks like Input */
    int nunknown;             /* statements whose word is unknown */
    bool partial;             /* syntax errors dropped statements from the Ast */
    const Stmt **labelled;    /* the labelled layer and Input statements, in order */
    int nlabelled;
    struct LabelEntry *by_label; /* the same, sorted by label (then order) */
    int *label_tensor;        /* [nlabelled]: the tensor of labelled[i], -1
                                 until its statement is checked */
    /* Along the pass. */
    int *kind_counts;         /* layers of each kind so far, for automatic names */
    int cur;                  /* the tensor a statement reads by default (the
                                 one before it gives), or -1 when unknown */
    bool *known;              /* [tensor]: its shape was inferred */
    const char **from;        /* [tensor]: what gives it, for messages */
    int *from_line;           /* [tensor]: and on which line */
    ArgVal train_vals[TRAIN_NARGS];
} Checker;

static bool is_word(const Stmt *st, const char *word)
{
    return strcmp(st->word, word) == 0;
}

static bool is_known_word(const char *word)
{
    return layer_kind_find(word) || strcmp(word, "Input") == 0 || strcmp(word, "Train") == 0;
}

static const char *known_word_like(const char *word);

/* "C1 Conv(...)": a word alone, then a known word on the same line. Not
 * when the word itself is a layer's name but for case or one edit ("relu
 * Flatten", "Rleu Flatten"): a misspelt layer, more likely than a label,
 * unless it ends in a digit as numbered labels do ("conv1 Conv(...)"). */
static bool label_without_colon(const Stmt *st)
{
    const Stmt *next = st->next;
    if (!next || !is_name(st->word) || st->label || st->has_parens || st->has_annotation ||
        next->label || next->word_loc.first_line != st->word_loc.last_line ||
        !is_known_word(next->word))
        return false;
    size_t len = strlen(st->word);
    if (len > 64 || isdigit((unsigned char)st->word[len - 1]))
        return true;
    char word[72], name[72];
    for (size_t i = 0; i <= len; i++)
        word[i] = (char)tolower((unsigned char)st->word[i]);
    for (int k = 0; k < nlayer_kinds; k++) {
        const char *n = layer_kinds[k]->name;
        size_t i = 0;
        for (; n[i] && i + 1 < sizeof name; i++)
            name[i] = (char)tolower((unsigned char)n[i]);
        name[i] = '\0';
        if (edit_distance(word, name) <= 1)
            return false;
    }
    return true;
}

/* Statements whose labels name a tensor: layers and Input. */
static bool names_tensor(const Stmt *st)
{
    return layer_kind_find(st->word) || is_word(st, "Input");
}

/* A labelled statement and its place in the file's order, sorted by label
 * so that a network of thousands of labels is looked up in log time. */
typedef struct LabelEntry {
    const char *label;
    int order;
} LabelEntry;

static int by_label(const void *a, const void *b)
{
    const LabelEntry *x = a, *y = b;
    int d = strcmp(x->label, y->label);
    return d ? d : x->order - y->order;
}

static void sort_labels(Checker *c)
{
    c->by_label = xcalloc((size_t)c->nlabelled + 1, sizeof *c->by_label);
    for (int i = 0; i < c->nlabelled; i++) {
        c->by_label[i] = (LabelEntry){c->labelled[i]->label, i};
        c->label_tensor[i] = -1;
    }
    qsort(c->by_label, (size_t)c->nlabelled, sizeof *c->by_label, by_label);
}

/* The order (index into c->labelled) of the first labelled layer or Input
 * statement with this label, or -1. */
static int label_index(const Checker *c, const char *label)
{
    int lo = 0, hi = c->nlabelled;    /* the first entry >= (label, 0) */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(c->by_label[mid].label, label) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->nlabelled && strcmp(c->by_label[lo].label, label) == 0
               ? c->by_label[lo].order : -1;
}

/* The first labelled layer or Input statement with this label, or NULL. */
static const Stmt *label_owner(const Checker *c, const char *label)
{
    int i = label_index(c, label);
    return i >= 0 ? c->labelled[i] : NULL;
}

/* Records that statement st, if it owns its label, gives tensor t. */
static void label_gives(Checker *c, const Stmt *st, int t)
{
    int i = st->label ? label_index(c, st->label) : -1;
    if (i >= 0 && c->labelled[i] == st)
        c->label_tensor[i] = t;
}

static void survey(Checker *c, const Ast *ast)
{
    int nlayers = 0;
    for (const Stmt *st = ast->first; st; st = st->next) {
        if (is_word(st, "Input") && !c->input)
            c->input = st;
        else if (is_word(st, "Train") && !c->train)
            c->train = st;
        if (!is_known_word(st->word) && !label_without_colon(st)) {
            const char *near = is_name(st->word) ? known_word_like(st->word) : NULL;
            c->input_misspelt |= near && strcmp(near, "Input") == 0;
            c->nunknown++;
        }
        if (st->label && names_tensor(st))
            c->nlabelled++;
        if (!layer_kind_find(st->word))
            continue;
        nlayers++;
        if (!c->first_layer)
            c->first_layer = st;
        c->last_layer = st;
        if (!c->input)
            c->input_late = true;
    }
    c->labelled = xcalloc((size_t)c->nlabelled + 1, sizeof *c->labelled);
    c->label_tensor = xcalloc((size_t)c->nlabelled + 1, sizeof *c->label_tensor);
    c->nlabelled = 0;
    for (const Stmt *st = ast->first; st; st = st->next)
        if (st->label && names_tensor(st))
            c->labelled[c->nlabelled++] = st;
    sort_labels(c);
    c->net->layers = xcalloc((size_t)nlayers + 1, sizeof *c->net->layers);
    c->kind_counts = xcalloc((size_t)nlayer_kinds, sizeof *c->kind_counts);
    c->known = xcalloc((size_t)nlayers + 1, sizeof *c->known);
    c->from = xcalloc((size_t)nlayers + 1, sizeof *c->from);
    c->from_line = xcalloc((size_t)nlayers + 1, sizeof *c->from_line);
}


/* ------------------------------------------------------------------------
 * Sizes and annotations
 */

/* A per-sample tensor must hold at most CNNC_MAX_ELEMS values. */
static bool elems_ok(Diag *d, Loc loc, const char *what, Shape s)
{
    int64_t n;
    char buf[64], count[32], most[32];
    shape_str(s, buf, sizeof buf);
    grouped(CNNC_MAX_ELEMS, most, sizeof most);
    if (mul_ok(s.h, s.w, &n) && mul_ok(n, s.c, &n)) {
        if (n <= CNNC_MAX_ELEMS)
            return true;
        diag_error(d, loc, "%s %s holds %s values; at most %s per sample", what, buf,
                   grouped(n, count, sizeof count), most);
    } else {
        diag_error(d, loc, "%s %s holds more than %s values; at most %s per sample", what, buf,
                   grouped(INT64_MAX, count, sizeof count), most);
    }
    return false;
}

/* -> 10x10x3 (a map), -> 28x28 (a map of one channel), -> 945 (a vector). */
static bool annotation_shape(const Value *v, Shape *s, char *text, size_t size)
{
    if (v->kind == VAL_INT) {
        *s = shape_vector(v->u.i);
        snprintf(text, size, "%" PRId64, v->u.i);
    } else if (v->kind == VAL_DIMS && v->u.dims.n == 3) {
        *s = shape_map(v->u.dims.d[0], v->u.dims.d[1], v->u.dims.d[2]);
        shape_str(*s, text, size);
    } else if (v->kind == VAL_DIMS && v->u.dims.n == 2) {
        *s = shape_map(v->u.dims.d[0], v->u.dims.d[1], 1);
        snprintf(text, size, "%" PRId64 "x%" PRId64, v->u.dims.d[0], v->u.dims.d[1]);
    } else {
        return false;
    }
    return true;
}

static void check_annotation(Checker *c, const Stmt *st, const char *what, Shape got)
{
    if (!st->has_annotation)
        return;
    Shape want;
    char said[64], gives[64];
    if (!annotation_shape(&st->annotation, &want, said, sizeof said)) {
        diag_error(c->d, st->annotation.loc, "an annotation is a shape like 10x10x3 or 945");
        return;
    }
    if (!shape_equal(want, got))
        diag_error(c->d, st->annotation.loc, "annotation says %s, but %s gives %s", said, what,
                   shape_str(got, gives, sizeof gives));
}

/* ------------------------------------------------------------------------
 * Input and Train
 */

static void no_label(Checker *c, const Stmt *st)
{
    if (!st->label)
        return;
    diag_error(c->d, st->label_loc, "%s cannot have a label", st->word);
    diag_hint(c->d, "labels name layers; remove '%s:'", st->label);
}

/* mean= and std= as numbers for each channel: a list of the input's
 * channel count, or one number for all (the defaults 0 and 1). The period
 * norm_channels is 1 when every list has one number. */
static void input_norm(Checker *c, const ArgVal *v)
{
    Network *n = c->net;
    if (!v[INPUT_MEAN].given && !v[INPUT_STD].given)
        return;
    int64_t channels = n->input.rank == 3 ? n->input.c : 1;
    int period = 1;
    for (int k = INPUT_MEAN; k <= INPUT_STD; k++) {
        int got = v[k].given ? v[k].u.list.n : 1;
        if (got == 1)
            continue;
        if (n->input.rank != 3)
            diag_error(c->d, v[k].loc, "%s= has %d numbers, but a vector input takes one "
                       "number for all its features", input_args[k].key, got);
        else if (got != channels)
            diag_error(c->d, v[k].loc, "%s= has %d numbers, but the input has %" PRId64
                       " channels", input_args[k].key, got, channels);
        else {
            period = got;
            continue;
        }
        diag_hint(c->d, "give one number for each channel, or one for all");
        return;
    }
    n->norm_channels = period;
    for (int ch = 0; ch < period; ch++) {
        const ArgVal *m = &v[INPUT_MEAN], *s = &v[INPUT_STD];
        n->input_mean[ch] = !m->given ? 0 : m->u.list.v[m->u.list.n == 1 ? 0 : ch];
        n->input_std[ch] = !s->given ? 1 : s->u.list.v[s->u.list.n == 1 ? 0 : ch];
    }
}

static void check_input(Checker *c, const Stmt *st)
{
    Diag *d = c->d;
    ArgVal v[INPUT_NARGS];
    if (st != c->input) {
        diag_error(d, st->word_loc, "Input is given twice; a network has one input");
        diag_note(d, c->input->word_loc, "first given here");
        args_match(st, input_args, INPUT_NARGS, v, d);
        return;
    }
    if (c->input_late) {
        diag_error(d, st->word_loc, "Input must come before the layers");
        diag_note(d, c->first_layer->word_loc, "the first layer is here");
    }
    c->net->input_loc = st->word_loc;
    label_gives(c, st, INPUT_TENSOR);
    if (st->label) {
        c->net->input_label = xstrdup(st->label);
        const Stmt *first = label_owner(c, st->label);
        if (first != st) {
            diag_error(d, st->label_loc, "label '%s' is already used", st->label);
            diag_note(d, first->label_loc, "first used here");
        }
    }
    if (!args_match(st, input_args, INPUT_NARGS, v, d) ||
        !elems_ok(d, v[INPUT_SHAPE].loc, "Input", v[INPUT_SHAPE].u.shape))
        return;
    c->net->input = v[INPUT_SHAPE].u.shape;
    input_norm(c, v);
    check_annotation(c, st, "Input", c->net->input);
    if (c->input_late)
        return;
    c->known[INPUT_TENSOR] = true;
    c->from[INPUT_TENSOR] = "Input";
    c->from_line[INPUT_TENSOR] = st->word_loc.first_line;
    c->cur = INPUT_TENSOR;
}

/* The settings written in Train over the defaults. */
static void train_settle(Train *t, const ArgVal *a)
{
    if (a[TRAIN_BATCH].given) t->batch = a[TRAIN_BATCH].u.i;
    if (a[TRAIN_EPOCHS].given) t->epochs = a[TRAIN_EPOCHS].u.i;
    if (a[TRAIN_LOSS].given) t->loss = (Loss)a[TRAIN_LOSS].u.choice;
    if (a[TRAIN_OPTIMIZER].given) t->optimizer = (Optimizer)a[TRAIN_OPTIMIZER].u.choice;
    if (a[TRAIN_LR].given) t->lr = a[TRAIN_LR].u.f;
    if (a[TRAIN_MOMENTUM].given) t->momentum = a[TRAIN_MOMENTUM].u.f;
    if (a[TRAIN_BETA1].given) t->beta1 = a[TRAIN_BETA1].u.f;
    if (a[TRAIN_BETA2].given) t->beta2 = a[TRAIN_BETA2].u.f;
    if (a[TRAIN_EPS].given) t->eps = a[TRAIN_EPS].u.f;
    if (a[TRAIN_DECAY].given) t->decay = a[TRAIN_DECAY].u.f;
    if (a[TRAIN_INIT].given) t->init = (Init)a[TRAIN_INIT].u.choice;
    if (a[TRAIN_SEED].given) t->seed = (uint64_t)a[TRAIN_SEED].u.i;
    if (a[TRAIN_SCHEDULE].given) t->schedule = (Schedule)a[TRAIN_SCHEDULE].u.choice;
    if (a[TRAIN_GAMMA].given) t->gamma = a[TRAIN_GAMMA].u.f;
    if (a[TRAIN_STEP_SIZE].given) t->step_size = a[TRAIN_STEP_SIZE].u.i;
    if (a[TRAIN_WARMUP].given) t->warmup = a[TRAIN_WARMUP].u.f;
    if (a[TRAIN_LABEL_SMOOTHING].given) t->label_smoothing = a[TRAIN_LABEL_SMOOTHING].u.f;
    if (a[TRAIN_CLIP].given) t->clip = a[TRAIN_CLIP].u.f;
    if (a[TRAIN_FLIP].given) t->flip = a[TRAIN_FLIP].u.b;
    if (a[TRAIN_CROP].given) t->crop = a[TRAIN_CROP].u.i;
}

static void check_train(Checker *c, const Stmt *st)
{
    Diag *d = c->d;
    no_label(c, st);
    if (st->has_annotation)
        diag_error(d, st->annotation.loc, "Train has no shape to annotate");
    if (st != c->train) {
        ArgVal scratch[TRAIN_NARGS];
        diag_error(d, st->word_loc, "Train is given twice");
        diag_hint(d, "put all the settings in one Train");
        diag_note(d, c->train->word_loc, "first given here");
        args_match(st, train_args, TRAIN_NARGS, scratch, d);
        return;
    }
    Train *t = &c->net->train;
    args_match(st, train_args, TRAIN_NARGS, c->train_vals, d);
    train_settle(t, c->train_vals);
    t->declared = true;
    t->loc = st->word_loc;
    /* PyTorch refuses Nesterov without momentum: it would be plain SGD. */
    if (t->optimizer == OPT_NESTEROV && t->momentum == 0)
        diag_error(d, c->train_vals[TRAIN_MOMENTUM].loc, "optimizer=nesterov needs momentum > 0");
}

/* ------------------------------------------------------------------------
 * Layers
 */

/* Aliases that other frameworks' users write, for the hint. */
static const char *const aliases[][2] = {
    {"Linear", "Dense"},        {"FC", "Dense"},     {"FullyConnected", "Dense"},
    {"Connected", "Dense"},     {"Convolution", "Conv"},
    {"GlobalAveragePooling2D", "GlobalAvgPool"}, {"AdaptiveAvgPool2d", "GlobalAvgPool"},
};

static const char *known_word_like(const char *word)
{
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcasecmp(word, aliases[i][0]) == 0)
            return aliases[i][1];
    const char *names[64];
    int n = 0;
    for (int i = 0; i < nlayer_kinds && n < 61; i++)
        names[n++] = layer_kinds[i]->name;
    names[n++] = "Input";
    names[n++] = "Train";
    names[n] = NULL;
    return nearest_name(word, names);
}

/* An unknown word stands for the layer or declaration it failed to name,
 * whose output is unknown: shapes stop here. Unless it is a label that lost
 * its ':', where the layer is the statement after it. */
static void unknown_word(Checker *c, const Stmt *st)
{
    const char *near = known_word_like(st->word);
    bool declaration = near && (strcmp(near, "Input") == 0 || strcmp(near, "Train") == 0);
    diag_error(c->d, st->word_loc, "unknown %s '%s'", declaration ? "statement" : "layer",
               st->word);
    if (label_without_colon(st)) {
        diag_hint(c->d, "missing ':' after the label '%s'?", st->word);
        return;
    }
    c->cur = -1;
    if (near) {
        diag_hint(c->d, "did you mean '%s'?", near);
        return;
    }
    char list[512];
    size_t used = 0;
    for (int i = 0; i < nlayer_kinds && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                 layer_kinds[i]->name);
    diag_hint(c->d, "the layers are %s; Input and Train are declarations", list);
}

/* The label, or an automatic name (kind prefix + its count so far) that
 * must not be a label written elsewhere in the file. */
static void name_layer(Checker *c, Layer *l, const Stmt *st)
{
    int count = ++c->kind_counts[kind_index(l->kind)];
    if (st->label) {
        l->label = xstrdup(st->label);
        const Stmt *first = label_owner(c, st->label);
        if (first != st) {
            diag_error(c->d, st->label_loc, "label '%s' is already used", st->label);
            diag_note(c->d, first->label_loc, "first used here");
        }
        return;
    }
    l->label = xasprintf("%s%d", l->kind->auto_prefix, count);
    l->auto_label = true;
    const Stmt *owner = label_owner(c, l->label);
    if (owner) {
        diag_error(c->d, st->word_loc, "this %s's automatic name '%s' is already a label",
                   l->kind->name, l->label);
        diag_hint(c->d, "give this layer a label of its own");
        diag_note(c->d, owner->label_loc, "'%s' labels this layer", l->label);
    }
}

/* The next layer statement after st, or NULL. */
static const Stmt *next_layer(const Stmt *st)
{
    for (st = st->next; st; st = st->next)
        if (layer_kind_find(st->word))
            return st;
    return NULL;
}

/* Rules about the layer's place in the file. */
static void check_place(Checker *c, const Stmt *st, const LayerKind *k)
{
    if (st == c->first_layer && !c->input && !c->partial && !c->input_misspelt) {
        diag_error(c->d, st->word_loc, "missing Input: the network must start with Input");
        diag_hint(c->d, "e.g. Input(28x28x1) for 28x28 gray images, Input(784) for vectors");
    }
    const Stmt *next = next_layer(st);
    if (k->must_be_last && next) {
        diag_error(c->d, st->word_loc, "%s must be the last layer, but %s (line %d) follows it",
                   k->name, next->word, next->word_loc.first_line);
        diag_hint(c->d, "move it to the end");
    }
}

/* ---- where a layer's inputs come from */

/* The labels written before st, for "did you mean". */
static const char *nearest_label(const Checker *c, const Stmt *st, const char *label)
{
    const char **names = xcalloc((size_t)c->nlabelled + 1, sizeof *names);
    int n = 0;
    for (int i = 0; i < c->nlabelled && c->labelled[i] != st &&
                    c->labelled[i]->loc.first_line <= st->loc.first_line; i++)
        names[n++] = c->labelled[i]->label;
    const char *near = nearest_name(label, names);
    free(names);
    return near;
}

/* The tensor that LABEL (written at loc in statement st) names, or -1
 * after an error. Only statements before st can be named. */
static int resolve_label(Checker *c, const Stmt *st, const char *label, Loc loc)
{
    const Stmt *owner = label_owner(c, label);
    if (owner == st) {
        diag_error(c->d, loc, "a layer cannot take its own output");
        return -1;
    }
    if (!owner) {
        diag_error(c->d, loc, "no layer is labelled '%s'", label);
        for (int i = 0; i < c->net->nlayers; i++) {
            const Layer *l = &c->net->layers[i];
            if (l->auto_label && strcmp(l->label, label) == 0) {
                diag_hint(c->d, "'%s' is the automatic name of the %s on line %d; give it a "
                          "label to take its output, e.g. 'h: %s'", label, l->kind->name,
                          l->loc.first_line, l->kind->name);
                return -1;
            }
        }
        if (strcasecmp(label, "input") == 0 && c->input && !c->input->label) {
            diag_hint(c->d, "the Input has no label: give it one to take it, e.g. "
                      "'img: Input(...)'");
            return -1;
        }
        const char *near = nearest_label(c, st, label);
        if (near)
            diag_hint(c->d, "did you mean '%s'?", near);
        return -1;
    }
    if (owner->loc.first_line > st->loc.first_line ||
        (owner->loc.first_line == st->loc.first_line &&
         owner->loc.first_column > st->loc.first_column)) {
        diag_error(c->d, loc, "'%s' comes later, on line %d: a layer takes only the output "
                   "of one above it", label, owner->label_loc.first_line);
        const char *near = nearest_label(c, st, label);
        if (near)
            diag_hint(c->d, "did you mean '%s'?", near);
        return -1;
    }
    return c->label_tensor[label_index(c, label)];   /* -1: a statement that failed */
}

/* The argument from=LABEL of st, or NULL. */
static const Arg *from_arg(const Stmt *st)
{
    for (const Arg *a = st->args; a; a = a->next)
        if (a->key && strcmp(a->key, "from") == 0)
            return a;
    return NULL;
}

/* A single-input layer reads the statement before it, or from=LABEL.
 * Returns false after an error. */
static bool single_input(Checker *c, const Stmt *st, Layer *l)
{
    const Arg *a = from_arg(st);
    l->ninputs = 1;
    l->inputs[0] = c->cur;
    if (!a)
        return true;
    for (const Arg *b = a->next; b; b = b->next)
        if (b->key && strcmp(b->key, "from") == 0) {
            diag_error(c->d, b->key_loc, "from is given twice");
            diag_note(c->d, a->key_loc, "first given here");
            return false;
        }
    if (a->value.kind != VAL_NAME || !is_name(a->value.u.name)) {
        if (a->value.kind != VAL_NAME || is_name(a->value.u.name))
            diag_error(c->d, a->value.loc, "from= takes the label of an earlier layer, e.g. "
                       "from=x1");
        return false;
    }
    l->ins_loc[0] = a->value.loc;
    l->inputs[0] = resolve_label(c, st, a->value.u.name, a->value.loc);
    return l->inputs[0] >= 0;
}

/* A merge layer names its inputs: Add(a, b, ...), two or more, each once. */
static bool merge_inputs(Checker *c, const Stmt *st, Layer *l)
{
    const char *name = l->kind->name;
    bool ok = true;
    for (const Arg *a = st->args; a; a = a->next) {
        if (a->key) {
            diag_error(c->d, a->key_loc, "%s takes only the labels of its inputs, e.g. "
                       "%s(a, b)", name, name);
            if (strcmp(a->key, "from") == 0)
                diag_hint(c->d, "from= is for layers of one input; write %s(%s, ...)", name,
                          a->value.kind == VAL_NAME ? a->value.u.name : "a");
            ok = false;
            continue;
        }
        if (a->value.kind != VAL_NAME) {
            char buf[64];
            FILE *m = fmemopen(buf, sizeof buf, "w");
            if (m) {
                value_print(m, &a->value);
                fclose(m);
            } else {
                buf[0] = '\0';
            }
            diag_error(c->d, a->value.loc, "%s takes the labels of earlier layers, e.g. "
                       "%s(a, b), not %s", name, name, buf);
            ok = false;
            continue;
        }
        if (!is_name(a->value.u.name)) {
            ok = false;   /* the scanner said why */
            continue;
        }
        for (const Arg *b = st->args; b != a; b = b->next)
            if (!b->key && b->value.kind == VAL_NAME &&
                strcmp(b->value.u.name, a->value.u.name) == 0) {
                diag_error(c->d, a->value.loc, "'%s' is already an input of this %s: each "
                           "input is named once", a->value.u.name, name);
                ok = false;
                goto next;
            }
        if (l->ninputs == CNNC_MAX_INPUTS) {
            diag_error(c->d, a->value.loc, "%s takes at most %d inputs", name, CNNC_MAX_INPUTS);
            return false;
        }
        l->ins_loc[l->ninputs] = a->value.loc;
        l->inputs[l->ninputs] = resolve_label(c, st, a->value.u.name, a->value.loc);
        ok = ok && l->inputs[l->ninputs] >= 0;
        l->ninputs++;
    next:;
    }
    if (ok && l->ninputs < 2) {
        diag_error(c->d, st->word_loc, "%s needs two or more inputs, e.g. %s(a, b)", name,
                   name);
        return false;
    }
    return ok;
}

/* Runs the kind's shape rule on its inputs' shapes, when they are known. */
static void infer_layer(Checker *c, Layer *l, const Stmt *st, bool ok)
{
    int out = layer_output(l);
    for (int k = 0; ok && k < l->ninputs; k++)
        ok = l->inputs[k] >= 0 && c->known[l->inputs[k]];
    if (!ok)
        return;
    for (int k = 0; k < l->ninputs; k++) {
        int t = l->inputs[k];
        l->ins[k] = t == INPUT_TENSOR ? c->net->input : c->net->layers[t - 1].out;
        l->ins_from[k] = c->from[t];
        l->ins_line[k] = c->from_line[t];
        l->ins_label[k] = t != INPUT_TENSOR ? c->net->layers[t - 1].label
                          : c->net->input_label ? c->net->input_label : "Input";
    }
    l->in = l->ins[0];
    l->in_from = l->ins_from[0];
    l->in_line = l->ins_line[0];
    char what[80];
    snprintf(what, sizeof what, "%s output", l->kind->name);
    if (!l->kind->infer(l, c->d) || !elems_ok(c->d, l->loc, what, l->out))
        return;
    check_annotation(c, st, l->kind->name, l->out);
    c->known[out] = true;
    c->from[out] = l->kind->name;
    c->from_line[out] = l->loc.first_line;
}

static void check_layer(Checker *c, const Stmt *st, const LayerKind *k)
{
    Network *n = c->net;
    Layer *l = &n->layers[n->nlayers];
    l->kind = k;
    l->index = n->nlayers++;
    l->loc = st->word_loc;
    l->stmt_loc = st->loc;
    name_layer(c, l, st);
    label_gives(c, st, layer_output(l));
    check_place(c, st, k);
    bool inputs_ok = k->merge ? merge_inputs(c, st, l) : single_input(c, st, l);
    bool args_ok = k->merge || args_match(st, k->args, k->nargs, l->args, c->d);
    infer_layer(c, l, st, inputs_ok && args_ok);
    c->cur = layer_output(l);
}

static void check_stmt(Checker *c, const Stmt *st)
{
    const LayerKind *k;
    if (!is_name(st->word))
        c->cur = -1;     /* reported by the parser or the scanner */
    else if (is_word(st, "Input"))
        check_input(c, st);
    else if (is_word(st, "Train"))
        check_train(c, st);
    else if ((k = layer_kind_find(st->word)))
        check_layer(c, st, k);
    else
        unknown_word(c, st);
}

/* ------------------------------------------------------------------------
 * File-wide rules
 */

static void check_not_empty(Checker *c, const Ast *ast)
{
    if (c->net->nlayers > 0 || c->partial || c->nunknown > 0)
        return;
    if (c->input) {
        diag_error(c->d, c->input->word_loc, "the network has no layers");
        diag_hint(c->d, "add layers after Input, e.g. Flatten, Dense(n=10) and Softmax");
    } else if (!ast->first) {
        diag_file_error(c->d, "the file holds no network: it needs Input(...) and layers");
    } else {
        diag_file_error(c->d, "the file holds no network: no Input and no layers");
    }
}

/* loss=cross_entropy takes the log of Softmax's output. Checked only on a
 * network free of other errors: in a broken one (a misspelt "softmax", a
 * statement lost to a syntax error) the last layer is often not the one
 * meant to be last, and the message would be noise. */
static void check_loss(Checker *c)
{
    Network *n = c->net;
    if (n->nlayers == 0 || n->train.loss != LOSS_CROSS_ENTROPY || c->d->errors > 0)
        return;
    /* A Softmax elsewhere has had its own error: it must be last. */
    for (int i = 0; i < n->nlayers; i++)
        if (n->layers[i].kind->is_softmax)
            return;
    const Layer *last = &n->layers[n->nlayers - 1];
    const ArgVal *loss = &c->train_vals[TRAIN_LOSS];
    diag_error(c->d, loss->given ? loss->loc : last->loc,
               "loss=cross_entropy needs Softmax as the last layer, but the last layer is "
               "%s (%s)", last->kind->name, last->label);
    if (loss->given)
        diag_hint(c->d, "add Softmax at the end, or use loss=mse");
    else
        diag_hint(c->d, "cross_entropy is the default loss: add Softmax at the end, or "
                        "write Train(loss=mse)");
}

/* flip= and crop= move pixels: they need an image. */
static void check_augmentation(Checker *c)
{
    const Network *n = c->net;
    if (n->input.rank != 1 || !c->input)
        return;
    for (int k = TRAIN_FLIP; k <= TRAIN_CROP; k++) {
        const ArgVal *a = &c->train_vals[k];
        bool on = k == TRAIN_FLIP ? a->u.b : a->u.i > 0;
        if (!a->given || !on)
            continue;
        char buf[64];
        diag_error(c->d, a->loc, "%s= moves pixels of an image, but Input (line %d) is a "
                   "vector of %s", train_args[k].key, c->input->word_loc.first_line,
                   shape_str(n->input, buf, sizeof buf));
    }
}

/* Each layer's init= or else Train's. */
static void settle_inits(Network *n)
{
    for (int i = 0; i < n->nlayers; i++) {
        Layer *l = &n->layers[i];
        l->init = n->train.init;
        for (int a = 0; a < l->kind->nargs; a++) {
            if (strcmp(l->kind->args[a].key, "init") != 0)
                continue;
            if (l->args[a].given)
                l->init = (Init)l->args[a].u.choice;
            else
                l->args[a].u.choice = (int)l->init;
        }
    }
}

/* Every tensor with its producer and consumers. */
static void link_tensors(Network *n)
{
    n->tensors = xcalloc((size_t)n->nlayers + 1, sizeof *n->tensors);
    n->tensors[INPUT_TENSOR] = (Tensor){.shape = n->input, .producer = -1};
    for (int i = 0; i < n->nlayers; i++)
        n->tensors[layer_output(&n->layers[i])] = (Tensor){.shape = n->layers[i].out,
                                                           .producer = i};
    for (int i = 0; i < n->nlayers; i++)
        for (int k = 0; k < n->layers[i].ninputs; k++)
            if (n->layers[i].inputs[k] >= 0)   /* else an error said why */
                n->tensors[n->layers[i].inputs[k]].nconsumers++;
    for (int t = 0; t <= n->nlayers; t++) {
        n->tensors[t].consumers = xcalloc((size_t)n->tensors[t].nconsumers + 1, sizeof(int));
        n->tensors[t].nconsumers = 0;
    }
    for (int i = 0; i < n->nlayers; i++)
        for (int k = 0; k < n->layers[i].ninputs; k++) {
            if (n->layers[i].inputs[k] < 0)
                continue;
            Tensor *t = &n->tensors[n->layers[i].inputs[k]];
            t->consumers[t->nconsumers++] = i;
        }
}

/* A layer whose output nothing takes, but the last, is a loose end: most
 * likely a from= or an Add that names the wrong label. */
static void check_unused(Checker *c)
{
    const Network *n = c->net;
    for (int i = 0; i + 1 < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        if (n->tensors[layer_output(l)].nconsumers > 0)
            continue;
        diag_warning(c->d, l->loc, "the output of %s (%s) goes nowhere: no layer takes it, "
                     "and it is not the last", l->label, l->kind->name);
        diag_hint(c->d, "take it with from=%s or in an Add or Concat, or remove the layer",
                  l->label);
    }
}

/* The memory plan's byte counts must fit int64, even in double precision. */
static void check_plan(Checker *c)
{
    MemPlan p;
    if (plan_network(c->net, 8, 0, 0, KERNELS_FAST, &p)) {
        plan_free(&p);
        return;
    }
    const ArgVal *batch = &c->train_vals[TRAIN_BATCH];
    if (batch->given) {
        diag_error(c->d, batch->loc, "at batch %" PRId64 " the memory plan overflows 64-bit "
                   "byte counts", c->net->train.batch);
    } else {
        diag_file_error(c->d, "the memory plan overflows 64-bit byte counts");
    }
}

/* "models/seed.net" -> "seed", made a C identifier. */
static char *network_name(const char *source_name)
{
    const char *base = strrchr(source_name, '/');
    base = base ? base + 1 : source_name;
    if (strcmp(source_name, "<stdin>") == 0)
        base = "stdin";
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    char *s = xstrndup(base, len);
    for (char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            *p = '_';
    if (!s[0] || isdigit((unsigned char)s[0])) {
        char *t = xasprintf("net_%s", s);
        free(s);
        s = t;
    }
    return s;
}

/* ------------------------------------------------------------------------
 * The entry point, and what later phases ask of the graph
 */

Network *check_ast(const Ast *ast, const char *source_name, Diag *d)
{
    Network *n = xcalloc(1, sizeof *n);
    n->name = network_name(source_name);
    n->source_name = xstrdup(source_name);
    n->train = train_defaults();
    Checker c = {.d = d, .net = n, .partial = d->errors > 0, .cur = -1};
    survey(&c, ast);
    for (const Stmt *st = ast->first; st && !diag_full(d); st = st->next)
        check_stmt(&c, st);
    check_not_empty(&c, ast);
    check_loss(&c);
    check_augmentation(&c);
    settle_inits(n);
    link_tensors(n);
    if (d->errors == 0)
        check_unused(&c);
    if (d->errors == 0)
        check_plan(&c);
    free(c.labelled);
    free(c.by_label);
    free(c.label_tensor);
    free(c.kind_counts);
    free(c.known);
    free(c.from);
    free(c.from_line);
    if (d->errors > 0) {
        network_free(n);
        return NULL;
    }
    return n;
}

void network_free(Network *n)
{
    if (!n)
        return;
    for (int i = 0; i < n->nlayers; i++)
        free(n->layers[i].label);
    if (n->tensors)
        for (int t = 0; t <= n->nlayers; t++)
            free(n->tensors[t].consumers);
    free(n->tensors);
    free(n->layers);
    free(n->input_label);
    free(n->name);
    free(n->source_name);
    free(n);
}

const char *tensor_name(const Network *n, int t)
{
    return t == INPUT_TENSOR ? "input" : n->layers[t - 1].label;
}

bool network_fuses_softmax(const Network *n)
{
    return n->train.loss == LOSS_CROSS_ENTROPY && n->nlayers > 0 &&
           n->layers[n->nlayers - 1].kind->is_softmax;
}
