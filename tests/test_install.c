/* test_install.c — `make install` gives a usable library: install the build
 * into a scratch prefix, compile a program against phiq.h with the flags
 * pkg-config reads from the installed phiq.pc, link it to the shared library
 * and run it on a converted model. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *program =
    "#include <phiq.h>\n#include <stdio.h>\n"
    "int main(int argc, char **argv) {\n"
    "    phiq_model *m = phiq_model_open(argv[1], NULL);\n"
    "    if (!m) { fprintf(stderr, \"%s\\n\", phiq_error()); return 1; }\n"
    "    phiq_context_params cp = phiq_context_default_params();\n"
    "    phiq_context *c = phiq_context_new(m, &cp);\n"
    "    int32_t ids[64];\n"
    "    int n = phiq_tokenize(m, \"In the beginning\", ids, 64, PHIQ_TOKENIZE_ADD_BOS);\n"
    "    if (!c || n <= 0 || phiq_eval(c, ids, n) < 0) { fprintf(stderr, \"%s\\n\", phiq_error()); return 1; }\n"
    "    const float *l = phiq_logits(c);\n"
    "    int b = 0;\n"
    "    for (int i = 1; i < phiq_model_n_vocab(m); i++) if (l[i] > l[b]) b = i;\n"
    "    printf(\"%d %d\\n\", n, b);\n"
    "    phiq_context_free(c);\n    phiq_model_free(m);\n    return 0;\n}\n";

static void test_install_and_link(void **state) {
    (void)state;
    const char *build = getenv("PHIQ_BUILD");
    if (!build || getenv("PHIQ_SANITIZED")) skip(); /* a sanitized library needs the sanitizer runtime to link */
    char *err = NULL, *out = NULL;
    const char *prefix = tu_tmp("prefix");
    if (tu_run(NULL, &err, "cmake --install '%s' --prefix '%s'", build, prefix)) fail_msg("install: %s", err);
    free(err);
    const char *files[] = {"bin/phiq", "include/phiq.h", "lib/libphiq.a", "lib/pkgconfig/phiq.pc"};
    for (int i = 0; i < 4; i++) {
        char p[4200];
        snprintf(p, sizeof p, "test -e '%s/%s'", prefix, files[i]);
        if (tu_run(NULL, NULL, "%s", p)) fail_msg("not installed: %s", files[i]);
    }
    FILE *f = fopen(tu_tmp("use.c"), "w");
    fputs(program, f);
    fclose(f);
    if (tu_run(NULL, &err, "cc '%s' -o '%s' $(PKG_CONFIG_PATH='%s/lib/pkgconfig' pkg-config --cflags --libs phiq) -Wl,-rpath,'%s/lib'",
               tu_tmp("use.c"), tu_tmp("use"), prefix, prefix))
        fail_msg("compile against the installed library: %s", err);
    free(err);
    const char *g = tu_tmp("kjv.gguf");
    if (tu_run(NULL, &err, "'%s/bin/phiq' convert '%s' -o '%s' --type q8_0 --quiet", prefix, tu_shared_path("fixtures/tiny-phi3-kjv"), g))
        fail_msg("installed phiq convert: %s", err);
    free(err);
    assert_int_equal(tu_run(&out, &err, "'%s' '%s'", tu_tmp("use"), g), 0);
    int n, b;
    assert_int_equal(sscanf(out, "%d %d", &n, &b), 2);
    assert_int_equal(n, 4); /* <s> In the beginning */
    free(out); free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_install_and_link)};
    return tu_run_group(tests, NULL, NULL);
}
