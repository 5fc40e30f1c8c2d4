/* cmd_onnx.c — `phiq convert SRC -o OUT_DIR --format onnx ...`: exports a
 * Hugging Face Phi checkpoint as an ONNX Runtime GenAI model directory.
 * phiq_cmd_convert_onnx takes the same arguments as `phiq convert`; the
 * convert command routes `--format onnx` here (also reachable directly as
 * the hidden `phiq convert-onnx`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
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
            "  --sym | --asym           symmetric (default, no zero points) or asymmetric quantization\n"
            "  --accuracy-level N       MatMulNBits accuracy_level 0..4 (default 4: int8 activations;\n"
            "                           0/1: float path, slower but closer to fp32)\n"
            "  --max-length N           genai_config search.max_length (default min(context, 4096))\n"
            "  -t, --threads N          quantization threads (default: physical cores)\n"
            "  --calib TEXT             calibrated int4/int8: GPTQ inside the MatMulNBits blocks (each block's scale\n"
            "                           and zero point chosen on the error-updated weights, error feedback through\n"
            "                           H = X^T X of TEXT's activations); same graph and layout, loads in stock\n"
            "                           onnxruntime. --calib-ctx N (512), --calib-chunks N (all), --damp F (0.01),\n"
            "                           --calib-mem MIB (1024) as for GGUF\n"
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
        } else if (phiq_cli_is(a, "--block-size", NULL)) {
            const char *v = phiq_cli_value(argc, argv, &i, cmd);
            if (parse_int(v, 16, 256, &o.block_size) || (o.block_size & (o.block_size - 1)))
                return phiq_cli_fail(cmd, "--block-size %s: must be a power of two in 16..256", v);
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
    if (!(src = phiq_cli_model_path(cmd, src))) return 1;
    phiq_onnx_stats st;
    if (phiq_onnx_export_ex(src, out, &o, &st) != 0) return phiq_cli_fail(cmd, "%s", phiq_error());
    if (!o.quiet) {
        fprintf(stderr, "phiq convert: wrote %s (model.onnx, model.onnx.data, genai_config.json)\n", out);
        if (o.calib)
            fprintf(stderr, "calibration: %d weights by GPTQ, %d forward passes of %lld tokens (%.1fs)\n", st.n_gptq,
                    st.calib_passes, (long long)st.calib_tokens, st.calib_seconds);
    }
    return 0;
}
