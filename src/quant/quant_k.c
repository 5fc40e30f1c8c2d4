/* quant_k.c — the K-quant family (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K: 256-element
 * super-blocks with 16 or 32-element sub-blocks) and the Q8_K activation
 * quantizer. The scale searches are quant_search.c's.
 *
 * Without an imatrix llama-quantize runs ggml's quantize_row_*_ref (fixed
 * weights derived from x); with one it runs quantize_row_*_impl. Both are
 * reproduced here with ggml's exact float32 operation order: the searches
 * compare sums of products, so any reordering flips near-ties and changes
 * bytes.
 */
#include "quant/quant_internal.h"


/* ---- shared packing ----------------------------------------------------------- */

/* 2-bit values: for each 128-half, byte l holds elements l, l+32, l+64, l+96. */
static void pack2(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < PHIQ_QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

/* ---- Q2_K --------------------------------------------------------------------- */

static void q2_K_requant(const float *x, phiq_block_q2_K *y, uint8_t *L) {
    const float dd = phiq_h2f(y->d), dmm = phiq_h2f(y->dmin);
    for (int j = 0; j < 16; j++) {
        const float d = dd * (y->scales[j] & 0xF);
        if (!d) continue;
        const float dm = dmm * (y->scales[j] >> 4);
        for (int ii = 0; ii < 16; ii++) {
            const int l = phiq_nearest_int((x[16 * j + ii] + dm) / d);
            L[16 * j + ii] = (uint8_t)phiq_imax(0, phiq_imin(3, l));
        }
    }
    pack2(L, y->qs);
}

void phiq_quantize_row_q2_K(const float *x, void *vy, int64_t n, const float *qw, int simd) {
    (void)simd; /* no SIMD search for this type */
    phiq_block_q2_K *y = vy;
    uint8_t L[PHIQ_QK_K], Laux[16], Ls[16], Lm[16];
    float weights[16], mins[16], scales[16], sw[16];
    const float q4scale = 15.f;
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++, x += PHIQ_QK_K) {
        if (!qw) {
            float max_scale = 0, max_min = 0;
            for (int j = 0; j < 16; j++) {
                for (int l = 0; l < 16; l++) weights[l] = fabsf(x[16 * j + l]);
                scales[j] = phiq_make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f,
                                             15, 1);
                if (scales[j] > max_scale) max_scale = scales[j];
                if (mins[j] > max_min) max_min = mins[j];
            }
            if (max_scale > 0) {
                const float iscale = q4scale / max_scale;
                for (int j = 0; j < 16; j++) y[i].scales[j] = (uint8_t)phiq_nearest_int(iscale * scales[j]);
                y[i].d = phiq_f2h(max_scale / q4scale);
            } else {
                memset(y[i].scales, 0, 16);
                y[i].d = phiq_f2h(0.f);
            }
            if (max_min > 0) {
                const float iscale = q4scale / max_min;
                /* unsigned shift: for degenerate (subnormal) rows iscale is inf and
                 * nearest_int returns a negative garbage value; ggml shifts it as
                 * int, which wraps the same way */
                for (int j = 0; j < 16; j++)
                    y[i].scales[j] |= (uint8_t)((unsigned)phiq_nearest_int(iscale * mins[j]) << 4);
                y[i].dmin = phiq_f2h(max_min / q4scale);
            } else {
                y[i].dmin = phiq_f2h(0.f);
            }
        } else {
            const float *w = qw + PHIQ_QK_K * i;
            const float sigma2 = phiq_sumsq(x, PHIQ_QK_K) / PHIQ_QK_K;
            for (int j = 0; j < 16; j++) {
                sw[j] = phiq_imat_weights(x + 16 * j, w + 16 * j, sigma2, 16, weights);
                scales[j] = phiq_make_qkx3_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f,
                                                  36);
            }
            const float dm = phiq_make_qp_quants(16, 15, scales, Ls, sw);
            const float mm = phiq_make_qp_quants(16, 15, mins, Lm, sw);
            y[i].d = phiq_f2h(dm);
            y[i].dmin = phiq_f2h(mm);
            for (int j = 0; j < 16; j++) y[i].scales[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
        }
        q2_K_requant(x, &y[i], L);
    }
}

void phiq_dequantize_row_q2_K(const void *vx, float *y, int64_t n) {
    const phiq_block_q2_K *x = vx;
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {
        const float d = phiq_h2f(x[i].d), min = phiq_h2f(x[i].dmin);
        const uint8_t *q = x[i].qs;
        int is = 0;
        for (int nn = 0; nn < PHIQ_QK_K; nn += 128, q += 32) {
            int shift = 0;
            for (int j = 0; j < 4; j++, shift += 2) {
                uint8_t sc = x[i].scales[is++];
                float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                for (int l = 0; l < 16; l++) *y++ = dl * ((int8_t)((q[l] >> shift) & 3)) - ml;
                sc = x[i].scales[is++];
                dl = d * (sc & 0xF);
                ml = min * (sc >> 4);
                for (int l = 0; l < 16; l++) *y++ = dl * ((int8_t)((q[l + 16] >> shift) & 3)) - ml;
            }
        }
    }
}

/* ---- Q3_K --------------------------------------------------------------------- */

/* Stores 6-bit scale l (already +32) of group j into the 12-byte layout. */
static void q3_K_set_scale(uint8_t *s, int j, int l) {
    if (j < 8) s[j] = (uint8_t)(l & 0xF);
    else s[j - 8] |= (uint8_t)((l & 0xF) << 4);
    l >>= 4;
    s[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
}

static void q3_K_finish(const float *x, phiq_block_q3_K *y, int8_t *L) {
    for (int j = 0; j < 16; j++) {
        int8_t sc = (int8_t)(j < 8 ? y->scales[j] & 0xF : y->scales[j - 8] >> 4);
        sc = (int8_t)((sc | (((y->scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
        const float d = phiq_h2f(y->d) * sc;
        if (!d) continue;
        for (int ii = 0; ii < 16; ii++) {
            int l = phiq_nearest_int(x[16 * j + ii] / d);
            l = phiq_imax(-4, phiq_imin(3, l));
            L[16 * j + ii] = (int8_t)(l + 4);
        }
    }
    memset(y->hmask, 0, 32);
    int m = 0;
    uint8_t hm = 1;
    for (int j = 0; j < PHIQ_QK_K; j++) {
        if (L[j] > 3) {
            y->hmask[m] |= hm;
            L[j] = (int8_t)(L[j] - 4);
        }
        if (++m == 32) {
            m = 0;
            hm = (uint8_t)(hm << 1);
        }
    }
    pack2((const uint8_t *)L, y->qs);
}

void phiq_quantize_row_q3_K(const float *x, void *vy, int64_t n, const float *qw, int simd) {
    (void)simd; /* no SIMD search for this type */
    phiq_block_q3_K *y = vy;
    int8_t L[PHIQ_QK_K], Ls[16];
    float scales[16], weight[16], sw[16];
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++, x += PHIQ_QK_K) {
        memset(y[i].scales, 0, 12);
        if (!qw) {
            float max_scale = 0, amax = 0;
            for (int j = 0; j < 16; j++) {
                scales[j] = phiq_make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
                const float scale = fabsf(scales[j]);
                if (scale > amax) {
                    amax = scale;
                    max_scale = scales[j];
                }
            }
            if (max_scale) {
                const float iscale = -32.f / max_scale;
                for (int j = 0; j < 16; j++) {
                    int8_t l = (int8_t)phiq_nearest_int(iscale * scales[j]);
                    l = (int8_t)(phiq_imax(-32, phiq_imin(31, l)) + 32);
                    q3_K_set_scale(y[i].scales, j, l);
                }
                y[i].d = phiq_f2h(1 / iscale);
            } else {
                y[i].d = phiq_f2h(0.f);
            }
        } else {
            const float *w = qw + PHIQ_QK_K * i;
            const float sigma2 = 2 * phiq_sumsq(x, PHIQ_QK_K) / PHIQ_QK_K;
            for (int j = 0; j < 16; j++) {
                sw[j] = phiq_imat_weights(x + 16 * j, w + 16 * j, sigma2, 16, weight);
                scales[j] = phiq_make_qx_quants(16, 4, x + 16 * j, L + 16 * j, weight);
            }
            const float d_block = phiq_make_qx_quants(16, 32, scales, Ls, sw);
            for (int j = 0; j < 16; j++) q3_K_set_scale(y[i].scales, j, Ls[j]);
            y[i].d = phiq_f2h(d_block);
        }
        q3_K_finish(x, &y[i], L);
    }
}

void phiq_dequantize_row_q3_K(const void *vx, float *y, int64_t n) {
    const phiq_block_q3_K *x = vx;
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {
        const float d_all = phiq_h2f(x[i].d);
        const uint8_t *q = x[i].qs, *hm = x[i].hmask;
        int8_t scales[16];
        for (int j = 0; j < 16; j++) {
            const int lo = j < 8 ? x[i].scales[j] & 0xF : x[i].scales[j - 8] >> 4;
            const int hi = (x[i].scales[8 + j % 4] >> (2 * (j / 4))) & 3;
            scales[j] = (int8_t)(lo | (hi << 4));
        }
        uint8_t m = 1;
        int is = 0;
        for (int nn = 0; nn < PHIQ_QK_K; nn += 128, q += 32) {
            int shift = 0;
            for (int j = 0; j < 4; j++, shift += 2, m = (uint8_t)(m << 1)) {
                float dl = d_all * (scales[is++] - 32);
                for (int l = 0; l < 16; l++)
                    *y++ = dl * ((int8_t)((q[l + 0] >> shift) & 3) - ((hm[l + 0] & m) ? 0 : 4));
                dl = d_all * (scales[is++] - 32);
                for (int l = 0; l < 16; l++)
                    *y++ = dl * ((int8_t)((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
            }
        }
    }
}

/* ---- Q4_K / Q5_K ---------------------------------------------------------------- */

static void k45_block(const float *x, uint8_t *sc12, phiq_half *pd, phiq_half *pdmin, uint8_t *L, int nmax,
                      const float *qw, int simd) {
    uint8_t Ls[8], Lm[8];
    float mins[8], scales[8], sw[8];
    memset(sc12, 0, 12);
    if (!qw) {
        float max_scale = 0, max_min = 0;
        /* Q4_K: rmin -1, 20 steps; Q5_K: rmin -0.5, 15 steps */
        const float rmin = nmax == 15 ? -1.f : -0.5f;
        const int nstep = nmax == 15 ? 20 : 15;
#if PHIQ_QUANT_HAVE_AVX2
        if (simd)
            phiq_k45_search_avx2(x, NULL, nmax, rmin, 0.1f, nstep, L, scales, mins);
        else
#endif
            phiq_k45_search_scalar(x, NULL, nmax, rmin, 0.1f, nstep, L, scales, mins);
        for (int j = 0; j < 8; j++) {
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        for (int j = 0; j < 8; j++) {
            uint8_t ls = (uint8_t)phiq_nearest_int(inv_scale * scales[j]);
            uint8_t lm = (uint8_t)phiq_nearest_int(inv_min * mins[j]);
            ls = ls < 63 ? ls : 63;
            lm = lm < 63 ? lm : 63;
            phiq_k4_scale_min_pack(j, ls, lm, sc12);
        }
        *pd = phiq_f2h(max_scale / 63.f);
        *pdmin = phiq_f2h(max_min / 63.f);
    } else {
        const float sigma2 = 2 * phiq_sumsq(x, PHIQ_QK_K) / PHIQ_QK_K;
        float wall[PHIQ_QK_K];
        for (int j = 0; j < 8; j++) sw[j] = phiq_imat_weights(x + 32 * j, qw + 32 * j, sigma2, 32, wall + 32 * j);
#if PHIQ_QUANT_HAVE_AVX2
        if (simd)
            phiq_k45_search_avx2(x, wall, nmax, -0.9f, 0.05f, 36, L, scales, mins);
        else
#endif
            phiq_k45_search_scalar(x, wall, nmax, -0.9f, 0.05f, 36, L, scales, mins);
        const float d_block = phiq_make_qp_quants(8, 63, scales, Ls, sw);
        const float m_block = phiq_make_qp_quants(8, 63, mins, Lm, sw);
        for (int j = 0; j < 8; j++) {
            const uint8_t ls = Ls[j] < 63 ? Ls[j] : 63, lm = Lm[j] < 63 ? Lm[j] : 63;
            phiq_k4_scale_min_pack(j, ls, lm, sc12);
        }
        *pd = phiq_f2h(d_block);
        *pdmin = phiq_f2h(m_block);
    }
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        phiq_k4_scale_min(j, sc12, &sc, &m);
        const float d = phiq_h2f(*pd) * sc;
        if (!d) continue;
        const float dm = phiq_h2f(*pdmin) * m;
        for (int ii = 0; ii < 32; ii++) {
            const int l = phiq_nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)phiq_imax(0, phiq_imin(nmax, l));
        }
    }
}

/* One super-block's codes L into Q4_K/Q5_K's layout: chunk c (64 values) as
 * low nibbles (the first 32) and high nibbles (the next 32) of qs[32c ..];
 * Q5_K's fifth bits into qh (bits 2c and 2c+1 of qh[j]); Q4_K: qh NULL. */
static void k45_pack(const uint8_t *L, uint8_t *ql, uint8_t *qh) {
    if (qh) memset(qh, 0, 32);
    uint8_t m1 = 1, m2 = 2;
    for (int nn = 0; nn < PHIQ_QK_K; nn += 64, ql += 32) {
        for (int j = 0; j < 32; j++) {
            int l1 = L[nn + j], l2 = L[nn + j + 32];
            if (qh && l1 > 15) {
                l1 -= 16;
                qh[j] |= m1;
            }
            if (qh && l2 > 15) {
                l2 -= 16;
                qh[j] |= m2;
            }
            ql[j] = (uint8_t)(l1 | (l2 << 4));
        }
        m1 = (uint8_t)(m1 << 2);
        m2 = (uint8_t)(m2 << 2);
    }
}

void phiq_quantize_row_q4_K(const float *x, void *vy, int64_t n, const float *qw, int simd) {
    phiq_block_q4_K *y = vy;
    uint8_t L[PHIQ_QK_K];
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++, x += PHIQ_QK_K) {
        k45_block(x, y[i].scales, &y[i].d, &y[i].dmin, L, 15, qw ? qw + PHIQ_QK_K * i : NULL, simd);
        k45_pack(L, y[i].qs, NULL);
    }
}

void phiq_quantize_row_q5_K(const float *x, void *vy, int64_t n, const float *qw, int simd) {
    phiq_block_q5_K *y = vy;
    uint8_t L[PHIQ_QK_K];
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++, x += PHIQ_QK_K) {
        k45_block(x, y[i].scales, &y[i].d, &y[i].dmin, L, 31, qw ? qw + PHIQ_QK_K * i : NULL, simd);
        k45_pack(L, y[i].qs, y[i].qh);
    }
}

/* One Q4_K/Q5_K super-block (header d, dmin, scales; nibbles ql; Q5_K's
 * fifth bits qh, NULL for Q4_K) as 256 floats at y: d * sc * q - dmin * m. */
static void k45_dequant(phiq_half dh, phiq_half dminh, const uint8_t *scales, const uint8_t *ql, const uint8_t *qh,
                        float *y) {
    const float d = phiq_h2f(dh), min = phiq_h2f(dminh);
    int is = 0;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < PHIQ_QK_K; j += 64, ql += 32, is += 2) {
        uint8_t sc, m;
        phiq_k4_scale_min(is + 0, scales, &sc, &m);
        const float d1 = d * sc, m1 = min * m;
        phiq_k4_scale_min(is + 1, scales, &sc, &m);
        const float d2 = d * sc, m2 = min * m;
        for (int l = 0; l < 32; l++) *y++ = d1 * ((ql[l] & 0xF) + (qh && qh[l] & u1 ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * ((ql[l] >> 4) + (qh && qh[l] & u2 ? 16 : 0)) - m2;
        u1 = (uint8_t)(u1 << 2);
        u2 = (uint8_t)(u2 << 2);
    }
}

void phiq_dequantize_row_q4_K(const void *vx, float *y, int64_t n) {
    const phiq_block_q4_K *x = vx;
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++, y += PHIQ_QK_K)
        k45_dequant(x[i].d, x[i].dmin, x[i].scales, x[i].qs, NULL, y);
}

void phiq_dequantize_row_q5_K(const void *vx, float *y, int64_t n) {
    const phiq_block_q5_K *x = vx;
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++, y += PHIQ_QK_K)
        k45_dequant(x[i].d, x[i].dmin, x[i].scales, x[i].qs, x[i].qh, y);
}

/* ---- Q6_K ----------------------------------------------------------------------- */

void phiq_quantize_row_q6_K(const float *x, void *vy, int64_t n, const float *qw, int simd) {
    phiq_block_q6_K *y = vy;
    int8_t L[PHIQ_QK_K];
    float scales[16];
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++, x += PHIQ_QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        /* with an imatrix the weights are qw itself (no sigma2 term) */
        const float *w = qw ? qw + PHIQ_QK_K * i : NULL;
        for (int h = 0; h < 2; h++) {
#if PHIQ_QUANT_HAVE_AVX2
            if (simd)
                phiq_qx16_search_avx2(x + 128 * h, w ? w + 128 * h : NULL, 32, L + 128 * h, scales + 8 * h);
            else
#endif
                phiq_qx16_search_scalar(x + 128 * h, w ? w + 128 * h : NULL, 32, L + 128 * h, scales + 8 * h);
        }
        for (int ib = 0; ib < 16; ib++) {
            const float scale = scales[ib];
            const float abs_scale = fabsf(scale);
            if (abs_scale > max_abs_scale) {
                max_abs_scale = abs_scale;
                max_scale = scale;
            }
        }
        if (max_abs_scale < PHIQ_GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -128.f / max_scale;
        y[i].d = phiq_f2h(1 / iscale);
        for (int ib = 0; ib < 16; ib++) y[i].scales[ib] = (int8_t)phiq_imin(127, phiq_nearest_int(iscale * scales[ib]));
        for (int j = 0; j < 16; j++) {
            const float d = phiq_h2f(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ii++) {
                int l = phiq_nearest_int(x[16 * j + ii] / d);
                l = phiq_imax(-32, phiq_imin(31, l));
                L[16 * j + ii] = (int8_t)(l + 32);
            }
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < PHIQ_QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l++) {
                const uint8_t q1 = L[j + l + 0] & 0xF, q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l + 0] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                  ((L[j + l + 96] >> 4) << 6));
            }
        }
    }
}

void phiq_dequantize_row_q6_K(const void *vx, float *y, int64_t n) {
    const phiq_block_q6_K *x = vx;
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {
        const float d = phiq_h2f(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int nn = 0; nn < PHIQ_QK_K; nn += 128, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int8_t q1 = (int8_t)(((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
                const int8_t q2 = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                const int8_t q3 = (int8_t)(((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                const int8_t q4 = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
                y[l + 0] = d * sc[is + 0] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
        }
    }
}

/* ---- Q8_K (activations) ---------------------------------------------------------- */

void phiq_quantize_row_q8_K(const float *x, void *vy, int64_t n) {
    phiq_block_q8_K *y = vy;
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++, x += PHIQ_QK_K) {
        float amax;
        const float max = phiq_signed_absmax(x, PHIQ_QK_K, &amax);
        if (!amax) {
            y[i].d = 0;
            memset(y[i].qs, 0, PHIQ_QK_K);
            memset(y[i].bsums, 0, sizeof y[i].bsums); /* ggml leaves them unset; zero is their true value */
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < PHIQ_QK_K; j++) y[i].qs[j] = (int8_t)phiq_imin(127, phiq_nearest_int(iscale * x[j]));
        for (int j = 0; j < 16; j++) {
            int sum = 0;
            for (int ii = 0; ii < 16; ii++) sum += y[i].qs[j * 16 + ii];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

void phiq_dequantize_row_q8_K(const void *vx, float *y, int64_t n) {
    const phiq_block_q8_K *x = vx;
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++)
        for (int j = 0; j < PHIQ_QK_K; j++) y[PHIQ_QK_K * i + j] = x[i].d * x[i].qs[j];
}
