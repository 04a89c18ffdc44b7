"""Wide run of tests/test_detect_resid_shift.py's body (level36): N fresh random draws of its range, not derandomised.

    URBANPULSE_KERNELS=jit PYTHONPATH=$PWD/src:tests .venv/bin/python benchmarks/level36_wide_run.py 200 11 o.json 0.002

Why: the derandomised property draws 12 fixed examples; the range it claims must hold on every draw, so the rule's
item 1 counts, over N draws (numpy generator seeded by the second argument; the last argument is the largest burst
start rate), how many windows' best anomaly_score fall below each level. Prints one JSON line and two quantiles;
writes (injected best, clean best, parameters) per draw to the JSON file.
"""

from __future__ import annotations

import json
import sys

import numpy as np

import test_detect_resid_shift as T


def main(argv: list[str]) -> None:
    """Run the draws and print the counts below each level."""
    n, run_seed = int(argv[0]), int(argv[1])
    p_burst_max = float(argv[3]) if len(argv) > 3 else 0.005
    rng = np.random.default_rng(run_seed)
    out = []
    for _ in range(n):
        p = dict(seed=int(rng.integers(0, 2**31 - 1)), df=rng.uniform(3, 5), noise=rng.uniform(0.02, 0.05),
                 daily=rng.uniform(0.15, 0.30), phase=rng.uniform(0, 2 * np.pi), p_burst=rng.uniform(0, p_burst_max),
                 shift=float(rng.choice([-1.0, 1.0]) * rng.uniform(4.0, 6.0)))
        inj, cl = T.window_scores(**p)
        out.append((inj, cl, p))
    inj = np.array([o[0] for o in out])
    print(json.dumps({lvl: int((inj < lvl).sum()) for lvl in (0.99, 0.993, 0.995, 0.996, 0.997, 0.998, 0.999)}),
          "q05/q50", np.round(np.quantile(inj, [0.05, 0.5]), 5).tolist())
    with open(argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1:])
