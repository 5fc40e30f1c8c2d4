/* phi3small.h — what Phi-3-small (Phi3SmallForCausalLM, modeling_phi3_small.py)
 * does differently from the other Phi models, as pieces the shared forward
 * pass (forward.c), the loader (model.c) and the converter call: the
 * KV-group-major fused QKV, the block-sparse attention pattern of the layers
 * the config does not mark dense, the interleaved GeGELU with its +1, the
 * muP logit division and the dummy-token mask, and the phiq GGUF keys that
 * carry its hyper-parameters (docs/FORMATS.md). */
#ifndef PHIQ_MODEL_PHI3SMALL_H
#define PHIQ_MODEL_PHI3SMALL_H

#include <stdbool.h>

#include "model/hparams.h"

struct phiq_gguf;
struct phiq_gguf_writer;
struct phiq_kv;

/* The hyper-parameters a phi3small GGUF carries beyond the common keys. */
int phiq_phi3small_gguf_read(struct phiq_gguf *g, phiq_hparams *hp);
int phiq_phi3small_gguf_write(struct phiq_gguf_writer *w, const phiq_hparams *hp);
/* One-line error (returns <0) when the block-sparse / muP fields do not make a model. */
int phiq_phi3small_check(const char *file, const phiq_hparams *hp);

/* Layer L uses dense causal attention ((L + 1) % dense_attention_every_n_layers == 0). */
static inline bool phiq_phi3small_dense(const phiq_hparams *hp, int layer) {
    return hp->bs_dense_every > 0 && (layer + 1) % hp->bs_dense_every == 0;
}

/* Block-sparse layers (triton_flash_blocksparse_attn.py's layout): query
 * block qb sees key block kb <= qb when qb - kb < local blocks, or when
 * (kb + h * step + 1) % vert_stride == 0, h the query head (0 for the
 * homogeneous pattern) and step = max(1, vert_stride / n_head). */
static inline bool phiq_phi3small_block_visible(const phiq_hparams *hp, int h, int qb, int kb) {
    if (kb > qb) return false;
    if (qb - kb < hp->bs_local) return true;
    int step = hp->bs_stride / hp->n_head > 1 ? hp->bs_stride / hp->n_head : 1;
    int hh = hp->bs_homo ? 0 : h;
    return ((long)kb + (long)hh * step + 1) % hp->bs_stride == 0;
}

/* Rearranges one token's fused QKV output from Phi-3-small's per-KV-group
 * order [group][q_per_kv Q heads, K, V][head_dim] into Q | K | V (query head
 * g * q_per_kv + j, KV head g). scratch holds (n_head + 2 n_head_kv) head_dim floats. */
void phiq_phi3small_regroup_qkv(const phiq_hparams *hp, float *row, float *scratch);

/* One (token, head) of a block-sparse layer against any cache type: query q
 * (head_dim floats, RoPE applied) at position p; s holds p + 1 scores,
 * tmp 2 head_dim floats; writes o (head_dim). */
void phiq_phi3small_attn_head(const phiq_hparams *hp, const struct phiq_kv *kv, int layer, int h, int p, const float *q,
                              float scale, float *s, float *tmp, float *o);

/* gegelu on F pairs in place: y[i] = quick_gelu(min(a[2i], limit)) * (clamp(a[2i+1], +-limit) + 1),
 * quick_gelu(z) = z * sigmoid(1.702 z); infinities pass the clamps unchanged. */
void phiq_phi3small_gegelu(float *a, int F, float limit);

/* logits / mup_width_multiplier, dummy ids set to -FLT_MAX (torch.finfo(float32).min, as
 * Phi3SmallForCausalLM's masked_fill) for rows [V] each. */
void phiq_phi3small_logits(const phiq_hparams *hp, float *logits, int rows, int V);

#endif
