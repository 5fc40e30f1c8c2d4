/* test_gguf.c — GGUF reader and writer: round trip of every value type,
 * llama.cpp's own vocab GGUFs (read, copied byte-identically, and the copy
 * tokenized by llama.cpp), hand-built bytes from the spec (writer output must
 * equal them; every malformed variant must fail with one line naming the
 * file), atomic writes, and open time of a 600-tensor file. */
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common.h"
#include "formats/gguf.h"

/* ---- byte builder: writes GGUF fields directly from the spec ------------ */
typedef struct bb {
    uint8_t *p;
    size_t n, cap;
} bb;

static void bb_put(bb *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void bb_u32(bb *b, uint32_t v) { bb_put(b, &v, 4); }
static void bb_i32(bb *b, int32_t v) { bb_put(b, &v, 4); }
static void bb_u64(bb *b, uint64_t v) { bb_put(b, &v, 8); }
static void bb_i64(bb *b, int64_t v) { bb_put(b, &v, 8); }
static void bb_str(bb *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_put(b, s, strlen(s));
}
static void bb_pad(bb *b, size_t a) {
    while (b->n % a) bb_put(b, "", 1);
}
static void bb_header(bb *b, uint32_t version, int64_t n_tensors, int64_t n_kv) {
    bb_put(b, "GGUF", 4);
    bb_u32(b, version);
    bb_i64(b, n_tensors);
    bb_i64(b, n_kv);
}
static void bb_kv_str(bb *b, const char *k, const char *v) {
    bb_str(b, k);
    bb_i32(b, 8);
    bb_str(b, v);
}
static void bb_kv_u32(bb *b, const char *k, uint32_t v) {
    bb_str(b, k);
    bb_i32(b, 4);
    bb_u32(b, v);
}
static void bb_tinfo(bb *b, const char *name, uint32_t n_dims, const int64_t *ne, int32_t type, uint64_t off) {
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) bb_i64(b, ne[d]);
    bb_i32(b, type);
    bb_u64(b, off);
}

/* With PHIQ_GGUF_SEED_DIR set, keeps a copy of a file our writer produced as
 * a fuzzing seed (fuzz/seeds/fuzz_gguf is made this way). */
static void save_seed(const char *path, const char *name) {
    const char *dir = getenv("PHIQ_GGUF_SEED_DIR");
    if (!dir) return;
    size_t n;
    void *d = tu_read_all(path, &n);
    char dst[4096];
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    tu_write_file(dst, d, n);
    free(d);
}

/* llama.cpp (through llama-ref) must refuse the file while parsing the GGUF
 * container or checking tensor bounds — not later, e.g. for an unknown
 * architecture, which would mean it accepted the container. Skipped quietly
 * when llama-ref is unavailable (test_llama_loads_our_copy reports that). */
static void expect_llama_rejects(const char *path) {
    const char *ref = tu_llama_ref();
    if (!ref) return;
    char *err = NULL;
    int rc = tu_run(NULL, &err, "'%s' tokenize '%s' hello", ref, path);
    const char *e = err ? err : "";
    if (rc == 0 || strstr(e, "unknown model architecture") ||
        !(strstr(e, "gguf_init") || strstr(e, "read: ") || strstr(e, "not within the file bounds")))
        fail_msg("%s: llama.cpp did not reject the GGUF container (exit %d): %.300s", path, rc, e);
    free(err);
}

/* The file must be rejected with one line naming it and containing want;
 * llama_too: llama.cpp's reader rejects it as well (checked when available). */
static void expect_reject_x(bb *b, const char *name, const char *want, int llama_too) {
    const char *path = tu_tmp(name);
    tu_write_file(path, b->p, b->n);
    phiq_gguf *g = phiq_gguf_open(path);
    if (g) fail_msg("%s: accepted, expected an error containing '%s'", name, want);
    const char *e = phiq_error();
    if (!strstr(e, path) || !strstr(e, want) || strchr(e, '\n'))
        fail_msg("%s: error '%s' does not name the file or lacks '%s'", name, e, want);
    /* the in-memory path must agree */
    g = phiq_gguf_open_memory(b->p, b->n, name);
    assert_null(g);
    assert_non_null(strstr(phiq_error(), want));
    if (llama_too) expect_llama_rejects(path);
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

static void expect_reject(bb *b, const char *name, const char *want) { expect_reject_x(b, name, want, 1); }

/* A small valid file: 3 KVs (string, i32 array, string array), two F32
 * tensors of 8 elements (32 bytes = one alignment unit each, so every proper
 * prefix of the file is missing data). */
static void build_small(bb *b) {
    int64_t ne8[1] = {8}, ne81[2] = {8, 1};
    bb_header(b, 3, 2, 3);
    bb_kv_str(b, "general.architecture", "test");
    bb_str(b, "a.ints");
    bb_i32(b, 9);
    bb_i32(b, 5);
    bb_u64(b, 3);
    bb_i32(b, 1);
    bb_i32(b, -2);
    bb_i32(b, 3);
    bb_str(b, "a.strs");
    bb_i32(b, 9);
    bb_i32(b, 8);
    bb_u64(b, 2);
    bb_str(b, "ab");
    bb_str(b, "");
    bb_tinfo(b, "t0", 1, ne8, 0, 0);
    bb_tinfo(b, "t1", 2, ne81, 0, 32);
    bb_pad(b, 32);
    for (int i = 0; i < 16; i++) {
        float f = (float)i * 0.5f;
        bb_put(b, &f, 4);
    }
}

/* ---- round trip --------------------------------------------------------- */
typedef struct tdesc {
    const char *name;
    int type;
    int n_dims;
    int64_t ne[4];
    uint64_t nbytes; /* from the block sizes in the reference doc, not our table */
} tdesc;

static const tdesc rt_tensors[] = {
    {"f32.weight", PHIQ_GGML_TYPE_F32, 2, {8, 3}, 8 * 3 * 4},
    {"f16.weight", PHIQ_GGML_TYPE_F16, 3, {16, 2, 2}, 16 * 2 * 2 * 2},
    {"q4_0.weight", PHIQ_GGML_TYPE_Q4_0, 2, {64, 2}, 2 * 2 * 18},
    {"q8_0.weight", PHIQ_GGML_TYPE_Q8_0, 2, {32, 3}, 3 * 34},
    {"q4_k.weight", PHIQ_GGML_TYPE_Q4_K, 2, {256, 2}, 2 * 144},
    {"q6_k.weight", PHIQ_GGML_TYPE_Q6_K, 4, {256, 1, 1, 1}, 210},
    {"empty", PHIQ_GGML_TYPE_F32, 2, {4, 0}, 0},
};
#define N_RT (sizeof rt_tensors / sizeof rt_tensors[0])

static uint8_t fake_byte(int64_t i, uint64_t j) { return (uint8_t)(i * 37 + j * 11 + (j >> 8)); }

static int fill_fake(void *user, int64_t i, const char *name, void *buf, uint64_t nbytes) {
    int *calls = user;
    (*calls)++;
    for (uint64_t j = 0; j < nbytes; j++) ((uint8_t *)buf)[j] = fake_byte(i, j);
    return 0;
}

static void test_roundtrip_all_types(void **state) {
    (void)state;
    phiq_gguf_writer *w = phiq_gguf_writer_new();
    assert_non_null(w);
    assert_int_equal(phiq_gguf_writer_set_u32(w, "general.alignment", 64), 0);
    assert_int_equal(phiq_gguf_writer_set_u8(w, "v.u8", 200), 0);
    assert_int_equal(phiq_gguf_writer_set_i8(w, "v.i8", -100), 0);
    assert_int_equal(phiq_gguf_writer_set_u16(w, "v.u16", 60000), 0);
    assert_int_equal(phiq_gguf_writer_set_i16(w, "v.i16", -30000), 0);
    assert_int_equal(phiq_gguf_writer_set_u32(w, "v.u32", 4000000000u), 0);
    assert_int_equal(phiq_gguf_writer_set_i32(w, "v.i32", -2000000000), 0);
    assert_int_equal(phiq_gguf_writer_set_f32(w, "v.f32", 1.5e-5f), 0);
    assert_int_equal(phiq_gguf_writer_set_bool(w, "v.bool", true), 0);
    assert_int_equal(phiq_gguf_writer_set_str(w, "v.str", "héllo wörld"), 0);
    assert_int_equal(phiq_gguf_writer_set_u64(w, "v.u64", 18000000000000000000ull), 0);
    assert_int_equal(phiq_gguf_writer_set_i64(w, "v.i64", -9000000000000000000ll), 0);
    assert_int_equal(phiq_gguf_writer_set_f64(w, "v.f64", 3.141592653589793), 0);
    assert_int_equal(phiq_gguf_writer_set_str(w, "v.empty_str", ""), 0);
    const int32_t ints[4] = {1, -2, 3, -4};
    const float floats[3] = {0.25f, -1e30f, 7.0f};
    const uint64_t u64s[2] = {1, UINT64_MAX};
    const uint8_t u8s[5] = {0, 1, 2, 254, 255};
    assert_int_equal(phiq_gguf_writer_set_arr(w, "a.i32", PHIQ_GGUF_INT32, ints, 4), 0);
    assert_int_equal(phiq_gguf_writer_set_arr(w, "a.f32", PHIQ_GGUF_FLOAT32, floats, 3), 0);
    assert_int_equal(phiq_gguf_writer_set_arr(w, "a.u64", PHIQ_GGUF_UINT64, u64s, 2), 0);
    assert_int_equal(phiq_gguf_writer_set_arr(w, "a.u8", PHIQ_GGUF_UINT8, u8s, 5), 0);
    assert_int_equal(phiq_gguf_writer_set_arr(w, "a.empty", PHIQ_GGUF_FLOAT64, NULL, 0), 0);
    const char *strs[4] = {"<unk>", "", "a b", "\xe2\x96\x81the"};
    assert_int_equal(phiq_gguf_writer_set_arr_str(w, "a.str", strs, NULL, 4), 0);
    const char bin[3] = {'x', 0, 'y'}; /* explicit lengths allow embedded NULs */
    const char *binp[1] = {bin};
    const uint64_t binl[1] = {3};
    assert_int_equal(phiq_gguf_writer_set_arr_str(w, "a.bin", binp, binl, 1), 0);
    /* replacing keeps the first position and takes the new type */
    assert_int_equal(phiq_gguf_writer_set_i32(w, "v.u8", 7), 0);
    assert_int_equal(phiq_gguf_writer_set_u8(w, "v.u8", 201), 0);
    /* a removed key disappears */
    assert_int_equal(phiq_gguf_writer_set_u32(w, "v.gone", 1), 0);
    assert_int_equal(phiq_gguf_writer_remove_kv(w, "v.gone"), 0);
    for (size_t i = 0; i < N_RT; i++) {
        const tdesc *t = &rt_tensors[i];
        assert_int_equal(phiq_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne), 0);
    }
    assert_int_equal(phiq_gguf_writer_n_tensors(w), N_RT);
    const char *path = tu_tmp("roundtrip.gguf");
    int calls = 0;
    phiq_gguf_write_opts o = {1, "test"};
    assert_int_equal(phiq_gguf_writer_write(w, path, fill_fake, &calls, &o), 0);
    assert_int_equal(calls, N_RT);
    phiq_gguf_writer_free(w);

    save_seed(path, "all-types.seed");
    phiq_gguf *g = phiq_gguf_open(path);
    if (!g) fail_msg("%s", phiq_error());
    assert_int_equal(phiq_gguf_version(g), 3);
    assert_int_equal(phiq_gguf_alignment(g), 64);
    assert_int_equal(phiq_gguf_n_kv(g), 21);
    /* order: as first set */
    static const char *order[] = {"general.alignment", "v.u8", "v.i8", "v.u16", "v.i16", "v.u32", "v.i32",
                                  "v.f32", "v.bool", "v.str", "v.u64", "v.i64", "v.f64", "v.empty_str",
                                  "a.i32", "a.f32", "a.u64", "a.u8", "a.empty", "a.str", "a.bin"};
    for (int64_t i = 0; i < 21; i++) {
        assert_string_equal(phiq_gguf_kv_key(g, i), order[i]);
        assert_int_equal(phiq_gguf_find_kv(g, order[i]), i);
    }
    assert_int_equal(phiq_gguf_find_kv(g, "nope"), -1);
    static const int types[] = {4, 0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 8, 9, 9, 9, 9, 9, 9, 9};
    for (int64_t i = 0; i < 21; i++) assert_int_equal(phiq_gguf_kv_type(g, i), types[i]);

    int64_t iv;
    double fv;
    static const int64_t want_i[] = {64, 201, -100, 60000, -30000, 4000000000ll, -2000000000};
    for (int64_t i = 0; i < 7; i++) {
        assert_int_equal(phiq_gguf_kv_scalar(g, i, &iv, &fv), 0);
        assert_int_equal(iv, want_i[i]);
        assert_true(fv == (double)want_i[i]);
    }
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    float f32;
    bool bv;
    assert_int_equal(phiq_gguf_get_u32(g, "v.u32", &u32), 0);
    assert_int_equal(u32, 4000000000u);
    assert_int_equal(phiq_gguf_get_i32(g, "v.i32", &i32), 0);
    assert_int_equal(i32, -2000000000);
    assert_int_equal(phiq_gguf_get_f32(g, "v.f32", &f32), 0);
    assert_true(f32 == 1.5e-5f);
    assert_int_equal(phiq_gguf_get_bool(g, "v.bool", &bv), 0);
    assert_true(bv);
    assert_int_equal(phiq_gguf_get_u64(g, "v.u64", &u64), 0);
    assert_true(u64 == 18000000000000000000ull);
    assert_int_equal(phiq_gguf_kv_scalar(g, 11, &iv, &fv), 0);
    assert_true(iv == -9000000000000000000ll);
    assert_int_equal(phiq_gguf_kv_scalar(g, 12, &iv, &fv), 0);
    assert_true(fv == 3.141592653589793);
    assert_int_equal(phiq_gguf_kv_scalar(g, 7, &iv, &fv), 0);
    assert_true(fv == (double)1.5e-5f);
    assert_int_equal(phiq_gguf_kv_scalar(g, 9, &iv, &fv), PHIQ_EINVAL); /* a string */
    const char *s;
    uint64_t len;
    assert_int_equal(phiq_gguf_get_str(g, "v.str", &s, &len), 0);
    assert_int_equal(len, strlen("héllo wörld"));
    assert_memory_equal(s, "héllo wörld", len);
    assert_int_equal(phiq_gguf_get_str(g, "v.empty_str", &s, &len), 0);
    assert_int_equal(len, 0);

    /* typed getters: wrong type and absent key */
    assert_int_equal(phiq_gguf_get_u32(g, "v.i32", &u32), PHIQ_EFORMAT);
    assert_non_null(strstr(phiq_error(), "key v.i32 has type INT32, expected UINT32"));
    assert_non_null(strstr(phiq_error(), path));
    assert_int_equal(phiq_gguf_get_str(g, "v.u32", &s, &len), PHIQ_EFORMAT);
    assert_int_equal(phiq_gguf_get_f32(g, "missing.key", &f32), PHIQ_EUNSUPPORTED);
    assert_non_null(strstr(phiq_error(), "missing.key"));

    int et;
    uint64_t n;
    const void *data;
    assert_int_equal(phiq_gguf_kv_arr(g, 14, &et, &n, &data), 0);
    assert_int_equal(et, PHIQ_GGUF_INT32);
    assert_int_equal(n, 4);
    assert_memory_equal(data, ints, sizeof ints);
    assert_int_equal(phiq_gguf_kv_arr(g, 15, &et, &n, &data), 0);
    assert_int_equal(et, PHIQ_GGUF_FLOAT32);
    assert_memory_equal(data, floats, sizeof floats);
    assert_int_equal(phiq_gguf_kv_arr(g, 16, &et, &n, &data), 0);
    assert_int_equal(et, PHIQ_GGUF_UINT64);
    assert_memory_equal(data, u64s, sizeof u64s);
    assert_int_equal(phiq_gguf_kv_arr(g, 17, &et, &n, &data), 0);
    assert_memory_equal(data, u8s, sizeof u8s);
    assert_int_equal(phiq_gguf_kv_arr(g, 18, &et, &n, &data), 0);
    assert_int_equal(et, PHIQ_GGUF_FLOAT64);
    assert_int_equal(n, 0);
    assert_int_equal(phiq_gguf_kv_arr(g, 19, &et, &n, &data), 0);
    assert_int_equal(et, PHIQ_GGUF_STRING);
    assert_int_equal(n, 4);
    for (uint64_t j = 0; j < 4; j++) {
        assert_int_equal(phiq_gguf_arr_str(g, 19, j, &s, &len), 0);
        assert_int_equal(len, strlen(strs[j]));
        assert_memory_equal(s, strs[j], len);
    }
    assert_int_equal(phiq_gguf_arr_str(g, 19, 4, &s, &len), PHIQ_ERANGE);
    assert_int_equal(phiq_gguf_arr_str(g, 20, 0, &s, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(s, bin, 3);
    assert_int_equal(phiq_gguf_kv_arr(g, 1, &et, &n, &data), PHIQ_EFORMAT);

    /* tensors: layout computed here from the spec */
    assert_int_equal(phiq_gguf_n_tensors(g), N_RT);
    uint64_t doff = phiq_gguf_data_offset(g), expect = 0;
    assert_int_equal(doff % 64, 0);
    const uint8_t *base = NULL;
    for (size_t i = 0; i < N_RT; i++) {
        const tdesc *d = &rt_tensors[i];
        const phiq_gguf_tensor *t = phiq_gguf_tensor_at(g, (int64_t)i);
        assert_non_null(t);
        assert_ptr_equal(phiq_gguf_find_tensor(g, d->name), t);
        assert_string_equal(t->name, d->name);
        assert_int_equal(t->type, d->type);
        assert_int_equal(t->n_dims, d->n_dims);
        for (int k = 0; k < 4; k++) assert_int_equal(t->ne[k], k < d->n_dims ? d->ne[k] : 1);
        assert_int_equal(t->nbytes, d->nbytes);
        assert_int_equal(t->offset, expect);
        if (!base) base = (const uint8_t *)t->data - doff;
        assert_ptr_equal(t->data, base + doff + expect);
        for (uint64_t j = 0; j < t->nbytes; j++)
            if (((const uint8_t *)t->data)[j] != fake_byte((int64_t)i, j)) fail_msg("tensor %zu byte %llu", i, (unsigned long long)j);
        expect += (d->nbytes + 63) / 64 * 64;
    }
    assert_null(phiq_gguf_find_tensor(g, "absent"));
    assert_null(phiq_gguf_tensor_at(g, (int64_t)N_RT));
    /* every tensor padded with zeros, including the last: the file ends exactly there */
    assert_int_equal(phiq_gguf_file_size(g), doff + expect);
    phiq_gguf_close(g);
}

/* ---- writer output equals bytes built from the spec --------------------- */
static int fill_small(void *user, int64_t i, const char *name, void *buf, uint64_t nbytes) {
    for (int k = 0; k < 8; k++) {
        float f = (float)(i * 8 + k) * 0.5f;
        memcpy((uint8_t *)buf + 4 * k, &f, 4);
    }
    return 0;
}

static void test_writer_matches_spec_bytes(void **state) {
    (void)state;
    bb b = {0};
    build_small(&b);
    phiq_gguf_writer *w = phiq_gguf_writer_new();
    assert_int_equal(phiq_gguf_writer_set_str(w, "general.architecture", "test"), 0);
    const int32_t ints[3] = {1, -2, 3};
    assert_int_equal(phiq_gguf_writer_set_arr(w, "a.ints", PHIQ_GGUF_INT32, ints, 3), 0);
    const char *strs[2] = {"ab", ""};
    assert_int_equal(phiq_gguf_writer_set_arr_str(w, "a.strs", strs, NULL, 2), 0);
    int64_t ne8[1] = {8}, ne81[2] = {8, 1};
    assert_int_equal(phiq_gguf_writer_add_tensor(w, "t0", PHIQ_GGML_TYPE_F32, 1, ne8), 0);
    assert_int_equal(phiq_gguf_writer_add_tensor(w, "t1", PHIQ_GGML_TYPE_F32, 2, ne81), 0);
    const char *path = tu_tmp("small.gguf");
    phiq_gguf_write_opts o = {1, NULL};
    assert_int_equal(phiq_gguf_writer_write(w, path, fill_small, NULL, &o), 0);
    phiq_gguf_writer_free(w);
    save_seed(path, "small.seed");
    size_t n;
    uint8_t *got = tu_read_all(path, &n);
    assert_int_equal(n, b.n);
    assert_memory_equal(got, b.p, n);
    free(got);
    free(b.p);
}

/* ---- llama.cpp's own files ---------------------------------------------- */
static int fill_none(void *user, int64_t i, const char *name, void *buf, uint64_t nbytes) { return PHIQ_EINVAL; }

/* Copies every KV of src (and no tensors: the vocab files have none) to dst. */
static void copy_gguf(const phiq_gguf *g, const char *dst, int extra) {
    phiq_gguf_writer *w = phiq_gguf_writer_new();
    for (int64_t i = 0; i < phiq_gguf_n_kv(g); i++) assert_int_equal(phiq_gguf_writer_copy_kv(w, g, i), 0);
    if (extra) { /* unknown keys of every type: llama.cpp must still load the file */
        assert_int_equal(phiq_gguf_writer_set_u8(w, "phiq.test.u8", 1), 0);
        assert_int_equal(phiq_gguf_writer_set_i8(w, "phiq.test.i8", -1), 0);
        assert_int_equal(phiq_gguf_writer_set_u16(w, "phiq.test.u16", 2), 0);
        assert_int_equal(phiq_gguf_writer_set_i16(w, "phiq.test.i16", -2), 0);
        assert_int_equal(phiq_gguf_writer_set_i32(w, "phiq.test.i32", -3), 0);
        assert_int_equal(phiq_gguf_writer_set_u64(w, "phiq.test.u64", 4), 0);
        assert_int_equal(phiq_gguf_writer_set_i64(w, "phiq.test.i64", -4), 0);
        assert_int_equal(phiq_gguf_writer_set_f64(w, "phiq.test.f64", 0.5), 0);
        assert_int_equal(phiq_gguf_writer_set_bool(w, "phiq.test.bool", false), 0);
        assert_int_equal(phiq_gguf_writer_set_str(w, "phiq.test.empty", ""), 0);
        assert_int_equal(phiq_gguf_writer_set_arr(w, "phiq.test.none", PHIQ_GGUF_INT32, NULL, 0), 0);
        const char *s[2] = {"x", ""};
        assert_int_equal(phiq_gguf_writer_set_arr_str(w, "phiq.test.strs", s, NULL, 2), 0);
        assert_int_equal(phiq_gguf_writer_set_u32(w, "general.alignment", 64), 0);
        /* tensors of several types: llama.cpp's loader checks every tensor
         * info, the offsets and that the data lies inside the file, even
         * when it only loads the vocabulary */
        for (size_t i = 0; i < N_RT; i++) {
            const tdesc *t = &rt_tensors[i];
            assert_int_equal(phiq_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne), 0);
        }
    }
    phiq_gguf_write_opts o = {1, NULL};
    int calls = 0;
    assert_int_equal(phiq_gguf_writer_write(w, dst, extra ? fill_fake : fill_none, &calls, &o), 0);
    phiq_gguf_writer_free(w);
}

static void check_arr_str(const phiq_gguf *g, const char *key, uint64_t j, const char *want) {
    int64_t i = phiq_gguf_find_kv(g, key);
    assert_true(i >= 0);
    const char *s;
    uint64_t len;
    assert_int_equal(phiq_gguf_arr_str(g, i, j, &s, &len), 0);
    if (len != strlen(want) || memcmp(s, want, len)) fail_msg("%s[%llu] = '%.*s', want '%s'", key, (unsigned long long)j, (int)len, s, want);
}

static void check_str(const phiq_gguf *g, const char *key, const char *want) {
    const char *s;
    uint64_t len;
    assert_int_equal(phiq_gguf_get_str(g, key, &s, &len), 0);
    if (len != strlen(want) || memcmp(s, want, len)) fail_msg("%s = '%.*s', want '%s'", key, (int)len, s, want);
}

static uint64_t arr_len(const phiq_gguf *g, const char *key, int want_type) {
    int64_t i = phiq_gguf_find_kv(g, key);
    assert_true(i >= 0);
    int et;
    uint64_t n;
    assert_int_equal(phiq_gguf_kv_arr(g, i, &et, &n, NULL), 0);
    assert_int_equal(et, want_type);
    return n;
}

static void check_identical_copy(const phiq_gguf *g, const char *orig, const char *name) {
    const char *dst = tu_tmp(name);
    copy_gguf(g, dst, 0);
    tu_assert_same_file(orig, dst);
}

static void test_vocab_phi3(void **state) {
    (void)state;
    const char *path = tu_shared_path("fixtures/vocab/ggml-vocab-phi-3.gguf");
    phiq_gguf *g = phiq_gguf_open(path);
    if (!g) fail_msg("%s", phiq_error());
    assert_int_equal(phiq_gguf_version(g), 3);
    assert_int_equal(phiq_gguf_n_tensors(g), 0);
    check_str(g, "general.architecture", "phi3");
    check_str(g, "tokenizer.ggml.model", "llama"); /* SPM, per the reference doc §1.8 */
    /* fixtures README: Phi-3 vocabulary is 32000 SentencePiece + added tokens = 32064 */
    assert_int_equal(arr_len(g, "tokenizer.ggml.tokens", PHIQ_GGUF_STRING), 32064);
    assert_int_equal(arr_len(g, "tokenizer.ggml.scores", PHIQ_GGUF_FLOAT32), 32064);
    assert_int_equal(arr_len(g, "tokenizer.ggml.token_type", PHIQ_GGUF_INT32), 32064);
    check_arr_str(g, "tokenizer.ggml.tokens", 0, "<unk>");
    check_arr_str(g, "tokenizer.ggml.tokens", 1, "<s>");
    check_arr_str(g, "tokenizer.ggml.tokens", 2, "</s>");
    check_arr_str(g, "tokenizer.ggml.tokens", 32000, "<|endoftext|>");
    uint32_t v;
    assert_int_equal(phiq_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(phiq_gguf_get_u32(g, "phi3.context_length", &v), 0);
    assert_int_equal(v, 4096);
    bool b;
    assert_int_equal(phiq_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b), 0);
    assert_true(b);
    /* llama.cpp's loader reads these strictly typed: u32 and f32 (doc §1.6) */
    float eps;
    assert_int_equal(phiq_gguf_get_f32(g, "phi3.attention.layer_norm_rms_epsilon", &eps), 0);
    assert_true(eps > 0 && eps < 1e-4f);
    check_identical_copy(g, path, "copy-phi3.gguf");
    phiq_gguf_close(g);
}

static void test_vocab_gpt2(void **state) {
    (void)state;
    const char *path = tu_shared_path("fixtures/vocab/ggml-vocab-gpt-2.gguf");
    phiq_gguf *g = phiq_gguf_open(path);
    if (!g) fail_msg("%s", phiq_error());
    check_str(g, "general.architecture", "gpt2");
    check_str(g, "tokenizer.ggml.model", "gpt2");
    /* GPT-2: 50,000 merges + 256 byte tokens + <|endoftext|> = 50257 tokens */
    assert_int_equal(arr_len(g, "tokenizer.ggml.tokens", PHIQ_GGUF_STRING), 50257);
    assert_int_equal(arr_len(g, "tokenizer.ggml.merges", PHIQ_GGUF_STRING), 50000);
    check_arr_str(g, "tokenizer.ggml.tokens", 50256, "<|endoftext|>");
    check_arr_str(g, "tokenizer.ggml.tokens", 0, "!");
    check_arr_str(g, "tokenizer.ggml.merges", 0, "\xc4\xa0 t"); /* "Ġ t": the first GPT-2 merge */
    check_identical_copy(g, path, "copy-gpt2.gguf");
    phiq_gguf_close(g);
}

static void test_llama_loads_our_copy(void **state) {
    (void)state;
    const char *ref = tu_require_llama_ref();
    static const char *files[] = {"fixtures/vocab/ggml-vocab-phi-3.gguf", "fixtures/vocab/ggml-vocab-gpt-2.gguf"};
    for (int f = 0; f < 2; f++) {
        char orig[4096], copy[4096];
        snprintf(orig, sizeof orig, "%s", tu_shared_path(files[f]));
        snprintf(copy, sizeof copy, "%s", tu_tmp(f ? "llama-gpt2.gguf" : "llama-phi3.gguf"));
        phiq_gguf *g = phiq_gguf_open(orig);
        assert_non_null(g);
        copy_gguf(g, copy, 1); /* with extra keys of every type and alignment 64 */
        phiq_gguf_close(g);
        char *a = NULL, *b = NULL, *err = NULL;
        const char *text = "Hello world, 2024! <|endoftext|> caf\xc3\xa9";
        assert_int_equal(tu_run(&a, NULL, "'%s' tokenize '%s' '%s'", ref, orig, text), 0);
        int rc = tu_run(&b, &err, "'%s' tokenize '%s' '%s'", ref, copy, text);
        if (rc != 0) fail_msg("llama-ref rejected our copy %s: %s", copy, err ? err : "");
        assert_true(strlen(a) > 2);
        assert_string_equal(a, b);
        free(a);
        free(b);
        free(err);
        if (f) continue;
        /* control: the same copy cut inside a tensor's data must be refused by
         * llama.cpp too, which shows it really checked our tensor layout */
        g = phiq_gguf_open(copy);
        assert_non_null(g);
        const phiq_gguf_tensor *t = phiq_gguf_find_tensor(g, "q6_k.weight");
        size_t cut = (size_t)(phiq_gguf_data_offset(g) + t->offset + 100), n;
        phiq_gguf_close(g);
        uint8_t *bytes = tu_read_all(copy, &n);
        const char *cutp = tu_tmp("llama-cut.gguf");
        tu_write_file(cutp, bytes, cut);
        free(bytes);
        assert_null(phiq_gguf_open(cutp));
        assert_int_not_equal(tu_run(NULL, NULL, "'%s' tokenize '%s' hello 2>/dev/null", ref, cutp), 0);
    }
}

/* A vocab-shaped file (token strings, scores, types, two tensors): read back,
 * and kept as a fuzzing seed. */
static void test_vocab_like_file(void **state) {
    (void)state;
    enum { NT = 40 };
    char tok[NT][8];
    const char *toks[NT];
    float scores[NT];
    int32_t ttype[NT];
    for (int i = 0; i < NT; i++) {
        snprintf(tok[i], sizeof tok[i], i < 3 ? "<%d>" : "t%d", i);
        toks[i] = tok[i];
        scores[i] = -(float)i;
        ttype[i] = i < 3 ? 3 : 1;
    }
    phiq_gguf_writer *w = phiq_gguf_writer_new();
    assert_int_equal(phiq_gguf_writer_set_str(w, "general.architecture", "phi3"), 0);
    assert_int_equal(phiq_gguf_writer_set_u32(w, "phi3.block_count", 1), 0);
    assert_int_equal(phiq_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama"), 0);
    assert_int_equal(phiq_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, NT), 0);
    assert_int_equal(phiq_gguf_writer_set_arr(w, "tokenizer.ggml.scores", PHIQ_GGUF_FLOAT32, scores, NT), 0);
    assert_int_equal(phiq_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", PHIQ_GGUF_INT32, ttype, NT), 0);
    assert_int_equal(phiq_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true), 0);
    int64_t ne_e[2] = {32, NT}, ne_n[1] = {32};
    assert_int_equal(phiq_gguf_writer_add_tensor(w, "token_embd.weight", PHIQ_GGML_TYPE_Q8_0, 2, ne_e), 0);
    assert_int_equal(phiq_gguf_writer_add_tensor(w, "output_norm.weight", PHIQ_GGML_TYPE_F32, 1, ne_n), 0);
    const char *path = tu_tmp("vocab-like.gguf");
    phiq_gguf_write_opts o = {1, NULL};
    int calls = 0;
    assert_int_equal(phiq_gguf_writer_write(w, path, fill_fake, &calls, &o), 0);
    phiq_gguf_writer_free(w);
    save_seed(path, "vocab-like.seed");
    phiq_gguf *g = phiq_gguf_open(path);
    if (!g) fail_msg("%s", phiq_error());
    assert_int_equal(arr_len(g, "tokenizer.ggml.tokens", PHIQ_GGUF_STRING), NT);
    check_arr_str(g, "tokenizer.ggml.tokens", 39, "t39");
    check_arr_str(g, "tokenizer.ggml.tokens", 2, "<2>");
    assert_int_equal(phiq_gguf_find_tensor(g, "token_embd.weight")->nbytes, NT * 34);
    assert_int_equal(phiq_gguf_find_tensor(g, "output_norm.weight")->offset, (NT * 34 + 31) / 32 * 32);
    phiq_gguf_close(g);
}

/* ---- malformed input ----------------------------------------------------- */
static void test_truncated_every_prefix(void **state) {
    (void)state;
    bb b = {0};
    build_small(&b);
    phiq_gguf *g = phiq_gguf_open_memory(b.p, b.n, "small");
    if (!g) fail_msg("%s", phiq_error());
    phiq_gguf_close(g);
    const char *path = tu_tmp("trunc.gguf");
    for (size_t cut = 0; cut < b.n; cut++) {
        tu_write_file(path, b.p, cut);
        g = phiq_gguf_open(path);
        if (g) fail_msg("prefix of %zu/%zu bytes accepted", cut, b.n);
        const char *e = phiq_error();
        if (!strstr(e, path) || strchr(e, '\n')) fail_msg("cut %zu: bad message '%s'", cut, e);
        expect_llama_rejects(path);
        /* also without a file: the memory path must not read past the end */
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, b.p, cut);
        assert_null(phiq_gguf_open_memory(copy, cut, "m"));
        free(copy);
    }
    tu_write_file(path, b.p, b.n);
    g = phiq_gguf_open(path);
    assert_non_null(g);
    phiq_gguf_close(g);
    free(b.p);
}

static void test_bad_magic_and_version(void **state) {
    (void)state;
    bb b = {0};
    bb_put(&b, "GGUG", 4);
    bb_u32(&b, 3);
    bb_i64(&b, 0);
    bb_i64(&b, 0);
    expect_reject(&b, "magic.gguf", "not a GGUF file");
    bb_header(&b, 1, 0, 0);
    expect_reject(&b, "v1.gguf", "version 1");
    bb_header(&b, 4, 0, 0);
    expect_reject(&b, "v4.gguf", "version 4");
    bb_header(&b, 0x03000000u, 0, 0);
    expect_reject(&b, "endian.gguf", "endianness");
    /* v2 is parsed like v3 */
    bb_header(&b, 2, 0, 1);
    bb_kv_u32(&b, "k", 1);
    phiq_gguf *g = phiq_gguf_open_memory(b.p, b.n, "v2");
    assert_non_null(g);
    assert_int_equal(phiq_gguf_version(g), 2);
    phiq_gguf_close(g);
    free(b.p);
}

static void test_bad_counts(void **state) {
    (void)state;
    bb b = {0};
    bb_header(&b, 3, 0, (int64_t)1 << 40);
    bb_kv_u32(&b, "k", 1);
    expect_reject(&b, "nkv.gguf", "key-value count 1099511627776 is impossible");
    bb_header(&b, 3, 0, -1);
    expect_reject(&b, "nkvneg.gguf", "key-value count -1");
    bb_header(&b, 3, INT64_MAX, 0);
    expect_reject(&b, "nt.gguf", "tensor count");
    bb_header(&b, 3, 0, 2); /* the second value is cut off */
    bb_kv_u32(&b, "k", 1);
    bb_str(&b, "x");
    bb_i32(&b, 4);
    expect_reject(&b, "short.gguf", "truncated: value of key 'x'");
}

static void test_bad_strings(void **state) {
    (void)state;
    bb b = {0};
    bb_header(&b, 3, 0, 1);
    bb_u64(&b, 1000); /* key length past the end */
    bb_put(&b, "general.name", 12);
    bb_i32(&b, 8);
    expect_reject(&b, "keylen.gguf", "past the end of the file");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "general.name");
    bb_i32(&b, 8);
    bb_u64(&b, ((uint64_t)1 << 30) + 1); /* above llama.cpp's 1 GiB cap */
    bb_put(&b, "abcdefghijklmnop", 16);
    expect_reject(&b, "strmax.gguf", "1 GiB");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "general.name");
    bb_i32(&b, 8);
    bb_u64(&b, 17);
    bb_put(&b, "abcdefghijklmnop", 16);
    expect_reject(&b, "strpast.gguf", "past the end of the file");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "");
    bb_i32(&b, 4);
    bb_u32(&b, 1);
    bb_put(&b, "pad", 3);
    expect_reject(&b, "emptykey.gguf", "key 0 is empty");
}

static void test_bad_arrays(void **state) {
    (void)state;
    bb b = {0};
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "a");
    bb_i32(&b, 9);
    bb_i32(&b, 4);
    bb_u64(&b, ((uint64_t)1 << 30) + 1);
    bb_u32(&b, 0);
    expect_reject(&b, "arrmax.gguf", "more than the maximum 2^30");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "a");
    bb_i32(&b, 9);
    bb_i32(&b, 4);
    bb_u64(&b, 1000);
    bb_u32(&b, 0);
    expect_reject(&b, "arrpast.gguf", "past the end of the file");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "a");
    bb_i32(&b, 9);
    bb_i32(&b, 8);
    bb_u64(&b, (uint64_t)1 << 29); /* strings: far more than fit */
    bb_str(&b, "x");
    expect_reject(&b, "arrstr.gguf", "more than fit in the file");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "a");
    bb_i32(&b, 9);
    bb_i32(&b, 9);
    bb_u64(&b, 1);
    bb_i32(&b, 4);
    bb_u64(&b, 1);
    bb_u32(&b, 5);
    expect_reject(&b, "nested.gguf", "nested array");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "a");
    bb_i32(&b, 9);
    bb_i32(&b, 13);
    bb_u64(&b, 1);
    bb_u32(&b, 5);
    expect_reject(&b, "arrtype.gguf", "invalid GGUF type 13");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "a");
    bb_i32(&b, -1);
    bb_u64(&b, 1);
    expect_reject(&b, "valtype.gguf", "invalid GGUF type -1");
}

static void test_duplicate_key(void **state) {
    (void)state;
    bb b = {0};
    bb_header(&b, 3, 0, 3);
    bb_kv_u32(&b, "a.x", 1);
    bb_kv_str(&b, "a.y", "v");
    bb_kv_u32(&b, "a.x", 2);
    expect_reject(&b, "dupkey.gguf", "duplicate key 'a.x'");
}

static void test_bad_alignment(void **state) {
    (void)state;
    bb b = {0};
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "general.alignment");
    bb_i32(&b, 5); /* INT32 */
    bb_i32(&b, 32);
    expect_reject(&b, "aligntype.gguf", "'general.alignment' has type INT32, expected UINT32");
    bb_header(&b, 3, 0, 1);
    bb_kv_u32(&b, "general.alignment", 48);
    expect_reject(&b, "align48.gguf", "alignment 48 is not a power of two");
    bb_header(&b, 3, 0, 1);
    bb_kv_u32(&b, "general.alignment", 0);
    expect_reject(&b, "align0.gguf", "alignment 0 is not a power of two");
    /* a valid custom alignment moves the data section */
    int64_t ne[1] = {4};
    bb_header(&b, 3, 1, 1);
    bb_kv_u32(&b, "general.alignment", 256);
    bb_tinfo(&b, "t", 1, ne, 0, 0);
    bb_pad(&b, 256);
    bb_put(&b, "0123456789abcdef", 16);
    phiq_gguf *g = phiq_gguf_open_memory(b.p, b.n, "a256");
    if (!g) fail_msg("%s", phiq_error());
    assert_int_equal(phiq_gguf_data_offset(g), 256);
    assert_memory_equal(phiq_gguf_tensor_at(g, 0)->data, "0123456789abcdef", 16);
    phiq_gguf_close(g);
    free(b.p);
}

/* One tensor info after a header with no KVs, then aligned data of size dbytes. */
static void one_tensor(bb *b, const char *name, uint32_t n_dims, const int64_t *ne, int32_t type, uint64_t off,
                       size_t dbytes) {
    bb_header(b, 3, 1, 0);
    bb_tinfo(b, name, n_dims, ne, type, off);
    bb_pad(b, 32);
    for (size_t i = 0; i < dbytes; i++) bb_put(b, "\x7f", 1);
}

static void test_bad_tensor_infos(void **state) {
    (void)state;
    bb b = {0};
    int64_t ne8[1] = {8};
    bb_header(&b, 3, 2, 0);
    bb_tinfo(&b, "blk.0.attn_qkv.weight", 1, ne8, 0, 0);
    bb_tinfo(&b, "blk.0.attn_qkv.weight", 1, ne8, 0, 32);
    bb_pad(&b, 32);
    for (int i = 0; i < 64; i++) bb_put(&b, "", 1);
    expect_reject(&b, "duptensor.gguf", "duplicate tensor name 'blk.0.attn_qkv.weight'");

    char name64[65], name63[64];
    memset(name64, 'n', 64);
    name64[64] = 0;
    memset(name63, 'n', 63);
    name63[63] = 0;
    one_tensor(&b, name64, 1, ne8, 0, 0, 32);
    expect_reject(&b, "name64.gguf", "names must be shorter than 64");
    one_tensor(&b, name63, 1, ne8, 0, 0, 32);
    phiq_gguf *g = phiq_gguf_open_memory(b.p, b.n, "name63");
    if (!g) fail_msg("%s", phiq_error());
    assert_string_equal(phiq_gguf_tensor_at(g, 0)->name, name63);
    phiq_gguf_close(g);
    free(b.p);
    b = (bb){0};

    int64_t ne5[5] = {8, 1, 1, 1, 1};
    one_tensor(&b, "t", 5, ne5, 0, 0, 32);
    expect_reject(&b, "ndims5.gguf", "tensor 't' has 5 dimensions");
    one_tensor(&b, "t", 0, ne5, 0, 0, 32);
    /* stricter than llama.cpp, which reads n_dims 0 as a scalar; gguf.h promises 1..4 */
    expect_reject_x(&b, "ndims0.gguf", "tensor 't' has 0 dimensions", 0);
    int64_t neg[2] = {8, -1};
    one_tensor(&b, "t", 2, neg, 0, 0, 32);
    expect_reject(&b, "negne.gguf", "dimension 1 has -1 elements");
    int64_t ne48[1] = {48};
    one_tensor(&b, "q", 1, ne48, PHIQ_GGML_TYPE_Q4_0, 0, 64);
    expect_reject(&b, "block.gguf", "48 elements per row, not a multiple of the block size 32");
    one_tensor(&b, "t", 1, ne8, 43, 0, 32);
    expect_reject(&b, "type43.gguf", "invalid ggml type 43");
    one_tensor(&b, "t", 1, ne8, -1, 0, 32);
    expect_reject(&b, "typeneg.gguf", "invalid ggml type -1");
    one_tensor(&b, "t", 1, ne8, 31, 0, 32); /* Q4_0_4_4: removed from files */
    expect_reject(&b, "type31.gguf", "ggml type 31");
    int64_t big[3] = {(int64_t)1 << 32, (int64_t)1 << 32, 1};
    one_tensor(&b, "t", 3, big, 0, 0, 32);
    /* stricter than llama.cpp: its check multiplies ne first, 2^64 wraps to 0
     * elements and the file passes gguf_init_from_file */
    expect_reject_x(&b, "nel.gguf", "too many elements", 0);
    int64_t big2[1] = {(int64_t)1 << 62}; /* 2^62 elements fit, 2^64 bytes do not */
    one_tensor(&b, "t", 1, big2, 0, 0, 32);
    expect_reject(&b, "nbytes.gguf", "byte size that overflows");
    int64_t nebig[2] = {8, 1000};
    one_tensor(&b, "t", 2, nebig, 0, 0, 32);
    expect_reject(&b, "past.gguf", "tensor 't' data (32000 bytes at 96) extends past the end of the file");
    one_tensor(&b, "t", 1, ne8, 0, 0, 31);
    expect_reject(&b, "past1.gguf", "extends past the end");

    /* offsets must be exactly sequential */
    bb_header(&b, 3, 2, 0);
    bb_tinfo(&b, "a", 1, ne8, 0, 0);
    bb_tinfo(&b, "blk.0.attn_qkv.weight", 1, ne8, 0, 64);
    bb_pad(&b, 32);
    for (int i = 0; i < 128; i++) bb_put(&b, "", 1);
    expect_reject(&b, "offset.gguf", "tensor 'blk.0.attn_qkv.weight' has offset 64, expected 32");
    one_tensor(&b, "first", 1, ne8, 0, 32, 64);
    expect_reject(&b, "offset0.gguf", "tensor 'first' has offset 32, expected 0");
    /* a tensor with zero elements has no data and is accepted */
    int64_t ne0[2] = {8, 0};
    one_tensor(&b, "z", 2, ne0, 0, 0, 0);
    g = phiq_gguf_open_memory(b.p, b.n, "zero");
    if (!g) fail_msg("%s", phiq_error());
    assert_int_equal(phiq_gguf_tensor_at(g, 0)->nbytes, 0);
    phiq_gguf_close(g);
    free(b.p);
}

static void test_missing_file(void **state) {
    (void)state;
    const char *p = tu_tmp("does-not-exist.gguf");
    assert_null(phiq_gguf_open(p));
    assert_non_null(strstr(phiq_error(), p));
    assert_null(phiq_gguf_open(tu_tmpdir()));
}

/* ---- writer API and failure --------------------------------------------- */
static int fill_fail_second(void *user, int64_t i, const char *name, void *buf, uint64_t nbytes) {
    memset(buf, 1, nbytes);
    if (i == 1) return phiq_fail(PHIQ_EIO, "source: cannot read tensor '%s'", name);
    return 0;
}

static void test_writer_failure_leaves_nothing(void **state) {
    (void)state;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_tmp("wfail"));
    assert_int_equal(mkdir(dir, 0755), 0);
    char path[4200];
    snprintf(path, sizeof path, "%s/out.gguf", dir);
    phiq_gguf_writer *w = phiq_gguf_writer_new();
    int64_t ne[2] = {64, 64};
    assert_int_equal(phiq_gguf_writer_set_str(w, "general.architecture", "x"), 0);
    assert_int_equal(phiq_gguf_writer_add_tensor(w, "a", PHIQ_GGML_TYPE_F32, 2, ne), 0);
    assert_int_equal(phiq_gguf_writer_add_tensor(w, "b", PHIQ_GGML_TYPE_F32, 2, ne), 0);
    assert_int_equal(phiq_gguf_writer_add_tensor(w, "c", PHIQ_GGML_TYPE_F32, 2, ne), 0);
    phiq_gguf_write_opts o = {1, NULL};
    assert_int_equal(phiq_gguf_writer_write(w, path, fill_fail_second, NULL, &o), PHIQ_EIO);
    assert_non_null(strstr(phiq_error(), "cannot read tensor 'b'"));
    assert_int_equal(tu_dir_entries(dir), 0);
    /* an unwritable target fails cleanly too */
    char bad[4300];
    snprintf(bad, sizeof bad, "%s/no/such/dir/out.gguf", dir);
    assert_int_equal(phiq_gguf_writer_write(w, bad, fill_fake, &(int){0}, &o), PHIQ_EIO);
    assert_int_equal(tu_dir_entries(dir), 0);
    phiq_gguf_writer_free(w);
}

static void test_writer_rejects_bad_input(void **state) {
    (void)state;
    phiq_gguf_writer *w = phiq_gguf_writer_new();
    int64_t ne[2] = {32, 2}, ne48[1] = {48}, neg[1] = {-1};
    assert_int_equal(phiq_gguf_writer_add_tensor(w, "t", PHIQ_GGML_TYPE_Q8_0, 2, ne), 0);
    assert_int_equal(phiq_gguf_writer_add_tensor(w, "t", PHIQ_GGML_TYPE_F32, 2, ne), PHIQ_EINVAL);
    char name64[65];
    memset(name64, 'x', 64);
    name64[64] = 0;
    assert_int_equal(phiq_gguf_writer_add_tensor(w, name64, PHIQ_GGML_TYPE_F32, 2, ne), PHIQ_EINVAL);
    assert_int_equal(phiq_gguf_writer_add_tensor(w, "u", PHIQ_GGML_TYPE_Q4_0, 1, ne48), PHIQ_EINVAL);
    assert_int_equal(phiq_gguf_writer_add_tensor(w, "u", PHIQ_GGML_TYPE_F32, 1, neg), PHIQ_EINVAL);
    assert_int_equal(phiq_gguf_writer_add_tensor(w, "u", PHIQ_GGML_TYPE_F32, 5, ne), PHIQ_EINVAL);
    assert_int_equal(phiq_gguf_writer_add_tensor(w, "u", 31, 2, ne), PHIQ_EINVAL);
    assert_int_equal(phiq_gguf_writer_set_u32(w, "general.alignment", 48), PHIQ_EINVAL);
    assert_int_equal(phiq_gguf_writer_set_u64(w, "general.alignment", 64), PHIQ_EINVAL);
    assert_int_equal(phiq_gguf_writer_set_u32(w, "", 1), PHIQ_EINVAL);
    assert_int_equal(phiq_gguf_writer_set_arr(w, "a", PHIQ_GGUF_ARRAY, NULL, 0), PHIQ_EINVAL);
    assert_int_equal(phiq_gguf_writer_set_arr(w, "a", PHIQ_GGUF_STRING, NULL, 0), PHIQ_EINVAL);
    assert_int_equal(phiq_gguf_writer_remove_kv(w, "absent"), PHIQ_EUNSUPPORTED);
    assert_int_equal(phiq_gguf_writer_n_tensors(w), 1);
    phiq_gguf_writer_free(w);
}

/* ---- scale: 600 tensors -------------------------------------------------- */
static int fill_zero(void *user, int64_t i, const char *name, void *buf, uint64_t nbytes) {
    memset(buf, (int)(i & 0xff), nbytes);
    return 0;
}

static void test_open_600_tensors_fast(void **state) {
    (void)state;
    enum { N = 600 };
    phiq_gguf_writer *w = phiq_gguf_writer_new();
    char name[64];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", i);
        int64_t ne[2] = {256, 1 + i % 3};
        assert_int_equal(phiq_gguf_writer_add_tensor(w, name, PHIQ_GGML_TYPE_Q4_K, 2, ne), 0);
    }
    const char *path = tu_tmp("many.gguf");
    phiq_gguf_write_opts o = {1, NULL};
    assert_int_equal(phiq_gguf_writer_write(w, path, fill_zero, NULL, &o), 0);
    phiq_gguf_writer_free(w);
    double t0 = phiq_now();
    int reps = 20;
    for (int r = 0; r < reps; r++) {
        phiq_gguf *g = phiq_gguf_open(path);
        assert_non_null(g);
        for (int i = 0; i < N; i++) {
            snprintf(name, sizeof name, "blk.%d.ffn_down.weight", i);
            const phiq_gguf_tensor *t = phiq_gguf_find_tensor(g, name);
            assert_non_null(t);
            assert_int_equal(((const uint8_t *)t->data)[0], i & 0xff);
        }
        phiq_gguf_close(g);
    }
    double ms = (phiq_now() - t0) * 1000 / reps;
    fprintf(stderr, "open + 600 finds: %.3f ms\n", ms);
    assert_true(ms < (getenv("PHIQ_SANITIZED") ? 500 : 50));
}

TU_MAIN(NULL, NULL, test_roundtrip_all_types, test_writer_matches_spec_bytes, test_vocab_phi3, test_vocab_gpt2,
        test_llama_loads_our_copy, test_vocab_like_file, test_truncated_every_prefix, test_bad_magic_and_version,
        test_bad_counts, test_bad_strings, test_bad_arrays, test_duplicate_key, test_bad_alignment,
        test_bad_tensor_infos, test_missing_file, test_writer_failure_leaves_nothing, test_writer_rejects_bad_input,
        test_open_600_tensors_fast)
