#!/bin/sh
# compare-llamacpp.sh — phiq vs llama.cpp on the same GGUF files, same machine,
# same thread count, runs alternating, medians reported. A benchmark, not a test.
#
# Builds ../shared/tools/llama-ref, synthesizes a Phi-3-mini-shaped checkpoint
# with `phiq synth`, converts it to Q4_0, Q4_K_M, Q8_0 and F16 with phiq, then
# for each file measures decode tok/s (GEN tokens after a short prompt) and
# prefill tok/s (PROMPT-token prompt) with both engines.
#
# Environment: LAYERS (default 32 = the real model; fewer is quicker), THREADS
# (default 2), REPS (default 5), PROMPT (128), GEN (32), TYPES, WORK (bench-out).
set -eu
cd "$(dirname "$0")/.."
PHIQ=${PHIQ:-build/phiq}
LAYERS=${LAYERS:-32}
THREADS=${THREADS:-2}
REPS=${REPS:-5}
PROMPT=${PROMPT:-128}
GEN=${GEN:-32}
TYPES=${TYPES:-"Q4_0 Q4_K_M Q8_0 F16"}
WORK=${WORK:-bench-out}
[ -x "$PHIQ" ] || make build >/dev/null
REF=$(sh ../shared/tools/llama-ref/setup.sh | tail -1)
mkdir -p "$WORK"
SRC="$WORK/phi-3-mini-${LAYERS}l"
[ -f "$SRC/config.json" ] || "$PHIQ" synth --preset phi-3-mini-4k --layers "$LAYERS" --seed 1 -o "$SRC"

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

# the machine's read bandwidth (phiq bench --probe: best of plain and vector reads on huge pages),
# measured once, to show each type's decode as a fraction of it
first=$(echo $TYPES | cut -d' ' -f1)
F="$WORK/phi-3-mini-${LAYERS}l-$first.gguf"
[ -f "$F" ] || "$PHIQ" convert "$SRC" -o "$F" --type "$first" -t "$THREADS" --quiet
BW=$("$PHIQ" bench "$F" -t "$THREADS" --prompt 1 --gen 1 --reps 1 --probe --json |
  sed -E 's/.*"read_bandwidth_gb_s": ([0-9.]+).*/\1/')
echo "read bandwidth (phiq bench --probe, $THREADS threads): $BW GB/s"

printf "%-8s %12s %12s %7s %12s %12s %7s %9s %6s\n" type "phiq dec" "llama dec" ratio "phiq pre" "llama pre" ratio "dec GB/s" "of bw"
for T in $TYPES; do
  F="$WORK/phi-3-mini-${LAYERS}l-$T.gguf"
  [ -f "$F" ] || "$PHIQ" convert "$SRC" -o "$F" --type "$T" -t "$THREADS" --quiet
  : >"$WORK/$T.phiq"; : >"$WORK/$T.llama"
  i=0
  while [ $i -lt "$REPS" ]; do
    "$PHIQ" bench "$F" -t "$THREADS" --prompt "$PROMPT" --gen "$GEN" --reps 1 --json |
      sed -E 's/.*"prefill_tok_s": ([0-9.]+).*"decode_tok_s": ([0-9.]+).*"decode_gb_s": ([0-9.]+).*/\1 \2 \3/' >>"$WORK/$T.phiq"
    LLAMA_REF_THREADS=$THREADS "$REF" bench "$F" --prompt "$PROMPT" --gen "$GEN" |
      sed -E 's/prefill_tok_s ([0-9.]+) decode_tok_s ([0-9.]+)/\1 \2/' >>"$WORK/$T.llama"
    i=$((i + 1))
  done
  pp=$(cut -d' ' -f1 "$WORK/$T.phiq" | median); pd=$(cut -d' ' -f2 "$WORK/$T.phiq" | median)
  lp=$(cut -d' ' -f1 "$WORK/$T.llama" | median); ld=$(cut -d' ' -f2 "$WORK/$T.llama" | median)
  pg=$(cut -d' ' -f3 "$WORK/$T.phiq" | median)
  awk -v t="$T" -v pd="$pd" -v ld="$ld" -v pp="$pp" -v lp="$lp" -v pg="$pg" -v bw="$BW" 'BEGIN {
    printf "%-8s %12.2f %12.2f %6.2fx %12.2f %12.2f %6.2fx %9.2f %5.0f%%\n", t, pd, ld, (ld > 0 ? pd / ld : 0), pp, lp,
           (lp > 0 ? pp / lp : 0), pg, (bw > 0 ? 100 * pg / bw : 0) }'
done
echo "(tokens/s, medians of $REPS alternating runs, $THREADS threads, prompt $PROMPT, decode $GEN; model $SRC)"
