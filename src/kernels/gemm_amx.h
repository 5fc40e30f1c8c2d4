/* gemm_amx.h — the AMX-INT8 prompt-processing gemm (gemm_amx.c) in two
 * stages, so that a matmul split over threads packs its activations once.
 * Needs the "amx" kernel table (AMX-INT8 usable; phiq_kernels_for("amx")
 * initialises the fallbacks). */
#ifndef PHIQ_KERNELS_GEMM_AMX_H
#define PHIQ_KERNELS_GEMM_AMX_H

#include <stddef.h>
#include <stdint.h>

/* 1 when weight type wtype has an AMX gemm (Q8_0, Q4_0, Q4_1, IQ4_NL,
 * Q2_K..Q6_K, IQ4_XS), else 0. */
int phiq_gemm_amx_supports(int wtype);
/* Bytes of the packed activations of ncols rows (16-column tiles, zero past
 * ncols) and of one caller's scratch, for rows of n values. */
size_t phiq_gemm_amx_packed_size(int wtype, int64_t n, int64_t ncols);
size_t phiq_gemm_amx_scratch_size(int wtype, int64_t n);
/* Packs column tiles [ct0, ct1) of the activation rows act (ncols rows
 * converted with quantize_act, as bytes apart) into packed (64-byte
 * aligned); disjoint tile ranges may be packed by different threads. */
void phiq_gemm_amx_pack(int wtype, int64_t n, int64_t ncols, int64_t ct0, int64_t ct1, const void *act, size_t as,
                        void *packed);
/* The table's gemm on packed activations with scratch (64-byte aligned, one
 * per concurrent caller); act/as are read only for a tail of nrows % 16 rows. */
void phiq_gemm_amx_run(int wtype, int64_t n, int64_t nrows, int64_t ncols, float *out, size_t ldo, const void *w,
                       size_t rb, const void *packed, void *scratch, const void *act, size_t as);

/* The 64-byte operand of _tile_loadconfig (palette 1: rows and bytes per
 * row of tiles 0..15); both AMX gemms fill one per tile layout. */
typedef struct phiq_amx_tilecfg {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} phiq_amx_tilecfg;

#endif
