#!/usr/bin/env bash
# libmrmnet_engine is dependency-free and allocation-free: its objects call no allocator, no
# thread or OpenMP function, no oneDNN, no printing or exiting, and define only mrm_-prefixed
# global symbols. Usage: test_engine_symbols.sh NM LIBRARY
set -euo pipefail
NM=$1 LIB=$2
[ -f "$LIB" ] || { echo "no library $LIB"; exit 1; }
undef=$("$NM" -u "$LIB" | awk 'NF {print $NF}' | sed 's/@.*//' | sort -u)
bad=$(echo "$undef" | grep -E '^(malloc|calloc|realloc|free|aligned_alloc|posix_memalign|memalign|valloc|mmap|brk|sbrk|pthread_.*|omp_.*|GOMP_.*|dnnl.*|printf|fprintf|puts|fputs|fwrite|fopen|exit|_exit|abort|Mat_.*|json_.*|xml.*)$' || true)
if [ -n "$bad" ]; then echo "FAIL: libmrmnet_engine calls: $bad"; exit 1; fi
defs=$("$NM" -g --defined-only "$LIB" | awk 'NF == 3 {print $3}' | sort -u)
badd=$(echo "$defs" | grep -v -E '^(mrm_|__odr_asan|__asan|__ubsan|__sancov)' || true)
if [ -n "$badd" ]; then echo "FAIL: libmrmnet_engine defines non-mrm_ symbols: $badd"; exit 1; fi
echo "libmrmnet_engine: $(echo "$undef" | wc -l) external references, none an allocator, thread, print or exit;"
echo "defines $(echo "$defs" | wc -l) global symbols, all mrm_-prefixed"
echo "1 passed, 0 failed"
