/* gptq.c — GPTQ error feedback inside ggml blocks (gptq.h).
 *
 * With A = H + λI, GPTQ needs the upper Cholesky factor U of A⁻¹
 * (A⁻¹ = UᵀU). A = RRᵀ with R = U⁻¹ upper triangular, so R is the Cholesky
 * factor of A with rows and columns reversed, and U its triangular inverse:
 * one factorization and one inversion, in float (in double when a pivot
 * is not positive in float). Rows of W are independent
 * given U, so threads take tiles of rows; within a tile each U row is read
 * once for all of the tile's rows. */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "formats/ggml_type.h"
#include "kernels/cpu.h"
#include "quant/gptq.h"
#include "quant/mlx_affine.h"
#include "quant/quant.h"
#include "quant/quant_internal.h"

#define TILE PHIQ_GPTQ_TILE
#define LAZY 128 /* columns whose updates beyond them are deferred and applied as one block update */

/* Which blocked forms of the loops below this CPU runs (gptq_avx512.c,
 * gptq_avx2.c: the same bits), by kernels/cpu.h's detection (CPUID and
 * the OS's register state). */
static bool gptq_avx512(void) {
    const phiq_cpu *c = phiq_cpu_get();
    return c->avx512f && c->avx512dq;
}

static bool gptq_avx2(void) {
    const phiq_cpu *c = phiq_cpu_get();
    return c->avx2 && c->fma;
}

/* fn(arg, t, nt) for t < nt on nt threads (the caller is thread 0) */
typedef struct par_job {
    void (*fn)(void *, int, int);
    void *arg;
    int t, nt;
} par_job;

static void *par_main(void *p) {
    par_job *j = p;
    j->fn(j->arg, j->t, j->nt);
    return NULL;
}

void phiq_gptq_par(int nt, void (*fn)(void *, int, int), void *arg) {
    pthread_t th[16];
    par_job jobs[16];
    if (nt > 16) nt = 16;
    if (nt < 1) nt = 1;
    int started = 0;
    for (int t = 1; t < nt; t++) {
        jobs[t] = (par_job){fn, arg, t, nt};
        if (pthread_create(&th[t], NULL, par_main, &jobs[t]) != 0) break;
        started = t;
    }
    /* threads that did not start: their share runs here */
    for (int t = started + 1; t < nt; t++) fn(arg, t, nt);
    fn(arg, 0, nt);
    for (int t = 1; t <= started; t++) pthread_join(th[t], NULL);
}

/* Cholesky a = L Lᵀ (lower, in place), column by column; -1 - j at the
 * first non-positive pivot j. gptq_avx512.c's is the same arithmetic. */
int phiq_gptq_chol_ref(double *a, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        double d = a[j * n + j];
        for (int64_t k = 0; k < j; k++) d -= a[j * n + k] * a[j * n + k];
        if (!(d > 0)) return (int)(-1 - j);
        d = sqrt(d);
        a[j * n + j] = d;
        for (int64_t i = j + 1; i < n; i++) {
            double s = a[i * n + j];
            const double *ri = a + i * n, *rj = a + j * n;
            for (int64_t k = 0; k < j; k++) s -= ri[k] * rj[k];
            a[i * n + j] = s / d;
        }
    }
    return 0;
}

/* M = L⁻¹ in place of the Cholesky factor, row by row so that every inner
 * loop runs along contiguous rows: Lᵀ is parked in the upper triangle
 * (L[i][k] at a[k][i]) and the diagonal aside (diag), then
 * M[i][0..i) = -(Σ_k<i L[i][k] M[k][0..k]) / L[i][i], M[i][i] = 1 / L[i][i]. */
void phiq_gptq_park(double *a, double *diag, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        diag[i] = a[i * n + i];
        for (int64_t k = 0; k < i; k++) a[k * n + i] = a[i * n + k];
    }
}

void phiq_gptq_trinv_ref(double *a, const double *diag, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double *mi = a + i * n;
        for (int64_t j = 0; j < i; j++) mi[j] = 0;
        for (int64_t k = 0; k < i; k++) {
            const double l = a[k * n + i], *mk = a + k * n;
            for (int64_t j = 0; j <= k; j++) mi[j] += l * mk[j];
        }
        const double inv = 1.0 / diag[i];
        for (int64_t j = 0; j < i; j++) mi[j] *= -inv;
        mi[i] = inv;
    }
}

void phiq_gptq_axpy_ref(float *row, const float *u, float e, int64_t n) {
    for (int64_t k = 0; k < n; k++) row[k] = fmaf(-e, u[k], row[k]);
}

/* The sweep's updates for this CPU: AVX-512, else AVX2 with FMA (fmaf one
 * instruction, so the loops vectorize), else the portable loops; the same
 * bits whichever. */
phiq_gptq_updates phiq_gptq_updates_get(void) {
    phiq_gptq_updates u = {phiq_gptq_axpy_ref, phiq_gptq_block_update_ref};
#if defined(__x86_64__)
    if (gptq_avx512()) u = (phiq_gptq_updates){phiq_gptq_axpy_avx512, phiq_gptq_block_update_avx512};
    else if (gptq_avx2())
        u = (phiq_gptq_updates){phiq_gptq_axpy_avx2, phiq_gptq_block_update_avx2};
#endif
    return u;
}

void phiq_gptq_block_update_ref(float *w, int64_t ldw, int nr, const float *et, const float *u, int64_t ldu, int64_t nc,
                                int64_t k0, int64_t k1) {
    for (int r = 0; r < nr; r++)
        for (int64_t c = 0; c < nc; c++) {
            const float e = et[c * TILE + r];
            for (int64_t k = k0; k < k1; k++) w[r * ldw + k] = fmaf(-e, u[c * ldu + k], w[r * ldw + k]);
        }
}

/* The single-precision forms (the default path): as above, with each term
 * one fused multiply-add, k ascending; gptq_avx512.c's are the same bits. */
int phiq_gptq_chol_f32_ref(float *a, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        const float *rj = a + j * n;
        float d = rj[j];
        for (int64_t k = 0; k < j; k++) d = fmaf(-rj[k], rj[k], d);
        if (!(d > 0)) return (int)(-1 - j);
        d = sqrtf(d);
        a[j * n + j] = d;
        for (int64_t i = j + 1; i < n; i++) {
            const float *ri = a + i * n;
            float s = ri[j];
            for (int64_t k = 0; k < j; k++) s = fmaf(-ri[k], rj[k], s);
            a[i * n + j] = s / d;
        }
    }
    return 0;
}

/* M = L⁻¹ in place, row by row: row i's L aside in tmp, then
 * M[i][j] = -(Σ_{j<=k<i} L[i][k] M[k][j]) / L[i][i] from 0 up, M[i][i] = 1 / L[i][i]. */
void phiq_gptq_trinv_f32_ref(float *a, float *tmp, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float *mi = a + i * n;
        memcpy(tmp, mi, sizeof(float) * (size_t)(i + 1));
        for (int64_t j = 0; j < i; j++) mi[j] = 0;
        for (int64_t k = 0; k < i; k++) {
            const float *mk = a + k * n;
            for (int64_t j = 0; j <= k; j++) mi[j] = fmaf(tmp[k], mk[j], mi[j]);
        }
        const float inv = 1.0f / tmp[i];
        for (int64_t j = 0; j < i; j++) mi[j] *= -inv;
        mi[i] = inv;
    }
}

/* A = H + λI in the reversed sweep order, a[i][j] = H[perm[n-1-i]][perm[n-1-j]]
 * (dead columns' diagonal 1), into ad (double) or af (float, rounded from double) */
static void damped(const float *H, const int64_t *perm, int64_t n, float damp, double *ad, float *af) {
    double mean = 0;
    for (int64_t i = 0; i < n; i++) mean += H[i * n + i];
    mean /= (double)n;
    if (!(mean > 0)) mean = 1;
    const double lambda = damp * mean;
    for (int64_t i = 0; i < n; i++) {
        const float *hi = H + perm[n - 1 - i] * n;
        for (int64_t j = 0; j < n; j++) {
            double v = hi[perm[n - 1 - j]];
            if (i == j) v = (v <= 0 ? 1 : v) + lambda;
            if (ad) ad[i * n + j] = v;
            else af[i * n + j] = (float)v;
        }
    }
}

/* U from the double path (the fall back): -1 when A is not positive definite in double either */
static int inverse_chol_upper_f64(const float *H, const int64_t *perm, int64_t n, float damp, float *U, int n_threads) {
    double *a = malloc(sizeof(double) * (size_t)(n * n));
    if (!a) return phiq_fail(PHIQ_ENOMEM, "gptq: out of memory for a %lld x %lld Hessian", (long long)n, (long long)n);
    damped(H, perm, n, damp, a, NULL);
    const bool fast = gptq_avx512();
    double *pt = fast ? malloc(sizeof(double) * (size_t)(64 * n)) : NULL;
    double *diag = malloc(sizeof(double) * (size_t)n);
    if ((fast && !pt) || !diag) {
        free(pt);
        free(diag);
        free(a);
        return phiq_fail(PHIQ_ENOMEM, "gptq: out of memory");
    }
#if defined(__x86_64__)
    int bad = fast ? phiq_gptq_chol_avx512(a, n, pt, n_threads) : phiq_gptq_chol_ref(a, n);
#else
    int bad = phiq_gptq_chol_ref(a, n);
#endif
    free(pt);
    if (bad < 0) {
        free(diag);
        free(a);
        return phiq_fail(PHIQ_EINVAL, "gptq: Hessian not positive definite (raise --damp)");
    }
    /* R[i][j] = L[n-1-i][n-1-j] (upper); U = R⁻¹ (upper). Invert L (lower)
     * in place as M = L⁻¹, then U[i][j] = M[n-1-i][n-1-j]. */
    phiq_gptq_park(a, diag, n);
#if defined(__x86_64__)
    if (fast) phiq_gptq_trinv_avx512(a, diag, n, n_threads);
    else
#endif
        phiq_gptq_trinv_ref(a, diag, n);
    free(diag);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) U[i * n + j] = j >= i ? (float)a[(n - 1 - i) * n + (n - 1 - j)] : 0.0f;
    free(a);
    return 0;
}

/* U (float, [n][n], upper) from H with rows and columns in the order perm
 * (the sweep's); dead columns (zero diagonal) get 1. In float, in place
 * in U (the original GPTQ factors in float too); a pivot that is not
 * positive in float takes the double path, which fails only if A is not
 * positive definite there either. */
static int inverse_chol_upper(const float *H, const int64_t *perm, int64_t n, float damp, float *U, int n_threads) {
    damped(H, perm, n, damp, NULL, U);
    /* the blocked forms (the same bits) where the CPU has them */
    int (*chol)(float *, int64_t, float *, int) = NULL;
    void (*trinv)(float *, int64_t, float *, int) = NULL;
#if defined(__x86_64__)
    if (gptq_avx512()) chol = phiq_gptq_chol_f32_avx512, trinv = phiq_gptq_trinv_f32_avx512;
    else if (gptq_avx2()) chol = phiq_gptq_chol_f32_avx2, trinv = phiq_gptq_trinv_f32_avx2;
#endif
    float *work = NULL, *tmp = NULL;
#if defined(__x86_64__)
    if (chol) work = aligned_alloc(64, (sizeof(float) * (size_t)phiq_gptq_f32_work(n) + 63) / 64 * 64);
    else
#endif
        tmp = malloc(sizeof(float) * (size_t)n);
    if (!work && !tmp) return phiq_fail(PHIQ_ENOMEM, "gptq: out of memory");
    int bad;
    if (chol) {
        bad = chol(U, n, work, n_threads);
        if (bad == 0) trinv(U, n, work, n_threads);
        free(work);
    } else {
        bad = phiq_gptq_chol_f32_ref(U, n);
        if (bad == 0) phiq_gptq_trinv_f32_ref(U, tmp, n);
    }
    free(tmp);
    if (bad < 0) return inverse_chol_upper_f64(H, perm, n, damp, U, n_threads);
    /* U[i][j] = M[n-1-i][n-1-j]: the whole array reversed, then the lower part cleared */
    for (int64_t x = 0, y = n * n - 1; x < y; x++, y--) {
        const float v = U[x];
        U[x] = U[y];
        U[y] = v;
    }
    for (int64_t i = 0; i < n; i++) memset(U + i * n, 0, sizeof(float) * (size_t)i);
    return 0;
}

/* ---- rounding one column on a block's fixed grid ------------------------------ */
/* Q4_K/Q5_K: element j's sub-block scale *d and min *mn from the block's
 * header (d, dmin, 6-bit scales), and the code in [0, nmax] nearest x. */
static int k45_round(phiq_half dh, phiq_half dminh, const uint8_t *scales, int j, float x, int nmax, float *d,
                     float *mn) {
    uint8_t sc, m;
    phiq_k4_scale_min(j / 32, scales, &sc, &m);
    *d = phiq_f16_to_f32(dh) * sc;
    *mn = phiq_f16_to_f32(dminh) * m;
    const int q = *d != 0 ? (int)lrintf((x + *mn) / *d) : 0;
    return q < 0 ? 0 : q > nmax ? nmax : q;
}

/* Sets element j of the block to the grid point nearest x, returns its value;
 * NAN when the type has no column rounding (the block's own value is kept). */
static float round_on_grid(int type, uint8_t *blk, int j, float x) {
    switch (type) {
    case PHIQ_GGML_TYPE_Q4_0: {
        phiq_block_q4_0 *b = (phiq_block_q4_0 *)(void *)blk;
        float d = phiq_f16_to_f32(b->d);
        int q = d != 0 ? (int)lrintf(x / d) + 8 : 8;
        q = q < 0 ? 0 : q > 15 ? 15 : q;
        int byte = j & 15, hi = j >= 16;
        b->qs[byte] = (uint8_t)(hi ? ((b->qs[byte] & 0x0F) | (q << 4)) : ((b->qs[byte] & 0xF0) | q));
        return d * (float)(q - 8);
    }
    case PHIQ_GGML_TYPE_Q8_0: {
        phiq_block_q8_0 *b = (phiq_block_q8_0 *)(void *)blk;
        float d = phiq_f16_to_f32(b->d);
        int q = d != 0 ? (int)lrintf(x / d) : 0;
        q = q < -128 ? -128 : q > 127 ? 127 : q;
        b->qs[j] = (int8_t)q;
        return d * (float)q;
    }
    case PHIQ_GGML_TYPE_Q4_K: {
        phiq_block_q4_K *b = (phiq_block_q4_K *)(void *)blk;
        float d, mn;
        const int q = k45_round(b->d, b->dmin, b->scales, j, x, 15, &d, &mn);
        int byte = (j / 64) * 32 + (j % 32), hi = (j / 32) & 1;
        b->qs[byte] = (uint8_t)(hi ? ((b->qs[byte] & 0x0F) | (q << 4)) : ((b->qs[byte] & 0xF0) | q));
        return d * (float)q - mn;
    }
    case PHIQ_GGML_TYPE_Q5_K: {
        phiq_block_q5_K *b = (phiq_block_q5_K *)(void *)blk;
        float d, mn;
        const int q = k45_round(b->d, b->dmin, b->scales, j, x, 31, &d, &mn);
        /* element j = 64 c + 32 s + l: qs[32 c + l] nibble s, qh[l] bit 2 c + s */
        int c = j / 64, sub = (j / 32) & 1, l = j % 32, byte = 32 * c + l, bit = 2 * c + sub;
        b->qs[byte] = (uint8_t)(sub ? ((b->qs[byte] & 0x0F) | ((q & 15) << 4)) : ((b->qs[byte] & 0xF0) | (q & 15)));
        b->qh[l] = (uint8_t)((b->qh[l] & ~(1u << bit)) | ((unsigned)(q >> 4) << bit));
        return d * (float)q - mn;
    }
    case PHIQ_GGML_TYPE_Q6_K: {
        phiq_block_q6_K *b = (phiq_block_q6_K *)(void *)blk;
        /* element j = 128 h + 32 g + l: ql[64 h + l + 32 (g & 1)] nibble (g >> 1),
         * qh[32 h + l] bits 2g, scale 8 h + l / 16 + 2 g */
        int h = j / 128, g = (j % 128) / 32, l = j % 32;
        float d = phiq_f16_to_f32(b->d) * (float)b->scales[8 * h + l / 16 + 2 * g];
        int q = d != 0 ? (int)lrintf(x / d) + 32 : 32;
        q = q < 0 ? 0 : q > 63 ? 63 : q;
        uint8_t *ql = &b->ql[64 * h + l + 32 * (g & 1)], *qh = &b->qh[32 * h + l];
        if (g >> 1) *ql = (uint8_t)((*ql & 0x0F) | ((q & 15) << 4));
        else *ql = (uint8_t)((*ql & 0xF0) | (q & 15));
        *qh = (uint8_t)((*qh & ~(3 << (2 * g))) | ((q >> 4) << (2 * g)));
        return d * (float)(q - 32);
    }
    default: return NAN;
    }
}

/* ---- the grids GPTQ rounds on (gptq.h) ------------------------------------------- */
typedef struct ggml_grid {
    int type;
    uint8_t *dst;
    int64_t row_bytes, blk_bytes;
} ggml_grid;

typedef struct mlx_grid {
    int bits, sdt;
    phiq_mlx_kernel kernel;
    uint32_t *words;
    float *scales, *biases;
    int64_t words_per_row, groups_per_row;
} mlx_grid;

static int ggml_fit(const phiq_gptq_grid *gg, int64_t r, int64_t c0, const float *x, const float *imp, float *deq) {
    const ggml_grid *g = gg->ud;
    uint8_t *blk = g->dst + r * g->row_bytes + (c0 / gg->bs) * g->blk_bytes;
    if (phiq_quantize(g->type, x, blk, 1, gg->bs, imp) < 0 || phiq_dequantize(g->type, blk, deq, gg->bs) < 0)
        return PHIQ_EUNSUPPORTED;
    return 0;
}

static float ggml_round(const phiq_gptq_grid *gg, int64_t r, int64_t c, float x) {
    const ggml_grid *g = gg->ud;
    uint8_t *blk = g->dst + r * g->row_bytes + (c / gg->bs) * g->blk_bytes;
    return round_on_grid(g->type, blk, (int)(c % gg->bs), x);
}

static float to_stored(int sdt, float v) {
    if (sdt == PHIQ_GGML_TYPE_BF16) return phiq_bf16_to_f32(phiq_f32_to_bf16(v));
    if (sdt == PHIQ_GGML_TYPE_F16) return phiq_f16_to_f32(phiq_f32_to_f16(v));
    return v;
}

/* code of x on (scale, bias) with MLX's rounding, clamped */
static float mlx_code(float x, float s, float b, float n_bins, phiq_mlx_kernel k) {
    float d = (x - b) / s;
    float q = k == PHIQ_MLX_GPU ? roundf(d) : rintf(d);
    return q < 0.0f ? 0.0f : q > n_bins ? n_bins : q;
}

/* importance-weighted squared error of x on (s, b) */
static double mlx_err(const float *x, const float *imp, int64_t n, float s, float b, float n_bins, phiq_mlx_kernel k) {
    double e = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = s * mlx_code(x[i], s, b, n_bins, k) + b;
        e += (double)imp[i] * (double)(x[i] - v) * (double)(x[i] - v);
    }
    return e;
}

/* MLX's own parameters of the group, then a search that may beat them:
 * for a range of grid densities, the codes of the min-anchored grid and the
 * importance-weighted least-squares (scale, bias) for those codes (as
 * llama.cpp's make_qkx2_quants does for its K-quants), each rounded to the
 * stored dtype; the best by weighted error wins. Any (scale, bias) is a
 * valid MLX affine group, so stock mlx-lm reads the result unchanged. */
static int mlx_fit(const phiq_gptq_grid *gg, int64_t r, int64_t c0, const float *x, const float *imp, float *deq) {
    const mlx_grid *g = gg->ud;
    const int64_t n = gg->bs, gi = r * g->groups_per_row + c0 / n;
    const float n_bins = (float)((1 << g->bits) - 1);
    uint32_t tmp[8 * 128 / 32];
    float s, b;
    phiq_mlx_quantize_row(x, n, g->bits, (int)n, g->kernel, tmp, &s, &b);
    s = to_stored(g->sdt, s);
    b = to_stored(g->sdt, b);
    double best = s != 0.0f ? mlx_err(x, imp, n, s, b, n_bins, g->kernel) : INFINITY;
    float lo = x[0], hi = x[0];
    for (int64_t i = 1; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    for (int step = 0; step <= 20 && hi > lo; step++) {
        const float iscale = (n_bins - 1.0f + 0.1f * (float)step) / (hi - lo);
        double sw = 0, sl = 0, sl2 = 0, sx = 0, sxl = 0;
        for (int64_t i = 0; i < n; i++) {
            float l = rintf(iscale * (x[i] - lo));
            l = l < 0.0f ? 0.0f : l > n_bins ? n_bins : l;
            const double w = imp[i];
            sw += w;
            sl += w * l;
            sl2 += w * l * l;
            sx += w * x[i];
            sxl += w * x[i] * l;
        }
        const double D = sw * sl2 - sl * sl;
        if (!(D > 0)) continue;
        float cs = to_stored(g->sdt, (float)((sw * sxl - sx * sl) / D));
        float cb = to_stored(g->sdt, (float)((sl2 * sx - sl * sxl) / D));
        if (!(fabsf(cs) > 1e-30f) || !isfinite(cs) || !isfinite(cb)) continue;
        double e = mlx_err(x, imp, n, cs, cb, n_bins, g->kernel);
        if (e < best) {
            best = e;
            s = cs;
            b = cb;
        }
    }
    if (!(s != 0.0f)) s = to_stored(g->sdt, 1e-7f);
    g->scales[gi] = s;
    g->biases[gi] = b;
    for (int64_t i = 0; i < n; i++) deq[i] = s * mlx_code(x[i], s, b, n_bins, g->kernel) + b;
    return 0;
}

static float mlx_round(const phiq_gptq_grid *gg, int64_t r, int64_t c, float x) {
    const mlx_grid *g = gg->ud;
    const int64_t gi = r * g->groups_per_row + c / gg->bs;
    const float s = g->scales[gi], b = g->biases[gi], q = mlx_code(x, s, b, (float)((1 << g->bits) - 1), g->kernel);
    uint32_t *words = g->words + r * g->words_per_row, code = (uint32_t)q, mask = (1u << g->bits) - 1;
    uint64_t bit = (uint64_t)c * (uint64_t)g->bits;
    words[bit >> 5] = (words[bit >> 5] & ~(mask << (bit & 31))) | (code << (bit & 31));
    if ((bit & 31) + (uint64_t)g->bits > 32) {
        const int sh = 32 - (int)(bit & 31);
        words[(bit >> 5) + 1] = (words[(bit >> 5) + 1] & ~(mask >> sh)) | (code >> sh);
    }
    const float p = s * q; /* two roundings, as MLX dequantizes */
    return p + b;
}

/* ---- the sweep ------------------------------------------------------------------ */
/* The sweep runs in a permuted column order (act-order): perm[k] is the
 * column swept k-th. Each run of bs sweep positions holds one whole block,
 * so a block's parameters are fitted once, on the error-updated weights of
 * all its columns, before its first column is rounded. w is in sweep order. */
typedef struct gjob {
    const phiq_gptq_grid *g;
    float *w;
    int64_t nrows, ncols;
    const float *U, *imat;
    const int64_t *perm;
    int64_t next; /* next tile (under mu) */
    pthread_mutex_t mu;
    int rc;
    phiq_gptq_updates up;
} gjob;

static void *gptq_worker(void *arg) {
    gjob *j = arg;
    const phiq_gptq_grid *g = j->g;
    const int64_t n = j->ncols, bs = g->bs;
    /* lazy batch: a run of lb sweep positions (whole blocks) updates only
     * itself column by column; the columns past it get the run's terms in
     * one block update (the same terms in the same order, so the same bits) */
    const int64_t lb = bs >= LAZY ? bs : LAZY / bs * bs;
    float *deq = malloc(sizeof(float) * (size_t)(TILE * bs)), *xo = malloc(sizeof(float) * (size_t)bs);
    float *et = malloc(sizeof(float) * (size_t)(TILE * lb));
    if (!deq || !xo || !et) {
        pthread_mutex_lock(&j->mu);
        j->rc = PHIQ_ENOMEM;
        pthread_mutex_unlock(&j->mu);
        free(deq), free(xo), free(et);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&j->mu);
        int64_t r0 = j->next;
        j->next += TILE;
        int stop = j->rc < 0;
        pthread_mutex_unlock(&j->mu);
        if (stop || r0 >= j->nrows) break;
        int64_t nr = j->nrows - r0 < TILE ? j->nrows - r0 : TILE;
        for (int64_t l0 = 0; l0 < n; l0 += lb) {
            const int64_t l1 = l0 + lb < n ? l0 + lb : n;
            for (int64_t c0 = l0; c0 < l1; c0 += bs) {
                const int64_t ob = j->perm[c0] / bs * bs; /* the block's first column in the file */
                for (int64_t r = 0; r < nr; r++) {
                    const float *row = j->w + (r0 + r) * n;
                    for (int64_t k = c0; k < c0 + bs; k++) xo[j->perm[k] - ob] = row[k];
                    int rc = g->fit(g, r0 + r, ob, xo, j->imat + ob, deq + r * bs);
                    if (rc < 0) {
                        pthread_mutex_lock(&j->mu);
                        j->rc = rc;
                        pthread_mutex_unlock(&j->mu);
                        free(deq), free(xo), free(et);
                        return NULL;
                    }
                }
                for (int64_t c = c0; c < c0 + bs; c++) {
                    const float *u = j->U + c * n;
                    const int64_t oc = j->perm[c];
                    float *e = et + (c - l0) * TILE;
                    for (int64_t r = 0; r < nr; r++) {
                        float *row = j->w + (r0 + r) * n;
                        float q = g->round(g, r0 + r, oc, row[c]);
                        if (isnan(q)) q = deq[r * bs + (oc - ob)];
                        e[r] = (row[c] - q) / u[c];
                    }
                    for (int64_t r = 0; r < nr; r++) j->up.axpy(j->w + (r0 + r) * n + c + 1, u + c + 1, e[r], l1 - c - 1);
                }
            }
            if (l1 == n) continue;
            j->up.block(j->w + r0 * n, n, (int)nr, et, j->U + l0 * n, n, l1 - l0, l1, n);
        }
    }
    free(deq), free(xo), free(et);
    return NULL;
}

/* idx[0..m) ordered by decreasing key[idx] (ties: smaller index first); m is small */
static void sort_desc(int64_t *idx, int64_t m, const float *key) {
    for (int64_t i = 1; i < m; i++) {
        const int64_t v = idx[i];
        int64_t k = i;
        while (k > 0 && (key[idx[k - 1]] < key[v] || (key[idx[k - 1]] == key[v] && idx[k - 1] > v))) {
            idx[k] = idx[k - 1];
            k--;
        }
        idx[k] = v;
    }
}

/* Act-order within the block structure: blocks by decreasing Σ diag(H), and
 * inside each block its columns by decreasing diag(H) (GPTQ's act-order,
 * with each block's columns kept together so that its parameters are fitted
 * once). Without act_order: the file's order. */
static void sweep_order(const float *dg, int64_t n, int64_t bs, int act_order, int64_t *perm) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    if (!act_order) return;
    const int64_t nb = n / bs;
    float *key = malloc(sizeof(float) * (size_t)nb);
    int64_t *ord = malloc(sizeof(int64_t) * (size_t)nb);
    if (!key || !ord) { /* the file's order still works */
        free(key), free(ord);
        return;
    }
    for (int64_t b = 0; b < nb; b++) {
        key[b] = 0;
        for (int64_t i = 0; i < bs; i++) key[b] += dg[b * bs + i];
        ord[b] = b;
    }
    sort_desc(ord, nb, key);
    for (int64_t b = 0; b < nb; b++) {
        for (int64_t i = 0; i < bs; i++) perm[b * bs + i] = ord[b] * bs + i;
        sort_desc(perm + b * bs, bs, dg);
    }
    free(key), free(ord);
}

/* act_order: sweep_order's. The parameter search's importance is diag(H),
 * the imatrix of the same text. */
static int gptq_sweep(const phiq_gptq_grid *g, float *w, int64_t nrows, int64_t ncols, const float *H, float damp,
                      int n_threads, int act_order) {
    const int64_t n = ncols;
    float *U = malloc(sizeof(float) * (size_t)(n * n)), *imat = malloc(sizeof(float) * (size_t)n);
    float *tmp = malloc(sizeof(float) * (size_t)n);
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)n);
    int rc = 0;
    if (!U || !imat || !tmp || !perm) rc = phiq_fail(PHIQ_ENOMEM, "gptq: out of memory");
    if (rc == 0) {
        for (int64_t i = 0; i < n; i++) imat[i] = H[i * n + i] > 0 ? H[i * n + i] : 1e-12f;
        sweep_order(imat, n, g->bs, act_order, perm);
        rc = inverse_chol_upper(H, perm, n, damp, U, n_threads);
    }
    if (rc == 0) {
        for (int64_t r = 0; r < nrows; r++) {
            float *row = w + r * n;
            memcpy(tmp, row, sizeof(float) * (size_t)n);
            for (int64_t k = 0; k < n; k++) row[k] = tmp[perm[k]];
        }
        gjob j = {.g = g, .w = w, .nrows = nrows, .ncols = n, .U = U, .imat = imat, .perm = perm, .up = phiq_gptq_updates_get()};
        pthread_mutex_init(&j.mu, NULL);
        if (n_threads < 1) n_threads = 1;
        if (n_threads > 64) n_threads = 64;
        pthread_t th[64];
        int started = 0;
        for (int i = 1; i < n_threads; i++, started++)
            if (pthread_create(&th[i - 1], NULL, gptq_worker, &j) != 0) break;
        gptq_worker(&j);
        for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
        pthread_mutex_destroy(&j.mu);
        rc = j.rc;
    }
    free(U), free(imat), free(tmp), free(perm);
    return rc;
}

int phiq_gptq_run(const phiq_gptq_grid *g, float *w, int64_t nrows, int64_t ncols, const float *H, float damp, int n_threads) {
    return gptq_sweep(g, w, nrows, ncols, H, damp, n_threads, 0);
}

int phiq_gptq_quantize(int type, float *w, void *dst, int64_t nrows, int64_t ncols, const float *H, float damp,
                       int n_threads) {
    const int64_t bs = phiq_ggml_block_size(type);
    if (bs <= 1 || ncols % bs) return phiq_fail(PHIQ_EUNSUPPORTED, "gptq: type %s is not a block type for rows of %lld",
                                               phiq_ggml_type_name(type), (long long)ncols);
    ggml_grid gs = {.type = type, .dst = dst, .row_bytes = phiq_ggml_row_size(type, ncols),
                    .blk_bytes = phiq_ggml_row_size(type, bs)};
    phiq_gptq_grid g = {.bs = bs, .fit = ggml_fit, .round = ggml_round, .ud = &gs};
    int rc = gptq_sweep(&g, w, nrows, ncols, H, damp, n_threads, 1);
    if (rc == PHIQ_EUNSUPPORTED) rc = phiq_fail(rc, "gptq: cannot quantize to %s", phiq_ggml_type_name(type));
    else if (rc == PHIQ_ENOMEM) rc = phiq_fail(rc, "gptq: out of memory");
    return rc;
}

int phiq_gptq_quantize_mlx(float *w, int64_t nrows, int64_t ncols, const float *H, float damp, int n_threads, int bits,
                           int group_size, phiq_mlx_kernel kernel, int scale_type, uint32_t *words, float *scales,
                           float *biases) {
    if (!phiq_mlx_bits_ok(bits) || !phiq_mlx_group_ok(group_size) || ncols % group_size)
        return phiq_fail(PHIQ_EINVAL, "gptq: MLX %d-bit groups of %d do not fit rows of %lld", bits, group_size,
                         (long long)ncols);
    mlx_grid gs = {.bits = bits, .sdt = scale_type, .kernel = kernel, .words = words, .scales = scales,
                   .biases = biases, .words_per_row = ncols * bits / 32, .groups_per_row = ncols / group_size};
    phiq_gptq_grid g = {.bs = group_size, .fit = mlx_fit, .round = mlx_round, .ud = &gs};
    memset(words, 0, sizeof(uint32_t) * (size_t)(nrows * gs.words_per_row));
    int rc = phiq_gptq_run(&g, w, nrows, ncols, H, damp, n_threads);
    if (rc == PHIQ_ENOMEM) rc = phiq_fail(rc, "gptq: out of memory");
    return rc;
}
