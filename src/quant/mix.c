/* mix.c — llama-quantize's presets and per-tensor type rules
 * (llama_tensor_get_type / _impl / tensor_type_fallback in llama.cpp's
 * src/llama-quant.cpp, version bundled with node-llama-cpp 3.22.1),
 * restricted to the presets phiq offers. Architecture-specific branches
 * for Falcon and the 70B size class cannot apply to Phi models and are
 * left out; MoE (n_expert == 8) and GQA rules are kept.
 */
#include "quant/mix.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "formats/ggml_type.h"

/* llama_ftype ids (include/llama.h) */
enum {
    FT_F32 = 0, FT_F16 = 1, FT_Q4_0 = 2, FT_Q4_1 = 3, FT_Q8_0 = 7, FT_Q5_0 = 8, FT_Q5_1 = 9,
    FT_Q2_K = 10, FT_Q3_K_S = 11, FT_Q3_K_M = 12, FT_Q3_K_L = 13, FT_Q4_K_S = 14, FT_Q4_K_M = 15,
    FT_Q5_K_S = 16, FT_Q5_K_M = 17, FT_Q6_K = 18, FT_IQ4_NL = 25, FT_IQ4_XS = 30, FT_BF16 = 32,
};

static const struct preset {
    const char *name, *canonical;
    int ftype, type;
} PRESETS[] = {
    {"Q4_0", "Q4_0", FT_Q4_0, PHIQ_GGML_TYPE_Q4_0},
    {"Q4_1", "Q4_1", FT_Q4_1, PHIQ_GGML_TYPE_Q4_1},
    {"Q5_0", "Q5_0", FT_Q5_0, PHIQ_GGML_TYPE_Q5_0},
    {"Q5_1", "Q5_1", FT_Q5_1, PHIQ_GGML_TYPE_Q5_1},
    {"Q8_0", "Q8_0", FT_Q8_0, PHIQ_GGML_TYPE_Q8_0},
    {"Q2_K", "Q2_K", FT_Q2_K, PHIQ_GGML_TYPE_Q2_K},
    {"Q3_K_S", "Q3_K_S", FT_Q3_K_S, PHIQ_GGML_TYPE_Q3_K},
    {"Q3_K_M", "Q3_K_M", FT_Q3_K_M, PHIQ_GGML_TYPE_Q3_K},
    {"Q3_K_L", "Q3_K_L", FT_Q3_K_L, PHIQ_GGML_TYPE_Q3_K},
    {"Q4_K_S", "Q4_K_S", FT_Q4_K_S, PHIQ_GGML_TYPE_Q4_K},
    {"Q4_K_M", "Q4_K_M", FT_Q4_K_M, PHIQ_GGML_TYPE_Q4_K},
    {"Q5_K_S", "Q5_K_S", FT_Q5_K_S, PHIQ_GGML_TYPE_Q5_K},
    {"Q5_K_M", "Q5_K_M", FT_Q5_K_M, PHIQ_GGML_TYPE_Q5_K},
    {"Q6_K", "Q6_K", FT_Q6_K, PHIQ_GGML_TYPE_Q6_K},
    {"IQ4_NL", "IQ4_NL", FT_IQ4_NL, PHIQ_GGML_TYPE_IQ4_NL},
    {"IQ4_XS", "IQ4_XS", FT_IQ4_XS, PHIQ_GGML_TYPE_IQ4_XS},
    {"F16", "F16", FT_F16, PHIQ_GGML_TYPE_F16},
    {"BF16", "BF16", FT_BF16, PHIQ_GGML_TYPE_BF16},
    {"F32", "F32", FT_F32, PHIQ_GGML_TYPE_F32},
    /* aliases */
    {"Q3_K", "Q3_K_M", FT_Q3_K_M, PHIQ_GGML_TYPE_Q3_K},
    {"Q4_K", "Q4_K_M", FT_Q4_K_M, PHIQ_GGML_TYPE_Q4_K},
    {"Q5_K", "Q5_K_M", FT_Q5_K_M, PHIQ_GGML_TYPE_Q5_K},
    {"int4", "Q4_K_M", FT_Q4_K_M, PHIQ_GGML_TYPE_Q4_K},
    {"int8", "Q8_0", FT_Q8_0, PHIQ_GGML_TYPE_Q8_0},
    {"fp16", "F16", FT_F16, PHIQ_GGML_TYPE_F16},
    {"bf16", "BF16", FT_BF16, PHIQ_GGML_TYPE_BF16},
    {"fp32", "F32", FT_F32, PHIQ_GGML_TYPE_F32},
};
#define N_PRESETS (int)(sizeof PRESETS / sizeof PRESETS[0])

const char *phiq_mix_names(void) {
    return "Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K IQ4_NL IQ4_XS "
           "F16 BF16 F32 Q3_K Q4_K Q5_K int4 int8 fp16 bf16 fp32";
}

int phiq_mix_ftype_of_type(int type, const char **name) {
    for (int i = 0; i < N_PRESETS; i++)
        if (PRESETS[i].type == type) {
            if (name) *name = PRESETS[i].canonical;
            return PRESETS[i].ftype;
        }
    return -1;
}

int phiq_mix_parse(const char *name, phiq_mix *out) {
    memset(out, 0, sizeof *out);
    for (int i = 0; name && i < N_PRESETS; i++) {
        if (!phiq_streq_nocase(name, PRESETS[i].name)) continue;
        snprintf(out->name, sizeof out->name, "%s", PRESETS[i].canonical);
        out->ftype = PRESETS[i].ftype;
        out->default_type = PRESETS[i].type;
        out->output_type = -1;
        out->token_embd_type = -1;
        out->n_gqa = 1;
        out->has_output = true;
        return 0;
    }
    return phiq_fail(PHIQ_EINVAL, "unknown quantization type '%s' (valid: %s)", name ? name : "(null)",
                     phiq_mix_names());
}

int phiq_mix_add_override(phiq_mix *m, const char *spec) {
    /* as llama-quantize: split at the first '=', pattern lower-cased */
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1])
        return phiq_fail(PHIQ_EINVAL, "tensor type override '%s': expected REGEX=TYPE", spec);
    const int type = phiq_ggml_type_from_name(eq + 1);
    if (type < 0 || !phiq_ggml_type_valid(type))
        return phiq_fail(PHIQ_EINVAL, "tensor type override '%s': unknown type '%s'", spec, eq + 1);
    if (m->n_overrides >= PHIQ_MIX_MAX_OVERRIDES)
        return phiq_fail(PHIQ_EINVAL, "tensor type override '%s': more than %d overrides", spec,
                         PHIQ_MIX_MAX_OVERRIDES);
    const size_t len = (size_t)(eq - spec);
    char *pat = malloc(len + 1);
    if (!pat) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    for (size_t i = 0; i < len; i++) pat[i] = (char)tolower((unsigned char)spec[i]);
    pat[len] = 0;
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, 0, &err, &off, NULL);
    if (!re) {
        free(pat);
        PCRE2_UCHAR msg[128];
        pcre2_get_error_message(err, msg, sizeof msg);
        return phiq_fail(PHIQ_EINVAL, "tensor type override '%s': bad regex at %zu: %s", spec, (size_t)off,
                         (const char *)msg);
    }
    m->overrides[m->n_overrides++] = (phiq_mix_override){re, type, pat};
    return 0;
}

void phiq_mix_free(phiq_mix *m) {
    for (int i = 0; i < m->n_overrides; i++) {
        pcre2_code_free(m->overrides[i].re);
        free(m->overrides[i].pattern);
    }
    m->n_overrides = 0;
}

/* ---- rules ------------------------------------------------------------------ */

enum cat { CAT_TOKEN_EMBD, CAT_ATTN_Q, CAT_ATTN_V, CAT_ATTN_K, CAT_ATTN_QKV, CAT_ATTN_KV_B, CAT_ATTN_OUTPUT,
           CAT_FFN_UP, CAT_FFN_GATE, CAT_FFN_DOWN, CAT_OUTPUT, CAT_OTHER };

static enum cat category(const char *n) {
    if (!strcmp(n, "output.weight")) return CAT_OUTPUT;
    if (!strcmp(n, "token_embd.weight") || !strcmp(n, "per_layer_token_embd.weight")) return CAT_TOKEN_EMBD;
    if (strstr(n, "attn_qkv.weight")) return CAT_ATTN_QKV;
    if (strstr(n, "attn_kv_b.weight")) return CAT_ATTN_KV_B;
    if (strstr(n, "attn_v.weight")) return CAT_ATTN_V;
    if (strstr(n, "attn_k.weight")) return CAT_ATTN_K;
    if (strstr(n, "attn_q.weight")) return CAT_ATTN_Q;
    if (strstr(n, "attn_output.weight")) return CAT_ATTN_OUTPUT;
    if (strstr(n, "ffn_up")) return CAT_FFN_UP;
    if (strstr(n, "ffn_gate")) return CAT_FFN_GATE;
    if (strstr(n, "ffn_down")) return CAT_FFN_DOWN;
    return CAT_OTHER;
}

static bool ends_with(const char *s, const char *suf) {
    const size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* tensor_allows_quantization, for the names Phi models can contain. */
static bool allows_quantization(const phiq_mix *m, const char *n, int n_dims) {
    if (n_dims < 2) return false;
    if (!ends_with(n, "weight")) return false;
    if (strstr(n, "_norm.weight")) return false;
    if (m->leave_output && !strcmp(n, "output.weight")) return false;
    if (strstr(n, "ffn_gate_inp.weight")) return false;
    if (strstr(n, "ffn_gate_tid2eid.weight")) return false;
    if (strstr(n, "altup") || strstr(n, "laurel") || strstr(n, "per_layer_model_proj")) return false;
    if (!strcmp(n, "position_embd.weight") || !strcmp(n, "token_types.weight")) return false;
    if (strstr(n, "ssm_conv1d") || strstr(n, "shortconv.conv.weight")) return false;
    if (strstr(n, "attn_rel_b.weight") || strstr(n, ".position_embd") || strstr(n, ".rel_pos")) return false;
    if (strstr(n, ".patch_embd") || strstr(n, ".patch_merger")) return false;
    return true;
}

static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static int layer_of(const char *n) {
    int l = -1;
    if (sscanf(n, "blk.%d.", &l) != 1) return -1;
    return l;
}

static bool overridden(const phiq_mix *m, const char *name) {
    for (int i = 0; i < m->n_overrides; i++) {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(m->overrides[i].re, NULL);
        if (!md) return false;
        const int rc = pcre2_match(m->overrides[i].re, (PCRE2_SPTR)name, strlen(name), 0, 0, md, NULL);
        pcre2_match_data_free(md);
        if (rc >= 0) return true;
    }
    return false;
}

/* llama.cpp's i_attention_wv / i_ffn_down are counters of the tensors of
 * that kind which reached the mix rules so far (tensors are visited in
 * layer order); a tensor caught by a --tensor-type override is not counted.
 * Reproduce that: the number of layers l < il whose same-named tensor is
 * not overridden. */
static int prior_count(const phiq_mix *m, const char *name, int il) {
    if (il < 0) return 0;
    if (m->n_overrides == 0) return il;
    char pre[32], other[256];
    const int pl = snprintf(pre, sizeof pre, "blk.%d.", il);
    if (strncmp(name, pre, (size_t)pl) || strlen(name) > 200) return il;
    int n = 0;
    for (int l = 0; l < il; l++) {
        snprintf(other, sizeof other, "blk.%d.%s", l, name + pl);
        if (!overridden(m, other)) n++;
    }
    return n;
}

static int impl_type(const phiq_mix *m, int t, const char *name, const int64_t *ne, int n_layer, enum cat c) {
    const int ft = m->ftype;
    const bool tied = !m->has_output;
    const int il = prior_count(m, name, layer_of(name));
    if (c == CAT_OUTPUT || (tied && c == CAT_TOKEN_EMBD)) {
        if (m->output_type >= 0) return m->output_type;
        if (ne[0] % phiq_ggml_block_size(t) != 0) return PHIQ_GGML_TYPE_Q8_0;
        if (t != PHIQ_GGML_TYPE_Q8_0) return PHIQ_GGML_TYPE_Q6_K;
        return t;
    }
    if (c == CAT_TOKEN_EMBD) {
        if (m->token_embd_type >= 0) return m->token_embd_type;
        return t;
    }
    if (c == CAT_ATTN_V || c == CAT_ATTN_QKV || c == CAT_ATTN_KV_B) {
        /* i_attention_wv counts attn_v-like tensors in layer order */
        const int iw = il, nw = n_layer;
        if (ft == FT_Q2_K) t = m->n_gqa >= 4 ? PHIQ_GGML_TYPE_Q4_K : PHIQ_GGML_TYPE_Q3_K;
        else if (ft == FT_Q3_K_M) t = iw < 2 ? PHIQ_GGML_TYPE_Q5_K : PHIQ_GGML_TYPE_Q4_K;
        else if (ft == FT_Q3_K_L) t = PHIQ_GGML_TYPE_Q5_K;
        else if ((ft == FT_IQ4_NL || ft == FT_IQ4_XS) && m->n_gqa >= 4) t = PHIQ_GGML_TYPE_Q5_K;
        else if ((ft == FT_Q4_K_M || ft == FT_Q5_K_M) && use_more_bits(iw, nw)) t = PHIQ_GGML_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && iw < 4) t = PHIQ_GGML_TYPE_Q5_K;
        if (m->n_expert == 8) t = PHIQ_GGML_TYPE_Q8_0;
        return t;
    }
    if (c == CAT_ATTN_K) {
        if (m->n_expert == 8) t = PHIQ_GGML_TYPE_Q8_0;
        return t;
    }
    if (c == CAT_FFN_DOWN) {
        const int i = il, n = n_layer;
        if (ft == FT_Q2_K) t = PHIQ_GGML_TYPE_Q3_K;
        else if (ft == FT_Q3_K_M)
            t = i < n / 16 ? PHIQ_GGML_TYPE_Q5_K : PHIQ_GGML_TYPE_Q4_K; /* non-Falcon: always Q4_K after n/16 */
        else if (ft == FT_Q3_K_L) t = PHIQ_GGML_TYPE_Q5_K;
        else if (ft == FT_Q4_K_M) {
            if (use_more_bits(i, n)) t = PHIQ_GGML_TYPE_Q6_K;
        } else if (i < n / 8 && (ft == FT_IQ4_NL || ft == FT_IQ4_XS) && !m->has_imatrix) t = PHIQ_GGML_TYPE_Q5_K;
        else if (ft == FT_Q5_K_M && use_more_bits(i, n)) t = PHIQ_GGML_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && i < n / 8) t = PHIQ_GGML_TYPE_Q5_K;
        else if ((ft == FT_Q4_0 || ft == FT_Q5_0) && m->has_imatrix && i < n / 8)
            t = ft == FT_Q4_0 ? PHIQ_GGML_TYPE_Q4_1 : PHIQ_GGML_TYPE_Q5_1;
        return t;
    }
    if (c == CAT_ATTN_OUTPUT) {
        if (m->n_expert == 8) {
            if (ft == FT_Q2_K || ft == FT_Q3_K_S || ft == FT_Q3_K_M || ft == FT_IQ4_NL || ft == FT_Q4_K_S ||
                ft == FT_Q4_K_M || ft == FT_IQ4_XS)
                t = PHIQ_GGML_TYPE_Q5_K;
        } else {
            if (ft == FT_Q2_K) t = PHIQ_GGML_TYPE_Q3_K;
            else if (ft == FT_Q3_K_M) t = PHIQ_GGML_TYPE_Q4_K;
            else if (ft == FT_Q3_K_L) t = PHIQ_GGML_TYPE_Q5_K;
        }
        return t;
    }
    /* The dedicated attn_qkv branch of llama.cpp is unreachable (attn_qkv is
     * attn_v-like above); attn_q, ffn_up, ffn_gate have no rule for these presets. */
    return t;
}

/* tensor_type_fallback: rows that are not whole blocks. */
static int fallback(int t, int64_t ncols) {
    const int64_t bs = phiq_ggml_block_size(t);
    if (bs <= 0 || ncols % bs == 0) return t;
    int r;
    switch (t) {
    case PHIQ_GGML_TYPE_IQ1_S: case PHIQ_GGML_TYPE_IQ1_M: case PHIQ_GGML_TYPE_IQ2_XXS:
    case PHIQ_GGML_TYPE_IQ2_XS: case PHIQ_GGML_TYPE_IQ2_S: case PHIQ_GGML_TYPE_IQ3_XXS:
    case PHIQ_GGML_TYPE_IQ3_S: case PHIQ_GGML_TYPE_IQ4_XS: r = PHIQ_GGML_TYPE_IQ4_NL; break;
    case PHIQ_GGML_TYPE_Q2_K: case PHIQ_GGML_TYPE_Q3_K: case PHIQ_GGML_TYPE_TQ1_0:
    case PHIQ_GGML_TYPE_TQ2_0: r = PHIQ_GGML_TYPE_Q4_0; break;
    case PHIQ_GGML_TYPE_Q4_K: r = PHIQ_GGML_TYPE_Q5_0; break;
    case PHIQ_GGML_TYPE_Q5_K: r = PHIQ_GGML_TYPE_Q5_1; break;
    case PHIQ_GGML_TYPE_Q6_K: r = PHIQ_GGML_TYPE_Q8_0; break;
    default: r = t; break; /* 32-element types: fall through to F16 below */
    }
    if (ncols % phiq_ggml_block_size(r) != 0) r = PHIQ_GGML_TYPE_F16;
    return r;
}

int phiq_mix_tensor_type(const phiq_mix *m, const char *name, int n_dims, const int64_t *ne, int n_layer,
                         int src_type) {
    if (!allows_quantization(m, name, n_dims)) return src_type;
    const enum cat c = category(name);
    if (m->token_embd_type >= 0 && c == CAT_TOKEN_EMBD) return m->token_embd_type;
    if (m->output_type >= 0 && c == CAT_OUTPUT) return m->output_type;
    int t = m->default_type;
    if (!phiq_ggml_type_is_quantized(t)) return t;
    bool manual = false;
    for (int i = 0; i < m->n_overrides && !manual; i++) {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(m->overrides[i].re, NULL);
        if (!md) break;
        const int rc = pcre2_match(m->overrides[i].re, (PCRE2_SPTR)name, strlen(name), 0, 0, md, NULL);
        pcre2_match_data_free(md);
        if (rc >= 0) {
            t = m->overrides[i].type;
            manual = true;
        }
    }
    if (!manual && !m->pure) t = impl_type(m, t, name, ne, n_layer, c);
    return fallback(t, ne[0]);
}
