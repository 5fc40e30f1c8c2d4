/* test_generate.c — `phiq run` and `phiq chat` on tiny-phi3-kjv:
 *   - greedy `run --json` continues exactly as llama.cpp's greedy decoding;
 *   - the --chat prompt is the token ids llama.cpp gives for the Phi-3
 *     template text (doc §3c: <|user|>\n{content}<|end|>\n<|assistant|>\n);
 *   - the same seed gives the same sample, another seed another one;
 *   - chat answers several turns from a pipe, /clear works, exit 0;
 *   - decoding more tokens makes no more heap allocations (valgrind counts). */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char gguf[4096];

static int setup(void **state) {
    (void)state;
    snprintf(gguf, sizeof gguf, "%s", tu_fixture_gguf("f32"));
    return 0;
}

static cJSON *run_json(const char *args) {
    char *out = NULL, *err = NULL;
    int rc = tu_run(&out, &err, "'%s' run '%s' %s --json -t 2", tu_bin(), gguf, args);
    if (rc) fail_msg("phiq run %s: %s", args, err);
    cJSON *j = cJSON_Parse(out);
    if (!j) fail_msg("not JSON: %s", out);
    free(out); free(err);
    return j;
}

static char *ids_csv(const cJSON *arr) {
    static char buf[8192];
    buf[0] = 0;
    const cJSON *x;
    int i = 0;
    cJSON_ArrayForEach(x, arr) snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%d", i++ ? "," : "", x->valueint);
    return buf;
}

static void test_greedy_equals_llamacpp(void **state) {
    (void)state;
    const char *lr = tu_llama_ref();
    if (!lr) skip();
    cJSON *j = run_json("-p 'And God said unto Moses' -n 24 --temp 0");
    const cJSON *pids = cJSON_GetObjectItem(j, "prompt_ids"), *ids = cJSON_GetObjectItem(j, "ids");
    assert_true(cJSON_GetArraySize(ids) > 0);
    char prompt[8192];
    snprintf(prompt, sizeof prompt, "%s", ids_csv(pids));
    char *out = NULL;
    assert_int_equal(tu_run(&out, NULL, "'%s' greedy '%s' %s %d", lr, gguf, prompt, cJSON_GetArraySize(ids)), 0);
    /* llama-ref prints space-separated ids; ours as JSON */
    char mine[8192] = "";
    const cJSON *x;
    int i = 0;
    cJSON_ArrayForEach(x, ids) snprintf(mine + strlen(mine), sizeof mine - strlen(mine), "%s%d", i++ ? " " : "", x->valueint);
    out[strcspn(out, "\n")] = 0;
    assert_string_equal(mine, out);
    /* the prompt itself is llama.cpp's tokenization */
    char *tok = NULL;
    assert_int_equal(tu_run(&tok, NULL, "'%s' tokenize '%s' 'And God said unto Moses'", lr, gguf), 0);
    for (char *p = tok; *p; p++) if (*p == ' ') *p = ',';
    tok[strcspn(tok, "\n")] = 0;
    assert_string_equal(prompt, tok);
    free(tok); free(out);
    cJSON_Delete(j);
}

/* valgrind's count of heap allocations for a run of 4 and of 24 generated
 * tokens: the engine, sampler and CLI allocate nothing per token. */
static long heap_allocs(int n) {
    char *out = NULL, *err = NULL;
    int rc = tu_run(&out, &err, "valgrind --tool=memcheck '%s' run '%s' -p 'And God said unto Moses' -n %d --temp 0 -t 2 --json",
                    tu_bin(), gguf, n);
    if (rc) fail_msg("valgrind phiq run -n %d: %s", n, err);
    const char *p = strstr(err, "total heap usage: ");
    if (!p) fail_msg("no heap summary from valgrind: %s", err);
    long allocs = 0;
    for (p += strlen("total heap usage: "); *p && *p != ' '; p++)
        if (*p >= '0' && *p <= '9') allocs = allocs * 10 + (*p - '0');
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "ids")), n); /* really generated n */
    cJSON_Delete(j);
    free(out);
    free(err);
    return allocs;
}

static void test_no_allocation_per_token(void **state) {
    (void)state;
    if (getenv("PHIQ_SANITIZED")) {
        print_message("skipped: valgrind cannot run the sanitizer build\n");
        skip();
    }
    if (tu_run(NULL, NULL, "command -v valgrind >/dev/null") != 0)
        tu_unavailable("valgrind not found: heap allocations per token not counted (scripts/deps.sh test installs it)");
    long a4 = heap_allocs(4), a24 = heap_allocs(24);
    print_message("heap allocations: %ld for 4 tokens, %ld for 24\n", a4, a24);
    assert_true(a24 == a4);
}

static void test_chat_prompt_ids(void **state) {
    (void)state;
    const char *lr = tu_llama_ref();
    if (!lr) skip();
    cJSON *j = run_json("--chat --system 'Be brief.' -p 'Who made the earth?' -n 4 --temp 0");
    char *out = NULL;
    /* the fixture's template (tokenizer_config.json) renders every role as <|role|>\n...<|end|>\n */
    assert_int_equal(tu_run(&out, NULL, "'%s' tokenize '%s' \"$(printf '<|system|>\\nBe brief.<|end|>\\n<|user|>\\nWho made the earth?<|end|>\\n<|assistant|>\\n')\"",
                            lr, gguf), 0);
    for (char *p = out; *p; p++) if (*p == ' ') *p = ',';
    out[strcspn(out, "\n")] = 0;
    assert_string_equal(ids_csv(cJSON_GetObjectItem(j, "prompt_ids")), out);
    free(out);
    cJSON_Delete(j);
}

static void test_seeds(void **state) {
    (void)state;
    cJSON *a = run_json("-p 'In the beginning' -n 24 --temp 1.0 --seed 11");
    cJSON *b = run_json("-p 'In the beginning' -n 24 --temp 1.0 --seed 11");
    cJSON *c = run_json("-p 'In the beginning' -n 24 --temp 1.0 --seed 12");
    char sa[8192];
    snprintf(sa, sizeof sa, "%s", ids_csv(cJSON_GetObjectItem(a, "ids")));
    assert_string_equal(sa, ids_csv(cJSON_GetObjectItem(b, "ids")));
    assert_string_not_equal(sa, ids_csv(cJSON_GetObjectItem(c, "ids")));
    const cJSON *stop = cJSON_GetObjectItem(a, "stop");
    assert_true(cJSON_IsString(stop) && (!strcmp(stop->valuestring, "eos") || !strcmp(stop->valuestring, "length")));
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(a, "decode_tok_s")));
    cJSON_Delete(a); cJSON_Delete(b); cJSON_Delete(c);
}

static void test_chat_pipe(void **state) {
    (void)state;
    char *out = NULL, *err = NULL;
    int rc = tu_run(&out, &err, "printf 'Who made the heaven?\\nAnd the sea?\\n/clear\\nWho is the LORD?\\n' | '%s' chat '%s' -n 12 --temp 0 -t 2",
                    tu_bin(), gguf);
    assert_int_equal(rc, 0);
    int lines = 0;
    for (char *p = out; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 3); /* three replies */
    assert_non_null(strstr(err, "cleared"));
    free(out); free(err);
}

TU_MAIN(setup, NULL, test_greedy_equals_llamacpp, test_chat_prompt_ids, test_seeds, test_no_allocation_per_token,
        test_chat_pipe)
