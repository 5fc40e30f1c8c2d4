/* test_onnx_quant.c — the MatMulNBits RTN quantizer against hand-worked
 * examples of ONNX Runtime's default (MLAS) quantization rule as documented in
 * docs/reference/onnx-ortgenai-matmulnbits.md §4 (expected bytes below were
 * computed by hand from the formulas, not by this code):
 *   symmetric: v = largest-magnitude block value (min on ties),
 *              scale = v / -2^(bits-1), q = clamp(roundf(w * (1/scale) + 2^(bits-1)))
 *   asymmetric: scale = (max(mx,0) - min(mn,0)) / (2^bits - 1), zp = roundf(-min/scale)
 * and the layout: even k in the low nibble, zero points packed per row. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "onnx/matmulnbits_quant.h"

static void quant1(int bits, int bs, bool sym, const float *w, int64_t n, int64_t k, uint8_t *b, float *s,
                   uint8_t *z, phiq_mnb_layout *l) {
    assert_int_equal(phiq_mnb_layout_init(l, bits, bs, sym, n, k, "w"), 0);
    phiq_mnb_quantize_rows(l, w, n, b, s, z);
}

/* One symmetric 4-bit block of 16 weights: its 8 code bytes and its scale. */
static const struct {
    const char *what;
    float w[16];
    uint8_t want[8];
    float scale;
} SYM4_BLOCKS[] = {
    /* max 7 beats min -4: scale = -7/8; 7 -> code 0, -4 -> 13, 1 -> 7,
     * -2 -> 10, 3 -> 5, 0.5 -> 7, 0 -> 8. */
    {"basic", {1, -2, 3, -4, 0.5f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7},
     {0xA7, 0xD5, 0x87, 0x88, 0x88, 0x88, 0x88, 0x08}, -0.875f},
    /* |2| == |-2|: the minimum wins, so scale = -2/-8 = +0.25, 2 -> 16 -> 15,
     * -2 -> 0, 1 -> 12. (Picking the maximum would give 0xF0.) */
    {"tie takes the minimum", {2, -2, 1, 0}, {0x0F, 0x8C, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88}, 0.25f},
    /* roundf rounds halves away from zero: with scale 1 (v = -8), 0.5 -> 8.5
     * -> 9 and 2.5 -> 10.5 -> 11 (round-half-even would give 8 and 10). */
    {"halves round away from zero", {0.5f, 2.5f, -8, 4}, {0xB9, 0xC0, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88}, 1.0f},
};

static void test_sym4_blocks(void **st) {
    (void)st;
    for (size_t c = 0; c < sizeof SYM4_BLOCKS / sizeof *SYM4_BLOCKS; c++) {
        uint8_t b[8];
        float s[1];
        phiq_mnb_layout l;
        quant1(4, 16, true, SYM4_BLOCKS[c].w, 1, 16, b, s, NULL, &l);
        if (memcmp(b, SYM4_BLOCKS[c].want, 8) || s[0] != SYM4_BLOCKS[c].scale || l.kb != 1 || l.blob != 8)
            fail_msg("%s: codes %02x %02x %02x %02x %02x %02x %02x %02x, scale %g, kb %lld, blob %lld",
                     SYM4_BLOCKS[c].what, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], (double)s[0], (long long)l.kb,
                     (long long)l.blob);
    }
}

/* An all-zero block: scale is -0/8 = -0.0 (sign bit set, as MLAS writes it)
 * and every code is the zero point 8. */
static void test_sym4_zero_block(void **st) {
    (void)st;
    float w[32] = {0};
    uint8_t b[16];
    float s[1];
    phiq_mnb_layout l;
    quant1(4, 32, true, w, 1, 32, b, s, NULL, &l);
    for (int i = 0; i < 16; i++) assert_int_equal(b[i], 0x88);
    uint32_t u;
    memcpy(&u, &s[0], 4);
    assert_int_equal(u, 0x80000000u);
}

/* Asymmetric, three blocks in one row (K = 48, bs 16):
 *  block 0 [-1, 0.., 2]: scale 3/15 = 0.2, zp 5; -1 -> 0, 0 -> 5, 2 -> 15
 *  block 1 all 1: min clamps to 0, scale 1/15, zp 0, 1 -> 15
 *  block 2 all -3: max clamps to 0, scale 0.2, zp 15, -3 -> 0
 * zero points per row: ceil(3/2) = 2 bytes: 0x05 (block 0 low, block 1 high), 0x0F. */
static void test_asym4_blocks_and_zp_packing(void **st) {
    (void)st;
    float w[48] = {0};
    w[0] = -1;
    w[15] = 2;
    for (int i = 16; i < 32; i++) w[i] = 1;
    for (int i = 32; i < 48; i++) w[i] = -3;
    uint8_t b[24], z[2];
    float s[3];
    phiq_mnb_layout l;
    quant1(4, 16, false, w, 1, 48, b, s, z, &l);
    assert_int_equal(l.zp_row, 2);
    assert_int_equal(z[0], 0x05);
    assert_int_equal(z[1], 0x0F);
    assert_true(s[0] == 3.0f / 15.0f);
    assert_true(s[1] == 1.0f / 15.0f);
    assert_true(s[2] == 3.0f / 15.0f);
    assert_int_equal(b[0], 0x50);
    for (int i = 1; i < 7; i++) assert_int_equal(b[i], 0x55);
    assert_int_equal(b[7], 0xF5);
    for (int i = 8; i < 16; i++) assert_int_equal(b[i], 0xFF);
    for (int i = 16; i < 24; i++) assert_int_equal(b[i], 0x00);
}

/* 8-bit symmetric: v = 4, scale = -4/128 = -1/32; 1 -> 96, -2 -> 192,
 * 4 -> 0, 0 -> 128. */
static void test_sym8(void **st) {
    (void)st;
    float w[16] = {1, -2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4};
    uint8_t b[16];
    float s[1];
    phiq_mnb_layout l;
    quant1(8, 16, true, w, 1, 16, b, s, NULL, &l);
    assert_int_equal(b[0], 96);
    assert_int_equal(b[1], 192);
    assert_int_equal(b[2], 128);
    assert_int_equal(b[15], 0);
    assert_true(s[0] == -0.03125f);
}

/* 8-bit asymmetric: [-1 .. 2] -> scale 3/255, zp round(255/3) = 85. */
static void test_asym8(void **st) {
    (void)st;
    float w[16] = {-1, 0, 2};
    uint8_t b[16], z[1];
    float s[1];
    phiq_mnb_layout l;
    quant1(8, 16, false, w, 1, 16, b, s, z, &l);
    assert_int_equal(z[0], 85);
    assert_true(s[0] == 3.0f / 255.0f);
    assert_int_equal(b[0], 0);
    assert_int_equal(b[1], 85);
    assert_int_equal(b[2], 255);
}

/* Rows are independent and laid out [N, kb, blob]; dequantization inverts
 * within one step (the grid is [-8, 7] steps, so the side opposite the
 * extreme can clamp by up to one step; zero-point rounding likewise). */
static void test_rows_layout_and_roundtrip(void **st) {
    (void)st;
    const int N = 5, K = 256;
    float *w = malloc(sizeof(float) * N * K), *d = malloc(sizeof(float) * N * K);
    srand(7);
    for (int i = 0; i < N * K; i++) w[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int bits = 4; bits <= 8; bits += 4)
        for (int sym = 0; sym < 2; sym++)
            for (int bs = 16; bs <= 256; bs *= 2) {
                phiq_mnb_layout l;
                assert_int_equal(phiq_mnb_layout_init(&l, bits, bs, sym, N, K, "w"), 0);
                uint8_t *b = malloc((size_t)(N * l.kb * l.blob)), *z = malloc((size_t)(N * l.zp_row));
                float *s = malloc(sizeof(float) * N * l.kb);
                phiq_mnb_quantize_rows(&l, w, N, b, s, sym ? NULL : z);
                /* row 3 quantized alone gives the same bytes at row 3's place */
                uint8_t b3[512], z3[16];
                float s3[16];
                phiq_mnb_quantize_rows(&l, w + 3 * K, 1, b3, s3, sym ? NULL : z3);
                assert_memory_equal(b3, b + 3 * l.kb * l.blob, (size_t)(l.kb * l.blob));
                phiq_mnb_dequantize_rows(&l, b, s, sym ? NULL : z, N, d);
                for (int n = 0; n < N; n++)
                    for (int k = 0; k < K; k++) {
                        float sc = fabsf(s[n * l.kb + k / bs]);
                        assert_true(fabsf(d[n * K + k] - w[n * K + k]) <= sc + 1e-6f);
                    }
                free(b);
                free(z);
                free(s);
            }
    free(w);
    free(d);
}

static void test_layout_errors(void **st) {
    (void)st;
    phiq_mnb_layout l;
    assert_int_equal(phiq_mnb_layout_init(&l, 4, 48, true, 4, 96, "x.weight"), PHIQ_EINVAL);
    assert_non_null(strstr(phiq_error(), "power of two"));
    assert_int_equal(phiq_mnb_layout_init(&l, 4, 512, true, 4, 1024, "x.weight"), PHIQ_EINVAL);
    assert_int_equal(phiq_mnb_layout_init(&l, 4, 64, true, 4, 96, "x.weight"), PHIQ_EINVAL);
    assert_non_null(strstr(phiq_error(), "does not divide K = 96"));
    assert_int_equal(phiq_mnb_layout_init(&l, 3, 32, true, 4, 96, "x.weight"), PHIQ_EINVAL);
    assert_int_equal(phiq_mnb_layout_init(&l, 8, 32, false, 4, 96, "x.weight"), 0);
    assert_int_equal(l.kb, 3);
    assert_int_equal(l.zp_row, 3);
    assert_int_equal(phiq_mnb_layout_init(&l, 4, 32, false, 4, 96, "x.weight"), 0);
    assert_int_equal(l.zp_row, 2);
}

TU_MAIN(NULL, NULL, test_sym4_blocks, test_sym4_zero_block,
        test_asym4_blocks_and_zp_packing, test_sym8, test_asym8, test_rows_layout_and_roundtrip, test_layout_errors)
