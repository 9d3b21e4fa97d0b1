"""mrmnet report, opened in a real browser (Debian's chromium, headless): for a 100 Hz and a 500 Hz
PTB-XL record, a CPSC2018 recording longer than 10 s (from ../shared when present) and a record whose
limb leads III, aVR, aVL, aVF are left out (derived):
  - the page is self-contained (no script, no link or font from outside), its SVG is well-formed
    XML, Chromium renders it without a console error and prints it on one A4 landscape page;
  - in the rendered PNG, the R peak of lead II in the rhythm strip (the largest sample above the
    lead's median in the raw recording) is drawn where the grid says: the paper (its 250 x 100 mm
    found in the image) gives the pixels per mm, and at the peak's time (x = 10 mm + 25 mm/s * t)
    the trace's highest point lies at 10 mm/mV * (value - median) above the strip's baseline,
    within 0.4 mm;
  - the probabilities and thresholds shown are those of mrmnet explain's JSON for the record, the
    called classes are marked, the derived leads are named, and "Not a diagnosis" is there;
  - for the recording longer than 10 s: the probabilities and called labels are those of mrmnet
    predict (the mean over its 10 s windows), predict's windows are listed and marked, and the
    window drawn is --start's, or the one where the most probable called label is most probable.
Skipped (exit 77) when chromium is not installed (scripts/install-deps.sh --test installs it)."""
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

from cli_testlib import SHARED, SRC, TMP, check, end, mrmnet, need_mrmnet, skip  # noqa: E402

need_mrmnet()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    skip("chromium is not installed (scripts/install-deps.sh --test)")
try:
    import numpy as np
    from PIL import Image
except ImportError:
    skip("numpy or Pillow (python3-pil) is not installed")

MODEL = os.path.join(SRC, "models", "ptbxl-superdiagnostic.safetensors")
SCALE = 2  # device pixels per CSS pixel


def chromium(*args, timeout=180):
    home = os.path.join(TMP, "chromium-home")
    os.makedirs(home, exist_ok=True)
    env = dict(os.environ, HOME=home)
    return subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-extensions", "--enable-logging=stderr", "--v=0", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def read_png(path):
    """(H, W, 3) uint8 of a PNG (Pillow)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def raw_wfdb16(rec):
    """(fs, physical values (n_sig, n) in mV, lead names) of a format-16 WFDB record, from the bytes."""
    lines = [ln for ln in open(rec + ".hea").read().splitlines() if ln and not ln.startswith("#")]
    first = lines[0].split()
    ns, fs, n = int(first[1]), float(first[2].split("/")[0]), int(first[3])
    gains, bases, names, units = [], [], [], []
    for ln in lines[1:1 + ns]:
        f = ln.split()
        g = f[2]
        gains.append(float(g.split("(")[0].split("/")[0]))
        bases.append(int(g.split("(")[1].split(")")[0]) if "(" in g else int(f[4]))
        units.append(g.split("/")[1] if "/" in g else "mV")
        names.append(f[-1])
    d = np.fromfile(rec + ".dat", dtype="<i2").reshape(n, ns).T.astype(np.float64)
    v = (d - np.array(bases)[:, None]) / np.array(gains)[:, None]
    k = np.array([1e-3 if u.lower() == "uv" else 1.0 for u in units])[:, None]
    return fs, v * k, names


def check_page(label, html_path, rec=None, start_s=0.0, window_note=None, derived=()):
    text = open(html_path, encoding="utf-8").read()
    check("<script" not in text.lower(), "%s: no script" % label)
    outside = [u for u in re.findall(r"(?:https?:)?//[^\s\"')<>]+", text) if "www.w3.org/2000/svg" not in u]
    check(not outside and "@font-face" not in text and "<link" not in text.lower(),
          "%s: nothing from outside the page: %s" % (label, outside[:3]))
    m = re.search(r"<svg id=\"ecg\".*?</svg>", text, re.S)
    check(m is not None, "%s: the tracing's SVG" % label)
    try:
        ET.fromstring(m.group(0))
        ok = True
    except ET.ParseError as e:
        ok = False
        print(e)
    check(ok, "%s: the SVG is well-formed XML" % label)
    check("Not a diagnosis" in text, "%s: says it is not a diagnosis" % label)
    if window_note:
        check(window_note in text, "%s: states the analysed window (%s)" % (label, window_note))
    for lead in derived:
        check(re.search(r"derived from the other limb leads:[^<]*\b%s\b" % lead, text) is not None,
              "%s: names %s as derived" % (label, lead))
    # rendered: no console error, one A4 landscape page
    png = html_path[:-5] + ".png"
    p = chromium("--hide-scrollbars", "--force-device-scale-factor=%d" % SCALE, "--window-size=1200,900",
                 "--screenshot=" + png, "file://" + os.path.abspath(html_path))
    errors = [ln for ln in p.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln or "Failed to load" in ln]
    check(os.path.isfile(png) and not errors, "%s: rendered without page errors (%s)" % (label, errors[:3] or p.returncode))
    pdf = html_path[:-5] + ".pdf"
    chromium("--no-pdf-header-footer", "--print-to-pdf=" + pdf, "file://" + os.path.abspath(html_path))
    pages = len(re.findall(rb"/Type\s*/Page[^s]", open(pdf, "rb").read())) if os.path.isfile(pdf) else 0
    check(pages == 1, "%s: prints on one page (%d)" % (label, pages))
    mb = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)", open(pdf, "rb").read()) if pages else None
    check(mb is not None and abs(float(mb.group(1)) - 842) < 2 and abs(float(mb.group(2)) - 595) < 2,
          "%s: A4 landscape (%s)" % (label, mb.groups() if mb else None))
    if rec is None or not os.path.isfile(png):
        return
    img = read_png(png).astype(np.int32)
    r, g, b = img[:, :, 0], img[:, :, 1], img[:, :, 2]
    paper = (r > 200) & (r - g > 4) & (np.abs(g - b) < 12)  # the pink grid and its background
    ys, xs = np.nonzero(paper)
    gx0, gx1, gy0, gy1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    sx, sy = (gx1 - gx0) / 250.0, (gy1 - gy0) / 100.0
    check(abs(sx - sy) < 0.02 * sx and abs(sx - SCALE * 96 / 25.4) < 0.05 * sx,
          "%s: the paper is 250 x 100 mm at %.3f x %.3f px/mm" % (label, sx, sy))
    fs, v, names = raw_wfdb16(rec)
    ii = names.index("II")
    a = int(round(start_s * fs))
    w = v[ii, a:a + int(round(10 * fs))]
    med = float(np.median(w))
    t = int(np.argmax(w - med))
    x = gx0 + (10 + t / fs * 25 - 10) * sx  # the paper starts at x = 10 mm in the SVG
    y = gy0 + (3.5 * 25 - (w[t] - med) * 10) * sy
    dark = (r < 110) & (g < 110) & (b < 110)
    xi = int(round(x))
    band = dark[int(gy0 + 75 * sy):int(gy1), xi - 1:xi + 2]  # the rhythm strip's row, the peak's column
    tops = np.nonzero(band.any(axis=1))[0]
    top = int(gy0 + 75 * sy) + tops.min() if len(tops) else -1
    # the trace's highest point at the peak's time: the line's stroke (0.3 mm) is centred on it
    err_mm = abs(top - y) / sy
    check(len(tops) and err_mm < 0.4 + 0.15,
          "%s: R peak of II at %.3f s (%.3f mV above the median) drawn at y %d px, expected %.1f px (%.2f mm off)" %
          (label, t / fs, w[t] - med, top, y, err_mm))
    print("%s: R peak at %.3f s, %.3f mV: %.2f mm from where the grid puts it" % (label, t / fs, w[t] - med, err_mm))


def explain_json(rec, out, *extra):
    p = mrmnet("explain", "--model", MODEL, "--out", out, "--overwrite", *extra, rec, expect=0)
    return json.load(open(os.path.join(out, os.path.basename(rec) + ".json"))) if p.returncode == 0 else None


out = os.path.join(TMP, "reports")
shutil.rmtree(out, ignore_errors=True)
fx = os.path.join(SRC, "tests", "fixtures", "ptb-xl")
lr, hr = os.path.join(fx, "00001_lr"), os.path.join(fx, "00001_hr")
# a record without III, aVR, aVL, aVF (the header names 8 of the 12; the data file is shared)
part = os.path.join(TMP, "partial")
os.makedirs(part, exist_ok=True)
src = os.path.join(fx, "01000_lr")
hea = open(src + ".hea").read().splitlines()
keep = [i for i, ln in enumerate(hea[1:13]) if ln.split()[-1] not in ("III", "AVR", "AVL", "AVF", "aVR", "aVL", "aVF")]
d = np.fromfile(src + ".dat", dtype="<i2").reshape(-1, 12)[:, keep]
d.astype("<i2").tofile(os.path.join(part, "partial.dat"))
first = hea[0].split()
first[0], first[1] = "partial", str(len(keep))
lines = [" ".join(first)]
for i in keep:
    f = hea[1 + i].split()
    f[0] = "partial.dat"
    lines.append(" ".join(f))  # each signal keeps its samples: initial value and checksum hold
open(os.path.join(part, "partial.hea"), "w").write("\n".join(lines) + "\n")

recs = [lr, hr, os.path.join(part, "partial")]
p = mrmnet("report", "--model", MODEL, "--out", out, *recs, expect=0)
check(p.returncode == 0, "report exit status %d" % p.returncode)
check(os.path.isfile(os.path.join(out, "index.html")), "the index page")
idx = open(os.path.join(out, "index.html")).read() if os.path.isfile(os.path.join(out, "index.html")) else ""
check(all('href="%s.html"' % os.path.basename(r) for r in recs) and "Not a diagnosis" in idx, "the index links every page")
for rec in recs:
    name = os.path.basename(rec)
    page = os.path.join(out, name + ".html")
    if not os.path.isfile(page):
        check(False, "%s: no page" % name)
        continue
    j = explain_json(rec, os.path.join(TMP, "explain"))
    text = open(page, encoding="utf-8").read()
    for c, pr in (j or {}).get("probabilities", {}).items():
        row = re.search(r'<tr[^>]*data-class="%s">(.*?)</tr>' % re.escape(c), text, re.S)
        cells = re.findall(r"<td>([^<]*)</td>", row.group(1)) if row else []
        shown = [float(x) for x in cells if re.fullmatch(r"\d\.\d{3}", x)]
        check(len(shown) == 2 and abs(shown[0] - pr) < 6e-4 and abs(shown[1] - j["thresholds"][c]) < 6e-4,
              "%s %s: probability %.4f and threshold %.4f shown (%s)" % (name, c, pr, j["thresholds"][c], shown))
        check(("called" in row.group(1)) == (c in j["labels"]) if row else False, "%s %s: the called mark" % (name, c))
        if c in j["labels"]:
            check('data-label="%s"' % c in text, "%s %s: its driving segments are shaded" % (name, c))
    check_page(name, page, rec=rec if name != "partial" else None,
               derived=("III", "aVR", "aVL", "aVF") if name == "partial" else ())

cpsc = os.path.join(SHARED, "data", "cpsc2018", "challenge2020_wfdb", "A0005") if SHARED else ""
if cpsc and os.path.isfile(cpsc + ".hea"):
    # a 25 s recording: probabilities and labels are predict's (the mean over its windows, which the
    # page lists and marks); the window drawn is --start's, or the one where the most probable called
    # label is most probable in predict's own per-window output
    pj = mrmnet("predict", "--json", "--force", "--model", MODEL, cpsc, expect=0)
    pred = json.loads(pj.stdout)[0] if pj.returncode == 0 else None
    check(pred is not None and len(pred["windows"]) == 3, "predict analyses the 25 s recording in 3 windows")
    for label, extra in (("A0005 (25 s, 500 Hz), --start 12", ("--start", "12")), ("A0005 (25 s, 500 Hz)", ())):
        o2 = os.path.join(TMP, "reports-long")
        shutil.rmtree(o2, ignore_errors=True)
        # (Grad-CAM shading here: the windows are what is checked; the default shading, 33 passes a
        # called label, is rendered on the pages above and checked by test_report_shade)
        p = mrmnet("report", "--model", MODEL, "--out", o2, "--force", "--shade", "gradcam", *extra, cpsc, expect=0)
        if p.returncode or not pred:
            check(False, "%s: report on a 25 s recording" % label)
            continue
        page = os.path.join(o2, "A0005.html")
        text = open(page, encoding="utf-8").read()
        wins = ", ".join("%.1f-%.1f s" % (w["start_s"], w["end_s"]) for w in pred["windows"])
        check("mean over the 3 windows of 10 s that mrmnet predict analyses (%s)" % wins in text,
              "%s: lists predict's windows (%s)" % (label, wins))
        starts = sorted(float(v) for v in re.findall(r'class="pwindow" data-start-s="([\d.]+)"', text))
        check(starts == [w["start_s"] for w in pred["windows"]], "%s: marks predict's windows %s" % (label, starts))
        for c, pr in pred["probabilities"].items():
            row = re.search(r'<tr[^>]*data-class="%s">(.*?)</tr>' % re.escape(c), text, re.S)
            cells = re.findall(r"<td>([^<]*)</td>", row.group(1)) if row else []
            shown = [float(x) for x in cells if re.fullmatch(r"\d\.\d{3}", x)]
            check(len(shown) == 2 and abs(shown[0] - pr) < 6e-4, "%s %s: predict's probability %.4f shown (%s)" % (label, c, pr, shown))
            check(row is not None and ("called" in row.group(1)) == (c in pred["labels"]), "%s %s: the called mark as predict's" % (label, c))
        if extra:
            want = 12.0
        else:
            top = max(pred["labels"], key=lambda c: pred["probabilities"][c]) if pred["labels"] else None
            want = max(pred["windows"], key=lambda w: w["probabilities"][top])["start_s"] if top else 0.0
        check_page(label, page, window_note="Shown and explained: the window %.1f-%.1f s of 25.0 s" % (want, want + 10))
else:
    print("../shared is absent: the recording longer than 10 s is not checked")
end()
