"""Where the NAB points go on blind40's held-out-style families: per kind, the loss split into missed windows,
late detections and false positives (clean copies / injected copies outside the window), and which detector's
emission crossed the pooled threshold (blind40; a measurement, no detector change).

    PYTHONPATH=$PWD/src:$PWD/benchmarks python benchmarks/blind40_diagnose.py --seeds 300 \\
        --families machine,cloud,online,adprice --threshold 0.99888 [--json out.json]

`--threshold` is the pooled threshold `detection_families.py --nab` chose for the same run (its first NAB line).
The NAB standard profile's costs are redone per row here (A_tp 1, A_fp 0.11, A_fn 1; `nab_score`'s sigmoid), so
a kind's loss in points is 100 x (2 x its misses (the credit not earned and A_fn paid) + late credit lost
+ false-positive cost) / (2 x its windows), and
100 minus that is its score in `detection_families.py`'s table (checked: the `nab_check` column).
Attribution of an emission: the detector with the largest weighted score on that row if it is at its decision
level (weighted score >= 0.5 x weight), else `likelihood` (no detector at its decision: the anomaly-likelihood,
level-shift, spread or trend stage lifted the fused score). A heuristic: the bank does not report which term won.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import detection_families as det  # noqa: E402
import nab_score  # noqa: E402

from urbanpulse.detect import DetectionSettings  # noqa: E402

A_FP = 0.11


def _credit(i: int, s: int, e: int) -> float:
    return float(nab_score.scaled_sigmoid(-(e - i + 1) / (e - s + 1)) / nab_score.scaled_sigmoid(-1.0))


def _who(score_row: np.ndarray, names: tuple[str, ...], weights: np.ndarray) -> str:
    w = score_row * weights
    c = int(np.argmax(w))
    return names[c] if score_row[c] >= 0.5 else "likelihood"


def diagnose(fam: str, kind: str, seeds: int, thr: float) -> dict:
    """One kind: the loss split and the attributions, over `seeds` draws."""
    settings = DetectionSettings()
    weights = None
    out = {"miss": 0, "late_loss": 0.0, "fp_clean_rows": 0, "fp_clean_series": 0, "fp_inj_cost": 0.0,
           "fp_inj_rows": 0, "fp_clean_by": Counter(), "fp_inj_by": Counter(), "first_by": Counter(),
           "delay": [], "missed_best": [], "missed_det_best": Counter(), "early": 0, "beats_own_clean": 0,
           "effect": [], "found": [], "fp_inj_after": 0, "fp_inj_after_at_cap": 0}
    for lo in range(0, seeds, 100):
        draws = [det.draw(fam, kind, s) for s in range(lo, min(seeds, lo + 100))]
        sc, b = det.score_copies(draws, settings)
        if weights is None:
            weights = np.array([getattr(settings.defaults, nm).weight for nm in sc.names])
        for j, d in enumerate(draws):
            prob = int(nab_score.probation_length(len(d.ts_us)))
            # clean copy: every emission at or above the threshold after the probation is a false positive
            a0, a1 = b[2 * j], b[2 * j + 1]
            an, S = sc.anomaly_score[a0:a1], sc.score[a0:a1]
            clean_max = float(an[prob:].max())
            rows = [r for r in np.flatnonzero(an >= thr) if r >= prob]
            out["fp_clean_rows"] += len(rows)
            out["fp_clean_series"] += bool(rows)
            out["fp_clean_by"].update(_who(S[r], sc.names, weights) for r in rows)
            # injected copy
            a0, a1 = b[2 * j + 1], b[2 * j + 2]
            an, S = sc.anomaly_score[a0:a1], sc.score[a0:a1]
            [(s, e)] = nab_score.windows_from_points(d.ts_us, [d.onset])
            # does the window's best score beat the same series' own best score without the anomaly?
            out["beats_own_clean"] += int(an[d.onset:e + 1].max() > clean_max)
            # effect size: the mean |injected - clean| over the window's half from the onset, in units of the
            # clean series' own spread before the onset (a spike counts its one reading)
            diff = np.abs(d.injected[d.onset:e + 1] - d.clean[d.onset:e + 1])
            spread = float(np.std(d.clean[prob:d.onset])) or 1.0
            out["effect"].append(float((diff.max() if "spike" in kind else diff.mean()) / spread))
            hits = [r for r in np.flatnonzero(an >= thr) if r >= prob]
            inside = [r for r in hits if s <= r <= e]
            for r in hits:
                if s <= r <= e:
                    continue
                cost = A_FP if r < s else -float(nab_score.scaled_sigmoid((r - e) / (e - s))) * A_FP
                out["fp_inj_cost"] += cost
                out["fp_inj_rows"] += 1
                out["fp_inj_after"] += int(r > e)
                out["fp_inj_after_at_cap"] += int(r > e and d.params.get("metric") == "cpu" and d.injected[r] >= 100.0)
                out["fp_inj_by"].update([_who(S[r], sc.names, weights)])
            out["found"].append(bool(inside))
            if inside:
                r = inside[0]
                out["late_loss"] += 1.0 - _credit(r, s, e)
                out["delay"].append(int(r - d.onset))
                out["early"] += int(r < d.onset)
                out["first_by"].update([_who(S[r], sc.names, weights)])
            else:
                out["miss"] += 1
                out["missed_best"].append(float(an[s:e + 1].max()))
                best = S[d.onset:e + 1] * weights
                out["missed_det_best"].update([sc.names[int(np.argmax(best.max(axis=0)))]
                                               if best.max() >= 0.25 else "none>=0.25"])
    w = seeds
    loss = 2 * out["miss"] + out["late_loss"] + A_FP * out["fp_clean_rows"] + out["fp_inj_cost"]
    delay = np.array(out["delay"]) if out["delay"] else np.zeros(1)
    mb = np.array(out["missed_best"]) if out["missed_best"] else np.zeros(1)
    return {
        "family": fam, "kind": kind, "nab_check": round(100 - 100 * loss / (2 * w), 2),
        "loss_points": round(100 * loss / (2 * w), 2),
        "loss_missed": round(100 * 2 * out["miss"] / (2 * w), 2),
        "loss_late": round(100 * out["late_loss"] / (2 * w), 2),
        "loss_fp_clean": round(100 * A_FP * out["fp_clean_rows"] / (2 * w), 2),
        "loss_fp_injected": round(100 * out["fp_inj_cost"] / (2 * w), 2),
        "missed": out["miss"], "found_before_onset": out["early"],
        "delay_median": float(np.median(delay)), "delay_p90": float(np.percentile(delay, 90)),
        "fp_clean_rows": out["fp_clean_rows"], "fp_clean_series": out["fp_clean_series"],
        "fp_clean_by": dict(out["fp_clean_by"].most_common()), "fp_inj_rows": out["fp_inj_rows"],
        "fp_inj_rows_after_window": out["fp_inj_after"],
        "fp_inj_rows_after_window_cpu_at_100": out["fp_inj_after_at_cap"],
        "fp_inj_by": dict(out["fp_inj_by"].most_common()), "first_by": dict(out["first_by"].most_common()),
        "missed_best_anomaly_score": {"median": round(float(np.median(mb)), 4),
                                      "share>=0.99": round(float((mb >= 0.99).mean()), 3)},
        "missed_best_detector_from_onset": dict(out["missed_det_best"].most_common()),
        "window_beats_own_clean_max": round(out["beats_own_clean"] / w, 3),
        "found_by_effect_tercile": _terciles(np.array(out["effect"]), np.array(out["found"])),
    }


def _terciles(effect: np.ndarray, found: np.ndarray) -> list[dict]:
    """Found share in each third of the draws by effect size (is a miss a small anomaly or a blind spot?)."""
    cut = np.quantile(effect, [0, 1 / 3, 2 / 3, 1])
    out = []
    for lo, hi in zip(cut[:-1], cut[1:]):
        m = (effect >= lo) & (effect <= hi)
        out.append({"effect": [round(float(lo), 2), round(float(hi), 2)], "found": round(float(found[m].mean()), 3)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=300)
    ap.add_argument("--families", default="machine,cloud,online,adprice")
    ap.add_argument("--threshold", type=float, required=True)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    res = [diagnose(f, k, a.seeds, a.threshold) for f in a.families.split(",") for k in det.ALL_KINDS[f]]
    print("| family | kind | score (check) | loss | missed | late | FP clean (rows, series) | FP injected (rows) "
          "| clean FP by | first in window by | delay median / p90 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in res:
        print(f"| {r['family']} | {r['kind']} | {r['nab_check']} | {r['loss_points']} | {r['loss_missed']} "
              f"({r['missed']}) | {r['loss_late']} | {r['loss_fp_clean']} ({r['fp_clean_rows']}, "
              f"{r['fp_clean_series']}) | {r['loss_fp_injected']} ({r['fp_inj_rows']}) | "
              f"{', '.join(f'{k} {v}' for k, v in list(r['fp_clean_by'].items())[:3])} | "
              f"{', '.join(f'{k} {v}' for k, v in list(r['first_by'].items())[:3])} | "
              f"{r['delay_median']:.0f} / {r['delay_p90']:.0f} |")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
