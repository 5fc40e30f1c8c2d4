/* onnx_phi3small.c — Phi3SmallForCausalLM (Phi-3-small-8k/128k) as the CPU
 * decoder ONNX Runtime GenAI's model builder makes of it (builders/phi.py
 * Phi3SmallModel over base.py's Model), on the shared pieces of
 * onnx_export_internal.h:
 *   - embedding Gather x mup_embedding_multiplier (Mul);
 *   - LayerNormalization (weight + bias) before layer 0, then
 *     com.microsoft SkipLayerNormalization for every later norm;
 *   - query_key_value regrouped from its KV-group-major rows to Q | K | V
 *     (weight rows and bias), one MatMul(NBits) + Add;
 *   - attention with rotary inside and softmax scale mup_attn_multiplier /
 *     head_dim: GroupQueryAttention on the layers dense_attention_every_n_layers
 *     marks dense, com.microsoft.SparseAttention on the others, over the
 *     block layout of model/phi3small.h (CSR per head, or one for the
 *     homogeneous pattern) for max_position_embeddings; past and present
 *     KV share one buffer (SparseAttention requires it; genai_config.json's
 *     past_present_share_buffer);
 *   - dense (o_proj) MatMul + Add; GeGELU on up_proj's interleaved columns
 *     (Slice even / odd, clamps at gegelu_limit that let infinities through,
 *     com.microsoft QuickGelu alpha 1.702, linear + 1, Mul), down_proj + Add;
 *   - final SkipLayerNormalization, tied lm_head, x 1/mup_width_multiplier,
 *     the tokenizer's dummy ids set to float32's lowest by a Where.
 * Refused in one line: a block size SparseAttention does not take (16, 32,
 * 64, 128), more than 16 KV heads, rope_position_scale other than 1, --ratio
 * and --calib. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/phi3small.h"
#include "onnx/onnx_export_internal.h"

/* The weights of one layer, in the exporter's terms. */
typedef struct p3s_layer {
    ox_rows qkv, o, up, down;
} p3s_layer;

static bool p3s_any_sparse(const phiq_hparams *hp) {
    for (int i = 0; i < hp->n_layer; i++)
        if (!phiq_phi3small_dense(hp, i)) return true;
    return false;
}

/* query_key_value's rows in Q | K | V order: per KV group g of the fused
 * [groups][q_per_kv + 2][head_dim] layout, its query heads, then its key,
 * then its value (GroupQueryAttention maps query head g * q_per_kv + j to
 * KV head g, as the remote code's repeat_interleave). */
static void p3s_qkv_segments(const phiq_hparams *hp, int64_t *rows, int64_t *row0) {
    const int64_t hd = hp->head_dim, qpk = hp->n_head / hp->n_head_kv, group = (qpk + 2) * hd;
    const int nkv = hp->n_head_kv;
    for (int g = 0; g < nkv; g++) {
        rows[g] = qpk * hd;
        row0[g] = g * group;
        rows[nkv + g] = rows[2 * nkv + g] = hd;
        row0[nkv + g] = g * group + qpk * hd;
        row0[2 * nkv + g] = g * group + (qpk + 1) * hd;
    }
}

static int p3s_layer_rows(const phiq_hf *hf, const phiq_hparams *hp, int i, p3s_layer *L) {
    const int64_t H = hp->n_embd, F = hp->n_ff, q = (int64_t)hp->n_head * hp->head_dim;
    char a[160];
    const char *names[OX_MAX_SEG + 1];
    int64_t rows[OX_MAX_SEG], row0[OX_MAX_SEG];
    snprintf(a, sizeof a, "model.layers.%d.self_attn.query_key_value.weight", i);
    for (int s = 0; s < 3 * hp->n_head_kv; s++) names[s] = a;
    names[3 * hp->n_head_kv] = NULL;
    p3s_qkv_segments(hp, rows, row0);
    int rc = phiq_ox_rows_named(hf, &L->qkv, H, names, rows, row0);
    if (rc) return rc;
    snprintf(a, sizeof a, "model.layers.%d.self_attn.dense.weight", i);
    if ((rc = phiq_ox_rows_named(hf, &L->o, q, IN(a), (int64_t[]){H}, (int64_t[]){0}))) return rc;
    snprintf(a, sizeof a, "model.layers.%d.mlp.up_proj.weight", i);
    if ((rc = phiq_ox_rows_named(hf, &L->up, H, IN(a), (int64_t[]){2 * F}, (int64_t[]){0}))) return rc;
    snprintf(a, sizeof a, "model.layers.%d.mlp.down_proj.weight", i);
    return phiq_ox_rows_named(hf, &L->down, F, IN(a), (int64_t[]){H}, (int64_t[]){0});
}

int phiq_ox_phi3small_validate(const phiq_onnx_options *o, phiq_hf *hf, const char *src) {
    const phiq_hparams *hp = phiq_hf_hparams(hf);
    if (o->mixed || o->calib)
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: %s is not available for Phi-3-small's ONNX export (plain int4/int8/fp16/fp32 only)",
                         src, o->mixed ? "--ratio" : "--calib");
    if (3 * hp->n_head_kv > OX_MAX_SEG)
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: %d key/value heads (the Phi-3-small ONNX export takes at most %d)", src,
                         hp->n_head_kv, OX_MAX_SEG / 3);
    /* com.microsoft.SparseAttention's sparse_block_size choices */
    const int B = hp->bs_block;
    if (p3s_any_sparse(hp) && B != 16 && B != 32 && B != 64 && B != 128)
        return phiq_fail(PHIQ_EUNSUPPORTED,
                         "%s: blocksparse_block_size %d: ONNX Runtime's SparseAttention takes blocks of 16, 32, 64 or 128 tokens",
                         src, B);
    if (hp->rope_pos_scale != 1.0f)
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: rope_position_scale %g: the ONNX rotary caches have none (1 only)", src,
                         (double)hp->rope_pos_scale);
    const int64_t H = hp->n_embd, F = hp->n_ff, qkv = (int64_t)(hp->n_head + 2 * hp->n_head_kv) * hp->head_dim;
    int rc;
    ox_rows r;
    if ((rc = phiq_ox_rows_named(hf, &r, H, IN("model.embed_tokens.weight"), (int64_t[]){hp->n_vocab}, (int64_t[]){0})))
        return rc;
    if (!hp->tied_embeddings &&
        (rc = phiq_ox_rows_named(hf, &r, H, IN("lm_head.weight"), (int64_t[]){hp->n_vocab}, (int64_t[]){0})))
        return rc;
    if ((rc = phiq_ox_check_vec(hf, "model.final_layernorm.weight", H)) ||
        (rc = phiq_ox_check_vec(hf, "model.final_layernorm.bias", H)))
        return rc;
    static const char *const vec[] = {"input_layernorm.weight", "input_layernorm.bias", "post_attention_layernorm.weight",
                                      "post_attention_layernorm.bias", "self_attn.query_key_value.bias",
                                      "self_attn.dense.bias", "mlp.up_proj.bias", "mlp.down_proj.bias"};
    const int64_t len[] = {H, H, H, H, qkv, H, 2 * F, H};
    for (int i = 0; i < hp->n_layer; i++) {
        p3s_layer L;
        if ((rc = p3s_layer_rows(hf, hp, i, &L))) return rc;
        for (size_t v = 0; v < sizeof vec / sizeof *vec; v++) {
            char a[160];
            snprintf(a, sizeof a, "model.layers.%d.%s", i, vec[v]);
            if ((rc = phiq_ox_check_vec(hf, a, len[v]))) return rc;
        }
    }
    return 0;
}

/* ---- initializers --------------------------------------------------------------- */

/* query_key_value's bias in the Q | K | V order of its weight rows. */
static int p3s_qkv_bias(ox *x, int i, const char *oname) {
    const phiq_hparams *hp = x->hp;
    const int64_t n = (int64_t)(hp->n_head + 2 * hp->n_head_kv) * hp->head_dim;
    char a[160];
    snprintf(a, sizeof a, "model.layers.%d.self_attn.query_key_value.bias", i);
    float *src = malloc((size_t)n * sizeof *src), *dst = malloc((size_t)n * sizeof *dst);
    int64_t rows[OX_MAX_SEG], row0[OX_MAX_SEG];
    int rc = src && dst ? phiq_st_to_f32(phiq_hf_find(x->hf, a), 0, n, src) : phiq_fail(PHIQ_ENOMEM, "out of memory");
    if (!rc) {
        p3s_qkv_segments(hp, rows, row0);
        int64_t at = 0;
        for (int s = 0; s < 3 * hp->n_head_kv; at += rows[s], s++) memcpy(dst + at, src + row0[s], (size_t)rows[s] * sizeof *dst);
        rc = phiq_ox_blob(x, oname, PHIQ_OG_FLOAT, &n, 1, dst, (size_t)n * sizeof *dst);
    }
    free(src);
    free(dst);
    return rc;
}

/* The block layout of the sparse layers as SparseAttention's CSR:
 * block_row_indices [layouts, blocks + 1] and block_col_indices [layouts,
 * max nonzeros] (rows padded with -1), int32, for blocks =
 * ceil(max_position_embeddings / block) query and key blocks; one layout
 * per query head (the operator takes head h's from layout h % layouts), or
 * one for the homogeneous pattern. */
static int p3s_layout(ox *x) {
    const phiq_hparams *hp = x->hp;
    const int64_t nb = ((int64_t)hp->n_ctx_train + hp->bs_block - 1) / hp->bs_block, nl = hp->bs_homo ? 1 : hp->n_head;
    int32_t *crow = malloc((size_t)(nl * (nb + 1)) * sizeof *crow);
    int64_t nnz = 0;
    int rc = 0;
    if (!crow) return phiq_fail(PHIQ_ENOMEM, "out of memory building the block-sparse layout");
    for (int64_t h = 0; h < nl; h++) {
        int32_t *cr = crow + h * (nb + 1);
        cr[0] = 0;
        for (int64_t qb = 0; qb < nb; qb++) {
            int32_t c = 0;
            for (int64_t kb = 0; kb <= qb; kb++) c += phiq_phi3small_block_visible(hp, (int)h, (int)qb, (int)kb);
            cr[qb + 1] = cr[qb] + c;
        }
        nnz = cr[nb] > nnz ? cr[nb] : nnz;
    }
    int32_t *col = malloc((size_t)(nl * (nnz ? nnz : 1)) * sizeof *col);
    if (!col) rc = phiq_fail(PHIQ_ENOMEM, "out of memory building the block-sparse layout");
    for (int64_t h = 0; h < nl && !rc; h++) {
        int32_t *c = col + h * nnz;
        int64_t k = 0;
        for (int64_t qb = 0; qb < nb; qb++)
            for (int64_t kb = 0; kb <= qb; kb++)
                if (phiq_phi3small_block_visible(hp, (int)h, (int)qb, (int)kb)) c[k++] = (int32_t)kb;
        while (k < nnz) c[k++] = -1;
    }
    /* inline, not in the data file: SparseAttention's shape inference reads them */
    if (!rc) {
        phiq_og_init_inline(&x->g, "block_row_indices", PHIQ_OG_INT32, (int64_t[]){nl, nb + 1}, 2, crow,
                            (size_t)(nl * (nb + 1)) * sizeof *crow);
        phiq_og_init_inline(&x->g, "block_col_indices", PHIQ_OG_INT32, (int64_t[]){nl, nnz}, 2, col,
                            (size_t)(nl * nnz) * sizeof *col);
    }
    free(crow);
    free(col);
    return rc;
}

/* A float scalar constant named name (once). */
static const char *p3s_const(ox *x, const char *name, float v) {
    phiq_og_constant(&x->g, name, PHIQ_OG_FLOAT, NULL, 0, &v, sizeof v);
    return name;
}

/* ---- graph pieces ---------------------------------------------------------------- */

/* Layer i's linear path ("attn/o_proj") = stem ("attn.o_proj"): MatMul(NBits)
 * then Add of its bias "model.layers.i.STEM.Add.bias" (from HF hfbias, or,
 * NULL, query_key_value's regrouped one); writes the output's name. */
static int p3s_linear(ox *x, int i, const char *path, const char *stem, const char *hfbias, const ox_rows *r,
                      const char *in, char *out) {
    char prefix[120], wprefix[120], bias[160], hb[160], mm[240], nm[240];
    snprintf(prefix, sizeof prefix, "/model/layers.%d/%s", i, path);
    snprintf(wprefix, sizeof wprefix, "model.layers.%d.%s", i, stem);
    snprintf(bias, sizeof bias, "%s.Add.bias", wprefix);
    snprintf(hb, sizeof hb, "model.layers.%d.%s", i, hfbias ? hfbias : "");
    int rc = hfbias ? phiq_ox_vector(x, hb, bias, r->n) : p3s_qkv_bias(x, i, bias);
    snprintf(mm, sizeof mm, "%s/MatMul/output_0", prefix);
    if (rc || (rc = phiq_ox_matmul(x, prefix, wprefix, r, in, mm))) return rc;
    snprintf(nm, sizeof nm, "%s/Add", prefix);
    snprintf(out, 240, "%s/Add/output_0", prefix);
    phiq_og_node(&x->g, "Add", "", nm, IN(mm, bias), IN(out));
    return 0;
}

/* The norm weight and bias initializers of HF module hf ("model.layers.3.
 * input_layernorm"); w and b get their names. */
static int p3s_norm_params(ox *x, const char *hf, char *w, char *b) {
    snprintf(w, 160, "%s.weight", hf);
    snprintf(b, 160, "%s.bias", hf);
    int rc = phiq_ox_vector(x, w, w, x->hp->n_embd);
    return rc ? rc : phiq_ox_vector(x, b, b, x->hp->n_embd);
}

/* SkipLayerNormalization(residual + skip) -> out (and, if res_out, the sum). */
static void p3s_skip_norm(ox *x, const char *name, const char *residual, const char *skip, const char *w,
                          const char *b, const char *out, const char *res_out) {
    Onnx__NodeProto *n = res_out ? phiq_og_node(&x->g, "SkipLayerNormalization", "com.microsoft", name,
                                                IN(residual, skip, w, b), IN(out, "", "", res_out))
                                 : phiq_og_node(&x->g, "SkipLayerNormalization", "com.microsoft", name,
                                                IN(residual, skip, w, b), IN(out));
    phiq_og_attr_f(&x->g, n, "epsilon", x->hp->norm_eps);
}

/* One GeGELU branch: Slice of up's columns start::2, then (limit finite)
 * Where(IsInf(v), v, Clip(v, lo, limit)), as the builder and the remote
 * code clamp. lo: NULL for no lower bound. Writes the result's name. */
static void p3s_branch(ox *x, const char *p, const char *what, const char *up, const char *start, const char *lo,
                       const char *hi, char *out) {
    phiq_og *g = &x->g;
    char nm[240], sl[240], inf[240], cl[240];
    snprintf(nm, sizeof nm, "%s/mlp/%s/Slice", p, what);
    snprintf(sl, sizeof sl, "%s/output_0", nm);
    phiq_og_node(g, "Slice", "", nm,
                 IN(up, start, "/model/constants/INT64/[INT64_MAX]", "/model/constants/INT64/[-1]",
                    "/model/constants/INT64/[2]"),
                 IN(sl));
    if (!hi) {
        snprintf(out, 240, "%s", sl);
        return;
    }
    snprintf(nm, sizeof nm, "%s/mlp/%s/IsInf", p, what);
    snprintf(inf, sizeof inf, "%s/output_0", nm);
    phiq_og_node(g, "IsInf", "", nm, IN(sl), IN(inf));
    snprintf(nm, sizeof nm, "%s/mlp/%s/Clip", p, what);
    snprintf(cl, sizeof cl, "%s/output_0", nm);
    phiq_og_node(g, "Clip", "", nm, IN(sl, lo ? lo : "", hi), IN(cl));
    snprintf(nm, sizeof nm, "%s/mlp/%s/Where", p, what);
    snprintf(out, 240, "%s/output_0", nm);
    phiq_og_node(g, "Where", "", nm, IN(inf, sl, cl), IN(out));
}

/* The int64 [1] constants the Slices read. */
static void p3s_slice_constants(ox *x) {
    static const struct { const char *name; int64_t v; } c[] = {
        {"/model/constants/INT64/[0]", 0}, {"/model/constants/INT64/[1]", 1}, {"/model/constants/INT64/[2]", 2},
        {"/model/constants/INT64/[-1]", -1}, {"/model/constants/INT64/[INT64_MAX]", INT64_MAX}};
    for (size_t i = 0; i < sizeof c / sizeof *c; i++)
        phiq_og_constant(&x->g, c[i].name, PHIQ_OG_INT64, (int64_t[]){1}, 1, &c[i].v, sizeof c[i].v);
}

/* lm_head's post-processing: x 1/mup_width_multiplier, then the dummy ids
 * (a bool [V] initializer) set to float32's lowest, into "logits". */
static int p3s_logits(ox *x, const char *in) {
    const phiq_hparams *hp = x->hp;
    phiq_og *g = &x->g;
    const char *cur = in;
    if (hp->logit_div > 0) {
        const char *out = hp->n_dummy ? "/lm_head/Mul/output_0" : "logits";
        phiq_og_node(g, "Mul", "", "/lm_head/Mul", IN(cur, p3s_const(x, "/model/constants/FLOAT/0D/lm_head_scale", 1.0f / hp->logit_div)),
                     IN(out));
        cur = out;
    }
    if (!hp->n_dummy) {
        if (cur != in) return 0;
        phiq_og_node(g, "Identity", "", "/lm_head/Identity", IN(cur), IN("logits"));
        return 0;
    }
    uint8_t *mask = calloc((size_t)hp->n_vocab, 1);
    if (!mask) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    for (int i = 0; i < hp->n_dummy; i++) mask[hp->dummy_ids[i]] = 1;
    int64_t v = hp->n_vocab;
    int rc = phiq_ox_blob(x, "logits_mask", PHIQ_OG_BOOL, &v, 1, mask, (size_t)v);
    free(mask);
    if (rc) return rc;
    phiq_og_node(g, "Where", "", "/lm_head/Where",
                 IN("logits_mask", p3s_const(x, "/model/constants/FLOAT/0D/lowest", -FLT_MAX), cur), IN("logits"));
    return 0;
}

/* ---- the graph ------------------------------------------------------------------- */

int phiq_ox_phi3small_build(ox *x) {
    const phiq_hparams *hp = x->hp;
    phiq_og *g = &x->g;
    int rc;
    Onnx__NodeProto *n;
    const float scale = hp->attn_scale > 0 ? hp->attn_scale : (float)(1.0 / sqrt((double)hp->head_dim));

    phiq_ox_io(x);
    const char *width = phiq_ox_mask(x);
    if (p3s_any_sparse(hp)) {
        /* SparseAttention's key_total_sequence_lengths: sum(mask) per row */
        n = phiq_og_node(g, "Cast", "", "/model/attn_mask_reformat/attn_mask_subgraph/ReduceSum/Cast",
                         IN("/model/attn_mask_reformat/attn_mask_subgraph/ReduceSum/output_0"), IN("key_total_seq_lens"));
        phiq_og_attr_i(g, n, "to", PHIQ_OG_INT32);
        if ((rc = p3s_layout(x))) return rc;
    }
    if ((rc = phiq_ox_rope(x, width))) return rc;
    p3s_slice_constants(x);
    const char *one = p3s_const(x, "/model/constants/FLOAT/0D/1", 1.0f);
    const char *hi = NULL, *lo = NULL;
    if (isfinite(hp->gegelu_limit)) {
        hi = p3s_const(x, "/model/constants/FLOAT/0D/gegelu_limit", hp->gegelu_limit);
        lo = p3s_const(x, "/model/constants/FLOAT/0D/-gegelu_limit", -hp->gegelu_limit);
    }

    ox_rows emb;
    const char *embeds = "/model/embed_tokens/Gather/output_0";
    if ((rc = phiq_ox_embed(x, &emb, embeds))) return rc;
    if (hp->emb_mult > 0) {
        phiq_og_node(g, "Mul", "", "/model/embed_tokens/Mul",
                     IN(embeds, p3s_const(x, "/model/constants/FLOAT/0D/embed_scale", hp->emb_mult)),
                     IN("/model/embed_tokens/Mul/output_0"));
        embeds = "/model/embed_tokens/Mul/output_0";
    }

    char residual[240], down[240];
    snprintf(residual, sizeof residual, "%s", embeds);
    for (int i = 0; i < hp->n_layer; i++) {
        p3s_layer L;
        if ((rc = p3s_layer_rows(x->hf, hp, i, &L))) return rc;
        char p[64], hf[96], nm[240], w[160], b[160], ln[240], res[240];
        snprintf(p, sizeof p, "/model/layers.%d", i);

        /* input_layernorm */
        snprintf(hf, sizeof hf, "model.layers.%d.input_layernorm", i);
        if ((rc = p3s_norm_params(x, hf, w, b))) return rc;
        snprintf(ln, sizeof ln, "%s/input_layernorm/output_0", p);
        if (i == 0) {
            phiq_ox_first_norm(x, residual, w, b, ln);
        } else {
            snprintf(nm, sizeof nm, "%s/input_layernorm/SkipLayerNorm", p);
            snprintf(res, sizeof res, "%s/input_layernorm/output_3", p);
            p3s_skip_norm(x, nm, residual, down, w, b, ln, res);
            snprintf(residual, sizeof residual, "%s", res);
        }

        /* attention: Q | K | V with bias, dense or block-sparse, o_proj (HF "dense") with bias */
        char qkv[240], attn[200], o[240];
        if ((rc = p3s_linear(x, i, "attn/qkv_proj", "attn.qkv_proj", NULL, &L.qkv, ln, qkv))) return rc;
        phiq_ox_attention(x, i, !phiq_phi3small_dense(hp, i), scale, qkv, attn);
        if ((rc = p3s_linear(x, i, "attn/o_proj", "attn.o_proj", "self_attn.dense.bias", &L.o, attn, o))) return rc;

        /* post_attention_layernorm */
        snprintf(hf, sizeof hf, "model.layers.%d.post_attention_layernorm", i);
        if ((rc = p3s_norm_params(x, hf, w, b))) return rc;
        snprintf(nm, sizeof nm, "%s/post_attention_layernorm/SkipLayerNorm", p);
        snprintf(ln, sizeof ln, "%s/post_attention_layernorm/output_0", p);
        snprintf(res, sizeof res, "%s/post_attention_layernorm/output_3", p);
        p3s_skip_norm(x, nm, residual, o, w, b, ln, res);
        snprintf(residual, sizeof residual, "%s", res);

        /* MLP: GeGELU of up_proj's interleaved columns, down_proj */
        char up[240], gl[240], lin[240], act[240], lp1[240], h[240];
        if ((rc = p3s_linear(x, i, "mlp/up_proj", "mlp.up_proj", "mlp.up_proj.bias", &L.up, ln, up))) return rc;
        p3s_branch(x, p, "gelu", up, "/model/constants/INT64/[0]", NULL, hi, gl);
        p3s_branch(x, p, "linear", up, "/model/constants/INT64/[1]", lo, hi, lin);
        snprintf(nm, sizeof nm, "%s/mlp/act_fn/QuickGelu", p);
        snprintf(act, sizeof act, "%s/output_0", nm);
        n = phiq_og_node(g, "QuickGelu", "com.microsoft", nm, IN(gl), IN(act));
        phiq_og_attr_f(g, n, "alpha", 1.702f);
        snprintf(nm, sizeof nm, "%s/mlp/linear/Add", p);
        snprintf(lp1, sizeof lp1, "%s/output_0", nm);
        phiq_og_node(g, "Add", "", nm, IN(lin, one), IN(lp1));
        snprintf(nm, sizeof nm, "%s/mlp/Mul", p);
        snprintf(h, sizeof h, "%s/output_0", nm);
        phiq_og_node(g, "Mul", "", nm, IN(act, lp1), IN(h));
        if ((rc = p3s_linear(x, i, "mlp/down_proj", "mlp.down_proj", "mlp.down_proj.bias", &L.down, h, down))) return rc;
    }

    /* final norm, tied lm_head, muP division, dummy ids */
    char w[160], b[160], nm[240], fo[240];
    if ((rc = p3s_norm_params(x, "model.final_layernorm", w, b))) return rc;
    snprintf(nm, sizeof nm, "/model/layers.%d/final_norm_layernorm/SkipLayerNorm", hp->n_layer);
    snprintf(fo, sizeof fo, "/model/layers.%d/final_norm_layernorm/output_0", hp->n_layer);
    p3s_skip_norm(x, nm, residual, down, w, b, fo, NULL);
    if ((rc = phiq_ox_lm_head(x, &emb, fo, "/lm_head/MatMul/output_0"))) return rc;
    return p3s_logits(x, "/lm_head/MatMul/output_0");
}
