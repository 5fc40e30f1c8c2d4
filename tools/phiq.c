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
#define PHIQ_CLI_ENTRY(name, fn, help) {name, fn, help},
    PHIQ_CLI_COMMANDS(PHIQ_CLI_ENTRY)
#undef PHIQ_CLI_ENTRY
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

int phiq_cli_pass_arg(int argc, char **argv, int *i, const char *cmd, const phiq_cli_pass_opts *p) {
    const char *a = argv[*i];
    if (phiq_cli_is(a, "-h", "--help")) { p->usage(stdout); return 0; }
    else if (phiq_cli_is(a, "--text", "-f")) *p->text = phiq_cli_value(argc, argv, i, cmd);
    else if (phiq_cli_is(a, "-c", "--ctx")) *p->n_ctx = atoi(phiq_cli_value(argc, argv, i, cmd));
    else if (!strcmp(a, "--chunks")) *p->max_chunks = atoi(phiq_cli_value(argc, argv, i, cmd));
    else if (phiq_cli_is(a, "-t", "--threads")) *p->n_threads = atoi(phiq_cli_value(argc, argv, i, cmd));
    else if (!strcmp(a, "--json")) *p->json = 1;
    else if (!strcmp(a, "--quiet")) *p->quiet = 1;
    else if (a[0] == '-') { fprintf(stderr, "phiq %s: unknown option %s\n", cmd, a); p->usage(stderr); return 2; }
    else if (!*p->model) *p->model = a;
    else { fprintf(stderr, "phiq %s: unexpected argument %s\n", cmd, a); return 2; }
    return -1;
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

void phiq_cli_put_escaped(FILE *f, const char *s, int n, int json) {
    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c < 0x20 || (c >= 0x80 && !json)) fprintf(f, json ? "\\u%04x" : "\\x%02x", c);
        else if (c >= 0x80) {
            /* JSON must stay valid UTF-8: a partial sequence becomes \u00XX escapes */
            int k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
            int ok = k > 0 && i + k <= n;
            for (int j = 1; ok && j < k; j++) ok = ((unsigned char)s[i + j] & 0xC0) == 0x80;
            if (ok) {
                fwrite(s + i, 1, (size_t)k, f);
                i += k - 1;
            } else fprintf(f, "\\u%04x", c);
        } else fputc(c, f);
    }
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
