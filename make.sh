#!/bin/sh
# make.sh — the README's entry point: `./make.sh demo`, `./make.sh test`, or
# any other make target. A pristine Debian has no make: this installs it (with
# the rest of the build packages, scripts/deps.sh build) and then runs
# `make "$@"`, so the first command works where only the base system exists.
# Where make is already installed, `make demo` and `make test` are the same.
set -eu
cd "$(dirname "$0")"
if ! command -v make >/dev/null 2>&1; then
  echo "phiq: make is not installed: installing the build packages first (scripts/deps.sh build)" >&2
  sh scripts/deps.sh build || exit 1
fi
exec make "$@"
