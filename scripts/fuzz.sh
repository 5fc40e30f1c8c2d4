#!/bin/sh
# fuzz.sh — builds the libFuzzer targets in fuzz/ with clang and runs each for
# a short time (PHIQ_FUZZ_SECONDS, default 20) from its seed corpus.
# Exits 77 (skipped, saying why) where clang or its libFuzzer runtime is missing.
set -eu
cd "$(dirname "$0")/.."
secs=${PHIQ_FUZZ_SECONDS:-20}
if ! command -v clang >/dev/null 2>&1; then
  echo "fuzz: SKIPPED: clang not found (scripts/deps.sh test installs clang and libclang-rt-14-dev)"; exit 77
fi
probe=$(mktemp -d)
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; return (int)n * 0; }\n' >"$probe/p.c"
if ! clang -fsanitize=fuzzer "$probe/p.c" -o "$probe/p" >"$probe/log" 2>&1; then
  echo "fuzz: SKIPPED: clang cannot link a libFuzzer target (libclang-rt-14-dev missing?): $(tail -1 "$probe/log")"
  rm -rf "$probe"; exit 77
fi
rm -rf "$probe"
ls fuzz/fuzz_*.c >/dev/null 2>&1 || { echo "fuzz: no targets"; exit 0; }
n=0
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DPHIQ_FUZZ=ON -DPHIQ_TESTS=OFF >/dev/null
cmake --build build-fuzz -j "$(nproc)" >/dev/null
for t in build-fuzz/fuzz/fuzz_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  corpus=build-fuzz/corpus-$name
  mkdir -p "$corpus"
  [ -d "fuzz/seeds/$name" ] && cp -n fuzz/seeds/"$name"/* "$corpus"/ 2>/dev/null || true
  echo "fuzz: $name for ${secs}s"
  "$t" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 "$corpus" >"build-fuzz/$name.log" 2>&1 || {
    tail -40 "build-fuzz/$name.log"; echo "fuzz: $name FAILED"; exit 1; }
  grep -E "^Done|#[0-9]+ *DONE" "build-fuzz/$name.log" | tail -1 || true
  echo "fuzz: $name ran clean"
  n=$((n + 1))
done
echo "fuzz: $n targets ran clean"
