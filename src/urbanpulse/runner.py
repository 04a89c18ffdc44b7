"""Runs the service with its HTTP API until SIGTERM/SIGINT, then shuts down in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import Any

from urbanpulse.capacity import keep_large_arrays_off_the_heap
from urbanpulse.config import Settings
from urbanpulse.service import IngestService

log = logging.getLogger(__name__)


def _api_server(service: IngestService, settings: Settings) -> Any:  # noqa: ANN401 - a uvicorn.Server
    """The API server, its modules imported here: FastAPI, the routes and uvicorn take about a
    second to import, which the sources' start (a Kafka group join) need not wait for. Called on
    a thread, so the event loop (heartbeats, the first batches) keeps running meanwhile."""
    import uvicorn

    from urbanpulse.api.app import create_app

    class _ApiServer(uvicorn.Server):
        """uvicorn without its own signal handling: the service decides when the API stops."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn.Config(create_app(service), host=settings.api.host, port=settings.api.port,
                            log_level="warning", lifespan="off")
    return _ApiServer(config)


#: how long the API's import waits for the analytics' kernels (a compile on a first start takes longer)
KERNELS_FIRST_S = 5.0


async def _kernels_first(service: IngestService) -> None:
    """Let the analytics' kernels finish loading before the API's imports start: both are CPU work
    under one GIL, and the first batches wait for the kernels, not for the API (measured: the
    first reading stored a second or more later otherwise, benchmarks/README.md). Bounded, so a
    first start that compiles does not keep /health away for long."""
    if service.analytics is None:
        return
    waiting = asyncio.ensure_future(service.analytics.loaded())
    done, _ = await asyncio.wait({waiting}, timeout=KERNELS_FIRST_S)
    if not done:
        waiting.cancel()  # the load itself goes on (loaded() only waits for it)
    elif not waiting.cancelled():
        waiting.exception()  # a failed load is logged by the analytics; the API starts anyway


async def run_service(settings: Settings) -> int:
    """Serve until a stop signal; returns the process exit code (0 after a clean drain)."""
    keep_large_arrays_off_the_heap()  # memory per series: freed growths go back to the OS (capacity.py)
    service = IngestService(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    server = None
    api_task = None
    if settings.api.enabled:
        await _kernels_first(service)
        server = await asyncio.to_thread(_api_server, service, settings)
        api_task = asyncio.create_task(server.serve(), name="api")
        log.info("API on http://%s:%s (GET /health, /metrics)", settings.api.host, settings.api.port)
    log.info("urbanpulse running; send SIGTERM or press Ctrl-C to stop")
    await stop.wait()
    log.info("stopping: no new messages are pulled; flushing and acknowledging what was received")
    await service.stop()
    if server is not None and api_task is not None:
        server.should_exit = True
        await api_task
    log.info("stopped cleanly: counts %s", dict(service.metrics.tally))
    return 0
