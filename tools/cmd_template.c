/* cmd_template.c — `phiq template`: prints the prompt a conversation becomes,
 * byte for byte, by running the checkpoint's own chat template (or one given
 * with --template) as transformers' apply_chat_template runs it. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/common.h"
#include "phiq.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

static void template_usage(FILE *f) {
    fprintf(f,
            "usage: phiq template [MODEL] --messages FILE [options]\n"
            "Prints the prompt the model receives for a conversation: the chat template run as\n"
            "transformers' apply_chat_template runs it (jinja2 sandbox, trim_blocks, lstrip_blocks).\n"
            "  MODEL                  GGUF file or Hugging Face directory: its template and bos/eos tokens\n"
            "                         (optional with --template)\n"
            "  --messages FILE        JSON array of messages ({\"role\": ..., \"content\": ..., ...}), or an\n"
            "                         object with \"messages\" (and \"tools\"), as an OpenAI request; - for stdin\n"
            "  --tools FILE           JSON array of tool schemas, passed to the template as `tools`\n"
            "  --template FILE        a Jinja template instead of the model's (chat_template.jinja style)\n"
            "  --no-generation-prompt add_generation_prompt=False (default True)\n"
            "  --bos-token S, --eos-token S  override the bos_token / eos_token variables\n"
            "  --json                 print {\"prompt\": ..., \"format\": ..., \"bos_added\": ...} instead\n"
            "                         (bos_added: phiq run/chat would also prepend BOS when tokenizing)\n");
}

static char *read_input(const char *path, const char *what) {
    char *buf = NULL;
    size_t len = 0;
    if (!strcmp(path, "-")) {
        size_t cap = 0;
        for (;;) {
            if (len + 4096 + 1 > cap) {
                cap = (len + 4096 + 1) * 2;
                char *nb = realloc(buf, cap);
                if (!nb) { free(buf); return NULL; }
                buf = nb;
            }
            size_t k = fread(buf + len, 1, 4096, stdin);
            len += k;
            if (k < 4096) break;
        }
        buf[len] = 0;
        return buf;
    }
    if (phiq_read_file(path, &buf, &len) < 0) {
        fprintf(stderr, "phiq template: %s: %s\n", what, phiq_error());
        return NULL;
    }
    return buf;
}

int phiq_cmd_template(int argc, char **argv) {
    const char *model = NULL, *messages = NULL, *tools = NULL, *tmpl_path = NULL, *bos = NULL, *eos = NULL;
    int gen = 1, json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (phiq_cli_is(a, "-h", "--help")) { template_usage(stdout); return 0; }
        else if (!strcmp(a, "--messages")) messages = phiq_cli_value(argc, argv, &i, "template");
        else if (!strcmp(a, "--tools")) tools = phiq_cli_value(argc, argv, &i, "template");
        else if (!strcmp(a, "--template") || !strcmp(a, "--chat-template-file")) tmpl_path = phiq_cli_value(argc, argv, &i, "template");
        else if (!strcmp(a, "--no-generation-prompt")) gen = 0;
        else if (!strcmp(a, "--bos-token")) bos = phiq_cli_value(argc, argv, &i, "template");
        else if (!strcmp(a, "--eos-token")) eos = phiq_cli_value(argc, argv, &i, "template");
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "-m")) model = phiq_cli_value(argc, argv, &i, "template");
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "phiq template: unknown option %s\n", a);
            template_usage(stderr);
            return 2;
        } else if (!model) model = a;
        else { fprintf(stderr, "phiq template: unexpected argument %s\n", a); return 2; }
    }
    if (!messages || (!model && !tmpl_path)) { template_usage(stderr); return 2; }
    if (model && !(model = phiq_cli_model_path("template", model))) return 1;

    int rc = 1;
    phiq_tokenizer *tok = NULL;
    char *tmpl_text = NULL, *msg_text = NULL, *tools_text = NULL, *msg_json = NULL, *tools_json = NULL, *out = NULL;
    cJSON *doc = NULL;
    phiq_chat_template ct;
    if (model && !(tok = phiq_tokenizer_load(model, NULL))) { phiq_cli_fail("template", "%s", phiq_error()); goto done; }
    if (tmpl_path) {
        if (!(tmpl_text = read_input(tmpl_path, "--template"))) goto done;
        if (phiq_chat_template_detect(tmpl_text, &ct) < 0) { phiq_cli_fail("template", "%s: %s", tmpl_path, phiq_error()); goto done; }
        if (tok) { /* the model's bos/eos */
            const char *b = phiq_tokenizer_token_text(tok, phiq_tokenizer_bos(tok));
            const char *e = phiq_tokenizer_token_text(tok, phiq_tokenizer_eos(tok));
            if (b && strlen(b) < sizeof ct.bos) strcpy(ct.bos, b);
            if (e && strlen(e) < sizeof ct.eos) strcpy(ct.eos, e);
        }
    } else if (phiq_chat_template_from_tokenizer(tok, &ct) < 0) {
        phiq_cli_fail("template", "%s: %s", model, phiq_error());
        goto done;
    }
    if (bos) snprintf(ct.bos, sizeof ct.bos, "%s", bos);
    if (eos) snprintf(ct.eos, sizeof ct.eos, "%s", eos);

    if (!(msg_text = read_input(messages, "--messages"))) goto done;
    if (!(doc = cJSON_Parse(msg_text))) { phiq_cli_fail("template", "%s: not valid JSON", messages); goto done; }
    const cJSON *arr = doc, *tl = NULL;
    if (cJSON_IsObject(doc)) { /* an OpenAI-style request body */
        arr = cJSON_GetObjectItemCaseSensitive(doc, "messages");
        tl = cJSON_GetObjectItemCaseSensitive(doc, "tools");
    }
    if (!cJSON_IsArray(arr)) { phiq_cli_fail("template", "%s: expected a JSON array of messages (or {\"messages\": [...]})", messages); goto done; }
    /* the array is spliced as written when it is the whole file (1.0 stays a float) */
    msg_json = arr == doc ? strdup(msg_text) : cJSON_PrintUnformatted(arr);
    if (tools) {
        if (!(tools_text = read_input(tools, "--tools"))) goto done;
        tools_json = strdup(tools_text);
    } else if (tl && !cJSON_IsNull(tl)) tools_json = cJSON_PrintUnformatted(tl);
    if (!msg_json || ((tools || tl) && !tools_json && !(tl && cJSON_IsNull(tl)))) { phiq_cli_fail("template", "out of memory"); goto done; }
    out = phiq_chat_render_json(&ct, msg_json, tools_json, gen);
    if (!out) { phiq_cli_fail("template", "%s", phiq_error()); goto done; }
    if (json) {
        static const char *const fmt[] = {"none", "phi3", "phi4", "phi4-mini", "jinja"};
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "prompt", out);
        cJSON_AddStringToObject(o, "format", ct.format >= 0 && ct.format <= 4 ? fmt[ct.format] : "?");
        cJSON_AddBoolToObject(o, "bos_added", tok && !ct.bos_in_template && phiq_tokenizer_add_bos(tok));
        char *s = cJSON_Print(o);
        cJSON_Delete(o);
        if (!s) { phiq_cli_fail("template", "out of memory"); goto done; }
        printf("%s\n", s);
        cJSON_free(s);
    } else {
        fwrite(out, 1, strlen(out), stdout);
    }
    rc = fflush(stdout) ? phiq_cli_fail("template", "cannot write the prompt") : 0;
done:
    cJSON_Delete(doc);
    free(out);
    free(msg_json);
    free(tools_json);
    free(tools_text);
    free(msg_text);
    free(tmpl_text);
    phiq_tokenizer_free(tok);
    return rc;
}
