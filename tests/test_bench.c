/* test_bench.c — `phiq bench --profile`: its per-token account of a decode
 * checked against the fixture's own config.json (read with cJSON): one call
 * per layer of each of a Phi-3 layer's four matrix shapes and one of the
 * output matrix per token, each reading the bytes its GGUF block layout
 * gives (block sizes from the GGUF specification), and the parts of a token
 * adding up to no more than the token. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* bytes of one row of n values in the GGUF block layout of a type name */
static double row_bytes(const char *type, double n) {
    static const struct { const char *name; int elems, bytes; } blocks[] = {
        {"F32", 1, 4}, {"F16", 1, 2}, {"Q8_0", 32, 34}, {"Q4_0", 32, 18}, {"Q4_K", 256, 144}, {"Q6_K", 256, 210},
    };
    for (size_t i = 0; i < sizeof blocks / sizeof *blocks; i++)
        if (!strcmp(type, blocks[i].name)) return n / blocks[i].elems * blocks[i].bytes;
    fail_msg("unexpected weight type %s", type);
    return 0;
}

static void test_profile_accounts_for_the_model(void **state) {
    (void)state;
    size_t len;
    char *cfgtxt = tu_read_all(tu_shared_path("fixtures/tiny-phi3-kjv/config.json"), &len);
    assert_non_null(cfgtxt);
    cJSON *cfg = cJSON_Parse(cfgtxt);
    free(cfgtxt);
    assert_non_null(cfg);
    const double E = tu_json_num(cfg, "hidden_size"), F = tu_json_num(cfg, "intermediate_size"), L = tu_json_num(cfg, "num_hidden_layers");
    const double V = tu_json_num(cfg, "vocab_size"), nh = tu_json_num(cfg, "num_attention_heads"), nkv = tu_json_num(cfg, "num_key_value_heads");
    const double hd = E / nh;
    /* n_in, n_out, calls per token: fused qkv, o, fused gate|up, down, output */
    const double want[5][3] = {{E, (nh + 2 * nkv) * hd, L}, {nh * hd, E, L}, {E, 2 * F, L}, {F, E, L}, {E, V, 1}};
    cJSON_Delete(cfg);

    const char *types[] = {"q4_0", "q8_0"};
    for (int ti = 0; ti < 2; ti++) {
        char *out = NULL, *err = NULL;
        int rc = tu_run(&out, &err, "'%s' bench '%s' -p 4 -n 3 -r 1 -t 2 --profile --json", tu_bin(),
                        tu_fixture_gguf(types[ti]));
        if (rc) fail_msg("phiq bench --profile: %s", err ? err : "");
        cJSON *j = cJSON_Parse(out);
        assert_non_null(j);
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "profile");
        assert_non_null(p);
        assert_int_equal((int)tu_json_num(p, "tokens"), 3);
        assert_int_equal((int)tu_json_num(p, "threads"), 2);
        const cJSON *mm = cJSON_GetObjectItemCaseSensitive(p, "matmuls");
        assert_true(cJSON_IsArray(mm));
        int seen[5] = {0};
        double mm_ms = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, mm) {
            const double n_in = tu_json_num(e, "n_in"), n_out = tu_json_num(e, "n_out");
            int k = -1;
            for (int s = 0; s < 5; s++)
                if (want[s][0] == n_in && want[s][1] == n_out) k = s;
            if (k < 0) fail_msg("%s: a matmul of unexpected shape %.0f x %.0f", types[ti], n_in, n_out);
            seen[k]++;
            const cJSON *ty = cJSON_GetObjectItemCaseSensitive(e, "type");
            assert_true(cJSON_IsString(ty));
            assert_float_equal(tu_json_num(e, "calls"), want[k][2], 1e-9);
            assert_float_equal(tu_json_num(e, "bytes"), row_bytes(ty->valuestring, n_in) * n_out, 0.5);
            const double busy = tu_json_num(e, "busy");
            assert_true(busy > 0 && busy <= 1.0001);
            assert_true(tu_json_num(e, "ms") > 0);
            assert_true(tu_json_num(e, "conv_ms") <= tu_json_num(e, "ms"));
            mm_ms += tu_json_num(e, "ms");
        }
        for (int s = 0; s < 5; s++) assert_int_equal(seen[s], 1);
        assert_float_equal(tu_json_num(p, "matmul_ms"), mm_ms, 1e-3);
        /* the parts are measured inside the token, so they cannot add up to more */
        assert_true(tu_json_num(p, "rest_ms") >= 0);
        assert_true(tu_json_num(p, "attention_ms") > 0);
        assert_float_equal(tu_json_num(p, "matmul_ms") + tu_json_num(p, "attention_ms") + tu_json_num(p, "rest_ms"), tu_json_num(p, "token_ms"), 1e-3);
        cJSON_Delete(j);
        free(out), free(err);
    }
}

TU_MAIN(NULL, NULL, test_profile_accounts_for_the_model)
