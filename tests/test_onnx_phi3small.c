/* test_onnx_phi3small.c — `phiq convert --format onnx` of Phi-3-small
 * (Phi3SmallForCausalLM: com.microsoft.SparseAttention on the block-sparse
 * layers, GroupQueryAttention on the dense ones) run in onnxruntime-node,
 * against tests/ref/phi3small_reference.py (numpy, from Microsoft's remote
 * modeling code), on `phiq synth --preset phi-3-small-tiny --layers 4
 * --blocksparse 16,2,3` (block-sparse, dense, block-sparse, dense; blocks of
 * 16 tokens, 2 local blocks, vertical stride 3, so the 4 heads' patterns
 * differ):
 *   - fp32: a 160-token prefill (10 blocks) and the same tokens decoded one
 *     at a time, past and present KV in one shared buffer as ORT GenAI binds
 *     them: logits within 1e-4 of the reference's range, dummy ids -FLT_MAX;
 *   - the same weights with every layer dense, exported and run: they match
 *     the reference's all-dense logits, equal the block-sparse export's
 *     while the local blocks cover everything (positions < 32) and differ
 *     from position 48 on, so the sparse layers really left blocks out;
 *   - int4 (MatMulNBits, tied embedding through GatherBlockQuantized) and
 *     fp16 weights load, run and stay near the reference;
 *   - the 128k variant's LongRoPE: short caches up to the original context,
 *     long ones past it, each with its own mscale;
 *   - genai_config.json says model.type phi3small;
 *   - refusals in one line with no output directory: a block size
 *     SparseAttention does not take (256), --ratio.
 * Needs onnxruntime-node (tests/refs-setup.sh) and python3 with numpy. */
#define _GNU_SOURCE /* memmem */
#include "testutil.h"
#include "testutil_ort.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define N_IDS 160
#define V 100352
#define DUMMIES 91 /* Phi3SmallTokenizer.dummy_token_indices below 100352 */
static int32_t ids[N_IDS];
static int ids_int[N_IDS];

static const char *synth_dir(const char *name, const char *args) {
    const char *dir = tu_tmp_keep(name);
    char *err = NULL;
    if (tu_run(NULL, &err, "rm -rf '%s' && '%s' synth --preset phi-3-small-tiny --layers 4 --seed 5 %s -q -o '%s'", dir,
               tu_bin(), args, dir))
        fail_msg("synth: %s", err);
    free(err);
    return dir;
}

/* `phiq convert DIR --format onnx --type TYPE` into DIR.onnx-TYPE */
static const char *export(const char *dir, const char *type) {
    static char out[4][4200];
    static int k;
    char *o = out[k++ & 3];
    snprintf(o, sizeof out[0], "%s.onnx-%s", dir, type);
    char *err = NULL;
    if (tu_run(NULL, &err, "rm -rf '%s' && '%s' convert '%s' -o '%s' --format onnx --type %s -t 2 --quiet", o, tu_bin(),
               dir, o, type))
        fail_msg("convert --format onnx --type %s: %s", type, err);
    free(err);
    return o;
}

static double report(const char *what, const float *got, const float *want, int first, int n) {
    double e = tu_worst_rel_dummies(got, want, first, n, V, DUMMIES);
    print_message("%s: max |diff| / logit range = %.2e over positions %d..%d\n", what, e, first, n - 1);
    return e;
}

static void need_refs(void) {
    if (!tu_have_numpy()) tu_unavailable("python3 with numpy not found (scripts/deps.sh test installs python3-numpy)");
    if (tu_ort_setup()) skip();
}

/* Whether export directory ox's model.onnx names op (an operator type). */
static bool graph_has(const char *ox, const char *op) {
    char m[4300];
    size_t mn = 0;
    snprintf(m, sizeof m, "%s/model.onnx", ox);
    char *mb = tu_read_all(m, &mn);
    assert_non_null(mb);
    const bool has = memmem(mb, mn, op, strlen(op)) != NULL;
    free(mb);
    return has;
}

static void test_fp32_matches_reference(void **state) {
    (void)state;
    need_refs();
    const char *dir = synth_dir("p3s-ox", "--blocksparse 16,2,3");
    const char *ox = export(dir, "fp32");
    char cfg[4300];
    snprintf(cfg, sizeof cfg, "%s/genai_config.json", ox);
    char *txt = tu_read_all(cfg, &(size_t){0});
    assert_non_null(txt);
    assert_non_null(strstr(txt, "\"phi3small\""));
    free(txt);
    float *want = tu_ref_logits("phi3small_reference.py", dir, ids, N_IDS, V, "hf", NULL);
    float *pre = tu_ort_logits_share(ox, ids_int, N_IDS, false, N_IDS, "p3s-ox-pre");
    float *dec = tu_ort_logits_share(ox, ids_int, N_IDS, true, N_IDS, "p3s-ox-dec");
    assert_true(report("onnxruntime fp32, 160-token prefill vs reference", pre, want, 0, N_IDS) <= 1e-4);
    assert_true(report("onnxruntime fp32, token-by-token decode vs reference", dec, want, 0, N_IDS) <= 1e-4);

    /* every layer dense: the reference's dense logits, and different from
     * the block-sparse ones once a query block is past the local blocks */
    const char *dense_dir = synth_dir("p3s-ox-dense", "--blocksparse 16,2,3,1");
    const char *dense = export(dense_dir, "fp32");
    float *dwant = tu_ref_logits("phi3small_reference.py", dense_dir, ids, N_IDS, V, "hf", NULL);
    float *dgot = tu_ort_logits_share(dense, ids_int, N_IDS, false, N_IDS, "p3s-ox-dense");
    assert_true(report("onnxruntime fp32, all layers dense vs reference", dgot, dwant, 0, N_IDS) <= 1e-4);
    double near = report("all-dense vs block-sparse export (local blocks only)", dgot, pre, 0, 32);
    double far = report("all-dense vs block-sparse export (blocks left out)", dgot, pre, 48, N_IDS);
    assert_true(near <= 1e-5);
    assert_true(far > 1e-2);
    /* no SparseAttention in the all-dense graph, in the other one */
    assert_true(graph_has(ox, "SparseAttention"));
    assert_false(graph_has(dense, "SparseAttention"));
    free(dgot);
    free(dwant);
    free(dec);
    free(pre);
    free(want);
}

static void test_int4_fp16(void **state) {
    (void)state;
    need_refs();
    const char *dir = synth_dir("p3s-ox4", "--blocksparse 16,2,3");
    const char *ox = export(dir, "int4");
    assert_true(graph_has(ox, "MatMulNBits"));
    assert_true(graph_has(ox, "GatherBlockQuantized"));
    float *want = tu_ref_logits("phi3small_reference.py", dir, ids, N_IDS, V, "hf", NULL);
    float *got = tu_ort_logits_share(ox, ids_int, N_IDS, false, N_IDS, "p3s-ox4");
    assert_true(report("onnxruntime int4 (block 32, accuracy level 4) vs reference", got, want, 0, N_IDS) <= 0.1);
    free(got);
    got = tu_ort_logits_share(export(dir, "fp16"), ids_int, N_IDS, false, N_IDS, "p3s-ox16");
    /* synth's bf16 weights are exact in fp16, so fp16 is as close as fp32 */
    assert_true(report("onnxruntime fp16 weights vs reference", got, want, 0, N_IDS) <= 1e-4);
    free(got);
    free(want);
}

/* The 128k variant's LongRoPE: the If picks the short caches (short_mscale
 * or 1) while the sequence fits the original context and the long ones
 * (long_mscale or sqrt(1 + ln(max/orig)/ln(orig))) past it; each prefill
 * equals the reference's forward with those factors. */
static void test_longrope(void **state) {
    (void)state;
    need_refs();
    const char *dir = synth_dir("p3s-ox-long", "--blocksparse 16,2,3 --ctx 512 --ctx-orig 64");
    const char *ox = export(dir, "fp32");
    float *want = tu_ref_logits("phi3small_reference.py", dir, ids, 100, V, "long", NULL);
    float *got = tu_ort_logits_share(ox, ids_int, 100, false, 128, "p3s-ox-long");
    assert_true(report("LongRoPE (orig 64): 100-token prefill vs reference's long factors", got, want, 0, 100) <= 1e-4);
    free(got);
    free(want);
    want = tu_ref_logits("phi3small_reference.py", dir, ids, 40, V, "short", NULL);
    got = tu_ort_logits_share(ox, ids_int, 40, false, 128, "p3s-ox-short");
    assert_true(report("LongRoPE (orig 64): 40-token prefill vs reference's short factors", got, want, 0, 40) <= 1e-4);
    free(got);
    free(want);
}

static void block256(cJSON *c) {
    cJSON_ReplaceItemInObject(c, "blocksparse_block_size", cJSON_CreateNumber(256));
}

static void test_refused(void **state) {
    (void)state;
    const char *dir = synth_dir("p3s-ox-bad", "--blocksparse 16,2,3");
    char cfg[4300], out[4300];
    snprintf(out, sizeof out, "%s.onnx-out", dir);
    tu_refused("ONNX --ratio", "--ratio", out, "'%s' convert '%s' --format onnx --ratio 0.5 -o '%s' -q", tu_bin(), dir, out);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    tu_edit_json(cfg, block256);
    tu_refused("ONNX block size 256", "blocksparse_block_size 256", out, "'%s' convert '%s' --format onnx -o '%s' -q",
               tu_bin(), dir, out);
}

static int setup(void **state) {
    (void)state;
    tu_random_ids(ids, N_IDS, 2024, V);
    for (int i = 0; i < N_IDS; i++) ids_int[i] = ids[i];
    return 0;
}

TU_MAIN(setup, NULL, test_refused, test_fp32_matches_reference, test_int4_fp16, test_longrope)
