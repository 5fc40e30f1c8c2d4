/* gemm_f16_amx.c — prompt-processing gemm for F16 weights on AMX-BF16
 * tiles with exact products. An f16 value v (11 significant bits) is the
 * exact sum of two bf16 values hi = bf16(v), lo = v - hi (<= 4 significant
 * bits left); the same holds for the f16-rounded activations. So
 *   w * a = whi*ahi + whi*alo + wlo*ahi + wlo*alo
 * with every product exact in f32, as in llama.cpp's F16 path (F16C
 * conversion then FP32 FMA); only the f32 summation order differs. Four
 * tdpbf16ps per 32-element step still beat the FP32 FMA bound several times.
 *
 * The activations are rounded to f16 and packed once per matmul
 * (phiq_gemm_f16_amx_pack, which the caller may split over threads by
 * column tile) into
 *   B: [ct][step][hi/lo][16 pair-rows x 16 cols x 2 bf16], 2 KiB per (ct, step),
 *      B[k/2][2j + k%2] = act_j[k]; columns past ncols are zero;
 * each caller's rows then only split their own weights, one 16-row tile at
 * a time, into
 *   A: [step][hi/lo][16 rows x 32 bf16] (caller's scratch, no malloc).
 * Tiles (16 rows x 64 bytes each): tmm0..3 = C for four column tiles
 * (16 x 16 f32, C[r][j]); tmm4/5 = A hi/lo; tmm6/7 = B hi/lo. Four
 * independent accumulators hide the tdpbf16ps latency.
 * Loop order: row blocks of RB row tiles; per block, K blocks of KB steps
 * (the block's B for all columns stays in L2 while the block's row tiles
 * pass; partial sums wait in scratch); per K block, row tiles. The next
 * row tile's A is split between the current tile's tile instructions, so
 * the weight loads and conversions overlap the TMUL work.
 * Rows short of a 16-row tile go to the AVX-512 FMA kernel. */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm_amx.h"
#include "kernels/gemm_f16.h"

static void tiles_configure(void) {
    phiq_amx_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.rows[t] = 16, cfg.colsb[t] = 64;
    _tile_loadconfig(&cfg);
}

/* 32 f16-representable floats (x0: elements 0-15, x1: 16-31) -> 32 bf16
 * hi = x truncated to bf16 and 32 bf16 lo = x - hi. Both exact: hi keeps
 * the top 8 of x's <= 11 significant bits, so x - hi (same sign, <= 3
 * bits) is exact in f32 and in bf16; the bf16 conversions of hi and lo
 * therefore round nothing. */
static inline void split32(__m512 x0, __m512 x1, __m512i *hi, __m512i *lo) {
    const __m512i m = _mm512_set1_epi32((int)0xFFFF0000u);
    __m512 h0 = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x0), m));
    __m512 h1 = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x1), m));
    __m512bh hb = _mm512_cvtne2ps_pbh(h1, h0), lb = _mm512_cvtne2ps_pbh(_mm512_sub_ps(x1, h1), _mm512_sub_ps(x0, h0));
    memcpy(hi, &hb, sizeof *hi);
    memcpy(lo, &lb, sizeof *lo);
}

/* Column tiles, padded to a multiple of 4 (the kernel's column group). */
static int64_t ctiles(int64_t ncols) { return (ncols + 63) / 64 * 4; }

int64_t phiq_gemm_f16_amx_packed_tiles(int64_t ncols) { return ctiles(ncols); }

size_t phiq_gemm_f16_amx_packed_size(int64_t n, int64_t ncols) {
    return (size_t)ctiles(ncols) * (size_t)(n / 32) * 2048;
}

void phiq_gemm_f16_amx_pack(int64_t n, int64_t ncols, int64_t ct0, int64_t ct1, const float *act, size_t as,
                            void *packed) {
    const int64_t ns = n / 32;
    uint16_t *B = packed;
    /* column j's 32 values of a step are 16 bf16 pairs: pair k2 goes to 32-bit slot k2*16 + j */
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(16));
    if (ct1 > ctiles(ncols)) ct1 = ctiles(ncols);
    for (int64_t ct = ct0; ct < ct1; ct++)
        for (int j = 0; j < 16; j++) {
            const int64_t col = ct * 16 + j;
            for (int64_t s = 0; s < ns; s++) {
                uint16_t *bh = B + ((size_t)ct * ns + s) * 1024, *bl = bh + 512;
                __m512i h = _mm512_setzero_si512(), l = _mm512_setzero_si512();
                if (col < ncols) {
                    const float *a = act + (size_t)col * as + s * 32;
                    split32(_mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_loadu_ps(a), _MM_FROUND_TO_NEAREST_INT)),
                            _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_loadu_ps(a + 16), _MM_FROUND_TO_NEAREST_INT)), &h, &l);
                }
                _mm512_i32scatter_epi32(bh + 2 * j, idx, h, 4);
                _mm512_i32scatter_epi32(bl + 2 * j, idx, l, 4);
            }
        }
}

/* Steps (32 elements) per K block: the block's B for all columns (nct x 64
 * KiB at 128 columns: 512 KiB) stays in L2 while every row tile of a
 * 256-row block passes, and one row tile's A block (64 KiB) is split just
 * before use. */
#define KB 32
/* Row tiles per row block: the block's C sums wait in scratch between K blocks. */
#define RB 16

size_t phiq_gemm_f16_amx_scratch_size(int64_t n, int64_t ncols) {
    (void)n;
    return (size_t)2 * KB * 2048 + (size_t)RB * (size_t)ctiles(ncols) * 1024;
}

/* Units of work, in order: row blocks of RB row tiles; within one, K blocks
 * of KB steps; within one, row tiles. Advances (*rt, *s0) to the next unit;
 * 0 after the last. */
static int next_unit(int64_t nrt, int64_t ns, int64_t *rt, int64_t *s0) {
    const int64_t rt0 = *rt / RB * RB, rt1 = rt0 + RB < nrt ? rt0 + RB : nrt;
    if (*rt + 1 < rt1) return ++*rt, 1;
    if (*s0 + KB < ns) return *rt = rt0, *s0 += KB, 1;
    if (rt1 < nrt) return *rt = rt1, *s0 = 0, 1;
    return 0;
}

/* Row r's 32 weights of step s (wr = the row) into A's hi/lo tiles for the
 * block's step si (A = one K block: [step][hi/lo][16 x 32]). */
static inline void pack_one(const uint16_t *wr, int64_t s, int64_t si, int r, uint16_t *A) {
    uint16_t *ah = A + (size_t)si * 1024 + r * 32;
    __m512i h, l;
    split32(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(wr + s * 32))),
            _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(wr + s * 32 + 16))), &h, &l);
    _mm512_store_si512(ah, h);
    _mm512_store_si512(ah + 512, l);
}

/* out[j*ldo + r] = C[r][j] (one 16 x 16 tile) for the valid columns. */
static void store_c(const float *C, int64_t col0, int64_t ncols, float *out, size_t ldo) {
    for (int j = 0; j < 16 && col0 + j < ncols; j++) {
        float *o = out + (size_t)(col0 + j) * ldo;
        for (int r = 0; r < 16; r++) o[r] = C[r * 16 + j];
    }
}

#define DP4(c, bh, bl)                                                                                                 \
    do {                                                                                                               \
        _tile_loadd(6, bh, 64);                                                                                        \
        _tile_loadd(7, bl, 64);                                                                                        \
        _tile_dpbf16ps(c, 4, 6);                                                                                       \
        _tile_dpbf16ps(c, 5, 6);                                                                                       \
        _tile_dpbf16ps(c, 4, 7);                                                                                       \
        _tile_dpbf16ps(c, 5, 7);                                                                                       \
    } while (0)

int phiq_gemm_f16_amx_packed(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                             const void *packed, void *scratch, const float *act, size_t as) {
    if (n <= 0 || n % 32 != 0) return -1;
    const int64_t ns = n / 32, nrt = nrows / 16, nct = ctiles(ncols);
    if (nrt == 0) return -1;
    if (ncols <= 0) return 0;
    const uint16_t *B = packed;
    uint16_t *Ab[2] = {scratch, (uint16_t *)scratch + (size_t)KB * 1024}; /* 2 x [KB][hi/lo][16 x 32] */
    float *Cs = (float *)(void *)(Ab[1] + (size_t)KB * 1024);             /* [RB][nct][16 x 16] */
    const size_t bstep = (size_t)ns * 1024;   /* uint16 per column tile */
    const int64_t ncg = (ncols + 63) / 64 * 4; /* column tiles holding columns, in groups of 4 */
    /* the first unit's A; every later unit's A is split while the previous unit's tiles run */
    for (int r = 0; r < 16; r++)
        for (int64_t s = 0; s < (KB < ns ? KB : ns); s++) pack_one((const uint16_t *)((const char *)w + (size_t)r * rb), s, s, r, Ab[0]);
    tiles_configure();
    int64_t rt = 0, s0 = 0;
    for (int more = 1, cur = 0; more; cur ^= 1) {
        const int64_t rt0 = rt / RB * RB, s1 = s0 + KB < ns ? s0 + KB : ns;
        int64_t nrt_ = rt, ns0 = s0;
        more = next_unit(nrt, ns, &nrt_, &ns0);
        /* the next unit's 16 rows x nsteps (row, step) pairs, spread evenly over this unit's iterations */
        const int64_t nsteps = more ? (ns0 + KB < ns ? KB : ns - ns0) : 0, units = 16 * nsteps;
        const int64_t iters = ncg / 4 * (s1 - s0);
        const char *nw = (const char *)w + (size_t)nrt_ * 16 * rb;
        /* and the unit after it asked for in L2 (a 64-byte line per row and
         * step), so that splitting it does not wait on memory */
        int64_t prt = nrt_, ps0 = ns0;
        const int pmore = more && next_unit(nrt, ns, &prt, &ps0);
        const int64_t psteps = pmore ? (ps0 + KB < ns ? KB : ns - ps0) : 0, punits = 16 * psteps;
        const char *pw = (const char *)w + (size_t)prt * 16 * rb + (size_t)ps0 * 64;
        int64_t pu = 0;
        const uint16_t *A = Ab[cur];
        uint16_t *An = Ab[cur ^ 1];
        float *C = Cs + (size_t)(rt - rt0) * nct * 256;
        int64_t i = 0, u = 0;
        for (int64_t ct = 0; ct < ncg; ct += 4) {
            float *c = C + (size_t)ct * 256;
            if (s0 == 0) {
                _tile_zero(0);
                _tile_zero(1);
                _tile_zero(2);
                _tile_zero(3);
            } else {
                _tile_loadd(0, c, 64);
                _tile_loadd(1, c + 256, 64);
                _tile_loadd(2, c + 512, 64);
                _tile_loadd(3, c + 768, 64);
            }
            const uint16_t *b = B + (size_t)ct * bstep;
            for (int64_t s = s0; s < s1; s++, i++) {
                const uint16_t *ah = A + (size_t)(s - s0) * 1024, *bs = b + (size_t)s * 1024;
                _tile_loadd(4, ah, 64);
                _tile_loadd(5, ah + 512, 64);
                DP4(0, bs, bs + 512);
                DP4(1, bs + bstep, bs + bstep + 512);
                for (const int64_t ue = (i + 1) * units / iters; u < ue; u++)
                    pack_one((const uint16_t *)(nw + (size_t)(u / nsteps) * rb), ns0 + u % nsteps, u % nsteps,
                             (int)(u / nsteps), An);
                for (const int64_t pe = (i + 1) * punits / iters; pu < pe; pu++)
                    _mm_prefetch(pw + (size_t)(pu / psteps) * rb + (size_t)(pu % psteps) * 64, _MM_HINT_T1);
                DP4(2, bs + 2 * bstep, bs + 2 * bstep + 512);
                DP4(3, bs + 3 * bstep, bs + 3 * bstep + 512);
            }
            _tile_stored(0, c, 64);
            _tile_stored(1, c + 256, 64);
            _tile_stored(2, c + 512, 64);
            _tile_stored(3, c + 768, 64);
        }
        /* a row block's last unit: its sums are complete */
        if (s1 == ns && (rt + 1 == nrt || (rt + 1) % RB == 0))
            for (int64_t t = rt0; t <= rt; t++)
                for (int64_t ct = 0; ct < ncg; ct++)
                    store_c(Cs + ((size_t)(t - rt0) * nct + ct) * 256, ct * 16, ncols, out + t * 16, ldo);
        rt = nrt_, s0 = ns0;
    }
    _tile_release();
    if (nrows > nrt * 16)
        phiq_gemm_f16_f32_avx512(n, nrows - nrt * 16, ncols, out + nrt * 16, ldo, (const char *)w + (size_t)nrt * 16 * rb,
                                 rb, act, as);
    return 0;
}

int phiq_gemm_f16_amx(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                      const float *act, size_t as) {
    if (n <= 0 || n % 32 != 0 || nrows < 16) return -1;
    void *B = aligned_alloc(64, phiq_gemm_f16_amx_packed_size(n, ncols));
    void *A = aligned_alloc(64, phiq_gemm_f16_amx_scratch_size(n, ncols));
    int rc = -1;
    if (B && A) {
        phiq_gemm_f16_amx_pack(n, ncols, 0, ctiles(ncols), act, as, B);
        rc = phiq_gemm_f16_amx_packed(n, nrows, ncols, out, ldo, w, rb, B, A, act, as);
    }
    free(B), free(A);
    return rc;
}
