#!/bin/sh
# demo.sh — the README's first command: which precision should this device
# use? Converts the default model to fp32, fp16, int8 and int4, measures each
# (perplexity, KL divergence against fp32, size, speed), prints the table,
# writes the HTML report, answers one chat prompt with the int4 model, and
# ends with the `phiq serve` command that serves it.
# Default model: ../shared/fixtures/tiny-phi3-kjv if present, else $PHIQ_MODEL,
# else a small random-weight model made by `phiq synth` (saying so).
set -eu
PHIQ=${1:-build/phiq}
OUT=${PHIQ_DEMO_OUT:-demo-out}
mkdir -p "$OUT"
if [ -d ../shared/fixtures/tiny-phi3-kjv ]; then
  MODEL=../shared/fixtures/tiny-phi3-kjv
elif [ -n "${PHIQ_MODEL:-}" ]; then
  MODEL=$PHIQ_MODEL
else
  MODEL=$OUT/synth-phi-3.5-mini-2l
  echo "demo: no fixture and no \$PHIQ_MODEL: using a random-weight 2-layer Phi-3.5-mini-shaped model made by phiq synth ($MODEL)"
  [ -f "$MODEL/config.json" ] || "$PHIQ" synth --preset phi-3.5-mini --layers 2 -o "$MODEL"
fi
TEXT=../shared/fixtures/text/kjv-heldout.txt
[ -f "$TEXT" ] || TEXT=README.md
echo "demo: model $MODEL"
"$PHIQ" report "$MODEL" --types fp32,fp16,int8,int4 --text "$TEXT" -o "$OUT"
echo
echo "demo: one chat turn with the int4 model ($OUT/model-int4.gguf):"
"$PHIQ" run "$OUT/model-int4.gguf" --chat -p "Who made the heaven and the earth?" -n 48 --temp 0 2>/dev/null
echo
echo "demo: open $OUT/report.html in a browser for the charts"
echo
echo "demo: serve the int4 model (OpenAI API and a chat page at http://127.0.0.1:8080/):"
echo "  $PHIQ serve $OUT/model-int4.gguf --parallel 4"
