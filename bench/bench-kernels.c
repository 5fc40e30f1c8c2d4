/* bench-kernels.c — microbenchmark (not a test): GB/s of weight streaming
 * of each weight type's matvec (3072 columns x 8192 rows, the shape of a
 * Phi-3-mini FFN matrix) for the scalar table and the best table, with 1
 * and 2 threads (rows split in halves), plus the machine's plain read
 * bandwidth. Weights cycle through copies totalling >= 512 MiB so that
 * they come from DRAM, not the last-level cache; like the engine's weights
 * (and phiq bench --probe) they sit on transparent huge pages.
 * Build and run: bench/bench-kernels.sh [TYPE...]; bench/bench-kernels.sh
 * --hot TYPE... times only the cache-resident mat-vec (for A/B of a kernel). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/common.h"
#include "kernels/cpu.h"
#include "kernels/dispatch.h"

enum { N = 3072, ROWS = 8192 };

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Each thread streams its half of the rows of every copy, reps times over,
 * in 256-row mat-vec calls (the engine's chunk); threads start once. */
typedef struct job {
    phiq_matvec_fn mv;
    const char *w;
    size_t rb, mbytes;
    int copies, reps;
    int64_t r0, r1;
    float *out;
    const void *act;
} job;

static void *run_job(void *p) {
    job *j = p;
    for (int r = 0; r < j->reps; r++) {
        const char *m = j->w + (size_t)(r % j->copies) * j->mbytes;
        for (int64_t a = j->r0; a < j->r1; a += 256) {
            int64_t b = a + 256 < j->r1 ? a + 256 : j->r1;
            j->mv(N, b - a, j->out + a, m + (size_t)a * j->rb, j->rb, j->act);
        }
    }
    return NULL;
}

static void matvec(phiq_matvec_fn mv, const char *w, size_t rb, size_t mbytes, int copies, int reps, float *out,
                   const void *act, int nth) {
    job jobs[2];
    pthread_t th[2];
    for (int t = 0; t < nth; t++) {
        jobs[t] = (job){mv, w, rb, mbytes, copies, reps, (int64_t)ROWS * t / nth, (int64_t)ROWS * (t + 1) / nth, out, act};
        if (t) pthread_create(&th[t], NULL, run_job, &jobs[t]);
    }
    run_job(&jobs[0]);
    for (int t = 1; t < nth; t++) pthread_join(th[t], NULL);
}

typedef struct rjob { const uint64_t *p; size_t n; uint64_t sum; } rjob;
static void *read_job(void *v) {
    rjob *j = v;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i < j->n; i += 4) a += j->p[i], b += j->p[i + 1], c += j->p[i + 2], d += j->p[i + 3];
    j->sum = a + b + c + d;
    return NULL;
}

static void read_bw(void) {
    size_t bytes = (size_t)1 << 30, n = bytes / 8;
    uint64_t *buf = phiq_huge_alloc(&bytes); /* 1 GiB: whole huge pages already */
    if (!buf) return;
    memset(buf, 1, bytes);
    for (int nth = 1; nth <= 2; nth++) {
        double best = 1e9;
        for (int rep = 0; rep < 3; rep++) {
            rjob j[2];
            pthread_t th;
            double t0 = now();
            for (int t = 0; t < nth; t++) j[t] = (rjob){buf + n / nth * t, n / nth, 0};
            if (nth == 2) pthread_create(&th, NULL, read_job, &j[1]);
            read_job(&j[0]);
            if (nth == 2) pthread_join(th, NULL);
            double dt = now() - t0;
            if (dt < best) best = dt;
            if (j[0].sum == 42) puts("");
        }
        printf("read 1 GiB, %d thread%s: %.2f GB/s\n", nth, nth > 1 ? "s" : "", bytes / best / 1e9);
    }
    char *dst = malloc(bytes / 2);
    double t0 = now();
    memcpy(dst, buf, bytes / 2);
    double dt = now() - t0;
    t0 = now();
    memcpy(dst, buf + n / 2, bytes / 2);
    dt = now() - t0 < dt ? now() - t0 : dt;
    printf("memcpy 512 MiB: %.2f GB/s (read+write bytes)\n", bytes / dt / 1e9);
    free(dst);
    phiq_huge_free(buf, bytes);
}

/* n bytes of weights of type t: pseudo-random bytes with the exponent's top
 * bit of every 16-bit word cleared (fp16 fields stay finite); F32/BF16 get
 * ordinary values (denormals would time microcode assists) */
static void fill_weights(char *w, size_t n, int t) {
    for (size_t i = 0; i < n; i++) w[i] = (char)(i * 2654435761u >> 13);
    for (size_t i = 1; i < n; i += 2) w[i] &= 0x3b;
    if (t == PHIQ_GGML_TYPE_F32)
        for (size_t i = 0; i < n / 4; i++) ((float *)w)[i] = (float)(i % 17) * 0.01f - 0.08f;
    if (t == PHIQ_GGML_TYPE_BF16)
        for (size_t i = 0; i < n / 2; i++) ((uint16_t *)w)[i] = (uint16_t)(0x3c00 + i % 200);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* --hot TYPE...: only the cache-resident mat-vec of the best table, one
 * thread, 21 trials of ~0.1 CPU-second each; prints the median and the
 * best. On a shared host the best trial is the steadiest figure for A/B
 * comparisons of a kernel (the others lose time to neighbours). */
static int hot_only(int argc, char **argv) {
    const phiq_kernels *k = phiq_kernels_get();
    float *x = malloc(sizeof(float) * N), *out = malloc(sizeof(float) * 256);
    for (int i = 0; i < N; i++) x[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
    void *act = malloc(N * 4 + 1024);
    for (int a = 0; a < argc; a++) {
        int t = phiq_ggml_type_from_name(argv[a]);
        if (t < 0 || !k->matvec[t]) { printf("%s: unsupported\n", argv[a]); continue; }
        size_t rb = (size_t)phiq_ggml_row_size(t, N);
        char *w = malloc(rb * 256);
        fill_weights(w, rb * 256, t);
        k->quantize_act(k->act_type[t], x, act, N);
        enum { TRIALS = 21 };
        double g[TRIALS];
        for (int i = 0; i < TRIALS; i++) {
            k->matvec[t](N, 256, out, w, rb, act);
            double c0 = cpu_now(), dt;
            int reps = 0;
            do {
                for (int r = 0; r < 16; r++) k->matvec[t](N, 256, out, w, rb, act);
                reps += 16;
            } while ((dt = cpu_now() - c0) < 0.1);
            g[i] = (double)rb * 256 * reps / dt / 1e9;
        }
        qsort(g, TRIALS, sizeof *g, cmp_double);
        printf("%-7s %-7s hot 1thr GB/s: median %.2f best %.2f\n", argv[a], k->isa, g[TRIALS / 2], g[TRIALS - 1]);
        free(w);
    }
    free(x), free(out), free(act);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--hot") == 0) return hot_only(argc - 2, argv + 2);
    const phiq_kernels *best = phiq_kernels_get(), *ref = phiq_kernels_scalar();
    printf("CPU: %s\nbest ISA: %s; matvec %d x %d (columns x rows)\n", phiq_cpu_describe(), best->isa, N, ROWS);
    read_bw();
    const char *def[] = {"Q4_0", "Q8_0", "Q4_K", "Q6_K", "F16", "Q5_K", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "IQ4_XS", "Q2_K", "Q3_K", "BF16", "F32"};
    int ntypes = argc > 1 ? argc - 1 : (int)(sizeof def / sizeof *def);
    float *x = malloc(sizeof(float) * N), *out = malloc(sizeof(float) * ROWS);
    for (int i = 0; i < N; i++) x[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
    void *act = malloc(N * 4 + 1024);
    printf("cold = weights streamed from DRAM (wall clock); hot = 256 rows (L2-resident) per thread CPU-second\n");
    printf("%-7s %-7s %8s %10s %10s %10s\n", "type", "isa", "MB", "cold 1thr", "cold 2thr", "hot 1thr");
    for (int ti = 0; ti < ntypes; ti++) {
        const char *name = argc > 1 ? argv[ti + 1] : def[ti];
        int t = phiq_ggml_type_from_name(name);
        if (t < 0 || !ref->vec_dot[t]) { printf("%s: unsupported\n", name); continue; }
        size_t rb = (size_t)phiq_ggml_row_size(t, N), mbytes = rb * ROWS;
        int copies = (int)((512u << 20) / mbytes) + 1;
        size_t wsize = mbytes * copies;
        char *w = phiq_huge_alloc(&wsize);
        if (!w) { printf("%s: cannot map %zu bytes\n", name, wsize); continue; }
        fill_weights(w, mbytes * copies, t);
        const char *const *lv = phiq_kernels_levels();
        for (int ki = 0; lv[ki]; ki++) {
            const phiq_kernels *k = phiq_kernels_for(lv[ki]);
            /* amx only changes gemm; its matvec is avx512's */
            if (!k || strcmp(k->isa, "amx") == 0) continue;
            k->quantize_act(k->act_type[t], x, act, N);
            double gbs[2];
            for (int nth = 1; nth <= 2; nth++) {
                int reps = ki == 0 ? copies / 4 + 1 : copies * 3;
                matvec(k->matvec[t], w, rb, mbytes, copies, 1, out, act, nth); /* warm-up */
                double t0 = now();
                matvec(k->matvec[t], w, rb, mbytes, copies, reps, out, act, nth);
                gbs[nth - 1] = (double)mbytes * reps / (now() - t0) / 1e9;
            }
            /* hot: the first 256 rows again and again, timed on this thread's CPU clock */
            int hreps = ki == 0 ? 20 : 400;
            k->matvec[t](N, 256, out, w, rb, act);
            double c0 = cpu_now();
            for (int r = 0; r < hreps; r++) k->matvec[t](N, 256, out, w, rb, act);
            double hot = (double)rb * 256 * hreps / (cpu_now() - c0) / 1e9;
            printf("%-7s %-7s %8.1f %10.2f %10.2f %10.2f\n", name, k->isa, mbytes / 1e6, gbs[0], gbs[1], hot);
            fflush(stdout);
        }
        phiq_huge_free(w, wsize);
    }
    /* prompt processing: 3072 x 3072 weights times 64 activation rows, 1 thread */
    printf("\ngemm 3072x3072 x 64 activation rows, 1 thread (GOPS = 2*n*rows*cols / s, CPU time)\n");
    for (int ti = 0; ti < ntypes; ti++) {
        const char *name = argc > 1 ? argv[ti + 1] : def[ti];
        int t = phiq_ggml_type_from_name(name);
        if (t < 0 || !ref->vec_dot[t]) continue;
        enum { R = 3072, C = 64 };
        size_t rb = (size_t)phiq_ggml_row_size(t, N), ab = (size_t)phiq_ggml_row_size(best->act_type[t], N);
        char *w = malloc(rb * R), *acts = malloc(ab * C);
        float *o = malloc(sizeof(float) * R * C);
        fill_weights(w, rb * R, t);
        for (int j = 0; j < C; j++) best->quantize_act(best->act_type[t], x, acts + j * ab, N);
        const char *const *lv = phiq_kernels_levels();
        for (int ki = 0; lv[ki]; ki++) {
            const phiq_kernels *kk = phiq_kernels_for(lv[ki]);
            if (!kk) continue;
            double c0 = cpu_now();
            int reps = 0;
            do {
                kk->gemm[t](N, ki == 0 ? 256 : R, C, o, R, w, rb, acts, ab);
                reps++;
            } while (cpu_now() - c0 < 0.5);
            double rows = ki == 0 ? 256 : R;
            printf("%-7s %-7s %8.1f GOPS\n", name, kk->isa, 2.0 * N * rows * C * reps / (cpu_now() - c0) / 1e9);
        }
        free(w), free(acts), free(o);
    }
    free(x), free(out), free(act);
    return 0;
}
