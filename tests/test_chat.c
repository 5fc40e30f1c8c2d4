/* test_chat.c — chat formats. Templates given as text are run by the Jinja
 * interpreter (test_template_ref compares it with jinja2 itself); expected strings restate
 * docs/reference/phi-family-architecture.md §3c (and llamacpp-gguf-quant.md
 * §2.6 for llama.cpp's built-in "phi3"/"phi4"); templates are the real ones
 * from the fixtures where we have them (tokenizers/phi3/tokenizer_config.json,
 * the chat_template in vocab/ggml-vocab-phi-3.gguf) and the published
 * checkpoint templates in tests/templates otherwise. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "formats/gguf.h"
#include "tokenizer/chat.h"

static const phiq_chat_msg CONV[] = {
    {"system", "S", NULL},
    {"user", "Hi", NULL},
    {"assistant", "Yo", NULL},
    {"user", "Q", NULL},
};

static void expect(const phiq_chat_template *t, const phiq_chat_msg *m, int n, bool gen, const char *want) {
    char *got = phiq_chat_render(t, m, n, gen);
    assert_non_null(got);
    if (strcmp(got, want)) fail_msg("rendered\n[%s]\nwant\n[%s]", got, want);
    free(got);
}

/* The fixture's template (Phi-3 revision after May 2024): every message as
 * <|{role}|>\n{content}<|end|>\n, then <|assistant|>\n — the same as
 * llama.cpp's built-in "phi3" (§3c, llamacpp-gguf-quant.md §2.6). */
static void test_phi3_fixture_template(void **s) {
    (void)s;
    phiq_tokenizer *tok = phiq_tokenizer_from_hf_dir(tu_shared_path("fixtures/tiny-phi3-kjv"));
    if (!tok) fail_msg("%s", phiq_error());
    phiq_chat_template t;
    assert_int_equal(phiq_chat_template_from_tokenizer(tok, &t), PHIQ_CHAT_PHI3);
    expect(&t, CONV, 4, true,
           "<|system|>\nS<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nYo<|end|>\n<|user|>\nQ<|end|>\n<|assistant|>\n");
    /* the template itself skips the generation prompt after an assistant turn */
    expect(&t, CONV, 3, true, "<|system|>\nS<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nYo<|end|>\n");
    /* tokenized: rstrip swallows the newlines after the special tokens (§3b) */
    char *p = phiq_chat_render(&t, CONV + 1, 1, true);
    int32_t ids[64];
    int n = phiq_tokenize_text(tok, p, strlen(p), !t.bos_in_template, 1, ids, 64);
    assert_true(n > 0 && n < 64);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 32010); /* <|user|> */
    assert_int_equal(ids[n - 2], 32007); /* <|end|> */
    assert_int_equal(ids[n - 1], 32001); /* <|assistant|> */
    free(p);
    phiq_tokenizer_free(tok);
}

/* The original Phi-3-mini template (Apr 2024), as stored by llama.cpp in
 * ggml-vocab-phi-3.gguf: {bos}, user turns end with <|assistant|>\n,
 * assistant turns are {content}<|end|>\n, system dropped (§3c first bullet). */
static void test_phi3_original_from_gguf(void **s) {
    (void)s;
    phiq_gguf *g = phiq_gguf_open(tu_shared_path("fixtures/vocab/ggml-vocab-phi-3.gguf"));
    if (!g) fail_msg("%s", phiq_error());
    phiq_tokenizer *tok = phiq_tokenizer_from_gguf(g);
    phiq_gguf_close(g);
    if (!tok) fail_msg("%s", phiq_error());
    phiq_chat_template t;
    assert_int_equal(phiq_chat_template_from_tokenizer(tok, &t), PHIQ_CHAT_PHI3);
    assert_true(t.bos_in_template);
    expect(&t, CONV, 4, true, "<s><|user|>\nHi<|end|>\n<|assistant|>\nYo<|end|>\n<|user|>\nQ<|end|>\n<|assistant|>\n");
    phiq_tokenizer_free(tok);
}

static const phiq_chat_msg EMPTY_SYSTEM[] = {{"system", "", NULL}, {"user", "Hi", NULL}};
static const phiq_chat_msg TOOLS_SYSTEM[] = {{"system", "S", "[{\"name\":\"f\"}]"}, {"user", "Hi", NULL}};

/* The published checkpoint templates (tests/templates/FILE.jinja, sources in
 * its SOURCES.md): the format each is recognised as and what it renders. */
static const struct {
    const char *file;
    int format;
    const phiq_chat_msg *m;
    int n;
    bool gen;
    const char *want;
} PUBLISHED[] = {
    /* Phi-3.5-mini (§3c second bullet): system only if non-empty;
     * generation prompt <|assistant|>\n, otherwise eos_token. */
    {"phi-3.5-mini-instruct", PHIQ_CHAT_PHI3, EMPTY_SYSTEM, 2, true, "<|user|>\nHi<|end|>\n<|assistant|>\n"},
    {"phi-3.5-mini-instruct", PHIQ_CHAT_PHI3, CONV, 3, false,
     "<|system|>\nS<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nYo<|end|>\n<|endoftext|>"},
    /* phi-4 (§3c): <|im_start|>{role}<|im_sep|>{content}<|im_end|>, no
     * newlines, no BOS; generation prompt <|im_start|>assistant<|im_sep|>. */
    {"phi-4", PHIQ_CHAT_PHI4, CONV, 2, true,
     "<|im_start|>system<|im_sep|>S<|im_end|><|im_start|>user<|im_sep|>Hi<|im_end|><|im_start|>assistant<|im_sep|>"},
    {"phi-4", PHIQ_CHAT_PHI4, CONV, 3, false,
     "<|im_start|>system<|im_sep|>S<|im_end|><|im_start|>user<|im_sep|>Hi<|im_end|><|im_start|>assistant<|im_sep|>Yo"
     "<|im_end|>"},
    /* Phi-4-mini (§3c): <|{role}|>{content}<|end|> with NO newline after the
     * role tag; system with tools: <|system|>{content}<|tool|>{tools}<|/tool|><|end|>;
     * generation prompt <|assistant|>, otherwise eos. */
    {"phi-4-mini-instruct", PHIQ_CHAT_PHI4_MINI, TOOLS_SYSTEM, 2, true,
     "<|system|>S<|tool|>[{\"name\":\"f\"}]<|/tool|><|end|><|user|>Hi<|end|><|assistant|>"},
    {"phi-4-mini-instruct", PHIQ_CHAT_PHI4_MINI, CONV, 3, false,
     "<|system|>S<|end|><|user|>Hi<|end|><|assistant|>Yo<|end|><|endoftext|>"},
};

static void test_published_templates(void **s) {
    (void)s;
    for (size_t i = 0; i < sizeof PUBLISHED / sizeof *PUBLISHED; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/tests/templates/%s.jinja", PHIQ_SOURCE_DIR, PUBLISHED[i].file);
        char *text = tu_read_all(path, NULL);
        if (!text) fail_msg("%s: cannot read", path);
        phiq_chat_template t;
        const int format = phiq_chat_template_detect(text, &t);
        if (format != PUBLISHED[i].format) fail_msg("%s: format %d, want %d", PUBLISHED[i].file, format, PUBLISHED[i].format);
        expect(&t, PUBLISHED[i].m, PUBLISHED[i].n, PUBLISHED[i].gen, PUBLISHED[i].want);
        free(text);
    }
    /* the built-in "phi3.5" is the published Phi-3.5-mini template */
    phiq_chat_template n;
    assert_int_equal(phiq_chat_template_named("phi3.5", &n), PHIQ_CHAT_PHI3);
    expect(&n, CONV, 3, false, PUBLISHED[1].want);
}

/* A template of no Phi format still renders (it is run, not recognised); one
 * using something the interpreter lacks is an error naming it. */
static void test_unknown_template(void **s) {
    (void)s;
    phiq_chat_template t;
    assert_int_equal(phiq_chat_template_detect("{% for m in messages %}[{{ m.content }}]{% endfor %}", &t), PHIQ_CHAT_JINJA);
    expect(&t, CONV, 2, true, "[S][Hi]");
    assert_true(phiq_chat_template_detect("{% include 'x.jinja' %}", &t) < 0);
    assert_non_null(strstr(phiq_error(), "unsupported tag 'include'"));
    assert_true(phiq_chat_template_detect("{{ messages|wordwrap }}", &t) < 0);
    assert_non_null(strstr(phiq_error(), "unsupported filter 'wordwrap'"));
    assert_true(phiq_chat_template_named("chatml", &t) < 0);
}

TU_MAIN(NULL, NULL, test_phi3_fixture_template, test_phi3_original_from_gguf, test_published_templates,
        test_unknown_template)
