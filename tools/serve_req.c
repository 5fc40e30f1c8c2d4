/* serve_req.c — the OpenAI request body (JSON, through cJSON) of `phiq
 * serve` turned into a serve_req, refusing malformed JSON and wrong field
 * types with the field's name. Fields phiq does not use (model, user,
 * logit_bias, ...) are accepted and ignored, as clients send them. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "serve.h"

typedef struct {
    char *err, *param;
    size_t errcap, paramcap;
} perr;

__attribute__((format(printf, 3, 4))) static int bad(perr *e, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err, e->errcap, fmt, ap);
    va_end(ap);
    snprintf(e->param, e->paramcap, "%s", param);
    return -1;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* A number field in [lo, hi] (absent or null keeps *out). */
static int get_num(const cJSON *o, const char *name, double lo, double hi, double *out, perr *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return bad(e, name, "'%s' must be a number", name);
    if (v->valuedouble < lo || v->valuedouble > hi) return bad(e, name, "'%s' must be between %g and %g", name, lo, hi);
    *out = v->valuedouble;
    return 1;
}

static int get_int(const cJSON *o, const char *name, double lo, double hi, double *out, perr *e) {
    int k = get_num(o, name, lo, hi, out, e);
    if (k > 0 && *out != floor(*out)) return bad(e, name, "'%s' must be an integer", name);
    return k;
}

static int get_bool(const cJSON *o, const char *name, int *out, perr *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) return bad(e, name, "'%s' must be true or false", name);
    *out = cJSON_IsTrue(v);
    return 1;
}

/* Message content: a string, or an array of {"type":"text","text":...}
 * parts (joined), or null for an assistant message. */
static char *content_text(const cJSON *c, const char *param, perr *e) {
    if (!c || cJSON_IsNull(c)) return dup_str("");
    if (cJSON_IsString(c)) return dup_str(c->valuestring);
    if (!cJSON_IsArray(c)) {
        bad(e, param, "'%s' must be a string or an array of text parts", param);
        return NULL;
    }
    size_t len = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, c) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(p, "type"), *tx = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (!cJSON_IsObject(p) || !cJSON_IsString(ty) || strcmp(ty->valuestring, "text") || !cJSON_IsString(tx)) {
            bad(e, param, "'%s' parts must be {\"type\": \"text\", \"text\": \"...\"} (phiq serves text only)", param);
            return NULL;
        }
        len += strlen(tx->valuestring);
    }
    char *s = malloc(len + 1), *q = s;
    if (!s) return NULL;
    cJSON_ArrayForEach(p, c) {
        const char *t = cJSON_GetObjectItemCaseSensitive(p, "text")->valuestring;
        size_t n = strlen(t);
        memcpy(q, t, n);
        q += n;
    }
    *q = 0;
    return s;
}

static int parse_messages(const cJSON *root, serve_req *r, perr *e) {
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!ms) return bad(e, "messages", "'messages' is required");
    if (!cJSON_IsArray(ms)) return bad(e, "messages", "'messages' must be an array of {role, content} objects");
    int n = cJSON_GetArraySize(ms);
    if (n == 0) return bad(e, "messages", "'messages' is empty");
    if (n > SERVE_MAX_MESSAGES) return bad(e, "messages", "'messages' has %d entries (at most %d)", n, SERVE_MAX_MESSAGES);
    r->msgs = calloc((size_t)n, sizeof *r->msgs);
    if (!r->msgs) return bad(e, "", "out of memory");
    const cJSON *m;
    cJSON_ArrayForEach(m, ms) {
        char param[64];
        int i = r->n_msgs;
        snprintf(param, sizeof param, "messages[%d]", i);
        if (!cJSON_IsObject(m)) return bad(e, param, "'%s' must be an object", param);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        snprintf(param, sizeof param, "messages[%d].role", i);
        if (!cJSON_IsString(role)) return bad(e, param, "'%s' must be a string", param);
        /* "developer" is OpenAI's newer name for the system role */
        const char *rn = role->valuestring;
        if (!strcmp(rn, "developer")) rn = "system";
        if (strcmp(rn, "system") && strcmp(rn, "user") && strcmp(rn, "assistant")) {
            char shown[48];
            serve_printable(rn, shown, sizeof shown);
            return bad(e, param, "'%s' is '%s'; phiq serves system, user and assistant messages", param, shown);
        }
        snprintf(param, sizeof param, "messages[%d].content", i);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!c && strcmp(rn, "assistant")) return bad(e, param, "'%s' is required", param);
        r->msgs[i].role = dup_str(rn);
        r->msgs[i].content = content_text(c, param, e);
        r->n_msgs++;
        if (!r->msgs[i].role || !r->msgs[i].content) return e->err[0] ? -1 : bad(e, "", "out of memory");
    }
    return 0;
}

static int parse_stop(const cJSON *root, serve_req *r, perr *e) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (!s || cJSON_IsNull(s)) return 0;
    if (cJSON_IsString(s)) {
        if (!s->valuestring[0]) return 0;
        r->stop[r->n_stop++] = dup_str(s->valuestring);
        return r->stop[0] ? 0 : bad(e, "", "out of memory");
    }
    if (!cJSON_IsArray(s)) return bad(e, "stop", "'stop' must be a string or an array of strings");
    if (cJSON_GetArraySize(s) > SERVE_MAX_STOP) return bad(e, "stop", "'stop' has more than %d sequences", SERVE_MAX_STOP);
    const cJSON *x;
    cJSON_ArrayForEach(x, s) {
        if (!cJSON_IsString(x)) return bad(e, "stop", "'stop' must be a string or an array of strings");
        if (!x->valuestring[0]) continue;
        if (!(r->stop[r->n_stop++] = dup_str(x->valuestring))) return bad(e, "", "out of memory");
    }
    return 0;
}

int serve_req_parse(const char *body, size_t len, int chat, serve_req *r, char *err, size_t errcap, char *param,
                    size_t paramcap) {
    perr e = {err, param, errcap, paramcap};
    memset(r, 0, sizeof *r);
    err[0] = 0;
    param[0] = 0;
    r->chat = chat;
    r->max_tokens = -1;
    r->temperature = 0.8f;
    r->top_p = 0.95f;
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) return bad(&e, "", "the body is not valid JSON");
    int rc = -1;
    double d;
    if (!cJSON_IsObject(root)) {
        bad(&e, "", "the body must be a JSON object");
        goto done;
    }
    if (chat) {
        if (parse_messages(root, r, &e) < 0) goto done;
    } else {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
        /* a list of one prompt is the same request; phiq serves one choice */
        if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(cJSON_GetArrayItem(p, 0)))
            p = cJSON_GetArrayItem(p, 0);
        if (!p) {
            bad(&e, "prompt", "'prompt' is required");
            goto done;
        }
        if (!cJSON_IsString(p)) {
            bad(&e, "prompt", "'prompt' must be a string");
            goto done;
        }
        if (!(r->prompt = dup_str(p->valuestring))) {
            bad(&e, "", "out of memory");
            goto done;
        }
    }
    int k;
    if ((k = get_int(root, "max_tokens", 0, 1 << 30, &d, &e)) < 0) goto done;
    if (k) r->max_tokens = (int)d;
    if ((k = get_int(root, "max_completion_tokens", 0, 1 << 30, &d, &e)) < 0) goto done;
    if (k) r->max_tokens = (int)d;
    if ((k = get_num(root, "temperature", 0, 2, &d, &e)) < 0) goto done;
    if (k) r->temperature = (float)d;
    if ((k = get_num(root, "top_p", 0, 1, &d, &e)) < 0) goto done;
    if (k) r->top_p = (float)d;
    if ((k = get_num(root, "frequency_penalty", -2, 2, &d, &e)) < 0) goto done;
    if (k) r->frequency_penalty = (float)d;
    if ((k = get_num(root, "presence_penalty", -2, 2, &d, &e)) < 0) goto done;
    if (k) r->presence_penalty = (float)d;
    if ((k = get_int(root, "seed", -9007199254740991.0, 9007199254740991.0, &d, &e)) < 0) goto done;
    if (k) {
        r->has_seed = 1;
        r->seed = (uint64_t)(int64_t)d;
    }
    if ((k = get_int(root, "n", 1, 1, &d, &e)) < 0) {
        bad(&e, "n", "'n' must be 1 (phiq serves one choice per request)");
        goto done;
    }
    if (parse_stop(root, r, &e) < 0) goto done;
    if (get_bool(root, "stream", &r->stream, &e) < 0) goto done;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so)) {
            bad(&e, "stream_options", "'stream_options' must be an object");
            goto done;
        }
        if (get_bool(so, "include_usage", &r->include_usage, &e) < 0) {
            snprintf(param, paramcap, "stream_options.include_usage");
            goto done;
        }
    }
    rc = 0;
done:
    cJSON_Delete(root);
    if (rc < 0) serve_req_free(r);
    return rc;
}

void serve_req_free(serve_req *r) {
    for (int i = 0; i < r->n_msgs; i++) {
        free(r->msgs[i].role);
        free(r->msgs[i].content);
    }
    free(r->msgs);
    free(r->prompt);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    memset(r, 0, sizeof *r);
}

void serve_printable(const char *s, char *out, size_t cap) {
    size_t o = 0;
    if (!cap) return;
    for (; *s && o + 5 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f) o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        else out[o++] = (char)c;
    }
    if (*s && cap >= 4) {
        o = o + 4 <= cap ? o : cap - 4;
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = 0;
}
