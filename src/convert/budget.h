/* budget.h — mixed precision at a size budget (`phiq convert --target-bpw B`,
 * `--target-size PRESET`): every quantizable tensor gets one of a list of
 * llama.cpp types so that the summed, measured KL-divergence increase is
 * smallest while the tensor data fits the budget.
 *
 * The method, in three steps:
 *  1. sensitivity: on a held-out slice of the calibration text (chunks of
 *     n_ctx tokens, BOS first, the second half of each chunk scored, as
 *     llama-perplexity scores), the source model's next-token distribution
 *     is the reference; for each tensor i and candidate type t, only tensor
 *     i is replaced by its quantization at t (made by the caller's quantizer:
 *     GPTQ with --calib) and the mean KL divergence from the reference is
 *     measured with the engine: d[i][t];
 *  2. allocation: an exact multiple-choice knapsack (dynamic programming over
 *     the byte budget in units of the file alignment, coarser when the budget
 *     has more than 2^19 units; each tensor's size is rounded up, so the
 *     result never exceeds the budget) minimising sum_i d[i][t_i] under
 *     sum_i bytes[i][t_i] <= budget — KL increases of different tensors are
 *     taken to add up, which holds for small perturbations;
 *  3. check: all chosen tensors at once, measured on the same slice (the
 *     figure is printed beside the predicted sum).
 */
#ifndef PHIQ_CONVERT_BUDGET_H
#define PHIQ_CONVERT_BUDGET_H

#include <stdint.h>

#include "phiq.h"

#define PHIQ_BUDGET_MAX_TYPES 16

typedef struct phiq_budget_item {
    char name[96];                          /* GGUF tensor name */
    int64_t ne0, nrows;
    int n_cand;                             /* candidate types whose block divides ne0 */
    int cand[PHIQ_BUDGET_MAX_TYPES];
    uint64_t raw[PHIQ_BUDGET_MAX_TYPES];    /* tensor bytes at each type */
    uint64_t bytes[PHIQ_BUDGET_MAX_TYPES];  /* the same, padded to the file alignment */
    double dkld[PHIQ_BUDGET_MAX_TYPES];     /* measured KLD increase at each type */
    int choice;                             /* index into cand after phiq_budget_solve */
} phiq_budget_item;

/* Default candidate list (types phiq quantizes byte-exactly as llama-quantize). */
#define PHIQ_BUDGET_DEFAULT_TYPES "q2_k,q3_k,iq4_xs,q4_0,q4_k,q5_k,q6_k,q8_0"

/* Comma-separated ggml type names (NULL: the default list) into types;
 * returns the count or a negative code with a one-line message. */
int phiq_budget_parse_types(const char *list, int *types, int max);
/* Fills it's candidates, sizes (padded to align) for the given types;
 * PHIQ_EINVAL when none fits the row length. */
int phiq_budget_candidates(phiq_budget_item *it, const int *types, int n_types, uint32_t align);
/* Smallest possible total of padded bytes of the items. */
uint64_t phiq_budget_min_bytes(const phiq_budget_item *it, int n);
/* The knapsack: sets every choice; *predicted = sum of the chosen dkld.
 * PHIQ_EINVAL (one line) when no mix fits budget bytes. */
int phiq_budget_solve(phiq_budget_item *it, int n, uint64_t budget, double *predicted);

/* Quantizes item's tensor to type into dst (nbytes = raw size). */
typedef int (*phiq_budget_quantize_fn)(void *ud, int item, int type, void *dst, uint64_t nbytes);

typedef struct phiq_budget_measure_opts {
    int n_ctx;      /* selection chunk length (default 256) */
    int n_threads;
    int quiet;
} phiq_budget_measure_opts;

/* The selection slice: the reference distribution of model m on ids (whole
 * chunks of o->n_ctx tokens) is computed once; m's weight matrices are then
 * swapped in and restored by the calls below (nobody else may use m
 * meanwhile). Memory: scored positions x vocabulary floats. */
typedef struct phiq_budget_sel phiq_budget_sel;
phiq_budget_sel *phiq_budget_sel_new(phiq_model *m, const int32_t *ids, int64_t n_ids, const phiq_budget_measure_opts *o);
void phiq_budget_sel_free(phiq_budget_sel *s);
/* Step 1: fills every item's dkld (progress bar "sensitivity"). */
int phiq_budget_measure(phiq_budget_sel *s, phiq_budget_item *it, int n, phiq_budget_quantize_fn q, void *ud);
/* Step 3: the KLD of all chosen types at once. */
int phiq_budget_check(phiq_budget_sel *s, const phiq_budget_item *it, int n, phiq_budget_quantize_fn q, void *ud,
                      double *kld);
int phiq_budget_sel_evals(const phiq_budget_sel *s);      /* passes over the slice so far */
int64_t phiq_budget_sel_scored(const phiq_budget_sel *s); /* positions scored per pass */
double phiq_budget_sel_seconds(const phiq_budget_sel *s);

#endif
