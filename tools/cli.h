/* cli.h — the phiq subcommands. Each lives in its own tools/cmd_*.c and
 * returns the process exit status (0 ok, 1 failure, 2 usage). */
#ifndef PHIQ_TOOLS_CLI_H
#define PHIQ_TOOLS_CLI_H

#include <stdio.h>

#include "phiq.h"

/* The commands `phiq` dispatches to, in the order its help lists them:
 * X(name, function, one line of help). */
#define PHIQ_CLI_COMMANDS(X) \
    X("convert", phiq_cmd_convert, "convert an HF checkpoint or GGUF to GGUF (f32/f16/bf16/Q4_K_M/int4/...), ONNX or MLX") \
    X("inspect", phiq_cmd_inspect, "show architecture, hyper-parameters and tensors of a GGUF, safetensors or HF dir") \
    X("synth", phiq_cmd_synth, "write a random-weight HF checkpoint of any Phi shape") \
    X("run", phiq_cmd_run, "generate text from a prompt") \
    X("chat", phiq_cmd_chat, "interactive multi-turn chat") \
    X("serve", phiq_cmd_serve, "OpenAI-compatible HTTP server with continuous batching and a chat page") \
    X("template", phiq_cmd_template, "print the prompt a conversation becomes (the chat template, run as Jinja)") \
    X("tokenize", phiq_cmd_tokenize, "print the token ids of a text") \
    X("logits", phiq_cmd_logits, "write float32 logits for token ids") \
    X("eval", phiq_cmd_eval, "perplexity and KL divergence on a text") \
    X("imatrix", phiq_cmd_imatrix, "importance matrix of a text (llama-imatrix's GGUF format)") \
    X("bench", phiq_cmd_bench, "prefill/decode speed, bandwidth, memory") \
    X("convert-onnx", phiq_cmd_convert_onnx, "(temporary) convert --format onnx: HF checkpoint -> ONNX Runtime GenAI") \
    X("pull", phiq_cmd_pull, "download a model from the Hugging Face Hub into the huggingface_hub cache") \
    X("report", phiq_cmd_report, "convert to several precisions, evaluate, bench, and chart the trade-off")
#define PHIQ_CLI_DECLARE(name, fn, help) int fn(int argc, char **argv);
PHIQ_CLI_COMMANDS(PHIQ_CLI_DECLARE)
#undef PHIQ_CLI_DECLARE
int phiq_cmd_convert_mlx(int argc, char **argv); /* tools/cmd_mlx.c: convert --format mlx */

/* Prints "phiq CMD: message" to stderr and returns 1. */
int phiq_cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* True if argv[i] equals any of the names (e.g. "-t", "--threads"). */
int phiq_cli_is(const char *arg, const char *a, const char *b);
/* Fetches the value after a flag or fails with usage; advances *i. */
const char *phiq_cli_value(int argc, char **argv, int *i, const char *cmd);
/* The arguments of the commands that run a model over a text in chunks (eval,
 * imatrix) other than their own options, each stored through its pointer:
 * MODEL, --text/-f FILE, -c/--ctx N, --chunks N, -t/--threads N, --json,
 * --quiet; -h/--help prints usage on stdout. Returns -1 when argv[*i] was
 * taken (*i then past its value), else the exit status: 0 after --help, 2
 * after a usage error (an unknown option, a second MODEL). */
typedef struct phiq_cli_pass_opts {
    const char **model, **text;
    int *n_ctx, *max_chunks, *n_threads, *json, *quiet;
    void (*usage)(FILE *f);
} phiq_cli_pass_opts;
int phiq_cli_pass_arg(int argc, char **argv, int *i, const char *cmd, const phiq_cli_pass_opts *p);
/* --kv-type value: "f16", "f32" or "q8_0" -> PHIQ_KV_TYPE_*, anything else -1. */
int phiq_cli_kv_type(const char *s);
/* A command's default context, fitted to the model: min(want, its context length). */
int phiq_cli_default_ctx(const phiq_model *m, int want);

/* The --calib fields of a --json report: GPTQ_KEY (how many matrices GPTQ
 * rounded), calib_passes, calib_tokens (per pass), calib_forward_seconds,
 * and with rss the process's peak_rss_bytes. */
struct cJSON;
/* Writes n bytes of s for inside a quoted string: '"', '\\', \n, \r, \t
 * escaped; other control bytes as \u00XX with json, else \xXX; bytes from
 * 0x80 as they are when they form a UTF-8 character, else \u00XX with json,
 * \xXX without. */
void phiq_cli_put_escaped(FILE *f, const char *s, int n, int json);
/* Prints j (indented, or on one line with compact) and a newline on stdout, then deletes it. */
void phiq_cli_json_out(struct cJSON *j, int compact);
void phiq_cli_json_calib(struct cJSON *j, const char *gptq_key, int n_gptq, int passes, int64_t tokens, double seconds,
                         int rss);

/* --mmap / --no-mmap (phiq_weights_mode): sets *mode and returns 1 when arg
 * is one of them, else 0. */
int phiq_cli_weights_flag(const char *arg, int *mode);
#define PHIQ_CLI_WEIGHTS_HELP \
    "  --mmap                read GGUF weights through the file map (llama.cpp's default; shares the\n" \
    "                        page cache, loads instantly, decodes slower)\n" \
    "  --no-mmap             always copy GGUF weights into memory on huge pages (default when they fit\n" \
    "                        in half of the available memory)\n"

/* ---- the Hugging Face Hub (tools/hub_pull.c) ---- */
typedef struct phiq_pull_opts {
    const char *revision; /* NULL: main */
    const char **include, **exclude;
    int n_include, n_exclude;
    const char *token; /* NULL: HF_TOKEN or the token file */
    int quiet;
} phiq_pull_opts;
struct phiq_hub_id;
/* Pulls id into the huggingface_hub cache (or, with HF_HUB_OFFLINE, finds it
 * there); *path = the snapshot directory, or the .gguf file of a GGUF repo
 * (malloc'd). Prints "phiq CMD: ..." on failure and returns 1. */
int phiq_hub_pull(const char *cmd, const struct phiq_hub_id *id, const phiq_pull_opts *o, char **path);
/* The model argument of a command: a local path as it is (said once when it
 * is also a Hub id); otherwise an ORG/NAME[:QUANT] Hub id resolved from the
 * cache, or pulled when missing. NULL (message printed) on failure. */
const char *phiq_cli_model_path(const char *cmd, const char *arg);
/* Frees every path phiq_cli_model_path returned (main() calls it after the command). */
void phiq_cli_model_paths_free(void);

#endif
