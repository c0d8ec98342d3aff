#!/usr/bin/env bash
# Copies the latest checkpoint of training/runs/$RUN (TensorFlow checkpoint, data RNG state,
# configuration, log) into training/resume/$RUN, to commit: the next run of
# training/train_f160w.sh on any machine resumes from it.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-f160w_v15}
SRC="training/runs/$RUN"
DST="training/resume/$RUN"
latest=$(sed -n 's/^model_checkpoint_path: "\(.*\)"/\1/p' "$SRC/ckpt/checkpoint")
rm -rf "$DST" && mkdir -p "$DST/ckpt"
cp "$SRC/ckpt/$latest".* "$DST/ckpt/"
printf 'model_checkpoint_path: "%s"\nall_model_checkpoint_paths: "%s"\n' "$latest" "$latest" \
    > "$DST/ckpt/checkpoint"
cp "$SRC/rng_state.json" "$SRC/config.json" "$SRC/log.csv" "$DST/"
du -sh "$DST"
