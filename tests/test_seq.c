/* test_seq.c — sequences evaluated together (phiq_seq_eval_batch: prefill
 * chunks and decode steps of several conversations in one forward pass)
 * give the logits each gets alone through phiq_eval (itself checked
 * against llama.cpp in test_engine_agreement), including passes that split
 * a prompt, a sequence crossing LongRoPE's original context (re-prefill),
 * truncation (KV reuse) and the refusals. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phiq.h"

#define NSEQ 3

static int argmax(const float *l, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

/* Logits of ids through a fresh single context (the reference). */
static float *solo_logits(phiq_model *m, const phiq_context_params *cp, const int32_t *ids, int n) {
    phiq_context *c = phiq_context_new(m, cp);
    assert_non_null(c);
    assert_int_equal(phiq_eval(c, ids, n), 0);
    int V = phiq_model_n_vocab(m);
    float *l = malloc(sizeof(float) * (size_t)V);
    memcpy(l, phiq_logits(c), sizeof(float) * (size_t)V);
    phiq_context_free(c);
    return l;
}

/* Batched logits agree with solo ones to float rounding (a pass of several
 * rows may take the gemm path where one row takes the dot path) and pick
 * the same token. */
static void check_close(const float *got, const float *want, int V, const char *what) {
    double d = tu_max_abs_diff(got, want, (size_t)V), r = tu_range(want, (size_t)V);
    if (!(d <= 2e-3 * r) || argmax(got, V) != argmax(want, V))
        fail_msg("%s: max |diff| %g over a range of %g, argmax %d vs %d", what, d, r, argmax(got, V), argmax(want, V));
}

static void run_batched(const char *model, phiq_kv_type kvt, int n_batch, int long_prompt) {
    phiq_model_params mp = {.n_threads = 2};
    phiq_model *m = phiq_model_open(model, &mp);
    assert_non_null(m);
    const int V = phiq_model_n_vocab(m);
    phiq_context_params cp = phiq_context_default_params();
    cp.n_ctx = long_prompt ? 1100 : 128;
    cp.n_threads = 2;
    cp.kv_type = kvt;
    cp.n_batch = n_batch;
    phiq_context *ctx = phiq_context_new(m, &cp);
    assert_non_null(ctx);
    static const char *texts[NSEQ] = {
        "In the beginning God created the heaven and the earth.",
        "And God said, Let there be light: and there was light. And God saw the light, that it was good",
        "Jesus wept.",
    };
    int32_t *hist[NSEQ];
    int nh[NSEQ];
    phiq_seq *seq[NSEQ];
    const int cap = cp.n_ctx;
    for (int s = 0; s < NSEQ; s++) {
        hist[s] = malloc(sizeof(int32_t) * (size_t)cap);
        nh[s] = phiq_tokenize(m, texts[s], hist[s], cap, PHIQ_TOKENIZE_ADD_BOS);
        assert_true(nh[s] > 0 && nh[s] < 40);
        seq[s] = phiq_seq_new(ctx);
        assert_non_null(seq[s]);
    }
    /* under the sanitizers the long case decodes 5 steps from 1021 instead of
     * 8 from 1020 (each step re-runs the solo reference over the whole
     * prompt): it still crosses 1024 */
    const int sanitized = getenv("PHIQ_SANITIZED") != NULL;
    const int start = long_prompt && sanitized ? 1021 : 1020, steps = long_prompt && sanitized ? 5 : 8;
    if (long_prompt) { /* sequence 0 crosses the fixture's original context of 1024 during decode */
        while (nh[0] < start) {
            int k = phiq_tokenize(m, " And the evening and the morning were the first day.", hist[0] + nh[0], cap - nh[0], 0);
            nh[0] += k;
        }
        nh[0] = start;
    }
    /* prefill all prompts in one call (mixed lengths, several passes when n_batch is small) */
    phiq_seq_item items[NSEQ];
    for (int s = 0; s < NSEQ; s++) items[s] = (phiq_seq_item){seq[s], hist[s], nh[s]};
    assert_int_equal(phiq_seq_eval_batch(ctx, items, NSEQ), 0);
    for (int step = 0; step < steps; step++) {
        int32_t next[NSEQ];
        for (int s = 0; s < NSEQ; s++) {
            assert_int_equal(phiq_seq_pos(seq[s]), nh[s]);
            float *want = solo_logits(m, &cp, hist[s], nh[s]);
            char what[64];
            snprintf(what, sizeof what, "sequence %d after %d tokens", s, nh[s]);
            check_close(phiq_seq_logits(seq[s]), want, V, what);
            next[s] = argmax(want, V);
            hist[s][nh[s]++] = next[s];
            free(want);
        }
        /* a decode step of every sequence in one pass; sequence 2 sits out every other step */
        int k = 0;
        for (int s = 0; s < NSEQ; s++) {
            if (s == 2 && step % 2) { nh[2]--; continue; }
            items[k++] = (phiq_seq_item){seq[s], &next[s], 1};
        }
        assert_int_equal(phiq_seq_eval_batch(ctx, items, k), 0);
    }
    /* KV reuse: truncate sequence 1 to its prompt and extend it differently */
    int keep = nh[1] - 5;
    assert_int_equal(phiq_seq_truncate(seq[1], keep), 0);
    assert_null(phiq_seq_logits(seq[1]));
    int32_t ext[3] = {hist[2][1], hist[2][2], hist[2][3]};
    memcpy(hist[1] + keep, ext, sizeof ext);
    items[0] = (phiq_seq_item){seq[1], ext, 3};
    items[1] = (phiq_seq_item){seq[2], hist[0] + 5, 2};
    memcpy(hist[2] + nh[2], hist[0] + 5, 2 * sizeof(int32_t));
    assert_int_equal(phiq_seq_eval_batch(ctx, items, 2), 0);
    float *want = solo_logits(m, &cp, hist[1], keep + 3);
    check_close(phiq_seq_logits(seq[1]), want, V, "truncated and extended sequence");
    free(want);
    want = solo_logits(m, &cp, hist[2], nh[2] + 2);
    check_close(phiq_seq_logits(seq[2]), want, V, "sequence batched beside a truncated one");
    free(want);
    for (int s = 0; s < NSEQ; s++) {
        phiq_seq_free(seq[s]);
        free(hist[s]);
    }
    phiq_context_free(ctx);
    phiq_model_free(m);
}

static void test_batched_q4_0(void **state) {
    (void)state;
    run_batched(tu_fixture_gguf("q4_0"), PHIQ_KV_TYPE_F16, 512, 0);
}

static void test_batched_small_passes_q8_kv(void **state) {
    (void)state;
    /* 7-token passes: prompts are cut across passes and share them */
    run_batched(tu_fixture_gguf("q8_0"), PHIQ_KV_TYPE_Q8_0, 7, 0);
}

static void test_batched_longrope(void **state) {
    (void)state;
    run_batched(tu_fixture_gguf("q8_0"), PHIQ_KV_TYPE_F32, 512, 1);
}

static void test_refusals(void **state) {
    (void)state;
    phiq_model *m = phiq_model_open(tu_fixture_gguf("q8_0"), NULL);
    assert_non_null(m);
    phiq_context_params cp = phiq_context_default_params();
    cp.n_ctx = 8;
    cp.n_threads = 1;
    phiq_context *ctx = phiq_context_new(m, &cp), *other = phiq_context_new(m, &cp);
    phiq_seq *s = phiq_seq_new(ctx), *t = phiq_seq_new(other);
    assert_non_null(s);
    assert_non_null(t);
    int32_t ids[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, bad = 1 << 30;
    phiq_seq_item it = {s, ids, 9};
    assert_true(phiq_seq_eval_batch(ctx, &it, 1) < 0);
    assert_non_null(strstr(phiq_error(), "context full"));
    it.n = 1, it.ids = &bad;
    assert_true(phiq_seq_eval_batch(ctx, &it, 1) < 0);
    assert_non_null(strstr(phiq_error(), "out of range"));
    phiq_seq_item two[2] = {{s, ids, 1}, {s, ids, 1}};
    assert_true(phiq_seq_eval_batch(ctx, two, 2) < 0);
    assert_non_null(strstr(phiq_error(), "twice"));
    two[1].seq = t;
    assert_true(phiq_seq_eval_batch(ctx, two, 2) < 0);
    assert_non_null(strstr(phiq_error(), "another context"));
    assert_int_equal(phiq_seq_pos(s), 0);
    assert_true(phiq_seq_truncate(s, 1) < 0);
    assert_null(phiq_seq_logits(s));
    phiq_seq_free(s);
    phiq_seq_free(t);
    phiq_context_free(ctx);
    phiq_context_free(other);
    phiq_model_free(m);
}

TU_MAIN(NULL, NULL, test_batched_q4_0, test_batched_small_passes_q8_kv, test_batched_longrope, test_refusals)
