/* add.c: Add, the elementwise sum of two or more tensors of one shape: the
 * join of a residual (ResNet's shortcut) or of branches.
 *
 *   Add(a, b, ...): S, S, ... -> S, no parameters
 * Its inputs are named by label, in order (check.c resolves them). */
#include "cnnc.h"

#include <inttypes.h>

/* S, S, ... -> S: every input of the first's shape. */
static bool add_infer(Layer *l, Diag *d)
{
    char first[64], other[64];
    for (int k = 1; k < l->ninputs; k++) {
        if (shape_equal(l->ins[k], l->ins[0]))
            continue;
        diag_error(d, l->ins_loc[k], "Add needs inputs of one shape, but %s (line %d) gives %s "
                   "and %s (line %d) gives %s", l->ins_label[0], l->ins_line[0],
                   shape_str(l->ins[0], first, sizeof first), l->ins_label[k], l->ins_line[k],
                   shape_str(l->ins[k], other, sizeof other));
        return false;
    }
    l->out = l->ins[0];
    return true;
}

/* y = x0 + x1 + ..., elementwise (then max(y, 0) for a ReLU after it). */
static void add_forward(Emitter *e, const LayerCode *c)
{
    int64_t count = shape_elems(c->l->out);
    char total[64], sum[512];
    size_t len = 0;
    for (int k = 0; k < c->ninputs; k++)
        len += (size_t)snprintf(sum + len, sizeof sum - len, "%sx%d[j]", k ? " + " : "", k);
    emit(e, "/* y[n][%" PRId64 "] = %s%s */", count, sum,
         c->relu_out ? ", then max(y, 0) for the ReLU after it" : "");
    emit_forward_begin(e, c);
    emit(e, "(void)ln;");
    snprintf(total, sizeof total, "n * %" PRId64, count);
    emit_loop(e, c, "j", total, 4096);
    if (c->relu_out) {
        emit(e, "const real s = %s;", sum);
        emit(e, "y[j] = s < 0 ? 0 : s;");
    } else {
        emit(e, "y[j] = %s;", sum);
    }
    emit_loop_end(e, c);
    emit_function_end(e);
}

/* Every input gets dy: dxk = dy (or += where another consumer of xk wrote). */
static void add_backward(Emitter *e, const LayerCode *c)
{
    int64_t count = shape_elems(c->l->out);
    char total[64];
    emit(e, "/* every input's gradient is dy[n][%" PRId64 "] */", count);
    emit_backward_begin(e, c);
    emit(e, "(void)ln, (void)y;");
    for (int k = 0; k < c->ninputs; k++)
        emit(e, "(void)x%d;", k);
    snprintf(total, sizeof total, "n * %" PRId64, count);
    for (int k = 0; k < c->ninputs; k++) {
        if (!c->need_dx[k]) {
            emit(e, "(void)dx%d;", k);
            continue;
        }
        if (!c->dx_add[k]) {
            emit(e, "memcpy(dx%d, dy, sizeof(real) * (size_t)n * %" PRId64 ");", k, count);
            continue;
        }
        emit_loop(e, c, "j", total, 4096);
        emit(e, "dx%d[j] += dy[j];", k);
        emit_loop_end(e, c);
    }
    emit_function_end(e);
}

const LayerKind layer_add = {
    .name = "Add",
    .auto_prefix = "add",
    .merge = true,
    .ignores_own_output = true, /* backward reads dy alone */
    .needs_no_input = true,
    .relu_forward = true,
    .infer = add_infer,
    .flops = layer_no_flops,
    .emit_forward = add_forward,
    .emit_backward = add_backward,
    .ref_forward = add_forward,
    .ref_backward = add_backward,
};
