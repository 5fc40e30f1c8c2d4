/* gptq_avx2.c — GPTQ's sweep updates (gptq.c) for CPUs with AVX2 and FMA
 * but not AVX-512: the reference loops compiled where fmaf is one
 * instruction, so that they vectorize (each entry is still one fused
 * multiply-add per term in order: the same bits as gptq.c's). */
#include <math.h>

#include "quant/quant_internal.h"

void phiq_gptq_axpy_avx2(float *row, const float *u, float e, int64_t n) {
    for (int64_t k = 0; k < n; k++) row[k] = fmaf(-e, u[k], row[k]);
}

void phiq_gptq_block_update_avx2(float *w, int64_t ldw, int nr, const float *et, const float *u, int64_t ldu,
                                 int64_t nc, int64_t k0, int64_t k1) {
    for (int r = 0; r < nr; r++)
        for (int64_t c = 0; c < nc; c++) {
            const float e = et[c * PHIQ_GPTQ_TILE + r];
            float *wr = w + r * ldw;
            const float *uc = u + c * ldu;
            for (int64_t k = k0; k < k1; k++) wr[k] = fmaf(-e, uc[k], wr[k]);
        }
}
