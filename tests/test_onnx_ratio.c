/* test_onnx_ratio.c — `phiq convert --format onnx --ratio R --group-size G`
 * (NNCF's int4/int8 mix) against independent references:
 *  - tests/ref/nncf_reference.py, a numpy model of NNCF's data-free mixed
 *    precision written from NNCF's source, reads the written model.onnx /
 *    model.onnx.data as onnxruntime's contrib ops define them and requires the
 *    per-weight precision choice and every int4/int8 code, scale and zero
 *    point (embedding and lm_head included) to equal NNCF's: ratio 0.6 g128
 *    sym (the Phi Cookbook's OpenVINO recipe), 0.8 g64 asym, 1.0 g32 sym,
 *    0.3 with the int8_sym backup, 0.6 with backup none, 0; with --calib
 *    (data-aware ranking, GPTQ int4) the backup values are still NNCF's and
 *    the data-free metric still gives NNCF's choice;
 *  - bad input (ratio outside [0, 1], a group size that does not divide a
 *    layer, --ratio with int8, unknown backup) is a one-line error, non-zero
 *    exit, and no output directory.
 * onnxruntime runs these files in test_onnx_ratio_kld. Skips (77) without
 * /usr/bin/python3 + numpy. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil_ort.h"

#define KJV "fixtures/tiny-phi3-kjv"

static int g_sanitized;

/* tu_onnx_convert, and the JSON summary's int4 share stays below the ratio. */
static const char *convert(const char *name, const char *args) {
    char *so = NULL;
    const char *out = tu_onnx_convert(name, args, &so);
    const char *r = so ? strstr(so, "\"ratio\":") : NULL;
    const char *a = so ? strstr(so, "\"int4_params\":") : NULL, *t = so ? strstr(so, "\"ratio_defining_params\":") : NULL;
    assert_non_null(r);
    assert_non_null(a);
    assert_non_null(t);
    double ratio = atof(r + 8), in4 = atof(a + 14), tot = atof(t + 24);
    assert_true(tot > 0);
    if (ratio < 1) assert_true(in4 == 0 || in4 / tot < ratio);
    else assert_true(in4 == tot);
    free(so);
    return out;
}

/* nncf_reference.py check: exit 0 and its JSON line, else the first difference. */
static void nncf_check(const char *dir, const char *args) {
    char *out = NULL, *err = NULL;
    int rc = tu_run(&out, &err, "/usr/bin/python3 '%s/tests/ref/nncf_reference.py' check '%s' '%s' %s",
                    PHIQ_SOURCE_DIR, tu_shared_path(KJV), dir, args);
    if (rc != 0) fail_msg("nncf_reference.py check %s: %s %s", args, out ? out : "", err ? err : "");
    fprintf(stderr, "NNCF reference (%s): %.300s\n", args, out ? out : "");
    assert_non_null(strstr(out, "\"ok\": true"));
    free(out);
    free(err);
}

static void test_matches_nncf(void **st) {
    (void)st;
    tu_require_numpy();
    static const struct {
        const char *name, *args, *ref;
    } cases[] = {
        {"r06-g128-sym", "--ratio 0.6 --group-size 128 --sym", "--ratio 0.6 --group-size 128 --sym"},
        {"r08-g64-asym", "--ratio 0.8 --group-size 64 --asym", "--ratio 0.8 --group-size 64 --asym"},
        {"r10-g32-sym", "--ratio 1.0 --group-size 32 --sym", "--ratio 1.0 --group-size 32 --sym"},
        {"r03-int8sym", "--ratio 0.3 --group-size 64 --sym --backup-precision int8_sym",
         "--ratio 0.3 --group-size 64 --sym --backup int8_sym"},
        {"r06-none", "--ratio 0.6 --group-size 128 --sym --backup-precision none",
         "--ratio 0.6 --group-size 128 --sym --backup none"},
        {"r00", "--ratio 0 --group-size 32 --sym", "--ratio 0 --group-size 32 --sym"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (g_sanitized && i != 0 && i != 1) continue;
        nncf_check(convert(cases[i].name, cases[i].args), cases[i].ref);
    }
}

/* --calib (a few chunks: the values are GPTQ's either way): the backup
 * weights are NNCF's values; with the data-free metric the choice is NNCF's. */
static void test_calib_keeps_nncf_backup(void **st) {
    (void)st;
    tu_require_numpy();
    char args[1400];
    snprintf(args, sizeof args, "--ratio 0.6 --group-size 128 --sym --calib '%s' --calib-chunks %d",
             tu_shared_path("fixtures/text/kjv-calibration.txt"), g_sanitized ? 2 : 8);
    nncf_check(convert("calib-awe", args), "--ratio 0.6 --group-size 128 --sym --ranking file --int4 any");
    if (g_sanitized) return;
    strcat(args, " --sensitivity-metric weight_quantization_error");
    nncf_check(convert("calib-wqe", args), "--ratio 0.6 --group-size 128 --sym --int4 any");
}

static void test_refusals(void **st) {
    (void)st;
    static const struct {
        const char *args, *says;
    } bad[] = {
        {"--ratio 1.5", "--ratio 1.5"},
        {"--ratio -0.1", "--ratio -0.1"},
        {"--ratio abc", "--ratio abc"},
        {"--ratio 0.6 --group-size 96", "power of two"},
        {"--ratio 0.6 --group-size 512", "power of two"},
        {"--ratio 0.6 --type int8", "--type int4"},
        {"--ratio 0.6 --backup-precision int4", "--backup-precision int4"},
        {"--backup-precision int8_sym", "--ratio only"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *out = tu_tmp_keep("refused");
        char *err = NULL;
        int rc = tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --format onnx %s --quiet", tu_bin(),
                        tu_shared_path(KJV), out, bad[i].args);
        if (rc == 0 || !err || !strstr(err, bad[i].says))
            fail_msg("%s: exit %d, stderr '%s' (expected a line with '%s')", bad[i].args, rc, err ? err : "",
                     bad[i].says);
        int lines = 0;
        for (const char *p = err; *p; p++) lines += *p == '\n';
        if (lines != 1) fail_msg("%s: %d lines of error: %s", bad[i].args, lines, err);
        struct stat sb;
        assert_int_not_equal(stat(out, &sb), 0); /* no output directory */
        free(err);
    }
    /* a group size that does not divide a layer's K (hidden 320, group 128) */
    char *out = NULL;
    if (tu_run(&out, NULL, "'%s' synth --help 2>&1", tu_bin()) != 0 || !out || !strstr(out, "--preset")) {
        free(out);
        return;
    }
    free(out);
    const char *h320 = tu_tmp_keep("ratio-h320"), *o2 = tu_tmp_keep("refused2");
    assert_int_equal(tu_run(NULL, NULL, "'%s' synth --layers 1 --hidden 320 --heads 5 --kv-heads 5 --ff 640 "
                            "--vocab 1024 --tokenizer none -o '%s' --quiet", tu_bin(), h320), 0);
    char *err = NULL;
    int rc = tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --format onnx --ratio 0.6 --group-size 128 --quiet",
                    tu_bin(), h320, o2);
    if (rc == 0 || !err || !strstr(err, "block size 128 does not divide the hidden size K = 320"))
        fail_msg("group 128 on hidden 320: exit %d, '%s'", rc, err ? err : "");
    struct stat sb;
    assert_int_not_equal(stat(o2, &sb), 0);
    free(err);
}

int main(void) {
    g_sanitized = getenv("PHIQ_SANITIZED") != NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_matches_nncf),
        cmocka_unit_test(test_calib_keeps_nncf_backup),
    };
    return tu_run_group(tests, NULL, NULL);
}
