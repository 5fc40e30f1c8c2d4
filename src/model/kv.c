/* kv.c — the KV cache: per layer, keys and values of every cached position,
 * float16 (default, as llama.cpp), float32, or Q8_0 (ggml's block_q8_0,
 * quantized as quantize_row_q8_0_ref: 34 bytes per 32 values, 47% less than
 * f16; rows Walsh-Hadamard rotated first as llama.cpp does, see rot_k in
 * model.h). Layout [layer][pos][row_bytes]; a row holds n_kv_head *
 * head_dim values, head h's slice at h * head_dim. */
#include <stdlib.h>

#include "core/common.h"
#include "formats/ggml_blocks.h"
#include "formats/ggml_type.h"
#include "kernels/attn.h"
#include "model/model.h"
#include "quant/quant.h"


int phiq_kv_init(phiq_kv *kv, int type, int n_layer, int n_ctx, int dim, int head_dim) {
    memset(kv, 0, sizeof *kv);
    size_t row;
    if (type == PHIQ_GGML_TYPE_F16) row = (size_t)dim * 2;
    else if (type == PHIQ_GGML_TYPE_F32) row = (size_t)dim * 4;
    else if (type == PHIQ_GGML_TYPE_Q8_0) {
        if (head_dim <= 0 || head_dim % PHIQ_QK || dim % PHIQ_QK)
            return phiq_fail(PHIQ_EUNSUPPORTED, "q8_0 KV cache needs head_dim a multiple of 32; this model's is %d", head_dim);
        row = (size_t)phiq_ggml_row_size(PHIQ_GGML_TYPE_Q8_0, dim);
        /* llama.cpp (LLAMA_ATTN_ROT_DISABLE is its switch) rotates before a
         * quantized cache when head_dim % 64 == 0: outliers spread over the
         * block, so the int8 steps are finer */
        const char *off = getenv("PHIQ_ATTN_ROT_DISABLE");
        if (head_dim % 64 == 0 && !(off && atoi(off))) {
            int r = 64;
            while (head_dim % (2 * r) == 0) r *= 2;
            kv->rot_k = r;
            kv->rot_v = 64;
        }
    } else
        return phiq_fail(PHIQ_EUNSUPPORTED, "KV cache type %s is not supported (f16, f32 or q8_0)", phiq_ggml_type_name(type));
    size_t n = (size_t)n_layer * (size_t)n_ctx * row;
    kv->type = type;
    kv->n_layer = n_layer;
    kv->n_ctx = n_ctx;
    kv->dim = dim;
    kv->row_bytes = row;
    /* decode at depth streams the whole cache every token: huge pages read
     * faster (bench --probe), as for the weights; small caches (tests, the
     * sanitizers) stay on the heap */
    if (n >= ((size_t)16 << 20)) {
        size_t hk = n, hv = n;
        kv->k = phiq_huge_alloc(&hk);
        kv->v = phiq_huge_alloc(&hv);
        kv->huge_bytes = kv->k ? hk : hv; /* both rounded alike */
        if (!kv->k || !kv->v) {
            phiq_kv_free(kv);
            return phiq_fail(PHIQ_ENOMEM, "KV cache: cannot allocate %zu MB", 2 * n >> 20);
        }
        return 0;
    }
    kv->k = calloc(n ? n : 1, 1);
    kv->v = calloc(n ? n : 1, 1);
    if (!kv->k || !kv->v) {
        phiq_kv_free(kv);
        return phiq_fail(PHIQ_ENOMEM, "KV cache: cannot allocate %zu MB", 2 * n >> 20);
    }
    return 0;
}

void phiq_kv_free(phiq_kv *kv) {
    if (kv->huge_bytes) {
        phiq_huge_free(kv->k, kv->huge_bytes);
        phiq_huge_free(kv->v, kv->huge_bytes);
    } else {
        free(kv->k);
        free(kv->v);
    }
    kv->k = kv->v = NULL;
    kv->huge_bytes = 0;
}

void phiq_kv_store(phiq_kv *kv, int layer, int pos, const float *k, const float *v) {
    uint8_t *kr = phiq_kv_row(kv, 0, layer, pos), *vr = phiq_kv_row(kv, 1, layer, pos);
    if (kv->type == PHIQ_GGML_TYPE_F32) {
        memcpy(kr, k, (size_t)kv->dim * 4);
        memcpy(vr, v, (size_t)kv->dim * 4);
    } else if (kv->type == PHIQ_GGML_TYPE_Q8_0) {
        /* dim is a multiple of 32, so every head's slice is whole blocks */
        phiq_quantize_row_q8_0(k, kr, kv->dim);
        phiq_quantize_row_q8_0(v, vr, kv->dim);
    } else {
        const phiq_attn_kernels *ak = phiq_attn_kernels_get();
        ak->to_f16((uint16_t *)(void *)kr, k, kv->dim);
        ak->to_f16((uint16_t *)(void *)vr, v, kv->dim);
    }
}

/* The f32 cache's attention (the f16 and q8_0 caches have kernels,
 * kernels/attn.h): q . K[layer][pos][off .. off+n). */
float phiq_kv_dot_k(const phiq_kv *kv, int layer, int pos, int off, const float *q, int n) {
    return phiq_dot_f32((const float *)(const void *)phiq_kv_row(kv, 0, layer, pos) + off, q, n);
}

/* out += a * V[layer][pos][off .. off+n), f32 cache. */
void phiq_kv_axpy_v(const phiq_kv *kv, int layer, int pos, int off, float a, float *out, int n) {
    const float *vv = (const float *)(const void *)phiq_kv_row(kv, 1, layer, pos) + off;
    for (int i = 0; i < n; i++) out[i] += a * vv[i];
}
