/* testutil_json.c — the test helpers that need cJSON, kept apart from testutil.c so the
 * kernel test cross-compiles for AArch64 (bench/neon-qemu.sh) without an arm64 cJSON. */
#include "testutil.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>

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
