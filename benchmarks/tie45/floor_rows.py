"""Rows whose stage emission sat at the 1e-12 floor before the second stage (pre-recal >= 1 - 1.5e-12): where their
final anomaly_score lies against the pooled threshold, and how much unfloored evidence they carried."""

import sys, numpy as np
from collections import Counter

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from rows import stage_name as nm  # noqa: E402
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
