/* cmd_logits.c — `phiq logits`: evaluate token ids and write float32 logits
 * (last position, or every position with --all), row-major, little-endian;
 * the format llama-ref writes, so the two can be compared byte for byte. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/common.h"
#include "phiq.h"

static void logits_usage(FILE *f) {
    fprintf(f,
            "usage: phiq logits MODEL --ids 1,2,3 --out FILE [options]\n"
            "  MODEL               GGUF file or Hugging Face directory (also -m MODEL)\n"
            "  --ids LIST          comma-separated token ids, evaluated as one sequence\n"
            "  --out FILE          float32 logits, row-major [rows][n_vocab]\n"
            "  --all               every position (default: the last one only)\n"
            "  -t, --threads N     threads (default: physical cores)\n"
            "  -c, --ctx-size N    context size (default: max(#ids, 256 or the model's context length if\n"
            "                      shorter)); matters for --rope-mode llamacpp\n"
            "  -b, --batch N       tokens per forward chunk (default 512)\n"
            "  --kv-type f16|f32|q8_0  KV cache precision (default f16); q8_0 as llama.cpp's\n"
            "                      -ctk q8_0 -ctv q8_0 -fa on (head_dim a multiple of 32)\n"
            "  --rope-mode hf|llamacpp  LongRoPE factor rule (default hf: by sequence length;\n"
            "                      llamacpp: by context size, decided once)\n"
            "  --no-swa            ignore the model's sliding window (as llama.cpp does)\n"
            "  --swa N             use sliding window N instead of the model's\n"
            "  --llamacpp-numerics round matmul inputs to f16/bf16/q8 as llama.cpp's CPU backend\n"
            "                      does, for closer comparisons with it\n"
            "  --phimoe-llamacpp   PhiMoE: llama.cpp's graph (RMSNorm+bias, softmax top-k) instead of HF's\n"
            "  --type T            HF directories: in-memory weight type f16 (default), bf16, f32, q8_0, q4_k, ...\n"
            PHIQ_CLI_WEIGHTS_HELP);
}

static int parse_ids(const char *s, int32_t **out) {
    int cap = 64, n = 0;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids) return -1;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX) {
            free(ids);
            return -1;
        }
        if (n == cap) {
            cap *= 2;
            int32_t *t = realloc(ids, (size_t)cap * sizeof *ids);
            if (!t) {
                free(ids);
                return -1;
            }
            ids = t;
        }
        ids[n++] = (int32_t)v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    *out = ids;
    return n;
}

int phiq_cmd_logits(int argc, char **argv) {
    const char *model = NULL, *ids_s = NULL, *out = NULL, *type = NULL;
    phiq_context_params cp = phiq_context_default_params();
    int all = 0, ctx_set = 0, weights = PHIQ_WEIGHTS_AUTO;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (phiq_cli_is(a, "-h", "--help")) {
            logits_usage(stdout);
            return 0;
        } else if (phiq_cli_is(a, "-m", "--model")) model = phiq_cli_value(argc, argv, &i, "logits");
        else if (phiq_cli_is(a, "--ids", NULL)) ids_s = phiq_cli_value(argc, argv, &i, "logits");
        else if (phiq_cli_is(a, "--out", "-o")) out = phiq_cli_value(argc, argv, &i, "logits");
        else if (phiq_cli_is(a, "--all", NULL)) all = 1;
        else if (phiq_cli_is(a, "-t", "--threads")) cp.n_threads = atoi(phiq_cli_value(argc, argv, &i, "logits"));
        else if (phiq_cli_is(a, "-c", "--ctx-size")) {
            cp.n_ctx = atoi(phiq_cli_value(argc, argv, &i, "logits"));
            ctx_set = 1;
        } else if (phiq_cli_is(a, "-b", "--batch")) cp.n_batch = atoi(phiq_cli_value(argc, argv, &i, "logits"));
        else if (phiq_cli_is(a, "--kv-type", NULL)) {
            const char *v = phiq_cli_value(argc, argv, &i, "logits");
            int kt = phiq_cli_kv_type(v);
            if (kt < 0) return phiq_cli_fail("logits", "--kv-type must be f16, f32 or q8_0, not '%s'", v);
            cp.kv_type = (phiq_kv_type)kt;
        } else if (phiq_cli_is(a, "--rope-mode", NULL)) {
            const char *v = phiq_cli_value(argc, argv, &i, "logits");
            if (!strcmp(v, "hf")) cp.rope_mode = PHIQ_ROPE_MODE_HF;
            else if (!strcmp(v, "llamacpp")) cp.rope_mode = PHIQ_ROPE_MODE_LLAMACPP;
            else return phiq_cli_fail("logits", "--rope-mode must be hf or llamacpp, not '%s'", v);
        } else if (phiq_cli_is(a, "--no-swa", NULL)) cp.sliding_window = -1;
        else if (phiq_cli_is(a, "--llamacpp-numerics", NULL)) cp.llamacpp_numerics = 1;
        else if (phiq_cli_is(a, "--phimoe-llamacpp", NULL)) cp.phimoe_llamacpp = 1;
        else if (phiq_cli_is(a, "--swa", NULL)) {
            cp.sliding_window = atoi(phiq_cli_value(argc, argv, &i, "logits"));
            if (cp.sliding_window <= 0) return phiq_cli_fail("logits", "--swa needs a positive window");
        } else if (phiq_cli_is(a, "--type", NULL)) type = phiq_cli_value(argc, argv, &i, "logits");
        else if (phiq_cli_weights_flag(a, &weights)) continue;
        else if (a[0] == '-' && a[1]) {
            logits_usage(stderr);
            return phiq_cli_fail("logits", "unknown option '%s'", a);
        } else if (!model) model = a;
        else return phiq_cli_fail("logits", "unexpected argument '%s'", a);
    }
    if (!model || !ids_s || !out) {
        logits_usage(stderr);
        return 2;
    }
    if (!(model = phiq_cli_model_path("logits", model))) return 1;
    int32_t *ids = NULL;
    int n = parse_ids(ids_s, &ids);
    if (n <= 0) return phiq_cli_fail("logits", "--ids: expected comma-separated non-negative integers");
    cp.all_logits = all;
    phiq_model_params mp = {type, cp.n_threads, (phiq_weights_mode)weights};
    phiq_model *m = phiq_model_open(model, &mp);
    if (!m) {
        free(ids);
        return phiq_cli_fail("logits", "%s", phiq_error());
    }
    int rc = 1;
    if (!ctx_set) cp.n_ctx = n > phiq_cli_default_ctx(m, 256) ? n : phiq_cli_default_ctx(m, 256);
    phiq_context *ctx = phiq_context_new(m, &cp);
    phiq_outfile of;
    memset(&of, 0, sizeof of);
    if (!ctx) {
        phiq_cli_fail("logits", "%s", phiq_error());
        goto done;
    }
    if (phiq_eval(ctx, ids, n) < 0) {
        phiq_cli_fail("logits", "%s", phiq_error());
        goto done;
    }
    if (phiq_outfile_open(&of, out) < 0) {
        phiq_cli_fail("logits", "%s", phiq_error());
        goto done;
    }
    size_t nv = (size_t)phiq_model_n_vocab(m);
    for (int i = all ? 0 : n - 1; i < n; i++) {
        const float *l = all ? phiq_logits_at(ctx, i) : phiq_logits(ctx);
        if (!l || phiq_outfile_write(&of, l, nv * sizeof(float)) < 0) {
            phiq_outfile_abort(&of);
            phiq_cli_fail("logits", "%s", phiq_error());
            goto done;
        }
    }
    if (phiq_outfile_commit(&of) < 0) {
        phiq_cli_fail("logits", "%s", phiq_error());
        goto done;
    }
    rc = 0;
done:
    phiq_context_free(ctx);
    phiq_model_free(m);
    free(ids);
    return rc;
}
