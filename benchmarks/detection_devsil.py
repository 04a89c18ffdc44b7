"""Which labelled windows of the development set the *decisions* find, and what silence decides.

NAB scores only the anomaly_score; an operator sees decisions (alerts). A change that makes fewer
alerts on clean data can lose real dropouts and outages without moving any NAB figure, so every
change to a decision is measured here too (sessions 41-42: silence42 lost UCI's injected dropouts
7 -> 6 with every NAB figure identical).

One DetectorBank over the whole development set at the defaults. Per dataset:
- windows found by any decision onset (a rising edge of any detector's decision in the window);
- windows found by a silence onset;
- windows of kind gap/dropout/outage found by a silence onset, out of how many;
- silence onsets outside every window;
and SKAB's anomaly-free false alerts per 10,000 readings (`detection_dev.clean_false_alerts`).

    URBANPULSE_DATASETS=../shared/datasets PYTHONPATH=src:benchmarks \\
        python benchmarks/detection_devsil.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import detection_dev  # noqa: E402
import detection_devset as devset  # noqa: E402

GAP_KINDS = ("gap", "dropout", "outage")


def decision_onsets(files: list[devset.DevFile]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Per file, a (rows, detectors) bool array of decision rising edges; and the detectors' names."""
    sc, offs, _ = detection_dev.score_files(files, {})
    dec = sc.decision
    prev = np.zeros_like(dec)
    prev[1:] = dec[:-1]
    prev[np.r_[True, sc.slot[1:] != sc.slot[:-1]]] = False
    full = np.zeros((int(offs[-1]), dec.shape[1]), bool)
    full[sc.index] = dec & ~prev
    return {f.name: full[offs[k]:offs[k + 1]] for k, f in enumerate(files)}, list(sc.names)


def table(files: list[devset.DevFile], onsets: dict[str, np.ndarray], names: list[str]) -> dict:
    """The per-dataset counts described in the module docstring."""
    si = names.index("silence")
    out: dict = {}
    for ds in devset.DATASETS:
        row = {"windows": 0, "found_any": 0, "found_silence": 0, "gap_windows": 0, "gap_found_silence": 0,
               "silence_outside": 0}
        for f in (f for f in files if f.dataset == ds):
            on = onsets[f.name]
            inside = np.zeros(len(on), bool)
            for (lo, hi), kind in zip(f.windows, f.kinds):
                inside[lo:hi + 1] = True
                w = on[lo:hi + 1]
                row["windows"] += 1
                row["found_any"] += bool(w.any())
                row["found_silence"] += bool(w[:, si].any())
                if kind in GAP_KINDS:
                    row["gap_windows"] += 1
                    row["gap_found_silence"] += bool(w[:, si].any())
            row["silence_outside"] += int(on[~inside, si].sum())
        out[ds] = row
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the table (and write it as JSON with --json)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    files = devset.load()
    onsets, names = decision_onsets(files)
    rep = table(files, onsets, names)
    print(f"{'dataset':10} {'found any':>12} {'by silence':>11} {'gap kinds by silence':>21} {'silence outside':>16}")
    for ds, r in rep.items():
        print(f"{ds:10} {r['found_any']:5}/{r['windows']:<6} {r['found_silence']:11} "
              f"{r['gap_found_silence']:14}/{r['gap_windows']:<6} {r['silence_outside']:16}")
    free = detection_dev.clean_false_alerts()
    rep["skab_free_per_10k"] = free["any"]
    print(f"SKAB anomaly-free false alerts per 10,000 readings: {free['any']:.4f}")
    if args.json:
        args.json.write_text(json.dumps(rep, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
