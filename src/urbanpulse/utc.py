"""One rule for turning a parsed time into UTC, shared by every route that takes a time (the alert filters, the
registry's validity times, the readings and quality queries), so they cannot drift apart."""

from __future__ import annotations

from datetime import datetime, timezone


def to_utc(dt: datetime) -> datetime:
    """``dt`` in UTC (naive: taken as UTC), clamped to Python's range of years 1..9999 (a time a client sends beyond
    them is the range's end, not an OverflowError and a 500)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    try:
        return dt.astimezone(timezone.utc)
    except OverflowError:
        limit = datetime.min if dt.year < 5000 else datetime.max
        return limit.replace(tzinfo=timezone.utc)
