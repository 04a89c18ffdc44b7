"""``GET /open/personal-aggregates``: personal data as open data, k-anonymous (privacy/kanon.py).

Personal series are never served by /readings in the open-data scope; this route serves only
their aggregates per time bucket and geohash cell, each cell shown only when at least
``privacy.k_anonymity`` distinct devices contributed to it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request

from urbanpulse.api.access import ALLOW_OPEN_DATA
from urbanpulse.errors import InvalidRequest, StorageUnavailable
from urbanpulse.privacy.kanon import MAX_RANGE, AggregateQuery, open_aggregates

router = APIRouter(tags=["open data"])

_EXAMPLE = {"metric": "position", "bucket": "1h", "geohash_length": 5, "k": 5, "suppressed_cells": 3, "cells": [
    {"start": "2026-11-30T08:00:00+00:00", "geohash": "u33db", "lat": 52.53, "lon": 13.38, "devices": 7,
     "count": 412, "mean": 1.0, "min": 1.0, "max": 1.0}]}


@router.get("/open/personal-aggregates", dependencies=[ALLOW_OPEN_DATA],
            summary="Aggregates of personal sources per hour/day and geohash cell, k-anonymous",
            description="Readings of personal series (phones, bikes, OwnTracks) of one metric, per UTC bucket and "
                        "geohash cell of their (coarsened) positions: devices, count, mean, min, max. A cell with "
                        "fewer than `k` distinct devices (privacy.k_anonymity) is left out and only counted in "
                        "`suppressed_cells`. With metric `position` the counts are fixes: where people were, never "
                        "who. Range: at most 31 days with bucket 1h, 366 days with 1d.",
            responses={200: {"description": "The cells with at least k devices", "content": {
                "application/json": {"example": _EXAMPLE}}}})
async def personal_aggregates(
    request: Request,
    metric: str = Query(..., min_length=1, max_length=128, pattern=r"^[^\x00]+$", description="e.g. position, speed",
                        examples=["position"]),
    start: datetime = Query(..., description="inclusive, RFC 3339 with offset", examples=["2026-11-30T00:00:00Z"]),
    end: datetime = Query(..., description="exclusive, RFC 3339 with offset", examples=["2026-12-01T00:00:00Z"]),
    bucket: Literal["1h", "1d"] = Query("1h", description="UTC hour or day"),
    geohash: int = Query(5, ge=3, le=6, description="geohash length of the cells (6 ~ 1.2 x 0.6 km, 5 ~ 4.9 km, "
                         "4 ~ 39 x 20 km, 3 ~ 156 km)"),
) -> dict[str, Any]:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidRequest("start and end need a UTC offset, e.g. 2026-11-30T00:00:00Z")
    if not end > start:
        raise InvalidRequest("end must be after start")
    if end - start > MAX_RANGE[bucket]:
        raise InvalidRequest(f"with bucket {bucket} a request covers at most {MAX_RANGE[bucket].days} days; "
                             "ask in parts or with bucket 1d")
    service = getattr(request.app.state, "service", None)
    pool = getattr(service, "pool", None)
    if pool is None:
        raise StorageUnavailable("the database is not connected yet; retry shortly")
    async with pool.acquire() as conn:
        return await open_aggregates(conn, AggregateQuery(metric, start, end, bucket, geohash),
                                     service.settings.privacy.k_anonymity)
