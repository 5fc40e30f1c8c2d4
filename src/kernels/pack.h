/* pack.h — phiq's "split" row layout for Q4_0 and Q8_0 weights, made once at
 * load so that the mat-vec kernels read whole 64-byte lines of quants and
 * one contiguous run of scales instead of assembling 16-byte pieces and
 * gathering fp16 scales 18 or 34 bytes apart (1.5x the in-cache speed of the
 * AVX-512 Q4_0 mat-vec, which is what bounds decoding on one core).
 *
 * A packed row has exactly the bytes of the ggml row it came from:
 *
 *   Q4_0 (nb blocks, ng = nb / 4 groups):
 *     [ng][64]  group g: the 16 nibble bytes of blocks 4g, 4g+1, 4g+2, 4g+3
 *     [4 ng]    fp16 scales d of those blocks, in block order
 *     [nb % 4]  remaining blocks, unchanged ggml block_q4_0 (18 B each)
 *   Q8_0 (np = nb / 2 pairs):
 *     [np][64]  pair p: the 32 int8 quants of blocks 2p, 2p+1
 *     [2 np]    fp16 scales
 *     [nb % 2]  a remaining block, unchanged block_q8_0 (34 B)
 *
 * Packing is a permutation of bytes: unpacking restores the file exactly. */
#ifndef PHIQ_KERNELS_PACK_H
#define PHIQ_KERNELS_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest row the packed mat-vec kernels take (their activation scratch is on the stack). */
#define PHIQ_PACK_MAX_N 16384

/* Weight types that have a packed layout (Q4_0, Q8_0). */
bool phiq_pack_type_supported(int type);
/* nrows rows of n elements (a multiple of 32), row r at + r * row_bytes. dst
 * and src must not overlap. */
void phiq_pack_rows(int type, void *dst, const void *src, int64_t n, int64_t nrows, size_t row_bytes);
void phiq_unpack_rows(int type, void *dst, const void *src, int64_t n, int64_t nrows, size_t row_bytes);
/* One packed row to float32, as phiq_row_to_f32 on the unpacked row. */
void phiq_packed_row_to_f32(int type, const void *src, float *dst, int64_t n);

#endif
