/* gptq_chol.c — times GPTQ's Cholesky factorization and triangular inverse
 * of a random symmetric positive definite n x n matrix (diagonally
 * dominant), in double (the fall back path, AVX-512 only:
 * phiq_gptq_chol_avx512, park, phiq_gptq_trinv_avx512), in float (the
 * default: the blocked forms this CPU runs, phiq_gptq_chol_f32_avx512 /
 * _trinv_f32_avx512 or phiq_gptq_chol_f32_avx2 / _trinv_f32_avx2) and, with
 * ref, gptq.c's scalar float loops (what CPUs without either ran before).
 * Not a test; build against build/libphiq.a:
 *
 *   cc -O2 -Iinclude -Isrc bench/gptq_chol.c build/libphiq.a -lpthread -lm -o build/gptq_chol
 *   build/gptq_chol N [THREADS=2] [REPS=3] [f32|f64|both|ref]
 *
 * Prints per path the median over REPS of the factorization, the inverse
 * and their sum, in seconds. Exit 77 without AVX2+FMA (or without AVX-512
 * for f64). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cpu.h"
#include "quant/quant_internal.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t rng_state = 12345;
static double urand(void) { /* [-0.5, 0.5) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / 9007199254740992.0 - 0.5;
}

static void fill(double *ad, float *af, int64_t n) {
    rng_state = 12345;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j <= i; j++) {
            const double v = i == j ? 0.5 * (double)n + 1.0 : urand();
            if (ad) ad[i * n + j] = ad[j * n + i] = v;
            else af[i * n + j] = af[j * n + i] = (float)v;
        }
}

static int cmp(const void *x, const void *y) {
    const double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static void report(const char *path, int64_t n, int nt, int reps, double *tc, double *ti, double *tt) {
    qsort(tc, (size_t)reps, sizeof(double), cmp), qsort(ti, (size_t)reps, sizeof(double), cmp);
    qsort(tt, (size_t)reps, sizeof(double), cmp);
    printf("%s n=%lld threads=%d reps=%d: cholesky %.3f s, inverse %.3f s, total %.3f s (medians)\n", path, (long long)n, nt,
           reps, tc[reps / 2], ti[reps / 2], tt[reps / 2]);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: gptq_chol N [THREADS] [REPS] [f32|f64|both]\n");
        return 2;
    }
    const phiq_cpu *cpu = phiq_cpu_get();
    const int avx512 = cpu->avx512f && cpu->avx512dq, avx2 = cpu->avx2 && cpu->fma;
    const int64_t n = atoll(argv[1]);
    const int nt = argc > 2 ? atoi(argv[2]) : 2, reps = argc > 3 ? atoi(argv[3]) : 3;
    const char *which = argc > 4 ? argv[4] : "both";
    if (n < 1 || reps < 1 || reps > 99) return 2;
    const int ref = !strcmp(which, "ref");
    if (!ref && !avx512 && (!avx2 || !strcmp(which, "f64"))) {
        printf("SKIPPED: this CPU has no %s\n", avx2 ? "AVX-512F/DQ (the double forms)" : "AVX2+FMA nor AVX-512");
        return 77;
    }
    int (*chol)(float *, int64_t, float *, int) = avx512 ? phiq_gptq_chol_f32_avx512 : phiq_gptq_chol_f32_avx2;
    void (*trinv)(float *, int64_t, float *, int) = avx512 ? phiq_gptq_trinv_f32_avx512 : phiq_gptq_trinv_f32_avx2;
    double tc[99], ti[99], tt[99];
    if (!ref && avx512 && strcmp(which, "f32")) {
        double *a = malloc(sizeof(double) * (size_t)(n * n)), *pt = malloc(sizeof(double) * (size_t)(64 * n)),
               *diag = malloc(sizeof(double) * (size_t)n);
        if (!a || !pt || !diag) return 2;
        for (int r = 0; r < reps; r++) {
            fill(a, NULL, n);
            const double t0 = now();
            if (phiq_gptq_chol_avx512(a, n, pt, nt) != 0) return 1;
            const double t1 = now();
            phiq_gptq_park(a, diag, n);
            phiq_gptq_trinv_avx512(a, diag, n, nt);
            const double t2 = now();
            tc[r] = t1 - t0, ti[r] = t2 - t1, tt[r] = t2 - t0;
        }
        report("f64", n, nt, reps, tc, ti, tt);
        free(a), free(pt), free(diag);
    }
    if (strcmp(which, "f64")) {
        float *a = malloc(sizeof(float) * (size_t)(n * n)), *tmp = malloc(sizeof(float) * (size_t)n);
        float *work = aligned_alloc(64, (sizeof(float) * (size_t)phiq_gptq_f32_work(n) + 63) / 64 * 64);
        if (!a || !tmp || !work) return 2;
        for (int r = 0; r < reps; r++) {
            fill(NULL, a, n);
            const double t0 = now();
            if ((ref ? phiq_gptq_chol_f32_ref(a, n) : chol(a, n, work, nt)) != 0) return 1;
            const double t1 = now();
            if (ref) phiq_gptq_trinv_f32_ref(a, tmp, n);
            else trinv(a, n, work, nt);
            const double t2 = now();
            tc[r] = t1 - t0, ti[r] = t2 - t1, tt[r] = t2 - t0;
        }
        report(ref ? "f32 scalar loops" : avx512 ? "f32 avx512" : "f32 avx2", n, nt, reps, tc, ti, tt);
        free(a), free(tmp), free(work);
    }
    return 0;
}
