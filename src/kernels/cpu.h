/* cpu.h — run-time CPU feature detection. A feature counts as present only
 * when both the CPU reports it (CPUID) and the OS saves its register state
 * (XGETBV); AMX additionally needs Linux's per-process tile-data permission
 * (arch_prctl ARCH_REQ_XCOMP_PERM), requested once. Detection runs once. */
#ifndef PHIQ_KERNELS_CPU_H
#define PHIQ_KERNELS_CPU_H

#include <stdbool.h>

typedef struct phiq_cpu {
    bool x86;                 /* compiled for x86-64 */
    bool avx, avx2, fma, f16c;
    bool avx_vnni;            /* VEX-encoded VNNI (Alder Lake and later) */
    bool avx512f, avx512bw, avx512vl, avx512dq, avx512vnni, avx512vbmi, avx512bf16, avx512fp16;
    bool amx_tile, amx_int8, amx_bf16; /* usable: CPU + OS state + permission granted */
    bool neon, dotprod;       /* aarch64 */
} phiq_cpu;

/* Features of the running CPU (computed once, thread-safe). */
const phiq_cpu *phiq_cpu_get(void);
/* Space-separated list of the detected features, e.g. "avx2 fma f16c avx512f ...". */
const char *phiq_cpu_describe(void);

#endif
