"""The FastAPI application served by ``urbanpulse run``."""

from __future__ import annotations

from fastapi import FastAPI

from urbanpulse.api.routes import alerts, health, metrics, readings
from urbanpulse.service import IngestService


def create_app(service: IngestService) -> FastAPI:
    """An app bound to a running :class:`IngestService` (its lifecycle is managed by the CLI)."""
    app = FastAPI(title="urbanpulse", version="0.1.0",
                  description="Streaming ingestion for city sensors: health and metrics.")
    app.state.service = service
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(alerts.router)  # /alerts, /alerts/stream, /maintenance
    app.include_router(readings.router)  # /readings, /readings/export, /sensors/{id}/latest
    return app
