/* model.c — opening a Phi model for inference: a GGUF file (phiq's or
 * llama.cpp's: metadata memory-mapped, tensor data copied onto huge pages
 * when memory allows, else used in place through the map) or a Hugging Face
 * directory (safetensors mapped; weights converted in memory to the requested
 * type unless already in it). Hyper-parameters come from GGUF metadata
 * (keys of llamacpp-gguf-quant.md §1.7) or config.json; every tensor's
 * presence, shape and type is checked here, once, with an error naming the
 * file and the tensor, so the forward pass never has to. */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/common.h"
#include "formats/ggml_type.h"
#include "formats/gguf.h"
#include "formats/hf.h"
#include "model/model.h"
#include "model/phi3small.h"
#include "quant/mlx_affine.h"
#include "quant/quant.h"
#include "tokenizer/tokenizer.h"

/* A tensor seen the same way whichever file it came from. */
typedef struct {
    int type;          /* ggml type */
    int n_dims;
    int64_t ne[4];     /* ne[0] innermost */
    const void *data;
    bool affine;       /* MLX affine codes in aff, rows from row0 (an expert of a stack); type is F32 */
    phiq_hf_affine aff;
    int64_t row0;
} phiq_src_tensor;

typedef struct {
    phiq_model *m;
    const char *file;  /* for messages */
    int target;        /* HF: ggml type to hold matrices in */
    bool lazy;         /* layer matrices stay in the file map (phiq_model_load_ex) */
    bool keep_bf16;    /* HF: BF16 matrices are not converted (PHIQ_LOAD_KEEP_BF16) */
} phiq_loader;

static void *phiq_model_own(phiq_model *m, void *p) {
    if (!p) return NULL;
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? 2 * m->cap_owned : 64;
        void **o = realloc(m->owned, (size_t)cap * sizeof *o);
        if (!o) {
            free(p);
            return NULL;
        }
        m->owned = o;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = p;
    return p;
}

/* GGUF tensor names -> Hugging Face names ("blk.N.x" handled by the caller). */
static const char *phiq_hf_name(phiq_arch arch, const char *g) {
    static const struct { const char *g, *phi3, *phi2, *p3s; } map[] = {
        {"token_embd.weight", "model.embed_tokens.weight", "model.embed_tokens.weight", "model.embed_tokens.weight"},
        {"output_norm.weight", "model.norm.weight", "model.final_layernorm.weight", "model.final_layernorm.weight"},
        {"output_norm.bias", "model.norm.bias", "model.final_layernorm.bias", "model.final_layernorm.bias"},
        {"output.weight", "lm_head.weight", "lm_head.weight", "lm_head.weight"},
        {"output.bias", "lm_head.bias", "lm_head.bias", NULL},
        {"attn_norm.weight", "input_layernorm.weight", "input_layernorm.weight", "input_layernorm.weight"},
        {"attn_norm.bias", "input_layernorm.bias", "input_layernorm.bias", "input_layernorm.bias"},
        {"attn_qkv.weight", "self_attn.qkv_proj.weight", "self_attn.qkv_proj.weight", "self_attn.query_key_value.weight"},
        {"attn_qkv.bias", "self_attn.qkv_proj.bias", "self_attn.qkv_proj.bias", "self_attn.query_key_value.bias"},
        {"attn_q.weight", "self_attn.q_proj.weight", "self_attn.q_proj.weight", NULL},
        {"attn_q.bias", "self_attn.q_proj.bias", "self_attn.q_proj.bias", NULL},
        {"attn_k.weight", "self_attn.k_proj.weight", "self_attn.k_proj.weight", NULL},
        {"attn_k.bias", "self_attn.k_proj.bias", "self_attn.k_proj.bias", NULL},
        {"attn_v.weight", "self_attn.v_proj.weight", "self_attn.v_proj.weight", NULL},
        {"attn_v.bias", "self_attn.v_proj.bias", "self_attn.v_proj.bias", NULL},
        {"attn_output.weight", "self_attn.o_proj.weight", "self_attn.dense.weight", "self_attn.dense.weight"},
        {"attn_output.bias", "self_attn.o_proj.bias", "self_attn.dense.bias", "self_attn.dense.bias"},
        {"ffn_norm.weight", "post_attention_layernorm.weight", "post_attention_layernorm.weight", "post_attention_layernorm.weight"},
        {"ffn_norm.bias", "post_attention_layernorm.bias", "post_attention_layernorm.bias", "post_attention_layernorm.bias"},
        {"ffn_up.weight", "mlp.gate_up_proj.weight", "mlp.fc1.weight", "mlp.up_proj.weight"},
        {"ffn_up.bias", "mlp.gate_up_proj.bias", "mlp.fc1.bias", "mlp.up_proj.bias"},
        {"ffn_down.weight", "mlp.down_proj.weight", "mlp.fc2.weight", "mlp.down_proj.weight"},
        {"ffn_down.bias", "mlp.down_proj.bias", "mlp.fc2.bias", "mlp.down_proj.bias"},
        {"ffn_gate_inp.weight", "block_sparse_moe.gate.weight", "block_sparse_moe.gate.weight", NULL},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(map[i].g, g))
            return arch == PHIQ_ARCH_PHI2 ? map[i].phi2 : arch == PHIQ_ARCH_PHI3SMALL ? map[i].p3s : map[i].phi3;
    return NULL;
}

/* 1 found, 0 absent, <0 error. */
static int phiq_loader_find(phiq_loader *ld, const char *name, phiq_src_tensor *out) {
    phiq_model *m = ld->m;
    memset(out, 0, sizeof *out);
    if (m->gguf) {
        const phiq_gguf_tensor *t = phiq_gguf_find_tensor(m->gguf, name);
        if (!t) return 0;
        out->type = t->type;
        out->n_dims = t->n_dims;
        for (int i = 0; i < 4; i++) out->ne[i] = i < t->n_dims ? t->ne[i] : 1;
        out->data = m->weights ? m->weights + t->offset : t->data;
        return 1;
    }
    char hfname[256];
    int layer = -1, used = 0;
    const char *rest = name;
    if (sscanf(name, "blk.%d.%n", &layer, &used) == 1 && used > 0) rest = name + used;
    const char *mapped = phiq_hf_name(m->hp.arch, rest);
    char expname[96];
    int e = -1, u2 = 0;
    char which[8];
    bool stacked = false; /* MLX: expert e of switch_mlp.*_proj [E, out, in] */
    /* per-expert pseudo names "ffn_{gate,up,down}_exp.E.weight" (HF keeps experts apart) */
    if (!mapped && sscanf(rest, "ffn_%4[a-z]_exp.%d.weight%n", which, &e, &u2) == 2 && rest[u2] == 0 && e >= 0) {
        const char *w = !strcmp(which, "gate") ? "w1" : !strcmp(which, "up") ? "w3" : !strcmp(which, "down") ? "w2" : NULL;
        if (!w) return 0;
        stacked = phiq_hf_is_mlx(m->hf);
        if (stacked) snprintf(expname, sizeof expname, "block_sparse_moe.switch_mlp.%s_proj.weight", which);
        else snprintf(expname, sizeof expname, "block_sparse_moe.experts.%d.%s.weight", e, w);
        mapped = expname;
    }
    if (!mapped) return 0;
    if (layer >= 0) snprintf(hfname, sizeof hfname, "model.layers.%d.%s", layer, mapped);
    else snprintf(hfname, sizeof hfname, "%s", mapped);
    int rc = phiq_hf_affine_find(m->hf, hfname, -1, &out->aff);
    if (rc < 0) return rc;
    const phiq_st_tensor *t = rc ? out->aff.scales : phiq_hf_find(m->hf, hfname);
    if (!t) return 0;
    if (stacked && (t->n_dims != 3 || e >= t->shape[0]))
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor %s is not a stack of more than %d experts", t->file, hfname, e);
    if (rc) { /* dequantized to float32 on load */
        out->affine = true;
        out->type = PHIQ_GGML_TYPE_F32;
        out->n_dims = 2;
        out->ne[0] = t->shape[t->n_dims - 1] * out->aff.group_size;
        out->ne[1] = t->shape[t->n_dims - 2];
        out->ne[2] = out->ne[3] = 1;
        if (!stacked && t->n_dims != 2)
            return phiq_fail(PHIQ_EFORMAT, "%s: tensor %s has %d dimensions", t->file, hfname, t->n_dims);
        out->row0 = stacked ? (int64_t)e * out->ne[1] : 0;
        return 1;
    }
    switch (t->dtype) {
    case PHIQ_ST_F32: out->type = PHIQ_GGML_TYPE_F32; break;
    case PHIQ_ST_F16: out->type = PHIQ_GGML_TYPE_F16; break;
    case PHIQ_ST_BF16: out->type = PHIQ_GGML_TYPE_BF16; break;
    default:
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: tensor %s has dtype %s, which phiq cannot evaluate", t->file, hfname,
                         t->dtype_name ? t->dtype_name : "?");
    }
    if (t->n_dims < 1 || t->n_dims > 4)
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor %s has %d dimensions", t->file, hfname, t->n_dims);
    out->n_dims = t->n_dims;
    for (int i = 0; i < 4; i++) out->ne[i] = i < t->n_dims ? t->shape[t->n_dims - 1 - i] : 1;
    out->data = t->data;
    if (stacked) { /* one expert's [out, in] slice of the float stack */
        if (t->n_dims != 3) return phiq_fail(PHIQ_EFORMAT, "%s: tensor %s is not 3-D", t->file, hfname);
        size_t es = t->dtype == PHIQ_ST_F32 ? 4 : 2;
        out->data = (const uint8_t *)t->data + (size_t)e * (size_t)(out->ne[0] * out->ne[1]) * es;
        out->n_dims = 2;
        out->ne[2] = 1;
    }
    return 1;
}

static int phiq_convert_row(int from, const void *src, int to, void *dst, int64_t n, float *tmp) {
    int rc = phiq_row_to_f32(from, src, tmp, n);
    if (rc < 0) return rc;
    if (phiq_ggml_type_is_quantized(to)) {
        int64_t w = phiq_quantize(to, tmp, dst, 1, n, NULL);
        return w < 0 ? (int)w : 0;
    }
    if (to == PHIQ_GGML_TYPE_F32) memcpy(dst, tmp, (size_t)n * 4);
    else if (to == PHIQ_GGML_TYPE_F16)
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = phiq_f32_to_f16(tmp[i]);
            memcpy((uint8_t *)dst + 2 * i, &h, 2);
        }
    else
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = phiq_f32_to_bf16(tmp[i]);
            memcpy((uint8_t *)dst + 2 * i, &h, 2);
        }
    return 0;
}

static int phiq_st_ggml_type(phiq_st_dtype dt) {
    return dt == PHIQ_ST_F32 ? PHIQ_GGML_TYPE_F32 : dt == PHIQ_ST_F16 ? PHIQ_GGML_TYPE_F16 : PHIQ_GGML_TYPE_BF16;
}

/* MLX affine codes → float32 rows → the in-memory type. */
static int phiq_load_affine(phiq_loader *ld, const char *name, const phiq_src_tensor *t, phiq_mat *out) {
    const phiq_hf_affine *a = &t->aff;
    const int64_t n_in = out->n_in, n_out = out->n_out, ng = n_in / a->group_size, nw = n_in * a->bits / 32;
    const int sty = phiq_st_ggml_type(a->scales->dtype);
    const size_t ses = a->scales->dtype == PHIQ_ST_F32 ? 4 : 2;
    int64_t trb = phiq_ggml_row_size(ld->target, n_in);
    if (trb <= 0)
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: tensor %s: rows of %lld cannot be stored as %s", ld->file, name,
                         (long long)n_in, phiq_ggml_type_name(ld->target));
    uint8_t *buf = phiq_model_own(ld->m, malloc((size_t)trb * (size_t)n_out));
    float *tmp = malloc((size_t)(2 * n_in + 2 * ng) * sizeof(float)); /* row, scales, biases, staging */
    uint32_t *words = malloc((size_t)nw * sizeof *words);
    int rc = 0;
    if (!buf || !tmp || !words) rc = phiq_fail(PHIQ_ENOMEM, "%s: tensor %s: out of memory dequantizing", ld->file, name);
    for (int64_t r = 0; r < n_out && rc >= 0; r++) {
        const int64_t row = t->row0 + r;
        float *sc = tmp + n_in, *bi = sc + ng;
        memcpy(words, (const uint8_t *)a->weight->data + (size_t)row * (size_t)nw * 4, (size_t)nw * 4); /* may be unaligned */
        if ((rc = phiq_row_to_f32(sty, (const uint8_t *)a->scales->data + (size_t)(row * ng) * ses, sc, ng)) < 0 ||
            (rc = phiq_row_to_f32(sty, (const uint8_t *)a->biases->data + (size_t)(row * ng) * ses, bi, ng)) < 0)
            break;
        phiq_mlx_dequantize_row(words, sc, bi, n_in, a->bits, a->group_size, tmp);
        rc = phiq_convert_row(PHIQ_GGML_TYPE_F32, tmp, ld->target, buf + (size_t)r * (size_t)trb, n_in, bi + ng);
    }
    free(tmp);
    free(words);
    if (rc < 0) return rc;
    out->type = ld->target;
    out->row_bytes = (size_t)trb;
    out->data = buf;
    return 1;
}

/* A matrix of n_out rows by n_in columns (GGUF ne = {n_in, n_out}). */
static int phiq_load_mat(phiq_loader *ld, const char *name, int64_t n_in, int64_t n_out, bool required, phiq_mat *out) {
    memset(out, 0, sizeof *out);
    phiq_src_tensor t;
    int rc = phiq_loader_find(ld, name, &t);
    if (rc < 0) return rc;
    if (rc == 0) return required ? phiq_fail(PHIQ_EFORMAT, "%s: tensor %s is missing", ld->file, name) : 0;
    if (t.ne[0] != n_in || t.ne[1] != n_out || t.ne[2] != 1 || t.ne[3] != 1)
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]", ld->file,
                         name, (long long)t.ne[0], (long long)t.ne[1], (long long)t.ne[2], (long long)t.ne[3],
                         (long long)n_in, (long long)n_out);
    if (!phiq_ops_type_supported(t.type))
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: tensor %s has type %s, which this build cannot evaluate", ld->file, name,
                         phiq_ggml_type_name(t.type));
    int64_t rb = phiq_ggml_row_size(t.type, n_in);
    if (rb <= 0)
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor %s: row of %lld is not a whole number of %s blocks", ld->file, name,
                         (long long)n_in, phiq_ggml_type_name(t.type));
    out->type = t.type;
    out->n_in = n_in;
    out->n_out = n_out;
    out->row_bytes = (size_t)rb;
    out->data = t.data;
    if (t.affine) return phiq_load_affine(ld, name, &t, out);
    int layer = -1;
    if (ld->lazy && sscanf(name, "blk.%d.", &layer) == 1 && (ld->m->hf || !ld->m->weights)) {
        phiq_model *m = ld->m;
        if (m->n_lazy == m->cap_lazy) {
            int cap = m->cap_lazy ? 2 * m->cap_lazy : 64;
            phiq_lazy_mat *l = realloc(m->lazy, (size_t)cap * sizeof *l);
            if (!l) return phiq_fail(PHIQ_ENOMEM, "%s: out of memory", ld->file);
            m->lazy = l;
            m->cap_lazy = cap;
        }
        m->lazy[m->n_lazy++] = (phiq_lazy_mat){out, layer, *out, NULL};
        return 1;
    }
    if (ld->m->hf && t.type != ld->target && !(ld->keep_bf16 && t.type == PHIQ_GGML_TYPE_BF16)) {
        int64_t trb = phiq_ggml_row_size(ld->target, n_in);
        if (trb <= 0)
            return phiq_fail(PHIQ_EUNSUPPORTED, "%s: tensor %s: rows of %lld cannot be stored as %s (block size %lld)", ld->file,
                             name, (long long)n_in, phiq_ggml_type_name(ld->target),
                             (long long)phiq_ggml_block_size(ld->target));
        uint8_t *buf = phiq_model_own(ld->m, malloc((size_t)trb * (size_t)n_out));
        float *tmp = malloc((size_t)n_in * sizeof(float));
        if (!buf || !tmp) {
            free(tmp);
            return phiq_fail(PHIQ_ENOMEM, "%s: tensor %s: out of memory converting to %s", ld->file, name,
                             phiq_ggml_type_name(ld->target));
        }
        for (int64_t r = 0; r < n_out && rc >= 0; r++)
            rc = phiq_convert_row(t.type, (const uint8_t *)t.data + (size_t)r * (size_t)rb, ld->target,
                                  buf + (size_t)r * (size_t)trb, n_in, tmp);
        free(tmp);
        if (rc < 0) return rc;
        out->type = ld->target;
        out->row_bytes = (size_t)trb;
        out->data = buf;
    }
    return 1;
}

/* A vector of n values, copied to float32. */
static int phiq_load_vec(phiq_loader *ld, const char *name, int64_t n, bool required, float **out) {
    *out = NULL;
    phiq_src_tensor t;
    int rc = phiq_loader_find(ld, name, &t);
    if (rc < 0) return rc;
    if (rc == 0) return required ? phiq_fail(PHIQ_EFORMAT, "%s: tensor %s is missing", ld->file, name) : 0;
    if (t.ne[0] != n || t.ne[1] != 1 || t.ne[2] != 1 || t.ne[3] != 1)
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor %s has shape [%lld, %lld], expected [%lld]", ld->file, name,
                         (long long)t.ne[0], (long long)t.ne[1], (long long)n);
    if (t.type != PHIQ_GGML_TYPE_F32 && t.type != PHIQ_GGML_TYPE_F16 && t.type != PHIQ_GGML_TYPE_BF16)
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: tensor %s has type %s (vectors must be F32, F16 or BF16)", ld->file, name,
                         phiq_ggml_type_name(t.type));
    float *v = phiq_model_own(ld->m, malloc((size_t)n * sizeof(float)));
    if (!v) return phiq_fail(PHIQ_ENOMEM, "%s: out of memory", ld->file);
    phiq_row_to_f32(t.type, t.data, v, n);
    *out = v;
    return 1;
}

/* ---- GGUF metadata ------------------------------------------------------------ */

/* Key ARCH.SUFFIX as an integer (any integer type) into *iv, or with
 * want_float as a float (F32/F64) into *f. 1 found, 0 absent (and not
 * required), <0 error. */
static int meta_scalar(phiq_gguf *g, const char *arch, const char *suffix, bool required, bool want_float, int64_t *iv,
                       double *f) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t i = phiq_gguf_find_kv(g, key);
    if (i < 0) return required ? phiq_fail(PHIQ_EFORMAT, "%s: metadata key %s is missing", phiq_gguf_path(g), key) : 0;
    int t = phiq_gguf_kv_type(g, i);
    const bool is_float = t == PHIQ_GGUF_FLOAT32 || t == PHIQ_GGUF_FLOAT64;
    const bool is_int = !is_float && t != PHIQ_GGUF_ARRAY && t != PHIQ_GGUF_STRING && t != PHIQ_GGUF_BOOL;
    if (!(want_float ? is_float : is_int) || phiq_gguf_kv_scalar(g, i, iv, f) < 0)
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: metadata key %s has type %s, expected %s", phiq_gguf_path(g), key,
                         phiq_gguf_vtype_name(t), want_float ? "a float" : "an integer");
    return 1;
}

static int phiq_meta_int(phiq_gguf *g, const char *arch, const char *suffix, bool required, int64_t *out) {
    double f;
    return meta_scalar(g, arch, suffix, required, false, out, &f);
}

static int phiq_meta_float(phiq_gguf *g, const char *arch, const char *suffix, bool required, float *out) {
    int64_t iv;
    double f;
    const int rc = meta_scalar(g, arch, suffix, required, true, &iv, &f);
    if (rc == 1) *out = (float)f;
    return rc;
}

static int phiq_hparams_from_gguf(phiq_gguf *g, phiq_hparams *hp) {
    const char *path = phiq_gguf_path(g);
    const char *s;
    uint64_t len;
    int rc = phiq_gguf_get_str(g, "general.architecture", &s, &len);
    if (rc < 0) return rc;
    char arch[32];
    if (len >= sizeof arch) len = sizeof arch - 1;
    memcpy(arch, s, len);
    arch[len] = 0;
    memset(hp, 0, sizeof *hp);
    if (!strcmp(arch, "phi3")) hp->arch = PHIQ_ARCH_PHI3;
    else if (!strcmp(arch, "phi2")) hp->arch = PHIQ_ARCH_PHI2;
    else if (!strcmp(arch, "phimoe")) hp->arch = PHIQ_ARCH_PHIMOE;
    else if (!strcmp(arch, "phi3small")) hp->arch = PHIQ_ARCH_PHI3SMALL;
    else return phiq_fail(PHIQ_EUNSUPPORTED, "%s: architecture \"%s\" is not supported (phi3, phi2, phimoe, phi3small)", path, arch);
    int64_t v;
#define PHIQ_REQ_INT(field, key)                                        \
    if ((rc = phiq_meta_int(g, arch, key, true, &v)) < 0) return rc;    \
    if (v <= 0 || v > (1 << 30))                                        \
        return phiq_fail(PHIQ_EFORMAT, "%s: %s.%s = %lld is out of range", path, arch, key, (long long)v); \
    hp->field = (int)v;
    PHIQ_REQ_INT(n_ctx_train, "context_length");
    PHIQ_REQ_INT(n_embd, "embedding_length");
    PHIQ_REQ_INT(n_layer, "block_count");
    PHIQ_REQ_INT(n_ff, "feed_forward_length");
    PHIQ_REQ_INT(n_head, "attention.head_count");
#undef PHIQ_REQ_INT
    hp->n_head_kv = hp->n_head;
    if ((rc = phiq_meta_int(g, arch, "attention.head_count_kv", false, &v)) < 0) return rc;
    if (rc) hp->n_head_kv = (int)(v > 0 && v <= hp->n_head ? v : 0);
    if (hp->n_head_kv <= 0 || hp->n_head % hp->n_head_kv)
        return phiq_fail(PHIQ_EFORMAT, "%s: %s.attention.head_count_kv must divide head_count %d", path, arch, hp->n_head);
    if (hp->n_embd % hp->n_head)
        return phiq_fail(PHIQ_EFORMAT, "%s: embedding_length %d is not a multiple of head_count %d", path, hp->n_embd, hp->n_head);
    hp->head_dim = hp->n_embd / hp->n_head;
    if ((rc = phiq_meta_int(g, arch, "attention.key_length", false, &v)) < 0) return rc;
    if (rc && v != hp->head_dim)
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: attention.key_length %lld differs from n_embd/n_head %d", path, (long long)v, hp->head_dim);
    hp->n_rot = hp->head_dim;
    if ((rc = phiq_meta_int(g, arch, "rope.dimension_count", false, &v)) < 0) return rc;
    if (rc) {
        if (v <= 0 || v > hp->head_dim || (v & 1))
            return phiq_fail(PHIQ_EFORMAT, "%s: rope.dimension_count %lld must be even and <= head_dim %d", path, (long long)v, hp->head_dim);
        hp->n_rot = (int)v;
    }
    hp->rope_theta = 10000.0f;
    if ((rc = phiq_meta_float(g, arch, "rope.freq_base", false, &hp->rope_theta)) < 0) return rc;
    hp->rope_attn_factor = 1.0f;
    if ((rc = phiq_meta_float(g, arch, "rope.scaling.attn_factor", false, &hp->rope_attn_factor)) < 0) return rc;
    /* phiq's key for PhiMoE's long_mscale, written only where it differs
     * from the short one (llama.cpp has a single attention factor) */
    hp->rope_attn_factor_long = hp->rope_attn_factor;
    if ((rc = phiq_meta_float(g, arch, "rope.scaling.long_attn_factor", false, &hp->rope_attn_factor_long)) < 0) return rc;
    hp->n_ctx_orig = hp->n_ctx_train;
    if ((rc = phiq_meta_int(g, arch, "rope.scaling.original_context_length", false, &v)) < 0) return rc;
    if (rc) hp->n_ctx_orig = (int)(v > 0 && v < (1 << 30) ? v : hp->n_ctx_train);
    const bool ln = hp->arch == PHIQ_ARCH_PHI2 || hp->arch == PHIQ_ARCH_PHI3SMALL;
    const char *eps_key = ln ? "attention.layer_norm_epsilon" : "attention.layer_norm_rms_epsilon";
    if ((rc = phiq_meta_float(g, arch, eps_key, true, &hp->norm_eps)) < 0) return rc;
    if ((rc = phiq_meta_int(g, arch, "attention.sliding_window", false, &v)) < 0) return rc;
    if (rc) hp->sliding_window = (int)(v > 0 && v < (1 << 30) ? v : 0);
    if (hp->arch == PHIQ_ARCH_PHIMOE) {
        if ((rc = phiq_meta_int(g, arch, "expert_count", true, &v)) < 0) return rc;
        hp->n_expert = (int)(v > 0 && v <= 4096 ? v : 0);
        if ((rc = phiq_meta_int(g, arch, "expert_used_count", true, &v)) < 0) return rc;
        hp->n_expert_used = (int)(v > 0 && v <= hp->n_expert ? v : 0);
        if (!hp->n_expert || !hp->n_expert_used)
            return phiq_fail(PHIQ_EFORMAT, "%s: bad phimoe.expert_count / expert_used_count", path);
        hp->router_jitter = 0.01f; /* files without phiq's key: Phi-3.5-MoE's value */
        if ((rc = phiq_meta_float(g, arch, "router_jitter_noise", false, &hp->router_jitter)) < 0) return rc;
    }
    if (hp->arch == PHIQ_ARCH_PHI3SMALL && (rc = phiq_phi3small_gguf_read(g, hp)) < 0) return rc;
    hp->attn_bias = hp->arch != PHIQ_ARCH_PHI3;
    hp->bos_id = hp->pad_id = -1;
    return 0;
}

static int phiq_hparams_check(const char *file, phiq_hparams *hp) {
    if (hp->arch == PHIQ_ARCH_PHIMOE &&
        (hp->n_expert <= 0 || hp->n_expert > 4096 || hp->n_expert_used <= 0 || hp->n_expert_used > hp->n_expert || hp->n_expert_used > PHIQ_MAX_EXPERT_USED))
        return phiq_fail(PHIQ_EFORMAT, "%s: phimoe needs 0 < experts used (%d) <= experts (%d)", file, hp->n_expert_used,
                         hp->n_expert);
    if (hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_head <= 0 || hp->n_head_kv <= 0 || hp->n_ff <= 0 ||
        hp->head_dim <= 0 || hp->n_layer > 4096 || hp->n_head % hp->n_head_kv || hp->n_rot <= 0 ||
        hp->n_rot > hp->head_dim || (hp->n_rot & 1) || hp->n_rot / 2 > PHIQ_MAX_ROPE_FACTORS)
        return phiq_fail(PHIQ_EFORMAT, "%s: inconsistent hyper-parameters (embd %d, layers %d, heads %d/%d, head_dim %d, rot %d, ff %d)",
                         file, hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_rot, hp->n_ff);
    if ((int64_t)hp->n_embd * hp->n_ff > ((int64_t)1 << 40))
        return phiq_fail(PHIQ_EFORMAT, "%s: implausible dimensions", file);
    if (!(hp->norm_eps >= 0.0f) || !(hp->rope_theta > 0.0f) || !(hp->rope_attn_factor > 0.0f) ||
        !(hp->rope_attn_factor < 100.0f) || !(hp->rope_attn_factor_long > 0.0f) || !(hp->rope_attn_factor_long < 100.0f))
        return phiq_fail(PHIQ_EFORMAT, "%s: bad norm epsilon, rope base or attention factor", file);
    if (hp->arch == PHIQ_ARCH_PHI3SMALL && phiq_phi3small_check(file, hp) < 0) return PHIQ_EFORMAT;
    if (hp->arch == PHIQ_ARCH_PHIMOE && !(hp->router_jitter >= 0.0f && hp->router_jitter < 1.0f))
        return phiq_fail(PHIQ_EFORMAT, "%s: phimoe router_jitter_noise %g out of range [0, 1)", file, (double)hp->router_jitter);
    return 0;
}

/* phimoe experts: GGUF stacks them in 3-D tensors {n_in, n_out, n_expert}
 * (one expert's matrix after another); HF keeps one matrix per expert. */
static int phiq_load_experts(phiq_loader *ld, int L, phiq_layer *ly) {
    phiq_model *m = ld->m;
    const phiq_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, F = hp->n_ff, X = hp->n_expert;
    char nm[96];
    int rc;
    snprintf(nm, sizeof nm, "blk.%d.ffn_gate_inp.weight", L);
    if ((rc = phiq_load_mat(ld, nm, E, X, true, &ly->gate_inp)) < 0) return rc;
    phiq_mat **dst[3] = {&ly->exp_gate, &ly->exp_up, &ly->exp_down};
    const char *kind[3] = {"gate", "up", "down"};
    for (int k = 0; k < 3; k++) {
        *dst[k] = phiq_model_own(m, calloc((size_t)X, sizeof(phiq_mat)));
        if (!*dst[k]) return phiq_fail(PHIQ_ENOMEM, "%s: out of memory", ld->file);
        int64_t n_in = k == 2 ? F : E, n_out = k == 2 ? E : F;
        if (m->gguf) {
            snprintf(nm, sizeof nm, "blk.%d.ffn_%s_exps.weight", L, kind[k]);
            const phiq_gguf_tensor *t = phiq_gguf_find_tensor(m->gguf, nm);
            if (!t) return phiq_fail(PHIQ_EFORMAT, "%s: tensor %s is missing", ld->file, nm);
            if (t->n_dims != 3 || t->ne[0] != n_in || t->ne[1] != n_out || t->ne[2] != X)
                return phiq_fail(PHIQ_EFORMAT, "%s: tensor %s has shape [%lld, %lld, %lld], expected [%lld, %lld, %lld]", ld->file,
                                 nm, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)n_in,
                                 (long long)n_out, (long long)X);
            if (!phiq_ops_type_supported(t->type))
                return phiq_fail(PHIQ_EUNSUPPORTED, "%s: tensor %s has type %s, which this build cannot evaluate", ld->file, nm,
                                 phiq_ggml_type_name(t->type));
            int64_t rb = phiq_ggml_row_size(t->type, n_in);
            if (rb <= 0) return phiq_fail(PHIQ_EFORMAT, "%s: tensor %s: bad row size", ld->file, nm);
            for (int64_t e = 0; e < X; e++) {
                phiq_mat *mm = &(*dst[k])[e];
                mm->type = t->type;
                mm->n_in = n_in;
                mm->n_out = n_out;
                mm->row_bytes = (size_t)rb;
                mm->data = (const uint8_t *)t->data + (size_t)e * (size_t)n_out * (size_t)rb;
            }
        } else {
            for (int64_t e = 0; e < X; e++) {
                snprintf(nm, sizeof nm, "blk.%d.ffn_%s_exp.%lld.weight", L, kind[k], (long long)e);
                if ((rc = phiq_load_mat(ld, nm, n_in, n_out, true, &(*dst[k])[e])) < 0) return rc;
            }
        }
    }
    return 0;
}

static int phiq_model_load_tensors(phiq_model *m, phiq_loader *ld) {
    phiq_hparams *hp = &m->hp;
    const bool phi2 = hp->arch == PHIQ_ARCH_PHI2, moe = hp->arch == PHIQ_ARCH_PHIMOE, biased = !(hp->arch == PHIQ_ARCH_PHI3);
    const bool p3s = hp->arch == PHIQ_ARCH_PHI3SMALL; /* biases everywhere but lm_head, fused KV-group-major qkv */
    const int64_t E = hp->n_embd, nq = (int64_t)hp->n_head * hp->head_dim, nk = (int64_t)hp->n_head_kv * hp->head_dim;
    const int64_t F = hp->n_ff;
    int rc;
    /* the vocabulary size is the embedding's row count */
    phiq_src_tensor te;
    rc = phiq_loader_find(ld, "token_embd.weight", &te);
    if (rc < 0) return rc;
    if (rc == 0) return phiq_fail(PHIQ_EFORMAT, "%s: tensor token_embd.weight is missing", ld->file);
    if (te.ne[1] <= 0 || te.ne[1] > (1 << 28)) return phiq_fail(PHIQ_EFORMAT, "%s: token_embd.weight has a bad row count", ld->file);
    hp->n_vocab = (int)te.ne[1];
    if (p3s && (rc = phiq_phi3small_check(ld->file, hp)) < 0) return rc; /* its dummy ids against the rows */
    const int64_t V = hp->n_vocab;
    if ((rc = phiq_load_mat(ld, "token_embd.weight", E, V, true, &m->tok_embd)) < 0) return rc;
    if ((rc = phiq_load_vec(ld, "output_norm.weight", E, true, &m->output_norm)) < 0) return rc;
    if ((rc = phiq_load_vec(ld, "output_norm.bias", E, biased, &m->output_norm_b)) < 0) return rc;
    /* Phi-3-small ties lm_head to the embedding unless tie_word_embeddings is false */
    rc = p3s && m->hf && hp->tied_embeddings ? 0 : phiq_load_mat(ld, "output.weight", E, V, false, &m->output);
    if (rc < 0) return rc;
    if (rc == 0) {
        if (phi2) return phiq_fail(PHIQ_EFORMAT, "%s: tensor output.weight is missing (phi2 has an untied head)", ld->file);
        m->output = m->tok_embd; /* tied embeddings */
        hp->tied_embeddings = true;
    }
    if (!p3s && (rc = phiq_load_vec(ld, "output.bias", V, biased, &m->output_b)) < 0) return rc;
    if (m->gguf && hp->arch != PHIQ_ARCH_PHI2) {
        float *fl = NULL, *fs = NULL;
        if ((rc = phiq_load_vec(ld, "rope_factors_long.weight", hp->n_rot / 2, false, &fl)) < 0) return rc;
        if ((rc = phiq_load_vec(ld, "rope_factors_short.weight", hp->n_rot / 2, false, &fs)) < 0) return rc;
        if ((fl == NULL) != (fs == NULL))
            return phiq_fail(PHIQ_EFORMAT, "%s: only one of rope_factors_long/rope_factors_short is present", ld->file);
        if (fl) {
            hp->n_rope_factors = hp->n_rot / 2;
            memcpy(hp->rope_long, fl, (size_t)hp->n_rope_factors * 4);
            memcpy(hp->rope_short, fs, (size_t)hp->n_rope_factors * 4);
        }
    }
    for (int i = 0; i < hp->n_rope_factors; i++)
        if (!(hp->rope_long[i] > 0.0f) || !(hp->rope_short[i] > 0.0f))
            return phiq_fail(PHIQ_EFORMAT, "%s: rope factor %d is not positive", ld->file, i);
    m->layers = phiq_model_own(m, calloc((size_t)hp->n_layer, sizeof(phiq_layer)));
    if (!m->layers) return phiq_fail(PHIQ_ENOMEM, "%s: out of memory", ld->file);
    for (int L = 0; L < hp->n_layer; L++) {
        phiq_layer *ly = &m->layers[L];
        char nm[96];
#define PHIQ_NAME(s) (snprintf(nm, sizeof nm, "blk.%d.%s", L, s), nm)
        if ((rc = phiq_load_vec(ld, PHIQ_NAME("attn_norm.weight"), E, true, &ly->attn_norm)) < 0) return rc;
        if ((rc = phiq_load_vec(ld, PHIQ_NAME("attn_norm.bias"), E, biased, &ly->attn_norm_b)) < 0) return rc;
        if ((rc = phiq_load_mat(ld, PHIQ_NAME("attn_qkv.weight"), E, nq + 2 * nk, p3s, &ly->qkv)) < 0) return rc;
        ly->fused_qkv = rc == 1;
        if (ly->fused_qkv) {
            if ((rc = phiq_load_vec(ld, PHIQ_NAME("attn_qkv.bias"), nq + 2 * nk, p3s, &ly->qkv_b)) < 0) return rc;
        } else {
            if ((rc = phiq_load_mat(ld, PHIQ_NAME("attn_q.weight"), E, nq, true, &ly->q)) < 0) {
                phiq_error_prefix("no attn_qkv.weight either");
                return rc;
            }
            if ((rc = phiq_load_mat(ld, PHIQ_NAME("attn_k.weight"), E, nk, true, &ly->k)) < 0) return rc;
            if ((rc = phiq_load_mat(ld, PHIQ_NAME("attn_v.weight"), E, nk, true, &ly->v)) < 0) return rc;
            if ((rc = phiq_load_vec(ld, PHIQ_NAME("attn_q.bias"), nq, false, &ly->q_b)) < 0) return rc;
            if ((rc = phiq_load_vec(ld, PHIQ_NAME("attn_k.bias"), nk, false, &ly->k_b)) < 0) return rc;
            if ((rc = phiq_load_vec(ld, PHIQ_NAME("attn_v.bias"), nk, false, &ly->v_b)) < 0) return rc;
        }
        if ((rc = phiq_load_mat(ld, PHIQ_NAME("attn_output.weight"), nq, E, true, &ly->wo)) < 0) return rc;
        if ((rc = phiq_load_vec(ld, PHIQ_NAME("attn_output.bias"), E, biased, &ly->wo_b)) < 0) return rc;
        if (!phi2) {
            if ((rc = phiq_load_vec(ld, PHIQ_NAME("ffn_norm.weight"), E, true, &ly->ffn_norm)) < 0) return rc;
            if ((rc = phiq_load_vec(ld, PHIQ_NAME("ffn_norm.bias"), E, moe || p3s, &ly->ffn_norm_b)) < 0) return rc;
        }
        if (moe) {
            if ((rc = phiq_load_experts(ld, L, ly)) < 0) return rc;
            continue;
        }
        if ((rc = phiq_load_mat(ld, PHIQ_NAME("ffn_up.weight"), E, phi2 ? F : 2 * F, true, &ly->up)) < 0) return rc;
        if ((rc = phiq_load_vec(ld, PHIQ_NAME("ffn_up.bias"), phi2 ? F : 2 * F, phi2 || p3s, &ly->up_b)) < 0) return rc;
        if ((rc = phiq_load_mat(ld, PHIQ_NAME("ffn_down.weight"), F, E, true, &ly->down)) < 0) return rc;
        if ((rc = phiq_load_vec(ld, PHIQ_NAME("ffn_down.bias"), E, phi2 || p3s, &ly->down_b)) < 0) return rc;
#undef PHIQ_NAME
    }
    if (phi2) {
        m->gelu_table = phiq_model_own(m, malloc(65536 * sizeof(uint16_t)));
        if (!m->gelu_table) return phiq_fail(PHIQ_ENOMEM, "%s: out of memory", ld->file);
        phiq_gelu_table_init(m->gelu_table);
    }
    return 0;
}

/* One unsigned number from a file ("max" or a missing file: UINT64_MAX). */
static uint64_t phiq_read_u64(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return UINT64_MAX;
    unsigned long long v = 0;
    int ok = fscanf(f, "%llu", &v) == 1;
    fclose(f);
    return ok ? (uint64_t)v : UINT64_MAX;
}

/* A "key value" line of a memory.stat file, 0 when absent. */
static uint64_t phiq_stat_u64(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char k[64];
    unsigned long long v;
    uint64_t out = 0;
    while (fscanf(f, "%63s %llu", k, &v) == 2)
        if (!strcmp(k, key)) out = (uint64_t)v;
    fclose(f);
    return out;
}

/* Memory this process may still use, in bytes (0 when unknown): MemAvailable,
 * lowered to the room left under a cgroup memory limit (containers see the
 * host's MemAvailable; the file's page cache is reclaimable, so it does not
 * count against the room). */
static uint64_t phiq_mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[512];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
    uint64_t avail = (uint64_t)kb * 1024;
    f = fopen("/proc/self/cgroup", "r");
    if (!f) return avail;
    char dir[512 + 64] = "";
    int v2 = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *path = NULL;
        if (!strncmp(line, "0::", 3)) path = line + 3, v2 = 1; /* unified hierarchy */
        else if (strstr(line, ":memory:")) path = strstr(line, ":memory:") + 8, v2 = 0;
        if (!path) continue;
        snprintf(dir, sizeof dir, "/sys/fs/cgroup%s%s", v2 ? "" : "/memory", path);
        if (!v2) break; /* v1 memory controller found */
    }
    fclose(f);
    if (!dir[0]) return avail;
    char p[sizeof dir + 32];
    snprintf(p, sizeof p, "%s/%s", dir, v2 ? "memory.max" : "memory.limit_in_bytes");
    uint64_t limit = phiq_read_u64(p);
    if (limit >= ((uint64_t)1 << 60)) return avail; /* no limit */
    snprintf(p, sizeof p, "%s/%s", dir, v2 ? "memory.current" : "memory.usage_in_bytes");
    uint64_t used = phiq_read_u64(p);
    snprintf(p, sizeof p, "%s/memory.stat", dir);
    uint64_t cache = phiq_stat_u64(p, v2 ? "inactive_file" : "total_inactive_file");
    if (used == UINT64_MAX) return avail;
    used = cache < used ? used - cache : 0;
    uint64_t room = limit > used ? limit - used : 0;
    return room < avail ? room : avail;
}

typedef struct {
    int fd;
    uint8_t *dst;
    uint64_t off, n, done;
    int err;
} phiq_pread_job;

static void *phiq_pread_worker(void *arg) {
    phiq_pread_job *j = arg;
    while (j->done < j->n) {
        uint64_t left = j->n - j->done;
        size_t want = left > ((uint64_t)1 << 30) ? ((size_t)1 << 30) : (size_t)left;
        ssize_t got = pread(j->fd, j->dst + j->done, want, (off_t)(j->off + j->done));
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            j->err = got < 0 ? errno : 0;
            break;
        }
        j->done += (uint64_t)got;
    }
    return NULL;
}

/* Copies the GGUF tensor data into private memory on transparent huge pages
 * (see phiq_weights_mode). pread, not the map, so the file's page cache is
 * not also counted in this process's RSS. */
static int phiq_weights_copy(phiq_model *m, const char *path, phiq_weights_mode mode, int n_threads) {
    uint64_t off = phiq_gguf_data_offset(m->gguf), fsz = phiq_gguf_file_size(m->gguf);
    if (mode == PHIQ_WEIGHTS_MMAP || off >= fsz) return 0;
    const uint64_t n = fsz - off;
    if (mode == PHIQ_WEIGHTS_AUTO) {
        uint64_t avail = phiq_mem_available();
        if (avail == 0 || n > avail / 2) return 0;
    }
    const size_t huge = (size_t)2 << 20;
    size_t size = (size_t)n;
    uint8_t *p = phiq_huge_alloc(&size);
    if (!p) {
        if (mode == PHIQ_WEIGHTS_AUTO) return 0;
        return phiq_fail(PHIQ_ENOMEM, "%s: cannot allocate %llu MB for the weights (the file map needs none)", path,
                         (unsigned long long)(n >> 20));
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        phiq_huge_free(p, size);
        return phiq_fail(PHIQ_EIO, "%s: cannot reopen to read the weights: %s", path, strerror(errno));
    }
    /* threads share the page faults (and the kernel's huge page compaction) */
    int nt = n_threads > 0 ? n_threads : phiq_physical_cores();
    if (nt > 16) nt = 16;
    if ((uint64_t)nt * huge > n) nt = 1;
    phiq_pread_job jobs[16];
    pthread_t th[16];
    uint64_t per = (n / (uint64_t)nt + huge - 1) / huge * huge;
    int started = 0;
    for (int t = 0; t < nt; t++) {
        uint64_t lo = per * (uint64_t)t, hi = lo + per < n ? lo + per : n;
        jobs[t] = (phiq_pread_job){fd, p + lo, off + lo, lo < hi ? hi - lo : 0, 0, 0};
        if (t == 0 || pthread_create(&th[t], NULL, phiq_pread_worker, &jobs[t]) != 0) continue;
        started |= 1 << t;
    }
    for (int t = 0; t < nt; t++)
        if (!(started & (1 << t))) phiq_pread_worker(&jobs[t]);
    for (int t = 0; t < nt; t++)
        if (started & (1 << t)) pthread_join(th[t], NULL);
    close(fd);
    for (int t = 0; t < nt; t++)
        if (jobs[t].done < jobs[t].n) {
            phiq_huge_free(p, size);
            return phiq_fail(PHIQ_EIO, "%s: reading the weights at byte %llu: %s", path,
                             (unsigned long long)(jobs[t].off + jobs[t].done),
                             jobs[t].err ? strerror(jobs[t].err) : "the file shrank while loading");
        }
    m->weights = p;
    m->weights_size = size;
    return 0;
}

phiq_model *phiq_model_load(const char *path, const phiq_model_params *p) { return phiq_model_load_ex(path, p, 0); }

phiq_model *phiq_model_load_ex(const char *path, const phiq_model_params *p, unsigned flags) {
    const bool lazy_layers = (flags & PHIQ_LOAD_LAZY_LAYERS) != 0;
    if (!path) return phiq_fail_null(PHIQ_EINVAL, "model path is NULL");
    phiq_model *m = calloc(1, sizeof *m);
    if (!m) return phiq_fail_null(PHIQ_ENOMEM, "%s: out of memory", path);
    m->path = strdup(path);
    phiq_loader ld = {m, path, PHIQ_GGML_TYPE_F16, lazy_layers, (flags & PHIQ_LOAD_KEEP_BF16) != 0};
    m->keep_bf16 = ld.keep_bf16;
    int rc;
    if (phiq_dir_exists(path)) {
        const char *ty = p && p->type ? p->type : "f16";
        int t = phiq_ggml_type_from_name(ty);
        if (t < 0 || !phiq_quant_can_quantize(t) || !phiq_ops_type_supported(t)) {
            phiq_model_free(m);
            return phiq_fail_null(PHIQ_EUNSUPPORTED, "%s: in-memory type '%s' is not supported for HF directories (f16, bf16, f32, q8_0, q4_k, ...)", path, ty);
        }
        ld.target = t;
        m->lazy_target = t;
        m->hf = phiq_hf_open(path);
        if (!m->hf) {
            phiq_model_free(m);
            return NULL;
        }
        m->hp = *phiq_hf_hparams(m->hf);
    } else {
        m->gguf = phiq_gguf_open(path);
        if (!m->gguf) {
            phiq_model_free(m);
            return NULL;
        }
        if ((rc = phiq_hparams_from_gguf(m->gguf, &m->hp)) < 0 ||
            (rc = phiq_weights_copy(m, path, lazy_layers ? PHIQ_WEIGHTS_MMAP : p ? p->weights : PHIQ_WEIGHTS_AUTO,
                                    p ? p->n_threads : 0)) < 0) {
            phiq_model_free(m);
            return NULL;
        }
    }
    if ((rc = phiq_hparams_check(path, &m->hp)) < 0 || (rc = phiq_model_load_tensors(m, &ld)) < 0) {
        phiq_model_free(m);
        return NULL;
    }
    if (m->hp.n_ctx_orig <= 0) m->hp.n_ctx_orig = m->hp.n_ctx_train;
    /* the vocabulary is optional for inference (synthetic models have none) */
    m->tok = m->gguf ? phiq_tokenizer_from_gguf(m->gguf) : phiq_tokenizer_from_hf_dir(path);
    return m;
}

/* Lazily held layer matrices: acquire converts those of layers [l0, l1)
 * still in a file type other than the in-memory one (exactly as an eager
 * load would; BF16 ones stay as they are with keep_bf16) and returns their
 * file pages; release frees the conversions and returns the pages of the
 * matrices read in place. */
int phiq_model_layers_acquire(phiq_model *m, int l0, int l1) {
    for (int i = 0; i < m->n_lazy; i++) {
        phiq_lazy_mat *z = &m->lazy[i];
        if (z->layer < l0 || z->layer >= l1 || z->buf || !m->hf || z->src.type == m->lazy_target ||
            (m->keep_bf16 && z->src.type == PHIQ_GGML_TYPE_BF16))
            continue;
        const int64_t n_in = z->src.n_in, n_out = z->src.n_out, trb = phiq_ggml_row_size(m->lazy_target, n_in);
        if (trb <= 0)
            return phiq_fail(PHIQ_EUNSUPPORTED, "%s: rows of %lld cannot be stored as %s", m->path, (long long)n_in,
                             phiq_ggml_type_name(m->lazy_target));
        uint8_t *buf = malloc((size_t)trb * (size_t)n_out);
        float *tmp = malloc((size_t)n_in * sizeof(float));
        int rc = buf && tmp ? 0 : phiq_fail(PHIQ_ENOMEM, "%s: out of memory converting layer %d", m->path, z->layer);
        for (int64_t r = 0; r < n_out && rc >= 0; r++)
            rc = phiq_convert_row(z->src.type, (const uint8_t *)z->src.data + (size_t)r * z->src.row_bytes,
                                  m->lazy_target, buf + (size_t)r * (size_t)trb, n_in, tmp);
        free(tmp);
        if (rc < 0) {
            free(buf);
            return rc;
        }
        phiq_release_pages(z->src.data, (uint64_t)z->src.row_bytes * (uint64_t)n_out);
        z->buf = buf;
        z->mat->data = buf;
        z->mat->type = m->lazy_target;
        z->mat->row_bytes = (size_t)trb;
    }
    return 0;
}

void phiq_model_layers_release(phiq_model *m, int l0, int l1) {
    for (int i = 0; i < m->n_lazy; i++) {
        phiq_lazy_mat *z = &m->lazy[i];
        if (z->layer < l0 || z->layer >= l1) continue;
        free(z->buf);
        z->buf = NULL;
        *z->mat = z->src;
        phiq_release_pages(z->src.data, (uint64_t)z->src.row_bytes * (uint64_t)z->src.n_out);
    }
}

void phiq_model_free(phiq_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_lazy; i++) free(m->lazy[i].buf);
    free(m->lazy);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    phiq_huge_free(m->weights, m->weights_size);
    if (m->gguf) phiq_gguf_close(m->gguf);
    if (m->hf) phiq_hf_close(m->hf);
    phiq_tokenizer_free(m->tok);
    free(m->path);
    free(m);
}
