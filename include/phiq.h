/* phiq.h — the one public header of libphiq.
 *
 * phiq reads Microsoft Phi checkpoints (Hugging Face directories or GGUF
 * files), quantizes them, and runs them on CPUs. A complete use:
 *
 *     #include <phiq.h>
 *
 *     phiq_model *m = phiq_model_open("phi-3.5-mini-Q4_K_M.gguf", NULL);
 *     if (!m) { fprintf(stderr, "%s\n", phiq_error()); return 1; }
 *
 *     phiq_context_params cp = phiq_context_default_params();
 *     cp.n_ctx = 4096;
 *     cp.n_threads = 2;
 *     phiq_context *ctx = phiq_context_new(m, &cp);
 *
 *     int32_t ids[512];
 *     int n = phiq_tokenize(m, "Hello", ids, 512, PHIQ_TOKENIZE_ADD_BOS);
 *     if (phiq_eval(ctx, ids, n) < 0) { ... phiq_error() ... }
 *     const float *logits = phiq_logits(ctx);      // n_vocab floats, last position
 *
 *     phiq_context_free(ctx);
 *     phiq_model_free(m);
 *
 * Conventions: functions return 0 (or a count) on success and a negative
 * PHIQ_E* code on failure, constructors return NULL; phiq_error() then gives
 * one readable line naming the file and the problem. There is no global
 * state: separate contexts may be used from separate threads, and a model is
 * read-only once opened so many contexts may share it.
 */
#ifndef PHIQ_H
#define PHIQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PHIQ_VERSION "0.1.0"

/* Error codes (always negative). */
enum {
    PHIQ_OK = 0,
    PHIQ_EIO = -1,       /* cannot open/read/write a file */
    PHIQ_EFORMAT = -2,   /* malformed or truncated file */
    PHIQ_EUNSUPPORTED = -3, /* well-formed but not something phiq handles */
    PHIQ_EINVAL = -4,    /* bad argument */
    PHIQ_ENOMEM = -5,
    PHIQ_ERANGE = -6,    /* context full, id out of range */
    PHIQ_EINTERRUPTED = -7,
};

/* The last error recorded on this thread, never NULL. */
const char *phiq_error(void);

/* ---- models --------------------------------------------------------------- */
typedef struct phiq_model phiq_model;

/* How a GGUF file's tensor data is held. Decoding streams every weight once
 * per token, so its speed is the memory's read speed; on x86 a private copy
 * on 2 MiB (transparent huge) pages reads faster than the file's page cache
 * through a map (on the development machine 28-32 GB/s against 16-22 GB/s,
 * bench/read-bandwidth.c), for a load-time copy and memory the page cache
 * cannot share. */
typedef enum phiq_weights_mode {
    PHIQ_WEIGHTS_AUTO = 0, /* copy when the data fits in half of the memory available
                              now, else map */
    PHIQ_WEIGHTS_MMAP,     /* map the file (llama.cpp's default): nothing copied, pages
                              shared with the page cache and read on first touch */
    PHIQ_WEIGHTS_COPY      /* always copy (as llama.cpp's --no-mmap) */
} phiq_weights_mode;

typedef struct phiq_model_params {
    const char *type;   /* for HF directories: weight type to convert to in memory
                           (NULL = f16); ignored for GGUF files */
    int n_threads;      /* threads used while loading (0 = physical cores) */
    phiq_weights_mode weights; /* GGUF files only */
} phiq_model_params;

/* path: a GGUF file or a Hugging Face checkpoint directory. */
phiq_model *phiq_model_open(const char *path, const phiq_model_params *params);
void phiq_model_free(phiq_model *m);
int phiq_model_n_vocab(const phiq_model *m);
int phiq_model_n_ctx_train(const phiq_model *m);
/* More facts about an opened model (for tools and tests). */
const char *phiq_model_arch(const phiq_model *m);  /* "phi3", "phi2", "phimoe" or "phi3small" */
int phiq_model_n_embd(const phiq_model *m);
int phiq_model_n_layer(const phiq_model *m);
int phiq_model_n_ctx_orig(const phiq_model *m);     /* LongRoPE original context */
int phiq_model_sliding_window(const phiq_model *m); /* 0 = none */
/* How the weights ended up held: PHIQ_WEIGHTS_COPY (GGUF data copied to
 * memory) or PHIQ_WEIGHTS_MMAP (read through the file map; also HF
 * directories, whose converted tensors live in ordinary memory). */
int phiq_model_weights_mode(const phiq_model *m);

/* ---- contexts (KV cache + scratch) ------------------------------------------ */
typedef struct phiq_context phiq_context;

typedef enum phiq_kv_type {
    PHIQ_KV_TYPE_F16 = 0,
    PHIQ_KV_TYPE_F32 = 1,
    PHIQ_KV_TYPE_Q8_0 = 2,
} phiq_kv_type;

/* How LongRoPE picks its short or long factors. */
typedef enum phiq_rope_mode {
    /* Hugging Face: long factors once the sequence exceeds the original
     * context; when an eval crosses that length the cache is recomputed
     * (re-prefilled) with the long factors, as transformers' generate does. */
    PHIQ_ROPE_MODE_HF = 0,
    /* llama.cpp: decided once per context, long iff n_ctx (rounded up to a
     * multiple of 256) exceeds the original context. */
    PHIQ_ROPE_MODE_LLAMACPP = 1,
} phiq_rope_mode;

typedef struct phiq_context_params {
    int n_ctx;          /* 0 = min(model's training context, 4096) */
    int n_threads;      /* 0 = physical cores */
    phiq_kv_type kv_type;
    int all_logits;     /* keep logits of every position of the last batch */
    phiq_rope_mode rope_mode;
    int sliding_window; /* 0 = the model's, -1 = none (full causal, as llama.cpp), >0 = this window */
    int n_batch;        /* tokens per forward chunk (0 = 512); bounds scratch memory */
    int llamacpp_numerics; /* round matmul inputs as llama.cpp's CPU backend does (to the
                              weights' dot type: f16, bf16, q8_0, q8_1, q8_K), for parity
                              tests; slower and slightly less accurate */
    int phimoe_llamacpp; /* PhiMoE only: llama.cpp's graph (RMSNorm + bias, softmax top-k
                            renormalized routing) instead of Hugging Face's (LayerNorm,
                            SparseMixer top-2) */
    int logits_from;    /* with all_logits: positions of a batch before this one get no
                           logits (the output layer skips them; perplexity scores only a
                           chunk's second half); 0 = every position */
} phiq_context_params;

phiq_context_params phiq_context_default_params(void);
phiq_context *phiq_context_new(const phiq_model *m, const phiq_context_params *p);
void phiq_context_free(phiq_context *ctx);

/* Appends n tokens at the current position and evaluates them. */
int phiq_eval(phiq_context *ctx, const int32_t *ids, int n);
/* Logits of the last evaluated position (n_vocab floats). */
const float *phiq_logits(const phiq_context *ctx);
/* Logits of position i of the last batch (needs all_logits; i >= logits_from). */
const float *phiq_logits_at(const phiq_context *ctx, int i);
int phiq_context_pos(const phiq_context *ctx);
/* Drops the cache from position pos on (0 resets). */
int phiq_context_truncate(phiq_context *ctx, int pos);

/* ---- sequences: several conversations in shared forward passes -------------
 * A sequence is one conversation's KV cache. phiq_seq_eval_batch evaluates
 * the new tokens of several sequences together (prefill chunks and decode
 * steps mixed), reading the weights once per pass instead of once per
 * sequence: what a server batches. The context lends its scratch and
 * threads and fixes n_ctx and the cache type; it must outlive its
 * sequences, and one thread at a time may evaluate through it. */
typedef struct phiq_seq phiq_seq;

/* A new empty sequence (cache pages are only touched as positions fill). */
phiq_seq *phiq_seq_new(phiq_context *ctx);
void phiq_seq_free(phiq_seq *s);
int phiq_seq_pos(const phiq_seq *s);
/* Drops the cache from position pos on (0 resets). */
int phiq_seq_truncate(phiq_seq *s, int pos);
/* Logits of the sequence's last evaluated token (n_vocab floats), or NULL. */
const float *phiq_seq_logits(const phiq_seq *s);

typedef struct phiq_seq_item {
    phiq_seq *seq;
    const int32_t *ids; /* appended at the sequence's position */
    int n;
} phiq_seq_item;
/* Evaluates every item (each sequence at most once) in passes of up to
 * n_batch tokens; afterwards phiq_seq_logits(items[i].seq) holds the logits
 * of its last token. The logits equal those of phiq_eval on a context of the
 * same parameters holding the same tokens. On error no sequence's position
 * moves (its logits are then undefined). */
int phiq_seq_eval_batch(phiq_context *ctx, const phiq_seq_item *items, int n_items);

/* ---- tokens ------------------------------------------------------------------ */
enum {
    PHIQ_TOKENIZE_ADD_BOS = 1,      /* add BOS if the model's tokenizer does */
    PHIQ_TOKENIZE_NO_SPECIAL = 2,   /* treat special-token text as plain text */
};
/* Returns the number of ids (may exceed cap: then call again with more room). */
int phiq_tokenize(const phiq_model *m, const char *text, int32_t *ids, int cap, int flags);
/* The bytes of one token as it should be printed (byte tokens give one byte). */
int phiq_token_to_piece(const phiq_model *m, int32_t id, char *buf, int cap);

/* ---- model information ------------------------------------------------------ */
/* The BOS id the model's tokenizer prepends, or -1 when it adds none. */
int phiq_model_bos(const phiq_model *m);

#ifdef __cplusplus
}
#endif
#endif
