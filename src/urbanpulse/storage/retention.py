"""Retention in both storage modes: old rows leave every table that grows without bound.

* ``readings`` on plain PostgreSQL: whole monthly partitions are dropped once the partition's
  last instant is older than ``retention.readings`` (no row-by-row delete, no bloat). On
  TimescaleDB the readings and rollup hypertables are handled by TimescaleDB's own retention
  policies (storage/timescale.py), which drop whole chunks.
  This job also calls ``drop_chunks`` itself for them, so a chunk drop is logged, counted and
  audited whenever it happens first here (the policy then finds nothing).
* rollups on plain PostgreSQL, ``quarantine`` and ``alert_events`` in both modes: ``DELETE`` in
  batches of ``delete_batch_rows``, each its own short transaction.
* per data class (``privacy.policies.<class>.retention`` / ``coarsen_after``): the class's rows
  deleted and its old positions coarsened (privacy/retention.py).

Every run that is not skipped is written to the append-only ``privacy_audit`` table (action
``retention_run``: what was dropped, deleted and coarsened, per table and class, and whether the
run finished).

Every run decides from what the database holds and the clock, so it is idempotent and a run cut
short (crash, stop, lock timeout) is simply finished by the next one. Only one service of a
deployment works at a time (a try-lock: the others skip the round). Each dropped partition is
logged and every table's drops are counted on ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import asyncpg
import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from urbanpulse.privacy.retention import ClassCounts, ClassRetention
from urbanpulse.storage.partitions import MonthlyPartitions, partition_month

log = logging.getLogger(__name__)

RETENTION_LOCK_ID = 0x75_72_62_72  # "urbr"; not the schema lock: retention never delays a start

#: tables whose old rows are deleted row-wise: (time column, key column used to walk in batches)
_DELETE_TABLES: dict[str, tuple[str, str]] = {
    "quarantine": ("received_at", "id"),
    "alert_events": ("at", "id"),
    "rollup_1m": ("bucket", "ctid"),
    "rollup_1h": ("bucket", "ctid"),
    "rollup_1d": ("bucket", "ctid"),
}
_HYPERTABLES = ("readings", "rollup_1m", "rollup_1h", "rollup_1d")  # TimescaleDB's policies drop their chunks


@dataclass(frozen=True)
class RetentionPlan:
    """How long each table keeps its rows (None: forever); from ``database.retention``."""

    keep: dict[str, timedelta | None]
    delete_batch_rows: int = 10_000

    @classmethod
    def from_settings(cls, retention: object) -> RetentionPlan:
        """The plan of a ``RetentionSettings`` section."""
        tables = ("readings", *_DELETE_TABLES)
        return cls({t: getattr(retention, t) for t in tables}, retention.delete_batch_rows)  # type: ignore[attr-defined]


@dataclass
class RetentionReport:
    """What one run dropped: partitions and rows per table."""

    partitions: dict[str, list[str]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    skipped: bool = False  # another service held the retention lock
    #: per data class, rows deleted per table (and ``readings:coarsened``)
    classes: ClassCounts = field(default_factory=ClassCounts)

    def audit_rows(self, outcome: str) -> dict[str, object]:
        """What the audit row of this run records."""
        return {"outcome": outcome, "partitions_dropped": {t: len(v) for t, v in self.partitions.items() if v},
                "rows_deleted": {t: n for t, n in self.rows.items() if n}, "by_class": self.classes.rows}


class RetentionMetrics:
    """``urbanpulse_retention_*`` counters on the service's registry."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.partitions = Counter("urbanpulse_retention_partitions_dropped", "Partitions dropped by retention",
                                  ["table"], registry=registry)
        self.rows = Counter("urbanpulse_retention_rows_deleted",
                            "Rows deleted by retention (row-wise tables; dropped partitions not included)",
                            ["table"], registry=registry)
        self.runs = Counter("urbanpulse_retention_runs", "Retention runs, by outcome", ["outcome"], registry=registry)
        self.class_rows = Counter("urbanpulse_retention_class_rows",
                                  "Rows deleted (or, table readings:coarsened, coarsened) by per-class retention",
                                  ["data_class", "table"], registry=registry)
        self.last_run = Gauge("urbanpulse_retention_last_run_timestamp_seconds",
                              "When the last retention run ended, by outcome", ["outcome"], registry=registry)


def month_end(month: np.datetime64) -> datetime:
    """The first instant after a month (UTC): the partition's exclusive upper bound."""
    return (month + 1).astype("datetime64[us]").astype(datetime).replace(tzinfo=timezone.utc)


def expired_partitions(names: list[str], cutoff: datetime) -> list[str]:
    """The partitions (of the names given) that hold only instants before ``cutoff``, oldest
    first. Names not made by storage/partitions.py are never chosen."""
    months = sorted((m, n) for n in names if (m := partition_month(n)) is not None)
    return [n for m, n in months if month_end(m) <= cutoff]


class Retention:
    """Applies a :class:`RetentionPlan`; ``run_once`` takes the clock as a parameter for tests."""

    def __init__(self, pool: asyncpg.Pool, mode: str, plan: RetentionPlan,
                 partitions: MonthlyPartitions | None = None, registry: CollectorRegistry | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 classes: ClassRetention | None = None) -> None:
        self.pool = pool
        self.mode = mode
        self.plan = plan
        self.partitions = partitions
        self.metrics = RetentionMetrics(registry)
        self.clock = clock
        self.classes = classes
        if classes is not None:
            classes.on_rows = lambda c, t, n: self.metrics.class_rows.labels(c, t).inc(n)

    @property
    def has_work(self) -> bool:
        """Whether anything is for this job to drop, delete or coarsen."""
        return any(keep is not None for keep in self.plan.keep.values()) or (
            self.classes is not None and self.classes.has_work)

    async def run_once(self, now: datetime | None = None) -> RetentionReport:
        """One pass over every table; returns what it dropped."""
        now = now or self.clock()
        report = RetentionReport()
        async with self.pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RETENTION_LOCK_ID):
                report.skipped = True
                self.metrics.runs.labels("skipped").inc()
                return report
            outcome = "failed"
            try:
                keep = self.plan.keep.get("readings")
                if keep is not None and self.mode == "postgres":
                    report.partitions["readings"] = await self._drop_partitions(conn, now - keep)
                if self.mode == "timescaledb":
                    for table in _HYPERTABLES:
                        if (keep := self.plan.keep.get(table)) is not None:
                            report.partitions[table] = await self._drop_chunks(conn, table, now - keep)
                for table, (time_col, key) in _DELETE_TABLES.items():
                    keep = self.plan.keep.get(table)
                    if keep is None or (self.mode == "timescaledb" and table in _HYPERTABLES):
                        continue
                    if await conn.fetchval("SELECT to_regclass($1) IS NULL", table):
                        continue  # e.g. a table of a migration this database has not had yet
                    report.rows[table] = await self._delete_rows(conn, table, time_col, key, now - keep)
                if self.classes is not None:
                    await self.classes.run(conn, now, report.classes)
                outcome = "done"
            finally:
                with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                    await self._audit(conn, report, outcome)
                self.metrics.last_run.labels(outcome).set(time.time())
                # after a failure mid-statement (cancelled at stop, connection lost) the connection
                # cannot run this; the pool's reset of a released connection unlocks it anyway
                with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                    await conn.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK_ID)
        self.metrics.runs.labels("done").inc()
        return report

    async def _audit(self, conn: asyncpg.Connection, report: RetentionReport, outcome: str) -> None:
        """One row in the append-only ``privacy_audit`` table per run (also a failed one: what it did)."""
        if await conn.fetchval("SELECT to_regclass('privacy_audit') IS NULL"):
            return
        await conn.execute("INSERT INTO privacy_audit (actor, action, subject, rows) VALUES ($1, $2, $3, $4::jsonb)",
                           "retention", "retention_run", "tables:" + ",".join(sorted(
                               {t for t, k in self.plan.keep.items() if k is not None}
                               | {f"class:{c}" for c in (self.classes.plans if self.classes else {})})),
                           json.dumps(report.audit_rows(outcome)))

    async def _drop_chunks(self, conn: asyncpg.Connection, table: str, cutoff: datetime) -> list[str]:
        """TimescaleDB: drop the chunks of ``table`` wholly before ``cutoff`` (what its retention
        policy also does); returns their names."""
        if await conn.fetchval("SELECT to_regclass($1) IS NULL", table):
            return []
        names = [r[0] for r in await conn.fetch("SELECT drop_chunks($1::regclass, older_than => $2::timestamptz)",
                                                table, cutoff)]
        for name in names:
            log.info("retention: dropped %s chunk %s (all before %s)", table, name, cutoff.isoformat(timespec="seconds"))
            self.metrics.partitions.labels(table).inc()
        return names

    async def _drop_partitions(self, conn: asyncpg.Connection, cutoff: datetime) -> list[str]:
        """Drop the monthly partitions of ``readings`` whose whole month lies before ``cutoff``."""
        rows = await conn.fetch("""
            SELECT c.relname, c.reltuples::int8 AS estimate
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'readings'::regclass ORDER BY c.relname""")
        estimates = {r["relname"]: r["estimate"] for r in rows}
        dropped = []
        for name in expired_partitions(list(estimates), cutoff):
            month = partition_month(name)
            end = month_end(month)
            try:
                async with conn.transaction():
                    # DROP needs the parent's exclusive lock: give up quickly rather than stall the writers
                    await conn.execute("SET LOCAL lock_timeout = '5s'")
                    await conn.execute(f'DROP TABLE IF EXISTS "{name}"')
            except asyncpg.LockNotAvailableError:
                log.warning("retention: readings partition %s is busy; dropping it next run", name)
                continue
            if self.partitions is not None:
                self.partitions.forget(month)
            estimate = estimates[name]
            rows_text = f"about {estimate:,} rows" if estimate >= 0 else "rows not yet counted"
            log.info("retention: dropped readings partition %s (%s, all before %s)", name, rows_text,
                     end.date().isoformat())
            self.metrics.partitions.labels("readings").inc()
            dropped.append(name)
        return dropped

    async def _delete_rows(self, conn: asyncpg.Connection, table: str, time_col: str, key: str,
                           cutoff: datetime) -> int:
        """Delete rows older than ``cutoff`` in batches (each its own transaction); returns how many."""
        order = f"ORDER BY {key}" if key != "ctid" else ""  # ids grow with time: the oldest come first
        sql = (f"DELETE FROM {table} WHERE {key} IN "
               f"(SELECT {key} FROM {table} WHERE {time_col} < $1 {order} LIMIT $2)")
        total = 0
        while True:
            status = await conn.execute(sql, cutoff, self.plan.delete_batch_rows)
            n = int(status.rsplit(" ", 1)[-1])
            if n:
                total += n
                self.metrics.rows.labels(table).inc(n)
            if n < self.plan.delete_batch_rows:
                break
        if total:
            log.info("retention: deleted %d rows from %s (%s before %s)", total, table, time_col,
                     cutoff.isoformat(timespec="seconds"))
        return total

    async def run(self, stopping: asyncio.Event, every: timedelta) -> None:
        """Run now and then every ``every`` until ``stopping``; a failed run is logged and retried."""
        if not self.has_work:
            return
        while not stopping.is_set():
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retention must never stop the service
                self.metrics.runs.labels("failed").inc()
                log.warning("retention run failed (%s: %s); trying again in %s", type(exc).__name__, exc, every)
            try:
                await asyncio.wait_for(stopping.wait(), every.total_seconds())
            except asyncio.TimeoutError:
                pass
