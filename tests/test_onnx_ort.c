/* test_onnx_ort.c — exported ONNX models run in ONNX Runtime (npm
 * onnxruntime-node, CPU), the independent reference:
 *  - single-node MatMulNBits graphs with our packed weights (4/8 bits, sym/asym,
 *    block 16..256) against ORT's own f32 MatMul on our dequantized weights:
 *    ORT's kernel decides what our bytes mean;
 *  - the tiny-phi3-kjv fixture exported fp32/fp16 against its PyTorch logits,
 *    prefill and token-by-token through the KV cache;
 *  - int8/int4 top-1 agreement with fp32 over held-out KJV text (tokenized by
 *    llama-ref on llama.cpp's Phi-3 vocab, else the fixture's prompt ids);
 *  - refusals (bad block size, non-empty output dir) write nothing;
 *  - `phiq synth` Phi-3.5-mini- (LongRoPE) and Phi-4-mini-shaped (tied,
 *    partial rotary, 24/8-style GQA) checkpoints load and run, when synth exists;
 *  - the LongRoPE long branch (a sequence past original_max_position_embeddings:
 *    the If picks the long-factor caches) and the short one, and sliding-window
 *    attention, against tests/ref/hf_reference.py (numpy, Hugging Face's code);
 *  - PhiMoE is refused in one line (ORT GenAI's MoE operator is CUDA-only).
 * Skips (77) when npm/network cannot provide onnxruntime-node. */
#include "testutil.h"

#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/common.h"
#include "onnx/matmulnbits_quant.h"
#include "onnx/onnx_export.h"
#include "onnx/onnx_graph.h"
#include "testutil_ort.h"

#define KJV "fixtures/tiny-phi3-kjv"
#define KJV_VOCAB 32064

static int g_sanitized;

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static double top1_agree(const float *a, const float *b, int n, int vocab) {
    int agree = 0;
    for (int i = 0; i < n; i++) agree += argmax(a + (size_t)i * vocab, vocab) == argmax(b + (size_t)i * vocab, vocab);
    return (double)agree / n;
}

/* ---- single-node MatMulNBits vs f32 MatMul on the dequantized weights ---------- */

/* Writes graph g as tmp/name (its path into model, 512 bytes) and frees it. */
static void write_model(phiq_og *g, const char *name, char *model) {
    snprintf(model, 512, "%s", tu_tmp(name));
    FILE *f = fopen(model, "wb");
    assert_non_null(f);
    assert_int_equal(phiq_og_write_model(g, f, 10, 21, 1, "phiq-test", model), 0);
    fclose(f);
    phiq_og_free(g);
}

/* w [N][K] quantized to MatMulNBits (layout *l; blocks *b, scales *s, zero
 * points *z, malloc'd) and dequantized back into dq. */
static void mnb_quant(int bits, int bs, bool sym, int N, int K, const float *w, phiq_mnb_layout *l, uint8_t **b,
                      float **s, uint8_t **z, float *dq) {
    assert_int_equal(phiq_mnb_layout_init(l, bits, bs, sym, N, K, "w"), 0);
    *b = malloc((size_t)(N * l->kb * l->blob));
    *z = malloc((size_t)(N * l->zp_row));
    *s = malloc(sizeof(float) * N * l->kb);
    phiq_mnb_quantize_rows(l, w, N, *b, *s, sym ? NULL : *z);
    phiq_mnb_dequantize_rows(l, *b, *s, sym ? NULL : *z, N, dq);
}

static void mnb_case(int bits, int bs, bool sym, int acc, int K) {
    const int M = 3, N = 24;
    float *w = malloc(sizeof(float) * N * K), *a = malloc(sizeof(float) * M * K);
    float *dq = malloc(sizeof(float) * N * K), *dqt = malloc(sizeof(float) * N * K);
    srand((unsigned)(bits * 1000 + bs + sym + K));
    for (int i = 0; i < N * K; i++) w[i] = ((float)rand() / RAND_MAX - 0.5f) * (i % 7 == 0 ? 3.0f : 1.0f);
    for (int i = 0; i < M * K; i++) a[i] = (float)rand() / RAND_MAX - 0.5f;
    phiq_mnb_layout l;
    uint8_t *b, *z;
    float *s;
    mnb_quant(bits, bs, sym, N, K, w, &l, &b, &s, &z, dq);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) dqt[k * N + n] = dq[n * K + k];

    phiq_og g;
    assert_int_equal(phiq_og_init(&g, "mnb", NULL), 0);
    int64_t ad[2] = {M, K}, bd[3] = {N, l.kb, l.blob}, sd[2] = {N, l.kb}, zd[1] = {N * l.zp_row}, wd[2] = {K, N};
    int64_t yd[2] = {M, N};
    phiq_og_input(&g, "A", PHIQ_OG_FLOAT, 2, NULL, ad);
    phiq_og_init_inline(&g, "B", PHIQ_OG_UINT8, bd, 3, b, (size_t)(N * l.kb * l.blob));
    phiq_og_init_inline(&g, "S", PHIQ_OG_FLOAT, sd, 2, s, sizeof(float) * N * l.kb);
    if (!sym) phiq_og_init_inline(&g, "Z", PHIQ_OG_UINT8, zd, 1, z, (size_t)(N * l.zp_row));
    phiq_og_init_inline(&g, "WdqT", PHIQ_OG_FLOAT, wd, 2, dqt, sizeof(float) * N * K);
    const char *ins_sym[] = {"A", "B", "S", NULL}, *ins_asym[] = {"A", "B", "S", "Z", NULL};
    const char *o1[] = {"Y", NULL}, *o2[] = {"Yref", NULL}, *i2[] = {"A", "WdqT", NULL};
    Onnx__NodeProto *n = phiq_og_node(&g, "MatMulNBits", "com.microsoft", "mnb", sym ? ins_sym : ins_asym, o1);
    phiq_og_attr_i(&g, n, "K", K);
    phiq_og_attr_i(&g, n, "N", N);
    phiq_og_attr_i(&g, n, "bits", bits);
    phiq_og_attr_i(&g, n, "block_size", bs);
    if (acc) phiq_og_attr_i(&g, n, "accuracy_level", acc);
    phiq_og_node(&g, "MatMul", "", "ref", i2, o2);
    phiq_og_output(&g, "Y", PHIQ_OG_FLOAT, 2, NULL, yd);
    phiq_og_output(&g, "Yref", PHIQ_OG_FLOAT, 2, NULL, yd);
    char model[512], af[512], prefix[512];
    write_model(&g, "mnb.onnx", model);
    snprintf(af, sizeof af, "%s", tu_tmp("mnb.A.bin"));
    snprintf(prefix, sizeof prefix, "%s", tu_tmp("mnb.out"));
    tu_write_file(af, a, sizeof(float) * M * K);
    char *err = NULL;
    int rc = tu_run(NULL, &err, "NODE_PATH='%s' node '%s/feed.js' '%s' '%s' 'A=%s:f32:%dx%d'", tu_ort_node_path(),
                    tu_ort_scripts(), model, prefix, af, M, K);
    if (rc) fail_msg("feed.js failed (bits %d bs %d sym %d): %s", bits, bs, sym, err ? err : "");
    free(err);
    char yf[600], rf[600];
    snprintf(yf, sizeof yf, "%s.Y.f32", prefix);
    snprintf(rf, sizeof rf, "%s.Yref.f32", prefix);
    size_t ny, nr;
    float *y = tu_read_f32(yf, &ny), *yr = tu_read_f32(rf, &nr);
    assert_int_equal(ny, (size_t)(M * N));
    assert_int_equal(nr, (size_t)(M * N));
    double md = tu_max_abs_diff(y, yr, ny), range = tu_range(yr, nr);
    /* fp32 path: only summation order differs; int8-activation path (acc 4)
     * adds activation quantization noise. */
    double tol = acc == 4 ? 0.03 * range : 1e-5 * range + 1e-6;
    if (md > tol) fail_msg("MatMulNBits bits %d bs %d %s acc %d: ORT vs dequantized MatMul max diff %g (range %g)",
                           bits, bs, sym ? "sym" : "asym", acc, md, range);
    /* and the dequantized weights are close to the originals (a quantizer that
     * packs consistently wrong bytes would still agree above) */
    double wmd = tu_max_abs_diff(dq, w, (size_t)(N * K)), wr = tu_range(w, (size_t)(N * K));
    assert_true(wmd <= wr / ((1 << bits) - 1) * 1.01);
    free(y);
    free(yr);
    free(w);
    free(a);
    free(dq);
    free(dqt);
    free(b);
    free(z);
    free(s);
}

static void test_matmulnbits_single_node(void **st) {
    (void)st;
    for (int bits = 4; bits <= 8; bits += 4)
        for (int sym = 1; sym >= 0; sym--)
            for (int bs = 16; bs <= 256; bs *= 2) {
                if (g_sanitized && bs != 32 && bs != 256) continue;
                /* K = 3 blocks: odd block count exercises zero-point row padding */
                mnb_case(bits, bs, sym, 0, 3 * bs);
            }
    mnb_case(4, 32, true, 4, 256);
    mnb_case(8, 64, false, 4, 256);
}


/* GatherBlockQuantized (tied 4-bit embedding; the 8-bit embedding of --ratio)
 * on our MatMulNBits bytes returns exactly our dequantized rows. */
static void gbq_case(int bits, bool sym, int bs) {
    const int N = 40, K = 3 * bs, M = 5;
    float *w = malloc(sizeof(float) * N * K), *dq = malloc(sizeof(float) * N * K);
    srand((unsigned)(bits * 1000 + bs + sym));
    for (int i = 0; i < N * K; i++) w[i] = (float)rand() / RAND_MAX - 0.5f;
    phiq_mnb_layout l;
    uint8_t *b, *z;
    float *s;
    mnb_quant(bits, bs, sym, N, K, w, &l, &b, &s, &z, dq);
    phiq_og g;
    assert_int_equal(phiq_og_init(&g, "gbq", NULL), 0);
    int64_t bd[2] = {N, K * bits / 8}, sd[2] = {N, l.kb}, zd[2] = {N, l.zp_row}, id[2] = {1, M}, od[3] = {1, M, K};
    phiq_og_input(&g, "ids", PHIQ_OG_INT64, 2, NULL, id);
    phiq_og_init_inline(&g, "B", PHIQ_OG_UINT8, bd, 2, b, (size_t)(N * K * bits / 8));
    phiq_og_init_inline(&g, "S", PHIQ_OG_FLOAT, sd, 2, s, sizeof(float) * N * l.kb);
    if (!sym) phiq_og_init_inline(&g, "Z", PHIQ_OG_UINT8, zd, 2, z, (size_t)(N * l.zp_row));
    const char *ins_sym[] = {"B", "ids", "S", NULL}, *ins_asym[] = {"B", "ids", "S", "Z", NULL}, *o[] = {"E", NULL};
    Onnx__NodeProto *n = phiq_og_node(&g, "GatherBlockQuantized", "com.microsoft", "gbq", sym ? ins_sym : ins_asym, o);
    phiq_og_attr_i(&g, n, "bits", bits);
    phiq_og_attr_i(&g, n, "block_size", bs);
    phiq_og_attr_i(&g, n, "gather_axis", 0);
    phiq_og_attr_i(&g, n, "quantize_axis", 1);
    phiq_og_output(&g, "E", PHIQ_OG_FLOAT, 3, NULL, od);
    char model[512], idf[512], prefix[512], ef[600];
    write_model(&g, "gbq.onnx", model);
    snprintf(idf, sizeof idf, "%s", tu_tmp("gbq.ids.bin"));
    snprintf(prefix, sizeof prefix, "%s", tu_tmp("gbq.out"));
    int64_t ids[5] = {0, 39, 7, 7, 22};
    tu_write_file(idf, ids, sizeof ids);
    char *err = NULL;
    if (tu_run(NULL, &err, "NODE_PATH='%s' node '%s/feed.js' '%s' '%s' 'ids=%s:i64:1x%d'", tu_ort_node_path(), tu_ort_scripts(),
               model, prefix, idf, M))
        fail_msg("feed.js GatherBlockQuantized failed: %s", err ? err : "");
    free(err);
    snprintf(ef, sizeof ef, "%s.E.f32", prefix);
    size_t ne;
    float *e = tu_read_f32(ef, &ne);
    assert_int_equal(ne, (size_t)(M * K));
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++)
            if (fabsf(e[m * K + k] - dq[ids[m] * K + k]) > 1e-6f)
                fail_msg("GatherBlockQuantized %d-bit %s bs %d row %lld col %d: ORT %g, ours %g", bits, sym ? "sym" : "asym", bs,
                         (long long)ids[m], k, e[m * K + k], dq[ids[m] * K + k]);
    free(e);
    free(w);
    free(dq);
    free(b);
    free(z);
    free(s);
}

static void test_gatherblockquantized_single_node(void **st) {
    (void)st;
    gbq_case(4, true, 32);
    gbq_case(4, false, 32);
    gbq_case(4, true, 128);
    gbq_case(8, false, 256);
    gbq_case(8, true, 64);
}

/* ---- the fixture ------------------------------------------------------------------ */

static void export_or_fail(const char *src, const char *out, phiq_onnx_type type, int bs, bool asym, int acc) {
    phiq_onnx_options o;
    phiq_onnx_options_default(&o);
    o.type = type;
    o.block_size = bs;
    o.asym = asym;
    o.accuracy_level = acc;
    o.quiet = true;
    o.n_threads = 2;
    if (phiq_onnx_export(src, out, &o) != 0) fail_msg("export %s -> %s: %s", src, out, phiq_error());
}


/* genai_config.json carries what ORT GenAI needs (doc §2) with the values of
 * the fixture's config.json / generation_config.json; tokenizer files copied. */
static void check_genai_config(const char *dir) {
    char p[700];
    snprintf(p, sizeof p, "%s/genai_config.json", dir);
    char *txt = tu_read_all(p, &(size_t){0});
    assert_non_null(txt);
    cJSON *j = cJSON_Parse(txt);
    assert_non_null(j);
    cJSON *m = cJSON_GetObjectItem(j, "model"), *d = cJSON_GetObjectItem(m, "decoder"), *s = cJSON_GetObjectItem(j, "search");
    assert_string_equal(cJSON_GetObjectItem(m, "type")->valuestring, "phi3");
    assert_int_equal(cJSON_GetObjectItem(m, "context_length")->valueint, 4096);
    assert_int_equal(cJSON_GetObjectItem(m, "vocab_size")->valueint, 32064);
    assert_int_equal(cJSON_GetObjectItem(m, "bos_token_id")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(m, "pad_token_id")->valueint, 32000);
    cJSON *eos = cJSON_GetObjectItem(m, "eos_token_id");
    assert_int_equal(cJSON_GetArraySize(eos), 3);
    assert_int_equal(cJSON_GetArrayItem(eos, 0)->valueint, 32000);
    assert_int_equal(cJSON_GetArrayItem(eos, 1)->valueint, 32001);
    assert_int_equal(cJSON_GetArrayItem(eos, 2)->valueint, 32007);
    assert_string_equal(cJSON_GetObjectItem(d, "filename")->valuestring, "model.onnx");
    assert_int_equal(cJSON_GetObjectItem(d, "head_size")->valueint, 64);
    assert_int_equal(cJSON_GetObjectItem(d, "hidden_size")->valueint, 256);
    assert_int_equal(cJSON_GetObjectItem(d, "num_attention_heads")->valueint, 4);
    assert_int_equal(cJSON_GetObjectItem(d, "num_key_value_heads")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(d, "num_hidden_layers")->valueint, 4);
    cJSON *in = cJSON_GetObjectItem(d, "inputs"), *out = cJSON_GetObjectItem(d, "outputs");
    assert_string_equal(cJSON_GetObjectItem(in, "past_key_names")->valuestring, "past_key_values.%d.key");
    assert_null(cJSON_GetObjectItem(in, "position_ids")); /* RoPE is inside GroupQueryAttention */
    assert_string_equal(cJSON_GetObjectItem(out, "present_value_names")->valuestring, "present.%d.value");
    assert_int_equal(cJSON_GetObjectItem(s, "max_length")->valueint, 4096);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(s, "past_present_share_buffer")));
    cJSON_Delete(j);
    free(txt);
    static const char *files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                  "model.onnx", "model.onnx.data"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        assert_true(phiq_file_exists(p));
    }
}

static void test_fixture_fp32_matches_pytorch(void **st) {
    (void)st;
    tu_prompt p[4];
    int np = tu_fixture_prompts(p, 4);
    assert_true(np >= 3);
    const char *dir = tu_tmp_keep("kjv-fp32");
    export_or_fail(tu_shared_path(KJV), dir, PHIQ_ONNX_FP32, 32, false, 0);
    check_genai_config(dir);
    for (int i = 0; i < np; i++) {
        char rp[64], tag[32];
        snprintf(rp, sizeof rp, KJV "/reference/logits-%d.f32", i);
        size_t nref;
        float *ref = tu_read_f32(tu_shared_path(rp), &nref);
        assert_int_equal(nref, (size_t)p[i].n * KJV_VOCAB);
        for (int step = 0; step < 2; step++) {
            if (step && i != 1) continue; /* one decode-path prompt is enough */
            snprintf(tag, sizeof tag, "kjv-fp32-%d-%d", i, step);
            float *l = tu_ort_logits(dir, p[i].ids, p[i].n, step, tag);
            double md = tu_max_abs_diff(l, ref, nref), range = tu_range(ref, nref);
            fprintf(stderr, "fixture fp32 prompt %d %s: max|diff| %.3g, range %.3g, rel %.3g, top1 %.3f\n", i,
                    step ? "step" : "prefill", md, range, md / range, top1_agree(l, ref, p[i].n, KJV_VOCAB));
            assert_true(md <= 1e-3 * range);
            free(l);
        }
        free(ref);
    }
    /* fp16 weights (Cast to fp32 in the graph): BF16 checkpoint values are
     * mostly exact in fp16, so the logits stay close. */
    const char *d16 = tu_tmp_keep("kjv-fp16");
    export_or_fail(tu_shared_path(KJV), d16, PHIQ_ONNX_FP16, 32, false, 0);
    size_t nref;
    float *ref = tu_read_f32(tu_shared_path(KJV "/reference/logits-0.f32"), &nref);
    float *l = tu_ort_logits(d16, p[0].ids, p[0].n, false, "kjv-fp16");
    double md = tu_max_abs_diff(l, ref, nref), range = tu_range(ref, nref);
    fprintf(stderr, "fixture fp16 prompt 0: max|diff| %.3g, rel %.3g\n", md, md / range);
    assert_true(md <= 1e-2 * range);
    free(l);
    free(ref);
}

static void test_fixture_quantized_top1(void **st) {
    (void)st;
    static int ids[768];
    int n = tu_heldout_ids(ids, g_sanitized ? 256 : 768);
    const char *d32 = tu_tmp_keep("kjv-fp32-q");
    export_or_fail(tu_shared_path(KJV), d32, PHIQ_ONNX_FP32, 32, false, 0);
    /* windows of 256 tokens (the model's training length) */
    int nw = n / 256 > 0 ? n / 256 : 1, wl = n / 256 > 0 ? 256 : n;
    float **ref = calloc((size_t)nw, sizeof *ref);
    for (int w = 0; w < nw; w++) {
        char tag[32];
        snprintf(tag, sizeof tag, "q-ref-%d", w);
        ref[w] = tu_ort_logits(d32, ids + w * wl, wl, false, tag);
    }
    struct {
        phiq_onnx_type t;
        int bs;
        bool asym;
        int acc;
        double min_top1;
        const char *name;
    } cases[] = {
        {PHIQ_ONNX_INT8, 32, false, 0, 0.97, "int8 sym bs32 acc0"},
        {PHIQ_ONNX_INT8, 128, true, 4, 0.95, "int8 asym bs128 acc4"},
        {PHIQ_ONNX_INT4, 32, false, 0, 0.90, "int4 sym bs32 acc0"},
        {PHIQ_ONNX_INT4, 32, false, 4, 0.90, "int4 sym bs32 acc4"},
        {PHIQ_ONNX_INT4, 32, true, 0, 0.90, "int4 asym bs32 acc0"},
        {PHIQ_ONNX_INT4, 128, false, 0, 0.90, "int4 sym bs128 acc0"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        if (g_sanitized && c != 0 && c != 2) continue;
        char dir[64];
        snprintf(dir, sizeof dir, "kjv-q%zu", c);
        const char *d = tu_tmp_keep(dir);
        export_or_fail(tu_shared_path(KJV), d, cases[c].t, cases[c].bs, cases[c].asym, cases[c].acc);
        double agree = 0, maxrel = 0;
        for (int w = 0; w < nw; w++) {
            char tag[32];
            snprintf(tag, sizeof tag, "q%zu-%d", c, w);
            float *l = tu_ort_logits(d, ids + w * wl, wl, false, tag);
            agree += top1_agree(l, ref[w], wl, KJV_VOCAB) * wl;
            double md = tu_max_abs_diff(l, ref[w], (size_t)wl * KJV_VOCAB) / tu_range(ref[w], (size_t)wl * KJV_VOCAB);
            if (md > maxrel) maxrel = md;
            free(l);
        }
        agree /= (double)(nw * wl);
        fprintf(stderr, "%-22s top-1 agreement with fp32 over %d held-out positions: %.4f (max|diff|/range %.3g)\n",
                cases[c].name, nw * wl, agree, maxrel);
        assert_true(agree >= cases[c].min_top1);
    }
    for (int w = 0; w < nw; w++) free(ref[w]);
    free(ref);
}

/* --calib: GPTQ inside the MatMulNBits blocks, calibrated on
 * kjv-calibration.txt only; onnxruntime runs both files on held-out windows
 * and the calibrated one must be closer to the fp32 export (KL divergence of
 * onnxruntime's own logits) at the same size. Under the sanitizers: 2
 * calibration chunks, one window, no quality bar. */
static void test_fixture_calibrated(void **st) {
    (void)st;
    static int ids[768];
    int n = tu_heldout_ids(ids, g_sanitized ? 256 : 768);
    int nw = n / 256 > 0 ? n / 256 : 1, wl = n / 256 > 0 ? 256 : n;
    const char *d32 = tu_tmp_keep("kjv-fp32-c"), *rtn = tu_tmp_keep("kjv-int4-rtn"), *cal = tu_tmp_keep("kjv-int4-calib");
    export_or_fail(tu_shared_path(KJV), d32, PHIQ_ONNX_FP32, 32, false, 0);
    export_or_fail(tu_shared_path(KJV), rtn, PHIQ_ONNX_INT4, 32, false, 4);
    phiq_onnx_options o;
    phiq_onnx_options_default(&o);
    o.type = PHIQ_ONNX_INT4;
    o.block_size = 32;
    o.quiet = true;
    o.n_threads = 2;
    o.calib = tu_shared_path("fixtures/text/kjv-calibration.txt");
    o.calib_chunks = g_sanitized ? 2 : 0;
    phiq_onnx_stats ost;
    if (phiq_onnx_export_ex(tu_shared_path(KJV), cal, &o, &ost) != 0) fail_msg("export --calib: %s", phiq_error());
    assert_int_equal(ost.n_gptq, 4 * 5 + 1); /* qkv, o, gate, up, down per layer, and lm_head */
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/model.onnx.data", rtn);
    snprintf(b, sizeof b, "%s/model.onnx.data", cal);
    struct stat sa, sb;
    assert_int_equal(stat(a, &sa), 0);
    assert_int_equal(stat(b, &sb), 0);
    assert_int_equal(sa.st_size, sb.st_size);
    double k_rtn = 0, k_cal = 0;
    for (int w = 0; w < nw; w++) {
        float *ref = tu_ort_logits(d32, ids + w * wl, wl, false, "c-ref");
        float *lr = tu_ort_logits(rtn, ids + w * wl, wl, false, "c-rtn");
        float *lc = tu_ort_logits(cal, ids + w * wl, wl, false, "c-cal");
        k_rtn += tu_mean_kld(lr, ref, wl, KJV_VOCAB) / nw;
        k_cal += tu_mean_kld(lc, ref, wl, KJV_VOCAB) / nw;
        free(ref);
        free(lr);
        free(lc);
    }
    fprintf(stderr, "int4 sym bs32, onnxruntime KLD from fp32 over %d held-out positions: RTN %.5f, --calib %.5f (%.2fx)\n",
            nw * wl, k_rtn, k_cal, k_cal / k_rtn);
    assert_true(k_rtn > 0 && k_cal > 0 && k_cal < 1);
    if (!g_sanitized) assert_true(k_cal <= 0.8 * k_rtn);
}

static bool have_synth(void) {
    char *out = NULL;
    int rc = tu_run(&out, NULL, "'%s' synth --help 2>&1", tu_bin());
    bool ok = rc == 0 && out && strstr(out, "--preset");
    free(out);
    return ok;
}

/* ---- refusals ----------------------------------------------------------------------- */

static void test_refusals_write_nothing(void **st) {
    (void)st;
    phiq_onnx_options o;
    phiq_onnx_options_default(&o);
    o.quiet = true;
    const char *out = tu_tmp_keep("refused");
    o.block_size = 48;
    assert_int_not_equal(phiq_onnx_export(tu_shared_path(KJV), out, &o), 0);
    assert_non_null(strstr(phiq_error(), "power of two"));
    assert_null(strchr(phiq_error(), '\n'));
    assert_false(phiq_dir_exists(out));
    /* a non-empty output directory is left alone */
    mkdir(out, 0755);
    char keep[600];
    snprintf(keep, sizeof keep, "%s/keep.txt", out);
    tu_write_file(keep, "x", 1);
    o.block_size = 32;
    assert_int_not_equal(phiq_onnx_export(tu_shared_path(KJV), out, &o), 0);
    assert_non_null(strstr(phiq_error(), "not empty"));
    assert_true(phiq_file_exists(keep));
    char model[600];
    snprintf(model, sizeof model, "%s/model.onnx", out);
    assert_false(phiq_file_exists(model));
    /* CLI: exit status 1 and a one-line message naming the problem */
    int rc;
    char *msg = NULL;
    rc = tu_run(NULL, &msg, "'%s' convert-onnx '%s' -o '%s' --block-size 512", tu_bin(), tu_shared_path(KJV),
                tu_tmp("cli-out2"));
    assert_int_equal(rc, 1);
    assert_int_equal(strchr(msg ? msg : "", '\n') - msg, (long)strlen(msg) - 1); /* one line */
    assert_false(phiq_dir_exists(tu_tmp("cli-out2")));
    assert_non_null(strstr(msg, "block-size"));
    free(msg);
    if (!have_synth()) return;
    /* unsupported architecture (Phi-2) and a block size not dividing K = 320 */
    const char *phi2 = tu_tmp_keep("synth-phi2"), *h320 = tu_tmp_keep("synth-h320");
    assert_int_equal(tu_run(NULL, NULL, "'%s' synth --preset phi-2 --layers 1 --hidden 320 --heads 4 --kv-heads 4 "
                            "--ff 512 --vocab 1024 --tokenizer none -o '%s' --quiet", tu_bin(), phi2), 0);
    assert_int_equal(tu_run(NULL, NULL, "'%s' synth --layers 1 --hidden 320 --heads 5 --kv-heads 5 --ff 640 "
                            "--vocab 1024 --tokenizer none -o '%s' --quiet", tu_bin(), h320), 0);
    const char *o2 = tu_tmp_keep("refused2");
    o.block_size = 32;
    assert_int_not_equal(phiq_onnx_export(phi2, o2, &o), 0);
    assert_non_null(strstr(phiq_error(), "PhiForCausalLM is not supported"));
    assert_false(phiq_dir_exists(o2));
    o.block_size = 256;
    assert_int_not_equal(phiq_onnx_export(h320, o2, &o), 0);
    assert_non_null(strstr(phiq_error(), "block size 256 does not divide the hidden size K = 320"));
    assert_false(phiq_dir_exists(o2));
    o.block_size = 64;
    assert_int_equal(phiq_onnx_export(h320, o2, &o), 0);
    assert_true(phiq_dir_exists(o2));
}

/* ---- synthesized Phi-3.5-mini / Phi-4-mini shapes -------------------------------------- */


static void synth_case(const char *name, const char *args, int seq_short, int seq_long, int orig) {
    const char *src = tu_tmp_keep(name);
    char *err = NULL;
    if (tu_run(NULL, &err, "'%s' synth %s -o '%s' --quiet", tu_bin(), args, src) != 0)
        fail_msg("phiq synth %s failed: %s", args, err ? err : "");
    free(err);
    char outn[96];
    snprintf(outn, sizeof outn, "%s-fp32", name);
    const char *d32 = tu_tmp_keep(outn);
    export_or_fail(src, d32, PHIQ_ONNX_FP32, 32, false, 0);
    snprintf(outn, sizeof outn, "%s-int4", name);
    const char *d4 = tu_tmp_keep(outn);
    export_or_fail(src, d4, PHIQ_ONNX_INT4, 32, false, 4);
    int ids[600] = {0};
    srand(3);
    for (int i = 0; i < 600; i++) ids[i] = 1 + rand() % 3000;
    /* prefill == token-by-token through the KV cache (short caches) */
    char tag[96];
    snprintf(tag, sizeof tag, "%s-p", name);
    float *a = tu_ort_logits(d32, ids, seq_short, false, tag);
    snprintf(tag, sizeof tag, "%s-s", name);
    float *b = tu_ort_logits(d32, ids, seq_short, true, tag);
    char cfgp[600];
    snprintf(cfgp, sizeof cfgp, "%s/genai_config.json", d32);
    char *cfg = tu_read_all(cfgp, &(size_t){0});
    char *vs = strstr(cfg, "\"vocab_size\"");
    assert_non_null(vs);
    int vocab = atoi(strchr(vs, ':') + 1);
    free(cfg);
    size_t n = (size_t)seq_short * vocab;
    double md = tu_max_abs_diff(a, b, n), range = tu_range(a, n);
    fprintf(stderr, "%s: fp32 prefill vs decode max|diff| %.3g (range %.3g)\n", name, md, range);
    assert_true(md <= 1e-4 * range);
    snprintf(tag, sizeof tag, "%s-q", name);
    float *q = tu_ort_logits(d4, ids, seq_short, false, tag);
    fprintf(stderr, "%s: int4 acc4 vs fp32 top-1 %.3f over %d random-id positions\n", name,
            top1_agree(q, a, seq_short, vocab), seq_short);
    free(q);
    if (orig > 0 && seq_long > orig) {
        /* LongRoPE: past the original context the If switches to the long
         * factors, so the logits of the first positions change. */
        snprintf(tag, sizeof tag, "%s-l", name);
        float *l = tu_ort_logits(d32, ids, seq_long, false, tag);
        double d = tu_max_abs_diff(l, a, n);
        fprintf(stderr, "%s: long-context prefill changes early logits by %.3g\n", name, d);
        assert_true(d > 1e-3 * range);
        free(l);
    }
    free(a);
    free(b);
}

/* Logits of the exported fp32 graph against the numpy Hugging Face forward:
 * positions 0..n-1 of one prefill. */
static void vs_hf_reference(const char *what, const char *gguf, const char *onnx_dir, int n, const char *mode) {
    int ids[64];
    srand(5);
    for (int i = 0; i < n; i++) ids[i] = 1 + rand() % 30000;
    char tag[96];
    snprintf(tag, sizeof tag, "hfref-%s-%d", mode, n);
    float *l = tu_ort_logits(onnx_dir, ids, n, false, tag);
    float *ref = tu_hf_reference(gguf, ids, n, KJV_VOCAB, mode, NULL);
    double w = tu_worst_rel(l, ref, 0, n, KJV_VOCAB);
    fprintf(stderr, "%s: ORT fp32 vs HF reference (%s, %d tokens): max|diff|/range %.3g\n", what, mode, n, w);
    assert_true(w <= 1e-4);
    free(l);
    free(ref);
}

static void test_long_context_vs_reference(void **st) {
    (void)st;
    if (!have_synth()) skip();
    tu_require_numpy();
    /* LongRoPE with original context 32 of 256, partial rotary 0.75: 24
     * tokens use the short caches, 48 the long ones (Hugging Face: the long
     * factors for every position of a sequence longer than 32) */
    const char *g = tu_synth_gguf("onnx-longrope", "--arch phi3 --hidden 256 --layers 2 --heads 4 --kv-heads 2 --ff 256 "
                                  "--vocab 32064 --ctx 256 --ctx-orig 32 --partial-rotary 0.75 --sliding-window 0 "
                                  "--seed 9", "f32");
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", (int)(strlen(g) - 5), g);
    const char *o = tu_tmp_keep("onnx-longrope-fp32");
    export_or_fail(dir, o, PHIQ_ONNX_FP32, 32, false, 0);
    vs_hf_reference("LongRoPE", g, o, 24, "short");
    vs_hf_reference("LongRoPE", g, o, 48, "long");
    /* sliding window 16 over 48 tokens (Hugging Face: key j visible to query
     * i iff i - 16 < j <= i) */
    g = tu_synth_gguf("onnx-swa", "--arch phi3 --hidden 128 --layers 2 --heads 4 --kv-heads 2 --ff 256 --vocab 32064 "
                      "--ctx 256 --ctx-orig 256 --sliding-window 16 --seed 9", "f32");
    snprintf(dir, sizeof dir, "%.*s", (int)(strlen(g) - 5), g);
    o = tu_tmp_keep("onnx-swa-fp32");
    export_or_fail(dir, o, PHIQ_ONNX_FP32, 32, false, 0);
    vs_hf_reference("sliding window 16", g, o, 48, "hf");
    /* PhiMoE: refused in one line, nothing written */
    const char *moe = tu_tmp_keep("onnx-moe");
    char *err = NULL;
    if (tu_run(NULL, &err, "'%s' synth --arch phimoe --hidden 64 --layers 1 --heads 4 --ff 64 --vocab 32064 "
               "--tokenizer none -q -o '%s'", tu_bin(), moe) != 0)
        fail_msg("synth phimoe: %s", err);
    free(err);
    const char *mo = tu_tmp_keep("onnx-moe-out");
    phiq_onnx_options op;
    phiq_onnx_options_default(&op);
    op.quiet = true;
    assert_true(phiq_onnx_export(moe, mo, &op) != 0);
    const char *msg = phiq_error();
    fprintf(stderr, "PhiMoE export refused: %s\n", msg);
    assert_non_null(strstr(msg, "CUDA-only"));
    assert_null(strchr(msg, '\n'));
    assert_false(phiq_dir_exists(mo));
}

static void test_synth_shapes(void **st) {
    (void)st;
    if (!have_synth()) skip();
    /* Phi-3.5-mini shape shrunk: LongRoPE (ctx 512 > orig 64), 32 heads of 96
     * dims -> 8 heads of 96 (rotary 96 -> cos width 48), untied. */
    synth_case("phi35", "--preset phi-3.5-mini --layers 2 --hidden 768 --heads 8 --kv-heads 8 --ff 1024 "
               "--vocab 4096 --ctx 512 --ctx-orig 64 --tokenizer none",
               24, 80, 64);
    /* Phi-4-mini shape shrunk: tied embeddings, partial rotary 0.75 of head 128
     * (cos width 48), 3:1 GQA. */
    synth_case("phi4mini", "--preset phi-4-mini --layers 2 --hidden 384 --heads 3 --kv-heads 1 --ff 512 "
               "--vocab 4096 --ctx 512 --ctx-orig 64 --tokenizer none",
               24, 0, 0);
    /* Phi-4 (14B) shape shrunk: plain RoPE (theta 250000) as initializers,
     * head 128. Phi-3-mini-4k: sliding window 2047 -> local_window_size. */
    synth_case("phi4", "--preset phi-4 --layers 2 --hidden 256 --heads 2 --kv-heads 1 --ff 512 --vocab 4096 "
               "--tokenizer none",
               24, 0, 0);
    synth_case("phi3mini4k", "--preset phi-3-mini-4k --layers 2 --hidden 384 --heads 4 --kv-heads 4 --ff 512 "
               "--vocab 4096 --tokenizer none",
               24, 0, 0);
}

int main(void) {
    g_sanitized = getenv("PHIQ_SANITIZED") != NULL;
    if (tu_ort_setup() != 0) return tu_finish(0); /* 77: skipped, saying why */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmulnbits_single_node),
        cmocka_unit_test(test_gatherblockquantized_single_node),
        cmocka_unit_test(test_fixture_fp32_matches_pytorch),
        cmocka_unit_test(test_fixture_quantized_top1),
        cmocka_unit_test(test_fixture_calibrated),
        cmocka_unit_test(test_refusals_write_nothing),
        cmocka_unit_test(test_synth_shapes),
        cmocka_unit_test(test_long_context_vs_reference),
    };
    return tu_run_group(tests, NULL, NULL);
}
