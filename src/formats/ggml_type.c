/* ggml_type.c — the type-traits table of ggml tensor types (see
 * ggml_type.h): name, elements per block, bytes per block, quantized or
 * not. The byte size of every type phiq reads or writes is sizeof of its
 * struct in ggml_blocks.h; the rest (types phiq only recognises in files)
 * are ggml-common.h's sizes written out. Also the IQ4 level table. */
#include "formats/ggml_type.h"

#include "core/common.h"
#include "formats/ggml_blocks.h"

typedef struct {
    const char *name;
    int64_t blck; /* elements per block; 0 = not a valid file type */
    int64_t size; /* bytes per block */
    bool quantized;
} type_info;

#define QK_K PHIQ_QK_K
static const type_info types[PHIQ_GGML_TYPE_COUNT] = {
    [PHIQ_GGML_TYPE_F32] = {"F32", 1, 4, false},
    [PHIQ_GGML_TYPE_F16] = {"F16", 1, 2, false},
    [PHIQ_GGML_TYPE_Q4_0] = {"Q4_0", PHIQ_QK, sizeof(phiq_block_q4_0), true},
    [PHIQ_GGML_TYPE_Q4_1] = {"Q4_1", PHIQ_QK, sizeof(phiq_block_q4_1), true},
    [PHIQ_GGML_TYPE_Q5_0] = {"Q5_0", PHIQ_QK, sizeof(phiq_block_q5_0), true},
    [PHIQ_GGML_TYPE_Q5_1] = {"Q5_1", PHIQ_QK, sizeof(phiq_block_q5_1), true},
    [PHIQ_GGML_TYPE_Q8_0] = {"Q8_0", PHIQ_QK, sizeof(phiq_block_q8_0), true},
    [PHIQ_GGML_TYPE_Q8_1] = {"Q8_1", PHIQ_QK, sizeof(phiq_block_q8_1), true},
    [PHIQ_GGML_TYPE_Q2_K] = {"Q2_K", QK_K, sizeof(phiq_block_q2_K), true},
    [PHIQ_GGML_TYPE_Q3_K] = {"Q3_K", QK_K, sizeof(phiq_block_q3_K), true},
    [PHIQ_GGML_TYPE_Q4_K] = {"Q4_K", QK_K, sizeof(phiq_block_q4_K), true},
    [PHIQ_GGML_TYPE_Q5_K] = {"Q5_K", QK_K, sizeof(phiq_block_q5_K), true},
    [PHIQ_GGML_TYPE_Q6_K] = {"Q6_K", QK_K, sizeof(phiq_block_q6_K), true},
    [PHIQ_GGML_TYPE_Q8_K] = {"Q8_K", QK_K, sizeof(phiq_block_q8_K), true},
    [PHIQ_GGML_TYPE_IQ2_XXS] = {"IQ2_XXS", QK_K, 2 + QK_K / 8 * 2, true},
    [PHIQ_GGML_TYPE_IQ2_XS] = {"IQ2_XS", QK_K, 2 + QK_K / 8 * 2 + QK_K / 32, true},
    [PHIQ_GGML_TYPE_IQ3_XXS] = {"IQ3_XXS", QK_K, 2 + 3 * QK_K / 8, true},
    [PHIQ_GGML_TYPE_IQ1_S] = {"IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 32 * 2, true},
    [PHIQ_GGML_TYPE_IQ4_NL] = {"IQ4_NL", PHIQ_QK, sizeof(phiq_block_iq4_nl), true},
    [PHIQ_GGML_TYPE_IQ3_S] = {"IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 32 + QK_K / 8 + QK_K / 64, true},
    [PHIQ_GGML_TYPE_IQ2_S] = {"IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 32 + QK_K / 32, true},
    [PHIQ_GGML_TYPE_IQ4_XS] = {"IQ4_XS", QK_K, sizeof(phiq_block_iq4_xs), true},
    [PHIQ_GGML_TYPE_I8] = {"I8", 1, 1, false},
    [PHIQ_GGML_TYPE_I16] = {"I16", 1, 2, false},
    [PHIQ_GGML_TYPE_I32] = {"I32", 1, 4, false},
    [PHIQ_GGML_TYPE_I64] = {"I64", 1, 8, false},
    [PHIQ_GGML_TYPE_F64] = {"F64", 1, 8, false},
    [PHIQ_GGML_TYPE_IQ1_M] = {"IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32, true},
    [PHIQ_GGML_TYPE_BF16] = {"BF16", 1, 2, false},
    [PHIQ_GGML_TYPE_TQ1_0] = {"TQ1_0", QK_K, (QK_K - 4 * QK_K / 64) / 5 + QK_K / 64 + 2, true},
    [PHIQ_GGML_TYPE_TQ2_0] = {"TQ2_0", QK_K, QK_K / 4 + 2, true},
    [PHIQ_GGML_TYPE_MXFP4] = {"MXFP4", 32, 1 + 16, true},
    /* sizes as in the ggml-common.h bundled with llama-ref (node-llama-cpp 3.22.1) */
    [PHIQ_GGML_TYPE_NVFP4] = {"NVFP4", 64, 36, true},
    [PHIQ_GGML_TYPE_Q1_0] = {"Q1_0", 128, 18, true},
    [PHIQ_GGML_TYPE_Q2_0] = {"Q2_0", 64, 18, true},
};

const int8_t phiq_kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                       1,    13,   25,  38,  53,  69,  89,  113};

bool phiq_ggml_type_valid(int type) {
    return type >= 0 && type < PHIQ_GGML_TYPE_COUNT && types[type].blck > 0;
}

const char *phiq_ggml_type_name(int type) { return phiq_ggml_type_valid(type) ? types[type].name : "?"; }

int phiq_ggml_type_from_name(const char *name) {
    for (int t = 0; t < PHIQ_GGML_TYPE_COUNT; t++)
        if (types[t].blck > 0 && phiq_streq_nocase(name, types[t].name)) return t;
    return -1;
}

int64_t phiq_ggml_block_size(int type) { return phiq_ggml_type_valid(type) ? types[type].blck : 0; }
int64_t phiq_ggml_type_size(int type) { return phiq_ggml_type_valid(type) ? types[type].size : 0; }

int64_t phiq_ggml_row_size(int type, int64_t ne0) {
    if (!phiq_ggml_type_valid(type) || ne0 < 0 || ne0 % types[type].blck) return -1;
    return ne0 / types[type].blck * types[type].size;
}

bool phiq_ggml_type_is_quantized(int type) { return phiq_ggml_type_valid(type) && types[type].quantized; }
