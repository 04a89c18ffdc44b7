"""Wide run of tests/test_detect_held_shift.py's bodies (shift37): N fresh random draws of their ranges, not
derandomised.

    URBANPULSE_KERNELS=jit PYTHONPATH=$PWD/src:tests .venv/bin/python benchmarks/shift37_wide_run.py 200 7 o.json

Why: the derandomised properties draw a few fixed examples; the ranges they claim must hold on every draw, so the
rule's item 1 counts, over N draws (numpy generator seeded by the second argument), how many windows' best
anomaly_score fall below each level, for a flat server's level shift of 4-6 noise scales and its noise x 2.5-3.5
(test_detect_robust_shift's series), and for a daily-cycle server's shift (test_detect_resid_shift's series).
Prints one JSON line per body; writes (injected best, clean best, parameters) per draw to the JSON file.
"""

from __future__ import annotations

import json
import sys

import numpy as np

import test_detect_resid_shift as R
import test_detect_robust_shift as F

LEVELS = (0.995, 0.998, 0.999, 0.9992, 0.9995)


def main(argv: list[str]) -> None:
    """Run the draws and print the counts below each level (and below the clean copy's best in the window)."""
    n, run_seed = int(argv[0]), int(argv[1])
    rng = np.random.default_rng(run_seed)
    out: dict[str, list] = {"flat_shift": [], "flat_noise": [], "daily_shift": []}
    for _ in range(n):
        seed, df, noise, pb = int(rng.integers(0, 2**31 - 1)), rng.uniform(2, 5), rng.uniform(0.02, 0.1), \
            rng.uniform(0.002, 0.01)
        size = float(rng.choice([-1.0, 1.0]) * rng.uniform(4.0, 6.0))
        p = dict(seed=seed, df=df, noise=noise, p_burst=pb, shift=size, noise_x=1.0)
        out["flat_shift"].append((*F.window_scores(**p), p))
        p = dict(seed=seed, df=df, noise=noise, p_burst=pb, shift=0.0, noise_x=rng.uniform(2.5, 3.5))
        out["flat_noise"].append((*F.window_scores(**p), p))
        p = dict(seed=seed, df=rng.uniform(3, 5), noise=rng.uniform(0.02, 0.05), daily=rng.uniform(0.15, 0.30),
                 phase=rng.uniform(0, 2 * np.pi), p_burst=rng.uniform(0, 0.002), shift=size)
        out["daily_shift"].append((*R.window_scores(**p), p))
    for body, rows in out.items():
        inj = np.array([r[0] for r in rows])
        cl = np.array([r[1] for r in rows])
        counts = {lvl: int((inj < lvl).sum()) for lvl in LEVELS}
        print(body, json.dumps(counts), "below clean", int((inj <= cl).sum()), "min", round(float(inj.min()), 5),
              "q05/q50", np.round(np.quantile(inj, [0.05, 0.5]), 5).tolist())
    with open(argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1:])
