/* filters.c — jinja2's built-in filters and tests that chat templates use,
 * transformers' tojson, and the str/dict/list methods a sandboxed template
 * may call (the immutable sandbox refuses the mutating ones, as jinja2's
 * ImmutableSandboxedEnvironment does). Each behaves as the Python original
 * (jinja2/filters.py, jinja2/tests.py, Python's str methods); letter case
 * is mapped for ASCII, Latin-1, Greek and Cyrillic. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/tmpl_internal.h"

#define FAIL(line, ...) tpl_fail(&r->err, line, __VA_ARGS__)

enum {
    FI_ABS, FI_ATTR, FI_CAPITALIZE, FI_COUNT, FI_D, FI_DEFAULT, FI_DICTSORT, FI_E, FI_ESCAPE, FI_FIRST, FI_FLOAT,
    FI_FORCEESCAPE, FI_INDENT, FI_INT, FI_ITEMS, FI_JOIN, FI_LAST, FI_LENGTH, FI_LIST, FI_LOWER, FI_MAP, FI_MAX,
    FI_MIN, FI_REJECT, FI_REJECTATTR, FI_REPLACE, FI_REVERSE, FI_ROUND, FI_SAFE, FI_SELECT, FI_SELECTATTR, FI_SORT,
    FI_STRING, FI_SUM, FI_TITLE, FI_TOJSON, FI_TRIM, FI_UNIQUE, FI_UPPER, FI_WORDCOUNT, FI_N
};
static const char *const FILTERS[FI_N] = {
    "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float",
    "forceescape", "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max",
    "min", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort",
    "string", "sum", "title", "tojson", "trim", "unique", "upper", "wordcount"};

enum {
    TE_DEFINED, TE_UNDEFINED, TE_NONE, TE_BOOLEAN, TE_TRUE, TE_FALSE, TE_INTEGER, TE_FLOAT, TE_NUMBER, TE_STRING,
    TE_MAPPING, TE_ITERABLE, TE_SEQUENCE, TE_CALLABLE, TE_SAMEAS, TE_EQ, TE_EQUALTO, TE_NE, TE_LT, TE_LESSTHAN,
    TE_LE, TE_GT, TE_GREATERTHAN, TE_GE, TE_IN, TE_ODD, TE_EVEN, TE_DIVISIBLEBY, TE_LOWER, TE_UPPER, TE_N
};
static const char *const TESTS[TE_N] = {
    "defined", "undefined", "none", "boolean", "true", "false", "integer", "float", "number", "string",
    "mapping", "iterable", "sequence", "callable", "sameas", "eq", "equalto", "ne", "lt", "lessthan",
    "le", "gt", "greaterthan", "ge", "in", "odd", "even", "divisibleby", "lower", "upper"};

int tpl_filter_id(const char *name) {
    for (int i = 0; i < FI_N; i++)
        if (!strcmp(name, FILTERS[i])) return i;
    return -1;
}
int tpl_test_id(const char *name) {
    for (int i = 0; i < TE_N; i++)
        if (!strcmp(name, TESTS[i])) return i;
    return -1;
}

/* ---- text helpers ------------------------------------------------------------------ */
/* Decodes one UTF-8 code point at s[*i] (invalid bytes pass as themselves). */
static unsigned u8_next(const char *s, size_t n, size_t *i) {
    unsigned char c = (unsigned char)s[*i];
    int k = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
    if (*i + (size_t)k >= n) k = 0;
    unsigned u = k ? c & (0x3F >> k) : c;
    for (int j = 1; j <= k; j++) u = u << 6 | ((unsigned char)s[*i + (size_t)j] & 0x3F);
    *i += (size_t)k + 1;
    return u;
}
static bool u_isupper(unsigned u) {
    return (u >= 'A' && u <= 'Z') || (u >= 0xC0 && u <= 0xDE && u != 0xD7) || (u >= 0x391 && u <= 0x3A9 && u != 0x3A2) ||
           (u >= 0x400 && u <= 0x42F);
}
static bool u_islower(unsigned u) {
    return (u >= 'a' && u <= 'z') || (u >= 0xDF && u <= 0xFF && u != 0xF7) || (u >= 0x3B1 && u <= 0x3C9) || (u >= 0x430 && u <= 0x45F);
}
static unsigned u_lower(unsigned u) {
    if ((u >= 'A' && u <= 'Z') || (u >= 0xC0 && u <= 0xDE && u != 0xD7) || (u >= 0x391 && u <= 0x3A9 && u != 0x3A2) || (u >= 0x410 && u <= 0x42F)) return u + 32;
    if (u >= 0x400 && u <= 0x40F) return u + 80;
    return u;
}
static unsigned u_upper(unsigned u) {
    if ((u >= 'a' && u <= 'z') || (u >= 0xE0 && u <= 0xFE && u != 0xF7) || (u >= 0x3B1 && u <= 0x3C9 && u != 0x3C2) || (u >= 0x430 && u <= 0x44F)) return u - 32;
    if (u == 0x3C2) return 0x3A3;
    if (u >= 0x450 && u <= 0x45F) return u - 80;
    return u;
}
static bool u_isspace(unsigned u) {
    return (u >= 9 && u <= 13) || (u >= 0x1C && u <= 0x20) || u == 0x85 || u == 0xA0 || u == 0x1680 || (u >= 0x2000 && u <= 0x200A) ||
           u == 0x2028 || u == 0x2029 || u == 0x202F || u == 0x205F || u == 0x3000;
}

enum { CASE_LOWER, CASE_UPPER, CASE_TITLE, CASE_CAPITALIZE };
static tv change_case(tpl_render *r, tv s, int mode) {
    tpl_buf b = {.a = &r->a};
    tb_put(&b, "", 0);
    bool prev_cased = false, first = true;
    for (size_t i = 0; i < s.s.n;) {
        unsigned u = u8_next(s.s.p, s.s.n, &i), o = u;
        bool cased = u_isupper(u) || u_islower(u);
        if (mode == CASE_LOWER) o = u_lower(u);
        else if (mode == CASE_UPPER) o = u_upper(u);
        else if (mode == CASE_TITLE) o = prev_cased ? u_lower(u) : u_upper(u);
        else o = first ? u_upper(u) : u_lower(u);
        prev_cased = cased;
        first = false;
        tb_put_utf8(&b, o);
    }
    return tv_strn(b.p, b.n);
}

static tv str_of(tpl_render *r, tv v) { return tv_to_str(&r->a, &v); }

static tv need_str(tpl_render *r, int line, const tv *v, const char *what) {
    if (!v || v->t != V_STR) FAIL(line, "%s must be a string, not %s", what, v ? tv_type_name(v) : "nothing");
    return *v;
}

/* str.strip family: chars NULL = whitespace. which: 1 left, 2 right, 3 both. */
static tv strip(tv s, const tv *chars, int which) {
    size_t a = 0, b = s.s.n;
    for (int side = 0; side < 2; side++) {
        if (!(which & (1 << side))) continue;
        for (;;) {
            if (a >= b) break;
            size_t at, i;
            if (side == 0) at = a;
            else {
                at = b - 1;
                while (at > a && ((unsigned char)s.s.p[at] & 0xC0) == 0x80) at--;
            }
            i = at;
            unsigned u = u8_next(s.s.p, s.s.n, &i);
            bool hit;
            if (!chars) hit = u_isspace(u);
            else {
                hit = false;
                for (size_t k = 0; k < chars->s.n && !hit;) hit = u8_next(chars->s.p, chars->s.n, &k) == u;
            }
            if (!hit) break;
            if (side == 0) a = i;
            else b = at;
        }
    }
    return tv_strn(s.s.p + a, b - a);
}

static bool starts_at(tv s, size_t at, tv p) { return at + p.s.n <= s.s.n && !memcmp(s.s.p + at, p.s.p, p.s.n); }

static tv replace(tpl_render *r, tv s, tv old, tv nw, int64_t count) {
    tpl_buf b = {.a = &r->a};
    tb_put(&b, "", 0);
    int64_t done = 0;
    if (!old.s.n) { /* Python inserts new between every character */
        size_t i = 0;
        while (i <= s.s.n) {
            if (count < 0 || done < count) tb_put(&b, nw.s.p, nw.s.n), done++;
            if (i == s.s.n) break;
            size_t j = i;
            u8_next(s.s.p, s.s.n, &j);
            tb_put(&b, s.s.p + i, j - i);
            i = j;
        }
        return tv_strn(b.p, b.n);
    }
    size_t i = 0;
    while (i < s.s.n) {
        if ((count < 0 || done < count) && starts_at(s, i, old)) {
            tb_put(&b, nw.s.p, nw.s.n);
            i += old.s.n;
            done++;
        } else tb_putc(&b, s.s.p[i++]);
    }
    return tv_strn(b.p, b.n);
}

static tv split(tpl_render *r, int line, tv s, const tv *sep, int64_t maxsplit, bool from_right) {
    tv out = tv_new_list(&r->a, V_LIST, 0);
    if (sep && sep->t != V_NONE) {
        if (sep->t != V_STR) FAIL(line, "split(): the separator must be a string");
        if (!sep->s.n) FAIL(line, "empty separator");
        if (!from_right) {
            size_t start = 0, i = 0;
            while (i + sep->s.n <= s.s.n && (maxsplit < 0 || (int64_t)out.l->n < maxsplit)) {
                if (starts_at(s, i, *sep)) {
                    tl_push(&r->a, out.l, tv_strn(s.s.p + start, i - start));
                    i += sep->s.n;
                    start = i;
                } else i++;
            }
            tl_push(&r->a, out.l, tv_strn(s.s.p + start, s.s.n - start));
            return out;
        }
        tv rev = tv_new_list(&r->a, V_LIST, 0);
        size_t end = s.s.n, i = s.s.n;
        while (i >= sep->s.n && (maxsplit < 0 || (int64_t)rev.l->n < maxsplit)) {
            if (starts_at(s, i - sep->s.n, *sep)) {
                tl_push(&r->a, rev.l, tv_strn(s.s.p + i, end - i));
                i -= sep->s.n;
                end = i;
            } else i--;
        }
        tl_push(&r->a, rev.l, tv_strn(s.s.p, end));
        for (size_t k = rev.l->n; k-- > 0;) tl_push(&r->a, out.l, rev.l->v[k]);
        return out;
    }
    /* whitespace runs; leading/trailing whitespace ignored */
    size_t i = 0;
    if (from_right && maxsplit >= 0) { /* rare: do it on the reversed problem */
        tv t = strip(s, NULL, 3);
        tv parts = split(r, line, t, NULL, -1, false);
        if ((int64_t)parts.l->n <= maxsplit + 1) return parts;
        size_t keep = parts.l->n - (size_t)maxsplit; /* first part is everything up to there, verbatim */
        const char *endp = parts.l->v[keep - 1].s.p + parts.l->v[keep - 1].s.n;
        tl_push(&r->a, out.l, tv_strn(t.s.p, (size_t)(endp - t.s.p)));
        for (size_t k = keep; k < parts.l->n; k++) tl_push(&r->a, out.l, parts.l->v[k]);
        return out;
    }
    while (i < s.s.n) {
        size_t j = i;
        while (j < s.s.n) {
            size_t k = j;
            if (!u_isspace(u8_next(s.s.p, s.s.n, &k))) break;
            j = k;
        }
        i = j;
        if (i >= s.s.n) break;
        if (maxsplit >= 0 && (int64_t)out.l->n == maxsplit) {
            tv rest = strip(tv_strn(s.s.p + i, s.s.n - i), NULL, 2);
            tl_push(&r->a, out.l, rest);
            return out;
        }
        j = i;
        while (j < s.s.n) {
            size_t k = j;
            if (u_isspace(u8_next(s.s.p, s.s.n, &k))) break;
            j = k;
        }
        tl_push(&r->a, out.l, tv_strn(s.s.p + i, j - i));
        i = j;
    }
    return out;
}

static int64_t int_arg(tpl_render *r, int line, const tv *v, int64_t dflt) {
    if (!v || v->t == V_NONE) return dflt;
    if (v->t == V_INT) return v->i;
    if (v->t == V_BOOL) return v->b;
    FAIL(line, "an integer argument was expected, not %s", tv_type_name(v));
}

static tv html_escape(tpl_render *r, tv s) {
    tpl_buf b = {.a = &r->a};
    tb_put(&b, "", 0);
    for (size_t i = 0; i < s.s.n; i++) {
        char c = s.s.p[i];
        if (c == '&') tb_puts(&b, "&amp;");
        else if (c == '<') tb_puts(&b, "&lt;");
        else if (c == '>') tb_puts(&b, "&gt;");
        else if (c == '"') tb_puts(&b, "&#34;");
        else if (c == '\'') tb_puts(&b, "&#39;");
        else tb_putc(&b, c);
    }
    return tv_strn(b.p, b.n);
}

/* Attribute path "a.b.0" as jinja2's make_attrgetter follows it. */
static tv get_path(tpl_render *r, int line, tv v, tv path) {
    if (path.t != V_STR) return tpl_getattr(r, line, v, path, true);
    size_t i = 0;
    while (i <= path.s.n) {
        size_t j = i;
        while (j < path.s.n && path.s.p[j] != '.') j++;
        tv key = tv_strn(path.s.p + i, j - i);
        bool digits = j > i;
        for (size_t k = i; k < j; k++) digits &= path.s.p[k] >= '0' && path.s.p[k] <= '9';
        if (digits) key = tv_int(strtoll(key.s.p, NULL, 10));
        v = tpl_getattr(r, line, v, key, true);
        i = j + 1;
    }
    return v;
}

/* Sort key comparison for sort/dictsort/min/max/unique: case-folded strings. */
typedef struct sort_ctx {
    tpl_render *r;
    int line;
    bool case_sensitive;
} sort_ctx;
/* The (key, value) tuples of a dict or namespace, in order: dict.items(). */
static tv dict_items(tpl_render *r, tv v) {
    tv out = tv_new_list(&r->a, V_LIST, v.d->n);
    for (size_t i = 0; i < v.d->n; i++) {
        tv t = tv_new_list(&r->a, V_TUPLE, 2);
        t.l->v[0] = v.d->k[i];
        t.l->v[1] = v.d->v[i];
        t.l->n = 2;
        out.l->v[out.l->n++] = t;
    }
    return out;
}

static tv fold(tpl_render *r, tv v, bool cs) { return !cs && v.t == V_STR ? change_case(r, v, CASE_LOWER) : v; }

static void merge_sort(sort_ctx *c, tv *keys, tv *vals, size_t n, tv *tk, tv *tvv) {
    if (n < 2) return;
    size_t h = n / 2;
    merge_sort(c, keys, vals, h, tk, tvv);
    merge_sort(c, keys + h, vals + h, n - h, tk, tvv);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        if (tv_cmp(&c->r->err, c->line, &keys[j], &keys[i]) < 0) tk[k] = keys[j], tvv[k++] = vals[j++];
        else tk[k] = keys[i], tvv[k++] = vals[i++];
    }
    while (i < h) tk[k] = keys[i], tvv[k++] = vals[i++];
    while (j < n) tk[k] = keys[j], tvv[k++] = vals[j++];
    memcpy(keys, tk, n * sizeof(tv));
    memcpy(vals, tvv, n * sizeof(tv));
}

/* Stable sort of items by key(item); reverse keeps Python's stability rule. */
static tv sorted(tpl_render *r, int line, tlist *items, const tv *attr, bool cs, bool reverse) {
    size_t n = items->n;
    tv *keys = tpl_alloc(&r->a, (n + 1) * sizeof(tv)), *vals = tpl_alloc(&r->a, (n + 1) * sizeof(tv));
    tv *tk = tpl_alloc(&r->a, (n + 1) * sizeof(tv)), *tvv = tpl_alloc(&r->a, (n + 1) * sizeof(tv));
    for (size_t i = 0; i < n; i++) {
        size_t src = reverse ? n - 1 - i : i; /* reversed input + reversed output = stable descending */
        vals[i] = items->v[src];
        keys[i] = fold(r, attr ? get_path(r, line, vals[i], *attr) : vals[i], cs);
    }
    sort_ctx c = {r, line, cs};
    merge_sort(&c, keys, vals, n, tk, tvv);
    tv out = tv_new_list(&r->a, V_LIST, n);
    for (size_t i = 0; i < n; i++) out.l->v[i] = vals[reverse ? n - 1 - i : i];
    out.l->n = n;
    return out;
}

static tv list_of(tpl_render *r, int line, tv v) {
    tlist *l = tpl_iter(r, line, v);
    tv out = tv_new_list(&r->a, V_LIST, l->n);
    memcpy(out.l->v, l->v, l->n * sizeof(tv));
    out.l->n = l->n;
    return out;
}

/* Arguments after the test name in select/selectattr: a test call. */
static bool run_test_args(tpl_render *r, int line, tv v, const tpl_args *a, int first) {
    if (a->npos <= first) return tv_truthy(&v);
    tv name = need_str(r, line, &a->pos[first], "the test name");
    char nm[64];
    if (name.s.n >= sizeof nm) FAIL(line, "unsupported test");
    memcpy(nm, name.s.p, name.s.n);
    nm[name.s.n] = 0;
    int id = tpl_test_id(nm);
    if (id < 0) FAIL(line, "unsupported test '%s'", nm);
    tpl_args rest = {a->pos + first + 1, a->npos - first - 1, a->kw, a->kwn, a->nkw};
    return tpl_apply_test(r, line, id, v, &rest);
}

static tv py_int(tpl_render *r, int line, tv v, const tpl_args *a) {
    const tv *d = tpl_arg(a, 0, "default");
    tv dflt = d ? *d : tv_int(0);
    if (v.t == V_INT) return v;
    if (v.t == V_BOOL) return tv_int(v.b);
    if (v.t == V_FLOAT) return isfinite(v.f) && fabs(v.f) < 9.2e18 ? tv_int((int64_t)v.f) : dflt;
    if (v.t == V_STR) {
        int64_t base = int_arg(r, line, tpl_arg(a, 1, "base"), 10);
        char buf[64];
        tv s = strip(v, NULL, 3);
        size_t k = 0;
        for (size_t i = 0; i < s.s.n && k < sizeof buf - 1; i++)
            if (s.s.p[i] != '_') buf[k++] = s.s.p[i];
        buf[k] = 0;
        if (!k || s.s.n >= sizeof buf) return dflt;
        char *end;
        long long x = strtoll(buf, &end, (int)base);
        if (!*end) return tv_int(x);
        double f = strtod(buf, &end);
        if (!*end && isfinite(f) && fabs(f) < 9.2e18) return tv_int((int64_t)f);
        return dflt;
    }
    return dflt;
}

tv tpl_apply_filter(tpl_render *r, int line, int id, tv v, const tpl_args *a) {
    switch (id) {
    case FI_ABS:
        if (v.t == V_FLOAT) return tv_float(fabs(v.f));
        if (v.t == V_INT) return v.i == INT64_MIN ? (FAIL(line, "integer overflow"), v) : tv_int(v.i < 0 ? -v.i : v.i);
        if (v.t == V_BOOL) return tv_int(v.b);
        FAIL(line, "bad operand type for abs(): '%s'", tv_type_name(&v));
    case FI_ATTR: {
        const tv *n = tpl_arg(a, 0, "name");
        if (!n) FAIL(line, "attr needs a name");
        return tpl_getattr(r, line, v, *n, false);
    }
    case FI_CAPITALIZE: return change_case(r, str_of(r, v), CASE_CAPITALIZE);
    case FI_COUNT: case FI_LENGTH:
        switch (v.t) {
        case V_STR: return tv_int((int64_t)u8_len(v.s.p, v.s.n));
        case V_LIST: case V_TUPLE: return tv_int((int64_t)v.l->n);
        case V_DICT: return tv_int((int64_t)v.d->n);
        case V_UNDEF: return tv_int(0);
        default: FAIL(line, "object of type '%s' has no len()", tv_type_name(&v));
        }
    case FI_D: case FI_DEFAULT: {
        const tv *d = tpl_arg(a, 0, "default_value"), *b = tpl_arg(a, 1, "boolean");
        bool use = v.t == V_UNDEF || (b && tv_truthy(b) && !tv_truthy(&v));
        return use ? (d ? *d : tv_strn("", 0)) : v;
    }
    case FI_DICTSORT: {
        if (v.t != V_DICT) FAIL(line, "dictsort needs a dict, not %s", tv_type_name(&v));
        const tv *cs = tpl_arg(a, 0, "case_sensitive"), *by = tpl_arg(a, 1, "by"), *rev = tpl_arg(a, 2, "reverse");
        bool by_value = by && by->t == V_STR && by->s.n == 5 && !memcmp(by->s.p, "value", 5);
        tv items = dict_items(r, v);
        tv idx = tv_int(by_value ? 1 : 0);
        return sorted(r, line, items.l, &idx, cs && tv_truthy(cs), rev && tv_truthy(rev));
    }
    case FI_E: case FI_ESCAPE: case FI_FORCEESCAPE: return html_escape(r, str_of(r, v));
    case FI_FIRST: case FI_LAST: {
        tlist *l = tpl_iter(r, line, v);
        if (!l->n) return tv_undef("first/last of an empty sequence");
        return l->v[id == FI_FIRST ? 0 : l->n - 1];
    }
    case FI_FLOAT: {
        const tv *d = tpl_arg(a, 0, "default");
        if (v.t == V_FLOAT) return v;
        if (v.t == V_INT || v.t == V_BOOL) return tv_float(tv_num(&v));
        if (v.t == V_STR) {
            tv s = strip(v, NULL, 3);
            char buf[64];
            if (s.s.n && s.s.n < sizeof buf) {
                memcpy(buf, s.s.p, s.s.n);
                buf[s.s.n] = 0;
                char *end;
                double f = strtod(buf, &end);
                if (!*end) return tv_float(f);
            }
        }
        return d ? *d : tv_float(0);
    }
    case FI_INDENT: {
        tv s = str_of(r, v);
        const tv *w = tpl_arg(a, 0, "width"), *first = tpl_arg(a, 1, "first"), *blank = tpl_arg(a, 2, "blank");
        tpl_buf ind = {.a = &r->a};
        tb_put(&ind, "", 0);
        if (w && w->t == V_STR) tb_put(&ind, w->s.p, w->s.n);
        else for (int64_t i = 0, k = int_arg(r, line, w, 4); i < k && i < 10000; i++) tb_putc(&ind, ' ');
        tpl_buf b = {.a = &r->a};
        tb_put(&b, "", 0);
        /* jinja2: s += "\n"; lines = s.splitlines(); first line unindented */
        size_t i = 0, lineno = 0;
        while (i < s.s.n) {
            size_t j = i;
            while (j < s.s.n && s.s.p[j] != '\n') j++;
            bool empty = j == i;
            if (lineno) {
                tb_putc(&b, '\n');
                if (!empty || (blank && tv_truthy(blank))) tb_put(&b, ind.p, ind.n);
            } else if (first && tv_truthy(first)) tb_put(&b, ind.p, ind.n);
            tb_put(&b, s.s.p + i, j - i);
            lineno++;
            i = j + 1;
        }
        if (!lineno && first && tv_truthy(first)) tb_put(&b, ind.p, ind.n);
        return tv_strn(b.p, b.n);
    }
    case FI_INT: return py_int(r, line, v, a);
    case FI_ITEMS: {
        if (v.t == V_UNDEF) return tv_new_list(&r->a, V_LIST, 0);
        if (v.t != V_DICT && v.t != V_NS) FAIL(line, "items: can only get item pairs from a mapping, not %s", tv_type_name(&v));
        return dict_items(r, v);
    }
    case FI_JOIN: {
        const tv *sep = tpl_arg(a, 0, "d"), *attr = tpl_arg(a, 1, "attribute");
        tlist *l = tpl_iter(r, line, v);
        tpl_buf b = {.a = &r->a};
        tb_put(&b, "", 0);
        for (size_t i = 0; i < l->n; i++) {
            if (i && sep) tv_write_str(&b, sep);
            tv x = attr ? get_path(r, line, l->v[i], *attr) : l->v[i];
            tv_write_str(&b, &x);
        }
        return tv_strn(b.p, b.n);
    }
    case FI_LIST: return list_of(r, line, v);
    case FI_LOWER: return change_case(r, str_of(r, v), CASE_LOWER);
    case FI_UPPER: return change_case(r, str_of(r, v), CASE_UPPER);
    case FI_TITLE: return change_case(r, str_of(r, v), CASE_TITLE);
    case FI_MAP: {
        tlist *l = tpl_iter(r, line, v);
        tv out = tv_new_list(&r->a, V_LIST, l->n);
        const tv *attr = tpl_arg(a, -1, "attribute");
        const tv *dflt = tpl_arg(a, -1, "default");
        int fid = -1;
        if (!attr) {
            if (!a->npos) FAIL(line, "map needs a filter name or attribute=");
            tv nm = need_str(r, line, &a->pos[0], "map's filter name");
            char buf[64];
            if (nm.s.n >= sizeof buf) FAIL(line, "unsupported filter");
            memcpy(buf, nm.s.p, nm.s.n);
            buf[nm.s.n] = 0;
            if ((fid = tpl_filter_id(buf)) < 0) FAIL(line, "unsupported filter '%s'", buf);
        }
        tpl_args rest = {a->pos + (a->npos ? 1 : 0), a->npos ? a->npos - 1 : 0, a->kw, a->kwn, a->nkw};
        for (size_t i = 0; i < l->n; i++) {
            tpl_step(r, line);
            tv x;
            if (attr) {
                x = get_path(r, line, l->v[i], *attr);
                if (x.t == V_UNDEF && dflt) x = *dflt;
            } else x = tpl_apply_filter(r, line, fid, l->v[i], &rest);
            out.l->v[out.l->n++] = x;
        }
        return out;
    }
    case FI_MAX: case FI_MIN: {
        const tv *cs = tpl_arg(a, 0, "case_sensitive"), *attr = tpl_arg(a, 1, "attribute");
        tlist *l = tpl_iter(r, line, v);
        if (!l->n) return tv_undef("max/min of an empty sequence");
        tv best = l->v[0], bk = fold(r, attr ? get_path(r, line, best, *attr) : best, cs && tv_truthy(cs));
        for (size_t i = 1; i < l->n; i++) {
            tv k = fold(r, attr ? get_path(r, line, l->v[i], *attr) : l->v[i], cs && tv_truthy(cs));
            int c = tv_cmp(&r->err, line, &k, &bk);
            if (id == FI_MAX ? c > 0 : c < 0) best = l->v[i], bk = k;
        }
        return best;
    }
    case FI_SELECT: case FI_REJECT: case FI_SELECTATTR: case FI_REJECTATTR: {
        bool by_attr = id == FI_SELECTATTR || id == FI_REJECTATTR, keep_if = id == FI_SELECT || id == FI_SELECTATTR;
        if (by_attr && !a->npos) FAIL(line, "%s needs an attribute name", FILTERS[id]);
        tlist *l = tpl_iter(r, line, v);
        tv out = tv_new_list(&r->a, V_LIST, 0);
        for (size_t i = 0; i < l->n; i++) {
            tpl_step(r, line);
            tv x = by_attr ? get_path(r, line, l->v[i], a->pos[0]) : l->v[i];
            if (run_test_args(r, line, x, a, by_attr ? 1 : 0) == keep_if) tl_push(&r->a, out.l, l->v[i]);
        }
        return out;
    }
    case FI_REPLACE: {
        const tv *o = tpl_arg(a, 0, "old"), *n = tpl_arg(a, 1, "new"), *c = tpl_arg(a, 2, "count");
        if (!o || !n) FAIL(line, "replace needs old and new");
        return replace(r, str_of(r, v), str_of(r, *o), str_of(r, *n), int_arg(r, line, c, -1));
    }
    case FI_REVERSE: {
        if (v.t == V_STR) {
            tlist *chars = tpl_iter(r, line, v);
            tpl_buf b = {.a = &r->a};
            tb_put(&b, "", 0);
            for (size_t i = chars->n; i-- > 0;) tb_put(&b, chars->v[i].s.p, chars->v[i].s.n);
            return tv_strn(b.p, b.n);
        }
        tlist *l = tpl_iter(r, line, v);
        tv out = tv_new_list(&r->a, V_LIST, l->n);
        for (size_t i = l->n; i-- > 0;) out.l->v[out.l->n++] = l->v[i];
        return out;
    }
    case FI_ROUND: {
        int64_t prec = int_arg(r, line, tpl_arg(a, 0, "precision"), 0);
        const tv *m = tpl_arg(a, 1, "method");
        if (!tv_is_num(&v)) FAIL(line, "round needs a number, not %s", tv_type_name(&v));
        double x = tv_num(&v), p = pow(10, (double)prec);
        if (m && m->t == V_STR && m->s.n == 4 && !memcmp(m->s.p, "ceil", 4)) return tv_float(ceil(x * p) / p);
        if (m && m->t == V_STR && m->s.n == 5 && !memcmp(m->s.p, "floor", 5)) return tv_float(floor(x * p) / p);
        if (prec < 0 || prec > 300 || !isfinite(x)) return tv_float(round(x * p) / p);
        char buf[400];
        snprintf(buf, sizeof buf, "%.*f", (int)prec, x); /* correctly rounded, ties to even: Python's round */
        return tv_float(strtod(buf, NULL));
    }
    case FI_SAFE: return v;
    case FI_SORT: {
        const tv *rev = tpl_arg(a, 0, "reverse"), *cs = tpl_arg(a, 1, "case_sensitive"), *attr = tpl_arg(a, 2, "attribute");
        return sorted(r, line, tpl_iter(r, line, v), attr, cs && tv_truthy(cs), rev && tv_truthy(rev));
    }
    case FI_STRING: return str_of(r, v);
    case FI_SUM: {
        const tv *attr = tpl_arg(a, 0, "attribute"), *start = tpl_arg(a, 1, "start");
        tv acc = start ? *start : tv_int(0);
        tlist *l = tpl_iter(r, line, v);
        for (size_t i = 0; i < l->n; i++) {
            tv x = attr ? get_path(r, line, l->v[i], *attr) : l->v[i];
            if (!tv_is_num(&x) || !tv_is_num(&acc)) FAIL(line, "sum: unsupported operand types '%s' and '%s'", tv_type_name(&acc), tv_type_name(&x));
            if (acc.t != V_FLOAT && x.t != V_FLOAT) {
                int64_t s;
                if (__builtin_add_overflow(acc.t == V_INT ? acc.i : acc.b, x.t == V_INT ? x.i : x.b, &s)) FAIL(line, "integer overflow in sum");
                acc = tv_int(s);
            } else acc = tv_float(tv_num(&acc) + tv_num(&x));
        }
        return acc;
    }
    case FI_TOJSON: {
        const tv *ea = tpl_arg(a, -1, "ensure_ascii"), *ind = tpl_arg(a, 0, "indent"), *sep = tpl_arg(a, -1, "separators"),
                 *sk = tpl_arg(a, -1, "sort_keys");
        if (ea && tv_truthy(ea)) FAIL(line, "unsupported: tojson(ensure_ascii=True)");
        if (sep && sep->t != V_NONE) FAIL(line, "unsupported: tojson(separators=...)");
        int indent = -1;
        if (ind && ind->t != V_NONE) {
            if (ind->t != V_INT) FAIL(line, "unsupported: tojson indent of type %s", tv_type_name(ind));
            indent = ind->i < 0 ? 0 : ind->i > 64 ? 64 : (int)ind->i;
        }
        tpl_buf b = {.a = &r->a};
        tb_put(&b, "", 0);
        tv_write_json(&r->err, line, &b, &v, indent, sk && tv_truthy(sk), 0);
        return tv_strn(b.p, b.n);
    }
    case FI_TRIM: {
        const tv *chars = tpl_arg(a, 0, "chars");
        tv s = str_of(r, v);
        if (chars && chars->t == V_NONE) chars = NULL;
        if (chars) need_str(r, line, chars, "trim's chars");
        return strip(s, chars, 3);
    }
    case FI_UNIQUE: {
        const tv *cs = tpl_arg(a, 0, "case_sensitive"), *attr = tpl_arg(a, 1, "attribute");
        tlist *l = tpl_iter(r, line, v);
        tv out = tv_new_list(&r->a, V_LIST, 0), seen = tv_new_list(&r->a, V_LIST, 0);
        for (size_t i = 0; i < l->n; i++) {
            tpl_step(r, line);
            tv k = fold(r, attr ? get_path(r, line, l->v[i], *attr) : l->v[i], cs && tv_truthy(cs));
            bool dup = false;
            for (size_t j = 0; j < seen.l->n && !dup; j++) dup = tv_eq(&k, &seen.l->v[j]);
            if (!dup) {
                tl_push(&r->a, seen.l, k);
                tl_push(&r->a, out.l, l->v[i]);
            }
        }
        return out;
    }
    case FI_WORDCOUNT: {
        tv s = str_of(r, v);
        int64_t n = 0;
        bool in = false;
        for (size_t i = 0; i < s.s.n; i++) {
            unsigned char c = (unsigned char)s.s.p[i];
            bool w = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
            if (w && !in) n++;
            in = w;
        }
        return tv_int(n);
    }
    default: FAIL(line, "unsupported filter");
    }
}

bool tpl_apply_test(tpl_render *r, int line, int id, tv v, const tpl_args *a) {
    const tv *x = tpl_arg(a, 0, NULL);
    switch (id) {
    case TE_DEFINED: return v.t != V_UNDEF;
    case TE_UNDEFINED: return v.t == V_UNDEF;
    case TE_NONE: return v.t == V_NONE;
    case TE_BOOLEAN: return v.t == V_BOOL;
    case TE_TRUE: return v.t == V_BOOL && v.b;
    case TE_FALSE: return v.t == V_BOOL && !v.b;
    case TE_INTEGER: return v.t == V_INT;
    case TE_FLOAT: return v.t == V_FLOAT;
    case TE_NUMBER: return tv_is_num(&v);
    case TE_STRING: return v.t == V_STR;
    case TE_MAPPING: return v.t == V_DICT;
    case TE_ITERABLE: return v.t == V_STR || v.t == V_LIST || v.t == V_TUPLE || v.t == V_DICT || v.t == V_UNDEF;
    case TE_SEQUENCE: return v.t == V_STR || v.t == V_LIST || v.t == V_TUPLE || v.t == V_DICT;
    case TE_CALLABLE: return v.t == V_FUNC || v.t == V_MACRO;
    case TE_LOWER: case TE_UPPER: {
        tv s = str_of(r, v);
        bool any = false;
        for (size_t i = 0; i < s.s.n;) {
            unsigned u = u8_next(s.s.p, s.s.n, &i);
            if (id == TE_LOWER ? u_isupper(u) : u_islower(u)) return false;
            any |= u_isupper(u) || u_islower(u);
        }
        return any;
    }
    case TE_ODD: case TE_EVEN: case TE_DIVISIBLEBY: {
        if (v.t != V_INT && v.t != V_BOOL) FAIL(line, "the '%s' test needs an integer, not %s", TESTS[id], tv_type_name(&v));
        int64_t n = v.t == V_INT ? v.i : v.b;
        if (id == TE_ODD) return n % 2 != 0;
        if (id == TE_EVEN) return n % 2 == 0;
        int64_t d = int_arg(r, line, tpl_arg(a, 0, "num"), 0);
        if (!d) FAIL(line, "integer division or modulo by zero");
        return d == -1 || n % d == 0;
    }
    default: break;
    }
    if (!x) FAIL(line, "the '%s' test needs an argument", TESTS[id]);
    switch (id) {
    case TE_SAMEAS:
        if (v.t != x->t) return false;
        if (v.t == V_NONE || v.t == V_UNDEF) return true;
        if (v.t == V_BOOL) return v.b == x->b;
        if (v.t == V_LIST || v.t == V_TUPLE) return v.l == x->l;
        if (v.t == V_DICT || v.t == V_NS) return v.d == x->d;
        return tv_eq(&v, x) && (v.t != V_STR || v.s.p == x->s.p);
    case TE_EQ: case TE_EQUALTO: return tv_eq(&v, x);
    case TE_NE: return !tv_eq(&v, x);
    case TE_IN: {
        if (x->t == V_STR) {
            if (v.t != V_STR) FAIL(line, "'in <string>' requires string as left operand");
            for (size_t i = 0; i + v.s.n <= x->s.n; i++)
                if (!memcmp(x->s.p + i, v.s.p, v.s.n)) return true;
            return false;
        }
        if (x->t == V_DICT) return td_get(x->d, v, NULL);
        tlist *l = tpl_iter(r, line, *x);
        for (size_t i = 0; i < l->n; i++)
            if (tv_eq(&v, &l->v[i])) return true;
        return false;
    }
    default: {
        if (v.t == V_UNDEF || x->t == V_UNDEF) FAIL(line, "an undefined value was compared");
        int c = tv_cmp(&r->err, line, &v, x);
        switch (id) {
        case TE_LT: case TE_LESSTHAN: return c < 0;
        case TE_LE: return c <= 0;
        case TE_GT: case TE_GREATERTHAN: return c > 0;
        default: return c >= 0;
        }
    }
    }
}

/* ---- methods ----------------------------------------------------------------------- */
static bool is(const char *a, const char *b) { return !strcmp(a, b); }

static tv str_method(tpl_render *r, int line, tv s, const char *m, const tpl_args *a, bool *found) {
    const tv *x = tpl_arg(a, 0, NULL), *y = tpl_arg(a, 1, NULL);
    *found = true;
    if (is(m, "strip") || is(m, "lstrip") || is(m, "rstrip")) {
        if (x && x->t == V_NONE) x = NULL;
        if (x) need_str(r, line, x, "the characters to strip");
        return strip(s, x, m[0] == 'l' ? 1 : m[0] == 'r' ? 2 : 3);
    }
    if (is(m, "lower")) return change_case(r, s, CASE_LOWER);
    if (is(m, "upper")) return change_case(r, s, CASE_UPPER);
    if (is(m, "title")) return change_case(r, s, CASE_TITLE);
    if (is(m, "capitalize")) return change_case(r, s, CASE_CAPITALIZE);
    if (is(m, "startswith") || is(m, "endswith")) {
        if (!x) FAIL(line, "%s() takes at least 1 argument", m);
        tlist one = {(tv *)x, 1, 1};
        tlist *cands = x->t == V_TUPLE ? x->l : &one;
        for (size_t i = 0; i < cands->n; i++) {
            tv p = need_str(r, line, &cands->v[i], m);
            if (p.s.n <= s.s.n && !memcmp(m[0] == 's' ? s.s.p : s.s.p + s.s.n - p.s.n, p.s.p, p.s.n)) return tv_bool(true);
        }
        return tv_bool(false);
    }
    if (is(m, "split") || is(m, "rsplit")) {
        const tv *sep = tpl_arg(a, 0, "sep");
        return split(r, line, s, sep, int_arg(r, line, tpl_arg(a, 1, "maxsplit"), -1), m[0] == 'r');
    }
    if (is(m, "splitlines")) {
        tv out = tv_new_list(&r->a, V_LIST, 0);
        size_t i = 0;
        while (i < s.s.n) {
            size_t j = i;
            while (j < s.s.n && s.s.p[j] != '\n' && s.s.p[j] != '\r') j++;
            tl_push(&r->a, out.l, tv_strn(s.s.p + i, j - i));
            if (j < s.s.n && s.s.p[j] == '\r' && j + 1 < s.s.n && s.s.p[j + 1] == '\n') j++;
            i = j + 1;
        }
        return out;
    }
    if (is(m, "replace")) {
        if (!x || !y) FAIL(line, "replace() takes at least 2 arguments");
        return replace(r, s, need_str(r, line, x, "replace's old"), need_str(r, line, y, "replace's new"), int_arg(r, line, tpl_arg(a, 2, "count"), -1));
    }
    if (is(m, "find") || is(m, "rfind") || is(m, "index") || is(m, "rindex") || is(m, "count")) {
        tv p = need_str(r, line, x, m);
        int64_t hit = -1, count = 0;
        for (size_t i = 0; i + p.s.n <= s.s.n; i++)
            if (starts_at(s, i, p)) {
                if (hit < 0 || m[0] == 'r') hit = (int64_t)u8_len(s.s.p, i);
                count++;
                if (is(m, "count") && p.s.n) i += p.s.n - 1;
                if (m[0] != 'r' && !is(m, "count")) break;
            }
        if (is(m, "count")) return tv_int(p.s.n ? count : (int64_t)u8_len(s.s.p, s.s.n) + 1);
        if (hit < 0 && m[0] != 'f' && !is(m, "rfind")) FAIL(line, "substring not found");
        return tv_int(hit);
    }
    if (is(m, "join")) {
        if (!x) FAIL(line, "join() takes exactly one argument");
        tlist *l = tpl_iter(r, line, *x);
        tpl_buf b = {.a = &r->a};
        tb_put(&b, "", 0);
        for (size_t i = 0; i < l->n; i++) {
            if (l->v[i].t != V_STR) FAIL(line, "sequence item %zu: expected str instance, %s found", i, tv_type_name(&l->v[i]));
            if (i) tb_put(&b, s.s.p, s.s.n);
            tb_put(&b, l->v[i].s.p, l->v[i].s.n);
        }
        return tv_strn(b.p, b.n);
    }
    if (is(m, "removeprefix") || is(m, "removesuffix")) {
        tv p = need_str(r, line, x, m);
        if (m[6] == 'p') return starts_at(s, 0, p) ? tv_strn(s.s.p + p.s.n, s.s.n - p.s.n) : s;
        return p.s.n <= s.s.n && starts_at(s, s.s.n - p.s.n, p) ? tv_strn(s.s.p, s.s.n - p.s.n) : s;
    }
    if (is(m, "isdigit") || is(m, "isalpha") || is(m, "isalnum") || is(m, "isspace") || is(m, "islower") || is(m, "isupper")) {
        if (is(m, "islower") || is(m, "isupper")) {
            tpl_args none = {0};
            return tv_bool(tpl_apply_test(r, line, m[2] == 'l' ? TE_LOWER : TE_UPPER, s, &none));
        }
        if (!s.s.n) return tv_bool(false);
        for (size_t i = 0; i < s.s.n;) {
            unsigned u = u8_next(s.s.p, s.s.n, &i);
            bool d = u >= '0' && u <= '9', al = u_isupper(u) || u_islower(u) || (u >= 0x80 && !u_isspace(u));
            bool ok = is(m, "isdigit") ? d : is(m, "isalpha") ? al : is(m, "isalnum") ? d || al : u_isspace(u);
            if (!ok) return tv_bool(false);
        }
        return tv_bool(true);
    }
    *found = false;
    return tv_none();
}

tv tpl_call_method(tpl_render *r, int line, tv obj, const char *m, const tpl_args *a, bool *found) {
    static const char *const mutating[] = {"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse",
                                           "update", "setdefault", "popitem", "__setitem__", "__delitem__", NULL};
    *found = false;
    if (obj.t == V_STR) return str_method(r, line, obj, m, a, found);
    if (obj.t == V_LIST || obj.t == V_TUPLE || obj.t == V_DICT) {
        for (int i = 0; mutating[i]; i++)
            if (is(m, mutating[i]))
                FAIL(line, "unsafe: %s.%s() would modify the %s, and the sandbox is immutable", tv_type_name(&obj), m, tv_type_name(&obj));
    }
    if (obj.t == V_DICT || obj.t == V_NS) {
        *found = true;
        if (is(m, "get")) {
            const tv *k = tpl_arg(a, 0, NULL), *d = tpl_arg(a, 1, NULL);
            if (!k) FAIL(line, "get expected at least 1 argument");
            tv v;
            return td_get(obj.d, *k, &v) ? v : d ? *d : tv_none();
        }
        if (is(m, "items")) {
            tpl_args none = {0};
            return tpl_apply_filter(r, line, FI_ITEMS, obj, &none);
        }
        if (is(m, "keys") || is(m, "values")) {
            tv out = tv_new_list(&r->a, V_LIST, obj.d->n);
            for (size_t i = 0; i < obj.d->n; i++) out.l->v[i] = m[0] == 'k' ? obj.d->k[i] : obj.d->v[i];
            out.l->n = obj.d->n;
            return out;
        }
        *found = false;
    }
    if (obj.t == V_LIST || obj.t == V_TUPLE) {
        const tv *x = tpl_arg(a, 0, NULL);
        if (is(m, "index") || is(m, "count")) {
            if (!x) FAIL(line, "%s() takes exactly one argument", m);
            int64_t count = 0;
            for (size_t i = 0; i < obj.l->n; i++)
                if (tv_eq(&obj.l->v[i], x)) {
                    if (m[0] == 'i') {
                        *found = true;
                        return tv_int((int64_t)i);
                    }
                    count++;
                }
            if (m[0] == 'i') FAIL(line, "x not in list");
            *found = true;
            return tv_int(count);
        }
    }
    return tv_none();
}
