/* kv.c — the KV cache: per layer, keys and values of every cached position,
 * float16 (default, as llama.cpp) or float32. Layout [layer][pos][kv_head * head_dim]. */
#include <stdlib.h>

#include "core/common.h"
#include "formats/ggml_type.h"
#include "kernels/attn.h"
#include "model/model.h"

int phiq_kv_init(phiq_kv *kv, int type, int n_layer, int n_ctx, int dim) {
    memset(kv, 0, sizeof *kv);
    if (type != PHIQ_GGML_TYPE_F16 && type != PHIQ_GGML_TYPE_F32)
        return phiq_fail(PHIQ_EUNSUPPORTED, "KV cache type %s is not supported (f16 or f32)", phiq_ggml_type_name(type));
    size_t elt = type == PHIQ_GGML_TYPE_F16 ? 2 : 4;
    size_t n = (size_t)n_layer * (size_t)n_ctx * (size_t)dim;
    kv->type = type;
    kv->n_layer = n_layer;
    kv->n_ctx = n_ctx;
    kv->dim = dim;
    kv->k = calloc(n ? n : 1, elt);
    kv->v = calloc(n ? n : 1, elt);
    if (!kv->k || !kv->v) {
        phiq_kv_free(kv);
        return phiq_fail(PHIQ_ENOMEM, "KV cache: cannot allocate %zu MB", 2 * n * elt >> 20);
    }
    return 0;
}

void phiq_kv_free(phiq_kv *kv) {
    free(kv->k);
    free(kv->v);
    kv->k = kv->v = NULL;
}

static size_t phiq_kv_index(const phiq_kv *kv, int layer, int pos) {
    return ((size_t)layer * (size_t)kv->n_ctx + (size_t)pos) * (size_t)kv->dim;
}

void phiq_kv_store(phiq_kv *kv, int layer, int pos, const float *k, const float *v) {
    size_t o = phiq_kv_index(kv, layer, pos);
    if (kv->type == PHIQ_GGML_TYPE_F32) {
        memcpy((float *)kv->k + o, k, (size_t)kv->dim * 4);
        memcpy((float *)kv->v + o, v, (size_t)kv->dim * 4);
    } else {
        const phiq_attn_kernels *ak = phiq_attn_kernels_get();
        ak->to_f16((uint16_t *)kv->k + o, k, kv->dim);
        ak->to_f16((uint16_t *)kv->v + o, v, kv->dim);
    }
}

float phiq_kv_dot_k(const phiq_kv *kv, int layer, int pos, int off, const float *q, int n) {
    size_t o = phiq_kv_index(kv, layer, pos) + (size_t)off;
    if (kv->type == PHIQ_GGML_TYPE_F32) return phiq_dot_f32((const float *)kv->k + o, q, n);
    const uint16_t *kk = (const uint16_t *)kv->k + o;
    float acc[4] = {0};
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++) acc[j] += phiq_ops_h2f(kk[i + j]) * q[i + j];
    float s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (; i < n; i++) s += phiq_ops_h2f(kk[i]) * q[i];
    return s;
}

void phiq_kv_axpy_v(const phiq_kv *kv, int layer, int pos, int off, float a, float *out, int n) {
    size_t o = phiq_kv_index(kv, layer, pos) + (size_t)off;
    if (kv->type == PHIQ_GGML_TYPE_F32) {
        const float *vv = (const float *)kv->v + o;
        for (int i = 0; i < n; i++) out[i] += a * vv[i];
    } else {
        const uint16_t *vv = (const uint16_t *)kv->v + o;
        for (int i = 0; i < n; i++) out[i] += a * phiq_ops_h2f(vv[i]);
    }
}
