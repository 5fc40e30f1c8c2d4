/* load_gguf.c — the tokenizer.ggml.* keys of a GGUF file to and from the
 * neutral phiq_tok_vocab (defaults and the Phi-3 RSTRIP rule as llama.cpp's
 * llama_vocab::load; keys written in llama.cpp's converter order), and
 * phiq_tokenizer_load, which picks a loader by path. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

static char *dup_str(const phiq_gguf *g, const char *key) {
    const char *s;
    uint64_t n;
    if (phiq_gguf_find_kv(g, key) < 0 || phiq_gguf_get_str(g, key, &s, &n) < 0) return NULL;
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* Element i of the string array at kv index k, NUL-terminated, malloc'd
 * into *dst; <0 (the error set, naming path when out of memory) on failure. */
static int arr_str_dup(const phiq_gguf *g, int64_t k, uint64_t i, const char *path, char **dst) {
    const char *s;
    uint64_t l;
    const int rc = phiq_gguf_arr_str(g, k, i, &s, &l);
    if (rc < 0) return rc;
    if (!(*dst = malloc(l + 1))) return phiq_fail(PHIQ_ENOMEM, "%s: out of memory", path);
    memcpy(*dst, s, l);
    (*dst)[l] = 0;
    return 0;
}

static void get_id(const phiq_gguf *g, const char *key, int32_t *out) {
    uint32_t u;
    if (phiq_gguf_find_kv(g, key) >= 0 && phiq_gguf_get_u32(g, key, &u) == 0) *out = u > INT32_MAX ? -1 : (int32_t)u;
}

static void get_bool(const phiq_gguf *g, const char *key, bool *out) {
    bool b;
    if (phiq_gguf_find_kv(g, key) >= 0 && phiq_gguf_get_bool(g, key, &b) == 0) *out = b;
}

phiq_tok_vocab *phiq_tok_vocab_from_gguf(const phiq_gguf *g) {
    const char *path = phiq_gguf_path(g);
    char *model = dup_str(g, "tokenizer.ggml.model");
    if (!model) return phiq_fail_null(PHIQ_EUNSUPPORTED, "%s: no tokenizer.ggml.model (no vocabulary in this file)", path);
    int kind = !strcmp(model, "llama") ? PHIQ_TOK_MODEL_SPM : !strcmp(model, "gpt2") ? PHIQ_TOK_MODEL_BPE : 0;
    if (!kind) {
        phiq_fail(PHIQ_EUNSUPPORTED, "%s: tokenizer model '%s' is not supported (llama or gpt2)", path, model);
        free(model);
        return NULL;
    }
    free(model);
    phiq_tok_vocab *v = NULL;
    int64_t ki = phiq_gguf_find_kv(g, "tokenizer.ggml.tokens");
    int et;
    uint64_t n;
    const void *data;
    if (ki < 0 || phiq_gguf_kv_arr(g, ki, &et, &n, &data) < 0 || et != PHIQ_GGUF_STRING || n == 0 || n > 16777216) {
        phiq_fail(PHIQ_EFORMAT, "%s: tokenizer.ggml.tokens missing or not a non-empty string array", path);
        return NULL;
    }
    v = phiq_tok_vocab_new(kind, (int32_t)n);
    if (!v) goto oom;
    for (uint64_t i = 0; i < n; i++) {
        if (arr_str_dup(g, ki, i, path, &v->tokens[i]) < 0) goto fail;
        v->types[i] = PHIQ_TOK_TYPE_NORMAL;
    }
    int64_t si = phiq_gguf_find_kv(g, "tokenizer.ggml.scores");
    if (si >= 0 && kind == PHIQ_TOK_MODEL_SPM) {
        uint64_t sn;
        if (phiq_gguf_kv_arr(g, si, &et, &sn, &data) < 0 || sn != n || (et != PHIQ_GGUF_FLOAT32 && et != PHIQ_GGUF_INT32)) {
            phiq_fail(PHIQ_EFORMAT, "%s: tokenizer.ggml.scores must be %llu float32 values", path, (unsigned long long)n);
            goto fail;
        }
        for (uint64_t i = 0; i < n; i++) {
            if (et == PHIQ_GGUF_FLOAT32) memcpy(&v->scores[i], (const char *)data + 4 * i, 4);
            else {
                int32_t x;
                memcpy(&x, (const char *)data + 4 * i, 4);
                v->scores[i] = (float)x;
            }
        }
    }
    int64_t ti = phiq_gguf_find_kv(g, "tokenizer.ggml.token_type");
    if (ti >= 0) {
        uint64_t tn;
        if (phiq_gguf_kv_arr(g, ti, &et, &tn, &data) < 0 || tn != n || (et != PHIQ_GGUF_INT32 && et != PHIQ_GGUF_UINT32)) {
            phiq_fail(PHIQ_EFORMAT, "%s: tokenizer.ggml.token_type must be %llu int32 values", path, (unsigned long long)n);
            goto fail;
        }
        for (uint64_t i = 0; i < n; i++) memcpy(&v->types[i], (const char *)data + 4 * i, 4);
    }
    int64_t mi = phiq_gguf_find_kv(g, "tokenizer.ggml.merges");
    /* phiq's phi3small files keep Phi3SmallTokenizer's tiktoken rule (no merges list) */
    char *arch = dup_str(g, "general.architecture");
    bool tiktoken_rule = arch && !strcmp(arch, "phi3small") && mi < 0;
    free(arch);
    if (kind == PHIQ_TOK_MODEL_BPE && !tiktoken_rule) {
        uint64_t mn;
        if (mi < 0 || phiq_gguf_kv_arr(g, mi, &et, &mn, &data) < 0 || et != PHIQ_GGUF_STRING || mn > 16777216) {
            phiq_fail(PHIQ_EFORMAT, "%s: tokenizer.ggml.merges missing or not a string array", path);
            goto fail;
        }
        if (!(v->merges = calloc(mn + 1, sizeof *v->merges))) goto oom;
        for (uint64_t i = 0; i < mn; i++) {
            if (arr_str_dup(g, mi, i, path, &v->merges[i]) < 0) goto fail;
            v->n_merges = (int32_t)i + 1;
        }
    }
    v->pre = dup_str(g, "tokenizer.ggml.pre");
    if (!v->pre && !(v->pre = strdup("default"))) goto oom;
    if (kind == PHIQ_TOK_MODEL_BPE && !phiq_pretok_regex(v->pre)) {
        phiq_fail(PHIQ_EUNSUPPORTED, "%s: pre-tokenizer '%s' is not supported (gpt-2, phi-2, dbrx, gpt-4o)", path, v->pre);
        goto fail;
    }
    if (kind == PHIQ_TOK_MODEL_SPM) {
        v->bos_id = 1;
        v->eos_id = 2;
        v->unk_id = 0;
        v->add_bos = true;
        v->add_space_prefix = true;
    }
    get_id(g, "tokenizer.ggml.bos_token_id", &v->bos_id);
    get_id(g, "tokenizer.ggml.eos_token_id", &v->eos_id);
    get_id(g, "tokenizer.ggml.unknown_token_id", &v->unk_id);
    get_id(g, "tokenizer.ggml.padding_token_id", &v->pad_id);
    get_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos);
    get_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos);
    get_bool(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix);
    int32_t eot = -1;
    get_id(g, "tokenizer.ggml.eot_token_id", &eot);
    if (eot >= 0 && eot < v->n_tokens) {
        if (!(v->eog_ids = malloc(sizeof *v->eog_ids))) goto oom;
        v->eog_ids[0] = eot;
        v->n_eog = 1;
    }
    v->chat_template = dup_str(g, "tokenizer.chat_template");
    /* llama.cpp: for models named phi-3/phi3, every special token but <unk>,
     * <s> and <|endoftext|> eats the whitespace after it, and so does </s>. */
    char *name = dup_str(g, "general.name");
    if (name) {
        for (char *p = name; *p; p++) *p = (char)tolower((unsigned char)*p);
        if (strstr(name, "phi-3") || strstr(name, "phi3")) {
            for (int32_t i = 0; i < v->n_tokens; i++) {
                int ty = v->types[i];
                const char *s = v->tokens[i];
                if (ty == PHIQ_TOK_TYPE_CONTROL || ty == PHIQ_TOK_TYPE_USER_DEFINED || ty == PHIQ_TOK_TYPE_UNKNOWN ||
                    !strcmp(s, "</s>"))
                    v->attrs[i] |= PHIQ_TOK_ATTR_RSTRIP;
                if (!strcmp(s, "<unk>") || !strcmp(s, "<s>") || !strcmp(s, "<|endoftext|>")) v->attrs[i] &= (uint8_t)~PHIQ_TOK_ATTR_RSTRIP;
            }
        }
        free(name);
    }
    return v;
oom:
    phiq_fail(PHIQ_ENOMEM, "%s: out of memory", path);
fail:
    phiq_tok_vocab_free(v);
    return NULL;
}

phiq_tokenizer *phiq_tokenizer_from_gguf(const phiq_gguf *g) {
    phiq_tok_vocab *v = phiq_tok_vocab_from_gguf(g);
    if (!v) return NULL;
    phiq_tokenizer *t = phiq_tokenizer_from_vocab(v);
    if (!t) phiq_error_prefix("%s", phiq_gguf_path(g));
    phiq_tok_vocab_free(v);
    return t;
}

int phiq_tok_vocab_to_gguf(const phiq_tok_vocab *v, phiq_gguf_writer *w) {
    int rc;
    bool spm = v->model == PHIQ_TOK_MODEL_SPM;
    if ((rc = phiq_gguf_writer_set_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2")) < 0) return rc;
    if ((rc = phiq_gguf_writer_set_str(w, "tokenizer.ggml.pre", v->pre ? v->pre : "default")) < 0) return rc;
    if ((rc = phiq_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, NULL,
                                           (uint64_t)v->n_tokens)) < 0)
        return rc;
    if (spm && v->scores &&
        (rc = phiq_gguf_writer_set_arr(w, "tokenizer.ggml.scores", PHIQ_GGUF_FLOAT32, v->scores, (uint64_t)v->n_tokens)) < 0)
        return rc;
    if ((rc = phiq_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", PHIQ_GGUF_INT32, v->types, (uint64_t)v->n_tokens)) < 0)
        return rc;
    if (!spm && v->n_merges > 0 &&
        (rc = phiq_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges, NULL,
                                           (uint64_t)v->n_merges)) < 0)
        return rc;
    const struct { const char *key; int32_t id; } ids[] = {{"tokenizer.ggml.bos_token_id", v->bos_id},
                                                          {"tokenizer.ggml.eos_token_id", v->eos_id},
                                                          {"tokenizer.ggml.unknown_token_id", v->unk_id},
                                                          {"tokenizer.ggml.padding_token_id", v->pad_id}};
    for (int i = 0; i < 4; i++)
        if (ids[i].id >= 0 && (rc = phiq_gguf_writer_set_u32(w, ids[i].key, (uint32_t)ids[i].id)) < 0) return rc;
    if (!v->omit_add_bos && (rc = phiq_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos)) < 0)
        return rc;
    if (!v->omit_add_eos && (rc = phiq_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", v->add_eos)) < 0)
        return rc;
    if (v->chat_template && (rc = phiq_gguf_writer_set_str(w, "tokenizer.chat_template", v->chat_template)) < 0) return rc;
    return 0;
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

phiq_tokenizer *phiq_tokenizer_load(const char *path, const char *pretok) {
    if (phiq_dir_exists(path)) return phiq_tokenizer_from_hf_dir(path);
    if (!phiq_file_exists(path)) return phiq_fail_null(PHIQ_EIO, "%s: no such file or directory", path);
    if (ends_with(path, ".tiktoken")) return phiq_tokenizer_from_tiktoken(path, pretok, NULL, NULL, 0);
    if (ends_with(path, ".json")) {
        /* tokenizer_config.json beside it, if any */
        const char *slash = strrchr(path, '/');
        size_t dl = slash ? (size_t)(slash - path) : 0;
        char *cfg = malloc(dl + 32);
        if (!cfg) return phiq_fail_null(PHIQ_ENOMEM, "%s: out of memory", path);
        memcpy(cfg, path, dl);
        strcpy(cfg + dl, slash ? "/tokenizer_config.json" : "tokenizer_config.json");
        phiq_tokenizer *t = phiq_tokenizer_from_hf_json(path, cfg);
        free(cfg);
        return t;
    }
    phiq_gguf *g = phiq_gguf_open(path);
    if (!g) return NULL;
    phiq_tokenizer *t = phiq_tokenizer_from_gguf(g);
    phiq_gguf_close(g);
    return t;
}
