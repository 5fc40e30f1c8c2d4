/* gemm_bf16.h — BF16-weight gemm with float32 activation rows (AVX-512),
 * for prompt processing; see gemm_bf16_avx512.c. */
#ifndef PHIQ_KERNELS_GEMM_BF16_H
#define PHIQ_KERNELS_GEMM_BF16_H

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__) || defined(_M_X64)
/* out[j*ldo + r] = dot(BF16 row r of w, activation row j) for r < nrows,
 * j < ncols, in f32 (fused multiply-adds; each weight widened exactly).
 * The activation rows (as floats apart) are as phiq_bf16_act_prepare_avx512
 * writes them. rb counts bytes; any n >= 1. Needs AVX-512F/BW. */
void phiq_gemm_bf16_f32_avx512(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                               const float *act, size_t as);
/* dst (n floats) = src's values reordered within each whole group of 32 as
 * the kernel widens bf16 weights (elements 0-3, 8-11, 16-19, 24-27, then
 * 4-7, 12-15, 20-23, 28-31); a tail of n % 32 in order. Not rounded. */
void phiq_bf16_act_prepare_avx512(float *dst, const float *src, int64_t n);
#endif

#endif
