/* fuzz_template.c — libFuzzer target for the Jinja interpreter (src/template):
 * the input is a template source, a NUL byte, then JSON messages. The source
 * is parsed; when it parses it is rendered twice, once with the variables
 * phiq's chat code gives a template (messages spliced in, add_generation_prompt,
 * bos_token, eos_token — the splice may well be invalid JSON, which must be a
 * clean error) and once with the JSON after the NUL as the whole variable
 * object. Limits are tighter than the defaults so a runaway input fails fast;
 * a render that succeeds must return exactly len bytes with no NUL before it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "template/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void render(const phiq_tmpl *t, const char *vars) {
    const phiq_tmpl_limits lim = {.max_output = 1 << 20, .max_memory = 32 << 20, .max_steps = 200000};
    size_t len = 0;
    char *out = phiq_tmpl_render(t, vars, &lim, &len);
    if (out) {
        if (out[len] != 0 || len > lim.max_output) abort();
        free(out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t src_len = nul ? (size_t)(nul - data) : size;
    const char *json = nul ? (const char *)nul + 1 : "";
    size_t json_len = nul ? size - src_len - 1 : 0;

    phiq_tmpl *t = phiq_tmpl_parse((const char *)data, src_len);
    if (!t) return 0;
    static const char head[] = "{\"messages\":", tail[] = ",\"add_generation_prompt\":true,\"bos_token\":\"<s>\",\"eos_token\":\"</s>\"}";
    char *vars = malloc(sizeof head + json_len + sizeof tail);
    if (vars) {
        memcpy(vars, head, sizeof head - 1);
        memcpy(vars + sizeof head - 1, json, json_len);
        memcpy(vars + sizeof head - 1 + json_len, tail, sizeof tail); /* with the NUL */
        render(t, vars);
        /* the JSON part alone as the variables (json_len bytes, NUL-terminated copy) */
        memcpy(vars, json, json_len);
        vars[json_len] = 0;
        render(t, vars);
        free(vars);
    }
    phiq_tmpl_free(t);
    return 0;
}
