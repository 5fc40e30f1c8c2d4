/* gemm_f16_amx.c — prompt-processing gemm for F16 weights on AMX-BF16
 * tiles with exact products. An f16 value v (11 significant bits) is the
 * exact sum of two bf16 values hi = bf16(v), lo = v - hi (<= 4 significant
 * bits left); the same holds for the f16-rounded activations. So
 *   w * a = whi*ahi + whi*alo + wlo*ahi + wlo*alo
 * with every product exact in f32, as in llama.cpp's F16 path (F16C
 * conversion then FP32 FMA); only the f32 summation order differs. Four
 * tdpbf16ps per 32-element step still beat the FP32 FMA bound ~5x.
 *
 * Tiles (all 16 rows x 64 bytes):
 *   tmm0, tmm1 = C for column tiles 0 / 1: 16 x 16 f32, C[r][j]
 *   tmm2, tmm3 = A hi / lo: 16 weight rows x 32 bf16 of this K step
 *   tmm4..tmm7 = B hi / lo for column tiles 0 / 1: 16 pair-rows x 16 cols x 2,
 *                B[k/2][2j + k%2] = act_j[k]
 * Rows short of a 16-row tile go to the AVX-512 FMA kernel. */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm_f16.h"

typedef struct tilecfg {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

static void tiles_configure(void) {
    tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.rows[t] = 16, cfg.colsb[t] = 64;
    _tile_loadconfig(&cfg);
}

/* 16 floats -> bf16 hi (round to nearest even) and lo = bf16(x - hi) (exact
 * for f16-representable x). */
static inline void split16(__m512 x, __m256i *hi, __m256i *lo) {
    __m256bh hb = _mm512_cvtneps_pbh(x);
    __m256i h;
    memcpy(&h, &hb, sizeof h);
    __m512 hf = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    __m256bh lb = _mm512_cvtneps_pbh(_mm512_sub_ps(x, hf));
    *hi = h;
    memcpy(lo, &lb, sizeof *lo);
}

int phiq_gemm_f16_amx(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                      const float *act, size_t as) {
    if (n % 32 != 0) return -1;
    const int64_t ns = n / 32, nrt = nrows / 16, nct = (ncols + 15) / 16, nctp = (nct + 1) / 2 * 2;
    if (nrt == 0) return -1;
    /* B: [ct][step][hi/lo][16 x 32 bf16] = 2 KiB per (ct, step) */
    uint16_t *B = aligned_alloc(64, (size_t)nctp * ns * 2048);
    /* A: [step][hi/lo][16 x 32 bf16] for one row tile */
    uint16_t *A = aligned_alloc(64, (size_t)ns * 2048);
    if (!B || !A) {
        free(B), free(A);
        return -1;
    }
    for (int64_t ct = 0; ct < nctp; ct++)
        for (int64_t s = 0; s < ns; s++) {
            uint16_t *bh = B + ((size_t)ct * ns + s) * 1024, *bl = bh + 512;
            for (int j = 0; j < 16; j++) {
                const int64_t col = ct * 16 + j;
                if (col >= ncols) {
                    for (int k = 0; k < 32; k++) bh[(k / 2) * 32 + 2 * j + k % 2] = bl[(k / 2) * 32 + 2 * j + k % 2] = 0;
                    continue;
                }
                const float *a = act + (size_t)col * as + s * 32;
                _Alignas(32) uint16_t h[32], l[32];
                __m256i h0, l0, h1, l1;
                split16(_mm512_loadu_ps(a), &h0, &l0);
                split16(_mm512_loadu_ps(a + 16), &h1, &l1);
                _mm256_store_si256((__m256i *)h, h0), _mm256_store_si256((__m256i *)(h + 16), h1);
                _mm256_store_si256((__m256i *)l, l0), _mm256_store_si256((__m256i *)(l + 16), l1);
                for (int k2 = 0; k2 < 16; k2++) {
                    bh[k2 * 32 + 2 * j] = h[2 * k2], bh[k2 * 32 + 2 * j + 1] = h[2 * k2 + 1];
                    bl[k2 * 32 + 2 * j] = l[2 * k2], bl[k2 * 32 + 2 * j + 1] = l[2 * k2 + 1];
                }
            }
        }
    tiles_configure();
    for (int64_t rt = 0; rt < nrt; rt++) {
        for (int r = 0; r < 16; r++) {
            const uint16_t *wr = (const uint16_t *)((const char *)w + (size_t)(rt * 16 + r) * rb);
            for (int64_t s = 0; s < ns; s++) {
                uint16_t *ah = A + (size_t)s * 1024 + r * 32, *al = ah + 512;
                __m256i h0, l0, h1, l1;
                split16(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(wr + s * 32))), &h0, &l0);
                split16(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(wr + s * 32 + 16))), &h1, &l1);
                _mm256_storeu_si256((__m256i *)ah, h0), _mm256_storeu_si256((__m256i *)(ah + 16), h1);
                _mm256_storeu_si256((__m256i *)al, l0), _mm256_storeu_si256((__m256i *)(al + 16), l1);
            }
        }
        for (int64_t ct = 0; ct < nctp; ct += 2) {
            _tile_zero(0);
            _tile_zero(1);
            for (int64_t s = 0; s < ns; s++) {
                const uint16_t *ah = A + (size_t)s * 1024;
                const uint16_t *b0 = B + ((size_t)ct * ns + s) * 1024, *b1 = B + ((size_t)(ct + 1) * ns + s) * 1024;
                _tile_loadd(2, ah, 64);
                _tile_loadd(3, ah + 512, 64);
                _tile_loadd(4, b0, 64);
                _tile_loadd(5, b0 + 512, 64);
                _tile_loadd(6, b1, 64);
                _tile_loadd(7, b1 + 512, 64);
                _tile_dpbf16ps(0, 2, 4);
                _tile_dpbf16ps(0, 2, 5);
                _tile_dpbf16ps(0, 3, 4);
                _tile_dpbf16ps(0, 3, 5);
                _tile_dpbf16ps(1, 2, 6);
                _tile_dpbf16ps(1, 2, 7);
                _tile_dpbf16ps(1, 3, 6);
                _tile_dpbf16ps(1, 3, 7);
            }
            _Alignas(64) float C[2][16][16];
            _tile_stored(0, C[0], 64);
            _tile_stored(1, C[1], 64);
            for (int h = 0; h < 2; h++)
                for (int j = 0; j < 16 && (ct + h) * 16 + j < ncols; j++)
                    for (int r = 0; r < 16; r++) out[(size_t)((ct + h) * 16 + j) * ldo + rt * 16 + r] = C[h][r][j];
        }
    }
    _tile_release();
    free(B), free(A);
    if (nrows > nrt * 16)
        phiq_gemm_f16_f32_avx512(n, nrows - nrt * 16, ncols, out + nrt * 16, ldo, (const char *)w + (size_t)nrt * 16 * rb, rb,
                                 act, as);
    return 0;
}
