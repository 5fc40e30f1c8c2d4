#!/bin/sh
# llama-tools.sh — builds llama.cpp's own llama-imatrix, llama-quantize and
# llama-perplexity (the references for `phiq imatrix` and `convert --calib`)
# from the llama.cpp source that ../shared/tools/llama-ref/setup.sh unpacks
# into ~/.cache/llama-ref/src. Output: ~/.cache/llama-tools/build/bin, where
# tests/testutil.c (tu_llama_tool) looks; tests skip when it is absent.
# usage: sh scripts/llama-tools.sh [SRC] [OUT]
set -eu
SRC=${1:-${LLAMA_SRC:-$HOME/.cache/llama-ref/src}}
OUT=${2:-${PHIQ_LLAMA_TOOLS_DIR:-$HOME/.cache/llama-tools}}
[ -f "$SRC/CMakeLists.txt" ] || { echo "llama-tools: no llama.cpp source at $SRC (run ../shared/tools/llama-ref/setup.sh first)" >&2; exit 1; }
mkdir -p "$OUT"
# one compiler family for C and C++: a Debian without g++ but with clang
# (the test tools) would otherwise mix gcc with clang++ and fail on the
# clang-only warning flags llama.cpp then adds
if command -v g++ >/dev/null 2>&1 && command -v gcc >/dev/null 2>&1; then CCS="-DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++"
elif command -v clang++ >/dev/null 2>&1 && command -v clang >/dev/null 2>&1; then CCS="-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++"
else echo "llama-tools: no C++ compiler (g++ or clang++)" >&2; exit 1
fi
# shellcheck disable=SC2086
cmake -S "$SRC" -B "$OUT/build" $CCS -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=ON \
      -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF >"$OUT/cmake.log" 2>&1
cmake --build "$OUT/build" -j"${JOBS:-2}" --target llama-imatrix llama-quantize llama-perplexity >"$OUT/build.log" 2>&1
echo "$OUT/build/bin"
