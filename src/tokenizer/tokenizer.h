/* tokenizer.h — text <-> token ids for the Phi family: SentencePiece-style
 * BPE with byte fallback (Phi-3/3.5, llama.cpp model "llama") and byte-level
 * BPE with regex pre-tokenization (GPT-2/CodeGen for phi-1.5/phi-2, cl100k
 * for phi-4, o200k for Phi-4-mini; llama.cpp model "gpt2").
 *
 * Every loader first builds a neutral in-memory description (phiq_tok_vocab,
 * the same information llama.cpp keeps in the tokenizer.ggml.* GGUF keys) and
 * then phiq_tokenizer_from_vocab() builds the tokenizer from it, so a
 * tokenizer.json, a .tiktoken file and a GGUF with the same vocabulary give
 * identical ids. The converter writes a phiq_tok_vocab into GGUF keys.
 *
 * Encoding follows llama.cpp (llama-vocab.cpp) exactly where HF and llama.cpp
 * agree and llama.cpp where they do not: special/user-defined tokens are
 * split out first (longest first, with lstrip/rstrip), SPM text pieces get a
 * leading space when they start the text or follow a special token, SPM
 * merges by the score of the merged piece, BPE merges by rank.
 */
#ifndef PHIQ_TOKENIZER_TOKENIZER_H
#define PHIQ_TOKENIZER_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Token types, values as llama.cpp's llama_token_type / GGUF token_type. */
enum phiq_tok_type {
    PHIQ_TOK_TYPE_UNDEFINED = 0,
    PHIQ_TOK_TYPE_NORMAL = 1,
    PHIQ_TOK_TYPE_UNKNOWN = 2,
    PHIQ_TOK_TYPE_CONTROL = 3,
    PHIQ_TOK_TYPE_USER_DEFINED = 4,
    PHIQ_TOK_TYPE_UNUSED = 5,
    PHIQ_TOK_TYPE_BYTE = 6,
};

enum phiq_tok_model {
    PHIQ_TOK_MODEL_SPM = 1, /* GGUF tokenizer.ggml.model "llama" */
    PHIQ_TOK_MODEL_BPE = 2, /* GGUF tokenizer.ggml.model "gpt2" */
};

/* Per-token attribute flags beyond the type (from HF added_tokens). */
enum {
    PHIQ_TOK_ATTR_LSTRIP = 1, /* eat whitespace before the token */
    PHIQ_TOK_ATTR_RSTRIP = 2, /* eat whitespace after the token */
};

/* Neutral description of a vocabulary, as stored in GGUF.
 * tokens[i]: the GGUF text — for SPM '▁' stands for space and byte tokens
 *   are "<0xNN>"; for BPE, NORMAL tokens are in GPT-2's byte-to-unicode
 *   encoding (Ġ = space) and CONTROL/USER_DEFINED tokens are raw text.
 * scores: SPM merge priority of the piece (higher merges first); NULL for BPE.
 * merges: BPE only, "left right" in the same encoding, rank = index; NULL
 *   with n_merges 0 means "tiktoken rule": any pair whose concatenation is a
 *   token merges, with the rank of that token (= its id). */
typedef struct phiq_tok_vocab {
    int model;          /* phiq_tok_model */
    int32_t n_tokens;
    char **tokens;      /* [n_tokens], NUL-terminated UTF-8 */
    float *scores;      /* [n_tokens] or NULL */
    int32_t *types;     /* [n_tokens] phiq_tok_type */
    uint8_t *attrs;     /* [n_tokens] PHIQ_TOK_ATTR_* or NULL */
    int32_t n_merges;
    char **merges;      /* [n_merges] */
    char *pre;          /* llama.cpp pre-tokenizer name: "default", "gpt-2", "phi-2", "dbrx", "gpt-4o", ... */
    char *pre_regex;    /* the pre-tokenization regex (BPE), NULL to derive from pre */
    int32_t bos_id, eos_id, unk_id, pad_id; /* -1 if none */
    bool add_bos, add_eos, add_space_prefix;
    int32_t n_eog;      /* extra end-of-generation ids (generation_config eos list) */
    int32_t *eog_ids;
    char *chat_template; /* tokenizer_config chat_template, or NULL */
    bool omit_add_bos, omit_add_eos; /* GGUF: leave add_bos/add_eos_token out (the source does not set them) */
} phiq_tok_vocab;

void phiq_tok_vocab_free(phiq_tok_vocab *v); /* frees members and v itself */
/* Appends "[PAD{i}]" tokens (score -10000, UNUSED, as llama.cpp's converter)
 * until n_tokens == n (the model's embedding rows). No-op if already >= n. */
int phiq_tok_vocab_pad(phiq_tok_vocab *v, int32_t n);
/* Gives every id without a token (tokens[i] == NULL) the same "[PAD{i}]"
 * UNUSED token. */
int phiq_tok_vocab_fill_holes(phiq_tok_vocab *v);

/* tokenizer.json (+ optional tokenizer_config.json for add_bos/eos/bos/eos
 * names and the chat template). SPM-style byte-fallback BPE (Phi-3) becomes
 * model SPM with scores reconstructed as llama.cpp's converter writes them
 * from tokenizer.model; byte-level BPE becomes model BPE with merges. */
phiq_tok_vocab *phiq_tok_vocab_from_hf_json(const char *tokenizer_json_path, const char *tokenizer_config_json_path);
/* What a checkpoint's config.json adds when converting it (as llama.cpp's
 * convert_hf_to_gguf.py does). */
typedef struct phiq_tok_hf_model {
    int64_t n_vocab;                /* embedding rows: every id must be below; the list is padded to it */
    int32_t bos_id, eos_id, pad_id; /* config.json's ids (-1 none), used when tokenizer_config names no token */
    bool phi2;                      /* PhiForCausalLM: GPT-2's regex is pre "phi-2" (else "gpt-2"), add_bos false */
} phiq_tok_hf_model;
/* The same vocabulary as phiq_tok_vocab_from_hf_json, for the GGUF of model
 * m: n_vocab rows ([PAD{i}] UNUSED, score -10000, beyond the tokenizer),
 * special ids falling back to config.json's, add_bos/add_eos_token written
 * only when tokenizer_config.json sets them, BPE merges required. */
phiq_tok_vocab *phiq_tok_vocab_from_hf_model(const char *tokenizer_json_path, const char *tokenizer_config_json_path,
                                             const phiq_tok_hf_model *m);
/* .tiktoken ranks file ("base64 rank" lines). pretok: "o200k", "cl100k",
 * "gpt2" or NULL (then <name>.meta.json beside the file gives pat_str and
 * special tokens; else the name is guessed from the file name). Special
 * tokens: specials[i] at special_ids[i] (also merged with meta.json's). */
struct phiq_gguf;
phiq_tok_vocab *phiq_tok_vocab_from_tiktoken(const char *ranks_path, const char *pretok, const char *const *specials,
                                             const int32_t *special_ids, int n_specials);
phiq_tok_vocab *phiq_tok_vocab_from_gguf(const struct phiq_gguf *g);
/* Phi-3-small's Phi3SmallTokenizer (phi3small_tok.c, load_hf.c): tiktoken
 * cl100k_base ranks plus the 96 special tokens at ids 100256..100351 (all of
 * them matched in text, as its tokenize(allowed_special="all") does), bos =
 * eos = <|endoftext|> 100257, never added; n_vocab rows. */
#define PHIQ_PHI3SMALL_FIRST_SPECIAL 100256
#define PHIQ_PHI3SMALL_N_VOCAB 100352
/* Name of special id (buf, cap >= 32) or NULL when id is not one of them;
 * *dummy (may be NULL) tells whether the model masks it (dummy_token_indices:
 * the <|dummy_id_N|>, the fim tokens and <|endofprompt|>). */
const char *phiq_phi3small_special(int32_t id, char *buf, size_t cap, bool *dummy);
/* The chat template of Phi-3-small-*-instruct's tokenizer_config.json. */
const char *phiq_phi3small_chat_template(void);
/* ranks_path: the checkpoint's cl100k_base.tiktoken; tokenizer_config (may be
 * NULL) may override the chat template. */
phiq_tok_vocab *phiq_tok_vocab_phi3small(const char *ranks_path, const char *tokenizer_config_path);
/* Writes the tokenizer.ggml.* keys (and tokenizer.chat_template) in the order
 * and types llama.cpp's converter uses: model, pre, tokens, scores (SPM),
 * token_type, merges (BPE), bos/eos/unknown/padding ids (u32, when >= 0),
 * add_bos_token, add_eos_token (unless omitted), chat_template. Call
 * phiq_tok_vocab_pad first to match the model's embedding rows. */
struct phiq_gguf_writer;
int phiq_tok_vocab_to_gguf(const phiq_tok_vocab *v, struct phiq_gguf_writer *w);

/* ---- tokenizer --------------------------------------------------------------- */
typedef struct phiq_tokenizer phiq_tokenizer;

phiq_tokenizer *phiq_tokenizer_from_vocab(const phiq_tok_vocab *v); /* copies what it needs */
phiq_tokenizer *phiq_tokenizer_from_hf_json(const char *tokenizer_json_path, const char *tokenizer_config_json_path);
/* An HF checkpoint directory: tokenizer.json, tokenizer_config.json and
 * generation_config.json (its eos_token_id list joins the stop tokens). */
phiq_tokenizer *phiq_tokenizer_from_hf_dir(const char *dir);
phiq_tokenizer *phiq_tokenizer_from_tiktoken(const char *ranks_path, const char *pretok, const char *const *specials,
                                             const int32_t *special_ids, int n_specials);
phiq_tokenizer *phiq_tokenizer_from_gguf(const struct phiq_gguf *g);
/* Any of: HF directory, tokenizer.json, *.gguf, *.tiktoken (pretok for the latter). */
phiq_tokenizer *phiq_tokenizer_load(const char *path, const char *pretok);
void phiq_tokenizer_free(phiq_tokenizer *t);

int32_t phiq_tokenizer_n_vocab(const phiq_tokenizer *t);
int phiq_tokenizer_model(const phiq_tokenizer *t); /* phiq_tok_model */
int32_t phiq_tokenizer_bos(const phiq_tokenizer *t); /* -1 if none */
int32_t phiq_tokenizer_eos(const phiq_tokenizer *t);
bool phiq_tokenizer_add_bos(const phiq_tokenizer *t);
int phiq_tokenizer_token_type(const phiq_tokenizer *t, int32_t id); /* 0 if out of range */
const char *phiq_tokenizer_token_text(const phiq_tokenizer *t, int32_t id); /* vocab text, NULL if out of range */
int32_t phiq_tokenizer_find(const phiq_tokenizer *t, const char *text); /* exact vocab text -> id, -1 */
const char *phiq_tokenizer_chat_template(const phiq_tokenizer *t); /* NULL if none */

/* End-of-generation ids: eos, every token whose text is <|end|>,
 * <|endoftext|>, <|im_end|>, <|eot_id|>, <|end_of_text|>, <|eom_id|>,
 * <end_of_turn>, and any added with phiq_tokenizer_add_eog. Returns the
 * count (may exceed cap). */
int phiq_tokenizer_eog_ids(const phiq_tokenizer *t, int32_t *out, int cap);
bool phiq_tokenizer_is_eog(const phiq_tokenizer *t, int32_t id);
int phiq_tokenizer_add_eog(phiq_tokenizer *t, int32_t id);

/* Encodes len bytes of text. add_bos: prepend BOS if the vocabulary adds
 * one (and EOS at the end if it adds that). parse_special: CONTROL tokens
 * written in the text (e.g. "<|user|>") become their ids; USER_DEFINED tokens
 * are always matched (as llama.cpp). Returns the number of ids, which may
 * exceed cap (only cap are written: call again with more room), or a
 * negative PHIQ_E* code. */
int phiq_tokenize_text(const phiq_tokenizer *t, const char *text, size_t len, int add_bos, int parse_special,
                       int32_t *out, int cap);

/* The bytes of one token as printed: SPM '▁' -> ' ', byte tokens -> the
 * byte, BPE byte-level decoded, CONTROL tokens as their text. May be an
 * incomplete UTF-8 sequence. Returns the length (may exceed cap; buf gets
 * min(len,cap) bytes, not NUL-terminated) or a negative code for a bad id. */
int phiq_token_piece(const phiq_tokenizer *t, int32_t id, char *buf, int cap);

/* Decodes a whole sequence into buf (NUL-terminated if room): skips BOS,
 * strips the leading space SPM adds to the text (as HF's Strip decoder and
 * llama.cpp's detokenize), renders CONTROL tokens unless skip_special.
 * Returns the byte length (may be >= cap) or a negative code. */
int phiq_detokenize(const phiq_tokenizer *t, const int32_t *ids, int n, int skip_special, char *buf, int cap);

/* Streaming detokenizer: feed ids one at a time; it only ever emits whole
 * UTF-8 characters (bytes of an incomplete sequence are held back until the
 * sequence completes or proves invalid, then emitted as U+FFFD). */
typedef struct phiq_detok {
    const phiq_tokenizer *t;
    int skip_special;
    int at_start;         /* no text emitted yet: SPM strips one leading space */
    unsigned char pend[8];
    int npend;
} phiq_detok;

void phiq_detok_init(phiq_detok *d, const phiq_tokenizer *t, int skip_special);
/* Appends the text completed by id to out (cap bytes; must be >= 32 plus
 * the longest token). Returns the number of bytes written or a negative code. */
int phiq_detok_push(phiq_detok *d, int32_t id, char *out, int cap);
/* Emits whatever is still held (invalid tail as U+FFFD). */
int phiq_detok_flush(phiq_detok *d, char *out, int cap);
/* Longest token piece in bytes (for sizing phiq_detok_push buffers). */
int phiq_tokenizer_max_piece(const phiq_tokenizer *t);

/* ---- helpers shared by the loaders (tokenizer.c) -------------------------------- */
/* GPT-2 byte <-> unicode mapping used by byte-level BPE vocabularies. */
int phiq_bytelevel_encode(const unsigned char *in, size_t n, char *out, size_t cap); /* returns bytes needed */
/* Decodes byte-level text to raw bytes; returns the length, or -1 if a
 * character is not in the 256-entry mapping. out needs strlen(in) bytes. */
int phiq_bytelevel_decode(const char *in, size_t n, unsigned char *out);
/* The pre-tokenizer regex for a llama.cpp pre name or short name ("o200k",
 * "cl100k", "gpt2"), NULL if unknown. */
const char *phiq_pretok_regex(const char *name);
phiq_tok_vocab *phiq_tok_vocab_new(int model, int32_t n_tokens);

#endif
