"""Merged offset commits (connectors/kafka.py ``OffsetCommit``, pipeline/ack_ledger.py
``merge_acks``), against a real Tansu broker.

The ack ledger runs the acknowledgements that became due together as one where they merge: the
Kafka source's per-fetch offset commits become one commit of the latest offsets (issue 14 item
6). Whatever runs of consecutive fetches are merged, the group's committed offsets after running
the merged commits are exactly those the commits one by one leave behind: after any prefix of
the fetches, each partition's last offset + 1 among them; nothing past what was acknowledged.
Acks of different consumers (or of another kind) never merge.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import TopicPartition
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

import services
from urbanpulse.config import KafkaSettings
from urbanpulse.connectors.kafka import KafkaSource, OffsetCommit
from urbanpulse.metrics import IngestMetrics
from urbanpulse.pipeline.ack_ledger import merge_acks
from urbanpulse.testing import RecordingSink

pytestmark = pytest.mark.integration


def _ends(batches: list, upto: int) -> dict[int, int]:  # noqa: ANN001 - MessageBatch
    """Each partition's last offset + 1 among the first ``upto`` fetches."""
    out: dict[int, int] = {}
    for b in batches[:upto]:
        for p, o in zip(b.partitions, b.offsets):
            out[p] = max(out.get(p, 0), o + 1)
    return out


@given(partitions=st.integers(1, 3), n=st.integers(2, 60), max_records=st.integers(1, 9), data=st.data())
@hsettings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_merged_offset_commits_leave_the_offsets_the_commits_one_by_one_would(
        kafka_bootstrap: str, partitions: int, n: int, max_records: int, data: st.DataObject) -> None:
    topic, group = f"merge-{uuid.uuid4().hex[:8]}", f"merge-{uuid.uuid4().hex[:8]}"
    services.create_topic(kafka_bootstrap, topic, partitions=partitions)
    services.produce_kafka(kafka_bootstrap, topic, [b'{"n": %d}' % i for i in range(n)])

    async def scenario() -> None:
        sink = RecordingSink(confirm=False)  # holds every fetch's ack: they run below, merged
        async with services.kafka_source_fetched(kafka_bootstrap, topic, group, max_records, sink, n) as src:
            acks = list(sink.pending)
            assert len(acks) == len(sink.batches) and all(isinstance(a, OffsetCommit) for a in acks)
            # the due acks come in rounds (a round: what became due while the previous one ran)
            cuts = sorted(data.draw(st.sets(st.integers(1, len(acks) - 1), max_size=4), label="rounds")
                          if len(acks) > 1 else set())
            done = 0
            for end in [*cuts, len(acks)]:
                merged = merge_acks(acks[done:end])
                assert len(merged) == 1  # one consumer's commits: one round trip per round
                await merged[0]()
                done = end
                got = await services.committed_offsets(kafka_bootstrap, topic, group, partitions)
                want = _ends(sink.batches, done)
                assert {p: got[p] for p in want} == want
                assert all(got[p] is None for p in range(partitions) if p not in want)
            assert src._failed_commits == {}  # noqa: SLF001 - every commit was accepted

    asyncio.run(scenario())


def test_commits_of_another_consumer_or_another_kind_are_not_merged() -> None:
    src_a = KafkaSource(KafkaSettings(), IngestMetrics())
    src_b = KafkaSource(KafkaSettings(), IngestMetrics())
    one, two = object(), object()
    tp0, tp1 = TopicPartition("t", 0), TopicPartition("t", 1)

    def plain() -> None:
        return None

    first = OffsetCommit(src_a, one, {tp0: 5, tp1: 3})  # type: ignore[arg-type]
    later = OffsetCommit(src_a, one, {tp0: 9})  # type: ignore[arg-type]
    both = first.merged(later)
    assert both is not None and both.offsets == {tp0: 9, tp1: 3}  # the later offset wins, the rest stays
    assert first.offsets == {tp0: 5, tp1: 3}  # neither input changes
    assert first.merged(OffsetCommit(src_a, two, {tp0: 9})) is None  # type: ignore[arg-type]
    assert first.merged(OffsetCommit(src_b, one, {tp0: 9})) is None  # type: ignore[arg-type]
    assert first.merged(plain) is None
    assert merge_acks([first, plain, later]) == [first, plain, later]  # only neighbours merge
