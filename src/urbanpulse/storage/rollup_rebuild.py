"""Rebuild rollup buckets from the readings: what a writer that died left unwritten.

With deferred rollups (storage/rollup_buffer.py) a writer keeps the partial aggregates of
committed readings in memory for up to ``flush_every_s`` and marks, in each batch's transaction,
the minutes those readings fall in (``rollup_pending``). A writer killed before its flush leaves
its marks behind; the readings are the source of truth, so its buckets are recomputed from them:

* ``rollup_1m`` for the marked minutes, from ``readings``;
* ``rollup_1h`` for the hours holding them, from ``rollup_1m`` for series that keep it, else from
  ``readings`` (hierarchical, as the live path: 1 h from 1 min, 1 d from 1 h);
* ``rollup_1d`` for the day, from ``rollup_1h`` likewise.

A recomputation *replaces* rows, while live writers *add* their partials, so a day is rebuilt
only when no live writer has a mark in it (its partials of that day are flushed), checked in the
same REPEATABLE READ snapshot the recomputation reads: a live writer's batch committed after
that snapshot is not in the recomputation and is added by its own flush later; one before it is
seen (readings and mark commit together) and the day waits. A concurrent flush updating the same
rows makes the rebuild fail to serialise; it is retried at the next flush.
"""

from __future__ import annotations

import logging

import asyncpg

from urbanpulse.storage.rollups import DECISION_LOCK_ID

log = logging.getLogger(__name__)

_US = {"rollup_1m": 60_000_000, "rollup_1h": 3_600_000_000, "rollup_1d": 86_400_000_000}
_WIDTH = {"rollup_1m": "1 minute", "rollup_1h": "1 hour", "rollup_1d": "1 day"}
_CHILD = {"rollup_1h": "rollup_1m", "rollup_1d": "rollup_1h"}
_FINEST = "coalesce(d.finest_us, 60000000)"  # a series without a decision keeps every level
_COLS = "series_id, bucket, count, mean, m2, min, max, first_ts, first, last_ts, last"


def _from_readings(table: str) -> str:
    """Aggregate readings into ``table``'s buckets listed in $1, for series whose finest kept level
    is this one (every series for the minute level). PostgreSQL's float8 variance is
    Youngs-Cramer, not a sum of squares: m2 = var_pop * n keeps the precision of a steady signal."""
    w, us = _WIDTH[table], _US[table]
    finest = f"{_FINEST} <= {us}" if table == "rollup_1m" else f"{_FINEST} = {us}"
    return f"""
INSERT INTO {table} ({_COLS})
SELECT r.series_id, date_bin('{w}', r.ts, timestamptz 'epoch'), count(*), avg(r.value),
       coalesce(var_pop(r.value) * count(*), 0), min(r.value), max(r.value),
       min(r.ts), (array_agg(r.value ORDER BY r.ts))[1], max(r.ts), (array_agg(r.value ORDER BY r.ts DESC))[1]
FROM readings r LEFT JOIN rollup_series d ON d.series_id = r.series_id
WHERE r.ts >= $2 AND r.ts < $3 AND date_bin('{w}', r.ts, timestamptz 'epoch') = ANY($1::timestamptz[])
  AND {finest} AND EXISTS (SELECT 1 FROM series s WHERE s.id = r.series_id)
GROUP BY 1, 2 ORDER BY 1, 2"""


def _from_child(table: str) -> str:
    """Combine the finer level's rows into ``table``'s buckets in $1 (Chan: M2 = sum of the parts'
    M2 plus n_i (mean_i - mean)^2, with the mean known first), for series keeping the finer level."""
    w, child, us = _WIDTH[table], _CHILD[table], _US[table]
    return f"""
INSERT INTO {table} ({_COLS})
WITH c AS (
    SELECT x.series_id, date_bin('{w}', x.bucket, timestamptz 'epoch') AS b, x.count, x.mean, x.m2, x.min, x.max,
           x.first_ts, x.first, x.last_ts, x.last
    FROM {child} x LEFT JOIN rollup_series d ON d.series_id = x.series_id
    WHERE x.bucket >= $2 AND x.bucket < $3 AND date_bin('{w}', x.bucket, timestamptz 'epoch') = ANY($1::timestamptz[])
      AND {_FINEST} < {us}
), g AS (
    SELECT series_id, b, sum(count)::int8 AS n, sum(count * mean) / sum(count)::float8 AS mean FROM c GROUP BY 1, 2
)
SELECT c.series_id, c.b, g.n, g.mean, sum(c.m2 + c.count * (c.mean - g.mean) * (c.mean - g.mean)),
       min(c.min), max(c.max), min(c.first_ts), (array_agg(c.first ORDER BY c.first_ts))[1],
       max(c.last_ts), (array_agg(c.last ORDER BY c.last_ts DESC))[1]
FROM c JOIN g USING (series_id, b)
GROUP BY c.series_id, c.b, g.n, g.mean ORDER BY 1, 2"""


_DAYS_SQL = """
SELECT DISTINCT date_bin('1 day', bucket, timestamptz 'epoch') AS day FROM rollup_pending
WHERE writer_id = ANY($1::int8[]) ORDER BY 1"""


async def rebuild_days(conn: asyncpg.Connection, dead: list[int]) -> tuple[int, int]:
    """Rebuild every day the ``dead`` writers left marks in, one transaction per day; returns
    (days rebuilt, days left for later because a live writer still has a mark in them)."""
    done = waiting = 0
    for row in await conn.fetch(_DAYS_SQL, dead):
        try:
            if await _rebuild_day(conn, dead, row["day"]):
                done += 1
            else:
                waiting += 1
        except (asyncpg.SerializationError, asyncpg.DeadlockDetectedError, asyncpg.UniqueViolationError) as exc:
            log.info("rollups: rebuilding %s met a concurrent flush (%s); retried later", row["day"], exc)
            waiting += 1
    return done, waiting


async def _rebuild_day(conn: asyncpg.Connection, dead: list[int], day) -> bool:  # noqa: ANN001 - datetime
    from datetime import timedelta

    end = day + timedelta(days=1)
    async with conn.transaction(isolation="repeatable_read"):
        # decisions cannot change under us (the exclusive side deletes rows); snapshot taken here
        await conn.execute(f"SELECT pg_advisory_xact_lock_shared({DECISION_LOCK_ID})")
        live = await conn.fetchval("""SELECT EXISTS (SELECT 1 FROM rollup_pending WHERE writer_id <> ALL($1::int8[])
                                      AND bucket >= $2 AND bucket < $3)""", dead, day, end)
        if live:
            return False
        minutes = [r[0] for r in await conn.fetch("""SELECT DISTINCT bucket FROM rollup_pending
            WHERE writer_id = ANY($1::int8[]) AND bucket >= $2 AND bucket < $3 ORDER BY 1""", dead, day, end)]
        hours = sorted({m.replace(minute=0, second=0, microsecond=0) for m in minutes})
        for table, buckets in (("rollup_1m", minutes), ("rollup_1h", hours), ("rollup_1d", [day])):
            await conn.execute(f"DELETE FROM {table} WHERE bucket = ANY($1::timestamptz[])", buckets)
            await conn.execute(_from_readings(table), buckets, day, end)
            if table in _CHILD:
                await conn.execute(_from_child(table), buckets, day, end)
        await conn.execute("""DELETE FROM rollup_pending WHERE writer_id = ANY($1::int8[])
                              AND bucket >= $2 AND bucket < $3""", dead, day, end)
    log.warning("rollups: rebuilt %d minute(s) of %s from the readings (a writer stopped before writing them)",
                len(minutes), day.date())
    return True
