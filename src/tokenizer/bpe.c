/* bpe.c — byte-level BPE (GPT-2/CodeGen, cl100k, o200k) as llama.cpp's
 * llm_tokenizer_bpe and tiktoken run it: the text is split into words by
 * the pre-tokenizer regex (PCRE2, UTF + UCP, JIT when available), each word's
 * bytes are mapped to GPT-2's printable byte alphabet, and adjacent symbols
 * merge lowest rank first (ties: leftmost). Rank comes from the merges list,
 * or for tiktoken vocabularies from the id of the concatenation. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "tokenizer/tok_internal.h"

static int32_t pair_rank(const phiq_tokenizer *t, const char *buf, const phiq_sym *sym, const int32_t *sid, int32_t l,
                         int32_t r, int32_t *result) {
    if (t->tiktoken_rule) {
        int32_t id = phiq_strmap_get(&t->map, buf + sym[l].off, sym[l].n + sym[r].n);
        if (id < 0 || (t->types[id] != PHIQ_TOK_TYPE_NORMAL && t->types[id] != PHIQ_TOK_TYPE_BYTE)) return -1;
        *result = id;
        return id;
    }
    if (sid[l] < 0 || sid[r] < 0 || t->merges.cap == 0) return -1;
    uint64_t key = (((uint64_t)(uint32_t)sid[l] << 32) | (uint32_t)sid[r]) + 1;
    uint32_t mask = t->merges.cap - 1;
    uint32_t i = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
    while (t->merges.keys[i]) {
        if (t->merges.keys[i] == key) {
            *result = t->merges.result[i];
            return t->merges.rank[i];
        }
        i = (i + 1) & mask;
    }
    return -1;
}

static int try_add(const phiq_tokenizer *t, const char *buf, const phiq_sym *sym, const int32_t *sid, int32_t l,
                   int32_t r, phiq_merge_heap *h) {
    if (l < 0 || r < 0) return 0;
    int32_t res;
    int32_t rank = pair_rank(t, buf, sym, sid, l, r, &res);
    if (rank < 0) return 0;
    phiq_merge_cand c = {(double)rank, l, r, sym[l].n + sym[r].n};
    return phiq_heap_push(h, c);
}

static int phiq_bpe_encode_valid(const phiq_tokenizer *t, const char *text, size_t len, phiq_idbuf *out);

/* One pre-tokenized word (raw bytes). */
static int bpe_word(const phiq_tokenizer *t, const char *w, size_t len, phiq_idbuf *out) {
    char *buf = malloc(len * 2 + 1);
    phiq_sym *sym = malloc(sizeof *sym * (len + 1));
    int32_t *sid = malloc(sizeof *sid * (len + 1));
    phiq_merge_heap h = {0};
    int rc = 0;
    if (!buf || !sym || !sid) { rc = phiq_fail(PHIQ_ENOMEM, "tokenize: out of memory"); goto done; }
    size_t bn = (size_t)phiq_bytelevel_encode((const unsigned char *)w, len, buf, len * 2 + 1);
    if (t->ignore_merges) {
        int32_t id = phiq_strmap_get(&t->map, buf, bn);
        if (id >= 0) { phiq_idbuf_push(out, id); goto done; }
    }
    int32_t ns = 0;
    for (size_t off = 0; off < bn;) {
        size_t n = phiq_utf8_len_lead((unsigned char)buf[off]);
        if (n > bn - off) n = bn - off;
        sym[ns] = (phiq_sym){ns - 1, -1, (uint32_t)off, (uint32_t)n};
        if (ns > 0) sym[ns - 1].next = ns;
        sid[ns] = phiq_strmap_get(&t->map, buf + off, n);
        ns++;
        off += n;
    }
    for (int32_t i = 1; i < ns; i++)
        if ((rc = try_add(t, buf, sym, sid, i - 1, i, &h)) < 0) goto done;
    phiq_merge_cand c;
    while (phiq_heap_pop(&h, &c)) {
        phiq_sym *L = &sym[c.left], *R = &sym[c.right];
        if (L->n == 0 || R->n == 0 || L->n + R->n != c.size) continue;
        int32_t res = -1;
        pair_rank(t, buf, sym, sid, c.left, c.right, &res);
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        sid[c.left] = res;
        if (R->next >= 0) sym[R->next].prev = c.left;
        if ((rc = try_add(t, buf, sym, sid, L->prev, c.left, &h)) < 0) goto done;
        if ((rc = try_add(t, buf, sym, sid, c.left, L->next, &h)) < 0) goto done;
    }
    for (int32_t i = 0; i >= 0 && i < ns; i = sym[i].next) {
        int32_t id = phiq_strmap_get(&t->map, buf + sym[i].off, sym[i].n);
        if (id >= 0) {
            phiq_idbuf_push(out, id);
            continue;
        }
        /* not a token (a merge whose result is missing): characters one by one */
        for (uint32_t j = 0; j < sym[i].n;) {
            size_t n = phiq_utf8_len_lead((unsigned char)buf[sym[i].off + j]);
            if (n > sym[i].n - j) n = sym[i].n - j;
            int32_t cid = phiq_strmap_get(&t->map, buf + sym[i].off + j, n);
            if (cid >= 0) phiq_idbuf_push(out, cid);
            j += (uint32_t)n;
        }
    }
done:
    free(buf);
    free(sym);
    free(sid);
    free(h.v);
    return rc;
}

/* llama.cpp decodes the text to code points before the regex, turning each
 * byte that does not start a well-formed sequence (by its lead-byte rule)
 * into U+FFFD; re-encoding also normalises overlong forms. Returns a malloc'd
 * copy, or NULL with *same set when the text is already canonical. */
static char *sanitize_utf8(const char *s, size_t n, size_t *out_len, bool *same) {
    *same = true;
    char *o = NULL;
    size_t k = 0;
    for (int pass = 0; pass < 2; pass++) {
        k = 0;
        for (size_t i = 0; i < n;) {
            unsigned char c = (unsigned char)s[i];
            uint32_t cp = 0xFFFD;
            size_t used = 1;
            if (c < 0x80) { cp = c; }
            else if ((c & 0x40) == 0) { /* stray continuation byte */ }
            else {
                size_t need = !(c & 0x20) ? 2 : !(c & 0x10) ? 3 : !(c & 0x08) ? 4 : 0;
                bool ok = need > 0 && i + need <= n;
                for (size_t j = 1; ok && j < need; j++) ok = ((unsigned char)s[i + j] & 0xC0) == 0x80;
                if (ok) {
                    cp = need == 2 ? (c & 0x1Fu) : need == 3 ? (c & 0x0Fu) : (c & 0x07u);
                    for (size_t j = 1; j < need; j++) cp = (cp << 6) | ((unsigned char)s[i + j] & 0x3Fu);
                    used = need;
                    if (cp > 0x10FFFF) cp = 0xFFFD;
                }
            }
            unsigned char e[4];
            size_t el;
            if (cp < 0x80) { e[0] = (unsigned char)cp; el = 1; }
            else if (cp < 0x800) { e[0] = (unsigned char)(0xC0 | (cp >> 6)); e[1] = (unsigned char)(0x80 | (cp & 63)); el = 2; }
            else if (cp < 0x10000) {
                e[0] = (unsigned char)(0xE0 | (cp >> 12));
                e[1] = (unsigned char)(0x80 | ((cp >> 6) & 63));
                e[2] = (unsigned char)(0x80 | (cp & 63));
                el = 3;
            } else {
                e[0] = (unsigned char)(0xF0 | (cp >> 18));
                e[1] = (unsigned char)(0x80 | ((cp >> 12) & 63));
                e[2] = (unsigned char)(0x80 | ((cp >> 6) & 63));
                e[3] = (unsigned char)(0x80 | (cp & 63));
                el = 4;
            }
            if (pass == 0 && (el != used || memcmp(e, s + i, el))) *same = false;
            if (pass == 1) memcpy(o + k, e, el);
            k += el;
            i += used;
        }
        if (pass == 0) {
            if (*same) return NULL;
            if (!(o = malloc(k + 1))) return NULL;
        }
    }
    *out_len = k;
    return o;
}

int phiq_bpe_encode(const phiq_tokenizer *t, const char *text, size_t len, phiq_idbuf *out) {
    if (len == 0) return 0;
    bool same;
    size_t slen = 0;
    char *clean = sanitize_utf8(text, len, &slen, &same);
    if (!same) {
        if (!clean) return phiq_fail(PHIQ_ENOMEM, "tokenize: out of memory");
        int rc = phiq_bpe_encode_valid(t, clean, slen, out);
        free(clean);
        return rc;
    }
    return phiq_bpe_encode_valid(t, text, len, out);
}

static int phiq_bpe_encode_valid(const phiq_tokenizer *t, const char *text, size_t len, phiq_idbuf *out) {
    if (!t->re) return bpe_word(t, text, len, out);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(t->re, NULL);
    if (!md) return phiq_fail(PHIQ_ENOMEM, "tokenize: out of memory");
    int rc = 0;
    size_t pos = 0;
    while (pos < len) {
        int m = pcre2_match(t->re, (PCRE2_SPTR)text, len, pos, 0, md, NULL);
        if (m == PCRE2_ERROR_JIT_STACKLIMIT) m = pcre2_match(t->re, (PCRE2_SPTR)text, len, pos, PCRE2_NO_JIT, md, NULL);
        if (m == PCRE2_ERROR_NOMATCH) {
            rc = bpe_word(t, text + pos, len - pos, out);
            break;
        }
        if (m < 0) {
            PCRE2_UCHAR msg[120];
            pcre2_get_error_message(m, msg, sizeof msg);
            rc = phiq_fail(PHIQ_EINVAL, "tokenize: pre-tokenizer regex failed at byte %zu: %s", pos, (char *)msg);
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t s = ov[0], e = ov[1];
        if (s < pos || e < s || e > len) { rc = phiq_fail(PHIQ_EINVAL, "tokenize: regex returned a bad range"); break; }
        if (s > pos && (rc = bpe_word(t, text + pos, s - pos, out)) < 0) break;
        if (e == s) { /* empty match: take one character so we always advance */
            e = s + phiq_utf8_len_lead((unsigned char)text[s]);
            if (e > len) e = len;
        }
        if ((rc = bpe_word(t, text + s, e - s, out)) < 0) break;
        pos = e;
    }
    pcre2_match_data_free(md);
    return rc;
}
