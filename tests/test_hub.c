/* test_hub.c — `phiq pull` and Hub ids, against tests/hub_mock.py (a local
 * stand-in for the Hub's endpoints, serving the tiny-phi3-kjv fixture as
 * microsoft/tiny-phi3-kjv on 127.0.0.1 with the Hub's headers, 302s to a
 * "CDN" and Range). The cache tree is checked against huggingface_hub's
 * layout with names computed by tools we did not write: `sha256sum` for LFS
 * blobs, `git hash-object` for the others. The mock logs the body bytes it
 * sends, so a resumed download is told from a restarted one.
 * Skips (77) where python3 or git is missing. */
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/common.h"
#include "hub/hub.h"

#define REPO "microsoft/tiny-phi3-kjv"
#define FOLDER "models--microsoft--tiny-phi3-kjv"
#define ST_SIZE 39132568 /* model.safetensors of the fixture */

static const char *const fixture_files[] = {
    "config.json", "generation_config.json", "model.safetensors", "special_tokens_map.json",
    "tokenizer.json", "tokenizer_config.json",
};
#define N_FIX (int)(sizeof fixture_files / sizeof fixture_files[0])

typedef struct mock {
    pid_t pid;
    int port;
    char commit[41];
    char log[4096];
} mock;

/* ---- the pure rules (src/hub/hub.c) -------------------------------------------------- */
static void test_ids(void **state) {
    (void)state;
    phiq_hub_id id;
    assert_int_equal(phiq_hub_parse_id("microsoft/Phi-3.5-mini-instruct", true, &id), 0);
    assert_string_equal(id.repo, "microsoft/Phi-3.5-mini-instruct");
    assert_string_equal(id.quant, "");
    assert_int_equal(phiq_hub_parse_id("microsoft/Phi-3-mini-4k-instruct-gguf:q4", true, &id), 0);
    assert_string_equal(id.repo, "microsoft/Phi-3-mini-4k-instruct-gguf");
    assert_string_equal(id.quant, "q4");
    assert_int_equal(phiq_hub_parse_id("gpt2", false, &id), 0);
    /* huggingface_hub's validate_repo_id refuses these */
    const char *bad[] = {"gpt2", "a/b/c", "a--b/c", "a/b..c", "a/b.git", "-a/b", "a/b-", "/b", "a/", "a/b c",
                         "a/b:", "a/b:q 4", "../x", "./model", "model.gguf", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (phiq_hub_parse_id(bad[i], true, &id) == 0) fail_msg("'%s' accepted as a Hub id", bad[i]);
        assert_non_null(strchr(phiq_error(), '\'') ? phiq_error() : "x");
    }
    char longid[200];
    memset(longid, 'a', sizeof longid);
    longid[50] = '/';
    longid[97] = 0;
    assert_int_not_equal(phiq_hub_parse_id(longid, true, &id), 0);
    longid[96] = 0;
    assert_int_equal(phiq_hub_parse_id(longid, true, &id), 0);
}

static void test_cache_env(void **state) {
    (void)state;
    char b[4096];
    const char *vars[] = {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"};
    for (int i = 0; i < 4; i++) unsetenv(vars[i]);
    setenv("HOME", "/home/u", 1);
    assert_int_equal(phiq_hub_cache_dir(b, sizeof b), 0);
    assert_string_equal(b, "/home/u/.cache/huggingface/hub");
    setenv("XDG_CACHE_HOME", "/x", 1);
    phiq_hub_cache_dir(b, sizeof b);
    assert_string_equal(b, "/x/huggingface/hub");
    setenv("HF_HOME", "~/hf/", 1);
    phiq_hub_cache_dir(b, sizeof b);
    assert_string_equal(b, "/home/u/hf/hub");
    setenv("HUGGINGFACE_HUB_CACHE", "/legacy", 1);
    phiq_hub_cache_dir(b, sizeof b);
    assert_string_equal(b, "/legacy");
    setenv("HF_HUB_CACHE", "/new", 1);
    phiq_hub_cache_dir(b, sizeof b);
    assert_string_equal(b, "/new");
    for (int i = 0; i < 4; i++) unsetenv(vars[i]);

    char *f = phiq_hub_repo_folder("microsoft/Phi-3.5-mini-instruct");
    assert_string_equal(f, "models--microsoft--Phi-3.5-mini-instruct");
    free(f);
    setenv("HF_ENDPOINT", "http://127.0.0.1:9/", 1);
    phiq_hub_endpoint(b, sizeof b);
    assert_string_equal(b, "http://127.0.0.1:9");
    unsetenv("HF_ENDPOINT");
    phiq_hub_endpoint(b, sizeof b);
    assert_string_equal(b, "https://huggingface.co");

    unsetenv("TRANSFORMERS_OFFLINE");
    setenv("HF_HUB_OFFLINE", "yes", 1);
    assert_true(phiq_hub_offline());
    setenv("HF_HUB_OFFLINE", "0", 1);
    assert_false(phiq_hub_offline());
    unsetenv("HF_HUB_OFFLINE");
    setenv("TRANSFORMERS_OFFLINE", "1", 1);
    assert_true(phiq_hub_offline());
    unsetenv("TRANSFORMERS_OFFLINE");

    /* the token: the variable, else the file `hf auth login` writes */
    unsetenv("HF_TOKEN");
    unsetenv("HUGGING_FACE_HUB_TOKEN");
    unsetenv("HF_TOKEN_PATH");
    setenv("HF_HOME", tu_tmp("hfhome-unit"), 1);
    assert_int_equal(phiq_hub_token(b, sizeof b), 0);
    mkdir(tu_tmp("hfhome-unit"), 0755);
    FILE *tf = fopen(tu_tmp("hfhome-unit/token"), "w");
    fputs("hf_filetoken\n", tf);
    fclose(tf);
    assert_int_equal(phiq_hub_token(b, sizeof b), 1);
    assert_string_equal(b, "hf_filetoken");
    setenv("HF_TOKEN", "hf_env", 1);
    assert_int_equal(phiq_hub_token(b, sizeof b), 1);
    assert_string_equal(b, "hf_env");
    unsetenv("HF_TOKEN");
    unsetenv("HF_HOME");
}

static void test_headers_and_links(void **state) {
    (void)state;
    char e[200];
    assert_int_equal(phiq_hub_etag("\"abc123\"", e, sizeof e), 0);
    assert_string_equal(e, "abc123");
    assert_int_equal(phiq_hub_etag("W/\"deadbeef\"", e, sizeof e), 0);
    assert_string_equal(e, "deadbeef");
    const char *bad[] = {"\"../../etc/passwd\"", "\"a/b\"", "\"\"", "\"a b\"", "", "\"..\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (phiq_hub_etag(bad[i], e, sizeof e) == 0) fail_msg("ETag %s accepted as a blob name", bad[i]);
    assert_true(phiq_hub_etag_is_sha256("20bcffe51bd396e8dffcf17e62f991cabf472bf613b7a9469ce7205562805a6f"));
    assert_false(phiq_hub_etag_is_sha256("3d074ee8e7c91f5b1478db597fb2208434d2eb67"));
    char *t = phiq_hub_link_target("config.json", "abc");
    assert_string_equal(t, "../../blobs/abc");
    free(t);
    t = phiq_hub_link_target("onnx/cpu/model.onnx", "abc");
    assert_string_equal(t, "../../../../blobs/abc");
    free(t);
    assert_true(phiq_hub_safe_path("a/b.json"));
    const char *unsafe[] = {"/etc/passwd", "../x", "a/../b", "a//b", "a/./b", "a\\b", "", "a/"};
    for (size_t i = 0; i < sizeof unsafe / sizeof unsafe[0]; i++) assert_false(phiq_hub_safe_path(unsafe[i]));
    char v[64];
    const char *line = "x-linked-etag: \"f00\"\r\n";
    assert_int_equal(phiq_hub_header(line, strlen(line), "X-Linked-Etag", v, sizeof v), 1);
    assert_string_equal(v, "\"f00\"");
    assert_int_equal(phiq_hub_header(line, strlen(line), "ETag", v, sizeof v), 0);
    assert_true(phiq_hub_is_commit("3d074ee8e7c91f5b1478db597fb2208434d2eb67"));
    assert_false(phiq_hub_is_commit("main"));
}

static void test_listing_and_selection(void **state) {
    (void)state;
    const char *json = "{\"id\":\"microsoft/x\",\"sha\":\"0123456789abcdef0123456789abcdef01234567\",\"gated\":false,"
                       "\"siblings\":[{\"rfilename\":\"config.json\"},{\"rfilename\":\"model-00001-of-00002.safetensors\"},"
                       "{\"rfilename\":\"model-00002-of-00002.safetensors\"},{\"rfilename\":\"model.safetensors.index.json\"},"
                       "{\"rfilename\":\"README.md\"},{\"rfilename\":\"onnx/model.safetensors\"},{\"rfilename\":\"tokenizer.model\"}]}";
    phiq_hub_info info;
    assert_int_equal(phiq_hub_parse_info(json, strlen(json), &info), 0);
    assert_string_equal(info.sha, "0123456789abcdef0123456789abcdef01234567");
    assert_int_equal(info.n_files, 7);
    assert_false(info.gated);
    int want = 0;
    for (int i = 0; i < info.n_files; i++) want += phiq_hub_default_want(info.files[i].path);
    assert_int_equal(want, 5); /* not README.md, not onnx/ */
    assert_false(phiq_hub_is_gguf_repo("microsoft/x", &info));
    phiq_hub_info_free(&info);
    const char *badj[] = {"[]", "{\"sha\":\"abc\",\"siblings\":[]}", "{\"sha\":\"0123456789abcdef0123456789abcdef01234567\"}",
                          "{\"sha\":\"0123456789abcdef0123456789abcdef01234567\",\"siblings\":[{\"rfilename\":\"../x\"}]}",
                          "{\"sha\":\"0123456789abcdef0123456789abcdef01234567\",\"siblings\":[{}]}", "{"};
    for (size_t i = 0; i < sizeof badj / sizeof badj[0]; i++)
        if (phiq_hub_parse_info(badj[i], strlen(badj[i]), &info) == 0) fail_msg("accepted %s", badj[i]);

    const char *idx = "{\"metadata\":{},\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                      "\"b\":\"model-00002-of-00002.safetensors\",\"c\":\"model-00001-of-00002.safetensors\"}}";
    char **names;
    int n;
    assert_int_equal(phiq_hub_index_shards(idx, strlen(idx), &names, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(names[1], "model-00002-of-00002.safetensors");
    phiq_hub_names_free(names, n);
    const char *badidx = "{\"weight_map\":{\"a\":\"/etc/passwd\"}}";
    assert_int_not_equal(phiq_hub_index_shards(badidx, strlen(badidx), &names, &n), 0);

    /* the file list of microsoft/Phi-3-mini-4k-instruct-gguf */
    const char *g = "{\"sha\":\"0123456789abcdef0123456789abcdef01234567\",\"siblings\":[{\"rfilename\":\"README.md\"},"
                    "{\"rfilename\":\"Phi-3-mini-4k-instruct-fp16.gguf\"},{\"rfilename\":\"Phi-3-mini-4k-instruct-q4.gguf\"}]}";
    assert_int_equal(phiq_hub_parse_info(g, strlen(g), &info), 0);
    assert_true(phiq_hub_is_gguf_repo("microsoft/Phi-3-mini-4k-instruct-gguf", &info));
    assert_int_equal(phiq_hub_pick_gguf(&info, "q4"), 2);
    assert_int_equal(phiq_hub_pick_gguf(&info, "FP16"), 1);
    assert_true(phiq_hub_pick_gguf(&info, "q8_0") < 0);
    assert_non_null(strstr(phiq_error(), "Phi-3-mini-4k-instruct-q4.gguf"));
    assert_true(phiq_hub_pick_gguf(&info, "") < 0); /* two files, no Q4_K_M: the user picks */
    phiq_hub_info_free(&info);
    assert_true(phiq_hub_glob("*.json", "onnx/a.json")); /* fnmatch: '*' crosses '/' as in huggingface_hub */
    assert_true(phiq_hub_glob("onnx/", "onnx/cpu/model.onnx"));
    assert_false(phiq_hub_glob("*.gguf", "model.safetensors"));
}

/* A child phiq run that must succeed: on failure, says what it printed
 * (a sanitizer report included) and frees its output before failing, so a
 * failing case does not add leaks of its own to the report. */
static void must_succeed(int rc, const char *what, char **out, char **err) {
    if (!rc) return;
    print_error("%s failed (exit %d): %s\n", what, rc, *err ? *err : "");
    free(*out);
    free(*err);
    *out = *err = NULL;
    fail();
}

/* ---- against the mock Hub ------------------------------------------------------------- */
static int have_tools(void) {
    return system("command -v python3 >/dev/null 2>&1 && command -v git >/dev/null 2>&1 && command -v sha256sum >/dev/null 2>&1") == 0;
}

/* The mock Hub serving the fixture tiny-phi3-kjv as REPO; extra: its options. */
static void mock_start(mock *m, const char *extra) {
    static int seq;
    char pf[4096];
    snprintf(pf, sizeof pf, "%s", tu_tmp("mock.port"));
    char name[64];
    snprintf(name, sizeof name, "mock%d.log", ++seq);
    snprintf(m->log, sizeof m->log, "%s", tu_tmp(name));
    unlink(pf);
    char *out = NULL;
    int rc = tu_run(&out, NULL, "python3 '%s/tests/hub_mock.py' --root '%s' --repo %s --port-file '%s' --log '%s' --lifetime 120 %s "
                    ">/dev/null 2>&1 & echo $!", PHIQ_SOURCE_DIR, tu_shared_path("fixtures/tiny-phi3-kjv"), REPO, pf, m->log, extra ? extra : "");
    assert_int_equal(rc, 0);
    m->pid = (pid_t)atoi(out);
    free(out);
    for (int i = 0; i < 300 && access(pf, R_OK) != 0; i++) usleep(50000);
    FILE *f = fopen(pf, "r");
    if (!f) fail_msg("the mock Hub did not start");
    assert_int_equal(fscanf(f, "%d %40s", &m->port, m->commit), 2);
    fclose(f);
}

static void mock_stop(mock *m) {
    if (m->pid > 0) kill(m->pid, SIGTERM);
    m->pid = 0;
}

/* Environment for one phiq run: a private cache and HF_HOME, no token or
 * offline setting from the machine, the mock as the endpoint. */
static const char *envp(const char *cache, int port) {
    static char b[4][8192];
    static int k;
    k = (k + 1) % 4;
    snprintf(b[k], sizeof b[k], "env -u HF_TOKEN -u HUGGING_FACE_HUB_TOKEN -u HF_HUB_OFFLINE -u TRANSFORMERS_OFFLINE "
             "-u HUGGINGFACE_HUB_CACHE -u HF_TOKEN_PATH HF_HOME='%s' HF_HUB_CACHE='%s' HF_ENDPOINT=http://127.0.0.1:%d",
             tu_tmp("hfhome"), tu_tmp(cache), port);
    return b[k];
}

/* `phiq pull REPO` with cache (envp) against the mock on port. */
static int pull(char **out, char **err, const char *cache, int port) {
    return tu_run(out, err, "%s '%s' pull " REPO, envp(cache, port), tu_bin());
}

/* pull, which must succeed (what names it in the failure); out and err are
 * the caller's to read and free. */
static void must_pull(char **out, char **err, const char *cache, int port, const char *what) {
    must_succeed(pull(out, err, cache, port), what, out, err);
}

/* Sum of body bytes the mock sent for paths containing `part`, and how many requests. */
static long long served(const mock *m, const char *part, int *count, char *last_range, size_t lr) {
    size_t n;
    char *log = tu_read_all(m->log, &n);
    long long sum = 0;
    if (count) *count = 0;
    if (last_range) last_range[0] = 0;
    for (char *line = log; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (strstr(line, "\"GET\"") && strstr(line, part)) {
            char *b = strstr(line, "\"bytes\": ");
            if (b) sum += atoll(b + 9);
            if (count) (*count)++;
            char *r = strstr(line, "\"range\": \"");
            if (last_range) {
                if (r) snprintf(last_range, lr, "%.*s", (int)strcspn(r + 10, "\""), r + 10);
                else last_range[0] = 0;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    free(log);
    return sum;
}

/* The blob name huggingface_hub uses for a fixture file: sha256 for LFS
 * files, the git blob id otherwise, from sha256sum / git hash-object. */
static void expected_etag(const char *file, char *out) {
    const char *p = tu_shared_path("fixtures/tiny-phi3-kjv");
    char *o = NULL;
    size_t l = strlen(file);
    int lfs = l > 12 && !strcmp(file + l - 12, ".safetensors");
    int rc = lfs ? tu_run(&o, NULL, "sha256sum '%s/%s' | cut -c1-64", p, file)
                 : tu_run(&o, NULL, "git hash-object '%s/%s'", p, file);
    assert_int_equal(rc, 0);
    snprintf(out, 65, "%.*s", (int)strcspn(o, "\n"), o);
    free(o);
}

/* The tree is huggingface_hub's: snapshot links, blobs, refs/main, nothing half-done. */
static void check_tree(const char *cache, const char *commit) {
    char repo[4096];
    snprintf(repo, sizeof repo, "%s/" FOLDER, tu_tmp(cache));
    for (int i = 0; i < N_FIX; i++) {
        char etag[65], link[8192], target[512], want[600];
        expected_etag(fixture_files[i], etag);
        snprintf(link, sizeof link, "%s/snapshots/%s/%s", repo, commit, fixture_files[i]);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n < 0) fail_msg("%s is not a symlink", link);
        target[n] = 0;
        snprintf(want, sizeof want, "../../blobs/%s", etag);
        assert_string_equal(target, want);
        char *o = NULL;
        assert_int_equal(tu_run(&o, NULL, "cmp '%s' '%s/%s' && echo same", link,
                                tu_shared_path("fixtures/tiny-phi3-kjv"), fixture_files[i]), 0);
        free(o);
    }
    char refp[4200];
    snprintf(refp, sizeof refp, "%s/refs/main", repo);
    size_t n;
    char *ref = tu_read_all(refp, &n);
    assert_non_null(ref);
    assert_int_equal(n, 40); /* no newline, as huggingface_hub writes it */
    assert_memory_equal(ref, commit, 40);
    free(ref);
    char *o = NULL;
    tu_run(&o, NULL, "find '%s' -name '*.incomplete' -o -name '*phiq*'", repo);
    assert_string_equal(o, "");
    free(o);
    char lockd[4200];
    snprintf(lockd, sizeof lockd, "%s/.locks/" FOLDER, tu_tmp(cache));
    assert_true(phiq_dir_exists(lockd));
}

static void test_pull_clean(void **state) {
    (void)state;
    mock m;
    mock_start(&m, NULL);
    char *out = NULL, *err = NULL;
    must_pull(&out, &err, "c-clean", m.port, "pull");
    char want[4096];
    snprintf(want, sizeof want, "%s/" FOLDER "/snapshots/%s\n", tu_tmp("c-clean"), m.commit);
    assert_string_equal(out, want);
    assert_non_null(strstr(err, "6 files downloaded"));
    free(out);
    free(err);
    check_tree("c-clean", m.commit);
    assert_int_equal(served(&m, "/cdn/", NULL, NULL, 0), ST_SIZE);
    /* again: nothing is downloaded a second time */
    int gets0;
    long long bytes0 = served(&m, "/", &gets0, NULL, 0);
    must_pull(&out, &err, "c-clean", m.port, "second pull");
    int gets1;
    long long bytes1 = served(&m, "/", &gets1, NULL, 0);
    assert_int_equal(gets1, gets0 + 1); /* only the listing */
    assert_true(bytes1 - bytes0 < 4096);
    assert_non_null(strstr(err, "0 files downloaded"));
    free(out);
    free(err);
    mock_stop(&m);
}

static void test_pull_resumes(void **state) {
    (void)state;
    /* the server drops the connection after 1 MB: the pull goes on from there */
    mock m;
    mock_start(&m, "--drop-after 1000000");
    char *out = NULL, *err = NULL;
    must_pull(&out, &err, "c-drop", m.port, "pull");
    int gets;
    char range[64];
    long long b = served(&m, "/cdn/", &gets, range, sizeof range);
    assert_int_equal(gets, 2);
    assert_string_equal(range, "bytes=1000000-");
    assert_int_equal(b, ST_SIZE); /* resumed, not restarted */
    check_tree("c-drop", m.commit);
    free(out);
    free(err);
    mock_stop(&m);

    /* a partial blob left by an interrupted run is resumed by the next one */
    mock_start(&m, NULL);
    char etag[65];
    expected_etag("model.safetensors", etag);
    assert_int_equal(tu_run(NULL, NULL, "mkdir -p '%s/" FOLDER "/blobs' && head -c 5000000 '%s/model.safetensors' > '%s/" FOLDER "/blobs/%s.incomplete'",
                            tu_tmp("c-part"), tu_shared_path("fixtures/tiny-phi3-kjv"), tu_tmp("c-part"), etag), 0);
    must_pull(&out, &err, "c-part", m.port, "pull");
    assert_non_null(strstr(err, "resuming at byte 5000000"));
    b = served(&m, "/cdn/", &gets, range, sizeof range);
    assert_int_equal(gets, 1);
    assert_string_equal(range, "bytes=5000000-");
    assert_int_equal(b, ST_SIZE - 5000000);
    check_tree("c-part", m.commit);
    free(out);
    free(err);
    mock_stop(&m);
}

static void test_pull_corrupt(void **state) {
    (void)state;
    mock m;
    mock_start(&m, "--corrupt");
    char *out = NULL, *err = NULL;
    assert_int_equal(pull(&out, &err, "c-bad", m.port), 1);
    assert_non_null(strstr(err, "model.safetensors: sha256 mismatch"));
    assert_string_equal(out, "");
    char etag[65];
    expected_etag("model.safetensors", etag);
    char *o = NULL;
    tu_run(&o, NULL, "ls -a '%s/" FOLDER "/blobs' | grep %s; ls '%s/" FOLDER "/snapshots/%s/model.safetensors' 2>/dev/null",
           tu_tmp("c-bad"), etag, tu_tmp("c-bad"), m.commit);
    assert_string_equal(o, ""); /* neither the blob, nor its .incomplete, nor a link */
    free(o);
    free(out);
    free(err);
    mock_stop(&m);
}

static void test_pull_errors(void **state) {
    (void)state;
    mock m;
    mock_start(&m, "--gated hf_right");
    char *out = NULL, *err = NULL;
    assert_int_equal(pull(&out, &err, "c-gated", m.port), 1);
    assert_non_null(strstr(err, "HTTP 401"));
    assert_non_null(strstr(err, "accept the licence on the Hub and set HF_TOKEN"));
    assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1); /* one line */
    free(out);
    free(err);
    assert_int_equal(tu_run(&out, &err, "%s HF_TOKEN=hf_wrong '%s' pull " REPO, envp("c-gated", m.port), tu_bin()), 1);
    assert_non_null(strstr(err, "HTTP 403"));
    assert_non_null(strstr(err, "the token given was refused"));
    free(out);
    free(err);
    assert_int_equal(tu_run(&out, &err, "%s HF_TOKEN=hf_right '%s' pull --quiet " REPO, envp("c-gated", m.port), tu_bin()), 0);
    assert_string_equal(err, "");
    free(out);
    free(err);
    /* the token file huggingface_hub's login writes ($HF_HOME/token) */
    assert_int_equal(tu_run(NULL, NULL, "mkdir -p '%s' && printf hf_right > '%s/token'", tu_tmp("hfhome"), tu_tmp("hfhome")), 0);
    assert_int_equal(tu_run(&out, &err, "%s '%s' pull --quiet " REPO, envp("c-gated2", m.port), tu_bin()), 0);
    unlink(tu_tmp("hfhome/token"));
    free(out);
    free(err);
    mock_stop(&m);

    mock_start(&m, NULL);
    assert_int_equal(tu_run(&out, &err, "%s '%s' pull microsoft/no-such-model", envp("c-404", m.port), tu_bin()), 1);
    assert_string_equal(err, "phiq pull: microsoft/no-such-model: revision main: no such repo or revision on the Hub (HTTP 404)\n");
    free(out);
    free(err);
    assert_int_equal(tu_run(&out, &err, "%s '%s' pull " REPO " --revision v9", envp("c-404", m.port), tu_bin()), 1);
    assert_non_null(strstr(err, "revision v9: no such revision on the Hub (HTTP 404)"));
    free(out);
    free(err);
    assert_int_equal(tu_run(&out, &err, "%s '%s' pull 'micro soft/x'", envp("c-404", m.port), tu_bin()), 1);
    assert_non_null(strstr(err, "letters, digits"));
    free(out);
    free(err);
    mock_stop(&m);
    /* no server at all */
    assert_int_equal(pull(&out, &err, "c-404", 1), 1);
    assert_non_null(strstr(err, "cannot reach http://127.0.0.1:1"));
    free(out);
    free(err);
}

static void test_two_pulls_at_once(void **state) {
    (void)state;
    mock m;
    mock_start(&m, NULL);
    char *out = NULL, *err = NULL;
    const char *e = envp("c-two", m.port);
    int rc = tu_run(&out, &err, "%s '%s' pull --quiet " REPO " > '%s' 2>&1 & a=$!; %s '%s' pull --quiet " REPO
                    " > '%s' 2>&1 & b=$!; wait $a; ra=$?; wait $b; rb=$?; echo $ra $rb",
                    e, tu_bin(), tu_tmp("two.a"), e, tu_bin(), tu_tmp("two.b"));
    assert_int_equal(rc, 0);
    assert_string_equal(out, "0 0\n");
    free(out);
    free(err);
    check_tree("c-two", m.commit);
    /* the blob lock: one process downloaded the weights, the other waited for them */
    assert_int_equal(served(&m, "/cdn/", NULL, NULL, 0), ST_SIZE);
    mock_stop(&m);
}

static void test_offline_and_commands(void **state) {
    (void)state;
    mock m;
    mock_start(&m, NULL);
    char *out = NULL, *err = NULL;
    int rc = tu_run(&out, &err, "%s '%s' pull --quiet " REPO, envp("c-off", m.port), tu_bin());
    must_succeed(rc, "pull", &out, &err);
    free(out);
    free(err);
    mock_stop(&m);
    /* the server is gone; offline mode needs only the cache */
    const char *e = envp("c-off", 1);
    assert_int_equal(tu_run(&out, &err, "%s HF_HUB_OFFLINE=1 '%s' pull " REPO, e, tu_bin()), 0);
    assert_non_null(strstr(out, "/snapshots/"));
    free(out);
    free(err);
    assert_int_equal(tu_run(&out, &err, "%s HF_HUB_OFFLINE=1 '%s' pull microsoft/not-pulled", e, tu_bin()), 1);
    assert_non_null(strstr(err, "is not in the Hugging Face cache"));
    free(out);
    free(err);
    /* the command: convert from the cache by id */
    const char *gguf = tu_tmp("off-q4.gguf");
    rc = tu_run(&out, &err, "%s HF_HUB_OFFLINE=1 '%s' convert " REPO " -o '%s' --type Q4_K_M --quiet", e, tu_bin(), gguf);
    must_succeed(rc, "convert by id", &out, &err);
    free(out);
    free(err);
    size_t n;
    char *g = tu_read_all(gguf, &n);
    assert_non_null(g);
    assert_true(n > 1000000 && !memcmp(g, "GGUF", 4));
    free(g);
    /* and the same bytes as converting the fixture directory itself */
    rc = tu_run(&out, &err, "'%s' convert '%s' -o '%s' --type Q4_K_M --quiet && cmp '%s' '%s'", tu_bin(),
                tu_shared_path("fixtures/tiny-phi3-kjv"), tu_tmp("dir-q4.gguf"), gguf, tu_tmp("dir-q4.gguf"));
    must_succeed(rc, "converting the directory and comparing it with the GGUF by id", &out, &err);
    free(out);
    free(err);
    /* another command taking a model: eval on the cached id */
    rc = tu_run(&out, &err, "%s HF_HUB_OFFLINE=1 '%s' eval " REPO " --text '%s' --ctx 64 --chunks 1 --json", e, tu_bin(),
                tu_shared_path("fixtures/text/kjv-heldout.txt"));
    must_succeed(rc, "eval by id", &out, &err);
    assert_non_null(strstr(out, "\"ppl\""));
    free(out);
    free(err);
    /* and the chat template of the cached id, as of the fixture directory */
    assert_int_equal(tu_run(NULL, NULL, "printf '%%s' '[{\"role\":\"user\",\"content\":\"Hi\"}]' > '%s'", tu_tmp("msgs.json")), 0);
    rc = tu_run(&out, &err, "%s HF_HUB_OFFLINE=1 '%s' template " REPO " --messages '%s' > '%s' && '%s' template '%s' --messages '%s' | cmp - '%s'",
                e, tu_bin(), tu_tmp("msgs.json"), tu_tmp("tmpl-id.txt"), tu_bin(), tu_shared_path("fixtures/tiny-phi3-kjv"),
                tu_tmp("msgs.json"), tu_tmp("tmpl-id.txt"));
    must_succeed(rc, "template by id", &out, &err);
    free(out);
    free(err);
    /* a local directory with the id's name wins, said once */
    rc = tu_run(&out, &err, "cd '%s' && mkdir -p microsoft && ln -sfn '%s' microsoft/tiny-phi3-kjv && %s HF_HUB_OFFLINE=1 "
                "'%s' inspect " REPO " --json --no-tensors", tu_tmpdir(), tu_shared_path("fixtures/tiny-phi3-kjv"), e, tu_bin());
    must_succeed(rc, "inspect of the local directory", &out, &err);
    assert_string_equal(err, "phiq inspect: '" REPO "' is a local path; using it, not the Hub model\n");
    assert_non_null(strstr(out, REPO));
    assert_null(strstr(out, "snapshots")); /* the directory, not the cache */
    free(out);
    free(err);
}

int main(void) {
    const struct CMUnitTest unit[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_cache_env),
        cmocka_unit_test(test_headers_and_links),
        cmocka_unit_test(test_listing_and_selection),
    };
    int rc = cmocka_run_group_tests_name("hub rules", unit, NULL, NULL);
    if (rc) return rc;
    if (!have_tools()) {
        tu_note_unavailable("the pulls against the mock Hub need python3, git and sha256sum (scripts/deps.sh test)");
        return tu_finish(0); /* 77: skipped, saying why */
    }
    const struct CMUnitTest net[] = {
        cmocka_unit_test(test_pull_clean),
        cmocka_unit_test(test_pull_resumes),
        cmocka_unit_test(test_pull_corrupt),
        cmocka_unit_test(test_pull_errors),
        cmocka_unit_test(test_two_pulls_at_once),
        cmocka_unit_test(test_offline_and_commands),
    };
    return tu_finish(cmocka_run_group_tests_name("phiq pull against the mock Hub", net, NULL, NULL));
}
