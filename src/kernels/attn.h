/* attn.h — attention of one query head over a run of cached positions with
 * a float16 KV cache (scores, softmax, weighted sum of values) or a Q8_0
 * one (llama.cpp's CPU flash-attention numerics). A portable version of
 * each and an AVX2+F16C one (attn_avx2.c), chosen once per CPU. */
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

/* Q8_0 cache, as ggml_compute_forward_flash_attn_ext_f16 with K and V in
 * Q8_0: q8 is the query already multiplied by the softmax scale and
 * quantized to Q8_0 (hd / 32 blocks, ggml's block_q8_0: f16 d, int8 qs[32],
 * 34 bytes); K_k and V_k (hd / 32 blocks each) start at K + k * stride and
 * V + k * stride bytes. Score s_k = Q8_0 . Q8_0 dot (no further scale); V
 * rows dequantized to f32 and summed with an online softmax (running max M
 * and sum S, o rescaled by expf(M_old - M) when the max rises), o /= S at
 * the end. hd: a multiple of 32; n >= 1; s: n floats of scratch. */
typedef void (*phiq_attn_head_q8_0_fn)(const void *q8, const uint8_t *K, const uint8_t *V, size_t stride, int n,
                                        float *s, float *o, int hd);

typedef struct {
    phiq_attn_head_f16_fn head_f16;
    phiq_f32_to_f16_row_fn to_f16;
    phiq_attn_head_q8_0_fn head_q8_0;
} phiq_attn_kernels;

/* x[0..n) = H x, H the orthonormal Walsh-Hadamard matrix of order n (a
 * power of two) in Sylvester order: as ggml's CPU FWHT, x is first scaled
 * by 1/sqrt(n), then butterflies (u + v, u - v) at strides 1, 2, 4, ...
 * H H = I. llama.cpp rotates Q, K and V with it before a quantized cache. */
void phiq_attn_fwht(float *x, int n);

/* The portable table (for tests comparing the SIMD kernels with it). */
const phiq_attn_kernels *phiq_attn_kernels_ref(void);

/* The best for this CPU (PHIQ_ISA=scalar selects the portable one). */
const phiq_attn_kernels *phiq_attn_kernels_get(void);

#if defined(__x86_64__) || defined(_M_X64)
void phiq_attn_head_f16_avx2(const float *q, const uint16_t *K, const uint16_t *V, size_t stride, int n, float scale,
                             float *s, float *o, int hd);
void phiq_f32_to_f16_row_avx2(uint16_t *dst, const float *src, int n);
void phiq_attn_head_q8_0_avx2(const void *q8, const uint8_t *K, const uint8_t *V, size_t stride, int n, float *s,
                              float *o, int hd);
#endif

#endif
