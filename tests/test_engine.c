/* test_engine.c — the forward pass against references we did not write:
 *  - the tiny-phi3-kjv fixture's PyTorch logits (every position of every
 *    prompt; HF directory loaded directly, and the F32 GGUF from
 *    `phiq convert` when that command is available), f32 and f16 KV cache;
 *  - llama.cpp (llama-ref logits --all) on the fixture GGUF and on
 *    synthetic 2-layer models from `phiq synth` (phi3 MHA full rotary;
 *    phi3 GQA + partial rotary + LongRoPE + tied; phi2);
 *  - LongRoPE's Hugging Face rule: a generation crossing n_ctx_orig
 *    re-prefills and equals a from-scratch long-factor evaluation (and
 *    llama.cpp's long-factor logits);
 *  - the sliding-window definition (key j visible to query i iff
 *    i-W < j <= i) through the exact receptive field it implies;
 *  - the API: contexts shared across threads, truncate + re-eval, errors. */
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/common.h"
#include "formats/gguf.h"
#include "formats/hf.h"
#include "phiq.h"

#define V_FIX 32064

static const char *fixture_dir(void) { return tu_shared_path("fixtures/tiny-phi3-kjv"); }

/* ---- reference prompts ------------------------------------------------------- */
typedef struct {
    int n;
    int32_t ids[512];
    char file[64];
} prompt;

static int load_prompts(prompt *ps, int cap) {
    char *txt = NULL;
    size_t len;
    char path[4096];
    snprintf(path, sizeof path, "%s/reference/prompts.json", fixture_dir());
    if (phiq_read_file(path, &txt, &len) < 0) return -1;
    /* tiny scanner: each "file": "...", then "ids": [ ... ] */
    int n = 0;
    char *p = txt;
    while (n < cap && (p = strstr(p, "\"file\""))) {
        p = strchr(p + 6, '"');
        if (!p) break;
        char *e = strchr(p + 1, '"');
        snprintf(ps[n].file, sizeof ps[n].file, "%.*s", (int)(e - p - 1), p + 1);
        p = strstr(e, "\"ids\"");
        if (!p) break;
        p = strchr(p, '[') + 1;
        ps[n].n = tu_parse_ids(&p, ps[n].ids, 512);
        n++;
    }
    free(txt);
    return n;
}

static float *ref_logits(const prompt *pr) {
    char path[4096];
    snprintf(path, sizeof path, "%s/reference/%s", fixture_dir(), pr->file);
    size_t n;
    float *r = tu_read_all(path, &n);
    assert_non_null(r);
    assert_int_equal(n, (size_t)pr->n * V_FIX * sizeof(float));
    return r;
}

/* Worst over rows of max|a-b| / range(b). */
static double worst_rel(const float *a, const float *b, int rows, int nv) {
    double w = 0;
    for (int r = 0; r < rows; r++) {
        double d = tu_max_abs_diff(a + (size_t)r * nv, b + (size_t)r * nv, (size_t)nv);
        double rg = tu_range(b + (size_t)r * nv, (size_t)nv);
        if (d / rg > w) w = d / rg;
    }
    return w;
}

static phiq_context *new_ctx(const phiq_model *m, int n_ctx, int kv32, int all, int rope_mode, int swa) {
    phiq_context_params cp = phiq_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_threads = 2;
    cp.kv_type = kv32 ? PHIQ_KV_TYPE_F32 : PHIQ_KV_TYPE_F16;
    cp.all_logits = all;
    cp.rope_mode = rope_mode;
    cp.sliding_window = swa;
    phiq_context *c = phiq_context_new(m, &cp);
    if (!c) fail_msg("context: %s", phiq_error());
    return c;
}

/* Evaluates ids in one batch; returns malloc'd logits of every position. */
static float *eval_all(const phiq_model *m, const int32_t *ids, int n, int kv32, int rope_mode, int n_ctx, int swa) {
    phiq_context *c = new_ctx(m, n_ctx ? n_ctx : (n < 256 ? 256 : n), kv32, 1, rope_mode, swa);
    float *out = tu_eval_logits(c, ids, n, n, phiq_model_n_vocab(m));
    phiq_context_free(c);
    return out;
}


/* ---- a stand-in HF -> F32 GGUF writer for the llama.cpp comparisons ----------
 * Used only while `phiq convert` is unavailable. Names follow llama.cpp's
 * mapping table (docs/reference/llamacpp-gguf-quant.md §2.1), metadata its
 * §1.7 keys, and the vocabulary is copied from llama.cpp's own vocab-only
 * GGUF (so the model's vocab size must match it). */
typedef struct {
    const phiq_st_tensor *st; /* or */
    const float *vec;         /* or */
    const phiq_st_tensor *parts[16]; /* experts stacked along ne[2] */
    int n_parts;
} gg_src;

static int gg_fill(void *user, int64_t i, const char *name, void *buf, uint64_t nbytes) {
    (void)name;
    const gg_src *s = (const gg_src *)user + i;
    if (s->vec) memcpy(buf, s->vec, nbytes);
    else if (s->st) return phiq_st_to_f32(s->st, 0, s->st->n_elements, buf);
    else
        for (int e = 0, off = 0; e < s->n_parts; off += (int)s->parts[e]->n_elements, e++) {
            int rc = phiq_st_to_f32(s->parts[e], 0, s->parts[e]->n_elements, (float *)buf + off);
            if (rc < 0) return rc;
        }
    return 0;
}

static const char *gg_map(const char *hf, char *out, size_t cap) {
    static const char *const m[][2] = {
        {"input_layernorm", "attn_norm"},       {"self_attn.qkv_proj", "attn_qkv"}, {"self_attn.q_proj", "attn_q"},
        {"self_attn.k_proj", "attn_k"},         {"self_attn.v_proj", "attn_v"},     {"self_attn.o_proj", "attn_output"},
        {"self_attn.dense", "attn_output"},     {"post_attention_layernorm", "ffn_norm"}, {"mlp.gate_up_proj", "ffn_up"},
        {"mlp.fc1", "ffn_up"},                  {"mlp.down_proj", "ffn_down"},      {"mlp.fc2", "ffn_down"},
        {"block_sparse_moe.gate", "ffn_gate_inp"},
    };
    int layer, used = 0;
    if (!strncmp(hf, "model.embed_tokens.", 19)) snprintf(out, cap, "token_embd.%s", hf + 19);
    else if (!strncmp(hf, "model.norm.", 11)) snprintf(out, cap, "output_norm.%s", hf + 11);
    else if (!strncmp(hf, "model.final_layernorm.", 22)) snprintf(out, cap, "output_norm.%s", hf + 22);
    else if (!strncmp(hf, "lm_head.", 8)) snprintf(out, cap, "output.%s", hf + 8);
    else if (sscanf(hf, "model.layers.%d.%n", &layer, &used) == 1 && used > 0) {
        const char *rest = hf + used;
        for (size_t k = 0; k < sizeof m / sizeof m[0]; k++) {
            size_t l = strlen(m[k][0]);
            if (!strncmp(rest, m[k][0], l) && rest[l] == '.') {
                snprintf(out, cap, "blk.%d.%s%s", layer, m[k][1], rest + l);
                return out;
            }
        }
        return NULL;
    } else return NULL;
    return out;
}

static const char *phiq_model_arch_name_for_test(phiq_arch a) {
    return a == PHIQ_ARCH_PHI2 ? "phi2" : a == PHIQ_ARCH_PHIMOE ? "phimoe" : "phi3";
}

static int stand_in_gguf(const char *dir, const char *out) {
    phiq_hf *hf = phiq_hf_open(dir);
    if (!hf) fail_msg("%s", phiq_error());
    const phiq_hparams *hp = phiq_hf_hparams(hf);
    const bool phi2 = hp->arch == PHIQ_ARCH_PHI2;
    const char *arch = phiq_model_arch_name_for_test(hp->arch);
    phiq_gguf *voc = phiq_gguf_open(tu_shared_path(phi2 ? "fixtures/vocab/ggml-vocab-gpt-2.gguf" : "fixtures/vocab/ggml-vocab-phi-3.gguf"));
    if (!voc) fail_msg("%s", phiq_error());
    phiq_gguf_writer *w = phiq_gguf_writer_new();
    char key[128];
#define KEY(s) (snprintf(key, sizeof key, "%s.%s", arch, s), key)
    phiq_gguf_writer_set_str(w, "general.architecture", arch);
    phiq_gguf_writer_set_u32(w, KEY("context_length"), (uint32_t)hp->n_ctx_train);
    phiq_gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)hp->n_embd);
    phiq_gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)hp->n_layer);
    phiq_gguf_writer_set_u32(w, KEY("feed_forward_length"), (uint32_t)hp->n_ff);
    phiq_gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)hp->n_head);
    phiq_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)hp->n_head_kv);
    phiq_gguf_writer_set_f32(w, KEY(phi2 ? "attention.layer_norm_epsilon" : "attention.layer_norm_rms_epsilon"), hp->norm_eps);
    phiq_gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)hp->n_rot);
    phiq_gguf_writer_set_f32(w, KEY("rope.freq_base"), hp->rope_theta);
    if (hp->n_rope_factors) {
        phiq_gguf_writer_set_f32(w, KEY("rope.scaling.attn_factor"), hp->rope_attn_factor);
        phiq_gguf_writer_set_u32(w, KEY("rope.scaling.original_context_length"), (uint32_t)hp->n_ctx_orig);
    }
    if (hp->n_expert) {
        phiq_gguf_writer_set_u32(w, KEY("expert_count"), (uint32_t)hp->n_expert);
        phiq_gguf_writer_set_u32(w, KEY("expert_used_count"), (uint32_t)hp->n_expert_used);
    }
#undef KEY
    for (int64_t i = 0; i < phiq_gguf_n_kv(voc); i++)
        if (!strncmp(phiq_gguf_kv_key(voc, i), "tokenizer.", 10)) phiq_gguf_writer_copy_kv(w, voc, i);
    int nt = phiq_hf_n_tensors(hf);
    gg_src *src = calloc((size_t)nt + 2 + 3 * (size_t)hp->n_layer, sizeof *src);
    int n = 0;
    for (int i = 0; i < nt; i++) {
        const phiq_st_tensor *t = phiq_hf_tensor_at(hf, i);
        char name[128];
        if (!gg_map(t->name, name, sizeof name)) continue;
        int64_t ne[4];
        for (int d = 0; d < t->n_dims; d++) ne[d] = t->shape[t->n_dims - 1 - d];
        if (phiq_gguf_writer_add_tensor(w, name, PHIQ_GGML_TYPE_F32, t->n_dims, ne) < 0) fail_msg("%s", phiq_error());
        src[n++].st = t;
    }
    for (int L = 0; L < hp->n_layer && hp->n_expert; L++) {
        const char *kind[3] = {"gate", "up", "down"}, *hfw[3] = {"w1", "w3", "w2"};
        for (int k = 0; k < 3; k++) {
            char name[128];
            gg_src *g = &src[n];
            for (int e = 0; e < hp->n_expert && e < 16; e++) {
                snprintf(name, sizeof name, "model.layers.%d.block_sparse_moe.experts.%d.%s.weight", L, e, hfw[k]);
                g->parts[g->n_parts++] = phiq_hf_find(hf, name);
                assert_non_null(g->parts[e]);
            }
            int64_t ne3[3] = {g->parts[0]->shape[1], g->parts[0]->shape[0], hp->n_expert};
            snprintf(name, sizeof name, "blk.%d.ffn_%s_exps.weight", L, kind[k]);
            if (phiq_gguf_writer_add_tensor(w, name, PHIQ_GGML_TYPE_F32, 3, ne3) < 0) fail_msg("%s", phiq_error());
            n++;
        }
    }
    if (hp->n_rope_factors) {
        int64_t ne = hp->n_rope_factors;
        phiq_gguf_writer_add_tensor(w, "rope_factors_long.weight", PHIQ_GGML_TYPE_F32, 1, &ne);
        src[n++].vec = hp->rope_long;
        phiq_gguf_writer_add_tensor(w, "rope_factors_short.weight", PHIQ_GGML_TYPE_F32, 1, &ne);
        src[n++].vec = hp->rope_short;
    }
    phiq_gguf_write_opts o = {1, "gguf"};
    int rc = phiq_gguf_writer_write(w, out, gg_fill, src, &o);
    if (rc < 0) fail_msg("%s", phiq_error());
    phiq_gguf_writer_free(w);
    phiq_gguf_close(voc);
    free(src);
    phiq_hf_close(hf);
    return rc;
}

/* ---- the fixture's F32 GGUF ------------------------------------------------------ */
static const char *fixture_gguf(void) {
    static int tried = 0;
    static char path[4096];
    if (!tried) {
        tried = 1;
        snprintf(path, sizeof path, "%s", tu_tmp("kjv-f32.gguf"));
        char *err = NULL;
        int rc = tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --type f32 -q 2>&1 || '%s' convert '%s' -o '%s' --type f32",
                        tu_bin(), fixture_dir(), path, tu_bin(), fixture_dir(), path);
        if (rc != 0 || !phiq_file_exists(path)) {
            fprintf(stderr, "test_engine: `phiq convert --type f32` unavailable (%.80s); using the test's stand-in writer\n",
                    err ? err : "?");
            stand_in_gguf(fixture_dir(), path);
        }
        free(err);
    }
    return path[0] ? path : NULL;
}

static void check_fixture_model(const phiq_model *m, const char *label) {
    prompt ps[8];
    int np = load_prompts(ps, 8);
    assert_true(np >= 3);
    assert_int_equal(phiq_model_n_vocab(m), V_FIX);
    for (int i = 0; i < np; i++) {
        if (getenv("PHIQ_SANITIZED") && ps[i].n > 16) continue; /* keep the sanitizer run short */
        float *ref = ref_logits(&ps[i]);
        for (int kv32 = 1; kv32 >= 0; kv32--) {
            float *got = eval_all(m, ps[i].ids, ps[i].n, kv32, PHIQ_ROPE_MODE_HF, 0, 0);
            double w = worst_rel(got, ref, ps[i].n, V_FIX);
            fprintf(stderr, "  %s prompt %d (%d tokens) kv %s: max|diff|/range over all positions = %.3g\n", label, i,
                    ps[i].n, kv32 ? "f32" : "f16", w);
            assert_true(w <= (kv32 ? 1e-4 : 1e-3));
            free(got);
        }
        free(ref);
    }
}

static void test_fixture_hf_dir(void **state) {
    (void)state;
    const char *types[] = {"f32", "bf16", "f16", "q8_0"};
    for (int t = 0; t < 4; t++) {
        if (getenv("PHIQ_SANITIZED") && t != 1) continue;
        phiq_model_params mp = {.type = types[t], .n_threads = 2};
        phiq_model *m = phiq_model_open(fixture_dir(), &mp);
        if (!m) fail_msg("open %s: %s", fixture_dir(), phiq_error());
        if (t < 2) {
            check_fixture_model(m, types[t]);
        } else {
            /* f16 / q8_0 weights: rounding the bf16 weights costs some accuracy */
            prompt ps[8];
            load_prompts(ps, 8);
            float *ref = ref_logits(&ps[0]);
            float *got = eval_all(m, ps[0].ids, ps[0].n, 1, PHIQ_ROPE_MODE_HF, 0, 0);
            double w = worst_rel(got, ref, ps[0].n, V_FIX);
            fprintf(stderr, "  HF dir as %s weights prompt 0: %.3g\n", types[t], w);
            assert_true(w <= (t == 2 ? 2e-3 : 2.5e-2));
            free(got);
            free(ref);
        }
        phiq_model_free(m);
    }
}

static void test_fixture_gguf(void **state) {
    (void)state;
    const char *g = fixture_gguf();
    if (!g) skip();
    phiq_model *m = phiq_model_open(g, NULL);
    if (!m) fail_msg("open %s: %s", g, phiq_error());
    check_fixture_model(m, "gguf-f32");
    phiq_model_free(m);
}

/* ---- llama.cpp ----------------------------------------------------------------- */
static float *llama_logits(const char *gguf, const int32_t *ids, int n, int all, int nv) {
    const char *lr = tu_llama_ref();
    if (!lr) return NULL;
    char *list = malloc((size_t)n * 12 + 1);
    list[0] = 0;
    for (int i = 0; i < n; i++) sprintf(list + strlen(list), i ? ",%d" : "%d", ids[i]);
    const char *out = tu_tmp("llama.f32");
    char *err = NULL;
    int rc = tu_run(NULL, &err, "LLAMA_REF_THREADS=2 '%s' logits '%s' %s %s --out '%s'", lr, gguf, list, all ? "--all" : "", out);
    free(list);
    if (rc != 0) fail_msg("llama-ref failed (%d): %s", rc, err ? err : "");
    free(err);
    size_t sz;
    float *r = tu_read_all(out, &sz);
    assert_int_equal(sz, (size_t)(all ? n : 1) * (size_t)nv * sizeof(float));
    return r;
}

static double compare_llama(const char *gguf, const int32_t *ids, int n, const char *label);
static float *eval_all_p(const phiq_model *m, const int32_t *ids, int n, const phiq_context_params *cp) {
    phiq_context *c = phiq_context_new(m, cp);
    if (!c) fail_msg("context: %s", phiq_error());
    float *out = tu_eval_logits(c, ids, n, n, phiq_model_n_vocab(m));
    phiq_context_free(c);
    return out;
}

static double compare_llama(const char *gguf, const int32_t *ids, int n, const char *label) {
    phiq_model *m = phiq_model_open(gguf, NULL);
    if (!m) fail_msg("open %s: %s", gguf, phiq_error());
    int nv = phiq_model_n_vocab(m);
    float *ref = llama_logits(gguf, ids, n, 1, nv);
    if (!ref) {
        phiq_model_free(m);
        return -1;
    }
    /* llama-ref's context is max(64, n) tokens (rounded up to 256 inside
     * llama.cpp); llama.cpp never applies phi3's sliding window */
    phiq_context_params cp = phiq_context_default_params();
    cp.n_ctx = n < 64 ? 64 : n;
    cp.n_threads = 2;
    cp.all_logits = 1;
    cp.rope_mode = PHIQ_ROPE_MODE_LLAMACPP;
    cp.sliding_window = -1;
    cp.phimoe_llamacpp = 1;
    float *got = eval_all_p(m, ids, n, &cp);
    double w = worst_rel(got, ref, n, nv);
    fprintf(stderr, "  vs llama.cpp, %s (%d positions): max|diff|/range = %.3g\n", label, n, w);
    assert_true(w <= 1e-3);
    free(got);
    free(ref);
    phiq_model_free(m);
    return w;
}

static void test_llama_fixture(void **state) {
    (void)state;
    const char *g = fixture_gguf();
    if (!g) skip();
    tu_require_llama_ref();
    prompt ps[8];
    int np = load_prompts(ps, 8);
    for (int i = 0; i < np; i++) {
        if (getenv("PHIQ_SANITIZED") && ps[i].n > 64) continue;
        compare_llama(g, ps[i].ids, ps[i].n, ps[i].file);
    }
}

static void test_llama_synth(void **state) {
    (void)state;
    tu_require_llama_ref();
    const struct { const char *name, *args; } models[] = {
        {"phi3 MHA full rotary", "--arch phi3 --hidden 128 --layers 2 --heads 4 --kv-heads 4 --ff 256 --vocab 32064 --ctx 512"},
        {"phi3 GQA partial rotary LongRoPE tied",
         "--arch phi3 --hidden 128 --layers 2 --heads 4 --kv-heads 2 --ff 192 --vocab 32064 --partial-rotary 0.75 --ctx 2048 "
         "--ctx-orig 256 --tied"},
        {"phi2", "--arch phi2 --hidden 128 --layers 2 --heads 4 --ff 256 --vocab 51200 --partial-rotary 0.5 --ctx 512"},
        {"phimoe (llama.cpp graph)", "--arch phimoe --hidden 128 --layers 2 --heads 4 --kv-heads 2 --ff 128 --vocab 32064 "
                                     "--experts 4 --experts-used 2 --ctx 512"},
    };
    int ran = 0;
    for (size_t k = 0; k < sizeof models / sizeof models[0]; k++) {
        char dir[4096], gguf[4096];
        snprintf(dir, sizeof dir, "%s", tu_tmp(""));
        snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "synth%zu", k);
        snprintf(gguf, sizeof gguf, "%s.gguf", dir);
        char *err = NULL;
        if (tu_run(NULL, &err, "'%s' synth %s --seed %zu -q -o '%s'", tu_bin(), models[k].args, k + 7, dir) != 0) {
            fprintf(stderr, "test_engine: synth unavailable for %s: %s\n", models[k].name, err ? err : "");
            free(err);
            continue;
        }
        free(err);
        err = NULL;
        if (tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --type f32 -q", tu_bin(), dir, gguf) != 0) {
            fprintf(stderr, "test_engine: `phiq convert` unavailable (%.80s); using the test's stand-in writer\n", err ? err : "");
            stand_in_gguf(dir, gguf);
        }
        free(err);
        int32_t ids[40];
        phiq_model *m = phiq_model_open(gguf, NULL);
        if (!m) fail_msg("open %s: %s", gguf, phiq_error());
        int nv = phiq_model_n_vocab(m);
        phiq_model_free(m);
        srand(11 + (unsigned)k);
        for (int i = 0; i < 40; i++) ids[i] = rand() % (nv < 2000 ? nv : 2000);
        compare_llama(gguf, ids, 40, models[k].name);
        /* the HF directory loaded directly gives the same logits as its GGUF */
        phiq_model_params mp = {.type = "f32", .n_threads = 2};
        phiq_model *mh = phiq_model_open(dir, &mp), *mg = phiq_model_open(gguf, NULL);
        if (!mh || !mg) fail_msg("%s", phiq_error());
        for (int graph = 0; graph < 2; graph++) {
            phiq_context_params cp = phiq_context_default_params();
            cp.n_ctx = 64;
            cp.n_threads = 2;
            cp.all_logits = 1;
            cp.kv_type = PHIQ_KV_TYPE_F32;
            cp.phimoe_llamacpp = graph;
            float *a = eval_all_p(mh, ids, 40, &cp), *b = eval_all_p(mg, ids, 40, &cp);
            double w = worst_rel(a, b, 40, nv);
            bool finite = true;
            for (size_t i = 0; i < (size_t)40 * nv; i++) finite &= isfinite(a[i]) != 0;
            assert_true(finite);
            fprintf(stderr, "  %s: HF dir vs GGUF in phiq%s: %.3g\n", models[k].name, graph ? " (llama.cpp phimoe graph)" : "", w);
            assert_true(w <= 1e-5);
            free(a);
            free(b);
        }
        phiq_model_free(mh);
        phiq_model_free(mg);
        ran++;
    }
    if (!ran) skip();
}


/* llama.cpp's own quantizer and its forward pass on the fixture: phiq reads
 * the files and lands within the quantization noise of llama.cpp (which also
 * quantizes activations to q8 for its integer dot products). */
static void test_llama_quantized(void **state) {
    (void)state;
    const char *g = fixture_gguf();
    const char *lr = tu_llama_ref();
    if (!g || !lr || getenv("PHIQ_SANITIZED")) skip();
    prompt ps[8];
    load_prompts(ps, 8);
    const prompt *pr = &ps[2];
    float *ref = ref_logits(pr);
    const struct { const char *type; double tol_llama, tol_ref; int numerics; } qs[] = {
        {"F16", 1e-3, 1e-3, 1}, {"Q8_0", 2.5e-2, 2.5e-2, 0}, {"Q4_K_M", 2.5e-2, 1.2e-1, 0},
    };
    for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
        char out[4096];
        snprintf(out, sizeof out, "%s", tu_tmp(qs[k].type));
        if (tu_run(NULL, NULL, "'%s' quantize '%s' '%s' %s", lr, g, out, qs[k].type) != 0) fail_msg("llama-ref quantize %s", qs[k].type);
        phiq_model *m = phiq_model_open(out, NULL);
        if (!m) fail_msg("%s", phiq_error());
        float *ll = llama_logits(out, pr->ids, pr->n, 1, V_FIX);
        phiq_context_params cp = phiq_context_default_params();
        cp.n_ctx = pr->n;
        cp.n_threads = 2;
        cp.all_logits = 1;
        cp.rope_mode = PHIQ_ROPE_MODE_LLAMACPP;
        cp.llamacpp_numerics = qs[k].numerics;
        phiq_context *c = phiq_context_new(m, &cp);
        assert_int_equal(phiq_eval(c, pr->ids, pr->n), 0);
        double wl = 0, wr = 0;
        for (int i = 0; i < pr->n; i++) {
            double a = worst_rel(phiq_logits_at(c, i), ll + (size_t)i * V_FIX, 1, V_FIX);
            double b = worst_rel(phiq_logits_at(c, i), ref + (size_t)i * V_FIX, 1, V_FIX);
            if (a > wl) wl = a;
            if (b > wr) wr = b;
        }
        fprintf(stderr, "  %s (llama-ref quantize): vs llama.cpp %.3g, vs PyTorch f32 %.3g (%d positions)\n", qs[k].type, wl,
                wr, pr->n);
        assert_true(wl <= qs[k].tol_llama);
        assert_true(wr <= qs[k].tol_ref);
        phiq_context_free(c);
        phiq_model_free(m);
        free(ll);
    }
    free(ref);
}

/* ---- LongRoPE: Hugging Face's switch with re-prefill ------------------------------ */
static void test_longrope_switch(void **state) {
    (void)state;
    if (getenv("PHIQ_SANITIZED")) {
        fprintf(stderr, "test_engine: LongRoPE switch needs > 1024 tokens; skipped in the sanitizer build\n");
        skip();
    }
    phiq_model_params mp = {.type = "f32", .n_threads = 2};
    phiq_model *m = phiq_model_open(fixture_dir(), &mp);
    if (!m) fail_msg("%s", phiq_error());
    int orig = phiq_model_n_ctx_orig(m);
    assert_int_equal(orig, 1024);
    const int N = orig + 4;
    prompt ps[8];
    load_prompts(ps, 8);
    int32_t *ids = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) ids[i] = ps[2].ids[i % ps[2].n];
    /* incremental, crossing n_ctx_orig one token at a time */
    phiq_context *inc = new_ctx(m, N, 1, 0, PHIQ_ROPE_MODE_HF, 0);
    assert_int_equal(phiq_eval(inc, ids, orig - 2), 0);
    float *short_last = malloc(sizeof(float) * V_FIX);
    for (int p = orig - 2; p < N; p++) {
        assert_int_equal(phiq_eval(inc, ids + p, 1), 0);
        if (p == orig - 1) memcpy(short_last, phiq_logits(inc), sizeof(float) * V_FIX); /* length 1024: short */
    }
    /* from scratch, one batch of N > orig: long factors throughout */
    phiq_context *fresh = new_ctx(m, N, 1, 0, PHIQ_ROPE_MODE_HF, 0);
    assert_int_equal(phiq_eval(fresh, ids, N), 0);
    double w = worst_rel(phiq_logits(inc), phiq_logits(fresh), 1, V_FIX);
    fprintf(stderr, "  LongRoPE: incremental across %d vs from-scratch long: %.3g\n", orig, w);
    assert_true(w <= 1e-5);
    /* llama.cpp-mode context larger than orig also uses long factors from the start */
    phiq_context *lc = new_ctx(m, N, 1, 0, PHIQ_ROPE_MODE_LLAMACPP, 0);
    assert_int_equal(phiq_eval(lc, ids, N), 0);
    assert_true(worst_rel(phiq_logits(lc), phiq_logits(fresh), 1, V_FIX) <= 1e-5);
    /* ... and the factor set visibly matters: length 1024 short vs the long-factor context */
    phiq_context_truncate(lc, 0);
    assert_int_equal(phiq_eval(lc, ids, orig), 0);
    double d = worst_rel(phiq_logits(lc), short_last, 1, V_FIX);
    fprintf(stderr, "  LongRoPE: short vs long factors at length %d differ by %.3g of range\n", orig, d);
    assert_true(d > 1e-3);
    /* short part: the first orig tokens in HF mode from scratch equal the incremental value at 1024 */
    phiq_context *fs = new_ctx(m, N, 1, 0, PHIQ_ROPE_MODE_HF, 0);
    assert_int_equal(phiq_eval(fs, ids, orig), 0);
    assert_true(worst_rel(phiq_logits(fs), short_last, 1, V_FIX) <= 1e-5);
    /* independent: llama.cpp with a context > orig (long factors) */
    const char *g = fixture_gguf();
    if (g && tu_llama_ref() && !getenv("PHIQ_SANITIZED")) {
        float *ref = llama_logits(g, ids, N, 0, V_FIX);
        double wl = worst_rel(phiq_logits(inc), ref, 1, V_FIX);
        fprintf(stderr, "  LongRoPE: HF-mode re-prefilled vs llama.cpp (long factors, n=%d): %.3g\n", N, wl);
        assert_true(wl <= 1e-3);
        free(ref);
    }
    phiq_context_free(fs);
    phiq_context_free(lc);
    phiq_context_free(fresh);
    phiq_context_free(inc);
    free(short_last);
    free(ids);
    phiq_model_free(m);
}

/* ---- sliding window ------------------------------------------------------------------ */
/* With window W (query i sees keys i-W < j <= i) and L layers, the logits at
 * position i depend exactly on tokens i-L(W-1) .. i, and RoPE only sees
 * relative positions; so evaluating that suffix as a fresh sequence must
 * reproduce them, while one token fewer must not. A window of W+1 (the
 * flash-attention off-by-one) or of W-1 would fail one of the two checks. */
static void test_sliding_window(void **state) {
    (void)state;
    phiq_model_params mp = {.type = "f32", .n_threads = 2};
    phiq_model *m = phiq_model_open(fixture_dir(), &mp);
    if (!m) fail_msg("%s", phiq_error());
    const int L = phiq_model_n_layer(m), N = 40;
    prompt ps[8];
    load_prompts(ps, 8);
    const int32_t *ids = ps[2].ids;
    float *nowin = eval_all(m, ids, N, 1, PHIQ_ROPE_MODE_HF, 64, -1);
    for (int W = 2; W <= 3; W++) {
        const int S = L * (W - 1) + 1;
        float *full = eval_all(m, ids, N, 1, PHIQ_ROPE_MODE_HF, 64, W);
        double worst_same = 0, best_short = 1e9, best_nowin = 1e9;
        for (int i = S + 2; i < N; i += getenv("PHIQ_SANITIZED") ? 13 : 5) {
            float *suf = eval_all(m, ids + i - S + 1, S, 1, PHIQ_ROPE_MODE_HF, 64, W);
            float *shorter = eval_all(m, ids + i - S + 2, S - 1, 1, PHIQ_ROPE_MODE_HF, 64, W);
            double same = worst_rel(suf + (size_t)(S - 1) * V_FIX, full + (size_t)i * V_FIX, 1, V_FIX);
            double sh = worst_rel(shorter + (size_t)(S - 2) * V_FIX, full + (size_t)i * V_FIX, 1, V_FIX);
            double nw = worst_rel(nowin + (size_t)i * V_FIX, full + (size_t)i * V_FIX, 1, V_FIX);
            if (same > worst_same) worst_same = same;
            if (sh < best_short) best_short = sh;
            if (nw < best_nowin) best_nowin = nw;
            free(suf);
            free(shorter);
        }
        fprintf(stderr, "  SWA W=%d: suffix of %d tokens %.3g (must match), of %d tokens %.3g, no window %.3g (must differ)\n",
                W, S, worst_same, S - 1, best_short, best_nowin);
        assert_true(worst_same <= 1e-5);
        /* the farthest token's influence fades with W; W = 2 makes it clear */
        if (W == 2) assert_true(best_short > 1e-4);
        assert_true(best_nowin > 1e-3);
        free(full);
    }
    free(nowin);
    phiq_model_free(m);
}

/* ---- API ------------------------------------------------------------------------------- */
typedef struct {
    const phiq_model *m;
    const int32_t *ids;
    int n;
    float *out;
    int rc;
} thread_job;

static void *thread_main(void *p) {
    thread_job *j = p;
    phiq_context_params cp = phiq_context_default_params();
    cp.n_ctx = 128;
    cp.n_threads = 2;
    phiq_context *c = phiq_context_new(j->m, &cp);
    j->rc = -1;
    if (!c) return NULL;
    /* prompt in one batch, then token by token */
    j->rc = phiq_eval(c, j->ids, j->n - 3);
    for (int i = j->n - 3; i < j->n && j->rc == 0; i++) j->rc = phiq_eval(c, j->ids + i, 1);
    if (j->rc == 0) memcpy(j->out, phiq_logits(c), sizeof(float) * V_FIX);
    phiq_context_free(c);
    return NULL;
}

static void test_api_threads_truncate(void **state) {
    (void)state;
    phiq_model_params mp = {.type = "bf16", .n_threads = 2};
    phiq_model *m = phiq_model_open(fixture_dir(), &mp);
    if (!m) fail_msg("%s", phiq_error());
    prompt ps[8];
    load_prompts(ps, 8);
    const prompt *pr = &ps[0];
    thread_job a = {m, pr->ids, pr->n, malloc(sizeof(float) * V_FIX), 0}, b = a;
    b.out = malloc(sizeof(float) * V_FIX);
    pthread_t ta, tb;
    pthread_create(&ta, NULL, thread_main, &a);
    pthread_create(&tb, NULL, thread_main, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    assert_memory_equal(a.out, b.out, sizeof(float) * V_FIX);
    /* ... and equal the reference's last row (incremental decode, f16 KV) */
    float *ref = ref_logits(pr);
    assert_true(worst_rel(a.out, ref + (size_t)(pr->n - 1) * V_FIX, 1, V_FIX) <= 1e-3);

    /* truncate + re-eval == fresh eval of the edited sequence */
    int32_t edited[64];
    memcpy(edited, pr->ids, sizeof(int32_t) * pr->n);
    for (int i = 5; i < pr->n; i++) edited[i] = (pr->ids[i] * 7 + 13) % 30000;
    phiq_context *c = new_ctx(m, 64, 0, 0, PHIQ_ROPE_MODE_HF, 0);
    assert_int_equal(phiq_eval(c, pr->ids, pr->n), 0);
    assert_int_equal(phiq_context_pos(c), pr->n);
    assert_int_equal(phiq_context_truncate(c, 5), 0);
    assert_int_equal(phiq_context_pos(c), 5);
    assert_int_equal(phiq_eval(c, edited + 5, pr->n - 5), 0);
    phiq_context *f = new_ctx(m, 64, 0, 0, PHIQ_ROPE_MODE_HF, 0);
    assert_int_equal(phiq_eval(f, edited, pr->n), 0);
    assert_memory_equal(phiq_logits(c), phiq_logits(f), sizeof(float) * V_FIX);

    /* the tokenizer through the public API reproduces the fixture's ids */
    int32_t tk[64];
    int nt = phiq_tokenize(m, "In the beginning God created the heaven and the earth.", tk, 64, PHIQ_TOKENIZE_ADD_BOS);
    assert_int_equal(nt, pr->n);
    assert_memory_equal(tk, pr->ids, sizeof(int32_t) * (size_t)nt);
    char piece[32];
    int pl = phiq_token_to_piece(m, pr->ids[2], piece, sizeof piece);
    assert_true(pl > 0 && pl < 32);

    /* errors */
    assert_true(phiq_context_truncate(c, 1000) < 0);
    int32_t bad = V_FIX;
    assert_int_equal(phiq_eval(c, &bad, 1), PHIQ_ERANGE);
    assert_non_null(strstr(phiq_error(), "32064"));
    assert_int_equal(phiq_context_pos(c), pr->n);
    int32_t many[64] = {0};
    assert_int_equal(phiq_eval(c, many, 64), PHIQ_ERANGE); /* context full */
    assert_null(phiq_logits_at(c, 0));                     /* not an all_logits context */
    assert_null(phiq_model_open("/nonexistent/model.gguf", NULL));
    assert_non_null(strstr(phiq_error(), "/nonexistent/model.gguf"));

    /* all_logits across several forward chunks (n_batch 5) */
    phiq_context_params cp = phiq_context_default_params();
    cp.n_ctx = 64;
    cp.n_batch = 5;
    cp.all_logits = 1;
    cp.n_threads = 3;
    phiq_context *ch = phiq_context_new(m, &cp);
    assert_non_null(ch);
    assert_int_equal(phiq_eval(ch, pr->ids, pr->n), 0);
    for (int i = 0; i < pr->n; i++)
        assert_true(worst_rel(phiq_logits_at(ch, i), ref + (size_t)i * V_FIX, 1, V_FIX) <= 1e-3);
    assert_null(phiq_logits_at(ch, pr->n));
    phiq_context_free(ch);

    /* quick decode speed on the fixture (informational) */
    phiq_context_truncate(f, 0);
    assert_int_equal(phiq_eval(f, pr->ids, pr->n), 0);
    double t0 = phiq_now();
    int nd = getenv("PHIQ_SANITIZED") ? 8 : 48;
    for (int i = 0; i < nd; i++) {
        int32_t id = pr->ids[i % pr->n];
        assert_int_equal(phiq_eval(f, &id, 1), 0);
    }
    fprintf(stderr, "  decode: %.1f tokens/s (tiny-phi3-kjv bf16, 2 threads)\n", nd / (phiq_now() - t0));
    phiq_context_free(c);
    phiq_context_free(f);
    free(ref);
    free(a.out);
    free(b.out);
    phiq_model_free(m);
}


/* ---- malformed models: one-line errors naming the file and the tensor ---------- */
typedef struct {
    int bad; /* 0 ok, 1 wrong qkv shape, 2 missing ffn_down, 3 no block_count, 4 F16 norm, 5 I32 weight */
} tiny_spec;

static int tiny_fill(void *user, int64_t i, const char *name, void *buf, uint64_t nbytes) {
    (void)user;
    (void)name;
    memset(buf, 0, nbytes);
    if (strstr(name, "norm") || strstr(name, "rope_factors")) {
        for (uint64_t k = 0; k + 4 <= nbytes; k += 4) {
            float one = 1.0f;
            memcpy((uint8_t *)buf + k, &one, 4);
        }
    }
    (void)i;
    return 0;
}

static void write_tiny(const char *path, int bad) {
    const int64_t E = 16, F = 32, V = 40;
    phiq_gguf_writer *w = phiq_gguf_writer_new();
    phiq_gguf_writer_set_str(w, "general.architecture", "phi3");
    phiq_gguf_writer_set_u32(w, "phi3.context_length", 64);
    phiq_gguf_writer_set_u32(w, "phi3.embedding_length", (uint32_t)E);
    if (bad != 3) phiq_gguf_writer_set_u32(w, "phi3.block_count", 1);
    phiq_gguf_writer_set_u32(w, "phi3.feed_forward_length", (uint32_t)F);
    phiq_gguf_writer_set_u32(w, "phi3.attention.head_count", 2);
    phiq_gguf_writer_set_f32(w, "phi3.attention.layer_norm_rms_epsilon", 1e-5f);
    int64_t ne[2];
#define T2(name, a, b, ty) (ne[0] = (a), ne[1] = (b), phiq_gguf_writer_add_tensor(w, name, ty, 2, ne))
#define T1(name, a, ty) (ne[0] = (a), phiq_gguf_writer_add_tensor(w, name, ty, 1, ne))
    T2("token_embd.weight", E, V, PHIQ_GGML_TYPE_F32);
    T1("output_norm.weight", E, PHIQ_GGML_TYPE_F32);
    T1("blk.0.attn_norm.weight", E, bad == 4 ? PHIQ_GGML_TYPE_F16 : PHIQ_GGML_TYPE_F32);
    T2("blk.0.attn_qkv.weight", E, bad == 1 ? 2 * E : 3 * E, PHIQ_GGML_TYPE_F32);
    T2("blk.0.attn_output.weight", E, E, PHIQ_GGML_TYPE_F16);
    T1("blk.0.ffn_norm.weight", E, PHIQ_GGML_TYPE_F32);
    T2("blk.0.ffn_up.weight", E, 2 * F, bad == 5 ? PHIQ_GGML_TYPE_I32 : PHIQ_GGML_TYPE_BF16);
    if (bad != 2) T2("blk.0.ffn_down.weight", F, E, PHIQ_GGML_TYPE_F32);
#undef T1
#undef T2
    phiq_gguf_write_opts o = {1, "tiny"};
    if (phiq_gguf_writer_write(w, path, tiny_fill, NULL, &o) < 0) fail_msg("%s", phiq_error());
    phiq_gguf_writer_free(w);
}

static void test_malformed(void **state) {
    (void)state;
    const char *path = tu_tmp("tiny.gguf");
    write_tiny(path, 0);
    phiq_model *m = phiq_model_open(path, NULL);
    if (!m) fail_msg("%s", phiq_error());
    assert_true(phiq_model_n_vocab(m) == 40 && !strcmp(phiq_model_arch(m), "phi3"));
    /* all-zero weights with tied head: logits are exactly 0, mixed F32/F16/BF16 weights load */
    phiq_context *c = new_ctx(m, 16, 0, 0, PHIQ_ROPE_MODE_HF, 0);
    int32_t ids[3] = {1, 2, 39};
    assert_int_equal(phiq_eval(c, ids, 3), 0);
    for (int i = 0; i < 40; i++) assert_true(phiq_logits(c)[i] == 0.0f);
    phiq_context_free(c);
    phiq_model_free(m);
    const struct { int bad; const char *must[2]; } cases[] = {
        {1, {"blk.0.attn_qkv.weight", "shape"}},
        {2, {"blk.0.ffn_down.weight", "missing"}},
        {3, {"phi3.block_count", "missing"}},
        {4, {"blk.0.attn_norm.weight", "F16"}}, /* accepted: vectors may be F16 */
        {5, {"blk.0.ffn_up.weight", "I32"}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        write_tiny(path, cases[k].bad);
        m = phiq_model_open(path, NULL);
        if (cases[k].bad == 4) {
            assert_non_null(m);
            phiq_model_free(m);
            continue;
        }
        assert_null(m);
        const char *e = phiq_error();
        fprintf(stderr, "  malformed %d: %s\n", cases[k].bad, e);
        assert_non_null(strstr(e, path));
        assert_non_null(strstr(e, cases[k].must[0]));
        assert_non_null(strstr(e, cases[k].must[1]));
        assert_null(strchr(e, '\n'));
    }
}

/* ---- the CLI ---------------------------------------------------------------------- */
static void test_cli_logits(void **state) {
    (void)state;
    prompt ps[8];
    load_prompts(ps, 8);
    char list[1024] = "";
    for (int i = 0; i < ps[1].n; i++) sprintf(list + strlen(list), i ? ",%d" : "%d", ps[1].ids[i]);
    const char *out = tu_tmp("cli.f32");
    char *err = NULL;
    int rc = tu_run(NULL, &err, "'%s' logits '%s' --ids %s --all --out '%s' -t 2 --kv-type f32 --type bf16", tu_bin(),
                    fixture_dir(), list, out);
    if (rc != 0) fail_msg("phiq logits: %s", err ? err : "");
    free(err);
    size_t n;
    float *got = tu_read_all(out, &n);
    assert_int_equal(n, (size_t)ps[1].n * V_FIX * 4);
    float *ref = ref_logits(&ps[1]);
    assert_true(worst_rel(got, ref, ps[1].n, V_FIX) <= 1e-4);
    free(got);
    /* last position only */
    rc = tu_run(NULL, NULL, "'%s' logits '%s' --ids %s --out '%s' -t 1", tu_bin(), fixture_dir(), list, out);
    assert_int_equal(rc, 0);
    got = tu_read_all(out, &n);
    assert_int_equal(n, (size_t)V_FIX * 4);
    assert_true(worst_rel(got, ref + (size_t)(ps[1].n - 1) * V_FIX, 1, V_FIX) <= 1e-3);
    free(got);
    free(ref);
    /* failures: exit 1, one line, no output file */
    const char *bad = tu_tmp("bad.f32");
    err = NULL;
    rc = tu_run(NULL, &err, "'%s' logits '%s' --ids 1,99999 --out '%s'", tu_bin(), fixture_dir(), bad);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "99999"));
    assert_false(phiq_file_exists(bad));
    free(err);
    err = NULL;
    rc = tu_run(NULL, &err, "'%s' logits /nonexistent.gguf --ids 1 --out '%s'", tu_bin(), bad);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "/nonexistent.gguf"));
    assert_false(phiq_file_exists(bad));
    free(err);
}

TU_MAIN(NULL, NULL, test_fixture_hf_dir, test_fixture_gguf, test_llama_fixture, test_llama_synth, test_llama_quantized,
        test_longrope_switch, test_sliding_window, test_api_threads_truncate, test_malformed, test_cli_logits)
