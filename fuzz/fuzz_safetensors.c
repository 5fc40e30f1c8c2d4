/* fuzz_safetensors.c — libFuzzer target: phiq_st_open on arbitrary bytes
 * (through an in-memory file), then every accessor on every tensor. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz_safetensors", 0);
        if (fd < 0) return 0;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size) return 0;
    phiq_st *st = phiq_st_open(path);
    if (!st) return 0;
    float buf[64];
    volatile float sink = 0;
    for (int i = 0; i < phiq_st_n_tensors(st); i++) {
        const phiq_st_tensor *t = phiq_st_tensor_at(st, i);
        if (phiq_st_find(st, t->name) != t) __builtin_trap();
        /* first and last elements: reads the whole claimed range's ends */
        int64_t n = t->n_elements < 64 ? t->n_elements : 64;
        if (phiq_st_to_f32(t, 0, n, buf) == 0 && n) sink += buf[0];
        if (phiq_st_to_f32(t, t->n_elements - n, n, buf) == 0 && n) sink += buf[n - 1];
        const volatile uint8_t *p = t->data;
        if (t->nbytes) sink += p[0] + p[t->nbytes - 1];
    }
    (void)sink;
    phiq_st_close(st);
    return 0;
}
