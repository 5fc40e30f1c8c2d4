/* test_hf.c — Hugging Face checkpoint directories: the tiny-phi3-kjv fixture's
 * hyper-parameters against the facts in its config.json / generation_config
 * (and the LongRoPE attention-factor formula of the reference doc), and
 * broken directories built from it: each must fail with one line naming the
 * directory or file and the problem. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "formats/hf.h"

static void test_fixture_hparams(void **state) {
    (void)state;
    const char *dir = tu_shared_path("fixtures/tiny-phi3-kjv");
    phiq_hf *hf = phiq_hf_open(dir);
    if (!hf) fail_msg("%s", phiq_error());
    const phiq_hparams *hp = phiq_hf_hparams(hf);
    assert_string_equal(phiq_hf_architecture(hf), "Phi3ForCausalLM");
    assert_int_equal(hp->arch, PHIQ_ARCH_PHI3);
    assert_int_equal(hp->n_vocab, 32064);
    assert_int_equal(hp->n_embd, 256);
    assert_int_equal(hp->n_layer, 4);
    assert_int_equal(hp->n_head, 4);
    assert_int_equal(hp->n_head_kv, 2);
    assert_int_equal(hp->head_dim, 64);
    assert_int_equal(hp->n_ff, 768);
    assert_int_equal(hp->n_rot, 48); /* int(0.75 * 256) / 4 */
    assert_int_equal(hp->n_ctx_train, 4096);
    assert_int_equal(hp->n_ctx_orig, 1024);
    assert_true(hp->rope_theta == 10000.0f);
    assert_true(hp->norm_eps == 1e-5f);
    assert_int_equal(hp->sliding_window, 0);
    assert_false(hp->tied_embeddings);
    assert_false(hp->attn_bias);
    assert_int_equal(hp->n_rope_factors, 24);
    assert_true(hp->rope_short[0] == 1.0f);
    assert_true(hp->rope_short[1] == 1.0217f);
    assert_true(hp->rope_short[23] == 1.5f);
    assert_true(hp->rope_long[2] == 1.0529f);
    assert_true(hp->rope_long[23] == 8.0f);
    double af = sqrt(1.0 + log(4.0) / log(1024.0));
    assert_true(fabs(hp->rope_attn_factor - af) < 1e-6);
    assert_int_equal(hp->bos_id, 1);
    assert_int_equal(hp->pad_id, 32000);
    assert_int_equal(hp->n_eos, 3);
    assert_int_equal(hp->eos_ids[0], 32000);
    assert_int_equal(hp->eos_ids[1], 32001);
    assert_int_equal(hp->eos_ids[2], 32007);
    assert_int_equal(phiq_hf_n_tensors(hf), 27);
    assert_int_equal(phiq_hf_total_bytes(hf), 39132568 - 8 - 2960); /* file size - header */
    assert_non_null(phiq_hf_find(hf, "model.layers.3.mlp.down_proj.weight"));
    assert_null(phiq_hf_find(hf, "model.layers.4.mlp.down_proj.weight"));
    assert_non_null(strstr(phiq_hf_tokenizer_json(hf), "tokenizer.json"));
    assert_non_null(strstr(phiq_hf_tokenizer_config_json(hf), "tokenizer_config.json"));
    assert_non_null(strstr(phiq_hf_generation_config_json(hf), "generation_config.json"));
    assert_string_equal(phiq_arch_name(hp->arch), "phi3");
    phiq_hf_close(hf);
}

/* A directory with the fixture's weights (symlinked) and an edited config. */
static int case_no;
static const char *make_case(cJSON *cfg, bool with_gen) {
    char name[32];
    snprintf(name, sizeof name, "case%d", case_no++);
    const char *dir = tu_tmp(name);
    static char keep[8][512];
    char *d = keep[case_no % 8];
    snprintf(d, 512, "%s", dir);
    assert_int_equal(tu_run(NULL, NULL, "mkdir -p '%s' && ln -sf '%s' '%s/model.safetensors'", d,
                            tu_shared_path("fixtures/tiny-phi3-kjv/model.safetensors"), d), 0);
    if (with_gen)
        assert_int_equal(tu_run(NULL, NULL, "cp '%s' '%s/'", tu_shared_path("fixtures/tiny-phi3-kjv/generation_config.json"), d), 0);
    if (cfg) {
        char *s = cJSON_Print(cfg);
        char *p = phiq_path_join(d, "config.json");
        FILE *f = fopen(p, "w");
        fputs(s, f);
        fclose(f);
        free(p);
        free(s);
        cJSON_Delete(cfg);
    }
    return d;
}

static cJSON *fixture_config(void) {
    char *txt;
    assert_int_equal(phiq_read_file(tu_shared_path("fixtures/tiny-phi3-kjv/config.json"), &txt, NULL), 0);
    cJSON *c = cJSON_Parse(txt);
    free(txt);
    assert_non_null(c);
    return c;
}

static void expect_fail(const char *dir, const char *name_in_msg, const char *want) {
    phiq_hf *hf = phiq_hf_open(dir);
    if (hf) {
        phiq_hf_close(hf);
        fail_msg("%s opened but should fail (%s)", dir, want);
    }
    const char *e = phiq_error();
    if (!strstr(e, name_in_msg) || strchr(e, '\n') || !strstr(e, want))
        fail_msg("error for %s: '%s' (want '%s')", dir, e, want);
}

static void set_num(cJSON *c, const char *k, double v) { cJSON_ReplaceItemInObject(c, k, cJSON_CreateNumber(v)); }

/* The fixture with config key k set to v fails to open: the error names where and says want. */
static void bad_num(const char *k, double v, const char *where, const char *want) {
    cJSON *c = fixture_config();
    set_num(c, k, v);
    expect_fail(make_case(c, true), where, want);
}

static void test_bad_configs(void **state) {
    (void)state;
    cJSON *c = fixture_config();
    cJSON_ReplaceItemInArray(cJSON_GetObjectItem(c, "architectures"), 0, cJSON_CreateString("LlamaForCausalLM"));
    const char *d = make_case(c, true);
    char want[600];
    snprintf(want, sizeof want, "%s/config.json: unsupported architecture 'LlamaForCausalLM' (phiq handles Phi3ForCausalLM, Phi3SmallForCausalLM, PhiForCausalLM, PhiMoEForCausalLM)", d);
    phiq_hf *hf = phiq_hf_open(d);
    assert_null(hf);
    assert_string_equal(phiq_error(), want);

    d = make_case(NULL, true);
    assert_int_equal(tu_run(NULL, NULL, "printf '{\"architectures\": [\"Phi3ForCausalLM\"], ' > '%s/config.json'", d), 0);
    expect_fail(d, "config.json", "invalid JSON");

    d = make_case(NULL, true);
    expect_fail(d, d, "no config.json");

    c = fixture_config();
    cJSON *rs = cJSON_GetObjectItem(c, "rope_scaling");
    cJSON_DeleteItemFromArray(cJSON_GetObjectItem(rs, "long_factor"), 0);
    d = make_case(c, true);
    expect_fail(d, "config.json", "long_factor has 23 entries, expected 24");

    bad_num("num_key_value_heads", 3, "config.json", "not a multiple of num_key_value_heads");
    bad_num("hidden_size", -256, "config.json", "hidden_size");

    c = fixture_config();
    cJSON_DeleteItemFromObject(c, "vocab_size");
    d = make_case(c, true);
    expect_fail(d, "config.json", "missing 'vocab_size'");

    /* declared layers beyond the weights */
    c = fixture_config();
    set_num(c, "num_hidden_layers", 5);
    d = make_case(c, true);
    snprintf(want, sizeof want, "%s: tensor 'model.layers.4.input_layernorm.weight' missing (config declares 5 layers)", d);
    assert_null(phiq_hf_open(d));
    assert_string_equal(phiq_error(), want);

    /* dims that do not match the stored shapes */
    bad_num("intermediate_size", 1024, "model.safetensors", "config implies [2048, 256]");
    bad_num("vocab_size", 32000, "embed_tokens", "[32000, 256]");

    /* no weights */
    c = fixture_config();
    d = make_case(c, true);
    assert_int_equal(tu_run(NULL, NULL, "rm '%s/model.safetensors'", d), 0);
    expect_fail(d, d, "neither model.safetensors");

    /* broken generation_config */
    c = fixture_config();
    d = make_case(c, false);
    assert_int_equal(tu_run(NULL, NULL, "echo '{\"eos_token_id\": \"x\"}' > '%s/generation_config.json'", d), 0);
    expect_fail(d, "generation_config.json", "eos_token_id");

    /* unsupported rope type */
    c = fixture_config();
    rs = cJSON_GetObjectItem(c, "rope_scaling");
    cJSON_ReplaceItemInObject(rs, "type", cJSON_CreateString("dynamic"));
    d = make_case(c, true);
    expect_fail(d, "config.json", "'dynamic'");
}

static void test_config_variants(void **state) {
    (void)state;
    /* no rope_scaling, no generation_config, eos as a list with duplicates,
     * sliding_window set, tied flag with lm_head present */
    cJSON *c = fixture_config();
    cJSON_ReplaceItemInObject(c, "rope_scaling", cJSON_CreateNull());
    cJSON_DeleteItemFromObject(c, "original_max_position_embeddings");
    int eos[3] = {7, 32000, 7};
    cJSON_ReplaceItemInObject(c, "eos_token_id", cJSON_CreateIntArray(eos, 3));
    set_num(c, "sliding_window", 2047);
    const char *d = make_case(c, false);
    phiq_hf *hf = phiq_hf_open(d);
    if (!hf) fail_msg("%s", phiq_error());
    const phiq_hparams *hp = phiq_hf_hparams(hf);
    assert_int_equal(hp->n_rope_factors, 0);
    assert_true(hp->rope_attn_factor == 1.0f);
    assert_int_equal(hp->n_ctx_orig, 4096);
    assert_int_equal(hp->n_eos, 2);
    assert_int_equal(hp->eos_ids[0], 7);
    assert_int_equal(hp->eos_ids[1], 32000);
    assert_int_equal(hp->sliding_window, 2047);
    assert_null(phiq_hf_generation_config_json(hf));
    assert_null(phiq_hf_tokenizer_json(hf));
    phiq_hf_close(hf);

    /* explicit attention_factor and legacy "su" type */
    c = fixture_config();
    cJSON *rs = cJSON_GetObjectItem(c, "rope_scaling");
    cJSON_ReplaceItemInObject(rs, "type", cJSON_CreateString("su"));
    cJSON_AddNumberToObject(rs, "attention_factor", 1.25);
    d = make_case(c, true);
    hf = phiq_hf_open(d);
    if (!hf) fail_msg("%s", phiq_error());
    assert_true(phiq_hf_hparams(hf)->rope_attn_factor == 1.25f);
    assert_int_equal(phiq_hf_hparams(hf)->n_rope_factors, 24);
    phiq_hf_close(hf);
}

TU_MAIN(NULL, NULL, test_fixture_hparams, test_bad_configs, test_config_variants)
