"""``GET /metrics``: Prometheus text exposition of the ingest counters."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["operations"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response, responses={200: {
    "description": "Prometheus text exposition format",
    "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"},
                                      "example": "urbanpulse_readings_stored_total 1234.0\n"}}}})
async def metrics(request: Request) -> Response:
    """Readings received / stored / quarantined by reason, batch latency, in-flight, Kafka lag."""
    return Response(generate_latest(request.app.state.service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
