#!/bin/sh
# deps.sh — makes sure the Debian packages phiq builds and tests with are
# installed: installs them with apt-get when run as root, otherwise prints the
# exact command and exits 1. Usage: scripts/deps.sh [build|test]
# Optional test tools (npm for llama.cpp/onnxruntime references, clang for the
# fuzzers) are installed when possible; tests that need them skip, saying why.
set -eu
# protobuf-c + libonnx-dev (official onnx.proto) for the ONNX exporter
need="cmake make gcc pkg-config libcjson-dev libpcre2-dev protobuf-c-compiler libprotobuf-c-dev libonnx-dev"
# libmicrohttpd-dev: the HTTP server of phiq serve (the CLI only)
need="$need libmicrohttpd-dev"
# libcurl (OpenSSL flavour) + libssl (sha256): phiq pull from the Hugging Face Hub (the CLI only)
need="$need libcurl4-openssl-dev libssl-dev"
optional=""
arm=""
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
if [ "${1:-build}" = test ]; then
  need="$need libcmocka-dev git python3" # python3: tests/hub_mock.py, the mock Hub of test_hub
  command -v clang >/dev/null 2>&1 || optional="$optional clang"
  command -v npm >/dev/null 2>&1 || optional="$optional npm"
  command -v node >/dev/null 2>&1 || optional="$optional nodejs" # onnxruntime-node tests
  [ -x /usr/bin/chromium ] || optional="$optional chromium"
  installed python3-numpy || optional="$optional python3-numpy"
  command -v valgrind >/dev/null 2>&1 || optional="$optional valgrind" # test_generate: no allocation per token
  # AArch64 NEON kernels: cross-compiled and run under qemu-user by CTest
  # (test_kernels_neon_qemu); cmocka for arm64 comes through dpkg multiarch.
  if [ "$(uname -m)" = x86_64 ] && { ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 ||
     ! command -v qemu-aarch64 >/dev/null 2>&1 || [ ! -e /usr/lib/aarch64-linux-gnu/libcmocka.so ]; }; then
    arm=1
  fi
fi
missing=""
for p in $need; do installed "$p" || missing="$missing $p"; done
[ -z "$missing" ] && [ -z "$optional" ] && [ -z "$arm" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || true
  if [ -n "$missing" ]; then
    echo "phiq: installing Debian packages:$missing" >&2
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
  for p in $optional; do
    echo "phiq: installing optional test tool: $p" >&2
    apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1 ||
      echo "phiq: could not install $p; tests that need it will be skipped" >&2
  done
  if [ -n "$arm" ]; then
    echo "phiq: installing the AArch64 cross compiler, qemu-user and libcmocka-dev:arm64 (NEON kernel test)" >&2
    { dpkg --add-architecture arm64 && apt-get update -qq >/dev/null 2>&1 &&
      apt-get install -y -qq --no-install-recommends gcc-aarch64-linux-gnu qemu-user libcmocka-dev:arm64 >/dev/null 2>&1; } ||
      echo "phiq: could not install the AArch64 tools; the NEON kernel test will be skipped" >&2
  fi
elif [ -n "$missing" ]; then
  echo "phiq: missing Debian packages. Run:" >&2
  echo "  sudo apt-get install -y$missing$optional" >&2
  exit 1
fi
