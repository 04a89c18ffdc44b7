"""drift36: a wide random run of tests/test_detect_drift.py's body (in detection_tried/drift36_fit_start_c3.patch).

    PYTHONPATH=<tree>/src:tests python benchmarks/drift36_wide.py N SEED  # RANGES='{"LENGTH": (150, 200)}' overrides

N draws uniform in the test's ranges (SIGMA, PHI, SWING, SIZE, LENGTH, a random sign); prints each failing draw and
"K of N fail". The test module must be importable (apply the patch, or keep its tests/test_detect_drift.py).
"""
import sys, numpy as np
sys.path.insert(0, sys.argv[3] if len(sys.argv) > 3 else "tests")
import test_detect_drift as t
n, seed = int(sys.argv[1]), int(sys.argv[2])
import os
for k_, v_ in eval(os.environ.get("RANGES", "{}")).items(): setattr(t, k_, v_)
rng = np.random.default_rng(seed)
fails = 0
for k in range(n):
    a = dict(seed=int(rng.integers(0, 2**31 - 1)), sigma=float(rng.uniform(*t.SIGMA)), phi=float(rng.uniform(*t.PHI)),
             swing=float(rng.uniform(*t.SWING)), size=float(rng.uniform(*t.SIZE)),
             length=int(rng.integers(t.LENGTH[0], t.LENGTH[1] + 1)), sign=int(rng.choice([-1, 1])))
    try:
        t.drift_ranks_above_clean(**a)
    except AssertionError as e:
        fails += 1
        print("FAIL", a, str(e)[-90:], flush=True)
print(f"{fails} of {n} fail", flush=True)
