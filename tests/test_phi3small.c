/* test_phi3small.c — Phi-3-small (Phi3SmallForCausalLM) end to end, checked
 * against tests/ref/phi3small_reference.py, a numpy forward written from
 * Microsoft's remote modeling code (not from phiq), on checkpoints made by
 * `phiq synth --preset phi-3-small-tiny` (4 layers: block-sparse, dense,
 * block-sparse, dense; blocks of 16, 2 local blocks, vertical stride 3 so
 * the heads' patterns differ):
 *   - prefill logits of 160 tokens (10 blocks: the sparse layers skip keys)
 *     from the Hugging Face directory and from its F32 GGUF;
 *   - the same weights with every layer dense give other logits past the
 *     local window (so the comparison above would catch a dense forward);
 *   - decoding token by token through the KV cache (f32, f16) equals the
 *     prefill;
 *   - the 128k variant's LongRoPE across its original context (short, then a
 *     long-factor re-prefill, as Hugging Face's cache recompute);
 *   - the dummy token ids come out as -FLT_MAX, as the reference's finfo.min;
 *   - the phi-3-small presets have the reference's table-1a shapes.
 * Needs /usr/bin/python3 with numpy (Debian's python3-numpy); skips otherwise. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/synth.h"
#include "phiq.h"

#define N_IDS 160
#define V 100352
static int32_t ids[N_IDS];

static const char *synth_dir(const char *name, const char *args) {
    const char *dir = tu_tmp_keep(name);
    char *err = NULL;
    if (tu_run(NULL, &err, "'%s' synth --preset phi-3-small-tiny --layers 4 --seed 5 %s -q -o '%s'", tu_bin(), args, dir))
        fail_msg("synth: %s", err);
    free(err);
    return dir;
}

static float *reference(const char *dir, int n) {
    return tu_ref_logits("phi3small_reference.py", dir, ids, n, V, "hf", NULL);
}

/* synth_dir(name, args) and, in *want, the reference's logits of its first
 * n ids; skips the test without numpy. */
static const char *checkpoint(const char *name, const char *args, int n, float **want) {
    tu_require_numpy();
    const char *dir = synth_dir(name, args);
    *want = reference(dir, n);
    return dir;
}

/* The block-sparse checkpoint (--blocksparse 16,2,3) the prefill, decode and
 * GGUF tests share, and the reference's logits of all N_IDS ids (*want, not
 * the caller's to free): made once. */
static const char *base_dir;
static float *base_want;
static const char *base(float **want) {
    if (!base_dir) base_dir = checkpoint("p3s", "--blocksparse 16,2,3", N_IDS, &base_want);
    *want = base_want;
    return base_dir;
}

static int teardown(void **state) {
    (void)state;
    free(base_want);
    return 0;
}

/* phiq's logits of ids[0..n): one prefill (decode_from < 0) or a prefill of
 * decode_from tokens then one token at a time; rows n x V. */
static float *run(const char *path, int n, int decode_from, phiq_kv_type kv) {
    phiq_model_params mp = {.type = "f32"};
    phiq_model *m = phiq_model_open(path, &mp);
    if (!m) fail_msg("%s", phiq_error());
    assert_string_equal(phiq_model_arch(m), "phi3small");
    phiq_context_params cp = phiq_context_default_params();
    cp.n_ctx = 256;
    cp.n_threads = 2;
    cp.kv_type = kv;
    cp.all_logits = 1;
    phiq_context *c = phiq_context_new(m, &cp);
    if (!c) fail_msg("%s", phiq_error());
    float *out = tu_eval_logits(c, ids, decode_from < 0 ? n : decode_from, n, (int)V);
    phiq_context_free(c);
    phiq_model_free(m);
    return out;
}

static double worst(const float *got, const float *want, int first, int n) {
    return tu_worst_rel_dummies(got, want, first, n, V, 91); /* Phi3SmallTokenizer.dummy_token_indices */
}

static void check(const char *what, const float *got, const float *want, int first, int n, double tol) {
    double e = worst(got, want, first, n);
    print_message("%s: max |diff| / logit range = %.2e over positions %d..%d\n", what, e, first, n - 1);
    assert_true(e <= tol);
}

static void test_prefill_matches_reference(void **state) {
    (void)state;
    float *want;
    const char *dir = base(&want);
    float *got = run(dir, N_IDS, -1, PHIQ_KV_TYPE_F32);
    check("HF directory, f32, 160-token prefill", got, want, 0, N_IDS, 1e-4);
    /* the same weights, every layer dense: equal while the local blocks cover
     * everything (positions < 32), different beyond */
    const char *dense = synth_dir("p3s-dense", "--blocksparse 16,2,3,1");
    float *all = run(dense, N_IDS, -1, PHIQ_KV_TYPE_F32);
    double near = worst(all, got, 0, 32), far = worst(all, got, 48, N_IDS);
    print_message("all-dense vs block-sparse: %.2e before position 32, %.2e from 48 on\n", near, far);
    assert_true(near <= 1e-5);
    assert_true(far > 1e-2);
    free(all);
    free(got);
}

static void test_decode_equals_prefill(void **state) {
    (void)state;
    float *want;
    const char *dir = base(&want);
    float *pre = run(dir, N_IDS, -1, PHIQ_KV_TYPE_F32), *dec = run(dir, N_IDS, 100, PHIQ_KV_TYPE_F32);
    check("f32 cache: decode 100..159 vs prefill", dec, pre, 100, N_IDS, 1e-5);
    check("f32 cache: decode vs reference", dec, want, 0, N_IDS, 1e-4);
    free(dec);
    dec = run(dir, N_IDS, 100, PHIQ_KV_TYPE_F16);
    check("f16 cache: decode vs reference", dec, want, 0, N_IDS, 5e-3);
    free(dec);
    free(pre);
}

/* The 128k variant's LongRoPE (positional_embedding.py): short factors and
 * short_mscale (absent: 1) up to the original context, long factors and
 * sqrt(1 + ln(max/orig)/ln(orig)) past it; a generation crossing the
 * original context recomputes the cache with the long factors. */
static void test_longrope(void **state) {
    (void)state;
    float *want;
    const char *dir = checkpoint("p3s-long", "--blocksparse 16,2,3 --ctx 512 --ctx-orig 64", 100, &want);
    float *got = run(dir, 100, 40, PHIQ_KV_TYPE_F32);
    check("LongRoPE (orig 64): prefill 40, decode across 64 to 99", got, want, 0, 100, 1e-4);
    free(got);
    free(want);
}

/* The checkpoint's GGUF (phiq's phi3small architecture): F32 gives the same
 * logits as the directory; Q8_0 stays close; run, eval and inspect take it. */
static void test_gguf(void **state) {
    (void)state;
    float *want;
    const char *dir = base(&want);
    char g32[4200], g8[4200];
    snprintf(g32, sizeof g32, "%s.f32.gguf", dir);
    snprintf(g8, sizeof g8, "%s.q8.gguf", dir);
    char *err = NULL;
    if (tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --type f32 -q", tu_bin(), dir, g32)) fail_msg("convert f32: %s", err);
    free(err);
    err = NULL;
    if (tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --type Q8_0 -q", tu_bin(), dir, g8)) fail_msg("convert q8_0: %s", err);
    free(err);
    float *got = run(g32, N_IDS, -1, PHIQ_KV_TYPE_F32);
    check("F32 GGUF, 160-token prefill", got, want, 0, N_IDS, 1e-4);
    free(got);
    got = run(g8, N_IDS, 100, PHIQ_KV_TYPE_F16);
    check("Q8_0 GGUF, f16 cache, decode from 100", got, want, 0, N_IDS, 5e-2);
    free(got);
    char *out = NULL;
    err = NULL;
    if (tu_run(&out, &err, "'%s' run '%s' -p 'Hello there' -n 4 --temp 0", tu_bin(), g8)) fail_msg("run: %s", err);
    free(out);
    free(err);
    err = NULL;
    if (tu_run(&out, &err, "'%s' eval '%s' --text '%s' --ctx 64 --chunks 2 --json", tu_bin(), g8,
               tu_shared_path("fixtures/text/kjv-calibration.txt")))
        fail_msg("eval: %s", err);
    assert_non_null(strstr(out, "\"ppl\""));
    free(out);
    free(err);
    if (tu_run(&out, NULL, "'%s' inspect '%s' --no-tensors", tu_bin(), g8)) fail_msg("inspect failed");
    assert_non_null(strstr(out, "phi3small.attention.blocksparse.vert_stride"));
    free(out);
}

/* doc §1a: Phi-3-small-8k/128k: hidden 4096, ff 14336, 32 layers, 32/8 heads, vocab 100352, tied */
typedef struct { int n, qkv, up, bias; } p3s_seen;
static void seen(void *user, const char *name, int nd, const int64_t *sh) {
    p3s_seen *s = user;
    s->n++;
    if (!strcmp(name, "model.layers.0.self_attn.query_key_value.weight") && nd == 2 && sh[1] == 4096) s->qkv = (int)sh[0];
    if (!strcmp(name, "model.layers.0.mlp.up_proj.weight") && nd == 2 && sh[1] == 4096) s->up = (int)sh[0];
    if (strstr(name, ".bias")) s->bias++;
}

static void test_presets(void **state) {
    (void)state;
    const char *names[2] = {"phi-3-small", "phi-3-small-128k"};
    for (int k = 0; k < 2; k++) {
        phiq_synth_params p;
        assert_int_equal(phiq_synth_preset(names[k], &p), 0);
        assert_int_equal(p.n_embd, 4096);
        assert_int_equal(p.n_ff, 14336);
        assert_int_equal(p.n_layer, 32);
        assert_int_equal(p.n_head, 32);
        assert_int_equal(p.n_head_kv, 8);
        assert_int_equal(p.n_vocab, 100352);
        assert_true(p.tied);
        assert_int_equal(p.n_ctx_train, k ? 131072 : 8192);
        assert_int_equal(p.n_ctx_orig, 8192);
        assert_int_equal(p.bs_block, 64);
        assert_int_equal(p.bs_local, 16);
        assert_int_equal(p.bs_stride, 8);
        assert_int_equal(p.bs_dense_every, 2);
        p3s_seen s = {0};
        assert_int_equal(phiq_synth_list(&p, seen, &s), 0);
        assert_int_equal(s.qkv, (32 + 2 * 8) * 128);
        assert_int_equal(s.up, 2 * 14336);
        assert_int_equal(s.n, 1 + 12 * 32 + 2); /* embedding, 12 per layer, final norm weight + bias; no lm_head */
        assert_int_equal(s.bias, 6 * 32 + 1);
    }
}

int main(void) {
    tu_random_ids(ids, N_IDS, 2024, V);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_prefill_matches_reference),
        cmocka_unit_test(test_decode_equals_prefill),
        cmocka_unit_test(test_longrope),
        cmocka_unit_test(test_gguf),
    };
    return tu_run_group(tests, NULL, teardown);
}
