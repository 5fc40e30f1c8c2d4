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
    for (int i = 0; i < NV; i++) acc[i] = _mm512_maskz_loadu_ps(lanes(hd - 16 * i), o + 16 * i);
    if (mx > st[0]) {
        const float c = expf(st[0] - mx); /* 0 for the empty state */
        st[1] *= c;
        for (int i = 0; i < NV; i++) acc[i] = _mm512_mul_ps(acc[i], _mm512_set1_ps(c));
        st[0] = mx;
    }
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

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ggml's AVX2 q8_0 x q8_0 block product: 8 int32 lane sums of x * y over
 * 32 signed bytes (|x| as u8 times y with x's sign), as floats. */
static inline __m256 q8_dot_lanes(const int8_t *x, const int8_t *y) {
    const __m256i vx = _mm256_loadu_si256((const __m256i *)(const void *)x);
    const __m256i vy = _mm256_loadu_si256((const __m256i *)(const void *)y);
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(vx, vx), _mm256_sign_epi8(vy, vx));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
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
            acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(kb[b].d)), qd[b]), q8_dot_lanes(kb[b].qs, qb[b].qs), acc);
        s[k] = hsum8(acc);
    }
    for (int k = 0; k < n; k += 64) q8_weights(s + k, n - k < 64 ? n - k : 64, &st[0], &st[1]);
    switch (nb) {
    case 1: q8_v_pass(V, stride, n, s, st + 2, 1); break;
    case 2: q8_v_pass(V, stride, n, s, st + 2, 2); break;
    case 3: q8_v_pass(V, stride, n, s, st + 2, 3); break;
    default: q8_v_pass(V, stride, n, s, st + 2, 4); break;
    }
}
