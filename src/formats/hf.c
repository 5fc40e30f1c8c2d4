/* hf.c — a Hugging Face checkpoint directory: config.json and
 * generation_config.json → phiq_hparams, the safetensors shard(s) behind one
 * name lookup, and the check that every tensor the declared layers need is
 * present with the right shape and a convertible dtype. See hf.h.
 */
#include "formats/hf.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/common.h"
#include "tokenizer/tokenizer.h"

/* Dimensions above these are refused as implausible (and keep every product
 * of two of them far from int64 overflow). */
#define HF_MAX_DIM (1 << 24)
#define HF_MAX_LAYERS 4096
#define HF_MAX_SHARDS 4096

struct phiq_hf {
    char *dir;
    char *arch_name;
    char *model_type;
    phiq_hparams hp;
    phiq_st **shards;
    int n_shards;
    const phiq_st_tensor **tensors; /* all shards, shard order then data order */
    int n_tensors;
    int *hash; /* index+1 into tensors, 0 = empty */
    int hcap;
    uint64_t total_bytes;
    char *tok_json, *tok_cfg, *gen_cfg;
    cJSON *quant; /* MLX: config.json's "quantization" object, NULL otherwise */
};

static uint32_t hf_hash(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

void phiq_hf_close(phiq_hf *hf) {
    if (!hf) return;
    for (int i = 0; i < hf->n_shards; i++) phiq_st_close(hf->shards[i]);
    PHIQ_FREE_ALL(hf->shards, hf->tensors, hf->hash, hf->dir, hf->arch_name, hf->model_type, hf->tok_json, hf->tok_cfg,
                  hf->gen_cfg);
    cJSON_Delete(hf->quant);
    free(hf);
}

/* ---- config.json -------------------------------------------------------------------- */

/* Reads an integer key: 1 if present, 0 if absent or null, negative error. */
static int cfg_int(const cJSON *cfg, const char *key, const char *path, long long lo, long long hi, int *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!j || cJSON_IsNull(j)) return 0;
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble))
        return phiq_fail(PHIQ_EFORMAT, "%s: '%s' must be an integer", path, key);
    if (j->valuedouble < (double)lo || j->valuedouble > (double)hi)
        return phiq_fail(PHIQ_EFORMAT, "%s: '%s' = %.0f out of range [%lld, %lld]", path, key, j->valuedouble, lo, hi);
    *out = (int)j->valuedouble;
    return 1;
}

static int cfg_req_int(const cJSON *cfg, const char *key, const char *path, int *out) {
    int rc = cfg_int(cfg, key, path, 1, HF_MAX_DIM, out);
    if (rc == 0) return phiq_fail(PHIQ_EFORMAT, "%s: missing '%s'", path, key);
    return rc < 0 ? rc : 0;
}

static int cfg_num(const cJSON *cfg, const char *key, const char *path, double *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!j || cJSON_IsNull(j)) return 0;
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble)) return phiq_fail(PHIQ_EFORMAT, "%s: '%s' must be a number", path, key);
    *out = j->valuedouble;
    return 1;
}

static void add_eos(phiq_hparams *hp, int id) {
    if (id < 0) return;
    for (int i = 0; i < hp->n_eos; i++)
        if (hp->eos_ids[i] == id) return;
    if (hp->n_eos < PHIQ_MAX_EOS) hp->eos_ids[hp->n_eos++] = id;
}

/* eos_token_id: an int or a list of ints. */
static int read_eos(phiq_hparams *hp, const cJSON *cfg, const char *path) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(cfg, "eos_token_id");
    if (!j || cJSON_IsNull(j)) return 0;
    if (cJSON_IsNumber(j)) {
        int id;
        int rc = cfg_int(cfg, "eos_token_id", path, 0, HF_MAX_DIM, &id);
        if (rc < 0) return rc;
        add_eos(hp, id);
        return 0;
    }
    if (!cJSON_IsArray(j)) return phiq_fail(PHIQ_EFORMAT, "%s: 'eos_token_id' must be an integer or a list", path);
    for (const cJSON *e = j->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 0 || e->valuedouble > HF_MAX_DIM)
            return phiq_fail(PHIQ_EFORMAT, "%s: 'eos_token_id' list holds a non-id", path);
        add_eos(hp, (int)e->valuedouble);
    }
    return 0;
}

static int read_factors(const cJSON *rs, const char *key, const char *path, int want, float *dst) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(rs, key);
    if (!cJSON_IsArray(a)) return phiq_fail(PHIQ_EFORMAT, "%s: rope_scaling.%s missing (LongRoPE needs it)", path, key);
    int n = cJSON_GetArraySize(a);
    if (n != want)
        return phiq_fail(PHIQ_EFORMAT, "%s: rope_scaling.%s has %d entries, expected %d (rotary dims / 2)", path, key, n, want);
    int i = 0;
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || e->valuedouble <= 0)
            return phiq_fail(PHIQ_EFORMAT, "%s: rope_scaling.%s[%d] is not a positive number", path, key, i);
        dst[i] = (float)e->valuedouble;
    }
    return 0;
}

/* A key that upstream would default but phiq requires (so a config lacking
 * it is named, not silently given Phi-3-small-8k's value): an integer >= lo. */
static int cfg_must_int(const cJSON *cfg, const char *key, const char *path, long long lo, int *out) {
    if (!cJSON_GetObjectItemCaseSensitive(cfg, key)) return phiq_fail(PHIQ_EFORMAT, "%s: missing '%s' (Phi-3-small)", path, key);
    int rc = cfg_int(cfg, key, path, lo, HF_MAX_DIM, out);
    if (rc == 0) return phiq_fail(PHIQ_EFORMAT, "%s: '%s' is null", path, key);
    return rc < 0 ? rc : 0;
}

/* Phi3SmallConfig (configuration_phi3_small.py) and what modeling_phi3_small.py
 * derives from it; defaults are Phi3SmallConfig's. */
static int parse_phi3small(phiq_hparams *hp, const char *path, const cJSON *cfg) {
    int rc;
    hp->arch = PHIQ_ARCH_PHI3SMALL;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(cfg, "hidden_act");
    if (act && !(cJSON_IsString(act) && !strcmp(act->valuestring, "gegelu")))
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: hidden_act must be \"gegelu\" for Phi3SmallForCausalLM", path);
    if ((rc = cfg_must_int(cfg, "vocab_size", path, 1, &hp->n_vocab)) || (rc = cfg_must_int(cfg, "hidden_size", path, 1, &hp->n_embd)) ||
        (rc = cfg_must_int(cfg, "num_attention_heads", path, 1, &hp->n_head)) ||
        (rc = cfg_must_int(cfg, "num_key_value_heads", path, 1, &hp->n_head_kv)))
        return rc;
    rc = cfg_int(cfg, "num_hidden_layers", path, 1, HF_MAX_LAYERS, &hp->n_layer);
    if (rc <= 0) return rc < 0 ? rc : phiq_fail(PHIQ_EFORMAT, "%s: missing 'num_hidden_layers'", path);
    if (hp->n_embd % hp->n_head)
        return phiq_fail(PHIQ_EFORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", path, hp->n_embd, hp->n_head);
    if (hp->n_head % hp->n_head_kv)
        return phiq_fail(PHIQ_EFORMAT, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", path, hp->n_head, hp->n_head_kv);
    hp->head_dim = hp->n_rot = hp->n_embd / hp->n_head; /* the attention ignores any head_dim key */
    if (hp->n_rot % 2) return phiq_fail(PHIQ_EFORMAT, "%s: head dimension %d must be even (rotary)", path, hp->n_rot);
    /* intermediate_size: ff_intermediate_size, or ff_dim_multiplier * (hidden // 3) * 2 rounded up to 256 */
    int ffi = 0, ffm = 0;
    if ((rc = cfg_int(cfg, "ff_intermediate_size", path, 1, HF_MAX_DIM, &ffi)) < 0 ||
        (rc = cfg_int(cfg, "ff_dim_multiplier", path, 1, 1 << 12, &ffm)) < 0)
        return rc;
    if (!ffi == !ffm)
        return phiq_fail(PHIQ_EFORMAT, "%s: exactly one of ff_intermediate_size and ff_dim_multiplier must be set", path);
    if (ffi) hp->n_ff = ffi;
    else {
        int64_t ff = (int64_t)ffm * (hp->n_embd / 3) * 2;
        const cJSON *pad = cJSON_GetObjectItemCaseSensitive(cfg, "gegelu_pad_to_256");
        if (!pad || cJSON_IsTrue(pad)) ff = (ff + 255) / 256 * 256;
        if (ff < 1 || ff > HF_MAX_DIM) return phiq_fail(PHIQ_EFORMAT, "%s: ff_dim_multiplier %d gives an implausible size", path, ffm);
        hp->n_ff = (int)ff;
    }
    double eps = 1e-5, base = 1e6, pscale = 1.0, limit = 20.0;
    if ((rc = cfg_num(cfg, "layer_norm_epsilon", path, &eps)) < 0 || (rc = cfg_num(cfg, "rope_embedding_base", path, &base)) < 0 ||
        (rc = cfg_num(cfg, "rope_position_scale", path, &pscale)) < 0)
        return rc;
    if (!(eps > 0 && eps < 1)) return phiq_fail(PHIQ_EFORMAT, "%s: layer_norm_epsilon %g out of range", path, eps);
    if (!(base > 0)) return phiq_fail(PHIQ_EFORMAT, "%s: rope_embedding_base must be positive", path);
    if (!(pscale > 0 && pscale < 1e6)) return phiq_fail(PHIQ_EFORMAT, "%s: rope_position_scale %g out of range", path, pscale);
    const cJSON *gl = cJSON_GetObjectItemCaseSensitive(cfg, "gegelu_limit");
    if (gl && cJSON_IsNull(gl)) limit = INFINITY; /* gegelu(limit=None): no clamp */
    else if ((rc = cfg_num(cfg, "gegelu_limit", path, &limit)) < 0) return rc;
    if (!(limit > 0)) return phiq_fail(PHIQ_EFORMAT, "%s: gegelu_limit %g must be positive", path, limit);
    hp->norm_eps = (float)eps;
    hp->rope_theta = (float)base;
    hp->rope_pos_scale = (float)pscale;
    hp->gegelu_limit = (float)limit;
    /* muP: embeddings x mup_embedding_multiplier (when > 0), logits / mup_width_multiplier
     * (when non-zero), attention scale mup_attn_multiplier / head_dim under mup_use_scaling */
    double emb = 10.0, width = 8.0, attn = 1.0;
    if ((rc = cfg_num(cfg, "mup_embedding_multiplier", path, &emb)) < 0 || (rc = cfg_num(cfg, "mup_width_multiplier", path, &width)) < 0 ||
        (rc = cfg_num(cfg, "mup_attn_multiplier", path, &attn)) < 0)
        return rc;
    const cJSON *mus = cJSON_GetObjectItemCaseSensitive(cfg, "mup_use_scaling");
    if (!(fabs(emb) < 1e6 && fabs(width) < 1e6 && attn > 0 && attn < 1e6))
        return phiq_fail(PHIQ_EFORMAT, "%s: mup multipliers out of range", path);
    hp->emb_mult = emb > 0 ? (float)emb : 0.0f;
    hp->logit_div = (float)width;
    hp->attn_scale = (!mus || cJSON_IsTrue(mus)) ? (float)(attn / hp->head_dim) : (float)(1.0 / sqrt((double)hp->head_dim));
    /* block-sparse attention: required (no layer shape follows from defaults) */
    if ((rc = cfg_must_int(cfg, "blocksparse_block_size", path, 1, &hp->bs_block)) ||
        (rc = cfg_must_int(cfg, "blocksparse_num_local_blocks", path, 1, &hp->bs_local)) ||
        (rc = cfg_must_int(cfg, "blocksparse_vert_stride", path, 1, &hp->bs_stride)))
        return rc;
    const cJSON *dense = cJSON_GetObjectItemCaseSensitive(cfg, "dense_attention_every_n_layers");
    if (!dense) return phiq_fail(PHIQ_EFORMAT, "%s: missing 'dense_attention_every_n_layers' (Phi-3-small; null for none)", path);
    if ((rc = cfg_int(cfg, "dense_attention_every_n_layers", path, 0, HF_MAX_LAYERS, &hp->bs_dense_every)) < 0) return rc;
    const cJSON *homo = cJSON_GetObjectItemCaseSensitive(cfg, "blocksparse_homo_head_pattern");
    if (homo && !cJSON_IsBool(homo)) return phiq_fail(PHIQ_EFORMAT, "%s: 'blocksparse_homo_head_pattern' must be true or false", path);
    hp->bs_homo = cJSON_IsTrue(homo);
    /* the triton layer's own checks: kernel blocks of a power of two >= 16 that divide the sparse block */
    int kb = 64;
    if ((rc = cfg_int(cfg, "blocksparse_triton_kernel_block_size", path, 1, HF_MAX_DIM, &kb)) < 0) return rc;
    if (kb < 16 || (kb & (kb - 1)) || hp->bs_block % kb)
        return phiq_fail(PHIQ_EFORMAT, "%s: blocksparse_block_size %d must be a multiple of blocksparse_triton_kernel_block_size %d (a power of two >= 16)",
                         path, hp->bs_block, kb);
    hp->n_ctx_train = 8192;
    if ((rc = cfg_int(cfg, "max_position_embeddings", path, 1, 1 << 30, &hp->n_ctx_train)) < 0) return rc;
    /* LongRoPE (128k): LongRopeConfig needs short_factor, long_factor, original_max_position_embeddings;
     * the short branch scales cos/sin by short_mscale (if > 0, else 1), the long one by long_mscale (if > 0,
     * else sqrt(1 + ln(max/orig) / ln(orig))) -- positional_embedding.py, unlike Phi3ForCausalLM */
    hp->rope_attn_factor = hp->rope_attn_factor_long = 1.0f;
    hp->n_ctx_orig = hp->n_ctx_train;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) {
        if (!cJSON_IsObject(rs)) return phiq_fail(PHIQ_EFORMAT, "%s: rope_scaling must be an object or null", path);
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "type");
        if (ty && !(cJSON_IsString(ty) && (!strcmp(ty->valuestring, "longrope") || !strcmp(ty->valuestring, "su"))))
            return phiq_fail(PHIQ_EUNSUPPORTED, "%s: rope_scaling type must be longrope or su (Phi-3-small)", path);
        if ((rc = cfg_int(rs, "original_max_position_embeddings", path, 1, 1 << 30, &hp->n_ctx_orig)) <= 0)
            return rc < 0 ? rc : phiq_fail(PHIQ_EFORMAT, "%s: rope_scaling.original_max_position_embeddings missing", path);
        int nf = hp->n_rot / 2;
        if (nf > PHIQ_MAX_ROPE_FACTORS) return phiq_fail(PHIQ_EUNSUPPORTED, "%s: %d LongRoPE factors (at most %d)", path, nf, PHIQ_MAX_ROPE_FACTORS);
        if ((rc = read_factors(rs, "short_factor", path, nf, hp->rope_short)) || (rc = read_factors(rs, "long_factor", path, nf, hp->rope_long)))
            return rc;
        hp->n_rope_factors = nf;
        double ms = -1, ml = -1, s = (double)hp->n_ctx_train / hp->n_ctx_orig;
        if ((rc = cfg_num(rs, "short_mscale", path, &ms)) < 0 || (rc = cfg_num(rs, "long_mscale", path, &ml)) < 0) return rc;
        if (!(ml > 0)) ml = s > 1 && hp->n_ctx_orig > 1 ? sqrt(1.0 + log(s) / log((double)hp->n_ctx_orig)) : 1.0;
        if (!(ms > 0)) ms = 1.0;
        if (!(ms < 100) || !(ml < 100)) return phiq_fail(PHIQ_EFORMAT, "%s: rope_scaling mscale out of range (0, 100)", path);
        hp->rope_attn_factor = (float)ms;
        hp->rope_attn_factor_long = (float)ml;
        hp->rope_pos_scale = 1.0f; /* the LongRoPE branch does not scale positions */
    }
    /* dummy_token_indices: the config's list if it has one, else Phi3SmallTokenizer's (ids below vocab_size) */
    const cJSON *dl = cJSON_GetObjectItemCaseSensitive(cfg, "dummy_token_indices");
    if (dl && !cJSON_IsNull(dl)) {
        if (!cJSON_IsArray(dl)) return phiq_fail(PHIQ_EFORMAT, "%s: dummy_token_indices must be a list of ids", path);
        const cJSON *e;
        cJSON_ArrayForEach(e, dl) {
            if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 0 || e->valuedouble >= hp->n_vocab)
                return phiq_fail(PHIQ_EFORMAT, "%s: dummy_token_indices holds something other than an id below vocab_size %d", path, hp->n_vocab);
            if (hp->n_dummy == PHIQ_MAX_DUMMY) return phiq_fail(PHIQ_EUNSUPPORTED, "%s: more than %d dummy_token_indices", path, PHIQ_MAX_DUMMY);
            hp->dummy_ids[hp->n_dummy++] = (int)e->valuedouble;
        }
    } else {
        char nm[32];
        bool dummy;
        for (int id = PHIQ_PHI3SMALL_FIRST_SPECIAL; id < PHIQ_PHI3SMALL_N_VOCAB && id < hp->n_vocab; id++)
            if (phiq_phi3small_special(id, nm, sizeof nm, &dummy) && dummy) hp->dummy_ids[hp->n_dummy++] = id;
    }
    /* LayerNorms and every linear carry biases; lm_head is tied unless tie_word_embeddings is false */
    hp->attn_bias = true;
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings");
    hp->tied_embeddings = !tie || cJSON_IsTrue(tie);
    hp->bos_id = 100257; /* Phi3SmallConfig's defaults: bos = eos = <|endoftext|>, no pad */
    hp->pad_id = -1;
    if ((rc = cfg_int(cfg, "bos_token_id", path, 0, HF_MAX_DIM, &hp->bos_id)) < 0) return rc;
    if ((rc = cfg_int(cfg, "pad_token_id", path, 0, HF_MAX_DIM, &hp->pad_id)) < 0) return rc;
    if (!cJSON_GetObjectItemCaseSensitive(cfg, "eos_token_id")) add_eos(hp, 100257);
    return read_eos(hp, cfg, path);
}

static int parse_config(phiq_hf *hf, const char *path, const cJSON *cfg) {
    phiq_hparams *hp = &hf->hp;
    memset(hp, 0, sizeof *hp);
    if (!cJSON_IsObject(cfg)) return phiq_fail(PHIQ_EFORMAT, "%s: not a JSON object", path);
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? archs->child : NULL;
    if (!cJSON_IsString(a0)) return phiq_fail(PHIQ_EFORMAT, "%s: missing 'architectures'", path);
    const char *an = a0->valuestring;
    if (!strcmp(an, "Phi3SmallForCausalLM")) {
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(cfg, "model_type");
        hf->arch_name = strdup(an);
        hf->model_type = strdup(cJSON_IsString(mt) ? mt->valuestring : "");
        if (!hf->arch_name || !hf->model_type) return phiq_fail(PHIQ_ENOMEM, "out of memory");
        return parse_phi3small(hp, path, cfg);
    }
    if (!strcmp(an, "Phi3ForCausalLM")) hp->arch = PHIQ_ARCH_PHI3;
    else if (!strcmp(an, "PhiForCausalLM")) hp->arch = PHIQ_ARCH_PHI2;
    else if (!strcmp(an, "PhiMoEForCausalLM") || !strcmp(an, "PhimoeForCausalLM")) hp->arch = PHIQ_ARCH_PHIMOE;
    else
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: unsupported architecture '%.64s' (phiq handles Phi3ForCausalLM, Phi3SmallForCausalLM, PhiForCausalLM, PhiMoEForCausalLM)", path, an);
    hf->arch_name = strdup(an);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(cfg, "model_type");
    hf->model_type = strdup(cJSON_IsString(mt) ? mt->valuestring : "");
    if (!hf->arch_name || !hf->model_type) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    bool phi2 = hp->arch == PHIQ_ARCH_PHI2, moe = hp->arch == PHIQ_ARCH_PHIMOE;
    int rc;
    if ((rc = cfg_req_int(cfg, "vocab_size", path, &hp->n_vocab)) ||
        (rc = cfg_req_int(cfg, "hidden_size", path, &hp->n_embd)) ||
        (rc = cfg_req_int(cfg, "intermediate_size", path, &hp->n_ff)) ||
        (rc = cfg_req_int(cfg, "num_attention_heads", path, &hp->n_head)))
        return rc;
    rc = cfg_int(cfg, "num_hidden_layers", path, 1, HF_MAX_LAYERS, &hp->n_layer);
    if (rc <= 0) return rc < 0 ? rc : phiq_fail(PHIQ_EFORMAT, "%s: missing 'num_hidden_layers'", path);
    hp->n_head_kv = hp->n_head;
    if ((rc = cfg_int(cfg, "num_key_value_heads", path, 1, HF_MAX_DIM, &hp->n_head_kv)) < 0) return rc;
    if (hp->n_head % hp->n_head_kv != 0)
        return phiq_fail(PHIQ_EFORMAT, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", path, hp->n_head, hp->n_head_kv);
    if (hp->n_embd % hp->n_head != 0)
        return phiq_fail(PHIQ_EFORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", path, hp->n_embd, hp->n_head);
    hp->head_dim = hp->n_embd / hp->n_head;
    if ((rc = cfg_int(cfg, "head_dim", path, 1, HF_MAX_DIM, &hp->head_dim)) < 0) return rc;
    if ((int64_t)hp->head_dim * hp->n_head > HF_MAX_DIM)
        return phiq_fail(PHIQ_EFORMAT, "%s: head_dim %d × %d heads is implausible", path, hp->head_dim, hp->n_head);
    /* transformers' defaults when keys are absent */
    hp->n_ctx_train = phi2 ? 2048 : moe ? 131072 : 4096;
    if ((rc = cfg_int(cfg, "max_position_embeddings", path, 1, 1 << 30, &hp->n_ctx_train)) < 0) return rc;
    double theta = 10000.0, eps = 1e-5, prf = phi2 ? 0.5 : 1.0;
    if ((rc = cfg_num(cfg, "rope_theta", path, &theta)) < 0) return rc;
    if ((rc = cfg_num(cfg, phi2 ? "layer_norm_eps" : "rms_norm_eps", path, &eps)) < 0) return rc;
    if ((rc = cfg_num(cfg, "partial_rotary_factor", path, &prf)) < 0) return rc;
    if (!(theta > 0)) return phiq_fail(PHIQ_EFORMAT, "%s: rope_theta must be positive", path);
    if (!(eps > 0 && eps < 1)) return phiq_fail(PHIQ_EFORMAT, "%s: norm epsilon %g out of range", path, eps);
    if (!(prf > 0 && prf <= 1)) return phiq_fail(PHIQ_EFORMAT, "%s: partial_rotary_factor %g out of range (0, 1]", path, prf);
    hp->rope_theta = (float)theta;
    hp->norm_eps = (float)eps;
    /* as llama.cpp's converter: int(partial_rotary_factor * hidden_size) // n_head */
    hp->n_rot = (int)(prf * (double)hp->n_embd) / hp->n_head;
    if (hp->n_rot < 2 || hp->n_rot % 2 || hp->n_rot > hp->head_dim)
        return phiq_fail(PHIQ_EFORMAT, "%s: rotary dimension %d (partial_rotary_factor %g) must be even and within head_dim %d", path, hp->n_rot, prf, hp->head_dim);

    int sw = 0;
    if ((rc = cfg_int(cfg, "sliding_window", path, 0, 1 << 30, &sw)) < 0) return rc;
    hp->sliding_window = sw;
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings");
    hp->tied_embeddings = cJSON_IsTrue(tie);
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "attention_bias");
    hp->attn_bias = phi2 || cJSON_IsTrue(ab);
    if (moe) {
        if ((rc = cfg_int(cfg, "num_local_experts", path, 1, 4096, &hp->n_expert)) <= 0)
            return rc < 0 ? rc : phiq_fail(PHIQ_EFORMAT, "%s: missing 'num_local_experts'", path);
        if ((rc = cfg_int(cfg, "num_experts_per_tok", path, 1, 4096, &hp->n_expert_used)) <= 0)
            return rc < 0 ? rc : phiq_fail(PHIQ_EFORMAT, "%s: missing 'num_experts_per_tok'", path);
        if (hp->n_expert_used > hp->n_expert)
            return phiq_fail(PHIQ_EFORMAT, "%s: num_experts_per_tok %d > num_local_experts %d", path, hp->n_expert_used, hp->n_expert);
        double jit = 0.01; /* PhimoeConfig's default */
        if ((rc = cfg_num(cfg, "router_jitter_noise", path, &jit)) < 0) return rc;
        if (!(jit >= 0 && jit < 1))
            return phiq_fail(PHIQ_EFORMAT, "%s: router_jitter_noise %g out of range [0, 1)", path, jit);
        hp->router_jitter = (float)jit;
    }

    /* RoPE scaling */
    hp->n_ctx_orig = 0;
    if ((rc = cfg_int(cfg, "original_max_position_embeddings", path, 1, 1 << 30, &hp->n_ctx_orig)) < 0) return rc;
    hp->rope_attn_factor = hp->rope_attn_factor_long = 1.0f;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) {
        if (!cJSON_IsObject(rs)) return phiq_fail(PHIQ_EFORMAT, "%s: rope_scaling must be an object or null", path);
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "type");
        if (!cJSON_IsString(ty)) ty = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
        if (!cJSON_IsString(ty)) return phiq_fail(PHIQ_EFORMAT, "%s: rope_scaling has no type", path);
        const char *t = ty->valuestring;
        if (!strcmp(t, "default")) {
            /* plain RoPE */
        } else if (!strcmp(t, "longrope") || !strcmp(t, "su") || !strcmp(t, "yarn")) {
            if (!hp->n_ctx_orig &&
                (rc = cfg_int(rs, "original_max_position_embeddings", path, 1, 1 << 30, &hp->n_ctx_orig)) < 0)
                return rc;
            int nf = hp->n_rot / 2;
            if (nf > PHIQ_MAX_ROPE_FACTORS) return phiq_fail(PHIQ_EUNSUPPORTED, "%s: %d LongRoPE factors (at most %d)", path, nf, PHIQ_MAX_ROPE_FACTORS);
            if ((rc = read_factors(rs, "short_factor", path, nf, hp->rope_short)) ||
                (rc = read_factors(rs, "long_factor", path, nf, hp->rope_long)))
                return rc;
            hp->n_rope_factors = nf;
            int orig = hp->n_ctx_orig ? hp->n_ctx_orig : hp->n_ctx_train;
            double s = (double)hp->n_ctx_train / orig, af = 1.0;
            if (s > 1 && orig > 1) af = sqrt(1.0 + log(s) / log((double)orig));
            /* explicit overrides: attention_factor (transformers); PhiMoE's
             * rotary embedding instead takes short_mscale up to the original
             * context and long_mscale past it (PhimoeConfig requires both) */
            if ((rc = cfg_num(rs, "attention_factor", path, &af)) < 0) return rc;
            double afl = af;
            if (moe) {
                const char *mk[2] = {"short_mscale", "long_mscale"};
                double *mv[2] = {&af, &afl};
                for (int i = 0; i < 2; i++) {
                    if ((rc = cfg_num(rs, mk[i], path, mv[i])) < 0) return rc;
                    if (rc == 0) return phiq_fail(PHIQ_EFORMAT, "%s: rope_scaling.%s missing (PhiMoE's LongRoPE needs it)", path, mk[i]);
                }
            }
            if (!(af > 0 && af < 100) || !(afl > 0 && afl < 100))
                return phiq_fail(PHIQ_EFORMAT, "%s: rope attention factor %g / %g out of range (0, 100)", path, af, afl);
            hp->rope_attn_factor = (float)af;
            hp->rope_attn_factor_long = (float)afl;
        } else {
            return phiq_fail(PHIQ_EUNSUPPORTED, "%s: rope_scaling type '%.32s' not supported (phiq handles longrope/su)", path, t);
        }
    }
    if (!hp->n_ctx_orig) hp->n_ctx_orig = hp->n_ctx_train;

    hp->bos_id = hp->pad_id = -1;
    if ((rc = cfg_int(cfg, "bos_token_id", path, 0, HF_MAX_DIM, &hp->bos_id)) < 0) return rc;
    if ((rc = cfg_int(cfg, "pad_token_id", path, 0, HF_MAX_DIM, &hp->pad_id)) < 0) return rc;
    return read_eos(hp, cfg, path);
}

static cJSON *load_json(const char *path) {
    char *txt;
    size_t len;
    struct stat st;
    /* JSON side files are small; refuse a huge one before reading it whole */
    if (stat(path, &st) == 0 && st.st_size > (64 << 20))
        return phiq_fail_null(PHIQ_EFORMAT, "%s: %lld bytes is implausibly large for this file", path, (long long)st.st_size);
    if (phiq_read_file(path, &txt, &len) != 0) return NULL;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(txt, len, &end, 0);
    if (!j) {
        const char *ep = cJSON_GetErrorPtr();
        long at = ep && ep >= txt && ep <= txt + len ? (long)(ep - txt) : -1;
        free(txt);
        return phiq_fail_null(PHIQ_EFORMAT, "%s: invalid JSON (near byte %ld)", path, at);
    }
    free(txt);
    return j;
}

/* ---- shards -------------------------------------------------------------------------- */

static int add_shard(phiq_hf *hf, const char *path) {
    phiq_st *st = phiq_st_open(path);
    if (!st) return PHIQ_EFORMAT;
    phiq_st **ns = realloc(hf->shards, (size_t)(hf->n_shards + 1) * sizeof *ns);
    if (!ns) { phiq_st_close(st); return phiq_fail(PHIQ_ENOMEM, "out of memory"); }
    hf->shards = ns;
    hf->shards[hf->n_shards++] = st;
    return 0;
}

static int open_index(phiq_hf *hf, const char *ipath) {
    cJSON *idx = load_json(ipath);
    if (!idx) return PHIQ_EFORMAT;
    int rc = 0, n_names = 0;
    const char **names = NULL; /* shard file names, aligned with hf->shards */
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    if (!cJSON_IsObject(wm) || !wm->child) { rc = phiq_fail(PHIQ_EFORMAT, "%s: no 'weight_map'", ipath); goto out; }
    names = calloc(HF_MAX_SHARDS, sizeof *names);
    if (!names) { rc = phiq_fail(PHIQ_ENOMEM, "out of memory"); goto out; }
    /* distinct shard names in first-mention order; then each mapped tensor
     * must really be in the shard the index names */
    for (const cJSON *e = wm->child; e && !rc; e = e->next) {
        if (!cJSON_IsString(e)) { rc = phiq_fail(PHIQ_EFORMAT, "%s: weight_map['%.64s'] is not a file name", ipath, e->string); break; }
        const char *f = e->valuestring;
        int k = 0;
        while (k < n_names && strcmp(names[k], f)) k++;
        if (k == n_names) {
            if (!*f || strchr(f, '/') || !strcmp(f, ".") || !strcmp(f, "..")) {
                rc = phiq_fail(PHIQ_EFORMAT, "%s: shard name '%.64s' must be a plain file name in the directory", ipath, f);
                break;
            }
            if (n_names >= HF_MAX_SHARDS) { rc = phiq_fail(PHIQ_EFORMAT, "%s: too many shards", ipath); break; }
            char *sp = phiq_path_join(hf->dir, f);
            if (!sp) { rc = phiq_fail(PHIQ_ENOMEM, "out of memory"); break; }
            if (!phiq_file_exists(sp)) rc = phiq_fail(PHIQ_EIO, "%s: shard '%s' named by the index is missing", ipath, f);
            else rc = add_shard(hf, sp);
            free(sp);
            if (rc) break;
            names[n_names++] = f;
        }
        if (!phiq_st_find(hf->shards[k], e->string))
            rc = phiq_fail(PHIQ_EFORMAT, "%s: tensor '%.100s' is not in shard '%s' as the index says", ipath, e->string, f);
    }
out:
    free(names);
    cJSON_Delete(idx);
    return rc;
}

static int build_lookup(phiq_hf *hf) {
    int n = 0;
    for (int s = 0; s < hf->n_shards; s++) n += phiq_st_n_tensors(hf->shards[s]);
    hf->tensors = malloc(((size_t)n + 1) * sizeof *hf->tensors);
    hf->hcap = 16;
    while (hf->hcap < 2 * n) hf->hcap *= 2;
    hf->hash = calloc((size_t)hf->hcap, sizeof *hf->hash);
    if (!hf->tensors || !hf->hash) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    for (int s = 0; s < hf->n_shards; s++)
        for (int i = 0; i < phiq_st_n_tensors(hf->shards[s]); i++) {
            const phiq_st_tensor *t = phiq_st_tensor_at(hf->shards[s], i);
            uint32_t h = hf_hash(t->name) & (uint32_t)(hf->hcap - 1);
            while (hf->hash[h]) {
                const phiq_st_tensor *o = hf->tensors[hf->hash[h] - 1];
                if (!strcmp(o->name, t->name))
                    return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s' is in both %s and %s", hf->dir, t->name, o->file, t->file);
                h = (h + 1) & (uint32_t)(hf->hcap - 1);
            }
            hf->tensors[hf->n_tensors] = t;
            hf->hash[h] = ++hf->n_tensors;
            hf->total_bytes += t->nbytes;
        }
    return 0;
}

/* ---- MLX quantization ------------------------------------------------------------------ */

/* config "quantization": affine only; the defaults must be what MLX supports */
static int read_quantization(phiq_hf *hf, const char *path, const cJSON *cfg) {
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(cfg, "quantization");
    if (!q || cJSON_IsNull(q)) return 0;
    if (!cJSON_IsObject(q)) return phiq_fail(PHIQ_EFORMAT, "%s: 'quantization' must be an object", path);
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(q, "mode");
    if (mode && !(cJSON_IsString(mode) && !strcmp(mode->valuestring, "affine")))
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: MLX quantization mode '%.32s' is not supported (affine only)", path,
                         cJSON_IsString(mode) ? mode->valuestring : "?");
    if (!(hf->quant = cJSON_Duplicate(q, 1))) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    return 0;
}

bool phiq_hf_is_mlx(const phiq_hf *hf) { return hf->quant != NULL; }

/* bits and group size of module `mpath`: its own entry, else the defaults
 * (a null or absent group size is MLX's default, 64) */
static int affine_settings(const phiq_hf *hf, const char *mpath, int *bits, int *group) {
    const cJSON *q = hf->quant, *e = cJSON_GetObjectItemCaseSensitive(q, mpath);
    if (cJSON_IsObject(e)) q = e;
    else if (e && !cJSON_IsBool(e)) return phiq_fail(PHIQ_EFORMAT, "%s: quantization['%.96s'] must be an object", hf->dir, mpath);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(q, "bits"), *g = cJSON_GetObjectItemCaseSensitive(q, "group_size");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(q, "mode");
    if (m && !(cJSON_IsString(m) && !strcmp(m->valuestring, "affine")))
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: module %.96s uses a quantization mode other than affine", hf->dir, mpath);
    *bits = cJSON_IsNumber(b) ? (int)b->valuedouble : -1;
    *group = !g || cJSON_IsNull(g) ? 64 : cJSON_IsNumber(g) ? (int)g->valuedouble : -1;
    if (!(*bits == 2 || *bits == 3 || *bits == 4 || *bits == 5 || *bits == 6 || *bits == 8) ||
        !(*group == 32 || *group == 64 || *group == 128))
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: module %.96s: %d bits, group size %d (MLX: bits 2,3,4,5,6,8; groups 32,64,128)",
                         hf->dir, mpath, *bits, *group);
    return 0;
}

int phiq_hf_affine_find(const phiq_hf *hf, const char *weight_name, int64_t n_in, phiq_hf_affine *out) {
    memset(out, 0, sizeof *out);
    size_t n = strlen(weight_name);
    if (!hf->quant || n < 8 || strcmp(weight_name + n - 7, ".weight") || n > 480) return 0;
    char mpath[512], nm[520];
    snprintf(mpath, sizeof mpath, "%.*s", (int)(n - 7), weight_name);
    snprintf(nm, sizeof nm, "%s.scales", mpath);
    const phiq_st_tensor *sc = phiq_hf_find(hf, nm);
    if (!sc) return 0;
    snprintf(nm, sizeof nm, "%s.biases", mpath);
    const phiq_st_tensor *bi = phiq_hf_find(hf, nm), *w = phiq_hf_find(hf, weight_name);
    if (!bi || !w) return phiq_fail(PHIQ_EFORMAT, "%s: %s.scales without .biases and .weight", hf->dir, mpath);
    int rc = affine_settings(hf, mpath, &out->bits, &out->group_size);
    if (rc) return rc;
    int nd = w->n_dims;
    if (n_in < 0) n_in = sc->n_dims >= 2 ? sc->shape[sc->n_dims - 1] * out->group_size : 0;
    bool ok = w->dtype == PHIQ_ST_U32 && phiq_st_is_float(sc->dtype) && bi->dtype == sc->dtype && nd >= 2 &&
              sc->n_dims == nd && bi->n_dims == nd && n_in % out->group_size == 0 &&
              w->shape[nd - 1] == n_in * out->bits / 32 && sc->shape[nd - 1] == n_in / out->group_size &&
              bi->shape[nd - 1] == sc->shape[nd - 1];
    for (int d = 0; ok && d < nd - 1; d++) ok = sc->shape[d] == w->shape[d] && bi->shape[d] == w->shape[d];
    if (!ok)
        return phiq_fail(PHIQ_EFORMAT, "%s: %s: weight/scales/biases do not describe %d-bit groups of %d over rows of %lld (dtypes %s/%s/%s)",
                         w->file, mpath, out->bits, out->group_size, (long long)n_in, w->dtype_name, sc->dtype_name,
                         bi->dtype_name);
    out->weight = w;
    out->scales = sc;
    out->biases = bi;
    return 1;
}

/* ---- required tensors ----------------------------------------------------------------- */

/* A matrix [lead..., d0 rows, d1 columns] (nl leading dims), plain or, in an
 * MLX checkpoint, affine-quantized. */
static int need_mat(phiq_hf *hf, const char *name, int nl, const int64_t *lead, int64_t d0, int64_t d1) {
    phiq_hf_affine a;
    int rc = phiq_hf_affine_find(hf, name, d1, &a);
    if (rc < 0) return rc;
    const phiq_st_tensor *t = rc ? a.scales : phiq_hf_find(hf, name);
    if (!t)
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s' missing (config declares %d layers)", hf->dir, name, hf->hp.n_layer);
    bool ok = t->n_dims == nl + 2 && t->shape[nl] == d0 && (rc || t->shape[nl + 1] == d1);
    for (int i = 0; ok && i < nl; i++) ok = t->shape[i] == lead[i];
    if (!ok)
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s' does not have the %lld x %lld shape the config implies", t->file,
                         name, (long long)d0, (long long)d1);
    if (!rc && !phiq_st_is_float(t->dtype))
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: tensor '%s' has dtype %s (phiq converts F32, F16, BF16)", t->file, name, t->dtype_name);
    return 0;
}

static int need(phiq_hf *hf, const char *name, int nd, int64_t d0, int64_t d1) {
    if (nd == 2 && hf->quant) return need_mat(hf, name, 0, NULL, d0, d1);
    const phiq_st_tensor *t = phiq_hf_find(hf, name);
    if (!t)
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s' missing (config declares %d layers)", hf->dir, name, hf->hp.n_layer);
    bool ok = t->n_dims == nd && t->shape[0] == d0 && (nd < 2 || t->shape[1] == d1);
    if (!ok) {
        char got[128] = "", want[64];
        size_t k = 0;
        for (int i = 0; i < t->n_dims && k < sizeof got - 24; i++)
            k += (size_t)snprintf(got + k, sizeof got - k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        if (nd == 1) snprintf(want, sizeof want, "%lld", (long long)d0);
        else snprintf(want, sizeof want, "%lld, %lld", (long long)d0, (long long)d1);
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s' has shape [%s], config implies [%s]", t->file, name, got, want);
    }
    if (!phiq_st_is_float(t->dtype))
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: tensor '%s' has dtype %s (phiq converts F32, F16, BF16)", t->file, name, t->dtype_name);
    return 0;
}

static int check_tensors(phiq_hf *hf) {
    phiq_hparams *hp = &hf->hp;
    int64_t H = hp->n_embd, V = hp->n_vocab, I = hp->n_ff, d = hp->head_dim;
    int64_t q = hp->n_head * d, kv = hp->n_head_kv * d;
    char nm[160];
    int rc;
#define NEED1(n, a) do { if ((rc = need(hf, n, 1, a, 0))) return rc; } while (0)
#define NEED2(n, a, b) do { if ((rc = need(hf, n, 2, a, b))) return rc; } while (0)
#define L(fmt) (snprintf(nm, sizeof nm, "model.layers.%d." fmt, l), nm)
/* a module with a bias: its weight [a, b] (or [a] for a norm, b = 0), then its bias [a] */
#define NEED_B(mod, a, b) \
    do { \
        if ((rc = need(hf, L(mod ".weight"), (b) ? 2 : 1, a, b)) || (rc = need(hf, L(mod ".bias"), 1, a, 0))) return rc; \
    } while (0)
    if (!phiq_hf_find(hf, "lm_head.weight")) hp->tied_embeddings = true;
    NEED2("model.embed_tokens.weight", V, H);
    for (int l = 0; l < hp->n_layer; l++) {
        switch (hp->arch) {
        case PHIQ_ARCH_PHI3:
            NEED1(L("input_layernorm.weight"), H);
            NEED1(L("post_attention_layernorm.weight"), H);
            NEED2(L("self_attn.qkv_proj.weight"), q + 2 * kv, H);
            NEED2(L("self_attn.o_proj.weight"), H, q);
            NEED2(L("mlp.gate_up_proj.weight"), 2 * I, H);
            NEED2(L("mlp.down_proj.weight"), H, I);
            break;
        case PHIQ_ARCH_PHI2:
            NEED_B("input_layernorm", H, 0);
            NEED_B("self_attn.q_proj", q, H);
            NEED_B("self_attn.k_proj", kv, H);
            NEED_B("self_attn.v_proj", kv, H);
            NEED_B("self_attn.dense", H, q);
            NEED_B("mlp.fc1", I, H);
            NEED_B("mlp.fc2", H, I);
            break;
        case PHIQ_ARCH_PHI3SMALL: /* modeling_phi3_small.py: every Linear and LayerNorm has a bias */
            NEED_B("input_layernorm", H, 0);
            NEED_B("self_attn.query_key_value", q + 2 * kv, H);
            NEED_B("self_attn.dense", H, q);
            NEED_B("post_attention_layernorm", H, 0);
            NEED_B("mlp.up_proj", 2 * I, H);
            NEED_B("mlp.down_proj", H, I);
            break;
        case PHIQ_ARCH_PHIMOE:
            NEED_B("input_layernorm", H, 0);
            NEED_B("post_attention_layernorm", H, 0);
            NEED2(L("self_attn.q_proj.weight"), q, H);
            NEED2(L("self_attn.k_proj.weight"), kv, H);
            NEED2(L("self_attn.v_proj.weight"), kv, H);
            NEED2(L("self_attn.o_proj.weight"), H, q);
            if (hp->attn_bias) {
                NEED1(L("self_attn.q_proj.bias"), q);
                NEED1(L("self_attn.k_proj.bias"), kv);
                NEED1(L("self_attn.v_proj.bias"), kv);
                NEED1(L("self_attn.o_proj.bias"), H);
            }
            NEED2(L("block_sparse_moe.gate.weight"), hp->n_expert, H);
            if (hf->quant) { /* mlx-lm's sanitize stacks the experts */
                int64_t X = hp->n_expert;
                if ((rc = need_mat(hf, L("block_sparse_moe.switch_mlp.gate_proj.weight"), 1, &X, I, H)) ||
                    (rc = need_mat(hf, L("block_sparse_moe.switch_mlp.up_proj.weight"), 1, &X, I, H)) ||
                    (rc = need_mat(hf, L("block_sparse_moe.switch_mlp.down_proj.weight"), 1, &X, H, I)))
                    return rc;
                break;
            }
            for (int e = 0; e < hp->n_expert; e++) {
                snprintf(nm, sizeof nm, "model.layers.%d.block_sparse_moe.experts.%d.w1.weight", l, e);
                NEED2(nm, I, H);
                snprintf(nm, sizeof nm, "model.layers.%d.block_sparse_moe.experts.%d.w2.weight", l, e);
                NEED2(nm, H, I);
                snprintf(nm, sizeof nm, "model.layers.%d.block_sparse_moe.experts.%d.w3.weight", l, e);
                NEED2(nm, I, H);
            }
            break;
        }
    }
    if (hp->arch == PHIQ_ARCH_PHI2 || hp->arch == PHIQ_ARCH_PHI3SMALL) {
        NEED1("model.final_layernorm.weight", H);
        NEED1("model.final_layernorm.bias", H);
    } else {
        NEED1("model.norm.weight", H);
        if (hp->arch == PHIQ_ARCH_PHIMOE) NEED1("model.norm.bias", H);
    }
    if (phiq_hf_find(hf, "lm_head.weight")) NEED2("lm_head.weight", V, H);
    if (hp->arch == PHIQ_ARCH_PHI2 && !hp->tied_embeddings) NEED1("lm_head.bias", V);
    if (hp->arch == PHIQ_ARCH_PHIMOE && phiq_hf_find(hf, "lm_head.bias")) NEED1("lm_head.bias", V);
#undef NEED1
#undef NEED2
#undef NEED_B
#undef L
    return 0;
}

/* ---- open ---------------------------------------------------------------------------- */

static char *side_file(const char *dir, const char *name) {
    char *p = phiq_path_join(dir, name);
    if (p && !phiq_file_exists(p)) { free(p); p = NULL; }
    return p;
}

phiq_hf *phiq_hf_open(const char *dir) {
    if (!phiq_dir_exists(dir)) return phiq_fail_null(PHIQ_EIO, "%s: not a directory", dir);
    phiq_hf *hf = calloc(1, sizeof *hf);
    if (!hf || !(hf->dir = strdup(dir))) { free(hf); return phiq_fail_null(PHIQ_ENOMEM, "out of memory"); }
    char *cpath = phiq_path_join(dir, "config.json");
    char *ipath = phiq_path_join(dir, "model.safetensors.index.json");
    char *spath = phiq_path_join(dir, "model.safetensors");
    cJSON *cfg = NULL;
    int rc = 0;
    if (!cpath || !ipath || !spath) { rc = phiq_fail(PHIQ_ENOMEM, "out of memory"); goto out; }
    if (!phiq_file_exists(cpath)) { rc = phiq_fail(PHIQ_EIO, "%s: no config.json (not a Hugging Face checkpoint?)", dir); goto out; }
    cfg = load_json(cpath);
    if (!cfg) { rc = PHIQ_EFORMAT; goto out; }
    if ((rc = parse_config(hf, cpath, cfg)) || (rc = read_quantization(hf, cpath, cfg))) goto out;
    hf->tok_json = side_file(dir, "tokenizer.json");
    hf->tok_cfg = side_file(dir, "tokenizer_config.json");
    hf->gen_cfg = side_file(dir, "generation_config.json");
    if (hf->gen_cfg) {
        cJSON *g = load_json(hf->gen_cfg);
        if (!g) { rc = PHIQ_EFORMAT; goto out; }
        rc = read_eos(&hf->hp, g, hf->gen_cfg);
        cJSON_Delete(g);
        if (rc) goto out;
    }
    if (phiq_file_exists(ipath)) rc = open_index(hf, ipath);
    else if (phiq_file_exists(spath)) rc = add_shard(hf, spath);
    else rc = phiq_fail(PHIQ_EIO, "%s: neither model.safetensors nor model.safetensors.index.json", dir);
    if (rc) goto out;
    if ((rc = build_lookup(hf))) goto out;
    rc = check_tensors(hf);
out:
    cJSON_Delete(cfg);
    free(cpath);
    free(ipath);
    free(spath);
    if (rc) { phiq_hf_close(hf); return NULL; }
    return hf;
}

const char *phiq_hf_dir(const phiq_hf *hf) { return hf->dir; }
const phiq_hparams *phiq_hf_hparams(const phiq_hf *hf) { return &hf->hp; }
const char *phiq_hf_architecture(const phiq_hf *hf) { return hf->arch_name; }
int phiq_hf_n_tensors(const phiq_hf *hf) { return hf->n_tensors; }

const phiq_st_tensor *phiq_hf_tensor_at(const phiq_hf *hf, int i) {
    return i >= 0 && i < hf->n_tensors ? hf->tensors[i] : NULL;
}

const phiq_st_tensor *phiq_hf_find(const phiq_hf *hf, const char *name) {
    if (!hf->hash) return NULL;
    uint32_t h = hf_hash(name) & (uint32_t)(hf->hcap - 1);
    while (hf->hash[h]) {
        const phiq_st_tensor *t = hf->tensors[hf->hash[h] - 1];
        if (!strcmp(t->name, name)) return t;
        h = (h + 1) & (uint32_t)(hf->hcap - 1);
    }
    return NULL;
}

const char *phiq_hf_tokenizer_json(const phiq_hf *hf) { return hf->tok_json; }
const char *phiq_hf_tokenizer_config_json(const phiq_hf *hf) { return hf->tok_cfg; }
const char *phiq_hf_generation_config_json(const phiq_hf *hf) { return hf->gen_cfg; }
uint64_t phiq_hf_total_bytes(const phiq_hf *hf) { return hf->total_bytes; }
