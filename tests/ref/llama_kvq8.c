/* llama_kvq8.c — a small driver over llama.cpp (libllama) that evaluates
 * token ids with a chosen KV cache type and flash attention on, and writes
 * the last position's logits as little-endian float32. Compiled at test
 * time by tests/test_kv_q8.c against the headers and libraries that
 * shared/tools/llama-ref/setup.sh uses (llama-ref itself has no KV-type
 * option, and shared/ is not ours to change).
 *
 *   llama_kvq8 MODEL.gguf IDS OUT [q8_0|f16|f32] [N_CTX]
 *
 * IDS: comma-separated token ids, one batch. Environment:
 * LLAMA_REF_BACKENDS (directory of CPU backend variants, as the llama-ref
 * wrapper sets), LLAMA_REF_THREADS (default 2). Exit 0, or 2 on error. */
#include "llama_driver.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: llama_kvq8 MODEL.gguf IDS OUT [q8_0|f16|f32] [N_CTX]\n");
        return 2;
    }
    enum ggml_type type;
    if (ld_kv_type("llama_kvq8", argc > 4 ? argv[4] : "q8_0", &type)) return 2;
    int n = 0, cap = 64;
    llama_token *ids = malloc(sizeof *ids * (size_t)cap);
    for (const char *s = argv[2]; *s;) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) {
            s++;
            continue;
        }
        if (n == cap) ids = realloc(ids, sizeof *ids * (size_t)(cap *= 2));
        ids[n++] = (llama_token)v;
        s = end;
    }
    if (n == 0) {
        fprintf(stderr, "llama_kvq8: no ids\n");
        return 2;
    }
    struct llama_model *m = ld_load("llama_kvq8", argv[1]);
    if (!m) return 2;
    int n_ctx = argc > 5 ? atoi(argv[5]) : (n < 64 ? 64 : n);
    struct llama_context *c = ld_context("llama_kvq8", m, (uint32_t)n_ctx, (uint32_t)(n_ctx > n ? n_ctx : n), type);
    if (!c) return 2;
    struct llama_batch b = llama_batch_init(n, 0, 1);
    if (ld_eval(c, &b, n, ids, n, 0)) {
        fprintf(stderr, "llama_kvq8: decode failed\n");
        return 2;
    }
    const float *l = llama_get_logits_ith(c, n - 1);
    const int nv = llama_vocab_n_tokens(llama_model_get_vocab(m));
    FILE *f = fopen(argv[3], "wb");
    if (!f || !l || fwrite(l, sizeof(float), (size_t)nv, f) != (size_t)nv || fclose(f) != 0) {
        fprintf(stderr, "llama_kvq8: cannot write %s\n", argv[3]);
        return 2;
    }
    llama_batch_free(b);
    llama_free(c);
    llama_model_free(m);
    llama_backend_free();
    free(ids);
    return 0;
}
