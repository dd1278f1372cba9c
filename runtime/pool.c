/* pool.c: the trainer's threads, and loops shared out among them.
 *
 * The generated code runs a loop of independent items with
 * cnnrt_parallel(): every item computes its own values, in its own fixed
 * order, so the results never depend on which thread ran which item. That
 * frees the loop from any fixed division of the work:
 *
 *   - The caller posts the loop in a slot of its own and takes chunks of it
 *     itself; a worker thread that is free takes chunks too. Chunks are
 *     claimed one at a time from a counter, so a thread that the system has
 *     put aside (another process holds its core) simply claims nothing, and
 *     the others do its share.
 *   - The caller then waits only for the chunks that others claimed and
 *     have not finished, never for a thread that has not shown up. While it
 *     waits it helps with other posted loops (the other lane's layers).
 *   - A wait spins only briefly (POOL_SPIN_NS), then sleeps on a condition
 *     variable: a waiting thread never holds for long a core that the
 *     thread it waits for, or another process, could use.
 *
 * Loops nest: a lane (a loop item) runs its layers' loops from inside its
 * item, so each thread has a slot per nesting depth. A worker with nothing
 * to do spins the same short while for new work, then sleeps until work is
 * posted. */
#include "rt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

/* How long a thread spins for work or for others' chunks before it sleeps:
 * longer than the gap between two loops of a step, so that on a quiet
 * machine the threads go from loop to loop without a sleep and a wake-up
 * (tens of microseconds each); short enough that on a busy machine a
 * waiting thread soon gives its core to the thread it waits for. */
#define POOL_SPIN_NS 30000

/* Nesting depths with slots of their own; deeper loops run on their
 * caller's thread alone. */
enum { POOL_DEPTHS = 4 };

/* A posted loop. `claim` holds the loop's generation in its high 32 bits
 * and the next unclaimed item in its low 32: a thread that read an old
 * generation cannot claim items of a newer loop in the same slot. */
typedef struct slot {
    _Atomic uint64_t claim;
    _Atomic(cnnrt_body *) body;
    _Atomic(void *) arg;
    _Atomic int count;
    _Atomic int chunk;
    _Atomic int done;       /* items finished */
    char pad[64];           /* keep neighbouring slots off this cache line */
} slot;

struct rt_pool {
    int threads;            /* the caller and threads - 1 workers */
    pthread_t *workers;
    slot *slots;            /* [threads][POOL_DEPTHS] */
    _Atomic uint64_t posted;    /* loops posted so far: sleepers wait for a change */
    _Atomic int sleepers;
    _Atomic int stop;
    pthread_mutex_t mu;
    pthread_cond_t work;    /* a loop was posted (or stop) */
    pthread_cond_t finished; /* some loop's last chunk finished */
    _Atomic int waiting;    /* callers asleep on finished */
};

/* The thread's number in its pool (0: the thread that made it, or any
 * other outside thread) and how many loops it is posting at once. */
static _Thread_local int thread_id;
static _Thread_local int thread_depth;

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static slot *slot_at(rt_pool *p, int thread, int depth)
{
    return &p->slots[thread * POOL_DEPTHS + depth];
}

/* The `next` of a slot being filled: past any count, so nothing is claimed. */
#define SLOT_CLOSED UINT32_MAX

static uint64_t claim_word(uint32_t gen, uint32_t next)
{
    return (uint64_t)gen << 32 | next;
}

/* Claims and runs one chunk of s's loop; false when it has none left. */
static bool run_chunk(rt_pool *p, slot *s)
{
    (void)p;
    uint64_t w = atomic_load_explicit(&s->claim, memory_order_acquire);
    for (;;) {
        int count = atomic_load_explicit(&s->count, memory_order_relaxed);
        int chunk = atomic_load_explicit(&s->chunk, memory_order_relaxed);
        cnnrt_body *body = atomic_load_explicit(&s->body, memory_order_relaxed);
        void *arg = atomic_load_explicit(&s->arg, memory_order_relaxed);
        uint32_t next = (uint32_t)w;
        if ((int64_t)next >= count || chunk <= 0)
            return false;
        uint32_t end = (int64_t)next + chunk < count ? next + (uint32_t)chunk : (uint32_t)count;
        if (!atomic_compare_exchange_weak_explicit(&s->claim, &w,
                                                   claim_word((uint32_t)(w >> 32), end),
                                                   memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;   /* w now holds the newer word: try again with it */
        body(arg, (int)next, (int)end);
        int done = atomic_fetch_add_explicit(&s->done, (int)(end - next), memory_order_acq_rel) +
                   (int)(end - next);
        if (done == count && atomic_load(&p->waiting) > 0) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_broadcast(&p->finished);
            pthread_mutex_unlock(&p->mu);
        }
        return true;
    }
}

/* Runs one chunk of any posted loop; false when there was none. */
static bool help_any(rt_pool *p)
{
    int n = p->threads * POOL_DEPTHS;
    for (int k = 0; k < n; k++)
        if (run_chunk(p, &p->slots[(thread_id * POOL_DEPTHS + k) % n]))
            return true;
    return false;
}

static void *worker_main(void *arg)
{
    rt_pool *p = arg;
    for (;;) {
        uint64_t seen = atomic_load(&p->posted);
        if (help_any(p))
            continue;
        int64_t until = now_ns() + POOL_SPIN_NS;
        bool found = false;
        while (!found && !atomic_load(&p->stop) && now_ns() < until) {
            for (int i = 0; i < 64 && !found; i++) {
                cpu_relax();
                found = atomic_load_explicit(&p->posted, memory_order_relaxed) != seen;
            }
        }
        if (atomic_load(&p->stop))
            return NULL;
        if (found)
            continue;
        pthread_mutex_lock(&p->mu);
        atomic_fetch_add(&p->sleepers, 1);
        while (atomic_load(&p->posted) == seen && !atomic_load(&p->stop))
            pthread_cond_wait(&p->work, &p->mu);
        atomic_fetch_sub(&p->sleepers, 1);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Thread arguments: the pool and the worker's number. */
typedef struct start {
    rt_pool *pool;
    int id;
} start;

static void *worker_start(void *arg)
{
    start st = *(start *)arg;
    free(arg);
    thread_id = st.id;
    return worker_main(st.pool);
}

rt_pool *rt_pool_new(int threads)
{
    rt_pool *p = rt_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->threads = threads > 0 ? threads : 1;
    p->slots = rt_aligned_alloc(sizeof(slot) * (size_t)p->threads * POOL_DEPTHS);
    p->workers = rt_calloc((size_t)p->threads, sizeof *p->workers);
    if (!p->slots || !p->workers) {
        free(p->slots);
        free(p->workers);
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->finished, NULL);
    for (int i = 1; i < p->threads; i++) {
        start *st = malloc(sizeof *st);
        if (st)
            *st = (start){p, i};
        if (!st || pthread_create(&p->workers[i], NULL, worker_start, st) != 0) {
            free(st);
            rt_error("cannot start thread %d of %d", i + 1, p->threads);
            p->threads = i;   /* the ones started are joined */
            rt_pool_free(p);
            return NULL;
        }
    }
    return p;
}

void rt_pool_free(rt_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->threads; i++)
        pthread_join(p->workers[i], NULL);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->finished);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p->slots);
    free(p);
}

int rt_pool_threads(const rt_pool *p)
{
    return p ? p->threads : 1;
}

/* Waits until s's loop of count items is finished, helping with any posted
 * loop meanwhile; spins POOL_SPIN_NS without work, then sleeps. */
static void wait_done(rt_pool *p, slot *s, int count)
{
    int64_t until = 0;
    while (atomic_load_explicit(&s->done, memory_order_acquire) < count) {
        if (help_any(p)) {
            until = 0;
            continue;
        }
        if (!until)
            until = now_ns() + POOL_SPIN_NS;
        if (now_ns() < until) {
            for (int i = 0; i < 64; i++)
                cpu_relax();
            continue;
        }
        pthread_mutex_lock(&p->mu);
        atomic_fetch_add(&p->waiting, 1);
        while (atomic_load(&s->done) < count)
            pthread_cond_wait(&p->finished, &p->mu);
        atomic_fetch_sub(&p->waiting, 1);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Wakes the sleeping workers, if any, for a newly posted loop. */
static void announce(rt_pool *p)
{
    atomic_fetch_add(&p->posted, 1);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->mu);
    }
}

void rt_pool_run(rt_pool *p, int count, int grain, cnnrt_body *body, void *arg)
{
    if (count <= 0)
        return;
    if (grain < 1)
        grain = 1;
    if (!p || p->threads == 1 || count <= grain || thread_depth >= POOL_DEPTHS) {
        body(arg, 0, count);
        return;
    }
    /* Chunks of about a quarter of a thread's share: small enough that a
     * thread that falls behind leaves work for the others, large enough
     * that claiming costs nothing next to the work. */
    int chunk = count / (p->threads * 4);
    if (chunk < grain)
        chunk = grain;
    slot *s = slot_at(p, thread_id, thread_depth);
    uint32_t gen = (uint32_t)(atomic_load(&s->claim) >> 32) + 1;
    /* Close the slot under the new generation before its fields change: a
     * thread that read the old claim word and then this loop's count must
     * fail its claim, not take items of this loop before it is posted. */
    atomic_store(&s->claim, claim_word(gen, SLOT_CLOSED));
    atomic_store_explicit(&s->body, body, memory_order_relaxed);
    atomic_store_explicit(&s->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&s->count, count, memory_order_relaxed);
    atomic_store_explicit(&s->chunk, chunk, memory_order_relaxed);
    atomic_store_explicit(&s->done, 0, memory_order_relaxed);
    atomic_store_explicit(&s->claim, claim_word(gen, 0), memory_order_release);
    announce(p);
    thread_depth++;
    while (run_chunk(p, s))
        ;
    wait_done(p, s, count);
    thread_depth--;
}
