/* testutil_json.c — the test helpers that need cJSON, kept apart from testutil.c so the
 * kernel test cross-compiles for AArch64 (bench/neon-qemu.sh) without an arm64 cJSON. */
#include "testutil.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>

double tu_json_num(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(v)) fail_msg("missing number %s", key);
    return v->valuedouble;
}

void tu_edit_json(const char *path, void (*edit)(cJSON *)) {
    size_t n;
    char *txt = tu_read_all(path, &n);
    if (!txt) fail_msg("%s: cannot read", path);
    cJSON *c = cJSON_Parse(txt);
    free(txt);
    if (!c) fail_msg("%s: not JSON", path);
    edit(c);
    char *s = cJSON_Print(c);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(s, f);
    fclose(f);
    free(s);
    cJSON_Delete(c);
}

const char *tu_copy_checkpoint(const char *src, const char *name, void (*edit)(cJSON *)) {
    static char dir[4][4096];
    static int k;
    char *out = dir[k++ & 3];
    snprintf(out, sizeof dir[0], "%s", tu_tmp(name));
    assert_int_equal(tu_run(NULL, NULL, "rm -rf '%s' && cp -r '%s' '%s'", out, src, out), 0);
    if (edit) {
        char cp[4200];
        snprintf(cp, sizeof cp, "%s/config.json", out);
        tu_edit_json(cp, edit);
    }
    return out;
}
