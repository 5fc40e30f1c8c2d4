/* test_ops.c — the engine's CPU kernels against straightforward
 * double-precision definitions on random inputs: RMSNorm, LayerNorm, NeoX
 * RoPE (full, partial, with LongRoPE factors and attention factor), softmax,
 * SwiGLU, GELU (tanh formula and ggml's fp16 table), and matmul over
 * F32/F16/BF16 (and every quantized type the dequantizers provide), threaded
 * and not. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>

#include "core/common.h"
#include "formats/ggml_type.h"
#include "kernels/ops.h"
#include "kernels/threadpool.h"
#include <stdatomic.h>
#include "quant/quant.h"


static double urand(void) { return (double)rand() / RAND_MAX * 2.0 - 1.0; }

static void fill(float *x, int n, double scale) {
    for (int i = 0; i < n; i++) x[i] = (float)(urand() * scale);
}

static void test_rmsnorm(void **state) {
    (void)state;
    srand(1);
    for (int n = 1; n <= 300; n += 37) {
        float x[300], w[300], y[300];
        fill(x, n, 3.0);
        fill(w, n, 1.5);
        phiq_rmsnorm(y, x, w, n, 1e-5f);
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
        double r = 1.0 / sqrt(ss / n + 1e-5);
        for (int i = 0; i < n; i++) assert_true(fabs(y[i] - x[i] * r * w[i]) <= 1e-5 * (1 + fabs(x[i] * r * w[i])));
    }
}

static void test_layernorm(void **state) {
    (void)state;
    srand(2);
    for (int n = 2; n <= 300; n += 41) {
        float x[300], w[300], b[300], y[300];
        fill(x, n, 2.0);
        for (int i = 0; i < n; i++) x[i] += 5.0f; /* non-zero mean */
        fill(w, n, 1.0);
        fill(b, n, 1.0);
        phiq_layernorm(y, x, w, b, n, 1e-5f);
        double mu = 0, var = 0;
        for (int i = 0; i < n; i++) mu += x[i];
        mu /= n;
        for (int i = 0; i < n; i++) var += (x[i] - mu) * (x[i] - mu);
        var /= n;
        for (int i = 0; i < n; i++) {
            double ref = (x[i] - mu) / sqrt(var + 1e-5) * w[i] + b[i];
            assert_true(fabs(y[i] - ref) <= 1e-5 * (1 + fabs(ref)));
        }
    }
}

/* Reference rotation: dims (i, i + r/2) as a complex number times
 * mscale * e^{i theta}, theta = pos * base^(-2i/r) / factor_i. */
static void ref_rope(double *v, int hd, int r, double pos, double base, const float *f, double ms) {
    (void)hd;
    for (int i = 0; i < r / 2; i++) {
        double th = pos * pow(base, -2.0 * i / r) / (f ? f[i] : 1.0);
        double re = v[i], im = v[i + r / 2];
        v[i] = ms * (re * cos(th) - im * sin(th));
        v[i + r / 2] = ms * (re * sin(th) + im * cos(th));
    }
}

static void test_rope(void **state) {
    (void)state;
    srand(3);
    const struct { int hd, r; double base; int factors; float ms; } cases[] = {
        {64, 64, 10000, 0, 1.0f},  {96, 96, 10000, 0, 1.0f},   {64, 48, 10000, 1, 1.0954451f},
        {80, 32, 10000, 0, 1.0f},  {128, 96, 250000, 1, 1.19024f}, {16, 2, 500, 1, 1.5f},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int hd = cases[c].hd, r = cases[c].r;
        float fac[128];
        for (int i = 0; i < r / 2; i++) fac[i] = 1.0f + (float)i * 0.37f;
        const float *fp = cases[c].factors ? fac : NULL;
        for (int pos = 0; pos < 5000; pos += 997) {
            float v[128], cs[64], sn[64];
            double ref[128];
            fill(v, hd, 2.0);
            for (int i = 0; i < hd; i++) ref[i] = v[i];
            phiq_rope_table(cs, sn, r, pos, cases[c].base, fp, cases[c].ms);
            phiq_rope_neox(v, r, cs, sn);
            ref_rope(ref, hd, r, pos, cases[c].base, fp, cases[c].ms);
            for (int i = 0; i < hd; i++) {
                if (fabs(v[i] - ref[i]) > 2e-5 * (1 + fabs(ref[i])))
                    fail_msg("case %zu pos %d dim %d: %g vs %g", c, pos, i, v[i], ref[i]);
                if (i >= r) assert_true(v[i] == (float)ref[i]); /* pass-through dims untouched */
            }
        }
    }
}

static void test_softmax_swiglu_gelu(void **state) {
    (void)state;
    srand(4);
    float x[257], g[257], u[257], y[257];
    fill(x, 257, 30.0);
    double m = -1e300, s = 0;
    for (int i = 0; i < 257; i++) m = fmax(m, x[i]);
    for (int i = 0; i < 257; i++) s += exp(x[i] - m);
    float xs[257];
    memcpy(xs, x, sizeof x);
    phiq_softmax(xs, 257);
    for (int i = 0; i < 257; i++) assert_true(fabs(xs[i] - exp(x[i] - m) / s) <= 1e-6);
    fill(g, 257, 8.0);
    fill(u, 257, 3.0);
    phiq_swiglu(y, g, u, 257);
    for (int i = 0; i < 257; i++) {
        double ref = g[i] / (1 + exp(-(double)g[i])) * u[i];
        assert_true(fabs(y[i] - ref) <= 1e-5 * (1 + fabs(ref)));
    }
    uint16_t *tab = malloc(65536 * sizeof *tab);
    assert_non_null(tab);
    phiq_gelu_table_init(tab);
    for (int i = 0; i < 20001; i++) {
        double z = -12.0 + i * 0.0012;
        double ref = 0.5 * z * (1 + tanh(sqrt(2 / M_PI) * (z + 0.044715 * z * z * z)));
        float zf = (float)z, lut = zf;
        phiq_gelu_lut(&lut, 1, tab);
        assert_true(fabs(phiq_gelu_tanh(zf) - ref) <= 1e-6 * (1 + fabs(ref)));
        /* the table rounds input and output to fp16: within a few fp16 ulps */
        assert_true(fabs(lut - ref) <= 2e-3 * (1 + fabs(ref)));
        if (z <= -10) assert_true(lut == 0.0f);
        if (z >= 10) assert_true(lut == zf);
    }
    free(tab);
}

/* Encodes a float matrix into type t (F32/F16/BF16 or a quantized type). */
static void *encode(int t, const float *w, int rows, int cols, size_t *rb) {
    *rb = (size_t)phiq_ggml_row_size(t, cols);
    uint8_t *out = malloc(*rb * rows);
    for (int r = 0; r < rows; r++) {
        uint8_t *d = out + *rb * r;
        const float *s = w + (size_t)r * cols;
        if (t == PHIQ_GGML_TYPE_F32) memcpy(d, s, (size_t)cols * 4);
        else if (t == PHIQ_GGML_TYPE_F16 || t == PHIQ_GGML_TYPE_BF16)
            for (int i = 0; i < cols; i++) {
                uint16_t h = t == PHIQ_GGML_TYPE_F16 ? phiq_f32_to_f16(s[i]) : phiq_f32_to_bf16(s[i]);
                memcpy(d + 2 * i, &h, 2);
            }
        else assert_true(phiq_quantize(t, s, d, 1, cols, NULL) > 0);
    }
    return out;
}

/* Reference: the stored row decoded element by element (via the IEEE
 * definitions for F16/BF16, via the dequantizer for block types), double dot. */
static double decoded(int t, const uint8_t *row, int i, const float *deq) {
    uint16_t h;
    switch (t) {
    case PHIQ_GGML_TYPE_F32: {
        float f;
        memcpy(&f, row + 4 * i, 4);
        return f;
    }
    case PHIQ_GGML_TYPE_F16: {
        memcpy(&h, row + 2 * i, 2);
        int e = (h >> 10) & 31, mant = h & 1023;
        double v = e ? ldexp(1024 + mant, e - 25) : ldexp(mant, -24);
        return h & 0x8000 ? -v : v;
    }
    case PHIQ_GGML_TYPE_BF16: {
        memcpy(&h, row + 2 * i, 2);
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    default: return deq[i];
    }
}

static void check_matmul(int t, int rows, int cols, int T, phiq_threadpool *tp) {
    float *w = malloc(sizeof(float) * rows * cols), *x = malloc(sizeof(float) * T * cols);
    float *bias = malloc(sizeof(float) * rows), *y = malloc(sizeof(float) * T * rows), *deq = malloc(sizeof(float) * cols);
    float *scratch = malloc(sizeof(float) * cols * 8);
    fill(w, rows * cols, 1.0);
    fill(x, T * cols, 1.0);
    fill(bias, rows, 1.0);
    size_t rb;
    uint8_t *enc = encode(t, w, rows, cols, &rb);
    phiq_mat m = {enc, t, cols, rows, rb};
    phiq_matmul(tp, &m, x, cols, T, y, rows, bias, scratch);
    for (int r = 0; r < rows; r++) {
        if (phiq_ggml_type_is_quantized(t)) assert_int_equal(phiq_dequantize(t, enc + rb * r, deq, cols), 0);
        for (int k = 0; k < T; k++) {
            double ref = bias[r], mag = fabs(bias[r]);
            for (int i = 0; i < cols; i++) {
                double d = decoded(t, enc + rb * r, i, deq);
                ref += d * x[k * cols + i];
                mag += fabs(d * x[k * cols + i]);
            }
            if (fabs(y[k * rows + r] - ref) > 1e-5 * (1 + mag))
                fail_msg("type %s row %d tok %d: %g vs %g", phiq_ggml_type_name(t), r, k, y[k * rows + r], ref);
        }
    }
    free(w); free(x); free(bias); free(y); free(deq); free(scratch); free(enc);
}

static void test_f16_rows_exhaustive(void **state) {
    (void)state;
    uint16_t *h = malloc(65536 * 2);
    float *f = malloc(65536 * 4);
    for (uint32_t i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    assert_int_equal(phiq_row_to_f32(PHIQ_GGML_TYPE_F16, h, f, 65536), 0);
    for (uint32_t i = 0; i < 65536; i++) {
        float r = phiq_f16_to_f32((uint16_t)i);
        if (isnan(r)) assert_true(isnan(f[i]));
        else if (memcmp(&r, &f[i], 4)) fail_msg("half %04x: %a vs %a", i, (double)f[i], (double)r);
    }
    /* misaligned source takes the memcpy path */
    uint8_t *u = malloc(2 * 1000 + 1);
    memcpy(u + 1, h + 15000, 2000);
    assert_int_equal(phiq_row_to_f32(PHIQ_GGML_TYPE_F16, u + 1, f, 1000), 0);
    for (int i = 0; i < 1000; i++) assert_true(f[i] == phiq_f16_to_f32(h[15000 + i]));
    assert_int_equal(phiq_row_to_f32(PHIQ_GGML_TYPE_BF16, u + 1, f, 1000), 0);
    for (int i = 0; i < 1000; i++) assert_true(f[i] == phiq_bf16_to_f32(h[15000 + i]) || isnan(f[i]));
    free(u);
    free(h);
    free(f);
}

static void test_matmul(void **state) {
    (void)state;
    srand(5);
    phiq_threadpool *tp = phiq_threadpool_new(3);
    assert_non_null(tp);
    int types[] = {PHIQ_GGML_TYPE_F32, PHIQ_GGML_TYPE_F16, PHIQ_GGML_TYPE_BF16};
    for (size_t i = 0; i < 3; i++) {
        check_matmul(types[i], 37, 96, 1, NULL);
        check_matmul(types[i], 37, 96, 5, tp);
        check_matmul(types[i], 2, 33, 3, tp); /* fewer rows than threads, odd width */
    }
    int nq = 0;
    for (int t = 0; t < PHIQ_GGML_TYPE_COUNT; t++) {
            if (!phiq_ggml_type_valid(t) || !phiq_ggml_type_is_quantized(t)) continue;
            if (!phiq_quant_can_quantize(t) || !phiq_ops_type_supported(t)) continue;
            check_matmul(t, 9, 512, 3, tp);
            nq++;
        }
    fprintf(stderr, "test_ops: matmul checked on F32/F16/BF16 and %d quantized types\n", nq);
    assert_true(nq >= 10);
    phiq_threadpool_free(tp);
}

/* llama.cpp-style input rounding: f16 is the IEEE rounding, q8 formats stay
 * within half a quantization step of the input. */
static void test_act_round(void **state) {
    (void)state;
    srand(6);
    float x[2 * 512], o[2 * 512];
    uint8_t q[1024];
    fill(x, 1024, 3.0);
    assert_int_equal(phiq_act_round(PHIQ_GGML_TYPE_F16, x, 512, 2, 256, o, q), 0);
    for (int i = 0; i < 256; i++) assert_true(o[i] == phiq_f16_to_f32(phiq_f32_to_f16(x[i])));
    for (int i = 0; i < 256; i++) assert_true(o[256 + i] == phiq_f16_to_f32(phiq_f32_to_f16(x[512 + i])));
    int wt[] = {PHIQ_GGML_TYPE_Q8_0, PHIQ_GGML_TYPE_Q4_1, PHIQ_GGML_TYPE_Q4_K};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(phiq_act_round(wt[k], x, 512, 2, 512, o, q), 0);
        int blk = wt[k] == PHIQ_GGML_TYPE_Q4_K ? 256 : 32;
        for (int t = 0; t < 2; t++)
            for (int b = 0; b < 512; b += blk) {
                double amax = 0;
                for (int i = 0; i < blk; i++) amax = fmax(amax, fabs(x[t * 512 + b + i]));
                for (int i = 0; i < blk; i++)
                    assert_true(fabs(o[t * 512 + b + i] - x[t * 512 + b + i]) <= amax / 127 * 0.6); /* half a step + the f16 scale rounding */
            }
    }
    assert_int_equal(phiq_ops_vec_dot_type(PHIQ_GGML_TYPE_Q6_K), PHIQ_GGML_TYPE_Q8_K);
    assert_int_equal(phiq_ops_vec_dot_type(PHIQ_GGML_TYPE_Q5_1), PHIQ_GGML_TYPE_Q8_1);
}

typedef struct {
    int n;
    int hits[64];
} pool_probe;

static void probe(void *arg, int ith, int nth) {
    pool_probe *p = arg;
    long lo, hi;
    phiq_split(p->n, ith, nth, &lo, &hi);
    for (long i = lo; i < hi; i++) p->hits[i]++;
}

static void test_threadpool(void **state) {
    (void)state;
    for (int nt = 1; nt <= 4; nt++) {
        phiq_threadpool *tp = phiq_threadpool_new(nt);
        assert_non_null(tp);
        pool_probe p = {.n = 61};
        for (int rep = 0; rep < 200; rep++) phiq_threadpool_run(tp, probe, &p);
        for (int i = 0; i < 61; i++) assert_int_equal(p.hits[i], 200);
        phiq_threadpool_free(tp);
    }
}

/* Jobs of alternating sizes back to back: every chunk runs exactly once and
 * never after run_chunks returned (a late worker of a small job once claimed
 * a chunk of the next, larger one while it was being published: the job
 * then "completed" with a chunk still running on a dead stack frame). */
enum { RACE_JOBS = 20000, RACE_CHUNKS = 64 };
typedef struct {
    atomic_int alive;
    atomic_int runs[RACE_CHUNKS];
} race_job;
static atomic_int race_late;

static void race_chunk(void *arg, int c, int nch) {
    race_job *j = arg;
    if (!atomic_load(&j->alive) || c < 0 || c >= nch) atomic_fetch_add(&race_late, 1);
    else atomic_fetch_add(&j->runs[c], 1);
}

static void test_threadpool_job_handoff(void **state) {
    (void)state;
    race_job *jobs = calloc(RACE_JOBS, sizeof *jobs);
    assert_non_null(jobs);
    for (int nt = 2; nt <= 4; nt++) {
        phiq_threadpool *tp = phiq_threadpool_new(nt);
        assert_non_null(tp);
        memset(jobs, 0, RACE_JOBS * sizeof *jobs);
        for (int i = 0; i < RACE_JOBS; i++) {
            const int nch = i % 2 ? RACE_CHUNKS : 1 + i % 3;
            atomic_store(&jobs[i].alive, 1);
            phiq_threadpool_run_chunks(tp, race_chunk, &jobs[i], nch);
            atomic_store(&jobs[i].alive, 0);
            for (int c = 0; c < nch; c++)
                if (atomic_load(&jobs[i].runs[c]) != 1) fail_msg("threads %d job %d chunk %d ran %d times", nt, i, c, atomic_load(&jobs[i].runs[c]));
        }
        phiq_threadpool_free(tp);
        assert_int_equal(atomic_load(&race_late), 0);
    }
    free(jobs);
}

TU_MAIN(NULL, NULL, test_rmsnorm, test_layernorm, test_rope, test_softmax_swiglu_gelu, test_f16_rows_exhaustive,
        test_matmul, test_act_round, test_threadpool,
        test_threadpool_job_handoff)
