"""Runs the service with its HTTP API until SIGTERM/SIGINT, then shuts down in order.

The start overlaps what it waits for with what it computes (benchmarks/README.md, "The start
overlapped"): the sources start connecting and the database is migrated first
(:class:`~urbanpulse.start_ahead.StartAhead`), the service's modules are imported on a thread
meanwhile; the HTTP API's modules (FastAPI, the routes, uvicorn) are imported and its app built
on a thread beside the service's start while a Kafka group join is still pending (waiting time),
else once the service has started; the API serves after the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from urbanpulse.capacity import keep_large_arrays_off_the_heap
from urbanpulse.config import Settings
from urbanpulse.start_ahead import StartAhead, process_age_s

if TYPE_CHECKING:
    from urbanpulse.service import IngestService

log = logging.getLogger(__name__)


def _api_server(service: IngestService, settings: Settings) -> Any:  # noqa: ANN401 - a uvicorn.Server
    """The API server, its modules imported here: FastAPI, the routes and uvicorn take about half
    a second to import, which the sources' start (a Kafka group join) need not wait for. Called on
    a thread, so the event loop (heartbeats, migrations, the first batches) keeps running meanwhile."""
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


async def _kernels_first(settings: Settings) -> None:
    """Let the analytics' kernels finish loading before the API's imports start: both are CPU work
    under one GIL, and the first batches wait for the kernels, not for the API (measured: the
    first reading stored a second or more later otherwise, benchmarks/README.md). Bounded, so a
    first start that compiles does not keep /health away for long. The kernels built ahead of
    time (aot.py) load in tens of milliseconds, so usually this waits for nearly nothing."""
    if not settings.detection.enabled:
        return
    from urbanpulse.analytics import preload_kernels

    try:
        await asyncio.wait_for(asyncio.wrap_future(preload_kernels()), KERNELS_FIRST_S)
    except asyncio.TimeoutError:
        return  # the load itself goes on
    except Exception:  # noqa: BLE001 - a failed load is logged by the analytics; the API starts anyway
        return


async def _prepared_api(service: IngestService, settings: Settings) -> Any:  # noqa: ANN401 - a uvicorn.Server
    """The API server built (modules imported, app made) beside the service's start."""
    await _kernels_first(settings)
    return await asyncio.to_thread(_api_server, service, settings)


#: the GIL switch interval during the start (CPython's default is 5 ms)
START_SWITCH_INTERVAL_S = 0.001


async def _start(settings: Settings) -> tuple[IngestService, asyncio.Task[Any] | None]:
    """Start the service with everything that can wait on the network begun first (module doc);
    returns the started service and the task building its API server (None: API disabled).
    A failed start closes what was opened and acknowledges nothing."""
    ahead = StartAhead(settings)
    service: IngestService | None = None
    api: asyncio.Task[Any] | None = None
    switch = sys.getswitchinterval()
    # while modules import on threads, the event loop waits for the GIL up to this long per wake-up;
    # the start's round trips (Kafka bootstrap and join, migrations) are many and short
    sys.setswitchinterval(START_SWITCH_INTERVAL_S)
    try:
        ahead.begin()  # sources connect (a Kafka group join is mostly waiting), the database migrates
        module = await asyncio.to_thread(importlib.import_module, "urbanpulse.service")
        if settings.detection.enabled:
            from urbanpulse.analytics import preload_kernels

            preload_kernels()  # imported by the line above: the kernels load from here on, on their thread
        service = module.IngestService(settings, ahead=ahead)
        # the API's imports are CPU under the GIL: beside the start only while a source still waits
        # for its Kafka group join (idle time: the broker holds the answer), else after the start
        joining = any(getattr(src, "joining", False) for src in ahead.sources)
        if settings.api.enabled and joining:
            api = asyncio.create_task(_prepared_api(service, settings), name="api-import")
        await service.start()
        if settings.api.enabled and api is None:
            api = asyncio.create_task(_prepared_api(service, settings), name="api-import")
    except BaseException:
        if api is not None:
            api.cancel()
            await asyncio.gather(api, return_exceptions=True)
        if service is not None:
            with contextlib.suppress(Exception):
                await service.stop()
        await ahead.abandon()
        raise
    finally:
        sys.setswitchinterval(switch)
    return service, api


async def run_service(settings: Settings) -> int:
    """Serve until a stop signal; returns the process exit code (0 after a clean drain)."""
    keep_large_arrays_off_the_heap()  # memory per series: freed growths go back to the OS (capacity.py)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    service, prepared = await _start(settings)
    age = process_age_s()
    log.info("started%s; sources %s", f" {age:.2f} s after the process" if age is not None else "",
             ", ".join(src.name for src in service.sources) or "none")
    server = None
    api_task = None
    if prepared is not None:
        server = await prepared
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
