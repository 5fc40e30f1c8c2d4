/* value.c — the template module's memory and values: the arena every parse and
 * render allocates from, growing strings, and Python's semantics for the
 * values chat templates handle (truth, ==, ordering, str(), repr(),
 * json.dumps with transformers' arguments, json.loads of the variables). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/tmpl_internal.h"

_Noreturn void tpl_fail(tpl_err *e, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->line = line;
    longjmp(e->jb, 1);
}

/* ---- arena ------------------------------------------------------------------------- */
enum { CHUNK = 64 * 1024, BIG = 16 * 1024 };
struct achunk {
    struct achunk *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
};
struct abig {
    struct abig *prev, *next;
    size_t size;
    size_t pad; /* keeps data 16-byte aligned */
    _Alignas(16) unsigned char data[];
};

static void account(tpl_arena *a, size_t n) {
    if (a->cap && (a->used + n > a->cap || a->used + n < a->used))
        tpl_fail(a->err, 0, "the template needs more than %zu MiB of memory", a->cap >> 20);
    a->used += n;
}

void *tpl_alloc(tpl_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    account(a, n);
    if (n >= BIG) {
        struct abig *b = calloc(1, sizeof *b + n);
        if (!b) tpl_fail(a->err, 0, "out of memory");
        b->size = n;
        b->next = a->bigs;
        if (a->bigs) a->bigs->prev = b;
        a->bigs = b;
        return b->data;
    }
    struct achunk *c = a->chunks;
    if (!c || c->size - c->used < n) {
        c = malloc(sizeof *c + CHUNK);
        if (!c) tpl_fail(a->err, 0, "out of memory");
        c->used = 0;
        c->size = CHUNK;
        c->next = a->chunks;
        a->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

void *tpl_realloc(tpl_arena *a, void *p, size_t old, size_t n) {
    if (p && ((old + 15) & ~(size_t)15) >= BIG) { /* a big block: grow it where it is */
        struct abig *b = (struct abig *)((unsigned char *)p - offsetof(struct abig, data));
        n = (n + 15) & ~(size_t)15;
        if (n <= b->size) return p;
        account(a, n - b->size);
        struct abig *prev = b->prev, *next = b->next;
        struct abig *nb = realloc(b, sizeof *nb + n);
        if (!nb) tpl_fail(a->err, 0, "out of memory");
        memset(nb->data + nb->size, 0, n - nb->size);
        nb->size = n;
        if (prev) prev->next = nb;
        else a->bigs = nb;
        if (next) next->prev = nb;
        return nb->data;
    }
    void *q = tpl_alloc(a, n);
    if (p && old) memcpy(q, p, old < n ? old : n);
    return q;
}

char *tpl_strndup(tpl_arena *a, const char *s, size_t n) {
    char *p = tpl_alloc(a, n + 1);
    if (n) memcpy(p, s, n);
    return p;
}

void tpl_arena_free(tpl_arena *a) {
    for (struct achunk *c = a->chunks, *nx; c; c = nx) {
        nx = c->next;
        free(c);
    }
    for (struct abig *b = a->bigs, *nx; b; b = nx) {
        nx = b->next;
        free(b);
    }
    a->chunks = NULL;
    a->bigs = NULL;
    a->used = 0;
}

void tb_put(tpl_buf *b, const char *s, size_t n) {
    if (b->max && b->n + n > b->max) tpl_fail(b->a->err, 0, "the rendered text exceeds %zu bytes", b->max);
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc < b->n + n + 1) nc *= 2;
        b->p = tpl_realloc(b->a, b->p, b->cap, nc);
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
void tb_puts(tpl_buf *b, const char *s) { tb_put(b, s, strlen(s)); }
void tb_putc(tpl_buf *b, char c) { tb_put(b, &c, 1); }
void tb_put_utf8(tpl_buf *b, unsigned u) {
    char o[4];
    size_t k;
    if (u < 0x80) o[0] = (char)u, k = 1;
    else if (u < 0x800) o[0] = (char)(0xC0 | u >> 6), o[1] = (char)(0x80 | (u & 63)), k = 2;
    else if (u < 0x10000) o[0] = (char)(0xE0 | u >> 12), o[1] = (char)(0x80 | ((u >> 6) & 63)), o[2] = (char)(0x80 | (u & 63)), k = 3;
    else o[0] = (char)(0xF0 | u >> 18), o[1] = (char)(0x80 | ((u >> 12) & 63)), o[2] = (char)(0x80 | ((u >> 6) & 63)), o[3] = (char)(0x80 | (u & 63)), k = 4;
    tb_put(b, o, k);
}

/* ---- containers -------------------------------------------------------------------- */
tv tv_str_copy(tpl_arena *a, const char *p, size_t n) { return tv_strn(tpl_strndup(a, p, n), n); }

tv tv_new_list(tpl_arena *a, tv_type t, size_t cap) {
    tv r = {.t = (unsigned char)t};
    r.l = tpl_alloc(a, sizeof *r.l);
    if (cap) {
        r.l->v = tpl_alloc(a, cap * sizeof(tv));
        r.l->cap = cap;
    }
    return r;
}

tv tv_new_dict(tpl_arena *a, tv_type t) {
    tv r = {.t = (unsigned char)t};
    r.d = tpl_alloc(a, sizeof *r.d);
    return r;
}

void tl_push(tpl_arena *a, tlist *l, tv v) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 4;
        l->v = tpl_realloc(a, l->v, l->cap * sizeof(tv), nc * sizeof(tv));
        l->cap = nc;
    }
    l->v[l->n++] = v;
}

static bool key_eq(const tv *a, const tv *b) {
    if (a->t == V_STR && b->t == V_STR) return a->s.n == b->s.n && !memcmp(a->s.p, b->s.p, a->s.n);
    return tv_eq(a, b);
}

void td_set(tpl_arena *a, tdict *d, tv k, tv v) {
    for (size_t i = 0; i < d->n; i++)
        if (key_eq(&d->k[i], &k)) {
            d->v[i] = v;
            return;
        }
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 4;
        d->k = tpl_realloc(a, d->k, d->cap * sizeof(tv), nc * sizeof(tv));
        d->v = tpl_realloc(a, d->v, d->cap * sizeof(tv), nc * sizeof(tv));
        d->cap = nc;
    }
    d->k[d->n] = k;
    d->v[d->n++] = v;
}

bool td_get(const tdict *d, tv k, tv *out) {
    for (size_t i = 0; i < d->n; i++)
        if (key_eq(&d->k[i], &k)) {
            if (out) *out = d->v[i];
            return true;
        }
    return false;
}

bool td_get_str(const tdict *d, const char *key, tv *out) { return td_get(d, tv_strn(key, strlen(key)), out); }

/* ---- semantics --------------------------------------------------------------------- */
const char *tv_type_name(const tv *v) {
    switch (v->t) {
    case V_UNDEF: return "Undefined";
    case V_NONE: return "NoneType";
    case V_BOOL: return "bool";
    case V_INT: return "int";
    case V_FLOAT: return "float";
    case V_STR: return "str";
    case V_LIST: return "list";
    case V_TUPLE: return "tuple";
    case V_DICT: return "dict";
    case V_NS: return "Namespace";
    case V_LOOP: return "LoopContext";
    case V_FUNC: return "function";
    default: return "Macro";
    }
}

bool tv_is_num(const tv *v) { return v->t == V_BOOL || v->t == V_INT || v->t == V_FLOAT; }
double tv_num(const tv *v) { return v->t == V_FLOAT ? v->f : v->t == V_INT ? (double)v->i : v->t == V_BOOL ? v->b : 0; }

bool tv_truthy(const tv *v) {
    switch (v->t) {
    case V_UNDEF: case V_NONE: return false;
    case V_BOOL: return v->b;
    case V_INT: return v->i != 0;
    case V_FLOAT: return v->f != 0;
    case V_STR: return v->s.n != 0;
    case V_LIST: case V_TUPLE: return v->l->n != 0;
    case V_DICT: return v->d->n != 0;
    default: return true;
    }
}

bool tv_eq(const tv *a, const tv *b) {
    if (tv_is_num(a) && tv_is_num(b)) {
        if (a->t != V_FLOAT && b->t != V_FLOAT) return (a->t == V_INT ? a->i : a->b) == (b->t == V_INT ? b->i : b->b);
        return tv_num(a) == tv_num(b);
    }
    bool la = a->t == V_LIST || a->t == V_TUPLE, lb = b->t == V_LIST || b->t == V_TUPLE;
    if (la && lb) {
        if (a->t != b->t || a->l->n != b->l->n) return false; /* [1] != (1,) in Python */
        for (size_t i = 0; i < a->l->n; i++)
            if (!tv_eq(&a->l->v[i], &b->l->v[i])) return false;
        return true;
    }
    if (a->t != b->t) return false;
    switch (a->t) {
    case V_UNDEF: case V_NONE: return true;
    case V_STR: return a->s.n == b->s.n && !memcmp(a->s.p, b->s.p, a->s.n);
    case V_DICT:
        if (a->d->n != b->d->n) return false;
        for (size_t i = 0; i < a->d->n; i++) {
            tv w;
            if (!td_get(b->d, a->d->k[i], &w) || !tv_eq(&a->d->v[i], &w)) return false;
        }
        return true;
    case V_NS: return a->d == b->d;
    case V_LOOP: return a->loop == b->loop;
    case V_FUNC: return a->fn == b->fn;
    case V_MACRO: return a->macro == b->macro;
    default: return false;
    }
}

int tv_cmp(tpl_err *e, int line, const tv *a, const tv *b) {
    if (tv_is_num(a) && tv_is_num(b)) {
        if (a->t != V_FLOAT && b->t != V_FLOAT) {
            int64_t x = a->t == V_INT ? a->i : a->b, y = b->t == V_INT ? b->i : b->b;
            return (x > y) - (x < y);
        }
        double x = tv_num(a), y = tv_num(b);
        return (x > y) - (x < y); /* NaN compares as equal here; Python says False both ways */
    }
    if (a->t == V_STR && b->t == V_STR) { /* UTF-8 byte order is code point order */
        size_t n = a->s.n < b->s.n ? a->s.n : b->s.n;
        int c = n ? memcmp(a->s.p, b->s.p, n) : 0;
        if (c) return c;
        return (a->s.n > b->s.n) - (a->s.n < b->s.n);
    }
    if ((a->t == V_LIST || a->t == V_TUPLE) && a->t == b->t) {
        for (size_t i = 0; i < a->l->n && i < b->l->n; i++)
            if (!tv_eq(&a->l->v[i], &b->l->v[i])) return tv_cmp(e, line, &a->l->v[i], &b->l->v[i]);
        return (a->l->n > b->l->n) - (a->l->n < b->l->n);
    }
    tpl_fail(e, line, "'<' not supported between instances of '%s' and '%s'", tv_type_name(a), tv_type_name(b));
}

/* ---- text -------------------------------------------------------------------------- */
size_t u8_len(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

size_t u8_offset(const char *s, size_t n, size_t i) {
    size_t k = 0, b = 0;
    for (; b < n; b++)
        if (((unsigned char)s[b] & 0xC0) != 0x80 && k++ == i) return b;
    return n;
}

void tv_write_float(tpl_buf *b, double f) {
    char buf[40];
    if (isnan(f)) { tb_puts(b, "nan"); return; }
    if (isinf(f)) { tb_puts(b, f < 0 ? "-inf" : "inf"); return; }
    /* shortest digits that read back as f (float.__repr__'s 'r' mode) */
    int prec = 1;
    for (; prec < 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, f);
        if (strtod(buf, NULL) == f) break;
    }
    snprintf(buf, sizeof buf, "%.*e", prec - 1, f);
    char digits[24];
    int nd = 0;
    const char *p = buf;
    bool neg = *p == '-';
    if (neg) p++;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') digits[nd++] = *p;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    if (neg) tb_putc(b, '-');
    if (exp < -4 || exp >= 16) {
        tb_putc(b, digits[0]);
        if (nd > 1) {
            tb_putc(b, '.');
            tb_put(b, digits + 1, (size_t)nd - 1);
        }
        snprintf(buf, sizeof buf, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        tb_puts(b, buf);
    } else if (exp < 0) {
        tb_puts(b, "0.");
        for (int i = -1; i > exp; i--) tb_putc(b, '0');
        tb_put(b, digits, (size_t)nd);
    } else {
        for (int i = 0; i <= exp; i++) tb_putc(b, i < nd ? digits[i] : '0');
        tb_putc(b, '.');
        if (nd > exp + 1) tb_put(b, digits + exp + 1, (size_t)(nd - exp - 1));
        else tb_putc(b, '0');
    }
}

static void write_int(tpl_buf *b, int64_t i) {
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)i);
    tb_puts(b, buf);
}

void tv_write_repr(tpl_buf *b, const tv *v) {
    if (v->t != V_STR) {
        tv_write_str(b, v);
        return;
    }
    bool sq = memchr(v->s.p, '\'', v->s.n) != NULL, dq = memchr(v->s.p, '"', v->s.n) != NULL;
    char q = sq && !dq ? '"' : '\'';
    tb_putc(b, q);
    for (size_t i = 0; i < v->s.n; i++) {
        unsigned char c = (unsigned char)v->s.p[i];
        char esc[8];
        if (c == (unsigned char)q || c == '\\') {
            tb_putc(b, '\\');
            tb_putc(b, (char)c);
        } else if (c == '\n') tb_puts(b, "\\n");
        else if (c == '\r') tb_puts(b, "\\r");
        else if (c == '\t') tb_puts(b, "\\t");
        else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            tb_puts(b, esc);
        } else tb_putc(b, (char)c);
    }
    tb_putc(b, q);
}

void tv_write_str(tpl_buf *b, const tv *v) {
    switch (v->t) {
    case V_UNDEF: return;
    case V_NONE: tb_puts(b, "None"); return;
    case V_BOOL: tb_puts(b, v->b ? "True" : "False"); return;
    case V_INT: write_int(b, v->i); return;
    case V_FLOAT: tv_write_float(b, v->f); return;
    case V_STR: tb_put(b, v->s.p, v->s.n); return;
    case V_LIST: case V_TUPLE:
        tb_putc(b, v->t == V_LIST ? '[' : '(');
        for (size_t i = 0; i < v->l->n; i++) {
            if (i) tb_puts(b, ", ");
            tv_write_repr(b, &v->l->v[i]);
        }
        if (v->t == V_TUPLE && v->l->n == 1) tb_putc(b, ',');
        tb_putc(b, v->t == V_LIST ? ']' : ')');
        return;
    case V_DICT: case V_NS: /* a namespace prints as <Namespace {...}> */
        tb_puts(b, v->t == V_NS ? "<Namespace {" : "{");
        for (size_t i = 0; i < v->d->n; i++) {
            if (i) tb_puts(b, ", ");
            tv_write_repr(b, &v->d->k[i]);
            tb_puts(b, ": ");
            tv_write_repr(b, &v->d->v[i]);
        }
        tb_puts(b, v->t == V_NS ? "}>" : "}");
        return;
    default: tb_puts(b, "<object>"); return;
    }
}

tv tv_to_str(tpl_arena *a, const tv *v) {
    if (v->t == V_STR) return *v;
    tpl_buf b = {.a = a};
    tv_write_str(&b, v);
    return tv_strn(b.p ? b.p : "", b.n);
}

/* json.dumps's string escaping with ensure_ascii=False: only '"', '\\' and the
 * C0 controls are escaped. */
static void json_str(tpl_buf *b, const char *s, size_t n) {
    tb_putc(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        tb_put(b, s + run, i - run);
        run = i + 1;
        char esc[8];
        switch (c) {
        case '"': tb_puts(b, "\\\""); break;
        case '\\': tb_puts(b, "\\\\"); break;
        case '\n': tb_puts(b, "\\n"); break;
        case '\r': tb_puts(b, "\\r"); break;
        case '\t': tb_puts(b, "\\t"); break;
        case '\b': tb_puts(b, "\\b"); break;
        case '\f': tb_puts(b, "\\f"); break;
        default: snprintf(esc, sizeof esc, "\\u%04x", c); tb_puts(b, esc);
        }
    }
    tb_put(b, s + run, n - run);
    tb_putc(b, '"');
}

static void json_nl(tpl_buf *b, int indent, int level) {
    tb_putc(b, '\n');
    for (int i = 0; i < indent * level; i++) tb_putc(b, ' ');
}

static int key_order(const void *x, const void *y) {
    const tv *a = *(const tv *const *)x, *b = *(const tv *const *)y;
    size_t n = a->s.n < b->s.n ? a->s.n : b->s.n;
    int c = n ? memcmp(a->s.p, b->s.p, n) : 0;
    return c ? c : (a->s.n > b->s.n) - (a->s.n < b->s.n);
}

void tv_write_json(tpl_err *e, int line, tpl_buf *b, const tv *v, int indent, bool sort_keys, int depth) {
    if (depth > 200) tpl_fail(e, line, "tojson: nesting deeper than 200");
    switch (v->t) {
    case V_NONE: tb_puts(b, "null"); return;
    case V_BOOL: tb_puts(b, v->b ? "true" : "false"); return;
    case V_INT: write_int(b, v->i); return;
    case V_FLOAT:
        if (isnan(v->f)) tb_puts(b, "NaN");
        else if (isinf(v->f)) tb_puts(b, v->f < 0 ? "-Infinity" : "Infinity");
        else tv_write_float(b, v->f);
        return;
    case V_STR: json_str(b, v->s.p, v->s.n); return;
    case V_LIST: case V_TUPLE:
        if (!v->l->n) { tb_puts(b, "[]"); return; }
        tb_putc(b, '[');
        for (size_t i = 0; i < v->l->n; i++) {
            if (i) tb_puts(b, indent >= 0 ? "," : ", ");
            if (indent >= 0) json_nl(b, indent, depth + 1);
            tv_write_json(e, line, b, &v->l->v[i], indent, sort_keys, depth + 1);
        }
        if (indent >= 0) json_nl(b, indent, depth);
        tb_putc(b, ']');
        return;
    case V_DICT: {
        if (!v->d->n) { tb_puts(b, "{}"); return; }
        size_t n = v->d->n;
        const tv **keys = tpl_alloc(b->a, n * sizeof *keys);
        for (size_t i = 0; i < n; i++) {
            keys[i] = &v->d->k[i];
            if (keys[i]->t != V_STR) /* json.dumps writes int/float/bool/None keys as strings */
                if (!tv_is_num(keys[i]) && keys[i]->t != V_NONE)
                    tpl_fail(e, line, "tojson: keys must be str, int, float, bool or None, not %s", tv_type_name(keys[i]));
        }
        if (sort_keys) {
            for (size_t i = 0; i < n; i++)
                if (keys[i]->t != V_STR) tpl_fail(e, line, "tojson: sort_keys needs string keys");
            qsort(keys, n, sizeof *keys, key_order);
        }
        tb_putc(b, '{');
        for (size_t i = 0; i < n; i++) {
            if (i) tb_puts(b, indent >= 0 ? "," : ", ");
            if (indent >= 0) json_nl(b, indent, depth + 1);
            const tv *k = keys[i];
            if (k->t == V_STR) json_str(b, k->s.p, k->s.n);
            else {
                tb_putc(b, '"');
                if (k->t == V_NONE) tb_puts(b, "null");
                else if (k->t == V_BOOL) tb_puts(b, k->b ? "true" : "false");
                else tv_write_json(e, line, b, k, -1, false, depth + 1);
                tb_putc(b, '"');
            }
            tb_puts(b, ": ");
            tv_write_json(e, line, b, &v->d->v[k - v->d->k], indent, sort_keys, depth + 1);
        }
        if (indent >= 0) json_nl(b, indent, depth);
        tb_putc(b, '}');
        return;
    }
    default:
        tpl_fail(e, line, "tojson: Object of type %s is not JSON serializable", tv_type_name(v));
    }
}

/* ---- JSON input -------------------------------------------------------------------- */
typedef struct jp {
    tpl_arena *a;
    const char *s, *end, *start;
    int depth;
} jp;

static _Noreturn void jfail(jp *p, const char *what) {
    tpl_fail(p->a->err, 0, "variables: bad JSON at byte %zu: %s", (size_t)(p->s - p->start), what);
}

static void jws(jp *p) {
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')) p->s++;
}

static unsigned hex4(jp *p) {
    if (p->end - p->s < 4) jfail(p, "short \\u escape");
    unsigned u = 0;
    for (int i = 0; i < 4; i++) {
        char c = *p->s++;
        u <<= 4;
        if (c >= '0' && c <= '9') u |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') u |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') u |= (unsigned)(c - 'A' + 10);
        else jfail(p, "bad \\u escape");
    }
    return u;
}

static tv jstring(jp *p) {
    p->s++; /* opening quote */
    tpl_buf b = {.a = p->a};
    tb_put(&b, "", 0);
    for (;;) {
        if (p->s >= p->end) jfail(p, "unterminated string");
        const char *q = p->s;
        while (q < p->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20) q++;
        tb_put(&b, p->s, (size_t)(q - p->s));
        p->s = q;
        if (q >= p->end) jfail(p, "unterminated string");
        if (*q == '"') { p->s++; break; }
        if ((unsigned char)*q < 0x20) jfail(p, "control character in string");
        p->s++;
        if (p->s >= p->end) jfail(p, "unterminated escape");
        char c = *p->s++;
        switch (c) {
        case '"': tb_putc(&b, '"'); break;
        case '\\': tb_putc(&b, '\\'); break;
        case '/': tb_putc(&b, '/'); break;
        case 'b': tb_putc(&b, '\b'); break;
        case 'f': tb_putc(&b, '\f'); break;
        case 'n': tb_putc(&b, '\n'); break;
        case 'r': tb_putc(&b, '\r'); break;
        case 't': tb_putc(&b, '\t'); break;
        case 'u': {
            unsigned u = hex4(p);
            if (u >= 0xD800 && u < 0xDC00 && p->end - p->s >= 6 && p->s[0] == '\\' && p->s[1] == 'u') {
                const char *save = p->s;
                p->s += 2;
                unsigned lo = hex4(p);
                if (lo >= 0xDC00 && lo < 0xE000) u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                else p->s = save;
            }
            /* a lone surrogate cannot be UTF-8: write U+FFFD (Python would keep it
             * and fail later when encoding the prompt) */
            if (u >= 0xD800 && u < 0xE000) u = 0xFFFD;
            tb_put_utf8(&b, u);
            break;
        }
        default: jfail(p, "bad escape");
        }
    }
    return tv_strn(b.p, b.n);
}

static tv jvalue(jp *p) {
    jws(p);
    if (p->s >= p->end) jfail(p, "unexpected end");
    if (++p->depth > 500) jfail(p, "nested deeper than 500");
    tv r;
    char c = *p->s;
    if (c == '{') {
        r = tv_new_dict(p->a, V_DICT);
        p->s++;
        jws(p);
        if (p->s < p->end && *p->s == '}') p->s++;
        else
            for (;;) {
                jws(p);
                if (p->s >= p->end || *p->s != '"') jfail(p, "expected a string key");
                tv k = jstring(p);
                jws(p);
                if (p->s >= p->end || *p->s != ':') jfail(p, "expected ':'");
                p->s++;
                tv v = jvalue(p);
                td_set(p->a, r.d, k, v);
                jws(p);
                if (p->s < p->end && *p->s == ',') { p->s++; continue; }
                if (p->s < p->end && *p->s == '}') { p->s++; break; }
                jfail(p, "expected ',' or '}'");
            }
    } else if (c == '[') {
        r = tv_new_list(p->a, V_LIST, 0);
        p->s++;
        jws(p);
        if (p->s < p->end && *p->s == ']') p->s++;
        else
            for (;;) {
                tl_push(p->a, r.l, jvalue(p));
                jws(p);
                if (p->s < p->end && *p->s == ',') { p->s++; continue; }
                if (p->s < p->end && *p->s == ']') { p->s++; break; }
                jfail(p, "expected ',' or ']'");
            }
    } else if (c == '"') {
        r = jstring(p);
    } else if (p->end - p->s >= 4 && !memcmp(p->s, "null", 4)) {
        p->s += 4;
        r = tv_none();
    } else if (p->end - p->s >= 4 && !memcmp(p->s, "true", 4)) {
        p->s += 4;
        r = tv_bool(true);
    } else if (p->end - p->s >= 5 && !memcmp(p->s, "false", 5)) {
        p->s += 5;
        r = tv_bool(false);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        const char *q = p->s;
        bool isf = false;
        if (*q == '-') q++;
        if (q >= p->end || *q < '0' || *q > '9') jfail(p, "bad number");
        while (q < p->end && ((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' || *q == '+' || *q == '-')) {
            if (*q == '.' || *q == 'e' || *q == 'E') isf = true;
            q++;
        }
        char buf[64];
        size_t n = (size_t)(q - p->s);
        if (n >= sizeof buf) jfail(p, "number too long");
        memcpy(buf, p->s, n);
        buf[n] = 0;
        char *endp;
        errno = 0;
        if (!isf) {
            long long v = strtoll(buf, &endp, 10);
            if (*endp) jfail(p, "bad number");
            r = errno == ERANGE ? tv_float(strtod(buf, NULL)) : tv_int(v);
        } else {
            double f = strtod(buf, &endp);
            if (*endp) jfail(p, "bad number");
            r = tv_float(f);
        }
        p->s = q;
    } else {
        jfail(p, "unexpected character");
    }
    p->depth--;
    return r;
}

tv tv_from_json(tpl_arena *a, const char *s, size_t n) {
    jp p = {a, s, s + n, s, 0};
    tv v = jvalue(&p);
    jws(&p);
    if (p.s != p.end) jfail(&p, "trailing characters");
    return v;
}
