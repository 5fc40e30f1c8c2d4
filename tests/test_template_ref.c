/* test_template_ref.c — `phiq template` against Python's jinja2 (Debian's
 * python3-jinja2) run as transformers' apply_chat_template runs it
 * (tests/ref/render_template.py). Every chat template we have — the fixtures'
 * tokenizer_config.json / GGUF templates and the Phi templates transcribed in
 * tests/templates/ (SOURCES.md says where each came from) — is rendered on a
 * set of conversations with and without the generation prompt, and the two
 * renderings must be byte-identical; where jinja2 raises, phiq must fail too.
 * Error cases: a syntax error, raise_exception and an unknown filter each give
 * one line on stderr, nothing on stdout and a non-zero exit.
 * Without python3 + jinja2 it SKIPs (tu_unavailable, exit 77): it cannot pass
 * without its reference. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "formats/gguf.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

#define PY "/usr/bin/python3"

static int have_jinja2(void) { return tu_run(NULL, NULL, PY " -c 'import jinja2' >/dev/null 2>&1") == 0; }
#define NEED_JINJA2() \
    if (!have_jinja2()) tu_unavailable(PY " with jinja2 not found (scripts/deps.sh test installs python3-jinja2)")


/* Conversations: JSON message arrays (optionally with top-level tools). */
static const struct { const char *name, *messages, *tools; } CONVS[] = {
    {"user only", "[{\"role\":\"user\",\"content\":\"Hello\"}]", NULL},
    {"system+user", "[{\"role\":\"system\",\"content\":\"You are terse.\"},{\"role\":\"user\",\"content\":\"Hi\"}]", NULL},
    {"multi-turn",
     "[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"What is 2+2?\"},"
     "{\"role\":\"assistant\",\"content\":\"4\"},{\"role\":\"user\",\"content\":\"And 3+3?\"}]", NULL},
    {"assistant last",
     "[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello! How can I help?\"}]", NULL},
    {"unicode",
     "[{\"role\":\"system\",\"content\":\"Réponds en français ✓\"},"
     "{\"role\":\"user\",\"content\":\"Ünïcödé 日本語 🙂 \\\"quoted\\\" back\\\\slash\\nnew line\\ttab <|end|>\"}]", NULL},
    {"empty content",
     "[{\"role\":\"system\",\"content\":\"\"},{\"role\":\"user\",\"content\":\"\"},"
     "{\"role\":\"assistant\",\"content\":\"\"},{\"role\":\"user\",\"content\":\"  \"}]", NULL},
    {"whitespace", "[{\"role\":\"user\",\"content\":\"  leading and trailing  \\n\\n\"}]", NULL},
    {"phi-4-mini system tools",
     "[{\"role\":\"system\",\"content\":\"You are a helpful assistant with some tools.\","
     "\"tools\":\"[{\\\"name\\\": \\\"get_weather\\\", \\\"description\\\": \\\"Weather for a city\\\", "
     "\\\"parameters\\\": {\\\"city\\\": {\\\"type\\\": \\\"str\\\"}}}]\"},"
     "{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
     "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"type\":\"function\",\"function\":"
     "{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\": \\\"Paris\\\"}\"}}]},"
     "{\"role\":\"tool\",\"content\":\"{\\\"temp_c\\\": 21.5}\"}]", NULL},
    {"openai tools",
     "[{\"role\":\"system\",\"content\":\" Use tools. \"},{\"role\":\"user\",\"content\":\"Time in Tokyo?\"}]",
     "[{\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"description\":\"Current time — local\","
     "\"parameters\":{\"type\":\"object\",\"properties\":{\"tz\":{\"type\":\"string\"},\"fmt\":{\"type\":\"string\"}},"
     "\"required\":[\"tz\"]}}},{\"type\":\"function\",\"function\":{\"name\":\"noop\",\"description\":\"\"}}]"},
    {"roles repeat", "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"}]", NULL},
};
#define N_CONVS ((int)(sizeof CONVS / sizeof CONVS[0]))

typedef struct {
    char name[128];
    char model[1024];   /* phiq template MODEL, or "" */
    char file[1024];    /* --template FILE, or "" */
    char *source;       /* the template text given to jinja2 */
    char bos[64], eos[64];
} tmpl;

static tmpl T[32];
static int n_t;

static char *slurp(const char *path) {
    size_t n = 0;
    char *b = tu_read_all(path, &n);
    if (!b) fail_msg("cannot read %s", path);
    char *s = realloc(b, n + 1);
    assert_non_null(s);
    s[n] = 0;
    return s;
}

/* A tokenizer_config.json fixture: template, bos and eos read with cJSON from
 * the file itself (not through phiq's loader). */
static void add_hf_dir(const char *dir, const char *label) {
    char path[1200];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    char *text = slurp(path);
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(j, "chat_template");
    if (!cJSON_IsString(ct)) { cJSON_Delete(j); return; }
    tmpl *t = &T[n_t++];
    snprintf(t->name, sizeof t->name, "%s", label);
    snprintf(t->model, sizeof t->model, "%s", dir);
    t->source = strdup(ct->valuestring);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "bos_token"), *e = cJSON_GetObjectItemCaseSensitive(j, "eos_token");
    if (cJSON_IsObject(b)) b = cJSON_GetObjectItemCaseSensitive(b, "content");
    if (cJSON_IsObject(e)) e = cJSON_GetObjectItemCaseSensitive(e, "content");
    snprintf(t->bos, sizeof t->bos, "%s", cJSON_IsString(b) ? b->valuestring : "");
    snprintf(t->eos, sizeof t->eos, "%s", cJSON_IsString(e) ? e->valuestring : "");
    cJSON_Delete(j);
}

/* The GGUF fixture's tokenizer.chat_template (the original Phi-3-mini one). */
static void add_gguf(const char *path, const char *label) {
    phiq_gguf *g = phiq_gguf_open(path);
    if (!g) fail_msg("%s", phiq_error());
    phiq_tokenizer *tok = phiq_tokenizer_from_gguf(g);
    phiq_gguf_close(g);
    if (!tok) fail_msg("%s", phiq_error());
    phiq_chat_template ct;
    if (phiq_chat_template_from_tokenizer(tok, &ct) >= 0 && ct.jinja) {
        tmpl *t = &T[n_t++];
        snprintf(t->name, sizeof t->name, "%s", label);
        snprintf(t->model, sizeof t->model, "%s", path);
        t->source = strdup(ct.jinja);
        snprintf(t->bos, sizeof t->bos, "%s", ct.bos);
        snprintf(t->eos, sizeof t->eos, "%s", ct.eos);
    }
    phiq_tokenizer_free(tok);
}

static void add_file(const char *name, const char *bos, const char *eos) {
    tmpl *t = &T[n_t++];
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->file, sizeof t->file, "%s/tests/templates/%s", PHIQ_SOURCE_DIR, name);
    t->source = slurp(t->file);
    snprintf(t->bos, sizeof t->bos, "%s", bos);
    snprintf(t->eos, sizeof t->eos, "%s", eos);
}

static void collect(void) {
    add_hf_dir(tu_shared_path("fixtures/tokenizers/phi3"), "fixture tokenizers/phi3");
    add_hf_dir(tu_shared_path("fixtures/tiny-phi3-kjv"), "fixture tiny-phi3-kjv");
    add_gguf(tu_shared_path("fixtures/vocab/ggml-vocab-phi-3.gguf"), "fixture ggml-vocab-phi-3.gguf");
    add_file("phi-3.5-mini-instruct.jinja", "<s>", "<|endoftext|>");
    add_file("phi-4.jinja", "<|endoftext|>", "<|im_end|>");
    add_file("phi-4-reasoning.jinja", "<|endoftext|>", "<|im_end|>");
    add_file("phi-4-mini-instruct.jinja", "<|endoftext|>", "<|endoftext|>");
    add_file("phi-4-mini-reasoning.jinja", "<|endoftext|>", "<|endoftext|>");
    add_file("features.jinja", "<s>", "<|endoftext|>");
    assert_true(n_t >= 8); /* both fixture kinds were found */
}

/* Every template × conversation × add_generation_prompt against jinja2, with
 * one Python run for all of them (--batch). */
static void test_templates_match_jinja2(void **s) {
    (void)s;
    NEED_JINJA2();
    collect();
    cJSON *cases = cJSON_CreateArray();
    for (int ti = 0; ti < n_t; ti++)
        for (int c = 0; c < N_CONVS; c++)
            for (int gen = 1; gen >= 0; gen--) {
                cJSON *vars = cJSON_CreateObject();
                cJSON_AddItemToObject(vars, "messages", cJSON_Parse(CONVS[c].messages));
                if (CONVS[c].tools) cJSON_AddItemToObject(vars, "tools", cJSON_Parse(CONVS[c].tools));
                cJSON_AddBoolToObject(vars, "add_generation_prompt", gen);
                cJSON_AddStringToObject(vars, "bos_token", T[ti].bos);
                cJSON_AddStringToObject(vars, "eos_token", T[ti].eos);
                cJSON *cs = cJSON_CreateObject();
                cJSON_AddStringToObject(cs, "template", T[ti].source);
                cJSON_AddItemToObject(cs, "vars", vars);
                cJSON_AddItemToArray(cases, cs);
            }
    char *js = cJSON_PrintUnformatted(cases);
    cJSON_Delete(cases);
    tu_write_text(tu_tmp("cases.json"), js);
    free(js);
    char *out = NULL, *err = NULL;
    int rc = tu_run(&out, &err, PY " '%s/tests/ref/render_template.py' --batch '%s'", PHIQ_SOURCE_DIR, tu_tmp("cases.json"));
    if (rc) fail_msg("render_template.py failed: %s", err);
    cJSON *ref = cJSON_Parse(out);
    free(out);
    free(err);
    assert_non_null(ref);
    assert_int_equal(cJSON_GetArraySize(ref), n_t * N_CONVS * 2);

    int k = 0, bad = 0, same = 0, both_fail = 0, via_cli = 0;
    for (int ti = 0; ti < n_t; ti++) {
        /* the template as `phiq template` loads it: the model's own, or the
         * file with the given bos/eos */
        phiq_tokenizer *tok = NULL;
        char *file_text = NULL;
        phiq_chat_template ct;
        if (T[ti].model[0]) {
            tok = phiq_tokenizer_load(T[ti].model, NULL);
            if (!tok || phiq_chat_template_from_tokenizer(tok, &ct) < 0) fail_msg("%s: %s", T[ti].model, phiq_error());
        } else {
            file_text = slurp(T[ti].file);
            if (phiq_chat_template_detect(file_text, &ct) < 0) fail_msg("%s: %s", T[ti].file, phiq_error());
            snprintf(ct.bos, sizeof ct.bos, "%s", T[ti].bos);
            snprintf(ct.eos, sizeof ct.eos, "%s", T[ti].eos);
        }
        for (int c = 0; c < N_CONVS; c++) {
            tu_write_text(tu_tmp("messages.json"), CONVS[c].messages);
            if (CONVS[c].tools) tu_write_text(tu_tmp("tools.json"), CONVS[c].tools);
            for (int gen = 1; gen >= 0; gen--, k++) {
                const cJSON *r = cJSON_GetArrayItem(ref, k);
                int ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok"));
                const cJSON *want = cJSON_GetObjectItemCaseSensitive(r, ok ? "text" : "error");
                char *got = NULL, *gerr = NULL;
                int prc;
                /* every case renders in-process (the library `phiq template`
                 * calls); the CLI itself runs the first conversation of each
                 * template and every case jinja2 rejects (one process each
                 * keeps the test short under the sanitizers) */
                if (ok && c > 0) {
                    got = phiq_chat_render_json(&ct, CONVS[c].messages, CONVS[c].tools, gen);
                    prc = got ? 0 : 1;
                    if (!got) gerr = strdup(phiq_error());
                } else if ((via_cli++, T[ti].model[0]))
                    prc = tu_run(&got, &gerr, "'%s' template '%s' --messages '%s' %s%s%s %s", tu_bin(), T[ti].model,
                                 tu_tmp("messages.json"), CONVS[c].tools ? "--tools '" : "",
                                 CONVS[c].tools ? tu_tmp("tools.json") : "", CONVS[c].tools ? "'" : "",
                                 gen ? "" : "--no-generation-prompt");
                else
                    prc = tu_run(&got, &gerr, "'%s' template --template '%s' --bos-token '%s' --eos-token '%s' --messages '%s' %s%s%s %s",
                                 tu_bin(), T[ti].file, T[ti].bos, T[ti].eos, tu_tmp("messages.json"),
                                 CONVS[c].tools ? "--tools '" : "", CONVS[c].tools ? tu_tmp("tools.json") : "",
                                 CONVS[c].tools ? "'" : "", gen ? "" : "--no-generation-prompt");
                if (ok) {
                    if (prc != 0 || !got || strcmp(got, want->valuestring)) {
                        if (bad++ < 6)
                            print_error("%s / %s / gen=%d: phiq (exit %d%s%s)\n[%s]\njinja2\n[%s]\n", T[ti].name,
                                        CONVS[c].name, gen, prc, gerr && *gerr ? ": " : "", gerr ? gerr : "",
                                        got ? got : "", want->valuestring);
                    } else same++;
                } else {
                    /* jinja2 raised: phiq must fail too, one line, nothing on stdout */
                    int lines = 0;
                    for (const char *p = gerr; p && *p; p++) lines += *p == '\n';
                    if (prc == 0 || (got && *got) || lines != 1) {
                        if (bad++ < 6)
                            print_error("%s / %s / gen=%d: jinja2 raised (%s) but phiq exit %d, stdout [%s], stderr [%s]\n",
                                        T[ti].name, CONVS[c].name, gen, want->valuestring, prc, got ? got : "", gerr ? gerr : "");
                    } else both_fail++;
                }
                free(got);
                free(gerr);
            }
        }
        phiq_tokenizer_free(tok);
        free(file_text);
    }
    print_message("%d templates x %d conversations x 2: %d byte-identical, %d raised in both, %d differ (%d through the CLI)\n",
                  n_t, N_CONVS, same, both_fail, bad, via_cli);
    cJSON_Delete(ref);
    for (int i = 0; i < n_t; i++) free(T[i].source);
    assert_int_equal(bad, 0);
    assert_true(both_fail > 0 && same > 100); /* the raise path and the render path were both exercised */
}

/* A bad template is one line on stderr naming what is wrong, nothing on
 * stdout, non-zero exit — and jinja2 rejects the same template. */
static void expect_error(const char *tmpl_text, const char *needle) {
    tu_write_text(tu_tmp("bad.jinja"), tmpl_text);
    tu_write_text(tu_tmp("m.json"), "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"}]");
    tu_write_text(tu_tmp("v.json"), "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"}]}");
    char *out = NULL, *err = NULL;
    int rc = tu_run(&out, &err, "'%s' template --template '%s' --messages '%s'", tu_bin(), tu_tmp("bad.jinja"), tu_tmp("m.json"));
    assert_int_not_equal(rc, 0);
    assert_true(!out || !*out);
    assert_non_null(err);
    char *nl = strchr(err, '\n');
    if (!nl || nl[1]) fail_msg("not one line: [%s]", err);
    if (!strstr(err, needle)) fail_msg("[%s] does not name %s", err, needle);
    free(out);
    free(err);
    out = err = NULL;
    rc = tu_run(&out, &err, PY " '%s/tests/ref/render_template.py' '%s' '%s'", PHIQ_SOURCE_DIR, tu_tmp("bad.jinja"), tu_tmp("v.json"));
    assert_int_not_equal(rc, 0); /* jinja2 agrees it is an error */
    free(out);
    free(err);
}

static void test_errors(void **s) {
    (void)s;
    NEED_JINJA2();
    expect_error("{% for m in messages %}{{ m.content }}", "endfor");
    expect_error("{{ 'a' + }}", "template");
    expect_error("{% if messages[0].role == messages[1].role %}{{ raise_exception('Conversation roles must alternate') }}{% endif %}",
                 "Conversation roles must alternate");
    expect_error("{{ messages | no_such_filter }}", "no_such_filter");
}

TU_MAIN(NULL, NULL, test_templates_match_jinja2, test_errors)
