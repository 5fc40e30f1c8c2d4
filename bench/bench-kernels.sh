#!/bin/sh
# bench-kernels.sh — builds the kernel microbenchmark against build/libphiq.a
# (run `cmake --build build` first) and runs it. Args: weight types (default: all).
# PHIQ_ISA=avx2 bench/bench-kernels.sh Q4_0  forces a lower ISA level.
set -e
cd "$(dirname "$0")/.."
cc -O2 -march=native -Iinclude -Isrc bench/bench-kernels.c build/libphiq.a -lpthread -lm \
   $(pkg-config --libs libcjson libpcre2-8) -o build/bench-kernels
exec build/bench-kernels "$@"
