/* gram_avx512.c — the Gram matrix of calibration inputs, H += Xᵀ X, for
 * GPTQ's Hessians (src/convert/calib.c): every entry is computed with exactly
 * phiq_dot_f32's arithmetic (ops.c: eight lane sums over t = k mod 8, each a
 * rounded product then a rounded add — no FMA —, summed as
 * ((0+1)+(2+3))+((4+5)+(6+7)), then the t tail one by one), so the bytes
 * do not depend on this kernel; it only does the dots 32 at a time in
 * registers (4 rows x 8 columns, two columns' eight lanes per zmm) with one
 * block of columns kept in cache while every row tile passes over it.
 * Compiled with -ffp-contract=off (CMakeLists.txt) so that no product and
 * sum fuse. */
#include <immintrin.h>

#include "kernels/ops.h"

/* 4 rows i0.. x 8 columns j0.. of full 8-lane blocks of t (T8 of them). */
static void gram_tile(const float *xt, int64_t T, int64_t i0, int64_t j0, int64_t T8, float out[4][8]) {
    __m512 acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int q = 0; q < 4; q++) acc[r][q] = _mm512_setzero_ps();
    const float *a0 = xt + i0 * T, *b0 = xt + j0 * T;
    for (int64_t s = 0; s < T8; s++) {
        const int64_t t = 8 * s;
        __m512 a[4], b[4];
        for (int r = 0; r < 4; r++) a[r] = _mm512_broadcast_f32x8(_mm256_loadu_ps(a0 + r * T + t));
        for (int q = 0; q < 4; q++)
            b[q] = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(b0 + 2 * q * T + t)),
                                      _mm256_loadu_ps(b0 + (2 * q + 1) * T + t), 1);
        for (int r = 0; r < 4; r++)
            for (int q = 0; q < 4; q++) acc[r][q] = _mm512_add_ps(acc[r][q], _mm512_mul_ps(a[r], b[q]));
    }
    for (int r = 0; r < 4; r++)
        for (int q = 0; q < 4; q++) {
            __m512 v = acc[r][q];
            v = _mm512_add_ps(v, _mm512_permute_ps(v, 0xB1));                      /* l0+l1, l2+l3, ... */
            v = _mm512_add_ps(v, _mm512_permute_ps(v, 0x4E));                      /* (l0+l1)+(l2+l3), ... */
            v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1))); /* + ((l4+l5)+(l6+l7)) */
            float f[16];
            _mm512_storeu_ps(f, v);
            out[r][2 * q] = f[0];
            out[r][2 * q + 1] = f[8];
        }
}

void phiq_gram_upper_avx512(float *h, int64_t n, const float *xt, int64_t T, int64_t j0, int64_t j1) {
    const int64_t T8 = T / 8;
    if (j1 > n) j1 = n;
    for (int64_t i0 = 0; i0 < j1; i0 += 4)
        for (int64_t jj = j0; jj < j1; jj += 8) {
            if (jj + 8 <= i0) continue; /* wholly below the diagonal */
            float out[4][8];
            gram_tile(xt, T, i0, jj, T8, out);
            for (int r = 0; r < 4 && i0 + r < n; r++)
                for (int q = 0; q < 8 && jj + q < j1; q++) {
                    const float *a = xt + (i0 + r) * T, *b = xt + (jj + q) * T;
                    float s = out[r][q];
                    for (int64_t t = 8 * T8; t < T; t++) s += a[t] * b[t];
                    h[(i0 + r) * n + jj + q] += s;
                }
        }
}
