/* load_hf.c — Hugging Face tokenizer.json (+ tokenizer_config.json,
 * generation_config.json) into the neutral phiq_tok_vocab.
 *
 * SentencePiece-style BPE (byte_fallback, '▁' normalizer: Phi-3/3.5) becomes
 * model SPM. tokenizer.json has merges but no scores; llama.cpp's converter
 * takes scores from tokenizer.model, where a Llama-family piece's score is
 * -(id - first_normal_id), except whitespace-only pieces, which score -1e9
 * and come last in the merges list. We rebuild exactly that: the merges walk
 * flags any piece first produced out of id order, and the SPM merge order
 * (by score of the merged piece) then equals HF's order by merge rank.
 * Byte-level BPE becomes model BPE with the merges and the Split regex. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/common.h"
#include "tokenizer/tok_internal.h"

static cJSON *read_json(const char *path) {
    char *buf = NULL;
    size_t len = 0;
    if (phiq_read_file(path, &buf, &len) < 0) return NULL;
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!j) return phiq_fail_null(PHIQ_EFORMAT, "%s: not valid JSON", path);
    return j;
}

/* "bos_token": "<s>" or {"content": "<s>", ...} */
static const char *token_name(const cJSON *cfg, const char *key) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(x)) return x->valuestring;
    if (cJSON_IsObject(x)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(x, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

static bool has_replace_space(const cJSON *norm) {
    if (!norm) return false;
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(norm, "type");
    if (cJSON_IsString(ty) && !strcmp(ty->valuestring, "Replace")) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(norm, "content");
        return cJSON_IsString(c) && !strcmp(c->valuestring, "\xe2\x96\x81");
    }
    if (cJSON_IsString(ty) && !strcmp(ty->valuestring, "Metaspace")) return true;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(norm, "normalizers");
    if (!list) list = cJSON_GetObjectItemCaseSensitive(norm, "pretokenizers");
    const cJSON *e;
    cJSON_ArrayForEach(e, list) if (has_replace_space(e)) return true;
    return false;
}

/* The pre-tokenizer regex: a Split pattern, or GPT-2's for ByteLevel(use_regex). */
static const char *find_regex(const cJSON *pre) {
    if (!pre) return NULL;
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(pre, "type");
    if (cJSON_IsString(ty) && !strcmp(ty->valuestring, "Split")) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(pre, "pattern");
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(p, "Regex");
        if (cJSON_IsString(r)) return r->valuestring;
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
    const cJSON *e;
    cJSON_ArrayForEach(e, list) {
        const char *r = find_regex(e);
        if (r) return r;
    }
    if (cJSON_IsString(ty) && !strcmp(ty->valuestring, "ByteLevel")) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(pre, "use_regex");
        if (!u || cJSON_IsTrue(u)) return phiq_pretok_regex("gpt2");
    }
    cJSON_ArrayForEach(e, list) {
        const cJSON *t2 = cJSON_GetObjectItemCaseSensitive(e, "type");
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(e, "use_regex");
        if (cJSON_IsString(t2) && !strcmp(t2->valuestring, "ByteLevel") && (!u || cJSON_IsTrue(u)))
            return phiq_pretok_regex("gpt2");
    }
    return NULL;
}

/* llama.cpp pre name for a regex (the exact regex is kept too). */
static const char *pre_name_for(const char *re) {
    if (!re) return "gpt-2";
    if (!strcmp(re, phiq_pretok_regex("gpt2"))) return "phi-2";
    if (strstr(re, "\\p{N}{1,3}") && strstr(re, "[\\r\\n/]")) return "gpt-4o";
    if (strstr(re, "\\p{N}{1,3}")) return "dbrx";
    return "unknown";
}

static bool is_byte_piece(const char *s) {
    return strlen(s) == 6 && !strncmp(s, "<0x", 3) && s[5] == '>';
}

static bool all_metaspace(const char *s) {
    if (!*s) return false;
    for (; *s; s += 3)
        if (strncmp(s, "\xe2\x96\x81", 3)) return false;
    return true;
}

phiq_tok_vocab *phiq_tok_vocab_from_hf_json(const char *path, const char *cfg_path) {
    cJSON *j = read_json(path);
    if (!j) return NULL;
    cJSON *cfg = NULL;
    if (cfg_path && phiq_file_exists(cfg_path) && !(cfg = read_json(cfg_path))) {
        cJSON_Delete(j);
        return NULL;
    }
    phiq_tok_vocab *v = NULL;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *mtype = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(j, "added_tokens");
    if (!cJSON_IsObject(model) || !cJSON_IsString(mtype) || strcmp(mtype->valuestring, "BPE") || !cJSON_IsObject(vocab)) {
        phiq_fail(PHIQ_EUNSUPPORTED, "%s: only BPE tokenizer models are supported (model.type %s)", path,
                  cJSON_IsString(mtype) ? mtype->valuestring : "missing");
        goto fail;
    }
    bool spm = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback")) ||
               has_replace_space(cJSON_GetObjectItemCaseSensitive(j, "normalizer")) ||
               has_replace_space(cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer"));
    /* size: largest id + 1 */
    int64_t maxid = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 16777216) {
            phiq_fail(PHIQ_EFORMAT, "%s: vocab entry '%s' has a bad id", path, e->string);
            goto fail;
        }
        if ((int64_t)e->valuedouble > maxid) maxid = (int64_t)e->valuedouble;
    }
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 16777216 || !cJSON_IsString(c)) {
            phiq_fail(PHIQ_EFORMAT, "%s: malformed added_tokens entry", path);
            goto fail;
        }
        if ((int64_t)id->valuedouble > maxid) maxid = (int64_t)id->valuedouble;
    }
    if (maxid < 0) {
        phiq_fail(PHIQ_EFORMAT, "%s: empty vocabulary", path);
        goto fail;
    }
    v = phiq_tok_vocab_new(spm ? PHIQ_TOK_MODEL_SPM : PHIQ_TOK_MODEL_BPE, (int32_t)maxid + 1);
    if (!v) goto oom;
    cJSON_ArrayForEach(e, vocab) {
        int32_t id = (int32_t)e->valuedouble;
        if (v->tokens[id]) continue; /* first wins */
        if (!(v->tokens[id] = strdup(e->string))) goto oom;
        v->types[id] = (spm && is_byte_piece(e->string)) ? PHIQ_TOK_TYPE_BYTE : PHIQ_TOK_TYPE_NORMAL;
    }
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (cJSON_IsString(unk)) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(vocab, unk->valuestring);
        if (cJSON_IsNumber(u)) {
            v->unk_id = (int32_t)u->valuedouble;
            v->types[v->unk_id] = PHIQ_TOK_TYPE_UNKNOWN;
        }
    }
    /* added tokens: CONTROL if special else USER_DEFINED, score -1000, raw text */
    cJSON_ArrayForEach(e, added) {
        int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
        const char *c = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
        char *dup = strdup(c);
        if (!dup) goto oom;
        free(v->tokens[id]);
        v->tokens[id] = dup;
        bool special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special"));
        v->types[id] = special ? PHIQ_TOK_TYPE_CONTROL : PHIQ_TOK_TYPE_USER_DEFINED;
        if (v->scores) v->scores[id] = -1000.0f;
        v->attrs[id] = (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "lstrip")) ? PHIQ_TOK_ATTR_LSTRIP : 0) |
                       (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "rstrip")) ? PHIQ_TOK_ATTR_RSTRIP : 0);
    }
    /* merges: "a b" strings, or [a, b] pairs in newer files */
    int nm = cJSON_GetArraySize(merges);
    if (!spm && nm > 0) {
        v->merges = calloc((size_t)nm, sizeof *v->merges);
        if (!v->merges) goto oom;
        cJSON_ArrayForEach(e, merges) {
            char *m = NULL;
            if (cJSON_IsString(e)) m = strdup(e->valuestring);
            else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                     cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
                const char *a = cJSON_GetArrayItem(e, 0)->valuestring, *b = cJSON_GetArrayItem(e, 1)->valuestring;
                m = malloc(strlen(a) + strlen(b) + 2);
                if (m) sprintf(m, "%s %s", a, b);
            } else {
                phiq_fail(PHIQ_EFORMAT, "%s: malformed merge #%d", path, v->n_merges);
                goto fail;
            }
            if (!m) goto oom;
            v->merges[v->n_merges++] = m;
        }
    }
    if (spm) {
        /* scores as llama.cpp's converter writes them from tokenizer.model */
        int32_t first_normal = -1;
        for (int32_t i = 0; i < v->n_tokens; i++)
            if (v->tokens[i] && v->types[i] == PHIQ_TOK_TYPE_NORMAL) { first_normal = i; break; }
        for (int32_t i = 0; i < v->n_tokens; i++)
            v->scores[i] = v->types[i] == PHIQ_TOK_TYPE_NORMAL ? -(float)(i - first_normal)
                           : (v->types[i] == PHIQ_TOK_TYPE_CONTROL || v->types[i] == PHIQ_TOK_TYPE_USER_DEFINED) ? -1000.0f
                                                                                                                   : 0.0f;
        uint8_t *seen = calloc((size_t)v->n_tokens, 1);
        uint32_t *lens = calloc((size_t)v->n_tokens, sizeof *lens);
        char **keys = calloc((size_t)v->n_tokens, sizeof *keys);
        phiq_strmap map = {0};
        if (!seen || !lens || !keys) { free(seen); free(lens); free(keys); goto oom; }
        /* the base vocabulary only (added tokens are never merge results) */
        cJSON_ArrayForEach(e, vocab) {
            int32_t id = (int32_t)e->valuedouble;
            keys[id] = e->string;
            lens[id] = (uint32_t)strlen(e->string);
        }
        for (int32_t i = 0; i < v->n_tokens; i++)
            if (!keys[i]) keys[i] = (char *)"";
        if (phiq_strmap_build(&map, keys, lens, v->n_tokens) < 0) { free(seen); free(lens); free(keys); goto oom; }
        int32_t run_max = -1;
        char *tmp = NULL;
        cJSON_ArrayForEach(e, merges) {
            const char *a, *b;
            if (cJSON_IsString(e)) {
                const char *s = e->valuestring, *sp = strchr(s + (s[0] ? 1 : 0), ' ');
                if (!sp) continue;
                free(tmp);
                tmp = strdup(s);
                if (!tmp) { free(seen); goto oom; }
                tmp[sp - s] = 0;
                a = tmp;
                b = tmp + (sp - s) + 1;
            } else if (cJSON_IsArray(e) && cJSON_IsString(cJSON_GetArrayItem(e, 0)) && cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
                a = cJSON_GetArrayItem(e, 0)->valuestring;
                b = cJSON_GetArrayItem(e, 1)->valuestring;
            } else continue;
            size_t la = strlen(a), lb = strlen(b);
            char *cat = malloc(la + lb + 1);
            if (!cat) { free(seen); free(tmp); free(lens); free(keys); free(map.slots); goto oom; }
            memcpy(cat, a, la);
            memcpy(cat + la, b, lb + 1);
            int32_t id = phiq_strmap_get(&map, cat, la + lb);
            free(cat);
            if (id < 0) continue;
            if (seen[id]) continue;
            seen[id] = 1;
            if (id < run_max && v->types[id] == PHIQ_TOK_TYPE_NORMAL) v->scores[id] = -1e9f;
            if (id > run_max) run_max = id;
        }
        free(tmp);
        free(seen);
        free(lens);
        free(keys);
        free(map.slots);
        for (int32_t i = 0; i < v->n_tokens; i++)
            if (v->tokens[i] && v->types[i] == PHIQ_TOK_TYPE_NORMAL && all_metaspace(v->tokens[i])) v->scores[i] = -1e9f;
        if (!(v->pre = strdup("default"))) goto oom;
        v->add_space_prefix = true;
        v->add_bos = true;
    } else {
        const char *re = find_regex(cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer"));
        if (!(v->pre = strdup(pre_name_for(re)))) goto oom;
        if (re && !(v->pre_regex = strdup(re))) goto oom;
        v->add_bos = false;
    }
    /* holes in the id space */
    for (int32_t i = 0; i < v->n_tokens; i++) {
        if (v->tokens[i]) continue;
        char name[32];
        snprintf(name, sizeof name, "[PAD%d]", (int)i);
        if (!(v->tokens[i] = strdup(name))) goto oom;
        v->types[i] = PHIQ_TOK_TYPE_UNUSED;
        if (v->scores) v->scores[i] = -10000.0f;
    }
    /* special ids and flags */
    const char *bos = cfg ? token_name(cfg, "bos_token") : NULL, *eos = cfg ? token_name(cfg, "eos_token") : NULL;
    const char *unk_name = cfg ? token_name(cfg, "unk_token") : NULL, *pad = cfg ? token_name(cfg, "pad_token") : NULL;
    if (!bos && spm) bos = "<s>";
    if (!eos && spm) eos = "</s>";
    if (!bos && !spm) bos = "<|endoftext|>";
    if (!eos && !spm) eos = "<|endoftext|>";
    for (int32_t i = 0; i < v->n_tokens; i++) {
        if (bos && v->bos_id < 0 && !strcmp(v->tokens[i], bos)) v->bos_id = i;
        if (eos && v->eos_id < 0 && !strcmp(v->tokens[i], eos)) v->eos_id = i;
        if (unk_name && v->unk_id < 0 && !strcmp(v->tokens[i], unk_name)) v->unk_id = i;
        if (pad && v->pad_id < 0 && !strcmp(v->tokens[i], pad)) v->pad_id = i;
    }
    if (cfg) {
        const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
        const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
        if (cJSON_IsBool(ab)) v->add_bos = cJSON_IsTrue(ab);
        if (cJSON_IsBool(ae)) v->add_eos = cJSON_IsTrue(ae);
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
        const char *tmpl = NULL;
        if (cJSON_IsString(ct)) tmpl = ct->valuestring;
        else if (cJSON_IsArray(ct)) { /* [{"name": "default", "template": ...}, ...] */
            cJSON_ArrayForEach(e, ct) {
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "template");
                if (cJSON_IsString(t) && (!tmpl || (cJSON_IsString(n) && !strcmp(n->valuestring, "default"))))
                    tmpl = t->valuestring;
            }
        }
        if (tmpl && !(v->chat_template = strdup(tmpl))) goto oom;
    }
    cJSON_Delete(j);
    cJSON_Delete(cfg);
    return v;
oom:
    phiq_fail(PHIQ_ENOMEM, "%s: out of memory", path);
fail:
    phiq_tok_vocab_free(v);
    cJSON_Delete(j);
    cJSON_Delete(cfg);
    return NULL;
}

phiq_tokenizer *phiq_tokenizer_from_hf_json(const char *path, const char *cfg_path) {
    phiq_tok_vocab *v = phiq_tok_vocab_from_hf_json(path, cfg_path);
    if (!v) return NULL;
    phiq_tokenizer *t = phiq_tokenizer_from_vocab(v);
    if (!t) phiq_error_prefix("%s", path);
    phiq_tok_vocab_free(v);
    return t;
}

phiq_tokenizer *phiq_tokenizer_from_hf_dir(const char *dir) {
    char *tj = phiq_path_join(dir, "tokenizer.json");
    char *tc = phiq_path_join(dir, "tokenizer_config.json");
    char *gc = phiq_path_join(dir, "generation_config.json");
    phiq_tokenizer *t = NULL;
    phiq_tok_vocab *v = NULL;
    if (!tj || !tc || !gc) { phiq_fail(PHIQ_ENOMEM, "%s: out of memory", dir); goto done; }
    if (!phiq_file_exists(tj)) { phiq_fail(PHIQ_EUNSUPPORTED, "%s: no tokenizer.json in this directory", dir); goto done; }
    if (!(v = phiq_tok_vocab_from_hf_json(tj, tc))) goto done;
    if (phiq_file_exists(gc)) {
        cJSON *g = read_json(gc);
        if (!g) goto done;
        const cJSON *eos = cJSON_GetObjectItemCaseSensitive(g, "eos_token_id");
        int n = cJSON_IsArray(eos) ? cJSON_GetArraySize(eos) : cJSON_IsNumber(eos) ? 1 : 0;
        v->eog_ids = calloc((size_t)n + 1, sizeof *v->eog_ids);
        if (!v->eog_ids) { cJSON_Delete(g); phiq_fail(PHIQ_ENOMEM, "%s: out of memory", gc); goto done; }
        if (cJSON_IsNumber(eos)) v->eog_ids[v->n_eog++] = (int32_t)eos->valuedouble;
        const cJSON *e;
        if (cJSON_IsArray(eos))
            cJSON_ArrayForEach(e, eos) if (cJSON_IsNumber(e)) v->eog_ids[v->n_eog++] = (int32_t)e->valuedouble;
        cJSON_Delete(g);
    }
    t = phiq_tokenizer_from_vocab(v);
    if (!t) phiq_error_prefix("%s", tj);
done:
    phiq_tok_vocab_free(v);
    free(tj);
    free(tc);
    free(gc);
    return t;
}
