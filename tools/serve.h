/* serve.h — `phiq serve` (tools/cmd_serve.c): the OpenAI request parser
 * shared by the server and fuzz/fuzz_serve_req.c. */
#ifndef PHIQ_TOOLS_SERVE_H
#define PHIQ_TOOLS_SERVE_H

#include <stddef.h>
#include <stdint.h>

#define SERVE_MAX_STOP 4        /* OpenAI allows up to 4 stop sequences */
#define SERVE_MAX_MESSAGES 4096 /* the body cap bounds them anyway; this bounds the array */

typedef struct serve_msg {
    char *role;    /* "system", "user" or "assistant" */
    char *content; /* text (array-of-parts content is joined) */
} serve_msg;

/* One /v1/chat/completions or /v1/completions request. */
typedef struct serve_req {
    int chat;                 /* 1 chat.completions, 0 completions */
    serve_msg *msgs;          /* chat */
    int n_msgs;
    char *prompt;             /* completions */
    int max_tokens;           /* -1: until the context is full */
    float temperature, top_p; /* defaults (absent): 0.8 and 0.95, as phiq run and llama-server */
    float frequency_penalty, presence_penalty;
    int has_seed;
    uint64_t seed;
    char *stop[SERVE_MAX_STOP];
    int n_stop;
    int stream, include_usage;
} serve_req;

/* Parses a request body. On error returns -1 with a one-line message in
 * err and the offending field's name (as OpenAI's error "param", e.g.
 * "messages[1].content") in param, "" when not one field. */
int serve_req_parse(const char *body, size_t len, int chat, serve_req *r, char *err, size_t errcap, char *param,
                    size_t paramcap);
void serve_req_free(serve_req *r);
/* A client's string shown in a one-line message: at most cap-1 bytes,
 * control bytes as \xNN, cut with "..." when long. */
void serve_printable(const char *s, char *out, size_t cap);

#endif
