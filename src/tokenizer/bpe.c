/* bpe.c — byte-level BPE (GPT-2/CodeGen, cl100k, o200k) as llama.cpp's
 * llm_tokenizer_bpe and tiktoken run it: the text is split into words by
 * the pre-tokenizer regex (PCRE2, UTF + UCP, JIT when available), each word's
 * bytes are mapped to GPT-2's printable byte alphabet, and adjacent symbols
 * merge lowest rank first (ties: leftmost). Rank comes from the merges list,
 * or for tiktoken vocabularies from the id of the concatenation. */
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

int phiq_bpe_encode(const phiq_tokenizer *t, const char *text, size_t len, phiq_idbuf *out) {
    if (len == 0) return 0;
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
