/* dot.h — private to src/kernels: ggml block layouts (ggml-common.h) and the
 * per-ISA table builders that dispatch.c calls. All multi-byte fields are
 * little-endian; fp16 fields are IEEE halves stored as uint16_t. */
#ifndef PHIQ_KERNELS_DOT_H
#define PHIQ_KERNELS_DOT_H

#include <stdint.h>

#include "kernels/dispatch.h"

#define PHIQ_KQK 32   /* elements per block of the legacy types */
#define PHIQ_KQK_K 256 /* elements per super-block of the K-quants */

typedef struct { uint16_t d; uint8_t qs[16]; } phiq_kblk_q4_0;             /* 18 B: q in low nibble (elem j) / high (j+16) */
typedef struct { uint16_t d, m; uint8_t qs[16]; } phiq_kblk_q4_1;          /* 20 B */
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } phiq_kblk_q5_0; /* 22 B: qh bit i = bit 4 of elem i */
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } phiq_kblk_q5_1; /* 24 B */
typedef struct { uint16_t d; int8_t qs[32]; } phiq_kblk_q8_0;              /* 34 B */
typedef struct { uint16_t d, s; int8_t qs[32]; } phiq_kblk_q8_1;           /* 36 B: s = fp16(d * sum(qs)) */
typedef struct { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; } phiq_kblk_q2_K; /* 84 B */
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; } phiq_kblk_q3_K; /* 110 B */
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } phiq_kblk_q4_K; /* 144 B */
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } phiq_kblk_q5_K; /* 176 B */
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } phiq_kblk_q6_K; /* 210 B */
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } phiq_kblk_q8_K; /* 292 B: bsums[k] = sum qs[16k..16k+15] */
typedef struct { uint16_t d; uint8_t qs[16]; } phiq_kblk_iq4_nl;           /* 18 B: indices into phiq_kern_kvalues_iq4nl */
typedef struct { uint16_t d; uint16_t scales_h; uint8_t scales_l[4]; uint8_t qs[128]; } phiq_kblk_iq4_xs; /* 136 B */

_Static_assert(sizeof(phiq_kblk_q4_0) == 18, "q4_0");
_Static_assert(sizeof(phiq_kblk_q4_1) == 20, "q4_1");
_Static_assert(sizeof(phiq_kblk_q5_0) == 22, "q5_0");
_Static_assert(sizeof(phiq_kblk_q5_1) == 24, "q5_1");
_Static_assert(sizeof(phiq_kblk_q8_0) == 34, "q8_0");
_Static_assert(sizeof(phiq_kblk_q8_1) == 36, "q8_1");
_Static_assert(sizeof(phiq_kblk_q2_K) == 84, "q2_K");
_Static_assert(sizeof(phiq_kblk_q3_K) == 110, "q3_K");
_Static_assert(sizeof(phiq_kblk_q4_K) == 144, "q4_K");
_Static_assert(sizeof(phiq_kblk_q5_K) == 176, "q5_K");
_Static_assert(sizeof(phiq_kblk_q6_K) == 210, "q6_K");
_Static_assert(sizeof(phiq_kblk_q8_K) == 292, "q8_K");
_Static_assert(sizeof(phiq_kblk_iq4_nl) == 18, "iq4_nl");
_Static_assert(sizeof(phiq_kblk_iq4_xs) == 136, "iq4_xs");

extern const int8_t phiq_kern_kvalues_iq4nl[16];

/* Decodes the eight 6-bit scales and mins of a Q4_K/Q5_K block. */
static inline void phiq_kq_scale_min(const uint8_t q[12], uint8_t sc[8], uint8_t m[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = q[j] & 63;
        m[j] = q[j + 4] & 63;
        sc[j + 4] = (q[j + 8] & 0xF) | ((q[j] >> 6) << 4);
        m[j + 4] = (q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4);
    }
}

/* Scalar table (always present); quantize_act is shared by every table. */
void phiq_kernels_init_scalar(phiq_kernels *k);
int phiq_quantize_act_ref(int act_type, const float *x, void *dst, int64_t n);
/* Generic matvec: a vec_dot per row, used where no multi-row kernel exists. */
void phiq_matvec_rows(phiq_vec_dot_fn dot, int64_t n, int64_t nrows, float *out, const void *w,
                      size_t row_bytes, const void *act);

/* Generic gemm: vec_dot per (row, column), weights tiled to stay in cache. */
void phiq_gemm_rows(phiq_vec_dot_fn dot, int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo,
                    const void *w, size_t row_bytes, const void *act, size_t act_stride);
/* gemm through a row kernel that dots one weight row with four activation
 * rows at once (res[j] = dot(x, y[j])); leftover columns use dot. */
typedef void (*phiq_dot_x4_fn)(int64_t n, const void *x, const void *const y[4], float res[4]);
void phiq_gemm_x4(phiq_dot_x4_fn x4, phiq_vec_dot_fn dot, int64_t n, int64_t nrows, int64_t ncols, float *out,
                  size_t ldo, const void *w, size_t row_bytes, const void *act, size_t act_stride);
/* mv_NAME / gm_NAME (table matvec and gemm) from dot_NAME through the two
 * generic loops above, for types with no multi-row kernel. */
#define PHIQ_ROWS_FROM_DOT(name)                                                                   \
    static void mv_##name(int64_t n, int64_t nrows, float *out, const void *w, size_t rb,          \
                          const void *act) {                                                       \
        phiq_matvec_rows(dot_##name, n, nrows, out, w, rb, act);                                   \
    }                                                                                              \
    static void gm_##name(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo,         \
                          const void *w, size_t rb, const void *act, size_t as) {                  \
        phiq_gemm_rows(dot_##name, n, nrows, ncols, out, ldo, w, rb, act, as);                     \
    }
#define PHIQ_GEMM_ROW_TILE 16
#define PHIQ_GEMM_COL_TILE 64

/* ISA tables: copy the scalar table first, then override what they have. */
void phiq_kernels_init_avx2(phiq_kernels *k);
void phiq_kernels_init_avx512(phiq_kernels *k);
void phiq_kernels_init_amx(phiq_kernels *k); /* AVX-512 table + AMX gemm */
void phiq_kernels_init_neon(phiq_kernels *k, int dotprod); /* AArch64 */

#endif
