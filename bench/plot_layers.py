"""Draws the per-block time of MRM-Net (the JSON of bench_layers) as an SVG bar chart, by hand.

    python3 bench/plot_layers.py layers.json layer_time.svg

Left panel: a training step at the training batch, forward and backward stacked, ms per step.
Right panel: inference at the inference batch, ms per step. Blocks in model order; each bar is
labelled with its time and its share of the panel's total.
"""
import json
import sys

from svg_file import write_svg
from xml.sax.saxutils import escape


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        d = json.load(f)
    blocks = d["blocks"]
    W, row, top, left, pw, gap = 1110, 26, 70, 150, 330, 150
    H = top + row * len(blocks) + 70
    tmax = max(b["train_fwd_ms"] + b["train_bwd_ms"] for b in blocks) or 1.0
    imax = max(b["infer_ms"] for b in blocks) or 1.0
    ttot = sum(b["train_fwd_ms"] + b["train_bwd_ms"] for b in blocks) or 1.0
    itot = sum(b["infer_ms"] for b in blocks) or 1.0
    x2 = left + pw + gap + 90
    s = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
         'font-family="sans-serif" font-size="12">' % (W, H, W, H),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="22" font-size="15" font-weight="bold">Where the time of MRM-Net goes '
         '(mrmnet, %d threads)</text>' % (left - 140, d["threads"]),
         '<text x="%d" y="50" font-weight="bold">training step, batch %d (ms per step)</text>'
         % (left, d["train_batch"]),
         '<text x="%d" y="50" font-weight="bold">inference, batch %d (ms)</text>' % (x2, d["infer_batch"])]
    for i, b in enumerate(blocks):
        y = top + i * row
        s.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (left - 8, y + 14, escape(b["block"])))
        f, k = b["train_fwd_ms"], b["train_bwd_ms"]
        wf, wb = pw * f / tmax, pw * k / tmax
        s.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="#4878b0"/>' % (left, y + 2, wf, row - 8))
        s.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#e08a3c"/>'
                 % (left + wf, y + 2, wb, row - 8))
        s.append('<text x="%.1f" y="%d" fill="#333">%.0f (%.0f%%)</text>'
                 % (left + wf + wb + 4, y + 14, f + k, 100 * (f + k) / ttot))
        v = b["infer_ms"]
        s.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (x2 - 8, y + 14, escape(b["block"])))
        s.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="#58a05a"/>'
                 % (x2, y + 2, (W - x2 - 110) * v / imax, row - 8))
        s.append('<text x="%.1f" y="%d" fill="#333">%.2f (%.0f%%)</text>'
                 % (x2 + (W - x2 - 110) * v / imax + 4, y + 14, v, 100 * v / itot))
    y = top + row * len(blocks) + 14
    w = d.get("whole", {})
    s.append('<rect x="%d" y="%d" width="12" height="12" fill="#4878b0"/><text x="%d" y="%d">forward</text>'
             % (left, y, left + 16, y + 11))
    s.append('<rect x="%d" y="%d" width="12" height="12" fill="#e08a3c"/>'
             '<text x="%d" y="%d">backward (loss, Adam included)</text>' % (left + 80, y, left + 96, y + 11))
    s.append('<text x="%d" y="%d" fill="#333">sum of the blocks %.0f ms; whole step measured %.0f ms</text>'
             % (left, y + 32, ttot, w.get("train_fwd_ms", 0) + w.get("train_bwd_ms", 0) + w.get("adam_ms", 0)))
    s.append('<text x="%d" y="%d" fill="#333">sum %.2f ms; whole fast path %.2f ms</text>'
             % (x2, y + 32, itot, w.get("infer_ms", 0)))
    write_svg(sys.argv[2], s)


if __name__ == "__main__":
    main()
