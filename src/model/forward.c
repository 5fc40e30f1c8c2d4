/* forward.c — the Phi forward pass on CPU for one batch of tokens:
 * phi3 (Phi-3/3.5/4/4-mini: RMSNorm, fused Q|K|V, GQA, NeoX RoPE on the first
 * n_rot dims with LongRoPE factors and attention factor, optional sliding
 * window, SwiGLU gate-first) and phi2 (Phi-1.5/2: one LayerNorm feeding
 * attention and MLP in parallel, biases everywhere, GELU through ggml's fp16
 * table, partial rotary). Semantics: docs/reference/phi-family-architecture.md
 * §2a/§2b and llamacpp-gguf-quant.md §2.2/§2.3. */
#include <math.h>
#include <stdlib.h>

#include "core/common.h"
#include "formats/ggml_type.h"
#include "model/model.h"

typedef struct {
    phiq_context *ctx;
    int layer, n, p0;
    const float *qkv; /* [n][nq + 2 nkv] after RoPE */
    float *out;       /* [n][nq] */
} phiq_attn_job;

/* One (token, head) pair per work item; each thread owns a score row. */
static void phiq_attn_task(void *arg, int ith, int nth) {
    phiq_attn_job *j = arg;
    phiq_context *ctx = j->ctx;
    const phiq_hparams *hp = &ctx->m->hp;
    int hd = hp->head_dim, nh = hp->n_head, nkv = hp->n_head_kv;
    int nq = nh * hd, nk = nkv * hd, group = nh / nkv;
    float scale = 1.0f / sqrtf((float)hd);
    float *s = ctx->scores + (size_t)ith * (size_t)ctx->n_ctx;
    long lo, hi;
    phiq_split((long)j->n * nh, ith, nth, &lo, &hi);
    for (long it = lo; it < hi; it++) {
        int t = (int)(it / nh), h = (int)(it % nh);
        int p = j->p0 + t;
        int first = 0;
        /* Hugging Face's sliding mask: key k visible to query p iff p - W < k <= p. */
        if (ctx->window > 0 && p - ctx->window + 1 > 0) first = p - ctx->window + 1;
        const float *q = j->qkv + (size_t)t * (size_t)(nq + 2 * nk) + (size_t)h * hd;
        int off = (h / group) * hd;
        for (int k = first; k <= p; k++) s[k - first] = phiq_kv_dot_k(&ctx->kv, j->layer, k, off, q, hd) * scale;
        phiq_softmax(s, p - first + 1);
        float *o = j->out + (size_t)t * nq + (size_t)h * hd;
        memset(o, 0, (size_t)hd * sizeof(float));
        for (int k = first; k <= p; k++) phiq_kv_axpy_v(&ctx->kv, j->layer, k, off, s[k - first], o, hd);
    }
}

/* y = W x (+ b) for T rows, with llama.cpp's input rounding when asked. */
static int phiq_mm(phiq_context *ctx, const phiq_mat *w, const float *x, int64_t ldx, int T, float *y, int64_t ldy,
                   const float *bias) {
    if (ctx->llamacpp_numerics && w->type != PHIQ_GGML_TYPE_F32) {
        int rc = phiq_act_round(w->type, x, ldx, T, w->n_in, ctx->act, ctx->act_q);
        if (rc < 0) return rc;
        x = ctx->act;
        ldx = w->n_in;
    }
    phiq_matmul(ctx->tp, w, x, ldx, T, y, ldy, bias, ctx->mm_scratch);
    return 0;
}

int phiq_forward(phiq_context *ctx, const int32_t *ids, int n, int long_f, float *out, int out_first) {
    const phiq_model *m = ctx->m;
    const phiq_hparams *hp = &m->hp;
    const bool phi2 = hp->arch == PHIQ_ARCH_PHI2;
    const int E = hp->n_embd, hd = hp->head_dim, nh = hp->n_head, nkv = hp->n_head_kv;
    const int nq = nh * hd, nk = nkv * hd, ldqkv = nq + 2 * nk, F = hp->n_ff, nr2 = hp->n_rot / 2;
    const int ldffn = phi2 ? F : 2 * F;
    const int p0 = ctx->pos;
    int rc;
    if (n <= 0 || n > ctx->n_batch) return phiq_fail(PHIQ_EINVAL, "forward: batch of %d tokens (max %d)", n, ctx->n_batch);
    if (p0 + n > ctx->n_ctx) return phiq_fail(PHIQ_ERANGE, "context full: %d + %d tokens > n_ctx %d", p0, n, ctx->n_ctx);

    for (int t = 0; t < n; t++) {
        if (ids[t] < 0 || ids[t] >= hp->n_vocab)
            return phiq_fail(PHIQ_ERANGE, "token id %d out of range [0, %d)", ids[t], hp->n_vocab);
        rc = phiq_row_to_f32(m->tok_embd.type, (const uint8_t *)m->tok_embd.data + (size_t)ids[t] * m->tok_embd.row_bytes,
                                 ctx->x + (size_t)t * E, E);
        if (rc < 0) return rc;
    }
    const float *factors = NULL;
    if (hp->n_rope_factors > 0) factors = long_f ? hp->rope_long : hp->rope_short;
    for (int t = 0; t < n; t++)
        phiq_rope_table(ctx->rope_cos + (size_t)t * nr2, ctx->rope_sin + (size_t)t * nr2, hp->n_rot, (double)(p0 + t),
                        hp->rope_theta, factors, hp->rope_attn_factor);

    for (int L = 0; L < hp->n_layer; L++) {
        const phiq_layer *ly = &m->layers[L];
        for (int t = 0; t < n; t++) {
            float *h = ctx->h + (size_t)t * E;
            const float *x = ctx->x + (size_t)t * E;
            if (phi2) phiq_layernorm(h, x, ly->attn_norm, ly->attn_norm_b, E, hp->norm_eps);
            else {
                phiq_rmsnorm(h, x, ly->attn_norm, E, hp->norm_eps);
                if (ly->attn_norm_b)
                    for (int i = 0; i < E; i++) h[i] += ly->attn_norm_b[i];
            }
        }
        if (ly->fused_qkv) {
            if ((rc = phiq_mm(ctx, &ly->qkv, ctx->h, E, n, ctx->qkv, ldqkv, ly->qkv_b)) < 0) return rc;
        } else {
            if ((rc = phiq_mm(ctx, &ly->q, ctx->h, E, n, ctx->qkv, ldqkv, ly->q_b)) < 0) return rc;
            if ((rc = phiq_mm(ctx, &ly->k, ctx->h, E, n, ctx->qkv + nq, ldqkv, ly->k_b)) < 0) return rc;
            if ((rc = phiq_mm(ctx, &ly->v, ctx->h, E, n, ctx->qkv + nq + nk, ldqkv, ly->v_b)) < 0) return rc;
        }
        for (int t = 0; t < n; t++) {
            float *q = ctx->qkv + (size_t)t * ldqkv, *k = q + nq, *v = k + nk;
            const float *c = ctx->rope_cos + (size_t)t * nr2, *s = ctx->rope_sin + (size_t)t * nr2;
            for (int h = 0; h < nh; h++) phiq_rope_neox(q + h * hd, hp->n_rot, c, s);
            for (int h = 0; h < nkv; h++) phiq_rope_neox(k + h * hd, hp->n_rot, c, s);
            phiq_kv_store(&ctx->kv, L, p0 + t, k, v);
        }
        phiq_attn_job aj = {ctx, L, n, p0, ctx->qkv, ctx->att};
        phiq_threadpool_run(ctx->tp, phiq_attn_task, &aj);
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
                float *h = ctx->h + (size_t)t * E;
                phiq_rmsnorm(h, ctx->x + (size_t)t * E, ly->ffn_norm, E, hp->norm_eps);
                if (ly->ffn_norm_b)
                    for (int i = 0; i < E; i++) h[i] += ly->ffn_norm_b[i];
            }
            if ((rc = phiq_mm(ctx, &ly->up, ctx->h, E, n, ctx->ffn, ldffn, ly->up_b)) < 0) return rc;
            for (int t = 0; t < n; t++) {
                float *g = ctx->ffn + (size_t)t * ldffn;
                phiq_swiglu(g, g, g + F, F); /* first half gate, second half up */
            }
            if ((rc = phiq_mm(ctx, &ly->down, ctx->ffn, ldffn, n, ctx->tmp, E, ly->down_b)) < 0) return rc;
            for (size_t i = 0; i < (size_t)n * E; i++) ctx->x[i] += ctx->tmp[i];
        }
    }
    ctx->pos = p0 + n;
    if (!out || out_first >= n) return 0;
    for (int t = out_first; t < n; t++) {
        float *h = ctx->h + (size_t)t * E;
        const float *x = ctx->x + (size_t)t * E;
        if (phi2 || m->output_norm_b) {
            if (phi2) phiq_layernorm(h, x, m->output_norm, m->output_norm_b, E, hp->norm_eps);
            else {
                phiq_rmsnorm(h, x, m->output_norm, E, hp->norm_eps);
                for (int i = 0; i < E; i++) h[i] += m->output_norm_b[i];
            }
        } else {
            phiq_rmsnorm(h, x, m->output_norm, E, hp->norm_eps);
        }
    }
    if ((rc = phiq_mm(ctx, &m->output, ctx->h + (size_t)out_first * E, E, n - out_first, out, hp->n_vocab, m->output_b)) < 0)
        return rc;
    return 0;
}
