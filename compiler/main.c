/* main.c: the cnnc command line.
 *
 *   cnnc model.net -o model.c      emit a trainer
 *   cnnc --check model.net         parse and shape-check only
 *   cnnc --summary model.net       layers, shapes, parameters, FLOP, memory plan
 *   cnnc --emit=dot model.net -o model.dot    a Graphviz picture of the network
 *   cnnc --kernels=reference model.net -o ref.c   the trainer in plain loops
 *   cnnc --emit=inference --weights W.safetensors model.net -o model_infer.c
 *   cnnc --emit=onnx --weights W.safetensors model.net -o model.onnx
 *
 * Exit status: 0 compiled, 1 the model has errors, 2 usage or I/O problems. */
#include "config.h"
#include "cnnc.h"
#include "deploy.h"
#include "output.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

enum { EXIT_MODEL = 1, EXIT_USAGE = 2 };

/* A macro's value as a string literal: "64" for PLAN_MAX_LANES. */
#define STR_(x) #x
#define STR(x) STR_(x)

typedef enum Mode { MODE_EMIT, MODE_CHECK, MODE_SUMMARY } Mode;

/* What -o receives (--emit=...). */
typedef enum Output { OUTPUT_TRAINER, OUTPUT_DOT, OUTPUT_INFERENCE, OUTPUT_ONNX } Output;

typedef struct Options {
    Mode mode;
    Output emit;
    const char *input;
    const char *output;     /* -o; NULL with --check/--summary */
    int64_t real_size;      /* 4 or 8 */
    int64_t micro;          /* --micro-batch; 0: the plan's choice */
    int lanes;              /* --lanes; 0: the plan's choice (two) */
    Kernels kernels;        /* --kernels */
    int64_t fast_budget;    /* --fast-budget, in bytes; 0: the default */
    int max_errors;
    bool werror;
    const char *weights;    /* --weights: the checkpoint inference and ONNX take */
    const char *prefix;     /* --prefix: NAME of NAME_predict (default: the model's) */
    const Weights *trained; /* the checkpoint's values, once read */
    bool int8;              /* --quantize=int8 */
    const char *calibrate;  /* --calibrate: samples for the activation ranges */
    const Quantized *quantized; /* the int8 plan, once calibrated */
} Options;

static void usage(FILE *f)
{
    fputs("Usage: cnnc [OPTION]... MODEL.net\n"
          "Compile a network description into the C source of its trainer.\n"
          "\n"
          "  -o FILE             write the trainer's C to FILE ('-': standard output)\n"
          "      --check         parse and shape-check only\n"
          "      --summary       print layers, shapes, parameters, FLOP and memory plan\n"
          "      --emit=WHAT     what -o writes: trainer (default); dot (a Graphviz\n"
          "                      picture of the network); inference (one C99 file that\n"
          "                      computes the trained network's outputs); onnx\n"
          "      --weights=CKPT  the trained weights (a checkpoint of the trainer) that\n"
          "                      --emit=inference and --emit=onnx take\n"
          "      --prefix=NAME   NAME_predict in the inference C (default: the model's\n"
          "                      name)\n"
          "      --quantize=int8 the inference C in 8-bit integers (with --calibrate)\n"
          "      --calibrate=X   samples (a data file the trainer takes) whose\n"
          "                      activation ranges set the int8 scales\n"
          "      --kernels=K     fast (default): tiled, threaded kernels; reference: the\n"
          "                      plain loops of the math, to read and to check against\n"
          "      --fast-budget=KIB  the fast kernels' share of the generated C (8192);\n"
          "                      past it, the layers with the least FLOP get compact ones\n"
          "      --precision=P   f32 (default) or f64\n"
          "      --micro-batch=N samples per pass through the layers (default: the\n"
          "                      batch halved until its maps fit 24 MiB and every\n"
          "                      lane has one)\n"
          "      --lanes=N       deal a step's micro-batches to N lanes, 1 to 64; the\n"
          "                      trainer then runs on up to N MPI processes (default:\n"
          "                      2, or 1 when a step is one micro-batch)\n"
          "      --max-errors=N  stop after N errors (default 20)\n"
          "      -Werror         treat warnings as errors\n"
          "  -h, --help          show this help and exit\n"
          "  -V, --version       show the version and exit\n"
          "\n"
          "MODEL.net '-' reads standard input. Exit status: 0 compiled, 1 the model\n"
          "has errors, 2 usage or I/O problems. The language: docs/language.md.\n",
          f);
}

static int usage_error(const char *fmt, const char *arg)
{
    fputs("cnnc: error: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\nTry 'cnnc --help' for more information.\n", stderr);
    return EXIT_USAGE;
}

/* Returns -1 when the options are good, else the exit status to end with. */
static int parse_options(int argc, char **argv, Options *o)
{
    enum {
        OPT_CHECK = 256, OPT_SUMMARY, OPT_PRECISION, OPT_MICRO, OPT_MAX_ERRORS, OPT_WERROR,
        OPT_EMIT, OPT_KERNELS, OPT_FAST_BUDGET, OPT_WEIGHTS, OPT_PREFIX, OPT_QUANTIZE,
        OPT_CALIBRATE, OPT_LANES
    };
    static const struct option longopts[] = {
        {"check", no_argument, NULL, OPT_CHECK},
        {"summary", no_argument, NULL, OPT_SUMMARY},
        {"precision", required_argument, NULL, OPT_PRECISION},
        {"emit", required_argument, NULL, OPT_EMIT},
        {"kernels", required_argument, NULL, OPT_KERNELS},
        {"fast-budget", required_argument, NULL, OPT_FAST_BUDGET},
        {"weights", required_argument, NULL, OPT_WEIGHTS},
        {"prefix", required_argument, NULL, OPT_PREFIX},
        {"quantize", required_argument, NULL, OPT_QUANTIZE},
        {"calibrate", required_argument, NULL, OPT_CALIBRATE},
        {"micro-batch", required_argument, NULL, OPT_MICRO},
        {"lanes", required_argument, NULL, OPT_LANES},
        {"max-errors", required_argument, NULL, OPT_MAX_ERRORS},
        {"Werror", no_argument, NULL, OPT_WERROR},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    *o = (Options){.mode = MODE_EMIT, .real_size = 4, .max_errors = DIAG_DEFAULT_MAX_ERRORS};
    bool check = false, summary = false;
    opterr = 0;
    int c;
    while ((c = getopt_long_only(argc, argv, "o:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': o->output = optarg; break;
        case OPT_CHECK: check = true; break;
        case OPT_SUMMARY: summary = true; break;
        case OPT_WERROR: o->werror = true; break;
        case OPT_EMIT:
            if (strcmp(optarg, "trainer") == 0)
                o->emit = OUTPUT_TRAINER;
            else if (strcmp(optarg, "dot") == 0)
                o->emit = OUTPUT_DOT;
            else if (strcmp(optarg, "inference") == 0)
                o->emit = OUTPUT_INFERENCE;
            else if (strcmp(optarg, "onnx") == 0)
                o->emit = OUTPUT_ONNX;
            else
                return usage_error("--emit takes trainer, dot, inference or onnx, not '%s'",
                                   optarg);
            break;
        case OPT_WEIGHTS: o->weights = optarg; break;
        case OPT_CALIBRATE: o->calibrate = optarg; break;
        case OPT_QUANTIZE:
            if (strcmp(optarg, "int8") != 0)
                return usage_error("--quantize takes int8, not '%s'", optarg);
            o->int8 = true;
            break;
        case OPT_PREFIX:
            if (!is_name(optarg) || strlen(optarg) > 64)
                return usage_error("--prefix needs a C name ([A-Za-z_][A-Za-z0-9_]*, at most "
                                   "64 characters), not '%s'", optarg);
            o->prefix = optarg;
            break;
        case OPT_KERNELS:
            if (strcmp(optarg, "fast") == 0)
                o->kernels = KERNELS_FAST;
            else if (strcmp(optarg, "reference") == 0)
                o->kernels = KERNELS_REFERENCE;
            else
                return usage_error("--kernels takes fast or reference, not '%s'", optarg);
            break;
        case OPT_FAST_BUDGET: {
            char *end;
            errno = 0;
            long long kib = strtoll(optarg, &end, 10);
            if (errno || *end || end == optarg || kib < 1 || kib > (1LL << 30))
                return usage_error("--fast-budget needs a size in KiB from 1 to 1073741824, "
                                   "not '%s'", optarg);
            o->fast_budget = kib << 10;
            break;
        }
        case OPT_PRECISION:
            if (strcmp(optarg, "f32") == 0)
                o->real_size = 4;
            else if (strcmp(optarg, "f64") == 0)
                o->real_size = 8;
            else
                return usage_error("--precision must be f32 or f64, not '%s'", optarg);
            break;
        case OPT_MICRO: {
            char *end;
            errno = 0;
            long long n = strtoll(optarg, &end, 10);
            if (errno || *end || end == optarg || n < 1 || n > CNNC_MAX_ELEMS)
                return usage_error("--micro-batch needs a positive number of samples, not '%s'",
                                   optarg);
            o->micro = n;
            break;
        }
        case OPT_LANES: {
            char *end;
            errno = 0;
            long n = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || n < 1 || n > PLAN_MAX_LANES)
                return usage_error("--lanes needs a number of lanes from 1 to "
                                   STR(PLAN_MAX_LANES) ", not '%s' (each lane has "
                                   "its own maps and gradients)", optarg);
            o->lanes = (int)n;
            break;
        }
        case OPT_MAX_ERRORS: {
            char *end;
            errno = 0;
            long n = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || n < 1 || n > 100000)
                return usage_error("--max-errors needs a number from 1 to 100000, not '%s'",
                                   optarg);
            o->max_errors = (int)n;
            break;
        }
        case 'h': usage(stdout); return 0;
        case 'V': printf("cnnc %s\n", PACKAGE_VERSION); return 0;
        case ':': return usage_error("option '%s' needs an argument", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return usage_error("%s", "no model file given");
    if (optind + 1 < argc)
        return usage_error("one model file at a time; '%s' is one too many", argv[optind + 1]);
    o->input = argv[optind];
    if (check && summary)
        return usage_error("%s", "--check and --summary do not go together");
    o->mode = check ? MODE_CHECK : summary ? MODE_SUMMARY : MODE_EMIT;
    if (o->mode != MODE_EMIT && o->output)
        return usage_error("-o writes a trainer; it does not go with --%s",
                           check ? "check" : "summary");
    if (o->mode == MODE_EMIT && !o->output)
        return usage_error("%s", "say where the trainer goes with -o FILE (or use --check)");
    bool deploy = o->emit == OUTPUT_INFERENCE || o->emit == OUTPUT_ONNX;
    if (o->mode == MODE_EMIT && deploy && !o->weights)
        return usage_error("--emit=%s needs the trained weights: --weights CKPT",
                           o->emit == OUTPUT_ONNX ? "onnx" : "inference");
    if (o->weights && !(o->mode == MODE_EMIT && deploy))
        return usage_error("%s", "--weights goes with --emit=inference or --emit=onnx");
    if (o->prefix && !(o->mode == MODE_EMIT && o->emit == OUTPUT_INFERENCE))
        return usage_error("%s", "--prefix goes with --emit=inference");
    if (o->int8 && !(o->mode == MODE_EMIT && o->emit == OUTPUT_INFERENCE))
        return usage_error("%s", "--quantize goes with --emit=inference");
    if (o->int8 && !o->calibrate)
        return usage_error("%s", "--quantize=int8 needs samples to calibrate on: --calibrate X");
    if (o->calibrate && !o->int8)
        return usage_error("%s", "--calibrate goes with --quantize=int8");
    return -1;
}

/* What --emit asks for, to f; compact: the layers with compact kernels. */
static bool emit_to(FILE *f, const Network *net, const Options *o, const Source *src,
                    const bool *compact)
{
    if (o->emit == OUTPUT_DOT)
        return emit_dot(f, net);
    if (o->emit == OUTPUT_INFERENCE) {
        InferOptions io = {.prefix = o->prefix ? o->prefix : net->name,
                           .source = src->name, .weights_path = o->weights,
                           .calibrate = o->calibrate};
        if (o->quantized)
            return emit_quantized(f, o->quantized, &io);
        return emit_inference(f, net, o->trained, &io);
    }
    if (o->emit == OUTPUT_ONNX)
        return emit_onnx(f, net, o->trained);
    EmitOptions eo = {.real_size = o->real_size, .micro = o->micro, .lanes = o->lanes,
                      .kernels = o->kernels, .fast_budget = o->fast_budget,
                      .compact = compact, .src = src};
    return emit_network(f, net, &eo);
}

/* Writes the output to path with the runtime's writer (runtime/output.h):
 * a reader sees either the old file or the whole new one; a device or a FIFO
 * is written through, a symbolic link's target replaced. The model file
 * itself is refused as the output: it would be lost to its own trainer. */
static int write_emitted(const char *path, const Network *net, const Options *o,
                         const Source *src, const bool *compact)
{
    if (strcmp(path, "-") == 0)
        return emit_to(stdout, net, o, src, compact) ? 0 : EXIT_USAGE;
    if (strcmp(o->input, "-") != 0 && !rt_is_stream(path) && rt_same_file(path, o->input)) {
        fprintf(stderr, "cnnc: error: -o %s is the model file %s itself; writing the "
                "trainer there would destroy the model\n", path, o->input);
        return EXIT_USAGE;
    }
    rt_output out;
    FILE *f = rt_output_open(&out, path);
    if (!f) {
        fprintf(stderr, "cnnc: error: %s\n", rt_errmsg());
        return EXIT_USAGE;
    }
    /* emit_to fails having said why, or on a write error, which the commit
     * reports */
    if (!emit_to(f, net, o, src, compact) && !ferror(f)) {
        rt_output_abort(&out);
        return EXIT_USAGE;
    }
    if (rt_output_commit(&out) != 0) {
        fprintf(stderr, "cnnc: error: %s\n", rt_errmsg());
        return EXIT_USAGE;
    }
    return 0;
}

/* The output --emit asks for, to path; a trainer too large to compile is
 * refused before the output is touched (the model's fault: exit status 1). */
static int write_output(const char *path, const Network *net, const Options *o,
                        const Source *src)
{
    EmitOptions eo = {.real_size = o->real_size, .micro = o->micro, .lanes = o->lanes,
                      .kernels = o->kernels, .fast_budget = o->fast_budget,
                      .note_compact = true};
    bool *compact = xcalloc((size_t)net->nlayers + 1, sizeof *compact);
    int ncompact;
    if (o->emit == OUTPUT_TRAINER && !emit_kernels_checked(net, &eo, compact, &ncompact)) {
        free(compact);
        return EXIT_MODEL;
    }
    int status = write_emitted(path, net, o, src, compact);
    free(compact);
    return status;
}

/* Front end: source -> checked network. NULL when the model has errors. */
static Network *compile_front(const Options *o, Source *src)
{
    Diag d;
    diag_init(&d, src, stderr);
    d.max_errors = o->max_errors;
    d.werror = o->werror;
    Ast *ast = parse_source(src, &d);
    Network *net = NULL;
    if (ast && !diag_full(&d))
        net = check_ast(ast, src->name, &d);
    if (net && d.errors > 0) {
        network_free(net);
        net = NULL;
    }
    ast_free(ast);
    return net;
}

int main(int argc, char **argv)
{
    Options o;
    int status = parse_options(argc, argv, &o);
    if (status >= 0)
        return status;
    Source *src = source_read(o.input);
    if (!src)
        return EXIT_USAGE;
    Network *net = compile_front(&o, src);
    if (!net) {
        source_free(src);
        return EXIT_MODEL;
    }
    /* The checkpoint is read whole before the output is opened: a bad one
     * leaves no file behind. */
    Weights *trained = NULL;
    if (o.weights) {
        trained = weights_load(net, src, o.weights);
        if (!trained) {
            network_free(net);
            source_free(src);
            return EXIT_MODEL;
        }
        o.trained = trained;
    }
    /* So is the calibration run, for the same reason. */
    Quantized *quantized = NULL;
    if (trained && o.int8) {
        quantized = quant_prepare(net, trained, o.calibrate);
        if (!quantized) {
            weights_free(trained);
            network_free(net);
            source_free(src);
            return EXIT_MODEL;
        }
        o.quantized = quantized;
    }
    status = 0;
    /* --lanes in a fast trainer: every lane must get a micro-batch (the
     * reference tier has one lane) */
    char why[512];
    bool planned = o.mode == MODE_SUMMARY || (o.mode == MODE_EMIT && o.emit == OUTPUT_TRAINER);
    if (planned && o.kernels == KERNELS_FAST && !plan_lanes_fit(net, o.micro, o.lanes, why,
                                                                 sizeof why)) {
        fprintf(stderr, "cnnc: error: %s: %s\n", src->name, why);
        status = EXIT_USAGE;
    } else if (o.mode == MODE_SUMMARY) {
        summary_print(stdout, net, o.real_size, o.micro, o.lanes, o.kernels, o.fast_budget);
    } else if (o.mode == MODE_EMIT) {
        status = write_output(o.output, net, &o, src);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "cnnc: error: writing standard output: %s\n", strerror(errno));
        status = EXIT_USAGE;
    }
    quant_free(quantized);
    weights_free(trained);
    network_free(net);
    source_free(src);
    return status;
}
