/* test_convert_imatrix.c — `phiq convert --imatrix`: the importance matrix
 * reaches the quantizer for the right tensor, as sum/count (GGUF format) or
 * value/ncall (legacy .dat), with count 0 meaning "all ones"; both file formats
 * give identical output; llama-quantize's quantize.imatrix.* keys are written;
 * a mismatched entry is a one-line error. The quantizer itself is checked
 * against llama.cpp in test_quant*; llama-ref cannot quantize with an
 * imatrix, so the expected bytes here come from phiq_quantize on the same
 * float32 rows. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "formats/gguf.h"
#include "quant/quant.h"

#define E 256
#define F 768

static const char *tiny(void) { return tu_shared_path("fixtures/tiny-phi3-kjv"); }


/* entries: blk.L.ffn_down.weight (ne0 = F) and blk.L.attn_qkv.weight (ne0 = E);
 * blk.1.attn_qkv gets count 0 (→ ones) */
typedef struct ent {
    char name[64];
    int ne0;
    float sum[F];
    float count;
} ent;

static int make_entries(ent *es) {
    int n = 0;
    uint32_t seed = 7;
    for (int l = 0; l < 4; l++) {
        for (int k = 0; k < 2; k++) {
            ent *e = &es[n++];
            snprintf(e->name, sizeof e->name, "blk.%d.%s", l, k ? "attn_qkv.weight" : "ffn_down.weight");
            e->ne0 = k ? E : F;
            e->count = (l == 1 && k == 1) ? 0.0f : 7.0f;
            for (int j = 0; j < e->ne0; j++) e->sum[j] = 0.1f + 20.0f * tu_randf(&seed);
        }
    }
    return n;
}

typedef struct fillctx {
    const ent *es;
} fillctx;

/* tensor 2k: entry k's sums (zero-padded when declared longer), 2k+1: its count */
static int fill_imatrix(void *u, int64_t i, const char *name, void *buf, uint64_t nb) {
    const ent *e = &((fillctx *)u)->es[i / 2];
    (void)name;
    memset(buf, 0, nb);
    if (i % 2) memcpy(buf, &e->count, 4);
    else memcpy(buf, e->sum, (size_t)e->ne0 * 4);
    return 0;
}

static void write_gguf_imatrix(const char *path, const ent *es, int n, int bad) {
    phiq_gguf_writer *w = phiq_gguf_writer_new();
    assert_non_null(w);
    assert_int_equal(phiq_gguf_writer_set_str(w, "general.type", "imatrix"), 0);
    const char *ds[1] = {"kjv-calibration.txt"};
    assert_int_equal(phiq_gguf_writer_set_arr_str(w, "imatrix.datasets", ds, NULL, 1), 0);
    assert_int_equal(phiq_gguf_writer_set_u32(w, "imatrix.chunk_count", 3), 0);
    assert_int_equal(phiq_gguf_writer_set_u32(w, "imatrix.chunk_size", 512), 0);
    for (int i = 0; i < n; i++) {
        char nm[96];
        int64_t ne[2] = {es[i].ne0 + (bad && i == 0 ? 32 : 0), 1};
        snprintf(nm, sizeof nm, "%s.in_sum2", es[i].name);
        assert_int_equal(phiq_gguf_writer_add_tensor(w, nm, PHIQ_GGML_TYPE_F32, 2, ne), 0);
        int64_t ne1[2] = {1, 1};
        snprintf(nm, sizeof nm, "%s.counts", es[i].name);
        assert_int_equal(phiq_gguf_writer_add_tensor(w, nm, PHIQ_GGML_TYPE_F32, 2, ne1), 0);
    }
    fillctx fc = {es};
    phiq_gguf_write_opts wo = {.quiet = 1};
    assert_int_equal(phiq_gguf_writer_write(w, path, fill_imatrix, &fc, &wo), 0);
    phiq_gguf_writer_free(w);
}

/* legacy: weight = value / ncall, so value = mean with ncall = 1 */
static void write_dat_imatrix(const char *path, const ent *es, int n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    int32_t ne = n;
    fwrite(&ne, 4, 1, f);
    for (int i = 0; i < n; i++) {
        int32_t len = (int32_t)strlen(es[i].name), ncall = 1, nval = es[i].ne0;
        fwrite(&len, 4, 1, f);
        fwrite(es[i].name, 1, (size_t)len, f);
        fwrite(&ncall, 4, 1, f);
        fwrite(&nval, 4, 1, f);
        for (int j = 0; j < nval; j++) {
            float v = es[i].count > 0 ? es[i].sum[j] / es[i].count : 1.0f;
            fwrite(&v, 4, 1, f);
        }
    }
    int32_t chunks = 3, dl = 19;
    fwrite(&chunks, 4, 1, f);
    fwrite(&dl, 4, 1, f);
    fwrite("kjv-calibration.txt", 1, 19, f);
    fclose(f);
}

static void test_imatrix(void **s) {
    (void)s;
    tu_require_quantizers();
    static ent es[8];
    int n = make_entries(es);
    char gi[4096], di[4096], f32[4096], a[4096], b[4096], c[4096], bad[4096];
    snprintf(gi, sizeof gi, "%s", tu_tmp("imatrix.gguf"));
    snprintf(di, sizeof di, "%s", tu_tmp("imatrix.dat"));
    snprintf(bad, sizeof bad, "%s", tu_tmp("imatrix-bad.gguf"));
    snprintf(f32, sizeof f32, "%s", tu_fixture_gguf("f32"));
    snprintf(a, sizeof a, "%s", tu_tmp("im-gguf.gguf"));
    snprintf(b, sizeof b, "%s", tu_tmp("im-dat.gguf"));
    write_gguf_imatrix(gi, es, n, 0);
    write_gguf_imatrix(bad, es, n, 1);
    write_dat_imatrix(di, es, n);
    const char *type = "q4_k_m";
    char *err = NULL;
    int rc = tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --type %s --imatrix '%s' -t 2 --quiet", tu_bin(), tiny(), a,
                    type, gi);
    if (rc) fprintf(stderr, "%s", err);
    free(err);
    assert_int_equal(rc, 0);
    assert_int_equal(tu_run(NULL, NULL, "'%s' convert '%s' -o '%s' --type %s --imatrix '%s' --quiet", tu_bin(), tiny(), b,
                            type, di),
                     0);
    snprintf(c, sizeof c, "%s", tu_fixture_gguf(type));

    phiq_gguf *ga = phiq_gguf_open(a), *gb = phiq_gguf_open(b), *gc = phiq_gguf_open(c), *gf = phiq_gguf_open(f32);
    assert_non_null(ga);
    assert_non_null(gb);
    assert_non_null(gc);
    assert_non_null(gf);
    int32_t v;
    assert_int_equal(phiq_gguf_get_i32(ga, "quantize.imatrix.entries_count", &v), 0);
    assert_int_equal(v, n);
    assert_int_equal(phiq_gguf_get_i32(ga, "quantize.imatrix.chunks_count", &v), 0);
    assert_int_equal(v, 3);
    const char *str;
    uint64_t sl;
    assert_int_equal(phiq_gguf_get_str(ga, "quantize.imatrix.dataset", &str, &sl), 0);
    assert_int_equal(sl, 19);
    assert_int_equal(phiq_gguf_find_kv(gc, "quantize.imatrix.file"), -1);

    int differs = 0;
    for (int64_t i = 0; i < phiq_gguf_n_tensors(ga); i++) {
        const phiq_gguf_tensor *ta = phiq_gguf_tensor_at(ga, i);
        const phiq_gguf_tensor *tb = phiq_gguf_find_tensor(gb, ta->name);
        const phiq_gguf_tensor *tc = phiq_gguf_find_tensor(gc, ta->name);
        assert_non_null(tb);
        assert_non_null(tc);
        assert_int_equal(ta->type, tb->type);
        assert_int_equal(ta->type, tc->type); /* Q4_K_M: the imatrix changes no type here (4 layers) */
        assert_memory_equal(ta->data, tb->data, ta->nbytes); /* .dat == GGUF */
        const ent *e = NULL;
        for (int k = 0; k < n; k++)
            if (!strcmp(es[k].name, ta->name)) e = &es[k];
        if (!e) {
            assert_memory_equal(ta->data, tc->data, ta->nbytes); /* no entry: as without imatrix */
            continue;
        }
        differs += memcmp(ta->data, tc->data, ta->nbytes) != 0;
        /* expected: phiq_quantize on the same f32 rows with weights sum/count (ones if count 0) */
        const phiq_gguf_tensor *tf = phiq_gguf_find_tensor(gf, ta->name);
        assert_non_null(tf);
        float w[F];
        for (int j = 0; j < e->ne0; j++) w[j] = e->count > 0 ? e->sum[j] / e->count : 1.0f;
        void *exp = malloc(ta->nbytes);
        float *rows = malloc(tf->nbytes);
        memcpy(rows, tf->data, tf->nbytes);
        assert_int_equal(phiq_quantize(ta->type, rows, exp, tf->ne[1], tf->ne[0], w), (int64_t)ta->nbytes);
        if (memcmp(exp, ta->data, ta->nbytes)) {
            fprintf(stderr, "%s (%s): not quantized with its imatrix entry\n", ta->name, phiq_ggml_type_name(ta->type));
            fail();
        }
        free(exp);
        free(rows);
    }
    assert_true(differs >= 6); /* the imatrix changed the quantization of most entries */
    fprintf(stderr, "[convert imatrix] %d of %d entries change the %s output; GGUF and .dat imatrix agree\n", differs, n,
            type);
    phiq_gguf_close(ga);
    phiq_gguf_close(gb);
    phiq_gguf_close(gc);
    phiq_gguf_close(gf);

    /* mismatched entry size: one line, exit 1, no output */
    char out[4096];
    snprintf(out, sizeof out, "%s", tu_tmp("im-bad-out.gguf"));
    err = NULL;
    rc = tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --type %s --imatrix '%s' --quiet", tu_bin(), tiny(), out, type, bad);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "blk.0.ffn_down.weight"));
    free(err);
    assert_int_equal(tu_run(NULL, NULL, "test -e '%s'", out), 1);
}

TU_MAIN(NULL, NULL, test_imatrix)
