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
 * Phi-3-small (Phi3SmallForCausalLM) gets the builder's Phi3SmallModel graph
 * instead (onnx_phi3small.c: LayerNorm with bias, SparseAttention on the
 * block-sparse layers, GeGELU, muP scalings).
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

/* NNCF's --backup-precision: per-channel int8 (asymmetric with a uint8
 * zero point, or symmetric with a signed scale) or the source precision. */
typedef enum phiq_onnx_backup {
    PHIQ_ONNX_BACKUP_INT8_ASYM = 0,
    PHIQ_ONNX_BACKUP_INT8_SYM = 1,
    PHIQ_ONNX_BACKUP_NONE = 2,
} phiq_onnx_backup;

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
    /* NNCF mixed precision (--ratio, int4 only): the ratio-defining weights
     * (every layer matmul; lm_head and the embedding are outside) are ranked
     * by NNCF's data-free criterion (without --calib: largest per-channel int8
     * error first) or by their activation-weighted int4 error (--calib), and
     * given int4 (group = block_size, NNCF's rule, GPTQ with --calib) in that
     * order while the int4 share of their parameters stays below ratio; the
     * rest, the embedding and lm_head get the backup precision. */
    bool mixed;
    double ratio;                /* 0..1 */
    phiq_onnx_backup backup;     /* PHIQ_ONNX_BACKUP_INT8_ASYM by default */
    /* ranking: 0 = NNCF's weight_quantization_error without --calib, the
     * activation-weighted int4 error with it; 1 / 2 = either explicitly
     * (2 needs --calib) */
    int sensitivity;
} phiq_onnx_options;

typedef struct phiq_onnx_stats {
    int n_gptq, calib_passes; /* --calib: weights by GPTQ, forward passes over the text */
    int64_t calib_tokens;
    double calib_seconds;
    /* --ratio: ratio-defining weights (HF tensors) given int4 / in total, and
     * their parameters */
    int n_int4, n_ratio_defining;
    int64_t params_int4, params_ratio_defining;
    uint64_t model_bytes; /* model.onnx + model.onnx.data */
} phiq_onnx_stats;

void phiq_onnx_options_default(phiq_onnx_options *o);

/* Parses "int8_asym"/"int8_sym"/"none"; -1 if unknown. */
int phiq_onnx_backup_parse(const char *s);

/* Parses "int4"/"int8"/"fp16"/"fp32"/"f16"/"f32"; -1 if unknown. */
int phiq_onnx_type_parse(const char *s);

/* Writes out_dir (which must not exist, or be empty) through a temporary
 * directory beside it that is renamed into place only on success. Returns 0
 * or a negative PHIQ_E* with a one-line message (phiq_error()). */
int phiq_onnx_export(const char *src_dir, const char *out_dir, const phiq_onnx_options *opt);
/* The same, filling st (may be NULL) with the calibration figures. */
int phiq_onnx_export_ex(const char *src_dir, const char *out_dir, const phiq_onnx_options *opt, phiq_onnx_stats *st);

#endif
