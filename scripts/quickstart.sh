#!/usr/bin/env bash
# The first command of a new user: installs the Debian packages mrmnet needs (if missing),
# builds it, and labels the bundled sample ECGs with the bundled default model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
echo
echo "== mrmnet predict on the sample records (samples/), default model models/ptbxl-superdiagnostic.safetensors"
build/mrmnet predict --model models/ptbxl-superdiagnostic.safetensors samples/
