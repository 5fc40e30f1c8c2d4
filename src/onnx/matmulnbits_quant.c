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
#include "quant/gptq.h"

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

/* ---- NNCF's rule (convert --format onnx --ratio) ----------------------------------------- */

/* Scale and zero point of n values as NNCF computes them (header). */
static void nncf_params(const float *x, int64_t n, int bits, bool sym, float *scale, float *zpf) {
    float mn = x[0], mx = x[0];
    for (int64_t i = 1; i < n; i++) {
        mn = x[i] < mn ? x[i] : mn;
        mx = x[i] > mx ? x[i] : mx;
    }
    float s;
    if (sym) {
        const float amin = fabsf(mn);
        s = (amin >= mx ? amin : -mx) / (float)(1 << (bits - 1));
        *zpf = 0.0f;
    } else {
        const float qmax = (float)((1 << bits) - 1);
        s = (mx - mn) / qmax;
    }
    if (fabsf(s) < FLT_EPSILON) s = FLT_EPSILON;
    if (!sym) {
        float z = 0.0f - rintf(mn / s);
        const float qmax = (float)((1 << bits) - 1);
        *zpf = z < 0.0f ? 0.0f : z > qmax ? qmax : z;
    }
    *scale = s;
}

/* The stored (unsigned) code of v: sym codes are offset by 2^(bits-1), the
 * zero point MatMulNBits assumes when none is stored. */
static inline int nncf_code(float v, float s, float zpf, int bits, bool sym) {
    float q = rintf(v / s + zpf);
    const float lo = sym ? -(float)(1 << (bits - 1)) : 0.0f, hi = sym ? (float)((1 << (bits - 1)) - 1) : (float)((1 << bits) - 1);
    q = q < lo ? lo : q > hi ? hi : q;
    return (int)q + (sym ? 1 << (bits - 1) : 0);
}

void phiq_mnb_quantize_rows_nncf(const phiq_mnb_layout *l, int64_t group, const float *w, int64_t rows, uint8_t *b,
                                 float *scales, uint8_t *zp) {
    const int bs = l->block_size;
    for (int64_t r = 0; r < rows; r++) {
        const float *wr = w + r * l->k;
        uint8_t *br = b + r * l->kb * l->blob;
        uint8_t *zr = zp ? zp + r * l->zp_row : NULL;
        if (zr) memset(zr, 0, (size_t)l->zp_row);
        for (int64_t g0 = 0; g0 < l->k; g0 += group) {
            float s, zpf;
            nncf_params(wr + g0, group, l->bits, l->sym, &s, &zpf);
            for (int64_t blk = g0 / bs; blk < (g0 + group) / bs; blk++) {
                scales[r * l->kb + blk] = s;
                if (zr) {
                    const uint8_t zq = (uint8_t)zpf;
                    if (l->bits == 8) zr[blk] = zq;
                    else zr[blk / 2] |= (uint8_t)((zq & 0xF) << ((blk & 1) * 4));
                }
                const float *x = wr + blk * bs;
                uint8_t *o = br + blk * l->blob;
                if (l->bits == 8) {
                    for (int i = 0; i < bs; i++) o[i] = (uint8_t)nncf_code(x[i], s, zpf, 8, l->sym);
                } else {
                    for (int i = 0; i < bs; i += 2)
                        o[i / 2] = (uint8_t)(nncf_code(x[i], s, zpf, 4, l->sym) |
                                             (nncf_code(x[i + 1], s, zpf, 4, l->sym) << 4));
                }
            }
        }
    }
}

double phiq_nncf_int8_row_error(const float *w, int64_t rows, int64_t k) {
    double worst = 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *x = w + r * k;
        float s, zpf;
        nncf_params(x, k, 8, false, &s, &zpf);
        double e = 0;
        for (int64_t i = 0; i < k; i++) {
            const float dq = (float)(nncf_code(x[i], s, zpf, 8, false) - (int)zpf) * s, d = dq - x[i];
            e += (double)(d * d);
        }
        e /= (double)k;
        worst = e > worst ? e : worst;
    }
    return worst;
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

/* ---- GPTQ on the MatMulNBits grid (convert --format onnx --calib) --------------------- */
typedef struct mnb_grid {
    const phiq_mnb_layout *l;
    uint8_t *b, *zp;
    float *scales;
} mnb_grid;

static int mnb_zp(const mnb_grid *g, int64_t r, int64_t blk) {
    const phiq_mnb_layout *l = g->l;
    if (l->sym) return 1 << (l->bits - 1);
    const uint8_t *zr = g->zp + r * l->zp_row;
    return l->bits == 8 ? zr[blk] : (zr[blk / 2] >> ((blk & 1) * 4)) & 0xF;
}

static double mnb_err(const float *x, const float *imp, int n, float s, int z, float qmax) {
    double e = 0;
    const float recip = s != 0.0f ? 1.0f / s : 0.0f;
    for (int i = 0; i < n; i++) {
        float v = ((float)mnb_q(x[i], recip, (float)z, qmax) - (float)z) * s;
        e += (double)imp[i] * (double)(x[i] - v) * (double)(x[i] - v);
    }
    return e;
}

/* ORT's own block parameters on the error-updated weights, then smaller
 * scales (clipping the extremes) kept when the importance-weighted error
 * drops; asymmetric blocks refit the zero point for each. */
static int mnb_fit(const phiq_gptq_grid *gg, int64_t r, int64_t c0, const float *x, const float *imp, float *deq) {
    const mnb_grid *g = gg->ud;
    const phiq_mnb_layout *l = g->l;
    const int bs = l->block_size;
    const int64_t blk = c0 / bs;
    const float qmax = (float)((1 << l->bits) - 1);
    uint8_t bq[256], zq = 0;
    float s0;
    phiq_mnb_layout one = *l;
    one.n = 1;
    one.k = bs;
    one.kb = 1;
    one.zp_row = 1;
    phiq_mnb_quantize_rows(&one, x, 1, bq, &s0, &zq);
    int z = l->sym ? 1 << (l->bits - 1) : (l->bits == 8 ? zq : zq & 0xF);
    float best_s = s0;
    int best_z = z;
    double best = mnb_err(x, imp, bs, s0, z, qmax);
    float mn = x[0];
    for (int i = 1; i < bs; i++) mn = x[i] < mn ? x[i] : mn;
    for (int step = 1; step <= 10 && s0 != 0.0f; step++) {
        const float s = s0 * (1.0f - 0.03f * (float)step);
        /* asymmetric: the zero point nearest the block's minimum, or one
         * step either side (the clipped range can sit off-centre) */
        const int z0 = l->sym ? z : (int)roundf(-fminf(mn, 0.0f) / s);
        for (int dz = l->sym ? 0 : -1; dz <= (l->sym ? 0 : 1); dz++) {
            int zc = z0 + dz;
            if (zc < 0 || zc > (int)qmax) continue;
            double e = mnb_err(x, imp, bs, s, zc, qmax);
            if (e < best) {
                best = e;
                best_s = s;
                best_z = zc;
            }
        }
    }
    g->scales[r * l->kb + blk] = best_s;
    if (!l->sym) {
        uint8_t *zr = g->zp + r * l->zp_row;
        if (l->bits == 8) zr[blk] = (uint8_t)best_z;
        else zr[blk / 2] = (uint8_t)((zr[blk / 2] & ~(0xF << ((blk & 1) * 4))) | ((best_z & 0xF) << ((blk & 1) * 4)));
    }
    const float recip = best_s != 0.0f ? 1.0f / best_s : 0.0f;
    for (int i = 0; i < bs; i++) deq[i] = ((float)mnb_q(x[i], recip, (float)best_z, qmax) - (float)best_z) * best_s;
    return 0;
}

static float mnb_round(const phiq_gptq_grid *gg, int64_t r, int64_t c, float x) {
    const mnb_grid *g = gg->ud;
    const phiq_mnb_layout *l = g->l;
    const int64_t blk = c / l->block_size, i = c % l->block_size;
    const float s = g->scales[r * l->kb + blk], qmax = (float)((1 << l->bits) - 1);
    const int z = mnb_zp(g, r, blk);
    const uint8_t q = mnb_q(x, s != 0.0f ? 1.0f / s : 0.0f, (float)z, qmax);
    uint8_t *o = g->b + (r * l->kb + blk) * l->blob;
    if (l->bits == 8) o[i] = q;
    else o[i / 2] = (uint8_t)((o[i / 2] & ~(0xF << ((i & 1) * 4))) | (q << ((i & 1) * 4)));
    return ((float)q - (float)z) * s;
}

int phiq_mnb_quantize_gptq(const phiq_mnb_layout *l, float *w, const float *H, float damp, int n_threads, uint8_t *b,
                           float *scales, uint8_t *zp) {
    mnb_grid gs = {.l = l, .b = b, .zp = zp, .scales = scales};
    phiq_gptq_grid g = {.bs = l->block_size, .fit = mnb_fit, .round = mnb_round, .ud = &gs};
    memset(b, 0, (size_t)(l->n * l->kb * l->blob));
    if (zp) memset(zp, 0, (size_t)(l->n * l->zp_row));
    return phiq_gptq_run(&g, w, l->n, l->k, H, damp, n_threads);
}
