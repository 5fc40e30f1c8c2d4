/* fuzz_hub.c — libFuzzer target: the Hub parsers of src/hub on arbitrary
 * bytes: model ids, the /api/models JSON, safetensors indexes, ETags and
 * header lines, and the GGUF pick over whatever listing parsed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    phiq_hub_id id;
    phiq_hub_parse_id(s, true, &id);
    phiq_hub_parse_id(s, false, &id);
    char out[256];
    if (phiq_hub_etag(s, out, sizeof out) == 0 && (strchr(out, '/') || !strcmp(out, ".."))) __builtin_trap();
    phiq_hub_header(s, size, "X-Linked-Etag", out, sizeof out);
    if (phiq_hub_safe_path(s)) {
        char *t = phiq_hub_link_target(s, "abc");
        free(t);
    }
    phiq_hub_info info;
    if (phiq_hub_parse_info(s, size, &info) == 0) {
        for (int i = 0; i < info.n_files; i++)
            if (!phiq_hub_safe_path(info.files[i].path)) __builtin_trap();
        phiq_hub_pick_gguf(&info, "q4");
        phiq_hub_pick_gguf(&info, "");
        phiq_hub_info_free(&info);
    }
    char **names;
    int n;
    if (phiq_hub_index_shards(s, size, &names, &n) == 0) phiq_hub_names_free(names, n);
    free(s);
    return 0;
}
