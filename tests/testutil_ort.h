/* testutil_ort.h — running exported ONNX models in onnxruntime-node (the
 * npm reference tests/refs-setup.sh installs) and comparing their logits:
 * shared by test_onnx_ort and test_onnx_ratio. */
#ifndef PHIQ_TESTS_TESTUTIL_ORT_H
#define PHIQ_TESTS_TESTUTIL_ORT_H

#include <stdbool.h>
#include <stddef.h>

/* Finds node and onnxruntime-node; 0 when usable, else -1 after
 * tu_note_unavailable() said why (the test exits 77). */
int tu_ort_setup(void);
const char *tu_ort_node_path(void); /* NODE_PATH holding onnxruntime-node */
const char *tu_ort_scripts(void);   /* tests/onnx (run.js, feed.js) */
/* tests/onnx/run.js on model_dir: float32 logits [n, vocab] (malloc'd);
 * step feeds one token at a time through the KV cache. Fails the test on error. */
float *tu_ort_logits(const char *model_dir, const int *ids, int n, bool step, const char *tag);
/* The same with past and present KV bound to one buffer of share positions
 * per layer (ORT GenAI's past_present_share_buffer; SparseAttention needs it). */
float *tu_ort_logits_share(const char *model_dir, const int *ids, int n, bool step, int share, const char *tag);

/* `phiq convert FIXTURE -o tmp/NAME --format onnx ARGS --quiet --json -t 2`
 * on the tiny-phi3-kjv fixture; returns the
 * directory (stable) and, when json is non-NULL, the JSON summary
 * (malloc'd). Fails the test when the conversion fails. */
const char *tu_onnx_convert(const char *name, const char *args, char **json);
float *tu_read_f32(const char *path, size_t *n); /* whole file as floats, *n of them */

/* The tiny-phi3-kjv fixture's reference prompts (reference/prompts.json). */
typedef struct tu_prompt {
    int ids[512];
    int n;
} tu_prompt;
int tu_fixture_prompts(tu_prompt *p, int maxp);
/* Held-out evaluation ids: three 256-token windows of kjv-heldout.txt
 * tokenized by llama-ref on llama.cpp's Phi-3 vocab (never calibration text);
 * without llama-ref, or under PHIQ_SANITIZED, the fixture's longest prompt.
 * Returns the count. */
int tu_heldout_ids(int *ids, int max);
/* mean over n positions of KL(softmax(ref) || softmax(l)) */
double tu_mean_kld(const float *l, const float *ref, int n, int vocab);

#endif
