#!/usr/bin/env bash
# The ctest of one fuzz harness: runs it once on each seed input (seeds.sh) and each input kept in
# tests/fuzz/regress/<name>/ (inputs that once crashed, hung or allocated without bound).
#   regress.sh HARNESS_BINARY NAME SCRATCH_DIR
# HARNESS_BINARY is the plain driver build (fuzzdrv_NAME) or the libFuzzer build (fuzz_NAME).
set -euo pipefail
bin=$1 name=$2 tmp=$3
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$tmp/seeds" && mkdir -p "$tmp/seeds"
bash "$here/seeds.sh" "$name" "$tmp/seeds"
inputs=("$tmp/seeds")
[ -d "$here/regress/$name" ] && inputs+=("$here/regress/$name")
n=$(find "${inputs[@]}" -type f | wc -l)
[ "$n" -gt 0 ] || { echo "no inputs for harness $name" >&2; exit 1; }
case "$(basename "$bin")" in
  fuzz_*) # libFuzzer: files given as arguments are run once each
    find "${inputs[@]}" -type f -print0 | sort -z |
      xargs -0 "$bin" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 ;;
  *) "$bin" "${inputs[@]}" ;;
esac
