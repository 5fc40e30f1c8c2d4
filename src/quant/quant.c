/* quant.c — quantizer dispatch (phiq_quantize / phiq_dequantize), the float
 * types (F32/F16/BF16), the 32-element block types (Q4_0, Q4_1, Q5_0, Q5_1,
 * Q8_0, Q8_1, IQ4_NL), IQ4_XS and the finiteness check. K-quants live in
 * quant_k.c.
 *
 * Every quantizer reproduces ggml-quants.c's float32 arithmetic operation
 * by operation (same order, same int/float conversions, same truncating
 * casts), because llama.cpp's output is the byte-exact reference.
 */
#include "quant/quant.h"

#include <float.h>

#include "quant/quant_internal.h"

int64_t phiq_quant_check_finite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        if ((u & 0x7f800000u) == 0x7f800000u) return i;
    }
    return -1;
}

/* ---- Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 / Q8_1 reference paths ------------ */

/* Signed value of largest magnitude (first one on ties) and its magnitude. */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void q4_0_ref(const float *x, phiq_block_q4_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += PHIQ_QK) {
        const float max = signed_absmax(x, PHIQ_QK);
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = phiq_f2h(d);
        for (int j = 0; j < 16; j++) {
            const float x0 = x[j] * id, x1 = x[16 + j] * id;
            /* truncation after +8.5, as ggml's (int8_t) cast */
            const uint8_t xi0 = (uint8_t)phiq_imin(15, (int8_t)(x0 + 8.5f));
            const uint8_t xi1 = (uint8_t)phiq_imin(15, (int8_t)(x1 + 8.5f));
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

static void minmax(const float *x, int n, float *mn, float *mx) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    *mn = min;
    *mx = max;
}

static void q4_1_ref(const float *x, phiq_block_q4_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += PHIQ_QK) {
        float min, max;
        minmax(x, PHIQ_QK, &min, &max);
        const float d = (max - min) / ((1 << 4) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = phiq_f2h(d);
        y[i].m = phiq_f2h(min);
        for (int j = 0; j < 16; j++) {
            const float x0 = (x[j] - min) * id, x1 = (x[16 + j] - min) * id;
            const uint8_t xi0 = (uint8_t)phiq_imin(15, (int8_t)(x0 + 0.5f));
            const uint8_t xi1 = (uint8_t)phiq_imin(15, (int8_t)(x1 + 0.5f));
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

/* Packs 32 five-bit values: low nibbles as Q4_0, bit 4 of element j in qh bit j. */
static void pack5(const uint8_t *L, uint8_t qs[16], uint8_t qh[4]) {
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        const uint8_t xi0 = L[j], xi1 = L[j + 16];
        qs[j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
        h |= ((xi0 & 0x10u) >> 4) << (j + 0);
        h |= ((xi1 & 0x10u) >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> (8 * k));
}

static void q5_0_ref(const float *x, phiq_block_q5_0 *y, int64_t nb) {
    uint8_t L[32];
    for (int64_t i = 0; i < nb; i++, x += PHIQ_QK) {
        const float max = signed_absmax(x, PHIQ_QK);
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = phiq_f2h(d);
        for (int j = 0; j < 32; j++) L[j] = (uint8_t)phiq_imin(31, (int8_t)(x[j] * id + 16.5f));
        pack5(L, y[i].qs, y[i].qh);
    }
}

static void q5_1_ref(const float *x, phiq_block_q5_1 *y, int64_t nb) {
    uint8_t L[32];
    for (int64_t i = 0; i < nb; i++, x += PHIQ_QK) {
        float min, max;
        minmax(x, PHIQ_QK, &min, &max);
        const float d = (max - min) / ((1 << 5) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = phiq_f2h(d);
        y[i].m = phiq_f2h(min);
        /* no clamp here in ggml: (uint8_t)(v + 0.5f) */
        for (int j = 0; j < 32; j++) L[j] = (uint8_t)((x[j] - min) * id + 0.5f);
        pack5(L, y[i].qs, y[i].qh);
    }
}

void phiq_quantize_row_q8_0(const float *x, void *dst, int64_t n) {
    phiq_block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / PHIQ_QK; i++, x += PHIQ_QK) {
        float amax = 0.0f;
        for (int j = 0; j < PHIQ_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = phiq_f2h(d);
        for (int j = 0; j < PHIQ_QK; j++) y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

void phiq_quantize_row_q8_1(const float *x, void *dst, int64_t n) {
    phiq_block_q8_1 *y = dst;
    for (int64_t i = 0; i < n / PHIQ_QK; i++, x += PHIQ_QK) {
        float amax = 0.0f;
        for (int j = 0; j < PHIQ_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = phiq_f2h(d);
        int sum = 0;
        for (int j = 0; j < PHIQ_QK; j++) {
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
            sum += y[i].qs[j];
        }
        y[i].s = phiq_f2h((float)sum * d);
    }
}

/* ---- search helpers used by the imatrix paths ---------------------------- */

/* ggml's make_qx_quants with rmse_type 1: symmetric levels -nmax..nmax-1,
 * 19 trial scales, weights qw (or x^2). L receives l + nmax. */
float phiq_make_qx_quants(int n, int nmax, const float *x, int8_t *L, const float *qw);
/* ggml's make_qkx3_quants (asymmetric, weights or x^2). */
float phiq_make_qkx3_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                            float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep);

static float row_sigma2(const float *x, int64_t n) {
    float sum_x2 = 0;
    for (int64_t j = 0; j < n; j++) sum_x2 += x[j] * x[j];
    return sum_x2 / (float)n;
}

static void q4_0_imat(const float *x, phiq_block_q4_0 *y, int64_t n, const float *qw) {
    float weight[32];
    int8_t L[32];
    const float sigma2 = row_sigma2(x, n);
    for (int64_t ib = 0; ib < n / 32; ib++) {
        const float *xb = x + 32 * ib, *w = qw + 32 * ib;
        for (int j = 0; j < 32; j++) weight[j] = w[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        const float d = phiq_make_qx_quants(32, 8, xb, L, weight);
        y[ib].d = phiq_f2h(d);
        for (int j = 0; j < 16; j++) y[ib].qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
    }
}

static void q4_1_imat(const float *x, phiq_block_q4_1 *y, int64_t n, const float *qw) {
    float weight[32];
    uint8_t L[32], Laux[32];
    const float sigma2 = row_sigma2(x, n);
    for (int64_t ib = 0; ib < n / 32; ib++) {
        const float *xb = x + 32 * ib, *w = qw + 32 * ib;
        for (int j = 0; j < 32; j++) weight[j] = w[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        float min;
        const float d = phiq_make_qkx3_quants(32, 15, xb, weight, L, &min, Laux, -0.9f, 0.05f, 36);
        y[ib].d = phiq_f2h(d);
        y[ib].m = phiq_f2h(-min);
        for (int j = 0; j < 16; j++) y[ib].qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
    }
}

static void q5_0_imat(const float *x, phiq_block_q5_0 *y, int64_t n, const float *qw) {
    float weight[32];
    int8_t L[32];
    const float sigma2 = row_sigma2(x, n);
    for (int64_t ib = 0; ib < n / 32; ib++) {
        const float *xb = x + 32 * ib, *w = qw + 32 * ib;
        for (int j = 0; j < 32; j++) weight[j] = w[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        const float d = phiq_make_qx_quants(32, 16, xb, L, weight);
        y[ib].d = phiq_f2h(d);
        pack5((const uint8_t *)L, y[ib].qs, y[ib].qh);
    }
}

static void q5_1_imat(const float *x, phiq_block_q5_1 *y, int64_t n, const float *qw) {
    float weight[32];
    uint8_t L[32], Laux[32];
    const float sigma2 = row_sigma2(x, n);
    for (int64_t ib = 0; ib < n / 32; ib++) {
        const float *xb = x + 32 * ib, *w = qw + 32 * ib;
        for (int j = 0; j < 32; j++) weight[j] = w[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        float min;
        const float d = phiq_make_qkx3_quants(32, 31, xb, weight, L, &min, Laux, -0.9f, 0.05f, 36);
        y[ib].d = phiq_f2h(d);
        y[ib].m = phiq_f2h(-min);
        pack5(L, y[ib].qs, y[ib].qh);
    }
}

/* ---- IQ4_NL / IQ4_XS ------------------------------------------------------ */

static int best_index_iq4(float x) {
    const int8_t *val = phiq_kvalues_iq4nl;
    if (x <= val[0]) return 0;
    if (x >= val[15]) return 15;
    int ml = 0, mu = 15;
    while (mu - ml > 1) {
        const int mav = (ml + mu) / 2;
        if (x < val[mav]) mu = mav;
        else ml = mav;
    }
    return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

/* One IQ4_NL block (sb = 32) or IQ4_XS super-block (sb = 256), as ggml's
 * quantize_row_iq4_nl_impl with ntry = 7 (the quantize_iq4_* path that
 * llama-quantize takes, with or without imatrix). */
static void iq4_block(int sb, const float *x, phiq_half *dh, uint8_t *q4, uint16_t *scales_h,
                      uint8_t *scales_l, const float *qw) {
    const int ntry = 7, bs = 32, nsub = sb / bs;
    const int8_t *values = phiq_kvalues_iq4nl;
    float scales[8], weight[32];
    uint8_t L[256];
    memset(L, 0, sizeof L);
    float sigma2 = 0;
    for (int j = 0; j < sb; j++) sigma2 += x[j] * x[j];
    sigma2 *= 2.f / sb;
    memset(q4, 0, (size_t)sb / 2);
    *dh = phiq_f2h(0.f);
    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < nsub; ib++) {
        const float *xb = x + ib * bs;
        uint8_t *Lb = L + ib * bs;
        if (qw) {
            const float *w = qw + ib * bs;
            for (int j = 0; j < bs; j++) weight[j] = w[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        } else {
            for (int j = 0; j < bs; j++) weight[j] = xb[j] * xb[j];
        }
        float amax = 0, max = 0;
        for (int j = 0; j < bs; j++) {
            const float ax = fabsf(xb[j]);
            if (ax > amax) {
                amax = ax;
                max = xb[j];
            }
        }
        if (amax < PHIQ_GROUP_MAX_EPS) {
            scales[ib] = 0;
            continue;
        }
        float d = -max / values[0];
        float id = 1 / d;
        float sumqx = 0, sumq2 = 0;
        for (int j = 0; j < bs; j++) {
            const int l = best_index_iq4(id * xb[j]);
            Lb[j] = (uint8_t)l;
            const float q = values[l], w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
        float best = d * sumqx;
        for (int itry = -ntry; itry <= ntry; itry++) {
            id = (itry + values[0]) / max;
            sumqx = sumq2 = 0;
            for (int j = 0; j < bs; j++) {
                const int l = best_index_iq4(id * xb[j]);
                const float q = values[l], w = weight[j];
                sumqx += w * q * xb[j];
                sumq2 += w * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        const float abs_d = fabsf(d);
        if (abs_d > amax_scale) {
            amax_scale = abs_d;
            max_scale = d;
        }
    }
    if (nsub > 1) {
        *scales_h = 0;
        const float d = -max_scale / 32; /* -0.0 for an all-zero block, as ggml */
        *dh = phiq_f2h(d);
        const float id = d ? 1 / d : 0.f;
        for (int ib = 0; ib < nsub; ib++) {
            int l = phiq_nearest_int(id * scales[ib]);
            l = phiq_imax(-32, phiq_imin(31, l));
            const float dl = d * l;
            const float idl = dl ? 1 / dl : 0.f;
            uint8_t *Lb = L + ib * bs;
            const float *xb = x + ib * bs;
            for (int j = 0; j < bs; j++) Lb[j] = (uint8_t)best_index_iq4(idl * xb[j]);
            l += 32;
            const uint8_t l_l = (uint8_t)(l & 0xf), l_h = (uint8_t)(l >> 4);
            if (ib % 2 == 0) scales_l[ib / 2] = l_l;
            else scales_l[ib / 2] |= (uint8_t)(l_l << 4);
            *scales_h |= (uint16_t)(l_h << 2 * (ib % 8));
        }
    } else {
        *dh = phiq_f2h(scales[0]);
        const float id = scales[0] ? 1 / scales[0] : 0;
        for (int j = 0; j < sb; j++) L[j] = (uint8_t)best_index_iq4(id * x[j]);
    }
    for (int i = 0; i < sb / 32; i++)
        for (int j = 0; j < 16; j++) q4[16 * i + j] = (uint8_t)(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

#if PHIQ_QUANT_HAVE_AVX2
/* The same IQ4 quantization with the scale search and index lookups of 8
 * blocks done in AVX2 lanes (quant_avx2.c); the per-super-block parts stay
 * scalar. Byte-identical to iq4_block (tests compare both with ggml). */
static void iq4_weights(const float *x, int n, float sigma2, const float *qw, float *w) {
    for (int j = 0; j < n; j++) w[j] = qw ? qw[j] * sqrtf(sigma2 + x[j] * x[j]) : x[j] * x[j];
}

static void iq4_xs_block_avx2(const float *x, phiq_block_iq4_xs *b, const float *qw) {
    float sigma2 = 0, w[256], scales[8], idl[8];
    uint8_t L[256];
    for (int j = 0; j < 256; j++) sigma2 += x[j] * x[j];
    sigma2 *= 2.f / 256;
    iq4_weights(x, 256, sigma2, qw, w);
    phiq_iq4_scales_avx2(x, w, scales);
    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < 8; ib++) {
        const float abs_d = fabsf(scales[ib]);
        if (abs_d > amax_scale) {
            amax_scale = abs_d;
            max_scale = scales[ib];
        }
    }
    b->scales_h = 0;
    const float d = -max_scale / 32;
    b->d = phiq_f2h(d);
    const float id = d ? 1 / d : 0.f;
    for (int ib = 0; ib < 8; ib++) {
        int l = phiq_nearest_int(id * scales[ib]);
        l = phiq_imax(-32, phiq_imin(31, l));
        const float dl = d * l;
        idl[ib] = dl ? 1 / dl : 0.f;
        l += 32;
        const uint8_t l_l = (uint8_t)(l & 0xf), l_h = (uint8_t)(l >> 4);
        if (ib % 2 == 0) b->scales_l[ib / 2] = l_l;
        else b->scales_l[ib / 2] |= (uint8_t)(l_l << 4);
        b->scales_h |= (uint16_t)(l_h << 2 * (ib % 8));
    }
    phiq_iq4_index_avx2(x, idl, 256, L);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 16; j++) b->qs[16 * i + j] = (uint8_t)(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

/* Eight IQ4_NL blocks (256 elements) at once. */
static void iq4_nl_8blocks_avx2(const float *x, phiq_block_iq4_nl *b, const float *qw) {
    float w[256], scales[8], id[8];
    uint8_t L[256];
    for (int k = 0; k < 8; k++) {
        const float *xb = x + 32 * k;
        float sigma2 = 0;
        for (int j = 0; j < 32; j++) sigma2 += xb[j] * xb[j];
        sigma2 *= 2.f / 32;
        iq4_weights(xb, 32, sigma2, qw ? qw + 32 * k : NULL, w + 32 * k);
    }
    phiq_iq4_scales_avx2(x, w, scales);
    for (int k = 0; k < 8; k++) {
        b[k].d = phiq_f2h(scales[k]);
        id[k] = scales[k] ? 1 / scales[k] : 0;
    }
    phiq_iq4_index_avx2(x, id, 256, L);
    for (int k = 0; k < 8; k++)
        for (int j = 0; j < 16; j++) b[k].qs[j] = (uint8_t)(L[32 * k + j] | (L[32 * k + 16 + j] << 4));
}
#endif

/* ---- dequantizers ------------------------------------------------------------ */

static void dq_q4_0(const phiq_block_q4_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += 32) {
        const float d = phiq_h2f(x[i].d);
        for (int j = 0; j < 16; j++) {
            const int x0 = (x[i].qs[j] & 0x0F) - 8, x1 = (x[i].qs[j] >> 4) - 8;
            y[j] = x0 * d;
            y[j + 16] = x1 * d;
        }
    }
}

static void dq_q4_1(const phiq_block_q4_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += 32) {
        const float d = phiq_h2f(x[i].d), m = phiq_h2f(x[i].m);
        for (int j = 0; j < 16; j++) {
            const int x0 = x[i].qs[j] & 0x0F, x1 = x[i].qs[j] >> 4;
            y[j] = x0 * d + m;
            y[j + 16] = x1 * d + m;
        }
    }
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void dq_q5(const uint8_t *qs, uint32_t qh, float d, float m, int sym, float *y) {
    for (int j = 0; j < 16; j++) {
        const uint8_t xh_0 = (uint8_t)(((qh >> (j + 0)) << 4) & 0x10);
        const uint8_t xh_1 = (uint8_t)(((qh >> (j + 12))) & 0x10);
        if (sym) {
            const int x0 = ((qs[j] & 0x0F) | xh_0) - 16, x1 = ((qs[j] >> 4) | xh_1) - 16;
            y[j] = x0 * d;
            y[j + 16] = x1 * d;
        } else {
            const int x0 = (qs[j] & 0x0F) | xh_0, x1 = (qs[j] >> 4) | xh_1;
            y[j] = x0 * d + m;
            y[j + 16] = x1 * d + m;
        }
    }
}

static void dq_iq4_nl(const phiq_block_iq4_nl *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += 32) {
        const float d = phiq_h2f(x[i].d);
        for (int j = 0; j < 16; j++) {
            y[j] = d * phiq_kvalues_iq4nl[x[i].qs[j] & 0xf];
            y[j + 16] = d * phiq_kvalues_iq4nl[x[i].qs[j] >> 4];
        }
    }
}

static void dq_iq4_xs(const phiq_block_iq4_xs *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *qs = x[i].qs;
        const float d = phiq_h2f(x[i].d);
        for (int ib = 0; ib < 8; ib++, y += 32, qs += 16) {
            const int ls = ((x[i].scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) | (((x[i].scales_h >> 2 * ib) & 3) << 4);
            const float dl = d * (ls - 32);
            for (int j = 0; j < 16; j++) {
                y[j] = dl * phiq_kvalues_iq4nl[qs[j] & 0xf];
                y[j + 16] = dl * phiq_kvalues_iq4nl[qs[j] >> 4];
            }
        }
    }
}

/* ---- dispatch ------------------------------------------------------------------ */

int phiq_quant_can_quantize(int type) {
    switch (type) {
    case PHIQ_GGML_TYPE_F32: case PHIQ_GGML_TYPE_F16: case PHIQ_GGML_TYPE_BF16:
    case PHIQ_GGML_TYPE_Q4_0: case PHIQ_GGML_TYPE_Q4_1: case PHIQ_GGML_TYPE_Q5_0:
    case PHIQ_GGML_TYPE_Q5_1: case PHIQ_GGML_TYPE_Q8_0: case PHIQ_GGML_TYPE_Q8_1:
    case PHIQ_GGML_TYPE_Q2_K: case PHIQ_GGML_TYPE_Q3_K: case PHIQ_GGML_TYPE_Q4_K:
    case PHIQ_GGML_TYPE_Q5_K: case PHIQ_GGML_TYPE_Q6_K: case PHIQ_GGML_TYPE_Q8_K:
    case PHIQ_GGML_TYPE_IQ4_NL: case PHIQ_GGML_TYPE_IQ4_XS:
        return 1;
    default:
        return 0;
    }
}

int phiq_quant_can_dequantize(int type) { return phiq_quant_can_quantize(type); }

int64_t phiq_quantize(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                      const float *imatrix) {
    return phiq_quantize_impl(type, src, dst, nrows, n_per_row, imatrix, phiq_quant_simd());
}

int64_t phiq_quantize_impl(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                           const float *imatrix, int simd) {
    simd = simd && phiq_quant_simd(); /* never AVX2 code on a CPU without it */
    if (!phiq_quant_can_quantize(type))
        return phiq_fail(PHIQ_EUNSUPPORTED, "quantize: unsupported type %s", phiq_ggml_type_name(type));
    const int64_t row_size = phiq_ggml_row_size(type, n_per_row);
    if (nrows < 0 || n_per_row <= 0 || row_size < 0)
        return phiq_fail(PHIQ_EINVAL, "quantize: %s rows of %lld elements are not whole blocks",
                         phiq_ggml_type_name(type), (long long)n_per_row);
    const int64_t n = nrows * n_per_row;
    uint8_t *out = dst;
    switch (type) {
    case PHIQ_GGML_TYPE_F32:
        memcpy(dst, src, (size_t)n * 4);
        return n * 4;
    case PHIQ_GGML_TYPE_F16:
        for (int64_t i = 0; i < n; i++) {
            const uint16_t h = phiq_f32_to_f16(src[i]);
            memcpy(out + 2 * i, &h, 2);
        }
        return n * 2;
    case PHIQ_GGML_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            const uint16_t h = phiq_f32_to_bf16(src[i]);
            memcpy(out + 2 * i, &h, 2);
        }
        return n * 2;
    case PHIQ_GGML_TYPE_Q8_0: /* the imatrix is ignored by ggml for Q8_0 */
        phiq_quantize_row_q8_0(src, dst, n);
        return nrows * row_size;
    case PHIQ_GGML_TYPE_Q8_1:
        phiq_quantize_row_q8_1(src, dst, n);
        return nrows * row_size;
    case PHIQ_GGML_TYPE_Q8_K:
        phiq_quantize_row_q8_K(src, dst, n);
        return nrows * row_size;
    default:
        break;
    }
    if (!imatrix) {
        /* llama.cpp's quantize_* call the *_ref functions over all rows at once */
        switch (type) {
        case PHIQ_GGML_TYPE_Q4_0: q4_0_ref(src, dst, n / 32); return nrows * row_size;
        case PHIQ_GGML_TYPE_Q4_1: q4_1_ref(src, dst, n / 32); return nrows * row_size;
        case PHIQ_GGML_TYPE_Q5_0: q5_0_ref(src, dst, n / 32); return nrows * row_size;
        case PHIQ_GGML_TYPE_Q5_1: q5_1_ref(src, dst, n / 32); return nrows * row_size;
        default: break;
        }
    }
    for (int64_t r = 0; r < nrows; r++) {
        const float *x = src + r * n_per_row;
        void *y = out + r * row_size;
        switch (type) {
        case PHIQ_GGML_TYPE_Q4_0: q4_0_imat(x, y, n_per_row, imatrix); break;
        case PHIQ_GGML_TYPE_Q4_1: q4_1_imat(x, y, n_per_row, imatrix); break;
        case PHIQ_GGML_TYPE_Q5_0: q5_0_imat(x, y, n_per_row, imatrix); break;
        case PHIQ_GGML_TYPE_Q5_1: q5_1_imat(x, y, n_per_row, imatrix); break;
        case PHIQ_GGML_TYPE_Q2_K: phiq_quantize_row_q2_K(x, y, n_per_row, imatrix); break;
        case PHIQ_GGML_TYPE_Q3_K: phiq_quantize_row_q3_K(x, y, n_per_row, imatrix); break;
        case PHIQ_GGML_TYPE_Q4_K: phiq_quantize_row_q4_K(x, y, n_per_row, imatrix, simd); break;
        case PHIQ_GGML_TYPE_Q5_K: phiq_quantize_row_q5_K(x, y, n_per_row, imatrix, simd); break;
        case PHIQ_GGML_TYPE_Q6_K: phiq_quantize_row_q6_K(x, y, n_per_row, imatrix, simd); break;
        case PHIQ_GGML_TYPE_IQ4_NL: {
            phiq_block_iq4_nl *b = y;
            int64_t ib = 0;
#if PHIQ_QUANT_HAVE_AVX2
            if (simd)
                for (; ib + 8 <= n_per_row / 32; ib += 8)
                    iq4_nl_8blocks_avx2(x + 32 * ib, b + ib, imatrix ? imatrix + 32 * ib : NULL);
#endif
            for (; ib < n_per_row / 32; ib++)
                iq4_block(32, x + 32 * ib, &b[ib].d, b[ib].qs, NULL, NULL, imatrix ? imatrix + 32 * ib : NULL);
            break;
        }
        case PHIQ_GGML_TYPE_IQ4_XS: {
            phiq_block_iq4_xs *b = y;
            for (int64_t ib = 0; ib < n_per_row / 256; ib++) {
#if PHIQ_QUANT_HAVE_AVX2
                if (simd) {
                    iq4_xs_block_avx2(x + 256 * ib, &b[ib], imatrix ? imatrix + 256 * ib : NULL);
                    continue;
                }
#endif
                iq4_block(256, x + 256 * ib, &b[ib].d, b[ib].qs, &b[ib].scales_h, b[ib].scales_l,
                          imatrix ? imatrix + 256 * ib : NULL);
            }
            break;
        }
        default:
            return phiq_fail(PHIQ_EUNSUPPORTED, "quantize: unsupported type %s", phiq_ggml_type_name(type));
        }
    }
    return nrows * row_size;
}

int phiq_dequantize(int type, const void *src, float *dst, int64_t n) {
    if (!phiq_quant_can_dequantize(type))
        return phiq_fail(PHIQ_EUNSUPPORTED, "dequantize: unsupported type %s", phiq_ggml_type_name(type));
    const int64_t bs = phiq_ggml_block_size(type);
    if (n < 0 || n % bs)
        return phiq_fail(PHIQ_EINVAL, "dequantize: %lld elements are not whole %s blocks", (long long)n,
                         phiq_ggml_type_name(type));
    const int64_t nb = n / bs;
    const uint8_t *in = src;
    switch (type) {
    case PHIQ_GGML_TYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case PHIQ_GGML_TYPE_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, in + 2 * i, 2);
            dst[i] = phiq_f16_to_f32(h);
        }
        break;
    case PHIQ_GGML_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, in + 2 * i, 2);
            dst[i] = phiq_bf16_to_f32(h);
        }
        break;
    case PHIQ_GGML_TYPE_Q4_0: dq_q4_0(src, dst, nb); break;
    case PHIQ_GGML_TYPE_Q4_1: dq_q4_1(src, dst, nb); break;
    case PHIQ_GGML_TYPE_Q5_0: {
        const phiq_block_q5_0 *x = src;
        for (int64_t i = 0; i < nb; i++) dq_q5(x[i].qs, le32(x[i].qh), phiq_h2f(x[i].d), 0, 1, dst + 32 * i);
        break;
    }
    case PHIQ_GGML_TYPE_Q5_1: {
        const phiq_block_q5_1 *x = src;
        for (int64_t i = 0; i < nb; i++)
            dq_q5(x[i].qs, le32(x[i].qh), phiq_h2f(x[i].d), phiq_h2f(x[i].m), 0, dst + 32 * i);
        break;
    }
    case PHIQ_GGML_TYPE_Q8_0: {
        const phiq_block_q8_0 *x = src;
        for (int64_t i = 0; i < nb; i++) {
            const float d = phiq_h2f(x[i].d);
            for (int j = 0; j < 32; j++) dst[32 * i + j] = x[i].qs[j] * d;
        }
        break;
    }
    case PHIQ_GGML_TYPE_Q8_1: {
        const phiq_block_q8_1 *x = src;
        for (int64_t i = 0; i < nb; i++) {
            const float d = phiq_h2f(x[i].d);
            for (int j = 0; j < 32; j++) dst[32 * i + j] = x[i].qs[j] * d;
        }
        break;
    }
    case PHIQ_GGML_TYPE_Q8_K: {
        const phiq_block_q8_K *x = src;
        for (int64_t i = 0; i < nb; i++)
            for (int j = 0; j < 256; j++) dst[256 * i + j] = x[i].d * x[i].qs[j];
        break;
    }
    case PHIQ_GGML_TYPE_Q2_K: phiq_dequantize_row_q2_K(src, dst, n); break;
    case PHIQ_GGML_TYPE_Q3_K: phiq_dequantize_row_q3_K(src, dst, n); break;
    case PHIQ_GGML_TYPE_Q4_K: phiq_dequantize_row_q4_K(src, dst, n); break;
    case PHIQ_GGML_TYPE_Q5_K: phiq_dequantize_row_q5_K(src, dst, n); break;
    case PHIQ_GGML_TYPE_Q6_K: phiq_dequantize_row_q6_K(src, dst, n); break;
    case PHIQ_GGML_TYPE_IQ4_NL: dq_iq4_nl(src, dst, nb); break;
    case PHIQ_GGML_TYPE_IQ4_XS: dq_iq4_xs(src, dst, nb); break;
    default: break;
    }
    return 0;
}
