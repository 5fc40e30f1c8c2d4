/* quant_search.c — the scale searches every ggml quantizer family shares:
 * ggml-quants.c's make_qx_quants, make_q3_quants, make_qkx2/qkx3_quants and
 * make_qp_quants, and the per-super-block searches built from them (Q6_K's
 * eight groups of 16, Q4_K/Q5_K's eight sub-blocks of 32). They depend only
 * on quant_internal.h; the families (quant_q32.c, quant_iq4.c, quant_k.c)
 * call them, never each other.
 *
 * Each reproduces ggml's float32 operation order exactly: the searches
 * compare sums of products, so any reordering flips near-ties and changes
 * bytes.
 */
#include "quant/quant_internal.h"

/* Weight used by make_qx_quants: the given importance, else x^2 (rmse_type 1). */
static inline float qx_weight(const float *qw, const float *x, int i) { return qw ? qw[i] : x[i] * x[i]; }

float phiq_make_qx_quants(int n, int nmax, const float *x, int8_t *L, const float *qw) {
    float amax;
    const float max = phiq_signed_absmax(x, n, &amax);
    if (amax < PHIQ_GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = phiq_nearest_int(iscale * x[i]);
        l = phiq_imax(-nmax, phiq_imin(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        const float w = qx_weight(qw, x, i);
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = phiq_nearest_int(iscale * x[i]);
            l = phiq_imax(-nmax, phiq_imin(nmax - 1, l));
            const float w = qx_weight(qw, x, i);
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                const int l = phiq_nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + phiq_imax(-nmax, phiq_imin(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

void phiq_qx16_search_scalar(const float *x, const float *qw, int nmax, int8_t *L, float *scales) {
    for (int g = 0; g < 8; g++)
        scales[g] = phiq_make_qx_quants(16, nmax, x + 16 * g, L + 16 * g, qw ? qw + 16 * g : NULL);
}

/* ggml's make_q3_quants with do_rmse: x^2-weighted coordinate descent. */
float phiq_make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    float amax;
    const float max = phiq_signed_absmax(x, n, &amax);
    if (amax < PHIQ_GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = phiq_nearest_int(iscale * x[i]);
        l = phiq_imax(-nmax, phiq_imin(nmax - 1, l));
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int new_l = phiq_nearest_int(x[i] * sl2 / slx);
                new_l = phiq_imax(-nmax, phiq_imin(nmax - 1, new_l));
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* ggml's make_qkx2_quants and make_qkx3_quants, one body: asymmetric levels
 * 0..nmax with a min, weights (NULL: x^2, qkx3's default), use_mad selects
 * |diff| (qkx2 only) or diff^2 as the error. Note the running min: once a
 * candidate wins, later steps quantize against the new min — required for
 * byte-exactness. Inlined into the two entry points so each is specialised. */
static inline __attribute__((always_inline)) float qkx_search(int n, int nmax, const float *x, const float *weights,
                                                              uint8_t *L, float *the_min, uint8_t *Laux, float rmin,
                                                              float rdelta, int nstep, int use_mad) {
#define QKX_W(i) (weights ? weights[i] : x[i] * x[i])
    float min = x[0], max = x[0];
    float sum_w = QKX_W(0);
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = QKX_W(i);
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max <= min) { /* min <= max always, so this is ggml's max == min */
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        const int l = phiq_nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)phiq_imax(0, phiq_imin(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += QKX_W(i) * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = phiq_nearest_int(iscale * (x[i] - min));
            l = phiq_imax(0, phiq_imin(nmax, l));
            Laux[i] = (uint8_t)l;
            const float w = QKX_W(i);
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += QKX_W(i) * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
#undef QKX_W
}

float phiq_make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                            uint8_t *Laux, float rmin, float rdelta, int nstep, int use_mad) {
    return qkx_search(n, nmax, x, weights, L, the_min, Laux, rmin, rdelta, nstep, use_mad);
}

float phiq_make_qkx3_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                            uint8_t *Laux, float rmin, float rdelta, int nstep) {
    return qkx_search(n, nmax, x, weights, L, the_min, Laux, rmin, rdelta, nstep, 0);
}

/* ggml's make_qp_quants: non-negative values (sub-block scales/mins) to
 * 0..nmax with weights, returns the step. */
float phiq_make_qp_quants(int n, int nmax, const float *x, uint8_t *L, const float *qw) {
    float max = 0;
    for (int i = 0; i < n; i++) max = x[i] > max ? x[i] : max;
    if (max < PHIQ_GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = nmax / max;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)phiq_nearest_int(iscale * x[i]);
    const float scale = 1 / iscale;
    float best_mse = 0;
    for (int i = 0; i < n; i++) {
        const float diff = x[i] - scale * L[i];
        best_mse += qw[i] * diff * diff;
    }
    for (int is = -4; is <= 4; is++) {
        if (is == 0) continue;
        const float iscale_is = (0.1f * is + nmax) / max;
        const float scale_is = 1 / iscale_is;
        float mse = 0;
        for (int i = 0; i < n; i++) {
            int l = phiq_nearest_int(iscale_is * x[i]);
            l = phiq_imin(nmax, l);
            const float diff = x[i] - scale_is * l;
            mse += qw[i] * diff * diff;
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = phiq_nearest_int(iscale * x[i]);
        l = phiq_imin(nmax, l);
        L[i] = (uint8_t)l;
        const float w = qw[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = qw[i];
            float slx = sumlx - w * x[i] * L[i];
            float sl2 = suml2 - w * L[i] * L[i];
            if (slx > 0 && sl2 > 0) {
                int new_l = phiq_nearest_int(x[i] * sl2 / slx);
                new_l = phiq_imin(nmax, new_l);
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (uint8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Scale search common to Q4_K (nmax 15) and Q5_K (nmax 31): fills the
 * 12-byte scales, d, dmin of one super-block and leaves L requantized. */
void phiq_k45_search_scalar(const float *x, const float *w, int nmax, float rmin, float rdelta, int nstep, uint8_t *L,
                            float *scales, float *mins) {
    uint8_t Laux[32];
    float weights[32];
    for (int j = 0; j < 8; j++) {
        if (w) {
            scales[j] = phiq_make_qkx3_quants(32, nmax, x + 32 * j, w + 32 * j, L + 32 * j, &mins[j], Laux, rmin,
                                              rdelta, nstep);
            continue;
        }
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = phiq_make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, rdelta, nstep, 0);
    }
}

float phiq_sumsq(const float *x, int64_t n) {
    float s = 0;
    for (int64_t j = 0; j < n; j++) s += x[j] * x[j];
    return s;
}

float phiq_imat_weights(const float *x, const float *qw, float sigma2, int n, float *out) {
    float s = 0;
    for (int j = 0; j < n; j++) {
        out[j] = qw[j] * sqrtf(sigma2 + x[j] * x[j]);
        s += out[j];
    }
    return s;
}
