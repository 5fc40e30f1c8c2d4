/* test_phi3small_tok.c — Phi-3-small's tokenizer (Phi3SmallTokenizer:
 * tiktoken cl100k_base plus its 96 special tokens at 100256..100351, all
 * recognised in text as its tokenize(allowed_special="all") does) against
 * js-tiktoken (npm) given the same ranks and those specials, on prose,
 * unicode and chat-token texts, from the checkpoint directory `phiq synth`
 * writes (cl100k_base.tiktoken + tokenizer_config.json, no tokenizer.json)
 * and from its GGUF; and its chat template rendered by `phiq template`
 * against the text written from the reference (doc §3c). Skips when node or
 * js-tiktoken is unavailable. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "formats/gguf.h"
#include "hub/hub.h"
#include "tokenizer/tokenizer.h"

static const char *TEXTS[] = {
    "Hello world",
    "<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n",
    "<|endoftext|><|system|>\nYou are helpful.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\n",
    "  <|user|>  spaced  <|end|>  ",
    "<|dummy_id_5|> and <|dummy_id_86|> and <|fim_prefix|><|endofprompt|>",
    "<|im_start|> is plain text here",
    "Unicode: café naïve — “quotes” … 中文字符测试 🙂🚀👍🏽",
    "numbers 1234567 and 3.14159\n\n\ttabs   spaces    ",
    "I'm sure you've seen it; they'll agree",
};
#define N_TEXTS (int)(sizeof TEXTS / sizeof TEXTS[0])

static const char *synth_dir(void) {
    static char dir[4096];
    if (dir[0]) return dir;
    snprintf(dir, sizeof dir, "%s", tu_tmp("p3s-tok"));
    char *err = NULL;
    if (tu_run(NULL, &err, "'%s' synth --preset phi-3-small-tiny --layers 1 -q -o '%s'", tu_bin(), dir)) fail_msg("synth: %s", err);
    free(err);
    return dir;
}

/* {"<|dummy_id_2|>":100256,...}: every special of the table, for js-tiktoken */
static char *extra_json(void) {
    size_t cap = 8192, n = 0;
    char *s = malloc(cap);
    n += (size_t)snprintf(s + n, cap - n, "{");
    for (int id = PHIQ_PHI3SMALL_FIRST_SPECIAL; id < PHIQ_PHI3SMALL_N_VOCAB; id++) {
        char nm[32];
        phiq_phi3small_special(id, nm, sizeof nm, NULL);
        n += (size_t)snprintf(s + n, cap - n, "%s\"%s\":%d", id > PHIQ_PHI3SMALL_FIRST_SPECIAL ? "," : "", nm, id);
    }
    snprintf(s + n, cap - n, "}");
    return s;
}

/* "id id id" of phiq's encoding (specials parsed, no BOS) */
static void phiq_ids(const phiq_tokenizer *t, const char *text, char *out, size_t cap) {
    int32_t ids[512];
    int n = phiq_tokenize_text(t, text, strlen(text), 0, 1, ids, 512);
    assert_true(n >= 0 && n <= 512);
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < n && k < cap - 16; i++) k += (size_t)snprintf(out + k, cap - k, "%s%d", i ? " " : "", ids[i]);
}

static void compare_all(const phiq_tokenizer *t, const char *label, const char *js_out) {
    const char *line = js_out;
    char got[8192];
    for (int i = 0; i < N_TEXTS; i++) {
        const char *nl = strchr(line, '\n');
        assert_non_null(nl);
        phiq_ids(t, TEXTS[i], got, sizeof got);
        if (strlen(got) != (size_t)(nl - line) || strncmp(got, line, (size_t)(nl - line)))
            fail_msg("%s, text %d: phiq [%s], js-tiktoken [%.*s]", label, i, got, (int)(nl - line), line);
        line = nl + 1;
    }
    print_message("%s: %d texts match js-tiktoken\n", label, N_TEXTS);
}

static void test_tokenizer_vs_js_tiktoken(void **state) {
    (void)state;
    if (tu_run(NULL, NULL, "command -v node >/dev/null 2>&1") != 0)
        tu_unavailable("js-tiktoken: node not found (scripts/deps.sh test installs nodejs)");
    if (!tu_node_modules("js-tiktoken")) skip();
    const char *dir = synth_dir();
    const char *lines = tu_tmp("p3s-lines.txt");
    FILE *f = fopen(lines, "w");
    assert_non_null(f);
    for (int i = 0; i < N_TEXTS; i++) tu_json_line(f, TEXTS[i]);
    fclose(f);
    char ranks[4200], script[4096];
    snprintf(ranks, sizeof ranks, "%s", tu_shared_path("fixtures/tokenizers/tiktoken/cl100k_base.tiktoken"));
    snprintf(script, sizeof script, "%s/tests/tokenizer/tiktoken_ref.js", PHIQ_SOURCE_DIR);
    char *extra = extra_json(), *out = NULL, *err = NULL;
    if (tu_run(&out, &err, "node '%s' '%s' '%s' '%s' --special --extra '%s'", script, tu_refs(), ranks, lines, extra))
        fail_msg("tiktoken_ref.js: %s", err);
    free(err);
    free(extra);
    /* the checkpoint directory (cl100k_base.tiktoken beside config.json) */
    phiq_tokenizer *t = phiq_tokenizer_from_hf_dir(dir);
    if (!t) fail_msg("%s", phiq_error());
    assert_int_equal(phiq_tokenizer_n_vocab(t), 100352);
    assert_int_equal(phiq_tokenizer_find(t, "<|end|>"), 100266);
    assert_int_equal(phiq_tokenizer_find(t, "<|user|>"), 100262);
    assert_true(phiq_tokenizer_is_eog(t, 100266) && phiq_tokenizer_is_eog(t, 100257));
    assert_false(phiq_tokenizer_add_bos(t));
    compare_all(t, "HF directory", out);
    phiq_tokenizer_free(t);
    /* its GGUF (phi3small keeps the tiktoken rule: no merges list) */
    char gguf[4200];
    snprintf(gguf, sizeof gguf, "%s.gguf", dir);
    err = NULL;
    if (tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --type f32 -q", tu_bin(), dir, gguf)) fail_msg("convert: %s", err);
    free(err);
    t = phiq_tokenizer_load(gguf, NULL);
    if (!t) fail_msg("%s", phiq_error());
    compare_all(t, "GGUF", out);
    phiq_tokenizer_free(t);
    free(out);
}

/* The chat template of Phi-3-small-*-instruct (doc §3c): bos, then
 * <|role|>\ncontent<|end|>\n per message, <|assistant|>\n or eos. */
static void test_chat_template(void **state) {
    (void)state;
    assert_true(phiq_hub_default_want("cl100k_base.tiktoken")); /* `phiq pull` fetches the ranks too */
    const char *dir = synth_dir();
    const char *msgs = tu_tmp("p3s-msgs.json");
    FILE *f = fopen(msgs, "w");
    assert_non_null(f);
    fputs("[{\"role\":\"system\",\"content\":\"You are helpful.\"},{\"role\":\"user\",\"content\":\"Hi\"},"
          "{\"role\":\"assistant\",\"content\":\"Hello!\"},{\"role\":\"user\",\"content\":\"2+2?\"}]",
          f);
    fclose(f);
    static const char want[] = "<|endoftext|><|system|>\nYou are helpful.<|end|>\n<|user|>\nHi<|end|>\n"
                               "<|assistant|>\nHello!<|end|>\n<|user|>\n2+2?<|end|>\n<|assistant|>\n";
    static const char want_nogen[] = "<|endoftext|><|system|>\nYou are helpful.<|end|>\n<|user|>\nHi<|end|>\n"
                                     "<|assistant|>\nHello!<|end|>\n<|user|>\n2+2?<|end|>\n<|endoftext|>";
    char *out = NULL, *err = NULL;
    if (tu_run(&out, &err, "'%s' template '%s' --messages '%s'", tu_bin(), dir, msgs)) fail_msg("template: %s", err);
    free(err);
    assert_string_equal(out, want);
    free(out);
    err = NULL;
    if (tu_run(&out, &err, "'%s' template '%s' --messages '%s' --no-generation-prompt", tu_bin(), dir, msgs))
        fail_msg("template: %s", err);
    free(err);
    assert_string_equal(out, want_nogen);
    free(out);
}

TU_MAIN(NULL, NULL, test_tokenizer_vs_js_tiktoken, test_chat_template)
