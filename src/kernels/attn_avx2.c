/* attn_avx2.c — AVX2+F16C span kernels of attention (see attn.h). f16
 * cache: 8-wide F16C conversion of keys and values, FMA dots and axpys,
 * libm expf for the weights. Q8_0 cache: int8 dots through vpmaddubsw as
 * ggml's AVX2 vec_dot_q8_0_q8_0 (8 float lanes, one FMA per block), V blocks
 * widened to f32 and added with FMA under ggml's online softmax. */
#include <immintrin.h>
#include <math.h>

#include "kernels/attn.h"
#include "kernels/dot.h"
#include "kernels/kq_x86.h"

static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

void phiq_attn_span_f16_avx2(const float *q, float scale, const uint16_t *K, const uint16_t *V, size_t stride, int n,
                             float *st, float *s, int hd) {
    const int hd8 = hd & ~7;
    for (int k = 0; k < n; k++) {
        const uint16_t *kr = K + (size_t)k * stride;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int i = 0;
        for (; i + 16 <= hd8; i += 16) {
            a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(kr + i))), _mm256_loadu_ps(q + i), a0);
            a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(kr + i + 8))), _mm256_loadu_ps(q + i + 8), a1);
        }
        for (; i < hd8; i += 8)
            a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(kr + i))), _mm256_loadu_ps(q + i), a0);
        float d = phiq_hsum8(_mm256_add_ps(a0, a1));
        for (; i < hd; i++) d += h2f(kr[i]) * q[i];
        s[k] = d * scale;
    }
    phiq_attn_state_fold(st, s, n, hd);
    float *o = st + 2;
    int k = 0;
    /* two positions per pass halve the loads and stores of o */
    for (; k + 2 <= n; k += 2) {
        const uint16_t *v0 = V + (size_t)k * stride, *v1 = v0 + stride;
        const float p0 = s[k], p1 = s[k + 1];
        const __m256 b0 = _mm256_set1_ps(p0), b1 = _mm256_set1_ps(p1);
        int i = 0;
        for (; i < hd8; i += 8) {
            __m256 acc = _mm256_loadu_ps(o + i);
            acc = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v0 + i))), b0, acc);
            acc = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v1 + i))), b1, acc);
            _mm256_storeu_ps(o + i, acc);
        }
        for (; i < hd; i++) o[i] += p0 * h2f(v0[i]) + p1 * h2f(v1[i]);
    }
    for (; k < n; k++) {
        const uint16_t *v0 = V + (size_t)k * stride;
        const float p0 = s[k];
        const __m256 b0 = _mm256_set1_ps(p0);
        int i = 0;
        for (; i < hd8; i += 8)
            _mm256_storeu_ps(o + i, _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v0 + i))), b0,
                                                    _mm256_loadu_ps(o + i)));
        for (; i < hd; i++) o[i] += p0 * h2f(v0[i]);
    }
}

void phiq_f32_to_f16_row_avx2(uint16_t *dst, const float *src, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}

/* 8 values j..j+7 of a Q8_0 block, dequantized (qs * d, as dequantize_row_q8_0). */
static inline __m256 q8_deq8(const phiq_block_q8_0 *b, int j, __m256 d) {
    const __m128i q = _mm_loadl_epi64((const __m128i *)(const void *)(b->qs + j));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d);
}

/* o += V_k * w_k over positions, rescaling o by -w_k where w_k is negative
 * (or -0.0): the new-maximum events of the online softmax. NB blocks of
 * 32 (4 vectors each) stay in registers when NB is a constant. */
static inline __attribute__((always_inline)) void q8_v_pass(const uint8_t *V, size_t stride, int n, const float *w,
                                                            float *o, const int NB) {
    __m256 acc[16];
    for (int i = 0; i < 4 * NB; i++) acc[i] = _mm256_loadu_ps(o + 8 * i);
    for (int k = 0; k < n; k++) {
        const phiq_block_q8_0 *vb = (const phiq_block_q8_0 *)(const void *)(V + (size_t)k * stride);
        float vs = w[k];
        if (signbit(vs)) {
            const __m256 ms = _mm256_set1_ps(-vs);
            for (int i = 0; i < 4 * NB; i++) acc[i] = _mm256_mul_ps(acc[i], ms);
            vs = 1.0f;
        }
        const __m256 vvs = _mm256_set1_ps(vs);
        for (int b = 0; b < NB; b++) {
            const __m256 d = _mm256_set1_ps(h2f(vb[b].d));
            for (int j = 0; j < 4; j++) acc[4 * b + j] = _mm256_fmadd_ps(q8_deq8(&vb[b], 8 * j, d), vvs, acc[4 * b + j]);
        }
    }
    for (int i = 0; i < 4 * NB; i++) _mm256_storeu_ps(o + 8 * i, acc[i]);
}

/* Three passes with ggml's arithmetic: all scores (independent of each
 * other, so they pipeline), then the online-softmax recurrence in scalar
 * (its weights in s, new-maximum rescales encoded as -ms), then the V sum
 * with o in registers for head_dim <= 128. */
void phiq_attn_span_q8_0_avx2(const void *q8, const uint8_t *K, const uint8_t *V, size_t stride, int n, float *st,
                              float *s, int hd) {
    const phiq_block_q8_0 *qb = q8;
    const int nb = hd / PHIQ_QK;
    for (int k = 0; k < n; k++) {
        const phiq_block_q8_0 *kb = (const phiq_block_q8_0 *)(const void *)(K + (size_t)k * stride);
        __m256 acc = _mm256_setzero_ps();
        for (int b = 0; b < nb; b++)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(kb[b].d) * h2f(qb[b].d)), phiq_q8_dot_lanes(kb[b].qs, qb[b].qs), acc);
        s[k] = phiq_hsum8(acc);
    }
    float S = st[1], M = st[0];
    for (int k = 0; k < n; k++) {
        const float x = s[k];
        if (x > M) {
            const float ms = expf(M - x);
            M = x;
            S = S * ms + 1.0f;
            s[k] = -ms; /* ms in [0, 1); -0.0 still reads as an event */
        } else {
            const float vs = expf(x - M);
            S = S + vs;
            s[k] = vs;
        }
    }
    st[0] = M;
    st[1] = S;
    float *o = st + 2;
    switch (nb) {
    case 1: q8_v_pass(V, stride, n, s, o, 1); break;
    case 2: q8_v_pass(V, stride, n, s, o, 2); break;
    case 3: q8_v_pass(V, stride, n, s, o, 3); break;
    case 4: q8_v_pass(V, stride, n, s, o, 4); break;
    default:
        for (int b = 0; b < nb; b += 4) {
            const int c = nb - b < 4 ? nb - b : 4;
            const uint8_t *vb = V + (size_t)b * sizeof(phiq_block_q8_0);
            if (c == 4) q8_v_pass(vb, stride, n, s, o + b * PHIQ_QK, 4);
            else if (c == 3) q8_v_pass(vb, stride, n, s, o + b * PHIQ_QK, 3);
            else if (c == 2) q8_v_pass(vb, stride, n, s, o + b * PHIQ_QK, 2);
            else q8_v_pass(vb, stride, n, s, o + b * PHIQ_QK, 1);
        }
    }
}

/* ---- prefill: several query rows over one tile (attn.h, block_f16) ---------------- */

/* Rows k0..k0+7 of the tile (zeros past n), elements i..i+7 of each,
 * widened and transposed: out[e] = element i + e of the eight rows. */
static inline void widen_t8(const uint16_t *K, size_t stride, int k0, int n, int i, __m256 out[8]) {
    __m256 r[8];
    for (int k = 0; k < 8; k++)
        r[k] = k0 + k < n ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(K + (size_t)(k0 + k) * stride + i)))
                          : _mm256_setzero_ps();
    __m256 t[8], u[8];
    for (int k = 0; k < 8; k += 2) t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]), t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
    for (int k = 0; k < 8; k += 4) {
        u[k] = _mm256_shuffle_ps(t[k], t[k + 2], 0x44);
        u[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], 0xee);
        u[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0x44);
        u[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0xee);
    }
    for (int e = 0; e < 4; e++) {
        out[e] = _mm256_permute2f128_ps(u[e], u[e + 4], 0x20);
        out[e + 4] = _mm256_permute2f128_ps(u[e], u[e + 4], 0x31);
    }
}

/* Scores of 4 rows against 16 positions (columns c0..c0+15 of KT[hd][64]):
 * eight accumulators, each key load shared by the 4 rows. */
static inline void block_scores4x16(const float *const qr[4], const float *KT, int hd, int c0, __m256 acc[4][2]) {
    for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int i = 0; i < hd; i++) {
        const float *kt = KT + (size_t)i * PHIQ_ATTN_BLOCK_POS + c0;
        const __m256 k0 = _mm256_load_ps(kt), k1 = _mm256_load_ps(kt + 8);
        for (int r = 0; r < 4; r++) {
            const __m256 b = _mm256_broadcast_ss(qr[r] + i);
            acc[r][0] = _mm256_fmadd_ps(b, k0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(b, k1, acc[r][1]);
        }
    }
}

/* o_a[8 NV] += sum_k Pa[k] VF[k], o_b likewise, over k in [k0, k1): 2 NV
 * accumulators (NV <= 6 keeps them and the two weights in registers),
 * each V load shared by both rows. */
static inline __attribute__((always_inline)) void block_v2(const float *VF, int hd, const float *Pa, const float *Pb,
                                                           float *oa, float *ob, int k0, int k1, const int NV) {
    __m256 a[6], b[6];
    for (int i = 0; i < NV; i++) a[i] = _mm256_loadu_ps(oa + 8 * i), b[i] = _mm256_loadu_ps(ob + 8 * i);
    for (int k = k0; k < k1; k++) {
        const float *v = VF + (size_t)k * hd;
        const __m256 pa = _mm256_broadcast_ss(Pa + k), pb = _mm256_broadcast_ss(Pb + k);
        for (int i = 0; i < NV; i++) {
            const __m256 x = _mm256_load_ps(v + 8 * i);
            a[i] = _mm256_fmadd_ps(x, pa, a[i]);
            b[i] = _mm256_fmadd_ps(x, pb, b[i]);
        }
    }
    for (int i = 0; i < NV; i++) _mm256_storeu_ps(oa + 8 * i, a[i]), _mm256_storeu_ps(ob + 8 * i, b[i]);
}

/* As the AVX-512 block kernel, 8 wide: the tile widened once (keys
 * transposed by 8 x 8 register transposes), 4 query rows' scores 16
 * positions at a time, each row's softmax step by phiq_attn_state_fold (the
 * span kernel's own, so only the dot products' order differs from it), and
 * the weighted values two rows at a time, 48 output floats per pass. */
void phiq_attn_block_f16_avx2(const float *q, size_t ldq, int nq, const int *lo, const int *hi, float scale,
                              const uint16_t *K, const uint16_t *V, size_t stride, int n, float *st, float *ws, int hd) {
    const size_t SS = PHIQ_ATTN_STATE(hd);
    enum { BP = PHIQ_ATTN_BLOCK_POS, MAXHD = 256 };
    if (hd % 8 || hd > MAXHD) { /* one span per row */
        for (int r = 0; r < nq; r++)
            if (lo[r] < hi[r])
                phiq_attn_span_f16_avx2(q + (size_t)r * ldq, scale, K + (size_t)lo[r] * stride, V + (size_t)lo[r] * stride,
                                        stride, hi[r] - lo[r], st + r * SS, ws, hd);
        return;
    }
    const int NV = hd / 8;
    float *KT = ws, *VF = ws + (size_t)hd * BP, *P = VF + (size_t)hd * BP; /* P: [4][64] */
    for (int k0 = 0; k0 < BP; k0 += 8)
        for (int i = 0; i < hd; i += 8) {
            __m256 t[8];
            widen_t8(K, stride, k0, n, i, t);
            for (int e = 0; e < 8; e++) _mm256_store_ps(KT + (size_t)(i + e) * BP + k0, t[e]);
        }
    for (int k = 0; k < n; k++)
        for (int i = 0; i < hd; i += 8)
            _mm256_store_ps(VF + (size_t)k * hd + i,
                            _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(V + (size_t)k * stride + i))));
    static const float zero[BP] __attribute__((aligned(32)));
    float dummy[MAXHD] __attribute__((aligned(32)));
    const __m256 vscale = _mm256_set1_ps(scale);
    for (int r0 = 0; r0 < nq; r0 += 4) {
        const int R = nq - r0 < 4 ? nq - r0 : 4;
        const float *qr[4];
        for (int r = 0; r < 4; r++) qr[r] = q + (size_t)(r0 + (r < R ? r : R - 1)) * ldq;
        for (int c0 = 0; c0 < BP; c0 += 16) {
            __m256 acc[4][2];
            block_scores4x16(qr, KT, hd, c0, acc);
            for (int r = 0; r < 4; r++) {
                _mm256_store_ps(P + r * BP + c0, _mm256_mul_ps(acc[r][0], vscale));
                _mm256_store_ps(P + r * BP + c0 + 8, _mm256_mul_ps(acc[r][1], vscale));
            }
        }
        int kmin = BP, kmax = 0;
        for (int r = 0; r < R; r++) {
            float *pr = P + r * BP;
            const int a = lo[r0 + r], b = hi[r0 + r];
            if (a < b) {
                phiq_attn_state_fold(st + (size_t)(r0 + r) * SS, pr + a, b - a, hd); /* scores -> weights */
                if (a < kmin) kmin = a;
                if (b > kmax) kmax = b;
            }
            for (int k = 0; k < BP; k++)
                if (k < a || k >= b) pr[k] = 0.0f; /* invisible: weight 0 */
        }
        if (kmin >= kmax) continue;
        for (int r = 0; r < R; r += 2) {
            /* an odd last row gets a twin with zero weights writing to a discarded buffer */
            float *oa = st + (size_t)(r0 + r) * SS + 2, *ob = dummy;
            const float *Pb = zero;
            if (r + 1 < R) {
                Pb = P + (r + 1) * BP;
                ob = st + (size_t)(r0 + r + 1) * SS + 2;
            }
            for (int c = 0; c < NV; c += 6) {
                const int w = NV - c < 6 ? NV - c : 6, o8 = 8 * c;
                const float *Pa = P + r * BP;
                switch (w) {
                case 1: block_v2(VF + o8, hd, Pa, Pb, oa + o8, ob + o8, kmin, kmax, 1); break;
                case 2: block_v2(VF + o8, hd, Pa, Pb, oa + o8, ob + o8, kmin, kmax, 2); break;
                case 3: block_v2(VF + o8, hd, Pa, Pb, oa + o8, ob + o8, kmin, kmax, 3); break;
                case 4: block_v2(VF + o8, hd, Pa, Pb, oa + o8, ob + o8, kmin, kmax, 4); break;
                case 5: block_v2(VF + o8, hd, Pa, Pb, oa + o8, ob + o8, kmin, kmax, 5); break;
                default: block_v2(VF + o8, hd, Pa, Pb, oa + o8, ob + o8, kmin, kmax, 6); break;
                }
            }
        }
    }
}
