/* quant_iq4.c — the non-linear 4-bit family: IQ4_NL (32-element blocks)
 * and IQ4_XS (256-element super-blocks with 6-bit sub-block scales), both
 * on phiq_kvalues_iq4nl's 16 levels; quantize (with or without imatrix, as
 * llama-quantize's quantize_iq4_*) and dequantize. The AVX2 scale search and
 * index lookup (quant_avx2.c) give identical bytes.
 */
#include "quant/quant_internal.h"

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
        float amax;
        const float max = phiq_signed_absmax(xb, bs, &amax);
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


/* ---- row entry points (quant_internal.h) --------------------------------------- */

void phiq_quantize_row_iq4_nl(const float *x, void *y, int64_t n, const float *qw, int simd) {
    phiq_block_iq4_nl *b = y;
    int64_t ib = 0;
#if PHIQ_QUANT_HAVE_AVX2
    if (simd)
        for (; ib + 8 <= n / PHIQ_QK; ib += 8) iq4_nl_8blocks_avx2(x + PHIQ_QK * ib, b + ib, qw ? qw + PHIQ_QK * ib : NULL);
#else
    (void)simd;
#endif
    for (; ib < n / PHIQ_QK; ib++)
        iq4_block(PHIQ_QK, x + PHIQ_QK * ib, &b[ib].d, b[ib].qs, NULL, NULL, qw ? qw + PHIQ_QK * ib : NULL);
}

void phiq_quantize_row_iq4_xs(const float *x, void *y, int64_t n, const float *qw, int simd) {
    phiq_block_iq4_xs *b = y;
#if !PHIQ_QUANT_HAVE_AVX2
    (void)simd;
#endif
    for (int64_t ib = 0; ib < n / PHIQ_QK_K; ib++) {
#if PHIQ_QUANT_HAVE_AVX2
        if (simd) {
            iq4_xs_block_avx2(x + PHIQ_QK_K * ib, &b[ib], qw ? qw + PHIQ_QK_K * ib : NULL);
            continue;
        }
#endif
        iq4_block(PHIQ_QK_K, x + PHIQ_QK_K * ib, &b[ib].d, b[ib].qs, &b[ib].scales_h, b[ib].scales_l,
                  qw ? qw + PHIQ_QK_K * ib : NULL);
    }
}

void phiq_dequantize_row_iq4_nl(const void *x, float *y, int64_t n) { dq_iq4_nl(x, y, n / PHIQ_QK); }
void phiq_dequantize_row_iq4_xs(const void *x, float *y, int64_t n) { dq_iq4_xs(x, y, n / PHIQ_QK_K); }
