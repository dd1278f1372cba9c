/* cnnrt.h: the runtime library of cnnc's trainers, and its contract with the
 * generated code.
 *
 * The compiler emits one C file per network. That file holds everything that
 * depends on shapes (forward, loss, backward, the optimizer update) and
 * describes the network in one constant cnnrt_model; its main() hands that to
 * cnnrt_main(), which does everything that does not depend on shapes: the
 * command line, data files, checkpoints, initialisation, random numbers, the
 * training loop and its progress, gradcheck and bench.
 *
 *     #include "cnnrt.h"
 *     ...
 *     const cnnrt_model cnnrt_model_seed = { CNNRT_ABI_VERSION, "seed", ... };
 *     int main(int argc, char **argv) { return cnnrt_main(&cnnrt_model_seed, argc, argv); }
 *
 * runtime/example_model.c is a complete hand-written model (a two-layer
 * perceptron) against this header: the reference for the code generator.
 *
 * Conventions:
 * - "real" is the model's value type: float when real_size is 4, double when
 *   it is 8. Every void * below that holds values points to reals.
 * - Inputs are NHWC: sample i's element (y, x, c) is at
 *   x[i*input_size + (y*W + x)*C + c]; vector inputs are x[i*input_size + f].
 * - One library serves float and double trainers alike; it converts data and
 *   checkpoints to and from the model's real type.
 */
#ifndef CNNRT_H
#define CNNRT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever cnnrt_model or cnnrt_ctx changes; the generated code puts
 * the value it was written for in cnnrt_model.abi_version and cnnrt_main
 * refuses a mismatch. */
#define CNNRT_ABI_VERSION 5

/* The enums follow the language's spelling order (tag: enum-names):
 * cross_entropy|mse, sgd|momentum|nesterov|adam|adamw, he_normal|
 * he_uniform|glorot_normal|glorot_uniform, constant|step|cosine. */
typedef enum cnnrt_loss {
    CNNRT_CROSS_ENTROPY, /* softmax fused into the loss; outputs are probabilities */
    CNNRT_MSE            /* mean over all n*outputs elements of (y - t)^2 */
} cnnrt_loss;

typedef enum cnnrt_optimizer {
    CNNRT_SGD,      /* w -= lr*g                      (no state)          */
    CNNRT_MOMENTUM, /* b = mu*b + g; w -= lr*b         (slot 0: b)        */
    CNNRT_NESTEROV, /* b = mu*b + g; w -= lr*(g + mu*b) (slot 0: b)       */
    CNNRT_ADAM,     /* PyTorch's Adam                  (slot 0: m, 1: v)  */
    CNNRT_ADAMW     /* PyTorch's AdamW: decay decoupled (slot 0: m, 1: v)  */
} cnnrt_optimizer;

/* The learning rate of each step (PyTorch's schedulers, stepped per batch
 * for cosine): constant; step, times gamma every step_size epochs; cosine,
 * annealed from lr to 0 over the whole run (CosineAnnealingLR). A warm-up
 * of warmup epochs first rises linearly from 0 to lr. */
typedef enum cnnrt_schedule {
    CNNRT_CONSTANT,
    CNNRT_STEP,
    CNNRT_COSINE
} cnnrt_schedule;

typedef enum cnnrt_init {
    CNNRT_HE_NORMAL,      /* N(0, sd = sqrt(2/fan_in))            */
    CNNRT_HE_UNIFORM,     /* U(-a, a), a = sqrt(6/fan_in)          */
    CNNRT_GLOROT_NORMAL,  /* N(0, sd = sqrt(2/(fan_in+fan_out)))   */
    CNNRT_GLOROT_UNIFORM  /* U(-a, a), a = sqrt(6/(fan_in+fan_out)) */
} cnnrt_init;

/* ------------------------------------------------------------------------
 * Random numbers: xoshiro256** (Blackman and Vigna), its 256-bit state
 * filled by splitmix64. Same seed and stream, same numbers on every machine.
 */
typedef struct cnnrt_rng {
    uint64_t s[4];
} cnnrt_rng;

/* State from (seed, stream): x = seed ^ (stream * 0x9E3779B97F4A7C15), then
 * s[0..3] = four successive splitmix64(x). Streams the runtime uses:
 * 1 initialisation, 2 shuffling, 3 dropout, 4 gradcheck/bench data. */
void cnnrt_rng_seed(cnnrt_rng *r, uint64_t seed, uint64_t stream);

static inline uint64_t cnnrt_rng_next(cnnrt_rng *r)
{
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5;
    uint64_t result = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* Uniform in [0, 1): the top 53 bits of one draw, times 2^-53. */
static inline double cnnrt_rng_uniform(cnnrt_rng *r)
{
    return (double)(cnnrt_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform in [0, 1) as a float: the top 24 bits, times 2^-24. For dropout
 * masks: keep an element when cnnrt_rng_uniformf(&ctx->rng) >= p. */
static inline float cnnrt_rng_uniformf(cnnrt_rng *r)
{
    return (float)(cnnrt_rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

/* Uniform integer in [0, n), n >= 1, without bias (Lemire's method). */
uint64_t cnnrt_rng_below(cnnrt_rng *r, uint64_t n);

/* Standard normal N(0, 1) by Marsaglia's polar method: draw u, v uniform in
 * (-1, 1) until 0 < s = u*u + v*v < 1, return u * sqrt(-2 ln(s) / s). The
 * second variate of the pair is dropped, so each call stands alone. */
double cnnrt_rng_normal(cnnrt_rng *r);

/* ------------------------------------------------------------------------
 * The network, as the generated code describes it
 */

/* One parameter tensor. All tensors live in one block of param_count reals
 * (ctx->params), gradients in a block of the same layout (ctx->grads). */
typedef struct cnnrt_param {
    const char *name;     /* checkpoint name: "C1.weight", "D3.bias" */
    int rank;             /* 1..4 */
    int64_t shape[4];     /* PyTorch layout: Conv weight [n, C_in, KH, KW],
                             Dense weight [out, in], bias [n]; unused
                             entries 0 */
    int64_t offset;       /* first element, in reals, into ctx->params */
    int64_t count;        /* elements: the product of shape */
    int64_t fan_in;       /* C_in*KH*KW for Conv, in for Dense */
    int64_t fan_out;      /* n*KH*KW for Conv, out for Dense */
    cnnrt_init init;      /* the layer's init= or Train's */
    int is_bias;          /* 1: starts at zero, whatever init says */
    int is_one;           /* 1: starts at one (BatchNorm's weight) */
} cnnrt_param;

/* A buffer: state of a layer that is no parameter (no gradient, no
 * optimizer) but belongs to the model and its checkpoints, PyTorch's
 * register_buffer: BatchNorm's running statistics. The generated code
 * updates them in training forward passes. */
typedef struct cnnrt_buffer {
    const char *name;     /* "bn1.running_mean", "bn1.num_batches_tracked" */
    int rank;             /* 1, or 0 for a scalar */
    int64_t shape[4];     /* unused entries 0 */
    int64_t count;        /* elements (1 for a scalar) */
    int is_int64;         /* 1: int64 elements (num_batches_tracked); 0: reals */
    size_t offset;        /* bytes into ctx->buffers, aligned to 8 */
    double start;         /* every element's value before training: 0 or 1 */
} cnnrt_buffer;

/* The Train(...) settings, as defaults for the command line. */
typedef struct cnnrt_train {
    int batch;            /* <= max_batch */
    int64_t epochs;
    double lr, momentum, beta1, beta2, eps, decay;
    cnnrt_optimizer optimizer;
    uint64_t seed;
    cnnrt_schedule schedule;
    double gamma;         /* step: the factor */
    int64_t step_size;    /* step: every this many epochs */
    double warmup;        /* epochs of linear warm-up (may be fractional) */
    double label_smoothing; /* CrossEntropyLoss(label_smoothing=) */
    double clip;          /* clip_grad_norm_ to this L2 norm; 0: off */
    int flip;             /* 1: random horizontal flips of training images */
    int crop;             /* random crops after zero padding of this many pixels */
} cnnrt_train;

typedef struct cnnrt_ctx cnnrt_ctx;
typedef struct cnnrt_lane cnnrt_lane;

/* What a lane does with one micro-batch (see cnnrt_run_lanes). */
typedef void cnnrt_micro_job(const cnnrt_lane *lane, void *arg);

typedef struct cnnrt_model {
    int abi_version;          /* CNNRT_ABI_VERSION */
    const char *name;         /* "seed": messages, checkpoint metadata */
    const char *source;       /* the .net text, stored in checkpoints */
    uint64_t source_hash;     /* any stable 64-bit hash of the network (FNV-1a
                                 of the source text is fine); a checkpoint
                                 from another hash loads with a warning */
    int real_size;            /* 4: float trainer, 8: double trainer */

    int input_rank;           /* 3: an H x W x C map; 1: a vector of F */
    int64_t input_shape[3];   /* {H, W, C}, or {F, 0, 0} for a vector */
    int64_t input_size;       /* reals per sample: H*W*C or F */
    int64_t outputs;          /* reals per sample out of forward (classes
                                 for cross_entropy) */
    cnnrt_loss loss_kind;
    int max_batch;            /* the compiled batch: the workspace holds this
                                 many samples; --batch may only lower it */
    cnnrt_train train;        /* Train(...) defaults */

    const cnnrt_param *params; /* in layer order */
    int nparams;
    int64_t param_count;      /* reals in the parameter block */
    const cnnrt_buffer *buffers; /* in layer order; NULL when none */
    int nbuffers;
    size_t buffer_bytes;      /* bytes of the buffer block */
    /* Input(mean=, std=): every input real, once converted (uint8 / 255),
     * becomes (x - input_mean[c]) / input_std[c], c its index mod
     * input_norm, in the model's precision; input_norm 0: none. */
    int input_norm;
    const double *input_mean, *input_std;

    /* Bytes of workspace (activations kept for backward, gradient scratch,
     * anything the generated code needs per step) at max_batch when running
     * with this many threads. The runtime allocates it once, 64-byte
     * aligned, zeroed, into ctx->workspace. */
    size_t (*workspace_bytes)(int threads);

    const char *const *layer_labels; /* every layer's label, in order */
    int nlayers;
    const char *summary;      /* the text of `cnnc --summary` at this
                                 precision, printed by `summary`; may be NULL */
    double train_flops;       /* FLOP per sample of one training step
                                 (forward + backward), for bench */

    /* ---- entry points; all shape-specific work is in here ---- */

    /* Forward pass of n (1..max_batch) samples x (n*input_size reals, NHWC).
     * Dropout is active when ctx->training is set, drawing its mask from
     * ctx->rng. Must set ctx->output to n*outputs reals (probabilities for
     * cross_entropy), valid until the next call. The runtime keeps x alive
     * and unchanged until the matching backward returns, so the generated
     * code may keep the pointer instead of copying the input. */
    void (*forward)(cnnrt_ctx *ctx, int n, const void *x);

    /* The mean loss of the last forward's n samples, in PyTorch's meaning
     * (cross_entropy: mean over samples of -log p[label]; mse: mean over all
     * n*outputs elements). labels: n class indices (always given for
     * cross_entropy; for mse given when the data has class labels, else
     * NULL). targets: for mse, n*outputs reals (one-hot when the data has
     * labels); NULL for cross_entropy. Also prepares what backward needs.
     * The runtime counts correct predictions itself, from ctx->output. */
    double (*loss)(cnnrt_ctx *ctx, int n, const int32_t *labels, const void *targets);

    /* Gradients of the mean loss with respect to every parameter into
     * ctx->grads (the generated code zeroes them first). Called after
     * forward and loss on the same n samples. */
    void (*backward)(cnnrt_ctx *ctx, int n);

    /* One optimizer step on all parameters from ctx->grads, with ctx's
     * hyperparameters, in PyTorch's semantics: decay adds decay*w to the
     * gradient first; state in ctx->opt_state as laid out below. The runtime
     * increments ctx->step before the call, so ctx->step is the 1-based
     * number of this step (Adam's bias correction uses it). */
    void (*update)(cnnrt_ctx *ctx);

    /* The label of the first layer (in order) whose output from the last
     * forward holds a NaN or infinity, or NULL when all are finite. */
    const char *(*first_nonfinite)(cnnrt_ctx *ctx);

    /* Optional (may be NULL): forward + loss + backward + update fused, with
     * the same meaning as calling them in a row (ctx->step already
     * incremented); returns the loss and leaves ctx->output set. */
    double (*train_step)(cnnrt_ctx *ctx, int n, const void *x,
                         const int32_t *labels, const void *targets);

    /* Optional (may be NULL): train_step from bytes, for uint8 data. x holds
     * n*input_size bytes (NHWC) and the input is x / 255, as the runtime
     * would convert it (float: (float)x / 255.0f, double: x / 255.0), so the
     * step is bitwise the one train_step takes on the converted reals. The
     * generated code converts each micro-batch where it uses it, near the
     * cache, instead of a whole batch of reals in memory. */
    double (*train_step_bytes)(cnnrt_ctx *ctx, int n, const uint8_t *x,
                               const int32_t *labels, const void *targets);

    /* ---- lanes, for models that use cnnrt_run_lanes (else all 0) ---- */
    int lanes;                /* a step's micro-batches are dealt to this many
                                 lanes: micro-batch k to lane k mod lanes */
    int micro_batch;          /* samples a lane takes through the layers at once */
    size_t lane_bytes;        /* lane l's workspace starts l * lane_bytes
                                 into ctx->workspace */
    size_t lane_grads_offset; /* bytes into ctx->workspace: the gradients of
                                 lanes 1.., param_count reals each (lane 0
                                 uses ctx->grads) */
} cnnrt_model;

/* ------------------------------------------------------------------------
 * The context: what the entry points work on
 *
 * Optimizer state layout (the runtime allocates and checkpoints it):
 * cnnrt_opt_slots(optimizer) slots of param_count reals each, slot k of
 * parameter element j at ((real *)opt_state)[k*param_count + j]:
 *   momentum, nesterov: slot 0 the momentum buffer ("momentum_buffer");
 *   adam: slot 0 the first moment m ("exp_avg"), 1 the second v ("exp_avg_sq").
 * The state starts at zero, so "buf = grad at the first step" is simply
 * buf = momentum*0 + grad.
 */
struct cnnrt_ctx {
    const cnnrt_model *model;
    void *params;          /* param_count reals */
    void *grads;           /* param_count reals */
    void *opt_state;       /* cnnrt_opt_slots(optimizer)*param_count reals,
                              NULL for sgd */
    void *workspace;       /* workspace_bytes(threads), 64-byte aligned */
    size_t workspace_size; /* its bytes */
    const void *output;    /* set by forward: n*outputs reals */
    int threads;           /* --threads: the generated code's OpenMP team
                              size (num_threads(ctx->threads)) */
    int training;          /* 1 in train steps and gradcheck (dropout on),
                              0 in eval, predict and validation */
    int64_t step;          /* optimizer steps taken (see update) */
    cnnrt_optimizer optimizer;
    double lr, momentum, beta1, beta2, eps, decay;  /* lr: this step's */
    double label_smoothing; /* the loss's (cross-entropy) */
    double clip;           /* update: the gradients' global L2 norm at most
                              this (0: not clipped) */
    void *buffers;         /* model->buffer_bytes: the model's buffers */
    cnnrt_rng rng;         /* dropout masks; draw in a fixed order */
    void *user;            /* free for the generated code; the runtime
                              never touches it */
    struct rt_pool *pool;  /* the threads (runtime/pool.c); NULL: one */
};

/* ------------------------------------------------------------------------
 * Threads and lanes, for the generated code
 *
 * A loop whose items are independent (each computes its own values in its
 * own fixed order) runs on the context's threads with cnnrt_parallel: body
 * is called on consecutive chunks [lo, hi) of [0, count), at least grain
 * items each (but the last), in no particular order and on any thread. The
 * results are therefore the same on any number of threads. Loops may nest:
 * a body may call cnnrt_parallel again.
 */
typedef void cnnrt_body(void *arg, int lo, int hi);
void cnnrt_parallel(const cnnrt_ctx *ctx, int count, int grain, cnnrt_body *body, void *arg);

/* One lane's part of a call of the model: its micro-batch, its workspace
 * and gradients. A lane takes its micro-batches in order; the lanes run side
 * by side (or one after another on one thread), and their gradients are
 * added in lane order at the end, so every sum is the same on any number of
 * threads. */
struct cnnrt_lane {
    cnnrt_ctx *home;       /* the whole batch: parameters, settings */
    void *workspace;       /* the lane's workspace */
    void *grads;           /* the lane's gradients (lane 0's are home's) */
    int index;             /* 0 .. model->lanes - 1 */
    int threads;           /* the threads a lane can count on, for dividing
                              its loops (any thread may still help) */
    int i0, n;             /* the micro-batch: samples i0 .. i0 + n - 1 */
    int first, last;       /* it is the lane's first / last of the call */
    uint64_t key;          /* the call's random key (Dropout's masks) */
};

/* Deals the micro-batches of n samples (model->micro_batch each, the last
 * maybe fewer) to the model's lanes and runs job on each, on ctx's threads.
 * zero: each lane's gradients start at zero. */
void cnnrt_run_lanes(cnnrt_ctx *ctx, int n, int zero, uint64_t key, cnnrt_micro_job *job,
                     void *arg);
/* ctx->grads += the gradients of lanes 1.., in lane order. */
void cnnrt_add_lanes(cnnrt_ctx *ctx);

/* Several processes (a trainer linked with libcnnrt_mpi under mpirun): the
 * lanes of a training step run on the processes that own them, and where
 * the generated code reads what another lane computed, it first asks for
 * it with these (in one process, or outside a training step, they return at
 * once). n: the samples of the call.
 * cnnrt_share_lanes: bytes [off, off + bytes) of every lane's workspace
 * that holds a micro-batch, from the lane's owner to all;
 * cnnrt_share_rows: each micro-batch's rows of a [n][row_bytes] buffer at
 * byte off of the home workspace, from its lane's owner to all;
 * cnnrt_share_lane_values: v[model->lanes], each lane's value from its owner.
 * The lanes' gradients are shared inside cnnrt_add_lanes. */
void cnnrt_share_lanes(cnnrt_ctx *ctx, int n, size_t off, size_t bytes);
void cnnrt_share_rows(cnnrt_ctx *ctx, int n, size_t off, size_t row_bytes);
void cnnrt_share_lane_values(cnnrt_ctx *ctx, double *v);

/* The number of optimizer state slots: 0 sgd, 1 momentum/nesterov, 2 adam. */
int cnnrt_opt_slots(cnnrt_optimizer opt);

/* The trainer's whole command line (see `MODEL --help`). Returns the exit
 * status: 0 done, 1 bad input or training diverged, 2 usage. */
int cnnrt_main(const cnnrt_model *model, int argc, char **argv);

/* For tests and embedders: allocate a context for the model (parameters,
 * gradients, optimizer state for opt, workspace for threads), all zeroed, and
 * set the hyperparameters from model->train. Returns 0, or -1 with the reason
 * in cnnrt_last_error(). */
int cnnrt_ctx_init(cnnrt_ctx *ctx, const cnnrt_model *model, cnnrt_optimizer opt,
                   int threads);
void cnnrt_ctx_free(cnnrt_ctx *ctx);

/* The message of the last failure inside the runtime. */
const char *cnnrt_last_error(void);

/* Fill ctx->params from the seed as the parameter table says (stream 1,
 * tensors in table order, elements in order; biases zero). */
void cnnrt_init_params(cnnrt_ctx *ctx, uint64_t seed);

#ifdef __cplusplus
}
#endif

#endif /* CNNRT_H */
