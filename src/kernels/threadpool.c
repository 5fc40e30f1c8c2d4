/* threadpool.c — the per-context pthread pool (see threadpool.h). Workers
 * sleep on a condition variable between jobs; a generation counter tells
 * them a new job arrived, a pending counter tells the caller they are done.
 * Jobs are coarse (one matmul, one attention pass), so a mutex/condvar
 * handshake per job costs little next to the work. */
#include "kernels/threadpool.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/common.h"

#define PHIQ_MAX_THREADS 512

struct phiq_threadpool {
    int n;                 /* workers including the caller */
    pthread_t *threads;    /* n-1 */
    pthread_mutex_t mu;
    pthread_cond_t wake;   /* new job or shutdown */
    pthread_cond_t done;   /* pending reached 0 */
    unsigned long gen;     /* bumped per job */
    int pending;           /* workers (excluding caller) still running the job */
    int stop;
    phiq_task_fn fn;
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
    pthread_mutex_lock(&tp->mu);
    for (;;) {
        while (!tp->stop && tp->gen == seen) pthread_cond_wait(&tp->wake, &tp->mu);
        if (tp->stop) break;
        seen = tp->gen;
        phiq_task_fn fn = tp->fn;
        void *arg = tp->arg;
        pthread_mutex_unlock(&tp->mu);
        fn(arg, wa.ith, tp->n);
        pthread_mutex_lock(&tp->mu);
        if (--tp->pending == 0) pthread_cond_signal(&tp->done);
    }
    pthread_mutex_unlock(&tp->mu);
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
    pthread_cond_init(&tp->done, NULL);
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
    tp->stop = 1;
    pthread_cond_broadcast(&tp->wake);
    pthread_mutex_unlock(&tp->mu);
    for (int i = 1; i < tp->n; i++) pthread_join(tp->threads[i - 1], NULL);
    pthread_mutex_destroy(&tp->mu);
    pthread_cond_destroy(&tp->wake);
    pthread_cond_destroy(&tp->done);
    free(tp->threads);
    free(tp);
}

int phiq_threadpool_n(const phiq_threadpool *tp) { return tp->n; }

void phiq_threadpool_run(phiq_threadpool *tp, phiq_task_fn fn, void *arg) {
    if (tp->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&tp->mu);
    tp->fn = fn;
    tp->arg = arg;
    tp->pending = tp->n - 1;
    tp->gen++;
    pthread_cond_broadcast(&tp->wake);
    pthread_mutex_unlock(&tp->mu);
    fn(arg, 0, tp->n);
    pthread_mutex_lock(&tp->mu);
    while (tp->pending > 0) pthread_cond_wait(&tp->done, &tp->mu);
    pthread_mutex_unlock(&tp->mu);
}
