/* fuzz_frontend.c: libFuzzer target for cnnc's front end.
 *
 * Runs one input through everything `cnnc --check` and `cnnc --summary` do:
 * source -> lexer/parser -> Ast -> checker -> Network -> memory plan and
 * summary, with diagnostics and the summary going to /dev/null, then frees
 * it all. Anything the sanitizers catch (a crash, a leak, an out-of-bounds
 * read, signed overflow, a shift too far) is a bug: every input, however
 * broken, must end in diagnostics, never in undefined behaviour.
 *
 *   make fuzz FUZZ_SECONDS=600      (see Makefile.am; needs clang)
 *
 * A crashing input found here becomes a golden case in tests/golden once
 * fixed. */
#include "cnnc.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *null_stream(void)
{
    static FILE *null;
    if (!null) {
        null = fopen("/dev/null", "w");
        if (!null)
            abort();
    }
    return null;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *null = null_stream();
    Source *src = source_from_string("fuzz.net", (const char *)data, size);

    /* As main.c's front end does. One input in three runs as with
     * -Werror --max-errors=1000, so that long lists of diagnostics get
     * printed (and their places shown) rather than dropped at the limit. */
    Diag d;
    diag_init(&d, src, null);
    if (size % 3 == 0) {
        d.werror = true;
        d.max_errors = 1000;
    }
    Ast *ast = parse_source(src, &d);
    Network *net = NULL;
    if (ast && !diag_full(&d))
        net = check_ast(ast, src->name, &d);

    if (net) {
        /* What --summary prints, in both precisions and both tiers of
         * kernels, with the plan's micro-batch and with --micro-batch=1. */
        summary_print(null, net, 4, 0, 0, KERNELS_FAST, 0);
        summary_print(null, net, 8, 1, 0, KERNELS_REFERENCE, 0);
        MemPlan plan;
        if (plan_network(net, 8, 0, 0, KERNELS_FAST, &plan))
            plan_free(&plan);
        network_free(net);
    }
    ast_free(ast);
    source_free(src);
    return 0;
}
