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
from urbanpulse.query.spec import HistoryQuery


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


def _item_builder(time_key: str, values: list[str], local: bool, filled: bool):  # noqa: ANN202
    """A function (head, stamp, local_stamp, row, filled) -> the row's JSON object, as one dict
    display with fixed keys: 10x faster than building each row with update/zip (8,760 rows of a
    year of hours cost ~2 ms instead of ~20). ``values`` are (name, expression over ``v``) pairs
    from a fixed vocabulary (aggregate names, ``p`` + digits, indexes), so the source is safe."""
    parts = ["'sensor_id': h[0]", "'metric': h[1]", f"{time_key!r}: s"]
    if local:
        parts.append("'local': loc")
    parts += values
    if filled:
        parts.append("'filled': f")
    return eval(f"lambda h, s, loc, v, f: {{{', '.join(parts)}}}")  # noqa: S307


def _value_parts(q: HistoryQuery, columns: tuple[str, ...], from_record: bool) -> list[str]:
    """``'name': v[i]`` for each column: of a values tuple, or of a database record (aggregates
    from index 2, the percentiles as one array after them)."""
    if not from_record:
        return [f"{name!r}: v[{i}]" for i, name in enumerate(columns)]
    n = len(columns) - len(q.percentiles)
    parts = [f"{name!r}: v[{2 + i}]" for i, name in enumerate(columns[:n])]
    parts += [f"{name!r}: v[{2 + n}][{j}]" for j, name in enumerate(columns[n:])]
    return parts


def page_objects(page: Page) -> dict[str, Any]:
    """The default page as Python objects: the query, its series (registry metadata), one flat
    object per row. The reference :func:`items_body` is tested against (its bytes equal
    ``orjson.dumps(page_objects(page))``), for Python callers that want objects."""
    q = page.query
    heads = {s.series_id: (s.sensor_id, s.metric) for s in page.series}
    local = q.bucket is not None and str(q.tz.key) != "UTC"
    from_record = page.records is not None
    rows = page.records if from_record else page.rows
    build = _item_builder("bucket" if q.bucket is not None else "ts", _value_parts(q, page.columns, from_record),
                          local, bool(q.fill))
    stamps = iso_utc([r[1] for r in rows])
    if local:
        tz = q.tz
        locs = [datetime.fromtimestamp(r[1] / 1e6, timezone.utc).astimezone(tz).isoformat() for r in rows]
    else:
        locs = [None] * len(stamps)
    if from_record:
        items = [build(heads[r[0]], stamp, loc, r, False) for r, stamp, loc in zip(rows, stamps, locs)]
    else:
        items = [build(heads[r[0]], stamp, loc, r[2], r[3]) for r, stamp, loc in zip(rows, stamps, locs)]
    return {**page_head(page), "items": items, "next_cursor": page.next_cursor}


def _tokens(values: Any, n: int) -> list[bytes] | None:
    """The JSON text of each of ``n`` scalar values (numbers, null, booleans), from one orjson
    call over the whole column; None if they do not split into ``n`` tokens (never expected)."""
    if n == 0:
        return []
    out = orjson.dumps(values)[1:-1].split(b",")
    return out if len(out) == n else None


def _strings(values: Any, n: int) -> list[bytes] | None:
    """The contents (between the quotes) of ``n`` JSON strings without quotes or escapes inside
    (RFC 3339 stamps), from one orjson call; None if they do not split into ``n``."""
    if n == 0:
        return []
    out = orjson.dumps(values, option=_TIME_OPTIONS)[2:-2].split(b'","')
    return out if len(out) == n else None


def items_body(page: Page) -> bytes:
    """The default page (``shape=items``) as JSON bytes, equal to ``orjson.dumps(page_objects(page))``.

    Why not the objects: building a dict per row cost ~3 ms for a year of hourly means on an
    idle machine (~8 under load), more than the database query. Here each column is written by
    one orjson call (C), cut into per-row tokens with ``bytes.split``, and the rows are
    assembled by interleaving the token lists with the constant key text through slice
    assignment and one ``join``: no Python-level step per row. Values are numbers, null or
    booleans and times RFC 3339 strings, so the cuts are exact; should a column not split into
    one token per row, the page is written from the objects instead."""
    q = page.query
    sid, at, values, filled = _transpose(page)
    n = len(at)
    head = orjson.dumps(page_head(page))[:-1] + b',"items":['
    tail = b'],"next_cursor":' + orjson.dumps(page.next_cursor) + b"}"
    if n == 0:
        return head + tail
    time_key = "bucket" if q.bucket is not None else "ts"
    prefixes = [b'{"sensor_id":' + orjson.dumps(s.sensor_id) + b',"metric":' + orjson.dumps(s.metric)
                + b',"' + time_key.encode() + b'":"' for s in page.series]
    ids = np.array([s.series_id for s in page.series], np.int64)
    order = np.argsort(ids, kind="stable")
    index = order[np.searchsorted(ids[order], sid)]
    # the row's pieces in order: token lists and constant text between them
    pieces: list[list[bytes] | bytes | None] = [
        [prefixes[0]] * n if len(prefixes) == 1 else np.array(prefixes, dtype=object)[index].tolist(),
        _strings(utc_times(at), n), b'"']
    if q.bucket is not None and str(q.tz.key) != "UTC":
        pieces += [b',"local":"', _strings(local_times(at, page), n), b'"']
    for name, col in zip(page.columns, values):
        pieces += [b"," + orjson.dumps(name) + b":", _tokens(col, n)]
    if q.fill:
        pieces += [b',"filled":', _tokens(filled if filled is not None else [False] * n, n)]
    pieces.append(b"},")
    if any(p is None for p in pieces):
        return orjson.dumps(page_objects(page))
    merged: list[list[bytes] | bytes] = []  # adjacent constants joined: fewer pieces per row
    for p in pieces:
        if isinstance(p, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += p
        else:
            merged.append(p)  # type: ignore[arg-type]
    k = len(merged)
    out: list[bytes] = [b""] * (k * n)
    for j, p in enumerate(merged):
        out[j::k] = [p] * n if isinstance(p, bytes) else p
    return head + b"".join(out)[:-1] + tail
