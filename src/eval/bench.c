/* bench.c — prefill and decode speed (medians of repeats, as llama-bench
 * measures: random ids, prompt in one batch, then single-token decode, both
 * from an empty cache or on top of --depth cached tokens), the machine's read
 * bandwidth (the probe below), and peak RSS. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "core/common.h"
#include "eval/eval.h"
#include "formats/ggml_type.h"
#include "kernels/dispatch.h"
#include "model/model.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    double t[16];
    memcpy(t, v, sizeof(double) * (size_t)n);
    qsort(t, (size_t)n, sizeof(double), cmp_d);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

int phiq_bench_run(const phiq_model *m, const phiq_bench_opts *o, phiq_bench_result *r) {
    memset(r, 0, sizeof *r);
    int reps = o->reps > 0 ? o->reps : 3;
    if (reps > 16) reps = 16;
    int np = o->n_prompt > 0 ? o->n_prompt : 128, ng = o->n_gen > 0 ? o->n_gen : 32;
    const int nd = o->n_depth > 0 ? o->n_depth : 0;
    /* defaults must fit the model's context (prefill + decode + 1 slot) */
    const int train = phiq_model_n_ctx_train(m);
    if (o->n_gen <= 0 && train > 0 && ng > train / 4) ng = train / 4 > 0 ? train / 4 : 1;
    if (o->n_prompt <= 0 && train > 0 && np > train - ng - 1) np = train - ng - 1 > 0 ? train - ng - 1 : 1;
    /* as llama-bench -d: the timed prefill and the timed decode both run on
     * top of nd cached tokens (filled once, untimed; llama-bench restores a
     * saved state instead of refilling, the same work) */
    const int ntop = np > ng ? np : ng;
    phiq_context_params cp = phiq_context_default_params();
    cp.n_ctx = nd + ntop + 1;
    cp.n_threads = o->n_threads;
    cp.kv_type = (phiq_kv_type)o->kv_type;
    phiq_context *ctx = phiq_context_new(m, &cp);
    if (!ctx) return PHIQ_EINVAL;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(nd + np + ng));
    if (!ids) { phiq_context_free(ctx); return phiq_fail(PHIQ_ENOMEM, "bench: out of memory"); }
    const int nv = phiq_model_n_vocab(m);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < nd + np + ng; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        ids[i] = (int32_t)(x % (uint64_t)nv);
    }
    int rc = 0;
    if (nd > 0) {
        if (!o->quiet) fprintf(stderr, "bench: filling the cache with %d tokens (untimed)\n", nd);
        double t = phiq_now();
        rc = phiq_eval(ctx, ids, nd);
        if (!o->quiet && rc >= 0) fprintf(stderr, "bench: depth %d filled in %.1f s\n", nd, phiq_now() - t);
    }
    /* one warm-up run of each (page-in of the weights, thread start-up) */
    for (int rep = -1; rep < reps && rc >= 0; rep++) {
        if ((rc = phiq_context_truncate(ctx, nd)) < 0) break;
        double t0 = phiq_now();
        if ((rc = phiq_eval(ctx, ids + nd, np)) < 0) break;
        double t1 = phiq_now();
        if ((rc = phiq_context_truncate(ctx, nd)) < 0) break;
        double t2 = phiq_now();
        for (int i = 0; i < ng; i++)
            if ((rc = phiq_eval(ctx, ids + nd + np + i, 1)) < 0) break;
        if (rc < 0) break;
        double t3 = phiq_now();
        if (rep >= 0) {
            r->prefill_runs[rep] = np / (t1 - t0);
            r->decode_runs[rep] = ng / (t3 - t2);
        }
        if (!o->quiet) fprintf(stderr, "bench: %s prefill %.1f tok/s, decode %.1f tok/s\n", rep < 0 ? "warm-up" : "run", np / (t1 - t0), ng / (t3 - t2));
    }
    if (rc >= 0 && o->profile && (rc = phiq_context_truncate(ctx, nd)) >= 0) {
        ctx->prof = &r->prof;
        double t0 = phiq_now();
        for (int i = 0; i < ng && rc >= 0; i++) rc = phiq_eval(ctx, ids + nd + np + i, 1);
        r->prof_s = phiq_now() - t0;
        r->prof_tokens = ng;
        r->prof_threads = ctx->n_threads;
        ctx->prof = NULL;
    }
    if (rc >= 0) {
        r->reps = reps;
        r->prefill_tok_s = median(r->prefill_runs, reps);
        r->decode_tok_s = median(r->decode_runs, reps);
    }
    free(ids);
    phiq_context_free(ctx);
    return rc < 0 ? rc : 0;
}

/* Per token: each matmul shape's wall time (its activation conversion
 * included), the rate of its weight bytes over that time, and how busy the
 * threads were in its kernels (the rest is the pool's hand-off and the wait
 * for the last chunk); attention; and the rest of the forward pass (norms,
 * rope, the cache store, residual adds, the MLP's gate, sampling-free
 * logits copy) as what the timed run took beyond those. */
/* GB/s of an entry's weights over its wall time; its threads' busy fraction */
static double prof_gbs(const phiq_prof_mm *e) { return e->wall > 0 ? e->bytes / e->wall / 1e9 : 0; }
static double prof_busy(const phiq_prof_mm *e, double nth) { return e->wall > 0 ? e->busy / (e->wall * nth) : 0; }

void phiq_bench_profile_print(const phiq_bench_result *r, double probe_gb_s, int json) {
    const phiq_prof *p = &r->prof;
    const double nt = r->prof_tokens > 0 ? r->prof_tokens : 1, ms = 1e3 / nt;
    const double mm_conv = p->conv;
    double mm_wall = 0, mm_busy = 0, mm_bytes = 0;
    for (int i = 0; i < p->n_mm; i++) mm_wall += p->mm[i].wall, mm_busy += p->mm[i].busy, mm_bytes += p->mm[i].bytes;
    const double rest = r->prof_s - mm_wall - p->attn, nth = r->prof_threads > 0 ? r->prof_threads : 1;
    const double mm_gbs = mm_wall > 0 ? mm_bytes / mm_wall / 1e9 : 0;
    /* the kernels' rate while they ran: bytes over the busy time of one thread's share */
    const double busy_gbs = mm_busy > 0 ? mm_bytes / (mm_busy / nth) / 1e9 : 0;
    if (json) {
        printf(", \"profile\": {\"tokens\": %d, \"threads\": %d, \"token_ms\": %.4f, \"matmul_ms\": %.4f, "
               "\"matmul_gb_s\": %.3f, \"matmul_busy\": %.4f, \"kernel_gb_s\": %.3f, \"conv_ms\": %.4f, "
               "\"attention_ms\": %.4f, \"rest_ms\": %.4f",
               r->prof_tokens, r->prof_threads, r->prof_s * ms, mm_wall * ms, mm_gbs,
               mm_wall > 0 ? mm_busy / (mm_wall * nth) : 0, busy_gbs, mm_conv * ms, p->attn * ms, rest * ms);
        if (probe_gb_s > 0) printf(", \"matmul_probe_fraction\": %.4f", mm_gbs / probe_gb_s);
        printf(", \"matmuls\": [");
        for (int i = 0; i < p->n_mm; i++) {
            const phiq_prof_mm *e = &p->mm[i];
            printf("%s{\"n_in\": %lld, \"n_out\": %lld, \"type\": \"%s\", \"bytes\": %.0f, \"calls\": %.2f, \"ms\": %.4f, "
                   "\"conv_ms\": %.4f, \"gb_s\": %.3f, \"busy\": %.4f}",
                   i ? ", " : "", (long long)e->n_in, (long long)e->n_out, phiq_ggml_type_name(e->type),
                   e->calls ? e->bytes / e->calls : 0, e->calls / nt,
                   e->wall * ms, e->conv * ms, prof_gbs(e), prof_busy(e, nth));
        }
        printf("]}");
        return;
    }
    printf("decode profile: %d tokens, %d threads, per token:\n", r->prof_tokens, r->prof_threads);
    printf("  %-28s %6s %9s %6s %8s %6s\n", "", "calls", "ms", "share", "GB/s", "busy");
    for (int i = 0; i < p->n_mm; i++) {
        const phiq_prof_mm *e = &p->mm[i];
        char what[64];
        snprintf(what, sizeof what, "matmul %lld x %lld %s", (long long)e->n_in, (long long)e->n_out,
                 phiq_ggml_type_name(e->type));
        printf("  %-28s %6.0f %9.3f %5.1f%% %8.2f %5.0f%%\n", what, e->calls / nt, e->wall * ms,
               100 * e->wall / r->prof_s, prof_gbs(e), 100 * prof_busy(e, nth));
    }
    printf("  %-28s %6s %9.3f %5.1f%%   (inside the matmuls' time)\n", "  activation conversion", "", mm_conv * ms,
           100 * mm_conv / r->prof_s);
    printf("  %-28s %6s %9.3f %5.1f%%\n", "attention", "", p->attn * ms, 100 * p->attn / r->prof_s);
    printf("  %-28s %6s %9.3f %5.1f%%\n", "rest (norms, rope, adds...)", "", rest * ms, 100 * rest / r->prof_s);
    printf("  %-28s %6s %9.3f\n", "token", "", r->prof_s * ms);
    printf("matmuls: %.2f GB/s over their wall time", mm_gbs);
    if (probe_gb_s > 0) printf(" (%.0f%% of the probe)", 100 * mm_gbs / probe_gb_s);
    printf("; threads busy in kernels %.0f%% of it, streaming %.2f GB/s while busy\n",
           mm_wall > 0 ? 100 * mm_busy / (mm_wall * nth) : 0, busy_gbs);
}

/* The read-bandwidth probe: 1 GiB on transparent huge pages where the
 * kernel grants them, split between the threads in contiguous halves as the
 * mat-vec kernels split rows, read by the kernel table's stream_read (the
 * table's widest loads, with and without the kernels' kind of software
 * prefetch) and by plain 64-bit loads; the best round is the probe. Plain
 * loads on 4 KiB pages (this probe's first version) measured 15-19 GB/s
 * on a machine where vector loads on huge pages reach 26-33 GB/s, and a
 * probe whose loads were narrower than the kernels' read less than the
 * Q8_0 decode did (22.1 vs 24.3 GB/s): a ceiling must read as decode reads. */
typedef struct {
    phiq_stream_read_fn read;
    const void *p;
    size_t n; /* bytes, a multiple of 256 */
    size_t ahead; /* bytes of software prefetch ahead of the loads (0: none) */
    uint64_t sum;
} bw_job;

static void *bw_worker(void *arg) {
    bw_job *j = arg;
    j->sum = j->read(j->p, j->n, j->ahead);
    return NULL;
}

/* Rounds: plain 64-bit loads (the portable table), the best table's loads
 * without prefetch and with it 512 B / 2 KiB / 8 KiB ahead (the decode
 * kernels prefetch 1-2 KiB ahead), each three times. */
double phiq_bench_read_bandwidth(int n_threads) {
    if (n_threads < 1) n_threads = phiq_physical_cores();
    if (n_threads > 64) n_threads = 64;
    size_t bytes = (size_t)1 << 30;
    uint8_t *buf = phiq_huge_alloc(&bytes);
    if (!buf) return 0;
    for (size_t i = 0; i < bytes / 8; i++) ((uint64_t *)(void *)buf)[i] = i * 0x9E3779B97F4A7C15ull;
    static const size_t ahead[] = {0, 0, 512, 2048, 8192};
    const phiq_stream_read_fn plain = phiq_kernels_scalar()->stream_read, best_read = phiq_kernels_get()->stream_read;
    double best = 0;
    for (int rep = 0; rep < 15; rep++) {
        const int kind = rep % 5;
        pthread_t th[64];
        bw_job jobs[64];
        size_t per = bytes / (size_t)n_threads / 256 * 256;
        double t0 = phiq_now();
        for (int t = 0; t < n_threads; t++) {
            jobs[t] = (bw_job){kind ? best_read : plain, buf + per * (size_t)t, per, ahead[kind], 0};
            pthread_create(&th[t], NULL, bw_worker, &jobs[t]);
        }
        uint64_t sink = 0;
        for (int t = 0; t < n_threads; t++) { pthread_join(th[t], NULL); sink += jobs[t].sum; }
        double el = phiq_now() - t0;
        if (sink == 42) fputc(' ', stderr); /* keep the sums alive */
        double gbs = (double)(per * (size_t)n_threads) / el / 1e9;
        if (gbs > best) best = gbs;
    }
    phiq_huge_free(buf, bytes);
    return best;
}

uint64_t phiq_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (uint64_t)ru.ru_maxrss * 1024;
}
