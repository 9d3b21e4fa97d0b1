"""The time of a data-parallel training step on N nodes, modelled (docs/distributed.md):

  step(N) = compute / N  +  ring all-reduce of the gradients  +  synchronised BatchNorm sums
  ring all-reduce:  2 (N - 1) / N * S / bandwidth  +  2 (N - 1) * latency
  sync BN:          K small all-reduces a step, each ceil(log2 N) * latency (recursive doubling)

compute: seconds of one step of the global batch on one node; S: gradient bytes; K: the small sums
a step makes (3 per BatchNorm layer + 1). Prints a markdown table of step time, speed-up and
efficiency for N = 2..64 at 10, 25 and 100 Gbit/s.
  python3 tools/scaling_model.py COMPUTE_S [S_BYTES=7118888] [LATENCY_US=20] [K=127]"""
import math
import sys

compute = float(sys.argv[1])
S = float(sys.argv[2]) if len(sys.argv) > 2 else 1779722 * 4
lat = (float(sys.argv[3]) if len(sys.argv) > 3 else 20.0) * 1e-6
K = int(sys.argv[4]) if len(sys.argv) > 4 else 3 * 42 + 1
print("| nodes | records a node | compute | " + " | ".join("%d Gbit/s: all-reduce + BN sums, step, speed-up" % g
                                                            for g in (10, 25, 100)) + " |")
print("|---|---|---|" + "---|" * 3)
for n in (2, 4, 8, 16, 32, 64):
    c = compute / n
    cells = []
    for g in (10, 25, 100):
        ar = 2 * (n - 1) / n * S / (g * 1e9 / 8) + 2 * (n - 1) * lat
        bn = K * math.ceil(math.log2(n)) * lat
        step = c + ar + bn
        cells.append("%.1f + %.1f ms, %.0f ms, %.1fx (%.0f%%)" % (ar * 1e3, bn * 1e3, step * 1e3, compute / step,
                                                               100 * compute / step / n))
    print("| %d | %.1f | %.0f ms | %s |" % (n, 96 / n, c * 1e3, " | ".join(cells)))
