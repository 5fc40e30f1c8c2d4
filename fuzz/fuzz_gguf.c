/* fuzz_gguf.c — libFuzzer target for the GGUF reader: opens the input from
 * memory (so ASan sees the exact buffer end), then walks every accessor —
 * keys, typed getters, scalars, arrays and their string elements, tensors and
 * their data — so that anything open() accepted is proven safe to use.
 * Seeds in fuzz/seeds/fuzz_gguf are written by our own writer (test_gguf with
 * PHIQ_GGUF_SEED_DIR set). */
#include <stdint.h>
#include <string.h>

#include "formats/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    phiq_gguf *g = phiq_gguf_open_memory(data, size, "fuzz.gguf");
    if (!g) return 0;
    volatile uint64_t sink = phiq_gguf_version(g) + phiq_gguf_alignment(g) + phiq_gguf_data_offset(g);
    for (int64_t i = 0; i < phiq_gguf_n_kv(g); i++) {
        const char *key = phiq_gguf_kv_key(g, i);
        sink += strlen(key);
        if (phiq_gguf_find_kv(g, key) != i) __builtin_trap();
        int t = phiq_gguf_kv_type(g, i);
        int64_t iv;
        double fv;
        uint32_t u32;
        float f32;
        bool b;
        const char *s;
        uint64_t len, n;
        sink += (uint64_t)(phiq_gguf_get_u32(g, key, &u32) + phiq_gguf_get_f32(g, key, &f32) +
                           phiq_gguf_get_bool(g, key, &b));
        if (phiq_gguf_get_str(g, key, &s, &len) == 0 && len) sink += (uint8_t)s[len - 1];
        if (phiq_gguf_kv_scalar(g, i, &iv, &fv) == 0) sink += (uint64_t)iv;
        int et;
        const void *arr;
        if (t == PHIQ_GGUF_ARRAY && phiq_gguf_kv_arr(g, i, &et, &n, &arr) == 0) {
            if (et == PHIQ_GGUF_STRING) {
                for (uint64_t j = 0; j < n; j++)
                    if (phiq_gguf_arr_str(g, i, j, &s, &len) == 0 && len) sink += (uint8_t)s[0] + (uint8_t)s[len - 1];
            } else if (n) {
                const uint8_t *p = arr;
                sink += p[0] + p[n * phiq_gguf_vtype_size(et) - 1];
            }
        }
    }
    for (int64_t i = 0; i < phiq_gguf_n_tensors(g); i++) {
        const phiq_gguf_tensor *t = phiq_gguf_tensor_at(g, i);
        if (phiq_gguf_find_tensor(g, t->name) != t) __builtin_trap();
        if (t->nbytes) {
            const uint8_t *p = t->data;
            sink += p[0] + p[t->nbytes - 1];
        }
        sink += (uint64_t)t->ne[0] + (uint64_t)t->type;
    }
    (void)sink;
    phiq_gguf_close(g);
    return 0;
}
