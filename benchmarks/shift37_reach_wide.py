"""tests/test_detect_reach_score.py's far-speed property over N random draws (shift37; generation only, no shrinking).

    URBANPULSE_KERNELS=jit PYTHONPATH=$PWD/src:tests .venv/bin/python benchmarks/shift37_reach_wide.py 200 5

Why: shift37 raises held level / spread scores, which can pass a far road reading's reach score on a clean road; the
derandomised property draws 40 fixed examples, so the failing count over random draws of its range (main vs branch)
says how universal it still is. Prints one JSON line: draws run and failing.
"""

from __future__ import annotations

import json
import sys

from hypothesis import HealthCheck, Phase, given, seed as hseed, settings, strategies as st

import test_detect_reach_score as T


def main(argv: list[str]) -> None:
    """Run the draws, count the failing ones."""
    n, run_seed = int(argv[0]), int(argv[1])
    out = {"draws": 0, "failing": 0}
    inner = T.test_a_reading_far_beyond_a_capped_speed_scores_highest.hypothesis.inner_test

    @hseed(run_seed)
    @settings(max_examples=n, deadline=None, phases=[Phase.generate], database=None,
              suppress_health_check=list(HealthCheck))
    @given(**T._DRAWS, beyond=st.floats(*T.BEYOND))
    def run(**kw: object) -> None:
        out["draws"] += 1
        try:
            inner(**kw)
        except AssertionError:
            out["failing"] += 1

    run()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
