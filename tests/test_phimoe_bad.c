/* test_phimoe_bad.c — malformed Phi-3.5-MoE checkpoints: each is refused
 * with one line naming what is wrong, a non-zero exit and no output file,
 * whether the damage is in config.json (experts, router_jitter_noise,
 * short/long_mscale), in the weights (an expert tensor missing) or in a GGUF
 * (phimoe.router_jitter_noise out of range); a top-1 config converts but
 * does not run under Hugging Face's top-2 SparseMixer. Also checks that
 * `phiq inspect` lists where llama.cpp runs PhiMoE differently. */
#define _GNU_SOURCE /* memmem */
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
    const char *d = tu_tmp(name);
    static char dir[4][4096];
    static int k;
    char *out = dir[k++ & 3];
    snprintf(out, 4096, "%s", d);
    assert_int_equal(tu_run(NULL, NULL, "rm -rf '%s' && cp -r '%s' '%s'", out, base, out), 0);
    if (edit) {
        char cp[4200];
        snprintf(cp, sizeof cp, "%s/config.json", out);
        size_t n;
        char *txt = tu_read_all(cp, &n);
        cJSON *c = cJSON_Parse(txt);
        free(txt);
        assert_non_null(c);
        edit(c);
        char *s = cJSON_Print(c);
        FILE *f = fopen(cp, "w");
        fputs(s, f);
        fclose(f);
        free(s);
        cJSON_Delete(c);
    }
    return out;
}

/* cmd fails with exactly one stderr line containing want; out not created. */
static void refused(const char *what, const char *want, const char *out, const char *fmt, const char *a, const char *b) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, fmt, tu_bin(), a, b);
    char *err = NULL;
    int rc = tu_run(NULL, &err, "%s", cmd);
    const char *e = err ? err : "";
    print_message("%s: exit %d: %s", what, rc, e);
    assert_true(rc != 0);
    assert_non_null(strstr(e, want));
    const char *nl = strchr(e, '\n');
    assert_true(nl && nl[1] == 0); /* one line */
    if (out) assert_true(access(out, F_OK) != 0);
    free(err);
}

static void convert_refused(const char *what, const char *dir, const char *want) {
    char out[4200];
    snprintf(out, sizeof out, "%s.gguf", dir);
    refused(what, want, out, "'%s' convert '%s' -o '%s' --type f32 -q", dir, out);
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
    refused("inspect, no num_local_experts", "num_local_experts", NULL, "'%s' inspect '%s'%s",
            variant("moe-noexp2", no_experts), "");
}

/* One expert's w2 renamed in the safetensors header (same length, so the
 * file stays well-formed): the expert is missing. */
static void test_missing_expert(void **state) {
    (void)state;
    const char *d = variant("moe-missing", NULL);
    char st[4200];
    snprintf(st, sizeof st, "%s/model.safetensors", d);
    size_t n;
    char *b = tu_read_all(st, &n);
    assert_non_null(b);
    const char *needle = "layers.0.block_sparse_moe.experts.3.w2.weight";
    char *p = memmem(b, n, needle, strlen(needle));
    assert_non_null(p);
    memcpy(p + strlen("layers.0.block_sparse_moe.experts.3."), "x2", 2);
    FILE *f = fopen(st, "wb");
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
    free(b);
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
    size_t n;
    char *b = tu_read_all(g, &n);
    const char *key = "phimoe.router_jitter_noise";
    char *p = memmem(b, n, key, strlen(key));
    assert_non_null(p);
    p += strlen(key);
    uint32_t ty;
    memcpy(&ty, p, 4);
    assert_int_equal(ty, 6); /* GGUF float32 */
    float five = 5.0f;
    memcpy(p + 4, &five, 4);
    FILE *f = fopen(g, "wb");
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
    free(b);
    char out[4300];
    snprintf(out, sizeof out, "%s.logits", g);
    refused("GGUF router_jitter_noise 5", "router_jitter_noise", out, "'%s' logits '%s' --ids 1,2,3 --out '%s'", g, out);
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
    refused("top-1 with HF routing", "2 experts per token", out, "'%s' logits '%s' --ids 1,2,3 --out '%s'", g, out);
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_missing_expert),
        cmocka_unit_test(test_bad_gguf),
        cmocka_unit_test(test_top1),
        cmocka_unit_test(test_inspect_notes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
