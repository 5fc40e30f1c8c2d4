/* calib.h — calibration statistics of a model on a text: per matmul input
 * column the sum of squared activations and the token count (llama-imatrix's
 * importance matrix, written in its GGUF format by phiq_calib_write_imatrix),
 * and, for the weights of a chosen range of layers, the full Gram matrix
 * H = XᵀX of the inputs that GPTQ (quant/gptq.h) needs.
 *
 * The text is cut as llama-imatrix cuts it: tokenized once (BOS added when
 * the tokenizer adds it), non-overlapping chunks of n_ctx tokens, each chunk's
 * first token replaced by BOS, each chunk evaluated from an empty cache.
 * Dense matmuls of fewer than 16 rows are skipped and output.weight only
 * counts with process_output, as llama-imatrix does; experts are counted per
 * expert. Hessians cost 4·n_in² bytes each, so the caller asks for a few
 * layers at a time (convert does, within a memory budget). */
#ifndef PHIQ_CONVERT_CALIB_H
#define PHIQ_CONVERT_CALIB_H

#include <stdint.h>

#include "phiq.h"

typedef struct phiq_calib_opts {
    int n_ctx;          /* chunk length (default 512) */
    int max_chunks;     /* 0 = all chunks of the text */
    int n_threads;      /* 0 = physical cores */
    int quiet;          /* no progress */
    int process_output; /* also collect output.weight */
    int h_layer0, h_layer1; /* Hessians for dense weights of layers [h_layer0, h_layer1); empty = none */
    int h_output;       /* and for output.weight (implies process_output) */
    const char *label;  /* progress label (default "imatrix") */
    /* Layers run: [layer0, layer1) (layer1 0 = to the end). Statistics are
     * collected for those layers only (output.weight only when the range
     * reaches the end). With layer0 > 0 each chunk starts from the residual
     * stream saved in resid ([chunk][n_ctx][n_embd]) instead of the
     * embeddings; with layer1 before the end the stream after layer1 - 1 is
     * saved there (in place). The statistics are those a full pass gives. */
    int layer0, layer1;
    float *resid;
} phiq_calib_opts;

typedef struct phiq_calib phiq_calib;

/* Tokenizes the file at text_path with m's tokenizer; *n ids, malloc'd.
 * Fails (one line) when it gives fewer than 2 * n_ctx tokens. */
int32_t *phiq_calib_tokenize(const phiq_model *m, const char *text_path, int n_ctx, int64_t *n);
/* Runs m over ids (n_ids >= 2 * n_ctx) collecting the statistics. */
phiq_calib *phiq_calib_run(const phiq_model *m, const int32_t *ids, int64_t n_ids, const phiq_calib_opts *o);
void phiq_calib_free(phiq_calib *c);
int phiq_calib_chunks(const phiq_calib *c);
int64_t phiq_calib_tokens(const phiq_calib *c);
/* Writes llama-imatrix's GGUF format (general.type "imatrix", imatrix.datasets,
 * imatrix.chunk_count, imatrix.chunk_size; per weight W "W.in_sum2" F32
 * {n_in, n_mat} and "W.counts" F32 {1, n_mat}, names sorted). */
int phiq_calib_write_imatrix(const phiq_calib *c, const char *path, const char *dataset, int quiet);
/* Mean squared input (in_sum2 / count) of GGUF weight `name`: [n_mat][n_in],
 * NULL if not collected. */
const float *phiq_calib_imatrix(phiq_calib *c, const char *name, int64_t *n_in, int *n_mat);
/* H = XᵀX / n_tokens of weight `name` ([n_in][n_in], symmetric), NULL if not collected. */
const float *phiq_calib_hessian(const phiq_calib *c, const char *name, int64_t *n_in);
/* Bytes of the Hessians of one layer of m (to size the layer groups). */
uint64_t phiq_calib_layer_hessian_bytes(const phiq_model *m);


/* ---- a calibration session for convert --calib --------------------------------------- */
/* Owns the source model (opened lazily: only the layers being run are held
 * converted) and the tokenized text; Hessians are computed for groups of
 * consecutive layers whose Hessians fit in mem_budget bytes (at least one
 * layer). Groups asked for in order share one forward pass: each resumes
 * from the residual stream the previous one saved (in memory, 4 n_embd
 * bytes per token), so memory stays bounded whatever the depth. */
typedef struct phiq_calib_session phiq_calib_session;
phiq_calib_session *phiq_calib_session_new(const char *model_path, const char *text_path, const phiq_calib_opts *o,
                                           uint64_t mem_budget);
void phiq_calib_session_free(phiq_calib_session *s);
/* H of GGUF weight `name` (blk.N.* or output.weight), running the pass for
 * its group when needed; NULL with no error when the weight has none (token
 * embeddings, experts); NULL with an error when the pass failed (*failed = 1). */
const float *phiq_calib_session_hessian(phiq_calib_session *s, const char *name, int64_t *n_in, int *failed);
/* Mean squared inputs (imatrix) of `name` from the current group, or NULL. */
const float *phiq_calib_session_imatrix(phiq_calib_session *s, const char *name, int64_t *n_in, int *n_mat);
/* Sets the last n_tokens of the text aside (whole chunks for --target-bpw's
 * selection, budget.h): the statistics use only the rest, which must keep
 * at least two chunks of n_ctx. Call before the first Hessian. Returns the
 * held-out ids (owned by the session) or NULL with a one-line error. */
const int32_t *phiq_calib_session_hold_out(phiq_calib_session *s, int64_t n_tokens);
/* *H = a stand-in Hessian [n][n] (malloc'd) for token_embd.weight, whose rows get
 * no activations: an error δ in an embedding reaches the first layer's
 * attention and MLP inputs through their norms (gains g_a, g_f), so
 * H = diag(g_a) QKVᵀQKV diag(g_a) + diag(g_f) UPᵀUP diag(g_f), each term
 * scaled to trace n. *H = NULL when layer 0 has no fused QKV and pre-MLP
 * norm (phi2, PhiMoE: token_embd is rounded as before). 0 or a negative code. */
int phiq_calib_session_embd_hessian(phiq_calib_session *s, float **H, int64_t *n_in);
/* The source model the session runs (budget.c measures sensitivities on it). */
phiq_model *phiq_calib_session_model(phiq_calib_session *s);
int phiq_calib_session_passes(const phiq_calib_session *s);
double phiq_calib_session_seconds(const phiq_calib_session *s);
int64_t phiq_calib_session_tokens(const phiq_calib_session *s);

#endif
