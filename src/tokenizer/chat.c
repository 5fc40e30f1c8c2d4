/* chat.c — chat prompts (see chat.h): the checkpoint's template run by the
 * Jinja interpreter with apply_chat_template's variables, and the Phi formats
 * recognised by markers and rendered in C when there is no template. */
#include "tokenizer/chat.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "template/template.h"

static void set_defaults(phiq_chat_template *t, int format) {
    memset(t, 0, sizeof *t);
    t->format = format;
    strcpy(t->bos, "<s>");
    strcpy(t->eos, "<|endoftext|>");
}

/* Any tag "…|>" followed (after Jinja string glue: quotes, '+', spaces) by a
 * newline, written either as the two characters \n or as a real newline. */
static bool newline_after_tag(const char *s) {
    for (const char *p = strstr(s, "|>"); p; p = strstr(p + 2, "|>")) {
        const char *q = p + 2;
        while (*q == ' ' || *q == '\'' || *q == '"' || *q == '+') q++;
        if (*q == '\n' || (q[0] == '\\' && q[1] == 'n')) return true;
    }
    return false;
}

static int detect_markers(const char *j, phiq_chat_template *out);

int phiq_chat_template_detect(const char *j, phiq_chat_template *out) {
    if (!j) return phiq_fail(PHIQ_EUNSUPPORTED, "chat template: none");
    phiq_tmpl *parsed = phiq_tmpl_parse(j, strlen(j)); /* unsupported features are errors now, not at render */
    if (!parsed) {
        phiq_error_prefix("chat");
        return PHIQ_EUNSUPPORTED;
    }
    phiq_tmpl_free(parsed);
    int rc = detect_markers(j, out);
    if (rc < 0) {
        set_defaults(out, PHIQ_CHAT_JINJA);
        rc = PHIQ_CHAT_JINJA;
    }
    out->bos_in_template = strstr(j, "bos_token") != NULL;
    out->jinja = j;
    return rc;
}

/* The marker flags only matter where the template is not run (they tell the
 * C renderer and the BOS rule what the template would do). */
static int detect_markers(const char *j, phiq_chat_template *out) {
    bool gen = strstr(j, "add_generation_prompt") != NULL;
    if (strstr(j, "<|im_start|>") && strstr(j, "<|im_sep|>")) {
        set_defaults(out, PHIQ_CHAT_PHI4);
        out->assistant_after_user = !gen;
        out->bos_in_template = strstr(j, "bos_token") != NULL;
        out->eos_without_gen_prompt = strstr(j, "eos_token") != NULL;
        return out->format;
    }
    if (strstr(j, "<|end|>") && (strstr(j, "<|assistant|>") || strstr(j, "<|user|>") || strstr(j, "'<|' +"))) {
        set_defaults(out, newline_after_tag(j) ? PHIQ_CHAT_PHI3 : PHIQ_CHAT_PHI4_MINI);
        out->bos_in_template = strstr(j, "bos_token") != NULL;
        out->eos_without_gen_prompt = strstr(j, "eos_token") != NULL;
        out->assistant_after_user = !gen;
        bool generic_role = strstr(j, "message['role'] + '|>'") || strstr(j, "message.role + '|>'") ||
                            strstr(j, "message['role'] + \"|>\"");
        out->system_dropped = !strstr(j, "system") && !generic_role;
        out->system_if_nonempty = strstr(j, "'system' and message['content']") != NULL ||
                                  strstr(j, "\"system\" and message['content']") != NULL;
        out->gen_prompt_unless_assistant_last = strstr(j, "messages[-1]['role'] != 'assistant'") != NULL;
        return out->format;
    }
    return phiq_fail(PHIQ_EUNSUPPORTED, "chat template: not a known Phi format (no <|im_start|>/<|im_sep|> or <|end|> markers)");
}

int phiq_chat_template_named(const char *name, phiq_chat_template *out) {
    if (!strcmp(name, "phi3")) { /* llama.cpp's built-in: every role, generation prompt */
        set_defaults(out, PHIQ_CHAT_PHI3);
    } else if (!strcmp(name, "phi3.5")) {
        set_defaults(out, PHIQ_CHAT_PHI3);
        out->system_if_nonempty = true;
        out->eos_without_gen_prompt = true;
    } else if (!strcmp(name, "phi3-apr2024")) {
        set_defaults(out, PHIQ_CHAT_PHI3);
        out->bos_in_template = true;
        out->assistant_after_user = true;
        out->system_dropped = true;
    } else if (!strcmp(name, "phi4")) {
        set_defaults(out, PHIQ_CHAT_PHI4);
        strcpy(out->bos, "<|endoftext|>");
        strcpy(out->eos, "<|im_end|>");
    } else if (!strcmp(name, "phi4-mini")) {
        set_defaults(out, PHIQ_CHAT_PHI4_MINI);
        strcpy(out->bos, "<|endoftext|>");
        out->eos_without_gen_prompt = true;
    } else {
        return phiq_fail(PHIQ_EINVAL, "chat template: unknown name '%s' (phi3, phi3.5, phi3-apr2024, phi4, phi4-mini)", name);
    }
    return out->format;
}

int phiq_chat_template_from_tokenizer(const phiq_tokenizer *t, phiq_chat_template *out) {
    const char *j = phiq_tokenizer_chat_template(t);
    int rc;
    if (j) rc = phiq_chat_template_detect(j, out);
    else if (phiq_tokenizer_find(t, "<|im_sep|>") >= 0) rc = phiq_chat_template_named("phi4", out);
    else if (phiq_tokenizer_find(t, "<|end|>") >= 100000) rc = phiq_chat_template_named("phi4-mini", out);
    else if (phiq_tokenizer_find(t, "<|end|>") >= 0) rc = phiq_chat_template_named("phi3.5", out);
    else return phiq_fail(PHIQ_EUNSUPPORTED, "chat template: the tokenizer has none and no Phi chat tokens");
    if (rc < 0) return rc;
    const char *b = phiq_tokenizer_token_text(t, phiq_tokenizer_bos(t));
    const char *e = phiq_tokenizer_token_text(t, phiq_tokenizer_eos(t));
    if (b && strlen(b) < sizeof out->bos) strcpy(out->bos, b);
    if (e && strlen(e) < sizeof out->eos) strcpy(out->eos, e);
    return rc;
}

/* ---- Jinja rendering --------------------------------------------------------------- */
static int add_token_var(cJSON *vars, const char *key, const char *text) {
    if (!*text) return 0;
    return cJSON_AddStringToObject(vars, key, text) ? 0 : -1;
}

/* The variables transformers' render_jinja_template passes, as JSON text with
 * the messages and tools spliced in verbatim (so 1.0 stays a float). Both were
 * checked to be complete JSON values, so they cannot add keys of their own. */
static char *render_jinja(const phiq_chat_template *t, const char *messages_json, const char *tools_json, bool gen) {
    cJSON *vars = cJSON_CreateObject();
    char *head = NULL, *text = NULL;
    if (!vars || !cJSON_AddBoolToObject(vars, "add_generation_prompt", gen) || add_token_var(vars, "bos_token", t->bos) ||
        add_token_var(vars, "eos_token", t->eos) || add_token_var(vars, "unk_token", t->unk) ||
        add_token_var(vars, "pad_token", t->pad) || !cJSON_AddNullToObject(vars, "documents") ||
        !(head = cJSON_PrintUnformatted(vars))) {
        cJSON_Delete(vars);
        return phiq_fail_null(PHIQ_ENOMEM, "chat template: out of memory");
    }
    cJSON_Delete(vars);
    size_t hn = strlen(head), mn = strlen(messages_json), tn = tools_json ? strlen(tools_json) : 4;
    char *all = malloc(hn + mn + tn + 32);
    if (!all) {
        cJSON_free(head);
        return phiq_fail_null(PHIQ_ENOMEM, "chat template: out of memory");
    }
    head[hn - 1] = 0; /* drop the closing brace */
    sprintf(all, "%s,\"messages\":%s,\"tools\":%s}", head, messages_json, tools_json ? tools_json : "null");
    cJSON_free(head);
    phiq_tmpl *parsed = phiq_tmpl_parse(t->jinja, strlen(t->jinja));
    if (parsed) text = phiq_tmpl_render(parsed, all, NULL, NULL);
    if (!text) phiq_error_prefix("chat");
    phiq_tmpl_free(parsed);
    free(all);
    return text;
}

char *phiq_chat_render_json(const phiq_chat_template *t, const char *messages_json, const char *tools_json, bool gen) {
    cJSON *msgs = messages_json ? cJSON_ParseWithOpts(messages_json, NULL, true) : NULL;
    if (!cJSON_IsArray(msgs)) {
        cJSON_Delete(msgs);
        return phiq_fail_null(PHIQ_EINVAL, "chat messages: not a JSON array");
    }
    cJSON *tools = tools_json ? cJSON_ParseWithOpts(tools_json, NULL, true) : NULL;
    if (tools_json && !cJSON_IsArray(tools) && !cJSON_IsNull(tools)) {
        cJSON_Delete(msgs);
        cJSON_Delete(tools);
        return phiq_fail_null(PHIQ_EINVAL, "chat tools: not a JSON array");
    }
    cJSON_Delete(tools);
    char *out = NULL;
    if (t->jinja) {
        out = render_jinja(t, messages_json, tools_json, gen);
    } else { /* the C renderer: role and content strings only */
        int n = cJSON_GetArraySize(msgs), i = 0;
        phiq_chat_msg *m = calloc((size_t)n + 1, sizeof *m);
        if (!m) {
            cJSON_Delete(msgs);
            return phiq_fail_null(PHIQ_ENOMEM, "chat messages: out of memory");
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, msgs) {
            const cJSON *role = cJSON_GetObjectItemCaseSensitive(e, "role");
            const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
            const cJSON *tl = cJSON_GetObjectItemCaseSensitive(e, "tools");
            if (!cJSON_IsString(role) || !cJSON_IsString(content)) {
                free(m);
                cJSON_Delete(msgs);
                return phiq_fail_null(PHIQ_EINVAL, "chat messages: message %d needs string \"role\" and \"content\"", i);
            }
            m[i++] = (phiq_chat_msg){role->valuestring, content->valuestring, cJSON_IsString(tl) ? tl->valuestring : NULL};
        }
        out = phiq_chat_render(t, m, n, gen);
        free(m);
    }
    cJSON_Delete(msgs);
    return out;
}

static char *msgs_to_json(const phiq_chat_msg *m, int n) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o) || !cJSON_AddStringToObject(o, "role", m[i].role ? m[i].role : "user") ||
            !cJSON_AddStringToObject(o, "content", m[i].content ? m[i].content : "") ||
            (m[i].tools && !cJSON_AddStringToObject(o, "tools", m[i].tools))) {
            cJSON_Delete(arr);
            return NULL;
        }
    }
    char *s = arr ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    return s;
}

typedef struct sbuf {
    char *s;
    size_t n, cap;
    bool oom;
} sbuf;

static void put(sbuf *b, const char *s) {
    size_t l = strlen(s);
    if (b->oom) return;
    if (b->n + l + 1 > b->cap) {
        size_t nc = (b->n + l + 1) * 2;
        char *ns = realloc(b->s, nc);
        if (!ns) { b->oom = true; return; }
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->n, s, l + 1);
    b->n += l;
}

static void role_tag(sbuf *b, const char *role) {
    put(b, "<|");
    put(b, role);
    put(b, "|>");
}

char *phiq_chat_render(const phiq_chat_template *t, const phiq_chat_msg *m, int n, bool gen) {
    if (t->jinja) {
        char *js = msgs_to_json(m, n);
        if (!js) return phiq_fail_null(PHIQ_ENOMEM, "chat template: out of memory");
        char *out = render_jinja(t, js, NULL, gen);
        cJSON_free(js);
        return out;
    }
    sbuf b = {0};
    put(&b, "");
    if (t->bos_in_template) put(&b, t->bos);
    const char *nl = t->format == PHIQ_CHAT_PHI3 ? "\n" : "";
    for (int i = 0; i < n; i++) {
        const char *role = m[i].role ? m[i].role : "user";
        const char *content = m[i].content ? m[i].content : "";
        bool is_sys = !strcmp(role, "system"), is_user = !strcmp(role, "user"), is_asst = !strcmp(role, "assistant");
        if (t->format == PHIQ_CHAT_PHI4) {
            if (t->assistant_after_user && is_asst) {
                put(&b, content);
                put(&b, "<|im_end|>");
                continue;
            }
            put(&b, "<|im_start|>");
            put(&b, role);
            put(&b, "<|im_sep|>");
            put(&b, content);
            put(&b, "<|im_end|>");
            if (t->assistant_after_user && is_user) put(&b, "<|im_start|>assistant<|im_sep|>");
            continue;
        }
        /* PHI3 / PHI4_MINI */
        if (is_sys && (t->system_dropped || (t->system_if_nonempty && !*content))) continue;
        if (t->assistant_after_user && is_asst) {
            put(&b, content);
            put(&b, "<|end|>");
            put(&b, nl);
            continue;
        }
        role_tag(&b, role);
        put(&b, nl);
        put(&b, content);
        if (t->format == PHIQ_CHAT_PHI4_MINI && is_sys && m[i].tools) {
            put(&b, "<|tool|>");
            put(&b, m[i].tools);
            put(&b, "<|/tool|>");
        }
        put(&b, "<|end|>");
        put(&b, nl);
        if (t->assistant_after_user && is_user) {
            put(&b, "<|assistant|>");
            put(&b, nl);
        }
    }
    bool last_asst = n > 0 && m[n - 1].role && !strcmp(m[n - 1].role, "assistant");
    if (gen && !t->assistant_after_user && !(t->gen_prompt_unless_assistant_last && last_asst)) {
        if (t->format == PHIQ_CHAT_PHI4) put(&b, "<|im_start|>assistant<|im_sep|>");
        else {
            put(&b, "<|assistant|>");
            put(&b, nl);
        }
    } else if (!gen && t->eos_without_gen_prompt) {
        put(&b, t->eos);
    }
    if (b.oom) {
        free(b.s);
        return phiq_fail_null(PHIQ_ENOMEM, "chat template: out of memory");
    }
    return b.s;
}
