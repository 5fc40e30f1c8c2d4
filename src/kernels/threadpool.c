/* threadpool.c — the per-context pthread pool (see threadpool.h). A job is
 * published by bumping an atomic generation counter; workers spin on it
 * (with a CPU pause) for a few milliseconds after each job, because decode
 * issues hundreds of short jobs per token and a condvar wake-up costs tens
 * of microseconds, then fall back to sleeping on a condition variable so an
 * idle context does not burn a core.
 *
 * Chunks are claimed dynamically from one atomic word holding (generation,
 * next chunk): on a shared machine a worker is often descheduled for a whole
 * time slice, and with a static split the caller would wait for it; here the
 * running threads take its chunks. A job is complete when every chunk has
 * been run; a late worker's claim fails because the generation moved on
 * (the claim word moves to the new generation before anything else of the
 * job is written: test_ops' test_threadpool_job_handoff). */
#include "kernels/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/common.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PHIQ_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define PHIQ_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define PHIQ_CPU_RELAX() ((void)0)
#endif

#define PHIQ_MAX_THREADS 512
/* pause iterations a worker spins before sleeping (~ a few ms) */
#define PHIQ_SPIN_ITERS 50000

struct phiq_threadpool {
    int n;                      /* workers including the caller */
    pthread_t *threads;         /* n-1 */
    pthread_mutex_t mu;
    pthread_cond_t wake;        /* new job or shutdown, for sleeping workers */
    atomic_ulong gen;           /* bumped per job */
    _Atomic uint64_t next;      /* (gen & 0xffffffff) << 32 | next unclaimed chunk */
    atomic_int nchunks;         /* chunks of the current job */
    atomic_int done;            /* chunks of the current job finished */
    atomic_int sleepers;        /* workers blocked (or about to block) on wake */
    atomic_int stop;
    _Atomic(phiq_task_fn) fn;   /* written before next is published */
    _Atomic(void *) arg;
};

/* Claims and runs chunks of job generation g until none is left. */
static void phiq_pool_work(phiq_threadpool *tp, uint32_t g) {
    for (;;) {
        uint64_t v = atomic_load(&tp->next);
        if ((uint32_t)(v >> 32) != g) return;
        const uint32_t nch = (uint32_t)atomic_load(&tp->nchunks);
        if ((uint32_t)v >= nch) return;
        if (!atomic_compare_exchange_weak(&tp->next, &v, v + 1)) continue;
        /* the job cannot complete (nor fn/arg change) before this chunk is done */
        phiq_task_fn fn = atomic_load(&tp->fn);
        fn(atomic_load(&tp->arg), (int)(uint32_t)v, (int)nch);
        atomic_fetch_add_explicit(&tp->done, 1, memory_order_release);
    }
}

typedef struct {
    phiq_threadpool *tp;
    int ith;
} phiq_worker_arg;

static void *phiq_worker_main(void *p) {
    phiq_worker_arg wa = *(phiq_worker_arg *)p;
    free(p);
    phiq_threadpool *tp = wa.tp;
    unsigned long seen = 0;
    for (;;) {
        unsigned long g = atomic_load(&tp->gen);
        for (int i = 0; g == seen && i < PHIQ_SPIN_ITERS && !atomic_load_explicit(&tp->stop, memory_order_relaxed); i++) {
            PHIQ_CPU_RELAX();
            g = atomic_load(&tp->gen);
        }
        if (g == seen && !atomic_load(&tp->stop)) {
            pthread_mutex_lock(&tp->mu);
            atomic_fetch_add(&tp->sleepers, 1);
            while (!atomic_load(&tp->stop) && (g = atomic_load(&tp->gen)) == seen) pthread_cond_wait(&tp->wake, &tp->mu);
            atomic_fetch_sub(&tp->sleepers, 1);
            pthread_mutex_unlock(&tp->mu);
        }
        if (atomic_load(&tp->stop)) break;
        seen = g;
        phiq_pool_work(tp, (uint32_t)g);
    }
    return NULL;
}

phiq_threadpool *phiq_threadpool_new(int n_threads) {
    if (n_threads <= 0) n_threads = phiq_physical_cores();
    if (n_threads > PHIQ_MAX_THREADS) n_threads = PHIQ_MAX_THREADS;
    phiq_threadpool *tp = calloc(1, sizeof *tp);
    if (!tp) return phiq_fail_null(PHIQ_ENOMEM, "thread pool: out of memory");
    tp->n = n_threads;
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->wake, NULL);
    atomic_init(&tp->gen, 0);
    atomic_init(&tp->next, 0);
    atomic_init(&tp->nchunks, 0);
    atomic_init(&tp->done, 0);
    atomic_init(&tp->fn, NULL);
    atomic_init(&tp->arg, NULL);
    atomic_init(&tp->sleepers, 0);
    atomic_init(&tp->stop, 0);
    tp->threads = calloc((size_t)n_threads, sizeof(pthread_t));
    if (!tp->threads) {
        free(tp);
        return phiq_fail_null(PHIQ_ENOMEM, "thread pool: out of memory");
    }
    for (int i = 1; i < n_threads; i++) {
        phiq_worker_arg *wa = malloc(sizeof *wa);
        if (wa) {
            wa->tp = tp;
            wa->ith = i;
        }
        if (!wa || pthread_create(&tp->threads[i - 1], NULL, phiq_worker_main, wa) != 0) {
            free(wa);
            tp->n = i; /* the ones started so far */
            phiq_threadpool_free(tp);
            return phiq_fail_null(PHIQ_ENOMEM, "thread pool: cannot start thread %d of %d", i + 1, n_threads);
        }
    }
    return tp;
}

void phiq_threadpool_free(phiq_threadpool *tp) {
    if (!tp) return;
    pthread_mutex_lock(&tp->mu);
    atomic_store(&tp->stop, 1);
    pthread_cond_broadcast(&tp->wake);
    pthread_mutex_unlock(&tp->mu);
    for (int i = 1; i < tp->n; i++) pthread_join(tp->threads[i - 1], NULL);
    pthread_mutex_destroy(&tp->mu);
    pthread_cond_destroy(&tp->wake);
    free(tp->threads);
    free(tp);
}

int phiq_threadpool_n(const phiq_threadpool *tp) { return tp->n; }

void phiq_threadpool_run_chunks(phiq_threadpool *tp, phiq_task_fn fn, void *arg, int nchunks) {
    if (nchunks <= 0) return;
    if (tp->n == 1) {
        for (int c = 0; c < nchunks; c++) fn(arg, c, nchunks);
        return;
    }
    unsigned long g = atomic_load(&tp->gen) + 1;
    /* Close the claim word (new generation, no chunk claimable) before the
     * job's fields change: a late worker of the previous job that read its
     * claim word and then this job's larger nchunks would otherwise claim a
     * chunk of this job in the old generation, run it twice and count it
     * twice, so the job would end with a chunk still running. */
    atomic_store(&tp->next, (uint64_t)(uint32_t)g << 32 | UINT32_MAX);
    atomic_store(&tp->fn, fn);
    atomic_store(&tp->arg, arg);
    atomic_store(&tp->nchunks, nchunks);
    atomic_store(&tp->done, 0);
    atomic_store(&tp->next, (uint64_t)(uint32_t)g << 32);
    atomic_store(&tp->gen, g); /* seq_cst: pairs with the sleepers check in the worker */
    if (atomic_load(&tp->sleepers) > 0) {
        pthread_mutex_lock(&tp->mu);
        pthread_cond_broadcast(&tp->wake);
        pthread_mutex_unlock(&tp->mu);
    }
    phiq_pool_work(tp, (uint32_t)g);
    /* only chunks claimed by other threads remain; their owner may be descheduled */
    for (unsigned i = 0; atomic_load_explicit(&tp->done, memory_order_acquire) < nchunks; i++) {
        if (i < 4096) PHIQ_CPU_RELAX();
        else sched_yield();
    }
}

void phiq_threadpool_run(phiq_threadpool *tp, phiq_task_fn fn, void *arg) { phiq_threadpool_run_chunks(tp, fn, arg, tp->n); }
