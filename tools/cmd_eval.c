/* cmd_eval.c — `phiq eval` (perplexity, KL divergence), `phiq bench` (speed,
 * bandwidth, memory) and `phiq report` (every precision side by side). */
#define _GNU_SOURCE
#include <cJSON.h>
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "core/common.h"
#include "eval/eval.h"
#include "formats/ggml_type.h"
#include "formats/gguf.h"
#include "phiq.h"
#include "quant/mix.h"

extern char **environ;

/* ---- shared helpers ----------------------------------------------------------- */
static int32_t *read_ids_file(const char *path, int64_t *n) {
    char *txt;
    if (phiq_read_file(path, &txt, NULL) < 0) return NULL;
    int64_t cap = 1024, k = 0;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    for (char *p = txt; ids && *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) {
            if (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r' || *p == ',') { p++; continue; }
            free(ids); free(txt);
            return phiq_fail_null(PHIQ_EFORMAT, "%s: not a list of token ids (at byte %ld)", path, (long)(p - txt));
        }
        if (k == cap) ids = realloc(ids, sizeof(int32_t) * (size_t)(cap *= 2));
        if (ids) ids[k++] = (int32_t)v;
        p = end;
    }
    free(txt);
    *n = k;
    return ids;
}

static int32_t *tokenize_file(const phiq_model *m, const char *path, int64_t *n) {
    char *txt;
    size_t len;
    if (phiq_read_file(path, &txt, &len) < 0) return NULL;
    int cap = (int)(len + 16);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    int k = ids ? phiq_tokenize(m, txt, ids, cap, PHIQ_TOKENIZE_ADD_BOS) : PHIQ_ENOMEM;
    free(txt);
    if (k < 0) { free(ids); phiq_error_prefix("%s", path); return NULL; }
    if (k > cap) { free(ids); return phiq_fail_null(PHIQ_EINVAL, "%s: more tokens than bytes", path); }
    *n = k;
    return ids;
}

/* Bytes of weights one decoded token reads: every matrix once, except the
 * embedding table (one row gathered) unless it doubles as the output. */
static uint64_t weight_bytes_per_token(const char *path, uint64_t *all_bytes, double *bpw) {
    phiq_gguf *g = phiq_gguf_open(path);
    if (!g) return 0;
    uint64_t bytes = 0, total = 0;
    double elems = 0;
    int tied = phiq_gguf_find_tensor(g, "output.weight") == NULL;
    for (int64_t i = 0; i < phiq_gguf_n_tensors(g); i++) {
        const phiq_gguf_tensor *t = phiq_gguf_tensor_at(g, i);
        total += t->nbytes;
        elems += (double)t->ne[0] * (double)t->ne[1] * (double)t->ne[2] * (double)t->ne[3];
        if (!strcmp(t->name, "token_embd.weight") && !tied) bytes += t->nbytes / (uint64_t)(t->ne[1] > 0 ? t->ne[1] : 1);
        else bytes += t->nbytes;
    }
    if (all_bytes) *all_bytes = total;
    if (bpw) *bpw = elems > 0 ? (double)total * 8.0 / elems : 0;
    phiq_gguf_close(g);
    return bytes;
}

/* ---- eval ----------------------------------------------------------------------- */
static void eval_usage(FILE *f) {
    fprintf(f, "usage: phiq eval MODEL (--text FILE | --ids FILE) [--ref REF_MODEL] [--ctx N] [--chunks N] [-t N] [--json] [--quiet]\n\n"
               "Perplexity with llama.cpp's conventions: the text is tokenized once and cut into non-overlapping\n"
               "chunks of --ctx tokens (default 512); each chunk's first token becomes BOS when the model adds BOS;\n"
               "only the second half of each chunk is scored. With --ref, also the KL divergence of MODEL's\n"
               "next-token distributions from REF's (mean, median, p90, p99, p99.9, max), top-1 agreement, and\n"
               "the perplexity difference.\n\n"
               "  --text FILE    text to evaluate (tokenized with MODEL's tokenizer)\n"
               "  --ids FILE     token ids instead of text (whitespace or comma separated)\n"
               "  --ref MODEL    reference model (same vocabulary), e.g. the f32 or f16 conversion\n"
               "  --type T       directories (HF or MLX): in-memory weight type, f16 (default), f32, bf16, q8_0, ...\n"
               "  --ctx N        chunk length (default 512, or the model's context length if shorter)\n"
               "  --chunks N     evaluate at most N chunks (default: all)\n"
               "  -t, --threads N  threads (default: physical cores)\n"
               "  --json         one JSON object on stdout\n"
               "  --quiet        no progress\n");
}

int phiq_cmd_eval(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *idsf = NULL, *refp = NULL, *type = NULL;
    phiq_ppl_opts o = {.n_ctx = 0, .bos_id = -1}; /* 0: 512, or the model's context if shorter */
    int json = 0, ret;
    const phiq_cli_pass_opts po = {&model, &text, &o.n_ctx, &o.max_chunks, &o.n_threads, &json, &o.quiet, eval_usage};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--ids")) idsf = phiq_cli_value(argc, argv, &i, "eval");
        else if (!strcmp(a, "--ref")) refp = phiq_cli_value(argc, argv, &i, "eval");
        else if (!strcmp(a, "--type")) type = phiq_cli_value(argc, argv, &i, "eval");
        else if ((ret = phiq_cli_pass_arg(argc, argv, &i, "eval", &po)) >= 0) return ret;
    }
    if (!model || (!text && !idsf)) { eval_usage(stderr); return 2; }
    if (!(model = phiq_cli_model_path("eval", model))) return 1;
    if (refp && !(refp = phiq_cli_model_path("eval", refp))) return 1;
    /* --type: the in-memory weight type of directories (HF, MLX) */
    phiq_model_params mp = {.type = type};
    phiq_model *m = phiq_model_open(model, type ? &mp : NULL);
    if (!m) return phiq_cli_fail("eval", "%s", phiq_error());
    phiq_model *r = NULL;
    if (refp && !(r = phiq_model_open(refp, type ? &mp : NULL))) { phiq_model_free(m); return phiq_cli_fail("eval", "%s", phiq_error()); }
    int64_t n = 0;
    int32_t *ids = idsf ? read_ids_file(idsf, &n) : tokenize_file(m, text, &n);
    if (!ids) { phiq_model_free(m); phiq_model_free(r); return phiq_cli_fail("eval", "%s", phiq_error()); }
    o.bos_id = phiq_model_bos(m);
    phiq_ppl_result res;
    int rc = phiq_eval_perplexity(m, r, ids, n, &o, &res);
    if (!o.n_ctx) o.n_ctx = phiq_cli_default_ctx(m, 512); /* what the library used, for the report */
    free(ids);
    phiq_model_free(m);
    phiq_model_free(r);
    if (rc < 0) return phiq_cli_fail("eval", "%s", phiq_error());
    if (json) {
        printf("{\"model\": \"%s\", \"ctx\": %d, \"chunks\": %d, \"tokens_scored\": %lld, \"ppl\": %.6f, \"ppl_err\": %.6f",
               model, o.n_ctx, res.n_chunks, (long long)res.n_scored, res.ppl, res.ppl_err);
        if (res.has_ref)
            printf(", \"ref_ppl\": %.6f, \"delta_ppl\": %.6f, \"kld_mean\": %.8f, \"kld_err\": %.8f, \"kld_median\": %.8f, "
                   "\"kld_p90\": %.8f, \"kld_p99\": %.8f, \"kld_p999\": %.8f, \"kld_max\": %.8f, \"top1\": %.6f",
                   res.ref_ppl, res.delta_ppl, res.kld_mean, res.kld_err, res.kld_median, res.kld_p90, res.kld_p99,
                   res.kld_p999, res.kld_max, res.top1);
        printf("}\n");
    } else {
        printf("chunks %d x %d tokens, %lld scored\n", res.n_chunks, o.n_ctx, (long long)res.n_scored);
        printf("PPL = %.4f +/- %.4f\n", res.ppl, res.ppl_err);
        if (res.has_ref) {
            printf("reference PPL = %.4f, delta = %+.4f\n", res.ref_ppl, res.delta_ppl);
            printf("KLD mean %.6f +/- %.6f, median %.6f, p90 %.6f, p99 %.6f, p99.9 %.6f, max %.6f\n", res.kld_mean,
                   res.kld_err, res.kld_median, res.kld_p90, res.kld_p99, res.kld_p999, res.kld_max);
            printf("same top-1: %.2f%%\n", 100 * res.top1);
        }
    }
    return 0;
}

/* ---- bench ------------------------------------------------------------------------ */
static void bench_usage(FILE *f) {
    fprintf(f, "usage: phiq bench MODEL [options]\n\n"
               "Prefill tokens/s (one batch of --prompt random ids) and decode tokens/s (--gen single tokens), each after\n"
               "--depth cached tokens: medians of --reps runs after a warm-up. Also the weight bytes read per decoded\n"
               "token and the resulting GB/s, peak RSS and load time.\n"
               "  -t, --threads N       threads (default: physical cores)\n"
               "  -p, --prompt N        prefill batch (default 128, shrunk to fit the model's context)\n"
               "  -n, --gen N           decoded tokens (default 32, shrunk to fit the model's context)\n"
               "  -r, --reps N          repetitions, median reported (default 3)\n"
               "  -d, --depth N         prefill and decode on top of N cached tokens (filled once, untimed; as\n"
               "                        llama-bench -d; the model's context must hold N + max(prompt, gen) + 1)\n"
               "  --kv-type T           KV cache type: f16 (default), f32 or q8_0\n"
               "  --probe               also measure this machine's read bandwidth (the best of plain reads and the\n"
               "                        kernels' widest loads with and without their software prefetch, 1 GiB on\n"
               "                        huge pages, the bench's thread count) and show decode as a fraction of it\n"
               PHIQ_CLI_WEIGHTS_HELP
               "  --profile             then one more decode run that times each matmul shape (GB/s of its weights,\n"
               "                        how busy the threads were in its kernels), attention and the rest, per token\n"
               "  --json                one JSON object on stdout\n"
               "  --quiet               no per-run lines on stderr\n");
}

int phiq_cmd_bench(int argc, char **argv) {
    const char *model = NULL;
    phiq_bench_opts o = {0};
    int json = 0, probe = 0, weights = PHIQ_WEIGHTS_AUTO;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (phiq_cli_is(a, "-h", "--help")) { bench_usage(stdout); return 0; }
        else if (phiq_cli_weights_flag(a, &weights)) continue;
        else if (phiq_cli_is(a, "-t", "--threads")) o.n_threads = atoi(phiq_cli_value(argc, argv, &i, "bench"));
        else if (phiq_cli_is(a, "--prompt", "-p")) o.n_prompt = atoi(phiq_cli_value(argc, argv, &i, "bench"));
        else if (phiq_cli_is(a, "--gen", "-n")) o.n_gen = atoi(phiq_cli_value(argc, argv, &i, "bench"));
        else if (phiq_cli_is(a, "--reps", "-r")) o.reps = atoi(phiq_cli_value(argc, argv, &i, "bench"));
        else if (phiq_cli_is(a, "-d", "--depth")) o.n_depth = atoi(phiq_cli_value(argc, argv, &i, "bench"));
        else if (phiq_cli_is(a, "--kv-type", NULL)) {
            const char *v = phiq_cli_value(argc, argv, &i, "bench");
            if ((o.kv_type = phiq_cli_kv_type(v)) < 0) return phiq_cli_fail("bench", "--kv-type must be f16, f32 or q8_0, not '%s'", v);
        } else if (!strcmp(a, "--probe")) probe = 1;
        else if (!strcmp(a, "--profile")) o.profile = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--quiet")) o.quiet = 1;
        else if (a[0] == '-') { fprintf(stderr, "phiq bench: unknown option %s\n", a); bench_usage(stderr); return 2; }
        else if (!model) model = a;
        else { fprintf(stderr, "phiq bench: unexpected argument %s\n", a); return 2; }
    }
    if (!model) { bench_usage(stderr); return 2; }
    if (!(model = phiq_cli_model_path("bench", model))) return 1;
    if (json) o.quiet = 1;
    double t0 = phiq_now();
    phiq_model_params mp = {NULL, o.n_threads, (phiq_weights_mode)weights};
    phiq_model *m = phiq_model_open(model, &mp);
    if (!m) return phiq_cli_fail("bench", "%s", phiq_error());
    double load_s = phiq_now() - t0;
    const char *held = phiq_model_weights_mode(m) == PHIQ_WEIGHTS_COPY ? "copied" : "mapped";
    phiq_bench_result r;
    int rc = phiq_bench_run(m, &o, &r);
    phiq_model_free(m);
    if (rc < 0) return phiq_cli_fail("bench", "%s", phiq_error());
    uint64_t per_tok = phiq_gguf_sniff(model) ? weight_bytes_per_token(model, NULL, NULL) : 0;
    double gbs = (double)per_tok * r.decode_tok_s / 1e9;
    double bw = probe ? phiq_bench_read_bandwidth(o.n_threads) : 0;
    uint64_t rss = phiq_peak_rss();
    int threads = o.n_threads > 0 ? o.n_threads : phiq_physical_cores();
    if (json) {
        printf("{\"model\": \"%s\", \"threads\": %d, \"depth\": %d, \"prefill_tok_s\": %.3f, \"decode_tok_s\": %.3f, "
               "\"weight_bytes_per_token\": %llu, \"decode_gb_s\": %.3f, \"peak_rss_bytes\": %llu, \"load_s\": %.3f, "
               "\"weights\": \"%s\"",
               model, threads, o.n_depth > 0 ? o.n_depth : 0, r.prefill_tok_s, r.decode_tok_s, (unsigned long long)per_tok, gbs,
               (unsigned long long)rss, load_s, held);
        if (probe) printf(", \"read_bandwidth_gb_s\": %.3f, \"decode_bandwidth_fraction\": %.4f", bw, bw > 0 ? gbs / bw : 0);
        if (o.profile) phiq_bench_profile_print(&r, bw, 1);
        printf("}\n");
    } else {
        printf("model %s, %d threads, load %.2fs (weights %s)\n", model, threads, load_s, held);
        printf("prefill %.2f tok/s, decode %.2f tok/s (medians of %d%s)\n", r.prefill_tok_s, r.decode_tok_s, r.reps,
               o.n_depth > 0 ? ", on top of the --depth cache" : "");
        if (per_tok) printf("weights read per decoded token %.1f MB -> %.2f GB/s\n", per_tok / 1e6, gbs);
        if (probe) printf("machine read bandwidth %.2f GB/s: decode reaches %.0f%% of it\n", bw, bw > 0 ? 100 * gbs / bw : 0);
        printf("peak RSS %.1f MB\n", rss / 1e6);
        if (o.profile) phiq_bench_profile_print(&r, bw, 0);
    }
    return 0;
}

/* ---- report ----------------------------------------------------------------------------- */
static void report_usage(FILE *f) {
    fprintf(f, "usage: phiq report SRC [--formats gguf,mlx] [--types LIST] [--mlx-bits LIST] [--mlx-group G]\n"
               "                   [--text FILE] [--calib TEXT] [-o DIR] [--ctx N] [--chunks N] [-t N]\n"
               "                   [--prompt N] [--gen N] [--reps N] [--json] [--quiet]\n\n"
               "Converts SRC (an HF checkpoint directory or an F32/F16/BF16 GGUF) to each type, evaluates each\n"
               "against the highest-precision one (perplexity, KL divergence, top-1 agreement), benches each, and\n"
               "writes DIR/report.json, DIR/report.md and a self-contained DIR/report.html (table and SVG charts:\n"
               "size vs KL divergence and size vs decode speed, Pareto front marked). Converted files are reused\n"
               "while SRC is unchanged.\n\n"
               "  --formats LIST gguf (default) and/or mlx; onnx is refused (phiq cannot evaluate ONNX models)\n"
               "  --types LIST   GGUF rows: comma-separated types (default fp32,fp16,int8,int4); any `phiq convert --type` name\n"
               "  --mlx-bits LIST  MLX rows (SRC an HF directory): bits per row (default 4,8), affine, group --mlx-group\n"
               "                 (default 64); evaluated through phiq's reader (dequantized to f16 in memory), so the\n"
               "                 speed columns are this CPU's, not a Mac's\n"
               "  --text FILE    evaluation text (default ../shared/fixtures/text/kjv-heldout.txt when present)\n"
               "  --calib TEXT   beside each quantized GGUF type T, two calibrated rows: T+calib (GPTQ, the same\n"
               "                 per-tensor types: convert --type T --calib TEXT) and T-mix (types chosen by measured\n"
               "                 sensitivity, no larger than T's file: convert --target-size T --calib TEXT); TEXT\n"
               "                 must not be the evaluation text\n"
               "  -o DIR         output directory (default phiq-report)\n"
               "  --ctx N        perplexity chunk length (default 256, or the model's context length if shorter)\n"
               "  --chunks N     at most N chunks per evaluation (default 8)\n"
               "  --prompt N, --gen N, --reps N   bench settings (defaults 64, 32, 3)\n"
               "  --json         print report.json to stdout instead of the table\n");
}

/* A signature of the source: size and mtime of every file in it. */
static void source_signature(const char *src, char *out, size_t cap) {
    struct stat st;
    unsigned long long h = 1469598103934665603ull;
    if (stat(src, &st) == 0 && S_ISDIR(st.st_mode)) {
        DIR *d = opendir(src);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            char *p = phiq_path_join(src, e->d_name);
            struct stat fs;
            if (p && stat(p, &fs) == 0 && S_ISREG(fs.st_mode)) {
                unsigned long long v = (unsigned long long)fs.st_size * 1000003ull ^ (unsigned long long)fs.st_mtime;
                for (const char *c = e->d_name; *c; c++) v = v * 31 + (unsigned char)*c;
                h += v * 0x9E3779B97F4A7C15ull; /* order-independent */
            }
            free(p);
        }
        if (d) closedir(d);
    } else if (stat(src, &st) == 0) {
        h ^= (unsigned long long)st.st_size * 1000003ull ^ (unsigned long long)st.st_mtime;
    }
    snprintf(out, cap, "%s %016llx\n", src, h);
}

/* Report rows: round-to-nearest as llama-quantize, calibrated (--calib: GPTQ
 * at the same per-tensor types), or a mix at the preset's size (--target-size). */
enum { ROW_RTN, ROW_CALIB, ROW_MIX };

/* runs `phiq convert SRC -o OUT` with the GGUF --type (kind ROW_*, calibrated
 * on calib) or the MLX settings */
static int run_convert(const char *src, const char *out, const char *type, int kind, const char *calib, int mlx_bits,
                       int mlx_group, int threads) {
    char tbuf[16], bbuf[16], gbuf[16];
    snprintf(tbuf, sizeof tbuf, "%d", threads);
    snprintf(bbuf, sizeof bbuf, "%d", mlx_bits);
    snprintf(gbuf, sizeof gbuf, "%d", mlx_group);
    /* convert's per-tensor lines would drown the report's own progress */
    char *gguf[] = {"phiq", "convert", (char *)src, "-o", (char *)out, "--type", (char *)type, "-t", tbuf, "--quiet", NULL, NULL, NULL};
    if (kind == ROW_MIX) gguf[5] = "--target-size";
    if (kind != ROW_RTN) gguf[10] = "--calib", gguf[11] = (char *)calib;
    char *mlx[] = {"phiq", "convert", (char *)src, "-o", (char *)out, "--format", "mlx", "--bits", bbuf,
                   "--group-size", gbuf, "--quiet", NULL};
    pid_t pid;
    if (posix_spawn(&pid, "/proc/self/exe", NULL, NULL, mlx_bits ? mlx : gguf, environ) != 0)
        return phiq_fail(PHIQ_EIO, "report: cannot run phiq convert: %s", strerror(errno));
    int st;
    if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return phiq_fail(PHIQ_EIO, "report: phiq convert %s to %s failed", src, mlx_bits ? "MLX" : type);
    return 0;
}

/* bits per weight and tensor bytes of an MLX directory, from its index */
static int mlx_size(const char *dir, double *bpw, uint64_t *bytes) {
    char *p = phiq_path_join(dir, "model.safetensors.index.json"), *txt = NULL;
    int rc = p ? phiq_read_file(p, &txt, NULL) : PHIQ_ENOMEM;
    free(p);
    if (rc) return rc;
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "metadata");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(m, "total_size"), *tp = cJSON_GetObjectItemCaseSensitive(m, "total_parameters");
    rc = cJSON_IsNumber(ts) && cJSON_IsNumber(tp) && tp->valuedouble > 0 ? 0 : phiq_fail(PHIQ_EFORMAT, "%s: bad index", dir);
    if (!rc) {
        *bytes = (uint64_t)ts->valuedouble;
        *bpw = 8.0 * ts->valuedouble / tp->valuedouble;
    }
    cJSON_Delete(j);
    return rc;
}

int phiq_cmd_report(int argc, char **argv) {
    const char *src = NULL, *types = "fp32,fp16,int8,int4", *text = NULL, *dir = "phiq-report";
    const char *formats = "gguf", *mlx_bits = "4,8", *calib = NULL;
    int mlx_group = 64;
    int json = 0, quiet = 0, threads = 0, ctx = 0, chunks = 8; /* ctx 0: 256, or the model's if shorter */
    phiq_bench_opts bo = {.n_prompt = 0, .n_gen = 0, .reps = 3}; /* 0: 64 / 32, fitted to the model */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (phiq_cli_is(a, "-h", "--help")) { report_usage(stdout); return 0; }
        else if (!strcmp(a, "--types")) types = phiq_cli_value(argc, argv, &i, "report");
        else if (!strcmp(a, "--formats")) formats = phiq_cli_value(argc, argv, &i, "report");
        else if (!strcmp(a, "--mlx-bits")) mlx_bits = phiq_cli_value(argc, argv, &i, "report");
        else if (!strcmp(a, "--mlx-group")) mlx_group = atoi(phiq_cli_value(argc, argv, &i, "report"));
        else if (phiq_cli_is(a, "--text", "-f")) text = phiq_cli_value(argc, argv, &i, "report");
        else if (!strcmp(a, "--calib")) calib = phiq_cli_value(argc, argv, &i, "report");
        else if (phiq_cli_is(a, "-o", "--out")) dir = phiq_cli_value(argc, argv, &i, "report");
        else if (phiq_cli_is(a, "--ctx", "-c")) ctx = atoi(phiq_cli_value(argc, argv, &i, "report"));
        else if (!strcmp(a, "--chunks")) chunks = atoi(phiq_cli_value(argc, argv, &i, "report"));
        else if (phiq_cli_is(a, "-t", "--threads")) threads = atoi(phiq_cli_value(argc, argv, &i, "report"));
        else if (!strcmp(a, "--prompt")) bo.n_prompt = atoi(phiq_cli_value(argc, argv, &i, "report"));
        else if (!strcmp(a, "--gen")) bo.n_gen = atoi(phiq_cli_value(argc, argv, &i, "report"));
        else if (!strcmp(a, "--reps")) bo.reps = atoi(phiq_cli_value(argc, argv, &i, "report"));
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (a[0] == '-') { fprintf(stderr, "phiq report: unknown option %s\n", a); report_usage(stderr); return 2; }
        else if (!src) src = a;
        else { fprintf(stderr, "phiq report: unexpected argument %s\n", a); return 2; }
    }
    if (!src) { report_usage(stderr); return 2; }
    if (!(src = phiq_cli_model_path("report", src))) return 1;
    if (!text) {
        static const char *cands[] = {"../shared/fixtures/text/kjv-heldout.txt", NULL};
        const char *env = getenv("PHIQ_SHARED");
        static char buf[4096];
        if (env) { snprintf(buf, sizeof buf, "%s/fixtures/text/kjv-heldout.txt", env); if (phiq_file_exists(buf)) text = buf; }
        for (int i = 0; !text && cands[i]; i++) if (phiq_file_exists(cands[i])) text = cands[i];
        if (!text) return phiq_cli_fail("report", "no --text given and no default evaluation text found");
    }
    if (calib) {
        /* the protocol: calibrate on one text, evaluate on another */
        char *a = realpath(calib, NULL), *b = realpath(text, NULL);
        const int same = a && b && !strcmp(a, b);
        free(a), free(b);
        if (!phiq_file_exists(calib)) return phiq_cli_fail("report", "--calib %s: no such file", calib);
        if (same) return phiq_cli_fail("report", "--calib and --text are the same file: calibrate on one text, evaluate on another");
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return phiq_cli_fail("report", "%s: cannot create: %s", dir, strerror(errno));
    if (threads <= 0) threads = phiq_physical_cores();
    bo.n_threads = threads;
    bo.quiet = 1;

    /* rows: the GGUF types, then the MLX bit widths */
    bool want_gguf = false, want_mlx = false;
    {
        char *fl = strdup(formats);
        for (char *tok = fl ? strtok(fl, ",") : NULL; tok; tok = strtok(NULL, ",")) {
            if (!strcmp(tok, "gguf")) want_gguf = true;
            else if (!strcmp(tok, "mlx")) want_mlx = true;
            else if (!strcmp(tok, "onnx")) { free(fl); return phiq_cli_fail("report", "--formats onnx: phiq cannot evaluate ONNX models (no ONNX reader); measure them with onnxruntime"); }
            else { free(fl); return phiq_cli_fail("report", "--formats: unknown format '%s' (gguf, mlx)", tok); }
        }
        free(fl);
    }
    if (want_mlx && !phiq_dir_exists(src)) return phiq_cli_fail("report", "--formats mlx: SRC must be a Hugging Face directory");
    if (want_mlx && mlx_group != 32 && mlx_group != 64 && mlx_group != 128)
        return phiq_cli_fail("report", "--mlx-group %d: MLX's group sizes are 32, 64 and 128", mlx_group);
    char *tl = strdup(types), *ml = strdup(mlx_bits);
    char *names[32], mlx_names[32][32], cal_names[32][40];
    const char *base_of[32];
    int bits_of[32] = {0}, kind_of[32] = {0};
    int n = 0;
    for (char *tok = want_gguf && tl ? strtok(tl, ",") : NULL; tok && n < 32; tok = strtok(NULL, ",")) {
        base_of[n] = tok;
        names[n++] = tok;
    }
    /* --calib: beside each quantized GGUF type, its calibrated file and the mix at its size */
    for (int i = 0, n0 = n; calib && i < n0; i++) {
        phiq_mix mx;
        if (phiq_mix_parse(names[i], &mx) < 0) continue; /* convert will say what is wrong */
        const bool quantized = phiq_ggml_type_is_quantized(mx.default_type);
        phiq_mix_free(&mx);
        for (int k = ROW_CALIB; quantized && k <= ROW_MIX && n < 32; k++) {
            snprintf(cal_names[n], sizeof cal_names[n], "%s%s", names[i], k == ROW_CALIB ? "+calib" : "-mix");
            base_of[n] = names[i];
            kind_of[n] = k;
            names[n] = cal_names[n];
            n++;
        }
    }
    for (char *tok = want_mlx && ml ? strtok(ml, ",") : NULL; tok && n < 32; tok = strtok(NULL, ",")) {
        int b = atoi(tok);
        if (b != 2 && b != 3 && b != 4 && b != 5 && b != 6 && b != 8) {
            free(tl); free(ml);
            return phiq_cli_fail("report", "--mlx-bits: %s is not 2, 3, 4, 5, 6 or 8", tok);
        }
        snprintf(mlx_names[n], sizeof mlx_names[n], "mlx-%dbit-g%d", b, mlx_group);
        names[n] = mlx_names[n];
        base_of[n] = names[n];
        bits_of[n++] = b;
    }
    if (!n) { free(tl); free(ml); return phiq_cli_fail("report", "no rows: --formats/--types/--mlx-bits are empty"); }

    char sig[4200];
    source_signature(src, sig, sizeof sig);
    char **paths = calloc((size_t)n, sizeof(char *));
    phiq_report_row *rows = calloc((size_t)n, sizeof *rows);
    int rc = 0, ref = 0;
    for (int i = 0; i < n && !rc; i++) {
        char name[64];
        snprintf(name, sizeof name, bits_of[i] ? "model-%s" : "model-%s.gguf", names[i]);
        paths[i] = phiq_path_join(dir, name);
        char stamp[4200];
        snprintf(stamp, sizeof stamp, "%s.source", paths[i]);
        char *old = NULL, rsig[8600];
        snprintf(rsig, sizeof rsig, "%s", sig);
        if (kind_of[i] != ROW_RTN) source_signature(calib, rsig + strlen(rsig), sizeof rsig - strlen(rsig));
        int there = bits_of[i] ? phiq_dir_exists(paths[i]) : phiq_file_exists(paths[i]);
        int fresh = there && phiq_read_file(stamp, &old, NULL) == 0 && !strcmp(old, rsig);
        free(old);
        if (!fresh) {
            if (!quiet) fprintf(stderr, "report: converting %s to %s\n", src, names[i]);
            if (bits_of[i] && there) phiq_rmdir_flat(paths[i]); /* the export writes a new directory */
            if ((rc = run_convert(src, paths[i], base_of[i], kind_of[i], calib, bits_of[i], mlx_group, threads)) < 0) break;
            FILE *f = fopen(stamp, "w");
            if (f) { fputs(rsig, f); fclose(f); }
        } else if (!quiet) {
            fprintf(stderr, "report: reusing %s (source unchanged)\n", paths[i]);
        }
        snprintf(rows[i].type, sizeof rows[i].type, "%s", names[i]);
        struct stat st;
        if (bits_of[i]) {
            if ((rc = mlx_size(paths[i], &rows[i].bpw, &rows[i].size_bytes)) < 0) break;
        } else {
            weight_bytes_per_token(paths[i], NULL, &rows[i].bpw);
            rows[i].size_bytes = stat(paths[i], &st) == 0 ? (uint64_t)st.st_size : 0;
        }
        if (rows[i].bpw > rows[ref].bpw) ref = i;
    }
    if (!rc) {
        /* the highest precision is the reference: put it first */
        if (ref) {
            phiq_report_row tr = rows[0]; rows[0] = rows[ref]; rows[ref] = tr;
            char *tp = paths[0]; paths[0] = paths[ref]; paths[ref] = tp;
        }
        phiq_model *rm = phiq_model_open(paths[0], NULL);
        if (!rm) rc = PHIQ_EIO;
        if (rm && !ctx) ctx = phiq_cli_default_ctx(rm, 256);
        if (rm && !bo.n_prompt && !bo.n_gen) {
            bo.n_gen = phiq_cli_default_ctx(rm, 32 * 4) / 4;
            bo.n_prompt = phiq_cli_default_ctx(rm, 64 + bo.n_gen + 1) - bo.n_gen - 1;
            if (bo.n_gen < 1) bo.n_gen = 1;
            if (bo.n_prompt < 1) bo.n_prompt = 1;
        }
        int64_t nids = 0;
        int32_t *ids = rm ? tokenize_file(rm, text, &nids) : NULL;
        if (rm && !ids) rc = PHIQ_EINVAL;
        for (int i = 0; i < n && !rc; i++) {
            phiq_model *m = i == 0 ? rm : phiq_model_open(paths[i], NULL);
            if (!m) { rc = PHIQ_EIO; break; }
            phiq_ppl_opts po = {.n_ctx = ctx, .n_threads = threads, .max_chunks = chunks, .bos_id = phiq_model_bos(m), .quiet = 1};
            phiq_ppl_result pr;
            if (!quiet) fprintf(stderr, "report: evaluating %s\n", rows[i].type);
            rc = phiq_eval_perplexity(m, rm, ids, nids, &po, &pr);
            if (!rc) {
                rows[i].ppl = pr.ppl;
                rows[i].kld_mean = pr.kld_mean;
                rows[i].kld_p99 = pr.kld_p99;
                rows[i].kld_err = pr.kld_err;
                rows[i].top1 = pr.top1;
                phiq_bench_result br;
                if (!quiet) fprintf(stderr, "report: benchmarking %s\n", rows[i].type);
                rc = phiq_bench_run(m, &bo, &br);
                rows[i].prefill_tok_s = br.prefill_tok_s;
                rows[i].decode_tok_s = br.decode_tok_s;
            }
            if (i) phiq_model_free(m);
        }
        free(ids);
        phiq_model_free(rm);
    }
    if (!rc) {
        const char *base = strrchr(src, '/');
        char mname[512];
        snprintf(mname, sizeof mname, "%s", base && base[1] ? base + 1 : src);
        char cpu[256];
        phiq_report_cpu_name(cpu, sizeof cpu);
        phiq_report_meta meta = {.cpu = cpu, .threads = threads, .text = text, .calib = calib};
        rc = phiq_report_write_meta(dir, mname, rows, n, &meta);
    }
    if (!rc) {
        if (json) {
            char *p = phiq_path_join(dir, "report.json"), *txt;
            if (phiq_read_file(p, &txt, NULL) == 0) { fputs(txt, stdout); free(txt); }
            free(p);
        } else {
            char *t = phiq_report_table(rows, n);
            printf("%s", t ? t : "");
            free(t);
            char cpu[256];
            phiq_report_cpu_name(cpu, sizeof cpu);
            phiq_report_meta meta = {.cpu = cpu, .threads = threads, .text = text, .calib = calib};
            char *adv = phiq_report_advice(rows, n, &meta);
            printf("\n%s", adv ? adv : "");
            free(adv);
            printf("\nreport: %s/report.html (also report.md, report.json)\n", dir);
        }
    }
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
    free(rows);
    free(tl);
    free(ml);
    if (rc < 0) return phiq_cli_fail("report", "%s", phiq_error());
    return 0;
}
