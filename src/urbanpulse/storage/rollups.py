"""Rollups (``rollup_1m``, ``rollup_1h``) maintained inside each batch's transaction.

Why they stay right:
* Only the readings a transaction actually inserted are aggregated (the COPY path inserts the
  whole batch; the merge path takes them from ``INSERT ... ON CONFLICT DO NOTHING RETURNING``),
  and the rollup merge commits or rolls back with those readings. A redelivered batch inserts
  nothing, so it adds nothing; a crash loses the readings and their rollup contribution
  together. A late reading is an insert like any other and updates its (old) bucket.
* A batch's readings are summarised per (series, bucket) in numpy as partial aggregates
  (count, mean, M2, min, max, first, last) and merged into the stored row with Chan et al.'s
  parallel formulas, which are exact: the stored row equals a recomputation over all readings
  of the bucket (up to float rounding), whatever the batch boundaries or arrival order.
* The hour partials are built from the minute partials in numpy (no second pass over readings).
* Rows are merged in (series_id, bucket) order, so two concurrent batches touching the same
  rows wait for each other instead of deadlocking.

Two ways to ship partials to the server are kept: ``stage`` (one binary COPY of both tables'
partials into a temporary table, then both ``INSERT .. SELECT .. ON CONFLICT DO UPDATE`` in one
round trip; the default, measured faster) and ``unnest`` (one statement per table with array
parameters; for servers where COPY is unavailable). benchmarks/rollups.py has the figures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

import asyncpg
import numpy as np

from urbanpulse.storage.binary_copy import HEADER, PG_EPOCH_OFFSET_US, TRAILER
from urbanpulse.windows.aggregate import Moments, group_starts, merge_runs, moments

MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000
ROLLUP_TABLES = {"rollup_1m": MINUTE_US, "rollup_1h": HOUR_US}
MergeMethod = Literal["stage", "unnest"]

COLUMNS = ("series_id", "bucket", "count", "mean", "m2", "min", "max", "first_ts", "first", "last_ts", "last")

_COPY_ROW = np.dtype([
    ("nfields", ">i2"),
    ("l_sid", ">i4"), ("sid", ">i4"),
    ("l_bucket", ">i4"), ("bucket", ">i8"),
    ("l_count", ">i4"), ("count", ">i8"),
    ("l_mean", ">i4"), ("mean", ">f8"),
    ("l_m2", ">i4"), ("m2", ">f8"),
    ("l_min", ">i4"), ("min", ">f8"),
    ("l_max", ">i4"), ("max", ">f8"),
    ("l_first_ts", ">i4"), ("first_ts", ">i8"),
    ("l_first", ">i4"), ("first", ">f8"),
    ("l_last_ts", ">i4"), ("last_ts", ">i8"),
    ("l_last", ">i4"), ("last", ">f8"),
    ("l_width", ">i4"), ("width", ">i8"),
])


@dataclass(slots=True)
class Partials:
    """Partial aggregates of some readings, one element per (series_id, bucket), sorted by both."""

    series_id: np.ndarray  # int32
    bucket_us: np.ndarray  # int64, bucket start (us since the epoch)
    stats: Moments

    def __len__(self) -> int:
        return len(self.series_id)


def partial_aggregates(series_id: np.ndarray, ts_us: np.ndarray, value: np.ndarray, bucket_us: int) -> Partials:
    """Group readings by (series, ``bucket_us``-wide bucket) in numpy: one lexsort, reduceat per column."""
    ts_us = np.asarray(ts_us, np.int64)
    bucket = ts_us - ts_us % bucket_us  # floor, also before 1970
    order = np.lexsort((ts_us, bucket, series_id))
    sid, bucket, ts, val = series_id[order], bucket[order], ts_us[order], value[order]
    starts = group_starts(sid, bucket)
    return Partials(sid[starts].astype(np.int32), bucket[starts], moments(starts, ts, val))


def coarsen(p: Partials, bucket_us: int) -> Partials:
    """Merge partials into wider buckets (minute -> hour) without going back to the readings."""
    wide = p.bucket_us - p.bucket_us % bucket_us
    starts = group_starts(p.series_id, wide)  # input sorted by (series, bucket) => by (series, wide)
    return Partials(p.series_id[starts], wide[starts], merge_runs(starts, p.stats))


def rollup_partials(series_id: np.ndarray, ts_us: np.ndarray, value: np.ndarray) -> dict[str, Partials]:
    """The partials of both rollup tables for these (inserted) readings."""
    minute = partial_aggregates(series_id, ts_us, value, MINUTE_US)
    return {"rollup_1m": minute, "rollup_1h": coarsen(minute, HOUR_US)}


def _merge_sql(table: str, source: str) -> str:
    # SET expressions all see the old row (r) and the new partial (EXCLUDED).
    return f"""
INSERT INTO {table} AS r ({", ".join(COLUMNS)})
{source}
ON CONFLICT (series_id, bucket) DO UPDATE SET
    count = r.count + EXCLUDED.count,
    mean = r.mean + (EXCLUDED.mean - r.mean) * (EXCLUDED.count::float8 / (r.count + EXCLUDED.count)),
    m2 = r.m2 + EXCLUDED.m2 + (EXCLUDED.mean - r.mean) * (EXCLUDED.mean - r.mean)
         * r.count * (EXCLUDED.count::float8 / (r.count + EXCLUDED.count)),
    min = least(r.min, EXCLUDED.min),
    max = greatest(r.max, EXCLUDED.max),
    first_ts = least(r.first_ts, EXCLUDED.first_ts),
    first = CASE WHEN EXCLUDED.first_ts < r.first_ts THEN EXCLUDED.first ELSE r.first END,
    last_ts = greatest(r.last_ts, EXCLUDED.last_ts),
    last = CASE WHEN EXCLUDED.last_ts > r.last_ts THEN EXCLUDED.last ELSE r.last END
"""


_US = "timestamptz 'epoch' + {} * interval '1 microsecond'"
_UNNEST_SOURCE = f"""
SELECT u.sid, {_US.format("u.bucket")}, u.n, u.mean, u.m2, u.mn, u.mx, {_US.format("u.fts")}, u.fv,
       {_US.format("u.lts")}, u.lv
FROM unnest($1::int4[], $2::int8[], $3::int8[], $4::float8[], $5::float8[], $6::float8[], $7::float8[],
            $8::int8[], $9::float8[], $10::int8[], $11::float8[]) AS u(sid, bucket, n, mean, m2, mn, mx, fts, fv, lts, lv)
"""

MERGE_UNNEST_SQL = {t: _merge_sql(t, _UNNEST_SOURCE) for t in ROLLUP_TABLES}
#: both tables from one stage, in one round trip (a multi-statement simple query)
MERGE_STAGE_SQL = ";".join(
    _merge_sql(t, f"SELECT {', '.join(COLUMNS)} FROM rollup_stage WHERE width = {w} ORDER BY series_id, bucket")
    for t, w in ROLLUP_TABLES.items())
STAGE_COLUMNS = (*COLUMNS, "width")


async def prepare_rollup_stage(conn: asyncpg.Connection) -> None:
    """Per-connection temporary table the ``stage`` method copies partials into."""
    await conn.execute("CREATE TEMP TABLE IF NOT EXISTS rollup_stage "
                       "(LIKE rollup_1m INCLUDING DEFAULTS, width int8 NOT NULL) ON COMMIT DELETE ROWS")


def encode_partials(parts: dict[str, Partials]) -> bytes:
    """Binary COPY stream of partials in :data:`STAGE_COLUMNS` order (numpy, no object per row)."""
    chunks = [HEADER]
    for table, p in parts.items():
        rows = np.empty(len(p), _COPY_ROW)
        rows["nfields"] = len(STAGE_COLUMNS)
        for name in _COPY_ROW.names:
            if name.startswith("l_"):
                rows[name] = 4 if name == "l_sid" else 8
        m = p.stats
        rows["sid"] = p.series_id
        rows["bucket"] = p.bucket_us - PG_EPOCH_OFFSET_US
        rows["count"] = m.count
        rows["mean"], rows["m2"], rows["min"], rows["max"] = m.mean, m.m2, m.min, m.max
        rows["first_ts"], rows["first"] = m.first_ts - PG_EPOCH_OFFSET_US, m.first
        rows["last_ts"], rows["last"] = m.last_ts - PG_EPOCH_OFFSET_US, m.last
        rows["width"] = ROLLUP_TABLES[table]
        chunks.append(rows.tobytes())
    chunks.append(TRAILER)
    return b"".join(chunks)


async def merge_partials(conn: asyncpg.Connection, parts: dict[str, Partials], method: MergeMethod = "stage") -> None:
    """Merge partials (table name -> partials) into the rollup tables, inside the caller's transaction.

    Tables are merged in a fixed order (minute, hour), rows in key order: no lock-order inversions.
    """
    parts = {t: parts[t] for t in ROLLUP_TABLES if t in parts and len(parts[t])}
    if not parts:
        return
    if method == "stage":
        await conn.copy_to_table("rollup_stage", source=_once(encode_partials(parts)), columns=STAGE_COLUMNS,
                                 format="binary")
        await conn.execute(MERGE_STAGE_SQL)
        return
    for table, p in parts.items():
        m = p.stats
        await conn.execute(MERGE_UNNEST_SQL[table], p.series_id.tolist(), p.bucket_us.tolist(), m.count.tolist(),
                           m.mean.tolist(), m.m2.tolist(), m.min.tolist(), m.max.tolist(), m.first_ts.tolist(),
                           m.first.tolist(), m.last_ts.tolist(), m.last.tolist())


class RollupWriter:
    """Merges the rollups of a batch's inserted readings; the writer calls it inside its transaction."""

    def __init__(self, method: MergeMethod = "stage") -> None:
        self.method: MergeMethod = method

    async def merge(self, conn: asyncpg.Connection, partials: dict[str, Partials]) -> None:
        """Merge the minute and hour partials of one batch."""
        await merge_partials(conn, partials, self.method)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
