/* rows8_avx2.c — the AVX2 kernels over eight weight rows at a time: the
 * mat-vecs of Q4_0 and Q8_0 and the gemms of Q4_0, Q8_0, Q4_K and Q6_K (dot_avx2.c
 * keeps the one-row dots, which also take the rows past the last group of
 * eight).
 *
 * Why eight rows: without VNNI a 32-element block product is vpmaddubsw +
 * vpmaddwd into 8 int32 lanes, and a one-row kernel then spends as much
 * again on reducing, converting and scaling those lanes, block by block.
 * With eight rows' block totals in the eight lanes of one register, the
 * conversion, the scale (eight rows' d_w times d_y) and the float
 * multiply-add are one instruction each for eight rows.
 *  - mat-vec (decode, memory-bound): the rows are read in place and three
 *    vphaddd fold the lanes; see rows8 (Q4_0 and Q8_0).
 *  - gemm (prefill, compute-bound): each group of eight rows is first
 *    packed (once per column tile) so that register g holds elements
 *    4g..4g+3 of all eight rows, one per int32 lane; a vpbroadcastd of the
 *    activation's matching four bytes then multiplies all eight rows and
 *    no horizontal add is needed; four activation columns share each
 *    weight load. As llama.cpp's q4_0_8x8 repack, but done per call, so the
 *    file's own layout stays the one in memory (and the one decode reads).
 *
 * Q4_0's nibbles q in [0, 16) go into vpmaddubsw unsigned; the -8 is taken
 * off as 8 * (the sum of the activation block), precomputed per column, so
 * every integer sum is exact and only the float order of the per-block
 * multiply-adds differs from the scalar reference. */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dot.h"
#include "kernels/kq_x86.h"
#include "kernels/rows8_avx2.h"

enum { R8 = 8, BQ4 = sizeof(phiq_block_q4_0) };

/* d_y of blocks [0, nb) as floats and 8 * (the sum of each block's 32
 * int8 values): what Q4_0's unsigned nibbles need from an activation. */
static void prep(const phiq_block_q8_0 *y, int64_t nb, float *d, int32_t *s8) {
    const __m256i ones = _mm256_set1_epi8(1);
    for (int64_t b = 0; b < nb; b++) {
        d[b] = _cvtsh_ss(y[b].d);
        /* 1 * y as u8 x s8 pairs, then pairs of pairs */
        const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(ones, _mm256_loadu_si256((const __m256i *)(const void *)y[b].qs)),
                                            _mm256_set1_epi16(1));
        s8[b] = 8 * phiq_hsum8i(s);
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

/* ---- mat-vec: eight rows in place ------------------------------------------------------ */

/* One row pair's Q8_0 block product, [row a | row b] as pair_dot's: each
 * half through kq_x86.h's signed product on its own, since a pair of
 * products can reach 2 * 128 * 127. */
static inline __m256i pair_dot_q8(const uint8_t *a, const uint8_t *b, __m256i alo, __m256i ahi) {
    return _mm256_add_epi32(phiq_dot_ss8(ld2(a, b), alo), phiq_dot_ss8(ld2(a + 16, b + 16), ahi));
}

/* The dot of rows w .. w + 7 * rb with the activation y over blocks [0,
 * nb), row r in lane (r & 1) * 4 + r / 2. Each 128-bit half of a register
 * takes one row of a pair ([row a | row b]), against the activation's 16
 * bytes broadcast to both halves; the eight rows' scales are gathered once
 * per block and one conversion and multiply-add serve all eight. When next
 * is not NULL, the following eight rows are prefetched front to back, as
 * one stream: read as eight interleaved short streams, the rows defeat the
 * hardware prefetcher (bench-kernels, Q4_0: 9.9 GB/s on one thread with the
 * prefetch of each row ahead, 13.3 with this). Q4_0 (Q8 = 0) unpacks its
 * nibbles once per row pair and takes the -8 off as s8; Q8_0 (Q8 = 1) has
 * twice the bytes and no offset. */
static inline __attribute__((always_inline)) void rows8(int64_t nb, const uint8_t *w, size_t rb,
                                                        const phiq_block_q8_0 *y, const float *dy,
                                                        const int32_t *s8, const uint8_t *next, float out[8],
                                                        const int Q8) {
    const size_t bq = Q8 ? sizeof(phiq_block_q8_0) : BQ4;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *p = w + (size_t)b * bq;
        if (next) {
            const char *f = (const char *)next + (size_t)b * R8 * bq;
            _mm_prefetch(f, _MM_HINT_T0);
            _mm_prefetch(f + 64, _MM_HINT_T0);
            _mm_prefetch(f + 128, _MM_HINT_T0);
            if (Q8) {
                _mm_prefetch(f + 192, _MM_HINT_T0);
                _mm_prefetch(f + 256, _MM_HINT_T0);
            }
        }
        const __m128i h = _mm_setr_epi16((short)ld16(p), (short)ld16(p + 2 * rb), (short)ld16(p + 4 * rb),
                                         (short)ld16(p + 6 * rb), (short)ld16(p + rb), (short)ld16(p + 3 * rb),
                                         (short)ld16(p + 5 * rb), (short)ld16(p + 7 * rb));
        const __m256 dw = _mm256_cvtph_ps(h);
        const __m256i alo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)y[b].qs));
        const __m256i ahi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(y[b].qs + 16)));
        __m256i pr[4];
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            const uint8_t *ra = p + 2 * q * rb + 2, *rbp = p + (2 * q + 1) * rb + 2;
            if (Q8) {
                pr[q] = pair_dot_q8(ra, rbp, alo, ahi);
            } else {
                const __m256i v = ld2(ra, rbp);
                pr[q] = pair_dot(_mm256_and_si256(v, m4), _mm256_and_si256(_mm256_srli_epi16(v, 4), m4), alo, ahi);
            }
        }
        /* [r0 r2 r4 r6 | r1 r3 r5 r7] */
        __m256i t = _mm256_hadd_epi32(_mm256_hadd_epi32(pr[0], pr[1]), _mm256_hadd_epi32(pr[2], pr[3]));
        if (!Q8) t = _mm256_sub_epi32(t, _mm256_set1_epi32(s8[b]));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), _mm256_mul_ps(dw, _mm256_set1_ps(dy[b])), acc);
    }
    float t[8];
    _mm256_storeu_ps(t, acc);
    for (int r = 0; r < R8; r++) out[r] = t[(r & 1) * 4 + r / 2];
}

/* Columns prepared on the stack up to this many blocks (n = 32768). */
enum { PREP_STACK_BLOCKS = 1024 };

static inline __attribute__((always_inline)) void matvec8(int64_t n, int64_t nrows, float *out, const void *w,
                                                          size_t rb, const void *act, phiq_vec_dot_fn dot,
                                                          const int Q8) {
    const int64_t nb = n / PHIQ_QK;
    if (nb > PREP_STACK_BLOCKS || nrows < R8) {
        phiq_matvec_rows(dot, n, nrows, out, w, rb, act);
        return;
    }
    float d[PREP_STACK_BLOCKS];
    int32_t s8[PREP_STACK_BLOCKS];
    if (Q8) {
        const phiq_block_q8_0 *y = act;
        for (int64_t b = 0; b < nb; b++) d[b] = _cvtsh_ss(y[b].d);
    } else {
        prep(act, nb, d, s8);
    }
    const uint8_t *wp = w;
    int64_t r = 0;
    for (; r + R8 <= nrows; r += R8)
        rows8(nb, wp + (size_t)r * rb, rb, act, d, s8, r + 2 * R8 <= nrows ? wp + (size_t)(r + R8) * rb : NULL,
              out + r, Q8);
    if (r < nrows) phiq_matvec_rows(dot, n, nrows - r, out + r, wp + (size_t)r * rb, rb, act);
}

void phiq_matvec_q4_0_avx2(int64_t n, int64_t nrows, float *out, const void *w, size_t rb, const void *act,
                           phiq_vec_dot_fn dot) {
    matvec8(n, nrows, out, w, rb, act, dot, 0);
}
void phiq_matvec_q8_0_avx2(int64_t n, int64_t nrows, float *out, const void *w, size_t rb, const void *act,
                           phiq_vec_dot_fn dot) {
    matvec8(n, nrows, out, w, rb, act, dot, 1);
}

/* ---- gemm: eight rows packed once per column tile ------------------------------------ */

/* The packed form of one 32-element block of eight rows (PK bytes): eight
 * registers, register g holding elements 4g .. 4g+3 of rows 0..7 (row r in
 * int32 lane r), then the eight rows' d as floats. One vpbroadcastd of the
 * activation's bytes 4g .. 4g+3 then multiplies all eight rows, and the
 * products of each row stay in its own lane: no horizontal adds. Q4_0
 * stores the nibble values (unsigned), Q8_0 the signed bytes. */
enum { PK = 8 * 32 + 8 * 4 };

/* R[r] = row r's 32 element values (element i in byte i): lane g of row r
 * goes to lane r of register g, stored at pk. */
static inline void transpose8_store(__m256i R[8], uint8_t *pk) {
    __m256i t[8];
    for (int r = 0; r < R8; r += 2) {
        t[r] = _mm256_unpacklo_epi32(R[r], R[r + 1]);
        t[r + 1] = _mm256_unpackhi_epi32(R[r], R[r + 1]);
    }
    for (int h = 0; h < R8; h += 4) {
        R[h] = _mm256_unpacklo_epi64(t[h], t[h + 2]);
        R[h + 1] = _mm256_unpackhi_epi64(t[h], t[h + 2]);
        R[h + 2] = _mm256_unpacklo_epi64(t[h + 1], t[h + 3]);
        R[h + 3] = _mm256_unpackhi_epi64(t[h + 1], t[h + 3]);
    }
    __m256i *o = (__m256i *)(void *)pk;
    for (int g = 0; g < 4; g++) {
        _mm256_store_si256(o + g, _mm256_permute2x128_si256(R[g], R[g + 4], 0x20));
        _mm256_store_si256(o + g + 4, _mm256_permute2x128_si256(R[g], R[g + 4], 0x31));
    }
}

/* Rows w .. w + 7 * rb, blocks [0, nb), into pk (32-byte aligned). */
typedef void (*pack_fn)(int64_t nb, const uint8_t *w, size_t rb, uint8_t *pk);

static void pack_q4_0(int64_t nb, const uint8_t *w, size_t rb, uint8_t *pk) {
    for (int64_t b = 0; b < nb; b++, pk += PK) {
        const uint8_t *p = w + (size_t)b * sizeof(phiq_block_q4_0);
        __m256i R[8];
        for (int r = 0; r < R8; r++) {
            const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + r * rb + 2));
            R[r] = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1),
                                    _mm256_set1_epi8(0x0F));
        }
        transpose8_store(R, pk);
        float *dw = (float *)(void *)(pk + 256);
        for (int r = 0; r < R8; r++) dw[r] = _cvtsh_ss(ld16(p + r * rb));
    }
}

static void pack_q8_0(int64_t nb, const uint8_t *w, size_t rb, uint8_t *pk) {
    for (int64_t b = 0; b < nb; b++, pk += PK) {
        const uint8_t *p = w + (size_t)b * sizeof(phiq_block_q8_0);
        __m256i R[8];
        for (int r = 0; r < R8; r++) R[r] = _mm256_loadu_si256((const __m256i *)(const void *)(p + r * rb + 2));
        transpose8_store(R, pk);
        float *dw = (float *)(void *)(pk + 256);
        for (int r = 0; r < R8; r++) dw[r] = _cvtsh_ss(ld16(p + r * rb));
    }
}

static inline int32_t ld32(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Activations for the packed kernel, CG columns at a time: per block, the
 * CG columns' 32 int8 values (column j at 32 j), then their d_y as floats,
 * then 8 * (sum of the block) as int32 (AP bytes); columns past the last
 * are zero (their results are not stored). */
enum { CG = 4, AP = CG * 32 + CG * 4 + CG * 4 };

static void pack_act(int64_t nb, const char *act, size_t as, int c, uint8_t *ap) {
    for (int64_t b = 0; b < nb; b++, ap += AP) {
        memset(ap, 0, AP);
        for (int j = 0; j < c; j++) {
            const phiq_block_q8_0 *y = (const phiq_block_q8_0 *)(const void *)(act + (size_t)j * as) + b;
            float d;
            int32_t s8;
            prep(y, 1, &d, &s8);
            memcpy(ap + 32 * j, y->qs, 32);
            memcpy(ap + CG * 32 + 4 * j, &d, 4);
            memcpy(ap + CG * 36 + 4 * j, &s8, 4);
        }
    }
}

/* acc[j] (lane r = row r) += the packed rows' dot with packed column j.
 * Q4_0 (Q8 = 0): nibbles times y in vpmaddubsw, the eight partial
 * products of a row's block summed in int16 (8 * 2 * 15 * 128 fits), the
 * 8 * sum(y) taken off at the end. Q8_0 (Q8 = 1): |w| times y with w's
 * sign (a pair of products can reach 2 * 127 * 127, so each goes to int32
 * at once). The empty asm keeps GCC from re-associating the sums into a
 * tree whose 32 live products spill to the stack (it did: 90 -> 140 GOPS). */
typedef void (*packed_fn)(int64_t nb, const uint8_t *pk, const uint8_t *ap, __m256 acc[CG]);

static inline __attribute__((always_inline)) void packed32(int64_t nb, const uint8_t *pk, const uint8_t *ap,
                                                           __m256 acc[CG], const int Q8) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; b++, pk += PK, ap += AP) {
        const __m256i *wv = (const __m256i *)(const void *)pk;
        const int8_t *qs = (const int8_t *)ap;
        __m256i s[CG];
#pragma GCC unroll 8
        for (int j = 0; j < CG; j++) s[j] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            const __m256i wg = _mm256_load_si256(wv + g);
            const __m256i ug = Q8 ? _mm256_sign_epi8(wg, wg) : wg;
#pragma GCC unroll 8
            for (int j = 0; j < CG; j++) {
                const __m256i yg = _mm256_set1_epi32(ld32(qs + 32 * j + 4 * g));
                if (Q8)
                    s[j] = _mm256_add_epi32(s[j], _mm256_madd_epi16(_mm256_maddubs_epi16(ug, _mm256_sign_epi8(yg, wg)), ones));
                else
                    s[j] = _mm256_add_epi16(s[j], _mm256_maddubs_epi16(ug, yg));
                __asm__("" : "+x"(s[j]));
            }
        }
        const __m256 dw = _mm256_load_ps((const float *)(const void *)(pk + 256));
        const float *dy = (const float *)(const void *)(ap + CG * 32);
        const int32_t *s8 = (const int32_t *)(const void *)(ap + CG * 36);
#pragma GCC unroll 8
        for (int j = 0; j < CG; j++) {
            const __m256i t = Q8 ? s[j] : _mm256_sub_epi32(_mm256_madd_epi16(s[j], ones), _mm256_set1_epi32(s8[j]));
            acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), _mm256_mul_ps(dw, _mm256_set1_ps(dy[j])), acc[j]);
        }
    }
}
static void packed_q4_0(int64_t nb, const uint8_t *pk, const uint8_t *ap, __m256 acc[CG]) { packed32(nb, pk, ap, acc, 0); }
static void packed_q8_0(int64_t nb, const uint8_t *pk, const uint8_t *ap, __m256 acc[CG]) { packed32(nb, pk, ap, acc, 1); }

/* ---- K-quants: 256-element super-blocks against Q8_K ------------------------------------ */

/* Q8_K activations, CG columns per super-block (APK bytes): their 256 int8
 * values (column j at 256 j), d as floats (APK_D), the 16 bsums (int16) of
 * each (APK_BS: Q6_K's 16-element groups), then the 8 sums of 32 (int16,
 * APK_B32: Q4_K's sub-blocks); columns past the last are zero. */
enum { APK_D = CG * 256, APK_BS = APK_D + CG * 4, APK_B32 = APK_BS + CG * 32, APK = APK_B32 + CG * 16 };

static void pack_act_k(int64_t nb, const char *act, size_t as, int c, uint8_t *ap) {
    for (int64_t b = 0; b < nb; b++, ap += APK) {
        memset(ap, 0, APK);
        for (int j = 0; j < c; j++) {
            const phiq_block_q8_K *y = (const phiq_block_q8_K *)(const void *)(act + (size_t)j * as) + b;
            memcpy(ap + 256 * j, y->qs, 256);
            memcpy(ap + APK_D + 4 * j, &y->d, 4);
            memcpy(ap + APK_BS + 32 * j, y->bsums, 32);
            int16_t b32[8];
            for (int k = 0; k < 8; k++) b32[k] = (int16_t)(y->bsums[2 * k] + y->bsums[2 * k + 1]);
            memcpy(ap + APK_B32 + 16 * j, b32, 16);
        }
    }
}

/* The scales of eight rows, transposed: v[r] holds row r's 16 bytes; out[i]
 * gets byte 2i of rows 0..7 in its low 8 bytes and byte 2i+1 in its high
 * 8 (three rounds of byte, word and dword unpacks). */
static inline void transpose8x16(const __m128i v[8], __m128i out[8]) {
    __m128i a[8], c[8];
    for (int p = 0; p < 4; p++) /* rows 2p, 2p+1: bytes 0-7 as word pairs in a[p], 8-15 in a[4 + p] */
        a[p] = _mm_unpacklo_epi8(v[2 * p], v[2 * p + 1]), a[4 + p] = _mm_unpackhi_epi8(v[2 * p], v[2 * p + 1]);
    for (int h = 0; h < 2; h++)     /* bytes 8h .. 8h + 7 */
        for (int q = 0; q < 2; q++) { /* rows 4q .. 4q + 3: bytes 8h + 0-3 in c[4h + q], 8h + 4-7 in c[4h + 2 + q] */
            c[4 * h + q] = _mm_unpacklo_epi16(a[4 * h + 2 * q], a[4 * h + 2 * q + 1]);
            c[4 * h + 2 + q] = _mm_unpackhi_epi16(a[4 * h + 2 * q], a[4 * h + 2 * q + 1]);
        }
    for (int g = 0; g < 4; g++) { /* bytes 4g .. 4g + 3 of rows 0-3 in c[2g], of rows 4-7 in c[2g + 1] */
        out[2 * g] = _mm_unpacklo_epi32(c[2 * g], c[2 * g + 1]);
        out[2 * g + 1] = _mm_unpackhi_epi32(c[2 * g], c[2 * g + 1]);
    }
}

/* The eight bytes of t's half h as int32 lanes r (sign-extended when SIGNED). */
static inline __m256i widen8(__m128i t, int h, const int SIGNED) {
    if (h) t = _mm_srli_si128(t, 8);
    return SIGNED ? _mm256_cvtepi8_epi32(t) : _mm256_cvtepu8_epi32(t);
}

/* int16 pairs (a_r, b_r) in int32 lane r, from lanes of a and b. */
static inline __m256i pairs16(__m256i a, __m256i b) { return _mm256_blend_epi16(a, _mm256_slli_epi32(b, 16), 0xAA); }

/* Q4_K, eight rows of one super-block (PK4K bytes): the eight 32-element
 * sub-blocks as PK's eight registers each (nibble values), then per
 * sub-block its scale of each row as int16 pairs (s, s) (so vpmaddwd
 * scales a row's lane; PK4K_SC), per pair of sub-blocks u each row's mins
 * (m_2u, m_2u+1) (against the activation's sums of 32; PK4K_MN), then d
 * and dmin of each row as floats (PK4K_D, PK4K_DMIN). */
enum { PK4K_SC = 8 * 256, PK4K_MN = PK4K_SC + 8 * 32, PK4K_D = PK4K_MN + 4 * 32, PK4K_DMIN = PK4K_D + 32,
       PK4K = PK4K_DMIN + 32 };

static void pack_q4_K(int64_t nb, const uint8_t *w, size_t rb, uint8_t *pk) {
    for (int64_t b = 0; b < nb; b++, pk += PK4K) {
        const phiq_block_q4_K *x[8];
        __m128i sm[8], t[8];
        for (int r = 0; r < R8; r++) {
            x[r] = (const phiq_block_q4_K *)(const void *)(w + r * rb) + b;
            sm[r] = kq_scales(x[r]->scales);
        }
        transpose8x16(sm, t); /* sc_k of rows 0..7: t[k / 2] half k & 1; m_k: t[4 + k / 2] */
        for (int sb = 0; sb < 8; sb++) {
            __m256i R[8];
            for (int r = 0; r < R8; r++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(x[r]->qs + 32 * (sb / 2)));
                R[r] = _mm256_and_si256(sb & 1 ? _mm256_srli_epi16(v, 4) : v, _mm256_set1_epi8(0x0F));
            }
            transpose8_store(R, pk + 256 * sb);
            const __m256i sc = widen8(t[sb / 2], sb & 1, 0);
            _mm256_store_si256((__m256i *)(void *)(pk + PK4K_SC + 32 * sb), pairs16(sc, sc));
        }
        for (int u = 0; u < 4; u++)
            _mm256_store_si256((__m256i *)(void *)(pk + PK4K_MN + 32 * u),
                               pairs16(widen8(t[4 + u], 0, 0), widen8(t[4 + u], 1, 0)));
        float *dd = (float *)(void *)(pk + PK4K_D);
        for (int r = 0; r < R8; r++) dd[r] = _cvtsh_ss(x[r]->d), dd[8 + r] = _cvtsh_ss(x[r]->dmin);
    }
}

/* Q6_K, eight rows of one super-block (PK6K bytes): the eight 32-element
 * sub-blocks as PK's registers (unsigned 6-bit values; the -32 goes
 * through bsums), per 16-element group k its scale as pairs (s_k, s_k)
 * (PK6K_SC), per pair of groups t the pair (s_2t, s_2t+1) for the bsums
 * (PK6K_PAIRS), then d (PK6K_D). */
enum { PK6K_SC = 8 * 256, PK6K_PAIRS = PK6K_SC + 16 * 32, PK6K_D = PK6K_PAIRS + 8 * 32, PK6K = PK6K_D + 32 };

static void pack_q6_K(int64_t nb, const uint8_t *w, size_t rb, uint8_t *pk) {
    for (int64_t b = 0; b < nb; b++, pk += PK6K) {
        const phiq_block_q6_K *x[8];
        __m128i sv[8], t[8];
        for (int r = 0; r < R8; r++) {
            x[r] = (const phiq_block_q6_K *)(const void *)(w + r * rb) + b;
            sv[r] = _mm_loadu_si128((const __m128i *)(const void *)x[r]->scales);
        }
        transpose8x16(sv, t); /* s_k of rows 0..7: t[k / 2] half k & 1 (signed) */
        for (int h = 0; h < 2; h++) {
            __m256i q[8][4];
            for (int r = 0; r < R8; r++) phiq_q6_half(x[r], h, q[r]);
            for (int k = 0; k < 4; k++) {
                __m256i R[8];
                for (int r = 0; r < R8; r++) R[r] = q[r][k];
                transpose8_store(R, pk + 256 * (4 * h + k));
            }
        }
        for (int i = 0; i < 8; i++) {
            const __m256i s0 = widen8(t[i], 0, 1), s1 = widen8(t[i], 1, 1);
            _mm256_store_si256((__m256i *)(void *)(pk + PK6K_SC + 32 * (2 * i)), pairs16(s0, s0));
            _mm256_store_si256((__m256i *)(void *)(pk + PK6K_SC + 32 * (2 * i + 1)), pairs16(s1, s1));
            _mm256_store_si256((__m256i *)(void *)(pk + PK6K_PAIRS + 32 * i), pairs16(s0, s1));
        }
        float *dd = (float *)(void *)(pk + PK6K_D);
        for (int r = 0; r < R8; r++) dd[r] = _cvtsh_ss(x[r]->d);
    }
}

/* s[j] += the products of packed register group g0 .. g0 + cnt - 1 of one
 * sub-block (wv) with column j's matching bytes (qs + 4 g), in int16. */
static inline __attribute__((always_inline)) void sub16(const __m256i *wv, const int8_t *qs, int g0, int cnt,
                                                        __m256i s[CG], size_t col_stride) {
#pragma GCC unroll 8
    for (int g = g0; g < g0 + cnt; g++) {
        const __m256i wg = _mm256_load_si256(wv + g);
#pragma GCC unroll 8
        for (int j = 0; j < CG; j++) {
            s[j] = _mm256_add_epi16(s[j], _mm256_maddubs_epi16(wg, _mm256_set1_epi32(ld32(qs + col_stride * j + 4 * g))));
            __asm__("" : "+x"(s[j]));
        }
    }
}

/* Lane r: sum over t < cnt of pairs[t] (row r's int16 pair) times the
 * int16 sums 2t and 2t+1 of one column (bs). */
static inline __m256i bsum_dot(const uint8_t *pairs, const int8_t *bs, const int cnt) {
    __m256i m = _mm256_setzero_si256();
    for (int t = 0; t < cnt; t++)
        m = _mm256_add_epi32(m, _mm256_madd_epi16(_mm256_load_si256((const __m256i *)(const void *)(pairs + 32 * t)),
                                                  _mm256_set1_epi32(ld32(bs + 4 * t))));
    return m;
}

/* acc[j] (lane r = row r) += the packed Q4_K rows' dot with column j:
 * per sub-block the int16 sums (8 * 2 * 15 * 128 fits) times the row's
 * scale into int32, the mins against the bsums, one float step each per
 * super-block. */
static void packed_q4_K(int64_t nb, const uint8_t *pk, const uint8_t *ap, __m256 acc[CG]) {
    for (int64_t b = 0; b < nb; b++, pk += PK4K, ap += APK) {
        const int8_t *qs = (const int8_t *)ap;
        __m256i isum[CG];
#pragma GCC unroll 8
        for (int j = 0; j < CG; j++) isum[j] = _mm256_setzero_si256();
        for (int sb = 0; sb < 8; sb++) {
            __m256i s16[CG];
#pragma GCC unroll 8
            for (int j = 0; j < CG; j++) s16[j] = _mm256_setzero_si256();
            sub16((const __m256i *)(const void *)(pk + 256 * sb), qs + 32 * sb, 0, 8, s16, 256);
            const __m256i sc = _mm256_load_si256((const __m256i *)(const void *)(pk + PK4K_SC + 32 * sb));
#pragma GCC unroll 8
            for (int j = 0; j < CG; j++) isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(s16[j], sc));
        }
        const __m256 dw = _mm256_load_ps((const float *)(const void *)(pk + PK4K_D));
        const __m256 dmw = _mm256_load_ps((const float *)(const void *)(pk + PK4K_DMIN));
        const float *dy = (const float *)(const void *)(ap + APK_D);
#pragma GCC unroll 8
        for (int j = 0; j < CG; j++) {
            const __m256i msum = bsum_dot(pk + PK4K_MN, (const int8_t *)(ap + APK_B32 + 16 * j), 4);
            const __m256 vy = _mm256_set1_ps(dy[j]);
            acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_mul_ps(dw, vy), acc[j]);
            acc[j] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_mul_ps(dmw, vy), acc[j]);
        }
    }
}

/* Q6_K: a pair of products reaches 2 * 63 * 128, so int16 holds two
 * register groups; each 16-element group is scaled into int32, and the
 * -32 comes off as 32 * sum_k s_k * bsum_k. */
static void packed_q6_K(int64_t nb, const uint8_t *pk, const uint8_t *ap, __m256 acc[CG]) {
    for (int64_t b = 0; b < nb; b++, pk += PK6K, ap += APK) {
        const int8_t *qs = (const int8_t *)ap;
        __m256i isum[CG];
#pragma GCC unroll 8
        for (int j = 0; j < CG; j++) isum[j] = _mm256_setzero_si256();
        for (int sb = 0; sb < 8; sb++) {
            const __m256i *wv = (const __m256i *)(const void *)(pk + 256 * sb);
            for (int q = 0; q < 4; q++) {
                __m256i s16[CG];
#pragma GCC unroll 8
                for (int j = 0; j < CG; j++) s16[j] = _mm256_setzero_si256();
                sub16(wv, qs + 32 * sb, 2 * q, 2, s16, 256);
                const __m256i sc = _mm256_load_si256((const __m256i *)(const void *)(pk + PK6K_SC + 32 * (2 * sb + q / 2)));
#pragma GCC unroll 8
                for (int j = 0; j < CG; j++) isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(s16[j], sc));
            }
        }
        const __m256 dw = _mm256_load_ps((const float *)(const void *)(pk + PK6K_D));
        const float *dy = (const float *)(const void *)(ap + APK_D);
#pragma GCC unroll 8
        for (int j = 0; j < CG; j++) {
            const __m256i msum = bsum_dot(pk + PK6K_PAIRS, (const int8_t *)(ap + APK_BS + 32 * j), 8);
            const __m256i tot = _mm256_sub_epi32(isum[j], _mm256_slli_epi32(msum, 5));
            acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tot), _mm256_mul_ps(dw, _mm256_set1_ps(dy[j])), acc[j]);
        }
    }
}

/* ---- the gemm driver ------------------------------------------------------------------ */

/* What differs between the packed types: elements per block, packed bytes
 * per block (eight weight rows; CG activation columns) and the three steps. */
typedef struct packed_type {
    int64_t qk;
    size_t pk, ap;
    pack_fn pack;
    void (*pack_act)(int64_t nb, const char *act, size_t as, int c, uint8_t *ap);
    packed_fn kernel;
} packed_type;

static const packed_type PACKED_Q4_0 = {PHIQ_QK, PK, AP, pack_q4_0, pack_act, packed_q4_0};
static const packed_type PACKED_Q8_0 = {PHIQ_QK, PK, AP, pack_q8_0, pack_act, packed_q8_0};
static const packed_type PACKED_Q4_K = {PHIQ_QK_K, PK4K, APK, pack_q4_K, pack_act_k, packed_q4_K};
static const packed_type PACKED_Q6_K = {PHIQ_QK_K, PK6K, APK, pack_q6_K, pack_act_k, packed_q6_K};

/* Activation columns per tile: each group of eight weight rows is packed
 * once per tile. 256, not the generic gemm's 64 (PHIQ_GEMM_COL_TILE):
 * packing the K-quants was a sixth of a 128-token Q4_K_M prefill at 64
 * (perf: pack_q4_K + pack_q6_K 14% against 58% in their kernels), and a
 * tile's activations read from the last-level cache keep up with the
 * kernel (8 rows x 8192 x 256 products per 2.4 MB of ffn_down's columns).
 * Q4_K_M prefill of 128 tokens, 5 alternating runs: median 26.5 -> 29.0
 * tok/s; Q4_0 and Q8_0 (cheap packing) unchanged. */
#define PACK_COL_TILE 256
/* 32-byte aligned memory (aligned_alloc wants a size that is a multiple
 * of the alignment: APK is not). */
static void *alloc32(size_t n) { return aligned_alloc(32, (n + 31) & ~(size_t)31); }

static void gemm_packed(const packed_type *pt, int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo,
                        const void *w, size_t rb, const void *act, size_t as, phiq_vec_dot_fn dot) {
    const int64_t nb = n / pt->qk, ngroups = (ncols + CG - 1) / CG;
    uint8_t *apk = alloc32((size_t)ngroups * (size_t)nb * pt->ap);
    uint8_t *pk = alloc32((size_t)nb * pt->pk);
    if (!apk || !pk || nrows < R8) {
        free(apk), free(pk);
        phiq_gemm_rows(dot, n, nrows, ncols, out, ldo, w, rb, act, as);
        return;
    }
    const char *ap = act;
    for (int64_t gi = 0; gi < ngroups; gi++) {
        const int64_t j = gi * CG;
        pt->pack_act(nb, ap + (size_t)j * as, as, ncols - j < CG ? (int)(ncols - j) : CG,
                     apk + (size_t)gi * (size_t)nb * pt->ap);
    }
    const uint8_t *wp = w;
    const int64_t r8 = nrows / R8 * R8;
    /* column tiles of whole groups (PACK_COL_TILE) */
    const int64_t tile = PACK_COL_TILE / CG;
    for (int64_t g0 = 0; g0 < ngroups; g0 += tile) {
        const int64_t g1 = g0 + tile < ngroups ? g0 + tile : ngroups;
        for (int64_t r = 0; r < r8; r += R8) {
            pt->pack(nb, wp + (size_t)r * rb, rb, pk);
            for (int64_t gi = g0; gi < g1; gi++) {
                __m256 acc[CG];
                for (int i = 0; i < CG; i++) acc[i] = _mm256_setzero_ps();
                pt->kernel(nb, pk, apk + (size_t)gi * (size_t)nb * pt->ap, acc);
                const int64_t j = gi * CG;
                for (int i = 0; i < CG && j + i < ncols; i++) _mm256_storeu_ps(out + (size_t)(j + i) * ldo + r, acc[i]);
            }
        }
    }
    free(apk), free(pk);
    if (r8 < nrows)
        phiq_gemm_rows(dot, n, nrows - r8, ncols, out + r8, ldo, wp + (size_t)r8 * rb, rb, act, as);
}

#define GEMM_PACKED(name, PT)                                                                      \
    void phiq_gemm_##name##_avx2(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, \
                                 size_t rb, const void *act, size_t as, phiq_vec_dot_fn dot) {     \
        gemm_packed(&PT, n, nrows, ncols, out, ldo, w, rb, act, as, dot);                          \
    }
GEMM_PACKED(q4_0, PACKED_Q4_0)
GEMM_PACKED(q8_0, PACKED_Q8_0)
GEMM_PACKED(q4_K, PACKED_Q4_K)
GEMM_PACKED(q6_K, PACKED_Q6_K)
