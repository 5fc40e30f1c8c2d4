/* testutil_model.c — the test helpers that drive the engine through the
 * public API (phiq.h), kept apart from testutil.c, which the AArch64 kernel
 * test links without the model code (bench/neon-qemu.sh). */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "phiq.h"

float *tu_eval_logits(phiq_context *c, const int32_t *ids, int np, int n, int nv) {
    float *out = malloc(sizeof(float) * (size_t)nv * (size_t)n);
    assert_non_null(out);
    const size_t row = sizeof(float) * (size_t)nv;
    if (phiq_eval(c, ids, np) != 0) fail_msg("eval: %s", phiq_error());
    for (int i = 0; i < np; i++) memcpy(out + (size_t)i * (size_t)nv, phiq_logits_at(c, i), row);
    for (int i = np; i < n; i++) {
        if (phiq_eval(c, ids + i, 1) != 0) fail_msg("eval: %s", phiq_error());
        memcpy(out + (size_t)i * (size_t)nv, phiq_logits(c), row);
    }
    return out;
}

int64_t tu_same_tensors(const char *a_path, const char *b_path, const char *what) {
    phiq_gguf *a = phiq_gguf_open(a_path), *b = phiq_gguf_open(b_path);
    if (!a || !b) fprintf(stderr, "%s\n", phiq_error());
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(phiq_gguf_n_tensors(a), phiq_gguf_n_tensors(b));
    for (int64_t i = 0; i < phiq_gguf_n_tensors(b); i++) {
        const phiq_gguf_tensor *tb = phiq_gguf_tensor_at(b, i);
        const phiq_gguf_tensor *ta = phiq_gguf_find_tensor(a, tb->name);
        assert_non_null(ta);
        if (ta->type != tb->type || ta->nbytes != tb->nbytes || memcmp(ta->data, tb->data, ta->nbytes)) {
            fprintf(stderr, "%s: %s is %s, llama-quantize %s%s\n", what, tb->name, phiq_ggml_type_name(ta->type),
                    phiq_ggml_type_name(tb->type), ta->type == tb->type ? " (bytes differ)" : "");
            fail();
        }
    }
    const int64_t n = phiq_gguf_n_tensors(b);
    phiq_gguf_close(a);
    phiq_gguf_close(b);
    return n;
}
