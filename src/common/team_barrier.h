/* A team's barrier (libmrmnet's engine runner, and the barrier timing of bench/bench_team.c):
 * a counter and a generation, spinning a while, then yielding the core. Not `omp barrier` (even
 * where a team is the whole OpenMP team): on a machine busier than its cores, libgomp's barrier
 * made a 2-thread batch-1 run 1.5-3x slower than this one (alternating runs). */
#ifndef MRM_COMMON_TEAM_BARRIER_H
#define MRM_COMMON_TEAM_BARRIER_H

#include <sched.h>
#include <stdatomic.h>

typedef struct team_bar {
    atomic_int count, gen;
    char pad[64 - 2 * sizeof(atomic_int)]; /* one cache line each */
} team_bar;
typedef struct team_sync {
    team_bar *bar;
    int n; /* the threads that meet there */
} team_sync;

static inline void team_bar_init(team_bar *b) {
    atomic_init(&b->count, 0);
    atomic_init(&b->gen, 0);
}

/* mrm_engine_sync_fn: user is a team_sync */
static inline void bar_sync(void *user) {
    team_sync *ts = user;
    team_bar *b = ts->bar;
    int gen = atomic_load_explicit(&b->gen, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->count, 1, memory_order_acq_rel) == ts->n - 1) {
        atomic_store_explicit(&b->count, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->gen, 1, memory_order_release);
        return;
    }
    for (long spin = 0; atomic_load_explicit(&b->gen, memory_order_acquire) == gen; spin++)
        if (spin > 1000) sched_yield();
}

#endif
