/* safetensors.h — one memory-mapped .safetensors file.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "BF16", "shape": [rows, cols], "data_offsets": [a, b]},
 *  "__metadata__": {...}}, then the data blob; offsets are relative to the
 * blob. phiq_st_open validates everything (header length within the file,
 * JSON, dtype known, shape non-negative, (b - a) == product(shape) * dtype
 * size, offsets inside the blob and not overlapping) so accessors are safe.
 */
#ifndef PHIQ_FORMATS_SAFETENSORS_H
#define PHIQ_FORMATS_SAFETENSORS_H

#include <stdint.h>

typedef enum phiq_st_dtype {
    PHIQ_ST_F32 = 0,
    PHIQ_ST_F16 = 1,
    PHIQ_ST_BF16 = 2,
    PHIQ_ST_OTHER = 3, /* listed but not convertible (I64, U8, ...) */
    PHIQ_ST_U32 = 4,   /* MLX's packed quantization codes */
} phiq_st_dtype;

/* F32, F16 or BF16: convertible to float32 by phiq_st_to_f32. */
static inline int phiq_st_is_float(phiq_st_dtype dt) { return dt == PHIQ_ST_F32 || dt == PHIQ_ST_F16 || dt == PHIQ_ST_BF16; }

#define PHIQ_ST_MAX_DIMS 8

typedef struct phiq_st_tensor {
    const char *name;
    phiq_st_dtype dtype;
    const char *dtype_name; /* as written in the header */
    int n_dims;
    int64_t shape[PHIQ_ST_MAX_DIMS]; /* outermost first, as in PyTorch */
    int64_t n_elements;
    uint64_t nbytes;
    const void *data;  /* into the map */
    const char *file;  /* path, for messages */
} phiq_st_tensor;

typedef struct phiq_st phiq_st;

phiq_st *phiq_st_open(const char *path);
void phiq_st_close(phiq_st *st);
int phiq_st_n_tensors(const phiq_st *st);
const phiq_st_tensor *phiq_st_tensor_at(const phiq_st *st, int i);
const phiq_st_tensor *phiq_st_find(const phiq_st *st, const char *name);

/* Converts elements [start, start + n) of t to float32 (F32/F16/BF16 only). */
int phiq_st_to_f32(const phiq_st_tensor *t, int64_t start, int64_t n, float *dst);

/* Writing (used by `phiq synth`): tensors described up front, data streamed.
 * fill is called for tensor 0, 1, ... in order, possibly several times per
 * tensor with consecutive chunks (each <= 32 MB) whose sizes sum to the
 * tensor's byte size, so no tensor is ever held whole in memory. */
typedef struct phiq_st_out_tensor {
    const char *name;
    phiq_st_dtype dtype;
    int n_dims;
    int64_t shape[PHIQ_ST_MAX_DIMS];
} phiq_st_out_tensor;
typedef int (*phiq_st_fill_fn)(void *user, int i, void *buf, uint64_t nbytes);
int phiq_st_write(const char *path, const phiq_st_out_tensor *ts, int n, phiq_st_fill_fn fill, void *user);

/* The header as MLX writes it (nlohmann::json: every object's keys sorted,
 * compact, no padding) with __metadata__ {"format": format}; ts must already
 * be sorted by name (the data follows in that order). */
typedef struct phiq_st_write_opts {
    const char *format;  /* __metadata__.format; NULL: "pt" */
    int mlx_header;      /* keys sorted at every level, header not padded */
} phiq_st_write_opts;
int phiq_st_write_ex(const char *path, const phiq_st_out_tensor *ts, int n, phiq_st_fill_fn fill, void *user,
                     const phiq_st_write_opts *opts);
/* Bytes of one element of a writable dtype (F32, F16, BF16, U32). */
int phiq_st_dtype_size(phiq_st_dtype dt);

#endif
