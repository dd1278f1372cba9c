/* example_model.c: a hand-written model against cnnrt.h, written the way
 * the code generator should write one. It is the runtime's test model and the
 * reference for the generated code.
 *
 *   # example.net
 *   Input(4)
 *   D1: Dense(n=8)
 *       ReLU
 *       Dropout(p=0.25)        # only when EXAMPLE_DROPOUT is defined
 *   D2: Dense(n=3)
 *       Softmax                # not with EXAMPLE_MSE (then loss=mse)
 *   Train(batch=16, lr=0.1, optimizer=momentum, epochs=20)
 *
 * Compile-time knobs (the generator would instead emit one fixed variant):
 *   EXAMPLE_REAL      float or double (default double)
 *   EXAMPLE_MSE       loss=mse with no Softmax, instead of cross_entropy
 *   EXAMPLE_DROPOUT   a Dropout(p=0.25) after the ReLU
 *   EXAMPLE_MODEL     the model's symbol (default cnnrt_model_example)
 *   EXAMPLE_MAIN      also define main()
 *
 * Workspace layout (reals, at MAX_BATCH samples), after a header that keeps
 * the input pointer of the last forward (the runtime keeps x unchanged until
 * backward returns):
 *   h1[B][H]   D1's output            a1[B][H]  ReLU's (and Dropout's) output
 *   mask[B][H] dropout scale 0 or 1/(1-p)
 *   z[B][K]    D2's output (logits)   y[B][K]   the model's output
 *   dz[B][K]   dLoss/dz, set by loss  da1[B][H] dLoss/da1, scratch of backward
 */
#include <string.h>
#include <tgmath.h>

#include "cnnrt.h"

#ifndef EXAMPLE_REAL
#define EXAMPLE_REAL double
#endif
#ifndef EXAMPLE_MODEL
#define EXAMPLE_MODEL cnnrt_model_example
#endif

typedef EXAMPLE_REAL real;

enum {
    MAX_BATCH = 16,
    F = 4,          /* inputs */
    H = 8,          /* D1's outputs */
    K = 3,          /* D2's outputs */
    /* the parameter block */
    D1_W = 0, D1_B = D1_W + H * F, D2_W = D1_B + H, D2_B = D2_W + K * H,
    PARAMS = D2_B + K,
};

#define DROPOUT_P 0.25

typedef struct Workspace {
    const real *x;
    real h1[MAX_BATCH][H], a1[MAX_BATCH][H], mask[MAX_BATCH][H];
    real z[MAX_BATCH][K], y[MAX_BATCH][K], dz[MAX_BATCH][K];
    real da1[MAX_BATCH][H];
} Workspace;

static size_t workspace_bytes(int threads)
{
    (void)threads;
    return sizeof(Workspace);
}

static Workspace *ws(cnnrt_ctx *ctx)
{
    return ctx->workspace;
}

/* ---- D1: Dense(n=8) on 4 inputs, then ReLU (and Dropout) ---------------- */

/* out h1[n][H], a1[n][H], mask[n][H]; in x[n][F], w[H][F], b[H] */
static void d1_forward(cnnrt_ctx *ctx, int n, const real *x)
{
    Workspace *s = ws(ctx);
    const real *w = (const real *)ctx->params + D1_W, *b = (const real *)ctx->params + D1_B;
    for (int i = 0; i < n; i++)
        for (int o = 0; o < H; o++) {
            real sum = b[o];
            for (int f = 0; f < F; f++)
                sum += w[o * F + f] * x[i * F + f];
            s->h1[i][o] = sum;
            real keep = 1;
#ifdef EXAMPLE_DROPOUT
            /* Inverted dropout; the mask is drawn in sample-major order. */
            if (ctx->training)
                keep = cnnrt_rng_uniformf(&ctx->rng) >= DROPOUT_P ? 1 / (1 - (real)DROPOUT_P) : 0;
#endif
            s->mask[i][o] = keep;
            s->a1[i][o] = (sum > 0 ? sum : 0) * keep;
        }
}

/* in da1[n][H] (dLoss/da1); out grads of w[H][F], b[H] */
static void d1_backward(cnnrt_ctx *ctx, int n)
{
    Workspace *s = ws(ctx);
    real *dw = (real *)ctx->grads + D1_W, *db = (real *)ctx->grads + D1_B;
    for (int i = 0; i < n; i++)
        for (int o = 0; o < H; o++) {
            real dh = s->h1[i][o] > 0 ? s->da1[i][o] * s->mask[i][o] : 0;
            db[o] += dh;
            for (int f = 0; f < F; f++)
                dw[o * F + f] += dh * s->x[i * F + f];
        }
}

/* ---- D2: Dense(n=3) on 8 inputs (then Softmax) ------------------------------ */

/* out z[n][K], y[n][K]; in a1[n][H], w[K][H], b[K] */
static void d2_forward(cnnrt_ctx *ctx, int n)
{
    Workspace *s = ws(ctx);
    const real *w = (const real *)ctx->params + D2_W, *b = (const real *)ctx->params + D2_B;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < K; k++) {
            real sum = b[k];
            for (int j = 0; j < H; j++)
                sum += w[k * H + j] * s->a1[i][j];
            s->z[i][k] = sum;
        }
#ifdef EXAMPLE_MSE
        for (int k = 0; k < K; k++)
            s->y[i][k] = s->z[i][k];
#else
        real max = s->z[i][0], total = 0;
        for (int k = 1; k < K; k++)
            max = s->z[i][k] > max ? s->z[i][k] : max;
        for (int k = 0; k < K; k++)
            total += s->y[i][k] = exp(s->z[i][k] - max);
        for (int k = 0; k < K; k++)
            s->y[i][k] /= total;
#endif
    }
}

/* in dz[n][K]; out grads of w[K][H], b[K], and da1[n][H] */
static void d2_backward(cnnrt_ctx *ctx, int n)
{
    Workspace *s = ws(ctx);
    const real *w = (const real *)ctx->params + D2_W;
    real *dw = (real *)ctx->grads + D2_W, *db = (real *)ctx->grads + D2_B;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < H; j++)
            s->da1[i][j] = 0;
        for (int k = 0; k < K; k++) {
            db[k] += s->dz[i][k];
            for (int j = 0; j < H; j++) {
                dw[k * H + j] += s->dz[i][k] * s->a1[i][j];
                s->da1[i][j] += s->dz[i][k] * w[k * H + j];
            }
        }
    }
}

/* ---- the entry points ---------------------------------------------------- */

static void forward(cnnrt_ctx *ctx, int n, const void *x)
{
    ws(ctx)->x = x;
    d1_forward(ctx, n, x);
    d2_forward(ctx, n);
    ctx->output = ws(ctx)->y;
}

static double loss(cnnrt_ctx *ctx, int n, const int32_t *labels, const void *targets)
{
    Workspace *s = ws(ctx);
    double total = 0;
#ifdef EXAMPLE_MSE
    /* mean over n*K elements of (y - t)^2; dz = 2 (y - t) / (n K) */
    const real *t = targets;
    (void)labels;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < K; k++) {
            real d = s->y[i][k] - t[i * K + k];
            total += (double)(d * d);
            s->dz[i][k] = 2 * d / (real)(n * K);
        }
    return total / (n * K);
#else
    /* mean over samples of -log softmax(z)[label], from the logits so that it
     * stays finite; dz = (y - onehot) / n */
    (void)targets;
    for (int i = 0; i < n; i++) {
        real max = s->z[i][0], sum = 0;
        for (int k = 1; k < K; k++)
            max = s->z[i][k] > max ? s->z[i][k] : max;
        for (int k = 0; k < K; k++)
            sum += exp(s->z[i][k] - max);
        total -= (double)(s->z[i][labels[i]] - max - log(sum));
        for (int k = 0; k < K; k++)
            s->dz[i][k] = (s->y[i][k] - (k == labels[i])) / (real)n;
    }
    return total / n;
#endif
}

static void backward(cnnrt_ctx *ctx, int n)
{
    memset(ctx->grads, 0, PARAMS * sizeof(real));
    d2_backward(ctx, n);
    d1_backward(ctx, n);
}

/* PyTorch's SGD (momentum, nesterov, weight_decay) and Adam, element-wise.
 * State slots as cnnrt.h lays them out: slot k of element j at
 * opt_state[k*PARAMS + j]. */
static void update(cnnrt_ctx *ctx)
{
    real *w = ctx->params;
    const real *g = ctx->grads;
    real *s0 = ctx->opt_state, *s1 = s0 ? s0 + PARAMS : NULL;
    real lr = (real)ctx->lr, mu = (real)ctx->momentum, decay = (real)ctx->decay;
    real b1 = (real)ctx->beta1, b2 = (real)ctx->beta2, eps = (real)ctx->eps;
    real bc1 = 1 - pow(b1, (real)ctx->step), bc2 = 1 - pow(b2, (real)ctx->step);
    for (int j = 0; j < PARAMS; j++) {
        real grad = g[j] + decay * w[j];
        switch (ctx->optimizer) {
        case CNNRT_SGD:
            w[j] -= lr * grad;
            break;
        case CNNRT_MOMENTUM:
            s0[j] = mu * s0[j] + grad;
            w[j] -= lr * s0[j];
            break;
        case CNNRT_NESTEROV:
            s0[j] = mu * s0[j] + grad;
            w[j] -= lr * (grad + mu * s0[j]);
            break;
        case CNNRT_ADAM:
            s0[j] = b1 * s0[j] + (1 - b1) * grad;
            s1[j] = b2 * s1[j] + (1 - b2) * grad * grad;
            w[j] -= lr / bc1 * s0[j] / (sqrt(s1[j]) / sqrt(bc2) + eps);
            break;
        case CNNRT_ADAMW: /* the decay decoupled from the gradient */
            w[j] *= 1 - lr * decay;
            grad = g[j];
            s0[j] = b1 * s0[j] + (1 - b1) * grad;
            s1[j] = b2 * s1[j] + (1 - b2) * grad * grad;
            w[j] -= lr / bc1 * s0[j] / (sqrt(s1[j]) / sqrt(bc2) + eps);
            break;
        }
    }
}

static int all_finite(const real *p, int count)
{
    for (int i = 0; i < count; i++)
        if (!isfinite(p[i]))
            return 0;
    return 1;
}

static const char *first_nonfinite(cnnrt_ctx *ctx)
{
    /* The batch size of the last forward is not kept: checking all
     * MAX_BATCH rows is fine, the workspace starts zeroed. */
    Workspace *s = ws(ctx);
    if (!all_finite(&s->h1[0][0], MAX_BATCH * H))
        return "D1";
    if (!all_finite(&s->a1[0][0], MAX_BATCH * H))
        return "relu1";
    if (!all_finite(&s->z[0][0], MAX_BATCH * K))
        return "D2";
    if (!all_finite(&s->y[0][0], MAX_BATCH * K))
        return "softmax1";
    return NULL;
}

static const cnnrt_param params[] = {
    {"D1.weight", 2, {H, F}, D1_W, H * F, F, H, CNNRT_HE_NORMAL, 0, 0},
    {"D1.bias", 1, {H}, D1_B, H, F, H, CNNRT_HE_NORMAL, 1, 0},
    {"D2.weight", 2, {K, H}, D2_W, K * H, H, K, CNNRT_GLOROT_UNIFORM, 0, 0},
    {"D2.bias", 1, {K}, D2_B, K, H, K, CNNRT_GLOROT_UNIFORM, 1, 0},
};

static const char *const layer_labels[] = {"D1", "relu1", "D2", "softmax1"};

const cnnrt_model EXAMPLE_MODEL = {
    .abi_version = CNNRT_ABI_VERSION,
    .name = "example",
    .source = "Input(4)\nD1: Dense(n=8)\n    ReLU\nD2: Dense(n=3)\n    Softmax\n"
              "Train(batch=16, lr=0.1, optimizer=momentum, epochs=20)\n",
    .source_hash = 0x6578616d706c6531u,
    .real_size = sizeof(real),
    .input_rank = 1,
    .input_shape = {F, 0, 0},
    .input_size = F,
    .outputs = K,
#ifdef EXAMPLE_MSE
    .loss_kind = CNNRT_MSE,
#else
    .loss_kind = CNNRT_CROSS_ENTROPY,
#endif
    .max_batch = MAX_BATCH,
    .train = {.batch = MAX_BATCH, .epochs = 20, .lr = 0.1, .momentum = 0.9,
              .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .decay = 0,
              .optimizer = CNNRT_MOMENTUM, .seed = 1},
    .params = params,
    .nparams = 4,
    .param_count = PARAMS,
    .workspace_bytes = workspace_bytes,
    .layer_labels = layer_labels,
    .nlayers = 4,
    .summary = NULL,
    .train_flops = 6.0 * (F * H + H * K),
    .forward = forward,
    .loss = loss,
    .backward = backward,
    .update = update,
    .first_nonfinite = first_nonfinite,
    .train_step = NULL,
};

#ifdef EXAMPLE_MAIN
int main(int argc, char **argv)
{
    return cnnrt_main(&EXAMPLE_MODEL, argc, argv);
}
#endif
