/* gptq_avx2.c — GPTQ's float linear algebra (gptq.c) for CPUs with AVX2
 * and FMA but not AVX-512, each the same bits as gptq.c's loops: the
 * sweep's updates (the reference loops compiled where fmaf is one
 * instruction, so that they vectorize) and the blocked Cholesky and
 * triangular inverse of the damped Hessian (gptq_avx512.c's blocking on
 * 8-lane registers). */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "quant/quant_internal.h"

void phiq_gptq_axpy_avx2(float *row, const float *u, float e, int64_t n) {
    for (int64_t k = 0; k < n; k++) row[k] = fmaf(-e, u[k], row[k]);
}

void phiq_gptq_block_update_avx2(float *w, int64_t ldw, int nr, const float *et, const float *u, int64_t ldu,
                                 int64_t nc, int64_t k0, int64_t k1) {
    for (int r = 0; r < nr; r++)
        for (int64_t c = 0; c < nc; c++) {
            const float e = et[c * PHIQ_GPTQ_TILE + r];
            float *wr = w + r * ldw;
            const float *uc = u + c * ldu;
            for (int64_t k = k0; k < k1; k++) wr[k] = fmaf(-e, uc[k], wr[k]);
        }
}

/* ---- the single-precision Cholesky and triangular inverse ------------------------
 * gptq_f32_blocked.h's body on 8-lane registers. gptq.c's loops were what
 * CPUs without AVX-512 ran: there fmaf is a libm call (the library is
 * compiled without FMA) and nothing vectorizes; Cholesky and inverse of
 * 3072 x 3072 took 42.9 s against 0.36 s here (Zen 3, 2 threads; 8192 x
 * 8192, a Phi-3 down projection's Hessian: 4.5 s). Compiled with
 * -ffp-contract=off: only the explicit FMAs fuse. */
#define F_MR 6   /* rows of a tile (one broadcast each): 12 accumulators */
#define F_NR 16  /* columns of a tile (two vectors) */
#define F_KC 256 /* panel width = terms per update */
#define F_NB 16  /* strips per column block: 16 x 16 x 256 floats of B (256 KiB) stay in L2 */
#define F_JC 256 /* the inverse's column chunk: the block's rows of a chunk (256 KiB) stay in L2 */
#include "quant/gptq_f32_blocked.h"

/* C[i][j] = fma(A[i][p], B[p][j], C[i][j]) for p < kc in order over one
 * F_MR x F_NR tile; ap [kc][F_MR], bp [kc][F_NR] (32-byte aligned) */
static void ftile(float *c, int64_t ldc, const float *ap, const float *bp, int64_t kc) {
    __m256 c0[F_MR], c1[F_MR];
#pragma GCC unroll 6
    for (int r = 0; r < F_MR; r++) {
        c0[r] = _mm256_loadu_ps(c + r * ldc);
        c1[r] = _mm256_loadu_ps(c + r * ldc + 8);
    }
    for (int64_t p = 0; p < kc; p++) {
        const __m256 b0 = _mm256_load_ps(bp + p * F_NR), b1 = _mm256_load_ps(bp + p * F_NR + 8);
        const float *x = ap + p * F_MR;
#pragma GCC unroll 6
        for (int r = 0; r < F_MR; r++) {
            const __m256 v = _mm256_broadcast_ss(x + r);
            c0[r] = _mm256_fmadd_ps(v, b0, c0[r]);
            c1[r] = _mm256_fmadd_ps(v, b1, c1[r]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < F_MR; r++) {
        _mm256_storeu_ps(c + r * ldc, c0[r]);
        _mm256_storeu_ps(c + r * ldc + 8, c1[r]);
    }
}


static void f_panel_rows(void *arg, int t, int nt) {
    const fpanel *f = arg;
    float *a = f->a;
    const int64_t n = f->n, k0 = f->k0, pw = f->k1 - k0;
    _Alignas(32) float x[F_KC][64];
    for (int64_t i0 = f->k1 + 64 * t; i0 < n; i0 += 64 * nt) {
        const int64_t nr = n - i0 < 64 ? n - i0 : 64;
        for (int64_t p = 0; p < pw; p++)
            for (int64_t r = 0; r < 64; r++) x[p][r] = r < nr ? a[(i0 + r) * n + k0 + p] : 0.0f;
        for (int64_t p = 0; p < pw; p++) {
            const float *lj = a + (k0 + p) * n + k0;
            __m256 s[8];
#pragma GCC unroll 8
            for (int v = 0; v < 8; v++) s[v] = _mm256_load_ps(&x[p][8 * v]);
            for (int64_t q = 0; q < p; q++) {
                const __m256 l = _mm256_set1_ps(-lj[q]);
#pragma GCC unroll 8
                for (int v = 0; v < 8; v++) s[v] = _mm256_fmadd_ps(_mm256_load_ps(&x[q][8 * v]), l, s[v]);
            }
            const __m256 d = _mm256_set1_ps(lj[p]);
#pragma GCC unroll 8
            for (int v = 0; v < 8; v++) _mm256_store_ps(&x[p][8 * v], _mm256_div_ps(s[v], d));
        }
        for (int64_t r = 0; r < nr; r++)
            for (int64_t p = 0; p < pw; p++) a[(i0 + r) * n + k0 + p] = x[p][r];
    }
}


static void f_inv_block(void *arg, int t, int nt) {
    const fdiag *f = arg;
    float *a = f->a;
    const int64_t n = f->n, k0 = f->k0, k1 = f->k1, pw = k1 - k0;
    for (int64_t j0 = F_JC * t; j0 < k1; j0 += F_JC * nt) {
        const int64_t je = j0 + F_JC;
        for (int64_t i = k0 > j0 ? k0 : j0; i < k1; i++) {
            float *mi = a + i * n;
            const float *l = f->lb + (i - k0) * pw;
            for (int64_t k = k0 > j0 ? k0 : j0; k < i; k++) { /* M[k][j0..] is zero for k < j0 */
                const float *mk = a + k * n;
                const float lk = l[k - k0];
                const __m256 vl = _mm256_set1_ps(lk);
                const int64_t end = k + 1 < je ? k + 1 : je;
                int64_t j = j0;
                for (; j + 8 <= end; j += 8)
                    _mm256_storeu_ps(mi + j, _mm256_fmadd_ps(vl, _mm256_loadu_ps(mk + j), _mm256_loadu_ps(mi + j)));
                for (; j < end; j++) mi[j] = fmaf(lk, mk[j], mi[j]);
            }
            const float inv = 1.0f / l[i - k0];
            const __m256 vs = _mm256_set1_ps(-inv);
            const int64_t end = i < je ? i : je;
            int64_t j = j0;
            for (; j + 8 <= end; j += 8) _mm256_storeu_ps(mi + j, _mm256_mul_ps(_mm256_loadu_ps(mi + j), vs));
            for (; j < end; j++) mi[j] *= -inv;
            if (i >= j0 && i < je) mi[i] = inv;
        }
    }
}


int phiq_gptq_chol_f32_avx2(float *a, int64_t n, float *work, int nt) { return f_chol(a, n, work, nt); }
void phiq_gptq_trinv_f32_avx2(float *a, int64_t n, float *work, int nt) { f_trinv(a, n, work, nt); }
