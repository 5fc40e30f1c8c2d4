#!/bin/sh
# serve-load.sh — `phiq serve` under load. A benchmark, not a test.
#
# On MODEL (default: a Phi-3-mini-shaped Q4_0 GGUF synthesized with `phiq
# synth` + `phiq convert`, 3.8B parameters of random weights) it measures:
#   1. `phiq bench`'s decode rate (the engine alone, one sequence) and
#   2. one streamed request through the server (its decode rate should be within 5% of 1.),
#      alternating ROUNDS times with the server up (the machine is shared and noisy: a lone
#      pair of samples can differ by 10% either way), medians of each reported;
#   3. 8 streamed requests at once: their aggregate decode rate (continuous batching: one
#      forward pass per step for all 8, the weights read once);
#   4. a bounded load run (REQUESTS requests, CONC at a time, loopback): time to first token
#      and inter-token latency percentiles.
# Environment: MODEL, THREADS (default 2), GEN (tokens per request, 64), REQUESTS (64),
# CONC (8), ROUNDS (8), LAYERS (32, for the synthesized model), WORK (bench-out).
# Holds /tmp/phiq-bench.lock so benchmarks on a shared machine do not overlap.
set -eu
cd "$(dirname "$0")/.."
GEN=${GEN:-64}
REQUESTS=${REQUESTS:-64}
CONC=${CONC:-8}
ROUNDS=${ROUNDS:-8}
. bench/common.sh
CLIENT="$WORK/serve_load" # the load client (bench/serve_load.c: libcurl, one thread, light on the CPU)
if [ ! -x "$CLIENT" ] || [ bench/serve_load.c -nt "$CLIENT" ]; then
  cc -O2 -std=c11 $(pkg-config --cflags libcurl 2>/dev/null) bench/serve_load.c \
    $(pkg-config --libs libcurl 2>/dev/null || echo -lcurl) -lcjson -o "$CLIENT"
fi
if [ -z "${MODEL:-}" ]; then
  MODEL="$WORK/phi-3-mini-${LAYERS}l-Q4_0.gguf"
  if [ ! -f "$MODEL" ]; then
    SRC="$WORK/phi-3-mini-${LAYERS}l"
    [ -f "$SRC/config.json" ] || "$PHIQ" synth --preset phi-3-mini-4k --layers "$LAYERS" --seed 1 -o "$SRC"
    "$PHIQ" convert "$SRC" -o "$MODEL" --type Q4_0 -t "$THREADS" --quiet
  fi
fi
exec 9>/tmp/phiq-bench.lock
flock 9
echo "model: $MODEL, $THREADS threads, $GEN tokens per request"
LOG="$WORK/serve-load.log"
"$PHIQ" serve "$MODEL" --port 0 -np "$CONC" -t "$THREADS" -c 1024 --queue "$REQUESTS" 2>"$LOG" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT INT TERM
i=0
until grep -q "listening on" "$LOG"; do
  i=$((i + 1)); [ $i -lt 1200 ] || { cat "$LOG"; exit 1; }
  kill -0 $PID 2>/dev/null || { cat "$LOG"; exit 1; }
  sleep 0.1
done
URL=$(grep -o 'http://[^/]*' "$LOG" | head -1)
"$CLIENT" "$URL" solo 1 1 "$GEN" >/dev/null # warm: first touches of the weights
median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
DECS="" S1S="" RATIOS=""
for r in $(seq "$ROUNDS"); do
  # ABBA: odd rounds bench first, even rounds the stream first, so that neither
  # always runs on the heels of the other
  [ $((r % 2)) -eq 0 ] && SOLO=$("$CLIENT" "$URL" solo 1 1 "$GEN")
  BENCH=$("$PHIQ" bench "$MODEL" -t "$THREADS" --prompt 16 --gen "$GEN" --reps 1 --json --quiet)
  D=$(echo "$BENCH" | sed -E 's/.*"decode_tok_s": ([0-9.]+).*/\1/')
  [ $((r % 2)) -eq 1 ] && SOLO=$("$CLIENT" "$URL" solo 1 1 "$GEN")
  S=$(echo "$SOLO" | sed -E 's/.*"aggregate_decode_tok_s":([0-9.]+).*/\1/')
  echo "round $r: phiq bench decode $D tok/s, 1 stream through the server $S tok/s"
  DECS="$DECS $D" S1S="$S1S $S" RATIOS="$RATIOS $(awk -v s="$S" -v d="$D" 'BEGIN { printf "%.4f", s / d }')"
done
DEC=$(echo $DECS | tr ' ' '\n' | median)
S1=$(echo $S1S | tr ' ' '\n' | median)
echo "phiq bench decode (median of $ROUNDS): $DEC tok/s"
echo "1 stream (median of $ROUNDS):          $S1 tok/s"
PAR=$("$CLIENT" "$URL" parallel "$CONC" "$CONC" "$GEN")
echo "$CONC streams: $PAR"
LOAD=$("$CLIENT" "$URL" load "$REQUESTS" "$CONC" "$GEN")
echo "load:      $LOAD"
S8=$(echo "$PAR" | sed -E 's/.*"aggregate_decode_tok_s":([0-9.]+).*/\1/')
# the paired statistic: the machine's speed drifts between rounds (10% here), and each
# round's two runs are back to back, so the median of the rounds' ratios is the figure
R=$(echo $RATIOS | tr ' ' '\n' | median)
awk -v r="$R" -v s1="$S1" -v s8="$S8" -v c="$CONC" 'BEGIN {
  printf "one stream / phiq bench decode (median of the rounds'"'"' ratios): %.3f   %d streams / one stream: %.2fx\n", r, c, s8 / s1 }'
kill -TERM $PID
wait $PID
trap - EXIT INT TERM
