/* test_tokenizer_ref.c — phiq's tokenizer against llama.cpp itself (llama-ref
 * tokenize --lines) on the phi-3 and gpt-2 vocab GGUFs, for texts the vector
 * files do not cover: special tokens with surrounding whitespace (Phi-3's
 * rstrip), chat prompts, unicode, emoji, long whitespace runs, invalid UTF-8
 * and fixture prose; with and without BOS / special-token parsing. The phi-3
 * comparison runs from the GGUF and from the HF tokenizer.json (same
 * vocabulary). Skipped with a message when llama-ref is unavailable. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

static const char *FIXED[] = {
    "<|user|>\nHi<|end|>\n<|assistant|>",
    "<|user|>\n<|end|>\n<|assistant|>",
    "<|system|>\nYou are helpful.<|end|>\n<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n",
    "  <|user|>  spaced  <|end|>  ",
    "<s> hello </s> world <unk>",
    "text</s>\n\nmore",
    "<|endoftext|> after eos\n",
    "<|im_start|>user<|im_sep|>x<|im_end|>",
    "Hello world",
    "   leading spaces",
    "trailing spaces     ",
    "tabs\t\t\tand\n\n\nnewlines\r\n\r\n",
    "                                                  fifty spaces",
    "\t\t\t\t\t\t\t\t\t\t\t\t tabs",
    "Unicode: café naïve résumé — “quotes” … ©2024 ½ ¼",
    "中文字符测试，还有日本語のテキスト。한국어 텍스트",
    "emoji 🙂🚀👍🏽 😶‍🌫️ 👨‍👩‍👧‍👦 🦙🦙",
    "Ελληνικά και русский текст ខ្មែរ עברית العربية हिन्दी",
    "code: for (int i = 0; i < n; i++) { sum += a[i]; }",
    "I'm sure you've seen it; they'll agree, won't they? 'RE 'Ll",
    "numbers 1234567 and 3.14159 and 1,000,000 and ١٢٣",
    "a\xc2\xa0non-breaking\xe2\x80\x83space",
    "invalid \xff\xfe bytes \xc3 here",
    "<|user|><|user|><|end|><|end|>",
    "<|user|",
    "|>",
};

typedef struct texts {
    char **v;
    int n;
} texts;

static void add(texts *t, const char *s, size_t n) {
    t->v = realloc(t->v, sizeof *t->v * (size_t)(t->n + 1));
    t->v[t->n] = malloc(n + 1);
    memcpy(t->v[t->n], s, n);
    t->v[t->n++][n] = 0;
}

static texts build_texts(void) {
    texts t = {0};
    for (size_t i = 0; i < sizeof FIXED / sizeof *FIXED; i++) add(&t, FIXED[i], strlen(FIXED[i]));
    /* the vector inputs too (ids compared here with specials parsed and BOS) */
    char *inp;
    size_t il;
    if (phiq_read_file(tu_shared_path("fixtures/vocab/ggml-vocab-phi-3.gguf.inp"), &inp, &il) == 0) {
        const char *sep = "\n__ggml_vocab_test__\n";
        for (char *p = inp, *e; (e = strstr(p, sep)); p = e + strlen(sep))
            if (e > p) add(&t, p, (size_t)(e - p));
        free(inp);
    }
    /* prose: blocks of fixture text */
    const char *files[] = {"fixtures/text/fortunes-eval.txt", "fixtures/text/kjv-heldout.txt"};
    int blocks = getenv("PHIQ_SANITIZED") ? 10 : 60;
    for (int fi = 0; fi < 2; fi++) {
        char *buf;
        size_t len;
        if (phiq_read_file(tu_shared_path(files[fi]), &buf, &len) < 0) continue;
        size_t off = 0;
        for (int b = 0; b < blocks && off < len; b++) {
            size_t n = 400;
            if (off + n > len) n = len - off;
            while (off + n < len && ((unsigned char)buf[off + n] & 0xC0) == 0x80) n++;
            add(&t, buf + off, n);
            off += n * 7; /* spread over the file */
        }
        free(buf);
    }
    return t;
}

/* Compares one tokenizer with llama-ref's output for every text. */
static int compare(const phiq_tokenizer *tok, const char *label, const texts *tx, const char *ref_out, int bos, int special) {
    char *save = NULL, *copy = strdup(ref_out);
    int bad = 0, i = 0;
    char *line = strtok_r(copy, "\n", &save);
    for (; i < tx->n && line; i++, line = strtok_r(NULL, "\n", &save)) {
        int32_t ids[4096];
        int n = phiq_tokenize_text(tok, tx->v[i], strlen(tx->v[i]), bos, special, ids, 4096);
        assert_true(n >= 0 && n <= 4096);
        char got[32768];
        size_t k = 0;
        got[0] = 0;
        for (int j = 0; j < n; j++) k += (size_t)snprintf(got + k, sizeof got - k, j ? " %d" : "%d", ids[j]);
        if (strcmp(got, line)) {
            if (bad < 5) print_message("%s (bos %d special %d) text %d [%s]\n  llama.cpp %s\n  phiq      %s\n", label, bos, special, i, tx->v[i], line, got);
            bad++;
        }
    }
    assert_int_equal(i, tx->n); /* llama-ref printed one line per text */
    print_message("%s (bos %d, special %d): %d/%d texts identical to llama.cpp\n", label, bos, special, tx->n - bad, tx->n);
    free(copy);
    return bad;
}

static void run_vocab_abs(const char *gguf, const char *gguf_label, const char *hf_rel);

static void run_vocab(const char *gguf_rel, const char *hf_rel) {
    run_vocab_abs(tu_shared_path(gguf_rel), gguf_rel, hf_rel);
}

static void run_vocab_abs(const char *gguf_path, const char *gguf_rel, const char *hf_rel) {
    const char *ref = tu_require_llama_ref();
    texts tx = build_texts();
    const char *lines = tu_tmp("lines.txt");
    FILE *f = fopen(lines, "w");
    assert_non_null(f);
    for (int i = 0; i < tx.n; i++) tu_json_line(f, tx.v[i]);
    fclose(f);
    char gguf[4096];
    snprintf(gguf, sizeof gguf, "%s", gguf_path);
    phiq_tokenizer *tg = phiq_tokenizer_load(gguf, NULL);
    if (!tg) fail_msg("%s", phiq_error());
    phiq_tokenizer *th = hf_rel ? phiq_tokenizer_load(tu_shared_path(hf_rel), NULL) : NULL;
    if (hf_rel && !th) fail_msg("%s", phiq_error());
    int bad = 0;
    for (int mode = 0; mode < 2; mode++) {
        int bos = mode == 0, special = mode == 0;
        char *out = NULL, *err = NULL;
        int st = tu_run(&out, &err, "'%s' tokenize '%s' --lines '%s' %s", ref, gguf, lines, mode ? "--no-bos --no-special" : "");
        if (st != 0) fail_msg("llama-ref failed (%d): %s", st, err ? err : "");
        bad += compare(tg, gguf_rel, &tx, out, bos, special);
        if (th) bad += compare(th, hf_rel, &tx, out, bos, special);
        free(out);
        free(err);
    }
    for (int i = 0; i < tx.n; i++) free(tx.v[i]);
    free(tx.v);
    phiq_tokenizer_free(tg);
    phiq_tokenizer_free(th);
    assert_int_equal(bad, 0);
}

static void test_phi3_vs_llama(void **s) {
    (void)s;
    run_vocab("fixtures/vocab/ggml-vocab-phi-3.gguf", "fixtures/tokenizers/phi3/tokenizer.json");
}

static void test_gpt2_vs_llama(void **s) {
    (void)s;
    run_vocab("fixtures/vocab/ggml-vocab-gpt-2.gguf", NULL);
}

/* GGUF vocabularies written by phiq from the HF tokenizer.json files (what the
 * converter will emit): llama.cpp loads them and tokenizes exactly as phiq
 * does from the tokenizer.json — including CodeGen's added whitespace tokens,
 * which the stock gpt-2 vocab lacks. */
static void write_vocab(const char *json_rel, const char *cfg_rel, int32_t rows, const char *arch, const char *out) {
    phiq_tok_vocab *v = phiq_tok_vocab_from_hf_json(tu_shared_path(json_rel), tu_shared_path(cfg_rel));
    if (!v) fail_msg("%s", phiq_error());
    assert_int_equal(phiq_tok_vocab_pad(v, rows), 0);
    phiq_gguf_writer *w = phiq_gguf_writer_new();
    assert_int_equal(phiq_gguf_writer_set_str(w, "general.architecture", arch), 0);
    assert_int_equal(phiq_gguf_writer_set_str(w, "general.name", !strcmp(arch, "phi3") ? "Phi3" : "Phi2"), 0);
    assert_int_equal(phiq_tok_vocab_to_gguf(v, w), 0);
    phiq_gguf_write_opts o = {1, "test"};
    if (phiq_gguf_writer_write(w, out, NULL, NULL, &o) < 0) fail_msg("%s", phiq_error());
    phiq_gguf_writer_free(w);
    phiq_tok_vocab_free(v);
}

static void test_written_vocab_vs_llama(void **s) {
    (void)s;
    tu_require_llama_ref();
    const char *p3 = tu_tmp("phiq-phi3-vocab.gguf");
    write_vocab("fixtures/tokenizers/phi3/tokenizer.json", "fixtures/tokenizers/phi3/tokenizer_config.json", 32064, "phi3", p3);
    run_vocab_abs(p3, "phiq-written phi3 vocab", "fixtures/tokenizers/phi3/tokenizer.json");
    const char *p2 = tu_tmp("phiq-codegen-vocab.gguf");
    write_vocab("fixtures/tokenizers/gpt2/tokenizer.json", "fixtures/tokenizers/gpt2/tokenizer_config.json", 51200, "phi2", p2);
    run_vocab_abs(p2, "phiq-written codegen vocab", "fixtures/tokenizers/gpt2/tokenizer.json");
}

TU_MAIN(NULL, NULL, test_phi3_vs_llama, test_gpt2_vs_llama, test_written_vocab_vs_llama)
