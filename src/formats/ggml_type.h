/* ggml_type.h — the ggml tensor types GGUF files name, with the size rule of
 * each: a row of ne0 elements takes ne0 / block_size * type_size bytes and
 * ne0 must be a multiple of block_size. Ids are ggml's (ggml.h), stored as
 * i32 in GGUF tensor infos. */
#ifndef PHIQ_FORMATS_GGML_TYPE_H
#define PHIQ_FORMATS_GGML_TYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum phiq_ggml_type {
    PHIQ_GGML_TYPE_F32 = 0,
    PHIQ_GGML_TYPE_F16 = 1,
    PHIQ_GGML_TYPE_Q4_0 = 2,
    PHIQ_GGML_TYPE_Q4_1 = 3,
    PHIQ_GGML_TYPE_Q5_0 = 6,
    PHIQ_GGML_TYPE_Q5_1 = 7,
    PHIQ_GGML_TYPE_Q8_0 = 8,
    PHIQ_GGML_TYPE_Q8_1 = 9,
    PHIQ_GGML_TYPE_Q2_K = 10,
    PHIQ_GGML_TYPE_Q3_K = 11,
    PHIQ_GGML_TYPE_Q4_K = 12,
    PHIQ_GGML_TYPE_Q5_K = 13,
    PHIQ_GGML_TYPE_Q6_K = 14,
    PHIQ_GGML_TYPE_Q8_K = 15,
    PHIQ_GGML_TYPE_IQ2_XXS = 16,
    PHIQ_GGML_TYPE_IQ2_XS = 17,
    PHIQ_GGML_TYPE_IQ3_XXS = 18,
    PHIQ_GGML_TYPE_IQ1_S = 19,
    PHIQ_GGML_TYPE_IQ4_NL = 20,
    PHIQ_GGML_TYPE_IQ3_S = 21,
    PHIQ_GGML_TYPE_IQ2_S = 22,
    PHIQ_GGML_TYPE_IQ4_XS = 23,
    PHIQ_GGML_TYPE_I8 = 24,
    PHIQ_GGML_TYPE_I16 = 25,
    PHIQ_GGML_TYPE_I32 = 26,
    PHIQ_GGML_TYPE_I64 = 27,
    PHIQ_GGML_TYPE_F64 = 28,
    PHIQ_GGML_TYPE_IQ1_M = 29,
    PHIQ_GGML_TYPE_BF16 = 30,
    PHIQ_GGML_TYPE_TQ1_0 = 34,
    PHIQ_GGML_TYPE_TQ2_0 = 35,
    PHIQ_GGML_TYPE_MXFP4 = 39,
    PHIQ_GGML_TYPE_NVFP4 = 40,
    PHIQ_GGML_TYPE_Q1_0 = 41,
    PHIQ_GGML_TYPE_Q2_0 = 42,
    PHIQ_GGML_TYPE_COUNT = 43, /* ids >= this are rejected; holes too */
} phiq_ggml_type;

/* False for ids that are out of range or no longer valid in files (31-33, 36-38). */
bool phiq_ggml_type_valid(int type);
/* "F32", "Q4_K", ...; "?" for invalid ids. */
const char *phiq_ggml_type_name(int type);
/* Case-insensitive lookup of a name; -1 if unknown. */
int phiq_ggml_type_from_name(const char *name);
int64_t phiq_ggml_block_size(int type);  /* elements per block */
int64_t phiq_ggml_type_size(int type);   /* bytes per block */
/* Bytes of a row of ne0 elements; -1 if ne0 is not a multiple of the block size. */
int64_t phiq_ggml_row_size(int type, int64_t ne0);
/* True for types whose blocks carry quantized values (not F32/F16/BF16/ints). */
bool phiq_ggml_type_is_quantized(int type);

#endif
