/* perplexity.c — perplexity and KL divergence with llama-perplexity's
 * chunking and scoring conventions (see eval.h). */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "core/common.h"
#include "eval/eval.h"
#include "kernels/ops.h"

/* The scoring of positions [j0, j1) of a chunk (next token chunk[j + 1]):
 * NLL, and with a reference its NLL, KL(ref || model) and top-1 agreement;
 * results at out[j - j0]. pref: n_vocab doubles of scratch. */
typedef struct score_job {
    const phiq_context *ctx, *rctx;
    const int32_t *chunk;
    int n_vocab, j0, j1;
    double *nlls, *ref_nlls, *klds, *pref;
    int64_t same_top;
} score_job;

static void score_range(score_job *s) {
    const int n_vocab = s->n_vocab;
    for (int j = s->j0; j < s->j1; j++) {
        const int i = j - s->j0, next = s->chunk[j + 1];
        const float *lg = phiq_logits_at(s->ctx, j);
        int am;
        const double lse = phiq_row_logsumexp(lg, n_vocab, &am, NULL);
        s->nlls[i] = lse - lg[next];
        if (!s->rctx) continue;
        const float *rl = phiq_logits_at(s->rctx, j);
        int ram;
        const double rlse = phiq_row_logsumexp(rl, n_vocab, &ram, s->pref);
        s->ref_nlls[i] = rlse - rl[next];
        /* KL(ref || model) = sum p_ref (log p_ref - log p_model), exact over the whole vocabulary */
        double kl = 0;
        for (int v = 0; v < n_vocab; v++) {
            const double p = s->pref[v];
            if (p > 0) kl += p * (((double)rl[v] - rlse) - ((double)lg[v] - lse));
        }
        s->klds[i] = kl > 0 ? kl : 0; /* rounding can give -1e-17 */
        s->same_top += (am == ram);
    }
}

static void *score_thread(void *arg) {
    score_range(arg);
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double quantile(const double *sorted, int64_t n, double q) {
    if (n <= 0) return 0;
    double pos = q * (double)(n - 1);
    int64_t i = (int64_t)pos;
    if (i >= n - 1) return sorted[n - 1];
    double f = pos - (double)i;
    return sorted[i] * (1 - f) + sorted[i + 1] * f;
}

int phiq_eval_perplexity(const phiq_model *model, const phiq_model *ref, const int32_t *ids, int64_t n_ids,
                         const phiq_ppl_opts *opts, phiq_ppl_result *out) {
    memset(out, 0, sizeof *out);
    /* the default must fit the model: min(512, its context length) */
    const int train = phiq_model_n_ctx_train(model);
    const int n_ctx = opts->n_ctx > 0 ? opts->n_ctx : train > 0 && train < 512 ? train : 512;
    if (n_ctx < 8) return phiq_fail(PHIQ_EINVAL, "perplexity: context %d is too small (need >= 8)", n_ctx);
    if (n_ids < 2 * (int64_t)n_ctx)
        return phiq_fail(PHIQ_EINVAL, "perplexity: %lld tokens, need at least 2*ctx = %d (use a smaller --ctx or a longer text)",
                         (long long)n_ids, 2 * n_ctx);
    const int n_vocab = phiq_model_n_vocab(model);
    if (ref && phiq_model_n_vocab(ref) != n_vocab)
        return phiq_fail(PHIQ_EINVAL, "perplexity: reference vocabulary %d differs from the model's %d",
                         phiq_model_n_vocab(ref), n_vocab);
    int n_chunks = (int)(n_ids / n_ctx);
    if (opts->max_chunks > 0 && opts->max_chunks < n_chunks) n_chunks = opts->max_chunks;

    phiq_context_params cp = phiq_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_threads = opts->n_threads;
    cp.all_logits = 1;
    cp.logits_from = n_ctx / 2; /* only the second half of a chunk is scored */
    phiq_context *ctx = phiq_context_new(model, &cp);
    phiq_context *rctx = NULL;
    if (!ctx) return PHIQ_EINVAL;
    if (ref && !(rctx = phiq_context_new(ref, &cp))) {
        phiq_context_free(ctx);
        return PHIQ_EINVAL;
    }
    const int first = n_ctx / 2, per_chunk = n_ctx - 1 - first;
    int64_t n_total = (int64_t)n_chunks * per_chunk;
    double *nlls = malloc(sizeof(double) * (size_t)n_total);
    double *ref_nlls = ref ? malloc(sizeof(double) * (size_t)n_total) : NULL;
    double *klds = ref ? malloc(sizeof(double) * (size_t)n_total) : NULL;
    const int scorers = opts->n_threads == 1 ? 1 : 2;
    double *pref = ref ? malloc(sizeof(double) * (size_t)n_vocab * 2) : NULL;
    int32_t *batch = malloc(sizeof(int32_t) * (size_t)n_ctx);
    int rc = 0;
    if (!nlls || !batch || (ref && (!ref_nlls || !klds || !pref))) {
        rc = phiq_fail(PHIQ_ENOMEM, "perplexity: out of memory");
        goto done;
    }
    int64_t k = 0, same_top = 0;
    phiq_progress pr;
    phiq_progress_start(&pr, "eval", n_chunks, 0, opts->quiet);
    for (int c = 0; c < n_chunks; c++) {
        const int32_t *chunk = ids + (int64_t)c * n_ctx;
        memcpy(batch, chunk, sizeof(int32_t) * (size_t)n_ctx);
        if (opts->bos_id >= 0) batch[0] = opts->bos_id;
        if ((rc = phiq_context_truncate(ctx, 0)) < 0 || (rc = phiq_eval(ctx, batch, n_ctx)) < 0) goto done;
        if (rctx && ((rc = phiq_context_truncate(rctx, 0)) < 0 || (rc = phiq_eval(rctx, batch, n_ctx)) < 0)) goto done;
        score_job sj[2];
        const int nj = n_ctx - 1 - first, halves = scorers > 1 && nj > 1 ? 2 : 1;
        for (int j = first; j < n_ctx - 1; j++) {
            const int next = chunk[j + 1];
            if (!phiq_logits_at(ctx, j) || (rctx && !phiq_logits_at(rctx, j))) {
                rc = phiq_fail(PHIQ_EINVAL, "perplexity: no logits at position %d", j);
                goto done;
            }
            if (next < 0 || next >= n_vocab) {
                rc = phiq_fail(PHIQ_ERANGE, "perplexity: token id %d out of range (vocabulary %d)", next, n_vocab);
                goto done;
            }
        }
        for (int h = 0; h < halves; h++) {
            const int j0 = first + nj * h / halves, j1 = first + nj * (h + 1) / halves;
            sj[h] = (score_job){ctx, rctx, chunk, n_vocab, j0, j1, nlls + k + (j0 - first), ref_nlls ? ref_nlls + k + (j0 - first) : NULL,
                                klds ? klds + k + (j0 - first) : NULL, pref ? pref + (size_t)h * (size_t)n_vocab : NULL, 0};
        }
        /* the scoring of a chunk's two halves on two threads: its exponentials
         * (three per logit of both models, in double) ran on one thread while
         * the other waited */
        pthread_t th;
        const int spawned = halves > 1 && pthread_create(&th, NULL, score_thread, &sj[1]) == 0;
        score_range(&sj[0]);
        if (halves > 1) {
            if (spawned) pthread_join(th, NULL);
            else score_range(&sj[1]);
        }
        for (int h = 0; h < halves; h++) same_top += sj[h].same_top;
        k += nj;
        phiq_progress_step(&pr, NULL, 0);
    }
    phiq_progress_end(&pr);

    /* mean NLL and llama.cpp's uncertainty: sqrt(var / (N-1)) * ppl */
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < k; i++) { s += nlls[i]; s2 += nlls[i] * nlls[i]; }
    double mean = s / (double)k, var = s2 / (double)k - mean * mean;
    out->n_chunks = n_chunks;
    out->n_scored = k;
    out->nll = mean;
    out->ppl = exp(mean);
    out->ppl_err = k > 1 && var > 0 ? sqrt(var / (double)(k - 1)) * out->ppl : 0;
    if (ref) {
        double rs = 0, ks = 0, ks2 = 0;
        for (int64_t i = 0; i < k; i++) { rs += ref_nlls[i]; ks += klds[i]; ks2 += klds[i] * klds[i]; }
        out->has_ref = 1;
        out->ref_ppl = exp(rs / (double)k);
        out->delta_ppl = out->ppl - out->ref_ppl;
        out->kld_mean = ks / (double)k;
        double kv = ks2 / (double)k - out->kld_mean * out->kld_mean;
        out->kld_err = k > 1 && kv > 0 ? sqrt(kv / (double)(k - 1)) : 0;
        qsort(klds, (size_t)k, sizeof(double), cmp_double);
        out->kld_median = quantile(klds, k, 0.5);
        out->kld_p90 = quantile(klds, k, 0.9);
        out->kld_p99 = quantile(klds, k, 0.99);
        out->kld_p999 = quantile(klds, k, 0.999);
        out->kld_max = klds[k - 1];
        out->top1 = (double)same_top / (double)k;
    }
done:
    free(nlls);
    free(ref_nlls);
    free(klds);
    free(pref);
    free(batch);
    phiq_context_free(ctx);
    if (rctx) phiq_context_free(rctx);
    return rc < 0 ? rc : 0;
}
