/* onnx_graph.h — a small builder over the protobuf-c structs generated from
 * the official onnx.proto: nodes with attributes, graph inputs/outputs,
 * initializers stored in the external data file (by offset) or inline, and
 * serialization of the ModelProto straight to a FILE. Every allocation comes
 * from one arena released by phiq_og_free. */
#ifndef PHIQ_ONNX_GRAPH_H
#define PHIQ_ONNX_GRAPH_H

#include <stdint.h>
#include <stdio.h>

#include "onnx.pb-c.h"

/* ONNX TensorProto.DataType values used here. */
enum {
    PHIQ_OG_FLOAT = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
    PHIQ_OG_UINT8 = ONNX__TENSOR_PROTO__DATA_TYPE__UINT8,
    PHIQ_OG_INT32 = ONNX__TENSOR_PROTO__DATA_TYPE__INT32,
    PHIQ_OG_INT64 = ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
    PHIQ_OG_BOOL = ONNX__TENSOR_PROTO__DATA_TYPE__BOOL,
    PHIQ_OG_FLOAT16 = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16,
};

typedef struct phiq_og_arena phiq_og_arena;

/* A growable graph: arrays are reallocated (arena keeps the final ones). */
typedef struct phiq_og {
    phiq_og_arena *arena;
    Onnx__GraphProto *graph;
    size_t cap_node, cap_init, cap_in, cap_out;
    const char *data_file; /* location written into external_data */
    int oom;               /* set on allocation failure; checked at the end */
} phiq_og;

int phiq_og_init(phiq_og *g, const char *graph_name, const char *data_file);
/* A sub-graph (If branch) sharing the parent's arena. */
int phiq_og_init_sub(phiq_og *sub, phiq_og *parent, const char *graph_name);
void phiq_og_free(phiq_og *g); /* frees the arena (only on the root graph) */

char *phiq_og_strdup(phiq_og *g, const char *s);
char *phiq_og_printf(phiq_og *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Adds a node; inputs/outputs are NULL-terminated lists ("" = absent). */
Onnx__NodeProto *phiq_og_node(phiq_og *g, const char *op, const char *domain, const char *name,
                              const char *const *inputs, const char *const *outputs);
void phiq_og_attr_i(phiq_og *g, Onnx__NodeProto *n, const char *name, int64_t v);
void phiq_og_attr_f(phiq_og *g, Onnx__NodeProto *n, const char *name, float v);
void phiq_og_attr_ints(phiq_og *g, Onnx__NodeProto *n, const char *name, const int64_t *v, int count);
void phiq_og_attr_graph(phiq_og *g, Onnx__NodeProto *n, const char *name, Onnx__GraphProto *sub);
void phiq_og_attr_tensor(phiq_og *g, Onnx__NodeProto *n, const char *name, Onnx__TensorProto *t);

/* Tensor descriptions. dims: ndim values. */
Onnx__TensorProto *phiq_og_tensor_raw(phiq_og *g, const char *name, int dtype, const int64_t *dims, int ndim,
                                      const void *data, size_t nbytes);
/* Initializer whose bytes are at [offset, offset+length) of the data file. */
void phiq_og_init_external(phiq_og *g, const char *name, int dtype, const int64_t *dims, int ndim, uint64_t offset,
                           uint64_t length);
/* Small inline initializer (copied). */
void phiq_og_init_inline(phiq_og *g, const char *name, int dtype, const int64_t *dims, int ndim, const void *data,
                         size_t nbytes);
/* A Constant node producing `name` from an inline tensor (copied). */
void phiq_og_constant(phiq_og *g, const char *name, int dtype, const int64_t *dims, int ndim, const void *data,
                      size_t nbytes);

/* Graph input/output with ndim dimensions, each a symbolic name (sym[i] !=
 * NULL) or a fixed value (val[i]); sym or val may be NULL. */
void phiq_og_input(phiq_og *g, const char *name, int dtype, int ndim, const char *const *sym, const int64_t *val);
void phiq_og_output(phiq_og *g, const char *name, int dtype, int ndim, const char *const *sym, const int64_t *val);

/* Serializes a model (ir_version, opsets "" and com.microsoft) to f. */
int phiq_og_write_model(phiq_og *g, FILE *f, int64_t ir_version, int64_t opset_onnx, int64_t opset_ms,
                        const char *producer, const char *path_for_errors);

#endif
