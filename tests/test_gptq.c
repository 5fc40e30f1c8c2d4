/* test_gptq.c — GPTQ inside ggml blocks (quant/gptq.h).
 * 1. With a diagonal Hessian there is nothing to compensate: each block gets
 *    the scales of the imatrix quantizer (itself byte-identical to
 *    llama-quantize, test_quant*) with imatrix = diag(H), and each column the
 *    grid point nearest its weight, so every decoded value is at least as
 *    close as the imatrix quantizer's (which rounds against its search scale,
 *    not the stored one). A wrong code layout in gptq.c breaks this at once.
 * 2. With correlated inputs, the output error tr(ΔW H ΔWᵀ) must fall well
 *    below round-to-nearest's with the same importance weights.
 * 3. A Hessian positive definite in double but not in float (the float
 *    factorization's pivot rounds to zero) takes the double path; one that
 *    is not positive definite even damped fails ("raise --damp"). */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "formats/ggml_type.h"
#include "quant/gptq.h"
#include "quant/quant.h"

static uint32_t rng = 12345;
static float frand(void) { return tu_randf(&rng) - 0.5f; }

static void test_diagonal_rounds_nearest(void **state) {
    (void)state;
    const int types[] = {PHIQ_GGML_TYPE_Q4_0, PHIQ_GGML_TYPE_Q8_0, PHIQ_GGML_TYPE_Q4_K, PHIQ_GGML_TYPE_Q5_K,
                         PHIQ_GGML_TYPE_Q6_K};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const int type = types[t];
        const int64_t n = phiq_ggml_block_size(type), rows = 24; /* one block per row: same sigma as a whole row */
        float *w = malloc(sizeof(float) * (size_t)(rows * n)), *w2 = malloc(sizeof(float) * (size_t)(rows * n));
        float *H = calloc((size_t)(n * n), sizeof(float)), *im = malloc(sizeof(float) * (size_t)n);
        size_t rb = (size_t)phiq_ggml_row_size(type, n);
        uint8_t *a = malloc(rb * (size_t)rows), *b = malloc(rb * (size_t)rows);
        for (int64_t i = 0; i < rows * n; i++) w[i] = w2[i] = frand() * (1.0f + 3.0f * (i % 7 == 0));
        for (int64_t i = 0; i < n; i++) im[i] = H[i * n + i] = 0.1f + 2.0f * (frand() + 0.5f);
        /* damp 1e-7: U stays diagonal, the rounding alone is compared */
        assert_int_equal(phiq_gptq_quantize(type, w, a, rows, n, H, 1e-7f, 2), 0);
        assert_true(phiq_quantize(type, w2, b, rows, n, im) > 0);
        float *da = malloc(sizeof(float) * (size_t)n), *db = malloc(sizeof(float) * (size_t)n);
        int closer = 0;
        for (int64_t r = 0; r < rows; r++) {
            assert_int_equal(phiq_dequantize(type, a + r * rb, da, n), 0);
            assert_int_equal(phiq_dequantize(type, b + r * rb, db, n), 0);
            for (int64_t i = 0; i < n; i++) {
                float x = w2[r * n + i], ea = fabsf(da[i] - x), eb = fabsf(db[i] - x);
                if (ea > eb + 1e-5f * (1 + fabsf(x)))
                    fail_msg("%s row %lld col %lld: %g is farther from %g than %g", phiq_ggml_type_name(type), (long long)r,
                             (long long)i, da[i], x, db[i]);
                closer += ea < eb - 1e-6f;
            }
        }
        fprintf(stderr, "%s: %d of %lld values rounded closer than the imatrix quantizer\n", phiq_ggml_type_name(type),
                closer, (long long)(rows * n));
        free(da), free(db);
        free(w), free(w2), free(H), free(im), free(a), free(b);
    }
}

static double out_err(int type, const void *q, const float *w, const float *H, int64_t rows, int64_t n) {
    float *d = malloc(sizeof(float) * (size_t)n);
    double e = 0;
    size_t rb = (size_t)phiq_ggml_row_size(type, n);
    for (int64_t r = 0; r < rows; r++) {
        assert_int_equal(phiq_dequantize(type, (const uint8_t *)q + r * rb, d, n), 0);
        for (int64_t i = 0; i < n; i++) d[i] -= w[r * n + i];
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < n; k++) e += (double)d[i] * H[i * n + k] * d[k];
    }
    free(d);
    return e;
}

static void test_correlated_inputs(void **state) {
    (void)state;
    const int types[] = {PHIQ_GGML_TYPE_Q4_0, PHIQ_GGML_TYPE_Q4_K, PHIQ_GGML_TYPE_Q3_K};
    const int64_t n = 512, rows = 32, T = 1024;
    /* inputs x = A z with a random mixing A: strongly correlated columns */
    float *X = malloc(sizeof(float) * (size_t)(T * n)), *H = calloc((size_t)(n * n), sizeof(float));
    for (int64_t t = 0; t < T; t++) {
        float z[8];
        for (int k = 0; k < 8; k++) z[k] = frand() * 4;
        for (int64_t i = 0; i < n; i++) X[t * n + i] = z[i % 8] * (1 + 0.1f * (float)(i % 5)) + 0.2f * frand();
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < n; k++) {
            double s = 0;
            for (int64_t t = 0; t < T; t++) s += (double)X[t * n + i] * X[t * n + k];
            H[i * n + k] = (float)(s / T);
        }
    float *w = malloc(sizeof(float) * (size_t)(rows * n)), *wc = malloc(sizeof(float) * (size_t)(rows * n));
    float *im = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < rows * n; i++) w[i] = frand();
    for (int64_t i = 0; i < n; i++) im[i] = H[i * n + i];
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        int type = types[t];
        size_t rb = (size_t)phiq_ggml_row_size(type, n);
        uint8_t *a = malloc(rb * (size_t)rows), *b = malloc(rb * (size_t)rows);
        memcpy(wc, w, sizeof(float) * (size_t)(rows * n));
        assert_int_equal(phiq_gptq_quantize(type, wc, a, rows, n, H, 0.01f, 2), 0);
        assert_true(phiq_quantize(type, w, b, rows, n, im) > 0);
        double eg = out_err(type, a, w, H, rows, n), er = out_err(type, b, w, H, rows, n);
        fprintf(stderr, "%s: output error GPTQ %.4g, imatrix RTN %.4g (%.2fx)\n", phiq_ggml_type_name(type), eg, er, eg / er);
        assert_true(eg < 0.7 * er);
        free(a), free(b);
    }
    free(X), free(H), free(w), free(wc), free(im);
}

static void test_bad_input(void **state) {
    (void)state;
    float w[32] = {0}, H[32 * 32] = {0};
    uint8_t out[64];
    assert_true(phiq_gptq_quantize(PHIQ_GGML_TYPE_F16, w, out, 1, 32, H, 0.01f, 1) < 0);
    assert_true(phiq_gptq_quantize(PHIQ_GGML_TYPE_Q4_K, w, out, 1, 32, H, 0.01f, 1) < 0); /* 32 is not a multiple of 256 */
}

static void test_pivots(void **state) {
    (void)state;
    enum { N = 64 };
    float *w = malloc(sizeof(float) * 4 * N), *H = malloc(sizeof(float) * N * N);
    uint8_t out[4 * (N / 32) * 34];
    for (int i = 0; i < 4 * N; i++) w[i] = frand();
    /* all ones (rank 1) + 1e-9 I: in float 1 + 1e-9 is 1 and the second pivot 0 */
    for (int i = 0; i < N * N; i++) H[i] = 1.0f;
    assert_int_equal(phiq_gptq_quantize(PHIQ_GGML_TYPE_Q8_0, w, out, 4, N, H, 1e-9f, 1), 0);
    /* 2 - δ_ij: eigenvalue -1 (N - 1 times) even with damp 0.01 */
    for (int i = 0; i < N * N; i++) H[i] = i % (N + 1) == 0 ? 1.0f : 2.0f;
    for (int i = 0; i < 4 * N; i++) w[i] = frand();
    assert_true(phiq_gptq_quantize(PHIQ_GGML_TYPE_Q8_0, w, out, 4, N, H, 0.01f, 1) < 0);
    free(w), free(H);
}

TU_MAIN(NULL, NULL, test_diagonal_rounds_nearest, test_correlated_inputs, test_bad_input, test_pivots)
