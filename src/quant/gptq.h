/* gptq.h — GPTQ (Frantar et al. 2022) inside the ggml block layouts: the
 * file stays a standard GGUF of the same type, only the values inside the
 * blocks change. Columns are swept one block (32 or 256) at a time; each
 * block's scales (and mins) come from phiq_quantize's importance-weighted
 * search run on the error-updated weights, then each column is rounded on
 * that fixed grid and its error, scaled by the inverse Hessian's Cholesky
 * factor, is subtracted from the columns not yet quantized. Q4_0, Q8_0,
 * Q4_K, Q5_K and Q6_K round column by column; the other types keep the
 * block's own rounding and compensate the columns after the block. The
 * same sweep fills MLX's affine groups (phiq_gptq_quantize_mlx).
 *
 * phiq_gptq_quantize (the ggml types) sweeps in act-order, chosen on a slice
 * held out of the calibration text (README, "Calibrated quantization"):
 * blocks by decreasing Σ diag(H), each block's columns by decreasing
 * diag(H), a block's columns kept together so that its parameters are still
 * fitted once, on the error-updated weights of all of them. */
#ifndef PHIQ_QUANT_GPTQ_H
#define PHIQ_QUANT_GPTQ_H

#include <stdint.h>

#include "quant/mlx_affine.h"

/* A block layout GPTQ can round on: fit() chooses the parameters of row r's
 * block at column c0 (bs columns) from the error-updated weights x[0..bs)
 * and their importance imp (diag H), writing the block's dequantized values
 * to deq; round() puts column c of row r on those parameters, records its
 * code and returns its value (NAN: take deq's). ud is the layout's state.
 * fit/round are called for disjoint rows from several threads. */
typedef struct phiq_gptq_grid phiq_gptq_grid;
struct phiq_gptq_grid {
    int64_t bs;
    int (*fit)(const phiq_gptq_grid *g, int64_t r, int64_t c0, const float *x, const float *imp, float *deq);
    float (*round)(const phiq_gptq_grid *g, int64_t r, int64_t c, float x);
    void *ud;
};

/* The sweep itself over any grid (ncols a multiple of g->bs), in the file's
 * column order with diag(H) as the search's importance; 0 or a negative code
 * (fit's, or PHIQ_ENOMEM / PHIQ_EINVAL with a message). */
int phiq_gptq_run(const phiq_gptq_grid *g, float *w, int64_t nrows, int64_t ncols, const float *H, float damp,
                  int n_threads);

/* Quantizes w [nrows][ncols] (float32, overwritten: it is the working copy)
 * into dst (nrows rows of `type`) against H [ncols][ncols] (= XᵀX / N of
 * the inputs). damp: fraction of the mean diagonal added to it (GPTQ's 0.01).
 * Returns 0 or a negative code (PHIQ_EUNSUPPORTED for non-block types). */
int phiq_gptq_quantize(int type, float *w, void *dst, int64_t nrows, int64_t ncols, const float *H, float damp,
                       int n_threads);

/* The same sweep into MLX's affine groups (mlx_affine.h): each group's scale
 * and bias are chosen on the error-updated weights (MLX's own min/max rule,
 * or the importance-weighted least-squares refit of a grid-density search
 * when that has a smaller diag(H)-weighted error), rounded to scale_type
 * (PHIQ_GGML_TYPE_F32, F16 or BF16: the dtype they are stored in) before the
 * codes are chosen on them. Outputs for nrows rows: words [nrows][ncols *
 * bits / 32], scales and biases [nrows][ncols / group_size] (values already
 * rounded to scale_type). */
int phiq_gptq_quantize_mlx(float *w, int64_t nrows, int64_t ncols, const float *H, float damp, int n_threads, int bits,
                           int group_size, phiq_mlx_kernel kernel, int scale_type, uint32_t *words, float *scales,
                           float *biases);

#endif
