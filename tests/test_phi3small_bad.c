/* test_phi3small_bad.c — malformed Phi-3-small checkpoints: every one is
 * refused by convert (no output file), inspect and logits with one line
 * naming what is wrong and a non-zero exit: heads that do not divide,
 * missing or impossible block-sparse fields, both or neither intermediate
 * size keys, a non-gegelu activation, LongRoPE without its original context,
 * dummy ids past the vocabulary, a tensor of the wrong shape, a missing
 * bias; and a GGUF whose block-sparse stride is 0. Also: inspect says
 * llama.cpp cannot load the GGUF (the ONNX export's refusals are in
 * test_onnx_phi3small). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

static char base[4096];

static const char *variant(const char *name, void (*edit)(cJSON *)) {
    if (!base[0]) {
        snprintf(base, sizeof base, "%s", tu_tmp("p3s-base"));
        char *err = NULL;
        if (tu_run(NULL, &err, "'%s' synth --preset phi-3-small-tiny --layers 2 --hidden 64 --ff 128 --seed 3 -q -o '%s'",
                   tu_bin(), base))
            fail_msg("synth: %s", err);
        free(err);
    }
    return tu_copy_checkpoint(base, name, edit);
}

/* convert (no GGUF left behind), inspect and logits all refuse dir */
static void all_refuse(const char *what, const char *dir, const char *want) {
    char out[4200];
    snprintf(out, sizeof out, "%s.gguf", dir);
    tu_refused(what, want, out, "'%s' convert '%s' -o '%s' --type f32 -q", tu_bin(), dir, out);
    tu_refused(what, want, NULL, "'%s' inspect '%s'", tu_bin(), dir);
    snprintf(out, sizeof out, "%s.logits", dir);
    tu_refused(what, want, out, "'%s' logits '%s' --ids 1,2,3 --out '%s'", tu_bin(), dir, out);
}

static void set_num(cJSON *c, const char *k, double v) {
    if (cJSON_GetObjectItem(c, k)) cJSON_ReplaceItemInObject(c, k, cJSON_CreateNumber(v));
    else cJSON_AddNumberToObject(c, k, v);
}
static void heads3(cJSON *c) { set_num(c, "num_attention_heads", 3); }
static void kv3(cJSON *c) { set_num(c, "num_key_value_heads", 3); }
static void no_stride(cJSON *c) { cJSON_DeleteItemFromObject(c, "blocksparse_vert_stride"); }
static void no_dense(cJSON *c) { cJSON_DeleteItemFromObject(c, "dense_attention_every_n_layers"); }
static void block24(cJSON *c) { set_num(c, "blocksparse_block_size", 24); }
static void local0(cJSON *c) { set_num(c, "blocksparse_num_local_blocks", 0); }
static void both_ff(cJSON *c) { set_num(c, "ff_dim_multiplier", 4); }
static void silu(cJSON *c) { cJSON_ReplaceItemInObject(c, "hidden_act", cJSON_CreateString("silu")); }
static void rope_no_orig(cJSON *c) {
    cJSON *rs = cJSON_CreateObject();
    double f[16];
    for (int i = 0; i < 16; i++) f[i] = 1.0;
    cJSON_AddItemToObject(rs, "short_factor", cJSON_CreateDoubleArray(f, 16));
    cJSON_AddItemToObject(rs, "long_factor", cJSON_CreateDoubleArray(f, 16));
    cJSON_AddStringToObject(rs, "type", "su");
    cJSON_ReplaceItemInObject(c, "rope_scaling", rs);
}
static void dummy_past(cJSON *c) {
    int ids[2] = {5, 100352};
    cJSON_AddItemToObject(c, "dummy_token_indices", cJSON_CreateIntArray(ids, 2));
}
static void ff300(cJSON *c) { set_num(c, "ff_intermediate_size", 300); }

static const struct {
    const char *what, *name;
    void (*edit)(cJSON *);
    const char *want; /* in the one-line error */
} BAD_CONFIGS[] = {
    {"num_attention_heads 3 (hidden 64)", "p3s-h3", heads3, "not a multiple of num_attention_heads"},
    {"num_key_value_heads 3 of 4", "p3s-kv3", kv3, "num_key_value_heads"},
    {"no blocksparse_vert_stride", "p3s-nostride", no_stride, "blocksparse_vert_stride"},
    {"no dense_attention_every_n_layers", "p3s-nodense", no_dense, "dense_attention_every_n_layers"},
    {"block 24 with kernel blocks of 16", "p3s-b24", block24, "blocksparse_block_size 24"},
    {"0 local blocks", "p3s-l0", local0, "blocksparse_num_local_blocks"},
    {"ff_intermediate_size and ff_dim_multiplier", "p3s-ff2", both_ff, "ff_dim_multiplier"},
    {"hidden_act silu", "p3s-silu", silu, "gegelu"},
    {"LongRoPE without original_max_position_embeddings", "p3s-rope", rope_no_orig, "original_max_position_embeddings"},
    {"dummy id 100352 of vocab 100352", "p3s-dummy", dummy_past, "dummy_token_indices"},
    {"ff_intermediate_size 300, tensors of 128", "p3s-ff300", ff300, "mlp.up_proj.weight"},
};

static void test_bad_configs(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof BAD_CONFIGS / sizeof *BAD_CONFIGS; i++)
        all_refuse(BAD_CONFIGS[i].what, variant(BAD_CONFIGS[i].name, BAD_CONFIGS[i].edit), BAD_CONFIGS[i].want);
}

/* down_proj's bias renamed in the safetensors header: the tensor is missing */
static void test_missing_bias(void **state) {
    (void)state;
    const char *d = variant("p3s-nobias", NULL);
    char st[4200];
    snprintf(st, sizeof st, "%s/model.safetensors", d);
    tu_patch_file(st, "layers.1.mlp.down_proj.bias", strlen("layers.1.mlp.down_proj."), "xias");
    all_refuse("down_proj.bias missing", d, "model.layers.1.mlp.down_proj.bias");
}

/* A GGUF whose phi3small.attention.blocksparse.vert_stride is 0 */
static void test_bad_gguf(void **state) {
    (void)state;
    const char *d = variant("p3s-gguf", NULL);
    char g[4200], out[4300];
    snprintf(g, sizeof g, "%s.gguf", d);
    char *err = NULL;
    if (tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --type f32 -q", tu_bin(), d, g)) fail_msg("convert: %s", err);
    free(err);
    /* the GGUF loads and runs as it is */
    snprintf(out, sizeof out, "%s.logits", g);
    assert_int_equal(tu_run(NULL, NULL, "'%s' logits '%s' --ids 1,2,3 --out '%s'", tu_bin(), g, out), 0);
    unlink(out);
    char *inspect = NULL;
    assert_int_equal(tu_run(&inspect, NULL, "'%s' inspect '%s' --no-tensors", tu_bin(), g), 0);
    assert_non_null(strstr(inspect, "llama.cpp has no Phi-3-small graph"));
    free(inspect);
    const uint32_t zero = 0;
    tu_patch_gguf_scalar(g, "phi3small.attention.blocksparse.vert_stride", 4 /* GGUF uint32 */, &zero);
    tu_refused("GGUF vert_stride 0", "block-sparse parameters must be positive", out,
               "'%s' logits '%s' --ids 1,2,3 --out '%s'", tu_bin(), g, out);
}

TU_MAIN(NULL, NULL, test_bad_configs, test_missing_bias, test_bad_gguf)
