/* gemm_f16_avx512.c — prompt-processing gemm for F16 weights with float32
 * activations (already rounded to f16 by the caller, so every product is
 * exact in f32, as in llama.cpp's F16 path): a register tile of 4 weight
 * rows x 6 activation rows, 24 zmm accumulators; each converted weight
 * vector feeds six FMAs, so the F16C conversion no longer bounds the loop. */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/gemm_f16.h"
#include "kernels/gemm_tiled.h"

#define MR PHIQ_TILE_MR
#define NR PHIQ_TILE_NR

/* out[j*ldo + r] for r < mr, j < nc (mr <= MR, nc <= NR); n a multiple of 16. */
static void tile(int64_t n, int mr, int nc, float *out, size_t ldo, const void *w, size_t rb, const void *act,
                 size_t as) {
    __m512 acc[MR][NR];
    const uint16_t *wr[MR];
    const float *ar[NR];
    phiq_tile_start(acc, wr, ar, mr, nc, w, rb, act, as);
    for (int64_t i = 0; i < n; i += 16) {
        __m512 wv[MR];
        for (int r = 0; r < MR; r++) wv[r] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(wr[r] + i)));
        phiq_tile_fma(acc, wv, ar, i);
    }
    phiq_tile_store(acc, mr, nc, out, ldo);
}

void phiq_gemm_f16_f32_avx512(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                              const float *act, size_t as) {
    phiq_gemm_tiled(tile, MR, NR, sizeof(float), n, nrows, ncols, out, ldo, w, rb, act, as);
}

void phiq_round_f16_f32_avx512(float *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT)));
    for (; i < n; i++) dst[i] = _cvtsh_ss(_cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT));
}
