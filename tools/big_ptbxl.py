#!/usr/bin/env python3
"""Makes a PTB-XL folder larger than the one given by listing its records several times.

usage: big_ptbxl.py SRC_PTBXL OUT_DIR REPEATS

OUT_DIR/ptbxl_database.csv lists every row of SRC's table REPEATS times, copy r (0-based) with
ecg_id r * 1000000 + ecg_id and the same files, folds and codes; records100/ and records500/ are
symbolic links to SRC's, scp_statements.csv a copy. `mrmnet prepare --ptbxl OUT_DIR` then writes
arrays REPEATS times the size of SRC's (48 KB a record), for tests and demonstrations of data
larger than memory."""
import csv
import os
import shutil
import sys


def make(src, out, repeats):
    os.makedirs(out, exist_ok=True)
    shutil.copyfile(os.path.join(src, "scp_statements.csv"), os.path.join(out, "scp_statements.csv"))
    for d in ("records100", "records500"):
        link = os.path.join(out, d)
        if os.path.lexists(link):
            os.unlink(link)
        if os.path.isdir(os.path.join(src, d)):
            os.symlink(os.path.abspath(os.path.join(src, d)), link)
    with open(os.path.join(src, "ptbxl_database.csv"), newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    c_id = header.index("ecg_id")
    n = 0
    with open(os.path.join(out, "ptbxl_database.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for r in range(repeats):
            for row in body:
                row = list(row)
                row[c_id] = str(r * 1000000 + int(float(row[c_id])))
                w.writerow(row)
                n += 1
    return n


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    print("%d rows" % make(sys.argv[1], sys.argv[2], int(sys.argv[3])))
