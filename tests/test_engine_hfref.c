/* test_engine_hfref.c — where llama.cpp departs from Hugging Face, phiq must
 * match Hugging Face: checked against tests/ref/hf_reference.py, an
 * independent numpy forward pass (itself checked against the fixture's
 * PyTorch logits), on checkpoints made by `phiq synth`:
 *   - sliding window (a sequence longer than the window);
 *   - the LongRoPE switch: a batch longer than the original context uses the
 *     long factors throughout; a generation that crosses it token by token
 *     uses the short factors until then and recomputes the cache after;
 *   - phi2 (parallel block, LayerNorm, biases, GELU).
 * Needs /usr/bin/python3 with numpy (Debian's python3-numpy); skips otherwise. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phiq.h"

#define N_IDS 48
static int32_t ids[N_IDS];
static int V; /* vocabulary of the model under test: the real tokenizer's size, which convert requires */

/* The synth checkpoint of vocabulary vocab (now V) as an F32 GGUF; skips
 * the test without numpy (the reference needs it). */
static const char *make_model(const char *name, int vocab, const char *synth_args) {
    tu_require_numpy();
    V = vocab;
    char args[1024];
    snprintf(args, sizeof args, "%s --vocab %d --seed 7", synth_args, V);
    return tu_synth_gguf(name, args, "f32");
}

static float *reference(const char *gguf, const char *mode, int n) { return tu_hf_reference(gguf, ids, n, V, mode, NULL); }

static phiq_context *open_ctx(phiq_model **m, const char *gguf) {
    *m = phiq_model_open(gguf, NULL);
    if (!*m) fail_msg("%s", phiq_error());
    phiq_context_params cp = phiq_context_default_params();
    cp.n_ctx = 256;
    cp.n_threads = 2;
    cp.kv_type = PHIQ_KV_TYPE_F32;
    cp.all_logits = 1;
    phiq_context *c = phiq_context_new(*m, &cp);
    if (!c) fail_msg("%s", phiq_error());
    return c;
}

static void check_rows(const char *what, const float *got, const float *want, int first, int n, double tol) {
    double worst = tu_worst_rel(got, want, first, n, V);
    print_message("%s: max |diff| / logit range = %.2e over positions %d..%d\n", what, worst, first, n - 1);
    assert_true(worst <= tol);
}

/* Logits of a batch evaluated at once. */
static float *eval_batch(const char *gguf, int n) {
    phiq_model *m;
    phiq_context *c = open_ctx(&m, gguf);
    float *out = tu_eval_logits(c, ids, n, n, V);
    phiq_context_free(c);
    phiq_model_free(m);
    return out;
}

/* The n-token batch at once against the reference's forward in mode. */
static void check_batch(const char *what, const char *gguf, const char *mode, double tol) {
    float *want = reference(gguf, mode, N_IDS), *got = eval_batch(gguf, N_IDS);
    check_rows(what, got, want, 0, N_IDS, tol);
    free(want);
    free(got);
}

static void test_sliding_window(void **state) {
    (void)state;
    const char *g = make_model("swa", 32064, "--arch phi3 --hidden 128 --layers 2 --heads 4 --kv-heads 2 --ff 256 "
                                             "--ctx 256 --ctx-orig 256 --sliding-window 16");
    check_batch("sliding window 16, 48 tokens", g, "hf", 1e-3);
}

static void test_longrope_batch_and_generation(void **state) {
    (void)state;
    const char *g = make_model("longrope", 32064, "--arch phi3 --hidden 128 --layers 2 --heads 4 --kv-heads 2 --ff 256 "
                                                  "--ctx 256 --ctx-orig 32 --partial-rotary 0.75 --sliding-window 0");
    /* one 48-token batch: the sequence exceeds 32, so Hugging Face uses the long factors everywhere */
    check_batch("LongRoPE, one batch of 48 (long factors)", g, "long", 1e-3);
    /* a 20-token prompt, then one token at a time across position 32 */
    float *want = reference(g, "hf", N_IDS);
    phiq_model *m;
    phiq_context *c = open_ctx(&m, g);
    const int np = 20;
    float *got = tu_eval_logits(c, ids, np, N_IDS, V);
    check_rows("LongRoPE, generation crossing 32 (short, then re-prefill with long)", got + (size_t)(np - 1) * V, want,
               np - 1, N_IDS, 1e-3);
    phiq_context_free(c);
    phiq_model_free(m);
    free(want); free(got);
}

static void test_phi2(void **state) {
    (void)state;
    const char *g = make_model("phi2", 51200, "--arch phi2 --hidden 128 --layers 2 --heads 4 --ff 512 --ctx 256");
    /* phiq evaluates GELU as ggml does (fp16 table), Hugging Face with the exact tanh formula */
    check_batch("phi2, 48 tokens", g, "hf", 5e-3);
}

int main(void) {
    tu_random_ids(ids, N_IDS, 12345, 30000);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sliding_window),
        cmocka_unit_test(test_longrope_batch_and_generation),
        cmocka_unit_test(test_phi2),
    };
    return tu_run_group(tests, NULL, NULL);
}
