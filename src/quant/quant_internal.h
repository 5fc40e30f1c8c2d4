/* quant_internal.h — block layouts and float32 helpers shared by the
 * reference quantizers (quant.c: 32-element types, quant_k.c: 256-element
 * K-quants). Layouts are ggml's (ggml-common.h); all multi-byte fields are
 * little-endian and the structs have no padding (checked below), so a row
 * is an array of these blocks.
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

#define PHIQ_QK 32     /* elements per block of the 32-element types */
#define PHIQ_QK_K 256  /* elements per K-quant super-block */
#define PHIQ_GROUP_MAX_EPS 1e-15f

typedef uint16_t phiq_half;

typedef struct { phiq_half d; uint8_t qs[16]; } phiq_block_q4_0;                 /* 18 B */
typedef struct { phiq_half d, m; uint8_t qs[16]; } phiq_block_q4_1;              /* 20 B */
typedef struct { phiq_half d; uint8_t qh[4]; uint8_t qs[16]; } phiq_block_q5_0;  /* 22 B */
typedef struct { phiq_half d, m; uint8_t qh[4]; uint8_t qs[16]; } phiq_block_q5_1; /* 24 B */
typedef struct { phiq_half d; int8_t qs[32]; } phiq_block_q8_0;                  /* 34 B */
typedef struct { phiq_half d, s; int8_t qs[32]; } phiq_block_q8_1;               /* 36 B, s = d*sum(qs) */
typedef struct { phiq_half d; uint8_t qs[16]; } phiq_block_iq4_nl;               /* 18 B */
/* K-quants: 256 elements */
typedef struct { uint8_t scales[16]; uint8_t qs[64]; phiq_half d, dmin; } phiq_block_q2_K;      /* 84 B */
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; phiq_half d; } phiq_block_q3_K; /* 110 B */
typedef struct { phiq_half d, dmin; uint8_t scales[12]; uint8_t qs[128]; } phiq_block_q4_K;    /* 144 B */
typedef struct { phiq_half d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } phiq_block_q5_K; /* 176 B */
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; phiq_half d; } phiq_block_q6_K; /* 210 B */
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } phiq_block_q8_K;  /* 292 B, d is f32 */
typedef struct { phiq_half d; uint16_t scales_h; uint8_t scales_l[4]; uint8_t qs[128]; } phiq_block_iq4_xs; /* 136 B */

_Static_assert(sizeof(phiq_block_q4_0) == 18, "q4_0");
_Static_assert(sizeof(phiq_block_q4_1) == 20, "q4_1");
_Static_assert(sizeof(phiq_block_q5_0) == 22, "q5_0");
_Static_assert(sizeof(phiq_block_q5_1) == 24, "q5_1");
_Static_assert(sizeof(phiq_block_q8_0) == 34, "q8_0");
_Static_assert(sizeof(phiq_block_q8_1) == 36, "q8_1");
_Static_assert(sizeof(phiq_block_iq4_nl) == 18, "iq4_nl");
_Static_assert(sizeof(phiq_block_q2_K) == 84, "q2_K");
_Static_assert(sizeof(phiq_block_q3_K) == 110, "q3_K");
_Static_assert(sizeof(phiq_block_q4_K) == 144, "q4_K");

/* Q4_K/Q5_K: 6-bit scale and min of sub-block j from the 12-byte packing (ggml's get_scale_min_k4). */
static inline void get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

_Static_assert(sizeof(phiq_block_q5_K) == 176, "q5_K");
_Static_assert(sizeof(phiq_block_q6_K) == 210, "q6_K");
_Static_assert(sizeof(phiq_block_q8_K) == 292, "q8_K");
_Static_assert(sizeof(phiq_block_iq4_xs) == 136, "iq4_xs");

/* The 16 non-linear levels of IQ4_NL / IQ4_XS. */
extern const int8_t phiq_kvalues_iq4nl[16];

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

/* Whether the AVX2 paths may be used on this CPU. */
static inline int phiq_quant_simd(void) {
#if PHIQ_QUANT_HAVE_AVX2
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}
/* phiq_quantize with the SIMD paths on or off (tests check both agree). */
int64_t phiq_quantize_impl(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                           const float *imatrix, int simd);

/* Per-row quantizers (n_per_row elements; qw = NULL or n_per_row weights;
 * simd: use the AVX2 searches — callers pass phiq_quant_simd()). */
void phiq_quantize_row_q2_K(const float *x, void *y, int64_t n, const float *qw);
void phiq_quantize_row_q3_K(const float *x, void *y, int64_t n, const float *qw);
void phiq_quantize_row_q4_K(const float *x, void *y, int64_t n, const float *qw, int simd);
void phiq_quantize_row_q5_K(const float *x, void *y, int64_t n, const float *qw, int simd);
void phiq_quantize_row_q6_K(const float *x, void *y, int64_t n, const float *qw, int simd);
void phiq_dequantize_row_q2_K(const void *x, float *y, int64_t n);
void phiq_dequantize_row_q3_K(const void *x, float *y, int64_t n);
void phiq_dequantize_row_q4_K(const void *x, float *y, int64_t n);
void phiq_dequantize_row_q5_K(const void *x, float *y, int64_t n);
void phiq_dequantize_row_q6_K(const void *x, float *y, int64_t n);

#endif
