/* matmulnbits_awq.c — AWQ's activation-aware equivalent scaling search for
 * MatMulNBits weights (convert --format onnx --calib --awq).
 *
 * Lin et al., "AWQ" (2023), auto_scale: weights W_j that read the same input
 * x are multiplied column-wise by s (and the op producing x divides by s, so
 * the float model is unchanged); salient input channels get larger s and so
 * finer steps. s = a^alpha normalised by sqrt(max·min), a = the per-channel
 * activation magnitude, alpha on a grid, picked by the output error. Here the
 * error of each candidate is the exact expected squared output error under
 * the calibration second moments, sum_j sum_n dW_n H dW_nᵀ with
 * dW = W - Q(W diag(s)) diag(1/s), Q = ORT's round-to-nearest in the export's
 * layout, on evenly spaced rows of each weight (its cost is rows·K² per
 * candidate). alpha = 0 (s = 1) is a candidate, so the proxy never rises.
 * phiq_awq_layer_run applies it to one Phi-3 decoder layer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "onnx/matmulnbits_quant.h"

/* sum over rows of dW H dWᵀ for rows `idx` of one weight under scale s */
static double awq_err(const phiq_mnb_layout *l, const float *w, const int64_t *idx, int nr, const float *H,
                      const float *s, float *ws, float *dq, uint8_t *b, float *sc, uint8_t *zp, double *hd) {
    const int64_t k = l->k;
    for (int r = 0; r < nr; r++)
        for (int64_t c = 0; c < k; c++) ws[(int64_t)r * k + c] = w[idx[r] * k + c] * s[c];
    phiq_mnb_layout lr = *l;
    lr.n = nr;
    phiq_mnb_quantize_rows(&lr, ws, nr, b, sc, l->sym ? NULL : zp);
    phiq_mnb_dequantize_rows(&lr, b, sc, l->sym ? NULL : zp, nr, dq);
    double e = 0;
    for (int r = 0; r < nr; r++) {
        const float *wr = w + idx[r] * k, *q = dq + (int64_t)r * k;
        for (int64_t c = 0; c < k; c++) hd[c] = (double)wr[c] - (double)q[c] / s[c];
        for (int64_t i = 0; i < k; i++) {
            const float *hi = H + i * k;
            double acc = 0;
            for (int64_t j = 0; j < k; j++) acc += (double)hi[j] * hd[j];
            e += hd[i] * acc;
        }
    }
    return e;
}

int phiq_awq_search(const phiq_mnb_layout *l, const float *const *w, const int64_t *rows, int nw, const float *H,
                    const float *act, int max_rows, float *s, double *err_plain, double *err_best) {
    const int64_t k = l->k;
    int64_t *idx = malloc(sizeof *idx * (size_t)nw * (size_t)max_rows);
    int *nr = calloc((size_t)nw, sizeof *nr);
    float *ws = malloc(sizeof *ws * (size_t)(max_rows * k)), *dq = malloc(sizeof *dq * (size_t)(max_rows * k));
    float *cand = malloc(sizeof *cand * (size_t)k), *sc = malloc(sizeof *sc * (size_t)(max_rows * l->kb));
    uint8_t *b = malloc((size_t)(max_rows * l->kb * l->blob)), *zp = malloc((size_t)(max_rows * l->zp_row) + 1);
    double *hd = malloc(sizeof *hd * (size_t)k);
    int rc = 0;
    if (!idx || !nr || !ws || !dq || !cand || !sc || !b || !zp || !hd) {
        rc = phiq_fail(PHIQ_ENOMEM, "AWQ: out of memory");
        goto out;
    }
    for (int j = 0; j < nw; j++) {
        nr[j] = rows[j] < max_rows ? (int)rows[j] : max_rows;
        for (int r = 0; r < nr[j]; r++) idx[j * max_rows + r] = rows[j] * r / nr[j];
    }
    double best = INFINITY;
    int best_a = 0;
    for (int a = 0; a < 20; a++) {
        const double alpha = 0.05 * a;
        double mx = 0, mn = INFINITY;
        for (int64_t c = 0; c < k; c++) {
            double v = pow(fmax((double)act[c], 1e-4), alpha);
            cand[c] = (float)v;
            mx = fmax(mx, v);
            mn = fmin(mn, v);
        }
        const double norm = sqrt(mx * mn);
        for (int64_t c = 0; c < k; c++) cand[c] = (float)((double)cand[c] / norm);
        double e = 0;
        for (int j = 0; j < nw; j++) e += awq_err(l, w[j], idx + j * max_rows, nr[j], H, cand, ws, dq, b, sc, zp, hd);
        if (a == 0) *err_plain = e;
        if (e < best) {
            best = e;
            best_a = a;
            memcpy(s, cand, sizeof *s * (size_t)k);
        }
    }
    *err_best = best;
    rc = best_a;
out:
    free(idx);
    free(nr);
    free(ws);
    free(dq);
    free(cand);
    free(sc);
    free(b);
    free(zp);
    free(hd);
    return rc;
}

/* One search over weights w[0..nw) reading an input of width k with
 * Hessian H; act = sqrt(diag H) unless given. Scales the weights' columns by
 * the chosen s (returned, malloc'd). */
static float *awq_group(phiq_awq_layer *a, int bits, int bs, bool sym, float **w, const int64_t *rows, int nw,
                        int64_t k, const float *H, const float *act_in) {
    phiq_mnb_layout l;
    if (phiq_mnb_layout_init(&l, bits, bs, sym, 1, k, "AWQ") < 0) return NULL;
    float *s = malloc(sizeof *s * (size_t)k), *act = malloc(sizeof *act * (size_t)k);
    if (!s || !act) {
        free(s);
        free(act);
        return phiq_fail_null(PHIQ_ENOMEM, "AWQ: out of memory");
    }
    for (int64_t c = 0; c < k; c++) act[c] = act_in ? act_in[c] : sqrtf(fmaxf(H[c * k + c], 0.0f));
    double e0 = 0, e1 = 0;
    int al = phiq_awq_search(&l, (const float *const *)w, rows, nw, H, act, 128, s, &e0, &e1);
    free(act);
    if (al < 0) {
        free(s);
        return NULL;
    }
    for (int j = 0; j < nw; j++)
        for (int64_t r = 0; r < rows[j]; r++)
            for (int64_t c = 0; c < k; c++) w[j][r * k + c] *= s[c];
    a->groups++;
    a->err_plain += e0;
    a->err_best += e1;
    return s;
}

/* H / (s_i s_j): the second moments of the rescaled input x / s. */
static float *awq_scaled_h(const float *H, const float *s, int64_t k) {
    float *h = malloc(sizeof *h * (size_t)(k * k));
    if (!h) return phiq_fail_null(PHIQ_ENOMEM, "AWQ: out of memory");
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < k; j++) h[i * k + j] = H[i * k + j] / (s[i] * s[j]);
    return h;
}

int phiq_awq_layer_run(phiq_awq_layer *a, int bits, int bs, bool sym, int n_head, int n_head_kv, int head_dim,
                       int64_t E, int64_t F) {
    const int64_t hd = head_dim, nq = (int64_t)n_head * hd, nkv = (int64_t)n_head_kv * hd, grp = n_head / n_head_kv;
    const int64_t n[PHIQ_AWQ_KINDS] = {nq + 2 * nkv, E, F, F, E};
    float *qkv = a->w[PHIQ_AWQ_QKV], *up = a->w[PHIQ_AWQ_UP], *s_o = NULL, *s_d = NULL;
    int rc = PHIQ_ENOMEM;
    /* 1. qkv, folded into input_layernorm */
    if (!(a->s_in = awq_group(a, bits, bs, sym, &a->w[PHIQ_AWQ_QKV], &n[0], 1, E, a->h[PHIQ_AWQ_QKV], NULL))) goto out;
    /* 2. o_proj: the magnitude of attention-output channel (h, d) averaged
     * over the query heads of one kv head, so that one scale can divide the
     * v row (kv head, d) they all read */
    float *act = malloc(sizeof *act * (size_t)nq);
    if (!act) goto out;
    const float *Ho = a->h[PHIQ_AWQ_O];
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t d = 0; d < hd; d++) {
            const int64_t g0 = h / grp * grp;
            double m = 0;
            for (int64_t g = g0; g < g0 + grp; g++) m += sqrt(fmax(Ho[(g * hd + d) * nq + g * hd + d], 0.0));
            act[h * hd + d] = (float)(m / (double)grp);
        }
    s_o = awq_group(a, bits, bs, sym, &a->w[PHIQ_AWQ_O], &n[1], 1, nq, Ho, act);
    free(act);
    if (!s_o) goto out;
    for (int64_t kvh = 0; kvh < n_head_kv; kvh++)
        for (int64_t d = 0; d < hd; d++) {
            float *row = qkv + (nq + nkv + kvh * hd + d) * E;
            const float sv = s_o[kvh * grp * hd + d];
            for (int64_t c = 0; c < E; c++) row[c] /= sv;
        }
    /* 3. gate + up, folded into post_attention_layernorm */
    float *gu[2] = {a->w[PHIQ_AWQ_GATE], up};
    if (!(a->s_post = awq_group(a, bits, bs, sym, gu, &n[2], 2, E, a->h[PHIQ_AWQ_GATE], NULL))) goto out;
    /* 4. down, folded into the up rows (silu(g)·u is linear in u) */
    if (!(s_d = awq_group(a, bits, bs, sym, &a->w[PHIQ_AWQ_DOWN], &n[4], 1, F, a->h[PHIQ_AWQ_DOWN], NULL))) goto out;
    for (int64_t f = 0; f < F; f++)
        for (int64_t c = 0; c < E; c++) up[f * E + c] /= s_d[f];
    a->h_scaled[PHIQ_AWQ_QKV] = awq_scaled_h(a->h[PHIQ_AWQ_QKV], a->s_in, E);
    a->h_scaled[PHIQ_AWQ_O] = awq_scaled_h(Ho, s_o, nq);
    a->h_scaled[PHIQ_AWQ_GATE] = a->h_scaled[PHIQ_AWQ_UP] = awq_scaled_h(a->h[PHIQ_AWQ_GATE], a->s_post, E);
    a->h_scaled[PHIQ_AWQ_DOWN] = awq_scaled_h(a->h[PHIQ_AWQ_DOWN], s_d, F);
    rc = 0;
    for (int k = 0; k < PHIQ_AWQ_KINDS; k++)
        if (!a->h_scaled[k]) rc = PHIQ_ENOMEM;
out:
    free(s_o);
    free(s_d);
    return rc;
}

void phiq_awq_layer_free(phiq_awq_layer *a) {
    for (int k = 0; k < PHIQ_AWQ_KINDS; k++) {
        free(a->w[k]);
        if (k != PHIQ_AWQ_UP) free(a->h_scaled[k]); /* up shares gate's */
    }
    free(a->s_in);
    free(a->s_post);
    const int groups = a->groups;
    const double e0 = a->err_plain, e1 = a->err_best;
    memset(a, 0, sizeof *a);
    a->groups = groups; /* the running totals survive */
    a->err_plain = e0;
    a->err_best = e1;
}
