/* test_engine_agreement.c — phiq's engine against llama.cpp (llama-ref) on
 * tiny-phi3-kjv:
 *   - greedy 64-token continuations are identical on phiq's F32 and F16 files;
 *   - on Q8_0, Q6_K, Q4_0 and Q4_K_M files written by llama.cpp itself, the
 *     top-1 next token agrees on >= 99% of held-out positions.
 * Held-out text is tokenized by llama.cpp. Skips when llama-ref is unavailable. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phiq.h"

#define CHUNK 128
static const char *lr;
static int32_t *heldout;
static int n_heldout;

static const char *path(const char *name) { return tu_tmp(name); }

static int32_t *parse_ids(const char *s, int *n) {
    int cap = 256, k = 0;
    int32_t *v = malloc(sizeof(int32_t) * (size_t)cap);
    for (char *e; *s;) {
        long x = strtol(s, &e, 10);
        if (e == s) { s++; continue; }
        if (k == cap) v = realloc(v, sizeof(int32_t) * (size_t)(cap *= 2));
        v[k++] = (int32_t)x;
        s = e;
    }
    *n = k;
    return v;
}

static int setup(void **state) {
    (void)state;
    lr = tu_llama_ref();
    if (!lr) return 0;
    tu_fixture_gguf("f32");
    tu_fixture_gguf("f16");
    /* a held-out passage, tokenized by llama.cpp */
    size_t n;
    char *txt = tu_read_all(tu_shared_path("fixtures/text/kjv-heldout.txt"), &n);
    /* the same 512 positions in every build: top-1 agreement counts near-ties
     * (llama.cpp keeps the KV cache in F16), so a shorter sanitizer run would
     * test a different threshold */
    size_t cut = 6000;
    if (cut < n) txt[cut] = 0;
    for (char *p = txt; *p; p++) if (*p == '\'') *p = ' ';
    char *out = NULL;
    if (tu_run(&out, NULL, "'%s' tokenize '%s' '%s'", lr, tu_fixture_gguf("f32"), txt) != 0) fail_msg("llama-ref tokenize");
    heldout = parse_ids(out, &n_heldout);
    free(out);
    free(txt);
    return 0;
}

static phiq_context *ctx_for(phiq_model **m, const char *file, int n_ctx) {
    *m = phiq_model_open(file, NULL);
    if (!*m) fail_msg("%s", phiq_error());
    phiq_context_params cp = phiq_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_threads = 2;
    cp.all_logits = 1;
    phiq_context *c = phiq_context_new(*m, &cp);
    if (!c) fail_msg("%s", phiq_error());
    return c;
}

static int argmax(const float *l, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) if (l[i] > l[b]) b = i;
    return b;
}

static void greedy_equal(const char *file) {
    const int np = 16, ng = 64;
    char ids[512] = "";
    for (int i = 0; i < np; i++) snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%d", i ? "," : "", heldout[i]);
    char *out = NULL;
    if (tu_run(&out, NULL, "'%s' greedy '%s' %s %d", lr, file, ids, ng) != 0) fail_msg("llama-ref greedy");
    int n_ref;
    int32_t *ref = parse_ids(out, &n_ref);
    free(out);
    assert_int_equal(n_ref, ng);
    phiq_model *m;
    phiq_context *c = ctx_for(&m, file, 256);
    assert_int_equal(phiq_eval(c, heldout, np), 0);
    int nv = phiq_model_n_vocab(m), same = 0;
    for (int i = 0; i < ng; i++) {
        int32_t t = argmax(phiq_logits(c), nv);
        if (t != ref[i]) { print_message("%s: greedy differs at step %d: phiq %d llama.cpp %d\n", file, i, t, ref[i]); break; }
        same++;
        if (i + 1 < ng) assert_int_equal(phiq_eval(c, &t, 1), 0);
    }
    print_message("%s: %d of %d greedy tokens identical to llama.cpp\n", strrchr(file, '/') + 1, same, ng);
    assert_int_equal(same, ng);
    phiq_context_free(c);
    phiq_model_free(m);
    free(ref);
}

static void test_greedy_f32_f16(void **state) {
    (void)state;
    if (!lr) skip();
    greedy_equal(tu_fixture_gguf("f32"));
    greedy_equal(tu_fixture_gguf("f16"));
}

static void test_top1_llamacpp_quantized(void **state) {
    (void)state;
    if (!lr) skip();
    const char *types[] = {"Q8_0", "Q6_K", "Q4_0", "Q4_K_M"};
    int n_chunks = n_heldout / CHUNK;
    if (n_chunks > 4) n_chunks = 4;
    assert_true(n_chunks >= 1);
    for (int k = 0; k < 4; k++) {
        char q[64];
        snprintf(q, sizeof q, "llama-%s.gguf", types[k]);
        if (tu_run(NULL, NULL, "'%s' quantize '%s' '%s' %s", lr, tu_fixture_gguf("f32"), path(q), types[k]) != 0)
            fail_msg("llama-ref quantize %s", types[k]);
        phiq_model *m;
        phiq_context *c = ctx_for(&m, path(q), CHUNK);
        int nv = phiq_model_n_vocab(m), agree = 0, total = 0;
        for (int ch = 0; ch < n_chunks; ch++) {
            const int32_t *ids = heldout + ch * CHUNK;
            char list[CHUNK * 8] = "";
            for (int i = 0; i < CHUNK; i++) snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d", i ? "," : "", ids[i]);
            if (tu_run(NULL, NULL, "'%s' logits '%s' %s --all --out '%s'", lr, path(q), list, path("ref.f32")) != 0)
                fail_msg("llama-ref logits");
            size_t nb;
            float *ref = tu_read_all(path("ref.f32"), &nb);
            assert_int_equal(nb, sizeof(float) * (size_t)nv * CHUNK);
            assert_int_equal(phiq_context_truncate(c, 0), 0);
            assert_int_equal(phiq_eval(c, ids, CHUNK), 0);
            for (int i = 0; i < CHUNK; i++) {
                agree += argmax(phiq_logits_at(c, i), nv) == argmax(ref + (size_t)i * nv, nv);
                total++;
            }
            free(ref);
        }
        print_message("%-6s (written by llama.cpp): top-1 agreement %.2f%% over %d held-out positions\n", types[k],
                      100.0 * agree / total, total);
        assert_true(agree >= 0.99 * total);
        phiq_context_free(c);
        phiq_model_free(m);
    }
}

TU_MAIN(setup, NULL, test_greedy_f32_f16, test_top1_llamacpp_quantized)
