/* eval.c — runs a parsed template: statements (text, output, if, for with
 * loop/else/filter, set, namespace attributes, block set, macros,
 * break/continue), expressions with Python's operator semantics, jinja2's
 * scoping (a for body and a macro get their own scope; `set` inside a loop
 * does not leak out, which is why templates use namespace()), the globals
 * transformers gives (range, namespace, dict, raise_exception,
 * strftime_now), and the public entry points of template.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/common.h"
#include "template/tmpl_internal.h"

enum { F_RANGE, F_NAMESPACE, F_DICT, F_RAISE, F_STRFTIME, F_COUNT };
static const char *const FUNC_NAMES[F_COUNT] = {"range", "namespace", "dict", "raise_exception", "strftime_now"};
enum { MAX_DEPTH = 100, MAX_RANGE = 100000 };
enum { CMP_IN = 1000, CMP_NOTIN }; /* as parser.c */

#define FAIL(line, ...) tpl_fail(&r->err, line, __VA_ARGS__)

void tpl_step(tpl_render *r, int line) {
    if (++r->steps > r->max_steps) FAIL(line, "the template ran more than %ld steps (loop iterations, calls, filters)", r->max_steps);
}

static tv eval(tpl_render *r, const node *n);
static void exec(tpl_render *r, const node *n, tpl_buf *out);

/* ---- names ------------------------------------------------------------------------- */
static tv lookup(tpl_render *r, const char *name) {
    tv k = tv_strn(name, strlen(name)), v;
    for (tpl_frame *f = r->scope; f; f = f->parent)
        if (td_get(&f->vars, k, &v)) return v;
    if (td_get(r->globals, k, &v)) return v;
    for (int i = 0; i < F_COUNT; i++)
        if (!strcmp(name, FUNC_NAMES[i])) {
            tv fn = {.t = V_FUNC};
            fn.fn = i;
            return fn;
        }
    return tv_undef(name);
}

static void bind(tpl_render *r, tpl_frame *f, const char *name, tv v) { td_set(&r->a, &f->vars, tv_strn(name, strlen(name)), v); }

static tpl_frame *push_frame(tpl_render *r, tpl_frame *parent) {
    tpl_frame *f = tpl_alloc(&r->a, sizeof *f);
    f->parent = parent;
    return f;
}

static _Noreturn void undefined_error(tpl_render *r, int line, const tv *u) {
    if (u->s.p) FAIL(line, "'%s' is undefined", u->s.p);
    FAIL(line, "an undefined value was used");
}

/* ---- attribute and item access ----------------------------------------------------- */
static const char *LOOP_ATTRS[] = {"index", "index0", "revindex", "revindex0", "first", "last", "length",
                                   "previtem", "nextitem", "depth", "depth0", NULL};

tv tpl_getattr(tpl_render *r, int line, tv obj, tv key, bool by_item) {
    (void)by_item;
    tv v;
    switch (obj.t) {
    case V_UNDEF: undefined_error(r, line, &obj);
    case V_DICT: case V_NS:
        if (td_get(obj.d, key, &v)) return v;
        break;
    case V_LIST: case V_TUPLE: case V_STR:
        if (key.t == V_INT || key.t == V_BOOL) {
            int64_t i = key.t == V_INT ? key.i : key.b;
            if (obj.t == V_STR) {
                int64_t len = (int64_t)u8_len(obj.s.p, obj.s.n);
                if (i < 0) i += len;
                if (i < 0 || i >= len) break;
                size_t b0 = u8_offset(obj.s.p, obj.s.n, (size_t)i), b1 = u8_offset(obj.s.p, obj.s.n, (size_t)i + 1);
                return tv_strn(obj.s.p + b0, b1 - b0);
            }
            int64_t len = (int64_t)obj.l->n;
            if (i < 0) i += len;
            if (i < 0 || i >= len) break;
            return obj.l->v[i];
        }
        break;
    case V_LOOP:
        if (key.t == V_STR) {
            tloop *L = obj.loop;
            int64_t n = (int64_t)L->items->n, i = (int64_t)L->i;
            for (int k = 0; LOOP_ATTRS[k]; k++) {
                if (strlen(LOOP_ATTRS[k]) != key.s.n || memcmp(LOOP_ATTRS[k], key.s.p, key.s.n)) continue;
                switch (k) {
                case 0: return tv_int(i + 1);
                case 1: return tv_int(i);
                case 2: return tv_int(n - i);
                case 3: return tv_int(n - i - 1);
                case 4: return tv_bool(i == 0);
                case 5: return tv_bool(i == n - 1);
                case 6: return tv_int(n);
                case 7: return i > 0 ? L->items->v[i - 1] : tv_undef("loop.previtem");
                case 8: return i + 1 < n ? L->items->v[i + 1] : tv_undef("loop.nextitem");
                case 9: return tv_int(1);
                default: return tv_int(0);
                }
            }
        }
        break;
    default: break;
    }
    /* jinja2 gives Undefined for a missing attribute or key; using it fails later */
    tv u = tv_undef(NULL);
    tpl_buf b = {.a = &r->a};
    tb_puts(&b, "'");
    tb_puts(&b, tv_type_name(&obj));
    tb_puts(&b, " object' has no attribute ");
    tv_write_repr(&b, &key);
    u.s.p = b.p;
    return u;
}

/* ---- iteration --------------------------------------------------------------------- */
tlist *tpl_iter(tpl_render *r, int line, tv v) {
    switch (v.t) {
    case V_LIST: case V_TUPLE: return v.l;
    case V_UNDEF: return tv_new_list(&r->a, V_LIST, 0).l;
    case V_DICT: case V_NS: {
        tv l = tv_new_list(&r->a, V_LIST, v.d->n);
        for (size_t i = 0; i < v.d->n; i++) l.l->v[i] = v.d->k[i];
        l.l->n = v.d->n;
        return l.l;
    }
    case V_STR: {
        tv l = tv_new_list(&r->a, V_LIST, u8_len(v.s.p, v.s.n));
        for (size_t i = 0; i < v.s.n;) {
            size_t j = i + 1;
            while (j < v.s.n && ((unsigned char)v.s.p[j] & 0xC0) == 0x80) j++;
            l.l->v[l.l->n++] = tv_strn(v.s.p + i, j - i);
            i = j;
        }
        return l.l;
    }
    default: FAIL(line, "'%s' object is not iterable", tv_type_name(&v));
    }
}

/* ---- calls ------------------------------------------------------------------------- */
const tv *tpl_arg(const tpl_args *a, int pos, const char *kw) {
    if (pos >= 0 && pos < a->npos) return &a->pos[pos];
    for (int i = 0; kw && i < a->nkw; i++)
        if (!strcmp(a->kwn[i], kw)) return &a->kw[i];
    return NULL;
}

static void eval_args(tpl_render *r, const node *call, tpl_args *a) {
    a->npos = call->nx;
    a->nkw = call->nkw;
    a->pos = call->nx ? tpl_alloc(&r->a, (size_t)call->nx * sizeof(tv)) : NULL;
    a->kw = call->nkw ? tpl_alloc(&r->a, (size_t)call->nkw * sizeof(tv)) : NULL;
    a->kwn = call->kwn;
    for (int i = 0; i < call->nx; i++) a->pos[i] = eval(r, call->xs[i]);
    for (int i = 0; i < call->nkw; i++) a->kw[i] = eval(r, call->kw[i]);
}

static tv call_macro(tpl_render *r, int line, const node *m, const tpl_args *a) {
    if (a->npos > m->nnames) FAIL(line, "macro '%s' takes not more than %d argument(s)", m->name, m->nnames);
    for (int k = 0; k < a->nkw; k++) {
        int found = 0;
        for (int i = 0; i < m->nnames; i++) found |= !strcmp(a->kwn[k], m->names[i]);
        if (!found) FAIL(line, "macro '%s' takes no keyword argument '%s'", m->name, a->kwn[k]);
    }
    if (++r->depth > MAX_DEPTH) FAIL(line, "macro calls nested deeper than %d", MAX_DEPTH);
    tpl_frame *saved = r->scope;
    tpl_frame *f = push_frame(r, r->root);
    r->scope = f;
    for (int i = 0; i < m->nnames; i++) {
        const tv *v = tpl_arg(a, i, m->names[i]);
        if (v) bind(r, f, m->names[i], *v);
        else if (m->xs[i]) bind(r, f, m->names[i], eval(r, m->xs[i]));
        else {
            tv u = tv_undef(m->names[i]);
            bind(r, f, m->names[i], u);
        }
    }
    tpl_buf out = {.a = &r->a};
    tb_put(&out, "", 0);
    exec(r, m->b, &out);
    r->loopctl = 0;
    r->scope = saved;
    r->depth--;
    return tv_strn(out.p, out.n);
}

tv tpl_call_value(tpl_render *r, int line, tv callee, const tpl_args *a) {
    tpl_step(r, line);
    if (callee.t == V_MACRO) return call_macro(r, line, callee.macro, a);
    if (callee.t == V_UNDEF) undefined_error(r, line, &callee);
    if (callee.t != V_FUNC) FAIL(line, "'%s' object is not callable", tv_type_name(&callee));
    switch (callee.fn) {
    case F_RANGE: {
        if (a->nkw || a->npos < 1 || a->npos > 3) FAIL(line, "range() takes 1 to 3 positional arguments");
        int64_t v[3] = {0, 0, 1};
        for (int i = 0; i < a->npos; i++) {
            if (a->pos[i].t != V_INT && a->pos[i].t != V_BOOL) FAIL(line, "range(): '%s' object cannot be interpreted as an integer", tv_type_name(&a->pos[i]));
            v[a->npos == 1 ? 1 : i] = a->pos[i].t == V_INT ? a->pos[i].i : a->pos[i].b;
        }
        if (!v[2]) FAIL(line, "range() arg 3 must not be zero");
        double count = ceil(((double)v[1] - (double)v[0]) / (double)v[2]);
        if (count > MAX_RANGE) FAIL(line, "range too big: the sandbox allows %d items", MAX_RANGE);
        tv l = tv_new_list(&r->a, V_LIST, count > 0 ? (size_t)count : 0);
        for (int64_t x = v[0]; v[2] > 0 ? x < v[1] : x > v[1]; x += v[2]) l.l->v[l.l->n++] = tv_int(x);
        return l;
    }
    case F_NAMESPACE: case F_DICT: {
        tv d = tv_new_dict(&r->a, callee.fn == F_NAMESPACE ? V_NS : V_DICT);
        if (a->npos > 1) FAIL(line, "%s() takes at most 1 positional argument", FUNC_NAMES[callee.fn]);
        if (a->npos == 1) {
            if (a->pos[0].t != V_DICT && a->pos[0].t != V_NS) FAIL(line, "%s() needs a mapping, not '%s'", FUNC_NAMES[callee.fn], tv_type_name(&a->pos[0]));
            for (size_t i = 0; i < a->pos[0].d->n; i++) td_set(&r->a, d.d, a->pos[0].d->k[i], a->pos[0].d->v[i]);
        }
        for (int i = 0; i < a->nkw; i++) td_set(&r->a, d.d, tv_strn(a->kwn[i], strlen(a->kwn[i])), a->kw[i]);
        return d;
    }
    case F_RAISE: {
        const tv *m = tpl_arg(a, 0, "message");
        tpl_buf b = {.a = &r->a};
        tb_put(&b, "", 0);
        if (m) tv_write_str(&b, m);
        FAIL(line, "raise_exception: %s", b.p);
    }
    case F_STRFTIME: {
        const tv *f = tpl_arg(a, 0, "format");
        if (!f || f->t != V_STR) FAIL(line, "strftime_now() needs a format string");
        char fmt[256], out[512];
        if (f->s.n >= sizeof fmt) FAIL(line, "strftime_now(): format too long");
        memcpy(fmt, f->s.p, f->s.n);
        fmt[f->s.n] = 0;
        time_t now = time(NULL);
        struct tm tmv;
        localtime_r(&now, &tmv); /* datetime.now() is local time */
        size_t n = strftime(out, sizeof out, fmt, &tmv);
        return tv_str_copy(&r->a, out, n);
    }
    default: FAIL(line, "not callable");
    }
}

/* ---- operators --------------------------------------------------------------------- */
static bool is_seq(const tv *v) { return v->t == V_LIST || v->t == V_TUPLE; }
static int64_t as_i(const tv *v) { return v->t == V_INT ? v->i : v->b; }

static _Noreturn void bad_operands(tpl_render *r, int line, const char *op, const tv *a, const tv *b) {
    if (a->t == V_UNDEF) undefined_error(r, line, a);
    if (b->t == V_UNDEF) undefined_error(r, line, b);
    FAIL(line, "unsupported operand type(s) for %s: '%s' and '%s'", op, tv_type_name(a), tv_type_name(b));
}

static tv repeat(tpl_render *r, int line, tv seq, int64_t k) {
    if (k < 0) k = 0;
    if (seq.t == V_STR) {
        if (seq.s.n && (uint64_t)k > (uint64_t)(r->a.cap ? r->a.cap : SIZE_MAX) / seq.s.n) FAIL(line, "string repetition too large");
        tpl_buf b = {.a = &r->a};
        tb_put(&b, "", 0);
        for (int64_t i = 0; i < k; i++) tb_put(&b, seq.s.p, seq.s.n);
        return tv_strn(b.p, b.n);
    }
    if (seq.l->n && (uint64_t)k > (uint64_t)(r->a.cap ? r->a.cap : SIZE_MAX) / (seq.l->n * sizeof(tv))) FAIL(line, "list repetition too large");
    tv l = tv_new_list(&r->a, seq.t, (size_t)k * seq.l->n);
    for (int64_t i = 0; i < k; i++)
        for (size_t j = 0; j < seq.l->n; j++) l.l->v[l.l->n++] = seq.l->v[j];
    return l;
}

static tv arith(tpl_render *r, int line, int op, tv a, tv b) {
    static const char *names[] = {['+'] = "+", ['-'] = "-", ['*'] = "*", ['/'] = "/", ['%'] = "%"};
    const char *opn = op == OP_FLOORDIV ? "//" : op == OP_POW ? "**" : names[op];
    if (op == '+' && a.t == V_STR && b.t == V_STR) {
        char *p = tpl_alloc(&r->a, a.s.n + b.s.n + 1);
        memcpy(p, a.s.p, a.s.n);
        memcpy(p + a.s.n, b.s.p, b.s.n);
        return tv_strn(p, a.s.n + b.s.n);
    }
    if (op == '+' && is_seq(&a) && a.t == b.t) {
        tv l = tv_new_list(&r->a, a.t, a.l->n + b.l->n);
        memcpy(l.l->v, a.l->v, a.l->n * sizeof(tv));
        memcpy(l.l->v + a.l->n, b.l->v, b.l->n * sizeof(tv));
        l.l->n = a.l->n + b.l->n;
        return l;
    }
    if (op == '*' && (a.t == V_STR || is_seq(&a)) && (b.t == V_INT || b.t == V_BOOL)) return repeat(r, line, a, as_i(&b));
    if (op == '*' && (b.t == V_STR || is_seq(&b)) && (a.t == V_INT || a.t == V_BOOL)) return repeat(r, line, b, as_i(&a));
    if (!tv_is_num(&a) || !tv_is_num(&b)) bad_operands(r, line, opn, &a, &b);
    bool ints = a.t != V_FLOAT && b.t != V_FLOAT;
    if (ints) {
        int64_t x = as_i(&a), y = as_i(&b), z;
        switch (op) {
        case '+': if (__builtin_add_overflow(x, y, &z)) break; return tv_int(z);
        case '-': if (__builtin_sub_overflow(x, y, &z)) break; return tv_int(z);
        case '*': if (__builtin_mul_overflow(x, y, &z)) break; return tv_int(z);
        case '/': if (!y) FAIL(line, "division by zero"); return tv_float((double)x / (double)y);
        case OP_FLOORDIV: case '%': {
            if (!y) FAIL(line, "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1) break;
            int64_t q = x / y, m = x % y;
            if (m && ((m < 0) != (y < 0))) q--, m += y;
            return tv_int(op == '%' ? m : q);
        }
        case OP_POW:
            if (y >= 0) {
                int64_t acc = 1;
                bool of = false;
                for (int64_t k = 0; k < y && !of; k++) of = __builtin_mul_overflow(acc, x, &acc);
                if (!of) return tv_int(acc);
                break;
            }
            return tv_float(pow((double)x, (double)y));
        }
        FAIL(line, "integer overflow in %s (phiq's integers are 64-bit)", opn);
    }
    double x = tv_num(&a), y = tv_num(&b);
    switch (op) {
    case '+': return tv_float(x + y);
    case '-': return tv_float(x - y);
    case '*': return tv_float(x * y);
    case '/': if (y == 0) FAIL(line, "float division by zero"); return tv_float(x / y);
    case OP_FLOORDIV: if (y == 0) FAIL(line, "float floor division by zero"); return tv_float(floor(x / y));
    case '%': {
        if (y == 0) FAIL(line, "float modulo");
        double m = fmod(x, y);
        if (m && ((m < 0) != (y < 0))) m += y;
        return tv_float(m);
    }
    default: return tv_float(pow(x, y));
    }
}

static bool contains(tpl_render *r, int line, tv needle, tv hay) {
    switch (hay.t) {
    case V_STR:
        if (needle.t != V_STR) FAIL(line, "'in <string>' requires string as left operand, not %s", tv_type_name(&needle));
        if (!needle.s.n) return true;
        for (size_t i = 0; i + needle.s.n <= hay.s.n; i++)
            if (!memcmp(hay.s.p + i, needle.s.p, needle.s.n)) return true;
        return false;
    case V_LIST: case V_TUPLE:
        for (size_t i = 0; i < hay.l->n; i++)
            if (tv_eq(&needle, &hay.l->v[i])) return true;
        return false;
    case V_DICT: return td_get(hay.d, needle, NULL);
    case V_UNDEF: return false;
    default: FAIL(line, "argument of type '%s' is not iterable", tv_type_name(&hay));
    }
}

static bool compare(tpl_render *r, int line, int op, tv a, tv b) {
    switch (op) {
    case OP_EQ: return tv_eq(&a, &b);
    case OP_NE: return !tv_eq(&a, &b);
    case CMP_IN: return contains(r, line, a, b);
    case CMP_NOTIN: return !contains(r, line, a, b);
    default: break;
    }
    if (a.t == V_UNDEF) undefined_error(r, line, &a);
    if (b.t == V_UNDEF) undefined_error(r, line, &b);
    if ((a.t == V_FLOAT && isnan(a.f)) || (b.t == V_FLOAT && isnan(b.f))) return false;
    int c = tv_cmp(&r->err, line, &a, &b);
    switch (op) {
    case '<': return c < 0;
    case '>': return c > 0;
    case OP_LE: return c <= 0;
    default: return c >= 0;
    }
}

/* Python's slice indices for a sequence of length len. */
static void slice_indices(tpl_render *r, int line, const node *n, int64_t len, int64_t *start, int64_t *stop, int64_t *step) {
    tv s[3];
    const node *parts[3] = {n->b, n->c, n->d};
    for (int k = 0; k < 3; k++) {
        s[k] = parts[k] ? eval(r, parts[k]) : tv_none();
        if (s[k].t != V_NONE && s[k].t != V_INT && s[k].t != V_BOOL) FAIL(line, "slice indices must be integers or None");
    }
    *step = s[2].t == V_NONE ? 1 : as_i(&s[2]);
    if (!*step) FAIL(line, "slice step cannot be zero");
    int64_t lo = *step < 0 ? -1 : 0, hi = *step < 0 ? len - 1 : len;
    for (int k = 0; k < 2; k++) {
        int64_t *dst = k ? stop : start;
        if (s[k].t == V_NONE) *dst = k ? (*step < 0 ? lo : hi) : (*step < 0 ? hi : lo);
        else {
            int64_t v = as_i(&s[k]);
            if (v < 0) v += len;
            *dst = v < lo ? lo : v > hi ? hi : v;
        }
    }
}

static tv do_slice(tpl_render *r, const node *n, tv obj) {
    if (obj.t == V_UNDEF) undefined_error(r, n->line, &obj);
    if (obj.t != V_STR && !is_seq(&obj)) FAIL(n->line, "'%s' object is not subscriptable", tv_type_name(&obj));
    int64_t len = obj.t == V_STR ? (int64_t)u8_len(obj.s.p, obj.s.n) : (int64_t)obj.l->n, a, b, st;
    slice_indices(r, n->line, n, len, &a, &b, &st);
    if (obj.t == V_STR) {
        tlist *chars = tpl_iter(r, n->line, obj);
        tpl_buf buf = {.a = &r->a};
        tb_put(&buf, "", 0);
        for (int64_t i = a; st > 0 ? i < b : i > b; i += st) tb_put(&buf, chars->v[i].s.p, chars->v[i].s.n);
        return tv_strn(buf.p, buf.n);
    }
    tv l = tv_new_list(&r->a, obj.t, 0);
    for (int64_t i = a; st > 0 ? i < b : i > b; i += st) tl_push(&r->a, l.l, obj.l->v[i]);
    return l;
}

/* ---- expressions ------------------------------------------------------------------- */
static tv eval(tpl_render *r, const node *n) {
    switch (n->kind) {
    case N_CONST: return n == r->ph ? r->ph_val : n->val;
    case N_NAME: return lookup(r, n->name);
    case N_ATTR: return tpl_getattr(r, n->line, eval(r, n->a), tv_strn(n->name, strlen(n->name)), false);
    case N_ITEM: {
        tv obj = eval(r, n->a);
        return tpl_getattr(r, n->line, obj, eval(r, n->b), true);
    }
    case N_SLICE: return do_slice(r, n, eval(r, n->a));
    case N_CALL: {
        tpl_args args;
        if (n->a->kind == N_ATTR) { /* obj.method(...) */
            tv obj = eval(r, n->a->a);
            eval_args(r, n, &args);
            if (obj.t == V_LOOP && !strcmp(n->a->name, "cycle")) {
                if (!args.npos) FAIL(n->line, "loop.cycle() needs at least one value");
                return args.pos[obj.loop->i % (size_t)args.npos];
            }
            if (obj.t == V_UNDEF) undefined_error(r, n->line, &obj);
            bool found = false;
            tpl_step(r, n->line);
            tv v = tpl_call_method(r, n->line, obj, n->a->name, &args, &found);
            if (found) return v;
            tv callee = tpl_getattr(r, n->line, obj, tv_strn(n->a->name, strlen(n->a->name)), false);
            if (callee.t == V_UNDEF) FAIL(n->line, "'%s' object has no method '%s'", tv_type_name(&obj), n->a->name);
            return tpl_call_value(r, n->line, callee, &args);
        }
        tv callee = eval(r, n->a);
        eval_args(r, n, &args);
        return tpl_call_value(r, n->line, callee, &args);
    }
    case N_FILTER: {
        tv v = eval(r, n->a);
        tpl_args args;
        eval_args(r, n, &args);
        tpl_step(r, n->line);
        return tpl_apply_filter(r, n->line, n->op, v, &args);
    }
    case N_TEST: {
        tv v = eval(r, n->a);
        tpl_args args;
        eval_args(r, n, &args);
        bool t = tpl_apply_test(r, n->line, (int)n->val.i, v, &args);
        return tv_bool(n->op ? !t : t);
    }
    case N_NEG: case N_POS: {
        tv v = eval(r, n->a);
        if (v.t == V_UNDEF) undefined_error(r, n->line, &v);
        if (!tv_is_num(&v)) FAIL(n->line, "bad operand type for unary %c: '%s'", n->kind == N_NEG ? '-' : '+', tv_type_name(&v));
        if (n->kind == N_POS) return v.t == V_BOOL ? tv_int(v.b) : v;
        if (v.t == V_FLOAT) return tv_float(-v.f);
        if (as_i(&v) == INT64_MIN) FAIL(n->line, "integer overflow");
        return tv_int(-as_i(&v));
    }
    case N_NOT: {
        tv v = eval(r, n->a);
        return tv_bool(!tv_truthy(&v));
    }
    case N_AND: {
        tv a = eval(r, n->a);
        return tv_truthy(&a) ? eval(r, n->b) : a;
    }
    case N_OR: {
        tv a = eval(r, n->a);
        return tv_truthy(&a) ? a : eval(r, n->b);
    }
    case N_BINOP: {
        tv a = eval(r, n->a), b = eval(r, n->b);
        if (n->op == '~') {
            tpl_buf buf = {.a = &r->a};
            tb_put(&buf, "", 0);
            tv_write_str(&buf, &a);
            tv_write_str(&buf, &b);
            return tv_strn(buf.p, buf.n);
        }
        return arith(r, n->line, n->op, a, b);
    }
    case N_CMP: {
        tv a = eval(r, n->xs[0]);
        for (int i = 1; i < n->nx; i++) {
            tv b = eval(r, n->xs[i]);
            if (!compare(r, n->line, n->ops[i - 1], a, b)) return tv_bool(false);
            a = b;
        }
        return tv_bool(true);
    }
    case N_COND: {
        tv c = eval(r, n->a);
        if (tv_truthy(&c)) return eval(r, n->b);
        return n->c ? eval(r, n->c) : tv_undef(NULL);
    }
    case N_LIST: case N_TUPLE: {
        tv l = tv_new_list(&r->a, n->kind == N_LIST ? V_LIST : V_TUPLE, (size_t)n->nx);
        for (int i = 0; i < n->nx; i++) l.l->v[i] = eval(r, n->xs[i]);
        l.l->n = (size_t)n->nx;
        return l;
    }
    case N_DICT: {
        tv d = tv_new_dict(&r->a, V_DICT);
        for (int i = 0; i + 1 < n->nx; i += 2) {
            tv k = eval(r, n->xs[i]);
            if (is_seq(&k) || k.t == V_DICT || k.t == V_NS || k.t == V_UNDEF) FAIL(n->line, "unhashable type: '%s'", tv_type_name(&k));
            td_set(&r->a, d.d, k, eval(r, n->xs[i + 1]));
        }
        return d;
    }
    default: FAIL(n->line, "internal: not an expression");
    }
}

/* ---- statements -------------------------------------------------------------------- */
static void assign(tpl_render *r, const node *st, tpl_frame *f, tv v) {
    if (!st->op) {
        bind(r, f, st->names[0], v);
        return;
    }
    if (v.t == V_STR || v.t == V_DICT) v.l = tpl_iter(r, st->line, v), v.t = V_LIST;
    if (!is_seq(&v)) FAIL(st->line, "cannot unpack non-iterable %s object", tv_type_name(&v));
    if (v.l->n != (size_t)st->nnames)
        FAIL(st->line, "%s values to unpack (expected %d, got %zu)", v.l->n > (size_t)st->nnames ? "too many" : "not enough", st->nnames, v.l->n);
    for (int i = 0; i < st->nnames; i++) bind(r, f, st->names[i], v.l->v[i]);
}

static void exec_for(tpl_render *r, const node *n, tpl_buf *out) {
    tv seq = eval(r, n->a);
    tlist *items = tpl_iter(r, n->line, seq);
    tpl_frame *outer = r->scope;
    if (n->d) { /* {% for x in xs if cond %}: loop sees only the kept items */
        tlist *kept = tv_new_list(&r->a, V_LIST, 0).l;
        for (size_t i = 0; i < items->n; i++) {
            tpl_step(r, n->line);
            tpl_frame *f = push_frame(r, outer);
            assign(r, n, f, items->v[i]);
            r->scope = f;
            tv c = eval(r, n->d);
            r->scope = outer;
            if (tv_truthy(&c)) tl_push(&r->a, kept, items->v[i]);
        }
        items = kept;
    }
    if (!items->n) {
        if (n->c) {
            r->scope = push_frame(r, outer);
            exec(r, n->c, out);
            r->scope = outer;
        }
        return;
    }
    tloop *L = tpl_alloc(&r->a, sizeof *L);
    L->items = items;
    tv loopv = {.t = V_LOOP};
    loopv.loop = L;
    for (size_t i = 0; i < items->n; i++) {
        tpl_step(r, n->line);
        L->i = i;
        tpl_frame *f = push_frame(r, outer);
        assign(r, n, f, items->v[i]);
        bind(r, f, "loop", loopv);
        r->scope = f;
        exec(r, n->b, out);
        r->scope = outer;
        int ctl = r->loopctl;
        r->loopctl = 0;
        if (ctl == 1) break;
    }
}

static void exec(tpl_render *r, const node *n, tpl_buf *out) {
    switch (n->kind) {
    case N_BODY:
        for (int i = 0; i < n->nx && !r->loopctl; i++) exec(r, n->xs[i], out);
        return;
    case N_TEXT: tb_put(out, n->val.s.p, n->val.s.n); return;
    case N_PRINT: {
        tv v = eval(r, n->a);
        tv_write_str(out, &v);
        return;
    }
    case N_IF: {
        tv c = eval(r, n->a);
        if (tv_truthy(&c)) exec(r, n->b, out);
        else if (n->c) exec(r, n->c, out);
        return;
    }
    case N_FOR:
        if (++r->depth > MAX_DEPTH) FAIL(n->line, "loops nested deeper than %d", MAX_DEPTH);
        exec_for(r, n, out);
        r->depth--;
        return;
    case N_SET: {
        tv v = eval(r, n->a);
        if (n->name) { /* ns.attr = v */
            tv ns = lookup(r, n->name);
            if (ns.t != V_NS) FAIL(n->line, "cannot assign attribute on non-namespace object '%s'", n->name);
            td_set(&r->a, ns.d, tv_strn(n->names[0], strlen(n->names[0])), v);
            return;
        }
        assign(r, n, r->scope, v);
        return;
    }
    case N_SET_BLOCK: case N_FILTER_BLOCK: {
        tpl_buf b = {.a = &r->a};
        tb_put(&b, "", 0);
        exec(r, n->b, &b);
        tv v = tv_strn(b.p, b.n);
        if (n->c) { /* the filter chain reads the captured text through its placeholder */
            const node *saved = r->ph;
            tv saved_v = r->ph_val;
            r->ph = n->d;
            r->ph_val = v;
            v = eval(r, n->c);
            r->ph = saved;
            r->ph_val = saved_v;
        }
        if (n->kind == N_SET_BLOCK) bind(r, r->scope, n->names[0], v);
        else tv_write_str(out, &v);
        return;
    }
    case N_MACRO: {
        tv m = {.t = V_MACRO};
        m.macro = n;
        bind(r, r->scope, n->name, m);
        return;
    }
    case N_BREAK: case N_CONTINUE:
        if (!r->depth) FAIL(n->line, "'%s' outside a loop", n->kind == N_BREAK ? "break" : "continue");
        r->loopctl = n->kind == N_BREAK ? 1 : 2;
        return;
    default: FAIL(n->line, "internal: not a statement");
    }
}

/* ---- entry points ------------------------------------------------------------------ */
phiq_tmpl *phiq_tmpl_parse(const char *src, size_t len) {
    phiq_tmpl *volatile t = calloc(1, sizeof *t);
    if (!t) return phiq_fail_null(PHIQ_ENOMEM, "template: out of memory");
    t->arena.err = &t->err;
    t->arena.cap = (size_t)256 << 20;
    if (setjmp(t->err.jb)) {
        if (t->err.line > 0) phiq_fail(PHIQ_EUNSUPPORTED, "template: line %d: %s", t->err.line, t->err.msg);
        else phiq_fail(PHIQ_EUNSUPPORTED, "template: %s", t->err.msg);
        tpl_arena_free(&t->arena);
        free(t);
        return NULL;
    }
    size_t ntok;
    token *toks = tpl_lex(&t->arena, src, len, &ntok);
    t->root = tpl_parse_tokens(&t->arena, toks, ntok);
    return t;
}

void phiq_tmpl_free(phiq_tmpl *t) {
    if (!t) return;
    tpl_arena_free(&t->arena);
    free(t);
}

char *phiq_tmpl_render(const phiq_tmpl *t, const char *vars_json, const phiq_tmpl_limits *lim, size_t *len) {
    tpl_render *r = calloc(1, sizeof *r);
    if (!r) return phiq_fail_null(PHIQ_ENOMEM, "template: out of memory");
    phiq_tmpl_limits L = lim ? *lim : (phiq_tmpl_limits){0};
    if (!L.max_output) L.max_output = (size_t)16 << 20;
    if (!L.max_memory) L.max_memory = (size_t)256 << 20;
    if (!L.max_steps) L.max_steps = 10000000;
    r->a.err = &r->err;
    r->a.cap = L.max_memory;
    r->max_steps = L.max_steps;
    char *volatile result = NULL;
    if (setjmp(r->err.jb)) {
        if (r->err.line > 0) phiq_fail(PHIQ_EINVAL, "template: line %d: %s", r->err.line, r->err.msg);
        else phiq_fail(PHIQ_EINVAL, "template: %s", r->err.msg);
        free(result);
        result = NULL;
    } else {
        tv vars = tv_from_json(&r->a, vars_json ? vars_json : "{}", vars_json ? strlen(vars_json) : 2);
        if (vars.t != V_DICT) FAIL(0, "the variables must be a JSON object");
        r->globals = vars.d;
        r->root = r->scope = push_frame(r, NULL);
        tpl_buf out = {.a = &r->a, .max = L.max_output};
        tb_put(&out, "", 0);
        exec(r, t->root, &out);
        result = malloc(out.n + 1);
        if (!result) FAIL(0, "out of memory");
        memcpy(result, out.p, out.n + 1);
        if (len) *len = out.n;
    }
    tpl_arena_free(&r->a);
    free(r);
    return result;
}
