/* gemm_float_avx2.c — the AVX2+FMA gemm of the float weight types (F32,
 * F16, BF16) for the AVX2 table: 4 weight rows x 3 activation columns of
 * register accumulators, each weight vector widened once for three
 * columns. The generic gemm it replaces ran one dot per (row, column),
 * two loads and conversions per FMA; prefill of F16/F32 models and the
 * f32 reference model of `phiq eval --ref` ran at that rate on CPUs without
 * AVX-512.
 *
 * The activation rows (the table's act type: F32, or F16/BF16 values) are
 * widened to f32 once per call, in column tiles of about 256 KiB so that a
 * tile stays in L2 while every group of four rows passes over it. */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dot.h"
#include "kernels/gemm_float_avx2.h"
#include "kernels/kq_x86.h"

enum { WT_F32, WT_F16, WT_BF16 };

static inline __m256 load_w(const uint8_t *p, int64_t k, const int wt) {
    if (wt == WT_F32) return _mm256_loadu_ps((const float *)(const void *)p + k);
    const __m128i h = _mm_loadu_si128((const __m128i *)(const void *)((const uint16_t *)(const void *)p + k));
    if (wt == WT_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static inline float load_w1(const uint8_t *p, int64_t k, const int wt) {
    if (wt == WT_F32) return ((const float *)(const void *)p)[k];
    uint16_t h;
    memcpy(&h, p + 2 * k, 2);
    if (wt == WT_F16) return _cvtsh_ss(h);
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* dst[0..n) = the n values at src as f32. */
static void widen(const uint8_t *src, int64_t n, const int wt, float *dst) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_w(src, i, wt));
    for (; i < n; i++) dst[i] = load_w1(src, i, wt);
}

/* out[c * ldo + r] (+)= dot over len of row r (at w + r * rb) and column c
 * (at a + c * ast), r < R, c < C; added to what is there when add. */
static inline __attribute__((always_inline)) void tile(int64_t len, const uint8_t *w, size_t rb, const float *a,
                                                       size_t ast, float *out, size_t ldo, const int R, const int C,
                                                       int add) {
    __m256 acc[4][3];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int c = 0; c < C; c++) acc[r][c] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= len; k += 8) {
        /* three activation vectors live, one weight vector at a time: 12
         * accumulators + 4 = the 16 ymm registers (4 weights live spilled) */
        __m256 av[3];
#pragma GCC unroll 3
        for (int c = 0; c < C; c++) av[c] = _mm256_loadu_ps(a + (size_t)c * ast + k);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const __m256 wv = _mm256_loadu_ps((const float *)(const void *)(w + (size_t)r * rb) + k);
#pragma GCC unroll 3
            for (int c = 0; c < C; c++) acc[r][c] = _mm256_fmadd_ps(wv, av[c], acc[r][c]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            const float *wr = (const float *)(const void *)(w + (size_t)r * rb);
            float s = phiq_hsum8(acc[r][c]);
            for (int64_t i = k; i < len; i++) s += wr[i] * a[(size_t)c * ast + i];
            out[(size_t)c * ldo + r] = add ? out[(size_t)c * ldo + r] + s : s;
        }
}

#define TILE_CASE(R, C)                                                                            \
    case (R) * 4 + (C): tile(len, w, rb, a, ast, out, ldo, R, C, add); break;

static void tile_any(int64_t len, const uint8_t *w, size_t rb, const float *a, size_t ast, float *out, size_t ldo,
                     int R, int C, int add) {
    switch (R * 4 + C) {
        TILE_CASE(4, 3) TILE_CASE(4, 2) TILE_CASE(4, 1)
        TILE_CASE(3, 3) TILE_CASE(3, 2) TILE_CASE(3, 1)
        TILE_CASE(2, 3) TILE_CASE(2, 2) TILE_CASE(2, 1)
        TILE_CASE(1, 3) TILE_CASE(1, 2) TILE_CASE(1, 1)
    default: break;
    }
}

/* ---- the outer-product form (eight columns or more) ---------------------------
 * Sixteen columns of activations packed k-major (ap[k][16]) so that each
 * k is two vector loads; six weight rows broadcast one element each: 6 x 2
 * accumulators, 8 loads per 12 FMAs and no horizontal sums, against the
 * dot form's 7 loads, 12 FMAs and 12 horizontal sums per tile. The
 * accumulators hold rows x columns transposed to out's layout (column-major
 * rows): a tile goes out through a 6 x 16 buffer, once per block of k. */
enum {
    OP_MR = 6,   /* weight rows per tile */
    OP_NR = 16,  /* columns per panel (two vectors) */
    OP_KB = 512, /* k per block: a panel is 32 KiB, six f32 weight rows 12 KiB (L1) */
    OP_NCB = 64, /* columns per block: four panels (128 KiB, L2) per pass of the weights */
    OP_KC = 64,  /* terms per register sum (see op_tile) */
};

/* tmp[r][c] = sum over k < kb of w row r (wr + r * wst) times column c of the
 * panel ap[k][c], r < R, c < 16. Each register sums OP_KC terms, then goes
 * into tmp: one chain over all of k (512 terms) lost a bit per doubling
 * against the dot form's eight lanes and moved the fixture's imatrix from
 * llama-imatrix's by 1.1e-4 (the dot form: 5.9e-5). */
static inline __attribute__((always_inline)) void op_tile(int64_t kb, const float *wr, size_t wst, const float *ap,
                                                          float *tmp, const int R) {
    for (int64_t k0 = 0; k0 < kb; k0 += OP_KC) {
        const int64_t k1 = k0 + OP_KC < kb ? k0 + OP_KC : kb;
        __m256 c0[OP_MR], c1[OP_MR];
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) c0[r] = c1[r] = _mm256_setzero_ps();
        for (int64_t k = k0; k < k1; k++) {
            const __m256 b0 = _mm256_load_ps(ap + k * OP_NR), b1 = _mm256_load_ps(ap + k * OP_NR + 8);
#pragma GCC unroll 6
            for (int r = 0; r < R; r++) {
                const __m256 v = _mm256_broadcast_ss(wr + (size_t)r * wst + k);
                c0[r] = _mm256_fmadd_ps(v, b0, c0[r]);
                c1[r] = _mm256_fmadd_ps(v, b1, c1[r]);
            }
        }
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            float *t = tmp + r * OP_NR;
            if (k0) {
                c0[r] = _mm256_add_ps(c0[r], _mm256_loadu_ps(t));
                c1[r] = _mm256_add_ps(c1[r], _mm256_loadu_ps(t + 8));
            }
            _mm256_storeu_ps(t, c0[r]);
            _mm256_storeu_ps(t + 8, c1[r]);
        }
    }
}

#define OP_CASE(R) \
    case R: op_tile(kb, wr, wst, ap, tmp, R); break;

static void op_tile_any(int64_t kb, const float *wr, size_t wst, const float *ap, float *tmp, int R) {
    switch (R) {
        OP_CASE(6) OP_CASE(5) OP_CASE(4) OP_CASE(3) OP_CASE(2) OP_CASE(1)
    default: break;
    }
}

/* out = W act for ncols >= 8 (see above); 0, or -1 without memory */
static int gemm_float_op(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                         const void *act, size_t as, const int wt) {
    const int64_t np = OP_NCB / OP_NR;
    float *ap = aligned_alloc(32, sizeof(float) * (size_t)(np * OP_KB * OP_NR));
    float *wf = wt == WT_F32 ? NULL : malloc(sizeof(float) * OP_MR * OP_KB);
    float *row = malloc(sizeof(float) * OP_KB); /* one activation column widened, before it is spread */
    float tmp[OP_MR * OP_NR];
    if (!ap || (wt != WT_F32 && !wf) || !row) {
        free(ap), free(wf), free(row);
        return -1;
    }
    const size_t esz = wt == WT_F32 ? 4 : 2;
    const char *act_b = act;
    for (int64_t c0 = 0; c0 < ncols; c0 += OP_NCB) {
        const int64_t c1 = c0 + OP_NCB < ncols ? c0 + OP_NCB : ncols;
        for (int64_t k0 = 0; k0 < n; k0 += OP_KB) {
            const int64_t kb = n - k0 < OP_KB ? n - k0 : OP_KB;
            /* the block's columns, k-major by panel; columns past c1 zero */
            for (int64_t p = 0; p < np; p++)
                for (int64_t j = 0; j < OP_NR; j++) {
                    const int64_t c = c0 + p * OP_NR + j;
                    float *dst = ap + p * OP_KB * OP_NR + j;
                    if (c < c1) {
                        widen((const uint8_t *)(act_b + (size_t)c * as) + (size_t)k0 * esz, kb, wt, row);
                        for (int64_t k = 0; k < kb; k++) dst[k * OP_NR] = row[k];
                    } else {
                        for (int64_t k = 0; k < kb; k++) dst[k * OP_NR] = 0.0f;
                    }
                }
            for (int64_t r0 = 0; r0 < nrows; r0 += OP_MR) {
                const int R = nrows - r0 < OP_MR ? (int)(nrows - r0) : OP_MR;
                const uint8_t *w0 = (const uint8_t *)w + (size_t)r0 * rb + (size_t)k0 * esz;
                const float *wr = (const float *)(const void *)w0;
                size_t wst = rb / sizeof(float);
                if (wf) {
                    for (int i = 0; i < R; i++) widen(w0 + (size_t)i * rb, kb, wt, wf + (size_t)i * OP_KB);
                    wr = wf, wst = OP_KB;
                }
                for (int64_t p = 0; p * OP_NR < c1 - c0; p++) {
                    op_tile_any(kb, wr, wst, ap + p * OP_KB * OP_NR, tmp, R);
                    const int64_t cp = c0 + p * OP_NR, nc = c1 - cp < OP_NR ? c1 - cp : OP_NR;
                    for (int64_t c = 0; c < nc; c++) {
                        float *o = out + (size_t)(cp + c) * ldo + r0;
                        if (k0 == 0)
                            for (int r = 0; r < R; r++) o[r] = tmp[r * OP_NR + c];
                        else
                            for (int r = 0; r < R; r++) o[r] += tmp[r * OP_NR + c];
                    }
                }
            }
        }
    }
    free(ap), free(wf), free(row);
    return 0;
}

/* Elements per pass over k: four f32 weight rows of it (16 KiB) stay in L1
 * while the tile's columns stream past (from L2 otherwise: 7 loads per 12
 * FMAs is more than L2 gives). A multiple of 8. */
enum { KB = 1024 };

static void gemm_float(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                       const void *act, size_t as, phiq_vec_dot_fn dot, const int wt) {
    if (ncols >= 8 && gemm_float_op(n, nrows, ncols, out, ldo, w, rb, act, as, wt) == 0) return;
    /* columns per tile: about 256 KiB of f32 activations, a multiple of 3 */
    int64_t ct = 65536 / (n > 0 ? n : 1) / 3 * 3;
    if (ct < 3) ct = 3;
    if (ct > 48) ct = 48;
    if (ct > ncols) ct = ncols;
    float *a = malloc(sizeof(float) * (size_t)(ct * n));
    /* F16/BF16 weight rows widened once per tile of columns and pass over
     * k: vcvtph2ps on every weight vector held a 4 x 3 tile to the F16
     * dot's rate */
    float *wf = wt == WT_F32 ? NULL : malloc(sizeof(float) * 4 * KB);
    if (!a || (wt != WT_F32 && !wf)) {
        free(a), free(wf);
        phiq_gemm_rows(dot, n, nrows, ncols, out, ldo, w, rb, act, as);
        return;
    }
    const uint8_t *wp = w;
    const char *ap = act;
    const size_t esz = wt == WT_F32 ? 4 : 2;
    for (int64_t c0 = 0; c0 < ncols; c0 += ct) {
        const int64_t c1 = c0 + ct < ncols ? c0 + ct : ncols;
        for (int64_t c = c0; c < c1; c++) widen((const uint8_t *)(ap + (size_t)c * as), n, wt, a + (c - c0) * n);
        for (int64_t k0 = 0; k0 < n; k0 += KB) {
            const int64_t len = n - k0 < KB ? n - k0 : KB;
            for (int64_t r = 0; r < nrows; r += 4) {
                const int R = nrows - r < 4 ? (int)(nrows - r) : 4;
                const uint8_t *wr = wp + (size_t)r * rb + (size_t)k0 * esz;
                size_t wrb = rb;
                if (wf) {
                    for (int i = 0; i < R; i++) widen(wr + (size_t)i * rb, len, wt, wf + (size_t)i * KB);
                    wr = (const uint8_t *)wf, wrb = sizeof(float) * KB;
                }
                for (int64_t c = c0; c < c1; c += 3) {
                    const int C = c1 - c < 3 ? (int)(c1 - c) : 3;
                    tile_any(len, wr, wrb, a + (c - c0) * n + k0, (size_t)n, out + (size_t)c * ldo + r, ldo, R, C, k0 > 0);
                }
            }
        }
    }
    free(a), free(wf);
}
void phiq_gemm_f32_avx2(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                        const void *act, size_t as, phiq_vec_dot_fn dot) {
    gemm_float(n, nrows, ncols, out, ldo, w, rb, act, as, dot, WT_F32);
}
void phiq_gemm_f16_avx2(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                        const void *act, size_t as, phiq_vec_dot_fn dot) {
    gemm_float(n, nrows, ncols, out, ldo, w, rb, act, as, dot, WT_F16);
}
void phiq_gemm_bf16_avx2(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                         const void *act, size_t as, phiq_vec_dot_fn dot) {
    gemm_float(n, nrows, ncols, out, ldo, w, rb, act, as, dot, WT_BF16);
}
