/* cmd_run.c — `phiq tokenize` (text -> token ids with a model's tokenizer).
 * `phiq run` and `phiq chat` live in cmd_generate.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/common.h"
#include "tokenizer/tokenizer.h"


static void tokenize_usage(FILE *f) {
    fputs("usage: phiq tokenize (MODEL | --tokenizer FILE) TEXT [options]\n"
          "\n"
          "Prints the token ids of TEXT, space separated, as llama.cpp's tokenizer\n"
          "would produce them for the same vocabulary.\n"
          "\n"
          "  MODEL                 a Hugging Face checkpoint directory (its tokenizer.json,\n"
          "                        tokenizer_config.json) or a GGUF file (also: -m MODEL)\n"
          "  --tokenizer FILE      tokenizer.json, a GGUF file, or a .tiktoken ranks file\n"
          "  -p, --prompt TEXT     the text (instead of the positional TEXT)\n"
          "  -f, --file FILE       read the text from FILE\n"
          "  --no-bos              do not add BOS even if the vocabulary adds one\n"
          "  --no-special          treat special-token text such as <|user|> as plain text\n"
          "  --pretokenizer NAME   for .tiktoken files: o200k, cl100k or gpt2 (default: the\n"
          "                        NAME.meta.json beside the file, or the file name)\n"
          "  --pieces              print one line per token: id and its text (escaped)\n"
          "  --json                print {\"ids\":[...]} (with --pieces also \"pieces\":[...])\n"
          "  -h, --help            this help\n",
          f);
}

int phiq_cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *tokfile = NULL, *text = NULL, *file = NULL, *pretok = NULL;
    int add_bos = 1, special = 1, json = 0, pieces = 0;
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (phiq_cli_is(a, "-h", "--help")) { tokenize_usage(stdout); return 0; }
        else if (phiq_cli_is(a, "-m", "--model")) model = phiq_cli_value(argc, argv, &i, "tokenize");
        else if (phiq_cli_is(a, "--tokenizer", NULL)) tokfile = phiq_cli_value(argc, argv, &i, "tokenize");
        else if (phiq_cli_is(a, "-p", "--prompt")) text = phiq_cli_value(argc, argv, &i, "tokenize");
        else if (phiq_cli_is(a, "-f", "--file")) file = phiq_cli_value(argc, argv, &i, "tokenize");
        else if (phiq_cli_is(a, "--pretokenizer", NULL)) pretok = phiq_cli_value(argc, argv, &i, "tokenize");
        else if (phiq_cli_is(a, "--no-bos", NULL)) add_bos = 0;
        else if (phiq_cli_is(a, "--no-special", NULL)) special = 0;
        else if (phiq_cli_is(a, "--json", NULL)) json = 1;
        else if (phiq_cli_is(a, "--pieces", NULL)) pieces = 1;
        else if (a[0] == '-' && a[1] && strcmp(a, "--") != 0) {
            fprintf(stderr, "phiq tokenize: unknown option %s (see phiq tokenize --help)\n", a);
            return 2;
        } else {
            if (!strcmp(a, "--") && i + 1 < argc) a = argv[++i];
            if (npos == 2) {
                fprintf(stderr, "phiq tokenize: too many arguments (quote the text)\n");
                return 2;
            }
            pos[npos++] = a;
        }
    }
    int k = 0;
    if (!model && !tokfile && k < npos) model = pos[k++];
    if (!text && !file && k < npos) text = pos[k++];
    if (k < npos || (!model && !tokfile) || (!text && !file) || (text && file)) {
        tokenize_usage(stderr);
        return 2;
    }
    if (model && tokfile) return phiq_cli_fail("tokenize", "give either MODEL or --tokenizer, not both");
    if (model && !(model = phiq_cli_model_path("tokenize", model))) return 1;
    char *buf = NULL;
    size_t len;
    if (file) {
        if (phiq_read_file(file, &buf, &len) < 0) return phiq_cli_fail("tokenize", "%s", phiq_error());
        text = buf;
    } else {
        len = strlen(text);
    }
    phiq_tokenizer *t = phiq_tokenizer_load(model ? model : tokfile, pretok);
    if (!t) {
        free(buf);
        return phiq_cli_fail("tokenize", "%s", phiq_error());
    }
    int n = phiq_tokenize_text(t, text, len, add_bos, special, NULL, 0);
    int32_t *ids = n >= 0 ? malloc(sizeof *ids * (size_t)(n + 1)) : NULL;
    if (n < 0 || !ids || phiq_tokenize_text(t, text, len, add_bos, special, ids, n) != n) {
        free(ids);
        free(buf);
        phiq_tokenizer_free(t);
        return phiq_cli_fail("tokenize", "%s", n < 0 ? phiq_error() : "out of memory");
    }
    int pc = phiq_tokenizer_max_piece(t) + 1;
    char *piece = malloc((size_t)pc);
    if (json) {
        fputs("{\"ids\":[", stdout);
        for (int i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
        fputs("]", stdout);
        if (pieces) {
            fputs(",\"pieces\":[", stdout);
            for (int i = 0; i < n; i++) {
                int l = phiq_token_piece(t, ids[i], piece, pc);
                fputs(i ? ",\"" : "\"", stdout);
                phiq_cli_put_escaped(stdout, piece, l, 1);
                fputs("\"", stdout);
            }
            fputs("]", stdout);
        }
        fputs("}\n", stdout);
    } else if (pieces) {
        for (int i = 0; i < n; i++) {
            int l = phiq_token_piece(t, ids[i], piece, pc);
            printf("%d\t\"", ids[i]);
            phiq_cli_put_escaped(stdout, piece, l, 0);
            fputs("\"\n", stdout);
        }
    } else {
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        fputs("\n", stdout);
    }
    free(piece);
    free(ids);
    free(buf);
    phiq_tokenizer_free(t);
    return fflush(stdout) == 0 ? 0 : phiq_cli_fail("tokenize", "cannot write the output");
}
