"""Draws mrmnet against PyTorch and ONNX Runtime (summary.json of run_bench.sh) as an SVG bar
chart, by hand: ms per record (medians over the rounds) for the training step at batch 96 and
inference at batch 1 and 32, one panel each, bars labelled with their value.

    python3 bench/plot_peers.py summary.json peers.svg
"""
import json
import sys

from svg_file import write_svg


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        med = json.load(f)["median"]
    panels = [
        ("training step, batch 96 (ms per record)",
         [("mrmnet", med["mrmnet_train_ms_per_step"] / 96), ("PyTorch", med["torch_train_ms_per_step"] / 96)]),
        ("inference, batch 1 (ms per record)",
         [("mrmnet", med["mrmnet_infer1_ms"]), ("ONNX Runtime", med["ort_infer1_ms"]),
          ("PyTorch", med["torch_infer1_ms"])]),
        ("inference, batch 32 (ms per record)",
         [("mrmnet", med["mrmnet_infer32_ms_per_record"]), ("ONNX Runtime", med["ort_infer32_ms_per_record"]),
          ("PyTorch", med["torch_infer32_ms_per_record"])]),
    ]
    colour = {"mrmnet": "#4878b0", "PyTorch": "#e08a3c", "ONNX Runtime": "#58a05a"}
    W, pw, ph, top = 900, 280, 220, 60
    H = top + ph + 60
    s = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
         'font-family="sans-serif" font-size="12">' % (W, H, W, H),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="20" y="24" font-size="15" font-weight="bold">MRM-Net on 2 threads: mrmnet, PyTorch, '
         'ONNX Runtime (lower is better; medians over rounds)</text>']
    for p, (title, bars) in enumerate(panels):
        x0 = 20 + p * (pw + 15)
        vmax = max(v for _, v in bars) or 1.0
        s.append('<text x="%d" y="%d" font-weight="bold">%s</text>' % (x0, top - 12, title))
        s.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>' % (x0, top + ph, x0 + pw - 10, top + ph))
        bw = (pw - 20) / len(bars) - 12
        for i, (name, v) in enumerate(bars):
            h = (ph - 20) * v / vmax
            x = x0 + 6 + i * (bw + 12)
            s.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>'
                     % (x, top + ph - h, bw, h, colour[name]))
            s.append('<text x="%.1f" y="%.1f" text-anchor="middle">%.2f</text>' % (x + bw / 2, top + ph - h - 4, v))
            s.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (x + bw / 2, top + ph + 16, name))
    write_svg(sys.argv[2], s)


if __name__ == "__main__":
    main()
