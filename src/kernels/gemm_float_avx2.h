/* gemm_float_avx2.h — private to src/kernels: the AVX2 table's gemm of
 * the float weight types (gemm_float_avx2.c), with the table's gemm
 * signature plus the type's dot, which it falls back to (through the
 * generic tiled gemm) when it cannot allocate its activation tile. */
#ifndef PHIQ_KERNELS_GEMM_FLOAT_AVX2_H
#define PHIQ_KERNELS_GEMM_FLOAT_AVX2_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/dispatch.h"

void phiq_gemm_f32_avx2(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                        const void *act, size_t as, phiq_vec_dot_fn dot);
void phiq_gemm_f16_avx2(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                        const void *act, size_t as, phiq_vec_dot_fn dot);
void phiq_gemm_bf16_avx2(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                         const void *act, size_t as, phiq_vec_dot_fn dot);

#endif
