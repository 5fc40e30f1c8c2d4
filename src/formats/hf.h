/* hf.h — a Hugging Face checkpoint directory: config.json,
 * generation_config.json, tokenizer.json / tokenizer_config.json (paths kept
 * for the tokenizer), and model.safetensors or the shards listed in
 * model.safetensors.index.json, all memory-mapped, never copied whole.
 */
#ifndef PHIQ_FORMATS_HF_H
#define PHIQ_FORMATS_HF_H

#include <stdbool.h>
#include <stdint.h>

#include "formats/safetensors.h"
#include "model/hparams.h"

typedef struct phiq_hf phiq_hf;

/* Reads config.json into hparams (refusing architectures other than
 * Phi3ForCausalLM, PhiForCausalLM, PhiMoEForCausalLM with a message naming
 * it), opens every shard, checks that each shard the index names exists and
 * that every tensor the declared layers need is present with the right shape. */
phiq_hf *phiq_hf_open(const char *dir);
void phiq_hf_close(phiq_hf *hf);

const char *phiq_hf_dir(const phiq_hf *hf);
const phiq_hparams *phiq_hf_hparams(const phiq_hf *hf);
/* Raw architectures[0] string and model_type from config.json. */
const char *phiq_hf_architecture(const phiq_hf *hf);

int phiq_hf_n_tensors(const phiq_hf *hf);
const phiq_st_tensor *phiq_hf_tensor_at(const phiq_hf *hf, int i);
const phiq_st_tensor *phiq_hf_find(const phiq_hf *hf, const char *name);

/* Paths of side files, NULL when absent (owned by hf). */
const char *phiq_hf_tokenizer_json(const phiq_hf *hf);
const char *phiq_hf_tokenizer_config_json(const phiq_hf *hf);
const char *phiq_hf_generation_config_json(const phiq_hf *hf);
/* ---- MLX checkpoints (what `mlx_lm.convert -q` writes) ----------------------------
 * config.json carries "quantization": {"group_size", "bits", "mode": "affine",
 * "<module path>": {per-module override}}; a module quantized with MLX's
 * affine scheme stores <path>.weight (U32 packed codes, [..., n_out,
 * n_in * bits / 32]), <path>.scales and <path>.biases ([..., n_out, n_in /
 * group_size], float). Phi-3.5-MoE experts are stacked as
 * block_sparse_moe.switch_mlp.{gate,up,down}_proj [E, n_out, n_in]. */
typedef struct phiq_hf_affine {
    const phiq_st_tensor *weight, *scales, *biases;
    int bits, group_size;
} phiq_hf_affine;

bool phiq_hf_is_mlx(const phiq_hf *hf);
/* For weight_name "<path>.weight" whose rows have n_in values: 1 with *out
 * filled if the module is affine-quantized, 0 if it is a plain float tensor
 * (or absent), negative with a message if the triplet or its settings are
 * malformed. n_in < 0: taken from the scales and the module's group size. */
int phiq_hf_affine_find(const phiq_hf *hf, const char *weight_name, int64_t n_in, phiq_hf_affine *out);

/* Total bytes of tensor data across shards. */
uint64_t phiq_hf_total_bytes(const phiq_hf *hf);

#endif
