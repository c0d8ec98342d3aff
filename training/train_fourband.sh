#!/usr/bin/env bash
# Trains the four-band model (F606W, F850LP, F125W, F160W) unattended, and resumes it, through
# training/train_f160w.sh with this run's configuration (training/configs/fourband_v1.json,
# whose "bands" make --simulate-tiles render four-band scenes, mosaic_pais.sim.bands) and its
# own training set (DATA, default training/data_fourband). A new run starts from the shipped
# F160W model made to read four bands (training/with_bands.py).
#
#   MINUTES=120 bash training/train_fourband.sh
#
# fourband_v3 fine-tunes the shipped model on 2,000 new scenes (numbers 3,000-4,999) labelled
# with each band's own flux weights, validated on fourband_v1's validation tiles:
#
#   RUN=fourband_v3 FROM=mosaic_pais/models/pais_fourband.keras DATA=training/data_fourband2 \
#       TRAIN_START=3000 TRAIN_TILES=2000 bash training/train_fourband.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export RUN=${RUN:-fourband_v1}
export DATA=${DATA:-training/data_fourband}
if [ -z "${FROM:-}" ] && [ ! -d "training/runs/$RUN/ckpt" ] \
        && [ ! -d "training/resume/$RUN/ckpt" ]; then
    mkdir -p "training/runs/$RUN"
    "${BIN:-.venv/bin}/python" training/with_bands.py mosaic_pais/models/pais_f160w.keras \
        "training/runs/$RUN/start.keras" --bands 4
    export FROM="training/runs/$RUN/start.keras"
fi
exec bash training/train_f160w.sh
