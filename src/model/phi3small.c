/* phi3small.c — Phi-3-small's own arithmetic (see phi3small.h): QKV regroup,
 * block-sparse attention of one head, GeGELU, logit post-processing, its GGUF
 * keys and their checks. Semantics from modeling_phi3_small.py,
 * triton_flash_blocksparse_attn.py and configuration_phi3_small.py (doc §2d). */
#include "model/phi3small.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "core/common.h"
#include "formats/ggml_type.h"
#include "formats/gguf.h"
#include "kernels/attn.h"
#include "kernels/ops.h"
#include "model/model.h"

/* phiq's GGUF keys (prefixed "phi3small."); llama.cpp has no such architecture */
#define K_EMB "embedding_multiplier"            /* mup_embedding_multiplier (0: none) */
#define K_WIDTH "width_multiplier"              /* mup_width_multiplier: logits are divided by it (0: none) */
#define K_SCALE "attention.scale"               /* the softmax scale */
#define K_LIMIT "gegelu_limit"                  /* inf: no clamp */
#define K_PSCALE "rope.position_scale"          /* rope_position_scale */
#define K_BLOCK "attention.blocksparse.block_size"
#define K_LOCAL "attention.blocksparse.local_blocks"
#define K_STRIDE "attention.blocksparse.vert_stride"
#define K_HOMO "attention.blocksparse.homo_head"
#define K_DENSE "attention.dense_every_n_layers" /* 0: every layer block-sparse */
#define K_DUMMY "dummy_token_ids"

static const char *key(char *buf, size_t cap, const char *suffix) {
    snprintf(buf, cap, "phi3small.%s", suffix);
    return buf;
}

int phiq_phi3small_gguf_write(struct phiq_gguf_writer *w, const phiq_hparams *hp) {
    char k[96];
    int rc;
    if ((rc = phiq_gguf_writer_set_f32(w, key(k, sizeof k, K_EMB), hp->emb_mult)) < 0 ||
        (rc = phiq_gguf_writer_set_f32(w, key(k, sizeof k, K_WIDTH), hp->logit_div)) < 0 ||
        (rc = phiq_gguf_writer_set_f32(w, key(k, sizeof k, K_SCALE), hp->attn_scale)) < 0 ||
        (rc = phiq_gguf_writer_set_f32(w, key(k, sizeof k, K_LIMIT), hp->gegelu_limit)) < 0 ||
        (rc = phiq_gguf_writer_set_f32(w, key(k, sizeof k, K_PSCALE), hp->rope_pos_scale)) < 0 ||
        (rc = phiq_gguf_writer_set_u32(w, key(k, sizeof k, K_BLOCK), (uint32_t)hp->bs_block)) < 0 ||
        (rc = phiq_gguf_writer_set_u32(w, key(k, sizeof k, K_LOCAL), (uint32_t)hp->bs_local)) < 0 ||
        (rc = phiq_gguf_writer_set_u32(w, key(k, sizeof k, K_STRIDE), (uint32_t)hp->bs_stride)) < 0 ||
        (rc = phiq_gguf_writer_set_bool(w, key(k, sizeof k, K_HOMO), hp->bs_homo)) < 0 ||
        (rc = phiq_gguf_writer_set_u32(w, key(k, sizeof k, K_DENSE), (uint32_t)hp->bs_dense_every)) < 0)
        return rc;
    int32_t ids[PHIQ_MAX_DUMMY];
    for (int i = 0; i < hp->n_dummy; i++) ids[i] = hp->dummy_ids[i];
    return phiq_gguf_writer_set_arr(w, key(k, sizeof k, K_DUMMY), PHIQ_GGUF_INT32, ids, (uint64_t)hp->n_dummy);
}

int phiq_phi3small_gguf_read(struct phiq_gguf *g, phiq_hparams *hp) {
    char k[96];
    uint32_t u[4];
    bool homo;
    int rc;
    if ((rc = phiq_gguf_get_f32(g, key(k, sizeof k, K_EMB), &hp->emb_mult)) < 0 ||
        (rc = phiq_gguf_get_f32(g, key(k, sizeof k, K_WIDTH), &hp->logit_div)) < 0 ||
        (rc = phiq_gguf_get_f32(g, key(k, sizeof k, K_SCALE), &hp->attn_scale)) < 0 ||
        (rc = phiq_gguf_get_f32(g, key(k, sizeof k, K_LIMIT), &hp->gegelu_limit)) < 0 ||
        (rc = phiq_gguf_get_f32(g, key(k, sizeof k, K_PSCALE), &hp->rope_pos_scale)) < 0 ||
        (rc = phiq_gguf_get_u32(g, key(k, sizeof k, K_BLOCK), &u[0])) < 0 ||
        (rc = phiq_gguf_get_u32(g, key(k, sizeof k, K_LOCAL), &u[1])) < 0 ||
        (rc = phiq_gguf_get_u32(g, key(k, sizeof k, K_STRIDE), &u[2])) < 0 ||
        (rc = phiq_gguf_get_bool(g, key(k, sizeof k, K_HOMO), &homo)) < 0 ||
        (rc = phiq_gguf_get_u32(g, key(k, sizeof k, K_DENSE), &u[3])) < 0)
        return rc; /* the getter's message names the key */
    for (int i = 0; i < 4; i++)
        if (u[i] > (1u << 24)) return phiq_fail(PHIQ_EFORMAT, "%s: phi3small block-sparse key %d out of range", phiq_gguf_path(g), i);
    hp->bs_block = (int)u[0];
    hp->bs_local = (int)u[1];
    hp->bs_stride = (int)u[2];
    hp->bs_dense_every = (int)u[3];
    hp->bs_homo = homo;
    int64_t i = phiq_gguf_find_kv(g, key(k, sizeof k, K_DUMMY));
    int et;
    uint64_t n;
    const void *data;
    if (i < 0 || phiq_gguf_kv_arr(g, i, &et, &n, &data) < 0 || et != PHIQ_GGUF_INT32 || n > PHIQ_MAX_DUMMY)
        return phiq_fail(PHIQ_EFORMAT, "%s: %s missing or not an int32 array of at most %d", phiq_gguf_path(g), k, PHIQ_MAX_DUMMY);
    for (uint64_t j = 0; j < n; j++) memcpy(&hp->dummy_ids[j], (const char *)data + 4 * j, 4);
    hp->n_dummy = (int)n;
    return 0;
}

int phiq_phi3small_check(const char *file, const phiq_hparams *hp) {
    if (hp->bs_block < 1 || hp->bs_local < 1 || hp->bs_stride < 1 || hp->bs_dense_every < 0)
        return phiq_fail(PHIQ_EFORMAT, "%s: phi3small block-sparse parameters must be positive (block %d, local blocks %d, vertical stride %d)",
                         file, hp->bs_block, hp->bs_local, hp->bs_stride);
    if (!(hp->attn_scale > 0 && hp->attn_scale < 1e3f) || !(hp->gegelu_limit > 0) || !(fabsf(hp->emb_mult) < 1e6f) ||
        !(fabsf(hp->logit_div) < 1e6f) || !(hp->rope_pos_scale > 0 && hp->rope_pos_scale < 1e6f))
        return phiq_fail(PHIQ_EFORMAT, "%s: phi3small attention scale, gegelu limit or muP multipliers out of range", file);
    for (int i = 0; hp->n_vocab > 0 && i < hp->n_dummy; i++) /* GGUF: checked again once the embedding gives n_vocab */
        if (hp->dummy_ids[i] < 0 || hp->dummy_ids[i] >= hp->n_vocab)
            return phiq_fail(PHIQ_EFORMAT, "%s: dummy token id %d is not below the vocabulary size %d", file, hp->dummy_ids[i], hp->n_vocab);
    return 0;
}

void phiq_phi3small_regroup_qkv(const phiq_hparams *hp, float *row, float *scratch) {
    const int hd = hp->head_dim, nkv = hp->n_head_kv, qpk = hp->n_head / nkv;
    const size_t nq = (size_t)hp->n_head * hd, nk = (size_t)nkv * hd, hb = (size_t)hd * sizeof(float);
    memcpy(scratch, row, (nq + 2 * nk) * sizeof(float));
    for (int g = 0; g < nkv; g++) {
        const float *grp = scratch + (size_t)g * (qpk + 2) * hd;
        memcpy(row + (size_t)g * qpk * hd, grp, (size_t)qpk * hb);
        memcpy(row + nq + (size_t)g * hd, grp + (size_t)qpk * hd, hb);
        memcpy(row + nq + nk + (size_t)g * hd, grp + (size_t)(qpk + 1) * hd, hb);
    }
}

/* K or V row slice of KV head `off / head_dim` at pos, as float32. */
static void kv_slice(const struct phiq_kv *kv, int v, int layer, int pos, int off, float *out, int hd) {
    const uint8_t *r = phiq_kv_row(kv, v, layer, pos);
    if (kv->type == PHIQ_GGML_TYPE_Q8_0) r += (size_t)off / 32 * 34;
    else r += (size_t)off * (kv->type == PHIQ_GGML_TYPE_F32 ? 4 : 2);
    phiq_row_to_f32(kv->type, r, out, hd);
}

void phiq_phi3small_attn_head(const phiq_hparams *hp, const struct phiq_kv *kv, int layer, int h, int p, const float *q,
                              float scale, float *s, float *tmp, float *o) {
    const int hd = hp->head_dim, B = hp->bs_block, qb = p / B;
    const int off = (h / (hp->n_head / hp->n_head_kv)) * hd;
    float *qr = tmp, *row = tmp + hd;
    memcpy(qr, q, (size_t)hd * sizeof(float));
    /* a Q8_0 cache holds K and V Walsh-Hadamard-rotated (kv.h): rotating q keeps q.k */
    for (int c = 0; kv->type == PHIQ_GGML_TYPE_Q8_0 && kv->rot_k && c < hd; c += kv->rot_k) phiq_attn_fwht(qr + c, kv->rot_k);
    int n = 0;
    for (int kb = 0; kb <= qb; kb++) {
        if (!phiq_phi3small_block_visible(hp, h, qb, kb)) continue;
        int end = kb * B + B - 1 < p ? kb * B + B - 1 : p;
        for (int k = kb * B; k <= end; k++) {
            kv_slice(kv, 0, layer, k, off, row, hd);
            float d = 0;
            for (int i = 0; i < hd; i++) d += qr[i] * row[i];
            s[n++] = d * scale;
        }
    }
    phiq_softmax(s, n);
    memset(o, 0, (size_t)hd * sizeof(float));
    n = 0;
    for (int kb = 0; kb <= qb; kb++) {
        if (!phiq_phi3small_block_visible(hp, h, qb, kb)) continue;
        int end = kb * B + B - 1 < p ? kb * B + B - 1 : p;
        for (int k = kb * B; k <= end; k++) {
            kv_slice(kv, 1, layer, k, off, row, hd);
            float a = s[n++];
            for (int i = 0; i < hd; i++) o[i] += a * row[i];
        }
    }
    for (int c = 0; kv->type == PHIQ_GGML_TYPE_Q8_0 && kv->rot_v && c < hd; c += kv->rot_v) phiq_attn_fwht(o + c, kv->rot_v);
}

void phiq_phi3small_gegelu(float *a, int F, float limit) {
    for (int i = 0; i < F; i++) {
        float g = a[2 * i], l = a[2 * i + 1];
        if (!isinf(g) && g > limit) g = limit;
        if (!isinf(l)) l = l > limit ? limit : l < -limit ? -limit : l;
        a[i] = g / (1.0f + expf(-1.702f * g)) * (l + 1.0f);
    }
}

void phiq_phi3small_logits(const phiq_hparams *hp, float *logits, int rows, int V) {
    for (int r = 0; r < rows; r++) {
        float *l = logits + (size_t)r * (size_t)V;
        if (hp->logit_div != 0.0f)
            for (int i = 0; i < V; i++) l[i] /= hp->logit_div;
        for (int i = 0; i < hp->n_dummy; i++)
            if (hp->dummy_ids[i] < V) l[hp->dummy_ids[i]] = -FLT_MAX;
    }
}
