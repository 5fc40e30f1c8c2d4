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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-backend.h"
#include "llama.h"

static void quiet(enum ggml_log_level level, const char *text, void *ud) {
    (void)ud;
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static bool no_progress(float p, void *ud) {
    (void)p;
    (void)ud;
    return true;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: llama_kvq8 MODEL.gguf IDS OUT [q8_0|f16|f32] [N_CTX]\n");
        return 2;
    }
    const char *kt = argc > 4 ? argv[4] : "q8_0";
    enum ggml_type type = GGML_TYPE_Q8_0;
    if (!strcmp(kt, "f16")) type = GGML_TYPE_F16;
    else if (!strcmp(kt, "f32")) type = GGML_TYPE_F32;
    else if (strcmp(kt, "q8_0")) {
        fprintf(stderr, "llama_kvq8: unknown KV type %s\n", kt);
        return 2;
    }
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
    llama_log_set(quiet, NULL);
    const char *dir = getenv("LLAMA_REF_BACKENDS");
    if (dir) ggml_backend_load_all_from_path(dir);
    else ggml_backend_load_all();
    llama_backend_init();

    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.progress_callback = no_progress;
    struct llama_model *m = llama_model_load_from_file(argv[1], mp);
    if (!m) {
        fprintf(stderr, "llama_kvq8: cannot load %s\n", argv[1]);
        return 2;
    }
    const char *th = getenv("LLAMA_REF_THREADS");
    int n_ctx = argc > 5 ? atoi(argv[5]) : (n < 64 ? 64 : n);
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_batch = cp.n_ubatch = (uint32_t)(n_ctx > n ? n_ctx : n);
    cp.n_threads = cp.n_threads_batch = th ? atoi(th) : 2;
    cp.no_perf = true;
    cp.type_k = type;
    cp.type_v = type;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
    struct llama_context *c = llama_init_from_model(m, cp);
    if (!c) {
        fprintf(stderr, "llama_kvq8: cannot create a context with %s KV cache and flash attention\n", kt);
        return 2;
    }
    struct llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        b.token[i] = ids[i];
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = i == n - 1;
    }
    b.n_tokens = n;
    if (llama_decode(c, b)) {
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
