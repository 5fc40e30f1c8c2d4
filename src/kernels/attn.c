/* attn.c — the portable attention-of-one-head kernel over an f16 KV cache
 * and the per-CPU choice between it and the AVX2+F16C one (see attn.h). */
#include "kernels/attn.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "core/common.h"
#include "kernels/cpu.h"
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

static void f32_to_f16_row_ref(uint16_t *dst, const float *src, int n) {
    for (int i = 0; i < n; i++) dst[i] = phiq_f32_to_f16(src[i]);
}

static phiq_attn_kernels g_attn;
static pthread_once_t g_attn_once = PTHREAD_ONCE_INIT;

static void attn_build(void) {
    g_attn.head_f16 = attn_head_f16_ref;
    g_attn.to_f16 = f32_to_f16_row_ref;
#if defined(__x86_64__) || defined(_M_X64)
    const phiq_cpu *c = phiq_cpu_get();
    const char *isa = getenv("PHIQ_ISA");
    if (c->avx2 && c->fma && c->f16c && !(isa && phiq_streq_nocase(isa, "scalar"))) {
        g_attn.head_f16 = phiq_attn_head_f16_avx2;
        g_attn.to_f16 = phiq_f32_to_f16_row_avx2;
    }
#endif
}

const phiq_attn_kernels *phiq_attn_kernels_get(void) {
    pthread_once(&g_attn_once, attn_build);
    return &g_attn;
}
