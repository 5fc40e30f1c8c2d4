/* test_tokenizer.c — tokenizer encode/decode against independent references:
 * tiktoken's own encoder output (fixtures/tokenizers/tiktoken/NAME.tests.jsonl),
 * llama.cpp's tokenizer test vectors (fixtures/vocab/ggml-vocab-*.gguf.inp/.out,
 * run from both the GGUF vocabulary and the HF tokenizer.json), the
 * scores/types llama.cpp's converter wrote into ggml-vocab-phi-3.gguf, and
 * the Phi-3 rstrip behaviour stated in phi-family-architecture.md §3b.
 * Round trips and the streaming decoder are checked on fixture text. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/common.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

static int encode(const phiq_tokenizer *t, const char *s, size_t n, int bos, int special, int32_t **ids) {
    int cap = 64;
    *ids = malloc(sizeof **ids * (size_t)cap);
    int r = phiq_tokenize_text(t, s, n, bos, special, *ids, cap);
    if (r > cap) {
        *ids = realloc(*ids, sizeof **ids * (size_t)r);
        int r2 = phiq_tokenize_text(t, s, n, bos, special, *ids, r);
        assert_int_equal(r2, r);
    }
    if (r < 0) fail_msg("tokenize failed: %s", phiq_error());
    return r;
}

static void fmt_ids(char *buf, size_t cap, const int32_t *ids, int n) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < n && k + 12 < cap; i++) k += (size_t)snprintf(buf + k, cap - k, " %d", ids[i]);
}

/* ---- tiktoken ---------------------------------------------------------------- */
static void run_tiktoken(const char *name) {
    char rel[128];
    snprintf(rel, sizeof rel, "fixtures/tokenizers/tiktoken/%s.tiktoken", name);
    phiq_tokenizer *t = phiq_tokenizer_from_tiktoken(tu_shared_path(rel), NULL, NULL, NULL, 0);
    if (!t) fail_msg("%s", phiq_error());
    snprintf(rel, sizeof rel, "fixtures/tokenizers/tiktoken/%s.tests.jsonl", name);
    char *buf;
    size_t len;
    assert_int_equal(phiq_read_file(tu_shared_path(rel), &buf, &len), 0);
    int lines = 0, ok = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        assert_non_null(j);
        const char *text = cJSON_GetObjectItem(j, "text")->valuestring;
        cJSON *want = cJSON_GetObjectItem(j, "ids");
        int32_t *ids;
        /* tiktoken's encode_ordinary: special-token text is plain text */
        int n = encode(t, text, strlen(text), 0, 0, &ids);
        bool same = n == cJSON_GetArraySize(want);
        for (int i = 0; same && i < n; i++) same = ids[i] == cJSON_GetArrayItem(want, i)->valueint;
        if (!same) {
            char got[2048];
            fmt_ids(got, sizeof got, ids, n);
            print_message("%s mismatch on %s\n  got%s\n", name, line, got);
        }
        ok += same;
        lines++;
        /* decode gives the text back */
        char out[4096];
        int dl = phiq_detokenize(t, ids, n, 0, out, sizeof out);
        assert_int_equal(dl, (int)strlen(text));
        assert_string_equal(out, text);
        free(ids);
        cJSON_Delete(j);
    }
    print_message("%s: %d/%d tiktoken vectors match\n", name, ok, lines);
    assert_true(lines >= 20);
    assert_int_equal(ok, lines);
    free(buf);
    phiq_tokenizer_free(t);
}

static void test_tiktoken_o200k(void **s) { (void)s; run_tiktoken("o200k_base"); }
static void test_tiktoken_cl100k(void **s) { (void)s; run_tiktoken("cl100k_base"); }

/* ---- HF tokenizer.json BPE path (phi-4 style) ------------------------------------
 * phi-4 ships cl100k as a GPT-2-style tokenizer.json: byte-level vocab,
 * merges, and a Split pre-tokenizer with the (?i:...) spelling of the cl100k
 * regex (phi-family-architecture.md §3a). We build such a file from the
 * cl100k ranks — merges recovered the standard way: a token's merge is the
 * two parts that rank-ordered BPE, restricted to lower ranks, leaves — and
 * require tiktoken's ids for every test line. */
typedef struct rmap {
    uint32_t cap;
    int32_t *id;
    const unsigned char **key;
    const int *len;
} rmap;

static uint32_t rhash(const unsigned char *s, int n) {
    uint32_t h = 2166136261u;
    for (int i = 0; i < n; i++) h = (h ^ s[i]) * 16777619u;
    return h;
}

static int32_t rget(const rmap *m, const unsigned char *s, int n) {
    for (uint32_t i = rhash(s, n) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        int32_t id = m->id[i];
        if (id < 0) return -1;
        if (m->len[id] == n && !memcmp(m->key[id], s, (size_t)n)) return id;
    }
}

static void test_hf_bpe_cl100k(void **st) {
    (void)st;
    phiq_tok_vocab *v = phiq_tok_vocab_from_tiktoken(tu_shared_path("fixtures/tokenizers/tiktoken/cl100k_base.tiktoken"),
                                                     NULL, NULL, NULL, 0);
    if (!v) fail_msg("%s", phiq_error());
    int32_t n = v->n_tokens;
    unsigned char **raw = calloc((size_t)n, sizeof *raw);
    int *len = calloc((size_t)n, sizeof *len);
    rmap m = {1u << 18, malloc(sizeof(int32_t) << 18), NULL, len};
    m.key = (const unsigned char **)raw;
    for (uint32_t i = 0; i < m.cap; i++) m.id[i] = -1;
    for (int32_t i = 0; i < n; i++) {
        if (v->types[i] != PHIQ_TOK_TYPE_NORMAL) continue;
        raw[i] = malloc(strlen(v->tokens[i]) + 1);
        len[i] = phiq_bytelevel_decode(v->tokens[i], strlen(v->tokens[i]), raw[i]);
        assert_true(len[i] > 0);
        uint32_t h = rhash(raw[i], len[i]) & (m.cap - 1);
        while (m.id[h] >= 0) h = (h + 1) & (m.cap - 1);
        m.id[h] = i;
    }
    cJSON *root = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab"), *merges = cJSON_AddArrayToObject(model, "merges");
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON *pl = cJSON_AddArrayToObject(pre, "pretokenizers"), *split = cJSON_CreateObject(), *bl = cJSON_CreateObject();
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex",
                            "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                            "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+");
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddBoolToObject(bl, "use_regex", 0);
    cJSON_AddItemToArray(pl, split);
    cJSON_AddItemToArray(pl, bl);
    int nmerges = 0;
    int32_t parts[256];
    int off[257];
    for (int32_t r = 0; r < n; r++) {
        if (!raw[r]) continue;
        cJSON_AddNumberToObject(vocab, v->tokens[r], r);
        int L = len[r];
        if (L < 2 || L > 256) continue;
        int np = L;
        for (int i = 0; i <= L; i++) off[i] = i;
        for (;;) { /* merge the lowest-ranked adjacent pair below r */
            int best = -1;
            int32_t br = r;
            for (int i = 0; i + 1 < np; i++) {
                int32_t id = rget(&m, raw[r] + off[i], off[i + 2] - off[i]);
                if (id >= 0 && id < br) { br = id; best = i; }
            }
            if (best < 0) break;
            memmove(off + best + 1, off + best + 2, sizeof *off * (size_t)(np - best - 1));
            np--;
        }
        if (np != 2) continue;
        (void)parts;
        char a[1100], b[1100], mstr[2300];
        phiq_bytelevel_encode(raw[r], (size_t)off[1], a, sizeof a);
        phiq_bytelevel_encode(raw[r] + off[1], (size_t)(L - off[1]), b, sizeof b);
        snprintf(mstr, sizeof mstr, "%s %s", a, b);
        cJSON_AddItemToArray(merges, cJSON_CreateString(mstr));
        nmerges++;
    }
    assert_true(nmerges > 99000);
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int32_t i = 0; i < n; i++) {
        if (v->types[i] != PHIQ_TOK_TYPE_CONTROL) continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "id", i);
        cJSON_AddStringToObject(e, "content", v->tokens[i]);
        cJSON_AddBoolToObject(e, "special", 1);
        cJSON_AddItemToArray(added, e);
    }
    char *js = cJSON_PrintUnformatted(root);
    const char *path = tu_tmp("cl100k-tokenizer.json");
    FILE *f = fopen(path, "w");
    fputs(js, f);
    fclose(f);
    free(js);
    cJSON_Delete(root);
    for (int32_t i = 0; i < n; i++) free(raw[i]);
    free(raw);
    free(len);
    free(m.id);
    phiq_tok_vocab_free(v);
    /* the HF path names the pre-tokenizer as llama.cpp's converter would */
    phiq_tok_vocab *hv = phiq_tok_vocab_from_hf_json(path, NULL);
    if (!hv) fail_msg("%s", phiq_error());
    assert_int_equal(hv->model, PHIQ_TOK_MODEL_BPE);
    assert_string_equal(hv->pre, "dbrx");
    assert_int_equal(hv->n_merges, nmerges);
    phiq_tok_vocab_free(hv);
    phiq_tokenizer *t = phiq_tokenizer_from_hf_json(path, NULL);
    if (!t) fail_msg("%s", phiq_error());
    char *buf;
    size_t blen;
    assert_int_equal(phiq_read_file(tu_shared_path("fixtures/tokenizers/tiktoken/cl100k_base.tests.jsonl"), &buf, &blen), 0);
    int lines = 0, ok = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        const char *text = cJSON_GetObjectItem(j, "text")->valuestring;
        cJSON *want = cJSON_GetObjectItem(j, "ids");
        int32_t *ids;
        int k = encode(t, text, strlen(text), 0, 0, &ids);
        bool same = k == cJSON_GetArraySize(want);
        for (int i = 0; same && i < k; i++) same = ids[i] == cJSON_GetArrayItem(want, i)->valueint;
        if (!same) print_message("tokenizer.json cl100k mismatch on %s\n", line);
        ok += same;
        lines++;
        free(ids);
        cJSON_Delete(j);
    }
    print_message("cl100k as tokenizer.json (merges + Split regex): %d/%d tiktoken vectors match\n", ok, lines);
    assert_int_equal(ok, lines);
    free(buf);
    phiq_tokenizer_free(t);
}

/* ---- llama.cpp vocab vectors ------------------------------------------------ */
/* Inputs are separated by "\n__ggml_vocab_test__\n"; .out has one line of
 * space-separated ids per input (no BOS: llama.cpp's test-tokenizer-0
 * tokenizes with add_special=false, parse_special=false). */
static int run_vectors(const phiq_tokenizer *t, const char *vocab) {
    char rel[128];
    snprintf(rel, sizeof rel, "fixtures/vocab/%s.inp", vocab);
    char *inp, *out;
    size_t il, ol;
    assert_int_equal(phiq_read_file(tu_shared_path(rel), &inp, &il), 0);
    snprintf(rel, sizeof rel, "fixtures/vocab/%s.out", vocab);
    assert_int_equal(phiq_read_file(tu_shared_path(rel), &out, &ol), 0);
    const char *sep = "\n__ggml_vocab_test__\n";
    char *p = inp, *o = out;
    int total = 0, ok = 0;
    for (;;) {
        char *e = strstr(p, sep);
        if (!e) break;
        char *oe = strchr(o, '\n');
        assert_non_null(oe);
        *oe = 0;
        int32_t want[1024];
        int nw = 0;
        for (char *q = o; *q;) {
            char *end;
            long v = strtol(q, &end, 10);
            if (end == q) break;
            want[nw++] = (int32_t)v;
            q = end;
        }
        int32_t *ids;
        int n = encode(t, p, (size_t)(e - p), 0, 0, &ids);
        bool same = n == nw;
        for (int i = 0; same && i < n; i++) same = ids[i] == want[i];
        if (!same) {
            char got[4096];
            fmt_ids(got, sizeof got, ids, n);
            print_message("%s: input %d [%.*s]\n  want %s\n  got %s\n", vocab, total, (int)(e - p), p, o, got);
        }
        ok += same;
        total++;
        free(ids);
        p = e + strlen(sep);
        o = oe + 1;
    }
    print_message("%s: %d/%d llama.cpp vectors match\n", vocab, ok, total);
    assert_true(total >= 40);
    free(inp);
    free(out);
    return total - ok;
}

/* The fixture at shared/rel (phiq_tokenizer_load), or the test fails. */
static phiq_tokenizer *load_fixture(const char *rel) {
    phiq_tokenizer *t = phiq_tokenizer_load(tu_shared_path(rel), NULL);
    if (!t) fail_msg("%s: %s", rel, phiq_error());
    return t;
}

/* fixtures/tokenizers/FAMILY's tokenizer.json with its tokenizer_config.json,
 * or the test fails. */
static phiq_tokenizer *hf_fixture(const char *family) {
    char json[256], config[256];
    snprintf(json, sizeof json, "fixtures/tokenizers/%s/tokenizer.json", family);
    snprintf(config, sizeof config, "fixtures/tokenizers/%s/tokenizer_config.json", family);
    phiq_tokenizer *t = phiq_tokenizer_from_hf_json(tu_shared_path(json), tu_shared_path(config));
    if (!t) fail_msg("%s: %s", json, phiq_error());
    return t;
}

/* Every llama.cpp vector of vocab encodes as llama.cpp did; frees t. */
static void vectors_match(phiq_tokenizer *t, const char *vocab) {
    assert_int_equal(run_vectors(t, vocab), 0);
    phiq_tokenizer_free(t);
}

static void test_phi3_vectors_hf(void **s) {
    (void)s;
    vectors_match(hf_fixture("phi3"), "ggml-vocab-phi-3.gguf");
}

static void test_phi3_vectors_gguf(void **s) {
    (void)s;
    vectors_match(load_fixture("fixtures/vocab/ggml-vocab-phi-3.gguf"), "ggml-vocab-phi-3.gguf");
}

static void test_gpt2_vectors_gguf(void **s) {
    (void)s;
    vectors_match(load_fixture("fixtures/vocab/ggml-vocab-gpt-2.gguf"), "ggml-vocab-gpt-2.gguf");
}

/* The fixture gpt2 tokenizer.json is GPT-2 plus CodeGen's added whitespace
 * tokens 50257-50293 (runs of 2..31 spaces / tabs). Added tokens are split
 * out before BPE (HF and llama.cpp alike), so inputs containing such runs
 * legitimately differ from plain GPT-2; all others must match. */
static void test_gpt2_vectors_hf(void **s) {
    (void)s;
    phiq_tokenizer *t = hf_fixture("gpt2"), *g = load_fixture("fixtures/vocab/ggml-vocab-gpt-2.gguf");
    char *inp;
    size_t il;
    assert_int_equal(phiq_read_file(tu_shared_path("fixtures/vocab/ggml-vocab-gpt-2.gguf.inp"), &inp, &il), 0);
    const char *sep = "\n__ggml_vocab_test__\n";
    int compared = 0, skipped = 0;
    for (char *p = inp, *e; (e = strstr(p, sep)); p = e + strlen(sep)) {
        *e = 0;
        if (strstr(p, "  ") || strstr(p, "\t\t")) { skipped++; continue; }
        int32_t *a, *b;
        int na = encode(t, p, strlen(p), 0, 0, &a), nb = encode(g, p, strlen(p), 0, 0, &b);
        assert_int_equal(na, nb);
        for (int i = 0; i < na; i++) assert_int_equal(a[i], b[i]);
        compared++;
        free(a);
        free(b);
    }
    print_message("gpt2 tokenizer.json vs GGUF: %d inputs identical, %d with whitespace runs skipped\n", compared, skipped);
    assert_true(compared >= 30);
    /* a run of spaces is one CodeGen added token */
    int32_t *ids;
    int n = encode(t, "a    b", 6, 0, 0, &ids);
    assert_int_equal(n, 3);
    assert_string_equal(phiq_tokenizer_token_text(t, ids[1]), "    ");
    free(ids);
    free(inp);
    phiq_tokenizer_free(t);
    phiq_tokenizer_free(g);
}

/* The neutral vocabulary rebuilt from tokenizer.json equals what llama.cpp's
 * converter wrote from tokenizer.model (tokens, scores, types) for the 32000
 * SentencePiece pieces and the added tokens both files share. */
static void test_phi3_vocab_matches_gguf(void **s) {
    (void)s;
    phiq_tok_vocab *h = phiq_tok_vocab_from_hf_json(tu_shared_path("fixtures/tokenizers/phi3/tokenizer.json"),
                                                    tu_shared_path("fixtures/tokenizers/phi3/tokenizer_config.json"));
    if (!h) fail_msg("%s", phiq_error());
    phiq_gguf *g = phiq_gguf_open(tu_shared_path("fixtures/vocab/ggml-vocab-phi-3.gguf"));
    if (!g) fail_msg("%s", phiq_error());
    phiq_tok_vocab *v = phiq_tok_vocab_from_gguf(g);
    if (!v) fail_msg("%s", phiq_error());
    assert_int_equal(v->model, PHIQ_TOK_MODEL_SPM);
    assert_int_equal(h->model, PHIQ_TOK_MODEL_SPM);
    assert_string_equal(h->pre, "default");
    for (int32_t i = 0; i <= 32010; i++) {
        assert_string_equal(h->tokens[i], v->tokens[i]);
        if (h->scores[i] != v->scores[i] || h->types[i] != v->types[i])
            fail_msg("token %d '%s': score %g type %d, llama.cpp %g type %d", i, v->tokens[i], (double)h->scores[i],
                     h->types[i], (double)v->scores[i], v->types[i]);
    }
    assert_int_equal(h->bos_id, v->bos_id);
    assert_int_equal(h->eos_id, v->eos_id);
    assert_int_equal(h->unk_id, v->unk_id);
    assert_int_equal(h->pad_id, v->pad_id);
    assert_true(h->add_bos == v->add_bos);
    assert_true(h->add_space_prefix);
    /* padding to the model's 32064 rows as the converter does */
    assert_int_equal(phiq_tok_vocab_pad(h, 32064), 0);
    assert_string_equal(h->tokens[32063], "[PAD32063]");
    assert_int_equal(h->types[32063], PHIQ_TOK_TYPE_UNUSED);
    phiq_tok_vocab_free(h);
    phiq_tok_vocab_free(v);
    phiq_gguf_close(g);
}

/* tokenizer.json -> neutral vocab -> GGUF keys -> tokenizer: the written
 * file tokenizes the llama.cpp vectors exactly, for both families. */
static void test_vocab_gguf_roundtrip(void **s) {
    (void)s;
    const char *src[2] = {"fixtures/tokenizers/phi3/tokenizer.json", "fixtures/tokenizers/gpt2/tokenizer.json"};
    const char *cfg[2] = {"fixtures/tokenizers/phi3/tokenizer_config.json", "fixtures/tokenizers/gpt2/tokenizer_config.json"};
    for (int k = 0; k < 2; k++) {
        phiq_tok_vocab *v = phiq_tok_vocab_from_hf_json(tu_shared_path(src[k]), tu_shared_path(cfg[k]));
        if (!v) fail_msg("%s", phiq_error());
        assert_int_equal(phiq_tok_vocab_pad(v, k == 0 ? 32064 : 51200), 0);
        phiq_gguf_writer *w = phiq_gguf_writer_new();
        assert_int_equal(phiq_gguf_writer_set_str(w, "general.architecture", k == 0 ? "phi3" : "phi2"), 0);
        assert_int_equal(phiq_gguf_writer_set_str(w, "general.name", k == 0 ? "Phi3" : "Phi2"), 0);
        assert_int_equal(phiq_tok_vocab_to_gguf(v, w), 0);
        const char *out = tu_tmp(k == 0 ? "vocab-phi3.gguf" : "vocab-gpt2.gguf");
        phiq_gguf_write_opts o = {1, "test"};
        if (phiq_gguf_writer_write(w, out, NULL, NULL, &o) < 0) fail_msg("%s", phiq_error());
        phiq_gguf_writer_free(w);
        phiq_gguf *g = phiq_gguf_open(out);
        if (!g) fail_msg("%s", phiq_error());
        phiq_tok_vocab *r = phiq_tok_vocab_from_gguf(g);
        if (!r) fail_msg("%s", phiq_error());
        assert_int_equal(r->n_tokens, v->n_tokens);
        assert_int_equal(r->n_merges, v->n_merges);
        for (int32_t i = 0; i < v->n_tokens; i++) {
            assert_string_equal(r->tokens[i], v->tokens[i]);
            assert_int_equal(r->types[i], v->types[i]);
            if (v->scores) assert_true(r->scores[i] == v->scores[i]);
        }
        assert_string_equal(r->pre, k == 0 ? "default" : "phi-2");
        phiq_tokenizer *t = phiq_tokenizer_from_gguf(g);
        if (!t) fail_msg("%s", phiq_error());
        if (k == 0) assert_int_equal(run_vectors(t, "ggml-vocab-phi-3.gguf"), 0);
        phiq_tokenizer_free(t);
        phiq_tok_vocab_free(r);
        phiq_tok_vocab_free(v);
        phiq_gguf_close(g);
    }
}

/* phi-family-architecture.md §3b: the Phi-3 role/end tokens carry rstrip, so
 * "<|user|>\n<|end|>\n<|assistant|>" decodes back without the newlines. */
static void test_phi3_rstrip(void **s) {
    (void)s;
    phiq_tokenizer *t = hf_fixture("phi3");
    const char *txt = "<|user|>\n<|end|>\n<|assistant|>";
    int32_t *ids;
    int n = encode(t, txt, strlen(txt), 1, 1, &ids);
    int32_t want[] = {1, 32010, 32007, 32001}; /* ids from §3b */
    assert_int_equal(n, 4);
    for (int i = 0; i < 4; i++) assert_int_equal(ids[i], want[i]);
    char out[256];
    phiq_detokenize(t, ids, n, 0, out, sizeof out);
    assert_string_equal(out, "<|user|><|end|><|assistant|>");
    free(ids);
    /* without parse_special the markers are plain text */
    n = encode(t, txt, strlen(txt), 0, 0, &ids);
    assert_true(n > 8);
    for (int i = 0; i < n; i++) assert_true(ids[i] < 32000);
    free(ids);
    /* stop tokens (§3d): <|end|> 32007, <|endoftext|> 32000 */
    assert_true(phiq_tokenizer_is_eog(t, 32007));
    assert_true(phiq_tokenizer_is_eog(t, 32000));
    assert_false(phiq_tokenizer_is_eog(t, 32010));
    phiq_tokenizer_free(t);
    /* the HF directory adds generation_config's eos list (32001 too) */
    t = phiq_tokenizer_from_hf_dir(tu_shared_path("fixtures/tiny-phi3-kjv"));
    if (!t) fail_msg("%s", phiq_error());
    assert_true(phiq_tokenizer_is_eog(t, 32001));
    int32_t eog[16];
    assert_int_equal(phiq_tokenizer_eog_ids(t, eog, 16), 4); /* + </s>, as llama.cpp */
    phiq_tokenizer_free(t);
}

/* ---- round trips and streaming ------------------------------------------------ */
static bool valid_utf8(const unsigned char *s, int n) {
    for (int i = 0; i < n;) {
        unsigned char c = s[i];
        int k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n) return false;
        for (int j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80) return false;
        i += k;
    }
    return true;
}

static void roundtrip_one(const phiq_tokenizer *t, const char *text, size_t len) {
    int32_t *ids;
    int n = encode(t, text, len, 1, 0, &ids);
    char *out = malloc(len * 2 + 64);
    int dl = phiq_detokenize(t, ids, n, 0, out, (int)(len * 2 + 64));
    if (dl != (int)len || memcmp(out, text, len))
        fail_msg("round trip differs for [%.*s]: got [%.*s]", (int)(len > 200 ? 200 : len), text, dl > 200 ? 200 : dl, out);
    /* streaming: every chunk is whole UTF-8, and the chunks concatenate to the text */
    phiq_detok d;
    phiq_detok_init(&d, t, 0);
    int pc = phiq_tokenizer_max_piece(t) + 32;
    char *chunk = malloc((size_t)pc);
    size_t k = 0;
    for (int i = 0; i <= n; i++) {
        int c = i < n ? phiq_detok_push(&d, ids[i], chunk, pc) : phiq_detok_flush(&d, chunk, pc);
        assert_true(c >= 0);
        assert_true(valid_utf8((unsigned char *)chunk, c));
        assert_true(k + (size_t)c <= len);
        assert_memory_equal(out + k, chunk, (size_t)c);
        k += (size_t)c;
    }
    assert_int_equal(k, len);
    free(chunk);
    free(out);
    free(ids);
}

static void roundtrip_texts(const phiq_tokenizer *t) {
    static const char *texts[] = {
        "Hello world",
        " leading and trailing spaces  ",
        "tabs\tand\nnewlines\r\n\n\n",
        "Unicode: café naïve résumé — “quotes” … ©2024",
        "中文字符测试，还有日本語のテキスト。한국어",
        "emoji 🙂🚀👍🏽 and 😶‍🌫️ zwj",
        "          many spaces          ",
        "code: for (int i = 0; i < n; i++) { sum += a[i]; }",
        "Ελληνικά και русский текст ក្នុង",
        "x",
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) roundtrip_one(t, texts[i], strlen(texts[i]));
    /* fixture text, a chunk of lines at a time */
    char *buf;
    size_t len;
    assert_int_equal(phiq_read_file(tu_shared_path("fixtures/text/fortunes-eval.txt"), &buf, &len), 0);
    size_t lim = getenv("PHIQ_SANITIZED") ? 4000 : 40000;
    for (size_t off = 0; off < len && off < lim;) {
        size_t n = 700;
        if (off + n > len) n = len - off;
        while (off + n < len && ((unsigned char)buf[off + n] & 0xC0) == 0x80) n++; /* whole characters */
        roundtrip_one(t, buf + off, n);
        off += n;
    }
    free(buf);
}

static void test_roundtrip(void **s) {
    (void)s;
    const char *paths[] = {"fixtures/tokenizers/phi3/tokenizer.json", "fixtures/tokenizers/gpt2/tokenizer.json",
                           "fixtures/vocab/ggml-vocab-phi-3.gguf", "fixtures/vocab/ggml-vocab-gpt-2.gguf",
                           "fixtures/tokenizers/tiktoken/o200k_base.tiktoken",
                           "fixtures/tokenizers/tiktoken/cl100k_base.tiktoken"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        phiq_tokenizer *t = load_fixture(paths[i]);
        roundtrip_texts(t);
        phiq_tokenizer_free(t);
    }
}

/* byte-fallback pieces of a character arrive one byte at a time */
static void test_stream_bytes(void **s) {
    (void)s;
    phiq_tokenizer *t = load_fixture("fixtures/tokenizers/phi3/tokenizer.json");
    const char *txt = "🦙"; /* not a piece: 4 byte tokens */
    int32_t *ids;
    int n = encode(t, txt, strlen(txt), 0, 0, &ids);
    assert_int_equal(n, 5); /* ▁ + 4 bytes (llama.cpp vector: 29871 243 162 169 156) */
    assert_int_equal(ids[1], 243);
    phiq_detok d;
    phiq_detok_init(&d, t, 0);
    char out[64];
    assert_int_equal(phiq_detok_push(&d, ids[0], out, 64), 0); /* the SPM prefix space is stripped */
    for (int i = 1; i < 4; i++) assert_int_equal(phiq_detok_push(&d, ids[i], out, 64), 0);
    assert_int_equal(phiq_detok_push(&d, ids[4], out, 64), 4);
    assert_memory_equal(out, txt, 4);
    /* an invalid byte sequence comes out as U+FFFD, never as a lone byte */
    phiq_detok_init(&d, t, 0);
    assert_int_equal(phiq_detok_push(&d, 243, out, 64), 0);
    assert_int_equal(phiq_detok_push(&d, 'A' + 3, out, 64), 4); /* <0x41> 'A' breaks the sequence */
    assert_memory_equal(out, "\xEF\xBF\xBD" "A", 4);
    free(ids);
    phiq_tokenizer_free(t);
}

/* SPM merges word by word only when no piece holds '▁' after another byte;
 * with a piece "a▁" the whole text must merge as one (llama.cpp's way).
 * Expected ids worked out by hand from the scores. */
static phiq_tokenizer *tiny_spm(bool with_a_space) {
    static const char *toks[] = {"<unk>", "a", "b", "\xe2\x96\x81", "\xe2\x96\x81" "b", "a\xe2\x96\x81"};
    static const float scores[] = {0, -1, -1, -1, -5, -2};
    int n = with_a_space ? 6 : 5;
    phiq_tok_vocab *v = phiq_tok_vocab_new(PHIQ_TOK_MODEL_SPM, n);
    assert_non_null(v);
    for (int i = 0; i < n; i++) {
        v->tokens[i] = strdup(toks[i]);
        v->scores[i] = scores[i];
        v->types[i] = i ? PHIQ_TOK_TYPE_NORMAL : PHIQ_TOK_TYPE_UNKNOWN;
    }
    v->unk_id = 0;
    phiq_tokenizer *t = phiq_tokenizer_from_vocab(v);
    phiq_tok_vocab_free(v);
    assert_non_null(t);
    return t;
}

static void test_spm_word_split_guard(void **s) {
    (void)s;
    int32_t ids[16];
    phiq_tokenizer *t = tiny_spm(true);
    /* "a▁b": a▁ (-2) beats ▁b (-5) -> [a▁][b] */
    assert_int_equal(phiq_tokenize_text(t, "a b", 3, 0, 0, ids, 16), 2);
    assert_int_equal(ids[0], 5);
    assert_int_equal(ids[1], 2);
    /* "a▁▁b": a▁ first, then ▁b -> [a▁][▁b] */
    assert_int_equal(phiq_tokenize_text(t, "a  b", 4, 0, 0, ids, 16), 2);
    assert_int_equal(ids[0], 5);
    assert_int_equal(ids[1], 4);
    phiq_tokenizer_free(t);
    t = tiny_spm(false); /* without "a▁" words merge apart: [a][▁b][▁][a][▁b] ("▁a" is no piece) */
    assert_int_equal(phiq_tokenize_text(t, "a b a b", 7, 0, 0, ids, 16), 5);
    static const int32_t want[] = {1, 4, 3, 1, 4};
    for (int i = 0; i < 5; i++) assert_int_equal(ids[i], want[i]);
    phiq_tokenizer_free(t);
}

static void test_bad_inputs(void **s) {
    (void)s;
    assert_null(phiq_tokenizer_load("/nonexistent/tokenizer.json", NULL));
    assert_non_null(strstr(phiq_error(), "/nonexistent"));
    const char *bad = tu_tmp("bad.json");
    FILE *f = fopen(bad, "w");
    fputs("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -5}}}", f);
    fclose(f);
    assert_null(phiq_tokenizer_load(bad, NULL));
    assert_non_null(strstr(phiq_error(), "bad.json"));
    const char *tk = tu_tmp("x.tiktoken");
    f = fopen(tk, "w");
    fputs("IQ== 0\n!!!! 1\n", f);
    fclose(f);
    assert_null(phiq_tokenizer_load(tk, "gpt2"));
    assert_non_null(strstr(phiq_error(), "x.tiktoken"));
    phiq_tokenizer *t = phiq_tokenizer_load(tu_shared_path("fixtures/tokenizers/phi3/tokenizer.json"), NULL);
    char b[8];
    assert_true(phiq_token_piece(t, 999999, b, 8) < 0);
    assert_true(phiq_token_piece(t, -1, b, 8) < 0);
    /* invalid UTF-8 input is tokenized (as bytes), never rejected or crashed on */
    int32_t ids[64];
    assert_true(phiq_tokenize_text(t, "\xff\xfe\xc3", 3, 1, 1, ids, 64) > 0);
    /* fuzz find: a lead byte before a space swallows part of the escaped '▁' */
    assert_true(phiq_tokenize_text(t, "\xc5 \xb1\xc5 \xb1\xe2 \xf0 ", 11, 1, 1, ids, 64) > 0);
    phiq_tokenizer_free(t);
}

/* the CLI prints the same ids as the library, as text and JSON; errors exit 1 */
static void test_cli(void **s) {
    (void)s;
    const char *gguf = tu_shared_path("fixtures/vocab/ggml-vocab-phi-3.gguf");
    char *out = NULL, *err = NULL;
    assert_int_equal(tu_run(&out, NULL, "'%s' tokenize --tokenizer '%s' '<|user|> Hi there<|end|>'", tu_bin(), gguf), 0);
    phiq_tokenizer *t = phiq_tokenizer_load(gguf, NULL);
    int32_t ids[64];
    int n = phiq_tokenize_text(t, "<|user|> Hi there<|end|>", 24, 1, 1, ids, 64);
    char want[512];
    fmt_ids(want, sizeof want, ids, n);
    strcat(want, "\n");
    assert_string_equal(out, want + 1);
    free(out);
    assert_int_equal(tu_run(&out, NULL, "'%s' tokenize '%s' 'Hi' --no-bos --json", tu_bin(), gguf), 0);
    n = phiq_tokenize_text(t, "Hi", 2, 0, 1, ids, 64);
    assert_int_equal(n, 1); /* "▁Hi" */
    char js[128];
    snprintf(js, sizeof js, "{\"ids\":[%d]}\n", ids[0]);
    assert_string_equal(out, js);
    free(out);
    phiq_tokenizer_free(t);
    assert_int_equal(tu_run(&out, &err, "'%s' tokenize /nonexistent/x.gguf hi", tu_bin()), 1);
    assert_non_null(strstr(err, "/nonexistent/x.gguf"));
    free(out);
    free(err);
    assert_int_equal(tu_run(&out, NULL, "'%s' tokenize --tokenizer '%s' x --pretokenizer o200k", tu_bin(),
                            tu_shared_path("fixtures/tokenizers/tiktoken/o200k_base.tiktoken")), 0);
    assert_string_equal(out, "87\n"); /* 'x' is rank 87 in o200k (ASCII 'x' - 33 printable offset) */
    free(out);
}

TU_MAIN(NULL, NULL, test_tiktoken_o200k, test_tiktoken_cl100k, test_hf_bpe_cl100k, test_phi3_vectors_hf,
        test_phi3_vectors_gguf, test_gpt2_vectors_gguf, test_gpt2_vectors_hf, test_phi3_vocab_matches_gguf,
        test_phi3_rstrip, test_vocab_gguf_roundtrip, test_roundtrip, test_stream_bytes, test_spm_word_split_guard,
        test_bad_inputs, test_cli)
