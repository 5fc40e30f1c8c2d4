/* budget.c — mixed precision at a size budget (budget.h): candidate types
 * and sizes, the per-tensor sensitivity pass on a held-out slice (the
 * engine's own forward pass with one weight matrix swapped at a time), the
 * multiple-choice knapsack, and the check of the chosen mix. */
#include "convert/budget.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "formats/ggml_type.h"
#include "kernels/ops.h"
#include "kernels/threadpool.h"
#include "model/model.h"
#include "quant/quant.h"

/* ---- candidates and sizes ------------------------------------------------------------ */
int phiq_budget_parse_types(const char *list, int *types, int max) {
    if (!list) list = PHIQ_BUDGET_DEFAULT_TYPES;
    int n = 0;
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, ",");
        char name[32];
        if (len == 0 || len >= sizeof name)
            return phiq_fail(PHIQ_EINVAL, "--bpw-types '%s': expected comma-separated type names", list);
        memcpy(name, p, len);
        name[len] = 0;
        int t = phiq_ggml_type_from_name(name);
        bool ok = t >= 0 && phiq_ggml_type_valid(t) &&
                  (t == PHIQ_GGML_TYPE_F16 || (phiq_ggml_type_is_quantized(t) && phiq_quant_can_quantize(t)));
        if (!ok)
            return phiq_fail(PHIQ_EINVAL, "--bpw-types: '%s' is not a type phiq writes (e.g. q2_k, q3_k, iq4_xs, q4_0, "
                                          "q4_k, q5_k, q6_k, q8_0, f16)", name);
        for (int k = 0; k < n; k++)
            if (types[k] == t) return phiq_fail(PHIQ_EINVAL, "--bpw-types: '%s' given twice", name);
        if (n >= max) return phiq_fail(PHIQ_EINVAL, "--bpw-types: more than %d types", max);
        types[n++] = t;
        p += len;
        if (*p == ',') p++;
    }
    if (n == 0) return phiq_fail(PHIQ_EINVAL, "--bpw-types: empty list");
    return n;
}

int phiq_budget_candidates(phiq_budget_item *it, const int *types, int n_types, uint32_t align) {
    it->n_cand = 0;
    it->choice = -1;
    for (int k = 0; k < n_types; k++) {
        int64_t rs = phiq_ggml_row_size(types[k], it->ne0);
        if (rs <= 0) continue; /* the row is not whole blocks of this type */
        uint64_t raw = (uint64_t)rs * (uint64_t)it->nrows;
        it->cand[it->n_cand] = types[k];
        it->raw[it->n_cand] = raw;
        it->bytes[it->n_cand] = (raw + align - 1) / align * align;
        it->dkld[it->n_cand] = 0;
        it->n_cand++;
    }
    if (it->n_cand == 0)
        return phiq_fail(PHIQ_EINVAL, "%s: rows of %lld fit none of the candidate types (--bpw-types)", it->name,
                         (long long)it->ne0);
    return 0;
}

uint64_t phiq_budget_min_bytes(const phiq_budget_item *it, int n) {
    uint64_t s = 0;
    for (int i = 0; i < n; i++) {
        uint64_t m = UINT64_MAX;
        for (int k = 0; k < it[i].n_cand; k++)
            if (it[i].bytes[k] < m) m = it[i].bytes[k];
        s += m;
    }
    return s;
}

/* ---- knapsack ------------------------------------------------------------------------- */
#define MAX_UNITS (1 << 19)

int phiq_budget_solve(phiq_budget_item *it, int n, uint64_t budget, double *predicted) {
    const uint64_t need = phiq_budget_min_bytes(it, n);
    if (need > budget)
        return phiq_fail(PHIQ_EINVAL, "no mix of the candidate types fits %.3f MB of tensor data (the smallest needs %.3f MB)",
                         (double)budget / 1e6, (double)need / 1e6);
    /* units of 32 bytes (the usual alignment: exact), coarser for large budgets */
    uint64_t unit = 32;
    while (budget / unit > MAX_UNITS) unit *= 2;
    const int64_t B = (int64_t)(budget / unit);
    double *dp = malloc(sizeof(double) * (size_t)(B + 1)), *nx = malloc(sizeof(double) * (size_t)(B + 1));
    uint8_t *ch = malloc((size_t)n * (size_t)(B + 1));
    if (!dp || !nx || !ch) {
        free(dp), free(nx), free(ch);
        return phiq_fail(PHIQ_ENOMEM, "budget: out of memory");
    }
    /* dp[b]: least summed dKLD of items so far within b units */
    for (int64_t b = 0; b <= B; b++) dp[b] = 0;
    for (int i = 0; i < n; i++) {
        uint8_t *ci = ch + (size_t)i * (size_t)(B + 1);
        for (int64_t b = 0; b <= B; b++) {
            double best = INFINITY;
            int bk = 255;
            for (int k = 0; k < it[i].n_cand; k++) {
                int64_t c = (int64_t)((it[i].bytes[k] + unit - 1) / unit);
                if (c > b) continue;
                double v = dp[b - c] + it[i].dkld[k];
                if (v < best) best = v, bk = k;
            }
            nx[b] = best;
            ci[b] = (uint8_t)bk;
        }
        double *t = dp;
        dp = nx, nx = t;
    }
    int rc = 0;
    if (!isfinite(dp[B])) {
        /* feasible in bytes but not after rounding up to units */
        rc = phiq_fail(PHIQ_EINVAL, "no mix of the candidate types fits %.3f MB of tensor data", (double)budget / 1e6);
    } else {
        *predicted = dp[B];
        int64_t b = B;
        for (int i = n - 1; i >= 0; i--) {
            int k = ch[(size_t)i * (size_t)(B + 1) + (size_t)b];
            it[i].choice = k;
            b -= (int64_t)((it[i].bytes[k] + unit - 1) / unit);
        }
    }
    free(dp), free(nx), free(ch);
    return rc;
}

/* ---- the selection slice ------------------------------------------------------------- */
struct phiq_budget_sel {
    phiq_model *m;
    phiq_context *ctx;
    const int32_t *ids;
    int n_chunks, n_ctx, first, n_out, V, long_f, bos, quiet;
    float *p;        /* [n_pos][V] reference probabilities */
    double *negent;  /* [n_pos] sum p log p */
    float *logits;   /* [n_out][V] one chunk's scored rows (+ the last) */
    int evals;
    double seconds;
};

/* The model matrices holding GGUF weight `name` (token_embd and a tied
 * output share theirs): up to 2. */
static int find_mats(phiq_model *m, const char *name, phiq_mat **out) {
    phiq_mat *w = NULL;
    int L;
    char what[64];
    if (!strcmp(name, "token_embd.weight")) w = &m->tok_embd;
    else if (!strcmp(name, "output.weight")) w = &m->output;
    else if (sscanf(name, "blk.%d.%63[^.].weight", &L, what) == 2 && L >= 0 && L < m->hp.n_layer) {
        phiq_layer *ly = &m->layers[L];
        if (!strcmp(what, "attn_qkv")) w = &ly->qkv;
        else if (!strcmp(what, "attn_q")) w = &ly->q;
        else if (!strcmp(what, "attn_k")) w = &ly->k;
        else if (!strcmp(what, "attn_v")) w = &ly->v;
        else if (!strcmp(what, "attn_output")) w = &ly->wo;
        else if (!strcmp(what, "ffn_up")) w = &ly->up;
        else if (!strcmp(what, "ffn_down")) w = &ly->down;
    }
    if (!w || !w->data) return 0;
    int n = 0;
    out[n++] = w;
    if (w == &m->tok_embd && m->output.data == w->data) out[n++] = &m->output;
    return n;
}

/* The scored rows of one chunk, split over the context's threads: the
 * reference (stores p and sum p log p) or each row's KL divergence from it,
 * KL = sum p (log p - log q) = negent - sum p x + lse(x) sum p. */
typedef struct kl_job {
    phiq_budget_sel *s;
    int64_t pos0; /* position index of the chunk's first scored row */
    int ref;
    double *kl;   /* [per] */
} kl_job;

static void kl_task(void *arg, int c, int nc) {
    kl_job *j = arg;
    phiq_budget_sel *s = j->s;
    const int per = s->n_ctx - 1 - s->first;
    for (int r = c; r < per; r += nc) {
        const float *x = s->logits + (size_t)r * (size_t)s->V;
        const int64_t pos = j->pos0 + r;
        float *p = s->p + (size_t)pos * (size_t)s->V;
        const double lse = phiq_row_logsumexp(x, s->V, NULL, NULL);
        if (j->ref) {
            double ne = 0;
            for (int v = 0; v < s->V; v++) {
                const double lp = (double)x[v] - lse;
                p[v] = (float)exp(lp);
                ne += p[v] * lp;
            }
            s->negent[pos] = ne;
        } else {
            double px = 0, ps = 0;
            for (int v = 0; v < s->V; v++) px += (double)p[v] * x[v], ps += p[v];
            const double kl = s->negent[pos] - px + lse * ps;
            j->kl[r] = kl > 0 ? kl : 0;
        }
    }
}

/* One pass over the slice: the reference (ref = 1) or the mean KL divergence from it. */
static int sel_pass(phiq_budget_sel *s, int ref, double *kld) {
    double t0 = phiq_now(), total = 0;
    const int per = s->n_ctx - 1 - s->first;
    int32_t *batch = malloc(sizeof(int32_t) * (size_t)s->n_ctx);
    double *kl = malloc(sizeof(double) * (size_t)per);
    if (!batch || !kl) {
        free(batch), free(kl);
        return phiq_fail(PHIQ_ENOMEM, "budget: out of memory");
    }
    int rc = 0;
    for (int c = 0; c < s->n_chunks && !rc; c++) {
        memcpy(batch, s->ids + (int64_t)c * s->n_ctx, sizeof(int32_t) * (size_t)s->n_ctx);
        if (s->bos >= 0) batch[0] = s->bos;
        if ((rc = phiq_context_truncate(s->ctx, 0)) < 0 ||
            (rc = phiq_forward(s->ctx, batch, s->n_ctx, s->long_f, s->logits, s->first)) < 0)
            break;
        kl_job j = {s, (int64_t)c * per, ref, kl};
        phiq_threadpool_run_chunks(s->ctx->tp, kl_task, &j, s->ctx->n_threads > 0 ? s->ctx->n_threads : 1);
        if (!ref)
            for (int r = 0; r < per; r++) total += kl[r];
    }
    free(batch);
    free(kl);
    s->evals++;
    s->seconds += phiq_now() - t0;
    if (rc < 0) return rc;
    if (kld) *kld = total / ((double)s->n_chunks * per);
    return 0;
}

phiq_budget_sel *phiq_budget_sel_new(phiq_model *m, const int32_t *ids, int64_t n_ids, const phiq_budget_measure_opts *o) {
    phiq_budget_sel *s = calloc(1, sizeof *s);
    if (!s) return phiq_fail_null(PHIQ_ENOMEM, "budget: out of memory");
    s->m = m;
    s->ids = ids;
    s->n_ctx = o->n_ctx > 0 ? o->n_ctx : 256;
    s->n_chunks = (int)(n_ids / s->n_ctx);
    s->first = s->n_ctx / 2;
    s->n_out = s->n_ctx - s->first;
    s->V = m->hp.n_vocab;
    s->long_f = m->hp.n_rope_factors > 0 && s->n_ctx > m->hp.n_ctx_orig;
    s->bos = phiq_model_bos(m);
    s->quiet = o->quiet;
    if (s->n_ctx < 16 || s->n_chunks < 1) {
        phiq_budget_sel_free(s);
        return phiq_fail_null(PHIQ_EINVAL, "budget: selection slice of %lld tokens, need a chunk of at least 16",
                              (long long)n_ids);
    }
    const size_t n_pos = (size_t)s->n_chunks * (size_t)(s->n_ctx - 1 - s->first);
    phiq_context_params cp = phiq_context_default_params();
    cp.n_ctx = s->n_ctx;
    cp.n_batch = s->n_ctx;
    cp.n_threads = o->n_threads;
    s->p = malloc(sizeof(float) * n_pos * (size_t)s->V);
    s->negent = malloc(sizeof(double) * n_pos);
    s->logits = malloc(sizeof(float) * (size_t)s->n_out * (size_t)s->V);
    if (!s->p || !s->negent || !s->logits) {
        phiq_budget_sel_free(s);
        return phiq_fail_null(PHIQ_ENOMEM, "budget: out of memory for the reference distribution (%zu positions)", n_pos);
    }
    if (!(s->ctx = phiq_context_new(m, &cp)) || sel_pass(s, 1, NULL) < 0) {
        phiq_budget_sel_free(s);
        return NULL;
    }
    return s;
}

void phiq_budget_sel_free(phiq_budget_sel *s) {
    if (!s) return;
    if (s->ctx) phiq_context_free(s->ctx);
    free(s->p);
    free(s->negent);
    free(s->logits);
    free(s);
}

int phiq_budget_sel_evals(const phiq_budget_sel *s) { return s->evals; }
int64_t phiq_budget_sel_scored(const phiq_budget_sel *s) { return (int64_t)s->n_chunks * (s->n_ctx - 1 - s->first); }
double phiq_budget_sel_seconds(const phiq_budget_sel *s) { return s->seconds; }

/* Quantizes item i at candidate k into a new buffer and points its matrices
 * at it (saving the originals in keep). */
static int swap_in(phiq_budget_sel *s, const phiq_budget_item *it, int k, phiq_budget_quantize_fn q, void *ud, int i,
                   phiq_mat *keep, phiq_mat **mats, int *n_mats, void **buf) {
    *n_mats = find_mats(s->m, it->name, mats);
    if (*n_mats == 0) return phiq_fail(PHIQ_EUNSUPPORTED, "budget: %s is not a weight the engine evaluates", it->name);
    const int type = it->cand[k];
    if (!(*buf = malloc(it->raw[k] ? it->raw[k] : 1))) return phiq_fail(PHIQ_ENOMEM, "budget: out of memory for %s", it->name);
    int rc = q(ud, i, type, *buf, it->raw[k]);
    if (rc < 0) {
        free(*buf);
        *buf = NULL;
        return rc;
    }
    for (int a = 0; a < *n_mats; a++) {
        keep[a] = *mats[a];
        mats[a]->data = *buf;
        mats[a]->type = type;
        mats[a]->row_bytes = (size_t)phiq_ggml_row_size(type, it->ne0);
    }
    return 0;
}

static void swap_out(phiq_mat *keep, phiq_mat **mats, int n_mats, void *buf) {
    for (int a = 0; a < n_mats; a++) *mats[a] = keep[a];
    free(buf);
}

int phiq_budget_measure(phiq_budget_sel *s, phiq_budget_item *it, int n, phiq_budget_quantize_fn q, void *ud) {
    int total = 0;
    for (int i = 0; i < n; i++) total += it[i].n_cand;
    phiq_progress pr;
    phiq_progress_start(&pr, "sensitivity", total, 0, s->quiet);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        for (int k = 0; k < it[i].n_cand && !rc; k++) {
            phiq_mat keep[2], *mats[2];
            int nm;
            void *buf;
            if ((rc = swap_in(s, &it[i], k, q, ud, i, keep, mats, &nm, &buf)) < 0) break;
            rc = sel_pass(s, 0, &it[i].dkld[k]);
            swap_out(keep, mats, nm, buf);
            char item[160];
            snprintf(item, sizeof item, "%s %s", it[i].name, phiq_ggml_type_name(it[i].cand[k]));
            phiq_progress_step(&pr, item, 0);
        }
    }
    phiq_progress_end(&pr);
    return rc;
}

int phiq_budget_check(phiq_budget_sel *s, const phiq_budget_item *it, int n, phiq_budget_quantize_fn q, void *ud,
                      double *kld) {
    phiq_mat(*keep)[2] = calloc((size_t)n, sizeof *keep);
    phiq_mat *(*mats)[2] = calloc((size_t)n, sizeof *mats);
    int *nm = calloc((size_t)n, sizeof *nm);
    void **buf = calloc((size_t)n, sizeof *buf);
    int rc = keep && mats && nm && buf ? 0 : phiq_fail(PHIQ_ENOMEM, "budget: out of memory");
    int done = 0;
    for (; done < n && !rc; done++)
        if ((rc = swap_in(s, &it[done], it[done].choice, q, ud, done, keep[done], mats[done], &nm[done], &buf[done])) < 0)
            break;
    if (!rc) rc = sel_pass(s, 0, kld);
    /* restore in reverse order (a tied pair is swapped once) */
    for (int i = done - 1; i >= 0; i--)
        if (buf && buf[i]) swap_out(keep[i], mats[i], nm[i], buf[i]);
    free(keep), free(mats), free(nm), free(buf);
    return rc;
}
