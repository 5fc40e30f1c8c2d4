/* onnx_export_internal.h — the exporter's state and the graph pieces that
 * onnx_export.c (Phi3ForCausalLM, the driver) and onnx_phi3small.c
 * (Phi3SmallForCausalLM) share: logical weights gathered from HF tensors,
 * the data file, MatMul(NBits) with its weights, the graph inputs and
 * outputs, the attention-mask subgraph, RoPE caches, embedding and lm_head.
 * Not part of the library's interface. */
#ifndef PHIQ_ONNX_EXPORT_INTERNAL_H
#define PHIQ_ONNX_EXPORT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "convert/calib.h"
#include "core/common.h"
#include "formats/hf.h"
#include "onnx/onnx_export.h"
#include "onnx/onnx_graph.h"

/* Segments of one logical weight: Phi-3-small's KV-group-major fused QKV
 * becomes Q | K | V as 3 x num_key_value_heads row ranges. */
#define OX_MAX_SEG 48

/* A NULL-terminated list of node input/output names ("" = absent). */
#define IN(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Rows of a logical weight W [N, K] gathered from up to OX_MAX_SEG row
 * ranges of HF tensors (fused qkv_proj, or q/k/v_proj; a row range of
 * gate_up_proj; Phi-3-small's regrouped query_key_value). */
typedef struct ox_rows {
    const phiq_st_tensor *t[OX_MAX_SEG];
    int64_t row0[OX_MAX_SEG], rows[OX_MAX_SEG];
    int nseg;
    int64_t n, k;
} ox_rows;

typedef struct ox {
    const phiq_onnx_options *opt;
    phiq_hf *hf;
    const phiq_hparams *hp;
    phiq_og g;
    FILE *data;
    char *data_path;
    uint64_t off;
    int bits; /* 0: float weights */
    int n_threads;
    bool head_written; /* tied + quantized: lm_head weights already written for GatherBlockQuantized */
    phiq_calib_session *cal; /* --calib: Hessians for GPTQ, NULL = ORT's round-to-nearest */
    int n_gptq;
    phiq_progress prog;
    /* --ratio: bits of each layer matmul, plan[layer * OX_KINDS + kind] (4, 8
     * or 0 = float), and of lm_head / the embedding */
    uint8_t *plan;
    int head_bits;
    phiq_onnx_stats mixed; /* the plan's figures (n_int4 ...) */
} ox;

/* The logical weight of rows[i] rows from row0[i] of each names[i] (NULL-
 * terminated), every one a float [>= row0 + rows, k] tensor. */
int phiq_ox_rows_named(const phiq_hf *hf, ox_rows *r, int64_t k, const char *const *names, const int64_t *rows,
                       const int64_t *row0);
int phiq_ox_check_vec(const phiq_hf *hf, const char *name, int64_t n); /* float [n] */
uint64_t phiq_ox_rows_bytes(const ox_rows *r);
void phiq_ox_release_rows(const ox_rows *r); /* drops the source pages */

/* A whole blob as one external initializer of the data file. */
int phiq_ox_blob(ox *x, const char *name, int dtype, const int64_t *dims, int nd, const void *p, size_t n);
/* The float vector hfname [n] as the float32 initializer oname. */
int phiq_ox_vector(ox *x, const char *hfname, const char *oname, int64_t n);
/* y = in @ W^T for W [N, K] as MatMulNBits (quantized) or MatMul; prefix is
 * the node path ("/model/layers.0/attn/qkv_proj"), wprefix the initializer
 * stem ("model.layers.0.attn.qkv_proj"). */
int phiq_ox_matmul(ox *x, const char *prefix, const char *wprefix, const ox_rows *r, const char *in, const char *out);

/* Graph inputs (input_ids, attention_mask, past_key_values.*) and outputs
 * (logits, present.*). */
void phiq_ox_io(ox *x);
/* The attention-mask subgraph: "seqlens_k" (sum - 1) and "total_seq_len"
 * (width), int32, for GroupQueryAttention; returns the int64 width's name. */
const char *phiq_ox_mask(ox *x);
/* cos_cache / sin_cache (LongRoPE: an If on the total length). */
int phiq_ox_rope(ox *x, const char *total_len_i64);
/* Embedding rows of input_ids into out ([B, S, hidden] float32); emb gets
 * the table's logical weight (for a tied lm_head). */
int phiq_ox_embed(ox *x, ox_rows *emb, const char *out);
/* Layer 0's input norm: LayerNormalization with bias b, or (b NULL)
 * SimplifiedLayerNormalization (RMSNorm). */
void phiq_ox_first_norm(ox *x, const char *in, const char *w, const char *b, const char *out);
/* Layer i's attention on the packed Q | K | V qkv: GroupQueryAttention, or
 * (sparse) com.microsoft.SparseAttention over the "block_row_indices" /
 * "block_col_indices" layout; out (200 bytes) gets the output's name. */
void phiq_ox_attention(ox *x, int i, bool sparse, float scale, const char *qkv, char *out);
/* lm_head (tied: the embedding table emb) from in to out. */
int phiq_ox_lm_head(ox *x, const ox_rows *emb, const char *in, const char *out);

/* Phi3SmallForCausalLM (onnx_phi3small.c): what the export refuses, and
 * the decoder graph. */
int phiq_ox_phi3small_validate(const phiq_onnx_options *o, phiq_hf *hf, const char *src);
int phiq_ox_phi3small_build(ox *x);

#endif
