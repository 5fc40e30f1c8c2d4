/* test_quant.c — unit tests of the quantizers and mix rules that need no
 * external reference: round-trip error bounds per type, block layouts
 * built by hand from the documented bit packing (docs/reference
 * llamacpp-gguf-quant.md §3.2), chunking invariance, argument errors, and
 * the preset/override/shape rules of phiq_mix. Byte-exactness against
 * llama.cpp is in test_quant_llamaref.c.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/common.h"
#include "formats/ggml_type.h"
#include "quant/mix.h"
#include "quant/quant.h"
#include "quant/quant_internal.h"
#include "testutil.h"

static uint64_t s_rng = 88172645463325252ull;
static float urand(void) {
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (float)((s_rng >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

static const struct { int type; double rel; } TYPES[] = {
    /* max |error| allowed relative to the block's max |x| (generous bounds
     * from the level count; Q4_0/Q5_0 clip the side opposite the signed max
     * at 7 resp. 15 steps, so up to one full step there) */
    {PHIQ_GGML_TYPE_F16, 1e-3},   {PHIQ_GGML_TYPE_BF16, 8e-3},  {PHIQ_GGML_TYPE_Q8_0, 0.01},
    {PHIQ_GGML_TYPE_Q5_0, 0.07},  {PHIQ_GGML_TYPE_Q5_1, 0.05},  {PHIQ_GGML_TYPE_Q4_0, 0.14},
    {PHIQ_GGML_TYPE_Q4_1, 0.1},   {PHIQ_GGML_TYPE_IQ4_NL, 0.15}, {PHIQ_GGML_TYPE_IQ4_XS, 0.2},
    {PHIQ_GGML_TYPE_Q6_K, 0.04},  {PHIQ_GGML_TYPE_Q5_K, 0.08},  {PHIQ_GGML_TYPE_Q4_K, 0.15},
    {PHIQ_GGML_TYPE_Q3_K, 0.3},   {PHIQ_GGML_TYPE_Q2_K, 0.6},   {PHIQ_GGML_TYPE_Q8_K, 0.01},
    {PHIQ_GGML_TYPE_Q8_1, 0.01},  {PHIQ_GGML_TYPE_F32, 0.0},
};

/* Round trip on several regimes; error measured per 256-element span
 * against that span's max |x|. */
static void test_roundtrip_bounds(void **state) {
    (void)state;
    const int64_t ne0 = 512, nrows = 6;
    float *x = malloc(sizeof(float) * ne0 * nrows), *y = malloc(sizeof(float) * ne0 * nrows);
    uint8_t *q = malloc((size_t)(ne0 * nrows * 4));
    const float scales[] = {1.0f, 1e-3f, 1e3f};
    for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++) {
        for (int64_t i = 0; i < ne0 * nrows; i++) {
            const int64_t r = i / ne0;
            float v = urand() * scales[si];
            if (r == 1) v = 0.0f;                     /* zeros */
            if (r == 2) v = 0.5f * scales[si];        /* constant */
            if (r == 3 && i % 37 == 0) v *= 40.0f;    /* outliers */
            if (r == 4) v = fabsf(v);                 /* one-sided */
            x[i] = v;
        }
        for (size_t ti = 0; ti < sizeof TYPES / sizeof TYPES[0]; ti++) {
            const int t = TYPES[ti].type;
            const int64_t n = phiq_quantize(t, x, q, nrows, ne0, NULL);
            assert_int_equal(n, nrows * phiq_ggml_row_size(t, ne0));
            assert_int_equal(phiq_dequantize(t, q, y, ne0 * nrows), 0);
            for (int64_t b = 0; b < ne0 * nrows; b += 256) {
                float amax = 0, err = 0;
                for (int j = 0; j < 256; j++) {
                    amax = fmaxf(amax, fabsf(x[b + j]));
                    err = fmaxf(err, fabsf(x[b + j] - y[b + j]));
                }
                /* at 1e-3 the fp16 super-block scales are subnormal (spacing
                 * 6e-8, a sizeable fraction of a K-quant d ~ 1e-7..1e-5), as in
                 * llama.cpp: allow 3x the bound plus ~128 half-spacings */
                const double bound = (si == 1 ? 3 : 1) * TYPES[ti].rel * amax + 4e-6;
                if (err > bound)
                    fail_msg("%s scale %g span %lld: max err %g > %g (amax %g)", phiq_ggml_type_name(t),
                             (double)scales[si], (long long)b, (double)err, bound, (double)amax);
                if (amax == 0) assert_true(err == 0);
            }
        }
    }
    free(x);
    free(y);
    free(q);
}

/* With an imatrix the bounds still hold and the result differs from the
 * unweighted path only where weights matter; rows quantized one by one
 * equal rows quantized together (chunking invariance, for threads). */
static void test_imatrix_and_chunking(void **state) {
    (void)state;
    const int64_t ne0 = 256, nrows = 5;
    float x[256 * 5], w[256];
    for (int i = 0; i < 256 * 5; i++) x[i] = urand();
    for (int i = 0; i < 256; i++) w[i] = 0.1f + (urand() + 1.0f) * 2.0f;
    const int types[] = {PHIQ_GGML_TYPE_Q4_0, PHIQ_GGML_TYPE_Q4_1, PHIQ_GGML_TYPE_Q5_0, PHIQ_GGML_TYPE_Q5_1,
                         PHIQ_GGML_TYPE_Q2_K, PHIQ_GGML_TYPE_Q3_K, PHIQ_GGML_TYPE_Q4_K, PHIQ_GGML_TYPE_Q5_K,
                         PHIQ_GGML_TYPE_Q6_K, PHIQ_GGML_TYPE_IQ4_NL, PHIQ_GGML_TYPE_IQ4_XS, PHIQ_GGML_TYPE_Q8_0};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const int t = types[k];
        const int64_t rs = phiq_ggml_row_size(t, ne0);
        uint8_t all[256 * 5 * 2], one[256 * 5 * 2];
        for (int im = 0; im < 2; im++) {
            assert_int_equal(phiq_quantize(t, x, all, nrows, ne0, im ? w : NULL), nrows * rs);
            for (int64_t r = 0; r < nrows; r++)
                assert_int_equal(phiq_quantize(t, x + r * ne0, one + r * rs, 1, ne0, im ? w : NULL), rs);
            assert_memory_equal(all, one, (size_t)(nrows * rs));
        }
    }
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* Q4_0: d = max/-8 with the sign of the largest |x|; element j in the low
 * nibble of byte j, element j+16 in the high nibble. */
static void test_layout_q4_0(void **state) {
    (void)state;
    float x[32];
    for (int j = 0; j < 32; j++) x[j] = (float)((j * 5) % 16) - 8.0f; /* values -8..7, x[0] = -8 */
    uint8_t b[18];
    assert_int_equal(phiq_quantize(PHIQ_GGML_TYPE_Q4_0, x, b, 1, 32, NULL), 18);
    assert_int_equal(rd16(b), 0x3C00); /* d = -8/-8 = 1.0 */
    for (int j = 0; j < 16; j++) {
        assert_int_equal(b[2 + j] & 0xF, (int)x[j] + 8);
        assert_int_equal(b[2 + j] >> 4, (int)x[j + 16] + 8);
    }
    /* Q8_0: amax/127 and roundf (half away from zero) */
    float z[32] = {0};
    z[0] = 127.0f;
    z[1] = 2.5f;
    z[2] = -2.5f;
    uint8_t c[34];
    assert_int_equal(phiq_quantize(PHIQ_GGML_TYPE_Q8_0, z, c, 1, 32, NULL), 34);
    assert_int_equal(rd16(c), 0x3C00);
    assert_int_equal((int8_t)c[2], 127);
    assert_int_equal((int8_t)c[3], 3);
    assert_int_equal((int8_t)c[4], -3);
}

/* Q5_0: qh is a little-endian u32 whose bit i is bit 4 of element i. */
static void test_layout_q5_0(void **state) {
    (void)state;
    uint8_t b[22] = {0};
    b[0] = 0x00; b[1] = 0x3C; /* d = 1 */
    const uint32_t qh = 0x80000001u; /* elements 0 and 31 have bit 4 set */
    memcpy(b + 2, &qh, 4);
    for (int j = 0; j < 16; j++) b[6 + j] = (uint8_t)(j | (15 - j) << 4);
    float y[32];
    assert_int_equal(phiq_dequantize(PHIQ_GGML_TYPE_Q5_0, b, y, 32), 0);
    assert_true(y[0] == (float)(0 + 16 - 16));
    assert_true(y[1] == (float)(1 - 16));
    assert_true(y[16] == (float)(15 - 16));
    assert_true(y[31] == (float)(0 + 16 - 16));
}

/* Q4_K: 6-bit sc/m packed in 12 bytes; chunk c, byte l holds element
 * 64c+l (low nibble) and 64c+32+l (high nibble). */
static void test_layout_q4_K(void **state) {
    (void)state;
    uint8_t b[144] = {0};
    b[0] = 0x00; b[1] = 0x3C; /* d = 1 */
    b[2] = 0x00; b[3] = 0x3C; /* dmin = 1 */
    const int sc[8] = {1, 2, 3, 4, 33, 34, 63, 17}, mn[8] = {0, 1, 0, 2, 48, 5, 0, 63};
    uint8_t *s = b + 4;
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            s[j] = (uint8_t)sc[j];
            s[j + 4] = (uint8_t)mn[j];
        } else {
            s[j + 4] = (uint8_t)((sc[j] & 15) | (mn[j] & 15) << 4);
            s[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
            s[j] |= (uint8_t)((mn[j] >> 4) << 6);
        }
    }
    for (int k = 0; k < 128; k++) b[16 + k] = (uint8_t)((k % 16) | ((k * 7) % 16) << 4);
    float y[256];
    assert_int_equal(phiq_dequantize(PHIQ_GGML_TYPE_Q4_K, b, y, 256), 0);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            const int k = 32 * c + l, lo = k % 16, hi = (k * 7) % 16;
            assert_true(y[64 * c + l] == (float)(sc[2 * c] * lo - mn[2 * c]));
            assert_true(y[64 * c + 32 + l] == (float)(sc[2 * c + 1] * hi - mn[2 * c + 1]));
        }
}

/* Q6_K: ql/qh split per 128-half, int8 scale per 16 elements. */
static void test_layout_q6_K(void **state) {
    (void)state;
    int8_t q[256];
    for (int i = 0; i < 256; i++) q[i] = (int8_t)((i * 11) % 64 - 32);
    uint8_t b[210] = {0};
    uint8_t *ql = b, *qh = b + 128;
    int8_t *scales = (int8_t *)(b + 192);
    for (int i = 0; i < 16; i++) scales[i] = (int8_t)(i - 8);
    b[208] = 0x00; b[209] = 0x3C;
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const int e0 = q[128 * h + l] + 32, e1 = q[128 * h + l + 32] + 32, e2 = q[128 * h + l + 64] + 32,
                      e3 = q[128 * h + l + 96] + 32;
            ql[64 * h + l] = (uint8_t)((e0 & 15) | (e2 & 15) << 4);
            ql[64 * h + l + 32] = (uint8_t)((e1 & 15) | (e3 & 15) << 4);
            qh[32 * h + l] = (uint8_t)((e0 >> 4) | (e1 >> 4) << 2 | (e2 >> 4) << 4 | (e3 >> 4) << 6);
        }
    float y[256];
    assert_int_equal(phiq_dequantize(PHIQ_GGML_TYPE_Q6_K, b, y, 256), 0);
    for (int i = 0; i < 256; i++) {
        const int h = i / 128, l = i % 32, k = (i % 128) / 32;
        assert_true(y[i] == (float)(scales[8 * h + l / 16 + 2 * k] * q[i]));
    }
}

/* IQ4_XS: 6-bit scales (+32) split into scales_l nibbles and scales_h pairs. */
static void test_layout_iq4_xs(void **state) {
    (void)state;
    static const int8_t kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    uint8_t b[136] = {0};
    b[0] = 0x00; b[1] = 0x3C;
    const int ls[8] = {0, 63, 32, 33, 31, 1, 47, 16};
    uint16_t sh = 0;
    for (int ib = 0; ib < 8; ib++) {
        b[4 + ib / 2] |= (uint8_t)((ls[ib] & 15) << 4 * (ib % 2));
        sh |= (uint16_t)((ls[ib] >> 4) << 2 * ib);
    }
    memcpy(b + 2, &sh, 2);
    for (int k = 0; k < 128; k++) b[8 + k] = (uint8_t)(k % 16 | ((k + 3) % 16) << 4);
    float y[256];
    assert_int_equal(phiq_dequantize(PHIQ_GGML_TYPE_IQ4_XS, b, y, 256), 0);
    for (int ib = 0; ib < 8; ib++)
        for (int j = 0; j < 16; j++) {
            const int k = 16 * ib + j;
            assert_true(y[32 * ib + j] == (float)((ls[ib] - 32) * kv[k % 16]));
            assert_true(y[32 * ib + 16 + j] == (float)((ls[ib] - 32) * kv[(k + 3) % 16]));
        }
}

static void test_errors_and_finite(void **state) {
    (void)state;
    float x[64] = {0};
    uint8_t q[256];
    assert_true(phiq_quantize(PHIQ_GGML_TYPE_IQ2_XXS, x, q, 1, 256, NULL) < 0);
    assert_true(phiq_quantize(PHIQ_GGML_TYPE_Q4_K, x, q, 1, 64, NULL) < 0); /* not whole 256-blocks */
    assert_non_null(strstr(phiq_error(), "Q4_K"));
    assert_true(phiq_dequantize(PHIQ_GGML_TYPE_Q4_0, q, x, 33) < 0);
    assert_false(phiq_quant_can_quantize(PHIQ_GGML_TYPE_MXFP4));
    assert_true(phiq_quant_can_quantize(PHIQ_GGML_TYPE_IQ4_XS));
    assert_int_equal(phiq_quant_check_finite(x, 64), -1);
    x[40] = INFINITY;
    x[50] = NAN;
    assert_int_equal(phiq_quant_check_finite(x, 64), 40);
    x[40] = -INFINITY;
    assert_int_equal(phiq_quant_check_finite(x, 64), 40);
    x[40] = 3.4e38f;
    assert_int_equal(phiq_quant_check_finite(x, 64), 50);
}

/* ---- mix --------------------------------------------------------------------- */

static int ty(const phiq_mix *m, const char *name, int nd, int64_t ne0, int n_layer) {
    const int64_t ne[2] = {ne0, 64};
    return phiq_mix_tensor_type(m, name, nd, ne, n_layer, PHIQ_GGML_TYPE_F32);
}

static void test_mix_presets(void **state) {
    (void)state;
    phiq_mix m;
    assert_int_equal(phiq_mix_parse("q4_k_m", &m), 0);
    assert_string_equal(m.name, "Q4_K_M");
    assert_int_equal(m.ftype, 15);
    assert_int_equal(phiq_mix_parse("int4", &m), 0);
    assert_int_equal(m.ftype, 15);
    assert_int_equal(phiq_mix_parse("INT8", &m), 0);
    assert_int_equal(m.default_type, PHIQ_GGML_TYPE_Q8_0);
    assert_int_equal(m.ftype, 7);
    assert_int_equal(phiq_mix_parse("bf16", &m), 0);
    assert_int_equal(m.ftype, 32);
    assert_int_equal(phiq_mix_parse("IQ4_XS", &m), 0);
    assert_int_equal(m.ftype, 30);
    assert_int_equal(phiq_mix_parse("fp32", &m), 0);
    assert_int_equal(m.ftype, 0);
    assert_int_equal(phiq_mix_parse("Q4_K_XL", &m), PHIQ_EINVAL);
    assert_non_null(strstr(phiq_error(), "Q4_K_XL"));
    assert_non_null(strstr(phiq_error(), "Q5_K_S"));
    assert_non_null(strstr(phiq_error(), "int4"));
}

static void test_mix_rules(void **state) {
    (void)state;
    phiq_mix m;
    assert_int_equal(phiq_mix_parse("Q4_K_M", &m), 0);
    /* never quantized */
    assert_int_equal(ty(&m, "blk.0.attn_norm.weight", 1, 3072, 32), PHIQ_GGML_TYPE_F32);
    assert_int_equal(ty(&m, "rope_factors_long.weight", 1, 48, 32), PHIQ_GGML_TYPE_F32);
    assert_int_equal(ty(&m, "blk.0.ffn_gate_inp.weight", 2, 3072, 32), PHIQ_GGML_TYPE_F32);
    assert_int_equal(ty(&m, "blk.0.attn_qkv.bias", 2, 3072, 32), PHIQ_GGML_TYPE_F32);
    /* output Q6_K; layers per use_more_bits (layer 6 yes, layer 5 no) */
    assert_int_equal(ty(&m, "output.weight", 2, 3072, 32), PHIQ_GGML_TYPE_Q6_K);
    assert_int_equal(ty(&m, "token_embd.weight", 2, 3072, 32), PHIQ_GGML_TYPE_Q4_K);
    assert_int_equal(ty(&m, "blk.6.attn_qkv.weight", 2, 3072, 32), PHIQ_GGML_TYPE_Q6_K);
    assert_int_equal(ty(&m, "blk.5.attn_qkv.weight", 2, 3072, 32), PHIQ_GGML_TYPE_Q4_K);
    assert_int_equal(ty(&m, "blk.31.ffn_down.weight", 2, 8192, 32), PHIQ_GGML_TYPE_Q6_K);
    assert_int_equal(ty(&m, "blk.30.ffn_up.weight", 2, 3072, 32), PHIQ_GGML_TYPE_Q4_K);
    /* tied: token_embd follows the output rule */
    m.has_output = false;
    assert_int_equal(ty(&m, "token_embd.weight", 2, 3072, 32), PHIQ_GGML_TYPE_Q6_K);
    m.has_output = true;
    /* pure: default everywhere, shape fallback still applies */
    m.pure = true;
    assert_int_equal(ty(&m, "output.weight", 2, 3072, 32), PHIQ_GGML_TYPE_Q4_K);
    assert_int_equal(ty(&m, "blk.0.attn_qkv.weight", 2, 3072, 32), PHIQ_GGML_TYPE_Q4_K);
    assert_int_equal(ty(&m, "blk.0.attn_qkv.weight", 2, 288, 32), PHIQ_GGML_TYPE_Q5_0);
    assert_int_equal(ty(&m, "blk.0.attn_qkv.weight", 2, 80, 32), PHIQ_GGML_TYPE_F16);
    m.pure = false;
    /* explicit output / token-embedding types, overrides (first match wins) */
    m.output_type = PHIQ_GGML_TYPE_Q8_0;
    m.token_embd_type = PHIQ_GGML_TYPE_F16;
    assert_int_equal(ty(&m, "output.weight", 2, 3072, 32), PHIQ_GGML_TYPE_Q8_0);
    assert_int_equal(ty(&m, "token_embd.weight", 2, 3072, 32), PHIQ_GGML_TYPE_F16);
    assert_int_equal(phiq_mix_add_override(&m, "ffn_down=q8_0"), 0);
    assert_int_equal(phiq_mix_add_override(&m, "BLK\\.[0-9]+\\.FFN_.*=q5_k"), 0); /* lower-cased */
    assert_int_equal(ty(&m, "blk.5.ffn_down.weight", 2, 8192, 32), PHIQ_GGML_TYPE_Q8_0);
    assert_int_equal(ty(&m, "blk.5.ffn_up.weight", 2, 3072, 32), PHIQ_GGML_TYPE_Q5_K);
    assert_true(phiq_mix_add_override(&m, "(unclosed=Q4_0") < 0);
    assert_true(phiq_mix_add_override(&m, "foo=Q9_9") < 0);
    assert_true(phiq_mix_add_override(&m, "noequals") < 0);
    phiq_mix_free(&m);
    /* MoE with 8 experts: attn_v-like and attn_k to Q8_0 */
    assert_int_equal(phiq_mix_parse("Q4_K_S", &m), 0);
    m.n_expert = 8;
    assert_int_equal(ty(&m, "blk.9.attn_qkv.weight", 2, 4096, 32), PHIQ_GGML_TYPE_Q8_0);
    assert_int_equal(ty(&m, "blk.9.attn_output.weight", 2, 4096, 32), PHIQ_GGML_TYPE_Q5_K);
    /* Q4_0 with imatrix: first n/8 ffn_down layers Q4_1 */
    assert_int_equal(phiq_mix_parse("Q4_0", &m), 0);
    assert_int_equal(ty(&m, "blk.1.ffn_down.weight", 2, 8192, 32), PHIQ_GGML_TYPE_Q4_0);
    m.has_imatrix = true;
    assert_int_equal(ty(&m, "blk.1.ffn_down.weight", 2, 8192, 32), PHIQ_GGML_TYPE_Q4_1);
    assert_int_equal(ty(&m, "blk.4.ffn_down.weight", 2, 8192, 32), PHIQ_GGML_TYPE_Q4_0);
    /* F16 preset: matrices F16 (incl. output/token_embd), 1-D stay source type */
    assert_int_equal(phiq_mix_parse("F16", &m), 0);
    assert_int_equal(ty(&m, "output.weight", 2, 3072, 32), PHIQ_GGML_TYPE_F16);
    assert_int_equal(ty(&m, "token_embd.weight", 2, 3072, 32), PHIQ_GGML_TYPE_F16);
    assert_int_equal(ty(&m, "output_norm.weight", 1, 3072, 32), PHIQ_GGML_TYPE_F32);
}

/* The AVX2 Q4_K/Q5_K search must equal the scalar one bit for bit, on
 * ordinary and degenerate super-blocks (constant, zero, one-sided, ties). */
static void test_k45_simd_equals_scalar(void **state) {
    (void)state;
#if PHIQ_QUANT_HAVE_AVX2
    if (!__builtin_cpu_supports("avx2")) {
        fprintf(stderr, "SKIP: no AVX2 on this CPU\n");
        skip();
    }
    float x[256];
    const int nblocks = getenv("PHIQ_SANITIZED") ? 200 : 3000;
    for (int b = 0; b < nblocks; b++) {
        const int kind = b % 7;
        for (int i = 0; i < 256; i++) {
            float v = urand() * (kind == 3 ? 100.0f : 0.05f);
            if (kind == 1) v = 0.0f;
            if (kind == 2) v = (i / 32) % 2 ? 0.3f : 0.0f;        /* constant sub-blocks */
            if (kind == 4) v = fabsf(v);                          /* min > 0 clamps */
            if (kind == 5) v = (float)((int)(urand() * 8)) * 0.25f; /* ties */
            if (kind == 6 && i % 32 < 31) v = 0.0f;               /* one non-zero per sub-block */
            x[i] = v;
        }
        for (int k = 0; k < 2; k++) {
            const int nmax = k ? 31 : 15, nstep = k ? 15 : 20;
            const float rmin = k ? -0.5f : -1.f;
            uint8_t L1[256], L2[256];
            float s1[8], s2[8], m1[8], m2[8];
            phiq_k45_search_scalar(x, NULL, nmax, rmin, 0.1f, nstep, L1, s1, m1);
            phiq_k45_search_avx2(x, NULL, nmax, rmin, 0.1f, nstep, L2, s2, m2);
            assert_memory_equal(L1, L2, 256);
            assert_memory_equal(s1, s2, sizeof s1);
            assert_memory_equal(m1, m2, sizeof m1);
            /* imatrix path: given weights, make_qkx3 parameters */
            float wk[256];
            for (int i = 0; i < 256; i++) wk[i] = (b % 5 == 0 && i % 3 == 0) ? 0.0f : fabsf(urand()) * 2.0f;
            phiq_k45_search_scalar(x, wk, nmax, -0.9f, 0.05f, 36, L1, s1, m1);
            phiq_k45_search_avx2(x, wk, nmax, -0.9f, 0.05f, 36, L2, s2, m2);
            assert_memory_equal(L1, L2, 256);
            assert_memory_equal(s1, s2, sizeof s1);
            assert_memory_equal(m1, m2, sizeof m1);
        }
        /* Q6_K's make_qx_quants over 8 groups of 16, with x^2 and with given weights */
        float w[128];
        for (int i = 0; i < 128; i++) w[i] = (b % 3 == 0) ? 0.0f : 0.01f + fabsf(urand());
        for (int h = 0; h < 2; h++) {
            for (int k = 0; k < 2; k++) {
                int8_t L1[128], L2[128];
                float s1[8], s2[8];
                phiq_qx16_search_scalar(x + 128 * h, k ? w : NULL, 32, L1, s1);
                phiq_qx16_search_avx2(x + 128 * h, k ? w : NULL, 32, L2, s2);
                assert_memory_equal(L1, L2, 128);
                assert_memory_equal(s1, s2, sizeof s1);
            }
        }
    }
#else
    skip();
#endif
}

/* Whole-quantizer check: the SIMD paths (when this CPU has them) and the
 * scalar paths give the same bytes for every type, with and without
 * imatrix, on mixed data (ggml equality itself is in test_quant_llamaref). */
static void test_simd_equals_scalar_all_types(void **state) {
    (void)state;
    const int64_t ne0 = 512, nrows = 12;
    float *x = malloc(sizeof(float) * ne0 * nrows), w[512];
    for (int64_t i = 0; i < ne0 * nrows; i++) {
        const int64_t r = i / ne0;
        float v = urand() * 0.05f;
        if (r == 1) v = 0.0f;
        if (r == 2 && (i / 32) % 3 == 0) v = 0.0f;
        if (r == 3) v = fabsf(v);
        if (r == 4 && i % 41 == 0) v *= 60.0f;
        if (r == 5) v = (float)((int)(urand() * 9)) * 0.125f;
        x[i] = v;
    }
    for (int i = 0; i < 512; i++) w[i] = i % 13 == 0 ? 0.0f : fabsf(urand()) + 0.01f;
    uint8_t *a = malloc((size_t)(ne0 * nrows * 4)), *b = malloc((size_t)(ne0 * nrows * 4));
    for (size_t ti = 0; ti < sizeof TYPES / sizeof TYPES[0]; ti++) {
        const int t = TYPES[ti].type;
        for (int im = 0; im < 2; im++) {
            const int64_t n1 = phiq_quantize_impl(t, x, a, nrows, ne0, im ? w : NULL, 0);
            const int64_t n2 = phiq_quantize_impl(t, x, b, nrows, ne0, im ? w : NULL, 1);
            assert_int_equal(n1, n2);
            if (memcmp(a, b, (size_t)n1)) fail_msg("%s imatrix=%d: SIMD and scalar differ", phiq_ggml_type_name(t), im);
        }
    }
    free(x);
    free(a);
    free(b);
}

TU_MAIN(NULL, NULL, test_roundtrip_bounds, test_imatrix_and_chunking, test_layout_q4_0, test_layout_q5_0,
        test_layout_q4_K, test_layout_q6_K, test_layout_iq4_xs, test_errors_and_finite, test_mix_presets,
        test_mix_rules, test_k45_simd_equals_scalar, test_simd_equals_scalar_all_types)
