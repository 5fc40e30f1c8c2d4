/* gemm_f16.h — F16-weight gemm with float32 activation rows (AVX-512), for
 * prompt processing; see gemm_f16_avx512.c. */
#ifndef PHIQ_KERNELS_GEMM_F16_H
#define PHIQ_KERNELS_GEMM_F16_H

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__) || defined(_M_X64)
/* out[j*ldo + r] = dot(F16 row r of w, act + j*as) for r < nrows, j < ncols;
 * n a multiple of 16, as in floats. Needs AVX-512F. */
void phiq_gemm_f16_f32_avx512(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                              const float *act, size_t as);
/* The same on AMX-BF16 tiles with exact products (gemm_f16_amx.c); n a
 * multiple of 32. Returns -1 (nothing written) when it cannot run: no full
 * 16-row tile, bad n, or no memory for its scratch. Needs AMX-BF16 usable. */
int phiq_gemm_f16_amx(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                      const float *act, size_t as);
/* The same in two stages, so that a matmul split over threads packs its
 * activations once. phiq_gemm_f16_amx_pack rounds act (ncols rows of n
 * floats, as apart) to f16 and writes packed column tiles [ct0, ct1) of
 * phiq_gemm_f16_amx_packed_tiles(ncols) (16 columns each, zero past ncols)
 * into packed (64-byte aligned, phiq_gemm_f16_amx_packed_size bytes);
 * disjoint tile ranges may be packed by different threads at once.
 * phiq_gemm_f16_amx_packed then runs any rows against them with scratch
 * (64-byte aligned, phiq_gemm_f16_amx_scratch_size bytes, one per
 * concurrent caller; n, ncols no larger than it was sized for). act/as
 * (f16-rounded rows) are read only for a tail of nrows % 16 rows. Same
 * return convention as phiq_gemm_f16_amx. */
int64_t phiq_gemm_f16_amx_packed_tiles(int64_t ncols);
size_t phiq_gemm_f16_amx_packed_size(int64_t n, int64_t ncols);
size_t phiq_gemm_f16_amx_scratch_size(int64_t n, int64_t ncols);
void phiq_gemm_f16_amx_pack(int64_t n, int64_t ncols, int64_t ct0, int64_t ct1, const float *act, size_t as,
                            void *packed);
int phiq_gemm_f16_amx_packed(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w, size_t rb,
                             const void *packed, void *scratch, const float *act, size_t as);
/* dst[i] = f32(f16(src[i])), round to nearest even. Needs AVX-512F. */
void phiq_round_f16_f32_avx512(float *dst, const float *src, int64_t n);
#endif

#endif
