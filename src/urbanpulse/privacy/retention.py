"""Retention and coarsening per data class (issue 15 items 1 and 5, docs/privacy.md).

The table-wide periods of ``database.retention`` drop whole monthly partitions (PostgreSQL) or
chunks (TimescaleDB) in storage/retention.py; a partition or chunk holds every class, so a class
that must forget sooner (``privacy.policies.<class>.retention``) has its own rows deleted here:

* readings and rollups of the class's series (``series_classes``: the stricter of the series'
  ingest class and its sensor's registry class), by event time / end of bucket;
* resolved alerts (by ``resolved_at``) and alert events (by ``at``) of those series;
* quarantine rows whose source/topic the configuration puts in the class (a redacted row's topic
  is the filter that made it personal), by ``received_at``;

and positions of the class's readings older than each ``coarsen_after`` step are snapped to that
step's grid (privacy/grid.py). Every statement works on at most ``batch_rows`` rows in its own
transaction and selects only what is still to do, so the job is idempotent and a run cut short
(crash, stop, lost connection) is finished by the next run with the same end state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from urbanpulse.privacy.settings import ClassPolicy, PrivacySettings

log = logging.getLogger(__name__)

#: rollup tables and their bucket widths
ROLLUP_WIDTHS = {"rollup_1m": timedelta(minutes=1), "rollup_1h": timedelta(hours=1), "rollup_1d": timedelta(days=1)}

#: called after every committed batch with (class, step); tests make it raise to simulate a crash
FaultHook = Callable[[str, str], None]


@dataclass
class ClassCounts:
    """What one run did per class: rows deleted or coarsened per ``table`` (or ``table:coarsened``)."""

    rows: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, data_class: str, what: str, n: int) -> None:
        by = self.rows.setdefault(data_class, {})
        by[what] = by.get(what, 0) + n


class ClassRetention:
    """Applies each class's ``retention`` and ``coarsen_after`` (see the module docstring)."""

    def __init__(self, privacy: PrivacySettings, batch_rows: int = 10_000,
                 on_rows: Callable[[str, str, int], None] | None = None, fault: FaultHook | None = None) -> None:
        self.privacy = privacy
        self.batch_rows = batch_rows
        self.on_rows = on_rows or (lambda c, t, n: None)
        self.fault = fault
        self.plans: dict[str, ClassPolicy] = {c: p for c, p in privacy.policies.items()
                                              if p.retention.any or p.coarsen_after}

    @property
    def has_work(self) -> bool:
        """Whether any class has a retention period or a coarsening step."""
        return bool(self.plans)

    async def run(self, conn: asyncpg.Connection, now: datetime, counts: ClassCounts) -> None:
        """One pass over every class with work; adds what it did to ``counts``."""
        if not self.plans or await conn.fetchval("SELECT to_regclass('series_classes') IS NULL"):
            return
        for data_class, policy in self.plans.items():
            series = [r[0] for r in await conn.fetch(
                "SELECT series_id FROM series_classes WHERE data_class = $1 ORDER BY 1", data_class)]
            r = policy.retention
            if r.readings is not None and series:
                await self._batched(conn, data_class, "readings", counts, """
                    WITH d AS (SELECT series_id, ts FROM readings WHERE series_id = ANY($1::int4[]) AND ts < $2
                               LIMIT $3)
                    DELETE FROM readings r USING d WHERE r.series_id = d.series_id AND r.ts = d.ts""",
                                    series, now - r.readings)
            if r.rollups is not None and series:
                for table, width in ROLLUP_WIDTHS.items():
                    if await conn.fetchval("SELECT to_regclass($1) IS NULL", table):
                        continue
                    await self._batched(conn, data_class, table, counts, f"""
                        WITH d AS (SELECT series_id, bucket FROM {table}
                                   WHERE series_id = ANY($1::int4[]) AND bucket <= $2 LIMIT $3)
                        DELETE FROM {table} r USING d WHERE r.series_id = d.series_id AND r.bucket = d.bucket""",
                                        series, now - r.rollups - width)
            if r.alerts is not None and series:
                await self._alerts(conn, data_class, series, now - r.alerts, counts)
            if r.quarantine is not None:
                await self._quarantine(conn, data_class, now - r.quarantine, counts)
            if policy.coarsen_after and series:
                await self._coarsen(conn, data_class, policy, series, now, counts)

    async def _batched(self, conn: asyncpg.Connection, data_class: str, what: str, counts: ClassCounts,
                       sql: str, *args: object) -> int:
        """Run a ``LIMIT $last`` statement until it affects fewer rows than a batch."""
        total = 0
        while True:
            status = await conn.execute(sql, *args, self.batch_rows)
            n = int(status.rsplit(" ", 1)[-1])
            if n:
                total += n
                counts.add(data_class, what, n)
                self.on_rows(data_class, what, n)
                if self.fault is not None:
                    self.fault(data_class, what)
            if n < self.batch_rows:
                break
        if total:
            log.info("retention: %s rows of class %s: %d %s", what, data_class, total,
                     "coarsened" if what.endswith(":coarsened") else "deleted")
        return total

    async def _alerts(self, conn: asyncpg.Connection, data_class: str, series: list[int], cutoff: datetime,
                      counts: ClassCounts) -> None:
        """Events older than the cutoff, then resolved alerts (with their remaining events)."""
        await self._batched(conn, data_class, "alert_events", counts, """
            WITH d AS (SELECT e.id FROM alert_events e JOIN alerts a ON a.id = e.alert_id
                       WHERE a.series_id = ANY($1::int4[]) AND e.at < $2 LIMIT $3)
            DELETE FROM alert_events e USING d WHERE e.id = d.id""", series, cutoff)
        while True:
            async with conn.transaction():
                ids = [r[0] for r in await conn.fetch(
                    "SELECT id FROM alerts WHERE series_id = ANY($1::int4[]) AND state = 'resolved' "
                    "AND resolved_at < $2 ORDER BY id LIMIT $3", series, cutoff, self.batch_rows)]
                if ids:
                    await conn.execute("DELETE FROM alert_events WHERE alert_id = ANY($1::int8[])", ids)
                    await conn.execute("DELETE FROM alerts WHERE id = ANY($1::int8[])", ids)
            if ids:
                counts.add(data_class, "alerts", len(ids))
                self.on_rows(data_class, "alerts", len(ids))
                log.info("retention: %d resolved alerts of class %s deleted", len(ids), data_class)
                if self.fault is not None:
                    self.fault(data_class, "alerts")
            if len(ids) < self.batch_rows:
                break

    async def _quarantine(self, conn: asyncpg.Connection, data_class: str, cutoff: datetime,
                          counts: ClassCounts) -> None:
        """Quarantine rows whose (source, topic) is in the class, older than the cutoff."""
        pairs = await conn.fetch("SELECT DISTINCT source, topic FROM quarantine WHERE received_at < $1", cutoff)
        mine = [(r["source"], r["topic"]) for r in pairs if self.privacy.class_of(r["source"], r["topic"]) == data_class]
        for source, topic in mine:
            await self._batched(conn, data_class, "quarantine", counts, """
                WITH d AS (SELECT id FROM quarantine WHERE source = $1 AND topic IS NOT DISTINCT FROM $2
                           AND received_at < $3 ORDER BY id LIMIT $4)
                DELETE FROM quarantine q USING d WHERE q.id = d.id""", source, topic, cutoff)

    async def _coarsen(self, conn: asyncpg.Connection, data_class: str, policy: ClassPolicy, series: list[int],
                       now: datetime, counts: ClassCounts) -> None:
        """Positions older than each step snapped to its grid; the oldest (coarsest) step first, each
        step only up to the next one's cutoff, so every row gets exactly one grid per run."""
        steps = sorted(policy.coarsen_after, key=lambda s: s.after, reverse=True)
        newer_than = None  # the cutoff of the older step already done
        for step in steps:
            grid = step.grid
            lat, lon = grid.sql("r.lat", "lat"), grid.sql("r.lon", "lon")
            lat_d, lon_d = grid.sql("lat", "lat"), grid.sql("lon", "lon")
            args: list[object] = [series, now - step.after]
            lower = ""
            if newer_than is not None:
                args.append(newer_than)
                lower = "AND ts >= $3"
            limit = f"${len(args) + 1}"  # _batched appends the batch size
            sql = f"""
                WITH d AS (SELECT series_id, ts FROM readings
                           WHERE series_id = ANY($1::int4[]) AND ts < $2 {lower} AND lat IS NOT NULL AND lon IS NOT NULL
                             AND (lat <> {lat_d} OR lon <> {lon_d})
                           LIMIT {limit})
                UPDATE readings r SET lat = {lat}, lon = {lon} FROM d WHERE r.series_id = d.series_id AND r.ts = d.ts"""
            await self._batched(conn, data_class, "readings:coarsened", counts, sql, *args)
            newer_than = now - step.after
