/* test_report.c — the trade-off report: Pareto front selection, the three
 * files, and report.html rendered by headless Chromium (an independent HTML/SVG
 * engine): charts drawn, one point per row per chart, the front marked. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/eval.h"

static const phiq_report_row rows[] = {
    /* type, size, bpw, ppl, kld_mean, kld_p99, top1, prefill, decode, kld_err */
    {"fp32", 80000000, 32.0, 10.0, 0.0, 0.0, 1.0, 100, 10, 0},
    {"fp16", 40000000, 16.0, 10.0, 0.00001, 0.0001, 0.999, 150, 20, 0},
    {"int8", 21000000, 8.5, 10.01, 0.0002, 0.002, 0.99, 200, 35, 0},
    {"int4", 12000000, 4.8, 10.3, 0.02, 0.2, 0.93, 220, 50, 0},
    {"bad4", 13000000, 5.0, 10.5, 0.05, 0.5, 0.90, 210, 45, 0}, /* dominated by int4 on both charts */
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

/* The advice in words: for each memory budget the least-KLD file that fits
 * (a smaller one within twice the combined standard error is a tie and
 * wins), the machine named, and nothing recommended where nothing fits. */
static void test_advice(void **state) {
    (void)state;
    const phiq_report_row big[] = {
        /* type, size, bpw, ppl, kld_mean, kld_p99, top1, prefill, decode, kld_err */
        {"f16", 7600000000ull, 16, 6.0, 0.0, 0, 1.0, 50, 5, 0},
        {"Q8_0", 4100000000ull, 8.5, 6.0, 0.0010, 0, 0.99, 80, 9, 0.00005},
        {"Q4_K_M", 2300000000ull, 4.9, 6.1, 0.0300, 0, 0.95, 90, 15, 0.0005},
        {"Q4_K_M-mix", 2290000000ull, 4.8, 6.1, 0.0200, 0, 0.96, 90, 15, 0.0005},
        {"Q4_0+calib", 1900000000ull, 4.5, 6.2, 0.0500, 0, 0.93, 95, 17, 0.0005},
        {"Q3_K_M-mix", 1850000000ull, 3.9, 6.2, 0.0502, 0, 0.93, 95, 18, 0.0005}, /* tie with Q4_0+calib: smaller */
    };
    phiq_report_meta meta = {.cpu = "Test CPU 9000", .threads = 2, .text = "heldout.txt", .calib = "calib.txt"};
    char *a = phiq_report_advice(big, 6, &meta);
    assert_non_null(a);
    assert_non_null(strstr(a, "Test CPU 9000 with 2 threads"));
    assert_non_null(strstr(a, "fitted on calib.txt"));
    const char *phone = strstr(a, "4 GB of RAM"), *laptop = strstr(a, "8 GB laptop"), *pc = strstr(a, "16 GB AI PC");
    assert_non_null(phone);
    assert_non_null(laptop);
    assert_non_null(pc);
    /* 2 GB: Q4_0+calib and Q3_K_M-mix fit and tie; the smaller is shipped */
    assert_true(strstr(phone, "ship **Q3_K_M-mix**") == strstr(phone, "ship **"));
    /* 5 GB: Q8_0 */
    assert_true(strstr(laptop, "ship **Q8_0**") == strstr(laptop, "ship **"));
    /* 11 GB: f16 */
    assert_true(strstr(pc, "ship **f16**") == strstr(pc, "ship **"));
    /* Q4_K_M is dominated by the mix: not a best-at-size row */
    assert_null(strstr(a, "**Q4_K_M** ("));
    free(a);
    /* nothing fits a phone */
    const phiq_report_row huge[] = {{"f32", 15000000000ull, 32, 6, 0, 0, 1, 1, 1, 0}};
    a = phiq_report_advice(huge, 1, NULL);
    assert_non_null(strstr(a, "nothing here fits"));
    free(a);
    /* the files carry it: report.md in words, report.json the machine */
    assert_int_equal(phiq_report_write_meta(tu_tmpdir(), "big", big, 6, &meta), 0);
    size_t n;
    char *md = tu_read_all(tu_tmp("report.md"), &n), *js = tu_read_all(tu_tmp("report.json"), &n);
    assert_non_null(strstr(md, "## Which file to ship"));
    assert_non_null(strstr(js, "\"cpu\": \"Test CPU 9000\""));
    assert_non_null(strstr(js, "\"best_at_size\": true"));
    free(md);
    free(js);
}

TU_MAIN(NULL, NULL, test_pareto, test_advice, test_files_and_chromium)
