/* fuzz_safetensors.c: libFuzzer target for the checkpoint reader.
 *
 * Each input is a whole file: its 8-byte header length, the JSON header, the
 * tensors' bytes. It is read from memory into the runtime's example model
 * (runtime/example_model.c, f64, so that both F32 and F64 tensors can load)
 * as a checkpoint (rt_ckpt_load_buffer) and as a training state
 * (rt_state_load_buffer), the latter for Adam and for momentum, so that both
 * optimizers' __opt__ tensors are matched.
 *
 * Whatever the bytes, a load must end in success or in one message that
 * names the file; never in a crash, a leak or undefined behaviour (the
 * sanitizers), and a load that succeeds leaves only finite parameters and
 * optimizer state, a step count within RT_MAX_STEP and a run position that
 * adds up (checked here).
 *
 *   make fuzz-safetensors FUZZ_SECONDS=600      (see Makefile.am; needs clang)
 *
 * A crashing input found here becomes a case in tests/test_runtime.c once
 * fixed. */
#include "rt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

extern const cnnrt_model cnnrt_model_example;

#define NAME "fuzz.st"

static void require(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_safetensors: %s (message: \"%s\")\n", what, rt_errmsg());
        abort();
    }
}

static bool all_finite(const double *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return false;
    return true;
}

static void require_named(void)
{
    const char *msg = rt_errmsg();
    require(strncmp(msg, NAME, strlen(NAME)) == 0 || strncmp(msg, "out of memory", 13) == 0,
            "a refusal whose message does not name the file");
}

static void load_checkpoint(cnnrt_ctx *ctx, const uint8_t *data, size_t size)
{
    rt_error("%s", "");
    if (rt_ckpt_load_buffer(ctx, NAME, data, size) != 0) {
        require_named();
        return;
    }
    require(all_finite(ctx->params, ctx->model->param_count),
            "a load that left non-finite parameters");
}

static void load_state(cnnrt_ctx *ctx, const uint8_t *data, size_t size)
{
    const cnnrt_model *m = ctx->model;
    rt_run run;
    rt_error("%s", "");
    ctx->step = 0;
    if (rt_state_load_buffer(ctx, NAME, data, size, &run) != 0) {
        require_named();
        return;
    }
    require(all_finite(ctx->opt_state, cnnrt_opt_slots(ctx->optimizer) * m->param_count),
            "a load that left non-finite optimizer state");
    require(ctx->step >= 0 && ctx->step <= RT_MAX_STEP,
            "a load that left a step count out of range");
    require(run.epoch >= 1 && run.epoch_step >= 0 && run.epoch_step < run.per_epoch &&
                run.correct <= run.seen,
            "a load that left a run position that does not add up");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cnnrt_ctx adam, momentum;
    static bool ready;
    if (!ready) {
        if (cnnrt_ctx_init(&adam, &cnnrt_model_example, CNNRT_ADAM, 1) != 0 ||
            cnnrt_ctx_init(&momentum, &cnnrt_model_example, CNNRT_MOMENTUM, 1) != 0)
            abort();
        ready = true;
    }
    load_checkpoint(&adam, data, size);
    load_state(&adam, data, size);
    load_state(&momentum, data, size);
    return 0;
}
