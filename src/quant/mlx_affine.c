/* mlx_affine.c — MLX's affine quantization (`mx.quantize`) and its inverse,
 * reproducing the arithmetic of MLX's kernels exactly (float32 throughout,
 * the edge rule that makes 0.0 representable, codes clamped to [0, 2^bits-1])
 * so that the packed words match what `mlx_lm.convert -q` writes. The rules
 * are spelled out in docs/reference/mlx-format.md; tests/ref/mlx_reference.py
 * is an independent implementation the tests compare against bit for bit. */
#include "quant/mlx_affine.h"

#include <math.h>
#include <string.h>

/* MLX computes scale * q + bias and (w - bias) / scale with separate roundings:
 * no fused multiply-add may be formed here (AArch64 compilers would). */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

bool phiq_mlx_bits_ok(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 5 || bits == 6 || bits == 8; }
bool phiq_mlx_group_ok(int g) { return g == 32 || g == 64 || g == 128; }

void phiq_mlx_quantize_row(const float *w, int64_t n, int bits, int group_size, phiq_mlx_kernel k, uint32_t *words,
                           float *scales, float *biases) {
    const float n_bins = (float)((1 << bits) - 1), eps = 1e-7f;
    memset(words, 0, (size_t)(n * bits / 32) * sizeof *words);
    for (int64_t g0 = 0, gi = 0; g0 < n; g0 += group_size, gi++) {
        const float *x = w + g0;
        /* the GPU kernels start the maximum at 0 (an all-negative group then
         * has w_max = 0); the minimum starts at the type's largest value */
        float wmin = x[0], wmax = k == PHIQ_MLX_GPU ? 0.0f : x[0];
        for (int i = 0; i < group_size; i++) {
            wmin = x[i] < wmin ? x[i] : wmin;
            wmax = x[i] > wmax ? x[i] : wmax;
        }
        float scale = (wmax - wmin) / n_bins;
        if (!(scale > eps)) scale = eps;
        bool side = fabsf(wmin) > fabsf(wmax);
        if (!side) scale = -scale;
        float edge = side ? wmin : wmax;
        float q0 = k == PHIQ_MLX_GPU ? roundf(edge / scale) : rintf(edge / scale);
        float bias = 0.0f;
        if (q0 != 0.0f) { /* the larger-magnitude edge maps exactly onto code q0 */
            scale = edge / q0;
            bias = edge;
        }
        scales[gi] = scale;
        biases[gi] = bias;
        for (int i = 0; i < group_size; i++) {
            float d = (x[i] - bias) / scale;
            float q = k == PHIQ_MLX_GPU ? roundf(d) : rintf(d);
            q = q < 0.0f ? 0.0f : q > n_bins ? n_bins : q;
            uint64_t code = (uint64_t)q, bit = (uint64_t)(g0 + i) * (uint64_t)bits;
            words[bit >> 5] |= (uint32_t)(code << (bit & 31));
            if ((bit & 31) + (uint64_t)bits > 32) words[(bit >> 5) + 1] |= (uint32_t)(code >> (32 - (bit & 31)));
        }
    }
}

void phiq_mlx_dequantize_row(const uint32_t *words, const float *scales, const float *biases, int64_t n, int bits,
                             int group_size, float *out) {
    for (int64_t i = 0; i < n; i++) {
        float s = scales[i / group_size], b = biases[i / group_size];
        float q = (float)phiq_mlx_code(words, i, bits);
        float p = s * q; /* two roundings, as MLX: no fused multiply-add */
        out[i] = p + b;
    }
}
