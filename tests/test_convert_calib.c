/* test_convert_calib.c — `phiq convert --calib` on the fixture, by the
 * issue's protocol: calibrated on kjv-calibration.txt only, KL divergence from
 * the f32 model on kjv-heldout.txt at context 256. The calibrated Q4_0 and
 * Q4_K_M (same per-tensor types as llama-quantize --imatrix) must reach KLD
 * <= 0.0041 and <= 0.0029 (0.75x llama.cpp's imatrix files on this fixture)
 * and beat the imatrix round-to-nearest files phiq writes byte-identically
 * to llama-quantize; they have the same size. Q4_K_M calibrated from the BF16
 * checkpoint directory (the BF16 gemm's forward where the CPU has it) must
 * meet the same bounds. A calibration text shorter than two contexts is a
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

/* KLD of model against ref on kjv-heldout; each file's figure is measured
 * once (two tests compare against the same imatrix RTN file). */
static double kld(const char *model, const char *ref) {
    static char seen[4][512];
    static double val[4];
    for (int i = 0; i < 4; i++)
        if (strcmp(seen[i], model) == 0) return val[i];
    char *out = NULL;
    assert_int_equal(tu_run(&out, NULL, "'%s' eval '%s' --ref '%s' --text '%s' --ctx 256 %s --json --quiet -t 2", tu_bin(),
                            model, ref, tu_shared_path("fixtures/text/kjv-heldout.txt"), sanitized() ? "--chunks 2" : ""), 0);
    const char *p = strstr(out, "\"kld_mean\": ");
    assert_non_null(p);
    double v = atof(p + 12);
    free(out);
    for (int i = 0; i < 4; i++)
        if (!seen[i][0] && strlen(model) < sizeof seen[i]) {
            snprintf(seen[i], sizeof seen[i], "%s", model), val[i] = v;
            break;
        }
    return v;
}

static long long fsize(const char *p) {
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    return (long long)sb.st_size;
}

/* calibrated vs imatrix round-to-nearest, same per-tensor types; bound: the
 * issue's 0.75x llama.cpp's imatrix file on this fixture. Calibrated from
 * the f32 GGUF, or with hf from the BF16 checkpoint itself (the same weights;
 * on CPUs with AVX512_BF16 its calibration forward runs unconverted on the
 * vdpbf16ps gemm with bf16-rounded activations, elsewhere on F16). */
static void check_calibrated(const char *type, double bound, int hf) {
    char rtn_name[64], cal_name[64];
    snprintf(rtn_name, sizeof rtn_name, "%s-imat.gguf", type);
    snprintf(cal_name, sizeof cal_name, "%s-calib%s.gguf", type, hf ? "-hf" : "");
    const char *f32 = tu_fixture_gguf("f32"), *imat = tu_tmp("imatrix.gguf"), *rtn = tu_tmp(rtn_name),
               *cal = tu_tmp(cal_name), *text = tu_shared_path("fixtures/text/kjv-calibration.txt");
    if (access(imat, F_OK) != 0)
        assert_int_equal(tu_run(NULL, NULL, "'%s' imatrix '%s' -f '%s' -o '%s' %s --quiet -t 2", tu_bin(), f32, text, imat,
                                sanitized() ? "--chunks 4" : ""), 0);
    if (access(rtn, F_OK) != 0)
        assert_int_equal(tu_run(NULL, NULL, "'%s' convert '%s' -o '%s' --type %s --imatrix '%s' --quiet", tu_bin(), f32,
                                rtn, type, imat), 0);
    assert_int_equal(tu_run(NULL, NULL, "'%s' convert '%s' -o '%s' --type %s --calib '%s' %s --quiet -t 2", tu_bin(),
                            hf ? tu_shared_path("fixtures/tiny-phi3-kjv") : f32, cal, type, text, calib_limit()), 0);
    double kr = kld(rtn, f32), kc = kld(cal, f32);
    fprintf(stderr, "%s KLD vs f32 on kjv-heldout (ctx 256): imatrix RTN %.5f, calibrated%s %.5f\n", type, kr,
            hf ? " from the BF16 checkpoint" : "", kc);
    assert_true(fsize(cal) <= fsize(rtn));
    assert_true(kc > 0.0 && kc < 1.0 && kr > 0.0 && kr < 1.0);
    if (sanitized()) return;
    assert_true(kc <= bound);
    assert_true(kc < 0.8 * kr);
}

static void test_q4_0_calibrated(void **state) {
    (void)state;
    if (sanitized()) skip(); /* the same sweep as Q4_K_M's on another grid; CI time */
    check_calibrated("q4_0", 0.0041, 0);
}

static void test_q4_k_m_calibrated(void **state) {
    (void)state;
    check_calibrated("q4_k_m", 0.0029, 0);
}

static void test_q4_k_m_calibrated_bf16_source(void **state) {
    (void)state;
    /* CI time: under the sanitizers the BF16 checkpoint's calibration is
     * test_mlx_calib's (the same reader and forward) */
    if (sanitized()) skip();
    check_calibrated("q4_k_m", 0.0029, 1);
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
    tu_write_text(txt, "And God said, Let there be light: and there was light.\n");
    tu_refused_exit(1, "calibration text of one line", "need at least", out,
                    "'%s' convert '%s' -o '%s' --type q4_0 --calib '%s' --quiet", tu_bin(), f32, out, txt);
}

TU_MAIN(NULL, NULL, test_q4_0_calibrated, test_q4_k_m_calibrated, test_q4_k_m_calibrated_bf16_source,
        test_layer_groups_same_bytes, test_short_calibration_text)
