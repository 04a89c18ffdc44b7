"""Where a families run's NAB points go, per kind: missed windows, windows found late, false positives before the
window, false positives AFTER the window (and how long after) and false positives on the clean copies; with the
stage that emitted each false-positive row (after46; a measurement, no detector change).

    # rows of an instrumented tree (benchmarks/tie45/README.md: instrument.py, then family_rows.py)
    python benchmarks/after46_loss_split.py ROWS.npz [--threshold T] [--json out.json]

Why: blind40_diagnose.py splits a kind's loss into missed / late / false positives on clean and injected copies,
but not the injected copies' false positives by where they fall: before the window (the series' own behaviour,
as its clean copy shows it) or after it (the anomaly's new regime re-emitted: a leak's ramp, a level that
stays). NAB charges a row after a window by its distance from the window's end (`nab_score._sweep_file`: almost
nothing just after it, A_fp from about half a window's width on), so the split says which class a fix should aim at.

The arithmetic is NAB's standard profile (A_tp 1, A_fp 0.11, A_fn 1), per kind's 2 x windows points (a missed
window costs 2: the credit not earned and A_fn paid; a late one 1 - its first row's credit). 100 minus the
kind's loss is its score in `detection_families.py --nab`'s table at the same threshold (`check`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "tie45"))
import nab_score  # noqa: E402
from rows import Fam, stage_name  # noqa: E402

A_FP = nab_score.PROFILES["standard"].fp
#: readings after the window's end, the buckets of the "after" class
AFTER_BUCKETS = ((1, 50), (51, 150), (151, 300), (301, 600), (601, 10**9))
CLASSES = ("missed", "late", "fp_before", "fp_after", "fp_clean")


def _credit(i: int, s: int, e: int) -> float:
    """NAB's credit of a first detection at row i of window [s, e] (1 at its first row)."""
    return float(nab_score.scaled_sigmoid(-(e - i + 1) / (e - s + 1)) / nab_score.MAX_TP)


def _after_cost(r: int, s: int, e: int) -> float:
    """NAB's cost of a detected row r after window [s, e] (its distance in the window's width - 1)."""
    return -float(nab_score.scaled_sigmoid((r - e) / (e - s))) * A_FP


def split(fam: Fam, thr: float) -> dict[str, dict]:
    """Per kind (family:kind): the points lost per class, the rows, the after-window rows by distance, and the
    emitting stages of each false-positive class."""
    out: dict[str, dict] = defaultdict(lambda: {
        "windows": 0, "missed": 0, "late": 0.0, "fp_before": 0.0, "fp_after": 0.0, "fp_clean": 0.0,
        "rows_before": 0, "rows_after": 0, "rows_clean": 0, "after_bucket_rows": Counter(),
        "after_bucket_cost": Counter(), "by_before": Counter(), "by_after": Counter(), "by_clean": Counter(),
        "series_after": 0})
    wins = {int(i): (int(lo), int(hi)) for i, lo, hi in fam.wins}
    for f, name in enumerate(fam.names):
        fam_, kind, _, tag = str(name).split("/")
        k = out[f"{fam_}:{kind}"]
        a, b = fam.offs[f], fam.offs[f + 1]
        sc = fam.sc[a:b]
        code = fam.dg[a:b, 0]
        prob = int(nab_score.probation_length(b - a))
        det = np.flatnonzero(sc >= thr)
        det = det[det >= prob]
        if tag == "clean":
            k["rows_clean"] += len(det)
            k["fp_clean"] += A_FP * len(det)
            k["by_clean"].update(stage_name(code[r]) for r in det)
            continue
        s, e = wins[f]
        k["windows"] += 1
        inside = det[(det >= s) & (det <= e)]
        if len(inside):
            k["late"] += 1.0 - _credit(int(inside[0]), s, e)
        else:
            k["missed"] += 1
        before = det[det < s]
        k["rows_before"] += len(before)
        k["fp_before"] += A_FP * len(before)
        k["by_before"].update(stage_name(code[r]) for r in before)
        after = det[det > e]
        k["rows_after"] += len(after)
        k["series_after"] += bool(len(after))
        for r in after:
            c = _after_cost(int(r), s, e)
            k["fp_after"] += c
            lo, hi = next(bk for bk in AFTER_BUCKETS if bk[0] <= r - e <= bk[1])
            k["after_bucket_rows"][f"{lo}-{hi}"] += 1
            k["after_bucket_cost"][f"{lo}-{hi}"] += c
            k["by_after"][stage_name(code[r])] += 1
    res = {}
    for key, k in out.items():
        w2 = 2.0 * k["windows"]
        pts = {c: 100.0 * (2.0 * k["missed"] if c == "missed" else k[c]) / w2 for c in CLASSES}
        res[key] = {
            "check": round(100.0 - sum(pts.values()), 2),
            "points": {c: round(v, 2) for c, v in pts.items()},
            "largest": max(pts, key=pts.get),
            "missed": k["missed"], "windows": k["windows"],
            "rows": {"before": k["rows_before"], "after": k["rows_after"], "clean": k["rows_clean"]},
            "series_with_after_rows": k["series_after"],
            "after_by_distance_rows": dict(k["after_bucket_rows"]),
            "after_by_distance_points": {b: round(100.0 * v / w2, 2) for b, v in k["after_bucket_cost"].items()},
            "by_stage": {c: dict(k["by_" + c].most_common()) for c in ("before", "after", "clean")},
        }
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rows", type=Path, help="benchmarks/tie45/family_rows.py's npz")
    ap.add_argument("--threshold", type=float, help="default: the pooled threshold NAB chooses on these rows")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    fam = Fam(a.rows)
    corpus = fam.corpus(fam.sc)
    thr = corpus.threshold if a.threshold is None else a.threshold
    print(f"overall {corpus.normalized:.3f} at the pooled threshold {corpus.threshold!r}; split at {thr!r}")
    res = split(fam, thr)
    tot = Counter()
    print("| kind | score (check) | missed (n) | late | FP before | FP after (rows; 1-50 / 51-150 / 151-300 / >300) "
          "| FP clean (rows) | largest | after-window rows by stage |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key, r in res.items():
        p = r["points"]
        for c in CLASSES:
            tot[c] += p[c] * r["windows"]
        d = r["after_by_distance_points"]
        far = sum(v for b, v in d.items() if b in ("301-600", "601-1000000000"))
        dist = " / ".join(f"{d.get(b, 0.0):.2f}" for b in ("1-50", "51-150", "151-300")) + f" / {far:.2f}"
        stages = ", ".join(f"{s} {n}" for s, n in list(r["by_stage"]["after"].items())[:4])
        print(f"| {key} | {r['check']:.2f} | {p['missed']:.2f} ({r['missed']}) | {p['late']:.2f} | {p['fp_before']:.2f} "
              f"({r['rows']['before']}) | **{p['fp_after']:.2f}** ({r['rows']['after']}; {dist}) | {p['fp_clean']:.2f} "
              f"({r['rows']['clean']}) | {r['largest']} | {stages} |")
    n = sum(r["windows"] for r in res.values())
    print("all kinds, points of the run's 100: " + ", ".join(f"{c} {tot[c] / n:.2f}" for c in CLASSES))
    if a.json:
        a.json.write_text(json.dumps({"threshold": thr, "kinds": res}, indent=1))


if __name__ == "__main__":
    main()
