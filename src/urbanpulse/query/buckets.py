"""Bucket widths of history queries and where their boundaries fall.

A bucket is either a fixed width (``1m`` .. ``1d`` and multiples, ``30s`` is refused: the
finest stored summary is the minute) or the calendar ``month``. What ``tz`` changes:

* ``1d`` and ``month`` follow the city's calendar: a day is local midnight to local midnight
  (23 or 25 hours on a daylight-saving change day), a month starts at local midnight of its
  first day. PostgreSQL: ``date_trunc('day', ts, tz)``.
* Widths under a day are fixed stretches of real time (a 1 h bucket is always 3600 s, so the
  repeated local hour of an autumn change is two buckets, never one of two hours), aligned to
  local midnight of 2000-01-01 in ``tz``: in Asia/Kolkata (UTC+05:30) hourly buckets start
  at :30 UTC, i.e. on the local hour. PostgreSQL: ``date_bin(width, ts, origin)``.

:func:`boundaries` computes the same bucket starts in Python (zoneinfo); the query layer
uses them to decide whether a rollup table can serve a query exactly (every boundary on a
whole UTC minute or hour) and to fill gaps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from urbanpulse.query.errors import QueryError

_UNITS = {"m": 60, "h": 3600, "d": 86400}
_WIDTH = re.compile(r"^(\d{1,5})(m|min|h|d)$")
MINUTE = 60
HOUR = 3600
DAY = 86400
ORIGIN_LOCAL = datetime(2000, 1, 1)


@dataclass(frozen=True, slots=True)
class Bucket:
    """A parsed ``bucket=`` value: ``seconds`` for fixed widths, ``calendar`` for day/month."""

    text: str
    seconds: int | None = None  # fixed width under a day
    calendar: str | None = None  # "day" or "month"

    @property
    def is_fixed(self) -> bool:
        return self.seconds is not None


def parse_bucket(text: str) -> Bucket:
    """``1m``, ``5m``, ``15m``, ``1h``, ``3h``, ``12h``, ``1d`` (= ``day``), ``month`` (= ``1mo``)."""
    t = text.strip().lower()
    if t in ("month", "1mo", "1month", "mon"):
        return Bucket("month", calendar="month")
    if t in ("day", "1d", "24h", "1440m"):
        return Bucket("1d", calendar="day")
    m = _WIDTH.match(t)
    if not m:
        raise QueryError(f"bucket {text!r} is not understood; use a width such as 1m, 5m, 15m, 30m, 1h, 3h, 6h, "
                         "12h, 1d, or month")
    n, unit = int(m.group(1)), m.group(2)
    seconds = n * _UNITS["m" if unit == "min" else unit]
    if seconds == 0 or seconds > DAY:
        raise QueryError(f"bucket {text!r} is out of range; widths go from 1m to 1d (or month)")
    if DAY % seconds:
        raise QueryError(f"bucket {text!r} does not divide a day; use one that does (1m, 2m, 5m, 10m, 15m, 20m, "
                         "30m, 1h, 2h, 3h, 4h, 6h, 8h, 12h, 1d) or month")
    if seconds == DAY:
        return Bucket("1d", calendar="day")
    label = f"{seconds // 3600}h" if seconds % 3600 == 0 else f"{seconds // 60}m"
    return Bucket(label, seconds=seconds)


def parse_tz(name: str | None) -> ZoneInfo:
    """An IANA zone (``Europe/London``); UTC when not given."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise QueryError(f"tz {name!r} is not a known IANA time zone; use e.g. Europe/London or UTC") from exc


def origin(tz: ZoneInfo) -> datetime:
    """Where fixed-width buckets are aligned: local midnight of 2000-01-01 in ``tz`` (aware, UTC)."""
    return ORIGIN_LOCAL.replace(tzinfo=tz).astimezone(timezone.utc)


def floor(ts: datetime, bucket: Bucket, tz: ZoneInfo) -> datetime:
    """Start of the bucket holding ``ts`` (aware), as an aware UTC datetime."""
    if bucket.is_fixed:
        o = origin(tz)
        step = timedelta(seconds=bucket.seconds)
        return o + ((ts - o) // step) * step
    local = ts.astimezone(tz)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    if bucket.calendar == "month":
        day = day.replace(day=1)
    return _local_midnight(day, tz)


def next_start(start: datetime, bucket: Bucket, tz: ZoneInfo) -> datetime:
    """Start of the bucket after the one starting at ``start``."""
    if bucket.is_fixed:
        return start + timedelta(seconds=bucket.seconds)
    local = start.astimezone(tz).replace(tzinfo=None)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if bucket.calendar == "month":
        nxt = day.replace(year=day.year + (day.month == 12), month=day.month % 12 + 1, day=1)
    else:
        nxt = day + timedelta(days=1)
    return _local_midnight(nxt, tz)


def _local_midnight(day: datetime, tz: ZoneInfo) -> datetime:
    """UTC instant of local midnight (fold=0: a midnight skipped by a DST jump is read with the offset
    before the jump, as PostgreSQL reads a nonexistent local time)."""
    return day.replace(tzinfo=tz, fold=0).astimezone(timezone.utc)


def boundaries(start: datetime, end: datetime, bucket: Bucket, tz: ZoneInfo, limit: int) -> list[datetime]:
    """Bucket starts of every bucket overlapping [start, end); at most ``limit`` (QueryError beyond)."""
    out: list[datetime] = []
    b = floor(start, bucket, tz)
    while b < end:
        out.append(b)
        if len(out) > limit:
            raise QueryError(f"the range holds more than {limit} {bucket.text} buckets per series; choose a wider "
                             "bucket or a shorter range (start/end)")
        b = next_start(b, bucket, tz)
    return out


def count_buckets(start: datetime, end: datetime, bucket: Bucket, tz: ZoneInfo) -> int:
    """Number of buckets overlapping [start, end) (estimate for calendar buckets, exact otherwise)."""
    if bucket.is_fixed:
        first = floor(start, bucket, tz)
        return max(0, -(-int((end - first).total_seconds()) // bucket.seconds))
    days = (end - start).total_seconds() / DAY
    return int(days / (30 if bucket.calendar == "month" else 1)) + 2


def all_aligned(starts: list[datetime], seconds: int) -> bool:
    """Whether every bucket boundary falls on a whole UTC ``seconds`` (minute or hour)."""
    return all(int(b.timestamp()) % seconds == 0 and b.microsecond == 0 for b in starts)
