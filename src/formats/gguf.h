/* gguf.h — GGUF v3 reader and streaming writer (byte layout in docs/FORMATS.md).
 *
 * Reader: the file is memory-mapped and validated completely at open —
 * magic, version 2..3, counts, every string and array length against the
 * file size, key uniqueness, value types, tensor names (unique, < 64 bytes),
 * n_dims <= 4, ne >= 0, ne0 a multiple of the block size, overflow-free byte
 * sizes, offsets exactly sequential as llama.cpp requires, and the data of
 * every tensor inside the file. After a successful open, every accessor is
 * safe on untrusted input.
 *
 * Writer: metadata and tensor infos are collected first; phiq_gguf_writer_write
 * then streams the header and asks a callback for each tensor's bytes in turn
 * (one buffer, sized to the largest tensor), so peak memory is about one
 * tensor. It writes to a temporary file beside the target, fsyncs, and renames
 * only on success.
 */
#ifndef PHIQ_FORMATS_GGUF_H
#define PHIQ_FORMATS_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/ggml_type.h"

#define PHIQ_GGUF_DEFAULT_ALIGNMENT 32
#define PHIQ_GGUF_MAX_NAME 64 /* tensor names are shorter than this */

typedef enum phiq_gguf_vtype {
    PHIQ_GGUF_UINT8 = 0,
    PHIQ_GGUF_INT8 = 1,
    PHIQ_GGUF_UINT16 = 2,
    PHIQ_GGUF_INT16 = 3,
    PHIQ_GGUF_UINT32 = 4,
    PHIQ_GGUF_INT32 = 5,
    PHIQ_GGUF_FLOAT32 = 6,
    PHIQ_GGUF_BOOL = 7,
    PHIQ_GGUF_STRING = 8,
    PHIQ_GGUF_ARRAY = 9,
    PHIQ_GGUF_UINT64 = 10,
    PHIQ_GGUF_INT64 = 11,
    PHIQ_GGUF_FLOAT64 = 12,
    PHIQ_GGUF_VTYPE_COUNT = 13,
} phiq_gguf_vtype;

/* Payload size of a scalar value type (0 for STRING/ARRAY/invalid). */
size_t phiq_gguf_vtype_size(int vtype);
const char *phiq_gguf_vtype_name(int vtype);

/* ---- reader -------------------------------------------------------------- */
typedef struct phiq_gguf phiq_gguf;

typedef struct phiq_gguf_tensor {
    const char *name;     /* NUL-terminated copy */
    int type;             /* phiq_ggml_type */
    int n_dims;           /* 1..4 */
    int64_t ne[4];        /* ne[0] innermost (row length); unused dims are 1 */
    uint64_t offset;      /* relative to the data blob */
    uint64_t nbytes;
    const void *data;     /* points into the map */
} phiq_gguf_tensor;

/* True when the file exists and starts with the GGUF magic (cheap: reads 4 bytes). */
bool phiq_gguf_sniff(const char *path);

phiq_gguf *phiq_gguf_open(const char *path);
/* Same checks on bytes already in memory (fuzzing, embedded files); data must
 * outlive the reader; name is used in messages. */
phiq_gguf *phiq_gguf_open_memory(const void *data, size_t size, const char *name);
void phiq_gguf_close(phiq_gguf *g);
const char *phiq_gguf_path(const phiq_gguf *g);
uint32_t phiq_gguf_version(const phiq_gguf *g);
uint32_t phiq_gguf_alignment(const phiq_gguf *g);
uint64_t phiq_gguf_file_size(const phiq_gguf *g);
uint64_t phiq_gguf_data_offset(const phiq_gguf *g); /* absolute start of the blob */

int64_t phiq_gguf_n_kv(const phiq_gguf *g);
const char *phiq_gguf_kv_key(const phiq_gguf *g, int64_t i);
int phiq_gguf_kv_type(const phiq_gguf *g, int64_t i);
int64_t phiq_gguf_find_kv(const phiq_gguf *g, const char *key); /* -1 if absent */

/* Typed scalar getters by key. Return 0; PHIQ_EUNSUPPORTED(-3) if the key is
 * absent (message names it); PHIQ_EFORMAT if its type differs (message names
 * the key, the expected and the actual type). */
int phiq_gguf_get_u32(const phiq_gguf *g, const char *key, uint32_t *out);
int phiq_gguf_get_i32(const phiq_gguf *g, const char *key, int32_t *out);
int phiq_gguf_get_u64(const phiq_gguf *g, const char *key, uint64_t *out);
int phiq_gguf_get_f32(const phiq_gguf *g, const char *key, float *out);
int phiq_gguf_get_bool(const phiq_gguf *g, const char *key, bool *out);
/* String: pointer into the map, NOT NUL-terminated; *len its length. */
int phiq_gguf_get_str(const phiq_gguf *g, const char *key, const char **s, uint64_t *len);

/* Any scalar by index, widened (for dumping and copying). */
int phiq_gguf_kv_scalar(const phiq_gguf *g, int64_t i, int64_t *as_int, double *as_float);
/* Arrays by index: element type and count; numeric data is a pointer into the
 * map (little-endian, possibly unaligned: memcpy out); string elements via
 * phiq_gguf_arr_str. */
int phiq_gguf_kv_arr(const phiq_gguf *g, int64_t i, int *elem_type, uint64_t *n, const void **data);
int phiq_gguf_arr_str(const phiq_gguf *g, int64_t i, uint64_t j, const char **s, uint64_t *len);

int64_t phiq_gguf_n_tensors(const phiq_gguf *g);
const phiq_gguf_tensor *phiq_gguf_tensor_at(const phiq_gguf *g, int64_t i);
const phiq_gguf_tensor *phiq_gguf_find_tensor(const phiq_gguf *g, const char *name); /* NULL if absent */

/* ---- writer --------------------------------------------------------------- */
typedef struct phiq_gguf_writer phiq_gguf_writer;

phiq_gguf_writer *phiq_gguf_writer_new(void);
void phiq_gguf_writer_free(phiq_gguf_writer *w);

/* Setting a key twice replaces the value (keeps the first position).
 * general.alignment must be a power of two and is honoured by write. */
int phiq_gguf_writer_set_u8(phiq_gguf_writer *w, const char *key, uint8_t v);
int phiq_gguf_writer_set_i8(phiq_gguf_writer *w, const char *key, int8_t v);
int phiq_gguf_writer_set_u16(phiq_gguf_writer *w, const char *key, uint16_t v);
int phiq_gguf_writer_set_i16(phiq_gguf_writer *w, const char *key, int16_t v);
int phiq_gguf_writer_set_u32(phiq_gguf_writer *w, const char *key, uint32_t v);
int phiq_gguf_writer_set_i32(phiq_gguf_writer *w, const char *key, int32_t v);
int phiq_gguf_writer_set_u64(phiq_gguf_writer *w, const char *key, uint64_t v);
int phiq_gguf_writer_set_i64(phiq_gguf_writer *w, const char *key, int64_t v);
int phiq_gguf_writer_set_f32(phiq_gguf_writer *w, const char *key, float v);
int phiq_gguf_writer_set_f64(phiq_gguf_writer *w, const char *key, double v);
int phiq_gguf_writer_set_bool(phiq_gguf_writer *w, const char *key, bool v);
int phiq_gguf_writer_set_str(phiq_gguf_writer *w, const char *key, const char *s);
int phiq_gguf_writer_set_strn(phiq_gguf_writer *w, const char *key, const char *s, uint64_t len);
/* Numeric array of elem_type (not STRING/ARRAY); data is copied. */
int phiq_gguf_writer_set_arr(phiq_gguf_writer *w, const char *key, int elem_type, const void *data, uint64_t n);
/* String array; lens may be NULL for NUL-terminated strings. Copied. */
int phiq_gguf_writer_set_arr_str(phiq_gguf_writer *w, const char *key, const char *const *strs,
                                 const uint64_t *lens, uint64_t n);
/* Copies key i of a reader (any type) into the writer. */
int phiq_gguf_writer_copy_kv(phiq_gguf_writer *w, const phiq_gguf *g, int64_t i);
int phiq_gguf_writer_remove_kv(phiq_gguf_writer *w, const char *key);

/* Declares the next tensor (written in declaration order). ne has n_dims
 * entries, ne[0] innermost. Checks name length/uniqueness and the size rule. */
int phiq_gguf_writer_add_tensor(phiq_gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne);
int64_t phiq_gguf_writer_n_tensors(const phiq_gguf_writer *w);

/* Fills buf (exactly nbytes) with tensor i's data. Returns 0 or a negative
 * code with phiq_fail() called; the write is then abandoned. */
typedef int (*phiq_gguf_fill_fn)(void *user, int64_t i, const char *name, void *buf, uint64_t nbytes);

typedef struct phiq_gguf_write_opts {
    int quiet;          /* no progress output */
    const char *label;  /* progress label, e.g. "convert" */
} phiq_gguf_write_opts;

int phiq_gguf_writer_write(phiq_gguf_writer *w, const char *path, phiq_gguf_fill_fn fill, void *user,
                           const phiq_gguf_write_opts *opts);

#endif
