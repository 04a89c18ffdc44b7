"""The newest stored readings of some series: what a detector is warmed with.

A series that comes (back) into a process's memory (a restart, a Kafka rebalance, an evicted
series reporting again) has its detectors warmed from its last stored readings, so a restart
neither forgets a series' normal range nor scores redelivered readings against nothing. The
query lives here with the other SQL; analytics only receives arrays.
"""

from __future__ import annotations

import asyncpg
import numpy as np

_LAST_READINGS_SQL = """
SELECT s.id AS series_id, (extract(epoch FROM r.ts) * 1000000)::int8 AS ts_us, r.value
FROM unnest($1::int4[]) AS s(id)
CROSS JOIN LATERAL (SELECT ts, value FROM readings WHERE series_id = s.id ORDER BY ts DESC LIMIT $2) AS r
"""


async def last_readings(conn: asyncpg.Connection, series_ids: np.ndarray,
                        per_series: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(series id int32, ts µs int64, value float64) of at most ``per_series`` newest stored
    readings of each series in ``series_ids``, newest first per series."""
    rows = await conn.fetch(_LAST_READINGS_SQL, series_ids, per_series)
    n = len(rows)
    return (np.fromiter((r[0] for r in rows), np.int32, n), np.fromiter((r[1] for r in rows), np.int64, n),
            np.fromiter((r[2] for r in rows), np.float64, n))
