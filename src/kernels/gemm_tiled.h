/* gemm_tiled.h — what the register-tiled prefill gemms with 16-bit weights
 * and f32 activations share (gemm_f16_avx512.c, gemm_bf16_avx512.c): the
 * 4 x 6 tile's set-up, its multiply-add step on widened weight vectors and
 * its reductions (AVX-512 files only), and the blocking: a tile function
 * computes mr <= MR weight rows x nc <= NR activation rows; this walks the
 * output so that a
 * block of MR weight rows stays in L1 while a block of activation rows
 * (about 1 MB: in L2) streams past. The weight rows then stream once per
 * activation block, not the activations once per MR weight rows. Each
 * output's sum is the same whatever the order. */
#ifndef PHIQ_KERNELS_GEMM_TILED_H
#define PHIQ_KERNELS_GEMM_TILED_H

#include <stddef.h>
#include <stdint.h>

/* out[j*ldo + r] for r < mr, j < nc of w (rows rb bytes apart) against act
 * (rows as elements apart). */
typedef void (*phiq_gemm_tile_fn)(int64_t n, int mr, int nc, float *out, size_t ldo, const void *w, size_t rb,
                                  const void *act, size_t as);

/* act_bytes: bytes of one activation element. */
static inline void phiq_gemm_tiled(phiq_gemm_tile_fn tile, int mr_max, int nr, size_t act_bytes, int64_t n,
                                   int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                                   const void *act, size_t as) {
    int64_t jb = ((int64_t)1 << 20) / (n * (int64_t)act_bytes) / nr * nr;
    if (jb < nr) jb = nr;
    for (int64_t j00 = 0; j00 < ncols; j00 += jb) {
        const int64_t j1 = j00 + jb < ncols ? j00 + jb : ncols;
        for (int64_t r0 = 0; r0 < nrows; r0 += mr_max) {
            const int mr = nrows - r0 < mr_max ? (int)(nrows - r0) : mr_max;
            const char *wb = (const char *)w + (size_t)r0 * rb;
            for (int64_t j0 = j00; j0 < j1; j0 += nr) {
                const int nc = j1 - j0 < nr ? (int)(j1 - j0) : nr;
                tile(n, mr, nc, out + (size_t)j0 * ldo + r0, ldo, wb, rb, (const char *)act + (size_t)j0 * as * act_bytes,
                     as);
            }
        }
    }
}

#ifdef __AVX512F__
#include <immintrin.h>

#define PHIQ_TILE_MR 4
#define PHIQ_TILE_NR 6

/* Zeroed accumulators; row pointers of the tile's weight rows (rows past mr
 * repeat row 0) and activation rows (past nc repeat row 0), computed but not
 * stored. */
static inline void phiq_tile_start(__m512 acc[PHIQ_TILE_MR][PHIQ_TILE_NR], const uint16_t *wr[PHIQ_TILE_MR],
                                   const float *ar[PHIQ_TILE_NR], int mr, int nc, const void *w, size_t rb,
                                   const float *act, size_t as) {
    for (int r = 0; r < PHIQ_TILE_MR; r++)
        for (int j = 0; j < PHIQ_TILE_NR; j++) acc[r][j] = _mm512_setzero_ps();
    for (int r = 0; r < PHIQ_TILE_MR; r++) wr[r] = (const uint16_t *)((const char *)w + (size_t)(r < mr ? r : 0) * rb);
    for (int j = 0; j < PHIQ_TILE_NR; j++) ar[j] = act + (size_t)(j < nc ? j : 0) * as;
}

/* acc[r][j] += wv[r] * the 16 activations of row j at i (masked: zeros past m) */
static inline void phiq_tile_fma(__m512 acc[PHIQ_TILE_MR][PHIQ_TILE_NR], const __m512 wv[PHIQ_TILE_MR],
                                 const float *const ar[PHIQ_TILE_NR], int64_t i) {
    for (int j = 0; j < PHIQ_TILE_NR; j++) {
        const __m512 a = _mm512_loadu_ps(ar[j] + i);
        for (int r = 0; r < PHIQ_TILE_MR; r++) acc[r][j] = _mm512_fmadd_ps(wv[r], a, acc[r][j]);
    }
}
static inline void phiq_tile_fma_mask(__m512 acc[PHIQ_TILE_MR][PHIQ_TILE_NR], const __m512 wv[PHIQ_TILE_MR],
                                      const float *const ar[PHIQ_TILE_NR], int64_t i, __mmask16 m) {
    for (int j = 0; j < PHIQ_TILE_NR; j++) {
        const __m512 a = _mm512_maskz_loadu_ps(m, ar[j] + i);
        for (int r = 0; r < PHIQ_TILE_MR; r++) acc[r][j] = _mm512_fmadd_ps(wv[r], a, acc[r][j]);
    }
}

/* out[j*ldo + r] = the sum of acc[r][j]'s lanes, r < mr, j < nc */
static inline void phiq_tile_store(__m512 acc[PHIQ_TILE_MR][PHIQ_TILE_NR], int mr, int nc, float *out, size_t ldo) {
    for (int j = 0; j < nc; j++)
        for (int r = 0; r < mr; r++) out[(size_t)j * ldo + r] = _mm512_reduce_add_ps(acc[r][j]);
}
#endif

#endif
