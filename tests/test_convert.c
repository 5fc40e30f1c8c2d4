/* test_convert.c — `phiq convert` against independent references:
 *  - tiny-phi3-kjv → GGUF f32/f16/bf16, evaluated by llama.cpp (llama-ref),
 *    compared with the fixture's PyTorch logits;
 *  - tokenization of our GGUF by llama.cpp equals tokenization by llama.cpp's
 *    own Phi-3 vocab file (ggml-vocab-phi-3.gguf) on its test texts;
 *  - metadata value types equal those of llama.cpp's own phi3 GGUF;
 *  - GGUF → GGUF requantization equals llama.cpp's llama-quantize output
 *    tensor for tensor;
 *  - the same bytes for any thread count;
 *  - bad inputs: one-line error, exit 1, nothing left behind.
 */
#include "testutil.h"

#include <cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common.h"
#include "formats/gguf.h"

static const char *tiny(void) { return tu_shared_path("fixtures/tiny-phi3-kjv"); }

static int sanitized(void) { return getenv("PHIQ_SANITIZED") != NULL; }

/* Converts the tiny fixture once per type (cached for the process). */
static const char *tiny_gguf(const char *type) {
    static char done[8][32];
    static char paths[8][4096];
    static int n;
    char name[64];
    snprintf(name, sizeof name, "tiny-%s.gguf", type);
    const char *out = tu_tmp(name);
    for (int i = 0; i < n; i++)
        if (!strcmp(done[i], type)) return paths[i];
    char *err = NULL;
    int rc = tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --type %s --quiet", tu_bin(), tiny(), out, type);
    if (rc != 0) fprintf(stderr, "convert failed: %s\n", err);
    free(err);
    assert_int_equal(rc, 0);
    assert_true(n < 8);
    snprintf(done[n], 32, "%s", type);
    snprintf(paths[n], sizeof paths[n], "%s", out);
    return paths[n++];
}

/* ---- logits against the PyTorch reference ---------------------------------- */
static void logits_vs_reference(const char *type, double tol_frac) {
    const char *ref = tu_require_llama_ref();
    const char *gguf = tiny_gguf(type);
    char *pj = tu_read_all(tu_shared_path("fixtures/tiny-phi3-kjv/reference/prompts.json"), NULL);
    assert_non_null(pj);
    cJSON *root = cJSON_Parse(pj);
    free(pj);
    assert_non_null(root);
    int nv = cJSON_GetObjectItem(root, "vocab")->valueint;
    const cJSON *p;
    int k = 0;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(root, "prompts")) {
        char ids[8192] = "";
        size_t off = 0;
        const cJSON *id;
        int n = 0;
        cJSON_ArrayForEach(id, cJSON_GetObjectItem(p, "ids")) {
            off += (size_t)snprintf(ids + off, sizeof ids - off, "%s%d", n ? "," : "", id->valueint);
            n++;
        }
        char outname[64];
        snprintf(outname, sizeof outname, "logits-%s-%d.f32", type, k);
        char out[4096];
        snprintf(out, sizeof out, "%s", tu_tmp(outname));
        assert_int_equal(tu_run(NULL, NULL, "'%s' logits '%s' %s --all --out '%s'", ref, gguf, ids, out), 0);
        char refrel[256];
        snprintf(refrel, sizeof refrel, "fixtures/tiny-phi3-kjv/reference/%s",
                 cJSON_GetObjectItem(p, "file")->valuestring);
        size_t na, nb;
        float *a = tu_read_all(out, &na), *b = tu_read_all(tu_shared_path(refrel), &nb);
        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal(na, (size_t)n * (size_t)nv * 4);
        assert_int_equal(nb, na);
        double d = tu_max_abs_diff(a, b, na / 4), r = tu_range(b, nb / 4);
        fprintf(stderr, "[convert %s] prompt %d (%d tokens): max |llama.cpp - pytorch| = %.3g, range %.3g, ratio %.2e (tol %.1e)\n",
                type, k, n, d, r, d / r, tol_frac);
        assert_true(d <= tol_frac * r);
        free(a);
        free(b);
        k++;
    }
    assert_int_equal(k, 3);
    cJSON_Delete(root);
}

static void test_tiny_f32_logits(void **s) { (void)s; logits_vs_reference("f32", 1e-3); }
static void test_tiny_f16_logits(void **s) { (void)s; logits_vs_reference("f16", 1e-3); }
static void test_tiny_bf16_logits(void **s) { (void)s; logits_vs_reference("bf16", 5e-3); }

/* ---- tokenizer conformance with llama.cpp's own Phi-3 vocab --------------------- */
/* Writes the texts of a llama.cpp .inp file (separated by
 * "\n__ggml_vocab_test__\n") one JSON string per line; returns count. */
static int inp_to_lines(const char *inp, const char *lines) {
    size_t n;
    char *t = tu_read_all(inp, &n);
    assert_non_null(t);
    FILE *f = fopen(lines, "w");
    assert_non_null(f);
    const char *sep = "\n__ggml_vocab_test__\n";
    int count = 0;
    char *p = t;
    for (;;) {
        char *q = strstr(p, sep);
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (!q && len == 0) break;
        if (len > 0) { /* llama-ref cannot express an empty line; skip empty texts */
            tu_json_line_n(f, p, len);
            count++;
        }
        if (!q) break;
        p = q + strlen(sep);
    }
    fclose(f);
    free(t);
    return count;
}

static void test_tokenizer_matches_llamacpp_vocab(void **s) {
    (void)s;
    const char *ref = tu_require_llama_ref();
    const char *gguf = tiny_gguf("f32");
    char lines[4096];
    snprintf(lines, sizeof lines, "%s", tu_tmp("phi3-vocab.lines"));
    int n = inp_to_lines(tu_shared_path("fixtures/vocab/ggml-vocab-phi-3.gguf.inp"), lines);
    assert_true(n > 30);
    const char *flags[3] = {"", "--no-bos", "--no-special"};
    for (int k = 0; k < 3; k++) {
        char *ours = NULL, *theirs = NULL;
        assert_int_equal(tu_run(&ours, NULL, "'%s' tokenize '%s' --lines '%s' %s", ref, gguf, lines, flags[k]), 0);
        assert_int_equal(tu_run(&theirs, NULL, "'%s' tokenize '%s' --lines '%s' %s", ref,
                                tu_shared_path("fixtures/vocab/ggml-vocab-phi-3.gguf"), lines, flags[k]),
                         0);
        int nl = 0;
        for (char *c = ours; *c; c++) nl += *c == '\n';
        assert_int_equal(nl, n);
        if (strcmp(ours, theirs)) {
            /* show the first differing text */
            char *a = ours, *b = theirs;
            for (int i = 0; i < n; i++) {
                char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
                if (!ea || !eb || ea - a != eb - b || memcmp(a, b, (size_t)(ea - a))) {
                    fprintf(stderr, "text %d differs (%s):\n ours:   %.*s\n llama:  %.*s\n", i, flags[k],
                            ea ? (int)(ea - a) : 0, a, eb ? (int)(eb - b) : 0, b);
                    break;
                }
                a = ea + 1;
                b = eb + 1;
            }
        }
        assert_string_equal(ours, theirs);
        fprintf(stderr, "[convert] %d texts (%s) tokenize identically with llama.cpp's ggml-vocab-phi-3.gguf\n", n,
                flags[k][0] ? flags[k] : "default");
        free(ours);
        free(theirs);
    }
    /* the fixture prompts' ids (from the HF tokenizer) */
    char *pj = tu_read_all(tu_shared_path("fixtures/tiny-phi3-kjv/reference/prompts.json"), NULL);
    cJSON *root = cJSON_Parse(pj);
    free(pj);
    assert_non_null(root);
    const cJSON *p;
    int k = 0;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(root, "prompts")) {
        const char *text = cJSON_GetObjectItem(p, "text")->valuestring;
        char *heldout = NULL;
        if (k == 2) { /* "(first 400 bytes of ../text/kjv-heldout.txt)" */
            size_t n;
            heldout = tu_read_all(tu_shared_path("fixtures/text/kjv-heldout.txt"), &n);
            assert_non_null(heldout);
            heldout[n < 400 ? n : 400] = 0;
            text = heldout;
        }
        char line_path[4096];
        snprintf(line_path, sizeof line_path, "%s", tu_tmp("prompt.line"));
        FILE *f = fopen(line_path, "w");
        tu_json_line(f, text);
        fclose(f);
        char want[8192] = "";
        size_t off = 0;
        const cJSON *id;
        cJSON_ArrayForEach(id, cJSON_GetObjectItem(p, "ids"))
            off += (size_t)snprintf(want + off, sizeof want - off, "%s%d", off ? " " : "", id->valueint);
        snprintf(want + off, sizeof want - off, "\n");
        char *ids = NULL;
        assert_int_equal(tu_run(&ids, NULL, "'%s' tokenize '%s' --lines '%s'", ref, gguf, line_path), 0);
        if (strcmp(ids, want)) fprintf(stderr, "prompt %d: llama.cpp %s       HF      %s", k, ids, want);
        assert_string_equal(ids, want);
        free(ids);
        free(heldout);
        k++;
    }
    cJSON_Delete(root);
}

/* ---- metadata types as llama.cpp's own phi3 GGUF ------------------------------------ */
static void test_metadata_types_match_llamacpp(void **s) {
    (void)s;
    const char *ours_path = tiny_gguf("f16");
    phiq_gguf *ours = phiq_gguf_open(ours_path);
    phiq_gguf *theirs = phiq_gguf_open(tu_shared_path("fixtures/vocab/ggml-vocab-phi-3.gguf"));
    if (!ours || !theirs) fprintf(stderr, "%s\n", phiq_error());
    assert_non_null(ours);
    assert_non_null(theirs);
    int common = 0;
    for (int64_t i = 0; i < phiq_gguf_n_kv(theirs); i++) {
        const char *key = phiq_gguf_kv_key(theirs, i);
        int64_t j = phiq_gguf_find_kv(ours, key);
        if (j < 0) {
            fprintf(stderr, "key %s missing from our file\n", key);
            fail();
        }
        if (phiq_gguf_kv_type(ours, j) != phiq_gguf_kv_type(theirs, i)) {
            fprintf(stderr, "key %s: type %d, llama.cpp %d\n", key, phiq_gguf_kv_type(ours, j),
                    phiq_gguf_kv_type(theirs, i));
            fail();
        }
        int et1, et2;
        uint64_t n1, n2;
        const void *d1, *d2;
        if (phiq_gguf_kv_type(ours, j) == PHIQ_GGUF_ARRAY) {
            assert_int_equal(phiq_gguf_kv_arr(ours, j, &et1, &n1, &d1), 0);
            assert_int_equal(phiq_gguf_kv_arr(theirs, i, &et2, &n2, &d2), 0);
            assert_int_equal(et1, et2);
            assert_int_equal(n1, n2);
        }
        common++;
    }
    assert_true(common >= 20);
    /* values from config.json */
    static const struct {
        const char *key;
        uint32_t want;
    } u32s[] = {{"phi3.context_length", 4096},         {"phi3.rope.scaling.original_context_length", 1024},
                {"phi3.rope.dimension_count", 48},     {"phi3.attention.head_count_kv", 2},
                {"phi3.attention.sliding_window", 0}, {"general.file_type", 1}};
    for (size_t k = 0; k < sizeof u32s / sizeof u32s[0]; k++) {
        uint32_t u;
        assert_int_equal(phiq_gguf_get_u32(ours, u32s[k].key, &u), 0);
        assert_int_equal(u, u32s[k].want);
    }
    float f;
    bool b;
    assert_int_equal(phiq_gguf_get_f32(ours, "phi3.rope.scaling.attn_factor", &f), 0);
    assert_true(fabs(f - sqrt(1 + log(4.0) / log(1024.0))) < 1e-6);
    assert_int_equal(phiq_gguf_get_bool(ours, "tokenizer.ggml.add_bos_token", &b), 0);
    assert_true(b);
    /* tensors: rope factors f32 n_rot/2, fused qkv [E, E+2Dkv], fused gate|up [E, 2F] */
    const phiq_gguf_tensor *t = phiq_gguf_find_tensor(ours, "rope_factors_long.weight");
    assert_non_null(t);
    assert_int_equal(t->type, PHIQ_GGML_TYPE_F32);
    assert_int_equal(t->ne[0], 24);
    t = phiq_gguf_find_tensor(ours, "blk.3.attn_qkv.weight");
    assert_non_null(t);
    assert_int_equal(t->ne[0], 256);
    assert_int_equal(t->ne[1], 256 + 2 * 128);
    assert_int_equal(t->type, PHIQ_GGML_TYPE_F16);
    t = phiq_gguf_find_tensor(ours, "blk.0.ffn_up.weight");
    assert_non_null(t);
    assert_int_equal(t->ne[1], 2 * 768);
    t = phiq_gguf_find_tensor(ours, "blk.0.ffn_norm.weight");
    assert_non_null(t);
    assert_int_equal(t->type, PHIQ_GGML_TYPE_F32);
    assert_non_null(phiq_gguf_find_tensor(ours, "output.weight"));
    assert_int_equal(phiq_gguf_n_tensors(ours), 2 + 1 + 4 * 6 + 2);
    phiq_gguf_close(ours);
    phiq_gguf_close(theirs);
}

/* ---- requantization equals llama-quantize ----------------------------------------------- */
static void requant_vs_llama(const char *phiq_type, const char *llama_type) {
    const char *ref = tu_require_llama_ref();
    const char *f32 = tiny_gguf("f32");
    char o1[64], o2[64];
    snprintf(o1, sizeof o1, "rq-phiq-%s.gguf", phiq_type);
    snprintf(o2, sizeof o2, "rq-llama-%s.gguf", phiq_type);
    const char *ours = tu_tmp(o1);
    char oursb[4096];
    snprintf(oursb, sizeof oursb, "%s", ours);
    const char *theirs = tu_tmp(o2);
    char *err = NULL;
    int rc = tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --type %s --quiet", tu_bin(), f32, oursb, phiq_type);
    if (rc) fprintf(stderr, "%s", err);
    free(err);
    assert_int_equal(rc, 0);
    assert_int_equal(tu_run(NULL, NULL, "'%s' quantize '%s' '%s' %s >/dev/null 2>&1", ref, f32, theirs, llama_type), 0);
    const int64_t n = tu_same_tensors(oursb, theirs, phiq_type);
    fprintf(stderr, "[convert] GGUF f32 -> %s: %lld tensors byte-identical to llama-quantize\n", phiq_type, (long long)n);
}

static void test_requant_f16_matches_llama_quantize(void **s) { (void)s; requant_vs_llama("f16", "F16"); }
static void test_requant_bf16_matches_llama_quantize(void **s) { (void)s; requant_vs_llama("bf16", "BF16"); }

/* HF (bf16 safetensors) -> f16 directly equals HF -> f32 GGUF -> llama-quantize F16 */
static void test_hf_f16_matches_llama_quantize(void **s) {
    (void)s;
    const char *ref = tu_require_llama_ref();
    const char *theirs = tu_tmp("hf-llama-f16.gguf");
    char th[4096];
    snprintf(th, sizeof th, "%s", theirs);
    assert_int_equal(tu_run(NULL, NULL, "'%s' quantize '%s' '%s' F16 >/dev/null 2>&1", ref, tiny_gguf("f32"), th), 0);
    tu_same_tensors(tiny_gguf("f16"), th, "HF -> f16");
}


/* llama-quantize presets, GGUF f32 -> preset: same per-tensor types and bytes */
static void test_requant_presets_match_llama_quantize(void **s) {
    (void)s;
    tu_require_llama_ref();
    tu_require_quantizers();
    /* one per block family; the quantizers' own tests cover every type */
    const char *types[] = {"Q4_K_M", "Q8_0", "Q4_0", "Q2_K", "Q6_K", "IQ4_XS"};
    int n = sanitized() ? 3 : (int)(sizeof types / sizeof types[0]);
    for (int i = 0; i < n; i++) requant_vs_llama(types[i], types[i]);
}

/* HF bf16 -> Q4_K_M in one step equals HF -> f32 GGUF -> llama-quantize Q4_K_M,
 * and a quantized GGUF input is refused unless --allow-requantize */
static void test_hf_q4km_and_requantize(void **s) {
    (void)s;
    const char *ref = tu_require_llama_ref();
    tu_require_quantizers();
    char ours[4096], theirs[4096];
    snprintf(ours, sizeof ours, "%s", tu_tmp("hf-q4km.gguf"));
    snprintf(theirs, sizeof theirs, "%s", tu_tmp("llama-q4km.gguf"));
    assert_int_equal(tu_run(NULL, NULL, "'%s' convert '%s' -o '%s' --type q4_k_m -t 2 --quiet", tu_bin(), tiny(), ours), 0);
    assert_int_equal(tu_run(NULL, NULL, "'%s' quantize '%s' '%s' Q4_K_M >/dev/null 2>&1", ref, tiny_gguf("f32"), theirs), 0);
    const int64_t n = tu_same_tensors(ours, theirs, "HF -> Q4_K_M");
    fprintf(stderr, "[convert] HF -> Q4_K_M: %lld tensors byte-identical to llama-quantize of the f32 GGUF\n",
            (long long)n);

    char outdir[4096], args[16384];
    snprintf(outdir, sizeof outdir, "%s", tu_tmp("rq-out"));
    mkdir(outdir, 0777);
    char *err = NULL;
    int rc = tu_run(NULL, &err, "'%s' convert '%s' -o '%s/x.gguf' --type q8_0 --quiet", tu_bin(), theirs, outdir);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "--allow-requantize"));
    free(err);
    snprintf(args, sizeof args, "'%s' convert '%s' -o '%s/x.gguf' --type q8_0 --allow-requantize --quiet", tu_bin(),
             theirs, outdir);
    assert_int_equal(tu_run(NULL, NULL, "%s", args), 0);
    /* still a model llama.cpp runs */
    assert_int_equal(tu_run(NULL, NULL, "'%s' logits '%s/x.gguf' 1,512,278 >/dev/null", ref, outdir), 0);
}

/* ---- determinism over thread counts ------------------------------------------------- */
static void test_threads_identical(void **s) {
    (void)s;
    const char *a = tu_tmp("t1.gguf");
    char ab[4096];
    snprintf(ab, sizeof ab, "%s", a);
    const char *b = tu_tmp("t3.gguf");
    assert_int_equal(tu_run(NULL, NULL, "'%s' convert '%s' -o '%s' --type bf16 -t 1 --quiet", tu_bin(), tiny(), ab), 0);
    assert_int_equal(tu_run(NULL, NULL, "'%s' convert '%s' -o '%s' --type bf16 -t 3 --quiet", tu_bin(), tiny(), b), 0);
    assert_int_equal(tu_run(NULL, NULL, "cmp -s '%s' '%s'", ab, b), 0);
}

/* ---- bad input ------------------------------------------------------------------------ */
/* Runs a convert that must fail: exit 1, one line on stderr containing
 * `expect`, and the output directory unchanged (no output, no temporary). */
static void expect_failure(const char *args, const char *outdir, const char *expect) {
    int before = outdir ? tu_dir_entries(outdir) : 0;
    char *err = NULL;
    int rc = tu_run(NULL, &err, "'%s' convert %s", tu_bin(), args);
    fprintf(stderr, "[convert] %s -> exit %d: %s", args, rc, err);
    assert_int_equal(rc, 1);
    size_t len = strlen(err);
    assert_true(len > 0 && err[len - 1] == '\n');
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += err[i] == '\n';
    assert_int_equal(lines, 1);
    if (expect) assert_non_null(strstr(err, expect));
    free(err);
    if (outdir) assert_int_equal(tu_dir_entries(outdir), before);
}

/* A minimal HF directory with F32 safetensors written here (independently of
 * phiq's writer): Phi-3 layout, hidden 64, 1 layer, vocab 32064 with the
 * Phi-3 tokenizer. bad: 0 ok, 1 NaN in down_proj, 2 drop down_proj,
 * 3 unknown architecture. */
static void make_mini_phi3(const char *dir, int bad) {
    mkdir(dir, 0777);
    const int64_t E = 64, V = 32064, F = 128, QKV = 64 + 2 * 64;
    struct {
        const char *name;
        int64_t d0, d1;
    } ts[] = {
        {"model.embed_tokens.weight", V, E},
        {"model.layers.0.input_layernorm.weight", E, 0},
        {"model.layers.0.self_attn.qkv_proj.weight", QKV, E},
        {"model.layers.0.self_attn.o_proj.weight", E, E},
        {"model.layers.0.post_attention_layernorm.weight", E, 0},
        {"model.layers.0.mlp.gate_up_proj.weight", 2 * F, E},
        {"model.layers.0.mlp.down_proj.weight", E, F},
        {"model.norm.weight", E, 0},
        {"lm_head.weight", V, E},
    };
    int nt = (int)(sizeof ts / sizeof ts[0]);
    char hdr[8192];
    size_t off = 0;
    uint64_t data = 0;
    off += (size_t)snprintf(hdr + off, sizeof hdr - off, "{");
    int first = 1;
    for (int i = 0; i < nt; i++) {
        if (bad == 2 && strstr(ts[i].name, "down_proj")) continue;
        uint64_t n = (uint64_t)ts[i].d0 * (uint64_t)(ts[i].d1 ? ts[i].d1 : 1);
        if (ts[i].d1)
            off += (size_t)snprintf(hdr + off, sizeof hdr - off,
                                    "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[%llu,%llu]}",
                                    first ? "" : ",", ts[i].name, (long long)ts[i].d0, (long long)ts[i].d1,
                                    (unsigned long long)data, (unsigned long long)(data + n * 4));
        else
            off += (size_t)snprintf(hdr + off, sizeof hdr - off,
                                    "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],\"data_offsets\":[%llu,%llu]}",
                                    first ? "" : ",", ts[i].name, (long long)ts[i].d0, (unsigned long long)data,
                                    (unsigned long long)(data + n * 4));
        first = 0;
        data += n * 4;
    }
    off += (size_t)snprintf(hdr + off, sizeof hdr - off, "}");
    while (off % 8) hdr[off++] = ' ';
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t hl = off;
    fwrite(&hl, 8, 1, f);
    fwrite(hdr, 1, off, f);
    uint32_t seed = 12345;
    for (int i = 0; i < nt; i++) {
        if (bad == 2 && strstr(ts[i].name, "down_proj")) continue;
        uint64_t n = (uint64_t)ts[i].d0 * (uint64_t)(ts[i].d1 ? ts[i].d1 : 1);
        for (uint64_t k = 0; k < n; k++) {
            const float r = tu_randf(&seed);
            float v = ts[i].d1 ? (r - 0.5f) * 0.1f : 1.0f;
            if (bad == 1 && strstr(ts[i].name, "down_proj") && k == 77) v = NAN;
            fwrite(&v, 4, 1, f);
        }
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/config.json", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"architectures\":[\"%s\"],\"model_type\":\"phi3\",\"vocab_size\":32064,\"hidden_size\":64,"
            "\"intermediate_size\":128,\"num_hidden_layers\":1,\"num_attention_heads\":4,\"num_key_value_heads\":4,"
            "\"max_position_embeddings\":4096,\"original_max_position_embeddings\":4096,\"rope_theta\":10000.0,"
            "\"rms_norm_eps\":1e-05,\"tie_word_embeddings\":false,\"sliding_window\":2047,\"bos_token_id\":1,"
            "\"eos_token_id\":32000,\"pad_token_id\":32000,\"hidden_act\":\"silu\",\"torch_dtype\":\"float32\"}\n",
            bad == 3 ? "LlamaForCausalLM" : "Phi3ForCausalLM");
    fclose(f);
    const char *side[3] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};
    for (int i = 0; i < 3; i++) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "ln -sf '%s/fixtures/tokenizers/phi3/%s' '%s/%s'", tu_shared(), side[i], dir, side[i]);
        assert_int_equal(system(cmd), 0);
    }
}

static void test_mini_model_loads_in_llamacpp(void **s) {
    (void)s;
    const char *dir = tu_tmp("mini-ok");
    char d[4096];
    snprintf(d, sizeof d, "%s", dir);
    make_mini_phi3(d, 0);
    const char *out = tu_tmp("mini-ok.gguf");
    char o[4096];
    snprintf(o, sizeof o, "%s", out);
    char *err = NULL;
    int rc = tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --type f16 --quiet", tu_bin(), d, o);
    if (rc) fprintf(stderr, "%s", err);
    free(err);
    assert_int_equal(rc, 0);
    const char *ref = tu_require_llama_ref();
    char *txt = NULL;
    assert_int_equal(tu_run(&txt, NULL, "'%s' logits '%s' 1,450,4996,17354 | head -c 100000", ref, o), 0);
    /* finite numbers */
    assert_null(strstr(txt, "nan"));
    assert_null(strstr(txt, "inf"));
    assert_true(strlen(txt) > 1000);
    free(txt);
    phiq_gguf *g = phiq_gguf_open(o);
    assert_non_null(g);
    uint32_t u;
    assert_int_equal(phiq_gguf_get_u32(g, "phi3.attention.sliding_window", &u), 0);
    assert_int_equal(u, 2047);
    assert_int_equal(phiq_gguf_find_kv(g, "phi3.rope.scaling.attn_factor"), -1);
    assert_null(phiq_gguf_find_tensor(g, "rope_factors_long.weight"));
    phiq_gguf_close(g);
}

static void test_bad_inputs(void **s) {
    (void)s;
    char outdir[4096], args[16384], d[4096];
    snprintf(outdir, sizeof outdir, "%s", tu_tmp("bad-out"));
    mkdir(outdir, 0777);

    snprintf(d, sizeof d, "%s", tu_tmp("mini-nan"));
    make_mini_phi3(d, 1);
    snprintf(args, sizeof args, "'%s' -o '%s/x.gguf' --type f16 --quiet", d, outdir);
    expect_failure(args, outdir, "model.layers.0.mlp.down_proj.weight");
    expect_failure(args, outdir, "77");
    snprintf(args, sizeof args, "'%s' -o '%s/x.gguf' --type f32 -t 2 --quiet", d, outdir);
    expect_failure(args, outdir, "non-finite");

    snprintf(d, sizeof d, "%s", tu_tmp("mini-missing"));
    make_mini_phi3(d, 2);
    snprintf(args, sizeof args, "'%s' -o '%s/x.gguf' --quiet", d, outdir);
    expect_failure(args, outdir, "down_proj");

    snprintf(d, sizeof d, "%s", tu_tmp("mini-arch"));
    make_mini_phi3(d, 3);
    snprintf(args, sizeof args, "'%s' -o '%s/x.gguf' --quiet", d, outdir);
    expect_failure(args, outdir, "LlamaForCausalLM");

    snprintf(args, sizeof args, "'%s' -o '%s/x.gguf' --type q9_z --quiet", tiny(), outdir);
    expect_failure(args, outdir, "bf16"); /* lists the valid names */

    snprintf(args, sizeof args, "'%s' -o '%s/x.gguf' --quiet", tu_tmp("does-not-exist"), outdir);
    expect_failure(args, outdir, "does-not-exist");

    /* output directory that cannot exist (a regular file as parent) */
    snprintf(args, sizeof args, "'%s' -o '%s/config.json/x.gguf' --quiet", tiny(), d);
    expect_failure(args, NULL, "x.gguf");

    /* a file that is neither a directory nor a GGUF */
    snprintf(args, sizeof args, "'%s/config.json' -o '%s/x.gguf' --quiet", tiny(), outdir);
    expect_failure(args, outdir, NULL);
}

static void test_help(void **s) {
    (void)s;
    char *out = NULL;
    assert_int_equal(tu_run(&out, NULL, "'%s' convert --help", tu_bin()), 0);
    assert_non_null(strstr(out, "--tensor-type"));
    assert_non_null(strstr(out, "--allow-requantize"));
    free(out);
}

TU_MAIN(NULL, NULL, test_help, test_tiny_f32_logits, test_tiny_f16_logits, test_tiny_bf16_logits,
        test_tokenizer_matches_llamacpp_vocab, test_metadata_types_match_llamacpp,
        test_requant_f16_matches_llama_quantize, test_requant_bf16_matches_llama_quantize,
        test_hf_f16_matches_llama_quantize, test_requant_presets_match_llama_quantize, test_hf_q4km_and_requantize,
        test_threads_identical, test_mini_model_loads_in_llamacpp, test_bad_inputs)
