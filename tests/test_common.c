/* test_common.c — half-precision conversion against the IEEE definition,
 * atomic output files, error messages. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/common.h"

/* Independent reference: round-to-nearest-even f16 through double arithmetic. */
static uint16_t ref_f16(float f) {
    if (isnan(f)) return 0x7e00 | (signbit(f) ? 0x8000 : 0);
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    double a = fabs((double)f);
    if (a >= 65520.0) return sign | 0x7c00;
    if (a < ldexp(1, -14)) { /* subnormal: multiples of 2^-24 */
        double q = a / ldexp(1, -24);
        double r = nearbyint(q); /* default rounding mode: ties to even */
        return sign | (uint16_t)r;
    }
    int e;
    double m = frexp(a, &e); /* a = m * 2^e, m in [0.5,1) */
    double q = nearbyint(m * 2048.0); /* 11 significant bits */
    if (q == 2048.0) { q = 1024.0; e++; }
    int exp16 = e - 1 + 15;
    if (exp16 >= 31) return sign | 0x7c00;
    return sign | (uint16_t)(exp16 << 10) | (uint16_t)((int)q - 1024);
}

static void test_f16_roundtrip_all(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaN payloads */
        float f = phiq_f16_to_f32((uint16_t)h);
        assert_int_equal(phiq_f32_to_f16(f), h);
    }
}

static void test_f16_rounding_matches_ieee(void **state) {
    (void)state;
    srand(1);
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = ((uint32_t)rand() << 16) ^ (uint32_t)rand();
        float f;
        memcpy(&f, &u, 4);
        if (isnan(f)) continue;
        if (phiq_f32_to_f16(f) != ref_f16(f)) {
            fail_msg("f=%a got %04x want %04x", (double)f, phiq_f32_to_f16(f), ref_f16(f));
        }
    }
}

static void test_bf16(void **state) {
    (void)state;
    assert_int_equal(phiq_f32_to_bf16(1.0f), 0x3f80);
    /* 1 + 2^-8 is a tie between 0x3f80 and 0x3f81: even wins */
    assert_int_equal(phiq_f32_to_bf16(1.00390625f), 0x3f80);
    assert_int_equal(phiq_f32_to_bf16(1.01171875f), 0x3f82);
    assert_true(phiq_bf16_to_f32(0x3f80) == 1.0f);
}

static void test_outfile_atomic(void **state) {
    (void)state;
    const char *p = tu_tmp("out.bin");
    phiq_outfile o;
    assert_int_equal(phiq_outfile_open(&o, p), 0);
    assert_int_equal(phiq_outfile_write(&o, "abc", 3), 0);
    assert_int_equal(access(p, F_OK), -1); /* not visible before commit */
    phiq_outfile_abort(&o);
    assert_int_equal(access(p, F_OK), -1);
    char *out = NULL;
    assert_int_equal(tu_run(&out, NULL, "ls -A '%s'", tu_tmpdir()), 0);
    assert_string_equal(out, ""); /* no temporary left behind */
    free(out);
    assert_int_equal(phiq_outfile_open(&o, p), 0);
    assert_int_equal(phiq_outfile_write(&o, "abc", 3), 0);
    assert_int_equal(phiq_outfile_pad(&o, 32), 0);
    assert_int_equal(phiq_outfile_commit(&o), 0);
    size_t n;
    free(tu_read_all(p, &n));
    assert_int_equal(n, 32);
}

static void test_outfile_bad_dir(void **state) {
    (void)state;
    phiq_outfile o;
    assert_true(phiq_outfile_open(&o, "/nonexistent-dir/x.gguf") < 0);
    assert_non_null(strstr(phiq_error(), "/nonexistent-dir/x.gguf"));
}

TU_MAIN(NULL, NULL, test_f16_roundtrip_all, test_f16_rounding_matches_ieee, test_bf16, test_outfile_atomic,
        test_outfile_bad_dir)
