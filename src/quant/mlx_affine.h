/* mlx_affine.h — Apple MLX's affine group quantization (`mx.quantize`,
 * mode "affine"), bit for bit: per group of G consecutive weights of a row,
 * a float scale and bias such that w ≈ scale · q + bias, codes q of `bits`
 * bits packed into uint32 words as one little-endian bit stream per row
 * (element 0 in the lowest bits of word 0). See
 * docs/reference/mlx-format.md. */
#ifndef PHIQ_QUANT_MLX_AFFINE_H
#define PHIQ_QUANT_MLX_AFFINE_H

#include <stdbool.h>
#include <stdint.h>

/* bits MLX supports: 2, 3, 4, 5, 6, 8; group sizes: 32, 64, 128 */
bool phiq_mlx_bits_ok(int bits);
bool phiq_mlx_group_ok(int group_size);

/* Which of MLX's kernels to reproduce. The GPU kernels (Metal, CUDA; what
 * `mlx_lm.convert` runs on a Mac) start the group maximum at 0 and round
 * halves away from zero; the CPU fallback uses the true maximum and rounds
 * halves to even. */
typedef enum phiq_mlx_kernel {
    PHIQ_MLX_GPU = 0,
    PHIQ_MLX_CPU = 1,
} phiq_mlx_kernel;

/* Quantizes one row of n float32 values (n a multiple of group_size, hence of
 * 32): words[n * bits / 32], scales[n / group_size], biases[n / group_size].
 * scales and biases are the float32 values the codes were computed with; the
 * caller rounds them to the checkpoint's dtype afterwards, as MLX does. */
void phiq_mlx_quantize_row(const float *w, int64_t n, int bits, int group_size, phiq_mlx_kernel k, uint32_t *words,
                           float *scales, float *biases);

/* Code of element i of a packed row. */
static inline uint32_t phiq_mlx_code(const uint32_t *words, int64_t i, int bits) {
    uint64_t bit = (uint64_t)i * (uint64_t)bits;
    uint64_t lo = words[bit >> 5], v = lo >> (bit & 31);
    if ((bit & 31) + (uint64_t)bits > 32) v |= (uint64_t)words[(bit >> 5) + 1] << (32 - (bit & 31));
    return (uint32_t)(v & ((1u << bits) - 1));
}

/* w[i] = scale · q + bias in float32 (scales/biases already widened from the
 * stored dtype). */
void phiq_mlx_dequantize_row(const uint32_t *words, const float *scales, const float *biases, int64_t n, int bits,
                             int group_size, float *out);

#endif
