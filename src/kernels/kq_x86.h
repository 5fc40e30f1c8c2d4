/* kq_x86.h — private to src/kernels: the x86 helpers the AVX2 and AVX-512
 * files share (they are compiled with -mavx2 at least): the horizontal sums
 * of 8 floats and of 8 int32, the signed-byte product (phiq_dot_ss8) and ggml's AVX2 Q8_0 x Q8_0 block product, and the unpacking of
 * the Q4_K/Q5_K 6-bit scales and mins with their min correction, Q6_K's
 * 6-bit values. */
#ifndef PHIQ_KERNELS_KQ_X86_H
#define PHIQ_KERNELS_KQ_X86_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "formats/ggml_blocks.h"

/* v[0] + ... + v[7] (pairwise: halves, then pairs, then the last two). */
static inline float phiq_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* v[0] + ... + v[7] of 8 int32 lanes (wrapping). */
static inline int32_t phiq_hsum8i(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    return _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1)));
}

/* 8 int32 lane sums of x[i] * y[i] over groups of 4 signed bytes: |x| as
 * u8 times y with x's sign (exact also for x = -128; |y| <= 127). */
static inline __m256i phiq_dot_ss8(__m256i x, __m256i y) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x)), _mm256_set1_epi16(1));
}

/* 8 int32 lane sums of x[i] * y[i] over 32 signed bytes, as floats (|x|
 * as u8 times y with x's sign: no saturation for Q8_0 values in [-127,
 * 127]); ggml's AVX2 vec_dot_q8_0_q8_0 block product. */
static inline __m256 phiq_q8_dot_lanes(const int8_t *x, const int8_t *y) {
    const __m256i vx = _mm256_loadu_si256((const __m256i *)(const void *)x);
    const __m256i vy = _mm256_loadu_si256((const __m256i *)(const void *)y);
    return _mm256_cvtepi32_ps(phiq_dot_ss8(vx, vy));
}

/* The eight 6-bit scales and mins of a Q4_K/Q5_K super-block (its 12
 * scale bytes q) as bytes: sc_j in out[0..7], m_j in out[8..15]. As
 * ggml's get_scale_min_k4: for j < 4, sc_j = q[j] & 63 and m_j = q[j+4] &
 * 63; for j >= 4, sc_j = (q[j+4] & 15) | (q[j-4] >> 6) << 4 and m_j =
 * (q[j+4] >> 4) | (q[j] >> 6) << 4. Reads 16 bytes from q: in both block
 * types the scales are followed by more of the same block. In registers
 * (two byte shuffles for the low parts and one for the high bits), not the
 * scalar masks of 32-bit words: those were a fifth of a decode step's
 * instructions. */
static inline __m128i kq_scales(const uint8_t *q) {
    const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)q);
    /* the byte that holds each output's low bits: q0-3 | q8-11 | q4-7 | q8-11 */
    const __m128i a = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    /* m4-7 take the high nibble; an epi16 shift by 4 then a mask of 15 is
     * a byte shift (the neighbour's bits land above the mask) */
    const __m128i lo = _mm_and_si128(_mm_blend_epi32(a, _mm_srli_epi16(a, 4), 0x8),
                                     _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 15, 15, 15, 15));
    /* sc4-7 and m4-7: bits 6-7 of q0-3 and q4-7 as bits 4-5 */
    const __m128i h = _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    return _mm_or_si128(lo, _mm_and_si128(_mm_srli_epi16(h, 2), _mm_set1_epi8(0x30)));
}

/* m_j * (bsums[2j] + bsums[2j+1]) in int32 lane j (m_j from kq_scales'
 * upper half): the min term of a super-block before its dmin * d_y. */
static inline __m256i kq_minsum(const __m128i scm, const int16_t *bsums) {
    /* (m_j, m_j) int16 pairs */
    const __m256i mdup =
        _mm256_cvtepu8_epi16(_mm_shuffle_epi8(scm, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15)));
    return _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(const void *)bsums), mdup);
}

/* A Q4_K/Q5_K super-block's d and dmin (adjacent halves at dd) times d_y,
 * as floats in lanes 0 and 1: one conversion for both. */
static inline __m128 kq_d_dmin(const void *dd, float dy) {
    uint32_t u;
    memcpy(&u, dd, 4);
    return _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)u)), _mm_set1_ps(dy));
}

/* Q6_K half h (128 values) as four registers of unsigned 6-bit values
 * (elements 32k .. 32k+31 in q[k]); the -32 is applied through bsums. */
static inline void phiq_q6_half(const phiq_block_q6_K *xb, int h, __m256i q[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(const void *)(xb->ql + 64 * h));
    const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(const void *)(xb->ql + 64 * h + 32));
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(const void *)(xb->qh + 32 * h));
    q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
    q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30));
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
}

#endif
