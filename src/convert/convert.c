/* convert.c — `phiq convert`: an HF checkpoint (or an F32/F16/BF16 GGUF) to
 * a GGUF file of any supported type, streaming.
 *
 * Memory: tensors are produced one at a time by the GGUF writer's fill
 * callback straight from the memory-mapped sources; each worker thread reads
 * a block of rows into a small float32 staging buffer (CHUNK_ELEMS), checks
 * it is finite and converts/quantizes it into the output buffer. Peak RSS is
 * therefore about the writer's one-tensor output buffer plus the pages of the
 * source currently being read. Rows are split among threads by index, and a
 * row's bytes depend only on that row, so the output is identical for any
 * thread count.
 *
 * Type selection follows llama.cpp: 1-D tensors, *_norm.weight and
 * ffn_gate_inp are always F32 (convert_hf_to_gguf.py); everything else gets
 * the requested type, or for quantized ftypes the per-tensor type of
 * llama-quantize's mix (quant/mix.h), with --output-type, --embedding-type
 * and --tensor-type REGEX=T overrides.
 */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert/budget.h"
#include "convert/calib.h"
#include "convert/convert.h"
#include "core/common.h"
#include "formats/ggml_type.h"
#include "formats/gguf.h"
#include "formats/hf.h"
#include "model/phi3small.h"
#include "quant/gptq.h"
#include "quant/quant.h"
#include "tokenizer/tokenizer.h"

#if defined(__has_include)
#if __has_include("quant/mix.h")
#include "quant/mix.h"
#define PHIQ_HAVE_MIX 1
#endif
#endif
#ifndef PHIQ_HAVE_MIX
#define PHIQ_HAVE_MIX 0
#endif
/* quant/mix.h arrives with the quantizers (quant.c); without them only
 * f32/f16/bf16 can be written */
#if PHIQ_HAVE_MIX
#define CAN_DEQUANTIZE(t) phiq_quant_can_dequantize(t)
#else
#define CAN_DEQUANTIZE(t) 0
#endif

#define CHUNK_ELEMS (64 * 1024) /* float32 staging per thread: 256 KiB */
#define MIN_PARALLEL_ELEMS (256 * 1024)

/* ---- per-tensor type choice ------------------------------------------------------------
 * With the quantizers built (quant/mix.h), every decision is llama-quantize's
 * (phiq_mix_tensor_type: presets, --pure, --output-type, --embedding-type,
 * --tensor-type, block-size fallbacks). Without them only f32/f16/bf16 are
 * offered. Either way 1-D tensors, norms and ffn_gate_inp stay F32. */
typedef struct chooser {
    int ftype;      /* general.file_type */
    int base;       /* default weight type */
    char name[24];  /* canonical, e.g. "F16", "Q4_K_M" */
    int n_layer;
#if PHIQ_HAVE_MIX
    phiq_mix mix;
#endif
} chooser;

const char *phiq_convert_type_names(void) {
#if PHIQ_HAVE_MIX
    return phiq_mix_names();
#else
    return "F32 F16 BF16 fp32 fp16";
#endif
}

static bool is_norm_like(const char *name, int n_dims) {
    size_t n = strlen(name);
    return n_dims < 2 || (n >= 12 && !strcmp(name + n - 12, "_norm.weight")) || strstr(name, "ffn_gate_inp") ||
           n < 7 || strcmp(name + n - 7, ".weight");
}

#if PHIQ_HAVE_MIX
/* A single ggml type name (f16, q6_k, ...) for the override options. */
static int single_type(const char *opt, const char *s, int *out) {
    int t = phiq_ggml_type_from_name(s);
    if (t < 0 && phiq_streq_nocase(s, "fp16")) t = PHIQ_GGML_TYPE_F16;
    if (t < 0 && phiq_streq_nocase(s, "fp32")) t = PHIQ_GGML_TYPE_F32;
    if (t < 0 || !phiq_ggml_type_valid(t))
        return phiq_fail(PHIQ_EINVAL, "%s: unknown tensor type '%s' (e.g. f32, f16, bf16, q8_0, q4_k, q6_k)", opt, s);
    bool plain = t == PHIQ_GGML_TYPE_F32 || t == PHIQ_GGML_TYPE_F16 || t == PHIQ_GGML_TYPE_BF16;
    if (!plain && !(phiq_ggml_type_is_quantized(t) && phiq_quant_can_quantize(t)))
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: phiq cannot write tensor type '%s'", opt, s);
    *out = t;
    return 0;
}
#endif

static void chooser_free(chooser *c) {
#if PHIQ_HAVE_MIX
    phiq_mix_free(&c->mix);
#else
    (void)c;
#endif
}

static int chooser_init(chooser *c, const phiq_convert_opts *o) {
    memset(c, 0, sizeof *c);
    const char *s = o->type && *o->type ? o->type : "f16";
#if PHIQ_HAVE_MIX
    int rc;
    if ((rc = phiq_mix_parse(s, &c->mix)) < 0) return phiq_fail(rc, "unknown type '%s' (valid: %s)", s, phiq_mix_names());
    c->ftype = c->mix.ftype;
    c->base = c->mix.default_type;
    snprintf(c->name, sizeof c->name, "%s", c->mix.name);
    c->mix.pure = o->pure != 0;
    if (o->output_type && (rc = single_type("--output-type", o->output_type, &c->mix.output_type)) < 0) return rc;
    if (o->embedding_type && (rc = single_type("--embedding-type", o->embedding_type, &c->mix.token_embd_type)) < 0)
        return rc;
    for (int i = 0; i < o->n_tensor_types; i++)
        if ((rc = phiq_mix_add_override(&c->mix, o->tensor_types[i])) < 0) {
            phiq_error_prefix("--tensor-type");
            phiq_mix_free(&c->mix);
            return rc;
        }
    return 0;
#else
    static const struct {
        const char *name;
        int type, ftype;
    } plain[] = {{"f32", PHIQ_GGML_TYPE_F32, 0},  {"fp32", PHIQ_GGML_TYPE_F32, 0}, {"f16", PHIQ_GGML_TYPE_F16, 1},
                 {"fp16", PHIQ_GGML_TYPE_F16, 1}, {"bf16", PHIQ_GGML_TYPE_BF16, 32}};
    if (o->output_type || o->embedding_type || o->n_tensor_types)
        return phiq_fail(PHIQ_EUNSUPPORTED, "per-tensor types need the quantizers (not in this build)");
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (phiq_streq_nocase(s, plain[i].name)) {
            c->base = plain[i].type;
            c->ftype = plain[i].ftype;
            snprintf(c->name, sizeof c->name, "%s", phiq_ggml_type_name(c->base));
            return 0;
        }
    return phiq_fail(PHIQ_EINVAL, "unknown type '%s' (valid: %s)", s, phiq_convert_type_names());
#endif
}

/* Facts the mix depends on: GQA ratio, experts, and whether output.weight
 * exists (if not, token_embd plays its role). */
static void chooser_model(chooser *c, int n_layer, int n_head, int n_head_kv, int n_expert, bool has_output) {
    c->n_layer = n_layer;
#if PHIQ_HAVE_MIX
    c->mix.n_gqa = n_head > 0 && n_head_kv > 0 ? n_head / n_head_kv : 1;
    c->mix.n_expert = n_expert;
    c->mix.has_output = has_output;
#else
    (void)n_head, (void)n_head_kv, (void)n_expert, (void)has_output;
#endif
}

/* src_type: the type the tensor would keep if it is never quantized. */
static int choose_type(chooser *c, const char *name, int n_dims, const int64_t *ne, int src_type) {
    if (is_norm_like(name, n_dims)) return src_type;
#if PHIQ_HAVE_MIX
    return phiq_mix_tensor_type(&c->mix, name, n_dims, ne, c->n_layer, src_type);
#else
    (void)ne;
    return c->base;
#endif
}

/* ---- sources ------------------------------------------------------------------------- */
/* One output tensor's input: HF plan entry (1..n safetensors sources or
 * memory), or a GGUF tensor. */
typedef struct source {
    const phiq_plan_tensor *pt;
    const phiq_gguf_tensor *gt;
    int64_t n_elements;
} source;

/* Reads elements [start, start+n) of s as float32. Returns 0 or a negative
 * code; never calls phiq_fail (runs on worker threads). */
static int source_read(const source *s, int64_t start, int64_t n, float *dst) {
    if (s->gt) {
        const phiq_gguf_tensor *g = s->gt;
        int64_t bs = phiq_ggml_block_size(g->type), ts = phiq_ggml_type_size(g->type);
        if (bs <= 0 || ts <= 0 || start % bs || n % bs) return PHIQ_EFORMAT; /* whole rows are whole blocks */
        const uint8_t *p = (const uint8_t *)g->data + start / bs * ts;
        int rc = 0;
        switch (g->type) {
        case PHIQ_GGML_TYPE_F32: memcpy(dst, p, (size_t)n * 4); break;
        case PHIQ_GGML_TYPE_F16:
        case PHIQ_GGML_TYPE_BF16:
            for (int64_t i = 0; i < n; i++) {
                uint16_t h;
                memcpy(&h, p + 2 * i, 2);
                dst[i] = g->type == PHIQ_GGML_TYPE_F16 ? phiq_f16_to_f32(h) : phiq_bf16_to_f32(h);
            }
            break;
        default:
#if PHIQ_HAVE_MIX
            rc = phiq_dequantize(g->type, p, dst, n) < 0 ? PHIQ_EFORMAT : 0;
#else
            rc = PHIQ_EUNSUPPORTED;
#endif
        }
        phiq_release_pages(p, (uint64_t)(n / bs * ts));
        return rc;
    }
    const phiq_plan_tensor *t = s->pt;
    if (t->n_src == 0) {
        memcpy(dst, t->mem + start, (size_t)n * 4);
        return 0;
    }
    int64_t per = s->n_elements / t->n_src;
    while (n > 0) {
        int k = (int)(start / per);
        int64_t off = start - (int64_t)k * per, m = per - off < n ? per - off : n;
        if (phiq_st_to_f32(t->src[k], off, m, dst) < 0) return PHIQ_EFORMAT;
        int64_t es = t->src[k]->dtype == PHIQ_ST_F32 ? 4 : 2;
        phiq_release_pages((const uint8_t *)t->src[k]->data + off * es, (uint64_t)(m * es));
        start += m;
        n -= m;
        dst += m;
    }
    return 0;
}

/* ---- conversion of one tensor ----------------------------------------------------------- */
typedef struct tjob {
    const source *src;
    int type;
    int64_t ne0, nrows, row_bytes;
    uint8_t *dst;
    const float *imatrix;  /* [n_mat][ne0] weights or NULL */
    int64_t rows_per_mat;  /* rows sharing one imatrix row (an expert's rows) */
} tjob;

typedef struct worker {
    const tjob *job;
    int64_t r0, r1;
    int rc;
    int64_t bad; /* first non-finite element index, -1 none */
    float bad_val;
    pthread_t th;
} worker;

static void *worker_run(void *arg) {
    worker *w = arg;
    const tjob *j = w->job;
    w->rc = 0;
    w->bad = -1;
    int64_t rows_per = j->ne0 >= CHUNK_ELEMS ? 1 : CHUNK_ELEMS / j->ne0;
    float *buf = malloc((size_t)(rows_per * j->ne0) * sizeof(float));
    if (!buf) {
        w->rc = PHIQ_ENOMEM;
        return NULL;
    }
    for (int64_t r = w->r0, nr; r < w->r1; r += nr) {
        nr = w->r1 - r < rows_per ? w->r1 - r : rows_per;
        const float *imat = NULL;
        if (j->imatrix) { /* a chunk never straddles two experts' imatrix rows */
            int64_t mat = r / j->rows_per_mat, lim = (mat + 1) * j->rows_per_mat - r;
            if (nr > lim) nr = lim;
            imat = j->imatrix + mat * j->ne0;
        }
        int64_t n = nr * j->ne0;
        if ((w->rc = source_read(j->src, r * j->ne0, n, buf)) < 0) break;
        for (int64_t i = 0; i < n; i++) {
            if (!isfinite(buf[i])) {
                w->bad = r * j->ne0 + i;
                w->bad_val = buf[i];
                break;
            }
        }
        if (w->bad >= 0) break;
        uint8_t *out = j->dst + r * j->row_bytes;
        switch (j->type) {
        case PHIQ_GGML_TYPE_F32: memcpy(out, buf, (size_t)n * 4); break;
        case PHIQ_GGML_TYPE_F16:
            for (int64_t i = 0; i < n; i++) {
                uint16_t h = phiq_f32_to_f16(buf[i]);
                memcpy(out + 2 * i, &h, 2);
            }
            break;
        case PHIQ_GGML_TYPE_BF16:
            for (int64_t i = 0; i < n; i++) {
                uint16_t h = phiq_f32_to_bf16(buf[i]);
                memcpy(out + 2 * i, &h, 2);
            }
            break;
        default:
#if PHIQ_HAVE_MIX
            if (phiq_quantize(j->type, buf, out, nr, j->ne0, imat) < 0) w->rc = PHIQ_EUNSUPPORTED;
#else
            (void)imat;
            w->rc = PHIQ_EUNSUPPORTED;
#endif
        }
        if (w->rc < 0) break;
    }
    free(buf);
    return NULL;
}

typedef struct ctx {
    const phiq_convert_opts *o;
    int n_threads;
    /* HF */
    const phiq_plan *plan;
    /* GGUF source */
    const phiq_gguf *gin;
    const phiq_imatrix *imat; /* NULL = none */
    int n_imat_used;
    int *types;         /* chosen type per output tensor */
    phiq_calib_session *cal;  /* --calib, NULL = none */
    int n_gptq;
    int64_t n_elements; /* running total */
    uint64_t n_bytes;   /* tensor bytes written */
    const int32_t *sel_ids; /* --target-*: the held-out selection slice */
    int64_t n_sel;
} ctx;

/* Name of the source tensor holding element idx, for error messages. */
static void source_where(const source *s, int64_t idx, char *buf, size_t cap, int64_t *local) {
    if (s->gt) {
        snprintf(buf, cap, "%s", s->gt->name);
        *local = idx;
    } else if (s->pt->n_src == 0) {
        snprintf(buf, cap, "%s", s->pt->name);
        *local = idx;
    } else {
        int64_t per = s->n_elements / s->pt->n_src;
        int k = (int)(idx / per);
        snprintf(buf, cap, "%s", s->pt->src[k]->name);
        *local = idx - (int64_t)k * per;
    }
}

#if PHIQ_HAVE_MIX
/* GPTQ (quant/gptq.h) against the calibration Hessian: the whole tensor in float32. */
static int convert_tensor_gptq(ctx *c, const source *src, const char *name, int type, int64_t ne0, const float *H,
                               void *buf, uint64_t nbytes) {
    int64_t nrows = src->n_elements / ne0;
    if ((uint64_t)(nrows * phiq_ggml_row_size(type, ne0)) != nbytes)
        return phiq_fail(PHIQ_EFORMAT, "%s: size mismatch (%llu bytes expected)", name, (unsigned long long)nbytes);
    float *w = malloc(sizeof(float) * (size_t)src->n_elements);
    if (!w) return phiq_fail(PHIQ_ENOMEM, "out of memory converting %s", name);
    int rc = source_read(src, 0, src->n_elements, w);
    for (int64_t i = 0; rc == 0 && i < src->n_elements; i++)
        if (!isfinite(w[i])) {
            char where[256];
            int64_t local;
            source_where(src, i, where, sizeof where, &local);
            rc = phiq_fail(PHIQ_EFORMAT, "%s: non-finite value (%s) at element %lld", where, isnan(w[i]) ? "nan" : "inf",
                           (long long)local);
        }
    float damp = c->o->damp > 0 ? c->o->damp : 0.01f;
    if (rc == 0 && (rc = phiq_gptq_quantize(type, w, buf, nrows, ne0, H, damp, c->n_threads)) < 0)
        phiq_error_prefix("%s", name);
    free(w);
    if (rc < 0) return rc;
    c->n_gptq++;
    c->n_elements += src->n_elements;
    c->n_bytes += nbytes;
    return 0;
}
#endif

static int convert_tensor(ctx *c, const source *src, const char *name, int type, int64_t ne0, void *buf,
                          uint64_t nbytes) {
    tjob j = {.src = src, .type = type, .ne0 = ne0, .dst = buf};
    j.row_bytes = phiq_ggml_row_size(type, ne0);
    if (j.row_bytes <= 0 || ne0 <= 0) return phiq_fail(PHIQ_EFORMAT, "%s: bad row length %lld", name, (long long)ne0);
    j.nrows = src->n_elements / ne0;
#if PHIQ_HAVE_MIX
    if (c->cal && phiq_ggml_type_is_quantized(type)) {
        int failed;
        int64_t hn = 0;
        const float *H = phiq_calib_session_hessian(c->cal, name, &hn, &failed);
        if (failed) {
            phiq_error_prefix("calibration for %s", name);
            return PHIQ_EINVAL;
        }
        if (H && hn == ne0) return convert_tensor_gptq(c, src, name, type, ne0, H, buf, nbytes);
        if (!H && !strcmp(name, "token_embd.weight")) { /* no activations: the stand-in of calib.h */
            float *He;
            int rc = phiq_calib_session_embd_hessian(c->cal, &He, &hn);
            if (rc < 0) return rc;
            if (He && hn == ne0) {
                rc = convert_tensor_gptq(c, src, name, type, ne0, He, buf, nbytes);
                free(He);
                return rc;
            }
            free(He);
        }
        int n_mat = 1;
        const float *im = phiq_calib_session_imatrix(c->cal, name, &hn, &n_mat);
        if (im && hn == ne0 && j.nrows % n_mat == 0) {
            j.imatrix = im;
            j.rows_per_mat = j.nrows / n_mat;
        }
    }
#endif
    if (c->imat && phiq_ggml_type_is_quantized(type)) {
        int64_t ine0;
        int n_mat;
        const float *w = phiq_imatrix_find(c->imat, name, &ine0, &n_mat);
        if (w && n_mat == 1 && ine0 != ne0 && ine0 % ne0 == 0) { /* legacy .dat: experts in one entry */
            n_mat = (int)(ine0 / ne0);
            ine0 = ne0;
        }
        if (w) {
            if (ine0 != ne0 || j.nrows % n_mat)
                return phiq_fail(PHIQ_EFORMAT, "imatrix entry %s has %lld x %d values; the tensor has rows of %lld",
                                 name, (long long)ine0, n_mat, (long long)ne0);
            j.imatrix = w;
            j.rows_per_mat = j.nrows / n_mat;
            c->n_imat_used++;
        }
    }
    if ((uint64_t)(j.nrows * j.row_bytes) != nbytes)
        return phiq_fail(PHIQ_EFORMAT, "%s: size mismatch (%llu bytes expected)", name, (unsigned long long)nbytes);
    int nt = c->n_threads;
    if (src->n_elements < MIN_PARALLEL_ELEMS || nt < 1) nt = 1;
    if (nt > j.nrows) nt = (int)j.nrows;
    worker ws[64];
    if (nt > 64) nt = 64;
    for (int i = 0; i < nt; i++) {
        ws[i].job = &j;
        ws[i].r0 = j.nrows * i / nt;
        ws[i].r1 = j.nrows * (i + 1) / nt;
    }
    int started = 1;
    for (int i = 1; i < nt; i++, started++)
        if (pthread_create(&ws[i].th, NULL, worker_run, &ws[i]) != 0) break;
    worker_run(&ws[0]);
    /* threads that could not start: run their share here */
    for (int i = started; i < nt; i++) worker_run(&ws[i]);
    for (int i = 1; i < started; i++) pthread_join(ws[i].th, NULL);
    int64_t bad = -1;
    float bad_val = 0;
    int rc = 0;
    for (int i = 0; i < nt; i++) {
        if (ws[i].bad >= 0 && (bad < 0 || ws[i].bad < bad)) bad = ws[i].bad, bad_val = ws[i].bad_val;
        if (ws[i].rc < 0 && rc == 0) rc = ws[i].rc;
    }
    if (bad >= 0) {
        char where[256];
        int64_t local;
        source_where(src, bad, where, sizeof where, &local);
        return phiq_fail(PHIQ_EFORMAT, "%s: non-finite value (%s) at element %lld", where,
                         isnan(bad_val) ? "nan" : "inf", (long long)local);
    }
    if (rc == PHIQ_ENOMEM) return phiq_fail(rc, "out of memory converting %s", name);
    if (rc < 0)
        return phiq_fail(rc, "%s: cannot convert to %s", name, phiq_ggml_type_name(type));
    c->n_elements += src->n_elements;
    c->n_bytes += nbytes;
    return 0;
}

static int fill_hf(void *user, int64_t i, const char *name, void *buf, uint64_t nbytes) {
    ctx *c = user;
    const phiq_plan_tensor *t = &c->plan->t[i];
    source s = {.pt = t, .n_elements = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]};
    int rc = convert_tensor(c, &s, name, c->types[i], t->ne[0], buf, nbytes);
    for (int k = 0; k < t->n_src; k++) phiq_release_pages(t->src[k]->data, t->src[k]->nbytes);
    return rc;
}

static int fill_gguf_tensor(ctx *c, const phiq_gguf_tensor *t, int64_t i, const char *name, void *buf,
                            uint64_t nbytes);

static int fill_gguf(void *user, int64_t i, const char *name, void *buf, uint64_t nbytes) {
    ctx *c = user;
    const phiq_gguf_tensor *t = phiq_gguf_tensor_at(c->gin, i);
    int rc = fill_gguf_tensor(c, t, i, name, buf, nbytes);
    phiq_release_pages(t->data, t->nbytes);
    return rc;
}

static int fill_gguf_tensor(ctx *c, const phiq_gguf_tensor *t, int64_t i, const char *name, void *buf,
                            uint64_t nbytes) {
    if (t->type == c->types[i]) { /* kept as is (norms, biases, or same type) — still refuse non-finite floats */
        if (t->nbytes != nbytes) return phiq_fail(PHIQ_EFORMAT, "%s: size mismatch", name);
        if (t->type == PHIQ_GGML_TYPE_F32 || t->type == PHIQ_GGML_TYPE_F16 || t->type == PHIQ_GGML_TYPE_BF16) {
            source s = {.gt = t, .n_elements = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]};
            return convert_tensor(c, &s, name, t->type, t->ne[0], buf, nbytes);
        }
        memcpy(buf, t->data, nbytes);
        c->n_elements += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        c->n_bytes += nbytes;
        return 0;
    }
    source s = {.gt = t, .n_elements = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]};
    return convert_tensor(c, &s, name, c->types[i], t->ne[0], buf, nbytes);
}

/* ---- --target-bpw / --target-size (convert/budget.h) ------------------------------------------ */
/* Tensor i of the source: name, shape, and where its values come from. */
static void tensor_info(const ctx *c, int64_t i, const char **name, int *n_dims, const int64_t **ne, source *src) {
    if (c->plan) {
        const phiq_plan_tensor *t = &c->plan->t[i];
        *name = t->name, *n_dims = t->n_dims, *ne = t->ne;
        *src = (source){.pt = t, .n_elements = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]};
    } else {
        const phiq_gguf_tensor *t = phiq_gguf_tensor_at(c->gin, i);
        *name = t->name, *n_dims = t->n_dims, *ne = t->ne;
        *src = (source){.gt = t, .n_elements = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]};
    }
}

typedef struct budget_ud {
    ctx *c;
    const int64_t *idx; /* tensor index of each budget item */
} budget_ud;

/* The quantizer the file will use (GPTQ with --calib), for one candidate;
 * the running totals of the write are left untouched. */
static int budget_quantize(void *ud, int item, int type, void *dst, uint64_t nbytes) {
    budget_ud *b = ud;
    ctx *c = b->c;
    const char *name;
    int n_dims;
    const int64_t *ne;
    source src;
    tensor_info(c, b->idx[item], &name, &n_dims, &ne, &src);
    const int64_t n_el = c->n_elements;
    const uint64_t n_by = c->n_bytes;
    const int n_g = c->n_gptq;
    int rc = convert_tensor(c, &src, name, type, ne[0], dst, nbytes);
    c->n_elements = n_el, c->n_bytes = n_by, c->n_gptq = n_g;
    return rc;
}

static uint64_t padded(uint64_t n, uint32_t align) { return (n + align - 1) / align * align; }

/* Replaces types[] of the quantizable tensors (those the chooser quantizes)
 * by the budget's choice; *ftype gets the preset of the type holding most
 * weights. */
static int budget_apply(ctx *c, chooser *ch, int64_t nt, int *types, uint32_t align, phiq_convert_stats *st,
                        int *ftype) {
    const phiq_convert_opts *o = c->o;
    int cand[PHIQ_BUDGET_MAX_TYPES];
    int n_types = phiq_budget_parse_types(o->bpw_types, cand, PHIQ_BUDGET_MAX_TYPES);
    if (n_types < 0) return n_types;
    phiq_budget_item *it = calloc((size_t)nt + 1, sizeof *it);
    int64_t *idx = calloc((size_t)nt + 1, sizeof *idx);
    if (!it || !idx) {
        free(it), free(idx);
        return phiq_fail(PHIQ_ENOMEM, "out of memory");
    }
    int rc = 0, n = 0;
    uint64_t fixed = 0, preset_total = 0;
    int64_t n_weights = 0;
    (void)ch;
#if PHIQ_HAVE_MIX
    chooser pc = {0};
    int have_pc = 0;
    if (o->target_size) {
        phiq_convert_opts po = {.type = o->target_size};
        if ((rc = chooser_init(&pc, &po)) < 0) {
            phiq_error_prefix("--target-size");
            goto done;
        }
        have_pc = 1;
        if (!phiq_ggml_type_is_quantized(pc.base)) {
            rc = phiq_fail(PHIQ_EINVAL, "--target-size %s: expected a quantized preset (e.g. Q4_0, Q4_K_M, Q3_K_M)",
                           o->target_size);
            goto done;
        }
        pc.n_layer = ch->n_layer;
        pc.mix.n_gqa = ch->mix.n_gqa, pc.mix.n_expert = ch->mix.n_expert, pc.mix.has_output = ch->mix.has_output;
    }
#endif
    for (int64_t i = 0; i < nt && rc == 0; i++) {
        const char *name;
        int n_dims;
        const int64_t *ne;
        source src;
        tensor_info(c, i, &name, &n_dims, &ne, &src);
        n_weights += src.n_elements;
        const int64_t nrows = src.n_elements / ne[0];
#if PHIQ_HAVE_MIX
        if (have_pc) {
            int pt = c->plan ? (c->plan->t[i].force_f32 ? PHIQ_GGML_TYPE_F32 : choose_type(&pc, name, n_dims, ne, PHIQ_GGML_TYPE_F32))
                             : choose_type(&pc, name, n_dims, ne, src.gt->type);
            preset_total += padded((uint64_t)phiq_ggml_row_size(pt, ne[0]) * (uint64_t)nrows, align);
        }
#endif
        if (!phiq_ggml_type_is_quantized(types[i])) {
            fixed += padded((uint64_t)phiq_ggml_row_size(types[i], ne[0]) * (uint64_t)nrows, align);
            continue;
        }
        if (n_dims > 2) {
            rc = phiq_fail(PHIQ_EUNSUPPORTED, "--target-bpw: %s has %d dimensions (experts are not supported)", name, n_dims);
            break;
        }
        snprintf(it[n].name, sizeof it[n].name, "%s", name);
        it[n].ne0 = ne[0];
        it[n].nrows = nrows;
        idx[n] = i;
        if ((rc = phiq_budget_candidates(&it[n], cand, n_types, align)) < 0) break;
        n++;
    }
    if (rc < 0) goto done;
    const uint64_t total = o->target_size ? preset_total : (uint64_t)(o->target_bpw * (double)n_weights / 8.0);
    const uint64_t need = fixed + phiq_budget_min_bytes(it, n);
    if (st) {
        st->budget_bytes = total;
        st->min_bytes = need;
    }
    if (need > total) {
        if (o->target_size)
            rc = phiq_fail(PHIQ_EINVAL, "--target-size %s: %.3f MB of tensor data, but the smallest mix of %s needs %.3f MB",
                           o->target_size, (double)total / 1e6, o->bpw_types ? o->bpw_types : PHIQ_BUDGET_DEFAULT_TYPES,
                           (double)need / 1e6);
        else
            rc = phiq_fail(PHIQ_EINVAL, "--target-bpw %g: no mix fits: the smallest mix of %s is %.3f bits/weight",
                           o->target_bpw, o->bpw_types ? o->bpw_types : PHIQ_BUDGET_DEFAULT_TYPES,
                           8.0 * (double)need / (double)n_weights);
        goto done;
    }
    {
        phiq_budget_measure_opts mo = {.n_ctx = o->select_ctx, .n_threads = c->n_threads, .quiet = o->quiet};
        phiq_budget_sel *sel = phiq_budget_sel_new(phiq_calib_session_model(c->cal), c->sel_ids, c->n_sel, &mo);
        if (!sel) {
            rc = PHIQ_EINVAL;
            goto done;
        }
        budget_ud ud = {c, idx};
        double predicted = 0, measured = 0;
        if ((rc = phiq_budget_measure(sel, it, n, budget_quantize, &ud)) == 0 &&
            (rc = phiq_budget_solve(it, n, total - fixed, &predicted)) == 0)
            rc = phiq_budget_check(sel, it, n, budget_quantize, &ud, &measured);
        if (st) {
            st->predicted_kld = predicted;
            st->select_kld = measured;
            st->select_evals = phiq_budget_sel_evals(sel);
            st->select_positions = phiq_budget_sel_scored(sel);
            st->select_seconds = phiq_budget_sel_seconds(sel);
        }
        phiq_budget_sel_free(sel);
        if (rc < 0) goto done;
    }
    /* the chosen types; general.file_type from the type holding most weights */
    {
        int64_t by_type[PHIQ_GGML_TYPE_COUNT] = {0};
        if (st && !(st->choices = calloc((size_t)n + 1, sizeof *st->choices))) {
            rc = phiq_fail(PHIQ_ENOMEM, "out of memory");
            goto done;
        }
        for (int k = 0; k < n; k++) {
            const int t = it[k].cand[it[k].choice];
            types[idx[k]] = t;
            by_type[t] += it[k].ne0 * it[k].nrows;
            if (st) {
                phiq_convert_choice *cc = &st->choices[st->n_choices++];
                snprintf(cc->name, sizeof cc->name, "%s", it[k].name);
                cc->type = t;
                cc->bytes = it[k].raw[it[k].choice];
                cc->dkld = it[k].dkld[it[k].choice];
            }
        }
        int top = 0;
        for (int t = 1; t < PHIQ_GGML_TYPE_COUNT; t++)
            if (by_type[t] > by_type[top]) top = t;
#if PHIQ_HAVE_MIX
        const char *pname = NULL;
        int f = phiq_mix_ftype_of_type(top, &pname);
        if (f >= 0) {
            *ftype = f;
            snprintf(ch->name, sizeof ch->name, "mix(%s)", phiq_ggml_type_name(top));
        }
#endif
    }
done:
#if PHIQ_HAVE_MIX
    if (have_pc) chooser_free(&pc);
#endif
    free(it);
    free(idx);
    return rc;
}

void phiq_convert_stats_free(phiq_convert_stats *st) {
    if (!st) return;
    free(st->choices);
    st->choices = NULL;
    st->n_choices = 0;
}

/* ---- metadata ------------------------------------------------------------------------------ */
static bool has_token(const phiq_tok_vocab *v, const char *text) {
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (!strcmp(v->tokens[i], text)) return true;
    return false;
}

/* general.name: the checkpoint directory's name unless given. llama.cpp
 * switches on Phi-3 token handling when the name contains "phi3"/"phi-3"
 * and then looks up </s>, <unk>, <s>, <|endoftext|> unconditionally (load
 * failure if one is missing), so such names are defused for vocabularies
 * that lack them. */
static char *model_name(const char *src, const char *given, const phiq_tok_vocab *v) {
    char *name;
    if (given) {
        name = strdup(given);
    } else {
        size_t n = strlen(src);
        while (n > 1 && src[n - 1] == '/') n--;
        const char *b = src + n;
        while (b > src && b[-1] != '/') b--;
        name = strndup(b, (size_t)(src + n - b));
    }
    if (!name) return NULL;
    if (v && (phiq_contains_nocase(name, "phi3") || phiq_contains_nocase(name, "phi-3"))) {
        const char *need[4] = {"</s>", "<unk>", "<s>", "<|endoftext|>"};
        bool ok = true;
        for (int k = 0; k < 4; k++) ok = ok && has_token(v, need[k]);
        /* "phi3" -> "phi 3", "phi-3" -> "phi -3" */
        for (size_t at = 0; !ok && name[at]; at++) {
            if (tolower((unsigned char)name[at]) != 'p' || tolower((unsigned char)name[at + 1]) != 'h' ||
                tolower((unsigned char)name[at + 2]) != 'i' ||
                !(name[at + 3] == '3' || (name[at + 3] == '-' && name[at + 4] == '3')))
                continue;
            size_t l = strlen(name);
            char *nn = malloc(l + 2);
            if (!nn) break;
            memcpy(nn, name, at + 3);
            nn[at + 3] = ' ';
            memcpy(nn + at + 4, name + at + 3, l - at - 2);
            free(name);
            name = nn;
        }
    }
    return name;
}

#define SET(expr)                                                                                                      \
    do {                                                                                                               \
        if ((rc = (expr)) < 0) return rc;                                                                              \
    } while (0)

static int write_hparams(phiq_gguf_writer *w, const phiq_hparams *hp, const char *name, int ftype) {
    int rc;
    const char *a = phiq_arch_name(hp->arch);
    char k[128];
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", a, s), k)
    SET(phiq_gguf_writer_set_str(w, "general.architecture", a));
    SET(phiq_gguf_writer_set_str(w, "general.name", name));
    SET(phiq_gguf_writer_set_u32(w, KEY("context_length"), (uint32_t)hp->n_ctx_train));
    if (hp->arch != PHIQ_ARCH_PHI2)
        SET(phiq_gguf_writer_set_u32(w, KEY("rope.scaling.original_context_length"), (uint32_t)hp->n_ctx_orig));
    SET(phiq_gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)hp->n_embd));
    /* phi2: convert_hf_to_gguf.py writes 4 * n_embd, which is intermediate_size
     * for every released Phi-1.5/2; the real value keeps other shapes loadable */
    SET(phiq_gguf_writer_set_u32(w, KEY("feed_forward_length"), (uint32_t)hp->n_ff));
    SET(phiq_gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)hp->n_layer));
    SET(phiq_gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)hp->n_head));
    SET(phiq_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)hp->n_head_kv));
    if (hp->arch == PHIQ_ARCH_PHI2) {
        SET(phiq_gguf_writer_set_f32(w, KEY("attention.layer_norm_epsilon"), hp->norm_eps));
        SET(phiq_gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)hp->n_rot));
        SET(phiq_gguf_writer_set_u32(w, "general.file_type", (uint32_t)ftype));
    } else if (hp->arch == PHIQ_ARCH_PHI3SMALL) { /* phiq's own keys: docs/FORMATS.md */
        SET(phiq_gguf_writer_set_f32(w, KEY("attention.layer_norm_epsilon"), hp->norm_eps));
        SET(phiq_gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)hp->n_rot));
        SET(phiq_gguf_writer_set_f32(w, KEY("rope.freq_base"), hp->rope_theta));
        SET(phiq_gguf_writer_set_u32(w, "general.file_type", (uint32_t)ftype));
        if (hp->n_rope_factors > 0) {
            SET(phiq_gguf_writer_set_f32(w, KEY("rope.scaling.attn_factor"), hp->rope_attn_factor));
            SET(phiq_gguf_writer_set_f32(w, KEY("rope.scaling.long_attn_factor"), hp->rope_attn_factor_long));
        }
        SET(phiq_phi3small_gguf_write(w, hp));
    } else {
        SET(phiq_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), hp->norm_eps));
        SET(phiq_gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)hp->n_rot));
        SET(phiq_gguf_writer_set_f32(w, KEY("rope.freq_base"), hp->rope_theta));
        SET(phiq_gguf_writer_set_u32(w, "general.file_type", (uint32_t)ftype));
        SET(phiq_gguf_writer_set_u32(w, KEY("attention.sliding_window"),
                                     (uint32_t)(hp->sliding_window > 0 ? hp->sliding_window : 0)));
        if (hp->arch == PHIQ_ARCH_PHIMOE) {
            SET(phiq_gguf_writer_set_u32(w, KEY("expert_count"), (uint32_t)hp->n_expert));
            SET(phiq_gguf_writer_set_u32(w, KEY("expert_used_count"), (uint32_t)hp->n_expert_used));
            /* phiq's key (llama.cpp ignores it): the SparseMixer mask's eps */
            SET(phiq_gguf_writer_set_f32(w, KEY("router_jitter_noise"), hp->router_jitter));
        }
        if (hp->n_rope_factors > 0) {
            SET(phiq_gguf_writer_set_f32(w, KEY("rope.scaling.attn_factor"), hp->rope_attn_factor));
            /* PhiMoE's long_mscale, phiq's key, only where it differs */
            if (hp->rope_attn_factor_long != hp->rope_attn_factor)
                SET(phiq_gguf_writer_set_f32(w, KEY("rope.scaling.long_attn_factor"), hp->rope_attn_factor_long));
        }
    }
#undef KEY
    return 0;
}

/* llama-quantize records the importance matrix it used */
static int imatrix_keys(phiq_gguf_writer *w, const phiq_convert_opts *o, const phiq_imatrix *imat) {
    int rc;
    if (!imat) return 0;
    SET(phiq_gguf_writer_set_str(w, "quantize.imatrix.file", o->imatrix));
    if (phiq_imatrix_dataset(imat)) SET(phiq_gguf_writer_set_str(w, "quantize.imatrix.dataset", phiq_imatrix_dataset(imat)));
    SET(phiq_gguf_writer_set_i32(w, "quantize.imatrix.entries_count", phiq_imatrix_n_entries(imat)));
    SET(phiq_gguf_writer_set_i32(w, "quantize.imatrix.chunks_count", phiq_imatrix_chunks(imat)));
    return 0;
}

/* What both conversions end with: the imatrix keys, the file written with
 * fill (from an HF or a GGUF source), the statistics but for arch. */
static int write_file(ctx *c, phiq_gguf_writer *w, const char *dst, phiq_gguf_fill_fn fill, int64_t n_tensors,
                      phiq_convert_stats *st) {
    int rc = imatrix_keys(w, c->o, c->imat);
    if (rc < 0) return rc;
    phiq_gguf_write_opts wo = {.quiet = c->o->quiet, .label = "convert"};
    double t0 = phiq_now();
    if ((rc = phiq_gguf_writer_write(w, dst, fill, c, &wo)) >= 0 && st) {
        st->seconds = phiq_now() - t0;
        st->n_tensors = n_tensors;
        st->n_elements = c->n_elements;
        st->n_gptq = c->n_gptq;
        st->data_bytes = c->n_bytes;
    }
    return rc;
}

/* The tokenizer.* keys: the tokenizer module's reading of tokenizer.json
 * (the runtime tokenizer's too), for this model's rows and config.json ids. */
static int load_vocab(const phiq_hf *hf, const phiq_hparams *hp, phiq_tok_vocab **out) {
    const char *tj = phiq_hf_tokenizer_json(hf);
    if (!tj && hp->arch == PHIQ_ARCH_PHI3SMALL) { /* Phi3SmallTokenizer: the tiktoken ranks beside config.json */
        char *tk = phiq_path_join(phiq_hf_dir(hf), "cl100k_base.tiktoken");
        if (!tk) return phiq_fail(PHIQ_ENOMEM, "out of memory");
        if (!phiq_file_exists(tk)) *out = phiq_fail_null(PHIQ_EUNSUPPORTED, "no cl100k_base.tiktoken (Phi-3-small's tokenizer)");
        else *out = phiq_tok_vocab_phi3small(tk, phiq_hf_tokenizer_config_json(hf));
        free(tk);
        if (*out && phiq_tok_vocab_pad(*out, hp->n_vocab) < 0) {
            phiq_tok_vocab_free(*out);
            *out = NULL;
            return phiq_fail(PHIQ_ENOMEM, "out of memory");
        }
        return *out ? 0 : PHIQ_EFORMAT;
    }
    if (!tj) return phiq_fail(PHIQ_EUNSUPPORTED, "no tokenizer.json (llama.cpp needs a vocabulary)");
    phiq_tok_hf_model m = {.n_vocab = hp->n_vocab,
                           .bos_id = hp->bos_id,
                           .eos_id = hp->n_eos > 0 ? hp->eos_ids[0] : -1,
                           .pad_id = hp->pad_id,
                           .phi2 = hp->arch == PHIQ_ARCH_PHI2};
    *out = phiq_tok_vocab_from_hf_model(tj, phiq_hf_tokenizer_config_json(hf), &m);
    return *out ? 0 : PHIQ_EFORMAT;
}

/* ---- drivers --------------------------------------------------------------------------------- */
static int convert_hf(const char *src, const char *dst, const phiq_convert_opts *o, chooser *ch, phiq_calib_session *cal,
                      const int32_t *sel_ids, int64_t n_sel, const phiq_imatrix *imat, phiq_convert_stats *st,
                      int n_threads) {
    int rc = 0;
    phiq_plan plan = {0};
    phiq_tok_vocab *voc = NULL;
    char *name = NULL;
    int *types = NULL;
    phiq_gguf_writer *w = NULL;
    phiq_hf *hf = phiq_hf_open(src);
    if (!hf) return PHIQ_EFORMAT;
    const phiq_hparams *hp = phiq_hf_hparams(hf);
    if ((rc = phiq_plan_build(&plan, hf)) < 0) goto done;
    if ((rc = load_vocab(hf, hp, &voc)) < 0) {
        phiq_error_prefix("%s", src);
        goto done;
    }
    if (!(name = model_name(src, o->name, voc))) {
        rc = phiq_fail(PHIQ_ENOMEM, "out of memory");
        goto done;
    }
    if (!(w = phiq_gguf_writer_new())) {
        rc = PHIQ_ENOMEM;
        goto done;
    }
    if ((rc = write_hparams(w, hp, name, ch->ftype)) < 0) goto done;
    if ((rc = phiq_tok_vocab_to_gguf(voc, w)) < 0) goto done;
    if ((rc = phiq_gguf_writer_set_u32(w, "general.quantization_version", 2)) < 0) goto done;

    bool has_output = false;
    for (int i = 0; i < plan.n; i++)
        if (!strcmp(plan.t[i].name, "output.weight")) has_output = true;
    chooser_model(ch, hp->n_layer, hp->n_head, hp->n_head_kv, hp->n_expert, has_output);
    types = calloc((size_t)plan.n + 1, sizeof *types);
    if (!types) {
        rc = phiq_fail(PHIQ_ENOMEM, "out of memory");
        goto done;
    }
    ctx c = {.o = o, .n_threads = n_threads, .plan = &plan, .types = types, .imat = imat, .cal = cal,
             .sel_ids = sel_ids, .n_sel = n_sel};
    for (int i = 0; i < plan.n; i++) {
        const phiq_plan_tensor *t = &plan.t[i];
        types[i] = t->force_f32 ? PHIQ_GGML_TYPE_F32
                                 : choose_type(ch, t->name, t->n_dims, t->ne, PHIQ_GGML_TYPE_F32);
    }
    if (sel_ids) {
        int ftype = ch->ftype;
        if ((rc = budget_apply(&c, ch, plan.n, types, 32, st, &ftype)) < 0 ||
            (rc = phiq_gguf_writer_set_u32(w, "general.file_type", (uint32_t)ftype)) < 0)
            goto done;
    }
    for (int i = 0; i < plan.n; i++)
        if ((rc = phiq_gguf_writer_add_tensor(w, plan.t[i].name, types[i], plan.t[i].n_dims, plan.t[i].ne)) < 0) goto done;
    if ((rc = write_file(&c, w, dst, fill_hf, plan.n, st)) >= 0 && st)
        snprintf(st->arch, sizeof st->arch, "%s", phiq_arch_name(hp->arch));
done:
    phiq_gguf_writer_free(w);
    free(types);
    free(name);
    phiq_tok_vocab_free(voc);
    phiq_plan_free(&plan);
    phiq_hf_close(hf);
    return rc;
}

static int convert_gguf(const char *src, const char *dst, const phiq_convert_opts *o, chooser *ch, phiq_calib_session *cal,
                        const int32_t *sel_ids, int64_t n_sel, const phiq_imatrix *imat, phiq_convert_stats *st,
                        int n_threads) {
    int rc = 0;
    int *types = NULL;
    phiq_gguf_writer *w = NULL;
    phiq_gguf *g = phiq_gguf_open(src);
    if (!g) return PHIQ_EFORMAT;
    int64_t nt = phiq_gguf_n_tensors(g);
    const char *arch = NULL;
    uint64_t alen = 0;
    if (phiq_gguf_get_str(g, "general.architecture", &arch, &alen) < 0) {
        rc = PHIQ_EFORMAT;
        goto done;
    }
    if (!(w = phiq_gguf_writer_new())) {
        rc = PHIQ_ENOMEM;
        goto done;
    }
    for (int64_t i = 0; i < phiq_gguf_n_kv(g); i++)
        if ((rc = phiq_gguf_writer_copy_kv(w, g, i)) < 0) goto done;
    if ((rc = phiq_gguf_writer_set_u32(w, "general.file_type", (uint32_t)ch->ftype)) < 0) goto done;
    if ((rc = phiq_gguf_writer_set_u32(w, "general.quantization_version", 2)) < 0) goto done;
    if (o->name && (rc = phiq_gguf_writer_set_str(w, "general.name", o->name)) < 0) goto done;
    {
        /* model facts for the mix, from {arch}.* keys (absent → defaults) */
        const char *keys[4] = {"block_count", "attention.head_count", "attention.head_count_kv", "expert_count"};
        uint32_t v[4] = {0, 1, 1, 0};
        for (int k = 0; k < 4; k++) {
            char key[128];
            snprintf(key, sizeof key, "%.*s.%s", (int)(alen < 64 ? alen : 64), arch, keys[k]);
            if (phiq_gguf_find_kv(g, key) >= 0 && phiq_gguf_get_u32(g, key, &v[k]) < 0) {
                rc = PHIQ_EFORMAT;
                goto done;
            }
        }
        if (v[2] == 0) v[2] = v[1];
        chooser_model(ch, (int)v[0], (int)v[1], (int)v[2], (int)v[3], phiq_gguf_find_tensor(g, "output.weight") != NULL);
    }
    types = calloc((size_t)nt + 1, sizeof *types);
    if (!types) {
        rc = phiq_fail(PHIQ_ENOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < nt; i++) {
        const phiq_gguf_tensor *t = phiq_gguf_tensor_at(g, i);
        if (phiq_ggml_type_is_quantized(t->type) && !o->allow_requantize) {
            rc = phiq_fail(PHIQ_EUNSUPPORTED, "%s: tensor %s is already quantized (%s); use --allow-requantize", src,
                           t->name, phiq_ggml_type_name(t->type));
            goto done;
        }
        if (phiq_ggml_type_is_quantized(t->type) && !CAN_DEQUANTIZE(t->type)) {
            rc = phiq_fail(PHIQ_EUNSUPPORTED, "%s: tensor %s has type %s, which phiq cannot dequantize", src, t->name,
                           phiq_ggml_type_name(t->type));
            goto done;
        }
        if (!phiq_ggml_type_is_quantized(t->type) && t->type != PHIQ_GGML_TYPE_F32 &&
            t->type != PHIQ_GGML_TYPE_F16 && t->type != PHIQ_GGML_TYPE_BF16) {
            rc = phiq_fail(PHIQ_EUNSUPPORTED, "%s: tensor %s has type %s", src, t->name, phiq_ggml_type_name(t->type));
            goto done;
        }
        /* llama-quantize leaves non-quantizable tensors (norms, biases, 1-D) as they are */
        types[i] = choose_type(ch, t->name, t->n_dims, t->ne, t->type);
    }
    ctx c = {.o = o, .n_threads = n_threads, .gin = g, .types = types, .imat = imat, .cal = cal,
             .sel_ids = sel_ids, .n_sel = n_sel};
    if (sel_ids) {
        int ftype = ch->ftype;
        if ((rc = budget_apply(&c, ch, nt, types, phiq_gguf_alignment(g), st, &ftype)) < 0 ||
            (rc = phiq_gguf_writer_set_u32(w, "general.file_type", (uint32_t)ftype)) < 0)
            goto done;
    }
    for (int64_t i = 0; i < nt; i++) {
        const phiq_gguf_tensor *t = phiq_gguf_tensor_at(g, i);
        if ((rc = phiq_gguf_writer_add_tensor(w, t->name, types[i], t->n_dims, t->ne)) < 0) goto done;
    }
    if ((rc = write_file(&c, w, dst, fill_gguf, nt, st)) >= 0 && st)
        snprintf(st->arch, sizeof st->arch, "%.*s", (int)(alen < 15 ? alen : 15), arch);
done:
    phiq_gguf_writer_free(w);
    free(types);
    phiq_gguf_close(g);
    return rc;
}

int phiq_convert(const char *src, const char *dst, const phiq_convert_opts *o, phiq_convert_stats *st) {
    static const phiq_convert_opts defaults = {0};
    if (!o) o = &defaults;
    if (st) memset(st, 0, sizeof *st);
    if (!src || !dst) return phiq_fail(PHIQ_EINVAL, "convert: source and destination are required");
    const int budget = o->target_bpw > 0 || o->target_size;
    phiq_convert_opts bo;
    if (budget) {
        if (!o->calib)
            return phiq_fail(PHIQ_EINVAL, "--target-%s needs --calib TEXT (sensitivities are measured on a held-out "
                                          "slice of it)", o->target_size ? "size" : "bpw");
        if (o->target_bpw > 0 && o->target_size)
            return phiq_fail(PHIQ_EINVAL, "--target-bpw and --target-size exclude each other");
        if (o->type || o->pure || o->output_type || o->embedding_type || o->n_tensor_types)
            return phiq_fail(PHIQ_EINVAL, "--target-%s chooses every tensor's type: drop --type, --pure, "
                                          "--output-type, --embedding-type and --tensor-type",
                             o->target_size ? "size" : "bpw");
        if (o->target_bpw > 0 && !(o->target_bpw < 64))
            return phiq_fail(PHIQ_EINVAL, "--target-bpw %g: expected bits per weight below 64", o->target_bpw);
        /* which tensors are quantizable: llama-quantize's rules, through a quantized preset */
        bo = *o;
        bo.type = "Q4_K_M";
        o = &bo;
    }
    chooser ch;
    int rc = chooser_init(&ch, o);
    if (rc < 0) return rc;
    phiq_imatrix *imat = NULL;
    if (o->imatrix) {
#if PHIQ_HAVE_MIX
        if (!(imat = phiq_imatrix_load(o->imatrix))) {
            chooser_free(&ch);
            return PHIQ_EFORMAT;
        }
        ch.mix.has_imatrix = true;
#else
        chooser_free(&ch);
        return phiq_fail(PHIQ_EUNSUPPORTED, "--imatrix needs the quantizers (not in this build)");
#endif
    }
    int n_threads = o->n_threads > 0 ? o->n_threads : phiq_physical_cores();
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 64) n_threads = 64;
    phiq_calib_session *cal = NULL;
    const int32_t *sel_ids = NULL;
    int64_t n_sel = 0;
    if (o->calib) {
        if (imat) {
            chooser_free(&ch);
            phiq_imatrix_free(imat);
            return phiq_fail(PHIQ_EINVAL, "--calib computes its own statistics: drop --imatrix");
        }
        phiq_calib_opts co = {.n_ctx = o->calib_ctx > 0 ? o->calib_ctx : 512, .max_chunks = o->calib_chunks,
                              .n_threads = n_threads, .quiet = o->quiet};
        if (!(cal = phiq_calib_session_new(src, o->calib, &co, o->calib_mem ? o->calib_mem : (uint64_t)1 << 30))) {
            chooser_free(&ch);
            return PHIQ_EINVAL;
        }
        ch.mix.has_imatrix = true; /* the same per-tensor types as llama-quantize --imatrix */
        if (budget) {
            const int sctx = o->select_ctx > 0 ? o->select_ctx : 256, sch = o->select_chunks > 0 ? o->select_chunks : 4;
            n_sel = (int64_t)sctx * sch;
            if (!(sel_ids = phiq_calib_session_hold_out(cal, n_sel))) {
                phiq_calib_session_free(cal);
                chooser_free(&ch);
                return PHIQ_EINVAL;
            }
        }
    }
    if (phiq_dir_exists(src)) {
        rc = convert_hf(src, dst, o, &ch, cal, sel_ids, n_sel, imat, st, n_threads);
    } else if (phiq_file_exists(src)) {
        rc = convert_gguf(src, dst, o, &ch, cal, sel_ids, n_sel, imat, st, n_threads);
    } else {
        rc = phiq_fail(PHIQ_EIO, "%s: no such file or directory", src);
    }
    if (rc == 0 && st) {
        snprintf(st->ftype, sizeof st->ftype, "%s", ch.name);
        struct stat sb;
        if (stat(dst, &sb) == 0) st->file_bytes = (uint64_t)sb.st_size;
    }
    if (cal && st) {
        st->calib_passes = phiq_calib_session_passes(cal);
        st->calib_seconds = phiq_calib_session_seconds(cal);
        st->calib_tokens = phiq_calib_session_tokens(cal);
    }
    phiq_calib_session_free(cal);
    chooser_free(&ch);
    phiq_imatrix_free(imat);
    return rc;
}
