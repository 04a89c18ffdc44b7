"""The quarantine count a write reports (and the ``urbanpulse_readings_quarantined`` metric built from
it) is the number of rows the write added, by reason, so a redelivered bad message is counted once.

A Kafka record fetched again after a crash, and an MQTT PUBLISH mosquitto redelivers with DUP after
a lost PUBACK, are quarantined idempotently: their row is already there and none is added
(storage/quarantine_keys.py). Until session 43 the writer reported every rejection it was handed, so
such a redelivery counted its bad messages twice in the metric while the table held one row each.
The property: over generated deliveries (Kafka offsets and payloads that repeat, MQTT first
deliveries and DUP redeliveries, HTTP lines), split into write batches in any way, the counts the
writes report sum to the rows in PostgreSQL, reason by reason.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from urbanpulse.model import Reason, Rejection
from urbanpulse.storage.migrations import migrate
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.writer import ReadingStore, prepare_connection

pytestmark = pytest.mark.integration

REASONS = [Reason.DECODE_ERROR, Reason.OUT_OF_RANGE, Reason.BAD_SENSOR_ID, Reason.POISON_MESSAGE]


@st.composite
def deliveries(draw: st.DrawFn) -> list[list[Rejection]]:
    """Write batches (one source each) of rejections, where messages are delivered 1-3 times."""
    batches: list[list[Rejection]] = []
    for source in draw(st.lists(st.sampled_from(["kafka", "mqtt", "http"]), min_size=1, max_size=4)):
        messages = draw(st.lists(st.tuples(st.sampled_from(REASONS), st.binary(min_size=0, max_size=3),
                                           st.integers(0, 3), st.integers(0, 2), st.integers(1, 3)),
                                 min_size=1, max_size=12))
        sends: list[Rejection] = []
        for reason, payload, offset, item, times in messages:
            for k in range(times if source != "http" else 1):
                sends.append(Rejection(reason=reason, detail="generated", payload=payload, source=source,
                                       topic="t/a", partition=0 if source == "kafka" else None,
                                       offset=offset if source == "kafka" else None, item=item,
                                       redelivered=source == "mqtt" and k > 0))
        order = draw(st.permutations(range(len(sends))))
        cuts = sorted(draw(st.sets(st.integers(1, max(1, len(sends) - 1)), max_size=3)))
        ordered = [sends[i] for i in order]
        for lo, hi in zip([0, *cuts], [*cuts, len(ordered)]):
            if ordered[lo:hi]:
                # a batch is redelivered whole or not at all (the source marks the batch)
                part = ordered[lo:hi]
                if source == "mqtt" and any(r.redelivered for r in part) and not all(r.redelivered for r in part):
                    batches.append([r for r in part if not r.redelivered])
                    batches.append([r for r in part if r.redelivered])
                else:
                    batches.append(part)
    return batches


@given(deliveries())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_reported_quarantine_counts_are_the_rows_written(fresh_db: str, batches: list[list[Rejection]]) -> None:
    async def go() -> tuple[Counter[str], int, Counter[str]]:
        conn = await asyncpg.connect(fresh_db, timeout=10)
        try:
            await migrate(conn, "postgres")
            await conn.execute("TRUNCATE quarantine")
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(fresh_db, min_size=1, max_size=2, init=prepare_connection)
        try:
            partitions = MonthlyPartitions()
            async with pool.acquire() as c:
                await partitions.load(c)
            store = ReadingStore(pool, partitions, 64 * 1024)
            reported: Counter[str] = Counter()
            total = 0
            for batch in batches:
                result = await store.write(None, batch, batch[0].source)
                assert result.quarantined == sum(result.quarantined_by_reason.values())
                reported.update(result.quarantined_by_reason)
                total += result.quarantined
            async with pool.acquire() as c:
                rows = await c.fetch("SELECT reason, count(*) AS n FROM quarantine GROUP BY reason")
            return reported, total, Counter({r["reason"]: r["n"] for r in rows})
        finally:
            await pool.close()

    reported, total, stored = asyncio.run(go())
    assert +reported == stored, (reported, stored)
    assert total == sum(stored.values())
