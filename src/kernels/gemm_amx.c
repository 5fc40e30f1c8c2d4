/* gemm_amx.c — prompt-processing GEMM on AMX-INT8 tiles for Q8_0, Q4_0,
 * IQ4_NL (x Q8_0), Q4_1 (x Q8_1) and the K-quants + IQ4_XS (x Q8_K). The "amx"
 * table is the AVX-512 table with these gemm entries replaced; decode keeps
 * the AVX-512 VNNI matvec (tile setup does not pay off for one row).
 *
 * One tdpbssd per 32-element block (every block has its own weight and
 * activation scale, so int32 sums cannot run across blocks):
 *   A (tmm1) = 16 weight rows x 32 int8   (Q8_0: loaded straight from the
 *              rows with their stride; others unpacked once per row tile)
 *   B (tmm2) = 8 x 64 bytes: the block of 16 activation rows in VNNI order,
 *              B[k/4][4j + k%4] = act_j[k]
 *   C (tmm0) = 16 x 16 int32, C[r][j]; stored and scaled with AVX-512:
 *              acc_r += float(C[r][.]) * dw[r] * dy[.]
 * Row tiles short of 16 rows go to the AVX-512 gemm.
 *
 * Two stages (gemm_amx.h): the activations are packed once per matmul
 * (phiq_gemm_amx_pack, split over threads by column tile), then each
 * thread's rows run against them (phiq_gemm_amx_run) with its own scratch
 * for the unpacked weights; the table's gemm entries do both in one call. */
#include <immintrin.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dot.h"
#include "kernels/gemm_amx.h"

#define F16(h) _cvtsh_ss(h)

static void tiles_configure(void) {
    phiq_amx_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    cfg.rows[0] = 16, cfg.colsb[0] = 64; /* C: 16 x 16 int32 */
    cfg.rows[1] = 16, cfg.colsb[1] = 32; /* A: 16 x 32 int8 */
    cfg.rows[2] = 8, cfg.colsb[2] = 64;  /* B: 8 x (16 x 4) int8 */
    cfg.rows[5] = 16, cfg.colsb[5] = 64; /* second C, A, B: two blocks in flight */
    cfg.rows[6] = 16, cfg.colsb[6] = 32;
    cfg.rows[7] = 8, cfg.colsb[7] = 64;
    _tile_loadconfig(&cfg);
}

/* The K-quant kernel's tiles: C in 0 and 5; A (16 x ks int8) in 1 and 6;
 * B (ks/4 x 64) in 2 and 7. */
static void tiles_configure_k(int ks) {
    phiq_amx_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    cfg.rows[0] = cfg.rows[5] = 16, cfg.colsb[0] = cfg.colsb[5] = 64;
    cfg.rows[1] = cfg.rows[6] = 16, cfg.colsb[1] = cfg.colsb[6] = (uint16_t)ks;
    cfg.rows[2] = cfg.rows[7] = (uint8_t)(ks / 4), cfg.colsb[2] = cfg.colsb[7] = 64;
    _tile_loadconfig(&cfg);
}

/* Q4_1 (x Q8_1) adds m_r * s_j per block: an outer product of the weight
 * mins and the activations' s = d * sum(q). IQ4_NL unpacks through its table. */
enum { WT_Q8_0, WT_Q4_0, WT_Q4_1, WT_IQ4_NL };

/* Packed activations of one column tile (Q8_0/Q8_1 activations, nb blocks):
 *   B  [nb][8 x 64 int8]: VNNI order, B[k/4][4j + k%4] = act_j[k]
 *   dy [nb][16] f32: activation scales d
 *   ys [nb][16] f32: Q8_1's s = d * sum(q) (0 for Q8_0)
 * zeros past ncols; nb * 640 bytes a tile. */
static size_t q8_tile_bytes(int64_t nb) { return (size_t)nb * 640; }

/* Asks for the next row tile's weights (16 rows of rowlen bytes) in L2, so
 * that they arrive while this tile's column tiles run. */
static inline void prefetch_rows(const char *w, size_t rb, size_t rowlen) {
    for (int r = 0; r < 16; r++)
        for (size_t off = 0; off < rowlen; off += 64) _mm_prefetch(w + (size_t)r * rb + off, _MM_HINT_T1);
}

static void pack_q8(int wt, int64_t n, int64_t ncols, int64_t ct0, int64_t ct1, const void *act, size_t as,
                    void *packed) {
    const int64_t nb = n / PHIQ_QK;
    const int q81 = wt == WT_Q4_1, absz = q81 ? (int)sizeof(phiq_block_q8_1) : (int)sizeof(phiq_block_q8_0),
              aqoff = q81 ? (int)offsetof(phiq_block_q8_1, qs) : (int)offsetof(phiq_block_q8_0, qs);
    for (int64_t ct = ct0; ct < ct1; ct++) {
        int8_t *B = (int8_t *)packed + (size_t)ct * q8_tile_bytes(nb);
        float *dy = (float *)(void *)(B + (size_t)nb * 512), *ys = dy + nb * 16;
        for (int64_t b = 0; b < nb; b++) {
            int8_t *dst = B + (size_t)b * 512;
            for (int j = 0; j < 16; j++) {
                const int64_t col = ct * 16 + j;
                if (col >= ncols) {
                    dy[b * 16 + j] = ys[b * 16 + j] = 0;
                    for (int kk = 0; kk < 8; kk++) memset(dst + kk * 64 + 4 * j, 0, 4);
                    continue;
                }
                const uint8_t *y = (const uint8_t *)act + (size_t)col * as + (size_t)b * absz;
                dy[b * 16 + j] = F16((uint16_t)(y[0] | y[1] << 8));
                ys[b * 16 + j] = q81 ? F16((uint16_t)(y[2] | y[3] << 8)) : 0;
                for (int kk = 0; kk < 8; kk++) memcpy(dst + kk * 64 + 4 * j, y + aqoff + 4 * kk, 4);
            }
        }
    }
}

/* Per-caller scratch: A [nb][16 x 32 int8] (weights unpacked, one row
 * tile), dw [nb][16], mw [nb][16] f32 (weight scales and Q4_1 mins). */
static size_t q8_scratch_bytes(int64_t nb) { return (size_t)nb * (512 + 64 + 64); }

/* always inlined so that each weight type gets its own copy with the
 * unpack / Q8_1 branches folded away */
static inline __attribute__((always_inline)) void run_q8(int wt, int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                   const void *packed, void *scratch) {
    const int bszs[] = {sizeof(phiq_block_q8_0), sizeof(phiq_block_q4_0), sizeof(phiq_block_q4_1),
                        sizeof(phiq_block_iq4_nl)}; /* by WT_ */
    const int64_t nb = n / PHIQ_QK, nrt = nrows / 16, nct = (ncols + 15) / 16;
    const int bsz = bszs[wt], q81 = wt == WT_Q4_1, unpack = wt != WT_Q8_0;
    const int qoff = q81 ? (int)offsetof(phiq_block_q4_1, qs) : (int)offsetof(phiq_block_q4_0, qs);
    int8_t *A = scratch;
    float *dw = (float *)(void *)(A + (size_t)nb * 512), *mw = dw + nb * 16;
    tiles_configure();
    _Alignas(64) int32_t C[16][16], C2[16][16];
    _Alignas(64) float res[16][16];
    for (int64_t rt = 0; rt < nrt; rt++) {
        const char *wr = (const char *)w + (size_t)rt * 16 * rb;
        if (rt + 1 < nrt) prefetch_rows(wr + 16 * rb, rb, (size_t)nb * bsz);
        for (int64_t b = 0; b < nb; b++)
            for (int r = 0; r < 16; r++) {
                const uint8_t *blk = (const uint8_t *)wr + (size_t)r * rb + b * bsz;
                dw[b * 16 + r] = F16((uint16_t)(blk[0] | blk[1] << 8));
                mw[b * 16 + r] = q81 ? F16((uint16_t)(blk[2] | blk[3] << 8)) : 0;
                if (unpack) {
                    __m128i v = _mm_loadu_si128((const __m128i *)(blk + qoff));
                    __m256i z = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
                    z = _mm256_and_si256(z, _mm256_set1_epi8(0x0F));
                    if (wt == WT_Q4_0) z = _mm256_sub_epi8(z, _mm256_set1_epi8(8));
                    if (wt == WT_IQ4_NL)
                        z = _mm256_shuffle_epi8(
                            _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)phiq_kvalues_iq4nl)), z);
                    _mm256_store_si256((__m256i *)(A + b * 512 + r * 32), z);
                }
            }
        for (int64_t ct = 0; ct < nct; ct++) {
            const int8_t *B = (const int8_t *)packed + (size_t)ct * q8_tile_bytes(nb);
            const float *dy = (const float *)(const void *)(B + (size_t)nb * 512), *ys = dy + nb * 16;
            __m512 acc[16];
            for (int r = 0; r < 16; r++) acc[r] = _mm512_setzero_ps();
            /* two blocks in flight (tiles 0-2 and 5-7): block b+1's tile
             * product runs while block b's sums are stored and scaled */
#define Q8_ISSUE(c, a, bt, blk)                                                                                        \
    do {                                                                                                               \
        _tile_zero(c);                                                                                                 \
        if (unpack) _tile_loadd(a, A + (blk) * 512, 32);                                                               \
        else _tile_loadd(a, wr + (blk) * sizeof(phiq_block_q8_0) + offsetof(phiq_block_q8_0, qs), (long)rb);                                                            \
        _tile_loadd(bt, B + (size_t)(blk) * 512, 64);                                                                  \
        _tile_dpbssd(c, a, bt);                                                                                        \
    } while (0)
#define Q8_SCALE(Cb, blk)                                                                                              \
    do {                                                                                                               \
        const __m512 dyv = _mm512_load_ps(dy + (blk) * 16);                                                            \
        for (int r = 0; r < 16; r++)                                                                                   \
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(Cb[r])),                                     \
                                     _mm512_mul_ps(dyv, _mm512_set1_ps(dw[(blk) * 16 + r])), acc[r]);                  \
        if (q81) {                                                                                                     \
            const __m512 sv = _mm512_load_ps(ys + (blk) * 16);                                                         \
            for (int r = 0; r < 16; r++) acc[r] = _mm512_fmadd_ps(sv, _mm512_set1_ps(mw[(blk) * 16 + r]), acc[r]);     \
        }                                                                                                              \
    } while (0)
            Q8_ISSUE(0, 1, 2, 0);
            for (int64_t b = 0; b < nb; b += 2) {
                if (b + 1 < nb) Q8_ISSUE(5, 6, 7, b + 1);
                _tile_stored(0, C, 64);
                Q8_SCALE(C, b);
                if (b + 1 < nb) {
                    if (b + 2 < nb) Q8_ISSUE(0, 1, 2, b + 2);
                    _tile_stored(5, C2, 64);
                    Q8_SCALE(C2, b + 1);
                }
            }
#undef Q8_ISSUE
#undef Q8_SCALE
            for (int r = 0; r < 16; r++) _mm512_store_ps(res[r], acc[r]);
            for (int j = 0; j < 16 && ct * 16 + j < ncols; j++)
                for (int r = 0; r < 16; r++) out[(size_t)(ct * 16 + j) * ldo + rt * 16 + r] = res[r][j];
        }
    }
    _tile_release();
}

/* ---- K-quants and IQ4_XS: weights unpacked per row tile into int8
 * sub-blocks (32 elements for Q4_K/Q5_K/IQ4_XS, 16 for Q6_K/Q3_K/Q2_K: one
 * tdpbssd per scale), each with a float scale d*sc per row; mins (Q4_K,
 * Q5_K, Q2_K) are applied with the activation bsums. */
enum { WT_Q4_K, WT_Q6_K, WT_Q5_K, WT_IQ4_XS, WT_Q3_K, WT_Q2_K, WT_KCOUNT };

static void unpack_q4_K(const phiq_block_q4_K *x, int64_t nsb, int r, int8_t *A, float *wsc, float *wmn) {
    for (int64_t i = 0; i < nsb; i++) {
        uint8_t sc[8], mn[8];
        phiq_k4_scale_min_all(x[i].scales, sc, mn);
        const float d = F16(x[i].d), dmin = F16(x[i].dmin);
        for (int c = 0; c < 4; c++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * c));
            const int64_t s0 = i * 8 + 2 * c;
            _mm256_store_si256((__m256i *)(A + (s0 * 16 + r) * 32), _mm256_and_si256(v, _mm256_set1_epi8(0x0F)));
            _mm256_store_si256((__m256i *)(A + ((s0 + 1) * 16 + r) * 32),
                               _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0F)));
        }
        for (int j = 0; j < 8; j++) wsc[(i * 8 + j) * 16 + r] = d * sc[j], wmn[(i * 8 + j) * 16 + r] = dmin * mn[j];
    }
}

static void unpack_q6_K(const phiq_block_q6_K *x, int64_t nsb, int r, int8_t *A, float *wsc) {
    for (int64_t i = 0; i < nsb; i++) {
        const float d = F16(x[i].d);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h, *qh = x[i].qh + 32 * h;
            _Alignas(64) int8_t e[128];
            for (int l = 0; l < 32; l++) {
                e[l] = (int8_t)(((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32);
                e[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                e[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                e[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
            for (int g = 0; g < 8; g++) {
                const int64_t G = i * 16 + 8 * h + g;
                memcpy(A + (G * 16 + r) * 16, e + 16 * g, 16);
                wsc[G * 16 + r] = d * x[i].scales[8 * h + g];
            }
        }
    }
}

static void unpack_q5_K(const phiq_block_q5_K *x, int64_t nsb, int r, int8_t *A, float *wsc, float *wmn) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    for (int64_t i = 0; i < nsb; i++) {
        uint8_t sc[8], mn[8];
        phiq_k4_scale_min_all(x[i].scales, sc, mn);
        const float d = F16(x[i].d), dmin = F16(x[i].dmin);
        const __m256i qh = _mm256_loadu_si256((const __m256i *)x[i].qh);
        for (int c = 0; c < 4; c++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * c));
            __m256i h0 = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c)), one);
            __m256i h1 = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c + 1)), one);
            const int64_t s0 = i * 8 + 2 * c;
            _mm256_store_si256((__m256i *)(A + (s0 * 16 + r) * 32),
                               _mm256_or_si256(_mm256_and_si256(v, m4), _mm256_slli_epi16(h0, 4)));
            _mm256_store_si256((__m256i *)(A + ((s0 + 1) * 16 + r) * 32),
                               _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), _mm256_slli_epi16(h1, 4)));
        }
        for (int j = 0; j < 8; j++) wsc[(i * 8 + j) * 16 + r] = d * sc[j], wmn[(i * 8 + j) * 16 + r] = dmin * mn[j];
    }
}

static void unpack_iq4_xs(const phiq_block_iq4_xs *x, int64_t nsb, int r, int8_t *A, float *wsc) {
    const __m256i tab = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)phiq_kvalues_iq4nl));
    for (int64_t i = 0; i < nsb; i++) {
        const float d = F16(x[i].d);
        for (int ib = 0; ib < 8; ib++) {
            const int ls = ((x[i].scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf) | (((x[i].scales_h >> (2 * ib)) & 3) << 4);
            __m128i v = _mm_loadu_si128((const __m128i *)(x[i].qs + 16 * ib));
            __m256i z = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
            z = _mm256_shuffle_epi8(tab, _mm256_and_si256(z, _mm256_set1_epi8(0x0F)));
            _mm256_store_si256((__m256i *)(A + ((i * 8 + ib) * 16 + r) * 32), z);
            wsc[(i * 8 + ib) * 16 + r] = d * (ls - 32);
        }
    }
}

/* Q3_K / Q2_K: 2-bit planes (plus Q3_K's high bit), 16-element groups. */
static void unpack_q3_K(const phiq_block_q3_K *x, int64_t nsb, int r, int8_t *A, float *wsc) {
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1), k4 = _mm256_set1_epi8(4);
    for (int64_t i = 0; i < nsb; i++) {
        const float d = F16(x[i].d);
        const __m256i hm = _mm256_loadu_si256((const __m256i *)x[i].hmask);
        for (int h = 0; h < 2; h++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            for (int s2 = 0; s2 < 4; s2++) {
                __m256i v = _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * s2)), m3);
                __m256i hb = _mm256_and_si256(_mm256_srl_epi16(hm, _mm_cvtsi32_si128(4 * h + s2)), one);
                v = _mm256_sub_epi8(_mm256_or_si256(v, _mm256_slli_epi16(hb, 2)), k4);
                const int64_t g = i * 16 + 8 * h + 2 * s2;
                _mm_store_si128((__m128i *)(A + (g * 16 + r) * 16), _mm256_castsi256_si128(v));
                _mm_store_si128((__m128i *)(A + ((g + 1) * 16 + r) * 16), _mm256_extracti128_si256(v, 1));
            }
        }
        for (int g = 0; g < 16; g++) {
            const int lo = g < 8 ? (x[i].scales[g] & 0xF) : (x[i].scales[g - 8] >> 4);
            const int hi = (x[i].scales[8 + g % 4] >> (2 * (g / 4))) & 3;
            wsc[(i * 16 + g) * 16 + r] = d * ((lo | hi << 4) - 32);
        }
    }
}

static void unpack_q2_K(const phiq_block_q2_K *x, int64_t nsb, int r, int8_t *A, float *wsc, float *wmn) {
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int64_t i = 0; i < nsb; i++) {
        const float d = F16(x[i].d), dmin = F16(x[i].dmin);
        for (int h = 0; h < 2; h++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            for (int s2 = 0; s2 < 4; s2++) {
                __m256i v = _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * s2)), m3);
                const int64_t g = i * 16 + 8 * h + 2 * s2;
                _mm_store_si128((__m128i *)(A + (g * 16 + r) * 16), _mm256_castsi256_si128(v));
                _mm_store_si128((__m128i *)(A + ((g + 1) * 16 + r) * 16), _mm256_extracti128_si256(v, 1));
            }
        }
        for (int g = 0; g < 16; g++)
            wsc[(i * 16 + g) * 16 + r] = d * (x[i].scales[g] & 0xF), wmn[(i * 16 + g) * 16 + r] = dmin * (x[i].scales[g] >> 4);
    }
}

/* Packed activations of one column tile (Q8_K activations):
 *   B    [nsub][ks/4 x 64 int8]: VNNI order, per sub-block of ks elements
 *   dy   [nsb][16] f32: activation scales d per 256-element block
 *   ysum [nsub][16] f32: d * (sum of the sub-block's q), for the mins
 * zeros past ncols. */
static size_t k_tile_bytes(int64_t n, int ks) {
    return (size_t)n * 16 + (size_t)(n / PHIQ_QK_K) * 64 + (size_t)(n / ks) * 64;
}

static int k_sub(int wt) { return wt == WT_Q4_K || wt == WT_Q5_K || wt == WT_IQ4_XS ? 32 : 16; } /* elements per scale */

static void pack_k(int wt, int64_t n, int64_t ncols, int64_t ct0, int64_t ct1, const void *act, size_t as,
                   void *packed) {
    const int ks = k_sub(wt);
    const int64_t nsb = n / PHIQ_QK_K, nsub = n / ks;
    const size_t bsub = (size_t)ks * 16; /* bytes of one sub-block tile */
    for (int64_t ct = ct0; ct < ct1; ct++) {
        int8_t *B = (int8_t *)packed + (size_t)ct * k_tile_bytes(n, ks);
        float *dy = (float *)(void *)(B + (size_t)n * 16), *ysum = dy + nsb * 16;
        for (int j = 0; j < 16; j++) {
            const int64_t col = ct * 16 + j;
            const phiq_block_q8_K *y = col < ncols ? (const phiq_block_q8_K *)((const char *)act + (size_t)col * as) : NULL;
            for (int64_t i = 0; i < nsb; i++) {
                dy[i * 16 + j] = y ? y[i].d : 0;
                /* activation sums per sub-block (bsums are per 16), times d */
                for (int k = 0; k < PHIQ_QK_K / ks; k++) {
                    int sum = 0;
                    for (int t = 0; y && t < ks / 16; t++) sum += y[i].bsums[k * ks / 16 + t];
                    ysum[(i * (PHIQ_QK_K / ks) + k) * 16 + j] = y ? y[i].d * (float)sum : 0;
                }
            }
            for (int64_t sub = 0; sub < nsub; sub++) {
                int8_t *dst = B + (size_t)sub * bsub;
                for (int kk = 0; kk < ks / 4; kk++) {
                    if (y) memcpy(dst + kk * 64 + 4 * j, y[sub * ks / PHIQ_QK_K].qs + (sub * ks) % PHIQ_QK_K + 4 * kk, 4);
                    else memset(dst + kk * 64 + 4 * j, 0, 4);
                }
            }
        }
    }
}

/* Per-caller scratch: A [nsub][16 x ks int8] (one row tile unpacked),
 * wsc / wmn [nsub][16] f32 (sub-block scales d*sc and mins dmin*m). */
static size_t k_scratch_bytes(int64_t n, int ks) { return (size_t)n * 16 + (size_t)(n / ks) * 128; }

static inline __attribute__((always_inline)) void run_k(int wt, int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                  const void *packed, void *scratch) {
    const int ks = k_sub(wt);
    const int has_min = wt == WT_Q4_K || wt == WT_Q5_K || wt == WT_Q2_K;
    const int64_t nsb = n / PHIQ_QK_K, nsub = n / ks, nrt = nrows / 16, nct = (ncols + 15) / 16;
    const size_t bsub = (size_t)ks * 16;
    int8_t *A = scratch;
    float *wsc = (float *)(void *)(A + (size_t)n * 16), *wmn = wsc + nsub * 16;
    tiles_configure_k(ks);
    _Alignas(64) int32_t C[16][16], C2[16][16];
    _Alignas(64) float res[16][16];
    const int per_sb = PHIQ_QK_K / ks;
    for (int64_t rt = 0; rt < nrt; rt++) {
        if (rt + 1 < nrt) prefetch_rows((const char *)w + (size_t)(rt + 1) * 16 * rb, rb, rb);
        for (int r = 0; r < 16; r++) {
            const void *row = (const char *)w + (size_t)(rt * 16 + r) * rb;
            switch (wt) {
            case WT_Q4_K: unpack_q4_K(row, nsb, r, A, wsc, wmn); break;
            case WT_Q5_K: unpack_q5_K(row, nsb, r, A, wsc, wmn); break;
            case WT_Q6_K: unpack_q6_K(row, nsb, r, A, wsc); break;
            case WT_IQ4_XS: unpack_iq4_xs(row, nsb, r, A, wsc); break;
            case WT_Q3_K: unpack_q3_K(row, nsb, r, A, wsc); break;
            default: unpack_q2_K(row, nsb, r, A, wsc, wmn); break;
            }
        }
        for (int64_t ct = 0; ct < nct; ct++) {
            const int8_t *B = (const int8_t *)packed + (size_t)ct * k_tile_bytes(n, ks);
            const float *dy = (const float *)(const void *)(B + (size_t)n * 16), *ysum = dy + nsb * 16;
            __m512 acc[16];
            for (int r = 0; r < 16; r++) acc[r] = _mm512_setzero_ps();
            /* two sub-blocks in flight, as in run_q8 */
#define K_ISSUE(c, a, bt, sb)                                                                                          \
    do {                                                                                                               \
        _tile_zero(c);                                                                                                 \
        _tile_loadd(a, A + (sb) * bsub, ks);                                                                           \
        _tile_loadd(bt, B + (size_t)(sb) * bsub, 64);                                                                  \
        _tile_dpbssd(c, a, bt);                                                                                        \
    } while (0)
#define K_SCALE(Cb, sb)                                                                                                \
    do {                                                                                                               \
        const __m512 dyv = _mm512_load_ps(dy + ((sb) / per_sb) * 16);                                                  \
        for (int r = 0; r < 16; r++)                                                                                   \
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(Cb[r])),                                     \
                                     _mm512_mul_ps(dyv, _mm512_set1_ps(wsc[(sb) * 16 + r])), acc[r]);                  \
    } while (0)
            K_ISSUE(0, 1, 2, 0);
            for (int64_t sub = 0; sub < nsub; sub += 2) {
                if (sub + 1 < nsub) K_ISSUE(5, 6, 7, sub + 1);
                _tile_stored(0, C, 64);
                K_SCALE(C, sub);
                if (sub + 1 < nsub) {
                    if (sub + 2 < nsub) K_ISSUE(0, 1, 2, sub + 2);
                    _tile_stored(5, C2, 64);
                    K_SCALE(C2, sub + 1);
                }
            }
#undef K_ISSUE
#undef K_SCALE
            if (has_min)
                for (int64_t sub = 0; sub < nsub; sub++) {
                    const __m512 ys = _mm512_load_ps(ysum + sub * 16);
                    for (int r = 0; r < 16; r++) acc[r] = _mm512_fnmadd_ps(ys, _mm512_set1_ps(wmn[sub * 16 + r]), acc[r]);
                }
            for (int r = 0; r < 16; r++) _mm512_store_ps(res[r], acc[r]);
            for (int j = 0; j < 16 && ct * 16 + j < ncols; j++)
                for (int r = 0; r < 16; r++) out[(size_t)(ct * 16 + j) * ldo + rt * 16 + r] = res[r][j];
        }
    }
    _tile_release();
}

/* ---- the two-stage interface and the table entries ---- */

static phiq_gemm_fn g_fallback[PHIQ_GGML_TYPE_COUNT]; /* the AVX-512 gemm of each type */

/* family 0: Q8_0/Q8_1 activations (wt from the first enum); 1: Q8_K (second enum); -1: none */
static int amx_kind(int type, int *wt) {
    switch (type) {
    case PHIQ_GGML_TYPE_Q8_0: return *wt = WT_Q8_0, 0;
    case PHIQ_GGML_TYPE_Q4_0: return *wt = WT_Q4_0, 0;
    case PHIQ_GGML_TYPE_Q4_1: return *wt = WT_Q4_1, 0;
    case PHIQ_GGML_TYPE_IQ4_NL: return *wt = WT_IQ4_NL, 0;
    case PHIQ_GGML_TYPE_Q4_K: return *wt = WT_Q4_K, 1;
    case PHIQ_GGML_TYPE_Q5_K: return *wt = WT_Q5_K, 1;
    case PHIQ_GGML_TYPE_Q6_K: return *wt = WT_Q6_K, 1;
    case PHIQ_GGML_TYPE_IQ4_XS: return *wt = WT_IQ4_XS, 1;
    case PHIQ_GGML_TYPE_Q3_K: return *wt = WT_Q3_K, 1;
    case PHIQ_GGML_TYPE_Q2_K: return *wt = WT_Q2_K, 1;
    default: return *wt = -1, -1;
    }
}

int phiq_gemm_amx_supports(int wtype) {
    int wt;
    return amx_kind(wtype, &wt) >= 0;
}

static size_t tile_bytes(int wtype, int64_t n) {
    int wt;
    return amx_kind(wtype, &wt) == 0 ? q8_tile_bytes(n / PHIQ_QK) : k_tile_bytes(n, k_sub(wt));
}

size_t phiq_gemm_amx_packed_size(int wtype, int64_t n, int64_t ncols) {
    return (size_t)((ncols + 15) / 16) * tile_bytes(wtype, n);
}

size_t phiq_gemm_amx_scratch_size(int wtype, int64_t n) {
    int wt;
    return amx_kind(wtype, &wt) == 0 ? q8_scratch_bytes(n / PHIQ_QK) : k_scratch_bytes(n, k_sub(wt));
}

void phiq_gemm_amx_pack(int wtype, int64_t n, int64_t ncols, int64_t ct0, int64_t ct1, const void *act, size_t as,
                        void *packed) {
    int wt;
    const int fam = amx_kind(wtype, &wt);
    if (ct1 > (ncols + 15) / 16) ct1 = (ncols + 15) / 16;
    if (fam == 0) pack_q8(wt, n, ncols, ct0, ct1, act, as, packed);
    else if (fam == 1) pack_k(wt, n, ncols, ct0, ct1, act, as, packed);
}

void phiq_gemm_amx_run(int wtype, int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w,
                       size_t rb, const void *packed, void *scratch, const void *act, size_t as) {
    int wt;
    const int fam = amx_kind(wtype, &wt);
    const int64_t nrt = nrows / 16;
    const int64_t nr = nrt * 16;
    if (nrt > 0 && fam == 0) switch (wt) {
        case WT_Q8_0: run_q8(WT_Q8_0, n, nr, ncols, out, ldo, w, rb, packed, scratch); break;
        case WT_Q4_0: run_q8(WT_Q4_0, n, nr, ncols, out, ldo, w, rb, packed, scratch); break;
        case WT_Q4_1: run_q8(WT_Q4_1, n, nr, ncols, out, ldo, w, rb, packed, scratch); break;
        default: run_q8(WT_IQ4_NL, n, nr, ncols, out, ldo, w, rb, packed, scratch); break;
        }
    else if (nrt > 0 && fam == 1) switch (wt) {
        case WT_Q4_K: run_k(WT_Q4_K, n, nr, ncols, out, ldo, w, rb, packed, scratch); break;
        case WT_Q6_K: run_k(WT_Q6_K, n, nr, ncols, out, ldo, w, rb, packed, scratch); break;
        default: run_k(wt, n, nr, ncols, out, ldo, w, rb, packed, scratch); break;
        }
    if (nrows > nrt * 16)
        g_fallback[wtype](n, nrows - nrt * 16, ncols, out + nrt * 16, ldo, (const char *)w + (size_t)nrt * 16 * rb, rb,
                          act, as);
}

/* One call: packs into malloc'd scratch (the AVX-512 gemm when that fails
 * or there is no full row tile). */
static void gemm_once(int wtype, int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w,
                      size_t rb, const void *act, size_t as) {
    void *B = nrows >= 16 ? aligned_alloc(64, phiq_gemm_amx_packed_size(wtype, n, ncols)) : NULL;
    void *S = B ? aligned_alloc(64, phiq_gemm_amx_scratch_size(wtype, n)) : NULL;
    if (!S) {
        free(B);
        g_fallback[wtype](n, nrows, ncols, out, ldo, w, rb, act, as);
        return;
    }
    phiq_gemm_amx_pack(wtype, n, ncols, 0, (ncols + 15) / 16, act, as, B);
    phiq_gemm_amx_run(wtype, n, nrows, ncols, out, ldo, w, rb, B, S, act, as);
    free(B), free(S);
}

#define GM(name, TYPE)                                                                                     \
    static void gm_##name(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, \
                          size_t rb, const void *act, size_t as) {                                         \
        gemm_once(TYPE, n, nrows, ncols, out, ldo, w, rb, act, as);                                        \
    }
GM(q8_0, PHIQ_GGML_TYPE_Q8_0)
GM(q4_0, PHIQ_GGML_TYPE_Q4_0)
GM(q4_1, PHIQ_GGML_TYPE_Q4_1)
GM(iq4_nl, PHIQ_GGML_TYPE_IQ4_NL)
GM(q4_K, PHIQ_GGML_TYPE_Q4_K)
GM(q5_K, PHIQ_GGML_TYPE_Q5_K)
GM(q6_K, PHIQ_GGML_TYPE_Q6_K)
GM(iq4_xs, PHIQ_GGML_TYPE_IQ4_XS)
GM(q3_K, PHIQ_GGML_TYPE_Q3_K)
GM(q2_K, PHIQ_GGML_TYPE_Q2_K)

void phiq_kernels_init_amx(phiq_kernels *k) {
    phiq_kernels_init_avx512(k);
    k->isa = "amx";
    const struct { int type; phiq_gemm_fn fn; } g[] = {
        {PHIQ_GGML_TYPE_Q8_0, gm_q8_0}, {PHIQ_GGML_TYPE_Q4_0, gm_q4_0},     {PHIQ_GGML_TYPE_Q4_1, gm_q4_1},
        {PHIQ_GGML_TYPE_IQ4_NL, gm_iq4_nl}, {PHIQ_GGML_TYPE_Q4_K, gm_q4_K}, {PHIQ_GGML_TYPE_Q5_K, gm_q5_K},
        {PHIQ_GGML_TYPE_Q6_K, gm_q6_K}, {PHIQ_GGML_TYPE_IQ4_XS, gm_iq4_xs}, {PHIQ_GGML_TYPE_Q3_K, gm_q3_K},
        {PHIQ_GGML_TYPE_Q2_K, gm_q2_K},
    };
    for (size_t i = 0; i < sizeof g / sizeof *g; i++) {
        g_fallback[g[i].type] = k->gemm[g[i].type];
        k->gemm[g[i].type] = g[i].fn;
    }
}
