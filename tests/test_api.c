/* test_api.c — the public API's refusals: a context larger than the model
 * allows, bad arguments, a missing file; each a clear one-line error. And
 * the two ways of holding GGUF weights agreeing exactly. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "phiq.h"

static void test_context_limits(void **state) {
    (void)state;
    const char *g = tu_fixture_gguf("q8_0");
    phiq_model *m = phiq_model_open(g, NULL);
    assert_non_null(m);
    assert_int_equal(phiq_model_n_ctx_train(m), 4096); /* max_position_embeddings of the fixture */
    phiq_context_params cp = phiq_context_default_params();
    cp.n_ctx = 4097;
    assert_null(phiq_context_new(m, &cp));
    assert_non_null(strstr(phiq_error(), "exceeds the model's context length 4096"));
    cp.n_ctx = -5;
    assert_null(phiq_context_new(m, &cp));
    cp.n_ctx = 8;
    phiq_context *c = phiq_context_new(m, &cp);
    assert_non_null(c);
    int32_t ids[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    assert_true(phiq_eval(c, ids, 9) < 0); /* more than the context holds */
    assert_non_null(strstr(phiq_error(), "context full"));
    assert_int_equal(phiq_eval(c, ids, 8), 0);
    int32_t bad = 1 << 30;
    assert_int_equal(phiq_context_truncate(c, 0), 0);
    assert_true(phiq_eval(c, &bad, 1) < 0);
    assert_non_null(strstr(phiq_error(), "out of range"));
    phiq_context_free(c);
    phiq_model_free(m);
    /* and through the CLI: one line, exit 1 */
    char *out = NULL, *err = NULL;
    int rc = tu_run(&out, &err, "'%s' run '%s' -p hi -c 100000 -n 1", tu_bin(), g);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "exceeds the model's context length"));
    free(out);
    free(err);
}

/* logits_from: positions before it get no logits (phiq_logits_at refuses
 * them, one line), later ones are those of a context that kept them all. */
static void test_logits_from(void **state) {
    (void)state;
    phiq_model *m = phiq_model_open(tu_fixture_gguf("q4_k_m"), NULL);
    assert_non_null(m);
    phiq_context_params cp = phiq_context_default_params();
    cp.n_ctx = 32;
    cp.all_logits = 1;
    phiq_context *all = phiq_context_new(m, &cp);
    cp.logits_from = 10;
    phiq_context *half = phiq_context_new(m, &cp);
    assert_non_null(all);
    assert_non_null(half);
    int32_t ids[16];
    for (int i = 0; i < 16; i++) ids[i] = 100 + 37 * i;
    assert_int_equal(phiq_eval(all, ids, 16), 0);
    assert_int_equal(phiq_eval(half, ids, 16), 0);
    assert_null(phiq_logits_at(half, 9));
    assert_non_null(strstr(phiq_error(), "before logits_from"));
    const int V = phiq_model_n_vocab(m);
    for (int i = 10; i < 16; i++) {
        const float *a = phiq_logits_at(all, i), *h = phiq_logits_at(half, i);
        assert_non_null(a);
        assert_non_null(h);
        for (int v = 0; v < V; v++)
            if (!(fabsf(a[v] - h[v]) <= 1e-4f * (1.0f + fabsf(a[v])))) fail_msg("position %d logit %d: %g vs %g", i, v, h[v], a[v]);
    }
    assert_true(phiq_logits(half) == phiq_logits_at(half, 15));
    phiq_context_free(all);
    phiq_context_free(half);
    phiq_model_free(m);
}

/* A GGUF file read through the map and copied onto huge pages gives the
 * same logits bit for bit (the copy changes where bytes live, nothing else). */
static void test_weights_modes(void **state) {
    (void)state;
    const char *g = tu_fixture_gguf("q4_k_m");
    const phiq_weights_mode modes[2] = {PHIQ_WEIGHTS_MMAP, PHIQ_WEIGHTS_COPY};
    float *logits[2] = {NULL, NULL};
    int n_vocab = 0;
    for (int i = 0; i < 2; i++) {
        phiq_model_params mp = {.n_threads = 2, .weights = modes[i]};
        phiq_model *m = phiq_model_open(g, &mp);
        assert_non_null(m);
        n_vocab = phiq_model_n_vocab(m);
        phiq_context_params cp = phiq_context_default_params();
        cp.n_ctx = 32;
        cp.n_threads = 2;
        phiq_context *c = phiq_context_new(m, &cp);
        assert_non_null(c);
        int32_t ids[12] = {1, 450, 3186, 310, 278, 6534, 338, 1230, 29892, 322, 7256, 13};
        assert_int_equal(phiq_eval(c, ids, 12), 0);      /* prefill */
        assert_int_equal(phiq_eval(c, ids + 3, 1), 0);   /* and one decode step */
        logits[i] = malloc(sizeof(float) * (size_t)n_vocab);
        memcpy(logits[i], phiq_logits(c), sizeof(float) * (size_t)n_vocab);
        phiq_context_free(c);
        phiq_model_free(m);
    }
    assert_memory_equal(logits[0], logits[1], sizeof(float) * (size_t)n_vocab);
    free(logits[0]);
    free(logits[1]);
}

/* The default keeps the file map when copying would not leave half of the
 * memory the process may use: under a cgroup memory limit (a container) the
 * host's MemAvailable is not the room. Needs root and a memory cgroup it can
 * create a child in; skips otherwise. */
static void test_weights_cgroup_limit(void **state) {
    (void)state;
    if (getenv("PHIQ_SANITIZED")) { /* ASan's own memory would not fit the limit */
        print_message("skipped in the sanitizer build\n");
        skip();
    }
    FILE *f = fopen("/proc/self/cgroup", "r");
    char line[512], dir[640] = "";
    int v2 = 0;
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (strstr(line, ":memory:")) {
            snprintf(dir, sizeof dir, "/sys/fs/cgroup/memory%s", strstr(line, ":memory:") + 8);
            v2 = 0;
            break;
        }
        if (!strncmp(line, "0::", 3)) snprintf(dir, sizeof dir, "/sys/fs/cgroup%s", line + 3), v2 = 1;
    }
    if (f) fclose(f);
    char cg[700], file[760];
    snprintf(cg, sizeof cg, "%s/phiq-test-%d", dir, (int)getpid());
    if (!dir[0] || mkdir(cg, 0755) != 0) {
        print_message("skipped: cannot create a memory cgroup under '%s' (needs root)\n", dir);
        skip();
    }
    snprintf(file, sizeof file, "%s/%s", cg, v2 ? "memory.max" : "memory.limit_in_bytes");
    FILE *lf = fopen(file, "w");
    int ok = lf && fprintf(lf, "%d\n", 130 << 20) > 0;
    if (lf) ok = fclose(lf) == 0 && ok;
    if (!ok) {
        rmdir(cg);
        print_message("skipped: cannot set %s\n", file);
        skip();
    }
    char *err = NULL, *out = NULL;
    const char *g = tu_fixture_gguf("f32");
    /* 79 MB of f32 weights: copied without a limit, mapped under 130 MB */
    int rc = tu_run(&out, &err, "'%s' bench '%s' -p 4 -n 2 -r 1 --json", tu_bin(), g);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"weights\": \"copied\""));
    free(out), free(err);
    snprintf(file, sizeof file, "%s/cgroup.procs", cg);
    rc = tu_run(&out, &err, "sh -c 'echo $$ > %s && exec \"%s\" bench \"%s\" -p 4 -n 2 -r 1 --json'", file, tu_bin(), g);
    print_message("under a 130 MB cgroup limit: %s", out ? out : "");
    int mapped = out && strstr(out, "\"weights\": \"mapped\"") != NULL;
    free(out), free(err);
    rmdir(cg); /* empty again: the process has exited */
    assert_int_equal(rc, 0);
    assert_true(mapped);
}

static void test_missing_file(void **state) {
    (void)state;
    assert_null(phiq_model_open("/nonexistent/model.gguf", NULL));
    assert_non_null(strstr(phiq_error(), "/nonexistent/model.gguf"));
    assert_null(strchr(phiq_error(), '\n'));
}

TU_MAIN(NULL, NULL, test_context_limits, test_logits_from, test_weights_modes, test_weights_cgroup_limit, test_missing_file)
