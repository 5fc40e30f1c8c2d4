/* dot_avx2.c — AVX2 kernels. */
#include "kernels/dot.h"
void phiq_kernels_init_avx2(phiq_kernels *k) { phiq_kernels_init_scalar(k); k->isa = "avx2"; }
