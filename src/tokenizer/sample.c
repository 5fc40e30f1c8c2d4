/* sample.c — the sampler chain of sample.h. Candidates are (id, logit)
 * pairs; each stage shrinks or rescales the set in llama.cpp's order. */
#include "tokenizer/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

typedef struct cand {
    int32_t id;
    float logit;
} cand;

struct phiq_sampler {
    phiq_sampler_params p;
    uint64_t rng[4];
    int32_t *hist; /* ring of the last penalty_last_n ids */
    int32_t *hist_sorted;
    int32_t hist_n, hist_pos;
    cand *c;
    int32_t c_cap;
    float *prob;
};

phiq_sampler_params phiq_sampler_default_params(void) {
    phiq_sampler_params p = {0};
    p.temp = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.0f;
    p.penalty_last_n = 64;
    return p;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(uint64_t *s) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

double phiq_sampler_uniform(phiq_sampler *s) { return (double)(next_u64(s->rng) >> 11) * 0x1.0p-53; }

void phiq_sampler_reset(phiq_sampler *s) {
    uint64_t x = s->p.seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    s->hist_n = s->hist_pos = 0;
}

phiq_sampler *phiq_sampler_new(const phiq_sampler_params *p) {
    phiq_sampler *s = calloc(1, sizeof *s);
    if (!s) return phiq_fail_null(PHIQ_ENOMEM, "sampler: out of memory");
    s->p = p ? *p : phiq_sampler_default_params();
    if (s->p.penalty_last_n < 0) s->p.penalty_last_n = 0;
    if (s->p.penalty_last_n > 1 << 20) s->p.penalty_last_n = 1 << 20;
    if (s->p.penalty_last_n > 0 && (!(s->hist = malloc(sizeof *s->hist * (size_t)s->p.penalty_last_n)) ||
                                     !(s->hist_sorted = malloc(sizeof *s->hist * (size_t)s->p.penalty_last_n)))) {
        free(s->hist);
        free(s);
        return phiq_fail_null(PHIQ_ENOMEM, "sampler: out of memory");
    }
    phiq_sampler_reset(s);
    return s;
}

void phiq_sampler_free(phiq_sampler *s) {
    if (!s) return;
    PHIQ_FREE_ALL(s->hist, s->hist_sorted, s->c, s->prob, s);
}

void phiq_sampler_accept(phiq_sampler *s, int32_t id) {
    if (!s->p.penalty_last_n) return;
    s->hist[s->hist_pos] = id;
    s->hist_pos = (s->hist_pos + 1) % s->p.penalty_last_n;
    if (s->hist_n < s->p.penalty_last_n) s->hist_n++;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : (x > y);
}

static int cmp_desc(const void *a, const void *b) {
    float x = ((const cand *)a)->logit, y = ((const cand *)b)->logit;
    if (x != y) return x > y ? -1 : 1;
    int32_t i = ((const cand *)a)->id, j = ((const cand *)b)->id;
    return i < j ? -1 : (i > j);
}

/* Restores the heap c[0..k) (the worst by cmp_desc at the root) below j. */
static void sift_down(cand *c, int32_t k, int32_t j) {
    for (;;) {
        int32_t l = 2 * j + 1, r = l + 1, m = j;
        if (l < k && cmp_desc(&c[l], &c[m]) > 0) m = l;
        if (r < k && cmp_desc(&c[r], &c[m]) > 0) m = r;
        if (m == j) return;
        cand t = c[j]; c[j] = c[m]; c[m] = t;
        j = m;
    }
}

/* Moves the k largest to the front, sorted (selection via a min-heap). */
static void top_k_sorted(cand *c, int32_t n, int32_t k) {
    if (k >= n) {
        qsort(c, (size_t)n, sizeof *c, cmp_desc);
        return;
    }
    /* heap of the k best seen so far; root = worst of them */
    for (int32_t i = k / 2 - 1; i >= 0; i--) sift_down(c, k, i);
    for (int32_t i = k; i < n; i++) {
        if (cmp_desc(&c[i], &c[0]) >= 0) continue; /* not better than the worst kept */
        cand t = c[0]; c[0] = c[i]; c[i] = t;
        sift_down(c, k, 0);
    }
    qsort(c, (size_t)k, sizeof *c, cmp_desc);
}

/* softmax of the (sorted) candidates into s->prob; returns the sum check */
static void softmax(const cand *c, int32_t n, float *prob) {
    double mx = c[0].logit, sum = 0;
    for (int32_t i = 1; i < n; i++)
        if (c[i].logit > mx) mx = c[i].logit;
    for (int32_t i = 0; i < n; i++) sum += (prob[i] = (float)exp((double)c[i].logit - mx));
    for (int32_t i = 0; i < n; i++) prob[i] = (float)(prob[i] / sum);
}

int32_t phiq_sampler_sample(phiq_sampler *s, const float *logits, int32_t n) {
    if (n <= 0 || !logits) return phiq_fail(PHIQ_EINVAL, "sampler: no logits");
    if (n > s->c_cap) {
        cand *c = realloc(s->c, sizeof *c * (size_t)n);
        float *p = c ? realloc(s->prob, sizeof *p * (size_t)n) : NULL;
        if (c) s->c = c;
        if (p) s->prob = p;
        if (!c || !p) return phiq_fail(PHIQ_ENOMEM, "sampler: out of memory");
        s->c_cap = n;
    }
    cand *c = s->c;
    int32_t m = n;
    for (int32_t i = 0; i < n; i++) c[i] = (cand){i, isnan(logits[i]) ? -INFINITY : logits[i]};
    /* 1. penalties over the window (ids are still indices here) */
    const phiq_sampler_params *p = &s->p;
    if (s->hist_n > 0 && (p->repeat_penalty != 1.0f || p->freq_penalty != 0.0f || p->presence_penalty != 0.0f)) {
        int32_t *h = s->hist_sorted;
        memcpy(h, s->hist, sizeof *h * (size_t)s->hist_n);
        qsort(h, (size_t)s->hist_n, sizeof *h, cmp_i32);
        for (int32_t a = 0, b; a < s->hist_n; a = b) {
            for (b = a; b < s->hist_n && h[b] == h[a]; b++) {}
            int32_t id = h[a], cnt = b - a;
            if (id < 0 || id >= n) continue;
            float *l = &c[id].logit;
            if (*l <= 0) *l *= p->repeat_penalty;
            else *l /= p->repeat_penalty;
            *l -= (float)cnt * p->freq_penalty + p->presence_penalty;
        }
    }
    float mx = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        if (c[i].logit > mx) mx = c[i].logit;
    if (!(mx > -INFINITY)) return phiq_fail(PHIQ_EINVAL, "sampler: no finite logit");
    /* greedy */
    if (p->temp <= 0.0f) {
        int32_t best = 0;
        for (int32_t i = 1; i < m; i++)
            if (c[i].logit > c[best].logit) best = i;
        return c[best].id;
    }
    /* 2. top-k (also sorts descending, which top-p needs) */
    int32_t k = p->top_k > 0 && p->top_k < m ? p->top_k : m;
    top_k_sorted(c, m, k);
    m = k;
    /* 3. top-p: smallest prefix whose probability reaches p */
    if (p->top_p < 1.0f && m > 1) {
        softmax(c, m, s->prob);
        double cum = 0;
        for (int32_t i = 0; i < m; i++) {
            cum += s->prob[i];
            if (cum >= p->top_p) { m = i + 1; break; }
        }
    }
    /* 4. min-p: keep p_i >= min_p * p_max, i.e. logit >= max + ln(min_p) */
    if (p->min_p > 0.0f && m > 1) {
        float thr = c[0].logit + logf(p->min_p);
        int32_t keep = 1;
        while (keep < m && c[keep].logit >= thr) keep++;
        m = keep;
    }
    /* 5. temperature, 6. draw */
    for (int32_t i = 0; i < m; i++) c[i].logit /= p->temp;
    softmax(c, m, s->prob);
    double u = phiq_sampler_uniform(s), cum = 0;
    int32_t last = 0;
    for (int32_t i = 0; i < m; i++) {
        if (s->prob[i] <= 0) continue;
        last = i;
        cum += s->prob[i];
        if (u < cum) return c[i].id;
    }
    return c[last].id; /* rounding left u above the total */
}
