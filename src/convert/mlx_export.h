/* mlx_export.h — a Hugging Face Phi checkpoint written as the directory
 * `mlx_lm.convert --hf-path SRC -q [--q-bits B] [--q-group-size G]
 * [--quant-predicate RECIPE]` produces (mlx 0.32 / mlx-lm 0.32), so that
 * `mlx_lm.load` on Apple silicon reads it unchanged. See
 * docs/reference/mlx-format.md and docs/FORMATS.md. */
#ifndef PHIQ_CONVERT_MLX_EXPORT_H
#define PHIQ_CONVERT_MLX_EXPORT_H

#include <stdint.h>

#include "quant/mlx_affine.h"

typedef struct phiq_mlx_opts {
    int bits;            /* 2, 3, 4, 5, 6, 8 (0: 4) */
    int group_size;      /* 32, 64, 128 (0: 64, written as null in recipe entries, as mlx-lm) */
    const char *recipe;  /* NULL, "mixed_2_6", "mixed_3_4", "mixed_3_6", "mixed_4_6" */
    phiq_mlx_kernel kernel; /* GPU (default, what a Mac runs) or CPU rounding */
    uint64_t shard_bytes;   /* 0: mlx-lm's 5 GiB */
    int n_threads;          /* <= 0: physical cores; the output is the same for any count */
    int quiet;
    /* calibrated quantization (--calib): GPTQ inside MLX's affine groups
     * against the Hessians of this text (convert/calib.h); NULL = plain mx.quantize */
    const char *calib;
    int calib_ctx, calib_chunks; /* chunk length (0: 512), chunks used (0: all) */
    uint64_t calib_mem;          /* Hessian bytes held at once (0: 1 GiB) */
    float damp;                  /* GPTQ dampening (0: 0.01) */
} phiq_mlx_opts;

typedef struct phiq_mlx_stats {
    int n_tensors, n_shards, n_quantized;
    int64_t n_parameters; /* unquantized element count (index total_parameters) */
    uint64_t total_size;  /* tensor bytes (index total_size) */
    double seconds;
    char arch[16];
    int n_gptq, calib_passes;  /* --calib: modules quantized by GPTQ, forward passes over the text */
    int64_t calib_tokens;
    double calib_seconds;
} phiq_mlx_stats;

/* Writes out_dir (absent or empty) through a temporary sibling renamed into
 * place on success; nothing is left behind on failure. Refuses, with one
 * line naming the limit, bits/group sizes MLX lacks, recipes on a model
 * without down_proj (Phi-2), already-quantized sources and checkpoints
 * mlx-lm's model files cannot hold. */
int phiq_mlx_export(const char *src_dir, const char *out_dir, const phiq_mlx_opts *o, phiq_mlx_stats *st);

/* The recipe names (static string). */
const char *phiq_mlx_recipe_names(void);

#endif
