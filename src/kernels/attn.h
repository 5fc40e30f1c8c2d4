/* attn.h — attention of one query head over a run of cached positions with
 * a float16 KV cache: scores, softmax, weighted sum of values. A portable
 * version and an AVX2+F16C one (attn_avx2.c), chosen once per CPU. */
#ifndef PHIQ_KERNELS_ATTN_H
#define PHIQ_KERNELS_ATTN_H

#include <stddef.h>
#include <stdint.h>

/* o[0..hd) = sum_k softmax_k(scale * q . K_k) V_k over positions k in
 * [0, n): K_k at K + k * stride, V_k at V + k * stride (f16 elements);
 * s holds n floats of scratch (the probabilities on return). */
typedef void (*phiq_attn_head_f16_fn)(const float *q, const uint16_t *K, const uint16_t *V, size_t stride, int n,
                                       float scale, float *s, float *o, int hd);
/* dst[i] = f16(src[i]), round to nearest even (as ggml). */
typedef void (*phiq_f32_to_f16_row_fn)(uint16_t *dst, const float *src, int n);

typedef struct {
    phiq_attn_head_f16_fn head_f16;
    phiq_f32_to_f16_row_fn to_f16;
} phiq_attn_kernels;

/* The best for this CPU (PHIQ_ISA=scalar selects the portable one). */
const phiq_attn_kernels *phiq_attn_kernels_get(void);

#if defined(__x86_64__) || defined(_M_X64)
void phiq_attn_head_f16_avx2(const float *q, const uint16_t *K, const uint16_t *V, size_t stride, int n, float scale,
                             float *s, float *o, int hd);
void phiq_f32_to_f16_row_avx2(uint16_t *dst, const float *src, int n);
#endif

#endif
