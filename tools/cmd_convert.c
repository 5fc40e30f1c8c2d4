/* cmd_convert.c — `phiq convert SRC -o OUT.gguf --type T`: HF checkpoint or
 * F32/F16/BF16 GGUF → GGUF (library: src/convert/convert.c). */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eval/eval.h"
#include "convert/budget.h"
#include "convert/convert.h"
#include "core/common.h"
#include "formats/ggml_type.h"
#include "phiq.h"

/* `--format onnx` is handled by tools/cmd_onnx.c (ONNX Runtime GenAI export);
 * weak so that this file links in builds without it. */
int phiq_cmd_convert_onnx(int argc, char **argv) __attribute__((weak));

static void help(FILE *f) {
    fprintf(f,
            "usage: phiq convert SRC -o OUT.gguf [--type T] [options]\n"
            "\n"
            "Converts a Hugging Face Phi checkpoint directory (Phi3ForCausalLM, PhiForCausalLM,\n"
            "PhiMoEForCausalLM; safetensors, sharded or not) or an F32/F16/BF16 GGUF file into a GGUF\n"
            "file that llama.cpp loads, with the same metadata, tensor names, tokenizer and per-tensor\n"
            "types as llama.cpp's convert_hf_to_gguf.py followed by llama-quantize. Streams one tensor\n"
            "at a time: peak memory is about the largest output tensor.\n"
            "\n"
            "  SRC                     HF directory (config.json, *.safetensors, tokenizer.json) or .gguf\n"
            "  -o, --outfile FILE      output GGUF (written to a temporary file, renamed on success)\n"
            "  --type, --outtype T     output type (default f16): %s\n"
            "  -t, --threads N         worker threads (default: physical cores); output is identical for any N\n"
            "  --pure                  no mix: every quantizable tensor gets T (output/token_embd included)\n"
            "  --output-type T         type of output.weight (token_embd.weight when tied), e.g. q6_k, f16\n"
            "  --embedding-type T      type of token_embd.weight\n"
            "  --tensor-type RE=T      type of tensors whose name matches the extended regex RE\n"
            "                          (repeatable; first match wins; overrides the two options above)\n"
            "  --allow-requantize      accept an already-quantized GGUF input (dequantized, then requantized)\n"
            "  --imatrix FILE          importance matrix from llama-imatrix (GGUF or legacy .dat), as llama-quantize\n"
            "  --calib TEXT            calibrated quantization: GPTQ inside the same ggml blocks (scales from the\n"
            "                          imatrix-weighted search on error-updated weights, then error feedback\n"
            "                          through H = X^T X of TEXT's activations); same types and file layout,\n"
            "                          loads in stock llama.cpp. Without it output is byte-identical to llama-quantize\n"
            "  --calib-ctx N           calibration chunk length (default 512)\n"
            "  --calib-chunks N        calibration chunks used (default: all of TEXT)\n"
            "  --damp F                GPTQ dampening, fraction of the mean Hessian diagonal (default 0.01)\n"
            "  --calib-mem MIB         Hessians held at once (default 1024): layers are calibrated in groups that\n"
            "                          fit, one forward pass over TEXT per group\n"
            "  --target-bpw B          mixed precision at a size budget (needs --calib): every weight tensor\n"
            "                          (token_embd and output included) gets the llama.cpp type that minimises\n"
            "                          the KL divergence while all tensor data stays <= B * weights / 8 bytes;\n"
            "                          sensitivities (KLD increase of each tensor alone at each type) are\n"
            "                          measured on a slice held out of the end of the --calib text, then an\n"
            "                          exact knapsack picks the mix; each tensor is quantized by GPTQ at its type\n"
            "  --target-size PRESET    the same, budget = the tensor data of llama-quantize's PRESET file of SRC\n"
            "                          (e.g. Q4_0, Q4_K_M, Q3_K_M): the output is no larger than that file\n"
            "  --bpw-types LIST        candidate types (default %s)\n"
            "  --select-ctx N          selection chunk length (default 256)\n"
            "  --select-chunks N       selection chunks held out of the end of the --calib text (default 4)\n"
            "  --name NAME             general.name (default: the source directory's name)\n"
            "  --format gguf|onnx|mlx  output format (default gguf; see phiq convert --format onnx|mlx --help)\n"
            "  --quiet                 no progress bar and no summary line\n"
            "  --json                  print a JSON summary on stdout\n"
            "  -h, --help              this help\n"
            "\n"
            "1-D tensors, norms and rope factors are always F32. Errors are one line on stderr, exit status 1,\n"
            "and leave no output file.\n",
            phiq_convert_type_names(), PHIQ_BUDGET_DEFAULT_TYPES);
}

int phiq_cmd_convert(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--format")) continue;
        if (!strcmp(argv[i + 1], "onnx")) {
            if (phiq_cmd_convert_onnx) return phiq_cmd_convert_onnx(argc, argv);
            return phiq_cli_fail("convert", "--format onnx: ONNX export is not part of this build");
        }
        if (!strcmp(argv[i + 1], "mlx")) return phiq_cmd_convert_mlx(argc, argv);
        if (strcmp(argv[i + 1], "gguf")) return phiq_cli_fail("convert", "--format %s: expected gguf, onnx or mlx", argv[i + 1]);
    }
    const char *src = NULL, *dst = NULL;
    phiq_convert_opts o = {0}; /* type NULL: f16 */
    int json = 0;
    const char **tt = calloc((size_t)argc + 1, sizeof *tt);
    if (!tt) return phiq_cli_fail("convert", "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (phiq_cli_is(a, "-h", "--help")) {
            help(stdout);
            free(tt);
            return 0;
        } else if (phiq_cli_is(a, "-o", "--outfile") || !strcmp(a, "--output")) {
            dst = phiq_cli_value(argc, argv, &i, "convert");
        } else if (phiq_cli_is(a, "--type", "--outtype")) {
            o.type = phiq_cli_value(argc, argv, &i, "convert");
        } else if (phiq_cli_is(a, "-t", "--threads")) {
            const char *v = phiq_cli_value(argc, argv, &i, "convert");
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 1024) {
                free(tt);
                fprintf(stderr, "phiq convert: -t: expected a positive integer, got '%s'\n", v);
                return 2;
            }
            o.n_threads = (int)n;
        } else if (!strcmp(a, "--pure")) {
            o.pure = 1;
        } else if (phiq_cli_is(a, "--output-type", "--output-tensor-type")) {
            o.output_type = phiq_cli_value(argc, argv, &i, "convert");
        } else if (phiq_cli_is(a, "--embedding-type", "--token-embedding-type")) {
            o.embedding_type = phiq_cli_value(argc, argv, &i, "convert");
        } else if (!strcmp(a, "--tensor-type")) {
            tt[o.n_tensor_types++] = phiq_cli_value(argc, argv, &i, "convert");
        } else if (!strcmp(a, "--allow-requantize")) {
            o.allow_requantize = 1;
        } else if (!strcmp(a, "--imatrix")) {
            o.imatrix = phiq_cli_value(argc, argv, &i, "convert");
        } else if (!strcmp(a, "--calib")) {
            o.calib = phiq_cli_value(argc, argv, &i, "convert");
        } else if (!strcmp(a, "--calib-ctx")) {
            o.calib_ctx = atoi(phiq_cli_value(argc, argv, &i, "convert"));
        } else if (!strcmp(a, "--calib-chunks")) {
            o.calib_chunks = atoi(phiq_cli_value(argc, argv, &i, "convert"));
        } else if (!strcmp(a, "--damp")) {
            o.damp = (float)atof(phiq_cli_value(argc, argv, &i, "convert"));
            if (!(o.damp > 0 && o.damp < 10)) {
                free(tt);
                return phiq_cli_fail("convert", "--damp: expected a number in (0, 10), got '%s'", argv[i]);
            }
        } else if (!strcmp(a, "--calib-mem")) {
            long mb = atol(phiq_cli_value(argc, argv, &i, "convert"));
            if (mb <= 0) {
                free(tt);
                return phiq_cli_fail("convert", "--calib-mem: expected a positive number of MiB, got '%s'", argv[i]);
            }
            o.calib_mem = (uint64_t)mb << 20;
        } else if (!strcmp(a, "--target-bpw")) {
            const char *v = phiq_cli_value(argc, argv, &i, "convert");
            char *end;
            o.target_bpw = strtod(v, &end);
            if (*end || !(o.target_bpw > 0 && o.target_bpw < 64)) {
                free(tt);
                return phiq_cli_fail("convert", "--target-bpw: expected bits per weight in (0, 64), got '%s'", v);
            }
        } else if (!strcmp(a, "--target-size")) {
            o.target_size = phiq_cli_value(argc, argv, &i, "convert");
        } else if (!strcmp(a, "--bpw-types")) {
            o.bpw_types = phiq_cli_value(argc, argv, &i, "convert");
        } else if (!strcmp(a, "--select-ctx") || !strcmp(a, "--select-chunks")) {
            const char *v = phiq_cli_value(argc, argv, &i, "convert");
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 1 << 20) {
                free(tt);
                return phiq_cli_fail("convert", "%s: expected a positive integer, got '%s'", a, v);
            }
            if (!strcmp(a, "--select-ctx")) o.select_ctx = (int)n;
            else o.select_chunks = (int)n;
        } else if (!strcmp(a, "--format")) {
            i++; /* gguf (onnx was routed above) */
        } else if (!strcmp(a, "--name")) {
            o.name = phiq_cli_value(argc, argv, &i, "convert");
        } else if (phiq_cli_is(a, "-q", "--quiet")) {
            o.quiet = 1;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (a[0] == '-' && a[1]) {
            free(tt);
            fprintf(stderr, "phiq convert: unknown option '%s' (see phiq convert --help)\n", a);
            return 2;
        } else if (!src) {
            src = a;
        } else {
            free(tt);
            fprintf(stderr, "phiq convert: unexpected argument '%s' (see phiq convert --help)\n", a);
            return 2;
        }
    }
    o.tensor_types = tt;
    if (!src || !dst) {
        free(tt);
        fprintf(stderr, "phiq convert: need SRC and -o OUT.gguf (see phiq convert --help)\n");
        return 2;
    }
    const char *arg = src;
    if (!(src = phiq_cli_model_path("convert", src))) { free(tt); return 1; }
    /* a Hub snapshot directory is named by its commit: name the model after the repo */
    static char repo_name[128];
    if (src != arg && !o.name && strchr(arg, '/')) {
        snprintf(repo_name, sizeof repo_name, "%.*s", (int)strcspn(strchr(arg, '/') + 1, ":"), strchr(arg, '/') + 1);
        o.name = repo_name;
    }
    phiq_convert_stats st;
    const double t_start = phiq_now();
    int rc = phiq_convert(src, dst, &o, &st);
    const double t_total = phiq_now() - t_start;
    free(tt);
    if (rc < 0) {
        phiq_convert_stats_free(&st);
        return phiq_cli_fail("convert", "%s", phiq_error());
    }
    const int budget = o.target_bpw > 0 || o.target_size;
    double bpw = st.n_elements ? 8.0 * (double)st.data_bytes / (double)st.n_elements : 0;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "output", dst);
        cJSON_AddStringToObject(j, "arch", st.arch);
        cJSON_AddStringToObject(j, "type", st.ftype);
        cJSON_AddNumberToObject(j, "tensors", (double)st.n_tensors);
        cJSON_AddNumberToObject(j, "elements", (double)st.n_elements);
        cJSON_AddNumberToObject(j, "tensor_bytes", (double)st.data_bytes);
        cJSON_AddNumberToObject(j, "file_bytes", (double)st.file_bytes);
        cJSON_AddNumberToObject(j, "bits_per_weight", bpw);
        cJSON_AddNumberToObject(j, "seconds", st.seconds);
        if (o.calib)
            phiq_cli_json_calib(j, "gptq_tensors", st.n_gptq, st.calib_passes, st.calib_tokens, st.calib_seconds, 1);
        if (budget) {
            if (o.target_bpw > 0) cJSON_AddNumberToObject(j, "target_bpw", o.target_bpw);
            else cJSON_AddStringToObject(j, "target_size", o.target_size);
            cJSON_AddNumberToObject(j, "budget_bytes", (double)st.budget_bytes);
            cJSON_AddNumberToObject(j, "min_bytes", (double)st.min_bytes);
            cJSON_AddNumberToObject(j, "predicted_kld", st.predicted_kld);
            cJSON_AddNumberToObject(j, "selection_kld", st.select_kld);
            cJSON_AddNumberToObject(j, "selection_passes", st.select_evals);
            cJSON_AddNumberToObject(j, "selection_positions", (double)st.select_positions);
            cJSON_AddNumberToObject(j, "selection_seconds", st.select_seconds);
            cJSON_AddNumberToObject(j, "total_seconds", t_total);
            cJSON *arr = cJSON_AddArrayToObject(j, "tensor_types");
            for (int k = 0; arr && k < st.n_choices; k++) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "name", st.choices[k].name);
                cJSON_AddStringToObject(e, "type", phiq_ggml_type_name(st.choices[k].type));
                cJSON_AddNumberToObject(e, "bytes", (double)st.choices[k].bytes);
                cJSON_AddNumberToObject(e, "dkld", st.choices[k].dkld);
                cJSON_AddItemToArray(arr, e);
            }
        }
        phiq_cli_json_out(j, 0);
    } else if (!o.quiet) {
        printf("wrote %s: %s %s, %lld tensors, %.2fM weights, %.1f MB, %.3f bits/weight, %.1fs\n", dst, st.arch,
               st.ftype, (long long)st.n_tensors, (double)st.n_elements / 1e6, (double)st.file_bytes / 1e6, bpw,
               st.seconds);
        if (o.calib)
            printf("calibration: %d tensors by GPTQ, %d forward passes of %lld tokens (%.1fs), peak RSS %.0f MiB\n",
                   st.n_gptq, st.calib_passes, (long long)st.calib_tokens, st.calib_seconds,
                   (double)phiq_peak_rss() / 1048576.0);
        if (budget) {
            printf("budget: %.3f MB of tensor data (smallest mix %.3f MB); %d passes over %lld held-out positions "
                   "(%.1fs); KLD on the selection slice: predicted %.5f, measured %.5f; total %.1fs, peak RSS %.0f MiB\n",
                   (double)st.budget_bytes / 1e6, (double)st.min_bytes / 1e6, st.select_evals,
                   (long long)st.select_positions, st.select_seconds, st.predicted_kld, st.select_kld, t_total,
                   (double)phiq_peak_rss() / 1048576.0);
            for (int k = 0; k < st.n_choices; k++)
                printf("  %-28s %-7s %10llu bytes  dKLD %.6f\n", st.choices[k].name, phiq_ggml_type_name(st.choices[k].type),
                       (unsigned long long)st.choices[k].bytes, st.choices[k].dkld);
        }
    }
    phiq_convert_stats_free(&st);
    return 0;
}
