#!/bin/sh
# llama-tools.sh — builds llama.cpp's own llama-imatrix, llama-quantize and
# llama-perplexity (the references for `phiq imatrix` and `convert --calib`)
# from the llama.cpp source that ../shared/tools/llama-ref/setup.sh unpacks
# into DIR/src (~/.cache/llama-ref or the refs fixture's ~/.cache/phiq-refs).
# Output: OUT/build/bin (~/.cache/llama-tools/build/bin), where
# tests/testutil.c (tu_llama_tool) looks; tests skip when it is absent.
#
# Fast path (about a minute on 2 cores): setup.sh also installed, beside that
# source, node-llama-cpp's prebuilt libraries for the same llama.cpp release
# (DIR/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64) and picked the
# CPU backend variant this machine runs (DIR/backends). Then only the three
# tools' own sources are compiled, linked against those libraries (rpath to
# their directory), and that backend variant is linked into OUT/build/bin:
# the prebuilt libggml loads its CPU backend at run time
# (ggml_backend_load_all), searching the executable's directory for
# libggml-cpu-*.so. Otherwise, or when that build fails, the full CMake build
# of ggml, libllama and common (about 12 minutes on 2 cores).
# PHIQ_LLAMA_TOOLS_FULL=1 forces the full build.
# Says on stderr which path ran; prints the bin directory on stdout.
# usage: sh scripts/llama-tools.sh [SRC] [OUT]
set -eu
SRC=${1:-${LLAMA_SRC:-$HOME/.cache/llama-ref/src}}
OUT=${2:-${PHIQ_LLAMA_TOOLS_DIR:-$HOME/.cache/llama-tools}}
[ -f "$SRC/CMakeLists.txt" ] || { echo "llama-tools: no llama.cpp source at $SRC (run ../shared/tools/llama-ref/setup.sh first)" >&2; exit 1; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# one compiler family for C and C++: a Debian without g++ but with clang
# (the test tools) would otherwise mix gcc with clang++ and fail on the
# clang-only warning flags llama.cpp then adds
if command -v g++ >/dev/null 2>&1 && command -v gcc >/dev/null 2>&1; then CC=gcc CXX=g++
elif command -v clang++ >/dev/null 2>&1 && command -v clang >/dev/null 2>&1; then CC=clang CXX=clang++
else echo "llama-tools: no C++ compiler (g++ or clang++)" >&2; exit 1
fi

# the one file matching a glob, or failure (none, or more than one version)
# shellcheck disable=SC2086
one() { set -- $1; [ $# -eq 1 ] && [ -f "$1" ] && echo "$1"; }

fast() {
  pre=$(cd "$SRC/.." && pwd)
  bins=${PHIQ_LLAMA_PREBUILT:-$pre/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64}
  llama=$(one "$bins/libllama.v*.so") || { echo "no single libllama.v*.so in $bins"; return 1; }
  ggml=$(one "$bins/libggml.v*.so") || { echo "no single libggml.v*.so in $bins"; return 1; }
  cpu=$(one "$pre/backends/libggml-cpu-*.so") || { echo "no CPU backend chosen in $pre/backends"; return 1; }
  for f in "$bins/libllama-common.so" "$bins/libggml-base.so" "$SRC/tools/imatrix/imatrix.cpp" \
           "$SRC/tools/quantize/quantize.cpp" "$SRC/tools/perplexity/perplexity.cpp"; do
    [ -f "$f" ] || { echo "missing $f"; return 1; }
  done
  tmp=$OUT/fast.tmp
  rm -rf "$tmp" && mkdir -p "$tmp"
  # the flags llama.cpp's CMake gives a Release tool: C++17, -O3 -DNDEBUG
  cxx() {
    out=$1; shift
    # shellcheck disable=SC2086
    $CXX -std=c++17 -O3 -DNDEBUG -I"$SRC/include" -I"$SRC/ggml/include" -I"$SRC/common" -I"$SRC/vendor" \
         -o "$tmp/$out" "$@" "$bins/libllama-common.so" "$llama" "$ggml" "$bins/libggml-base.so" \
         -Wl,-rpath,"$bins" -pthread
  }
  # two lanes, as -j2: imatrix.cpp is the largest
  cxx llama-imatrix "$SRC/tools/imatrix/imatrix.cpp" & lane=$!
  ok=0
  cxx llama-quantize -I"$SRC/tools/quantize" "$SRC/tools/quantize/main.cpp" "$SRC/tools/quantize/quantize.cpp" &&
    cxx llama-perplexity -I"$SRC/tools/perplexity" "$SRC/tools/perplexity/main.cpp" "$SRC/tools/perplexity/perplexity.cpp" || ok=1
  wait "$lane" || ok=1
  [ "$ok" = 0 ] || { echo "compile failed"; return 1; }
  ln -sf "$cpu" "$tmp/" || return 1
  # the libraries resolve and the program starts
  "$tmp/llama-imatrix" --version >/dev/null 2>&1 || { echo "llama-imatrix does not start"; return 1; }
  mkdir -p "$OUT/build/bin" || return 1
  # a full build's libggml-cpu.so is not a variant the prebuilt loader picks
  # (it matches libggml-cpu-*.so only): the two sets can share the directory
  for t in llama-imatrix llama-quantize llama-perplexity "$(basename "$cpu")"; do
    mv -f "$tmp/$t" "$OUT/build/bin/$t" || return 1
  done
  rm -rf "$tmp"
  echo "the prebuilt llama.cpp libraries in $bins, CPU backend $(basename "$cpu")" >"$OUT/build/bin/PREBUILT"
}

if [ "${PHIQ_LLAMA_TOOLS_FULL:-0}" != 1 ]; then
  if why=$(fast 2>"$OUT/fast.log"); then
    echo "llama-tools: fast path: compiled the three tools against $(cat "$OUT/build/bin/PREBUILT")" >&2
    echo "$OUT/build/bin"
    exit 0
  fi
  echo "llama-tools: fast path not taken (${why:-failed}; see $OUT/fast.log); full CMake build" >&2
fi
# a fast path's backend link would make the full build's libggml load a
# second CPU backend
rm -f "$OUT/build/bin/PREBUILT"
for f in "$OUT/build/bin"/libggml-cpu-*.so; do [ ! -L "$f" ] || rm -f "$f"; done
cmake -S "$SRC" -B "$OUT/build" -DCMAKE_C_COMPILER=$CC -DCMAKE_CXX_COMPILER=$CXX -DCMAKE_BUILD_TYPE=Release \
      -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=ON \
      -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF >"$OUT/cmake.log" 2>&1
cmake --build "$OUT/build" -j"${JOBS:-2}" --target llama-imatrix llama-quantize llama-perplexity >"$OUT/build.log" 2>&1
echo "llama-tools: full CMake build of llama.cpp" >&2
echo "$OUT/build/bin"
