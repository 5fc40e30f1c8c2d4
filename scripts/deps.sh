#!/bin/sh
# deps.sh — makes sure the Debian packages phiq builds and tests with are
# installed: installs them with apt-get when run as root (waiting for another
# apt/dpkg to let go of its lock), otherwise prints the exact command and
# exits 1. Usage: scripts/deps.sh [build|test]
#   build  what `make` / `make demo` compile and link with (no test suite)
#   test   build + the test suite's build + the references and tools the tests
#          run (a test that still lacks one skips, naming it, in the summary)
set -eu

# ---- the package lists: one package per line, so additions merge cleanly ----
# build: libphiq (libc, libm, pthreads, PCRE2), the CLI and the ONNX exporter
# (protobuf-c + libonnx-dev's official onnx.proto); ca-certificates for npm/git.
# libmicrohttpd-dev: the HTTP server of phiq serve (the CLI only).
# libcurl4-openssl-dev + libssl-dev (sha256): phiq pull from the Hugging Face Hub (the CLI only).
BUILD_PKGS="
ca-certificates
cmake
gcc
libc6-dev
libcjson-dev
libcurl4-openssl-dev
libmicrohttpd-dev
libonnx-dev
libpcre2-dev
libprotobuf-c-dev
libssl-dev
make
pkg-config
protobuf-c-compiler
"
# test: what configuring and building the test suite needs on top of build;
# python3 runs tests/hub_mock.py, the mock Hugging Face Hub of test_hub.
TEST_PKGS="
git
libcmocka-dev
python3
"
# test tools: the references the tests compare with, and the checkers.
#   clang + libclang-rt-14-dev  the libFuzzer targets (fuzz.sh; the runtime is only a Recommends)
#   nodejs + npm                llama-ref, onnxruntime-node, js-tiktoken (tests/refs-setup.sh)
#   python3-numpy               the numpy forward pass of HF's modeling code (tests/ref)
#   python3-jinja2              test_template_ref: chat templates rendered as transformers renders them
#   valgrind                    test_generate: no heap allocation per token
#   chromium                    test_report: the HTML report renders
TOOL_PKGS="
chromium
clang
libclang-rt-14-dev
nodejs
npm
python3-jinja2
python3-numpy
valgrind
"
# arm64 cross: the NEON kernels cross-compiled and run under qemu-user
# (test_kernels_neon_qemu); the cross compiler's own libc headers come from
# libc6-dev-arm64-cross, cmocka for arm64 through dpkg multiarch.
ARM64_PKGS="
gcc-aarch64-linux-gnu
libc6-dev-arm64-cross
libcmocka-dev:arm64
qemu-user
"

what=${1:-build}
case $what in
  build) lists="BUILD_PKGS" ;;
  test) lists="BUILD_PKGS TEST_PKGS TOOL_PKGS"
        [ "$(uname -m)" = x86_64 ] && lists="$lists ARM64_PKGS" ;;
  *) echo "usage: scripts/deps.sh [build|test]" >&2; exit 2 ;;
esac

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# A tool another way installed (e.g. node and npm from another repository)
# counts: Debian's npm would not install beside it.
present() {
  installed "$1" && return 0
  case $1 in
    nodejs) command -v node ;;
    npm | clang | valgrind | chromium | cmake | make | gcc | git | python3) command -v "$1" ;;
    *) false ;;
  esac >/dev/null 2>&1
}
missing_of() { # LIST-NAME -> the packages of that list not present
  eval "pkgs=\$$1"
  out=""
  for p in $pkgs; do present "$p" || out="$out $p"; done
  echo "$out"
}

missing=""
for l in $lists; do missing="$missing$(missing_of "$l")"; done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "phiq: missing Debian packages. Run:" >&2
  case $missing in *:arm64*) echo "  sudo dpkg --add-architecture arm64 && sudo apt-get update" >&2 ;; esac
  echo "  sudo apt-get install -y --no-install-recommends$missing" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Wait up to 10 minutes for a running apt/dpkg (common right after boot).
APT="apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3 -y -qq --no-install-recommends"
apt_update() { # the lists lock is not covered by DPkg::Lock::Timeout on every apt: retry
  i=0
  until $APT update >/dev/null; do
    i=$((i + 1)); [ $i -lt 20 ] || return 1
    echo "phiq: apt-get update failed (another apt running?), retrying in 30 s" >&2; sleep 30
  done
}

# A TLS-inspecting egress's CA may reach a new machine only as the file that
# NODE_EXTRA_CA_CERTS, SSL_CERT_FILE, ... name (e.g. /etc/ssl/certs/ca-certificates.crt
# placed before ca-certificates is installed). Installing ca-certificates
# rewrites that file from Debian's list, and npm then fails with
# SELF_SIGNED_CERT_IN_CHAIN. Keep those files and give back the certificates the
# rewrite dropped through /usr/local/share/ca-certificates, which
# update-ca-certificates adds to the bundle from then on.
cakeep=$(mktemp -d)
trap 'rm -rf "$cakeep"' EXIT
ca_files() {
  for v in NODE_EXTRA_CA_CERTS SSL_CERT_FILE CURL_CA_BUNDLE GIT_SSL_CAINFO REQUESTS_CA_BUNDLE; do
    eval "f=\${$v:-}"
    [ -n "$f" ] && [ -f "$f" ] && echo "$f"
  done | sort -u
}
for f in $(ca_files); do cp "$f" "$cakeep/$(echo "$f" | tr / _)"; done
ca_restore() {
  n=0
  for f in $(ca_files); do
    k="$cakeep/$(echo "$f" | tr / _)"
    [ -f "$k" ] && ! cmp -s "$k" "$f" || continue
    n=$(awk -v dir=/usr/local/share/ca-certificates -v n="$n" '
      { sub(/\r$/, "") }
      FNR == NR { if (/-----BEGIN CERTIFICATE-----/) { b = ""; inb = 1 }
                  else if (/-----END CERTIFICATE-----/) { have[b] = 1; inb = 0 } else if (inb) b = b $0
                  next }
      /-----BEGIN CERTIFICATE-----/ { b = ""; blk = $0 "\n"; inb = 1; next }
      inb { blk = blk $0 "\n"
            if (/-----END CERTIFICATE-----/) {
              inb = 0
              if (!(b in have)) { n++; out = dir "/phiq-kept-" n ".crt"; printf "%s", blk > out; close(out) }
            } else b = b $0 }
      END { print n }' "$f" "$k")
  done
  if [ "$n" -gt 0 ]; then
    echo "phiq: kept $n certificate(s) of \$NODE_EXTRA_CA_CERTS & co. that installing ca-certificates dropped" >&2
    update-ca-certificates >/dev/null 2>&1 || true
  fi
}

need=$(for l in $lists; do [ "$l" = TOOL_PKGS ] || [ "$l" = ARM64_PKGS ] || missing_of "$l"; done | tr '\n' ' ')
tools="" arm=""
case $lists in *TOOL_PKGS*) tools=$(missing_of TOOL_PKGS) ;; esac
case $lists in *ARM64_PKGS*) arm=$(missing_of ARM64_PKGS) ;; esac
case $arm in *:arm64*) dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64 ;; esac
apt_update || echo "phiq: apt-get update failed; trying the package lists there are" >&2
if [ -n "$(echo $need)" ]; then
  echo "phiq: installing Debian packages: $(echo $need)" >&2
  # shellcheck disable=SC2086
  $APT install $need >/dev/null || { ca_restore; echo "phiq: apt-get install failed:$need" >&2; exit 1; }
fi
# tools and the cross toolchain: all in one go; if that fails, one by one so
# that one missing package costs only the tests that need it
# shellcheck disable=SC2086
if [ -n "$(echo $tools $arm)" ]; then
  echo "phiq: installing test tools: $(echo $tools $arm)" >&2
  if ! $APT install $tools $arm >/dev/null 2>&1; then
    for p in $tools $arm; do
      $APT install "$p" >/dev/null 2>&1 || echo "phiq: could not install $p; the tests that need it will skip, saying so" >&2
    done
  fi
fi
ca_restore
exit 0
