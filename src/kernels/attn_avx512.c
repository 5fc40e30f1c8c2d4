/* attn_avx512.c — AVX-512 span kernels of attention (see attn.h), the
 * decode path at depth: the KV cache is streamed once per token, so these
 * keep the whole query and output row in zmm registers (head_dim <= 128),
 * prefetch the rows a few positions ahead (each head reads a slice of a
 * 3-6 KiB cache row: a stride the hardware prefetchers do not follow) and
 * compute the softmax weights 16 at a time with ggml's polynomial exp.
 * f16 cache: F16C widening, FMA dots. Q8_0 cache: the scores with ggml's
 * AVX2 arithmetic (8 float lanes, one FMA per block), ggml's one-position-
 * at-a-time online softmax with the exps vectorized, V blocks widened to
 * f32 and added with FMA. head_dim > 128 goes to the AVX2 kernels. */
#include <immintrin.h>
#include <math.h>

#include "kernels/attn.h"
#include "kernels/dot.h"
#include "kernels/kq_x86.h"

#define PF_AHEAD 8 /* positions */

/* ggml_v_expf (ggml-cpu/vec.h): exp within ~1 ulp, 0 for -inf and large
 * negative arguments, inf for large positive ones. */
static inline __m512 v_expf(__m512 x) {
    const __m512 r = _mm512_set1_ps(0x1.8p23f);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
    const __m512 n = _mm512_sub_ps(z, r);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f), _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
    const __mmask16 d = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
                        _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
        u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f)));
    const __m512 res = _mm512_scalef_ps(j, n);
    if (_mm512_kortestz(d, d)) return res;
    const __m512 zero = _mm512_setzero_ps();
    const __m512 alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, zero, _CMP_LE_OQ), _mm512_set1_ps(INFINITY), zero);
    return _mm512_mask_blend_ps(d, res, alt);
}

static inline __mmask16 lanes(int left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1); }

static inline __m512 ldh(const uint16_t *p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }

static inline void prefetch_row(const void *p, size_t bytes) {
    for (size_t b = 0; b < bytes; b += 64) _mm_prefetch((const char *)p + b, _MM_HINT_T0);
    _mm_prefetch((const char *)p + bytes - 1, _MM_HINT_T0);
}

/* s[k] = exp(s[k] - mx) for k < n; returns their sum. */
static inline float exp_shift(float *s, int n, float mx) {
    const __m512 m = _mm512_set1_ps(mx);
    __m512 sum = _mm512_setzero_ps();
    for (int k = 0; k < n; k += 16) {
        const __mmask16 mk = lanes(n - k);
        const __m512 p = _mm512_maskz_mov_ps(mk, v_expf(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, s + k), m)));
        _mm512_mask_storeu_ps(s + k, mk, p);
        sum = _mm512_add_ps(sum, p);
    }
    return _mm512_reduce_add_ps(sum);
}

static inline __attribute__((always_inline)) void span_f16(const float *q, float scale, const uint16_t *K,
                                                           const uint16_t *V, size_t stride, int n, float *st, float *s,
                                                           int hd, const int NV) {
    __m512 qv[8], acc[8];
    for (int i = 0; i < NV; i++) qv[i] = _mm512_maskz_loadu_ps(lanes(hd - 16 * i), q + 16 * i);
    const size_t rb = (size_t)hd * 2;
    float mx = st[0];
    for (int k = 0; k < n; k++) {
        const uint16_t *kr = K + (size_t)k * stride;
        if (k + PF_AHEAD < n) prefetch_row(kr + PF_AHEAD * stride, rb);
        __m512 a = _mm512_mul_ps(ldh(kr, lanes(hd)), qv[0]);
        for (int i = 1; i < NV; i++) a = _mm512_fmadd_ps(ldh(kr + 16 * i, lanes(hd - 16 * i)), qv[i], a);
        const float d = _mm512_reduce_add_ps(a) * scale;
        s[k] = d;
        if (d > mx) mx = d;
    }
    float *o = st + 2;
    phiq_attn_state_rescale(st, mx, hd);
    for (int i = 0; i < NV; i++) acc[i] = _mm512_maskz_loadu_ps(lanes(hd - 16 * i), o + 16 * i);
    st[1] += exp_shift(s, n, mx);
    for (int k = 0; k < n; k++) {
        const uint16_t *vr = V + (size_t)k * stride;
        if (k + PF_AHEAD < n) prefetch_row(vr + PF_AHEAD * stride, rb);
        const __m512 p = _mm512_set1_ps(s[k]);
        for (int i = 0; i < NV; i++) acc[i] = _mm512_fmadd_ps(ldh(vr + 16 * i, lanes(hd - 16 * i)), p, acc[i]);
    }
    for (int i = 0; i < NV; i++) _mm512_mask_storeu_ps(o + 16 * i, lanes(hd - 16 * i), acc[i]);
}

void phiq_attn_span_f16_avx512(const float *q, float scale, const uint16_t *K, const uint16_t *V, size_t stride, int n,
                               float *st, float *s, int hd) {
    switch ((hd + 15) / 16) {
    case 1: span_f16(q, scale, K, V, stride, n, st, s, hd, 1); break;
    case 2: span_f16(q, scale, K, V, stride, n, st, s, hd, 2); break;
    case 3: span_f16(q, scale, K, V, stride, n, st, s, hd, 3); break;
    case 4: span_f16(q, scale, K, V, stride, n, st, s, hd, 4); break;
    case 5: span_f16(q, scale, K, V, stride, n, st, s, hd, 5); break;
    case 6: span_f16(q, scale, K, V, stride, n, st, s, hd, 6); break;
    case 7: span_f16(q, scale, K, V, stride, n, st, s, hd, 7); break;
    case 8: span_f16(q, scale, K, V, stride, n, st, s, hd, 8); break;
    default: phiq_attn_span_f16_avx2(q, scale, K, V, stride, n, st, s, hd);
    }
}

/* 16 values j..j+15 of a Q8_0 block, dequantized (qs * d, as dequantize_row_q8_0). */
static inline __m512 q8_deq16(const phiq_block_q8_0 *b, int j, __m512 d) {
    const __m128i q = _mm_loadu_si128((const __m128i *)(const void *)(b->qs + j));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), d);
}

/* The V pass: o += V_k * w_k, rescaling o by -w_k where w_k is negative
 * (or -0.0): the new-maximum events of the online softmax. */
static inline __attribute__((always_inline)) void q8_v_pass(const uint8_t *V, size_t stride, int n, const float *w,
                                                            float *o, const int NB) {
    __m512 acc[8];
    const size_t rb = (size_t)NB * sizeof(phiq_block_q8_0);
    for (int i = 0; i < 2 * NB; i++) acc[i] = _mm512_loadu_ps(o + 16 * i);
    for (int k = 0; k < n; k++) {
        const phiq_block_q8_0 *vb = (const phiq_block_q8_0 *)(const void *)(V + (size_t)k * stride);
        if (k + PF_AHEAD < n) prefetch_row(V + (size_t)(k + PF_AHEAD) * stride, rb);
        float vs = w[k];
        if (signbit(vs)) {
            const __m512 ms = _mm512_set1_ps(-vs);
            for (int i = 0; i < 2 * NB; i++) acc[i] = _mm512_mul_ps(acc[i], ms);
            vs = 1.0f;
        }
        const __m512 vvs = _mm512_set1_ps(vs);
        for (int b = 0; b < NB; b++) {
            const __m512 d = _mm512_set1_ps(_cvtsh_ss(vb[b].d));
            acc[2 * b] = _mm512_fmadd_ps(q8_deq16(&vb[b], 0, d), vvs, acc[2 * b]);
            acc[2 * b + 1] = _mm512_fmadd_ps(q8_deq16(&vb[b], 16, d), vvs, acc[2 * b + 1]);
        }
    }
    for (int i = 0; i < 2 * NB; i++) _mm512_storeu_ps(o + 16 * i, acc[i]);
}

/* ggml's recurrence over one chunk of at most 64 scores: M_k the running
 * maximum; at a new maximum the weight is exp(M_old - s_k) applied to o and
 * S (stored as its negative), else exp(s_k - M). The arguments are found in
 * scalar, the exps 16 at a time, then S follows in scalar. */
static void q8_weights(float *s, int n, float *pM, float *pS) {
    float arg[64] __attribute__((aligned(64)));
    uint64_t ev = 0;
    float M = *pM, S = *pS;
    for (int k = 0; k < n; k++) {
        if (s[k] > M) {
            arg[k] = M - s[k];
            M = s[k];
            ev |= 1ull << k;
        } else
            arg[k] = s[k] - M;
    }
    for (int k = 0; k < n; k += 16) {
        const __mmask16 mk = lanes(n - k);
        _mm512_mask_storeu_ps(arg + k, mk, v_expf(_mm512_maskz_loadu_ps(mk, arg + k)));
    }
    for (int k = 0; k < n; k++) {
        if (ev >> k & 1) {
            S = S * arg[k] + 1.0f;
            s[k] = -arg[k]; /* in [0, 1); -0.0 still reads as an event */
        } else {
            S += arg[k];
            s[k] = arg[k];
        }
    }
    *pM = M;
    *pS = S;
}

void phiq_attn_span_q8_0_avx512(const void *q8, const uint8_t *K, const uint8_t *V, size_t stride, int n, float *st,
                                float *s, int hd) {
    const int nb = hd / PHIQ_QK;
    if (nb > 4) {
        phiq_attn_span_q8_0_avx2(q8, K, V, stride, n, st, s, hd);
        return;
    }
    const phiq_block_q8_0 *qb = q8;
    const size_t rb = (size_t)nb * sizeof(phiq_block_q8_0);
    __m256 qd[4];
    for (int b = 0; b < nb; b++) qd[b] = _mm256_set1_ps(_cvtsh_ss(qb[b].d));
    for (int k = 0; k < n; k++) {
        const phiq_block_q8_0 *kb = (const phiq_block_q8_0 *)(const void *)(K + (size_t)k * stride);
        if (k + PF_AHEAD < n) prefetch_row(K + (size_t)(k + PF_AHEAD) * stride, rb);
        __m256 acc = _mm256_setzero_ps();
        for (int b = 0; b < nb; b++)
            acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(kb[b].d)), qd[b]), phiq_q8_dot_lanes(kb[b].qs, qb[b].qs), acc);
        s[k] = phiq_hsum8(acc);
    }
    for (int k = 0; k < n; k += 64) q8_weights(s + k, n - k < 64 ? n - k : 64, &st[0], &st[1]);
    switch (nb) {
    case 1: q8_v_pass(V, stride, n, s, st + 2, 1); break;
    case 2: q8_v_pass(V, stride, n, s, st + 2, 2); break;
    case 3: q8_v_pass(V, stride, n, s, st + 2, 3); break;
    default: q8_v_pass(V, stride, n, s, st + 2, 4); break;
    }
}

/* ---- prefill: several query rows over one tile (attn.h, block_f16) ---------------- */

/* Scores of 4 rows (q0..q3) against the transposed tile KT[hd][64]: 16
 * accumulators, one load of each key column group shared by 4 rows. */
static inline void block_scores4(const float *q0, const float *q1, const float *q2, const float *q3, const float *KT,
                                 int hd, __m512 acc[4][4]) {
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_ps();
    for (int i = 0; i < hd; i++) {
        const float *kt = KT + (size_t)i * PHIQ_ATTN_BLOCK_POS;
        const __m512 k0 = _mm512_load_ps(kt), k1 = _mm512_load_ps(kt + 16), k2 = _mm512_load_ps(kt + 32),
                     k3 = _mm512_load_ps(kt + 48);
        const float *qs[4] = {q0, q1, q2, q3};
        for (int r = 0; r < 4; r++) {
            const __m512 b = _mm512_set1_ps(qs[r][i]);
            acc[r][0] = _mm512_fmadd_ps(b, k0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(b, k1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(b, k2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(b, k3, acc[r][3]);
        }
    }
}

/* o_a += sum_k P_a[k] VF[k], o_b likewise, over k in [k0, k1): NV vectors
 * of each output in registers, each V row loaded once for both. */
static inline __attribute__((always_inline)) void block_v2(const float *VF, int hd, const float *Pa, const float *Pb,
                                                           float *oa, float *ob, int k0, int k1, const int NV) {
    __m512 a[8], b[8];
    for (int i = 0; i < NV; i++) a[i] = _mm512_loadu_ps(oa + 16 * i), b[i] = _mm512_loadu_ps(ob + 16 * i);
    for (int k = k0; k < k1; k++) {
        const float *v = VF + (size_t)k * hd;
        const __m512 pa = _mm512_set1_ps(Pa[k]), pb = _mm512_set1_ps(Pb[k]);
        for (int i = 0; i < NV; i++) {
            const __m512 x = _mm512_load_ps(v + 16 * i);
            a[i] = _mm512_fmadd_ps(x, pa, a[i]);
            b[i] = _mm512_fmadd_ps(x, pb, b[i]);
        }
    }
    for (int i = 0; i < NV; i++) _mm512_storeu_ps(oa + 16 * i, a[i]), _mm512_storeu_ps(ob + 16 * i, b[i]);
}

void phiq_attn_block_f16_avx512(const float *q, size_t ldq, int nq, const int *lo, const int *hi, float scale,
                                const uint16_t *K, const uint16_t *V, size_t stride, int n, float *st, float *ws,
                                int hd) {
    const size_t SS = PHIQ_ATTN_STATE(hd);
    if (hd % 16 || hd > 128) { /* not register-blocked: one span per row */
        for (int r = 0; r < nq; r++)
            if (lo[r] < hi[r])
                phiq_attn_span_f16_avx512(q + (size_t)r * ldq, scale, K + (size_t)lo[r] * stride,
                                          V + (size_t)lo[r] * stride, stride, hi[r] - lo[r], st + r * SS, ws, hd);
        return;
    }
    const int NV = hd / 16, BP = PHIQ_ATTN_BLOCK_POS;
    float *KT = ws, *VF = ws + (size_t)hd * BP, *P = VF + (size_t)hd * BP; /* P: [4][64] */
    /* widen the tile once: keys transposed (column k of row i), values as rows */
    const __m512i col = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                           _mm512_set1_epi32(BP));
    for (int k = 0; k < BP; k++) {
        if (k < n) {
            const uint16_t *kr = K + (size_t)k * stride, *vr = V + (size_t)k * stride;
            for (int i = 0; i < NV; i++) {
                _mm512_i32scatter_ps(KT + (size_t)16 * i * BP + k, col, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(kr + 16 * i))), 4);
                _mm512_store_ps(VF + (size_t)k * hd + 16 * i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(vr + 16 * i))));
            }
        } else
            for (int i = 0; i < NV; i++) _mm512_i32scatter_ps(KT + (size_t)16 * i * BP + k, col, _mm512_setzero_ps(), 4);
    }
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    float zero[PHIQ_ATTN_BLOCK_POS] __attribute__((aligned(64))) = {0}, dummy[128] __attribute__((aligned(64))) = {0};
    const __m512 vscale = _mm512_set1_ps(scale), ninf = _mm512_set1_ps(-INFINITY);
    for (int r0 = 0; r0 < nq; r0 += 4) {
        const int R = nq - r0 < 4 ? nq - r0 : 4;
        const float *qr[4];
        for (int r = 0; r < 4; r++) qr[r] = q + (size_t)(r0 + (r < R ? r : R - 1)) * ldq;
        __m512 acc[4][4];
        block_scores4(qr[0], qr[1], qr[2], qr[3], KT, hd, acc);
        int kmin = BP, kmax = 0;
        for (int r = 0; r < 4; r++) {
            float *pr = P + r * BP;
            const int a = r < R ? lo[r0 + r] : 0, b = r < R ? hi[r0 + r] : 0;
            if (a >= b) { /* nothing visible: weights 0, state unchanged */
                for (int c = 0; c < 4; c++) _mm512_store_ps(pr + 16 * c, _mm512_setzero_ps());
                continue;
            }
            if (a < kmin) kmin = a;
            if (b > kmax) kmax = b;
            float *s = st + (size_t)(r0 + r) * SS;
            __mmask16 m[4];
            __m512 sc[4], mx = ninf;
            for (int c = 0; c < 4; c++) {
                const __m512i idx = _mm512_add_epi32(lane, _mm512_set1_epi32(16 * c));
                m[c] = _mm512_cmpge_epi32_mask(idx, _mm512_set1_epi32(a)) & _mm512_cmplt_epi32_mask(idx, _mm512_set1_epi32(b));
                sc[c] = _mm512_mask_blend_ps(m[c], ninf, _mm512_mul_ps(acc[r][c], vscale));
                mx = _mm512_max_ps(mx, sc[c]);
            }
            const float tmax = _mm512_reduce_max_ps(mx);
            phiq_attn_state_rescale(s, tmax, hd);
            const __m512 M = _mm512_set1_ps(s[0]);
            __m512 sum = _mm512_setzero_ps();
            for (int c = 0; c < 4; c++) {
                const __m512 p = _mm512_maskz_mov_ps(m[c], v_expf(_mm512_sub_ps(sc[c], M)));
                _mm512_store_ps(pr + 16 * c, p);
                sum = _mm512_add_ps(sum, p);
            }
            s[1] += _mm512_reduce_add_ps(sum);
        }
        if (kmin >= kmax) continue;
        for (int r = 0; r < R; r += 2) {
            /* an odd last row gets a twin with zero weights writing to a
             * discarded buffer */
            float *oa = st + (size_t)(r0 + r) * SS + 2, *ob = dummy;
            const float *Pb = zero;
            if (r + 1 < R) {
                Pb = P + (r + 1) * BP;
                ob = st + (size_t)(r0 + r + 1) * SS + 2;
            }
            switch (NV) {
            case 1: block_v2(VF, hd, P + r * BP, Pb, oa, ob, kmin, kmax, 1); break;
            case 2: block_v2(VF, hd, P + r * BP, Pb, oa, ob, kmin, kmax, 2); break;
            case 3: block_v2(VF, hd, P + r * BP, Pb, oa, ob, kmin, kmax, 3); break;
            case 4: block_v2(VF, hd, P + r * BP, Pb, oa, ob, kmin, kmax, 4); break;
            case 5: block_v2(VF, hd, P + r * BP, Pb, oa, ob, kmin, kmax, 5); break;
            case 6: block_v2(VF, hd, P + r * BP, Pb, oa, ob, kmin, kmax, 6); break;
            case 7: block_v2(VF, hd, P + r * BP, Pb, oa, ob, kmin, kmax, 7); break;
            default: block_v2(VF, hd, P + r * BP, Pb, oa, ob, kmin, kmax, 8); break;
            }
        }
    }
}
