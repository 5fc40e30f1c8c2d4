#!/bin/sh
# demo.sh — the README's first command: convert the default model.
# Default model: ../shared/fixtures/tiny-phi3-kjv if present, else $PHIQ_MODEL,
# else a small random-weight model made by `phiq synth`.
set -eu
PHIQ=${1:-build/phiq}
OUT=demo-out
mkdir -p "$OUT"
if [ -d ../shared/fixtures/tiny-phi3-kjv ]; then
  MODEL=../shared/fixtures/tiny-phi3-kjv
elif [ -n "${PHIQ_MODEL:-}" ]; then
  MODEL=$PHIQ_MODEL
else
  MODEL=$OUT/synth-phi-3.5-mini-2l
  echo "demo: no fixture and no \$PHIQ_MODEL: synthesizing a 2-layer Phi-3.5-mini-shaped model in $MODEL"
  [ -d "$MODEL" ] || "$PHIQ" synth --preset phi-3.5-mini --layers 2 -o "$MODEL"
fi
echo "demo: model $MODEL"
"$PHIQ" convert "$MODEL" -o "$OUT/model-f16.gguf" --type f16
"$PHIQ" inspect "$OUT/model-f16.gguf"
