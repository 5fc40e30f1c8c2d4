/* threadpool.h — a fixed pool of pthreads owned by one context. The caller
 * thread is worker 0, so a pool of n threads starts n-1 pthreads. A job is a
 * function run once on every worker with (ith, nth); run() returns when all
 * workers have finished it. Not reentrant: one job at a time per pool. */
#ifndef PHIQ_KERNELS_THREADPOOL_H
#define PHIQ_KERNELS_THREADPOOL_H

typedef struct phiq_threadpool phiq_threadpool;
typedef void (*phiq_task_fn)(void *arg, int ith, int nth);

/* n_threads <= 0 means phiq_physical_cores(). NULL on failure (phiq_fail set). */
phiq_threadpool *phiq_threadpool_new(int n_threads);
void phiq_threadpool_free(phiq_threadpool *tp);
int phiq_threadpool_n(const phiq_threadpool *tp);
void phiq_threadpool_run(phiq_threadpool *tp, phiq_task_fn fn, void *arg);

/* Splits [0, n) into nth near-equal parts; part ith is [*lo, *hi). */
static inline void phiq_split(long n, int ith, int nth, long *lo, long *hi) {
    long per = n / nth, rem = n % nth;
    *lo = ith * per + (ith < rem ? ith : rem);
    *hi = *lo + per + (ith < rem ? 1 : 0);
}

#endif
