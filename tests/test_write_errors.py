"""The writer's error policy: transient errors are retried, permanent ones park the batch, halt
that source's acknowledgements visibly and let every other source go on; once the cause is fixed
the parked batch is written and the held acknowledgements go out in order."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import orjson
import pytest

from test_pipeline import make_pipeline, stored
from urbanpulse.errors import SourceHalted
from urbanpulse.formats.base import MessageBatch
from urbanpulse.storage.write_errors import WriteErrorKind, classify_write_error

NOW_MS = int(time.time() * 1000) - 3_600_000


@pytest.mark.parametrize("exc", [
    ConnectionResetError("reset by peer"), asyncio.TimeoutError(), OSError("no route to host"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.InterfaceError("connection is closed"),
    asyncpg.SerializationError("could not serialize access"), asyncpg.DeadlockDetectedError("deadlock detected"),
    asyncpg.LockNotAvailableError("canceling statement due to lock timeout"),
    asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.DiskFullError("could not extend file"),
    asyncpg.InvalidCachedStatementError("cached statement plan is invalid"),
    asyncpg.InternalClientError("cannot perform operation: another operation is in progress"),
], ids=lambda e: type(e).__name__)
def test_transient_errors_are_retried(exc: BaseException) -> None:
    assert classify_write_error(exc) is WriteErrorKind.TRANSIENT


@pytest.mark.parametrize("exc", [
    asyncpg.InternalServerError("something unexpected"), RuntimeError("unknown"), OverflowError("unknown"),
    MemoryError(), Exception("nobody listed this"),
], ids=lambda e: type(e).__name__)
def test_unknown_errors_are_retried_a_few_times_then_parked(exc: BaseException) -> None:
    """Neither list knows them: ``ingest.unknown_error_attempts`` attempts, then parked
    (tests/test_hostile_write_errors.py)."""
    assert classify_write_error(exc) is WriteErrorKind.UNKNOWN


@pytest.mark.parametrize("exc", [
    asyncpg.UndefinedTableError('relation "quarantine" does not exist'),
    asyncpg.UndefinedColumnError('column "flags" does not exist'),
    asyncpg.InsufficientPrivilegeError("permission denied for table readings"),
    asyncpg.PostgresSyntaxError("syntax error at or near"),
    asyncpg.NotNullViolationError("null value in column"), asyncpg.CheckViolationError("violates check constraint"),
    asyncpg.ForeignKeyViolationError("violates foreign key constraint"),
    asyncpg.UniqueViolationError("duplicate key"),  # the writer merges duplicates itself: one escaping is a bug
    asyncpg.NumericValueOutOfRangeError("value out of range"),
    asyncpg.CharacterNotInRepertoireError("invalid byte sequence for encoding"),
    asyncpg.FeatureNotSupportedError("not supported"),
    TypeError("unsupported operand"), AttributeError("no attribute"), UnicodeEncodeError("utf-8", "", 0, 1, "x"),
], ids=lambda e: type(e).__name__)
def test_permanent_errors_are_parked(exc: BaseException) -> None:
    assert classify_write_error(exc) is WriteErrorKind.PERMANENT


def _batch(source: str, start: int, n: int, bad: int = 0) -> MessageBatch:
    payloads = [orjson.dumps({"sensor_id": f"{source}-{i % 5}", "metric": "humidity", "ts": NOW_MS + i * 1000,
                              "value": 50}) for i in range(start, start + n)]
    return MessageBatch(source=source, payloads=payloads + [b"not json"] * bad)


async def _until(predicate, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.mark.integration
async def test_a_permanent_write_error_halts_only_its_source_and_resumes_in_order_once_fixed(fresh_db: str) -> None:
    pipeline, pool = await make_pipeline(fresh_db, batch_max_readings=100, writers=2, retry_initial_s=0.05,
                                         retry_max_s=0.3)
    admin = await asyncpg.connect(fresh_db)
    acked: list[str] = []
    try:
        # a real permanent error: an operator renamed the quarantine table
        await admin.execute("ALTER TABLE quarantine RENAME TO quarantine_elsewhere")
        await pipeline.submit(_batch("kafka", 0, 99, bad=1), ack=lambda: acked.append("kafka-1"))
        await pipeline.submit(_batch("mqtt", 0, 100), ack=lambda: acked.append("mqtt-1"))
        await _until(lambda: "mqtt-1" in acked, 30, "the other source's ack")
        await _until(lambda: "kafka" in pipeline.halted, 30, "kafka to be halted")
        assert "UndefinedTableError" in pipeline.halted["kafka"]
        with pytest.raises(SourceHalted, match="UndefinedTableError"):
            await pipeline.submit(_batch("kafka", 100, 100), ack=lambda: acked.append("kafka-2"))
        # every other source keeps flowing and being acknowledged, not stalled behind the parked batch
        for k in range(2, 6):
            await pipeline.submit(_batch("mqtt", k * 100, 100), ack=lambda k=k: acked.append(f"mqtt-{k}"))
        await asyncio.wait_for(pipeline.drain(), 30)  # bounded: held acks do not block a drain
        assert acked == ["mqtt-1", "mqtt-2", "mqtt-3", "mqtt-4", "mqtt-5"]
        assert pipeline.metrics.write_permanent_errors.labels("kafka")._value.get() == 1
        assert pipeline.metrics.acks_halted.labels("kafka")._value.get() == 1
        assert await stored(pool) == 500

        await admin.execute("ALTER TABLE quarantine_elsewhere RENAME TO quarantine")  # the operator's fix
        await _until(lambda: "kafka-1" in acked, 30, "the parked batch to be written and acknowledged")
        assert not pipeline.halted
        assert pipeline.metrics.acks_halted.labels("kafka")._value.get() == 0
        await pipeline.submit(_batch("kafka", 100, 100), ack=lambda: acked.append("kafka-2"))
        await asyncio.wait_for(pipeline.drain(), 30)
        assert acked[-2:] == ["kafka-1", "kafka-2"]
        assert await stored(pool) == 699
        assert await admin.fetchval("SELECT count(*) FROM quarantine") == 1
    finally:
        await admin.close()
        await pipeline.stop()
        await pool.close()
