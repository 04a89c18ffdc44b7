"""PostgreSQL binary COPY payloads built with numpy: no Python object per row.

The readings row is ``(series_id int4, ts timestamptz, value float8, flags int2, source int2,
lat float8 NULL, lon float8 NULL)``. Rows with and without a location have different byte
layouts, so each group is a numpy structured array and the two are concatenated.
"""

from __future__ import annotations

import numpy as np

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
#: microseconds between the Unix epoch and PostgreSQL's (2000-01-01)
PG_EPOCH_OFFSET_US = 946_684_800_000_000

READING_COLUMNS = ("series_id", "ts", "value", "flags", "source", "lat", "lon")

_COMMON = [
    ("nfields", ">i2"),
    ("l_sid", ">i4"), ("sid", ">i4"),
    ("l_ts", ">i4"), ("ts", ">i8"),
    ("l_val", ">i4"), ("val", ">f8"),
    ("l_flags", ">i4"), ("flags", ">i2"),
    ("l_src", ">i4"), ("src", ">i2"),
]
_NO_LOCATION = np.dtype(_COMMON + [("l_lat", ">i4"), ("l_lon", ">i4")])
_WITH_LOCATION = np.dtype(_COMMON + [("l_lat", ">i4"), ("lat", ">f8"), ("l_lon", ">i4"), ("lon", ">f8")])


def _fill(dtype: np.dtype, sid: np.ndarray, ts_us: np.ndarray, value: np.ndarray, flags: np.ndarray,
          source: int) -> np.ndarray:
    rows = np.empty(len(sid), dtype=dtype)
    rows["nfields"] = len(READING_COLUMNS)
    rows["l_sid"] = 4
    rows["sid"] = sid
    rows["l_ts"] = 8
    rows["ts"] = ts_us - PG_EPOCH_OFFSET_US
    rows["l_val"] = 8
    rows["val"] = value
    rows["l_flags"] = 2
    rows["flags"] = flags
    rows["l_src"] = 2
    rows["src"] = source
    return rows


def encode_readings(sid: np.ndarray, ts_us: np.ndarray, value: np.ndarray, flags: np.ndarray,
                    lat: np.ndarray, lon: np.ndarray, source: int) -> bytes:
    """One binary COPY stream for the readings columns in :data:`READING_COLUMNS` order."""
    located = ~np.isnan(lat)
    parts = [HEADER]
    if not located.all():
        keep = ~located
        rows = _fill(_NO_LOCATION, sid[keep], ts_us[keep], value[keep], flags[keep], source)
        rows["l_lat"] = -1
        rows["l_lon"] = -1
        parts.append(rows.tobytes())
    if located.any():
        rows = _fill(_WITH_LOCATION, sid[located], ts_us[located], value[located], flags[located], source)
        rows["l_lat"] = 8
        rows["lat"] = lat[located]
        rows["l_lon"] = 8
        rows["lon"] = lon[located]
        parts.append(rows.tobytes())
    parts.append(TRAILER)
    return b"".join(parts)
