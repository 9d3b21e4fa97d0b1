"""mrmnet predict on any lead set and any length, with the signal checks, from WFDB records made
here out of a PTB-XL sample record (12 leads, 100 Hz, 10 s) and the XML fixtures:
- a 34 s recording is analysed in 10 s windows (4 by default, 6 with --stride 5): the windows that
  hold the original 10 s give its probabilities exactly; the recording's mean and maximum are those
  of the windows; the labels come from the mean (or the maximum with --aggregate max);
- a 5 s recording is refused (the default minimum is 10 s), labelled when --min-seconds allows;
- 15 leads (vx, vy, vz added) give the 12-lead probabilities exactly; 8 leads (I, II, V1-V6) give
  them up to the rounding of the derived limb leads;
- non-standard leads (V3R, V7 for V3, V6) are refused with what is there and what is missing;
- a flat lead, a wrong gain (amplitude implausible) are reported and labelled only with --force;
- prepare --records takes the XML files by name and lists unfit records in prepare.json."""
import json
import os
import struct

from cli_testlib import SRC, TMP, check, end, need_mrmnet, prepare, run

need_mrmnet()
MODEL = os.path.join(SRC, "models", "ptbxl-superdiagnostic.safetensors")
SAMPLE = os.path.join(SRC, "samples", "00009_lr")
FIX = os.path.join(SRC, "tests", "fixtures", "formats")
LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]

with open(SAMPLE + ".dat", "rb") as f:
    raw = f.read()
frames = [list(struct.unpack_from("<12h", raw, 24 * t)) for t in range(len(raw) // 24)]
check(len(frames) == 1000, "sample record: 1000 frames")
D = os.path.join(TMP, "recs")
os.makedirs(D, exist_ok=True)


def write(name, rows, names, gain="1000"):
    """A WFDB format-16 record of len(names) signals."""
    with open(os.path.join(D, name + ".hea"), "w") as f:
        f.write("%s %d 100 %d\n" % (name, len(names), len(rows)))
        for n in names:
            f.write("%s.dat 16 %s/mV 16 0 0 0 0 %s\n" % (name, gain, n))
    with open(os.path.join(D, name + ".dat"), "wb") as f:
        for r in rows:
            f.write(struct.pack("<%dh" % len(r), *r))
    return os.path.join(D, name)


def predict(*args, expect=0):
    rc, so, se = run("predict", "--model", MODEL, "--json", *args, expect=expect)
    return rc, (json.loads(so) if so.strip() else []), se


def probs(r):
    return [r["probabilities"][k] for k in sorted(r["probabilities"])]


rc, base, se = predict(SAMPLE)
check(rc == 0 and len(base) == 1 and len(base[0]["windows"]) == 1, "the 10 s sample: one window")
p0 = probs(base[0])

# ---- any length ----
long_rec = write("long34", frames * 3 + frames[:400], LEADS)
rc, res, se = predict(long_rec)
r = res[0] if res else {}
w = r.get("windows", [])
check(rc == 0 and [x["start_s"] for x in w] == [0, 10, 20, 24], "34 s: windows at 0, 10, 20, 24 s: %s" % [x.get("start_s") for x in w])
if len(w) == 4:
    for k in (0, 1):
        check(max(abs(a - b) for a, b in zip([w[k]["probabilities"][c] for c in sorted(w[k]["probabilities"])], p0)) < 1e-6,
              "window %d = the 10 s record" % k)
    for c in r["probabilities"]:
        vals = [x["probabilities"][c] for x in w]
        check(abs(r["mean"][c] - sum(vals) / 4) < 1e-6 and abs(r["max"][c] - max(vals)) < 1e-6, "mean and max of %s" % c)
        check(r["probabilities"][c] == r["mean"][c], "labels from the mean by default")
    check(r["labels"] == [c for c in sorted(r["mean"]) if r["mean"][c] > 0.5] or r["aggregate"] == "mean", "labels")
rc, res, se = predict("--stride", "5", long_rec)
check(rc == 0 and [x["start_s"] for x in res[0]["windows"]] == [0, 5, 10, 15, 20, 24], "--stride 5: 6 windows")
rc, res, se = predict("--aggregate", "max", long_rec)
check(rc == 0 and res[0]["aggregate"] == "max" and res[0]["probabilities"] == res[0]["max"], "--aggregate max")
rc, so, se = run("predict", "--model", MODEL, long_rec)
check(rc == 0 and "4 windows" in so and "window     0.0-   10.0 s" in so, "text output shows the windows: " + so[:300])
rc, so, se = run("predict", "--model", MODEL, "--csv", "--windows", long_rec)
check(rc == 0 and len(so.strip().splitlines()) == 5 and so.startswith("record,start_s,end_s,"), "--csv --windows: a row a window")

short = write("short5", frames[:500], LEADS)
rc, res, se = predict(short, expect=1)
check(rc == 1 and "5 s long, shorter than 10 s" in se, "5 s refused by default: " + se)
rc, res, se = predict("--min-seconds", "5", short)
check(rc == 0 and len(res) == 1 and "zero-padded" in se, "5 s labelled with --min-seconds 5")

# ---- any lead set ----
extra = [r + [r[6] // 2, r[7] // 2, -r[8]] for r in frames]
rc, res, se = predict(write("lead15", extra, LEADS + ["vx", "vy", "vz"]))
check(rc == 0 and max(abs(a - b) for a, b in zip(probs(res[0]), p0)) < 1e-6, "15 leads: vx, vy, vz ignored")
shuffled = [LEADS[i] for i in (11, 0, 5, 3, 1, 2, 4, 6, 7, 8, 10, 9)]
rows = [[r[LEADS.index(n)] for n in shuffled] for r in frames]
rc, res, se = predict(write("shuffled", rows, ["Lead " + n if i % 2 else "MDC_ECG_LEAD_" + n.upper() for i, n in enumerate(shuffled)]))
check(rc == 0 and max(abs(a - b) for a, b in zip(probs(res[0]), p0)) < 1e-6, "names across habits, any order")
eight = [r[0:2] + r[6:12] for r in frames]
rc, res, se = predict(write("lead8", eight, ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]))
d = max(abs(a - b) for a, b in zip(probs(res[0]), p0)) if res else 1
check(rc == 0 and d < 0.02, "8 leads: limb leads derived (probabilities within %g of the 12-lead ones)" % d)
nonstd = write("nonstd", frames, LEADS[:8] + ["V3R", "V4", "V5", "V7"])
rc, res, se = predict(nonstd, expect=1)
check(rc == 1 and "V3R" in se and "V7" in se and "missing: V3, V6" in se, "non-standard leads refused: " + se)
rc, res, se = predict(write("lead3", [r[:3] for r in frames], LEADS[:3]), expect=1)
check(rc == 1 and "missing: V1, V2, V3, V4, V5, V6" in se, "3 leads refused: " + se)

# ---- signal checks ----
flat = write("flatv2", [r[:7] + [0] + r[8:] for r in frames], LEADS)
rc, res, se = predict(flat, expect=1)
check(rc == 1 and "not fit" in se and "flat: V2" in se and res and res[0].get("labels") is None, "flat lead reported: " + se)
rc, res, se = predict("--force", flat)
check(rc == 0 and res and "flat: V2" in res[0].get("problems", "") and "labels" in res[0], "--force labels it, problem kept")
gain = write("gain1", frames, LEADS, gain="1")
rc, res, se = predict(gain, expect=1)
check(rc == 1 and "amplitude implausible" in se, "a wrong gain (1/mV for 1000/mV) reported: " + se)
clip = write("clipped", [[min(v, 300) for v in r] for r in frames], LEADS)
rc, res, se = predict(clip, expect=1)
check(rc == 1 and "clipped:" in se, "clipped leads reported: " + se)

# ---- the XML formats, by content ----
xml = [os.path.join(FIX, f) for f in ("aecg_liryc_synthetic.xml", "muse_from_hl7_example.xml", "sierra_1-03_129DYPRG.XML")]
rc, res, se = predict(*xml)
check(rc == 0 and len(res) == 3 and all(len(r["windows"]) == 1 for r in res), "the XML fixtures labelled: " + se)

# ---- prepare --records: XML files named without extension; unfit records listed ----
pdir = os.path.join(TMP, "prep_recs")
os.makedirs(pdir, exist_ok=True)
for f in ("muse_from_hl7_example.xml", "sierra_1-03_129DYPRG.XML"):
    with open(os.path.join(FIX, f), "rb") as a, open(os.path.join(pdir, f), "wb") as b:
        b.write(a.read())
for n in ("flatv2", "lead8", "lead15"):
    for ext in (".hea", ".dat"):
        with open(os.path.join(D, n + ext), "rb") as a, open(os.path.join(pdir, n + ext), "wb") as b:
            b.write(a.read())
labels = os.path.join(TMP, "labels.csv")
with open(labels, "w") as f:
    f.write("record,labels,fold\nmuse_from_hl7_example,MI,1\nsierra_1-03_129DYPRG.XML,NORM,1\nflatv2,NORM,2\nlead8,NORM,3\nlead15,MI,3\n")
out = os.path.join(TMP, "prep_out")
p = prepare(out, "--records", pdir, "--labels", labels, "--folds", "1/2/3")
check(p.returncode == 0, "prepare --records with XML files: " + p.stderr[-500:])
if p.returncode == 0:
    with open(os.path.join(out, "prepare.json")) as f:
        pj = json.load(f)
    check(pj["records"] == 5, "5 records prepared")
    check(len(pj.get("signal_problems", [])) == 1 and pj["signal_problems"][0].startswith("flatv2: flat: V2"),
          "prepare.json lists the flat record: %s" % pj.get("signal_problems"))
    check("flatv2" in p.stderr, "prepare warns of it")
end()
