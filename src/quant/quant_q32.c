/* quant_q32.c — the 32-element block family: Q4_0, Q4_1, Q5_0, Q5_1, and
 * the Q8_0 / Q8_1 activation types, quantize (reference and imatrix paths)
 * and dequantize. Depends on quant_internal.h and quant_search.c only.
 *
 * Every quantizer reproduces ggml-quants.c's float32 arithmetic operation
 * by operation (same order, same int/float conversions, same truncating
 * casts), because llama.cpp's output is the byte-exact reference.
 */
#include <float.h>
#include <stddef.h>

#include "quant/quant.h"
#include "quant/quant_internal.h"

/* ---- Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 / Q8_1 reference paths ------------ */

static void q4_0_ref(const float *x, phiq_block_q4_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += PHIQ_QK) {
        const float max = phiq_signed_absmax(x, PHIQ_QK, NULL);
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

/* The min and scale of a Q4_1/Q5_1 block as ggml: d = (max - min) / (2^bits
 * - 1), both stored as f16 in *dh and *mh; returns 1/d (0 for d = 0) and the
 * block's minimum in *min. */
static float affine_block(const float *x, int bits, phiq_half *dh, phiq_half *mh, float *min) {
    float mn = FLT_MAX, mx = -FLT_MAX;
    for (int j = 0; j < PHIQ_QK; j++) {
        if (x[j] < mn) mn = x[j];
        if (x[j] > mx) mx = x[j];
    }
    const float d = (mx - mn) / ((1 << bits) - 1);
    *dh = phiq_f2h(d);
    *mh = phiq_f2h(mn);
    *min = mn;
    return d ? 1.0f / d : 0.0f;
}

static void q4_1_ref(const float *x, phiq_block_q4_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += PHIQ_QK) {
        float min;
        const float id = affine_block(x, 4, &y[i].d, &y[i].m, &min);
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
        const float max = phiq_signed_absmax(x, PHIQ_QK, NULL);
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
        float min;
        const float id = affine_block(x, 5, &y[i].d, &y[i].m, &min);
        /* no clamp here in ggml: (uint8_t)(v + 0.5f) */
        for (int j = 0; j < 32; j++) L[j] = (uint8_t)((x[j] - min) * id + 0.5f);
        pack5(L, y[i].qs, y[i].qh);
    }
}

/* One Q8_0/Q8_1 block as ggml: d = amax / 127 (stored as f16), qs =
 * round(x / d); returns d and the sum of qs in *sum. */
static float q8_block(const float *x, phiq_half *dh, int8_t qs[PHIQ_QK], int *sum) {
    float amax = 0.0f;
    for (int j = 0; j < PHIQ_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    *dh = phiq_f2h(d);
    int t = 0;
    for (int j = 0; j < PHIQ_QK; j++) {
        qs[j] = (int8_t)roundf(x[j] * id);
        t += qs[j];
    }
    *sum = t;
    return d;
}

void phiq_quantize_row_q8_0(const float *x, void *dst, int64_t n) {
    phiq_block_q8_0 *y = dst;
    int sum;
    for (int64_t i = 0; i < n / PHIQ_QK; i++, x += PHIQ_QK) q8_block(x, &y[i].d, y[i].qs, &sum);
}

void phiq_quantize_row_q8_1(const float *x, void *dst, int64_t n) {
    phiq_block_q8_1 *y = dst;
    int sum;
    for (int64_t i = 0; i < n / PHIQ_QK; i++, x += PHIQ_QK) {
        const float d = q8_block(x, &y[i].d, y[i].qs, &sum);
        y[i].s = phiq_f2h((float)sum * d);
    }
}

/* ---- imatrix paths (ggml's quantize_row_*_impl) ----------------------- */

static float row_sigma2(const float *x, int64_t n) { return phiq_sumsq(x, n) / (float)n; }

/* One block of ggml's quantize_row_q4_0/q4_1/q5_0/q5_1_impl: weights
 * qw * sqrt(sigma2 + x^2), then make_qx_quants (symmetric, with_min 0:
 * L = l + nmax) or make_qkx3_quants (with a min, *min = -minimum).
 * Returns the scale. */
static float imat_block(const float *xb, const float *qw, float sigma2, int nmax, int with_min, uint8_t L[PHIQ_QK],
                        float *min) {
    float weight[PHIQ_QK];
    phiq_imat_weights(xb, qw, sigma2, PHIQ_QK, weight);
    if (!with_min) return phiq_make_qx_quants(PHIQ_QK, nmax, xb, (int8_t *)L, weight);
    uint8_t Laux[PHIQ_QK];
    return phiq_make_qkx3_quants(PHIQ_QK, nmax, xb, weight, L, min, Laux, -0.9f, 0.05f, 36);
}

static void pack4(const uint8_t *L, uint8_t qs[16]) {
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
}

/* One row of ggml's quantize_row_*_impl: imat_block per block (levels NMAX,
 * WITH_MIN), then STORE(block, L, min) writes the codes (and the min). */
#define IMAT_ROW(name, BT, NMAX, WITH_MIN, STORE)                                                  \
    static void name(const float *x, BT *y, int64_t n, const float *qw) {                          \
        uint8_t L[PHIQ_QK];                                                                        \
        const float sigma2 = row_sigma2(x, n);                                                     \
        for (int64_t ib = 0; ib < n / PHIQ_QK; ib++) {                                             \
            float min = 0;                                                                         \
            y[ib].d = phiq_f2h(imat_block(x + PHIQ_QK * ib, qw + PHIQ_QK * ib, sigma2, NMAX, WITH_MIN, L, &min)); \
            STORE(y[ib], L, min);                                                                  \
        }                                                                                          \
    }
#define STORE4(b, L, min) pack4(L, (b).qs)
#define STORE4_MIN(b, L, min) ((b).m = phiq_f2h(-(min)), pack4(L, (b).qs))
#define STORE5(b, L, min) pack5(L, (b).qs, (b).qh)
#define STORE5_MIN(b, L, min) ((b).m = phiq_f2h(-(min)), pack5(L, (b).qs, (b).qh))
IMAT_ROW(q4_0_imat, phiq_block_q4_0, 8, 0, STORE4)
IMAT_ROW(q4_1_imat, phiq_block_q4_1, 15, 1, STORE4_MIN)
IMAT_ROW(q5_0_imat, phiq_block_q5_0, 16, 0, STORE5)
IMAT_ROW(q5_1_imat, phiq_block_q5_1, 31, 1, STORE5_MIN)

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


/* ---- row entry points (quant_internal.h) --------------------------------------- */

/* Without an imatrix llama-quantize runs ggml's *_ref (blocks independent of
 * the row); with one, quantize_row_*_impl, whose weights use the row's
 * mean square. */
#define Q32_ROW(T)                                                                                 \
    void phiq_quantize_row_##T(const float *x, void *y, int64_t n, const float *qw, int simd) {    \
        (void)simd;                                                                                \
        if (qw) T##_imat(x, y, n, qw);                                                             \
        else T##_ref(x, y, n / PHIQ_QK);                                                           \
    }
Q32_ROW(q4_0)
Q32_ROW(q4_1)
Q32_ROW(q5_0)
Q32_ROW(q5_1)

void phiq_dequantize_row_q4_0(const void *x, float *y, int64_t n) { dq_q4_0(x, y, n / PHIQ_QK); }
void phiq_dequantize_row_q4_1(const void *x, float *y, int64_t n) { dq_q4_1(x, y, n / PHIQ_QK); }
void phiq_dequantize_row_q5_0(const void *vx, float *y, int64_t n) {
    const phiq_block_q5_0 *x = vx;
    for (int64_t i = 0; i < n / PHIQ_QK; i++) dq_q5(x[i].qs, le32(x[i].qh), phiq_h2f(x[i].d), 0, 1, y + PHIQ_QK * i);
}
void phiq_dequantize_row_q5_1(const void *vx, float *y, int64_t n) {
    const phiq_block_q5_1 *x = vx;
    for (int64_t i = 0; i < n / PHIQ_QK; i++)
        dq_q5(x[i].qs, le32(x[i].qh), phiq_h2f(x[i].d), phiq_h2f(x[i].m), 0, y + PHIQ_QK * i);
}

/* Q8_0 and Q8_1 differ only in Q8_1's extra sum field: one loop over the block stride. */
static void dq_q8(const uint8_t *blocks, size_t stride, size_t qs_off, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, blocks += stride) {
        phiq_half h;
        memcpy(&h, blocks, sizeof h);
        const float d = phiq_h2f(h);
        const int8_t *qs = (const int8_t *)(blocks + qs_off);
        for (int j = 0; j < PHIQ_QK; j++) y[PHIQ_QK * i + j] = qs[j] * d;
    }
}
void phiq_dequantize_row_q8_0(const void *x, float *y, int64_t n) {
    dq_q8(x, sizeof(phiq_block_q8_0), offsetof(phiq_block_q8_0, qs), y, n / PHIQ_QK);
}
void phiq_dequantize_row_q8_1(const void *x, float *y, int64_t n) {
    dq_q8(x, sizeof(phiq_block_q8_1), offsetof(phiq_block_q8_1, qs), y, n / PHIQ_QK);
}
