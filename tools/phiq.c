/* phiq.c — the command-line front end: dispatches to tools/cmd_*.c. */
#include <cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eval/eval.h"
#include "phiq.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"convert", phiq_cmd_convert, "convert an HF checkpoint or GGUF to GGUF (f32/f16/bf16/Q4_K_M/int4/...), ONNX or MLX"},
    {"inspect", phiq_cmd_inspect, "show architecture, hyper-parameters and tensors of a GGUF, safetensors or HF dir"},
    {"synth", phiq_cmd_synth, "write a random-weight HF checkpoint of any Phi shape"},
    {"run", phiq_cmd_run, "generate text from a prompt"},
    {"chat", phiq_cmd_chat, "interactive multi-turn chat"},
    {"serve", phiq_cmd_serve, "OpenAI-compatible HTTP server with continuous batching and a chat page"},
    {"template", phiq_cmd_template, "print the prompt a conversation becomes (the chat template, run as Jinja)"},
    {"tokenize", phiq_cmd_tokenize, "print the token ids of a text"},
    {"logits", phiq_cmd_logits, "write float32 logits for token ids"},
    {"eval", phiq_cmd_eval, "perplexity and KL divergence on a text"},
    {"imatrix", phiq_cmd_imatrix, "importance matrix of a text (llama-imatrix's GGUF format)"},
    {"bench", phiq_cmd_bench, "prefill/decode speed, bandwidth, memory"},
    {"convert-onnx", phiq_cmd_convert_onnx, "(temporary) convert --format onnx: HF checkpoint -> ONNX Runtime GenAI"},
    {"pull", phiq_cmd_pull, "download a model from the Hugging Face Hub into the huggingface_hub cache"},
    {"report", phiq_cmd_report, "convert to several precisions, evaluate, bench, and chart the trade-off"},
};

int phiq_cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "phiq %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

int phiq_cli_is(const char *arg, const char *a, const char *b) {
    return (a && strcmp(arg, a) == 0) || (b && strcmp(arg, b) == 0);
}

int phiq_cli_weights_flag(const char *arg, int *mode) {
    if (!strcmp(arg, "--mmap")) *mode = PHIQ_WEIGHTS_MMAP;
    else if (!strcmp(arg, "--no-mmap")) *mode = PHIQ_WEIGHTS_COPY;
    else return 0;
    return 1;
}

const char *phiq_cli_value(int argc, char **argv, int *i, const char *cmd) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "phiq %s: %s needs a value (see phiq %s --help)\n", cmd, argv[*i], cmd);
        exit(2);
    }
    return argv[++*i];
}

int phiq_cli_default_ctx(const phiq_model *m, int want) {
    int train = phiq_model_n_ctx_train(m);
    return train > 0 && train < want ? train : want;
}

int phiq_cli_kv_type(const char *s) {
    if (!strcmp(s, "f16")) return PHIQ_KV_TYPE_F16;
    if (!strcmp(s, "f32")) return PHIQ_KV_TYPE_F32;
    if (!strcmp(s, "q8_0")) return PHIQ_KV_TYPE_Q8_0;
    return -1;
}

void phiq_cli_json_out(cJSON *j, int compact) {
    char *txt = compact ? cJSON_PrintUnformatted(j) : cJSON_Print(j);
    if (txt) puts(txt);
    free(txt);
    cJSON_Delete(j);
}

void phiq_cli_json_calib(cJSON *j, const char *gptq_key, int n_gptq, int passes, int64_t tokens, double seconds,
                         int rss) {
    cJSON_AddNumberToObject(j, gptq_key, n_gptq);
    cJSON_AddNumberToObject(j, "calib_passes", passes);
    cJSON_AddNumberToObject(j, "calib_tokens", (double)tokens);
    cJSON_AddNumberToObject(j, "calib_forward_seconds", seconds);
    if (rss) cJSON_AddNumberToObject(j, "peak_rss_bytes", (double)phiq_peak_rss());
}

static void usage(FILE *f) {
    fprintf(f, "phiq %s — quantize, convert, evaluate and run Microsoft Phi models on CPUs\n\n"
               "usage: phiq COMMAND [options]    (phiq COMMAND --help for each)\n\ncommands:\n",
            PHIQ_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "  %-9s %s\n", "version", "print the version");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("phiq %s\n", PHIQ_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            int rc = commands[i].fn(argc - 1, argv + 1);
            phiq_cli_model_paths_free();
            return rc;
        }
    fprintf(stderr, "phiq: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
