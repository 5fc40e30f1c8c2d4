/* hparams.h — the hyper-parameters of a Phi model, one struct whether they
 * came from a Hugging Face config.json or from GGUF metadata. Field names
 * follow llama.cpp's GGUF keys; comments give the HF config key. */
#ifndef PHIQ_MODEL_HPARAMS_H
#define PHIQ_MODEL_HPARAMS_H

#include <stdbool.h>

#define PHIQ_MAX_ROPE_FACTORS 256 /* n_rot / 2 <= 256 */
#define PHIQ_MAX_EOS 8

typedef enum phiq_arch {
    PHIQ_ARCH_PHI3 = 0,   /* Phi3ForCausalLM: Phi-3/3.5, Phi-4, Phi-4-mini */
    PHIQ_ARCH_PHI2 = 1,   /* PhiForCausalLM: Phi-1.5, Phi-2 */
    PHIQ_ARCH_PHIMOE = 2, /* PhiMoEForCausalLM: Phi-3.5-MoE */
} phiq_arch;

typedef struct phiq_hparams {
    phiq_arch arch;
    int n_vocab;        /* vocab_size */
    int n_embd;         /* hidden_size */
    int n_layer;        /* num_hidden_layers */
    int n_head;         /* num_attention_heads */
    int n_head_kv;      /* num_key_value_heads (= n_head if absent) */
    int head_dim;       /* hidden_size / num_attention_heads */
    int n_ff;           /* intermediate_size */
    int n_rot;          /* int(partial_rotary_factor * hidden_size) / n_head */
    int n_ctx_train;    /* max_position_embeddings */
    int n_ctx_orig;     /* original_max_position_embeddings (= n_ctx_train if absent) */
    float rope_theta;   /* rope_theta (10000) */
    float norm_eps;     /* rms_norm_eps (phi3/phimoe) or layer_norm_eps (phi2) */
    int sliding_window; /* sliding_window, 0 when null/absent */
    bool tied_embeddings; /* tie_word_embeddings, or lm_head absent */
    bool attn_bias;     /* q/k/v/o carry biases (phi2, phimoe) */
    /* LongRoPE (rope_scaling.type longrope/su): n_rot/2 factors each */
    int n_rope_factors; /* 0 when none */
    float rope_short[PHIQ_MAX_ROPE_FACTORS];
    float rope_long[PHIQ_MAX_ROPE_FACTORS];
    float rope_attn_factor; /* sqrt(1 + ln(max/orig) / ln(orig)), 1 if none; PhiMoE: short_mscale */
    float rope_attn_factor_long; /* past n_ctx_orig: PhiMoE's long_mscale; otherwise = rope_attn_factor */
    int n_expert, n_expert_used; /* phimoe */
    float router_jitter; /* phimoe: router_jitter_noise (0.01), the SparseMixer mask's eps */
    /* token ids (-1 when unknown) */
    int bos_id, pad_id;
    int n_eos;
    int eos_ids[PHIQ_MAX_EOS]; /* config eos plus generation_config eos list */
} phiq_hparams;

const char *phiq_arch_name(phiq_arch a); /* "phi3", "phi2", "phimoe" (GGUF names) */

#endif
