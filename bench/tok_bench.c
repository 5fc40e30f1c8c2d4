/* tok_bench.c — tokenization throughput driver for bench/tokenize.sh: loads a
 * tokenizer, tokenizes whole files (specials parsed, BOS as the vocab says)
 * RUNS times on one thread and prints the median MB/s per file. Built by the
 * script against build/libphiq.a; not part of the library or CLI. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/common.h"
#include "tokenizer/tokenizer.h"

static double now(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: tok_bench LABEL TOKENIZER PRETOK|- RUNS FILE...\n");
        return 2;
    }
    const char *label = argv[1];
    phiq_tokenizer *t = phiq_tokenizer_load(argv[2], strcmp(argv[3], "-") ? argv[3] : NULL);
    if (!t) { fprintf(stderr, "%s\n", phiq_error()); return 1; }
    int runs = atoi(argv[4]);
    if (runs < 1) runs = 1;
    for (int f = 5; f < argc; f++) {
        char *buf;
        size_t len;
        if (phiq_read_file(argv[f], &buf, &len) < 0) { fprintf(stderr, "%s\n", phiq_error()); return 1; }
        int cap = (int)len + 16;
        int32_t *ids = malloc(sizeof *ids * (size_t)cap);
        double *mbs = malloc(sizeof *mbs * (size_t)runs), *cpu = malloc(sizeof *cpu * (size_t)runs);
        int n = 0;
        for (int r = 0; r < runs; r++) {
            double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
            n = phiq_tokenize_text(t, buf, len, 1, 1, ids, cap);
            double dt = now(CLOCK_MONOTONIC) - t0, dc = now(CLOCK_THREAD_CPUTIME_ID) - c0;
            if (n < 0) { fprintf(stderr, "%s\n", phiq_error()); return 1; }
            mbs[r] = (double)len / 1e6 / dt;
            cpu[r] = (double)len / 1e6 / dc;
        }
        qsort(mbs, (size_t)runs, sizeof *mbs, cmpd);
        qsort(cpu, (size_t)runs, sizeof *cpu, cmpd);
        const char *base = strrchr(argv[f], '/');
        /* wall clock and this thread's CPU time: on a shared machine the
         * latter is the steadier figure */
        printf("%-15s %-18s %7zu B %6d tok  median %6.2f MB/s wall (min %.2f max %.2f)  %6.2f MB/s cpu  %d runs\n", label,
               base ? base + 1 : argv[f], len, n, mbs[runs / 2], mbs[0], mbs[runs - 1], cpu[runs / 2], runs);
        free(ids);
        free(mbs);
        free(cpu);
        free(buf);
    }
    phiq_tokenizer_free(t);
    return 0;
}
