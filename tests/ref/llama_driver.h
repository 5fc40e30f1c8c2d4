/* llama_driver.h — what the small libllama drivers share (tests/ref/llama_kvq8.c,
 * bench/llama_depth.c): quiet logging, the CPU backends llama-ref loads
 * (LLAMA_REF_BACKENDS), the model on the CPU, a flash-attention context with a
 * chosen KV cache type (LLAMA_REF_THREADS threads, default 2), and evaluating
 * token ids in batches. Each driver is one C file compiled at use against the
 * headers and libraries of shared/tools/llama-ref/setup.sh; this header is
 * included by relative path. Errors print "PROG: ..." on stderr. */
#ifndef PHIQ_LLAMA_DRIVER_H
#define PHIQ_LLAMA_DRIVER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-backend.h"
#include "llama.h"

static void ld_quiet(enum ggml_log_level level, const char *text, void *ud) {
    (void)ud;
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static bool ld_no_progress(float p, void *ud) {
    (void)p;
    (void)ud;
    return true;
}

/* "f16", "f32" or "q8_0" -> *t; -1 (after a message) for anything else. */
static int ld_kv_type(const char *prog, const char *name, enum ggml_type *t) {
    if (!strcmp(name, "f16")) *t = GGML_TYPE_F16;
    else if (!strcmp(name, "f32")) *t = GGML_TYPE_F32;
    else if (!strcmp(name, "q8_0")) *t = GGML_TYPE_Q8_0;
    else {
        fprintf(stderr, "%s: KV type must be f16, f32 or q8_0, not %s\n", prog, name);
        return -1;
    }
    return 0;
}

/* Loads the backends and the model at path on the CPU (no GPU layers, no
 * progress output); NULL after a message. */
static struct llama_model *ld_load(const char *prog, const char *path) {
    llama_log_set(ld_quiet, NULL);
    const char *dir = getenv("LLAMA_REF_BACKENDS");
    if (dir) ggml_backend_load_all_from_path(dir);
    else ggml_backend_load_all();
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.progress_callback = ld_no_progress;
    struct llama_model *m = llama_model_load_from_file(path, mp);
    if (!m) fprintf(stderr, "%s: cannot load %s\n", prog, path);
    return m;
}

/* A context of n_ctx positions taking batches of n_batch tokens, K and V
 * cached as type, flash attention on; NULL after a message. */
static struct llama_context *ld_context(const char *prog, struct llama_model *m, uint32_t n_ctx, uint32_t n_batch,
                                        enum ggml_type type) {
    const char *th = getenv("LLAMA_REF_THREADS");
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = cp.n_ubatch = n_batch;
    cp.n_threads = cp.n_threads_batch = th ? atoi(th) : 2;
    cp.no_perf = true;
    cp.type_k = cp.type_v = type;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
    struct llama_context *c = llama_init_from_model(m, cp);
    if (!c) fprintf(stderr, "%s: cannot create a context (%s KV cache, flash attention)\n", prog, ggml_type_name(type));
    return c;
}

/* ids[0..n) at positions pos.. of sequence 0 through b (room for `room`
 * tokens), in batches of at most room; logits of each batch's last token
 * only. Returns 0, or -1 when a decode fails. */
static int ld_eval(struct llama_context *c, struct llama_batch *b, int room, const llama_token *ids, int n, int pos) {
    for (int i = 0; i < n; i += room) {
        const int m = n - i < room ? n - i : room;
        for (int k = 0; k < m; k++) {
            b->token[k] = ids[i + k];
            b->pos[k] = pos + i + k;
            b->n_seq_id[k] = 1;
            b->seq_id[k][0] = 0;
            b->logits[k] = k == m - 1;
        }
        b->n_tokens = m;
        if (llama_decode(c, *b)) return -1;
    }
    llama_synchronize(c);
    return 0;
}

#endif
