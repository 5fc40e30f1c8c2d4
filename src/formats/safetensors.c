/* safetensors.c — reading (memory-mapped, fully validated) and writing
 * (streamed) .safetensors files. See safetensors.h for the layout.
 *
 * The file is untrusted: every number from the JSON header is range-checked
 * before it becomes an offset, and the tensors are sorted by offset so that
 * overlap is one linear pass. Tensors are kept in data order (offset order),
 * which is also the order a streaming converter wants to read them in.
 */
#include "formats/safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

/* Header JSON above this is refused: real checkpoints stay under ~1 MB even
 * for Phi-3.5-MoE's ~10k tensors per shard; the reference reader uses 100 MB. */
#define ST_MAX_HEADER (100u << 20)
/* Element counts and byte sizes must stay exactly representable in a double
 * (cJSON's number type) and far from int64 overflow. */
#define ST_MAX_EXACT 9007199254740992.0 /* 2^53 */

struct phiq_st {
    phiq_map map;
    int n;
    phiq_st_tensor *t; /* sorted by data offset */
    uint64_t *off;     /* off[i] = start of t[i] in the blob */
    int *hash;         /* open addressing over names: index+1, 0 = empty */
    int hcap;
};

static uint32_t st_hash(const char *s) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static int st_dtype(const char *s, phiq_st_dtype *dt, int *elsize) {
    static const struct { const char *name; phiq_st_dtype dt; int size; } tab[] = {
        {"F32", PHIQ_ST_F32, 4}, {"F16", PHIQ_ST_F16, 2}, {"BF16", PHIQ_ST_BF16, 2},
        {"F64", PHIQ_ST_OTHER, 8}, {"I64", PHIQ_ST_OTHER, 8}, {"U64", PHIQ_ST_OTHER, 8},
        {"I32", PHIQ_ST_OTHER, 4}, {"U32", PHIQ_ST_U32, 4}, {"I16", PHIQ_ST_OTHER, 2},
        {"U16", PHIQ_ST_OTHER, 2}, {"I8", PHIQ_ST_OTHER, 1}, {"U8", PHIQ_ST_OTHER, 1},
        {"BOOL", PHIQ_ST_OTHER, 1}, {"F8_E4M3", PHIQ_ST_OTHER, 1}, {"F8_E5M2", PHIQ_ST_OTHER, 1},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (!strcmp(s, tab[i].name)) {
            *dt = tab[i].dt;
            *elsize = tab[i].size;
            return 0;
        }
    return -1;
}

static const char *st_dtype_name(phiq_st_dtype dt) {
    switch (dt) {
    case PHIQ_ST_F32: return "F32";
    case PHIQ_ST_F16: return "F16";
    case PHIQ_ST_BF16: return "BF16";
    case PHIQ_ST_U32: return "U32";
    default: return NULL;
    }
}

static int st_elsize(phiq_st_dtype dt) { return dt == PHIQ_ST_F32 || dt == PHIQ_ST_U32 ? 4 : 2; }
int phiq_st_dtype_size(phiq_st_dtype dt) { return st_elsize(dt); }

/* A JSON number that is a non-negative integer representable exactly. */
static int st_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0) || d > ST_MAX_EXACT || d != floor(d)) return -1;
    *out = (uint64_t)d;
    return 0;
}

void phiq_st_close(phiq_st *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) {
        free((char *)st->t[i].name);
        free((char *)st->t[i].dtype_name);
    }
    free(st->t);
    free(st->off);
    free(st->hash);
    phiq_map_close(&st->map);
    free(st);
}

typedef struct { uint64_t off; int idx; } st_ord;

static int st_cmp_off(const void *a, const void *b) {
    const st_ord *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off ? 1 : (x->idx > y->idx) - (x->idx < y->idx);
}

/* Parses one header entry into t (name already set); returns 0 or an error. */
static int st_parse_entry(phiq_st *st, const char *path, const cJSON *e, phiq_st_tensor *t,
                          uint64_t *a_out, uint64_t blob) {
    const char *nm = t->name;
    if (!cJSON_IsObject(e)) return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s': entry is not an object", path, nm);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd)) return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s': missing dtype", path, nm);
    if (!cJSON_IsArray(js)) return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s': missing shape", path, nm);
    if (!cJSON_IsArray(jo)) return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s': missing data_offsets", path, nm);
    int elsize;
    if (st_dtype(jd->valuestring, &t->dtype, &elsize) != 0)
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s': unknown dtype '%.32s'", path, nm, jd->valuestring);
    t->dtype_name = strdup(jd->valuestring);
    if (!t->dtype_name) return phiq_fail(PHIQ_ENOMEM, "%s: out of memory", path);
    int nd = cJSON_GetArraySize(js);
    if (nd > PHIQ_ST_MAX_DIMS)
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: tensor '%s': %d dimensions (at most %d)", path, nm, nd, PHIQ_ST_MAX_DIMS);
    t->n_dims = nd;
    double numel = 1;
    int k = 0;
    for (const cJSON *d = js->child; d; d = d->next, k++) {
        if (!cJSON_IsNumber(d) || d->valuedouble != floor(d->valuedouble))
            return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s': shape entry is not an integer", path, nm);
        if (d->valuedouble < 0)
            return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s': negative dimension %.0f", path, nm, d->valuedouble);
        if (d->valuedouble == 0)
            return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s': zero dimension (empty tensors are not accepted)", path, nm);
        numel *= d->valuedouble;
        if (numel * elsize > ST_MAX_EXACT)
            return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s': shape too large", path, nm);
        t->shape[k] = (int64_t)d->valuedouble;
    }
    t->n_elements = (int64_t)numel;
    t->nbytes = (uint64_t)t->n_elements * (uint64_t)elsize;
    uint64_t a, b;
    if (cJSON_GetArraySize(jo) != 2 || st_uint(jo->child, &a) || st_uint(jo->child->next, &b))
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s': data_offsets must be two non-negative integers", path, nm);
    if (b < a) return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s': data_offsets end before start", path, nm);
    if (b > blob)
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] beyond the %llu-byte data section (truncated file?)",
                         path, nm, (unsigned long long)a, (unsigned long long)b, (unsigned long long)blob);
    if (b - a != t->nbytes)
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s': %s shape has %llu bytes but data_offsets span %llu", path, nm,
                         t->dtype_name, (unsigned long long)t->nbytes, (unsigned long long)(b - a));
    *a_out = a;
    (void)st;
    return 0;
}

phiq_st *phiq_st_open(const char *path) {
    phiq_st *st = calloc(1, sizeof *st);
    if (!st) return phiq_fail_null(PHIQ_ENOMEM, "%s: out of memory", path);
    if (phiq_map_open(&st->map, path) != 0) { free(st); return NULL; }
    cJSON *root = NULL;
    st_ord *order = NULL;
    phiq_st_tensor *tmp = NULL;
    uint64_t *toff = NULL;
    const uint8_t *p = st->map.data;
    size_t size = st->map.size;
    if (size < 8) { phiq_fail(PHIQ_EFORMAT, "%s: not a safetensors file (%zu bytes, shorter than the 8-byte header length)", path, size); goto fail; }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > size - 8) {
        phiq_fail(PHIQ_EFORMAT, "%s: header length %llu exceeds the file size %zu (truncated or not safetensors)", path, (unsigned long long)hlen, size);
        goto fail;
    }
    if (hlen > ST_MAX_HEADER || hlen < 2) {
        phiq_fail(PHIQ_EFORMAT, "%s: implausible header length %llu", path, (unsigned long long)hlen);
        goto fail;
    }
    const char *hdr = (const char *)p + 8;
    if (hdr[0] != '{') { phiq_fail(PHIQ_EFORMAT, "%s: header is not a JSON object", path); goto fail; }
    const char *endp = NULL;
    root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &endp, 0);
    if (!root || !cJSON_IsObject(root)) {
        long at = endp ? (long)(endp - hdr) : -1;
        if (!root && cJSON_GetErrorPtr()) at = (long)(cJSON_GetErrorPtr() - hdr);
        phiq_fail(PHIQ_EFORMAT, "%s: invalid JSON header (near byte %ld of %llu)", path, at, (unsigned long long)hlen);
        goto fail;
    }
    /* Only spaces (the reference writer's padding) may follow the object. */
    for (const char *q = endp; q && q < hdr + hlen; q++)
        if (*q != ' ' && *q != '\n' && *q != '\t' && *q != '\r' && *q != 0) {
            phiq_fail(PHIQ_EFORMAT, "%s: trailing garbage after the JSON header", path);
            goto fail;
        }
    uint64_t blob = size - 8 - hlen;
    int cap = cJSON_GetArraySize(root);
    tmp = calloc((size_t)cap + 1, sizeof *tmp);
    toff = calloc((size_t)cap + 1, sizeof *toff);
    if (!tmp || !toff) { phiq_fail(PHIQ_ENOMEM, "%s: out of memory", path); goto fail; }
    int n = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!e->string) { phiq_fail(PHIQ_EFORMAT, "%s: header entry without a name", path); goto fail; }
        if (!strcmp(e->string, "__metadata__")) continue;
        phiq_st_tensor *t = &tmp[n];
        t->name = strdup(e->string);
        n++; /* counted now so that fail frees it */
        if (!t->name) { phiq_fail(PHIQ_ENOMEM, "%s: out of memory", path); goto fail; }
        t->file = st->map.path;
        if (st_parse_entry(st, path, e, t, &toff[n - 1], blob) != 0) goto fail;
    }
    cJSON_Delete(root);
    root = NULL;
    /* Sort into data order; check for overlap. */
    order = malloc(((size_t)n + 1) * sizeof *order);
    st->t = calloc((size_t)n + 1, sizeof *st->t);
    st->off = calloc((size_t)n + 1, sizeof *st->off);
    st->hcap = 16;
    while (st->hcap < 2 * n) st->hcap *= 2;
    st->hash = calloc((size_t)st->hcap, sizeof *st->hash);
    if (!order || !st->t || !st->off || !st->hash) { st->n = 0; phiq_fail(PHIQ_ENOMEM, "%s: out of memory", path); goto fail; }
    for (int i = 0; i < n; i++) order[i] = (st_ord){toff[i], i};
    qsort(order, (size_t)n, sizeof *order, st_cmp_off);
    for (int i = 0; i < n; i++) {
        st->t[i] = tmp[order[i].idx];
        st->off[i] = order[i].off;
        st->t[i].data = p + 8 + hlen + st->off[i];
    }
    st->n = n;
    free(tmp); tmp = NULL;
    free(order); order = NULL;
    free(toff); toff = NULL;
    for (int i = 1; i < n; i++)
        if (st->off[i] < st->off[i - 1] + st->t[i - 1].nbytes) {
            phiq_fail(PHIQ_EFORMAT, "%s: tensors '%s' and '%s' overlap in the data section", path, st->t[i - 1].name, st->t[i].name);
            goto fail;
        }
    for (int i = 0; i < n; i++) {
        uint32_t h = st_hash(st->t[i].name) & (uint32_t)(st->hcap - 1);
        while (st->hash[h]) {
            if (!strcmp(st->t[st->hash[h] - 1].name, st->t[i].name)) {
                phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s' appears twice", path, st->t[i].name);
                goto fail;
            }
            h = (h + 1) & (uint32_t)(st->hcap - 1);
        }
        st->hash[h] = i + 1;
    }
    return st;

fail:
    if (tmp) {
        for (int i = 0; i <= cap; i++) { free((char *)tmp[i].name); free((char *)tmp[i].dtype_name); }
        free(tmp);
    }
    cJSON_Delete(root);
    free(order);
    free(toff);
    phiq_st_close(st);
    return NULL;
}

int phiq_st_n_tensors(const phiq_st *st) { return st->n; }

const phiq_st_tensor *phiq_st_tensor_at(const phiq_st *st, int i) {
    return i >= 0 && i < st->n ? &st->t[i] : NULL;
}

const phiq_st_tensor *phiq_st_find(const phiq_st *st, const char *name) {
    uint32_t h = st_hash(name) & (uint32_t)(st->hcap - 1);
    while (st->hash[h]) {
        const phiq_st_tensor *t = &st->t[st->hash[h] - 1];
        if (!strcmp(t->name, name)) return t;
        h = (h + 1) & (uint32_t)(st->hcap - 1);
    }
    return NULL;
}

int phiq_st_to_f32(const phiq_st_tensor *t, int64_t start, int64_t n, float *dst) {
    if (start < 0 || n < 0 || start > t->n_elements || n > t->n_elements - start)
        return phiq_fail(PHIQ_EINVAL, "%s: tensor '%s': element range [%lld, +%lld) outside %lld elements", t->file, t->name,
                         (long long)start, (long long)n, (long long)t->n_elements);
    const uint8_t *src = t->data;
    switch (t->dtype) {
    case PHIQ_ST_F32:
        memcpy(dst, src + start * 4, (size_t)n * 4);
        return 0;
    case PHIQ_ST_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + (start + i) * 2, 2); /* data may be unaligned */
            dst[i] = phiq_f16_to_f32(h);
        }
        return 0;
    case PHIQ_ST_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + (start + i) * 2, 2);
            dst[i] = phiq_bf16_to_f32(h);
        }
        return 0;
    default:
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: tensor '%s': dtype %s cannot be converted to float", t->file, t->name, t->dtype_name);
    }
}

/* ---- writing ---------------------------------------------------------------------- */
#define ST_CHUNK ((uint64_t)32 << 20)

int phiq_st_write(const char *path, const phiq_st_out_tensor *ts, int n, phiq_st_fill_fn fill, void *user) {
    return phiq_st_write_ex(path, ts, n, fill, user, NULL);
}

int phiq_st_write_ex(const char *path, const phiq_st_out_tensor *ts, int n, phiq_st_fill_fn fill, void *user,
                     const phiq_st_write_opts *wo) {
    const bool mlx = wo && wo->mlx_header;
    for (int i = 1; mlx && i < n; i++)
        if (strcmp(ts[i - 1].name, ts[i].name) >= 0)
            return phiq_fail(PHIQ_EINVAL, "%s: tensors must be sorted by name ('%s' before '%s')", path, ts[i - 1].name,
                             ts[i].name);
    cJSON *root = cJSON_CreateObject();
    if (!root) return phiq_fail(PHIQ_ENOMEM, "%s: out of memory", path);
    /* "__metadata__" sorts before every lower-case tensor name */
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    cJSON_AddStringToObject(meta, "format", wo && wo->format ? wo->format : "pt");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const char *dn = st_dtype_name(ts[i].dtype);
        if (!dn || ts[i].n_dims < 0 || ts[i].n_dims > PHIQ_ST_MAX_DIMS) {
            cJSON_Delete(root);
            return phiq_fail(PHIQ_EINVAL, "%s: tensor '%s': cannot write this dtype/rank", path, ts[i].name);
        }
        uint64_t numel = 1;
        cJSON *e = cJSON_AddObjectToObject(root, ts[i].name);
        for (int d = 0; d < ts[i].n_dims; d++) numel *= (uint64_t)ts[i].shape[d];
        uint64_t nb = numel * (uint64_t)st_elsize(ts[i].dtype);
        cJSON *of = cJSON_CreateArray();
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + nb)));
        if (mlx) cJSON_AddItemToObject(e, "data_offsets", of); /* sorted keys: data_offsets, dtype, shape */
        cJSON_AddStringToObject(e, "dtype", dn);
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < ts[i].n_dims; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)ts[i].shape[d]));
        if (!mlx) cJSON_AddItemToObject(e, "data_offsets", of);
        off += nb;
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json) return phiq_fail(PHIQ_ENOMEM, "%s: out of memory", path);
    /* The reference writer pads the header with spaces so the data starts
     * 8-byte aligned. */
    size_t jl = strlen(json), padded = mlx ? jl : (jl + 7) & ~(size_t)7;
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    phiq_outfile o;
    int rc = phiq_outfile_open(&o, path);
    if (rc) { free(json); return rc; }
    rc = phiq_outfile_write(&o, len8, 8);
    if (!rc) rc = phiq_outfile_write(&o, json, jl);
    if (!rc) rc = phiq_outfile_write(&o, "        ", padded - jl);
    free(json);
    void *buf = NULL;
    for (int i = 0; i < n && !rc; i++) {
        uint64_t numel = 1;
        for (int d = 0; d < ts[i].n_dims; d++) numel *= (uint64_t)ts[i].shape[d];
        uint64_t nb = numel * (uint64_t)st_elsize(ts[i].dtype);
        if (!buf) buf = malloc(ST_CHUNK);
        if (!buf) { rc = phiq_fail(PHIQ_ENOMEM, "%s: out of memory", path); break; }
        for (uint64_t done = 0; done < nb && !rc; ) {
            uint64_t k = nb - done < ST_CHUNK ? nb - done : ST_CHUNK;
            rc = fill(user, i, buf, k);
            if (!rc) rc = phiq_outfile_write(&o, buf, (size_t)k);
            done += k;
        }
    }
    free(buf);
    if (rc) { phiq_outfile_abort(&o); return rc; }
    return phiq_outfile_commit(&o);
}
