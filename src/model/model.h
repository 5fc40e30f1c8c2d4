/* model.h — the engine's internal view of a loaded model and of a context
 * (KV cache, scratch, thread pool). Public handles are in include/phiq.h;
 * this header is for src/model/, src/api.c and the tests. */
#ifndef PHIQ_MODEL_MODEL_H
#define PHIQ_MODEL_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "phiq.h"
#include "kernels/ops.h"
#include "kernels/threadpool.h"
#include "model/hparams.h"
#include "model/prof.h"

#define PHIQ_MAX_EXPERT_USED 16

typedef struct phiq_gguf phiq_gguf;
typedef struct phiq_hf phiq_hf;

/* One block. Vectors are float32 copies owned by the model; matrices point
 * into the file map (GGUF) or into converted buffers (HF). */
typedef struct phiq_layer {
    float *attn_norm, *attn_norm_b; /* [E]; bias phi2 only */
    bool fused_qkv;
    phiq_mat qkv;                   /* E -> nq + 2 nkv (Q | K | V), when fused */
    float *qkv_b;                   /* [nq + 2 nkv] or NULL */
    phiq_mat q, k, v;               /* E -> nq, E -> nkv, E -> nkv, when separate */
    float *q_b, *k_b, *v_b;
    phiq_mat wo;                    /* nq -> E */
    float *wo_b;                    /* [E] or NULL */
    float *ffn_norm, *ffn_norm_b;   /* [E]; phi3 only (phi2 is a parallel block) */
    phiq_mat up;                    /* phi3: E -> 2F (gate | up); phi2: E -> F */
    float *up_b;                    /* phi2 [F] */
    phiq_mat down;                  /* F -> E */
    float *down_b;                  /* phi2 [E] */
    /* phimoe: router and experts (Mixtral layout, expert(x) = down(silu(gate x) * up x)) */
    phiq_mat gate_inp;              /* E -> n_expert router logits */
    phiq_mat *exp_gate, *exp_up;    /* [n_expert]: E -> F */
    phiq_mat *exp_down;             /* [n_expert]: F -> E */
} phiq_layer;

/* A layer matrix held lazily (phiq_model_load_ex with PHIQ_LOAD_LAZY_LAYERS): *mat
 * is src (in the file map, in the file's type) until
 * phiq_model_layers_acquire points it at buf, a converted copy. */
typedef struct phiq_lazy_mat {
    phiq_mat *mat;
    int layer;
    phiq_mat src;
    void *buf;
} phiq_lazy_mat;

struct phiq_model {
    char *path;
    phiq_hparams hp;
    phiq_gguf *gguf; /* when opened from GGUF (the map stays open for the metadata) */
    uint8_t *weights;      /* GGUF tensor data copied to 2 MiB-aligned anonymous memory
                              (tensor t at weights + t->offset), or NULL: read from the map */
    size_t weights_size;   /* bytes mapped for it (a multiple of 2 MiB) */
    phiq_hf *hf;     /* when opened from a HF directory */
    phiq_mat tok_embd;               /* E -> V rows: row t is token t's embedding */
    float *output_norm, *output_norm_b;
    phiq_mat output;                 /* E -> V (= tok_embd when tied) */
    float *output_b;                 /* [V] phi2 */
    phiq_layer *layers;              /* n_layer */
    uint16_t *gelu_table;            /* phi2: ggml's fp16 GELU table (65536) */
    struct phiq_tokenizer *tok;      /* NULL when the file carries no vocabulary */
    void **owned;                    /* buffers freed with the model */
    int n_owned, cap_owned;
    phiq_lazy_mat *lazy;             /* layer matrices held lazily, or NULL */
    int n_lazy, cap_lazy;
    int lazy_target;                 /* HF: the in-memory type they are converted to */
    int keep_bf16;                   /* PHIQ_LOAD_KEEP_BF16: BF16 matrices held as in the file (never
                                        converted) and every context on the model runs their prefill
                                        on the BF16 gemm (phiq_context.bf16_gemm) */
};

/* ---- KV cache (kv.c) --------------------------------------------------------- */
typedef struct phiq_kv {
    int type;        /* PHIQ_GGML_TYPE_F16, _F32 or _Q8_0 */
    int n_layer, n_ctx, dim; /* dim = n_head_kv * head_dim */
    size_t row_bytes; /* bytes of one position's dim values: 2 dim, 4 dim, or 34 dim / 32 (Q8_0) */
    int rot_k, rot_v; /* Q8_0, as llama.cpp's attn_rot: Walsh-Hadamard order applied to each head's
                         Q and K (largest power of two >= 64 dividing head_dim) and V (64) in
                         consecutive chunks before quantizing, output rotated back; 0 = none
                         (head_dim not a multiple of 64, or PHIQ_ATTN_ROT_DISABLE=1) */
    void *k, *v;     /* [n_layer][n_ctx][row_bytes] each; Q8_0 rows are dim / 32 block_q8_0
                        (f16 d, int8 qs[32]), each head's slice whole blocks */
    size_t huge_bytes; /* k and v each on huge pages of this many bytes (phiq_huge_alloc), or
                          0: calloc (small caches) */
} phiq_kv;

/* head_dim: Q8_0 needs it a multiple of 32 (each head's slice whole blocks). */
int phiq_kv_init(phiq_kv *kv, int type, int n_layer, int n_ctx, int dim, int head_dim);
/* Start of the K (or V) row of layer at pos. */
static inline uint8_t *phiq_kv_row(const phiq_kv *kv, int v, int layer, int pos) {
    return (uint8_t *)(v ? kv->v : kv->k) + ((size_t)layer * (size_t)kv->n_ctx + (size_t)pos) * kv->row_bytes;
}
void phiq_kv_free(phiq_kv *kv);
void phiq_kv_store(phiq_kv *kv, int layer, int pos, const float *k, const float *v);
/* f32 cache only (f16 and q8_0 go through kernels/attn.h): q . K[layer][pos][off .. off+n) */
float phiq_kv_dot_k(const phiq_kv *kv, int layer, int pos, int off, const float *q, int n);
/* f32 cache only: out += a * V[layer][pos][off .. off+n) */
void phiq_kv_axpy_v(const phiq_kv *kv, int layer, int pos, int off, float a, float *out, int n);

/* ---- context ----------------------------------------------------------------- */


struct phiq_context {
    const phiq_model *m;
    int n_ctx, n_batch, n_threads;
    int all_logits;
    int logits_from; /* with all_logits: first batch position with logits */
    int rope_mode;
    int window;          /* sliding window in effect (0 = full causal) */
    int llamacpp_numerics; /* round matmul inputs as ggml's CPU backend does */
    int phimoe_llamacpp; /* phimoe: llama.cpp's graph instead of Hugging Face's */
    phiq_kv kv;
    phiq_threadpool *tp;
    int pos;             /* tokens in the cache */
    int32_t *tokens;     /* [n_ctx] ids at each cached position (for re-prefill) */
    int cache_long;      /* factor set the cached keys were rotated with (0 short, 1 long) */
    /* scratch, sized for n_batch tokens */
    float *x, *h, *qkv, *att, *ffn, *tmp; /* [B][E], [B][E], [B+1][nq+2nkv] (one spare row), [B][nq], [B][2F], [B][E] */
    float *mm_scratch;   /* [n_threads][max n_in] */
    float *scores;       /* f32 cache: [n_threads][n_ctx] */
    uint8_t *attn_q8;    /* Q8_0 cache: [B][n_head][head_dim / 32 * 34] the scaled, rotated queries */
    float *attn_ws;      /* [n_threads][attn_ws_stride] (forward.c): span scores (one tile), then
                            the attention states of the batch's rows for one head (prefill) */
    size_t attn_ws_stride;
    float *attn_part;    /* [n_threads][attn_part_stride]: decode's partial states per sequence
                            chunk ([n_head][head_dim + 2]), then one tile of span scores */
    size_t attn_part_stride;
    float *act;          /* [B][max n_in]: rounded matmul inputs (llamacpp_numerics) */
    void *act_q;         /* one quantized activation row */
    const struct phiq_kernels *kern; /* kernel table (kernels/dispatch.h) */
    int ref_matmul;      /* PHIQ_REFERENCE_MATMUL=1: f32 dequantize-and-dot matmuls */
    uint8_t *actq;       /* [B][actq_row]: activations converted for the kernel table */
    size_t actq_row;     /* bytes per converted row (64-aligned) */
    struct phiq_mm_scratch *mms; /* matmul.c: AMX gemm scratch (NULL without AMX) */
    int bf16_gemm;       /* BF16 weights with T > 1 on the register-tiled BF16 gemm (f32 activations,
                            kernels/gemm_bf16.h): set for models loaded with PHIQ_LOAD_KEEP_BF16
                            (calibration) when phiq_mm_bf16_gemm_usable; 0 in normal use */
    float *moe;          /* phimoe: [B][E] mixture output, then [B][n_expert] router logits */
    float *p3s_tmp;      /* phi3small: [n_threads][2 head_dim] for block-sparse heads */
    float *rope_cos, *rope_sin; /* [B][n_rot/2] */
    float *logits;       /* [logits_cap][V] */
    int logits_cap, n_logits, logits_first; /* rows held; position index in batch of row 0 */
    /* Calibration (src/convert/calib.c): called by phiq_mm with every matmul's
     * float32 input rows before they are converted; NULL in normal use. */
    int (*mm_hook)(void *ud, const phiq_mat *w, const float *x, int64_t ldx, int T);
    void *mm_hook_ud;
    /* Calibration's layer range: a forward batch runs layers [fwd_l0, fwd_l1)
     * (fwd_l1 0 = all), starting from the residual stream fwd_x_in ([n][E])
     * instead of the embeddings when it is set, saving the stream after its
     * last layer to fwd_x_out when that is set; logits only when the range
     * reaches the end. 0/NULL in normal use. */
    int fwd_l0, fwd_l1;
    const float *fwd_x_in;
    float *fwd_x_out;
    /* [n_batch] each: the per-token description of one forward batch
     * (phiq_forward fills them for the context's own cache; seq.c for
     * several sequences) */
    int *fb_pos, *fb_rows;
    phiq_kv **fb_kv;
    uint8_t *fb_long;
    phiq_prof *prof;     /* decode profile (bench --profile), NULL in normal use */
};

/* One forward batch: token t is ids[t] at position pos[t] of the sequence
 * whose cache is kv[t] (several tokens may share a sequence: a prefill
 * chunk, in position order), RoPE'd with the long (1) or short (0) LongRoPE
 * factors long_f[t]. Every weight is read once for all n tokens. */
typedef struct phiq_fwd_batch {
    const int32_t *ids;
    const int *pos;
    phiq_kv *const *kv;
    const uint8_t *long_f;
    int n;
    const int *out_rows; /* rows whose logits are written to out[k * n_vocab], k < n_out */
    int n_out;
} phiq_fwd_batch;

/* forward.c: evaluates a batch (n <= n_batch, every cache of the context's
 * type and n_ctx); positions are not advanced (the caller owns them). */
int phiq_forward_batch(phiq_context *ctx, const phiq_fwd_batch *b, float *out);

/* forward.c: evaluates ids at positions ctx->pos.. (n <= n_batch), writing
 * logits of batch rows [out_first, n) to out (row out_first at out[0]; out
 * NULL: none) and advancing ctx->pos. long_f
 * selects the LongRoPE factor set. */
int phiq_forward(phiq_context *ctx, const int32_t *ids, int n, int long_f, float *out, int out_first);

/* matmul.c: y[t*ldy + r] = W[r] . x[t*ldx ..] (+ bias[r]) for T rows, through
 * the kernel table with llama.cpp's activation conversion (or the f32
 * reference path). Returns 0 or a negative code. */
int phiq_mm(phiq_context *ctx, const phiq_mat *w, const float *x, int64_t ldx, int T, float *y, int64_t ldy,
            const float *bias);
/* matmul.c: the AMX gemm's scratch for matrices of up to max_in inputs and
 * n_batch columns, after ctx->kern, n_threads and n_batch are set (nothing
 * without AMX). Returns 0 or PHIQ_ENOMEM; free with phiq_mm_scratch_free. */
int phiq_mm_scratch_init(phiq_context *ctx, int64_t max_in);
void phiq_mm_scratch_free(phiq_context *ctx);
/* matmul.c: whether the BF16 prefill gemm runs here: the kernel table is
 * AVX-512's (AMX tables keep their F16 AMX-BF16 gemm) and
 * PHIQ_REFERENCE_MATMUL is not set. */
bool phiq_mm_bf16_gemm_usable(void);

/* model.c */
phiq_model *phiq_model_load(const char *path, const phiq_model_params *p);
/* Flags of phiq_model_load_ex (calibration, src/convert/calib.c).
 * PHIQ_LOAD_LAZY_LAYERS: the matrices of the layers stay in the file map in
 * the file's type (GGUF: read in place) until phiq_model_layers_acquire(m,
 * l0, l1) converts those of layers [l0, l1) to the in-memory type as an
 * eager load would; phiq_model_layers_release frees the conversions and
 * returns the layers' file pages, so memory holds the layers being
 * evaluated, not the model. Other weights load as usual.
 * PHIQ_LOAD_KEEP_BF16: BF16 matrices of a HF directory are never converted
 * (the file's rows are used as they are) and contexts on the model run them
 * through the BF16 prefill gemm (m->keep_bf16). */
enum { PHIQ_LOAD_LAZY_LAYERS = 1, PHIQ_LOAD_KEEP_BF16 = 2 };
phiq_model *phiq_model_load_ex(const char *path, const phiq_model_params *p, unsigned flags);
int phiq_model_layers_acquire(phiq_model *m, int l0, int l1);
void phiq_model_layers_release(phiq_model *m, int l0, int l1);

#endif
