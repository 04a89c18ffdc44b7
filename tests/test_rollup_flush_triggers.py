"""When the deferred rollups flush (storage/rollup_buffer.py; issue 14, roll21).

A flush re-merges the current minute, hour and day row of every series it holds, so flushes
that come too often are what the rollups cost in a drain (benchmarks/README.md, roll21):
* the idle flush (0.1 s after the last batch, for a trickle) waits while a batch write is under
  way, not only while a batch is between its minutes' marks and its commit: in a drain whose
  batches take longer than 0.1 s it fired between every two batches;
* a series whose learned interval keeps every level does not ask for an early flush (the
  early flush is there so that a series dropping a level is buffered coarsened sooner).
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_rollups import Db, assert_rollups_match, db  # noqa: F401 - db is a fixture
from test_rollups_deferred import columns
from test_rollup_levels import Arrival
from urbanpulse.storage.rollups import MINUTE_US, RollupPolicy, RollupWriter, partial_aggregates
from urbanpulse.storage.writer import ReadingStore

BASE_US = 1_709_251_200_000_000  # 2024-03-01T00:00:00Z


def _readings(intervals: list[float], n: int, start_us: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` readings of series 1.. at their ``intervals`` (s) from ``start_us``, one batch."""
    sid = np.repeat(np.arange(1, len(intervals) + 1, dtype=np.int32), n)
    ts = np.concatenate([start_us + (np.arange(n) * i * 1e6).astype(np.int64) for i in intervals])
    return sid, ts


@given(intervals=st.lists(st.floats(0.2, 20_000.0), min_size=1, max_size=8), k=st.integers(2, 50))
@settings(max_examples=200, deadline=None)
def test_learning_asks_for_an_early_flush_only_for_series_that_drop_a_level(intervals: list[float], k: int) -> None:
    writer = RollupWriter(policy=RollupPolicy(k, 8))
    sid, ts = _readings(intervals, 20, BASE_US)
    asked = writer.learn(partial_aggregates(sid, ts, np.zeros(len(sid)), MINUTE_US))
    learned = writer.learner.interval_s(np.arange(1, len(intervals) + 1, dtype=np.int32), 8)
    assert np.isfinite(learned).all()  # 19 steps each: every interval is known after this batch
    assert asked == int((writer.policy.finest_level_us(learned) > MINUTE_US).sum())
    # known now: the next batch asks for nothing, whatever it holds
    sid, ts = _readings(intervals, 20, int(ts.max()) + 10**9)
    assert writer.learn(partial_aggregates(sid, ts, np.zeros(len(sid)), MINUTE_US)) == 0


def _one_series(seconds: int) -> Arrival:
    """One series every second for ``seconds`` s, in two batches."""
    ts = BASE_US + np.arange(seconds, dtype=np.int64) * 1_000_000
    value = 20.0 + np.sin(np.arange(seconds) / 7.0)
    half = seconds // 2
    return Arrival(["temperature"] * seconds, ts, value, [np.arange(half), np.arange(half, seconds)])


@pytest.mark.integration
async def test_the_idle_flush_waits_for_a_batch_write_under_way(db: Db) -> None:  # noqa: F811
    store = ReadingStore(db.pool, db.partitions, rollup_flush_s=3600.0)  # idle_s 0.1; the timer never
    store.rollups.policy = RollupPolicy(10, 8)
    buf = store.rollup_buffer
    data = _one_series(240)
    seen: list[int] = []

    async def slow_hook(conn) -> None:  # noqa: ANN001 - inside the second batch's transaction
        before = buf.flushes
        await asyncio.sleep(0.5)  # five ticks of the flush timer with the first batch buffered
        seen.append(buf.flushes - before)

    try:
        assert (await store.write(columns(data, data.batches[0]), [], "replay")).stored == 120
        assert buf.rows > 0
        assert (await store.write(columns(data, data.batches[1]), [], "replay",
                                  in_transaction=slow_hook)).stored == 120
        assert seen == [0], "a flush ran while a batch was being written"
        # once nothing is being written, the idle flush follows (liveness, generous bound)
        for _ in range(100):
            if not buf.rows and not buf.db_marks:
                break
            await asyncio.sleep(0.05)
        assert not buf.rows and not buf.db_marks
        assert buf.stats.why.get("idle", 0) >= 1
    finally:
        await store.close()
    async with db.pool.acquire() as conn:
        await assert_rollups_match(conn)
