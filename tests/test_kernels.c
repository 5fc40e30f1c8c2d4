/* test_kernels.c — the CPU dot-product and attention kernels.
 *
 * References we did not derive from the kernels:
 *  - src/quant's phiq_quantize / phiq_dequantize (byte-exact with llama.cpp's
 *    reference quantizers, written separately): activation bytes must be
 *    identical, decoders must agree, dots on its blocks must match;
 *  - a double-precision dot over weights and activations dequantized by the
 *    straightforward per-element decoders below, written from the block
 *    layouts in llamacpp-gguf-quant.md §3 (not from the kernels' code);
 *  - hand-worked values of llama.cpp's activation quantizers (roundf for
 *    Q8_0/Q8_1, round-half-even and the signed-max rule for Q8_K).
 * Every SIMD table available on this CPU is compared with the scalar table
 * on the same inputs (integer-exact paths: tolerance 2e-5 of sum |w*x|).
 * Attention spans (f16 and Q8_0 caches, whole and split-and-merged) against
 * a two-pass double-precision softmax over values decoded here. */
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "kernels/attn.h"
#include "kernels/cpu.h"
#include "kernels/dispatch.h"
#include "kernels/gemm_amx.h"
#include "kernels/gemm_f16.h"
#include "quant/quant.h"

static const int8_t KV[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 11);
}
static float rndf(float lo, float hi) { return lo + (hi - lo) * (float)(rnd() & 0xffffff) / 16777216.0f; }

static float h2f(const uint8_t *p) { return phiq_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
static int16_t rd16(const uint8_t *p) { return (int16_t)(p[0] | p[1] << 8); }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }

/* ---- independent decoders: w[i] and |w| bound terms (magnitudes of the parts) --- */

static void k4_scale_min(const uint8_t *q, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63, *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 15) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Decodes n elements of type t; aw gets |d*q| + |min| per element. */
static void dequant(int t, const uint8_t *b, double *w, double *aw, int64_t n) {
    for (int64_t e0 = 0; e0 < n;) {
        switch (t) {
        case PHIQ_GGML_TYPE_F32: { float f; memcpy(&f, b, 4); w[e0] = f; aw[e0] = fabs(f); b += 4, e0++; break; }
        case PHIQ_GGML_TYPE_F16: w[e0] = h2f(b); aw[e0] = fabs(w[e0]); b += 2, e0++; break;
        case PHIQ_GGML_TYPE_BF16: w[e0] = phiq_bf16_to_f32((uint16_t)(b[0] | b[1] << 8)); aw[e0] = fabs(w[e0]); b += 2, e0++; break;
        case PHIQ_GGML_TYPE_Q4_0: case PHIQ_GGML_TYPE_IQ4_NL: case PHIQ_GGML_TYPE_Q4_1:
        case PHIQ_GGML_TYPE_Q5_0: case PHIQ_GGML_TYPE_Q5_1: case PHIQ_GGML_TYPE_Q8_0: {
            bool has_m = t == PHIQ_GGML_TYPE_Q4_1 || t == PHIQ_GGML_TYPE_Q5_1;
            double d = h2f(b), m = has_m ? h2f(b + 2) : 0;
            const uint8_t *p = b + (has_m ? 4 : 2);
            uint32_t qh = 0;
            if (t == PHIQ_GGML_TYPE_Q5_0 || t == PHIQ_GGML_TYPE_Q5_1) qh = p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24, p += 4;
            for (int i = 0; i < 32; i++) {
                double v;
                int q = i < 16 ? (p[i] & 15) : (p[i - 16] >> 4);
                switch (t) {
                case PHIQ_GGML_TYPE_Q4_0: v = d * (q - 8); break;
                case PHIQ_GGML_TYPE_IQ4_NL: v = d * KV[q]; break;
                case PHIQ_GGML_TYPE_Q4_1: v = d * q; break;
                case PHIQ_GGML_TYPE_Q5_0: v = d * ((q | (int)((qh >> i) & 1) << 4) - 16); break;
                case PHIQ_GGML_TYPE_Q5_1: v = d * (q | ((qh >> i) & 1) << 4); break;
                default: v = d * (int8_t)p[i]; break;
                }
                w[e0 + i] = v + m, aw[e0 + i] = fabs(v) + fabs(m);
            }
            b += phiq_ggml_type_size(t), e0 += 32;
            break;
        }
        case PHIQ_GGML_TYPE_Q2_K: {
            const uint8_t *sc = b, *qs = b + 16;
            double d = h2f(b + 80), dmin = h2f(b + 82);
            for (int e = 0; e < 256; e++) {
                int h = e / 128, s = (e % 128) / 32, l = e % 32, g = e / 16;
                int q = (qs[32 * h + l] >> (2 * s)) & 3;
                double v = d * (sc[g] & 15) * q, m = dmin * (sc[g] >> 4);
                w[e0 + e] = v - m, aw[e0 + e] = fabs(v) + fabs(m);
            }
            b += 84, e0 += 256;
            break;
        }
        case PHIQ_GGML_TYPE_Q3_K: {
            const uint8_t *hm = b, *qs = b + 32, *sc = b + 96;
            double d = h2f(b + 108);
            for (int e = 0; e < 256; e++) {
                int h = e / 128, s = (e % 128) / 32, l = e % 32, g = e / 16;
                int q = ((qs[32 * h + l] >> (2 * s)) & 3) - (((hm[l] >> (e / 32)) & 1) ? 0 : 4);
                int lo = g < 8 ? (sc[g] & 15) : (sc[g - 8] >> 4);
                int hi = (sc[8 + g % 4] >> (2 * (g / 4))) & 3;
                w[e0 + e] = d * ((lo | hi << 4) - 32) * q, aw[e0 + e] = fabs(w[e0 + e]);
            }
            b += 110, e0 += 256;
            break;
        }
        case PHIQ_GGML_TYPE_Q4_K: case PHIQ_GGML_TYPE_Q5_K: {
            bool five = t == PHIQ_GGML_TYPE_Q5_K;
            double d = h2f(b), dmin = h2f(b + 2);
            const uint8_t *sc = b + 4, *qh = b + 16, *qs = b + (five ? 48 : 16);
            for (int e = 0; e < 256; e++) {
                int c = e / 64, tt = (e % 64) / 32, l = e % 32, scv, mv;
                int q = tt ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 15;
                if (five) q |= ((qh[l] >> (2 * c + tt)) & 1) << 4;
                k4_scale_min(sc, e / 32, &scv, &mv);
                double v = d * scv * q, m = dmin * mv;
                w[e0 + e] = v - m, aw[e0 + e] = fabs(v) + fabs(m);
            }
            b += five ? 176 : 144, e0 += 256;
            break;
        }
        case PHIQ_GGML_TYPE_Q6_K: {
            const uint8_t *ql = b, *qh = b + 128;
            const int8_t *sc = (const int8_t *)(b + 192);
            double d = h2f(b + 208);
            for (int e = 0; e < 256; e++) {
                int h = e / 128, r = e % 128, k = r / 32, l = r % 32;
                int lo = (k & 1) ? ql[64 * h + l + 32] : ql[64 * h + l];
                lo = k >= 2 ? lo >> 4 : lo & 15;
                int hi = (qh[32 * h + l] >> (2 * k)) & 3;
                w[e0 + e] = d * sc[8 * h + l / 16 + 2 * k] * ((lo | hi << 4) - 32), aw[e0 + e] = fabs(w[e0 + e]);
            }
            b += 210, e0 += 256;
            break;
        }
        case PHIQ_GGML_TYPE_IQ4_XS: {
            double d = h2f(b);
            int sh = b[2] | b[3] << 8;
            const uint8_t *sl = b + 4, *qs = b + 8;
            for (int e = 0; e < 256; e++) {
                int ib = e / 32, r = e % 32;
                int ls = ((sl[ib / 2] >> (4 * (ib % 2))) & 15) | (((sh >> (2 * ib)) & 3) << 4);
                int q = r < 16 ? qs[16 * ib + r] & 15 : qs[16 * ib + r - 16] >> 4;
                w[e0 + e] = d * (ls - 32) * KV[q], aw[e0 + e] = fabs(w[e0 + e]);
            }
            b += 136, e0 += 256;
            break;
        }
        default: fail_msg("no decoder for type %d", t); return;
        }
    }
}

/* Decodes an activation row of type at (Q8_0, Q8_1, Q8_K, F16, BF16, F32). */
static void dequant_act(int at, const uint8_t *b, double *a, int64_t n) {
    for (int64_t e = 0; e < n;) {
        if (at == PHIQ_GGML_TYPE_Q8_0 || at == PHIQ_GGML_TYPE_Q8_1) {
            double d = h2f(b);
            const int8_t *q = (const int8_t *)(b + (at == PHIQ_GGML_TYPE_Q8_1 ? 4 : 2));
            for (int i = 0; i < 32; i++) a[e + i] = d * q[i];
            b += at == PHIQ_GGML_TYPE_Q8_1 ? 36 : 34, e += 32;
        } else if (at == PHIQ_GGML_TYPE_Q8_K) {
            float d;
            memcpy(&d, b, 4);
            for (int i = 0; i < 256; i++) a[e + i] = (double)d * (int8_t)b[4 + i];
            b += 292, e += 256;
        } else {
            double *tmp = malloc(sizeof(double) * n);
            dequant(at, b, a, tmp, n);
            free(tmp);
            return;
        }
    }
}

/* ---- random weight rows ------------------------------------------------------------ */

enum { MODE_RANDOM, MODE_ZERO, MODE_EXTREME, MODE_ALLMAX, MODE_COUNT };
static const char *const MODE_NAMES[] = {"random", "zero", "extreme", "all-max"};

static uint16_t scale_half(int mode) {
    if (mode == MODE_EXTREME) return (uint16_t)((rnd() % 0x3ff + 1) | (rnd() & 1) << 15); /* subnormal */
    return phiq_f32_to_f16(rndf(0.001f, 0.1f) * ((rnd() & 1) ? 1 : -1));
}

/* Offsets of the fp16 fields in a block of t (-1 ends the list). */
static const int *half_fields(int t) {
    static const int at0[] = {0, -1}, at01[] = {0, 2, -1}, q2k[] = {80, 82, -1}, q3k[] = {108, -1},
                     q6k[] = {208, -1};
    switch (t) {
    case PHIQ_GGML_TYPE_Q4_1: case PHIQ_GGML_TYPE_Q5_1: case PHIQ_GGML_TYPE_Q4_K: case PHIQ_GGML_TYPE_Q5_K: return at01;
    case PHIQ_GGML_TYPE_Q2_K: return q2k;
    case PHIQ_GGML_TYPE_Q3_K: return q3k;
    case PHIQ_GGML_TYPE_Q6_K: return q6k;
    default: return at0;
    }
}

static void fill_weights(int t, uint8_t *b, int64_t n, int mode) {
    int64_t bytes = phiq_ggml_row_size(t, n);
    if (t == PHIQ_GGML_TYPE_F32 || t == PHIQ_GGML_TYPE_F16 || t == PHIQ_GGML_TYPE_BF16) {
        for (int64_t i = 0; i < n; i++) {
            float f = mode == MODE_ZERO ? 0 : mode == MODE_EXTREME ? rndf(-1, 1) * 1e-6f
                    : mode == MODE_ALLMAX ? 60000.0f : rndf(-1, 1);
            if (t == PHIQ_GGML_TYPE_F32) memcpy(b + 4 * i, &f, 4);
            else put16(b + 2 * i, t == PHIQ_GGML_TYPE_F16 ? phiq_f32_to_f16(f) : phiq_f32_to_bf16(f));
        }
        return;
    }
    for (int64_t i = 0; i < bytes; i++) b[i] = mode == MODE_ZERO ? 0 : mode == MODE_ALLMAX ? 0xff : (uint8_t)rnd();
    int64_t bs = phiq_ggml_type_size(t);
    for (int64_t o = 0; o < bytes; o += bs)
        for (const int *f = half_fields(t); *f >= 0; f++)
            put16(b + o + *f, mode == MODE_ZERO ? 0 : mode == MODE_ALLMAX ? phiq_f32_to_f16(1.0f) : scale_half(mode));
}

/* Extreme activations stay where llama.cpp's formats stay finite: Q8_0's
 * fp16 d = amax/127, and Q8_1's fp16 s = d * sum(q) (up to 32 * amax). */
static void fill_acts(float *x, int64_t n, int mode, int at) {
    float big = at == PHIQ_GGML_TYPE_Q8_1 ? 1500.0f : 3e4f;
    for (int64_t i = 0; i < n; i++) {
        switch (mode) {
        case MODE_ZERO: x[i] = 0; break;
        case MODE_EXTREME: x[i] = rndf(-1, 1) * big; break;
        case MODE_ALLMAX: x[i] = 1.0f; break;
        default: x[i] = (i / 32) % 5 == 3 ? 0 : rndf(-1, 1); break; /* some all-zero blocks */
        }
    }
}

/* ---- the comparison ------------------------------------------------------------------- */

static const int TYPES[] = {PHIQ_GGML_TYPE_Q4_0, PHIQ_GGML_TYPE_Q8_0, PHIQ_GGML_TYPE_Q4_K, PHIQ_GGML_TYPE_Q6_K,
                            PHIQ_GGML_TYPE_F16,  PHIQ_GGML_TYPE_Q5_K, PHIQ_GGML_TYPE_Q4_1, PHIQ_GGML_TYPE_Q5_0,
                            PHIQ_GGML_TYPE_Q5_1, PHIQ_GGML_TYPE_IQ4_NL, PHIQ_GGML_TYPE_IQ4_XS, PHIQ_GGML_TYPE_Q2_K,
                            PHIQ_GGML_TYPE_Q3_K, PHIQ_GGML_TYPE_BF16, PHIQ_GGML_TYPE_F32};

static int g_failures;
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            if (g_failures++ < 30) print_error(__VA_ARGS__), print_error("\n");                                       \
        }                                                                                          \
    } while (0)

static void check_type(const phiq_kernels *ref, int t) {
    int64_t bs = phiq_ggml_block_size(t);
    /* 1030 blocks of 32 = 32960 and 130 of 256 = 33280 elements: past the
     * 32768 whose prepared activations fit the mat-vec's stack buffer */
    const int64_t nblocks[] = {1, 2, 3, 7, 16, bs == 1 ? 3072 : bs == 32 ? 97 : 12, bs == 32 ? 1030 : bs == 256 ? 130 : 5};
    const char *const *levels = phiq_kernels_levels();
    enum { NROWS = 11 }; /* a group of eight rows (rows8_avx2.c) and a tail */
    for (size_t li = 0; li < sizeof nblocks / sizeof *nblocks; li++) {
        int64_t n = nblocks[li] * (bs == 1 ? 32 : bs);
        int64_t rb = phiq_ggml_row_size(t, n);
        int at = ref->act_type[t];
        for (int mode = 0; mode < MODE_COUNT; mode++) {
            uint8_t *w = malloc((size_t)rb * NROWS);
            float *x = malloc(sizeof(float) * n);
            uint8_t *act = malloc((size_t)phiq_ggml_row_size(at, n) + 64);
            double *wd = malloc(sizeof(double) * n), *aw = malloc(sizeof(double) * n), *ad = malloc(sizeof(double) * n);
            for (int r = 0; r < NROWS; r++) fill_weights(t, w + r * rb, n, mode);
            fill_acts(x, n, mode, at);
            assert_int_equal(ref->quantize_act(at, x, act, n), 0);
            dequant_act(at, act, ad, n);
            for (int r = 0; r < NROWS; r++) {
                const uint8_t *wr = w + r * rb;
                dequant(t, wr, wd, aw, n);
                double exact = 0, bound = 0;
                for (int64_t i = 0; i < n; i++) exact += wd[i] * ad[i], bound += aw[i] * fabs(ad[i]);
                float sref = NAN;
                ref->vec_dot[t](n, &sref, wr, act);
                /* Q8_1's s = fp16(d*sum q) carries a 2^-11 relative error by design. */
                double tol_ref = (at == PHIQ_GGML_TYPE_Q8_1 ? 1e-3 : 1e-4) * bound + 1e-30;
                CHECK(fabs(sref - exact) <= tol_ref, "scalar %s n=%lld %s row %d: %.9g vs exact %.9g (bound %.3g)",
                      phiq_ggml_type_name(t), (long long)n, MODE_NAMES[mode], r, sref, exact, bound);
                for (int l = 0; levels[l]; l++) {
                    const phiq_kernels *k = phiq_kernels_for(levels[l]);
                    if (!k || !k->vec_dot[t]) continue;
                    CHECK(k->act_type[t] == at, "%s %s: act type %d vs %d", k->isa, phiq_ggml_type_name(t), k->act_type[t], at);
                    float s = NAN;
                    k->vec_dot[t](n, &s, wr, act);
                    CHECK(fabs(s - sref) <= 2e-5 * bound + 1e-30, "%s %s n=%lld %s row %d: %.9g vs scalar %.9g (bound %.3g)",
                          k->isa, phiq_ggml_type_name(t), (long long)n, MODE_NAMES[mode], r, s, sref, bound);
                }
            }
            /* matvec must agree with vec_dot row by row */
            for (int l = 0; levels[l]; l++) {
                const phiq_kernels *k = phiq_kernels_for(levels[l]);
                if (!k || !k->vec_dot[t]) continue;
                CHECK(k->matvec[t] != NULL, "%s %s: matvec missing", k->isa, phiq_ggml_type_name(t));
                if (!k->matvec[t]) continue;
                float out[NROWS + 1];
                out[NROWS] = 12345.0f;
                k->matvec[t](n, NROWS, out, w, (size_t)rb, act);
                CHECK(out[NROWS] == 12345.0f, "%s %s: matvec wrote past nrows", k->isa, phiq_ggml_type_name(t));
                for (int r = 0; r < NROWS; r++) {
                    float s;
                    k->vec_dot[t](n, &s, w + r * rb, act);
                    dequant(t, w + r * rb, wd, aw, n);
                    double bound = 0;
                    for (int64_t i = 0; i < n; i++) bound += aw[i] * fabs(ad[i]);
                    CHECK(fabs(out[r] - s) <= 2e-5 * bound + 1e-30, "%s %s matvec row %d: %.9g vs %.9g",
                          k->isa, phiq_ggml_type_name(t), r, out[r], s);
                }
            }
            free(w), free(x), free(act), free(wd), free(aw), free(ad);
        }
    }
}

static void test_all_types_all_isas(void **state) {
    (void)state;
    const phiq_kernels *ref = phiq_kernels_scalar();
    g_failures = 0;
    for (size_t i = 0; i < sizeof TYPES / sizeof *TYPES; i++) {
        int t = TYPES[i];
        assert_non_null(ref->vec_dot[t]);
        check_type(ref, t);
    }
    const char *const *levels = phiq_kernels_levels();
    for (int l = 0; levels[l]; l++) {
        const phiq_kernels *k = phiq_kernels_for(levels[l]);
        if (!k) { print_message("ISA %s: not available on this CPU\n", levels[l]); continue; }
        char buf[512] = "";
        for (size_t i = 0; i < sizeof TYPES / sizeof *TYPES; i++) {
            int t = TYPES[i];
            if (k == ref || !k->vec_dot[t] || k->vec_dot[t] == ref->vec_dot[t]) continue;
            strcat(buf, " "), strcat(buf, phiq_ggml_type_name(t));
        }
        print_message("ISA %s: own kernels for%s\n", k->isa, k == ref ? " every type" : buf);
        /* the priority types must have real SIMD kernels, not the scalar fallback */
        if (k != ref)
            for (int i = 0; i < 5; i++) assert_true(k->vec_dot[TYPES[i]] != ref->vec_dot[TYPES[i]]);
    }
    assert_int_equal(g_failures, 0);
}

/* gemm (prompt processing) against the scalar vec_dot, crossing the row
 * tile (16) and column tile (64) boundaries, with ldo > nrows; then every
 * column count 1..17 (8 at a time and the rest in one call) on 32-element
 * types with a partial last 16-block group (97 blocks), a whole one (16),
 * fewer blocks than a group (3) and rows long enough to be split into
 * passes over the groups (300); K-quants with 7 and 30 super-blocks (the
 * latter in passes). */
static void test_gemm(void **state) {
    (void)state;
    const phiq_kernels *ref = phiq_kernels_scalar();
    const char *const *levels = phiq_kernels_levels();
#if defined(__x86_64__)
    enum { NR = 19, NC = 259, LDO = NR + 3 }; /* NC: past rows8_avx2.c's column tile of 256 */
#else
    enum { NR = 19, NC = 67, LDO = NR + 3 }; /* past the generic column tile of 64 (four times cheaper under qemu) */
#endif
    int fails = 0, two_stage = 0;
    for (size_t tv = 0; tv < 4 * (sizeof TYPES / sizeof *TYPES); tv++) {
        const size_t ti = tv / 4;
        const int t = TYPES[ti], at = ref->act_type[t];
        const int64_t bs = phiq_ggml_block_size(t);
        static const int64_t nb32[4] = {97, 16, 3, 300};
        if (bs != 32 && tv % 4 && !(bs == 256 && tv % 4 == 3)) continue;
        const int64_t n = bs == 1 ? 1000 : bs == 32 ? nb32[tv % 4] * 32 : tv % 4 ? 30 * 256 : 7 * 256;
        const int64_t rb = phiq_ggml_row_size(t, n), as = phiq_ggml_row_size(at, n);
        uint8_t *w = malloc((size_t)rb * NR), *act = malloc((size_t)as * NC);
        float *x = malloc(sizeof(float) * n), *out = malloc(sizeof(float) * LDO * NC), *want = malloc(sizeof(float) * NR * NC);
        double *wd = malloc(sizeof(double) * n), *aw = malloc(sizeof(double) * n * NR), *ad = malloc(sizeof(double) * n);
        double *bound = calloc(NR * NC, sizeof(double));
        for (int r = 0; r < NR; r++) {
            fill_weights(t, w + r * rb, n, MODE_RANDOM);
            dequant(t, w + r * rb, wd, aw + r * n, n);
        }
        for (int j = 0; j < NC; j++) {
            fill_acts(x, n, MODE_RANDOM, at);
            assert_int_equal(ref->quantize_act(at, x, act + j * as, n), 0);
            dequant_act(at, act + j * as, ad, n);
            for (int r = 0; r < NR; r++) {
                ref->vec_dot[t](n, &want[r * NC + j], w + r * rb, act + j * as);
                for (int64_t i = 0; i < n; i++) bound[r * NC + j] += aw[r * n + i] * fabs(ad[i]);
            }
        }
        for (int l = 0; levels[l]; l++) {
            const phiq_kernels *k = phiq_kernels_for(levels[l]);
            if (!k || !k->vec_dot[t]) continue;
            assert_non_null(k->gemm[t]);
            for (int i = 0; i < LDO * NC; i++) out[i] = -777.0f;
            k->gemm[t](n, NR, NC, out, LDO, w, (size_t)rb, act, (size_t)as);
            for (int j = 0; j < NC; j++) {
                for (int r = 0; r < LDO; r++) {
                    float got = out[j * LDO + r];
                    if (r >= NR) {
                        if (got != -777.0f && fails++ < 20) print_error("%s %s gemm wrote padding\n", k->isa, phiq_ggml_type_name(t));
                        continue;
                    }
                    if (!(fabs(got - want[r * NC + j]) <= 2e-5 * bound[r * NC + j] + 1e-30) && fails++ < 20)
                        print_error("%s %s gemm r=%d j=%d: %.9g vs %.9g\n", k->isa, phiq_ggml_type_name(t), r, j, got, want[r * NC + j]);
                }
            }
            for (int nc = 1; nc <= 17; nc++) {
                for (int i = 0; i < LDO * NC; i++) out[i] = -777.0f;
                k->gemm[t](n, NR, nc, out, LDO, w, (size_t)rb, act, (size_t)as);
                for (int j = 0; j < NC; j++)
                    for (int r = 0; r < LDO; r++) {
                        float got = out[j * LDO + r];
                        int bad = r >= NR || j >= nc ? got != -777.0f
                                                     : !(fabs(got - want[r * NC + j]) <= 2e-5 * bound[r * NC + j] + 1e-30);
                        if (bad && fails++ < 20)
                            print_error("%s %s gemm n=%d ncols=%d r=%d j=%d: %.9g vs %.9g\n", k->isa, phiq_ggml_type_name(t),
                                        (int)n, nc, r, j, got, r < NR ? want[r * NC + j] : 0);
                    }
            }
#if defined(__x86_64__) || defined(_M_X64)
            /* the AMX gemm in two stages, as phiq_mm runs it: activations
             * packed in two column-tile ranges (as two threads would), rows
             * run in two pieces ([0, 16) on tiles, a 3-row tail on AVX-512) */
            if (tv % 4 == 0 && strcmp(k->isa, "amx") == 0 && phiq_gemm_amx_supports(t)) {
                const int64_t nct = (NC + 15) / 16;
                uint8_t *pk = aligned_alloc(64, (phiq_gemm_amx_packed_size(t, n, NC) + 63) & ~(size_t)63);
                uint8_t *sc = aligned_alloc(64, (phiq_gemm_amx_scratch_size(t, n) + 63) & ~(size_t)63);
                assert_non_null(pk), assert_non_null(sc);
                /* garbage first: malloc may hand back the table gemm's packing */
                memset(pk, 0x5A, phiq_gemm_amx_packed_size(t, n, NC));
                memset(sc, 0xA5, phiq_gemm_amx_scratch_size(t, n));
                phiq_gemm_amx_pack(t, n, NC, 0, 2, act, (size_t)as, pk);
                phiq_gemm_amx_pack(t, n, NC, 2, nct, act, (size_t)as, pk);
                for (int i = 0; i < LDO * NC; i++) out[i] = -777.0f;
                phiq_gemm_amx_run(t, n, 16, NC, out, LDO, w, (size_t)rb, pk, sc, act, (size_t)as);
                phiq_gemm_amx_run(t, n, NR - 16, NC, out + 16, LDO, w + 16 * rb, (size_t)rb, pk, sc, act, (size_t)as);
                for (int j = 0; j < NC; j++)
                    for (int r = 0; r < LDO; r++) {
                        float got = out[j * LDO + r];
                        int bad = r >= NR ? got != -777.0f : !(fabs(got - want[r * NC + j]) <= 2e-5 * bound[r * NC + j] + 1e-30);
                        if (bad && fails++ < 20)
                            print_error("amx two-stage %s gemm r=%d j=%d: %.9g\n", phiq_ggml_type_name(t), r, j, got);
                    }
                free(pk), free(sc);
                two_stage++;
            }
#endif
        }
        free(w), free(act), free(x), free(out), free(want), free(wd), free(aw), free(ad), free(bound);
    }
    print_message("gemm: every table checked; AMX two-stage gemm checked for %d types\n", two_stage);
    assert_int_equal(fails, 0);
}

/* F16 weights x F32 activations against the double dot. */
static void test_f16_f32(void **state) {
    (void)state;
    const int64_t n = 1000 + 7;
    uint16_t *w = malloc(2 * n);
    float *x = malloc(4 * n);
    double exact = 0, bound = 0;
    for (int64_t i = 0; i < n; i++) {
        w[i] = phiq_f32_to_f16(rndf(-2, 2));
        x[i] = rndf(-3, 3);
        exact += (double)phiq_f16_to_f32(w[i]) * x[i];
        bound += fabs((double)phiq_f16_to_f32(w[i]) * x[i]);
    }
    const char *const *levels = phiq_kernels_levels();
    for (int l = 0; levels[l]; l++) {
        const phiq_kernels *k = phiq_kernels_for(levels[l]);
        if (!k) continue;
        float s = NAN;
        k->dot_f16_f32(n, &s, w, x);
        if (fabs(s - exact) > 2e-6 * bound) fail_msg("%s dot_f16_f32: %.9g vs %.9g", k->isa, s, exact);
    }
    free(w), free(x);
}

/* ---- activation quantizers against hand-worked llama.cpp semantics ---------------- */

static void test_quantize_act_q8_0(void **state) {
    (void)state;
    const phiq_kernels *k = phiq_kernels_scalar();
    /* amax 127 -> d = 1, id = 1: roundf rounds halves away from zero. */
    float x[32] = {127, 2.5f, -2.5f, 0.5f, -0.5f, 1.5f, -126.4f, 0.49f};
    uint8_t b[36];
    assert_int_equal(k->quantize_act(PHIQ_GGML_TYPE_Q8_0, x, b, 32), 0);
    const int8_t want[8] = {127, 3, -3, 1, -1, 2, -126, 0};
    assert_int_equal(b[0] | b[1] << 8, 0x3c00); /* fp16(1.0) */
    for (int i = 0; i < 8; i++) assert_int_equal((int8_t)b[2 + i], want[i]);
    assert_int_equal(k->quantize_act(PHIQ_GGML_TYPE_Q8_1, x, b, 32), 0);
    for (int i = 0; i < 8; i++) assert_int_equal((int8_t)b[4 + i], want[i]);
    assert_int_equal(b[2] | b[3] << 8, phiq_f32_to_f16(127 + 3 - 3 + 1 - 1 + 2 - 126 + 0));
    /* all zeros: d = 0, q = 0 */
    float z[32] = {0};
    memset(b, 0x55, sizeof b);
    assert_int_equal(k->quantize_act(PHIQ_GGML_TYPE_Q8_0, z, b, 32), 0);
    for (int i = 0; i < 34; i++) assert_int_equal(b[i], 0);
    /* random rows: |x - d*q| <= d/2 and the largest |x| maps to +-127 */
    for (int rep = 0; rep < 50; rep++) {
        for (int i = 0; i < 32; i++) x[i] = rndf(-10, 10);
        assert_int_equal(k->quantize_act(PHIQ_GGML_TYPE_Q8_0, x, b, 32), 0);
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[i]));
        assert_int_equal(b[0] | b[1] << 8, phiq_f32_to_f16(amax / 127));
        double d = amax / 127.0;
        for (int i = 0; i < 32; i++) {
            assert_true(fabs(x[i] - d * (int8_t)b[2 + i]) <= d * 0.5 * (1 + 1e-5));
            if (fabsf(x[i]) == amax) assert_int_equal(abs((int8_t)b[2 + i]), 127);
        }
    }
    assert_int_equal(k->quantize_act(PHIQ_GGML_TYPE_Q8_0, x, b, 31), PHIQ_EINVAL);
    assert_int_equal(k->quantize_act(PHIQ_GGML_TYPE_Q4_0, x, b, 32), PHIQ_EINVAL);
}

/* Every table's Q8_0 / Q8_1 activation quantizer byte for byte against the
 * scalar table (src/quant's reference): random rows of several ranges, rows
 * whose scaled values fall on halves (amax 127: d = 1) and a zero block. */
static void test_quantize_act_tables(void **state) {
    (void)state;
    const phiq_kernels *ref = phiq_kernels_scalar();
    const char *const *levels = phiq_kernels_levels();
    enum { N = 32 * 24 };
    float x[N];
    uint8_t want[N / 256 * 292], got[N / 256 * 292]; /* the largest: Q8_K */
    int checked = 0;
    for (int rep = 0; rep < 40; rep++) {
        const float range = rep % 4 == 0 ? 1e-3f : rep % 4 == 1 ? 1.0f : rep % 4 == 2 ? 50.0f : 1e4f;
        for (int i = 0; i < N; i++) x[i] = rndf(-range, range);
        if (rep % 5 == 0)
            for (int i = 0; i < N; i++) x[i] = (float)((int)(rnd() % 255) - 127) + (rnd() % 2 ? 0.5f : 0.0f);
        if (rep % 5 == 0)
            for (int b = 0; b < N / 32; b++) x[32 * b] = 127.0f; /* d = 1: the halves stay halves */
        if (rep == 1) memset(x + 64, 0, 32 * sizeof(float));
        if (rep == 2) memset(x + 256, 0, 256 * sizeof(float)); /* a zero Q8_K super-block */
        if (rep == 3 || rep == 7) x[520] = rep == 3 ? 2e4f : -2e4f, x[530] = -x[520]; /* Q8_K: the first extreme is max */
        for (int at = 0; at < 3; at++) {
            const int t = at == 2 ? PHIQ_GGML_TYPE_Q8_K : at ? PHIQ_GGML_TYPE_Q8_1 : PHIQ_GGML_TYPE_Q8_0;
            const size_t bytes = (size_t)phiq_ggml_row_size(t, N);
            assert_int_equal(ref->quantize_act(t, x, want, N), 0);
            for (int l = 0; levels[l]; l++) {
                const phiq_kernels *k = phiq_kernels_for(levels[l]);
                if (!k) continue;
                memset(got, 0xA5, sizeof got);
                assert_int_equal(k->quantize_act(t, x, got, N), 0);
                assert_memory_equal(got, want, bytes);
                checked++;
            }
        }
    }
    print_message("quantize_act: %d table/row checks byte-exact\n", checked);
}

static void test_quantize_act_q8_K(void **state) {
    (void)state;
    const phiq_kernels *k = phiq_kernels_scalar();
    float x[256] = {0};
    uint8_t b[292];
    /* signed max 127 -> iscale = -1 (q = -x), ties to even, d = -1 */
    x[0] = 127, x[1] = 2.5f, x[2] = -2.5f, x[3] = 0.5f, x[4] = 1.5f, x[5] = -3.5f, x[17] = 100;
    assert_int_equal(k->quantize_act(PHIQ_GGML_TYPE_Q8_K, x, b, 256), 0);
    float d;
    memcpy(&d, b, 4);
    assert_true(d == -1.0f);
    const int8_t want[6] = {-127, -2, 2, 0, -2, 4};
    for (int i = 0; i < 6; i++) assert_int_equal((int8_t)b[4 + i], want[i]);
    assert_int_equal(rd16(b + 260), -127 - 2 + 2 + 0 - 2 + 4); /* bsums[0] */
    assert_int_equal(rd16(b + 262), -100);                       /* bsums[1] */
    /* a negative extreme: max = -127 -> iscale = +1, min(127, .) clamps nothing */
    x[0] = -127;
    assert_int_equal(k->quantize_act(PHIQ_GGML_TYPE_Q8_K, x, b, 256), 0);
    memcpy(&d, b, 4);
    assert_true(d == 1.0f);
    assert_int_equal((int8_t)b[4], -127);
    assert_int_equal((int8_t)b[4 + 17], 100);
    /* zeros: everything 0 */
    memset(x, 0, sizeof x);
    memset(b, 0x55, sizeof b);
    assert_int_equal(k->quantize_act(PHIQ_GGML_TYPE_Q8_K, x, b, 256), 0);
    for (int i = 0; i < 292; i++) assert_int_equal(b[i], 0);
    /* random: bsums are the sums; |x - d*q| <= |d|/2 */
    for (int rep = 0; rep < 20; rep++) {
        for (int i = 0; i < 256; i++) x[i] = rndf(-5, 5);
        assert_int_equal(k->quantize_act(PHIQ_GGML_TYPE_Q8_K, x, b, 256), 0);
        memcpy(&d, b, 4);
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int i = 0; i < 16; i++) sum += (int8_t)b[4 + 16 * g + i];
            assert_int_equal(rd16(b + 260 + 2 * g), sum);
        }
        for (int i = 0; i < 256; i++) assert_true(fabs(x[i] - (double)d * (int8_t)b[4 + i]) <= fabs(d) * 0.5 * (1 + 1e-5));
    }
}

/* The engine's F16 prefill gemms (AVX-512 FMA tile, AMX-BF16 hi/lo split)
 * against exact double sums of the f16 products: 40 rows (two 16-row tiles
 * and a tail), 21 columns (a partial column tile), n = 96. */
static void test_gemm_f16_tiled(void **state) {
    (void)state;
#if defined(__x86_64__) || defined(_M_X64)
    const phiq_cpu *c = phiq_cpu_get();
    if (!c->avx512f) skip();
    enum { N = 96, R = 40, J = 21 };
    uint16_t *w = malloc(sizeof(uint16_t) * R * N);
    float *a = malloc(sizeof(float) * J * N), *o1 = malloc(sizeof(float) * J * R), *o2 = malloc(sizeof(float) * J * R);
    uint32_t x = 12345;
    for (int i = 0; i < R * N; i++) w[i] = phiq_f32_to_f16((tu_randf(&x) - 0.5f) * (i % 7 == 0 ? 40.0f : 0.3f));
    for (int i = 0; i < J * N; i++) a[i] = phiq_f16_to_f32(phiq_f32_to_f16((tu_randf(&x) - 0.5f) * 3.0f));
    phiq_gemm_f16_f32_avx512(N, R, J, o1, R, w, N * 2, a, N);
    int amx = c->amx_bf16 && c->avx512bf16 && phiq_gemm_f16_amx(N, R, J, o2, R, w, N * 2, a, N) == 0;
    for (int j = 0; j < J; j++)
        for (int r = 0; r < R; r++) {
            double ref = 0, mag = 0;
            for (int k = 0; k < N; k++) {
                double p = (double)phiq_f16_to_f32(w[r * N + k]) * a[j * N + k];
                ref += p;
                mag += fabs(p);
            }
            assert_true(fabs(o1[j * R + r] - ref) <= 1e-6 * mag + 1e-30);
            if (amx) assert_true(fabs(o2[j * R + r] - ref) <= 1e-6 * mag + 1e-30);
        }
    print_message("F16 tiled gemm: AVX-512 checked, AMX-BF16 split %s\n", amx ? "checked" : "not available");
    free(w), free(a), free(o1), free(o2);
#else
    skip();
#endif
}

/* The two-stage AMX F16 gemm (activations packed once, possibly by several
 * callers over disjoint column tiles; rows run in pieces against the same
 * packing) against exact double sums of the f16 products, over shapes that
 * cross its blocking: n = 1088 (two K blocks, the second short), 40 and 293
 * rows (row blocks of 256, a 5-row tail), 1, 17 and 70 columns (partial
 * column tiles and groups). Activations are unrounded floats (the pack
 * rounds them to f16), with zeros, f16 extremes (65504, subnormals) and
 * values that round to neighbours of a bf16 boundary. */
static void test_gemm_f16_amx_packed(void **state) {
    (void)state;
#if defined(__x86_64__) || defined(_M_X64)
    const phiq_cpu *c = phiq_cpu_get();
    if (!c->amx_bf16 || !c->avx512bf16) skip();
    const int N = 1088, RMAX = 293, JS[] = {1, 17, 70};
    uint16_t *w = malloc(sizeof(uint16_t) * RMAX * N);
    float *a = malloc(sizeof(float) * 70 * N), *ar = malloc(sizeof(float) * 70 * N), *o = malloc(sizeof(float) * 70 * RMAX);
    assert_non_null(w), assert_non_null(a), assert_non_null(ar), assert_non_null(o);
    uint32_t x = 777;
    for (int i = 0; i < RMAX * N; i++) {
        float v = (tu_randf(&x) - 0.5f) * (i % 11 == 0 ? 50.0f : 0.2f);
        if (i % 97 == 0) v = 0;
        if (i % 389 == 1) v = (i & 2) ? 65504.0f : -6.0e-8f; /* f16 max, a subnormal */
        if (i % 389 == 2) v = 1.0f + 1.0f / 256 + 1.0f / 1024; /* hi rounds up in bf16 */
        w[i] = phiq_f32_to_f16(v);
    }
    for (int i = 0; i < 70 * N; i++) {
        float v = (tu_randf(&x) - 0.5f) * 4.0f;
        if (i % 53 == 0) v = 0;
        if (i % 211 == 3) v = (i & 1) ? 1.0e-4f : -2.5e-7f; /* f16 subnormal range */
        a[i] = v;
        ar[i] = phiq_f16_to_f32(phiq_f32_to_f16(v)); /* what the kernel multiplies */
    }
    for (int ji = 0; ji < 3; ji++) {
        const int J = JS[ji];
        for (int R = 40; R <= RMAX; R += RMAX - 40) {
            uint8_t *B = aligned_alloc(64, phiq_gemm_f16_amx_packed_size(N, J));
            uint8_t *S = aligned_alloc(64, (phiq_gemm_f16_amx_scratch_size(N, J) + 63) & ~(size_t)63);
            assert_non_null(B), assert_non_null(S);
            memset(B, 0x5A, phiq_gemm_f16_amx_packed_size(N, J)); /* no stale packing from an earlier call */
            memset(S, 0xA5, phiq_gemm_f16_amx_scratch_size(N, J));
            /* packed in two parts, as two threads would */
            const int64_t nt = phiq_gemm_f16_amx_packed_tiles(J);
            assert_true(nt * 16 >= J && nt % 4 == 0);
            phiq_gemm_f16_amx_pack(N, J, 0, nt / 2, a, N, B);
            phiq_gemm_f16_amx_pack(N, J, nt / 2, nt, a, N, B);
            for (int i = 0; i < J * R; i++) o[i] = -777.0f;
            /* rows in two pieces: [0, 16) and [16, R) (tail R % 16 to AVX-512) */
            assert_int_equal(phiq_gemm_f16_amx_packed(N, 16, J, o, R, w, N * 2, B, S, ar, N), 0);
            assert_int_equal(phiq_gemm_f16_amx_packed(N, R - 16, J, o + 16, R, w + 16 * N, N * 2, B, S, ar, N), 0);
            /* too few rows for a tile or a bad n: refused, nothing written */
            assert_int_equal(phiq_gemm_f16_amx_packed(N, 15, J, o, R, w, N * 2, B, S, ar, N), -1);
            assert_int_equal(phiq_gemm_f16_amx_packed(48, 16, J, o, R, w, N * 2, B, S, ar, N), -1);
            int fails = 0;
            for (int j = 0; j < J; j++)
                for (int r = 0; r < R; r++) {
                    double ref = 0, mag = 0;
                    for (int k = 0; k < N; k++) {
                        double p = (double)phiq_f16_to_f32(w[(size_t)r * N + k]) * ar[(size_t)j * N + k];
                        ref += p;
                        mag += fabs(p);
                    }
                    float got = o[j * R + r];
                    if (!(fabs(got - ref) <= 2e-6 * mag + 1e-30) && fails++ < 10)
                        print_error("AMX F16 packed R=%d J=%d r=%d j=%d: %.9g vs %.9g\n", R, J, r, j, got, ref);
                }
            assert_int_equal(fails, 0);
            free(B), free(S);
        }
    }
    free(w), free(a), free(ar), free(o);
#else
    skip();
#endif
}

static void test_dispatch(void **state) {
    (void)state;
    const phiq_kernels *best = phiq_kernels_get();
    assert_non_null(best);
    assert_ptr_equal(best, phiq_kernels_get());
    assert_ptr_equal(phiq_kernels_for("scalar"), phiq_kernels_scalar());
    assert_null(phiq_kernels_for("no-such-isa"));
    assert_null(phiq_kernels_for(NULL));
    const char *env = getenv("PHIQ_ISA");
    if (!env || !*env) {
        /* unforced: the best is the highest available level */
        const char *const *levels = phiq_kernels_levels();
        const phiq_kernels *hi = NULL;
        for (int l = 0; levels[l]; l++)
            if (phiq_kernels_for(levels[l])) hi = phiq_kernels_for(levels[l]);
        assert_ptr_equal(best, hi);
    }
    const phiq_cpu *c = phiq_cpu_get();
    print_message("CPU features: %s; chosen ISA: %s\n", phiq_cpu_describe(), best->isa);
    if (c->avx512f) assert_true(c->avx2);
    if (c->amx_int8) assert_true(c->amx_tile);
}

/* Weights and activations from phiq_quantize (src/quant, byte-exact with
 * llama.cpp's reference quantizers, written independently of these
 * kernels): our activation quantizers must produce the same bytes, our test
 * decoders must agree with phiq_dequantize, and every table's dot must
 * match a double dot over phiq_dequantize's values. */
static void test_against_quant(void **state) {
    (void)state;
    const int act_types[] = {PHIQ_GGML_TYPE_Q8_0, PHIQ_GGML_TYPE_Q8_1, PHIQ_GGML_TYPE_Q8_K};
    const phiq_kernels *ref = phiq_kernels_scalar();
    const int64_t n = 1024;
    float *x = malloc(sizeof(float) * n), *f = malloc(sizeof(float) * n);
    uint8_t *a = malloc(sizeof(float) * n + 64); /* room for any activation type */
    uint8_t *b = malloc(sizeof(float) * n + 64);
    int compared = 0;
    for (size_t i = 0; i < sizeof act_types / sizeof *act_types; i++) {
        const int at = act_types[i];
        if (!phiq_quant_can_quantize(at)) {
            print_message("phiq_quantize cannot make %s: activation bytes not compared\n", phiq_ggml_type_name(at));
            continue;
        }
        for (int rep = 0; rep < 5; rep++) {
            for (int64_t j = 0; j < n; j++) x[j] = rndf(-1, 1) * (rep == 4 ? 1000.0f : 1.0f);
            const size_t sz = (size_t)phiq_ggml_row_size(at, n);
            assert_int_equal(ref->quantize_act(at, x, a, n), 0);
            assert_true(phiq_quantize(at, x, b, 1, n, NULL) == (int64_t)sz);
            assert_memory_equal(a, b, sz);
            compared++;
        }
    }
    print_message("activation quantizers compared byte for byte with phiq_quantize: %d rows\n", compared);
    const char *const *levels = phiq_kernels_levels();
    int checked = 0;
    for (size_t ti = 0; ti < sizeof TYPES / sizeof *TYPES; ti++) {
        const int t = TYPES[ti], at = ref->act_type[t];
        if (!phiq_quant_can_quantize(t) || !phiq_quant_can_dequantize(t)) {
            print_message("phiq_quantize/dequantize lack %s: skipped\n", phiq_ggml_type_name(t));
            continue;
        }
        const int64_t rb = phiq_ggml_row_size(t, n);
        uint8_t *w = malloc((size_t)rb);
        double *wd = malloc(sizeof(double) * n), *aw = malloc(sizeof(double) * n), *ad = malloc(sizeof(double) * n);
        for (int rep = 0; rep < 4; rep++) {
            for (int64_t j = 0; j < n; j++) x[j] = rndf(-1, 1) * rndf(0, 1) * (1 + (j % 7)) * 0.05f;
            assert_true(phiq_quantize(t, x, w, 1, n, NULL) == rb);
            assert_int_equal(phiq_dequantize(t, w, f, n), 0);
            dequant(t, w, wd, aw, n);
            for (int64_t j = 0; j < n; j++)
                if (fabs(wd[j] - f[j]) > 1e-6 * fabs(wd[j]) + 1e-30)
                    fail_msg("%s element %lld: test decoder %.9g vs phiq_dequantize %.9g", phiq_ggml_type_name(t),
                             (long long)j, wd[j], f[j]);
            fill_acts(x, n, MODE_RANDOM, at);
            assert_int_equal(ref->quantize_act(at, x, a, n), 0);
            dequant_act(at, a, ad, n);
            double exact = 0, bound = 0;
            for (int64_t j = 0; j < n; j++) exact += (double)f[j] * ad[j], bound += aw[j] * fabs(ad[j]);
            for (int l = 0; levels[l]; l++) {
                const phiq_kernels *k = phiq_kernels_for(levels[l]);
                if (!k || !k->vec_dot[t]) continue;
                float s = NAN;
                k->vec_dot[t](n, &s, w, a);
                const double tol = (at == PHIQ_GGML_TYPE_Q8_1 ? 1e-3 : 1e-4) * bound + 1e-30;
                if (!(fabs(s - exact) <= tol))
                    fail_msg("%s %s on phiq_quantize blocks: %.9g vs %.9g", k->isa, phiq_ggml_type_name(t), s, exact);
            }
            checked++;
        }
        free(w), free(wd), free(aw), free(ad);
    }
    print_message("dots on phiq_quantize blocks: %d rows\n", checked);
    assert_true(checked > 0);
    free(x), free(f), free(a), free(b);
}

/* Two threads running the best table's gemm and matvec at once (AMX tile
 * state is per thread) must reproduce the single-threaded results exactly. */
typedef struct mt_job {
    const phiq_kernels *k;
    int t;
    int64_t n, nrows, ncols;
    const uint8_t *w, *act;
    size_t rb, as;
    float *out, *mv;
} mt_job;

static void *mt_run(void *p) {
    mt_job *j = p;
    for (int rep = 0; rep < 3; rep++) {
        j->k->gemm[j->t](j->n, j->nrows, j->ncols, j->out, (size_t)j->nrows, j->w, j->rb, j->act, j->as);
        j->k->matvec[j->t](j->n, j->nrows, j->mv, j->w, j->rb, j->act);
    }
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    const phiq_kernels *k = phiq_kernels_get();
    const int types[] = {PHIQ_GGML_TYPE_Q4_0, PHIQ_GGML_TYPE_Q8_0, PHIQ_GGML_TYPE_Q4_K, PHIQ_GGML_TYPE_Q6_K};
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        const int t = types[ti], at = k->act_type[t];
        const int64_t n = 1024, nrows = 40, ncols = 20;
        const int64_t rb = phiq_ggml_row_size(t, n), as = phiq_ggml_row_size(at, n);
        uint8_t *w = malloc((size_t)rb * nrows), *act = malloc((size_t)as * ncols);
        float *x = malloc(sizeof(float) * n), *want = malloc(sizeof(float) * nrows * ncols), *wmv = malloc(sizeof(float) * nrows);
        for (int r = 0; r < nrows; r++) fill_weights(t, w + r * rb, n, MODE_RANDOM);
        for (int j = 0; j < ncols; j++) {
            fill_acts(x, n, MODE_RANDOM, at);
            assert_int_equal(k->quantize_act(at, x, act + j * as, n), 0);
        }
        k->gemm[t](n, nrows, ncols, want, (size_t)nrows, w, (size_t)rb, act, (size_t)as);
        k->matvec[t](n, nrows, wmv, w, (size_t)rb, act);
        mt_job jobs[2];
        pthread_t th[2];
        for (int i = 0; i < 2; i++) {
            jobs[i] = (mt_job){k, t, n, nrows, ncols, w, act, (size_t)rb, (size_t)as,
                               malloc(sizeof(float) * nrows * ncols), malloc(sizeof(float) * nrows)};
            assert_int_equal(pthread_create(&th[i], NULL, mt_run, &jobs[i]), 0);
        }
        for (int i = 0; i < 2; i++) {
            pthread_join(th[i], NULL);
            assert_memory_equal(jobs[i].out, want, sizeof(float) * nrows * ncols);
            assert_memory_equal(jobs[i].mv, wmv, sizeof(float) * nrows);
            free(jobs[i].out), free(jobs[i].mv);
        }
        free(w), free(act), free(x), free(want), free(wmv);
    }
}

/* PHIQ_ISA lowers the choice and never raises it: checked in child processes
 * (the table is chosen once per process). */
static void test_isa_env(void **state) {
    (void)state;
    const char *const *levels = phiq_kernels_levels();
    const char *best = phiq_kernels_get()->isa;
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) skip();
    self[len] = 0;
    for (int l = 0; levels[l]; l++) {
        char *out = NULL;
        int rc = tu_run(&out, NULL, "PHIQ_ISA=%s '%s' --print-isa 2>/dev/null", levels[l], self);
        if (rc == 126 || rc == 127) { /* cannot re-execute itself (e.g. under qemu-user without binfmt) */
            free(out);
            skip();
        }
        assert_int_equal(rc, 0);
        assert_non_null(out);
        out[strcspn(out, "\n")] = 0;
        const char *want = phiq_kernels_for(levels[l]) ? phiq_kernels_for(levels[l])->isa : best;
        if (strcmp(out, want) != 0) fail_msg("PHIQ_ISA=%s chose %s, expected %s", levels[l], out, want);
        free(out);
    }
    char *out = NULL;
    assert_int_equal(tu_run(&out, NULL, "PHIQ_ISA=bogus '%s' --print-isa", self), 0);
    out[strcspn(out, "\n")] = 0;
    assert_string_equal(out, best);
    free(out);
}


/* ---- attention spans (kernels/attn.h) ------------------------------------------- */

/* IEEE half -> double, written out here (not the library's). */
static double half_d(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp((double)m, -24) : e == 31 ? INFINITY : ldexp((double)(m | 1024), e - 25);
    return h & 0x8000 ? -v : v;
}

/* element i of a head slice: f16 values, or Q8_0 blocks (f16 d, 32 int8) */
static double kv_at(int q8, const uint8_t *row, int i) {
    if (!q8) return half_d((uint16_t)(row[2 * i] | row[2 * i + 1] << 8));
    const uint8_t *b = row + (i / 32) * 34;
    return (double)(int8_t)b[2 + i % 32] * half_d((uint16_t)(b[0] | b[1] << 8));
}

/* Two-pass softmax in double: o = sum_k softmax(scale q . K_k) V_k. */
static void attn_double(int q8, const double *q, double scale, const uint8_t *K, const uint8_t *V, size_t stride, int n,
                        int hd, double *o) {
    double *s = malloc(sizeof(double) * (size_t)n), mx = -INFINITY, sum = 0;
    for (int k = 0; k < n; k++) {
        s[k] = 0;
        for (int i = 0; i < hd; i++) s[k] += kv_at(q8, K + (size_t)k * stride, i) * q[i];
        s[k] *= scale;
        if (s[k] > mx) mx = s[k];
    }
    for (int k = 0; k < n; k++) sum += (s[k] = exp(s[k] - mx));
    for (int i = 0; i < hd; i++) {
        o[i] = 0;
        for (int k = 0; k < n; k++) o[i] += s[k] / sum * kv_at(q8, V + (size_t)k * stride, i);
    }
    free(s);
}

/* One span over all n positions, and pieces (a third, then spans of 16)
 * folded into two states and merged (flash-decoding), both as outputs. */
static void attn_run(const phiq_attn_kernels *ak, int q8, const void *q, float scale, const uint8_t *K,
                     const uint8_t *V, size_t stride, int n, int hd, float *whole, float *split) {
    float *st = malloc(sizeof(float) * PHIQ_ATTN_STATE(hd)), *st2 = malloc(sizeof(float) * PHIQ_ATTN_STATE(hd));
    float *sc = malloc(sizeof(float) * (size_t)n);
    const size_t es = q8 ? 1 : 2; /* K/V pointer unit for the f16 kernel's stride */
    for (int pass = 0; pass < 2; pass++) {
        phiq_attn_state_init(st, hd);
        phiq_attn_state_init(st2, hd);
        int k0 = 0;
        while (k0 < n) {
            const int len = pass == 0 ? n : k0 == 0 ? (n / 3 > 0 ? n / 3 : 1) : (n - k0 < 16 ? n - k0 : 16);
            float *dst = pass == 1 && k0 > 0 ? st2 : st;
            if (q8) ak->span_q8_0(q, K + (size_t)k0 * stride, V + (size_t)k0 * stride, stride, len, dst, sc, hd);
            else
                ak->span_f16(q, scale, (const uint16_t *)(const void *)(K + (size_t)k0 * stride),
                             (const uint16_t *)(const void *)(V + (size_t)k0 * stride), stride / es, len, dst, sc, hd);
            k0 += len;
        }
        if (pass == 1) phiq_attn_state_merge(st, st2, hd);
        phiq_attn_state_out(st, pass ? split : whole, hd);
    }
    free(st), free(st2), free(sc);
}

/* The f16 block kernels (prefill: several rows over tiles of positions):
 * 5 rows (a group of 4 and an odd one), row r sees [r, n - 2r) of the n
 * positions (so tiles start and end inside rows' ranges), queries the
 * first query scaled by 1 + r / 4; each row against the double softmax
 * over its own range. K, V: f16 rows of stride elements. */
static void check_block(const phiq_attn_kernels *const *all, int nt, const float *q0, float scale, const uint8_t *K,
                        const uint8_t *V, size_t stride, int n, int hd) {
    enum { NQ = 5 };
    const size_t SS = PHIQ_ATTN_STATE(hd);
    float *q = malloc(sizeof(float) * (size_t)(NQ * hd)), *st = malloc(sizeof(float) * NQ * SS);
    float *ws = aligned_alloc(64, (PHIQ_ATTN_BLOCK_WS(hd) * sizeof(float) + 63) / 64 * 64), *o = malloc(sizeof(float) * (size_t)hd);
    double *qd = malloc(sizeof(double) * (size_t)hd), *od = malloc(sizeof(double) * (size_t)hd);
    int lo[NQ], hi[NQ], rlo[NQ], rhi[NQ];
    for (int r = 0; r < NQ; r++) {
        for (int i = 0; i < hd; i++) q[r * hd + i] = q0[i] * (1.0f + 0.25f * (float)r);
        rlo[r] = r < n ? r : n, rhi[r] = n - 2 * r > rlo[r] ? n - 2 * r : rlo[r];
    }
    for (int t = 0; t < nt; t++) {
        if (!all[t]->block_f16) continue;
        for (int r = 0; r < NQ; r++) phiq_attn_state_init(st + r * SS, hd);
        for (int k0 = 0; k0 < n; k0 += PHIQ_ATTN_BLOCK_POS) {
            const int m = n - k0 < PHIQ_ATTN_BLOCK_POS ? n - k0 : PHIQ_ATTN_BLOCK_POS;
            for (int r = 0; r < NQ; r++) {
                lo[r] = rlo[r] > k0 ? rlo[r] - k0 : 0, hi[r] = rhi[r] - k0 < m ? rhi[r] - k0 : m;
                if (hi[r] < 0) hi[r] = 0;
                if (lo[r] > hi[r]) lo[r] = hi[r];
            }
            all[t]->block_f16(q, (size_t)hd, NQ, lo, hi, scale, (const uint16_t *)(const void *)K + (size_t)k0 * stride,
                              (const uint16_t *)(const void *)V + (size_t)k0 * stride, stride, m, st, ws, hd);
        }
        for (int r = 0; r < NQ; r++) {
            phiq_attn_state_out(st + r * SS, o, hd);
            const int len = rhi[r] - rlo[r];
            double mx = 0, dd = 0;
            if (len > 0) {
                for (int i = 0; i < hd; i++) qd[i] = q[r * hd + i];
                attn_double(0, qd, scale, K + (size_t)rlo[r] * stride * 2, V + (size_t)rlo[r] * stride * 2, stride * 2,
                            len, hd, od);
            } else
                for (int i = 0; i < hd; i++) od[i] = 0;
            for (int i = 0; i < hd; i++) mx = fmax(mx, fabs(od[i])), dd = fmax(dd, fabs((double)o[i] - od[i]));
            if (dd > 1e-5 * mx + 1e-30)
                fail_msg("f16 block %s hd %d n %d row %d [%d, %d): vs double %g (max |o| %g)", all[t]->name, hd, n, r,
                         rlo[r], rhi[r], dd, mx);
        }
    }
    free(q), free(st), free(ws), free(o), free(qd), free(od);
}

/* Every attention table on this CPU against the double-precision softmax
 * (and the SIMD ones against the portable one): f16 and Q8_0 caches, head
 * sizes 32-160 (40: a partial vector; 160: beyond the register-resident
 * paths), 1-300 positions, random, zero and large values. */
static void test_attn_spans(void **state) {
    (void)state;
    int nt = 0;
    const phiq_attn_kernels *const *all = phiq_attn_kernels_all(&nt);
    const phiq_attn_kernels *ref = phiq_attn_kernels_ref();
    assert_true(nt >= 1 && all[0] == ref && phiq_attn_kernels_get() != NULL);
    const int hds[] = {32, 40, 64, 80, 96, 128, 160}, ns[] = {1, 7, 33, 100, 300};
    int checked = 0;
    for (int q8 = 0; q8 < 2; q8++)
        for (int kind = 0; kind < 3; kind++) /* random, zeros, large */
            for (size_t a = 0; a < sizeof hds / sizeof *hds; a++)
                for (size_t b = 0; b < sizeof ns / sizeof *ns; b++) {
                    const int hd = hds[a], n = ns[b];
                    if (q8 && hd % 32) continue;
                    /* rows hold 2 heads; the kernel reads the second, so stride > head bytes */
                    const int dim = 2 * hd;
                    const size_t stride = q8 ? (size_t)dim / 32 * 34 : (size_t)dim * 2, hb = stride / 2;
                    float *x = malloc(sizeof(float) * (size_t)dim), *qf = malloc(sizeof(float) * (size_t)hd);
                    uint8_t *K = malloc(stride * (size_t)n), *V = malloc(stride * (size_t)n), *qb = malloc(hb);
                    const float big = kind == 2 ? 3000.0f : 1.0f;
                    for (int k = 0; k < n; k++)
                        for (int w = 0; w < 2; w++) {
                            uint8_t *row = (w ? V : K) + (size_t)k * stride;
                            for (int i = 0; i < dim; i++) x[i] = kind == 1 ? 0.0f : rndf(-1, 1) * big * (i % 7 == 0 ? 4 : 1);
                            if (q8) phiq_quantize_row_q8_0(x, row, dim);
                            else
                                for (int i = 0; i < dim; i++) put16(row + 2 * i, phiq_f32_to_f16(x[i]));
                        }
                    /* a large K with a small query keeps the scores finite but spread */
                    for (int i = 0; i < hd; i++) qf[i] = kind == 1 ? 0.0f : rndf(-1, 1) * (kind == 2 ? 0.001f : 0.5f);
                    const float scale = q8 ? 1.0f : 1.0f / sqrtf((float)hd);
                    double *qd = malloc(sizeof(double) * (size_t)hd), *od = malloc(sizeof(double) * (size_t)hd);
                    if (q8) {
                        phiq_quantize_row_q8_0(qf, qb, hd);
                        for (int i = 0; i < hd; i++) qd[i] = kv_at(1, qb, i);
                    } else
                        for (int i = 0; i < hd; i++) qd[i] = qf[i];
                    attn_double(q8, qd, scale, K + hb, V + hb, stride, n, hd, od);
                    double mx = 0;
                    for (int i = 0; i < hd; i++) mx = fmax(mx, fabs(od[i]));
                    float *o[2 * 5];
                    for (int t = 0; t < nt; t++) {
                        o[2 * t] = malloc(sizeof(float) * (size_t)hd), o[2 * t + 1] = malloc(sizeof(float) * (size_t)hd);
                        attn_run(all[t], q8, q8 ? (const void *)qb : (const void *)qf, scale, K + hb, V + hb, stride, n,
                                 hd, o[2 * t], o[2 * t + 1]);
                        for (int v = 0; v < 2; v++) {
                            double dd = 0, dr = 0;
                            for (int i = 0; i < hd; i++) {
                                dd = fmax(dd, fabs((double)o[2 * t + v][i] - od[i]));
                                dr = fmax(dr, fabs((double)o[2 * t + v][i] - o[v][i]));
                            }
                            if (dd > 1e-5 * mx + 1e-30 || dr > 1e-5 * mx + 1e-30)
                                fail_msg("%s attention %s hd %d n %d kind %d %s: vs double %g, vs scalar %g (max |o| %g)",
                                         q8 ? "q8_0" : "f16", all[t]->name, hd, n, kind, v ? "split+merge" : "one span",
                                         dd, dr, mx);
                            if (kind == 1)
                                for (int i = 0; i < hd; i++) assert_true(o[2 * t + v][i] == 0.0f);
                        }
                        checked++;
                    }
                    if (!q8 && kind != 1) check_block(all, nt, qf, scale, K + hb, V + hb, stride / 2, n, hd);
                    for (int t = 0; t < 2 * nt; t++) free(o[t]);
                    free(x), free(qf), free(K), free(V), free(qb), free(qd), free(od);
                }
    assert_int_equal(checked, nt * 3 * (7 * 5 + 5 * 5));
}

/* Calibration's Gram kernel (kernels/gram.h) in every table against the sum
 * as gram.h defines it, written here from the unpacked rows: the same bits,
 * nothing written outside the upper triangle of the column range, and the
 * sums (accumulated over two calls) close to a double-precision Xᵀ X. */
static void test_gram_upper(void **state) {
    (void)state;
    const int64_t ns[] = {1, 7, 16, 37, 50, 131}, Ts[] = {1, 16, 37}, blocks[] = {16, 48};
    const char *const *levels = phiq_kernels_levels();
    uint32_t rng = 4242;
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t b = 0; b < sizeof Ts / sizeof *Ts; b++) {
            const int64_t n = ns[a], T = Ts[b], ldx = n + 3;
            float *x = malloc(sizeof(float) * (size_t)(T * ldx)), *p = malloc(sizeof(float) * phiq_gram_packed_floats(n, T)),
                  *h0 = malloc(sizeof(float) * (size_t)(n * n)), *h1 = malloc(sizeof(float) * (size_t)(n * n));
            for (int64_t i = 0; i < T * ldx; i++) x[i] = (tu_randf(&rng) - 0.5f) * (i % 5 == 0 ? 100.0f : 1.0f);
            for (int64_t i = 0; i < n * n; i++) h0[i] = (float)i * 0.25f;
            for (int rep = 0; rep < 2; rep++)
                for (int64_t i = 0; i < n; i++)
                    for (int64_t j = i; j < n; j++) {
                        float s = 0;
                        for (int64_t t = 0; t < T; t++) s = fmaf(x[t * ldx + i], x[t * ldx + j], s);
                        h0[i * n + j] += s;
                    }
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = i; j < n; j++) {
                    double d = 0, m = 0;
                    for (int64_t t = 0; t < T; t++) {
                        const double v = (double)x[t * ldx + i] * x[t * ldx + j];
                        d += v, m += fabs(v);
                    }
                    assert_true(fabs(h0[i * n + j] - ((double)(i * n + j) * 0.25 + 2 * d)) <= 1e-5 * (2 * m + 1) + 1e-4 * (double)(i * n + j) * 0.25);
                }
            phiq_gram_pack(p, x, ldx, n, T);
            for (int l = 0; levels[l]; l++) {
                const phiq_kernels *k = phiq_kernels_for(levels[l]);
                if (!k) continue;
                assert_non_null(k->gram_upper);
                for (size_t z = 0; z < sizeof blocks / sizeof *blocks; z++) {
                    for (int64_t i = 0; i < n * n; i++) h1[i] = (float)i * 0.25f;
                    for (int rep = 0; rep < 2; rep++)
                        for (int64_t j0 = 0; j0 < n; j0 += blocks[z]) k->gram_upper(h1, n, p, T, j0, j0 + blocks[z]);
                    if (memcmp(h0, h1, sizeof(float) * (size_t)(n * n)))
                        fail_msg("gram_upper %s: n %lld T %lld blocks of %lld differ", levels[l], (long long)n, (long long)T, (long long)blocks[z]);
                }
            }
            free(x), free(p), free(h0), free(h1);
        }
}

/* The bandwidth probe's read in every table: the wrapping sum of the 64-bit
 * words, computed here word by word, for buffers of 256 B to 64 KiB at an
 * unaligned start, with and without prefetch (which may reach past the end:
 * a prefetch never faults). */
static void test_stream_read(void **state) {
    (void)state;
    const size_t sizes[] = {256, 512, 4096, 65536}, aheads[] = {0, 512, 2048};
    uint8_t *buf = malloc(65536 + 8);
    uint32_t rng = 77;
    for (size_t i = 0; i < 65536 + 8; i++) buf[i] = (uint8_t)(tu_randf(&rng) * 256.0f);
    const char *const *levels = phiq_kernels_levels();
    for (size_t a = 0; a < sizeof sizes / sizeof *sizes; a++) {
        const uint8_t *p = buf + 8 * (a % 2) + (a == 2 ? 3 : 0); /* 8-aligned, then odd */
        uint64_t want = 0;
        for (size_t i = 0; i < sizes[a]; i += 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            want += w;
        }
        for (int l = 0; levels[l]; l++) {
            const phiq_kernels *k = phiq_kernels_for(levels[l]);
            if (!k) continue;
            assert_non_null(k->stream_read);
            for (size_t z = 0; z < sizeof aheads / sizeof *aheads; z++)
                if (k->stream_read(p, sizes[a], aheads[z]) != want)
                    fail_msg("stream_read %s: %zu bytes, ahead %zu: wrong sum", levels[l], sizes[a], aheads[z]);
        }
    }
    free(buf);
}

/* The log-sum-exp's sum in every table against libm's exp term by term
 * (computed here, not by the scalar table): each term within 1e-15
 * relative (about 4 ulp), the sum within the bound of
 * len - 1 additions in any order (around 1e-15 to 4e-12); rows of 1
 * to 41 logits (every tail) and one of 32064 (Phi-3's vocabulary); terms
 * below exp(-708) are 0 in the vector forms, exp(-inf) is 0, and a NaN
 * logit makes the sum NaN. */
static void test_exp_sum(void **state) {
    (void)state;
    enum { BIG = 32064 };
    float *x = malloc(sizeof(float) * BIG);
    double *e = malloc(sizeof(double) * BIG);
    uint32_t rng = 4242;
    const char *const *levels = phiq_kernels_levels();
    for (int n = 1; n <= 42; n++) {
        const int len = n == 42 ? BIG : n;
        float mx = -INFINITY;
        for (int i = 0; i < len; i++) {
            x[i] = 40.0f * tu_randf(&rng) - 30.0f;
            if (i % 7 == 3) x[i] = -800.0f + 150.0f * tu_randf(&rng); /* some below exp(-708) */
            if (i % 11 == 5) x[i] = -INFINITY;
        }
        for (int i = 0; i < len; i++) mx = x[i] > mx ? x[i] : mx;
        if (!(mx > -INFINITY)) x[0] = mx = 1.0f;
        long double wl = 0; /* the exact sum of the double terms, nearly */
        for (int i = 0; i < len; i++) wl += exp((double)x[i] - mx);
        const double want = (double)wl;
        for (int l = 0; levels[l]; l++) {
            const phiq_kernels *k = phiq_kernels_for(levels[l]);
            if (!k) continue;
            assert_non_null(k->exp_sum);
            const double got = k->exp_sum(x, len, mx, e);
            /* any order of len - 1 additions: at most (len - 1) u of the sum (Higham) */
            if (!(fabs(got - want) <= (2e-15 + 1.2e-16 * len) * want)) fail_msg("exp_sum %s n=%d: %.17g vs %.17g", levels[l], len, got, want);
            for (int i = 0; i < len; i++) {
                const double t = exp((double)x[i] - mx);
                const double tol = (double)x[i] - mx < -708.0 ? t : 1e-15 * t;
                if (!(fabs(e[i] - t) <= tol)) fail_msg("exp_sum %s n=%d term %d (x - max = %g): %.17g vs %.17g", levels[l], len, i,
                                                      (double)x[i] - mx, e[i], t);
            }
            assert_true(k->exp_sum(x, len, mx, NULL) == got);
        }
    }
    x[5] = NAN;
    for (int l = 0; levels[l]; l++) {
        const phiq_kernels *k = phiq_kernels_for(levels[l]);
        if (k) assert_true(isnan(k->exp_sum(x, 9, 10.0f, NULL)));
    }
    free(x);
    free(e);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--print-isa") == 0) {
        printf("%s\n", phiq_kernels_get()->isa);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_gram_upper),
        cmocka_unit_test(test_stream_read),
        cmocka_unit_test(test_exp_sum),
        cmocka_unit_test(test_quantize_act_q8_0),
        cmocka_unit_test(test_quantize_act_q8_K),
        cmocka_unit_test(test_quantize_act_tables),
        cmocka_unit_test(test_f16_f32),
        cmocka_unit_test(test_all_types_all_isas),
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_gemm_f16_tiled),
        cmocka_unit_test(test_gemm_f16_amx_packed),
        cmocka_unit_test(test_isa_env),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_against_quant),
        cmocka_unit_test(test_attn_spans),
    };
    return tu_run_group(tests, NULL, NULL);
}
