/* dispatch.h — the CPU kernel table: one entry per ggml weight type for the
 * dot product of a weight row with an activation row, chosen once for the
 * running CPU.
 *
 * Protocol (as llama.cpp's CPU back end): the float activation row x[n] is
 * first converted with quantize_act(k->act_type[wtype], x, buf, n) into the
 * activation type the weight type's dot wants (Q8_0 for Q4_0/Q5_0/Q8_0/
 * IQ4_NL, Q8_1 for Q4_1/Q5_1, Q8_K for K-quants and IQ4_XS, F16 for F16,
 * BF16 for BF16, F32 for F32), once per mat-vec; then vec_dot / matvec run
 * on the raw weight rows. buf needs phiq_ggml_row_size(act_type, n) bytes.
 * The quantizers are exactly llama.cpp's reference ones
 * (quantize_row_q8_0_ref / q8_1_ref / q8_K_ref), for every ISA. (llama.cpp's
 * own x86 SIMD Q8_0/Q8_1 quantizers round ties to even and scale by
 * 127/amax, so its activations can differ from these in the last unit.)
 *
 * Preconditions for every kernel (the caller checks them once, not per
 * call): n is a multiple of the weight type's block size, w_row / act_row
 * point to complete rows, rows are at least 2-byte aligned (Q8_K activation
 * rows 4-byte aligned). Kernels are thread-safe and never fail.
 *
 * Threads: give each thread one contiguous range of rows per matvec/gemm
 * call (e.g. nrows / nthreads). The AVX-512 matvec of Q4_0/Q4_1/IQ4_NL/Q8_0
 * rearranges the activation once per call (O(n), ~37 KiB of stack for
 * n <= 16384), so many tiny calls would repeat that work. gemm may malloc
 * scratch (about n * ncols bytes) and falls back to plain loops if it
 * cannot; the AMX gemm configures and releases the tiles per call. */
#ifndef PHIQ_KERNELS_DISPATCH_H
#define PHIQ_KERNELS_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "formats/ggml_type.h"
#include "kernels/gram.h"

/* *s = dot(w_row[0..n), act_row[0..n)). */
typedef void (*phiq_vec_dot_fn)(int64_t n, float *s, const void *w_row, const void *act_row);
/* out[r] = dot(row r of w, act) for r < nrows; row r starts at
 * (const char *)w + r * row_bytes. Streams each weight row once. */
typedef void (*phiq_matvec_fn)(int64_t n, int64_t nrows, float *out, const void *w, size_t row_bytes,
                               const void *act);

/* Prompt processing: out[j * ldo + r] = dot(row r of w, activation row j)
 * for r < nrows, j < ncols; activation row j (already converted with
 * quantize_act) starts at (const char *)act + j * act_stride. Tiles the
 * weights so that each is read from memory about once per 64 columns. */
typedef void (*phiq_gemm_fn)(int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w,
                             size_t row_bytes, const void *act, size_t act_stride);

/* The bandwidth probe's read (phiq bench --probe): n bytes at p (a multiple
 * of 256) with this table's widest loads, and when ahead > 0 a software
 * prefetch of every cache line ahead bytes before it is loaded, as the
 * mat-vec kernels prefetch their weights; so the probe reads memory the way
 * decode does, and a probe that reads less than decode cannot happen by
 * construction. Returns the wrapping sum of the 64-bit words, the same in
 * every table (the loads stay live; tests check it). */
typedef uint64_t (*phiq_stream_read_fn)(const void *p, size_t n, size_t ahead);

/* The log-sum-exp's sum of a row of logits: sum of exp(x[i] - mx) over
 * i < n in double (mx: the row's maximum, so every term is <= 1), and with
 * e != NULL each term in e[i]. The reference is libm's exp per term; the
 * vector forms are within 1e-15 relative per term (about 4 ulp; tests check
 * it) and sum in another order. A NaN logit gives a NaN sum. */
typedef double (*phiq_exp_sum_fn)(const float *x, int64_t n, float mx, double *e);

typedef struct phiq_kernels {
    /* "scalar", "avx2" (+FMA+F16C), "avx512" (F+BW+VL+DQ+VNNI), "amx" (the
     * avx512 table + AMX-INT8 gemm), "neon" or "neon+dotprod" (AArch64) */
    const char *isa;
    /* Activation type each weight type's dot wants; -1 = weight type unsupported. */
    int act_type[PHIQ_GGML_TYPE_COUNT];
    /* Converts n floats (a multiple of act_type's block size) to act_type
     * (Q8_0, Q8_1, Q8_K, F16, BF16 or F32). Returns 0, or PHIQ_EINVAL for a
     * bad type or length. */
    int (*quantize_act)(int act_type, const float *x, void *dst, int64_t n);
    phiq_vec_dot_fn vec_dot[PHIQ_GGML_TYPE_COUNT]; /* NULL = unsupported */
    phiq_matvec_fn matvec[PHIQ_GGML_TYPE_COUNT];   /* non-NULL wherever vec_dot is */
    phiq_gemm_fn gemm[PHIQ_GGML_TYPE_COUNT];       /* non-NULL wherever vec_dot is */
    /* F16 weights times F32 activations (no activation conversion). */
    phiq_vec_dot_fn dot_f16_f32;
    /* Calibration's H += XᵀX on packed inputs (gram.h; the same bits in every table). */
    phiq_gram_fn gram_upper;
    phiq_stream_read_fn stream_read;
    phiq_exp_sum_fn exp_sum; /* perplexity's and the size budget's softmax */
} phiq_kernels;

/* The best table for this CPU, chosen once (thread-safe). The environment
 * variable PHIQ_ISA=scalar|avx2|avx512|amx|neon lowers the choice (never
 * raises it beyond what the CPU supports). */
const phiq_kernels *phiq_kernels_get(void);
/* The portable reference table (always available). */
const phiq_kernels *phiq_kernels_scalar(void);
/* The table of a named ISA level, or NULL when this CPU (or this build)
 * lacks it. For tests and benchmarks. */
const phiq_kernels *phiq_kernels_for(const char *isa);
/* Names of the levels this build knows, lowest first, NULL-terminated. */
const char *const *phiq_kernels_levels(void);

#endif
