"""Trace draws of `corpus/families.py` through the detectors: why a kind is missed or a clean copy alerts (fam30).

    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/families_trace.py traffic:spike:7 server:level_shift:15
    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/families_trace.py traffic:spike:7 \
        --settings '{"defaults": {"silence": {"enabled": false}}}'

Why: `detection_families.py` counts; a fix needs the mechanism of one draw: which detector scored what at the onset
(`*` = its decision), what the anomaly_score emitted, which emissions came just before (the re-arm gate's memory is
set by them), and on the clean copy the rows at or above `--high` with the detectors deciding there. The history
line gives the scales the detectors see: the last 128 readings' median and 1.4826 x MAD (robust_z's window), the
RMS deviation from an EWMA of 0.05 and the RMS step over the history (what the long-run floors are made of).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import families  # noqa: E402

from urbanpulse.detect import DetectionSettings, DetectorBank  # noqa: E402


def _score(settings: DetectionSettings, ts: np.ndarray, x: np.ndarray):
    bank = DetectorBank(settings)
    bank.assign(np.arange(1, dtype=np.int64), ["s"], ["value"])
    return bank.score(np.zeros(len(x), np.int64), ts, x)


def _ewma_rms(x: np.ndarray, alpha: float = 0.05) -> float:
    m, r = float(x[0]), np.empty(len(x))
    for k, v in enumerate(x):
        r[k] = v - m
        m += alpha * (v - m)
    return float(np.sqrt(np.mean(r[100:] ** 2)))


def _row(sc, r: int) -> str:
    return " ".join(f"{n}={sc.score[r, k]:.3f}{'*' if sc.decision[r, k] else ''}" for k, n in enumerate(sc.names))


def trace(spec: str, settings: DetectionSettings, high: float, rows: int) -> None:
    """Print one draw's trace (module docstring)."""
    fam, kind, seed = spec.split(":")
    d = families.draw(fam, kind, int(seed))
    c, i = _score(settings, d.ts_us, d.clean), _score(settings, d.ts_us, d.injected)
    params = {k: (round(float(v), 4) if isinstance(v, float) else v) for k, v in d.params.items()}
    print(f"=== {spec} onset {d.onset} {params}")
    h = d.clean[max(0, d.onset - 128):d.onset]
    med = float(np.median(h))
    step_rms = np.sqrt(np.mean(np.diff(d.clean[:d.onset]) ** 2))
    print(f"  history: median {med:.5g}, 1.4826 MAD {1.4826 * np.median(np.abs(h - med)):.4g}, RMS deviation from "
          f"EWMA(0.05) {_ewma_rms(d.clean[:d.onset]):.4g}, RMS step {step_rms:.4g}")
    before = np.flatnonzero(i.anomaly_score[:d.onset] > 0)[-3:]
    print("  last emissions before the onset:",
          [(int(r), round(float(i.anomaly_score[r]), 5), _row(i, r)) for r in before])
    for r in range(d.onset - 1, min(d.onset + rows, len(d.clean))):
        print(f"  row {r} clean {d.clean[r]:.5g} injected {d.injected[r]:.5g} gap "
              f"{(d.ts_us[r] - d.ts_us[r - 1]) / 6e7:.1f} min {_row(i, r)} anomaly_score {i.anomaly_score[r]:.5f}")
    win = slice(d.onset, d.onset + families.within(kind))
    print("  best in the window:", {n: round(float(i.score[win, k].max()), 3) for k, n in enumerate(i.names)},
          "anomaly_score", round(float(i.anomaly_score[win].max()), 5))
    top = [r for r in np.flatnonzero(c.anomaly_score >= high) if r >= 450]
    print(f"  clean copy: {len(top)} rows >= {high} after the probation, "
          f"decision rows {int(c.decision[450:].any(axis=1).sum())}")
    for r in top[:rows]:
        h = d.clean[max(0, r - 128):r]
        med = float(np.median(h))
        print(f"   row {r} x {d.clean[r]:.5g} previous {d.clean[r - 1]:.5g} (median {med:.4g}, 1.4826 MAD "
              f"{1.4826 * np.median(np.abs(h - med)):.3g}) gap {(d.ts_us[r] - d.ts_us[r - 1]) / 6e7:.1f} min "
              f"{_row(c, r)} anomaly_score {c.anomaly_score[r]:.6f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("draws", nargs="+", help="family:kind:seed")
    ap.add_argument("--settings", default="{}", help="DetectionSettings as JSON (default: the defaults)")
    ap.add_argument("--high", type=float, default=0.9999, help="clean-copy rows at or above this are listed")
    ap.add_argument("--rows", type=int, default=4, help="rows printed from the onset, and clean rows listed")
    a = ap.parse_args()
    settings = DetectionSettings.model_validate(json.loads(a.settings))
    for spec in a.draws:
        trace(spec, settings, a.high, a.rows)


if __name__ == "__main__":
    main()
