/* dot.h — private to src/kernels: the per-ISA table builders that
 * dispatch.c calls and the generic row loops they share. The block layouts
 * are formats/ggml_blocks.h's. */
#ifndef PHIQ_KERNELS_DOT_H
#define PHIQ_KERNELS_DOT_H

#include <stdint.h>

#include "formats/ggml_blocks.h"
#include "kernels/dispatch.h"

/* Scalar table (always present); quantize_act is shared by every table. */
void phiq_kernels_init_scalar(phiq_kernels *k);
int phiq_quantize_act_ref(int act_type, const float *x, void *dst, int64_t n);
/* Generic gemm: vec_dot per (row, column), weights tiled to stay in cache. */
void phiq_gemm_rows(phiq_vec_dot_fn dot, int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo,
                    const void *w, size_t row_bytes, const void *act, size_t act_stride);
/* gemm through a row kernel that dots one weight row with four activation
 * rows at once (res[j] = dot(x, y[j])); leftover columns use dot. */
typedef void (*phiq_dot_x4_fn)(int64_t n, const void *x, const void *const y[4], float res[4]);
void phiq_gemm_x4(phiq_dot_x4_fn x4, phiq_vec_dot_fn dot, int64_t n, int64_t nrows, int64_t ncols, float *out,
                  size_t ldo, const void *w, size_t row_bytes, const void *act, size_t act_stride);
/* Table entries built from a type's dot (and x4 row kernel):
 * mv_NAME (phiq_matvec_rows) runs dot_NAME over the rows in order, each a sequential stream the
 * hardware prefetcher follows, with the next row's first two lines requested
 * early; gm_NAME is the tiled generic gemm over dot_NAME (or, _FROM_X4,
 * over dot_NAME_x4 with dot_NAME for the leftover columns). */
static inline void phiq_matvec_rows(phiq_vec_dot_fn dot, int64_t n, int64_t nrows, float *out, const void *w,
                                    size_t row_bytes, const void *act) {
    const char *p = w;
    for (int64_t r = 0; r < nrows; r++, p += row_bytes) {
        if (r + 1 < nrows) {
            __builtin_prefetch(p + row_bytes, 0, 3);
            __builtin_prefetch(p + row_bytes + 64, 0, 3);
        }
        dot(n, out + r, p, act);
    }
}
#define PHIQ_MATVEC_FROM_DOT(name)                                                                 \
    static void mv_##name(int64_t n, int64_t nrows, float *out, const void *w, size_t rb,          \
                          const void *act) {                                                       \
        phiq_matvec_rows(dot_##name, n, nrows, out, w, rb, act);                                   \
    }
#define PHIQ_GEMM_FROM_DOT(name)                                                                   \
    static void gm_##name(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo,         \
                          const void *w, size_t rb, const void *act, size_t as) {                  \
        phiq_gemm_rows(dot_##name, n, nrows, ncols, out, ldo, w, rb, act, as);                     \
    }
#define PHIQ_GEMM_FROM_X4(name)                                                                    \
    static void gm_##name(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo,         \
                          const void *w, size_t rb, const void *act, size_t as) {                  \
        phiq_gemm_x4(dot_##name##_x4, dot_##name, n, nrows, ncols, out, ldo, w, rb, act, as);      \
    }
#define PHIQ_ROWS_FROM_DOT(name) PHIQ_MATVEC_FROM_DOT(name) PHIQ_GEMM_FROM_DOT(name)
#define PHIQ_ROWS_FROM_X4(name) PHIQ_MATVEC_FROM_DOT(name) PHIQ_GEMM_FROM_X4(name)
#define PHIQ_GEMM_ROW_TILE 16
#define PHIQ_GEMM_COL_TILE 64

/* ISA tables: copy the scalar table first, then override what they have
 * with PHIQ_KERNELS_SET (the dot, matvec and gemm of one weight type; the
 * activation type stays the scalar table's). */
#define PHIQ_KERNELS_SET(k, T, name)                                                               \
    ((k)->vec_dot[PHIQ_GGML_TYPE_##T] = dot_##name, (k)->matvec[PHIQ_GGML_TYPE_##T] = mv_##name,   \
     (k)->gemm[PHIQ_GGML_TYPE_##T] = gm_##name)
/* Each ISA file lists its types once, as an X-macro of (TYPE, name)
 * entries; these are the per-entry steps: PHIQ_KERNELS_SET_K registers one
 * type in the table named k in scope (`LIST(PHIQ_KERNELS_SET_K)` registers
 * the whole list), PHIQ_ROWS_DOT_K / PHIQ_ROWS_X4_K build its matvec and
 * gemm from its dot (or from its x4 row kernel). */
#define PHIQ_KERNELS_SET_K(T, name) PHIQ_KERNELS_SET(k, T, name);
#define PHIQ_ROWS_DOT_K(T, name) PHIQ_ROWS_FROM_DOT(name)
#define PHIQ_ROWS_X4_K(T, name) PHIQ_ROWS_FROM_X4(name)
void phiq_kernels_init_avx2(phiq_kernels *k);
void phiq_kernels_init_avx512(phiq_kernels *k);
void phiq_kernels_init_amx(phiq_kernels *k); /* AVX-512 table + AMX gemm */
void phiq_kernels_init_neon(phiq_kernels *k, int dotprod); /* AArch64 */

#endif
