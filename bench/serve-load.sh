#!/bin/sh
# serve-load.sh — `phiq serve` under load. A benchmark, not a test.
#
# On MODEL (default: a Phi-3-mini-shaped Q4_0 GGUF synthesized with `phiq
# synth` + `phiq convert`, 3.8B parameters of random weights) it measures:
#   1. `phiq bench`'s decode rate (the engine alone, one sequence);
#   2. one streamed request through the server (its decode rate should be within 5% of 1.);
#   3. 8 streamed requests at once: their aggregate decode rate (continuous batching: one
#      forward pass per step for all 8, the weights read once);
#   4. a bounded load run (REQUESTS requests, CONC at a time, loopback): time to first token
#      and inter-token latency percentiles.
# Environment: MODEL, THREADS (default 2), GEN (tokens per request, 64), REQUESTS (64),
# CONC (8), LAYERS (32, for the synthesized model), WORK (bench-out).
# Holds /tmp/phiq-bench.lock so benchmarks on a shared machine do not overlap.
set -eu
cd "$(dirname "$0")/.."
GEN=${GEN:-64}
REQUESTS=${REQUESTS:-64}
CONC=${CONC:-8}
. bench/common.sh
command -v node >/dev/null || { echo "serve-load: needs node (for the load client)" >&2; exit 1; }
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
BENCH=$("$PHIQ" bench "$MODEL" -t "$THREADS" --prompt 16 --gen "$GEN" --reps 3 --json)
DEC=$(echo "$BENCH" | sed -E 's/.*"decode_tok_s": ([0-9.]+).*/\1/')
echo "phiq bench decode: $DEC tok/s"
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
node bench/serve-load.mjs "$URL" solo 1 1 "$GEN" >/dev/null # warm: first touches of the weights
SOLO=$(node bench/serve-load.mjs "$URL" solo 1 1 "$GEN")
echo "1 stream:  $SOLO"
PAR=$(node bench/serve-load.mjs "$URL" parallel "$CONC" "$CONC" "$GEN")
echo "$CONC streams: $PAR"
LOAD=$(node bench/serve-load.mjs "$URL" load "$REQUESTS" "$CONC" "$GEN")
echo "load:      $LOAD"
S1=$(echo "$SOLO" | sed -E 's/.*"aggregate_decode_tok_s":([0-9.]+).*/\1/')
S8=$(echo "$PAR" | sed -E 's/.*"aggregate_decode_tok_s":([0-9.]+).*/\1/')
awk -v d="$DEC" -v s1="$S1" -v s8="$S8" -v c="$CONC" 'BEGIN {
  printf "one stream / phiq bench decode: %.3f   %d streams / one stream: %.2fx\n", s1 / d, c, s8 / s1 }'
kill -TERM $PID
wait $PID
trap - EXIT INT TERM
