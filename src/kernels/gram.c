/* gram.c — packing for the Gram kernels and their portable reference
 * (gram.h): the loops every vector form reproduces bit for bit. */
#include "kernels/gram.h"

#include <math.h>
#include <string.h>

#define G PHIQ_GRAM_GROUP

size_t phiq_gram_packed_floats(int64_t n, int64_t T) { return (size_t)((n + G - 1) / G) * (size_t)T * G; }

void phiq_gram_pack(float *p, const float *x, int64_t ldx, int64_t n, int64_t T) {
    for (int64_t g = 0; g * G < n; g++) {
        const int64_t w = n - g * G < G ? n - g * G : G;
        float *pg = p + g * T * G;
        for (int64_t t = 0; t < T; t++) {
            memcpy(pg + t * G, x + t * ldx + g * G, sizeof(float) * (size_t)w);
            for (int64_t k = w; k < G; k++) pg[t * G + k] = 0;
        }
    }
}

/* Row i against one group of 16 columns: the k loop has no dependence
 * between lanes, so compilers with FMA (AArch64) vectorize it. */
void phiq_gram_upper_ref(float *h, int64_t n, const float *p, int64_t T, int64_t j0, int64_t j1) {
    if (j1 > n) j1 = n;
    for (int64_t g = j0 / G; g * G < j1; g++) {
        const float *pj = p + g * T * G;
        const int64_t jlo = g * G > j0 ? g * G : j0, jhi = (g + 1) * G < j1 ? (g + 1) * G : j1;
        for (int64_t i = 0; i < jhi; i++) {
            const float *pi = p + (i / G) * T * G + i % G;
            float acc[G] = {0};
            for (int64_t t = 0; t < T; t++) {
                const float a = pi[t * G];
                for (int k = 0; k < G; k++) acc[k] = fmaf(a, pj[t * G + k], acc[k]);
            }
            for (int64_t j = jlo > i ? jlo : i; j < jhi; j++) h[i * n + j] += acc[j - g * G];
        }
    }
}
