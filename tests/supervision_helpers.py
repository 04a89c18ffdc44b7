"""An in-process service with an injectable faulty format, for the supervision tests.

The service runs in the test's event loop (so a test can give it a format plugin of its own)
against real PostgreSQL and real brokers; ``/health`` and ``/metrics`` are asked through the real
FastAPI app over an in-memory ASGI transport.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson

from service_process import fetch, fetchval, metric_sum  # noqa: F401 - fetch, fetchval re-exported for the supervision tests
from urbanpulse.api.app import create_app
from urbanpulse.config import load_settings
from urbanpulse.formats.base import Decoded, MessageBatch
from urbanpulse.formats.canonical import CanonicalJsonFormat
from urbanpulse.service import IngestService

BASE_MS = int(time.time() * 1000) - 2 * 3600 * 1000


class InjectedFault(BaseException):
    """Stands for a failure that per-message isolation cannot contain: the isolation layer
    catches ``Exception`` from a format, so this derives from ``BaseException`` (like an abort
    inside a C extension would, it escapes every ``except Exception``) and really kills the source."""


class FaultyFormat:
    """A format plugin wrapping the canonical one that raises :class:`InjectedFault` while
    decoding any batch holding a payload with ``marker`` in it, ``times`` times (None: always)."""

    name = "faulty-json"

    def __init__(self, marker: bytes, times: int | None = None) -> None:
        self.inner = CanonicalJsonFormat()
        self.marker = marker
        self.times = times
        self.fired = 0
        self.seen_marker = 0  # decodes that were handed the marker payload

    def decode(self, batch: MessageBatch) -> Decoded:
        if any(self.marker in p for p in batch.payloads):
            self.seen_marker += 1
            if self.times is None or self.fired < self.times:
                self.fired += 1
                raise InjectedFault(f"injected fault on a batch of {len(batch.payloads)} message(s)")
        return self.inner.decode(batch)

    def __getattr__(self, name: str) -> Any:  # raw_of and anything else the pipeline asks for
        return getattr(self.inner, name)


def reading(sensor: str, i: int) -> bytes:
    """One canonical reading (distinct per sensor and i)."""
    return orjson.dumps({"sensor_id": sensor, "metric": "temperature", "ts": BASE_MS + i * 1000, "value": 20.0 + i % 7})


def settings_for(dsn: str, mqtt: tuple[str, int] | None = None, kafka: str | None = None,
                 topic: str | None = None, **supervision: float):
    """Settings for an in-process service on one broker, ingest only, quick restarts."""
    cfg: dict[str, Any] = {"database": {"dsn": dsn}, "api": {"enabled": False}, "detection": {"enabled": False},
                           "ingest": {"batch_max_ms": 50},
                           "supervision": {"restart_initial_s": 0.2, "restart_max_s": 1.0, **supervision}}
    if mqtt is not None:
        cfg["mqtt"] = {"enabled": True, "host": mqtt[0], "port": mqtt[1], "topics": [f"{topic}/#"],
                       "client_id": f"up-sup-{uuid.uuid4().hex[:8]}", "reconnect_min_s": 0.5}
    if kafka is not None:
        cfg["kafka"] = {"enabled": True, "bootstrap_servers": kafka, "topics": [topic],
                        "group_id": f"up-sup-{uuid.uuid4().hex[:8]}", "session_timeout_ms": 6000,
                        "heartbeat_interval_ms": 500}
    return load_settings(None, **cfg)


class RunningService:
    """An :class:`IngestService` started in this event loop, with an HTTP client on its API."""

    def __init__(self, service: IngestService) -> None:
        self.service = service
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(service)),
                                      base_url="http://urbanpulse")

    async def health(self) -> httpx.Response:
        return await self.http.get("/health")

    async def metric(self, name: str, **labels: str) -> float:
        """Sum of a Prometheus sample over the series matching ``labels``, read from /metrics."""
        return metric_sum((await self.http.get("/metrics")).text, name, **labels)

    async def stop(self) -> None:
        await self.http.aclose()
        await self.service.stop()


async def start_service(settings, fmt=None) -> RunningService:  # noqa: ANN001
    service = IngestService(settings, fmt=fmt)
    await service.start()
    return RunningService(service)


async def eventually(predicate: Callable[[], Awaitable[Any]], timeout: float, what: str,
                     interval: float = 0.2) -> Any:
    """Await ``predicate`` until it returns something truthy; AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")

