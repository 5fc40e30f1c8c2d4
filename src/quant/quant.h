/* quant.h — reference (scalar, canonical) quantizers and dequantizers for
 * every ggml block type phiq writes or reads, byte-identical to llama.cpp's
 * reference quantizers for the same float32 input (block layouts in
 * docs/FORMATS.md).
 */
#ifndef PHIQ_QUANT_QUANT_H
#define PHIQ_QUANT_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "formats/ggml_type.h"

/* Quantizes nrows rows of n_per_row floats from src into dst (nrows *
 * row_size bytes). imatrix: NULL, or n_per_row importance weights (mean of
 * squared activations per column), used as llama.cpp's quantize_* do.
 * Returns bytes written, or a negative code (unsupported type, bad length). */
int64_t phiq_quantize(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                      const float *imatrix);
/* Dequantizes n elements (a multiple of the block size) of type from src. */
int phiq_dequantize(int type, const void *src, float *dst, int64_t n);
/* True when phiq_quantize / phiq_dequantize support the type. */
int phiq_quant_can_quantize(int type);
int phiq_quant_can_dequantize(int type);

#endif
