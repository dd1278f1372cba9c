/* group.c: the processes that train together (MPI), and where the lanes of
 * a training step meet when they run on several of them.
 *
 * A trainer linked with libcnnrt_mpi and started by mpirun runs as K
 * processes, ranks 0 .. K-1 (one alone is rank 0 of 1). In a training step
 * each rank runs only the lanes it owns: lane l belongs to rank l*K/lanes,
 * so each rank holds a block of consecutive lanes (as even as K allows) and
 * K may be at most the model's lane count (cnnc --lanes). Wherever the
 * step reads what another lane computed (its gradients at the end, a
 * BatchNorm's statistics or sums at a meeting, its rows of the output, its
 * loss), the lane's owner broadcasts it and every rank then does the
 * arithmetic one process does, in the same order: every sum is the
 * one-process sum, so the checkpoint is bitwise that of one process. No
 * floating-point reduction ever happens inside MPI.
 *
 * Outside a training step (validation, eval, gradcheck) every rank runs all
 * lanes itself, and gets the same results.
 *
 * The transport is comm_mpi.c in libcnnrt_mpi and comm_none.c (one process,
 * no MPI) in libcnnrt. */
#include "rt.h"

#include <stdlib.h>
#include <string.h>

static struct {
    int rank, size;
    bool split;     /* in a training step the ranks share */
} group = {0, 1, false};

int rt_group_start(int *argc, char ***argv)
{
    return rt_comm_start(argc, argv, &group.rank, &group.size);
}

int rt_group_rank(void)
{
    return group.rank;
}

int rt_group_size(void)
{
    return group.size;
}

bool rt_group_leader(void)
{
    return group.rank == 0;
}

void rt_group_split(bool on)
{
    group.split = on && group.size > 1;
}

bool rt_group_splits(void)
{
    return group.split;
}

int rt_group_lane_owner(const cnnrt_model *m, int l)
{
    return group.split ? (int)((int64_t)l * group.size / m->lanes) : group.rank;
}

/* Lanes [*lo, *hi) are this rank's in a shared step (all of them otherwise). */
void rt_group_own_lanes(const cnnrt_model *m, int *lo, int *hi)
{
    *lo = 0;
    *hi = m->lanes;
    if (!group.split)
        return;
    while (*lo < m->lanes && rt_group_lane_owner(m, *lo) < group.rank)
        ++*lo;
    *hi = *lo;
    while (*hi < m->lanes && rt_group_lane_owner(m, *hi) == group.rank)
        ++*hi;
}

static int micro_batches(const cnnrt_model *m, int n)
{
    return (n + m->micro_batch - 1) / m->micro_batch;
}

void cnnrt_share_lanes(cnnrt_ctx *ctx, int n, size_t off, size_t bytes)
{
    if (!group.split)
        return;
    const cnnrt_model *m = ctx->model;
    int micros = micro_batches(m, n);
    for (int l = 0; l < m->lanes && l < micros; l++)
        rt_comm_bcast((char *)ctx->workspace + (size_t)l * m->lane_bytes + off, bytes,
                      rt_group_lane_owner(m, l));
}

void cnnrt_share_rows(cnnrt_ctx *ctx, int n, size_t off, size_t row_bytes)
{
    if (!group.split)
        return;
    const cnnrt_model *m = ctx->model;
    int micros = micro_batches(m, n);
    for (int k = 0; k < micros; k++) {
        int i0 = k * m->micro_batch;
        int rows = n - i0 < m->micro_batch ? n - i0 : m->micro_batch;
        rt_comm_bcast((char *)ctx->workspace + off + (size_t)i0 * row_bytes,
                      (size_t)rows * row_bytes, rt_group_lane_owner(m, k % m->lanes));
    }
}

void cnnrt_share_lane_values(cnnrt_ctx *ctx, double *v)
{
    if (!group.split)
        return;
    const cnnrt_model *m = ctx->model;
    for (int l = 0; l < m->lanes; l++)
        rt_comm_bcast(&v[l], sizeof v[l], rt_group_lane_owner(m, l));
}

/* ---- agreeing before a run ------------------------------------------------- */

uint64_t rt_hash(uint64_t h, const void *data, size_t size)
{
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001B3ull;
        h ^= h >> 29;
    }
    for (; i < size; i++)
        h = (h ^ p[i]) * 0x100000001B3ull;
    return h;
}

uint64_t rt_weights_hash(const cnnrt_ctx *ctx)
{
    const cnnrt_model *m = ctx->model;
    uint64_t h = rt_hash(0xcbf29ce484222325ull, ctx->params,
                         (size_t)m->param_count * (size_t)m->real_size);
    return ctx->buffers ? rt_hash(h, ctx->buffers, m->buffer_bytes) : h;
}

int rt_group_agree(const cnnrt_model *m, int status, uint64_t flags, uint64_t data)
{
    if (group.size == 1)
        return status;
    uint64_t mine[3] = {(uint64_t)status, flags, data};
    uint64_t *all = rt_calloc((size_t)group.size * 3, sizeof *all);
    if (!all)
        rt_group_abort(RT_FAIL);
    rt_comm_allgather(mine, sizeof mine, all);
    int worst = RT_OK, rank_failed = -1;
    for (int r = 0; r < group.size; r++) {
        int s = (int)all[3 * r];
        if (s != RT_OK && rank_failed < 0)
            rank_failed = r;
        if (s > worst)
            worst = s;
    }
    int rc = worst;
    if (rc == RT_OK) {
        for (int r = 1; r < group.size && rc == RT_OK; r++) {
            const char *what = all[3 * r + 1] != all[1] ? "flags (or --init checkpoint)"
                               : all[3 * r + 2] != all[2] ? "data" : NULL;
            if (!what)
                continue;
            rt_error("rank %d's %s differ from rank 0's; every process of an MPI run must "
                     "train on the same data with the same flags", r, what);
            rc = RT_USAGE;
        }
        if (rc == RT_OK && group.size > m->lanes) {
            int most = m->lanes > 1 ? m->lanes : 1;
            rt_error("%d processes, but this trainer deals a step to %d lane%s, so it trains "
                     "on at most %d process%s (cnnc --lanes sets how many)", group.size,
                     most, most == 1 ? "" : "s", most, most == 1 ? "" : "es");
            rc = RT_USAGE;
        }
        if (rc != RT_OK && group.rank == 0)
            rt_print_error();
    } else if (status == RT_OK && group.rank == 0) {
        fprintf(stderr, "%s: error: rank %d failed (its message above)\n", rt_prog,
                rank_failed);
    }
    free(all);
    return rc;
}

void rt_group_abort(int status)
{
    fflush(stdout);
    fflush(stderr);
    rt_comm_abort(status);
}

void rt_group_end(void)
{
    rt_comm_end();
}
