/* gram_avx2.c — H += XᵀX (gram.h) with AVX2 FMA: a tile of 6 rows x one
 * packed group of 16 columns (12 ymm accumulators), one FMA per token and
 * accumulator, so every lane computes exactly gram.h's sum. */
#include <immintrin.h>

#include "kernels/gram.h"

#define G PHIQ_GRAM_GROUP
#define MR 6

void phiq_gram_upper_avx2(float *h, int64_t n, const float *p, int64_t T, int64_t j0, int64_t j1) {
    if (j1 > n) j1 = n;
    for (int64_t g = j0 / G; g * G < j1; g++) {
        const float *pj = p + g * T * G;
        const int64_t jlo = g * G > j0 ? g * G : j0, jhi = (g + 1) * G < j1 ? (g + 1) * G : j1;
        for (int64_t i0 = 0; i0 < jhi; i0 += MR) {
            __m256 acc[MR][2];
            for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
            const float *pi[MR];
            for (int r = 0; r < MR; r++) { /* rows past jhi read row i0 again; their sums are dropped */
                const int64_t i = i0 + r < jhi ? i0 + r : i0;
                pi[r] = p + (i / G) * T * G + i % G;
            }
            for (int64_t t = 0; t < T; t++) {
                const __m256 b0 = _mm256_loadu_ps(pj + t * G), b1 = _mm256_loadu_ps(pj + t * G + 8);
                for (int r = 0; r < MR; r++) {
                    const __m256 a = _mm256_broadcast_ss(pi[r] + t * G);
                    acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
                    acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
                }
            }
            for (int r = 0; r < MR && i0 + r < jhi; r++) {
                const int64_t i = i0 + r;
                float s[G];
                _mm256_storeu_ps(s, acc[r][0]);
                _mm256_storeu_ps(s + 8, acc[r][1]);
                for (int64_t j = jlo > i ? jlo : i; j < jhi; j++) h[i * n + j] += s[j - g * G];
            }
        }
    }
}
