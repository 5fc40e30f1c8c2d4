/* cmd_imatrix.c — `phiq imatrix`: llama-imatrix's importance matrix from a
 * calibration text (convert/calib.h), in its GGUF format. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "convert/calib.h"
#include "core/common.h"
#include "eval/eval.h"
#include "phiq.h"

static void imatrix_usage(FILE *f) {
    fprintf(f, "usage: phiq imatrix MODEL --text FILE -o IMATRIX.gguf [-c N] [--chunks N] [--process-output] [-t N] [--json] [--quiet]\n\n"
               "The importance matrix as llama-imatrix computes it: for every matmul weight of the blocks, the sum of\n"
               "squared input activations per input column and the number of tokens (per expert for MoE), over\n"
               "non-overlapping chunks of the text (each chunk's first token BOS when the model adds BOS). Written in\n"
               "the GGUF imatrix format of current llama-imatrix; use it with `phiq convert --imatrix` or\n"
               "`llama-quantize --imatrix`.\n\n"
               "  MODEL              HF checkpoint directory or GGUF (best unquantized: f32/f16/bf16)\n"
               "  --text, -f FILE    calibration text (at least 2 x ctx tokens)\n"
               "  -o, --output FILE  output imatrix (GGUF)\n"
               "  -c, --ctx N        chunk length (default 512, as llama-imatrix)\n"
               "  --chunks N         use at most N chunks (default: all)\n"
               "  --process-output   also collect output.weight (llama-imatrix --process-output)\n"
               "  -t, --threads N    threads (default: physical cores)\n"
               "  --json             one JSON summary on stdout\n"
               "  --quiet            no progress\n");
}

int phiq_cmd_imatrix(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *out = NULL;
    phiq_calib_opts o = {.n_ctx = 512};
    int json = 0, ret;
    const phiq_cli_pass_opts po = {&model, &text, &o.n_ctx, &o.max_chunks, &o.n_threads, &json, &o.quiet, imatrix_usage};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (phiq_cli_is(a, "-o", "--output")) out = phiq_cli_value(argc, argv, &i, "imatrix");
        else if (!strcmp(a, "--process-output")) o.process_output = 1;
        else if ((ret = phiq_cli_pass_arg(argc, argv, &i, "imatrix", &po)) >= 0) return ret;
    }
    if (!model || !text || !out) { imatrix_usage(stderr); return 2; }
    if (!(model = phiq_cli_model_path("imatrix", model))) return 1;
    if (o.n_ctx < 16) return phiq_cli_fail("imatrix", "-c %d is too small (need >= 16)", o.n_ctx);
    double t0 = phiq_now();
    phiq_model *m = phiq_model_open(model, NULL);
    if (!m) return phiq_cli_fail("imatrix", "%s", phiq_error());
    int64_t n = 0;
    int32_t *ids = phiq_calib_tokenize(m, text, o.n_ctx, &n);
    phiq_calib *c = ids ? phiq_calib_run(m, ids, n, &o) : NULL;
    int rc = c ? phiq_calib_write_imatrix(c, out, text, o.quiet) : -1;
    free(ids);
    if (rc < 0) {
        phiq_calib_free(c);
        phiq_model_free(m);
        return phiq_cli_fail("imatrix", "%s", phiq_error());
    }
    double secs = phiq_now() - t0;
    if (json)
        printf("{\"output\": \"%s\", \"chunks\": %d, \"chunk_size\": %d, \"tokens\": %lld, \"seconds\": %.3f, \"peak_rss_bytes\": %llu}\n",
               out, phiq_calib_chunks(c), o.n_ctx, (long long)phiq_calib_tokens(c), secs,
               (unsigned long long)phiq_peak_rss());
    else if (!o.quiet)
        fprintf(stderr, "imatrix: %d chunks of %d tokens -> %s in %.1f s, peak RSS %.0f MiB\n", phiq_calib_chunks(c), o.n_ctx,
                out, secs, (double)phiq_peak_rss() / 1048576.0);
    phiq_calib_free(c);
    phiq_model_free(m);
    return 0;
}
