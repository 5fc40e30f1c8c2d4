/* eval.h — measuring what a precision costs: perplexity with llama.cpp's
 * conventions, KL divergence against a reference model, and speed.
 *
 * Perplexity (as llama-perplexity): the text is tokenized once; it is cut
 * into non-overlapping chunks of n_ctx tokens; the first token of each chunk
 * is replaced by BOS when the model adds BOS; each chunk is evaluated from an
 * empty cache and only the second half is scored (position j predicts token
 * j+1 for j in [n_ctx/2, n_ctx-2]). Memory is constant: one chunk's logits.
 */
#ifndef PHIQ_EVAL_EVAL_H
#define PHIQ_EVAL_EVAL_H

#include <stdint.h>

#include "phiq.h"
#include "model/prof.h"

typedef struct phiq_ppl_opts {
    int n_ctx;       /* chunk length; 0 = 512, or the model's context length if shorter */
    int n_threads;   /* 0 = physical cores */
    int max_chunks;  /* 0 = all */
    int bos_id;      /* BOS replacing each chunk's first token; -1 = none */
    int quiet;       /* no progress on stderr */
} phiq_ppl_opts;

typedef struct phiq_ppl_result {
    int n_chunks;
    int64_t n_scored;
    double ppl, ppl_err;      /* exp(mean NLL), llama.cpp's uncertainty */
    double nll;               /* mean NLL */
    /* with a reference model: */
    int has_ref;
    double ref_ppl, delta_ppl;
    double kld_mean, kld_err, kld_median, kld_p90, kld_p99, kld_p999, kld_max;
    double top1;              /* fraction of scored positions with equal argmax */
} phiq_ppl_result;

/* Evaluates ids with model (and ref, if non-NULL, on the same chunks). */
int phiq_eval_perplexity(const phiq_model *model, const phiq_model *ref, const int32_t *ids, int64_t n_ids,
                         const phiq_ppl_opts *opts, phiq_ppl_result *out);

/* n_prompt / n_gen 0: 128 / 32, shrunk (to at least 1) so that they fit the
 * model's context length. */
typedef struct phiq_bench_opts {
    int n_threads, n_prompt, n_gen, reps;
    int quiet;
    int kv_type;  /* phiq_kv_type (0 = f16) */
    int n_depth;  /* decode with this many tokens already cached (llama-bench -d; default 0) */
    int profile;  /* after the timed runs, one more decode run with the profile on */
} phiq_bench_opts;

typedef struct phiq_bench_result {
    double prefill_tok_s, decode_tok_s;    /* medians over reps */
    double prefill_runs[16], decode_runs[16];
    int reps;
    /* with opts.profile: the profiled decode run (prof_tokens tokens in prof_s seconds) */
    int prof_tokens, prof_threads;
    double prof_s;
    phiq_prof prof;
} phiq_bench_result;

int phiq_bench_run(const phiq_model *m, const phiq_bench_opts *o, phiq_bench_result *r);
/* Read bandwidth of this machine in GB/s with n_threads threads (best of 3 over 1 GiB). */
double phiq_bench_read_bandwidth(int n_threads);
/* The profile of r (opts.profile) per decoded token on stdout: a table, or
 * with json the members `, "profile": {...}` of the caller's JSON object.
 * probe_gb_s > 0 adds the matmuls' share of that bandwidth. */
void phiq_bench_profile_print(const phiq_bench_result *r, double probe_gb_s, int json);
/* Peak resident set size of this process in bytes. */
uint64_t phiq_peak_rss(void);

/* ---- report ------------------------------------------------------------------ */
typedef struct phiq_report_row {
    char type[32];
    uint64_t size_bytes;
    double bpw;
    double ppl, kld_mean, kld_p99, top1;
    double prefill_tok_s, decode_tok_s;
    double kld_err;          /* standard error of kld_mean (0: unknown) */
} phiq_report_row;

/* Where and how the rows were measured, for the report's words. */
typedef struct phiq_report_meta {
    const char *cpu;         /* CPU model (phiq_report_cpu_name), NULL: unknown */
    int threads;
    const char *text;        /* evaluation text, NULL: unknown */
    const char *calib;       /* calibration text of the calibrated rows, NULL: none */
} phiq_report_meta;

/* The CPU model of this machine (/proc/cpuinfo), or "unknown CPU". */
void phiq_report_cpu_name(char *buf, size_t cap);
/* Which file to ship, in words (Markdown): the best file at each size and,
 * for each memory budget (phone/board to workstation), the file that fits
 * with the least KLD, with its KLD margin and speed; malloc'd. meta may be NULL. */
char *phiq_report_advice(const phiq_report_row *rows, int n, const phiq_report_meta *meta);
/* phiq_report_write with the advice and the machine (meta may be NULL). */
int phiq_report_write_meta(const char *dir, const char *model_name, const phiq_report_row *rows, int n,
                           const phiq_report_meta *meta);

/* Writes report.json, report.md and report.html (self-contained, SVG charts
 * of size vs KL divergence and size vs decode speed with the Pareto front) into dir. */
int phiq_report_write(const char *dir, const char *model_name, const phiq_report_row *rows, int n);
/* The table as Markdown (for the terminal and report.md), malloc'd. */
char *phiq_report_table(const phiq_report_row *rows, int n);
/* Indices of Pareto-optimal rows: minimize size, and minimize kld (better=-1) or
 * maximize decode speed (better=+1). Returns count, fills idx sorted by size. */
int phiq_report_pareto(const phiq_report_row *rows, int n, int speed, int *idx);

#endif
