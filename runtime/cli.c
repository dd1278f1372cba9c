/* cli.c: the trainer's command line.
 *
 *   MODEL COMMAND [--flag VALUE | --flag=VALUE | --switch]...
 *
 * One table lists every flag with the commands that take it, its type and
 * range; defaults come from the model's Train settings. Anything wrong is a
 * usage error (exit 2) naming the flag, what it expects and what it got.
 */
#include "rt.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    TRAIN = 1 << RT_CMD_TRAIN,
    EVAL = 1 << RT_CMD_EVAL,
    PREDICT = 1 << RT_CMD_PREDICT,
    GRADCHECK = 1 << RT_CMD_GRADCHECK,
    BENCH = 1 << RT_CMD_BENCH,
};

typedef enum FlagType { F_STR, F_INT, F_U64, F_REAL, F_SWITCH, F_OPTIMIZER, F_SCHEDULE } FlagType;

/* Ranges of the numeric flags; MAXB stands for the model's compiled batch. */
#define MAXB (-1)

typedef struct Flag {
    const char *name;
    FlagType type;
    unsigned cmds;
    size_t off;                  /* into rt_opts */
    double min, max;             /* numbers: the range, [min, max] ... */
    bool min_open, max_open;     /* ... or with open ends */
    const char *help;
} Flag;

#define O(field) offsetof(rt_opts, field)
static const Flag flags[] = {
    {"--data", F_STR, TRAIN | EVAL | PREDICT, O(data), 0, 0, 0, 0,
     "FILE|DIR  .npy, IDX, CIFAR-10 batch (any gzip-compressed), or class folders of images"},
    {"--labels", F_STR, TRAIN | EVAL, O(labels), 0, 0, 0, 0,
     "FILE  labels (.npy or IDX), or float32 targets for loss=mse"},
    {"--val-data", F_STR, TRAIN, O(val_data), 0, 0, 0, 0,
     "FILE|DIR  validation inputs (a folder: the same class folders)"},
    {"--val-labels", F_STR, TRAIN, O(val_labels), 0, 0, 0, 0, "FILE  validation labels"},
    {"--resize", F_SWITCH, TRAIN | EVAL | PREDICT, O(resize), 0, 0, 0, 0,
     "scale a folder's images to the Input's size (bilinear, align_corners=False)"},
    {"--val-split", F_REAL, TRAIN, O(val_split), 0, 1, 1, 1,
     "F  use the last fraction F (0 < F < 1) of the data for validation"},
    {"--epochs", F_INT, TRAIN, O(epochs), 1, 1e12, 0, 0, "N  passes over the data"},
    {"--steps", F_INT, TRAIN | BENCH, O(steps), 1, 1e12, 0, 0,
     "N  train: stop after N optimizer steps; bench: time N steps"},
    {"--batch", F_INT, TRAIN | EVAL | PREDICT | GRADCHECK | BENCH, O(batch), 1, MAXB, 0, 0,
     "N  samples per step, at most the compiled batch"},
    {"--lr", F_REAL, TRAIN, O(lr), 0, 1e300, 1, 0, "F  learning rate"},
    {"--momentum", F_REAL, TRAIN, O(momentum), 0, 1, 0, 0, "F  momentum (0 <= F <= 1)"},
    {"--beta1", F_REAL, TRAIN, O(beta1), 0, 1, 0, 1, "F  Adam's beta1 (0 <= F < 1)"},
    {"--beta2", F_REAL, TRAIN, O(beta2), 0, 1, 0, 1, "F  Adam's beta2 (0 <= F < 1)"},
    {"--eps", F_REAL, TRAIN, O(eps), 0, 1e300, 1, 0, "F  Adam's epsilon"},
    {"--optimizer", F_OPTIMIZER, TRAIN, O(optimizer), 0, 0, 0, 0,
     "NAME  sgd, momentum, nesterov, adam or adamw"},
    {"--decay", F_REAL, TRAIN, O(decay), 0, 1e300, 0, 0,
     "F  weight decay (L2; adamw: decoupled)"},
    {"--schedule", F_SCHEDULE, TRAIN, O(schedule), 0, 0, 0, 0,
     "NAME  learning rate per step: constant, step or cosine"},
    {"--gamma", F_REAL, TRAIN, O(gamma), 0, 1e300, 1, 0, "F  schedule step: the factor"},
    {"--step-size", F_INT, TRAIN, O(step_epochs), 1, 1e12, 0, 0,
     "N  schedule step: epochs between the factors"},
    {"--warmup", F_REAL, TRAIN, O(warmup_epochs), 0, 1e12, 0, 0,
     "F  epochs of linear warm-up from 0 to --lr"},
    {"--label-smoothing", F_REAL, TRAIN, O(label_smoothing), 0, 1, 0, 0,
     "F  cross-entropy's label smoothing (0 <= F <= 1)"},
    {"--clip", F_REAL, TRAIN, O(clip), 0, 1e300, 0, 0,
     "F  clip the gradients' global L2 norm to F (0: off)"},
    {"--flip", F_SWITCH, TRAIN, O(flip), 0, 0, 0, 0,
     "random horizontal flips of the training images"},
    {"--crop", F_INT, TRAIN, O(crop), 0, 1e6, 0, 0,
     "P  random crops of the training images padded by P pixels"},
    {"--seed", F_U64, TRAIN | GRADCHECK | BENCH, O(seed), 0, 0, 0, 0,
     "N  seed of initialisation, shuffling, dropout and synthetic data"},
    {"--no-shuffle", F_SWITCH, TRAIN, O(no_shuffle), 0, 0, 0, 0, "take samples in file order"},
    {"--init", F_STR, TRAIN, O(init), 0, 0, 0, 0,
     "CKPT  start a new run from this checkpoint's weights"},
    {"--resume", F_STR, TRAIN, O(resume), 0, 0, 0, 0,
     "CKPT  go on with the run that saved CKPT (and CKPT.state beside it)"},
    {"--pause-after", F_INT, TRAIN, O(pause_after), 1, 1e12, 0, 0,
     "N  stop after N steps of this session, saved for --resume"},
    {"--save", F_STR, TRAIN, O(save), 0, 0, 0, 0,
     "CKPT  write the checkpoint here at each epoch's end and at the end"},
    {"--save-best", F_STR, TRAIN, O(save_best), 0, 0, 0, 0,
     "CKPT  the checkpoint of the epoch with the best validation accuracy"},
    {"--log", F_STR, TRAIN, O(log), 0, 0, 0, 0, "FILE.csv  one line of figures per epoch"},
    {"--weights", F_STR, EVAL | PREDICT, O(weights), 0, 0, 0, 0, "CKPT  the checkpoint to use"},
    {"-o", F_STR, PREDICT, O(out), 0, 0, 0, 0, "FILE  write predictions here (default: stdout)"},
    {"--output", F_STR, PREDICT, O(out), 0, 0, 0, 0, "FILE  the same as -o"},
    {"--probabilities", F_SWITCH, PREDICT, O(probabilities), 0, 0, 0, 0,
     "each line: the class, then the network's outputs"},
    {"--threads", F_INT, TRAIN | EVAL | PREDICT | GRADCHECK | BENCH, O(threads), 1, 4096, 0, 0,
     "N  threads (default: all cores)"},
    {"--tolerance", F_REAL, GRADCHECK, O(tolerance), 0, 1e300, 1, 0,
     "F  largest relative error accepted (f64: 1e-6, f32: 2e-2)"},
    {"--atol", F_REAL, GRADCHECK, O(atol), 0, 1e300, 0, 0,
     "F  absolute errors below this always pass (f64: 1e-8, f32: 1e-3)"},
    {"--step-size", F_REAL, GRADCHECK, O(step_size), 0, 1, 1, 0,
     "F  finite-difference step h (f64: 1e-6, f32: 2^-8), times max(1, |w|)"},
    {"--max-failures", F_REAL, GRADCHECK, O(max_fail), 0, 1, 0, 0,
     "F  fraction of a tensor's elements that may fail (f64: 0, f32: 0.05)"},
    {"--samples", F_INT, GRADCHECK, O(samples), 1, 1e9, 0, 0,
     "N  elements checked per tensor, at most (default 200; all when fewer)"},
    {"--warmup", F_INT, BENCH, O(warmup), 0, 1e9, 0, 0, "N  untimed steps first (default 3)"},
};
#undef O

static const char *const command_names[] = {
    [RT_CMD_TRAIN] = "train", [RT_CMD_EVAL] = "eval", [RT_CMD_PREDICT] = "predict",
    [RT_CMD_GRADCHECK] = "gradcheck", [RT_CMD_BENCH] = "bench",
    [RT_CMD_SUMMARY] = "summary", [RT_CMD_HELP] = "--help",
};

const char *rt_optimizer_name(cnnrt_optimizer o)
{
    static const char *const names[] = {"sgd", "momentum", "nesterov", "adam", "adamw"};
    return (unsigned)o < sizeof names / sizeof names[0] ? names[o] : "?";
}

void rt_usage(const cnnrt_model *m, FILE *f)
{
    const char *p = rt_prog;
    fprintf(f,
            "usage: %s train   --data X --labels Y [--val-data X2 --val-labels Y2 | --val-split F]\n"
            "                  [--epochs N] [--steps N] [--batch N] [--lr F] [--momentum F]\n"
            "                  [--optimizer NAME] [--decay F] [--seed N] [--no-shuffle]\n"
            "                  [--schedule NAME] [--warmup F] [--label-smoothing F] [--clip F]\n"
            "                  [--flip] [--crop P]\n"
            "                  [--init CKPT | --resume CKPT] [--save CKPT] [--save-best CKPT]\n"
            "                  [--pause-after N] [--log FILE.csv] [--threads N] [--resize]\n"
            "       %s eval    --data X --labels Y --weights CKPT [--resize]\n"
            "       %s predict --data X --weights CKPT [-o FILE] [--probabilities] [--resize]\n"
            "       %s gradcheck [--seed N] [--tolerance F]\n"
            "       %s bench   [--batch N] [--steps N] [--threads N]\n"
            "       %s summary\n"
            "       %s COMMAND --help\n\n"
            "The trainer of the network %s (%s, batch up to %d).\n",
            p, p, p, p, p, p, p, m->name, m->real_size == 4 ? "float" : "double",
            m->max_batch);
    fprintf(f, "X: a .npy, IDX or CIFAR-10 file, gzip-compressed or not; or a folder of\n"
               "class folders of PNG or JPEG images, labelled by the folders (no --labels;\n"
               "--resize scales them to the Input's size).\n");
    fprintf(f, "Exit status: 0 done, 1 bad input or the training diverged, 2 usage.\n");
}

static void command_usage(const cnnrt_model *m, rt_cmd cmd, FILE *f)
{
    fprintf(f, "usage: %s %s [flags]\n\n", rt_prog, command_names[cmd]);
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        if (!(flags[i].cmds & (1u << cmd)))
            continue;
        const char *sp = strchr(flags[i].help, ' ');
        bool has_meta = flags[i].type != F_SWITCH && sp;
        int meta_len = has_meta ? (int)(sp - flags[i].help) : 0;
        char left[64];
        snprintf(left, sizeof left, "%s%s%.*s", flags[i].name, has_meta ? " " : "",
                 meta_len, flags[i].help);
        fprintf(f, "  %-22s %s\n", left, has_meta ? sp + 2 : flags[i].help);
    }
    fprintf(f, "\nDefaults come from the network's Train(...) settings (batch %d, "
               "lr %g, optimizer %s).\n",
            m->train.batch, m->train.lr, rt_optimizer_name(m->train.optimizer));
}

/* The flag NAME of the command cmd; else, for the message, the first of
 * that name (--warmup and --step-size mean one thing to train, another to
 * bench or gradcheck). */
static const Flag *find_flag(const char *name, size_t len, int cmd)
{
    const Flag *any = NULL;
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0) {
            if (flags[i].cmds & (1u << cmd))
                return &flags[i];
            if (!any)
                any = &flags[i];
        }
    return any;
}

/* The flag of cmd nearest to the unknown name[0..len), for a hint: at most a
 * third of the longer name's edits away (as cnnc's hints), leading dashes
 * and case aside; NULL when none is that close. */
static const char *nearest_flag(const char *name, size_t len, int cmd)
{
    char word[72];
    size_t dashes = strspn(name, "-");
    dashes = dashes < len ? dashes : len;
    if (len - dashes >= sizeof word)
        return NULL;
    for (size_t i = dashes; i < len; i++)
        word[i - dashes] = (char)tolower((unsigned char)name[i]);
    word[len - dashes] = '\0';
    const char *best = NULL;
    int best_dist = INT_MAX;
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        if (!(flags[i].cmds & (1u << cmd)))
            continue;
        const char *flag = flags[i].name + strspn(flags[i].name, "-");
        size_t fl = strlen(flag), wl = strlen(word);
        int dist = rt_edit_distance(word, flag);
        if (dist <= (int)((fl > wl ? fl : wl) + 1) / 3 && dist < best_dist) {
            best = flags[i].name;
            best_dist = dist;
        }
    }
    return best;
}

static int usage_error(const char *fmt, ...) RT_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    rt_error("%s", buf);
    return RT_USAGE;
}

static void range_str(const Flag *fl, double max, char *buf, size_t size)
{
    if (fl->type == F_INT)
        snprintf(buf, size, "an integer from %.0f to %.0f", fl->min, max);
    else if (max >= 1e300)
        snprintf(buf, size, "a number %s %g", fl->min_open ? ">" : ">=", fl->min);
    else
        snprintf(buf, size, "a number %s %g and %s %g", fl->min_open ? ">" : ">=",
                 fl->min, fl->max_open ? "<" : "<=", max);
}

static int set_value(const cnnrt_model *m, const Flag *fl, const char *v, rt_opts *o)
{
    char *at = (char *)o + fl->off;
    char want[128];
    double max = fl->max == MAXB ? m->max_batch : fl->max;
    switch (fl->type) {
    case F_STR:
        if (!*v)
            return usage_error("%s: expected a file name, found an empty string", fl->name);
        *(const char **)(void *)at = v;
        return RT_OK;
    case F_SWITCH:
        *(bool *)at = true;
        return RT_OK;
    case F_OPTIMIZER:
        for (int i = 0; i <= CNNRT_ADAMW; i++)
            if (strcmp(v, rt_optimizer_name((cnnrt_optimizer)i)) == 0) {
                *(cnnrt_optimizer *)(void *)at = (cnnrt_optimizer)i;
                return RT_OK;
            }
        return usage_error("%s: expected sgd, momentum, nesterov, adam or adamw, found '%s'",
                           fl->name, v);
    case F_SCHEDULE: {
        static const char *const names[] = {"constant", "step", "cosine"};
        for (int i = 0; i < 3; i++)
            if (strcmp(v, names[i]) == 0) {
                *(cnnrt_schedule *)(void *)at = (cnnrt_schedule)i;
                return RT_OK;
            }
        return usage_error("%s: expected constant, step or cosine, found '%s'", fl->name, v);
    }
    case F_U64: {
        char *end;
        if (!*v || strspn(v, "0123456789") != strlen(v))
            return usage_error("%s: expected a non-negative integer, found '%s'",
                               fl->name, v);
        errno = 0;
        unsigned long long u = strtoull(v, &end, 10);
        if (errno)
            return usage_error("%s: expected an integer below 2^64, found '%s'",
                               fl->name, v);
        *(uint64_t *)(void *)at = u;
        return RT_OK;
    }
    case F_INT: {
        range_str(fl, max, want, sizeof want);
        size_t digits = strspn(v + (*v == '-'), "0123456789");
        if (!*v || digits == 0 || digits + (*v == '-') != strlen(v))
            return usage_error("%s: expected %s, found '%s'", fl->name, want, v);
        errno = 0;
        long long i = strtoll(v, NULL, 10);
        if (errno || (double)i < fl->min || (double)i > max)
            return usage_error("%s: expected %s%s, found '%s'", fl->name, want,
                               fl->max == MAXB ? " (the compiled batch)" : "", v);
        *(int64_t *)(void *)at = i;
        return RT_OK;
    }
    case F_REAL: {
        range_str(fl, max, want, sizeof want);
        char *end;
        if (!*v || strspn(v, "0123456789+-.eE") != strlen(v))
            return usage_error("%s: expected %s, found '%s'", fl->name, want, v);
        double d = strtod(v, &end);
        if (*end || !isfinite(d) || d < fl->min || (fl->min_open && d == fl->min) ||
            d > max || (fl->max_open && d == max))
            return usage_error("%s: expected %s, found '%s'", fl->name, want, v);
        *(double *)(void *)at = d;
        return RT_OK;
    }
    }
    return RT_OK;
}

static void defaults(const cnnrt_model *m, rt_opts *o)
{
    memset(o, 0, sizeof *o);
    o->epochs = m->train.epochs > 0 ? m->train.epochs : 1;
    o->batch = m->train.batch > 0 && m->train.batch <= m->max_batch ? m->train.batch
                                                                    : m->max_batch;
    o->lr = m->train.lr;
    o->momentum = m->train.momentum;
    o->beta1 = m->train.beta1;
    o->beta2 = m->train.beta2;
    o->eps = m->train.eps;
    o->decay = m->train.decay;
    o->optimizer = m->train.optimizer;
    o->seed = m->train.seed;
    o->schedule = m->train.schedule;
    o->gamma = m->train.gamma > 0 ? m->train.gamma : 0.1;
    o->step_epochs = m->train.step_size > 0 ? m->train.step_size : 1;
    o->warmup_epochs = m->train.warmup;
    o->label_smoothing = m->train.label_smoothing;
    o->clip = m->train.clip;
    o->flip = m->train.flip != 0;
    o->crop = m->train.crop;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = n > 0 ? n : 1;
    o->samples = 200;
    o->max_fail = -1;   /* by precision */
    o->warmup = 3;
}

/* An output that is one of the inputs would destroy it (--log truncates
 * --data before a byte is read), and two outputs in one file destroy each
 * other. --save may name the --init or --resume checkpoint: that one is read
 * whole before the first save, which replaces it atomically, so going on
 * into the same file is safe. Outputs that are devices or FIFOs are written through
 * and destroy nothing. */
static int check_outputs(const rt_opts *o)
{
    const struct { const char *flag, *path; } in[] = {
        {"--data", o->data}, {"--labels", o->labels}, {"--val-data", o->val_data},
        {"--val-labels", o->val_labels}, {"--init", o->init}, {"--weights", o->weights},
        {"--resume", o->resume},
    }, out[] = {
        {"--save", o->save}, {"--save-best", o->save_best}, {"--log", o->log},
        {"-o", o->out && strcmp(o->out, "-") != 0 ? o->out : NULL},
    };
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++) {
        if (!out[i].path || rt_is_stream(out[i].path))
            continue;
        for (size_t k = 0; k < sizeof in / sizeof in[0]; k++) {
            bool resume = out[i].path == o->save && (in[k].path == o->init ||
                                                      in[k].path == o->resume);
            if (in[k].path && !resume && rt_same_file(out[i].path, in[k].path))
                return usage_error("%s %s is the same file as %s %s; writing it would "
                                   "destroy the input", out[i].flag, out[i].path,
                                   in[k].flag, in[k].path);
        }
        for (size_t k = 0; k < i; k++)
            if (out[k].path && rt_same_file(out[i].path, out[k].path))
                return usage_error("%s %s is the same file as %s %s; each output needs "
                                   "its own", out[i].flag, out[i].path, out[k].flag,
                                   out[k].path);
    }
    return RT_OK;
}

int rt_parse_args(const cnnrt_model *m, int argc, char **argv, rt_opts *o)
{
    defaults(m, o);
    if (argc < 2)
        return usage_error("no command given; expected train, eval, predict, gradcheck, "
                           "bench, summary or --help");
    const char *c = argv[1];
    if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help")) {
        o->cmd = RT_CMD_HELP;
        return RT_OK;
    }
    int cmd = -1;
    for (int i = 0; i <= RT_CMD_SUMMARY; i++)
        if (strcmp(c, command_names[i]) == 0)
            cmd = i;
    if (cmd < 0)
        return usage_error("unknown command '%s'; expected train, eval, predict, "
                           "gradcheck, bench, summary or --help", c);
    o->cmd = (rt_cmd)cmd;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            o->help = true;
            continue;
        }
        if (a[0] != '-')
            return usage_error("%s: unexpected argument '%s'; flags start with --",
                               c, a);
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const Flag *fl = find_flag(a, len, cmd);
        const char *near = fl ? NULL : nearest_flag(a, len, cmd);
        if (near)
            return usage_error("%s: unknown flag '%.*s'; did you mean '%s'?", c, (int)len,
                               a, near);
        if (!fl)
            return usage_error("%s: unknown flag '%.*s' (see '%s %s --help')", c,
                               (int)len, a, rt_prog, c);
        if (!(fl->cmds & (1u << cmd))) {
            char users[128] = "";
            for (int k = 0; k <= RT_CMD_BENCH; k++)
                if (fl->cmds & (1u << k))
                    snprintf(users + strlen(users), sizeof users - strlen(users), "%s%s",
                             users[0] ? ", " : "", command_names[k]);
            return usage_error("%s: the flag %s is not one of %s's; it belongs to %s",
                               c, fl->name, c, users);
        }
        const char *value;
        if (fl->type == F_SWITCH) {
            if (eq)
                return usage_error("%s: %s takes no value, found '%s'", c, fl->name, eq + 1);
            value = "";
        } else if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return usage_error("%s: %s needs a value", c, fl->name);
        }
        int rc = set_value(m, fl, value, o);
        if (rc != RT_OK)
            return rc;
        if (fl->off == offsetof(rt_opts, batch))
            o->batch_given = true;
    }
    if (o->help)
        return RT_OK;
    switch (o->cmd) {
    case RT_CMD_TRAIN:
        if (!o->data)
            return usage_error("train: --data is required");
        if (o->val_labels && !o->val_data)
            return usage_error("train: --val-labels needs --val-data");
        if (o->val_data && o->val_split > 0)
            return usage_error("train: --val-data and --val-split exclude each other");
        if (o->init && o->resume)
            return usage_error("train: --init starts a new run and --resume goes on with "
                               "one; give one of them");
        if (o->pause_after && !o->save)
            return usage_error("train: --pause-after needs --save, where the run waits "
                               "for --resume");
        break;
    case RT_CMD_EVAL:
    case RT_CMD_PREDICT:
        if (!o->data)
            return usage_error("%s: --data is required", c);
        if (!o->weights)
            return usage_error("%s: --weights is required", c);
        break;
    default:
        break;
    }
    return check_outputs(o);
}

int rt_print_command_help(const cnnrt_model *m, rt_cmd cmd)
{
    if (cmd == RT_CMD_SUMMARY || cmd == RT_CMD_HELP)
        rt_usage(m, stdout);
    else
        command_usage(m, cmd, stdout);
    return RT_OK;
}
