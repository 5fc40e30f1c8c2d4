/* rows8_avx2.h — private to src/kernels: the eight-rows-at-a-time AVX2
 * mat-vec of Q4_0 and Q8_0 and gemm of Q4_0, Q8_0, Q4_K and Q6_K (rows8_avx2.c),
 * with the table's signatures plus
 * the one-row dot that takes rows beyond the last group of eight (and
 * everything when the prepared activations would not fit). */
#ifndef PHIQ_KERNELS_ROWS8_AVX2_H
#define PHIQ_KERNELS_ROWS8_AVX2_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/dispatch.h"

void phiq_matvec_q4_0_avx2(int64_t n, int64_t nrows, float *out, const void *w, size_t rb, const void *act,
                           phiq_vec_dot_fn dot);
void phiq_matvec_q8_0_avx2(int64_t n, int64_t nrows, float *out, const void *w, size_t rb, const void *act,
                           phiq_vec_dot_fn dot);
void phiq_gemm_q4_0_avx2(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                         const void *act, size_t as, phiq_vec_dot_fn dot);
void phiq_gemm_q8_0_avx2(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                         const void *act, size_t as, phiq_vec_dot_fn dot);
void phiq_gemm_q4_K_avx2(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                         const void *act, size_t as, phiq_vec_dot_fn dot);
void phiq_gemm_q6_K_avx2(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                         const void *act, size_t as, phiq_vec_dot_fn dot);

#endif
