/* testutil.c — see testutil.h. */
#define _GNU_SOURCE
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PHIQ_SOURCE_DIR /* the AArch64 cross build of test_kernels compiles this file without CMake's definitions */
#define PHIQ_SOURCE_DIR "."
#endif

static char tmpdir[4096];

const char *tu_shared(void) {
    const char *s = getenv("PHIQ_SHARED");
    return s ? s : "../shared";
}

static char *rot_buf(void) {
    static char bufs[8][4096];
    static int k;
    return bufs[k++ & 7];
}

const char *tu_shared_path(const char *rel) {
    char *b = rot_buf();
    snprintf(b, 4096, "%s/%s", tu_shared(), rel);
    return b;
}

const char *tu_bin(void) {
    const char *s = getenv("PHIQ_BIN");
    return s ? s : "phiq";
}

static void cleanup(void) {
    if (tmpdir[0] && !getenv("PHIQ_KEEP")) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) { /* best effort */ }
    }
}

const char *tu_tmpdir(void) {
    if (!tmpdir[0]) {
        const char *base = getenv("PHIQ_TMP");
        if (!base) base = "/tmp";
        mkdir(base, 0777);
        snprintf(tmpdir, sizeof tmpdir, "%s/t.%ld.XXXXXX", base, (long)getpid());
        if (!mkdtemp(tmpdir)) {
            fprintf(stderr, "cannot create %s: %s\n", tmpdir, strerror(errno));
            exit(1);
        }
        atexit(cleanup);
    }
    return tmpdir;
}

const char *tu_tmp(const char *name) {
    char *b = rot_buf();
    snprintf(b, 4096, "%s/%s", tu_tmpdir(), name);
    return b;
}

static char *slurp_fd(FILE *f) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 2) buf = realloc(buf, cap *= 2);
    }
    buf[n] = 0;
    return buf;
}

int tu_run(char **out, char **err, const char *fmt, ...) {
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char errpath[4200] = "";
    char full[20480];
    if (err) {
        snprintf(errpath, sizeof errpath, "%s/.stderr.%ld", tu_tmpdir(), (long)getpid());
        snprintf(full, sizeof full, "(%s) 2>'%s'", cmd, errpath);
    } else {
        snprintf(full, sizeof full, "%s", cmd);
    }
    FILE *p = popen(full, "r");
    if (!p) return -1;
    char *o = slurp_fd(p);
    int st = pclose(p);
    if (out) *out = o; else free(o);
    if (err) {
        size_t n;
        char *e = tu_read_all(errpath, &n);
        *err = e ? e : strdup("");
        unlink(errpath);
    }
    if (st == -1) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

const char *tu_refs(void) {
    static char dir[4096];
    if (!dir[0]) {
        const char *env = getenv("PHIQ_REFS"), *home = getenv("HOME");
        if (env && *env) snprintf(dir, sizeof dir, "%s", env);
        else snprintf(dir, sizeof dir, "%s/.cache/phiq-refs", home && *home ? home : "/tmp");
    }
    return dir;
}

static int n_unavailable;

void tu_note_unavailable(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "SKIPPED: %s\n", msg);
    n_unavailable++;
}

int tu_finish(int failed) {
    if (failed) return failed;
    if (n_unavailable) {
        fprintf(stderr, "SKIPPED: %d check(s) could not run their reference (see SKIPPED lines above)\n", n_unavailable);
        return 77;
    }
    return 0;
}

int tu_main(const char *names, const CMUnitTestFunction *fns, size_t n, CMFixtureFunction setup,
            CMFixtureFunction teardown) {
    struct CMUnitTest *tests = calloc(n, sizeof *tests);
    char *list = strdup(names), *save = NULL;
    if (!tests || !list) return 1;
    char *name = strtok_r(list, ", ", &save);
    for (size_t i = 0; i < n; i++, name = strtok_r(NULL, ", ", &save)) {
        tests[i].name = name; /* cmocka_unit_test's #f */
        tests[i].test_func = fns[i];
    }
    const int rc = tu_finish(_cmocka_run_group_tests("tests", tests, n, setup, teardown));
    free(list);
    free(tests);
    return rc;
}

/* Why tests/refs-setup.sh could not provide `name` ("" when it said
 * nothing): runs the setup first when this process comes before any
 * (a test run by hand, outside CTest's fixture). */
static const char *refs_reason(const char *name, const char *probe) {
    static char why[1024];
    char path[4200];
    snprintf(path, sizeof path, "%s/unavailable", tu_refs());
    if (access(probe, F_OK) != 0 && access(path, F_OK) != 0) {
        char cmd[8600];
        snprintf(cmd, sizeof cmd, "PHIQ_REFS='%s' PHIQ_SHARED='%s' sh '%s/tests/refs-setup.sh' >&2", tu_refs(), tu_shared(),
                 PHIQ_SOURCE_DIR);
        if (system(cmd) != 0) { /* it says why itself */ }
    }
    if (access(probe, F_OK) == 0) return NULL;
    snprintf(why, sizeof why, "%s not installed in %s (tests/refs-setup.sh)", name, tu_refs());
    FILE *f = fopen(path, "r");
    char line[1024];
    size_t nl = strlen(name);
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!strncmp(line, name, nl) && line[nl] == ':') snprintf(why, sizeof why, "%s", line);
    }
    if (f) fclose(f);
    return why;
}

const char *tu_llama_ref(void) {
    static char path[4096];
    static int tried;
    if (tried) {
        if (!path[0]) n_unavailable++; /* said once, counted each time */
        return path[0] ? path : NULL;
    }
    tried = 1;
    const char *env = getenv("PHIQ_LLAMA_REF");
    if (env && *env) {
        snprintf(path, sizeof path, "%s", env);
        return path;
    }
    char wrapper[4200];
    snprintf(wrapper, sizeof wrapper, "%s/llama-ref", tu_refs());
    const char *why = refs_reason("llama-ref", wrapper);
    if (!why && access(wrapper, X_OK) == 0) {
        snprintf(path, sizeof path, "%s", wrapper);
        return path;
    }
    tu_note_unavailable("%s", why ? why : "llama-ref is not executable");
    return NULL;
}

const char *tu_node_modules(const char *pkg) {
    static char dir[4200];
    char probe[4400];
    snprintf(dir, sizeof dir, "%s/node_modules", tu_refs());
    snprintf(probe, sizeof probe, "%s/%s/package.json", dir, pkg);
    const char *why = refs_reason(pkg, probe);
    if (!why) return dir;
    tu_note_unavailable("%s", why);
    return NULL;
}

const char *tu_llama_tool(const char *name) {
    static char path[4096];
    const char *env = getenv("PHIQ_LLAMA_TOOLS"), *dir = getenv("PHIQ_LLAMA_TOOLS_DIR"), *home = getenv("HOME");
    /* PHIQ_LLAMA_TOOLS names the bin directory; PHIQ_LLAMA_TOOLS_DIR is where
       the llama_tools fixture (tests/llama-tools-setup.sh) built them */
    if (env) snprintf(path, sizeof path, "%s/%s", env, name);
    else if (dir) snprintf(path, sizeof path, "%s/build/bin/%s", dir, name);
    else snprintf(path, sizeof path, "%s/.cache/llama-tools/build/bin/%s", home ? home : "/tmp", name);
    if (access(path, X_OK) == 0) return path;
    tu_note_unavailable("%s unavailable: build it with scripts/llama-tools.sh (looked for %s; the llama_tools CTest fixture builds it)", name, path);
    return NULL;
}

void *tu_read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = slurp_fd(f);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fclose(f);
    /* slurp_fd NUL-terminates; binary callers use *n */
    if (n) *n = sz >= 0 ? (size_t)sz : 0;
    return b;
}

uint32_t tu_rand(uint32_t *x) { return *x = *x * 1664525u + 1013904223u; }

float tu_randf(uint32_t *x) { return (float)(tu_rand(x) >> 8) / 16777216.0f; }

void tu_random_ids(int32_t *ids, int n, uint64_t seed, int hi) {
    for (int i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((seed >> 33) % (uint64_t)hi);
    }
}

double tu_max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d; /* NaN propagates as max */
    }
    return m;
}

double tu_range(const float *b, size_t n) {
    if (!n) return 0;
    double lo = b[0], hi = b[0];
    for (size_t i = 1; i < n; i++) {
        if (b[i] < lo) lo = b[i];
        if (b[i] > hi) hi = b[i];
    }
    return hi - lo;
}

int tu_have_numpy(void) { return tu_run(NULL, NULL, "/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0; }

void tu_require_numpy(void) {
    if (!tu_have_numpy()) tu_unavailable("python3 with numpy not found (scripts/deps.sh test installs python3-numpy)");
}

const char *tu_require_llama_ref(void) {
    const char *ref = tu_llama_ref();
    if (!ref) skip();
    return ref;
}

void tu_require_quantizers(void) {
    char *out = NULL;
    tu_run(&out, NULL, "'%s' convert --help", tu_bin());
    const int ok = out && strstr(out, "Q4_K_M") != NULL;
    free(out);
    if (!ok) tu_unavailable("phiq convert lists no quantized types (Q4_K_M)");
}

/* The file at path in memory (*n bytes, malloc'd), *p at the first
 * occurrence of needle; fails the test when either is missing. */
static char *read_find(const char *path, const char *needle, size_t *n, char **p) {
    char *b = tu_read_all(path, n);
    if (!b) fail_msg("%s: cannot read", path);
    *p = memmem(b, *n, needle, strlen(needle));
    if (!*p) fail_msg("%s: no '%s'", path, needle);
    return b;
}

/* Writes the n bytes at b over the file at path and frees b. */
static void write_back(const char *path, char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
    free(b);
}

void tu_patch_file(const char *path, const char *needle, size_t at, const char *repl) {
    size_t n;
    char *p, *b = read_find(path, needle, &n, &p);
    memcpy(p + at, repl, strlen(repl));
    write_back(path, b, n);
}

void tu_assert_same_logits(const char *a, const char *b) {
    const char *models[2] = {a, b};
    char out[2][4200];
    for (int i = 0; i < 2; i++) {
        char *err = NULL;
        snprintf(out[i], sizeof out[i], "%s.logits", models[i]);
        if (tu_run(NULL, &err, "'%s' logits '%s' --ids 1,450,3988,1550,338,278,9088 --all --type f32 --out '%s'",
                   tu_bin(), models[i], out[i]))
            fail_msg("logits: %s", err);
        free(err);
    }
    tu_assert_same_file(out[0], out[1]);
}

void tu_patch_gguf_scalar(const char *path, const char *key, uint32_t type, const void *val) {
    size_t n;
    char *p, *b = read_find(path, key, &n, &p);
    p += strlen(key);
    uint32_t ty;
    memcpy(&ty, p, 4);
    assert_int_equal(ty, type);
    memcpy(p + 4, val, 4);
    write_back(path, b, n);
}

int tu_parse_ids(char **p, int32_t *ids, int max) {
    char *s = *p;
    int n = 0;
    while (*s && *s != ']') {
        char *e;
        long v = strtol(s, &e, 10);
        if (e == s) {
            s++;
            continue;
        }
        if (n < max) ids[n++] = (int32_t)v;
        s = e;
    }
    *p = s;
    return n;
}

int tu_dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

void tu_assert_same_file(const char *a, const char *b) {
    size_t na, nb;
    void *da = tu_read_all(a, &na), *db = tu_read_all(b, &nb);
    if (!da || !db) fail_msg("cannot read %s or %s", a, b);
    assert_int_equal(na, nb);
    assert_true(na > 0);
    assert_memory_equal(da, db, na);
    free(da);
    free(db);
}

/* One "convert SRC to TYPE" step; fails the test with phiq's message. */
static void convert_or_fail(const char *src, const char *out, const char *type) {
    char *err = NULL;
    const int rc = tu_run(NULL, &err, "'%s' convert '%s' -o '%s' --type %s --quiet", tu_bin(), src, out, type);
    if (rc) fail_msg("phiq convert %s --type %s: %s", src, type, err ? err : "(no message)");
    free(err);
}

const char *tu_fixture_gguf(const char *type) {
    static char done[16][4096];
    static int n_done;
    char want[4096];
    snprintf(want, sizeof want, "%s/fixture-%s.gguf", tu_tmpdir(), type);
    for (int i = 0; i < n_done; i++)
        if (!strcmp(done[i], want)) return done[i];
    if (n_done == 16) fail_msg("tu_fixture_gguf: more than 16 types in one test");
    convert_or_fail(tu_shared_path("fixtures/tiny-phi3-kjv"), want, type);
    snprintf(done[n_done], 4096, "%s", want);
    return done[n_done++];
}

const char *tu_synth_gguf(const char *name, const char *synth_args, const char *type) {
    static char gguf[8][4096];
    static int k;
    char *g = gguf[k++ & 7];
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", tu_tmpdir(), name);
    snprintf(g, 4096, "%s.gguf", dir);
    char *err = NULL;
    int rc = tu_run(NULL, &err, "'%s' synth %s -q -o '%s'", tu_bin(), synth_args, dir);
    if (rc) fail_msg("synth %s: %s", synth_args, err);
    free(err);
    convert_or_fail(dir, g, type);
    return g;
}

float *tu_ref_logits(const char *script, const char *dir, const int32_t *ids, int n, int n_vocab, const char *mode,
                     const char *routes) {
    char out[4200], path[4096];
    char *ids_s = malloc((size_t)n * 12 + 1);
    ids_s[0] = 0;
    for (int i = 0, o = 0; i < n; i++) o += snprintf(ids_s + o, 13, "%s%d", i ? "," : "", ids[i]);
    snprintf(out, sizeof out, "%s.%s.%d.ref.f32", dir, mode, n);
    snprintf(path, sizeof path, "%s/tests/ref/%s", PHIQ_SOURCE_DIR, script);
    char *err = NULL;
    int rc = tu_run(NULL, &err, "/usr/bin/python3 '%s' '%s' --ids %s --out '%s' --mode %s%s%s%s", path, dir, ids_s, out,
                    mode, routes ? " --routes '" : "", routes ? routes : "", routes ? "'" : "");
    free(ids_s);
    if (rc) fail_msg("reference: %s", err);
    free(err);
    size_t nb;
    float *r = tu_read_all(out, &nb);
    assert_int_equal(nb, (size_t)n * (size_t)n_vocab * sizeof(float));
    return r;
}

float *tu_hf_reference(const char *gguf, const int32_t *ids, int n, int n_vocab, const char *mode, const char *routes) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", (int)(strlen(gguf) - 5), gguf);
    return tu_ref_logits("hf_reference.py", dir, ids, n, n_vocab, mode, routes);
}

double tu_worst_rel(const float *got, const float *want, int first, int n, int n_vocab) {
    double worst = 0;
    for (int p = first; p < n; p++) {
        const float *g = got + (size_t)(p - first) * (size_t)n_vocab, *w = want + (size_t)p * (size_t)n_vocab;
        double rel = tu_max_abs_diff(g, w, (size_t)n_vocab) / tu_range(w, (size_t)n_vocab);
        if (!(rel <= worst)) worst = rel;
    }
    return worst;
}

double tu_worst_rel_dummies(const float *got, const float *want, int first, int n, int V, int dummies) {
    double w = 0;
    for (int p = first; p < n; p++) {
        const float *g = got + (size_t)p * V, *r = want + (size_t)p * V;
        double lo = INFINITY, hi = -INFINITY, d = 0;
        int nd = 0;
        for (int i = 0; i < V; i++) {
            if (r[i] == -FLT_MAX) {
                if (g[i] != -FLT_MAX) fail_msg("position %d: dummy id %d has logit %g, want -FLT_MAX", p, i, (double)g[i]);
                nd++;
                continue;
            }
            lo = fmin(lo, r[i]);
            hi = fmax(hi, r[i]);
            d = fmax(d, fabs((double)g[i] - r[i]));
        }
        assert_int_equal(nd, dummies);
        double rel = d / (hi - lo);
        if (!(rel <= w)) w = rel;
    }
    return w;
}

void tu_refused(const char *what, const char *want, const char *out, const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char *err = NULL;
    int rc = tu_run(NULL, &err, "%s", cmd);
    const char *e = err ? err : "";
    print_message("%s: exit %d: %s", what, rc, e);
    assert_true(rc != 0);
    if (!strstr(e, want)) fail_msg("%s: the error does not mention '%s'", what, want);
    const char *nl = strchr(e, '\n');
    assert_true(nl && nl[1] == 0); /* one line */
    if (out) assert_true(access(out, F_OK) != 0);
    free(err);
}

void tu_json_line_n(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputs("\"\n", f);
}

void tu_json_line(FILE *f, const char *s) { tu_json_line_n(f, s, strlen(s)); }
