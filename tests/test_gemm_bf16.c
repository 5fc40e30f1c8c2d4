/* test_gemm_bf16.c — the BF16 prefill gemm (kernels/gemm_bf16.h: BF16
 * weights read unconverted, f32 activations) and the engine's use of it.
 *
 * References written here, not from the kernel:
 *  - the activation order: each whole group of 32 as elements 0-3, 8-11,
 *    16-19, 24-27, 4-7, 12-15, 20-23, 28-31 (the lane order in which
 *    vpunpcklwd/vpunpckhwd widen 32 bf16s), a tail in order; checked value
 *    for value over every n up to 70;
 *  - gemm_ref: the scalar gemm, each bf16 weight widened by a 16-bit shift,
 *    products and sums in f32 in order. It is itself checked against a
 *    double sum of the same products within n u sum|p| (u = 2^-24: the
 *    products' and the sequential sum's rounding).
 * The kernel (fused multiply-adds, 16 lanes, tree reduction) must agree with
 * gemm_ref within 2 (n + 16) u sum|p|, on shapes with odd row and column
 * counts around its 4 x 6 tile, n not a multiple of 32 (masked tails, odd n
 * too), and enough columns to cross its activation blocking.
 *
 * The engine's routing (model/matmul.c): the BF16 fixture loaded with
 * PHIQ_LOAD_KEEP_BF16 keeps its rows in BF16 and its contexts take the gemm
 * (bf16_gemm), a default load's do not; a prefill's logits on that path are
 * those of the default f32-activation path up to the order of additions
 * (far nearer than llamacpp_numerics's bf16-rounded activations are). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "formats/ggml_type.h"
#include "kernels/gemm_bf16.h"
#include "model/model.h"

static float bf(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void gemm_ref(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const uint16_t *w, const float *x) {
    for (int64_t j = 0; j < ncols; j++)
        for (int64_t r = 0; r < nrows; r++) {
            float s = 0.0f;
            for (int64_t k = 0; k < n; k++) {
                const float p = bf(w[r * n + k]) * x[j * n + k];
                s += p;
            }
            out[(size_t)j * ldo + (size_t)r] = s;
        }
}

static bool have_kernel(void) { return phiq_mm_bf16_gemm_usable(); }

/* source index of prepared element k of a row of n */
static int64_t order(int64_t n, int64_t k) {
    const int64_t g = k / 32 * 32, e = k % 32;
    if (g + 32 > n) return k; /* tail */
    return g + (e < 16 ? e / 4 * 8 + e % 4 : (e - 16) / 4 * 8 + 4 + e % 4);
}

static void test_prepare_order(void **state) {
    (void)state;
    if (!have_kernel()) skip();
#if defined(__x86_64__) || defined(_M_X64)
    enum { N = 200 };
    float x[N], y[N + 1];
    for (int i = 0; i < N; i++) x[i] = (float)i + 0.25f;
    for (int n = 1; n <= N; n += n < 70 ? 1 : 43) {
        y[n] = -1.0f; /* nothing written past n */
        phiq_bf16_act_prepare_avx512(y, x, n);
        assert_true(y[n] == -1.0f);
        for (int k = 0; k < n; k++)
            if (y[k] != x[order(n, k)]) fail_msg("n %d, element %d: %g, want x[%lld]", n, k, (double)y[k], (long long)order(n, k));
    }
#endif
}

/* one shape: R weight rows x J activation rows of n */
static void check_shape(int64_t n, int64_t R, int64_t J, uint32_t *seed) {
#if defined(__x86_64__) || defined(_M_X64)
    uint16_t *w = malloc(sizeof(uint16_t) * (size_t)(R * n));
    float *x = malloc(sizeof(float) * (size_t)(J * n)), *xp = malloc(sizeof(float) * (size_t)(J * n)),
          *o = malloc(sizeof(float) * (size_t)(J * R)), *ref = malloc(sizeof(float) * (size_t)(J * R));
    for (int64_t i = 0; i < R * n; i++) w[i] = phiq_f32_to_bf16((tu_randf(seed) - 0.5f) * (i % 7 == 0 ? 40.0f : 0.3f));
    for (int64_t i = 0; i < J * n; i++) x[i] = (tu_randf(seed) - 0.5f) * (i % 11 == 0 ? 100.0f : 3.0f);
    for (int64_t j = 0; j < J; j++) phiq_bf16_act_prepare_avx512(xp + j * n, x + j * n, n);
    memset(o, 0xff, sizeof(float) * (size_t)(J * R));
    phiq_gemm_bf16_f32_avx512(n, R, J, o, (size_t)R, w, (size_t)n * 2, xp, (size_t)n);
    gemm_ref(n, R, J, ref, (size_t)R, w, x);
    const double u = ldexp(1.0, -24);
    double worst = 0;
    for (int64_t j = 0; j < J; j++)
        for (int64_t r = 0; r < R; r++) {
            double d = 0, mag = 0;
            for (int64_t k = 0; k < n; k++) {
                double p = (double)bf(w[r * n + k]) * (double)x[j * n + k];
                d += p;
                mag += fabs(p);
            }
            const float g = o[j * R + r], f = ref[j * R + r];
            if (!(fabs((double)f - d) <= (double)n * u * mag + 1e-30))
                fail_msg("reference vs double: n %lld, row %lld, col %lld: %.9g vs %.9g", (long long)n, (long long)r,
                         (long long)j, (double)f, d);
            if (!(fabs((double)g - (double)f) <= 2.0 * (double)(n + 16) * u * mag + 1e-30))
                fail_msg("kernel vs reference: n %lld (%lld x %lld), row %lld, col %lld: %.9g vs %.9g (sum|p| %.6g)",
                         (long long)n, (long long)R, (long long)J, (long long)r, (long long)j, (double)g, (double)f, mag);
            if (mag > 0 && fabs((double)g - d) / mag > worst) worst = fabs((double)g - d) / mag;
        }
    print_message("n %5lld, %3lld rows x %3lld cols: worst |kernel - exact| / sum|p| = %.3g\n", (long long)n, (long long)R,
                  (long long)J, worst);
    free(w), free(x), free(xp), free(o), free(ref);
#else
    (void)n, (void)R, (void)J, (void)seed;
#endif
}

static void test_gemm_shapes(void **state) {
    (void)state;
    if (!have_kernel()) skip();
    uint32_t seed = 12345;
    /* whole groups of 32, masked tails (odd n too), odd rows and columns
     * around the 4 x 6 tile */
    const int64_t shapes[][3] = {{32, 4, 6}, {96, 40, 21}, {1, 3, 5}, {3, 7, 13}, {17, 5, 1}, {45, 13, 7},
                                 {63, 9, 11}, {100, 1, 25}, {3072, 6, 9}, {333, 17, 19}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) check_shape(shapes[i][0], shapes[i][1], shapes[i][2], &seed);
    /* more columns than one activation block (1 MB of f32 rows: 30 of 8192) */
    check_shape(8192, 5, 70, &seed);
}

/* max |a - b| over n logits rows, relative to the range of b's */
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, lo = b[0], hi = b[0];
    for (size_t i = 0; i < n; i++) {
        if (fabs((double)a[i] - b[i]) > d) d = fabs((double)a[i] - b[i]);
        if (b[i] < lo) lo = b[i];
        if (b[i] > hi) hi = b[i];
    }
    return d / (hi - lo);
}

static void test_engine_route(void **state) {
    (void)state;
    if (!have_kernel()) skip();
    const char *fx = tu_shared_path("fixtures/tiny-phi3-kjv");
    enum { T = 48 };
    phiq_model_params mp = {.type = "bf16"};
    phiq_model *keep = phiq_model_load_ex(fx, NULL, PHIQ_LOAD_KEEP_BF16), *plain = phiq_model_load(fx, &mp);
    if (!keep || !plain) fail_msg("%s", phiq_error());
    assert_int_equal(keep->layers[0].qkv.type, PHIQ_GGML_TYPE_BF16);
    assert_int_equal(keep->output.type, PHIQ_GGML_TYPE_BF16);
    const int nv = keep->hp.n_vocab;
    int32_t ids[T];
    for (int i = 0; i < T; i++) ids[i] = (int32_t)((i * 7919 + 13) % nv);
    phiq_context_params cp = phiq_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 2;
    cp.all_logits = 1;
    phiq_context *ck = phiq_context_new(keep, &cp), *cd = phiq_context_new(plain, &cp);
    cp.llamacpp_numerics = 1;
    phiq_context *cl = phiq_context_new(plain, &cp);
    assert_non_null(ck), assert_non_null(cd), assert_non_null(cl);
    assert_int_equal(ck->bf16_gemm, phiq_mm_bf16_gemm_usable());
    assert_int_equal(cd->bf16_gemm, 0);
    assert_int_equal(cl->bf16_gemm, 0);
    if (!ck->bf16_gemm) skip(); /* PHIQ_ISA or PHIQ_REFERENCE_MATMUL turned it off */
    float *lk = tu_eval_logits(ck, ids, T, T, nv), *ld = tu_eval_logits(cd, ids, T, T, nv), *ll = tu_eval_logits(cl, ids, T, T, nv);
    const size_t n = (size_t)T * (size_t)nv;
    const double vs_llama = rel_diff(lk, ll, n), vs_f32 = rel_diff(lk, ld, n), llama_vs_f32 = rel_diff(ll, ld, n);
    print_message("prefill logits, max |diff| / range: BF16 gemm vs f32 path %.3g, vs llamacpp_numerics %.3g "
                  "(llamacpp_numerics vs f32 path %.3g)\n", vs_f32, vs_llama, llama_vs_f32);
    /* the f32 path up to the order of additions: a fraction of what
     * rounding activations to bf16 moves */
    assert_true(vs_f32 <= 0.05 * llama_vs_f32);
    assert_true(vs_llama <= 2.0 * llama_vs_f32);
    free(lk), free(ld), free(ll);
    phiq_context_free(ck), phiq_context_free(cd), phiq_context_free(cl);
    phiq_model_free(keep), phiq_model_free(plain);
}

TU_MAIN(NULL, NULL, test_prepare_order, test_gemm_shapes, test_engine_route)
