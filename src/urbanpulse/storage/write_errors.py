"""Which failed batch writes are worth retrying: transient errors versus permanent ones.

A **transient** error goes away by itself: the connection was lost, the server is restarting
or out of connections, a lock or statement timed out, a serialization failure or deadlock
rolled the transaction back. The writer retries those with back-off, as before.

A **permanent** error fails the same way on every attempt: a bug in our code (``TypeError``,
``AttributeError`` ...), a table or column that is not there (``UndefinedTableError``, a schema
an operator changed), a missing privilege, a constraint the data will always break
(``DataError``, an ``IntegrityConstraintViolationError`` outside the writer's own duplicate
handling). Retrying those every few seconds would only stall every acknowledgement behind them;
the pipeline parks the batch instead, stops acknowledging its source visibly (``/health``) and
tries it again rarely, in case an operator fixed the cause.

An error known to be neither is **unknown** (``InternalServerError``, ``RuntimeError``, an
exception type nobody listed): it is retried like a transient one, but only
``ingest.unknown_error_attempts`` times in a row for one batch; then the batch is parked like a
permanent failure. Retrying an unknown error for ever held the batcher's lock (the series lookup
runs under it), so one batch whose write kept failing the same unforeseen way stopped every source
(benchmarks/README.md ``robust30``). Parking keeps the data: nothing of the batch is acknowledged, it
is retried every ``ingest.retry_max_s`` and written once the cause is gone (an outage that only
looked unknown ends too), and a restart gets it redelivered by the broker.
"""

from __future__ import annotations

import asyncio
import enum

import asyncpg


class WriteErrorKind(str, enum.Enum):
    """How the pipeline treats a failed batch write."""

    TRANSIENT = "transient"
    PERMANENT = "permanent"
    #: neither: retried ``ingest.unknown_error_attempts`` times, then parked (see the module doc)
    UNKNOWN = "unknown"


_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.TransactionRollbackError,       # 40001 serialization failure, 40P01 deadlock
    asyncpg.LockNotAvailableError,          # 55P03 lock_timeout
    asyncpg.OperatorInterventionError,      # 57014 statement timeout, 57P01 admin shutdown, 57P03 starting up
    asyncpg.InsufficientResourcesError,     # 53300 too many connections, 53100 disk full, 53200 out of memory
    asyncpg.InvalidCachedStatementError,    # the schema changed under a prepared statement: re-prepared next time
    # a pooled connection that has read the server's goodbye (a restart, pg_terminate_backend) but not yet the
    # close that follows: "another operation is in progress"; the next attempt reconnects
    asyncpg.InternalClientError,
)

_PERMANENT: tuple[type[BaseException], ...] = (
    asyncpg.DataError,                          # 22xxx: a value the column type or function refuses
    asyncpg.IntegrityConstraintViolationError,  # 23xxx: NOT NULL, CHECK, FK (duplicates are merged before this)
    asyncpg.exceptions.SyntaxOrAccessError,     # 42xxx: undefined table/column, privilege, syntax
    asyncpg.FeatureNotSupportedError,           # 0A000
    asyncpg.ProgramLimitExceededError,          # 54xxx: statement too complex, too many columns
    TypeError, AttributeError, KeyError, IndexError, ValueError, AssertionError, NotImplementedError,  # bugs
)


def classify_write_error(exc: BaseException) -> WriteErrorKind:
    """Transient (retry with back-off), permanent (park the batch, stop its source's acks) or
    unknown (retry a few times, then park: see the module doc)."""
    if isinstance(exc, _TRANSIENT):
        return WriteErrorKind.TRANSIENT
    if isinstance(exc, _PERMANENT):
        return WriteErrorKind.PERMANENT
    return WriteErrorKind.UNKNOWN
