/* synth.h — random-weight Hugging Face checkpoints of any Phi shape
 * (`phiq synth`): config.json, generation_config.json, BF16 safetensors
 * (sharded with model.safetensors.index.json above a size), and tokenizer
 * files, so that conversion and inference can be exercised on every
 * architecture without downloading real weights.
 */
#ifndef PHIQ_CONVERT_SYNTH_H
#define PHIQ_CONVERT_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "model/hparams.h"

typedef enum phiq_synth_tok {
    PHIQ_SYNTH_TOK_NONE = 0,
    PHIQ_SYNTH_TOK_PHI3,   /* fixtures/tokenizers/phi3 (Llama SentencePiece, 32064 rows) */
    PHIQ_SYNTH_TOK_GPT2,   /* fixtures/tokenizers/gpt2 (phi-2, 51200 rows) */
    PHIQ_SYNTH_TOK_CL100K, /* phi-4: built from tiktoken/cl100k_base */
    PHIQ_SYNTH_TOK_O200K,  /* phi-4-mini: built from tiktoken/o200k_base */
    PHIQ_SYNTH_TOK_PHI3SMALL, /* Phi-3-small: cl100k_base.tiktoken + Phi3SmallTokenizer's tokenizer_config.json */
} phiq_synth_tok;

typedef struct phiq_synth_params {
    phiq_arch arch;
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff;
    int n_expert, n_expert_used;  /* phimoe */
    double router_jitter;         /* phimoe router_jitter_noise; 0 = 0.01 as Phi-3.5-MoE */
    double short_mscale, long_mscale; /* phimoe rope_scaling mscales; 0 = 1.243163121016122 */
    double partial_rotary;        /* partial_rotary_factor */
    int bs_block, bs_local, bs_stride; /* phi3small blocksparse_block_size / _num_local_blocks / _vert_stride */
    int bs_dense_every;           /* phi3small dense_attention_every_n_layers (0 → null) */
    int n_ctx_train, n_ctx_orig;  /* n_ctx_orig < n_ctx_train → LongRoPE factors written */
    double rope_theta;
    bool longrope_short_ones;     /* Phi-4-mini: short factors all 1.0 */
    int sliding_window;           /* 0 → null */
    bool tied;
    int bos_id, eos_id, pad_id;   /* config.json */
    int gen_eos[4], n_gen_eos;    /* generation_config.json eos list */
    phiq_synth_tok tokenizer;
    uint64_t seed;
    uint64_t shard_size;          /* bytes per shard; 0 = 2 GB */
    int quiet;
} phiq_synth_params;

/* Fills p with a named preset (phi-2, phi-3-mini-4k, phi-3-mini-128k,
 * phi-3.5-mini, phi-3-medium, phi-3.5-moe, phi-3-small, phi-3-small-128k,
 * phi-4, phi-4-mini) at full size. */
int phiq_synth_preset(const char *name, phiq_synth_params *p);
/* Comma-separated preset names, for help texts. */
const char *phiq_synth_preset_names(void);

/* Calls fn for every tensor the checkpoint of p holds, in file order
 * (names and [out, in] shapes as the HF modeling code stores them). */
typedef void (*phiq_synth_tensor_fn)(void *user, const char *name, int n_dims, const int64_t *shape);
int phiq_synth_list(const phiq_synth_params *p, phiq_synth_tensor_fn fn, void *user);

/* Writes the checkpoint into dir (created if needed). tokenizers_dir is the
 * fixtures/tokenizers directory (phi3/, gpt2/, tiktoken/); may be NULL when
 * p->tokenizer is NONE. */
int phiq_synth_write(const phiq_synth_params *p, const char *dir, const char *tokenizers_dir);

/* Writes a Hugging Face tokenizer.json (byte-level BPE with merges recovered
 * from the ranks) and tokenizer_config.json for a tiktoken vocabulary. */
int phiq_synth_tiktoken_tokenizer(phiq_synth_tok kind, const char *tokenizers_dir, const char *dir);

#endif
