"""The latency benchmark's own bookkeeping (benchmarks/analytics.py, benchmarks/pg_state.py).

Why: the `lat18` section of benchmarks/README.md reads a run's tail off the stored p99 per 5 s
and tells a cold server from the service by the WAL segments a run created; figures from a
miscounting harness would send the next person after the wrong cause.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import analytics  # noqa: E402
import pg_state  # noqa: E402
from services import PG_DSN, check_postgres, unavailable  # noqa: E402


def _timeline(draw, n: int, total: int) -> list[tuple[float, int]]:  # noqa: ANN001
    """(time, cumulative count) samples: times strictly increasing, counts non-decreasing to total."""
    gaps = draw(st.lists(st.floats(0.001, 3.0), min_size=n, max_size=n))
    steps = draw(st.lists(st.integers(0, 50), min_size=n, max_size=n))
    t, c, out = 100.0, 0, [(100.0, 0)]
    for g, s in zip(gaps, steps):
        t += g
        c = min(total, c + s)
        out.append((t, c))
    out.append((t + 1.0, total))
    return out


@st.composite
def _runs(draw):  # noqa: ANN001, ANN202
    total = draw(st.integers(1, 400))
    pub = _timeline(draw, draw(st.integers(1, 40)), total)
    stored = _timeline(draw, draw(st.integers(1, 40)), draw(st.integers(1, total)))
    return pub, stored


def _oracle(pub, stored, slice_s):  # noqa: ANN001, ANN202
    """Reading by reading: published when the publisher's count first reached k, stored when the
    stored count first reached k, in the slice of its publish time."""
    k_max = min(pub[-1][1], stored[-1][1])
    by: dict[int, list[float]] = {}
    for k in range(1, k_max + 1):
        tp = next(t for t, c in pub if c >= k)
        ts = next(t for t, c in stored if c >= k)
        by.setdefault(int((tp - pub[0][0]) // slice_s), []).append(ts - tp)
    if not by:
        return []
    return [round(float(np.percentile(by[i], 99)) * 1000, 1) if i in by else None for i in range(max(by) + 1)]


@settings(max_examples=200, deadline=None)
@given(_runs(), st.sampled_from([0.5, 1.0, 5.0]))
def test_stored_p99_by_slice_is_the_per_reading_p99_of_each_slice(run, slice_s) -> None:
    pub, stored = run
    assert analytics.stored_p99_by_slice(pub, stored, slice_s) == _oracle(pub, stored, slice_s)


def test_the_server_state_counts_the_wal_written_between_two_snapshots() -> None:
    problem = check_postgres()
    if problem:
        unavailable(problem)
    before = pg_state.snapshot(PG_DSN)

    async def write_wal(conn):  # noqa: ANN001, ANN202
        for _ in range(3):
            await conn.execute("SELECT pg_logical_emit_message(false, 'urbanpulse-test', $1::text)", "x" * 2**20)

    pg_state.ib.db_call(PG_DSN, write_wal)
    diff = pg_state.difference(before, pg_state.snapshot(PG_DSN))
    assert diff["wal_mb"] >= 3.0
    assert diff["wal_segments_before"] >= 1 and diff["wal_segments_after"] >= 1
    # created segments are counted by inode where pg_wal is readable (the CI and this VM run as root)
    assert diff["wal_segments_created"] is None or 0 <= diff["wal_segments_created"] <= diff["wal_segments_after"]
    assert set(diff["settings"]) == {"min_wal_size", "max_wal_size", "wal_init_zero", "wal_recycle"}
    assert 0.0 <= diff["machine_busy_cores"] <= (os.cpu_count() or 1)
