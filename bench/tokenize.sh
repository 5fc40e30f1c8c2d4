#!/bin/sh
# tokenize.sh — single-thread tokenization throughput (median MB/s of RUNS runs,
# wall clock and thread CPU time)
# on English fixture text for Phi-3 SPM (tokenizer.json and GGUF), GPT-2
# (CodeGen tokenizer.json), cl100k and o200k (.tiktoken).
# usage: bench/tokenize.sh [BUILD_DIR] [RUNS]   (default build, 7)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-$root/build}
runs=${2:-7}
shared=${PHIQ_SHARED:-$root/../shared}
[ -d "$shared/fixtures" ] || shared=/work/shared
lib=$build/libphiq.a
[ -f "$lib" ] || { echo "tokenize.sh: $lib missing: build first (cmake --build $build)" >&2; exit 1; }
exe=$build/tok_bench
if [ ! -x "$exe" ] || [ "$here/tok_bench.c" -nt "$exe" ] || [ "$lib" -nt "$exe" ]; then
    cc -O2 -std=c11 -I"$root/src" -I"$root/include" "$here/tok_bench.c" "$lib" -lpcre2-8 -lcjson -lpthread -lm -o "$exe"
fi
txt="$shared/fixtures/text/kjv-heldout.txt $shared/fixtures/text/fortunes-eval.txt"
tk=$shared/fixtures/tokenizers
"$exe" phi3-spm-json "$tk/phi3/tokenizer.json" - "$runs" $txt
"$exe" phi3-spm-gguf "$shared/fixtures/vocab/ggml-vocab-phi-3.gguf" - "$runs" $txt
"$exe" gpt2-bpe-json "$tk/gpt2/tokenizer.json" - "$runs" $txt
"$exe" cl100k "$tk/tiktoken/cl100k_base.tiktoken" cl100k "$runs" $txt
"$exe" o200k "$tk/tiktoken/o200k_base.tiktoken" o200k "$runs" $txt
