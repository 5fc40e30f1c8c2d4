/* test_safetensors.c — safetensors reading against a file written by
 * PyTorch/safetensors (the tiny-phi3-kjv fixture; expected values taken with
 * Python's struct module), write/read round trips, and malformed inputs:
 * each must fail with one line naming the file, never crash. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "formats/safetensors.h"

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* u64 length + json + datalen bytes (value i & 0xff). */
static void write_raw(const char *path, const char *json, size_t datalen) {
    size_t jl = strlen(json);
    size_t n = 8 + jl + datalen;
    uint8_t *b = malloc(n);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)jl >> (8 * i));
    memcpy(b + 8, json, jl);
    for (size_t i = 0; i < datalen; i++) b[8 + jl + i] = (uint8_t)i;
    write_bytes(path, b, n);
    free(b);
}

/* Opening must fail with a single line naming the file and containing want;
 * what names the case in the failure message. */
static void expect_fail_as(const char *what, const char *path, const char *want) {
    phiq_st *st = phiq_st_open(path);
    if (st) {
        phiq_st_close(st);
        fail_msg("%s: %s opened but should fail (%s)", what, path, want);
    }
    const char *e = phiq_error();
    if (!strstr(e, path) || strchr(e, '\n') || (want && !strstr(e, want)))
        fail_msg("%s: error for %s: '%s' (want '%s')", what, path, e, want ? want : "");
}

static void expect_fail(const char *path, const char *want) { expect_fail_as(path, path, want); }

static void test_fixture_pytorch_file(void **state) {
    (void)state;
    const char *path = tu_shared_path("fixtures/tiny-phi3-kjv/model.safetensors");
    phiq_st *st = phiq_st_open(path);
    assert_non_null(st);
    /* 1 embed + 4 layers x 6 + norm + lm_head; __metadata__ skipped */
    assert_int_equal(phiq_st_n_tensors(st), 27);
    const phiq_st_tensor *t = phiq_st_find(st, "model.layers.2.self_attn.qkv_proj.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, PHIQ_ST_BF16);
    assert_string_equal(t->dtype_name, "BF16");
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->shape[0], 512); /* (4 + 2*2) heads x 64 */
    assert_int_equal(t->shape[1], 256);
    assert_int_equal(t->nbytes, 512 * 256 * 2);
    /* values read with Python struct: raw 0xbd32, 0x3cd1, 0xbd57 */
    float v[1001];
    assert_int_equal(phiq_st_to_f32(t, 0, 1001, v), 0);
    assert_true(v[0] == -0.04345703125f);
    assert_true(v[7] == 0.0255126953125f);
    assert_true(v[1000] == -0.052490234375f);
    t = phiq_st_find(st, "model.embed_tokens.weight");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 32064);
    assert_int_equal(t->shape[1], 256);
    assert_int_equal(phiq_st_to_f32(t, 1000, 1, v), 0);
    assert_true(v[0] == -0.027587890625f);
    t = phiq_st_find(st, "lm_head.weight");
    assert_non_null(t);
    assert_int_equal(phiq_st_to_f32(t, 7, 1, v), 0);
    assert_true(v[0] == -0.099609375f);
    /* data order: lm_head is first in the blob */
    assert_string_equal(phiq_st_tensor_at(st, 0)->name, "lm_head.weight");
    t = phiq_st_find(st, "model.norm.weight");
    assert_int_equal(t->n_dims, 1);
    assert_int_equal(t->shape[0], 256);
    assert_int_equal(phiq_st_to_f32(t, 0, 1, v), 0);
    assert_true(v[0] == 1.3515625f);
    const phiq_st_tensor *gu = phiq_st_find(st, "model.layers.0.mlp.gate_up_proj.weight");
    assert_int_equal(gu->shape[0], 1536);
    assert_int_equal(gu->shape[1], 256);
    assert_null(phiq_st_find(st, "__metadata__"));
    assert_null(phiq_st_find(st, "model.layers.4.input_layernorm.weight"));
    /* out-of-range conversion is an error, not a read past the end */
    assert_true(phiq_st_to_f32(t, 250, 10, v) < 0);
    phiq_st_close(st);
}

static int fill_pattern(void *user, int i, void *buf, uint64_t nbytes) {
    uint64_t *pos = user; /* per-tensor running byte position */
    uint8_t *b = buf;
    for (uint64_t k = 0; k < nbytes; k++) b[k] = (uint8_t)(pos[i] + k) ^ (uint8_t)(i * 37);
    pos[i] += nbytes;
    return 0;
}

static void test_roundtrip(void **state) {
    (void)state;
    const char *path = tu_tmp("rt.safetensors");
    phiq_st_out_tensor ts[3] = {
        {.name = "a.weight", .dtype = PHIQ_ST_F32, .n_dims = 2, .shape = {3, 5}},
        {.name = "b", .dtype = PHIQ_ST_F16, .n_dims = 1, .shape = {7}},
        {.name = "c.big", .dtype = PHIQ_ST_BF16, .n_dims = 3, .shape = {2, 3, 4}},
    };
    uint64_t pos[3] = {0};
    assert_int_equal(phiq_st_write(path, ts, 3, fill_pattern, pos), 0);
    size_t n;
    uint8_t *raw = tu_read_all(path, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | raw[i];
    assert_int_equal(hl % 8, 0);                      /* aligned as the reference writer */
    assert_int_equal(n, 8 + hl + 60 + 14 + 48);
    phiq_st *st = phiq_st_open(path);
    assert_non_null(st);
    assert_int_equal(phiq_st_n_tensors(st), 3);
    for (int i = 0; i < 3; i++) {
        const phiq_st_tensor *t = phiq_st_find(st, ts[i].name);
        assert_non_null(t);
        assert_int_equal(t->dtype, ts[i].dtype);
        assert_int_equal(t->n_dims, ts[i].n_dims);
        for (int d = 0; d < t->n_dims; d++) assert_int_equal(t->shape[d], ts[i].shape[d]);
        const uint8_t *b = t->data;
        for (uint64_t k = 0; k < t->nbytes; k++) assert_int_equal(b[k], (uint8_t)k ^ (uint8_t)(i * 37));
    }
    /* F16 conversion: element 0 of b is bytes {0x25, 0x24} ^ ... check via the bit definition */
    const phiq_st_tensor *b = phiq_st_find(st, "b");
    float f[7];
    assert_int_equal(phiq_st_to_f32(b, 0, 7, f), 0);
    const uint8_t *bb = b->data;
    for (int k = 0; k < 7; k++) {
        uint16_t h = (uint16_t)(bb[2 * k] | bb[2 * k + 1] << 8);
        int e = (h >> 10) & 31, m = h & 1023;
        double want = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
        if (h & 0x8000) want = -want;
        assert_true(e == 31 || f[k] == (float)want);
    }
    phiq_st_close(st);
    free(raw);
}

static void test_truncated_prefixes(void **state) {
    (void)state;
    const char *src = tu_tmp("small.safetensors");
    phiq_st_out_tensor ts[2] = {
        {.name = "x", .dtype = PHIQ_ST_BF16, .n_dims = 2, .shape = {2, 3}},
        {.name = "y", .dtype = PHIQ_ST_F32, .n_dims = 1, .shape = {2}},
    };
    uint64_t pos[2] = {0};
    assert_int_equal(phiq_st_write(src, ts, 2, fill_pattern, pos), 0);
    size_t n;
    uint8_t *raw = tu_read_all(src, &n);
    const char *dst = tu_tmp("prefix.safetensors");
    for (size_t k = 0; k < n; k++) {
        write_bytes(dst, raw, k);
        expect_fail(dst, NULL);
    }
    write_bytes(dst, raw, n);
    phiq_st *st = phiq_st_open(dst);
    assert_non_null(st);
    phiq_st_close(st);
    free(raw);
}

/* Headers opening must refuse: the JSON, the bytes of data after it, what
 * the error says. */
static const struct {
    const char *json;
    size_t data;
    const char *want;
} BAD_HEADERS[] = {
    {"{\"a\": {\"dtype\": \"F32\", ", 0, "invalid JSON"},
    {"not json at all", 0, "JSON"},
    {"[1,2]", 0, "JSON"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}} xx", 8, "trailing"},
    /* byte size mismatch */
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 16, "'a'"},
    {"{\"a\": {\"dtype\": \"BF16\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}}", 16, "data_offsets span"},
    /* overlap */
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
     " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 16, "overlap"},
    /* offsets out of range */
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [8, 24]}}", 16, "beyond"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [-8, 0]}}", 16, "data_offsets"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}}", 16, "data_offsets"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [1e300, 1e300]}}", 16, "data_offsets"},
    /* dims */
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [-2, -4], \"data_offsets\": [0, 32]}}", 32, "negative dimension"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [0, 4], \"data_offsets\": [0, 0]}}", 16, "zero dimension"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 6]}}", 16, "integer"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 16]}}", 16, "too large"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", 16, "dimensions"},
    /* fields */
    {"{\"a\": {\"dtype\": \"Q4\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 16, "unknown dtype"},
    {"{\"a\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", 16, "dtype"},
    {"{\"a\": {\"dtype\": \"F32\", \"data_offsets\": [0, 8]}}", 16, "shape"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2]}}", 16, "data_offsets"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0]}}", 16, "data_offsets"},
    {"{\"a\": 5}", 16, "not an object"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
     " \"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}}", 16, "twice"},
};

static void test_bad_headers(void **state) {
    (void)state;
    const char *p = tu_tmp("bad.safetensors");
    /* header length beyond the file */
    uint8_t b[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    write_bytes(p, b, 10);
    expect_fail(p, "exceeds the file size");
    uint8_t huge[8] = {0, 0, 0, 0, 0, 0, 0, 0x80};
    write_bytes(p, huge, 8);
    expect_fail(p, "exceeds");
    for (size_t i = 0; i < sizeof BAD_HEADERS / sizeof *BAD_HEADERS; i++) {
        write_raw(p, BAD_HEADERS[i].json, BAD_HEADERS[i].data);
        expect_fail_as(BAD_HEADERS[i].json, p, BAD_HEADERS[i].want);
    }
    write_bytes(p, "", 0);
    expect_fail(p, NULL);
    expect_fail(tu_tmp("does-not-exist.safetensors"), "cannot open");
}

static void test_other_dtypes_and_metadata(void **state) {
    (void)state;
    const char *p = tu_tmp("other.safetensors");
    write_raw(p, "{\"__metadata__\": {\"format\": \"pt\"},"
                 " \"i\": {\"dtype\": \"I64\", \"shape\": [2], \"data_offsets\": [0, 16]},"
                 " \"u\": {\"dtype\": \"U8\", \"shape\": [3], \"data_offsets\": [16, 19]},"
                 " \"k\": {\"dtype\": \"BOOL\", \"shape\": [], \"data_offsets\": [19, 20]},"
                 " \"d\": {\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [24, 32]}}   ", 32);
    phiq_st *st = phiq_st_open(p);
    if (!st) fail_msg("%s", phiq_error());
    assert_int_equal(phiq_st_n_tensors(st), 4);
    const phiq_st_tensor *t = phiq_st_find(st, "i");
    assert_int_equal(t->dtype, PHIQ_ST_OTHER);
    assert_string_equal(t->dtype_name, "I64");
    assert_int_equal(t->nbytes, 16);
    float f[2];
    assert_true(phiq_st_to_f32(t, 0, 2, f) < 0);
    assert_non_null(strstr(phiq_error(), "I64"));
    t = phiq_st_find(st, "k");
    assert_int_equal(t->n_dims, 0);
    assert_int_equal(t->n_elements, 1);
    phiq_st_close(st);
    /* I32 with the wrong byte count is caught through its element size */
    write_raw(p, "{\"i\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [0, 16]}}", 16);
    expect_fail(p, "span");
}

TU_MAIN(NULL, NULL, test_fixture_pytorch_file, test_roundtrip, test_truncated_prefixes, test_bad_headers,
        test_other_dtypes_and_metadata)
