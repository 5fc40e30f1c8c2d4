/* ggml_blocks.h — the one definition of ggml's quantized block layouts
 * (ggml-common.h), shared by the quantizers (src/quant), the kernels
 * (src/kernels), the engine and the GGUF size table (ggml_type.c, which
 * takes each type's byte size from sizeof of its struct here).
 *
 * A row of a quantized tensor is an array of these blocks. Every multi-byte
 * field is little-endian; fp16 fields are IEEE halves kept as phiq_half
 * (uint16_t); the structs have no padding (asserted beside each), so they
 * are read from and written to files as they are.
 *
 * Adding a block type: its struct and size assertion here, its row in
 * ggml_type.c's table, a quantizer family in src/quant, a kernel per ISA in
 * src/kernels (see docs/ARCHITECTURE.md, "Adding a block type"). */
#ifndef PHIQ_FORMATS_GGML_BLOCKS_H
#define PHIQ_FORMATS_GGML_BLOCKS_H

#include <stdint.h>

#define PHIQ_QK 32    /* elements per block of the 32-element types (Q4_0 ... Q8_1, IQ4_NL) */
#define PHIQ_QK_K 256 /* elements per super-block of the K-quants and IQ4_XS */

typedef uint16_t phiq_half; /* IEEE binary16 bits */

/* 32-element types. Q4: element j in the low nibble of qs[j], element j+16 in the high one.
 * Q5: as Q4 plus bit 4 of element i in bit i of qh (little-endian u32). m: the block minimum. */
typedef struct { phiq_half d; uint8_t qs[PHIQ_QK / 2]; } phiq_block_q4_0;
_Static_assert(sizeof(phiq_block_q4_0) == 18, "q4_0");
typedef struct { phiq_half d, m; uint8_t qs[PHIQ_QK / 2]; } phiq_block_q4_1;
_Static_assert(sizeof(phiq_block_q4_1) == 20, "q4_1");
typedef struct { phiq_half d; uint8_t qh[4]; uint8_t qs[PHIQ_QK / 2]; } phiq_block_q5_0;
_Static_assert(sizeof(phiq_block_q5_0) == 22, "q5_0");
typedef struct { phiq_half d, m; uint8_t qh[4]; uint8_t qs[PHIQ_QK / 2]; } phiq_block_q5_1;
_Static_assert(sizeof(phiq_block_q5_1) == 24, "q5_1");
typedef struct { phiq_half d; int8_t qs[PHIQ_QK]; } phiq_block_q8_0;
_Static_assert(sizeof(phiq_block_q8_0) == 34, "q8_0");
/* s = fp16(d * sum(qs)): the activation partner of Q4_1/Q5_1, whose mins need the sum. */
typedef struct { phiq_half d, s; int8_t qs[PHIQ_QK]; } phiq_block_q8_1;
_Static_assert(sizeof(phiq_block_q8_1) == 36, "q8_1");
/* Indices into phiq_kvalues_iq4nl, packed as Q4_0's nibbles. */
typedef struct { phiq_half d; uint8_t qs[PHIQ_QK / 2]; } phiq_block_iq4_nl;
_Static_assert(sizeof(phiq_block_iq4_nl) == 18, "iq4_nl");

/* 256-element super-blocks. */
typedef struct { uint8_t scales[PHIQ_QK_K / 16]; uint8_t qs[PHIQ_QK_K / 4]; phiq_half d, dmin; } phiq_block_q2_K;
_Static_assert(sizeof(phiq_block_q2_K) == 84, "q2_K");
typedef struct { uint8_t hmask[PHIQ_QK_K / 8]; uint8_t qs[PHIQ_QK_K / 4]; uint8_t scales[12]; phiq_half d; } phiq_block_q3_K;
_Static_assert(sizeof(phiq_block_q3_K) == 110, "q3_K");
/* scales: eight 6-bit scales and mins packed in 12 bytes (phiq_k4_scale_min decodes one). */
typedef struct { phiq_half d, dmin; uint8_t scales[12]; uint8_t qs[PHIQ_QK_K / 2]; } phiq_block_q4_K;
_Static_assert(sizeof(phiq_block_q4_K) == 144, "q4_K");
typedef struct { phiq_half d, dmin; uint8_t scales[12]; uint8_t qh[PHIQ_QK_K / 8]; uint8_t qs[PHIQ_QK_K / 2]; } phiq_block_q5_K;
_Static_assert(sizeof(phiq_block_q5_K) == 176, "q5_K");
typedef struct { uint8_t ql[PHIQ_QK_K / 2]; uint8_t qh[PHIQ_QK_K / 4]; int8_t scales[PHIQ_QK_K / 16]; phiq_half d; } phiq_block_q6_K;
_Static_assert(sizeof(phiq_block_q6_K) == 210, "q6_K");
/* The K-quants' activation partner: d is f32; bsums[k] = sum of qs[16k .. 16k+15]. */
typedef struct { float d; int8_t qs[PHIQ_QK_K]; int16_t bsums[PHIQ_QK_K / 16]; } phiq_block_q8_K;
_Static_assert(sizeof(phiq_block_q8_K) == 292, "q8_K");
typedef struct { phiq_half d; uint16_t scales_h; uint8_t scales_l[PHIQ_QK_K / 64]; uint8_t qs[PHIQ_QK_K / 2]; } phiq_block_iq4_xs;
_Static_assert(sizeof(phiq_block_iq4_xs) == 136, "iq4_xs");

/* The 16 non-linear levels of IQ4_NL / IQ4_XS (ggml's kvalues_iq4nl; defined in ggml_type.c). */
extern const int8_t phiq_kvalues_iq4nl[16];

/* Scale and min (6 bits each) of sub-block j (0..7) from Q4_K/Q5_K's 12-byte packing (ggml's get_scale_min_k4). */
static inline void phiq_k4_scale_min(int j, const uint8_t q[12], uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

/* The inverse: stores 6-bit scale ls and min lm of sub-block j into q, whose
 * bytes must start zeroed (sub-blocks 4..7 OR their top bits into bytes
 * 0..7), as ggml's quantize_row_q4_K/q5_K pack them. */
static inline void phiq_k4_scale_min_pack(int j, uint8_t ls, uint8_t lm, uint8_t q[12]) {
    if (j < 4) {
        q[j] = ls;
        q[j + 4] = lm;
    } else {
        q[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        q[j - 4] |= (uint8_t)((ls >> 4) << 6);
        q[j - 0] |= (uint8_t)((lm >> 4) << 6);
    }
}

/* All eight at once (the kernels' form). */
static inline void phiq_k4_scale_min_all(const uint8_t q[12], uint8_t sc[8], uint8_t m[8]) {
    for (int j = 0; j < 8; j++) phiq_k4_scale_min(j, q, &sc[j], &m[j]);
}

#endif
