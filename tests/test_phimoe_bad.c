/* test_phimoe_bad.c — malformed Phi-3.5-MoE checkpoints: each is refused
 * with one line naming what is wrong, a non-zero exit and no output file,
 * whether the damage is in config.json (experts, router_jitter_noise,
 * short/long_mscale), in the weights (an expert tensor missing) or in a GGUF
 * (phimoe.router_jitter_noise out of range); a top-1 config converts but
 * does not run under Hugging Face's top-2 SparseMixer. Also checks that
 * `phiq inspect` lists where llama.cpp runs PhiMoE differently. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

static char base[4096];

static void make_base(void) {
    if (base[0]) return;
    snprintf(base, sizeof base, "%s", tu_tmp("moe-base"));
    char *err = NULL;
    if (tu_run(NULL, &err, "'%s' synth --preset phi-3.5-moe --hidden 64 --layers 1 --heads 4 --kv-heads 2 --ff 64 "
               "--experts 4 --ctx 256 --ctx-orig 64 --seed 3 -q -o '%s'", tu_bin(), base) != 0)
        fail_msg("synth: %s", err);
    free(err);
}

/* A copy of the base checkpoint; edit(config) changes its config.json. */
static const char *variant(const char *name, void (*edit)(cJSON *)) {
    make_base();
    return tu_copy_checkpoint(base, name, edit);
}

static void convert_refused(const char *what, const char *dir, const char *want) {
    char out[4200];
    snprintf(out, sizeof out, "%s.gguf", dir);
    tu_refused(what, want, out, "'%s' convert '%s' -o '%s' --type f32 -q", tu_bin(), dir, out);
}

static void no_experts(cJSON *c) { cJSON_DeleteItemFromObject(c, "num_local_experts"); }
static void too_many_used(cJSON *c) { cJSON_ReplaceItemInObject(c, "num_experts_per_tok", cJSON_CreateNumber(5)); }
static void neg_jitter(cJSON *c) { cJSON_ReplaceItemInObject(c, "router_jitter_noise", cJSON_CreateNumber(-0.5)); }
static void str_jitter(cJSON *c) { cJSON_ReplaceItemInObject(c, "router_jitter_noise", cJSON_CreateString("0.01")); }
static void no_long_mscale(cJSON *c) {
    cJSON_DeleteItemFromObject(cJSON_GetObjectItem(c, "rope_scaling"), "long_mscale");
}
static void bad_short_mscale(cJSON *c) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(c, "rope_scaling"), "short_mscale", cJSON_CreateNumber(0));
}
static void top1(cJSON *c) { cJSON_ReplaceItemInObject(c, "num_experts_per_tok", cJSON_CreateNumber(1)); }

static void test_bad_configs(void **state) {
    (void)state;
    convert_refused("no num_local_experts", variant("moe-noexp", no_experts), "num_local_experts");
    convert_refused("num_experts_per_tok 5 of 4", variant("moe-used5", too_many_used), "num_experts_per_tok");
    convert_refused("router_jitter_noise -0.5", variant("moe-negjit", neg_jitter), "router_jitter_noise");
    convert_refused("router_jitter_noise a string", variant("moe-strjit", str_jitter), "router_jitter_noise");
    convert_refused("rope_scaling without long_mscale", variant("moe-nolong", no_long_mscale), "long_mscale");
    convert_refused("short_mscale 0", variant("moe-ms0", bad_short_mscale), "attention factor");
    /* inspect reads the same config: the same one-line error */
    tu_refused("inspect, no num_local_experts", "num_local_experts", NULL, "'%s' inspect '%s'", tu_bin(),
               variant("moe-noexp2", no_experts));
}

/* One expert's w2 renamed in the safetensors header (same length, so the
 * file stays well-formed): the expert is missing. */
static void test_missing_expert(void **state) {
    (void)state;
    const char *d = variant("moe-missing", NULL);
    char st[4200];
    snprintf(st, sizeof st, "%s/model.safetensors", d);
    tu_patch_file(st, "layers.0.block_sparse_moe.experts.3.w2.weight", strlen("layers.0.block_sparse_moe.experts.3."),
                  "x2");
    convert_refused("expert 3's w2 missing", d, "experts.3.w2");
}

/* A GGUF whose phimoe.router_jitter_noise is 5: refused at load. */
static void test_bad_gguf(void **state) {
    (void)state;
    const char *d = variant("moe-gguf", NULL);
    char g[4200];
    snprintf(g, sizeof g, "%s.gguf", d);
    char *err = NULL;
    if (tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --type f32 -q", tu_bin(), d, g) != 0) fail_msg("convert: %s", err);
    free(err);
    const float five = 5.0f;
    tu_patch_gguf_scalar(g, "phimoe.router_jitter_noise", 6 /* GGUF float32 */, &five);
    char out[4300];
    snprintf(out, sizeof out, "%s.logits", g);
    tu_refused("GGUF router_jitter_noise 5", "router_jitter_noise", out, "'%s' logits '%s' --ids 1,2,3 --out '%s'",
               tu_bin(), g, out);
}

/* num_experts_per_tok 1 is a valid config (llama.cpp would run it), but
 * Hugging Face's sparsemixer raises for top_k != 2: convert works, running
 * with HF routing is refused, llama.cpp's graph runs. */
static void test_top1(void **state) {
    (void)state;
    const char *d = variant("moe-top1", top1);
    char g[4200], out[4300];
    snprintf(g, sizeof g, "%s.gguf", d);
    snprintf(out, sizeof out, "%s.logits", g);
    char *err = NULL;
    if (tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --type f32 -q", tu_bin(), d, g) != 0) fail_msg("convert: %s", err);
    free(err);
    tu_refused("top-1 with HF routing", "2 experts per token", out, "'%s' logits '%s' --ids 1,2,3 --out '%s'",
               tu_bin(), g, out);
    assert_int_equal(tu_run(NULL, NULL, "'%s' logits '%s' --ids 1,2,3 --phimoe-llamacpp --out '%s'", tu_bin(), g, out), 0);
}

static void test_inspect_notes(void **state) {
    (void)state;
    const char *d = variant("moe-inspect", NULL);
    char *out = NULL;
    assert_int_equal(tu_run(&out, NULL, "'%s' inspect '%s' --no-tensors", tu_bin(), d), 0);
    assert_non_null(strstr(out, "llama.cpp runs PhiMoE differently"));
    assert_non_null(strstr(out, "routing: llama.cpp takes a softmax over all experts"));
    assert_non_null(strstr(out, "router_jitter_noise 0.01"));
    free(out);
}

TU_MAIN(NULL, NULL, test_bad_configs, test_missing_expert, test_bad_gguf, test_top1, test_inspect_notes)
