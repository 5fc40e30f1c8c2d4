# bench/common.sh — the start the benchmark scripts share, sourced from the
# repository root after their own defaults: PHIQ (build/phiq, built when
# missing), THREADS (2), LAYERS (32, the real Phi-3-mini), WORK (bench-out,
# created).
PHIQ=${PHIQ:-build/phiq}
THREADS=${THREADS:-2}
LAYERS=${LAYERS:-32}
WORK=${WORK:-bench-out}
[ -x "$PHIQ" ] || make build >/dev/null
mkdir -p "$WORK"
