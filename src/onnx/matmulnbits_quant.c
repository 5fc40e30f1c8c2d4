/* matmulnbits_quant.c — MatMulNBits blockwise RTN quantizer (see the header
 * for the layout and the exact arithmetic, which follows ORT's MLAS
 * BlockwiseQuantizer so that the bytes match the onnxruntime default
 * quantizer: float min/max scan, float division for the scale, float
 * reciprocal, roundf (half away from zero), clamp). */
#include "onnx/matmulnbits_quant.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "core/common.h"

int phiq_mnb_layout_init(phiq_mnb_layout *l, int bits, int block_size, bool sym, int64_t n, int64_t k,
                         const char *what) {
    memset(l, 0, sizeof *l);
    if (bits != 4 && bits != 8)
        return phiq_fail(PHIQ_EINVAL, "%s: MatMulNBits bits must be 4 or 8, not %d", what, bits);
    if (block_size < 16 || block_size > 256 || (block_size & (block_size - 1)))
        return phiq_fail(PHIQ_EINVAL, "%s: block size %d is not a power of two in 16..256", what, block_size);
    if (n <= 0 || k <= 0)
        return phiq_fail(PHIQ_EINVAL, "%s: empty weight [%lld, %lld]", what, (long long)n, (long long)k);
    if (k % block_size)
        return phiq_fail(PHIQ_EINVAL, "%s: block size %d does not divide K = %lld", what, block_size,
                         (long long)k);
    l->bits = bits;
    l->block_size = block_size;
    l->sym = sym;
    l->n = n;
    l->k = k;
    l->kb = k / block_size;
    l->blob = (int64_t)block_size * bits / 8;
    l->zp_row = (l->kb * bits + 7) / 8;
    return 0;
}

static inline uint8_t mnb_q(float v, float recip, float zp, float qmax) {
    float q = roundf(v * recip + zp);
    if (q < 0.0f) q = 0.0f;
    if (q > qmax) q = qmax;
    return (uint8_t)q;
}

void phiq_mnb_quantize_rows(const phiq_mnb_layout *l, const float *w, int64_t rows, uint8_t *b, float *scales,
                            uint8_t *zp) {
    const int bs = l->block_size;
    const float qmax = (float)((1 << l->bits) - 1);
    const float half = (float)(1 << (l->bits - 1));
    for (int64_t r = 0; r < rows; r++) {
        const float *wr = w + r * l->k;
        uint8_t *br = b + r * l->kb * l->blob;
        float *sr = scales + r * l->kb;
        uint8_t *zr = zp ? zp + r * l->zp_row : NULL;
        if (zr) memset(zr, 0, (size_t)l->zp_row);
        for (int64_t blk = 0; blk < l->kb; blk++) {
            const float *x = wr + blk * bs;
            float mn = FLT_MAX, mx = -FLT_MAX;
            for (int i = 0; i < bs; i++) {
                if (x[i] < mn) mn = x[i];
                if (x[i] > mx) mx = x[i];
            }
            float scale, zpf;
            if (l->sym) {
                /* The larger-magnitude side maps to code 0 (= -2^(bits-1)),
                 * hence the sign flip; ties pick the minimum. */
                float v = fabsf(mx) > fabsf(mn) ? mx : mn;
                scale = -v / half;
                zpf = half;
            } else {
                mn = fminf(mn, 0.0f);
                mx = fmaxf(mx, 0.0f);
                scale = (mx - mn) / qmax;
                float z = mn;
                if (scale != 0.0f) z = 0.0f - mn / scale;
                uint8_t zq;
                if (z < 0.0f) zq = 0;
                else if (z > qmax) zq = (uint8_t)qmax;
                else zq = (uint8_t)roundf(z);
                zpf = (float)zq;
                if (l->bits == 8) zr[blk] = zq;
                else zr[blk / 2] |= (uint8_t)((zq & 0xF) << ((blk & 1) * 4));
            }
            sr[blk] = scale;
            const float recip = scale != 0.0f ? 1.0f / scale : 0.0f;
            uint8_t *o = br + blk * l->blob;
            if (l->bits == 8) {
                for (int i = 0; i < bs; i++) o[i] = mnb_q(x[i], recip, zpf, qmax);
            } else {
                for (int i = 0; i < bs; i += 2)
                    o[i / 2] = (uint8_t)(mnb_q(x[i], recip, zpf, qmax) | (mnb_q(x[i + 1], recip, zpf, qmax) << 4));
            }
        }
    }
}

void phiq_mnb_dequantize_rows(const phiq_mnb_layout *l, const uint8_t *b, const float *scales, const uint8_t *zp,
                              int64_t rows, float *w) {
    const int bs = l->block_size;
    const int half = 1 << (l->bits - 1);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t blk = 0; blk < l->kb; blk++) {
            int z = half;
            if (!l->sym && zp) {
                const uint8_t *zr = zp + r * l->zp_row;
                z = l->bits == 8 ? zr[blk] : (zr[blk / 2] >> ((blk & 1) * 4)) & 0xF;
            }
            const float s = scales[r * l->kb + blk];
            const uint8_t *o = b + (r * l->kb + blk) * l->blob;
            float *dst = w + r * l->k + blk * bs;
            for (int i = 0; i < bs; i++) {
                int q = l->bits == 8 ? o[i] : (o[i / 2] >> ((i & 1) * 4)) & 0xF;
                dst[i] = (float)(q - z) * s;
            }
        }
    }
}
