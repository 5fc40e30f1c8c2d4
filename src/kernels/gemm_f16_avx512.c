/* gemm_f16_avx512.c — prompt-processing gemm for F16 weights with float32
 * activations (already rounded to f16 by the caller, so every product is
 * exact in f32, as in llama.cpp's F16 path): a register tile of 4 weight
 * rows x 6 activation rows, 24 zmm accumulators; each converted weight
 * vector feeds six FMAs, so the F16C conversion no longer bounds the loop. */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/gemm_f16.h"

#define MR 4
#define NR 6

/* out[j*ldo + r] for r < mr, j < nc (mr <= MR, nc <= NR); n a multiple of 16. */
static void tile(int64_t n, int mr, int nc, float *out, size_t ldo, const uint16_t *w, size_t rb, const float *act,
                 size_t as) {
    __m512 acc[MR][NR];
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NR; j++) acc[r][j] = _mm512_setzero_ps();
    const uint16_t *wr[MR];
    const float *ar[NR];
    for (int r = 0; r < MR; r++) wr[r] = (const uint16_t *)((const char *)w + (size_t)(r < mr ? r : 0) * rb);
    for (int j = 0; j < NR; j++) ar[j] = act + (size_t)(j < nc ? j : 0) * as;
    for (int64_t i = 0; i < n; i += 16) {
        __m512 wv[MR];
        for (int r = 0; r < MR; r++) wv[r] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(wr[r] + i)));
        for (int j = 0; j < NR; j++) {
            const __m512 a = _mm512_loadu_ps(ar[j] + i);
            for (int r = 0; r < MR; r++) acc[r][j] = _mm512_fmadd_ps(wv[r], a, acc[r][j]);
        }
    }
    for (int j = 0; j < nc; j++)
        for (int r = 0; r < mr; r++) out[(size_t)j * ldo + r] = _mm512_reduce_add_ps(acc[r][j]);
}

void phiq_gemm_f16_f32_avx512(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                              const float *act, size_t as) {
    /* a 4-row weight block (4 n halves) stays in L1 while a block of
     * activation rows (about 1 MB: in L2) streams past; the weight rows
     * then stream once per activation block, not the activations once per
     * 4 weight rows. Each output's sum is the same whatever the order. */
    int64_t jb = ((int64_t)1 << 20) / (n * (int64_t)sizeof(float)) / NR * NR;
    if (jb < NR) jb = NR;
    for (int64_t j00 = 0; j00 < ncols; j00 += jb) {
        const int64_t j1 = j00 + jb < ncols ? j00 + jb : ncols;
        for (int64_t r0 = 0; r0 < nrows; r0 += MR) {
            const int mr = nrows - r0 < MR ? (int)(nrows - r0) : MR;
            const uint16_t *wb = (const uint16_t *)((const char *)w + (size_t)r0 * rb);
            for (int64_t j0 = j00; j0 < j1; j0 += NR) {
                const int nc = j1 - j0 < NR ? (int)(j1 - j0) : NR;
                tile(n, mr, nc, out + (size_t)j0 * ldo + r0, ldo, wb, rb, act + (size_t)j0 * as, as);
            }
        }
    }
}

void phiq_round_f16_f32_avx512(float *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT)));
    for (; i < n; i++) dst[i] = _cvtsh_ss(_cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT));
}
