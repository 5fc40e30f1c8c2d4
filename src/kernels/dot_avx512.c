/* dot_avx512.c — AVX-512 (F/BW/VL/DQ) + VNNI kernels. Weight nibbles are
 * unpacked to unsigned bytes so that vpdpbusd (u8 x s8) does the int8 dot
 * directly; signed weights are shifted by +128 (Q4_0: kept as q, its -8
 * offset) and the shift is removed with a second vpdpbusd against a
 * constant, or through precomputed per-lane sums in the matvec. K-quant sub-block scales are applied in 16-bit with vpdpwssd
 * after vpmaddubsw (which cannot saturate here: |q| <= 63, |y| <= 127) in
 * the dots and mat-vecs; the gemms of Q4_0/Q4_1/IQ4_NL/Q8_0/Q4_K/Q6_K put
 * one block or sub-block per 32-bit lane instead and apply the scales in
 * float, once per lane (see "32-element gemm" and "Q4_K / Q6_K gemm").
 * Integer sums are exact, so results differ from the scalar reference only
 * by float summation order. Selected only when the CPU has AVX-512 VNNI;
 * types without a 512-bit kernel here keep the AVX2 ones. */
#include <immintrin.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "core/common.h"
#include "kernels/dot.h"
#include "kernels/kq_x86.h"

#define Q8_0_BYTES ((int)sizeof(phiq_block_q8_0))
#define Q8_1_BYTES ((int)sizeof(phiq_block_q8_1))

#define F16(h) _cvtsh_ss(h)

/* ---- helpers ---------------------------------------------------------------- */

/* Software prefetch PF_DIST bytes ahead of the weight stream: with one row
 * after another the hardware prefetcher alone left single-thread decode at
 * about half the read bandwidth (measured on Q4_K: 3.3-4.7 -> 7.6-8.2 GB/s). */
#define PF_DIST 2048
static inline void pf(const void *p, int lines) {
    for (int i = 0; i < lines; i++) _mm_prefetch((const char *)p + PF_DIST + 64 * i, _MM_HINT_T0);
}

/* Two 16-byte nibble arrays -> 64 bytes [a lo | a hi | b lo | b hi], i.e.
 * the elements of two 32-element blocks in natural order. */
static inline __m512i nibbles2(const uint8_t *a, const uint8_t *b) {
    __m256i ab = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)a)),
                                         _mm_loadu_si128((const __m128i *)b), 1);
    __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(ab), _mm256_srli_epi16(ab, 4), 1);
    z = _mm512_and_si512(z, _mm512_set1_epi8(0x0F));
    return _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
}

/* One 16-byte nibble array -> 32 bytes [lo | hi]. */
static inline __m256i nibbles1(const uint8_t *a) {
    __m128i v = _mm_loadu_si128((const __m128i *)a);
    __m256i z = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
    return _mm256_and_si256(z, _mm256_set1_epi8(0x0F));
}

static inline __m512i load2x32(const int8_t *a, const int8_t *b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}

/* [s0 x8 | s1 x8] */
static inline __m512 scale2(float s0, float s1) {
    return _mm512_insertf32x8(_mm512_set1_ps(s0), _mm256_set1_ps(s1), 1);
}

static inline int hsum256_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

static inline __m512i dpbusd(__m512i acc, __m512i u, __m512i s) { return _mm512_dpbusd_epi32(acc, u, s); }

/* ---- 32-element blocks × Q8_0 / Q8_1 ------------------------------------------ */

/* Shared skeleton: pairs of blocks through 512-bit registers, a last odd
 * block through 256 bits. UNPACK2/UNPACK1 give unsigned weight bytes; OFF is
 * the constant subtracted from them (0 for none). */
#define PAIR_DOT(name, WT, YT, UNPACK2, UNPACK1, OFF, EXTRA)                                       \
    static void name(int64_t n, float *s, const void *vx, const void *vy) {                        \
        const WT *x = vx;                                                                          \
        const YT *y = vy;                                                                          \
        const int64_t nb = n / PHIQ_QK;                                                            \
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();                             \
        const __m512i off = _mm512_set1_epi8(OFF);                                                 \
        float extra = 0;                                                                           \
        int64_t ib = 0;                                                                            \
        for (; ib + 4 <= nb; ib += 4) {                                                            \
            pf(x + ib, 2);                                                                         \
            __m512i q0 = UNPACK2(x + ib), q1 = UNPACK2(x + ib + 2);                                \
            __m512i y0 = load2x32(y[ib].qs, y[ib + 1].qs), y1 = load2x32(y[ib + 2].qs, y[ib + 3].qs); \
            __m512i d0 = dpbusd(_mm512_setzero_si512(), q0, y0);                                   \
            __m512i d1 = dpbusd(_mm512_setzero_si512(), q1, y1);                                   \
            if (OFF) {                                                                             \
                d0 = _mm512_sub_epi32(d0, dpbusd(_mm512_setzero_si512(), off, y0));                \
                d1 = _mm512_sub_epi32(d1, dpbusd(_mm512_setzero_si512(), off, y1));                \
            }                                                                                      \
            acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d0),                                         \
                                   scale2(F16(x[ib].d) * F16(y[ib].d), F16(x[ib + 1].d) * F16(y[ib + 1].d)), acc0); \
            acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d1),                                         \
                                   scale2(F16(x[ib + 2].d) * F16(y[ib + 2].d), F16(x[ib + 3].d) * F16(y[ib + 3].d)), acc1); \
            for (int k = 0; k < 4; k++) EXTRA(x[ib + k], y[ib + k]);                               \
        }                                                                                          \
        float tail = 0;                                                                            \
        for (; ib < nb; ib++) {                                                                    \
            __m256i q = UNPACK1(x + ib);                                                           \
            __m256i yy = _mm256_loadu_si256((const __m256i *)y[ib].qs);                            \
            __m256i d = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, yy);                        \
            if (OFF) d = _mm256_sub_epi32(d, _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(OFF), yy)); \
            tail += hsum256_epi32(d) * (F16(x[ib].d) * F16(y[ib].d));                              \
            EXTRA(x[ib], y[ib]);                                                                   \
        }                                                                                          \
        *s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + tail + extra;                       \
    }

#define NO_EXTRA(xb, yb) (void)0
#define MIN_EXTRA(xb, yb) (extra += F16((xb).m) * F16((yb).s))

/* Q4_0 / Q4_1: plain nibbles. */
#define Q4_U2(p) nibbles2((p)[0].qs, (p)[1].qs)
#define Q4_U1(p) nibbles1((p)->qs)
PAIR_DOT(dot_q4_0, phiq_block_q4_0, phiq_block_q8_0, Q4_U2, Q4_U1, 8, NO_EXTRA)
PAIR_DOT(dot_q4_1, phiq_block_q4_1, phiq_block_q8_1, Q4_U2, Q4_U1, 0, MIN_EXTRA)

/* Q8_0: x + 128 as unsigned (xor 0x80), offset 128 (0x80 as a byte). */
static inline __m512i q8_u2(const phiq_block_q8_0 *p) {
    return _mm512_xor_si512(load2x32(p[0].qs, p[1].qs), _mm512_set1_epi8((char)0x80));
}
static inline __m256i q8_u1(const phiq_block_q8_0 *p) {
    return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)p->qs), _mm256_set1_epi8((char)0x80));
}
PAIR_DOT(dot_q8_0, phiq_block_q8_0, phiq_block_q8_0, q8_u2, q8_u1, (char)0x80, NO_EXTRA)

/* IQ4_NL: table lookup of kvalues + 128 (unsigned), offset 128. */
static inline __m512i iq4_table512(void) {
    return _mm512_broadcast_i32x4(_mm_setr_epi8(1, 24, 45, 63, 79, 93, 106, 118, (char)129, (char)141, (char)153,
                                                (char)166, (char)181, (char)197, (char)217, (char)241));
}
#define IQ4_U2(p) _mm512_shuffle_epi8(iq4_table512(), nibbles2((p)[0].qs, (p)[1].qs))
#define IQ4_U1(p) _mm256_shuffle_epi8(_mm512_castsi512_si256(iq4_table512()), nibbles1((p)->qs))
PAIR_DOT(dot_iq4_nl, phiq_block_iq4_nl, phiq_block_q8_0, IQ4_U2, IQ4_U1, (char)0x80, NO_EXTRA)

/* ---- K-quants × Q8_K ------------------------------------------------------------ */

/* 16-bit lane index vectors: [2c x16 | 2c+1 x16] for chunk c of Q4_K/Q5_K. */
static inline __m512i idx_pairs(int c) {
    return _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * c)), _mm256_set1_epi16((short)(2 * c + 1)), 1);
}

/* Q4_K and Q5_K are one body: chunk c of a super-block gives 64 values
 * (32 low nibbles, then 32 high ones) in q; Q5_K's HIGH step ors in the
 * fifth bit (bit 2c of each qh byte for the low half, 2c+1 for the high). */
static inline __m512i k5_high(const uint8_t *qh, int c, __m512i q) {
    const __m256i h = _mm256_loadu_si256((const __m256i *)qh);
    const __m512i hz = _mm512_inserti64x4(_mm512_castsi256_si512(h), h, 1);
    const __m512i cnt = _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * c)), _mm256_set1_epi16((short)(2 * c + 1)), 1);
    return _mm512_or_si512(q, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hz, cnt), _mm512_set1_epi8(1)), 4));
}
#define Q4K_HIGH(xb, c, q) (q)
#define Q5K_HIGH(xb, c, q) k5_high((xb)->qh, c, q)

/* (acc - accm) summed to one float. */
static inline float k45_hsum(__m512 acc, __m256 accm) {
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
    a = _mm256_sub_ps(a, accm);
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    r = _mm_hadd_ps(r, r);
    r = _mm_hadd_ps(r, r);
    return _mm_cvtss_f32(r);
}

/* Chunk c's 64 values of super-block xb, nibbles only. */
#define K45_NIBBLES(xb, c)                                                                         \
    _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)((xb)->qs + 32 * (c)))), \
                                        _mm256_srli_epi16(_mm256_loadu_si256((const __m256i *)((xb)->qs + 32 * (c))), 4), 1), \
                     _mm512_set1_epi8(0x0F))

#define K45_DOT(name, BT, HIGH)                                                                    \
    static void name(int64_t n, float *s, const void *vx, const void *vy) {                        \
        const BT *x = vx;                                                                          \
        const phiq_block_q8_K *y = vy;                                                             \
        __m512 acc = _mm512_setzero_ps();                                                          \
        __m256 accm = _mm256_setzero_ps();                                                         \
        for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {                                              \
            pf(x + i, 3);                                                                          \
            const float d = F16(x[i].d) * y[i].d, dmin = F16(x[i].dmin) * y[i].d;                  \
            const __m128i scm = kq_scales(x[i].scales);                                            \
            const __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(scm)); /* sc_j in lanes 0..7 */ \
            accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(kq_minsum(scm, y[i].bsums)), _mm256_set1_ps(dmin), accm); \
            __m512i isum = _mm512_setzero_si512();                                                 \
            for (int c = 0; c < 4; c++) {                                                          \
                const __m512i q = HIGH(x + i, c, K45_NIBBLES(x + i, c));                           \
                const __m512i p = _mm512_maddubs_epi16(q, _mm512_loadu_si512(y[i].qs + 64 * c));   \
                isum = _mm512_dpwssd_epi32(isum, p, _mm512_permutexvar_epi16(idx_pairs(c), sc16)); \
            }                                                                                      \
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d), acc);               \
        }                                                                                          \
        *s = k45_hsum(acc, accm);                                                                  \
    }
K45_DOT(dot_q4_K, phiq_block_q4_K, Q4K_HIGH)
K45_DOT(dot_q5_K, phiq_block_q5_K, Q5K_HIGH)

/* 16-bit lane index vectors [4m x8 | 4m+1 x8 | 4m+2 x8 | 4m+3 x8]: the
 * scales of four 16-element groups over a 64-element register. */
static inline __m512i idx_quads(int m) {
    return _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)(4 * m))),
                                                       _mm_set1_epi16((short)(4 * m + 1)), 1)),
        _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)(4 * m + 2))), _mm_set1_epi16((short)(4 * m + 3)), 1),
        1);
}

/* Q6_K half h (128 values) as two registers of unsigned 6-bit values:
 * qlo = elements 0..63 (low nibbles of ql, qh bits shifted up by 4 / 2),
 * qhi = elements 64..127 (high nibbles, qh bits shifted down by 0 / 2). */
static inline void q6_half(const phiq_block_q6_K *xb, int h, __m512i *qlo, __m512i *qhi) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    const __m512i shl = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i shr = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
    const __m512i ql = _mm512_loadu_si512(xb->ql + 64 * h);
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(xb->qh + 32 * h));
    const __m512i qhz = _mm512_inserti64x4(_mm512_castsi256_si512(qh), qh, 1);
    *qlo = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(_mm512_sllv_epi16(qhz, shl), m30));
    *qhi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), _mm512_and_si512(_mm512_srlv_epi16(qhz, shr), m30));
}

/* Q6_K: 64 bytes of ql give elements 0..63 (low nibbles) and 64..127 (high
 * nibbles) of a 128-half; the two high bits come from qh shifted per half.
 * q is used unsigned (0..63) and the -32 is folded in through bsums. */
static void dot_q6_K(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_q6_K *x = vx;
    const phiq_block_q8_K *y = vy;
    __m512 acc = _mm512_setzero_ps();
    __m512i idx[4];
    for (int m = 0; m < 4; m++) idx[m] = idx_quads(m);
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {
        pf(x + i, 4);
        const float d = F16(x[i].d) * y[i].d;
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        const __m512i sc512 = _mm512_castsi256_si512(sc16);
        __m512i isum = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            __m512i qlo, qhi;
            q6_half(x + i, h, &qlo, &qhi);
            __m512i p0 = _mm512_maddubs_epi16(qlo, _mm512_loadu_si512(y[i].qs + 128 * h));
            __m512i p1 = _mm512_maddubs_epi16(qhi, _mm512_loadu_si512(y[i].qs + 128 * h + 64));
            isum = _mm512_dpwssd_epi32(isum, p0, _mm512_permutexvar_epi16(idx[2 * h], sc512));
            isum = _mm512_dpwssd_epi32(isum, p1, _mm512_permutexvar_epi16(idx[2 * h + 1], sc512));
        }
        /* -32 * sum_g sc_g * bsums_g */
        __m256i corr = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[i].bsums), sc16);
        isum = _mm512_sub_epi32(isum, _mm512_zextsi256_si512(_mm256_slli_epi32(corr, 5)));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d), acc);
    }
    *s = _mm512_reduce_add_ps(acc);
}


/* Q2_K: per 128-half, 32 bytes of qs hold four 2-bit planes (shifts 0,2,4,6)
 * of 32 consecutive elements each; two planes fill one register in order. */
static void dot_q2_K(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_q2_K *x = vx;
    const phiq_block_q8_K *y = vy;
    __m512 acc = _mm512_setzero_ps();
    __m256 accm = _mm256_setzero_ps();
    const __m512i m3 = _mm512_set1_epi8(3);
    const __m512i shA = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
    const __m512i shB = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
    __m512i idx[4];
    for (int m = 0; m < 4; m++) idx[m] = idx_quads(m);
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {
        pf(x + i, 2);
        const float dall = y[i].d * F16(x[i].d), dmin = y[i].d * F16(x[i].dmin);
        const __m128i raw = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(raw, _mm_set1_epi8(0x0F)));
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0F)));
        const __m512i sc512 = _mm512_castsi256_si512(sc16);
        accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[i].bsums), mn16)),
                               _mm256_set1_ps(dmin), accm);
        __m512i isum = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(q), q, 1);
            __m512i qa = _mm512_and_si512(_mm512_srlv_epi16(z, shA), m3);
            __m512i qb = _mm512_and_si512(_mm512_srlv_epi16(z, shB), m3);
            isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(qa, _mm512_loadu_si512(y[i].qs + 128 * h)),
                                       _mm512_permutexvar_epi16(idx[2 * h], sc512));
            isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(qb, _mm512_loadu_si512(y[i].qs + 128 * h + 64)),
                                       _mm512_permutexvar_epi16(idx[2 * h + 1], sc512));
        }
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(dall), acc);
    }
    *s = _mm512_reduce_add_ps(acc) - (_mm512_reduce_add_ps(_mm512_zextps256_ps512(accm)));
}

#define K45_X4(name, BT, HIGH)                                                                     \
    static void name(int64_t n, const void *vx, const void *const vy[4], float res[4]) {           \
        const BT *x = vx;                                                                          \
        const phiq_block_q8_K *y[4] = {vy[0], vy[1], vy[2], vy[3]};                                \
        __m512 acc[4];                                                                             \
        __m256 accm[4];                                                                            \
        for (int j = 0; j < 4; j++) acc[j] = _mm512_setzero_ps(), accm[j] = _mm256_setzero_ps();   \
        for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {                                              \
            const float xd = F16(x[i].d), xdmin = F16(x[i].dmin);                                  \
            const __m128i scm = kq_scales(x[i].scales);                                            \
            const __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(scm));                \
            __m512i isum[4];                                                                       \
            for (int j = 0; j < 4; j++) {                                                          \
                accm[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(kq_minsum(scm, y[j][i].bsums)),       \
                                          _mm256_set1_ps(xdmin * y[j][i].d), accm[j]);             \
                isum[j] = _mm512_setzero_si512();                                                  \
            }                                                                                      \
            for (int c = 0; c < 4; c++) {                                                          \
                const __m512i q = HIGH(x + i, c, K45_NIBBLES(x + i, c));                           \
                const __m512i scv = _mm512_permutexvar_epi16(idx_pairs(c), sc16);                  \
                for (int j = 0; j < 4; j++)                                                        \
                    isum[j] = _mm512_dpwssd_epi32(isum[j], _mm512_maddubs_epi16(q, _mm512_loadu_si512(y[j][i].qs + 64 * c)), scv); \
            }                                                                                      \
            for (int j = 0; j < 4; j++)                                                            \
                acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[j]), _mm512_set1_ps(xd * y[j][i].d), acc[j]); \
        }                                                                                          \
        for (int j = 0; j < 4; j++) res[j] = k45_hsum(acc[j], accm[j]);                            \
    }
/* Four activation columns at once for Q5_K's gemm: each weight super-block
 * is decoded once and multiplied into four Q8_K rows. */
K45_X4(dot_q5_K_x4, phiq_block_q5_K, Q5K_HIGH)

/* ---- float types -------------------------------------------------------------------- */

/* FLOAT_DOT(name, LOADX16, LOADY16, MASKX, MASKY): 64 elements per iteration
 * in four accumulators, then 16 at a time, then a masked tail. */
#define FLOAT_DOT(name, XT, YT, LX, LY, LXM, LYM)                                                  \
    static void name(int64_t n, float *s, const void *vx, const void *vy) {                        \
        const XT *x = vx;                                                                          \
        const YT *y = vy;                                                                          \
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                \
        int64_t i = 0;                                                                             \
        for (; i + 64 <= n; i += 64) {                                                             \
            pf(x + i, (int)(sizeof(XT) * 64 / 64));                                                \
            a0 = _mm512_fmadd_ps(LX(x + i), LY(y + i), a0);                                        \
            a1 = _mm512_fmadd_ps(LX(x + i + 16), LY(y + i + 16), a1);                              \
            a2 = _mm512_fmadd_ps(LX(x + i + 32), LY(y + i + 32), a2);                              \
            a3 = _mm512_fmadd_ps(LX(x + i + 48), LY(y + i + 48), a3);                              \
        }                                                                                          \
        for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(LX(x + i), LY(y + i), a0);               \
        if (i < n) {                                                                               \
            __mmask16 m = (__mmask16)((1u << (n - i)) - 1);                                        \
            a1 = _mm512_fmadd_ps(LXM(m, x + i), LYM(m, y + i), a1);                                \
        }                                                                                          \
        *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));    \
    }

#define LD_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define LDM_F16(m, p) _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (p)))
#define LD_BF16(p) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p))), 16))
#define LDM_BF16(m, p) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (p))), 16))
#define LD_F32(p) _mm512_loadu_ps(p)
#define LDM_F32(m, p) _mm512_maskz_loadu_ps(m, p)
FLOAT_DOT(dot_f16, uint16_t, uint16_t, LD_F16, LD_F16, LDM_F16, LDM_F16)
FLOAT_DOT(dot_f16_f32, uint16_t, float, LD_F16, LD_F32, LDM_F16, LDM_F32)
FLOAT_DOT(dot_bf16, uint16_t, uint16_t, LD_BF16, LD_BF16, LDM_BF16, LDM_BF16)
FLOAT_DOT(dot_f32, float, float, LD_F32, LD_F32, LDM_F32, LDM_F32)

/* F16 weights for gemm: one weight conversion feeds four activation rows. */
static void dot_f16_x4(int64_t n, const void *vx, const void *const vy[4], float res[4]) {
    const uint16_t *x = vx;
    const uint16_t *y[4] = {vy[0], vy[1], vy[2], vy[3]};
    __m512 acc[4];
    for (int j = 0; j < 4; j++) acc[j] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 w = LD_F16(x + i);
        for (int j = 0; j < 4; j++) acc[j] = _mm512_fmadd_ps(w, LD_F16(y[j] + i), acc[j]);
    }
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        const __m512 w = LDM_F16(m, x + i);
        for (int j = 0; j < 4; j++) acc[j] = _mm512_fmadd_ps(w, LDM_F16(m, y[j] + i), acc[j]);
    }
    for (int j = 0; j < 4; j++) res[j] = _mm512_reduce_add_ps(acc[j]);
}

/* ---- matvec for 32-element blocks with a prepared activation ----------------------
 *
 * The activation is the same for every row, so a matvec rearranges it once:
 * the int8 values are laid out as each row kernel loads them, the weight
 * offset (-8 for Q4_0, -128 for Q8_0 and IQ4_NL's biased table) is
 * pre-multiplied into per-lane int32 starting values of vpdpbusd, and the
 * activation scales are converted to float. Per row, the weight scales of 16
 * blocks come in with one gather. Nibble types use groups of 4 blocks:
 *   lo register = [b0 e0..15 | b1 e0..15 | b2 e0..15 | b3 e0..15]
 *   hi register = [b0 e16..31 | b1 e16..31 | ...]
 * so one vpdpbusd pair leaves block k's sum in int32 lanes 4k..4k+3. Q8_0
 * uses pairs of blocks in natural order (lanes 8k..8k+7). Blocks past the
 * last full group go through vec_dot on the original activation. */
#define PREP_MAXN 32768 /* Phi-4's n_ff is 17920: its down projection stays on the stack */
#define R64(x) (((size_t)(x) + 63) & ~(size_t)63)

typedef struct prep {
    int8_t *yq;   /* n bytes, in the row kernel's load order */
    int32_t *off; /* n/4 lanes: -offset * sum of the activation bytes each lane meets */
    float *dy;    /* n/32 activation scales */
    float *ys;    /* n/32 Q8_1 s values, for the weight-min term */
} prep;

static size_t prep_bytes(int64_t n) { return 2 * R64(n) + 2 * R64(n / 32 * 4); }

/* Carves the arrays out of buf (64-byte aligned, prep_bytes(n) long). */
static prep prep_at(char *buf, int64_t n) {
    prep p;
    p.yq = (int8_t *)buf;
    p.off = (int32_t *)(buf + R64(n));
    p.dy = (float *)(buf + 2 * R64(n));
    p.ys = (float *)(buf + 2 * R64(n) + R64(n / 32 * 4));
    return p;
}

enum { LAYOUT_NIB4, LAYOUT_PAIR };

static void prep_act(prep *p, int layout, int offset, const void *act, int is_q81, int64_t nb) {
    const int bs = is_q81 ? Q8_1_BYTES : Q8_0_BYTES, qoff = is_q81 ? (int)offsetof(phiq_block_q8_1, qs) : (int)offsetof(phiq_block_q8_0, qs);
    const uint8_t *a = act;
    /* only whole groups (4 blocks) or pairs; the rest goes through vec_dot */
    const int64_t nfull = layout == LAYOUT_NIB4 ? nb / 4 * 4 : nb / 2 * 2;
    for (int64_t b = 0; b < nfull; b++) {
        const uint8_t *blk = a + b * bs;
        const int8_t *q = (const int8_t *)(blk + qoff);
        p->dy[b] = F16((uint16_t)(blk[0] | blk[1] << 8));
        if (is_q81) p->ys[b] = F16((uint16_t)(blk[2] | blk[3] << 8));
        int8_t *dst = p->yq + 32 * b;
        if (layout == LAYOUT_NIB4) {
            int64_t g = b / 4, k = b % 4;
            dst = p->yq + 128 * g;
            memcpy(dst + 16 * k, q, 16);
            memcpy(dst + 64 + 16 * k, q + 16, 16);
        } else {
            memcpy(dst, q, 32);
        }
    }
    /* Lane L of a 64-byte register sums bytes 4L..4L+3; the starting value
     * of each lane is -offset times the activation bytes it will meet. */
    const __m512i ones = _mm512_set1_epi8(1);
    const int sh = offset == 8 ? 3 : offset == 16 ? 4 : 7;
    for (int64_t g = 0; g < nfull / (layout == LAYOUT_NIB4 ? 4 : 2); g++) {
        __m512i sum;
        if (layout == LAYOUT_NIB4)
            sum = dpbusd(dpbusd(_mm512_setzero_si512(), ones, _mm512_load_si512(p->yq + 128 * g)), ones,
                         _mm512_load_si512(p->yq + 128 * g + 64));
        else
            sum = dpbusd(_mm512_setzero_si512(), ones, _mm512_load_si512(p->yq + 64 * g));
        __m512i o = offset ? _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_sll_epi32(sum, _mm_cvtsi32_si128(sh)))
                           : _mm512_setzero_si512();
        _mm512_store_si512(p->off + 16 * g, o);
    }
}

/* Weight scales (fp16 at byte 0 of each block) of up to 16 blocks. */
static inline __m512 gather_d(const void *x, int stride, int fieldoff, __mmask16 m) {
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(stride));
    __m512i g = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, (const char *)x + fieldoff, 1);
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g));
}

/* The start of chunk c of a prepared row (blocks c .. c+15 of nb, bsz
 * bytes each from x), shared by the row kernels: *sc = each block's weight
 * scale times the prepared activation's scale; with has_m, *accm += the
 * Q4_1 min term m_w * s_y. Returns the chunk's block count. */
static inline __attribute__((always_inline)) int chunk_scales(const uint8_t *x, int bsz, int64_t nb, int64_t c,
                                                              const prep *p, int has_m, __m512 *sc, __m512 *accm) {
    const int cnt = nb - c < 16 ? (int)(nb - c) : 16;
    const __mmask16 mk = (__mmask16)((1u << cnt) - 1);
    const uint8_t *xc = x + c * bsz;
    *sc = _mm512_mul_ps(gather_d(xc, bsz, 0, mk), _mm512_maskz_loadu_ps(mk, p->dy + c));
    if (has_m) *accm = _mm512_fmadd_ps(gather_d(xc, bsz, 2, mk), _mm512_maskz_loadu_ps(mk, p->ys + c), *accm);
    return cnt;
}

static inline __m512i load4x16(const uint8_t *a, size_t stride) {
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)a));
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(a + stride)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(a + 2 * stride)), 2);
    return _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(a + 3 * stride)), 3);
}

/* One row of a nibble type (Q4_0, Q4_1, IQ4_NL) in groups of four blocks. */
static inline float row_nib4(const uint8_t *x, int bsz, int qoff, int has_m, int lut, const prep *p, int64_t ng) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), tab = iq4_table512();
    __m512 acc = _mm512_setzero_ps(), accm = _mm512_setzero_ps();
    const int64_t nb = ng * 4;
    for (int64_t c = 0; c < nb; c += 16) {
        __m512 sc;
        const int cnt = chunk_scales(x, bsz, nb, c, p, has_m, &sc, &accm);
        const uint8_t *xc = x + c * bsz;
        for (int g = 0; g < cnt / 4; g++) {
            const int64_t G = c / 4 + g;
            pf(xc + 4 * g * bsz, 2);
            __m512i v = load4x16(xc + 4 * g * bsz + qoff, bsz);
            __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            if (lut) lo = _mm512_shuffle_epi8(tab, lo), hi = _mm512_shuffle_epi8(tab, hi);
            __m512i d = _mm512_load_si512(p->off + 16 * G);
            d = dpbusd(d, lo, _mm512_load_si512(p->yq + 128 * G));
            d = dpbusd(d, hi, _mm512_load_si512(p->yq + 128 * G + 64));
            const __m512i ex = _mm512_add_epi32(_mm512_set1_epi32(4 * g),
                                                _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_permutexvar_ps(ex, sc), acc);
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc, accm)); /* accm: Q4_1 sum of m * s */
}

/* One row of Q8_0 in pairs of blocks. */
static inline float row_q8_0(const uint8_t *x, const prep *p, int64_t npairs) {
    __m512 acc = _mm512_setzero_ps();
    const int64_t nb = npairs * 2;
    const __m512i k80 = _mm512_set1_epi8((char)0x80);
    for (int64_t c = 0; c < nb; c += 16) {
        __m512 sc;
        const int cnt = chunk_scales(x, Q8_0_BYTES, nb, c, p, 0, &sc, NULL);
        const uint8_t *xc = x + c * Q8_0_BYTES;
        for (int q = 0; q < cnt / 2; q++) {
            const int64_t P = c / 2 + q;
            const uint8_t *b = xc + 2 * q * Q8_0_BYTES + offsetof(phiq_block_q8_0, qs);
            pf(b, 2);
            __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)b)),
                                           _mm256_loadu_si256((const __m256i *)(b + Q8_0_BYTES)), 1);
            __m512i d = dpbusd(_mm512_load_si512(p->off + 16 * P), _mm512_xor_si512(v, k80), _mm512_load_si512(p->yq + 64 * P));
            const __m512i ex = _mm512_add_epi32(_mm512_set1_epi32(2 * q),
                                                _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_permutexvar_ps(ex, sc), acc);
        }
    }
    return _mm512_reduce_add_ps(acc);
}

/* The prepared types: Q4_0, Q4_1, IQ4_NL (groups of 4 blocks), Q8_0 (pairs). */
enum { KIND_Q4_0, KIND_Q4_1, KIND_IQ4_NL, KIND_Q8_0, KIND_Q4_K, KIND_Q6_K }; /* K: the super-block gemm only */
static const int kind_bsz[] = {sizeof(phiq_block_q4_0), sizeof(phiq_block_q4_1), sizeof(phiq_block_iq4_nl),
                               sizeof(phiq_block_q8_0)},
                 kind_qoff[] = {offsetof(phiq_block_q4_0, qs), offsetof(phiq_block_q4_1, qs),
                                offsetof(phiq_block_iq4_nl, qs), offsetof(phiq_block_q8_0, qs)},
                 kind_off[] = {8, 0, 128, 128};

static void matvec_prepared(int kind, phiq_vec_dot_fn dot, int64_t n, int64_t nrows, float *out, const void *w,
                            size_t rb, const void *act) {
    const int64_t nb = n / PHIQ_QK;
    const int q81 = kind == KIND_Q4_1, unit = kind == KIND_Q8_0 ? 2 : 4;
    _Alignas(64) char sbuf[2 * PREP_MAXN + 2 * (PREP_MAXN / 8)];
    char *buf = n <= PREP_MAXN ? sbuf : aligned_alloc(64, prep_bytes(n)); /* big rows: heap */
    if (nb < unit || !buf) {
        phiq_matvec_rows(dot, n, nrows, out, w, rb, act);
        return;
    }
    prep p = prep_at(buf, n);
    prep_act(&p, kind == KIND_Q8_0 ? LAYOUT_PAIR : LAYOUT_NIB4, kind_off[kind], act, q81, nb);
    const int64_t done = nb / unit * unit;
    const size_t aoff = (size_t)done * (q81 ? Q8_1_BYTES : Q8_0_BYTES);
    const int bsz = kind_bsz[kind];
    for (int64_t r = 0; r < nrows; r++) {
        const uint8_t *x = (const uint8_t *)w + (size_t)r * rb;
        float v = kind == KIND_Q8_0 ? row_q8_0(x, &p, nb / 2)
                                    : row_nib4(x, bsz, kind_qoff[kind], q81, kind == KIND_IQ4_NL, &p, nb / 4);
        float t = 0;
        if (done < nb) dot((nb - done) * PHIQ_QK, &t, x + done * bsz, (const char *)act + aoff);
        out[r] = v + t;
    }
    if (buf != sbuf) free(buf);
}

#define MATVEC_PREPARED(name, KIND)                                                                \
    static void mv_##name(int64_t n, int64_t nrows, float *out, const void *w, size_t rb,          \
                          const void *act) {                                                       \
        matvec_prepared(KIND, dot_##name, n, nrows, out, w, rb, act);                              \
    }
MATVEC_PREPARED(q4_0, KIND_Q4_0)
MATVEC_PREPARED(q4_1, KIND_Q4_1)
MATVEC_PREPARED(iq4_nl, KIND_IQ4_NL)
MATVEC_PREPARED(q8_0, KIND_Q8_0)

/* ---- 32-element gemm over 16-block groups (up to 8 columns per weight decode) ----
 * The 16-byte nibble arrays of 16 blocks (for Q8_0: each 16-byte half of
 * the int8 array) are loaded as four registers (4 blocks each) and
 * transposed 4x4 in 32-bit lanes, so that lane L of every unpacked register
 * holds bytes of one block, T16_BLOCK(L): a column's 8 vpdpbusd then sum
 * whole blocks per lane, and one convert + one multiply by weight x
 * activation scale + one fma serve 16 blocks (a gemm in natural block order
 * pays a convert, a permute and an fma per 2 blocks); columns go 8 at a time, the
 * rest in one call of its own count, and long rows in passes of kg groups
 * whose records stay in L1 across the row tile (partial sums added in out). The activation is prepared in
 * the same lane order, zero-padded to whole groups, so any block count runs
 * here without a vec_dot tail. */
#define T16_BLOCK(L) (4 * ((L) % 4) + (L) / 4)
#define T16_MAXC 8
#define T16_L1 45056 /* bytes of column records a pass over the row tile keeps in L1 */

/* A column's prepared group, T16_REC bytes: yq (8 registers of 64 bytes),
 * off (-offset x the block's activation sum), dy, ys (Q8_1 s); each 8
 * columns of a column tile have their records interleaved by group
 * ([group][column]), so that the columns of one weight group are read as
 * one stream at fixed offsets (gemm_t16 lays them out). */
enum { T16_OFF = 512, T16_DY = 576, T16_YS = 640, T16_REC = 704 };

/* Register r (0..7) of a group: r < 4 holds elements 4r..4r+3 of each
 * block (low nibbles of qs dword r), r >= 4 elements 16+4(r-4).. (high).
 * col: the column's first record; gs: bytes from one group to the next. */
static void t16_prep(char *col, size_t gs, int offset, const void *act, int is_q81, int64_t nb) {
    const int bs = is_q81 ? Q8_1_BYTES : Q8_0_BYTES, qoff = is_q81 ? (int)offsetof(phiq_block_q8_1, qs) : (int)offsetof(phiq_block_q8_0, qs);
    for (int64_t g = 0; 16 * g < nb; g++) {
        char *rec = col + (size_t)g * gs;
        int32_t *off = (int32_t *)(void *)(rec + T16_OFF);
        float *dy = (float *)(void *)(rec + T16_DY), *ys = (float *)(void *)(rec + T16_YS);
        for (int L = 0; L < 16; L++) {
            const int64_t b = 16 * g + T16_BLOCK(L);
            char *dst = rec + 4 * L;
            if (b >= nb) {
                for (int r = 0; r < 8; r++) memset(dst + 64 * r, 0, 4);
                off[L] = 0, dy[L] = 0, ys[L] = 0;
                continue;
            }
            const uint8_t *blk = (const uint8_t *)act + b * bs;
            const int8_t *q = (const int8_t *)(blk + qoff);
            int32_t sum = 0;
            for (int e = 0; e < 32; e++) sum += q[e];
            for (int r = 0; r < 8; r++) memcpy(dst + 64 * r, q + (r < 4 ? 4 * r : 16 + 4 * (r - 4)), 4);
            off[L] = -offset * sum;
            dy[L] = F16((uint16_t)(blk[0] | blk[1] << 8));
            ys[L] = is_q81 ? F16((uint16_t)(blk[2] | blk[3] << 8)) : 0;
        }
    }
}

/* Chunk c of register i = the nibble array of block 4i+c (zero past cnt). */
static inline __m512i t16_load(const uint8_t *q, int bsz, int i, int cnt) {
    if (cnt == 16) return load4x16(q + 4 * i * bsz, bsz);
    __m512i v = _mm512_setzero_si512();
    for (int c = 0; c < 4 && 4 * i + c < cnt; c++)
        v = _mm512_mask_broadcast_i32x4(v, (__mmask16)(0xFu << (4 * c)), /* lane c; no immediate needed */
                                        _mm_loadu_si128((const __m128i *)(q + (4 * i + c) * bsz)));
    return v;
}

/* 4x4 transposes of 32-bit lanes in each 128-bit lane: lane 4c+p of r4[r]
 * = lane 4c+r of v[p]. */
static inline void tr4x4(const __m512i v[4], __m512i r4[4]) {
    const __m512i t0 = _mm512_unpacklo_epi32(v[0], v[1]), t1 = _mm512_unpackhi_epi32(v[0], v[1]),
                  t2 = _mm512_unpacklo_epi32(v[2], v[3]), t3 = _mm512_unpackhi_epi32(v[2], v[3]);
    r4[0] = _mm512_unpacklo_epi64(t0, t2), r4[1] = _mm512_unpackhi_epi64(t0, t2);
    r4[2] = _mm512_unpacklo_epi64(t1, t3), r4[3] = _mm512_unpackhi_epi64(t1, t3);
}

/* The 16-byte arrays at q of the group's blocks (bsz apart, cnt of them),
 * transposed 4x4 in 32-bit lanes: lane L of r4[r] = dword r of block
 * T16_BLOCK(L). */
static inline void t16_transpose(const uint8_t *q, int bsz, int cnt, __m512i r4[4]) {
    const __m512i v[4] = {t16_load(q, bsz, 0, cnt), t16_load(q, bsz, 1, cnt), t16_load(q, bsz, 2, cnt),
                          t16_load(q, bsz, 3, cnt)};
    tr4x4(v, r4);
}

/* One weight row against nc (1..8) prepared columns (records a, a + T16_REC,
 * ... of group 0; gs bytes per group); nc, bsz, has_m, lut and q8 are
 * constants at each call site, so the column loop unrolls. Nibble types
 * unpack each transposed register into a low and a high one; Q8_0 (q8)
 * transposes its two halves instead. */
static inline __attribute__((always_inline)) void row_t16(const uint8_t *x, int bsz, int qoff, int has_m, int lut, int q8,
                                                          const char *a, size_t gs, int nc, int64_t nb, int64_t g0, int64_t g1,
                                                          float *res) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), tab = iq4_table512(), k80 = _mm512_set1_epi8((char)0x80);
    const __m512i blk = _mm512_setr_epi32(T16_BLOCK(0), T16_BLOCK(1), T16_BLOCK(2), T16_BLOCK(3), T16_BLOCK(4),
                                          T16_BLOCK(5), T16_BLOCK(6), T16_BLOCK(7), T16_BLOCK(8), T16_BLOCK(9),
                                          T16_BLOCK(10), T16_BLOCK(11), T16_BLOCK(12), T16_BLOCK(13), T16_BLOCK(14),
                                          T16_BLOCK(15));
    const __m512i idx = _mm512_mullo_epi32(blk, _mm512_set1_epi32(bsz));
    __m512 acc[T16_MAXC], accm[T16_MAXC];
    for (int j = 0; j < nc; j++) acc[j] = accm[j] = _mm512_setzero_ps();
    for (int64_t g = g0; g < g1; g++) {
        const int cnt = nb - 16 * g < 16 ? (int)(nb - 16 * g) : 16;
        const uint8_t *xg = x + 16 * g * bsz;
        __m512i q[8];
        if (q8) { /* Q8_0: the two 16-byte halves of 32 int8, each transposed, biased to unsigned */
            pf(xg, 9);
            for (int h = 0; h < 2; h++) {
                __m512i r4[4];
                t16_transpose(xg + qoff + 16 * h, bsz, cnt, r4);
                for (int r = 0; r < 4; r++) q[4 * h + r] = _mm512_xor_si512(r4[r], k80);
            }
        } else {
            pf(xg, 5);
            __m512i r4[4];
            t16_transpose(xg + qoff, bsz, cnt, r4);
            for (int r = 0; r < 4; r++) {
                q[r] = _mm512_and_si512(r4[r], m4);
                q[4 + r] = _mm512_and_si512(_mm512_srli_epi16(r4[r], 4), m4);
                if (lut) q[r] = _mm512_shuffle_epi8(tab, q[r]), q[4 + r] = _mm512_shuffle_epi8(tab, q[4 + r]);
            }
        }
        const __mmask16 mk = _mm512_cmplt_epi32_mask(blk, _mm512_set1_epi32(cnt));
        const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(
            _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mk, idx, xg, 1)));
        const __m512 dm = has_m ? _mm512_cvtph_ps(_mm512_cvtepi32_epi16(
                                      _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mk, idx, xg + 2, 1)))
                                : _mm512_setzero_ps();
        const char *ag = a + (size_t)g * gs;
        for (int j = 0; j < nc; j++) {
            const char *y = ag + j * T16_REC;
            __m512i d = _mm512_load_si512(y + T16_OFF);
            for (int r = 0; r < 8; r++) d = dpbusd(d, q[r], _mm512_load_si512(y + 64 * r));
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(dw, _mm512_load_ps(y + T16_DY)), acc[j]);
            if (has_m) accm[j] = _mm512_fmadd_ps(dm, _mm512_load_ps(y + T16_YS), accm[j]);
        }
    }
    for (int j = 0; j < nc; j++) res[j] = _mm512_reduce_add_ps(_mm512_add_ps(acc[j], accm[j]));
}

/* ---- Q4_K / Q6_K gemm: whole sub-blocks in lanes (up to TK_MAXC columns per decode) ----
 * A super-block's 256 values, decoded into four registers in the order the
 * matvec has them (Q4_K: low and high nibbles of qs[0..63], then of
 * qs[64..127]; Q6_K: q6_half's qlo, qhi of each half), hold 16 runs of 16
 * values that share one sub-block scale (Q6_K: its 16 sub-blocks; Q4_K: the
 * two halves of each of its 8 sub-blocks), four dwords each at lanes
 * 4c..4c+3 of register p; tr4x4 puts run (p, c) into lane 4c+p of all four.
 * A Q6_K group is that super-block (4 registers, a sub-block per lane); a
 * Q4_K group is a pair of super-blocks, whose transposed registers are
 * recombined by 128-bit lanes (tk_pair) into 8 registers with one 32-value
 * sub-block per lane (lanes 0-7 the first super-block, 8-15 the second).
 * A column's vpdpbusd chain then leaves each sub-block's whole sum in one
 * lane, and one convert, one multiply of (d x sub-block scale) by d_y and
 * one fma serve the group (Q4_K's min term: one more fma of dmin x m
 * against the sub-block's activation sum x d_y). Q6_K's q is unsigned
 * (0..63): the -32 is the chain's starting value, -32 x the sub-block's
 * activation sum. The activation of each group is prepared once per column
 * tile by the same steps (record: the nreg registers, the starting values
 * or the sums x d_y, d_y per lane), records laid out as the 16-block
 * groups' are. */
#define TK_MAXC 16

static inline int tk_nreg(int q6) { return q6 ? 4 : 8; }
static inline size_t tk_rec(int q6) { return 64 * (size_t)tk_nreg(q6) + 128; }

/* Sub-block in lane L (0..7 for Q4_K: the same in lanes 8..15 of the
 * second super-block) of a group after tr4x4 (and tk_pair). */
static inline int tk_sub(int q6, int L) {
    const int p = L % 4, k = L / 4;
    return q6 ? 4 * p + k : 4 * (p / 2) + p % 2 + 2 * (k % 2);
}

/* Transposed registers a, b of two Q4_K super-blocks -> q: 128-bit lanes
 * [a0 a2 b0 b2] (first halves of sub-blocks), [a1 a3 b1 b3] (second). */
static inline void tk_pair(const __m512i a[4], const __m512i b[4], __m512i q[8]) {
    for (int r = 0; r < 4; r++) {
        q[r] = _mm512_shuffle_i32x4(a[r], b[r], _MM_SHUFFLE(2, 0, 2, 0));
        q[4 + r] = _mm512_shuffle_i32x4(a[r], b[r], _MM_SHUFFLE(3, 1, 3, 1));
    }
}

/* Q4_K super-block xb's nibbles, transposed. */
static inline void q4k_tr(const phiq_block_q4_K *xb, __m512i t[4]) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i q0 = _mm512_loadu_si512(xb->qs), q1 = _mm512_loadu_si512(xb->qs + 64);
    const __m512i v[4] = {_mm512_and_si512(q0, m4), _mm512_and_si512(_mm512_srli_epi16(q0, 4), m4),
                          _mm512_and_si512(q1, m4), _mm512_and_si512(_mm512_srli_epi16(q1, 4), m4)};
    tr4x4(v, t);
}

/* Q8_K super-block y's values in the weights' register order (Q6_K:
 * natural; Q4_K: 32-value sub-blocks 0,2 | 1,3 | 4,6 | 5,7), transposed. */
static inline void tk_act(const phiq_block_q8_K *y, int q6, __m512i t[4]) {
    __m512i v[4];
    for (int p = 0; p < 4; p++) {
        const int8_t *a = y->qs + (q6 ? 64 * p : 128 * (p / 2) + 32 * (p % 2));
        v[p] = q6 ? _mm512_loadu_si512(a) : load2x32(a, a + 64);
    }
    tr4x4(v, t);
}

/* A column's records, gs bytes apart, for nsb super-blocks. */
static void tk_prep(char *col, size_t gs, int q6, const void *act, int64_t nsb) {
    const phiq_block_q8_K *y = act;
    const __m512i ones = _mm512_set1_epi8(1);
    const int nreg = tk_nreg(q6);
    for (int64_t g = 0; q6 ? g < nsb : 2 * g < nsb; g++) {
        char *rec = col + (size_t)g * gs;
        __m512i q[8];
        __m512 dy;
        if (q6) {
            tk_act(y + g, 1, q);
            dy = _mm512_set1_ps(y[g].d);
        } else {
            const int hb = 2 * g + 1 < nsb;
            __m512i ta[4], tb[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                                    _mm512_setzero_si512()};
            tk_act(y + 2 * g, 0, ta);
            if (hb) tk_act(y + 2 * g + 1, 0, tb);
            tk_pair(ta, tb, q);
            dy = _mm512_insertf32x8(_mm512_set1_ps(y[2 * g].d), _mm256_set1_ps(hb ? y[2 * g + 1].d : 0.0f), 1);
        }
        __m512i sum = _mm512_setzero_si512();
        for (int r = 0; r < nreg; r++) {
            _mm512_store_si512(rec + 64 * r, q[r]);
            sum = dpbusd(sum, ones, q[r]);
        }
        if (q6) _mm512_store_si512(rec + 64 * nreg, _mm512_mullo_epi32(sum, _mm512_set1_epi32(-32)));
        else _mm512_store_ps(rec + 64 * nreg, _mm512_mul_ps(_mm512_cvtepi32_ps(sum), dy));
        _mm512_store_ps(rec + 64 * nreg + 64, dy);
    }
}

/* One weight row of Q4_K (q6 = 0) or Q6_K (nsb super-blocks) against nc
 * (1..TK_MAXC) prepared columns, groups g0..g1-1; records as in row_t16. */
static inline __attribute__((always_inline)) void row_tk(const uint8_t *x, int q6, int64_t nsb, const char *a, size_t gs,
                                                         int nc, int64_t g0, int64_t g1, float *res) {
    const int nreg = tk_nreg(q6);
    const size_t rec = tk_rec(q6);
    _Alignas(16) int8_t sidx[16];
    for (int L = 0; L < 16; L++) sidx[L] = (int8_t)tk_sub(q6, L);
    const __m128i isc = _mm_load_si128((const __m128i *)sidx), imn = _mm_add_epi8(isc, _mm_set1_epi8(8));
    __m512 acc[TK_MAXC];
    for (int j = 0; j < nc; j++) acc[j] = _mm512_setzero_ps();
    for (int64_t g = g0; g < g1; g++) {
        __m512i q[8];
        __m512 sw, mw = _mm512_setzero_ps();
        if (q6) {
            const phiq_block_q6_K *xb = (const phiq_block_q6_K *)(const void *)x + g;
            pf(xb, 4);
            __m512i v[4];
            q6_half(xb, 0, &v[0], &v[1]);
            q6_half(xb, 1, &v[2], &v[3]);
            tr4x4(v, q);
            const __m128i sc = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)xb->scales), isc);
            sw = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc)), _mm512_set1_ps(F16(xb->d)));
        } else {
            const phiq_block_q4_K *xa = (const phiq_block_q4_K *)(const void *)x + 2 * g;
            const int hb = 2 * g + 1 < nsb;
            pf(xa, 5);
            __m512i ta[4], tb[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                                    _mm512_setzero_si512()};
            q4k_tr(xa, ta);
            __m128i sa = kq_scales(xa->scales), sb = _mm_setzero_si128();
            float db = 0, mb = 0;
            if (hb) q4k_tr(xa + 1, tb), sb = kq_scales(xa[1].scales), db = F16(xa[1].d), mb = F16(xa[1].dmin);
            tk_pair(ta, tb, q);
            const __m128i s8 = _mm_unpacklo_epi64(_mm_shuffle_epi8(sa, isc), _mm_shuffle_epi8(sb, isc)),
                          m8 = _mm_unpacklo_epi64(_mm_shuffle_epi8(sa, imn), _mm_shuffle_epi8(sb, imn));
            sw = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(s8)),
                               _mm512_insertf32x8(_mm512_set1_ps(F16(xa->d)), _mm256_set1_ps(db), 1));
            mw = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(m8)),
                               _mm512_insertf32x8(_mm512_set1_ps(F16(xa->dmin)), _mm256_set1_ps(mb), 1));
        }
        const char *ag = a + (size_t)g * gs;
#pragma GCC unroll 16 /* acc[] in registers (GCC leaves a 16-column loop rolled) */
        for (int j = 0; j < nc; j++) {
            const char *y = ag + j * rec;
            __m512i d = q6 ? _mm512_load_si512(y + 64 * nreg) : _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int r = 0; r < nreg; r++) d = dpbusd(d, q[r], _mm512_load_si512(y + 64 * r));
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(sw, _mm512_load_ps(y + 64 * nreg + 64)), acc[j]);
            if (!q6) acc[j] = _mm512_fnmadd_ps(mw, _mm512_load_ps(y + 64 * nreg), acc[j]);
        }
    }
    for (int j = 0; j < nc; j++) res[j] = _mm512_reduce_add_ps(acc[j]);
}

/* GEMM for Q4_0, Q4_1, IQ4_NL, Q8_0, Q4_K and Q6_K: activations prepared once per column tile,
 * weights read in row tiles that stay in cache across the column groups. */
static inline __attribute__((always_inline)) void gemm_t16(int kind, int64_t n, int64_t nrows, int64_t ncols, float *out,
                                                            size_t ldo, const void *w, size_t rb, const void *act, size_t as) {
    const int kq = kind == KIND_Q4_K || kind == KIND_Q6_K, q6 = kind == KIND_Q6_K;
    const int bsz = kq ? 0 : kind_bsz[kind], qoff = kq ? 0 : kind_qoff[kind], q81 = kind == KIND_Q4_1,
              lut = kind == KIND_IQ4_NL, q8 = kind == KIND_Q8_0;
    /* groups: 16 blocks, a Q6_K super-block or a pair of Q4_K ones */
    const int64_t nb = n / PHIQ_QK, nsb = n / PHIQ_QK_K, ng = !kq ? (nb + 15) / 16 : q6 ? nsb : (nsb + 1) / 2;
    const int64_t tile = ncols < PHIQ_GEMM_COL_TILE ? ncols : PHIQ_GEMM_COL_TILE;
    const int maxc = kq ? TK_MAXC : T16_MAXC;
    /* records [maxc columns][group][column]: what a pass reads is contiguous
     * (a stride of a column tile's records, a multiple of 4 KiB, put every
     * group's records in the same L1 sets) */
    const size_t rec = kq ? tk_rec(q6) : T16_REC, gs = (size_t)maxc * rec, cgs = gs * (size_t)ng;
    char *buf = aligned_alloc(64, cgs * (size_t)((tile + maxc - 1) / maxc));
    if (!buf) {
        phiq_gemm_rows(kind == KIND_Q4_0 ? dot_q4_0 : q81 ? dot_q4_1 : q8 ? dot_q8_0 : kq ? (q6 ? dot_q6_K : dot_q4_K) : dot_iq4_nl,
                       n, nrows, ncols, out, ldo, w, rb, act, as);
        return;
    }
    for (int64_t j0 = 0; j0 < ncols; j0 += PHIQ_GEMM_COL_TILE) {
        const int64_t j1 = j0 + PHIQ_GEMM_COL_TILE < ncols ? j0 + PHIQ_GEMM_COL_TILE : ncols;
        for (int64_t j = j0; j < j1; j++) {
            const char *aj = (const char *)act + (size_t)j * as;
            char *col = buf + (size_t)((j - j0) / maxc) * cgs + (size_t)((j - j0) % maxc) * rec;
            if (kq) tk_prep(col, gs, q6, aj, nsb);
            else t16_prep(col, gs, kind_off[kind], aj, q81, nb);
        }
        for (int64_t r0 = 0; r0 < nrows; r0 += PHIQ_GEMM_ROW_TILE) {
            const int64_t r1 = r0 + PHIQ_GEMM_ROW_TILE < nrows ? r0 + PHIQ_GEMM_ROW_TILE : nrows;
            for (int64_t j = j0; j < j1;) {
                const int64_t left = j1 - j;
                const int nc = left >= maxc ? maxc : (int)left;
                const char *aj = buf + (size_t)((j - j0) / maxc) * cgs; /* j - j0: a multiple of maxc */
                const int64_t kg = T16_L1 / (nc * (int64_t)rec) > 1 ? T16_L1 / (nc * (int64_t)rec) : 1; /* groups per pass */
                for (int64_t g0 = 0; g0 < ng; g0 += kg) {
                    const int64_t g1 = g0 + kg < ng ? g0 + kg : ng;
                    for (int64_t r = r0; r < r1; r++) {
                        const uint8_t *x = (const uint8_t *)w + (size_t)r * rb;
                        float v[TK_MAXC > T16_MAXC ? TK_MAXC : T16_MAXC];
                        /* one unrolled body per column count */
#define TK_CASE(c) case c: row_tk(x, q6, nsb, aj, gs, c, g0, g1, v); break;
#define T16_CASE(c) case c: row_t16(x, bsz, qoff, q81, lut, q8, aj, gs, c, nb, g0, g1, v); break;
                        if (kq) {
                            switch (nc) {
                                TK_CASE(16) TK_CASE(15) TK_CASE(14) TK_CASE(13) TK_CASE(12) TK_CASE(11) TK_CASE(10) TK_CASE(9)
                                TK_CASE(8) TK_CASE(7) TK_CASE(6) TK_CASE(5) TK_CASE(4) TK_CASE(3) TK_CASE(2)
                                default: row_tk(x, q6, nsb, aj, gs, 1, g0, g1, v);
                            }
                        } else {
                            switch (nc) {
                                T16_CASE(8) T16_CASE(7) T16_CASE(6) T16_CASE(5) T16_CASE(4) T16_CASE(3) T16_CASE(2)
                                default: row_t16(x, bsz, qoff, q81, lut, q8, aj, gs, 1, nb, g0, g1, v);
                            }
                        }
#undef TK_CASE
#undef T16_CASE
                        for (int c = 0; c < nc; c++) {
                            float *o = &out[(size_t)(j + c) * ldo + r];
                            *o = (g0 ? *o : 0) + v[c];
                        }
                    }
                }
                j += nc;
            }
        }
    }
    free(buf);
}

PHIQ_GEMM_FROM_X4(q5_K)

#define GEMM_T16(name, KIND)                                                                       \
    static void gm_##name(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo,         \
                          const void *w, size_t rb, const void *act, size_t as) {                  \
        gemm_t16(KIND, n, nrows, ncols, out, ldo, w, rb, act, as);                                 \
    }
GEMM_T16(q4_0, KIND_Q4_0)
GEMM_T16(q4_1, KIND_Q4_1)
GEMM_T16(iq4_nl, KIND_IQ4_NL)
GEMM_T16(q8_0, KIND_Q8_0)
GEMM_T16(q4_K, KIND_Q4_K)
GEMM_T16(q6_K, KIND_Q6_K)

/* ---- matvec and table ------------------------------------------------------------- */

/* Q4_K mat-vec with the activation rearranged once per call: a 64-byte load
 * of qs (chunks 2G, 2G+1) gives, as low nibbles, sub-blocks 4G and 4G+2 and,
 * as high nibbles, 4G+1 and 4G+3; yq holds the activation's sub-blocks in
 * that order ([4G | 4G+2], [4G+1 | 4G+3]), so that each super-block takes
 * two weight loads and no lane inserts (the dot above takes four of each). */
static inline __m512i idx_q4k(int a, int b) {
    return _mm512_inserti64x4(_mm512_set1_epi16((short)a), _mm256_set1_epi16((short)b), 1);
}

static float row_q4_K_prep(const phiq_block_q4_K *x, const phiq_block_q8_K *y, const int8_t *yq, int64_t nb) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i i0 = idx_q4k(0, 2), i1 = idx_q4k(1, 3), i2 = idx_q4k(4, 6), i3 = idx_q4k(5, 7);
    __m512 acc = _mm512_setzero_ps();
    __m256 accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        pf(x + i, 3);
        const float d = F16(x[i].d) * y[i].d, dmin = F16(x[i].dmin) * y[i].d;
        const __m128i scm = kq_scales(x[i].scales);
        const __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(scm));
        accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(kq_minsum(scm, y[i].bsums)), _mm256_set1_ps(dmin), accm);
        const int8_t *a = yq + 256 * i;
        const __m512i v0 = _mm512_loadu_si512(x[i].qs), v1 = _mm512_loadu_si512(x[i].qs + 64);
        __m512i isum = _mm512_dpwssd_epi32(_mm512_setzero_si512(),
                                           _mm512_maddubs_epi16(_mm512_and_si512(v0, m4), _mm512_load_si512(a)),
                                           _mm512_permutexvar_epi16(i0, sc16));
        isum = _mm512_dpwssd_epi32(isum,
                                   _mm512_maddubs_epi16(_mm512_and_si512(_mm512_srli_epi16(v0, 4), m4), _mm512_load_si512(a + 64)),
                                   _mm512_permutexvar_epi16(i1, sc16));
        isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(_mm512_and_si512(v1, m4), _mm512_load_si512(a + 128)),
                                   _mm512_permutexvar_epi16(i2, sc16));
        isum = _mm512_dpwssd_epi32(isum,
                                   _mm512_maddubs_epi16(_mm512_and_si512(_mm512_srli_epi16(v1, 4), m4), _mm512_load_si512(a + 192)),
                                   _mm512_permutexvar_epi16(i3, sc16));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d), acc);
    }
    __m256 r8 = _mm256_sub_ps(_mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1)), accm);
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(r8), _mm256_extractf128_ps(r8, 1));
    r = _mm_hadd_ps(r, r);
    r = _mm_hadd_ps(r, r);
    return _mm_cvtss_f32(r);
}

static void mv_q4_K(int64_t n, int64_t nrows, float *out, const void *w, size_t rb, const void *act) {
    const int64_t nb = n / PHIQ_QK_K;
    if (n > PREP_MAXN) {
        phiq_matvec_rows(dot_q4_K, n, nrows, out, w, rb, act);
        return;
    }
    _Alignas(64) int8_t yq[PREP_MAXN];
    const phiq_block_q8_K *y = act;
    static const int order[8] = {0, 2, 1, 3, 4, 6, 5, 7}; /* sub-block at each 32-byte slot */
    for (int64_t i = 0; i < nb; i++)
        for (int k = 0; k < 8; k++) memcpy(yq + 256 * i + 32 * k, y[i].qs + 32 * order[k], 32);
    for (int64_t r = 0; r < nrows; r++) {
        if (r + 1 < nrows) {
            _mm_prefetch((const char *)w + (size_t)(r + 1) * rb, _MM_HINT_T0);
            _mm_prefetch((const char *)w + (size_t)(r + 1) * rb + 64, _MM_HINT_T0);
        }
        out[r] = row_q4_K_prep((const phiq_block_q4_K *)(const void *)((const char *)w + (size_t)r * rb), y, yq, nb);
    }
}
PHIQ_MATVEC_FROM_DOT(q5_K)
PHIQ_MATVEC_FROM_DOT(q6_K)
PHIQ_ROWS_FROM_DOT(q2_K)
PHIQ_MATVEC_FROM_DOT(f16)
PHIQ_GEMM_FROM_X4(f16)
PHIQ_ROWS_FROM_DOT(bf16)
PHIQ_ROWS_FROM_DOT(f32)

/* The types with a kernel here (their matvec and gemm are above). */
#define AVX512_TYPES(X)                                                                            \
    X(Q4_0, q4_0) X(Q4_1, q4_1) X(Q8_0, q8_0) X(IQ4_NL, iq4_nl) X(Q4_K, q4_K) X(Q5_K, q5_K)        \
    X(Q6_K, q6_K) X(Q2_K, q2_K) X(F16, f16) X(BF16, bf16) X(F32, f32)

/* ---- activation quantizer ------------------------------------------------------ */

/* Q8_0 / Q8_1 rows byte for byte as the reference (phiq_quantize_row_q8_0/1:
 * d = amax / 127, id = 1 / d, q = roundf(x * id), halves away from zero):
 * the same IEEE operations on 16 lanes, roundf as trunc plus a step where
 * the exact remainder is at least one half. Other types: the reference. */
/* Q8_K rows byte for byte as phiq_quantize_row_q8_K: max = the first value
 * of largest magnitude, iscale = -127 / max, q = min(127, the nearest int
 * of iscale * x, ties to even: the reference's 1.5 * 2^23 addition, here a
 * round to nearest), bsums, d = 1 / iscale. */
static void quantize_q8_K_avx512(const float *x, phiq_block_q8_K *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += PHIQ_QK_K) {
        __m512 am = _mm512_setzero_ps();
        for (int r = 0; r < 16; r++) am = _mm512_max_ps(am, _mm512_abs_ps(_mm512_loadu_ps(x + 16 * r)));
        const float amax = _mm512_reduce_max_ps(am);
        if (!amax) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float max = 0;
        for (int r = 0; r < 16; r++) {
            const __mmask16 m = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * r)), _mm512_set1_ps(amax), _CMP_EQ_OQ);
            if (m) {
                max = x[16 * r + __builtin_ctz(m)];
                break;
            }
        }
        const float iscale = -127.f / max;
        for (int r = 0; r < 16; r++) {
            const __m512 v = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * r), _mm512_set1_ps(iscale)),
                                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            const __m512i q = _mm512_min_epi32(_mm512_cvtps_epi32(v), _mm512_set1_epi32(127));
            _mm_storeu_si128((__m128i *)(void *)(y[i].qs + 16 * r), _mm512_cvtepi32_epi8(q));
            y[i].bsums[r] = (int16_t)_mm512_reduce_add_epi32(q);
        }
        y[i].d = 1 / iscale;
    }
}

static int quantize_act_avx512(int act_type, const float *x, void *dst, int64_t n) {
    if (act_type == PHIQ_GGML_TYPE_Q8_K && n % PHIQ_QK_K == 0) {
        quantize_q8_K_avx512(x, dst, n / PHIQ_QK_K);
        return 0;
    }
    if ((act_type != PHIQ_GGML_TYPE_Q8_0 && act_type != PHIQ_GGML_TYPE_Q8_1) || n % PHIQ_QK)
        return phiq_quantize_act_ref(act_type, x, dst, n);
    const int q81 = act_type == PHIQ_GGML_TYPE_Q8_1, bs = q81 ? Q8_1_BYTES : Q8_0_BYTES;
    const int qoff = q81 ? (int)offsetof(phiq_block_q8_1, qs) : (int)offsetof(phiq_block_q8_0, qs);
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f), sign = _mm512_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / PHIQ_QK; b++) {
        uint8_t *y = (uint8_t *)dst + b * bs;
        const __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
        const float d = amax / ((1 << 7) - 1), id = d ? 1.0f / d : 0.0f;
        const uint16_t dh = phiq_f32_to_f16(d);
        memcpy(y, &dh, 2);
        __m512i q[2];
        for (int h = 0; h < 2; h++) {
            const __m512 v = _mm512_mul_ps(h ? x1 : x0, _mm512_set1_ps(id));
            const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            const __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), half, _CMP_GE_OQ);
            const __m512 r = _mm512_mask_add_ps(t, up, t, _mm512_or_ps(one, _mm512_and_ps(v, sign)));
            q[h] = _mm512_cvttps_epi32(r);
            _mm_storeu_si128((__m128i *)(y + qoff + 16 * h), _mm512_cvtepi32_epi8(q[h]));
        }
        if (q81) {
            const uint16_t sh = phiq_f32_to_f16((float)_mm512_reduce_add_epi32(_mm512_add_epi32(q[0], q[1])) * d);
            memcpy(y + 2, &sh, 2);
        }
    }
    return 0;
}

/* 64-byte loads (what the mat-vec kernels issue), four independent sums. */
static uint64_t stream_read(const void *p, size_t n, size_t ahead) {
    const char *c = p;
    __m512i a = _mm512_setzero_si512(), b = a, d = a, e = a;
    for (size_t i = 0; i < n; i += 256) {
        if (ahead)
            for (int l = 0; l < 4; l++) _mm_prefetch(c + i + ahead + 64 * l, _MM_HINT_T0);
        a = _mm512_add_epi64(a, _mm512_loadu_si512(c + i));
        b = _mm512_add_epi64(b, _mm512_loadu_si512(c + i + 64));
        d = _mm512_add_epi64(d, _mm512_loadu_si512(c + i + 128));
        e = _mm512_add_epi64(e, _mm512_loadu_si512(c + i + 192));
    }
    /* summed as unsigned: _mm512_reduce_add_epi64 adds signed long longs (overflow is undefined) */
    uint64_t s[8], t = 0;
    _mm512_storeu_si512(s, _mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(d, e)));
    for (int i = 0; i < 8; i++) t += s[i];
    return t;
}

/* Starts from the AVX2 table: for Q5_0, Q5_1, IQ4_XS and Q3_K the AVX2
 * kernels measured faster here than 512-bit versions (which were removed). */
void phiq_kernels_init_avx512(phiq_kernels *k) {
    phiq_kernels_init_avx2(k);
    k->isa = "avx512";
    k->quantize_act = quantize_act_avx512;
    k->dot_f16_f32 = dot_f16_f32;
    k->gram_upper = phiq_gram_upper_avx512;
    k->stream_read = stream_read;
    AVX512_TYPES(PHIQ_KERNELS_SET_K)
}
