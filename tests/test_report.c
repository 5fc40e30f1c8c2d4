/* test_report.c — the trade-off report: Pareto front selection, the three
 * files, and report.html rendered by headless Chromium (an independent HTML/SVG
 * engine): charts drawn, one point per row per chart, the front marked. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/eval.h"

static const phiq_report_row rows[] = {
    /* type, size, bpw, ppl, kld_mean, kld_p99, top1, prefill, decode */
    {"fp32", 80000000, 32.0, 10.0, 0.0, 0.0, 1.0, 100, 10},
    {"fp16", 40000000, 16.0, 10.0, 0.00001, 0.0001, 0.999, 150, 20},
    {"int8", 21000000, 8.5, 10.01, 0.0002, 0.002, 0.99, 200, 35},
    {"int4", 12000000, 4.8, 10.3, 0.02, 0.2, 0.93, 220, 50},
    {"bad4", 13000000, 5.0, 10.5, 0.05, 0.5, 0.90, 210, 45}, /* dominated by int4 on both charts */
};
#define NROWS ((int)(sizeof rows / sizeof rows[0]))

static void test_pareto(void **state) {
    (void)state;
    int idx[8];
    int k = phiq_report_pareto(rows, NROWS, 0, idx);
    /* size vs KLD: every row but bad4 is optimal; sorted by size */
    assert_int_equal(k, 4);
    assert_string_equal(rows[idx[0]].type, "int4");
    assert_string_equal(rows[idx[3]].type, "fp32");
    k = phiq_report_pareto(rows, NROWS, 1, idx);
    /* size vs speed: int4 is smallest and fastest, so it alone is optimal */
    assert_int_equal(k, 1);
    assert_string_equal(rows[idx[0]].type, "int4");
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static void test_files_and_chromium(void **state) {
    (void)state;
    const char *dir = tu_tmpdir();
    assert_int_equal(phiq_report_write(dir, "tiny <model>", rows, NROWS), 0);
    size_t n;
    char *json = tu_read_all(tu_tmp("report.json"), &n);
    assert_non_null(json);
    assert_int_equal(count(json, "\"type\""), NROWS);
    assert_non_null(strstr(json, "\"kld_p99\""));
    assert_non_null(strstr(json, "\"decode_tok_s\""));
    free(json);
    char *md = tu_read_all(tu_tmp("report.md"), &n);
    assert_non_null(md);
    assert_int_equal(count(md, "\n| "), NROWS + 1);
    free(md);

    if (access("/usr/bin/chromium", X_OK) != 0) {
        tu_unavailable("/usr/bin/chromium not found: the HTML report was not rendered (scripts/deps.sh test installs chromium)");
    }
    char *out = NULL, *err = NULL;
    const char *flags = "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
                        "--disable-background-networking --disable-component-update --disable-sync "
                        "--disable-dev-shm-usage --hide-scrollbars";
    int rc = tu_run(&out, &err, "timeout 120 /usr/bin/chromium %s --user-data-dir='%s/chrome-a' --dump-dom 'file://%s/report.html'",
                    flags, dir, dir);
    assert_int_equal(rc, 0);
    /* the DOM as Chromium parsed it: two SVG charts, a point per row in each, a front line in each */
    assert_int_equal(count(out, "<svg"), 2);
    assert_int_equal(count(out, "<circle"), 2 * NROWS);
    assert_int_equal(count(out, "class=\"pareto\""), 1); /* the speed front has a single point: no line */
    assert_non_null(strstr(out, "tiny &lt;model&gt;")); /* the name was escaped, not interpreted */
    free(out); free(err);
    rc = tu_run(&out, &err, "timeout 120 /usr/bin/chromium %s --user-data-dir='%s/chrome-b' --window-size=1280,1100 "
                "--screenshot='%s/report.png' 'file://%s/report.html'", flags, dir, dir, dir);
    assert_int_equal(rc, 0);
    unsigned char *png = tu_read_all(tu_tmp("report.png"), &n);
    assert_non_null(png);
    assert_true(n > 10000); /* a drawn page, not a blank one */
    assert_memory_equal(png, "\x89PNG", 4);
    free(png); free(out); free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pareto),
        cmocka_unit_test(test_files_and_chromium),
    };
    return tu_run_group(tests, NULL, NULL);
}
