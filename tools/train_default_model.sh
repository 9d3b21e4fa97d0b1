#!/usr/bin/env bash
# Rebuilds the bundled default model (models/ptbxl-superdiagnostic.safetensors) and the
# same-data comparison with the PyTorch twin, from the PTB-XL subset in ../shared/data/ptb-xl.
#   tools/train_default_model.sh [EPOCHS] [SEED]        (defaults: 10 epochs, seed 1)
# Writes runs/prep-super (prepared data), runs/c-s<SEED> (mrmnet), runs/torch-s<SEED> (PyTorch).
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-10}
seed=${2:-1}
shared=${MRM_SHARED:-../shared}
B=build/mrmnet
[ -x "$B" ] || scripts/build.sh build
$B prepare --ptbxl "$shared/data/ptb-xl" --task superdiagnostic --out runs/prep-super
$B train --data runs/prep-super --out runs/c-s"$seed" --epochs "$epochs" --seed "$seed" --threads 2
$B eval --model runs/c-s"$seed"/best.safetensors --data runs/prep-super --split test \
   --json runs/c-s"$seed"/test.json --roc runs/c-s"$seed"/roc.svg
/usr/bin/python3 tools/train_torch.py runs/prep-super --epochs "$epochs" --seed "$seed" \
   --out runs/torch-s"$seed"/best.safetensors --json runs/torch-s"$seed"/report.json
