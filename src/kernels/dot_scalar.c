/* dot_scalar.c — the portable reference kernels: llama.cpp's activation
 * quantizers (quantize_row_q8_0_ref / q8_1_ref / q8_K_ref, exact, from
 * src/quant) and a
 * scalar dot product for every supported weight type, written to follow the
 * accumulation order of ggml's generic ggml_vec_dot_* (integer sums per
 * block, then one float multiply-add per block; K-quants through eight float
 * lanes) so that results are deterministic and comparable. This file is
 * compiled without ISA flags, so the compiler cannot fuse multiply-adds. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "core/common.h"
#include "kernels/dot.h"
#include "quant/quant.h"

#define F16(h) phiq_f16_to_f32(h)

/* ---- activation quantizers ------------------------------------------------ */

/* Q8_0 / Q8_1 / Q8_K come from the quantization module (src/quant), which
 * holds llama.cpp's reference quantizers byte for byte. */
int phiq_quantize_act_ref(int act_type, const float *x, void *dst, int64_t n) {
    if (n < 0) return PHIQ_EINVAL;
    switch (act_type) {
    case PHIQ_GGML_TYPE_Q8_0:
        if (n % PHIQ_QK) return PHIQ_EINVAL;
        phiq_quantize_row_q8_0(x, dst, n);
        return 0;
    case PHIQ_GGML_TYPE_Q8_1:
        if (n % PHIQ_QK) return PHIQ_EINVAL;
        phiq_quantize_row_q8_1(x, dst, n);
        return 0;
    case PHIQ_GGML_TYPE_Q8_K:
        if (n % PHIQ_QK_K) return PHIQ_EINVAL;
        phiq_quantize_row_q8_K(x, dst, n);
        return 0;
    case PHIQ_GGML_TYPE_F16: {
        uint16_t *h = dst;
        for (int64_t i = 0; i < n; i++) h[i] = phiq_f32_to_f16(x[i]);
        return 0;
    }
    case PHIQ_GGML_TYPE_BF16: {
        uint16_t *h = dst;
        for (int64_t i = 0; i < n; i++) h[i] = phiq_f32_to_bf16(x[i]);
        return 0;
    }
    case PHIQ_GGML_TYPE_F32:
        if (n) memmove(dst, x, (size_t)n * sizeof(float));
        return 0;
    default:
        return PHIQ_EINVAL;
    }
}

/* ---- legacy 32-element blocks --------------------------------------------- */

/* The integer dot of one 4- or 5-bit block with a Q8 block, as ggml's
 * generic loops: element j is the low nibble of qs[j] (j < 16) or the high
 * nibble of qs[j-16], plus 16 when bit j of qh is set (Q5 types; qh 0 for
 * Q4), minus off (8 for Q4_0, 16 for Q5_0, 0 for the types with a min). */
static inline int nib_sumi(const uint8_t qs[PHIQ_QK / 2], uint32_t qh, const int8_t *yq, int off) {
    int sumi0 = 0, sumi1 = 0;
    for (int j = 0; j < PHIQ_QK / 2; j++) {
        const int h0 = ((qh >> j) & 1) << 4, h1 = ((qh >> (j + 16)) & 1) << 4;
        sumi0 += (((qs[j] & 0x0F) | h0) - off) * yq[j];
        sumi1 += (((qs[j] >> 4) | h1) - off) * yq[j + PHIQ_QK / 2];
    }
    return sumi0 + sumi1;
}

static inline uint32_t qh_bits(const uint8_t qh[4]) {
    uint32_t v;
    memcpy(&v, qh, sizeof v);
    return v;
}

static void dot_q4_0(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_q4_0 *x = vx;
    const phiq_block_q8_0 *y = vy;
    float sumf = 0;
    for (int64_t ib = 0; ib < n / PHIQ_QK; ib++) sumf += nib_sumi(x[ib].qs, 0, y[ib].qs, 8) * F16(x[ib].d) * F16(y[ib].d);
    *s = sumf;
}

static void dot_q4_1(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_q4_1 *x = vx;
    const phiq_block_q8_1 *y = vy;
    float sumf = 0;
    for (int64_t ib = 0; ib < n / PHIQ_QK; ib++)
        sumf += (F16(x[ib].d) * F16(y[ib].d)) * nib_sumi(x[ib].qs, 0, y[ib].qs, 0) + F16(x[ib].m) * F16(y[ib].s);
    *s = sumf;
}

static void dot_q5_0(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_q5_0 *x = vx;
    const phiq_block_q8_0 *y = vy;
    float sumf = 0;
    for (int64_t ib = 0; ib < n / PHIQ_QK; ib++)
        sumf += (F16(x[ib].d) * F16(y[ib].d)) * nib_sumi(x[ib].qs, qh_bits(x[ib].qh), y[ib].qs, 16);
    *s = sumf;
}

static void dot_q5_1(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_q5_1 *x = vx;
    const phiq_block_q8_1 *y = vy;
    float sumf = 0;
    for (int64_t ib = 0; ib < n / PHIQ_QK; ib++)
        sumf += (F16(x[ib].d) * F16(y[ib].d)) * nib_sumi(x[ib].qs, qh_bits(x[ib].qh), y[ib].qs, 0) +
                F16(x[ib].m) * F16(y[ib].s);
    *s = sumf;
}

static void dot_q8_0(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_q8_0 *x = vx;
    const phiq_block_q8_0 *y = vy;
    float sumf = 0;
    for (int64_t ib = 0; ib < n / PHIQ_QK; ib++) {
        int sumi = 0;
        for (int j = 0; j < PHIQ_QK; j++) sumi += x[ib].qs[j] * y[ib].qs[j];
        sumf += sumi * (F16(x[ib].d) * F16(y[ib].d));
    }
    *s = sumf;
}

static void dot_iq4_nl(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_iq4_nl *x = vx;
    const phiq_block_q8_0 *y = vy;
    float sumf = 0;
    for (int64_t ib = 0; ib < n / PHIQ_QK; ib++) {
        const float d = F16(y[ib].d) * F16(x[ib].d);
        int sumi1 = 0, sumi2 = 0;
        for (int j = 0; j < PHIQ_QK / 2; j++) {
            sumi1 += y[ib].qs[j] * phiq_kvalues_iq4nl[x[ib].qs[j] & 0xf];
            sumi2 += y[ib].qs[j + PHIQ_QK / 2] * phiq_kvalues_iq4nl[x[ib].qs[j] >> 4];
        }
        sumf += d * (sumi1 + sumi2);
    }
    *s = sumf;
}

/* ---- K-quants --------------------------------------------------------------- */

/* Adds scale * q8[l] * a[l] over 16 elements into the eight int32 lanes,
 * as ggml's generic K-quant dots do with aux16/aux32. */
static inline void lanes16(int32_t aux32[8], int scale, const int8_t *q8, const int8_t *a) {
    for (int l = 0; l < 8; l++) aux32[l] += scale * (q8[l] * a[l]);
    for (int l = 0; l < 8; l++) aux32[l] += scale * (q8[l + 8] * a[l + 8]);
}

static void dot_q2_K(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_q2_K *x = vx;
    const phiq_block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {
        const uint8_t *q2 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        const uint8_t *sc = x[i].scales;
        int summs = 0;
        for (int j = 0; j < 16; j++) summs += y[i].bsums[j] * (sc[j] >> 4);
        const float dall = y[i].d * F16(x[i].d);
        const float dmin = y[i].d * F16(x[i].dmin);
        int isum = 0, is = 0;
        for (int k = 0; k < PHIQ_QK_K / 128; k++) {
            for (int shift = 0; shift < 8; shift += 2) {
                int isuml = 0;
                for (int l = 0; l < 16; l++) isuml += q8[l] * ((q2[l] >> shift) & 3);
                isum += (sc[is++] & 0xF) * isuml;
                isuml = 0;
                for (int l = 16; l < 32; l++) isuml += q8[l] * ((q2[l] >> shift) & 3);
                isum += (sc[is++] & 0xF) * isuml;
                q8 += 32;
            }
            q2 += 32;
        }
        sumf += dall * isum - dmin * summs;
    }
    *s = sumf;
}

/* Q3_K and Q6_K are one loop (ggml's generic loops) over their own
 * unpacking: a super-block becomes 256 signed values and 16 signed scales
 * (unpack returns its d), then 16 groups of 16 are dotted with q8, each times
 * its scale, summed in 8 lanes, times d. */
typedef float (*k16_unpack_fn)(const void *blocks, int64_t i, int8_t *a, int8_t scales[16]);

static void k16_dot(int64_t n, float *s, const void *vx, const phiq_block_q8_K *y, k16_unpack_fn unpack) {
    float sums[8] = {0};
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {
        int8_t aux8[PHIQ_QK_K], scales[16];
        int32_t aux32[8] = {0};
        const float d = unpack(vx, i, aux8, scales) * y[i].d;
        const int8_t *q8 = y[i].qs, *a = aux8;
        for (int j = 0; j < PHIQ_QK_K / 16; j++, q8 += 16, a += 16) lanes16(aux32, scales[j], q8, a);
        for (int l = 0; l < 8; l++) sums[l] += d * aux32[l];
    }
    float sumf = 0;
    for (int l = 0; l < 8; l++) sumf += sums[l];
    *s = sumf;
}

static float unpack_q3_K(const void *blocks, int64_t i, int8_t *a, int8_t scales[16]) {
    const phiq_block_q3_K *x = (const phiq_block_q3_K *)blocks + i;
    const uint8_t *q3 = x->qs, *hm = x->hmask;
    uint8_t m = 1;
    for (int j = 0; j < PHIQ_QK_K; j += 128, q3 += 32) {
        for (int shift = 0; shift < 8; shift += 2, a += 32, m <<= 1)
            for (int l = 0; l < 32; l++) a[l] = (int8_t)(((q3[l] >> shift) & 3) - (hm[l] & m ? 0 : 4));
    }
    /* sixteen 6-bit scales: low nibbles in scales[0..7], top 2 bits in scales[8..11] */
    for (int j = 0; j < 16; j++) {
        int lo = j < 8 ? (x->scales[j] & 0xF) : (x->scales[j - 8] >> 4);
        int hi = (x->scales[8 + j % 4] >> (2 * (j / 4))) & 3;
        scales[j] = (int8_t)((lo | (hi << 4)) - 32);
    }
    return F16(x->d);
}

static void dot_q3_K(int64_t n, float *s, const void *vx, const void *vy) { k16_dot(n, s, vx, vy, unpack_q3_K); }

/* Q4_K and Q5_K are one body (ggml's generic loops): the 256 values of a
 * super-block are the nibbles of qs, plus 16 where Q5_K's qh has bit 2c
 * (low nibbles of chunk c) or 2c+1 (high nibbles) set; qh NULL for Q4_K. */
static void k45_dot(int64_t n, float *s, const uint8_t *blocks, size_t stride, size_t qh_off, size_t qs_off,
                    const phiq_block_q8_K *y) {
    float sums[8] = {0};
    float sumf = 0;
    for (int64_t i = 0; i < n / PHIQ_QK_K; i++) {
        const uint8_t *b = blocks + (size_t)i * stride;
        const phiq_block_q4_K *hd = (const phiq_block_q4_K *)(const void *)b; /* d, dmin, scales: same in both */
        int8_t aux8[PHIQ_QK_K];
        int32_t aux32[8] = {0};
        const uint8_t *q4 = b + qs_off, *hm = qh_off ? b + qh_off : NULL;
        int8_t *a = aux8;
        uint8_t m = 1;
        for (int j = 0; j < PHIQ_QK_K / 64; j++, q4 += 32) {
            for (int l = 0; l < 32; l++) a[l] = (int8_t)((q4[l] & 0xF) + (hm && (hm[l] & m) ? 16 : 0));
            a += 32, m <<= 1;
            for (int l = 0; l < 32; l++) a[l] = (int8_t)((q4[l] >> 4) + (hm && (hm[l] & m) ? 16 : 0));
            a += 32, m <<= 1;
        }
        uint8_t sc[8], mn[8];
        phiq_k4_scale_min_all(hd->scales, sc, mn);
        int sumi = 0;
        for (int j = 0; j < PHIQ_QK_K / 16; j++) sumi += y[i].bsums[j] * mn[j / 2];
        const int8_t *q8 = y[i].qs;
        a = aux8;
        for (int j = 0; j < PHIQ_QK_K / 32; j++, q8 += 32, a += 32) {
            lanes16(aux32, sc[j], q8, a);
            lanes16(aux32, sc[j], q8 + 16, a + 16);
        }
        const float d = F16(hd->d) * y[i].d;
        for (int l = 0; l < 8; l++) sums[l] += d * aux32[l];
        const float dmin = F16(hd->dmin) * y[i].d;
        sumf -= dmin * sumi;
    }
    for (int l = 0; l < 8; l++) sumf += sums[l];
    *s = sumf;
}

_Static_assert(offsetof(phiq_block_q4_K, scales) == offsetof(phiq_block_q5_K, scales), "Q4_K/Q5_K share d, dmin, scales");

static void dot_q4_K(int64_t n, float *s, const void *vx, const void *vy) {
    k45_dot(n, s, vx, sizeof(phiq_block_q4_K), 0, offsetof(phiq_block_q4_K, qs), vy);
}

static void dot_q5_K(int64_t n, float *s, const void *vx, const void *vy) {
    k45_dot(n, s, vx, sizeof(phiq_block_q5_K), offsetof(phiq_block_q5_K, qh), offsetof(phiq_block_q5_K, qs), vy);
}

static float unpack_q6_K(const void *blocks, int64_t i, int8_t *a, int8_t scales[16]) {
    const phiq_block_q6_K *x = (const phiq_block_q6_K *)blocks + i;
    const uint8_t *ql = x->ql, *qh = x->qh;
    for (int j = 0; j < PHIQ_QK_K; j += 128, a += 128, ql += 64, qh += 32) {
        for (int l = 0; l < 32; l++) {
            a[l + 0] = (int8_t)(((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            a[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            a[l + 64] = (int8_t)(((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            a[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
    memcpy(scales, x->scales, 16);
    return F16(x->d);
}

static void dot_q6_K(int64_t n, float *s, const void *vx, const void *vy) { k16_dot(n, s, vx, vy, unpack_q6_K); }

static void dot_iq4_xs(int64_t n, float *s, const void *vx, const void *vy) {
    const phiq_block_iq4_xs *x = vx;
    const phiq_block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t ibl = 0; ibl < n / PHIQ_QK_K; ibl++) {
        const float d4d8 = F16(x[ibl].d) * y[ibl].d;
        uint16_t h = x[ibl].scales_h;
        const uint8_t *qs = x[ibl].qs;
        const int8_t *q8 = y[ibl].qs;
        for (int ib = 0; ib < PHIQ_QK_K / 32; ib += 2) {
            const int ls1 = (x[ibl].scales_l[ib / 2] & 0xf) | ((h << 4) & 0x30);
            const int ls2 = (x[ibl].scales_l[ib / 2] >> 4) | ((h << 2) & 0x30);
            h >>= 4;
            const float d1 = d4d8 * (ls1 - 32), d2 = d4d8 * (ls2 - 32);
            int sumi1 = 0, sumi2 = 0;
            for (int j = 0; j < 16; j++) {
                sumi1 += q8[j] * phiq_kvalues_iq4nl[qs[j] & 0xf];
                sumi2 += q8[j + 16] * phiq_kvalues_iq4nl[qs[j] >> 4];
            }
            sumf += d1 * (sumi1 + sumi2);
            qs += 16, q8 += 32;
            sumi1 = sumi2 = 0;
            for (int j = 0; j < 16; j++) {
                sumi1 += q8[j] * phiq_kvalues_iq4nl[qs[j] & 0xf];
                sumi2 += q8[j + 16] * phiq_kvalues_iq4nl[qs[j] >> 4];
            }
            sumf += d2 * (sumi1 + sumi2);
            qs += 16, q8 += 32;
        }
    }
    *s = sumf;
}

/* ---- float types: products in float, sum in double (ggml_vec_dot_f16) ------- */

static void dot_f16(int64_t n, float *s, const void *vx, const void *vy) {
    const uint16_t *x = vx, *y = vy;
    double sumf = 0;
    for (int64_t i = 0; i < n; i++) sumf += (double)(F16(x[i]) * F16(y[i]));
    *s = (float)sumf;
}

static void dot_f16_f32(int64_t n, float *s, const void *vx, const void *vy) {
    const uint16_t *x = vx;
    const float *y = vy;
    double sumf = 0;
    for (int64_t i = 0; i < n; i++) sumf += (double)(F16(x[i]) * y[i]);
    *s = (float)sumf;
}

static void dot_bf16(int64_t n, float *s, const void *vx, const void *vy) {
    const uint16_t *x = vx, *y = vy;
    double sumf = 0;
    for (int64_t i = 0; i < n; i++) sumf += (double)(phiq_bf16_to_f32(x[i]) * phiq_bf16_to_f32(y[i]));
    *s = (float)sumf;
}

static void dot_f32(int64_t n, float *s, const void *vx, const void *vy) {
    const float *x = vx, *y = vy;
    double sumf = 0;
    for (int64_t i = 0; i < n; i++) sumf += (double)(x[i] * y[i]);
    *s = (float)sumf;
}

/* ---- table ------------------------------------------------------------------ */

void phiq_gemm_rows(phiq_vec_dot_fn dot, int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo,
                    const void *w, size_t row_bytes, const void *act, size_t act_stride) {
    const char *wp = w, *ap = act;
    for (int64_t j0 = 0; j0 < ncols; j0 += PHIQ_GEMM_COL_TILE) {
        const int64_t j1 = j0 + PHIQ_GEMM_COL_TILE < ncols ? j0 + PHIQ_GEMM_COL_TILE : ncols;
        for (int64_t r0 = 0; r0 < nrows; r0 += PHIQ_GEMM_ROW_TILE) {
            const int64_t r1 = r0 + PHIQ_GEMM_ROW_TILE < nrows ? r0 + PHIQ_GEMM_ROW_TILE : nrows;
            for (int64_t j = j0; j < j1; j++)
                for (int64_t r = r0; r < r1; r++)
                    dot(n, out + (size_t)j * ldo + r, wp + (size_t)r * row_bytes, ap + (size_t)j * act_stride);
        }
    }
}

/* gemm through a 4-column row kernel (no activation preparation). */
void phiq_gemm_x4(phiq_dot_x4_fn x4, phiq_vec_dot_fn dot, int64_t n, int64_t nrows, int64_t ncols, float *out,
                    size_t ldo, const void *w, size_t rb, const void *act, size_t as) {
    const char *wp = w, *ap = act;
    for (int64_t j0 = 0; j0 < ncols; j0 += PHIQ_GEMM_COL_TILE) {
        const int64_t j1 = j0 + PHIQ_GEMM_COL_TILE < ncols ? j0 + PHIQ_GEMM_COL_TILE : ncols;
        for (int64_t r0 = 0; r0 < nrows; r0 += PHIQ_GEMM_ROW_TILE) {
            const int64_t r1 = r0 + PHIQ_GEMM_ROW_TILE < nrows ? r0 + PHIQ_GEMM_ROW_TILE : nrows;
            int64_t j = j0;
            for (; j + 4 <= j1; j += 4) {
                const void *const ys[4] = {ap + (size_t)j * as, ap + (size_t)(j + 1) * as, ap + (size_t)(j + 2) * as,
                                           ap + (size_t)(j + 3) * as};
                for (int64_t r = r0; r < r1; r++) {
                    float v[4];
                    x4(n, wp + (size_t)r * rb, ys, v);
                    for (int c = 0; c < 4; c++) out[(size_t)(j + c) * ldo + r] = v[c];
                }
            }
            for (; j < j1; j++)
                for (int64_t r = r0; r < r1; r++) dot(n, out + (size_t)j * ldo + r, wp + (size_t)r * rb, ap + (size_t)j * as);
        }
    }
}

/* Every type with a dot, and the activation type its dot takes. */
#define SCALAR_TYPES(X)                                                                            \
    X(Q4_0, q4_0, Q8_0) X(Q4_1, q4_1, Q8_1) X(Q5_0, q5_0, Q8_0) X(Q5_1, q5_1, Q8_1)               \
    X(Q8_0, q8_0, Q8_0) X(IQ4_NL, iq4_nl, Q8_0) X(Q2_K, q2_K, Q8_K) X(Q3_K, q3_K, Q8_K)           \
    X(Q4_K, q4_K, Q8_K) X(Q5_K, q5_K, Q8_K) X(Q6_K, q6_K, Q8_K) X(IQ4_XS, iq4_xs, Q8_K)           \
    X(F16, f16, F16) X(BF16, bf16, BF16) X(F32, f32, F32)
#define SCALAR_ROWS(T, name, act) PHIQ_ROWS_FROM_DOT(name)
SCALAR_TYPES(SCALAR_ROWS)

/* 64-bit loads (memcpy: p need not be aligned), four independent sums. */
static uint64_t stream_read(const void *p, size_t n, size_t ahead) {
    const char *c = p;
    uint64_t s[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < n; i += 256) {
        if (ahead)
            for (int l = 0; l < 4; l++) __builtin_prefetch(c + i + ahead + 64 * l);
        for (size_t j = i; j < i + 256; j += 32)
            for (int u = 0; u < 4; u++) {
                uint64_t w;
                memcpy(&w, c + j + 8 * u, 8);
                s[u] += w;
            }
    }
    return s[0] + s[1] + s[2] + s[3];
}

static double exp_sum(const float *x, int64_t n, float mx, double *e) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        const double t = exp((double)x[i] - mx);
        s += t;
        if (e) e[i] = t;
    }
    return s;
}

void phiq_kernels_init_scalar(phiq_kernels *k) {
    memset(k, 0, sizeof *k);
    k->isa = "scalar";
    for (int t = 0; t < PHIQ_GGML_TYPE_COUNT; t++) k->act_type[t] = -1;
    k->quantize_act = phiq_quantize_act_ref;
    k->dot_f16_f32 = dot_f16_f32;
    k->gram_upper = phiq_gram_upper_ref;
    k->stream_read = stream_read;
    k->exp_sum = exp_sum;
#define SCALAR_SET(T, name, act) k->act_type[PHIQ_GGML_TYPE_##T] = PHIQ_GGML_TYPE_##act, PHIQ_KERNELS_SET_K(T, name)
    SCALAR_TYPES(SCALAR_SET)
#undef SCALAR_SET
}
