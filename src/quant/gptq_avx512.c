/* gptq_avx512.c — GPTQ's dense linear algebra with AVX-512 (gptq.c): the
 * Cholesky factorization and the triangular inverse of the damped Hessian
 * (f32 with fused multiply-adds; double, the fall back, with rounded
 * products and sums) and the sweep's row update (float, one fused
 * multiply-add per term), each bit for bit the scalar loops of gptq.c:
 * every entry sees the same operations in the same order (only entries are
 * computed side by side, and partial sums parked in memory between blocks,
 * which is exact). Compiled with -ffp-contract=off (CMakeLists.txt) so that
 * only the explicit fused multiply-adds fuse. Blocked so that 8192 x 8192
 * takes seconds, not minutes. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "quant/quant_internal.h"

#define CHOL_P 64 /* panel width */

static inline __mmask8 lanes_below(int64_t m) { return m >= 8 ? (__mmask8)0xFF : m <= 0 ? 0 : (__mmask8)((1u << m) - 1); }

/* gptq.c's column Cholesky: for j, d = a[j][j] - sum_k<j L[j][k]^2 (k in
 * order), L[j][j] = sqrt d, L[i][j] = (a[i][j] - sum_k<j L[i][k] L[j][k]) / d.
 * Here by panels of 64 columns: the panel's columns transposed into pt
 * (pt[p][i] = a[i][k0 + p]) and finished for every row with the terms of
 * k in the panel, then the terms of the panel subtracted from the rest of
 * the lower triangle, in k order. Entries above the diagonal get garbage
 * (the caller never reads them). */
typedef struct chol_upd {
    double *a;
    const double *pt;
    int64_t n, k1, pw;
} chol_upd;

/* Rows in blocks of CHOL_IB, block b to thread b % nt; within a block,
 * the strips of 16 columns that reach the lower triangle, and down each
 * strip 8 rows at a time with the panel's 64 terms in order. A block's
 * own panel values (pt[p][i..i+CHOL_IB), 32 KiB) stay in L1/L2 across
 * its strips, and each strip's (8 KiB) across its rows: blocking by
 * strips first re-read every row's panel values from memory per strip. */
#define CHOL_IB 64
static void chol_update(void *arg, int t, int nt) {
    const chol_upd *u = arg;
    const int64_t n = u->n, k1 = u->k1;
    const double *pt = u->pt;
    for (int64_t ib = k1 + CHOL_IB * t; ib < n; ib += CHOL_IB * nt) {
        const int64_t ie = ib + CHOL_IB < n ? ib + CHOL_IB : n;
        for (int64_t j = k1; j < ie; j += 16) {
            const __mmask8 m0 = lanes_below(n - j), m1 = lanes_below(n - j - 8);
            for (int64_t i = j > ib ? j : ib; i < ie; i += 8) {
                const int nr = ie - i < 8 ? (int)(ie - i) : 8;
                __m512d s0[8], s1[8];
                for (int r = 0; r < nr; r++) {
                    s0[r] = _mm512_maskz_loadu_pd(m0, u->a + (i + r) * n + j);
                    s1[r] = _mm512_maskz_loadu_pd(m1, u->a + (i + r) * n + j + 8);
                }
                for (int64_t p = 0; p < u->pw; p++) {
                    const double *yp = pt + p * n, *lp = yp + i;
                    const __m512d y0 = _mm512_maskz_loadu_pd(m0, yp + j), y1 = _mm512_maskz_loadu_pd(m1, yp + j + 8);
                    for (int r = 0; r < nr; r++) {
                        const __m512d l = _mm512_set1_pd(lp[r]);
                        s0[r] = _mm512_sub_pd(s0[r], _mm512_mul_pd(l, y0));
                        s1[r] = _mm512_sub_pd(s1[r], _mm512_mul_pd(l, y1));
                    }
                }
                for (int r = 0; r < nr; r++) {
                    _mm512_mask_storeu_pd(u->a + (i + r) * n + j, m0, s0[r]);
                    _mm512_mask_storeu_pd(u->a + (i + r) * n + j + 8, m1, s1[r]);
                }
            }
        }
    }
}

int phiq_gptq_chol_avx512(double *a, int64_t n, double *pt, int nt) {
    for (int64_t k0 = 0; k0 < n; k0 += CHOL_P) {
        const int64_t pw = n - k0 < CHOL_P ? n - k0 : CHOL_P;
        for (int64_t i = k0; i < n; i++)
            for (int64_t p = 0; p < pw; p++) pt[p * n + i] = a[i * n + k0 + p];
        for (int64_t p = 0; p < pw; p++) {
            const int64_t j = k0 + p;
            double d = pt[p * n + j];
            for (int64_t q = 0; q < p; q++) d -= pt[q * n + j] * pt[q * n + j];
            if (!(d > 0)) return (int)(-1 - j);
            d = sqrt(d);
            pt[p * n + j] = d;
            const __m512d vd = _mm512_set1_pd(d);
            for (int64_t i = j + 1; i < n; i += 8) {
                const __mmask8 m = lanes_below(n - i);
                __m512d s = _mm512_maskz_loadu_pd(m, pt + p * n + i);
                for (int64_t q = 0; q < p; q++)
                    s = _mm512_sub_pd(s, _mm512_mul_pd(_mm512_maskz_loadu_pd(m, pt + q * n + i), _mm512_set1_pd(pt[q * n + j])));
                _mm512_mask_storeu_pd(pt + p * n + i, m, _mm512_div_pd(s, vd));
            }
        }
        for (int64_t i = k0; i < n; i++)
            for (int64_t p = 0; p < pw && k0 + p <= i; p++) a[i * n + k0 + p] = pt[p * n + i];
        /* trailing update: rows i >= k1, columns k1 <= j <= i (rounded up to 16) */
        chol_upd u = {a, pt, n, k0 + pw, pw};
        phiq_gptq_par(n - u.k1 >= 2 * CHOL_IB ? nt : 1, chol_update, &u);
    }
    return 0;
}

#define INV_RB 64 /* rows per block */

/* gptq.c's row inversion M = L^-1 (L^T parked above the diagonal, the
 * diagonal in diag): row i is sum over k < i, in order, of L[i][k] * M[k][0..k],
 * then scaled by -1/L[i][i]. A block of 64 rows takes the terms of every
 * k before the block together (8 rows x 16 columns in registers, the
 * column strip of M in cache), then each row the terms of the block's
 * earlier rows, in order, and is scaled. */
typedef struct inv_blk {
    double *a;
    int64_t n, i0, rb;
} inv_blk;

#define INV_KC 64 /* terms per pass: a strip's M rows of the pass (8 KiB) stay in L1 across the row groups */

/* The terms k < i0 of rows [i0, i0 + rb): in blocks of INV_KC terms, in
 * order, and within a block over the strips of 16 columns that have
 * terms in it, strip s to thread s % nt (each thread takes its strips'
 * blocks in order, so no two threads write one entry and every entry
 * sees its terms in order); 8 rows x 16 columns in registers, the
 * partial sums parked in the rows between blocks. Blocking by strips
 * first re-read the block's L values from memory for every strip. */
static void inv_terms(void *arg, int t, int nt) {
    const inv_blk *b = arg;
    double *a = b->a;
    const int64_t n = b->n, i0 = b->i0, rb = b->rb;
    for (int64_t kb = 0; kb < i0; kb += INV_KC) {
        const int64_t ke = kb + INV_KC < i0 ? kb + INV_KC : i0;
        for (int64_t js = 16 * t; js < ke; js += 16 * nt) {
            const int64_t k0 = js > kb ? js : kb; /* M[k][js..] is zero for k < js */
            const __mmask8 st0 = lanes_below(i0 - js), st1 = lanes_below(i0 - js - 8);
            for (int64_t r0 = 0; r0 < rb; r0 += 8) {
                const int nr = rb - r0 < 8 ? (int)(rb - r0) : 8;
                __m512d acc0[8], acc1[8];
                for (int r = 0; r < nr; r++) {
                    double *mi = a + (i0 + r0 + r) * n + js;
                    acc0[r] = _mm512_maskz_loadu_pd(st0, mi);
                    acc1[r] = _mm512_maskz_loadu_pd(st1, mi + 8);
                }
                for (int64_t k = k0; k < ke; k++) {
                    const double *mk = a + k * n + js, *lk = a + k * n + i0 + r0;
                    const __mmask8 m0 = lanes_below(k - js + 1), m1 = lanes_below(k - js - 7);
                    const __m512d x0 = _mm512_maskz_loadu_pd(m0, mk), x1 = _mm512_maskz_loadu_pd(m1, mk + 8);
                    for (int r = 0; r < nr; r++) {
                        const __m512d l = _mm512_set1_pd(lk[r]);
                        acc0[r] = _mm512_mask_add_pd(acc0[r], m0, acc0[r], _mm512_mul_pd(l, x0));
                        acc1[r] = _mm512_mask_add_pd(acc1[r], m1, acc1[r], _mm512_mul_pd(l, x1));
                    }
                }
                for (int r = 0; r < nr; r++) {
                    double *mi = a + (i0 + r0 + r) * n + js;
                    _mm512_mask_storeu_pd(mi, st0, acc0[r]);
                    _mm512_mask_storeu_pd(mi + 8, st1, acc1[r]);
                }
            }
        }
    }
}

void phiq_gptq_trinv_avx512(double *a, const double *diag, int64_t n, int nt) {
    for (int64_t i0 = 0; i0 < n; i0 += INV_RB) {
        const int64_t rb = n - i0 < INV_RB ? n - i0 : INV_RB;
        for (int64_t r = 0; r < rb; r++) memset(a + (i0 + r) * n, 0, sizeof(double) * (size_t)(i0 + r));
        inv_blk ib = {a, n, i0, rb};
        phiq_gptq_par(i0 >= 256 ? nt : 1, inv_terms, &ib);
        for (int64_t r = 0; r < rb; r++) {
            const int64_t i = i0 + r;
            double *mi = a + i * n;
            for (int64_t k = i0; k < i; k++) {
                const double l = a[k * n + i], *mk = a + k * n;
                const __m512d vl = _mm512_set1_pd(l);
                for (int64_t j = 0; j <= k; j += 8) {
                    const __mmask8 m = lanes_below(k + 1 - j);
                    const __m512d y = _mm512_maskz_loadu_pd(m, mi + j);
                    _mm512_mask_storeu_pd(mi + j, m, _mm512_add_pd(y, _mm512_mul_pd(vl, _mm512_maskz_loadu_pd(m, mk + j))));
                }
            }
            const double inv = 1.0 / diag[i];
            for (int64_t j = 0; j < i; j++) mi[j] *= -inv;
            mi[i] = inv;
        }
    }
}

/* row[k] -= e * u[k], k < n (the sweep's update of one row) */
void phiq_gptq_axpy_avx512(float *row, const float *u, float e, int64_t n) {
    const __m512 ve = _mm512_set1_ps(e);
    int64_t k = 0;
    for (; k + 16 <= n; k += 16)
        _mm512_storeu_ps(row + k, _mm512_fnmadd_ps(ve, _mm512_loadu_ps(u + k), _mm512_loadu_ps(row + k)));
    for (; k < n; k++) row[k] = fmaf(-e, u[k], row[k]);
}

/* The deferred update: a strip of 16 columns of all 16 rows in registers
 * while the nc terms go by in order (one load of u[c] serves 16 rows; the
 * row update loads and stores every entry once per term). Tiles of fewer
 * rows (only a matrix's last) take one row at a time. */
void phiq_gptq_block_update_avx512(float *w, int64_t ldw, int nr, const float *et, const float *u, int64_t ldu,
                                   int64_t nc, int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; k += 16) {
        const __mmask16 m = k1 - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (k1 - k)) - 1);
        if (nr != PHIQ_GPTQ_TILE) {
            for (int r = 0; r < nr; r++) {
                __m512 acc = _mm512_maskz_loadu_ps(m, w + r * ldw + k);
                for (int64_t c = 0; c < nc; c++)
                    acc = _mm512_fnmadd_ps(_mm512_set1_ps(et[c * PHIQ_GPTQ_TILE + r]), _mm512_maskz_loadu_ps(m, u + c * ldu + k),
                                           acc);
                _mm512_mask_storeu_ps(w + r * ldw + k, m, acc);
            }
            continue;
        }
        __m512 acc[PHIQ_GPTQ_TILE];
        for (int r = 0; r < PHIQ_GPTQ_TILE; r++) acc[r] = _mm512_maskz_loadu_ps(m, w + r * ldw + k);
        for (int64_t c = 0; c < nc; c++) {
            const float *uc = u + c * ldu + k, *e = et + c * PHIQ_GPTQ_TILE;
            _mm_prefetch((const char *)(uc + 32), _MM_HINT_T0); /* the strip after next: u's rows are far apart */
            const __m512 uv = _mm512_maskz_loadu_ps(m, uc);
            for (int r = 0; r < PHIQ_GPTQ_TILE; r++) acc[r] = _mm512_fnmadd_ps(_mm512_set1_ps(e[r]), uv, acc[r]);
        }
        for (int r = 0; r < PHIQ_GPTQ_TILE; r++) _mm512_mask_storeu_ps(w + r * ldw + k, m, acc[r]);
    }
}

/* ---- the single-precision path (the default; gptq.c's *_f32_ref loops) ----------
 * gptq_f32_blocked.h's body on 16-lane registers. */
#define F_MR 12  /* rows of a tile (one broadcast each) */
#define F_NR 32  /* columns of a tile (two vectors) */
#define F_KC 256 /* panel width = terms per update: each update passes once through the rest of the matrix */
#define F_NB 8   /* strips per column block: 8 x 32 x 256 floats of B (256 KiB) stay in L2 */
#define F_JC 256 /* the inverse's column chunk: the block's rows of a chunk (128 KiB) stay in L2 */
#include "quant/gptq_f32_blocked.h"

/* the work of the blocked forms, sized for this file's tiles (the widest) */
int64_t phiq_gptq_f32_work(int64_t n) { return (int64_t)F_KC * (2 * n + F_MR + F_NR + F_KC); }

static void ftile(float *c, int64_t ldc, const float *ap, const float *bp, int64_t kc) {
    __m512 c0[F_MR], c1[F_MR];
#pragma GCC unroll 12
    for (int r = 0; r < F_MR; r++) {
        c0[r] = _mm512_loadu_ps(c + r * ldc);
        c1[r] = _mm512_loadu_ps(c + r * ldc + 16);
    }
    for (int64_t p = 0; p < kc; p++) {
        const __m512 b0 = _mm512_load_ps(bp + p * F_NR), b1 = _mm512_load_ps(bp + p * F_NR + 16);
        const float *x = ap + p * F_MR;
#pragma GCC unroll 12
        for (int r = 0; r < F_MR; r++) {
            const __m512 v = _mm512_set1_ps(x[r]);
            c0[r] = _mm512_fmadd_ps(v, b0, c0[r]);
            c1[r] = _mm512_fmadd_ps(v, b1, c1[r]);
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < F_MR; r++) {
        _mm512_storeu_ps(c + r * ldc, c0[r]);
        _mm512_storeu_ps(c + r * ldc + 16, c1[r]);
    }
}

static void f_panel_rows(void *arg, int t, int nt) {
    const fpanel *f = arg;
    float *a = f->a;
    const int64_t n = f->n, k0 = f->k0, pw = f->k1 - k0;
    _Alignas(64) float x[F_KC][64];
    for (int64_t i0 = f->k1 + 64 * t; i0 < n; i0 += 64 * nt) {
        const int64_t nr = n - i0 < 64 ? n - i0 : 64;
        for (int64_t p = 0; p < pw; p++)
            for (int64_t r = 0; r < 64; r++) x[p][r] = r < nr ? a[(i0 + r) * n + k0 + p] : 0.0f;
        for (int64_t p = 0; p < pw; p++) {
            const float *lj = a + (k0 + p) * n + k0;
            __m512 s[4];
            for (int v = 0; v < 4; v++) s[v] = _mm512_load_ps(&x[p][16 * v]);
            for (int64_t q = 0; q < p; q++) {
                const __m512 l = _mm512_set1_ps(-lj[q]);
                for (int v = 0; v < 4; v++) s[v] = _mm512_fmadd_ps(_mm512_load_ps(&x[q][16 * v]), l, s[v]);
            }
            const __m512 d = _mm512_set1_ps(lj[p]);
            for (int v = 0; v < 4; v++) _mm512_store_ps(&x[p][16 * v], _mm512_div_ps(s[v], d));
        }
        for (int64_t r = 0; r < nr; r++)
            for (int64_t p = 0; p < pw; p++) a[(i0 + r) * n + k0 + p] = x[p][r];
    }
}

static void f_inv_block(void *arg, int t, int nt) {
    const fdiag *f = arg;
    float *a = f->a;
    const int64_t n = f->n, k0 = f->k0, k1 = f->k1, pw = k1 - k0;
    for (int64_t j0 = F_JC * t; j0 < k1; j0 += F_JC * nt) {
        const int64_t je = j0 + F_JC;
        for (int64_t i = k0 > j0 ? k0 : j0; i < k1; i++) {
            float *mi = a + i * n;
            const float *l = f->lb + (i - k0) * pw;
            for (int64_t k = k0 > j0 ? k0 : j0; k < i; k++) { /* M[k][j0..] is zero for k < j0 */
                const float *mk = a + k * n;
                const __m512 vl = _mm512_set1_ps(l[k - k0]);
                const int64_t end = k + 1 < je ? k + 1 : je;
                for (int64_t j = j0; j < end; j += 16) {
                    const __mmask16 m = end - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (end - j)) - 1);
                    _mm512_mask_storeu_ps(mi + j, m,
                                          _mm512_fmadd_ps(vl, _mm512_maskz_loadu_ps(m, mk + j), _mm512_maskz_loadu_ps(m, mi + j)));
                }
            }
            const float inv = 1.0f / l[i - k0];
            const __m512 vs = _mm512_set1_ps(-inv);
            const int64_t end = i < je ? i : je;
            for (int64_t j = j0; j < end; j += 16) {
                const __mmask16 m = end - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (end - j)) - 1);
                _mm512_mask_storeu_ps(mi + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, mi + j), vs));
            }
            if (i >= j0 && i < je) mi[i] = inv;
        }
    }
}

int phiq_gptq_chol_f32_avx512(float *a, int64_t n, float *work, int nt) { return f_chol(a, n, work, nt); }
void phiq_gptq_trinv_f32_avx512(float *a, int64_t n, float *work, int nt) { f_trinv(a, n, work, nt); }
