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

static void dot_q4_0(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_q4_0 *x = vx;
    const phiq_block_q8_0 *y = vy;
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t k8 = vdupq_n_s8(8);
    for (int64_t ib = 0; ib < n / PHIQ_QK; ib++) {
        const uint8x16_t v = vld1q_u8(x[ib].qs);
        const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, m4)), k8);
        const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), k8);
        int32x4_t p = dot16(dot16(vdupq_n_s32(0), lo, vld1q_s8(y[ib].qs)), hi, vld1q_s8(y[ib].qs + 16));
        const float d = f16(x[ib].d) * f16(y[ib].d);
        if (ib & 1) acc1 = vmlaq_n_f32(acc1, vcvtq_f32_s32(p), d);
        else acc0 = vmlaq_n_f32(acc0, vcvtq_f32_s32(p), d);
    }
    *s = vaddvq_f32(vaddq_f32(acc0, acc1));
}

static void dot_q8_0(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_q8_0 *x = vx;
    const phiq_block_q8_0 *y = vy;
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0);
    for (int64_t ib = 0; ib < n / PHIQ_QK; ib++) {
        int32x4_t p = dot16(dot16(vdupq_n_s32(0), vld1q_s8(x[ib].qs), vld1q_s8(y[ib].qs)), vld1q_s8(x[ib].qs + 16),
                            vld1q_s8(y[ib].qs + 16));
        const float d = f16(x[ib].d) * f16(y[ib].d);
        if (ib & 1) acc1 = vmlaq_n_f32(acc1, vcvtq_f32_s32(p), d);
        else acc0 = vmlaq_n_f32(acc0, vcvtq_f32_s32(p), d);
    }
    *s = vaddvq_f32(vaddq_f32(acc0, acc1));
}

static void dot_q4_K(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_q4_K *x = vx;
    const phiq_block_q8_K *y = vy;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    float sumf = 0;
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {
        uint8_t sc[8], mn[8];
        phiq_k4_scale_min_all(x[i].scales, sc, mn);
        int summ = 0;
        for (int j = 0; j < 8; j++) summ += mn[j] * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        int isum = 0;
        for (int c = 0; c < 4; c++) {
            const uint8x16_t v0 = vld1q_u8(x[i].qs + 32 * c), v1 = vld1q_u8(x[i].qs + 32 * c + 16);
            const int8_t *q8 = y[i].qs + 64 * c;
            int32x4_t lo = dot16(dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(vandq_u8(v0, m4)), vld1q_s8(q8)),
                                 vreinterpretq_s8_u8(vandq_u8(v1, m4)), vld1q_s8(q8 + 16));
            int32x4_t hi = dot16(dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(vshrq_n_u8(v0, 4)), vld1q_s8(q8 + 32)),
                                 vreinterpretq_s8_u8(vshrq_n_u8(v1, 4)), vld1q_s8(q8 + 48));
            isum += sc[2 * c] * vaddvq_s32(lo) + sc[2 * c + 1] * vaddvq_s32(hi);
        }
        sumf += f16(x[i].d) * y[i].d * isum - f16(x[i].dmin) * y[i].d * summ;
    }
    *s = sumf;
}

static void dot_q5_K(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_q5_K *x = vx;
    const phiq_block_q8_K *y = vy;
    const uint8x16_t m4 = vdupq_n_u8(0x0F), one = vdupq_n_u8(1);
    float sumf = 0;
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {
        uint8_t sc[8], mn[8];
        phiq_k4_scale_min_all(x[i].scales, sc, mn);
        int summ = 0;
        for (int j = 0; j < 8; j++) summ += mn[j] * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        const uint8x16_t h0 = vld1q_u8(x[i].qh), h1 = vld1q_u8(x[i].qh + 16);
        int isum = 0;
        for (int c = 0; c < 4; c++) {
            const uint8x16_t v0 = vld1q_u8(x[i].qs + 32 * c), v1 = vld1q_u8(x[i].qs + 32 * c + 16);
            const int8x16_t sl = vdupq_n_s8((int8_t)(-2 * c)), sh = vdupq_n_s8((int8_t)(-2 * c - 1));
            /* bit 2c (sub-block 2c) / 2c+1 (sub-block 2c+1) of qh[l], moved to bit 4 */
            const uint8x16_t a0 = vorrq_u8(vandq_u8(v0, m4), vshlq_n_u8(vandq_u8(vshlq_u8(h0, sl), one), 4));
            const uint8x16_t a1 = vorrq_u8(vandq_u8(v1, m4), vshlq_n_u8(vandq_u8(vshlq_u8(h1, sl), one), 4));
            const uint8x16_t b0 = vorrq_u8(vshrq_n_u8(v0, 4), vshlq_n_u8(vandq_u8(vshlq_u8(h0, sh), one), 4));
            const uint8x16_t b1 = vorrq_u8(vshrq_n_u8(v1, 4), vshlq_n_u8(vandq_u8(vshlq_u8(h1, sh), one), 4));
            const int8_t *q8 = y[i].qs + 64 * c;
            int32x4_t lo = dot16(dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(a0), vld1q_s8(q8)), vreinterpretq_s8_u8(a1),
                                 vld1q_s8(q8 + 16));
            int32x4_t hi = dot16(dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(b0), vld1q_s8(q8 + 32)), vreinterpretq_s8_u8(b1),
                                 vld1q_s8(q8 + 48));
            isum += sc[2 * c] * vaddvq_s32(lo) + sc[2 * c + 1] * vaddvq_s32(hi);
        }
        sumf += f16(x[i].d) * y[i].d * isum - f16(x[i].dmin) * y[i].d * summ;
    }
    *s = sumf;
}

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

/* The same kernels (Q4_0, Q8_0, Q4_K, Q5_K) with the ARMv8.2 dot-product instruction (SDOT),
 * chosen at run time when the CPU reports it (HWCAP_ASIMDDP). */
#define DP __attribute__((target("arch=armv8.2-a+dotprod")))
DP static inline int32x4_t dot16_dp(int32x4_t acc, int8x16_t a, int8x16_t b) { return vdotq_s32(acc, a, b); }

DP static void dot_q4_0_dp(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_q4_0 *x = vx;
    const phiq_block_q8_0 *y = vy;
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t k8 = vdupq_n_s8(8);
    for (int64_t ib = 0; ib < n / PHIQ_QK; ib++) {
        const uint8x16_t v = vld1q_u8(x[ib].qs);
        const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, m4)), k8);
        const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), k8);
        int32x4_t p = dot16_dp(dot16_dp(vdupq_n_s32(0), lo, vld1q_s8(y[ib].qs)), hi, vld1q_s8(y[ib].qs + 16));
        const float d = f16(x[ib].d) * f16(y[ib].d);
        if (ib & 1) acc1 = vmlaq_n_f32(acc1, vcvtq_f32_s32(p), d);
        else acc0 = vmlaq_n_f32(acc0, vcvtq_f32_s32(p), d);
    }
    *s = vaddvq_f32(vaddq_f32(acc0, acc1));
}

DP static void dot_q8_0_dp(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_q8_0 *x = vx;
    const phiq_block_q8_0 *y = vy;
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0);
    for (int64_t ib = 0; ib < n / PHIQ_QK; ib++) {
        int32x4_t p = dot16_dp(dot16_dp(vdupq_n_s32(0), vld1q_s8(x[ib].qs), vld1q_s8(y[ib].qs)), vld1q_s8(x[ib].qs + 16),
                            vld1q_s8(y[ib].qs + 16));
        const float d = f16(x[ib].d) * f16(y[ib].d);
        if (ib & 1) acc1 = vmlaq_n_f32(acc1, vcvtq_f32_s32(p), d);
        else acc0 = vmlaq_n_f32(acc0, vcvtq_f32_s32(p), d);
    }
    *s = vaddvq_f32(vaddq_f32(acc0, acc1));
}

DP static void dot_q4_K_dp(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_q4_K *x = vx;
    const phiq_block_q8_K *y = vy;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    float sumf = 0;
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {
        uint8_t sc[8], mn[8];
        phiq_k4_scale_min_all(x[i].scales, sc, mn);
        int summ = 0;
        for (int j = 0; j < 8; j++) summ += mn[j] * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        int isum = 0;
        for (int c = 0; c < 4; c++) {
            const uint8x16_t v0 = vld1q_u8(x[i].qs + 32 * c), v1 = vld1q_u8(x[i].qs + 32 * c + 16);
            const int8_t *q8 = y[i].qs + 64 * c;
            int32x4_t lo = dot16_dp(dot16_dp(vdupq_n_s32(0), vreinterpretq_s8_u8(vandq_u8(v0, m4)), vld1q_s8(q8)),
                                 vreinterpretq_s8_u8(vandq_u8(v1, m4)), vld1q_s8(q8 + 16));
            int32x4_t hi = dot16_dp(dot16_dp(vdupq_n_s32(0), vreinterpretq_s8_u8(vshrq_n_u8(v0, 4)), vld1q_s8(q8 + 32)),
                                 vreinterpretq_s8_u8(vshrq_n_u8(v1, 4)), vld1q_s8(q8 + 48));
            isum += sc[2 * c] * vaddvq_s32(lo) + sc[2 * c + 1] * vaddvq_s32(hi);
        }
        sumf += f16(x[i].d) * y[i].d * isum - f16(x[i].dmin) * y[i].d * summ;
    }
    *s = sumf;
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

DP static void dot_q5_K_dp(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_q5_K *x = vx;
    const phiq_block_q8_K *y = vy;
    const uint8x16_t m4 = vdupq_n_u8(0x0F), one = vdupq_n_u8(1);
    float sumf = 0;
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {
        uint8_t sc[8], mn[8];
        phiq_k4_scale_min_all(x[i].scales, sc, mn);
        int summ = 0;
        for (int j = 0; j < 8; j++) summ += mn[j] * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        const uint8x16_t h0 = vld1q_u8(x[i].qh), h1 = vld1q_u8(x[i].qh + 16);
        int isum = 0;
        for (int c = 0; c < 4; c++) {
            const uint8x16_t v0 = vld1q_u8(x[i].qs + 32 * c), v1 = vld1q_u8(x[i].qs + 32 * c + 16);
            const int8x16_t sl = vdupq_n_s8((int8_t)(-2 * c)), sh = vdupq_n_s8((int8_t)(-2 * c - 1));
            /* bit 2c (sub-block 2c) / 2c+1 (sub-block 2c+1) of qh[l], moved to bit 4 */
            const uint8x16_t a0 = vorrq_u8(vandq_u8(v0, m4), vshlq_n_u8(vandq_u8(vshlq_u8(h0, sl), one), 4));
            const uint8x16_t a1 = vorrq_u8(vandq_u8(v1, m4), vshlq_n_u8(vandq_u8(vshlq_u8(h1, sl), one), 4));
            const uint8x16_t b0 = vorrq_u8(vshrq_n_u8(v0, 4), vshlq_n_u8(vandq_u8(vshlq_u8(h0, sh), one), 4));
            const uint8x16_t b1 = vorrq_u8(vshrq_n_u8(v1, 4), vshlq_n_u8(vandq_u8(vshlq_u8(h1, sh), one), 4));
            const int8_t *q8 = y[i].qs + 64 * c;
            int32x4_t lo = dot16_dp(dot16_dp(vdupq_n_s32(0), vreinterpretq_s8_u8(a0), vld1q_s8(q8)), vreinterpretq_s8_u8(a1),
                                 vld1q_s8(q8 + 16));
            int32x4_t hi = dot16_dp(dot16_dp(vdupq_n_s32(0), vreinterpretq_s8_u8(b0), vld1q_s8(q8 + 32)), vreinterpretq_s8_u8(b1),
                                 vld1q_s8(q8 + 48));
            isum += sc[2 * c] * vaddvq_s32(lo) + sc[2 * c + 1] * vaddvq_s32(hi);
        }
        sumf += f16(x[i].d) * y[i].d * isum - f16(x[i].dmin) * y[i].d * summ;
    }
    *s = sumf;
}

/* Float types: four float32x4 accumulators, scalar tail. */
static inline float32x4_t ld_f16(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

static void dot_f16(int64_t n, float *s, const void *vx, const void *vy) {
    const uint16_t *x = vx, *y = vy;
    float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = vfmaq_f32(a0, ld_f16(x + i), ld_f16(y + i));
        a1 = vfmaq_f32(a1, ld_f16(x + i + 4), ld_f16(y + i + 4));
        a2 = vfmaq_f32(a2, ld_f16(x + i + 8), ld_f16(y + i + 8));
        a3 = vfmaq_f32(a3, ld_f16(x + i + 12), ld_f16(y + i + 12));
    }
    float t = 0;
    for (; i < n; i++) t += f16(x[i]) * f16(y[i]);
    *s = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3))) + t;
}

static void dot_f16_f32(int64_t n, float *s, const void *vx, const void *vy) {
    const uint16_t *x = vx;
    const float *y = vy;
    float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = vfmaq_f32(a0, ld_f16(x + i), vld1q_f32(y + i));
        a1 = vfmaq_f32(a1, ld_f16(x + i + 4), vld1q_f32(y + i + 4));
        a2 = vfmaq_f32(a2, ld_f16(x + i + 8), vld1q_f32(y + i + 8));
        a3 = vfmaq_f32(a3, ld_f16(x + i + 12), vld1q_f32(y + i + 12));
    }
    float t = 0;
    for (; i < n; i++) t += f16(x[i]) * y[i];
    *s = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3))) + t;
}

static void dot_f32(int64_t n, float *s, const void *vx, const void *vy) {
    const float *x = vx, *y = vy;
    float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = vfmaq_f32(a0, vld1q_f32(x + i), vld1q_f32(y + i));
        a1 = vfmaq_f32(a1, vld1q_f32(x + i + 4), vld1q_f32(y + i + 4));
        a2 = vfmaq_f32(a2, vld1q_f32(x + i + 8), vld1q_f32(y + i + 8));
        a3 = vfmaq_f32(a3, vld1q_f32(x + i + 12), vld1q_f32(y + i + 12));
    }
    float t = 0;
    for (; i < n; i++) t += x[i] * y[i];
    *s = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3))) + t;
}

PHIQ_ROWS_FROM_DOT(q4_0)
PHIQ_ROWS_FROM_DOT(q8_0)
PHIQ_ROWS_FROM_DOT(q4_K)
PHIQ_ROWS_FROM_DOT(q4_0_dp)
PHIQ_ROWS_FROM_DOT(q8_0_dp)
PHIQ_ROWS_FROM_DOT(q4_K_dp)
PHIQ_ROWS_FROM_DOT(q5_K)
PHIQ_ROWS_FROM_DOT(q4_1)
PHIQ_ROWS_FROM_DOT(iq4_nl)
PHIQ_ROWS_FROM_DOT(q5_K_dp)
PHIQ_ROWS_FROM_DOT(q6_K)
PHIQ_ROWS_FROM_DOT(f16)
PHIQ_ROWS_FROM_DOT(f32)

void phiq_kernels_init_neon(phiq_kernels *k, int dotprod) {
    phiq_kernels_init_scalar(k);
    k->isa = "neon";
    k->dot_f16_f32 = dot_f16_f32;
#define SET(T, name)                                                                               \
    (k->vec_dot[PHIQ_GGML_TYPE_##T] = dot_##name, k->matvec[PHIQ_GGML_TYPE_##T] = mv_##name,               \
     k->gemm[PHIQ_GGML_TYPE_##T] = gm_##name)
    SET(Q4_0, q4_0);
    SET(Q8_0, q8_0);
    SET(Q4_K, q4_K);
    SET(Q6_K, q6_K);
    SET(Q5_K, q5_K);
    SET(Q4_1, q4_1);
    SET(IQ4_NL, iq4_nl);
    SET(F16, f16);
    SET(F32, f32);
    if (dotprod) {
        k->isa = "neon+dotprod";
        SET(Q4_0, q4_0_dp);
        SET(Q8_0, q8_0_dp);
        SET(Q4_K, q4_K_dp);
        SET(Q5_K, q5_K_dp);
    }
#undef SET
}
