/* serve_load.c — the load client of bench/serve-load.sh: streamed chat
 * requests (libcurl multi, one thread) against a running `phiq serve`,
 * timing each SSE chunk that carries content.
 *   serve_load URL solo|parallel|load [N] [CONCURRENCY] [MAX_TOKENS]
 * Prints one JSON line. In C rather than node because on a 2-vCPU machine the
 * client shares the cores with the server's two compute threads: node spent
 * about 2 ms of CPU per streamed token (0.15 s per 64-token stream), enough
 * to slow the forward pass it measures by a few percent; this client spends
 * microseconds. Built by the script against the system libcurl and cJSON;
 * not part of the library or CLI. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_STREAMS 256
#define MAX_TIMES 4096

static const char *const QUESTIONS[] = {"Explain the water cycle.", "Write a poem about the sea.", "What is a prime number?",
                                        "Describe a cat.", "How do airplanes fly?", "Tell me a story about a dragon.",
                                        "Why is the sky blue?", "List some fruits."};

typedef struct stream {
    CURL *h;
    struct curl_slist *hdr;
    char body[512];
    char buf[65536]; /* undelivered SSE bytes */
    size_t len;
    double t0, times[MAX_TIMES];
    int n_times, usage_tokens, bad;
} stream;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* one "data: {...}" event: a content delta is a token's arrival */
static void on_event(stream *s, const char *ev) {
    if (strncmp(ev, "data: ", 6) || !strcmp(ev, "data: [DONE]")) return;
    cJSON *j = cJSON_Parse(ev + 6);
    if (!j) {
        s->bad = 1;
        return;
    }
    const cJSON *u = cJSON_GetObjectItem(j, "usage");
    const cJSON *ct = u ? cJSON_GetObjectItem(u, "completion_tokens") : NULL;
    if (cJSON_IsNumber(ct)) s->usage_tokens = ct->valueint;
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    const cJSON *c = ch ? cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "delta"), "content") : NULL;
    if (cJSON_IsString(c) && c->valuestring[0] && s->n_times < MAX_TIMES) s->times[s->n_times++] = now_ms();
    cJSON_Delete(j);
}

static size_t on_data(char *p, size_t sz, size_t nm, void *ud) {
    stream *s = ud;
    size_t n = sz * nm;
    if (s->len + n + 1 > sizeof s->buf) {
        s->bad = 1;
        return 0;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = 0;
    char *start = s->buf, *k;
    while ((k = strstr(start, "\n\n"))) {
        *k = 0;
        on_event(s, start);
        start = k + 2;
    }
    s->len -= (size_t)(start - s->buf);
    memmove(s->buf, start, s->len);
    return n;
}

static void stream_start(CURLM *m, stream *s, const char *url, int i, int max_tokens) {
    memset(s, 0, sizeof *s);
    snprintf(s->body, sizeof s->body,
             "{\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],\"stream\":true,"
             "\"stream_options\":{\"include_usage\":true},\"temperature\":0,\"max_tokens\":%d}",
             QUESTIONS[i % (int)(sizeof QUESTIONS / sizeof *QUESTIONS)], max_tokens);
    char full[1024];
    snprintf(full, sizeof full, "%s/v1/chat/completions", url);
    s->h = curl_easy_init();
    s->hdr = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(s->h, CURLOPT_URL, full);
    curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, s->hdr);
    curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, s->body);
    curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(s->h, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->h, CURLOPT_PRIVATE, s);
    s->t0 = now_ms();
    curl_multi_add_handle(m, s->h);
}

/* runs until a stream ends; returns it (checked), or NULL when none is running */
static stream *wait_one(CURLM *m, int *running) {
    for (;;) {
        CURLMsg *msg;
        int q;
        while ((msg = curl_multi_info_read(m, &q)))
            if (msg->msg == CURLMSG_DONE) {
                stream *s;
                long code = 0;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
                curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
                if (msg->data.result != CURLE_OK || code != 200 || s->bad || s->n_times < 2) {
                    fprintf(stderr, "serve_load: a stream failed (%s, HTTP %ld, %d tokens)\n",
                            curl_easy_strerror(msg->data.result), code, s->n_times);
                    exit(1);
                }
                curl_multi_remove_handle(m, s->h);
                curl_easy_cleanup(s->h);
                curl_slist_free_all(s->hdr);
                return s;
            }
        if (!*running) return NULL;
        curl_multi_perform(m, running);
        if (*running) curl_multi_poll(m, NULL, 0, 1000, NULL);
    }
}

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* percentile p of v[0..n): v sorted, v[floor(p/100 n)] (as the node client this replaced reported them) */
static double pct(double *v, int n, double p) {
    qsort(v, (size_t)n, sizeof *v, cmpd);
    int k = (int)(p / 100 * n);
    return n ? v[k < n ? k : n - 1] : 0;
}

static int tokens_of(const stream *s) { return s->usage_tokens > 0 ? s->usage_tokens : s->n_times; }

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: serve_load URL solo|parallel|load [N] [CONCURRENCY] [MAX_TOKENS]\n");
        return 2;
    }
    const char *url = argv[1], *mode = argv[2];
    int n = argc > 3 ? atoi(argv[3]) : 8, conc = argc > 4 ? atoi(argv[4]) : 8, max_tokens = argc > 5 ? atoi(argv[5]) : 64;
    if (!strcmp(mode, "solo")) n = conc = 1;
    else if (!strcmp(mode, "parallel")) conc = n;
    else if (strcmp(mode, "load")) {
        fprintf(stderr, "serve_load: mode is solo, parallel or load\n");
        return 2;
    }
    if (n < 1 || conc < 1 || conc > MAX_STREAMS || max_tokens < 1) {
        fprintf(stderr, "serve_load: N and CONCURRENCY must be 1..%d\n", MAX_STREAMS);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_ALL);
    CURLM *m = curl_multi_init();
    stream *slots = calloc((size_t)conc, sizeof *slots);
    stream *done = calloc((size_t)n, sizeof *done);
    double *ttft = malloc(sizeof(double) * (size_t)n), *itl = malloc(sizeof(double) * (size_t)n * MAX_TIMES);
    if (!slots || !done || !ttft || !itl) return 1;
    const double t_start = now_ms();
    int next = 0, n_done = 0, running = 0, n_itl = 0;
    for (; next < conc && next < n; next++) stream_start(m, &slots[next], url, next, max_tokens);
    running = next;
    stream *s;
    while ((s = wait_one(m, &running))) {
        done[n_done] = *s;
        ttft[n_done] = s->times[0] - s->t0;
        for (int i = 1; i < s->n_times; i++) itl[n_itl++] = s->times[i] - s->times[i - 1];
        n_done++;
        if (next < n) { /* the slot takes the next request at once */
            stream_start(m, s, url, next++, max_tokens);
            running = 1;
        }
    }
    const double wall = (now_ms() - t_start) / 1e3;
    int tok = 0, dec_tok = 0;
    double first_all = 1e300, last_all = 0, first_last = 0, t0_min = 1e300;
    for (int i = 0; i < n_done; i++) {
        const stream *d = &done[i];
        tok += tokens_of(d);
        dec_tok += tokens_of(d) - 1;
        if (d->times[0] < first_all) first_all = d->times[0];
        if (d->times[0] > first_last) first_last = d->times[0];
        if (d->times[d->n_times - 1] > last_all) last_all = d->times[d->n_times - 1];
        if (d->t0 < t0_min) t0_min = d->t0;
    }
    if (strcmp(mode, "load")) /* decode rate: tokens after each first, from the last first token to the end */
        printf("{\"streams\":%d,\"tokens\":%d,\"wall_s\":%.2f,\"aggregate_decode_tok_s\":%.2f,\"overall_tok_s\":%.2f}\n",
               n, tok, (last_all - t0_min) / 1e3, dec_tok / ((last_all - first_last) / 1e3),
               tok / ((last_all - first_all) / 1e3));
    else {
        double t50 = pct(ttft, n_done, 50), t90 = pct(ttft, n_done, 90), t99 = pct(ttft, n_done, 99);
        double i50 = pct(itl, n_itl, 50), i90 = pct(itl, n_itl, 90), i99 = pct(itl, n_itl, 99);
        printf("{\"requests\":%d,\"concurrency\":%d,\"tokens\":%d,\"wall_s\":%.2f,\"tok_s\":%.2f,"
               "\"ttft_ms\":{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f},\"itl_ms\":{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f}}\n",
               n, conc, tok, wall, tok / wall, t50, t90, t99, i50, i90, i99);
    }
    curl_multi_cleanup(m);
    curl_global_cleanup();
    free(slots), free(done), free(ttft), free(itl);
    return 0;
}
