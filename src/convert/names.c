/* names.c — the HF → GGUF tensor plan for phi3 / phi2 / phimoe / phi3small: which
 * safetensors tensor(s) become which GGUF tensor, with what shape, in what
 * order (llama.cpp's gguf-py tensor_mapping.py names; docs §2.1).
 *
 * PyTorch stores a Linear weight as [out, in] row-major, which is exactly
 * GGUF's ne = [in, out] with the same bytes, so nothing is transposed or
 * permuted (Phi uses NEOX rotary, unlike LLaMA's q/k). PhiMoE expert weights
 * experts.E.w1/w3/w2 [F, E_] are stacked into one 3-D tensor per kind,
 * ne = [in, out, n_expert], by concatenating the sources in expert order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/convert.h"
#include "core/common.h"

typedef struct builder {
    phiq_plan *p;
    const phiq_hf *hf;
    int cap;
} builder;

static phiq_plan_tensor *add(builder *b, const char *name, int layer) {
    if (b->p->n == b->cap) {
        int nc = b->cap ? b->cap * 2 : 64;
        phiq_plan_tensor *nt = realloc(b->p->t, (size_t)nc * sizeof *nt);
        if (!nt) return phiq_fail_null(PHIQ_ENOMEM, "out of memory (tensor plan)");
        b->p->t = nt;
        b->cap = nc;
    }
    phiq_plan_tensor *t = &b->p->t[b->p->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->layer = layer;
    return t;
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* Declares GGUF tensor gname from HF tensor hname of PyTorch shape
 * (d0[, d1]) — outermost first; d1 = 0 for 1-D. required=false: silently
 * skipped when absent. Returns 1 added, 0 skipped, <0 error. */
static int map1(builder *b, const char *gname, int layer, const char *hname, int64_t d0, int64_t d1, bool required) {
    const phiq_st_tensor *s = phiq_hf_find(b->hf, hname);
    if (!s) {
        if (!required) return 0;
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor %s is missing", phiq_hf_dir(b->hf), hname);
    }
    int nd = d1 ? 2 : 1;
    bool ok = s->n_dims == nd && s->shape[0] == d0 && (nd == 1 || s->shape[1] == d1);
    if (!ok) {
        char got[96] = "", want[64];
        int off = 0;
        for (int i = 0; i < s->n_dims && off < 80; i++)
            off += snprintf(got + off, sizeof got - (size_t)off, "%s%lld", i ? ", " : "", (long long)s->shape[i]);
        if (nd == 1) snprintf(want, sizeof want, "%lld", (long long)d0);
        else snprintf(want, sizeof want, "%lld, %lld", (long long)d0, (long long)d1);
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor %s has shape [%s], expected [%s]", s->file, hname, got, want);
    }
    if (!phiq_st_is_float(s->dtype))
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: tensor %s has dtype %s (F32/F16/BF16 only)", s->file, hname,
                         s->dtype_name);
    phiq_plan_tensor *t = add(b, gname, layer);
    if (!t) return PHIQ_ENOMEM;
    t->n_dims = nd;
    t->ne[0] = nd == 1 ? d0 : d1;
    t->ne[1] = nd == 1 ? 1 : d0;
    t->ne[2] = t->ne[3] = 1;
    t->n_src = 1;
    t->src[0] = s;
    t->force_f32 = nd == 1 || ends_with(gname, "_norm.weight") || strstr(gname, "ffn_gate_inp");
    return 1;
}

/* blk.L.<g> from model.layers.L.<h> */
static int mapl(builder *b, int l, const char *g, const char *h, int64_t d0, int64_t d1, bool req) {
    char gn[PHIQ_GGUF_MAX_NAME], hn[256];
    snprintf(gn, sizeof gn, "blk.%d.%s", l, g);
    snprintf(hn, sizeof hn, "model.layers.%d.%s", l, h);
    return map1(b, gn, l, hn, d0, d1, req);
}

/* weight (+ bias when with_bias) of a Linear [out, in] */
static int linear(builder *b, int l, const char *g, const char *h, int64_t out, int64_t in, bool with_bias) {
    char gw[64], hw[192];
    snprintf(gw, sizeof gw, "%s.weight", g);
    snprintf(hw, sizeof hw, "%s.weight", h);
    int rc = mapl(b, l, gw, hw, out, in, true);
    if (rc < 0 || !with_bias) return rc;
    snprintf(gw, sizeof gw, "%s.bias", g);
    snprintf(hw, sizeof hw, "%s.bias", h);
    return mapl(b, l, gw, hw, out, 0, true);
}

static int rope_factors(builder *b, const phiq_hparams *hp) {
    if (hp->n_rope_factors <= 0) return 0;
    if (hp->n_rope_factors != hp->n_rot / 2)
        return phiq_fail(PHIQ_EFORMAT, "%s: %d LongRoPE factors, expected n_rot/2 = %d", phiq_hf_dir(b->hf),
                         hp->n_rope_factors, hp->n_rot / 2);
    /* convert_hf_to_gguf.py emits these (generate_extra_tensors) before the
     * checkpoint's own tensors */
    const char *names[2] = {"rope_factors_long.weight", "rope_factors_short.weight"};
    const float *data[2] = {hp->rope_long, hp->rope_short};
    for (int k = 0; k < 2; k++) {
        phiq_plan_tensor *t = add(b, names[k], -1);
        if (!t) return PHIQ_ENOMEM;
        t->n_dims = 1;
        t->ne[0] = hp->n_rope_factors;
        t->ne[1] = t->ne[2] = t->ne[3] = 1;
        t->mem = data[k];
        t->force_f32 = true;
    }
    return 0;
}

static int experts(builder *b, int l, const char *g, const char *w, int64_t out, int64_t in, int n_exp) {
    if (n_exp > PHIQ_PLAN_MAX_SRC)
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: %d experts (at most %d supported)", phiq_hf_dir(b->hf), n_exp,
                         PHIQ_PLAN_MAX_SRC);
    char gn[PHIQ_GGUF_MAX_NAME];
    snprintf(gn, sizeof gn, "blk.%d.%s", l, g);
    phiq_plan_tensor *t = add(b, gn, l);
    if (!t) return PHIQ_ENOMEM;
    t->n_dims = 3;
    t->ne[0] = in;
    t->ne[1] = out;
    t->ne[2] = n_exp;
    t->ne[3] = 1;
    for (int e = 0; e < n_exp; e++) {
        char hn[256];
        snprintf(hn, sizeof hn, "model.layers.%d.block_sparse_moe.experts.%d.%s.weight", l, e, w);
        const phiq_st_tensor *s = phiq_hf_find(b->hf, hn);
        if (!s) return phiq_fail(PHIQ_EFORMAT, "%s: tensor %s is missing", phiq_hf_dir(b->hf), hn);
        if (s->n_dims != 2 || s->shape[0] != out || s->shape[1] != in)
            return phiq_fail(PHIQ_EFORMAT, "%s: tensor %s has the wrong shape (expected [%lld, %lld])", s->file, hn,
                             (long long)out, (long long)in);
        if (!phiq_st_is_float(s->dtype))
            return phiq_fail(PHIQ_EUNSUPPORTED, "%s: tensor %s has dtype %s", s->file, hn, s->dtype_name);
        t->src[e] = s;
    }
    t->n_src = n_exp;
    return 0;
}

int phiq_plan_build(phiq_plan *p, const phiq_hf *hf) {
    memset(p, 0, sizeof *p);
    builder b = {p, hf, 0};
    const phiq_hparams *hp = phiq_hf_hparams(hf);
    const int64_t E = hp->n_embd, V = hp->n_vocab, F = hp->n_ff, hd = hp->head_dim;
    const int64_t Dq = (int64_t)hp->n_head * hd, Dkv = (int64_t)hp->n_head_kv * hd;
    int rc = 0;
    if (E <= 0 || V <= 0 || F <= 0 || hd <= 0 || hp->n_layer <= 0 || hp->n_head <= 0 || hp->n_head_kv <= 0) {
        rc = phiq_fail(PHIQ_EFORMAT, "%s: invalid hyper-parameters", phiq_hf_dir(hf));
        goto fail;
    }

    switch (hp->arch) {
    case PHIQ_ARCH_PHI3:
    case PHIQ_ARCH_PHIMOE: {
        bool moe = hp->arch == PHIQ_ARCH_PHIMOE;
        bool nb = moe; /* phimoe: LayerNorm with bias, attention biases */
        if ((rc = rope_factors(&b, hp)) < 0) goto fail;
        if ((rc = map1(&b, "token_embd.weight", -1, "model.embed_tokens.weight", V, E, true)) < 0) goto fail;
        for (int l = 0; l < hp->n_layer; l++) {
            if ((rc = mapl(&b, l, "attn_norm.weight", "input_layernorm.weight", E, 0, true)) < 0) goto fail;
            if (nb && (rc = mapl(&b, l, "attn_norm.bias", "input_layernorm.bias", E, 0, true)) < 0) goto fail;
            char hn[128];
            snprintf(hn, sizeof hn, "model.layers.%d.self_attn.qkv_proj.weight", l);
            if (phiq_hf_find(hf, hn)) {
                /* fused Q|K|V rows as HF stores them */
                if ((rc = linear(&b, l, "attn_qkv", "self_attn.qkv_proj", Dq + 2 * Dkv, E, hp->attn_bias)) < 0)
                    goto fail;
            } else {
                bool bias = hp->attn_bias || moe;
                if ((rc = linear(&b, l, "attn_q", "self_attn.q_proj", Dq, E, bias)) < 0) goto fail;
                if ((rc = linear(&b, l, "attn_k", "self_attn.k_proj", Dkv, E, bias)) < 0) goto fail;
                if ((rc = linear(&b, l, "attn_v", "self_attn.v_proj", Dkv, E, bias)) < 0) goto fail;
            }
            if ((rc = linear(&b, l, "attn_output", "self_attn.o_proj", E, Dq, hp->attn_bias || moe)) < 0) goto fail;
            if ((rc = mapl(&b, l, "ffn_norm.weight", "post_attention_layernorm.weight", E, 0, true)) < 0) goto fail;
            if (nb && (rc = mapl(&b, l, "ffn_norm.bias", "post_attention_layernorm.bias", E, 0, true)) < 0)
                goto fail;
            if (!moe) {
                /* gate_up_proj [2F, E]: gate rows first, as llama.cpp's swiglu expects */
                if ((rc = linear(&b, l, "ffn_up", "mlp.gate_up_proj", 2 * F, E, false)) < 0) goto fail;
                if ((rc = linear(&b, l, "ffn_down", "mlp.down_proj", E, F, false)) < 0) goto fail;
            } else {
                int ne = hp->n_expert;
                if (ne <= 0) {
                    rc = phiq_fail(PHIQ_EFORMAT, "%s: phimoe without num_local_experts", phiq_hf_dir(hf));
                    goto fail;
                }
                if ((rc = mapl(&b, l, "ffn_gate_inp.weight", "block_sparse_moe.gate.weight", ne, E, true)) < 0)
                    goto fail;
                if ((rc = experts(&b, l, "ffn_gate_exps.weight", "w1", F, E, ne)) < 0) goto fail;
                if ((rc = experts(&b, l, "ffn_down_exps.weight", "w2", E, F, ne)) < 0) goto fail;
                if ((rc = experts(&b, l, "ffn_up_exps.weight", "w3", F, E, ne)) < 0) goto fail;
            }
        }
        if ((rc = map1(&b, "output_norm.weight", -1, "model.norm.weight", E, 0, true)) < 0) goto fail;
        if (nb && (rc = map1(&b, "output_norm.bias", -1, "model.norm.bias", E, 0, true)) < 0) goto fail;
        if (!hp->tied_embeddings || moe) {
            if ((rc = map1(&b, "output.weight", -1, "lm_head.weight", V, E, !hp->tied_embeddings)) < 0) goto fail;
            if ((rc = map1(&b, "output.bias", -1, "lm_head.bias", V, 0, false)) < 0) goto fail;
        }
        break;
    }
    case PHIQ_ARCH_PHI3SMALL: {
        /* phiq's own architecture (llama.cpp has none): the same bytes as the
         * checkpoint, so attn_qkv keeps its KV-group-major rows and ffn_up its
         * interleaved gelu/linear rows (the engine reads them so) */
        if ((rc = rope_factors(&b, hp)) < 0) goto fail;
        if ((rc = map1(&b, "token_embd.weight", -1, "model.embed_tokens.weight", V, E, true)) < 0) goto fail;
        for (int l = 0; l < hp->n_layer; l++) {
            if ((rc = mapl(&b, l, "attn_norm.weight", "input_layernorm.weight", E, 0, true)) < 0) goto fail;
            if ((rc = mapl(&b, l, "attn_norm.bias", "input_layernorm.bias", E, 0, true)) < 0) goto fail;
            if ((rc = linear(&b, l, "attn_qkv", "self_attn.query_key_value", Dq + 2 * Dkv, E, true)) < 0) goto fail;
            if ((rc = linear(&b, l, "attn_output", "self_attn.dense", E, Dq, true)) < 0) goto fail;
            if ((rc = mapl(&b, l, "ffn_norm.weight", "post_attention_layernorm.weight", E, 0, true)) < 0) goto fail;
            if ((rc = mapl(&b, l, "ffn_norm.bias", "post_attention_layernorm.bias", E, 0, true)) < 0) goto fail;
            if ((rc = linear(&b, l, "ffn_up", "mlp.up_proj", 2 * F, E, true)) < 0) goto fail;
            if ((rc = linear(&b, l, "ffn_down", "mlp.down_proj", E, F, true)) < 0) goto fail;
        }
        if ((rc = map1(&b, "output_norm.weight", -1, "model.final_layernorm.weight", E, 0, true)) < 0) goto fail;
        if ((rc = map1(&b, "output_norm.bias", -1, "model.final_layernorm.bias", E, 0, true)) < 0) goto fail;
        if (!hp->tied_embeddings && (rc = map1(&b, "output.weight", -1, "lm_head.weight", V, E, true)) < 0) goto fail;
        break;
    }
    case PHIQ_ARCH_PHI2: {
        if ((rc = map1(&b, "token_embd.weight", -1, "model.embed_tokens.weight", V, E, true)) < 0) goto fail;
        for (int l = 0; l < hp->n_layer; l++) {
            if ((rc = mapl(&b, l, "attn_norm.weight", "input_layernorm.weight", E, 0, true)) < 0) goto fail;
            if ((rc = mapl(&b, l, "attn_norm.bias", "input_layernorm.bias", E, 0, true)) < 0) goto fail;
            if ((rc = linear(&b, l, "attn_q", "self_attn.q_proj", Dq, E, true)) < 0) goto fail;
            if ((rc = linear(&b, l, "attn_k", "self_attn.k_proj", Dkv, E, true)) < 0) goto fail;
            if ((rc = linear(&b, l, "attn_v", "self_attn.v_proj", Dkv, E, true)) < 0) goto fail;
            if ((rc = linear(&b, l, "attn_output", "self_attn.dense", E, Dq, true)) < 0) goto fail;
            if ((rc = linear(&b, l, "ffn_up", "mlp.fc1", F, E, true)) < 0) goto fail;
            if ((rc = linear(&b, l, "ffn_down", "mlp.fc2", E, F, true)) < 0) goto fail;
        }
        if ((rc = map1(&b, "output_norm.weight", -1, "model.final_layernorm.weight", E, 0, true)) < 0) goto fail;
        if ((rc = map1(&b, "output_norm.bias", -1, "model.final_layernorm.bias", E, 0, true)) < 0) goto fail;
        /* llama.cpp's phi2 requires output.weight and output.bias */
        if ((rc = map1(&b, "output.weight", -1, "lm_head.weight", V, E, true)) < 0) goto fail;
        if ((rc = map1(&b, "output.bias", -1, "lm_head.bias", V, 0, true)) < 0) goto fail;
        break;
    }
    default:
        rc = phiq_fail(PHIQ_EUNSUPPORTED, "%s: unsupported architecture", phiq_hf_dir(hf));
        goto fail;
    }
    return 0;
fail:
    phiq_plan_free(p);
    return rc < 0 ? rc : PHIQ_EFORMAT;
}

void phiq_plan_free(phiq_plan *p) {
    free(p->t);
    p->t = NULL;
    p->n = 0;
}
