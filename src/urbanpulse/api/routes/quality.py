"""``GET /quality``: the data-quality figures (last seen, completeness, gaps, quarantined and late
counts) per series over a period, with per-sensor and per-area roll-ups. Definitions:
:mod:`urbanpulse.quality.report` and docs/api.md."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import TypeAdapter, ValidationError

from urbanpulse.api.access import ALLOW_OPEN_DATA, Principal
from urbanpulse.api.routes.registry_deps import list_param, pool, scope_classes
from urbanpulse.errors import InvalidRequest
from urbanpulse.quality.report import quality_report

router = APIRouter(tags=["quality"])

_DURATION = TypeAdapter(timedelta)
_TIME = TypeAdapter(datetime)
MAX_PERIOD = timedelta(days=366)
#: a report still running after this answers 503 saying what to narrow (about 15 M readings here)
TIMEOUT_S = 30.0


def parse_period(period: str, now: datetime) -> tuple[datetime, datetime]:
    """``P7D`` / ``PT6H`` (ending now) or ``START/END`` (RFC 3339, each with an offset)."""
    try:
        if "/" in period:
            a, b = period.split("/", 1)
            start, end = _TIME.validate_python(a), _TIME.validate_python(b)
            if start.tzinfo is None or end.tzinfo is None:
                raise ValueError("naive time")
        else:
            length = _DURATION.validate_python(period)
            start, end = now - length, now
    except (ValidationError, ValueError, OverflowError) as exc:
        raise InvalidRequest(f"period {period!r} must be an ISO 8601 duration ending now (P7D, PT6H) or "
                                 "START/END in RFC 3339 with offsets (2026-11-01T00:00:00Z/2026-11-08T00:00:00Z)") from exc
    if end <= start:
        raise InvalidRequest(f"period {period!r} is empty: its end must be after its start")
    if end - start > MAX_PERIOD:
        raise InvalidRequest(f"period {period!r} is longer than {MAX_PERIOD.days} days; ask for a shorter one")
    return start, end


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
    period: str = Query("P1D", description="ISO 8601 duration ending now (P1D, PT6H) or START/END",
                        examples=["P7D", "2026-11-01T00:00:00Z/2026-11-08T00:00:00Z"]),
    sensor: str | None = Query(None, description="sensor id(s), comma-separated"),
    area: str | None = Query(None, description="area(s), comma-separated"),
    metric: str | None = Query(None, description="metric(s), comma-separated"),
    principal: Principal = ALLOW_OPEN_DATA,
) -> dict[str, Any]:
    """``{"start", "end", "gap_factor", "series": [...], "sensors": [...], "areas": [...]}``: per series
    ``last_seen``, ``received``, ``expected`` (from the registry's interval), ``completeness``, ``gaps``
    (start, end, seconds), ``late`` and ``quarantined`` by reason."""
    start, end = parse_period(period, datetime.now(timezone.utc))

    report = await quality_report(pool(request), start, end, sensor_ids=list_param("sensor", sensor),
                                  area=list_param("area", area), metric=list_param("metric", metric),
                                  data_classes=scope_classes(principal), timeout_s=TIMEOUT_S)
    return report.as_dict()
