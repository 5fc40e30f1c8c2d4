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
/* Path of llama.cpp's own tool `name` (llama-imatrix, llama-quantize,
 * llama-perplexity) as scripts/llama-tools.sh builds it ($PHIQ_LLAMA_TOOLS or
 * ~/.cache/llama-tools/build/bin), static buffer; NULL (saying why on stderr)
 * when it is not there: the caller skips. */
const char *tu_llama_tool(const char *name);
/* Reads a whole binary file; returns malloc'd bytes and sets *n. */
void *tu_read_all(const char *path, size_t *n);
/* max |a-b| and the range (max-min) of b over n floats. */
double tu_max_abs_diff(const float *a, const float *b, size_t n);
double tu_range(const float *b, size_t n);

/* Runs the shell command (printf-style; the caller names tu_bin() itself)
 * and asserts the refusal bad input must get: a non-zero exit, exactly one
 * stderr line, containing want, and no file at out (when out is non-NULL). */
void tu_refused(const char *what, const char *want, const char *out, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Writes s as one JSON string literal and a newline (the line files the
 * node references read); s must be valid UTF-8. */
void tu_json_line(FILE *f, const char *s);
/* Rewrites the JSON file at path through edit (which changes the parsed
 * document in place); fails the test when it does not parse. */
struct cJSON;
void tu_edit_json(const char *path, void (*edit)(struct cJSON *));
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
/* max over positions first..n-1 of max|got - want| / range(want); got holds
 * rows first..n-1, want rows 0..n-1. */
double tu_worst_rel(const float *got, const float *want, int first, int n, int n_vocab);
/* The same over rows of V logits (got and want both rows 0..n-1), the ids
 * whose want is -FLT_MAX (Phi-3-small's dummy tokens) left out of the range
 * and required to be -FLT_MAX in got, dummies of them per row. */
double tu_worst_rel_dummies(const float *got, const float *want, int first, int n, int V, int dummies);

#endif
