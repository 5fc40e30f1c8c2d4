/* test_synth.c — `phiq synth`: preset dimensions and tensor shapes against the
 * numbers of the Phi architecture reference (docs/reference §1a/§2a), written
 * checkpoints reopened with phiq_hf_open for all three architectures, sharded
 * output equal to unsharded, determinism of the seed, and CLI errors. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/synth.h"
#include "core/common.h"
#include "formats/hf.h"

/* Doc table 1a: hidden, intermediate, layers, heads, kv heads, vocab. */
static const struct {
    const char *name;
    int H, I, L, nh, nkv, V, rot, ctx, orig;
    bool tied;
    int64_t qkv0, gate_up0;
} presets[] = {
    {"phi-2", 2560, 10240, 32, 32, 32, 51200, 32, 2048, 2048, false, 0, 0},
    {"phi-3-mini-4k", 3072, 8192, 32, 32, 32, 32064, 96, 4096, 4096, false, 9216, 16384},
    {"phi-3-mini-128k", 3072, 8192, 32, 32, 32, 32064, 96, 131072, 4096, false, 9216, 16384},
    {"phi-3.5-mini", 3072, 8192, 32, 32, 32, 32064, 96, 131072, 4096, false, 9216, 16384},
    {"phi-3-medium", 5120, 17920, 40, 40, 10, 32064, 128, 4096, 4096, false, 7680, 35840},
    {"phi-4", 5120, 17920, 40, 40, 10, 100352, 128, 16384, 16384, false, 7680, 35840},
    {"phi-4-mini", 3072, 8192, 32, 24, 8, 200064, 96, 131072, 4096, true, 5120, 16384},
};

typedef struct {
    int n;
    int64_t embd0, embd1, qkv0, qkv1, o0, o1, gu0, gu1, down0, down1, fc1_0;
    bool lm_head;
} seen_t;

static void collect(void *user, const char *name, int nd, const int64_t *sh) {
    seen_t *s = user;
    s->n++;
    int64_t a = sh[0], b = nd > 1 ? sh[1] : 0;
    if (!strcmp(name, "model.embed_tokens.weight")) { s->embd0 = a; s->embd1 = b; }
    if (!strcmp(name, "model.layers.0.self_attn.qkv_proj.weight")) { s->qkv0 = a; s->qkv1 = b; }
    if (!strcmp(name, "model.layers.0.self_attn.o_proj.weight") || !strcmp(name, "model.layers.0.self_attn.dense.weight")) { s->o0 = a; s->o1 = b; }
    if (!strcmp(name, "model.layers.0.mlp.gate_up_proj.weight")) { s->gu0 = a; s->gu1 = b; }
    if (!strcmp(name, "model.layers.0.mlp.down_proj.weight") || !strcmp(name, "model.layers.0.mlp.fc2.weight")) { s->down0 = a; s->down1 = b; }
    if (!strcmp(name, "model.layers.0.mlp.fc1.weight")) s->fc1_0 = a;
    if (!strcmp(name, "lm_head.weight")) s->lm_head = true;
}

static void test_preset_shapes(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        phiq_synth_params p;
        assert_int_equal(phiq_synth_preset(presets[i].name, &p), 0);
        assert_int_equal(p.n_embd, presets[i].H);
        assert_int_equal(p.n_ff, presets[i].I);
        assert_int_equal(p.n_layer, presets[i].L);
        assert_int_equal(p.n_head, presets[i].nh);
        assert_int_equal(p.n_head_kv, presets[i].nkv);
        assert_int_equal(p.n_vocab, presets[i].V);
        assert_int_equal((int)(p.partial_rotary * p.n_embd) / p.n_head, presets[i].rot);
        assert_int_equal(p.n_ctx_train, presets[i].ctx);
        assert_int_equal(p.n_ctx_orig, presets[i].orig);
        assert_int_equal(p.tied, presets[i].tied);
        seen_t s = {0};
        assert_int_equal(phiq_synth_list(&p, collect, &s), 0);
        assert_int_equal(s.embd0, presets[i].V);
        assert_int_equal(s.embd1, presets[i].H);
        assert_int_equal(s.o0, presets[i].H);
        assert_int_equal(s.o1, presets[i].H);
        assert_int_equal(s.down0, presets[i].H);
        assert_int_equal(s.down1, presets[i].I);
        assert_int_equal(s.lm_head, !presets[i].tied);
        if (p.arch == PHIQ_ARCH_PHI3) {
            assert_int_equal(s.qkv0, presets[i].qkv0);
            assert_int_equal(s.qkv1, presets[i].H);
            assert_int_equal(s.gu0, presets[i].gate_up0);
            assert_int_equal(s.gu1, presets[i].H);
            assert_int_equal(s.n, 2 + 6 * presets[i].L + !presets[i].tied);
        } else {
            assert_int_equal(s.fc1_0, presets[i].I);
            assert_int_equal(s.n, 1 + 14 * presets[i].L + 2 + 2);
        }
    }
    phiq_synth_params p;
    assert_true(phiq_synth_preset("phi-5", &p) < 0);
}

static phiq_hf *synth_open(const char *dir, const char *fmt_args) {
    char *err = NULL;
    int st = tu_run(NULL, &err, "'%s' synth -q %s -o '%s' 2>&1", tu_bin(), fmt_args, dir);
    if (st != 0) fail_msg("phiq synth %s failed (%d): %s", fmt_args, st, err ? err : "");
    free(err);
    phiq_hf *hf = phiq_hf_open(dir);
    if (!hf) fail_msg("reopen %s: %s", dir, phiq_error());
    return hf;
}

static void test_tiny_arches_reopen(void **state) {
    (void)state;
    phiq_hf *hf = synth_open(tu_tmp("tiny3"), "--hidden 64 --layers 3 --heads 4 --kv-heads 2 --ff 96 --vocab 320 --ctx 8192 --ctx-orig 1024 --partial-rotary 0.75 --tokenizer none");
    const phiq_hparams *hp = phiq_hf_hparams(hf);
    assert_int_equal(hp->arch, PHIQ_ARCH_PHI3);
    assert_int_equal(hp->n_layer, 3);
    assert_int_equal(hp->n_rot, 12);
    assert_int_equal(hp->n_rope_factors, 6);
    assert_int_equal(hp->n_ctx_orig, 1024);
    assert_true(hp->rope_short[0] >= 1.0f && hp->rope_long[5] > hp->rope_short[5]);
    assert_int_equal(phiq_hf_find(hf, "model.layers.2.self_attn.qkv_proj.weight")->shape[0], 64 + 2 * 32);
    /* weights finite and small, norms near 1 */
    const phiq_st_tensor *t = phiq_hf_find(hf, "model.layers.0.mlp.gate_up_proj.weight");
    float *v = malloc((size_t)t->n_elements * sizeof *v);
    assert_int_equal(phiq_st_to_f32(t, 0, t->n_elements, v), 0);
    double ss = 0;
    for (int64_t i = 0; i < t->n_elements; i++) { assert_true(v[i] > -0.2f && v[i] < 0.2f); ss += (double)v[i] * v[i]; }
    double sd = sqrt(ss / (double)t->n_elements);
    assert_true(sd > 0.015 && sd < 0.025);
    free(v);
    float nv[64];
    assert_int_equal(phiq_st_to_f32(phiq_hf_find(hf, "model.norm.weight"), 0, 64, nv), 0);
    for (int i = 0; i < 64; i++) assert_true(nv[i] > 0.8f && nv[i] < 1.2f);
    phiq_hf_close(hf);

    hf = synth_open(tu_tmp("tiny2"), "--arch phi2 --hidden 80 --layers 2 --heads 4 --ff 128 --vocab 300 --partial-rotary 0.4 --tokenizer none");
    hp = phiq_hf_hparams(hf);
    assert_int_equal(hp->arch, PHIQ_ARCH_PHI2);
    assert_true(hp->attn_bias);
    assert_int_equal(hp->n_rot, 8); /* int(0.4 * 80) / 4 */
    assert_non_null(phiq_hf_find(hf, "lm_head.bias"));
    assert_non_null(phiq_hf_find(hf, "model.final_layernorm.bias"));
    assert_int_equal(hp->bos_id, 50256);
    phiq_hf_close(hf);

    hf = synth_open(tu_tmp("tinymoe"), "--arch phimoe --hidden 64 --layers 2 --heads 4 --kv-heads 2 --ff 48 --vocab 256 --experts 4 --experts-used 2 --ctx 4096 --ctx-orig 512 --tokenizer none");
    hp = phiq_hf_hparams(hf);
    assert_int_equal(hp->arch, PHIQ_ARCH_PHIMOE);
    assert_int_equal(hp->n_expert, 4);
    assert_int_equal(hp->n_expert_used, 2);
    assert_true(hp->attn_bias);
    assert_true(fabsf(hp->rope_attn_factor - 1.2431631f) < 1e-6f); /* explicit mscale */
    assert_non_null(phiq_hf_find(hf, "model.layers.1.block_sparse_moe.experts.3.w2.weight"));
    phiq_hf_close(hf);

    /* tied: no lm_head tensor */
    hf = synth_open(tu_tmp("tinytied"), "--hidden 32 --layers 1 --heads 2 --ff 64 --vocab 100 --tied --tokenizer none");
    assert_true(phiq_hf_hparams(hf)->tied_embeddings);
    assert_null(phiq_hf_find(hf, "lm_head.weight"));
    phiq_hf_close(hf);
}

static void test_preset_written(void **state) {
    (void)state;
    /* One real preset shape (~0.6 GB at full vocab; vocab shrunk under sanitizers). */
    bool san = getenv("PHIQ_SANITIZED") != NULL;
    phiq_hf *hf = synth_open(tu_tmp("p35"), san ? "--preset phi-3.5-mini --layers 1 --vocab 512" : "--preset phi-3.5-mini --layers 1");
    const phiq_hparams *hp = phiq_hf_hparams(hf);
    assert_int_equal(hp->n_vocab, san ? 512 : 32064);
    assert_int_equal(hp->n_embd, 3072);
    assert_int_equal(hp->n_rot, 96);
    assert_int_equal(hp->n_rope_factors, 48);
    assert_int_equal(hp->n_ctx_orig, 4096);
    assert_true(fabsf(hp->rope_attn_factor - 1.1902380714f) < 1e-6f); /* doc §2a */
    assert_int_equal(hp->sliding_window, 262144);
    assert_int_equal(hp->n_eos, 3);
    assert_int_equal(hp->eos_ids[2], 32007);
    const phiq_st_tensor *t = phiq_hf_find(hf, "model.layers.0.self_attn.qkv_proj.weight");
    assert_int_equal(t->shape[0], 9216);
    assert_int_equal(t->shape[1], 3072);
    t = phiq_hf_find(hf, "model.layers.0.mlp.down_proj.weight");
    assert_int_equal(t->shape[0], 3072);
    assert_int_equal(t->shape[1], 8192);
    assert_non_null(phiq_hf_tokenizer_json(hf)); /* copied from fixtures/tokenizers/phi3 */
    size_t a, b;
    void *x = tu_read_all(phiq_hf_tokenizer_json(hf), &a);
    void *y = tu_read_all(tu_shared_path("fixtures/tokenizers/phi3/tokenizer.json"), &b);
    assert_int_equal(a, b);
    assert_memory_equal(x, y, a);
    free(x);
    free(y);
    phiq_hf_close(hf);
    assert_int_equal(tu_run(NULL, NULL, "rm -rf '%s'", tu_tmp("p35")), 0);
}

static void test_sharded_and_seed(void **state) {
    (void)state;
    const char *args = "--hidden 64 --layers 4 --heads 4 --ff 128 --vocab 512 --tokenizer none --seed 42";
    phiq_hf *one = synth_open(tu_tmp("s_one"), args);
    char buf[256];
    snprintf(buf, sizeof buf, "%s --shard-size 100000", args);
    phiq_hf *many = synth_open(tu_tmp("s_many"), buf);
    assert_int_equal(tu_run(NULL, NULL, "test -f '%s/model.safetensors.index.json' && test -f '%s/model-00002-of-00006.safetensors'",
                            tu_tmp("s_many"), tu_tmp("s_many")), 0);
    assert_int_equal(phiq_hf_n_tensors(one), phiq_hf_n_tensors(many));
    assert_int_equal(phiq_hf_total_bytes(one), phiq_hf_total_bytes(many));
    for (int i = 0; i < phiq_hf_n_tensors(one); i++) {
        const phiq_st_tensor *a = phiq_hf_tensor_at(one, i), *b = phiq_hf_find(many, a->name);
        assert_non_null(b);
        assert_int_equal(a->nbytes, b->nbytes);
        assert_memory_equal(a->data, b->data, a->nbytes);
    }
    phiq_hf_close(many);
    /* same seed, same bytes; other seed, other bytes */
    phiq_hf *again = synth_open(tu_tmp("s_again"), args);
    snprintf(buf, sizeof buf, "%s --seed 43", args);
    phiq_hf *other = synth_open(tu_tmp("s_other"), buf);
    size_t n1, n2, n3;
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", tu_tmp("s_one"));
    void *f1 = tu_read_all(path, &n1);
    snprintf(path, sizeof path, "%s/model.safetensors", tu_tmp("s_again"));
    void *f2 = tu_read_all(path, &n2);
    snprintf(path, sizeof path, "%s/model.safetensors", tu_tmp("s_other"));
    void *f3 = tu_read_all(path, &n3);
    assert_int_equal(n1, n2);
    assert_memory_equal(f1, f2, n1);
    assert_int_equal(n1, n3);
    assert_true(memcmp(f1, f3, n1) != 0);
    free(f1); free(f2); free(f3);
    phiq_hf_close(one);
    phiq_hf_close(again);
    phiq_hf_close(other);

    /* a missing shard is named */
    assert_int_equal(tu_run(NULL, NULL, "rm '%s/model-00003-of-00006.safetensors'", tu_tmp("s_many")), 0);
    assert_null(phiq_hf_open(tu_tmp("s_many")));
    assert_non_null(strstr(phiq_error(), "shard 'model-00003-of-00006.safetensors' named by the index is missing"));
    assert_non_null(strstr(phiq_error(), "model.safetensors.index.json"));
}

/* ---- tiktoken-derived tokenizer.json vs the reference encoder's vectors ---- */

typedef struct { char **key; int *val; uint32_t mask; } smap;

static uint32_t shash(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}
static void smap_init(smap *m, int n) {
    uint32_t cap = 1024;
    while (cap < 2u * (uint32_t)n) cap *= 2;
    m->key = calloc(cap, sizeof *m->key);
    m->val = calloc(cap, sizeof *m->val);
    m->mask = cap - 1;
}
static void smap_put(smap *m, const char *k, int v) {
    uint32_t h = shash(k, strlen(k)) & m->mask;
    while (m->key[h]) h = (h + 1) & m->mask;
    m->key[h] = strdup(k);
    m->val[h] = v;
}
static int smap_get(const smap *m, const char *k, size_t n) {
    uint32_t h = shash(k, n) & m->mask;
    for (; m->key[h]; h = (h + 1) & m->mask)
        if (strlen(m->key[h]) == n && !memcmp(m->key[h], k, n)) return m->val[h];
    return -1;
}
static void smap_free(smap *m) {
    for (uint32_t i = 0; i <= m->mask; i++) free(m->key[i]);
    free(m->key);
    free(m->val);
}

/* GPT-2 byte → code point (the published table: printable bytes kept). */
static void b2u_utf8(uint8_t b, char *out, int *len) {
    int k = 0, c = -1;
    for (int x = 0; x < 256; x++) {
        bool keep = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174);
        int cp = keep ? x : 256 + k++;
        if (x == b) { c = cp; break; }
    }
    if (c < 0x80) { out[0] = (char)c; *len = 1; }
    else { out[0] = (char)(0xc0 | (c >> 6)); out[1] = (char)(0x80 | (c & 0x3f)); *len = 2; }
}

/* Encodes text with: pcre2 split by the tokenizer's regex, byte-level
 * mapping, BPE by merge rank. Returns the number of ids. */
static int encode(const char *text, pcre2_code *re, const smap *vocab, const smap *merges, int *ids, int max) {
    int n = 0;
    size_t off = 0, tl = strlen(text);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    while (off < tl) {
        int rc = pcre2_match(re, (PCRE2_SPTR)text, tl, off, 0, md, NULL);
        assert_true(rc > 0);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        assert_int_equal(ov[0], off); /* the pattern covers all text */
        /* parts: byte-level strings */
        static char parts[256][520];
        int np = 0;
        assert_true(ov[1] - ov[0] < 256);
        for (size_t i = ov[0]; i < ov[1]; i++) {
            int l;
            b2u_utf8((uint8_t)text[i], parts[np], &l);
            parts[np++][l] = 0;
        }
        for (;;) {
            int best = -1, br = 1 << 30;
            for (int i = 0; i + 1 < np; i++) {
                char key[1100];
                snprintf(key, sizeof key, "%s %s", parts[i], parts[i + 1]);
                int r = smap_get(merges, key, strlen(key));
                if (r >= 0 && r < br) { br = r; best = i; }
            }
            if (best < 0) break;
            size_t la = strlen(parts[best]), lb = strlen(parts[best + 1]);
            assert_true(la + lb < sizeof parts[0]);
            memcpy(parts[best] + la, parts[best + 1], lb + 1);
            memmove(parts[best + 1], parts[best + 2], (size_t)(np - best - 2) * sizeof parts[0]);
            np--;
        }
        for (int i = 0; i < np && n < max; i++) ids[n++] = smap_get(vocab, parts[i], strlen(parts[i]));
        off = ov[1];
    }
    pcre2_match_data_free(md);
    return n;
}

static void check_tiktoken(const char *base, const char *tok, int n_vocab, int n_merges) {
    char dir[64], args[256];
    snprintf(dir, sizeof dir, "tk_%s", tok);
    snprintf(args, sizeof args, "--hidden 32 --layers 1 --heads 2 --ff 32 --vocab 64 --tokenizer %s", tok);
    phiq_hf *hf = synth_open(tu_tmp(dir), args);
    char *txt;
    assert_int_equal(phiq_read_file(phiq_hf_tokenizer_json(hf), &txt, NULL), 0);
    cJSON *tj = cJSON_Parse(txt);
    free(txt);
    assert_non_null(tj);
    cJSON *model = cJSON_GetObjectItem(tj, "model");
    cJSON *jv = cJSON_GetObjectItem(model, "vocab"), *jm = cJSON_GetObjectItem(model, "merges");
    assert_int_equal(cJSON_GetArraySize(jv), n_vocab);
    assert_int_equal(cJSON_GetArraySize(jm), n_merges);
    smap vocab, merges;
    smap_init(&vocab, n_vocab);
    smap_init(&merges, n_merges);
    for (cJSON *e = jv->child; e; e = e->next) smap_put(&vocab, e->string, e->valueint);
    int r = 0;
    for (cJSON *e = jm->child; e; e = e->next) smap_put(&merges, e->valuestring, r++);
    const char *pat = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(tj, "pre_tokenizer"), "pretokenizers"), 0), "pattern")->child->valuestring;
    int err;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &eo, NULL);
    assert_non_null(re);
    char path[256];
    snprintf(path, sizeof path, "fixtures/tokenizers/tiktoken/%s.tests.jsonl", base);
    char *tests;
    assert_int_equal(phiq_read_file(tu_shared_path(path), &tests, NULL), 0);
    int n_cases = 0;
    for (char *line = strtok(tests, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *c = cJSON_Parse(line);
        assert_non_null(c);
        cJSON *want = cJSON_GetObjectItem(c, "ids");
        int ids[512];
        int n = encode(cJSON_GetObjectItem(c, "text")->valuestring, re, &vocab, &merges, ids, 512);
        assert_int_equal(n, cJSON_GetArraySize(want));
        int i = 0;
        for (cJSON *w = want->child; w; w = w->next, i++) assert_int_equal(ids[i], w->valueint);
        cJSON_Delete(c);
        n_cases++;
    }
    assert_int_equal(n_cases, 20);
    free(tests);
    pcre2_code_free(re);
    smap_free(&vocab);
    smap_free(&merges);
    /* tokenizer_config: GPT2Tokenizer and the chat template of doc §3c */
    assert_int_equal(phiq_read_file(phiq_hf_tokenizer_config_json(hf), &txt, NULL), 0);
    cJSON *tc = cJSON_Parse(txt);
    free(txt);
    assert_string_equal(cJSON_GetObjectItem(tc, "tokenizer_class")->valuestring, "GPT2Tokenizer");
    assert_non_null(strstr(cJSON_GetObjectItem(tc, "chat_template")->valuestring, !strcmp(tok, "cl100k") ? "<|im_sep|>" : "<|end|>"));
    cJSON_Delete(tc);
    /* special ids of doc §3b */
    int found = 0;
    for (cJSON *a = cJSON_GetObjectItem(tj, "added_tokens")->child; a; a = a->next) {
        int id = cJSON_GetObjectItem(a, "id")->valueint;
        const char *s = cJSON_GetObjectItem(a, "content")->valuestring;
        if ((id == 100265 && !strcmp(s, "<|im_end|>")) || (id == 100349 && !strcmp(s, "<|dummy_85|>")) ||
            (id == 100257 && !strcmp(s, "<|endoftext|>")) || (id == 200020 && !strcmp(s, "<|end|>")) ||
            (id == 199999 && !strcmp(s, "<|endoftext|>")) || (id == 200019 && !strcmp(s, "<|assistant|>")))
            found++;
    }
    assert_int_equal(found, 3);
    cJSON_Delete(tj);
    phiq_hf_close(hf);
}

static void test_tiktoken_tokenizers(void **state) {
    (void)state;
    /* merges = tokens - 256 single bytes: every token reachable */
    check_tiktoken("cl100k_base", "cl100k", 100352, 100000);
    if (!getenv("PHIQ_SANITIZED")) check_tiktoken("o200k_base", "o200k", 200029, 199742);
}

static void test_cli_errors(void **state) {
    (void)state;
    const char *x = tu_tmp_keep("x");
    tu_refused_exit(1, "unknown preset", "unknown preset 'phi-9'", x, "'%s' synth --preset phi-9 -o '%s'", tu_bin(), x);
    tu_refused_exit(1, "5 heads of hidden 64", "multiple", x,
                    "'%s' synth --hidden 64 --layers 1 --heads 5 --ff 8 --vocab 8 --tokenizer none -o '%s'", tu_bin(), x);
    /* staged beside x and renamed into place: a failure leaves nothing at x */
    tu_refused_exit(1, "no tokenizer directory", "/nonexistent", x,
                    "PHIQ_SHARED=/nonexistent '%s' synth --hidden 64 --layers 1 --heads 4 --ff 8 --vocab 8 "
                    "--tokenizer-dir /nonexistent -o '%s'", tu_bin(), x);
    char *out = NULL;
    assert_int_equal(tu_run(&out, NULL, "'%s' synth --help", tu_bin()), 0);
    assert_non_null(strstr(out, "--shard-size"));
    free(out);
}

TU_MAIN(NULL, NULL, test_preset_shapes, test_tiny_arches_reopen, test_sharded_and_seed, test_preset_written,
        test_tiktoken_tokenizers, test_cli_errors)
