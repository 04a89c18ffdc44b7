"""Independent recomputation of history queries in pandas, and comparison helpers.

Shared by tests/test_history_query.py (plain PostgreSQL) and
tests/test_history_timescaledb.py (the TimescaleDB stand-in): the same checks in both modes.
The reference buckets readings with pandas' own time-zone arithmetic, not urbanpulse.query.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

import asyncpg
import numpy as np
import pandas as pd

from urbanpulse.query.run import Page, from_us, to_us
from urbanpulse.query.spec import HistoryQuery
from urbanpulse.storage.rollups import merge_partials, rollup_partials

FIXED_SECONDS = {"1m": 60, "2m": 120, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "3h": 10800,
                 "6h": 21600, "12h": 43200}


async def insert_without_copy(conn: asyncpg.Connection, sid: np.ndarray, ts_us: np.ndarray, value: np.ndarray,
                              chunk: int = 300) -> None:
    """Readings and their rollups by INSERT .. unnest (the TimescaleDB stand-in dies on COPY)."""
    for i in range(0, len(sid), chunk):
        s, t, v = sid[i:i + chunk], ts_us[i:i + chunk], value[i:i + chunk]
        async with conn.transaction():
            status = await conn.execute("""
                INSERT INTO readings (series_id, ts, value)
                SELECT u.s, timestamptz 'epoch' + u.t * interval '1 microsecond', u.v
                FROM unnest($1::int4[], $2::int8[], $3::float8[]) AS u(s, t, v)
                ON CONFLICT DO NOTHING""", s.tolist(), t.tolist(), v.tolist())
            assert status == f"INSERT 0 {len(s)}", status
            await merge_partials(conn, rollup_partials(s.astype(np.int32), t, v), "unnest")


async def stored_frame(conn: asyncpg.Connection) -> pd.DataFrame:
    """Every stored reading, as the reference sees it."""
    rows = await conn.fetch("""
        SELECT r.series_id, (extract(epoch FROM r.ts) * 1000000)::int8 AS ts_us, r.value
        FROM readings r ORDER BY 1, 2""")
    return pd.DataFrame({"series_id": np.array([r[0] for r in rows], np.int64),
                         "ts_us": np.array([r[1] for r in rows], np.int64),
                         "value": np.array([r[2] for r in rows], np.float64)})


def reference_buckets(ts_us: np.ndarray, bucket: str, tz: str) -> np.ndarray:
    """Bucket start (us) per reading: fixed widths from local midnight 2000-01-01, days and months
    as local calendar days and months (pandas tz arithmetic)."""
    if bucket in FIXED_SECONDS:
        origin = pd.Timestamp("2000-01-01").tz_localize(tz).tz_convert("UTC")
        o = origin.value // 1000
        w = FIXED_SECONDS[bucket] * 1_000_000
        return o + (ts_us - o) // w * w
    local = pd.to_datetime(ts_us, unit="us", utc=True).tz_convert(tz).tz_localize(None)
    if bucket == "1d":
        start = local.floor("D")
    else:
        start = local.to_period("M").to_timestamp()
    return np.asarray(start.tz_localize(tz).tz_convert("UTC").as_unit("us").asi8, np.int64)


def recompute(frame: pd.DataFrame, q: HistoryQuery, series_ids: list[int]) -> dict[tuple[int, int], dict]:
    """(series_id, bucket us) -> {aggregate: value} over the stored readings, in pandas."""
    lo, hi = to_us(q.start), to_us(q.end)
    f = frame[frame.series_id.isin(series_ids) & (frame.ts_us >= lo) & (frame.ts_us < hi)].copy()
    assert q.bucket is not None
    f["b"] = reference_buckets(f.ts_us.to_numpy(), q.bucket.text, str(q.tz.key))
    f = f.sort_values(["series_id", "b", "ts_us"])
    out: dict[tuple[int, int], dict] = {}
    for (sid, b), g in f.groupby(["series_id", "b"], sort=True):
        v = g.value.to_numpy()
        row = {"count": len(v), "min": v.min(), "max": v.max(), "mean": v.mean(), "sum": v.sum(),
               "stddev": float(np.std(v, ddof=1)) if len(v) > 1 else None, "first": v[0], "last": v[-1]}
        for p in q.percentiles:
            row[_pname(p)] = float(np.percentile(v, p * 100))
        out[(int(sid), int(b))] = row
    return out


def _pname(p: float) -> str:
    from urbanpulse.query.spec import percentile_name

    return percentile_name(p)


def close(a: float | None, b: float | None, scale: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-9 * max(scale, 1.0))


def assert_page_matches(rows: list[tuple[int, int, tuple, bool]], columns: tuple[str, ...],
                        expected: dict[tuple[int, int], dict], scale: float, context: str) -> None:
    """Rows (no gap filling) equal the recomputation: same keys in order, values within tolerance."""
    got_keys = [(sid, b) for sid, b, _, _ in rows]
    assert got_keys == sorted(expected), (
        f"{context}: bucket keys differ; missing {sorted(set(expected) - set(got_keys))[:5]} "
        f"extra {[(s, from_us(b)) for s, b in sorted(set(got_keys) - set(expected))[:5]]}")
    for sid, b, vals, _ in rows:
        exp = expected[(sid, b)]
        for name, got in zip(columns, vals):
            s = scale * (exp["count"] if name == "sum" else 1)
            assert close(got, exp[name], s), f"{context}: {name} of series {sid} at {from_us(b)}: {got} != {exp[name]}"


@dataclass
class Dataset:
    """What a module stored: per sensor, the series id; and the frame of all stored readings."""

    series: dict[str, int]
    frame: pd.DataFrame
    scale: float


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


class SinglePool:
    """``pool.acquire()`` over one connection (the TimescaleDB stand-in takes only one)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    def acquire(self):  # noqa: ANN201
        conn = self.conn

        class _Ctx:
            async def __aenter__(self):  # noqa: ANN204
                return conn

            async def __aexit__(self, *exc):  # noqa: ANN204
                return False

        return _Ctx()


async def all_pages(runner, q: HistoryQuery, limit: int) -> tuple[list, str]:
    """Follow next_cursor to the end; returns every row and the path used."""
    rows: list = []
    cursor = None
    path = ""
    for _ in range(100_000):
        page: Page = await runner.page(q, limit=limit, cursor=cursor)
        rows.extend(page.rows)
        path = page.path
        cursor = page.next_cursor
        if cursor is None:
            return rows, path
    raise AssertionError("pagination did not end")
