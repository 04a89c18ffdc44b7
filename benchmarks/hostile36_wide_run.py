"""hostile36's properties over many random draws, every failing draw counted (not stopping at the first).

    PYTHONPATH=$PWD/src:$PWD/tests .venv/bin/python benchmarks/hostile36_wide_run.py ids 300 1
    PYTHONPATH=$PWD/src:$PWD/tests .venv/bin/python benchmarks/hostile36_wide_run.py units 300 1
    PYTHONPATH=$PWD/src:$PWD/tests .venv/bin/python benchmarks/hostile36_wide_run.py lean_offsets 300 1
    PYTHONPATH=$PWD/src:$PWD/tests .venv/bin/python benchmarks/hostile36_wide_run.py kafka_offsets 100 1

Why: a test stops at its first counterexample, so "fails on main" says nothing about how often. Each
property's check runs over N random draws (hypothesis, not derandomized, ``seed`` per run, generation
only) and the failing draws are tallied: ``ids`` / ``units`` (tests/test_privacy_as_sent.py with only
ids / only units drawn invalid) through the real pipeline into a fresh PostgreSQL database;
``lean_offsets`` (tests/test_kafka_offset_deltas.py, the fetcher's PartitionRecords, no broker);
``kafka_offsets`` (the same file's service test: the service, PostgreSQL and a Tansu of its own). Point
PYTHONPATH's first entry at main's src to count main. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import strategies as st

import services
from wide_store import pipeline_store
from wide_tally import FailureTally, wide
import test_kafka_offset_deltas as K
import test_privacy_as_sent as P


def main(argv: list[str]) -> None:
    name, n, run_seed = argv[0], int(argv[1]), int(argv[2])
    os.environ.setdefault("URBANPULSE_PSEUDONYM_KEY", P.KEY)
    tally = FailureTally(fatal=(AttributeError,))  # main has no kafka_records.offset_labels: not a failure
    extra: dict[str, int] = {}

    if name in ("ids", "units"):
        policies = sorted(p for p in P.POLICIES if name == "ids" or "drop_unit" in p)
        with pipeline_store() as (loop, pool, parts, pipelines):
            @wide(n, run_seed, policy=st.sampled_from(policies),
                  sent=st.lists(P.readings(ids=name == "ids", units=name == "units"), min_size=1, max_size=8))
            def run(policy, sent) -> None:  # noqa: ANN001
                tally(lambda: P.check_sent(loop, pool, parts, pipelines, policy, sent))
            run()
    elif name == "lean_offsets":
        from urbanpulse.connectors import kafka_records

        assert kafka_records.install() is True
        parser = kafka_records.load_parser()
        records = {"records": 0}

        @wide(n, run_seed, specs=st.lists(K.batch_st, min_size=1, max_size=4),
              max_records=st.one_of(st.none(), st.integers(1, 15)))
        def run(specs, max_records) -> None:  # noqa: ANN001
            def one() -> None:
                data, want, end = K.fetch_of(specs)
                records["records"] += len(want)
                for module in (parser, None):
                    kafka_records.PARSER.module = module
                    try:
                        got, position = K.lean_take_all(data, max_records)
                    finally:
                        kafka_records.PARSER.module = parser
                    assert got == want, "a record labelled with another offset"
                    assert position == end, "position"
            tally(one)
        run()
        extra.update(records)
    elif name == "kafka_offsets":
        db, dsn = services.create_database(services.PG_DSN)
        work = Path(tempfile.mkdtemp(prefix="hostile36-"))
        broker = services.start_tansu(work / "tansu")
        svc = None
        try:
            svc, topic, group = K.start_service(dsn, broker.bootstrap, work)
            state = {"example": 0, "stored": 0, "now": int(time.time() * 1000)}

            @wide(n, run_seed, ds=K.e2e_deltas, garbage=st.lists(st.booleans(), min_size=12, max_size=12),
                  gzip=st.booleans())
            def run(ds, garbage, gzip) -> None:  # noqa: ANN001
                tally(lambda: K.check_batch(svc, dsn, broker.bootstrap, topic, group, state, ds, garbage, gzip))
            run()
        finally:
            if svc is not None:
                svc.stop_quietly()
            broker.stop()
            services.drop_database(db, services.PG_DSN)
    else:
        raise SystemExit(f"unknown property {name!r}")
    out = tally.summary(top=5)
    print(json.dumps({"property": name, "seed": run_seed, **out, **extra}))


if __name__ == "__main__":
    main(sys.argv[1:])
