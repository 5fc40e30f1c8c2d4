/* convert.h — HF checkpoint / GGUF → GGUF conversion (streaming, one tensor
 * at a time, multi-threaded within a tensor; the tokenizer.* keys come from
 * the tokenizer module's phiq_tok_vocab), the HF → GGUF tensor-name plan,
 * and `inspect` summaries.
 *
 * Output matches what llama.cpp's convert_hf_to_gguf.py (+ llama-quantize for
 * quantized types) writes for phi3 / phi2 / phimoe: same keys with the same
 * strict value types, same tensor names, shapes (ne[0] = input dimension)
 * and per-tensor types. `phiq inspect` lives in tools/cmd_inspect.c.
 */
#ifndef PHIQ_CONVERT_CONVERT_H
#define PHIQ_CONVERT_CONVERT_H

#include <stdbool.h>
#include <stdint.h>

#include "formats/gguf.h"
#include "formats/hf.h"
#include "model/hparams.h"

/* ---- conversion ------------------------------------------------------------ */
typedef struct phiq_convert_opts {
    const char *type;            /* "f32", "f16", "bf16", "q4_k_m", "int4", ... */
    int n_threads;               /* <= 0: physical cores */
    int quiet;                   /* no progress */
    int pure;                    /* every quantizable tensor gets the base type */
    const char *output_type;     /* type of output.weight (or tied token_embd), NULL = mix */
    const char *embedding_type;  /* type of token_embd.weight, NULL = mix */
    const char *const *tensor_types; /* "REGEX=TYPE" overrides, first match wins */
    int n_tensor_types;
    int allow_requantize;        /* accept an already-quantized GGUF input */
    const char *imatrix;         /* llama-imatrix file (GGUF or .dat), NULL = none */
    const char *name;            /* general.name override, NULL = from the source */
    /* calibrated quantization (GPTQ inside the blocks, quant/gptq.h): */
    const char *calib;           /* calibration text, NULL = round-to-nearest as llama-quantize */
    int calib_ctx;               /* chunk length (default 512) */
    int calib_chunks;            /* chunks used (0 = all) */
    float damp;                  /* GPTQ dampening, fraction of the mean diagonal (default 0.01) */
    uint64_t calib_mem;          /* bytes of Hessians held at once (default 1 GiB) */
    /* mixed precision at a size budget (convert/budget.h; needs calib, excludes type and the
     * per-tensor overrides): */
    double target_bpw;           /* > 0: all tensor data <= target_bpw * n_weights / 8 bytes */
    const char *target_size;     /* a preset: no larger than llama-quantize's file of it */
    const char *bpw_types;       /* candidate types, comma-separated (NULL: the default list) */
    int select_ctx;              /* selection chunk length (default 256) */
    int select_chunks;           /* selection chunks held out of calib's end (default 4) */
} phiq_convert_opts;

/* One tensor's type as the budget chose it. */
typedef struct phiq_convert_choice {
    char name[96];
    int type;
    uint64_t bytes;    /* its tensor data */
    double dkld;       /* measured KLD increase of that tensor alone at that type */
} phiq_convert_choice;

typedef struct phiq_convert_stats {
    int64_t n_tensors;
    int64_t n_elements;      /* weights written */
    uint64_t data_bytes;     /* tensor bytes written */
    uint64_t file_bytes;     /* size of the output file */
    double seconds;
    char arch[16];
    char ftype[24];          /* e.g. "F16", "Q4_K_M" */
    int calib_passes;        /* --calib: forward passes over the text, */
    double calib_seconds;    /* their time */
    int64_t calib_tokens;    /* tokens per pass */
    int n_gptq;              /* tensors quantized with GPTQ */
    /* --target-bpw / --target-size: */
    uint64_t budget_bytes;   /* all tensor data allowed (padded to the alignment) */
    uint64_t min_bytes;      /* the smallest mix */
    double predicted_kld;    /* sum of the chosen tensors' measured increases */
    double select_kld;       /* the chosen mix measured at once on the selection slice */
    int select_evals;        /* passes over the selection slice */
    int64_t select_positions;/* positions scored per pass */
    double select_seconds;
    int n_choices;
    phiq_convert_choice *choices; /* malloc'd: phiq_convert_stats_free */
} phiq_convert_stats;

/* Frees what phiq_convert allocated in stats (choices). */
void phiq_convert_stats_free(phiq_convert_stats *st);

/* Converts src (an HF directory or a GGUF file) into the GGUF file dst.
 * Nothing is left at dst (nor a temporary beside it) on failure. */
int phiq_convert(const char *src, const char *dst, const phiq_convert_opts *opts, phiq_convert_stats *stats);

/* Comma-separated list of accepted --type names (static string). */
const char *phiq_convert_type_names(void);

/* ---- importance matrix (imatrix.c) ------------------------------------------------ */
typedef struct phiq_imatrix phiq_imatrix;
/* llama-imatrix output, GGUF or legacy .dat; weights = mean squared activations. */
phiq_imatrix *phiq_imatrix_load(const char *path);
void phiq_imatrix_free(phiq_imatrix *m);
/* Weights of GGUF tensor `tensor`: [n_mat][ne0] floats, NULL if absent. */
const float *phiq_imatrix_find(const phiq_imatrix *m, const char *tensor, int64_t *ne0, int *n_mat);
int phiq_imatrix_n_entries(const phiq_imatrix *m);
int phiq_imatrix_chunks(const phiq_imatrix *m);
const char *phiq_imatrix_dataset(const phiq_imatrix *m); /* NULL if unknown */

/* ---- HF → GGUF tensor plan (names.c) ----------------------------------------------- */
#define PHIQ_PLAN_MAX_SRC 64 /* phimoe: one source per expert */

typedef struct phiq_plan_tensor {
    char name[PHIQ_GGUF_MAX_NAME];
    int n_dims;
    int64_t ne[4];                /* ne[0] innermost */
    bool force_f32;               /* 1-D, norms, rope factors */
    int n_src;                    /* sources concatenated in order (outermost dim) */
    const phiq_st_tensor *src[PHIQ_PLAN_MAX_SRC];
    const float *mem;             /* n_src == 0: data from memory (rope factors) */
    int layer;                    /* block index, -1 for global tensors */
} phiq_plan_tensor;

typedef struct phiq_plan {
    phiq_plan_tensor *t;
    int n;
} phiq_plan;

/* Maps every tensor the architecture needs to its GGUF name and shape; fails
 * naming the first missing or misshapen tensor. Tensors of the checkpoint
 * that are not used (e.g. rotary inv_freq buffers) are ignored. */
int phiq_plan_build(phiq_plan *p, const phiq_hf *hf);
void phiq_plan_free(phiq_plan *p);

#endif
