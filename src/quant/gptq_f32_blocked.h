/* gptq_f32_blocked.h — the one body of the blocked single-precision
 * Cholesky and triangular inverse of gptq_avx512.c and gptq_avx2.c (each
 * includes it once): every entry is a chain of fused multiply-adds over its
 * terms in ascending order, as in gptq.c's *_f32_ref loops; only the
 * grouping of entries changes: right-looking panels of F_KC columns whose
 * terms go to the rest of the matrix as one register-tiled update (F_MR x
 * F_NR entries in registers, both operands packed so that the kernel reads
 * them contiguously). The includer defines F_MR, F_NR, F_KC, F_NB (strips
 * per column block held in L2), F_JC (the inverse's column chunk) and,
 * after the include, the three kernels declared below; it gets f_chol and
 * f_trinv. Work: packed rows F_KC (n + F_MR), packed strips F_KC (n + F_NR),
 * the inverse's diagonal block F_KC F_KC floats, 64-byte aligned (within
 * phiq_gptq_f32_work(n), sized for the widest tiles). */
#ifndef PHIQ_GPTQ_F32_BLOCKED_H
#define PHIQ_GPTQ_F32_BLOCKED_H

#include <string.h>

#include "quant/quant_internal.h"

static float *f_bp(float *work, int64_t n) { return work + (size_t)F_KC * (size_t)(n + F_MR); }
static float *f_lb(float *work, int64_t n) { return f_bp(work, n) + (size_t)F_KC * (size_t)(n + F_NR); }

/* the includer's kernels: C[i][j] = fma(A[i][p], B[p][j], C[i][j]) for
 * p < kc in order over one F_MR x F_NR tile (ap [kc][F_MR], bp [kc][F_NR],
 * bp aligned to the vector); the panel's rows (fpanel); the inverse's
 * diagonal block (fdiag) */
static void ftile(float *c, int64_t ldc, const float *ap, const float *bp, int64_t kc);
static void f_panel_rows(void *arg, int t, int nt);
static void f_inv_block(void *arg, int t, int nt);

/* the update of rows [r0, r1) x columns [c0, c1) by kc packed terms; lower:
 * only tiles with an entry j <= i (entries above the diagonal: garbage) */
typedef struct fupd {
    float *a;
    const float *ap, *bp;
    int64_t n, kc, r0, r1, c0, c1;
    int lower;
} fupd;

static void f_update(void *arg, int t, int nt) {
    const fupd *u = arg;
    const int64_t n = u->n, ng = (u->r1 - u->r0 + F_MR - 1) / F_MR, ns = (u->c1 - u->c0 + F_NR - 1) / F_NR;
    float buf[F_MR * F_NR];
    for (int64_t sb = 0; sb < ns; sb += F_NB)
        for (int64_t g = t; g < ng; g += nt) {
            const int64_t i = u->r0 + g * F_MR, nr = u->r1 - i < F_MR ? u->r1 - i : F_MR;
            const float *ap = u->ap + g * u->kc * F_MR;
            for (int64_t s = sb; s < sb + F_NB && s < ns; s++) {
                const int64_t j = u->c0 + s * F_NR, nc = u->c1 - j < F_NR ? u->c1 - j : F_NR;
                if (u->lower && j > i + nr - 1) break;
                const float *bp = u->bp + s * u->kc * F_NR;
                float *c = u->a + i * n + j;
                if (nr == F_MR && nc == F_NR) {
                    ftile(c, n, ap, bp, u->kc);
                    continue;
                }
                memset(buf, 0, sizeof buf);
                for (int64_t r = 0; r < nr; r++) memcpy(buf + r * F_NR, c + r * n, sizeof(float) * (size_t)nc);
                ftile(buf, F_NR, ap, bp, u->kc);
                for (int64_t r = 0; r < nr; r++) memcpy(c + r * n, buf + r * F_NR, sizeof(float) * (size_t)nc);
            }
        }
}

/* The operands of an update with the terms k in [k0, k0 + pw), packed.
 * Rows [k1, n) as ap[g][p][r] = sign L[k1 + g F_MR + r][k0 + p] (0 past
 * n), with inv their L[i][k0..k1) then cleared (they become partial sums
 * of M). Strips bp[s][p][c] of columns j = c0 + s F_NR + c < c1:
 * Cholesky: L[j][k0 + p]; inverse: M[k0 + p][j] where j <= k0 + p, else 0. */
typedef struct fpack {
    float *a, *ap, *bp;
    int64_t n, k0, k1, pw, c0, c1;
    int inv;
} fpack;

static void f_pack(void *arg, int t, int nt) {
    const fpack *f = arg;
    float *a = f->a;
    const int64_t n = f->n, k0 = f->k0, pw = f->pw, ng = (n - f->k1 + F_MR - 1) / F_MR;
    const float sign = f->inv ? 1.0f : -1.0f;
    for (int64_t g = t; g < ng; g += nt) {
        float *dst = f->ap + g * pw * F_MR;
        for (int64_t r = 0, i = f->k1 + g * F_MR; r < F_MR; r++, i++) {
            const float *src = a + i * n + k0;
            for (int64_t p = 0; p < pw; p++) dst[p * F_MR + r] = i < n ? sign * src[p] : 0.0f;
            if (f->inv && i < n) memset(a + i * n + k0, 0, sizeof(float) * (size_t)pw);
        }
    }
    for (int64_t s = t, j0 = f->c0 + t * F_NR; j0 < f->c1; s += nt, j0 += nt * F_NR) {
        float *dst = f->bp + s * pw * F_NR;
        for (int64_t c = 0; c < F_NR; c++) {
            const int64_t j = j0 + c;
            if (f->inv)
                for (int64_t p = 0; p < pw; p++) dst[p * F_NR + c] = j <= k0 + p ? a[(k0 + p) * n + j] : 0.0f;
            else
                for (int64_t p = 0; p < pw; p++) dst[p * F_NR + c] = j < f->c1 ? a[j * n + k0 + p] : 0.0f;
        }
    }
}

/* the panel's rows [k1, n), 64 at a time (transposed so that rows are lanes):
 * x[i][j] = (a[i][j] - sum_{k0 <= q < j} x[i][q] L[j][q]) / L[j][j] */
typedef struct fpanel {
    float *a;
    int64_t n, k0, k1;
} fpanel;

/* the rows [k0, k1) of M = L^-1 that have the terms k < k0 (partial sums
 * in place; their L[i][k0..i] in lb): terms k in [k0, i) in order, then
 * the scale; by chunks of F_JC columns (chunk c to thread c % nt) */
#define F_JC 256
typedef struct fdiag {
    float *a;
    const float *lb;
    int64_t n, k0, k1;
} fdiag;


static int f_chol(float *a, int64_t n, float *work, int nt) {
    float *ap = work, *bp = f_bp(work, n);
    for (int64_t k0 = 0; k0 < n; k0 += F_KC) {
        const int64_t k1 = n - k0 < F_KC ? n : k0 + F_KC, pw = k1 - k0;
        /* the panel's diagonal block, column by column */
        for (int64_t j = k0; j < k1; j++) {
            float d = a[j * n + j];
            for (int64_t q = k0; q < j; q++) d = fmaf(-a[j * n + q], a[j * n + q], d);
            if (!(d > 0)) return (int)(-1 - j);
            d = sqrtf(d);
            a[j * n + j] = d;
            for (int64_t i = j + 1; i < k1; i++) {
                float s = a[i * n + j];
                for (int64_t q = k0; q < j; q++) s = fmaf(-a[i * n + q], a[j * n + q], s);
                a[i * n + j] = s / d;
            }
        }
        if (k1 == n) break;
        fpanel fp = {a, n, k0, k1};
        phiq_gptq_par(n - k1 >= 128 ? nt : 1, f_panel_rows, &fp);
        /* the panel's terms to rows and columns [k1, n), lower triangle */
        fpack fk = {a, ap, bp, n, k0, k1, pw, k1, n, 0};
        phiq_gptq_par(nt, f_pack, &fk);
        fupd u = {a, ap, bp, n, pw, k1, n, k1, n, 1};
        phiq_gptq_par(n - k1 >= 2 * F_MR ? nt : 1, f_update, &u);
    }
    return 0;
}

static void f_trinv(float *a, int64_t n, float *work, int nt) {
    float *ap = work, *bp = f_bp(work, n), *lb = f_lb(work, n);
    for (int64_t k0 = 0; k0 < n; k0 += F_KC) {
        const int64_t k1 = n - k0 < F_KC ? n : k0 + F_KC, pw = k1 - k0;
        for (int64_t i = k0; i < k1; i++) {
            memcpy(lb + (i - k0) * pw, a + i * n + k0, sizeof(float) * (size_t)(i - k0 + 1));
            memset(a + i * n + k0, 0, sizeof(float) * (size_t)(i - k0));
        }
        fdiag fd = {a, lb, n, k0, k1};
        phiq_gptq_par(k1 >= 256 ? nt : 1, f_inv_block, &fd);
        if (k1 == n) break;
        /* the terms k in [k0, k1) to rows [k1, n), columns [0, k1) */
        fpack fk = {a, ap, bp, n, k0, k1, pw, 0, k1, 1};
        phiq_gptq_par(nt, f_pack, &fk);
        fupd u = {a, ap, bp, n, pw, k1, n, 0, k1, 0};
        phiq_gptq_par(n - k1 >= 2 * F_MR ? nt : 1, f_update, &u);
    }
}

#endif
