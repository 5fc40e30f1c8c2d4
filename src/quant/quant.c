/* quant.c — quantizer dispatch: phiq_quantize / phiq_dequantize look each
 * type up in one table of per-type row functions and call the family that
 * owns it (quant_q32.c, quant_iq4.c, quant_k.c; the float types here). The
 * families depend only on the shared definitions (formats/ggml_blocks.h,
 * quant_internal.h, quant_search.c), never on this file or each other.
 * Block and byte sizes come from formats/ggml_type.c's table.
 */
#include "quant/quant.h"

#include "quant/quant_internal.h"

int64_t phiq_quant_check_finite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        if ((u & 0x7f800000u) == 0x7f800000u) return i;
    }
    return -1;
}

/* ---- float types ----------------------------------------------------------------- */

static void q_f32(const float *x, void *y, int64_t n, const float *qw, int simd) {
    (void)qw, (void)simd;
    memcpy(y, x, (size_t)n * 4);
}
/* 16-bit floats, written bytewise (rows need not be aligned). */
static inline void q_half(const float *x, uint8_t *out, int64_t n, uint16_t (*to_half)(float)) {
    for (int64_t i = 0; i < n; i++) {
        const uint16_t h = to_half(x[i]);
        memcpy(out + 2 * i, &h, 2);
    }
}
static void q_f16(const float *x, void *y, int64_t n, const float *qw, int simd) {
    (void)qw, (void)simd;
    q_half(x, y, n, phiq_f32_to_f16);
}
static void q_bf16(const float *x, void *y, int64_t n, const float *qw, int simd) {
    (void)qw, (void)simd;
    q_half(x, y, n, phiq_f32_to_bf16);
}
static void dq_f32(const void *x, float *y, int64_t n) { memcpy(y, x, (size_t)n * 4); }
static inline void dq_half(const uint8_t *in, float *y, int64_t n, float (*from_half)(uint16_t)) {
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, in + 2 * i, 2);
        y[i] = from_half(h);
    }
}
static void dq_f16(const void *x, float *y, int64_t n) { dq_half(x, y, n, phiq_f16_to_f32); }
static void dq_bf16(const void *x, float *y, int64_t n) { dq_half(x, y, n, phiq_bf16_to_f32); }

/* The activation types ignore an imatrix, as ggml does. */
static void q_q8_0(const float *x, void *y, int64_t n, const float *qw, int simd) {
    (void)qw, (void)simd;
    phiq_quantize_row_q8_0(x, y, n);
}
static void q_q8_1(const float *x, void *y, int64_t n, const float *qw, int simd) {
    (void)qw, (void)simd;
    phiq_quantize_row_q8_1(x, y, n);
}
static void q_q8_K(const float *x, void *y, int64_t n, const float *qw, int simd) {
    (void)qw, (void)simd;
    phiq_quantize_row_q8_K(x, y, n);
}

/* ---- the table ----------------------------------------------------------------------- */

typedef struct {
    phiq_quant_row_fn quantize_row;     /* one row of n elements; qw NULL or n importance weights */
    phiq_dequant_row_fn dequantize_row; /* n elements, whole blocks */
} quant_traits;

static const quant_traits traits[PHIQ_GGML_TYPE_COUNT] = {
    [PHIQ_GGML_TYPE_F32] = {q_f32, dq_f32},
    [PHIQ_GGML_TYPE_F16] = {q_f16, dq_f16},
    [PHIQ_GGML_TYPE_BF16] = {q_bf16, dq_bf16},
    [PHIQ_GGML_TYPE_Q8_0] = {q_q8_0, phiq_dequantize_row_q8_0},
    [PHIQ_GGML_TYPE_Q8_1] = {q_q8_1, phiq_dequantize_row_q8_1},
    [PHIQ_GGML_TYPE_Q8_K] = {q_q8_K, phiq_dequantize_row_q8_K},
#define QUANT_ROW(t, T) [PHIQ_GGML_TYPE_##T] = {phiq_quantize_row_##t, phiq_dequantize_row_##t},
    PHIQ_QUANT_TYPES(QUANT_ROW)
#undef QUANT_ROW
};

static const quant_traits *traits_of(int type) {
    return type >= 0 && type < PHIQ_GGML_TYPE_COUNT && traits[type].quantize_row ? &traits[type] : NULL;
}

int phiq_quant_can_quantize(int type) { return traits_of(type) != NULL; }

int phiq_quant_can_dequantize(int type) { return traits_of(type) != NULL; }

int64_t phiq_quantize(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                      const float *imatrix) {
    return phiq_quantize_impl(type, src, dst, nrows, n_per_row, imatrix, phiq_quant_simd());
}

int64_t phiq_quantize_impl(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                           const float *imatrix, int simd) {
    simd = simd && phiq_quant_simd(); /* never AVX2 code on a CPU without it */
    const quant_traits *t = traits_of(type);
    if (!t) return phiq_fail(PHIQ_EUNSUPPORTED, "quantize: unsupported type %s", phiq_ggml_type_name(type));
    const int64_t row_size = phiq_ggml_row_size(type, n_per_row);
    if (nrows < 0 || n_per_row <= 0 || row_size < 0)
        return phiq_fail(PHIQ_EINVAL, "quantize: %s rows of %lld elements are not whole blocks",
                         phiq_ggml_type_name(type), (long long)n_per_row);
    uint8_t *out = dst;
    for (int64_t r = 0; r < nrows; r++) t->quantize_row(src + r * n_per_row, out + r * row_size, n_per_row, imatrix, simd);
    return nrows * row_size;
}

int phiq_dequantize(int type, const void *src, float *dst, int64_t n) {
    const quant_traits *t = traits_of(type);
    if (!t) return phiq_fail(PHIQ_EUNSUPPORTED, "dequantize: unsupported type %s", phiq_ggml_type_name(type));
    const int64_t bs = phiq_ggml_block_size(type);
    if (n < 0 || n % bs)
        return phiq_fail(PHIQ_EINVAL, "dequantize: %lld elements are not whole %s blocks", (long long)n,
                         phiq_ggml_type_name(type));
    t->dequantize_row(src, dst, n);
    return 0;
}
