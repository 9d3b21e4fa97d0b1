#!/usr/bin/env python3
"""Reference values of a DICOM ECG waveform read with pydicom, for test_dicom.

usage: dicom_ref.py FILE OUT
Writes to OUT: "G index fs samples channels" for the multiplex group of the longest duration
(the first on a tie), "L meaning" per channel (Channel Source Sequence code meaning), then every
value of pydicom's waveform_array(index, as_raw=False) (channel sensitivity, correction factor
and baseline applied), one per line, channel after channel; then "P age sex" from the dataset."""
import sys

import pydicom
from pydicom.waveforms.numpy_handler import multiplex_array

ds = pydicom.dcmread(sys.argv[1])
best, best_dur = 0, -1.0
for i, g in enumerate(ds.WaveformSequence):
    dur = g.NumberOfWaveformSamples / float(g.SamplingFrequency)
    if dur > best_dur:
        best, best_dur = i, dur
g = ds.WaveformSequence[best]
a = multiplex_array(ds, best, as_raw=False)
with open(sys.argv[2], "w") as f:
    f.write("G %d %r %d %d\n" % (best, float(g.SamplingFrequency), a.shape[0], a.shape[1]))
    for ch in g.ChannelDefinitionSequence:
        f.write("L %s\n" % ch.ChannelSourceSequence[0].CodeMeaning)
    for c in range(a.shape[1]):
        for v in a[:, c]:
            f.write("%r\n" % float(v))
    f.write("P %s %s\n" % (ds.get("PatientAge", "-") or "-", ds.get("PatientSex", "-") or "-"))
