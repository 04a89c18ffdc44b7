"""Detector throughput: readings/s through one DetectorBank on one core, in live-sized batches.

    python benchmarks/detection_throughput.py [--series 2000] [--readings 500] [--rounds 3] [--settings JSON]

Mixed series (Gaussian noise, quantised mostly-zero counts, on/off bursts, a smooth sine) all
with one reading a minute, fed as the service does: batches of 20,000 readings, each batch
holding consecutive readings of many series. Reports the best of `rounds` full passes (the VM is
noisy; the best is the least disturbed), in readings per CPU-second of this process. Compare two
trees with PYTHONPATH=<tree>/src, alternating (ABAB); a setting's cost with --settings (detection settings
over the defaults, e.g. '{"fusion": {"likelihood_season_threshold": 0}}': the seasonal score off).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def workload(n_series: int, n_readings: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    kind = np.arange(n_series) % 4
    i = np.arange(n_readings, dtype=np.float64)
    v = np.empty((n_series, n_readings))
    for s in range(n_series):
        if kind[s] == 0:
            v[s] = 20 + rng.normal(0, 1, n_readings)
        elif kind[s] == 1:
            v[s] = rng.poisson(0.2, n_readings)
        elif kind[s] == 2:
            v[s] = np.where(rng.random(n_readings) < 0.1, 50.0, 0.0)
        else:
            v[s] = np.round(10 + 5 * np.sin(2 * np.pi * i / 144), 2)
    ts = 1_700_000_000_000_000 + np.arange(n_readings, dtype=np.int64) * 60_000_000
    # reading-major order: each batch holds a few consecutive readings of every series
    slot = np.tile(np.arange(n_series, dtype=np.int64), n_readings)
    return slot, np.repeat(ts, n_series), v.T.reshape(-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--readings", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=20_000)
    ap.add_argument("--settings", default="{}", help="detection settings (JSON) over the defaults")
    args = ap.parse_args()
    from urbanpulse.detect import DetectionSettings, DetectorBank

    settings = DetectionSettings.model_validate(json.loads(args.settings))

    slot, ts, v = workload(args.series, args.readings)
    best = 0.0
    for _ in range(args.rounds):
        bank = DetectorBank(settings)
        bank.assign(np.arange(args.series), [f"s{k}" for k in range(args.series)], ["value"] * args.series)
        t0 = time.process_time()  # CPU time of this process: less disturbed by other load than wall time
        for a in range(0, len(v), args.batch):
            bank.score(slot[a:a + args.batch], ts[a:a + args.batch], v[a:a + args.batch])
        best = max(best, len(v) / (time.process_time() - t0))
    print(f"{best:,.0f} readings per CPU-second ({args.series} series x {args.readings} readings, batches of "
          f"{args.batch}, best of {args.rounds}); state {DetectorBank(settings).nbytes_per_slot()} B/series"
          + (f"; settings {args.settings}" if args.settings != "{}" else ""))


if __name__ == "__main__":
    main()
