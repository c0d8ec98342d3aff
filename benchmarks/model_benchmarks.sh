#!/usr/bin/env bash
# Every benchmark whose figures depend on the shipped model, in the order a model change needs:
# the card's thresholds are tuned on validation tiles first, then everything is measured on
# held-out data with them, and docs/benchmarks.md and docs/model_card.md are regenerated.
# About 80 minutes on 2 CPU cores; run it alone (speed and scale figures are ratios measured
# side by side, and other work on the cores would bias them).
#
# Usage: bash benchmarks/model_benchmarks.sh [RUN]
#   RUN: a training run's folder; its model is shipped first (training/ship_model.py).
#   DECODER_ONLY=1 bash benchmarks/model_benchmarks.sh
#        after a change of how the shipped model's output is decoded into fluxes (the vote
#        mode, measuring) but not of its weights or peak finding: the steps that score
#        centres only (their figures cannot change) are skipped; about 60 minutes.
# Each step's output goes to benchmarks/output/logs/; the script stops at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
LOGS=benchmarks/output/logs
mkdir -p "$LOGS"
export TF_CPP_MIN_LOG_LEVEL=2

step() {
    local log="$LOGS/$(echo "$*" | tr ' /' '__' | tr -cd '[:alnum:]_.-' | cut -c1-80).log"
    echo "$(date +%T) $*"
    "$@" > "$log" 2>&1 || { echo "failed: $* (see $log)"; exit 1; }
}

# a step whose figures come from detected centres alone (no fluxes, no timing of decoding)
centres_step() {
    if [ -n "${DECODER_ONLY:-}" ]; then echo "$(date +%T) skipped (centres only): $*"; return; fi
    step "$@"
}

if [ $# -ge 1 ]; then
    step "$PY" training/ship_model.py "$1"
fi
step "$PY" benchmarks/accuracy.py --split val --tiles 400 --tune
step "$PY" benchmarks/accuracy.py --tiles 500
step "$PY" benchmarks/accuracy.py --tiles 1500 --conditions goods-s
step "$PY" benchmarks/accuracy.py --tiles 1500 --conditions goods-s --noise-correlation 0
centres_step "$PY" benchmarks/f1_limits.py --tiles 300
step "$PY" benchmarks/vote_modes.py --tiles 300
step "$PY" benchmarks/tile_sky_flux.py
centres_step "$PY" benchmarks/detection_failures.py --tiles 200
centres_step "$PY" benchmarks/detection_failures.py --tiles 200 --conditions goods-s --noise-correlation 0
centres_step "$PY" benchmarks/position_bias.py --tiles 200
step "$PY" benchmarks/real_cutouts.py
centres_step "$PY" benchmarks/sky_offset.py
centres_step "$PY" benchmarks/sky_on_tiles.py
centres_step "$PY" benchmarks/sky_on_tiles.py --noise-correlation 0
step "$PY" benchmarks/scarlet2_peer.py --tiles 30
centres_step "$PY" benchmarks/grid_phase.py --pairs 60 --phase-scenes 300
centres_step "$PY" benchmarks/speed.py
step "$PY" benchmarks/mosaic_stitching.py --size 4096
step "$PY" benchmarks/mosaic_scale.py --sizes 4096 16384 --memory-limit 3GB
# the four-band model: its thresholds tuned on validation tiles, then compared per band with
# the F160W model and the peers on held-out and real four-band data
FOUR=mosaic_pais/models/pais_fourband.keras
step "$PY" benchmarks/accuracy.py --split val --tiles 200 --tune --model "$FOUR"
step "$PY" benchmarks/flux_errors.py --split val --tiles 200 --calibrate --model "$FOUR"
step "$PY" benchmarks/matched_colours.py --tiles 300
step "$PY" benchmarks/four_band_accuracy.py --tiles 1000 --scarlet2-tiles 150
step "$PY" benchmarks/flux_errors.py --split test --tiles 200 --model "$FOUR"
step "$PY" benchmarks/real_four_band.py
step "$PY" training/ship_model.py --card
step "$PY" training/ship_model.py --card --name pais_fourband
# the HSC model: thresholds on its 128² validation tiles, then the simulated HSC blends
HSC=mosaic_pais/models/pais_hsc.keras
step "$PY" benchmarks/accuracy.py --split val --tiles 100 --tile-size 128 --tune --model "$HSC"
step "$PY" benchmarks/hsc_blends.py
step "$PY" training/ship_model.py --card --name pais_hsc
step "$PY" benchmarks/report.py
echo "$(date +%T) done: review docs/benchmarks.md, docs/model_card.md and the README's figures"
