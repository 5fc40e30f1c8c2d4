/* api.c — the model / context / eval / logits part of include/phiq.h:
 * opening models, creating contexts (KV cache, scratch, thread pool),
 * evaluating batches with the LongRoPE factor rules, truncation. */
#include <stdlib.h>

#include "core/common.h"
#include "formats/ggml_type.h"
#include "kernels/attn.h"
#include "kernels/dispatch.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

phiq_model *phiq_model_open(const char *path, const phiq_model_params *params) {
    return phiq_model_load(path, params);
}

int phiq_model_n_vocab(const phiq_model *m) { return m ? m->hp.n_vocab : PHIQ_EINVAL; }
int phiq_model_n_ctx_train(const phiq_model *m) { return m ? m->hp.n_ctx_train : PHIQ_EINVAL; }
const char *phiq_model_arch(const phiq_model *m) { return m ? phiq_arch_name(m->hp.arch) : "?"; }
int phiq_model_n_embd(const phiq_model *m) { return m ? m->hp.n_embd : PHIQ_EINVAL; }
int phiq_model_n_layer(const phiq_model *m) { return m ? m->hp.n_layer : PHIQ_EINVAL; }
int phiq_model_n_ctx_orig(const phiq_model *m) { return m ? m->hp.n_ctx_orig : PHIQ_EINVAL; }
int phiq_model_sliding_window(const phiq_model *m) { return m ? m->hp.sliding_window : PHIQ_EINVAL; }
int phiq_model_weights_mode(const phiq_model *m) {
    return !m ? PHIQ_EINVAL : m->weights ? PHIQ_WEIGHTS_COPY : PHIQ_WEIGHTS_MMAP;
}

phiq_context_params phiq_context_default_params(void) {
    phiq_context_params p;
    memset(&p, 0, sizeof p);
    p.kv_type = PHIQ_KV_TYPE_F16;
    p.rope_mode = PHIQ_ROPE_MODE_HF;
    return p;
}

void phiq_context_free(phiq_context *ctx) {
    if (!ctx) return;
    phiq_threadpool_free(ctx->tp);
    phiq_kv_free(&ctx->kv);
    PHIQ_FREE_ALL(ctx->tokens, ctx->x, ctx->h, ctx->qkv, ctx->p3s_tmp, ctx->att, ctx->ffn, ctx->tmp, ctx->mm_scratch,
                  ctx->scores, ctx->attn_q8, ctx->attn_ws, ctx->attn_part, ctx->act, ctx->act_q, ctx->actq);
    phiq_mm_scratch_free(ctx);
    PHIQ_FREE_ALL(ctx->moe, ctx->rope_cos, ctx->rope_sin, ctx->logits, ctx->fb_pos, ctx->fb_rows, ctx->fb_kv,
                  ctx->fb_long, ctx);
}

static float *phiq_alloc_f(size_t n) { return malloc((n ? n : 1) * sizeof(float)); }

phiq_context *phiq_context_new(const phiq_model *m, const phiq_context_params *p) {
    if (!m) return phiq_fail_null(PHIQ_EINVAL, "context: model is NULL");
    phiq_context_params d = phiq_context_default_params();
    if (!p) p = &d;
    const phiq_hparams *hp = &m->hp;
    int n_ctx = p->n_ctx;
    if (n_ctx == 0) n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (n_ctx < 1 || n_ctx > (1 << 22)) return phiq_fail_null(PHIQ_EINVAL, "context: n_ctx %d is out of range", p->n_ctx);
    if (hp->n_ctx_train > 0 && n_ctx > hp->n_ctx_train)
        return phiq_fail_null(PHIQ_EINVAL, "context: n_ctx %d exceeds the model's context length %d", n_ctx, hp->n_ctx_train);
    int kvt;
    if (p->kv_type == PHIQ_KV_TYPE_F16) kvt = PHIQ_GGML_TYPE_F16;
    else if (p->kv_type == PHIQ_KV_TYPE_F32) kvt = PHIQ_GGML_TYPE_F32;
    else if (p->kv_type == PHIQ_KV_TYPE_Q8_0) kvt = PHIQ_GGML_TYPE_Q8_0;
    else return phiq_fail_null(PHIQ_EUNSUPPORTED, "context: KV cache type %d is not supported (f16, f32, q8_0)", (int)p->kv_type);
    if (p->rope_mode != PHIQ_ROPE_MODE_HF && p->rope_mode != PHIQ_ROPE_MODE_LLAMACPP)
        return phiq_fail_null(PHIQ_EINVAL, "context: unknown rope_mode %d", (int)p->rope_mode);
    if (p->n_threads < 0 || p->n_threads > 512 || p->n_batch < 0)
        return phiq_fail_null(PHIQ_EINVAL, "context: bad n_threads %d or n_batch %d", p->n_threads, p->n_batch);

    phiq_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return phiq_fail_null(PHIQ_ENOMEM, "context: out of memory");
    ctx->m = m;
    ctx->n_ctx = n_ctx;
    ctx->n_batch = p->n_batch > 0 ? p->n_batch : 512;
    if (ctx->n_batch > n_ctx) ctx->n_batch = n_ctx;
    ctx->all_logits = p->all_logits != 0;
    ctx->logits_from = p->all_logits && p->logits_from > 0 ? p->logits_from : 0;
    ctx->rope_mode = p->rope_mode;
    ctx->window = p->sliding_window == 0 ? hp->sliding_window : p->sliding_window < 0 ? 0 : p->sliding_window;
    if (ctx->rope_mode == PHIQ_ROPE_MODE_LLAMACPP) {
        int padded = (n_ctx + 255) / 256 * 256;
        ctx->cache_long = hp->n_rope_factors > 0 && padded > hp->n_ctx_orig;
    }
    if (phiq_kv_init(&ctx->kv, kvt, hp->n_layer, n_ctx, hp->n_head_kv * hp->head_dim, hp->head_dim) < 0) {
        phiq_context_free(ctx);
        return NULL;
    }
    ctx->tp = phiq_threadpool_new(p->n_threads);
    if (!ctx->tp) {
        phiq_context_free(ctx);
        return NULL;
    }
    ctx->n_threads = phiq_threadpool_n(ctx->tp);
    const size_t B = (size_t)ctx->n_batch, E = (size_t)hp->n_embd;
    const size_t nq = (size_t)hp->n_head * hp->head_dim, nk = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t F = (size_t)hp->n_ff, nffn = hp->arch == PHIQ_ARCH_PHI2 ? F : 2 * F;
    size_t max_in = E > nq ? E : nq;
    if (F > max_in) max_in = F;
    ctx->tokens = malloc((size_t)n_ctx * sizeof(int32_t));
    ctx->x = phiq_alloc_f(B * E);
    ctx->h = phiq_alloc_f(B * E);
    ctx->tmp = phiq_alloc_f(B * E);
    ctx->qkv = phiq_alloc_f((B + 1) * (nq + 2 * nk));
    ctx->att = phiq_alloc_f(B * nq);
    ctx->ffn = phiq_alloc_f(B * nffn);
    ctx->mm_scratch = phiq_alloc_f((size_t)ctx->n_threads * max_in);
    {
        /* attention scratch (model/forward.c): bounded by the batch and the
         * thread count, never by n_ctx squared */
        const size_t hd = (size_t)hp->head_dim, nh = (size_t)hp->n_head, SS = PHIQ_ATTN_STATE(hd);
        const size_t NT = (size_t)ctx->n_threads;
        /* one tile of scores, B states, B tile bounds (2 ints each), the
         * block kernel's scratch (64-byte aligned) */
        size_t ws = 64 + B * SS + 2 * B + PHIQ_ATTN_BLOCK_WS(hd) + 16;
        if (ws < hd) ws = hd;
        ctx->attn_ws_stride = (ws + 15) & ~(size_t)15;
        ctx->attn_part_stride = (nh * SS + 64 + 15) & ~(size_t)15;
        ctx->attn_ws = phiq_alloc_f(NT * ctx->attn_ws_stride);
        ctx->attn_part = phiq_alloc_f(NT * ctx->attn_part_stride);
        /* f32 caches and Phi-3-small's block-sparse layers score a whole row per (token, head) */
        const bool rows = kvt == PHIQ_GGML_TYPE_F32 || hp->arch == PHIQ_ARCH_PHI3SMALL;
        if (rows) ctx->scores = phiq_alloc_f(NT * (size_t)n_ctx);
        if (kvt == PHIQ_GGML_TYPE_Q8_0) ctx->attn_q8 = malloc(B * nh * (hd / 32 * 34) + 1);
        if (!ctx->attn_ws || !ctx->attn_part || (rows && !ctx->scores) ||
            (kvt == PHIQ_GGML_TYPE_Q8_0 && !ctx->attn_q8)) {
            phiq_context_free(ctx);
            return phiq_fail_null(PHIQ_ENOMEM, "context: out of memory for attention scratch");
        }
    }
    ctx->llamacpp_numerics = p->llamacpp_numerics != 0;
    ctx->phimoe_llamacpp = p->phimoe_llamacpp != 0;
    if (hp->arch == PHIQ_ARCH_PHIMOE) {
        if (!ctx->phimoe_llamacpp && hp->n_expert_used != 2) {
            phiq_context_free(ctx);
            return phiq_fail_null(PHIQ_EUNSUPPORTED, "context: Hugging Face's SparseMixer routing needs 2 experts per token (model uses %d); use llama.cpp's routing (phimoe_llamacpp, --phimoe-llamacpp)", hp->n_expert_used);
        }
        ctx->moe = phiq_alloc_f(B * (E + (size_t)hp->n_expert));
        if (!ctx->moe) {
            phiq_context_free(ctx);
            return phiq_fail_null(PHIQ_ENOMEM, "context: out of memory");
        }
    }
    if (hp->arch == PHIQ_ARCH_PHI3SMALL) {
        ctx->p3s_tmp = phiq_alloc_f((size_t)ctx->n_threads * 2 * (size_t)hp->head_dim);
        if (!ctx->p3s_tmp) {
            phiq_context_free(ctx);
            return phiq_fail_null(PHIQ_ENOMEM, "context: out of memory");
        }
    }
    if (ctx->llamacpp_numerics) {
        ctx->act = phiq_alloc_f(B * max_in);
        ctx->act_q = malloc(max_in * 2 + 64); /* Q8 rows take < 1.2 bytes per value */
        if (!ctx->act || !ctx->act_q) {
            phiq_context_free(ctx);
            return phiq_fail_null(PHIQ_ENOMEM, "context: out of memory");
        }
    }
    const char *refmm = getenv("PHIQ_REFERENCE_MATMUL");
    ctx->ref_matmul = refmm && *refmm && *refmm != '0';
    if (!ctx->ref_matmul) {
        ctx->kern = phiq_kernels_get();
        ctx->bf16_gemm = m->keep_bf16 && phiq_mm_bf16_gemm_usable();
        /* widest activation row: f16-rounded f32 for the F16 prefill gemm
         * (4 bytes a value); F16/BF16 take 2, Q8_x < 1.2 */
        ctx->actq_row = (4 * max_in + 64 + 63) & ~(size_t)63;
        ctx->actq = aligned_alloc(64, B * ctx->actq_row);
        if (!ctx->actq) {
            phiq_context_free(ctx);
            return phiq_fail_null(PHIQ_ENOMEM, "context: out of memory for activation scratch");
        }
        if (phiq_mm_scratch_init(ctx, (int64_t)max_in) < 0) {
            phiq_context_free(ctx);
            return NULL;
        }
    }
    ctx->rope_cos = phiq_alloc_f(B * (size_t)(hp->n_rot / 2));
    ctx->rope_sin = phiq_alloc_f(B * (size_t)(hp->n_rot / 2));
    ctx->logits_cap = 1;
    ctx->logits = phiq_alloc_f((size_t)hp->n_vocab);
    ctx->fb_pos = malloc(B * sizeof(int));
    ctx->fb_rows = malloc(B * sizeof(int));
    ctx->fb_kv = malloc(B * sizeof(phiq_kv *));
    ctx->fb_long = malloc(B);
    if (!ctx->tokens || !ctx->x || !ctx->h || !ctx->tmp || !ctx->qkv || !ctx->att || !ctx->ffn || !ctx->mm_scratch ||
        !ctx->rope_cos || !ctx->rope_sin || !ctx->logits ||
        !ctx->fb_pos || !ctx->fb_rows || !ctx->fb_kv || !ctx->fb_long) {
        phiq_context_free(ctx);
        return phiq_fail_null(PHIQ_ENOMEM, "context: out of memory for n_ctx %d", n_ctx);
    }
    return ctx;
}

/* Recomputes the cache of positions [0, n) with the current factor set. */
static int phiq_reprefill(phiq_context *ctx, int n, int long_f) {
    ctx->pos = 0;
    for (int c = 0; c < n; c += ctx->n_batch) {
        int cn = n - c < ctx->n_batch ? n - c : ctx->n_batch;
        int rc = phiq_forward(ctx, ctx->tokens + c, cn, long_f, NULL, cn);
        if (rc < 0) return rc;
    }
    return 0;
}

int phiq_eval(phiq_context *ctx, const int32_t *ids, int n) {
    if (!ctx || (!ids && n > 0) || n <= 0) return phiq_fail(PHIQ_EINVAL, "eval: no tokens");
    const phiq_hparams *hp = &ctx->m->hp;
    const int V = hp->n_vocab, start = ctx->pos;
    if (n > ctx->n_ctx - start)
        return phiq_fail(PHIQ_ERANGE, "eval: context full (%d cached + %d new > n_ctx %d)", start, n, ctx->n_ctx);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V) return phiq_fail(PHIQ_ERANGE, "eval: token id %d out of range [0, %d)", ids[i], V);
    int rows = ctx->all_logits ? n : 1;
    if (rows > ctx->logits_cap) {
        float *l = realloc(ctx->logits, (size_t)rows * (size_t)V * sizeof(float));
        if (!l) return phiq_fail(PHIQ_ENOMEM, "eval: out of memory for %d rows of logits", rows);
        ctx->logits = l;
        ctx->logits_cap = rows;
    }
    int long_f = ctx->cache_long;
    if (ctx->rope_mode == PHIQ_ROPE_MODE_HF) {
        long_f = hp->n_rope_factors > 0 && start + n > hp->n_ctx_orig;
        if (long_f != ctx->cache_long && start > 0) {
            /* the cached keys were rotated with the other factor set */
            int rc = phiq_reprefill(ctx, start, long_f);
            if (rc < 0) {
                ctx->pos = 0; /* cache no longer trustworthy */
                return rc;
            }
        }
        ctx->cache_long = long_f;
    }
    memcpy(ctx->tokens + start, ids, (size_t)n * sizeof(int32_t));
    ctx->n_logits = 0;
    for (int c = 0; c < n; c += ctx->n_batch) {
        int cn = n - c < ctx->n_batch ? n - c : ctx->n_batch;
        float *out = NULL;
        int first = cn;
        if (ctx->all_logits) {
            /* rows before logits_from are neither computed nor written */
            first = ctx->logits_from > c ? ctx->logits_from - c : 0;
            out = first < cn ? ctx->logits + (size_t)(c + first) * V : NULL;
            if (!out) first = cn;
        } else if (c + cn == n) {
            out = ctx->logits; /* receives row cn-1 */
            first = cn - 1;
        }
        int rc = phiq_forward(ctx, ids + c, cn, long_f, out, first);
        if (rc < 0) {
            ctx->pos = start;
            return rc;
        }
    }
    ctx->n_logits = rows;
    return 0;
}

const float *phiq_logits(const phiq_context *ctx) {
    if (!ctx || ctx->n_logits == 0) return phiq_fail_null(PHIQ_EINVAL, "logits: nothing evaluated yet");
    return ctx->logits + (size_t)(ctx->n_logits - 1) * (size_t)ctx->m->hp.n_vocab;
}

const float *phiq_logits_at(const phiq_context *ctx, int i) {
    if (!ctx || !ctx->all_logits) return phiq_fail_null(PHIQ_EINVAL, "logits_at: the context was not created with all_logits");
    if (i < 0 || i >= ctx->n_logits) return phiq_fail_null(PHIQ_ERANGE, "logits_at: position %d not in the last batch (%d)", i, ctx->n_logits);
    if (i < ctx->logits_from)
        return phiq_fail_null(PHIQ_ERANGE, "logits_at: position %d is before logits_from (%d): not computed", i, ctx->logits_from);
    return ctx->logits + (size_t)i * (size_t)ctx->m->hp.n_vocab;
}

int phiq_context_pos(const phiq_context *ctx) { return ctx ? ctx->pos : PHIQ_EINVAL; }

int phiq_context_truncate(phiq_context *ctx, int pos) {
    if (!ctx) return phiq_fail(PHIQ_EINVAL, "truncate: context is NULL");
    if (pos < 0 || pos > ctx->pos) return phiq_fail(PHIQ_ERANGE, "truncate: position %d not in [0, %d]", pos, ctx->pos);
    ctx->pos = pos;
    ctx->n_logits = 0;
    return 0;
}

/* ---- tokens (the tokenizer itself is src/tokenizer) ---------------------------- */
int phiq_tokenize(const phiq_model *m, const char *text, int32_t *ids, int cap, int flags) {
    if (!m || !text || cap < 0 || (cap > 0 && !ids)) return phiq_fail(PHIQ_EINVAL, "tokenize: bad arguments");
    if (!m->tok) return phiq_fail(PHIQ_EUNSUPPORTED, "%s: the model carries no tokenizer", m->path);
    return phiq_tokenize_text(m->tok, text, strlen(text), (flags & PHIQ_TOKENIZE_ADD_BOS) != 0,
                              (flags & PHIQ_TOKENIZE_NO_SPECIAL) == 0, ids, cap);
}

int phiq_token_to_piece(const phiq_model *m, int32_t id, char *buf, int cap) {
    if (!m || cap < 0 || (cap > 0 && !buf)) return phiq_fail(PHIQ_EINVAL, "token_to_piece: bad arguments");
    if (!m->tok) return phiq_fail(PHIQ_EUNSUPPORTED, "%s: the model carries no tokenizer", m->path);
    return phiq_token_piece(m->tok, id, buf, cap);
}

int phiq_model_bos(const phiq_model *m) {
    if (!m || !m->tok || !phiq_tokenizer_add_bos(m->tok)) return -1;
    return phiq_tokenizer_bos(m->tok);
}
