/* test_pool.c: the runtime's threads (runtime/pool.c) and lanes
 * (runtime/lanes.c): every item of a loop runs exactly once, whatever the
 * thread count; loops nest; a lane takes its micro-batches in order; and
 * results do not depend on the number of threads. No verdict depends on the
 * machine's speed or load. */
#include <check.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

/* Counts how often each item ran. */
typedef struct counts {
    _Atomic int *seen;
    int count;
    _Atomic int bad_chunks;   /* chunks outside [0, count) or empty */
} counts;

static void count_body(void *arg, int lo, int hi)
{
    counts *c = arg;
    if (lo < 0 || hi > c->count || lo >= hi)
        atomic_fetch_add(&c->bad_chunks, 1);
    for (int i = lo; i < hi && i >= 0 && i < c->count; i++)
        atomic_fetch_add(&c->seen[i], 1);
}

/* Runs a loop of count items with grain on threads; returns how many items
 * did not run exactly once. */
static int run_once_each(rt_pool *p, int count, int grain)
{
    counts c = {.seen = calloc((size_t)count + 1, sizeof(int)), .count = count};
    rt_pool_run(p, count, grain, count_body, &c);
    int wrong = atomic_load(&c.bad_chunks);
    for (int i = 0; i < count; i++)
        wrong += atomic_load(&c.seen[i]) != 1;
    free((void *)c.seen);
    return wrong;
}

START_TEST(each_item_once)
{
    static const int counts_[] = {0, 1, 2, 3, 7, 64, 1000, 100003};
    for (int threads = 1; threads <= 4; threads++) {
        rt_pool *p = rt_pool_new(threads);
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(rt_pool_threads(p), threads);
        int wrong = 0;
        for (size_t k = 0; k < sizeof counts_ / sizeof counts_[0]; k++)
            for (int grain = 1; grain <= 64; grain *= 4)
                wrong += run_once_each(p, counts_[k], grain);
        ck_assert_msg(wrong == 0, "%d items ran not exactly once on %d threads", wrong, threads);
        rt_pool_free(p);
    }
    ck_assert_int_eq(run_once_each(NULL, 1000, 1), 0);   /* no pool: the caller alone */
}
END_TEST

/* Many short loops in a row, as a step's layers are: none lost, none run
 * twice (a worker late to one loop must not take items of the next). */
START_TEST(many_loops)
{
    rt_pool *p = rt_pool_new(3);
    ck_assert_ptr_nonnull(p);
    int wrong = 0;
    for (int k = 0; k < 20000; k++)
        wrong += run_once_each(p, 1 + k % 37, 1);
    ck_assert_int_eq(wrong, 0);
    rt_pool_free(p);
}
END_TEST

/* Loops inside the items of a loop (lanes running their layers). */
typedef struct nested {
    rt_pool *pool;
    int inner;
    _Atomic int wrong;
} nested;

static void outer_body(void *arg, int lo, int hi)
{
    nested *n = arg;
    for (int i = lo; i < hi; i++)
        atomic_fetch_add(&n->wrong, run_once_each(n->pool, n->inner + i, 1));
}

START_TEST(nested_loops)
{
    for (int threads = 1; threads <= 4; threads++) {
        nested n = {.pool = rt_pool_new(threads), .inner = 50};
        ck_assert_ptr_nonnull(n.pool);
        for (int rep = 0; rep < 200; rep++)
            rt_pool_run(n.pool, 2 + rep % 3, 1, outer_body, &n);
        ck_assert_int_eq(atomic_load(&n.wrong), 0);
        rt_pool_free(n.pool);
    }
}
END_TEST

/* A sum in a fixed order per item, summed again in item order: the same
 * bits on any number of threads, as the generated code's loops are. */
typedef struct sums {
    const double *v;
    double *part;
    int per;
} sums;

static void sums_body(void *arg, int lo, int hi)
{
    sums *s = arg;
    for (int i = lo; i < hi; i++) {
        double t = 0;
        for (int j = 0; j < s->per; j++)
            t += s->v[(size_t)i * s->per + j];
        s->part[i] = t;
    }
}

START_TEST(same_bits_any_threads)
{
    enum { ITEMS = 513, PER = 97 };
    double *v = malloc(sizeof(double) * ITEMS * PER), *part = malloc(sizeof(double) * ITEMS);
    cnnrt_rng r;
    cnnrt_rng_seed(&r, 5, 4);
    for (int i = 0; i < ITEMS * PER; i++)
        v[i] = cnnrt_rng_normal(&r);
    double first = 0;
    for (int threads = 1; threads <= 4; threads++) {
        rt_pool *p = rt_pool_new(threads);
        sums s = {v, part, PER};
        rt_pool_run(p, ITEMS, 1, sums_body, &s);
        double total = 0;
        for (int i = 0; i < ITEMS; i++)
            total += part[i];
        if (threads == 1)
            first = total;
        ck_assert_msg(memcmp(&total, &first, sizeof total) == 0, "threads %d: %.17g vs %.17g",
                      threads, total, first);
        rt_pool_free(p);
    }
    free(v);
    free(part);
}
END_TEST

/* ---- lanes --------------------------------------------------------------- */

enum { LANES = 2, MICRO = 3 };

/* What each lane saw, in the order it saw it. */
typedef struct lane_log {
    int i0[LANES][16], n[LANES][16], first[LANES][16], last[LANES][16], calls[LANES];
    _Atomic int bad;
} lane_log;

static void log_job(const cnnrt_lane *lane, void *arg)
{
    lane_log *g = arg;
    int l = lane->index, k = g->calls[l]++;
    if (l < 0 || l >= LANES || k >= 16 || lane->key != 77)
        atomic_fetch_add(&g->bad, 1);
    else {
        g->i0[l][k] = lane->i0;
        g->n[l][k] = lane->n;
        g->first[l][k] = lane->first;
        g->last[l][k] = lane->last;
    }
}

static size_t no_workspace(int threads)
{
    (void)threads;
    return 64;
}

START_TEST(lanes_deal_in_order)
{
    static const cnnrt_model m = {.real_size = 4, .param_count = 1, .lanes = LANES,
                                  .micro_batch = MICRO, .lane_bytes = 0,
                                  .lane_grads_offset = 0, .workspace_bytes = no_workspace};
    for (int threads = 1; threads <= 3; threads++) {
        cnnrt_ctx ctx = {.model = &m, .threads = threads};
        ctx.pool = threads > 1 ? rt_pool_new(threads) : NULL;
        float grads[4] = {0}, ws[16] = {0};
        ctx.grads = grads;
        ctx.workspace = ws;
        lane_log g = {0};
        /* 14 samples: micro-batches at 0, 3, 6, 9, 12 (2 samples) */
        cnnrt_run_lanes(&ctx, 14, 0, 77, log_job, &g);
        ck_assert_int_eq(atomic_load(&g.bad), 0);
        ck_assert_int_eq(g.calls[0], 3);
        ck_assert_int_eq(g.calls[1], 2);
        static const int i0_0[] = {0, 6, 12}, i0_1[] = {3, 9};
        for (int k = 0; k < 3; k++) {
            ck_assert_int_eq(g.i0[0][k], i0_0[k]);
            ck_assert_int_eq(g.n[0][k], k == 2 ? 2 : 3);
            ck_assert_int_eq(g.first[0][k], k == 0);
            ck_assert_int_eq(g.last[0][k], k == 2);
        }
        for (int k = 0; k < 2; k++) {
            ck_assert_int_eq(g.i0[1][k], i0_1[k]);
            ck_assert_int_eq(g.first[1][k], k == 0);
            ck_assert_int_eq(g.last[1][k], k == 1);
        }
        rt_pool_free(ctx.pool);
    }
}
END_TEST

static Suite *pool_suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("pool");
    /* generous: under ASan on a loaded machine, the loops above take seconds */
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, each_item_once);
    tcase_add_test(tc, many_loops);
    tcase_add_test(tc, nested_loops);
    tcase_add_test(tc, same_bits_any_threads);
    tcase_add_test(tc, lanes_deal_in_order);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(pool_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
