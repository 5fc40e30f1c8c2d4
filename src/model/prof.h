/* prof.h — the decode profile's record (phiq bench --profile): filled by
 * matmul.c and forward.c when a context's prof is set, read by
 * eval/bench.c. */
#ifndef PHIQ_MODEL_PROF_H
#define PHIQ_MODEL_PROF_H

#include <stdint.h>

/* Decode profile (phiq bench --profile; NULL in normal use): where a
 * token's time goes. Matmuls are keyed by shape and type (a Phi layer's
 * four matrices and the output have different shapes). Times in seconds,
 * summed over the profiled tokens. */
enum { PHIQ_PROF_SHAPES = 24 };
typedef struct phiq_prof_mm {
    int64_t n_in, n_out;
    int type;
    long calls;
    double bytes;   /* weight bytes read */
    double wall;    /* from the call to the pool's return, activation conversion included */
    double conv;    /* the activation conversion (on the calling thread) */
    double busy;    /* kernel time summed over the threads */
} phiq_prof_mm;
typedef struct phiq_prof {
    phiq_prof_mm mm[PHIQ_PROF_SHAPES];
    int n_mm;
    double attn;    /* phiq_attention: all of its pool jobs */
    double conv;    /* every matmul's activation conversion (matmul.c's phiq_conv) */
} phiq_prof;

#endif
