#!/usr/bin/env bash
# Writes the seed corpus of one fuzz harness into OUT_DIR: the hand-made seeds of corpus/<name>/
# and inputs made from the test fixtures (small files only: under 64 KB).
#   seeds.sh NAME OUT_DIR
set -euo pipefail
name=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
fix=$here/../fixtures
mkdir -p "$out"
[ -d "$here/corpus/$name" ] && cp "$here/corpus/$name"/* "$out"/ 2>/dev/null || true
small() { find "$fix" -type f -name "$1" -size -64k | sort; }
# A record bundle: the header, one NUL byte, then the signal file its first signal line names.
bundle() {
  local hea=$1 dat
  dat=$(grep -v '^#' "$hea" | sed -n 2p | awk '{print $1}')
  [ -n "$dat" ] && [ -f "$(dirname "$hea")/$dat" ] || return 0
  [ "$(stat -c %s "$(dirname "$hea")/$dat")" -lt 65536 ] || return 0
  { cat "$hea"; printf '\0'; cat "$(dirname "$hea")/$dat"; } > "$out/$(basename "$hea" .hea).rec"
}
case "$name" in
  wfdb_header) for f in $(small '*.hea'); do cp "$f" "$out/"; done ;;
  wfdb_record) for f in $(small '*.hea'); do bundle "$f"; done ;;
  csv) for f in $(small '*.csv'); do cp "$f" "$out/"; done ;;
  npy) for f in $(small '*.npy'); do cp "$f" "$out/"; done ;;
  safetensors) for f in $(small '*.safetensors'); do cp "$f" "$out/"; done ;;
  engine_image) for f in $(small '*.safetensors') $(small '*.mrme'); do cp "$f" "$out/"; done ;;
  mat_v4) for f in $(small '*.mat'); do head -c 20 "$f" | od -An -tu4 | awk '{exit !($1==30)}' && cp "$f" "$out/"; done ;;
  mat_v5) for f in $(small '*.mat'); do head -c 6 "$f" | grep -q MATLAB && cp "$f" "$out/"; done ;;
  scp) for f in $(small '*.scp') $(small '*.SCP'); do cp "$f" "$out/"; done ;;
  dicom) for f in $(small '*.dcm'); do cp "$f" "$out/"; done ;;
  edf) for f in $(small '*.edf'); do cp "$f" "$out/"; done ;;
  aecg) for f in $(small 'aecg_*.xml'); do cp "$f" "$out/"; done ;;
  muse) for f in $(small 'muse_*.xml'); do cp "$f" "$out/"; done ;;
  sierra) for f in $(small 'sierra_*'); do cp "$f" "$out/"; done ;;
  *) ;; # harnesses of other readers: their corpus/<name>/ folder only
esac
