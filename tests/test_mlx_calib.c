/* test_mlx_calib.c — `phiq convert --format mlx --calib` on the fixture, by
 * the protocol: calibrated on kjv-calibration.txt only, KL divergence
 * from the f32 model on kjv-heldout.txt at context 256. 4-bit group-64 MLX
 * must reach <= 0.75x the KLD of plain mx.quantize (phiq's plain export is
 * bit-exact with tests/ref/mlx_reference.py, see test_mlx) at the same size.
 *
 * That stock mlx-lm reads the calibrated directory: its safetensors header,
 * index and config.json are byte-identical to the plain export's (same names,
 * dtypes, shapes, offsets: only values differ), and mlx_reference.py's
 * independent reader (MLX's unpacking, w = scale * q + bias) turns it into an
 * f32 checkpoint whose logits equal phiq's reading of the MLX directory bit
 * for bit.
 *
 * The KLD is measured on the first 64 chunks of 256 tokens of the held-out
 * text (16k tokens, 8k scored). Under the sanitizers (PHIQ_SANITIZED)
 * calibration uses 2 chunks of 128 and evaluation 1 chunk, without the
 * quality gate (the release build's). */
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sanitized(void) { return getenv("PHIQ_SANITIZED") != NULL; }

static char fx[4096], text_cal[4096], text_eval[4096], plain[4096], cal[4096], f32[4096];

static int setup(void **state) {
    (void)state;
    snprintf(fx, sizeof fx, "%s", tu_shared_path("fixtures/tiny-phi3-kjv"));
    snprintf(text_cal, sizeof text_cal, "%s", tu_shared_path("fixtures/text/kjv-calibration.txt"));
    snprintf(text_eval, sizeof text_eval, "%s", tu_shared_path("fixtures/text/kjv-heldout.txt"));
    snprintf(plain, sizeof plain, "%s", tu_tmp("mlxc-plain"));
    snprintf(cal, sizeof cal, "%s", tu_tmp("mlxc-calib"));
    snprintf(f32, sizeof f32, "%s", tu_tmp("mlxc-f32.gguf"));
    tu_run(NULL, NULL, "rm -rf '%s' '%s'", plain, cal);
    const char *steps[2] = {"--type f32", "--format mlx --bits 4 --group-size 64"};
    const char *outs[2] = {f32, plain};
    for (int i = 0; i < 2; i++) {
        char *err = NULL;
        int rc = tu_run(NULL, &err, "'%s' convert '%s' -o '%s' %s --quiet", tu_bin(), fx, outs[i], steps[i]);
        if (rc) fprintf(stderr, "setup: convert %s: %s\n", steps[i], err ? err : "");
        free(err);
        if (rc) return -1;
    }
    char *err = NULL;
    char *out = NULL;
    if (tu_run(&out, &err, "'%s' convert '%s' -o '%s' --format mlx --bits 4 --group-size 64 --calib '%s' %s --json -t 2",
               tu_bin(), fx, cal, text_cal, sanitized() ? "--calib-chunks 2 --calib-ctx 128" : "")) {
        fprintf(stderr, "setup: convert --calib: %s\n", err ? err : "");
        free(err);
        free(out);
        return -1;
    }
    /* every quantized Linear of the fixture (4 layers x 4 + lm_head) has a Hessian */
    int ok = strstr(out, "\"gptq_modules\":\t17") != NULL;
    if (!ok) fprintf(stderr, "setup: expected 17 GPTQ modules in %s\n", out);
    free(out);
    free(err);
    return ok ? 0 : -1;
}

static double eval_kld(const char *model) {
    char *out = NULL, *err = NULL;
    if (tu_run(&out, &err, "'%s' eval '%s' --ref '%s' --text '%s' --ctx 256 %s --json --quiet -t 2", tu_bin(), model, f32,
               text_eval, sanitized() ? "--chunks 1" : "--chunks 64"))
        fail_msg("eval %s: %s", model, err);
    const char *p = strstr(out, "\"kld_mean\": ");
    assert_non_null(p);
    double v = atof(p + 12);
    free(out);
    free(err);
    return v;
}

static void test_kld_below_three_quarters(void **state) {
    (void)state;
    double kp = eval_kld(plain), kc = eval_kld(cal);
    fprintf(stderr, "MLX 4-bit g64 KLD vs f32 on kjv-heldout (ctx 256): plain mx.quantize %.5f, --calib %.5f (%.2fx)\n", kp,
            kc, kc / kp);
    assert_true(kp > 0 && kp < 1 && kc > 0 && kc < 1);
    if (sanitized()) return;
    assert_true(kc <= 0.75 * kp);
}

static void assert_same_file(const char *rel) {
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/%s", plain, rel);
    snprintf(b, sizeof b, "%s/%s", cal, rel);
    size_t na, nb;
    uint8_t *da = tu_read_all(a, &na), *db = tu_read_all(b, &nb);
    assert_non_null(da);
    assert_non_null(db);
    assert_int_equal(na, nb);
    if (!strcmp(rel, "model.safetensors")) { /* the header: its length, then its JSON */
        assert_true(na >= 8);
        uint64_t n;
        memcpy(&n, da, 8);
        assert_true(n + 8 <= na);
        assert_memory_equal(da, db, (size_t)n + 8);
        /* and the values do differ */
        assert_true(memcmp(da + 8 + n, db + 8 + n, na - 8 - (size_t)n) != 0);
    } else {
        assert_memory_equal(da, db, na);
    }
    free(da);
    free(db);
}

static void test_same_layout_as_plain(void **state) {
    (void)state;
    assert_same_file("model.safetensors");
    assert_same_file("config.json");
    assert_same_file("tokenizer.json");
}

static void test_reference_reader(void **state) {
    (void)state;
    tu_require_numpy();
    char script[4096], deq[4096];
    snprintf(script, sizeof script, "%s/tests/ref/mlx_reference.py", PHIQ_SOURCE_DIR);
    snprintf(deq, sizeof deq, "%s", tu_tmp("mlxc-read"));
    char *err = NULL;
    if (tu_run(NULL, &err, "rm -rf '%s' && /usr/bin/python3 '%s' read '%s' '%s'", deq, script, cal, deq))
        fail_msg("mlx_reference.py read: %s", err);
    free(err);
    tu_assert_same_logits(cal, deq);
}

static void test_bad_calibration(void **state) {
    (void)state;
    char *err = NULL, out[4200];
    snprintf(out, sizeof out, "%s", tu_tmp("mlxc-bad"));
    assert_int_not_equal(tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --format mlx --calib /nonexistent.txt --quiet",
                                tu_bin(), fx, out), 0);
    assert_non_null(strstr(err, "nonexistent"));
    int lines = 0;
    for (const char *c = err; *c; c++) lines += *c == '\n';
    assert_int_equal(lines, 1);
    free(err);
    assert_int_not_equal(tu_run(NULL, NULL, "test -e '%s'", out), 0); /* nothing written */
    assert_int_not_equal(tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --format mlx --calib '%s' --calib-chunks 0",
                                tu_bin(), fx, out, text_cal), 0);
    assert_non_null(strstr(err, "--calib-chunks"));
    free(err);
}

TU_MAIN(setup, NULL, test_kld_below_three_quarters, test_same_layout_as_plain, test_reference_reader,
        test_bad_calibration)
