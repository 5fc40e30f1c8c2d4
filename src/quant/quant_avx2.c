/* quant_avx2.c — AVX2 version of the Q4_K/Q5_K reference scale search
 * (ggml's make_qkx2_quants as called by quantize_row_q4_K_ref /
 * quantize_row_q5_K_ref), byte-identical to the scalar code.
 *
 * Why it is exact: the 8 sub-blocks of a super-block are searched
 * independently, so each of the 8 float lanes runs one sub-block's search
 * with exactly the scalar sequence of IEEE operations (same order of
 * additions, no FMA — contraction is disabled by quant_internal.h, which
 * matters here because this file is built with -mfma). Branches become
 * per-lane selects. Nothing is reassociated across elements.
 */
#include <immintrin.h>

#include "quant/quant_internal.h"

static inline __m256i nearest_int8(__m256 v) {
    const __m256i i = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12582912.f)));
    return _mm256_sub_epi32(_mm256_and_si256(i, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x00400000));
}

static inline __m256i clamp8(__m256i l, int nmax) {
    return _mm256_max_epi32(_mm256_setzero_si256(), _mm256_min_epi32(_mm256_set1_epi32(nmax), l));
}

/* x: one 256-element super-block. For each sub-block j (32 elements):
 * weights w (laid out like x) or, when w is NULL, av_x + |x|; then
 * make_qkx2_quants(32, nmax, rmin, rdelta, nstep, use_mad = false), which
 * with given weights is also make_qkx3_quants (its "max <= min" test equals
 * "max == min" once min is clamped to <= 0). Outputs L[32*j+i], scales[j],
 * mins[j] (= -min). */
void phiq_k45_search_avx2(const float *x, const float *w, int nmax, float rmin, float rdelta, int nstep, uint8_t *L,
                          float *scales, float *mins) {
    __m256 xt[32], wt[32];
    __m256i Lv[32], La[32];
    float tr[8] __attribute__((aligned(32)));
    for (int i = 0; i < 32; i++) {
        for (int j = 0; j < 8; j++) tr[j] = x[32 * j + i];
        xt[i] = _mm256_load_ps(tr);
        if (w) {
            for (int j = 0; j < 8; j++) tr[j] = w[32 * j + i];
            wt[i] = _mm256_load_ps(tr);
        }
    }
    const __m256 sign = _mm256_set1_ps(-0.0f), zero = _mm256_setzero_ps();
    if (!w) {
        __m256 sum_x2 = zero;
        for (int l = 0; l < 32; l++) sum_x2 = _mm256_add_ps(sum_x2, _mm256_mul_ps(xt[l], xt[l]));
        const __m256 av_x = _mm256_sqrt_ps(_mm256_div_ps(sum_x2, _mm256_set1_ps(32.0f)));
        for (int l = 0; l < 32; l++) wt[l] = _mm256_add_ps(av_x, _mm256_andnot_ps(sign, xt[l]));
    }

    __m256 min = xt[0], max = xt[0];
    __m256 sum_w = wt[0];
    __m256 sum_x = _mm256_mul_ps(sum_w, xt[0]);
    for (int i = 1; i < 32; i++) {
        min = _mm256_min_ps(xt[i], min); /* x < min ? x : min */
        max = _mm256_max_ps(xt[i], max); /* x > max ? x : max */
        sum_w = _mm256_add_ps(sum_w, wt[i]);
        sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(wt[i], xt[i]));
    }
    min = _mm256_blendv_ps(min, zero, _mm256_cmp_ps(min, zero, _CMP_GT_OQ));
    const __m256 done = _mm256_cmp_ps(max, min, _CMP_EQ_OQ); /* all equal: L = 0, scale 0 */
    const __m256 range = _mm256_sub_ps(max, min);
    __m256 iscale = _mm256_div_ps(_mm256_set1_ps((float)nmax), range);
    __m256 scale = _mm256_div_ps(_mm256_set1_ps(1.0f), iscale);
    __m256 best_error = zero;
    for (int i = 0; i < 32; i++) {
        Lv[i] = clamp8(nearest_int8(_mm256_mul_ps(iscale, _mm256_sub_ps(xt[i], min))), nmax);
        __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, _mm256_cvtepi32_ps(Lv[i])), min), xt[i]);
        diff = _mm256_mul_ps(diff, diff);
        best_error = _mm256_add_ps(best_error, _mm256_mul_ps(wt[i], diff));
    }
    for (int is = 0; is <= nstep; is++) {
        const float num = rmin + rdelta * is + nmax;
        /* min changes per lane when a candidate wins: recompute the range */
        iscale = _mm256_div_ps(_mm256_set1_ps(num), _mm256_sub_ps(max, min));
        __m256 sum_l = zero, sum_l2 = zero, sum_xl = zero;
        for (int i = 0; i < 32; i++) {
            La[i] = clamp8(nearest_int8(_mm256_mul_ps(iscale, _mm256_sub_ps(xt[i], min))), nmax);
            const __m256 l = _mm256_cvtepi32_ps(La[i]);
            const __m256 wl = _mm256_mul_ps(wt[i], l);
            sum_l = _mm256_add_ps(sum_l, wl);
            sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, l));
            sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, xt[i]));
        }
        const __m256 D = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
        const __m256 dpos = _mm256_cmp_ps(D, zero, _CMP_GT_OQ);
        if (_mm256_movemask_ps(_mm256_andnot_ps(done, dpos)) == 0) continue;
        __m256 this_scale =
            _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)), D);
        __m256 this_min =
            _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)), D);
        const __m256 mpos = _mm256_cmp_ps(this_min, zero, _CMP_GT_OQ);
        this_min = _mm256_blendv_ps(this_min, zero, mpos);
        this_scale = _mm256_blendv_ps(this_scale, _mm256_div_ps(sum_xl, sum_l2), mpos);
        __m256 cur_error = zero;
        for (int i = 0; i < 32; i++) {
            __m256 diff = _mm256_sub_ps(
                _mm256_add_ps(_mm256_mul_ps(this_scale, _mm256_cvtepi32_ps(La[i])), this_min), xt[i]);
            diff = _mm256_mul_ps(diff, diff);
            cur_error = _mm256_add_ps(cur_error, _mm256_mul_ps(wt[i], diff));
        }
        const __m256 acc =
            _mm256_andnot_ps(done, _mm256_and_ps(dpos, _mm256_cmp_ps(cur_error, best_error, _CMP_LT_OQ)));
        if (_mm256_movemask_ps(acc) == 0) continue;
        const __m256i acci = _mm256_castps_si256(acc);
        for (int i = 0; i < 32; i++) Lv[i] = _mm256_blendv_epi8(Lv[i], La[i], acci);
        best_error = _mm256_blendv_ps(best_error, cur_error, acc);
        scale = _mm256_blendv_ps(scale, this_scale, acc);
        min = _mm256_blendv_ps(min, this_min, acc);
    }
    scale = _mm256_blendv_ps(scale, zero, done);
    float sc[8] __attribute__((aligned(32))), mn[8] __attribute__((aligned(32)));
    _mm256_store_ps(sc, scale);
    _mm256_store_ps(mn, min);
    int32_t li[8] __attribute__((aligned(32)));
    int dn[8];
    const int dmask = _mm256_movemask_ps(done);
    for (int j = 0; j < 8; j++) {
        dn[j] = (dmask >> j) & 1;
        scales[j] = sc[j];
        mins[j] = -mn[j];
    }
    for (int i = 0; i < 32; i++) {
        _mm256_store_si256((__m256i *)li, Lv[i]);
        for (int j = 0; j < 8; j++) L[32 * j + i] = dn[j] ? 0 : (uint8_t)li[j];
    }
}

/* ggml's make_qx_quants (rmse_type 1) on 8 groups of 16 elements at once
 * (x: 128 floats, group g = x[16g .. 16g+15]; qw: NULL for x^2 weights, or
 * 128 weights laid out like x). Outputs L[16g+i] (= l + nmax) and scales[g],
 * each lane doing the scalar code's exact operation sequence. */
void phiq_qx16_search_avx2(const float *x, const float *qw, int nmax, int8_t *L, float *scales) {
    __m256 xt[16], wt[16];
    __m256i Lv[16];
    float tr[8] __attribute__((aligned(32)));
    for (int i = 0; i < 16; i++) {
        for (int g = 0; g < 8; g++) tr[g] = x[16 * g + i];
        xt[i] = _mm256_load_ps(tr);
        if (qw) {
            for (int g = 0; g < 8; g++) tr[g] = qw[16 * g + i];
            wt[i] = _mm256_load_ps(tr);
        } else {
            wt[i] = _mm256_mul_ps(xt[i], xt[i]);
        }
    }
    const __m256 sign = _mm256_set1_ps(-0.0f), zero = _mm256_setzero_ps();
    const __m256i lo = _mm256_set1_epi32(-nmax), hi = _mm256_set1_epi32(nmax - 1), off = _mm256_set1_epi32(nmax);
    __m256 amax = zero, max = zero;
    for (int i = 0; i < 16; i++) {
        const __m256 ax = _mm256_andnot_ps(sign, xt[i]);
        const __m256 gt = _mm256_cmp_ps(ax, amax, _CMP_GT_OQ);
        amax = _mm256_blendv_ps(amax, ax, gt);
        max = _mm256_blendv_ps(max, xt[i], gt);
    }
    const __m256 zero_grp = _mm256_cmp_ps(amax, _mm256_set1_ps(PHIQ_GROUP_MAX_EPS), _CMP_LT_OQ);
    __m256 iscale = _mm256_div_ps(_mm256_set1_ps((float)-nmax), max);
    __m256 sumlx = zero, suml2 = zero;
    for (int i = 0; i < 16; i++) {
        const __m256i l = _mm256_max_epi32(lo, _mm256_min_epi32(hi, nearest_int8(_mm256_mul_ps(iscale, xt[i]))));
        Lv[i] = l;
        const __m256 lf = _mm256_cvtepi32_ps(l);
        sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(_mm256_mul_ps(wt[i], xt[i]), lf));
        suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(wt[i], lf), lf));
    }
    /* scale = suml2 ? sumlx/suml2 : 0 */
    __m256 scale = _mm256_blendv_ps(_mm256_div_ps(sumlx, suml2), zero, _mm256_cmp_ps(suml2, zero, _CMP_EQ_OQ));
    __m256 best = _mm256_mul_ps(scale, sumlx);
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        const float num = -(nmax + 0.1f * is);
        iscale = _mm256_div_ps(_mm256_set1_ps(num), max);
        __m256i La[16];
        sumlx = suml2 = zero;
        for (int i = 0; i < 16; i++) {
            const __m256i l = _mm256_max_epi32(lo, _mm256_min_epi32(hi, nearest_int8(_mm256_mul_ps(iscale, xt[i]))));
            La[i] = l;
            const __m256 lf = _mm256_cvtepi32_ps(l);
            sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(_mm256_mul_ps(wt[i], xt[i]), lf));
            suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(wt[i], lf), lf));
        }
        const __m256 acc = _mm256_and_ps(
            _mm256_cmp_ps(suml2, zero, _CMP_GT_OQ),
            _mm256_cmp_ps(_mm256_mul_ps(sumlx, sumlx), _mm256_mul_ps(best, suml2), _CMP_GT_OQ));
        if (_mm256_movemask_ps(acc) == 0) continue;
        const __m256i acci = _mm256_castps_si256(acc);
        for (int i = 0; i < 16; i++) Lv[i] = _mm256_blendv_epi8(Lv[i], La[i], acci);
        const __m256 ns = _mm256_div_ps(sumlx, suml2);
        scale = _mm256_blendv_ps(scale, ns, acc);
        best = _mm256_blendv_ps(best, _mm256_mul_ps(ns, sumlx), acc);
    }
    scale = _mm256_blendv_ps(scale, zero, zero_grp);
    float sc[8] __attribute__((aligned(32)));
    _mm256_store_ps(sc, scale);
    int32_t li[8] __attribute__((aligned(32)));
    const int zmask = _mm256_movemask_ps(zero_grp);
    for (int g = 0; g < 8; g++) scales[g] = sc[g];
    for (int i = 0; i < 16; i++) {
        _mm256_store_si256((__m256i *)li, _mm256_add_epi32(Lv[i], off));
        for (int g = 0; g < 8; g++) L[16 * g + i] = (zmask >> g) & 1 ? 0 : (int8_t)li[g];
    }
}

/* ---- IQ4_NL / IQ4_XS ------------------------------------------------------ */

/* ggml's best_index_int8 over kvalues_iq4nl for 8 values: the binary search
 * ends at the unique mu with v[mu-1] <= x < v[mu], i.e. mu = #{k : v[k] <= x};
 * then the same float comparison picks mu-1 or mu. */
static inline __m256i best_index_iq4_8(__m256 x, const float *vf) {
    __m256i cnt = _mm256_setzero_si256();
    for (int k = 0; k < 16; k++)
        cnt = _mm256_sub_epi32(cnt, _mm256_castps_si256(_mm256_cmp_ps(_mm256_set1_ps(vf[k]), x, _CMP_LE_OQ)));
    const __m256i mu = _mm256_max_epi32(_mm256_set1_epi32(1), _mm256_min_epi32(_mm256_set1_epi32(15), cnt));
    const __m256i mu1 = _mm256_sub_epi32(mu, _mm256_set1_epi32(1));
    const __m256 vlo = _mm256_i32gather_ps(vf, mu1, 4), vhi = _mm256_i32gather_ps(vf, mu, 4);
    const __m256 pick_lo = _mm256_cmp_ps(_mm256_sub_ps(x, vlo), _mm256_sub_ps(vhi, x), _CMP_LT_OQ);
    __m256i r = _mm256_blendv_epi8(mu, mu1, _mm256_castps_si256(pick_lo));
    r = _mm256_blendv_epi8(r, _mm256_setzero_si256(),
                           _mm256_castps_si256(_mm256_cmp_ps(x, _mm256_set1_ps(vf[0]), _CMP_LE_OQ)));
    r = _mm256_blendv_epi8(r, _mm256_set1_epi32(15),
                           _mm256_castps_si256(_mm256_cmp_ps(x, _mm256_set1_ps(vf[15]), _CMP_NLT_UQ)));
    return r;
}

/* Indices of x[0..n) scaled by per-32-block factors id[n/32] (n multiple of 8). */
void phiq_iq4_index_avx2(const float *x, const float *id, int n, uint8_t *L) {
    float vf[16];
    for (int k = 0; k < 16; k++) vf[k] = phiq_kvalues_iq4nl[k];
    int32_t li[8] __attribute__((aligned(32)));
    for (int j = 0; j < n; j += 8) {
        const __m256 v = _mm256_mul_ps(_mm256_set1_ps(id[j / 32]), _mm256_loadu_ps(x + j));
        _mm256_store_si256((__m256i *)li, best_index_iq4_8(v, vf));
        for (int k = 0; k < 8; k++) L[j + k] = (uint8_t)li[k];
    }
}

/* The per-32-block scale search of quantize_row_iq4_nl_impl (ntry 7) for 8
 * blocks at once: x and w are 8 blocks of 32 (w = x^2 or the imatrix
 * weights, computed by the caller exactly as ggml does). scales[b] is 0 for
 * blocks with max |x| < GROUP_MAX_EPS. */
void phiq_iq4_scales_avx2(const float *x, const float *w, float *scales) {
    float vf[16];
    for (int k = 0; k < 16; k++) vf[k] = phiq_kvalues_iq4nl[k];
    __m256 xt[32], wt[32];
    float tr[8] __attribute__((aligned(32)));
    for (int i = 0; i < 32; i++) {
        for (int b = 0; b < 8; b++) tr[b] = x[32 * b + i];
        xt[i] = _mm256_load_ps(tr);
        for (int b = 0; b < 8; b++) tr[b] = w[32 * b + i];
        wt[i] = _mm256_load_ps(tr);
    }
    const __m256 sign = _mm256_set1_ps(-0.0f), zero = _mm256_setzero_ps();
    __m256 amax = zero, max = zero;
    for (int i = 0; i < 32; i++) {
        const __m256 ax = _mm256_andnot_ps(sign, xt[i]);
        const __m256 gt = _mm256_cmp_ps(ax, amax, _CMP_GT_OQ);
        amax = _mm256_blendv_ps(amax, ax, gt);
        max = _mm256_blendv_ps(max, xt[i], gt);
    }
    const __m256 zero_blk = _mm256_cmp_ps(amax, _mm256_set1_ps(PHIQ_GROUP_MAX_EPS), _CMP_LT_OQ);
    /* d = -max / values[0]; id = 1/d */
    __m256 d = _mm256_div_ps(_mm256_xor_ps(max, sign), _mm256_set1_ps(vf[0]));
    __m256 id = _mm256_div_ps(_mm256_set1_ps(1.0f), d);
    __m256 sumqx = zero, sumq2 = zero;
    for (int i = 0; i < 32; i++) {
        const __m256 q = _mm256_i32gather_ps(vf, best_index_iq4_8(_mm256_mul_ps(id, xt[i]), vf), 4);
        const __m256 wq = _mm256_mul_ps(wt[i], q);
        sumqx = _mm256_add_ps(sumqx, _mm256_mul_ps(wq, xt[i]));
        sumq2 = _mm256_add_ps(sumq2, _mm256_mul_ps(wq, q));
    }
    d = _mm256_blendv_ps(zero, _mm256_div_ps(sumqx, sumq2), _mm256_cmp_ps(sumq2, zero, _CMP_GT_OQ));
    __m256 best = _mm256_mul_ps(d, sumqx);
    for (int itry = -7; itry <= 7; itry++) {
        id = _mm256_div_ps(_mm256_set1_ps((float)(itry + phiq_kvalues_iq4nl[0])), max);
        sumqx = sumq2 = zero;
        for (int i = 0; i < 32; i++) {
            const __m256 q = _mm256_i32gather_ps(vf, best_index_iq4_8(_mm256_mul_ps(id, xt[i]), vf), 4);
            const __m256 wq = _mm256_mul_ps(wt[i], q);
            sumqx = _mm256_add_ps(sumqx, _mm256_mul_ps(wq, xt[i]));
            sumq2 = _mm256_add_ps(sumq2, _mm256_mul_ps(wq, q));
        }
        const __m256 acc = _mm256_and_ps(
            _mm256_cmp_ps(sumq2, zero, _CMP_GT_OQ),
            _mm256_cmp_ps(_mm256_mul_ps(sumqx, sumqx), _mm256_mul_ps(best, sumq2), _CMP_GT_OQ));
        const __m256 nd = _mm256_div_ps(sumqx, sumq2);
        d = _mm256_blendv_ps(d, nd, acc);
        best = _mm256_blendv_ps(best, _mm256_mul_ps(nd, sumqx), acc);
    }
    d = _mm256_blendv_ps(d, zero, zero_blk);
    _mm256_storeu_ps(scales, d);
}
