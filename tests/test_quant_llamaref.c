/* test_quant_llamaref.c — phiq's quantizers and mix rules against llama.cpp
 * itself (llama-ref, built from the llama.cpp release node-llama-cpp ships):
 *
 *  1. ggml_quantize_chunk / to_float from llama.cpp's libggml-base.so
 *     (dlopen'ed): bytes of every type, with and without imatrix, on
 *     adversarial data; dequantized floats bit-equal.
 *  2. `llama-ref quantize in.gguf out.gguf TYPE --pure` on F32 phi3 GGUFs
 *     written here (rows of 256, 512, 3072, 8192): every tensor of out.gguf
 *     byte-equal to phiq_quantize of the same floats.
 *  3. `llama-ref quantize` without --pure on a 32-layer model (and an
 *     8-layer tied GQA-4 model with 288-wide rows, for the fallbacks):
 *     each tensor's type equal to phiq_mix_tensor_type.
 *  4. llama_model_quantize from llama.cpp's libllama (dlopen'ed, the code
 *     behind llama-quantize) for every preset phiq offers, with and without
 *     an imatrix, and with --output-tensor-type / --token-embedding-type /
 *     --tensor-type options: types and bytes of every tensor.
 *
 * The small GGUF writer/reader below are test-only (they know just enough
 * of the format to make llama-quantize load a phi3 model).
 */
#include <dlfcn.h>
#include <libgen.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/common.h"
#include "formats/ggml_type.h"
#include "quant/mix.h"
#include "quant/quant.h"
#include "testutil.h"

static int sanitized(void) { return getenv("PHIQ_SANITIZED") != NULL; }

/* ---- deterministic data ----------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}
static float rnd_uniform(void) { return (rnd32() & 0xffffff) / 16777216.0f; }
static float rnd_normal(void) {
    float s = 0;
    for (int i = 0; i < 4; i++) s += rnd_uniform();
    return (s - 2.0f) * 1.7320508f;
}

/* Fills rows with a mix of regimes, one per row (cycling): normal weights,
 * an all-zero row, a constant row, rows with outliers, tiny values, all
 * positive, sparse, a row whose first block is zero, all negative, exact
 * ties, +-equal maxima, f32 subnormals, values beyond fp16 range, heavy
 * tails. */
static void fill_rows(float *x, int64_t nrows, int64_t ne0, uint64_t seed) {
    rng_state = seed * 0x2545F4914F6CDD1Dull + 1;
    for (int64_t r = 0; r < nrows; r++) {
        float *row = x + r * ne0;
        const int kind = (int)(r % 14);
        for (int64_t j = 0; j < ne0; j++) {
            float v = rnd_normal() * 0.02f;
            switch (kind) {
            case 1: v = 0.0f; break;
            case 2: v = 0.25f; break;
            case 3: if (rnd32() % 97 == 0) v *= 300.0f; break;
            case 4: v *= 1e-6f; break;
            case 5: v = fabsf(v) + 0.01f; break;
            case 6: if (rnd32() % 5) v = 0.0f; break;
            case 7: if (j < 32) v = 0.0f; break;
            case 8: v = -fabsf(v) * 50.0f; break;
            case 9: v = (float)((int)(rnd32() % 17) - 8) * 0.5f; break; /* exact ties of many grids */
            case 10: v = (j % 2 ? 1.0f : -1.0f) * (rnd32() % 3 ? 0.75f : 0.25f); break; /* +-max ties */
            case 11: v *= 1e-38f; break;                         /* f32 subnormals */
            case 12: v = v * 2e5f; break;                        /* near/above fp16 max */
            case 13: v = 0.02f / (rnd_uniform() - 0.5f + 1e-3f); break; /* heavy tails */
            default: break;
            }
            row[j] = v;
        }
    }
}

/* ---- 1. against libggml-base.so directly ------------------------------------- */

typedef size_t (*quantize_chunk_fn)(int type, const float *src, void *dst, int64_t start, int64_t nrows,
                                    int64_t n_per_row, const float *imatrix);
struct ggml_traits {
    const char *type_name;
    int64_t blck_size, blck_size_interleave;
    size_t type_size;
    _Bool is_quantized;
    void (*to_float)(const void *x, float *y, int64_t k);
    void (*from_float_ref)(const float *x, void *y, int64_t k);
};
typedef const struct ggml_traits *(*traits_fn)(int type);

static void *ggml_lib;

static void *open_ggml(void) {
    if (ggml_lib) return ggml_lib;
    char path[4096];
    const char *env = getenv("PHIQ_GGML_BASE");
    if (env) {
        snprintf(path, sizeof path, "%s", env);
    } else {
        const char *ref = tu_llama_ref();
        if (!ref) return NULL;
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s", ref);
        snprintf(path, sizeof path, "%s/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so",
                 dirname(tmp));
    }
    ggml_lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!ggml_lib) fprintf(stderr, "cannot dlopen %s: %s\n", path, dlerror());
    return ggml_lib;
}

static const int ALL_TYPES[] = {PHIQ_GGML_TYPE_F16,  PHIQ_GGML_TYPE_BF16, PHIQ_GGML_TYPE_Q4_0,  PHIQ_GGML_TYPE_Q4_1,
                                PHIQ_GGML_TYPE_Q5_0, PHIQ_GGML_TYPE_Q5_1, PHIQ_GGML_TYPE_Q8_0,  PHIQ_GGML_TYPE_Q2_K,
                                PHIQ_GGML_TYPE_Q3_K, PHIQ_GGML_TYPE_Q4_K, PHIQ_GGML_TYPE_Q5_K,  PHIQ_GGML_TYPE_Q6_K,
                                PHIQ_GGML_TYPE_IQ4_NL, PHIQ_GGML_TYPE_IQ4_XS};
#define N_ALL_TYPES (int)(sizeof ALL_TYPES / sizeof ALL_TYPES[0])

static void test_ggml_chunk(void **state) {
    (void)state;
    void *lib = open_ggml();
    if (!lib) {
        tu_unavailable("llama.cpp's libggml-base.so not available");
    }
    quantize_chunk_fn qchunk = (quantize_chunk_fn)dlsym(lib, "ggml_quantize_chunk");
    traits_fn traits = (traits_fn)dlsym(lib, "ggml_get_type_traits");
    assert_non_null(qchunk);
    assert_non_null(traits);
    const int64_t widths[] = {256, 3072};
    const int nw = sanitized() ? 1 : 2;
    const int64_t nrows = 28;
    int failures = 0;
    for (int wi = 0; wi < nw; wi++) {
        const int64_t ne0 = widths[wi];
        float *x = malloc(sizeof(float) * nrows * ne0), *imat = malloc(sizeof(float) * ne0);
        float *d1 = malloc(sizeof(float) * nrows * ne0), *d2 = malloc(sizeof(float) * nrows * ne0);
        fill_rows(x, nrows, ne0, 7 + wi);
        for (int64_t j = 0; j < ne0; j++) imat[j] = rnd_uniform() * rnd_uniform() * 4.0f + (j % 17 == 0 ? 0 : 1e-3f);
        for (int ti = 0; ti < N_ALL_TYPES; ti++) {
            const int t = ALL_TYPES[ti];
            const size_t bytes = (size_t)(nrows * phiq_ggml_row_size(t, ne0));
            uint8_t *a = calloc(1, bytes), *b = calloc(1, bytes);
            for (int im = 0; im < 2; im++) {
                const float *w = im ? imat : NULL;
                memset(a, 0, bytes);
                memset(b, 0xAA, bytes);
                const double t0 = phiq_now();
                const size_t na = qchunk(t, x, a, 0, nrows, ne0, w);
                const double t1 = phiq_now();
                const int64_t nb = phiq_quantize(t, x, b, nrows, ne0, w);
                const double t2 = phiq_now();
                const double mb = 4.0 * (double)(nrows * ne0) / 1e6;
                assert_int_equal(na, bytes);
                assert_int_equal(nb, (int64_t)bytes);
                if (memcmp(a, b, bytes)) {
                    size_t k = 0;
                    while (a[k] == b[k]) k++;
                    fprintf(stderr, "MISMATCH %s ne0=%lld imatrix=%d: first differing byte %zu (row %zu)\n",
                            phiq_ggml_type_name(t), (long long)ne0, im, k, k / (bytes / nrows));
                    failures++;
                } else {
                    fprintf(stderr,
                            "ok %-6s ne0=%-5lld imatrix=%d bytes identical to ggml_quantize_chunk "
                            "(1 thread: phiq %.0f MB/s, ggml %.0f MB/s of f32 input)\n",
                            phiq_ggml_type_name(t), (long long)ne0, im, mb / (t2 - t1 + 1e-9), mb / (t1 - t0 + 1e-9));
                }
                /* dequantize: bit-equal to ggml's to_float */
                const struct ggml_traits *tr = traits(t);
                assert_non_null(tr->to_float);
                tr->to_float(a, d1, nrows * ne0);
                assert_int_equal(phiq_dequantize(t, a, d2, nrows * ne0), 0);
                if (memcmp(d1, d2, sizeof(float) * nrows * ne0)) {
                    fprintf(stderr, "MISMATCH dequantize %s\n", phiq_ggml_type_name(t));
                    failures++;
                }
            }
            free(a);
            free(b);
        }
        /* activation quantizers: Q8_0, Q8_1, Q8_K reference rows */
        const int act[] = {PHIQ_GGML_TYPE_Q8_0, PHIQ_GGML_TYPE_Q8_1, PHIQ_GGML_TYPE_Q8_K};
        for (int k = 0; k < 3; k++) {
            const size_t bytes = (size_t)(nrows * phiq_ggml_row_size(act[k], ne0));
            uint8_t *a = calloc(1, bytes), *b = calloc(1, bytes);
            void (*ref_fn)(const float *, void *, int64_t) = traits(act[k])->from_float_ref;
            if (act[k] == PHIQ_GGML_TYPE_Q8_K) /* not in the base traits table; exported by name */
                *(void **)&ref_fn = dlsym(lib, "quantize_row_q8_K_ref");
            assert_non_null(ref_fn);
            ref_fn(x, a, nrows * ne0);
            if (act[k] == PHIQ_GGML_TYPE_Q8_0) phiq_quantize_row_q8_0(x, b, nrows * ne0);
            else if (act[k] == PHIQ_GGML_TYPE_Q8_1) phiq_quantize_row_q8_1(x, b, nrows * ne0);
            else phiq_quantize_row_q8_K(x, b, nrows * ne0);
            if (act[k] == PHIQ_GGML_TYPE_Q8_K) {
                /* ggml leaves bsums of all-zero blocks unwritten: compare only set blocks */
                for (int64_t blk = 0; blk < nrows * ne0 / 256; blk++) {
                    float d;
                    memcpy(&d, a + 292 * blk, 4);
                    if (d == 0) memset(a + 292 * blk + 260, 0, 32);
                }
            }
            if (memcmp(a, b, bytes)) {
                fprintf(stderr, "MISMATCH activation %s\n", phiq_ggml_type_name(act[k]));
                failures++;
            }
            free(a);
            free(b);
        }
        free(x);
        free(imat);
        free(d1);
        free(d2);
    }
    assert_int_equal(failures, 0);
}

/* ---- tiny GGUF writer / reader ------------------------------------------------- */

typedef struct {
    char name[64];
    int n_dims;
    int64_t ne[4];
    int type;
    uint64_t offset;
    const void *data; /* writer: F32 data */
} gt;

typedef struct {
    FILE *f;
} gw;

static void w_raw(FILE *f, const void *p, size_t n) { assert_int_equal(fwrite(p, 1, n, f), n); }
static void w_u32(FILE *f, uint32_t v) { w_raw(f, &v, 4); }
static void w_u64(FILE *f, uint64_t v) { w_raw(f, &v, 8); }
static void w_str(FILE *f, const char *s) {
    w_u64(f, strlen(s));
    w_raw(f, s, strlen(s));
}
static void kv_u32(FILE *f, const char *k, uint32_t v) { w_str(f, k); w_u32(f, 4); w_u32(f, v); }
static void kv_f32(FILE *f, const char *k, float v) { w_str(f, k); w_u32(f, 6); w_raw(f, &v, 4); }
static void kv_str(FILE *f, const char *k, const char *v) { w_str(f, k); w_u32(f, 8); w_str(f, v); }

typedef struct {
    int n_embd, n_ff, n_layer, n_head, n_head_kv, n_vocab;
    int rows;     /* ne1 of the big matrices (llama-quantize does not check shapes) */
    int tied;     /* no output.weight */
    int n_expert; /* > 0: a phimoe model with 3-D expert tensors */
} model_spec;

/* Writes an F32 phi3 GGUF; returns its tensors (data owned by caller via *blob). */
static int write_model(const char *path, const model_spec *s, gt **out_t, float **blob, uint64_t seed) {
    gt *t = calloc((size_t)(12 * s->n_layer + 8), sizeof *t);
    int n = 0;
#define ADD(nm, d, a, b)                                                                                               \
    do {                                                                                                               \
        snprintf(t[n].name, sizeof t[n].name, "%s", nm);                                                              \
        t[n].n_dims = d;                                                                                               \
        t[n].ne[0] = a;                                                                                                \
        t[n].ne[1] = b;                                                                                                \
        t[n].ne[2] = t[n].ne[3] = 1;                                                                                   \
        if (d == 3) t[n].ne[2] = s->n_expert;                                                                          \
        n++;                                                                                                           \
    } while (0)
    const int E = s->n_embd, R = s->rows;
    ADD("token_embd.weight", 2, E, s->n_vocab);
    ADD("output_norm.weight", 1, E, 1);
    if (!s->tied) ADD("output.weight", 2, E, s->n_vocab);
    for (int l = 0; l < s->n_layer; l++) {
        char nm[64];
#define ADDL(suf, d, a, b) do { snprintf(nm, sizeof nm, "blk.%d.%s", l, suf); ADD(nm, d, a, b); } while (0)
        ADDL("attn_norm.weight", 1, E, 1);
        ADDL("attn_output.weight", 2, E, R);
        ADDL("ffn_norm.weight", 1, E, 1);
        if (s->n_expert) { /* PhiMoE: separate q/k/v, router, stacked experts */
            ADDL("attn_q.weight", 2, E, R);
            ADDL("attn_k.weight", 2, E, R);
            ADDL("attn_v.weight", 2, E, R);
            ADDL("ffn_gate_inp.weight", 2, E, s->n_expert);
            ADDL("ffn_gate_exps.weight", 3, E, R);
            ADDL("ffn_up_exps.weight", 3, E, R);
            ADDL("ffn_down_exps.weight", 3, s->n_ff, R);
        } else {
            ADDL("attn_qkv.weight", 2, E, R);
            ADDL("ffn_up.weight", 2, E, R);
            ADDL("ffn_down.weight", 2, s->n_ff, R);
        }
    }
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        t[i].type = PHIQ_GGML_TYPE_F32;
        t[i].offset = (uint64_t)total * 4;
        int64_t ne = t[i].ne[0] * t[i].ne[1] * t[i].ne[2];
        ne = (ne + 7) / 8 * 8; /* 32-byte alignment of f32 data */
        total += ne;
    }
    float *data = calloc((size_t)total, 4);
    for (int i = 0; i < n; i++) {
        float *p = data + t[i].offset / 4;
        if (t[i].n_dims == 1) {
            for (int64_t j = 0; j < t[i].ne[0]; j++) p[j] = 1.0f;
        } else {
            fill_rows(p, t[i].ne[1] * t[i].ne[2], t[i].ne[0], seed + (uint64_t)i);
        }
        t[i].data = p;
    }
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    w_raw(f, "GGUF", 4);
    w_u32(f, 3);
    w_u64(f, (uint64_t)n);
    w_u64(f, s->n_expert ? 14 : 12); /* number of KVs below */
    const char *arch = s->n_expert ? "phimoe" : "phi3";
    char key[128];
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", arch, suffix), key)
    kv_str(f, "general.architecture", arch);
    kv_str(f, "general.name", "tiny test model");
    kv_u32(f, KEY("context_length"), 4096);
    kv_u32(f, KEY("embedding_length"), (uint32_t)E);
    kv_u32(f, KEY("block_count"), (uint32_t)s->n_layer);
    kv_u32(f, KEY("feed_forward_length"), (uint32_t)s->n_ff);
    kv_u32(f, KEY("attention.head_count"), (uint32_t)s->n_head);
    kv_u32(f, KEY("attention.head_count_kv"), (uint32_t)s->n_head_kv);
    kv_f32(f, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    kv_u32(f, KEY("rope.dimension_count"), (uint32_t)(E / s->n_head));
    if (s->n_expert) {
        kv_u32(f, KEY("expert_count"), (uint32_t)s->n_expert);
        kv_u32(f, KEY("expert_used_count"), 2);
    }
#undef KEY
    kv_str(f, "tokenizer.ggml.model", "llama");
    w_str(f, "tokenizer.ggml.tokens");
    w_u32(f, 9);
    w_u32(f, 8);
    w_u64(f, (uint64_t)s->n_vocab);
    for (int i = 0; i < s->n_vocab; i++) {
        char tok[32];
        snprintf(tok, sizeof tok, i == 0 ? "<unk>" : i == 1 ? "<s>" : i == 2 ? "</s>" : "t%d", i);
        w_str(f, tok);
    }
    for (int i = 0; i < n; i++) {
        w_str(f, t[i].name);
        w_u32(f, (uint32_t)t[i].n_dims);
        for (int d = 0; d < t[i].n_dims; d++) w_u64(f, (uint64_t)t[i].ne[d]);
        w_u32(f, (uint32_t)t[i].type);
        w_u64(f, t[i].offset);
    }
    long pos = ftell(f);
    while (pos % 32) {
        fputc(0, f);
        pos++;
    }
    w_raw(f, data, (size_t)total * 4);
    assert_int_equal(fclose(f), 0);
    *out_t = t;
    *blob = data;
    return n;
#undef ADD
#undef ADDL
}

/* A model of spec s that write_model wrote to tmp/quant_KIND_I.gguf, with its
 * tensors (t, n of them) and their data; drop_model frees it and removes the file. */
typedef struct {
    char path[4096];
    gt *t;
    float *blob;
    int n;
} test_model;

static void make_model(test_model *m, const char *kind, int i, const model_spec *s, uint64_t seed) {
    char name[64];
    snprintf(name, sizeof name, "quant_%s_%d.gguf", kind, i);
    snprintf(m->path, sizeof m->path, "%s", tu_tmp(name));
    m->n = write_model(m->path, s, &m->t, &m->blob, seed);
}

static void drop_model(test_model *m) {
    free(m->t);
    free(m->blob);
    remove(m->path);
}

typedef struct {
    uint8_t *buf;
    size_t size, pos;
} rd;

static int r_get(rd *r, void *p, size_t n) {
    if (r->pos + n > r->size) return -1;
    memcpy(p, r->buf + r->pos, n);
    r->pos += n;
    return 0;
}
static uint64_t r_u64(rd *r) { uint64_t v = 0; assert_int_equal(r_get(r, &v, 8), 0); return v; }
static uint32_t r_u32(rd *r) { uint32_t v = 0; assert_int_equal(r_get(r, &v, 4), 0); return v; }
static void r_skip_val(rd *r, uint32_t type) {
    static const size_t sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    assert_true(type <= 12);
    if (type == 8) {
        r->pos += r_u64(r);
    } else if (type == 9) {
        const uint32_t et = r_u32(r);
        const uint64_t cnt = r_u64(r);
        for (uint64_t i = 0; i < cnt; i++) r_skip_val(r, et);
    } else {
        r->pos += sz[type];
    }
    assert_true(r->pos <= r->size);
}

/* Reads tensor infos of a GGUF written by llama.cpp (alignment 32). */
static int read_gguf(const char *path, gt **out_t, uint8_t **buf_out, uint64_t *data_off) {
    rd r = {0};
    r.buf = tu_read_all(path, &r.size);
    assert_non_null(r.buf);
    char magic[4];
    assert_int_equal(r_get(&r, magic, 4), 0);
    assert_memory_equal(magic, "GGUF", 4);
    assert_int_equal(r_u32(&r), 3);
    const uint64_t nt = r_u64(&r), nkv = r_u64(&r);
    uint32_t align = 32;
    for (uint64_t i = 0; i < nkv; i++) {
        const uint64_t kl = r_u64(&r);
        char key[256] = {0};
        assert_true(kl < sizeof key);
        assert_int_equal(r_get(&r, key, kl), 0);
        const uint32_t vt = r_u32(&r);
        if (!strcmp(key, "general.alignment") && vt == 4) align = r_u32(&r);
        else r_skip_val(&r, vt);
    }
    gt *t = calloc(nt, sizeof *t);
    for (uint64_t i = 0; i < nt; i++) {
        const uint64_t nl = r_u64(&r);
        assert_true(nl < sizeof t[i].name);
        assert_int_equal(r_get(&r, t[i].name, nl), 0);
        t[i].n_dims = (int)r_u32(&r);
        assert_true(t[i].n_dims >= 1 && t[i].n_dims <= 4);
        t[i].ne[1] = t[i].ne[2] = t[i].ne[3] = 1;
        for (int d = 0; d < t[i].n_dims; d++) t[i].ne[d] = (int64_t)r_u64(&r);
        t[i].type = (int)r_u32(&r);
        t[i].offset = r_u64(&r);
    }
    *data_off = (r.pos + align - 1) / align * align;
    *out_t = t;
    *buf_out = r.buf;
    return (int)nt;
}

static const gt *find_t(const gt *t, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name)) return &t[i];
    return NULL;
}

/* ---- 2. llama-ref quantize --pure: bytes --------------------------------------- */

/* `llama-ref quantize IN OUTP ARGS` (fails the test when it fails), then its
 * output read as read_gguf does; returns the tensor count. */
static int llama_quantize(const char *ref, const char *in, const char *outp, const char *args, gt **qt, uint8_t **buf,
                          uint64_t *doff) {
    char *o = NULL, *e = NULL;
    const int rc = tu_run(&o, &e, "'%s' quantize '%s' '%s' %s", ref, in, outp, args);
    if (rc != 0) fprintf(stderr, "llama-ref quantize failed (%d): %s\n", rc, e ? e : "");
    assert_int_equal(rc, 0);
    free(o);
    free(e);
    return read_gguf(outp, qt, buf, doff);
}

/* Frees what llama_quantize read and removes its output file. */
static void drop_output(gt *qt, uint8_t *buf, const char *outp) {
    free(qt);
    free(buf);
    remove(outp);
}

static const struct { const char *ftype; int type; } PURE_TYPES[] = {
    {"Q4_0", PHIQ_GGML_TYPE_Q4_0}, {"Q4_1", PHIQ_GGML_TYPE_Q4_1},     {"Q5_0", PHIQ_GGML_TYPE_Q5_0},
    {"Q5_1", PHIQ_GGML_TYPE_Q5_1}, {"Q8_0", PHIQ_GGML_TYPE_Q8_0},     {"Q2_K", PHIQ_GGML_TYPE_Q2_K},
    {"Q3_K_M", PHIQ_GGML_TYPE_Q3_K}, {"Q4_K_S", PHIQ_GGML_TYPE_Q4_K}, {"Q4_K_M", PHIQ_GGML_TYPE_Q4_K},
    {"Q5_K_M", PHIQ_GGML_TYPE_Q5_K}, {"Q6_K", PHIQ_GGML_TYPE_Q6_K},   {"F16", PHIQ_GGML_TYPE_F16},
    {"BF16", PHIQ_GGML_TYPE_BF16}, {"IQ4_NL", PHIQ_GGML_TYPE_IQ4_NL}, {"IQ4_XS", PHIQ_GGML_TYPE_IQ4_XS},
};
#define N_PURE (int)(sizeof PURE_TYPES / sizeof PURE_TYPES[0])

static int run_pure(const char *ref, const char *in, const model_spec *s, const gt *src, int nsrc, int only_small) {
    int bad = 0;
    for (int k = 0; k < N_PURE; k++) {
        if (only_small && strcmp(PURE_TYPES[k].ftype, "Q4_K_M") && strcmp(PURE_TYPES[k].ftype, "Q4_0")) continue;
        char outp[4200];
        snprintf(outp, sizeof outp, "%s.%s.gguf", in, PURE_TYPES[k].ftype);
        gt *qt;
        uint8_t *buf;
        uint64_t doff;
        char args[64];
        snprintf(args, sizeof args, "%s --pure", PURE_TYPES[k].ftype);
        const int nq = llama_quantize(ref, in, outp, args, &qt, &buf, &doff);
        assert_int_equal(nq, nsrc);
        int ok = 1;
        for (int i = 0; i < nsrc; i++) {
            const gt *q = find_t(qt, nq, src[i].name);
            assert_non_null(q);
            const int expect = src[i].n_dims == 1 || strstr(src[i].name, "_norm") ? PHIQ_GGML_TYPE_F32 : PURE_TYPES[k].type;
            assert_int_equal(q->type, expect);
            const int64_t rows = src[i].ne[1], rs = phiq_ggml_row_size(expect, src[i].ne[0]);
            uint8_t *mine = malloc((size_t)(rows * rs));
            assert_int_equal(phiq_quantize(expect, src[i].data, mine, rows, src[i].ne[0], NULL), rows * rs);
            if (memcmp(mine, buf + doff + q->offset, (size_t)(rows * rs))) {
                fprintf(stderr, "MISMATCH llama-quantize %s (n_embd %d): tensor %s\n", PURE_TYPES[k].ftype,
                        s->n_embd, src[i].name);
                ok = 0;
            }
            free(mine);
        }
        fprintf(stderr, "%s %-6s n_embd=%d: %d tensors %s llama-quantize --pure\n", ok ? "ok" : "FAIL",
                PURE_TYPES[k].ftype, s->n_embd, nsrc, ok ? "byte-identical to" : "DIFFER from");
        bad += !ok;
        drop_output(qt, buf, outp);
    }
    return bad;
}

static void test_llama_quantize_pure(void **state) {
    (void)state;
    const char *ref = tu_require_llama_ref();
    /* A: rows of 256 and 512; B: rows of 3072 and 8192 (few rows each) */
    const model_spec specs[2] = {
        {.n_embd = 256, .n_ff = 512, .n_layer = 1, .n_head = 4, .n_head_kv = 4, .n_vocab = 64, .rows = 96},
        {.n_embd = 3072, .n_ff = 8192, .n_layer = 1, .n_head = 32, .n_head_kv = 32, .n_vocab = 12, .rows = 9},
    };
    int bad = 0;
    for (int m = 0; m < (sanitized() ? 1 : 2); m++) {
        test_model tm;
        make_model(&tm, "pure", m, &specs[m], 100 + (uint64_t)m);
        bad += run_pure(ref, tm.path, &specs[m], tm.t, tm.n, sanitized());
        drop_model(&tm);
    }
    assert_int_equal(bad, 0);
}

/* ---- 3. mixes: per-tensor types ---------------------------------------------------- */

static int run_mix(const char *ref, const char *in, const model_spec *s, const char *ftype) {
    char outp[4200];
    snprintf(outp, sizeof outp, "%s.mix.%s.gguf", in, ftype);
    gt *qt;
    uint8_t *buf;
    uint64_t doff;
    const int nq = llama_quantize(ref, in, outp, ftype, &qt, &buf, &doff);
    phiq_mix m;
    assert_int_equal(phiq_mix_parse(ftype, &m), 0);
    m.n_gqa = s->n_head / s->n_head_kv;
    m.has_output = !s->tied;
    int bad = 0, counts[PHIQ_GGML_TYPE_COUNT] = {0};
    for (int i = 0; i < nq; i++) {
        const int mine = phiq_mix_tensor_type(&m, qt[i].name, qt[i].n_dims, qt[i].ne, s->n_layer, PHIQ_GGML_TYPE_F32);
        counts[qt[i].type]++;
        if (mine != qt[i].type) {
            fprintf(stderr, "MISMATCH mix %s: %s llama %s phiq %s\n", ftype, qt[i].name,
                    phiq_ggml_type_name(qt[i].type), phiq_ggml_type_name(mine));
            bad++;
        }
    }
    char summary[512] = "";
    for (int t = 0; t < PHIQ_GGML_TYPE_COUNT; t++)
        if (counts[t]) snprintf(summary + strlen(summary), sizeof summary - strlen(summary), " %s:%d",
                                phiq_ggml_type_name(t), counts[t]);
    fprintf(stderr, "%s mix %-6s (n_layer %d, n_embd %d, gqa %d%s): %d tensors,%s\n", bad ? "FAIL" : "ok", ftype,
            s->n_layer, s->n_embd, m.n_gqa, s->tied ? ", tied" : "", nq, summary);
    phiq_mix_free(&m);
    drop_output(qt, buf, outp);
    return bad;
}

static void test_llama_quantize_mix(void **state) {
    (void)state;
    const char *ref = tu_require_llama_ref();
    static const char *mixes[] = {"Q4_K_M", "Q4_K_S", "Q5_K_M", "Q3_K_M", "Q6_K", "Q8_0", "Q4_0",
                                  "Q2_K",   "IQ4_NL", "IQ4_XS", "Q5_0",   "Q4_1", "F16",  "BF16"};
    const int nmix = sanitized() ? 2 : (int)(sizeof mixes / sizeof mixes[0]);
    const model_spec specs[2] = {
        /* Phi-3-mini-like: 32 layers, no GQA, separate output */
        {.n_embd = 256, .n_ff = 256, .n_layer = 32, .n_head = 4, .n_head_kv = 4, .n_vocab = 16, .rows = 2},
        /* tied embeddings, GQA 4, rows of 288 (not a multiple of 256: fallbacks) */
        {.n_embd = 288, .n_ff = 288, .n_layer = 8, .n_head = 8, .n_head_kv = 2, .n_vocab = 16, .rows = 2, .tied = 1},
    };
    int bad = 0;
    for (int sidx = 0; sidx < 2; sidx++) {
        test_model tm;
        make_model(&tm, "mix", sidx, &specs[sidx], 5);
        for (int k = 0; k < nmix; k++) bad += run_mix(ref, tm.path, &specs[sidx], mixes[k]);
        drop_model(&tm);
    }
    assert_int_equal(bad, 0);
}

/* ---- 4. libllama's llama_model_quantize: every preset, imatrix, options ---------- */

/* Mirrors of llama.h's public C structs (ABI of the library we dlopen). */
struct lq_imatrix { const char *name; const float *data; size_t size; };
struct lq_override { const char *pattern; int type; };
struct lq_params {
    int32_t nthread;
    int ftype, output_tensor_type, token_embedding_type;
    _Bool allow_requantize, quantize_output_tensor, only_copy, pure, keep_split, dry_run;
    const struct lq_imatrix *imatrix;
    const void *kv_overrides;
    const struct lq_override *tt_overrides;
    const int32_t *prune_layers;
    size_t max_buf_size;
    char reserve[64]; /* slack in case the library's struct grew */
};
typedef struct lq_params (*lq_default_fn)(void);
typedef uint32_t (*lq_quantize_fn)(const char *in, const char *out, const struct lq_params *p);

static void quiet_log(int level, const char *text, void *ud) {
    (void)ud;
    if (level == 4) fputs(text, stderr); /* GGML_LOG_LEVEL_ERROR only */
}

static void *open_llama(void) {
    char path[4096], tmp[4096];
    const char *ref = tu_llama_ref();
    if (!ref) return NULL;
    snprintf(tmp, sizeof tmp, "%s", ref);
    snprintf(path, sizeof path, "%s/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libllama.v0.5.0.so",
             dirname(tmp));
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) fprintf(stderr, "cannot dlopen %s: %s\n", path, dlerror());
    return lib;
}

/* Quantizes in -> out with llama.cpp and checks every tensor: type equal to
 * phiq_mix_tensor_type under the same options, bytes equal to phiq_quantize. */
static int check_llama_quantize(void *lib, const char *in, const model_spec *s, const gt *src, int nsrc,
                                const char *preset, int use_imatrix, int with_options) {
    void (*log_set)(void (*)(int, const char *, void *), void *);
    *(void **)&log_set = dlsym(lib, "llama_log_set");
    if (log_set) log_set(quiet_log, NULL);
    lq_default_fn defaults = (lq_default_fn)dlsym(lib, "llama_model_quantize_default_params");
    lq_quantize_fn quantize = (lq_quantize_fn)dlsym(lib, "llama_model_quantize");
    assert_non_null(defaults);
    assert_non_null(quantize);
    phiq_mix m;
    assert_int_equal(phiq_mix_parse(preset, &m), 0);
    m.n_gqa = s->n_head / s->n_head_kv;
    m.has_output = !s->tied;
    m.has_imatrix = use_imatrix != 0;
    m.n_expert = s->n_expert;
    struct lq_params p = defaults();
    p.nthread = 2;
    p.ftype = m.ftype;
    /* imatrix for every blk.* matrix (as llama-imatrix produces), column weights */
    struct lq_imatrix *im = calloc((size_t)nsrc + 1, sizeof *im);
    float **cols = calloc((size_t)nsrc, sizeof *cols);
    int nim = 0;
    for (int i = 0; use_imatrix && i < nsrc; i++) {
        if (src[i].n_dims < 2 || strncmp(src[i].name, "blk.", 4)) continue;
        const int64_t ncol = src[i].ne[0] * src[i].ne[2]; /* one vector per expert */
        cols[i] = malloc(sizeof(float) * (size_t)ncol);
        for (int64_t j = 0; j < ncol; j++) cols[i][j] = 0.05f + rnd_uniform() * rnd_uniform() * 3.0f;
        im[nim++] = (struct lq_imatrix){src[i].name, cols[i], (size_t)ncol};
    }
    if (use_imatrix) p.imatrix = im;
    struct lq_override ov[3] = {{"ffn_down", PHIQ_GGML_TYPE_Q8_0}, {"blk\\.1\\.", PHIQ_GGML_TYPE_Q5_0}, {NULL, 0}};
    if (with_options) {
        p.output_tensor_type = PHIQ_GGML_TYPE_Q5_K;
        p.token_embedding_type = PHIQ_GGML_TYPE_Q8_0;
        p.tt_overrides = ov;
        m.output_type = PHIQ_GGML_TYPE_Q5_K;
        m.token_embd_type = PHIQ_GGML_TYPE_Q8_0;
        assert_int_equal(phiq_mix_add_override(&m, "ffn_down=Q8_0"), 0);
        assert_int_equal(phiq_mix_add_override(&m, "blk\\.1\\.=Q5_0"), 0);
    }
    char outp[4200];
    snprintf(outp, sizeof outp, "%s.lq.gguf", in);
    assert_int_equal(quantize(in, outp, &p), 0);
    gt *qt;
    uint8_t *buf;
    uint64_t doff;
    const int nq = read_gguf(outp, &qt, &buf, &doff);
    assert_int_equal(nq, nsrc);
    int bad_type = 0, bad_bytes = 0, counts[PHIQ_GGML_TYPE_COUNT] = {0};
    for (int i = 0; i < nsrc; i++) {
        const gt *q = find_t(qt, nq, src[i].name);
        assert_non_null(q);
        counts[q->type]++;
        const int mine = phiq_mix_tensor_type(&m, src[i].name, src[i].n_dims, src[i].ne, s->n_layer, src[i].type);
        if (mine != q->type) {
            fprintf(stderr, "MISMATCH type %s%s: %s llama %s phiq %s\n", preset, use_imatrix ? "+imatrix" : "",
                    src[i].name, phiq_ggml_type_name(q->type), phiq_ggml_type_name(mine));
            bad_type++;
            continue;
        }
        const int64_t ne0 = src[i].ne[0], rows = src[i].ne[1], ne2 = src[i].ne[2];
        const int64_t rs = phiq_ggml_row_size(q->type, ne0);
        uint8_t *mb = malloc((size_t)(rows * ne2 * rs));
        for (int64_t e = 0; e < ne2; e++) /* experts: each with its own imatrix slice */
            assert_int_equal(phiq_quantize(q->type, (const float *)src[i].data + e * rows * ne0, mb + e * rows * rs,
                                           rows, ne0, cols[i] ? cols[i] + e * ne0 : NULL),
                             rows * rs);
        if (memcmp(mb, buf + doff + q->offset, (size_t)(rows * ne2 * rs))) {
            fprintf(stderr, "MISMATCH bytes %s%s: %s (%s)\n", preset, use_imatrix ? "+imatrix" : "", src[i].name,
                    phiq_ggml_type_name(q->type));
            bad_bytes++;
        }
        free(mb);
    }
    char summary[512] = "";
    for (int t = 0; t < PHIQ_GGML_TYPE_COUNT; t++)
        if (counts[t])
            snprintf(summary + strlen(summary), sizeof summary - strlen(summary), " %s:%d", phiq_ggml_type_name(t),
                     counts[t]);
    fprintf(stderr, "%s llama_model_quantize %-6s%s%s: types %s, bytes %s;%s\n",
            bad_type + bad_bytes ? "FAIL" : "ok", preset, use_imatrix ? " +imatrix" : "",
            with_options ? " +options" : "", bad_type ? "DIFFER" : "equal", bad_bytes ? "DIFFER" : "equal", summary);
    for (int i = 0; i < nsrc; i++) free(cols[i]);
    free(cols);
    free(im);
    phiq_mix_free(&m);
    free(qt);
    free(buf);
    remove(outp);
    return bad_type + bad_bytes;
}

static void test_libllama_quantize(void **state) {
    (void)state;
    void *lib = open_llama();
    if (!lib) {
        tu_unavailable("llama.cpp's libllama not available");
    }
    static const char *presets[] = {"Q4_0",   "Q4_1",   "Q5_0",   "Q5_1",   "Q8_0",   "Q2_K",   "Q3_K_S",
                                    "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",
                                    "IQ4_NL", "IQ4_XS", "F16",    "BF16",   "F32"};
    const model_spec specs[4] = {
        {.n_embd = 256, .n_ff = 512, .n_layer = 32, .n_head = 4, .n_head_kv = 4, .n_vocab = 8, .rows = 3},
        {.n_embd = 288, .n_ff = 320, .n_layer = 8, .n_head = 8, .n_head_kv = 2, .n_vocab = 8, .rows = 3, .tied = 1},
        /* PhiMoE-like: 16 experts, GQA 4 */
        {.n_embd = 256, .n_ff = 512, .n_layer = 8, .n_head = 8, .n_head_kv = 2, .n_vocab = 8, .rows = 2,
         .n_expert = 16},
        /* 8 experts: llama.cpp's Mixtral-specific rules (attn_v/attn_k Q8_0, attn_output Q5_K) */
        {.n_embd = 256, .n_ff = 256, .n_layer = 4, .n_head = 4, .n_head_kv = 4, .n_vocab = 8, .rows = 2,
         .n_expert = 8},
    };
    int bad = 0;
    /* sanitizer build: one model, the default preset only */
    const int nspec = sanitized() ? 1 : 4;
    const size_t npre = sanitized() ? 1 : sizeof presets / sizeof presets[0];
    for (int sidx = 0; sidx < nspec; sidx++) {
        test_model tm;
        make_model(&tm, "lq", sidx, &specs[sidx], 31 + (uint64_t)sidx);
        for (size_t k = 0; k < npre; k++)
            for (int im = 0; im < 2; im++)
                bad += check_llama_quantize(lib, tm.path, &specs[sidx], tm.t, tm.n, sanitized() ? "Q4_K_M" : presets[k],
                                            im, 0);
        bad += check_llama_quantize(lib, tm.path, &specs[sidx], tm.t, tm.n, "Q4_K_M", 0, 1);
        bad += check_llama_quantize(lib, tm.path, &specs[sidx], tm.t, tm.n, "Q8_0", 1, 1);
        drop_model(&tm);
    }
    assert_int_equal(bad, 0);
}

TU_MAIN(NULL, NULL, test_ggml_chunk, test_llama_quantize_pure, test_llama_quantize_mix, test_libllama_quantize)
