/* load_hf.c — Hugging Face tokenizer.json (+ tokenizer_config.json,
 * generation_config.json) into the neutral phiq_tok_vocab: the one reading
 * of an HF tokenizer, used both by the runtime tokenizer and by the
 * converter (which writes the result as llama.cpp's tokenizer.* GGUF keys),
 * so conversion and tokenization cannot disagree.
 *
 * SentencePiece-style BPE (byte_fallback, '▁' normalizer: Phi-3/3.5) becomes
 * model SPM. tokenizer.json has merges but no scores; llama.cpp's converter
 * takes scores from tokenizer.model, where a Llama-family piece's score is
 * -(id - first_normal_id), except whitespace-only pieces, which score -1e9
 * and come last in the merges list. We rebuild exactly that: the merges walk
 * flags any piece first produced out of id order, and the SPM merge order
 * (by score of the merged piece) then equals HF's order by merge rank.
 * Byte-level BPE becomes model BPE with the merges and the Split regex.
 * Added tokens (tokenizer.json's list, then tokenizer_config.json's
 * added_tokens_decoder) are typed as convert_hf_to_gguf.py types them. */
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

/* llama.cpp pre name for a regex (the exact regex is kept too). llama.cpp
 * hashes the tokenizer's output instead; the regex tells the same Phi
 * families apart. GPT-2's regex is "phi-2" for PhiForCausalLM, "gpt-2"
 * otherwise (the same pre-tokenization in llama.cpp). Converting, a missing
 * or unrecognized regex is named from the vocabulary size of the Phi family. */
static const char *pre_name_for(const char *re, const phiq_tok_hf_model *m) {
    if (re && !strcmp(re, phiq_pretok_regex("gpt2"))) return m && !m->phi2 ? "gpt-2" : "phi-2";
    if (re && strstr(re, "\\p{N}{1,3}") && strstr(re, "[\\r\\n/]")) return "gpt-4o";
    if (re && strstr(re, "\\p{N}{1,3}")) return "dbrx";
    if (!m) return re ? "unknown" : "gpt-2";
    if (m->n_vocab >= 199000) return "gpt-4o";
    if (m->n_vocab >= 100000) return "dbrx";
    return m->phi2 ? "phi-2" : "gpt-2";
}

/* "<0xNN>" with two upper-case hex digits, as SentencePiece writes them */
static bool is_byte_piece(const char *s) {
    if (strlen(s) != 6 || strncmp(s, "<0x", 3) || s[5] != '>') return false;
    for (int i = 3; i < 5; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F'))) return false;
    return true;
}

static bool all_metaspace(const char *s) {
    if (!*s) return false;
    for (; *s; s += 3)
        if (strncmp(s, "\xe2\x96\x81", 3)) return false;
    return true;
}

/* convert_hf_to_gguf.py's does_token_look_special (the cases that matter for Phi). */
static bool looks_special(const char *s) {
    size_t n = strlen(s);
    if (!strcmp(s, "<pad>") || !strcmp(s, "<mask>") || !strcmp(s, "<cls>") || !strcmp(s, "<sep>")) return true;
    return n >= 4 && !strncmp(s, "<|", 2) && !strcmp(s + n - 2, "|>");
}

/* Replaces every U+2581 (▁) by a space, in place (the string only shrinks):
 * llama.cpp expects SPM user-defined tokens pre-normalized. */
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

/* An id that is an integer in [0, limit), else -1. */
static int64_t valid_id(double d, int64_t limit) {
    return d >= 0 && d < (double)limit && d == (double)(int64_t)d ? (int64_t)d : -1;
}

/* The id of an added-token entry: tokenizer.json's {"id": N, ...} (pass 0)
 * or tokenizer_config.json's added_tokens_decoder "N": {...} (pass 1); -1
 * when it is not a non-negative integer. */
static double added_id(const cJSON *e, int pass) {
    if (pass == 0) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        return cJSON_IsNumber(id) ? id->valuedouble : -1;
    }
    char *end = NULL;
    double d = e->string ? strtod(e->string, &end) : -1;
    return end && !*end ? d : -1;
}

/* Merge idx as a new "left right" string in *out: the string form as it
 * is, the newer [left, right] pair form joined; *sep = offset of the
 * separating space. */
static int merge_text(const cJSON *e, const char *path, int64_t idx, char **out, size_t *sep) {
    if (cJSON_IsString(e)) {
        const char *s = e->valuestring, *sp = strchr(s + (s[0] ? 1 : 0), ' ');
        if (!sp) return phiq_fail(PHIQ_EFORMAT, "%s: merge %lld has no space", path, (long long)idx);
        *sep = (size_t)(sp - s);
        *out = strdup(s);
        return *out ? 0 : phiq_fail(PHIQ_ENOMEM, "%s: out of memory", path);
    }
    const cJSON *a = cJSON_GetArrayItem(e, 0), *b = cJSON_GetArrayItem(e, 1);
    if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsString(a) || !cJSON_IsString(b))
        return phiq_fail(PHIQ_EFORMAT, "%s: merge %lld is neither \"a b\" nor [a, b]", path, (long long)idx);
    size_t la = strlen(a->valuestring), lb = strlen(b->valuestring);
    if (!(*out = malloc(la + lb + 2))) return phiq_fail(PHIQ_ENOMEM, "%s: out of memory", path);
    memcpy(*out, a->valuestring, la);
    (*out)[la] = ' ';
    memcpy(*out + la + 1, b->valuestring, lb + 1);
    *sep = la;
    return 0;
}

/* SPM scores as llama.cpp's converter writes them from tokenizer.model (see
 * the banner). base: the base vocabulary's texts by id (added tokens are
 * never merge results), "" where none. */
static int spm_scores(phiq_tok_vocab *v, const cJSON *merges, char **base, const char *path) {
    int32_t first_normal = -1;
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (v->tokens[i] && v->types[i] == PHIQ_TOK_TYPE_NORMAL) { first_normal = i; break; }
    for (int32_t i = 0; i < v->n_tokens; i++)
        v->scores[i] = v->types[i] == PHIQ_TOK_TYPE_NORMAL ? -(float)(i - first_normal)
                       : (v->types[i] == PHIQ_TOK_TYPE_CONTROL || v->types[i] == PHIQ_TOK_TYPE_USER_DEFINED) ? -1000.0f
                                                                                                               : 0.0f;
    size_t n = v->n_tokens > 0 ? (size_t)v->n_tokens : 1;
    uint8_t *seen = calloc(n, 1);
    uint32_t *lens = calloc(n, sizeof *lens);
    phiq_strmap map = {0};
    int rc = 0;
    if (!seen || !lens) { rc = phiq_fail(PHIQ_ENOMEM, "%s: out of memory", path); goto done; }
    for (int32_t i = 0; i < v->n_tokens; i++) lens[i] = (uint32_t)strlen(base[i]);
    if (phiq_strmap_build(&map, base, lens, v->n_tokens) < 0) { rc = phiq_fail(PHIQ_ENOMEM, "%s: out of memory", path); goto done; }
    int32_t run_max = -1;
    int64_t idx = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, merges) {
        size_t sep;
        char *cat;
        if ((rc = merge_text(e, path, idx++, &cat, &sep)) < 0) goto done;
        size_t len = strlen(cat);
        memmove(cat + sep, cat + sep + 1, len - sep); /* drop the space: the merged piece */
        int32_t id = phiq_strmap_get(&map, cat, len - 1);
        free(cat);
        if (id < 0 || !*base[id] || seen[id]) continue;
        seen[id] = 1;
        if (id < run_max && v->types[id] == PHIQ_TOK_TYPE_NORMAL) v->scores[id] = -1e9f;
        if (id > run_max) run_max = id;
    }
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (v->tokens[i] && v->types[i] == PHIQ_TOK_TYPE_NORMAL && all_metaspace(v->tokens[i])) v->scores[i] = -1e9f;
done:
    free(seen);
    free(lens);
    free(map.slots);
    return rc;
}

/* Id of a special token named in tokenizer_config.json: the added token of
 * that text (as llama.cpp's SpecialVocab), else the first token of it. */
static int32_t find_special(const phiq_tok_vocab *v, const uint8_t *is_added, const char *text) {
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (is_added[i] && !strcmp(v->tokens[i], text)) return i;
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (!strcmp(v->tokens[i], text)) return i;
    return -1;
}

/* cfg's chat_template: a string, or [{"name": "default", "template": ...}]
 * (only "default" is the template, as llama.cpp's converter writes it); else
 * chat_template.jinja beside tokenizer_config.json (newer checkpoints). */
static int load_chat_template(phiq_tok_vocab *v, const cJSON *cfg, const char *cfg_path) {
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template"), *e;
    const cJSON *list = cJSON_IsArray(ct) ? ct : NULL;
    const char *tmpl = NULL;
    if (cJSON_IsString(ct)) tmpl = ct->valuestring;
    cJSON_ArrayForEach(e, list) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "template");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, "default") && cJSON_IsString(t)) tmpl = t->valuestring;
    }
    if (tmpl) return (v->chat_template = strdup(tmpl)) ? 0 : phiq_fail(PHIQ_ENOMEM, "%s: out of memory", cfg_path);
    if (!cfg_path) return 0;
    const char *slash = strrchr(cfg_path, '/');
    char *dir = slash ? strndup(cfg_path, (size_t)(slash - cfg_path)) : strdup(".");
    char *p = dir ? phiq_path_join(dir, "chat_template.jinja") : NULL;
    size_t len;
    if (p && phiq_file_exists(p) && phiq_read_file(p, &v->chat_template, &len) < 0) v->chat_template = NULL;
    free(p);
    free(dir);
    return 0;
}

/* m: the model being converted (NULL: the tokenizer on its own). */
static phiq_tok_vocab *load(const char *path, const char *cfg_path, const phiq_tok_hf_model *m) {
    cJSON *j = read_json(path);
    if (!j) return NULL;
    cJSON *cfg = NULL;
    if (cfg_path && phiq_file_exists(cfg_path) && !(cfg = read_json(cfg_path))) {
        cJSON_Delete(j);
        return NULL;
    }
    phiq_tok_vocab *v = NULL;
    uint8_t *is_added = NULL;
    char **base = NULL;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *mtype = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *lists[2] = {cJSON_GetObjectItemCaseSensitive(j, "added_tokens"),
                             cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder")};
    const char *where[2] = {path, cfg_path};
    if (!cJSON_IsObject(model) || !cJSON_IsString(mtype) || strcmp(mtype->valuestring, "BPE") || !cJSON_IsObject(vocab)) {
        phiq_fail(PHIQ_EUNSUPPORTED, "%s: only BPE tokenizer models are supported (model.type %s)", path,
                  cJSON_IsString(mtype) ? mtype->valuestring : "missing");
        goto fail;
    }
    if (merges && !cJSON_IsArray(merges)) {
        phiq_fail(PHIQ_EFORMAT, "%s: model.merges is not an array", path);
        goto fail;
    }
    bool spm = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback")) ||
               has_replace_space(cJSON_GetObjectItemCaseSensitive(j, "normalizer")) ||
               has_replace_space(cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer"));
    /* rows: the model's embedding rows when converting (every id must be
     * below: llama.cpp asserts it), else the largest id + 1 */
    int64_t limit = m ? m->n_vocab : 16777217, maxid = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        int64_t id = cJSON_IsNumber(e) ? valid_id(e->valuedouble, limit) : -1;
        if (id < 0) {
            phiq_fail(PHIQ_EFORMAT, "%s: token '%.40s' has id %g, not an integer below %s%lld", path, e->string,
                      cJSON_IsNumber(e) ? e->valuedouble : -1.0, m ? "vocab_size " : "", (long long)limit);
            goto fail;
        }
        if (id > maxid) maxid = id;
    }
    for (int pass = 0; pass < 2; pass++) {
        cJSON_ArrayForEach(e, lists[pass]) {
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
            double d = added_id(e, pass);
            int64_t id = valid_id(d, limit);
            if (!cJSON_IsString(c) || id < 0) {
                if (cJSON_IsString(c) && d >= 0 && d == (double)(int64_t)d)
                    phiq_fail(PHIQ_EFORMAT, "%s: added token '%.40s' id %.0f >= %s%lld", where[pass], c->valuestring, d,
                              m ? "vocab_size " : "", (long long)limit);
                else
                    phiq_fail(PHIQ_EFORMAT, "%s: malformed added token", where[pass]);
                goto fail;
            }
            if (id > maxid) maxid = id;
        }
    }
    if (maxid < 0) {
        phiq_fail(PHIQ_EFORMAT, "%s: empty vocabulary", path);
        goto fail;
    }
    v = phiq_tok_vocab_new(spm ? PHIQ_TOK_MODEL_SPM : PHIQ_TOK_MODEL_BPE, (int32_t)(m ? m->n_vocab : maxid + 1));
    is_added = v ? calloc((size_t)v->n_tokens, 1) : NULL;
    base = v ? calloc((size_t)v->n_tokens, sizeof *base) : NULL;
    if (!v || !is_added || !base) goto oom;
    cJSON_ArrayForEach(e, vocab) {
        int32_t id = (int32_t)e->valuedouble;
        if (v->tokens[id]) {
            if (!m) continue; /* first wins */
            phiq_fail(PHIQ_EFORMAT, "%s: id %d used twice", path, (int)id);
            goto fail;
        }
        if (!(v->tokens[id] = strdup(e->string))) goto oom;
        base[id] = e->string;
        v->types[id] = (spm && is_byte_piece(e->string)) ? PHIQ_TOK_TYPE_BYTE : PHIQ_TOK_TYPE_NORMAL;
    }
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    int32_t model_unk = -1; /* SentencePiece's unknown piece */
    if (cJSON_IsString(unk)) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(vocab, unk->valuestring);
        if (cJSON_IsNumber(u)) model_unk = (int32_t)u->valuedouble;
        if (model_unk >= 0 && spm) v->types[model_unk] = PHIQ_TOK_TYPE_UNKNOWN;
    }
    /* added tokens: CONTROL if special (or looking special), else
     * USER_DEFINED with SPM's '▁' pre-normalized to a space; score -1000 */
    for (int pass = 0; pass < 2; pass++) {
        cJSON_ArrayForEach(e, lists[pass]) {
            int32_t id = (int32_t)added_id(e, pass);
            char *dup = strdup(cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring);
            if (!dup) goto oom;
            free(v->tokens[id]);
            v->tokens[id] = dup;
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special")) || looks_special(dup)) {
                v->types[id] = PHIQ_TOK_TYPE_CONTROL;
            } else {
                if (spm) spm_unescape(dup);
                v->types[id] = PHIQ_TOK_TYPE_USER_DEFINED;
            }
            if (v->scores) v->scores[id] = -1000.0f;
            v->attrs[id] = (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "lstrip")) ? PHIQ_TOK_ATTR_LSTRIP : 0) |
                           (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "rstrip")) ? PHIQ_TOK_ATTR_RSTRIP : 0);
            is_added[id] = 1;
        }
    }
    /* merges: "a b" strings, or [a, b] pairs in newer files */
    int nm = cJSON_GetArraySize(merges);
    if (!spm && nm == 0 && m) {
        phiq_fail(PHIQ_EFORMAT, "%s: byte-level BPE without merges", path);
        goto fail;
    }
    if (!spm && nm > 0) {
        v->merges = calloc((size_t)nm, sizeof *v->merges);
        if (!v->merges) goto oom;
        cJSON_ArrayForEach(e, merges) {
            size_t sep;
            if (merge_text(e, path, v->n_merges, &v->merges[v->n_merges], &sep) < 0) goto fail;
            v->n_merges++;
        }
    }
    if (spm) {
        for (int32_t i = 0; i < v->n_tokens; i++)
            if (!base[i]) base[i] = (char *)"";
        if (spm_scores(v, merges, base, path) < 0) goto fail;
        if (!(v->pre = strdup("default"))) goto oom;
        v->add_space_prefix = true;
        v->add_bos = true;
    } else {
        const char *re = find_regex(cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer"));
        if (!(v->pre = strdup(pre_name_for(re, m)))) goto oom;
        if (re && !(v->pre_regex = strdup(re))) goto oom;
        v->add_bos = false;
    }
    /* holes in the id space, and the rows past the tokenizer (converting) */
    if (phiq_tok_vocab_fill_holes(v) < 0) goto oom;
    /* special ids: tokenizer_config's token texts; else, converting,
     * config.json's ids (llama.cpp's SpecialVocab), or on its own the usual
     * names of the family and SentencePiece's unknown piece */
    static const char *const keys[4] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    int32_t *ids[4] = {&v->bos_id, &v->eos_id, &v->unk_id, &v->pad_id};
    for (int k = 0; k < 4; k++) {
        const char *name = cfg ? token_name(cfg, keys[k]) : NULL;
        if (!name && !m && k < 2) name = spm ? (k == 0 ? "<s>" : "</s>") : "<|endoftext|>";
        if (name) *ids[k] = find_special(v, is_added, name);
        if (!name && !m && k == 2) v->unk_id = model_unk;
    }
    if (m) {
        const int32_t fallback[4] = {m->bos_id, m->eos_id, -1, m->pad_id};
        for (int k = 0; k < 4; k++)
            if (*ids[k] < 0 && fallback[k] >= 0 && fallback[k] < v->n_tokens) *ids[k] = fallback[k];
    }
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    if (cJSON_IsBool(ab)) v->add_bos = cJSON_IsTrue(ab);
    if (cJSON_IsBool(ae)) v->add_eos = cJSON_IsTrue(ae);
    if (m) { /* llama.cpp's converter writes the flags only when the tokenizer sets them */
        v->omit_add_bos = !cJSON_IsBool(ab);
        v->omit_add_eos = !cJSON_IsBool(ae);
        if (m->phi2) { /* PhiForCausalLM: convert_hf_to_gguf.py writes add_bos_token = false */
            v->add_bos = false;
            v->omit_add_bos = false;
        }
    }
    if (load_chat_template(v, cfg, cfg ? cfg_path : NULL) < 0) goto fail;
    free(is_added);
    free(base);
    cJSON_Delete(j);
    cJSON_Delete(cfg);
    return v;
oom:
    phiq_fail(PHIQ_ENOMEM, "%s: out of memory", path);
fail:
    free(is_added);
    free(base);
    phiq_tok_vocab_free(v);
    cJSON_Delete(j);
    cJSON_Delete(cfg);
    return NULL;
}

phiq_tok_vocab *phiq_tok_vocab_from_hf_json(const char *path, const char *cfg_path) {
    return load(path, cfg_path, NULL);
}

phiq_tok_vocab *phiq_tok_vocab_from_hf_model(const char *path, const char *cfg_path, const phiq_tok_hf_model *m) {
    if (m->n_vocab <= 0 || m->n_vocab > 16777216)
        return phiq_fail_null(PHIQ_EFORMAT, "%s: vocab_size %lld out of range", path, (long long)m->n_vocab);
    return load(path, cfg_path, m);
}


phiq_tok_vocab *phiq_tok_vocab_phi3small(const char *ranks_path, const char *cfg_path) {
    const char *names[PHIQ_PHI3SMALL_N_VOCAB - PHIQ_PHI3SMALL_FIRST_SPECIAL];
    int32_t ids[PHIQ_PHI3SMALL_N_VOCAB - PHIQ_PHI3SMALL_FIRST_SPECIAL];
    char buf[PHIQ_PHI3SMALL_N_VOCAB - PHIQ_PHI3SMALL_FIRST_SPECIAL][32];
    int n = 0;
    for (int32_t id = PHIQ_PHI3SMALL_FIRST_SPECIAL; id < PHIQ_PHI3SMALL_N_VOCAB; id++, n++) {
        names[n] = phiq_phi3small_special(id, buf[n], sizeof buf[n], NULL);
        ids[n] = id;
    }
    phiq_tok_vocab *v = phiq_tok_vocab_from_tiktoken(ranks_path, "cl100k", names, ids, n);
    if (!v) return NULL;
    /* cl100k_base: ranks 0..100255 exactly, the specials above them */
    int32_t bad = v->n_tokens != PHIQ_PHI3SMALL_N_VOCAB ? v->n_tokens : -1;
    for (int32_t i = 0; bad < 0 && i < PHIQ_PHI3SMALL_FIRST_SPECIAL; i++)
        if (v->types[i] != PHIQ_TOK_TYPE_NORMAL) bad = i;
    if (bad >= 0) {
        phiq_tok_vocab_free(v);
        return phiq_fail_null(PHIQ_EFORMAT, "%s: not cl100k_base's ranks (rank %d missing or out of place): Phi3SmallTokenizer needs ranks 0..%d",
                              ranks_path, (int)bad, PHIQ_PHI3SMALL_FIRST_SPECIAL - 1);
    }
    v->bos_id = v->eos_id = 100257; /* <|endoftext|>, never added (add_bos false) */
    v->add_bos = false;
    cJSON *cfg = cfg_path && phiq_file_exists(cfg_path) ? read_json(cfg_path) : NULL;
    if (cfg_path && phiq_file_exists(cfg_path) && !cfg) goto fail;
    if (load_chat_template(v, cfg, cfg ? cfg_path : NULL) < 0) goto fail;
    if (!v->chat_template && !(v->chat_template = strdup(phiq_phi3small_chat_template()))) {
        phiq_fail(PHIQ_ENOMEM, "%s: out of memory", ranks_path);
        goto fail;
    }
    cJSON_Delete(cfg);
    return v;
fail:
    cJSON_Delete(cfg);
    phiq_tok_vocab_free(v);
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
    if (!phiq_file_exists(tj)) {
        /* Phi-3-small ships its tiktoken ranks and a remote-code tokenizer instead */
        char *tk = phiq_path_join(dir, "cl100k_base.tiktoken");
        if (tk && phiq_file_exists(tk)) v = phiq_tok_vocab_phi3small(tk, tc);
        else if (tk) phiq_fail(PHIQ_EUNSUPPORTED, "%s: no tokenizer.json (or cl100k_base.tiktoken) in this directory", dir);
        else phiq_fail(PHIQ_ENOMEM, "%s: out of memory", dir);
        free(tk);
        if (!v) goto done;
    } else if (!(v = phiq_tok_vocab_from_hf_json(tj, tc))) goto done;
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
