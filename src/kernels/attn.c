/* attn.c — the portable span kernels of attention over an f16 or a Q8_0 KV
 * cache, the partial-state helpers (init, flash-decoding merge, output) and
 * the per-CPU choice between them and the AVX2, AVX-512 and NEON kernels
 * (see attn.h). */
#include "kernels/attn.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "core/common.h"
#include "kernels/cpu.h"
#include "kernels/dot.h"
#include "kernels/ops.h"

void phiq_attn_state_init(float *st, int hd) {
    st[0] = -INFINITY;
    st[1] = 0.0f;
    for (int i = 0; i < hd; i++) st[2 + i] = 0.0f;
}

void phiq_attn_state_merge(float *dst, const float *src, int hd) {
    if (src[1] == 0.0f && src[0] == -INFINITY) return; /* src saw nothing */
    if (dst[1] == 0.0f && dst[0] == -INFINITY) {
        for (int i = 0; i < hd + 2; i++) dst[i] = src[i];
        return;
    }
    const float M = dst[0] > src[0] ? dst[0] : src[0];
    const float cd = expf(dst[0] - M), cs = expf(src[0] - M);
    dst[0] = M;
    dst[1] = dst[1] * cd + src[1] * cs;
    for (int i = 0; i < hd; i++) dst[2 + i] = dst[2 + i] * cd + src[2 + i] * cs;
}

void phiq_attn_state_out(const float *st, float *out, int hd) {
    const float inv = st[1] == 0.0f ? 0.0f : 1.0f / st[1];
    for (int i = 0; i < hd; i++) out[i] = st[2 + i] * inv;
}

/* Tile-wise online softmax: all scores of the span, one rescale of the
 * state to the span's maximum, then the weighted V rows. */
static void attn_span_f16_ref(const float *q, float scale, const uint16_t *K, const uint16_t *V, size_t stride, int n,
                              float *st, float *s, int hd) {
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
    phiq_attn_state_fold(st, s, n, hd);
    float *o = st + 2;
    for (int k = 0; k < n; k++) {
        const uint16_t *vr = V + (size_t)k * stride;
        for (int i = 0; i < hd; i++) o[i] += s[k] * phiq_ops_h2f(vr[i]);
    }
}

/* Follows ggml's generic path: integer block sums times d_k * d_q (as
 * ggml_vec_dot_q8_0_q8_0), dequantized V rows (dequantize_row_q8_0) added
 * with the online-softmax weight (ggml_vec_mad_f32). */
static void attn_span_q8_0_ref(const void *q8, const uint8_t *K, const uint8_t *V, size_t stride, int n, float *st,
                               float *sc, int hd) {
    (void)sc; /* one position at a time, as ggml */
    const phiq_block_q8_0 *qb = q8;
    const int nb = hd / PHIQ_QK;
    float M = st[0], S = st[1], *o = st + 2;
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
    st[0] = M;
    st[1] = S;
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

static const phiq_attn_kernels g_attn_ref = {attn_span_f16_ref, f32_to_f16_row_ref, attn_span_q8_0_ref, NULL, "scalar"};
#if defined(__x86_64__) || defined(_M_X64)
static const phiq_attn_kernels g_attn_avx2 = {phiq_attn_span_f16_avx2, phiq_f32_to_f16_row_avx2,
                                              phiq_attn_span_q8_0_avx2, phiq_attn_block_f16_avx2, "avx2"};
static const phiq_attn_kernels g_attn_avx512 = {phiq_attn_span_f16_avx512, phiq_f32_to_f16_row_avx2,
                                                phiq_attn_span_q8_0_avx512, phiq_attn_block_f16_avx512, "avx512"};
#endif
#if defined(__aarch64__)
static const phiq_attn_kernels g_attn_neon = {phiq_attn_span_f16_neon, phiq_f32_to_f16_row_neon,
                                              phiq_attn_span_q8_0_neon, NULL, "neon"};
#endif
static const phiq_attn_kernels *g_all[5];
static int g_n_all;
static const phiq_attn_kernels *g_best;
static pthread_once_t g_attn_once = PTHREAD_ONCE_INIT;

const phiq_attn_kernels *phiq_attn_kernels_ref(void) { return &g_attn_ref; }

static void attn_build(void) {
    g_all[g_n_all++] = &g_attn_ref;
#if defined(__x86_64__) || defined(_M_X64)
    const phiq_cpu *c = phiq_cpu_get();
    if (c->avx2 && c->fma && c->f16c) g_all[g_n_all++] = &g_attn_avx2;
    if (c->avx2 && c->fma && c->f16c && c->avx512f && c->avx512bw && c->avx512vl && c->avx512dq)
        g_all[g_n_all++] = &g_attn_avx512;
#endif
#if defined(__aarch64__)
    if (phiq_cpu_get()->neon) g_all[g_n_all++] = &g_attn_neon;
#endif
    g_all[g_n_all] = NULL;
    g_best = g_all[g_n_all - 1];
    const char *isa = getenv("PHIQ_ISA");
    if (isa && phiq_streq_nocase(isa, "scalar")) g_best = &g_attn_ref;
#if defined(__x86_64__) || defined(_M_X64)
    if (isa && phiq_streq_nocase(isa, "avx2") && g_n_all > 1) g_best = g_all[1];
#endif
}

const phiq_attn_kernels *phiq_attn_kernels_get(void) {
    pthread_once(&g_attn_once, attn_build);
    return g_best;
}

const phiq_attn_kernels *const *phiq_attn_kernels_all(int *n) {
    pthread_once(&g_attn_once, attn_build);
    if (n) *n = g_n_all;
    return g_all;
}
