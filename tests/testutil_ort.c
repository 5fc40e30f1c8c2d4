/* testutil_ort.c — onnxruntime-node runs and logit comparisons shared by the
 * ONNX tests (see testutil_ort.h). */
#include "testutil_ort.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static char g_node_path[1024]; /* NODE_PATH for onnxruntime-node */
static char g_scripts[1024];   /* tests/onnx */

/* onnxruntime-node from tests/refs-setup.sh's npm install. Returns 0 when
 * usable, else -1 after tu_note_unavailable() said why. */
int tu_ort_setup(void) {
    snprintf(g_scripts, sizeof g_scripts, "%s", __FILE__);
    char *slash = strrchr(g_scripts, '/');
    if (slash) strcpy(slash, "/onnx");
    else snprintf(g_scripts, sizeof g_scripts, "tests/onnx");
    if (tu_run(NULL, NULL, "command -v node >/dev/null 2>&1") != 0) {
        tu_note_unavailable("onnxruntime-node: node not found (scripts/deps.sh test installs nodejs)");
        return -1;
    }
    const char *nm = tu_node_modules("onnxruntime-node");
    if (!nm) return -1;
    snprintf(g_node_path, sizeof g_node_path, "%s", nm);
    char *out = NULL;
    if (tu_run(&out, NULL, "NODE_PATH='%s' node -e 'require(\"onnxruntime-node\")' 2>&1", g_node_path) != 0) {
        tu_note_unavailable("onnxruntime-node does not load in this node: %.300s", out ? out : "");
        free(out);
        return -1;
    }
    free(out);
    return 0;
}

float *tu_read_f32(const char *path, size_t *n) {
    size_t bytes = 0;
    float *p = tu_read_all(path, &bytes);
    assert_non_null(p);
    *n = bytes / 4;
    return p;
}

static void write_ids(const char *path, const int *ids, int n) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, "%s%d", i ? "," : "", ids[i]);
    fputs("]\n", f);
    fclose(f);
}

/* Runs run.js; returns logits [n, vocab] (malloc'd). */
float *tu_ort_logits(const char *model_dir, const int *ids, int n, bool step, const char *tag) {
    return tu_ort_logits_share(model_dir, ids, n, step, 0, tag);
}

float *tu_ort_logits_share(const char *model_dir, const int *ids, int n, bool step, int share, const char *tag) {
    char idsf[512], outf[512];
    snprintf(idsf, sizeof idsf, "%s", tu_tmp(tag));
    strcat(idsf, ".ids.json");
    snprintf(outf, sizeof outf, "%s", tu_tmp(tag));
    strcat(outf, ".logits.f32");
    write_ids(idsf, ids, n);
    char *err = NULL;
    int rc = tu_run(NULL, &err, "NODE_PATH='%s' node '%s/run.js' '%s' '%s' '%s' %s --share %d", g_node_path,
                    g_scripts, model_dir, idsf, outf, step ? "--step" : "", share);
    if (rc != 0) fail_msg("run.js on %s failed: %s", model_dir, err ? err : "");
    free(err);
    size_t cnt;
    float *l = tu_read_f32(outf, &cnt);
    assert_true(cnt % (size_t)n == 0);
    return l;
}

/* ---- fixture prompt ids (reference/prompts.json) ----------------------------- */

int tu_fixture_prompts(tu_prompt *p, int maxp) {
    char *txt = tu_read_all(tu_shared_path("fixtures/tiny-phi3-kjv/reference/prompts.json"), &(size_t){0});
    assert_non_null(txt);
    int np = 0;
    char *s = txt;
    while (np < maxp && (s = strstr(s, "\"ids\""))) {
        s = strchr(s, '[');
        assert_non_null(s);
        s++;
        p[np].n = tu_parse_ids(&s, p[np].ids, 512);
        np++;
    }
    free(txt);
    return np;
}

/* Held-out token windows: llama-ref (llama.cpp) tokenizes KJV chapters the
 * model never saw; without it, the fixture's longest prompt. */
int tu_heldout_ids(int *ids, int max) {
    const char *lr = getenv("PHIQ_SANITIZED") ? NULL : tu_llama_ref();
    if (lr) {
        size_t tlen = 0;
        char *txt = tu_read_all(tu_shared_path("fixtures/text/kjv-heldout.txt"), &tlen);
        int n = 0;
        size_t offs[3] = {0, tlen / 3, 2 * tlen / 3};
        for (int w = 0; w < 3 && n < max; w++) {
            size_t o = offs[w];
            while (o < tlen && txt[o] != ' ') o++;
            size_t len = tlen - o < 1400 ? tlen - o : 1400;
            char path[512];
            snprintf(path, sizeof path, "%s", tu_tmp("heldout.txt"));
            tu_write_file(path, txt + o, len);
            char *out = NULL;
            if (tu_run(&out, NULL, "'%s' tokenize '%s' \"$(cat '%s')\"", lr,
                       tu_shared_path("fixtures/vocab/ggml-vocab-phi-3.gguf"), path) == 0 && out) {
                char *s = out, *e;
                int got = 0;
                for (long v; got < 256 && n < max && (v = strtol(s, &e, 10), e != s); s = e, got++) ids[n++] = (int)v;
            }
            free(out);
        }
        free(txt);
        if (n >= 256) return n;
        fprintf(stderr, "llama-ref tokenize gave %d ids; using the fixture prompt\n", n);
    }
    tu_prompt p[4];
    int np = tu_fixture_prompts(p, 4);
    int best = 0;
    for (int i = 1; i < np; i++)
        if (p[i].n > p[best].n) best = i;
    memcpy(ids, p[best].ids, sizeof(int) * (size_t)p[best].n);
    return p[best].n;
}

/* mean KL(P_ref || P) over n positions of logits */
double tu_mean_kld(const float *l, const float *ref, int n, int vocab) {
    double sum = 0;
    for (int i = 0; i < n; i++) {
        const float *a = ref + (size_t)i * vocab, *b = l + (size_t)i * vocab;
        double ma = a[0], mb = b[0], za = 0, zb = 0;
        for (int v = 1; v < vocab; v++) {
            ma = a[v] > ma ? a[v] : ma;
            mb = b[v] > mb ? b[v] : mb;
        }
        for (int v = 0; v < vocab; v++) {
            za += exp(a[v] - ma);
            zb += exp(b[v] - mb);
        }
        double k = 0;
        for (int v = 0; v < vocab; v++) {
            double lp = a[v] - ma - log(za), lq = b[v] - mb - log(zb);
            k += exp(lp) * (lp - lq);
        }
        sum += k;
    }
    return sum / n;
}


const char *tu_ort_node_path(void) { return g_node_path; }
const char *tu_ort_scripts(void) { return g_scripts; }

const char *tu_onnx_convert(const char *name, const char *args, char **json) {
    const char *out = tu_tmp_keep(name);
    char *err = NULL, *so = NULL;
    int rc = tu_run(&so, &err, "'%s' convert '%s' -o '%s' --format onnx %s --quiet --json -t 2", tu_bin(),
                    tu_shared_path("fixtures/tiny-phi3-kjv"), out, args);
    if (rc != 0) fail_msg("phiq convert --format onnx %s failed: %s", args, err ? err : "");
    free(err);
    if (json) *json = so;
    else free(so);
    return out;
}
