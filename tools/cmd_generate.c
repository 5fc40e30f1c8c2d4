/* cmd_generate.c — `phiq run` (one prompt, streamed continuation) and
 * `phiq chat` (interactive multi-turn chat that keeps the KV cache between
 * turns). Both share the option parser, the loading of model + tokenizer and
 * the generation loop below. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/common.h"
#include "phiq.h"
#include "tokenizer/chat.h"
#include "tokenizer/sample.h"
#include "tokenizer/tokenizer.h"

typedef struct gen_opts {
    const char *model, *prompt, *system, *kv_type;
    int weights; /* phiq_weights_mode */
    int n_predict, n_ctx, n_threads, chat, json, no_special;
    phiq_sampler_params sp;
} gen_opts;

/* Ctrl-C stops the reply being generated, not the program (chat). */
static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

static void gen_usage(FILE *f, const char *cmd) {
    if (!strcmp(cmd, "run"))
        fprintf(f, "usage: phiq run MODEL -p PROMPT [options]\n\n"
                   "Generates a continuation of PROMPT (or, with --chat, the assistant's reply to it rendered\n"
                   "through the model's chat template) and streams it to stdout.\n\n");
    else
        fprintf(f, "usage: phiq chat MODEL [options]\n\n"
                   "Interactive multi-turn chat. The KV cache is kept between turns, so only new tokens are\n"
                   "evaluated. Type /clear to start over, /exit (or Ctrl-D) to leave; Ctrl-C stops the current\n"
                   "reply.\n\n");
    fprintf(f, "  MODEL, -m FILE        a GGUF file or a Hugging Face checkpoint directory\n"
               "  -p, --prompt TEXT     the prompt (run) or a first user message (chat)\n"
               "  -n, --n-predict N     tokens to generate at most (default 256; run stops earlier at a stop token)\n"
               "  --chat                (run) render the prompt with the model's chat template\n"
               "  --system TEXT         system message for the chat template\n"
               "  --temp T              temperature (default 0.8; 0 = greedy)\n"
               "  --top-k K             keep the K most likely tokens (default 40; 0 = off)\n"
               "  --top-p P             nucleus sampling (default 0.95; 1 = off)\n"
               "  --min-p P             drop tokens below P x the top probability (default 0.05; 0 = off)\n"
               "  --repeat-penalty R    penalize recent tokens (default 1.0 = off)\n"
               "  --repeat-last-n N     window of the penalties (default 64)\n"
               "  --frequency-penalty F, --presence-penalty P   OpenAI-style penalties (default 0)\n"
               "  --seed S              sampling seed (default: random); same seed, same output\n"
               "  -t, --threads N       threads (default: physical cores)\n"
               "  -c, --ctx-size N      context length (default: min(model's, 4096))\n"
               "  --kv-type T           KV cache type: f16 (default), f32 or q8_0 (34 bytes per 32 values,\n"
               "                        47%% less memory than f16; needs head_dim a multiple of 32)\n"
               PHIQ_CLI_WEIGHTS_HELP
               "  --no-special          treat special-token text in the prompt as plain text\n"
               "  --json                (run) print one JSON object instead of streaming text\n"
               "  -h, --help            this help\n");
}

static int parse_gen(int argc, char **argv, const char *cmd, gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_predict = 256;
    o->sp = phiq_sampler_default_params();
    o->sp.temp = 0.8f;
    o->sp.top_k = 40;
    o->sp.top_p = 0.95f;
    o->sp.min_p = 0.05f;
    o->sp.repeat_penalty = 1.0f;
    o->sp.penalty_last_n = 64;
    o->sp.seed = ((uint64_t)getpid() << 32) ^ (uint64_t)(phiq_now() * 1e6);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define VAL() phiq_cli_value(argc, argv, &i, cmd)
        if (phiq_cli_is(a, "-h", "--help")) { gen_usage(stdout, cmd); exit(0); }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) o->model = VAL();
        else if (phiq_cli_is(a, "-p", "--prompt")) o->prompt = VAL();
        else if (phiq_cli_is(a, "-n", "--n-predict")) o->n_predict = atoi(VAL());
        else if (!strcmp(a, "--chat")) o->chat = 1;
        else if (!strcmp(a, "--system")) o->system = VAL();
        else if (!strcmp(a, "--temp")) o->sp.temp = (float)atof(VAL());
        else if (!strcmp(a, "--top-k")) o->sp.top_k = atoi(VAL());
        else if (!strcmp(a, "--top-p")) o->sp.top_p = (float)atof(VAL());
        else if (!strcmp(a, "--min-p")) o->sp.min_p = (float)atof(VAL());
        else if (!strcmp(a, "--repeat-penalty")) o->sp.repeat_penalty = (float)atof(VAL());
        else if (!strcmp(a, "--repeat-last-n")) o->sp.penalty_last_n = atoi(VAL());
        else if (!strcmp(a, "--frequency-penalty")) o->sp.freq_penalty = (float)atof(VAL());
        else if (!strcmp(a, "--presence-penalty")) o->sp.presence_penalty = (float)atof(VAL());
        else if (!strcmp(a, "--seed") || !strcmp(a, "-s")) o->sp.seed = strtoull(VAL(), NULL, 10);
        else if (phiq_cli_is(a, "-t", "--threads")) o->n_threads = atoi(VAL());
        else if (phiq_cli_is(a, "-c", "--ctx-size")) o->n_ctx = atoi(VAL());
        else if (!strcmp(a, "--kv-type")) o->kv_type = VAL();
        else if (phiq_cli_weights_flag(a, &o->weights)) continue;
        else if (!strcmp(a, "--no-special")) o->no_special = 1;
        else if (!strcmp(a, "--json")) o->json = 1;
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "phiq %s: unknown option %s\n", cmd, a);
            gen_usage(stderr, cmd);
            return 2;
        } else if (!o->model) o->model = a;
        else if (!o->prompt) o->prompt = a;
        else { fprintf(stderr, "phiq %s: unexpected argument %s\n", cmd, a); return 2; }
#undef VAL
    }
    if (!o->model) { gen_usage(stderr, cmd); return 2; }
    if (!(o->model = phiq_cli_model_path(cmd, o->model))) return 1;
    if (o->n_predict < 0) o->n_predict = 1 << 30;
    return 0;
}

typedef struct session {
    phiq_model *m;
    phiq_tokenizer *tok;
    phiq_context *ctx;
    phiq_sampler *smp;
    phiq_chat_template tmpl;
    int have_tmpl;
    int n_ctx, n_vocab;
    int32_t *cache;   /* ids currently in the KV cache, in order */
    int n_cache;
} session;

static int session_open(session *s, const gen_opts *o, const char *cmd) {
    memset(s, 0, sizeof *s);
    s->tok = phiq_tokenizer_load(o->model, NULL);
    if (!s->tok) return phiq_cli_fail(cmd, "%s", phiq_error());
    phiq_model_params mp = {NULL, o->n_threads, (phiq_weights_mode)o->weights};
    s->m = phiq_model_open(o->model, &mp);
    if (!s->m) return phiq_cli_fail(cmd, "%s", phiq_error());
    phiq_context_params cp = phiq_context_default_params();
    cp.n_ctx = o->n_ctx;
    cp.n_threads = o->n_threads;
    if (o->kv_type) {
        int kt = phiq_cli_kv_type(o->kv_type);
        if (kt < 0) return phiq_cli_fail(cmd, "unknown --kv-type %s (f16, f32, q8_0)", o->kv_type);
        cp.kv_type = (phiq_kv_type)kt;
    }
    s->ctx = phiq_context_new(s->m, &cp);
    if (!s->ctx) return phiq_cli_fail(cmd, "%s", phiq_error());
    s->n_ctx = o->n_ctx > 0 ? o->n_ctx : phiq_cli_default_ctx(s->m, 4096);
    /* sample only real vocabulary entries, never the padding rows of the embedding */
    s->n_vocab = phiq_tokenizer_n_vocab(s->tok);
    if (s->n_vocab <= 0 || s->n_vocab > phiq_model_n_vocab(s->m)) s->n_vocab = phiq_model_n_vocab(s->m);
    s->smp = phiq_sampler_new(&o->sp);
    s->cache = malloc(sizeof(int32_t) * (size_t)(s->n_ctx + 1));
    if (!s->smp || !s->cache) return phiq_cli_fail(cmd, "out of memory");
    s->have_tmpl = phiq_chat_template_from_tokenizer(s->tok, &s->tmpl) > 0; /* returns the format */
    return 0;
}

static void session_close(session *s) {
    phiq_sampler_free(s->smp);
    phiq_context_free(s->ctx);
    phiq_model_free(s->m);
    phiq_tokenizer_free(s->tok);
    free(s->cache);
}

/* Makes the KV cache hold exactly ids[0..n): keeps the common prefix, drops the
 * rest, evaluates only the new tokens. */
static int session_sync(session *s, const int32_t *ids, int n) {
    if (n > s->n_ctx) return phiq_fail(PHIQ_ERANGE, "context full: %d tokens do not fit in -c %d", n, s->n_ctx);
    int keep = 0;
    while (keep < s->n_cache && keep < n && s->cache[keep] == ids[keep]) keep++;
    if (keep == n && keep > 0) keep--; /* re-evaluate the last token to get its logits */
    int rc = phiq_context_truncate(s->ctx, keep);
    if (rc < 0) return rc;
    s->n_cache = keep;
    if ((rc = phiq_eval(s->ctx, ids + keep, n - keep)) < 0) return rc;
    memcpy(s->cache + keep, ids + keep, sizeof(int32_t) * (size_t)(n - keep));
    s->n_cache = n;
    return 0;
}

static int32_t *tokenize_all(session *s, const char *text, int add_bos, int special, int *n) {
    int cap = (int)strlen(text) + 8;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    if (!ids) return NULL;
    int k = phiq_tokenize_text(s->tok, text, strlen(text), add_bos, special, ids, cap);
    if (k > cap) {
        int32_t *more = realloc(ids, sizeof(int32_t) * (size_t)k);
        if (!more) { free(ids); return NULL; }
        ids = more;
        k = phiq_tokenize_text(s->tok, text, strlen(text), add_bos, special, ids, k);
    }
    if (k < 0) { free(ids); return NULL; }
    *n = k;
    return ids;
}

typedef struct gen_result {
    int32_t *ids;
    int n;
    char *text;
    size_t text_len, text_cap; /* grown geometrically: no allocation per token */
    const char *stop; /* "eos", "length", "interrupted", "context" */
    double prefill_s, decode_s;
} gen_result;

static void text_append(gen_result *r, const char *p, int n) {
    if (r->text_len + (size_t)n + 1 > r->text_cap) {
        size_t cap = r->text_cap ? r->text_cap : 256;
        while (cap < r->text_len + (size_t)n + 1) cap *= 2;
        char *t = realloc(r->text, cap);
        if (!t) return;
        r->text = t;
        r->text_cap = cap;
    }
    memcpy(r->text + r->text_len, p, (size_t)n);
    r->text_len += (size_t)n;
    r->text[r->text_len] = 0;
}

/* Evaluates the prompt ids (reusing the cache), then samples until a stop
 * token, n_predict tokens, a full context or Ctrl-C. stream: print as it goes. */
static int generate(session *s, const int32_t *prompt, int n_prompt, int n_predict, int stream, int reply, gen_result *r) {
    memset(r, 0, sizeof *r);
    r->ids = malloc(sizeof(int32_t) * (size_t)(n_predict > 0 && n_predict < s->n_ctx ? n_predict : s->n_ctx) + 4);
    if (!r->ids) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    double t0 = phiq_now();
    int rc = session_sync(s, prompt, n_prompt);
    if (rc < 0) { r->stop = "context"; return rc; }
    r->prefill_s = phiq_now() - t0;
    phiq_sampler_reset(s->smp);
    for (int i = 0; i < n_prompt; i++) phiq_sampler_accept(s->smp, prompt[i]);
    phiq_detok d;
    phiq_detok_init(&d, s->tok, 1);
    d.at_start = reply; /* a chat reply starts fresh (SPM drops its leading space); a continuation keeps it */
    char buf[1024];
    double t1 = phiq_now();
    r->stop = "length";
    for (int i = 0; i < n_predict; i++) {
        if (interrupted) { r->stop = "interrupted"; break; }
        int32_t id = phiq_sampler_sample(s->smp, phiq_logits(s->ctx), s->n_vocab);
        if (phiq_tokenizer_is_eog(s->tok, id)) { r->stop = "eos"; break; }
        r->ids[r->n++] = id;
        phiq_sampler_accept(s->smp, id);
        int k = phiq_detok_push(&d, id, buf, sizeof buf);
        if (k > 0) {
            text_append(r, buf, k);
            if (stream) { fwrite(buf, 1, (size_t)k, stdout); fflush(stdout); }
        }
        if (i + 1 == n_predict) break;
        if (s->n_cache + 1 > s->n_ctx) { r->stop = "context"; break; }
        if ((rc = phiq_eval(s->ctx, &id, 1)) < 0) return rc;
        s->cache[s->n_cache++] = id;
    }
    int k = phiq_detok_flush(&d, buf, sizeof buf);
    if (k > 0) {
        text_append(r, buf, k);
        if (stream) fwrite(buf, 1, (size_t)k, stdout);
    }
    r->decode_s = phiq_now() - t1;
    if (!r->text) text_append(r, "", 0);
    return 0;
}

static void json_ids(FILE *f, const int32_t *ids, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, i ? ", %d" : "%d", ids[i]);
    fputc(']', f);
}

/* The prompt as ids: raw text, or a single user turn through the template. */
static int32_t *prompt_ids(session *s, const gen_opts *o, const char *cmd, int *n) {
    if (!o->chat) {
        int32_t *ids = tokenize_all(s, o->prompt ? o->prompt : "", phiq_tokenizer_add_bos(s->tok), !o->no_special, n);
        if (!ids) phiq_cli_fail(cmd, "%s", phiq_error());
        return ids;
    }
    if (!s->have_tmpl) { phiq_cli_fail(cmd, "%s has no chat template phiq recognises (use run without --chat)", o->model); return NULL; }
    phiq_chat_msg msgs[2];
    int nm = 0;
    if (o->system) msgs[nm++] = (phiq_chat_msg){"system", o->system, NULL};
    msgs[nm++] = (phiq_chat_msg){"user", o->prompt ? o->prompt : "", NULL};
    char *text = phiq_chat_render(&s->tmpl, msgs, nm, true);
    if (!text) { phiq_cli_fail(cmd, "%s", phiq_error()); return NULL; }
    int32_t *ids = tokenize_all(s, text, !s->tmpl.bos_in_template && phiq_tokenizer_add_bos(s->tok), 1, n);
    free(text);
    if (!ids) phiq_cli_fail(cmd, "%s", phiq_error());
    return ids;
}

int phiq_cmd_run(int argc, char **argv) {
    gen_opts o;
    int rc = parse_gen(argc, argv, "run", &o);
    if (rc) return rc;
    if (!o.prompt) { gen_usage(stderr, "run"); return 2; }
    session s;
    if (session_open(&s, &o, "run")) { session_close(&s); return 1; }
    int n;
    int32_t *ids = prompt_ids(&s, &o, "run", &n);
    if (!ids) { session_close(&s); return 1; }
    if (n + 1 > s.n_ctx) {
        free(ids);
        session_close(&s);
        return phiq_cli_fail("run", "the prompt has %d tokens; it does not fit in a context of %d (-c)", n, s.n_ctx);
    }
    signal(SIGINT, on_sigint);
    gen_result r;
    rc = generate(&s, ids, n, o.n_predict, !o.json, o.chat, &r);
    if (rc < 0) {
        free(ids); free(r.ids); free(r.text);
        session_close(&s);
        return phiq_cli_fail("run", "%s", phiq_error());
    }
    if (o.json) {
        printf("{\"prompt_ids\": ");
        json_ids(stdout, ids, n);
        printf(", \"ids\": ");
        json_ids(stdout, r.ids, r.n);
        printf(", \"text\": \"");
        phiq_cli_put_escaped(stdout, r.text, (int)r.text_len, 1); /* the detokenizer's text is whole UTF-8 characters */
        printf("\", \"stop\": \"%s\", \"prefill_tok_s\": %.3f, \"decode_tok_s\": %.3f}\n",
               !strcmp(r.stop, "eos") ? "eos" : "length", r.prefill_s > 0 ? n / r.prefill_s : 0,
               r.decode_s > 0 && r.n > 1 ? (r.n - 1) / r.decode_s : 0);
    } else {
        printf("\n");
        fprintf(stderr, "\nphiq run: %d prompt tokens (%.1f tok/s), %d generated (%.1f tok/s), stop: %s\n", n,
                r.prefill_s > 0 ? n / r.prefill_s : 0, r.n, r.decode_s > 0 && r.n > 1 ? (r.n - 1) / r.decode_s : 0, r.stop);
    }
    free(ids); free(r.ids); free(r.text);
    session_close(&s);
    return 0;
}

/* ---- chat ------------------------------------------------------------------------ */
typedef struct history {
    phiq_chat_msg *m;
    char **owned;
    int n, cap;
} history;

static void hist_add(history *h, const char *role, const char *content) {
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->m = realloc(h->m, sizeof *h->m * (size_t)h->cap);
        h->owned = realloc(h->owned, sizeof *h->owned * (size_t)h->cap);
    }
    h->owned[h->n] = strdup(content);
    h->m[h->n] = (phiq_chat_msg){role, h->owned[h->n], NULL};
    h->n++;
}

static void hist_clear(history *h, int keep) {
    for (int i = keep; i < h->n; i++) free(h->owned[i]);
    h->n = keep;
}

int phiq_cmd_chat(int argc, char **argv) {
    gen_opts o;
    int rc = parse_gen(argc, argv, "chat", &o);
    if (rc) return rc;
    session s;
    if (session_open(&s, &o, "chat")) { session_close(&s); return 1; }
    if (!s.have_tmpl) {
        session_close(&s);
        return phiq_cli_fail("chat", "%s has no chat template phiq recognises", o.model);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint; /* no SA_RESTART: Ctrl-C at the prompt interrupts fgets */
    sigaction(SIGINT, &sa, NULL);
    history h = {0};
    if (o.system) hist_add(&h, "system", o.system);
    const int base = h.n;
    int tty = isatty(0);
    if (tty) fprintf(stderr, "phiq chat: /clear starts over, /exit or Ctrl-D leaves, Ctrl-C stops a reply\n");
    char *line = NULL;
    size_t cap = 0;
    const char *first = o.prompt;
    for (;;) {
        const char *user;
        if (first) {
            user = first;
            first = NULL;
            if (tty) fprintf(stderr, "> %s\n", user);
        } else {
            if (tty) { fprintf(stderr, "> "); fflush(stderr); }
            interrupted = 0;
            errno = 0;
            ssize_t k = getline(&line, &cap, stdin);
            if (k < 0) {
                if (errno == EINTR && interrupted) { fputc('\n', stderr); clearerr(stdin); continue; }
                break;
            }
            while (k > 0 && (line[k - 1] == '\n' || line[k - 1] == '\r')) line[--k] = 0;
            if (!k) continue;
            if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
            if (!strcmp(line, "/clear")) {
                hist_clear(&h, base);
                phiq_context_truncate(s.ctx, 0);
                s.n_cache = 0;
                fprintf(stderr, "(conversation cleared)\n");
                continue;
            }
            user = line;
        }
        hist_add(&h, "user", user);
        char *text = phiq_chat_render(&s.tmpl, h.m, h.n, true);
        int n = 0;
        int32_t *ids = text ? tokenize_all(&s, text, !s.tmpl.bos_in_template && phiq_tokenizer_add_bos(s.tok), 1, &n) : NULL;
        free(text);
        if (!ids) { rc = phiq_cli_fail("chat", "%s", phiq_error()); break; }
        if (n + 1 >= s.n_ctx) {
            fprintf(stderr, "phiq chat: context full (%d tokens of %d): type /clear to start over, or use a larger -c\n",
                    n, s.n_ctx);
            hist_clear(&h, h.n - 1);
            free(ids);
            continue;
        }
        int budget = s.n_ctx - n - 1;
        interrupted = 0;
        gen_result r;
        rc = generate(&s, ids, n, o.n_predict < budget ? o.n_predict : budget, 1, 1, &r);
        free(ids);
        printf("\n");
        fflush(stdout);
        if (rc < 0) {
            free(r.ids); free(r.text);
            rc = phiq_cli_fail("chat", "%s", phiq_error());
            break;
        }
        if (!strcmp(r.stop, "interrupted")) fprintf(stderr, "(stopped)\n");
        else if (!strcmp(r.stop, "context"))
            fprintf(stderr, "phiq chat: context full (%d tokens): type /clear to start over, or use a larger -c\n", s.n_ctx);
        hist_add(&h, "assistant", r.text ? r.text : "");
        free(r.ids);
        free(r.text);
        rc = 0;
    }
    free(line);
    hist_clear(&h, 0);
    free(h.m);
    free(h.owned);
    session_close(&s);
    return rc;
}
