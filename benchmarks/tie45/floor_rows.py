"""Rows whose stage emission sat at the 1e-12 floor before the second stage (pre-recal >= 1 - 1.5e-12): where their
final anomaly_score lies against the pooled threshold, and how much unfloored evidence they carried."""

import sys, numpy as np
from collections import Counter

NAMES = {
    10: "value?",
    11: "robust_z",
    12: "ewma",
    13: "spike",
    14: "flatline",
    15: "threshold",
    20: "silence",
    30: "likelihood",
    40: "reach",
    50: "lane",
    51: "count_drop",
    60: "period",
    70: "robust_level",
    80: "fl_offer",
    0: "none",
}
nm = lambda c: NAMES.get(int(c) % 100, str(c)) + ("+bf" if c >= 100 else "")
z = np.load(sys.argv[1])
thr = float(sys.argv[2])
sc, dg = z["score"], z["diag"]
if "inwin" in z:
    inwin = z["inwin"]
else:
    inwin = np.zeros(len(sc), bool)
    offs = z["offs"]
    for i, lo, hi in z["wins"]:
        inwin[offs[i] + lo : offs[i] + hi + 1] = True
fl = dg[:, 1] >= 1 - 1.5e-12
print(
    f"pre-recal at the floor: {fl.sum()} rows ({(fl & inwin).sum()} in windows); "
    f"final >= thr {(fl & (sc >= thr)).sum()}, "
    f"final < thr {(fl & (sc < thr) & (sc > 0)).sum()}, zeroed (fp44 gate) {(fl & (sc == 0)).sum()}"
)
print(
    "  final score of floored rows: min",
    sc[fl & (sc > 0)].min() if (fl & (sc > 0)).any() else None,
    " unfloored stage y: median",
    np.median(dg[fl, 2]) if fl.any() else None,
    "max",
    dg[fl, 2].max() if fl.any() else None,
)
print("  stages:", Counter(nm(c) for c in dg[fl, 0]).most_common())
fin = sc >= 1 - 1.5e-12
print(f"final at the floor: {fin.sum()} rows ({(fin & inwin).sum()} in windows); rows >= thr: {(sc >= thr).sum()}")
