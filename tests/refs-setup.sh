#!/bin/sh
# refs-setup.sh — the CTest fixture "refs" (FIXTURES_SETUP, run once before the
# tests that need it): installs the npm-borne references the tests compare
# with, once per machine, into $PHIQ_REFS (default ~/.cache/phiq-refs):
#   llama-ref        llama.cpp's own library (../shared/tools/llama-ref/setup.sh)
#   onnxruntime-node ONNX Runtime, CPU (test_onnx_ort)
#   js-tiktoken      the tiktoken encoder (test_tokenizer_random)
#   openai, puppeteer-core  the official OpenAI client and a Chromium driver (test_serve)
# in one npm install. Gives up within seconds when npm or its registry cannot
# be reached. Writes one line "NAME: why" per reference it could not provide
# to $PHIQ_REFS/unavailable, which the tests quote when they skip (exit 77).
# Always exits 0: a missing reference is the tests' skip, not a failure here.
set -u
REFS=${PHIQ_REFS:-${HOME:-/tmp}/.cache/phiq-refs}
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED=${PHIQ_SHARED:-$HERE/../../shared}
LLAMA_VER=3.22.1 # the llama.cpp release node-llama-cpp ships; ../shared/tools/llama-ref/setup.sh pins the same
PKGS="node-llama-cpp@$LLAMA_VER @node-llama-cpp/linux-x64@$LLAMA_VER onnxruntime-node@1.30.0 js-tiktoken@1.0.21 openai@4 puppeteer-core@24"

mkdir -p "$REFS" || { echo "refs: cannot create $REFS"; exit 0; }
exec 9>"$REFS/.lock"
flock 9 # one install per machine, whichever test or script comes first

have() { [ -f "$REFS/node_modules/$1/package.json" ]; }
complete() { have onnxruntime-node && have js-tiktoken && have openai && have puppeteer-core && [ -x "$REFS/llama-ref" ]; }
give_up() { # reason: every reference not there is unavailable for it
  : >"$REFS/unavailable"
  [ -x "$REFS/llama-ref" ] || echo "llama-ref: $1" >>"$REFS/unavailable"
  have onnxruntime-node || echo "onnxruntime-node: $1" >>"$REFS/unavailable"
  have js-tiktoken || echo "js-tiktoken: $1" >>"$REFS/unavailable"
  have openai || echo "openai: $1" >>"$REFS/unavailable"
  echo "refs: $1"
  cat "$REFS/unavailable"
  exit 0
}
if complete; then
  rm -f "$REFS/unavailable"
  echo "refs: llama-ref, onnxruntime-node, js-tiktoken, openai ready in $REFS"
  exit 0
fi
command -v npm >/dev/null 2>&1 || give_up "npm not found (scripts/deps.sh test installs nodejs and npm)"
command -v node >/dev/null 2>&1 || give_up "node not found (scripts/deps.sh test installs nodejs)"
start=$(date +%s)
if ! have onnxruntime-node || ! have js-tiktoken || ! have openai || ! have puppeteer-core || [ ! -d "$REFS/node_modules/@node-llama-cpp/linux-x64" ]; then
  # a registry that does not answer in 20 s will not serve 100 MB: say so now
  if ! timeout 20 npm ping >"$REFS/npm-ping.log" 2>&1; then
    give_up "the npm registry does not answer (timeout 20 npm ping: $(grep -m1 -iE 'err|code' "$REFS/npm-ping.log" | cut -c1-160))"
  fi
  [ -f "$REFS/package.json" ] || echo '{"name":"phiq-refs","private":true}' >"$REFS/package.json"
  echo "refs: npm install $PKGS into $REFS"
  # --ignore-scripts: the packages ship their binaries; their install scripts would download more
  # shellcheck disable=SC2086
  if ! (cd "$REFS" && timeout 900 npm install --no-audit --no-fund --ignore-scripts $PKGS) >"$REFS/npm.log" 2>&1; then
    give_up "npm install failed (see $REFS/npm.log: $(grep -m1 -E 'npm (ERR|error)' "$REFS/npm.log" | cut -c1-200))"
  fi
fi
if [ ! -x "$REFS/llama-ref" ]; then
  if [ ! -f "$SHARED/tools/llama-ref/setup.sh" ]; then
    give_up "no $SHARED/tools/llama-ref/setup.sh"
  fi
  echo "refs: building llama-ref against the llama.cpp in @node-llama-cpp/linux-x64"
  sh "$SHARED/tools/llama-ref/setup.sh" "$REFS" >"$REFS/llama-ref-setup.log" 2>&1 ||
    give_up "llama-ref setup failed: $(tail -1 "$REFS/llama-ref-setup.log" | cut -c1-200) (see $REFS/llama-ref-setup.log)"
fi
complete || give_up "installed, yet missing (see $REFS/npm.log)"
rm -f "$REFS/unavailable"
echo "refs: llama-ref, onnxruntime-node and js-tiktoken installed in $REFS in $(($(date +%s) - start)) s"
exit 0
