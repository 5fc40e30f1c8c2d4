/* test_inspect.c — `phiq inspect` on files we did not write: the fixture's
 * safetensors (19.6M BF16 parameters per its README), llama.cpp's own
 * vocab-only GGUF, a GGUF written by llama-quantize, and an HF directory;
 * plus the error path. */
#include "testutil.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cJSON *inspect_json(const char *path) {
    char *out = NULL, *err = NULL;
    int rc = tu_run(&out, &err, "'%s' inspect '%s' --json", tu_bin(), path);
    if (rc) fprintf(stderr, "inspect %s: %s", path, err);
    assert_int_equal(rc, 0);
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    free(out);
    free(err);
    return j;
}

static void test_safetensors(void **s) {
    (void)s;
    cJSON *j = inspect_json(tu_shared_path("fixtures/tiny-phi3-kjv/model.safetensors"));
    assert_string_equal(cJSON_GetObjectItem(j, "format")->valuestring, "safetensors");
    assert_int_equal((int)tu_json_num(j, "n_tensors"), 27);
    /* README: 19.6M parameters, BF16 */
    assert_true(fabs(tu_json_num(j, "n_elements") - 19.6e6) < 0.05e6);
    assert_true(fabs(tu_json_num(j, "bits_per_weight") - 16.0) < 1e-9);
    const cJSON *t;
    int found = 0;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "tensors")) {
        if (strcmp(cJSON_GetObjectItem(t, "name")->valuestring, "model.layers.0.self_attn.qkv_proj.weight")) continue;
        const cJSON *sh = cJSON_GetObjectItem(t, "shape");
        assert_int_equal(cJSON_GetArraySize(sh), 2);
        assert_int_equal(cJSON_GetArrayItem(sh, 0)->valueint, 512); /* 4*64 + 2*2*64 */
        assert_int_equal(cJSON_GetArrayItem(sh, 1)->valueint, 256);
        assert_string_equal(cJSON_GetObjectItem(t, "dtype")->valuestring, "BF16");
        found = 1;
    }
    assert_true(found);
    cJSON_Delete(j);
}

static void test_hf_dir(void **s) {
    (void)s;
    cJSON *j = inspect_json(tu_shared_path("fixtures/tiny-phi3-kjv"));
    const cJSON *h = cJSON_GetObjectItem(j, "hparams");
    assert_non_null(h);
    /* config.json: hidden 256, 4 layers, 4/2 heads, partial rotary 0.75 of 64 */
    assert_int_equal((int)tu_json_num(h, "n_embd"), 256);
    assert_int_equal((int)tu_json_num(h, "n_layer"), 4);
    assert_int_equal((int)tu_json_num(h, "n_head_kv"), 2);
    assert_int_equal((int)tu_json_num(h, "n_rot"), 48);
    assert_string_equal(cJSON_GetObjectItem(j, "architecture")->valuestring, "Phi3ForCausalLM");
    cJSON_Delete(j);
    char *out = NULL;
    assert_int_equal(tu_run(&out, NULL, "'%s' inspect '%s'", tu_bin(), tu_shared_path("fixtures/tiny-phi3-kjv")), 0);
    assert_non_null(strstr(out, "model.layers.3.mlp.gate_up_proj.weight"));
    free(out);
}

static void test_llamacpp_vocab_gguf(void **s) {
    (void)s;
    cJSON *j = inspect_json(tu_shared_path("fixtures/vocab/ggml-vocab-phi-3.gguf"));
    assert_string_equal(cJSON_GetObjectItem(j, "format")->valuestring, "gguf");
    assert_string_equal(cJSON_GetObjectItem(j, "architecture")->valuestring, "phi3");
    const cJSON *m = cJSON_GetObjectItem(j, "metadata");
    assert_int_equal((int)tu_json_num(m, "phi3.embedding_length"), 3072);
    assert_int_equal((int)tu_json_num(cJSON_GetObjectItem(m, "tokenizer.ggml.tokens"), "n"), 32064);
    assert_string_equal(cJSON_GetObjectItem(m, "tokenizer.ggml.model")->valuestring, "llama");
    assert_int_equal((int)tu_json_num(j, "n_tensors"), 0);
    cJSON_Delete(j);
}

static void test_llama_quantize_output(void **s) {
    (void)s;
    const char *ref = tu_require_llama_ref();
    const char *f32 = tu_fixture_gguf("f32"), *q8 = tu_tmp_keep("i-q8.gguf");
    assert_int_equal(tu_run(NULL, NULL, "'%s' quantize '%s' '%s' Q8_0 >/dev/null 2>&1", ref, f32, q8), 0);
    cJSON *j = inspect_json(q8);
    /* Q8_0: 34 bytes per 32 weights = 8.5 bits; the F32 norms/factors add a little */
    double bpw = tu_json_num(j, "bits_per_weight");
    fprintf(stderr, "[inspect] llama-quantize Q8_0 file: %.4f bits/weight\n", bpw);
    assert_true(bpw > 8.5 && bpw < 8.6);
    assert_int_equal((int)tu_json_num(j, "n_tensors"), 29);
    assert_true(fabs(tu_json_num(j, "n_elements") - 19564800 - 48) < 1); /* + 2 x 24 rope factors */
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "tensors")) {
        const char *name = cJSON_GetObjectItem(t, "name")->valuestring;
        const char *type = cJSON_GetObjectItem(t, "type")->valuestring;
        if (!strcmp(name, "blk.0.attn_qkv.weight")) assert_string_equal(type, "Q8_0");
        if (!strcmp(name, "blk.0.attn_norm.weight")) assert_string_equal(type, "F32");
    }
    cJSON_Delete(j);
}

static void test_errors(void **s) {
    (void)s;
    tu_refused_exit(1, "inspect a Markdown file", "README.md", NULL, "'%s' inspect '%s'", tu_bin(),
                    tu_shared_path("fixtures/README.md"));
    tu_refused_exit(1, "inspect a missing path", "nope", NULL, "'%s' inspect '%s'", tu_bin(), tu_tmp("nope"));
    assert_int_equal(tu_run(NULL, NULL, "'%s' inspect --help >/dev/null", tu_bin()), 0);
}

TU_MAIN(NULL, NULL, test_safetensors, test_hf_dir, test_llamacpp_vocab_gguf, test_llama_quantize_output, test_errors)
