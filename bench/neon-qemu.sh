#!/bin/sh
# neon-qemu.sh — cross-compiles the kernel test for AArch64 (scalar + NEON
# tables) and runs it under qemu-user twice: on qemu's default CPU (with the
# dotprod extension) and as a Cortex-A53 (baseline NEON, no dotprod).
# Dynamic link: libcmocka has no static arm64 build. Needs
# gcc-aarch64-linux-gnu, qemu-user and libcmocka-dev:arm64 (dpkg multiarch).
set -e
cd "$(dirname "$0")/.."
out=build/test_kernels_aarch64
aarch64-linux-gnu-gcc -std=gnu11 -O2 -Wall -Wextra -Wno-unused-parameter -Wno-format-truncation -Iinclude -Isrc -Itests \
    src/kernels/cpu.c src/kernels/dispatch.c src/kernels/dot_scalar.c src/kernels/dot_neon.c \
    src/quant/quant.c src/quant/quant_k.c \
    src/core/common.c src/formats/ggml_type.c tests/testutil.c tests/test_kernels.c \
    -L/usr/lib/aarch64-linux-gnu -lcmocka -lm -lpthread -o "$out"
qemu-aarch64 -L / "$out" "$@"
qemu-aarch64 -L / -cpu cortex-a53 "$out" "$@"
