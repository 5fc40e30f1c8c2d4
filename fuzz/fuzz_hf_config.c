/* fuzz_hf_config.c — libFuzzer target: config.json as phiq_hf_open reads it
 * (every architecture's key rules: Phi3, Phi, PhiMoE and Phi-3-small's
 * block-sparse / muP / LongRoPE / dummy-id fields). Input: the bytes of
 * config.json; the directory has no weights, so a config that parses ends
 * at the missing-safetensors error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/hf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char dir[64], path[128];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/fuzz_hf_config.%ld", (long)getpid());
        if (mkdir(dir, 0700) != 0) return 0;
        snprintf(path, sizeof path, "%s/config.json", dir);
    }
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t w = fwrite(data, 1, size, f);
    if (fclose(f) != 0 || w != size) return 0;
    phiq_hf *hf = phiq_hf_open(dir);
    phiq_hf_close(hf);
    return 0;
}
