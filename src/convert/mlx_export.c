/* mlx_export.c — `phiq convert --format mlx`: an HF Phi checkpoint to the
 * directory `mlx_lm.convert -q` writes (see mlx_export.h).
 *
 * The plan is mlx-lm's model for the architecture after its sanitize():
 * module paths and parameter order of mlx_lm/models/{phi3,phi,phimoe}.py
 * (PhiMoE experts stacked into switch_mlp.{gate,up,down}_proj [E, out,
 * in]). Every Linear / Embedding / SwitchLinear whose input width divides by
 * the group size becomes <path>.weight (U32 codes), .scales, .biases in the
 * checkpoint dtype; float tensors are cast to config.json's torch_dtype
 * first, as mlx-lm does before quantizing.
 *
 * Streaming: each safetensors shard is written by phiq_st_write_ex, whose
 * fill callback produces the bytes of one tensor row by row from the
 * memory-mapped source (re-quantizing a row for each of its .biases, .scales
 * and .weight parts, which sort apart in the file), so memory stays at a few
 * rows per thread whatever the model size. Rows that land whole in a fill
 * buffer are shared among -t threads; each row's bytes depend on that row
 * only, so the files are the same for any thread count. */
#include "convert/mlx_export.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert/calib.h"
#include "convert/convert.h"
#include "core/common.h"
#include "quant/gptq.h"
#include "formats/hf.h"
#include "formats/safetensors.h"

#define MLX_MAX_SRC PHIQ_PLAN_MAX_SRC

enum { MOD_LINEAR, MOD_EMBED, MOD_SWITCH, MOD_NORM };
enum { PART_W, PART_S, PART_B, PART_PLAIN, PART_BIAS };

typedef struct mmod {
    char path[128];
    int kind;
    const phiq_st_tensor *w[MLX_MAX_SRC]; /* weight (one per stacked expert) */
    int n_src;
    const phiq_st_tensor *b;              /* bias, NULL if none */
    int64_t n_out, n_in;                  /* per source; norms: n_out 0, n_in = dim */
    bool quant;
    int bits, group;
    int layer;                            /* -1 outside the layers */
    int64_t spill;                        /* --calib: offset of its GPTQ codes in the spill file, -1 none */
} mmod;

typedef struct otensor {
    char name[144];
    int mod, part, shard;
    phiq_st_dtype dtype;
    int n_dims;
    int64_t shape[3];
    uint64_t nbytes;
} otensor;

typedef struct plan {
    const phiq_hf *hf;
    const phiq_mlx_opts *o;
    int spill_fd;      /* --calib: the unlinked file holding the calibrated codes, -1 none */
    int dtype; /* output float dtype, -1: keep each tensor's */
    mmod *m;
    int nm, cap;
    otensor *t;
    int nt;
} plan;

const char *phiq_mlx_recipe_names(void) { return "mixed_2_6, mixed_3_4, mixed_3_6, mixed_4_6"; }

/* ---- plan ------------------------------------------------------------------------ */
static mmod *add_mod(plan *p, int kind, const char *fmt, int layer) {
    if (p->nm == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        mmod *n = realloc(p->m, (size_t)cap * sizeof *n);
        if (!n) return NULL;
        p->m = n;
        p->cap = cap;
    }
    mmod *m = &p->m[p->nm++];
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->layer = layer;
    m->spill = -1;
    if (layer >= 0) {
        char sub[96];
        snprintf(sub, sizeof sub, "%s", fmt);
        snprintf(m->path, sizeof m->path, "model.layers.%d.%s", layer, sub);
    } else {
        snprintf(m->path, sizeof m->path, "%s", fmt);
    }
    return m;
}

/* a module whose weight is <path>.weight (and <path>.bias when biased) */
static int mod(plan *p, int kind, const char *path, int layer, bool biased, bool bias_required) {
    mmod *m = add_mod(p, kind, path, layer);
    if (!m) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    char nm[192];
    snprintf(nm, sizeof nm, "%s.weight", m->path);
    const phiq_st_tensor *w = phiq_hf_find(p->hf, nm);
    if (!w) return phiq_fail(PHIQ_EFORMAT, "%s: tensor %s is missing", phiq_hf_dir(p->hf), nm);
    m->w[0] = w;
    m->n_src = 1;
    if (kind == MOD_NORM) {
        m->n_in = w->shape[0];
    } else {
        m->n_out = w->shape[0];
        m->n_in = w->shape[1];
    }
    snprintf(nm, sizeof nm, "%s.bias", m->path);
    m->b = phiq_hf_find(p->hf, nm);
    if (m->b && !biased)
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: %s has a bias, which mlx-lm's model for this architecture cannot hold",
                         phiq_hf_dir(p->hf), m->path);
    if (!m->b && bias_required)
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: %s has no bias, but mlx-lm's model for this architecture requires one",
                         phiq_hf_dir(p->hf), nm);
    return 0;
}

static int switch_mod(plan *p, int layer, const char *proj, const char *wname, int n_expert) {
    mmod *m = add_mod(p, MOD_SWITCH, proj, layer);
    if (!m) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    if (n_expert > MLX_MAX_SRC) return phiq_fail(PHIQ_EUNSUPPORTED, "%d experts (at most %d)", n_expert, MLX_MAX_SRC);
    for (int e = 0; e < n_expert; e++) {
        char nm[160];
        snprintf(nm, sizeof nm, "model.layers.%d.block_sparse_moe.experts.%d.%s.weight", layer, e, wname);
        if (!(m->w[e] = phiq_hf_find(p->hf, nm)))
            return phiq_fail(PHIQ_EFORMAT, "%s: tensor %s is missing", phiq_hf_dir(p->hf), nm);
    }
    m->n_src = n_expert;
    m->n_out = m->w[0]->shape[0];
    m->n_in = m->w[0]->shape[1];
    return 0;
}

static int build_modules(plan *p) {
    const phiq_hparams *hp = phiq_hf_hparams(p->hf);
    int rc;
#define M(kind, path, layer, biased, req)                                                                             \
    do {                                                                                                               \
        if ((rc = mod(p, kind, path, layer, biased, req))) return rc;                                                  \
    } while (0)
    if (hp->arch == PHIQ_ARCH_PHI3SMALL)
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: MLX export of Phi-3-small is not supported (convert it to GGUF)", phiq_hf_dir(p->hf));
    M(MOD_EMBED, "model.embed_tokens", -1, false, false);
    for (int l = 0; l < hp->n_layer; l++) {
        switch (hp->arch) {
        case PHIQ_ARCH_PHI3:
            M(MOD_LINEAR, "self_attn.qkv_proj", l, false, false);
            M(MOD_LINEAR, "self_attn.o_proj", l, false, false);
            M(MOD_LINEAR, "mlp.gate_up_proj", l, false, false);
            M(MOD_LINEAR, "mlp.down_proj", l, false, false);
            M(MOD_NORM, "input_layernorm", l, false, false);
            M(MOD_NORM, "post_attention_layernorm", l, false, false);
            break;
        case PHIQ_ARCH_PHI2:
            M(MOD_LINEAR, "self_attn.q_proj", l, true, true);
            M(MOD_LINEAR, "self_attn.k_proj", l, true, true);
            M(MOD_LINEAR, "self_attn.v_proj", l, true, true);
            M(MOD_LINEAR, "self_attn.dense", l, true, true);
            M(MOD_NORM, "input_layernorm", l, true, true);
            M(MOD_LINEAR, "mlp.fc1", l, true, true);
            M(MOD_LINEAR, "mlp.fc2", l, true, true);
            break;
        case PHIQ_ARCH_PHIMOE:
            M(MOD_LINEAR, "self_attn.q_proj", l, true, true);
            M(MOD_LINEAR, "self_attn.k_proj", l, true, true);
            M(MOD_LINEAR, "self_attn.v_proj", l, true, true);
            M(MOD_LINEAR, "self_attn.o_proj", l, true, true);
            M(MOD_LINEAR, "block_sparse_moe.gate", l, false, false);
            if ((rc = switch_mod(p, l, "block_sparse_moe.switch_mlp.gate_proj", "w1", hp->n_expert)) ||
                (rc = switch_mod(p, l, "block_sparse_moe.switch_mlp.up_proj", "w3", hp->n_expert)) ||
                (rc = switch_mod(p, l, "block_sparse_moe.switch_mlp.down_proj", "w2", hp->n_expert)))
                return rc;
            M(MOD_NORM, "input_layernorm", l, true, true);
            M(MOD_NORM, "post_attention_layernorm", l, true, true);
            break;
        case PHIQ_ARCH_PHI3SMALL: /* refused above */
            break;
        }
    }
    bool phi2 = hp->arch == PHIQ_ARCH_PHI2, moe = hp->arch == PHIQ_ARCH_PHIMOE;
    M(MOD_NORM, phi2 ? "model.final_layernorm" : "model.norm", -1, phi2 || moe, phi2 || moe);
    bool head = phiq_hf_find(p->hf, "lm_head.weight") != NULL;
    if ((phi2 || moe) && !head)
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: tied embeddings: mlx-lm's %s model always has its own biased lm_head",
                         phiq_hf_dir(p->hf), phi2 ? "phi" : "phimoe");
    if (head) M(MOD_LINEAR, "lm_head", -1, phi2 || moe, phi2 || moe);
#undef M
    return 0;
}

/* mlx-lm's mixed_quant_predicate: high bits for lm_head and for v_proj /
 * down_proj paths (by substring: Phi-3's qkv_proj matches) in the first and
 * last eighth of the layers and every third layer between. */
static int recipe_bits(const char *recipe, const char *path, int n_layer) {
    int low = recipe[6] - '0', high = recipe[8] - '0';
    int index = 0;
    /* the layer number sits at the position it has in the first down_proj
     * path, model.layers.N.mlp.down_proj: field 2; shorter paths count as 0 */
    if (!strncmp(path, "model.layers.", 13)) index = atoi(path + 13);
    bool more = index < n_layer / 8 || index >= 7 * n_layer / 8 || (index - n_layer / 8) % 3 == 2;
    if ((strstr(path, "v_proj") || strstr(path, "down_proj")) && more) return high;
    if (strstr(path, "lm_head")) return high;
    return low;
}

static int add_t(plan *p, int mi, int part, const char *suffix, phiq_st_dtype dt, int nd, const int64_t *shape) {
    otensor *t = &p->t[p->nt++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s.%s", p->m[mi].path, suffix);
    t->mod = mi;
    t->part = part;
    t->dtype = dt;
    t->n_dims = nd;
    uint64_t n = 1;
    for (int d = 0; d < nd; d++) n *= (uint64_t)(t->shape[d] = shape[d]);
    t->nbytes = n * (uint64_t)phiq_st_dtype_size(dt);
    return 0;
}

static phiq_st_dtype out_dtype(const plan *p, const phiq_st_tensor *src) {
    return p->dtype >= 0 ? (phiq_st_dtype)p->dtype : src->dtype;
}

static int build_tensors(plan *p, int bits, int group) {
    const phiq_hparams *hp = phiq_hf_hparams(p->hf);
    p->t = calloc((size_t)p->nm * 4 + 1, sizeof *p->t);
    if (!p->t) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    for (int i = 0; i < p->nm; i++) {
        mmod *m = &p->m[i];
        for (int k = 0; k < m->n_src; k++)
            if (!phiq_st_is_float(m->w[k]->dtype))
                return phiq_fail(PHIQ_EUNSUPPORTED, "%s: tensor %s has dtype %s (F32, F16, BF16 only)", m->w[k]->file,
                                 m->w[k]->name, m->w[k]->dtype_name);
        phiq_st_dtype dt = out_dtype(p, m->w[0]);
        if (m->kind == MOD_NORM) {
            add_t(p, i, PART_PLAIN, "weight", dt, 1, &m->n_in);
        } else {
            m->quant = m->n_in % group == 0;
            m->bits = p->o->recipe ? recipe_bits(p->o->recipe, m->path, hp->n_layer) : bits;
            m->group = group;
            int64_t sh[3] = {m->n_src, m->n_out, m->n_in};
            int nd = m->kind == MOD_SWITCH ? 3 : 2;
            const int64_t *s = m->kind == MOD_SWITCH ? sh : sh + 1;
            if (m->quant) {
                int64_t ws[3] = {s[0], s[1], s[nd - 1]}, ss[3] = {s[0], s[1], s[nd - 1]};
                ws[nd - 1] = m->n_in * m->bits / 32;
                ss[nd - 1] = m->n_in / group;
                add_t(p, i, PART_W, "weight", PHIQ_ST_U32, nd, ws);
                add_t(p, i, PART_S, "scales", dt, nd, ss);
                add_t(p, i, PART_B, "biases", dt, nd, ss);
            } else {
                add_t(p, i, PART_PLAIN, "weight", dt, nd, s);
            }
        }
        if (m->b) {
            if (!phiq_st_is_float(m->b->dtype) || m->b->n_dims != 1)
                return phiq_fail(PHIQ_EUNSUPPORTED, "%s: tensor %s is not a float vector", m->b->file, m->b->name);
            add_t(p, i, PART_BIAS, "bias", out_dtype(p, m->b), 1, &m->b->shape[0]);
        }
    }
    return 0;
}

/* ---- producing rows ------------------------------------------------------------------ */
#define MLX_MAX_THREADS 64

typedef struct scratch {
    float *f, *sc, *bi; /* row values, group scales and biases */
    uint32_t *words;
} scratch;

typedef struct filler {
    plan *p;
    const int *order;   /* otensor index of the shard's i-th tensor */
    int cur;            /* otensor being produced, -1 none */
    int64_t row, rel_row;
    uint8_t *carry;     /* one produced row */
    size_t carry_len, carry_off;
    scratch s[MLX_MAX_THREADS];
    int n_threads;
    phiq_progress *prog;
} filler;

static int scratch_alloc(scratch *s, int64_t max_in) {
    s->f = malloc((size_t)max_in * sizeof(float));
    s->sc = malloc((size_t)(max_in / 32 + 1) * sizeof(float));
    s->bi = malloc((size_t)(max_in / 32 + 1) * sizeof(float));
    s->words = malloc((size_t)(max_in / 4 + 8) * sizeof(uint32_t));
    return s->f && s->sc && s->bi && s->words ? 0 : -1;
}

static void scratch_free(scratch *s) {
    free(s->f);
    free(s->sc);
    free(s->bi);
    free(s->words);
}

static float round_to(phiq_st_dtype dt, float v) {
    if (dt == PHIQ_ST_BF16) return phiq_bf16_to_f32(phiq_f32_to_bf16(v));
    if (dt == PHIQ_ST_F16) return phiq_f16_to_f32(phiq_f32_to_f16(v));
    return v;
}

static void store(phiq_st_dtype dt, const float *v, int64_t n, uint8_t *out) {
    for (int64_t i = 0; i < n; i++) {
        if (dt == PHIQ_ST_F32) {
            memcpy(out + 4 * i, &v[i], 4);
        } else {
            uint16_t h = dt == PHIQ_ST_BF16 ? phiq_f32_to_bf16(v[i]) : phiq_f32_to_f16(v[i]);
            memcpy(out + 2 * i, &h, 2);
        }
    }
}

static int64_t t_rows(const plan *p, const otensor *t) {
    const mmod *m = &p->m[t->mod];
    return t->part == PART_BIAS || m->kind == MOD_NORM ? 1 : m->n_src * m->n_out;
}


/* ---- --calib: GPTQ into MLX's groups, before the shards are written ------------------ */
/* Layout of a module's codes in the spill file: words [n_out][n_in·bits/32],
 * then scales and biases [n_out][n_in/group] as float32 (already rounded to
 * the stored dtype). */
static int spill_row(const plan *p, const mmod *m, const otensor *t, int64_t r, scratch *f, uint8_t *out) {
    const int64_t wpr = m->n_in * m->bits / 32, gpr = m->n_in / m->group;
    int64_t off = m->spill;
    size_t len;
    void *dst = out;
    if (t->part == PART_W) {
        off += r * wpr * 4;
        len = (size_t)wpr * 4; /* little-endian hosts: the words are the file's bytes */
    } else {
        off += m->n_out * wpr * 4 + (t->part == PART_S ? 0 : m->n_out * gpr * 4) + r * gpr * 4;
        len = (size_t)gpr * 4;
        dst = f->sc;
    }
    if (pread(p->spill_fd, dst, len, (off_t)off) != (ssize_t)len)
        return phiq_fail(PHIQ_EIO, "%s: reading back the calibrated codes failed", t->name);
    if (t->part != PART_W) store(t->dtype, f->sc, gpr, out);
    return 0;
}

static int pwrite_all(int fd, const void *buf, size_t len, int64_t off) {
    for (size_t done = 0; done < len;) {
        ssize_t k = pwrite(fd, (const uint8_t *)buf + done, len - done, (off_t)(off + (int64_t)done));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        done += (size_t)k;
    }
    return 0;
}

static int ggml_float_type(phiq_st_dtype dt) {
    return dt == PHIQ_ST_BF16 ? PHIQ_GGML_TYPE_BF16 : dt == PHIQ_ST_F16 ? PHIQ_GGML_TYPE_F16 : PHIQ_GGML_TYPE_F32;
}

/* The Hessian of the matmul that reads the same input as module m, by the
 * GGUF names phiq's calibration pass uses; NULL when it has none (experts,
 * embeddings). */
static const float *module_hessian(phiq_calib_session *cal, const mmod *m, int *failed) {
    static const struct { const char *suffix, *gguf[2]; } map[] = {
        {"self_attn.qkv_proj", {"attn_qkv", NULL}}, {"self_attn.q_proj", {"attn_q", "attn_qkv"}},
        {"self_attn.k_proj", {"attn_k", "attn_qkv"}}, {"self_attn.v_proj", {"attn_v", "attn_qkv"}},
        {"self_attn.o_proj", {"attn_output", NULL}}, {"self_attn.dense", {"attn_output", NULL}},
        {"mlp.gate_up_proj", {"ffn_up", NULL}},      {"mlp.fc1", {"ffn_up", NULL}},
        {"mlp.down_proj", {"ffn_down", NULL}},       {"mlp.fc2", {"ffn_down", NULL}},
        {"block_sparse_moe.gate", {"ffn_gate_inp", NULL}},
    };
    *failed = 0;
    if (m->kind != MOD_LINEAR) return NULL;
    char name[96];
    int64_t hn = 0;
    if (m->layer < 0) {
        if (strcmp(m->path, "lm_head")) return NULL;
        const float *H = phiq_calib_session_hessian(cal, "output.weight", &hn, failed);
        return H && hn == m->n_in ? H : NULL;
    }
    const char *sub = strchr(m->path + strlen("model.layers."), '.') + 1;
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        if (strcmp(sub, map[i].suffix)) continue;
        for (int k = 0; k < 2 && map[i].gguf[k]; k++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", m->layer, map[i].gguf[k]);
            const float *H = phiq_calib_session_hessian(cal, name, &hn, failed);
            if (*failed) return NULL;
            if (H && hn == m->n_in) return H;
        }
    }
    return NULL;
}

/* Runs the calibration text through the source model (layer groups within
 * the memory budget) and GPTQ-quantizes every module that has a Hessian,
 * in layer order, into the spill file; produce_row reads the codes back. */
static int calib_prepass(plan *p, const char *src_dir, const phiq_outdir *od, phiq_mlx_stats *st) {
    const phiq_mlx_opts *o = p->o;
    char *path = phiq_outdir_path(od, ".calib-codes");
    if (!path) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    p->spill_fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc = p->spill_fd < 0 ? phiq_fail(PHIQ_EIO, "%s: %s", path, strerror(errno)) : 0;
    if (p->spill_fd >= 0) unlink(path); /* the directory is committed without it */
    free(path);
    if (rc) return rc;
    phiq_calib_opts co = {.n_ctx = o->calib_ctx > 0 ? o->calib_ctx : 512, .max_chunks = o->calib_chunks,
                          .n_threads = o->n_threads, .quiet = o->quiet};
    phiq_calib_session *cal = phiq_calib_session_new(src_dir, o->calib, &co, o->calib_mem ? o->calib_mem : (uint64_t)1 << 30);
    if (!cal) return PHIQ_EINVAL;
    int64_t off = 0, max_elems = 0;
    for (int i = 0; i < p->nm; i++)
        if (p->m[i].quant && p->m[i].kind == MOD_LINEAR && p->m[i].n_out * p->m[i].n_in > max_elems)
            max_elems = p->m[i].n_out * p->m[i].n_in;
    float *w = malloc(sizeof(float) * (size_t)max_elems);
    uint8_t *codes = malloc((size_t)max_elems + (size_t)max_elems / 4 + 64); /* words (≤ 1 byte/weight) + scales/biases */
    if (!w || !codes) rc = phiq_fail(PHIQ_ENOMEM, "--calib: out of memory for a module of %lld weights", (long long)max_elems);
    for (int i = 0; i < p->nm && !rc; i++) {
        mmod *m = &p->m[i];
        if (!m->quant) continue;
        int failed;
        const float *H = module_hessian(cal, m, &failed);
        if (failed) {
            phiq_error_prefix("calibration for %s", m->path);
            rc = PHIQ_EINVAL;
            break;
        }
        if (!H) continue;
        const int64_t n = m->n_out * m->n_in, wpr = m->n_in * m->bits / 32, gpr = m->n_in / m->group;
        const phiq_st_dtype dt = out_dtype(p, m->w[0]);
        if (phiq_st_to_f32(m->w[0], 0, n, w) < 0) {
            rc = PHIQ_EFORMAT;
            break;
        }
        for (int64_t k = 0; k < n && !rc; k++) {
            if (!isfinite(w[k]))
                rc = phiq_fail(PHIQ_EFORMAT, "%s: tensor %s: element %lld is %g", m->w[0]->file, m->w[0]->name,
                               (long long)k, (double)w[k]);
            w[k] = round_to(dt, w[k]); /* mlx-lm casts to the model dtype, then quantizes that */
        }
        if (rc) break;
        uint32_t *words = (uint32_t *)(void *)codes;
        float *sc = (float *)(void *)(codes + (size_t)(m->n_out * wpr * 4)), *bi = sc + m->n_out * gpr;
        float damp = o->damp > 0 ? o->damp : 0.01f;
        if ((rc = phiq_gptq_quantize_mlx(w, m->n_out, m->n_in, H, damp, o->n_threads > 0 ? o->n_threads : phiq_physical_cores(),
                                         m->bits, m->group, o->kernel, ggml_float_type(dt), words, sc, bi)) < 0) {
            phiq_error_prefix("%s", m->path);
            break;
        }
        const size_t len = (size_t)(m->n_out * wpr * 4 + 2 * m->n_out * gpr * 4);
        if (pwrite_all(p->spill_fd, codes, len, off) < 0) {
            rc = phiq_fail(PHIQ_EIO, "--calib: writing the calibrated codes of %s failed: %s", m->path, strerror(errno));
            break;
        }
        m->spill = off;
        off += (int64_t)len;
        st->n_gptq++;
    }
    st->calib_passes = phiq_calib_session_passes(cal);
    st->calib_seconds = phiq_calib_session_seconds(cal);
    st->calib_tokens = phiq_calib_session_tokens(cal);
    free(w);
    free(codes);
    phiq_calib_session_free(cal);
    return rc;
}

/* row r of tensor t into out (its row's bytes); may run on a worker thread */
static int produce_row(const plan *p, scratch *f, const otensor *t, int64_t r, uint8_t *out) {
    const mmod *m = &p->m[t->mod];
    if (t->part == PART_BIAS) {
        if (phiq_st_to_f32(m->b, 0, m->b->shape[0], f->f) < 0) return PHIQ_EFORMAT;
        store(t->dtype, f->f, m->b->shape[0], out);
        return 0;
    }
    const int64_t n = m->n_in;
    if (m->spill >= 0 && t->part != PART_PLAIN) return spill_row(p, m, t, r, f, out);
    const phiq_st_tensor *src = m->w[m->kind == MOD_NORM ? 0 : r / m->n_out];
    int64_t local = m->kind == MOD_NORM ? 0 : r % m->n_out;
    if (phiq_st_to_f32(src, local * n, n, f->f) < 0) return PHIQ_EFORMAT;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(f->f[i]))
            return phiq_fail(PHIQ_EFORMAT, "%s: tensor %s: element %lld is %g", src->file, src->name,
                             (long long)(local * n + i), (double)f->f[i]);
    if (t->part == PART_PLAIN) {
        store(t->dtype, f->f, n, out);
        return 0;
    }
    /* mlx-lm casts to the model dtype, then quantizes that */
    phiq_st_dtype dt = out_dtype(p, m->w[0]);
    for (int64_t i = 0; i < n; i++) f->f[i] = round_to(dt, f->f[i]);
    phiq_mlx_quantize_row(f->f, n, m->bits, m->group, p->o->kernel, f->words, f->sc, f->bi);
    if (t->part == PART_W) memcpy(out, f->words, (size_t)(n * m->bits / 32) * 4); /* little-endian hosts */
    else store(t->dtype, t->part == PART_S ? f->sc : f->bi, n / m->group, out);
    return 0;
}

static void release_rows(filler *f) {
    if (f->cur < 0) return;
    const otensor *t = &f->p->t[f->cur];
    const mmod *m = &f->p->m[t->mod];
    if (t->part == PART_BIAS || m->kind == MOD_NORM || f->row <= f->rel_row) return;
    size_t es = m->w[0]->dtype == PHIQ_ST_F32 ? 4 : 2;
    for (int64_t r = f->rel_row; r < f->row;) { /* per source: a contiguous run of its rows */
        int64_t k = r / m->n_out, end = (k + 1) * m->n_out < f->row ? (k + 1) * m->n_out : f->row;
        phiq_release_pages((const uint8_t *)m->w[k]->data + (size_t)((r % m->n_out) * m->n_in) * es,
                           (uint64_t)((end - r) * m->n_in) * es);
        r = end;
    }
    f->rel_row = f->row;
}

typedef struct rows_job {
    const plan *p;
    scratch *s;
    const otensor *t;
    int64_t r0, r1;
    size_t rb;
    uint8_t *out;
    int rc;
    char err[256];
    pthread_t th;
} rows_job;

static void *rows_run(void *arg) {
    rows_job *j = arg;
    j->rc = 0;
    for (int64_t r = j->r0; r < j->r1 && !j->rc; r++)
        if ((j->rc = produce_row(j->p, j->s, j->t, r, j->out + (size_t)(r - j->r0) * j->rb)) < 0)
            snprintf(j->err, sizeof j->err, "%s", phiq_error()); /* the message is thread-local */
    return NULL;
}

/* rows [r0, r0 + n) of t, whole, into out, on up to f->n_threads threads */
static int produce_rows(filler *f, const otensor *t, int64_t r0, int64_t n, size_t rb, uint8_t *out) {
    int nt = f->n_threads;
    if (nt < 1 || (uint64_t)n * rb < ((uint64_t)1 << 20) || n < 2 * nt) nt = 1; /* not worth a thread */
    rows_job js[MLX_MAX_THREADS];
    for (int k = 0; k < nt; k++) {
        int64_t a = n * k / nt, b = n * (k + 1) / nt;
        js[k] = (rows_job){.p = f->p, .s = &f->s[k], .t = t, .r0 = r0 + a, .r1 = r0 + b, .rb = rb, .out = out + (size_t)a * rb};
    }
    int started = 1;
    for (int k = 1; k < nt; k++, started++)
        if (pthread_create(&js[k].th, NULL, rows_run, &js[k]) != 0) break;
    rows_run(&js[0]);
    for (int k = started; k < nt; k++) rows_run(&js[k]); /* threads that could not start */
    for (int k = 1; k < started; k++) pthread_join(js[k].th, NULL);
    for (int k = 0; k < nt; k++)
        if (js[k].rc < 0) return phiq_fail(js[k].rc, "%s", js[k].err);
    return 0;
}

static int fill_cb(void *user, int i, void *buf, uint64_t nbytes) {
    filler *f = user;
    int ti = f->order[i];
    if (ti != f->cur) {
        release_rows(f);
        f->cur = ti;
        f->row = f->rel_row = 0;
        f->carry_len = f->carry_off = 0;
    }
    const otensor *t = &f->p->t[ti];
    const size_t rb = (size_t)(t->nbytes / (uint64_t)t_rows(f->p, t));
    uint8_t *out = buf;
    int rc;
    while (nbytes > 0) {
        if (f->carry_off < f->carry_len) {
            size_t k = f->carry_len - f->carry_off < nbytes ? f->carry_len - f->carry_off : (size_t)nbytes;
            memcpy(out, f->carry + f->carry_off, k);
            f->carry_off += k;
            out += k;
            nbytes -= k;
            continue;
        }
        if (f->row >= t_rows(f->p, t)) return phiq_fail(PHIQ_EINVAL, "%s: more bytes requested than it has", t->name);
        if (nbytes >= rb) { /* whole rows straight into the buffer */
            int64_t k = (int64_t)(nbytes / rb), left = t_rows(f->p, t) - f->row;
            if (k > left) k = left;
            /* at most 32 MB of source per batch, released after it: .scales and .biases are far smaller
             * than the rows they come from */
            const mmod *m = &f->p->m[t->mod];
            int64_t per = (int64_t)(((uint64_t)32 << 20) / (uint64_t)(m->n_in * 4 + 1)) + 1;
            if (k > per) k = per;
            if ((rc = produce_rows(f, t, f->row, k, rb, out)) < 0) return rc;
            f->row += k;
            release_rows(f);
            out += (size_t)k * rb;
            nbytes -= (uint64_t)k * rb;
        } else {
            if ((rc = produce_row(f->p, &f->s[0], t, f->row++, f->carry)) < 0) return rc;
            f->carry_len = rb;
            f->carry_off = 0;
        }
    }
    release_rows(f); /* the source pages read so far: at most one fill buffer's worth stays resident */
    if (f->row == t_rows(f->p, t) && f->carry_off == f->carry_len) phiq_progress_step(f->prog, t->name, t->nbytes);
    return 0;
}

/* ---- JSON as Python's json.dump(indent=4) writes it ----------------------------------- */
typedef struct sbuf {
    char *s;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* ensure_ascii: non-ASCII as \uXXXX (UTF-16) */
static void py_string(sbuf *b, const char *s) {
    sb_str(b, "\"");
    const unsigned char *u = (const unsigned char *)s;
    char e[16];
    while (*u) {
        uint32_t c = *u;
        int len = 1;
        if (c >= 0xF0 && u[1] && u[2] && u[3]) c = ((c & 7) << 18) | ((u[1] & 63u) << 12) | ((u[2] & 63u) << 6) | (u[3] & 63u), len = 4;
        else if (c >= 0xE0 && u[1] && u[2]) c = ((c & 15) << 12) | ((u[1] & 63u) << 6) | (u[2] & 63u), len = 3;
        else if (c >= 0xC0 && u[1]) c = ((c & 31) << 6) | (u[1] & 63u), len = 2;
        u += len;
        if (c == '"') sb_str(b, "\\\"");
        else if (c == '\\') sb_str(b, "\\\\");
        else if (c == '\n') sb_str(b, "\\n");
        else if (c == '\r') sb_str(b, "\\r");
        else if (c == '\t') sb_str(b, "\\t");
        else if (c == '\b') sb_str(b, "\\b");
        else if (c == '\f') sb_str(b, "\\f");
        else if (c < 0x20 || (c >= 0x7F && c < 0x10000)) {
            if (c == 0x7F) { sb_put(b, "\x7f", 1); continue; }
            snprintf(e, sizeof e, "\\u%04x", c);
            sb_str(b, e);
        } else if (c >= 0x10000) {
            c -= 0x10000;
            snprintf(e, sizeof e, "\\u%04x\\u%04x", 0xD800 + (c >> 10), 0xDC00 + (c & 0x3FF));
            sb_str(b, e);
        } else {
            char ch = (char)c;
            sb_put(b, &ch, 1);
        }
    }
    sb_str(b, "\"");
}

/* Python's float repr: the shortest digits that read back the same. cJSON
 * keeps no int/float distinction, so an integral value is written as an
 * integer (10000.0 becomes 10000; json.load gives an equal number). */
static void py_number(sbuf *b, double v) {
    char t[40];
    if (v == floor(v) && fabs(v) < 1e16) {
        snprintf(t, sizeof t, "%.0f", v);
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(t, sizeof t, "%.*g", prec, v);
            if (strtod(t, NULL) == v) break;
        }
    }
    sb_str(b, t);
}

static void py_dump(sbuf *b, const cJSON *j, int level) {
    char ind[128];
    if (cJSON_IsObject(j) || cJSON_IsArray(j)) {
        bool obj = cJSON_IsObject(j);
        if (!j->child) {
            sb_str(b, obj ? "{}" : "[]");
            return;
        }
        sb_str(b, obj ? "{\n" : "[\n");
        int w = 4 * (level + 1) < 120 ? 4 * (level + 1) : 120;
        memset(ind, ' ', (size_t)w);
        ind[w] = 0;
        for (const cJSON *c = j->child; c; c = c->next) {
            sb_str(b, ind);
            if (obj) {
                py_string(b, c->string);
                sb_str(b, ": ");
            }
            py_dump(b, c, level + 1);
            sb_str(b, c->next ? ",\n" : "\n");
        }
        ind[w - 4] = 0;
        sb_str(b, ind);
        sb_str(b, obj ? "}" : "]");
    } else if (cJSON_IsString(j)) {
        py_string(b, j->valuestring);
    } else if (cJSON_IsNumber(j)) {
        py_number(b, j->valuedouble);
    } else if (cJSON_IsTrue(j)) {
        sb_str(b, "true");
    } else if (cJSON_IsFalse(j)) {
        sb_str(b, "false");
    } else {
        sb_str(b, "null");
    }
}

static int cmp_items(const void *a, const void *b) {
    return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

/* json.dump(dict(sorted(config.items())), indent=4) */
static char *dump_sorted(cJSON *root) {
    int n = cJSON_GetArraySize(root);
    cJSON **items = calloc((size_t)n + 1, sizeof *items);
    if (!items) return NULL;
    int k = 0;
    while (root->child) items[k++] = cJSON_DetachItemViaPointer(root, root->child);
    qsort(items, (size_t)k, sizeof *items, cmp_items);
    for (int i = 0; i < k; i++) cJSON_AddItemToObject(root, items[i]->string, items[i]);
    free(items);
    sbuf b = {0};
    py_dump(&b, root, 0);
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* ---- config.json ---------------------------------------------------------------------- */
static int load_json(const char *path, cJSON **out) {
    char *txt;
    size_t len;
    int rc = phiq_read_file(path, &txt, &len);
    if (rc) return rc;
    *out = cJSON_ParseWithLength(txt, len);
    free(txt);
    return *out ? 0 : phiq_fail(PHIQ_EFORMAT, "%s: invalid JSON", path);
}

static bool truthy(const cJSON *j) {
    if (!j) return false;
    if (cJSON_IsNumber(j)) return j->valuedouble != 0;
    if (cJSON_IsArray(j) || cJSON_IsObject(j)) return j->child != NULL;
    if (cJSON_IsString(j)) return j->valuestring[0] != 0;
    return cJSON_IsTrue(j);
}

static cJSON *qentry(int group_or_0, int bits) {
    cJSON *q = cJSON_CreateObject();
    if (!q) return NULL;
    if (group_or_0) cJSON_AddNumberToObject(q, "group_size", group_or_0);
    else cJSON_AddNullToObject(q, "group_size");
    cJSON_AddNumberToObject(q, "bits", bits);
    cJSON_AddStringToObject(q, "mode", "affine");
    return q;
}

static int write_config(const plan *p, cJSON *cfg, const phiq_outdir *od, int bits, int group) {
    const char *gen = phiq_hf_generation_config_json(p->hf);
    if (gen) {
        cJSON *g = NULL;
        if (load_json(gen, &g) == 0) {
            cJSON *eos = cJSON_GetObjectItemCaseSensitive(g, "eos_token_id");
            if (truthy(eos)) {
                cJSON_DeleteItemFromObjectCaseSensitive(cfg, "eos_token_id");
                cJSON_AddItemToObject(cfg, "eos_token_id", cJSON_Duplicate(eos, 1));
            }
            cJSON_Delete(g);
        } /* mlx-lm ignores an unreadable generation_config.json */
    }
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "_name_or_path");
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "vision_config");
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "quantization");
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "quantization_config");
    cJSON *q = qentry(group, bits);
    if (!q) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    if (p->o->recipe)
        for (int i = 0; i < p->nm; i++)
            if (p->m[i].quant) cJSON_AddItemToObject(q, p->m[i].path, qentry(p->o->group_size, p->m[i].bits));
    cJSON_AddItemToObject(cfg, "quantization", q);
    cJSON_AddItemToObject(cfg, "quantization_config", cJSON_Duplicate(q, 1));
    char *txt = dump_sorted(cfg);
    if (!txt) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    int rc = phiq_outdir_write(od, "config.json", txt, strlen(txt));
    free(txt);
    return rc;
}

/* mlx-lm refuses these at load time (or would silently run a different model) */
static int check_config(const phiq_hf *hf, const cJSON *cfg) {
    const phiq_hparams *hp = phiq_hf_hparams(hf);
    if (hp->arch != PHIQ_ARCH_PHI2 && hp->head_dim * hp->n_head != hp->n_embd)
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: head_dim %d != hidden_size / num_attention_heads (mlx-lm derives it)",
                         phiq_hf_dir(hf), hp->head_dim);
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    if (hp->arch == PHIQ_ARCH_PHI3 && rs && !cJSON_IsNull(rs)) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "type");
        if (!cJSON_IsString(ty) || !cJSON_GetObjectItemCaseSensitive(rs, "long_factor"))
            return phiq_fail(PHIQ_EUNSUPPORTED,
                             "%s: rope_scaling needs 'type' and 'long_factor' for mlx-lm's phi3 model (a 'rope_type' key alone makes mlx_lm.load fail)",
                             phiq_hf_dir(hf));
        if (strcmp(ty->valuestring, "longrope") && strcmp(ty->valuestring, "su") && strcmp(ty->valuestring, "default"))
            return phiq_fail(PHIQ_EUNSUPPORTED, "%s: rope_scaling type '%.32s': mlx-lm's phi3 model handles longrope/su",
                             phiq_hf_dir(hf), ty->valuestring);
    }
    return 0;
}

static int copy_side_files(const phiq_hf *hf, const phiq_outdir *od) {
    static const char *names[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                  "added_tokens.json", "tokenizer.model", "chat_template.jinja",
                                  "chat_template.json", "generation_config.json"};
    int rc = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names && !rc; i++) {
        char *sp = phiq_path_join(phiq_hf_dir(hf), names[i]);
        if (!sp) return phiq_fail(PHIQ_ENOMEM, "out of memory");
        if (phiq_file_exists(sp)) rc = phiq_outdir_copy(od, sp, names[i]);
        free(sp);
    }
    DIR *d = opendir(phiq_hf_dir(hf)); /* mlx-lm copies any *.py (remote code) too */
    struct dirent *e;
    while (!rc && d && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 4 || strcmp(e->d_name + l - 3, ".py") || e->d_name[0] == '.') continue;
        char *sp = phiq_path_join(phiq_hf_dir(hf), e->d_name);
        if (sp && phiq_file_exists(sp)) rc = phiq_outdir_copy(od, sp, e->d_name);
        free(sp);
    }
    if (d) closedir(d);
    if (rc) return rc;
    static const char card[] = "---\nlanguage: en\nlibrary_name: mlx\npipeline_tag: text-generation\ntags:\n- mlx\n---\n";
    return phiq_outdir_write(od, "README.md", card, sizeof card - 1);
}

/* ---- driver ------------------------------------------------------------------------------ */
static const plan *g_sort_plan; /* qsort has no user pointer in C11 */
static int cmp_names(const void *a, const void *b) {
    return strcmp(g_sort_plan->t[*(const int *)a].name, g_sort_plan->t[*(const int *)b].name);
}

static int write_shards(plan *p, const phiq_outdir *od, uint64_t max_bytes, phiq_mlx_stats *st) {
    /* mlx-lm's make_shards: greedy in parameter order */
    int n_shards = 1;
    uint64_t size = 0;
    for (int i = 0; i < p->nt; i++) {
        if (size > 0 && size + p->t[i].nbytes > max_bytes) {
            n_shards++;
            size = 0;
        }
        p->t[i].shard = n_shards - 1;
        size += p->t[i].nbytes;
    }
    int *order = malloc((size_t)p->nt * sizeof *order);
    phiq_st_out_tensor *ts = malloc((size_t)p->nt * sizeof *ts);
    filler f = {.p = p, .cur = -1};
    int64_t max_in = 1;
    for (int i = 0; i < p->nm; i++) {
        if (p->m[i].n_in > max_in) max_in = p->m[i].n_in;
        if (p->m[i].b && p->m[i].b->shape[0] > max_in) max_in = p->m[i].b->shape[0];
    }
    f.carry = malloc((size_t)max_in * 4 + 64);
    f.n_threads = p->o->n_threads > 0 ? p->o->n_threads : phiq_physical_cores();
    if (f.n_threads < 1) f.n_threads = 1;
    if (f.n_threads > MLX_MAX_THREADS) f.n_threads = MLX_MAX_THREADS;
    bool scratch_ok = true;
    for (int k = 0; k < f.n_threads; k++) scratch_ok = scratch_alloc(&f.s[k], max_in) == 0 && scratch_ok;
    cJSON *index = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(index, "metadata");
    cJSON *wm = cJSON_AddObjectToObject(index, "weight_map");
    int rc = 0;
    if (!order || !ts || !f.carry || !scratch_ok || !wm) rc = phiq_fail(PHIQ_ENOMEM, "out of memory");
    phiq_progress prog;
    uint64_t total = 0;
    for (int i = 0; i < p->nt; i++) total += p->t[i].nbytes;
    phiq_progress_start(&prog, "mlx", p->nt, total, p->o->quiet);
    f.prog = &prog;
    for (int s = 0; s < n_shards && !rc; s++) {
        int n = 0;
        for (int i = 0; i < p->nt; i++)
            if (p->t[i].shard == s) order[n++] = i;
        g_sort_plan = p;
        qsort(order, (size_t)n, sizeof *order, cmp_names);
        for (int k = 0; k < n; k++) {
            const otensor *t = &p->t[order[k]];
            ts[k] = (phiq_st_out_tensor){.name = t->name, .dtype = t->dtype, .n_dims = t->n_dims};
            for (int d = 0; d < t->n_dims; d++) ts[k].shape[d] = t->shape[d];
        }
        char fname[64];
        if (n_shards == 1) snprintf(fname, sizeof fname, "model.safetensors");
        else snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        char *path = phiq_outdir_path(od, fname);
        if (!path) {
            rc = phiq_fail(PHIQ_ENOMEM, "out of memory");
            break;
        }
        f.order = order;
        f.cur = -1;
        phiq_st_write_opts wo = {.format = "mlx", .mlx_header = 1};
        rc = phiq_st_write_ex(path, ts, n, fill_cb, &f, &wo);
        free(path);
        for (int k = 0; k < n && !rc; k++) cJSON_AddStringToObject(wm, p->t[order[k]].name, fname);
    }
    phiq_progress_end(&prog);
    if (!rc) {
        /* weight_map sorted across shards */
        int n = cJSON_GetArraySize(wm);
        cJSON **items = calloc((size_t)n + 1, sizeof *items);
        if (!items) rc = phiq_fail(PHIQ_ENOMEM, "out of memory");
        int k = 0;
        while (items && wm->child) items[k++] = cJSON_DetachItemViaPointer(wm, wm->child);
        if (items) qsort(items, (size_t)k, sizeof *items, cmp_items);
        for (int i = 0; i < k; i++) cJSON_AddItemToObject(wm, items[i]->string, items[i]);
        free(items);
        int64_t params = 0;
        for (int i = 0; i < p->nm; i++) {
            const mmod *m = &p->m[i];
            params += m->kind == MOD_NORM ? m->n_in : m->n_src * m->n_out * m->n_in;
            if (m->b) params += m->b->shape[0];
            st->n_quantized += m->quant;
        }
        cJSON_AddNumberToObject(meta, "total_size", (double)total);
        cJSON_AddNumberToObject(meta, "total_parameters", (double)params);
        sbuf b = {0};
        py_dump(&b, index, 0);
        rc = b.oom ? phiq_fail(PHIQ_ENOMEM, "out of memory") : phiq_outdir_write(od, "model.safetensors.index.json", b.s, b.n);
        free(b.s);
        st->n_parameters = params;
        st->total_size = total;
        st->n_tensors = p->nt;
        st->n_shards = n_shards;
    }
    cJSON_Delete(index);
    free(order);
    free(ts);
    free(f.carry);
    for (int k = 0; k < f.n_threads; k++) scratch_free(&f.s[k]);
    return rc;
}

int phiq_mlx_export(const char *src_dir, const char *out_dir, const phiq_mlx_opts *o, phiq_mlx_stats *st) {
    phiq_mlx_stats dummy;
    if (!st) st = &dummy;
    memset(st, 0, sizeof *st);
    if (!src_dir || !out_dir || !o) return phiq_fail(PHIQ_EINVAL, "mlx export: missing argument");
    int bits = o->bits ? o->bits : 4, group = o->group_size ? o->group_size : 64;
    if (!phiq_mlx_bits_ok(bits)) return phiq_fail(PHIQ_EINVAL, "--bits %d: MLX quantizes to 2, 3, 4, 5, 6 or 8 bits", bits);
    if (!phiq_mlx_group_ok(group))
        return phiq_fail(PHIQ_EINVAL, "--group-size %d: MLX's group sizes are 32, 64 and 128", group);
    if (o->recipe && strcmp(o->recipe, "mixed_2_6") && strcmp(o->recipe, "mixed_3_4") && strcmp(o->recipe, "mixed_3_6") &&
        strcmp(o->recipe, "mixed_4_6"))
        return phiq_fail(PHIQ_EINVAL, "--recipe '%s': expected one of %s", o->recipe, phiq_mlx_recipe_names());
    if (!phiq_dir_exists(src_dir))
        return phiq_fail(PHIQ_EINVAL, "%s: MLX export reads a Hugging Face checkpoint directory", src_dir);
    double t0 = phiq_now();
    plan p = {.o = o, .dtype = -1, .spill_fd = -1};
    cJSON *cfg = NULL;
    phiq_outdir od = {0};
    int rc = 0;
    phiq_hf *hf = phiq_hf_open(src_dir);
    if (!hf) return PHIQ_EFORMAT;
    p.hf = hf;
    const phiq_hparams *hp = phiq_hf_hparams(hf);
    char *cpath = phiq_path_join(src_dir, "config.json");
    if (!cpath) rc = phiq_fail(PHIQ_ENOMEM, "out of memory");
    if (!rc) rc = load_json(cpath, &cfg);
    free(cpath);
    if (rc) goto out;
    if (phiq_hf_is_mlx(hf)) {
        rc = phiq_fail(PHIQ_EUNSUPPORTED, "%s: already an MLX quantized checkpoint", src_dir);
        goto out;
    }
    if ((rc = check_config(hf, cfg))) goto out;
    if (o->recipe && hp->arch == PHIQ_ARCH_PHI2) {
        rc = phiq_fail(PHIQ_EUNSUPPORTED, "--recipe %s: Phi-2 has no down_proj, and mlx-lm's mixed recipes refuse a model without one",
                       o->recipe);
        goto out;
    }
    const cJSON *td = cJSON_GetObjectItemCaseSensitive(cfg, "torch_dtype");
    if (cJSON_IsString(td)) {
        if (!strcmp(td->valuestring, "float16")) p.dtype = PHIQ_ST_F16;
        else if (!strcmp(td->valuestring, "bfloat16")) p.dtype = PHIQ_ST_BF16;
        else if (!strcmp(td->valuestring, "float32")) p.dtype = PHIQ_ST_F32;
    }
    if ((rc = build_modules(&p)) || (rc = build_tensors(&p, bits, group))) goto out;
    if ((rc = phiq_outdir_open(&od, out_dir))) goto out;
    if (o->calib && (rc = calib_prepass(&p, src_dir, &od, st))) goto out;
    if ((rc = write_shards(&p, &od, o->shard_bytes ? o->shard_bytes : (uint64_t)5 << 30, st)) ||
        (rc = write_config(&p, cfg, &od, bits, group)) || (rc = copy_side_files(hf, &od)))
        goto out;
    rc = phiq_outdir_commit(&od);
    snprintf(st->arch, sizeof st->arch, "%s", phiq_arch_name(hp->arch));
    st->seconds = phiq_now() - t0;
out:
    if (p.spill_fd >= 0) close(p.spill_fd);
    phiq_outdir_abort(&od);
    cJSON_Delete(cfg);
    free(p.m);
    free(p.t);
    phiq_hf_close(hf);
    return rc;
}
