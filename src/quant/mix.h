/* mix.h — llama-quantize's file-type presets ("Q4_K_M", "Q8_0", ...) and
 * its per-tensor type choice (llama_tensor_get_type in llama.cpp's
 * src/llama-quant.cpp), so that phiq picks exactly the ggml type that
 * llama-quantize would for every tensor.
 *
 * Usage: phiq_mix_parse("Q4_K_M", &m); set the model facts (n_gqa,
 * n_expert, has_output) and options; then phiq_mix_tensor_type() per
 * tensor; phiq_mix_free(&m) releases compiled overrides.
 */
#ifndef PHIQ_QUANT_MIX_H
#define PHIQ_QUANT_MIX_H

#include <stdbool.h>
#include <stdint.h>

#define PHIQ_MIX_MAX_OVERRIDES 32

typedef struct phiq_mix_override {
    void *re;      /* pcre2_code* */
    int type;      /* ggml type */
    char *pattern; /* owned copy, for messages */
} phiq_mix_override;

typedef struct phiq_mix {
    char name[16];     /* canonical preset name, e.g. "Q4_K_M" */
    int ftype;         /* llama_ftype id, for general.file_type */
    int default_type;  /* ggml type of ordinary weights */
    /* options (llama-quantize flags) */
    bool pure;         /* --pure: no mix rules, default type everywhere */
    int output_type;   /* --output-tensor-type, or -1 */
    int token_embd_type; /* --token-embedding-type, or -1 */
    bool leave_output; /* --leave-output-tensor */
    bool has_imatrix;  /* an imatrix is used (changes Q4_0/Q5_0/IQ4 ffn_down rules) */
    /* model facts */
    int n_gqa;         /* n_head / n_head_kv (Phi-3-mini 1, Phi-3-medium/Phi-4 4); default 1 */
    int n_expert;      /* 0 or 1 for dense models */
    bool has_output;   /* false when output.weight is absent (tied embeddings) */
    int n_overrides;
    phiq_mix_override overrides[PHIQ_MIX_MAX_OVERRIDES]; /* --tensor-type, first match wins */
} phiq_mix;

/* Case-insensitive preset name (Q4_0 ... IQ4_XS, F16, BF16, F32, aliases
 * Q3_K/Q4_K/Q5_K and int4, int8, fp16, bf16, fp32). Fills *out with
 * defaults (has_output true, n_gqa 1). Unknown name: PHIQ_EINVAL with a
 * message listing every valid name. */
int phiq_mix_parse(const char *name, phiq_mix *out);
/* "REGEX=TYPE" (llama-quantize --tensor-type): split at the first '=', the
 * pattern lower-cased as llama-quantize does, then searched anywhere in the
 * tensor name (PCRE2, as std::regex_search). */
int phiq_mix_add_override(phiq_mix *m, const char *spec);
void phiq_mix_free(phiq_mix *m);
/* The first preset whose ordinary weights have ggml type `type` (llama_ftype
 * id; its name in *name), for general.file_type of a mixed file; -1 if none. */
int phiq_mix_ftype_of_type(int type, const char **name);
/* Space-separated list of valid preset names. */
const char *phiq_mix_names(void);

/* The ggml type llama-quantize gives tensor gguf_name (ne[0..n_dims) its
 * shape, ne[0] the row length) in a model of n_layer blocks, whose source
 * type is src_type (returned unchanged for tensors that are never
 * quantized: 1-D, norms, ffn_gate_inp, names not ending in "weight").
 * The layer of blk.N.* tensors is N. llama.cpp's per-kind counters
 * (i_attention_wv, i_ffn_down: tensors of that kind that reached the mix
 * rules, in layer order, not counting --tensor-type overrides) are
 * reproduced assuming one attn_v-like and one ffn_down tensor per layer
 * (true for every Phi model). */
int phiq_mix_tensor_type(const phiq_mix *m, const char *gguf_name, int n_dims, const int64_t *ne, int n_layer,
                         int src_type);

#endif
