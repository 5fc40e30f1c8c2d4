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
    PHIQ_ARCH_PHI3SMALL = 3, /* Phi3SmallForCausalLM: Phi-3-small (remote code; phiq's own GGUF name) */
} phiq_arch;

#define PHIQ_MAX_DUMMY 256 /* phi3small: ids forced to the lowest logit */

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
    /* phi3small (modeling_phi3_small.py): muP scalings, GeGELU clamp, block-sparse attention */
    float emb_mult;      /* mup_embedding_multiplier: embeddings x this (0 = none) */
    float logit_div;     /* mup_width_multiplier: logits / this (0 = none) */
    float attn_scale;    /* softmax scale: mup_attn_multiplier / head_dim (mup_use_scaling), 0 = 1/sqrt(head_dim) */
    float gegelu_limit;  /* gegelu_limit (20); INFINITY when null */
    float rope_pos_scale; /* rope_position_scale (1; positions x this, plain RoPE only) */
    int bs_block;        /* blocksparse_block_size */
    int bs_local;        /* blocksparse_num_local_blocks */
    int bs_stride;       /* blocksparse_vert_stride */
    bool bs_homo;        /* blocksparse_homo_head_pattern */
    int bs_dense_every;  /* dense_attention_every_n_layers (0: every layer block-sparse) */
    int n_dummy;         /* dummy_token_indices (ids < n_vocab) */
    int dummy_ids[PHIQ_MAX_DUMMY];
    /* token ids (-1 when unknown) */
    int bos_id, pad_id;
    int n_eos;
    int eos_ids[PHIQ_MAX_EOS]; /* config eos plus generation_config eos list */
} phiq_hparams;

const char *phiq_arch_name(phiq_arch a); /* "phi3", "phi2", "phimoe", "phi3small" (GGUF names) */

#endif
