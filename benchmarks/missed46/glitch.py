"""missed46 Q4: an out-and-back statistic (a glitch) judged by the series' own record, in numpy.

usage: glitch.py FAMS SEEDS OUT.pkl [R ...]

g_t = min(|x_t - x_{t-1}|, |x_t - x_{t+1}|) where both differences have the same sign (the reading left and came
back), else 0: known one reading after t. Judged by its record: ratio_t = g_t / max(g_u, u < t, u >= 1) over the
series' own past, from row PROBATION (450) on; a series "reaches" R where ratio_t >= R. Also g_t in units of the
reading-to-reading noise (1.4826 MAD of the first differences over the 500 readings before t, / sqrt 2).
Measured: per kind, the share of injected windows reaching R on [onset, onset + 150] (and at the onset row), and
the share of clean copies reaching R anywhere after probation (the false-alarm side), as drift45's `kinds` table.
"""

import pickle
import sys

import numpy as np

sys.path.insert(0, "/work/main/benchmarks")
import detection_families as dfam  # noqa: E402

PROBATION = 450
#: off where the first differences' MAD is 0 (an idle or coarsely quantised stretch), as reach is
MAD0_OFF = bool(int(__import__("os").environ.get("MAD0_OFF", "0")))


def glitch(x: np.ndarray) -> np.ndarray:
    a = x[1:-1] - x[:-2]
    b = x[1:-1] - x[2:]
    g = np.where(np.sign(a) * np.sign(b) > 0, np.minimum(np.abs(a), np.abs(b)), 0.0)
    return np.r_[0.0, g, 0.0]


def record_ratio(g: np.ndarray) -> np.ndarray:
    rec = np.maximum.accumulate(np.r_[0.0, g[:-1]])  # the largest g before t
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(rec > 0, g / rec, np.where(g > 0, np.inf, 0.0))
    r[:PROBATION] = 0.0
    return r


def noise_units(x: np.ndarray, g: np.ndarray, start: int = PROBATION) -> np.ndarray:
    d = np.abs(np.diff(x))
    out = np.zeros(len(x))
    for t in range(start, len(x) - 1, 50):  # the scale refreshed every 50 readings, from the 500 before
        s = 1.4826 * np.median(d[max(0, t - 500):t - 1]) / np.sqrt(2)
        if s > 0:
            out[t:t + 50] = g[t:t + 50] / s
        elif not MAD0_OFF:
            out[t:t + 50] = g[t:t + 50] / max(np.mean(d[max(0, t - 500):t - 1]), 1e-12)
    return out



if __name__ == "__main__":
    fams, seeds, out = sys.argv[1].split(","), int(sys.argv[2]), sys.argv[3]
    rows = []
    for fam in fams:
        for kind in dfam.ALL_KINDS[fam]:
            for seed in range(seeds):
                d = dfam.draw(fam, kind, seed)
                o = d.onset
                r = {"fam": fam, "kind": kind, "seed": seed, "onset": o}
                for tag, x in (("clean", d.clean), ("inj", d.injected)):
                    x = x.astype(float)
                    g = glitch(x)
                    rr = record_ratio(g)
                    nu = noise_units(x, g)
                    r[tag + "_rr_win"] = float(rr[o:o + 151].max())
                    r[tag + "_rr_on"] = float(rr[o])
                    r[tag + "_nu_win"] = float(nu[o:o + 151].max())
                    r[tag + "_nu_on"] = float(nu[o])
                    r[tag + "_rr_all"] = float(rr[PROBATION:].max())
                    r[tag + "_rr_pre"] = float(rr[PROBATION:o - 150].max())
                    r[tag + "_nu_all"] = float(nu[PROBATION:].max())
                    r[tag + "_nu_pre"] = float(nu[PROBATION:o - 150].max())
                rows.append(r)
    pickle.dump(rows, open(out, "wb"))
    print(len(rows), "draws")
