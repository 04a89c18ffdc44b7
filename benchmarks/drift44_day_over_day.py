"""How far a day-over-day departure, judged against the series' own record, could see slow drifts (drift44; a
measurement in numpy, no detector change).

    PYTHONPATH=$PWD/src:$PWD/benchmarks python benchmarks/drift44_day_over_day.py kinds --seeds 40 \\
        temperature:drift temperature:stuck traffic:level_shift cloud:leak
    PYTHONPATH=$PWD/src:$PWD/benchmarks python benchmarks/drift44_day_over_day.py nab --seeds 300 --ratio 2.5
    URBANPULSE_DATASETS=/work/shared/datasets PYTHONPATH=$PWD/src:$PWD/benchmarks \\
        python benchmarks/drift44_day_over_day.py dev gecco,synthetic,beijing,uci

Why: det28a, drift34-36 scored a slow level against a smoother or a fitted daily harmonic; the curvature of the
daily swing and the autocorrelated noise made the clean temperatures as extreme as the drifts in those units. This
asks a different question first: how much of a drift is visible at all before the NAB window's middle + 150
readings, if the swing is removed by the series' own previous day and the departure is judged against the series'
own record, not against a pooled scale.

The statistic (`departure_z`): r_t = x_t - (the reading nearest one day earlier) (`--profile-bins B`: instead, the
previous UTC day's B bin means, interpolated between bin centres, as `_season_input`'s profile after one pass); its
short mean (EWMA 1 / 16) less a slow level of r (EWMA 1 / 720), in units of that departure's own RMS (learned at
1 / min(n, 2000), winsorised at 4 RMS, **not learned while z > 3**: a scale learned through a sustained departure
grows with it and holds z near its winsorising limit); `record_ratio`: z_t over the largest z the series showed up to
150 readings before (the record before the window), from the 256th scored reading on.

Subcommands: `kinds` (per family:kind, the share of clean copies whose ratio reaches 2.5 / 3 anywhere after row 450,
and of injected windows [onset, onset + 150] that do), `nab` (temperature:drift's NAB kind score if the first
window reading with ratio >= R were an emission above the pooled threshold: found share, mean credit, score; the
kind's other losses ignored), `dev` (per development dataset: files whose largest ratio reaches 2 / 2.5 / 3 outside
and inside labelled windows; series shorter than a day plus 256 readings are never scored).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import detection_families as det  # noqa: E402
import nab_score  # noqa: E402

DAY_US = 86_400_000_000
SHORT = 16.0  # the short mean's EWMA span (readings)
SLOW = 720.0  # the slow level's EWMA span (readings)
FREEZE_Z = 3.0  # the departure's scale is not learned above this z
RECORD_LAG = 150  # the record is the largest z up to this many readings before
WARM = 256  # scored readings before a ratio is taken


def previous_day(ts_us: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The reading nearest one day before each reading (NaN where the series is younger than a day)."""
    j = np.clip(np.searchsorted(ts_us, ts_us - DAY_US), 0, len(x) - 1)
    return np.where(ts_us - DAY_US >= ts_us[0], x[j], np.nan)


def previous_day_profile(ts_us: np.ndarray, x: np.ndarray, bins: int) -> np.ndarray:
    """The previous day's `bins` bin means (days and bins from the series' first reading), interpolated linearly
    between bin centres: what a daily profile of that resolution knows after one pass."""
    width = DAY_US // bins
    rel = ts_us - ts_us[0]
    day, pos = rel // DAY_US, (rel % DAY_US) / width
    b = np.floor(pos).astype(np.int64)
    means = {}
    for d in np.unique(day):
        for k in range(bins):
            m = (day == d) & (b == k)
            if m.any():
                means[(int(d), k)] = float(x[m].mean())
    out = np.full(len(x), np.nan)
    for t in range(len(x)):
        p = pos[t] - 0.5
        b0 = int(np.floor(p)) % bins
        w1 = p - np.floor(p)
        k0, k1 = (int(day[t]) - 1, b0), (int(day[t]) - 1, (b0 + 1) % bins)
        if k0 in means and k1 in means:
            out[t] = (1 - w1) * means[k0] + w1 * means[k1]
    return out


def departure_z(r: np.ndarray) -> np.ndarray:
    """The short mean of `r` less its slow level, in units of its own RMS (module docstring); 0 where not scored."""
    z = np.zeros(len(r))
    m = lv = None
    v, nv = 0.0, 0
    for t in range(len(r)):
        if np.isnan(r[t]):
            continue
        if m is None:
            m = lv = r[t]
            continue
        m += (r[t] - m) / SHORT
        d = m - lv
        dc = d
        if nv >= 64 and v > 0:
            z[t] = abs(d) / np.sqrt(v)
            dc = float(np.clip(d, -4 * np.sqrt(v), 4 * np.sqrt(v)))
        if not (nv >= 64 and z[t] > FREEZE_Z):
            nv += 1
            v += (dc * dc - v) / min(nv, 2000)
        lv += (r[t] - lv) / SLOW
    return z


def record_ratio(z: np.ndarray) -> np.ndarray:
    """z over the record RECORD_LAG readings before, from the WARM-th scored reading on (0 before)."""
    scored = np.flatnonzero(z > 0)
    if len(scored) <= WARM:
        return np.zeros(len(z))
    rec = np.r_[np.zeros(RECORD_LAG), np.maximum.accumulate(z)[:-RECORD_LAG]]
    with np.errstate(divide="ignore", invalid="ignore"):
        rr = np.where(np.arange(len(z)) >= scored[WARM], z / np.maximum(rec, 1e-9), 0.0)
    rr[~np.isfinite(rr)] = 0.0
    return rr


def ratio_of(ts_us: np.ndarray, x: np.ndarray, bins: int) -> np.ndarray:
    """`record_ratio` of the day-over-day departure (the exact previous day, or a `bins`-bin profile of it)."""
    ref = previous_day(ts_us, x) if bins == 0 else previous_day_profile(ts_us, x, bins)
    return record_ratio(departure_z(x - ref))


def kinds(specs: list[str], seeds: int, bins: int) -> None:
    """Per kind: clean copies and injected windows whose ratio reaches 2.5 / 3."""
    for spec in specs:
        fam, kind = spec.split(":")
        clean, window = [], []
        for s in range(seeds):
            d = det.draw(fam, kind, s)
            clean.append(ratio_of(d.ts_us, d.clean, bins)[450:].max())
            window.append(ratio_of(d.ts_us, d.injected, bins)[d.onset:d.onset + 151].max())
        c, w = np.array(clean), np.array(window)
        print(f"| {spec} | {np.mean(c >= 2.5):.2f} / {np.mean(c >= 3):.2f} | {np.mean(w >= 2.5):.2f} / "
              f"{np.mean(w >= 3):.2f} |", flush=True)


def nab(seeds: int, ratio: float, bins: int) -> None:
    """temperature:drift's NAB kind score with the ratio's first window reading >= `ratio` as its detection."""
    credit = []
    for s in range(seeds):
        d = det.draw("temperature", "drift", s)
        rr = ratio_of(d.ts_us, d.injected, bins)
        [(a, e)] = nab_score.windows_from_points(d.ts_us, [d.onset])
        hit = np.flatnonzero(rr[a:e + 1] >= ratio)
        if len(hit):
            i = a + int(hit[0])
            credit.append(float(nab_score.scaled_sigmoid(-(e - i + 1) / (e - a + 1))
                                / nab_score.scaled_sigmoid(-1.0)))
        else:
            credit.append(-1.0)
    c = np.array(credit)
    print(f"ratio {ratio}: found {np.mean(c > -1):.2f}, mean credit of the found {c[c > -1].mean():.2f}, "
          f"kind score ~ {100 * (c.sum() + seeds) / (2 * seeds):.1f}")


def dev(datasets: str, bins: int) -> None:
    """Per development dataset: files whose largest ratio reaches 2 / 2.5 / 3 outside and inside windows."""
    import detection_devset

    files = [f for f in detection_devset.load() if f.dataset in datasets.split(",")]
    for ds in sorted({f.dataset for f in files}):
        out, ins = [], []
        for f in (f for f in files if f.dataset == ds):
            rr = ratio_of(np.asarray(f.ts_us, np.int64), np.asarray(f.values, np.float64), bins)
            inside = np.zeros(len(rr), bool)
            for a, e in f.windows:
                inside[a:e + 1] = True
            out.append(rr[~inside].max() if (~inside).any() else 0.0)
            ins.append(rr[inside].max() if inside.any() else 0.0)
        o, i = np.array(out), np.array(ins)
        print(f"| {ds} | {len(o)} | {' / '.join(str(int(np.sum(o >= q))) for q in (2, 2.5, 3))} | "
              f"{' / '.join(str(int(np.sum(i >= q))) for q in (2, 2.5, 3))} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["kinds", "nab", "dev"])
    ap.add_argument("specs", nargs="*", help="family:kind (kinds) or datasets, comma-separated (dev)")
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--ratio", type=float, default=2.5)
    ap.add_argument("--profile-bins", type=int, default=0, help="0: the exact previous day; B: a B-bin profile")
    a = ap.parse_intermixed_args()
    if a.what == "kinds":
        kinds(a.specs, a.seeds, a.profile_bins)
    elif a.what == "nab":
        nab(a.seeds, a.ratio, a.profile_bins)
    else:
        dev(a.specs[0] if a.specs else "gecco,synthetic,beijing,uci", a.profile_bins)


if __name__ == "__main__":
    main()
