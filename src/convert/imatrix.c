/* imatrix.c — importance matrices for `phiq convert --imatrix`, read from
 * llama-imatrix's files: the GGUF format (per weight W, tensors
 * "W.in_sum2" F32 {ne0, n_mat} holding sums of squared activations and
 * "W.counts" F32 {1, n_mat} holding token counts; weight = sum / count) and
 * the legacy .dat format (i32 n_entries; per entry i32 name length, name,
 * i32 ncall, i32 nval, f32[nval]; weight = value / ncall). As llama-quantize
 * does, an entry with count 0 becomes all ones and non-finite values are
 * refused. The file is untrusted: every length is bounds-checked.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/convert.h"
#include "core/common.h"

typedef struct imat_entry {
    char *name;   /* GGUF tensor name, e.g. "blk.0.ffn_down.weight" */
    int64_t ne0;  /* values per matrix (input columns) */
    int n_mat;    /* 1, or the number of experts */
    float *w;     /* [n_mat][ne0] */
} imat_entry;

struct phiq_imatrix {
    imat_entry *e;
    int n, cap;
    char *dataset;
    int chunks;
};

void phiq_imatrix_free(phiq_imatrix *m) {
    if (!m) return;
    for (int i = 0; i < m->n; i++) PHIQ_FREE_ALL(m->e[i].name, m->e[i].w);
    PHIQ_FREE_ALL(m->e, m->dataset, m);
}

static imat_entry *add_entry(phiq_imatrix *m, const char *name, size_t name_len, int64_t ne0, int n_mat) {
    if (m->n == m->cap) {
        int nc = m->cap ? m->cap * 2 : 64;
        imat_entry *ne = realloc(m->e, (size_t)nc * sizeof *ne);
        if (!ne) return phiq_fail_null(PHIQ_ENOMEM, "out of memory (imatrix)");
        m->e = ne;
        m->cap = nc;
    }
    imat_entry *e = &m->e[m->n];
    e->name = strndup(name, name_len);
    e->w = malloc((size_t)(ne0 * n_mat) * sizeof(float));
    if (!e->name || !e->w) {
        free(e->name);
        free(e->w);
        return phiq_fail_null(PHIQ_ENOMEM, "out of memory (imatrix)");
    }
    e->ne0 = ne0;
    e->n_mat = n_mat;
    m->n++;
    return e;
}

static int check_finite(const char *path, const imat_entry *e) {
    for (int64_t i = 0; i < e->ne0 * e->n_mat; i++)
        if (!isfinite(e->w[i]))
            return phiq_fail(PHIQ_EFORMAT, "%s: entry %s has a non-finite value at %lld", path, e->name, (long long)i);
    return 0;
}

static float rd_f32(const void *p) {
    float f;
    memcpy(&f, p, 4);
    return f;
}

static int load_gguf(phiq_imatrix *m, const char *path) {
    phiq_gguf *g = phiq_gguf_open(path);
    if (!g) return PHIQ_EFORMAT;
    int rc = 0;
    for (int64_t i = 0; i < phiq_gguf_n_tensors(g); i++) {
        const phiq_gguf_tensor *t = phiq_gguf_tensor_at(g, i);
        size_t nl = strlen(t->name);
        if (nl <= 8 || strcmp(t->name + nl - 8, ".in_sum2")) continue;
        char cname[PHIQ_GGUF_MAX_NAME + 8];
        snprintf(cname, sizeof cname, "%.*s.counts", (int)(nl - 8), t->name);
        const phiq_gguf_tensor *c = phiq_gguf_find_tensor(g, cname);
        if (!c) {
            rc = phiq_fail(PHIQ_EFORMAT, "%s: %s without %s", path, t->name, cname);
            break;
        }
        int64_t ne0 = t->ne[0], n_mat = t->ne[1] * t->ne[2] * t->ne[3];
        if (t->type != PHIQ_GGML_TYPE_F32 || c->type != PHIQ_GGML_TYPE_F32 || ne0 <= 0 || n_mat <= 0 ||
            n_mat > 4096 || c->ne[0] * c->ne[1] * c->ne[2] * c->ne[3] != n_mat) {
            rc = phiq_fail(PHIQ_EFORMAT, "%s: %s / %s have unexpected types or shapes", path, t->name, cname);
            break;
        }
        imat_entry *e = add_entry(m, t->name, nl - 8, ne0, (int)n_mat);
        if (!e) {
            rc = PHIQ_ENOMEM;
            break;
        }
        const uint8_t *sums = t->data, *counts = c->data;
        for (int64_t k = 0; k < n_mat; k++) {
            float cnt = rd_f32(counts + 4 * k);
            for (int64_t j = 0; j < ne0; j++)
                e->w[k * ne0 + j] = cnt > 0 ? rd_f32(sums + 4 * (k * ne0 + j)) / cnt : 1.0f;
        }
        if ((rc = check_finite(path, e)) < 0) break;
    }
    if (rc == 0) {
        uint32_t ch;
        if (phiq_gguf_find_kv(g, "imatrix.chunk_count") >= 0 && phiq_gguf_get_u32(g, "imatrix.chunk_count", &ch) == 0)
            m->chunks = (int)ch;
        int64_t k = phiq_gguf_find_kv(g, "imatrix.datasets");
        int et;
        uint64_t n;
        const void *d;
        const char *s;
        uint64_t sl;
        if (k >= 0 && phiq_gguf_kv_type(g, k) == PHIQ_GGUF_ARRAY && phiq_gguf_kv_arr(g, k, &et, &n, &d) == 0 &&
            et == PHIQ_GGUF_STRING && n > 0 && phiq_gguf_arr_str(g, k, 0, &s, &sl) == 0)
            m->dataset = strndup(s, (size_t)sl);
    }
    phiq_gguf_close(g);
    return rc;
}

static int load_dat(phiq_imatrix *m, const char *path) {
    phiq_map map;
    if (phiq_map_open(&map, path) < 0) return PHIQ_EIO;
    const uint8_t *p = map.data, *end = map.data + map.size;
    int rc = 0;
#define NEED(n)                                                                                                        \
    do {                                                                                                               \
        if ((size_t)(end - p) < (size_t)(n)) {                                                                         \
            rc = phiq_fail(PHIQ_EFORMAT, "%s: truncated imatrix", path);                                               \
            goto done;                                                                                                 \
        }                                                                                                              \
    } while (0)
    int32_t n_entries;
    NEED(4);
    memcpy(&n_entries, p, 4);
    p += 4;
    if (n_entries <= 0 || n_entries > 1000000) {
        rc = phiq_fail(PHIQ_EFORMAT, "%s: bad entry count %d", path, n_entries);
        goto done;
    }
    for (int32_t i = 0; i < n_entries; i++) {
        int32_t len, ncall, nval;
        NEED(4);
        memcpy(&len, p, 4);
        p += 4;
        if (len <= 0 || len >= PHIQ_GGUF_MAX_NAME) {
            rc = phiq_fail(PHIQ_EFORMAT, "%s: entry %d has a bad name length", path, i);
            goto done;
        }
        NEED(len);
        const char *name = (const char *)p;
        p += len;
        NEED(8);
        memcpy(&ncall, p, 4);
        memcpy(&nval, p + 4, 4);
        p += 8;
        if (nval <= 0 || nval > (1 << 28)) {
            rc = phiq_fail(PHIQ_EFORMAT, "%s: entry %.*s has %d values", path, (int)len, name, nval);
            goto done;
        }
        NEED((size_t)nval * 4);
        /* the legacy format does not store the expert count; one matrix */
        imat_entry *e = add_entry(m, name, (size_t)len, nval, 1);
        if (!e) {
            rc = PHIQ_ENOMEM;
            goto done;
        }
        for (int32_t j = 0; j < nval; j++) {
            float v = rd_f32(p + 4 * (size_t)j);
            e->w[j] = ncall > 0 ? v / (float)ncall : v;
        }
        p += (size_t)nval * 4;
        if ((rc = check_finite(path, e)) < 0) goto done;
    }
    if ((size_t)(end - p) >= 8) { /* optional: chunk count and dataset name */
        int32_t chunks, dl;
        memcpy(&chunks, p, 4);
        memcpy(&dl, p + 4, 4);
        p += 8;
        m->chunks = chunks;
        if (dl > 0 && (size_t)(end - p) >= (size_t)dl) m->dataset = strndup((const char *)p, (size_t)dl);
    }
#undef NEED
done:
    phiq_map_close(&map);
    return rc;
}

phiq_imatrix *phiq_imatrix_load(const char *path) {
    phiq_imatrix *m = calloc(1, sizeof *m);
    if (!m) return phiq_fail_null(PHIQ_ENOMEM, "out of memory");
    if (!phiq_file_exists(path)) {
        free(m);
        return phiq_fail_null(PHIQ_EIO, "%s: cannot open", path);
    }
    int rc = phiq_gguf_sniff(path) ? load_gguf(m, path) : load_dat(m, path);
    if (rc == 0 && m->n == 0) rc = phiq_fail(PHIQ_EFORMAT, "%s: no importance-matrix entries", path);
    if (rc < 0) {
        phiq_imatrix_free(m);
        return NULL;
    }
    return m;
}

int phiq_imatrix_n_entries(const phiq_imatrix *m) { return m->n; }
int phiq_imatrix_chunks(const phiq_imatrix *m) { return m->chunks; }
const char *phiq_imatrix_dataset(const phiq_imatrix *m) { return m->dataset; }

const float *phiq_imatrix_find(const phiq_imatrix *m, const char *tensor, int64_t *ne0, int *n_mat) {
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->e[i].name, tensor)) {
            *ne0 = m->e[i].ne0;
            *n_mat = m->e[i].n_mat;
            return m->e[i].w;
        }
    return NULL;
}
