"""Runs the service with its HTTP API until SIGTERM/SIGINT, then shuts down in order.

The start overlaps what it waits for with what it computes (benchmarks/README.md, "The start
overlapped"): the sources start connecting and the database is migrated first
(:class:`~urbanpulse.start_ahead.StartAhead`), the service's modules are imported on a thread
meanwhile. The API's port opens once the service has started, first with the interim answers of
:class:`~urbanpulse.api.interim.ApiWhileBuilding` (/metrics, /health 503 starting, the rest 503
Retry-After); the full app (FastAPI, the routes: 0.2-0.4 s of CPU) is built on a thread beside the
start while a Kafka group join is still pending (waiting time), else once the process is not busy
(a backlog's catch-up keeps it busy), at the latest ``api.build_defer_s`` after the start
(benchmarks/README.md, ``spawn16``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import signal
import sys
import time
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

from urbanpulse.capacity import keep_large_arrays_off_the_heap
from urbanpulse.config import Settings
from urbanpulse.heap_reuse import keep_freed_heap
from urbanpulse.start_ahead import StartAhead, process_age_s

if TYPE_CHECKING:
    from urbanpulse.service import IngestService

log = logging.getLogger(__name__)


def _api_server(app: Any, settings: Settings) -> Any:  # noqa: ANN401 - an ASGI app; a uvicorn.Server
    """The API's server, serving ``app`` (an :class:`~urbanpulse.api.interim.ApiWhileBuilding`)."""
    import uvicorn

    class _ApiServer(uvicorn.Server):
        """uvicorn without its own signal handling: the service decides when the API stops."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn.Config(app, host=settings.api.host, port=settings.api.port, log_level="warning", lifespan="off")
    return _ApiServer(config)


def _full_app(service: IngestService) -> Any:  # noqa: ANN401 - a FastAPI app
    """The full API, its modules imported here: FastAPI, the routes and their models take 0.2-0.4 s
    of CPU to import. Called on a thread, so the event loop keeps running meanwhile."""
    from urbanpulse.api.app import create_app

    return create_app(service)


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
        # shielded: wait_for cancels what it waits for at the timeout, and the load is shared with the
        # analytics, which must go on waiting for it (a cancelled load left them unbuilt for good)
        await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(preload_kernels())), KERNELS_FIRST_S)
    except asyncio.TimeoutError:
        return  # the load itself goes on
    except Exception:  # noqa: BLE001 - a failed load is logged by the analytics; the API starts anyway
        return


#: the window over which the process's CPU is measured (busy: at least ``api.build_below_cores``)
BUSY_WINDOW_S = 0.5


async def until_not_busy(at_most_s: float, below_cores: float, window_s: float = BUSY_WINDOW_S) -> None:
    """Return once this process used less than ``below_cores`` of CPU (all its threads) over the
    last ``window_s``, or after ``at_most_s``. With a backlog waiting the service is CPU-bound
    (about one core: the event loop, the kernels' thread); caught up, or ingesting a live stream
    at a modest rate, it is mostly idle."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + at_most_s
    t0, c0 = loop.time(), time.process_time()
    while (left := deadline - loop.time()) > 0:
        await asyncio.sleep(min(window_s, left))
        t1, c1 = loop.time(), time.process_time()
        if t1 > t0 and (c1 - c0) / (t1 - t0) < below_cores:
            return
        t0, c0 = t1, c1


async def _built_app(service: IngestService, settings: Settings, defer: bool) -> Any:  # noqa: ANN401 - FastAPI
    """The full API built; ``defer``: first wait while the service is busy (:func:`until_not_busy`,
    at most ``api.build_defer_s``), so a backlog's first seconds of CPU go to ingest."""
    await _kernels_first(settings)
    if defer and settings.api.build_defer_s > 0:
        await until_not_busy(settings.api.build_defer_s, settings.api.build_below_cores)
    return await asyncio.to_thread(_full_app, service)


#: what serving the API's port imports (uvicorn's server and protocols, the interim app)
API_PORT_MODULES = ("uvicorn", "uvicorn.protocols.http.auto", "uvicorn.protocols.websockets.auto",
                    "uvicorn.lifespan.off", "urbanpulse.api.interim")


def _import_for_start(api: bool) -> ModuleType:
    """The service's module, and with the API on what serving its port needs: imported on a thread
    while the event loop waits for the sources' connections and the migrations, instead of on the
    event loop once the service has started, where the first batches wait for them."""
    module = importlib.import_module("urbanpulse.service")
    if api:
        for name in API_PORT_MODULES:
            importlib.import_module(name)
    return module


#: the GIL switch interval during the start (CPython's default is 5 ms)
START_SWITCH_INTERVAL_S = 0.001


async def _start(settings: Settings) -> tuple[IngestService, asyncio.Task[Any] | None]:
    """Start the service with everything that can wait on the network begun first (module doc);
    returns the started service and the task building its full API app (None: API disabled).
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
        module = await asyncio.to_thread(_import_for_start, settings.api.enabled)
        if settings.detection.enabled:
            from urbanpulse.analytics import preload_kernels

            preload_kernels()  # imported by the line above: the kernels load from here on, on their thread
        service = module.IngestService(settings, ahead=ahead)
        # the API's imports are CPU under the GIL: beside the start only while a source still waits
        # for its Kafka group join (idle time: the broker holds the answer), else after the start
        joining = any(getattr(src, "joining", False) for src in ahead.sources)
        if settings.api.enabled and joining:
            api = asyncio.create_task(_built_app(service, settings, defer=False), name="api-build")
        await service.start()
        if settings.api.enabled and api is None:  # built once the service is not busy (api/interim.py)
            api = asyncio.create_task(_built_app(service, settings, defer=True), name="api-build")
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


async def _install_when_built(gate: Any, building: asyncio.Task[Any], failed: list[BaseException],  # noqa: ANN401
                              stop: asyncio.Event) -> None:
    """Swap the full app in once built; a build that fails stops the service (``failed`` says why)."""
    try:
        gate.app = await building
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported: the service stops and the process exits non-zero
        log.error("the HTTP API could not be built (%s: %s); stopping", type(exc).__name__, exc)
        failed.append(exc)
        stop.set()
        return
    from urbanpulse.service import freeze_long_lived_objects

    freeze_long_lived_objects()  # the app's routes and models live as long as the process
    age = process_age_s()
    log.info("API complete%s", f" {age:.2f} s after the process started" if age is not None else "")


async def run_service(settings: Settings) -> int:
    """Serve until a stop signal; returns the process exit code (0 after a clean drain)."""
    keep_large_arrays_off_the_heap()  # memory per series: freed growths go back to the OS (capacity.py)
    keep_freed_heap(settings.ingest.heap_keep_mb)  # a batch's freed memory kept for the next (heap_reuse.py)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        service, building = await _start(settings)
    finally:
        gc.enable()  # `urbanpulse run` imports with the collector off (cli.py); the service set its thresholds
    age = process_age_s()
    log.info("started%s; sources %s", f" {age:.2f} s after the process" if age is not None else "",
             ", ".join(src.name for src in service.sources) or "none")
    server = api_task = install = None
    failed: list[BaseException] = []
    if building is not None:
        from urbanpulse.api.interim import ApiWhileBuilding

        gate = ApiWhileBuilding(service)
        install = asyncio.create_task(_install_when_built(gate, building, failed, stop), name="api-install")
        server = _api_server(gate, settings)
        api_task = asyncio.create_task(server.serve(), name="api")
        log.info("API on http://%s:%s (GET /health, /metrics; every other endpoint once the service is not busy "
                 "catching up)", settings.api.host, settings.api.port)
    log.info("urbanpulse running; send SIGTERM or press Ctrl-C to stop")
    await stop.wait()
    log.info("stopping: no new messages are pulled; flushing and acknowledging what was received")
    if install is not None and building is not None:
        for task in (install, building):
            task.cancel()
        await asyncio.gather(install, building, return_exceptions=True)
    await service.stop()
    if server is not None and api_task is not None:
        server.should_exit = True
        await api_task
    if failed:
        raise failed[0]
    log.info("stopped cleanly: counts %s", dict(service.metrics.tally))
    return 0
