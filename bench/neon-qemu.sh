#!/bin/sh
# neon-qemu.sh — cross-compiles the kernel test for AArch64 (scalar + NEON dot and attention
# tables) and runs it under qemu-user twice: on qemu's default CPU (with the
# dotprod extension) and as a Cortex-A53 (baseline NEON, no dotprod).
# Dynamic link: libcmocka has no static arm64 build. Needs
# gcc-aarch64-linux-gnu, qemu-user and libcmocka-dev:arm64 (dpkg multiarch).
set -e
cd "$(dirname "$0")/.."
out=${NEON_OUT:-build/test_kernels_aarch64}
mkdir -p "$(dirname "$out")"
if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || ! command -v qemu-aarch64 >/dev/null 2>&1 ||
   [ ! -e /usr/lib/aarch64-linux-gnu/libcmocka.so ]; then
  echo "SKIPPED: neon-qemu: needs gcc-aarch64-linux-gnu, qemu-user and libcmocka-dev:arm64 (dpkg multiarch)"
  exit 77
fi
aarch64-linux-gnu-gcc -std=gnu11 -O2 -Wall -Wextra -Wno-unused-parameter -Wno-format-truncation -Iinclude -Isrc -Itests \
    -DPHIQ_SOURCE_DIR="\"$PWD\"" \
    src/kernels/cpu.c src/kernels/dispatch.c src/kernels/dot_scalar.c src/kernels/dot_neon.c \
    src/kernels/attn.c src/kernels/attn_neon.c src/kernels/gram.c \
    src/quant/quant.c src/quant/quant_search.c src/quant/quant_q32.c src/quant/quant_iq4.c src/quant/quant_k.c \
    src/core/common.c src/formats/ggml_type.c tests/testutil.c tests/test_kernels.c \
    -L/usr/lib/aarch64-linux-gnu -lcmocka -lm -lpthread -o "$out"
qemu-aarch64 -L / "$out" "$@"
qemu-aarch64 -L / -cpu cortex-a53 "$out" "$@"
