#!/usr/bin/env bash
# Builds the simulated training set (TRAIN_TILES train tiles, 3,000 by default, and 200 val
# tiles of 256×256; seeds disjoint from the 3,000,000+ test seeds; only the sources the data
# can show are labelled, train.labelled) and trains the shipped F160W model. Safe to rerun:
# finished shards are kept and training resumes from its
# last checkpoint. FROM=path.keras warm-starts a new run (run v2 was warm-started from the
# shipped v1 model, step 6,600; see docs/model_card.md). RUN and CONFIG choose the run, DATA
# the training-set folder (default training/data).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
RUN=${RUN:-f160w_v2}
"$BIN/mosaic-pais" train --data "${DATA:-training/data}" --output "training/runs/$RUN" \
    --config "training/configs/${CONFIG:-$RUN}.json" \
    --simulate-tiles "${TRAIN_TILES:-3000}" --val-tiles "${VAL_TILES:-200}" \
    --processes "${PROCESSES:-2}" ${MINUTES:+--minutes "$MINUTES"} ${FROM:+--from "$FROM"}
