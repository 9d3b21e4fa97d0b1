#!/usr/bin/env bash
# Instruction counts (not timings) of the engine's convolution inner loops on aarch64, from the
# disassembly of the cross-compiled kernels (aarch64-linux-gnu-objdump -d): for each kernel set,
# every innermost loop of its tiles (a backward branch whose body holds the multiply-adds and no
# other backward branch), its instructions by kind, and the instructions per 4 input channels x
# 1 tap x one tile (6 output channels x 16 steps in every set): one loop iteration of the int8
# kernels, four of the float kernel (one input channel per iteration).
# Usage: scripts/count-aarch64-insns.sh [AARCH64_BUILD]   (default build-engine-aarch64, as
# scripts/test-engine.sh leaves it)
set -euo pipefail
cd "$(dirname "$0")/.."
b=${1:-build-engine-aarch64}
objdir=$b/CMakeFiles/mrmnet_engine.dir/src/engine
OBJDUMP=${OBJDUMP:-aarch64-linux-gnu-objdump}
for f in kern_portable kern_neondot; do
  [ -f "$objdir/$f.c.o" ] || { echo "count-aarch64-insns.sh: $objdir/$f.c.o missing: build $b first (scripts/test-engine.sh)" >&2; exit 1; }
done
dis() { "$OBJDUMP" -d --no-show-raw-insn "$objdir/$1.c.o"; }
# $1: label, $2: object, $3: function name pattern, $4: the multiply-add mnemonics (regex),
# $5: iterations per (4 input channels x 1 tap), $6: 0 when the innermost loop is the loop over
# taps; N when it is a loop of N iterations inside the loop over taps (the generic int8 tile,
# whose accumulators GCC keeps in memory and updates one output channel at a time): then per
# tap = the enclosing loop's own instructions + N x the inner loop's
count() {
  dis "$2" | python3 -c '
import re, sys
label, fpat, work, per, nest = sys.argv[1], re.compile(sys.argv[2]), re.compile(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
funcs, cur = {}, None
for line in sys.stdin:
    m = re.match(r"^[0-9a-f]+ <([^>]+)>:", line)
    if m:
        cur = m.group(1); funcs[cur] = []; continue
    m = re.match(r"^\s+([0-9a-f]+):\s+(\S+)\s*(.*)$", line)
    if m and cur: funcs[cur].append((int(m.group(1), 16), m.group(2), m.group(3)))
seen = set()
for fn, ins in funcs.items():
    if not fpat.search(fn): continue
    addrs = [a for a, _, _ in ins]
    loops = []
    for a, op, args in ins:
        if op.startswith("b") and not op.startswith("bl") and op not in ("br", "bic", "bif", "bit", "bsl", "bfi", "bfxil") or op in ("cbz", "cbnz", "tbz", "tbnz"):
            t = re.search(r"\b([0-9a-f]+) <", args)
            if t and addrs[0] <= int(t.group(1), 16) <= a: loops.append((int(t.group(1), 16), a))
    for lo, hi in loops:
        if any(l2 >= lo and h2 <= hi and (l2, h2) != (lo, hi) for l2, h2 in loops): continue  # not innermost
        body = [(op, args) for a, op, args in ins if lo <= a <= hi]
        nwork = sum(1 for op, _ in body if work.fullmatch(op))
        if not nwork: continue
        kinds = {}
        for op, args in body:
            k = "multiply-add" if work.fullmatch(op) else "load" if op.startswith("ld") else "store" if op.startswith("st") else "branch/compare" if op.startswith(("b", "cmp", "cb", "tb")) else "other"
            if k == "other" and re.match(r"(and|ushr|sshr|shl|ushl|sshl|xtn|uxtl|sxtl|movi|dup|mov|ext|ins|tbl|zip|uzp|trn|eor|orr|ext|fmov|umov|smov|scvtf|ucvtf)$", op):
                k = "vector shuffle/convert"
            kinds[k] = kinds.get(k, 0) + 1
        span = (lo, hi)
        if nest:
            outer = [(l2, h2) for l2, h2 in loops if l2 <= lo and h2 >= hi and (l2, h2) != (lo, hi)]
            if outer: span = min(outer, key=lambda lh: lh[1] - lh[0])
        anys = any(op == "sdiv" for a, op, _ in ins if span[0] <= a <= span[1])
        desc = ", ".join("%d %s" % (v, k) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
        if anys: desc += "; k % s, k / s: the tile of strides > 2"
        own = sum(1 for a, _, _ in ins if span[0] <= a <= span[1] and not lo <= a <= hi)
        key = (len(body), tuple(sorted(kinds.items())), anys, own)
        if key in seen: continue
        seen.add(key)
        if nest:
            if span == (lo, hi): continue
            ol, oh = span
            print("%-22s loop %5x-%5x: %3d instructions per iteration (%s), run %d times inside the tap loop %x-%x "
                  "(%d instructions of its own); per 4 input channels x 1 tap x tile: %d" %
                  (label, lo, hi, len(body), desc, nest, ol, oh, own, own + nest * len(body)))
        else:
            print("%-22s loop %5x-%5x: %3d instructions per iteration (%s); per 4 input channels x 1 tap x tile: %d" %
                  (label, lo, hi, len(body), desc, per * len(body)))
' "$1" "$3" "$4" "$5" "$6"
}
echo "aarch64 instruction counts of the convolution inner loops ($(aarch64-linux-gnu-gcc -dumpfullversion 2>/dev/null || echo gcc), $b)"
echo "(one line per specialisation of the tile: stride 1, stride 2, any stride; the same loop in"
echo " the single-thread and team entry points is shown once)"
count "int8 neondot (sdot)" kern_neondot 'conv8' 'sdot' 1 0
count "int8 portable" kern_portable 'conv8' 'mla|mul|smlal|smlal2|umlal|umlal2|sdot' 1 6
count "float portable" kern_portable '^(conv_tiles|mrm_eng_conv_portable(_tiles)?)$' 'fmla|fmul' 4 0
