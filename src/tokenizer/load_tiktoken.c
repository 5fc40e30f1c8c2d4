/* load_tiktoken.c — tiktoken .tiktoken rank files ("base64-token rank" per
 * line, as shipped for cl100k_base/o200k_base) into the neutral
 * phiq_tok_vocab: token id = rank, text in GPT-2's byte alphabet (as GGUF
 * stores it), no merges list (tiktoken's rule: a pair merges when its
 * concatenation is a token, lowest rank first). The pattern and special
 * tokens come from the pretok name and/or "<name>.meta.json" beside the file
 * ({"pat_str": ..., "special_tokens": {"<|endoftext|>": 100257, ...}}). */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/common.h"
#include "tokenizer/tokenizer.h"

static int b64val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* Returns decoded length or -1. out needs n*3/4+3 bytes. */
static int b64decode(const char *s, size_t n, unsigned char *out) {
    uint32_t acc = 0;
    int bits = 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=') break;
        int v = b64val((unsigned char)s[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[k++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return k;
}

static const char *llama_pre_name(const char *pretok) {
    if (!pretok) return NULL;
    if (!strcmp(pretok, "o200k") || !strcmp(pretok, "o200k_base") || !strcmp(pretok, "gpt-4o")) return "gpt-4o";
    if (!strcmp(pretok, "cl100k") || !strcmp(pretok, "cl100k_base") || !strcmp(pretok, "dbrx")) return "dbrx";
    if (!strcmp(pretok, "gpt2") || !strcmp(pretok, "gpt-2")) return "gpt-2";
    return NULL;
}

typedef struct spec {
    char *text;
    int32_t id;
} spec;

phiq_tok_vocab *phiq_tok_vocab_from_tiktoken(const char *path, const char *pretok, const char *const *specials,
                                             const int32_t *special_ids, int n_specials) {
    char *buf = NULL, *meta_buf = NULL, *meta_path = NULL, *pat = NULL;
    size_t len = 0;
    phiq_tok_vocab *v = NULL;
    cJSON *meta = NULL;
    spec *sp = NULL;
    int nsp = 0;
    if (pretok && !llama_pre_name(pretok)) {
        phiq_fail(PHIQ_EINVAL, "%s: unknown pre-tokenizer '%s' (o200k, cl100k or gpt2)", path, pretok);
        return NULL;
    }
    if (phiq_read_file(path, &buf, &len) < 0) return NULL;
    /* meta.json beside it */
    size_t pl = strlen(path);
    meta_path = malloc(pl + 16);
    if (!meta_path) goto oom;
    strcpy(meta_path, path);
    if (pl > 9 && !strcmp(meta_path + pl - 9, ".tiktoken")) meta_path[pl - 9] = 0;
    strcat(meta_path, ".meta.json");
    if (phiq_file_exists(meta_path)) {
        size_t ml;
        if (phiq_read_file(meta_path, &meta_buf, &ml) < 0) goto fail;
        meta = cJSON_ParseWithLength(meta_buf, ml);
        if (!meta) { phiq_fail(PHIQ_EFORMAT, "%s: not valid JSON", meta_path); goto fail; }
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(meta, "pat_str");
        if (cJSON_IsString(p) && !(pat = strdup(p->valuestring))) goto oom;
    }
    /* specials: meta.json's, then the caller's (which win) */
    int cap_sp = n_specials + (meta ? cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(meta, "special_tokens")) : 0);
    sp = calloc((size_t)cap_sp + 1, sizeof *sp);
    if (!sp) goto oom;
    if (meta) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(meta, "special_tokens")) {
            if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 16777216) {
                phiq_fail(PHIQ_EFORMAT, "%s: special token '%s' has a bad id", meta_path, e->string);
                goto fail;
            }
            sp[nsp].text = e->string;
            sp[nsp++].id = (int32_t)e->valuedouble;
        }
    }
    for (int i = 0; i < n_specials; i++) {
        if (!specials[i] || special_ids[i] < 0 || special_ids[i] > 16777216) {
            phiq_fail(PHIQ_EINVAL, "%s: bad special token #%d", path, i);
            goto fail;
        }
        sp[nsp].text = (char *)specials[i];
        sp[nsp++].id = special_ids[i];
    }
    /* pass 1: count and largest rank */
    int64_t maxid = -1;
    for (int i = 0; i < nsp; i++)
        if (sp[i].id > maxid) maxid = sp[i].id;
    size_t nlines = 0;
    for (char *p = buf; p < buf + len;) {
        char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        char *end = nl ? nl : buf + len;
        char *space = memchr(p, ' ', (size_t)(end - p));
        if (end > p) {
            if (!space) { phiq_fail(PHIQ_EFORMAT, "%s: line %zu is not 'base64 rank'", path, nlines + 1); goto fail; }
            char *q;
            long r = strtol(space + 1, &q, 10);
            if (q == space + 1 || r < 0 || r > 16777216) {
                phiq_fail(PHIQ_EFORMAT, "%s: line %zu has a bad rank", path, nlines + 1);
                goto fail;
            }
            if (r > maxid) maxid = r;
        }
        nlines++;
        p = end + 1;
    }
    if (maxid < 0) { phiq_fail(PHIQ_EFORMAT, "%s: no tokens", path); goto fail; }
    v = phiq_tok_vocab_new(PHIQ_TOK_MODEL_BPE, (int32_t)maxid + 1);
    if (!v) goto oom;
    unsigned char raw[1024];
    char enc[2100];
    nlines = 0;
    for (char *p = buf; p < buf + len;) {
        char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        char *end = nl ? nl : buf + len;
        nlines++;
        if (end > p) {
            char *space = memchr(p, ' ', (size_t)(end - p));
            long r = strtol(space + 1, NULL, 10);
            size_t bl = (size_t)(space - p);
            int n = bl <= 1360 ? b64decode(p, bl, raw) : -1;
            if (n <= 0) { phiq_fail(PHIQ_EFORMAT, "%s: line %zu: bad base64 token", path, nlines); goto fail; }
            phiq_bytelevel_encode(raw, (size_t)n, enc, sizeof enc);
            if (v->tokens[r]) { phiq_fail(PHIQ_EFORMAT, "%s: line %zu: rank %ld repeated", path, nlines, r); goto fail; }
            if (!(v->tokens[r] = strdup(enc))) goto oom;
            v->types[r] = PHIQ_TOK_TYPE_NORMAL;
        }
        p = end + 1;
    }
    for (int i = 0; i < nsp; i++) {
        char *d = strdup(sp[i].text);
        if (!d) goto oom;
        free(v->tokens[sp[i].id]);
        v->tokens[sp[i].id] = d;
        v->types[sp[i].id] = PHIQ_TOK_TYPE_CONTROL;
    }
    if (phiq_tok_vocab_fill_holes(v) < 0) goto oom;
    /* pre-tokenizer: explicit name, else meta.json, else the file name */
    const char *name = llama_pre_name(pretok);
    if (!name && !pat) {
        if (strstr(path, "o200k")) name = "gpt-4o";
        else if (strstr(path, "cl100k")) name = "dbrx";
        else { phiq_fail(PHIQ_EINVAL, "%s: cannot tell the pre-tokenizer: pass o200k, cl100k or gpt2", path); goto fail; }
    }
    if (!name) name = strstr(pat, "[\\r\\n/]") ? "gpt-4o" : strstr(pat, "\\p{N}{1,3}") ? "dbrx" : "gpt-2";
    if (!(v->pre = strdup(name))) goto oom;
    if (!pretok && pat) { v->pre_regex = pat; pat = NULL; }
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (!strcmp(v->tokens[i], "<|endoftext|>") && v->types[i] == PHIQ_TOK_TYPE_CONTROL) v->bos_id = v->eos_id = i;
    v->add_bos = false;
    goto done;
oom:
    phiq_fail(PHIQ_ENOMEM, "%s: out of memory", path);
fail:
    phiq_tok_vocab_free(v);
    v = NULL;
done:
    free(buf);
    free(meta_buf);
    free(meta_path);
    free(pat);
    free(sp);
    cJSON_Delete(meta);
    return v;
}

phiq_tokenizer *phiq_tokenizer_from_tiktoken(const char *path, const char *pretok, const char *const *specials,
                                             const int32_t *special_ids, int n_specials) {
    phiq_tok_vocab *v = phiq_tok_vocab_from_tiktoken(path, pretok, specials, special_ids, n_specials);
    if (!v) return NULL;
    phiq_tokenizer *t = phiq_tokenizer_from_vocab(v);
    if (!t) phiq_error_prefix("%s", path);
    phiq_tok_vocab_free(v);
    return t;
}
