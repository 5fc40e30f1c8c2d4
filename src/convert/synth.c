/* synth.c — writes random-weight Hugging Face Phi checkpoints (see synth.h):
 * the presets' shapes, config.json / generation_config.json as the real
 * checkpoints spell them, BF16 tensors streamed chunk by chunk from a seeded
 * generator (never the whole model in memory), optional sharding, and the
 * tokenizer files (copied from the fixtures, or built from tiktoken ranks).
 */
#include "convert/synth.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common.h"
#include "formats/safetensors.h"
#include "tokenizer/tokenizer.h"

#define SYNTH_DEFAULT_SHARD ((uint64_t)2 << 30)

/* ---- presets ------------------------------------------------------------------------ */

static void preset_phi3_base(phiq_synth_params *p) {
    memset(p, 0, sizeof *p);
    p->arch = PHIQ_ARCH_PHI3;
    p->n_vocab = 32064; p->n_embd = 3072; p->n_ff = 8192; p->n_layer = 32; p->n_head = 32; p->n_head_kv = 32;
    p->partial_rotary = 1.0;
    p->n_ctx_train = p->n_ctx_orig = 4096;
    p->rope_theta = 10000.0;
    p->sliding_window = 2047;
    p->bos_id = 1; p->eos_id = 32000; p->pad_id = 32000;
    p->gen_eos[0] = 32000; p->gen_eos[1] = 32001; p->gen_eos[2] = 32007; p->n_gen_eos = 3;
    p->tokenizer = PHIQ_SYNTH_TOK_PHI3;
    p->seed = 1;
}

const char *phiq_synth_preset_names(void) {
    return "phi-2, phi-3-mini-4k, phi-3-mini-128k, phi-3.5-mini, phi-3-medium, phi-3.5-moe, phi-3-small, phi-3-small-128k, "
           "phi-3-small-tiny, phi-4, phi-4-mini";
}

int phiq_synth_preset(const char *name, phiq_synth_params *p) {
    preset_phi3_base(p);
    if (!strcmp(name, "phi-3-mini-4k")) return 0;
    if (!strcmp(name, "phi-3-mini-128k") || !strcmp(name, "phi-3.5-mini")) {
        p->n_ctx_train = 131072;
        p->sliding_window = 262144;
        return 0;
    }
    if (!strcmp(name, "phi-3-medium")) { /* the 4k variant */
        p->n_embd = 5120; p->n_ff = 17920; p->n_layer = 40; p->n_head = 40; p->n_head_kv = 10;
        return 0;
    }
    if (!strcmp(name, "phi-3.5-moe")) { /* Phi-3.5-MoE-instruct's config.json */
        p->arch = PHIQ_ARCH_PHIMOE;
        p->n_embd = 4096; p->n_ff = 6400; p->n_head = 32; p->n_head_kv = 8;
        p->n_expert = 16; p->n_expert_used = 2;
        p->n_ctx_train = 131072;
        p->sliding_window = 131072;
        p->pad_id = -1;
        p->gen_eos[0] = 32000; p->gen_eos[1] = 32007; p->n_gen_eos = 2;
        return 0;
    }
    if (!strcmp(name, "phi-3-small-tiny")) { /* test size: 2 layers (one block-sparse, one dense), blocks of 16 */
        phiq_synth_preset("phi-3-small", p);
        p->n_embd = 128; p->n_ff = 256; p->n_layer = 2; p->n_head = 4; p->n_head_kv = 2;
        p->bs_block = 16; p->bs_local = 2; p->bs_stride = 2;
        return 0;
    }
    if (!strcmp(name, "phi-3-small") || !strcmp(name, "phi-3-small-128k")) { /* Phi-3-small-8k/128k-instruct */
        p->arch = PHIQ_ARCH_PHI3SMALL;
        p->n_vocab = 100352; p->n_embd = 4096; p->n_ff = 14336; p->n_head = 32; p->n_head_kv = 8;
        p->n_ctx_train = p->n_ctx_orig = 8192;
        if (name[11]) p->n_ctx_train = 131072;
        p->rope_theta = 1e6;
        p->sliding_window = 0;
        p->tied = true;
        p->bs_block = 64; p->bs_local = 16; p->bs_stride = 8; p->bs_dense_every = 2;
        p->bos_id = p->eos_id = 100257; p->pad_id = -1;
        p->gen_eos[0] = 100257; p->n_gen_eos = 1;
        p->tokenizer = PHIQ_SYNTH_TOK_PHI3SMALL;
        return 0;
    }
    if (!strcmp(name, "phi-4")) {
        p->n_vocab = 100352; p->n_embd = 5120; p->n_ff = 17920; p->n_layer = 40; p->n_head = 40; p->n_head_kv = 10;
        p->n_ctx_train = p->n_ctx_orig = 16384;
        p->rope_theta = 250000.0;
        p->sliding_window = 0;
        p->bos_id = 100257; p->eos_id = 100265; p->pad_id = 100349;
        p->gen_eos[0] = 100265; p->n_gen_eos = 1;
        p->tokenizer = PHIQ_SYNTH_TOK_CL100K;
        return 0;
    }
    if (!strcmp(name, "phi-4-mini")) {
        p->n_vocab = 200064; p->n_head = 24; p->n_head_kv = 8;
        p->partial_rotary = 0.75;
        p->n_ctx_train = 131072;
        p->longrope_short_ones = true;
        p->sliding_window = 262144;
        p->tied = true;
        p->bos_id = p->eos_id = p->pad_id = 199999;
        p->gen_eos[0] = 200020; p->gen_eos[1] = 199999; p->n_gen_eos = 2;
        p->tokenizer = PHIQ_SYNTH_TOK_O200K;
        return 0;
    }
    if (!strcmp(name, "phi-2")) {
        p->arch = PHIQ_ARCH_PHI2;
        p->n_vocab = 51200; p->n_embd = 2560; p->n_ff = 10240; p->n_layer = 32; p->n_head = 32; p->n_head_kv = 32;
        p->partial_rotary = 0.4;
        p->n_ctx_train = p->n_ctx_orig = 2048;
        p->sliding_window = 0;
        p->bos_id = p->eos_id = 50256; p->pad_id = -1;
        p->gen_eos[0] = 50256; p->n_gen_eos = 1;
        p->tokenizer = PHIQ_SYNTH_TOK_GPT2;
        return 0;
    }
    return phiq_fail(PHIQ_EINVAL, "unknown preset '%s' (known: %s)", name, phiq_synth_preset_names());
}

/* ---- checks ------------------------------------------------------------------------- */

static int synth_check(const phiq_synth_params *p) {
    if (p->n_vocab < 1 || p->n_embd < 1 || p->n_layer < 1 || p->n_head < 1 || p->n_head_kv < 1 || p->n_ff < 1 ||
        p->n_vocab > (1 << 24) || p->n_embd > (1 << 20) || p->n_ff > (1 << 22) || p->n_layer > 1024 || p->n_head > 4096)
        return phiq_fail(PHIQ_EINVAL, "dimensions must be positive and plausible");
    if (p->n_embd % p->n_head) return phiq_fail(PHIQ_EINVAL, "hidden %d not a multiple of heads %d", p->n_embd, p->n_head);
    if (p->n_head % p->n_head_kv) return phiq_fail(PHIQ_EINVAL, "heads %d not a multiple of kv-heads %d", p->n_head, p->n_head_kv);
    int n_rot = (int)(p->partial_rotary * p->n_embd) / p->n_head;
    if (n_rot < 2 || n_rot % 2 || n_rot > p->n_embd / p->n_head || n_rot / 2 > PHIQ_MAX_ROPE_FACTORS)
        return phiq_fail(PHIQ_EINVAL, "rotary dims %d (partial %.3g) must be even, <= head_dim", n_rot, p->partial_rotary);
    if (p->arch == PHIQ_ARCH_PHIMOE && (p->n_expert < 1 || p->n_expert_used < 1 || p->n_expert_used > p->n_expert || p->n_expert > 256))
        return phiq_fail(PHIQ_EINVAL, "phimoe needs 1 <= experts-used <= experts <= 256");
    if (p->n_ctx_orig < 1 || p->n_ctx_orig > p->n_ctx_train) return phiq_fail(PHIQ_EINVAL, "original context must be in [1, max context]");
    if (p->arch == PHIQ_ARCH_PHI3SMALL && (p->bs_block < 16 || (p->bs_block & (p->bs_block - 1)) || p->bs_local < 1 || p->bs_stride < 1 || p->bs_dense_every < 0))
        return phiq_fail(PHIQ_EINVAL, "phi3small needs a power-of-two block >= 16 (its triton kernel's), local blocks >= 1, stride >= 1");
    return 0;
}

/* ---- tensors ---------------------------------------------------------------------- */

typedef enum { W_MATRIX, W_NORM, W_BIAS } wkind;

typedef struct {
    phiq_st_out_tensor *t;
    wkind *kind;
    char **names;
    int n, cap;
} tlist;

static int tl_add(tlist *l, wkind k, int64_t d0, int64_t d1, const char *fmt, ...) PHIQ_PRINTF(5, 6);
static int tl_add(tlist *l, wkind k, int64_t d0, int64_t d1, const char *fmt, ...) {
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 64;
        phiq_st_out_tensor *nt = realloc(l->t, (size_t)nc * sizeof *nt);
        if (nt) l->t = nt;
        wkind *nk = realloc(l->kind, (size_t)nc * sizeof *nk);
        if (nk) l->kind = nk;
        char **nn = realloc(l->names, (size_t)nc * sizeof *nn);
        if (nn) l->names = nn;
        if (!nt || !nk || !nn) return phiq_fail(PHIQ_ENOMEM, "out of memory listing the synthetic tensors");
        l->cap = nc;
    }
    char buf[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *nm = strdup(buf);
    if (!nm) return phiq_fail(PHIQ_ENOMEM, "out of memory listing the synthetic tensors");
    phiq_st_out_tensor *t = &l->t[l->n];
    memset(t, 0, sizeof *t);
    t->name = nm;
    t->dtype = PHIQ_ST_BF16;
    t->n_dims = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    l->kind[l->n] = k;
    l->names[l->n] = nm;
    l->n++;
    return 0;
}

/* Phi-2 and PhiMoE layers open alike: a LayerNorm with bias, then separate
 * q/k/v projections and the output projection (named `out`), all biased. */
static int tl_add_ln_attn(tlist *l, const char *L, int i, int64_t H, int64_t q, int64_t kv, const char *out) {
    return tl_add(l, W_NORM, H, 0, "%s.%d.input_layernorm.weight", L, i) ||
           tl_add(l, W_BIAS, H, 0, "%s.%d.input_layernorm.bias", L, i) ||
           tl_add(l, W_MATRIX, q, H, "%s.%d.self_attn.q_proj.weight", L, i) ||
           tl_add(l, W_BIAS, q, 0, "%s.%d.self_attn.q_proj.bias", L, i) ||
           tl_add(l, W_MATRIX, kv, H, "%s.%d.self_attn.k_proj.weight", L, i) ||
           tl_add(l, W_BIAS, kv, 0, "%s.%d.self_attn.k_proj.bias", L, i) ||
           tl_add(l, W_MATRIX, kv, H, "%s.%d.self_attn.v_proj.weight", L, i) ||
           tl_add(l, W_BIAS, kv, 0, "%s.%d.self_attn.v_proj.bias", L, i) ||
           tl_add(l, W_MATRIX, H, q, "%s.%d.self_attn.%s.weight", L, i, out) ||
           tl_add(l, W_BIAS, H, 0, "%s.%d.self_attn.%s.bias", L, i, out);
}

static void tl_free(tlist *l) {
    for (int i = 0; i < l->n; i++) free(l->names[i]);
    free(l->t);
    free(l->kind);
    free(l->names);
}

/* Tensor names and shapes exactly as the HF modeling code stores them
 * (nn.Linear weights are [out, in]). */
static int list_tensors(const phiq_synth_params *p, tlist *l) {
    int64_t H = p->n_embd, V = p->n_vocab, I = p->n_ff, d = p->n_embd / p->n_head;
    int64_t q = p->n_head * d, kv = p->n_head_kv * d;
    int rc = tl_add(l, W_MATRIX, V, H, "model.embed_tokens.weight");
    for (int i = 0; i < p->n_layer && !rc; i++) {
        const char *L = "model.layers";
        switch (p->arch) {
        case PHIQ_ARCH_PHI3:
            rc = tl_add(l, W_NORM, H, 0, "%s.%d.input_layernorm.weight", L, i) ||
                 tl_add(l, W_MATRIX, q + 2 * kv, H, "%s.%d.self_attn.qkv_proj.weight", L, i) ||
                 tl_add(l, W_MATRIX, H, q, "%s.%d.self_attn.o_proj.weight", L, i) ||
                 tl_add(l, W_NORM, H, 0, "%s.%d.post_attention_layernorm.weight", L, i) ||
                 tl_add(l, W_MATRIX, 2 * I, H, "%s.%d.mlp.gate_up_proj.weight", L, i) ||
                 tl_add(l, W_MATRIX, H, I, "%s.%d.mlp.down_proj.weight", L, i);
            break;
        case PHIQ_ARCH_PHI2:
            rc = tl_add_ln_attn(l, L, i, H, q, kv, "dense") ||
                 tl_add(l, W_MATRIX, I, H, "%s.%d.mlp.fc1.weight", L, i) ||
                 tl_add(l, W_BIAS, I, 0, "%s.%d.mlp.fc1.bias", L, i) ||
                 tl_add(l, W_MATRIX, H, I, "%s.%d.mlp.fc2.weight", L, i) ||
                 tl_add(l, W_BIAS, H, 0, "%s.%d.mlp.fc2.bias", L, i);
            break;
        case PHIQ_ARCH_PHI3SMALL: /* modeling_phi3_small.py: biases everywhere, KV-group-major fused QKV */
            rc = tl_add(l, W_NORM, H, 0, "%s.%d.input_layernorm.weight", L, i) ||
                 tl_add(l, W_BIAS, H, 0, "%s.%d.input_layernorm.bias", L, i) ||
                 tl_add(l, W_MATRIX, q + 2 * kv, H, "%s.%d.self_attn.query_key_value.weight", L, i) ||
                 tl_add(l, W_BIAS, q + 2 * kv, 0, "%s.%d.self_attn.query_key_value.bias", L, i) ||
                 tl_add(l, W_MATRIX, H, q, "%s.%d.self_attn.dense.weight", L, i) ||
                 tl_add(l, W_BIAS, H, 0, "%s.%d.self_attn.dense.bias", L, i) ||
                 tl_add(l, W_NORM, H, 0, "%s.%d.post_attention_layernorm.weight", L, i) ||
                 tl_add(l, W_BIAS, H, 0, "%s.%d.post_attention_layernorm.bias", L, i) ||
                 tl_add(l, W_MATRIX, 2 * I, H, "%s.%d.mlp.up_proj.weight", L, i) ||
                 tl_add(l, W_BIAS, 2 * I, 0, "%s.%d.mlp.up_proj.bias", L, i) ||
                 tl_add(l, W_MATRIX, H, I, "%s.%d.mlp.down_proj.weight", L, i) ||
                 tl_add(l, W_BIAS, H, 0, "%s.%d.mlp.down_proj.bias", L, i);
            break;
        case PHIQ_ARCH_PHIMOE:
            rc = tl_add_ln_attn(l, L, i, H, q, kv, "o_proj") ||
                 tl_add(l, W_NORM, H, 0, "%s.%d.post_attention_layernorm.weight", L, i) ||
                 tl_add(l, W_BIAS, H, 0, "%s.%d.post_attention_layernorm.bias", L, i) ||
                 tl_add(l, W_MATRIX, p->n_expert, H, "%s.%d.block_sparse_moe.gate.weight", L, i);
            for (int e = 0; e < p->n_expert && !rc; e++)
                rc = tl_add(l, W_MATRIX, I, H, "%s.%d.block_sparse_moe.experts.%d.w1.weight", L, i, e) ||
                     tl_add(l, W_MATRIX, H, I, "%s.%d.block_sparse_moe.experts.%d.w2.weight", L, i, e) ||
                     tl_add(l, W_MATRIX, I, H, "%s.%d.block_sparse_moe.experts.%d.w3.weight", L, i, e);
            break;
        }
    }
    if (rc) return PHIQ_ENOMEM;
    if (p->arch == PHIQ_ARCH_PHI2 || p->arch == PHIQ_ARCH_PHI3SMALL)
        rc = tl_add(l, W_NORM, H, 0, "model.final_layernorm.weight") || tl_add(l, W_BIAS, H, 0, "model.final_layernorm.bias");
    else {
        rc = tl_add(l, W_NORM, H, 0, "model.norm.weight");
        if (!rc && p->arch == PHIQ_ARCH_PHIMOE) rc = tl_add(l, W_BIAS, H, 0, "model.norm.bias");
    }
    if (!rc && !p->tied) rc = tl_add(l, W_MATRIX, V, H, "lm_head.weight");
    if (!rc && !p->tied && p->arch != PHIQ_ARCH_PHI3 && p->arch != PHIQ_ARCH_PHI3SMALL) rc = tl_add(l, W_BIAS, V, 0, "lm_head.bias");
    return rc ? PHIQ_ENOMEM : 0;
}

static uint64_t tensor_bytes(const phiq_st_out_tensor *t) {
    uint64_t n = 2;
    for (int d = 0; d < t->n_dims; d++) n *= (uint64_t)t->shape[d];
    return n;
}

int phiq_synth_list(const phiq_synth_params *p, phiq_synth_tensor_fn fn, void *user) {
    int rc = synth_check(p);
    if (rc) return rc;
    tlist l = {0};
    rc = list_tensors(p, &l);
    for (int i = 0; i < l.n && !rc; i++) fn(user, l.names[i], l.t[i].n_dims, l.t[i].shape);
    tl_free(&l);
    return rc;
}

/* ---- random fill ----------------------------------------------------------------- */

static inline uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct {
    const tlist *l;
    int base;        /* index of this shard's first tensor in l */
    uint64_t seed;
    int cur;         /* tensor being filled (shard-relative), -1 before */
    uint64_t state;
    uint64_t pos;    /* bytes of cur done */
    phiq_progress *prog;
} filler;

static int fill_fn(void *user, int i, void *buf, uint64_t nbytes) {
    filler *f = user;
    int gi = f->base + i;
    if (i != f->cur) {
        /* Seeded by name, so values do not depend on sharding or order. */
        uint64_t h = 1469598103934665603ull;
        for (const char *c = f->l->names[gi]; *c; c++) h = (h ^ (uint8_t)*c) * 1099511628211ull;
        f->state = f->seed ^ h;
        f->cur = i;
        f->pos = 0;
    }
    wkind k = f->l->kind[gi];
    /* Irwin-Hall: the sum of four uniforms is close to normal; scaled to std
     * 0.02 (as initializer_range) so activations stay finite. */
    const float sc = 0.02f * 1.7320508f / 65536.0f; /* sum std = 65536/sqrt(3) */
    uint16_t *o = buf;
    for (uint64_t j = 0; j < nbytes / 2; j++) {
        uint64_t r = splitmix64(&f->state);
        int32_t s = (int32_t)(r & 0xffff) + (int32_t)((r >> 16) & 0xffff) + (int32_t)((r >> 32) & 0xffff) + (int32_t)(r >> 48) - 131070;
        float v = (float)s * sc;
        if (k == W_NORM) v += 1.0f;
        o[j] = phiq_f32_to_bf16(v);
    }
    f->pos += nbytes;
    if (f->pos == tensor_bytes(&f->l->t[gi])) phiq_progress_step(f->prog, f->l->names[gi], f->pos);
    return 0;
}

/* ---- JSON files -------------------------------------------------------------------- */

static int write_text(const char *dir, const char *name, const char *text, size_t len) {
    char *path = phiq_path_join(dir, name);
    if (!path) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    phiq_outfile o;
    int rc = phiq_outfile_open(&o, path);
    if (!rc) {
        rc = phiq_outfile_write(&o, text, len);
        if (rc) phiq_outfile_abort(&o);
        else rc = phiq_outfile_commit(&o);
    }
    free(path);
    return rc;
}

static int write_json(const char *dir, const char *name, cJSON *j) {
    char *s = j ? cJSON_Print(j) : NULL;
    if (!s) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) { free(s); return phiq_fail(PHIQ_ENOMEM, "out of memory"); }
    t[n] = '\n';
    int rc = write_text(dir, name, t, n + 1);
    free(t);
    return rc;
}

static void add_id(cJSON *o, const char *key, int id) {
    if (id >= 0) cJSON_AddNumberToObject(o, key, id);
    else cJSON_AddNullToObject(o, key);
}

static double round4(double x) { return round(x * 1e4) / 1e4; }

/* LongRoPE factor lists of length nf shaped like the real ones: short rising
 * gently from 1, long rising steeply to tens. */
static void longrope_factors(const phiq_synth_params *p, int nf, double *sf, double *lf) {
    for (int i = 0; i < nf; i++) {
        double x = nf > 1 ? (double)i / (nf - 1) : 0;
        sf[i] = p->longrope_short_ones ? 1.0 : round4(1.0 + 1.84 * x * x);
        lf[i] = round4(1.0 + 47.0 * x * x * x);
    }
}

/* Phi-3-small-8k/128k-instruct's config.json keys (configuration_phi3_small.py names). */
static cJSON *make_config_phi3small(const phiq_synth_params *p) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(c, "architectures"), cJSON_CreateString("Phi3SmallForCausalLM"));
    cJSON_AddNumberToObject(c, "attention_dropout_prob", 0.0);
    cJSON *am = cJSON_AddObjectToObject(c, "auto_map");
    cJSON_AddStringToObject(am, "AutoConfig", "configuration_phi3_small.Phi3SmallConfig");
    cJSON_AddStringToObject(am, "AutoModelForCausalLM", "modeling_phi3_small.Phi3SmallForCausalLM");
    cJSON_AddStringToObject(am, "AutoTokenizer", "tokenization_phi3_small.Phi3SmallTokenizer");
    cJSON_AddNumberToObject(c, "blocksparse_block_size", p->bs_block);
    cJSON_AddBoolToObject(c, "blocksparse_homo_head_pattern", false);
    cJSON_AddNumberToObject(c, "blocksparse_num_local_blocks", p->bs_local);
    cJSON_AddNumberToObject(c, "blocksparse_triton_kernel_block_size", p->bs_block);
    cJSON_AddNumberToObject(c, "blocksparse_vert_stride", p->bs_stride);
    add_id(c, "bos_token_id", p->bos_id);
    if (p->bs_dense_every > 0) cJSON_AddNumberToObject(c, "dense_attention_every_n_layers", p->bs_dense_every);
    else cJSON_AddNullToObject(c, "dense_attention_every_n_layers");
    cJSON_AddNumberToObject(c, "embedding_dropout_prob", 0.1);
    add_id(c, "eos_token_id", p->eos_id);
    cJSON_AddNullToObject(c, "ff_dim_multiplier");
    cJSON_AddNumberToObject(c, "ff_intermediate_size", p->n_ff);
    cJSON_AddNumberToObject(c, "ffn_dropout_prob", 0.1);
    cJSON_AddNumberToObject(c, "gegelu_limit", 20.0);
    cJSON_AddBoolToObject(c, "gegelu_pad_to_256", true);
    cJSON_AddStringToObject(c, "hidden_act", "gegelu");
    cJSON_AddNumberToObject(c, "hidden_size", p->n_embd);
    cJSON_AddNumberToObject(c, "initializer_range", 0.02);
    cJSON_AddNumberToObject(c, "layer_norm_epsilon", 1e-5);
    cJSON_AddNumberToObject(c, "max_position_embeddings", p->n_ctx_train);
    cJSON_AddStringToObject(c, "model_type", "phi3small");
    cJSON_AddNumberToObject(c, "mup_attn_multiplier", 1.0);
    cJSON_AddNumberToObject(c, "mup_embedding_multiplier", 10.0);
    cJSON_AddBoolToObject(c, "mup_use_scaling", true);
    cJSON_AddNumberToObject(c, "mup_width_multiplier", 8.0);
    cJSON_AddNumberToObject(c, "num_attention_heads", p->n_head);
    cJSON_AddNumberToObject(c, "num_hidden_layers", p->n_layer);
    cJSON_AddNumberToObject(c, "num_key_value_heads", p->n_head_kv);
    cJSON_AddBoolToObject(c, "pad_sequence_to_multiple_of_64", true);
    cJSON_AddBoolToObject(c, "reorder_and_upcast_attn", false);
    cJSON_AddNumberToObject(c, "rope_embedding_base", p->rope_theta);
    cJSON_AddNumberToObject(c, "rope_position_scale", 1.0);
    if (p->n_ctx_orig < p->n_ctx_train) { /* the 128k variant: LongRopeConfig's keys */
        int nf = p->n_embd / p->n_head / 2;
        double sf[PHIQ_MAX_ROPE_FACTORS], lf[PHIQ_MAX_ROPE_FACTORS];
        longrope_factors(p, nf, sf, lf);
        cJSON *rs = cJSON_AddObjectToObject(c, "rope_scaling");
        cJSON_AddItemToObject(rs, "long_factor", cJSON_CreateDoubleArray(lf, nf));
        cJSON_AddNumberToObject(rs, "original_max_position_embeddings", p->n_ctx_orig);
        cJSON_AddItemToObject(rs, "short_factor", cJSON_CreateDoubleArray(sf, nf));
        cJSON_AddStringToObject(rs, "type", "su");
    } else {
        cJSON_AddNullToObject(c, "rope_scaling");
    }
    cJSON_AddStringToObject(c, "torch_dtype", "bfloat16");
    cJSON_AddStringToObject(c, "transformers_version", "4.38.1");
    cJSON_AddBoolToObject(c, "use_cache", true);
    cJSON_AddNumberToObject(c, "vocab_size", p->n_vocab);
    if (!p->tied) cJSON_AddBoolToObject(c, "tie_word_embeddings", false);
    return c;
}

static cJSON *make_config(const phiq_synth_params *p) {
    if (p->arch == PHIQ_ARCH_PHI3SMALL) return make_config_phi3small(p);
    cJSON *c = cJSON_CreateObject();
    bool phi2 = p->arch == PHIQ_ARCH_PHI2, moe = p->arch == PHIQ_ARCH_PHIMOE;
    cJSON *a = cJSON_AddArrayToObject(c, "architectures");
    cJSON_AddItemToArray(a, cJSON_CreateString(phi2 ? "PhiForCausalLM" : moe ? "PhiMoEForCausalLM" : "Phi3ForCausalLM"));
    cJSON_AddStringToObject(c, "model_type", phi2 ? "phi" : moe ? "phimoe" : "phi3");
    cJSON_AddBoolToObject(c, "attention_bias", phi2 || moe);
    cJSON_AddNumberToObject(c, "attention_dropout", 0.0);
    add_id(c, "bos_token_id", p->bos_id);
    cJSON_AddNumberToObject(c, "embd_pdrop", 0.0);
    add_id(c, "eos_token_id", p->eos_id);
    cJSON_AddStringToObject(c, "hidden_act", phi2 ? "gelu_new" : "silu");
    cJSON_AddNumberToObject(c, "hidden_size", p->n_embd);
    cJSON_AddNumberToObject(c, "initializer_range", 0.02);
    cJSON_AddNumberToObject(c, "intermediate_size", p->n_ff);
    if (phi2) cJSON_AddNumberToObject(c, "layer_norm_eps", 1e-5);
    const double ms_short = p->short_mscale > 0 ? p->short_mscale : 1.243163121016122;
    const double ms_long = p->long_mscale > 0 ? p->long_mscale : 1.243163121016122;
    if (moe) {
        cJSON_AddNumberToObject(c, "input_jitter_noise", 0.01);
        cJSON_AddBoolToObject(c, "lm_head_bias", true);
    }
    cJSON_AddNumberToObject(c, "max_position_embeddings", p->n_ctx_train);
    cJSON_AddNumberToObject(c, "num_attention_heads", p->n_head);
    if (moe) {
        cJSON_AddNumberToObject(c, "num_experts_per_tok", p->n_expert_used);
        cJSON_AddNumberToObject(c, "num_local_experts", p->n_expert);
    }
    cJSON_AddNumberToObject(c, "num_hidden_layers", p->n_layer);
    cJSON_AddNumberToObject(c, "num_key_value_heads", p->n_head_kv);
    if (!phi2) cJSON_AddNumberToObject(c, "original_max_position_embeddings", p->n_ctx_orig);
    add_id(c, "pad_token_id", p->pad_id);
    cJSON_AddNumberToObject(c, "partial_rotary_factor", p->partial_rotary);
    if (phi2) cJSON_AddBoolToObject(c, "qk_layernorm", false);
    cJSON_AddNumberToObject(c, "resid_pdrop", 0.0);
    if (!phi2) cJSON_AddNumberToObject(c, "rms_norm_eps", 1e-5);
    if (moe) cJSON_AddNumberToObject(c, "router_jitter_noise", p->router_jitter > 0 ? p->router_jitter : 0.01);
    if (p->n_ctx_orig < p->n_ctx_train && !phi2) {
        int n_rot = (int)(p->partial_rotary * p->n_embd) / p->n_head, nf = n_rot / 2;
        double sf[PHIQ_MAX_ROPE_FACTORS], lf[PHIQ_MAX_ROPE_FACTORS];
        longrope_factors(p, nf, sf, lf);
        cJSON *rs = cJSON_AddObjectToObject(c, "rope_scaling");
        cJSON_AddItemToObject(rs, "long_factor", cJSON_CreateDoubleArray(lf, nf));
        if (moe) {
            cJSON_AddNumberToObject(rs, "long_mscale", ms_long);
            cJSON_AddNumberToObject(rs, "original_max_position_embeddings", p->n_ctx_orig);
        }
        cJSON_AddItemToObject(rs, "short_factor", cJSON_CreateDoubleArray(sf, nf));
        if (moe) cJSON_AddNumberToObject(rs, "short_mscale", ms_short);
        cJSON_AddStringToObject(rs, "type", "longrope");
    } else {
        cJSON_AddNullToObject(c, "rope_scaling");
    }
    cJSON_AddNumberToObject(c, "rope_theta", p->rope_theta);
    if (!phi2) {
        if (p->sliding_window > 0) cJSON_AddNumberToObject(c, "sliding_window", p->sliding_window);
        else cJSON_AddNullToObject(c, "sliding_window");
    }
    cJSON_AddBoolToObject(c, "tie_word_embeddings", p->tied);
    cJSON_AddStringToObject(c, "torch_dtype", "bfloat16");
    cJSON_AddStringToObject(c, "transformers_version", "4.44.2");
    cJSON_AddBoolToObject(c, "use_cache", true);
    cJSON_AddNumberToObject(c, "vocab_size", p->n_vocab);
    return c;
}

static cJSON *make_generation_config(const phiq_synth_params *p) {
    cJSON *g = cJSON_CreateObject();
    cJSON_AddBoolToObject(g, "_from_model_config", false);
    add_id(g, "bos_token_id", p->bos_id);
    if (p->n_gen_eos == 1) cJSON_AddNumberToObject(g, "eos_token_id", p->gen_eos[0]);
    else if (p->n_gen_eos > 1) cJSON_AddItemToObject(g, "eos_token_id", cJSON_CreateIntArray(p->gen_eos, p->n_gen_eos));
    if (p->pad_id >= 0) cJSON_AddNumberToObject(g, "pad_token_id", p->pad_id);
    cJSON_AddStringToObject(g, "transformers_version", "4.44.2");
    return g;
}

static int copy_file(const char *src_dir, const char *name, const char *dst_dir, bool optional) {
    char *src = phiq_path_join(src_dir, name);
    if (!src) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    if (optional && !phiq_file_exists(src)) { free(src); return 0; }
    char *txt;
    size_t len;
    int rc = phiq_read_file(src, &txt, &len);
    free(src);
    if (rc) return rc;
    rc = write_text(dst_dir, name, txt, len);
    free(txt);
    return rc;
}

static cJSON *added_token(int id, const char *s);

/* As the Phi-3-small checkpoints ship it: the tiktoken ranks and a
 * tokenizer_config.json naming the remote-code Phi3SmallTokenizer, its
 * special tokens (added_tokens_decoder) and chat template; no tokenizer.json. */
static int phi3small_tokenizer(const char *tokdir, const char *dir) {
    char *src = phiq_path_join(tokdir, "tiktoken");
    if (!src) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    int rc = copy_file(src, "cl100k_base.tiktoken", dir, false);
    free(src);
    if (rc) return rc;
    cJSON *tc = cJSON_CreateObject();
    cJSON *atd = cJSON_AddObjectToObject(tc, "added_tokens_decoder");
    for (int id = PHIQ_PHI3SMALL_FIRST_SPECIAL; id < PHIQ_PHI3SMALL_N_VOCAB; id++) {
        char nm[32], idk[16];
        phiq_phi3small_special(id, nm, sizeof nm, NULL);
        snprintf(idk, sizeof idk, "%d", id);
        cJSON *t = added_token(id, nm);
        cJSON_DeleteItemFromObject(t, "id");
        cJSON_AddItemToObject(atd, idk, t);
    }
    cJSON *am = cJSON_AddObjectToObject(tc, "auto_map");
    cJSON *at = cJSON_AddArrayToObject(am, "AutoTokenizer");
    cJSON_AddItemToArray(at, cJSON_CreateString("tokenization_phi3_small.Phi3SmallTokenizer"));
    cJSON_AddItemToArray(at, cJSON_CreateString("tokenization_phi3_small.Phi3SmallTokenizer"));
    cJSON_AddStringToObject(tc, "bos_token", "<|endoftext|>");
    cJSON_AddStringToObject(tc, "chat_template", phiq_phi3small_chat_template());
    cJSON_AddBoolToObject(tc, "clean_up_tokenization_spaces", true);
    cJSON_AddStringToObject(tc, "eos_token", "<|endoftext|>");
    cJSON_AddNumberToObject(tc, "model_max_length", 8192);
    cJSON_AddStringToObject(tc, "pad_token", "<|endoftext|>");
    cJSON_AddStringToObject(tc, "tokenizer_class", "Phi3SmallTokenizer");
    rc = write_json(dir, "tokenizer_config.json", tc);
    cJSON_Delete(tc);
    return rc;
}

static int write_tokenizer(const phiq_synth_params *p, const char *dir, const char *tokdir) {
    if (p->tokenizer == PHIQ_SYNTH_TOK_NONE) return 0;
    if (!tokdir || !phiq_dir_exists(tokdir))
        return phiq_fail(PHIQ_EIO, "tokenizer fixtures directory '%s' not found (use --tokenizer-dir or PHIQ_SHARED)", tokdir ? tokdir : "(none)");
    if (p->tokenizer == PHIQ_SYNTH_TOK_CL100K || p->tokenizer == PHIQ_SYNTH_TOK_O200K)
        return phiq_synth_tiktoken_tokenizer(p->tokenizer, tokdir, dir);
    if (p->tokenizer == PHIQ_SYNTH_TOK_PHI3SMALL) return phi3small_tokenizer(tokdir, dir);
    char *src = phiq_path_join(tokdir, p->tokenizer == PHIQ_SYNTH_TOK_PHI3 ? "phi3" : "gpt2");
    if (!src) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    int rc = copy_file(src, "tokenizer.json", dir, false);
    if (!rc) rc = copy_file(src, "tokenizer_config.json", dir, false);
    if (!rc) rc = copy_file(src, "special_tokens_map.json", dir, true);
    free(src);
    return rc;
}

/* ---- the checkpoint ----------------------------------------------------------------- */

/* Every file of the checkpoint into dir, which exists (phiq_synth_write's staging directory). */
static int synth_write_files(const phiq_synth_params *p, const char *dir, const char *tokdir) {
    int rc;
    /* tokenizer first: it is the step that can fail for a missing fixture */
    if ((rc = write_tokenizer(p, dir, tokdir))) return rc;
    tlist l = {0};
    if ((rc = list_tensors(p, &l))) { tl_free(&l); return rc; }
    uint64_t total = 0, shard = p->shard_size ? p->shard_size : SYNTH_DEFAULT_SHARD;
    for (int i = 0; i < l.n; i++) total += tensor_bytes(&l.t[i]);
    /* greedy packing in order; a tensor larger than a shard gets its own */
    int *shard_of = calloc((size_t)l.n, sizeof *shard_of);
    if (!shard_of) { tl_free(&l); return phiq_fail(PHIQ_ENOMEM, "out of memory"); }
    int n_shards = 1;
    uint64_t in = 0;
    for (int i = 0; i < l.n; i++) {
        uint64_t b = tensor_bytes(&l.t[i]);
        if (total > shard && in > 0 && in + b > shard) { n_shards++; in = 0; }
        shard_of[i] = n_shards - 1;
        in += b;
    }
    phiq_progress prog;
    phiq_progress_start(&prog, "synth", l.n, total, p->quiet);
    cJSON *index = n_shards > 1 ? cJSON_CreateObject() : NULL;
    cJSON *wm = NULL;
    if (index) {
        cJSON *meta = cJSON_AddObjectToObject(index, "metadata");
        cJSON_AddNumberToObject(meta, "total_size", (double)total);
        wm = cJSON_AddObjectToObject(index, "weight_map");
    }
    for (int s = 0, i0 = 0; s < n_shards && !rc; s++) {
        int i1 = i0;
        while (i1 < l.n && shard_of[i1] == s) i1++;
        char name[96];
        if (n_shards == 1) snprintf(name, sizeof name, "model.safetensors");
        else snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        char *path = phiq_path_join(dir, name);
        if (!path) { rc = phiq_fail(PHIQ_ENOMEM, "out of memory"); break; }
        filler f = {.l = &l, .base = i0, .seed = splitmix64(&(uint64_t){p->seed}), .cur = -1, .prog = &prog};
        rc = phiq_st_write(path, l.t + i0, i1 - i0, fill_fn, &f);
        free(path);
        for (int i = i0; i < i1 && wm; i++) cJSON_AddStringToObject(wm, l.names[i], name);
        i0 = i1;
    }
    phiq_progress_end(&prog);
    if (!rc && index) rc = write_json(dir, "model.safetensors.index.json", index);
    cJSON_Delete(index);
    if (!rc) {
        cJSON *c = make_config(p);
        rc = write_json(dir, "config.json", c);
        cJSON_Delete(c);
    }
    if (!rc) {
        cJSON *g = make_generation_config(p);
        rc = write_json(dir, "generation_config.json", g);
        cJSON_Delete(g);
    }
    free(shard_of);
    tl_free(&l);
    return rc;
}

/* The checkpoint is written into a staging directory beside dir and renamed
 * into place whole (phiq_outdir), so a failure (a missing tokenizer
 * fixture, a full disk) leaves nothing at dir. An existing dir keeps its
 * other files and gets the new ones one rename each. */
int phiq_synth_write(const phiq_synth_params *p, const char *dir, const char *tokdir) {
    int rc = synth_check(p);
    if (rc) return rc;
    phiq_outdir od;
    if ((rc = phiq_outdir_open_merge(&od, dir))) return rc;
    rc = synth_write_files(p, od.tmp_path, tokdir);
    if (rc) phiq_outdir_abort(&od);
    else rc = phiq_outdir_commit(&od);
    return rc;
}

/* ---- tiktoken → tokenizer.json ------------------------------------------------------
 *
 * A .tiktoken file lists (base64 bytes, rank). A Hugging Face byte-level BPE
 * needs a vocabulary in GPT-2's byte-to-unicode alphabet and an ordered merge
 * list. The merges are recovered from the ranks: for each multi-byte token,
 * run BPE on its own bytes using only tokens of lower rank until two parts
 * remain; those two parts are the merge that creates it, and merges are
 * listed in rank order, which reproduces tiktoken's lowest-rank-first rule.
 */

typedef struct {
    uint8_t **bytes; /* by rank */
    int *len;
    int n;
    int *hash; /* rank+1, 0 = empty */
    uint32_t hmask;
} tkranks;

static uint32_t bytes_hash(const uint8_t *p, int n) {
    uint32_t h = 2166136261u;
    for (int i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

static int tk_rank(const tkranks *r, const uint8_t *p, int n) {
    uint32_t h = bytes_hash(p, n) & r->hmask;
    while (r->hash[h]) {
        int k = r->hash[h] - 1;
        if (r->len[k] == n && !memcmp(r->bytes[k], p, (size_t)n)) return k;
        h = (h + 1) & r->hmask;
    }
    return -1;
}

static void tk_free(tkranks *r) {
    if (r->bytes)
        for (int i = 0; i < r->n; i++) free(r->bytes[i]);
    free(r->bytes);
    free(r->len);
    free(r->hash);
}

static int b64val(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static int tk_load(tkranks *r, const char *path) {
    memset(r, 0, sizeof *r);
    char *txt;
    size_t len;
    int rc = phiq_read_file(path, &txt, &len);
    if (rc) return rc;
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += txt[i] == '\n';
    r->bytes = calloc((size_t)lines + 1, sizeof *r->bytes);
    r->len = calloc((size_t)lines + 1, sizeof *r->len);
    uint32_t cap = 1024;
    while (cap < 2u * (uint32_t)lines + 2) cap *= 2;
    r->hash = calloc(cap, sizeof *r->hash);
    r->hmask = cap - 1;
    if (!r->bytes || !r->len || !r->hash) { free(txt); return phiq_fail(PHIQ_ENOMEM, "out of memory"); }
    char *line = txt;
    int lineno = 0;
    while (line < txt + len) {
        char *nl = memchr(line, '\n', (size_t)(txt + len - line));
        if (!nl) nl = txt + len;
        lineno++;
        if (nl == line) { line = nl + 1; continue; }
        char *sp = memchr(line, ' ', (size_t)(nl - line));
        if (!sp) { rc = phiq_fail(PHIQ_EFORMAT, "%s:%d: expected 'base64 rank'", path, lineno); break; }
        long rank = strtol(sp + 1, NULL, 10);
        if (rank != r->n) { rc = phiq_fail(PHIQ_EFORMAT, "%s:%d: ranks must be dense and ascending (got %ld, want %d)", path, lineno, rank, r->n); break; }
        uint8_t buf[512];
        int nb = 0, acc = 0, bits = 0;
        for (char *c = line; c < sp; c++) {
            if (*c == '=') break;
            int v = b64val((unsigned char)*c);
            if (v < 0 || nb >= (int)sizeof buf) { rc = phiq_fail(PHIQ_EFORMAT, "%s:%d: bad base64", path, lineno); break; }
            acc = (acc << 6) | v;
            bits += 6;
            if (bits >= 8) { bits -= 8; buf[nb++] = (uint8_t)(acc >> bits); acc &= (1 << bits) - 1; }
        }
        if (rc) break;
        if (nb == 0) { rc = phiq_fail(PHIQ_EFORMAT, "%s:%d: empty token", path, lineno); break; }
        r->bytes[r->n] = malloc((size_t)nb);
        if (!r->bytes[r->n]) { rc = phiq_fail(PHIQ_ENOMEM, "out of memory"); break; }
        memcpy(r->bytes[r->n], buf, (size_t)nb);
        r->len[r->n] = nb;
        if (tk_rank(r, buf, nb) >= 0) { rc = phiq_fail(PHIQ_EFORMAT, "%s:%d: duplicate token", path, lineno); r->n++; break; }
        uint32_t h = bytes_hash(buf, nb) & r->hmask;
        while (r->hash[h]) h = (h + 1) & r->hmask;
        r->hash[h] = ++r->n;
        line = nl + 1;
    }
    free(txt);
    return rc;
}

/* GPT-2's reversible byte → code point map: printable bytes stay, the rest
 * move to 256 + k in byte order. */
static void byte_unicode(uint32_t map[256]) {
    int k = 0;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        map[b] = keep ? (uint32_t)b : (uint32_t)(256 + k++);
    }
}

/* UTF-8 of the byte-level spelling of p[0..n); out needs 2n+1 bytes. */
static void byte_level(const uint32_t map[256], const uint8_t *p, int n, char *out) {
    char *o = out;
    for (int i = 0; i < n; i++) {
        uint32_t c = map[p[i]];
        if (c < 0x80) *o++ = (char)c;
        else { *o++ = (char)(0xc0 | (c >> 6)); *o++ = (char)(0x80 | (c & 0x3f)); }
    }
    *o = 0;
}

/* Splits token `rank` into the two lower-rank tokens BPE would join last;
 * returns the length of the first part, or 0 if no such split exists. */
static int tk_split(const tkranks *r, int rank) {
    const uint8_t *p = r->bytes[rank];
    int n = r->len[rank];
    int start[513], cnt = n; /* parts as start offsets; part i = [start[i], start[i+1]) */
    for (int i = 0; i < n; i++) start[i] = i;
    start[n] = n;
    while (cnt > 2) {
        int best = -1, best_rank = rank;
        for (int i = 0; i + 1 < cnt; i++) {
            int k = tk_rank(r, p + start[i], start[i + 2] - start[i]);
            if (k >= 0 && k < best_rank) { best_rank = k; best = i; }
        }
        if (best < 0) return 0;
        memmove(start + best + 1, start + best + 2, (size_t)(cnt - best - 1) * sizeof *start);
        cnt--;
    }
    if (cnt != 2 || tk_rank(r, p, start[1]) < 0 || tk_rank(r, p + start[1], n - start[1]) < 0) return 0;
    return start[1];
}

typedef struct { int id; const char *text; } tkspecial;

static cJSON *added_token(int id, const char *s) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "id", id);
    cJSON_AddStringToObject(t, "content", s);
    cJSON_AddBoolToObject(t, "single_word", false);
    cJSON_AddBoolToObject(t, "lstrip", false);
    cJSON_AddBoolToObject(t, "rstrip", false);
    cJSON_AddBoolToObject(t, "normalized", false);
    cJSON_AddBoolToObject(t, "special", true);
    return t;
}

/* Chat templates as described in the Phi reference (§3c). */
static const char PHI4_TEMPLATE[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '<|im_sep|>' + message['content'] + '<|im_end|>'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}";
static const char PHI4MINI_TEMPLATE[] =
    "{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and message['tools'] is not none %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + message['tools'] + '<|/tool|>' + '<|end|>' }}"
    "{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}";

int phiq_synth_tiktoken_tokenizer(phiq_synth_tok kind, const char *tokdir, const char *dir) {
    bool o200 = kind == PHIQ_SYNTH_TOK_O200K;
    const char *base = o200 ? "tiktoken/o200k_base" : "tiktoken/cl100k_base";
    char rel[64];
    snprintf(rel, sizeof rel, "%s.tiktoken", base);
    char *rpath = phiq_path_join(tokdir, rel);
    snprintf(rel, sizeof rel, "%s.meta.json", base);
    char *mpath = phiq_path_join(tokdir, rel);
    tkranks r;
    memset(&r, 0, sizeof r);
    cJSON *meta = NULL, *tj = NULL, *tc = NULL;
    char *mtxt = NULL, *key = NULL;
    int rc = (!rpath || !mpath) ? phiq_fail(PHIQ_ENOMEM, "out of memory") : 0;
    if (!rc) rc = tk_load(&r, rpath);
    if (!rc && !(rc = phiq_read_file(mpath, &mtxt, NULL))) {
        meta = cJSON_Parse(mtxt);
        if (!meta) rc = phiq_fail(PHIQ_EFORMAT, "%s: invalid JSON", mpath);
    }
    const cJSON *pat = meta ? cJSON_GetObjectItemCaseSensitive(meta, "pat_str") : NULL;
    if (!rc && !cJSON_IsString(pat)) rc = phiq_fail(PHIQ_EFORMAT, "%s: no pat_str", mpath);
    if (rc) goto out;

    /* Special tokens (doc §3b); ids the doc leaves unnamed get placeholders. */
    tkspecial sp[160];
    int nsp = 0;
    static char names[160][32];
    if (o200) {
        static const tkspecial known[] = {
            {199999, "<|endoftext|>"}, {200018, "<|endofprompt|>"}, {200019, "<|assistant|>"}, {200020, "<|end|>"},
            {200021, "<|user|>"}, {200022, "<|system|>"}, {200023, "<|tool|>"}, {200024, "<|/tool|>"},
            {200025, "<|tool_call|>"}, {200026, "<|/tool_call|>"}, {200027, "<|tool_response|>"}, {200028, "<|tag|>"}};
        for (int id = r.n; id <= 200028; id++) {
            const char *t = NULL;
            for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
                if (known[k].id == id) t = known[k].text;
            if (!t) {
                /* 200010/200011 are <|endoftext10|>/<|endoftext11|>: <|endoftextN|> = 200000 + N */
                if (id >= 200000) snprintf(names[nsp], sizeof names[nsp], "<|endoftext%d|>", id - 200000);
                else snprintf(names[nsp], sizeof names[nsp], "<|dummy_id_%d|>", id);
                t = names[nsp];
            }
            sp[nsp++] = (tkspecial){id, t};
        }
    } else {
        for (int id = r.n; id < 100352; id++) {
            const char *t = NULL;
            switch (id) {
            case 100257: t = "<|endoftext|>"; break;
            case 100258: t = "<|fim_prefix|>"; break;
            case 100259: t = "<|fim_middle|>"; break;
            case 100260: t = "<|fim_suffix|>"; break;
            case 100264: t = "<|im_start|>"; break;
            case 100265: t = "<|im_end|>"; break;
            case 100266: t = "<|im_sep|>"; break;
            case 100276: t = "<|endofprompt|>"; break;
            default: {
                int k = id == 100256 ? 0 : id <= 100263 ? id - 100260 : id <= 100275 ? id - 100263 : id - 100264;
                snprintf(names[nsp], sizeof names[nsp], "<|dummy_%d|>", k);
                t = names[nsp];
            }
            }
            sp[nsp++] = (tkspecial){id, t};
        }
    }

    uint32_t map[256];
    byte_unicode(map);
    key = malloc(2 * 512 + 1);
    tj = cJSON_CreateObject();
    if (!key || !tj) { rc = phiq_fail(PHIQ_ENOMEM, "out of memory"); goto out; }
    cJSON_AddStringToObject(tj, "version", "1.0");
    cJSON_AddNullToObject(tj, "truncation");
    cJSON_AddNullToObject(tj, "padding");
    cJSON *added = cJSON_AddArrayToObject(tj, "added_tokens");
    for (int i = 0; i < nsp; i++) cJSON_AddItemToArray(added, added_token(sp[i].id, sp[i].text));
    cJSON_AddNullToObject(tj, "normalizer");
    cJSON *pre = cJSON_AddObjectToObject(tj, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON *pres = cJSON_AddArrayToObject(pre, "pretokenizers");
    cJSON *split = cJSON_CreateObject();
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex", pat->valuestring);
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddBoolToObject(split, "invert", false);
    cJSON_AddItemToArray(pres, split);
    cJSON *bl = cJSON_CreateObject();
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddBoolToObject(bl, "add_prefix_space", false);
    cJSON_AddBoolToObject(bl, "trim_offsets", true);
    cJSON_AddBoolToObject(bl, "use_regex", false);
    cJSON_AddItemToArray(pres, bl);
    cJSON *pp = cJSON_AddObjectToObject(tj, "post_processor");
    cJSON_AddStringToObject(pp, "type", "ByteLevel");
    cJSON_AddBoolToObject(pp, "add_prefix_space", false);
    cJSON_AddBoolToObject(pp, "trim_offsets", false);
    cJSON_AddBoolToObject(pp, "use_regex", false);
    cJSON *dec = cJSON_AddObjectToObject(tj, "decoder");
    cJSON_AddStringToObject(dec, "type", "ByteLevel");
    cJSON_AddBoolToObject(dec, "add_prefix_space", true);
    cJSON_AddBoolToObject(dec, "trim_offsets", true);
    cJSON_AddBoolToObject(dec, "use_regex", true);
    cJSON *model = cJSON_AddObjectToObject(tj, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddStringToObject(model, "continuing_subword_prefix", "");
    cJSON_AddStringToObject(model, "end_of_word_suffix", "");
    cJSON_AddBoolToObject(model, "fuse_unk", false);
    cJSON_AddBoolToObject(model, "byte_fallback", false);
    cJSON_AddBoolToObject(model, "ignore_merges", false);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    for (int k = 0; k < r.n && !rc; k++) {
        byte_level(map, r.bytes[k], r.len[k], key);
        cJSON_AddItemToObject(vocab, key, cJSON_CreateNumber(k));
        if (r.len[k] < 2) continue;
        int cut = tk_split(&r, k);
        if (!cut) continue; /* unreachable by merges (none in cl100k/o200k) */
        char a[2 * 512 + 2];
        byte_level(map, r.bytes[k], cut, a);
        size_t al = strlen(a);
        a[al] = ' ';
        byte_level(map, r.bytes[k] + cut, r.len[k] - cut, a + al + 1);
        cJSON_AddItemToArray(merges, cJSON_CreateString(a));
    }
    for (int i = 0; i < nsp; i++) cJSON_AddItemToObject(vocab, sp[i].text, cJSON_CreateNumber(sp[i].id));
    if ((rc = write_json(dir, "tokenizer.json", tj))) goto out;

    tc = cJSON_CreateObject();
    cJSON_AddBoolToObject(tc, "add_bos_token", false);
    cJSON_AddBoolToObject(tc, "add_eos_token", false);
    cJSON_AddBoolToObject(tc, "add_prefix_space", false);
    cJSON *atd = cJSON_AddObjectToObject(tc, "added_tokens_decoder");
    for (int i = 0; i < nsp; i++) {
        char idk[16];
        snprintf(idk, sizeof idk, "%d", sp[i].id);
        cJSON *t = added_token(sp[i].id, sp[i].text);
        cJSON_DeleteItemFromObject(t, "id");
        cJSON_AddItemToObject(atd, idk, t);
    }
    cJSON_AddStringToObject(tc, "bos_token", "<|endoftext|>");
    cJSON_AddStringToObject(tc, "chat_template", o200 ? PHI4MINI_TEMPLATE : PHI4_TEMPLATE);
    cJSON_AddBoolToObject(tc, "clean_up_tokenization_spaces", false);
    cJSON_AddStringToObject(tc, "eos_token", o200 ? "<|endoftext|>" : "<|im_end|>");
    cJSON_AddNumberToObject(tc, "model_max_length", o200 ? 131072 : 16384);
    cJSON_AddStringToObject(tc, "pad_token", o200 ? "<|endoftext|>" : "<|dummy_85|>");
    cJSON_AddStringToObject(tc, "tokenizer_class", "GPT2Tokenizer");
    cJSON_AddStringToObject(tc, "unk_token", "<|endoftext|>");
    rc = write_json(dir, "tokenizer_config.json", tc);
out:
    cJSON_Delete(tj);
    cJSON_Delete(tc);
    cJSON_Delete(meta);
    free(mtxt);
    free(key);
    free(rpath);
    free(mpath);
    tk_free(&r);
    return rc;
}
