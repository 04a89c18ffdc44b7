"""Clean false alerts and recall on the wide on/off family (benchmarks/corpus/onoff_family.py), defaults.

    PYTHONPATH=<tree>/src python benchmarks/detection_onoff_sweep.py [--seeds 500] [--list]

Per detector: how many clean members raise a decision onset after the probation (300 readings); spike split
into onsets in the body (before the long idle stretch), on the burst after it, and on its return to idle. Then,
per anomaly kind injected into each member (`onoff_family.inject`, one per member, seeded by the member), how
many are found: a decision of any detector rising at the onset row (spikes, dropouts) or within 200 readings of
it (stuck), and how many injected series raise an onset elsewhere after the probation that the clean one did not.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import onoff_family as fam  # noqa: E402

WITHIN = {"spike_after_idle": 0, "spike": 0, "dropout": 0, "stuck": 200}


def onsets(values: np.ndarray, ts: np.ndarray) -> dict[str, list[int]]:
    """Decision onsets (rows where a detector's decision rises) per detector, defaults."""
    from urbanpulse.detect import DetectionSettings, DetectorBank

    bank = DetectorBank(DetectionSettings())
    bank.assign(np.zeros(1, np.int64), ["s0"], ["value"])
    sc = bank.score(np.zeros(len(values), np.int64), ts, values)
    out = {}
    for j, name in enumerate(sc.names):
        d = sc.decision[:, j]
        out[name] = np.flatnonzero(d & ~np.r_[False, d[:-1]]).tolist()
    return out


def clean_alerts(m: fam.OnOffMember) -> dict[str, list[int]]:
    """The clean member's onsets after the probation, per detector (spike split by where)."""
    got = {k: [r for r in v if r >= fam.PROBATION] for k, v in onsets(m.values, m.ts_us).items()}
    out = {k: v for k, v in got.items() if v and k != "spike"}
    sp = got.get("spike", [])
    if sp:
        body = [r for r in sp if r < m.last_burst]
        on = [r for r in sp if r == m.last_burst]
        back = [r for r in sp if r > m.last_burst]
        for key, rows in (("spike_body", body), ("spike_burst_after_idle", on), ("spike_return", back)):
            if rows:
                out[key] = rows
    return out


def found(m: fam.OnOffMember, kind: str) -> tuple[bool, bool]:
    """(the injected anomaly is found, the injected series raises an onset after the probation away from it)."""
    inj = fam.inject(m, kind, np.random.default_rng(m.seed + 7919))
    got = onsets(inj.values, inj.ts_us)
    rows = sorted(r for v in got.values() for r in v if r >= fam.PROBATION)
    hit = any(inj.onset <= r <= inj.onset + WITHIN[kind] for r in rows)
    return hit, any(r < inj.onset for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=500)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--list", action="store_true", help="print each alerting / missing member")
    ap.add_argument("--no-inject", action="store_true")
    args = ap.parse_args()
    seeds = range(args.first, args.first + args.seeds)
    series = Counter()
    alerts = Counter()
    for s in seeds:
        m = fam.member(s)
        for k, rows in clean_alerts(m).items():
            series[k] += 1
            alerts[k] += len(rows)
            if args.list:
                print(f"clean seed {s} {k} rows {rows[:6]} level {m.level:.3g} idle {m.idle:.3g} noise "
                      f"{m.noise:.3f} p {m.p_start:.3f} burst<= {m.burst_max} res {m.res / m.level:.3f} "
                      f"idle_len {m.idle_len}")
    print(f"clean members with an onset after the probation (of {len(seeds)}): "
          + ", ".join(f"{k} {series[k]} ({alerts[k]} onsets)" for k in sorted(series)))
    if args.no_inject:
        return
    for kind in fam.KINDS:
        hit = early = 0
        for s in seeds:
            h, e = found(fam.member(s), kind)
            hit += h
            early += e
            if args.list and not h:
                print(f"missed {kind} seed {s}")
        print(f"{kind}: found {hit} of {len(seeds)}; onsets before it after the probation {early}")


if __name__ == "__main__":
    main()
