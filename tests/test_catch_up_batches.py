"""Catch-up batches (``ingest.catch_up_batch_readings``): while a source is far behind, its batches
are formed at the catch-up size instead of ``batch_max_readings``, after the first batch.

* The batcher (pipeline/batcher.py), hypothesis over submissions of any size and lag: the sizes at
  which batches are formed are exactly those of the rule (an oracle that replays it), and every
  reading and rejection is in exactly one batch, in order.
* The whole pipeline against real PostgreSQL: every reading stored once, the acks in order, and
  fewer batches while behind.
* The Kafka source against a real Tansu broker: ``behind`` of each fetch is the messages the topic
  still held past it in every partition read so far (high watermarks minus the next offsets).
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import services
from test_pipeline import make_pipeline, message_batch, stored
from urbanpulse.config import IngestSettings
from urbanpulse.model import Reason, Rejection
from urbanpulse.pipeline.batch import Pending
from urbanpulse.pipeline.batcher import Batcher
from urbanpulse.testing import RecordingSink

NEVER_MS = 600_000  # the age limit never forms a batch within a test


def _rejections(start: int, n: int) -> list[Rejection]:
    return [Rejection(reason=Reason.OUT_OF_RANGE, detail="x", payload=b"%d" % k, source="s", offset=k)
            for k in range(start, start + n)]


def _replay(submissions: list[tuple[int, int]], size: int, catch_up: int) -> list[int]:
    """The sizes the rule forms batches at (the oracle)."""
    formed: list[int] = []
    pending = 0
    for n, behind in submissions:
        pending += n
        limit = catch_up if catch_up > size and behind >= catch_up and formed else size
        if pending >= limit:
            formed.append(pending)
            pending = 0
    return formed


@given(st.lists(st.tuples(st.integers(1, 40), st.integers(0, 200)), min_size=1, max_size=30),
       st.integers(1, 50), st.sampled_from([0, 1, 30, 60, 100, 150]))
@settings(max_examples=300, deadline=None)
def test_batches_are_formed_at_the_catch_up_size_only_while_behind_and_after_the_first(
        submissions: list[tuple[int, int]], size: int, catch_up: int) -> None:
    async def scenario() -> tuple[list[int], list[list[int]]]:
        sizes: list[int] = []
        contents: list[list[int]] = []

        async def form(seq: int, source: str, pending: Pending) -> None:
            assert seq == len(sizes)
            sizes.append(pending.size)
            contents.append([r.offset for r in pending.rejections])
            batcher.settled()
            batcher.retired()

        batcher = Batcher(IngestSettings(batch_max_readings=size, batch_max_ms=NEVER_MS,
                                         catch_up_batch_readings=catch_up), form)
        start = 0
        for n, behind in submissions:
            await batcher.add("s", None, _rejections(start, n), None, behind=behind)
            start += n
        await batcher.form_all()
        return sizes, contents

    sizes, contents = asyncio.run(scenario())
    want = _replay(submissions, size, catch_up)
    assert sizes[:len(want)] == want
    assert len(sizes) <= len(want) + 1  # the rest, formed by form_all
    total = sum(n for n, _ in submissions)
    assert [k for c in contents for k in c] == list(range(total))


def test_a_mutant_rule_without_the_first_batch_exception_is_told_apart() -> None:
    """The oracle can fail: far behind from the start, the first batch still has the normal size."""
    assert _replay([(10, 500)] * 9, 20, 60) == [20, 60]
    assert _replay([(10, 500)] * 9, 20, 60) != [60]


pg = pytest.mark.integration


@pg
async def test_a_source_far_behind_is_written_in_fewer_batches_every_reading_once_acks_in_order(
        fresh_db: str) -> None:
    pipeline, pool = await make_pipeline(fresh_db, batch_max_ms=NEVER_MS, batch_max_readings=20,
                                         catch_up_batch_readings=60)
    acked: list[int] = []
    try:
        start = 0
        for k in range(30):  # 300 readings, 10 per fetch; the source says it is 1,000 behind until the end
            batch = message_batch(start, 10)
            batch.behind = 1000 if k < 24 else 0
            start += 10
            await pipeline.submit(batch, ack=lambda k=k: acked.append(k))
        await asyncio.wait_for(pipeline.drain(), 60)
        assert acked == list(range(30))
        assert await stored(pool) == 300
        # 20, then 60 three times; 40 wait at the catch-up size until the source is no longer
        # behind, then 50, 20, 20 at the normal size, and the last 10 at the drain
        rule = _replay([(10, 1000)] * 24 + [(10, 0)] * 6, 20, 60)
        assert rule == [20, 60, 60, 60, 50, 20, 20]
        assert services.batches_formed(pipeline) == len(rule) + 1
    finally:
        await pipeline.stop()
        await pool.close()


@pg
@given(partitions=st.integers(1, 3), n=st.integers(1, 80), max_records=st.integers(1, 25))
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_behind_is_what_the_topic_still_holds_past_each_fetch(kafka_bootstrap: str, partitions: int, n: int,
                                                              max_records: int) -> None:
    topic, group = f"behind-{uuid.uuid4().hex[:8]}", f"behind-{uuid.uuid4().hex[:8]}"
    services.create_topic(kafka_bootstrap, topic, partitions=partitions)
    services.produce_kafka(kafka_bootstrap, topic, [b'{"n": %d}' % i for i in range(n)])

    async def scenario() -> None:
        sink = RecordingSink(confirm=False)
        async with services.kafka_source_fetched(kafka_bootstrap, topic, group, max_records, sink, n):
            pass
        ends = {p: 0 for p in range(partitions)}  # records per partition, from what was fetched
        for b in sink.batches:
            for p, o in zip(b.partitions, b.offsets):
                ends[p] = max(ends[p], o + 1)
        assert sum(ends.values()) == n
        seen: dict[int, int] = {}
        for b in sink.batches:
            for p, o in zip(b.partitions, b.offsets):
                seen[p] = max(seen.get(p, 0), o + 1)
            # every partition read so far: its records not yet handed over (its high watermark known
            # from its latest fetch, nothing produced meanwhile)
            assert b.behind == sum(ends[p] - seen[p] for p in seen)

    asyncio.run(scenario())
