/* forward.c — the Phi forward pass on CPU for one batch of tokens:
 * phi3 (Phi-3/3.5/4/4-mini: RMSNorm, fused Q|K|V, GQA, NeoX RoPE on the first
 * n_rot dims with LongRoPE factors and attention factor, optional sliding
 * window, SwiGLU gate-first), phi2 (Phi-1.5/2: one LayerNorm feeding
 * attention and MLP in parallel, biases everywhere, GELU through ggml's fp16
 * table, partial rotary), phimoe, and phi3small (Phi-3-small: LayerNorm,
 * muP scalings, block-sparse layers, GeGELU; its own pieces in phi3small.c).
 * Semantics: docs/reference/phi-family-architecture.md §2a-§2d and
 * llamacpp-gguf-quant.md §2.2/§2.3. */
#include <math.h>
#include <stdlib.h>

#include "core/common.h"
#include "formats/ggml_type.h"
#include "kernels/attn.h"
#include "model/model.h"
#include "model/phi3small.h"
#include "quant/quant.h"

/* Positions per span call. Prefill: one head's K and V slices of a tile
 * (64 x head_dim values each) stay in L1 while every query of the batch
 * passes over them, so the cache is read once per layer, not once per
 * token. Decode: every head of a tile of cache rows is visited before the
 * next tile, so the rows stream from memory nearly in order. */
#define PHIQ_ATTN_TILE 64
#define PHIQ_ATTN_TILE_DEC 32

typedef struct {
    phiq_context *ctx;
    int layer, n;
    const int *pos;        /* [n] each token's position */
    phiq_kv *const *kv;    /* [n] each token's sequence cache */
    const float *qkv; /* [n][nq + 2 nkv] after RoPE */
    float *out;       /* [n][nq] */
    int cpt;          /* split mode: chunks of the sequence per token */
} phiq_attn_job;

/* Hugging Face's sliding mask: key k visible to query p iff p - W < k <= p. */
static inline int attn_first(const phiq_context *ctx, int p) {
    return ctx->window > 0 && p - ctx->window + 1 > 0 ? p - ctx->window + 1 : 0;
}

/* The softmax scale: 1/sqrt(head_dim), or Phi-3-small's muP mup_attn_multiplier/head_dim. */
static inline float attn_scale(const phiq_hparams *hp) {
    return hp->attn_scale > 0 ? hp->attn_scale : 1.0f / sqrtf((float)hp->head_dim);
}

static inline size_t attn_q8_bytes(int hd) { return (size_t)phiq_ggml_row_size(PHIQ_GGML_TYPE_Q8_0, hd); }

/* Q8_0 cache: each (token, head) query scaled, rotated and quantized once.
 * llama.cpp's phi graphs scale Q before attention (kq_scale 1); flash
 * attention then converts that row to K's dot type. */
static void phiq_attn_prep_q8(void *arg, int ith, int nth) {
    phiq_attn_job *j = arg;
    phiq_context *ctx = j->ctx;
    const phiq_hparams *hp = &ctx->m->hp;
    const int hd = hp->head_dim, nh = hp->n_head, nq = nh * hd, ld = nq + 2 * hp->n_head_kv * hd;
    const float scale = attn_scale(hp);
    float *qs = ctx->attn_ws + (size_t)ith * ctx->attn_ws_stride;
    long lo, hi;
    phiq_split((long)j->n * nh, ith, nth, &lo, &hi);
    for (long it = lo; it < hi; it++) {
        const int t = (int)(it / nh), h = (int)(it % nh), rot = j->kv[t]->rot_k;
        const float *q = j->qkv + (size_t)t * ld + (size_t)h * hd;
        for (int i = 0; i < hd; i++) qs[i] = q[i] * scale;
        for (int c = 0; rot && c < hd; c += rot) phiq_attn_fwht(qs + c, rot);
        phiq_quantize_row_q8_0(qs, ctx->attn_q8 + (size_t)it * attn_q8_bytes(hd), hd);
    }
}

/* Folds positions [k0, k0 + n) of token t's sequence into head h's state. */
static inline void attn_span(const phiq_attn_job *j, const phiq_attn_kernels *ak, int t, int h, int k0, int n,
                             float *st, float *s) {
    const phiq_hparams *hp = &j->ctx->m->hp;
    const int hd = hp->head_dim, nh = hp->n_head, nkv = hp->n_head_kv, off = (h / (nh / nkv)) * hd;
    const phiq_kv *kv = j->kv[t];
    if (kv->type == PHIQ_GGML_TYPE_Q8_0) {
        const size_t ob = (size_t)phiq_ggml_row_size(PHIQ_GGML_TYPE_Q8_0, off);
        ak->span_q8_0(j->ctx->attn_q8 + ((size_t)t * nh + h) * attn_q8_bytes(hd), phiq_kv_row(kv, 0, j->layer, k0) + ob,
                      phiq_kv_row(kv, 1, j->layer, k0) + ob, kv->row_bytes, n, st, s, hd);
    } else {
        const float *q = j->qkv + (size_t)t * (size_t)(nh * hd + 2 * nkv * hd) + (size_t)h * hd;
        ak->span_f16(q, attn_scale(hp), (const uint16_t *)(const void *)phiq_kv_row(kv, 0, j->layer, k0) + off,
                     (const uint16_t *)(const void *)phiq_kv_row(kv, 1, j->layer, k0) + off, (size_t)kv->dim, n, st, s,
                     hd);
    }
}

/* out = o / S of one finished state; a Q8_0 cache's V was stored rotated,
 * and H H = I brings the output back. */
static inline void attn_finish(const phiq_kv *kv, const float *st, float *out, int hd) {
    phiq_attn_state_out(st, out, hd);
    for (int c = 0; kv->rot_v && c < hd; c += kv->rot_v) phiq_attn_fwht(out + c, kv->rot_v);
}

/* Split mode (decode, few tokens), flash-decoding: chunk c is part c % cpt
 * of token c / cpt's visible positions, every head, into its own partial
 * states (ctx->attn_part); the caller merges them. */
static void phiq_attn_split_task(void *arg, int c, int nc) {
    (void)nc;
    phiq_attn_job *j = arg;
    phiq_context *ctx = j->ctx;
    const phiq_hparams *hp = &ctx->m->hp;
    const int hd = hp->head_dim, nh = hp->n_head, t = c / j->cpt;
    const size_t SS = PHIQ_ATTN_STATE(hd);
    const phiq_attn_kernels *ak = phiq_attn_kernels_get();
    const int first = attn_first(ctx, j->pos[t]);
    long lo, hi;
    phiq_split(j->pos[t] - first + 1, c % j->cpt, j->cpt, &lo, &hi);
    float *st = ctx->attn_part + (size_t)c * ctx->attn_part_stride, *s = st + (size_t)nh * SS;
    for (int h = 0; h < nh; h++) phiq_attn_state_init(st + h * SS, hd);
    for (long k0 = lo; k0 < hi; k0 += PHIQ_ATTN_TILE_DEC) {
        const int nk = (int)(hi - k0 < PHIQ_ATTN_TILE_DEC ? hi - k0 : PHIQ_ATTN_TILE_DEC);
        for (int h = 0; h < nh; h++) attn_span(j, ak, t, h, first + (int)k0, nk, st + h * SS, s);
    }
}

/* One tile [k0, k0 + PHIQ_ATTN_TILE) of head h for every token of the
 * batch through the f16 block kernel, one call per run of consecutive
 * tokens sharing a cache; lo/hi: per-token scratch. A run of one token (a
 * decode step of one of several sequences in a server's batch) takes the
 * span kernel instead: the block kernel converts the tile's K and V for
 * the tokens that share it, which one token does not repay (10% of an
 * 8-sequence decode step went there). */
static void attn_block_f16(const phiq_attn_job *j, const phiq_attn_kernels *ak, int h, int k0, int *lo, int *hi,
                           float *states, float *bws, float *s) {
    const phiq_hparams *hp = &j->ctx->m->hp;
    const int hd = hp->head_dim, nh = hp->n_head, nkv = hp->n_head_kv, off = (h / (nh / nkv)) * hd;
    const size_t SS = PHIQ_ATTN_STATE(hd), ld = (size_t)(nh * hd + 2 * nkv * hd);
    for (int t0 = 0; t0 < j->n;) {
        const phiq_kv *kv = j->kv[t0];
        int t1 = t0, n = 0;
        for (; t1 < j->n && j->kv[t1] == kv; t1++) {
            const int f = attn_first(j->ctx, j->pos[t1]);
            int a = (f > k0 ? f : k0) - k0, b = j->pos[t1] + 1 - k0;
            if (b > PHIQ_ATTN_TILE) b = PHIQ_ATTN_TILE;
            if (b < 0) b = 0;
            lo[t1] = a < b ? a : b, hi[t1] = b; /* 0 <= lo <= hi <= tile */
            if (b > n) n = b;
        }
        if (n > 0 && t1 - t0 == 1) {
            if (lo[t0] < hi[t0]) attn_span(j, ak, t0, h, k0 + lo[t0], hi[t0] - lo[t0], states + (size_t)t0 * SS, s);
        } else if (n > 0)
            ak->block_f16(j->qkv + (size_t)t0 * ld + (size_t)h * hd, ld, t1 - t0, lo + t0, hi + t0, attn_scale(hp),
                          (const uint16_t *)(const void *)phiq_kv_row(kv, 0, j->layer, k0) + off,
                          (const uint16_t *)(const void *)phiq_kv_row(kv, 1, j->layer, k0) + off, (size_t)kv->dim, n,
                          states + (size_t)t0 * SS, bws, hd);
        t0 = t1;
    }
}

/* Head mode (prefill): thread ith takes a range of heads; per head, tiles
 * of positions, and every token of the batch folds the part of the tile it
 * sees (causal, sliding window) into its state (per-thread scratch). */
static void phiq_attn_head_task(void *arg, int ith, int nth) {
    phiq_attn_job *j = arg;
    phiq_context *ctx = j->ctx;
    const phiq_hparams *hp = &ctx->m->hp;
    const int hd = hp->head_dim, nh = hp->n_head, nq = nh * hd;
    const size_t SS = PHIQ_ATTN_STATE(hd);
    const phiq_attn_kernels *ak = phiq_attn_kernels_get();
    float *s = ctx->attn_ws + (size_t)ith * ctx->attn_ws_stride, *states = s + PHIQ_ATTN_TILE;
    int *lo = (int *)(void *)(states + (size_t)ctx->n_batch * SS), *hi = lo + ctx->n_batch;
    float *bws = (float *)(((uintptr_t)(hi + ctx->n_batch) + 63) & ~(uintptr_t)63);
    const bool block = ak->block_f16 && j->kv[0]->type == PHIQ_GGML_TYPE_F16;
    int kmin = j->pos[0], kmax = j->pos[0];
    for (int t = 0; t < j->n; t++) {
        const int f = attn_first(ctx, j->pos[t]);
        if (f < kmin) kmin = f;
        if (j->pos[t] > kmax) kmax = j->pos[t];
    }
    long hlo, hhi;
    phiq_split(nh, ith, nth, &hlo, &hhi);
    for (int h = (int)hlo; h < (int)hhi; h++) {
        for (int t = 0; t < j->n; t++) phiq_attn_state_init(states + t * SS, hd);
        for (int k0 = kmin; k0 <= kmax; k0 += PHIQ_ATTN_TILE) {
            const int k1 = k0 + PHIQ_ATTN_TILE;
            if (block) {
                attn_block_f16(j, ak, h, k0, lo, hi, states, bws, s);
                continue;
            }
            for (int t = 0; t < j->n; t++) {
                const int f = attn_first(ctx, j->pos[t]), a = k0 > f ? k0 : f, b = k1 < j->pos[t] + 1 ? k1 : j->pos[t] + 1;
                if (a < b) attn_span(j, ak, t, h, a, b - a, states + t * SS, s);
            }
        }
        for (int t = 0; t < j->n; t++) attn_finish(j->kv[t], states + t * SS, j->out + (size_t)t * nq + (size_t)h * hd, hd);
    }
}

/* The f32 cache (tests and references, not a speed path): one (token,
 * head) pair per work item, scores in a per-thread row of n_ctx floats. */
static void phiq_attn_f32_task(void *arg, int ith, int nth) {
    phiq_attn_job *j = arg;
    phiq_context *ctx = j->ctx;
    const phiq_hparams *hp = &ctx->m->hp;
    int hd = hp->head_dim, nh = hp->n_head, nkv = hp->n_head_kv;
    int nq = nh * hd, nk = nkv * hd, group = nh / nkv;
    float scale = attn_scale(hp);
    const bool sparse = hp->arch == PHIQ_ARCH_PHI3SMALL && !phiq_phi3small_dense(hp, j->layer);
    float *s = ctx->scores + (size_t)ith * (size_t)ctx->n_ctx;
    long lo, hi;
    phiq_split((long)j->n * nh, ith, nth, &lo, &hi);
    for (long it = lo; it < hi; it++) {
        int t = (int)(it / nh), h = (int)(it % nh);
        int p = j->pos[t];
        const phiq_kv *kv = j->kv[t];
        int first = attn_first(ctx, p);
        const float *q = j->qkv + (size_t)t * (size_t)(nq + 2 * nk) + (size_t)h * hd;
        int off = (h / group) * hd;
        float *o = j->out + (size_t)t * nq + (size_t)h * hd;
        if (sparse) { /* any cache type: the block-sparse layout is not a contiguous span */
            phiq_phi3small_attn_head(hp, kv, j->layer, h, p, q, scale, s, ctx->p3s_tmp + (size_t)ith * 2 * hd, o);
            continue;
        }
        for (int k = first; k <= p; k++) s[k - first] = phiq_kv_dot_k(kv, j->layer, k, off, q, hd) * scale;
        phiq_softmax(s, p - first + 1);
        memset(o, 0, (size_t)hd * sizeof(float));
        for (int k = first; k <= p; k++) phiq_kv_axpy_v(kv, j->layer, k, off, s[k - first], o, hd);
    }
}

/* Attention of the batch's n tokens (their K and V already stored). Few
 * tokens (decode): split over the sequence, partial states merged here;
 * more: split over heads. */
static void phiq_attention(phiq_context *ctx, phiq_attn_job *j) {
    const phiq_hparams *hp = &ctx->m->hp;
    const int hd = hp->head_dim, nh = hp->n_head, nth = ctx->n_threads;
    /* Phi-3-small's block-sparse layers take the per-head path whatever the cache */
    if (ctx->kv.type == PHIQ_GGML_TYPE_F32 || (hp->arch == PHIQ_ARCH_PHI3SMALL && !phiq_phi3small_dense(hp, j->layer))) {
        phiq_threadpool_run(ctx->tp, phiq_attn_f32_task, j);
        return;
    }
    if (ctx->kv.type == PHIQ_GGML_TYPE_Q8_0) phiq_threadpool_run(ctx->tp, phiq_attn_prep_q8, j);
    if (j->n > nth) {
        phiq_threadpool_run(ctx->tp, phiq_attn_head_task, j);
        return;
    }
    j->cpt = nth / j->n;
    phiq_threadpool_run_chunks(ctx->tp, phiq_attn_split_task, j, j->n * j->cpt);
    const size_t SS = PHIQ_ATTN_STATE(hd);
    for (int t = 0; t < j->n; t++)
        for (int h = 0; h < nh; h++) {
            float *st = ctx->attn_part + (size_t)t * j->cpt * ctx->attn_part_stride + h * SS;
            for (int c = 1; c < j->cpt; c++) phiq_attn_state_merge(st, st + (size_t)c * ctx->attn_part_stride, hd);
            attn_finish(j->kv[t], st, j->out + (size_t)t * nh * hd + (size_t)h * hd, hd);
        }
}

/* The block's normalization: phi2 LayerNorm; phi3 RMSNorm (plus a bias if
 * the file has one); phimoe LayerNorm as Hugging Face defines it, or
 * llama.cpp's RMSNorm plus bias. */
static void phiq_norm(const phiq_context *ctx, float *y, const float *x, const float *w, const float *b) {
    const phiq_hparams *hp = &ctx->m->hp;
    const int E = hp->n_embd;
    if (hp->arch == PHIQ_ARCH_PHI2 || hp->arch == PHIQ_ARCH_PHI3SMALL || (hp->arch == PHIQ_ARCH_PHIMOE && !ctx->phimoe_llamacpp)) {
        phiq_layernorm(y, x, w, b, E, hp->norm_eps);
        return;
    }
    phiq_rmsnorm(y, x, w, E, hp->norm_eps);
    if (b)
        for (int i = 0; i < E; i++) y[i] += b[i];
}

/* PhiMoE routing of one token: picks n_used experts and their weights.
 * llama.cpp: softmax over all, top-k, renormalized. Hugging Face
 * (SparseMixer, top-2): each pick is a softmax over the logits within a 2%
 * relative threshold of the current maximum, evaluated at the argmax; the
 * first pick is excluded from the second; weights are not renormalized. */
static void phiq_route(const phiq_context *ctx, const float *logit, int n_exp, int n_used, int *sel, float *w) {
    if (ctx->phimoe_llamacpp) {
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < n_exp; j++) mx = fmax(mx, logit[j]);
        for (int j = 0; j < n_exp; j++) sum += exp(logit[j] - mx);
        double tot = 0;
        for (int k = 0; k < n_used; k++) {
            int best = -1;
            for (int j = 0; j < n_exp; j++) {
                bool taken = false;
                for (int q = 0; q < k; q++) taken |= sel[q] == j;
                if (!taken && (best < 0 || logit[j] > logit[best])) best = j;
            }
            sel[k] = best;
            w[k] = (float)(exp(logit[best] - mx) / sum);
            tot += w[k];
        }
        for (int k = 0; k < n_used; k++) w[k] = (float)(w[k] / tot);
        return;
    }
    const float eps2 = 2 * ctx->m->hp.router_jitter; /* sparsemixer's 2 x jitter_eps, in float32 as torch */
    for (int k = 0; k < 2 && k < n_used; k++) {
        int arg = -1;
        for (int j = 0; j < n_exp; j++) {
            if (k == 1 && j == sel[0]) continue;
            if (arg < 0 || logit[j] > logit[arg]) arg = j;
        }
        float m = logit[arg];
        double sum = 0;
        for (int j = 0; j < n_exp; j++) {
            if (k == 1 && j == sel[0]) continue;
            float factor = fabsf(logit[j]) > m ? fabsf(logit[j]) : m;
            if ((m - logit[j]) / factor > eps2) continue; /* masked */
            sum += exp((double)logit[j] - m);
        }
        sel[k] = arg;
        w[k] = (float)(1.0 / sum);
    }
}

/* x += mixture of experts over the normalized rows in ctx->h. */
static int phiq_moe(phiq_context *ctx, const phiq_layer *ly, int n) {
    const phiq_hparams *hp = &ctx->m->hp;
    const int E = hp->n_embd, F = hp->n_ff, X = hp->n_expert, U = hp->n_expert_used;
    float *logits = ctx->moe + (size_t)ctx->n_batch * E; /* [n][X] */
    int rc;
    if ((rc = phiq_mm(ctx, &ly->gate_inp, ctx->h, E, n, logits, X, NULL)) < 0) return rc;
    int sel[PHIQ_MAX_EXPERT_USED];
    float w[PHIQ_MAX_EXPERT_USED];
    for (int t = 0; t < n; t++) {
        float *acc = ctx->moe + (size_t)t * E, *g = ctx->ffn + (size_t)t * 2 * F, *y = ctx->tmp + (size_t)t * E;
        const float *h = ctx->h + (size_t)t * E;
        memset(acc, 0, (size_t)E * sizeof(float));
        phiq_route(ctx, logits + (size_t)t * X, X, U, sel, w);
        for (int k = 0; k < U; k++) {
            int e = sel[k];
            if ((rc = phiq_mm(ctx, &ly->exp_gate[e], h, E, 1, g, F, NULL)) < 0) return rc;
            if ((rc = phiq_mm(ctx, &ly->exp_up[e], h, E, 1, g + F, F, NULL)) < 0) return rc;
            phiq_swiglu(g, g, g + F, F);
            if ((rc = phiq_mm(ctx, &ly->exp_down[e], g, F, 1, y, E, NULL)) < 0) return rc;
            for (int i = 0; i < E; i++) acc[i] += w[k] * y[i];
        }
        float *x = ctx->x + (size_t)t * E;
        for (int i = 0; i < E; i++) x[i] += acc[i];
    }
    return 0;
}

int phiq_forward_batch(phiq_context *ctx, const phiq_fwd_batch *b, float *out) {
    const phiq_model *m = ctx->m;
    const phiq_hparams *hp = &m->hp;
    const bool phi2 = hp->arch == PHIQ_ARCH_PHI2, p3s = hp->arch == PHIQ_ARCH_PHI3SMALL;
    const int E = hp->n_embd, hd = hp->head_dim, nh = hp->n_head, nkv = hp->n_head_kv;
    const int nq = nh * hd, nk = nkv * hd, ldqkv = nq + 2 * nk, F = hp->n_ff, nr2 = hp->n_rot / 2;
    const int ldffn = phi2 ? F : 2 * F;
    const int n = b->n;
    int rc;
    if (n <= 0 || n > ctx->n_batch) return phiq_fail(PHIQ_EINVAL, "forward: batch of %d tokens (max %d)", n, ctx->n_batch);
    for (int t = 0; t < n; t++) {
        if (b->pos[t] < 0 || b->pos[t] >= b->kv[t]->n_ctx || b->pos[t] >= ctx->n_ctx)
            return phiq_fail(PHIQ_ERANGE, "context full: position %d >= n_ctx %d", b->pos[t], b->kv[t]->n_ctx);
        if (b->kv[t]->type != ctx->kv.type || b->kv[t]->dim != ctx->kv.dim)
            return phiq_fail(PHIQ_EINVAL, "forward: a sequence's cache does not match its context");
    }

    for (int t = 0; t < n; t++) {
        const int32_t id = b->ids[t];
        if (id < 0 || id >= hp->n_vocab)
            return phiq_fail(PHIQ_ERANGE, "token id %d out of range [0, %d)", id, hp->n_vocab);
        if (ctx->fwd_x_in) continue; /* calibration resumes from a saved residual stream */
        rc = phiq_row_to_f32(m->tok_embd.type, (const uint8_t *)m->tok_embd.data + (size_t)id * m->tok_embd.row_bytes,
                                 ctx->x + (size_t)t * E, E);
        if (rc < 0) return rc;
        if (p3s && hp->emb_mult > 0)
            for (int i = 0; i < E; i++) ctx->x[(size_t)t * E + i] *= hp->emb_mult; /* muP embedding multiplier */
    }
    if (ctx->fwd_x_in) memcpy(ctx->x, ctx->fwd_x_in, (size_t)n * E * sizeof(float));
    const int l_end = ctx->fwd_l1 > 0 && ctx->fwd_l1 < hp->n_layer ? ctx->fwd_l1 : hp->n_layer;
    for (int t = 0; t < n; t++) {
        const float *factors = NULL;
        if (hp->n_rope_factors > 0) factors = b->long_f[t] ? hp->rope_long : hp->rope_short;
        /* PhiMoE: long_mscale with the long factors */
        /* phi3small: rope_position_scale multiplies the positions (float32, as its cos/sin cache) */
        double pos = p3s ? (double)((float)b->pos[t] * hp->rope_pos_scale) : (double)b->pos[t];
        phiq_rope_table(ctx->rope_cos + (size_t)t * nr2, ctx->rope_sin + (size_t)t * nr2, hp->n_rot, pos,
                        hp->rope_theta, factors, b->long_f[t] ? hp->rope_attn_factor_long : hp->rope_attn_factor);
    }

    for (int L = ctx->fwd_l0; L < l_end; L++) {
        const phiq_layer *ly = &m->layers[L];
        for (int t = 0; t < n; t++) {
            float *h = ctx->h + (size_t)t * E;
            const float *x = ctx->x + (size_t)t * E;
            phiq_norm(ctx, h, x, ly->attn_norm, ly->attn_norm_b);
        }
        if (ly->fused_qkv) {
            if ((rc = phiq_mm(ctx, &ly->qkv, ctx->h, E, n, ctx->qkv, ldqkv, ly->qkv_b)) < 0) return rc;
            for (int t = 0; p3s && t < n; t++) /* KV-group-major -> Q | K | V; the spare row is scratch */
                phiq_phi3small_regroup_qkv(hp, ctx->qkv + (size_t)t * ldqkv, ctx->qkv + (size_t)ctx->n_batch * ldqkv);
        } else {
            if ((rc = phiq_mm(ctx, &ly->q, ctx->h, E, n, ctx->qkv, ldqkv, ly->q_b)) < 0) return rc;
            if ((rc = phiq_mm(ctx, &ly->k, ctx->h, E, n, ctx->qkv + nq, ldqkv, ly->k_b)) < 0) return rc;
            if ((rc = phiq_mm(ctx, &ly->v, ctx->h, E, n, ctx->qkv + nq + nk, ldqkv, ly->v_b)) < 0) return rc;
        }
        for (int t = 0; t < n; t++) {
            float *q = ctx->qkv + (size_t)t * ldqkv, *k = q + nq, *v = k + nk;
            const float *c = ctx->rope_cos + (size_t)t * nr2, *s = ctx->rope_sin + (size_t)t * nr2;
            phiq_kv *kv = b->kv[t];
            for (int h = 0; h < nh; h++) phiq_rope_neox(q + h * hd, hp->n_rot, c, s);
            for (int h = 0; h < nkv; h++) phiq_rope_neox(k + h * hd, hp->n_rot, c, s);
            /* Q8_0 cache: rotate as llama.cpp before quantizing (the chunk
             * sizes divide head_dim, so chunks never straddle heads); k and
             * v here are only read by the store */
            for (int i = 0; kv->rot_k && i < nk; i += kv->rot_k) phiq_attn_fwht(k + i, kv->rot_k);
            for (int i = 0; kv->rot_v && i < nk; i += kv->rot_v) phiq_attn_fwht(v + i, kv->rot_v);
            phiq_kv_store(kv, L, b->pos[t], k, v);
        }
        /* every row of this layer is stored before any attends: a prefill
         * chunk's tokens see each other */
        phiq_attn_job aj = {ctx, L, n, b->pos, b->kv, ctx->qkv, ctx->att, 0};
        const double ta = ctx->prof ? phiq_now() : 0;
        phiq_attention(ctx, &aj);
        if (ctx->prof) ctx->prof->attn += phiq_now() - ta;
        if ((rc = phiq_mm(ctx, &ly->wo, ctx->att, nq, n, ctx->tmp, E, ly->wo_b)) < 0) return rc;

        if (phi2) {
            /* parallel block: the MLP reads the same LayerNorm output h */
            if ((rc = phiq_mm(ctx, &ly->up, ctx->h, E, n, ctx->ffn, ldffn, ly->up_b)) < 0) return rc;
            phiq_gelu_lut(ctx->ffn, (int64_t)n * F, m->gelu_table);
            if ((rc = phiq_mm(ctx, &ly->down, ctx->ffn, ldffn, n, ctx->h, E, ly->down_b)) < 0) return rc;
            for (size_t i = 0; i < (size_t)n * E; i++) ctx->x[i] += ctx->tmp[i] + ctx->h[i];
        } else {
            for (size_t i = 0; i < (size_t)n * E; i++) ctx->x[i] += ctx->tmp[i];
            for (int t = 0; t < n; t++) {
                phiq_norm(ctx, ctx->h + (size_t)t * E, ctx->x + (size_t)t * E, ly->ffn_norm, ly->ffn_norm_b);
            }
            if (hp->arch == PHIQ_ARCH_PHIMOE) {
                if ((rc = phiq_moe(ctx, ly, n)) < 0) return rc;
                continue;
            }
            if ((rc = phiq_mm(ctx, &ly->up, ctx->h, E, n, ctx->ffn, ldffn, ly->up_b)) < 0) return rc;
            for (int t = 0; t < n; t++) {
                float *g = ctx->ffn + (size_t)t * ldffn;
                if (p3s) phiq_phi3small_gegelu(g, F, hp->gegelu_limit); /* even columns gelu, odd linear */
                else phiq_swiglu(g, g, g + F, F); /* first half gate, second half up */
            }
            if ((rc = phiq_mm(ctx, &ly->down, ctx->ffn, ldffn, n, ctx->tmp, E, ly->down_b)) < 0) return rc;
            for (size_t i = 0; i < (size_t)n * E; i++) ctx->x[i] += ctx->tmp[i];
        }
    }
    if (ctx->fwd_x_out) memcpy(ctx->fwd_x_out, ctx->x, (size_t)n * E * sizeof(float));
    if (!out || b->n_out <= 0 || l_end < hp->n_layer) return 0;
    /* the selected rows, normalized into consecutive rows of h (row k <=
     * out_rows[k], and h is free now), go through the output matrix together */
    for (int k = 0; k < b->n_out; k++) {
        int t = b->out_rows[k];
        if (t < 0 || t >= n) return phiq_fail(PHIQ_EINVAL, "forward: output row %d not in the batch", t);
        phiq_norm(ctx, ctx->h + (size_t)k * E, ctx->x + (size_t)t * E, m->output_norm, m->output_norm_b);
    }
    if ((rc = phiq_mm(ctx, &m->output, ctx->h, E, b->n_out, out, hp->n_vocab, m->output_b)) < 0) return rc;
    if (p3s) phiq_phi3small_logits(hp, out, b->n_out, hp->n_vocab);
    return 0;
}

int phiq_forward(phiq_context *ctx, const int32_t *ids, int n, int long_f, float *out, int out_first) {
    if (n <= 0 || n > ctx->n_batch) return phiq_fail(PHIQ_EINVAL, "forward: batch of %d tokens (max %d)", n, ctx->n_batch);
    if (ctx->pos + n > ctx->n_ctx)
        return phiq_fail(PHIQ_ERANGE, "context full: %d + %d tokens > n_ctx %d", ctx->pos, n, ctx->n_ctx);
    for (int t = 0; t < n; t++) {
        ctx->fb_pos[t] = ctx->pos + t;
        ctx->fb_kv[t] = &ctx->kv;
        ctx->fb_long[t] = (uint8_t)(long_f != 0);
    }
    int n_out = 0;
    for (int t = out_first; out && t < n; t++) ctx->fb_rows[n_out++] = t;
    phiq_fwd_batch b = {ids, ctx->fb_pos, ctx->fb_kv, ctx->fb_long, n, ctx->fb_rows, n_out};
    int rc = phiq_forward_batch(ctx, &b, out);
    if (rc < 0) return rc;
    ctx->pos += n;
    return 0;
}
