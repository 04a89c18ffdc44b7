"""The Kafka source's error policy: aiokafka's ``retriable`` flag decides between backing off and
failing (so the supervisor restarts and shows it), commits and the drain on revoke are bounded,
and the group's rebalance timeout matches the drain bound.

Stand-ins replace the consumer and the sink here: these are the failures a real broker will not
produce on demand (a non-retriable fetch error, a commit that never returns, a drain that hangs);
the happy paths run against Tansu in test_delivery_e2e.py and test_resilience_e2e.py."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, RequestTimedOutError, TopicAuthorizationFailedError

from urbanpulse.config import KafkaSettings
from urbanpulse.connectors.kafka import KafkaSource, _DrainOnRevoke, rebalance_timeout_ms
from urbanpulse.metrics import IngestMetrics


class _Consumer:
    """getmany raises the queued errors in turn, then returns nothing; commit never returns."""

    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = errors
        self.calls = 0

    async def getmany(self, timeout_ms: int, max_records: int) -> dict:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        await asyncio.sleep(0.01)
        return {}

    def assignment(self) -> set:
        return {TopicPartition("t", 0)}

    async def commit(self, offsets: dict) -> None:
        await asyncio.sleep(3600)  # aiokafka retries a retriable commit error for ever


async def test_retriable_fetch_errors_are_retried_and_a_non_retriable_one_ends_the_run() -> None:
    src = KafkaSource(KafkaSettings(), IngestMetrics())
    stopping = asyncio.Event()
    consumer = _Consumer([KafkaConnectionError("gone"), RequestTimedOutError(),
                          TopicAuthorizationFailedError()])
    with pytest.raises(TopicAuthorizationFailedError):
        await asyncio.wait_for(src._consume(consumer, None, stopping), 30)  # type: ignore[arg-type]
    assert consumer.calls == 3
    assert "TopicAuthorizationFailedError" in src.last_error


async def test_an_offset_commit_that_never_returns_is_given_up_after_the_commit_timeout() -> None:
    src = KafkaSource(KafkaSettings(session_timeout_ms=1000), IngestMetrics())
    start = time.monotonic()
    await src._commit(_Consumer([]), {TopicPartition("t", 0): 5})  # type: ignore[arg-type]
    assert time.monotonic() - start < 30
    assert src._failed_commits == {TopicPartition("t", 0): 5}  # covered by the next commit or retried at shutdown
    assert "commit failed: TimeoutError" in src.last_error


class _HangingSink:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.drained = False

    async def submit(self, batch, ack=None) -> None:  # noqa: ANN001
        raise AssertionError("not used")

    async def drain(self) -> None:
        await self.release.wait()  # e.g. the database is down: writes are retried, nothing commits
        self.drained = True


async def test_the_drain_on_revoke_is_bounded_and_goes_on_in_the_background() -> None:
    sink = _HangingSink()
    listener = _DrainOnRevoke(sink, timeout_s=0.5)
    await asyncio.wait_for(listener.on_partitions_revoked({TopicPartition("t", 0)}), 10)
    assert not sink.drained
    sink.release.set()
    await asyncio.sleep(0.05)
    assert sink.drained, "the drain cut short must not be cancelled half-way"


def test_the_rebalance_timeout_covers_the_bounded_drain() -> None:
    assert rebalance_timeout_ms(KafkaSettings(revoke_drain_timeout_s=30, session_timeout_ms=10_000)) == 35_000
    assert rebalance_timeout_ms(KafkaSettings(revoke_drain_timeout_s=1, session_timeout_ms=10_000)) == 10_000
    assert rebalance_timeout_ms(KafkaSettings()) == 10_000  # the defaults: 5 s drain + 5 s (above the 6 s session)
