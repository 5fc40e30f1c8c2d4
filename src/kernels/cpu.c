/* cpu.c — CPUID/XGETBV feature detection and the AMX permission request
 * (see cpu.h). Everything degrades to "not present" when a check fails, so
 * the dispatcher falls back to a narrower kernel set instead of faulting. */
#include "kernels/cpu.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#define PHIQ_CPU_X86 1
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

static phiq_cpu g_cpu;
static char g_desc[256];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

#ifdef PHIQ_CPU_X86
/* XGETBV is issued as raw asm so this file needs no -mxsave. */
static uint64_t xgetbv0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

/* Linux >= 5.16 keeps AMX tile data disabled until the process asks. */
static bool amx_request_permission(void) {
#if defined(__linux__) && defined(SYS_arch_prctl)
    const long ARCH_GET_XCOMP_PERM = 0x1022, ARCH_REQ_XCOMP_PERM = 0x1023;
    const int XFEATURE_XTILEDATA = 18;
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) return false;
    unsigned long bitmask = 0;
    if (syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &bitmask) != 0) return false;
    return (bitmask >> XFEATURE_XTILEDATA) & 1;
#else
    return false;
#endif
}

static void detect_x86(phiq_cpu *c) {
    unsigned a, b, cx, d;
    c->x86 = true;
    if (!__get_cpuid(0, &a, &b, &cx, &d)) return;
    unsigned max_leaf = a;
    if (!__get_cpuid(1, &a, &b, &cx, &d)) return;
    bool osxsave = (cx >> 27) & 1;
    bool cpu_avx = (cx >> 28) & 1, cpu_fma = (cx >> 12) & 1, cpu_f16c = (cx >> 29) & 1;
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    bool os_ymm = (xcr0 & 0x6) == 0x6;            /* SSE + AVX state */
    bool os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM_Hi256, Hi16_ZMM */
    bool os_amx = (xcr0 & 0x60000) == 0x60000;     /* XTILECFG + XTILEDATA */
    c->avx = cpu_avx && os_ymm;
    c->fma = cpu_fma && os_ymm;
    c->f16c = cpu_f16c && os_ymm;
    if (max_leaf < 7) return;
    __cpuid_count(7, 0, a, b, cx, d);
    unsigned sub_max = a;
    c->avx2 = ((b >> 5) & 1) && os_ymm;
    c->avx512f = ((b >> 16) & 1) && os_zmm;
    c->avx512dq = ((b >> 17) & 1) && os_zmm;
    c->avx512bw = ((b >> 30) & 1) && os_zmm;
    c->avx512vl = ((b >> 31) & 1) && os_zmm;
    c->avx512vbmi = ((cx >> 1) & 1) && os_zmm;
    c->avx512vnni = ((cx >> 11) & 1) && os_zmm;
    c->avx512fp16 = ((d >> 23) & 1) && os_zmm;
    bool amx_tile = (d >> 24) & 1, amx_int8 = (d >> 25) & 1, amx_bf16 = (d >> 22) & 1;
    if (sub_max >= 1) {
        __cpuid_count(7, 1, a, b, cx, d);
        c->avx_vnni = ((a >> 4) & 1) && os_ymm;
        c->avx512bf16 = ((a >> 5) & 1) && os_zmm;
    }
    if (amx_tile && os_amx && amx_request_permission()) {
        c->amx_tile = true;
        c->amx_int8 = amx_int8;
        c->amx_bf16 = amx_bf16;
    }
}
#endif

static void add(bool on, const char *name) {
    if (!on) return;
    size_t len = strlen(g_desc);
    if (len + strlen(name) + 2 >= sizeof g_desc) return;
    if (len) g_desc[len++] = ' ';
    strcpy(g_desc + len, name);
}

static void detect(void) {
    memset(&g_cpu, 0, sizeof g_cpu);
#ifdef PHIQ_CPU_X86
    detect_x86(&g_cpu);
#endif
#if defined(__aarch64__)
    g_cpu.neon = true;
#if defined(__linux__)
    g_cpu.dotprod = (getauxval(AT_HWCAP) >> 20) & 1; /* HWCAP_ASIMDDP */
#endif
#endif
    const phiq_cpu *c = &g_cpu;
    add(c->avx, "avx"), add(c->avx2, "avx2"), add(c->fma, "fma"), add(c->f16c, "f16c");
    add(c->avx_vnni, "avxvnni"), add(c->avx512f, "avx512f"), add(c->avx512bw, "avx512bw");
    add(c->avx512vl, "avx512vl"), add(c->avx512dq, "avx512dq"), add(c->avx512vnni, "avx512vnni");
    add(c->avx512vbmi, "avx512vbmi"), add(c->avx512bf16, "avx512bf16"), add(c->avx512fp16, "avx512fp16");
    add(c->amx_tile, "amx-tile"), add(c->amx_int8, "amx-int8"), add(c->amx_bf16, "amx-bf16");
    add(c->neon, "neon"), add(c->dotprod, "dotprod");
}

const phiq_cpu *phiq_cpu_get(void) {
    pthread_once(&g_once, detect);
    return &g_cpu;
}

const char *phiq_cpu_describe(void) {
    phiq_cpu_get();
    return g_desc;
}
