/* ops.h — reference CPU kernels of the forward pass: weight rows of any
 * ggml type turned into float32 on the fly, matrix-vector / matrix-matrix
 * products with float32 accumulation, RMSNorm, LayerNorm, NeoX RoPE,
 * softmax, SiLU/SwiGLU and GELU. Activations are float32 throughout. */
#ifndef PHIQ_KERNELS_OPS_H
#define PHIQ_KERNELS_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels/threadpool.h"

/* IEEE half -> float in a form the vectorizer handles: the half's bits
 * placed in a float's exponent/mantissa field and scaled by 2^112 give every
 * normal and subnormal exactly; exponent 31 (inf/NaN) is forced to 255. */
static inline float phiq_ops_h2f(uint16_t h) {
    uint32_t em = h & 0x7fffu;
    uint32_t o = em << 13;
    float f;
    memcpy(&f, &o, 4);
    f *= 0x1p112f;
    uint32_t r;
    memcpy(&r, &f, 4);
    r |= em >= 0x7c00u ? 0x7f800000u : 0u;
    r |= (uint32_t)(h & 0x8000u) << 16;
    memcpy(&f, &r, 4);
    return f;
}

/* A weight matrix as stored in a file: n_out rows of n_in elements (GGUF ne0 =
 * n_in, ne1 = n_out), row r at data + r * row_bytes, of ggml type `type`. */
typedef struct phiq_mat {
    const void *data;
    int type;
    int64_t n_in, n_out;
    size_t row_bytes;
} phiq_mat;

/* True when rows of this ggml type can be turned into float32. */
bool phiq_ops_type_supported(int type);
/* n elements (a multiple of the block size) of one row of `type` to float32. */
int phiq_row_to_f32(int type, const void *src, float *dst, int64_t n);

float phiq_dot_f32(const float *a, const float *b, int64_t n);
/* y[t*ldy + r] = W[r] . x[t*ldx ..] (+ bias[r]) for t < T and rows r in [r0, r1).
 * scratch holds n_in floats (the dequantized row, reused for all T tokens). */
void phiq_matmul_rows(const phiq_mat *w, const float *x, int64_t ldx, int T, float *y, int64_t ldy,
                      const float *bias, int64_t r0, int64_t r1, float *scratch);
/* Same over all rows, split across the pool's threads. scratch: n_threads * n_in floats. */
void phiq_matmul(phiq_threadpool *tp, const phiq_mat *w, const float *x, int64_t ldx, int T, float *y,
                 int64_t ldy, const float *bias, float *scratch);

/* The type ggml's CPU backend converts matmul inputs to before dotting them
 * with weights of type wtype (its vec_dot_type): F32 for F32 weights, F16
 * for F16, BF16 for BF16, Q8_0 / Q8_1 for the legacy 32-blocks, Q8_K for
 * K-quants and IQ4_XS. -1 when unknown. */
int phiq_ops_vec_dot_type(int wtype);
/* out = the T rows of n activations (row stride ldx) rounded as ggml rounds
 * them for weights of type wtype: quantized to the vec_dot_type and back.
 * qbuf holds one quantized row. Returns 0 or a negative code. */
int phiq_act_round(int wtype, const float *x, int64_t ldx, int T, int64_t n, float *out, void *qbuf);

/* y = x / sqrt(mean(x^2) + eps) * w (y may alias x). */
void phiq_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps);
/* y = (x - mean) / sqrt(var + eps) * w + b (b may be NULL; y may alias x). */
void phiq_layernorm(float *y, const float *x, const float *w, const float *b, int64_t n, float eps);

/* cos/sin of position pos for the n_rot/2 rotary frequencies:
 * theta_i = pos / (factor_i * base^(2i/n_rot)), both multiplied by attn_factor.
 * factors: NULL for all 1. */
void phiq_rope_table(float *cos_out, float *sin_out, int n_rot, double pos, double base,
                     const float *factors, float attn_factor);
/* NeoX rotate-half on the first n_rot dims of one head vector v: pairs
 * (i, i + n_rot/2); dims n_rot..head_dim-1 untouched. */
void phiq_rope_neox(float *v, int n_rot, const float *cos_t, const float *sin_t);

/* In place, max-subtracted, sums in double. */
void phiq_softmax(float *x, int64_t n);
/* log sum exp(x[i]) over a row of n logits, in double, through the kernel
 * table's exp_sum (for 100k-200k logits a row, the exponentials are most of
 * an evaluation's scoring); *argmax (if not NULL) the first maximum; with
 * p != NULL, p[i] = exp(x[i] - lse), the softmax, from the same terms. */
double phiq_row_logsumexp(const float *x, int64_t n, int *argmax, double *p);
/* out[i] = silu(gate[i]) * up[i], silu(z) = z / (1 + e^-z). out may alias gate. */
void phiq_swiglu(float *out, const float *gate, const float *up, int64_t n);
/* 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))) in float, as ggml_gelu_f32. */
float phiq_gelu_tanh(float z);
/* ggml's CPU GELU: a table over all 65536 fp16 inputs holding fp16 outputs. */
void phiq_gelu_table_init(uint16_t *table /* 65536 */);
/* In place via the table: x <= -10 -> 0, x >= 10 -> x, else f16(x) looked up. */
void phiq_gelu_lut(float *x, int64_t n, const uint16_t *table);

#endif
