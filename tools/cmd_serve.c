/* cmd_serve.c — `phiq serve`: an OpenAI-compatible HTTP server (chat and
 * text completions, streamed as Server-Sent Events, /v1/models, /health,
 * Prometheus /metrics, a built-in chat page at /) with continuous batching.
 *
 * Threads: libmicrohttpd runs one thread per connection; those parse the
 * request (tools/serve_req.c), render and tokenize the prompt, queue a job
 * and wait for its text. One scheduler thread owns the model: each step it
 * admits queued jobs into free slots (a slot = one phiq_seq, i.e. one KV
 * cache, picked for the longest cached prefix of the new prompt), evaluates
 * a prefill chunk or a decode token of every busy slot in one
 * phiq_seq_eval_batch pass, and samples. Everything shared sits under one
 * mutex; a job is freed by whichever side drops the last reference. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "cli.h"
#include "core/common.h"
#include "phiq.h"
#include "serve.h"
#include "serve_page.h"
#include "tokenizer/chat.h"
#include "tokenizer/sample.h"
#include "tokenizer/tokenizer.h"

typedef struct serve_opts {
    const char *model, *model_arg, *host, *api_key, *alias, *kv_type;
    int port, parallel, n_ctx, n_threads, queue, timeout, weights;
    size_t max_body;
} serve_opts;

/* One request, from its parse to its last byte sent. */
typedef struct job {
    int refs;                  /* connection + scheduler; freed at 0 (under srv.mu) */
    serve_req req;
    int32_t *prompt;
    int n_prompt, n_predict;   /* max new tokens */
    char *text;                /* generated text */
    size_t len, cap, visible;  /* visible: bytes that can no longer turn into a stop sequence */
    int n_gen, n_cached;
    const char *finish;        /* NULL while running, then "stop" or "length" */
    int status;                /* != 0: failed with this HTTP status and errmsg */
    char errmsg[256];
    int cancelled;
    int fd;                    /* the client's socket: a hang-up cancels */
    pthread_cond_t cv;
    double t_queued, t_first;
    char id[48];
    long created;
    /* streaming state (the connection thread only) */
    int sent_role, done;
    size_t sent;
    char *out;
    size_t out_len, out_off;
} job;

typedef struct slot {
    phiq_seq *seq;
    int32_t *ids;  /* the tokens in seq's cache */
    int n_ids;
    job *j;
    int decoding;  /* prompt done: feeding sampled tokens */
    int32_t last;
    phiq_sampler *smp;
    phiq_detok dt;
    double last_used;
} slot;

#define RATE_WINDOW 64

static struct server {
    serve_opts o;
    phiq_model *m;
    phiq_tokenizer *tok;
    phiq_chat_template tmpl;
    int have_tmpl, n_vocab, n_ctx;
    char name[256];
    phiq_context *ctx;
    slot *slots;
    pthread_mutex_t mu;
    pthread_cond_t sched_cv;
    job **queue;
    int q_len;
    int stopping;
    long n_jobs; /* alive */
    /* metrics */
    unsigned long long req_total, req_rejected_queue, req_bad, req_unauth, req_cancelled;
    unsigned long long prompt_tokens, cached_tokens, gen_tokens;
    double rate_tok[RATE_WINDOW], rate_dt[RATE_WINDOW];
    int rate_i;
    double started;
} srv;

/* ---- jobs ---------------------------------------------------------------------- */
static void job_unref_locked(job *j) {
    if (--j->refs > 0) return;
    serve_req_free(&j->req);
    free(j->prompt);
    free(j->text);
    free(j->out);
    pthread_cond_destroy(&j->cv);
    free(j);
    srv.n_jobs--;
}

static void job_append(job *j, const char *p, size_t n) {
    if (j->len + n + 1 > j->cap) {
        size_t cap = j->cap ? j->cap : 256;
        while (cap < j->len + n + 1) cap *= 2;
        char *t = realloc(j->text, cap);
        if (!t) return;
        j->text = t;
        j->cap = cap;
    }
    memcpy(j->text + j->len, p, n);
    j->len += n;
    j->text[j->len] = 0;
}

/* After new text: cut at a stop sequence (returns 1), else advance
 * `visible` to the bytes that cannot be the start of one. */
static int job_check_stop(job *j) {
    size_t hold = 0;
    const char *first = NULL;
    for (int s = 0; s < j->req.n_stop; s++) {
        const char *hit = memmem(j->text + j->visible, j->len - j->visible, j->req.stop[s], strlen(j->req.stop[s]));
        if (hit && (!first || hit < first)) first = hit;
    }
    if (first) {
        j->len = (size_t)(first - j->text);
        j->text[j->len] = 0;
        j->visible = j->len;
        return 1;
    }
    for (int s = 0; s < j->req.n_stop; s++) {
        const char *st = j->req.stop[s];
        size_t sl = strlen(st);
        for (size_t k = sl - 1; k > hold && k > 0; k--)
            if (k <= j->len && !memcmp(j->text + j->len - k, st, k)) {
                hold = k;
                break;
            }
    }
    j->visible = j->len - hold;
    return 0;
}

/* ---- scheduler ------------------------------------------------------------------- */
static void slot_finish(slot *s, const char *reason) {
    job *j = s->j;
    char buf[64];
    int k = phiq_detok_flush(&s->dt, buf, sizeof buf);
    if (k > 0 && !j->finish) {
        job_append(j, buf, (size_t)k);
        if (job_check_stop(j)) reason = "stop";
    }
    j->visible = j->len;
    j->finish = reason;
    phiq_sampler_free(s->smp);
    s->smp = NULL;
    s->j = NULL;
    s->decoding = 0;
    s->last_used = phiq_now();
    pthread_cond_broadcast(&j->cv);
    job_unref_locked(j);
}

static void job_fail_locked(job *j, int status, const char *msg) {
    j->status = status;
    snprintf(j->errmsg, sizeof j->errmsg, "%s", msg);
    j->finish = "error";
    pthread_cond_broadcast(&j->cv);
}

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb) {
    int k = 0;
    while (k < na && k < nb && a[k] == b[k]) k++;
    return k;
}

/* Moves queued jobs into free slots: the slot whose cache shares the longest
 * prefix with the prompt (the previous turn of the same conversation), else
 * the least recently used. Under srv.mu. */
static void admit_locked(void) {
    while (srv.q_len > 0) {
        job *j = srv.queue[0];
        if (j->cancelled) {
            memmove(srv.queue, srv.queue + 1, sizeof *srv.queue * (size_t)--srv.q_len);
            srv.req_cancelled++;
            j->finish = "stop";
            pthread_cond_broadcast(&j->cv);
            job_unref_locked(j);
            continue;
        }
        int best = -1, best_lcp = -1;
        for (int i = 0; i < srv.o.parallel; i++) {
            slot *s = &srv.slots[i];
            if (s->j) continue;
            int l = common_prefix(s->ids, s->n_ids, j->prompt, j->n_prompt);
            if (l > best_lcp || (l == best_lcp && s->last_used < srv.slots[best].last_used)) best = i, best_lcp = l;
        }
        if (best < 0) return;
        memmove(srv.queue, srv.queue + 1, sizeof *srv.queue * (size_t)--srv.q_len);
        slot *s = &srv.slots[best];
        int keep = best_lcp;
        if (keep == j->n_prompt) keep--; /* re-evaluate the last prompt token for its logits */
        phiq_seq_truncate(s->seq, keep);
        s->n_ids = keep;
        s->j = j;
        s->decoding = 0;
        j->n_cached = keep;
        srv.cached_tokens += (unsigned long long)keep;
        phiq_sampler_params sp = phiq_sampler_default_params();
        sp.temp = j->req.temperature;
        sp.top_k = 40;
        sp.top_p = j->req.top_p;
        sp.min_p = 0.05f;
        sp.repeat_penalty = 1.0f;
        sp.freq_penalty = j->req.frequency_penalty;
        sp.presence_penalty = j->req.presence_penalty;
        sp.penalty_last_n = 64;
        sp.seed = j->req.has_seed ? j->req.seed : ((uint64_t)rand() << 32) ^ (uint64_t)(phiq_now() * 1e6);
        s->smp = phiq_sampler_new(&sp);
        for (int i = 0; s->smp && i < j->n_prompt; i++) phiq_sampler_accept(s->smp, j->prompt[i]);
        phiq_detok_init(&s->dt, srv.tok, 1);
        s->dt.at_start = j->req.chat; /* a chat reply starts fresh; a continuation keeps its space (as phiq run) */
        if (!s->smp) {
            job_fail_locked(j, 500, "out of memory");
            s->j = NULL;
            job_unref_locked(j);
        } else if (j->n_predict == 0) {
            slot_finish(s, "length");
        }
    }
}

/* One sampled token of slot s. Under srv.mu. */
static void slot_token(slot *s) {
    job *j = s->j;
    if (!j->t_first) j->t_first = phiq_now();
    if (j->cancelled) {
        srv.req_cancelled++;
        slot_finish(s, "stop");
        return;
    }
    int32_t id = phiq_sampler_sample(s->smp, phiq_seq_logits(s->seq), srv.n_vocab);
    if (id < 0 || phiq_tokenizer_is_eog(srv.tok, id)) {
        slot_finish(s, "stop");
        return;
    }
    j->n_gen++;
    srv.gen_tokens++;
    phiq_sampler_accept(s->smp, id);
    char buf[1024];
    int k = phiq_detok_push(&s->dt, id, buf, sizeof buf);
    if (k > 0) job_append(j, buf, (size_t)k);
    if (job_check_stop(j)) {
        slot_finish(s, "stop");
        return;
    }
    s->last = id;
    s->decoding = 1;
    if (j->n_gen >= j->n_predict || s->n_ids + 1 > srv.n_ctx) {
        slot_finish(s, "length");
        return;
    }
    pthread_cond_broadcast(&j->cv);
}

static void *scheduler(void *arg) {
    (void)arg;
    const int P = srv.o.parallel;
    phiq_seq_item *items = calloc((size_t)P, sizeof *items);
    int *which = calloc((size_t)P, sizeof *which);
    const int budget_total = 512; /* tokens per pass (the context's n_batch) */
    pthread_mutex_lock(&srv.mu);
    for (;;) {
        admit_locked();
        int busy = 0;
        for (int i = 0; i < P; i++) busy += srv.slots[i].j != NULL;
        if (!busy) {
            if (srv.stopping) break;
            pthread_cond_wait(&srv.sched_cv, &srv.mu);
            continue;
        }
        /* decode tokens first (one each), then prompt chunks in the room left */
        int n = 0, budget = budget_total;
        for (int i = 0; i < P; i++) {
            slot *s = &srv.slots[i];
            if (!s->j) continue;
            if (s->j->cancelled || srv.stopping) {
                if (s->j->cancelled) srv.req_cancelled++;
                slot_finish(s, s->j->cancelled ? "stop" : "length");
                continue;
            }
            if (s->decoding) {
                items[n] = (phiq_seq_item){s->seq, &s->last, 1};
                which[n++] = i;
                budget--;
            }
        }
        for (int i = 0; i < P && budget > 0; i++) {
            slot *s = &srv.slots[i];
            if (!s->j || s->decoding) continue;
            int left = s->j->n_prompt - s->n_ids, take = left < budget ? left : budget;
            items[n] = (phiq_seq_item){s->seq, s->j->prompt + s->n_ids, take};
            which[n++] = i;
            budget -= take;
        }
        if (!n) continue;
        pthread_mutex_unlock(&srv.mu);
        double t0 = phiq_now();
        int rc = phiq_seq_eval_batch(srv.ctx, items, n);
        double dt = phiq_now() - t0;
        pthread_mutex_lock(&srv.mu);
        int sampled = 0;
        for (int k = 0; k < n; k++) {
            slot *s = &srv.slots[which[k]];
            if (rc < 0) {
                char msg[200];
                snprintf(msg, sizeof msg, "evaluation failed: %s", phiq_error());
                phiq_seq_truncate(s->seq, 0);
                s->n_ids = 0;
                job_fail_locked(s->j, 500, msg);
                slot_finish(s, "error");
                continue;
            }
            memcpy(s->ids + s->n_ids, items[k].ids, sizeof(int32_t) * (size_t)items[k].n);
            s->n_ids += items[k].n;
            if (s->n_ids < s->j->n_prompt) continue; /* more prompt to go */
            srv.prompt_tokens += s->decoding ? 0 : (unsigned long long)(s->j->n_prompt - s->j->n_cached);
            slot_token(s);
            sampled++;
        }
        srv.rate_tok[srv.rate_i] = sampled;
        srv.rate_dt[srv.rate_i] = dt;
        srv.rate_i = (srv.rate_i + 1) % RATE_WINDOW;
    }
    pthread_mutex_unlock(&srv.mu);
    free(items);
    free(which);
    return NULL;
}

/* ---- responses ------------------------------------------------------------------ */
/* Queues r and lets go of it. Every response says how long the server keeps an
 * idle connection (Keep-Alive: timeout=, RFC 9112's companion header that
 * nginx and Node send): a client whose own keep-alive outlasts --timeout would
 * otherwise reuse a socket the server is closing (undici keeps sockets 4 s; at
 * --timeout 3 its next request failed with UND_ERR_SOCKET). */
static enum MHD_Result queue_response(struct MHD_Connection *c, unsigned status, struct MHD_Response *r) {
    char keep[32];
    snprintf(keep, sizeof keep, "timeout=%d", srv.o.timeout);
    MHD_add_response_header(r, "Keep-Alive", keep);
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type, const char *body,
                                 size_t len) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    return queue_response(c, status, r);
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return send_text(c, 500, "text/plain", "out of memory\n", 14);
    enum MHD_Result ok = send_text(c, status, "application/json", s, strlen(s));
    free(s);
    return ok;
}

static const char *error_type(unsigned status) {
    switch (status) {
    case 400: case 413: return "invalid_request_error";
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    case 503: return "server_unavailable";
    default: return "server_error";
    }
}

static cJSON *error_object(unsigned status, const char *msg, const char *param, const char *code) {
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", error_type(status));
    if (param && *param) cJSON_AddStringToObject(e, "param", param);
    else cJSON_AddNullToObject(e, "param");
    if (code) cJSON_AddStringToObject(e, "code", code);
    else cJSON_AddNullToObject(e, "code");
    return o;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *msg, const char *param,
                                  const char *code) {
    return send_json(c, status, error_object(status, msg, param, code));
}

static cJSON *usage_object(const job *j) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", j->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", j->n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", j->n_prompt + j->n_gen);
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "prompt_tokens_details"), "cached_tokens", j->n_cached);
    return u;
}

/* The envelope of a completion or one stream chunk. */
static cJSON *completion_object(const job *j, int chunk) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", j->req.chat ? (chunk ? "chat.completion.chunk" : "chat.completion")
                                                     : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", srv.name);
    cJSON_AddStringToObject(o, "system_fingerprint", "phiq-" PHIQ_VERSION);
    return o;
}

/* choices[0] with text (NULL: an empty delta) and finish reason (NULL: null). */
static void add_choice(cJSON *o, const job *j, int chunk, const char *text, size_t n, int role, const char *finish) {
    cJSON *cs = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(cs, c);
    cJSON_AddNumberToObject(c, "index", 0);
    char *t = malloc(n + 1);
    if (t) {
        if (n) memcpy(t, text, n);
        t[n] = 0;
    }
    if (j->req.chat) {
        cJSON *m = cJSON_AddObjectToObject(c, chunk ? "delta" : "message");
        if (role) cJSON_AddStringToObject(m, "role", "assistant");
        if (text) cJSON_AddStringToObject(m, "content", t ? t : "");
    } else {
        cJSON_AddStringToObject(c, "text", text && t ? t : "");
    }
    free(t);
    cJSON_AddNullToObject(c, "logprobs");
    if (finish) cJSON_AddStringToObject(c, "finish_reason", finish);
    else cJSON_AddNullToObject(c, "finish_reason");
}

/* Appends "data: JSON\n\n" to the job's outgoing stream buffer. */
static void sse_event(job *j, cJSON *o) {
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    const char *body = s ? s : "[DONE]";
    size_t n = strlen(body) + 8;
    char *b = realloc(j->out, j->out_len + n + 1);
    if (b) {
        j->out = b;
        j->out_len += (size_t)snprintf(j->out + j->out_len, n + 1, "data: %s\n\n", body);
    }
    free(s);
}

/* True when the client has hung up (its socket reports a closed read side). */
static int client_gone(int fd) {
    if (fd < 0) return 0;
    struct pollfd p = {fd, POLLRDHUP, 0};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static void job_cancel_locked(job *j) {
    if (!j->finish) {
        j->cancelled = 1;
        pthread_cond_signal(&srv.sched_cv);
    }
}

/* Waits (under srv.mu) up to 200 ms for news on the job; returns 1 if the
 * client hung up meanwhile (the job is then cancelled). */
static int job_wait_locked(job *j) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 200 * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&j->cv, &srv.mu, &ts);
    if (!j->finish && client_gone(j->fd)) {
        job_cancel_locked(j);
        return 1;
    }
    return 0;
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    job *j = cls;
    if (j->out_off == j->out_len) {
        j->out_off = j->out_len = 0;
        if (j->done) return MHD_CONTENT_READER_END_OF_STREAM;
        pthread_mutex_lock(&srv.mu);
        while (!j->finish && j->visible == j->sent && (j->sent_role || !j->req.chat))
            if (job_wait_locked(j)) {
                pthread_mutex_unlock(&srv.mu);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
        if (j->status) {
            sse_event(j, error_object((unsigned)j->status, j->errmsg, NULL, NULL));
            sse_event(j, NULL);
            j->done = 1;
        } else {
            if (!j->sent_role && j->req.chat) {
                cJSON *o = completion_object(j, 1);
                add_choice(o, j, 1, "", 0, 1, NULL);
                sse_event(j, o);
            }
            j->sent_role = 1;
            if (j->visible > j->sent) {
                cJSON *o = completion_object(j, 1);
                add_choice(o, j, 1, j->text + j->sent, j->visible - j->sent, 0, NULL);
                sse_event(j, o);
                j->sent = j->visible;
            }
            if (j->finish && j->sent == j->len) {
                cJSON *o = completion_object(j, 1);
                add_choice(o, j, 1, j->req.chat ? NULL : "", 0, 0, j->finish);
                sse_event(j, o);
                if (j->req.include_usage) {
                    o = completion_object(j, 1);
                    cJSON_AddArrayToObject(o, "choices");
                    cJSON_AddItemToObject(o, "usage", usage_object(j));
                    sse_event(j, o);
                }
                sse_event(j, NULL);
                j->done = 1;
            }
        }
        pthread_mutex_unlock(&srv.mu);
    }
    size_t n = j->out_len - j->out_off < max ? j->out_len - j->out_off : max;
    memcpy(buf, j->out + j->out_off, n);
    j->out_off += n;
    return (ssize_t)n;
}

static void sse_free(void *cls) {
    job *j = cls;
    pthread_mutex_lock(&srv.mu);
    job_cancel_locked(j); /* a client that left mid-stream frees its slot now */
    job_unref_locked(j);
    pthread_mutex_unlock(&srv.mu);
}

/* ---- requests --------------------------------------------------------------------- */
typedef struct conn {
    char *body;
    size_t len, cap;
    int too_big;
} conn;

static int32_t *tokenize_prompt(const serve_req *r, int *n) {
    char *text = NULL;
    int add_bos = phiq_tokenizer_add_bos(srv.tok);
    const char *src = r->prompt;
    if (r->chat) {
        /* the same rendering as `phiq chat` / `phiq run --chat` */
        phiq_chat_msg *msgs = calloc((size_t)r->n_msgs, sizeof *msgs);
        if (!msgs) return NULL;
        for (int i = 0; i < r->n_msgs; i++) msgs[i] = (phiq_chat_msg){r->msgs[i].role, r->msgs[i].content, NULL};
        text = phiq_chat_render(&srv.tmpl, msgs, r->n_msgs, true);
        free(msgs);
        if (!text) return NULL;
        add_bos = !srv.tmpl.bos_in_template && add_bos;
        src = text;
    }
    size_t len = strlen(src);
    int cap = (int)(len < (size_t)srv.n_ctx * 8 ? len : (size_t)srv.n_ctx * 8) + 8;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    int k = ids ? phiq_tokenize_text(srv.tok, src, len, add_bos, 1, ids, cap) : -1;
    if (k > cap) { /* more tokens than bytes is rare; one retry with the exact size */
        int32_t *more = realloc(ids, sizeof(int32_t) * (size_t)k);
        if (more) ids = more, k = phiq_tokenize_text(srv.tok, src, len, add_bos, 1, ids, k);
        else k = -1;
    }
    free(text);
    if (k < 0) {
        free(ids);
        return NULL;
    }
    *n = k;
    return ids;
}

static enum MHD_Result handle_completion(struct MHD_Connection *c, conn *cs, int chat) {
    char err[256], param[64];
    serve_req req;
    if (serve_req_parse(cs->body ? cs->body : "", cs->len, chat, &req, err, sizeof err, param, sizeof param) < 0) {
        pthread_mutex_lock(&srv.mu);
        srv.req_bad++;
        pthread_mutex_unlock(&srv.mu);
        return send_error(c, 400, err, param, NULL);
    }
    if (chat && !srv.have_tmpl) {
        serve_req_free(&req);
        return send_error(c, 400, "this model has no chat template phiq recognises; use /v1/completions", "messages", NULL);
    }
    int n = 0;
    int32_t *ids = tokenize_prompt(&req, &n);
    if (!ids) {
        snprintf(err, sizeof err, "cannot tokenize the prompt: %s", phiq_error());
        serve_req_free(&req);
        return send_error(c, 400, err, chat ? "messages" : "prompt", NULL);
    }
    if (n == 0) {
        free(ids);
        serve_req_free(&req);
        return send_error(c, 400, "the prompt is empty", chat ? "messages" : "prompt", NULL);
    }
    if (n + 1 > srv.n_ctx) {
        snprintf(err, sizeof err, "the prompt has %d tokens; the context holds %d (-c), leaving no room for a reply", n,
                 srv.n_ctx);
        free(ids);
        serve_req_free(&req);
        return send_error(c, 400, err, chat ? "messages" : "prompt", "context_length_exceeded");
    }
    job *j = calloc(1, sizeof *j);
    if (!j) {
        free(ids);
        serve_req_free(&req);
        return send_error(c, 500, "out of memory", NULL, NULL);
    }
    j->req = req;
    j->prompt = ids;
    j->n_prompt = n;
    int room = srv.n_ctx - n;
    j->n_predict = req.max_tokens >= 0 && req.max_tokens < room ? req.max_tokens : room;
    pthread_cond_init(&j->cv, NULL);
    j->created = (long)time(NULL);
    j->t_queued = phiq_now();
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->fd = ci ? ci->connect_fd : -1;
    pthread_mutex_lock(&srv.mu);
    static unsigned long long seq_no;
    snprintf(j->id, sizeof j->id, "%s-phiq%llx%llu", chat ? "chatcmpl" : "cmpl", (unsigned long long)j->created,
             ++seq_no);
    srv.n_jobs++;
    j->refs = 1;
    /* jobs not yet moved into a free slot do not count against --queue */
    int free_slots = 0;
    for (int i = 0; i < srv.o.parallel; i++) free_slots += srv.slots[i].j == NULL;
    if (srv.stopping || srv.q_len >= srv.o.queue + free_slots) {
        int stopping = srv.stopping;
        if (!stopping) srv.req_rejected_queue++;
        job_unref_locked(j);
        pthread_mutex_unlock(&srv.mu);
        if (stopping) return send_error(c, 503, "the server is shutting down", NULL, NULL);
        return send_error(c, 429, "too many requests: every slot is busy and the queue is full; retry later", NULL,
                          "queue_full");
    }
    srv.req_total++;
    j->refs = 2;
    srv.queue[srv.q_len++] = j;
    pthread_cond_signal(&srv.sched_cv);
    if (j->req.stream) {
        pthread_mutex_unlock(&srv.mu);
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_reader, j, sse_free);
        if (!r) {
            sse_free(j);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        return queue_response(c, 200, r);
    }
    while (!j->finish)
        if (job_wait_locked(j)) break;
    if (!j->finish) { /* the client left: nobody to answer */
        job_unref_locked(j);
        pthread_mutex_unlock(&srv.mu);
        return MHD_NO;
    }
    cJSON *o;
    unsigned status = 200;
    if (j->status) {
        status = (unsigned)j->status;
        o = error_object(status, j->errmsg, NULL, NULL);
    } else {
        o = completion_object(j, 0);
        add_choice(o, j, 0, j->text ? j->text : "", j->len, 1, j->finish);
        cJSON_AddItemToObject(o, "usage", usage_object(j));
    }
    job_unref_locked(j);
    pthread_mutex_unlock(&srv.mu);
    return send_json(c, status, o);
}

static enum MHD_Result handle_models(struct MHD_Connection *c) {
    cJSON *o = cJSON_CreateObject(), *d = cJSON_AddArrayToObject(o, "data"), *m = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON_AddItemToArray(d, m);
    cJSON_AddStringToObject(m, "id", srv.name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)(long)time(NULL));
    cJSON_AddStringToObject(m, "owned_by", "phiq");
    cJSON_AddNumberToObject(m, "context_length", srv.n_ctx);
    return send_json(c, 200, o);
}

static enum MHD_Result handle_metrics(struct MHD_Connection *c) {
    char b[4096];
    pthread_mutex_lock(&srv.mu);
    int busy = 0;
    for (int i = 0; i < srv.o.parallel; i++) busy += srv.slots[i].j != NULL;
    double tok = 0, dt = 0;
    for (int i = 0; i < RATE_WINDOW; i++) tok += srv.rate_tok[i], dt += srv.rate_dt[i];
    int n = snprintf(b, sizeof b,
                     "# HELP phiq_requests_total Completion requests accepted.\n# TYPE phiq_requests_total counter\n"
                     "phiq_requests_total %llu\n"
                     "# HELP phiq_requests_rejected_total Requests refused, by reason.\n"
                     "# TYPE phiq_requests_rejected_total counter\n"
                     "phiq_requests_rejected_total{reason=\"queue_full\"} %llu\n"
                     "phiq_requests_rejected_total{reason=\"bad_request\"} %llu\n"
                     "phiq_requests_rejected_total{reason=\"unauthorized\"} %llu\n"
                     "# HELP phiq_requests_cancelled_total Requests whose client left before the end.\n"
                     "# TYPE phiq_requests_cancelled_total counter\nphiq_requests_cancelled_total %llu\n"
                     "# HELP phiq_prompt_tokens_total Prompt tokens evaluated.\n# TYPE phiq_prompt_tokens_total counter\n"
                     "phiq_prompt_tokens_total %llu\n"
                     "# HELP phiq_prompt_tokens_cached_total Prompt tokens reused from a slot's KV cache.\n"
                     "# TYPE phiq_prompt_tokens_cached_total counter\nphiq_prompt_tokens_cached_total %llu\n"
                     "# HELP phiq_tokens_generated_total Tokens generated.\n# TYPE phiq_tokens_generated_total counter\n"
                     "phiq_tokens_generated_total %llu\n"
                     "# HELP phiq_queue_depth Requests waiting for a slot.\n# TYPE phiq_queue_depth gauge\n"
                     "phiq_queue_depth %d\n"
                     "# HELP phiq_slots_busy Slots generating.\n# TYPE phiq_slots_busy gauge\nphiq_slots_busy %d\n"
                     "# HELP phiq_slots_total Slots (--parallel).\n# TYPE phiq_slots_total gauge\nphiq_slots_total %d\n"
                     "# HELP phiq_tokens_per_second Tokens sampled per second of forward passes over the last %d steps.\n"
                     "# TYPE phiq_tokens_per_second gauge\nphiq_tokens_per_second %.2f\n"
                     "# HELP phiq_uptime_seconds Seconds since the server started.\n# TYPE phiq_uptime_seconds gauge\n"
                     "phiq_uptime_seconds %.0f\n",
                     srv.req_total, srv.req_rejected_queue, srv.req_bad, srv.req_unauth, srv.req_cancelled,
                     srv.prompt_tokens, srv.cached_tokens, srv.gen_tokens, srv.q_len, busy, srv.o.parallel, RATE_WINDOW,
                     dt > 0 ? tok / dt : 0.0, phiq_now() - srv.started);
    pthread_mutex_unlock(&srv.mu);
    return send_text(c, 200, "text/plain; version=0.0.4", b, (size_t)n);
}

/* Constant-time comparison of the bearer token. */
static int authorized(struct MHD_Connection *c) {
    if (!srv.o.api_key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7)) return 0;
    const char *k = h + 7, *want = srv.o.api_key;
    size_t n = strlen(k), w = strlen(want);
    unsigned char diff = (unsigned char)(n != w);
    for (size_t i = 0; i < w; i++) diff |= (unsigned char)(want[i] ^ (i < n ? k[i] : 0));
    return diff == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)cls;
    (void)version;
    conn *cs = *con_cls;
    if (!cs) {
        if (!(cs = calloc(1, sizeof *cs))) return MHD_NO;
        *con_cls = cs;
        /* refuse an oversized body before reading it */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > srv.o.max_body) cs->too_big = 1;
        else return MHD_YES;
    }
    if (*upload_size) {
        if (!cs->too_big && cs->len + *upload_size > srv.o.max_body) cs->too_big = 1;
        if (!cs->too_big) {
            if (cs->len + *upload_size + 1 > cs->cap) {
                size_t cap = cs->cap ? cs->cap : 4096;
                while (cap < cs->len + *upload_size + 1) cap *= 2;
                char *b = realloc(cs->body, cap);
                if (!b) return MHD_NO;
                cs->body = b;
                cs->cap = cap;
            }
            memcpy(cs->body + cs->len, upload, *upload_size);
            cs->len += *upload_size;
            cs->body[cs->len] = 0;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    int v1 = !strncmp(url, "/v1/", 4);
    if (v1 && !authorized(c)) {
        pthread_mutex_lock(&srv.mu);
        srv.req_unauth++;
        pthread_mutex_unlock(&srv.mu);
        return send_error(c, 401, "missing or wrong API key (send Authorization: Bearer KEY)", NULL, "invalid_api_key");
    }
    if (cs->too_big) {
        char m[128];
        snprintf(m, sizeof m, "the request body exceeds %zu bytes (--max-body)", srv.o.max_body);
        return send_error(c, 413, m, NULL, NULL);
    }
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/v1/chat/completions") || !strcmp(url, "/v1/completions")) {
        if (!post) return send_error(c, 405, "use POST", NULL, NULL);
        return handle_completion(c, cs, url[4] == 'c' && url[5] == 'h');
    }
    if (!strcmp(url, "/v1/models")) return get ? handle_models(c) : send_error(c, 405, "use GET", NULL, NULL);
    if (!strcmp(url, "/health")) {
        int stopping;
        pthread_mutex_lock(&srv.mu);
        stopping = srv.stopping;
        pthread_mutex_unlock(&srv.mu);
        const char *b = stopping ? "{\"status\":\"stopping\"}" : "{\"status\":\"ok\"}";
        return send_text(c, stopping ? 503 : 200, "application/json", b, strlen(b));
    }
    if (!strcmp(url, "/metrics")) return handle_metrics(c);
    if (!strcmp(url, "/") && get)
        return send_text(c, 200, "text/html; charset=utf-8", serve_page_html, strlen(serve_page_html));
    char m[200], shown[96], meth[24];
    serve_printable(url, shown, sizeof shown);
    serve_printable(method, meth, sizeof meth);
    snprintf(m, sizeof m, "no such endpoint: %s %s", meth, shown);
    return send_error(c, 404, m, NULL, NULL);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    conn *cs = *con_cls;
    if (!cs) return;
    free(cs->body);
    free(cs);
    *con_cls = NULL;
}

/* ---- command ---------------------------------------------------------------------- */
static void serve_usage(FILE *f) {
    fputs("usage: phiq serve MODEL [options]\n"
          "\n"
          "Serves MODEL over HTTP with the OpenAI API: POST /v1/chat/completions and /v1/completions\n"
          "(streamed with \"stream\": true), GET /v1/models, /health, /metrics (Prometheus), and a chat\n"
          "page at /. Up to --parallel conversations share each forward pass (continuous batching);\n"
          "more wait in a queue of --queue, and past it get 429.\n"
          "\n"
          "  MODEL, -m FILE        a GGUF file or a Hugging Face checkpoint directory\n"
          "  --host ADDR           address to listen on (default 127.0.0.1: this machine only)\n"
          "  --port N              port (default 8080; 0 = any free port, printed at start)\n"
          "  -np, --parallel N     sequences evaluated together (default 4), each with its own KV cache\n"
          "  -c, --ctx-size N      context per sequence in tokens (default: min(model's, 4096))\n"
          "  --queue N             requests that may wait for a slot (default 32)\n"
          "  --api-key KEY         require Authorization: Bearer KEY on /v1 requests\n"
          "  --alias NAME          model name reported by /v1/models (default: the file name)\n"
          "  --max-body BYTES      largest request body (default 1048576; larger: 413)\n"
          "  --timeout S           close connections idle for S seconds (default 60)\n"
          "  -t, --threads N       threads (default: physical cores)\n"
          "  --kv-type T           KV cache type: f16 (default), f32 or q8_0\n" PHIQ_CLI_WEIGHTS_HELP
          "  -h, --help            this help\n"
          "\n"
          "Requests without temperature/top_p sample as phiq run does (temperature 0.8, top-k 40, top-p\n"
          "0.95, min-p 0.05); temperature 0 is greedy. SIGINT/SIGTERM cut running replies short\n"
          "(finish_reason \"length\"), answer queued ones 503, and exit 0.\n",
          f);
}

static int parse_serve(int argc, char **argv, serve_opts *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->parallel = 4;
    o->queue = 32;
    o->timeout = 60;
    o->max_body = 1 << 20;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define VAL() phiq_cli_value(argc, argv, &i, "serve")
        if (phiq_cli_is(a, "-h", "--help")) {
            serve_usage(stdout);
            exit(0);
        } else if (phiq_cli_is(a, "-m", "--model")) o->model = VAL();
        else if (!strcmp(a, "--host")) o->host = VAL();
        else if (!strcmp(a, "--port")) o->port = atoi(VAL());
        else if (phiq_cli_is(a, "-np", "--parallel")) o->parallel = atoi(VAL());
        else if (phiq_cli_is(a, "-c", "--ctx-size")) o->n_ctx = atoi(VAL());
        else if (!strcmp(a, "--queue")) o->queue = atoi(VAL());
        else if (!strcmp(a, "--api-key")) o->api_key = VAL();
        else if (!strcmp(a, "--alias")) o->alias = VAL();
        else if (!strcmp(a, "--max-body")) o->max_body = strtoull(VAL(), NULL, 10);
        else if (!strcmp(a, "--timeout")) o->timeout = atoi(VAL());
        else if (phiq_cli_is(a, "-t", "--threads")) o->n_threads = atoi(VAL());
        else if (!strcmp(a, "--kv-type")) o->kv_type = VAL();
        else if (phiq_cli_weights_flag(a, &o->weights)) continue;
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "phiq serve: unknown option %s (see phiq serve --help)\n", a);
            return 2;
        } else if (!o->model) o->model = a;
        else {
            fprintf(stderr, "phiq serve: unexpected argument %s\n", a);
            return 2;
        }
#undef VAL
    }
    if (!o->model) {
        serve_usage(stderr);
        return 2;
    }
    o->model_arg = o->model;
    if (!(o->model = phiq_cli_model_path("serve", o->model))) return 1;
    if (o->port < 0 || o->port > 65535) return phiq_cli_fail("serve", "--port %d is not a port number", o->port) + 1;
    if (o->parallel < 1 || o->parallel > 256) return phiq_cli_fail("serve", "--parallel must be 1..256") + 1;
    if (o->queue < 0 || o->queue > 100000) return phiq_cli_fail("serve", "--queue must be 0..100000") + 1;
    if (o->max_body < 64) return phiq_cli_fail("serve", "--max-body must be at least 64 bytes") + 1;
    if (o->timeout < 1) return phiq_cli_fail("serve", "--timeout must be at least 1 second") + 1;
    if (o->api_key && !*o->api_key) return phiq_cli_fail("serve", "--api-key is empty") + 1;
    return 0;
}

static void serve_cleanup(void) {
    for (int i = 0; srv.slots && i < srv.o.parallel; i++) {
        phiq_seq_free(srv.slots[i].seq);
        free(srv.slots[i].ids);
        phiq_sampler_free(srv.slots[i].smp);
    }
    free(srv.slots);
    free(srv.queue);
    phiq_context_free(srv.ctx);
    phiq_model_free(srv.m);
    phiq_tokenizer_free(srv.tok);
}

int phiq_cmd_serve(int argc, char **argv) {
    int rc = parse_serve(argc, argv, &srv.o);
    if (rc) return rc;
    serve_opts *o = &srv.o;
    /* SIGINT/SIGTERM are taken by sigwait below: block them before any thread starts */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    srv.tok = phiq_tokenizer_load(o->model, NULL);
    if (!srv.tok) return phiq_cli_fail("serve", "%s", phiq_error());
    phiq_model_params mp = {NULL, o->n_threads, (phiq_weights_mode)o->weights};
    srv.m = phiq_model_open(o->model, &mp);
    if (!srv.m) {
        serve_cleanup();
        return phiq_cli_fail("serve", "%s", phiq_error());
    }
    phiq_context_params cp = phiq_context_default_params();
    cp.n_ctx = o->n_ctx;
    cp.n_threads = o->n_threads;
    if (o->kv_type) {
        int kt = phiq_cli_kv_type(o->kv_type);
        if (kt < 0) {
            serve_cleanup();
            return phiq_cli_fail("serve", "unknown --kv-type %s (f16, f32, q8_0)", o->kv_type);
        }
        cp.kv_type = (phiq_kv_type)kt;
    }
    srv.ctx = phiq_context_new(srv.m, &cp);
    if (!srv.ctx) {
        serve_cleanup();
        return phiq_cli_fail("serve", "%s", phiq_error());
    }
    int train = phiq_model_n_ctx_train(srv.m);
    srv.n_ctx = o->n_ctx > 0 ? o->n_ctx : train < 4096 ? train : 4096;
    srv.n_vocab = phiq_tokenizer_n_vocab(srv.tok);
    if (srv.n_vocab <= 0 || srv.n_vocab > phiq_model_n_vocab(srv.m)) srv.n_vocab = phiq_model_n_vocab(srv.m);
    srv.have_tmpl = phiq_chat_template_from_tokenizer(srv.tok, &srv.tmpl) > 0;
    const char *base = strrchr(o->model_arg, '/'); /* the id's name, not a snapshot's commit */
    base = base && base[1] ? base + 1 : o->model_arg;
    snprintf(srv.name, sizeof srv.name, "%s", o->alias ? o->alias : base);
    srv.slots = calloc((size_t)o->parallel, sizeof *srv.slots);
    srv.queue = calloc((size_t)(o->queue + o->parallel) + 1, sizeof *srv.queue);
    if (!srv.slots || !srv.queue) {
        serve_cleanup();
        return phiq_cli_fail("serve", "out of memory");
    }
    for (int i = 0; i < o->parallel; i++) {
        srv.slots[i].seq = phiq_seq_new(srv.ctx);
        srv.slots[i].ids = malloc(sizeof(int32_t) * (size_t)(srv.n_ctx + 1));
        if (!srv.slots[i].seq || !srv.slots[i].ids) {
            serve_cleanup();
            return phiq_cli_fail("serve", "%s", srv.slots[i].seq ? "out of memory" : phiq_error());
        }
    }
    pthread_mutex_init(&srv.mu, NULL);
    pthread_cond_init(&srv.sched_cv, NULL);
    srv.started = phiq_now();
    srand((unsigned)(getpid() ^ (int)(phiq_now() * 1e3)));

    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port[16];
    snprintf(port, sizeof port, "%d", o->port);
    int gai = getaddrinfo(o->host, port, &hints, &ai);
    if (gai) {
        serve_cleanup();
        return phiq_cli_fail("serve", "--host %s: %s", o->host, gai_strerror(gai));
    }
    /* MHD_USE_ERROR_LOG: libmicrohttpd says on stderr why it dropped a
     * connection (connection limit, no thread, a socket error) */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)o->port, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->timeout,
        /* each connection is a thread holding at most one body: bounded memory */
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(o->parallel + o->queue + 32), MHD_OPTION_THREAD_STACK_SIZE,
        (size_t)(512 << 10), MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!d) {
        serve_cleanup();
        return phiq_cli_fail("serve", "cannot listen on %s port %d: %s", o->host, o->port,
                             errno ? strerror(errno) : "address in use or not available");
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int bound = di ? di->port : o->port;
    pthread_t th;
    if (pthread_create(&th, NULL, scheduler, NULL)) {
        MHD_stop_daemon(d);
        serve_cleanup();
        return phiq_cli_fail("serve", "cannot start the scheduler thread");
    }
    fprintf(stderr, "phiq serve: %s, %d slot%s of %d tokens, listening on http://%s%s%s:%d/ (Ctrl-C stops)\n",
            srv.name, o->parallel, o->parallel > 1 ? "s" : "", srv.n_ctx, strchr(o->host, ':') ? "[" : "", o->host,
            strchr(o->host, ':') ? "]" : "", bound);
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "phiq serve: %s: finishing\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    pthread_mutex_lock(&srv.mu);
    srv.stopping = 1;
    for (int i = 0; i < srv.q_len; i++) {
        job_fail_locked(srv.queue[i], 503, "the server is shutting down");
        job_unref_locked(srv.queue[i]);
    }
    srv.q_len = 0;
    pthread_cond_signal(&srv.sched_cv);
    pthread_mutex_unlock(&srv.mu);
    pthread_join(th, NULL);
    /* let the connections deliver the ends of their replies */
    for (double t0 = phiq_now(); phiq_now() - t0 < 5;) {
        pthread_mutex_lock(&srv.mu);
        long left = srv.n_jobs;
        pthread_mutex_unlock(&srv.mu);
        if (!left) break;
        usleep(20000);
    }
    MHD_stop_daemon(d);
    serve_cleanup();
    fprintf(stderr, "phiq serve: stopped\n");
    return 0;
}
