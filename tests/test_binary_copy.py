"""The readings' binary COPY stream (storage/binary_copy.py): rows in key order, nothing else changed.

``encode_readings`` sends each group of rows (without a location, then with one) ordered by
``(series_id, ts)``, ties in their given order, so that PostgreSQL inserts into the primary key's
index page by page (benchmarks/README.md ``spawn17``). The oracle is the encoding as it was before
(rows in their given order), applied to the rows stably sorted by that key: the stream must be the
same bytes. Against a real PostgreSQL, what a COPY of the stream stores is exactly the rows given.
"""

from __future__ import annotations

import asyncio
import math

import asyncpg
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from urbanpulse.storage.binary_copy import (_NO_LOCATION, _WITH_LOCATION, HEADER, PG_EPOCH_OFFSET_US,
                                            READING_COLUMNS, TRAILER, encode_readings, key_order)

pytestmark = pytest.mark.integration


def _encode_in_given_order(sid, ts_us, value, flags, lat, lon, source) -> bytes:  # noqa: ANN001
    """The encoding before rows were put in key order (the oracle): each group in given order."""
    def fill(dtype, keep):  # noqa: ANN001, ANN202
        rows = np.empty(int(keep.sum()), dtype=dtype)
        rows["nfields"] = len(READING_COLUMNS)
        rows["l_sid"], rows["sid"] = 4, sid[keep]
        rows["l_ts"], rows["ts"] = 8, ts_us[keep] - PG_EPOCH_OFFSET_US
        rows["l_val"], rows["val"] = 8, value[keep]
        rows["l_flags"], rows["flags"] = 2, flags[keep]
        rows["l_src"], rows["src"] = 2, source
        return rows

    located = ~np.isnan(lat)
    parts = [HEADER]
    if not located.all():
        rows = fill(_NO_LOCATION, ~located)
        rows["l_lat"], rows["l_lon"] = -1, -1
        parts.append(rows.tobytes())
    if located.any():
        rows = fill(_WITH_LOCATION, located)
        rows["l_lat"], rows["lat"] = 8, lat[located]
        rows["l_lon"], rows["lon"] = 8, lon[located]
        parts.append(rows.tobytes())
    parts.append(TRAILER)
    return b"".join(parts)


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def columns(draw, unique_keys: bool = False, max_rows: int = 120):  # noqa: ANN001, ANN201
    """Readings columns: few series and times (so keys repeat unless ``unique_keys``), any
    values (NaN and infinities too), flags, and locations on some rows."""
    n = draw(st.integers(0, max_rows))
    sids = st.integers(-3, 6) if draw(st.booleans()) else st.integers(-(2**31), 2**31 - 1)
    stamps = st.integers(-5, 5).map(lambda k: 1_700_000_000_000_000 + k * 1_000_000) | \
        st.integers(-(2**53), 2**53)
    keys = st.tuples(sids, stamps)
    rows = draw(st.lists(keys, min_size=n, max_size=n, unique=unique_keys))
    located = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    value = draw(st.lists(st.floats(width=64) if not unique_keys else finite, min_size=n, max_size=n))
    return (np.array([r[0] for r in rows], np.int32).reshape(n),
            np.array([r[1] for r in rows], np.int64).reshape(n),
            np.array(value, np.float64).reshape(n),
            np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), np.int16).reshape(n),
            np.array([draw(st.floats(-90, 90)) if loc else math.nan for loc in located], np.float64).reshape(n),
            np.array([draw(st.floats(-180, 180)) if loc else math.nan for loc in located], np.float64).reshape(n))


@given(columns(), st.integers(0, 5))
@settings(max_examples=300, deadline=None)
def test_stream_is_the_given_order_encoding_of_the_rows_in_key_order(cols, source: int) -> None:
    sid, ts_us, value, flags, lat, lon = cols
    stable = sorted(range(len(sid)), key=lambda k: (int(sid[k]), int(ts_us[k])))  # Python's sort is stable
    assert key_order(sid, ts_us).tolist() == stable
    order = np.array(stable, dtype=np.intp)
    expected = _encode_in_given_order(sid[order], ts_us[order], value[order], flags[order], lat[order],
                                      lon[order], source)
    assert encode_readings(sid, ts_us, value, flags, lat, lon, source) == expected


def test_a_mutant_that_keeps_the_given_order_is_told_apart() -> None:
    """The property above can fail: the given order of interleaved series is not the key order."""
    sid = np.array([2, 1, 2, 1], np.int32)
    ts_us = np.array([10, 10, 20, 20], np.int64) + 1_700_000_000_000_000
    nan = np.full(4, np.nan)
    args = (np.arange(4.0), np.zeros(4, np.int16), nan, nan, 2)
    assert encode_readings(sid, ts_us, *args) != _encode_in_given_order(sid, ts_us, *args)
    order = key_order(sid, ts_us)
    assert encode_readings(sid, ts_us, *args) == _encode_in_given_order(
        sid[order], ts_us[order], np.arange(4.0)[order], np.zeros(4, np.int16), nan, nan, 2)


_TABLE = """CREATE TEMP TABLE copied (series_id int4 NOT NULL, ts timestamptz NOT NULL, value float8 NOT NULL,
    flags int2 NOT NULL DEFAULT 0, source int2 NOT NULL DEFAULT 0, lat float8, lon float8,
    PRIMARY KEY (series_id, ts))"""


@given(columns(unique_keys=True, max_rows=300), st.integers(0, 5))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_postgres_stores_exactly_the_rows_given(fresh_db: str, cols, source: int) -> None:  # noqa: ANN001
    sid, ts_us, value, flags, lat, lon = cols
    ts_us = ts_us % (4_000_000_000_000_000) + 100_000  # within timestamptz's range, whole microseconds

    async def go() -> list[tuple]:
        conn = await asyncpg.connect(fresh_db)
        try:
            await conn.execute(_TABLE)
            payload = encode_readings(sid, ts_us, value, flags, lat, lon, source)

            async def stream():  # noqa: ANN202
                yield payload

            await conn.copy_to_table("copied", source=stream(), columns=READING_COLUMNS, format="binary")
            rows = await conn.fetch("SELECT series_id, (extract(epoch FROM ts) * 1000000)::int8 AS us, value, "
                                    "flags, source, lat, lon FROM copied")
            return [tuple(r) for r in rows]
        finally:
            await conn.close()

    def key(row: tuple) -> tuple:
        return tuple("nan" if isinstance(x, float) and math.isnan(x) else x for x in row)

    got = sorted(map(key, asyncio.run(go())))
    want = sorted(key((int(sid[k]), int(ts_us[k]), float(value[k]), int(flags[k]), source,
                       None if math.isnan(lat[k]) else float(lat[k]), None if math.isnan(lon[k]) else float(lon[k])))
                  for k in range(len(sid)))
    assert got == want
