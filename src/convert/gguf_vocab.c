/* gguf_vocab.c — a Hugging Face tokenizer (tokenizer.json +
 * tokenizer_config.json) turned into llama.cpp's tokenizer.* GGUF keys, so
 * that llama.cpp tokenizes exactly as the HF tokenizer does.
 *
 * Two families:
 *  - SentencePiece-derived BPE with byte fallback (Phi-3/3.5, Phi-3.5-MoE):
 *    model "llama", pre "default", tokens + scores + token types, no merges.
 *    llama.cpp's converter reads scores from tokenizer.model; our fixtures
 *    only have tokenizer.json, so the scores are reconstructed (see
 *    spm_scores below).
 *  - byte-level BPE (Phi-1.5/2, Phi-4, Phi-4-mini): model "gpt2", tokens,
 *    token types, merges ("left right"), pre chosen from the pre-tokenizer
 *    regex ("phi-2", "dbrx" for cl100k, "gpt-4o" for o200k).
 * Both pad the token list to the model's vocab_size with "[PAD{i}]" rows of
 * type UNUSED, as convert_hf_to_gguf.py does.
 */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/convert.h"
#include "core/common.h"

/* ---- a small string → id hash map (open addressing) ---------------------- */
typedef struct strmap {
    const char **keys;
    int64_t *vals;
    uint64_t cap; /* power of two */
} strmap;

static uint64_t str_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static int strmap_init(strmap *m, int64_t n) {
    m->cap = 16;
    while (m->cap < (uint64_t)n * 2 + 16) m->cap <<= 1;
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->vals = calloc(m->cap, sizeof *m->vals);
    if (!m->keys || !m->vals) return phiq_fail(PHIQ_ENOMEM, "out of memory (token map)");
    return 0;
}

static void strmap_free(strmap *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* Keeps the first value put for a key. */
static void strmap_put(strmap *m, const char *k, int64_t v) {
    uint64_t i = str_hash(k) & (m->cap - 1);
    while (m->keys[i]) {
        if (!strcmp(m->keys[i], k)) return;
        i = (i + 1) & (m->cap - 1);
    }
    m->keys[i] = k;
    m->vals[i] = v;
}

static int64_t strmap_get(const strmap *m, const char *k) {
    uint64_t i = str_hash(k) & (m->cap - 1);
    while (m->keys[i]) {
        if (!strcmp(m->keys[i], k)) return m->vals[i];
        i = (i + 1) & (m->cap - 1);
    }
    return -1;
}

/* ---- helpers --------------------------------------------------------------------- */
static cJSON *load_json(const char *path) {
    char *text = NULL;
    size_t len = 0;
    if (phiq_read_file(path, &text, &len) < 0) return NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j) return phiq_fail_null(PHIQ_EFORMAT, "%s: not valid JSON", path);
    return j;
}

/* convert_hf_to_gguf.py's does_token_look_special (the cases that matter for Phi). */
static bool looks_special(const char *s) {
    size_t n = strlen(s);
    if (!strcmp(s, "<pad>") || !strcmp(s, "<mask>") || !strcmp(s, "<cls>") || !strcmp(s, "<sep>")) return true;
    return n >= 4 && !strncmp(s, "<|", 2) && !strcmp(s + n - 2, "|>");
}

static bool is_byte_token(const char *s) {
    /* "<0xNN>" with two upper-case hex digits, as SentencePiece writes them */
    if (strlen(s) != 6 || strncmp(s, "<0x", 3) || s[5] != '>') return false;
    for (int i = 3; i < 5; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F'))) return false;
    return true;
}

/* Replaces every U+2581 (▁) by a space, in place (the string only shrinks). */
static void spm_unescape(char *s) {
    char *w = s;
    for (char *r = s; *r;) {
        if ((uint8_t)r[0] == 0xE2 && (uint8_t)r[1] == 0x96 && (uint8_t)r[2] == 0x81) {
            *w++ = ' ';
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = 0;
}

/* The content of a special-token entry of tokenizer_config.json: a string or
 * an AddedToken object {"content": ...}. */
static const char *token_content(const cJSON *x) {
    if (cJSON_IsString(x)) return x->valuestring;
    if (cJSON_IsObject(x)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(x, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

void phiq_vocab_free(phiq_vocab *v) {
    if (!v) return;
    if (v->tokens)
        for (int64_t i = 0; i < v->n_tokens; i++) free(v->tokens[i]);
    free(v->tokens);
    free(v->scores);
    free(v->types);
    if (v->merges)
        for (int64_t i = 0; i < v->n_merges; i++) free(v->merges[i]);
    free(v->merges);
    free(v->chat_template);
    memset(v, 0, sizeof *v);
}

int64_t phiq_vocab_find(const phiq_vocab *v, const char *text) {
    for (int64_t i = 0; i < v->n_tokens; i++)
        if (v->tokens[i] && !strcmp(v->tokens[i], text)) return i;
    return -1;
}

/* Merge list entry as "left right": the strings form, or the newer
 * ["left", "right"] pair form. NULL (with error) if malformed. */
static char *merge_string(const cJSON *m, const char *path, int64_t idx) {
    if (cJSON_IsString(m)) {
        if (!strchr(m->valuestring + (m->valuestring[0] ? 1 : 0), ' '))
            return phiq_fail_null(PHIQ_EFORMAT, "%s: merge %lld has no space", path, (long long)idx);
        return strdup(m->valuestring);
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2) {
        const cJSON *a = cJSON_GetArrayItem(m, 0), *b = cJSON_GetArrayItem(m, 1);
        if (cJSON_IsString(a) && cJSON_IsString(b)) {
            size_t la = strlen(a->valuestring), lb = strlen(b->valuestring);
            char *s = malloc(la + lb + 2);
            if (!s) return phiq_fail_null(PHIQ_ENOMEM, "out of memory");
            memcpy(s, a->valuestring, la);
            s[la] = ' ';
            memcpy(s + la + 1, b->valuestring, lb + 1);
            return s;
        }
    }
    return phiq_fail_null(PHIQ_EFORMAT, "%s: merge %lld is neither \"a b\" nor [a, b]", path, (long long)idx);
}

/* SentencePiece scores from tokenizer.json.
 *
 * llama.cpp's SPM tokenizer repeatedly merges the adjacent pair whose
 * concatenation is the vocabulary piece with the highest score (leftmost on
 * ties), so only the ORDER of the scores of multi-character pieces matters.
 * SentencePiece stores normal pieces sorted by decreasing score, so
 * score = -(id - first_normal_id) reproduces the original scores exactly
 * (llama.cpp's own ggml-vocab-phi-3.gguf has precisely these values) —
 * except for pieces that were demoted below every other piece (Phi-3's
 * whitespace runs "▁▁", "▁▁▁", … carry -1e9). HF's SPM→BPE conversion orders
 * the merges by the score of the piece they produce, so such pieces show up
 * as merges ranked after a piece with a higher id; those get -1e9 (equal,
 * so llama.cpp's leftmost tie-break applies among them as in the original). */
static int spm_scores(phiq_vocab *v, const cJSON *merges, const char *path) {
    int64_t n = v->n_tokens;
    strmap map;
    if (strmap_init(&map, n) < 0) return PHIQ_ENOMEM;
    for (int64_t i = 0; i < n; i++)
        if (v->types[i] == PHIQ_TOKTYPE_NORMAL) strmap_put(&map, v->tokens[i], i);
    int64_t first_normal = -1;
    for (int64_t i = 0; i < n && first_normal < 0; i++)
        if (v->types[i] == PHIQ_TOKTYPE_NORMAL) first_normal = i;
    for (int64_t i = 0; i < n; i++)
        if (v->types[i] == PHIQ_TOKTYPE_NORMAL) v->scores[i] = -(float)(i - first_normal);

    int64_t max_id = -1, idx = 0;
    char *buf = NULL;
    size_t cap = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        char *s = merge_string(m, path, idx++);
        if (!s) {
            free(buf);
            strmap_free(&map);
            return PHIQ_EFORMAT;
        }
        /* concatenation = the string without its separating space */
        size_t len = strlen(s);
        if (len + 1 > cap) {
            cap = len + 64;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(s);
                free(buf);
                strmap_free(&map);
                return phiq_fail(PHIQ_ENOMEM, "out of memory");
            }
            buf = nb;
        }
        char *sp = strchr(s + 1, ' ');
        size_t la = (size_t)(sp - s);
        memcpy(buf, s, la);
        memcpy(buf + la, sp + 1, len - la); /* includes the NUL */
        free(s);
        int64_t id = strmap_get(&map, buf);
        if (id < 0) continue;
        if (id < max_id) v->scores[id] = -1e9f; /* ranked after a later piece: demoted */
        else max_id = id;
    }
    free(buf);
    strmap_free(&map);
    return 0;
}

/* The tokenizer.ggml.pre of a byte-level BPE tokenizer, from its
 * pre-tokenizer regex (llama.cpp hashes the tokenizer output instead; the
 * regex identifies the same families for Phi models). */
static const char *gpt2_pre(const cJSON *tok, const phiq_hparams *hp, int64_t n_vocab) {
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(tok, "pre_tokenizer");
    char *txt = pt ? cJSON_PrintUnformatted(pt) : NULL;
    const char *pre = NULL;
    if (txt) {
        if (strstr(txt, "\\\\p{Lu}\\\\p{Lt}") || strstr(txt, "\\p{Lu}\\p{Lt}")) pre = "gpt-4o";
        else if (strstr(txt, "\\\\p{N}{1,3}") || strstr(txt, "\\p{N}{1,3}")) pre = "dbrx";
        else if (strstr(txt, "\"ByteLevel\"") && strstr(txt, "\"use_regex\":true"))
            pre = hp->arch == PHIQ_ARCH_PHI2 ? "phi-2" : "gpt-2";
        free(txt);
    }
    if (!pre) {
        if (n_vocab >= 199000) pre = "gpt-4o";
        else if (n_vocab >= 100000) pre = "dbrx";
        else pre = hp->arch == PHIQ_ARCH_PHI2 ? "phi-2" : "gpt-2";
    }
    return pre;
}

/* id of a token text: added tokens first, then the model vocabulary. */
static int find_id(const phiq_vocab *v, const strmap *added, const char *text) {
    int64_t id = strmap_get(added, text);
    if (id < 0) id = phiq_vocab_find(v, text);
    return (int)id;
}

int phiq_vocab_load_files(phiq_vocab *v, const char *tok_path, const char *cfg_path, const phiq_hparams *hp) {
    memset(v, 0, sizeof *v);
    v->bos_id = v->eos_id = v->unk_id = v->pad_id = -1;
    v->add_bos = v->add_eos = -1;
    int rc = 0;
    cJSON *tok = NULL, *cfg = NULL;
    bool *is_added = NULL;
    strmap added = {0};
    if (!tok_path) return phiq_fail(PHIQ_EUNSUPPORTED, "no tokenizer.json (llama.cpp needs a vocabulary)");
    tok = load_json(tok_path);
    if (!tok) return PHIQ_EFORMAT;
    if (cfg_path && !(cfg = load_json(cfg_path))) {
        cJSON_Delete(tok);
        return PHIQ_EFORMAT;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tok, "model");
    const cJSON *mtype = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(model) || !cJSON_IsString(mtype) || !cJSON_IsObject(vocab)) {
        rc = phiq_fail(PHIQ_EFORMAT, "%s: no model.type / model.vocab", tok_path);
        goto done;
    }
    if (strcmp(mtype->valuestring, "BPE")) {
        rc = phiq_fail(PHIQ_EUNSUPPORTED, "%s: tokenizer model type '%s' is not supported (BPE only)", tok_path,
                       mtype->valuestring);
        goto done;
    }
    if (merges && !cJSON_IsArray(merges)) {
        rc = phiq_fail(PHIQ_EFORMAT, "%s: model.merges is not an array", tok_path);
        goto done;
    }
    const cJSON *bf = cJSON_GetObjectItemCaseSensitive(model, "byte_fallback");
    bool spm = cJSON_IsTrue(bf);
    v->model = spm ? "llama" : "gpt2";

    /* size: the model's vocab_size, or the tokenizer's own size when larger
     * is impossible (llama.cpp asserts all ids < vocab_size) */
    int64_t n = hp->n_vocab;
    if (n <= 0 || n > (1 << 24)) {
        rc = phiq_fail(PHIQ_EFORMAT, "vocab_size %lld out of range", (long long)n);
        goto done;
    }
    v->n_tokens = n;
    v->tokens = calloc((size_t)n, sizeof *v->tokens);
    v->types = calloc((size_t)n, sizeof *v->types);
    v->scores = spm ? calloc((size_t)n, sizeof *v->scores) : NULL;
    if (!v->tokens || !v->types || (spm && !v->scores)) {
        rc = phiq_fail(PHIQ_ENOMEM, "out of memory (vocab of %lld)", (long long)n);
        goto done;
    }

    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= (double)n ||
            e->valuedouble != (double)(int64_t)e->valuedouble) {
            rc = phiq_fail(PHIQ_EFORMAT, "%s: token '%.40s' has id %g outside vocab_size %lld", tok_path,
                           e->string, e->valuedouble, (long long)n);
            goto done;
        }
        int64_t id = (int64_t)e->valuedouble;
        if (v->tokens[id]) {
            rc = phiq_fail(PHIQ_EFORMAT, "%s: id %lld used twice", tok_path, (long long)id);
            goto done;
        }
        if (!(v->tokens[id] = strdup(e->string))) {
            rc = phiq_fail(PHIQ_ENOMEM, "out of memory");
            goto done;
        }
        if (spm && is_byte_token(e->string)) {
            v->types[id] = PHIQ_TOKTYPE_BYTE;
        } else {
            v->types[id] = PHIQ_TOKTYPE_NORMAL;
        }
    }
    if (spm) {
        const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
        if (cJSON_IsString(unk)) {
            const cJSON *u = cJSON_GetObjectItemCaseSensitive(vocab, unk->valuestring);
            if (cJSON_IsNumber(u)) v->types[(int64_t)u->valuedouble] = PHIQ_TOKTYPE_UNKNOWN;
        }
    }

    /* added tokens: tokenizer.json's list, then tokenizer_config's decoder */
    is_added = calloc((size_t)n, 1);
    if (!is_added) {
        rc = phiq_fail(PHIQ_ENOMEM, "out of memory");
        goto done;
    }
    for (int pass = 0; pass < 2; pass++) {
        const cJSON *list = pass == 0 ? cJSON_GetObjectItemCaseSensitive(tok, "added_tokens")
                                      : cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder");
        const char *where = pass == 0 ? tok_path : cfg_path;
        cJSON_ArrayForEach(e, list) {
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "special");
            double idd;
            if (pass == 0) {
                const cJSON *idj = cJSON_GetObjectItemCaseSensitive(e, "id");
                idd = cJSON_IsNumber(idj) ? idj->valuedouble : -1;
            } else {
                char *end = NULL;
                idd = e->string ? strtod(e->string, &end) : -1;
                if (!end || *end) idd = -1;
            }
            if (!cJSON_IsString(c) || idd < 0 || idd != (double)(int64_t)idd) {
                rc = phiq_fail(PHIQ_EFORMAT, "%s: malformed added token", where);
                goto done;
            }
            if (idd >= (double)n) {
                rc = phiq_fail(PHIQ_EFORMAT, "%s: added token '%.40s' id %.0f >= vocab_size %lld", where,
                               c->valuestring, idd, (long long)n);
                goto done;
            }
            int64_t id = (int64_t)idd;
            free(v->tokens[id]);
            v->tokens[id] = strdup(c->valuestring);
            if (!v->tokens[id]) {
                rc = phiq_fail(PHIQ_ENOMEM, "out of memory");
                goto done;
            }
            if (cJSON_IsTrue(sp) || looks_special(v->tokens[id])) {
                v->types[id] = PHIQ_TOKTYPE_CONTROL;
            } else {
                /* llama.cpp expects user-defined tokens pre-normalized */
                if (spm) spm_unescape(v->tokens[id]);
                v->types[id] = PHIQ_TOKTYPE_USER_DEFINED;
            }
            if (spm) v->scores[id] = -1000.0f;
            is_added[id] = true;
        }
    }
    if ((rc = strmap_init(&added, 1024)) < 0) goto done;
    for (int64_t i = 0; i < n; i++)
        if (is_added[i]) strmap_put(&added, v->tokens[i], i);
    /* rows without a token: padding, as convert_hf_to_gguf.py writes them */
    for (int64_t i = 0; i < n; i++) {
        if (v->tokens[i]) continue;
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%lld]", (long long)i);
        if (!(v->tokens[i] = strdup(pad))) {
            rc = phiq_fail(PHIQ_ENOMEM, "out of memory");
            goto done;
        }
        v->types[i] = PHIQ_TOKTYPE_UNUSED;
        if (spm) v->scores[i] = -10000.0f;
    }

    if (spm) {
        v->pre = "default";
        if (merges && (rc = spm_scores(v, merges, tok_path)) < 0) goto done;
    } else {
        v->pre = gpt2_pre(tok, hp, n);
        int64_t nm = merges ? cJSON_GetArraySize(merges) : 0;
        if (nm == 0) {
            rc = phiq_fail(PHIQ_EFORMAT, "%s: byte-level BPE without merges", tok_path);
            goto done;
        }
        v->merges = calloc((size_t)nm, sizeof *v->merges);
        if (!v->merges) {
            rc = phiq_fail(PHIQ_ENOMEM, "out of memory");
            goto done;
        }
        const cJSON *m;
        cJSON_ArrayForEach(m, merges) {
            if (!(v->merges[v->n_merges] = merge_string(m, tok_path, v->n_merges))) {
                rc = PHIQ_EFORMAT;
                goto done;
            }
            v->n_merges++;
        }
    }

    /* special ids: tokenizer_config's token strings, else config.json ids */
    static const char *const keys[4] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    int *ids[4] = {&v->bos_id, &v->eos_id, &v->unk_id, &v->pad_id};
    for (int k = 0; k < 4; k++) {
        const char *c = cfg ? token_content(cJSON_GetObjectItemCaseSensitive(cfg, keys[k])) : NULL;
        if (c) *ids[k] = find_id(v, &added, c);
    }
    if (v->bos_id < 0 && hp->bos_id >= 0 && hp->bos_id < n) v->bos_id = hp->bos_id;
    if (v->eos_id < 0 && hp->n_eos > 0 && hp->eos_ids[0] >= 0 && hp->eos_ids[0] < n) v->eos_id = hp->eos_ids[0];
    if (v->pad_id < 0 && hp->pad_id >= 0 && hp->pad_id < n) v->pad_id = hp->pad_id;

    if (cfg) {
        const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
        const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
        if (cJSON_IsBool(ab)) v->add_bos = cJSON_IsTrue(ab);
        if (cJSON_IsBool(ae)) v->add_eos = cJSON_IsTrue(ae);
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
        const char *tmpl = NULL;
        if (cJSON_IsString(ct)) {
            tmpl = ct->valuestring;
        } else if (cJSON_IsArray(ct)) { /* [{"name": "default", "template": ...}, ...] */
            const cJSON *t;
            cJSON_ArrayForEach(t, ct) {
                const cJSON *nm = cJSON_GetObjectItemCaseSensitive(t, "name");
                const cJSON *tt = cJSON_GetObjectItemCaseSensitive(t, "template");
                if (cJSON_IsString(nm) && !strcmp(nm->valuestring, "default") && cJSON_IsString(tt))
                    tmpl = tt->valuestring;
            }
        }
        if (tmpl && !(v->chat_template = strdup(tmpl))) {
            rc = phiq_fail(PHIQ_ENOMEM, "out of memory");
            goto done;
        }
    }
    if (!v->chat_template && cfg_path) { /* newer checkpoints: chat_template.jinja beside it */
        const char *slash = strrchr(cfg_path, '/');
        size_t dl = slash ? (size_t)(slash - cfg_path) : 1;
        char *dir = strndup(slash ? cfg_path : ".", dl);
        char *p = dir ? phiq_path_join(dir, "chat_template.jinja") : NULL;
        size_t len;
        if (p && phiq_file_exists(p) && phiq_read_file(p, &v->chat_template, &len) < 0) v->chat_template = NULL;
        free(p);
        free(dir);
    }
    /* PhiForCausalLM: convert_hf_to_gguf.py writes add_bos_token = false */
    if (hp->arch == PHIQ_ARCH_PHI2) v->add_bos = 0;

done:
    free(is_added);
    strmap_free(&added);
    cJSON_Delete(tok);
    cJSON_Delete(cfg);
    if (rc < 0) phiq_vocab_free(v);
    return rc;
}

int phiq_vocab_load_hf(phiq_vocab *v, const phiq_hf *hf, const phiq_hparams *hp) {
    return phiq_vocab_load_files(v, phiq_hf_tokenizer_json(hf), phiq_hf_tokenizer_config_json(hf), hp);
}

int phiq_vocab_to_gguf(const phiq_vocab *v, phiq_gguf_writer *w) {
    int rc;
    if ((rc = phiq_gguf_writer_set_str(w, "tokenizer.ggml.model", v->model)) < 0) return rc;
    if ((rc = phiq_gguf_writer_set_str(w, "tokenizer.ggml.pre", v->pre)) < 0) return rc;
    if ((rc = phiq_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, NULL,
                                           (uint64_t)v->n_tokens)) < 0)
        return rc;
    if (v->scores &&
        (rc = phiq_gguf_writer_set_arr(w, "tokenizer.ggml.scores", PHIQ_GGUF_FLOAT32, v->scores,
                                       (uint64_t)v->n_tokens)) < 0)
        return rc;
    if ((rc = phiq_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", PHIQ_GGUF_INT32, v->types,
                                       (uint64_t)v->n_tokens)) < 0)
        return rc;
    if (v->n_merges &&
        (rc = phiq_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges, NULL,
                                           (uint64_t)v->n_merges)) < 0)
        return rc;
    static const char *const idkeys[4] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                          "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"};
    const int ids[4] = {v->bos_id, v->eos_id, v->unk_id, v->pad_id};
    for (int k = 0; k < 4; k++)
        if (ids[k] >= 0 && (rc = phiq_gguf_writer_set_u32(w, idkeys[k], (uint32_t)ids[k])) < 0) return rc;
    if (v->add_bos >= 0 && (rc = phiq_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos)) < 0)
        return rc;
    if (v->add_eos >= 0 && (rc = phiq_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", v->add_eos)) < 0)
        return rc;
    if (v->chat_template && (rc = phiq_gguf_writer_set_str(w, "tokenizer.chat_template", v->chat_template)) < 0)
        return rc;
    return 0;
}
