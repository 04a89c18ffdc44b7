"""``GET /metrics``: Prometheus text exposition of the ingest counters."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response

from urbanpulse.api.exposition import CONTENT_TYPE_LATEST, render

__all__ = ["render", "router"]

router = APIRouter(tags=["operations"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response, responses={200: {
    "description": "Prometheus text exposition format",
    "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"},
                                      "example": "urbanpulse_readings_stored_total 1234.0\n"}}}})
async def metrics(request: Request, name: list[str] | None = Query(
        None, alias="name[]", description="only these metrics (sample names, e.g. urbanpulse_readings_stored_total); "
        "repeat for several. Without it: every metric", examples=["urbanpulse_readings_stored_total"])) -> Response:
    """Readings received / stored / quarantined by reason, batch latency, in-flight, Kafka lag."""
    return Response(render(request.app.state.service.metrics.registry, name), media_type=CONTENT_TYPE_LATEST)
