/* seq.c — sequences (include/phiq.h phiq_seq_*): one KV cache per
 * conversation, evaluated several at a time through one context's forward
 * pass (phiq_forward_batch) so that the weights are read once per pass for
 * all of them. The LongRoPE factor rule is phiq_eval's (api.c), per
 * sequence. */
#include <stdlib.h>

#include "core/common.h"
#include "model/model.h"

struct phiq_seq {
    phiq_context *ctx;
    phiq_kv kv;
    int pos;
    int32_t *tokens;  /* [n_ctx] ids at each cached position (for re-prefill) */
    int cache_long;   /* factor set the cached keys were rotated with */
    float *logits;    /* [n_vocab] of the last evaluated token */
    int has_logits;
};

phiq_seq *phiq_seq_new(phiq_context *ctx) {
    if (!ctx) return phiq_fail_null(PHIQ_EINVAL, "seq: context is NULL");
    const phiq_hparams *hp = &ctx->m->hp;
    phiq_seq *s = calloc(1, sizeof *s);
    if (!s) return phiq_fail_null(PHIQ_ENOMEM, "seq: out of memory");
    s->ctx = ctx;
    s->cache_long = ctx->rope_mode == PHIQ_ROPE_MODE_LLAMACPP ? ctx->cache_long : 0;
    if (phiq_kv_init(&s->kv, ctx->kv.type, hp->n_layer, ctx->n_ctx, ctx->kv.dim, hp->head_dim) < 0) {
        free(s);
        return NULL;
    }
    s->tokens = malloc((size_t)ctx->n_ctx * sizeof(int32_t));
    s->logits = malloc((size_t)hp->n_vocab * sizeof(float));
    if (!s->tokens || !s->logits) {
        phiq_seq_free(s);
        return phiq_fail_null(PHIQ_ENOMEM, "seq: out of memory");
    }
    return s;
}

void phiq_seq_free(phiq_seq *s) {
    if (!s) return;
    phiq_kv_free(&s->kv);
    free(s->tokens);
    free(s->logits);
    free(s);
}

int phiq_seq_pos(const phiq_seq *s) { return s ? s->pos : PHIQ_EINVAL; }

int phiq_seq_truncate(phiq_seq *s, int pos) {
    if (!s) return phiq_fail(PHIQ_EINVAL, "seq truncate: sequence is NULL");
    if (pos < 0 || pos > s->pos) return phiq_fail(PHIQ_ERANGE, "seq truncate: position %d not in [0, %d]", pos, s->pos);
    s->pos = pos;
    s->has_logits = 0;
    return 0;
}

const float *phiq_seq_logits(const phiq_seq *s) {
    if (!s || !s->has_logits) return phiq_fail_null(PHIQ_EINVAL, "seq logits: nothing evaluated yet");
    return s->logits;
}

/* Re-rotates the cached keys of [0, n) with the factor set long_f (the
 * sequence just crossed the original context, as phiq_eval does). */
static int seq_reprefill(phiq_context *ctx, phiq_seq *s, int n, int long_f) {
    for (int c = 0; c < n; c += ctx->n_batch) {
        int cn = n - c < ctx->n_batch ? n - c : ctx->n_batch;
        for (int t = 0; t < cn; t++) {
            ctx->fb_pos[t] = c + t;
            ctx->fb_kv[t] = &s->kv;
            ctx->fb_long[t] = (uint8_t)long_f;
        }
        phiq_fwd_batch b = {s->tokens + c, ctx->fb_pos, ctx->fb_kv, ctx->fb_long, cn, NULL, 0};
        int rc = phiq_forward_batch(ctx, &b, NULL);
        if (rc < 0) return rc;
    }
    return 0;
}

int phiq_seq_eval_batch(phiq_context *ctx, const phiq_seq_item *items, int n_items) {
    if (!ctx || n_items < 0 || (n_items > 0 && !items)) return phiq_fail(PHIQ_EINVAL, "seq eval: bad arguments");
    const phiq_hparams *hp = &ctx->m->hp;
    const int V = hp->n_vocab;
    for (int i = 0; i < n_items; i++) {
        const phiq_seq_item *it = &items[i];
        if (!it->seq || it->seq->ctx != ctx || it->n <= 0 || !it->ids)
            return phiq_fail(PHIQ_EINVAL, "seq eval: item %d has no tokens or belongs to another context", i);
        if (it->n > ctx->n_ctx - it->seq->pos)
            return phiq_fail(PHIQ_ERANGE, "seq eval: context full (%d cached + %d new > n_ctx %d)", it->seq->pos, it->n,
                             ctx->n_ctx);
        for (int j = 0; j < i; j++)
            if (items[j].seq == it->seq) return phiq_fail(PHIQ_EINVAL, "seq eval: a sequence appears twice in one batch");
        for (int k = 0; k < it->n; k++)
            if (it->ids[k] < 0 || it->ids[k] >= V)
                return phiq_fail(PHIQ_ERANGE, "seq eval: token id %d out of range [0, %d)", it->ids[k], V);
    }
    /* LongRoPE factor per sequence, as phiq_eval decides it for one context */
    uint8_t *long_f = malloc((size_t)(n_items ? n_items : 1));
    /* a pass yields logits for at most one row per item */
    float *out = malloc((size_t)(n_items < ctx->n_batch ? n_items : ctx->n_batch) * (size_t)V * sizeof(float) + 1);
    int *item_of = malloc((size_t)ctx->n_batch * sizeof(int));
    int32_t *ids = malloc((size_t)ctx->n_batch * sizeof(int32_t)); /* one pass's ids, from several items */
    int rc = 0;
    if (!long_f || !out || !item_of || !ids) {
        rc = phiq_fail(PHIQ_ENOMEM, "seq eval: out of memory");
        goto done;
    }
    for (int i = 0; i < n_items; i++) {
        phiq_seq *s = items[i].seq;
        long_f[i] = (uint8_t)s->cache_long;
        if (ctx->rope_mode == PHIQ_ROPE_MODE_HF) {
            long_f[i] = hp->n_rope_factors > 0 && s->pos + items[i].n > hp->n_ctx_orig;
            if (long_f[i] != s->cache_long && s->pos > 0 && (rc = seq_reprefill(ctx, s, s->pos, long_f[i])) < 0) {
                s->pos = 0; /* its cache is no longer trustworthy */
                goto done;
            }
            s->cache_long = long_f[i];
        }
    }
    /* the items' tokens one after another, cut into passes of n_batch */
    int i = 0, k = 0; /* next token: items[i].ids[k] */
    while (i < n_items) {
        int n = 0, n_out = 0;
        while (i < n_items && n < ctx->n_batch) {
            phiq_seq *s = items[i].seq;
            int take = items[i].n - k < ctx->n_batch - n ? items[i].n - k : ctx->n_batch - n;
            for (int t = 0; t < take; t++) {
                ctx->fb_pos[n + t] = s->pos + k + t;
                ctx->fb_kv[n + t] = &s->kv;
                ctx->fb_long[n + t] = long_f[i];
                s->tokens[s->pos + k + t] = ids[n + t] = items[i].ids[k + t];
            }
            n += take;
            k += take;
            if (k == items[i].n) { /* the item's last token: its logits are wanted */
                item_of[n_out] = i;
                ctx->fb_rows[n_out++] = n - 1;
                i++;
                k = 0;
            }
        }
        phiq_fwd_batch b = {ids, ctx->fb_pos, ctx->fb_kv, ctx->fb_long, n, ctx->fb_rows, n_out};
        rc = phiq_forward_batch(ctx, &b, out);
        if (rc < 0) goto done;
        for (int o = 0; o < n_out; o++) {
            phiq_seq *s = items[item_of[o]].seq;
            memcpy(s->logits, out + (size_t)o * V, (size_t)V * sizeof(float));
        }
    }
    for (int j = 0; j < n_items; j++) {
        items[j].seq->pos += items[j].n;
        items[j].seq->has_logits = 1;
    }
done:
    free(long_f);
    free(out);
    free(item_of);
    free(ids);
    return rc;
}
