#!/bin/sh
# llama-tools-setup.sh — the CTest fixture "llama_tools" (after "refs"): builds
# llama.cpp's own llama-imatrix, llama-quantize and llama-perplexity once per
# machine (scripts/llama-tools.sh) from the llama.cpp source the refs fixture
# unpacked into $PHIQ_REFS/src, into ~/.cache/llama-tools (or
# $PHIQ_LLAMA_TOOLS_DIR), where tu_llama_tool() looks. Normally only the
# tools' own sources are compiled, against the prebuilt llama.cpp libraries
# the refs fixture installed (about a minute); the output says whether that
# fast path or the full CMake build ran. Always exits 0: when it cannot
# build, the tests that need the tools skip (exit 77) saying why.
set -u
REFS=${PHIQ_REFS:-${HOME:-/tmp}/.cache/phiq-refs}
OUT=${PHIQ_LLAMA_TOOLS_DIR:-${HOME:-/tmp}/.cache/llama-tools}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT" || { echo "llama-tools: cannot create $OUT"; exit 0; }
exec 9>"$OUT/.lock"
flock 9
# built, and still starts (a fast-path build needs the prebuilt libraries it links)
ready() {
  for t in llama-imatrix llama-quantize llama-perplexity; do [ -x "$OUT/build/bin/$t" ] || return 1; done
  "$OUT/build/bin/llama-imatrix" --version >/dev/null 2>&1
}
if ready; then
  how="full CMake build"; [ ! -f "$OUT/build/bin/PREBUILT" ] || how="fast path: $(cat "$OUT/build/bin/PREBUILT")"
  echo "llama-tools: ready in $OUT/build/bin ($how)"; exit 0
fi
SRC=$REFS/src
[ -f "$SRC/CMakeLists.txt" ] || SRC=${HOME:-/tmp}/.cache/llama-ref/src
if [ ! -f "$SRC/CMakeLists.txt" ]; then
  echo "llama-tools: no llama.cpp source (the refs fixture unpacks it into $REFS/src); tests that need the tools skip"
  exit 0
fi
start=$(date +%s)
echo "llama-tools: building llama-imatrix, llama-quantize, llama-perplexity from $SRC"
if sh "$HERE/../scripts/llama-tools.sh" "$SRC" "$OUT" >/dev/null 2>"$OUT/setup.log"; then
  cat "$OUT/setup.log"
  echo "llama-tools: built in $(($(date +%s) - start)) s"
else
  cat "$OUT/setup.log"
  echo "llama-tools: build failed (see $OUT/fast.log, $OUT/cmake.log, $OUT/build.log); tests that need the tools skip"
fi
exit 0
