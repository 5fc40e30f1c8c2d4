/* attn_avx2.c — AVX2+F16C attention of one head over an f16 KV cache (see
 * attn.h): 8-wide F16C conversion of keys and values, FMA dots and axpys.
 * The softmax is the portable one (max-subtracted expf, double sum). */
#include <immintrin.h>
#include <math.h>

#include "kernels/attn.h"

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

void phiq_attn_head_f16_avx2(const float *q, const uint16_t *K, const uint16_t *V, size_t stride, int n, float scale,
                             float *s, float *o, int hd) {
    const int hd8 = hd & ~7;
    float mx = -INFINITY;
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
        float d = hsum8(_mm256_add_ps(a0, a1));
        for (; i < hd; i++) d += h2f(kr[i]) * q[i];
        s[k] = d * scale;
        if (s[k] > mx) mx = s[k];
    }
    double sum = 0;
    for (int k = 0; k < n; k++) {
        s[k] = expf(s[k] - mx);
        sum += s[k];
    }
    const float inv = (float)(1.0 / sum);
    for (int i = 0; i < hd; i++) o[i] = 0;
    int k = 0;
    /* two positions per pass halve the loads and stores of o */
    for (; k + 2 <= n; k += 2) {
        const uint16_t *v0 = V + (size_t)k * stride, *v1 = v0 + stride;
        const float p0 = s[k] * inv, p1 = s[k + 1] * inv;
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
        const float p0 = s[k] * inv;
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
