/* test_sample.c — the sampler chain against its definitions: greedy is the
 * argmax, top-k 1 is greedy, the same seed repeats, draws at temperature T
 * follow softmax(logits/T) (chi-square, expected probabilities computed here
 * in double precision), top-p / min-p keep exactly the sets their definitions
 * give, and the penalties change the argmax as llama.cpp's formulas say. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "tokenizer/sample.h"

static phiq_sampler_params plain(float temp) {
    phiq_sampler_params p = phiq_sampler_default_params();
    p.temp = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 1234;
    return p;
}

static void random_logits(float *l, int n, unsigned seed) {
    srand(seed);
    for (int i = 0; i < n; i++) l[i] = (float)rand() / RAND_MAX * 20.0f - 10.0f;
}

static void test_greedy_is_argmax(void **s) {
    (void)s;
    enum { N = 32064 };
    float *l = malloc(N * sizeof *l);
    phiq_sampler_params p = plain(0.0f);
    phiq_sampler *sm = phiq_sampler_new(&p);
    for (unsigned t = 0; t < 20; t++) {
        random_logits(l, N, t);
        int best = 0;
        for (int i = 1; i < N; i++)
            if (l[i] > l[best]) best = i;
        assert_int_equal(phiq_sampler_sample(sm, l, N), best);
    }
    /* only the first n logits are candidates (unused embedding rows) */
    l[N - 1] = 1000.0f;
    assert_true(phiq_sampler_sample(sm, l, N - 64) != N - 1);
    phiq_sampler_free(sm);
    /* top-k 1 at any temperature and seed is greedy */
    p = plain(1.5f);
    p.top_k = 1;
    for (uint64_t seed = 0; seed < 5; seed++) {
        p.seed = seed;
        sm = phiq_sampler_new(&p);
        random_logits(l, N, (unsigned)seed + 100);
        int best = 0;
        for (int i = 1; i < N; i++)
            if (l[i] > l[best]) best = i;
        for (int k = 0; k < 10; k++) assert_int_equal(phiq_sampler_sample(sm, l, N), best);
        phiq_sampler_free(sm);
    }
    free(l);
}

static void test_seed_repeats(void **s) {
    (void)s;
    enum { N = 1000, K = 200 };
    float l[N];
    random_logits(l, N, 7);
    for (int i = 0; i < N; i++) l[i] *= 0.3f; /* flatter, so draws vary */
    phiq_sampler_params p = phiq_sampler_default_params();
    p.seed = 42;
    int32_t a[K], b[K], c[K];
    phiq_sampler *x = phiq_sampler_new(&p), *y = phiq_sampler_new(&p);
    p.seed = 43;
    phiq_sampler *z = phiq_sampler_new(&p);
    for (int i = 0; i < K; i++) {
        a[i] = phiq_sampler_sample(x, l, N);
        b[i] = phiq_sampler_sample(y, l, N);
        c[i] = phiq_sampler_sample(z, l, N);
    }
    assert_memory_equal(a, b, sizeof a);
    assert_true(memcmp(a, c, sizeof a) != 0);
    /* reset replays */
    phiq_sampler_reset(x);
    for (int i = 0; i < K; i++) assert_int_equal(phiq_sampler_sample(x, l, N), a[i]);
    phiq_sampler_free(x);
    phiq_sampler_free(y);
    phiq_sampler_free(z);
}

static double chi2(const long *cnt, const double *pr, int n, long draws) {
    double x = 0;
    for (int i = 0; i < n; i++) {
        double e = pr[i] * (double)draws;
        x += (cnt[i] - e) * (cnt[i] - e) / e;
    }
    return x;
}

/* Draw frequencies follow softmax(logits / T). 8 categories, 7 degrees of
 * freedom: chi-square above 24.3 has probability 0.001 under the hypothesis. */
static void test_distribution(void **s) {
    (void)s;
    const float l[8] = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, 1.5f, -1.0f, 0.25f};
    long draws = getenv("PHIQ_SANITIZED") ? 40000 : 200000;
    const float temps[] = {1.0f, 0.5f, 2.0f};
    for (int t = 0; t < 3; t++) {
        double pr[8], z = 0;
        for (int i = 0; i < 8; i++) z += (pr[i] = exp((double)l[i] / temps[t]));
        for (int i = 0; i < 8; i++) pr[i] /= z;
        phiq_sampler_params p = plain(temps[t]);
        phiq_sampler *sm = phiq_sampler_new(&p);
        long cnt[8] = {0};
        for (long d = 0; d < draws; d++) {
            int32_t id = phiq_sampler_sample(sm, l, 8);
            assert_true(id >= 0 && id < 8);
            cnt[id]++;
        }
        double x = chi2(cnt, pr, 8, draws);
        print_message("temp %.1f: chi-square %.2f over %ld draws (7 dof)\n", (double)temps[t], x, draws);
        assert_true(x < 24.3);
        phiq_sampler_free(sm);
    }
}

/* probabilities 0.5 0.3 0.15 0.05 */
static void test_top_p_min_p_top_k(void **s) {
    (void)s;
    const float l[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    phiq_sampler_params p = plain(1.0f);
    p.top_p = 0.7f; /* 0.5 < 0.7 <= 0.8: keeps {0, 1} */
    phiq_sampler *sm = phiq_sampler_new(&p);
    int seen[4] = {0};
    for (int d = 0; d < 5000; d++) seen[phiq_sampler_sample(sm, l, 4)]++;
    assert_true(seen[0] > 0 && seen[1] > 0 && seen[2] == 0 && seen[3] == 0);
    /* renormalised over the kept set: 0.5/0.8 = 0.625 */
    assert_true(fabs(seen[0] / 5000.0 - 0.625) < 0.03);
    phiq_sampler_free(sm);
    p = plain(1.0f);
    p.min_p = 0.35f; /* keeps p >= 0.175: {0, 1} */
    sm = phiq_sampler_new(&p);
    memset(seen, 0, sizeof seen);
    for (int d = 0; d < 5000; d++) seen[phiq_sampler_sample(sm, l, 4)]++;
    assert_true(seen[0] > 0 && seen[1] > 0 && seen[2] == 0 && seen[3] == 0);
    phiq_sampler_free(sm);
    p = plain(1.0f);
    p.top_k = 3;
    sm = phiq_sampler_new(&p);
    memset(seen, 0, sizeof seen);
    for (int d = 0; d < 5000; d++) seen[phiq_sampler_sample(sm, l, 4)]++;
    assert_true(seen[2] > 0 && seen[3] == 0);
    phiq_sampler_free(sm);
}

/* A greedy sampler with these penalties over the last last_n ids. */
static phiq_sampler *penalized(int last_n, float repeat, float freq, float presence) {
    phiq_sampler_params p = plain(0.0f);
    p.penalty_last_n = last_n;
    p.repeat_penalty = repeat;
    p.freq_penalty = freq;
    p.presence_penalty = presence;
    return phiq_sampler_new(&p);
}

static void test_penalties(void **s) {
    (void)s;
    phiq_sampler *sm = penalized(4, 1.1f, 0.0f, 0.0f);
    float l[3] = {2.0f, 1.9f, -1.0f};
    assert_int_equal(phiq_sampler_sample(sm, l, 3), 0);
    phiq_sampler_accept(sm, 0); /* 2.0 / 1.1 = 1.82 < 1.9 */
    assert_int_equal(phiq_sampler_sample(sm, l, 3), 1);
    /* the window forgets: four other tokens push id 0 out */
    for (int i = 0; i < 4; i++) phiq_sampler_accept(sm, 2);
    assert_int_equal(phiq_sampler_sample(sm, l, 3), 0);
    phiq_sampler_free(sm);
    /* negative logits are multiplied: -1.0 * 1.1 */
    sm = penalized(4, 3.0f, 0.0f, 0.0f);
    float n2[2] = {-1.0f, -2.5f};
    phiq_sampler_accept(sm, 0); /* -3.0 < -2.5 */
    assert_int_equal(phiq_sampler_sample(sm, n2, 2), 1);
    phiq_sampler_free(sm);
    /* frequency: count * f; presence: once */
    sm = penalized(8, 1.0f, 0.2f, 0.0f);
    float f[2] = {1.0f, 0.5f};
    phiq_sampler_accept(sm, 0);
    phiq_sampler_accept(sm, 0); /* 1.0 - 0.4 = 0.6 > 0.5 */
    assert_int_equal(phiq_sampler_sample(sm, f, 2), 0);
    phiq_sampler_accept(sm, 0); /* 1.0 - 0.6 = 0.4 < 0.5 */
    assert_int_equal(phiq_sampler_sample(sm, f, 2), 1);
    phiq_sampler_free(sm);
    sm = penalized(8, 1.0f, 0.0f, 0.6f);
    phiq_sampler_accept(sm, 0);
    assert_int_equal(phiq_sampler_sample(sm, f, 2), 1); /* 0.4 < 0.5 */
    phiq_sampler_free(sm);
}

static void test_bad_logits(void **s) {
    (void)s;
    phiq_sampler *sm = phiq_sampler_new(NULL);
    float l[3] = {NAN, NAN, NAN};
    assert_true(phiq_sampler_sample(sm, l, 3) < 0);
    assert_true(phiq_sampler_sample(sm, l, 0) < 0);
    l[1] = 0.0f; /* NaN rows are never drawn */
    for (int i = 0; i < 100; i++) assert_int_equal(phiq_sampler_sample(sm, l, 3), 1);
    phiq_sampler_free(sm);
}

TU_MAIN(NULL, NULL, test_greedy_is_argmax, test_seed_repeats, test_distribution, test_top_p_min_p_top_k, test_penalties,
        test_bad_logits)
