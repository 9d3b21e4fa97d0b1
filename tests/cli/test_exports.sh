#!/usr/bin/env bash
# The libraries name only mrm_ symbols outside themselves: the shared library's dynamic symbols
# (cmake/libmrmnet.map) and the embeddable engine's global symbols. A name that leaks (an
# internal op such as add_forward) could clash with a caller's own.
set -u
B="${MRM_BUILD_DIR:-build}"
pass=0 fail=0
check() { # what, the offending names (empty: none)
  if [ -z "$2" ]; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: $1 names other than mrm_*: $(echo "$2" | head -5 | tr '\n' ' ')"; fi
}
if ! command -v nm >/dev/null; then echo "skipped: nm (binutils) is not installed"; exit 77; fi
so="$B/libmrmnet.so"
if [ -f "$so" ]; then
  all=$(nm -D --defined-only "$so" | awk 'NF == 3 {print $3}')
  [ -n "$(echo "$all" | grep '^mrm_model_forward$')" ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: $so lacks mrm_model_forward"; }
  check "$so" "$(echo "$all" | grep -v '^mrm_' || true)"
else
  echo "FAIL: $so is not built"; fail=$((fail + 1))
fi
eng="$B/libmrmnet_engine.a"
if [ -f "$eng" ]; then
  check "$eng" "$(nm -g --defined-only "$eng" | awk 'NF == 3 && $3 !~ /^mrm_/ {print $3}')"
else
  echo "FAIL: $eng is not built"; fail=$((fail + 1))
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
