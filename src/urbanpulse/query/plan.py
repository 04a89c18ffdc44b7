"""Which table answers a history query, and the SQL that asks it.

Paths, all returning rows ordered by (series_id, bucket) so keyset pagination works on
``(series_id, ts|bucket) >= (cursor)``, which the primary keys serve:

* ``readings``: no bucket, the readings themselves, one series after the other (:data:`READINGS_SQL`).
* ``raw``: readings grouped in SQL (``date_bin`` / ``date_trunc(.., tz)``); the only path for
  percentiles (``percentile_cont``, i.e. linear interpolation, numpy's default).
* ``rollup_1d`` / ``rollup_1h`` / ``rollup_1m``: when every bucket boundary and both ends of
  the range fall on whole UTC days / hours / minutes, and every selected series keeps that level
  over the whole range (levels per series and retention, docs/rollups.md), each stored rollup row lies inside exactly one output bucket,
  so grouping the rows gives the same result as grouping the readings: count and sum add,
  min/max/first/last combine, the mean is count-weighted and the variance merges the stored
  M2 exactly (Chan et al.: ``M2 = sum(m2_i + n_i (mean_i - mean)^2)``, never the cancelling
  sum-of-squares form). When the bucket equals the table's width the rows are returned as
  stored (``direct``).

Parameters: $1 series ids (int4[]), $2 start, $3 end, $4/$5 keyset position (series id,
timestamp), $6 row limit (NULL when streaming), $7/$8 bucket width/zone and origin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from urbanpulse.query.buckets import DAY, HOUR, MINUTE, all_aligned, boundaries, origin
from urbanpulse.query.errors import QueryError
from urbanpulse.query.spec import HistoryQuery

ROLLUPS = (("rollup_1d", DAY), ("rollup_1h", HOUR), ("rollup_1m", MINUTE))  # coarsest first
_EPOCH = "extract(epoch FROM {})"
#: bucket starts leave the database as int8 microseconds since the epoch (exact; no datetime per row)
_US = "(extract(epoch FROM {}) * 1000000)::int8"


@dataclass(frozen=True)
class Plan:
    """The chosen path and its SQL; ``bucket_args`` follow the common $1..$6."""

    path: str  # readings | raw | rollup_1m | rollup_1h
    sql: str
    bucket_args: tuple
    direct: bool = False


def _aligned(t: datetime, seconds: int) -> bool:
    return t.microsecond == 0 and int(t.timestamp()) % seconds == 0


def rollup_table(q: HistoryQuery, max_buckets: int, usable: set[str] | None = None) -> str | None:
    """The coarsest rollup table that answers ``q`` exactly, or None.

    ``usable``: the tables that hold every bucket of every selected series over the range (a
    series keeps only some levels, docs/rollups.md; retention may have cut a level short); None
    for all of them."""
    if q.bucket is None or q.percentiles:
        return None
    for table, width in ROLLUPS:
        if usable is not None and table not in usable:
            continue
        if not (_aligned(q.start, width) and _aligned(q.end, width)):
            continue
        if q.bucket.is_fixed:
            if q.bucket.seconds % width == 0 and _aligned(origin(q.tz), width):
                return table
        elif all_aligned(boundaries(q.start, q.end, q.bucket, q.tz, max_buckets), width):
            return table
    return None


_UNIT = {DAY: "day", HOUR: "hour", MINUTE: "minute"}


def why_no_rollup(q: HistoryQuery, usable: set[str] | None = None) -> str:
    """Why ``path=rollup`` cannot answer ``q``, naming the rule each level the selected series keep breaks
    (newcomer47: the refusal listed every rule, so a planner could not tell which one their query broke)."""
    if q.percentiles:
        return "this query cannot be answered from the rollups: percentiles are computed from the readings; use " \
               "path=auto (or path=raw)"
    kept = [(t, w) for t, w in ROLLUPS if usable is None or t in usable]
    if not kept:
        return ("this query cannot be answered from the rollups: the selected series keep no rollup level over this "
                "range (a series keeps a level whose buckets hold at least 10 of its readings, and retention may have "
                "dropped one; docs/rollups.md); use path=auto (or path=raw)")
    why = []
    for table, width in kept:
        unit = _UNIT[width]
        if not (_aligned(q.start, width) and _aligned(q.end, width)):
            why.append(f"{table} needs start and end on whole UTC {unit}s")
        elif q.bucket is not None and q.bucket.is_fixed and q.bucket.seconds % width:
            why.append(f"{table} cannot split its {unit}s into {q.bucket.text} buckets")
        else:
            why.append(f"{table} needs {q.bucket.text if q.bucket else ''} buckets that start on whole UTC {unit}s, "
                       f"and in {q.tz.key} they do not")
    return (f"this query cannot be answered from the rollups the selected series keep over the range "
            f"({', '.join(t for t, _ in kept)}): {'; '.join(why)}; use path=auto (or path=raw)")


def _bucket_expr(q: HistoryQuery, column: str) -> tuple[str, tuple]:
    assert q.bucket is not None
    if q.bucket.is_fixed:
        return f"date_bin($7::interval, {column}, $8::timestamptz)", (timedelta(seconds=q.bucket.seconds), origin(q.tz))
    return f"date_trunc('{q.bucket.calendar}', {column}, $7::text)", (str(q.tz.key),)


def _limit(paged: bool) -> str:
    return "LIMIT $6::int8"  # NULL when streaming: no limit


def _pct_sql(q: HistoryQuery) -> list[str]:
    if not q.percentiles:
        return []
    arr = "ARRAY[" + ",".join(repr(float(p)) for p in q.percentiles) + "]::float8[]"
    return [f"percentile_cont({arr}) WITHIN GROUP (ORDER BY value) AS pct"]


_RAW_AGG = {
    "count": "count(*) AS count",
    "min": "min(value) AS min",
    "max": "max(value) AS max",
    "mean": "avg(value) AS mean",
    "sum": "sum(value) AS sum",
    "stddev": "stddev_samp(value) AS stddev",
    # earliest / latest reading of the bucket: arrays compare element by element
    "first": f"(min(ARRAY[{_EPOCH.format('ts')}::float8, value]))[2] AS first",
    "last": f"(max(ARRAY[{_EPOCH.format('ts')}::float8, value]))[2] AS last",
}

def _div(num: str, den: str) -> str:
    """``num / den`` where a quotient too small for float8 is 0: PostgreSQL raises "value out of
    range: underflow" instead of rounding (readings of 1e-300 and less, which float8 holds)."""
    return f"(CASE WHEN abs({num}) < 1e-290 THEN 0::float8 ELSE ({num}) / ({den}) END)"


def _square(x: str) -> str:
    """``x ^ 2``, 0 where the square is too small for float8 (see :func:`_div`)."""
    return f"(CASE WHEN abs({x}) < 1e-150 THEN 0::float8 ELSE ({x}) ^ 2 END)"


_DIRECT_AGG = {
    "count": "count",
    "min": "min",
    "max": "max",
    "mean": "mean",
    "sum": "count * mean AS sum",
    "stddev": f"CASE WHEN count > 1 THEN sqrt({_div('greatest(m2, 0)', 'count - 1')}) END AS stddev",
    "first": "first",
    "last": "last",
}

_MERGED_AGG = {
    "count": "sum(count)::int8 AS count",
    "min": "min(min) AS min",
    "max": "max(max) AS max",
    "mean": f"{_div('sum(count * mean)', 'sum(count)')} AS mean",
    "sum": "sum(count * mean) AS sum",
    "stddev": "CASE WHEN sum(count) > 1 THEN sqrt("
              + _div("greatest(sum(m2 + count * " + _square("mean - gmean") + "), 0)", "sum(count) - 1")
              + ") END AS stddev",
    "first": f"(min(ARRAY[{_EPOCH.format('first_ts')}::float8, first]))[2] AS first",
    "last": f"(max(ARRAY[{_EPOCH.format('last_ts')}::float8, last]))[2] AS last",
}


#: the readings of ONE series ($1) from $2 (inclusive) to $3, in time order: a pure primary-key range
#: scan. Several series are read one after the other (PostgreSQL 15 cannot return an
#: ``= ANY(array)`` index scan in key order, so one query would sort every row first).
READINGS_SQL = """
SELECT $1::int4 AS series_id, (extract(epoch FROM ts) * 1000000)::int8 AS b_us, value, flags FROM readings
WHERE series_id = $1::int4 AND ts >= $2 AND ts < $3 ORDER BY ts LIMIT $4::int8"""
#: the readings of SEVERAL series ($1 int4[]) for binary COPY (exports), ``ts`` as stored: one
#: bitmap scan reads each heap page once for all of them (readings arrive time-major, so one
#: series' readings lie one per page), then PostgreSQL sorts them by (series, time). For a few
#: series or many, cheaper than a primary-key range scan per series, which visits a page per reading.
READINGS_COPY_SQL = """
SELECT series_id, ts, value, flags FROM readings
WHERE series_id = ANY($1::int4[]) AND ts >= $2 AND ts < $3 ORDER BY series_id, ts"""


def plan_query(q: HistoryQuery, *, paged: bool = True, max_buckets: int = 1_000_000,
               usable: set[str] | None = None) -> Plan:
    """Choose the path (``q.path`` may force raw or rollup) and build its SQL; ``usable`` as for
    :func:`rollup_table`."""
    if q.bucket is None:
        return Plan("readings", READINGS_SQL, ())
    table = None if q.path == "raw" else rollup_table(q, max_buckets, usable)
    if q.path == "rollup" and table is None:
        raise QueryError(why_no_rollup(q, usable))
    if table is None:
        expr, bargs = _bucket_expr(q, "ts")
        cols = [_RAW_AGG[a] for a in q.aggregates] + _pct_sql(q)
        sql = f"""
SELECT series_id, {_US.format(expr)} AS b_us{''.join(', ' + c for c in cols)}
FROM readings
WHERE series_id = ANY($1::int4[]) AND ts >= $2 AND ts < $3 AND (series_id, ts) >= ($4::int4, $5::timestamptz)
GROUP BY series_id, b_us ORDER BY series_id, b_us {_limit(paged)}"""
        return Plan("raw", sql, bargs)
    width = dict(ROLLUPS)[table]
    where = ("series_id = ANY($1::int4[]) AND bucket >= $2 AND bucket < $3 "
             "AND (series_id, bucket) >= ($4::int4, $5::timestamptz)")
    if q.bucket.is_fixed and q.bucket.seconds == width:
        cols = [_DIRECT_AGG[a] for a in q.aggregates]
        sql = f"""
SELECT series_id, {_US.format('bucket')} AS b_us{''.join(', ' + c for c in cols)}
FROM {table} WHERE {where}
ORDER BY series_id, bucket {_limit(paged)}"""
        return Plan(table, sql, (), direct=True)
    expr, bargs = _bucket_expr(q, "bucket")
    cols = [_MERGED_AGG[a] for a in q.aggregates]
    if "stddev" in q.aggregates:
        source = f"""(SELECT r.*, {_div('sum(count * mean) OVER w', 'sum(count) OVER w')} AS gmean
      FROM (SELECT series_id, {expr} AS b, count, mean, m2, min, max, first_ts, first, last_ts, last
            FROM {table} WHERE {where}) r
      WINDOW w AS (PARTITION BY series_id, b)) g"""
    else:
        source = f"""(SELECT series_id, {expr} AS b, count, mean, m2, min, max, first_ts, first, last_ts, last
      FROM {table} WHERE {where}) g"""
    sql = f"""
SELECT series_id, {_US.format('b')} AS b_us{''.join(', ' + c for c in cols)}
FROM {source}
GROUP BY series_id, b ORDER BY series_id, b_us {_limit(paged)}"""
    return Plan(table, sql, bargs)
