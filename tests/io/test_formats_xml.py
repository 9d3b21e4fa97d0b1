"""The XML ECG readers (HL7 aECG, GE MUSE, Philips Sierra) against independent decoders, and their
refusal of malformed files.

- HL7 aECG: BioSig's save2gdf (Debian biosig-tools) converts each file to CSV; `mrmnet read --csv`
  must give the same values, and both must equal origin + scale x digits computed here with
  xml.etree.
- GE MUSE: the samples decoded here from the XML with base64 + struct (little-endian int16 x units
  per bit), the four limb leads MUSE leaves out computed from I and II.
- Philips Sierra: the published XLI algorithm (LZW with 10-bit codes, high and low byte planes,
  second differences with a bias of 64, limb-lead residuals) written again here in plain Python.
- Malformed copies of each (truncated, wrong counts, bad base64, broken XLI streams, entities) are
  refused with a message, never a crash.
The committed fixtures always run (tests/fixtures/formats); the files in ../shared/data/formats
run when present. The aECG and SCP-ECG copies of the same ECG in ../shared must agree when
`mrmnet read` takes SCP-ECG files."""
import base64
import csv
import io
import os
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cli"))
from cli_testlib import SHARED, SRC, TMP, check, end, mrmnet, need_mrmnet  # noqa: E402

need_mrmnet()
FIX = os.path.join(SRC, "tests", "fixtures", "formats")
SH = os.path.join(SHARED, "data", "formats") if SHARED else ""
have_shared = SH and os.path.isdir(SH)
if not have_shared:
    print("note: ../shared/data/formats absent: the shared sample files are not tested, the fixtures are")


def read_csv(path, *extra):
    """mrmnet read --csv PATH -> (names, columns as lists of floats)."""
    p = mrmnet("read", "--csv", *extra, path, expect=0)
    if p.returncode != 0:
        return None, None
    rows = list(csv.reader(io.StringIO(p.stdout)))
    names = rows[0]
    cols = [[float(r[j]) for r in rows[1:]] for j in range(len(names))]
    return names, cols


def close(a, b, tol):
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


# ---- HL7 aECG -------------------------------------------------------------------------------------
H = "{urn:hl7-org:v3}"


def aecg_reference(path, code="RHYTHM"):
    """{lead code: physical values in uV} of the first sequence set of the series with this code."""
    root = ET.parse(path).getroot()
    series = None
    for s in list(root.iter(H + "series")) + list(root.iter(H + "derivedSeries")):
        c = s.find(H + "code")
        if c is not None and c.get("code") == code:
            series = s
            break
    out = {}
    for comp in series.find(H + "component").find(H + "sequenceSet").findall(H + "component"):
        seq = comp.find(H + "sequence")
        name = seq.find(H + "code").get("code")
        if name.startswith("TIME_"):
            continue
        val = seq.find(H + "value")
        unit = {"uV": 1.0, "mV": 1000.0}
        o, s = val.find(H + "origin"), val.find(H + "scale")
        origin = float(o.get("value")) * unit[o.get("unit", "uV")] if o is not None else 0.0
        scale = float(s.get("value")) * unit[s.get("unit")]
        out[name] = [origin + scale * int(d) for d in val.find(H + "digits").text.split()]
    return out


def biosig_csv(path):
    """save2gdf -CSV: {label: values}; None when save2gdf is absent or fails."""
    exe = shutil.which("save2gdf")
    if not exe:
        return None
    out = os.path.join(TMP, "biosig.csv")
    for f in os.listdir(TMP):
        if f.startswith("biosig.csv"):
            os.remove(os.path.join(TMP, f))
    subprocess.run([exe, "-CSV", path, out], capture_output=True, text=True)
    cands = sorted(f for f in os.listdir(TMP) if f.startswith("biosig.csv"))
    if not cands:
        return None
    with open(os.path.join(TMP, cands[0])) as f:
        rows = list(csv.reader(f))
    names = [h.split(" [")[0] for h in rows[0]]
    return {n: [float(r[j]) for r in rows[1:] if r] for j, n in enumerate(names)}


aecg_files = [os.path.join(FIX, "aecg_liryc_synthetic.xml")]
if have_shared:
    aecg_files += [os.path.join(SH, "aecg", f) for f in sorted(os.listdir(os.path.join(SH, "aecg")))]
if not shutil.which("save2gdf"):
    print("note: save2gdf (biosig-tools) absent: aECG files compared with the xml.etree decoding only")
for path in aecg_files:
    base = os.path.basename(path)
    names, cols = read_csv(path)
    check(names is not None, "aECG %s read" % base)
    if names is None:
        continue
    ref = aecg_reference(path)
    check(sorted(names) == sorted(ref), "%s: leads %s vs %s" % (base, names, list(ref)))
    for n, c in zip(names, cols):
        check(close(c, ref.get(n, []), 1e-9), "%s: lead %s equals origin + scale x digits" % (base, n))
    bio = biosig_csv(path)
    if bio is not None:
        for n, c in zip(names, cols):
            short = n.replace("MDC_ECG_LEAD_", "")
            key = next((k for k in bio if k.upper() == short.upper()), None)
            check(key is not None and close(c, bio[key], 1e-6),
                  "%s: lead %s equals BioSig's %s (%d vs %d samples)" % (base, n, key, len(c), len(bio.get(key, []))))
    p = mrmnet("read", path, expect=0)
    check("format:   hl7-aecg" in p.stdout, "%s: format named" % base)
    # representative beats on request
    names_r, cols_r = read_csv(path, "--representative")
    try:
        ref_r = aecg_reference(path, "REPRESENTATIVE_BEAT")
    except AttributeError:
        ref_r = None
    if ref_r:
        check(names_r is not None and all(close(c, ref_r[n], 1e-9) for n, c in zip(names_r, cols_r)),
              "%s: representative beats equal the file's" % base)

if have_shared:
    p = mrmnet("read", os.path.join(SH, "aecg", "hl7_Example_aECG.xml"), expect=0)
    check("acquired: 2002-11-22T09:10:00" in p.stdout and "age:      46" in p.stdout and "sex:      Male" in p.stdout,
          "aECG metadata: " + p.stdout[:400])

# ---- GE MUSE --------------------------------------------------------------------------------------


def muse_reference(path, kind="Rhythm"):
    """{lead: values in uV} decoded with base64 + struct, III/aVR/aVL/aVF from I and II."""
    root = ET.parse(path).getroot()
    out = {}
    for w in root.findall("Waveform"):
        if w.findtext("WaveformType") != kind:
            continue
        for ld in w.findall("LeadData"):
            raw = base64.b64decode(ld.findtext("WaveFormData"))
            k = float(ld.findtext("LeadAmplitudeUnitsPerBit"))
            out[ld.findtext("LeadID")] = [v * k for v in struct.unpack("<%dh" % (len(raw) // 2), raw)]
    i, ii = out["I"], out["II"]
    out["III"] = [b - a for a, b in zip(i, ii)]
    out["aVR"] = [-(a + b) / 2 for a, b in zip(i, ii)]
    out["aVL"] = [a - b / 2 for a, b in zip(i, ii)]
    out["aVF"] = [b - a / 2 for a, b in zip(i, ii)]
    return out


muse_files = [os.path.join(FIX, "muse_from_hl7_example.xml")]
if have_shared:
    muse_files += [os.path.join(SH, "muse", f) for f in sorted(os.listdir(os.path.join(SH, "muse")))]
for path in muse_files:
    base = os.path.basename(path)
    for kind, extra in (("Rhythm", ()), ("Median", ("--representative",))):
        names, cols = read_csv(path, *extra)
        check(names is not None, "MUSE %s %s read" % (base, kind))
        if names is None:
            continue
        ref = muse_reference(path, kind)
        check(sorted(names) == sorted(ref), "%s: leads %s" % (base, names))
        for n, c in zip(names, cols):
            check(close(c, ref[n], 1e-9), "%s %s: lead %s equals the base64 decoding" % (base, kind, n))
    p = mrmnet("read", path, expect=0)
    check(p.stdout.count("(derived)") == 4, "%s: the 4 limb leads marked derived" % base)

# the MUSE fixture holds the same ECG as the CC0 aECG: the same samples where it stores them
if have_shared:
    _, a = read_csv(os.path.join(SH, "aecg", "hl7_Example_aECG.xml"))
    names, m = read_csv(os.path.join(FIX, "muse_from_hl7_example.xml"))
    an, _ = read_csv(os.path.join(SH, "aecg", "hl7_Example_aECG.xml"))
    if a and m:
        for lead in ("I", "II", "V1", "V6"):
            check(m[names.index(lead)] == a[an.index("MDC_ECG_LEAD_" + lead)], "MUSE fixture lead %s = aECG" % lead)
        # the aECG's own III is the device's; ours is derived: within a unit (2.5 uV) of rounding
        d = max(abs(x - y) for x, y in zip(m[names.index("III")], a[an.index("MDC_ECG_LEAD_III")]))
        check(d <= 5.0, "derived III within 5 uV of the stored one (max %g)" % d)

# ---- Philips Sierra (XLI) -------------------------------------------------------------------------


def lzw10(data):
    """Textbook LZW decoder: 10-bit codes, MSB first; 1023 ends the stream."""
    table = [bytes([i]) for i in range(256)]
    out = bytearray()
    bitstr = "".join(format(b, "08b") for b in data)
    prev = None
    for k in range(0, len(bitstr) - 9, 10):
        code = int(bitstr[k:k + 10], 2)
        if code == 1023:
            break
        if code < len(table):
            entry = table[code]
        elif code == len(table) and prev is not None:
            entry = prev + prev[:1]
        else:
            raise ValueError("bad code")
        out += entry
        if prev is not None and len(table) <= 1022:
            table.append(prev + entry[:1])
        prev = entry
    return bytes(out)


def xli(data, n_leads, n):
    leads, off = [], 0
    for _ in range(n_leads):
        size, _unk, start = struct.unpack_from("<ihh", data, off)
        off += 8
        raw = lzw10(data[off:off + size])
        off += size
        half = (len(raw) + 1) // 2
        codes = []
        for i in range(half):
            v = raw[i] << 8 | (raw[half + i] if half + i < len(raw) else 0)
            codes.append(v - 65536 if v >= 32768 else v)
        out = codes[:2]
        x, y, last = codes[0], codes[1], start
        for i in range(2, len(codes)):
            z = 2 * y - x - last
            last = codes[i] - 64
            out.append(z)
            x, y = y, z
        leads.append(out[:n])
    i, ii, r3, r4, r5, r6 = leads[:6]
    tdiv = lambda a, b: int(a / b)  # C's truncation toward zero
    iii = [b - a - c for a, b, c in zip(i, ii, r3)]
    avr = [-c - tdiv(a + b, 2) for a, b, c in zip(i, ii, r4)]
    avl = [tdiv(a - d, 2) - c for a, d, c in zip(i, iii, r5)]
    avf = [tdiv(b + d, 2) - c for b, d, c in zip(ii, iii, r6)]
    return [i, ii, iii, avr, avl, avf] + leads[6:]


def sierra_reference(path):
    root = ET.parse(path).getroot()
    ns = "{http://www3.medical.philips.com}"
    pw = root.find(ns + "waveforms/" + ns + "parsedwaveforms")
    sc = root.find(ns + "dataacquisition/" + ns + "signalcharacteristics")
    fs = float(pw.get("samplespersecond") or sc.findtext(ns + "samplingrate"))
    res = float(pw.get("resolution") or sc.findtext(ns + "resolution") or sc.findtext(ns + "signalresolution"))
    nl = int(pw.get("numberofleads") or sc.findtext(ns + "numberchannelsallocated"))
    n = int(float(pw.get("durationperchannel")) * fs / 1000)
    leads = xli(base64.b64decode("".join(pw.text.split())), nl, n)
    return [[v * res for v in lead] for lead in leads], fs


sierra_files = [os.path.join(FIX, "sierra_1-03_129DYPRG.XML")]
if have_shared:
    sierra_files += [os.path.join(SH, "sierra", f) for f in sorted(os.listdir(os.path.join(SH, "sierra")))]
for path in sierra_files:
    base = os.path.basename(path)
    names, cols = read_csv(path)
    check(names is not None, "Sierra %s read" % base)
    if names is None:
        continue
    ref, fs = sierra_reference(path)
    check(names == ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"], "%s: lead names %s" % (base, names))
    n = len(cols[0])
    check(n == int(10 * fs), "%s: the 10 s of ECG kept (%d samples)" % (base, n))
    for j, c in enumerate(cols):
        check(c == ref[j][:n], "%s: lead %s equals the Python XLI decoding" % (base, names[j]))
    # what was left out is the calibration second: the 1 mV pulse, the same in every lead
    tail = [ref[j][n:] for j in range(len(ref))]
    pulse = [t for t in range(len(tail[0])) if all(lead[t] == 1000.0 for lead in tail)]
    check(len(pulse) >= 50, "%s: the dropped tail holds the calibration pulse (1 mV in every lead, %d samples)" % (base, len(pulse)))

# ---- malformed files ------------------------------------------------------------------------------
bad_dir = os.path.join(TMP, "malformed")
os.makedirs(bad_dir, exist_ok=True)


def refused(name, content, what):
    path = os.path.join(bad_dir, name)
    with open(path, "wb") as f:
        f.write(content)
    p = mrmnet("read", path)
    ok = p.returncode == 1 and p.stderr.strip() != "" and "Sanitizer" not in p.stderr and "runtime error" not in p.stderr
    check(ok and (what in p.stderr), "%s refused (%s): rc %d, %s" % (name, what, p.returncode, p.stderr.strip()[:300]))


def load(path):
    with open(path, "rb") as f:
        return f.read()


aecg = load(os.path.join(FIX, "aecg_liryc_synthetic.xml"))
refused("aecg_truncated.xml", aecg[: len(aecg) // 2], "XML")
refused("aecg_bad_digit.xml", aecg.replace(b"<digits>", b"<digits>12x ", 1), "not an integer")
i = aecg.find(b"<digits>")
refused("aecg_short_lead.xml", aecg[: i + 8] + aecg[i + 8:].replace(b" ", b"", 1).split(b" ", 1)[1], "samples")
refused("aecg_no_increment.xml", aecg.replace(b"<increment", b"<incrementX", 1).replace(b"</increment>", b"</incrementX>", 1), "increment")
refused("aecg_zero_scale.xml", aecg.replace(b'<scale value="5"', b'<scale value="0"', 1), "scale")
refused("aecg_entities.xml",
        aecg.replace(b"<AnnotatedECG", b'<!DOCTYPE AnnotatedECG [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>\n<AnnotatedECG', 1),
        "entities")
refused("aecg_external.xml",
        aecg.replace(b"<AnnotatedECG", b'<!DOCTYPE AnnotatedECG [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<AnnotatedECG', 1),
        "entities")

muse = load(os.path.join(FIX, "muse_from_hl7_example.xml"))
refused("muse_truncated.xml", muse[: len(muse) * 2 // 3], "XML")
j = muse.rfind(b"<WaveFormData>") + len(b"<WaveFormData>\n")
refused("muse_bad_base64.xml", muse[:j] + b"!!" + muse[j + 2:], "base64")
refused("muse_wrong_count.xml", muse.replace(b"<LeadSampleCountTotal>5000<", b"<LeadSampleCountTotal>5001<", 1), "LeadByteCountTotal")
refused("muse_wrong_count2.xml",
        muse.replace(b"<LeadByteCountTotal>10000<", b"<LeadByteCountTotal>10002<", 1).replace(b"<LeadSampleCountTotal>5000<",
                                                                                             b"<LeadSampleCountTotal>5001<", 1),
        "WaveFormData holds")
k = muse.rfind(b"<WaveFormData>") + len(b"<WaveFormData>\n") + 100
refused("muse_crc.xml", muse[:k] + (b"B" if muse[k:k + 1] != b"B" else b"C") + muse[k + 1:], "CRC-32")
refused("muse_no_rate.xml", muse.replace(b"<SampleBase>500</SampleBase>", b"<SampleBase>x</SampleBase>"), "SampleBase")

sierra = load(os.path.join(FIX, "sierra_1-03_129DYPRG.XML"))
s0 = sierra.find(b'nbitspersample="16">') + len(b'nbitspersample="16">')
s1 = sierra.find(b"</parsedwaveforms>")
blob = base64.b64decode(b"".join(sierra[s0:s1].split()))


def with_blob(b):
    return sierra[:s0] + base64.encodebytes(b) + sierra[s1:]


refused("sierra_truncated_xli.xml", with_blob(blob[: len(blob) // 3]), "XLI")
refused("sierra_bad_size.xml", with_blob(struct.pack("<i", 10 ** 8) + blob[4:]), "XLI")
refused("sierra_negative_size.xml", with_blob(struct.pack("<i", -5) + blob[4:]), "XLI")
# a code beyond the dictionary in the first block: 10 bits of ones but for the last (1022)
broken = bytearray(blob)
broken[8:11] = bytes([0xFF, 0xBF, 0xF0])
refused("sierra_broken_lzw.xml", with_blob(bytes(broken)), "LZW")
def lzw10_literal(raw):
    """An LZW stream of 10-bit codes that names every byte by its literal code, then 1023 (valid: the decoder
    needs no dictionary entry)."""
    bits = "".join(format(b, "010b") for b in raw) + format(1023, "010b")
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[k:k + 8], 2) for k in range(0, len(bits), 8))


# every code -32768: the second differences grow quadratically past any 32-bit value within 400 samples
ramp = lzw10_literal(b"\x80" * 5500 + b"\x00" * 5500)
refused("sierra_xli_overflow.xml", with_blob(struct.pack("<ihh", len(ramp), 0, 0) + ramp + blob[8 + struct.unpack_from("<i", blob)[0]:]),
        "outside any ECG")

refused("sierra_bad_base64.xml", sierra[:s0] + b"%%%%" + sierra[s0 + 4:], "base64")
refused("sierra_bad_version.xml", sierra.replace(b"<documentversion>1.03<", b"<documentversion>9.9<", 1), "version")
refused("sierra_duration.xml", sierra.replace(b'durationperchannel="11000"', b'durationperchannel="900000000"', 1), "durationperchannel")
# a stated size far beyond what the element's text can hold is refused before it is allocated
refused("sierra_claims_more.xml", with_blob(blob[:30]).replace(b'durationperchannel="11000"', b'durationperchannel="1000000"', 1),
        "hold at most")
refused("not_ecg.xml", b'<?xml version="1.0"?><html><body>hello</body></html>', "not a record format")

# ---- the aECG and SCP-ECG copies of one ECG ---------------------------------------------------------
if have_shared:
    scp = os.path.join(SH, "scp", "ecgtoolkit_Example.scp")
    p = mrmnet("read", "--csv", scp)
    if p.returncode != 0:
        print("note: mrmnet does not read SCP-ECG here (%s): the aECG/SCP agreement is not checked" % p.stderr.strip()[:120])
    else:
        rows = list(csv.reader(io.StringIO(p.stdout)))
        sn = rows[0]
        an, a = read_csv(os.path.join(SH, "aecg", "hl7_Example_aECG.xml"))
        for lead in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6"):
            js = next((j for j, n in enumerate(sn) if n.upper().replace("LEAD ", "") == lead.upper()), None)
            ja = an.index("MDC_ECG_LEAD_" + lead)
            if js is None:
                check(False, "SCP copy has lead " + lead)
                continue
            sv = [float(r[js]) for r in rows[1:]]
            scale = 1000.0 if abs(max(sv, key=abs)) < 20 else 1.0  # mV or uV
            m = min(len(sv), len(a[ja]))
            check(m >= 4999 and all(abs(x * scale - y) < 1e-6 for x, y in zip(sv[:m], a[ja][:m])),
                  "aECG and SCP copies agree on lead %s" % lead)
end()
