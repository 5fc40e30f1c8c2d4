/* test_convert_synth.c — conversion of synthetic checkpoints (`phiq synth`)
 * of every Phi shape: Phi-2 (separate q/k/v with biases, LayerNorm, GPT-2
 * BPE with CodeGen whitespace tokens), Phi-3.5-mini (LongRoPE, SPM),
 * Phi-4-mini (GQA, partial rotary, LongRoPE, tied embeddings, o200k),
 * Phi-4 (cl100k, no sliding window) and PhiMoE (stacked experts, biases),
 * all shrunk to 2 layers and hidden 256 but with the real vocabularies.
 *
 * There are no PyTorch logits for random weights, so the independent checks
 * are: llama.cpp loads each file and produces finite logits of the right
 * size; llama.cpp tokenizes with our vocab exactly like tiktoken's reference
 * encoder (o200k, cl100k test vectors) and like llama.cpp's own GPT-2 vocab;
 * and HF → quantized GGUF equals HF → f32 GGUF → llama-quantize, tensor for
 * tensor, byte for byte (which also checks the tied / GQA / MoE type rules).
 */
#include "testutil.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "formats/gguf.h"

typedef struct model {
    const char *name;
    const char *synth_args;
    const char *arch;
    int n_vocab;
    int heavy; /* 200k/100k vocab: skipped under sanitizers */
} model;

static const model MODELS[] = {
    {"phi2", "--preset phi-2 --layers 2 --hidden 256 --heads 4 --kv-heads 4 --ff 1024 --partial-rotary 0.5", "phi2",
     51200, 0},
    {"phi35", "--preset phi-3.5-mini --layers 2 --hidden 256 --heads 4 --kv-heads 4 --ff 512", "phi3", 32064, 0},
    {"phi4mini", "--preset phi-4-mini --layers 2 --hidden 256 --heads 4 --kv-heads 2 --ff 512", "phi3", 200064, 1},
    {"phi4", "--preset phi-4 --layers 2 --hidden 256 --heads 4 --kv-heads 2 --ff 512", "phi3", 100352, 1},
    {"phimoe",
     "--arch phimoe --hidden 256 --layers 2 --heads 4 --kv-heads 2 --ff 256 --vocab 32064 --experts 4 "
     "--experts-used 2 --ctx 4096 --ctx-orig 1024",
     "phimoe", 32064, 0},
};
#define N_MODELS (int)(sizeof MODELS / sizeof MODELS[0])

static int skip_heavy(const model *m) { return m->heavy && getenv("PHIQ_SANITIZED"); }

/* HF dir of model m, synthesized once. NULL → synth unavailable. */
static const char *synth_dir(const model *m) {
    static char dirs[N_MODELS][4096];
    int k = (int)(m - MODELS);
    if (dirs[k][0]) return dirs[k];
    char name[64];
    snprintf(name, sizeof name, "hf-%s", m->name);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_tmp(name));
    char *err = NULL;
    int rc = tu_run(NULL, &err, "PHIQ_SHARED='%s' '%s' synth -q %s -o '%s'", tu_shared(), tu_bin(), m->synth_args, dir);
    if (rc != 0) {
        fprintf(stderr, "phiq synth unavailable or failed (%s): %s", m->name, err);
        free(err);
        return NULL;
    }
    free(err);
    snprintf(dirs[k], sizeof dirs[k], "%s", dir);
    return dirs[k];
}

static const char *converted(const model *m, const char *type) {
    static char paths[N_MODELS * 8][4096];
    static char keys[N_MODELS * 8][64];
    static int n;
    char key[64];
    snprintf(key, sizeof key, "%s-%s", m->name, type);
    for (int i = 0; i < n; i++)
        if (!strcmp(keys[i], key)) return paths[i];
    const char *dir = synth_dir(m);
    if (!dir) return NULL;
    char file[96];
    snprintf(file, sizeof file, "%s.gguf", key);
    char out[4096];
    snprintf(out, sizeof out, "%s", tu_tmp(file));
    char *err = NULL;
    int rc = tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --type %s --quiet", tu_bin(), dir, out, type);
    if (rc) fprintf(stderr, "convert %s: %s", key, err);
    free(err);
    assert_int_equal(rc, 0);
    assert_true(n < N_MODELS * 8);
    snprintf(keys[n], sizeof keys[n], "%s", key);
    snprintf(paths[n], sizeof paths[n], "%s", out);
    return paths[n++];
}

/* ---- llama.cpp loads every shape and gives finite logits ---------------------------- */
static void test_llamacpp_loads_all(void **s) {
    (void)s;
    const char *ref = tu_require_llama_ref();
    for (int i = 0; i < N_MODELS; i++) {
        const model *m = &MODELS[i];
        if (skip_heavy(m)) continue;
        if (!synth_dir(m)) skip();
        const char *g = converted(m, "f16");
        char out[4096];
        snprintf(out, sizeof out, "%s", tu_tmp("synth-logits.f32"));
        char *err = NULL;
        int rc = tu_run(NULL, &err, "'%s' logits '%s' 1,2,3,4,5,6,7,8 --all --out '%s'", ref, g, out);
        if (rc) fprintf(stderr, "llama-ref on %s: %s", m->name, err);
        free(err);
        assert_int_equal(rc, 0);
        size_t nb;
        float *l = tu_read_all(out, &nb);
        assert_non_null(l);
        assert_int_equal(nb, (size_t)8 * (size_t)m->n_vocab * 4);
        for (size_t k = 0; k < nb / 4; k++) assert_true(isfinite(l[k]));
        double r = tu_range(l, nb / 4);
        assert_true(r > 0);
        free(l);
        /* structure */
        phiq_gguf *gg = phiq_gguf_open(g);
        assert_non_null(gg);
        const char *a;
        uint64_t al;
        assert_int_equal(phiq_gguf_get_str(gg, "general.architecture", &a, &al), 0);
        assert_int_equal(al, strlen(m->arch));
        assert_memory_equal(a, m->arch, al);
        if (!strcmp(m->name, "phi4mini")) {
            uint32_t u;
            assert_null(phiq_gguf_find_tensor(gg, "output.weight")); /* tied */
            assert_int_equal(phiq_gguf_get_u32(gg, "phi3.rope.dimension_count", &u), 0);
            assert_int_equal(u, 48); /* 0.75 * 64 */
            assert_int_equal(phiq_gguf_get_u32(gg, "phi3.attention.head_count_kv", &u), 0);
            assert_int_equal(u, 2);
            const phiq_gguf_tensor *t = phiq_gguf_find_tensor(gg, "rope_factors_short.weight");
            assert_non_null(t);
            assert_int_equal(t->ne[0], 24);
        }
        if (!strcmp(m->name, "phi4")) {
            uint32_t u;
            assert_int_equal(phiq_gguf_get_u32(gg, "phi3.attention.sliding_window", &u), 0);
            assert_int_equal(u, 0);
            assert_int_equal(phiq_gguf_find_kv(gg, "phi3.rope.scaling.attn_factor"), -1);
        }
        if (!strcmp(m->name, "phi2")) {
            assert_non_null(phiq_gguf_find_tensor(gg, "blk.1.attn_q.bias"));
            assert_non_null(phiq_gguf_find_tensor(gg, "output.bias"));
            assert_int_equal(phiq_gguf_find_kv(gg, "phi2.rope.freq_base"), -1);
        }
        if (!strcmp(m->name, "phimoe")) {
            const phiq_gguf_tensor *t = phiq_gguf_find_tensor(gg, "blk.1.ffn_down_exps.weight");
            assert_non_null(t);
            assert_int_equal(t->n_dims, 3);
            assert_int_equal(t->ne[0], 256);
            assert_int_equal(t->ne[1], 256);
            assert_int_equal(t->ne[2], 4);
            t = phiq_gguf_find_tensor(gg, "blk.0.ffn_gate_inp.weight");
            assert_non_null(t);
            assert_int_equal(t->type, PHIQ_GGML_TYPE_F32);
        }
        phiq_gguf_close(gg);
        fprintf(stderr, "[convert synth] %s: llama.cpp loads it, 8x%d finite logits (range %.3g)\n", m->name,
                m->n_vocab, r);
    }
}

/* ---- tokenizer conformance ---------------------------------------------------------------- */
/* tiktoken reference ids (fixtures/tokenizers/tiktoken/NAME.tests.jsonl). */
static void tiktoken_vectors(const char *model_name, const char *vectors) {
    const char *ref = tu_require_llama_ref();
    const model *m = NULL;
    for (int i = 0; i < N_MODELS; i++)
        if (!strcmp(MODELS[i].name, model_name)) m = &MODELS[i];
    assert_non_null(m);
    if (skip_heavy(m)) skip();
    if (!synth_dir(m)) skip();
    const char *g = converted(m, "f16");
    char rel[256];
    snprintf(rel, sizeof rel, "fixtures/tokenizers/tiktoken/%s", vectors);
    char *txt = tu_read_all(tu_shared_path(rel), NULL);
    assert_non_null(txt);
    char lines[4096];
    snprintf(lines, sizeof lines, "%s", tu_tmp("tt.lines"));
    FILE *f = fopen(lines, "w");
    assert_non_null(f);
    char *want = calloc(1, 1 << 20);
    size_t off = 0;
    int n = 0;
    for (char *save = NULL, *ln = strtok_r(txt, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(ln);
        assert_non_null(j);
        const char *text = cJSON_GetObjectItem(j, "text")->valuestring;
        if (!*text) { /* llama-ref cannot pass an empty line */
            cJSON_Delete(j);
            continue;
        }
        tu_json_line(f, text);
        const cJSON *id;
        int k = 0;
        cJSON_ArrayForEach(id, cJSON_GetObjectItem(j, "ids"))
            off += (size_t)snprintf(want + off, (1 << 20) - off, "%s%d", k++ ? " " : "", id->valueint);
        off += (size_t)snprintf(want + off, (1 << 20) - off, "\n");
        n++;
        cJSON_Delete(j);
    }
    fclose(f);
    free(txt);
    char *got = NULL;
    assert_int_equal(tu_run(&got, NULL, "'%s' tokenize '%s' --lines '%s' --no-bos --no-special", ref, g, lines), 0);
    if (strcmp(got, want)) fprintf(stderr, "llama.cpp:\n%s\ntiktoken:\n%s\n", got, want);
    assert_string_equal(got, want);
    fprintf(stderr, "[convert synth] %s: %d texts tokenize as tiktoken's %s\n", model_name, n, vectors);
    free(got);
    free(want);
}

static void test_phi4mini_o200k(void **s) { (void)s; tiktoken_vectors("phi4mini", "o200k_base.tests.jsonl"); }
static void test_phi4_cl100k(void **s) { (void)s; tiktoken_vectors("phi4", "cl100k_base.tests.jsonl"); }

/* Phi-2's CodeGen tokenizer = GPT-2 plus whitespace-run tokens: compare with
 * llama.cpp's own GPT-2 vocab on the texts without runs of spaces or tabs. */
static void test_phi2_vs_llamacpp_gpt2(void **s) {
    (void)s;
    const char *ref = tu_require_llama_ref();
    if (!synth_dir(&MODELS[0])) skip();
    const char *g = converted(&MODELS[0], "f16");
    size_t n;
    char *t = tu_read_all(tu_shared_path("fixtures/vocab/ggml-vocab-gpt-2.gguf.inp"), &n);
    assert_non_null(t);
    char lines[4096];
    snprintf(lines, sizeof lines, "%s", tu_tmp("gpt2.lines"));
    FILE *f = fopen(lines, "w");
    const char *sep = "\n__ggml_vocab_test__\n";
    int count = 0;
    for (char *p = t;;) {
        char *q = strstr(p, sep);
        if (q) *q = 0;
        if (*p && !strstr(p, "  ") && !strstr(p, "\t\t") && !strstr(p, " \t") && !strstr(p, "\t ")) {
            tu_json_line(f, p);
            count++;
        }
        if (!q) break;
        p = q + strlen(sep);
    }
    fclose(f);
    free(t);
    assert_true(count > 20);
    char *ours = NULL, *theirs = NULL;
    assert_int_equal(tu_run(&ours, NULL, "'%s' tokenize '%s' --lines '%s' --no-bos", ref, g, lines), 0);
    assert_int_equal(tu_run(&theirs, NULL, "'%s' tokenize '%s' --lines '%s' --no-bos", ref,
                            tu_shared_path("fixtures/vocab/ggml-vocab-gpt-2.gguf"), lines),
                     0);
    assert_string_equal(ours, theirs);
    fprintf(stderr, "[convert synth] phi2: %d texts tokenize as llama.cpp's ggml-vocab-gpt-2.gguf\n", count);
    free(ours);
    free(theirs);
}

/* ---- quantized conversion equals llama-quantize ------------------------------------------- */

static void test_quantized_equals_llama_quantize(void **s) {
    (void)s;
    const char *ref = tu_require_llama_ref();
    tu_require_quantizers();
    /* Q4_K_M everywhere; Q3_K_M (GQA-dependent attn_v rules) on the GQA shapes */
    const char *types[] = {"Q4_K_M", "Q3_K_M"};
    for (int i = 0; i < N_MODELS; i++) {
        const model *m = &MODELS[i];
        if (skip_heavy(m) || (getenv("PHIQ_SANITIZED") && i > 1)) continue;
        if (!synth_dir(m)) skip();
        char f32[4096];
        snprintf(f32, sizeof f32, "%s", converted(m, "f32"));
        for (int k = 0; k < (!strcmp(m->name, "phi4mini") || !strcmp(m->name, "phimoe") ? 2 : 1); k++) {
            char ours[4096], theirs[4096], what[96];
            snprintf(ours, sizeof ours, "%s", converted(m, types[k]));
            char nm[96];
            snprintf(nm, sizeof nm, "llama-%s-%s.gguf", m->name, types[k]);
            snprintf(theirs, sizeof theirs, "%s", tu_tmp(nm));
            assert_int_equal(tu_run(NULL, NULL, "'%s' quantize '%s' '%s' %s >/dev/null 2>&1", ref, f32, theirs, types[k]),
                             0);
            snprintf(what, sizeof what, "%s %s", m->name, types[k]);
            fprintf(stderr, "[convert synth] %s: %lld tensors identical to llama-quantize\n", what,
                    (long long)tu_same_tensors(ours, theirs, what));
            remove(theirs);
        }
    }
}

/* llama.cpp applies its Phi-3 token handling when general.name contains
 * "phi3"/"phi-3" and then fails to load vocabularies without </s>, <unk>,
 * <s>, <|endoftext|>: such names are defused for those vocabularies. */
static void test_phi3_name_gotcha(void **s) {
    (void)s;
    const char *ref = tu_require_llama_ref();
    const char *dir = tu_tmp_keep("my-phi3-gpt2"), *out = tu_tmp_keep("my-phi3-gpt2.gguf");
    if (tu_run(NULL, NULL,
               "PHIQ_SHARED='%s' '%s' synth -q --arch phi3 --hidden 64 --layers 1 --heads 4 --ff 128 --vocab 51200 "
               "--tokenizer gpt2 -o '%s' 2>/dev/null",
               tu_shared(), tu_bin(), dir) != 0)
        skip();
    assert_int_equal(tu_run(NULL, NULL, "'%s' convert '%s' -o '%s' --type f16 --quiet", tu_bin(), dir, out), 0);
    phiq_gguf *g = phiq_gguf_open(out);
    assert_non_null(g);
    const char *nm;
    uint64_t nl;
    assert_int_equal(phiq_gguf_get_str(g, "general.name", &nm, &nl), 0);
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)nl, nm);
    assert_null(strstr(name, "phi3"));
    assert_null(strstr(name, "phi-3"));
    phiq_gguf_close(g);
    assert_int_equal(tu_run(NULL, NULL, "'%s' logits '%s' 1,2,3 >/dev/null", ref, out), 0);
    /* with the Phi-3 vocabulary the name is kept (tiny-phi3-kjv) */
}

TU_MAIN(NULL, NULL, test_llamacpp_loads_all, test_phi4mini_o200k, test_phi4_cl100k, test_phi2_vs_llamacpp_gpt2,
        test_quantized_equals_llama_quantize, test_phi3_name_gotcha)
