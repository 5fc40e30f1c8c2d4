/* gram_avx512.c — H += XᵀX (gram.h) as a rank-1 update per token: a tile
 * of 8 rows x 48 columns (24 zmm accumulators) takes each token's 8 row
 * values as broadcasts and its 48 column values as three loads of the
 * packed groups, one FMA per accumulator, so every lane computes exactly
 * gram.h's sum. One block of 3 column groups (48 x T floats: ~96 KiB at
 * T = 512) stays in L2 while the row tiles stream past. */
#include <immintrin.h>

#include "kernels/gram.h"

#define G PHIQ_GRAM_GROUP
#define MR 8

static inline __mmask16 lanes(int64_t lo, int64_t hi) {
    if (lo < 0) lo = 0;
    if (hi > G) hi = G;
    if (hi <= lo) return 0;
    return (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
}

/* Rows i0.. (i0 a multiple of 8) against groups g0 .. g0+ng; columns
 * written are [jlo, jhi) and j >= i. */
static inline __attribute__((always_inline)) void tile(float *h, int64_t n, const float *p, int64_t T, int64_t i0,
                                                       int64_t g0, const int ng, int64_t jlo, int64_t jhi) {
    __m512 acc[MR][3];
    for (int r = 0; r < MR; r++)
        for (int q = 0; q < ng; q++) acc[r][q] = _mm512_setzero_ps();
    const float *pi = p + (i0 / G) * T * G + i0 % G, *pj = p + g0 * T * G;
    for (int64_t t = 0; t < T; t++) {
        __m512 b[3];
        for (int q = 0; q < ng; q++) b[q] = _mm512_loadu_ps(pj + (q * T + t) * G);
        for (int r = 0; r < MR; r++) {
            const __m512 a = _mm512_set1_ps(pi[t * G + r]);
            for (int q = 0; q < ng; q++) acc[r][q] = _mm512_fmadd_ps(a, b[q], acc[r][q]);
        }
    }
    for (int r = 0; r < MR && i0 + r < jhi; r++) {
        const int64_t i = i0 + r, lo = i > jlo ? i : jlo;
        for (int q = 0; q < ng; q++) {
            const int64_t c = (g0 + q) * G;
            const __mmask16 m = lanes(lo - c, jhi - c);
            if (!m) continue;
            float *hr = h + i * n + c;
            _mm512_mask_storeu_ps(hr, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, hr), acc[r][q]));
        }
    }
}

void phiq_gram_upper_avx512(float *h, int64_t n, const float *p, int64_t T, int64_t j0, int64_t j1) {
    if (j1 > n) j1 = n;
    for (int64_t g0 = j0 / G; g0 * G < j1; g0 += 3) {
        const int64_t left = (j1 - g0 * G + G - 1) / G;
        const int ng = left < 3 ? (int)left : 3;
        const int64_t jhi = (g0 + ng) * G < j1 ? (g0 + ng) * G : j1;
        const int64_t jlo = g0 * G > j0 ? g0 * G : j0;
        for (int64_t i0 = 0; i0 < jhi; i0 += MR) {
            if (ng == 3) tile(h, n, p, T, i0, g0, 3, jlo, jhi);
            else if (ng == 2) tile(h, n, p, T, i0, g0, 2, jlo, jhi);
            else tile(h, n, p, T, i0, g0, 1, jlo, jhi);
        }
    }
}
