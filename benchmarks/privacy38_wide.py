"""privacy38's property (tests/test_privacy_as_sent_formats.py) over many fresh random draws, every failing
draw counted (not stopping at the first).

    PYTHONPATH=$PWD/src:$PWD/tests .venv/bin/python benchmarks/privacy38_wide.py 200 1

Why: the test runs derandomized, so it always sees the same examples; passing there says little about
the draws it never makes. This runs the property's check (same policies, formats and readings
strategies) over N random draws (hypothesis, not derandomized, ``seed`` per run, generation only)
through the real pipeline into a fresh PostgreSQL database, tallies the failing draws
(wide_tally.FailureTally) and how each format's readings were decided on the open topic, and prints
one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter

from hypothesis import strategies as st

import test_privacy_as_sent_formats as F
from wide_store import pipeline_store
from wide_tally import FailureTally, wide


def main(argv: list[str]) -> None:
    """``N SEED``: N draws with hypothesis seed SEED."""
    n, run_seed = int(argv[0]), int(argv[1])
    os.environ.setdefault("URBANPULSE_PSEUDONYM_KEY", F.KEY)
    tally = FailureTally()
    outcomes: Counter[str] = Counter()
    with pipeline_store() as (loop, pool, parts, pipelines):
        @wide(n, run_seed, policy=st.sampled_from(sorted(F.POLICIES)), drawn=F.format_and_readings())
        def run(policy: str, drawn: tuple[str, list[F.Sent], bool]) -> None:
            fmt, sent, mixed = drawn
            outcomes.update(f"{fmt}:{why or 'stored'}" for why in F.expected_open(fmt, sent))
            outcomes["mixed batches"] += mixed
            tally(lambda: F.check_formats(loop, pool, parts, pipelines, policy, fmt, sent, mixed))

        run()
    out = tally.summary(top=5)
    print(json.dumps({"property": "privacy38", "seed": run_seed, **out, "readings": dict(sorted(outcomes.items()))}))


if __name__ == "__main__":
    main(sys.argv[1:])
