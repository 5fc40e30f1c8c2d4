/* attn.h — attention of one query row of one head over a span of cached
 * positions, as flash attention's inner loop, with a float16 KV cache or a
 * Q8_0 one (llama.cpp's CPU flash-attention numerics), plus the merge of two
 * partial results (flash-decoding: threads take chunks of the sequence).
 * A portable version of each and AVX2+F16C, AVX-512 and NEON ones
 * (attn_avx2.c, attn_avx512.c, attn_neon.c), chosen once per CPU.
 *
 * The running state of one query row is st[0] = M (the largest score so
 * far, -INFINITY before any), st[1] = S (sum of exp(score - M)), st[2 ..
 * 2 + hd) = o (sum of exp(score - M) V, not yet divided by S). A span folds
 * positions into it; phiq_attn_state_init starts one, phiq_attn_state_merge
 * folds one state into another and phiq_attn_state_out divides o by S. */
#ifndef PHIQ_KERNELS_ATTN_H
#define PHIQ_KERNELS_ATTN_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* Floats in the state of one query row of head_dim hd. */
#define PHIQ_ATTN_STATE(hd) ((size_t)(hd) + 2)

/* M becomes mx when mx is larger, S and o rescaled by exp(M_old - mx) (0
 * for the empty state); nothing changes otherwise. */
static inline void phiq_attn_state_rescale(float *st, float mx, int hd) {
    if (!(mx > st[0])) return;
    const float c = expf(st[0] - mx);
    st[1] *= c;
    for (int i = 0; i < hd; i++) st[2 + i] *= c;
    st[0] = mx;
}

/* The online-softmax step of an f16 span with libm expf, shared by the
 * portable, AVX2 and NEON span_f16 kernels: with s[0..n) the span's scores,
 * M becomes max(M, max_k s_k) (phiq_attn_state_rescale), s[k] becomes p_k =
 * exp(s_k - M) and S += sum_k p_k (summed in order). The caller then adds
 * sum_k p_k V_k to o = st + 2. */
static inline void phiq_attn_state_fold(float *st, float *s, int n, int hd) {
    float mx = st[0];
    for (int k = 0; k < n; k++)
        if (s[k] > mx) mx = s[k];
    phiq_attn_state_rescale(st, mx, hd);
    float S = 0.0f;
    for (int k = 0; k < n; k++) S += (s[k] = expf(s[k] - st[0]));
    st[1] += S;
}

/* f16 cache: scores s_k = scale * q . K_k for k in [0, n) (K_k at K + k *
 * stride f16 elements), the span's maximum m = max(M, max_k s_k) becomes M
 * (o and S rescaled by exp(M_old - m) when it rises), then S += sum_k p_k and
 * o += sum_k p_k V_k with p_k = exp(s_k - M). s: n floats of scratch. The
 * SIMD versions compute exp with a polynomial (ggml's ggml_v_expf, ~1 ulp). */
typedef void (*phiq_attn_span_f16_fn)(const float *q, float scale, const uint16_t *K, const uint16_t *V, size_t stride,
                                       int n, float *st, float *s, int hd);
/* dst[i] = f16(src[i]), round to nearest even (as ggml). */
typedef void (*phiq_f32_to_f16_row_fn)(uint16_t *dst, const float *src, int n);

/* Q8_0 cache, as ggml_compute_forward_flash_attn_ext_f16 with K and V in
 * Q8_0: q8 is the query already multiplied by the softmax scale and
 * quantized to Q8_0 (hd / 32 blocks, ggml's block_q8_0: f16 d, int8 qs[32],
 * 34 bytes); K_k and V_k (hd / 32 blocks each) start at K + k * stride and
 * V + k * stride bytes. Score s_k = Q8_0 . Q8_0 dot (no further scale); V
 * rows dequantized to f32 and summed with ggml's one-position-at-a-time
 * online softmax (o and S rescaled by exp(M_old - s_k) when s_k is a new
 * maximum, else the row weighted by exp(s_k - M)). The portable version
 * uses expf as ggml; the SIMD ones a polynomial exp (~1 ulp) for the
 * weights. hd: a multiple of 32; s: n floats of scratch. */
typedef void (*phiq_attn_span_q8_0_fn)(const void *q8, const uint8_t *K, const uint8_t *V, size_t stride, int n,
                                        float *st, float *s, int hd);

/* Positions in one tile of phiq_attn_block_f16_fn. */
#define PHIQ_ATTN_BLOCK_POS 64
/* Floats of scratch phiq_attn_block_f16_fn needs (64-byte aligned). */
#define PHIQ_ATTN_BLOCK_WS(hd) (2 * (size_t)(hd) * PHIQ_ATTN_BLOCK_POS + 4 * PHIQ_ATTN_BLOCK_POS)

/* Prefill over an f16 cache: nq query rows (row r at q + r * ldq) and one
 * tile of n <= PHIQ_ATTN_BLOCK_POS positions; row r sees tile positions
 * [lo[r], hi[r]) and folds them into its state st + r * PHIQ_ATTN_STATE(hd)
 * as span_f16 does (the same f32 arithmetic up to the order of the dot
 * product's sums). The tile is widened to f32 once for all rows, keys
 * transposed, so the scores of 64 positions are 16-wide FMAs without
 * horizontal sums. ws: PHIQ_ATTN_BLOCK_WS(hd) floats. NULL in tables
 * without one (the caller then runs spans). */
typedef void (*phiq_attn_block_f16_fn)(const float *q, size_t ldq, int nq, const int *lo, const int *hi, float scale,
                                        const uint16_t *K, const uint16_t *V, size_t stride, int n, float *st,
                                        float *ws, int hd);

typedef struct {
    phiq_attn_span_f16_fn span_f16;
    phiq_f32_to_f16_row_fn to_f16;
    phiq_attn_span_q8_0_fn span_q8_0;
    phiq_attn_block_f16_fn block_f16;
    const char *name; /* "scalar", "avx2", "avx512", "neon" */
} phiq_attn_kernels;

/* st = the empty state (M = -INFINITY, S = 0, o = 0). */
void phiq_attn_state_init(float *st, int hd);
/* dst = the state of dst's positions and src's together (flash-decoding's
 * merge: the smaller maximum's side rescaled by exp(its M - the larger M)). */
void phiq_attn_state_merge(float *dst, const float *src, int hd);
/* out[0..hd) = o / S (zeros when S is 0: no position was seen). */
void phiq_attn_state_out(const float *st, float *out, int hd);

/* x[0..n) = H x, H the orthonormal Walsh-Hadamard matrix of order n (a
 * power of two) in Sylvester order: as ggml's CPU FWHT, x is first scaled
 * by 1/sqrt(n), then butterflies (u + v, u - v) at strides 1, 2, 4, ...
 * H H = I. llama.cpp rotates Q, K and V with it before a quantized cache. */
void phiq_attn_fwht(float *x, int n);

/* The portable table (for tests comparing the SIMD kernels with it). */
const phiq_attn_kernels *phiq_attn_kernels_ref(void);

/* The best for this CPU (PHIQ_ISA=scalar selects the portable one,
 * PHIQ_ISA=avx2 caps x86 at AVX2). */
const phiq_attn_kernels *phiq_attn_kernels_get(void);

/* Every table this CPU can run, best last, NULL-terminated after *n (tests). */
const phiq_attn_kernels *const *phiq_attn_kernels_all(int *n);

#if defined(__x86_64__) || defined(_M_X64)
void phiq_attn_span_f16_avx2(const float *q, float scale, const uint16_t *K, const uint16_t *V, size_t stride, int n,
                             float *st, float *s, int hd);
void phiq_f32_to_f16_row_avx2(uint16_t *dst, const float *src, int n);
void phiq_attn_block_f16_avx2(const float *q, size_t ldq, int nq, const int *lo, const int *hi, float scale,
                              const uint16_t *K, const uint16_t *V, size_t stride, int n, float *st, float *ws, int hd);
void phiq_attn_span_q8_0_avx2(const void *q8, const uint8_t *K, const uint8_t *V, size_t stride, int n, float *st,
                              float *s, int hd);
void phiq_attn_span_f16_avx512(const float *q, float scale, const uint16_t *K, const uint16_t *V, size_t stride, int n,
                               float *st, float *s, int hd);
void phiq_attn_span_q8_0_avx512(const void *q8, const uint8_t *K, const uint8_t *V, size_t stride, int n, float *st,
                                float *s, int hd);
void phiq_attn_block_f16_avx512(const float *q, size_t ldq, int nq, const int *lo, const int *hi, float scale,
                                const uint16_t *K, const uint16_t *V, size_t stride, int n, float *st, float *ws, int hd);
#endif
#if defined(__aarch64__)
void phiq_attn_span_f16_neon(const float *q, float scale, const uint16_t *K, const uint16_t *V, size_t stride, int n,
                             float *st, float *s, int hd);
void phiq_f32_to_f16_row_neon(uint16_t *dst, const float *src, int n);
void phiq_attn_span_q8_0_neon(const void *q8, const uint8_t *K, const uint8_t *V, size_t stride, int n, float *st,
                              float *s, int hd);
#endif

#endif
