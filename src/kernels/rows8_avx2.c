/* rows8_avx2.c — the AVX2 mat-vec and gemm of Q4_0 over eight weight rows
 * at a time (dot_avx2.c keeps the one-row dot, which is also the tail).
 *
 * Why eight rows: without VNNI a 32-element block product is vpmaddubsw +
 * vpmaddwd into 8 int32 lanes, and the one-row kernels then spend as much
 * again on reducing, converting and scaling each row's lanes one block at a
 * time. Here the lanes of eight rows are folded by three vphaddd into one
 * register (row r's block total in lane (r & 1) * 4 + r / 2), so the
 * conversion, the scale (d_w of eight rows times d_y) and the float
 * multiply-add are one instruction each for eight rows, and the unpacking
 * of the nibbles serves up to four activation columns. As llama.cpp's
 * q4_0_8x8 repack, but on the file's own layout: rows are read in place.
 *
 * Q4_0's nibbles q in [0, 16) go into vpmaddubsw unsigned; the -8 is taken
 * off as 8 * (sum of the activation block), precomputed once per column
 * (prep below), so every integer sum is exact and only the float order of
 * the per-block multiply-adds differs from the scalar reference. */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dot.h"
#include "kernels/kq_x86.h"
#include "kernels/rows8_avx2.h"

enum { R8 = 8, BQ4 = sizeof(phiq_block_q4_0) };

/* An activation column prepared for the eight-row kernel: d_y of each block
 * as float and 8 * (sum of its 32 int8 values). */
typedef struct act_prep {
    const phiq_block_q8_0 *y;
    const float *d;
    const int32_t *s8;
} act_prep;

static void prep(const phiq_block_q8_0 *y, int64_t nb, float *d, int32_t *s8) {
    const __m256i ones = _mm256_set1_epi8(1);
    for (int64_t b = 0; b < nb; b++) {
        d[b] = _cvtsh_ss(y[b].d);
        /* 1 * y as u8 x s8 pairs, then pairs of pairs */
        __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(ones, _mm256_loadu_si256((const __m256i *)(const void *)y[b].qs)),
                                      _mm256_set1_epi16(1));
        __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
        s8[b] = 8 * _mm_cvtsi128_si32(h);
    }
}

static inline uint16_t ld16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* [row a's 16 bytes | row b's 16 bytes] */
static inline __m256i ld2(const uint8_t *a, const uint8_t *b) {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)a)),
                                   _mm_loadu_si128((const __m128i *)(const void *)b), 1);
}

/* One row pair's block product: lo/hi are the pair's low and high nibbles
 * ([row a | row b]), alo/ahi the activation's first and second 16 bytes in
 * both halves. Pair sums of the two halves fit int16 (2 * 15 * 127 * 2). */
static inline __m256i pair_dot(__m256i lo, __m256i hi, __m256i alo, __m256i ahi) {
    const __m256i s = _mm256_add_epi16(_mm256_maddubs_epi16(lo, alo), _mm256_maddubs_epi16(hi, ahi));
    return _mm256_madd_epi16(s, _mm256_set1_epi16(1));
}

/* acc[j] += (lanes as above) the dot of rows w .. w + 7 * rb with column j
 * over blocks [0, nb), for C <= 4 columns. */
static inline __attribute__((always_inline)) void q4_0_rows8(int64_t nb, const uint8_t *w, size_t rb,
                                                             const act_prep *a, __m256 acc[4], const int C,
                                                             const uint8_t *next) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *p = w + (size_t)b * BQ4;
        if (next) {
            /* the next eight rows, front to back, as one stream */
            const char *f = (const char *)next + (size_t)b * R8 * BQ4;
            _mm_prefetch(f, _MM_HINT_T0);
            _mm_prefetch(f + 64, _MM_HINT_T0);
            _mm_prefetch(f + 128, _MM_HINT_T0);
        }
        const __m128i h = _mm_setr_epi16((short)ld16(p), (short)ld16(p + 2 * rb), (short)ld16(p + 4 * rb),
                                         (short)ld16(p + 6 * rb), (short)ld16(p + rb), (short)ld16(p + 3 * rb),
                                         (short)ld16(p + 5 * rb), (short)ld16(p + 7 * rb));
        const __m256 dw = _mm256_cvtph_ps(h);
        __m256i lo[4], hi[4];
        for (int q = 0; q < 4; q++) {
            const __m256i v = ld2(p + 2 * q * rb + 2, p + (2 * q + 1) * rb + 2);
            lo[q] = _mm256_and_si256(v, m4);
            hi[q] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        }
        for (int j = 0; j < C; j++) {
            const int8_t *qs = a[j].y[b].qs;
            const __m256i alo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)qs));
            const __m256i ahi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(qs + 16)));
            const __m256i h0 = _mm256_hadd_epi32(pair_dot(lo[0], hi[0], alo, ahi), pair_dot(lo[1], hi[1], alo, ahi));
            const __m256i h1 = _mm256_hadd_epi32(pair_dot(lo[2], hi[2], alo, ahi), pair_dot(lo[3], hi[3], alo, ahi));
            const __m256i t = _mm256_sub_epi32(_mm256_hadd_epi32(h0, h1), _mm256_set1_epi32(a[j].s8[b]));
            acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), _mm256_mul_ps(dw, _mm256_set1_ps(a[j].d[b])), acc[j]);
        }
    }
}

/* Lane (r & 1) * 4 + r / 2 holds row r. */
static inline void store_rows8(__m256 v, float *out, size_t step) {
    float t[8];
    _mm256_storeu_ps(t, v);
    for (int r = 0; r < R8; r++) out[(size_t)r * step] = t[(r & 1) * 4 + r / 2];
}

/* Columns prepared on the stack up to this many blocks (n = 32768). */
enum { PREP_STACK_BLOCKS = 1024 };

void phiq_matvec_q4_0_avx2(int64_t n, int64_t nrows, float *out, const void *w, size_t rb, const void *act,
                           phiq_vec_dot_fn dot) {
    const int64_t nb = n / PHIQ_QK;
    if (nb > PREP_STACK_BLOCKS || nrows < R8) {
        phiq_matvec_rows(dot, n, nrows, out, w, rb, act);
        return;
    }
    float d[PREP_STACK_BLOCKS];
    int32_t s8[PREP_STACK_BLOCKS];
    prep(act, nb, d, s8);
    const act_prep a = {act, d, s8};
    const uint8_t *wp = w;
    int64_t r = 0;
    for (; r + R8 <= nrows; r += R8) {
        __m256 acc[4] = {_mm256_setzero_ps()};
        q4_0_rows8(nb, wp + (size_t)r * rb, rb, &a, acc, 1, r + 2 * R8 <= nrows ? wp + (size_t)(r + R8) * rb : NULL);
        store_rows8(acc[0], out + r, 1);
    }
    if (r < nrows) phiq_matvec_rows(dot, n, nrows - r, out + r, wp + (size_t)r * rb, rb, act);
}

void phiq_gemm_q4_0_avx2(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                         const void *act, size_t as, phiq_vec_dot_fn dot) {
    const int64_t nb = n / PHIQ_QK;
    float *d = malloc(sizeof(float) * (size_t)(nb * ncols));
    int32_t *s8 = malloc(sizeof(int32_t) * (size_t)(nb * ncols));
    if (!d || !s8 || nrows < R8) {
        free(d), free(s8);
        phiq_gemm_rows(dot, n, nrows, ncols, out, ldo, w, rb, act, as);
        return;
    }
    const char *ap = act;
    for (int64_t j = 0; j < ncols; j++) prep((const void *)(ap + (size_t)j * as), nb, d + j * nb, s8 + j * nb);
    const uint8_t *wp = w;
    const int64_t r8 = nrows / R8 * R8;
    for (int64_t j0 = 0; j0 < ncols; j0 += PHIQ_GEMM_COL_TILE) {
        const int64_t j1 = j0 + PHIQ_GEMM_COL_TILE < ncols ? j0 + PHIQ_GEMM_COL_TILE : ncols;
        for (int64_t r = 0; r < r8; r += R8) {
            const uint8_t *wr = wp + (size_t)r * rb;
            for (int64_t j = j0; j < j1; j += 4) {
                act_prep a[4];
                const int c = j1 - j < 4 ? (int)(j1 - j) : 4;
                for (int i = 0; i < c; i++)
                    a[i] = (act_prep){(const void *)(ap + (size_t)(j + i) * as), d + (j + i) * nb, s8 + (j + i) * nb};
                __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
                switch (c) {
                case 4: q4_0_rows8(nb, wr, rb, a, acc, 4, NULL); break;
                case 3: q4_0_rows8(nb, wr, rb, a, acc, 3, NULL); break;
                case 2: q4_0_rows8(nb, wr, rb, a, acc, 2, NULL); break;
                default: q4_0_rows8(nb, wr, rb, a, acc, 1, NULL); break;
                }
                for (int i = 0; i < c; i++) store_rows8(acc[i], out + (size_t)(j + i) * ldo + r, 1);
            }
        }
    }
    free(d), free(s8);
    if (r8 < nrows)
        phiq_gemm_rows(dot, n, nrows - r8, ncols, out + r8, ldo, wp + (size_t)r8 * rb, rb, act, as);
}
