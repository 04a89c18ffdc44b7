"""missed46: what each injected window looks like in units of the series' own variation before it.

usage: series.py FAMS SEEDS OUT.pkl      (FAMS: comma-separated families)

Per draw: sigma_d (the reading-to-reading noise: 1.4826 MAD of the first differences / sqrt 2 over the 1,000
readings before the onset), sigma_l (1.4826 MAD of the level over them), the history's range (min..max of every
reading before the onset), and the departure (injected - clean) over [onset, onset + 150]: its peak and median
size in sigma_d, sigma_l and range units, the readings to half its peak, the share of those rows outside the
history's range, and the first differences' scale after / before (a noise or volatility change).
"""

import pickle
import sys

import numpy as np

sys.path.insert(0, "/work/main/benchmarks")
import detection_families as dfam  # noqa: E402

fams, seeds, out = sys.argv[1].split(","), int(sys.argv[2]), sys.argv[3]


def mad(v):
    return 1.4826 * float(np.median(np.abs(v - np.median(v))))


rows = []
for fam in fams:
    for kind in dfam.ALL_KINDS[fam]:
        for seed in range(seeds):
            d = dfam.draw(fam, kind, seed)
            o = d.onset
            c, x = d.clean.astype(float), d.injected.astype(float)
            pre = c[o - 1000:o]
            dp = np.diff(pre)
            sd = mad(dp) / np.sqrt(2)
            if sd == 0:
                sd = max(float(np.std(dp)) / np.sqrt(2), 1e-12)
            sl = max(mad(pre), 1e-12)
            lo, hi = float(c[:o].min()), float(c[:o].max())
            rng = max(hi - lo, 1e-12)
            post = slice(o, o + 151)
            dep = x[post] - c[post]
            ad = np.abs(dep)
            pk = float(ad.max())
            half = int(np.flatnonzero(ad >= 0.5 * pk)[0]) if pk > 0 else -1
            xo = x[post]
            outside = float(np.mean((xo > hi) | (xo < lo)))
            dpost = np.diff(x[o:o + 151])
            rows.append({
                "fam": fam, "kind": kind, "seed": seed, "onset": o,
                "sigma_d": sd, "sigma_l": sl, "range": rng,
                "peak_d": pk / sd, "peak_l": pk / sl, "peak_r": pk / rng,
                "med_d": float(np.median(ad)) / sd, "med_r": float(np.median(ad)) / rng,
                "half": half, "outside": outside,
                "noise_x": (mad(dpost) / np.sqrt(2)) / sd,
                "params": d.params,
            })
pickle.dump(rows, open(out, "wb"))
print(len(rows), "draws")
