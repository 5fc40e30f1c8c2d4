/* common.h — what every module shares: error reporting, half-precision
 * conversions, memory-mapped input files, atomic output files, progress
 * display and small string helpers.
 *
 * Errors: a failing function records one line with phiq_fail() (which also
 * returns its code, so `return phiq_fail(PHIQ_EIO, "%s: short read", path);`)
 * and the caller reads it with phiq_error(). The message lives in a
 * thread-local buffer, so separate threads never see each other's errors.
 */
#ifndef PHIQ_CORE_COMMON_H
#define PHIQ_CORE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "phiq.h"

#if defined(__GNUC__)
#define PHIQ_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define PHIQ_PRINTF(a, b)
#endif

/* Records the message and returns code (a negative PHIQ_E* value). */
int phiq_fail(int code, const char *fmt, ...) PHIQ_PRINTF(2, 3);
/* Same, returning NULL, for constructors. */
void *phiq_fail_null(int code, const char *fmt, ...) PHIQ_PRINTF(2, 3);
/* Prefixes the current message with "prefix: " (for context added by callers). */
void phiq_error_prefix(const char *fmt, ...) PHIQ_PRINTF(1, 2);

/* ---- half precision --------------------------------------------------- */
/* IEEE binary16 <-> f32, round to nearest even (as ggml's GGML_FP32_TO_FP16). */
uint16_t phiq_f32_to_f16(float f);
float phiq_f16_to_f32(uint16_t h);
/* bfloat16: top 16 bits, round to nearest even, NaN kept quiet (as ggml). */
uint16_t phiq_f32_to_bf16(float f);
static inline float phiq_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- input files --------------------------------------------------------- */
/* A read-only memory map of a whole file. Model files are untrusted: callers
 * must bounds-check every offset against size. */
typedef struct phiq_map {
    const uint8_t *data;
    size_t size;
    char *path; /* owned copy, for error messages */
} phiq_map;

int phiq_map_open(phiq_map *m, const char *path);
void phiq_map_close(phiq_map *m);
/* Anonymous memory for data streamed at memory bandwidth: *size bytes
 * rounded up to 2 MiB (the rounded size is written back), 2 MiB aligned,
 * advised for transparent huge pages where the kernel offers them. NULL when
 * it cannot be mapped. Free with phiq_huge_free(p, that size). */
void *phiq_huge_alloc(size_t *size);
void phiq_huge_free(void *p, size_t size);
/* Drops the pages of [p, p + n) of a read-only file mapping from this
 * process once converted (they stay in the page cache), so streaming a whole
 * checkpoint does not grow the resident set to its size. */
void phiq_release_pages(const void *p, uint64_t n);
/* Reads a whole (small) file into a NUL-terminated malloc'd buffer. */
int phiq_read_file(const char *path, char **out, size_t *len);
bool phiq_file_exists(const char *path);
bool phiq_dir_exists(const char *path);
/* dir + "/" + name, malloc'd. */
char *phiq_path_join(const char *dir, const char *name);

/* ---- output files ---------------------------------------------------------- */
/* Writes go to "<dir>/.<name>.tmp.<pid>" beside the target; commit fsyncs and
 * renames, abort unlinks. Nothing partial is ever left at the final path. */
typedef struct phiq_outfile {
    FILE *f;
    char *final_path;
    char *tmp_path;
    uint64_t written;
} phiq_outfile;

int phiq_outfile_open(phiq_outfile *o, const char *path);
int phiq_outfile_write(phiq_outfile *o, const void *buf, size_t n);
int phiq_outfile_pad(phiq_outfile *o, size_t alignment); /* zeros to a multiple */
int phiq_outfile_commit(phiq_outfile *o);
void phiq_outfile_abort(phiq_outfile *o);

/* A directory of output files (ONNX, MLX exports), written into the
 * temporary sibling "<parent>/.<name>.tmp.<pid>" and renamed into place by
 * commit, so the final path only ever holds a complete directory. The final
 * path must not exist, or be an empty directory. abort removes the temporary
 * directory and everything in it (it holds plain files only). */
typedef struct phiq_outdir {
    char *final_path;
    char *tmp_path; /* where files go until commit */
    int merge;      /* phiq_outdir_open_merge: an existing final directory keeps its other files */
} phiq_outdir;

int phiq_outdir_open(phiq_outdir *d, const char *path);
/* The same, but the final path may be a non-empty directory: commit then
 * moves the files in one rename each (same-named files replaced), the
 * directory's other files kept (phiq synth into an existing checkout). */
int phiq_outdir_open_merge(phiq_outdir *d, const char *path);
/* path of `name` inside the temporary directory, malloc'd */
char *phiq_outdir_path(const phiq_outdir *d, const char *name);
/* Writes (or copies) a whole small file into the directory, fsynced. */
int phiq_outdir_write(const phiq_outdir *d, const char *name, const void *data, size_t len);
int phiq_outdir_copy(const phiq_outdir *d, const char *src_path, const char *name);
int phiq_outdir_commit(phiq_outdir *d);
/* Removes a directory of plain files (an export written by phiq_outdir). */
void phiq_rmdir_flat(const char *dir);
void phiq_outdir_abort(phiq_outdir *d);

/* ---- progress --------------------------------------------------------------- */
/* A bar with "i/n, MB/s, ETA" when stderr is a terminal; one plain line per
 * step otherwise; nothing when quiet. */
typedef struct phiq_progress {
    const char *label;
    int quiet;
    int tty;
    uint64_t total_bytes, done_bytes;
    int n, i;
    double t0, last_draw;
} phiq_progress;

void phiq_progress_start(phiq_progress *p, const char *label, int n, uint64_t total_bytes, int quiet);
void phiq_progress_step(phiq_progress *p, const char *item, uint64_t bytes);
void phiq_progress_end(phiq_progress *p);

/* ---- misc ------------------------------------------------------------------- */
/* free() each pointer of the list, in order: PHIQ_FREE_ALL(o->a, o->b, o); */
void phiq_free_n(void *const *ptrs, size_t n);
#define PHIQ_FREE_ALL(...) \
    phiq_free_n((void *const[]){__VA_ARGS__}, sizeof((void *const[]){__VA_ARGS__}) / sizeof(void *))
/* Grows *arr (elem bytes each, *cap of them) to hold at least need: the
 * capacity doubles from first (or from *cap), the new part is zeroed.
 * 0, or PHIQ_ENOMEM (error set; *arr and *cap unchanged). */
int phiq_grow(void **arr, size_t *cap, size_t need, size_t first, size_t elem);
double phiq_now(void); /* monotonic seconds */
int phiq_physical_cores(void);
bool phiq_streq_nocase(const char *a, const char *b);
/* True when needle occurs in haystack, ASCII letters compared without case. */
bool phiq_contains_nocase(const char *haystack, const char *needle);

#endif
