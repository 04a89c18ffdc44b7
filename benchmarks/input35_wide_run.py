"""input35's two properties over many random draws, every failing draw counted (not stopping at the first).

    PYTHONPATH=$PWD/src:$PWD/tests .venv/bin/python benchmarks/input35_wide_run.py utf8_lines 300 1
    PYTHONPATH=$PWD/src:$PWD/tests .venv/bin/python benchmarks/input35_wide_run.py utf8_csv 300 1
    PYTHONPATH=$PWD/src:$PWD/tests .venv/bin/python benchmarks/input35_wide_run.py position_bounds 300 1

Why: a test stops at its first counterexample, so "fails on main" says nothing about how often; here each
property's check (tests/test_hostile_utf8_lines.py, tests/test_privacy_position_bounds.py) runs over N random
draws (hypothesis, not derandomized, ``seed`` per run, generation only) through the real pipeline into a fresh
PostgreSQL database, and the failing draws are tallied. Point PYTHONPATH's first entry at main's src to count
main. Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys

from hypothesis import strategies as st

import services
from privacy_pipeline import open_store
from wide_tally import FailureTally, wide
import test_hostile_utf8_lines as U
import test_privacy_position_bounds as P
from urbanpulse.formats.csv_columns import CsvFormat
from urbanpulse.formats.line_protocol import LineProtocolFormat


def main(argv: list[str]) -> None:
    name, n, run_seed = argv[0], int(argv[1]), int(argv[2])
    os.environ.setdefault("URBANPULSE_PSEUDONYM_KEY", P.KEY)
    db, dsn = services.create_database(services.PG_DSN)
    loop = asyncio.new_event_loop()
    tally = FailureTally()

    try:
        if name in ("utf8_lines", "utf8_csv"):
            csv = name == "utf8_csv"
            pool, pipeline = loop.run_until_complete(
                U._start(dsn, CsvFormat(U.CSV_OPTIONS) if csv else LineProtocolFormat()))
            offsets = itertools.count()
            closers = [pipeline]

            @wide(n, run_seed, message=U.messages(csv))
            def run(message) -> None:  # noqa: ANN001
                tally(lambda: U.check_message(loop, pipeline, pool, next(offsets), message, csv))
        else:
            pool, parts = loop.run_until_complete(open_store(dsn))
            pipelines: dict = {}
            closers = pipelines.values()  # type: ignore[assignment]

            @wide(n, run_seed, precision=st.sampled_from(P.PRECISIONS),
                  places=st.lists(P.positions, min_size=1, max_size=8))
            def run(precision, places) -> None:  # noqa: ANN001
                tally(lambda: P.check_places(loop, pool, parts, pipelines, precision, places))
        run()
        for p in list(closers):
            loop.run_until_complete(p.stop())
        loop.run_until_complete(pool.close())
    finally:
        loop.close()
        services.drop_database(db, services.PG_DSN)
    out = tally.summary(top=5)
    print(json.dumps({"property": name, "seed": run_seed, **out}))


if __name__ == "__main__":
    main(sys.argv[1:])
