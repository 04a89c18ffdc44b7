"""tests/test_detect_traffic_stall.py's first property over many random draws (traffic36; property_wide_run style).

    URBANPULSE_KERNELS=jit PYTHONPATH=$PWD/src .venv/bin/python benchmarks/traffic36_wide.py 200 7

Why: the derandomized test draws 30 fixed examples; the adoption rule asks for the failing count over >= 200
random draws of the same range, on main and on the branch (hypothesis, not derandomized, generation only, no
shrinking; every draw's outcome tallied). Prints one JSON line: draws run, failing, and the failing draws' messages.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hypothesis import strategies as st
from hypothesis.errors import UnsatisfiedAssumption

from wide_tally import wide

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_detect_traffic_stall as T  # noqa: E402


def main(argv: list[str]) -> None:
    n, run_seed = int(argv[0]), int(argv[1])
    out = {"draws": 0, "failing": 0, "skipped": 0, "fails": []}

    @wide(n, run_seed, **T._DRAWS, stall=st.floats(*T.STALL))
    def run(**kw):
        try:
            T.stall_scores_high(**kw)
            out["draws"] += 1
        except UnsatisfiedAssumption:
            out["skipped"] += 1
        except AssertionError as e:
            out["draws"] += 1
            out["failing"] += 1
            out["fails"].append(str(e)[:200])

    run()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
