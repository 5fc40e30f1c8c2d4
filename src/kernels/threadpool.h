/* threadpool.h — a fixed pool of pthreads owned by one context. The caller
 * thread is worker 0, so a pool of n threads starts n-1 pthreads. A job is a
 * function run once per chunk (ith, nth); run() returns when all chunks are
 * done. Not reentrant: one job at a time per pool. */
#ifndef PHIQ_KERNELS_THREADPOOL_H
#define PHIQ_KERNELS_THREADPOOL_H

typedef struct phiq_threadpool phiq_threadpool;
typedef void (*phiq_task_fn)(void *arg, int ith, int nth);

/* n_threads <= 0 means phiq_physical_cores(). NULL on failure (phiq_fail set). */
phiq_threadpool *phiq_threadpool_new(int n_threads);
void phiq_threadpool_free(phiq_threadpool *tp);
int phiq_threadpool_n(const phiq_threadpool *tp);
/* Runs fn(arg, c, nchunks) once for every chunk c in [0, nchunks), chunks
 * claimed dynamically by whichever threads are running (the caller too);
 * returns when all are done. Two chunks never run at once with the same c. */
void phiq_threadpool_run_chunks(phiq_threadpool *tp, phiq_task_fn fn, void *arg, int nchunks);
/* run_chunks with one chunk per worker: fn(arg, ith, nth) for ith < nth, each
 * ith once (possibly several on the same thread), so per-ith scratch is safe. */
void phiq_threadpool_run(phiq_threadpool *tp, phiq_task_fn fn, void *arg);

/* Splits [0, n) into nth near-equal parts; part ith is [*lo, *hi). */
static inline void phiq_split(long n, int ith, int nth, long *lo, long *hi) {
    long per = n / nth, rem = n % nth;
    *lo = ith * per + (ith < rem ? ith : rem);
    *hi = *lo + per + (ith < rem ? 1 : 0);
}

#endif
