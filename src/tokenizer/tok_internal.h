/* tok_internal.h — the tokenizer's private structure and helpers shared by
 * tokenizer.c (build, special-token split, decode), spm.c and bpe.c. */
#ifndef PHIQ_TOKENIZER_TOK_INTERNAL_H
#define PHIQ_TOKENIZER_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/tokenizer.h"

/* Open-addressing string -> id table (keys point into the tokenizer's text). */
typedef struct phiq_strmap {
    uint32_t cap;      /* power of two */
    int32_t *slots;    /* id or -1 */
    const char *const *keys;
    const uint32_t *lens;
} phiq_strmap;

/* (left id, right id) -> merge rank and result id. */
typedef struct phiq_pairmap {
    uint32_t cap;
    uint64_t *keys;    /* (l<<32|r)+1, 0 = empty */
    int32_t *rank;
    int32_t *result;
} phiq_pairmap;

struct phiq_tokenizer {
    int model;
    int32_t n;
    char **text;         /* vocab text (GGUF form) */
    uint32_t *text_len;
    float *scores;       /* SPM */
    int32_t *types;
    uint8_t *attrs;
    char **piece;        /* printable bytes */
    uint32_t *piece_len;
    int max_piece;
    phiq_strmap map;     /* text -> id */
    phiq_pairmap merges; /* BPE with merges */
    bool tiktoken_rule;  /* BPE without merges: rank = id of the concatenation */
    bool ignore_merges;  /* BPE: a word that is a whole token is emitted as is (tiktoken) */
    int32_t *specials;   /* CONTROL/USER_DEFINED/UNKNOWN ids, longest text first */
    int32_t n_specials;
    int32_t bos, eos, unk, pad;
    bool add_bos, add_eos, add_space_prefix;
    int32_t byte_ids[256]; /* SPM <0xNN> ids (-1 if absent) */
    uint8_t *eog;        /* [n] */
    char *chat_template;
    pcre2_code *re;
    bool re_jit;
};

int32_t phiq_strmap_get(const phiq_strmap *m, const char *s, size_t len);
/* keys[i] (NULL allowed: never found) with lens[i]; later duplicates win. */
int phiq_strmap_build(phiq_strmap *m, char **keys, const uint32_t *lens, int32_t n);

/* A growable id list (count may pass cap: only the first cap are stored). */
typedef struct phiq_idbuf {
    int32_t *out;
    int cap;
    int n;
} phiq_idbuf;

static inline void phiq_idbuf_push(phiq_idbuf *b, int32_t id) {
    if (b->n < b->cap) b->out[b->n] = id;
    b->n++;
}

/* Encodes one raw-text fragment (no special tokens inside). */
int phiq_spm_encode(const phiq_tokenizer *t, const char *text, size_t len, bool prefix_space, phiq_idbuf *out);
int phiq_bpe_encode(const phiq_tokenizer *t, const char *text, size_t len, phiq_idbuf *out);

/* Length of the UTF-8 sequence starting with byte c, llama.cpp's rule
 * (continuation and invalid lead bytes count as 1). */
static inline size_t phiq_utf8_len_lead(unsigned char c) {
    static const unsigned char lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[c >> 4];
}

/* A min-heap of candidate merges: key ascending, then left position ascending. */
typedef struct phiq_merge_cand {
    double key;
    int32_t left, right;
    uint32_t size;
} phiq_merge_cand;

typedef struct phiq_merge_heap {
    phiq_merge_cand *v;
    size_t n, cap;
} phiq_merge_heap;

int phiq_heap_push(phiq_merge_heap *h, phiq_merge_cand c);
int phiq_heap_pop(phiq_merge_heap *h, phiq_merge_cand *c); /* 0 if empty */

/* Symbols of a word being merged (a doubly linked list over byte ranges). */
typedef struct phiq_sym {
    int32_t prev, next;
    uint32_t off, n;
} phiq_sym;

#endif
