/* llama_depth.c — the llama.cpp side of bench/compare-llamacpp.sh at a
 * cache depth and KV type: the work of `llama-bench -d DEPTH -p PROMPT -n
 * GEN -ctk T -ctv T -fa on` through libllama (the prebuilt library that
 * shared/tools/llama-ref/setup.sh uses, whose llama-ref has neither option):
 * DEPTH random tokens prefilled once (untimed), then per repetition the
 * cache cut back to DEPTH, PROMPT tokens in one batch (timed), the cache cut
 * back again, GEN single tokens (timed); one warm-up repetition first. The
 * same schedule as `phiq bench --depth`.
 *
 *   llama_depth MODEL.gguf DEPTH PROMPT GEN REPS [f16|q8_0|f32]
 *
 * Prints "prefill_tok_s X decode_tok_s Y" (medians). Environment:
 * LLAMA_REF_BACKENDS, LLAMA_REF_THREADS (default 2). Exit 0, or 2 on error. */
#include <time.h>

#include "../tests/ref/llama_driver.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: llama_depth MODEL.gguf DEPTH PROMPT GEN REPS [f16|q8_0|f32]\n");
        return 2;
    }
    const int nd = atoi(argv[2]), np = atoi(argv[3]), ng = atoi(argv[4]), reps = atoi(argv[5]);
    const char *kt = argc > 6 ? argv[6] : "f16";
    if (nd < 0 || np < 1 || ng < 1 || reps < 1 || reps > 64) {
        fprintf(stderr, "llama_depth: bad DEPTH/PROMPT/GEN/REPS\n");
        return 2;
    }
    enum ggml_type type;
    if (ld_kv_type("llama_depth", kt, &type)) return 2;
    struct llama_model *m = ld_load("llama_depth", argv[1]);
    if (!m) return 2;
    const int ntop = np > ng ? np : ng;
    struct llama_context *c = ld_context("llama_depth", m, (uint32_t)(nd + ntop + 1), 512, type);
    if (!c) return 2;
    const int nv = llama_vocab_n_tokens(llama_model_get_vocab(m));
    llama_token *ids = malloc(sizeof *ids * (size_t)(nd + np + ng));
    srand(1);
    for (int i = 0; i < nd + np + ng; i++) ids[i] = 1 + rand() % (nv - 1);
    struct llama_batch b = llama_batch_init(512, 0, 1);
    llama_memory_t mem = llama_get_memory(c);
    if (nd > 0 && ld_eval(c, &b, 512, ids, nd, 0)) {
        fprintf(stderr, "llama_depth: the depth prefill failed\n");
        return 2;
    }
    double *pp = malloc(sizeof(double) * (size_t)reps), *tg = malloc(sizeof(double) * (size_t)reps);
    for (int r = -1; r < reps; r++) {
        llama_memory_seq_rm(mem, 0, nd, -1);
        double t0 = now();
        if (ld_eval(c, &b, 512, ids + nd, np, nd)) return 2;
        double t1 = now();
        llama_memory_seq_rm(mem, 0, nd, -1);
        double t2 = now();
        for (int i = 0; i < ng; i++)
            if (ld_eval(c, &b, 512, ids + nd + np + i, 1, nd + i)) return 2;
        double t3 = now();
        if (r >= 0) {
            pp[r] = np / (t1 - t0);
            tg[r] = ng / (t3 - t2);
        }
    }
    printf("prefill_tok_s %.2f decode_tok_s %.2f\n", median(pp, reps), median(tg, reps));
    free(pp);
    free(tg);
    free(ids);
    llama_batch_free(b);
    llama_free(c);
    llama_model_free(m);
    llama_backend_free();
    return 0;
}
