"""Open aggregates of personal data without re-identification (issue 15 item 4, docs/privacy.md).

What "open aggregate of personal data" means here: the readings of every series whose class is
personal (``series_classes``; phones, bikes, OwnTracks users), for one metric, summed up per time
bucket (1 hour or 1 day, UTC) and per geohash cell (length 3-6: 156 km down to 1.2 km x 0.6 km),
from the readings' own (already coarsened) positions. Such a cell is published through the open
scope only when at least ``k`` distinct devices contributed to it; every other cell is left out and
only counted (``suppressed_cells``). A device is one pseudonym: buckets never cross a UTC day, and
pseudonyms rotate on UTC day boundaries at the finest, so a device has one pseudonym per bucket and
is never counted twice (an OwnTracks user with two phones is two devices).

Limits (docs/privacy.md): cells and buckets are a fixed grid, so overlapping queries cannot carve
out a smaller cell; k-anonymity does not hide that a cell's devices share a value (all of them
fast, say), and repeated publication over time is not differential privacy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from urbanpulse.privacy.grid import Grid, geohash_of

BUCKETS = {"1h": timedelta(hours=1), "1d": timedelta(days=1)}
#: the longest range one request may cover, per bucket (keeps the answer and the scan bounded)
MAX_RANGE = {"1h": timedelta(days=31), "1d": timedelta(days=366)}


@dataclass(frozen=True)
class AggregateQuery:
    """One request for open aggregates of personal data."""

    metric: str
    start: datetime
    end: datetime
    bucket: str = "1h"
    geohash: int = 5


async def open_aggregates(conn: asyncpg.Connection, q: AggregateQuery, k: int) -> dict[str, Any]:
    """The cells of ``q`` with at least ``k`` distinct devices, and how many were suppressed."""
    grid = Grid("geohash", q.geohash)
    lat_bits, lon_bits = grid.bits
    lat_step, lon_step = grid.steps
    width = BUCKETS[q.bucket]
    rows = await conn.fetch(f"""
        WITH cells AS (
            SELECT date_bin($4::interval, r.ts, '2000-01-01T00:00:00Z'::timestamptz) AS bucket,
                   least(greatest(floor((r.lat + 90.0) / {lat_step!r}), 0), {2 ** lat_bits - 1})::int8 AS i,
                   least(greatest(floor((r.lon + 180.0) / {lon_step!r}), 0), {2 ** lon_bits - 1})::int8 AS j,
                   c.sensor_id, r.value
              FROM readings r JOIN series_classes c ON c.series_id = r.series_id
             WHERE c.data_class = 'personal' AND c.metric = $1 AND r.ts >= $2 AND r.ts < $3
               AND r.lat IS NOT NULL AND r.lon IS NOT NULL)
        SELECT bucket, i, j, count(DISTINCT sensor_id) AS devices, count(*) AS n, avg(value) AS mean,
               min(value) AS min, max(value) AS max
          FROM cells GROUP BY bucket, i, j ORDER BY bucket, i, j""", q.metric, q.start, q.end, width)
    shown, suppressed = [], 0
    for r in rows:
        if r["devices"] < k:
            suppressed += 1
            continue
        lat = (r["i"] + 0.5) * lat_step - 90.0
        lon = (r["j"] + 0.5) * lon_step - 180.0
        shown.append({"start": r["bucket"].isoformat(), "geohash": geohash_of(lat, lon, q.geohash), "lat": lat,
                      "lon": lon, "devices": r["devices"], "count": r["n"], "mean": r["mean"], "min": r["min"],
                      "max": r["max"]})
    return {"metric": q.metric, "bucket": q.bucket, "geohash_length": q.geohash, "k": k, "cells": shown,
            "suppressed_cells": suppressed}
