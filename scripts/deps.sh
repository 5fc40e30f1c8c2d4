#!/bin/sh
# deps.sh — makes sure the Debian packages phiq builds and tests with are
# installed: installs them with apt-get when run as root, otherwise prints the
# exact command and exits 1. Usage: scripts/deps.sh [build|test]
set -eu
need="cmake make gcc pkg-config libcjson-dev libpcre2-dev protobuf-c-compiler libprotobuf-c-dev libonnx-dev"
[ "${1:-build}" = test ] && need="$need libcmocka-dev npm nodejs git clang"
missing=""
for p in $need; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "phiq: installing Debian packages:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
  echo "phiq: missing Debian packages. Run:" >&2
  echo "  sudo apt-get install -y$missing" >&2
  exit 1
fi
