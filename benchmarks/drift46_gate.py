"""drift45's coarse-yesterday departure with two gates that keep it off a road's ordinary days (drift46; a
measurement in numpy, no detector change).

    PYTHONPATH=$PWD/src:$PWD/benchmarks python benchmarks/drift46_gate.py kinds --seeds 60 temperature:drift \\
        traffic:level_shift server:noise
    URBANPULSE_KERNELS=jit PYTHONPATH=$PWD/src:$PWD/benchmarks python benchmarks/drift46_gate.py overlay \\
        --seeds 60 --families server,traffic [--cache /tmp/st60.pkl]

The statistic is drift45's `bins_z` (completed 30-minute bin means against yesterday's same bin, readings winsorised
at yesterday's bin mean +- 3 x the series' mean absolute departure, D's short mean less its slow level in units of
its own RMS, frozen above z 3, judged by the series' own record at 2.5). What clean traffic copies emitted on
(drift45: 9-19 %) was the first weekend (UTC Saturday, 3.4-4.2 days into the series, the road's Saturday against its
Friday) and, once the weekend is skipped, the Tuesday after it (the winsorising scale had learned the weekend's
departures and let Tuesday's bursts through). Two gates:

- `--week A B` (calendar): a completed bin is compared with yesterday's only where its end lies between A and B
  hours after Monday 00:00 UTC (default 36 and 108: Tuesday 12:00 to Friday 12:00 UTC, so both days of the pair
  are a local weekday anywhere from UTC-12 to UTC+12), and the winsorising scale learns only from readings inside
  that span (a weekend's departures do not widen it). Outside, no departure and z 0.
- `--smooth S`: an emission also needs |D's short mean - slow level| >= S x the RMS of D's bin-to-bin changes
  (EW over 24 bins, not learned while z > 3): a drift's departure grows smoothly; a day's different rush hours
  make D jump from bin to bin.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import detection_families as det  # noqa: E402
import drift44_day_over_day as d44  # noqa: E402
import nab_score  # noqa: E402

DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
FREEZE_Z = 3.0
EMIT = 0.99999  # drift45_overlay's emission


def _week_hour(t_us: int) -> float:
    """Hours since the UTC Monday 00:00 before `t_us` (1970-01-01 was a Thursday)."""
    return ((t_us // DAY_US + 3) % 7) * 24 + (t_us % DAY_US) / HOUR_US


def bins_gated(ts_us: np.ndarray, x: np.ndarray, bins: int = 48, short_b: float = 2.0, slow_b: float = 24.0,
               min_d: int = 8, clip: float = 3.0, week: tuple[float, float] | None = (36.0, 108.0),
               dv_bins: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Per reading: drift45's z (held between completed bins; 0 outside `week`) and the smoothness
    |m - lv| / RMS(D's bin-to-bin change) (module docstring)."""
    width = DAY_US // bins
    yest = np.full(bins, np.nan)
    yday = np.full(bins, -10, np.int64)
    n = len(x)
    z = np.zeros(n)
    smooth = np.zeros(n)
    cur_day, cur_bin, s, c = -1, -1, 0.0, 0
    m = lv = None
    v, nv, zh, sm = 0.0, 0, 0.0, 0.0
    dprev, dv, ndv = None, 0.0, 0
    mad, nm = 0.0, 0

    def inside(t_us: int) -> bool:
        return week is None or week[0] <= _week_hour(t_us) < week[1]

    for t in range(n):
        day, b = int(ts_us[t] // DAY_US), int((ts_us[t] % DAY_US) // width)
        if (day, b) != (cur_day, cur_bin):
            if c > 0:
                mean = s / c
                ok = inside(cur_day * DAY_US + (cur_bin + 1) * width)
                if not ok:
                    zh, sm = 0.0, 0.0
                if yday[cur_bin] == cur_day - 1 and ok:
                    dd = mean - yest[cur_bin]
                    if dprev is not None and zh <= FREEZE_Z:
                        ndv += 1
                        dv += ((dd - dprev) ** 2 - dv) / min(ndv, dv_bins)
                    dprev = dd
                    if m is None:
                        m = lv = dd
                    else:
                        m += (dd - m) / short_b
                        d = m - lv
                        dc, zn = d, 0.0
                        if nv >= min_d and v > 0:
                            zn = abs(d) / np.sqrt(v)
                            dc = float(np.clip(d, -4 * np.sqrt(v), 4 * np.sqrt(v)))
                        if not (nv >= min_d and zn > FREEZE_Z):
                            nv += 1
                            v += (dc * dc - v) / min(nv, 200)
                        lv += (dd - lv) / slow_b
                        zh = zn
                        sm = abs(d) / np.sqrt(dv) if dv > 0 else 0.0
                yest[cur_bin], yday[cur_bin] = mean, cur_day
            cur_day, cur_bin, s, c = day, b, 0.0, 0
        xv = x[t]
        if clip > 0 and yday[b] == day - 1:
            e = xv - yest[b]
            if mad > 0:
                xv = yest[b] + float(np.clip(e, -clip * mad, clip * mad))
                if inside(int(ts_us[t])):
                    nm += 1
                    mad += (min(abs(e), 4 * mad) - mad) / min(nm, 512)
            else:
                mad, nm = abs(e), 1
        s += xv
        c += 1
        z[t] = zh
        smooth[t] = sm
    return z, smooth


def hits(ts_us: np.ndarray, x: np.ndarray, a) -> np.ndarray:
    """Readings where the gated statistic would emit: record ratio >= `--ratio` and smoothness >= `--smooth`."""
    z, sm = bins_gated(ts_us, x, week=None if a.no_week else tuple(a.week), dv_bins=a.dv_bins)
    return (d44.record_ratio(z) >= a.ratio) & (sm >= a.smooth)


def emissions(hit: np.ndarray, rearm_bins: int) -> np.ndarray:
    """One emission a series (`rearm_bins` 0), or per event: the first hit, again after `rearm_bins` x 30 readings
    without a hit (readings, not time: a cheap proxy of the overlay)."""
    idx = np.flatnonzero(hit)
    if not len(idx):
        return idx
    if rearm_bins == 0:
        return idx[:1]
    out = [idx[0]]
    for i, j in zip(idx[:-1], idx[1:]):
        if j - i > rearm_bins * 30:
            out.append(j)
    return np.array(out, np.int64)


def kinds(a) -> None:
    """Per kind: share of clean copies with a hit after row 450 / of windows [onset, onset + 150] with one."""
    for spec in a.specs:
        fam, kind = spec.split(":")
        cl, wi = [], []
        for s in range(a.seeds):
            d = det.draw(fam, kind, s)
            cl.append(hits(d.ts_us, d.clean, a)[450:].any())
            wi.append(hits(d.ts_us, d.injected, a)[d.onset:d.onset + 151].any())
        print(f"| {spec} | {np.mean(cl):.2f} | {np.mean(wi):.2f} |", flush=True)


def overlay(a) -> None:
    """drift45_overlay with the gated statistic: main's kernel scores (or a `--cache` of them), the emissions
    overlaid at EMIT, both NAB-scored with their own pooled threshold."""
    if a.cache and Path(a.cache).exists():
        res, scores = pickle.load(open(a.cache, "rb"))
    else:
        scores = {}
        res = det.sweep(a.seeds, None, scores=scores, fams=a.families.split(","))
        if a.cache:
            pickle.dump((res, scores), open(a.cache, "wb"))
    _, base = det.nab_table(res, scores)
    over, n_emit = {}, {"clean": 0, "injected": 0}
    for name, fs in scores.items():
        fam, kind, seed, tag = name.split("/")
        d = det.draw(fam, kind, int(seed))
        x = d.clean if tag == "clean" else d.injected
        rows = emissions(hits(d.ts_us, x, a), a.rearm_bins)
        s = fs.anomaly_score.copy()
        s[rows] = np.maximum(s[rows], EMIT)
        n_emit[tag] += len(rows)
        over[name] = nab_score.FileSeries(name, fs.ts_us, s)
    _, new = det.nab_table(res, over)
    print(f"overall {base['overall']:.2f} -> {new['overall']:.2f} (threshold {base['threshold']:.5f} -> "
          f"{new['threshold']:.5f}); overlaid emissions: clean {n_emit['clean']}, injected {n_emit['injected']}")
    for k in base["kinds"]:
        print(f"  {k}: {base['kinds'][k]:.2f} -> {new['kinds'][k]:.2f}")


def dev(a) -> None:
    """Per development dataset (LODO's files): files with an emission outside labelled windows / inside one."""
    import detection_devset

    names = a.specs[0].split(",") if a.specs else ["gecco", "synthetic", "beijing", "uci", "skab", "3w"]
    files = [f for f in detection_devset.load() if f.dataset in names]
    for ds in sorted({f.dataset for f in files}):
        out = ins = n = 0
        for f in (f for f in files if f.dataset == ds):
            rows = emissions(hits(np.asarray(f.ts_us, np.int64), np.asarray(f.values, np.float64), a), 0)
            inside = np.zeros(len(f.values), bool)
            for lo, hi in f.windows:
                inside[lo:hi + 1] = True
            out += bool(len(rows)) and not inside[rows[0]]
            ins += bool(len(rows)) and bool(inside[rows[0]])
            n += 1
        print(f"| {ds} | {n} | {out} | {ins} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["kinds", "overlay", "dev"])
    ap.add_argument("specs", nargs="*")
    ap.add_argument("--seeds", type=int, default=60)
    ap.add_argument("--families", default="temperature,onoff,rate,sparse")
    ap.add_argument("--cache", default="", help="overlay: a pickle of main's scores (written if missing)")
    ap.add_argument("--ratio", type=float, default=2.5)
    ap.add_argument("--smooth", type=float, default=3.0)
    ap.add_argument("--dv-bins", type=int, default=24)
    ap.add_argument("--week", type=float, nargs=2, default=(36.0, 108.0))
    ap.add_argument("--no-week", action="store_true")
    ap.add_argument("--rearm-bins", type=int, default=0, help="0: one emission a series")
    a = ap.parse_intermixed_args()
    {"kinds": kinds, "overlay": overlay, "dev": dev}[a.what](a)


if __name__ == "__main__":
    main()
