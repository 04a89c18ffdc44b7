"""Where GECCO's per-channel NAB score goes (issue 11, gecco39): at a threshold, the loss of every kind.

    PYTHONPATH=$PWD/src:$PWD/benchmarks .venv/bin/python benchmarks/gecco_channel_split.py CACHE.npz [KEY] [THRESHOLD]

CACHE is a detection_choose.py --cache npz (KEY: its first entry by default), THRESHOLD the held-out GECCO
threshold the other five datasets chose (main 00d1925: 0.9953144). Why: the per-channel figure (26.8 on main)
sits far below gecco_channel_bound.py's bound (57.3), and a change aimed at it must know which part it is after.
The normalised score is 100 (raw - null) / (perfect - null) with null = -windows and perfect = +windows, so every
missed window costs 200 / (2 windows) points, a window found late costs (1 - its NAB row weight) x 100 / (2 windows)
and a false-positive row its NAB cost (at most 0.11) x 100 / (2 windows). Windows are split by
gecco_channel_bound.py's kinds: `written` (the channel carries injected values in the window), `blind` (an injected
event written into other channels only: nothing to find here), `real` (an event with no injected value anywhere).
"""
from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import detection_dev as dd  # noqa: E402
import detection_devset as devset  # noqa: E402
import gecco_channel_bound as gb  # noqa: E402
import nab_score  # noqa: E402


def split(files: list[devset.DevFile], scores: dict[str, np.ndarray], threshold: float) -> dict:
    """Counts and losses (raw NAB points) of GECCO's channel-windows and false-positive rows at `threshold`."""
    gf = [f for f in files if f.dataset == "gecco"]
    ts, cols, _ = devset.read_gecco(devset._datasets_root())
    per_station = gb.channel_windows(gf, ts, cols)
    cost = nab_score.PROFILES["standard"]
    ser, win = dd._series(gf, scores)
    out: dict = {"n": defaultdict(int), "found": defaultdict(int), "late": defaultdict(float),
                 "fp_rows": defaultdict(int), "fp_cost": defaultdict(float)}
    for f in gf:
        col, segment = f.name.split("/", 1)[1].rsplit("_", 1)
        raw, resolution = cols[col], devset.GECCO_RESOLUTION[col]
        pos = np.searchsorted(ts, f.ts_us)
        sw = nab_score._sweep_file(ser[f.name], win[f.name], cost)
        det = (sw.anomaly_score >= threshold) & (sw.window != -2)
        fp = det & (sw.window == -1)
        out["fp_rows"][col] += int(fp.sum())
        out["fp_cost"][col] += float(-sw.sweep[fp].sum())
        for k, (s, e) in enumerate(f.windows):
            w = raw[pos[s:e + 1]]
            w = w[~np.isnan(w)]
            own = bool((np.abs(w - np.round(w, resolution)) > 1e-9).any())
            kind = "written" if own else ("blind" if any(per_station[(segment, k)]) else "real")
            out["n"][kind] += 1
            rows = det & (sw.window == k)
            if rows.any():
                out["found"][kind] += 1
                out["late"][kind] += 1.0 - float(sw.sweep[rows].max())
    out["score"] = nab_score.score_corpus(ser, win, "standard", threshold=threshold)
    return out


def main() -> None:
    """Print the split."""
    cache = np.load(sys.argv[1])
    key = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] != "-" else list(cache.keys())[0]
    threshold = float(sys.argv[3]) if len(sys.argv) > 3 else 0.9953144000021525
    files = devset.load(False)
    flat = cache[key]
    offs = np.cumsum([0] + [len(f.values) for f in files])
    scores = {f.name: flat[offs[k]:offs[k + 1]] for k, f in enumerate(files)}
    r = split(files, scores, threshold)
    sc = r["score"]
    pts = 100.0 / (sc.perfect - sc.null)
    print(f"{key} at {threshold}: GECCO per channel {sc.normalized:.3f} (100 less the losses below)")
    for kind in ("written", "real", "blind"):
        n, hit = r["n"][kind], r["found"][kind]
        print(f"  {kind:8s} {hit:3d} of {n:3d} found; missed {2 * (n - hit) * pts:6.2f} points, "
              f"late {r['late'][kind] * pts:5.2f}")
    print(f"  false-positive rows {sum(r['fp_rows'].values())}: {sum(r['fp_cost'].values()) * pts:.2f} points "
          "(" + ", ".join(f"{c} {n}" for c, n in sorted(r["fp_rows"].items(), key=lambda x: -x[1])) + ")")


if __name__ == "__main__":
    main()
