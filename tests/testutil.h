/* testutil.h — helpers shared by the tests: where the fixtures, the phiq
 * binary and llama-ref are, a scratch directory per test, running commands. */
#ifndef PHIQ_TESTS_TESTUTIL_H
#define PHIQ_TESTS_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

/* ../shared (PHIQ_SHARED). */
const char *tu_shared(void);
/* shared + "/" + rel, static buffer rotated among 8 slots. */
const char *tu_shared_path(const char *rel);
/* The phiq CLI (PHIQ_BIN). */
const char *tu_bin(void);
/* A fresh directory for this test process (removed at exit unless PHIQ_KEEP). */
const char *tu_tmpdir(void);
/* tmpdir + "/" + name, static buffer rotated among 8 slots. */
const char *tu_tmp(const char *name);
/* tu_tmp(name) kept stable for the whole run (tu_tmp's buffers rotate;
 * these 32 slots are reused only after 32 more calls). */
const char *tu_tmp_keep(const char *name);
/* Writes the n bytes at p as the file at path; fails the test on error. */
void tu_write_file(const char *path, const void *p, size_t n);
/* The same with the bytes of the string text. */
void tu_write_text(const char *path, const char *text);
/* Runs a shell command; captures stdout into *out (malloc'd, may be NULL to
 * discard) and returns the exit status (-1 if it could not run). stderr is
 * captured into *err when err is non-NULL. */
int tu_run(char **out, char **err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The references installed from npm by tests/refs-setup.sh (the CTest
 * fixture "refs", run once before the tests): $PHIQ_REFS, default
 * ~/.cache/phiq-refs. */
const char *tu_refs(void);
/* Path of the llama-ref wrapper (llama.cpp's library; $PHIQ_LLAMA_REF
 * overrides). NULL when it cannot be had, after tu_note_unavailable() said
 * why: the caller skips. */
const char *tu_llama_ref(void);
/* The node_modules directory holding npm package `pkg` (onnxruntime-node,
 * js-tiktoken), or NULL after tu_note_unavailable() said why. */
const char *tu_node_modules(const char *pkg);
/* A reference or tool the test compares with cannot run: prints
 * "SKIPPED: <why>" and makes tu_finish() exit 77 (CTest counts the test as
 * skipped, with that line in its output) unless a test failed. The caller
 * then skip()s the cmocka test, or tu_unavailable() does both. A test that
 * could not compare must never report Passed. */
void tu_note_unavailable(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define tu_unavailable(...)              \
    do {                                 \
        tu_note_unavailable(__VA_ARGS__); \
        skip();                          \
    } while (0)
/* The exit status of a test program: cmocka's failure count when non-zero,
 * else 77 when a reference was unavailable, else 0. */
int tu_finish(int failed);
#define tu_run_group(tests, setup, teardown) tu_finish(cmocka_run_group_tests(tests, setup, teardown))
/* main() of a test program: TU_MAIN(setup, teardown, test_a, test_b, ...)
 * runs the cmocka tests named, in order, as the group "tests" with the group
 * setup and teardown (NULL for none), as cmocka_run_group_tests over their
 * cmocka_unit_test entries would; the exit status is tu_finish's. */
#define TU_MAIN(setup, teardown, ...)                                                              \
    int main(void) {                                                                               \
        static const CMUnitTestFunction tu_fns_[] = {__VA_ARGS__};                                 \
        return tu_main(#__VA_ARGS__, tu_fns_, sizeof tu_fns_ / sizeof *tu_fns_, setup, teardown);   \
    }
int tu_main(const char *names, const CMUnitTestFunction *fns, size_t n, CMFixtureFunction setup,
            CMFixtureFunction teardown);
/* Path of llama.cpp's own tool `name` (llama-imatrix, llama-quantize,
 * llama-perplexity) as scripts/llama-tools.sh builds it ($PHIQ_LLAMA_TOOLS or
 * ~/.cache/llama-tools/build/bin), static buffer; NULL (saying why on stderr)
 * when it is not there: the caller skips. */
const char *tu_llama_tool(const char *name);
/* Reads a whole binary file; returns malloc'd bytes and sets *n. */
void *tu_read_all(const char *path, size_t *n);
/* The tests' 32-bit pseudo-random stream (the LCG x = x*1664525 + 1013904223):
 * advances *x and returns its new value. The sequence a seed gives is part
 * of the tests' data (their expected values and llama.cpp comparisons). */
uint32_t tu_rand(uint32_t *x);
/* tu_rand's top 24 bits as a float in [0, 1) (exact in float and double). */
float tu_randf(uint32_t *x);
/* n token ids in [0, hi) from the 64-bit LCG x = x*6364136223846793005 +
 * 1442695040888963407 started at seed (bits 33 and up of each value). */
void tu_random_ids(int32_t *ids, int n, uint64_t seed, int hi);
/* max |a-b| and the range (max-min) of b over n floats. */
double tu_max_abs_diff(const float *a, const float *b, size_t n);
double tu_range(const float *b, size_t n);

/* Runs the shell command (printf-style; the caller names tu_bin() itself)
 * and asserts the refusal bad input must get: a non-zero exit, exactly one
 * stderr line, containing want, and no file at out (when out is non-NULL). */
void tu_refused(const char *what, const char *want, const char *out, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same, and the exit status must be code. */
void tu_refused_exit(int code, const char *what, const char *want, const char *out, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Writes s as one JSON string literal and a newline (the line files the
 * node references and llama-ref's `tokenize --lines` read); s must be valid
 * UTF-8. _n: the n bytes at s. */
void tu_json_line(FILE *f, const char *s);
void tu_json_line_n(FILE *f, const char *s, size_t n);
/* The llama-ref wrapper (tu_llama_ref), or the cmocka test is skipped (and
 * the program exits 77) when it cannot be had. */
const char *tu_require_llama_ref(void);
/* Skips the cmocka test (exit 77) when python3 has no numpy. */
void tu_require_numpy(void);
/* Skips the cmocka test (exit 77) unless `phiq convert --help` lists the
 * quantized types (Q4_K_M). */
void tu_require_quantizers(void);
/* Overwrites, in the file at path, the bytes at offset `at` of the first
 * occurrence of needle with repl (same length: the file keeps its size);
 * fails the test when the file or the needle is missing. */
void tu_patch_file(const char *path, const char *needle, size_t at, const char *repl);
/* The integers of a JSON list: from *p (just after its '[') up to the ']',
 * the first max of them into ids; returns how many were stored and leaves
 * *p at the ']' (or the end of the text). */
int tu_parse_ids(char **p, int32_t *ids, int max);
/* Overwrites, in the GGUF file at path, the 4-byte value of metadata key
 * `key` (first occurrence), whose GGUF type must be type (4: uint32, 6:
 * float32), with the 4 bytes at val; fails the test otherwise. */
void tu_patch_gguf_scalar(const char *path, const char *key, uint32_t type, const void *val);
/* Entries of directory dir other than . and .., or -1 when it cannot be opened. */
int tu_dir_entries(const char *dir);
/* Fails the test unless the files a and b hold the same bytes (and some). */
void tu_assert_same_file(const char *a, const char *b);
/* `phiq logits --all --type f32` of the models a and b on one fixed
 * sequence of 7 ids (into a.logits and b.logits): fails the test unless
 * they are identical. */
void tu_assert_same_logits(const char *a, const char *b);
/* Rewrites the JSON file at path through edit (which changes the parsed
 * document in place); fails the test when it does not parse. */
struct cJSON;
void tu_edit_json(const char *path, void (*edit)(struct cJSON *));
/* The number under key (matched exactly) of the JSON object j; fails the
 * test, naming the key, when there is none. */
double tu_json_num(const struct cJSON *j, const char *key);
/* A copy of the checkpoint directory src as tmp/name (replaced if there),
 * its config.json rewritten through edit when edit is non-NULL; the path
 * stays valid for the next three calls. */
const char *tu_copy_checkpoint(const char *src, const char *name, void (*edit)(struct cJSON *));
/* The fixture tiny-phi3-kjv converted to TYPE (any `phiq convert --type`
 * name) in this test's tmpdir, once per process; fails the test when the
 * conversion fails. The path stays valid for the whole process. */
const char *tu_fixture_gguf(const char *type);

/* Hugging Face reference forwards (tests/ref/hf_reference.py, numpy). */
/* True when /usr/bin/python3 has numpy (Debian's python3-numpy). */
int tu_have_numpy(void);
/* `phiq synth ARGS -o tmp/NAME` then `phiq convert` to tmp/NAME.gguf at type;
 * returns the GGUF path (static buffer rotated among 8 slots). */
const char *tu_synth_gguf(const char *name, const char *synth_args, const char *type);
/* hf_reference.py on the checkpoint beside gguf (its name less ".gguf"):
 * float32 logits [n][n_vocab] (malloc'd); mode hf, short or long; routes,
 * if non-NULL, receives the PhiMoE routing lines. Fails the test on error. */
float *tu_hf_reference(const char *gguf, const int32_t *ids, int n, int n_vocab, const char *mode, const char *routes);
/* The same for any reference script in tests/ref/ (hf_reference.py,
 * phi3small_reference.py) run on the checkpoint directory dir. */
float *tu_ref_logits(const char *script, const char *dir, const int32_t *ids, int n, int n_vocab, const char *mode,
                     const char *routes);
/* Logits of ids[0..n) on context c (made with all_logits): ids[0..np) in
 * one phiq_eval, then ids[np..n) one at a time; fails the test when an eval
 * fails. Returns malloc'd rows [n][nv], row i the logits at position i.
 * (testutil_model.c: not in the AArch64 kernel test's link.) */
typedef struct phiq_context phiq_context;
float *tu_eval_logits(phiq_context *c, const int32_t *ids, int np, int n, int nv);
/* Fails the test unless the GGUF files a (ours) and b (llama-quantize's)
 * hold the same tensors, each of the same type and bytes (a line naming
 * the first that differs, under what); returns their count. */
int64_t tu_same_tensors(const char *a, const char *b, const char *what);
/* max over positions first..n-1 of max|got - want| / range(want); got holds
 * rows first..n-1, want rows 0..n-1. */
double tu_worst_rel(const float *got, const float *want, int first, int n, int n_vocab);
/* The same over rows of V logits (got and want both rows 0..n-1), the ids
 * whose want is -FLT_MAX (Phi-3-small's dummy tokens) left out of the range
 * and required to be -FLT_MAX in got, dummies of them per row. */
double tu_worst_rel_dummies(const float *got, const float *want, int first, int n, int V, int dummies);

#endif
