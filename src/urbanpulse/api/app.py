"""The FastAPI application served by ``urbanpulse run``.

Every route declares its access rule (see :mod:`urbanpulse.api.access`); errors are answered
by :mod:`urbanpulse.api.errors` in one place; /docs and /openapi.json are served without any
CDN (:mod:`urbanpulse.api.docs`). New routers go in :func:`include_routers`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from urbanpulse.api import docs
from urbanpulse.api.access import ALLOW_PUBLIC, AccessPolicy
from urbanpulse.api.errors import BodyLimitMiddleware, install_error_handlers
from urbanpulse.api.openapi import build_openapi
from urbanpulse.api.routes import (alerts, health, ingest, keys, live, metrics, open_aggregates, quality, readings,
                                   sensors, subjects)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024

_DESCRIPTION = """Streaming ingestion for city sensors: health, metrics, alerts, maintenance windows and API keys.

**Access**: send an API key as `Authorization: Bearer upk_...` (an admin makes keys with
`urbanpulse keys create --role viewer|operator|admin|ingest --name WHO`). `viewer` reads,
`operator` also acknowledges and resolves alerts and manages maintenance windows, `admin` also
manages the registry and keys, `ingest` only sends readings. /health, /metrics and /docs need no key.
Every error is `{"detail": "...", "error": "<code>"}`: 401 without a valid key, 403 when its role
does not allow the endpoint.
"""


def include_routers(app: FastAPI) -> None:
    """Every resource's router; each route in them declares its access rule."""
    app.include_router(docs.router)
    app.include_router(health.router, dependencies=[ALLOW_PUBLIC])
    app.include_router(metrics.router, dependencies=[ALLOW_PUBLIC])
    app.include_router(alerts.router)  # /alerts, /alerts/stream, /maintenance
    app.include_router(keys.router)
    app.include_router(subjects.router)  # /admin/subjects/export|erase (privacy, admin only)
    app.include_router(open_aggregates.router)  # /open/personal-aggregates (k-anonymous, open data)
    app.include_router(readings.router)  # /readings, /readings/export, /sensors/{id}/latest
    app.include_router(sensors.router)  # /sensors (registry)
    app.include_router(quality.router)  # /quality
    app.include_router(ingest.router)  # /ingest, /ingest/{format_name} (readings over HTTP)
    app.include_router(live.pages)  # / (the live operations page) and its files; no data
    app.include_router(live.router)  # /live/config, /live/stream


def build_app(policy: AccessPolicy | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
              **state: Any) -> FastAPI:
    """The app without a service: ``state`` goes to ``app.state`` (``service``, ``alerts``, ``keys``)."""
    policy = policy or AccessPolicy()
    app = FastAPI(title="urbanpulse", version="0.1.0", description=_DESCRIPTION,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.access_policy = policy
    for name, value in state.items():
        setattr(app.state, name, value)
    install_error_handlers(app)
    include_routers(app)
    app.openapi = lambda: build_openapi(app, policy)  # type: ignore[method-assign]
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    return app


def create_app(service: Any) -> FastAPI:
    """An app bound to a running :class:`~urbanpulse.service.IngestService` (its lifecycle is
    managed by the CLI); access switches and limits come from the ``api:`` config section."""
    api = getattr(getattr(service, "settings", None), "api", None)
    policy = AccessPolicy(open_data=bool(getattr(api, "open_data", False)))
    return build_app(policy, getattr(api, "max_body_bytes", DEFAULT_MAX_BODY_BYTES), service=service)
