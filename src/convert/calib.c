/* calib.c — the calibration forward pass (calib.h): a matmul hook on an
 * ordinary context (model.h mm_hook) maps each weight to its GGUF name and
 * accumulates the squared inputs (in float, row after row, as llama-imatrix
 * does, so the sums agree to float rounding) and, for the requested layers,
 * XᵀX through the context's thread pool. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/calib.h"
#include "core/common.h"
#include "formats/gguf.h"
#include "kernels/dispatch.h"
#include "model/model.h"
#include "quant/quant.h"

typedef struct calib_entry {
    const phiq_mat *w;   /* the weight (an expert's for MoE) */
    char name[PHIQ_GGUF_MAX_NAME];
    int mat, n_mat;      /* expert index and count (0, 1 for dense) */
    int layer;           /* -1 for output.weight */
    int stats;           /* index into calib->st */
} calib_entry;

typedef struct calib_stats {
    char name[PHIQ_GGUF_MAX_NAME];
    int64_t n_in;
    int n_mat;
    float *sum2;         /* [n_mat][n_in] */
    int64_t *count;      /* [n_mat] */
    float *mean;         /* [n_mat][n_in], filled on demand */
    float *h;            /* [n_in][n_in] or NULL; sums until the end of the run, then / count */
} calib_stats;

struct phiq_calib {
    calib_entry *e;
    int n_e;
    calib_stats *st;
    int n_st;
    int n_ctx, chunks;
    int64_t tokens;
    int process_output;
    phiq_context *ctx;   /* during the run */
    float *xp;           /* inputs packed for the Gram kernel (kernels/gram.h), up to max n_in x n_batch */
};

static int add_stats(phiq_calib *c, const char *name, int64_t n_in, int n_mat, int hess) {
    for (int i = 0; i < c->n_st; i++)
        if (!strcmp(c->st[i].name, name)) return i;
    calib_stats *s = &c->st[c->n_st];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->n_in = n_in;
    s->n_mat = n_mat;
    s->sum2 = calloc((size_t)(n_in * n_mat), sizeof(float));
    s->count = calloc((size_t)n_mat, sizeof(int64_t));
    if (hess) s->h = calloc((size_t)(n_in * n_in), sizeof(float));
    if (!s->sum2 || !s->count || (hess && !s->h))
        return phiq_fail(PHIQ_ENOMEM, "calibration: out of memory for %s%s", name, hess ? " (Hessian)" : "");
    return c->n_st++;
}

static int add_entry(phiq_calib *c, const phiq_mat *w, int layer, const char *what, int mat, int n_mat, int hess) {
    if (!w->data) return 0;
    calib_entry *e = &c->e[c->n_e];
    e->w = w;
    e->layer = layer;
    e->mat = mat;
    e->n_mat = n_mat;
    if (layer >= 0) snprintf(e->name, sizeof e->name, "blk.%d.%s.weight", layer, what);
    else snprintf(e->name, sizeof e->name, "%s.weight", what);
    int k = add_stats(c, e->name, w->n_in, n_mat, hess && n_mat == 1);
    if (k < 0) return k;
    e->stats = k;
    c->n_e++;
    return 0;
}

static int build_entries(phiq_calib *c, const phiq_model *m, const phiq_calib_opts *o) {
    const phiq_hparams *hp = &m->hp;
    int per_layer = 8 + 3 * hp->n_expert;
    c->e = calloc((size_t)(per_layer * hp->n_layer + 1), sizeof *c->e);
    c->st = calloc((size_t)(per_layer * hp->n_layer + 1), sizeof *c->st);
    if (!c->e || !c->st) return phiq_fail(PHIQ_ENOMEM, "calibration: out of memory");
    int rc = 0;
    const int l1 = o->layer1 > 0 && o->layer1 < hp->n_layer ? o->layer1 : hp->n_layer;
    for (int L = o->layer0; L < l1 && rc == 0; L++) {
        const phiq_layer *ly = &m->layers[L];
        int h = L >= o->h_layer0 && L < o->h_layer1;
        if (ly->fused_qkv) rc = add_entry(c, &ly->qkv, L, "attn_qkv", 0, 1, h);
        else if (!(rc = add_entry(c, &ly->q, L, "attn_q", 0, 1, h)) && !(rc = add_entry(c, &ly->k, L, "attn_k", 0, 1, h)))
            rc = add_entry(c, &ly->v, L, "attn_v", 0, 1, h);
        if (!rc) rc = add_entry(c, &ly->wo, L, "attn_output", 0, 1, h);
        if (hp->arch == PHIQ_ARCH_PHIMOE) {
            if (!rc) rc = add_entry(c, &ly->gate_inp, L, "ffn_gate_inp", 0, 1, h);
            for (int x = 0; x < hp->n_expert && !rc; x++) {
                if (!(rc = add_entry(c, &ly->exp_gate[x], L, "ffn_gate_exps", x, hp->n_expert, 0)) &&
                    !(rc = add_entry(c, &ly->exp_up[x], L, "ffn_up_exps", x, hp->n_expert, 0)))
                    rc = add_entry(c, &ly->exp_down[x], L, "ffn_down_exps", x, hp->n_expert, 0);
            }
        } else {
            if (!rc) rc = add_entry(c, &ly->up, L, "ffn_up", 0, 1, h);
            if (!rc) rc = add_entry(c, &ly->down, L, "ffn_down", 0, 1, h);
        }
    }
    if (!rc && l1 == hp->n_layer && (o->process_output || o->h_output))
        rc = add_entry(c, &m->output, -1, "output", 0, 1, o->h_output);
    return rc;
}

/* H += XᵀX with the kernel table's Gram kernel (kernels/gram.h), chunk c a
 * block of GRAM_COLS columns, largest first (work grows with the column),
 * so that no two chunks write the same entry. */
#define GRAM_COLS 48
typedef struct gram_job {
    phiq_gram_fn fn;
    float *h;
    const float *p; /* packed inputs */
    int64_t n;
    int T;
} gram_job;

static void gram_task(void *arg, int c, int nc) {
    gram_job *j = arg;
    const int64_t nb = (j->n + GRAM_COLS - 1) / GRAM_COLS, b = nb - 1 - c;
    j->fn(j->h, j->n, j->p, j->T, b * GRAM_COLS, (b + 1) * GRAM_COLS);
    (void)nc;
}

static int calib_hook(void *ud, const phiq_mat *w, const float *x, int64_t ldx, int T) {
    phiq_calib *c = ud;
    calib_entry *e = NULL;
    for (int i = 0; i < c->n_e; i++)
        if (c->e[i].w == w) {
            e = &c->e[i];
            break;
        }
    if (!e) return 0;                       /* token_embd / output without process_output */
    if (e->n_mat == 1 && T < 16) return 0;  /* llama-imatrix skips small dense batches */
    calib_stats *s = &c->st[e->stats];
    const int64_t n = s->n_in;
    float *acc = s->sum2 + (int64_t)e->mat * n;
    for (int t = 0; t < T; t++) {
        const float *r = x + (int64_t)t * ldx;
        for (int64_t j = 0; j < n; j++) acc[j] += r[j] * r[j];
    }
    s->count[e->mat] += T;
    if (s->h) {
        phiq_gram_pack(c->xp, x, ldx, n, T);
        gram_job gj = {c->ctx->kern ? c->ctx->kern->gram_upper : phiq_gram_upper_ref, s->h, c->xp, n, T};
        phiq_threadpool_run_chunks(c->ctx->tp, gram_task, &gj, (int)((n + GRAM_COLS - 1) / GRAM_COLS));
    }
    return 0;
}

int32_t *phiq_calib_tokenize(const phiq_model *m, const char *text_path, int n_ctx, int64_t *n) {
    char *txt;
    size_t len;
    if (phiq_read_file(text_path, &txt, &len) < 0) return NULL;
    if (len > (size_t)1 << 30) {
        free(txt);
        return phiq_fail_null(PHIQ_EINVAL, "%s: calibration text over 1 GiB", text_path);
    }
    int cap = (int)(len + 16);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    int k = ids ? phiq_tokenize(m, txt, ids, cap, PHIQ_TOKENIZE_ADD_BOS) : PHIQ_ENOMEM;
    free(txt);
    if (k < 0 || k > cap) {
        free(ids);
        return phiq_fail_null(PHIQ_EINVAL, "%s: cannot tokenize: %s", text_path, phiq_error());
    }
    if (k < 2 * n_ctx) {
        free(ids);
        return phiq_fail_null(PHIQ_EINVAL, "%s: %d tokens, need at least 2 x context = %d (shorter -c or a longer text)",
                              text_path, k, 2 * n_ctx);
    }
    *n = k;
    return ids;
}

phiq_calib *phiq_calib_run(const phiq_model *m, const int32_t *ids, int64_t n_ids, const phiq_calib_opts *o) {
    const int n_ctx = o->n_ctx > 0 ? o->n_ctx : 512;
    if (n_ctx < 16) return phiq_fail_null(PHIQ_EINVAL, "calibration: context %d is too small (need >= 16)", n_ctx);
    if (n_ids < 2 * (int64_t)n_ctx)
        return phiq_fail_null(PHIQ_EINVAL, "calibration: %lld tokens, need at least 2 x context = %d", (long long)n_ids,
                              2 * n_ctx);
    const int nl = m->hp.n_layer, l1 = o->layer1 > 0 && o->layer1 < nl ? o->layer1 : nl;
    if (o->layer0 < 0 || o->layer0 >= l1 || ((o->layer0 > 0 || l1 < nl) && !o->resid))
        return phiq_fail_null(PHIQ_EINVAL, "calibration: bad layer range [%d, %d)", o->layer0, l1);
    phiq_calib *c = calloc(1, sizeof *c);
    if (!c) return phiq_fail_null(PHIQ_ENOMEM, "calibration: out of memory");
    c->n_ctx = n_ctx;
    c->process_output = (o->process_output || o->h_output) && l1 == nl;
    int n_chunks = (int)(n_ids / n_ctx);
    if (o->max_chunks > 0 && o->max_chunks < n_chunks) n_chunks = o->max_chunks;
    int rc = build_entries(c, m, o);
    phiq_context_params cp = phiq_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_ctx;
    cp.n_threads = o->n_threads;
    cp.all_logits = c->process_output; /* the output matmul runs for every row only then */
    int32_t *batch = malloc(sizeof(int32_t) * (size_t)n_ctx);
    int64_t max_in = 0;
    for (int i = 0; i < c->n_st; i++)
        if (c->st[i].h && c->st[i].n_in > max_in) max_in = c->st[i].n_in;
    max_in = (max_in + 7) / 8 * 8; /* the Gram kernel reads rows in eights */
    if (!rc && max_in && !(c->xp = calloc(phiq_gram_packed_floats(max_in, n_ctx), sizeof(float))))
        rc = phiq_fail(PHIQ_ENOMEM, "calibration: out of memory");
    if (!rc && !batch) rc = phiq_fail(PHIQ_ENOMEM, "calibration: out of memory");
    if (!rc && !(c->ctx = phiq_context_new(m, &cp))) rc = PHIQ_EINVAL;
    if (!rc) {
        c->ctx->mm_hook = calib_hook;
        c->ctx->mm_hook_ud = c;
        const int bos = phiq_model_bos(m);
        phiq_progress pr;
        phiq_progress_start(&pr, o->label ? o->label : "imatrix", n_chunks, 0, o->quiet);
        for (int k = 0; k < n_chunks && !rc; k++) {
            memcpy(batch, ids + (int64_t)k * n_ctx, sizeof(int32_t) * (size_t)n_ctx);
            if (bos >= 0) batch[0] = bos;
            float *res = o->resid ? o->resid + (size_t)k * (size_t)n_ctx * (size_t)m->hp.n_embd : NULL;
            c->ctx->fwd_l0 = o->layer0;
            c->ctx->fwd_l1 = l1;
            c->ctx->fwd_x_in = o->layer0 > 0 ? res : NULL;
            c->ctx->fwd_x_out = l1 < nl ? res : NULL;
            if ((rc = phiq_context_truncate(c->ctx, 0)) < 0 || (rc = phiq_eval(c->ctx, batch, n_ctx)) < 0) break;
            c->chunks++;
            c->tokens += n_ctx;
            phiq_progress_step(&pr, NULL, 0);
        }
        phiq_progress_end(&pr);
    }
    for (int i = 0; i < c->n_st && !rc; i++) {
        calib_stats *s = &c->st[i];
        if (!s->h) continue;
        const float inv = s->count[0] > 0 ? 1.0f / (float)s->count[0] : 0.0f;
        for (int64_t a = 0; a < s->n_in; a++)
            for (int64_t b = a; b < s->n_in; b++) {
                float v = s->h[a * s->n_in + b] * inv;
                s->h[a * s->n_in + b] = v;
                s->h[b * s->n_in + a] = v;
            }
    }
    free(batch);
    free(c->xp);
    c->xp = NULL;
    if (c->ctx) phiq_context_free(c->ctx);
    c->ctx = NULL;
    if (rc < 0) {
        phiq_calib_free(c);
        return NULL;
    }
    return c;
}

void phiq_calib_free(phiq_calib *c) {
    if (!c) return;
    for (int i = 0; i < c->n_st; i++) PHIQ_FREE_ALL(c->st[i].sum2, c->st[i].count, c->st[i].mean, c->st[i].h);
    PHIQ_FREE_ALL(c->st, c->e, c);
}

int phiq_calib_chunks(const phiq_calib *c) { return c->chunks; }
int64_t phiq_calib_tokens(const phiq_calib *c) { return c->tokens; }

static const calib_stats *find_stats(const phiq_calib *c, const char *name) {
    for (int i = 0; i < c->n_st; i++)
        if (!strcmp(c->st[i].name, name)) return &c->st[i];
    return NULL;
}

const float *phiq_calib_imatrix(phiq_calib *c, const char *name, int64_t *n_in, int *n_mat) {
    calib_stats *s = (calib_stats *)find_stats(c, name);
    if (!s) return NULL;
    if (!s->mean) {
        if (!(s->mean = malloc(sizeof(float) * (size_t)(s->n_in * s->n_mat))))
            return phiq_fail_null(PHIQ_ENOMEM, "calibration: out of memory");
        for (int k = 0; k < s->n_mat; k++)
            for (int64_t j = 0; j < s->n_in; j++)
                s->mean[k * s->n_in + j] = s->count[k] > 0 ? s->sum2[k * s->n_in + j] / (float)s->count[k] : 1.0f;
    }
    *n_in = s->n_in;
    *n_mat = s->n_mat;
    return s->mean;
}

const float *phiq_calib_hessian(const phiq_calib *c, const char *name, int64_t *n_in) {
    const calib_stats *s = find_stats(c, name);
    if (!s || !s->h || s->count[0] == 0) return NULL;
    *n_in = s->n_in;
    return s->h;
}

uint64_t phiq_calib_layer_hessian_bytes(const phiq_model *m) {
    const phiq_hparams *hp = &m->hp;
    uint64_t E = (uint64_t)hp->n_embd, nq = (uint64_t)hp->n_head * (uint64_t)hp->head_dim, F = (uint64_t)hp->n_ff;
    return 4 * (2 * E * E + nq * nq + F * F);
}

static int cmp_names(const void *a, const void *b) {
    return strcmp((*(const calib_stats *const *)a)->name, (*(const calib_stats *const *)b)->name);
}

typedef struct write_ctx {
    const calib_stats **s;
} write_ctx;

static int fill_imatrix(void *u, int64_t i, const char *name, void *buf, uint64_t nb) {
    const calib_stats *s = ((write_ctx *)u)->s[i / 2];
    (void)name;
    if (i % 2 == 0) {
        memcpy(buf, s->sum2, nb);
    } else {
        float *f = buf;
        for (int k = 0; k < s->n_mat; k++) f[k] = (float)s->count[k];
    }
    return 0;
}

int phiq_calib_write_imatrix(const phiq_calib *c, const char *path, const char *dataset, int quiet) {
    const calib_stats **s = malloc(sizeof *s * (size_t)(c->n_st + 1));
    phiq_gguf_writer *w = phiq_gguf_writer_new();
    int rc = (!s || !w) ? phiq_fail(PHIQ_ENOMEM, "imatrix: out of memory") : 0;
    int n = 0;
    for (int i = 0; i < c->n_st && !rc; i++) {
        int64_t tot = 0;
        for (int k = 0; k < c->st[i].n_mat; k++) tot += c->st[i].count[k];
        if (tot > 0) s[n++] = &c->st[i]; /* llama-imatrix stores only what it saw */
    }
    if (!rc) qsort(s, (size_t)n, sizeof *s, cmp_names);
    const char *ds[1] = {dataset ? dataset : ""};
#define SET(x)                                                                                                         \
    if (!rc) rc = (x)
    SET(phiq_gguf_writer_set_str(w, "general.type", "imatrix"));
    SET(phiq_gguf_writer_set_arr_str(w, "imatrix.datasets", ds, NULL, 1));
    SET(phiq_gguf_writer_set_u32(w, "imatrix.chunk_count", (uint32_t)c->chunks));
    SET(phiq_gguf_writer_set_u32(w, "imatrix.chunk_size", (uint32_t)c->n_ctx));
    for (int i = 0; i < n && !rc; i++) {
        char nm[PHIQ_GGUF_MAX_NAME + 16];
        int64_t ne[2] = {s[i]->n_in, s[i]->n_mat}, ne1[2] = {1, s[i]->n_mat};
        snprintf(nm, sizeof nm, "%s.in_sum2", s[i]->name);
        SET(phiq_gguf_writer_add_tensor(w, nm, PHIQ_GGML_TYPE_F32, 2, ne));
        snprintf(nm, sizeof nm, "%s.counts", s[i]->name);
        SET(phiq_gguf_writer_add_tensor(w, nm, PHIQ_GGML_TYPE_F32, 2, ne1));
    }
#undef SET
    if (!rc && n == 0) rc = phiq_fail(PHIQ_EINVAL, "imatrix: no matmul was observed");
    write_ctx wc = {s};
    phiq_gguf_write_opts wo = {.quiet = quiet, .label = "imatrix"};
    if (!rc) rc = phiq_gguf_writer_write(w, path, fill_imatrix, &wc, &wo);
    phiq_gguf_writer_free(w);
    free(s);
    return rc;
}

/* ---- session ------------------------------------------------------------------------------ */
/* Groups run in order share one forward pass: each starts from the residual
 * stream the previous one saved at its first layer (resid, in memory: 4 bytes
 * x n_embd per calibration token) and saves it at its end. Only the layers
 * being run are held converted (phiq_model_layers_acquire). */
struct phiq_calib_session {
    phiq_model *m;
    int32_t *ids;
    int64_t n_ids;
    phiq_calib_opts o;
    int group;            /* layers per pass */
    phiq_calib *cur;      /* statistics of the current group */
    int l0, l1, has_output;
    int run0;             /* first layer cur's pass ran (its statistics cover [run0, l1)) */
    float *resid;         /* [chunk][n_ctx][n_embd]: the stream at the input of layer res_layer */
    int res_layer;        /* 0: nothing saved (start from the embeddings) */
    phiq_calib *full;     /* imatrix of every layer (one extra pass, only when asked for one outside cur) */
    int pinned;           /* every layer held converted (phiq_calib_session_model) */
    int passes;
    double seconds;
};

phiq_calib_session *phiq_calib_session_new(const char *model_path, const char *text_path, const phiq_calib_opts *o,
                                           uint64_t mem_budget) {
    phiq_calib_session *s = calloc(1, sizeof *s);
    if (!s) return phiq_fail_null(PHIQ_ENOMEM, "calibration: out of memory");
    s->o = *o;
    s->l0 = s->l1 = -1;
    if (s->o.n_ctx <= 0) s->o.n_ctx = 512;
    if (!(s->m = phiq_model_load_ex(model_path, NULL, true)) ||
        !(s->ids = phiq_calib_tokenize(s->m, text_path, s->o.n_ctx, &s->n_ids))) {
        phiq_calib_session_free(s);
        return NULL;
    }
    uint64_t per = phiq_calib_layer_hessian_bytes(s->m);
    s->group = per > 0 ? (int)(mem_budget / per) : 1;
    if (s->group < 1) s->group = 1;
    return s;
}

void phiq_calib_session_free(phiq_calib_session *s) {
    if (!s) return;
    phiq_calib_free(s->cur);
    phiq_calib_free(s->full);
    PHIQ_FREE_ALL(s->resid, s->ids);
    phiq_model_free(s->m);
    free(s);
}

/* One calibration run over layers [l0, l1) with the layers acquired. */
static phiq_calib *session_run(phiq_calib_session *s, const phiq_calib_opts *o) {
    const int nl = s->m->hp.n_layer, l1 = o->layer1 > 0 ? o->layer1 : nl;
    double t0 = phiq_now();
    phiq_calib *c = phiq_model_layers_acquire(s->m, o->layer0, l1) < 0 ? NULL : phiq_calib_run(s->m, s->ids, s->n_ids, o);
    if (!s->pinned) phiq_model_layers_release(s->m, o->layer0, l1);
    s->seconds += phiq_now() - t0;
    if (c) s->passes++;
    return c;
}

static int session_pass(phiq_calib_session *s, int layer) {
    const int nl = s->m->hp.n_layer;
    phiq_calib_free(s->cur);
    s->cur = NULL;
    phiq_calib_opts o = s->o;
    o.h_layer0 = layer < nl ? layer : nl;
    o.h_layer1 = layer + s->group < nl ? layer + s->group : nl;
    o.h_output = o.h_layer1 == nl; /* output's H is small: it rides with the last group */
    /* resume where the saved stream is, unless that is past this group */
    o.layer0 = s->res_layer > 0 && s->res_layer <= o.h_layer0 ? s->res_layer : 0;
    o.layer1 = o.h_layer1;
    if (o.layer0 > 0 || o.layer1 < nl) {
        if (!s->resid) {
            int64_t n_chunks = s->n_ids / s->o.n_ctx;
            if (s->o.max_chunks > 0 && s->o.max_chunks < n_chunks) n_chunks = s->o.max_chunks;
            size_t nb = sizeof(float) * (size_t)n_chunks * (size_t)s->o.n_ctx * (size_t)s->m->hp.n_embd;
            if (!(s->resid = malloc(nb)))
                return phiq_fail(PHIQ_ENOMEM, "calibration: out of memory for the residual stream (%zu MiB)", nb >> 20);
        }
        o.resid = s->resid;
    }
    char label[48];
    snprintf(label, sizeof label, "calib %d-%d/%d", o.h_layer0, o.h_layer1, nl);
    o.label = label;
    s->res_layer = 0; /* overwritten in place below */
    if (!(s->cur = session_run(s, &o))) return PHIQ_EINVAL;
    s->res_layer = o.layer1 < nl ? o.layer1 : 0;
    s->run0 = o.layer0;
    s->l0 = o.h_layer0;
    s->l1 = o.h_layer1;
    s->has_output = o.h_output;
    return 0;
}

const float *phiq_calib_session_hessian(phiq_calib_session *s, const char *name, int64_t *n_in, int *failed) {
    *failed = 0;
    int layer;
    const int nl = s->m->hp.n_layer;
    if (!strcmp(name, "output.weight")) layer = nl;
    else if (sscanf(name, "blk.%d.", &layer) != 1 || layer < 0 || layer >= nl) return NULL;
    int have = s->cur && (layer == nl ? s->has_output : layer >= s->l0 && layer < s->l1);
    if (!have && session_pass(s, layer == nl ? (nl - 1 > 0 ? nl - 1 : 0) : layer) < 0) {
        *failed = 1;
        return NULL;
    }
    return phiq_calib_hessian(s->cur, name, n_in);
}

/* A pass collects the imatrix of the layers it ran; another layer's comes
 * from one full pass without Hessians, run the first time one is asked for
 * (the same values: the forward pass is the same). */
const float *phiq_calib_session_imatrix(phiq_calib_session *s, const char *name, int64_t *n_in, int *n_mat) {
    if (!s->cur) return NULL;
    int layer;
    if (sscanf(name, "blk.%d.", &layer) != 1 || (layer >= s->run0 && layer < s->l1))
        return phiq_calib_imatrix(s->cur, name, n_in, n_mat);
    if (layer < 0 || layer >= s->m->hp.n_layer) return NULL;
    if (!s->full) {
        phiq_calib_opts o = s->o;
        o.h_layer0 = o.h_layer1 = 0;
        o.h_output = 0;
        o.layer0 = o.layer1 = 0;
        o.resid = NULL;
        o.label = "calib imatrix";
        if (!(s->full = session_run(s, &o))) return NULL;
    }
    return phiq_calib_imatrix(s->full, name, n_in, n_mat);
}

const int32_t *phiq_calib_session_hold_out(phiq_calib_session *s, int64_t n_tokens) {
    if (s->cur || n_tokens <= 0 || s->n_ids - n_tokens < 2 * (int64_t)s->o.n_ctx)
        return phiq_fail_null(PHIQ_EINVAL,
                              "calibration text: %lld tokens; holding out %lld for selection leaves fewer than 2 x %d "
                              "to calibrate on (a longer text, fewer --select-chunks or a shorter --calib-ctx)",
                              (long long)s->n_ids, (long long)n_tokens, s->o.n_ctx);
    s->n_ids -= n_tokens;
    return s->ids + s->n_ids;
}

/* Adds diag(g) WᵀW diag(g), scaled to trace n, to H [n][n]: the output
 * error of matrix W (E -> n_out) behind a norm of gain g for an error in the
 * norm's input (up to the norm's 1/rms). W's rows are taken as if they were
 * calibration tokens, GRAM_ROWS at a time, through the same Gram kernel as
 * XᵀX (kernels/gram.h: the same bits on every CPU), its column blocks split
 * over tp's threads; acc holds the upper triangle. */
#define GRAM_ROWS 512
static int add_gram(float *H, int64_t n, const phiq_mat *W, const float *g, phiq_threadpool *tp) {
    if (W->n_in != n) return phiq_fail(PHIQ_EFORMAT, "calibration: a weight's rows are not of the embedding's length");
    float *x = malloc(sizeof(float) * (size_t)(GRAM_ROWS * n));
    float *p = malloc(sizeof(float) * phiq_gram_packed_floats(n, GRAM_ROWS));
    float *acc = calloc((size_t)(n * n), sizeof(float));
    if (!x || !p || !acc) {
        PHIQ_FREE_ALL(x, p, acc);
        return phiq_fail(PHIQ_ENOMEM, "calibration: out of memory");
    }
    const phiq_kernels *k = phiq_kernels_get();
    for (int64_t o0 = 0; o0 < W->n_out; o0 += GRAM_ROWS) {
        const int64_t no = W->n_out - o0 < GRAM_ROWS ? W->n_out - o0 : GRAM_ROWS;
        for (int64_t o = 0; o < no; o++) {
            float *r = x + o * n;
            if (phiq_dequantize(W->type, (const uint8_t *)W->data + (o0 + o) * W->row_bytes, r, n) < 0) {
                PHIQ_FREE_ALL(x, p, acc);
                return phiq_fail(PHIQ_EUNSUPPORTED, "calibration: cannot read a weight of type %d", W->type);
            }
            if (g)
                for (int64_t i = 0; i < n; i++) r[i] *= g[i];
        }
        phiq_gram_pack(p, x, n, n, no);
        gram_job gj = {k->gram_upper, acc, p, n, (int)no};
        phiq_threadpool_run_chunks(tp, gram_task, &gj, (int)((n + GRAM_COLS - 1) / GRAM_COLS));
    }
    double tr = 0;
    for (int64_t i = 0; i < n; i++) tr += acc[i * n + i];
    const double sc = tr > 0 ? (double)n / tr : 0; /* trace n: the terms weigh alike */
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c <= i; c++) {
            H[i * n + c] += (float)((double)acc[c * n + i] * sc);
            H[c * n + i] = H[i * n + c];
        }
    PHIQ_FREE_ALL(x, p, acc);
    return 0;
}

int phiq_calib_session_embd_hessian(phiq_calib_session *s, float **H, int64_t *n_in) {
    phiq_model *m = s->m;
    const int64_t n = m->hp.n_embd;
    *H = NULL;
    if (m->hp.n_layer < 1) return 0;
    const phiq_layer *L = &m->layers[0];
    if (!L->fused_qkv || !L->ffn_norm) return 0;
    float *h = calloc((size_t)(n * n), sizeof(float));
    if (!h) return phiq_fail(PHIQ_ENOMEM, "calibration: out of memory");
    phiq_threadpool *tp = phiq_threadpool_new(s->o.n_threads);
    int rc = !tp ? PHIQ_ENOMEM : s->pinned ? 0 : phiq_model_layers_acquire(m, 0, 1); /* layer 0's matrices, converted */
    if (rc == 0) {
        rc = L->qkv.data && L->up.data ? add_gram(h, n, &L->qkv, L->attn_norm, tp) : 1;
        if (rc == 0) rc = add_gram(h, n, &L->up, L->ffn_norm, tp);
        if (!s->pinned) phiq_model_layers_release(m, 0, 1);
    }
    if (tp) phiq_threadpool_free(tp);
    if (rc != 0) { /* 1: no matrices to read */
        free(h);
        return rc < 0 ? rc : 0;
    }
    *H = h;
    *n_in = n;
    return 0;
}

/* The whole model in its in-memory type, as an eager load gives it (budget.c
 * evaluates it): every layer is acquired and stays so. */
phiq_model *phiq_calib_session_model(phiq_calib_session *s) {
    if (!s->pinned && phiq_model_layers_acquire(s->m, 0, s->m->hp.n_layer) < 0) return NULL;
    s->pinned = 1;
    return s->m;
}

int phiq_calib_session_passes(const phiq_calib_session *s) { return s->passes; }
double phiq_calib_session_seconds(const phiq_calib_session *s) { return s->seconds; }
int64_t phiq_calib_session_tokens(const phiq_calib_session *s) { return s->cur ? phiq_calib_tokens(s->cur) : 0; }
