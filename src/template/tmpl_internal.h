/* tmpl_internal.h — what the files of src/template share: the arena, the
 * value model (Python's types as jinja2 sees them), the tokens of the lexer,
 * the syntax tree of the parser and the render state of the evaluator.
 *
 * Errors unwind with longjmp to the entry point (parse or render), which
 * frees the arena: everything a parse or a render allocates lives in one
 * arena, so an error in the middle leaks nothing. */
#ifndef PHIQ_TEMPLATE_INTERNAL_H
#define PHIQ_TEMPLATE_INTERNAL_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "template/template.h"

/* ---- errors ------------------------------------------------------------------------ */
typedef struct tpl_err {
    jmp_buf jb;
    char msg[480];
    int line;
} tpl_err;
_Noreturn void tpl_fail(tpl_err *e, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- arena ------------------------------------------------------------------------- */
typedef struct tpl_arena {
    struct achunk *chunks;  /* bump-allocated small blocks */
    struct abig *bigs;      /* blocks of >= 16 KiB, malloc'd one by one so they can grow in place */
    size_t used, cap;       /* bytes allocated, limit */
    tpl_err *err;
} tpl_arena;
void *tpl_alloc(tpl_arena *a, size_t n);                       /* zeroed; fails through a->err */
void *tpl_realloc(tpl_arena *a, void *p, size_t old, size_t n); /* contents kept, new bytes zeroed */
char *tpl_strndup(tpl_arena *a, const char *s, size_t n);
void tpl_arena_free(tpl_arena *a);

/* A growing byte string in the arena. */
typedef struct tpl_buf {
    char *p;
    size_t n, cap, max; /* max: limit on n (0 = none), exceeding it fails */
    tpl_arena *a;
} tpl_buf;
void tb_put(tpl_buf *b, const char *s, size_t n);
void tb_puts(tpl_buf *b, const char *s);
void tb_putc(tpl_buf *b, char c);
/* Code point u (at most 0x10FFFF) as UTF-8. */
void tb_put_utf8(tpl_buf *b, unsigned u);

/* ---- values ------------------------------------------------------------------------ */
typedef enum {
    V_UNDEF, /* jinja2's Undefined: s holds the name for messages */
    V_NONE,
    V_BOOL,
    V_INT,
    V_FLOAT,
    V_STR,
    V_LIST,
    V_TUPLE, /* a list that prints as (a, b) */
    V_DICT,
    V_NS,    /* namespace(): a dict whose attributes `set ns.x = ...` may assign */
    V_LOOP,  /* the `loop` variable of a for */
    V_FUNC,  /* a global function (range, namespace, ...) */
    V_MACRO,
} tv_type;

typedef struct tv {
    unsigned char t;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        struct tlist *l;
        struct tdict *d;
        struct tloop *loop;
        int fn;
        const struct node *macro;
    };
} tv;

typedef struct tlist {
    tv *v;
    size_t n, cap;
} tlist;
typedef struct tdict { /* insertion-ordered, as Python dicts are */
    tv *k, *v;
    size_t n, cap;
} tdict;
typedef struct tloop {
    tlist *items;
    size_t i;
} tloop;

static inline tv tv_undef(const char *name) { tv r = {.t = V_UNDEF}; r.s.p = name; r.s.n = 0; return r; }
static inline tv tv_none(void) { return (tv){.t = V_NONE}; }
static inline tv tv_bool(bool b) { tv r = {.t = V_BOOL}; r.b = b; return r; }
static inline tv tv_int(int64_t i) { tv r = {.t = V_INT}; r.i = i; return r; }
static inline tv tv_float(double f) { tv r = {.t = V_FLOAT}; r.f = f; return r; }
static inline tv tv_strn(const char *p, size_t n) { tv r = {.t = V_STR}; r.s.p = p; r.s.n = n; return r; }
tv tv_str_copy(tpl_arena *a, const char *p, size_t n);
tv tv_new_list(tpl_arena *a, tv_type t, size_t cap); /* V_LIST or V_TUPLE */
tv tv_new_dict(tpl_arena *a, tv_type t);             /* V_DICT or V_NS */
void tl_push(tpl_arena *a, tlist *l, tv v);
void td_set(tpl_arena *a, tdict *d, tv k, tv v);      /* replaces in place, else appends */
bool td_get(const tdict *d, tv k, tv *out);
bool td_get_str(const tdict *d, const char *key, tv *out);

const char *tv_type_name(const tv *v); /* Python's: 'str', 'dict', ... */
bool tv_truthy(const tv *v);
bool tv_eq(const tv *a, const tv *b);
/* <0, 0, >0 for orderable pairs (numbers, strings, lists); fails otherwise. */
int tv_cmp(tpl_err *e, int line, const tv *a, const tv *b);
bool tv_is_num(const tv *v); /* bool, int, float */
double tv_num(const tv *v);

/* str(v) appended to b (Undefined prints as nothing, as jinja2 prints it). */
void tv_write_str(tpl_buf *b, const tv *v);
/* repr(v) (how Python prints a string inside a list). */
void tv_write_repr(tpl_buf *b, const tv *v);
/* str(v) as a value (no copy for strings). */
tv tv_to_str(tpl_arena *a, const tv *v);
/* json.dumps(v, ensure_ascii=False, indent=indent (<0: None), sort_keys=sort)
 * with the separators json.dumps picks; fails on values JSON cannot hold. */
void tv_write_json(tpl_err *e, int line, tpl_buf *b, const tv *v, int indent, bool sort_keys, int depth);
void tv_write_float(tpl_buf *b, double f); /* float.__repr__ */

/* Parses JSON text into values (ints stay V_INT unless they overflow). */
tv tv_from_json(tpl_arena *a, const char *s, size_t n);

/* UTF-8: number of code points, and the byte offset of code point i. */
size_t u8_len(const char *s, size_t n);
size_t u8_offset(const char *s, size_t n, size_t i);

/* ---- tokens ------------------------------------------------------------------------ */
typedef enum {
    T_EOF,
    T_DATA,        /* template text, whitespace control already applied */
    T_VAR_BEGIN,   /* {{ */
    T_VAR_END,     /* }} */
    T_BLOCK_BEGIN, /* {% */
    T_BLOCK_END,   /* %} */
    T_NAME,
    T_STRING,      /* unescaped text in s/n */
    T_INT,
    T_FLOAT,
    T_OP,          /* op holds one of the operator codes below */
} tok_type;
enum { /* operators: one or two characters packed */
    OP_ADD = '+', OP_SUB = '-', OP_MUL = '*', OP_DIV = '/', OP_MOD = '%', OP_TILDE = '~',
    OP_LT = '<', OP_GT = '>', OP_ASSIGN = '=', OP_LPAREN = '(', OP_RPAREN = ')', OP_LBRACKET = '[',
    OP_RBRACKET = ']', OP_LBRACE = '{', OP_RBRACE = '}', OP_COMMA = ',', OP_DOT = '.', OP_COLON = ':',
    OP_PIPE = '|',
    OP_FLOORDIV = 256, OP_POW, OP_EQ, OP_NE, OP_LE, OP_GE,
};
typedef struct token {
    unsigned char type;
    int op;
    int line;
    const char *s; /* name / string / data text (not NUL-terminated for data) */
    size_t n;
    int64_t i;
    double f;
} token;
/* Tokenizes src with transformers' whitespace settings; tokens live in a. */
token *tpl_lex(tpl_arena *a, const char *src, size_t len, size_t *ntok);

/* ---- syntax tree ------------------------------------------------------------------- */
typedef enum {
    /* expressions */
    N_CONST, N_NAME, N_ATTR, N_ITEM, N_SLICE, N_CALL, N_FILTER, N_TEST, N_NEG, N_POS, N_NOT,
    N_BINOP, N_AND, N_OR, N_CMP, N_COND, N_LIST, N_TUPLE, N_DICT,
    /* statements */
    N_BODY, N_TEXT, N_PRINT, N_IF, N_FOR, N_SET, N_SET_BLOCK, N_MACRO, N_BREAK, N_CONTINUE, N_FILTER_BLOCK,
} node_kind;

typedef struct node {
    int kind, line, op; /* op: operator, filter/test id, negated test, ... */
    struct node *a, *b, *c, *d;
    struct node **xs; /* items, positional args, statements, compare operands */
    int nx;
    struct node **kw; /* keyword argument values */
    const char **kwn; /* and their names */
    int nkw;
    const char *name; /* NUL-terminated: variable, attribute, filter, macro */
    const char **names; /* for/set targets, macro parameters */
    int nnames;
    int *ops;         /* N_CMP: the operator between xs[k] and xs[k+1] */
    tv val;           /* N_CONST */
} node;

node *tpl_parse_tokens(tpl_arena *a, const token *toks, size_t ntok);

struct phiq_tmpl {
    tpl_arena arena;
    tpl_err err;
    node *root;
};

/* ---- filters, tests, methods (filters.c) ------------------------------------------ */
typedef struct tpl_render tpl_render;
int tpl_filter_id(const char *name); /* -1 if jinja2 has no such filter here */
int tpl_test_id(const char *name);
typedef struct tpl_args { /* evaluated call arguments */
    tv *pos;
    int npos;
    tv *kw;
    const char **kwn;
    int nkw;
} tpl_args;
tv tpl_apply_filter(tpl_render *r, int line, int id, tv v, const tpl_args *args);
bool tpl_apply_test(tpl_render *r, int line, int id, tv v, const tpl_args *args);
/* obj.name(args) for str/dict/list; *found = false when the type has no such method. */
tv tpl_call_method(tpl_render *r, int line, tv obj, const char *name, const tpl_args *args, bool *found);

/* ---- render state (eval.c) --------------------------------------------------------- */
typedef struct tpl_frame {
    struct tpl_frame *parent;
    tdict vars;
} tpl_frame;

struct tpl_render {
    tpl_arena a;
    tpl_err err;
    tdict *globals;
    tpl_frame *scope, *root;
    long steps, max_steps;
    int depth;
    int loopctl; /* 1 break, 2 continue pending */
    const struct node *ph; /* {% set x | f %} / {% filter f %}: the node standing for the captured text */
    tv ph_val;
};
void tpl_step(tpl_render *r, int line);                  /* counts against max_steps */
tv tpl_getattr(tpl_render *r, int line, tv obj, tv key, bool by_item);
/* Iterates v as a for loop would: a list of values (keys for dicts, characters for strings). */
tlist *tpl_iter(tpl_render *r, int line, tv v);
tv tpl_call_value(tpl_render *r, int line, tv callee, const tpl_args *args); /* functions and macros */
const tv *tpl_arg(const tpl_args *a, int pos, const char *kw); /* positional or keyword, NULL if absent */

#endif
