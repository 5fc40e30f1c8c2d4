/* test_gptq_exact.c — the AVX-512 and AVX2 forms of calibration's dense
 * linear algebra give the same bits as the scalar loops they replace, so a
 * calibrated file does not depend on the CPU's vector width:
 * the blocked Cholesky and triangular inverse (quant/gptq_avx512.c,
 * quant/gptq_avx2.c) against gptq.c's column and row loops, in float (the
 * default, fused multiply-adds; results also against the maths, L Lᵀ = A
 * and M L = I, in double) and with AVX-512 in double (the fall back), the
 * sweep's row update and its deferred block update (the Gram kernel's test
 * is test_kernels'), on sizes that leave tails in every blocking (odd n,
 * T not a multiple of 8). Each form runs where the CPU has its ISA;
 * skipped (77) on CPUs with neither. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/ops.h"
#include "quant/quant_internal.h"

#if defined(__x86_64__)
static uint32_t rng = 777;
static double drand(void) { return tu_randf(&rng) - 0.5; }
/* the forms gptq.c runs on this CPU, by the same detection */
static int have_avx512(void) { return phiq_cpu_get()->avx512f && phiq_cpu_get()->avx512dq; }
static int have_avx2(void) { return phiq_cpu_get()->avx2 && phiq_cpu_get()->fma; }

static void test_cholesky_inverse_exact(void **state) {
    (void)state;
    if (!have_avx512()) skip(); /* the double forms are AVX-512's only */
    const int64_t ns[] = {1, 2, 7, 63, 64, 65, 130, 201, 600};
    for (size_t z = 0; z < sizeof ns / sizeof *ns; z++) {
        const int64_t n = ns[z], k = n + 3;
        double *b = malloc(sizeof(double) * (size_t)(n * k)), *a0 = malloc(sizeof(double) * (size_t)(n * n)),
               *a1 = malloc(sizeof(double) * (size_t)(n * n)), *pt = malloc(sizeof(double) * (size_t)(64 * n)),
               *d0 = malloc(sizeof(double) * (size_t)n), *d1 = malloc(sizeof(double) * (size_t)n);
        for (int64_t i = 0; i < n * k; i++) b[i] = drand();
        for (int64_t i = 0; i < n; i++) /* B Bᵀ + small ridge: well inside positive definite */
            for (int64_t j = 0; j < n; j++) {
                double s = i == j ? 0.01 : 0.0;
                for (int64_t q = 0; q < k; q++) s += b[i * k + q] * b[j * k + q];
                a0[i * n + j] = s;
            }
        memcpy(a1, a0, sizeof(double) * (size_t)(n * n));
        assert_int_equal(phiq_gptq_chol_ref(a0, n), 0);
        assert_int_equal(phiq_gptq_chol_avx512(a1, n, pt, 2), 0);
        for (int64_t i = 0; i < n; i++) assert_memory_equal(a0 + i * n, a1 + i * n, sizeof(double) * (size_t)(i + 1));
        memcpy(a1, a0, sizeof(double) * (size_t)(n * n));
        phiq_gptq_park(a0, d0, n);
        phiq_gptq_park(a1, d1, n);
        phiq_gptq_trinv_ref(a0, d0, n);
        phiq_gptq_trinv_avx512(a1, d1, n, 2);
        for (int64_t i = 0; i < n; i++) assert_memory_equal(a0 + i * n, a1 + i * n, sizeof(double) * (size_t)(i + 1));
        /* a non-positive pivot is reported at the same column */
        for (int64_t i = 0; i < n * n; i++) a0[i] = a1[i] = 0;
        for (int64_t i = 0; i < n; i++) a0[i * n + i] = a1[i * n + i] = i == n / 2 ? -1.0 : 1.0;
        assert_int_equal(phiq_gptq_chol_ref(a0, n), phiq_gptq_chol_avx512(a1, n, pt, 2));
        free(b);
        free(a0);
        free(a1);
        free(pt);
        free(d0);
        free(d1);
    }
}

/* B Bᵀ + ridge I with B n x k, in double */
static void spd(double *a, int64_t n, int64_t k, double ridge) {
    double *b = malloc(sizeof(double) * (size_t)(n * k));
    for (int64_t i = 0; i < n * k; i++) b[i] = drand();
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j <= i; j++) {
            double s = i == j ? ridge : 0.0;
            for (int64_t q = 0; q < k; q++) s += b[i * k + q] * b[j * k + q];
            a[i * n + j] = a[j * n + i] = s;
        }
    free(b);
}

typedef struct f32_form {
    const char *name;
    int (*chol)(float *, int64_t, float *, int);
    void (*trinv)(float *, int64_t, float *, int);
} f32_form;

/* the float path: each blocked form against the reference loops bit for bit
 * (lower triangles; a non-positive pivot at the same column), and for the
 * well-conditioned matrices the maths: max |L Lᵀ - A| / max |A| and
 * max |M L - I| small, computed in double */
static void check_f32_form(const f32_form *fm) {
    const struct {
        int64_t n, k;
        double ridge;
        int check;
    } cs[] = {{1, 4, 0.01, 1},   {7, 11, 0.01, 1},   {63, 95, 0.01, 1},    {129, 200, 0.01, 1}, {200, 303, 0.01, 1},
              {300, 453, 0.01, 1}, {1000, 1503, 0.01, 1}, {200, 100, 1e-5, 0}, {600, 300, 1e-4, 0}};
    for (size_t z = 0; z < sizeof cs / sizeof *cs; z++) {
        const int64_t n = cs[z].n;
        double *ad = malloc(sizeof(double) * (size_t)(n * n));
        float *a0 = malloc(sizeof(float) * (size_t)(n * n)), *a1 = malloc(sizeof(float) * (size_t)(n * n)),
              *tmp = malloc(sizeof(float) * (size_t)n);
        float *work = aligned_alloc(64, (sizeof(float) * (size_t)phiq_gptq_f32_work(n) + 63) / 64 * 64);
        spd(ad, n, cs[z].k, cs[z].ridge);
        for (int64_t i = 0; i < n * n; i++) a0[i] = a1[i] = (float)ad[i];
        const int b0 = phiq_gptq_chol_f32_ref(a0, n), b1 = fm->chol(a1, n, work, 2);
        assert_int_equal(b0, b1);
        if (cs[z].check) assert_int_equal(b0, 0);
        if (b0 == 0) {
            for (int64_t i = 0; i < n; i++) assert_memory_equal(a0 + i * n, a1 + i * n, sizeof(float) * (size_t)(i + 1));
            if (cs[z].check) {
                double amax = 0, err = 0;
                for (int64_t i = 0; i < n * n; i++) amax = fmax(amax, fabs(ad[i]));
                for (int64_t i = 0; i < n; i++)
                    for (int64_t j = 0; j <= i; j++) {
                        double s = 0;
                        for (int64_t q = 0; q <= j; q++) s += (double)a0[i * n + q] * (double)a0[j * n + q];
                        err = fmax(err, fabs(s - ad[i * n + j]));
                    }
                assert_true(err / amax < 1e-5);
            }
            float *l = malloc(sizeof(float) * (size_t)(n * n));
            memcpy(l, a0, sizeof(float) * (size_t)(n * n));
            phiq_gptq_trinv_f32_ref(a0, tmp, n);
            fm->trinv(a1, n, work, 2);
            for (int64_t i = 0; i < n; i++) assert_memory_equal(a0 + i * n, a1 + i * n, sizeof(float) * (size_t)(i + 1));
            if (cs[z].check) {
                double err = 0;
                for (int64_t i = 0; i < n; i++)
                    for (int64_t j = 0; j <= i; j++) {
                        double s = 0;
                        for (int64_t q = j; q <= i; q++) s += (double)a0[i * n + q] * (double)l[q * n + j];
                        err = fmax(err, fabs(s - (i == j ? 1.0 : 0.0)));
                    }
                assert_true(err < 1e-4);
            }
            free(l);
        }
        /* a non-positive pivot is reported at the same column */
        for (int64_t i = 0; i < n * n; i++) a0[i] = a1[i] = 0;
        for (int64_t i = 0; i < n; i++) a0[i * n + i] = a1[i * n + i] = i == n / 2 ? -1.0f : 1.0f;
        assert_int_equal(phiq_gptq_chol_f32_ref(a0, n), fm->chol(a1, n, work, 2));
        free(ad), free(a0), free(a1), free(tmp), free(work);
    }
}

static void test_cholesky_inverse_f32_exact(void **state) {
    (void)state;
    const f32_form forms[] = {{"avx512", phiq_gptq_chol_f32_avx512, phiq_gptq_trinv_f32_avx512},
                              {"avx2", phiq_gptq_chol_f32_avx2, phiq_gptq_trinv_f32_avx2}};
    const int have[] = {have_avx512(), have_avx2()};
    for (int f = 0; f < 2; f++)
        if (have[f]) {
            printf("float Cholesky and inverse: %s form\n", forms[f].name);
            check_f32_form(&forms[f]);
        }
}

static void test_row_update_exact(void **state) {
    (void)state;
    float r0[77], r1[77], r2[77], r3[77], u[77];
    for (int i = 0; i < 77; i++) r0[i] = r1[i] = r2[i] = r3[i] = (float)drand(), u[i] = (float)drand();
    for (int64_t c = 0; c < 77; c++) {
        const float e = (float)drand();
        for (int64_t k = c + 1; k < 77; k++) r0[k] = fmaf(-e, u[k], r0[k]);
        if (have_avx512()) phiq_gptq_axpy_avx512(r1 + c + 1, u + c + 1, e, 77 - c - 1);
        if (have_avx2()) phiq_gptq_axpy_avx2(r2 + c + 1, u + c + 1, e, 77 - c - 1);
        phiq_gptq_axpy_ref(r3 + c + 1, u + c + 1, e, 77 - c - 1);
    }
    if (have_avx512()) assert_memory_equal(r0, r1, sizeof r0);
    if (have_avx2()) assert_memory_equal(r0, r2, sizeof r0);
    assert_memory_equal(r0, r3, sizeof r0);
}

/* the deferred block update against the row update it replaces, term by
 * term, for a full tile and a short one, with a tail strip */
static void test_block_update_exact(void **state) {
    (void)state;
    enum { N = 150, NC = 37, K0 = 41, SZ = PHIQ_GPTQ_TILE * N };
    const int nrs[] = {PHIQ_GPTQ_TILE, 5};
    void (*const forms[])(float *, int64_t, int, const float *, const float *, int64_t, int64_t, int64_t, int64_t) = {
        phiq_gptq_block_update_ref, phiq_gptq_block_update_avx512, phiq_gptq_block_update_avx2};
    for (size_t z = 0; z < sizeof nrs / sizeof *nrs; z++) {
        const int nr = nrs[z];
        float *w0 = malloc(sizeof(float) * SZ), *w1 = malloc(sizeof(float) * SZ), *init = malloc(sizeof(float) * SZ),
              *u = malloc(sizeof(float) * NC * N), *et = malloc(sizeof(float) * PHIQ_GPTQ_TILE * NC);
        for (int i = 0; i < SZ; i++) w0[i] = init[i] = (float)drand();
        for (int i = 0; i < NC * N; i++) u[i] = (float)drand();
        for (int i = 0; i < PHIQ_GPTQ_TILE * NC; i++) et[i] = (float)drand() * 3.0f;
        for (int c = 0; c < NC; c++) /* the row update it replaces, term by term */
            for (int r = 0; r < nr; r++) phiq_gptq_axpy_ref(w0 + r * N + K0, u + c * N + K0, et[c * PHIQ_GPTQ_TILE + r], N - K0);
        const int have[] = {1, have_avx512(), have_avx2()};
        for (size_t f = 0; f < sizeof forms / sizeof *forms; f++) {
            if (!have[f]) continue;
            memcpy(w1, init, sizeof(float) * SZ);
            forms[f](w1, N, nr, et, u, N, NC, K0, N);
            assert_memory_equal(w0, w1, sizeof(float) * SZ);
        }
        free(w0), free(w1), free(init), free(u), free(et);
    }
}

#endif

int main(void) {
#if defined(__x86_64__)
    if (!have_avx512() && !have_avx2()) {
        printf("SKIPPED: this CPU has neither AVX-512F/DQ nor AVX2+FMA (the test compares quant/gptq_avx512.c and gptq_avx2.c with the reference)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cholesky_inverse_exact),
        cmocka_unit_test(test_cholesky_inverse_f32_exact),
        cmocka_unit_test(test_row_update_exact),
        cmocka_unit_test(test_block_update_exact),
    };
    return tu_run_group(tests, NULL, NULL);
#else
    return 77;
#endif
}
