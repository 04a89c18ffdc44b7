"""missed46 Q4, the gated variant: a glitch of at least K noise units (glitch.py's g_t / the reading-to-reading
noise scale) on a series whose glitches since probation were all at most G noise units (a quiet, smooth series:
a machine's lagged temperature, not a heavy-tailed server metric). Fires at t (known at t + 1).

usage: glitch2.py FAMS SEEDS K G [W.pkl ...]   prints the per-kind table (windows / clean copies / main's missed)
"""
import pickle
import sys

import numpy as np

sys.path.insert(0, "/work/main/benchmarks")
sys.path.insert(0, "/tmp/missed46")
import detection_families as dfam  # noqa: E402
from glitch import PROBATION, glitch, noise_units  # noqa: E402


#: at most this share of the earlier readings within +-2 noise scales of the glitch's value (1: no gate)
DENSITY = float(__import__("os").environ.get("DENSITY", "1"))
#: the density gate reads this many readings before the glitch (10**9: the whole history)
DENS_W = int(__import__("os").environ.get("DENS_W", str(10**9)))
START = 50  # the noise scale and the glitch record from this reading on (the scale from the readings before)


RAW = bool(int(__import__("os").environ.get("RAW", "0")))
NB = float(__import__("os").environ.get("NB", "0"))


def _ffill(a: np.ndarray) -> np.ndarray:
    idx = np.where(np.isfinite(a), np.arange(len(a)), 0)
    np.maximum.accumulate(idx, out=idx)
    out = a[idx]
    out[~np.isfinite(a) & (idx == 0) & ~np.isfinite(a[0])] = np.nan
    return out


BURST = bool(int(__import__("os").environ.get("BURST", "0")))


def burst_size(x: np.ndarray, span: int = 12) -> np.ndarray:
    """At each reading t, min(the jump into t, the largest opposite jump within the next `span` readings)."""
    j = np.r_[0.0, np.diff(x)]
    n = len(x)
    back = np.zeros(n)
    for k in range(1, span + 1):
        jk = np.r_[j[k:], np.zeros(k)]
        back = np.maximum(back, np.where(np.sign(jk) == -np.sign(j), np.abs(jk), 0.0))
    return np.minimum(np.abs(j), back)


def fires(x: np.ndarray, K: float, G: float, R: float = 0.0) -> np.ndarray:
    """Rows t >= PROBATION where the glitch is >= K noise units and >= R x the largest earlier one (from START on),
    on a series whose earlier glitches were all <= G noise units (a smooth, light-tailed series)."""
    nu = noise_units(x, glitch(x), START)
    prior = np.maximum.accumulate(np.r_[0.0, nu[:-1]])
    if BURST:  # the gate also reads the series' bursts: a jump out and one back within 12 readings, noise units
        bu = noise_units(x, burst_size(x), START)
        # a burst is known once it came back: its size enters the record 12 readings later
        prior = np.maximum(prior, np.maximum.accumulate(np.r_[np.zeros(13), bu[:-13]]))
    f = (nu >= K) & (prior <= G) & (nu >= R * prior)
    if RAW:  # the records in the series' own units (a stretch where the MAD was 0 still counts), judged now
        g = glitch(x)
        scale = np.where(nu > 0, g / np.where(nu > 0, nu, 1.0), np.nan)  # the noise scale where it is known
        scale = _ffill(scale)
        rec = np.maximum.accumulate(np.r_[0.0, g[:-1]])
        if BURST:
            b = burst_size(x)
            rec = np.maximum(rec, np.maximum.accumulate(np.r_[np.zeros(13), b[:-13]]))
        with np.errstate(invalid="ignore"):
            f = (g >= K * scale) & (rec <= G * scale) & (g >= R * np.maximum.accumulate(np.r_[0.0, g[:-1]]))
        f &= np.isfinite(scale)
    if NB > 0:  # the series was calm before the jump: not a ramp's turning point
        left = np.abs(np.r_[0.0, 0.0, np.diff(x)[:-1]])
        f &= glitch(x) >= NB * left
    f[:PROBATION] = False
    t = np.flatnonzero(f)
    if DENSITY < 1.0:  # not at a value the series often sits at (an on/off series' idle between two bursts)
        keep = []
        for r in t:
            dd = np.abs(np.diff(x[max(0, r - 500):r]))
            sd = 1.4826 * np.median(dd) / np.sqrt(2)
            keep.append(np.mean(np.abs(x[max(0, r - DENS_W):r] - x[r]) <= 2 * sd) <= DENSITY)
        t = t[np.array(keep, bool)] if len(t) else t
    return t


if __name__ == "__main__":
    fams, seeds, K, G, R = (sys.argv[1].split(","), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]),
                            float(sys.argv[5]))
    Wm = {}
    for p in sys.argv[6:]:
        for r in pickle.load(open(p, "rb"))["rows"]:
            Wm[(r["fam"], r["kind"], r["seed"])] = r
    print(f"K {K} G {G} R {R} (record from reading {START})")
    print("| kind | windows reaching (at the onset row) | clean copies reaching | main's missed windows reached |")
    print("|---|---|---|---|")
    allc = []
    for f in fams:
        for kind in dfam.ALL_KINDS[f]:
            w = on = 0
            cl = []
            mr = mn = 0
            for s in range(seeds):
                d = dfam.draw(f, kind, s)
                o = d.onset
                fi = fires(d.injected.astype(float), K, G, R)
                hit = bool(((fi >= o) & (fi <= o + 150)).any())
                w += hit
                on += bool((fi == o).any())
                cl.append(len(fires(d.clean.astype(float), K, G, R)) > 0)
                r = Wm.get((f, kind, s))
                if r is not None and r["first"] is None:
                    mn += 1
                    mr += hit
            allc += cl
            print(f"| {f}:{kind} | {w / seeds:.2f} ({on / seeds:.2f}) | {np.mean(cl):.2f} | {mr} of {mn} |")
    print(f"all clean copies: {np.mean(allc):.3f} of {len(allc)}")
