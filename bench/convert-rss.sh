#!/bin/sh
# convert-rss.sh — peak resident memory of `phiq convert` on a full-size
# checkpoint: synthesizes a 3.8B-parameter Phi-3.5-mini (32 layers, BF16,
# sharded, ~7.6 GB; kept for reruns) and converts it to F16 under
# /usr/bin/time -v. Not a test: needs ~16 GB of free disk and minutes.
#
#   bench/convert-rss.sh [WORKDIR] [TYPE]     (PHIQ=path/to/phiq, default build/phiq)
set -eu
PHIQ=${PHIQ:-build/phiq}
WORK=${1:-${TMPDIR:-/tmp}/phiq-convert-rss}
TYPE=${2:-f16}
THREADS=${THREADS:-2}
mkdir -p "$WORK"
if [ ! -f "$WORK/hf/model.safetensors.index.json" ]; then
    echo "synthesizing phi-3.5-mini (3.8B, bf16) into $WORK/hf ..." >&2
    "$PHIQ" synth --preset phi-3.5-mini -q -o "$WORK/hf"
fi
du -sh "$WORK/hf" >&2
rm -f "$WORK/out.gguf"
/usr/bin/time -v "$PHIQ" convert "$WORK/hf" -o "$WORK/out.gguf" --type "$TYPE" -t "$THREADS" --quiet \
    2>"$WORK/time.txt"
ls -l "$WORK/out.gguf" >&2
grep -E "Maximum resident set size|Elapsed \(wall clock\)|User time|System time" "$WORK/time.txt"
rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time.txt")
echo "peak RSS: $((rss_kb / 1024)) MB for $(du -m "$WORK/out.gguf" | cut -f1) MB written ($TYPE)"
rm -f "$WORK/out.gguf"
