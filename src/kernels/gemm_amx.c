/* gemm_amx.c — prompt-processing GEMM on AMX-INT8 tiles for Q8_0 and Q4_0
 * weights times Q8_0 activations (the "amx" table = the AVX-512 table with
 * these two gemm entries replaced). Decode keeps the AVX-512 VNNI matvec:
 * tile setup does not pay off for one activation row.
 *
 * One tdpbssd per 32-element block (every block has its own weight and
 * activation scale, so int32 sums cannot run across blocks):
 *   A (tmm1) = 16 weight rows x 32 int8   (Q8_0: loaded straight from the
 *              rows with their stride; Q4_0: unpacked to q-8 once per row tile)
 *   B (tmm2) = 8 x 64 bytes: the block of 16 activation rows in VNNI order,
 *              B[k/4][4j + k%4] = act_j[k] (prepared once per call)
 *   C (tmm0) = 16 x 16 int32, C[r][j]; stored and scaled with AVX-512:
 *              acc_r += float(C[r][.]) * dw[r] * dy[.]
 * Row tiles short of 16 rows go to the AVX-512 gemm. */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dot.h"

#define F16(h) _cvtsh_ss(h)

typedef struct tilecfg {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

static phiq_gemm_fn g_fallback_q8_0, g_fallback_q4_0;

static void tiles_configure(void) {
    tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    cfg.rows[0] = 16, cfg.colsb[0] = 64; /* C: 16 x 16 int32 */
    cfg.rows[1] = 16, cfg.colsb[1] = 32; /* A: 16 x 32 int8 */
    cfg.rows[2] = 8, cfg.colsb[2] = 64;  /* B: 8 x (16 x 4) int8 */
    _tile_loadconfig(&cfg);
}

enum { WT_Q8_0, WT_Q4_0 };

static void gemm_amx(int wt, int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w,
                     size_t rb, const void *act, size_t as) {
    phiq_gemm_fn fallback = wt == WT_Q8_0 ? g_fallback_q8_0 : g_fallback_q4_0;
    const int64_t nb = n / PHIQ_QK, nrt = nrows / 16, nct = (ncols + 15) / 16;
    const int bsz = wt == WT_Q8_0 ? 34 : 18;
    int8_t *B = nrt ? aligned_alloc(64, (size_t)nct * nb * 512) : NULL;
    float *dy = nrt ? aligned_alloc(64, (size_t)nct * nb * 64) : NULL;
    int8_t *A = wt == WT_Q4_0 && nrt ? aligned_alloc(64, (size_t)nb * 512) : NULL;
    float *dw = nrt ? aligned_alloc(64, (size_t)nb * 64) : NULL;
    if (!B || !dy || !dw || (wt == WT_Q4_0 && !A)) {
        free(B), free(dy), free(A), free(dw);
        fallback(n, nrows, ncols, out, ldo, w, rb, act, as);
        return;
    }
    /* activations: VNNI-ordered blocks per 16-column tile, zero past ncols */
    for (int64_t ct = 0; ct < nct; ct++)
        for (int64_t b = 0; b < nb; b++) {
            int8_t *dst = B + ((size_t)ct * nb + b) * 512;
            float *d = dy + ((size_t)ct * nb + b) * 16;
            for (int j = 0; j < 16; j++) {
                const int64_t col = ct * 16 + j;
                if (col >= ncols) {
                    d[j] = 0;
                    for (int kk = 0; kk < 8; kk++) memset(dst + kk * 64 + 4 * j, 0, 4);
                    continue;
                }
                const phiq_block_q8_0 *y = (const phiq_block_q8_0 *)((const char *)act + (size_t)col * as) + b;
                d[j] = F16(y->d);
                for (int kk = 0; kk < 8; kk++) memcpy(dst + kk * 64 + 4 * j, y->qs + 4 * kk, 4);
            }
        }
    tiles_configure();
    _Alignas(64) int32_t C[16][16];
    _Alignas(64) float res[16][16];
    for (int64_t rt = 0; rt < nrt; rt++) {
        const char *wr = (const char *)w + (size_t)rt * 16 * rb;
        for (int64_t b = 0; b < nb; b++)
            for (int r = 0; r < 16; r++) {
                const uint8_t *blk = (const uint8_t *)wr + (size_t)r * rb + b * bsz;
                dw[b * 16 + r] = F16((uint16_t)(blk[0] | blk[1] << 8));
                if (wt == WT_Q4_0) {
                    __m128i v = _mm_loadu_si128((const __m128i *)(blk + 2));
                    __m256i z = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
                    z = _mm256_sub_epi8(_mm256_and_si256(z, _mm256_set1_epi8(0x0F)), _mm256_set1_epi8(8));
                    _mm256_store_si256((__m256i *)(A + b * 512 + r * 32), z);
                }
            }
        for (int64_t ct = 0; ct < nct; ct++) {
            __m512 acc[16];
            for (int r = 0; r < 16; r++) acc[r] = _mm512_setzero_ps();
            for (int64_t b = 0; b < nb; b++) {
                _tile_zero(0);
                if (wt == WT_Q8_0) _tile_loadd(1, wr + b * 34 + 2, (long)rb);
                else _tile_loadd(1, A + b * 512, 32);
                _tile_loadd(2, B + ((size_t)ct * nb + b) * 512, 64);
                _tile_dpbssd(0, 1, 2);
                _tile_stored(0, C, 64);
                const __m512 dyv = _mm512_load_ps(dy + ((size_t)ct * nb + b) * 16);
                for (int r = 0; r < 16; r++)
                    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(C[r])),
                                             _mm512_mul_ps(dyv, _mm512_set1_ps(dw[b * 16 + r])), acc[r]);
            }
            for (int r = 0; r < 16; r++) _mm512_store_ps(res[r], acc[r]);
            for (int j = 0; j < 16 && ct * 16 + j < ncols; j++)
                for (int r = 0; r < 16; r++) out[(size_t)(ct * 16 + j) * ldo + rt * 16 + r] = res[r][j];
        }
    }
    _tile_release();
    free(B), free(dy), free(A), free(dw);
    if (nrows > nrt * 16)
        fallback(n, nrows - nrt * 16, ncols, out + nrt * 16, ldo, (const char *)w + (size_t)nrt * 16 * rb, rb, act, as);
}

static void gm_q8_0(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                    const void *act, size_t as) {
    gemm_amx(WT_Q8_0, n, nrows, ncols, out, ldo, w, rb, act, as);
}

static void gm_q4_0(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                    const void *act, size_t as) {
    gemm_amx(WT_Q4_0, n, nrows, ncols, out, ldo, w, rb, act, as);
}

void phiq_kernels_init_amx(phiq_kernels *k) {
    phiq_kernels_init_avx512(k);
    k->isa = "amx";
    g_fallback_q8_0 = k->gemm[PHIQ_GGML_TYPE_Q8_0];
    g_fallback_q4_0 = k->gemm[PHIQ_GGML_TYPE_Q4_0];
    k->gemm[PHIQ_GGML_TYPE_Q8_0] = gm_q8_0;
    k->gemm[PHIQ_GGML_TYPE_Q4_0] = gm_q4_0;
}
