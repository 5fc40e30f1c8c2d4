/* test_imatrix.c — `phiq imatrix` against llama.cpp's own llama-imatrix on
 * the fixture (same f32 GGUF, text, context and chunks): the same tensors,
 * counts and chunk keys, every sum within 1e-4 relative; llama-quantize
 * accepts phiq's file; a text shorter than two contexts is a one-line error
 * with no output file. Skips (77) when llama-imatrix is not built
 * (scripts/llama-tools.sh). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/gguf.h"

static float f32_at(const phiq_gguf_tensor *t, int64_t i) {
    float f;
    memcpy(&f, (const uint8_t *)t->data + 4 * i, 4);
    return f;
}

static void test_matches_llama_imatrix(void **state) {
    (void)state;
    const char *li = tu_llama_tool("llama-imatrix");
    if (!li) skip();
    const char *model = tu_fixture_gguf("f32"), *text = tu_shared_path("fixtures/text/kjv-calibration.txt");
    const char *ours = tu_tmp("phiq.imatrix.gguf"), *theirs = tu_tmp("llama.imatrix.gguf");
    assert_int_equal(tu_run(NULL, NULL, "'%s' imatrix '%s' -f '%s' -o '%s' -c 128 --chunks 12 -t 2 --quiet", tu_bin(),
                            model, text, ours), 0);
    char *err = NULL;
    int rc = tu_run(NULL, &err, "'%s' -m '%s' -f '%s' -o '%s' -c 128 -b 128 --chunks 12 -t 2", li, model, text, theirs);
    if (rc) fprintf(stderr, "%s\n", err);
    free(err);
    assert_int_equal(rc, 0);
    phiq_gguf *a = phiq_gguf_open(ours), *b = phiq_gguf_open(theirs);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(phiq_gguf_n_tensors(a), phiq_gguf_n_tensors(b));
    assert_true(phiq_gguf_n_tensors(b) >= 8);
    uint32_t ca, cb, sa, sb;
    assert_int_equal(phiq_gguf_get_u32(a, "imatrix.chunk_count", &ca), 0);
    assert_int_equal(phiq_gguf_get_u32(b, "imatrix.chunk_count", &cb), 0);
    assert_int_equal(phiq_gguf_get_u32(a, "imatrix.chunk_size", &sa), 0);
    assert_int_equal(phiq_gguf_get_u32(b, "imatrix.chunk_size", &sb), 0);
    assert_int_equal(ca, cb);
    assert_int_equal(sa, sb);
    double worst = 0;
    for (int64_t i = 0; i < phiq_gguf_n_tensors(b); i++) {
        const phiq_gguf_tensor *tb = phiq_gguf_tensor_at(b, i), *ta = phiq_gguf_find_tensor(a, tb->name);
        assert_non_null(ta);
        assert_int_equal(ta->ne[0], tb->ne[0]);
        assert_int_equal(ta->ne[1], tb->ne[1]);
        for (int64_t j = 0; j < tb->ne[0] * tb->ne[1]; j++) {
            double x = f32_at(ta, j), y = f32_at(tb, j);
            assert_true(y > 0);
            double r = fabs(x - y) / y;
            if (r > worst) worst = r;
        }
    }
    fprintf(stderr, "imatrix: max relative difference from llama-imatrix %.3g over %lld tensors\n", worst,
            (long long)phiq_gguf_n_tensors(b));
    assert_true(worst <= 1e-4);
    phiq_gguf_close(a);
    phiq_gguf_close(b);

    /* llama-quantize and phiq convert both take it */
    const char *lq = tu_llama_tool("llama-quantize");
    if (lq)
        assert_int_equal(tu_run(NULL, NULL, "'%s' --imatrix '%s' '%s' '%s' Q4_K_M 2 >/dev/null 2>&1", lq, ours, model,
                                tu_tmp("lq.gguf")), 0);
    assert_int_equal(tu_run(NULL, NULL, "'%s' convert '%s' -o '%s' --type q4_k_m --imatrix '%s' --quiet", tu_bin(), model,
                            tu_tmp("pq.gguf"), ours), 0);
}

static void test_short_text(void **state) {
    (void)state;
    const char *model = tu_fixture_gguf("f32"), *txt = tu_tmp("short.txt"), *out = tu_tmp("short.imatrix.gguf");
    tu_write_text(txt, "In the beginning God created the heaven and the earth.\n");
    tu_refused_exit(1, "imatrix text of one line", "need at least", out, "'%s' imatrix '%s' -f '%s' -o '%s' -c 128 --quiet",
                    tu_bin(), model, txt, out);
}

TU_MAIN(NULL, NULL, test_matches_llama_imatrix, test_short_text)
