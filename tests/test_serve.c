/* test_serve.c — `phiq serve` on the fixture, driven by the official OpenAI
 * JavaScript client (npm `openai`, tests/serve/client.mjs): chat and text
 * completions equal to `phiq run --temp 0`, usage equal to phiq's
 * tokenizer, the SSE framing, stop sequences and max_tokens, every error
 * status with its error object, 8 parallel streams equal to their solo
 * answers, the queue's 429, a client leaving mid-stream, KV reuse across
 * turns, 1000 malformed bodies with flat memory, a stalled client timed
 * out, SIGTERM exiting 0; and the chat page in Debian's headless Chromium
 * (puppeteer-core). Skips (77) without node/npm. */
#define _GNU_SOURCE
#include "testutil.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

static char node_modules[4096], url[128], logpath[4096];
static pid_t server = -1;

/* The npm packages (openai, puppeteer-core), from tests/refs-setup.sh's one
 * npm install; 0 after tu_note_unavailable() said why. */
static int ensure_node(void) {
    if (system("command -v node >/dev/null 2>&1") != 0) {
        tu_note_unavailable("test_serve: node not found (scripts/deps.sh test installs nodejs)");
        return 0;
    }
    const char *nm = tu_node_modules("openai");
    if (!nm) return 0;
    snprintf(node_modules, sizeof node_modules, "%s", nm);
    return 1;
}

static void start_server(const char *args) {
    snprintf(logpath, sizeof logpath, "%s", tu_tmp("serve.log"));
    server = fork();
    assert_true(server >= 0);
    if (server == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "exec '%s' serve '%s' --port 0 %s", tu_bin(), tu_shared_path("fixtures/tiny-phi3-kjv"),
                 args);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1200; i++) { /* up to 60 s: the machine may be loaded */
        size_t n;
        char *log = tu_read_all(logpath, &n);
        const char *p = log ? strstr(log, "listening on http://") : NULL;
        if (p) {
            int port = 0;
            const char *c = strstr(p + 20, ":");
            if (c) port = atoi(c + 1);
            snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
            free(log);
            return;
        }
        free(log);
        int st;
        if (waitpid(server, &st, WNOHANG) == server) fail_msg("phiq serve exited at start: %s", tu_read_all(logpath, &n));
        usleep(50000);
    }
    fail_msg("phiq serve did not start within 60 s");
}

/* Runs one case of client.mjs against the server. */
static void client_case(const char *name, const char *env) {
    char *out = NULL, *err = NULL;
    int rc = tu_run(&out, &err,
                    "PHIQ_SERVE_URL='%s' PHIQ_SERVE_KEY=sekrit PHIQ_NODE_MODULES='%s' PHIQ_MODEL='%s' "
                    "PHIQ_SERVE_PID=%d %s node '%s/tests/serve/client.mjs' %s",
                    url, node_modules, tu_shared_path("fixtures/tiny-phi3-kjv"), (int)server, env ? env : "",
                    PHIQ_SOURCE_DIR, name);
    if (out && *out) print_message("%s: %s", name, out);
    char why[2048], tail[2048] = "";
    snprintf(why, sizeof why, "%s", err ? err : "");
    free(out);
    free(err);
    if (rc != 0) { /* the server's last words say which side closed what */
        size_t n = 0;
        char *log = tu_read_all(logpath, &n);
        if (log) snprintf(tail, sizeof tail, "%s", log + (n > sizeof tail - 1 ? n - (sizeof tail - 1) : 0));
        free(log);
        fail_msg("client case %s (exit %d): %s\nserver log ends:\n%s", name, rc, why, tail); /* longjmps: freed first */
    }
}

static long rss_kb(void) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)server);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = atol(line + 6);
    if (f) fclose(f);
    return kb;
}

static int setup(void **state) {
    (void)state;
    start_server("-np 8 --queue 2 --api-key sekrit --max-body 262144 --timeout 3 -c 2048 -t 2");
    return 0;
}

static void test_chat(void **state) { (void)state; client_case("chat", NULL); }
static void test_sse(void **state) { (void)state; client_case("sse", NULL); }
static void test_completions(void **state) { (void)state; client_case("completions", NULL); }
static void test_stop(void **state) { (void)state; client_case("stop", NULL); }
static void test_errors(void **state) { (void)state; client_case("errors", NULL); }
static void test_kvreuse(void **state) { (void)state; client_case("kvreuse", NULL); }
static void test_parallel(void **state) { (void)state; client_case("parallel", NULL); }
static void test_queue(void **state) { (void)state; client_case("queue", NULL); }
static void test_disconnect(void **state) { (void)state; client_case("disconnect", NULL); }

static void test_malformed(void **state) {
    (void)state;
    client_case("malformed", "PHIQ_SERVE_FUZZ_N=200"); /* warm: threads, allocator arenas */
    long before = rss_kb();
    client_case("malformed", "PHIQ_SERVE_FUZZ_N=1000");
    long after = rss_kb();
    print_message("RSS %ld kB before 1000 malformed bodies, %ld kB after\n", before, after);
    assert_true(before > 0 && after > 0);
    /* ASan keeps freed memory in quarantine (256 MB): leaks show at exit instead (test_sigterm) */
    if (!getenv("PHIQ_SANITIZED")) assert_true(after - before < 8 * 1024);
}

static void test_page(void **state) {
    (void)state;
    char probe[4300];
    snprintf(probe, sizeof probe, "%s/puppeteer-core/package.json", node_modules);
    if (access("/usr/bin/chromium", X_OK) != 0 || access(probe, R_OK) != 0)
        tu_unavailable("test_page needs Debian's chromium and puppeteer-core (tests/refs-setup.sh)");
    char env[4400];
    snprintf(env, sizeof env, "PHIQ_SERVE_SCREENSHOT='%s'", tu_tmp("serve.png"));
    client_case("page", env);
}

static void test_slowclient(void **state) { (void)state; client_case("slowclient", NULL); }

static void test_sigterm(void **state) {
    (void)state;
    client_case("sigterm", NULL);
    int st = 0;
    for (int i = 0; i < 200 && waitpid(server, &st, WNOHANG) != server; i++) usleep(50000);
    size_t n;
    char *log = tu_read_all(logpath, &n);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("phiq serve did not exit 0 after SIGTERM: %s", log ? log : "");
    assert_non_null(strstr(log, "stopped"));
    free(log);
    server = -1;
}

static int teardown(void **state) {
    (void)state;
    if (server > 0) {
        kill(server, SIGKILL);
        waitpid(server, NULL, 0);
    }
    return 0;
}

int main(void) {
    if (!ensure_node()) return tu_finish(0); /* 77: skipped, saying why */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat),       cmocka_unit_test(test_sse),        cmocka_unit_test(test_completions),
        cmocka_unit_test(test_stop),       cmocka_unit_test(test_errors),     cmocka_unit_test(test_kvreuse),
        cmocka_unit_test(test_parallel),   cmocka_unit_test(test_queue),      cmocka_unit_test(test_disconnect),
        cmocka_unit_test(test_malformed),  cmocka_unit_test(test_page), cmocka_unit_test(test_slowclient), cmocka_unit_test(test_sigterm),
    };
    return tu_run_group(tests, setup, teardown);
}
