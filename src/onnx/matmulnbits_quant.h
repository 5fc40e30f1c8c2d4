/* matmulnbits_quant.h — blockwise round-to-nearest quantization into the
 * layout of ONNX Runtime's com.microsoft.MatMulNBits, byte-identical to ORT's
 * default (MLAS) quantizer for 4 and 8 bits, symmetric or asymmetric.
 *
 * Input is a Hugging Face Linear weight W [N, K] (out, in), row-major fp32.
 * Blocks are block_size consecutive K values of one output row n.
 * Outputs:
 *   B      uint8 [N, kb, bs*bits/8], kb = K / bs; 4-bit: even k in the low
 *          nibble, odd k in the high nibble.
 *   scales fp32  [N, kb]
 *   zp     uint8 [N, zp_row_bytes] (asymmetric only; 4-bit: block b at byte
 *          b/2, even b low nibble, each row padded to whole bytes).
 * Symmetric:  v = the block value of largest magnitude (block min on ties),
 *             scale = -v / 2^(bits-1), q = clamp(roundf(w * (1/scale) + 2^(bits-1)))
 *             (1/scale taken as 0 when scale is 0); no zero points stored.
 * Asymmetric: lo = min(min,0), hi = max(max,0), scale = (hi-lo)/(2^bits-1),
 *             zp = clamp(roundf(-lo/scale)), q = clamp(roundf(w * (1/scale) + zp)).
 */
#ifndef PHIQ_ONNX_MATMULNBITS_QUANT_H
#define PHIQ_ONNX_MATMULNBITS_QUANT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct phiq_mnb_layout {
    int bits;       /* 4 or 8 */
    int block_size; /* power of two, 16..256 */
    bool sym;
    int64_t n, k;   /* N rows (outputs), K columns (inputs) */
    int64_t kb;     /* k / block_size */
    int64_t blob;   /* bytes of one block: block_size * bits / 8 */
    int64_t zp_row; /* bytes of zero points per row: ceil(kb * bits / 8) */
} phiq_mnb_layout;

/* Fills the layout; returns 0 or a negative PHIQ_E* (message recorded) when
 * bits/block size are unsupported or block_size does not divide K. `what`
 * names the tensor in the message. */
int phiq_mnb_layout_init(phiq_mnb_layout *l, int bits, int block_size, bool sym, int64_t n, int64_t k,
                         const char *what);

/* Quantizes rows [0, rows) of w (row stride K floats) into B/scales/zp rows
 * laid out as above starting at their first row. zp may be NULL when sym. */
void phiq_mnb_quantize_rows(const phiq_mnb_layout *l, const float *w, int64_t rows, uint8_t *b, float *scales,
                            uint8_t *zp);

/* GPTQ (quant/gptq.h) into the same layout against H [K][K] of the inputs:
 * each block's scale (and zero point) from ORT's rule on the error-updated
 * weights or a smaller, clipping scale when its diag(H)-weighted error is
 * lower; then the codes column by column with error feedback. w (l->n x
 * l->k floats) is overwritten. b, scales, zp: whole-matrix outputs. */
int phiq_mnb_quantize_gptq(const phiq_mnb_layout *l, float *w, const float *H, float damp, int n_threads, uint8_t *b,
                           float *scales, uint8_t *zp);

/* NNCF's integer weight compression (openvinotoolkit/nncf
 * weight_lowering.py: calculate_integer_quantization_params,
 * _calculate_signed_scale, fake_quantize.calculate_scale_zero_point), in the
 * MatMulNBits layout: parameters per `group` consecutive values of a row
 * (group = block_size: NNCF's group-wise int4; group = K: its per-channel int8
 * backup, the row's scale and zero point repeated in every block, so ORT
 * dequantizes to exactly NNCF's values). float32 arithmetic, numpy's
 * round-half-to-even:
 *   sym:  s = (|min| >= max ? |min| : -max) / 2^(bits-1)  (the signed scale),
 *         q = clip(rint(w / s), -2^(bits-1), 2^(bits-1) - 1), stored q + 2^(bits-1)
 *   asym: s = (max - min) / (2^bits - 1), zp = clip(0 - rint(min / s), 0, 2^bits - 1),
 *         q = clip(rint(w / s + zp), 0, 2^bits - 1)
 * with |s| < FLT_EPSILON replaced by FLT_EPSILON. group must divide K and be
 * a multiple of block_size. */
void phiq_mnb_quantize_rows_nncf(const phiq_mnb_layout *l, int64_t group, const float *w, int64_t rows, uint8_t *b,
                                 float *scales, uint8_t *zp);

/* NNCF's data-free sensitivity input: max over rows of mean((w - Q8(w))^2)
 * with Q8 its per-channel int8 asymmetric quantization (get_integer_
 * quantization_error, reduction "max_mean"), over rows [0, rows) of w
 * [rows, k]; the maximum is returned, accumulate with fmax over row chunks. */
double phiq_nncf_int8_row_error(const float *w, int64_t rows, int64_t k);

/* The inverse, w[n,k] = (q - zp) * scale, for tests. */
void phiq_mnb_dequantize_rows(const phiq_mnb_layout *l, const uint8_t *b, const float *scales, const uint8_t *zp,
                              int64_t rows, float *w);

#endif
