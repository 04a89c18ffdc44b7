"""tests/test_detect_spike_return.py's first property over many random draws (spike37; property_wide_run style).

    URBANPULSE_KERNELS=jit PYTHONPATH=$PWD/src .venv/bin/python benchmarks/spike37_wide.py 200 7

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
import test_detect_spike_return as T  # noqa: E402


def main(argv: list[str]) -> None:
    n, run_seed = int(argv[0]), int(argv[1])
    out = {"draws": 0, "failing": 0, "skipped": 0, "fails": []}

    @wide(n, run_seed, **T._DRAWS, stalled=st.booleans(), u=st.floats(0.0, 1.0))
    def run(stalled, u, **kw):
        try:
            T.excursion_scores_high(**kw, stalled=stalled, f=T._excursion(stalled, u))
            out["draws"] += 1
        except UnsatisfiedAssumption:
            out["skipped"] += 1
        except AssertionError as e:
            out["draws"] += 1
            out["failing"] += 1
            out["fails"].append(str(e)[:200] + " " + json.dumps({**kw, "stalled": stalled, "u": u}))

    run()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
