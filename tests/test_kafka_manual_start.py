"""A manually assigned Kafka source's first fetch (issue 14 item 4; benchmarks/README.md ``start27``).

* ``assignment: manual`` takes its partitions right after the client starts. aiokafka's
  committed-offset refresh, started by ``assign``, used to ask the group coordinator while the
  client's lookup was still in flight: the ask failed at once and the refresh slept its
  ``retry_backoff_ms`` (100 ms) before asking again, so every start's first fetch waited for
  nothing. The source now lets the client find the coordinator first: at ``assign`` the
  coordinator is known and no refresh fails, and the partitions still start at the group's
  committed offsets (``auto_offset_reset`` where there are none).

Real Tansu broker; the pipeline is a recording sink (the acknowledgements are held). No timing.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.consumer.group_coordinator import GroupCoordinator
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

import services
from urbanpulse.config import KafkaSettings
from urbanpulse.connectors.kafka import KafkaSource
from urbanpulse.metrics import IngestMetrics
from urbanpulse.testing import RecordingSink

pytestmark = pytest.mark.integration

#: aiokafka's own, before any example's spies wrap them
_ASSIGN, _REFRESH = AIOKafkaConsumer.assign, GroupCoordinator._maybe_refresh_commit_offsets  # noqa: SLF001


async def _offsets(bootstrap: str, topic: str, partitions: int, records: int) -> dict[int, list[int]]:
    """Each partition's record offsets, read once with a plain consumer (Tansu's ListOffsets may
    answer a partition's end as its last batch's first offset + 1, so the records are counted)."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await c.start()
    try:
        c.assign([TopicPartition(topic, p) for p in range(partitions)])
        out: dict[int, list[int]] = {p: [] for p in range(partitions)}
        deadline = asyncio.get_running_loop().time() + 60
        while sum(map(len, out.values())) < records:
            assert asyncio.get_running_loop().time() < deadline, f"read {out}, produced {records}"
            for tp, recs in (await c.getmany(timeout_ms=200)).items():
                out[tp.partition].extend(r.offset for r in recs)
        return out
    finally:
        await c.stop()


async def _commit(bootstrap: str, topic: str, group: str, offsets: dict[int, int]) -> None:
    if not offsets:
        return
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        c.assign([TopicPartition(topic, p) for p in offsets])
        await c.commit({TopicPartition(topic, p): o for p, o in offsets.items()})
    finally:
        await c.stop()


async def _until(cond, what: str, timeout: float = 60) -> None:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, f"not within {timeout}s: {what}"
        await asyncio.sleep(0.02)


@given(partitions=st.integers(1, 3), n=st.integers(1, 60),
       committed=st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=3, max_size=3))
@hsettings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_manual_assignment_is_made_with_the_coordinator_known_and_starts_at_the_committed_offsets(
        kafka_bootstrap: str, partitions: int, n: int,
        committed: list[float | None]) -> None:
    topic, group = f"manual-{uuid.uuid4().hex[:8]}", f"manual-{uuid.uuid4().hex[:8]}"
    services.create_topic(kafka_bootstrap, topic, partitions=partitions)
    services.produce_kafka(kafka_bootstrap, topic, [b'{"n": %d}' % i for i in range(n)])

    known_at_assign: list[bool] = []
    refreshes: list[bool] = []
    assign, refresh = _ASSIGN, _REFRESH

    def spy_assign(self: AIOKafkaConsumer, parts: list[TopicPartition]) -> None:
        known_at_assign.append(getattr(self._coordinator, "coordinator_id", None) is not None)  # noqa: SLF001
        assign(self, parts)

    async def spy_refresh(self: GroupCoordinator, assignment: object) -> bool:
        ok = await refresh(self, assignment)
        refreshes.append(ok)
        return ok

    async def scenario() -> None:
        offsets = await _offsets(kafka_bootstrap, topic, partitions, n)
        # the committed offset of partition p: none, or the offset of one of its records, or its end
        cut = {p: (int(committed[p] * len(offsets[p])) if committed[p] is not None else None) for p in offsets}
        if all(len(offsets[p]) - (cut[p] or 0) == 0 for p in offsets):  # leave something to read
            p = max(offsets, key=lambda q: len(offsets[q]))
            cut[p] = len(offsets[p]) - 1
        ends = {p: (offsets[p][-1] + 1 if offsets[p] else 0) for p in offsets}
        starts = {p: (None if k is None else offsets[p][k] if k < len(offsets[p]) else ends[p])
                  for p, k in cut.items()}
        await _commit(kafka_bootstrap, topic, group, {p: o for p, o in starts.items() if o is not None})
        want = {p: offsets[p][cut[p] or 0:] for p in offsets}
        total = sum(map(len, want.values()))
        src = KafkaSource(KafkaSettings(enabled=True, bootstrap_servers=kafka_bootstrap, topics=[topic],
                                        group_id=group, assignment="manual", max_records=7), IngestMetrics())
        sink = RecordingSink(confirm=False)
        stopping = asyncio.Event()
        with pytest.MonkeyPatch.context() as spies:  # the source's own consumer, not the helpers'
            spies.setattr(AIOKafkaConsumer, "assign", spy_assign)
            spies.setattr(GroupCoordinator, "_maybe_refresh_commit_offsets", spy_refresh)
            task = asyncio.create_task(src.run(sink, stopping))
            try:
                await _until(lambda: sink.messages >= total or task.done(),
                             f"{total} messages (got {sink.messages})")
                await asyncio.sleep(0.3)  # room for a wrong start to hand over more
            finally:
                stopping.set()
                await asyncio.wait_for(task, 60)
        got: dict[int, list[int]] = {p: [] for p in range(partitions)}
        for b in sink.batches:
            for p, o in zip(b.partitions, b.offsets):
                got[p].append(o)
        # from each partition's committed offset (or its first record), each record once, in order
        assert got == want, (n, starts, ends)

    asyncio.run(scenario())
    assert known_at_assign == [True], known_at_assign  # the coordinator found before the assignment
    assert refreshes and all(refreshes), refreshes  # so no committed-offset refresh failed and slept
