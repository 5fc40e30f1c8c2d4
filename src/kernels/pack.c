/* pack.c — the portable packing, unpacking and dequantization of phiq's split
 * Q4_0 / Q8_0 row layout (see pack.h for the byte layout). */
#include "kernels/pack.h"

#include <string.h>

#include "core/common.h"
#include "formats/ggml_type.h"
#include "kernels/ops.h"

/* Per type: block bytes, quant bytes per block, blocks per packed unit. */
typedef struct {
    int bsz, qbytes, unit;
} pack_shape;

static bool pack_shape_of(int type, pack_shape *s) {
    if (type == PHIQ_GGML_TYPE_Q4_0) *s = (pack_shape){18, 16, 4};
    else if (type == PHIQ_GGML_TYPE_Q8_0) *s = (pack_shape){34, 32, 2};
    else return false;
    return true;
}

bool phiq_pack_type_supported(int type) {
    pack_shape s;
    return pack_shape_of(type, &s);
}

/* One row; pack = true: ggml -> split, false: split -> ggml. */
static void pack_row(const pack_shape *s, uint8_t *dst, const uint8_t *src, int64_t nb, bool pack) {
    const int64_t full = nb / s->unit * s->unit;
    uint8_t *qs_area = (uint8_t *)(pack ? dst : src);
    uint8_t *d_area = qs_area + full * s->qbytes;
    for (int64_t b = 0; b < full; b++) {
        uint8_t *blk = (uint8_t *)(pack ? src : dst) + b * s->bsz;
        uint8_t *q = qs_area + b * s->qbytes, *d = d_area + 2 * b;
        if (pack) {
            memcpy(q, blk + 2, (size_t)s->qbytes);
            memcpy(d, blk, 2);
        } else {
            memcpy(blk + 2, q, (size_t)s->qbytes);
            memcpy(blk, d, 2);
        }
    }
    /* the tail blocks sit at the same offset in both layouts */
    memcpy(dst + full * s->bsz, src + full * s->bsz, (size_t)((nb - full) * s->bsz));
}

static void pack_rows(int type, void *dst, const void *src, int64_t n, int64_t nrows, size_t row_bytes, bool pack) {
    pack_shape s;
    if (!pack_shape_of(type, &s)) return;
    for (int64_t r = 0; r < nrows; r++)
        pack_row(&s, (uint8_t *)dst + (size_t)r * row_bytes, (const uint8_t *)src + (size_t)r * row_bytes, n / 32, pack);
}

void phiq_pack_rows(int type, void *dst, const void *src, int64_t n, int64_t nrows, size_t row_bytes) {
    pack_rows(type, dst, src, n, nrows, row_bytes, true);
}

void phiq_unpack_rows(int type, void *dst, const void *src, int64_t n, int64_t nrows, size_t row_bytes) {
    pack_rows(type, dst, src, n, nrows, row_bytes, false);
}

void phiq_packed_row_to_f32(int type, const void *src, float *dst, int64_t n) {
    pack_shape s;
    if (!pack_shape_of(type, &s)) return;
    const int64_t nb = n / 32, full = nb / s.unit * s.unit;
    const uint8_t *q = src, *d = q + full * s.qbytes;
    for (int64_t b = 0; b < full; b++) {
        const float scale = phiq_f16_to_f32((uint16_t)(d[2 * b] | d[2 * b + 1] << 8));
        const uint8_t *qb = q + b * s.qbytes;
        float *o = dst + 32 * b;
        if (type == PHIQ_GGML_TYPE_Q4_0)
            for (int j = 0; j < 16; j++) {
                o[j] = (float)((qb[j] & 0x0F) - 8) * scale;
                o[j + 16] = (float)((qb[j] >> 4) - 8) * scale;
            }
        else
            for (int j = 0; j < 32; j++) o[j] = (float)(int8_t)qb[j] * scale;
    }
    if (full < nb) phiq_row_to_f32(type, q + full * s.bsz, dst + 32 * full, (nb - full) * 32);
}
