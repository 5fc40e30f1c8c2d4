/* onnx_export.c — Phi-3-family HF checkpoint -> ONNX Runtime GenAI CPU
 * decoder (model.onnx + model.onnx.data + genai_config.json + tokenizer):
 * the driver, the pieces onnx_export_internal.h shares, and the
 * Phi3ForCausalLM graph (Phi-3-small's is onnx_phi3small.c).
 *
 * Everything that can be refused is checked before the first byte is written
 * (options, architecture, shapes, GQA kernel constraints, K divisible by the
 * block size). Weights then stream tensor by tensor (row chunks, quantized
 * in threads) into model.onnx.data; the graph records their offsets and is
 * serialized last. Output goes to a hidden temporary directory beside
 * out_dir, renamed into place only when everything succeeded. */
#include "onnx/onnx_export.h"

#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common.h"
#include "convert/calib.h"
#include "formats/hf.h"
#include "onnx/genai_config.h"
#include "onnx/matmulnbits_quant.h"
#include "onnx/onnx_export_internal.h"
#include "onnx/onnx_graph.h"

#define OX_DATA_NAME "model.onnx.data"

void phiq_onnx_options_default(phiq_onnx_options *o) {
    memset(o, 0, sizeof *o);
    o->type = PHIQ_ONNX_INT4;
    o->block_size = 32;
    o->asym = false;
    o->accuracy_level = 4;
    o->n_threads = 0;
    o->max_length = 0;
}

int phiq_onnx_backup_parse(const char *s) {
    if (!s) return -1;
    if (phiq_streq_nocase(s, "int8_asym")) return PHIQ_ONNX_BACKUP_INT8_ASYM;
    if (phiq_streq_nocase(s, "int8_sym")) return PHIQ_ONNX_BACKUP_INT8_SYM;
    if (phiq_streq_nocase(s, "none")) return PHIQ_ONNX_BACKUP_NONE;
    return -1;
}

int phiq_onnx_type_parse(const char *s) {
    if (!s) return -1;
    if (phiq_streq_nocase(s, "int4") || phiq_streq_nocase(s, "q4")) return PHIQ_ONNX_INT4;
    if (phiq_streq_nocase(s, "int8") || phiq_streq_nocase(s, "q8")) return PHIQ_ONNX_INT8;
    if (phiq_streq_nocase(s, "fp16") || phiq_streq_nocase(s, "f16")) return PHIQ_ONNX_FP16;
    if (phiq_streq_nocase(s, "fp32") || phiq_streq_nocase(s, "f32")) return PHIQ_ONNX_FP32;
    return -1;
}

/* How one weight is stored: bits (0 = float), MatMulNBits block size,
 * symmetric, and the rule: group 0 = ORT's default quantizer, else NNCF's
 * with parameters per `group` values of a row (block size, or K for the
 * per-channel int8 backup). */
typedef struct ox_q {
    int bits, bs;
    bool sym;
    int64_t group;
} ox_q;

enum { OX_QKV, OX_O, OX_GATE, OX_UP, OX_DOWN, OX_KINDS };
static const char *const ox_kind_names[OX_KINDS] = {"attn.qkv_proj", "attn.o_proj", "mlp.gate_proj", "mlp.up_proj",
                                                     "mlp.down_proj"};

/* The layer-matmul kind of an initializer stem or name
 * ("model.layers.3.mlp.up_proj[.MatMul.weight]") and its layer; -1 if none. */
static int ox_kind_of(const char *name, int *layer) {
    int at = 0;
    if (sscanf(name, "model.layers.%d.%n", layer, &at) != 1 || !at) return -1;
    for (int kd = 0; kd < OX_KINDS; kd++) {
        size_t n = strlen(ox_kind_names[kd]);
        if (!strncmp(name + at, ox_kind_names[kd], n) && (name[at + n] == '.' || !name[at + n])) return kd;
    }
    return -1;
}

/* ---- reading rows ---------------------------------------------------------- */

static int ox_read(const ox_rows *r, int64_t row, int64_t col0, int64_t ncols, float *dst) {
    for (int s = 0; s < r->nseg; s++) {
        if (row < r->rows[s]) {
            const phiq_st_tensor *t = r->t[s];
            return phiq_st_to_f32(t, (r->row0[s] + row) * r->k + col0, ncols, dst);
        }
        row -= r->rows[s];
    }
    return phiq_fail(PHIQ_EINVAL, "internal: row out of range");
}

/* Drops the pages of a finished input tensor so that resident memory stays
 * bounded by one tensor, not the whole checkpoint. */
static void ox_release_span(const void *p, uint64_t nbytes);
static void ox_release(const phiq_st_tensor *t) {
    if (t && t->data && t->nbytes) ox_release_span(t->data, t->nbytes);
}

uint64_t phiq_ox_rows_bytes(const ox_rows *r) {
    uint64_t b = 0;
    for (int s = 0; s < r->nseg; s++)
        b += (uint64_t)(r->rows[s] * r->k) * (r->t[s]->dtype == PHIQ_ST_F32 ? 4 : 2);
    return b;
}

static void ox_release_span(const void *p, uint64_t nbytes) {
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p, e = a + nbytes;
    uintptr_t a0 = (a + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1), e0 = e & ~((uintptr_t)pg - 1);
    if (e0 > a0) madvise((void *)a0, e0 - a0, MADV_DONTNEED);
}

/* Drops the pages of logical rows [row, row+n) once they are consumed, so a
 * single huge tensor (a 200k-token embedding) is never resident whole. */
static void ox_release_row_range(const ox_rows *r, int64_t row, int64_t n) {
    for (int s = 0; s < r->nseg && n > 0; s++) {
        if (row >= r->rows[s]) {
            row -= r->rows[s];
            continue;
        }
        int64_t take = r->rows[s] - row < n ? r->rows[s] - row : n;
        const phiq_st_tensor *t = r->t[s];
        uint64_t es = t->n_elements ? t->nbytes / (uint64_t)t->n_elements : 2;
        ox_release_span((const uint8_t *)t->data + (uint64_t)((r->row0[s] + row) * r->k) * es,
                        (uint64_t)(take * r->k) * es);
        n -= take;
        row = 0;
    }
}

void phiq_ox_release_rows(const ox_rows *r) {
    for (int s = 0; s < r->nseg; s++) ox_release(r->t[s]);
}

/* ---- data file -------------------------------------------------------------- */

static int ox_align(ox *x, uint64_t nbytes) {
    uint64_t a = nbytes >= (1u << 20) ? 4096 : 64;
    static const uint8_t zeros[4096];
    uint64_t pad = (a - x->off % a) % a;
    if (pad && fwrite(zeros, 1, (size_t)pad, x->data) != pad)
        return phiq_fail(PHIQ_EIO, "%s: write failed: %s", x->data_path, strerror(errno));
    x->off += pad;
    return 0;
}

static int ox_write(ox *x, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, x->data) != n)
        return phiq_fail(PHIQ_EIO, "%s: write failed: %s", x->data_path, strerror(errno));
    x->off += n;
    return 0;
}

/* Writes a whole blob as one external initializer. */
int phiq_ox_blob(ox *x, const char *name, int dtype, const int64_t *dims, int nd, const void *p, size_t n) {
    int rc = ox_align(x, n);
    if (rc) return rc;
    uint64_t at = x->off;
    if ((rc = ox_write(x, p, n))) return rc;
    phiq_og_init_external(&x->g, name, dtype, dims, nd, at, n);
    return 0;
}

/* ---- threaded read + quantize of a row chunk ---------------------------------- */

typedef struct ox_job {
    const ox_rows *r;
    const phiq_mnb_layout *l;
    int64_t row, rows; /* global rows [row, row+rows) */
    float *f;          /* staging [rows, K] */
    uint8_t *b;        /* [rows, kb*blob] */
    float *s;          /* [rows, kb] */
    uint8_t *z;        /* [rows, zp_row] or NULL */
    int64_t group;     /* 0: ORT's rule, else NNCF's per group values */
    int rc;
    char err[256];
} ox_job;

static void *ox_job_run(void *arg) {
    ox_job *j = arg;
    for (int64_t i = 0; i < j->rows && !j->rc; i++) {
        j->rc = ox_read(j->r, j->row + i, 0, j->r->k, j->f + i * j->r->k);
        if (j->rc) snprintf(j->err, sizeof j->err, "%s", phiq_error());
    }
    if (!j->rc && j->l) {
        if (j->group) phiq_mnb_quantize_rows_nncf(j->l, j->group, j->f, j->rows, j->b, j->s, j->z);
        else phiq_mnb_quantize_rows(j->l, j->f, j->rows, j->b, j->s, j->z);
    }
    return NULL;
}

static int ox_parallel(ox *x, ox_job *jobs, int nj) {
    pthread_t th[64];
    int started[64] = {0};
    for (int i = 1; i < nj; i++) started[i] = pthread_create(&th[i], NULL, ox_job_run, &jobs[i]) == 0;
    ox_job_run(&jobs[0]);
    for (int i = 1; i < nj; i++) {
        if (started[i]) pthread_join(th[i], NULL);
        else ox_job_run(&jobs[i]);
    }
    for (int i = 0; i < nj; i++)
        if (jobs[i].rc) return phiq_fail(jobs[i].rc, "%s", jobs[i].err);
    return 0;
}

/* Splits [row, row+rows) among threads and runs read (+ quantize). */
static int ox_chunk(ox *x, const ox_rows *r, const phiq_mnb_layout *l, int64_t group, int64_t row, int64_t rows,
                    float *f, uint8_t *b, float *s, uint8_t *z) {
    ox_job jobs[64];
    int nt = x->n_threads < 1 ? 1 : (x->n_threads > 64 ? 64 : x->n_threads);
    if (nt > rows) nt = (int)rows;
    int64_t per = (rows + nt - 1) / nt;
    int nj = 0;
    for (int64_t r0 = 0; r0 < rows; r0 += per, nj++) {
        int64_t n = rows - r0 < per ? rows - r0 : per;
        ox_job *j = &jobs[nj];
        memset(j, 0, sizeof *j);
        j->r = r;
        j->l = l;
        j->group = group;
        j->row = row + r0;
        j->rows = n;
        j->f = f + r0 * r->k;
        if (l) {
            j->b = b + r0 * l->kb * l->blob;
            j->s = s + r0 * l->kb;
            j->z = z ? z + r0 * l->zp_row : NULL;
        }
    }
    return ox_parallel(x, jobs, nj);
}

/* ---- weights ---------------------------------------------------------------- */

/* Row chunk so that the f32 staging stays near 16 MiB. */
static int64_t ox_chunk_rows(int64_t k) {
    int64_t c = (int64_t)(4u << 20) / (k > 0 ? k : 1);
    return c < 1 ? 1 : c;
}

/* --calib: the GGUF names (phiq's calibration pass) of the weights reading
 * the same input as the initializer stem wname ("model.layers.3.mlp.
 * down_proj.MatMul.weight" -> "blk.3.ffn_down.weight"): up to two candidates
 * (fused or split checkpoints); returns how many. */
static int ox_calib_names(const char *wname, char names[2][96]) {
    static const struct { const char *part, *gguf[2]; } map[] = {
        {".attn.qkv_proj.", {"attn_qkv", "attn_q"}}, {".attn.o_proj.", {"attn_output", NULL}},
        {".mlp.gate_proj.", {"ffn_up", "ffn_gate"}}, {".mlp.up_proj.", {"ffn_up", NULL}},
        {".mlp.down_proj.", {"ffn_down", NULL}},
    };
    if (!strncmp(wname, "lm_head.", 8)) {
        snprintf(names[0], 96, "output.weight");
        return 1;
    }
    int layer, n = 0;
    if (sscanf(wname, "model.layers.%d.", &layer) != 1) return 0;
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strstr(wname, map[i].part))
            for (int j = 0; j < 2 && map[i].gguf[j]; j++) snprintf(names[n++], 96, "blk.%d.%s.weight", layer, map[i].gguf[j]);
    return n;
}

/* --calib: the Hessian of the matmul reading the same input as wname, NULL
 * when there is none. */
static const float *ox_hessian(ox *x, const char *wname, int64_t k, int *failed) {
    char names[2][96];
    int n = ox_calib_names(wname, names);
    *failed = 0;
    for (int j = 0; j < n; j++) {
        int64_t hn = 0;
        const float *H = phiq_calib_session_hessian(x->cal, names[j], &hn, failed);
        if (*failed) return NULL;
        if (H && hn == k) return H;
    }
    return NULL;
}

/* --calib: the whole weight in float32, GPTQ into B/scales/zero points. */
static int ox_weight_nbits_gptq(ox *x, const char *wname, const ox_rows *r, const phiq_mnb_layout *l, const float *H,
                                uint8_t **b, float *s, uint8_t *z) {
    float *w = malloc((size_t)(r->n * r->k) * sizeof *w);
    *b = malloc((size_t)(r->n * l->kb * l->blob));
    if (!w || !*b) {
        free(w);
        return phiq_fail(PHIQ_ENOMEM, "%s: out of memory for GPTQ (%lld x %lld floats)", wname, (long long)r->n,
                         (long long)r->k);
    }
    int rc = 0;
    for (int64_t row = 0; row < r->n && !rc; row++) rc = ox_read(r, row, 0, r->k, w + row * r->k);
    for (int64_t i = 0; i < r->n * r->k && !rc; i++)
        if (!isfinite(w[i])) rc = phiq_fail(PHIQ_EFORMAT, "%s: element %lld is %g", wname, (long long)i, (double)w[i]);
    float damp = x->opt->damp > 0 ? x->opt->damp : 0.01f;
    if (!rc && (rc = phiq_mnb_quantize_gptq(l, w, H, damp, x->n_threads, *b, s, z)) < 0) phiq_error_prefix("%s", wname);
    free(w);
    if (!rc) x->n_gptq++;
    return rc;
}

/* MatMulNBits weight: B, scales (and zero points) from W [N, K]. */
static int ox_weight_nbits(ox *x, const char *wname, const ox_rows *r, phiq_mnb_layout *l, const ox_q *q) {
    int rc = phiq_mnb_layout_init(l, q->bits, q->bs, q->sym, r->n, r->k, wname);
    if (rc) return rc;
    const float *H = NULL;
    /* --calib: GPTQ for every weight, or with --ratio for the int4 ones (the
     * per-channel int8 backup stays NNCF's round-to-nearest) */
    if (x->cal && (!q->group || q->bits == 4)) {
        int failed;
        H = ox_hessian(x, wname, r->k, &failed);
        if (failed) {
            phiq_error_prefix("calibration for %s", wname);
            return PHIQ_EINVAL;
        }
    }
    int64_t cr = ox_chunk_rows(r->k);
    float *f = malloc((size_t)(cr * r->k) * sizeof *f);
    uint8_t *b = malloc((size_t)(cr * l->kb * l->blob));
    float *s = malloc((size_t)(r->n * l->kb) * sizeof *s);
    uint8_t *z = l->sym ? NULL : malloc((size_t)(r->n * l->zp_row));
    if (!f || !b || !s || (!l->sym && !z)) {
        rc = phiq_fail(PHIQ_ENOMEM, "%s: out of memory quantizing", wname);
        goto out;
    }
    uint64_t bbytes = (uint64_t)(r->n * l->kb * l->blob);
    if (H) {
        free(b);
        if ((rc = ox_weight_nbits_gptq(x, wname, r, l, H, &b, s, z))) goto out;
    }
    if ((rc = ox_align(x, bbytes))) goto out;
    uint64_t boff = x->off;
    if (H) {
        if ((rc = ox_write(x, b, (size_t)bbytes))) goto out;
        ox_release_row_range(r, 0, r->n);
    }
    for (int64_t row = 0; row < r->n && !H; row += cr) {
        int64_t n = r->n - row < cr ? r->n - row : cr;
        if ((rc = ox_chunk(x, r, l, q->group, row, n, f, b, s + row * l->kb, z ? z + row * l->zp_row : NULL)))
            goto out;
        if ((rc = ox_write(x, b, (size_t)(n * l->kb * l->blob)))) goto out;
        ox_release_row_range(r, row, n);
    }
    char nm[320];
    const char *qs = q->bits == 4 ? "Q4" : "Q8";
    int64_t bd[3] = {r->n, l->kb, l->blob}, sd[2] = {r->n, l->kb}, zd[1] = {r->n * l->zp_row};
    snprintf(nm, sizeof nm, "%s_%s", wname, qs);
    phiq_og_init_external(&x->g, nm, PHIQ_OG_UINT8, bd, 3, boff, bbytes);
    snprintf(nm, sizeof nm, "%s_scales", wname);
    if ((rc = phiq_ox_blob(x, nm, PHIQ_OG_FLOAT, sd, 2, s, (size_t)(r->n * l->kb) * sizeof *s))) goto out;
    if (z) {
        snprintf(nm, sizeof nm, "%s_zero_points", wname);
        if ((rc = phiq_ox_blob(x, nm, PHIQ_OG_UINT8, zd, 1, z, (size_t)(r->n * l->zp_row)))) goto out;
    }
out:
    free(f);
    free(b);
    free(s);
    free(z);
    return rc;
}

/* Writes count floats as f32, or converted to f16 a stack buffer at a time. */
static int ox_write_floats(ox *x, const float *f, int64_t count, bool f16) {
    if (!f16) return ox_write(x, f, (size_t)count * 4);
    uint16_t h[4096];
    for (int64_t i0 = 0; i0 < count; i0 += 4096) {
        const int64_t n = count - i0 < 4096 ? count - i0 : 4096;
        for (int64_t i = 0; i < n; i++) h[i] = phiq_f32_to_f16(f[i0 + i]);
        int rc = ox_write(x, h, (size_t)n * 2);
        if (rc) return rc;
    }
    return 0;
}

/* Aligns the data file for a float tensor of r's n x k values; *at: where it starts. */
static int ox_float_begin(ox *x, const ox_rows *r, bool f16, uint64_t *total, uint64_t *at) {
    *total = (uint64_t)(r->n * r->k) * (f16 ? 2 : 4);
    const int rc = ox_align(x, *total);
    *at = x->off;
    return rc;
}

/* Float weight in row order [N, K] (embedding table): f32 or f16. */
static int ox_weight_rows_float(ox *x, const char *name, const ox_rows *r, bool f16) {
    int64_t cr = ox_chunk_rows(r->k);
    float *f = malloc((size_t)(cr * r->k) * sizeof *f);
    if (!f) return phiq_fail(PHIQ_ENOMEM, "%s: out of memory", name);
    uint64_t total, at;
    int rc = ox_float_begin(x, r, f16, &total, &at);
    for (int64_t row = 0; row < r->n && !rc; row += cr) {
        int64_t n = r->n - row < cr ? r->n - row : cr;
        if (!(rc = ox_chunk(x, r, NULL, 0, row, n, f, NULL, NULL, NULL)) && !(rc = ox_write_floats(x, f, n * r->k, f16)))
            ox_release_row_range(r, row, n);
    }
    free(f);
    if (rc) return rc;
    int64_t d[2] = {r->n, r->k};
    phiq_og_init_external(&x->g, name, f16 ? PHIQ_OG_FLOAT16 : PHIQ_OG_FLOAT, d, 2, at, total);
    return 0;
}

/* Float MatMul weight: W^T [K, N] written in tiles of 64 K-rows. */
static int ox_weight_transposed(ox *x, const char *name, const ox_rows *r, bool f16) {
    const int64_t TK = 64;
    float *tile = malloc((size_t)(TK * r->n) * sizeof *tile);
    float *tmp = malloc((size_t)TK * sizeof *tmp);
    int rc = 0;
    uint64_t total = 0, at = 0;
    if (!tile || !tmp) rc = phiq_fail(PHIQ_ENOMEM, "%s: out of memory", name);
    else rc = ox_float_begin(x, r, f16, &total, &at);
    for (int64_t k0 = 0; k0 < r->k && !rc; k0 += TK) {
        int64_t nk = r->k - k0 < TK ? r->k - k0 : TK;
        for (int64_t n = 0; n < r->n && !rc; n++) {
            rc = ox_read(r, n, k0, nk, tmp);
            for (int64_t kk = 0; kk < nk && !rc; kk++) tile[kk * r->n + n] = tmp[kk];
        }
        if (!rc) rc = ox_write_floats(x, tile, nk * r->n, f16);
    }
    free(tile);
    free(tmp);
    if (rc) return rc;
    int64_t d[2] = {r->k, r->n};
    phiq_og_init_external(&x->g, name, f16 ? PHIQ_OG_FLOAT16 : PHIQ_OG_FLOAT, d, 2, at, total);
    return 0;
}

/* ---- graph pieces ------------------------------------------------------------- */

/* y = x @ W^T for W [N, K] as MatMulNBits (quantized) or MatMul. prefix is
 * the builder's node path ("/model/layers.0/attn/qkv_proj"), wprefix its
 * initializer stem ("model.layers.0.attn.qkv_proj"). */
static ox_q ox_quant_for(const ox *x, const char *wprefix, int64_t k);

int phiq_ox_matmul(ox *x, const char *prefix, const char *wprefix, const ox_rows *r, const char *in,
                     const char *out) {
    phiq_og *g = &x->g;
    char wname[320], nname[320];
    snprintf(wname, sizeof wname, "%s.MatMul.weight", wprefix);
    int rc;
    const ox_q q = ox_quant_for(x, wprefix, r->k);
    if (q.bits) {
        phiq_mnb_layout l;
        if (x->head_written && !strcmp(wprefix, "lm_head"))
            rc = phiq_mnb_layout_init(&l, q.bits, q.bs, q.sym, r->n, r->k, wname);
        else
            rc = ox_weight_nbits(x, wname, r, &l, &q);
        if (rc) return rc;
        const char *qs = q.bits == 4 ? "Q4" : "Q8";
        char b[340], s[340], z[340];
        snprintf(b, sizeof b, "%s_%s", wname, qs);
        snprintf(s, sizeof s, "%s_scales", wname);
        snprintf(z, sizeof z, "%s_zero_points", wname);
        snprintf(nname, sizeof nname, "%s/MatMul_%s", prefix, qs);
        Onnx__NodeProto *n = l.sym ? phiq_og_node(g, "MatMulNBits", "com.microsoft", nname, IN(in, b, s), IN(out))
                                   : phiq_og_node(g, "MatMulNBits", "com.microsoft", nname, IN(in, b, s, z), IN(out));
        phiq_og_attr_i(g, n, "K", r->k);
        phiq_og_attr_i(g, n, "N", r->n);
        phiq_og_attr_i(g, n, "bits", q.bits);
        phiq_og_attr_i(g, n, "block_size", q.bs);
        if (x->opt->accuracy_level) phiq_og_attr_i(g, n, "accuracy_level", x->opt->accuracy_level);
    } else {
        bool f16 = x->opt->type == PHIQ_ONNX_FP16;
        if ((rc = ox_weight_transposed(x, wname, r, f16))) return rc;
        const char *w = wname;
        char cast[340];
        if (f16) {
            snprintf(cast, sizeof cast, "%s_fp32", wname);
            snprintf(nname, sizeof nname, "%s/Cast", prefix);
            Onnx__NodeProto *c = phiq_og_node(g, "Cast", "", nname, IN(wname), IN(cast));
            phiq_og_attr_i(g, c, "to", PHIQ_OG_FLOAT);
            w = cast;
        }
        snprintf(nname, sizeof nname, "%s/MatMul", prefix);
        phiq_og_node(g, "MatMul", "", nname, IN(in, w), IN(out));
    }
    phiq_ox_release_rows(r);
    phiq_progress_step(&x->prog, wprefix, phiq_ox_rows_bytes(r));
    return 0;
}

int phiq_ox_vector(ox *x, const char *hfname, const char *oname, int64_t n) {
    const phiq_st_tensor *t = phiq_hf_find(x->hf, hfname);
    float *w = malloc((size_t)n * sizeof *w);
    if (!w) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    int rc = phiq_st_to_f32(t, 0, n, w);
    if (!rc) rc = phiq_ox_blob(x, oname, PHIQ_OG_FLOAT, &n, 1, w, (size_t)n * sizeof *w);
    free(w);
    return rc;
}

/* cos/sin caches [len, rdim/2] as the builder computes them (float32 maths):
 * inv_freq[i] = 1 / (factor[i] * theta^(2i/rdim)), angle = t * inv_freq[i]. */
static int ox_rope_cache(const phiq_hparams *hp, const float *factors, int64_t len, float mscale, float **cos_out,
                         float **sin_out) {
    int half = hp->n_rot / 2;
    float *c = malloc((size_t)(len * half) * sizeof *c), *s = malloc((size_t)(len * half) * sizeof *s);
    float inv[PHIQ_MAX_ROPE_FACTORS];
    if (!c || !s) {
        free(c);
        free(s);
        return phiq_fail(PHIQ_ENOMEM, "out of memory building RoPE caches");
    }
    for (int i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)hp->n_rot;
        float f = factors ? factors[i] : 1.0f;
        inv[i] = 1.0f / (f * powf(hp->rope_theta, e));
    }
    for (int64_t t = 0; t < len; t++)
        for (int i = 0; i < half; i++) {
            float a = (float)t * inv[i];
            c[t * half + i] = (float)cos((double)a) * mscale;
            s[t * half + i] = (float)sin((double)a) * mscale;
        }
    *cos_out = c;
    *sin_out = s;
    return 0;
}

static bool ox_longrope(const phiq_hparams *hp) {
    return hp->n_rope_factors > 0 && hp->n_ctx_train > hp->n_ctx_orig;
}

/* Branch graph of the LongRoPE If: two Constant caches as outputs, cos/sin
 * scaled by mscale (the short or the long attention factor). */
static int ox_rope_branch(ox *x, phiq_og *sub, const char *gname, const char *sfx, const float *factors,
                          int64_t len, float mscale) {
    int rc = phiq_og_init_sub(sub, &x->g, gname);
    if (rc) return rc;
    float *c, *s;
    if ((rc = ox_rope_cache(x->hp, factors, len, mscale, &c, &s))) return rc;
    int64_t d[2] = {len, x->hp->n_rot / 2};
    char cn[64], sn[64];
    snprintf(cn, sizeof cn, "cos_cache_%s", sfx);
    snprintf(sn, sizeof sn, "sin_cache_%s", sfx);
    size_t nb = (size_t)(len * d[1]) * sizeof(float);
    phiq_og_constant(sub, cn, PHIQ_OG_FLOAT, d, 2, c, nb);
    phiq_og_constant(sub, sn, PHIQ_OG_FLOAT, d, 2, s, nb);
    phiq_og_output(sub, cn, PHIQ_OG_FLOAT, 2, NULL, d);
    phiq_og_output(sub, sn, PHIQ_OG_FLOAT, 2, NULL, d);
    free(c);
    free(s);
    return 0;
}

int phiq_ox_rope(ox *x, const char *total_len_i64) {
    const phiq_hparams *hp = x->hp;
    phiq_og *g = &x->g;
    if (!ox_longrope(hp)) {
        float *c, *s;
        int rc = ox_rope_cache(hp, hp->n_rope_factors ? hp->rope_short : NULL, hp->n_ctx_train,
                               hp->n_rope_factors ? hp->rope_attn_factor : 1.0f, &c, &s);
        if (rc) return rc;
        int64_t d[2] = {hp->n_ctx_train, hp->n_rot / 2};
        size_t nb = (size_t)(d[0] * d[1]) * sizeof(float);
        rc = phiq_ox_blob(x, "cos_cache", PHIQ_OG_FLOAT, d, 2, c, nb);
        if (!rc) rc = phiq_ox_blob(x, "sin_cache", PHIQ_OG_FLOAT, d, 2, s, nb);
        free(c);
        free(s);
        return rc;
    }
    /* LongRoPE: long factors when the total length exceeds the original
     * context (HF: seq_len > original_max_position_embeddings). */
    int64_t orig = hp->n_ctx_orig;
    phiq_og_constant(g, "/model/constant_nodes/TensorProto.INT64/0D/orig_ctx", PHIQ_OG_INT64, NULL, 0, &orig,
                     sizeof orig);
    phiq_og_node(g, "Greater", "", "/model/rotemb_caches_subgraph/Greater",
                 IN(total_len_i64, "/model/constant_nodes/TensorProto.INT64/0D/orig_ctx"),
                 IN("/model/rotemb_caches_subgraph/Greater/output_0"));
    phiq_og large, small;
    int rc = ox_rope_branch(x, &large, "large_rope_caches_graph", "large", hp->rope_long, hp->n_ctx_train,
                            hp->rope_attn_factor_long);
    if (!rc) rc = ox_rope_branch(x, &small, "small_rope_caches_graph", "small", hp->rope_short, hp->n_ctx_orig,
                                hp->rope_attn_factor);
    if (rc) return rc;
    Onnx__NodeProto *n = phiq_og_node(g, "If", "", "/model/rotemb_caches_subgraph/If",
                                      IN("/model/rotemb_caches_subgraph/Greater/output_0"),
                                      IN("cos_cache", "sin_cache"));
    phiq_og_attr_graph(g, n, "then_branch", large.graph);
    phiq_og_attr_graph(g, n, "else_branch", small.graph);
    return 0;
}

/* ---- validation ---------------------------------------------------------------- */

int phiq_ox_rows_named(const phiq_hf *hf, ox_rows *r, int64_t k, const char *const *names, const int64_t *rows,
                         const int64_t *row0) {
    memset(r, 0, sizeof *r);
    r->k = k;
    for (int i = 0; names[i]; i++) {
        const phiq_st_tensor *t = phiq_hf_find(hf, names[i]);
        if (!t) return phiq_fail(PHIQ_EFORMAT, "%s: tensor %s missing", phiq_hf_dir(hf), names[i]);
        if (!phiq_st_is_float(t->dtype) || t->n_dims != 2 || t->shape[1] != k ||
            t->shape[0] < row0[i] + rows[i])
            return phiq_fail(PHIQ_EFORMAT, "%s: tensor %s has dtype %s shape [%lld, %lld], expected [>=%lld, %lld]",
                             t->file, names[i], t->dtype_name, (long long)t->shape[0],
                             (long long)(t->n_dims > 1 ? t->shape[1] : 0), (long long)(row0[i] + rows[i]),
                             (long long)k);
        r->t[r->nseg] = t;
        r->row0[r->nseg] = row0[i];
        r->rows[r->nseg] = rows[i];
        r->n += rows[i];
        r->nseg++;
    }
    return 0;
}

/* The weights of one layer in the exporter's terms. */
typedef struct ox_layer {
    ox_rows qkv, o, gate, up, down;
} ox_layer;

static int ox_layer_rows(const phiq_hf *hf, const phiq_hparams *hp, int i, ox_layer *L) {
    char a[160], b[160], c[160];
    int64_t hd = hp->head_dim, q = (int64_t)hp->n_head * hd, kv = (int64_t)hp->n_head_kv * hd;
    int64_t H = hp->n_embd, F = hp->n_ff;
    int rc;
    snprintf(a, sizeof a, "model.layers.%d.self_attn.qkv_proj.weight", i);
    if (phiq_hf_find(hf, a)) {
        rc = phiq_ox_rows_named(hf, &L->qkv, H, IN(a), (int64_t[]){q + 2 * kv}, (int64_t[]){0});
    } else {
        snprintf(a, sizeof a, "model.layers.%d.self_attn.q_proj.weight", i);
        snprintf(b, sizeof b, "model.layers.%d.self_attn.k_proj.weight", i);
        snprintf(c, sizeof c, "model.layers.%d.self_attn.v_proj.weight", i);
        rc = phiq_ox_rows_named(hf, &L->qkv, H, IN(a, b, c), (int64_t[]){q, kv, kv}, (int64_t[]){0, 0, 0});
    }
    if (rc) return rc;
    snprintf(a, sizeof a, "model.layers.%d.self_attn.o_proj.weight", i);
    if ((rc = phiq_ox_rows_named(hf, &L->o, q, IN(a), (int64_t[]){H}, (int64_t[]){0}))) return rc;
    snprintf(a, sizeof a, "model.layers.%d.mlp.gate_up_proj.weight", i);
    if (phiq_hf_find(hf, a)) {
        if ((rc = phiq_ox_rows_named(hf, &L->gate, H, IN(a), (int64_t[]){F}, (int64_t[]){0}))) return rc;
        if ((rc = phiq_ox_rows_named(hf, &L->up, H, IN(a), (int64_t[]){F}, (int64_t[]){F}))) return rc;
    } else {
        snprintf(a, sizeof a, "model.layers.%d.mlp.gate_proj.weight", i);
        snprintf(b, sizeof b, "model.layers.%d.mlp.up_proj.weight", i);
        if ((rc = phiq_ox_rows_named(hf, &L->gate, H, IN(a), (int64_t[]){F}, (int64_t[]){0}))) return rc;
        if ((rc = phiq_ox_rows_named(hf, &L->up, H, IN(b), (int64_t[]){F}, (int64_t[]){0}))) return rc;
    }
    snprintf(a, sizeof a, "model.layers.%d.mlp.down_proj.weight", i);
    return phiq_ox_rows_named(hf, &L->down, F, IN(a), (int64_t[]){H}, (int64_t[]){0});
}

int phiq_ox_check_vec(const phiq_hf *hf, const char *name, int64_t n) {
    const phiq_st_tensor *t = phiq_hf_find(hf, name);
    if (!t) return phiq_fail(PHIQ_EFORMAT, "%s: tensor %s missing", phiq_hf_dir(hf), name);
    if (!phiq_st_is_float(t->dtype) || t->n_dims != 1 || t->shape[0] != n)
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor %s should be [%lld]", t->file, name, (long long)n);
    return 0;
}

static int ox_validate(const phiq_onnx_options *o, phiq_hf *hf, const char *src) {
    const phiq_hparams *hp = phiq_hf_hparams(hf);
    /* ORT GenAI's builder exports PhiMoE through the com.microsoft MoE
     * operator, which ONNX Runtime implements for CUDA only; phiq's graphs
     * are for the CPU provider */
    if (hp->arch == PHIQ_ARCH_PHIMOE)
        return phiq_fail(PHIQ_EUNSUPPORTED,
                         "%s: PhiMoE has no CPU ONNX form (ONNX Runtime's MoE operator is CUDA-only); convert it to "
                         "GGUF instead",
                         src);
    if (hp->arch != PHIQ_ARCH_PHI3 && hp->arch != PHIQ_ARCH_PHI3SMALL)
        return phiq_fail(PHIQ_EUNSUPPORTED,
                         "%s: architecture %s is not supported by the ONNX exporter (Phi3ForCausalLM: Phi-3/3.5-mini, "
                         "Phi-4, Phi-4-mini; Phi3SmallForCausalLM: Phi-3-small)",
                         src, phiq_hf_architecture(hf));
    if (hp->n_head <= 0 || hp->n_head_kv <= 0 || hp->n_head % hp->n_head_kv || hp->head_dim <= 0 ||
        hp->n_embd <= 0 || hp->n_ff <= 0 || hp->n_vocab <= 0 || hp->n_layer <= 0)
        return phiq_fail(PHIQ_EFORMAT, "%s: config.json has inconsistent dimensions", src);
    /* The RoPE caches hold context_length rows; bound them (Phi: <= 131072). */
    if (hp->n_ctx_train <= 0 || hp->n_ctx_train > (1 << 20) || hp->n_ctx_orig <= 0 ||
        hp->n_ctx_orig > hp->n_ctx_train)
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: context length %d (original %d) outside 1..1048576", src,
                         hp->n_ctx_train, hp->n_ctx_orig);
    /* ORT 1.30 CPU GroupQueryAttention constraints (doc §1.7). */
    if (hp->head_dim % 16)
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: head size %d is not a multiple of 16 (GroupQueryAttention)", src,
                         hp->head_dim);
    if (hp->n_rot <= 0 || hp->n_rot > hp->head_dim || (hp->n_rot / 2) % 8)
        return phiq_fail(PHIQ_EUNSUPPORTED,
                         "%s: rotary dimension %d unsupported by GroupQueryAttention (half must be a multiple of 8, "
                         "<= head size)",
                         src, hp->n_rot);
    if (hp->n_rope_factors && hp->n_rope_factors != hp->n_rot / 2)
        return phiq_fail(PHIQ_EFORMAT, "%s: %d LongRoPE factors for rotary dimension %d", src, hp->n_rope_factors,
                         hp->n_rot);
    if (o->type == PHIQ_ONNX_INT4 || o->type == PHIQ_ONNX_INT8) {
        int64_t ks[3] = {hp->n_embd, (int64_t)hp->n_head * hp->head_dim, hp->n_ff};
        const char *what[3] = {"hidden size", "attention width", "intermediate size"};
        for (int i = 0; i < 3; i++)
            if (ks[i] % o->block_size)
                return phiq_fail(PHIQ_EUNSUPPORTED, "%s: block size %d does not divide the %s K = %lld", src,
                                 o->block_size, what[i], (long long)ks[i]);
    }
    if (hp->arch == PHIQ_ARCH_PHI3SMALL) return phiq_ox_phi3small_validate(o, hf, src);
    int rc;
    if ((rc = phiq_ox_check_vec(hf, "model.norm.weight", hp->n_embd))) return rc;
    ox_rows r;
    if ((rc = phiq_ox_rows_named(hf, &r, hp->n_embd, IN("model.embed_tokens.weight"), (int64_t[]){hp->n_vocab},
                            (int64_t[]){0})))
        return rc;
    if (!hp->tied_embeddings &&
        (rc = phiq_ox_rows_named(hf, &r, hp->n_embd, IN("lm_head.weight"), (int64_t[]){hp->n_vocab}, (int64_t[]){0})))
        return rc;
    for (int i = 0; i < hp->n_layer; i++) {
        ox_layer L;
        char a[160];
        if ((rc = ox_layer_rows(hf, hp, i, &L))) return rc;
        snprintf(a, sizeof a, "model.layers.%d.input_layernorm.weight", i);
        if ((rc = phiq_ox_check_vec(hf, a, hp->n_embd))) return rc;
        snprintf(a, sizeof a, "model.layers.%d.post_attention_layernorm.weight", i);
        if ((rc = phiq_ox_check_vec(hf, a, hp->n_embd))) return rc;
    }
    return 0;
}

/* ---- NNCF mixed precision (--ratio) ------------------------------------------------- */

/* The per-channel int8 backup is stored as MatMulNBits blocks repeating the
 * row's scale: the largest power-of-two block (<= 256) dividing K keeps that
 * repetition cheapest. */
static int ox_backup_block(int64_t k) {
    int bs = 256;
    while (bs > 16 && k % bs) bs /= 2;
    return bs;
}

static ox_q ox_quant_bits(const ox *x, int bits, int64_t k) {
    const phiq_onnx_options *o = x->opt;
    if (!o->mixed) return (ox_q){x->bits, o->block_size, !o->asym, 0};
    if (bits == 4) return (ox_q){4, o->block_size, !o->asym, o->block_size};
    if (bits == 8) return (ox_q){8, ox_backup_block(k), o->backup == PHIQ_ONNX_BACKUP_INT8_SYM, k};
    return (ox_q){0, 0, false, 0};
}

/* The storage of the matmul weight with initializer stem wprefix. */
static ox_q ox_quant_for(const ox *x, const char *wprefix, int64_t k) {
    if (!x->opt->mixed) return ox_quant_bits(x, x->bits, k);
    int layer = -1, kd = ox_kind_of(wprefix, &layer);
    if (kd >= 0 && layer >= 0 && layer < x->hp->n_layer) return ox_quant_bits(x, x->plan[layer * OX_KINDS + kd], k);
    return ox_quant_bits(x, x->head_bits, k); /* lm_head */
}

/* One ratio-defining weight: an HF tensor (fused gate_up_proj is one, as
 * NNCF sees it; q/k/v are decided together because ORT's graph fuses them). */
typedef struct ox_unit {
    int layer, kind[2], nparts;
    ox_rows part[2];
    int64_t params;
    double score;
} ox_unit;

/* --calib: mean squared inputs of the weight wname reads (imatrix), NULL
 * when there is none. Every calibration pass collects the imatrix of all
 * layers: the first one (layer 0's group, which the export needs next) is
 * run when none has been. */
static const float *ox_imatrix(ox *x, const char *wname, int64_t k) {
    char names[2][96];
    int n = ox_calib_names(wname, names);
    for (int j = 0; j < n; j++) {
        int64_t ni = 0;
        int nm = 0, failed = 0;
        const float *im = phiq_calib_session_imatrix(x->cal, names[j], &ni, &nm);
        if (!im) {
            ox_hessian(x, "model.layers.0.attn.qkv_proj.MatMul.weight", x->hp->n_embd, &failed);
            if (failed) return NULL;
            im = phiq_calib_session_imatrix(x->cal, names[j], &ni, &nm);
        }
        if (im && ni == k) return im;
    }
    return NULL;
}

/* The unit's score: without --calib NNCF's data-free sensitivity
 * 1 / (max over rows of the per-channel int8 mean squared error + eps); with
 * --calib the activation-weighted relative int4 error
 * sum_k E[x_k^2] sum_n (W - Q4(W))^2 / sum_k E[x_k^2] sum_n W^2 (how much of
 * the layer's output energy int4 moves). Lowest first gets int4. */
static int ox_unit_score(ox *x, ox_unit *u) {
    const int64_t k = u->part[0].k, cr = ox_chunk_rows(k);
    const ox_q q4 = ox_quant_bits(x, 4, k);
    phiq_mnb_layout l;
    int rc = phiq_mnb_layout_init(&l, 4, q4.bs, q4.sym, cr, k, "ratio");
    if (rc) return rc;
    const float *im = NULL;
    if (x->cal && x->opt->sensitivity != 1) {
        char wname[160];
        snprintf(wname, sizeof wname, "model.layers.%d.%s.MatMul.weight", u->layer, ox_kind_names[u->kind[0]]);
        if (!(im = ox_imatrix(x, wname, k)))
            return phiq_fail(PHIQ_EINVAL, "calibration: no activation statistics for %s", wname);
    }
    float *f = malloc((size_t)(cr * k) * sizeof *f), *dq = im ? malloc((size_t)(cr * k) * sizeof *dq) : NULL;
    uint8_t *b = im ? malloc((size_t)(cr * l.kb * l.blob)) : NULL, *z = im ? malloc((size_t)(cr * l.zp_row)) : NULL;
    float *s = im ? malloc((size_t)(cr * l.kb) * sizeof *s) : NULL;
    if (!f || (im && (!dq || !b || !z || !s))) {
        rc = phiq_fail(PHIQ_ENOMEM, "out of memory ranking layers for --ratio");
        goto out;
    }
    double err8 = 0, num = 0, den = 0;
    for (int p = 0; p < u->nparts && !rc; p++) {
        const ox_rows *r = &u->part[p];
        for (int64_t row = 0; row < r->n && !rc; row += cr) {
            int64_t n = r->n - row < cr ? r->n - row : cr;
            if ((rc = ox_chunk(x, r, NULL, 0, row, n, f, NULL, NULL, NULL))) break;
            if (!im) {
                double e = phiq_nncf_int8_row_error(f, n, k);
                err8 = e > err8 ? e : err8;
            } else {
                phiq_mnb_quantize_rows_nncf(&l, q4.group, f, n, b, s, q4.sym ? NULL : z);
                phiq_mnb_dequantize_rows(&l, b, s, q4.sym ? NULL : z, n, dq);
                for (int64_t i = 0; i < n * k; i++) {
                    const double a = im[i % k], d = (double)f[i] - dq[i];
                    num += a * d * d;
                    den += a * (double)f[i] * f[i];
                }
            }
            ox_release_row_range(r, row, n);
        }
    }
    u->score = im ? (den > 0 ? num / den : 0) : 1.0 / (err8 + (double)FLT_EPSILON);
out:
    free(f);
    free(dq);
    free(b);
    free(z);
    free(s);
    return rc;
}

/* NNCF's MixedPrecisionCriterion.apply: stable ascending sort by score, int4
 * while (int4 parameters + this unit's) / all ratio-defining parameters stays
 * below the ratio, stopping at the first that does not fit; ratio 1 skips the
 * ranking (everything int4). */
static int ox_plan(ox *x) {
    const phiq_hparams *hp = x->hp;
    const int nl = hp->n_layer;
    const int backup = x->opt->backup == PHIQ_ONNX_BACKUP_NONE ? 0 : 8;
    x->head_bits = backup;
    if (!(x->plan = malloc((size_t)nl * OX_KINDS))) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    memset(x->plan, backup, (size_t)nl * OX_KINDS);
    ox_unit *u = calloc((size_t)nl * OX_KINDS, sizeof *u);
    int *ord = calloc((size_t)nl * OX_KINDS, sizeof *ord);
    if (!u || !ord) {
        free(u);
        free(ord);
        return phiq_fail(PHIQ_ENOMEM, "out of memory");
    }
    int nu = 0, rc = 0;
    int64_t total = 0;
    for (int i = 0; i < nl && !rc; i++) {
        ox_layer L;
        if ((rc = ox_layer_rows(x->hf, hp, i, &L))) break;
        const ox_rows *rows[OX_KINDS] = {&L.qkv, &L.o, &L.gate, &L.up, &L.down};
        for (int kd = 0; kd < OX_KINDS; kd++) {
            /* up shares gate's unit when both are halves of gate_up_proj */
            if (kd == OX_UP && L.up.t[0] == L.gate.t[0]) {
                ox_unit *g = &u[nu - 1];
                g->part[g->nparts] = L.up;
                g->kind[g->nparts++] = OX_UP;
                g->params += L.up.n * L.up.k;
                total += L.up.n * L.up.k;
                continue;
            }
            ox_unit *n = &u[nu++];
            n->layer = i;
            n->part[0] = *rows[kd];
            n->kind[0] = kd;
            n->nparts = 1;
            n->params = rows[kd]->n * rows[kd]->k;
            total += n->params;
        }
    }
    phiq_progress pr;
    phiq_progress_start(&pr, "rank", nu, (uint64_t)total * 2, x->opt->quiet || x->opt->ratio >= 1.0);
    for (int i = 0; i < nu && !rc; i++) {
        ord[i] = i;
        if (x->opt->ratio < 1.0 && !(rc = ox_unit_score(x, &u[i]))) phiq_progress_step(&pr, "", (uint64_t)u[i].params * 2);
    }
    phiq_progress_end(&pr);
    if (!rc) {
        /* insertion sort: stable, so equal scores keep graph order as
         * Python's sorted() does */
        for (int i = 1; i < nu; i++)
            for (int j = i; j > 0 && u[ord[j]].score < u[ord[j - 1]].score; j--) {
                int t = ord[j];
                ord[j] = ord[j - 1];
                ord[j - 1] = t;
            }
        int64_t in4 = 0;
        for (int i = 0; i < nu; i++) {
            const ox_unit *c = &u[ord[i]];
            if (x->opt->ratio < 1.0 && (double)(in4 + c->params) / (double)total >= x->opt->ratio) break;
            in4 += c->params;
            x->mixed.n_int4++;
            for (int p = 0; p < c->nparts; p++) x->plan[c->layer * OX_KINDS + c->kind[p]] = 4;
        }
        x->mixed.params_int4 = in4;
        x->mixed.n_ratio_defining = nu;
        x->mixed.params_ratio_defining = total;
    }
    free(u);
    free(ord);
    return rc;
}

/* ---- the graph -------------------------------------------------------------- */

/* Every layer's KV cache I/O, key then value: the past_key_values.N inputs
 * [batch, kv heads, past_sequence_length, head_dim] or the present.N
 * outputs (total_sequence_length). */
static void ox_kv_io(phiq_og *g, const phiq_hparams *hp, bool input) {
    const char *sym[4] = {"batch_size", NULL, input ? "past_sequence_length" : "total_sequence_length", NULL};
    const int64_t val[4] = {0, hp->n_head_kv, 0, hp->head_dim};
    for (int i = 0; i < hp->n_layer; i++)
        for (int v = 0; v < 2; v++) {
            char nm[64];
            snprintf(nm, sizeof nm, "%s.%d.%s", input ? "past_key_values" : "present", i, v ? "value" : "key");
            if (input) phiq_og_input(g, nm, PHIQ_OG_FLOAT, 4, sym, val);
            else phiq_og_output(g, nm, PHIQ_OG_FLOAT, 4, sym, val);
        }
}

void phiq_ox_io(ox *x) {
    const phiq_hparams *hp = x->hp;
    phiq_og *g = &x->g;
    phiq_og_input(g, "input_ids", PHIQ_OG_INT64, 2, IN("batch_size", "sequence_length"), NULL);
    phiq_og_input(g, "attention_mask", PHIQ_OG_INT64, 2, IN("batch_size", "total_sequence_length"), NULL);
    ox_kv_io(g, hp, true);
    {
        const char *sym[3] = {"batch_size", "sequence_length", NULL};
        int64_t val[3] = {0, 0, hp->n_vocab};
        phiq_og_output(g, "logits", PHIQ_OG_FLOAT, 3, sym, val);
    }
    ox_kv_io(g, hp, false);
}

const char *phiq_ox_mask(ox *x) {
    phiq_og *g = &x->g;
    /* Mask pre-processing shared by every GQA: seqlens_k = sum(mask) - 1,
     * total_sequence_length = mask width (both int32). */
    int64_t one = 1, axes[1] = {1}, d1[1] = {1};
    phiq_og_constant(g, "/model/constant_nodes/TensorProto.INT64/1D/1", PHIQ_OG_INT64, d1, 1, axes, sizeof axes);
    phiq_og_constant(g, "/model/constant_nodes/TensorProto.INT64/0D/1", PHIQ_OG_INT64, NULL, 0, &one, sizeof one);
    Onnx__NodeProto *n =
        phiq_og_node(g, "ReduceSum", "", "/model/attn_mask_reformat/attn_mask_subgraph/ReduceSum",
                     IN("attention_mask", "/model/constant_nodes/TensorProto.INT64/1D/1"),
                     IN("/model/attn_mask_reformat/attn_mask_subgraph/ReduceSum/output_0"));
    phiq_og_attr_i(g, n, "keepdims", 0);
    phiq_og_node(g, "Sub", "", "/model/attn_mask_reformat/attn_mask_subgraph/Sub",
                 IN("/model/attn_mask_reformat/attn_mask_subgraph/ReduceSum/output_0",
                    "/model/constant_nodes/TensorProto.INT64/0D/1"),
                 IN("/model/attn_mask_reformat/attn_mask_subgraph/Sub/output_0"));
    n = phiq_og_node(g, "Cast", "", "/model/attn_mask_reformat/attn_mask_subgraph/Sub/Cast",
                     IN("/model/attn_mask_reformat/attn_mask_subgraph/Sub/output_0"), IN("seqlens_k"));
    phiq_og_attr_i(g, n, "to", PHIQ_OG_INT32);
    phiq_og_node(g, "Shape", "", "/model/attn_mask_reformat/attn_mask_subgraph/Shape", IN("attention_mask"),
                 IN("/model/attn_mask_reformat/attn_mask_subgraph/Shape/output_0"));
    n = phiq_og_node(g, "Gather", "", "/model/attn_mask_reformat/attn_mask_subgraph/Gather",
                     IN("/model/attn_mask_reformat/attn_mask_subgraph/Shape/output_0",
                        "/model/constant_nodes/TensorProto.INT64/0D/1"),
                     IN("/model/attn_mask_reformat/attn_mask_subgraph/Gather/output_0"));
    phiq_og_attr_i(g, n, "axis", 0);
    n = phiq_og_node(g, "Cast", "", "/model/attn_mask_reformat/attn_mask_subgraph/Gather/Cast",
                     IN("/model/attn_mask_reformat/attn_mask_subgraph/Gather/output_0"), IN("total_seq_len"));
    phiq_og_attr_i(g, n, "to", PHIQ_OG_INT32);
    return "/model/attn_mask_reformat/attn_mask_subgraph/Gather/output_0";
}

int phiq_ox_embed(ox *x, ox_rows *emb, const char *embeds) {
    const phiq_hparams *hp = x->hp;
    phiq_og *g = &x->g;
    int rc;
    Onnx__NodeProto *n;
    bool f16 = x->opt->type == PHIQ_ONNX_FP16;
    if ((rc = phiq_ox_rows_named(x->hf, emb, hp->n_embd, IN("model.embed_tokens.weight"), (int64_t[]){hp->n_vocab},
                                 (int64_t[]){0})))
        return rc;
    /* Gather rows of the [V, hidden] table (fp16: then Cast). */
    /* A quantized embedding gathers rows of MatMulNBits bytes with
     * com.microsoft.GatherBlockQuantized: tied and 4-bit (Phi-4-mini), as the
     * builder does, the lm_head weight; with --ratio, NNCF's int8 backup of
     * the table (tied: the one weight both read, as NNCF compresses it). */
    ox_q eq = {0};
    const char *estem = hp->tied_embeddings ? "lm_head.MatMul.weight" : "model.embed_tokens.weight";
    if (x->opt->mixed) eq = ox_quant_bits(x, x->head_bits, hp->n_embd);
    else if (hp->tied_embeddings && x->bits == 4) eq = ox_quant_bits(x, 4, hp->n_embd);
    if (eq.bits) {
        phiq_mnb_layout l;
        if ((rc = ox_weight_nbits(x, estem, emb, &l, &eq))) return rc;
        x->head_written = hp->tied_embeddings;
        char eb[200], es[200], ez[200];
        snprintf(eb, sizeof eb, "%s_%s", estem, eq.bits == 4 ? "Q4" : "Q8");
        snprintf(es, sizeof es, "%s_scales", estem);
        snprintf(ez, sizeof ez, "%s_zero_points", estem);
        int64_t shp[2] = {hp->n_vocab, (int64_t)hp->n_embd * eq.bits / 8};
        phiq_og_constant(g, "/model/constant_nodes/TensorProto.INT64/1D/embed_shape", PHIQ_OG_INT64, (int64_t[]){2},
                         1, shp, sizeof shp);
        phiq_og_node(g, "Reshape", "", "/model/embed_tokens/Reshape",
                     IN(eb, "/model/constant_nodes/TensorProto.INT64/1D/embed_shape"),
                     IN("/model/embed_tokens/Reshape/output_0"));
        if (l.sym) {
            n = phiq_og_node(g, "GatherBlockQuantized", "com.microsoft", "/model/embed_tokens/GatherBlockQuantized",
                             IN("/model/embed_tokens/Reshape/output_0", "input_ids", es), IN(embeds));
        } else {
            int64_t zs[2] = {hp->n_vocab, l.zp_row};
            phiq_og_constant(g, "/model/constant_nodes/TensorProto.INT64/1D/embed_zp_shape", PHIQ_OG_INT64,
                             (int64_t[]){2}, 1, zs, sizeof zs);
            phiq_og_node(g, "Reshape", "", "/model/embed_tokens/ReshapeZp",
                         IN(ez, "/model/constant_nodes/TensorProto.INT64/1D/embed_zp_shape"),
                         IN("/model/embed_tokens/ReshapeZp/output_0"));
            n = phiq_og_node(g, "GatherBlockQuantized", "com.microsoft", "/model/embed_tokens/GatherBlockQuantized",
                             IN("/model/embed_tokens/Reshape/output_0", "input_ids", es,
                                "/model/embed_tokens/ReshapeZp/output_0"),
                             IN(embeds));
        }
        phiq_og_attr_i(g, n, "bits", eq.bits);
        phiq_og_attr_i(g, n, "block_size", eq.bs);
        phiq_og_attr_i(g, n, "gather_axis", 0);
        phiq_og_attr_i(g, n, "quantize_axis", 1);
    } else {
        if ((rc = ox_weight_rows_float(x, "model.embed_tokens.weight", emb, f16))) return rc;
        phiq_og_node(g, "Gather", "", "/model/embed_tokens/Gather", IN("model.embed_tokens.weight", "input_ids"),
                     IN(f16 ? "/model/embed_tokens/Gather/output_f16" : embeds));
        if (f16) {
            n = phiq_og_node(g, "Cast", "", "/model/embed_tokens/Cast", IN("/model/embed_tokens/Gather/output_f16"),
                             IN(embeds));
            phiq_og_attr_i(g, n, "to", PHIQ_OG_FLOAT);
        }
    }
    /* Nothing reads the embedding rows again (a tied head is either written
     * above or a Transpose of the stored table): drop their pages now. */
    phiq_ox_release_rows(emb);
    phiq_progress_step(&x->prog, "model.embed_tokens", phiq_ox_rows_bytes(emb));
    return 0;
}

void phiq_ox_first_norm(ox *x, const char *in, const char *w, const char *b, const char *out) {
    phiq_og *g = &x->g;
    Onnx__NodeProto *n =
        b ? phiq_og_node(g, "LayerNormalization", "", "/model/layers.0/input_layernorm/LayerNorm", IN(in, w, b), IN(out))
          : phiq_og_node(g, "SimplifiedLayerNormalization", "", "/model/layers.0/input_layernorm/LayerNorm", IN(in, w),
                         IN(out));
    phiq_og_attr_i(g, n, "axis", -1);
    phiq_og_attr_f(g, n, "epsilon", x->hp->norm_eps);
    phiq_og_attr_i(g, n, "stash_type", 1);
}

/* GroupQueryAttention or SparseAttention (onnx_export_internal.h); KV past
 * and present are one buffer for SparseAttention, as ORT GenAI binds them. */
void phiq_ox_attention(ox *x, int i, bool sparse, float scale, const char *qkv, char *out) {
    const phiq_hparams *hp = x->hp;
    phiq_og *g = &x->g;
    const char *op = sparse ? "SparseAttention" : "GroupQueryAttention";
    char nm[96], pk[64], pv[64], prk[64], prv[64];
    snprintf(nm, sizeof nm, "/model/layers.%d/attn/%s", i, op);
    snprintf(out, 200, "%s/output_0", nm);
    snprintf(pk, sizeof pk, "past_key_values.%d.key", i);
    snprintf(pv, sizeof pv, "past_key_values.%d.value", i);
    snprintf(prk, sizeof prk, "present.%d.key", i);
    snprintf(prv, sizeof prv, "present.%d.value", i);
    Onnx__NodeProto *n =
        sparse ? phiq_og_node(g, op, "com.microsoft", nm,
                              IN(qkv, "", "", pk, pv, "block_row_indices", "block_col_indices", "total_seq_len",
                                 "key_total_seq_lens", "cos_cache", "sin_cache"),
                              IN(out, prk, prv))
               : phiq_og_node(g, op, "com.microsoft", nm,
                              IN(qkv, "", "", pk, pv, "seqlens_k", "total_seq_len", "cos_cache", "sin_cache"),
                              IN(out, prk, prv));
    phiq_og_attr_i(g, n, "num_heads", hp->n_head);
    phiq_og_attr_i(g, n, "kv_num_heads", hp->n_head_kv);
    phiq_og_attr_f(g, n, "scale", scale);
    if (sparse) {
        phiq_og_attr_i(g, n, "sparse_block_size", hp->bs_block);
    } else {
        /* A sliding window shorter than the context is real (Phi-3-mini-4k:
         * 2047); Phi-3.5/Phi-4-mini's 262144 exceeds it and means none. */
        int win = hp->sliding_window > 0 && hp->sliding_window < hp->n_ctx_train ? hp->sliding_window : -1;
        phiq_og_attr_i(g, n, "local_window_size", win);
        phiq_og_attr_f(g, n, "softcap", 0.0f);
    }
    phiq_og_attr_i(g, n, "do_rotary", 1);
    phiq_og_attr_i(g, n, "rotary_interleaved", 0);
}

int phiq_ox_lm_head(ox *x, const ox_rows *emb, const char *fo, const char *out) {
    const phiq_hparams *hp = x->hp;
    phiq_og *g = &x->g;
    bool f16 = x->opt->type == PHIQ_ONNX_FP16;
    Onnx__NodeProto *n;
    ox_rows head;
    int rc;
    if (hp->tied_embeddings) {
        head = *emb;
        if (!x->bits) {
            /* Tied float head: reuse the embedding table through a Transpose
             * (folded by ORT at load) instead of storing it twice. */
            const char *src = "model.embed_tokens.weight";
            if (f16) {
                n = phiq_og_node(g, "Cast", "", "/lm_head/Cast", IN(src), IN("/lm_head/Cast/output_0"));
                phiq_og_attr_i(g, n, "to", PHIQ_OG_FLOAT);
                src = "/lm_head/Cast/output_0";
            }
            n = phiq_og_node(g, "Transpose", "", "/lm_head/Transpose", IN(src), IN("/lm_head/Transpose/output_0"));
            phiq_og_attr_ints(g, n, "perm", (int64_t[]){1, 0}, 2);
            phiq_og_node(g, "MatMul", "", "/lm_head/MatMul", IN(fo, "/lm_head/Transpose/output_0"), IN(out));
            phiq_ox_release_rows(emb);
            phiq_progress_step(&x->prog, "lm_head", phiq_ox_rows_bytes(emb));
            return 0;
        }
    } else if ((rc = phiq_ox_rows_named(x->hf, &head, hp->n_embd, IN("lm_head.weight"), (int64_t[]){hp->n_vocab},
                                        (int64_t[]){0}))) {
        return rc;
    }
    return phiq_ox_matmul(x, "/lm_head", "lm_head", &head, fo, out);
}

/* The SkipSimplifiedLayerNormalization NAME of the layer whose node prefix
 * is p (node p/NAME/SkipLayerNorm): residual + add normed with weights w,
 * into p/NAME/output_0 (written into ln_out); the sum p/NAME/output_3
 * becomes the residual (both 200 bytes). */
static void ox_skip_norm(ox *x, const char *p, const char *name, char *residual, const char *add, const char *w,
                         char *ln_out) {
    char ln[200], res_out[200];
    snprintf(ln, sizeof ln, "%s/%s/SkipLayerNorm", p, name);
    snprintf(ln_out, 200, "%s/%s/output_0", p, name);
    snprintf(res_out, sizeof res_out, "%s/%s/output_3", p, name);
    Onnx__NodeProto *n = phiq_og_node(&x->g, "SkipSimplifiedLayerNormalization", "com.microsoft", ln,
                                      IN(residual, add, w), IN(ln_out, "", "", res_out));
    phiq_og_attr_f(&x->g, n, "epsilon", x->hp->norm_eps);
    snprintf(residual, 200, "%s", res_out);
}

/* Projection SUB ("attn/qkv_proj", "mlp/down_proj", ...) of the layer whose
 * node prefix is p and weight prefix wp: phiq_ox_matmul as node p/SUB on the
 * weights wp.SUB (with dots), its output p/SUB/MatMul/output_0 written into
 * out (200 bytes). */
static int ox_proj(ox *x, const char *p, const char *wp, const char *sub, const ox_rows *r, const char *in, char *out) {
    char nm[200], w[160];
    snprintf(out, 200, "%s/%s/MatMul/output_0", p, sub);
    snprintf(nm, sizeof nm, "%s/%s", p, sub);
    snprintf(w, sizeof w, "%s.%s", wp, sub);
    for (char *c = w + strlen(wp); *c; c++)
        if (*c == '/') *c = '.';
    return phiq_ox_matmul(x, nm, w, r, in, out);
}

static int ox_build(ox *x) {
    const phiq_hparams *hp = x->hp;
    phiq_og *g = &x->g;
    int rc;
    int64_t hd = hp->head_dim;
    Onnx__NodeProto *n;

    phiq_ox_io(x);
    if ((rc = phiq_ox_rope(x, phiq_ox_mask(x)))) return rc;
    ox_rows emb;
    const char *embeds = "/model/embed_tokens/Gather/output_0";
    if ((rc = phiq_ox_embed(x, &emb, embeds))) return rc;

    char residual[200], down_prev[200];
    snprintf(residual, sizeof residual, "%s", embeds);
    down_prev[0] = 0;
    for (int i = 0; i < hp->n_layer; i++) {
        ox_layer L;
        if ((rc = ox_layer_rows(x->hf, hp, i, &L))) return rc;
        char p[96], wp[96], nm[200], ln_out[200], w[160];
        snprintf(p, sizeof p, "/model/layers.%d", i);
        snprintf(wp, sizeof wp, "model.layers.%d", i);

        /* input_layernorm */
        snprintf(w, sizeof w, "model.layers.%d.input_layernorm.weight", i);
        if ((rc = phiq_ox_vector(x, w, w, hp->n_embd))) return rc;
        snprintf(ln_out, sizeof ln_out, "%s/input_layernorm/output_0", p);
        if (i == 0) {
            phiq_ox_first_norm(x, residual, w, NULL, ln_out);
        } else {
            ox_skip_norm(x, p, "input_layernorm", residual, down_prev, w, ln_out);
        }

        /* attention */
        char qkv[200], attn[200], o[200];
        if ((rc = ox_proj(x, p, wp, "attn/qkv_proj", &L.qkv, ln_out, qkv))) return rc;
        phiq_ox_attention(x, i, false, (float)(1.0 / sqrt((double)hd)), qkv, attn);
        if ((rc = ox_proj(x, p, wp, "attn/o_proj", &L.o, attn, o))) return rc;

        /* post_attention_layernorm */
        snprintf(w, sizeof w, "model.layers.%d.post_attention_layernorm.weight", i);
        if ((rc = phiq_ox_vector(x, w, w, hp->n_embd))) return rc;
        ox_skip_norm(x, p, "post_attention_layernorm", residual, o, w, ln_out);

        /* MLP: silu(gate) * up -> down */
        char gate[200], up[200], sg[200], act[200], h[200];
        if ((rc = ox_proj(x, p, wp, "mlp/gate_proj", &L.gate, ln_out, gate))) return rc;
        if ((rc = ox_proj(x, p, wp, "mlp/up_proj", &L.up, ln_out, up))) return rc;
        snprintf(sg, sizeof sg, "%s/mlp/act_fn/Sigmoid/output_0", p);
        snprintf(act, sizeof act, "%s/mlp/act_fn/Mul/output_0", p);
        snprintf(h, sizeof h, "%s/mlp/Mul/output_0", p);
        snprintf(nm, sizeof nm, "%s/mlp/act_fn/Sigmoid", p);
        phiq_og_node(g, "Sigmoid", "", nm, IN(gate), IN(sg));
        snprintf(nm, sizeof nm, "%s/mlp/act_fn/Mul", p);
        phiq_og_node(g, "Mul", "", nm, IN(gate, sg), IN(act));
        snprintf(nm, sizeof nm, "%s/mlp/Mul", p);
        phiq_og_node(g, "Mul", "", nm, IN(act, up), IN(h));
        if ((rc = ox_proj(x, p, wp, "mlp/down_proj", &L.down, h, down_prev))) return rc;
    }

    /* final norm + lm_head */
    char ln[200], fw[160], fo[200];
    snprintf(ln, sizeof ln, "/model/layers.%d/final_norm_layernorm/SkipLayerNorm", hp->n_layer);
    snprintf(fw, sizeof fw, "model.layers.%d.final_norm_layernorm.weight", hp->n_layer);
    snprintf(fo, sizeof fo, "/model/layers.%d/final_norm_layernorm/output_0", hp->n_layer);
    if ((rc = phiq_ox_vector(x, "model.norm.weight", fw, hp->n_embd))) return rc;
    n = phiq_og_node(g, "SkipSimplifiedLayerNormalization", "com.microsoft", ln, IN(residual, down_prev, fw),
                     IN(fo));
    phiq_og_attr_f(g, n, "epsilon", hp->norm_eps);

    return phiq_ox_lm_head(x, &emb, fo, "logits");
}

/* ---- output directory -------------------------------------------------------- */

static int ox_copy_tokenizer(phiq_hf *hf, const phiq_outdir *od) {
    int rc;
    const char *tj = phiq_hf_tokenizer_json(hf), *tc = phiq_hf_tokenizer_config_json(hf);
    if (tj && (rc = phiq_outdir_copy(od, tj, "tokenizer.json"))) return rc;
    if (tc && (rc = phiq_outdir_copy(od, tc, "tokenizer_config.json"))) return rc;
    /* Phi-3-small's tokenizer is tiktoken's cl100k_base file */
    static const char *extra[] = {"special_tokens_map.json", "added_tokens.json", "cl100k_base.tiktoken"};
    for (size_t i = 0; i < sizeof extra / sizeof *extra; i++) {
        char *p = phiq_path_join(phiq_hf_dir(hf), extra[i]);
        rc = p && phiq_file_exists(p) ? phiq_outdir_copy(od, p, extra[i]) : 0;
        free(p);
        if (rc) return rc;
    }
    return 0;
}

int phiq_onnx_export(const char *src_dir, const char *out_dir, const phiq_onnx_options *opt) {
    return phiq_onnx_export_ex(src_dir, out_dir, opt, NULL);
}

int phiq_onnx_export_ex(const char *src_dir, const char *out_dir, const phiq_onnx_options *opt, phiq_onnx_stats *st) {
    if (st) memset(st, 0, sizeof *st);
    if (!src_dir || !out_dir || !opt) return phiq_fail(PHIQ_EINVAL, "onnx export: missing argument");
    if (opt->type < PHIQ_ONNX_FP32 || opt->type > PHIQ_ONNX_INT4)
        return phiq_fail(PHIQ_EINVAL, "onnx export: unknown type %d", (int)opt->type);
    bool quant = opt->type == PHIQ_ONNX_INT4 || opt->type == PHIQ_ONNX_INT8;
    if (quant && (opt->block_size < 16 || opt->block_size > 256 || (opt->block_size & (opt->block_size - 1))))
        return phiq_fail(PHIQ_EINVAL, "onnx export: block size %d is not a power of two in 16..256", opt->block_size);
    if (opt->accuracy_level < 0 || opt->accuracy_level > 4)
        return phiq_fail(PHIQ_EINVAL, "onnx export: accuracy level %d not in 0..4", opt->accuracy_level);
    if (opt->max_length < 0) return phiq_fail(PHIQ_EINVAL, "onnx export: negative max length");
    if (opt->mixed) {
        if (opt->type != PHIQ_ONNX_INT4)
            return phiq_fail(PHIQ_EINVAL, "--ratio mixes int4 with a backup precision: it needs --type int4");
        if (!(opt->ratio >= 0.0 && opt->ratio <= 1.0))
            return phiq_fail(PHIQ_EINVAL, "--ratio %g: must be in [0, 1]", opt->ratio);
        if (opt->sensitivity < 0 || opt->sensitivity > 2 || (opt->sensitivity == 2 && !opt->calib))
            return phiq_fail(PHIQ_EINVAL, "--sensitivity-metric activation_weighted_error needs --calib TEXT");
        if (opt->backup < PHIQ_ONNX_BACKUP_INT8_ASYM || opt->backup > PHIQ_ONNX_BACKUP_NONE)
            return phiq_fail(PHIQ_EINVAL, "onnx export: unknown backup precision %d", (int)opt->backup);
    }

    int rc = 0;
    ox x;
    memset(&x, 0, sizeof x);
    char *model_path = NULL;
    phiq_outdir od = {0};

    x.opt = opt;
    x.hf = phiq_hf_open(src_dir);
    if (!x.hf) {
        rc = PHIQ_EFORMAT;
        goto fail;
    }
    x.hp = phiq_hf_hparams(x.hf);
    if ((rc = ox_validate(opt, x.hf, src_dir))) goto fail;
    if ((rc = phiq_outdir_open(&od, out_dir))) goto fail;

    x.bits = opt->type == PHIQ_ONNX_INT4 ? 4 : opt->type == PHIQ_ONNX_INT8 ? 8 : 0;
    x.n_threads = opt->n_threads > 0 ? opt->n_threads : phiq_physical_cores();
    x.data_path = phiq_outdir_path(&od, OX_DATA_NAME);
    model_path = phiq_outdir_path(&od, "model.onnx");
    if (opt->calib) {
        if (!x.bits) {
            rc = phiq_fail(PHIQ_EINVAL, "--calib calibrates int4/int8 MatMulNBits weights; fp16/fp32 exports have none");
            goto fail;
        }
        phiq_calib_opts co = {.n_ctx = opt->calib_ctx > 0 ? opt->calib_ctx : 512, .max_chunks = opt->calib_chunks,
                              .n_threads = x.n_threads, .quiet = opt->quiet};
        if (!(x.cal = phiq_calib_session_new(src_dir, opt->calib, &co, opt->calib_mem ? opt->calib_mem : (uint64_t)1 << 30))) {
            rc = PHIQ_EINVAL;
            goto fail;
        }
    }
    if (!x.data_path || !model_path) {
        rc = phiq_fail(PHIQ_ENOMEM, "out of memory");
        goto fail;
    }
    if (opt->mixed) {
        double t0 = phiq_now();
        if ((rc = ox_plan(&x))) goto fail;
        if (!opt->quiet) {
            static const char *bk[] = {"int8_asym", "int8_sym", "float"};
            fprintf(stderr,
                    "ratio %.2f (%s): int4 for %d of %d layer weights, %.1f%% of their %lld parameters; %s for the "
                    "rest, the embedding and lm_head (%.1fs)\n",
                    opt->ratio,
                    opt->ratio >= 1.0                              ? "all"
                    : opt->calib && opt->sensitivity != 1 ? "ranked by activation-weighted int4 error"
                                                          : "ranked by NNCF's int8 error",
                    x.mixed.n_int4, x.mixed.n_ratio_defining,
                    100.0 * (double)x.mixed.params_int4 / (double)(x.mixed.params_ratio_defining ? x.mixed.params_ratio_defining : 1),
                    (long long)x.mixed.params_ratio_defining, bk[opt->backup], phiq_now() - t0);
        }
    }
    x.data = fopen(x.data_path, "wb");
    if (!x.data) {
        rc = phiq_fail(PHIQ_EIO, "%s: cannot create: %s", x.data_path, strerror(errno));
        goto fail;
    }
    if ((rc = phiq_og_init(&x.g, "main_graph", OX_DATA_NAME))) goto fail;
    /* progress items: the embedding, 5 matmuls per layer (Phi-3-small: 4), lm_head */
    const bool small = x.hp->arch == PHIQ_ARCH_PHI3SMALL;
    phiq_progress_start(&x.prog, "onnx", 2 + (small ? 4 : 5) * x.hp->n_layer, phiq_hf_total_bytes(x.hf), opt->quiet);
    rc = small ? phiq_ox_phi3small_build(&x) : ox_build(&x);
    phiq_progress_end(&x.prog);
    if (rc) goto fail;
    struct stat sb;
    if (fflush(x.data) || fsync(fileno(x.data)) || fstat(fileno(x.data), &sb)) {
        rc = phiq_fail(PHIQ_EIO, "%s: write failed: %s", x.data_path, strerror(errno));
        goto fail;
    }
    uint64_t model_bytes = (uint64_t)sb.st_size;
    if (fclose(x.data)) {
        x.data = NULL;
        rc = phiq_fail(PHIQ_EIO, "%s: write failed: %s", x.data_path, strerror(errno));
        goto fail;
    }
    x.data = NULL;
    {
        FILE *mf = fopen(model_path, "wb");
        if (!mf) {
            rc = phiq_fail(PHIQ_EIO, "%s: cannot create: %s", model_path, strerror(errno));
            goto fail;
        }
        rc = phiq_og_write_model(&x.g, mf, 10, 21, 1, "phiq", model_path);
        if ((fflush(mf) || fsync(fileno(mf)) || fstat(fileno(mf), &sb)) && !rc)
            rc = phiq_fail(PHIQ_EIO, "%s: write failed: %s", model_path, strerror(errno));
        model_bytes += (uint64_t)sb.st_size;
        if (fclose(mf) && !rc) rc = phiq_fail(PHIQ_EIO, "%s: write failed: %s", model_path, strerror(errno));
        if (rc) goto fail;
    }
    {
        int ml = opt->max_length ? opt->max_length : (x.hp->n_ctx_train < 4096 ? x.hp->n_ctx_train : 4096);
        char *cfg = phiq_genai_config_json(x.hp, ml);
        if (!cfg) {
            rc = PHIQ_ENOMEM;
            goto fail;
        }
        rc = phiq_outdir_write(&od, "genai_config.json", cfg, strlen(cfg));
        free(cfg);
        if (rc) goto fail;
    }
    if ((rc = ox_copy_tokenizer(x.hf, &od))) goto fail;
    rc = phiq_outdir_commit(&od);
    if (st) st->model_bytes = model_bytes;

fail:
    if (st && opt->mixed) {
        st->n_int4 = x.mixed.n_int4;
        st->n_ratio_defining = x.mixed.n_ratio_defining;
        st->params_int4 = x.mixed.params_int4;
        st->params_ratio_defining = x.mixed.params_ratio_defining;
    }
    free(x.plan);
    if (x.cal && st) {
        st->n_gptq = x.n_gptq;
        st->calib_passes = phiq_calib_session_passes(x.cal);
        st->calib_tokens = phiq_calib_session_tokens(x.cal);
        st->calib_seconds = phiq_calib_session_seconds(x.cal);
    }
    phiq_calib_session_free(x.cal);
    if (x.data) fclose(x.data);
    phiq_outdir_abort(&od); /* no-op after a commit */
    phiq_og_free(&x.g);
    if (x.hf) phiq_hf_close(x.hf);
    free(x.data_path);
    free(model_path);
    return rc;
}
