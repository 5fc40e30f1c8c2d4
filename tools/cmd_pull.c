/* cmd_pull.c — `phiq pull ORG/NAME[:QUANT]`: a model from the Hugging Face Hub
 * into the huggingface_hub cache (tools/hub_pull.c does the work). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/common.h"
#include "hub/hub.h"

static void help(FILE *f) {
    fprintf(f,
            "usage: phiq pull ORG/NAME[:QUANT] [--revision R] [--include GLOB]... [--exclude GLOB]... [options]\n"
            "\n"
            "Downloads a model from the Hugging Face Hub into the huggingface_hub cache, in its layout\n"
            "(models--ORG--NAME/{blobs,refs,snapshots}), so files Python already downloaded are reused\n"
            "and the other way round. Prints the snapshot path (the model path other commands take) on\n"
            "stdout. Every command that takes a model also takes ORG/NAME: it uses the cache, pulling\n"
            "first when the model is missing.\n"
            "\n"
            "  ORG/NAME            e.g. microsoft/Phi-3.5-mini-instruct; default files: config, generation\n"
            "                      config, safetensors (the shards the index names), tokenizer, chat template\n"
            "  ORG/NAME:QUANT      the .gguf file of a GGUF repo, e.g. microsoft/Phi-3-mini-4k-instruct-gguf:q4\n"
            "                      (default for a GGUF repo: its only .gguf, else Q4_K_M)\n"
            "  --revision R        branch, tag or commit (default main)\n"
            "  --include GLOB      take the files matching GLOB instead of the defaults (repeatable)\n"
            "  --exclude GLOB      leave out the files matching GLOB (repeatable)\n"
            "  --token T           access token (default: HF_TOKEN, else the file `hf auth login` wrote)\n"
            "  --quiet             no progress\n"
            "  -h, --help          this help\n"
            "\n"
            "Environment: HF_ENDPOINT (server, default https://huggingface.co), HF_TOKEN, HF_HUB_CACHE /\n"
            "HF_HOME (cache location, default ~/.cache/huggingface/hub), HF_HUB_OFFLINE=1 (no network: the\n"
            "cache only). An interrupted download resumes from blobs/<etag>.incomplete; every LFS file's\n"
            "sha256 is checked against its ETag before it enters blobs/.\n");
}

int phiq_cmd_pull(int argc, char **argv) {
    const char *idarg = NULL;
    phiq_pull_opts o = {0};
    const char **inc = calloc((size_t)argc + 1, sizeof *inc), **exc = calloc((size_t)argc + 1, sizeof *exc);
    if (!inc || !exc) { free(inc); free(exc); return phiq_cli_fail("pull", "out of memory"); }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (phiq_cli_is(a, "-h", "--help")) { help(stdout); free(inc); free(exc); return 0; }
        else if (!strcmp(a, "--revision")) o.revision = phiq_cli_value(argc, argv, &i, "pull");
        else if (!strcmp(a, "--include")) inc[o.n_include++] = phiq_cli_value(argc, argv, &i, "pull");
        else if (!strcmp(a, "--exclude")) exc[o.n_exclude++] = phiq_cli_value(argc, argv, &i, "pull");
        else if (!strcmp(a, "--token")) o.token = phiq_cli_value(argc, argv, &i, "pull");
        else if (!strcmp(a, "--quiet")) o.quiet = 1;
        else if (a[0] == '-') { free(inc); free(exc); fprintf(stderr, "phiq pull: unknown option %s (see phiq pull --help)\n", a); return 2; }
        else if (!idarg) idarg = a;
        else { free(inc); free(exc); fprintf(stderr, "phiq pull: one model id at a time ('%s')\n", a); return 2; }
    }
    o.include = inc;
    o.exclude = exc;
    int rc;
    phiq_hub_id id;
    if (!idarg) { help(stderr); rc = 2; }
    else if (phiq_hub_parse_id(idarg, false, &id)) rc = phiq_cli_fail("pull", "%s", phiq_error());
    else {
        char *path = NULL;
        rc = phiq_hub_pull("pull", &id, &o, &path);
        if (!rc) printf("%s\n", path);
        free(path);
    }
    free(inc);
    free(exc);
    return rc;
}
