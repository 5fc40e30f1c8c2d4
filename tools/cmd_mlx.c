/* cmd_mlx.c — `phiq convert SRC -o OUT_DIR --format mlx [--bits B]
 * [--group-size G] [--recipe R] [--calib TEXT]`: the MLX directory `mlx_lm.convert -q`
 * writes (library: src/convert/mlx_export.c). The convert command routes
 * `--format mlx` here. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "convert/mlx_export.h"
#include "phiq.h"

static void mlx_usage(FILE *f) {
    fprintf(f,
            "usage: phiq convert SRC_DIR -o OUT_DIR --format mlx [--bits B] [--group-size G] [--recipe R] [--calib TEXT]\n\n"
            "Writes the directory `mlx_lm.convert --hf-path SRC_DIR -q` writes, loadable by mlx_lm.load on\n"
            "Apple silicon: model.safetensors (or 5 GiB shards) + model.safetensors.index.json with MLX\n"
            "affine-quantized .weight/.scales/.biases triplets (bit for bit what mx.quantize computes on a\n"
            "Mac's GPU), config.json with \"quantization\", and the tokenizer / generation config / chat\n"
            "template files. SRC_DIR: a Hugging Face Phi-2, Phi-3/3.5, Phi-4, Phi-4-mini or Phi-3.5-MoE\n"
            "checkpoint. OUT_DIR must not exist or be empty; it appears only when complete.\n\n"
            "options:\n"
            "  -o, --output DIR      output directory (required)\n"
            "  --format mlx          (the format handled here)\n"
            "  --bits B              2, 3, 4 (default), 5, 6 or 8 (mlx_lm.convert --q-bits)\n"
            "  --group-size G        32, 64 (default) or 128 (--q-group-size)\n"
            "  --recipe R            mixed_2_6, mixed_3_4, mixed_3_6 or mixed_4_6 (--quant-predicate): high bits\n"
            "                        for lm_head and for v_proj/down_proj in the first/last eighth of the\n"
            "                        layers and every third layer between (not Phi-2)\n"
            "  -t, --threads N       quantization threads (default: physical cores); same files for any N\n"
            "  --mlx-kernel gpu|cpu  reproduce MLX's GPU kernel (default; what a Mac runs) or its CPU fallback\n"
            "  --calib TEXT          calibrated MLX quantization: GPTQ inside MLX's affine groups (each group's\n"
            "                        scale and bias refit on the error-updated weights, then error feedback\n"
            "                        through H = X^T X of TEXT's activations); same layout, loads in stock mlx-lm.\n"
            "                        Modules without a Hessian (embeddings, PhiMoE experts) stay plain\n"
            "  --calib-ctx N         calibration chunk length (default 512)\n"
            "  --calib-chunks N      calibration chunks used (default: all of TEXT)\n"
            "  --damp F              GPTQ dampening, fraction of the mean Hessian diagonal (default 0.01)\n"
            "  --calib-mem MIB       Hessians held at once (default 1024): one forward pass per layer group\n"
            "  --quiet               no progress output\n"
            "  --json                JSON summary on stdout\n"
            "  -h, --help            this help\n");
}

static int parse_int(const char *s, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < -1000000 || v > 1000000) return -1;
    *out = (int)v;
    return 0;
}

int phiq_cmd_convert_mlx(int argc, char **argv) {
    const char *cmd = "convert";
    const char *src = NULL, *out = NULL;
    phiq_mlx_opts o = {0};
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (phiq_cli_is(a, "-h", "--help")) {
            mlx_usage(stdout);
            return 0;
        } else if (phiq_cli_is(a, "-o", "--output") || !strcmp(a, "--outfile")) {
            out = phiq_cli_value(argc, argv, &i, cmd);
        } else if (!strcmp(a, "--format")) {
            const char *v = phiq_cli_value(argc, argv, &i, cmd);
            if (strcmp(v, "mlx")) return phiq_cli_fail(cmd, "--format %s: this path writes mlx", v);
        } else if (phiq_cli_is(a, "--bits", "--q-bits")) {
            const char *v = phiq_cli_value(argc, argv, &i, cmd);
            if (parse_int(v, &o.bits) || !phiq_mlx_bits_ok(o.bits))
                return phiq_cli_fail(cmd, "--bits %s: MLX quantizes to 2, 3, 4, 5, 6 or 8 bits", v);
        } else if (phiq_cli_is(a, "--group-size", "--q-group-size")) {
            const char *v = phiq_cli_value(argc, argv, &i, cmd);
            if (parse_int(v, &o.group_size) || !phiq_mlx_group_ok(o.group_size))
                return phiq_cli_fail(cmd, "--group-size %s: MLX's group sizes are 32, 64 and 128", v);
        } else if (phiq_cli_is(a, "--recipe", "--quant-predicate")) {
            o.recipe = phiq_cli_value(argc, argv, &i, cmd);
        } else if (!strcmp(a, "--mlx-kernel")) {
            const char *v = phiq_cli_value(argc, argv, &i, cmd);
            if (!strcmp(v, "gpu")) o.kernel = PHIQ_MLX_GPU;
            else if (!strcmp(v, "cpu")) o.kernel = PHIQ_MLX_CPU;
            else return phiq_cli_fail(cmd, "--mlx-kernel %s: expected gpu or cpu", v);
        } else if (!strcmp(a, "--calib")) {
            o.calib = phiq_cli_value(argc, argv, &i, cmd);
        } else if (!strcmp(a, "--calib-ctx") || !strcmp(a, "--calib-chunks")) {
            const char *v = phiq_cli_value(argc, argv, &i, cmd);
            int n;
            if (parse_int(v, &n) || n < 1) return phiq_cli_fail(cmd, "%s %s: expected a positive integer", a, v);
            if (!strcmp(a, "--calib-ctx")) o.calib_ctx = n;
            else o.calib_chunks = n;
        } else if (!strcmp(a, "--damp")) {
            const char *v = phiq_cli_value(argc, argv, &i, cmd);
            o.damp = (float)atof(v);
            if (!(o.damp > 0 && o.damp < 10)) return phiq_cli_fail(cmd, "--damp: expected a number in (0, 10), got '%s'", v);
        } else if (!strcmp(a, "--calib-mem")) {
            const char *v = phiq_cli_value(argc, argv, &i, cmd);
            int mb;
            if (parse_int(v, &mb) || mb < 1) return phiq_cli_fail(cmd, "--calib-mem: expected a positive number of MiB, got '%s'", v);
            o.calib_mem = (uint64_t)mb << 20;
        } else if (phiq_cli_is(a, "-q", "--quiet")) {
            o.quiet = 1;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (phiq_cli_is(a, "-t", "--threads")) {
            const char *v = phiq_cli_value(argc, argv, &i, cmd);
            if (parse_int(v, &o.n_threads) || o.n_threads < 1 || o.n_threads > 1024)
                return phiq_cli_fail(cmd, "-t %s: expected a positive integer", v);
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "phiq convert: unknown option '%s' for --format mlx (see phiq convert --format mlx --help)\n", a);
            return 2;
        } else if (!src) {
            src = a;
        } else {
            fprintf(stderr, "phiq convert: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!src || !out) {
        fprintf(stderr, "phiq convert: need SRC_DIR and -o OUT_DIR (see phiq convert --format mlx --help)\n");
        return 2;
    }
    if (!(src = phiq_cli_model_path(cmd, src))) return 1;
    phiq_mlx_stats st;
    if (phiq_mlx_export(src, out, &o, &st) < 0) return phiq_cli_fail(cmd, "%s", phiq_error());
    double bpw = st.n_parameters ? 8.0 * (double)st.total_size / (double)st.n_parameters : 0;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "output", out);
        cJSON_AddStringToObject(j, "format", "mlx");
        cJSON_AddStringToObject(j, "arch", st.arch);
        cJSON_AddNumberToObject(j, "bits", o.bits ? o.bits : 4);
        cJSON_AddNumberToObject(j, "group_size", o.group_size ? o.group_size : 64);
        if (o.recipe) cJSON_AddStringToObject(j, "recipe", o.recipe);
        cJSON_AddNumberToObject(j, "tensors", st.n_tensors);
        cJSON_AddNumberToObject(j, "quantized_modules", st.n_quantized);
        cJSON_AddNumberToObject(j, "shards", st.n_shards);
        cJSON_AddNumberToObject(j, "parameters", (double)st.n_parameters);
        cJSON_AddNumberToObject(j, "tensor_bytes", (double)st.total_size);
        cJSON_AddNumberToObject(j, "bits_per_weight", bpw);
        cJSON_AddNumberToObject(j, "seconds", st.seconds);
        if (o.calib)
            phiq_cli_json_calib(j, "gptq_modules", st.n_gptq, st.calib_passes, st.calib_tokens, st.calib_seconds, 0);
        phiq_cli_json_out(j, 0);
    } else if (!o.quiet) {
        printf("wrote %s: MLX %s, %d-bit g%d%s%s, %d tensors (%d modules quantized), %d shard(s), %.2fM parameters, "
               "%.1f MB, %.3f bits/weight, %.1fs\n",
               out, st.arch, o.bits ? o.bits : 4, o.group_size ? o.group_size : 64, o.recipe ? " " : "",
               o.recipe ? o.recipe : "", st.n_tensors, st.n_quantized, st.n_shards, (double)st.n_parameters / 1e6,
               (double)st.total_size / 1e6, bpw, st.seconds);
        if (o.calib)
            printf("calibration: %d modules by GPTQ, %d forward passes of %lld tokens (%.1fs)\n", st.n_gptq,
                   st.calib_passes, (long long)st.calib_tokens, st.calib_seconds);
    }
    return 0;
}
