"""What the coarse-yesterday departure (drift45_coarse_yesterday.py's `bins`) would be worth in the families' NAB
figure if the kernel emitted it once per event (drift45; an estimate, no detector change).

    URBANPULSE_KERNELS=jit PYTHONPATH=$PWD/src:$PWD/benchmarks python benchmarks/drift45_overlay.py \\
        --seeds 300 --families temperature,onoff,rate,sparse --ratio 2.5

Why: the statistic's window hit rate and clean false rate per kind say nothing about the pooled threshold's
reaction. This scores every copy with main's kernel (as `detection_families.py --nab`), then overlays one emission
per event of the departure (an anomaly_score of 0.99999 at the first reading whose record ratio reaches `--ratio`,
re-armed once the ratio falls below 1.5), and scores both NAB-style with one pooled threshold each; per kind and
overall, main's figure and the overlay's.
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import detection_families as det  # noqa: E402
import drift45_coarse_yesterday as d45  # noqa: E402
import nab_score  # noqa: E402

EMIT = 0.99999  # the overlaid emission's anomaly_score (above any pooled threshold seen on the families)
REARM = 1.5  # the ratio falls below this before the next emission


def emissions(rr: np.ndarray, ratio: float, rearm: float = REARM) -> np.ndarray:
    """Rows of one emission per event: the ratio's first reading >= `ratio`, re-armed below `rearm` (0: never)."""
    out, armed = [], True
    for t in range(len(rr)):
        if armed and rr[t] >= ratio:
            out.append(t)
            armed = False
        elif rr[t] < rearm:
            armed = True
    return np.array(out, np.int64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=300)
    ap.add_argument("--families", default="temperature,onoff,rate,sparse")
    ap.add_argument("--ratio", type=float, default=2.5)
    ap.add_argument("--bins", type=int, default=48)
    ap.add_argument("--clip", type=float, default=3.0)
    ap.add_argument("--no-weekdays", action="store_true")
    ap.add_argument("--rearm", type=float, default=REARM, help="re-arm below this ratio (0: one emission a series)")
    a = ap.parse_args()
    cfg = types.SimpleNamespace(stat="bins", bins=a.bins, short_bins=2.0, slow_bins=24.0, weekdays=not a.no_weekdays,
                                persist=1, clip=a.clip, min_days=0.0)
    scores: dict[str, nab_score.FileSeries] = {}
    res = det.sweep(a.seeds, None, scores=scores, fams=a.families.split(","))
    _, base = det.nab_table(res, scores)
    over, n_emit = {}, {"clean": 0, "injected": 0}
    for name, fs in scores.items():
        fam, kind, seed, tag = name.split("/")
        d = det.draw(fam, kind, int(seed))
        x = d.clean if tag == "clean" else d.injected
        rows = emissions(d45.ratio(d, x, cfg), a.ratio, a.rearm)
        s = fs.anomaly_score.copy()
        s[rows] = np.maximum(s[rows], EMIT)
        n_emit[tag] += len(rows)
        over[name] = nab_score.FileSeries(name, fs.ts_us, s)
    _, new = det.nab_table(res, over)
    print(f"overall {base['overall']:.2f} -> {new['overall']:.2f} (threshold {base['threshold']:.5f} -> "
          f"{new['threshold']:.5f}); overlaid emissions: clean {n_emit['clean']}, injected {n_emit['injected']}")
    for k in base["kinds"]:
        print(f"  {k}: {base['kinds'][k]:.2f} -> {new['kinds'][k]:.2f}")


if __name__ == "__main__":
    main()
