"""The second stage (`fusion.recalibrate_*`) replayed in numpy from the first stage's cached scores.

    python benchmarks/detection_recal_sim.py --cache /tmp/c.npz --off tag:off [--check tag:p200=200,20000] ...

Why: the second stage (`_kernel._recalibrate`) reads nothing but the first stage's emitted score, and nothing
before it reads the second stage's state; so every candidate of the second stage (prior, memory, level, and
variants of the map) is a deterministic function of the first stage's scores (the `off` candidate's anomaly_score,
`recalibrate_level` 0) per series. Replaying it here costs seconds instead of a scoring run of the whole
development set per candidate, which lets one look at *where* a candidate moves a score (per file, per reading)
and compare variants of the map before changing the kernel. The kernel stays the reference: `--check` compares a
replay with a candidate the kernel scored (detection_choose.py's cache). The score-only stages applied after the
second stage (fp44's `_step_rearm`, fp45's `_silence_seen`, drift46's `_day_drift`: at most one emission a series)
are not replayed: where they set a reading's score, the replay differs from the kernel there.
"""
from __future__ import annotations

import math

import numpy as np

TAIL_FLOOR = 1e-12


def replay(off: np.ndarray, level: float = 0.99, prior: float = 5000.0, memory: float = 20000.0,
           variant: str = "main", trace: list | None = None) -> np.ndarray:
    """One series' anomaly_score under the second stage, from its first-stage scores `off` (0 = not emitted).

    variant "main": the kernel's map. "se1": the fitted rate and mean excess each moved from the prior's towards
    the series' own estimate only as far as it exceeds one standard error (the estimate's noise), so a short
    series with few emissions keeps about its first-stage score whatever the prior weight."""
    y0 = -math.log(1.0 - level)
    d = 1.0 - 1.0 / memory
    n0, k0 = prior, (1.0 - level) * prior
    e0 = k0
    lam0 = 1.0 - level
    out = np.zeros_like(off)
    n = k = e = 0.0
    last = -1
    for i in np.flatnonzero(off > 0):
        g = i - last - 1  # readings without an emission since the last one: n, k, e only decay (n += 1 each)
        if g > 0:
            dg = d ** g
            n = dg * n + (1.0 - dg) / (1.0 - d)
            k *= dg
            e *= dg
        m = (e + e0) / (k + k0)
        y = -math.log(max(1.0 - off[i], TAIL_FLOOR))
        lam = (k + k0) / (n + n0)
        mm = m
        if variant.startswith("se"):  # "se1", "se2": z standard errors; "se1m": the mean excess only
            z = float(variant[2]) if variant[2:3].isdigit() else 1.0
            if not variant.endswith("m"):
                se_l = z * math.sqrt(k + k0) / (n + n0)
                dl = lam - lam0
                lam = lam0 + math.copysign(max(abs(dl) - se_l, 0.0), dl)
            se_m = z * m / math.sqrt(k + k0)
            dm = m - 1.0
            mm = 1.0 + math.copysign(max(abs(dm) - se_m, 0.0), dm)
        ly = -math.log(lam)
        if y > y0:
            o = ly + (y - y0) / mm
        else:
            o = y * (ly / y0)
        if variant == "nolower":  # never below the first stage's score (a bound, not a fit)
            o = max(o, y)
        out[i] = 1.0 - max(math.exp(-o), TAIL_FLOOR)
        if trace is not None:
            trace.append((int(i), float(off[i]), float(out[i]), n, k, lam, mm))
        n = d * n + 1.0
        if y > y0:
            k = d * k + 1.0
            e = d * e + min(y - y0, 5.0 * m)
        else:
            k = d * k
            e = d * e
        last = i
    return out


def _fusion(patch: dict) -> tuple[float, float, float]:
    f = {"recalibrate_level": 0.99, "recalibrate_prior_readings": 5000.0, "recalibrate_memory": 20000.0, **patch}
    return f["recalibrate_level"], f["recalibrate_prior_readings"], f["recalibrate_memory"]


def candidates(files, off: dict[str, np.ndarray], variant: str, names=None) -> dict[str, dict[str, np.ndarray]]:
    """detection_choose.RECAL_CANDIDATES replayed from the first stage (`off`) under `variant`."""
    import detection_choose as dc

    runs = {}
    for name, patch in dc.RECAL_CANDIDATES.items():
        if names and name not in names:
            continue
        level, prior, memory = _fusion(patch)
        runs[name] = ({f.name: off[f.name].copy() for f in files} if level == 0 else
                      {f.name: replay(off[f.name], level, prior, memory, variant) for f in files})
    return runs


def main() -> int:
    import argparse
    import json
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    import detection_choose as dc
    import detection_devset as devset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, required=True, help="detection_choose.py's npz")
    ap.add_argument("--off", required=True, help="the cache's key prefix of the first stage alone (tag:name)")
    ap.add_argument("--check", action="append", default=[],
                    help="KEY=prior,memory[,level]: compare the replay with a candidate the kernel scored")
    ap.add_argument("--variant", action="append", default=[], help="main, se1, nolower (several: one each)")
    ap.add_argument("--one-se", action="store_true", help="also detection_choose.py's one-standard-error column")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    files = devset.load(False)
    offs = np.cumsum([0] + [len(f.values) for f in files])
    cache = dict(np.load(a.cache))

    def get(prefix: str) -> dict[str, np.ndarray]:
        key = next(k for k in cache if k.startswith(prefix + ":"))
        return {f.name: cache[key][offs[j]:offs[j + 1]] for j, f in enumerate(files)}

    off = get(a.off)
    for chk in a.check:
        key, _, par = chk.partition("=")
        p = [float(x) for x in par.split(",")]
        kern = get(key)
        worst = 0.0
        for f in files:
            r = replay(off[f.name], p[2] if len(p) > 2 else 0.99, p[0], p[1])
            worst = max(worst, float(np.max(np.abs(r - kern[f.name]), initial=0.0)))
        print(f"check {key}: largest |replay - kernel| {worst:.3g}", flush=True)
    res = {}
    for v in a.variant:
        runs = candidates(files, off, v)
        res[v] = {}
        for label, names in dc.RECAL_SETS.items():
            r = dc.choose(files, runs, names)
            res[v][label] = r
            print(dc._line(f"{v}:{label:9s} channel", r["channel"]))
            print(dc._line(f"{v}:{label:9s} station", r["station"]), flush=True)
            if a.one_se and len(names) > 1:
                r1 = dc.choose_1se(files, runs, names)
                res[v][label + "_1se"] = r1
                print(dc._line(f"{v}:{label + ' 1se':9s} channel", r1["channel"]))
                print(dc._line(f"{v}:{label + ' 1se':9s} station", r1["station"]), flush=True)
    if a.json:
        a.json.write_text(json.dumps(res, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
