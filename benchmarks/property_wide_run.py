"""A failure-mode property of tests/test_detectors_adaptive.py over many random draws of its range (prop29).

    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/property_wide_run.py bursty 1000 71 [key=lo:hi[:int] ...]

Why: a derandomized property in CI draws a few dozen fixed examples, and which ones can change with the modules
imported; a range it claims must hold everywhere, so before a range is fixed each property's check is run here
over thousands of random draws (hypothesis, not derandomized, `--seed` per run; generation only, no shrinking),
and every failing draw is tallied with its parameters and what failed (clean / missed / other) instead of stopping
at the first. `key=lo:hi` overrides one parameter's range (floats; `:int` for integers) to probe outside it.
Properties: bursty, step (sine clean + step), stuck, plateau, quantised (test_detectors_adaptive.py), sparse_rate
(test_detect_count_rate.py). Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, assume, given, seed as hseed, settings, strategies as st
from hypothesis.errors import UnsatisfiedAssumption

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_detect_count_rate as C  # noqa: E402
import test_detectors_adaptive as T  # noqa: E402

PROPERTIES = {"bursty": (T.check_bursty, T.BURSTY), "step": (T.check_sine_step, T.SINE_STEP),
              "stuck": (T.check_sine_stuck, T.SINE_STUCK), "plateau": (T.check_sine_plateaus, T.SINE_PLATEAU),
              "quantised": (T.check_quantised, T.QUANTISED),
              "sparse_rate": (C.check_sparse_rate, C.SPARSE_RATE)}


def main(argv: list[str]) -> None:
    name, n, run_seed = argv[0], int(argv[1]), int(argv[2])
    check, strategies = PROPERTIES[name]
    strategies = dict(strategies)
    for kv in argv[3:]:
        key, rng = kv.split("=")
        p = rng.split(":")
        strategies[key] = st.integers(int(p[0]), int(p[1])) if len(p) > 2 else st.floats(float(p[0]), float(p[1]))
    fails: list[dict] = []
    count = {"examples": 0, "skipped": 0}

    @hseed(run_seed)
    @settings(max_examples=n, derandomize=False, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(**strategies)
    def run(**kw) -> None:
        if name == "plateau":
            assume(kw["plateau"] <= kw["period"] / 3)  # as the property
        try:
            check(**kw)
        except UnsatisfiedAssumption:
            count["skipped"] += 1
            raise
        except AssertionError as e:
            fails.append(dict(kw, why=str(e)))
        count["examples"] += 1

    t = time.time()
    run()
    print(json.dumps(dict(name=name, seed=run_seed, **count, failures=len(fails), secs=round(time.time() - t),
                          args=argv[3:], fails=fails)))


if __name__ == "__main__":
    main(sys.argv[1:])
