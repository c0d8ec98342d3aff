#!/usr/bin/env bash
# Fine-tunes the four-band HST model to Subaru HSC's five bands (HSC-I, HSC-Z, HSC-Y, HSC-R,
# HSC-G), unattended and resumable, through training/train_f160w.sh with this run's
# configuration (training/configs/hsc_v1.json: its "bands" make --simulate-tiles render HSC
# scenes of 128² on the 0.168″ grid, each with its own seeing) and its own training set
# (DATA, default training/data_hsc). A new run starts from the shipped four-band model made to
# read the HSC bands (training/with_bands.py --source-bands): HSC-I is read as F160W (the
# detection band), HSC-Z as F850LP, HSC-Y as F125W, HSC-R and HSC-G as F606W.
#
#   MINUTES=60 bash training/train_hsc.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export RUN=${RUN:-hsc_v1}
export DATA=${DATA:-training/data_hsc}
export TRAIN_TILES=${TRAIN_TILES:-1500} VAL_TILES=${VAL_TILES:-100}
if [ -z "${FROM:-}" ] && [ ! -d "training/runs/$RUN/ckpt" ] \
        && [ ! -d "training/resume/$RUN/ckpt" ]; then
    mkdir -p "training/runs/$RUN"
    "${BIN:-.venv/bin}/python" training/with_bands.py mosaic_pais/models/pais_fourband.keras \
        "training/runs/$RUN/start.keras" --source-bands 0 2 1 3 3
    export FROM="training/runs/$RUN/start.keras"
fi
exec bash training/train_f160w.sh
