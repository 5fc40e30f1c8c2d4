/* dot_neon.c — AArch64 NEON kernels (baseline ARMv8-A: every AArch64 CPU
 * has them). int8 products are widened with vmull_s8 (|a*b| <= 128*127 fits
 * int16) and pairwise-accumulated into int32 with vpadalq_s16; one float
 * multiply-add per block as in the scalar reference; with the dotprod
 * extension, SDOT replaces the widening pair. Types without a NEON kernel
 * keep the scalar one. */
#include <arm_neon.h>
#include <string.h>

#include "kernels/dot.h"

static inline float f16(uint16_t h) {
    __fp16 v;
    memcpy(&v, &h, 2);
    return (float)v;
}

static inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
}

/* The ARMv8.2 dot-product instruction (SDOT), chosen at run time when the
 * CPU reports it (HWCAP_ASIMDDP): Q4_0, Q8_0, Q4_K and Q5_K exist in both
 * forms, generated from one body each with DOT = dot16 or dot16_dp. */
#define DP __attribute__((target("arch=armv8.2-a+dotprod")))
DP static inline int32x4_t dot16_dp(int32x4_t acc, int8x16_t a, int8x16_t b) { return vdotq_s32(acc, a, b); }
#define NO_ATTR

#define NEON_Q4_0(name, ATTR, DOT)                                                                 \
    ATTR static void name(int64_t n, float *s, const void *vx, const void *vy) {                   \
        const phiq_block_q4_0 *x = vx;                                                             \
        const phiq_block_q8_0 *y = vy;                                                             \
        float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0);                                  \
        const uint8x16_t m4 = vdupq_n_u8(0x0F);                                                    \
        const int8x16_t k8 = vdupq_n_s8(8);                                                        \
        for (int64_t ib = 0; ib < n / PHIQ_QK; ib++) {                                             \
            const uint8x16_t v = vld1q_u8(x[ib].qs);                                               \
            const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, m4)), k8);               \
            const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), k8);              \
            int32x4_t p = DOT(DOT(vdupq_n_s32(0), lo, vld1q_s8(y[ib].qs)), hi, vld1q_s8(y[ib].qs + 16)); \
            const float d = f16(x[ib].d) * f16(y[ib].d);                                           \
            if (ib & 1) acc1 = vmlaq_n_f32(acc1, vcvtq_f32_s32(p), d);                             \
            else acc0 = vmlaq_n_f32(acc0, vcvtq_f32_s32(p), d);                                    \
        }                                                                                          \
        *s = vaddvq_f32(vaddq_f32(acc0, acc1));                                                    \
    }

#define NEON_Q8_0(name, ATTR, DOT)                                                                 \
    ATTR static void name(int64_t n, float *s, const void *vx, const void *vy) {                   \
        const phiq_block_q8_0 *x = vx;                                                             \
        const phiq_block_q8_0 *y = vy;                                                             \
        float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0);                                  \
        for (int64_t ib = 0; ib < n / PHIQ_QK; ib++) {                                             \
            int32x4_t p = DOT(DOT(vdupq_n_s32(0), vld1q_s8(x[ib].qs), vld1q_s8(y[ib].qs)), vld1q_s8(x[ib].qs + 16), \
                              vld1q_s8(y[ib].qs + 16));                                            \
            const float d = f16(x[ib].d) * f16(y[ib].d);                                           \
            if (ib & 1) acc1 = vmlaq_n_f32(acc1, vcvtq_f32_s32(p), d);                             \
            else acc0 = vmlaq_n_f32(acc0, vcvtq_f32_s32(p), d);                                    \
        }                                                                                          \
        *s = vaddvq_f32(vaddq_f32(acc0, acc1));                                                    \
    }

/* Q4_K and Q5_K: chunk c of a super-block is 32 low nibbles (a0, a1) and 32
 * high ones (b0, b1); Q5_K's HIGH step ors in bit 2c / 2c+1 of qh[l] as 16. */
static inline void k5_high(const uint8_t *qh, int c, uint8x16_t *a0, uint8x16_t *a1, uint8x16_t *b0, uint8x16_t *b1) {
    const uint8x16_t h0 = vld1q_u8(qh), h1 = vld1q_u8(qh + 16), one = vdupq_n_u8(1);
    const int8x16_t sl = vdupq_n_s8((int8_t)(-2 * c)), sh = vdupq_n_s8((int8_t)(-2 * c - 1));
    *a0 = vorrq_u8(*a0, vshlq_n_u8(vandq_u8(vshlq_u8(h0, sl), one), 4));
    *a1 = vorrq_u8(*a1, vshlq_n_u8(vandq_u8(vshlq_u8(h1, sl), one), 4));
    *b0 = vorrq_u8(*b0, vshlq_n_u8(vandq_u8(vshlq_u8(h0, sh), one), 4));
    *b1 = vorrq_u8(*b1, vshlq_n_u8(vandq_u8(vshlq_u8(h1, sh), one), 4));
}
#define Q4K_HIGH(xb, c, a0, a1, b0, b1) (void)0
#define Q5K_HIGH(xb, c, a0, a1, b0, b1) k5_high((xb)->qh, c, &(a0), &(a1), &(b0), &(b1))

#define NEON_K45(name, ATTR, DOT, BT, HIGH)                                                        \
    ATTR static void name(int64_t n, float *s, const void *vx, const void *vy) {                   \
        const BT *x = vx;                                                                          \
        const phiq_block_q8_K *y = vy;                                                             \
        const uint8x16_t m4 = vdupq_n_u8(0x0F);                                                    \
        float sumf = 0;                                                                            \
        for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {                                              \
            uint8_t sc[8], mn[8];                                                                  \
            phiq_k4_scale_min_all(x[i].scales, sc, mn);                                            \
            int summ = 0;                                                                          \
            for (int j = 0; j < 8; j++) summ += mn[j] * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]); \
            int isum = 0;                                                                          \
            for (int c = 0; c < 4; c++) {                                                          \
                const uint8x16_t v0 = vld1q_u8(x[i].qs + 32 * c), v1 = vld1q_u8(x[i].qs + 32 * c + 16); \
                uint8x16_t a0 = vandq_u8(v0, m4), a1 = vandq_u8(v1, m4), b0 = vshrq_n_u8(v0, 4), b1 = vshrq_n_u8(v1, 4); \
                HIGH(x + i, c, a0, a1, b0, b1);                                                    \
                const int8_t *q8 = y[i].qs + 64 * c;                                               \
                int32x4_t lo = DOT(DOT(vdupq_n_s32(0), vreinterpretq_s8_u8(a0), vld1q_s8(q8)),     \
                                   vreinterpretq_s8_u8(a1), vld1q_s8(q8 + 16));                    \
                int32x4_t hi = DOT(DOT(vdupq_n_s32(0), vreinterpretq_s8_u8(b0), vld1q_s8(q8 + 32)), \
                                   vreinterpretq_s8_u8(b1), vld1q_s8(q8 + 48));                    \
                isum += sc[2 * c] * vaddvq_s32(lo) + sc[2 * c + 1] * vaddvq_s32(hi);               \
            }                                                                                      \
            sumf += f16(x[i].d) * y[i].d * isum - f16(x[i].dmin) * y[i].d * summ;                  \
        }                                                                                          \
        *s = sumf;                                                                                 \
    }

NEON_Q4_0(dot_q4_0, NO_ATTR, dot16)
NEON_Q4_0(dot_q4_0_dp, DP, dot16_dp)
NEON_Q8_0(dot_q8_0, NO_ATTR, dot16)
NEON_Q8_0(dot_q8_0_dp, DP, dot16_dp)
NEON_K45(dot_q4_K, NO_ATTR, dot16, phiq_block_q4_K, Q4K_HIGH)
NEON_K45(dot_q4_K_dp, DP, dot16_dp, phiq_block_q4_K, Q4K_HIGH)
NEON_K45(dot_q5_K, NO_ATTR, dot16, phiq_block_q5_K, Q5K_HIGH)
NEON_K45(dot_q5_K_dp, DP, dot16_dp, phiq_block_q5_K, Q5K_HIGH)

static void dot_q4_1(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_q4_1 *x = vx;
    const phiq_block_q8_1 *y = vy;
    float32x4_t acc = vdupq_n_f32(0);
    float summ = 0;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    for (int64_t ib = 0; ib < n / PHIQ_QK; ib++) {
        const uint8x16_t v = vld1q_u8(x[ib].qs);
        int32x4_t p = dot16(dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(vandq_u8(v, m4)), vld1q_s8(y[ib].qs)),
                            vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), vld1q_s8(y[ib].qs + 16));
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), f16(x[ib].d) * f16(y[ib].d));
        summ += f16(x[ib].m) * f16(y[ib].s);
    }
    *s = vaddvq_f32(acc) + summ;
}

static void dot_iq4_nl(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_iq4_nl *x = vx;
    const phiq_block_q8_0 *y = vy;
    float32x4_t acc = vdupq_n_f32(0);
    const int8x16_t tab = vld1q_s8(phiq_kvalues_iq4nl);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    for (int64_t ib = 0; ib < n / PHIQ_QK; ib++) {
        const uint8x16_t v = vld1q_u8(x[ib].qs);
        int32x4_t p = dot16(dot16(vdupq_n_s32(0), vqtbl1q_s8(tab, vandq_u8(v, m4)), vld1q_s8(y[ib].qs)),
                            vqtbl1q_s8(tab, vshrq_n_u8(v, 4)), vld1q_s8(y[ib].qs + 16));
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), f16(x[ib].d) * f16(y[ib].d));
    }
    *s = vaddvq_f32(acc);
}


static void dot_q6_K(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_q6_K *x = vx;
    const phiq_block_q8_K *y = vy;
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m3 = vdupq_n_u8(3);
    const int8x16_t k32 = vdupq_n_s8(32);
    float sumf = 0;
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {
        int isum = 0;
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h, *qh = x[i].qh + 32 * h;
            const int8_t *q8 = y[i].qs + 128 * h;
            const int8_t *sc = x[i].scales + 8 * h;
            for (int t = 0; t < 2; t++) {
                const uint8x16_t a = vld1q_u8(ql + 16 * t), b = vld1q_u8(ql + 32 + 16 * t), hb = vld1q_u8(qh + 16 * t);
                uint8x16_t q[4];
                q[0] = vorrq_u8(vandq_u8(a, m4), vshlq_n_u8(vandq_u8(hb, m3), 4));
                q[1] = vorrq_u8(vandq_u8(b, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), m3), 4));
                q[2] = vorrq_u8(vshrq_n_u8(a, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), m3), 4));
                q[3] = vorrq_u8(vshrq_n_u8(b, 4), vshlq_n_u8(vshrq_n_u8(hb, 6), 4));
                for (int k = 0; k < 4; k++) {
                    int8x16_t v = vsubq_s8(vreinterpretq_s8_u8(q[k]), k32);
                    isum += sc[2 * k + t] * vaddvq_s32(dot16(vdupq_n_s32(0), v, vld1q_s8(q8 + 32 * k + 16 * t)));
                }
            }
        }
        sumf += f16(x[i].d) * y[i].d * isum;
    }
    *s = sumf;
}

/* Float types: four float32x4 accumulators, scalar tail. */
static inline float32x4_t ld_f16(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

/* f16 x f16, f16 x f32 and f32 x f32: one body, LX/LY load four lanes, SX/SY one value. */
#define NEON_FLOAT_DOT(name, XT, YT, LX, LY, SX, SY)                                               \
    static void name(int64_t n, float *s, const void *vx, const void *vy) {                        \
        const XT *x = vx;                                                                          \
        const YT *y = vy;                                                                          \
        float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0;                                \
        int64_t i = 0;                                                                             \
        for (; i + 16 <= n; i += 16) {                                                             \
            a0 = vfmaq_f32(a0, LX(x + i), LY(y + i));                                              \
            a1 = vfmaq_f32(a1, LX(x + i + 4), LY(y + i + 4));                                      \
            a2 = vfmaq_f32(a2, LX(x + i + 8), LY(y + i + 8));                                      \
            a3 = vfmaq_f32(a3, LX(x + i + 12), LY(y + i + 12));                                    \
        }                                                                                          \
        float t = 0;                                                                               \
        for (; i < n; i++) t += SX(x[i]) * SY(y[i]);                                               \
        *s = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3))) + t;                      \
    }
#define S_SAME(v) (v)
NEON_FLOAT_DOT(dot_f16, uint16_t, uint16_t, ld_f16, ld_f16, f16, f16)
NEON_FLOAT_DOT(dot_f16_f32, uint16_t, float, ld_f16, vld1q_f32, f16, S_SAME)
NEON_FLOAT_DOT(dot_f32, float, float, vld1q_f32, vld1q_f32, S_SAME, S_SAME)

/* This file's types, baseline and with dotprod (which overrides four). */
#define NEON_TYPES(X)                                                                              \
    X(Q4_0, q4_0) X(Q8_0, q8_0) X(Q4_K, q4_K) X(Q5_K, q5_K) X(Q6_K, q6_K) X(Q4_1, q4_1)            \
    X(IQ4_NL, iq4_nl) X(F16, f16) X(F32, f32)
#define NEON_DP_TYPES(X) X(Q4_0, q4_0_dp) X(Q8_0, q8_0_dp) X(Q4_K, q4_K_dp) X(Q5_K, q5_K_dp)
NEON_TYPES(PHIQ_ROWS_DOT_K)
NEON_DP_TYPES(PHIQ_ROWS_DOT_K)

void phiq_kernels_init_neon(phiq_kernels *k, int dotprod) {
    phiq_kernels_init_scalar(k);
    k->isa = "neon";
    k->dot_f16_f32 = dot_f16_f32;
    NEON_TYPES(PHIQ_KERNELS_SET_K)
    if (dotprod) {
        k->isa = "neon+dotprod";
        NEON_DP_TYPES(PHIQ_KERNELS_SET_K)
    }
}
