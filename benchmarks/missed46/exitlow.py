"""missed46: a lower sustained-exit bar on machines: readings > H + d x W for 12 readings in a row, H / W the max /
width of the readings up to 12 readings before (a simplified exit40). Windows [onset, onset+150] vs clean copies
after reading 450 (machine, and the clean copies of every blind-like family)."""
import sys
import numpy as np
sys.path.insert(0, "/work/main/benchmarks")
import detection_families as dfam  # noqa: E402


def exits(x, d, hold=12, lag=12):
    hi = np.maximum.accumulate(x)
    lo = np.minimum.accumulate(x)
    H = np.r_[np.full(lag, np.inf), hi[:-lag]]
    Wd = np.r_[np.full(lag, np.inf), (hi - lo)[:-lag]]
    up = (x > H + d * Wd)
    lo_ = np.r_[np.full(lag, -np.inf), lo[:-lag]]
    dn = (x < lo_ - d * Wd)
    out = np.zeros(len(x), bool)
    for a in (up, dn):
        run = np.zeros(len(x), int)
        c = 0
        for i, v in enumerate(a):
            c = c + 1 if v else 0
            run[i] = c
        out |= run >= hold
    out[:450] = False
    return out


for dd in (0.05, 0.1, 0.15):
    res = []
    for fam, kinds in (("machine", ("drift", "shutdown", "spike")), ("cloud", ("leak",)), ("server", ("level_shift",)),
                       ("traffic", ("level_shift",)), ("adprice", ("level_shift",)), ("online", ("partial_drop",))):
        for kind in kinds:
            w = c = 0
            n = 150
            for s in range(n):
                dr = dfam.draw(fam, kind, s)
                o = dr.onset
                w += exits(dr.injected.astype(float), dd)[o:o + 151].any()
                c += exits(dr.clean.astype(float), dd).any()
            res.append(f"{fam}:{kind} windows {w / n:.2f} clean {c / n:.2f}")
    print(f"d {dd}: " + "; ".join(res))
