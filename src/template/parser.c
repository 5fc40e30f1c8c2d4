/* parser.c — builds the syntax tree from the tokens, following the grammar
 * and operator precedence of jinja2's parser.py (condexpr < or < and < not <
 * compare < + - < ~ < * / // % < ** < unary < postfix/filter/test). Tags
 * jinja2 knows but this subset does not run (include, extends, block, call,
 * with, raw, ...) and unknown filters or tests are errors naming them, at
 * parse time as jinja2 reports them at compile time. */
#include <string.h>

#include "template/tmpl_internal.h"

typedef struct parser {
    tpl_arena *a;
    const token *t;
    size_t i, n;
    int depth;
} parser;

#define MAX_NEST 200

static const token *cur(parser *P) { return &P->t[P->i]; }
static const token *peek(parser *P, size_t k) { return &P->t[P->i + k < P->n ? P->i + k : P->n - 1]; }
static _Noreturn void pfail(parser *P, const char *fmt, const char *arg) __attribute__((format(printf, 2, 0)));
static _Noreturn void pfail(parser *P, const char *fmt, const char *arg) {
    tpl_fail(P->a->err, cur(P)->line, fmt, arg);
}
static bool is_op(parser *P, int op) { return cur(P)->type == T_OP && cur(P)->op == op; }
static bool is_name(parser *P, const char *name) { return cur(P)->type == T_NAME && !strcmp(cur(P)->s, name); }
static void next(parser *P) {
    if (P->i + 1 < P->n) P->i++;
}
static const char *tok_desc(const token *t) {
    switch (t->type) {
    case T_EOF: return "end of template";
    case T_DATA: return "template text";
    case T_VAR_BEGIN: return "'{{'";
    case T_VAR_END: return "'}}'";
    case T_BLOCK_BEGIN: return "'{%'";
    case T_BLOCK_END: return "'%}'";
    case T_NAME: return t->s;
    case T_STRING: return "a string";
    case T_INT: case T_FLOAT: return "a number";
    default: return "an operator";
    }
}
static void expect_op(parser *P, int op) {
    if (!is_op(P, op)) {
        char want[4] = {(char)op, 0};
        tpl_fail(P->a->err, cur(P)->line, "expected '%s', got %s", want, tok_desc(cur(P)));
    }
    next(P);
}
static const char *expect_name(parser *P) {
    if (cur(P)->type != T_NAME) pfail(P, "expected a name, got %s", tok_desc(cur(P)));
    const char *s = cur(P)->s;
    next(P);
    return s;
}
static void expect_type(parser *P, int type, const char *what) {
    if (cur(P)->type != type) tpl_fail(P->a->err, cur(P)->line, "expected %s, got %s", what, tok_desc(cur(P)));
    next(P);
}

static node *mk(parser *P, int kind, int line) {
    node *n = tpl_alloc(P->a, sizeof *n);
    n->kind = kind;
    n->line = line;
    return n;
}

typedef struct nvec {
    node **v;
    int n, cap;
} nvec;
static void nv_push(parser *P, nvec *v, node *x) {
    if (v->n == v->cap) {
        int nc = v->cap ? v->cap * 2 : 4;
        v->v = tpl_realloc(P->a, v->v, (size_t)v->cap * sizeof(node *), (size_t)nc * sizeof(node *));
        v->cap = nc;
    }
    v->v[v->n++] = x;
}

static node *parse_expr(parser *P, bool with_condexpr);
static node *parse_unary(parser *P, bool with_filter);
static node *parse_primary(parser *P);
static node *parse_postfix(parser *P, node *n);
static node *parse_filter_expr(parser *P, node *n);

static void enter(parser *P) {
    if (++P->depth > MAX_NEST) pfail(P, "%s", "expressions or blocks nested too deeply");
}

/* Call arguments after '(' : positional, then name=value. */
static void parse_args(parser *P, node *call) {
    nvec pos = {0}, kw = {0};
    const char **kwn = NULL;
    int nk = 0;
    expect_op(P, '(');
    while (!is_op(P, ')')) {
        if (pos.n || kw.n) expect_op(P, ',');
        if (is_op(P, ')')) break;
        if (is_op(P, '*') || is_op(P, OP_POW)) pfail(P, "%s", "unsupported: *args / **kwargs in a call");
        if (cur(P)->type == T_NAME && peek(P, 1)->type == T_OP && peek(P, 1)->op == '=') {
            const char *k = cur(P)->s;
            next(P);
            next(P);
            nv_push(P, &kw, parse_expr(P, true));
            kwn = tpl_realloc(P->a, kwn, (size_t)nk * sizeof *kwn, (size_t)(nk + 1) * sizeof *kwn);
            kwn[nk++] = k;
        } else {
            if (kw.n) pfail(P, "%s", "a positional argument follows a keyword argument");
            nv_push(P, &pos, parse_expr(P, true));
        }
    }
    next(P);
    call->xs = pos.v;
    call->nx = pos.n;
    call->kw = kw.v;
    call->kwn = kwn;
    call->nkw = nk;
}

/* A comma list that becomes a tuple; explicit: inside '(' ')'. */
static node *parse_tuple(parser *P, bool with_condexpr, bool explicit_paren, const char *extra_end) {
    int line = cur(P)->line;
    nvec items = {0};
    bool is_tuple = false;
    for (;;) {
        if (items.n) expect_op(P, ',');
        const token *t = cur(P);
        if (t->type == T_VAR_END || t->type == T_BLOCK_END || (t->type == T_OP && t->op == ')') ||
            (extra_end && t->type == T_NAME && !strcmp(t->s, extra_end)))
            break;
        nv_push(P, &items, parse_expr(P, with_condexpr));
        if (is_op(P, ',')) is_tuple = true;
        else break;
    }
    if (!is_tuple) {
        if (items.n) return items.v[0];
        if (!explicit_paren) pfail(P, "expected an expression, got %s", tok_desc(cur(P)));
    }
    node *n = mk(P, N_TUPLE, line);
    n->xs = items.v;
    n->nx = items.n;
    return n;
}

/* A list [a, b, ...] or a dict {k: v, ...} literal (xs holds k, v, k, v, ...),
 * a trailing comma allowed; the current token is its opening bracket. */
static node *parse_display(parser *P, int kind, char close) {
    node *n = mk(P, kind, cur(P)->line);
    next(P);
    nvec xs = {0};
    while (!is_op(P, close)) {
        if (xs.n) expect_op(P, ',');
        if (is_op(P, close)) break;
        nv_push(P, &xs, parse_expr(P, true));
        if (kind == N_DICT) {
            expect_op(P, ':');
            nv_push(P, &xs, parse_expr(P, true));
        }
    }
    next(P);
    n->xs = xs.v;
    n->nx = xs.n;
    return n;
}

static node *parse_primary(parser *P) {
    const token *t = cur(P);
    node *n;
    switch (t->type) {
    case T_NAME:
        n = mk(P, N_CONST, t->line);
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True")) n->val = tv_bool(true);
        else if (!strcmp(t->s, "false") || !strcmp(t->s, "False")) n->val = tv_bool(false);
        else if (!strcmp(t->s, "none") || !strcmp(t->s, "None")) n->val = tv_none();
        else {
            n->kind = N_NAME;
            n->name = t->s;
        }
        next(P);
        return n;
    case T_STRING: { /* adjacent literals concatenate */
        n = mk(P, N_CONST, t->line);
        tpl_buf b = {.a = P->a};
        tb_put(&b, "", 0);
        while (cur(P)->type == T_STRING) {
            tb_put(&b, cur(P)->s, cur(P)->n);
            next(P);
        }
        n->val = tv_strn(b.p, b.n);
        return n;
    }
    case T_INT:
        n = mk(P, N_CONST, t->line);
        n->val = tv_int(t->i);
        next(P);
        return n;
    case T_FLOAT:
        n = mk(P, N_CONST, t->line);
        n->val = tv_float(t->f);
        next(P);
        return n;
    case T_OP:
        if (t->op == '(') {
            next(P);
            n = parse_tuple(P, true, true, NULL);
            expect_op(P, ')');
            return n;
        }
        if (t->op == '[') return parse_display(P, N_LIST, ']');
        if (t->op == '{') return parse_display(P, N_DICT, '}');
        /* fallthrough */
    default: pfail(P, "unexpected %s", tok_desc(t));
    }
}

static node *parse_subscript(parser *P, node *obj) {
    int line = cur(P)->line;
    if (is_op(P, '.')) {
        next(P);
        node *n = mk(P, N_ATTR, line);
        n->a = obj;
        if (cur(P)->type == T_NAME) n->name = cur(P)->s;
        else if (cur(P)->type == T_INT) { /* x.0 is x[0] */
            n->kind = N_ITEM;
            n->b = mk(P, N_CONST, line);
            n->b->val = tv_int(cur(P)->i);
        } else pfail(P, "expected an attribute name after '.', got %s", tok_desc(cur(P)));
        next(P);
        return n;
    }
    next(P); /* '[' */
    node *parts[3] = {0};
    bool slice = false;
    int k = 0;
    for (;;) {
        if (is_op(P, ':')) {
            slice = true;
            if (++k > 2) pfail(P, "%s", "too many ':' in a subscript");
            next(P);
            continue;
        }
        if (is_op(P, ']')) break;
        if (parts[k]) pfail(P, "%s", "expected ':' or ']' in a subscript");
        parts[k] = slice ? parse_expr(P, true) : parse_tuple(P, true, false, NULL);
    }
    next(P);
    node *n = mk(P, slice ? N_SLICE : N_ITEM, line);
    n->a = obj;
    if (slice) n->b = parts[0], n->c = parts[1], n->d = parts[2];
    else if (!parts[0]) pfail(P, "%s", "empty subscript");
    else n->b = parts[0];
    return n;
}

static node *parse_postfix(parser *P, node *n) {
    for (;;) {
        if (is_op(P, '.') || is_op(P, '[')) n = parse_subscript(P, n);
        else if (is_op(P, '(')) {
            node *c = mk(P, N_CALL, cur(P)->line);
            c->a = n;
            parse_args(P, c);
            n = c;
        } else return n;
    }
}

static node *parse_filter_expr(parser *P, node *n) {
    for (;;) {
        if (is_op(P, '|')) {
            next(P);
            node *f = mk(P, N_FILTER, cur(P)->line);
            f->name = expect_name(P);
            f->op = tpl_filter_id(f->name);
            if (f->op < 0) tpl_fail(P->a->err, f->line, "unsupported filter '%s'", f->name);
            f->a = n;
            if (is_op(P, '(')) parse_args(P, f);
            n = f;
        } else if (is_name(P, "is")) {
            next(P);
            node *t = mk(P, N_TEST, cur(P)->line);
            if (is_name(P, "not")) {
                t->op = 1;
                next(P);
            }
            t->name = expect_name(P);
            t->a = n;
            int id = tpl_test_id(t->name);
            if (id < 0) tpl_fail(P->a->err, t->line, "unsupported test '%s'", t->name);
            t->b = (node *)0;
            t->nkw = 0;
            /* the test id rides in val.i; op is the negation */
            t->val = tv_int(id);
            const token *c = cur(P);
            if (is_op(P, '(')) parse_args(P, t);
            else if ((c->type == T_NAME || c->type == T_STRING || c->type == T_INT || c->type == T_FLOAT ||
                      (c->type == T_OP && (c->op == '[' || c->op == '{'))) &&
                     !(c->type == T_NAME && (!strcmp(c->s, "else") || !strcmp(c->s, "or") || !strcmp(c->s, "and") ||
                                             !strcmp(c->s, "is")))) {
                node *arg = parse_postfix(P, parse_primary(P));
                t->xs = tpl_alloc(P->a, sizeof(node *));
                t->xs[0] = arg;
                t->nx = 1;
            }
            n = t;
        } else if (is_op(P, '(')) {
            node *c = mk(P, N_CALL, cur(P)->line);
            c->a = n;
            parse_args(P, c);
            n = c;
        } else return n;
    }
}

static node *parse_unary(parser *P, bool with_filter) {
    int line = cur(P)->line;
    node *n;
    enter(P);
    if (is_op(P, '-') || is_op(P, '+')) {
        n = mk(P, is_op(P, '-') ? N_NEG : N_POS, line);
        next(P);
        n->a = parse_unary(P, false);
    } else {
        n = parse_postfix(P, parse_primary(P));
    }
    if (with_filter) n = parse_filter_expr(P, n);
    P->depth--;
    return n;
}

static node *binop(parser *P, int op, node *a, node *b, int line) {
    node *n = mk(P, N_BINOP, line);
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static node *parse_pow(parser *P) {
    node *n = parse_unary(P, true);
    while (is_op(P, OP_POW)) {
        int line = cur(P)->line;
        next(P);
        n = binop(P, OP_POW, n, parse_unary(P, true), line);
    }
    return n;
}
static node *parse_math2(parser *P) {
    node *n = parse_pow(P);
    while (is_op(P, '*') || is_op(P, '/') || is_op(P, OP_FLOORDIV) || is_op(P, '%')) {
        int op = cur(P)->op, line = cur(P)->line;
        next(P);
        n = binop(P, op, n, parse_pow(P), line);
    }
    return n;
}
static node *parse_concat(parser *P) {
    node *n = parse_math2(P);
    while (is_op(P, '~')) {
        int line = cur(P)->line;
        next(P);
        n = binop(P, '~', n, parse_math2(P), line);
    }
    return n;
}
static node *parse_math1(parser *P) {
    node *n = parse_concat(P);
    while (is_op(P, '+') || is_op(P, '-')) {
        int op = cur(P)->op, line = cur(P)->line;
        next(P);
        n = binop(P, op, n, parse_concat(P), line);
    }
    return n;
}

enum { CMP_IN = 1000, CMP_NOTIN };
static node *parse_compare(parser *P) {
    int line = cur(P)->line;
    node *first = parse_math1(P);
    nvec operands = {0};
    int *ops = NULL, nops = 0;
    for (;;) {
        int op;
        if (is_op(P, OP_EQ) || is_op(P, OP_NE) || is_op(P, '<') || is_op(P, '>') || is_op(P, OP_LE) || is_op(P, OP_GE)) {
            op = cur(P)->op;
            next(P);
        } else if (is_name(P, "in")) {
            op = CMP_IN;
            next(P);
        } else if (is_name(P, "not") && peek(P, 1)->type == T_NAME && !strcmp(peek(P, 1)->s, "in")) {
            op = CMP_NOTIN;
            next(P);
            next(P);
        } else break;
        if (!operands.n) nv_push(P, &operands, first);
        nv_push(P, &operands, parse_math1(P));
        ops = tpl_realloc(P->a, ops, (size_t)nops * sizeof *ops, (size_t)(nops + 1) * sizeof *ops);
        ops[nops++] = op;
    }
    if (!nops) return first;
    node *n = mk(P, N_CMP, line);
    n->xs = operands.v;
    n->nx = operands.n;
    n->ops = ops;
    return n;
}
static node *parse_not(parser *P) {
    if (is_name(P, "not")) {
        node *n = mk(P, N_NOT, cur(P)->line);
        next(P);
        enter(P);
        n->a = parse_not(P);
        P->depth--;
        return n;
    }
    return parse_compare(P);
}
/* a KW b KW c ..., left-associative: nodes of kind over operands parsed by operand */
static node *parse_chain(parser *P, const char *kw, int kind, node *(*operand)(parser *)) {
    node *n = operand(P);
    while (is_name(P, kw)) {
        node *x = mk(P, kind, cur(P)->line);
        next(P);
        x->a = n;
        x->b = operand(P);
        n = x;
    }
    return n;
}
static node *parse_and(parser *P) { return parse_chain(P, "and", N_AND, parse_not); }
static node *parse_or(parser *P) { return parse_chain(P, "or", N_OR, parse_and); }
static node *parse_expr(parser *P, bool with_condexpr) {
    enter(P);
    node *n = parse_or(P);
    if (with_condexpr)
        while (is_name(P, "if")) {
            node *c = mk(P, N_COND, cur(P)->line);
            next(P);
            c->a = parse_or(P); /* condition */
            c->b = n;           /* value if true */
            if (is_name(P, "else")) {
                next(P);
                c->c = parse_expr(P, true);
            }
            n = c;
        }
    P->depth--;
    return n;
}

/* ---- statements -------------------------------------------------------------------- */
static node *parse_body(parser *P, const char *const *ends, const char **which);

/* The rest of a block's opening tag ('%}'), then its body up to the tag end. */
static node *parse_block(parser *P, const char *end) {
    expect_type(P, T_BLOCK_END, "'%}'");
    const char *const ends[] = {end, NULL};
    const char *which;
    return parse_body(P, ends, &which);
}

/* The else branch of an if or for whose body ended at the tag `which`, up to
 * the tag end; NULL when that tag was not else. */
static node *parse_else(parser *P, const char *which, const char *end) {
    return strcmp(which, "else") ? NULL : parse_block(P, end);
}

/* Assignment targets: name, a, b, (a, b); with_attr allows ns.attr (set only). */
static void parse_targets(parser *P, node *st, bool with_attr) {
    bool paren = is_op(P, '(');
    if (paren) next(P);
    const char **names = NULL;
    int n = 0;
    for (;;) {
        const char *nm = expect_name(P);
        if (with_attr && !paren && !n && is_op(P, '.')) {
            next(P);
            st->name = nm; /* namespace variable */
            nm = expect_name(P);
        }
        names = tpl_realloc(P->a, names, (size_t)n * sizeof *names, (size_t)(n + 1) * sizeof *names);
        names[n++] = nm;
        if (st->name) break;
        if (!is_op(P, ',')) break;
        next(P);
        if (paren && is_op(P, ')')) break;
    }
    if (paren) expect_op(P, ')');
    st->names = names;
    st->nnames = n;
    st->op = n > 1 || paren; /* unpack */
}

static node *parse_statement(parser *P) {
    int line = cur(P)->line;
    next(P); /* {% */
    if (cur(P)->type != T_NAME) pfail(P, "expected a tag name, got %s", tok_desc(cur(P)));
    const char *tag = cur(P)->s;
    next(P);
    node *n;
    const char *which;
    if (!strcmp(tag, "if")) {
        n = mk(P, N_IF, line);
        n->a = parse_tuple(P, false, false, NULL);
        expect_type(P, T_BLOCK_END, "'%}'");
        static const char *const ends[] = {"elif", "else", "endif", NULL};
        n->b = parse_body(P, ends, &which);
        node *tail = n;
        while (!strcmp(which, "elif")) {
            node *e = mk(P, N_IF, cur(P)->line);
            e->a = parse_tuple(P, false, false, NULL);
            expect_type(P, T_BLOCK_END, "'%}'");
            e->b = parse_body(P, ends, &which);
            tail->c = e;
            tail = e;
        }
        tail->c = parse_else(P, which, "endif");
        return n;
    } else if (!strcmp(tag, "for")) {
        n = mk(P, N_FOR, line);
        parse_targets(P, n, false);
        if (!is_name(P, "in")) pfail(P, "expected 'in' in a for tag, got %s", tok_desc(cur(P)));
        next(P);
        n->a = parse_tuple(P, false, false, "recursive");
        if (is_name(P, "if")) {
            next(P);
            n->d = parse_expr(P, true);
        }
        if (is_name(P, "recursive")) pfail(P, "%s", "unsupported: recursive for loops");
        expect_type(P, T_BLOCK_END, "'%}'");
        static const char *const ends[] = {"endfor", "else", NULL};
        n->b = parse_body(P, ends, &which);
        n->c = parse_else(P, which, "endfor");
        return n;
    } else if (!strcmp(tag, "set")) {
        n = mk(P, N_SET, line);
        parse_targets(P, n, true);
        if (is_op(P, '=')) {
            next(P);
            n->a = parse_tuple(P, true, false, NULL);
        } else {
            if (n->op || n->name) pfail(P, "%s", "a block set assigns one plain name");
            n->kind = N_SET_BLOCK;
            if (is_op(P, '|')) { /* {% set x | filter %} */
                node *ph = mk(P, N_CONST, line);
                n->c = parse_filter_expr(P, ph);
                n->d = ph;
            }
            n->b = parse_block(P, "endset");
            return n;
        }
    } else if (!strcmp(tag, "macro")) {
        n = mk(P, N_MACRO, line);
        n->name = expect_name(P);
        expect_op(P, '(');
        nvec defaults = {0};
        const char **names = NULL;
        int k = 0;
        while (!is_op(P, ')')) {
            if (k) expect_op(P, ',');
            if (is_op(P, ')')) break;
            names = tpl_realloc(P->a, names, (size_t)k * sizeof *names, (size_t)(k + 1) * sizeof *names);
            names[k] = expect_name(P);
            node *def = NULL;
            if (is_op(P, '=')) {
                next(P);
                def = parse_expr(P, true);
            } else if (defaults.n && defaults.v[defaults.n - 1]) pfail(P, "%s", "a macro parameter without a default follows one with a default");
            nv_push(P, &defaults, def);
            k++;
        }
        next(P);
        n->names = names;
        n->nnames = k;
        n->xs = defaults.v;
        n->nx = defaults.n;
        n->b = parse_block(P, "endmacro");
        return n;
    } else if (!strcmp(tag, "break") || !strcmp(tag, "continue")) {
        n = mk(P, tag[0] == 'b' ? N_BREAK : N_CONTINUE, line);
    } else if (!strcmp(tag, "generation")) { /* transformers' AssistantTracker: renders its body */
        return parse_block(P, "endgeneration");
    } else if (!strcmp(tag, "filter")) {
        n = mk(P, N_FILTER_BLOCK, line);
        node *ph = mk(P, N_CONST, line);
        node *f = mk(P, N_FILTER, line);
        f->name = expect_name(P);
        f->op = tpl_filter_id(f->name);
        if (f->op < 0) tpl_fail(P->a->err, line, "unsupported filter '%s'", f->name);
        f->a = ph;
        if (is_op(P, '(')) parse_args(P, f);
        n->c = parse_filter_expr(P, f);
        n->d = ph;
        n->b = parse_block(P, "endfilter");
        return n;
    } else {
        static const char *const known[] = {"include", "extends", "block", "import", "from", "call", "with",
                                            "raw", "autoescape", "trans", "do", NULL};
        for (int k = 0; known[k]; k++)
            if (!strcmp(tag, known[k])) tpl_fail(P->a->err, line, "unsupported tag '%s'", tag);
        tpl_fail(P->a->err, line, "unknown tag '%s'", tag);
    }
    expect_type(P, T_BLOCK_END, "'%}'");
    return n;
}

/* Statements until a block tag named in ends (which is then consumed up to
 * its name; *which says which one). ends NULL: until the end of the template. */
static node *parse_body(parser *P, const char *const *ends, const char **which) {
    int line = cur(P)->line;
    enter(P);
    nvec items = {0};
    for (;;) {
        const token *t = cur(P);
        if (t->type == T_EOF) {
            if (ends) tpl_fail(P->a->err, t->line, "unexpected end of template: expected '%s'", ends[0]);
            break;
        }
        if (t->type == T_DATA) {
            node *x = mk(P, N_TEXT, t->line);
            x->val = tv_strn(t->s, t->n);
            nv_push(P, &items, x);
            next(P);
        } else if (t->type == T_VAR_BEGIN) {
            node *x = mk(P, N_PRINT, t->line);
            next(P);
            x->a = parse_tuple(P, true, false, NULL);
            expect_type(P, T_VAR_END, "'}}'");
            nv_push(P, &items, x);
        } else if (t->type == T_BLOCK_BEGIN) {
            const token *nm = peek(P, 1);
            if (nm->type == T_NAME && ends) {
                bool hit = false;
                for (int k = 0; ends[k]; k++)
                    if (!strcmp(nm->s, ends[k])) {
                        *which = ends[k];
                        hit = true;
                    }
                if (hit) {
                    next(P);
                    next(P);
                    if (!strcmp(*which, "endif") || !strcmp(*which, "endfor") || !strcmp(*which, "endset") ||
                        !strcmp(*which, "endmacro") || !strcmp(*which, "endgeneration") || !strcmp(*which, "endfilter")) {
                        if (cur(P)->type == T_NAME && !strcmp(*which, "endmacro")) next(P); /* {% endmacro name %} */
                        expect_type(P, T_BLOCK_END, "'%}'");
                    }
                    break;
                }
            }
            if (nm->type == T_NAME && (!strncmp(nm->s, "end", 3) || !strcmp(nm->s, "elif") || !strcmp(nm->s, "else")))
                tpl_fail(P->a->err, nm->line, "unexpected '%s'%s", nm->s, ends ? "" : " outside a block");
            nv_push(P, &items, parse_statement(P));
        } else {
            pfail(P, "unexpected %s", tok_desc(t));
        }
    }
    P->depth--;
    node *b = mk(P, N_BODY, line);
    b->xs = items.v;
    b->nx = items.n;
    return b;
}

node *tpl_parse_tokens(tpl_arena *a, const token *toks, size_t ntok) {
    parser P = {a, toks, 0, ntok, 0};
    return parse_body(&P, NULL, NULL);
}
