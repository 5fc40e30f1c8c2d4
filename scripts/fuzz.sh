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
# two targets at a time (the machines have two cores; each fuzzer is one process)
run_one() { # target name -> its log; rc in build-fuzz/NAME.rc
  rc=0
  "$1" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 "build-fuzz/corpus-$2" >"build-fuzz/$2.log" 2>&1 || rc=$?
  echo $rc >"build-fuzz/$2.rc"
}
report() { # name -> 0 clean, 1 failed (printed)
  if [ "$(cat "build-fuzz/$1.rc")" != 0 ]; then
    tail -40 "build-fuzz/$1.log"; echo "fuzz: $1 FAILED"; return 1
  fi
  grep -E "^Done|#[0-9]+ *DONE" "build-fuzz/$1.log" | tail -1 || true
  echo "fuzz: $1 ran clean"
}
set -- build-fuzz/fuzz/fuzz_*
while [ $# -gt 0 ]; do
  names=""
  for t in "$1" "${2:-}"; do
    [ -n "$t" ] && [ -x "$t" ] || continue
    name=$(basename "$t")
    mkdir -p "build-fuzz/corpus-$name"
    [ -d "fuzz/seeds/$name" ] && cp -n fuzz/seeds/"$name"/* "build-fuzz/corpus-$name"/ 2>/dev/null || true
    echo "fuzz: $name for ${secs}s"
    run_one "$t" "$name" &
    names="$names $name"
  done
  wait
  for name in $names; do
    report "$name" || exit 1
    n=$((n + 1))
  done
  shift; [ $# -gt 0 ] && shift
done
echo "fuzz: $n targets ran clean"
