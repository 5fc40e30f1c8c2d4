/* gguf.c — GGUF v2/v3 reader (mmap, validated completely at open, following
 * the checks of llama.cpp's gguf.cpp) and the streaming GGUF v3 writer (see
 * gguf.h for the contract).
 *
 * Layout (all little-endian, no implicit padding):
 *   "GGUF" u32 version, i64 n_tensors, i64 n_kv,
 *   n_kv × { string key, i32 vtype, value },
 *   n_tensors × { string name, u32 n_dims, i64 ne[n_dims], i32 type, u64 offset },
 *   zeros to PAD(., alignment) (only when n_tensors > 0, as llama.cpp and gguf-py),
 *   tensor data, each tensor padded to alignment.
 * string = u64 length + bytes (no NUL); array value = i32 elem type, u64 count,
 * count payloads.
 */
#include "formats/gguf.h"

#include <stdlib.h>

#include "core/common.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c reads and writes little-endian values with memcpy: big-endian hosts are not supported"
#endif

#define GGUF_MAX_STRING ((uint64_t)1 << 30)    /* llama.cpp GGUF_MAX_STRING_LENGTH */
#define GGUF_MAX_ARRAY ((uint64_t)1 << 30)     /* llama.cpp GGUF_MAX_ARRAY_ELEMENTS */
#define GGUF_HEADER_SIZE 24                    /* magic, version, n_tensors, n_kv */
#define GGUF_MIN_KV_SIZE 14                    /* u64 len, 1 key byte, i32 type, 1 payload byte */
#define GGUF_MIN_TINFO_SIZE 32                 /* u64 len, u32 n_dims, i64 ne0, i32 type, u64 offset */
#define GGUF_ALIGNMENT_KEY "general.alignment"

static uint64_t pad_to(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static const struct {
    const char *name;
    size_t size;
} vtypes[PHIQ_GGUF_VTYPE_COUNT] = {
    [PHIQ_GGUF_UINT8] = {"UINT8", 1},     [PHIQ_GGUF_INT8] = {"INT8", 1},
    [PHIQ_GGUF_UINT16] = {"UINT16", 2},   [PHIQ_GGUF_INT16] = {"INT16", 2},
    [PHIQ_GGUF_UINT32] = {"UINT32", 4},   [PHIQ_GGUF_INT32] = {"INT32", 4},
    [PHIQ_GGUF_FLOAT32] = {"FLOAT32", 4}, [PHIQ_GGUF_BOOL] = {"BOOL", 1},
    [PHIQ_GGUF_STRING] = {"STRING", 0},   [PHIQ_GGUF_ARRAY] = {"ARRAY", 0},
    [PHIQ_GGUF_UINT64] = {"UINT64", 8},   [PHIQ_GGUF_INT64] = {"INT64", 8},
    [PHIQ_GGUF_FLOAT64] = {"FLOAT64", 8},
};

size_t phiq_gguf_vtype_size(int vtype) {
    return vtype >= 0 && vtype < PHIQ_GGUF_VTYPE_COUNT ? vtypes[vtype].size : 0;
}

const char *phiq_gguf_vtype_name(int vtype) {
    return vtype >= 0 && vtype < PHIQ_GGUF_VTYPE_COUNT ? vtypes[vtype].name : "INVALID";
}

/* ---- name hash (open addressing, FNV-1a) ---------------------------------- */
/* Maps NUL-terminated names to indices so that find_kv / find_tensor and the
 * uniqueness checks at open are O(1) per name rather than O(n). */
typedef struct name_index {
    int64_t *slots; /* index or -1 */
    uint64_t mask;
} name_index;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static int name_index_init(name_index *ix, int64_t n) {
    uint64_t cap = 16;
    while (cap < (uint64_t)n * 2) cap *= 2;
    ix->slots = malloc(cap * sizeof *ix->slots);
    if (!ix->slots) return PHIQ_ENOMEM;
    for (uint64_t i = 0; i < cap; i++) ix->slots[i] = -1;
    ix->mask = cap - 1;
    return 0;
}

/* names[i] is the name of entry i. Returns the index already holding name, or
 * -1 after inserting i. */
static int64_t name_index_insert(name_index *ix, const char *const *names, size_t stride, int64_t i) {
    const char *name = *(const char *const *)((const char *)names + (size_t)i * stride);
    for (uint64_t h = fnv1a(name) & ix->mask;; h = (h + 1) & ix->mask) {
        int64_t j = ix->slots[h];
        if (j < 0) {
            ix->slots[h] = i;
            return -1;
        }
        if (!strcmp(*(const char *const *)((const char *)names + (size_t)j * stride), name)) return j;
    }
}

static int64_t name_index_find(const name_index *ix, const char *const *names, size_t stride, const char *name) {
    if (!ix->slots || !names || !name) return -1;
    for (uint64_t h = fnv1a(name) & ix->mask;; h = (h + 1) & ix->mask) {
        int64_t j = ix->slots[h];
        if (j < 0) return -1;
        if (!strcmp(*(const char *const *)((const char *)names + (size_t)j * stride), name)) return j;
    }
}

/* ---- reader --------------------------------------------------------------- */
typedef struct gguf_kv {
    const char *key;   /* NUL-terminated copy (in g->pool) */
    uint64_t key_off;  /* its offset in the pool (the pool moves while parsing) */
    int type;          /* phiq_gguf_vtype */
    int elem_type;     /* arrays: element vtype */
    uint64_t n;        /* arrays: element count; strings: byte length */
    uint64_t val;      /* file offset of the value payload: scalar bytes, string bytes, first array element */
    uint64_t raw_beg;  /* file range of the whole encoded value (after the i32 type), for copying */
    uint64_t raw_end;
    uint64_t *str_off; /* string arrays: file offset of each element's u64 length */
} gguf_kv;

struct phiq_gguf {
    phiq_map map;
    int owns_map;
    char *name; /* for messages */
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;
    int64_t n_kv, n_tensors;
    gguf_kv *kv;
    phiq_gguf_tensor *tensors;
    char *pool; /* NUL-terminated keys and tensor names */
    name_index kv_ix, tensor_ix;
};

/* (names, stride) of the NUL-terminated names of an entry array, NULL when empty */
#define KV_NAMES(g) ((g)->kv ? (const char *const *)&(g)->kv[0].key : NULL), sizeof *(g)->kv
#define T_NAMES(g) ((g)->tensors ? (const char *const *)&(g)->tensors[0].name : NULL), sizeof *(g)->tensors

/* Indexes n names into ix; a name seen twice is a format error naming WHAT
 * and the two ENTRIES ("duplicate key 'k' (entries 3 and 7)"). */
static int index_unique(const phiq_gguf *g, name_index *ix, const char *const *names, size_t stride, int64_t n,
                        const char *what, const char *entries) {
    if (name_index_init(ix, n)) return phiq_fail(PHIQ_ENOMEM, "%s: out of memory", g->name);
    for (int64_t i = 0; i < n; i++) {
        int64_t j = name_index_insert(ix, names, stride, i);
        if (j >= 0)
            return phiq_fail(PHIQ_EFORMAT, "%s: duplicate %s '%s' (%s %lld and %lld)", g->name, what,
                             *(const char *const *)((const char *)names + (size_t)i * stride), entries, (long long)j,
                             (long long)i);
    }
    return 0;
}
#define W_NAMES(w) ((w)->t ? (const char *const *)&(w)->t[0].name : NULL), sizeof *(w)->t

typedef struct cursor {
    const uint8_t *d;
    uint64_t size, pos;
    const char *name;
} cursor;

static int cur_need(cursor *c, uint64_t n, const char *what) {
    if (c->size - c->pos < n)
        return phiq_fail(PHIQ_EFORMAT, "%s: truncated: %s at offset %llu needs %llu bytes, file has %llu", c->name, what,
                         (unsigned long long)c->pos, (unsigned long long)n, (unsigned long long)c->size);
    return 0;
}

static int cur_read(cursor *c, void *out, uint64_t n, const char *what) {
    int rc = cur_need(c, n, what);
    if (rc) return rc;
    memcpy(out, c->d + c->pos, n);
    c->pos += n;
    return 0;
}

/* Reads a string header: checks the length cap and that the bytes are inside
 * the file; leaves the cursor after the bytes. */
static int cur_string(cursor *c, uint64_t *off, uint64_t *len, const char *what) {
    int rc = cur_read(c, len, 8, what);
    if (rc) return rc;
    if (*len > GGUF_MAX_STRING)
        return phiq_fail(PHIQ_EFORMAT, "%s: %s at offset %llu has length %llu, more than the 1 GiB maximum", c->name, what,
                         (unsigned long long)(c->pos - 8), (unsigned long long)*len);
    if (*len > c->size - c->pos)
        return phiq_fail(PHIQ_EFORMAT, "%s: %s at offset %llu has length %llu, past the end of the file (%llu bytes)",
                         c->name, what, (unsigned long long)(c->pos - 8), (unsigned long long)*len,
                         (unsigned long long)c->size);
    *off = c->pos;
    c->pos += *len;
    return 0;
}

/* Growable byte pool for the NUL-terminated copies; entries are referenced by
 * offset until parsing ends, then turned into pointers. */
typedef struct pool {
    char *p;
    uint64_t n, cap;
} pool;

static int pool_add(pool *pl, const uint8_t *s, uint64_t len, uint64_t *off) {
    if (pl->cap - pl->n < len + 1) {
        uint64_t cap = pl->cap ? pl->cap : 4096;
        while (cap - pl->n < len + 1) cap *= 2;
        char *np = realloc(pl->p, cap);
        if (!np) return PHIQ_ENOMEM;
        pl->p = np;
        pl->cap = cap;
    }
    *off = pl->n;
    memcpy(pl->p + pl->n, s, len);
    pl->p[pl->n + len] = 0;
    pl->n += len + 1;
    return 0;
}

static int parse_value(phiq_gguf *g, cursor *c, gguf_kv *kv, const char *key) {
    int rc;
    int32_t t;
    char what[160];
    snprintf(what, sizeof what, "value of key '%.100s'", key);
    if ((rc = cur_read(c, &t, 4, what))) return rc;
    if (t < 0 || t >= PHIQ_GGUF_VTYPE_COUNT)
        return phiq_fail(PHIQ_EFORMAT, "%s: key '%s' has invalid GGUF type %d", g->name, key, (int)t);
    kv->type = t;
    kv->raw_beg = c->pos;
    kv->n = 1;
    if (t == PHIQ_GGUF_STRING) {
        if ((rc = cur_string(c, &kv->val, &kv->n, what))) return rc;
    } else if (t == PHIQ_GGUF_ARRAY) {
        int32_t et;
        if ((rc = cur_read(c, &et, 4, what))) return rc;
        if (et == PHIQ_GGUF_ARRAY)
            return phiq_fail(PHIQ_EFORMAT, "%s: key '%s' is a nested array, which GGUF does not allow", g->name, key);
        if (et < 0 || et >= PHIQ_GGUF_VTYPE_COUNT)
            return phiq_fail(PHIQ_EFORMAT, "%s: key '%s' is an array of invalid GGUF type %d", g->name, key, (int)et);
        kv->elem_type = et;
        if ((rc = cur_read(c, &kv->n, 8, what))) return rc;
        if (kv->n > GGUF_MAX_ARRAY)
            return phiq_fail(PHIQ_EFORMAT, "%s: key '%s' is an array of %llu elements, more than the maximum 2^30",
                             g->name, key, (unsigned long long)kv->n);
        kv->val = c->pos;
        if (et == PHIQ_GGUF_STRING) {
            /* each element is at least its 8-byte length: reject impossible counts before allocating */
            if (kv->n > (c->size - c->pos) / 8)
                return phiq_fail(PHIQ_EFORMAT, "%s: key '%s' is an array of %llu strings, more than fit in the file",
                                 g->name, key, (unsigned long long)kv->n);
            kv->str_off = malloc((size_t)(kv->n ? kv->n : 1) * sizeof *kv->str_off);
            if (!kv->str_off) return phiq_fail(PHIQ_ENOMEM, "%s: out of memory", g->name);
            for (uint64_t j = 0; j < kv->n; j++) {
                uint64_t off, len;
                kv->str_off[j] = c->pos;
                if (cur_string(c, &off, &len, what)) { /* redo with the element named in the message */
                    snprintf(what, sizeof what, "element %llu of key '%.100s'", (unsigned long long)j, key);
                    c->pos = kv->str_off[j];
                    return cur_string(c, &off, &len, what);
                }
            }
        } else {
            uint64_t es = vtypes[et].size;
            if (kv->n > (c->size - c->pos) / es)
                return phiq_fail(PHIQ_EFORMAT, "%s: key '%s' is an array of %llu %s, past the end of the file (%llu bytes)",
                                 g->name, key, (unsigned long long)kv->n, vtypes[et].name,
                                 (unsigned long long)c->size);
            c->pos += kv->n * es;
        }
    } else {
        kv->val = c->pos;
        if ((rc = cur_need(c, vtypes[t].size, what))) return rc;
        c->pos += vtypes[t].size;
    }
    kv->raw_end = c->pos;
    return 0;
}

/* Element count and byte size of a tensor info, with llama.cpp's overflow
 * rules: the element count must stay below INT64_MAX and the byte size must
 * fit in 64 bits. */
static int tensor_sizes(const char *who, const char *name, int type, const int64_t ne[4], uint64_t *nbytes) {
    int64_t blck = phiq_ggml_block_size(type);
    if (ne[0] % blck)
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s' of type %s has %lld elements per row, not a multiple of the block size %lld",
                         who, name, phiq_ggml_type_name(type), (long long)ne[0], (long long)blck);
    int64_t nel = 1;
    for (int d = 0; d < 4; d++)
        if (ne[d] == 0) nel = 0;
    if (nel) {
        for (int d = 0; d < 4; d++)
            if (__builtin_mul_overflow(nel, ne[d], &nel) || nel == INT64_MAX)
                return phiq_fail(PHIQ_EFORMAT,
                                 "%s: tensor '%s' with shape (%lld, %lld, %lld, %lld) has too many elements (overflow)", who,
                                 name, (long long)ne[0], (long long)ne[1], (long long)ne[2], (long long)ne[3]);
    }
    uint64_t blocks = (uint64_t)nel / (uint64_t)blck, nb;
    if (__builtin_mul_overflow(blocks, (uint64_t)phiq_ggml_type_size(type), &nb))
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s' with shape (%lld, %lld, %lld, %lld) has a byte size that overflows",
                         who, name, (long long)ne[0], (long long)ne[1], (long long)ne[2], (long long)ne[3]);
    *nbytes = nb;
    return 0;
}

static int parse_tensor(phiq_gguf *g, cursor *c, int64_t i, phiq_gguf_tensor *t, pool *pl, uint64_t *name_off) {
    int rc;
    uint64_t off, len;
    char what[160];
    snprintf(what, sizeof what, "name of tensor %lld", (long long)i);
    if ((rc = cur_string(c, &off, &len, what))) return rc;
    if (len >= PHIQ_GGUF_MAX_NAME)
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor %lld has a name of %llu bytes; names must be shorter than %d", g->name,
                         (long long)i, (unsigned long long)len, PHIQ_GGUF_MAX_NAME);
    char name[PHIQ_GGUF_MAX_NAME];
    memcpy(name, c->d + off, len);
    name[len] = 0;
    if (strlen(name) != len)
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor %lld has a name containing a NUL byte", g->name, (long long)i);
    if ((rc = pool_add(pl, c->d + off, len, name_off))) return phiq_fail(rc, "%s: out of memory", g->name);
    snprintf(what, sizeof what, "info of tensor '%s'", name);

    uint32_t n_dims;
    if ((rc = cur_read(c, &n_dims, 4, what))) return rc;
    if (n_dims < 1 || n_dims > 4)
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s' has %u dimensions; GGUF allows 1 to 4", g->name, name, n_dims);
    t->n_dims = (int)n_dims;
    for (int d = 0; d < 4; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if ((rc = cur_read(c, &t->ne[d], 8, what))) return rc;
        if (t->ne[d] < 0)
            return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s' dimension %u has %lld elements (negative)", g->name, name, d,
                             (long long)t->ne[d]);
    }
    int32_t type;
    if ((rc = cur_read(c, &type, 4, what))) return rc;
    if (type < 0 || type >= PHIQ_GGML_TYPE_COUNT)
        return phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s' has invalid ggml type %d (valid: 0..%d)", g->name, name, (int)type,
                         PHIQ_GGML_TYPE_COUNT - 1);
    if (!phiq_ggml_type_valid(type))
        return phiq_fail(PHIQ_EUNSUPPORTED, "%s: tensor '%s' has ggml type %d, which is removed or not supported", g->name,
                         name, (int)type);
    t->type = type;
    if ((rc = tensor_sizes(g->name, name, type, t->ne, &t->nbytes))) return rc;
    if ((rc = cur_read(c, &t->offset, 8, what))) return rc;
    return 0;
}

static int parse(phiq_gguf *g) {
    cursor c = {g->map.data, g->map.size, 0, g->name};
    pool pl = {0};
    uint64_t *off = NULL; /* pool offsets of tensor names */
    size_t cap = 0, off_cap = 0;
    int rc;
    uint8_t magic[4];
    if ((rc = cur_read(&c, magic, 4, "magic"))) goto fail;
    if (memcmp(magic, "GGUF", 4)) {
        rc = phiq_fail(PHIQ_EFORMAT, "%s: not a GGUF file (magic %02x %02x %02x %02x, expected \"GGUF\")", g->name, magic[0],
                       magic[1], magic[2], magic[3]);
        goto fail;
    }
    if ((rc = cur_read(&c, &g->version, 4, "version"))) goto fail;
    if (g->version == 0 || (g->version & 0xFFFF) == 0) {
        rc = phiq_fail(PHIQ_EFORMAT, "%s: bad GGUF version %u (endianness mismatch?)", g->name, g->version);
        goto fail;
    }
    if (g->version == 1) {
        rc = phiq_fail(PHIQ_EUNSUPPORTED, "%s: GGUF version 1 is no longer supported", g->name);
        goto fail;
    }
    if (g->version > 3) {
        rc = phiq_fail(PHIQ_EUNSUPPORTED, "%s: GGUF version %u is newer than supported (3)", g->name, g->version);
        goto fail;
    }
    int64_t n_tensors, n_kv;
    if ((rc = cur_read(&c, &n_tensors, 8, "tensor count"))) goto fail;
    if ((rc = cur_read(&c, &n_kv, 8, "key-value count"))) goto fail;
    uint64_t rest = c.size - c.pos;
    if (n_tensors < 0 || (uint64_t)n_tensors > rest / GGUF_MIN_TINFO_SIZE) {
        rc = phiq_fail(PHIQ_EFORMAT, "%s: tensor count %lld is impossible for a file of %llu bytes", g->name,
                       (long long)n_tensors, (unsigned long long)c.size);
        goto fail;
    }
    if (n_kv < 0 || (uint64_t)n_kv > rest / GGUF_MIN_KV_SIZE) {
        rc = phiq_fail(PHIQ_EFORMAT, "%s: key-value count %lld is impossible for a file of %llu bytes", g->name,
                       (long long)n_kv, (unsigned long long)c.size);
        goto fail;
    }

    /* key-value pairs; arrays grow as entries are actually read so a lying
     * count cannot make us allocate much more than the file holds */
    for (int64_t i = 0; i < n_kv; i++) {
        if ((rc = phiq_grow((void **)&g->kv, &cap, (size_t)i + 1, 64, sizeof *g->kv))) {
            rc = phiq_fail(PHIQ_ENOMEM, "%s: out of memory", g->name);
            goto fail;
        }
        g->n_kv = i + 1; /* so that close frees str_off of a partial entry */
        uint64_t koff, klen;
        char what[64];
        snprintf(what, sizeof what, "key %lld", (long long)i);
        if ((rc = cur_string(&c, &koff, &klen, what))) goto fail;
        if (klen == 0) {
            rc = phiq_fail(PHIQ_EFORMAT, "%s: key %lld is empty", g->name, (long long)i);
            goto fail;
        }
        if (memchr(c.d + koff, 0, klen)) {
            rc = phiq_fail(PHIQ_EFORMAT, "%s: key %lld contains a NUL byte", g->name, (long long)i);
            goto fail;
        }
        if ((rc = pool_add(&pl, c.d + koff, klen, &g->kv[i].key_off))) {
            rc = phiq_fail(PHIQ_ENOMEM, "%s: out of memory", g->name);
            goto fail;
        }
        if ((rc = parse_value(g, &c, &g->kv[i], pl.p + g->kv[i].key_off))) goto fail;
    }
    for (int64_t i = 0; i < n_kv; i++) g->kv[i].key = pl.p + g->kv[i].key_off;
    if ((rc = index_unique(g, &g->kv_ix, KV_NAMES(g), n_kv, "key", "entries"))) goto fail;

    g->alignment = PHIQ_GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = name_index_find(&g->kv_ix, KV_NAMES(g), GGUF_ALIGNMENT_KEY);
    if (ai >= 0) {
        if (g->kv[ai].type != PHIQ_GGUF_UINT32) {
            rc = phiq_fail(PHIQ_EFORMAT, "%s: key '%s' has type %s, expected UINT32", g->name, GGUF_ALIGNMENT_KEY,
                           vtypes[g->kv[ai].type].name);
            goto fail;
        }
        memcpy(&g->alignment, c.d + g->kv[ai].val, 4);
        if (g->alignment == 0 || (g->alignment & (g->alignment - 1))) {
            rc = phiq_fail(PHIQ_EFORMAT, "%s: alignment %u is not a power of two", g->name, g->alignment);
            goto fail;
        }
    }

    /* tensor infos */
    cap = 0;
    for (int64_t i = 0; i < n_tensors; i++) {
        if ((rc = phiq_grow((void **)&g->tensors, &cap, (size_t)i + 1, 64, sizeof *g->tensors)) ||
            (rc = phiq_grow((void **)&off, &off_cap, (size_t)i + 1, 64, sizeof *off))) {
            rc = phiq_fail(PHIQ_ENOMEM, "%s: out of memory", g->name);
            goto fail;
        }
        if ((rc = parse_tensor(g, &c, i, &g->tensors[i], &pl, &off[i]))) goto fail;
    }
    g->n_tensors = n_tensors;
    g->pool = pl.p; /* complete now: turn offsets into pointers (the pool moved while growing) */
    pl.p = NULL;
    for (int64_t i = 0; i < n_kv; i++) g->kv[i].key = g->pool + g->kv[i].key_off;
    for (int64_t i = 0; i < n_tensors; i++) g->tensors[i].name = g->pool + off[i];
    if ((rc = index_unique(g, &g->tensor_ix, T_NAMES(g), n_tensors, "tensor name", "tensors"))) goto fail;

    /* data section: starts aligned (padding only skipped when there are
     * tensors, as llama.cpp does); offsets strictly sequential */
    g->data_offset = n_tensors > 0 ? pad_to(c.pos, g->alignment) : c.pos;
    if (g->data_offset > c.size) {
        rc = phiq_fail(PHIQ_EFORMAT, "%s: truncated: data section starts at %llu, past the end of the file (%llu bytes)",
                       g->name, (unsigned long long)g->data_offset, (unsigned long long)c.size);
        goto fail;
    }
    uint64_t expect = 0, blob = c.size - g->data_offset;
    for (int64_t i = 0; i < n_tensors; i++) {
        phiq_gguf_tensor *t = &g->tensors[i];
        if (t->offset != expect) {
            rc = phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s' has offset %llu, expected %llu", g->name, t->name,
                           (unsigned long long)t->offset, (unsigned long long)expect);
            goto fail;
        }
        if (t->nbytes > blob || t->offset > blob - t->nbytes) {
            rc = phiq_fail(PHIQ_EFORMAT, "%s: tensor '%s' data (%llu bytes at %llu) extends past the end of the file (%llu bytes)",
                           g->name, t->name, (unsigned long long)t->nbytes,
                           (unsigned long long)(g->data_offset + t->offset), (unsigned long long)c.size);
            goto fail;
        }
        t->data = c.d + g->data_offset + t->offset;
        /* nbytes <= blob < 2^64 - alignment, so the padded size cannot wrap */
        expect += pad_to(t->nbytes, g->alignment);
    }
    free(off);
    return 0;
fail:
    if (!g->pool) {
        g->pool = pl.p;
    } else {
        free(pl.p);
    }
    free(off);
    return rc;
}

static phiq_gguf *open_map(phiq_map *m, int owns, const char *name) {
    phiq_gguf *g = calloc(1, sizeof *g);
    char *nm = strdup(name ? name : "(memory)");
    if (!g || !nm) {
        free(g);
        free(nm);
        if (owns) phiq_map_close(m);
        return phiq_fail_null(PHIQ_ENOMEM, "%s: out of memory", name ? name : "(memory)");
    }
    g->map = *m;
    g->owns_map = owns;
    g->name = nm;
    if (parse(g) != 0) {
        phiq_gguf_close(g);
        return NULL;
    }
    return g;
}

phiq_gguf *phiq_gguf_open(const char *path) {
    phiq_map m;
    if (!path) return phiq_fail_null(PHIQ_EINVAL, "gguf: no path given");
    if (phiq_map_open(&m, path) != 0) return NULL;
    return open_map(&m, 1, path);
}

phiq_gguf *phiq_gguf_open_memory(const void *data, size_t size, const char *name) {
    phiq_map m = {data, size, NULL};
    return open_map(&m, 0, name);
}

void phiq_gguf_close(phiq_gguf *g) {
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) free(g->kv[i].str_off);
    PHIQ_FREE_ALL(g->kv, g->tensors, g->pool, g->kv_ix.slots, g->tensor_ix.slots, g->name);
    if (g->owns_map) phiq_map_close(&g->map);
    free(g);
}

const char *phiq_gguf_path(const phiq_gguf *g) { return g->name; }
uint32_t phiq_gguf_version(const phiq_gguf *g) { return g->version; }
uint32_t phiq_gguf_alignment(const phiq_gguf *g) { return g->alignment; }
uint64_t phiq_gguf_file_size(const phiq_gguf *g) { return g->map.size; }
uint64_t phiq_gguf_data_offset(const phiq_gguf *g) { return g->data_offset; }
int64_t phiq_gguf_n_kv(const phiq_gguf *g) { return g->n_kv; }

static const gguf_kv *kv_at(const phiq_gguf *g, int64_t i) { return i >= 0 && i < g->n_kv ? &g->kv[i] : NULL; }

const char *phiq_gguf_kv_key(const phiq_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv ? kv->key : NULL;
}

int phiq_gguf_kv_type(const phiq_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv ? kv->type : -1;
}

int64_t phiq_gguf_find_kv(const phiq_gguf *g, const char *key) {
    if (!g->n_kv) return -1;
    return name_index_find(&g->kv_ix, KV_NAMES(g), key);
}

static int get_typed(const phiq_gguf *g, const char *key, int type, void *out) {
    int64_t i = phiq_gguf_find_kv(g, key);
    if (i < 0) return phiq_fail(PHIQ_EUNSUPPORTED, "%s: key '%s' not found", g->name, key ? key : "(null)");
    const gguf_kv *kv = &g->kv[i];
    if (kv->type != type)
        return phiq_fail(PHIQ_EFORMAT, "%s: key %s has type %s, expected %s", g->name, key, vtypes[kv->type].name,
                         vtypes[type].name);
    memcpy(out, g->map.data + kv->val, vtypes[type].size);
    return 0;
}

int phiq_gguf_get_u32(const phiq_gguf *g, const char *key, uint32_t *out) { return get_typed(g, key, PHIQ_GGUF_UINT32, out); }
int phiq_gguf_get_i32(const phiq_gguf *g, const char *key, int32_t *out) { return get_typed(g, key, PHIQ_GGUF_INT32, out); }
int phiq_gguf_get_u64(const phiq_gguf *g, const char *key, uint64_t *out) { return get_typed(g, key, PHIQ_GGUF_UINT64, out); }
int phiq_gguf_get_f32(const phiq_gguf *g, const char *key, float *out) { return get_typed(g, key, PHIQ_GGUF_FLOAT32, out); }

int phiq_gguf_get_bool(const phiq_gguf *g, const char *key, bool *out) {
    int8_t b = 0;
    int rc = get_typed(g, key, PHIQ_GGUF_BOOL, &b);
    if (!rc) *out = b != 0;
    return rc;
}

int phiq_gguf_get_str(const phiq_gguf *g, const char *key, const char **s, uint64_t *len) {
    int64_t i = phiq_gguf_find_kv(g, key);
    if (i < 0) return phiq_fail(PHIQ_EUNSUPPORTED, "%s: key '%s' not found", g->name, key ? key : "(null)");
    const gguf_kv *kv = &g->kv[i];
    if (kv->type != PHIQ_GGUF_STRING)
        return phiq_fail(PHIQ_EFORMAT, "%s: key %s has type %s, expected STRING", g->name, key, vtypes[kv->type].name);
    *s = (const char *)g->map.data + kv->val;
    *len = kv->n;
    return 0;
}

/* Widens one scalar payload of vtype t at p. */
static int widen(int t, const uint8_t *p, int64_t *as_int, double *as_float) {
    int64_t i = 0;
    double f = 0;
    switch (t) {
    case PHIQ_GGUF_UINT8: i = p[0]; f = (double)i; break;
    case PHIQ_GGUF_INT8: i = (int8_t)p[0]; f = (double)i; break;
    case PHIQ_GGUF_BOOL: i = p[0] != 0; f = (double)i; break;
    case PHIQ_GGUF_UINT16: { uint16_t v; memcpy(&v, p, 2); i = v; f = v; break; }
    case PHIQ_GGUF_INT16: { int16_t v; memcpy(&v, p, 2); i = v; f = v; break; }
    case PHIQ_GGUF_UINT32: { uint32_t v; memcpy(&v, p, 4); i = v; f = v; break; }
    case PHIQ_GGUF_INT32: { int32_t v; memcpy(&v, p, 4); i = v; f = v; break; }
    case PHIQ_GGUF_UINT64: { uint64_t v; memcpy(&v, p, 8); i = (int64_t)v; f = (double)v; break; } /* > INT64_MAX wraps */
    case PHIQ_GGUF_INT64: { int64_t v; memcpy(&v, p, 8); i = v; f = (double)v; break; }
    case PHIQ_GGUF_FLOAT32: { float v; memcpy(&v, p, 4); f = v; break; }
    case PHIQ_GGUF_FLOAT64: { double v; memcpy(&v, p, 8); f = v; break; }
    default: return PHIQ_EINVAL;
    }
    if (as_int) *as_int = i;
    if (as_float) *as_float = f;
    return 0;
}

int phiq_gguf_kv_scalar(const phiq_gguf *g, int64_t i, int64_t *as_int, double *as_float) {
    const gguf_kv *kv = kv_at(g, i);
    if (!kv) return phiq_fail(PHIQ_EINVAL, "%s: key index %lld out of range", g->name, (long long)i);
    if (widen(kv->type, g->map.data + kv->val, as_int, as_float))
        return phiq_fail(PHIQ_EINVAL, "%s: key '%s' is a %s, not a scalar number", g->name, kv->key,
                         vtypes[kv->type].name);
    return 0;
}

int phiq_gguf_kv_arr(const phiq_gguf *g, int64_t i, int *elem_type, uint64_t *n, const void **data) {
    const gguf_kv *kv = kv_at(g, i);
    if (!kv) return phiq_fail(PHIQ_EINVAL, "%s: key index %lld out of range", g->name, (long long)i);
    if (kv->type != PHIQ_GGUF_ARRAY)
        return phiq_fail(PHIQ_EFORMAT, "%s: key %s has type %s, expected ARRAY", g->name, kv->key, vtypes[kv->type].name);
    if (elem_type) *elem_type = kv->elem_type;
    if (n) *n = kv->n;
    if (data) *data = kv->elem_type == PHIQ_GGUF_STRING ? NULL : g->map.data + kv->val;
    return 0;
}

int phiq_gguf_arr_str(const phiq_gguf *g, int64_t i, uint64_t j, const char **s, uint64_t *len) {
    const gguf_kv *kv = kv_at(g, i);
    if (!kv) return phiq_fail(PHIQ_EINVAL, "%s: key index %lld out of range", g->name, (long long)i);
    if (kv->type != PHIQ_GGUF_ARRAY || kv->elem_type != PHIQ_GGUF_STRING)
        return phiq_fail(PHIQ_EFORMAT, "%s: key %s is not an array of strings", g->name, kv->key);
    if (j >= kv->n)
        return phiq_fail(PHIQ_ERANGE, "%s: key %s: element %llu out of range (%llu elements)", g->name, kv->key,
                         (unsigned long long)j, (unsigned long long)kv->n);
    uint64_t l;
    memcpy(&l, g->map.data + kv->str_off[j], 8);
    *s = (const char *)g->map.data + kv->str_off[j] + 8;
    *len = l;
    return 0;
}

int64_t phiq_gguf_n_tensors(const phiq_gguf *g) { return g->n_tensors; }

const phiq_gguf_tensor *phiq_gguf_tensor_at(const phiq_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const phiq_gguf_tensor *phiq_gguf_find_tensor(const phiq_gguf *g, const char *name) {
    if (!g->n_tensors) return NULL;
    int64_t i = name_index_find(&g->tensor_ix, T_NAMES(g), name);
    return i >= 0 ? &g->tensors[i] : NULL;
}

/* ---- writer ---------------------------------------------------------------- */
typedef struct wkv {
    char *key;
    int type;
    uint8_t *val; /* the encoded value exactly as written after the i32 type */
    uint64_t len;
} wkv;

typedef struct wtensor {
    char *name;
    int type;
    int n_dims;
    int64_t ne[4];
    uint64_t nbytes;
} wtensor;

struct phiq_gguf_writer {
    wkv *kv;
    int64_t n_kv;
    size_t cap_kv;
    wtensor *t;
    int64_t n_t;
    size_t cap_t;
    name_index t_ix; /* rebuilt on growth */
};

phiq_gguf_writer *phiq_gguf_writer_new(void) {
    phiq_gguf_writer *w = calloc(1, sizeof *w);
    if (!w) return phiq_fail_null(PHIQ_ENOMEM, "gguf writer: out of memory");
    return w;
}

void phiq_gguf_writer_free(phiq_gguf_writer *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n_kv; i++) PHIQ_FREE_ALL(w->kv[i].key, w->kv[i].val);
    for (int64_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    PHIQ_FREE_ALL(w->kv, w->t, w->t_ix.slots, w);
}

static int64_t writer_find_kv(const phiq_gguf_writer *w, const char *key) {
    for (int64_t i = 0; i < w->n_kv; i++) /* a few dozen keys: linear is fine */
        if (!strcmp(w->kv[i].key, key)) return i;
    return -1;
}

/* Takes ownership of val (len bytes). Replaces an existing key in place. */
static int writer_put(phiq_gguf_writer *w, const char *key, int type, uint8_t *val, uint64_t len) {
    if (!key || !*key) {
        free(val);
        return phiq_fail(PHIQ_EINVAL, "gguf writer: empty key");
    }
    if (strlen(key) > GGUF_MAX_STRING) {
        free(val);
        return phiq_fail(PHIQ_EINVAL, "gguf writer: key longer than 1 GiB");
    }
    if (!strcmp(key, GGUF_ALIGNMENT_KEY)) {
        uint32_t a = 0;
        if (type == PHIQ_GGUF_UINT32) memcpy(&a, val, 4);
        if (type != PHIQ_GGUF_UINT32 || a == 0 || (a & (a - 1))) {
            free(val);
            return phiq_fail(PHIQ_EINVAL, "gguf writer: %s must be a UINT32 power of two", GGUF_ALIGNMENT_KEY);
        }
    }
    int64_t i = writer_find_kv(w, key);
    if (i >= 0) {
        free(w->kv[i].val);
        w->kv[i].type = type;
        w->kv[i].val = val;
        w->kv[i].len = len;
        return 0;
    }
    char *k = strdup(key);
    if (!k || phiq_grow((void **)&w->kv, &w->cap_kv, (size_t)w->n_kv + 1, 64, sizeof *w->kv)) {
        free(k);
        free(val);
        return phiq_fail(PHIQ_ENOMEM, "gguf writer: out of memory");
    }
    w->kv[w->n_kv++] = (wkv){k, type, val, len};
    return 0;
}

static int put_scalar(phiq_gguf_writer *w, const char *key, int type, const void *v) {
    size_t n = vtypes[type].size;
    uint8_t *p = malloc(n);
    if (!p) return phiq_fail(PHIQ_ENOMEM, "gguf writer: out of memory");
    memcpy(p, v, n);
    return writer_put(w, key, type, p, n);
}

int phiq_gguf_writer_set_u8(phiq_gguf_writer *w, const char *key, uint8_t v) { return put_scalar(w, key, PHIQ_GGUF_UINT8, &v); }
int phiq_gguf_writer_set_i8(phiq_gguf_writer *w, const char *key, int8_t v) { return put_scalar(w, key, PHIQ_GGUF_INT8, &v); }
int phiq_gguf_writer_set_u16(phiq_gguf_writer *w, const char *key, uint16_t v) { return put_scalar(w, key, PHIQ_GGUF_UINT16, &v); }
int phiq_gguf_writer_set_i16(phiq_gguf_writer *w, const char *key, int16_t v) { return put_scalar(w, key, PHIQ_GGUF_INT16, &v); }
int phiq_gguf_writer_set_u32(phiq_gguf_writer *w, const char *key, uint32_t v) { return put_scalar(w, key, PHIQ_GGUF_UINT32, &v); }
int phiq_gguf_writer_set_i32(phiq_gguf_writer *w, const char *key, int32_t v) { return put_scalar(w, key, PHIQ_GGUF_INT32, &v); }
int phiq_gguf_writer_set_u64(phiq_gguf_writer *w, const char *key, uint64_t v) { return put_scalar(w, key, PHIQ_GGUF_UINT64, &v); }
int phiq_gguf_writer_set_i64(phiq_gguf_writer *w, const char *key, int64_t v) { return put_scalar(w, key, PHIQ_GGUF_INT64, &v); }
int phiq_gguf_writer_set_f32(phiq_gguf_writer *w, const char *key, float v) { return put_scalar(w, key, PHIQ_GGUF_FLOAT32, &v); }
int phiq_gguf_writer_set_f64(phiq_gguf_writer *w, const char *key, double v) { return put_scalar(w, key, PHIQ_GGUF_FLOAT64, &v); }

int phiq_gguf_writer_set_bool(phiq_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return put_scalar(w, key, PHIQ_GGUF_BOOL, &b);
}

int phiq_gguf_writer_set_strn(phiq_gguf_writer *w, const char *key, const char *s, uint64_t len) {
    if (!s && len) return phiq_fail(PHIQ_EINVAL, "gguf writer: key '%s': NULL string", key ? key : "");
    if (len > GGUF_MAX_STRING) return phiq_fail(PHIQ_EINVAL, "gguf writer: key '%s': string longer than 1 GiB", key ? key : "");
    uint8_t *p = malloc(8 + len);
    if (!p) return phiq_fail(PHIQ_ENOMEM, "gguf writer: out of memory");
    memcpy(p, &len, 8);
    if (len) memcpy(p + 8, s, len);
    return writer_put(w, key, PHIQ_GGUF_STRING, p, 8 + len);
}

int phiq_gguf_writer_set_str(phiq_gguf_writer *w, const char *key, const char *s) {
    return phiq_gguf_writer_set_strn(w, key, s ? s : "", s ? strlen(s) : 0);
}

int phiq_gguf_writer_set_arr(phiq_gguf_writer *w, const char *key, int elem_type, const void *data, uint64_t n) {
    size_t es = phiq_gguf_vtype_size(elem_type);
    if (!es) return phiq_fail(PHIQ_EINVAL, "gguf writer: key '%s': arrays of %s need set_arr_str or are not allowed",
                              key ? key : "", phiq_gguf_vtype_name(elem_type));
    if (n > GGUF_MAX_ARRAY) return phiq_fail(PHIQ_EINVAL, "gguf writer: key '%s': more than 2^30 elements", key ? key : "");
    if (!data && n) return phiq_fail(PHIQ_EINVAL, "gguf writer: key '%s': NULL data", key ? key : "");
    uint64_t len = 12 + n * es;
    uint8_t *p = malloc(len);
    if (!p) return phiq_fail(PHIQ_ENOMEM, "gguf writer: out of memory");
    int32_t et = elem_type;
    memcpy(p, &et, 4);
    memcpy(p + 4, &n, 8);
    if (n) memcpy(p + 12, data, n * es);
    return writer_put(w, key, PHIQ_GGUF_ARRAY, p, len);
}

int phiq_gguf_writer_set_arr_str(phiq_gguf_writer *w, const char *key, const char *const *strs, const uint64_t *lens,
                                 uint64_t n) {
    if (n > GGUF_MAX_ARRAY) return phiq_fail(PHIQ_EINVAL, "gguf writer: key '%s': more than 2^30 elements", key ? key : "");
    if (!strs && n) return phiq_fail(PHIQ_EINVAL, "gguf writer: key '%s': NULL strings", key ? key : "");
    uint64_t len = 12;
    for (uint64_t j = 0; j < n; j++) {
        uint64_t l = lens ? lens[j] : (strs[j] ? strlen(strs[j]) : 0);
        if (l > GGUF_MAX_STRING || (l && !strs[j]))
            return phiq_fail(PHIQ_EINVAL, "gguf writer: key '%s': element %llu is NULL or longer than 1 GiB", key ? key : "",
                             (unsigned long long)j);
        len += 8 + l;
    }
    uint8_t *p = malloc(len), *q = p + 12;
    if (!p) return phiq_fail(PHIQ_ENOMEM, "gguf writer: out of memory");
    int32_t et = PHIQ_GGUF_STRING;
    memcpy(p, &et, 4);
    memcpy(p + 4, &n, 8);
    for (uint64_t j = 0; j < n; j++) {
        uint64_t l = lens ? lens[j] : (strs[j] ? strlen(strs[j]) : 0);
        memcpy(q, &l, 8);
        if (l) memcpy(q + 8, strs[j], l);
        q += 8 + l;
    }
    return writer_put(w, key, PHIQ_GGUF_ARRAY, p, len);
}

int phiq_gguf_writer_copy_kv(phiq_gguf_writer *w, const phiq_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    if (!kv) return phiq_fail(PHIQ_EINVAL, "%s: key index %lld out of range", g->name, (long long)i);
    /* the encoded value was validated at open: copy its bytes verbatim */
    uint64_t len = kv->raw_end - kv->raw_beg;
    uint8_t *p = malloc(len ? len : 1);
    if (!p) return phiq_fail(PHIQ_ENOMEM, "gguf writer: out of memory");
    memcpy(p, g->map.data + kv->raw_beg, len);
    return writer_put(w, kv->key, kv->type, p, len);
}

int phiq_gguf_writer_remove_kv(phiq_gguf_writer *w, const char *key) {
    int64_t i = key ? writer_find_kv(w, key) : -1;
    if (i < 0) return phiq_fail(PHIQ_EUNSUPPORTED, "gguf writer: key '%s' not present", key ? key : "(null)");
    free(w->kv[i].key);
    free(w->kv[i].val);
    memmove(&w->kv[i], &w->kv[i + 1], (size_t)(w->n_kv - i - 1) * sizeof *w->kv);
    w->n_kv--;
    return 0;
}

int phiq_gguf_writer_add_tensor(phiq_gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne) {
    if (!name || !*name) return phiq_fail(PHIQ_EINVAL, "gguf writer: empty tensor name");
    if (strlen(name) >= PHIQ_GGUF_MAX_NAME)
        return phiq_fail(PHIQ_EINVAL, "gguf writer: tensor name '%s' is %zu bytes; names must be shorter than %d", name,
                         strlen(name), PHIQ_GGUF_MAX_NAME);
    if (n_dims < 1 || n_dims > 4 || !ne)
        return phiq_fail(PHIQ_EINVAL, "gguf writer: tensor '%s' has %d dimensions; GGUF allows 1 to 4", name, n_dims);
    if (!phiq_ggml_type_valid(type))
        return phiq_fail(PHIQ_EINVAL, "gguf writer: tensor '%s' has invalid ggml type %d", name, type);
    wtensor t = {NULL, type, n_dims, {1, 1, 1, 1}, 0};
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] < 0)
            return phiq_fail(PHIQ_EINVAL, "gguf writer: tensor '%s' dimension %d is negative (%lld)", name, d,
                             (long long)ne[d]);
        t.ne[d] = ne[d];
    }
    int rc = tensor_sizes("gguf writer", name, type, t.ne, &t.nbytes);
    if (rc) return rc == PHIQ_EFORMAT ? PHIQ_EINVAL : rc;
    if (w->n_t && name_index_find(&w->t_ix, W_NAMES(w), name) >= 0)
        return phiq_fail(PHIQ_EINVAL, "gguf writer: duplicate tensor name '%s'", name);
    size_t old_cap = w->cap_t;
    if (!(t.name = strdup(name)) || phiq_grow((void **)&w->t, &w->cap_t, (size_t)w->n_t + 1, 64, sizeof *w->t)) {
        free(t.name);
        return phiq_fail(PHIQ_ENOMEM, "gguf writer: out of memory");
    }
    w->t[w->n_t++] = t;
    if (w->cap_t != old_cap || !w->t_ix.slots) { /* rehash at the new capacity (stays under half full) */
        free(w->t_ix.slots);
        w->t_ix.slots = NULL;
        if (name_index_init(&w->t_ix, w->cap_t)) return phiq_fail(PHIQ_ENOMEM, "gguf writer: out of memory");
        for (int64_t i = 0; i < w->n_t; i++) name_index_insert(&w->t_ix, W_NAMES(w), i);
    } else {
        name_index_insert(&w->t_ix, W_NAMES(w), w->n_t - 1);
    }
    return 0;
}

int64_t phiq_gguf_writer_n_tensors(const phiq_gguf_writer *w) { return w->n_t; }

static int write_str(phiq_outfile *o, const char *s, uint64_t len) {
    int rc = phiq_outfile_write(o, &len, 8);
    return rc ? rc : phiq_outfile_write(o, s, len);
}

static int write_meta(phiq_gguf_writer *w, phiq_outfile *o, uint32_t align) {
    int rc;
    uint32_t version = 3;
    uint64_t nt = (uint64_t)w->n_t, nkv = (uint64_t)w->n_kv;
    if ((rc = phiq_outfile_write(o, "GGUF", 4)) || (rc = phiq_outfile_write(o, &version, 4)) ||
        (rc = phiq_outfile_write(o, &nt, 8)) || (rc = phiq_outfile_write(o, &nkv, 8)))
        return rc;
    for (int64_t i = 0; i < w->n_kv; i++) {
        int32_t type = w->kv[i].type;
        if ((rc = write_str(o, w->kv[i].key, strlen(w->kv[i].key))) || (rc = phiq_outfile_write(o, &type, 4)) ||
            (rc = phiq_outfile_write(o, w->kv[i].val, w->kv[i].len)))
            return rc;
    }
    uint64_t offset = 0;
    for (int64_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        uint32_t nd = (uint32_t)t->n_dims;
        int32_t type = t->type;
        if ((rc = write_str(o, t->name, strlen(t->name))) || (rc = phiq_outfile_write(o, &nd, 4)) ||
            (rc = phiq_outfile_write(o, t->ne, 8 * (size_t)t->n_dims)) || (rc = phiq_outfile_write(o, &type, 4)) ||
            (rc = phiq_outfile_write(o, &offset, 8)))
            return rc;
        if (__builtin_add_overflow(offset, pad_to(t->nbytes, align), &offset))
            return phiq_fail(PHIQ_EINVAL, "gguf writer: total tensor data overflows");
    }
    /* like gguf-py and llama.cpp's reader: no padding when there is no data */
    if (w->n_t > 0 && (rc = phiq_outfile_pad(o, align))) return rc;
    return 0;
}

int phiq_gguf_writer_write(phiq_gguf_writer *w, const char *path, phiq_gguf_fill_fn fill, void *user,
                           const phiq_gguf_write_opts *opts) {
    if (!path) return phiq_fail(PHIQ_EINVAL, "gguf writer: no output path");
    if (w->n_t && !fill) return phiq_fail(PHIQ_EINVAL, "%s: no callback to fill tensor data", path);
    uint32_t align = PHIQ_GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = writer_find_kv(w, GGUF_ALIGNMENT_KEY);
    if (ai >= 0) memcpy(&align, w->kv[ai].val, 4); /* type and value checked when set */
    uint64_t max = 0, total = 0;
    for (int64_t i = 0; i < w->n_t; i++) {
        if (w->t[i].nbytes > max) max = w->t[i].nbytes;
        total += w->t[i].nbytes;
    }
    if (max > SIZE_MAX / 2) return phiq_fail(PHIQ_ENOMEM, "%s: tensor of %llu bytes is too large", path, (unsigned long long)max);
    phiq_outfile o;
    int rc = phiq_outfile_open(&o, path);
    if (rc) return rc;
    uint8_t *buf = NULL;
    if (w->n_t && !(buf = malloc(max ? (size_t)max : 1))) {
        rc = phiq_fail(PHIQ_ENOMEM, "%s: out of memory for a %llu-byte tensor buffer", path, (unsigned long long)max);
        goto fail;
    }
    if ((rc = write_meta(w, &o, align))) goto fail;
    phiq_progress pr;
    phiq_progress_start(&pr, opts && opts->label ? opts->label : "write", (int)w->n_t, total, opts ? opts->quiet : 0);
    for (int64_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        if ((rc = fill(user, i, t->name, buf, t->nbytes))) {
            if (rc > 0) rc = phiq_fail(PHIQ_EINVAL, "%s: tensor '%s': fill callback failed", path, t->name);
            break;
        }
        if ((rc = phiq_outfile_write(&o, buf, (size_t)t->nbytes)) || (rc = phiq_outfile_pad(&o, align))) break;
        phiq_progress_step(&pr, t->name, t->nbytes);
    }
    phiq_progress_end(&pr);
    if (rc) goto fail;
    free(buf);
    return phiq_outfile_commit(&o);
fail:
    free(buf);
    phiq_outfile_abort(&o);
    return rc;
}

bool phiq_gguf_sniff(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    return got == 4 && !memcmp(magic, "GGUF", 4);
}
