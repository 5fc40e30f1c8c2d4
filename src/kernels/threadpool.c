/* threadpool.c — the per-context pthread pool (see threadpool.h). A job is
 * published by bumping an atomic generation counter; workers spin on it
 * (with a CPU pause) for a few milliseconds after each job, because decode
 * issues hundreds of short jobs per token and a condvar wake-up costs tens
 * of microseconds, then fall back to sleeping on a condition variable so an
 * idle context does not burn a core. The caller spins on a pending counter
 * until every worker has finished. */
#include "kernels/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
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
    atomic_int pending;         /* workers (excluding caller) still running the job */
    atomic_int sleepers;        /* workers blocked (or about to block) on wake */
    atomic_int stop;
    phiq_task_fn fn;            /* written before gen is bumped */
    void *arg;
};

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
        tp->fn(tp->arg, wa.ith, tp->n);
        atomic_fetch_sub_explicit(&tp->pending, 1, memory_order_release);
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
    atomic_init(&tp->pending, 0);
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

void phiq_threadpool_run(phiq_threadpool *tp, phiq_task_fn fn, void *arg) {
    if (tp->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    tp->fn = fn;
    tp->arg = arg;
    atomic_store(&tp->pending, tp->n - 1);
    atomic_fetch_add(&tp->gen, 1); /* seq_cst: pairs with the sleepers check in the worker */
    if (atomic_load(&tp->sleepers) > 0) {
        pthread_mutex_lock(&tp->mu);
        pthread_cond_broadcast(&tp->wake);
        pthread_mutex_unlock(&tp->mu);
    }
    fn(arg, 0, tp->n);
    for (unsigned i = 0; atomic_load_explicit(&tp->pending, memory_order_acquire) > 0; i++) {
        if (i < (1u << 20)) PHIQ_CPU_RELAX();
        else sched_yield(); /* a worker was descheduled: give it the core */
    }
}
