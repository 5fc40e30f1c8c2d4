/* fuzz_mlx_dir.c — libFuzzer target: an MLX model directory (what `phiq
 * convert --format mlx` / `mlx_lm.convert -q` write) read by phiq_hf_open and
 * loaded by phiq_model_open (affine triplets validated and dequantized).
 * Input: the config's "quantization" JSON, a NUL byte, then the
 * model.safetensors bytes; the rest of config.json is a fixed one-layer phi3
 * (hidden 64, vocabulary 32) so that the quantization entries and the
 * tensors are what varies. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "phiq.h"

static int write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/fuzz_mlx_dir.%ld", (long)getpid());
        if (mkdir(dir, 0700) != 0) return 0;
    }
    const uint8_t *nul = memchr(data, 0, size);
    if (!nul) return 0;
    size_t qlen = (size_t)(nul - data);
    char path[128];
    static const char head[] =
        "{\"architectures\": [\"Phi3ForCausalLM\"], \"model_type\": \"phi3\", \"vocab_size\": 32, \"hidden_size\": 64, "
        "\"intermediate_size\": 64, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 1, "
        "\"rms_norm_eps\": 1e-05, \"max_position_embeddings\": 64, \"quantization\": ";
    char *cfg = malloc(sizeof head + qlen + 2);
    if (!cfg) return 0;
    memcpy(cfg, head, sizeof head - 1);
    memcpy(cfg + sizeof head - 1, data, qlen);
    memcpy(cfg + sizeof head - 1 + qlen, "}", 2);
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = write_file(path, cfg, strlen(cfg));
    free(cfg);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (rc || write_file(path, nul + 1, size - qlen - 1)) return 0;
    phiq_model_params mp = {.type = "f32", .n_threads = 1};
    phiq_model *m = phiq_model_open(dir, &mp);
    phiq_model_free(m);
    return 0;
}
