"""The JSON of a history page: what both shapes share, and the columnar shape (``GET /readings?shape=columns``).

Why: the default page lists one JSON object per row, repeating the sensor, metric and every
key on each (~85 bytes per row; a year of hourly means is ~750 kB that a client parses object
by object). The columnar page carries each column once, as an array::

    {"query": {...}, "series": [{...}, ...],
     "columns": {"series": [0, 0, ...], "bucket": ["2023-01-01T00:00:00Z", ...], "mean": [35.2, ...]},
     "next_cursor": null}

``series`` holds indexes into the page's ``series`` list (its registry metadata); the time
column is ``bucket`` (or ``ts`` for readings), then ``local`` (when ``tz`` is not UTC), the
value columns of ``query.columns`` in order, then ``filled`` (with ``fill``). Every array has
one element per row (``pandas.DataFrame(body["columns"])``). Built straight from the database
records: one list comprehension per column, numpy for the series indexes and the time
stamps, and orjson writes the arrays (times as RFC 3339 from datetime64) without a Python
object per value.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np
import orjson

from urbanpulse.query.run import Page


def page_head(page: Page) -> dict[str, Any]:
    """What both page shapes start with: the query as understood and the series' registry metadata."""
    q = page.query
    return {
        "query": {"start": q.start.isoformat(), "end": q.end.isoformat(),
                  "bucket": q.bucket.text if q.bucket else None, "tz": str(q.tz.key), "columns": list(page.columns),
                  "fill": q.fill, "path": page.path},
        "series": [{"sensor_id": s.sensor_id, "metric": s.metric, "unit": s.unit, "lat": s.lat, "lon": s.lon,
                    "area": s.area, "licence": s.licence, "data_class": s.data_class} for s in page.series],
    }


#: orjson writes numpy datetime64 arrays as RFC 3339 in C (~15x numpy.datetime_as_string)
_TIME_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z


def utc_times(us: np.ndarray | list[int]) -> np.ndarray:
    """Microseconds since the epoch as datetime64[us], which orjson writes as RFC 3339 UTC
    (``2023-01-01T05:00:00Z``; a fraction only where the microseconds are not zero)."""
    return np.asarray(us, dtype=np.int64).astype("datetime64[us]")


def iso_utc(us: np.ndarray | list[int]) -> list[str]:
    """The same stamps as Python strings (for the one-object-per-row shape)."""
    return orjson.loads(orjson.dumps(utc_times(us), option=_TIME_OPTIONS))


def local_times(us: np.ndarray, page: Page) -> list[str]:
    """The stamps in the query's zone (``2024-03-31T02:00:00+01:00``)."""
    tz = page.query.tz
    return [datetime.fromtimestamp(u / 1e6, timezone.utc).astimezone(tz).isoformat() for u in us.tolist()]


def _transpose(page: Page) -> tuple[np.ndarray, np.ndarray, list[Any], list[bool] | None]:
    """(series ids, time us, one sequence per value column, filled flags or None)."""
    q = page.query
    width = len(page.columns)
    if page.records is not None:
        recs = page.records
        if not recs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), [() for _ in range(width)], None
        # one list comprehension per column: ~1.6x faster than zip(*recs) over asyncpg records
        cols = [[r[i] for r in recs] for i in range(len(recs[0]))]
        values: list[Any] = cols[2:]
        if q.bucket is not None and q.percentiles:
            pct = values.pop()
            for j in range(len(q.percentiles)):
                values.append([None if a is None else a[j] for a in pct])
        return np.array(cols[0], np.int64), np.array(cols[1], np.int64), values, None
    rows = page.rows
    n = len(rows)
    sid = np.fromiter((r[0] for r in rows), np.int64, n)
    at = np.fromiter((r[1] for r in rows), np.int64, n)
    values = list(zip(*(r[2] for r in rows))) if n else [() for _ in range(width)]
    return sid, at, values, [r[3] for r in rows]


def columns_body(page: Page) -> bytes:
    """The page as columnar JSON bytes (see the module docstring)."""
    q = page.query
    sid, at, values, filled = _transpose(page)
    ids = np.array([s.series_id for s in page.series], np.int64)
    order = np.argsort(ids, kind="stable")
    index = order[np.searchsorted(ids[order], sid)] if len(sid) else np.zeros(0, np.int64)
    columns: dict[str, Any] = {"series": index, "bucket" if q.bucket is not None else "ts": utc_times(at)}
    if q.bucket is not None and str(q.tz.key) != "UTC":
        columns["local"] = local_times(at, page)
    for name, col in zip(page.columns, values):
        columns[name] = col
    if q.fill:
        columns["filled"] = filled if filled is not None else [False] * len(sid)
    body = {**page_head(page), "columns": columns, "next_cursor": page.next_cursor}
    return orjson.dumps(body, option=_TIME_OPTIONS)
