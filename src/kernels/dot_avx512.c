/* dot_avx512.c */
#include "kernels/dot.h"
void phiq_kernels_init_avx512(phiq_kernels *k) { phiq_kernels_init_scalar(k); k->isa = "avx512"; }
