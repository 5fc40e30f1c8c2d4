/* tokenizer.c — builds a phiq_tokenizer from a neutral phiq_tok_vocab and
 * owns what is common to both algorithms: the text -> id table, the
 * special-token split (llama.cpp's tokenizer_st_partition), BOS/EOS,
 * end-of-generation ids, printable pieces, whole and streaming decoding, and
 * the GPT-2 byte <-> unicode alphabet. */
#define _GNU_SOURCE
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "tokenizer/tok_internal.h"

/* ---- pre-tokenizer patterns (exactly as the reference encoders use them) ---- */
static const char RE_GPT2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char RE_CL100K[] =
    "('s|'S|'t|'T|'re|'rE|'Re|'RE|'ve|'vE|'Ve|'VE|'m|'M|'ll|'lL|'Ll|'LL|'d|'D)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_O200K[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "('s|'S|'t|'T|'re|'rE|'Re|'RE|'ve|'vE|'Ve|'VE|'m|'M|'ll|'lL|'Ll|'LL|'d|'D)?|"
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
    "('s|'S|'t|'T|'re|'rE|'Re|'RE|'ve|'vE|'Ve|'VE|'m|'M|'ll|'lL|'Ll|'LL|'d|'D)?|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const char *phiq_pretok_regex(const char *name) {
    if (!name) return NULL;
    if (!strcmp(name, "gpt2") || !strcmp(name, "gpt-2") || !strcmp(name, "phi-2") || !strcmp(name, "codegen"))
        return RE_GPT2;
    if (!strcmp(name, "cl100k") || !strcmp(name, "cl100k_base") || !strcmp(name, "dbrx") || !strcmp(name, "llama3") ||
        !strcmp(name, "llama-bpe") || !strcmp(name, "llama-v3"))
        return RE_CL100K;
    if (!strcmp(name, "o200k") || !strcmp(name, "o200k_base") || !strcmp(name, "gpt-4o")) return RE_O200K;
    return NULL;
}

/* tiktoken-derived vocabularies emit a word that is a whole token directly. */
static bool pre_ignores_merges(const char *name) {
    const char *re = phiq_pretok_regex(name);
    return re == RE_CL100K || re == RE_O200K;
}

/* ---- GPT-2 byte <-> unicode alphabet -------------------------------------- */
static uint16_t b2u[256];
static int16_t u2b[324]; /* code points used are < 324 */
static pthread_once_t bl_once = PTHREAD_ONCE_INIT;

static void bl_build(void) {
    for (int i = 0; i < 324; i++) u2b[i] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        b2u[b] = keep ? (uint16_t)b : (uint16_t)(256 + extra++);
        u2b[b2u[b]] = (int16_t)b;
    }
}

static void bl_init(void) { pthread_once(&bl_once, bl_build); }

int phiq_bytelevel_encode(const unsigned char *in, size_t n, char *out, size_t cap) {
    bl_init();
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t u = b2u[in[i]];
        if (u < 0x80) {
            if (k < cap) out[k] = (char)u;
            k++;
        } else {
            if (k + 1 < cap) {
                out[k] = (char)(0xC0 | (u >> 6));
                out[k + 1] = (char)(0x80 | (u & 0x3F));
            }
            k += 2;
        }
    }
    if (k < cap) out[k] = 0;
    return (int)k;
}

int phiq_bytelevel_decode(const char *in, size_t n, unsigned char *out) {
    bl_init();
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)in[i];
        uint32_t u;
        if (c < 0x80) { u = c; i++; }
        else if ((c & 0xE0) == 0xC0 && i + 1 < n && ((unsigned char)in[i + 1] & 0xC0) == 0x80) {
            u = ((uint32_t)(c & 0x1F) << 6) | ((unsigned char)in[i + 1] & 0x3F);
            i += 2;
        } else return -1;
        if (u >= 324 || u2b[u] < 0) return -1;
        out[k++] = (unsigned char)u2b[u];
    }
    return (int)k;
}

/* ---- hash tables ---------------------------------------------------------- */
uint32_t phiq_hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}
#define hash_bytes phiq_hash_bytes

/* ---- per-call word cache ------------------------------------------------------ */
enum { WCACHE_MAX_KEY = 64, WCACHE_MAX_ENTRIES = 1 << 16 };

const phiq_wcache_ent *phiq_wcache_get(const phiq_wcache *c, const char *key, uint32_t klen, uint32_t hash) {
    if (!c->cap) return NULL;
    uint32_t mask = c->cap - 1;
    for (uint32_t i = hash & mask;; i = (i + 1) & mask) {
        const phiq_wcache_ent *e = &c->e[i];
        if (!e->kpos) return NULL;
        if (e->hash == hash && e->klen == klen && memcmp(c->kbuf + e->kpos - 1, key, klen) == 0) return e;
    }
}

/* Room for need elements of elem bytes in *v: the capacity *cap doubles
 * (from first) until it holds them. */
int phiq_wcache_reserve(phiq_wcache *c, size_t more) {
    return phiq_grow((void **)&c->ids, &c->icap, c->nids + more, 256, sizeof *c->ids);
}

int phiq_wcache_put(phiq_wcache *c, const char *key, uint32_t klen, uint32_t hash, size_t from) {
    /* bounded: at most 64K keys of <= 64 bytes, so offsets fit in 32 bits */
    if (klen > WCACHE_MAX_KEY || c->used >= WCACHE_MAX_ENTRIES) { c->nids = from; return 0; }
    if ((c->used + 1) * 2 > c->cap) { /* grow to keep the load under 1/2 */
        uint32_t nc = c->cap ? c->cap * 2 : 256;
        phiq_wcache_ent *ne = calloc(nc, sizeof *ne);
        if (!ne) return phiq_fail(PHIQ_ENOMEM, "tokenize: out of memory");
        for (uint32_t i = 0; i < c->cap; i++) {
            if (!c->e[i].kpos) continue;
            uint32_t j = c->e[i].hash & (nc - 1);
            while (ne[j].kpos) j = (j + 1) & (nc - 1);
            ne[j] = c->e[i];
        }
        free(c->e);
        c->e = ne;
        c->cap = nc;
    }
    if (phiq_grow((void **)&c->kbuf, &c->kcap, c->kn + klen, 4096, 1)) return PHIQ_ENOMEM;
    if (klen) memcpy(c->kbuf + c->kn, key, klen);
    uint32_t j = hash & (c->cap - 1);
    while (c->e[j].kpos) j = (j + 1) & (c->cap - 1);
    c->e[j] = (phiq_wcache_ent){(uint32_t)c->kn + 1, klen, hash, (uint32_t)from, (uint32_t)(c->nids - from)};
    c->kn += klen;
    c->used++;
    return 0;
}

void phiq_wcache_free(phiq_wcache *c) {
    free(c->e);
    free(c->ids);
    free(c->kbuf);
    memset(c, 0, sizeof *c);
}

void phiq_tok_scratch_free(phiq_tok_scratch *s) {
    phiq_wcache_free(&s->c);
    free(s->h.v);
    free(s->buf);
    free(s->sym);
    free(s->sid);
    memset(s, 0, sizeof *s);
}

int32_t phiq_strmap_get(const phiq_strmap *m, const char *s, size_t len) {
    if (!m->cap) return -1;
    uint32_t mask = m->cap - 1;
    for (uint32_t i = hash_bytes(s, len) & mask;; i = (i + 1) & mask) {
        int32_t id = m->slots[i];
        if (id < 0) return -1;
        if (m->lens[id] == len && memcmp(m->keys[id], s, len) == 0) return id;
    }
}

/* Later duplicates replace earlier ones, as llama.cpp's token_to_id map. */
int phiq_strmap_build(phiq_strmap *m, char **keys, const uint32_t *lens, int32_t n) {
    uint32_t cap = 16;
    while (cap < (uint32_t)n * 2u + 16u) cap <<= 1;
    m->slots = malloc(sizeof *m->slots * cap);
    if (!m->slots) return PHIQ_ENOMEM;
    for (uint32_t i = 0; i < cap; i++) m->slots[i] = -1;
    m->cap = cap;
    m->keys = (const char *const *)keys;
    m->lens = lens;
    for (int32_t id = 0; id < n; id++) {
        uint32_t i = hash_bytes(keys[id], lens[id]) & (cap - 1);
        while (m->slots[i] >= 0) {
            int32_t o = m->slots[i];
            if (lens[o] == lens[id] && memcmp(keys[o], keys[id], lens[id]) == 0) break;
            i = (i + 1) & (cap - 1);
        }
        m->slots[i] = id;
    }
    return 0;
}

/* ---- merge heap -------------------------------------------------------------- */
static bool cand_less(const phiq_merge_cand *a, const phiq_merge_cand *b) {
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

int phiq_heap_push(phiq_merge_heap *h, phiq_merge_cand c) {
    if (phiq_grow((void **)&h->v, &h->cap, h->n + 1, 64, sizeof *h->v)) return PHIQ_ENOMEM;
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
    return 0;
}

int phiq_heap_pop(phiq_merge_heap *h, phiq_merge_cand *out) {
    if (h->n == 0) return 0;
    *out = h->v[0];
    phiq_merge_cand last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const phiq_merge_cand *best = &last;
        if (l < h->n && cand_less(&h->v[l], best)) { m = l; best = &h->v[l]; }
        if (r < h->n && cand_less(&h->v[r], best)) { m = r; }
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n) h->v[i] = last;
    return 1;
}

/* ---- vocab description ---------------------------------------------------- */
phiq_tok_vocab *phiq_tok_vocab_new(int model, int32_t n_tokens) {
    phiq_tok_vocab *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->model = model;
    v->n_tokens = n_tokens;
    v->tokens = calloc((size_t)n_tokens + 1, sizeof *v->tokens);
    v->types = calloc((size_t)n_tokens + 1, sizeof *v->types);
    v->attrs = calloc((size_t)n_tokens + 1, 1);
    if (model == PHIQ_TOK_MODEL_SPM) v->scores = calloc((size_t)n_tokens + 1, sizeof *v->scores);
    v->bos_id = v->eos_id = v->unk_id = v->pad_id = -1;
    if (!v->tokens || !v->types || !v->attrs || (model == PHIQ_TOK_MODEL_SPM && !v->scores)) {
        phiq_tok_vocab_free(v);
        return NULL;
    }
    return v;
}

void phiq_tok_vocab_free(phiq_tok_vocab *v) {
    if (!v) return;
    if (v->tokens)
        for (int32_t i = 0; i < v->n_tokens; i++) free(v->tokens[i]);
    for (int32_t i = 0; i < v->n_merges && v->merges; i++) free(v->merges[i]);
    PHIQ_FREE_ALL(v->tokens, v->scores, v->types, v->attrs, v->merges, v->pre, v->pre_regex, v->eog_ids, v->chat_template,
                  v);
}

int phiq_tok_vocab_fill_holes(phiq_tok_vocab *v) {
    for (int32_t i = 0; i < v->n_tokens; i++) {
        if (v->tokens[i]) continue;
        char name[32];
        snprintf(name, sizeof name, "[PAD%d]", (int)i);
        if (!(v->tokens[i] = strdup(name))) return phiq_fail(PHIQ_ENOMEM, "tokenizer: out of memory");
        v->types[i] = PHIQ_TOK_TYPE_UNUSED;
        if (v->attrs) v->attrs[i] = 0;
        if (v->scores) v->scores[i] = -10000.0f;
    }
    return 0;
}

int phiq_tok_vocab_pad(phiq_tok_vocab *v, int32_t n) {
    if (n <= v->n_tokens) return 0;
    char **t = realloc(v->tokens, sizeof *t * (size_t)n);
    if (t) v->tokens = t;
    int32_t *ty = realloc(v->types, sizeof *ty * (size_t)n);
    if (ty) v->types = ty;
    uint8_t *at = realloc(v->attrs, (size_t)n);
    if (at) v->attrs = at;
    if (v->scores) {
        float *s = realloc(v->scores, sizeof *s * (size_t)n);
        if (s) v->scores = s;
        if (!s) return phiq_fail(PHIQ_ENOMEM, "tokenizer: out of memory");
    }
    if (!t || !ty || !at) return phiq_fail(PHIQ_ENOMEM, "tokenizer: out of memory");
    for (int32_t i = v->n_tokens; i < n; i++) v->tokens[i] = NULL;
    v->n_tokens = n;
    return phiq_tok_vocab_fill_holes(v);
}

/* ---- build ---------------------------------------------------------------------- */
static bool is_special_type(int ty) {
    return ty == PHIQ_TOK_TYPE_CONTROL || ty == PHIQ_TOK_TYPE_USER_DEFINED || ty == PHIQ_TOK_TYPE_UNKNOWN;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : (x > y);
}

static int build_pieces(phiq_tokenizer *t) {
    t->piece = calloc((size_t)(uint32_t)t->n, sizeof *t->piece);
    t->piece_len = calloc((size_t)(uint32_t)t->n, sizeof *t->piece_len);
    if (!t->piece || !t->piece_len) return PHIQ_ENOMEM;
    for (int32_t i = 0; i < t->n; i++) {
        const char *s = t->text[i];
        uint32_t n = t->text_len[i];
        char *p = malloc((size_t)n * 3 + 1);
        if (!p) return PHIQ_ENOMEM;
        uint32_t k = 0;
        int ty = t->types[i];
        if (ty == PHIQ_TOK_TYPE_UNUSED) {
            k = 0;
        } else if (ty == PHIQ_TOK_TYPE_BYTE && n == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' && isxdigit((unsigned char)s[3]) &&
                   isxdigit((unsigned char)s[4])) {
            p[k++] = (char)strtol((char[]){s[3], s[4], 0}, NULL, 16);
        } else if (ty == PHIQ_TOK_TYPE_NORMAL || ty == PHIQ_TOK_TYPE_BYTE) {
            if (t->model == PHIQ_TOK_MODEL_SPM) {
                for (uint32_t j = 0; j < n; j++) {
                    if (j + 2 < n && !memcmp(s + j, "\xe2\x96\x81", 3)) { p[k++] = ' '; j += 2; }
                    else p[k++] = s[j];
                }
            } else {
                int r = phiq_bytelevel_decode(s, n, (unsigned char *)p);
                if (r < 0) { memcpy(p, s, n); k = n; }
                else k = (uint32_t)r;
            }
        } else {
            memcpy(p, s, n);
            k = n;
        }
        p[k] = 0;
        t->piece[i] = p;
        t->piece_len[i] = k;
        if ((int)k > t->max_piece) t->max_piece = (int)k;
    }
    return 0;
}

static int build_merges(phiq_tokenizer *t, const phiq_tok_vocab *v) {
    uint32_t cap = 16;
    while (cap < (uint32_t)v->n_merges * 2u + 16u) cap <<= 1;
    t->merges.slot = calloc(cap, sizeof *t->merges.slot);
    if (!t->merges.slot) return PHIQ_ENOMEM;
    t->merges.cap = cap;
    char *tmp = NULL;
    size_t tmp_cap = 0;
    for (int32_t r = 0; r < v->n_merges; r++) {
        const char *m = v->merges[r];
        size_t ml = strlen(m);
        const char *sp = ml > 1 ? memchr(m + 1, ' ', ml - 1) : NULL; /* llama.cpp: first space after position 0 */
        if (!sp) continue;
        size_t la = (size_t)(sp - m), lb = ml - la - 1;
        int32_t a = phiq_strmap_get(&t->map, m, la), b = phiq_strmap_get(&t->map, sp + 1, lb);
        if (a < 0 || b < 0) continue;
        if (la + lb + 1 > tmp_cap) {
            tmp_cap = (la + lb + 1) * 2;
            char *nt = realloc(tmp, tmp_cap);
            if (!nt) { free(tmp); return PHIQ_ENOMEM; }
            tmp = nt;
        }
        memcpy(tmp, m, la);
        memcpy(tmp + la, sp + 1, lb);
        int32_t res = phiq_strmap_get(&t->map, tmp, la + lb);
        uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
        uint32_t i = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
        while (t->merges.slot[i].key && t->merges.slot[i].key != key) i = (i + 1) & (cap - 1);
        if (t->merges.slot[i].key) continue; /* first (lowest) rank wins */
        t->merges.slot[i] = (phiq_pairslot){key, r, res};
    }
    free(tmp);
    return 0;
}

/* llama.cpp's end-of-generation texts (llama_vocab::load); such tokens are
 * also forced to CONTROL, so e.g. Phi-3's USER_DEFINED </s> is only split out
 * of the text when special tokens are parsed. */
static const char *const EOG_TEXTS[] = {"<|eot_id|>", "<|im_end|>",   "<|end|>",   "<|return|>", "<|call|>",
                                        "<|flush|>",  "<|calls|>",    "<end_of_turn>", "<|endoftext|>", "</s>",
                                        "<|eom_id|>", "<EOT>",        "_<EOT>",    "[EOT]",      "[EOS]",
                                        "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
                                        NULL};

phiq_tokenizer *phiq_tokenizer_from_vocab(const phiq_tok_vocab *v) {
    if (!v || v->n_tokens <= 0 || !v->tokens || !v->types)
        return phiq_fail_null(PHIQ_EINVAL, "tokenizer: empty vocabulary");
    if (v->model != PHIQ_TOK_MODEL_SPM && v->model != PHIQ_TOK_MODEL_BPE)
        return phiq_fail_null(PHIQ_EUNSUPPORTED, "tokenizer: unsupported tokenizer model %d", v->model);
    phiq_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return phiq_fail_null(PHIQ_ENOMEM, "tokenizer: out of memory");
    t->model = v->model;
    t->n = v->n_tokens;
    t->text = calloc((size_t)t->n, sizeof *t->text);
    t->text_len = calloc((size_t)t->n, sizeof *t->text_len);
    t->types = calloc((size_t)t->n, sizeof *t->types);
    t->attrs = calloc((size_t)t->n, 1);
    t->eog = calloc((size_t)t->n, 1);
    if (t->model == PHIQ_TOK_MODEL_SPM) t->scores = calloc((size_t)t->n, sizeof *t->scores);
    if (!t->text || !t->text_len || !t->types || !t->attrs || !t->eog || (t->model == PHIQ_TOK_MODEL_SPM && !t->scores))
        goto oom;
    for (int32_t i = 0; i < t->n; i++) {
        const char *s = v->tokens[i] ? v->tokens[i] : "";
        size_t n = strlen(s);
        if (n > 65535) {
            phiq_tokenizer_free(t);
            return phiq_fail_null(PHIQ_EFORMAT, "tokenizer: token %d is %zu bytes long", (int)i, n);
        }
        t->text[i] = malloc(n + 1);
        if (!t->text[i]) goto oom;
        memcpy(t->text[i], s, n + 1);
        t->text_len[i] = (uint32_t)n;
        int ty = v->types[i];
        t->types[i] = (ty >= PHIQ_TOK_TYPE_NORMAL && ty <= PHIQ_TOK_TYPE_BYTE) ? ty : PHIQ_TOK_TYPE_NORMAL;
        if (v->attrs) t->attrs[i] = v->attrs[i];
        if (t->scores) t->scores[i] = v->scores ? v->scores[i] : 0.0f;
    }
    if (phiq_strmap_build(&t->map, t->text, t->text_len, t->n) < 0) goto oom;
    if (build_pieces(t) < 0) goto oom;
    /* SPM word-by-word merging is exact only if no piece (hence no merge
     * result) bridges "<non-▁ byte>▁": then merges never cross such a point. */
    t->spm_split = t->model == PHIQ_TOK_MODEL_SPM;
    for (int32_t i = 0; i < t->n && t->spm_split; i++) {
        const char *s = t->text[i], *e = s + t->text_len[i];
        while (e - s >= 3 && !memcmp(s, "\xe2\x96\x81", 3)) s += 3;
        for (; e - s > 3 && t->spm_split; s++)
            if (!memcmp(s + 1, "\xe2\x96\x81", 3)) t->spm_split = false;
    }
    t->bos = v->bos_id >= 0 && v->bos_id < t->n ? v->bos_id : -1;
    t->eos = v->eos_id >= 0 && v->eos_id < t->n ? v->eos_id : -1;
    t->unk = v->unk_id >= 0 && v->unk_id < t->n ? v->unk_id : -1;
    t->pad = v->pad_id >= 0 && v->pad_id < t->n ? v->pad_id : -1;
    t->add_bos = v->add_bos && t->bos >= 0;
    t->add_eos = v->add_eos && t->eos >= 0;
    t->add_space_prefix = v->model == PHIQ_TOK_MODEL_SPM && v->add_space_prefix;
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_ids[b] = phiq_strmap_get(&t->map, name, 6);
    }
    /* end of generation */
    if (t->eos >= 0) t->eog[t->eos] = 1;
    for (int k = 0; EOG_TEXTS[k]; k++) {
        int32_t id = phiq_strmap_get(&t->map, EOG_TEXTS[k], strlen(EOG_TEXTS[k]));
        if (id < 0) continue;
        t->eog[id] = 1;
        t->types[id] = PHIQ_TOK_TYPE_CONTROL;
    }
    for (int32_t k = 0; k < v->n_eog && v->eog_ids; k++)
        if (v->eog_ids[k] >= 0 && v->eog_ids[k] < t->n) t->eog[v->eog_ids[k]] = 1;
    /* special-token split list, longest text first */
    t->specials = malloc(sizeof *t->specials * (size_t)t->n);
    uint64_t *keys = malloc(sizeof *keys * (size_t)t->n);
    if (!t->specials || !keys) { free(keys); goto oom; }
    int32_t ns = 0;
    for (int32_t i = 0; i < t->n; i++) /* key: longer text first, then lower id */
        if (is_special_type(t->types[i]) && t->text_len[i] > 0)
            keys[ns++] = ((uint64_t)(0xFFFFFFFFu - t->text_len[i]) << 32) | (uint32_t)i;
    qsort(keys, (size_t)ns, sizeof *keys, cmp_u64);
    for (int32_t i = 0; i < ns; i++) t->specials[i] = (int32_t)(keys[i] & 0xFFFFFFFFu);
    t->n_specials = ns;
    free(keys);
    if (v->chat_template && !(t->chat_template = strdup(v->chat_template))) goto oom;
    if (t->model == PHIQ_TOK_MODEL_BPE) {
        const char *re = v->pre_regex ? v->pre_regex : phiq_pretok_regex(v->pre ? v->pre : "gpt-2");
        if (!re) {
            phiq_tokenizer_free(t);
            return phiq_fail_null(PHIQ_EUNSUPPORTED, "tokenizer: unknown pre-tokenizer '%s'", v->pre);
        }
        int err;
        PCRE2_SIZE eoff;
        t->re = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err,
                              &eoff, NULL);
        if (!t->re) {
            PCRE2_UCHAR msg[120];
            pcre2_get_error_message(err, msg, sizeof msg);
            phiq_tokenizer_free(t);
            return phiq_fail_null(PHIQ_EFORMAT, "tokenizer: pre-tokenizer regex does not compile at %zu: %s",
                                  (size_t)eoff, (char *)msg);
        }
        t->re_jit = pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;
        t->ignore_merges = pre_ignores_merges(v->pre) || (v->pre_regex && (!strcmp(v->pre_regex, RE_CL100K) ||
                                                                            !strcmp(v->pre_regex, RE_O200K)));
        if (v->n_merges > 0) {
            if (build_merges(t, v) < 0) goto oom;
        } else {
            t->tiktoken_rule = true;
            t->ignore_merges = true;
        }
    }
    return t;
oom:
    phiq_tokenizer_free(t);
    return phiq_fail_null(PHIQ_ENOMEM, "tokenizer: out of memory");
}

void phiq_tokenizer_free(phiq_tokenizer *t) {
    if (!t) return;
    for (int32_t i = 0; i < t->n; i++) {
        if (t->text) free(t->text[i]);
        if (t->piece) free(t->piece[i]);
    }
    PHIQ_FREE_ALL(t->text, t->text_len, t->piece, t->piece_len, t->scores, t->types, t->attrs, t->eog, t->map.slots,
                  t->merges.slot, t->specials, t->chat_template);
    if (t->re) pcre2_code_free(t->re);
    free(t);
}

/* ---- accessors -------------------------------------------------------------- */
int32_t phiq_tokenizer_n_vocab(const phiq_tokenizer *t) { return t->n; }
int phiq_tokenizer_model(const phiq_tokenizer *t) { return t->model; }
int32_t phiq_tokenizer_bos(const phiq_tokenizer *t) { return t->bos; }
int32_t phiq_tokenizer_eos(const phiq_tokenizer *t) { return t->eos; }
bool phiq_tokenizer_add_bos(const phiq_tokenizer *t) { return t->add_bos; }
int phiq_tokenizer_token_type(const phiq_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n ? t->types[id] : 0;
}
const char *phiq_tokenizer_token_text(const phiq_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n ? t->text[id] : NULL;
}
int32_t phiq_tokenizer_find(const phiq_tokenizer *t, const char *text) {
    return phiq_strmap_get(&t->map, text, strlen(text));
}
const char *phiq_tokenizer_chat_template(const phiq_tokenizer *t) { return t->chat_template; }
int phiq_tokenizer_max_piece(const phiq_tokenizer *t) { return t->max_piece; }

int phiq_tokenizer_eog_ids(const phiq_tokenizer *t, int32_t *out, int cap) {
    int k = 0;
    for (int32_t i = 0; i < t->n; i++)
        if (t->eog[i]) {
            if (k < cap) out[k] = i;
            k++;
        }
    return k;
}
bool phiq_tokenizer_is_eog(const phiq_tokenizer *t, int32_t id) { return id >= 0 && id < t->n && t->eog[id]; }
int phiq_tokenizer_add_eog(phiq_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n) return phiq_fail(PHIQ_ERANGE, "tokenizer: stop token %d outside the vocabulary (%d)", (int)id, (int)t->n);
    t->eog[id] = 1;
    return 0;
}

/* ---- encode ------------------------------------------------------------------ */
typedef struct frag {
    int32_t id; /* -1: raw text */
    size_t off, len;
} frag;

typedef struct frag_list {
    frag *v;
    size_t n, cap;
} frag_list;

static int frag_push(frag_list *l, int32_t id, size_t off, size_t len) {
    if (phiq_grow((void **)&l->v, &l->cap, l->n + 1, 16, sizeof *l->v)) return PHIQ_ENOMEM;
    l->v[l->n++] = (frag){id, off, len};
    return 0;
}

static bool c_isspace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

/* llama.cpp's tokenizer_st_partition: one pass per special token, longest
 * first, splitting every remaining raw fragment at each occurrence. */
static int split_specials(const phiq_tokenizer *t, const char *text, size_t len, int parse_special, frag_list *out) {
    frag_list cur = {0}, nxt = {0};
    int rc = 0;
    if (len > 0 && (rc = frag_push(&cur, -1, 0, len)) < 0) goto done;
    for (int32_t k = 0; k < t->n_specials; k++) {
        int32_t s = t->specials[k];
        int ty = t->types[s];
        if (!parse_special && (ty == PHIQ_TOK_TYPE_CONTROL || ty == PHIQ_TOK_TYPE_UNKNOWN)) continue;
        const char *st = t->text[s];
        size_t sl = t->text_len[s];
        bool found = false;
        for (size_t f = 0; f < cur.n && !found; f++)
            if (cur.v[f].id < 0 && cur.v[f].len >= sl && memmem(text + cur.v[f].off, cur.v[f].len, st, sl)) found = true;
        if (!found) continue;
        nxt.n = 0;
        for (size_t f = 0; f < cur.n; f++) {
            frag fr = cur.v[f];
            if (fr.id >= 0) {
                if ((rc = frag_push(&nxt, fr.id, 0, 0)) < 0) goto done;
                continue;
            }
            size_t off = fr.off, rem = fr.len;
            while (rem > 0) {
                const char *m = rem >= sl ? memmem(text + off, rem, st, sl) : NULL;
                if (!m) {
                    if ((rc = frag_push(&nxt, -1, off, rem)) < 0) goto done;
                    break;
                }
                size_t mpos = (size_t)(m - text);
                size_t left = mpos - off;
                if (t->attrs[s] & PHIQ_TOK_ATTR_LSTRIP)
                    while (left > 0 && c_isspace(text[off + left - 1])) left--;
                if (left > 0 && (rc = frag_push(&nxt, -1, off, left)) < 0) goto done;
                if ((rc = frag_push(&nxt, s, 0, 0)) < 0) goto done;
                size_t roff = mpos + sl, rlen = off + rem - roff;
                if (t->attrs[s] & PHIQ_TOK_ATTR_RSTRIP)
                    while (rlen > 0 && c_isspace(text[roff])) { roff++; rlen--; }
                off = roff;
                rem = rlen;
            }
        }
        frag_list tmp = cur;
        cur = nxt;
        nxt = tmp;
    }
    *out = cur;
    cur.v = NULL;
done:
    free(cur.v);
    free(nxt.v);
    return rc;
}

int phiq_tokenize_text(const phiq_tokenizer *t, const char *text, size_t len, int add_bos, int parse_special,
                       int32_t *out, int cap) {
    if (!t || (!text && len) || cap < 0 || (!out && cap > 0)) return phiq_fail(PHIQ_EINVAL, "tokenize: bad arguments");
    if (len > (size_t)1 << 30) return phiq_fail(PHIQ_EINVAL, "tokenize: text of %zu bytes is too long", len);
    phiq_idbuf b = {out, cap, 0};
    phiq_tok_scratch sc;
    memset(&sc, 0, sizeof sc);
    frag_list fl = {0};
    int rc = split_specials(t, text, len, parse_special, &fl);
    if (rc < 0) return rc;
    if (add_bos && t->add_bos) phiq_idbuf_push(&b, t->bos);
    bool prev_special = true; /* SPM: the text start counts as "after a special token" */
    for (size_t f = 0; f < fl.n && rc >= 0; f++) {
        if (fl.v[f].id >= 0) {
            phiq_idbuf_push(&b, fl.v[f].id);
            prev_special = true;
            continue;
        }
        if (t->model == PHIQ_TOK_MODEL_SPM)
            rc = phiq_spm_encode(t, text + fl.v[f].off, fl.v[f].len, t->add_space_prefix && prev_special, &sc, &b);
        else
            rc = phiq_bpe_encode(t, text + fl.v[f].off, fl.v[f].len, &sc, &b);
        prev_special = false;
        if (b.n > (1 << 30)) rc = phiq_fail(PHIQ_ERANGE, "tokenize: too many tokens");
    }
    free(fl.v);
    phiq_tok_scratch_free(&sc);
    if (rc < 0) return rc;
    if (add_bos && t->add_eos) phiq_idbuf_push(&b, t->eos);
    return b.n;
}

/* ---- decode --------------------------------------------------------------------- */
int phiq_token_piece(const phiq_tokenizer *t, int32_t id, char *buf, int cap) {
    if (!t || id < 0 || id >= t->n) return phiq_fail(PHIQ_ERANGE, "token id %d outside the vocabulary (%d)", (int)id, t ? (int)t->n : 0);
    int n = (int)t->piece_len[id];
    if (buf && cap > 0) memcpy(buf, t->piece[id], (size_t)(n < cap ? n : cap));
    return n;
}

static bool skipped(const phiq_tokenizer *t, int32_t id, int skip_special) {
    int ty = t->types[id];
    if (ty == PHIQ_TOK_TYPE_UNUSED) return true;
    return skip_special && (ty == PHIQ_TOK_TYPE_CONTROL || ty == PHIQ_TOK_TYPE_UNKNOWN);
}

int phiq_detokenize(const phiq_tokenizer *t, const int32_t *ids, int n, int skip_special, char *buf, int cap) {
    int k = 0;
    bool at_start = true;
    for (int i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n) return phiq_fail(PHIQ_ERANGE, "token id %d outside the vocabulary (%d)", (int)id, (int)t->n);
        if (i == 0 && id == t->bos && t->bos >= 0) continue;
        if (skipped(t, id, skip_special)) continue;
        const char *p = t->piece[id];
        uint32_t pl = t->piece_len[id];
        if (at_start && t->add_space_prefix && pl > 0 && p[0] == ' ') { p++; pl--; }
        at_start = false;
        for (uint32_t j = 0; j < pl; j++, k++)
            if (k < cap) buf[k] = p[j];
        if (k > (1 << 30)) return phiq_fail(PHIQ_ERANGE, "detokenize: output too long");
    }
    if (k < cap) buf[k] = 0;
    else if (cap > 0) buf[cap - 1] = 0;
    return k;
}

void phiq_detok_init(phiq_detok *d, const phiq_tokenizer *t, int skip_special) {
    memset(d, 0, sizeof *d);
    d->t = t;
    d->skip_special = skip_special;
    d->at_start = 1;
}

/* Length of a valid UTF-8 sequence at s (n bytes available): >0 valid length,
 * 0 incomplete but so far valid, -1 invalid lead/continuation. */
static int utf8_check(const unsigned char *s, int n) {
    unsigned char c = s[0];
    int need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return -1;
    for (int i = 1; i < need; i++) {
        if (i >= n) return 0;
        unsigned char x = s[i];
        if (i == 1 ? (x < lo || x > hi) : (x & 0xC0) != 0x80) return -1;
    }
    return need;
}

/* Emits the complete characters of (pend + piece); keeps an incomplete tail. */
static int detok_feed(phiq_detok *d, const unsigned char *p, int pl, char *out, int cap, bool final) {
    int k = 0;
    unsigned char win[8];
    int i = 0;
    /* process pending bytes together with the new ones through a small window */
    while (d->npend > 0 || i < pl) {
        int wn = 0;
        for (int j = 0; j < d->npend && wn < 4; j++) win[wn++] = d->pend[j];
        for (int j = i; j < pl && wn < 4; j++) win[wn++] = p[j];
        if (wn == 0) break;
        int r = utf8_check(win, wn);
        if (r == 0 && !final) {
            /* incomplete: everything left fits in pend (fewer than 4 bytes) */
            int rem = d->npend + (pl - i);
            if (rem < 4) {
                for (int j = i; j < pl; j++) d->pend[d->npend++] = p[j];
                return k;
            }
            r = -1;
        }
        int take = r > 0 ? r : 1;
        if (r > 0) {
            if (k + r > cap) return phiq_fail(PHIQ_ERANGE, "detokenize: output buffer too small");
            memcpy(out + k, win, (size_t)r);
            k += r;
        } else {
            if (k + 3 > cap) return phiq_fail(PHIQ_ERANGE, "detokenize: output buffer too small");
            memcpy(out + k, "\xEF\xBF\xBD", 3);
            k += 3;
        }
        /* consume take bytes: first from pend, then from p */
        int fromp = take - d->npend;
        if (fromp < 0) {
            memmove(d->pend, d->pend + take, (size_t)(d->npend - take));
            d->npend -= take;
        } else {
            d->npend = 0;
            i += fromp;
        }
    }
    return k;
}

int phiq_detok_push(phiq_detok *d, int32_t id, char *out, int cap) {
    const phiq_tokenizer *t = d->t;
    if (id < 0 || id >= t->n) return phiq_fail(PHIQ_ERANGE, "token id %d outside the vocabulary (%d)", (int)id, (int)t->n);
    if (d->at_start && id == t->bos && t->bos >= 0) return 0;
    if (skipped(t, id, d->skip_special)) return 0;
    const unsigned char *p = (const unsigned char *)t->piece[id];
    int pl = (int)t->piece_len[id];
    if (d->at_start && t->add_space_prefix && pl > 0 && p[0] == ' ') { p++; pl--; }
    d->at_start = 0;
    return detok_feed(d, p, pl, out, cap, false);
}

int phiq_detok_flush(phiq_detok *d, char *out, int cap) { return detok_feed(d, NULL, 0, out, cap, true); }
