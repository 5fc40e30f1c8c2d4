/* gram.h — H += XᵀX for calibration's GPTQ Hessians (src/convert/calib.c).
 *
 * The inputs are first packed into groups of 16 features, token-major
 * within a group: p[g][t][k] = x[t][16g + k] (zero past n), so that every
 * kernel streams contiguous memory. Each entry's sum is defined as one
 * fused multiply-add per token, in token order, from 0:
 *     s = 0; for t < T: s = fmaf(x[t][i], x[t][j], s);  h[i][j] += s
 * which is what a lane of a rank-1 update with FMA computes, so the scalar
 * reference, AVX2 and AVX-512 forms give the same bits and a calibrated
 * file does not depend on the CPU (test_gptq_exact). The kernel table
 * (dispatch.h gram_upper) holds the best form for the running CPU. */
#ifndef PHIQ_KERNELS_GRAM_H
#define PHIQ_KERNELS_GRAM_H

#include <stddef.h>
#include <stdint.h>

#define PHIQ_GRAM_GROUP 16 /* features per packed group */

/* Floats phiq_gram_pack writes for n features and T tokens. */
size_t phiq_gram_packed_floats(int64_t n, int64_t T);
/* p[g][t][k] = x[t * ldx + 16g + k] for 16g + k < n, else 0. */
void phiq_gram_pack(float *p, const float *x, int64_t ldx, int64_t n, int64_t T);

/* h[i][j] += Σ_t x[t][i] x[t][j] (the sum above) for columns j in [j0, j1)
 * and rows i <= j, j < n; h is n x n row-major and nothing else is written.
 * j0 must be a multiple of PHIQ_GRAM_GROUP. Different column ranges may
 * run on different threads at once. */
typedef void (*phiq_gram_fn)(float *h, int64_t n, const float *p, int64_t T, int64_t j0, int64_t j1);
void phiq_gram_upper_ref(float *h, int64_t n, const float *p, int64_t T, int64_t j0, int64_t j1);
#if defined(__x86_64__) || defined(_M_X64)
void phiq_gram_upper_avx2(float *h, int64_t n, const float *p, int64_t T, int64_t j0, int64_t j1);
void phiq_gram_upper_avx512(float *h, int64_t n, const float *p, int64_t T, int64_t j0, int64_t j1);
#endif

#endif
