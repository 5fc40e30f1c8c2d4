/* cmd_onnx.c — `phiq convert SRC -o OUT_DIR --format onnx ...`: exports a
 * Hugging Face Phi checkpoint as an ONNX Runtime GenAI model directory.
 * phiq_cmd_convert_onnx takes the same arguments as `phiq convert`; the
 * convert command routes `--format onnx` here (also reachable directly as
 * the hidden `phiq convert-onnx`). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "cli.h"
#include "eval/eval.h"
#include "onnx/onnx_export.h"
#include "phiq.h"

static void onnx_usage(FILE *f) {
    fprintf(f,
            "usage: phiq convert SRC_DIR -o OUT_DIR --format onnx [options]\n\n"
            "Writes OUT_DIR/model.onnx, model.onnx.data, genai_config.json and the tokenizer files:\n"
            "the CPU decoder ONNX Runtime GenAI builds (MatMulNBits, GroupQueryAttention with rotary,\n"
            "SkipSimplifiedLayerNormalization). SRC_DIR is a Hugging Face Phi3ForCausalLM checkpoint\n"
            "(Phi-3/3.5-mini, Phi-4, Phi-4-mini). OUT_DIR must not exist or be empty.\n\n"
            "options:\n"
            "  -o, --output DIR         output directory (required)\n"
            "  --format onnx            (the only format handled here)\n"
            "  --type T                 int4 (default), int8, fp16, fp32\n"
            "  --block-size N           MatMulNBits block size, power of two 16..256 (default 32)\n"
            "  --group-size N           the same (NNCF / optimum-cli's name)\n"
            "  --sym | --asym           symmetric (default, no zero points) or asymmetric quantization\n"
            "  --ratio R                NNCF's int4/int8 mix (optimum-cli export openvino --ratio), 0 <= R <= 1:\n"
            "                           the layer matmuls are ranked as NNCF ranks them without data (largest\n"
            "                           per-channel int8 error first; with --calib by activation-weighted int4\n"
            "                           error) and given int4 (group = block size, NNCF's rounding and signed sym\n"
            "                           scale; GPTQ with --calib) while their int4 share of parameters stays below\n"
            "                           R; the others, the embedding and lm_head get the backup precision.\n"
            "                           The Phi Cookbook's OpenVINO recipe: --ratio 0.6 --group-size 128 --sym\n"
            "  --sensitivity-metric M   --ratio's ranking: weight_quantization_error (NNCF's data-free default) or\n"
            "                           activation_weighted_error (needs --calib; its default there)\n"
            "  --backup-precision P     int8_asym (default: per-channel, uint8 zero point), int8_sym, or none\n"
            "                           (keep float32) for what --ratio leaves out of int4\n"
            "  --accuracy-level N       MatMulNBits accuracy_level 0..4 (default 4: int8 activations;\n"
            "                           0/1: float path, slower but closer to fp32)\n"
            "  --max-length N           genai_config search.max_length (default min(context, 4096))\n"
            "  -t, --threads N          quantization threads (default: physical cores)\n"
            "  --calib TEXT             calibrated int4/int8: GPTQ inside the MatMulNBits blocks (each block's scale\n"
            "                           and zero point chosen on the error-updated weights, error feedback through\n"
            "                           H = X^T X of TEXT's activations); same graph and layout, loads in stock\n"
            "                           onnxruntime. --calib-ctx N (512), --calib-chunks N (all), --damp F (0.01),\n"
            "                           --calib-mem MIB (1024) as for GGUF\n"
            "  --json                   print a JSON summary on stdout\n"
            "  --quiet                  no progress output\n"
            "  -h, --help               this help\n");
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

int phiq_cmd_convert_onnx(int argc, char **argv) {
    const char *cmd = "convert";
    const char *src = NULL, *out = NULL;
    phiq_onnx_options o;
    phiq_onnx_options_default(&o);
    bool backup_set = false, json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (phiq_cli_is(a, "-h", "--help")) {
            onnx_usage(stdout);
            return 0;
        } else if (phiq_cli_is(a, "-o", "--output")) {
            out = phiq_cli_value(argc, argv, &i, cmd);
        } else if (phiq_cli_is(a, "--format", NULL)) {
            const char *v = phiq_cli_value(argc, argv, &i, cmd);
            if (strcmp(v, "onnx")) return phiq_cli_fail(cmd, "this path only writes --format onnx, not '%s'", v);
        } else if (phiq_cli_is(a, "--type", "--outtype")) {
            const char *v = phiq_cli_value(argc, argv, &i, cmd);
            int t = phiq_onnx_type_parse(v);
            if (t < 0) return phiq_cli_fail(cmd, "--type %s: ONNX export supports int4, int8, fp16, fp32", v);
            o.type = (phiq_onnx_type)t;
        } else if (phiq_cli_is(a, "--block-size", "--group-size")) {
            const char *v = phiq_cli_value(argc, argv, &i, cmd);
            if (parse_int(v, 16, 256, &o.block_size) || (o.block_size & (o.block_size - 1)))
                return phiq_cli_fail(cmd, "%s %s: must be a power of two in 16..256", a, v);
        } else if (phiq_cli_is(a, "--ratio", NULL)) {
            const char *v = phiq_cli_value(argc, argv, &i, cmd);
            char *end;
            double r = strtod(v, &end);
            if (!*v || *end || !(r >= 0.0 && r <= 1.0))
                return phiq_cli_fail(cmd, "--ratio %s: must be a number in [0, 1]", v);
            o.mixed = true;
            o.ratio = r;
        } else if (phiq_cli_is(a, "--backup-precision", NULL)) {
            const char *v = phiq_cli_value(argc, argv, &i, cmd);
            int b = phiq_onnx_backup_parse(v);
            if (b < 0) return phiq_cli_fail(cmd, "--backup-precision %s: expected int8_asym, int8_sym or none", v);
            o.backup = (phiq_onnx_backup)b;
            backup_set = true;
        } else if (phiq_cli_is(a, "--sensitivity-metric", NULL)) {
            const char *v = phiq_cli_value(argc, argv, &i, cmd);
            if (!strcmp(v, "weight_quantization_error")) o.sensitivity = 1;
            else if (!strcmp(v, "activation_weighted_error")) o.sensitivity = 2;
            else
                return phiq_cli_fail(cmd, "--sensitivity-metric %s: expected weight_quantization_error or "
                                          "activation_weighted_error", v);
        } else if (phiq_cli_is(a, "--json", NULL)) {
            json = true;
        } else if (phiq_cli_is(a, "--sym", NULL)) {
            o.asym = false;
        } else if (phiq_cli_is(a, "--asym", NULL)) {
            o.asym = true;
        } else if (phiq_cli_is(a, "--accuracy-level", NULL)) {
            const char *v = phiq_cli_value(argc, argv, &i, cmd);
            if (parse_int(v, 0, 4, &o.accuracy_level))
                return phiq_cli_fail(cmd, "--accuracy-level %s: must be 0..4", v);
        } else if (phiq_cli_is(a, "--max-length", NULL)) {
            const char *v = phiq_cli_value(argc, argv, &i, cmd);
            if (parse_int(v, 1, 1 << 30, &o.max_length))
                return phiq_cli_fail(cmd, "--max-length %s: must be a positive integer", v);
        } else if (phiq_cli_is(a, "-t", "--threads")) {
            const char *v = phiq_cli_value(argc, argv, &i, cmd);
            if (parse_int(v, 1, 64, &o.n_threads)) return phiq_cli_fail(cmd, "-t %s: must be 1..64", v);
        } else if (phiq_cli_is(a, "--quiet", "-q")) {
            o.quiet = true;
        } else if (!strcmp(a, "--calib")) {
            o.calib = phiq_cli_value(argc, argv, &i, cmd);
        } else if (!strcmp(a, "--calib-ctx") || !strcmp(a, "--calib-chunks") || !strcmp(a, "--calib-mem")) {
            const char *v = phiq_cli_value(argc, argv, &i, cmd);
            int n;
            if (parse_int(v, 1, 1 << 30, &n)) return phiq_cli_fail(cmd, "%s %s: expected a positive integer", a, v);
            if (!strcmp(a, "--calib-ctx")) o.calib_ctx = n;
            else if (!strcmp(a, "--calib-chunks")) o.calib_chunks = n;
            else o.calib_mem = (uint64_t)n << 20;
        } else if (!strcmp(a, "--damp")) {
            const char *v = phiq_cli_value(argc, argv, &i, cmd);
            o.damp = (float)atof(v);
            if (!(o.damp > 0 && o.damp < 10)) return phiq_cli_fail(cmd, "--damp: expected a number in (0, 10), got '%s'", v);
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "phiq %s: unknown option '%s'\n", cmd, a);
            onnx_usage(stderr);
            return 2;
        } else if (!src) {
            src = a;
        } else {
            return phiq_cli_fail(cmd, "unexpected argument '%s'", a);
        }
    }
    if (!src || !out) {
        onnx_usage(stderr);
        return 2;
    }
    if (backup_set && !o.mixed) return phiq_cli_fail(cmd, "--backup-precision applies to --ratio only");
    if (o.mixed && o.type != PHIQ_ONNX_INT4) return phiq_cli_fail(cmd, "--ratio mixes int4 with a backup precision: it needs --type int4");
    if (!(src = phiq_cli_model_path(cmd, src))) return 1;
    phiq_onnx_stats st;
    if (phiq_onnx_export_ex(src, out, &o, &st) != 0) return phiq_cli_fail(cmd, "%s", phiq_error());
    if (json) {
        static const char *tn[] = {"fp32", "fp16", "int8", "int4"};
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "output", out);
        cJSON_AddStringToObject(j, "type", tn[o.type]);
        cJSON_AddNumberToObject(j, "block_size", o.block_size);
        cJSON_AddBoolToObject(j, "sym", !o.asym);
        cJSON_AddNumberToObject(j, "model_bytes", (double)st.model_bytes);
        if (o.mixed) {
            static const char *bk[] = {"int8_asym", "int8_sym", "none"};
            cJSON_AddNumberToObject(j, "ratio", o.ratio);
            cJSON_AddStringToObject(j, "backup_precision", bk[o.backup]);
            cJSON_AddNumberToObject(j, "int4_weights", st.n_int4);
            cJSON_AddNumberToObject(j, "ratio_defining_weights", st.n_ratio_defining);
            cJSON_AddNumberToObject(j, "int4_params", (double)st.params_int4);
            cJSON_AddNumberToObject(j, "ratio_defining_params", (double)st.params_ratio_defining);
        }
        if (o.calib)
            phiq_cli_json_calib(j, "gptq_weights", st.n_gptq, st.calib_passes, st.calib_tokens, st.calib_seconds, 1);
        phiq_cli_json_out(j, 1);
    }
    if (!o.quiet) {
        fprintf(stderr, "phiq convert: wrote %s (model.onnx, model.onnx.data, genai_config.json)\n", out);
        if (o.calib)
            fprintf(stderr, "calibration: %d weights by GPTQ, %d forward passes of %lld tokens (%.1fs)\n", st.n_gptq,
                    st.calib_passes, (long long)st.calib_tokens, st.calib_seconds);
    }
    return 0;
}
