#!/usr/bin/env bash
# Builds the simulated training set (2,000 train / 200 val tiles of 256×256, seeds disjoint from
# the 3,000,000+ test seeds) and trains the shipped F160W model. Safe to rerun: finished shards
# are kept and training resumes from its last checkpoint. FROM=path.keras warm-starts a new run
# (the shipped v1 run was warm-started from the first 1,350 steps of run v1a, whose loss had no
# vector_radius; see docs/model_card.md).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
"$BIN/mosaic-pais" train --data training/data --output training/runs/f160w_v1 \
    --config training/configs/f160w_v1.json \
    --simulate-tiles "${TRAIN_TILES:-2000}" --val-tiles "${VAL_TILES:-200}" \
    --processes "${PROCESSES:-2}" ${MINUTES:+--minutes "$MINUTES"} ${FROM:+--from "$FROM"}
