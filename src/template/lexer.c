/* lexer.c — splits a template into text and tag tokens the way jinja2's lexer
 * does with transformers' settings: newlines normalised to \n and one
 * trailing newline dropped (keep_trailing_newline=False); `{%-`/`-%}` (and the
 * same on `{{ }}` and `{# #}`) strip all whitespace on that side; trim_blocks
 * drops the first newline after a block or comment tag; lstrip_blocks strips
 * the spaces and tabs before a block or comment tag that starts its line
 * (`{%+` keeps them). Inside tags, the expression tokens. */
#include <stdlib.h>
#include <string.h>

#include "template/tmpl_internal.h"

typedef struct lexer {
    tpl_arena *a;
    const char *s;
    size_t n, pos;
    int line;
    token *t;
    size_t nt, cap;
} lexer;

static token *emit(lexer *L, int type) {
    if (L->nt == L->cap) {
        size_t nc = L->cap ? L->cap * 2 : 256;
        L->t = tpl_realloc(L->a, L->t, L->cap * sizeof(token), nc * sizeof(token));
        L->cap = nc;
    }
    token *t = &L->t[L->nt++];
    memset(t, 0, sizeof *t);
    t->type = (unsigned char)type;
    t->line = L->line;
    return t;
}

/* Python's str.isspace for the ASCII range (what rstrip and \s remove). */
static bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }

static void count_lines(lexer *L, size_t from, size_t to) {
    for (size_t i = from; i < to; i++) L->line += L->s[i] == '\n';
}

/* \-escapes as jinja2 reads string literals (Python's unicode-escape). */
static void unescape(lexer *L, tpl_buf *b, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\\' || i + 1 >= n) {
            tb_putc(b, p[i]);
            continue;
        }
        char c = p[++i];
        unsigned u = 0;
        int digits = 0;
        switch (c) {
        case '\n': break;
        case '\\': tb_putc(b, '\\'); break;
        case '\'': tb_putc(b, '\''); break;
        case '"': tb_putc(b, '"'); break;
        case 'a': tb_putc(b, '\a'); break;
        case 'b': tb_putc(b, '\b'); break;
        case 'f': tb_putc(b, '\f'); break;
        case 'n': tb_putc(b, '\n'); break;
        case 'r': tb_putc(b, '\r'); break;
        case 't': tb_putc(b, '\t'); break;
        case 'v': tb_putc(b, '\v'); break;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default:
            if (c >= '0' && c <= '7') {
                int k = 0;
                while (k < 3 && i < n && p[i] >= '0' && p[i] <= '7') u = u * 8 + (unsigned)(p[i++] - '0'), k++;
                i--;
                digits = -1;
            } else {
                tb_putc(b, '\\');
                tb_putc(b, c);
            }
        }
        if (digits > 0) {
            for (int k = 0; k < digits; k++) {
                char h = i + 1 < n ? p[++i] : 0;
                int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                if (v < 0) tpl_fail(L->a->err, L->line, "truncated \\%c escape in a string literal", c);
                u = u * 16 + (unsigned)v;
            }
        }
        if (digits) {
            if (u > 0x10FFFF || (u >= 0xD800 && u < 0xE000)) tpl_fail(L->a->err, L->line, "bad \\%c escape in a string literal", c);
            tb_put_utf8(b, u);
        }
    }
}

/* Expression tokens from L->pos up to the closing delimiter ("}}" or "%}",
 * optionally "-}}"/"-%}"); returns the strip sign of the close ('-' or 0). */
static int lex_tag(lexer *L, char close) {
    int depth = 0;
    const char *s = L->s;
    for (;;) {
        while (L->pos < L->n && is_space(s[L->pos])) {
            if (s[L->pos] == '\n') L->line++;
            L->pos++;
        }
        if (L->pos >= L->n) tpl_fail(L->a->err, L->line, "unexpected end of template: a %s tag is not closed", close == '}' ? "{{" : "{%");
        size_t p = L->pos;
        char c = s[p];
        if (!depth) {
            if (c == '-' && p + 2 < L->n && s[p + 1] == close && s[p + 2] == '}') {
                L->pos = p + 3;
                return '-';
            }
            if (c == close && p + 1 < L->n && s[p + 1] == '}') {
                L->pos = p + 2;
                return 0;
            }
        }
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (unsigned char)c >= 0x80) {
            size_t q = p; /* bytes >= 0x80: jinja2 takes Unicode identifiers */
            while (q < L->n && ((s[q] >= 'a' && s[q] <= 'z') || (s[q] >= 'A' && s[q] <= 'Z') || (s[q] >= '0' && s[q] <= '9') ||
                                s[q] == '_' || (unsigned char)s[q] >= 0x80))
                q++;
            token *t = emit(L, T_NAME);
            t->s = tpl_strndup(L->a, s + p, q - p);
            t->n = q - p;
            L->pos = q;
        } else if (c >= '0' && c <= '9') {
            bool after_dot = L->nt && L->t[L->nt - 1].type == T_OP && L->t[L->nt - 1].op == OP_DOT;
            size_t q = p;
            char num[80];
            size_t k = 0;
            bool isf = false;
            while (q < L->n && ((s[q] >= '0' && s[q] <= '9') || s[q] == '_')) {
                if (s[q] != '_' && k < sizeof num - 1) num[k++] = s[q];
                q++;
            }
            if (!after_dot && q + 1 < L->n && s[q] == '.' && s[q + 1] >= '0' && s[q + 1] <= '9') {
                isf = true;
                if (k < sizeof num - 1) num[k++] = s[q];
                q++;
                while (q < L->n && ((s[q] >= '0' && s[q] <= '9') || s[q] == '_')) {
                    if (s[q] != '_' && k < sizeof num - 1) num[k++] = s[q];
                    q++;
                }
            }
            if (!after_dot && q < L->n && (s[q] == 'e' || s[q] == 'E')) {
                size_t r = q + 1;
                if (r < L->n && (s[r] == '+' || s[r] == '-')) r++;
                if (r < L->n && s[r] >= '0' && s[r] <= '9') {
                    isf = true;
                    for (; q < r; q++)
                        if (k < sizeof num - 1) num[k++] = s[q];
                    while (q < L->n && s[q] >= '0' && s[q] <= '9') {
                        if (k < sizeof num - 1) num[k++] = s[q];
                        q++;
                    }
                }
            }
            num[k] = 0;
            if (k == sizeof num - 1) /* the buffer filled: the literal would be read truncated */
                tpl_fail(L->a->err, L->line, "number literal %.20s... is too long", num);
            token *t = emit(L, isf ? T_FLOAT : T_INT);
            if (isf) t->f = strtod(num, NULL);
            else {
                char *end;
                unsigned long long v = strtoull(num, &end, 10);
                if (k > 18 || v > (unsigned long long)INT64_MAX) tpl_fail(L->a->err, L->line, "integer literal %s is too large", num);
                t->i = (int64_t)v;
            }
            L->pos = q;
        } else if (c == '\'' || c == '"') {
            size_t q = p + 1;
            while (q < L->n && s[q] != c) {
                if (s[q] == '\\' && q + 1 < L->n) q++;
                q++;
            }
            if (q >= L->n) tpl_fail(L->a->err, L->line, "unterminated string literal");
            token *t = emit(L, T_STRING);
            tpl_buf b = {.a = L->a};
            tb_put(&b, "", 0);
            unescape(L, &b, s + p + 1, q - p - 1);
            t->s = b.p;
            t->n = b.n;
            count_lines(L, p, q);
            L->pos = q + 1;
        } else {
            static const struct { const char *s; int op; } two[] = {
                {"//", OP_FLOORDIV}, {"**", OP_POW}, {"==", OP_EQ}, {"!=", OP_NE}, {"<=", OP_LE}, {">=", OP_GE}};
            int op = 0;
            size_t len = 1;
            for (size_t k = 0; k < sizeof two / sizeof two[0]; k++)
                if (p + 1 < L->n && s[p] == two[k].s[0] && s[p + 1] == two[k].s[1]) op = two[k].op, len = 2;
            if (!op) {
                if (!strchr("+-*/%~<>=()[]{},.:|", c) || !c) {
                    if ((unsigned char)c < 0x21 || (unsigned char)c > 0x7e)
                        tpl_fail(L->a->err, L->line, "unexpected byte 0x%02x in a tag", (unsigned char)c);
                    tpl_fail(L->a->err, L->line, "unexpected character '%c' in a tag", c);
                }
                op = c;
                if (c == '(' || c == '[' || c == '{') depth++;
                if ((c == ')' || c == ']' || c == '}') && depth > 0) depth--;
            }
            token *t = emit(L, T_OP);
            t->op = op;
            L->pos = p + len;
        }
    }
}

token *tpl_lex(tpl_arena *a, const char *src, size_t len, size_t *ntok) {
    /* newlines normalised to \n; one trailing newline dropped */
    char *s = tpl_alloc(a, len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else s[n++] = src[i];
    }
    if (n && s[n - 1] == '\n') n--;
    s[n] = 0;
    lexer L = {.a = a, .s = s, .n = n, .line = 1};
    bool line_starting = true;
    while (L.pos < n) {
        size_t i = L.pos;
        char kind = 0;
        for (; i + 1 < n; i++)
            if (s[i] == '{' && (s[i + 1] == '{' || s[i + 1] == '%' || s[i + 1] == '#')) {
                kind = s[i + 1];
                break;
            }
        if (!kind) i = n;
        size_t text_end = i;
        char sign = kind && i + 2 < n && (s[i + 2] == '-' || s[i + 2] == '+') ? s[i + 2] : 0;
        if (kind && sign == '-') {
            while (text_end > L.pos && is_space(s[text_end - 1])) text_end--;
        } else if (kind && sign != '+' && kind != '{') { /* lstrip_blocks */
            size_t l = text_end;
            while (l > L.pos && s[l - 1] != '\n') l--;
            bool at_line = l > L.pos || line_starting;
            bool blank = true;
            for (size_t k = l; k < text_end; k++)
                if (!is_space(s[k])) blank = false;
            if (at_line && blank) text_end = l;
        }
        if (text_end > L.pos) {
            token *t = emit(&L, T_DATA);
            t->s = s + L.pos;
            t->n = text_end - L.pos;
        }
        count_lines(&L, L.pos, i);
        if (!kind) {
            L.pos = n;
            break;
        }
        size_t body = i + 2 + (sign ? 1 : 0);
        int close_sign;
        if (kind == '#') {
            const char *e = NULL;
            for (size_t k = body; k + 1 < n; k++)
                if (s[k] == '#' && s[k + 1] == '}') { e = s + k; break; }
            if (!e) tpl_fail(a->err, L.line, "unexpected end of template: a comment is not closed");
            size_t k = (size_t)(e - s);
            close_sign = k > body && s[k - 1] == '-' ? '-' : 0;
            count_lines(&L, i, k + 2);
            L.pos = k + 2;
        } else {
            emit(&L, kind == '{' ? T_VAR_BEGIN : T_BLOCK_BEGIN);
            L.pos = body;
            close_sign = lex_tag(&L, kind == '{' ? '}' : '%');
            emit(&L, kind == '{' ? T_VAR_END : T_BLOCK_END);
        }
        if (close_sign == '-') {
            while (L.pos < n && is_space(s[L.pos])) {
                if (s[L.pos] == '\n') L.line++;
                L.pos++;
            }
        } else if (kind != '{' && L.pos < n && s[L.pos] == '\n') { /* trim_blocks */
            L.pos++;
            L.line++;
        }
        line_starting = L.pos > 0 && s[L.pos - 1] == '\n';
    }
    emit(&L, T_EOF);
    *ntok = L.nt;
    return L.t;
}
