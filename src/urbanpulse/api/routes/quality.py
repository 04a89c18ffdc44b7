"""``GET /quality``: the data-quality figures (last seen, completeness, gaps, quarantined and late
counts) per series over a period, with per-sensor and per-area roll-ups. Definitions:
:mod:`urbanpulse.quality.report` and docs/api.md."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import TypeAdapter, ValidationError

from urbanpulse.api.routes.registry_deps import ALLOW_OPEN_DATA, Principal, pool, scope_classes
from urbanpulse.quality.report import quality_report

router = APIRouter(tags=["quality"])

_DURATION = TypeAdapter(timedelta)
_TIME = TypeAdapter(datetime)
MAX_PERIOD = timedelta(days=366)


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
    except (ValidationError, ValueError) as exc:
        raise HTTPException(422, f"period {period!r} must be an ISO 8601 duration ending now (P7D, PT6H) or "
                                 "START/END in RFC 3339 with offsets (2026-11-01T00:00:00Z/2026-11-08T00:00:00Z)") from exc
    if end <= start:
        raise HTTPException(422, f"period {period!r} is empty: its end must be after its start")
    if end - start > MAX_PERIOD:
        raise HTTPException(422, f"period {period!r} is longer than {MAX_PERIOD.days} days; ask for a shorter one")
    return start, end


@router.get("/quality", summary="Data quality per series, sensor and area over a period")
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

    def many(v: str | None) -> list[str] | None:
        return None if v is None else [p.strip() for p in v.split(",") if p.strip()]

    report = await quality_report(pool(request), start, end, sensor_ids=many(sensor), area=many(area),
                                  metric=many(metric), data_classes=scope_classes(principal))
    return report.as_dict()
