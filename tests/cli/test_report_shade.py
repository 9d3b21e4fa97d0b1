"""mrmnet report --shade: what the shaded segments of each called label come from.

For a bundled PTB-XL fixture with two called labels (NORM, STTC) the page is made with the default shading and with --shade gradcam, and then, from
mrmnet explain's own output and numpy alone:
  - the smoothed integrated gradients: `explain --input NAME.input.npy --ig 32` gives the
    attribution (12, 1000); numpy sums it over the leads and averages it over 0.1 s (a centred
    window of 10 steps, the steps of [t - 5, t + 5) inside the window); that must equal explain's
    integrated_smooth.npy (the library's mrm_explain_smooth);
  - the segments: the steps where that map is at half its maximum or more, i.e. the steps it ranks
    highest (every shaded step's value is at least every unshaded step's), as runs [a, b);
  - the page's shading of each called label (its rhythm-strip rectangles, 0.25 mm a step) covers
    exactly those steps (a step within 1e-5 of the threshold may fall either way), and its
    rectangles in the 3 x 4 panels are the same runs cut at the panels' 2.5 s edges;
  - the default is integrated gradients, --shade gradcam shades the combined Grad-CAM of
    explain's NAME.gradcam.npy by the same rule, and the page says which one it shaded (the
    shading note and each shaded group's data-source);
  - an unknown --shade is refused (exit 2).
Skipped (exit 77) without numpy."""
import json
import os
import re
import shutil

from cli_testlib import SRC, TMP, check, end, mrmnet, need_mrmnet, skip  # noqa: E402

need_mrmnet()
try:
    import numpy as np
except ImportError:
    skip("numpy is not installed")

MODEL = os.path.join(SRC, "models", "ptbxl-superdiagnostic.safetensors")
fx = os.path.join(SRC, "tests", "fixtures", "ptb-xl")
RECS = [os.path.join(fx, "00001_lr")]
STEPS, WIDTH = 32, 10  # MRM_EXPLAIN_IG_STEPS, MRM_EXPLAIN_SMOOTH_STEPS


def smooth(att):
    v = att.astype(np.float64).sum(axis=0)
    pre = np.concatenate([[0.0], np.cumsum(v)])
    a = np.clip(np.arange(1000) - WIDTH // 2, 0, 1000)
    b = np.clip(np.arange(1000) - WIDTH // 2 + WIDTH, 0, 1000)
    return (pre[b] - pre[a]) / (b - a)


def runs(mask):
    d = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return list(zip(np.nonzero(d == 1)[0].tolist(), np.nonzero(d == -1)[0].tolist()))


def page_shading(text, label):
    """(source, rhythm-strip mask (1000), panel runs) of a label's shaded group on the page."""
    m = re.search(r'<g class="drive" data-label="%s" data-source="(\w+)"[^>]*>(.*?)</g>' % re.escape(label), text, re.S)
    if not m:
        return None, None, None
    mask = np.zeros(1000, bool)
    panels = []
    for x, y, w in re.findall(r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)"', m.group(2)):
        a = int(round((float(x) - 10) / 0.25))
        e = int(round((float(x) + float(w) - 10) / 0.25))
        if float(y) == 75:
            mask[a:e] = True
        else:
            panels.append((a, e))
    return m.group(1), mask, panels


def check_label(name, label, source, text, want_map):
    src, mask, panels = page_shading(text, label)
    check(src == source, "%s %s: shaded group's source %s (want %s)" % (name, label, src, source))
    if mask is None:
        return
    mx = want_map.max()
    want = want_map >= 0.5 * mx if mx > 0 else np.zeros(1000, bool)
    near = np.abs(want_map - 0.5 * mx) <= 1e-5 * abs(mx)
    bad = np.nonzero((mask != want) & ~near)[0]
    check(len(bad) == 0 and mask.any(),
          "%s %s (%s): shaded steps are those at half the map's maximum or more (%d differ: %s; %d shaded)" %
          (name, label, source, len(bad), bad[:8].tolist(), int(mask.sum())))
    if mask.any() and (~mask).any():
        check(want_map[mask].min() >= want_map[~mask].max() - 1e-5 * abs(mx),
              "%s %s (%s): the shaded steps are the ones the map ranks highest" % (name, label, source))
    cut = sorted((max(a, c * 250), min(e, (c + 1) * 250)) for a, e in runs(mask) for c in range(4)
                 if min(e, (c + 1) * 250) > max(a, c * 250))
    check(sorted(panels) == cut, "%s %s (%s): the 3 x 4 panels shade the same runs" % (name, label, source))
    print("%s %s (%s): %d segments, %d steps shaded" % (name, label, source, len(runs(mask)), int(mask.sum())))


out = os.path.join(TMP, "shade")
shutil.rmtree(out, ignore_errors=True)
pages = {}
for shade in ("default", "gradcam"):
    d = os.path.join(out, shade)
    p = mrmnet("report", "--model", MODEL, "--out", d, *(("--shade", shade) if shade != "default" else ()), *RECS, expect=0)
    check(p.returncode == 0, "report (--shade %s) exit status %d" % (shade, p.returncode))
    for r in RECS:
        f = os.path.join(d, os.path.basename(r) + ".html")
        pages[shade, os.path.basename(r)] = open(f, encoding="utf-8").read() if os.path.isfile(f) else ""
p = mrmnet("report", "--model", MODEL, "--out", os.path.join(out, "bad"), "--shade", "saliency", RECS[0], expect=2)
check(p.returncode == 2 and "--shade" in p.stderr, "an unknown --shade is refused (%d)" % p.returncode)

ex = os.path.join(out, "explain")
p = mrmnet("explain", "--model", MODEL, "--out", ex, *RECS, expect=0)
check(p.returncode == 0, "explain exit status %d" % p.returncode)
n_labels = 0
for r in RECS:
    name = os.path.basename(r)
    jp = os.path.join(ex, name + ".json")
    if not os.path.isfile(jp):
        check(False, "%s: explain's JSON" % name)
        continue
    j = json.load(open(jp))
    classes = list(j["probabilities"])
    labels = j["labels"]
    n_labels += len(labels)
    cam = np.load(os.path.join(ex, name + ".gradcam.npy"))  # (classes, 1000)
    x = np.load(os.path.join(ex, name + ".input.npy"))       # (12, 1000)
    np.save(os.path.join(ex, name + ".x.npy"), x[None])
    igd = os.path.join(ex, name + ".ig")
    p = mrmnet("explain", "--model", MODEL, "--input", os.path.join(ex, name + ".x.npy"), "--ig", STEPS,
               "--classes", ",".join(labels) if labels else "0", "--out", igd, expect=0)
    if p.returncode:
        check(False, "%s: explain --input --ig" % name)
        continue
    ig = np.load(os.path.join(igd, "integrated.npy"))[0]           # (K, 12, 1000)
    igs = np.load(os.path.join(igd, "integrated_smooth.npy"))[0]   # (K, 1000)
    for q, label in enumerate(labels):
        mine = smooth(ig[q])
        err = np.abs(mine - igs[q]).max() / np.abs(mine).max()
        check(err < 1e-5, "%s %s: explain's integrated_smooth.npy is the leads' sum averaged over 0.1 s (%.1e)" % (name, label, err))
        d_text, g_text = pages["default", name], pages["gradcam", name]
        check_label(name, label, "ig", d_text, mine)
        check_label(name, label, "gradcam", g_text, cam[classes.index(label)].astype(np.float64))
    for shade, text in (("ig", pages["default", name]), ("gradcam", pages["gradcam", name])):
        note = re.search(r'<div class="note" id="shading" data-source="(\w+)">(.*?)</div>', text, re.S)
        word = "integrated gradients" if shade == "ig" else "Grad-CAM"
        check(note is not None and note.group(1) == shade and word in note.group(2),
              "%s: the page says its shading is %s" % (name, word))
        check(len(re.findall(r'<g class="drive"', text)) == len(labels), "%s: one shaded group per called label" % name)
check(n_labels >= 2, "the record has called labels to shade (%d)" % n_labels)
end()
