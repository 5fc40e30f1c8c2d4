/* attn_neon.c — NEON span kernels of attention (AArch64 baseline: no
 * dotprod, no FP16 arithmetic; see attn.h). f16 cache: keys and values
 * widened 4 at a time (vcvt_f32_f16), FMA dots and axpys, the span's
 * maximum then libm expf as the portable kernel. Q8_0 cache: exact int32
 * block sums (vmull_s8 + pairwise adds) times d_k * d_q as ggml's generic
 * vec_dot, ggml's one-position-at-a-time online softmax with expf, V
 * blocks widened to f32 and added with FMA. */
#include <arm_neon.h>
#include <math.h>

#include "kernels/attn.h"
#include "kernels/dot.h"

static inline float32x4_t ld4h(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

static inline float h2f(uint16_t h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }

void phiq_attn_span_f16_neon(const float *q, float scale, const uint16_t *K, const uint16_t *V, size_t stride, int n,
                             float *st, float *s, int hd) {
    const int hd4 = hd & ~3;
    for (int k = 0; k < n; k++) {
        const uint16_t *kr = K + (size_t)k * stride;
        float32x4_t a0 = vdupq_n_f32(0), a1 = vdupq_n_f32(0);
        int i = 0;
        for (; i + 8 <= hd4; i += 8) {
            a0 = vfmaq_f32(a0, ld4h(kr + i), vld1q_f32(q + i));
            a1 = vfmaq_f32(a1, ld4h(kr + i + 4), vld1q_f32(q + i + 4));
        }
        for (; i < hd4; i += 4) a0 = vfmaq_f32(a0, ld4h(kr + i), vld1q_f32(q + i));
        float d = vaddvq_f32(vaddq_f32(a0, a1));
        for (; i < hd; i++) d += h2f(kr[i]) * q[i];
        s[k] = d * scale;
    }
    phiq_attn_state_fold(st, s, n, hd);
    float *o = st + 2;
    for (int k = 0; k < n; k++) {
        const uint16_t *vr = V + (size_t)k * stride;
        const float p = s[k];
        int i = 0;
        for (; i < hd4; i += 4) vst1q_f32(o + i, vfmaq_n_f32(vld1q_f32(o + i), ld4h(vr + i), p));
        for (; i < hd; i++) o[i] += p * h2f(vr[i]);
    }
}

void phiq_f32_to_f16_row_neon(uint16_t *dst, const float *src, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(dst + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + i))));
    for (; i < n; i++) dst[i] = vget_lane_u16(vreinterpret_u16_f16(vcvt_f16_f32(vdupq_n_f32(src[i]))), 0);
}

/* exact sum over 32 int8 products */
static inline int32_t q8_block_dot(const int8_t *x, const int8_t *y) {
    const int8x16_t x0 = vld1q_s8(x), x1 = vld1q_s8(x + 16), y0 = vld1q_s8(y), y1 = vld1q_s8(y + 16);
    int32x4_t acc = vpaddlq_s16(vmull_s8(vget_low_s8(x0), vget_low_s8(y0)));
    acc = vpadalq_s16(acc, vmull_s8(vget_high_s8(x0), vget_high_s8(y0)));
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(x1), vget_low_s8(y1)));
    acc = vpadalq_s16(acc, vmull_s8(vget_high_s8(x1), vget_high_s8(y1)));
    return vaddvq_s32(acc);
}

void phiq_attn_span_q8_0_neon(const void *q8, const uint8_t *K, const uint8_t *V, size_t stride, int n, float *st,
                              float *s, int hd) {
    const phiq_block_q8_0 *qb = q8;
    const int nb = hd / PHIQ_QK;
    for (int k = 0; k < n; k++) {
        const phiq_block_q8_0 *kb = (const phiq_block_q8_0 *)(const void *)(K + (size_t)k * stride);
        float d = 0.0f;
        for (int b = 0; b < nb; b++) d += (float)q8_block_dot(kb[b].qs, qb[b].qs) * (h2f(kb[b].d) * h2f(qb[b].d));
        s[k] = d;
    }
    float M = st[0], S = st[1], *o = st + 2;
    for (int k = 0; k < n; k++) {
        const phiq_block_q8_0 *vb = (const phiq_block_q8_0 *)(const void *)(V + (size_t)k * stride);
        float ms = 1.0f, vs = 1.0f;
        if (s[k] > M) {
            ms = expf(M - s[k]);
            M = s[k];
            const float32x4_t m4 = vdupq_n_f32(ms);
            for (int i = 0; i < hd; i += 4) vst1q_f32(o + i, vmulq_f32(vld1q_f32(o + i), m4));
        } else {
            vs = expf(s[k] - M);
        }
        for (int b = 0; b < nb; b++) {
            const float32x4_t d = vdupq_n_f32(h2f(vb[b].d));
            float *ob = o + b * PHIQ_QK;
            for (int j = 0; j < PHIQ_QK; j += 8) {
                const int16x8_t w = vmovl_s8(vld1_s8(vb[b].qs + j));
                const float32x4_t lo = vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(w))), d);
                const float32x4_t hi = vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(w))), d);
                vst1q_f32(ob + j, vfmaq_n_f32(vld1q_f32(ob + j), lo, vs));
                vst1q_f32(ob + j + 4, vfmaq_n_f32(vld1q_f32(ob + j + 4), hi, vs));
            }
        }
        S = S * ms + vs;
    }
    st[0] = M;
    st[1] = S;
}
