"""``GET /quality``: the data-quality figures (last seen, completeness, gaps, quarantined and late
counts) per series over a period, with per-sensor and per-area roll-ups. Definitions:
:mod:`urbanpulse.quality.report` and docs/api.md."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Query, Request

from urbanpulse.api.access import ALLOW_OPEN_DATA, Principal
from urbanpulse.api.routes.registry_deps import QueryTime, list_param, pool, scope_classes
from urbanpulse.errors import InvalidRequest
from urbanpulse.quality.report import quality_report

router = APIRouter(tags=["quality"])

MAX_PERIOD = timedelta(days=366)
#: a report still running after this answers 503 saying what to narrow (about 15 M readings here)
TIMEOUT_S = 30.0
#: a duration ending now, at most MAX_PERIOD: weeks (0-52), days (0-366) or hours (0-8784)
PERIOD_PATTERN = (r"^P(?:(?P<w>5[0-2]|[1-4]?[0-9])W|(?P<d>36[0-6]|3[0-5][0-9]|[12]?[0-9]?[0-9])D"
                  r"|T(?P<h>878[0-4]|87[0-7][0-9]|8[0-6][0-9][0-9]|[1-7]?[0-9]?[0-9]?[0-9])H)$")


def _shift(t: datetime, by: timedelta) -> datetime:
    """``t + by``, kept within the years datetime can hold."""
    try:
        return t + by
    except OverflowError:
        return datetime.max.replace(tzinfo=timezone.utc) if by > timedelta(0) else datetime.min.replace(tzinfo=timezone.utc)


def _url_time(t: datetime) -> str:
    """``t`` in UTC as a query string takes it as is (``Z``: a ``+00:00`` would need ``%2B``)."""
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_period(period: str, start: datetime | None, end: datetime | None,
                 now: datetime) -> tuple[datetime, datetime]:
    """The period reported: ``start``..``end`` when given (``end`` defaults to now), else the ``period``
    duration ending now. A range that is empty, starts in the future or is longer than :data:`MAX_PERIOD`
    (up to now) is refused (422) saying what to ask instead: answering it cut to a year, or as an empty
    report, gave a planner figures ("received": 0, "gap_count": 0) that looked like an answer to the question
    asked (newcomer47)."""
    if start is not None or end is not None:
        end = end or now
        start = start or _shift(end, -timedelta(days=1))
        if start >= now:
            raise InvalidRequest(f"start ({start.isoformat()}) is in the future: no reading can be reported yet")
        if end <= start:
            raise InvalidRequest(f"end ({end.isoformat()}) must be after start ({start.isoformat()})")
        if min(end, now) - start > MAX_PERIOD:
            raise InvalidRequest(
                f"the period {start.isoformat()} .. {min(end, now).isoformat()} is longer than the "
                f"{MAX_PERIOD.days} days a report covers; ask for it in parts, e.g. start={_url_time(start)}"
                f"&end={_url_time(_shift(start, MAX_PERIOD))} and on from there")
        return start, end
    m = re.match(PERIOD_PATTERN, period)
    if m is None:  # the pattern on the parameter keeps this from happening
        raise InvalidRequest(f"period {period!r} must be P<n>W, P<n>D or PT<n>H, at most {MAX_PERIOD.days} days")
    length = timedelta(weeks=int(m["w"] or 0), days=int(m["d"] or 0), hours=int(m["h"] or 0))
    return now - length, now


_EXAMPLE = {
    "start": "2026-11-25T00:00:00Z", "end": "2026-11-26T00:00:00Z", "gap_factor": 1.5,
    "series": [{"series_id": 7, "sensor_id": "camden-aq-1", "metric": "pm2_5", "area": "camden", "interval_s": 60.0,
                "last_seen": "2026-11-25T23:59:00Z", "received": 1380, "expected": 1440.0, "completeness": 0.958,
                "late": 3, "gap_count": 1, "gap_seconds": 3660.0,
                "gaps": [{"start": "2026-11-25T03:00:00Z", "end": "2026-11-25T04:01:00Z", "seconds": 3660.0}],
                "quarantined": {"out_of_range": 2}}],
    "sensors": [{"sensor_id": "camden-aq-1", "series": 1, "last_seen": "2026-11-25T23:59:00Z", "received": 1380,
                 "expected": 1440.0, "completeness": 0.958, "late": 3, "gap_count": 1, "gap_seconds": 3660.0,
                 "quarantined": {"out_of_range": 2}}],
    "areas": [{"area": "camden", "series": 1, "last_seen": "2026-11-25T23:59:00Z", "received": 1380,
               "expected": 1440.0, "completeness": 0.958, "late": 3, "gap_count": 1, "gap_seconds": 3660.0,
               "quarantined": {"out_of_range": 2}}]}


@router.get("/quality", summary="Data quality per series, sensor and area over a period",
            responses={200: {"content": {"application/json": {"example": _EXAMPLE}}}})
async def get_quality(
    request: Request,
    period: str = Query("P1D", description="ISO 8601 duration ending now: P<n>W, P<n>D or PT<n>H, at most 366 days",
                        examples=["P7D"], pattern=PERIOD_PATTERN),
    start: QueryTime | None = Query(None, description="ISO 8601 start instead of a period (with end, default "
                                        "now; at most 366 days: a longer, empty or future range is a 422; a date "
                                        "alone: midnight UTC)",
                                        examples=["2026-11-25T00:00:00Z"]),
    end: QueryTime | None = Query(None, description="ISO 8601 end (exclusive)", examples=["2026-11-26T00:00:00Z"]),
    sensor: str | None = Query(None, description="sensor id(s), comma-separated"),
    area: str | None = Query(None, description="area(s), comma-separated"),
    metric: str | None = Query(None, description="metric(s), comma-separated"),
    principal: Principal = ALLOW_OPEN_DATA,
) -> dict[str, Any]:
    """``{"start", "end", "gap_factor", "series": [...], "sensors": [...], "areas": [...]}``: per series
    ``last_seen``, ``received``, ``expected`` (from the registry's interval), ``completeness``, ``gaps``
    (start, end, seconds), ``late`` and ``quarantined`` by reason."""
    start, end = parse_period(period, start, end, datetime.now(timezone.utc))

    report = await quality_report(pool(request), start, end, sensor_ids=list_param("sensor", sensor),
                                  area=list_param("area", area), metric=list_param("metric", metric),
                                  data_classes=scope_classes(principal), timeout_s=TIMEOUT_S)
    return report.as_dict()
