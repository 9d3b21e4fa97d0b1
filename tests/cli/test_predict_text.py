"""predict's human-readable output for a clinician: the model's training data and "not a
diagnosis" once at the top with the meaning of the mark; each class's code with its name spelled
out, its probability and its threshold (the model's), the mark on exactly the called classes;
the probabilities equal those of --json."""
import json
import os
import re

from cli_testlib import SRC, check, end, mrmnet, need_mrmnet

need_mrmnet()
MODEL = os.path.join(SRC, "models", "ptbxl-superdiagnostic.safetensors")
rec = os.path.join(SRC, "tests", "fixtures", "ptb-xl", "00001_lr")
names = {"CD": "conduction disturbance", "HYP": "hypertrophy", "MI": "myocardial infarction", "NORM": "normal ECG",
         "STTC": "ST/T change"}
p = mrmnet("predict", "--model", MODEL, rec, expect=0)
j = mrmnet("predict", "--model", MODEL, "--json", rec, expect=0)
js = json.loads(j.stdout)[0]
text = p.stdout
head = text.split("\n\n")[0]
check("trained on the PTB-XL" in head and "Not a diagnosis" in head, "the preamble: " + head)
check("* marks a class whose probability is above its threshold" in head, "the mark is explained: " + head)
b = open(MODEL, "rb").read()
meta = json.loads(b[8:8 + int.from_bytes(b[:8], "little")])["__metadata__"]
thr = json.loads(meta["thresholds"])
for k, c in enumerate(json.loads(meta["classes"])):
    m = re.search(r"^  %s\s+%s\s+([\d.]+)\s+([\d.]+)(  \*)?$" % (re.escape(c), re.escape(names[c])), text, re.M)
    check(m is not None, "%s: code, name, probability, threshold on one line:\n%s" % (c, text))
    if m:
        check(abs(float(m.group(1)) - js["probabilities"][c]) < 6e-5, "%s: the probability of --json" % c)
        check(abs(float(m.group(2)) - thr[k]) < 6e-5, "%s: the model's threshold" % c)
        check(bool(m.group(3)) == (c in js["labels"]), "%s: marked exactly when called" % c)
end()
