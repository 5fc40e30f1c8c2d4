/* onnx_graph.c — builds ONNX GraphProto/ModelProto messages with the
 * protobuf-c bindings generated from the official onnx.proto, and packs the
 * model straight into a FILE through a ProtobufCBuffer (no second copy of a
 * large .onnx in memory). All message memory lives in one arena. */
#include "onnx/onnx_graph.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

/* Arena: every allocation is recorded and freed together. */
struct phiq_og_arena {
    void **ptrs;
    size_t n, cap;
};

static void *og_track(phiq_og *g, void *p) {
    phiq_og_arena *a = g->arena;
    if (!p) {
        g->oom = 1;
        return NULL;
    }
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 256;
        void **np = realloc(a->ptrs, nc * sizeof *np);
        if (!np) {
            free(p);
            g->oom = 1;
            return NULL;
        }
        a->ptrs = np;
        a->cap = nc;
    }
    a->ptrs[a->n++] = p;
    return p;
}

static void *og_alloc(phiq_og *g, size_t n) { return og_track(g, calloc(1, n ? n : 1)); }

/* Grows a tracked array of pointers: the old block stays in the arena (freed
 * at the end); simpler than untracking, and graphs are small. */
static void **og_grow(phiq_og *g, void **arr, size_t n, size_t *cap) {
    if (n < *cap) return arr;
    size_t nc = *cap ? *cap * 2 : 64;
    void **np = og_alloc(g, nc * sizeof *np);
    if (!np) return NULL;
    if (arr) memcpy(np, arr, n * sizeof *np);
    *cap = nc;
    return np;
}

char *phiq_og_strdup(phiq_og *g, const char *s) {
    size_t n = strlen(s);
    char *d = og_alloc(g, n + 1);
    if (d) memcpy(d, s, n + 1);
    return d ? d : (char *)"";
}

char *phiq_og_printf(phiq_og *g, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return phiq_og_strdup(g, buf);
}

int phiq_og_init(phiq_og *g, const char *graph_name, const char *data_file) {
    memset(g, 0, sizeof *g);
    g->arena = calloc(1, sizeof *g->arena);
    if (!g->arena) return phiq_fail(PHIQ_ENOMEM, "out of memory building the ONNX graph");
    g->graph = og_alloc(g, sizeof *g->graph);
    if (!g->graph) {
        phiq_og_free(g);
        return phiq_fail(PHIQ_ENOMEM, "out of memory building the ONNX graph");
    }
    onnx__graph_proto__init(g->graph);
    g->graph->name = phiq_og_strdup(g, graph_name);
    g->data_file = data_file ? phiq_og_strdup(g, data_file) : NULL;
    return 0;
}

int phiq_og_init_sub(phiq_og *sub, phiq_og *parent, const char *graph_name) {
    memset(sub, 0, sizeof *sub);
    sub->arena = parent->arena;
    sub->data_file = parent->data_file;
    sub->graph = og_alloc(parent, sizeof *sub->graph);
    if (!sub->graph) return phiq_fail(PHIQ_ENOMEM, "out of memory building the ONNX graph");
    onnx__graph_proto__init(sub->graph);
    sub->graph->name = phiq_og_strdup(parent, graph_name);
    return 0;
}

void phiq_og_free(phiq_og *g) {
    if (!g->arena) return;
    for (size_t i = 0; i < g->arena->n; i++) free(g->arena->ptrs[i]);
    free(g->arena->ptrs);
    free(g->arena);
    memset(g, 0, sizeof *g);
}

static char **og_strlist(phiq_og *g, const char *const *list, size_t *n) {
    size_t c = 0;
    while (list && list[c]) c++;
    char **out = og_alloc(g, (c ? c : 1) * sizeof *out);
    if (!out) {
        *n = 0;
        return NULL;
    }
    for (size_t i = 0; i < c; i++) out[i] = phiq_og_strdup(g, list[i]);
    *n = c;
    return out;
}

Onnx__NodeProto *phiq_og_node(phiq_og *g, const char *op, const char *domain, const char *name,
                              const char *const *inputs, const char *const *outputs) {
    Onnx__NodeProto *n = og_alloc(g, sizeof *n);
    if (!n) return NULL;
    onnx__node_proto__init(n);
    n->op_type = phiq_og_strdup(g, op);
    if (domain && *domain) n->domain = phiq_og_strdup(g, domain);
    n->name = phiq_og_strdup(g, name);
    n->input = og_strlist(g, inputs, &n->n_input);
    n->output = og_strlist(g, outputs, &n->n_output);
    Onnx__GraphProto *gp = g->graph;
    void **arr = og_grow(g, (void **)gp->node, gp->n_node, &g->cap_node);
    if (!arr) return NULL;
    gp->node = (Onnx__NodeProto **)arr;
    gp->node[gp->n_node++] = n;
    return n;
}

static Onnx__AttributeProto *og_attr(phiq_og *g, Onnx__NodeProto *n, const char *name, int type) {
    if (!n) return NULL;
    Onnx__AttributeProto *a = og_alloc(g, sizeof *a);
    Onnx__AttributeProto **arr = og_alloc(g, (n->n_attribute + 1) * sizeof *arr);
    if (!a || !arr) return NULL;
    onnx__attribute_proto__init(a);
    a->name = phiq_og_strdup(g, name);
    a->has_type = 1;
    a->type = type;
    if (n->n_attribute) memcpy(arr, n->attribute, n->n_attribute * sizeof *arr);
    arr[n->n_attribute++] = a;
    n->attribute = arr;
    return a;
}

void phiq_og_attr_i(phiq_og *g, Onnx__NodeProto *n, const char *name, int64_t v) {
    Onnx__AttributeProto *a = og_attr(g, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) a->has_i = 1, a->i = v;
}

void phiq_og_attr_f(phiq_og *g, Onnx__NodeProto *n, const char *name, float v) {
    Onnx__AttributeProto *a = og_attr(g, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) a->has_f = 1, a->f = v;
}

void phiq_og_attr_ints(phiq_og *g, Onnx__NodeProto *n, const char *name, const int64_t *v, int count) {
    Onnx__AttributeProto *a = og_attr(g, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    if (!a) return;
    a->ints = og_alloc(g, (size_t)(count ? count : 1) * sizeof *a->ints);
    if (!a->ints) return;
    memcpy(a->ints, v, (size_t)count * sizeof *v);
    a->n_ints = (size_t)count;
}

void phiq_og_attr_graph(phiq_og *g, Onnx__NodeProto *n, const char *name, Onnx__GraphProto *sub) {
    Onnx__AttributeProto *a = og_attr(g, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
    if (a) a->g = sub;
}

void phiq_og_attr_tensor(phiq_og *g, Onnx__NodeProto *n, const char *name, Onnx__TensorProto *t) {
    Onnx__AttributeProto *a = og_attr(g, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    if (a) a->t = t;
}

static Onnx__TensorProto *og_tensor(phiq_og *g, const char *name, int dtype, const int64_t *dims, int ndim) {
    Onnx__TensorProto *t = og_alloc(g, sizeof *t);
    if (!t) return NULL;
    onnx__tensor_proto__init(t);
    t->name = phiq_og_strdup(g, name);
    t->has_data_type = 1;
    t->data_type = dtype;
    t->dims = og_alloc(g, (size_t)(ndim ? ndim : 1) * sizeof *t->dims);
    if (!t->dims) return NULL;
    if (ndim) memcpy(t->dims, dims, (size_t)ndim * sizeof *dims);
    t->n_dims = (size_t)ndim;
    return t;
}

Onnx__TensorProto *phiq_og_tensor_raw(phiq_og *g, const char *name, int dtype, const int64_t *dims, int ndim,
                                      const void *data, size_t nbytes) {
    Onnx__TensorProto *t = og_tensor(g, name, dtype, dims, ndim);
    if (!t) return NULL;
    uint8_t *copy = og_alloc(g, nbytes);
    if (!copy) return NULL;
    memcpy(copy, data, nbytes);
    t->has_raw_data = 1;
    t->raw_data.data = copy;
    t->raw_data.len = nbytes;
    return t;
}

static void og_add_init(phiq_og *g, Onnx__TensorProto *t) {
    if (!t) return;
    Onnx__GraphProto *gp = g->graph;
    void **arr = og_grow(g, (void **)gp->initializer, gp->n_initializer, &g->cap_init);
    if (!arr) return;
    gp->initializer = (Onnx__TensorProto **)arr;
    gp->initializer[gp->n_initializer++] = t;
}

static Onnx__StringStringEntryProto *og_kv(phiq_og *g, const char *k, const char *v) {
    Onnx__StringStringEntryProto *e = og_alloc(g, sizeof *e);
    if (!e) return NULL;
    onnx__string_string_entry_proto__init(e);
    e->key = phiq_og_strdup(g, k);
    e->value = phiq_og_strdup(g, v);
    return e;
}

void phiq_og_init_external(phiq_og *g, const char *name, int dtype, const int64_t *dims, int ndim, uint64_t offset,
                           uint64_t length) {
    Onnx__TensorProto *t = og_tensor(g, name, dtype, dims, ndim);
    if (!t) return;
    char off[32], len[32];
    snprintf(off, sizeof off, "%llu", (unsigned long long)offset);
    snprintf(len, sizeof len, "%llu", (unsigned long long)length);
    t->external_data = og_alloc(g, 3 * sizeof *t->external_data);
    if (!t->external_data) return;
    t->external_data[0] = og_kv(g, "location", g->data_file ? g->data_file : "");
    t->external_data[1] = og_kv(g, "offset", off);
    t->external_data[2] = og_kv(g, "length", len);
    if (!t->external_data[0] || !t->external_data[1] || !t->external_data[2]) return;
    t->n_external_data = 3;
    t->has_data_location = 1;
    t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    og_add_init(g, t);
}

void phiq_og_init_inline(phiq_og *g, const char *name, int dtype, const int64_t *dims, int ndim, const void *data,
                         size_t nbytes) {
    og_add_init(g, phiq_og_tensor_raw(g, name, dtype, dims, ndim, data, nbytes));
}

void phiq_og_constant(phiq_og *g, const char *name, int dtype, const int64_t *dims, int ndim, const void *data,
                      size_t nbytes) {
    const char *outs[] = {name, NULL};
    char nodename[300];
    snprintf(nodename, sizeof nodename, "%s/Constant", name);
    Onnx__NodeProto *n = phiq_og_node(g, "Constant", "", nodename, NULL, outs);
    phiq_og_attr_tensor(g, n, "value", phiq_og_tensor_raw(g, name, dtype, dims, ndim, data, nbytes));
}

static Onnx__ValueInfoProto *og_value_info(phiq_og *g, const char *name, int dtype, int ndim,
                                           const char *const *sym, const int64_t *val) {
    Onnx__ValueInfoProto *vi = og_alloc(g, sizeof *vi);
    Onnx__TypeProto *tp = og_alloc(g, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = og_alloc(g, sizeof *tt);
    Onnx__TensorShapeProto *sh = og_alloc(g, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dims = og_alloc(g, (size_t)(ndim ? ndim : 1) * sizeof *dims);
    if (!vi || !tp || !tt || !sh || !dims) return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int i = 0; i < ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = og_alloc(g, sizeof *d);
        if (!d) return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (sym && sym[i]) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = phiq_og_strdup(g, sym[i]);
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = val ? val[i] : 0;
        }
        dims[i] = d;
    }
    sh->dim = dims;
    sh->n_dim = (size_t)ndim;
    tt->has_elem_type = 1;
    tt->elem_type = dtype;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->name = phiq_og_strdup(g, name);
    vi->type = tp;
    return vi;
}

/* Appends vi to a graph's input or output list (*arr, *n, capacity *cap). */
static void og_add_value(phiq_og *g, Onnx__ValueInfoProto *vi, Onnx__ValueInfoProto ***arr, size_t *n, size_t *cap) {
    if (!vi) return;
    void **grown = og_grow(g, (void **)*arr, *n, cap);
    if (!grown) return;
    *arr = (Onnx__ValueInfoProto **)grown;
    (*arr)[(*n)++] = vi;
}

void phiq_og_input(phiq_og *g, const char *name, int dtype, int ndim, const char *const *sym, const int64_t *val) {
    Onnx__GraphProto *gp = g->graph;
    og_add_value(g, og_value_info(g, name, dtype, ndim, sym, val), &gp->input, &gp->n_input, &g->cap_in);
}

void phiq_og_output(phiq_og *g, const char *name, int dtype, int ndim, const char *const *sym, const int64_t *val) {
    Onnx__GraphProto *gp = g->graph;
    og_add_value(g, og_value_info(g, name, dtype, ndim, sym, val), &gp->output, &gp->n_output, &g->cap_out);
}

/* A ProtobufCBuffer that appends to a FILE, remembering the first error. */
typedef struct og_filebuf {
    ProtobufCBuffer base;
    FILE *f;
    int err;
} og_filebuf;

static void og_filebuf_append(ProtobufCBuffer *b, size_t len, const uint8_t *data) {
    og_filebuf *fb = (og_filebuf *)b;
    if (!fb->err && len && fwrite(data, 1, len, fb->f) != len) fb->err = 1;
}

int phiq_og_write_model(phiq_og *g, FILE *f, int64_t ir_version, int64_t opset_onnx, int64_t opset_ms,
                        const char *producer, const char *path_for_errors) {
    if (g->oom) return phiq_fail(PHIQ_ENOMEM, "%s: out of memory building the ONNX graph", path_for_errors);
    Onnx__ModelProto m;
    onnx__model_proto__init(&m);
    Onnx__OperatorSetIdProto o1, o2, *ops[2] = {&o1, &o2};
    onnx__operator_set_id_proto__init(&o1);
    onnx__operator_set_id_proto__init(&o2);
    o1.domain = (char *)"";
    o1.has_version = 1;
    o1.version = opset_onnx;
    o2.domain = (char *)"com.microsoft";
    o2.has_version = 1;
    o2.version = opset_ms;
    m.has_ir_version = 1;
    m.ir_version = ir_version;
    m.opset_import = ops;
    m.n_opset_import = 2;
    m.producer_name = (char *)producer;
    m.graph = g->graph;
    og_filebuf fb = {.base = {og_filebuf_append}, .f = f, .err = 0};
    protobuf_c_message_pack_to_buffer(&m.base, &fb.base);
    if (fb.err) return phiq_fail(PHIQ_EIO, "%s: write failed", path_for_errors);
    return 0;
}
