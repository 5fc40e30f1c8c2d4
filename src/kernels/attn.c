/* attn.c — the portable attention-of-one-head kernels over an f16 or a
 * Q8_0 KV cache and the per-CPU choice between them and the AVX2+F16C ones
 * (see attn.h). */
#include "kernels/attn.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "core/common.h"
#include "kernels/cpu.h"
#include "kernels/dot.h"
#include "kernels/ops.h"

static void attn_head_f16_ref(const float *q, const uint16_t *K, const uint16_t *V, size_t stride, int n, float scale,
                              float *s, float *o, int hd) {
    for (int k = 0; k < n; k++) {
        const uint16_t *kr = K + (size_t)k * stride;
        float acc[4] = {0};
        int i = 0;
        for (; i + 4 <= hd; i += 4)
            for (int j = 0; j < 4; j++) acc[j] += phiq_ops_h2f(kr[i + j]) * q[i + j];
        float d = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        for (; i < hd; i++) d += phiq_ops_h2f(kr[i]) * q[i];
        s[k] = d * scale;
    }
    phiq_softmax(s, n);
    for (int i = 0; i < hd; i++) o[i] = 0;
    for (int k = 0; k < n; k++) {
        const uint16_t *vr = V + (size_t)k * stride;
        for (int i = 0; i < hd; i++) o[i] += s[k] * phiq_ops_h2f(vr[i]);
    }
}

/* Follows ggml's generic path: integer block sums times d_k * d_q (as
 * ggml_vec_dot_q8_0_q8_0), dequantized V rows (dequantize_row_q8_0) added
 * with the online-softmax weight (ggml_vec_mad_f32). */
static void attn_head_q8_0_ref(const void *q8, const uint8_t *K, const uint8_t *V, size_t stride, int n, float *sc,
                               float *o, int hd) {
    (void)sc; /* one position at a time, as ggml */
    const phiq_block_q8_0 *qb = q8;
    const int nb = hd / PHIQ_QK;
    float S = 0.0f, M = -INFINITY;
    for (int i = 0; i < hd; i++) o[i] = 0;
    for (int k = 0; k < n; k++) {
        const phiq_block_q8_0 *kb = (const phiq_block_q8_0 *)(const void *)(K + (size_t)k * stride);
        const phiq_block_q8_0 *vb = (const phiq_block_q8_0 *)(const void *)(V + (size_t)k * stride);
        float s = 0.0f;
        for (int b = 0; b < nb; b++) {
            int sumi = 0;
            for (int j = 0; j < PHIQ_QK; j++) sumi += kb[b].qs[j] * qb[b].qs[j];
            s += (float)sumi * (phiq_ops_h2f(kb[b].d) * phiq_ops_h2f(qb[b].d));
        }
        float ms = 1.0f, vs = 1.0f;
        if (s > M) {
            const float Mold = M;
            M = s;
            ms = expf(Mold - M);
            for (int i = 0; i < hd; i++) o[i] *= ms;
        } else {
            vs = expf(s - M);
        }
        for (int b = 0; b < nb; b++) {
            const float d = phiq_ops_h2f(vb[b].d);
            for (int j = 0; j < PHIQ_QK; j++) o[b * PHIQ_QK + j] += ((float)vb[b].qs[j] * d) * vs;
        }
        S = S * ms + vs;
    }
    const float inv = S == 0.0f ? 0.0f : 1.0f / S;
    for (int i = 0; i < hd; i++) o[i] *= inv;
}

void phiq_attn_fwht(float *x, int n) {
    const float scale = 1.0f / sqrtf((float)n);
    for (int i = 0; i < n; i++) x[i] *= scale;
    for (int len = 1; len < n; len <<= 1)
        for (int i = 0; i < n; i += 2 * len)
            for (int j = i; j < i + len; j++) {
                const float u = x[j], v = x[j + len];
                x[j] = u + v;
                x[j + len] = u - v;
            }
}

static void f32_to_f16_row_ref(uint16_t *dst, const float *src, int n) {
    for (int i = 0; i < n; i++) dst[i] = phiq_f32_to_f16(src[i]);
}

static const phiq_attn_kernels g_attn_ref = {attn_head_f16_ref, f32_to_f16_row_ref, attn_head_q8_0_ref};
static phiq_attn_kernels g_attn;
static pthread_once_t g_attn_once = PTHREAD_ONCE_INIT;

const phiq_attn_kernels *phiq_attn_kernels_ref(void) { return &g_attn_ref; }

static void attn_build(void) {
    g_attn = g_attn_ref;
#if defined(__x86_64__) || defined(_M_X64)
    const phiq_cpu *c = phiq_cpu_get();
    const char *isa = getenv("PHIQ_ISA");
    if (c->avx2 && c->fma && c->f16c && !(isa && phiq_streq_nocase(isa, "scalar"))) {
        g_attn.head_f16 = phiq_attn_head_f16_avx2;
        g_attn.to_f16 = phiq_f32_to_f16_row_avx2;
        g_attn.head_q8_0 = phiq_attn_head_q8_0_avx2;
    }
#endif
}

const phiq_attn_kernels *phiq_attn_kernels_get(void) {
    pthread_once(&g_attn_once, attn_build);
    return &g_attn;
}
