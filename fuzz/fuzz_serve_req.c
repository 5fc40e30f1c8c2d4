/* fuzz_serve_req.c — libFuzzer target for `phiq serve`'s request parser
 * (tools/serve_req.c): any bytes as a chat and as a text completion body.
 * Checks that a refusal is one line and that an accepted request keeps the
 * parser's promises (roles, stop count, ranges). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int chat = 0; chat < 2; chat++) {
        serve_req r;
        char err[256], param[64];
        if (serve_req_parse((const char *)data, size, chat, &r, err, sizeof err, param, sizeof param) < 0) {
            if (!err[0] || strchr(err, '\n')) abort();
            continue;
        }
        if (chat && (r.n_msgs < 1 || !r.msgs)) abort();
        for (int i = 0; i < r.n_msgs; i++) {
            const char *ro = r.msgs[i].role;
            if (strcmp(ro, "system") && strcmp(ro, "user") && strcmp(ro, "assistant")) abort();
            if (!r.msgs[i].content) abort();
        }
        if (!chat && !r.prompt) abort();
        if (r.n_stop < 0 || r.n_stop > SERVE_MAX_STOP) abort();
        for (int i = 0; i < r.n_stop; i++)
            if (!r.stop[i] || !r.stop[i][0]) abort();
        if (r.max_tokens < -1 || !(r.temperature >= 0 && r.temperature <= 2) || !(r.top_p >= 0 && r.top_p <= 1)) abort();
        serve_req_free(&r);
    }
    return 0;
}
