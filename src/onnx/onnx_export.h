/* onnx_export.h — export a Hugging Face Phi-3-family checkpoint as the ONNX
 * decoder ONNX Runtime GenAI builds for CPU: model.onnx + model.onnx.data
 * (external data) + genai_config.json + the tokenizer files.
 *
 * Graph (see docs/reference/onnx-ortgenai-matmulnbits.md §1.5): Gather
 * embedding, per layer SimplifiedLayerNormalization / com.microsoft
 * SkipSimplifiedLayerNormalization, fused QKV MatMul(NBits), com.microsoft
 * GroupQueryAttention (packed QKV, rotary inside, LongRoPE caches chosen by an
 * If on the attention-mask width), o_proj, SkipSimplifiedLayerNormalization,
 * gate/up MatMul(NBits), SiLU, down, final norm, lm_head -> logits.
 * I/O is float32 for every type (as the builder does for CPU). */
#ifndef PHIQ_ONNX_EXPORT_H
#define PHIQ_ONNX_EXPORT_H

#include <stdbool.h>
#include <stdint.h>

typedef enum phiq_onnx_type {
    PHIQ_ONNX_FP32 = 0,
    PHIQ_ONNX_FP16 = 1, /* fp16 weights, Cast to fp32 in the graph; fp32 I/O */
    PHIQ_ONNX_INT8 = 2, /* MatMulNBits bits=8 */
    PHIQ_ONNX_INT4 = 3, /* MatMulNBits bits=4 */
} phiq_onnx_type;

typedef struct phiq_onnx_options {
    phiq_onnx_type type;
    int block_size;     /* MatMulNBits block size, power of two 16..256 (32) */
    bool asym;          /* asymmetric: zero points stored (false) */
    int accuracy_level; /* MatMulNBits accuracy_level 0..4 (4, builder's CPU default) */
    int n_threads;      /* quantization threads, <= 0: physical cores */
    int max_length;     /* genai_config search.max_length, 0: min(context, 4096) */
    bool quiet;         /* no progress output */
    /* calibrated quantization (--calib): GPTQ inside the MatMulNBits blocks
     * against the Hessians of this text (convert/calib.h); NULL = ORT's RTN */
    const char *calib;
    int calib_ctx, calib_chunks; /* chunk length (0: 512), chunks used (0: all) */
    uint64_t calib_mem;          /* Hessian bytes held at once (0: 1 GiB) */
    float damp;                  /* GPTQ dampening (0: 0.01) */
} phiq_onnx_options;

typedef struct phiq_onnx_stats {
    int n_gptq, calib_passes; /* --calib: weights by GPTQ, forward passes over the text */
    int64_t calib_tokens;
    double calib_seconds;
} phiq_onnx_stats;

void phiq_onnx_options_default(phiq_onnx_options *o);

/* Parses "int4"/"int8"/"fp16"/"fp32"/"f16"/"f32"; -1 if unknown. */
int phiq_onnx_type_parse(const char *s);

/* Writes out_dir (which must not exist, or be empty) through a temporary
 * directory beside it that is renamed into place only on success. Returns 0
 * or a negative PHIQ_E* with a one-line message (phiq_error()). */
int phiq_onnx_export(const char *src_dir, const char *out_dir, const phiq_onnx_options *opt);
/* The same, filling st (may be NULL) with the calibration figures. */
int phiq_onnx_export_ex(const char *src_dir, const char *out_dir, const phiq_onnx_options *opt, phiq_onnx_stats *st);

#endif
