"""Does yesterday at coarse resolution keep drift44's day-over-day gain, and does a long-horizon slope judged by the
series' own record see leaks and machine drift? (drift45; a measurement in numpy, no detector change.)

    PYTHONPATH=$PWD/src:$PWD/benchmarks python benchmarks/drift45_coarse_yesterday.py kinds --stat bins --bins 48 \\
        --seeds 100 temperature:drift traffic:level_shift
    PYTHONPATH=$PWD/src:$PWD/benchmarks python benchmarks/drift45_coarse_yesterday.py nab --stat bins --bins 48
    PYTHONPATH=$PWD/src:$PWD/benchmarks python benchmarks/drift45_coarse_yesterday.py kinds --stat slope \\
        --horizon 240 cloud:leak machine:drift

Statistics (each O(1) per reading and small state per series, unlike drift44's exact previous day):

- `bins` (angle 1): a ring of the previous UTC day's `--bins` bin MEANS (exact yesterday, not an average over days)
  and today's running bin; when a bin of today completes, its departure D = today's mean - yesterday's mean of the
  same bin (the daily swing cancels exactly: the same clock interval on both days, no interpolation). D's short mean
  (EWMA over `--short-bins`) less D's slow level (EWMA over `--slow-bins`) in units of D's own RMS, the RMS not
  learned while z > 3 (drift44's freeze); z is held until the next completed bin. State: 2 x bins floats (yesterday
  and today; 48 bins = 768 B in float64) + a running sum and count.
- `interp`: drift44's per-reading variant for comparison (r = x - yesterday's bin means interpolated between bin
  centres; its `departure_z`).
- `slope` (angle 2): an exponentially weighted regression of value on time (horizon `--horizon` readings); its
  slope's t statistic (slope / its standard error from the weighted residual variance, with an AR(1)-style
  inflation from the residuals' lag-1 correlation); the same record ratio.

Every statistic is judged by drift44's `record_ratio` (z over the largest z the series showed up to 150 readings
before, from the 256th scored reading on), optionally gated by `--min-days` (no ratio before the series' record
covers that many days of readings).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import detection_families as det  # noqa: E402
import drift44_day_over_day as d44  # noqa: E402
import nab_score  # noqa: E402

DAY_US = 86_400_000_000
FREEZE_Z = 3.0


def bins_z(ts_us: np.ndarray, x: np.ndarray, bins: int, short_b: float, slow_b: float, min_d: int = 8,
           weekdays: bool = False, persist: int = 1, clip: float = 0.0) -> np.ndarray:
    """The completed-bin day-over-day departure's z (module docstring), held between completed bins; 0 unscored.
    `weekdays`: a departure is taken only when the completed bin's UTC day is Tuesday to Friday (so neither day of
    the pair is a UTC weekend day: lane35's days); `persist`: z is the smallest of the last `persist` bins' z;
    `clip` > 0: a reading enters today's bin mean winsorised at yesterday's bin mean +- clip x the series' mean
    absolute departure from yesterday's bin means (EW 1/512, its update itself winsorised), so a burst or a
    heavy-tailed reading moves the bin's mean by a bounded amount."""
    width = DAY_US // bins
    yest = np.full(bins, np.nan)  # yesterday's bin means (slot k: the last completed bin k)
    yday = np.full(bins, -10, np.int64)  # the day each slot's mean is of
    z = np.zeros(len(x))
    cur_day, cur_bin, s, c = -1, -1, 0.0, 0
    m = lv = None
    v, nv, zh = 0.0, 0, 0.0
    last: list[float] = []
    mad, nm = 0.0, 0
    for t in range(len(x)):
        day, b = int(ts_us[t] // DAY_US), int((ts_us[t] % DAY_US) // width)
        if (day, b) != (cur_day, cur_bin):
            if c > 0:  # the bin (cur_day, cur_bin) completed
                mean = s / c
                wd = (cur_day + 3) % 7
                if yday[cur_bin] == cur_day - 1 and (not weekdays or 1 <= wd <= 4):
                    dd = mean - yest[cur_bin]
                    if m is None:
                        m = lv = dd
                    else:
                        m += (dd - m) / short_b
                        d = m - lv
                        dc = d
                        zn = 0.0
                        if nv >= min_d and v > 0:
                            zn = abs(d) / np.sqrt(v)
                            dc = float(np.clip(d, -4 * np.sqrt(v), 4 * np.sqrt(v)))
                        if not (nv >= min_d and zn > FREEZE_Z):
                            nv += 1
                            v += (dc * dc - v) / min(nv, 200)
                        lv += (dd - lv) / slow_b
                        last.append(zn)
                        zh = min(last[-persist:]) if len(last) >= persist else 0.0
                yest[cur_bin], yday[cur_bin] = mean, cur_day
            cur_day, cur_bin, s, c = day, b, 0.0, 0
        xv = x[t]
        if clip > 0 and yday[b] == day - 1:
            e = xv - yest[b]
            if mad > 0:
                xv = yest[b] + float(np.clip(e, -clip * mad, clip * mad))
                nm += 1
                mad += (min(abs(e), 4 * mad) - mad) / min(nm, 512)
            else:
                mad, nm = abs(e), 1
        s += xv
        c += 1
        z[t] = zh
    return z


def slope_t(x: np.ndarray, horizon: float) -> np.ndarray:
    """An EW regression of value on reading index (module docstring): the slope's t statistic, AR(1)-inflated."""
    a = 1.0 / horizon
    sw = sw2 = sx = sy = sxx = sxy = syy = 0.0
    z = np.zeros(len(x))
    rp = 0.0
    rv = rc = 1e-12
    for t in range(len(x)):
        sw = (1 - a) * sw + 1
        sw2 = (1 - a) ** 2 * sw2 + 1
        sx = (1 - a) * sx + t
        sy = (1 - a) * sy + x[t]
        sxx = (1 - a) * sxx + t * t
        sxy = (1 - a) * sxy + t * x[t]
        syy = (1 - a) * syy + x[t] * x[t]
        if t < horizon:
            continue
        mx, my = sx / sw, sy / sw
        cxx = sxx / sw - mx * mx
        cxy = sxy / sw - mx * my
        cyy = syy / sw - my * my
        if cxx <= 0:
            continue
        b = cxy / cxx
        res = max(cyy - b * cxy, 1e-12)
        r = x[t] - (my + b * (t - mx))
        rv = (1 - a) * rv + r * r
        rc = (1 - a) * rc + r * rp
        rp = r
        rho = min(max(rc / rv, 0.0), 0.99)
        neff = sw * sw / sw2 * (1 - rho) / (1 + rho)
        se = np.sqrt(res / max(neff, 2.0) / cxx)
        z[t] = abs(b) / se if se > 0 else 0.0
    return z


def ratio(d, x: np.ndarray, a) -> np.ndarray:
    """The record ratio of the chosen statistic on one copy, with the `--min-days` gate."""
    if a.stat == "bins":
        z = bins_z(d.ts_us, x, a.bins, a.short_bins, a.slow_bins, weekdays=a.weekdays, persist=a.persist,
                   clip=a.clip)
    elif a.stat == "interp":
        z = d44.departure_z(x - d44.previous_day_profile(d.ts_us, x, a.bins))
    else:
        z = slope_t(x, a.horizon)
    rr = d44.record_ratio(z)
    if a.min_days > 0:
        rr[d.ts_us < d.ts_us[0] + int(a.min_days * DAY_US)] = 0.0
    return rr


def kinds(a) -> None:
    """Per kind: share of clean copies whose ratio reaches R1 / R2 after row 450, and of windows [onset, +150]."""
    r1, r2 = a.ratios
    for spec in a.specs:
        fam, kind = spec.split(":")
        clean, window = [], []
        for s in range(a.seeds):
            d = det.draw(fam, kind, s)
            clean.append(ratio(d, d.clean, a)[450:].max())
            window.append(ratio(d, d.injected, a)[d.onset:d.onset + 151].max())
        c, w = np.array(clean), np.array(window)
        print(f"| {spec} | {np.mean(c >= r1):.2f} / {np.mean(c >= r2):.2f} | {np.mean(w >= r1):.2f} / "
              f"{np.mean(w >= r2):.2f} |", flush=True)


def nab(a) -> None:
    """A kind's NAB score if the ratio's first window reading >= R1 were its detection (drift44's `nab`)."""
    fam, kind = a.specs[0].split(":") if a.specs else ("temperature", "drift")
    credit = []
    for s in range(a.seeds):
        d = det.draw(fam, kind, s)
        rr = ratio(d, d.injected, a)
        [(lo, hi)] = nab_score.windows_from_points(d.ts_us, [d.onset])
        hit = np.flatnonzero(rr[lo:hi + 1] >= a.ratios[0])
        if len(hit):
            i = lo + int(hit[0])
            credit.append(float(nab_score.scaled_sigmoid(-(hi - i + 1) / (hi - lo + 1))
                                / nab_score.scaled_sigmoid(-1.0)))
        else:
            credit.append(-1.0)
    c = np.array(credit)
    found = c[c > -1]
    print(f"R {a.ratios[0]}: found {np.mean(c > -1):.2f}, mean credit of the found "
          f"{found.mean() if len(found) else 0:.2f}, kind score ~ {100 * (c.sum() + a.seeds) / (2 * a.seeds):.1f}")


def when(a) -> None:
    """Per kind: where the clean copies first reach R1: the series' age in days and the UTC weekday (0 Monday)."""
    for spec in a.specs:
        fam, kind = spec.split(":")
        ages, wds = [], []
        for s in range(a.seeds):
            d = det.draw(fam, kind, s)
            hit = np.flatnonzero(ratio(d, d.clean, a)[450:] >= a.ratios[0])
            if len(hit):
                t = d.ts_us[450 + hit[0]]
                ages.append(int((t - d.ts_us[0]) // DAY_US))
                wds.append(int((t // DAY_US + 3) % 7))
        print(f"{spec}: {len(ages)} of {a.seeds}; age days {np.bincount(ages, minlength=1).tolist() if ages else []}; "
              f"UTC weekday {np.bincount(wds, minlength=7).tolist() if wds else []}", flush=True)


def dev(a) -> None:
    """Per development dataset: files whose largest ratio reaches 2 / R1 / R2 outside and inside labelled windows."""
    import types

    import detection_devset

    names = a.specs[0].split(",") if a.specs else ["gecco", "synthetic", "beijing", "uci"]
    files = [f for f in detection_devset.load() if f.dataset in names]
    for ds in sorted({f.dataset for f in files}):
        out, ins = [], []
        for f in (f for f in files if f.dataset == ds):
            d = types.SimpleNamespace(ts_us=np.asarray(f.ts_us, np.int64))
            rr = ratio(d, np.asarray(f.values, np.float64), a)
            inside = np.zeros(len(rr), bool)
            for lo, hi in f.windows:
                inside[lo:hi + 1] = True
            out.append(rr[~inside].max() if (~inside).any() else 0.0)
            ins.append(rr[inside].max() if inside.any() else 0.0)
        o, i = np.array(out), np.array(ins)
        qs = (2.0, *a.ratios)
        print(f"| {ds} | {len(o)} | {' / '.join(str(int(np.sum(o >= q))) for q in qs)} | "
              f"{' / '.join(str(int(np.sum(i >= q))) for q in qs)} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["kinds", "nab", "when", "dev"])
    ap.add_argument("specs", nargs="*")
    ap.add_argument("--stat", choices=["bins", "interp", "slope"], default="bins")
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--bins", type=int, default=48)
    ap.add_argument("--short-bins", type=float, default=2.0)
    ap.add_argument("--slow-bins", type=float, default=24.0)
    ap.add_argument("--horizon", type=float, default=240.0)
    ap.add_argument("--weekdays", action="store_true", help="bins: departures only on UTC Tuesday to Friday")
    ap.add_argument("--persist", type=int, default=1, help="bins: z is the least of the last P bins' z")
    ap.add_argument("--clip", type=float, default=0.0, help="bins: winsorise readings at clip x mean |departure|")
    ap.add_argument("--min-days", type=float, default=0.0)
    ap.add_argument("--ratios", type=float, nargs=2, default=(2.5, 3.0))
    a = ap.parse_intermixed_args()
    {"kinds": kinds, "nab": nab, "when": when, "dev": dev}[a.what](a)


if __name__ == "__main__":
    main()
