/* dot_avx2.c — AVX2 + FMA + F16C kernels for CPUs without AVX-512 VNNI.
 * int8 products go through vpmaddubsw (u8 x s8 -> s16 pairs, which cannot
 * saturate for these value ranges) and vpmaddwd (-> s32). Signed x signed
 * uses the sign trick: |x| times y with x's sign. One float multiply-add per
 * block, as in the scalar reference, so only float summation order differs. */
#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "core/common.h"
#include "kernels/dot.h"
#include "kernels/kq_x86.h"
#include "kernels/gemm_float_avx2.h"
#include "kernels/rows8_avx2.h"

#define F16(h) _cvtsh_ss(h)

/* 16 bytes of nibbles -> 32 bytes [lo | hi]. */
static inline __m256i nibbles(const uint8_t *a) {
    __m128i v = _mm_loadu_si128((const __m128i *)a);
    __m256i z = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
    return _mm256_and_si256(z, _mm256_set1_epi8(0x0F));
}

/* 32 bits -> 32 bytes, 0xFF where the bit is set (bit i -> byte i). */
static inline __m256i bits_to_bytes(uint32_t x) {
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x),
                                    _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101,
                                                       0x0202020202020202, 0x0303030303030303));
    v = _mm256_or_si256(v, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1));
}

static inline uint32_t qh32(const uint8_t *qh) {
    uint32_t v;
    memcpy(&v, qh, 4);
    return v;
}

/* Software prefetch of the weight stream, PF_DIST bytes ahead (see
 * dot_avx512.c: it lifts single-thread decode towards the read bandwidth).
 * On Zen 3 (2 threads, Phi-3-mini Q4_K_M decode, 6 alternating runs),
 * 2048 bytes ahead gave a median 10.08 tok/s against 9.59 at 1024: more
 * lines in flight per core; 4096 was no better than 1024. */
#define PF_DIST 2048
static inline void pf(const void *p, int lines) {
    for (int i = 0; i < lines; i++) _mm_prefetch((const char *)p + PF_DIST + 64 * i, _MM_HINT_T0);
}

static inline __m256i load_y(const int8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* ---- 32-element blocks -------------------------------------------------------------- */

/* BLOCK_DOT(name, WT, YT, INT_EXPR, EXTRA): INT_EXPR computes the 8-lane
 * int32 block sum from x[ib] and yy (the 32 activation bytes). */
#define BLOCK_DOT(name, WT, YT, INT_EXPR, EXTRA)                                                   \
    static void name(int64_t n, float *s, const void *vx, const void *vy) {                        \
        const WT *x = vx;                                                                          \
        const YT *y = vy;                                                                          \
        const int64_t nb = n / PHIQ_QK;                                                            \
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                             \
        float extra = 0;                                                                           \
        int64_t ib = 0;                                                                            \
        for (; ib + 2 <= nb; ib += 2) {                                                            \
            pf(x + ib, 1);                                                                         \
            const WT *xb = x + ib;                                                                 \
            __m256i yy = load_y(y[ib].qs);                                                         \
            __m256i d0 = INT_EXPR;                                                                 \
            xb = x + ib + 1;                                                                       \
            yy = load_y(y[ib + 1].qs);                                                             \
            __m256i d1 = INT_EXPR;                                                                 \
            acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d0), _mm256_set1_ps(F16(x[ib].d) * F16(y[ib].d)), acc0); \
            acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d1), _mm256_set1_ps(F16(x[ib + 1].d) * F16(y[ib + 1].d)), acc1); \
            EXTRA(x[ib], y[ib]);                                                                   \
            EXTRA(x[ib + 1], y[ib + 1]);                                                           \
        }                                                                                          \
        for (; ib < nb; ib++) {                                                                    \
            const WT *xb = x + ib;                                                                 \
            __m256i yy = load_y(y[ib].qs);                                                         \
            __m256i d0 = INT_EXPR;                                                                 \
            acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d0), _mm256_set1_ps(F16(x[ib].d) * F16(y[ib].d)), acc0); \
            EXTRA(x[ib], y[ib]);                                                                   \
        }                                                                                          \
        *s = phiq_hsum8(_mm256_add_ps(acc0, acc1)) + extra;                                        \
    }

#define NO_EXTRA(xb, yb) (void)0
#define MIN_EXTRA(xb, yb) (extra += F16((xb).m) * F16((yb).s))

/* (q - off) * y as u8 products minus off * y. */
static inline __m256i dot_off(__m256i q, __m256i yy, int off) {
    __m256i p = _mm256_maddubs_epi16(q, yy);
    if (off) p = _mm256_sub_epi16(p, _mm256_maddubs_epi16(_mm256_set1_epi8((char)off), yy));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

static inline __m256i q5_bytes(const uint8_t *qs, const uint8_t *qh) {
    return _mm256_or_si256(nibbles(qs), _mm256_and_si256(bits_to_bytes(qh32(qh)), _mm256_set1_epi8(0x10)));
}

static inline __m256i iq4_values(const uint8_t *qs) {
    const __m256i tab = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)phiq_kvalues_iq4nl));
    return _mm256_shuffle_epi8(tab, nibbles(qs));
}

BLOCK_DOT(dot_q4_0, phiq_block_q4_0, phiq_block_q8_0, dot_off(nibbles(xb->qs), yy, 8), NO_EXTRA)
BLOCK_DOT(dot_q4_1, phiq_block_q4_1, phiq_block_q8_1, dot_off(nibbles(xb->qs), yy, 0), MIN_EXTRA)
BLOCK_DOT(dot_q5_0, phiq_block_q5_0, phiq_block_q8_0, dot_off(q5_bytes(xb->qs, xb->qh), yy, 16), NO_EXTRA)
BLOCK_DOT(dot_q5_1, phiq_block_q5_1, phiq_block_q8_1, dot_off(q5_bytes(xb->qs, xb->qh), yy, 0), MIN_EXTRA)
BLOCK_DOT(dot_q8_0, phiq_block_q8_0, phiq_block_q8_0, phiq_dot_ss8(load_y(xb->qs), yy), NO_EXTRA)
BLOCK_DOT(dot_iq4_nl, phiq_block_iq4_nl, phiq_block_q8_0, phiq_dot_ss8(iq4_values(xb->qs), yy), NO_EXTRA)

/* ---- K-quants ---------------------------------------------------------------------- */

/* Q4_K and Q5_K are one body: chunk c of a super-block gives 32 low-nibble
 * and 32 high-nibble values (lo, hi); Q5_K's HIGH step ors in the fifth bit
 * (bit 2c / 2c+1 of each qh byte, as 16). */
static inline void k5_high(const uint8_t *qh, int c, __m256i *lo, __m256i *hi) {
    const __m256i h = _mm256_loadu_si256((const __m256i *)qh), k16 = _mm256_set1_epi8(16);
    const __m256i b0 = _mm256_set1_epi8((char)(1 << (2 * c))), b1 = _mm256_set1_epi8((char)(1 << (2 * c + 1)));
    *lo = _mm256_or_si256(*lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(h, b0), b0), k16));
    *hi = _mm256_or_si256(*hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(h, b1), b1), k16));
}
#define Q4K_HIGH(xb, c, lo, hi) (void)0
#define Q5K_HIGH(xb, c, lo, hi) k5_high((xb)->qh, c, &(lo), &(hi))

#define K45_DOT(name, BT, HIGH)                                                                    \
    static void name(int64_t n, float *s, const void *vx, const void *vy) {                        \
        const BT *x = vx;                                                                          \
        const phiq_block_q8_K *y = vy;                                                             \
        __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();                              \
        const __m256i m4 = _mm256_set1_epi8(0x0F);                                                 \
        for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {                                              \
            pf(x + i, 3);                                                                          \
            const __m128 dm = kq_d_dmin(&x[i].d, y[i].d);                                          \
            const __m128i scm = kq_scales(x[i].scales);                                            \
            /* the 8 scales as int16 in both halves; sub-block j's is one vpshufb */              \
            const __m256i sc16 = _mm256_permute4x64_epi64(_mm256_cvtepu8_epi16(scm), 0x44);        \
            accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(kq_minsum(scm, y[i].bsums)), _mm256_broadcastss_ps(_mm_movehdup_ps(dm)), accm); \
            __m256i isum = _mm256_setzero_si256();                                                 \
            _Pragma("GCC unroll 4")                                                                \
            for (int c = 0; c < 4; c++) {                                                          \
                const __m256i v = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * c));         \
                __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4); \
                HIGH(x + i, c, lo, hi);                                                            \
                const __m256i p0 = _mm256_maddubs_epi16(lo, load_y(y[i].qs + 64 * c));             \
                const __m256i p1 = _mm256_maddubs_epi16(hi, load_y(y[i].qs + 64 * c + 32));        \
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p0, _mm256_shuffle_epi8(sc16, _mm256_set1_epi16((short)(((4 * c + 1) << 8) | (4 * c)))))); \
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p1, _mm256_shuffle_epi8(sc16, _mm256_set1_epi16((short)(((4 * c + 3) << 8) | (4 * c + 2)))))); \
            }                                                                                      \
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_broadcastss_ps(dm), acc);        \
        }                                                                                          \
        *s = phiq_hsum8(_mm256_sub_ps(acc, accm));                                                 \
    }
K45_DOT(dot_q4_K, phiq_block_q4_K, Q4K_HIGH)
K45_DOT(dot_q5_K, phiq_block_q5_K, Q5K_HIGH)

static void dot_q6_K(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_q6_K *x = vx;
    const phiq_block_q8_K *y = vy;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {
        pf(x + i, 4);
        const float d = F16(x[i].d) * y[i].d;
        /* the 16 scales as int16 once; each (s_g, s_g+1) pair below is one
         * vpshufb of its half (a scalar load and two broadcasts each cost
         * ~40% of this loop's instructions) */
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)x[i].scales));
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i q[4];
            phiq_q6_half(x + i, h, q);
            const __m256i half = h ? _mm256_permute4x64_epi64(sc16, 0xEE) : _mm256_permute4x64_epi64(sc16, 0x44);
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                __m256i p = _mm256_maddubs_epi16(q[k], load_y(y[i].qs + 128 * h + 32 * k));
                const __m256i scv = _mm256_shuffle_epi8(half, _mm256_setr_m128i(_mm_set1_epi16((short)(((4 * k + 1) << 8) | (4 * k))),
                                                                                _mm_set1_epi16((short)(((4 * k + 3) << 8) | (4 * k + 2)))));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, scv));
            }
        }
        __m256i corr = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(const void *)y[i].bsums), sc16);
        isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(corr, 5));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d), acc);
    }
    *s = phiq_hsum8(acc);
}

static void dot_q2_K(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_q2_K *x = vx;
    const phiq_block_q8_K *y = vy;
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {
        pf(x + i, 2);
        const float dall = y[i].d * F16(x[i].d), dmin = y[i].d * F16(x[i].dmin);
        const __m128i raw = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0F)));
        accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[i].bsums), mn16)),
                               _mm256_set1_ps(dmin), accm);
        const uint8_t *sc = x[i].scales;
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            for (int k = 0; k < 4; k++) {
                __m256i qk = _mm256_and_si256(_mm256_srli_epi16(q, 2 * k), m3);
                __m256i p = _mm256_maddubs_epi16(qk, load_y(y[i].qs + 128 * h + 32 * k));
                const int g = 8 * h + 2 * k;
                __m256i scv = _mm256_setr_m128i(_mm_set1_epi16(sc[g] & 15), _mm_set1_epi16(sc[g + 1] & 15));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, scv));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(dall), acc);
    }
    *s = phiq_hsum8(acc) - phiq_hsum8(accm);
}

static void dot_q3_K(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_q3_K *x = vx;
    const phiq_block_q8_K *y = vy;
    __m256 acc = _mm256_setzero_ps();
    const __m256i m3 = _mm256_set1_epi8(3), k4 = _mm256_set1_epi8(4);
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {
        pf(x + i, 2);
        const float d = y[i].d * F16(x[i].d);
        uint32_t aux[4];
        memcpy(aux, x[i].scales, 12);
        const uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f, tmp = aux[2];
        aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
        aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
        aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
        aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
        const uint8_t *sc = (const uint8_t *)aux;
        const __m256i sc16 = _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)aux)), _mm256_set1_epi16(32));
        const __m256i hm = _mm256_loadu_si256((const __m256i *)x[i].hmask);
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            for (int k = 0; k < 4; k++) {
                __m256i bit = _mm256_set1_epi8((char)(1 << (4 * h + k)));
                __m256i hb = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit), k4);
                __m256i qk = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * k), m3), hb);
                __m256i p = _mm256_maddubs_epi16(qk, load_y(y[i].qs + 128 * h + 32 * k));
                const int g = 8 * h + 2 * k;
                __m256i scv = _mm256_setr_m128i(_mm_set1_epi16((short)(sc[g] - 32)), _mm_set1_epi16((short)(sc[g + 1] - 32)));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, scv));
            }
        }
        __m256i corr = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[i].bsums), sc16);
        isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(corr, 2));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d), acc);
    }
    *s = phiq_hsum8(acc);
}

/* IQ4_XS: signed table values times signed activations through the sign
 * trick; |v| * |y| pairs stay below 2 * 127 * 127, so vpmaddubsw is exact. */
static void dot_iq4_xs(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_iq4_xs *x = vx;
    const phiq_block_q8_K *y = vy;
    __m256 acc = _mm256_setzero_ps();
    const __m256i tab = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)phiq_kvalues_iq4nl));
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {
        pf(x + i, 3);
        __m256i isum = _mm256_setzero_si256();
        const unsigned h = x[i].scales_h;
        for (int ib = 0; ib < 8; ib++) {
            const int ls = (((x[i].scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf) | (((h >> (2 * ib)) & 3) << 4)) - 32;
            __m256i v = _mm256_shuffle_epi8(tab, nibbles(x[i].qs + 16 * ib));
            __m256i yy = load_y(y[i].qs + 32 * ib);
            __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(v, v), _mm256_sign_epi8(yy, v));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, _mm256_set1_epi16((short)ls)));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(F16(x[i].d) * y[i].d), acc);
    }
    *s = phiq_hsum8(acc);
}

/* ---- four activation rows per weight decode (gemm) ---------------------------------- */

static inline void hsum4(const __m256 acc[4], float res[4]) {
    for (int j = 0; j < 4; j++) res[j] = phiq_hsum8(acc[j]);
}


#define K45_X4(name, BT, HIGH)                                                                     \
    static void name(int64_t n, const void *vx, const void *const vy[4], float res[4]) {           \
        const BT *x = vx;                                                                          \
        const phiq_block_q8_K *y[4] = {vy[0], vy[1], vy[2], vy[3]};                                \
        __m256 acc[4];                                                                             \
        for (int j = 0; j < 4; j++) acc[j] = _mm256_setzero_ps();                                  \
        const __m256i m4 = _mm256_set1_epi8(0x0F);                                                 \
        for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {                                              \
            const float xd = F16(x[i].d), xdmin = F16(x[i].dmin);                                  \
            const __m128i scm = kq_scales(x[i].scales);                                            \
            uint8_t sc[16];                                                                        \
            _mm_storeu_si128((__m128i *)sc, scm);                                                  \
            __m256i isum[4];                                                                       \
            for (int j = 0; j < 4; j++) {                                                          \
                acc[j] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(kq_minsum(scm, y[j][i].bsums)),       \
                                          _mm256_set1_ps(xdmin * y[j][i].d), acc[j]);              \
                isum[j] = _mm256_setzero_si256();                                                  \
            }                                                                                      \
            for (int c = 0; c < 4; c++) {                                                          \
                const __m256i v = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * c));         \
                __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4); \
                HIGH(x + i, c, lo, hi);                                                            \
                const __m256i s0 = _mm256_set1_epi16(sc[2 * c]), s1 = _mm256_set1_epi16(sc[2 * c + 1]); \
                for (int j = 0; j < 4; j++) {                                                      \
                    isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load_y(y[j][i].qs + 64 * c)), s0)); \
                    isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(_mm256_maddubs_epi16(hi, load_y(y[j][i].qs + 64 * c + 32)), s1)); \
                }                                                                                  \
            }                                                                                      \
            for (int j = 0; j < 4; j++)                                                            \
                acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_set1_ps(xd * y[j][i].d), acc[j]); \
        }                                                                                          \
        hsum4(acc, res);                                                                           \
    }
K45_X4(dot_q5_K_x4, phiq_block_q5_K, Q5K_HIGH)

/* ---- float types ------------------------------------------------------------------ */

#define FLOAT_DOT(name, XT, YT, LX, LY, SX, SY)                                                    \
    static void name(int64_t n, float *s, const void *vx, const void *vy) {                        \
        const XT *x = vx;                                                                          \
        const YT *y = vy;                                                                          \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                \
        int64_t i = 0;                                                                             \
        for (; i + 32 <= n; i += 32) {                                                             \
            pf(x + i, (int)(sizeof(XT) * 32 / 64));                                                \
            a0 = _mm256_fmadd_ps(LX(x + i), LY(y + i), a0);                                        \
            a1 = _mm256_fmadd_ps(LX(x + i + 8), LY(y + i + 8), a1);                                \
            a2 = _mm256_fmadd_ps(LX(x + i + 16), LY(y + i + 16), a2);                              \
            a3 = _mm256_fmadd_ps(LX(x + i + 24), LY(y + i + 24), a3);                              \
        }                                                                                          \
        for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(LX(x + i), LY(y + i), a0);                 \
        float t = 0;                                                                               \
        for (; i < n; i++) t += SX(x[i]) * SY(y[i]);                                               \
        *s = phiq_hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3))) + t;          \
    }

static inline float bf16f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
#define LD_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define LD_BF16(p) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))
#define LD_F32(p) _mm256_loadu_ps(p)
#define S_F16(v) _cvtsh_ss(v)
#define S_BF16(v) bf16f(v)
#define S_F32(v) (v)
FLOAT_DOT(dot_f16, uint16_t, uint16_t, LD_F16, LD_F16, S_F16, S_F16)
FLOAT_DOT(dot_f16_f32, uint16_t, float, LD_F16, LD_F32, S_F16, S_F32)
FLOAT_DOT(dot_bf16, uint16_t, uint16_t, LD_BF16, LD_BF16, S_BF16, S_BF16)
FLOAT_DOT(dot_f32, float, float, LD_F32, LD_F32, S_F32, S_F32)

/* ---- matvec and table ------------------------------------------------------------- */

/* This file's types: X4 entries have an x4 row kernel for gemm, DOT
 * entries a dot only. */
#define AVX2_TYPES(X4, DOT, R8, G8)                                                                \
    R8(Q4_0, q4_0) R8(Q8_0, q8_0) G8(Q4_K, q4_K) X4(Q5_K, q5_K) G8(Q6_K, q6_K) G8(F16, f16) G8(BF16, bf16) G8(F32, f32)                     \
    DOT(Q4_1, q4_1) DOT(Q5_0, q5_0) DOT(Q5_1, q5_1) DOT(IQ4_NL, iq4_nl) DOT(Q2_K, q2_K)            \
    DOT(Q3_K, q3_K) DOT(IQ4_XS, iq4_xs)
/* R8 entries: mat-vec and gemm over eight weight rows per pass
 * (rows8_avx2.c); G8 entries: a gemm of their own, phiq_gemm_NAME_avx2
 * (rows8_avx2.c's packed eight rows, or gemm_float_avx2.c's register
 * tiles), and the one-row mat-vec; the dot takes what they leave. */
#define GEMM8_K(T, name)                                                                           \
    static void gm_##name(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, \
                          size_t rb, const void *act, size_t as) {                                 \
        phiq_gemm_##name##_avx2(n, nrows, ncols, out, ldo, w, rb, act, as, dot_##name);            \
    }
#define ROWS8_K(T, name)                                                                           \
    GEMM8_K(T, name)                                                                               \
    static void mv_##name(int64_t n, int64_t nrows, float *out, const void *w, size_t rb, const void *act) { \
        phiq_matvec_##name##_avx2(n, nrows, out, w, rb, act, dot_##name);                          \
    }
#define G8_K(T, name) GEMM8_K(T, name) PHIQ_MATVEC_FROM_DOT(name)
AVX2_TYPES(PHIQ_ROWS_X4_K, PHIQ_ROWS_DOT_K, ROWS8_K, G8_K)

/* ---- activation quantizer ------------------------------------------------------ */

/* Byte for byte as the reference (as dot_avx512.c's, on 8 lanes): Q8_0 /
 * Q8_1 with d = amax / 127, id = 1 / d, q = roundf(x * id) as trunc plus a
 * step where the exact remainder is at least one half; Q8_K with max = the
 * first value of largest magnitude, iscale = -127 / max, q = min(127, x *
 * iscale rounded to nearest even), bsums, d = 1 / iscale. */
static inline float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}

/* 32 int32 in [-128, 127] (q[0..3], 8 each, in order) -> 32 bytes at dst. */
static inline void store_q8x32(int8_t *dst, const __m256i q[4]) {
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_storeu_si256((__m256i *)(void *)dst, _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

static void quantize_q8_K_avx2(const float *x, phiq_block_q8_K *y, int64_t nb) {
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int64_t i = 0; i < nb; i++, x += PHIQ_QK_K) {
        __m256 am = _mm256_setzero_ps();
        for (int r = 0; r < 32; r++) am = _mm256_max_ps(am, _mm256_and_ps(_mm256_loadu_ps(x + 8 * r), absm));
        const float amax = hmax8(am);
        if (!amax) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float max = 0;
        for (int r = 0; r < 32; r++) {
            const int m = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + 8 * r), absm),
                                                           _mm256_set1_ps(amax), _CMP_EQ_OQ));
            if (m) {
                max = x[8 * r + __builtin_ctz((unsigned)m)];
                break;
            }
        }
        const float iscale = -127.f / max;
        for (int c = 0; c < 8; c++) {
            __m256i q[4];
            for (int k = 0; k < 4; k++) {
                const __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 32 * c + 8 * k), _mm256_set1_ps(iscale)),
                                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                q[k] = _mm256_min_epi32(_mm256_cvtps_epi32(v), _mm256_set1_epi32(127));
            }
            store_q8x32(y[i].qs + 32 * c, q);
            y[i].bsums[2 * c] = (int16_t)phiq_hsum8i(_mm256_add_epi32(q[0], q[1]));
            y[i].bsums[2 * c + 1] = (int16_t)phiq_hsum8i(_mm256_add_epi32(q[2], q[3]));
        }
        y[i].d = 1 / iscale;
    }
}

static int quantize_act_avx2(int act_type, const float *x, void *dst, int64_t n) {
    if (act_type == PHIQ_GGML_TYPE_Q8_K && n >= 0 && n % PHIQ_QK_K == 0) {
        quantize_q8_K_avx2(x, dst, n / PHIQ_QK_K);
        return 0;
    }
    if ((act_type != PHIQ_GGML_TYPE_Q8_0 && act_type != PHIQ_GGML_TYPE_Q8_1) || n < 0 || n % PHIQ_QK)
        return phiq_quantize_act_ref(act_type, x, dst, n);
    const int q81 = act_type == PHIQ_GGML_TYPE_Q8_1;
    const size_t bs = q81 ? sizeof(phiq_block_q8_1) : sizeof(phiq_block_q8_0);
    const size_t qoff = q81 ? offsetof(phiq_block_q8_1, qs) : offsetof(phiq_block_q8_0, qs);
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)), half = _mm256_set1_ps(0.5f),
                 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / PHIQ_QK; b++, x += PHIQ_QK) {
        uint8_t *y = (uint8_t *)dst + (size_t)b * bs;
        __m256 xv[4], am = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) am = _mm256_max_ps(am, _mm256_and_ps(xv[k] = _mm256_loadu_ps(x + 8 * k), absm));
        const float amax = hmax8(am);
        const float d = amax / ((1 << 7) - 1), id = d ? 1.0f / d : 0.0f;
        const uint16_t dh = phiq_f32_to_f16(d);
        memcpy(y, &dh, 2);
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            const __m256 v = _mm256_mul_ps(xv[k], _mm256_set1_ps(id));
            const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            const __m256 up = _mm256_cmp_ps(_mm256_and_ps(_mm256_sub_ps(v, t), absm), half, _CMP_GE_OQ);
            q[k] = _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(up, _mm256_or_ps(one, _mm256_and_ps(v, sign)))));
        }
        store_q8x32((int8_t *)(y + qoff), q);
        if (q81) {
            const int32_t s = phiq_hsum8i(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
            const uint16_t sh = phiq_f32_to_f16((float)s * d);
            memcpy(y + 2, &sh, 2);
        }
    }
    return 0;
}

/* 32-byte loads, four independent 64-bit lane sums. */
static uint64_t stream_read(const void *p, size_t n, size_t ahead) {
    const char *c = p;
    __m256i a = _mm256_setzero_si256(), b = a, d = a, e = a;
    for (size_t i = 0; i < n; i += 256) {
        if (ahead)
            for (int l = 0; l < 4; l++) _mm_prefetch(c + i + ahead + 64 * l, _MM_HINT_T0);
        for (int j = 0; j < 256; j += 128) {
            a = _mm256_add_epi64(a, _mm256_loadu_si256((const __m256i *)(const void *)(c + i + j)));
            b = _mm256_add_epi64(b, _mm256_loadu_si256((const __m256i *)(const void *)(c + i + j + 32)));
            d = _mm256_add_epi64(d, _mm256_loadu_si256((const __m256i *)(const void *)(c + i + j + 64)));
            e = _mm256_add_epi64(e, _mm256_loadu_si256((const __m256i *)(const void *)(c + i + j + 96)));
        }
    }
    a = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(d, e));
    uint64_t s[4];
    _mm256_storeu_si256((__m256i *)(void *)s, a);
    return s[0] + s[1] + s[2] + s[3];
}

/* exp(t) on four doubles t <= 0: t = k ln 2 + r with |r| <= ln 2 / 2 (ln 2
 * in two parts, so r is exact to ~1e-20), exp(r) by its Taylor series to
 * r^13 (truncation below 1e-17 relative) in Horner form, 2^k put in the
 * exponent field. Below -708 the result is 0 (exp < 3.4e-308: nothing a
 * sum whose largest term is 1 can hold); a NaN stays NaN. */
static inline __m256d exp4_nonpos(__m256d t) {
    const __m256d floor_t = _mm256_set1_pd(-708.0);
    const __m256d tc = _mm256_max_pd(floor_t, t); /* NaN t: NaN (max returns its second operand) */
    const __m256d k = _mm256_round_pd(_mm256_mul_pd(tc, _mm256_set1_pd(1.4426950408889634)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(k, _mm256_set1_pd(6.93147180369123816490e-01), tc);
    r = _mm256_fnmadd_pd(k, _mm256_set1_pd(1.90821492927058770002e-10), r);
    static const double inv_fact[14] = {1.0,
                                        1.0,
                                        1.0 / 2,
                                        1.0 / 6,
                                        1.0 / 24,
                                        1.0 / 120,
                                        1.0 / 720,
                                        1.0 / 5040,
                                        1.0 / 40320,
                                        1.0 / 362880,
                                        1.0 / 3628800,
                                        1.0 / 39916800,
                                        1.0 / 479001600,
                                        1.0 / 6227020800.0};
    __m256d p = _mm256_set1_pd(inv_fact[13]);
#pragma GCC unroll 13
    for (int i = 12; i >= 0; i--) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(inv_fact[i]));
    /* 2^k for k in [-1022, 0]: biased exponent k + 1023 in bits 52.. */
    const __m256i ki = _mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(k));
    const __m256d two_k = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(ki, _mm256_set1_epi64x(1023)), 52));
    const __m256d under = _mm256_cmp_pd(t, floor_t, _CMP_LT_OQ);
    return _mm256_andnot_pd(under, _mm256_mul_pd(p, two_k));
}

static double exp_sum(const float *x, int64_t n, float mx, double *e) {
    const __m256d m = _mm256_set1_pd((double)mx);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256d a = exp4_nonpos(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), m));
        const __m256d b = exp4_nonpos(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), m));
        s0 = _mm256_add_pd(s0, a);
        s1 = _mm256_add_pd(s1, b);
        if (e) {
            _mm256_storeu_pd(e + i, a);
            _mm256_storeu_pd(e + i + 4, b);
        }
    }
    double lane[4];
    _mm256_storeu_pd(lane, _mm256_add_pd(s0, s1));
    double s = (lane[0] + lane[1]) + (lane[2] + lane[3]);
    if (i < n) { /* the tail through one more vector, padded with the maximum's -inf */
        float xt[8];
        for (int j = 0; j < 8; j++) xt[j] = i + j < n ? x[i + j] : -INFINITY;
        double et[8];
        const double st = exp_sum(xt, 8, mx, et);
        s += st;
        if (e)
            for (int64_t j = 0; i + j < n; j++) e[i + j] = et[j];
    }
    return s;
}

void phiq_kernels_init_avx2(phiq_kernels *k) {
    phiq_kernels_init_scalar(k);
    k->isa = "avx2";
    k->quantize_act = quantize_act_avx2;
    k->dot_f16_f32 = dot_f16_f32;
    k->gram_upper = phiq_gram_upper_avx2;
    k->stream_read = stream_read;
    k->exp_sum = exp_sum;
    AVX2_TYPES(PHIQ_KERNELS_SET_K, PHIQ_KERNELS_SET_K, PHIQ_KERNELS_SET_K, PHIQ_KERNELS_SET_K)
}
