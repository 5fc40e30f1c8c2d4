/* dispatch.c — builds the kernel tables once and picks the best one the
 * running CPU supports (see dispatch.h). ISA files are only compiled on
 * x86-64 (PHIQ_HAVE_X86_KERNELS), the NEON file only on AArch64. */
#include "kernels/dispatch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "kernels/cpu.h"
#include "kernels/dot.h"

#if defined(__x86_64__) || defined(_M_X64)
#define PHIQ_HAVE_X86_KERNELS 1
#endif

enum { LEVEL_SCALAR, LEVEL_AVX2, LEVEL_AVX512, LEVEL_AMX, LEVEL_NEON, LEVEL_COUNT };
static const char *const g_level_names[LEVEL_COUNT + 1] = {"scalar", "avx2", "avx512", "amx", "neon", NULL};

static phiq_kernels g_tables[LEVEL_COUNT];
static bool g_available[LEVEL_COUNT];
static int g_best;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void build(void) {
    const phiq_cpu *c = phiq_cpu_get();
    phiq_kernels_init_scalar(&g_tables[LEVEL_SCALAR]);
    g_available[LEVEL_SCALAR] = true;
#ifdef PHIQ_HAVE_X86_KERNELS
    if (c->avx2 && c->fma && c->f16c) {
        phiq_kernels_init_avx2(&g_tables[LEVEL_AVX2]);
        g_available[LEVEL_AVX2] = true;
    }
    /* The AVX-512 file is built with VNNI and uses it for every int8 path,
     * so AVX-512 without VNNI (Skylake-X) takes the AVX2 table. */
    if (g_available[LEVEL_AVX2] && c->avx512f && c->avx512bw && c->avx512vl && c->avx512dq &&
        c->avx512vnni) {
        phiq_kernels_init_avx512(&g_tables[LEVEL_AVX512]);
        g_available[LEVEL_AVX512] = true;
    }
    /* cpu.c has already obtained the kernel's AMX tile-data permission. */
    if (g_available[LEVEL_AVX512] && c->amx_tile && c->amx_int8) {
        phiq_kernels_init_amx(&g_tables[LEVEL_AMX]);
        g_available[LEVEL_AMX] = true;
    }
#elif defined(__aarch64__)
    if (c->neon) {
        phiq_kernels_init_neon(&g_tables[LEVEL_NEON], c->dotprod);
        g_available[LEVEL_NEON] = true;
    }
#else
    (void)c;
#endif
    g_best = LEVEL_SCALAR;
    for (int l = 0; l < LEVEL_COUNT; l++)
        if (g_available[l]) g_best = l;
    const char *env = getenv("PHIQ_ISA");
    if (env && *env) {
        for (int l = 0; l < LEVEL_COUNT; l++)
            if (phiq_streq_nocase(env, g_level_names[l]) && l < g_best && g_available[l]) g_best = l;
    }
}

const phiq_kernels *phiq_kernels_get(void) {
    pthread_once(&g_once, build);
    return &g_tables[g_best];
}

const phiq_kernels *phiq_kernels_scalar(void) {
    pthread_once(&g_once, build);
    return &g_tables[LEVEL_SCALAR];
}

const phiq_kernels *phiq_kernels_for(const char *isa) {
    pthread_once(&g_once, build);
    if (!isa) return NULL;
    for (int l = 0; l < LEVEL_COUNT; l++)
        if (phiq_streq_nocase(isa, g_level_names[l])) return g_available[l] ? &g_tables[l] : NULL;
    return NULL;
}

const char *const *phiq_kernels_levels(void) { return g_level_names; }
