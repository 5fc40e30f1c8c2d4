/* test_mlx.c — `phiq convert --format mlx` and reading MLX directories,
 * against tests/ref/mlx_reference.py (numpy, written from MLX's kernels and
 * mlx-lm's convert/save code, not from phiq's C):
 *   - every packed word, scale, bias, name, shape and dtype, the safetensors
 *     header and metadata, the index and config.json's quantization entries,
 *     for bits {4, 8} x groups {32, 64, 128} on the fixture, 2/3/5/6 bits and
 *     mixed recipes on `phiq synth` checkpoints of each architecture (phi3,
 *     Phi-4-mini-like tied phi3, phi2, phimoe, and rows narrower than a group);
 *   - `phiq eval` of the 4-bit g64 directory equals the F32 evaluation of the
 *     reference's own dequantization of the same weights, `phiq logits` too
 *     (bit for bit); its KLD vs F32; `run` and `inspect` read it; `report
 *     --formats gguf,mlx` has an MLX row;
 *   - bad input: one line naming the limit, nothing written.
 * Needs /usr/bin/python3 with numpy (Debian's python3-numpy); skips otherwise. */
#include "testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char script[4096];

/* the reference is the test: without it the test is skipped, never passed */
static void skip_without_numpy(void) {
    tu_require_numpy();
}

static void convert(const char *src, const char *out, const char *args) {
    char *err = NULL;
    int rc = tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --format mlx %s --quiet", tu_bin(), src, out, args);
    if (rc) fail_msg("convert %s %s: %s", src, args, err ? err : "");
    free(err);
}

/* the reference checks every directory spec "DIR:BITS:GROUP[:RECIPE]" */
static void check(const char *src, const char *specs) {
    char *out = NULL, *err = NULL;
    int rc = tu_run(&out, &err, "/usr/bin/python3 '%s' check '%s' %s", script, src, specs);
    fprintf(stderr, "%s", out ? out : "");
    if (rc) fail_msg("reference check failed (%d): %s %s", rc, out ? out : "", err ? err : "");
    free(out);
    free(err);
}

static const char *synth(const char *name, const char *args) {
    const char *dir = tu_tmp(name);
    char *err = NULL;
    int rc = tu_run(NULL, &err, "'%s' synth %s --tokenizer none --seed 5 -q -o '%s'", tu_bin(), args, dir);
    if (rc) fail_msg("synth %s: %s", args, err ? err : "");
    free(err);
    return dir;
}

static void test_fixture_grid(void **state) {
    (void)state;
    skip_without_numpy();
    char fx[4096]; /* tu_shared_path's buffers rotate */
    snprintf(fx, sizeof fx, "%s", tu_shared_path("fixtures/tiny-phi3-kjv"));
    char specs[8192] = "";
    int bits[2] = {4, 8}, groups[3] = {32, 64, 128};
    /* under the sanitizers (slow) the diagonal only: 4-bit g32, 8-bit g64 */
    const int sanitized = getenv("PHIQ_SANITIZED") != NULL;
    for (int b = 0; b < 2; b++)
        for (int g = 0; g < 3; g++) {
            if (sanitized && g != b) continue;
            char name[64], args[64];
            snprintf(name, sizeof name, "fx-%d-%d", bits[b], groups[g]);
            snprintf(args, sizeof args, "--bits %d --group-size %d", bits[b], groups[g]);
            convert(fx, tu_tmp(name), args);
            snprintf(specs + strlen(specs), sizeof specs - strlen(specs), " '%s:%d:%d'", tu_tmp(name), bits[b], groups[g]);
        }
    convert(fx, tu_tmp("fx-mixed"), "--recipe mixed_3_6");
    snprintf(specs + strlen(specs), sizeof specs - strlen(specs), " '%s:4:64:mixed_3_6'", tu_tmp("fx-mixed"));
    check(fx, specs);
}

static void test_architectures(void **state) {
    (void)state;
    skip_without_numpy();
    struct {
        const char *name, *synth, *convs[3], *specs[3];
    } cases[] = {
        {"phi3", "--arch phi3 --hidden 128 --layers 8 --heads 4 --kv-heads 2 --ff 192 --vocab 512 --ctx 4096 --ctx-orig 1024",
         {"--bits 3", "--bits 5 --group-size 32", "--recipe mixed_3_6"}, {"3:64", "5:32", "4:64:mixed_3_6"}},
        {"phi4mini", "--arch phi3 --hidden 128 --layers 2 --heads 4 --kv-heads 1 --ff 256 --vocab 384 --tied --partial-rotary 0.75",
         {"--bits 6", "--recipe mixed_2_6", "--bits 2 --group-size 128"}, {"6:64", "4:64:mixed_2_6", "2:128"}},
        {"phi2", "--arch phi2 --hidden 128 --layers 2 --heads 4 --ff 512 --vocab 384",
         {"--bits 4", "--bits 8 --group-size 128", NULL}, {"4:64", "8:128", NULL}},
        {"phimoe", "--arch phimoe --hidden 128 --layers 2 --heads 4 --kv-heads 2 --ff 192 --vocab 384 --experts 4",
         {"--bits 4", "--recipe mixed_4_6", NULL}, {"4:64", "4:64:mixed_4_6", NULL}},
        /* rows narrower than a group, and a width (160) only g32 divides */
        {"small", "--arch phi3 --hidden 96 --layers 1 --heads 2 --ff 160 --vocab 256",
         {"--bits 4", "--bits 4 --group-size 32", NULL}, {"4:64", "4:32", NULL}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const char *src = synth(cases[c].name, cases[c].synth);
        char srcbuf[4096], specs[8192] = "";
        snprintf(srcbuf, sizeof srcbuf, "%s", src);
        for (int k = 0; k < 3 && cases[c].convs[k]; k++) {
            char name[64];
            snprintf(name, sizeof name, "%s-mlx%d", cases[c].name, k);
            convert(srcbuf, tu_tmp(name), cases[c].convs[k]);
            snprintf(specs + strlen(specs), sizeof specs - strlen(specs), " '%s:%s'", tu_tmp(name), cases[c].specs[k]);
        }
        check(srcbuf, specs);
    }
}

static double json_num(const char *js, const char *key) {
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = js ? strstr(js, k) : NULL;
    if (!p) fail_msg("no %s in %s", key, js ? js : "(null)");
    return strtod(p + strlen(k), NULL);
}

static void test_eval_matches_reference(void **state) {
    (void)state;
    skip_without_numpy();
    char fx[4096], text[4096];
    snprintf(fx, sizeof fx, "%s", tu_shared_path("fixtures/tiny-phi3-kjv"));
    snprintf(text, sizeof text, "%s", tu_shared_path("fixtures/text/kjv-heldout.txt"));
    char mlx[4096], deq[4096];
    snprintf(mlx, sizeof mlx, "%s", tu_tmp("eval-mlx"));
    snprintf(deq, sizeof deq, "%s", tu_tmp("eval-deq"));
    convert(fx, mlx, "--bits 4 --group-size 64");
    char *out = NULL, *err = NULL;
    if (tu_run(NULL, &err, "/usr/bin/python3 '%s' dequant '%s' '%s' x:4:64", script, fx, deq)) fail_msg("dequant: %s", err);
    free(err);
    /* 8 chunks; 2 in the sanitizer build (the same code paths, a quarter of the forward passes) */
    const char *eval = getenv("PHIQ_SANITIZED") ? "'%s' eval '%s' --text '%s' --type f32 --ctx 256 --chunks 2 --quiet --json"
                                                : "'%s' eval '%s' --text '%s' --type f32 --ctx 256 --chunks 8 --quiet --json";
    if (tu_run(&out, &err, eval, tu_bin(), mlx, text)) fail_msg("eval mlx: %s", err);
    double ppl = json_num(out, "ppl");
    free(out);
    free(err);
    if (tu_run(&out, &err, eval, tu_bin(), deq, text)) fail_msg("eval reference: %s", err);
    double ref = json_num(out, "ppl");
    free(out);
    free(err);
    fprintf(stderr, "MLX 4-bit g64 PPL %.6f, reference dequantized F32 PPL %.6f\n", ppl, ref);
    assert_true(fabs(ppl - ref) <= 1e-3 * ref);
    /* what 4-bit costs against the F32 model */
    if (tu_run(&out, &err, "'%s' eval '%s' --ref '%s' --text '%s' --type f32 --ctx 256 --chunks %d --quiet --json", tu_bin(),
               mlx, fx, text, getenv("PHIQ_SANITIZED") ? 2 : 8))
        fail_msg("eval --ref: %s", err);
    double kld = json_num(out, "kld_mean");
    fprintf(stderr, "MLX 4-bit g64 KLD vs F32: %.6f\n", kld);
    assert_true(kld > 0 && kld < 0.05);
    free(out);
    free(err);
    /* logits of the MLX directory equal those of the reference's dequantized weights, bit for bit
     * (both held as f32; every position of one sequence), for the moe too */
    tu_assert_same_logits(mlx, deq);
    if (tu_run(&out, &err, "'%s' run '%s' -p 'In the beginning' -n 6 --seed 1", tu_bin(), mlx)) fail_msg("run: %s", err);
    free(out);
    free(err);
    /* the other readers: inspect names the format */
    if (tu_run(&out, &err, "'%s' inspect '%s'", tu_bin(), mlx)) fail_msg("inspect: %s", err);
    assert_non_null(strstr(out, "MLX"));
    free(out);
    free(err);
}

/* report rows for MLX beside GGUF ones */
static void test_report(void **state) {
    (void)state;
    char fx[4096], text[4096], dir[4096];
    snprintf(fx, sizeof fx, "%s", tu_shared_path("fixtures/tiny-phi3-kjv"));
    snprintf(text, sizeof text, "%s", tu_shared_path("fixtures/text/kjv-heldout.txt"));
    snprintf(dir, sizeof dir, "%s", tu_tmp("report"));
    char *out = NULL, *err = NULL;
    if (tu_run(&out, &err, "'%s' report '%s' --formats gguf,mlx --types fp32 --mlx-bits 4 --text '%s' --chunks 2 "
               "--prompt 8 --gen 4 --reps 1 -o '%s' --quiet --json", tu_bin(), fx, text, dir))
        fail_msg("report: %s", err);
    assert_non_null(strstr(out, "\"mlx-4bit-g64\""));
    assert_non_null(strstr(out, "\"fp32\""));
    free(out);
    free(err);
    assert_int_not_equal(tu_run(NULL, &err, "'%s' report '%s' --formats onnx --text '%s' -o '%s'", tu_bin(), fx, text, dir), 0);
    assert_non_null(strstr(err, "ONNX"));
    free(err);
}

static bool exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static void expect_refusal(const char *src, const char *out, const char *args, const char *needle) {
    char *err = NULL;
    int rc = tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --format mlx %s --quiet", tu_bin(), src, out, args);
    if (rc == 0) fail_msg("convert %s succeeded", args);
    if (!err || !strstr(err, needle)) fail_msg("convert %s: expected '%s' in: %s", args, needle, err ? err : "");
    /* one line */
    assert_true(strchr(err, '\n') == NULL || strchr(err, '\n')[1] == 0);
    free(err);
    assert_false(exists(out));
    char *ls = NULL;
    tu_run(&ls, NULL, "ls -a '%s' | grep -c tmp || true", tu_tmpdir());
    assert_int_equal(atoi(ls ? ls : "0"), 0);
    free(ls);
}

static void test_bad_input(void **state) {
    (void)state;
    char fx[4096], out[4096];
    snprintf(fx, sizeof fx, "%s", tu_shared_path("fixtures/tiny-phi3-kjv"));
    snprintf(out, sizeof out, "%s", tu_tmp("bad-out"));
    expect_refusal(fx, out, "--bits 7", "2, 3, 4, 5, 6 or 8");
    expect_refusal(fx, out, "--group-size 48", "32, 64 and 128");
    expect_refusal(fx, out, "--recipe mixed_9_9", "mixed_2_6");
    expect_refusal(fx, out, "--calib x.txt", "x.txt: cannot open"); /* nothing written, no temporary left */
    const char *p2 = synth("bad-phi2", "--arch phi2 --hidden 64 --layers 1 --heads 2 --ff 128 --vocab 128");
    char p2b[4096];
    snprintf(p2b, sizeof p2b, "%s", p2);
    expect_refusal(p2b, out, "--recipe mixed_4_6", "down_proj");
    /* a source that is already MLX */
    char m[4096];
    snprintf(m, sizeof m, "%s", tu_tmp("bad-mlx"));
    convert(p2b, m, "--bits 4");
    expect_refusal(m, out, "--bits 4", "already an MLX");
    /* rope_scaling with only rope_type: mlx_lm.load would raise */
    const char *p3 = synth("bad-rope", "--arch phi3 --hidden 64 --layers 1 --heads 2 --ff 128 --vocab 128 --ctx 4096 --ctx-orig 1024");
    char p3b[4096];
    snprintf(p3b, sizeof p3b, "%s", p3);
    if (tu_run(NULL, NULL, "sed -i 's/\"type\"/\"rope_type\"/' '%s/config.json'", p3b)) fail_msg("sed");
    expect_refusal(p3b, out, "--bits 4", "rope_scaling");
    /* a non-empty output directory is never touched */
    if (tu_run(NULL, NULL, "mkdir -p '%s' && echo keep > '%s/f'", out, out)) fail_msg("mkdir");
    char *err = NULL;
    assert_int_not_equal(tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --format mlx --quiet", tu_bin(), fx, out), 0);
    assert_non_null(strstr(err, "not empty"));
    free(err);
}

int main(void) {
    snprintf(script, sizeof script, "%s/tests/ref/mlx_reference.py", PHIQ_SOURCE_DIR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_fixture_grid),
        cmocka_unit_test(test_architectures),
        cmocka_unit_test(test_eval_matches_reference),
        cmocka_unit_test(test_report),
    };
    return tu_run_group(tests, NULL, NULL);
}
