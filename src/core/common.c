/* common.c — errors, half-precision conversion, input maps, atomic output
 * files and progress display (see common.h). */
#define _GNU_SOURCE
#include "core/common.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- errors -------------------------------------------------------------- */
static _Thread_local char err_buf[1024] = "no error";

const char *phiq_error(void) { return err_buf; }

static void vset(const char *fmt, va_list ap) {
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    /* keep it one line: model files choose the strings we quote */
    for (char *p = err_buf; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

int phiq_fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vset(fmt, ap);
    va_end(ap);
    return code;
}

void *phiq_fail_null(int code, const char *fmt, ...) {
    (void)code;
    va_list ap;
    va_start(ap, fmt);
    vset(fmt, ap);
    va_end(ap);
    return NULL;
}

void phiq_error_prefix(const char *fmt, ...) {
    char pre[512], old[sizeof err_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err_buf, sizeof old);
    size_t a = strlen(pre);
    if (a > sizeof err_buf - 3) a = sizeof err_buf - 3;
    memcpy(err_buf, pre, a);
    memcpy(err_buf + a, ": ", 2);
    size_t room = sizeof err_buf - a - 3, b = strlen(old);
    if (b > room) b = room;
    memcpy(err_buf + a + 2, old, b);
    err_buf[a + 2 + b] = 0;
}

/* ---- half precision ------------------------------------------------------- */
static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* Same algorithm as ggml's fp32_to_fp16 (Maratyszcza's FP16 library), so the
 * rounding of every value, subnormals and overflow included, is identical. */
uint16_t phiq_f32_to_f16(float f) {
    const float scale_to_inf = bits_f32(UINT32_C(0x77800000));
    const float scale_to_zero = bits_f32(UINT32_C(0x08800000));
    float base = (fabsf(f) * scale_to_inf) * scale_to_zero;
    const uint32_t w = f32_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & UINT32_C(0x80000000);
    uint32_t bias = shl1_w & UINT32_C(0xFF000000);
    if (bias < UINT32_C(0x71000000)) bias = UINT32_C(0x71000000);
    base = bits_f32((bias >> 1) + UINT32_C(0x07800000)) + base;
    const uint32_t bits = f32_bits(base);
    const uint32_t exp_bits = (bits >> 13) & UINT32_C(0x00007C00);
    const uint32_t mantissa_bits = bits & UINT32_C(0x00000FFF);
    const uint32_t nonsign = exp_bits + mantissa_bits;
    return (uint16_t)((sign >> 16) | (shl1_w > UINT32_C(0xFF000000) ? UINT16_C(0x7E00) : nonsign));
}

float phiq_f16_to_f32(uint16_t h) {
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & UINT32_C(0x80000000);
    const uint32_t two_w = w + w;
    const uint32_t exp_offset = UINT32_C(0xE0) << 23;
    const float exp_scale = bits_f32(UINT32_C(0x7800000));
    const float normalized = bits_f32((two_w >> 4) + exp_offset) * exp_scale;
    const uint32_t magic_mask = UINT32_C(126) << 23;
    const float magic_bias = 0.5f;
    const float denormalized = bits_f32((two_w >> 17) | magic_mask) - magic_bias;
    const uint32_t denormalized_cutoff = UINT32_C(1) << 27;
    const uint32_t result = sign | (two_w < denormalized_cutoff ? f32_bits(denormalized) : f32_bits(normalized));
    return bits_f32(result);
}

uint16_t phiq_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 64); /* quiet NaN */
    return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

/* ---- input files ------------------------------------------------------------ */
void *phiq_huge_alloc(size_t *size) {
    const size_t huge = (size_t)2 << 20, n = (*size + huge - 1) / huge * huge;
    /* one huge page more than needed, so that the start can be aligned; the
     * parts before and after are given back */
    uint8_t *raw = mmap(NULL, n + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return NULL;
    uint8_t *p = (uint8_t *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
    if (p > raw) munmap(raw, (size_t)(p - raw));
    if (p + n < raw + n + huge) munmap(p + n, (size_t)(raw + n + huge - (p + n)));
#ifdef MADV_HUGEPAGE
    madvise(p, n, MADV_HUGEPAGE); /* advice only: 4 KiB pages work too */
#endif
    *size = n;
    return p;
}

void phiq_huge_free(void *p, size_t size) {
    if (p) munmap(p, size);
}

int phiq_map_open(phiq_map *m, const char *path) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return phiq_fail(PHIQ_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return phiq_fail(PHIQ_EIO, "%s: not a regular file", path);
    }
    m->size = (size_t)st.st_size;
    if (m->size > 0) {
        void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return phiq_fail(PHIQ_EIO, "%s: cannot map: %s", path, strerror(errno));
        }
        m->data = p;
    }
    close(fd);
    m->path = strdup(path);
    return 0;
}

void phiq_map_close(phiq_map *m) {
    if (m->data) munmap((void *)m->data, m->size);
    free(m->path);
    memset(m, 0, sizeof *m);
}

int phiq_read_file(const char *path, char **out, size_t *len) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return phiq_fail(PHIQ_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) { fclose(f); return phiq_fail(PHIQ_ENOMEM, "%s: out of memory", path); }
    for (;;) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap) break;
        char *nb = realloc(buf, cap * 2 + 1);
        if (!nb) { free(buf); fclose(f); return phiq_fail(PHIQ_ENOMEM, "%s: out of memory", path); }
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); return phiq_fail(PHIQ_EIO, "%s: read error", path); }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return 0;
}

bool phiq_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool phiq_dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *phiq_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

/* ---- output files ------------------------------------------------------------ */
int phiq_outfile_open(phiq_outfile *o, const char *path) {
    memset(o, 0, sizeof *o);
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path + 1) : 0;
    const char *base = slash ? slash + 1 : path;
    if (!*base) return phiq_fail(PHIQ_EINVAL, "%s: output path names a directory", path);
    size_t need = dlen + strlen(base) + 64;
    o->tmp_path = malloc(need);
    o->final_path = strdup(path);
    if (!o->tmp_path || !o->final_path) { phiq_outfile_abort(o); return phiq_fail(PHIQ_ENOMEM, "out of memory"); }
    snprintf(o->tmp_path, need, "%.*s.%s.tmp.%ld", (int)dlen, path, base, (long)getpid());
    o->f = fopen(o->tmp_path, "wb");
    if (!o->f) {
        int e = errno;
        free(o->tmp_path); o->tmp_path = NULL;
        free(o->final_path); o->final_path = NULL;
        return phiq_fail(PHIQ_EIO, "%s: cannot create: %s", path, strerror(e));
    }
    return 0;
}

int phiq_outfile_write(phiq_outfile *o, const void *buf, size_t n) {
    if (n && fwrite(buf, 1, n, o->f) != n)
        return phiq_fail(PHIQ_EIO, "%s: write failed: %s", o->final_path, strerror(errno));
    o->written += n;
    return 0;
}

int phiq_outfile_pad(phiq_outfile *o, size_t alignment) {
    static const uint8_t zeros[256];
    size_t pad = (size_t)((alignment - o->written % alignment) % alignment);
    while (pad) {
        size_t k = pad < sizeof zeros ? pad : sizeof zeros;
        int rc = phiq_outfile_write(o, zeros, k);
        if (rc) return rc;
        pad -= k;
    }
    return 0;
}

int phiq_outfile_commit(phiq_outfile *o) {
    int rc = 0;
    if (fflush(o->f) != 0 || fsync(fileno(o->f)) != 0)
        rc = phiq_fail(PHIQ_EIO, "%s: cannot flush: %s", o->final_path, strerror(errno));
    if (fclose(o->f) != 0 && !rc)
        rc = phiq_fail(PHIQ_EIO, "%s: cannot close: %s", o->final_path, strerror(errno));
    o->f = NULL;
    if (!rc && rename(o->tmp_path, o->final_path) != 0)
        rc = phiq_fail(PHIQ_EIO, "%s: cannot rename into place: %s", o->final_path, strerror(errno));
    if (rc) unlink(o->tmp_path);
    free(o->tmp_path);
    free(o->final_path);
    o->tmp_path = o->final_path = NULL;
    return rc;
}

void phiq_outfile_abort(phiq_outfile *o) {
    if (o->f) fclose(o->f);
    if (o->tmp_path) unlink(o->tmp_path);
    free(o->tmp_path);
    free(o->final_path);
    memset(o, 0, sizeof *o);
}

void phiq_release_pages(const void *p, uint64_t n) {
    long ps = sysconf(_SC_PAGESIZE);
    if (!p || n == 0 || ps <= 0) return;
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)(ps - 1);
    uintptr_t e = ((uintptr_t)p + n + (uintptr_t)ps - 1) & ~(uintptr_t)(ps - 1);
    (void)madvise((void *)a, e - a, MADV_DONTNEED);
}

/* ---- output directories ------------------------------------------------------------ */
static int outdir_usable(const char *out, int merge) {
    struct stat st;
    if (stat(out, &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode)) return phiq_fail(PHIQ_EINVAL, "%s: exists and is not a directory", out);
    if (merge) return 0;
    DIR *d = opendir(out);
    if (!d) return phiq_fail(PHIQ_EIO, "%s: %s", out, strerror(errno));
    struct dirent *e;
    int nonempty = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) nonempty = 1;
    closedir(d);
    return nonempty ? phiq_fail(PHIQ_EINVAL, "%s: output directory exists and is not empty", out) : 0;
}

static int outdir_open(phiq_outdir *d, const char *path, int merge) {
    memset(d, 0, sizeof *d);
    d->merge = merge;
    size_t ol = strlen(path);
    while (ol > 1 && path[ol - 1] == '/') ol--;
    if (!ol) return phiq_fail(PHIQ_EINVAL, "output directory path is empty");
    int rc;
    if (!(d->final_path = strndup(path, ol))) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    if ((rc = outdir_usable(d->final_path, merge))) {
        phiq_outdir_abort(d);
        return rc;
    }
    const char *out = d->final_path, *slash = strrchr(out, '/');
    size_t plen = slash ? (size_t)(slash - out) : 0, n = ol + 64;
    if (!(d->tmp_path = malloc(n))) {
        phiq_outdir_abort(d);
        return phiq_fail(PHIQ_ENOMEM, "out of memory");
    }
    if (slash) snprintf(d->tmp_path, n, "%.*s/.%s.tmp.%ld", (int)(plen ? plen : 1), plen ? out : "/", slash + 1, (long)getpid());
    else snprintf(d->tmp_path, n, ".%s.tmp.%ld", out, (long)getpid());
    if (mkdir(d->tmp_path, 0755) != 0) {
        rc = phiq_fail(PHIQ_EIO, "%s: cannot create: %s", d->tmp_path, strerror(errno));
        free(d->tmp_path);
        d->tmp_path = NULL;
        phiq_outdir_abort(d);
        return rc;
    }
    return 0;
}

int phiq_outdir_open(phiq_outdir *d, const char *path) { return outdir_open(d, path, 0); }
int phiq_outdir_open_merge(phiq_outdir *d, const char *path) { return outdir_open(d, path, 1); }

char *phiq_outdir_path(const phiq_outdir *d, const char *name) { return phiq_path_join(d->tmp_path, name); }

int phiq_outdir_write(const phiq_outdir *d, const char *name, const void *data, size_t len) {
    char *p = phiq_outdir_path(d, name);
    if (!p) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    FILE *f = fopen(p, "wb");
    int rc = 0;
    if (!f || (len && fwrite(data, 1, len, f) != len) || fflush(f) || fsync(fileno(f)))
        rc = phiq_fail(PHIQ_EIO, "%s: cannot write: %s", p, strerror(errno));
    if (f && fclose(f) && !rc) rc = phiq_fail(PHIQ_EIO, "%s: cannot write: %s", p, strerror(errno));
    free(p);
    return rc;
}

int phiq_outdir_copy(const phiq_outdir *d, const char *src_path, const char *name) {
    char *txt;
    size_t len;
    int rc = phiq_read_file(src_path, &txt, &len);
    if (rc) return rc;
    rc = phiq_outdir_write(d, name, txt, len);
    free(txt);
    return rc;
}

/* merge mode, final directory not empty: the staged files one rename each */
static int outdir_move_each(const phiq_outdir *d) {
    DIR *dir = opendir(d->tmp_path);
    if (!dir) return phiq_fail(PHIQ_EIO, "%s: %s", d->tmp_path, strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(dir))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *from = phiq_path_join(d->tmp_path, e->d_name), *to = phiq_path_join(d->final_path, e->d_name);
        if (!from || !to) rc = phiq_fail(PHIQ_ENOMEM, "out of memory");
        else if (rename(from, to) != 0) rc = phiq_fail(PHIQ_EIO, "%s: cannot move into place: %s", to, strerror(errno));
        free(from);
        free(to);
    }
    closedir(dir);
    return rc;
}

int phiq_outdir_commit(phiq_outdir *d) {
    int rc = 0;
    if (rename(d->tmp_path, d->final_path) != 0) {
        if (d->merge && (errno == EEXIST || errno == ENOTEMPTY)) rc = outdir_move_each(d);
        else rc = phiq_fail(PHIQ_EIO, "%s: cannot rename %s into place: %s", d->final_path, d->tmp_path, strerror(errno));
    }
    phiq_outdir_abort(d); /* the staging directory, if still there (emptied by a merge, or on failure) */
    return rc;
}

void phiq_rmdir_flat(const char *path) {
    DIR *dir = opendir(path);
    if (dir) {
        struct dirent *e;
        while ((e = readdir(dir))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char *p = phiq_path_join(path, e->d_name);
            if (p) unlink(p);
            free(p);
        }
        closedir(dir);
    }
    rmdir(path);
}

void phiq_outdir_abort(phiq_outdir *d) {
    if (d->tmp_path) phiq_rmdir_flat(d->tmp_path);
    free(d->tmp_path);
    free(d->final_path);
    memset(d, 0, sizeof *d);
}

/* ---- progress ------------------------------------------------------------------ */
double phiq_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

void phiq_progress_start(phiq_progress *p, const char *label, int n, uint64_t total_bytes, int quiet) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->quiet = quiet;
    p->tty = isatty(2);
    p->n = n;
    p->total_bytes = total_bytes;
    p->t0 = phiq_now();
}

void phiq_progress_step(phiq_progress *p, const char *item, uint64_t bytes) {
    p->i++;
    p->done_bytes += bytes;
    if (p->quiet) return;
    double t = phiq_now(), el = t - p->t0;
    double mbs = el > 0 ? (double)p->done_bytes / 1e6 / el : 0;
    double eta = (p->done_bytes && p->total_bytes > p->done_bytes) ? el * (double)(p->total_bytes - p->done_bytes) / (double)p->done_bytes : 0;
    if (p->tty) {
        if (t - p->last_draw < 0.1 && p->i < p->n) return;
        p->last_draw = t;
        int width = 30, fill = p->total_bytes ? (int)(width * (double)p->done_bytes / (double)p->total_bytes) : (p->n ? width * p->i / p->n : width);
        if (fill > width) fill = width;
        char bar[64];
        for (int k = 0; k < width; k++) bar[k] = k < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r%s [%s] %d/%d %7.1f MB/s ETA %4.0fs %-40.40s", p->label, bar, p->i, p->n, mbs, eta, item ? item : "");
    } else {
        fprintf(stderr, "%s: %d/%d %s (%.1f MB/s)\n", p->label, p->i, p->n, item ? item : "", mbs);
    }
}

void phiq_progress_end(phiq_progress *p) {
    if (p->quiet) return;
    double el = phiq_now() - p->t0;
    if (p->tty) fputc('\n', stderr);
    fprintf(stderr, "%s: done, %d items, %.1f MB in %.2fs\n", p->label, p->i, (double)p->done_bytes / 1e6, el);
}

/* ---- misc ------------------------------------------------------------------------ */
void phiq_free_n(void *const *ptrs, size_t n) {
    for (size_t i = 0; i < n; i++) free(ptrs[i]);
}

int phiq_grow(void **arr, size_t *cap, size_t need, size_t first, size_t elem) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap * 2 : first;
    while (nc < need) nc *= 2;
    void *p = elem && nc <= SIZE_MAX / elem ? realloc(*arr, nc * elem) : NULL;
    if (!p) return phiq_fail(PHIQ_ENOMEM, "out of memory growing an array to %zu entries", nc);
    memset((char *)p + *cap * elem, 0, (nc - *cap) * elem);
    *arr = p;
    *cap = nc;
    return 0;
}

int phiq_physical_cores(void) {
    /* Count distinct (physical id, core id) pairs; fall back to online CPUs. */
    FILE *f = fopen("/proc/cpuinfo", "r");
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (!f) return online > 0 ? (int)online : 1;
    char line[256];
    int phys = -1, seen = 0;
    int pairs[1024][2];
    while (fgets(line, sizeof line, f)) {
        int v;
        if (sscanf(line, "physical id : %d", &v) == 1) phys = v;
        else if (sscanf(line, "core id : %d", &v) == 1) {
            int dup = 0;
            for (int i = 0; i < seen; i++)
                if (pairs[i][0] == phys && pairs[i][1] == v) { dup = 1; break; }
            if (!dup && seen < 1024) { pairs[seen][0] = phys; pairs[seen][1] = v; seen++; }
        }
    }
    fclose(f);
    if (seen > 0) return seen;
    return online > 0 ? (int)online : 1;
}

bool phiq_streq_nocase(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        char x = *a, y = *b;
        if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = (char)(y - 'A' + 'a');
        if (x != y) return false;
    }
    return *a == *b;
}

bool phiq_contains_nocase(const char *haystack, const char *needle) {
    const size_t n = strlen(needle);
    for (; *haystack; haystack++) {
        size_t i = 0;
        while (i < n && haystack[i] && tolower((unsigned char)haystack[i]) == tolower((unsigned char)needle[i])) i++;
        if (i == n) return true;
    }
    return false;
}
