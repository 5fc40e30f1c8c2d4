/* sample.h — next-token sampling with llama.cpp's default chain order:
 * penalties (repeat/frequency/presence over the last N tokens) -> top-k ->
 * top-p -> min-p -> temperature -> draw from the softmax with a seeded RNG.
 * temp <= 0 means greedy (argmax after penalties). The same seed and inputs
 * give the same tokens on every machine (the RNG is ours, not libc's). */
#ifndef PHIQ_TOKENIZER_SAMPLE_H
#define PHIQ_TOKENIZER_SAMPLE_H

#include <stdint.h>

typedef struct phiq_sampler_params {
    float temp;             /* <= 0: greedy */
    int32_t top_k;          /* <= 0: off */
    float top_p;            /* >= 1: off */
    float min_p;            /* <= 0: off */
    float repeat_penalty;   /* 1: off (llama.cpp: logit/p if > 0, logit*p if <= 0) */
    float freq_penalty;     /* subtract count*freq */
    float presence_penalty; /* subtract presence if seen */
    int32_t penalty_last_n; /* window of recent tokens (0: penalties off) */
    uint64_t seed;
} phiq_sampler_params;

/* llama.cpp's defaults: temp 0.8, top-k 40, top-p 0.95, min-p 0.05,
 * penalties off (repeat 1.0) with a 64-token window, seed 0. */
phiq_sampler_params phiq_sampler_default_params(void);

typedef struct phiq_sampler phiq_sampler;

phiq_sampler *phiq_sampler_new(const phiq_sampler_params *p);
void phiq_sampler_free(phiq_sampler *s);
/* Records a token (prompt or generated) for the penalty window. */
void phiq_sampler_accept(phiq_sampler *s, int32_t id);
/* Forgets the history and re-seeds the RNG. */
void phiq_sampler_reset(phiq_sampler *s);
/* Picks a token from the first n logits (pass the tokenizer's vocabulary
 * size, not the padded embedding rows, so unused rows are never drawn).
 * Does not modify logits; does not call accept. Returns the id, or a
 * negative code (n <= 0, all logits NaN). */
int32_t phiq_sampler_sample(phiq_sampler *s, const float *logits, int32_t n);

/* The generator behind the draws (xoshiro256**, seeded by splitmix64):
 * uniform in [0, 1). Exposed for tests. */
double phiq_sampler_uniform(phiq_sampler *s);

#endif
