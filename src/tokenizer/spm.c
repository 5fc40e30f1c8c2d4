/* spm.c — SentencePiece-style BPE as llama.cpp's llm_tokenizer_spm runs it
 * (Phi-3/3.5): spaces become '▁', the text is split into UTF-8 characters,
 * adjacent pairs whose concatenation is a vocabulary piece merge, highest
 * piece score first (ties: leftmost), and characters that never formed a
 * piece fall back to <0xNN> byte tokens.
 *
 * Speed: llama.cpp merges the whole fragment in one heap. When the vocabulary
 * allows it (t->spm_split: no piece holds '▁' after another byte) the same
 * result comes from merging each word — a '▁' run plus what follows up to the
 * next '▁' — on its own, which keeps the heap tiny, and repeated words are
 * looked up in a per-call cache instead of merged again. */
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "tokenizer/tok_internal.h"

static int try_add(const phiq_tokenizer *t, const char *buf, const phiq_sym *sym, int32_t l, int32_t r,
                   phiq_merge_heap *h) {
    if (l < 0 || r < 0) return 0;
    uint32_t n = sym[l].n + sym[r].n;
    int32_t id = phiq_strmap_get(&t->map, buf + sym[l].off, n);
    if (id < 0) return 0;
    float score = t->scores ? t->scores[id] : 0.0f;
    phiq_merge_cand c = {-(double)score, l, r, n};
    return phiq_heap_push(h, c);
}

static inline int ids_push(phiq_wcache *c, int32_t id) {
    if (c->nids == c->icap && phiq_wcache_reserve(c, 1) < 0) return PHIQ_ENOMEM;
    c->ids[c->nids++] = id;
    return 0;
}

/* Merges symbols [a, b) (a linked list cut at both ends) and appends the
 * resulting ids to c->ids. */
static int merge_range(const phiq_tokenizer *t, const char *buf, phiq_sym *sym, int32_t a, int32_t b, phiq_merge_heap *h,
                       phiq_wcache *c) {
    int rc;
    h->n = 0;
    sym[a].prev = -1;
    sym[b - 1].next = -1;
    for (int32_t i = a + 1; i < b; i++)
        if ((rc = try_add(t, buf, sym, i - 1, i, h)) < 0) return rc;
    phiq_merge_cand cd;
    while (phiq_heap_pop(h, &cd)) {
        phiq_sym *L = &sym[cd.left], *R = &sym[cd.right];
        if (L->n == 0 || R->n == 0 || L->n + R->n != cd.size) continue;
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) sym[R->next].prev = cd.left;
        if ((rc = try_add(t, buf, sym, L->prev, cd.left, h)) < 0) return rc;
        if ((rc = try_add(t, buf, sym, cd.left, L->next, h)) < 0) return rc;
    }
    for (int32_t i = a; i >= 0 && i < b; i = sym[i].next) {
        int32_t id = phiq_strmap_get(&t->map, buf + sym[i].off, sym[i].n);
        if (id >= 0) {
            if (ids_push(c, id) < 0) return phiq_fail(PHIQ_ENOMEM, "tokenize: out of memory");
            continue;
        }
        for (uint32_t j = 0; j < sym[i].n; j++) {
            int32_t bid = t->byte_ids[(unsigned char)buf[sym[i].off + j]];
            if (bid < 0) bid = t->unk;
            if (bid >= 0 && ids_push(c, bid) < 0) return phiq_fail(PHIQ_ENOMEM, "tokenize: out of memory");
        }
    }
    return 0;
}

static inline bool is_sep(const char *buf, const phiq_sym *s) {
    return s->n == 3 && !memcmp(buf + s->off, "\xe2\x96\x81", 3);
}

int phiq_spm_encode(const phiq_tokenizer *t, const char *text, size_t len, bool prefix_space, phiq_tok_scratch *sc,
                    phiq_idbuf *out) {
    if (len > (SIZE_MAX / 4) - 8) return phiq_fail(PHIQ_EINVAL, "tokenize: text too long");
    size_t cap = (len + 1) * 3 + 1;
    char *buf = malloc(cap);
    phiq_sym *sym = NULL;
    phiq_merge_heap *h = &sc->h;
    phiq_wcache *c = &sc->c;
    int rc = 0;
    if (!buf) { rc = phiq_fail(PHIQ_ENOMEM, "tokenize: out of memory"); goto done; }
    /* llama_escape_whitespace: only ' ' becomes U+2581 */
    size_t bn = 0;
    if (prefix_space) { memcpy(buf, "\xe2\x96\x81", 3); bn = 3; }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') { memcpy(buf + bn, "\xe2\x96\x81", 3); bn += 3; }
        else buf[bn++] = text[i];
    }
    if (bn == 0) goto done;
    /* one symbol per byte at most: a lead byte before an escaped space can
     * swallow part of it, leaving more symbols than input characters */
    if (!(sym = malloc(sizeof *sym * (bn + 1)))) { rc = phiq_fail(PHIQ_ENOMEM, "tokenize: out of memory"); goto done; }
    int32_t ns = 0;
    for (size_t off = 0; off < bn;) {
        size_t n = phiq_utf8_len_lead((unsigned char)buf[off]);
        if (n > bn - off) n = bn - off;
        sym[ns].off = (uint32_t)off;
        sym[ns].n = (uint32_t)n;
        sym[ns].prev = ns - 1;
        sym[ns].next = ns + 1;
        ns++;
        off += n;
    }
    if (!t->spm_split) {
        size_t from = c->nids;
        rc = merge_range(t, buf, sym, 0, ns, h, c);
        for (size_t k = from; rc >= 0 && k < c->nids; k++) phiq_idbuf_push(out, c->ids[k]);
        c->nids = from;
        goto done;
    }
    for (int32_t a = 0; a < ns;) {
        /* word: a '▁' run, then everything up to the next '▁' */
        int32_t b = a;
        while (b < ns && is_sep(buf, &sym[b])) b++;
        while (b < ns && !is_sep(buf, &sym[b])) b++;
        const char *key = buf + sym[a].off;
        uint32_t klen = sym[b - 1].off + sym[b - 1].n - sym[a].off;
        uint32_t hash = phiq_hash_bytes(key, klen);
        const phiq_wcache_ent *e = phiq_wcache_get(c, key, klen, hash);
        if (e) {
            for (uint32_t k = 0; k < e->icount; k++) phiq_idbuf_push(out, c->ids[e->ioff + k]);
        } else {
            size_t from = c->nids;
            if ((rc = merge_range(t, buf, sym, a, b, h, c)) < 0) goto done;
            for (size_t k = from; k < c->nids; k++) phiq_idbuf_push(out, c->ids[k]);
            if ((rc = phiq_wcache_put(c, key, klen, hash, from)) < 0) goto done;
        }
        a = b;
    }
done:
    free(buf);
    free(sym);
    return rc;
}
