#!/usr/bin/env bash
# Trains the F160W model unattended, and resumes it: builds the simulated training set if it
# is missing (TRAIN_TILES train tiles, 3,000 by default, and 200 validation tiles of 256²;
# seeds disjoint from the 3,000,000+ test seeds; finished shards are kept), then trains from
# the last checkpoint of training/runs/$RUN, or from the one kept in the repository
# (training/resume/$RUN) on a fresh machine. Rerun it as often as the machine allows; each
# run stops after MINUTES (default: when the configuration's steps are done) and writes a
# checkpoint every few minutes. `bash training/keep_checkpoint.sh` copies the latest
# checkpoint into training/resume/$RUN to commit.
#
#   RUN=f160w_v15 MINUTES=120 bash training/train_f160w.sh
#
# RUN and CONFIG choose the run (training/configs/$CONFIG.json, CONFIG defaults to RUN), DATA
# the training-set folder (default training/data), FROM a model to start a new run from;
# TRAIN_TILES training scenes from scene number TRAIN_START (default 0), VAL_TILES validation
# scenes (0: use the folder's as they are).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
RUN=${RUN:-f160w_v15}
OUT="training/runs/$RUN"
if [ ! -d "$OUT/ckpt" ] && [ -d "training/resume/$RUN/ckpt" ]; then
    mkdir -p "$OUT" && cp -r "training/resume/$RUN/." "$OUT/"
fi
if [ -z "${FROM:-}" ] && [ ! -d "$OUT/ckpt" ] && [ "$RUN" = "f160w_v15" ]; then
    FROM=mosaic_pais/models/pais_f160w.keras  # the run continues the shipped f160w_v14
fi
"$BIN/mosaic-pais" train --data "${DATA:-training/data}" --output "$OUT" \
    --config "training/configs/${CONFIG:-$RUN}.json" \
    --simulate-tiles "${TRAIN_TILES:-3000}" --simulate-start "${TRAIN_START:-0}" \
    --val-tiles "${VAL_TILES:-200}" \
    --processes "${PROCESSES:-2}" ${MINUTES:+--minutes "$MINUTES"} ${FROM:+--from "$FROM"}
