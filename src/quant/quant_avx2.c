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
 * weights av_x + |x|, then make_qkx2_quants(32, nmax, rmin, rdelta, nstep,
 * use_mad = false). Outputs L[32*j+i], scales[j], mins[j] (= -min). */
void phiq_k45_search_avx2(const float *x, int nmax, float rmin, float rdelta, int nstep, uint8_t *L, float *scales,
                          float *mins) {
    __m256 xt[32], wt[32];
    __m256i Lv[32], La[32];
    float tr[8] __attribute__((aligned(32)));
    for (int i = 0; i < 32; i++) {
        for (int j = 0; j < 8; j++) tr[j] = x[32 * j + i];
        xt[i] = _mm256_load_ps(tr);
    }
    const __m256 sign = _mm256_set1_ps(-0.0f), zero = _mm256_setzero_ps();
    __m256 sum_x2 = zero;
    for (int l = 0; l < 32; l++) sum_x2 = _mm256_add_ps(sum_x2, _mm256_mul_ps(xt[l], xt[l]));
    const __m256 av_x = _mm256_sqrt_ps(_mm256_div_ps(sum_x2, _mm256_set1_ps(32.0f)));
    for (int l = 0; l < 32; l++) wt[l] = _mm256_add_ps(av_x, _mm256_andnot_ps(sign, xt[l]));

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
