/* cmd_inspect.c — `phiq inspect FILE [--json]`: architecture, hyper-parameters,
 * metadata, per-tensor name/type/shape, file size and bits per weight of a
 * GGUF file, a .safetensors file or an HF checkpoint directory. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "core/common.h"
#include "formats/ggml_type.h"
#include "formats/gguf.h"
#include "formats/hf.h"
#include "formats/safetensors.h"
#include "model/hparams.h"
#include "phiq.h"

static void help(FILE *f) {
    fprintf(f, "usage: phiq inspect FILE [--json] [--no-tensors]\n"
               "\n"
               "Shows what a model file holds. FILE is a .gguf file, a .safetensors file or a Hugging Face\n"
               "checkpoint directory. Prints the architecture and hyper-parameters, the metadata keys (GGUF),\n"
               "the tensor count, each tensor's name, type and shape (GGUF: ne order, ne[0] innermost;\n"
               "safetensors: PyTorch order, outermost first), the file size, and the bits per weight\n"
               "(total tensor bits / total elements).\n"
               "\n"
               "  --json         one JSON object on stdout\n"
               "  --no-tensors   omit the per-tensor list\n"
               "  -h, --help     this help\n");
}

static const char *st_dtype_name(const phiq_st_tensor *t) { return t->dtype_name ? t->dtype_name : "?"; }

/* How a format lists its tensors: the JSON keys of the type and the dimensions, the text columns' widths. */
typedef struct tlayout {
    const char *type_key, *dims_key;
    int name_w, type_w;
} tlayout;
static const tlayout gguf_layout = {"type", "ne", 40, 7}, st_layout = {"dtype", "shape", 56, 5};

/* One tensor of a listing: {name, type, dims, bytes} added to ta, or a line of text. */
static void tensor_out(cJSON *ta, int json, const tlayout *lay, const char *name, const char *type, const int64_t *dims,
                       int n_dims, uint64_t nbytes) {
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddStringToObject(o, lay->type_key, type);
        cJSON *sh = cJSON_CreateArray();
        for (int d = 0; d < n_dims; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)dims[d]));
        cJSON_AddItemToObject(o, lay->dims_key, sh);
        cJSON_AddNumberToObject(o, "bytes", (double)nbytes);
        cJSON_AddItemToArray(ta, o);
    } else {
        char shape[128];
        int off = 0;
        for (int d = 0; d < n_dims && off < 100; d++)
            off += snprintf(shape + off, sizeof shape - (size_t)off, "%s%lld", d ? ", " : "", (long long)dims[d]);
        printf("  %-*s %-*s [%s]\n", lay->name_w, name, lay->type_w, type, shape);
    }
}

/* ---- GGUF ----------------------------------------------------------------------------- */
static cJSON *gguf_value_json(const phiq_gguf *g, int64_t i, char *txt, size_t cap) {
    int vt = phiq_gguf_kv_type(g, i);
    if (vt == PHIQ_GGUF_STRING) {
        const char *s;
        uint64_t n;
        if (phiq_gguf_get_str(g, phiq_gguf_kv_key(g, i), &s, &n) < 0) return cJSON_CreateNull();
        char *c = strndup(s, (size_t)n);
        cJSON *r = cJSON_CreateString(c ? c : "");
        snprintf(txt, cap, "\"%.*s%s\"", (int)(n > 60 ? 60 : n), s, n > 60 ? "..." : "");
        for (char *p = txt; *p; p++)
            if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
        free(c);
        return r;
    }
    if (vt == PHIQ_GGUF_ARRAY) {
        int et;
        uint64_t n;
        const void *d;
        phiq_gguf_kv_arr(g, i, &et, &n, &d);
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "array", phiq_gguf_vtype_name(et));
        cJSON_AddNumberToObject(r, "n", (double)n);
        snprintf(txt, cap, "[%s x %llu]", phiq_gguf_vtype_name(et), (unsigned long long)n);
        return r;
    }
    int64_t iv = 0;
    double fv = 0;
    phiq_gguf_kv_scalar(g, i, &iv, &fv);
    if (vt == PHIQ_GGUF_FLOAT32 || vt == PHIQ_GGUF_FLOAT64) {
        snprintf(txt, cap, "%g", fv);
        return cJSON_CreateNumber(fv);
    }
    if (vt == PHIQ_GGUF_BOOL) {
        snprintf(txt, cap, "%s", iv ? "true" : "false");
        return cJSON_CreateBool(iv != 0);
    }
    snprintf(txt, cap, "%lld", (long long)iv);
    return cJSON_CreateNumber((double)iv);
}

/* Where llama.cpp runs a PhiMoE checkpoint differently from Hugging Face's
 * modeling_phimoe.py, which phiq follows (src/models/phimoe.cpp and phi3.cpp,
 * conversion/phi.py in llama.cpp). */
static const char *const phimoe_llamacpp_diffs[] = {
    "routing: llama.cpp takes a softmax over all experts, the top 2, renormalised; Hugging Face's SparseMixer "
    "weights each pick by a softmax over only the experts within 2 x router_jitter_noise (relative) of it, the "
    "second with the first removed, not renormalised (same experts, different weights)",
    "norms: llama.cpp applies RMSNorm plus the bias; Hugging Face a LayerNorm (mean subtracted) with weight and bias",
    "LongRoPE attention factor: llama.cpp's own converter writes sqrt(1 + ln(max/orig) / ln(orig)) (1.19 for "
    "128K/4K), not short_mscale (1.2432); phiq writes short_mscale, and llama.cpp has no long_mscale",
    "LongRoPE factors: llama.cpp picks long or short once from the context size, Hugging Face by sequence length",
    "sliding window: llama.cpp's phimoe graph does not read it",
    NULL,
};

/* Prints (or adds to root as "llamacpp_differences") the notes above. */
static void phimoe_notes(int json, cJSON *root) {
    cJSON *a = json ? cJSON_AddArrayToObject(root, "llamacpp_differences") : NULL;
    if (!json) printf("llama.cpp runs PhiMoE differently (phiq follows Hugging Face; logits --phimoe-llamacpp gives llama.cpp's graph):\n");
    for (int i = 0; phimoe_llamacpp_diffs[i]; i++) {
        if (json) cJSON_AddItemToArray(a, cJSON_CreateString(phimoe_llamacpp_diffs[i]));
        else printf("  - %s\n", phimoe_llamacpp_diffs[i]);
    }
}

/* phi3small is phiq's own GGUF architecture (docs/FORMATS.md) */
static void phi3small_notes(int json, cJSON *root) {
    static const char note[] = "phi3small is phiq's own GGUF architecture: llama.cpp has no Phi-3-small graph (block-sparse "
                               "attention, GeGELU, muP) and will not load this file; phiq run/eval/logits do";
    if (json) cJSON_AddStringToObject(root, "note", note);
    else printf("note: %s\n", note);
}

static int inspect_gguf(const char *path, int json, int tensors) {
    phiq_gguf *g = phiq_gguf_open(path);
    if (!g) return phiq_cli_fail("inspect", "%s", phiq_error());
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject(), *ta = cJSON_CreateArray();
    char arch[64] = "?";
    const char *s;
    uint64_t n;
    if (phiq_gguf_find_kv(g, "general.architecture") >= 0 && phiq_gguf_get_str(g, "general.architecture", &s, &n) == 0)
        snprintf(arch, sizeof arch, "%.*s", (int)(n < 63 ? n : 63), s);
    if (!json)
        printf("%s: GGUF v%u, %.1f MB, alignment %u, architecture %s\nmetadata (%lld keys):\n", path,
               phiq_gguf_version(g), (double)phiq_gguf_file_size(g) / 1e6, phiq_gguf_alignment(g), arch,
               (long long)phiq_gguf_n_kv(g));
    for (int64_t i = 0; i < phiq_gguf_n_kv(g); i++) {
        char txt[160];
        cJSON *v = gguf_value_json(g, i, txt, sizeof txt);
        const char *key = phiq_gguf_kv_key(g, i);
        if (!json) printf("  %-48s %-8s %s\n", key, phiq_gguf_vtype_name(phiq_gguf_kv_type(g, i)), txt);
        cJSON_AddItemToObject(meta, key, v);
    }
    int64_t nt = phiq_gguf_n_tensors(g), nel = 0;
    uint64_t bytes = 0;
    if (!json && tensors) printf("tensors (%lld):\n", (long long)nt);
    for (int64_t i = 0; i < nt; i++) {
        const phiq_gguf_tensor *t = phiq_gguf_tensor_at(g, i);
        int64_t e = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        nel += e;
        bytes += t->nbytes;
        if (tensors) tensor_out(ta, json, &gguf_layout, t->name, phiq_ggml_type_name(t->type), t->ne, t->n_dims, t->nbytes);
    }
    double bpw = nel ? 8.0 * (double)bytes / (double)nel : 0;
    if (json) {
        cJSON_AddStringToObject(root, "format", "gguf");
        cJSON_AddStringToObject(root, "path", path);
        cJSON_AddNumberToObject(root, "file_size", (double)phiq_gguf_file_size(g));
        cJSON_AddNumberToObject(root, "version", phiq_gguf_version(g));
        cJSON_AddStringToObject(root, "architecture", arch);
        cJSON_AddItemToObject(root, "metadata", meta);
        cJSON_AddNumberToObject(root, "n_tensors", (double)nt);
        cJSON_AddNumberToObject(root, "n_elements", (double)nel);
        cJSON_AddNumberToObject(root, "tensor_bytes", (double)bytes);
        cJSON_AddNumberToObject(root, "bits_per_weight", bpw);
        if (tensors) cJSON_AddItemToObject(root, "tensors", ta);
        else cJSON_Delete(ta);
        if (!strcmp(arch, "phimoe")) phimoe_notes(json, root);
        if (!strcmp(arch, "phi3small")) phi3small_notes(json, root);
        phiq_cli_json_out(root, 0);
    } else {
        cJSON_Delete(meta);
        cJSON_Delete(ta);
        printf("%lld tensors, %lld elements (%.2fM), %.1f MB of tensor data, %.4f bits/weight\n", (long long)nt,
               (long long)nel, (double)nel / 1e6, (double)bytes / 1e6, bpw);
        if (!strcmp(arch, "phimoe")) phimoe_notes(json, root);
        if (!strcmp(arch, "phi3small")) phi3small_notes(json, root);
        cJSON_Delete(root);
    }
    phiq_gguf_close(g);
    return 0;
}

/* ---- safetensors / HF ---------------------------------------------------------------------- */
typedef struct tlist {
    int n;
    const phiq_st_tensor *(*at)(const void *, int);
    const void *obj;
} tlist;

static const phiq_st_tensor *st_at(const void *o, int i) { return phiq_st_tensor_at(o, i); }
static const phiq_st_tensor *hf_at(const void *o, int i) { return phiq_hf_tensor_at(o, i); }

static void tensors_out(const tlist *l, int json, int tensors, cJSON *root, uint64_t file_size) {
    int64_t nel = 0;
    uint64_t bytes = 0;
    cJSON *ta = cJSON_CreateArray();
    if (!json && tensors) printf("tensors (%d):\n", l->n);
    for (int i = 0; i < l->n; i++) {
        const phiq_st_tensor *t = l->at(l->obj, i);
        nel += t->n_elements;
        bytes += t->nbytes;
        if (tensors) tensor_out(ta, json, &st_layout, t->name, st_dtype_name(t), t->shape, t->n_dims, t->nbytes);
    }
    double bpw = nel ? 8.0 * (double)bytes / (double)nel : 0;
    if (json) {
        cJSON_AddNumberToObject(root, "file_size", (double)file_size);
        cJSON_AddNumberToObject(root, "n_tensors", l->n);
        cJSON_AddNumberToObject(root, "n_elements", (double)nel);
        cJSON_AddNumberToObject(root, "tensor_bytes", (double)bytes);
        cJSON_AddNumberToObject(root, "bits_per_weight", bpw);
        if (tensors) cJSON_AddItemToObject(root, "tensors", ta);
        else cJSON_Delete(ta);
    } else {
        cJSON_Delete(ta);
        printf("%d tensors, %lld elements (%.2fM), %.1f MB of tensor data (%.1f MB on disk), %.4f bits/weight\n",
               l->n, (long long)nel, (double)nel / 1e6, (double)bytes / 1e6, (double)file_size / 1e6, bpw);
    }
}

static int inspect_st(const char *path, int json, int tensors) {
    phiq_st *st = phiq_st_open(path);
    if (!st) return phiq_cli_fail("inspect", "%s", phiq_error());
    struct stat sb;
    uint64_t size = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    cJSON *root = cJSON_CreateObject();
    if (json) {
        cJSON_AddStringToObject(root, "format", "safetensors");
        cJSON_AddStringToObject(root, "path", path);
    } else {
        printf("%s: safetensors, %.1f MB\n", path, (double)size / 1e6);
    }
    tlist l = {phiq_st_n_tensors(st), st_at, st};
    tensors_out(&l, json, tensors, root, size);
    if (json) phiq_cli_json_out(root, 0);
    else cJSON_Delete(root);
    phiq_st_close(st);
    return 0;
}

static int inspect_hf(const char *dir, int json, int tensors) {
    phiq_hf *hf = phiq_hf_open(dir);
    if (!hf) return phiq_cli_fail("inspect", "%s", phiq_error());
    const phiq_hparams *hp = phiq_hf_hparams(hf);
    cJSON *root = cJSON_CreateObject(), *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "arch", phiq_arch_name(hp->arch));
    cJSON_AddNumberToObject(h, "n_vocab", hp->n_vocab);
    cJSON_AddNumberToObject(h, "n_embd", hp->n_embd);
    cJSON_AddNumberToObject(h, "n_layer", hp->n_layer);
    cJSON_AddNumberToObject(h, "n_head", hp->n_head);
    cJSON_AddNumberToObject(h, "n_head_kv", hp->n_head_kv);
    cJSON_AddNumberToObject(h, "head_dim", hp->head_dim);
    cJSON_AddNumberToObject(h, "n_ff", hp->n_ff);
    cJSON_AddNumberToObject(h, "n_rot", hp->n_rot);
    cJSON_AddNumberToObject(h, "n_ctx_train", hp->n_ctx_train);
    cJSON_AddNumberToObject(h, "n_ctx_orig", hp->n_ctx_orig);
    cJSON_AddNumberToObject(h, "rope_theta", hp->rope_theta);
    cJSON_AddNumberToObject(h, "norm_eps", hp->norm_eps);
    cJSON_AddNumberToObject(h, "sliding_window", hp->sliding_window);
    cJSON_AddBoolToObject(h, "tied_embeddings", hp->tied_embeddings);
    cJSON_AddNumberToObject(h, "n_rope_factors", hp->n_rope_factors);
    cJSON_AddNumberToObject(h, "rope_attn_factor", hp->rope_attn_factor);
    if (hp->n_rope_factors > 0 && hp->rope_attn_factor_long != hp->rope_attn_factor)
        cJSON_AddNumberToObject(h, "rope_attn_factor_long", hp->rope_attn_factor_long);
    if (hp->arch == PHIQ_ARCH_PHI3SMALL) { /* modeling_phi3_small.py's extras */
        cJSON_AddNumberToObject(h, "mup_embedding_multiplier", hp->emb_mult);
        cJSON_AddNumberToObject(h, "mup_width_multiplier", hp->logit_div);
        cJSON_AddNumberToObject(h, "attention_scale", hp->attn_scale);
        cJSON_AddNumberToObject(h, "gegelu_limit", hp->gegelu_limit);
        cJSON_AddNumberToObject(h, "blocksparse_block_size", hp->bs_block);
        cJSON_AddNumberToObject(h, "blocksparse_local_blocks", hp->bs_local);
        cJSON_AddNumberToObject(h, "blocksparse_vert_stride", hp->bs_stride);
        cJSON_AddBoolToObject(h, "blocksparse_homo_head", hp->bs_homo);
        cJSON_AddNumberToObject(h, "dense_every_n_layers", hp->bs_dense_every);
        cJSON_AddNumberToObject(h, "n_dummy_tokens", hp->n_dummy);
    }
    if (hp->arch == PHIQ_ARCH_PHIMOE) {
        cJSON_AddNumberToObject(h, "n_expert", hp->n_expert);
        cJSON_AddNumberToObject(h, "n_expert_used", hp->n_expert_used);
        cJSON_AddNumberToObject(h, "router_jitter_noise", hp->router_jitter);
    }
    uint64_t size = phiq_hf_total_bytes(hf);
    if (json) {
        cJSON_AddStringToObject(root, "format", "hf");
        cJSON_AddStringToObject(root, "path", dir);
        cJSON_AddStringToObject(root, "architecture", phiq_hf_architecture(hf));
        cJSON_AddStringToObject(root, "format", phiq_hf_is_mlx(hf) ? "mlx" : "hf");
        cJSON_AddItemToObject(root, "hparams", h);
    } else {
        printf("%s: %s, %s (%s)\nhyper-parameters:\n", dir,
               phiq_hf_is_mlx(hf) ? "MLX checkpoint (affine-quantized .weight/.scales/.biases, dequantized on load)"
                                  : "Hugging Face checkpoint",
               phiq_hf_architecture(hf), phiq_arch_name(hp->arch));
        const cJSON *e;
        cJSON_ArrayForEach(e, h) {
            if (cJSON_IsBool(e)) printf("  %-18s %s\n", e->string, cJSON_IsTrue(e) ? "true" : "false");
            else if (cJSON_IsString(e)) printf("  %-18s %s\n", e->string, e->valuestring);
            else printf("  %-18s %g\n", e->string, e->valuedouble);
        }
        cJSON_Delete(h);
    }
    tlist l = {phiq_hf_n_tensors(hf), hf_at, hf};
    tensors_out(&l, json, tensors, root, size);
    if (hp->arch == PHIQ_ARCH_PHIMOE) phimoe_notes(json, root);
    if (hp->arch == PHIQ_ARCH_PHI3SMALL) phi3small_notes(json, root);
    if (json) phiq_cli_json_out(root, 0);
    else cJSON_Delete(root);
    phiq_hf_close(hf);
    return 0;
}

int phiq_cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    int json = 0, tensors = 1;
    for (int i = 1; i < argc; i++) {
        if (phiq_cli_is(argv[i], "-h", "--help")) {
            help(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--no-tensors")) {
            tensors = 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "phiq inspect: unknown option '%s' (see phiq inspect --help)\n", argv[i]);
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            fprintf(stderr, "phiq inspect: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!path) {
        help(stderr);
        return 2;
    }
    if (!(path = phiq_cli_model_path("inspect", path))) return 1;
    if (phiq_dir_exists(path)) return inspect_hf(path, json, tensors);
    FILE *f = fopen(path, "rb");
    if (!f) return phiq_cli_fail("inspect", "%s: cannot open", path);
    unsigned char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    if (got == 4 && !memcmp(magic, "GGUF", 4)) return inspect_gguf(path, json, tensors);
    size_t n = strlen(path);
    if (n >= 12 && !strcmp(path + n - 12, ".safetensors")) return inspect_st(path, json, tensors);
    if (got == 4 && magic[3] == 0 && magic[2] == 0) return inspect_st(path, json, tensors); /* u64 header length */
    return phiq_cli_fail("inspect", "%s: neither GGUF, safetensors nor an HF checkpoint directory", path);
}
