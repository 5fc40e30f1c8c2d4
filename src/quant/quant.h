/* quant.h — reference (scalar, canonical) quantizers and dequantizers for
 * every ggml block type phiq writes or reads, byte-identical to llama.cpp's
 * reference quantizers for the same float32 input (block layouts in
 * docs/FORMATS.md).
 *
 * All functions are pure and reentrant (no global state, no allocation), so
 * callers may quantize disjoint row ranges from several threads: pass
 * src + row0 * n_per_row and dst + row0 * phiq_ggml_row_size(type, n_per_row).
 * Results do not depend on how rows are split into chunks. dst must be
 * 4-byte aligned (GGUF tensor data is 32-byte aligned and every row size is
 * a multiple of 2, Q8_K of 4). On x86-64 CPUs with AVX2 the K-quant and IQ4
 * scale searches run 8 blocks per vector, with bit-identical results.
 */
#ifndef PHIQ_QUANT_QUANT_H
#define PHIQ_QUANT_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "formats/ggml_type.h"

/* Quantizes nrows rows of n_per_row floats from src into dst (nrows *
 * row_size bytes). imatrix: NULL, or n_per_row importance weights (mean of
 * squared activations per column), used as llama.cpp's quantize_* do.
 * Without imatrix the result equals llama-quantize's (the *_ref paths);
 * with one, llama-quantize --imatrix's. Q8_0 ignores the imatrix (as ggml).
 * For stacked experts (3-D tensors) call once per expert with that
 * expert's n_per_row slice of the imatrix, as llama-quantize does.
 * Returns bytes written, or a negative code (unsupported type, bad length). */
int64_t phiq_quantize(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                      const float *imatrix);
/* Dequantizes n elements (a multiple of the block size) of type from src. */
int phiq_dequantize(int type, const void *src, float *dst, int64_t n);
/* True when phiq_quantize / phiq_dequantize support the type. */
int phiq_quant_can_quantize(int type);
int phiq_quant_can_dequantize(int type);

/* Index of the first NaN/Inf among x[0..n), or -1 when all are finite.
 * llama.cpp's quantizers assume finite input; check before quantizing. */
int64_t phiq_quant_check_finite(const float *x, int64_t n);

/* Activation quantizers (the vec_dot partner types), equal to ggml's
 * quantize_row_q8_0_ref / q8_1_ref / q8_K_ref. n: multiple of 32 (256 for
 * Q8_K). */
void phiq_quantize_row_q8_0(const float *x, void *dst, int64_t n);
void phiq_quantize_row_q8_1(const float *x, void *dst, int64_t n);
void phiq_quantize_row_q8_K(const float *x, void *dst, int64_t n);

#endif
