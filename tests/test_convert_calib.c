/* test_convert_calib.c — `phiq convert --calib` on the fixture, by the
 * issue's protocol: calibrated on kjv-calibration.txt only, KL divergence from
 * the f32 model on kjv-heldout.txt at context 256. The calibrated Q4_0 (same
 * per-tensor types as llama-quantize --imatrix) must reach KLD <= 0.0041
 * (0.75x llama.cpp's imatrix Q4_0 on this fixture) and beat the imatrix
 * round-to-nearest file phiq writes byte-identically to llama-quantize; it
 * has the same size. A calibration text shorter than two contexts is a
 * one-line error and leaves no file.
 *
 * Under the sanitizers (PHIQ_SANITIZED) the same code runs on 4 calibration
 * chunks and 2 evaluation chunks: memory safety is what that build checks,
 * and the full protocol there takes longer than CI allows. The quality gate
 * is the release build's. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int sanitized(void) { return getenv("PHIQ_SANITIZED") != NULL; }

/* the calibration-size arguments for this build ("" in release) */
static const char *calib_limit(void) { return sanitized() ? "--calib-chunks 4" : ""; }

static double kld(const char *model, const char *ref) {
    char *out = NULL;
    assert_int_equal(tu_run(&out, NULL, "'%s' eval '%s' --ref '%s' --text '%s' --ctx 256 %s --json --quiet -t 2", tu_bin(),
                            model, ref, tu_shared_path("fixtures/text/kjv-heldout.txt"), sanitized() ? "--chunks 2" : ""), 0);
    const char *p = strstr(out, "\"kld_mean\": ");
    assert_non_null(p);
    double v = atof(p + 12);
    free(out);
    return v;
}

static long long fsize(const char *p) {
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    return (long long)sb.st_size;
}

static void test_q4_0_calibrated(void **state) {
    (void)state;
    const char *f32 = tu_fixture_gguf("f32"), *imat = tu_tmp("imatrix.gguf"), *rtn = tu_tmp("q4_0-imat.gguf"),
               *cal = tu_tmp("q4_0-calib.gguf"), *text = tu_shared_path("fixtures/text/kjv-calibration.txt");
    assert_int_equal(tu_run(NULL, NULL, "'%s' imatrix '%s' -f '%s' -o '%s' %s --quiet -t 2", tu_bin(), f32, text, imat,
                            sanitized() ? "--chunks 4" : ""), 0);
    assert_int_equal(tu_run(NULL, NULL, "'%s' convert '%s' -o '%s' --type q4_0 --imatrix '%s' --quiet", tu_bin(), f32, rtn,
                            imat), 0);
    assert_int_equal(tu_run(NULL, NULL, "'%s' convert '%s' -o '%s' --type q4_0 --calib '%s' %s --quiet -t 2", tu_bin(), f32,
                            cal, text, calib_limit()), 0);
    double kr = kld(rtn, f32), kc = kld(cal, f32);
    fprintf(stderr, "Q4_0 KLD vs f32 on kjv-heldout (ctx 256): imatrix RTN %.5f, calibrated %.5f\n", kr, kc);
    assert_true(fsize(cal) <= fsize(rtn));
    assert_true(kc > 0.0 && kc < 1.0 && kr > 0.0 && kr < 1.0);
    if (sanitized()) return;
    assert_true(kc <= 0.0041);
    assert_true(kc < 0.8 * kr);
}

/* Hessians held for one layer at a time (--calib-mem 1: one pass per layer)
 * give the same bytes as all layers in one pass: memory is bounded for free. */
static void test_layer_groups_same_bytes(void **state) {
    (void)state;
    const char *f32 = tu_fixture_gguf("f32"), *a = tu_tmp("g1.gguf"), *b = tu_tmp("gall.gguf"),
               *text = tu_shared_path("fixtures/text/kjv-calibration.txt");
    char *out = NULL;
    assert_int_equal(tu_run(&out, NULL, "'%s' convert '%s' -o '%s' --type q4_k_m --calib '%s' --calib-chunks %d --calib-mem 1 --json -t 2",
                            tu_bin(), f32, a, text, sanitized() ? 2 : 6), 0);
    assert_non_null(strstr(out, "\"calib_passes\":\t4"));
    free(out);
    assert_int_equal(tu_run(NULL, NULL, "'%s' convert '%s' -o '%s' --type q4_k_m --calib '%s' --calib-chunks %d --quiet -t 2",
                            tu_bin(), f32, b, text, sanitized() ? 2 : 6), 0);
    tu_assert_same_file(a, b);
}

static void test_short_calibration_text(void **state) {
    (void)state;
    const char *f32 = tu_fixture_gguf("f32"), *txt = tu_tmp("short.txt"), *out = tu_tmp("short.gguf");
    FILE *f = fopen(txt, "w");
    assert_non_null(f);
    fputs("And God said, Let there be light: and there was light.\n", f);
    fclose(f);
    char *err = NULL;
    assert_int_equal(tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --type q4_0 --calib '%s' --quiet", tu_bin(), f32, out, txt), 1);
    int lines = 0;
    for (const char *c = err; *c; c++) lines += *c == '\n';
    assert_int_equal(lines, 1);
    assert_non_null(strstr(err, "need at least"));
    free(err);
    assert_int_not_equal(access(out, F_OK), 0);
}

TU_MAIN(NULL, NULL, test_q4_0_calibrated, test_layer_groups_same_bytes, test_short_calibration_text)
