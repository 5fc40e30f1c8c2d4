/* quant_internal.h — float32 helpers and the scale searches shared by the
 * quantizer families (quant_q32.c, quant_iq4.c, quant_k.c) and the table
 * in quant.c that dispatches to them. The block layouts are
 * formats/ggml_blocks.h's.
 *
 * Byte-exactness with llama.cpp rests on doing every float32 operation in
 * the same order and type as ggml-quants.c; the helpers here (nearest_int,
 * fp16 round trips) are the pieces whose exact semantics matter.
 */
#ifndef PHIQ_QUANT_INTERNAL_H
#define PHIQ_QUANT_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/common.h"
#include "formats/ggml_blocks.h"
#include "kernels/cpu.h"

/* llama.cpp's reference build has no FMA; contracting a*b+c into one
 * rounding would change results, so forbid it in every file that includes
 * this header. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* quant_avx2.c is compiled (with -mavx2) on x86-64 only; see CMakeLists.txt. */
#if defined(__x86_64__) && defined(__GNUC__)
#define PHIQ_QUANT_HAVE_AVX2 1
#else
#define PHIQ_QUANT_HAVE_AVX2 0
#endif

#define PHIQ_GROUP_MAX_EPS 1e-15f

static inline float phiq_h2f(phiq_half h) { return phiq_f16_to_f32(h); }
static inline phiq_half phiq_f2h(float f) { return phiq_f32_to_f16(f); }

/* Round to nearest, ties to even, via the 1.5*2^23 magic number (ggml's
 * nearest_int). Valid for |x| <= 2^22 - 1; larger inputs (only reachable
 * with non-finite or absurd data) give garbage, exactly as in ggml. */
static inline int phiq_nearest_int(float fval) {
    float val = fval + 12582912.f;
    int32_t i;
    memcpy(&i, &val, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* The value of largest magnitude (the first on ties) and, in *amax, that
 * magnitude: the scale anchor of ggml's symmetric quantizers. */
static inline float phiq_signed_absmax(const float *x, int n, float *amax) {
    float a = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        const float ax = fabsf(x[j]);
        if (ax > a) {
            a = ax;
            max = x[j];
        }
    }
    if (amax) *amax = a;
    return max;
}

static inline int phiq_imin(int a, int b) { return a < b ? a : b; }
static inline int phiq_imax(int a, int b) { return a > b ? a : b; }

/* The Q4_K/Q5_K scale search of one 256-element super-block: weights w
 * (imatrix path, make_qkx3_quants) or, w NULL, sqrt(mean x^2) + |x| per
 * 32-element sub-block (reference path, make_qkx2_quants):
 * L[256], scales[8], mins[8]. The AVX2 version runs the
 * 8 sub-blocks in 8 lanes and gives identical results (tests compare them). */
void phiq_k45_search_scalar(const float *x, const float *w, int nmax, float rmin, float rdelta, int nstep, uint8_t *L,
                            float *scales, float *mins);
/* make_qx_quants (rmse_type 1) on 8 groups of 16 (Q6_K's sub-blocks). */
void phiq_qx16_search_scalar(const float *x, const float *qw, int nmax, int8_t *L, float *scales);
#if PHIQ_QUANT_HAVE_AVX2
void phiq_qx16_search_avx2(const float *x, const float *qw, int nmax, int8_t *L, float *scales);
/* IQ4: scale search of 8 blocks of 32 (x, weights w), and the index lookup
 * of n elements with per-32-block factors id (quant_avx2.c). */
void phiq_iq4_scales_avx2(const float *x, const float *w, float *scales);
void phiq_iq4_index_avx2(const float *x, const float *id, int n, uint8_t *L);
void phiq_k45_search_avx2(const float *x, const float *w, int nmax, float rmin, float rdelta, int nstep, uint8_t *L,
                          float *scales, float *mins);
#endif

/* Whether the AVX2 paths may be used on this CPU: kernels/cpu.h's answer
 * (CPUID and the OS's register state), the one detection of the library. */
static inline int phiq_quant_simd(void) {
#if PHIQ_QUANT_HAVE_AVX2
    return phiq_cpu_get()->avx2;
#else
    return 0;
#endif
}
/* phiq_quantize with the SIMD paths on or off (tests check both agree). */
int64_t phiq_quantize_impl(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                           const float *imatrix, int simd);

/* ---- scale searches (quant_search.c), shared by every family ---------------- */

/* make_qx_quants with rmse_type 1: symmetric levels -nmax..nmax-1, 19 trial
 * scales, weights qw (or x^2). L receives l + nmax. */
float phiq_make_qx_quants(int n, int nmax, const float *x, int8_t *L, const float *qw);
/* make_q3_quants with do_rmse: x^2-weighted coordinate descent; L receives l + nmax. */
float phiq_make_q3_quants(int n, int nmax, const float *x, int8_t *L);
/* make_qkx2_quants (weights given; use_mad: |diff| instead of diff^2) and
 * make_qkx3_quants (weights NULL: x^2): asymmetric 0..nmax levels and a min
 * (*the_min = -min); Laux: n bytes of scratch. */
float phiq_make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                            uint8_t *Laux, float rmin, float rdelta, int nstep, int use_mad);
float phiq_make_qkx3_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                            uint8_t *Laux, float rmin, float rdelta, int nstep);
/* make_qp_quants: non-negative values (sub-block scales/mins) to 0..nmax with weights qw. */
float phiq_make_qp_quants(int n, int nmax, const float *x, uint8_t *L, const float *qw);
/* sum of x[j]^2 over j < n, in order (ggml's sumx2 before sigma2). */
float phiq_sumsq(const float *x, int64_t n);
/* ggml's importance weights of n elements: out[j] = qw[j] * sqrt(sigma2 +
 * x[j]^2); returns their sum (in order). */
float phiq_imat_weights(const float *x, const float *qw, float sigma2, int n, float *out);

/* ---- per-family row functions, the entries of quant.c's table ---------------- */

/* One row of n elements (whole blocks); qw: NULL (llama-quantize without an
 * imatrix) or n importance weights; simd: may use the AVX2 searches
 * (identical bytes; callers pass phiq_quant_simd()). */
typedef void (*phiq_quant_row_fn)(const float *x, void *y, int64_t n, const float *qw, int simd);
typedef void (*phiq_dequant_row_fn)(const void *x, float *y, int64_t n);

/* The block types whose quantizers take importance weights, by family file:
 * X(suffix, TYPE) for phiq_quantize_row_<suffix> (a phiq_quant_row_fn) and
 * phiq_dequantize_row_<suffix> (a phiq_dequant_row_fn) of PHIQ_GGML_TYPE_<TYPE>;
 * declared below and registered in quant.c's table from this one list. */
#define PHIQ_QUANT_TYPES(X) \
    X(q4_0, Q4_0) X(q4_1, Q4_1) X(q5_0, Q5_0) X(q5_1, Q5_1)           /* quant_q32.c */ \
    X(iq4_nl, IQ4_NL) X(iq4_xs, IQ4_XS)                              /* quant_iq4.c */ \
    X(q2_K, Q2_K) X(q3_K, Q3_K) X(q4_K, Q4_K) X(q5_K, Q5_K) X(q6_K, Q6_K) /* quant_k.c */
#define PHIQ_QUANT_DECLARE(t, T) \
    void phiq_quantize_row_##t(const float *x, void *y, int64_t n, const float *qw, int simd); \
    void phiq_dequantize_row_##t(const void *x, float *y, int64_t n);
PHIQ_QUANT_TYPES(PHIQ_QUANT_DECLARE)
#undef PHIQ_QUANT_DECLARE
/* the activation types' dequantizers (quant_q32.c, quant_k.c; their quantizers are in quant.h) */
void phiq_dequantize_row_q8_0(const void *x, float *y, int64_t n);
void phiq_dequantize_row_q8_1(const void *x, float *y, int64_t n);
void phiq_dequantize_row_q8_K(const void *x, float *y, int64_t n);

/* gptq.c: fn(arg, t, nt) for t < nt on nt threads (the caller is thread 0;
 * at most 16), the blocked forms' work sharing */
void phiq_gptq_par(int nt, void (*fn)(void *, int, int), void *arg);

/* gptq_avx512.c (x86-64, AVX-512F/DQ): gptq.c's Cholesky (a = L Lᵀ in place,
 * lower; pt holds 64 n doubles; returns -1 - j at a non-positive pivot j),
 * its row inversion of L (Lᵀ parked above the diagonal, the diagonal in
 * diag) and the sweep's row update row[k] -= e u[k], bit for bit. */
int phiq_gptq_chol_avx512(double *a, int64_t n, double *pt, int n_threads);
/* gptq.c: the reference forms (L parked for trinv as gptq.c's park_lt does) */
int phiq_gptq_chol_ref(double *a, int64_t n);
void phiq_gptq_park(double *a, double *diag, int64_t n);
void phiq_gptq_trinv_ref(double *a, const double *diag, int64_t n);
void phiq_gptq_trinv_avx512(double *a, const double *diag, int64_t n, int n_threads);
/* The single-precision forms (the default; the double ones are the fall back
 * when a pivot is not positive in float): a = L Lᵀ in place (lower; -1 - j
 * at a non-positive pivot j) and M = L⁻¹ in place of L (lower), each term a
 * fused multiply-add in ascending order of k; the AVX-512 forms take
 * phiq_gptq_f32_work(n) floats of 64-byte aligned work, the reference row i
 * of the inverse n floats of tmp. Entries above the diagonal: garbage. */
int phiq_gptq_chol_f32_ref(float *a, int64_t n);
void phiq_gptq_trinv_f32_ref(float *a, float *tmp, int64_t n);
int64_t phiq_gptq_f32_work(int64_t n);
int phiq_gptq_chol_f32_avx512(float *a, int64_t n, float *work, int n_threads);
void phiq_gptq_trinv_f32_avx512(float *a, int64_t n, float *work, int n_threads);
void phiq_gptq_axpy_avx512(float *row, const float *u, float e, int64_t n);
/* gptq_avx2.c (AVX2 + FMA): the same two, the same bits, the same work */
int phiq_gptq_chol_f32_avx2(float *a, int64_t n, float *work, int n_threads);
void phiq_gptq_trinv_f32_avx2(float *a, int64_t n, float *work, int n_threads);
/* The sweep's deferred update (lazy batch): for rows r < nr (w, ldw floats
 * apart), columns k0 <= k < k1, and c = 0, 1, ... nc - 1 in that order,
 * w[r][k] = fmaf(-et[c][r], u[c][k], w[r][k]) (et: PHIQ_GPTQ_TILE floats per
 * c; u: ldu floats per c): per entry the same operations, in the same
 * order, as nc calls of the row update, so the same bits. */
#define PHIQ_GPTQ_TILE 16
void phiq_gptq_block_update_ref(float *w, int64_t ldw, int nr, const float *et, const float *u, int64_t ldu, int64_t nc,
                                int64_t k0, int64_t k1);
void phiq_gptq_block_update_avx512(float *w, int64_t ldw, int nr, const float *et, const float *u, int64_t ldu,
                                   int64_t nc, int64_t k0, int64_t k1);
/* The row update row[k] = fmaf(-e, u[k], row[k]) for k < n, and the same
 * two in gptq_avx2.c (AVX2 + FMA), the same bits. */
void phiq_gptq_axpy_ref(float *row, const float *u, float e, int64_t n);
void phiq_gptq_axpy_avx2(float *row, const float *u, float e, int64_t n);
void phiq_gptq_block_update_avx2(float *w, int64_t ldw, int nr, const float *et, const float *u, int64_t ldu,
                                 int64_t nc, int64_t k0, int64_t k1);
typedef struct phiq_gptq_updates {
    void (*axpy)(float *row, const float *u, float e, int64_t n);
    void (*block)(float *w, int64_t ldw, int nr, const float *et, const float *u, int64_t ldu, int64_t nc, int64_t k0,
                  int64_t k1);
} phiq_gptq_updates;
phiq_gptq_updates phiq_gptq_updates_get(void);

#endif
