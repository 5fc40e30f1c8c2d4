/* spm.c — SentencePiece-style BPE as llama.cpp's llm_tokenizer_spm runs it
 * (Phi-3/3.5): spaces become '▁', the text is split into UTF-8 characters,
 * adjacent pairs whose concatenation is a vocabulary piece merge, highest
 * piece score first (ties: leftmost), and characters that never formed a
 * piece fall back to <0xNN> byte tokens. */
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

int phiq_spm_encode(const phiq_tokenizer *t, const char *text, size_t len, bool prefix_space, phiq_idbuf *out) {
    if (len > (SIZE_MAX / 4) - 8) return phiq_fail(PHIQ_EINVAL, "tokenize: text too long");
    size_t cap = (len + 1) * 3 + 1;
    char *buf = malloc(cap);
    phiq_sym *sym = NULL;
    phiq_merge_heap h = {0};
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
        sym[ns].next = -1;
        if (ns > 0) sym[ns - 1].next = ns;
        ns++;
        off += n;
    }
    for (int32_t i = 1; i < ns; i++)
        if ((rc = try_add(t, buf, sym, i - 1, i, &h)) < 0) goto done;
    phiq_merge_cand c;
    while (phiq_heap_pop(&h, &c)) {
        phiq_sym *L = &sym[c.left], *R = &sym[c.right];
        if (L->n == 0 || R->n == 0 || L->n + R->n != c.size) continue;
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) sym[R->next].prev = c.left;
        if ((rc = try_add(t, buf, sym, L->prev, c.left, &h)) < 0) goto done;
        if ((rc = try_add(t, buf, sym, c.left, L->next, &h)) < 0) goto done;
    }
    for (int32_t i = 0; i >= 0 && i < ns; i = sym[i].next) {
        int32_t id = phiq_strmap_get(&t->map, buf + sym[i].off, sym[i].n);
        if (id >= 0) {
            phiq_idbuf_push(out, id);
            continue;
        }
        for (uint32_t j = 0; j < sym[i].n; j++) {
            int32_t b = t->byte_ids[(unsigned char)buf[sym[i].off + j]];
            if (b >= 0) phiq_idbuf_push(out, b);
            else if (t->unk >= 0) phiq_idbuf_push(out, t->unk);
        }
    }
done:
    free(buf);
    free(sym);
    free(h.v);
    return rc;
}
