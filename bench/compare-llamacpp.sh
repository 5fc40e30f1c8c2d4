#!/bin/sh
# compare-llamacpp.sh — phiq vs llama.cpp on the same GGUF files, same machine,
# same thread count, runs alternating, medians reported. A benchmark, not a test.
#
# Builds ../shared/tools/llama-ref (the prebuilt libllama it uses is the
# llama.cpp side) and bench/llama_depth.c against it, synthesizes a
# Phi-3-mini-shaped checkpoint with `phiq synth` (8k positions without
# LongRoPE factors, so that a 4096-token depth fits both engines' context),
# converts it to Q4_0, Q4_K_M, Q8_0 and F16 with phiq, then for each file
# measures decode tok/s (GEN single tokens) and prefill tok/s (one batch of
# PROMPT tokens) with both engines, both on top of DEPTH cached tokens
# (filled untimed; as llama-bench -d), flash attention on for llama.cpp.
#
# Environment: LAYERS (default 32 = the real model; fewer is quicker), THREADS
# (default 2), REPS (alternating runs, default 5), INNER (repetitions inside
# each run, median, default 1), PROMPT (128), GEN (32), DEPTH (0), KV (KV
# cache type: f16 or q8_0), TYPES, WORK (bench-out), PHIQ_BASE (another phiq binary, e.g. an
# older commit's build: it runs in the same alternation and a second table gives after/before
# ratios, so a refactor's speed is checked against its base on the same work).
# Depth 4096 on 2 threads: each run refills the depth (minutes), so use
# REPS=1 INNER=3 there. Wrap in `flock /tmp/phiq-bench.lock` on a shared machine.
set -eu
cd "$(dirname "$0")/.."
REPS=${REPS:-5}
INNER=${INNER:-1}
PROMPT=${PROMPT:-128}
GEN=${GEN:-32}
DEPTH=${DEPTH:-0}
KV=${KV:-f16}
TYPES=${TYPES:-"Q4_0 Q4_K_M Q8_0 F16"}
PHIQ_BASE=${PHIQ_BASE:-}
. bench/common.sh
REF=$(sh ../shared/tools/llama-ref/setup.sh | tail -1)
REFDIR=$(dirname "$REF")
BINS=node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
WORK=$(cd "$WORK" && pwd)
LD="$WORK/llama_depth"
if [ ! -x "$LD" ] || [ bench/llama_depth.c -nt "$LD" ] || [ tests/ref/llama_driver.h -nt "$LD" ]; then
  SRCF=$(pwd)/bench/llama_depth.c
  (cd "$REFDIR" && cc -O2 -o "$LD" "$SRCF" -I src/include -I src/ggml/include $BINS/libllama.v*.so $BINS/libggml.v*.so \
     $BINS/libggml-base.so -Wl,-rpath,"$REFDIR/$BINS" -lm)
fi
SRC="$WORK/phi-3-mini-${LAYERS}l-8k"
[ -f "$SRC/config.json" ] || "$PHIQ" synth --preset phi-3-mini-4k --layers "$LAYERS" --ctx 8192 --ctx-orig 8192 --seed 1 -o "$SRC" -q

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

# the machine's read bandwidth (phiq bench --probe: best of plain reads and the kernels' widest loads, prefetched or not, on huge pages),
# measured once, to show each type's decode as a fraction of it
first=$(echo $TYPES | cut -d' ' -f1)
F="$SRC-$first.gguf"
[ -f "$F" ] || "$PHIQ" convert "$SRC" -o "$F" --type "$first" -t "$THREADS" --quiet
BW=$("$PHIQ" bench "$F" -t "$THREADS" --prompt 1 --gen 1 --reps 1 --probe --json |
  sed -E 's/.*"read_bandwidth_gb_s": ([0-9.]+).*/\1/')
echo "read bandwidth (phiq bench --probe, $THREADS threads): $BW GB/s"

printf "%-8s %12s %12s %7s %12s %12s %7s %9s %6s\n" type "phiq dec" "llama dec" ratio "phiq pre" "llama pre" ratio "dec GB/s" "of bw"
for T in $TYPES; do
  F="$SRC-$T.gguf"
  [ -f "$F" ] || "$PHIQ" convert "$SRC" -o "$F" --type "$T" -t "$THREADS" --quiet
  tag="$T-d$DEPTH-$KV"
  : >"$WORK/$tag.phiq"; : >"$WORK/$tag.llama"; : >"$WORK/$tag.base"
  i=0
  while [ $i -lt "$REPS" ]; do
    for P in "$PHIQ" $PHIQ_BASE; do
      out="$WORK/$tag.phiq"; [ "$P" = "$PHIQ" ] || out="$WORK/$tag.base"
      "$P" bench "$F" -t "$THREADS" --prompt "$PROMPT" --gen "$GEN" --depth "$DEPTH" --kv-type "$KV" --reps "$INNER" --json |
        sed -E 's/.*"prefill_tok_s": ([0-9.]+).*"decode_tok_s": ([0-9.]+).*"decode_gb_s": ([0-9.]+).*/\1 \2 \3/' >>"$out"
    done
    LLAMA_REF_BACKENDS="$REFDIR/backends" LLAMA_REF_THREADS=$THREADS "$LD" "$F" "$DEPTH" "$PROMPT" "$GEN" "$INNER" "$KV" |
      sed -E 's/prefill_tok_s ([0-9.]+) decode_tok_s ([0-9.]+)/\1 \2/' >>"$WORK/$tag.llama"
    i=$((i + 1))
  done
  pp=$(cut -d' ' -f1 "$WORK/$tag.phiq" | median); pd=$(cut -d' ' -f2 "$WORK/$tag.phiq" | median)
  lp=$(cut -d' ' -f1 "$WORK/$tag.llama" | median); ld=$(cut -d' ' -f2 "$WORK/$tag.llama" | median)
  pg=$(cut -d' ' -f3 "$WORK/$tag.phiq" | median)
  awk -v t="$T" -v pd="$pd" -v ld="$ld" -v pp="$pp" -v lp="$lp" -v pg="$pg" -v bw="$BW" 'BEGIN {
    printf "%-8s %12.2f %12.2f %6.2fx %12.2f %12.2f %6.2fx %9.2f %5.0f%%\n", t, pd, ld, (ld > 0 ? pd / ld : 0), pp, lp,
           (lp > 0 ? pp / lp : 0), pg, (bw > 0 ? 100 * pg / bw : 0) }'
  if [ -n "$PHIQ_BASE" ]; then
    bp=$(cut -d' ' -f1 "$WORK/$tag.base" | median); bd=$(cut -d' ' -f2 "$WORK/$tag.base" | median)
    echo "$T $bd $pd $bp $pp $ld $lp" >>"$WORK/base-rows.$$"
  fi
done
if [ -n "$PHIQ_BASE" ]; then
  echo "against PHIQ_BASE=$PHIQ_BASE (same alternation):"
  printf "%-8s %12s %12s %7s %12s %12s %7s %14s %14s\n" type "base dec" "phiq dec" ratio "base pre" "phiq pre" ratio \
    "base/llama dec" "base/llama pre"
  awk '{ printf "%-8s %12.2f %12.2f %6.2fx %12.2f %12.2f %6.2fx %13.2fx %13.2fx\n", $1, $2, $3, ($2 > 0 ? $3 / $2 : 0), $4, $5,
         ($4 > 0 ? $5 / $4 : 0), ($6 > 0 ? $2 / $6 : 0), ($7 > 0 ? $4 / $7 : 0) }' "$WORK/base-rows.$$"
  rm -f "$WORK/base-rows.$$"
fi
echo "(tokens/s, medians of $REPS alternating runs x $INNER, $THREADS threads, prompt $PROMPT, decode $GEN, depth $DEPTH, KV $KV;"
echo " model $SRC; dec GB/s counts the weights only, not the KV cache)"
