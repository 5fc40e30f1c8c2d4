/* gemm_bf16_avx512.c — prompt-processing gemm for BF16 weights with float32
 * activations: a register tile of 4 weight rows x 6 activation rows, 24 zmm
 * accumulators, as the F16 gemm. The weight rows are read as they lie in
 * memory (a BF16 checkpoint's rows, unconverted): a bf16 is the top half of
 * an f32, so one vpunpcklwd / vpunpckhwd with zeros widens 16 of 32 loaded
 * values exactly (one shuffle uop per 16, where F16C's vcvtph2ps takes two),
 * in the lane order 0-3, 8-11, 16-19, 24-27 / 4-7, 12-15, 20-23, 28-31; the
 * activation rows are put in that order once per matmul
 * (phiq_bf16_act_prepare_avx512), so each product pairs the right values.
 *
 * Numerics: activations are not rounded (the engine's default for BF16
 * weights, as PyTorch computes them), so the only difference from the f32
 * reference path is the order of the f32 additions. Used by contexts with
 * bf16_gemm (the calibration forward of `convert --calib` and its
 * --target-bpw selection on a model held in BF16: model/matmul.c).
 *
 * Why not AVX512_BF16's vdpbf16ps (32 bf16 products per instruction, with
 * activations rounded to bf16 as llama.cpp does): on the development CPU
 * (Xeon with AVX512_BF16/FP16, no AMX) a register-only loop of 24
 * independent vdpbf16ps ran 1.35 G instructions/s = 43 G multiply-adds/s
 * per thread against 5.5 G vfmadd231ps/s = 88 G, and a 4 x 6 vdpbf16ps tile
 * reached 43 G where the F16 FMA tile reaches 61 G (thread CPU time). */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/gemm_bf16.h"
#include "kernels/gemm_tiled.h"

#define MR PHIQ_TILE_MR
#define NR PHIQ_TILE_NR

/* out[j*ldo + r] for r < mr, j < nc (mr <= MR, nc <= NR; blocked by
 * gemm_tiled.h). */
static void tile(int64_t n, int mr, int nc, float *out, size_t ldo, const void *w, size_t rb, const void *act,
                 size_t as) {
    const __m512i z = _mm512_setzero_si512();
    __m512 acc[MR][NR];
    const uint16_t *wr[MR];
    const float *ar[NR];
    phiq_tile_start(acc, wr, ar, mr, nc, w, rb, act, as);
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 wv[MR];
        for (int r = 0; r < MR; r++) wv[r] = _mm512_castsi512_ps(_mm512_unpacklo_epi16(z, _mm512_loadu_si512(wr[r] + i)));
        phiq_tile_fma(acc, wv, ar, i);
        for (int r = 0; r < MR; r++) wv[r] = _mm512_castsi512_ps(_mm512_unpackhi_epi16(z, _mm512_loadu_si512(wr[r] + i)));
        phiq_tile_fma(acc, wv, ar, i + 16);
    }
    for (; i < n; i += 16) { /* the tail in order, zeros past n */
        const __mmask16 m = (__mmask16)(n - i < 16 ? (1u << (n - i)) - 1 : 0xffffu);
        __m512 wv[MR];
        for (int r = 0; r < MR; r++)
            wv[r] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, wr[r] + i)), 16));
        phiq_tile_fma_mask(acc, wv, ar, i, m);
    }
    phiq_tile_store(acc, mr, nc, out, ldo);
}

void phiq_gemm_bf16_f32_avx512(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                               const float *act, size_t as) {
    phiq_gemm_tiled(tile, MR, NR, sizeof(float), n, nrows, ncols, out, ldo, w, rb, act, as);
}

void phiq_bf16_act_prepare_avx512(float *dst, const float *src, int64_t n) {
    const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
    const __m512i hi = _mm512_setr_epi32(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 a = _mm512_loadu_ps(src + i), b = _mm512_loadu_ps(src + i + 16);
        _mm512_storeu_ps(dst + i, _mm512_permutex2var_ps(a, lo, b));
        _mm512_storeu_ps(dst + i + 16, _mm512_permutex2var_ps(a, hi, b));
    }
    for (; i < n; i++) dst[i] = src[i];
}
