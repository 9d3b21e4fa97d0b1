#!/usr/bin/env bash
# The PyTorch reference fixtures of the parity tests (tests/fixtures/model/) are whole and
# consistent: layout, names and shapes against the weights table, loss equal to its parts,
# BCE recomputed with numpy (tools/check_references.py; needs numpy and ../shared/spec).
set -u
tsv="${MRM_SHARED:-../shared}/spec/mrmnet-weights.tsv"
if ! /usr/bin/python3 -c "import numpy" 2>/dev/null; then echo "skipped: numpy is not available"; exit 77; fi
if [ ! -f "$tsv" ]; then echo "skipped: $tsv is absent"; exit 77; fi
if /usr/bin/python3 tools/check_references.py --tsv "$tsv"; then
  echo "1 passed, 0 failed"
else
  echo "0 passed, 1 failed"
  exit 1
fi
