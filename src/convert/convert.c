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
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convert/convert.h"
#include "core/common.h"
#include "formats/ggml_type.h"
#include "formats/gguf.h"
#include "formats/hf.h"
#include "quant/quant.h"

#if defined(__has_include)
#if __has_include("quant/mix.h")
#include "quant/mix.h"
#define PHIQ_HAVE_MIX 1
#endif
#endif
#ifndef PHIQ_HAVE_MIX
#define PHIQ_HAVE_MIX 0
#endif

#define CHUNK_ELEMS (64 * 1024) /* float32 staging per thread: 256 KiB */
#define MIN_PARALLEL_ELEMS (256 * 1024)

/* ---- requested type -------------------------------------------------------- */
typedef struct typesel {
    int base;        /* ggml type for 2-D+ weights (mix default) */
    int ftype;       /* general.file_type */
    char name[24];   /* canonical name, e.g. "F16", "Q4_K_M" */
    bool quantized;  /* a llama-quantize mix */
#if PHIQ_HAVE_MIX
    phiq_mix mix;
#endif
} typesel;

static const struct {
    const char *name;
    int type;
    int ftype;
} plain_types[] = {
    {"f32", PHIQ_GGML_TYPE_F32, 0},  {"fp32", PHIQ_GGML_TYPE_F32, 0}, {"f16", PHIQ_GGML_TYPE_F16, 1},
    {"fp16", PHIQ_GGML_TYPE_F16, 1}, {"bf16", PHIQ_GGML_TYPE_BF16, 32},
};

const char *phiq_convert_type_names(void) {
#if PHIQ_HAVE_MIX
    static char buf[1024];
    if (!buf[0]) snprintf(buf, sizeof buf, "f32, f16, bf16, fp32, fp16, %s", phiq_mix_names());
    return buf;
#else
    return "f32, f16, bf16, fp32, fp16";
#endif
}

static int typesel_parse(typesel *ts, const char *s) {
    memset(ts, 0, sizeof *ts);
    if (!s || !*s) s = "f16";
    for (size_t i = 0; i < sizeof plain_types / sizeof plain_types[0]; i++) {
        if (phiq_streq_nocase(s, plain_types[i].name)) {
            ts->base = plain_types[i].type;
            ts->ftype = plain_types[i].ftype;
            snprintf(ts->name, sizeof ts->name, "%s", phiq_ggml_type_name(ts->base));
            return 0;
        }
    }
#if PHIQ_HAVE_MIX
    if (phiq_mix_parse(s, &ts->mix) == 0) {
        ts->base = ts->mix.default_type;
        ts->ftype = ts->mix.ftype;
        ts->quantized = true;
        snprintf(ts->name, sizeof ts->name, "%s", ts->mix.name);
        return 0;
    }
#endif
    return phiq_fail(PHIQ_EINVAL, "unknown type '%s' (valid: %s)", s, phiq_convert_type_names());
}

/* A single ggml type name for --output-type / --embedding-type / --tensor-type. */
static int single_type(const char *s, int *out) {
    for (size_t i = 0; i < sizeof plain_types / sizeof plain_types[0]; i++)
        if (phiq_streq_nocase(s, plain_types[i].name)) return *out = plain_types[i].type, 0;
    int t = phiq_ggml_type_from_name(s);
    if (t < 0 || !phiq_ggml_type_valid(t))
        return phiq_fail(PHIQ_EINVAL, "unknown tensor type '%s' (e.g. f32, f16, bf16, q8_0, q4_k, q6_k)", s);
    if (phiq_ggml_type_is_quantized(t) && !phiq_quant_can_quantize(t))
        return phiq_fail(PHIQ_EUNSUPPORTED, "tensor type '%s' cannot be written by phiq", s);
    if (!phiq_ggml_type_is_quantized(t) && t != PHIQ_GGML_TYPE_F32 && t != PHIQ_GGML_TYPE_F16 &&
        t != PHIQ_GGML_TYPE_BF16)
        return phiq_fail(PHIQ_EUNSUPPORTED, "tensor type '%s' is not a weight type", s);
    *out = t;
    return 0;
}

/* ---- per-tensor type choice ---------------------------------------------------------- */
typedef struct override {
    regex_t re;
    int type;
} override;

typedef struct chooser {
    typesel ts;
    int pure;
    int output_type, embd_type; /* -1 = none */
    override *ov;
    int n_ov;
    int n_layer;
    bool has_output; /* output.weight present (else token_embd plays its role) */
    int n_attn_v_like, i_attn_v_like, i_ffn_down; /* mix counters (llama-quantize's qs) */
} chooser;

static bool is_norm_like(const char *name, int n_dims) {
    size_t n = strlen(name);
    return n_dims < 2 || (n >= 12 && !strcmp(name + n - 12, "_norm.weight")) || strstr(name, "ffn_gate_inp") ||
           (n < 7 || strcmp(name + n - 7, ".weight"));
}

/* llama-quantize's fallback when ne0 does not fit the block size. */
static int fit_block(int type, int64_t ne0) {
    if (phiq_ggml_row_size(type, ne0) >= 0) return type;
    int f;
    switch (type) {
    case PHIQ_GGML_TYPE_Q2_K:
    case PHIQ_GGML_TYPE_Q3_K:
    case PHIQ_GGML_TYPE_IQ2_XXS:
    case PHIQ_GGML_TYPE_IQ2_XS:
    case PHIQ_GGML_TYPE_IQ2_S:
    case PHIQ_GGML_TYPE_IQ3_XXS:
    case PHIQ_GGML_TYPE_IQ3_S:
    case PHIQ_GGML_TYPE_IQ1_S:
    case PHIQ_GGML_TYPE_IQ1_M: f = type <= PHIQ_GGML_TYPE_Q3_K ? PHIQ_GGML_TYPE_Q4_0 : PHIQ_GGML_TYPE_IQ4_NL; break;
    case PHIQ_GGML_TYPE_IQ4_XS: f = PHIQ_GGML_TYPE_IQ4_NL; break;
    case PHIQ_GGML_TYPE_Q4_K: f = PHIQ_GGML_TYPE_Q5_0; break;
    case PHIQ_GGML_TYPE_Q5_K: f = PHIQ_GGML_TYPE_Q5_1; break;
    case PHIQ_GGML_TYPE_Q6_K: f = PHIQ_GGML_TYPE_Q8_0; break;
    default: f = PHIQ_GGML_TYPE_F16;
    }
    if (phiq_ggml_row_size(f, ne0) < 0) f = PHIQ_GGML_TYPE_F16;
    return f;
}

static int choose_type(chooser *c, const char *name, int n_dims, const int64_t *ne) {
    if (is_norm_like(name, n_dims)) return PHIQ_GGML_TYPE_F32;
    int t = c->ts.base;
#if PHIQ_HAVE_MIX
    if (c->ts.quantized && !c->pure) t = phiq_mix_tensor_type(&c->ts.mix, name, n_dims, ne, c->n_layer, c->has_output);
#endif
    bool is_output = !strcmp(name, "output.weight") || (!c->has_output && !strcmp(name, "token_embd.weight"));
    if (c->output_type >= 0 && is_output) t = c->output_type;
    else if (c->embd_type >= 0 && !strcmp(name, "token_embd.weight")) t = c->embd_type;
    for (int i = 0; i < c->n_ov; i++)
        if (regexec(&c->ov[i].re, name, 0, NULL, 0) == 0) {
            t = c->ov[i].type;
            break;
        }
    return fit_block(t, ne[0]);
}

static void chooser_free(chooser *c) {
    for (int i = 0; i < c->n_ov; i++) regfree(&c->ov[i].re);
    free(c->ov);
    c->ov = NULL;
    c->n_ov = 0;
}

static int chooser_init(chooser *c, const phiq_convert_opts *o) {
    memset(c, 0, sizeof *c);
    c->output_type = c->embd_type = -1;
    int rc;
    if ((rc = typesel_parse(&c->ts, o->type)) < 0) return rc;
    c->pure = o->pure;
    if (o->output_type && (rc = single_type(o->output_type, &c->output_type)) < 0) return rc;
    if (o->embedding_type && (rc = single_type(o->embedding_type, &c->embd_type)) < 0) return rc;
    if (o->n_tensor_types > 0) {
        c->ov = calloc((size_t)o->n_tensor_types, sizeof *c->ov);
        if (!c->ov) return phiq_fail(PHIQ_ENOMEM, "out of memory");
        for (int i = 0; i < o->n_tensor_types; i++) {
            const char *spec = o->tensor_types[i];
            const char *eq = strrchr(spec, '=');
            if (!eq || eq == spec || !eq[1]) {
                chooser_free(c);
                return phiq_fail(PHIQ_EINVAL, "--tensor-type '%s': expected REGEX=TYPE", spec);
            }
            char *re = strndup(spec, (size_t)(eq - spec));
            int t;
            if (!re || (rc = single_type(eq + 1, &t)) < 0) {
                free(re);
                chooser_free(c);
                return re ? rc : phiq_fail(PHIQ_ENOMEM, "out of memory");
            }
            int e = regcomp(&c->ov[c->n_ov].re, re, REG_EXTENDED | REG_NOSUB);
            free(re);
            if (e) {
                chooser_free(c);
                return phiq_fail(PHIQ_EINVAL, "--tensor-type '%s': invalid regular expression", spec);
            }
            c->ov[c->n_ov++].type = t;
        }
    }
    return 0;
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
        switch (g->type) {
        case PHIQ_GGML_TYPE_F32: memcpy(dst, (const float *)g->data + start, (size_t)n * 4); return 0;
        case PHIQ_GGML_TYPE_F16: {
            const uint8_t *p = (const uint8_t *)g->data + start * 2;
            for (int64_t i = 0; i < n; i++) {
                uint16_t h;
                memcpy(&h, p + 2 * i, 2);
                dst[i] = phiq_f16_to_f32(h);
            }
            return 0;
        }
        case PHIQ_GGML_TYPE_BF16: {
            const uint8_t *p = (const uint8_t *)g->data + start * 2;
            for (int64_t i = 0; i < n; i++) {
                uint16_t h;
                memcpy(&h, p + 2 * i, 2);
                dst[i] = phiq_bf16_to_f32(h);
            }
            return 0;
        }
        default: {
            /* quantized: start and n are whole rows, hence whole blocks */
            int64_t bs = phiq_ggml_block_size(g->type), ts = phiq_ggml_type_size(g->type);
            if (bs <= 0 || start % bs || n % bs) return PHIQ_EFORMAT;
            return phiq_dequantize(g->type, (const uint8_t *)g->data + start / bs * ts, dst, n) < 0 ? PHIQ_EFORMAT : 0;
        }
        }
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
    const float *imatrix; /* ne0 weights or NULL */
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
    for (int64_t r = w->r0; r < w->r1; r += rows_per) {
        int64_t nr = w->r1 - r < rows_per ? w->r1 - r : rows_per, n = nr * j->ne0;
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
            if (phiq_quantize(j->type, buf, out, nr, j->ne0, j->imatrix) < 0) w->rc = PHIQ_EUNSUPPORTED;
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
    int *types;         /* chosen type per output tensor */
    int64_t n_elements; /* running total */
    uint64_t n_bytes;   /* tensor bytes written */
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

static int convert_tensor(ctx *c, const source *src, const char *name, int type, int64_t ne0, void *buf,
                          uint64_t nbytes) {
    tjob j = {.src = src, .type = type, .ne0 = ne0, .dst = buf};
    j.row_bytes = phiq_ggml_row_size(type, ne0);
    if (j.row_bytes <= 0 || ne0 <= 0) return phiq_fail(PHIQ_EFORMAT, "%s: bad row length %lld", name, (long long)ne0);
    j.nrows = src->n_elements / ne0;
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
    return convert_tensor(c, &s, name, c->types[i], t->ne[0], buf, nbytes);
}

static int fill_gguf(void *user, int64_t i, const char *name, void *buf, uint64_t nbytes) {
    ctx *c = user;
    const phiq_gguf_tensor *t = phiq_gguf_tensor_at(c->gin, i);
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

/* ---- metadata ------------------------------------------------------------------------------ */
static bool contains_nocase(const char *h, const char *n) {
    size_t ln = strlen(n);
    for (; *h; h++) {
        size_t k = 0;
        while (k < ln && h[k] && tolower((unsigned char)h[k]) == tolower((unsigned char)n[k])) k++;
        if (k == ln) return true;
    }
    return false;
}

/* general.name: the checkpoint directory's name unless given. llama.cpp
 * switches on Phi-3 token handling when the name contains "phi3"/"phi-3"
 * and then looks up </s>, <unk>, <s>, <|endoftext|> unconditionally (load
 * failure if one is missing), so such names are defused for vocabularies
 * that lack them. */
static char *model_name(const char *src, const char *given, const phiq_vocab *v) {
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
    if (v && (contains_nocase(name, "phi3") || contains_nocase(name, "phi-3"))) {
        const char *need[4] = {"</s>", "<unk>", "<s>", "<|endoftext|>"};
        bool ok = true;
        for (int k = 0; k < 4; k++) ok = ok && phiq_vocab_find(v, need[k]) >= 0;
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
        }
        if (hp->n_rope_factors > 0)
            SET(phiq_gguf_writer_set_f32(w, KEY("rope.scaling.attn_factor"), hp->rope_attn_factor));
    }
#undef KEY
    return 0;
}

/* ---- drivers --------------------------------------------------------------------------------- */
static int convert_hf(const char *src, const char *dst, const phiq_convert_opts *o, chooser *ch,
                      phiq_convert_stats *st, int n_threads) {
    int rc = 0;
    phiq_plan plan = {0};
    phiq_vocab voc = {0};
    char *name = NULL;
    int *types = NULL;
    phiq_gguf_writer *w = NULL;
    phiq_hf *hf = phiq_hf_open(src);
    if (!hf) return PHIQ_EFORMAT;
    const phiq_hparams *hp = phiq_hf_hparams(hf);
    if ((rc = phiq_plan_build(&plan, hf)) < 0) goto done;
    if ((rc = phiq_vocab_load_hf(&voc, hf, hp)) < 0) {
        phiq_error_prefix("%s", src);
        goto done;
    }
    if (!(name = model_name(src, o->name, &voc))) {
        rc = phiq_fail(PHIQ_ENOMEM, "out of memory");
        goto done;
    }
    if (!(w = phiq_gguf_writer_new())) {
        rc = PHIQ_ENOMEM;
        goto done;
    }
    if ((rc = write_hparams(w, hp, name, ch->ts.ftype)) < 0) goto done;
    if ((rc = phiq_vocab_to_gguf(&voc, w)) < 0) goto done;
    if ((rc = phiq_gguf_writer_set_u32(w, "general.quantization_version", 2)) < 0) goto done;

    ch->n_layer = hp->n_layer;
    ch->has_output = false;
    for (int i = 0; i < plan.n; i++)
        if (!strcmp(plan.t[i].name, "output.weight")) ch->has_output = true;
    types = calloc((size_t)plan.n + 1, sizeof *types);
    if (!types) {
        rc = phiq_fail(PHIQ_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < plan.n; i++) {
        const phiq_plan_tensor *t = &plan.t[i];
        types[i] = t->force_f32 ? PHIQ_GGML_TYPE_F32 : choose_type(ch, t->name, t->n_dims, t->ne);
        if ((rc = phiq_gguf_writer_add_tensor(w, t->name, types[i], t->n_dims, t->ne)) < 0) goto done;
    }
    ctx c = {.o = o, .n_threads = n_threads, .plan = &plan, .types = types};
    phiq_gguf_write_opts wo = {.quiet = o->quiet, .label = "convert"};
    double t0 = phiq_now();
    if ((rc = phiq_gguf_writer_write(w, dst, fill_hf, &c, &wo)) < 0) goto done;
    if (st) {
        st->seconds = phiq_now() - t0;
        st->n_tensors = plan.n;
        st->n_elements = c.n_elements;
        st->data_bytes = c.n_bytes;
        snprintf(st->arch, sizeof st->arch, "%s", phiq_arch_name(hp->arch));
    }
done:
    phiq_gguf_writer_free(w);
    free(types);
    free(name);
    phiq_vocab_free(&voc);
    phiq_plan_free(&plan);
    phiq_hf_close(hf);
    return rc;
}

static int convert_gguf(const char *src, const char *dst, const phiq_convert_opts *o, chooser *ch,
                        phiq_convert_stats *st, int n_threads) {
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
    if ((rc = phiq_gguf_writer_set_u32(w, "general.file_type", (uint32_t)ch->ts.ftype)) < 0) goto done;
    if ((rc = phiq_gguf_writer_set_u32(w, "general.quantization_version", 2)) < 0) goto done;
    if (o->name && (rc = phiq_gguf_writer_set_str(w, "general.name", o->name)) < 0) goto done;
    {
        char key[96];
        uint32_t nl = 0;
        snprintf(key, sizeof key, "%.*s.block_count", (int)(alen < 64 ? alen : 64), arch);
        if (phiq_gguf_find_kv(g, key) >= 0 && phiq_gguf_get_u32(g, key, &nl) < 0) {
            rc = PHIQ_EFORMAT;
            goto done;
        }
        ch->n_layer = (int)nl;
    }
    ch->has_output = phiq_gguf_find_tensor(g, "output.weight") != NULL;
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
        if (phiq_ggml_type_is_quantized(t->type) && !phiq_quant_can_dequantize(t->type)) {
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
        types[i] = is_norm_like(t->name, t->n_dims) ? t->type : choose_type(ch, t->name, t->n_dims, t->ne);
        if ((rc = phiq_gguf_writer_add_tensor(w, t->name, types[i], t->n_dims, t->ne)) < 0) goto done;
    }
    ctx c = {.o = o, .n_threads = n_threads, .gin = g, .types = types};
    phiq_gguf_write_opts wo = {.quiet = o->quiet, .label = "convert"};
    double t0 = phiq_now();
    if ((rc = phiq_gguf_writer_write(w, dst, fill_gguf, &c, &wo)) < 0) goto done;
    if (st) {
        st->seconds = phiq_now() - t0;
        st->n_tensors = nt;
        st->n_elements = c.n_elements;
        st->data_bytes = c.n_bytes;
        snprintf(st->arch, sizeof st->arch, "%.*s", (int)(alen < 15 ? alen : 15), arch);
    }
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
    if (o->imatrix) return phiq_fail(PHIQ_EUNSUPPORTED, "--imatrix is not supported by convert yet");
    chooser ch;
    int rc = chooser_init(&ch, o);
    if (rc < 0) return rc;
    int n_threads = o->n_threads > 0 ? o->n_threads : phiq_physical_cores();
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 64) n_threads = 64;
    if (phiq_dir_exists(src)) {
        rc = convert_hf(src, dst, o, &ch, st, n_threads);
    } else if (phiq_file_exists(src)) {
        rc = convert_gguf(src, dst, o, &ch, st, n_threads);
    } else {
        rc = phiq_fail(PHIQ_EIO, "%s: no such file or directory", src);
    }
    if (rc == 0 && st) {
        snprintf(st->ftype, sizeof st->ftype, "%s", ch.ts.name);
        struct stat sb;
        if (stat(dst, &sb) == 0) st->file_bytes = (uint64_t)sb.st_size;
    }
    chooser_free(&ch);
    return rc;
}
