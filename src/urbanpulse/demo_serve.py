"""``urbanpulse demo --serve``: the Beijing replay behind the full service, for a person to look at.

What it sets up, in order: a database of its own (on the embedded server a fresh ``urbanpulse_demo``
database every start, so each run shows its alerts again); the schema; the replayed stations in
the registry at their real positions (:mod:`urbanpulse.demo_stations`); an operator key made with
the keys module; the service with its API, the open-data scope on (visitors read open series
without a key); then the paced replay (:mod:`urbanpulse.demo_feed`) with incidents
(:mod:`urbanpulse.demo_incidents`) placed so the detectors raise alerts within a minute; by
default on the live clock (each replayed hour stamped when it is sent, so the page and any
"last hour" view show it as it comes; :mod:`urbanpulse.demo_feed`). It
prints the URL to open and the key, serves until SIGTERM/Ctrl-C, then stops in the service's
order (sources, flush, acks, pool, database) and prints the demo's usual accounting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import uvicorn

from urbanpulse.api.app import create_app
from urbanpulse.auth.keys import KeyStore
from urbanpulse.config import Settings
from urbanpulse.datasets import DatasetNotFoundError
from urbanpulse.datasets.beijing import DATASET_NAME, StationData, read_station, station_files
from urbanpulse.demo_feed import HourlyFeed, PacedReplaySource
from urbanpulse.demo_incidents import DETECTOR_OF, EVERY_HOURS, Incident, Spike, Stuck, default_schedule, inject
from urbanpulse.demo_stations import registry_entries
from urbanpulse.errors import UrbanpulseError
from urbanpulse.registry.store import get_sensor, save_sensor
from urbanpulse.service import IngestService, connect_with_retry
from urbanpulse.storage.migrations import migrate
from urbanpulse.storage.timescale import configured_policies

#: the twelve stations' March 2013, shipped with the package (datasets/sample_city/README.md)
BUNDLED_CITY = Path(__file__).parent / "datasets" / "sample_city"
#: the embedded server's database the serve demo recreates on every start
DEMO_DATABASE = "urbanpulse_demo"
#: with the original clock, alerts stay open this many closed windows without a new trigger:
#: with hourly readings two replayed days, long enough to find and acknowledge one at 3600x,
#: short enough that the open alerts are the recent ones
RESOLVE_AFTER_WINDOWS = 48


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the demo decides when the API stops (after the
    replay stopped and what it sent is stored), as ``urbanpulse run`` does."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class DemoError(UrbanpulseError):
    """The serve demo cannot start as asked; the message says what to change."""


@dataclass(frozen=True)
class ServeOptions:
    """The command line of ``urbanpulse demo --serve`` (see its ``--help``)."""

    stations: int = 12
    hours: int | None = None
    datasets: Path | None = None
    speed: float = 3600.0
    clock: str = "live"  # or "original" (demo_feed)
    backlog: int = 48
    loop: bool = False
    incidents: bool = True
    host: str | None = None
    port: int | None = None

    @property
    def hours_per_second(self) -> float:
        return self.speed / 3600.0

    @property
    def live_clock(self) -> bool:
        return self.clock == "live"

    @property
    def interval_s(self) -> float:
        """How often a station reports, as the registry says: each replayed hour with the live
        clock is ``1 / hours_per_second`` seconds; with the original clock an hour."""
        return 1.0 / self.hours_per_second if self.live_clock else 3600.0


def load_stations(opts: ServeOptions) -> tuple[list[StationData], str | None]:
    """The station files to replay, and a note when the bundled month stands in for the dataset."""
    try:
        files = station_files(opts.datasets / DATASET_NAME if opts.datasets else None)
        note = None
    except DatasetNotFoundError:
        if opts.datasets is not None:
            raise
        files = station_files(BUNDLED_CITY)
        note = "dataset folder not found: replaying the bundled month (March 2013) of all twelve stations"
    if opts.stations < 3:
        raise DemoError(f"--serve needs --stations 3 or more (the incidents go to three different stations), "
                        f"got {opts.stations}")
    return [read_station(f) for f in files[:opts.stations]], note


async def _fresh_embedded_database(settings: Settings) -> tuple[str, object]:
    """Start the embedded server and recreate :data:`DEMO_DATABASE` on it (a replay of hours
    already stored would store nothing and raise no alerts)."""
    from urbanpulse.embedded_db import EmbeddedPostgres

    server = EmbeddedPostgres(Path(settings.database.embedded_data_dir), database=DEMO_DATABASE)
    dsn = await asyncio.to_thread(server.start)
    try:
        admin = await connect_with_retry(server.dsn_for("postgres"), settings.database.connect_timeout_s)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{DEMO_DATABASE}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{DEMO_DATABASE}"')
        finally:
            await admin.close()
    except BaseException:
        await asyncio.to_thread(server.stop)
        raise
    return dsn, server


async def prepare_database(dsn: str, settings: Settings, stations: list[StationData], fresh: bool,
                           interval_s: float = 3600.0, registered_from: datetime | None = None) -> str:
    """Schema, the stations in the registry, and a new operator key (returned, the only copy).

    ``registered_from``: when the stations' registration starts (:func:`registration_start`: at the
    first replayed reading). Registered from 1900 (the registry's default), every station
    "expected" a reading every interval all day before the demo began, and the page's data quality
    showed ~2 % completeness and a gap of a day for every series of a healthy replay. A station
    already registered (a configured database used before) keeps its versions.

    On a configured database (``fresh`` False) that already holds readings of these stations
    :class:`DemoError` says so: the replay would add nothing there."""
    conn = await connect_with_retry(dsn, settings.database.connect_timeout_s)
    try:
        await migrate(conn, settings.database.storage_mode, configured_policies(settings.database))
        ids = [d.sensor_id for d in stations]
        if not fresh and await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM series s JOIN readings r ON r.series_id = s.id "
                "WHERE s.sensor_id = ANY($1::text[]))", ids):
            raise DemoError("the configured database already holds readings of the demo's Beijing stations, so a "
                            "replay would store nothing new and raise no alerts: point --config at an empty "
                            "database, or run without --config (the embedded database is made fresh each start)")
        for sensor in registry_entries(stations, interval_s=interval_s):
            known = await get_sensor(conn, sensor.id) is not None
            await save_sensor(conn, sensor, None if known else registered_from)
        created = await KeyStore(conn).create("demo operator", "operator", created_by="urbanpulse demo --serve")
        return created.secret
    finally:
        await conn.close()


def registration_start(source: PacedReplaySource, now: datetime | None = None) -> datetime:
    """When the demo's stations start to be registered: no later than the first reading the replay
    will send. The live clock stamps the backlog just before the replay starts (one interval apart,
    the first ``backlog`` intervals before its start, which is after ``now``); the original clock
    sends the dataset's own first hour."""
    if source.live_clock:
        now = now or datetime.now(timezone.utc)
        return now - timedelta(milliseconds=(source.backlog + 1) * source.interval_ms)
    return datetime.fromtimestamp(source.feed.ts_ms(0) / 1000, timezone.utc)


def _check_port_free(host: str, port: int) -> None:
    """A clear error before anything starts, instead of uvicorn exiting the process."""
    with contextlib.closing(socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise DemoError(f"cannot serve on {host}:{port} ({exc.strerror}); choose another with --port, or stop "
                            f"what listens there") from exc


async def has_page(base: str) -> bool:
    """Whether the service answers ``/`` with a web page for a visitor without a key (the page is
    its own piece of work; a build without it points the visitor to the API documentation)."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO line per request is noise here
    async with httpx.AsyncClient(timeout=10) as client:
        try:
            r = await client.get(base)
        except httpx.HTTPError:
            return False
    return r.status_code == 200 and r.headers.get("content-type", "").startswith("text/html")


def browser_address(host: str, port: int) -> str:
    """The service's base URL as a browser on this machine reaches it (loopback when it listens on
    every address)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def browser_hint(base: str, page: bool, host: str, port: int) -> str:
    """The line that tells a person where to point the browser."""
    listening = "" if f"//{host}:" in base else f" (listening on {host}:{port})"
    if page:
        return (f"open {base} in a browser{listening}: visitors read open data without a key; API documentation at "
                f"{base}docs")
    return f"open {base}docs in a browser{listening} (API documentation; visitors read open data without a key)"


def _when(feed: HourlyFeed, hour: int) -> str:
    return datetime.fromtimestamp(feed.ts_ms(hour) / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def describe_incidents(incidents: list[Incident], feed: HourlyFeed, opts: ServeOptions) -> list[str]:
    """One line per incident: what, where, when in replayed time and in seconds after the backlog."""
    lines = []
    for inc in incidents:
        first = inc.hours().start
        after = max(0.0, (first - opts.backlog) / opts.hours_per_second)
        if isinstance(inc, Spike):
            what = f"spike: {inc.metric} at {inc.station} jumps at {_when(feed, first)}"
        elif isinstance(inc, Stuck):
            what = f"stuck sensor: {inc.metric} at {inc.station} repeats one value for {inc.length} h from {_when(feed, first)}"
        else:
            what = f"silence: {inc.station} sends nothing for {inc.length} h from {_when(feed, first)}"
        lines.append(f"  {what} (~{after:.0f} s in; alert by the {DETECTOR_OF[type(inc)]} detector)")
    return lines


async def serve_demo(settings: Settings, opts: ServeOptions) -> int:
    """Run the serve demo until SIGTERM/SIGINT; returns the exit code (0 after a clean stop)."""
    from urbanpulse.demo import analytics_summary, print_accounting

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    s = settings.model_copy(deep=True)
    s.validation.max_age_s = None  # history from 2013: the "too old" horizon is for live feeds
    s.api.enabled, s.api.open_data = True, True
    s.api.host = opts.host or s.api.host
    s.api.port = opts.port if opts.port is not None else s.api.port
    # every station comes through the one replay source, and the demo's silence incident is one station
    # going quiet: keep one alert per series so the page marks that station (grouping counts sensors, so
    # the default would do the same for one station; this also keeps it so if incidents ever overlap)
    s.alerts.silence_group_min = 0
    if opts.live_clock:
        # a reading trailing the newest by more than this is late, and silence waits this much longer:
        # two of the live clock's intervals (60 s would hide a silence of 12 replayed hours at 3600x)
        s.windows.allowed_lateness_s = min(s.windows.allowed_lateness_s, max(0.1, 2 * opts.interval_s))
    else:  # one-minute windows hold one reading an hour: stay open two replayed days, not three hours
        s.alerts.resolve_after_windows = max(s.alerts.resolve_after_windows, RESOLVE_AFTER_WINDOWS)
    _check_port_free(s.api.host, s.api.port)
    data, note = load_stations(opts)
    if note:
        print(note, flush=True)
    span = min(len(d) for d in data) if opts.hours is None else max(1, min(opts.hours, *(len(d) for d in data)))
    first_paced = min(opts.backlog, span - 1)
    incidents = default_schedule([d.station for d in data], first_paced, span) if opts.incidents else []
    feed = HourlyFeed([inject(d, incidents) for d in data], opts.hours)
    source = PacedReplaySource(feed, opts.hours_per_second, backlog=opts.backlog, loop=opts.loop,
                               live_clock=opts.live_clock)

    embedded = None
    if s.database.dsn:
        dsn = s.database.dsn
    else:
        dsn, embedded = await _fresh_embedded_database(s)
    service = None
    server = None
    api_task = None
    started = time.perf_counter()
    try:
        key = await prepare_database(dsn, s, data, fresh=embedded is not None, interval_s=opts.interval_s,
                                     registered_from=registration_start(source))
        s.database.dsn = dsn  # the service uses this database; the demo owns the embedded server
        service = IngestService(s, [source])
        await service.start()
        server = _ApiServer(uvicorn.Config(create_app(service), host=s.api.host, port=s.api.port, log_level="warning", lifespan="off"))
        api_task = asyncio.create_task(server.serve(), name="api")
        while not server.started and not api_task.done():
            await asyncio.sleep(0.05)
        if not server.started:
            raise DemoError(f"the API did not start on {s.api.host}:{s.api.port}; see the log above")
        span = f"{_when(feed, 0)} .. {_when(feed, feed.hours - 1)}"
        print(f"\nreplaying {len(data)} Beijing stations ({', '.join(d.station for d in data)}), data of {span}, "
              f"registered at their real positions", flush=True)
        print(f"  speed {opts.speed:g}x ({opts.hours_per_second:g} replayed hour(s) a second) after a backlog of "
              f"{source.backlog} h; {'looping' if opts.loop else 'then the service stays up with what was stored'}")
        if opts.live_clock:
            print(f"  live clock: each replayed hour is stamped with the time it is sent (a station reports every "
                  f"{opts.interval_s:g} s); --clock original keeps the dataset's dates")
        if incidents:
            print(f"injected incidents, a round every {EVERY_HOURS} replayed hours on other stations; the first:")
            print("\n".join(describe_incidents(incidents[:3], feed, opts)))
        base = browser_address(s.api.host, s.api.port)
        print(f"\n{browser_hint(base, await has_page(base), s.api.host, s.api.port)}")
        print("operator key (acknowledge and resolve alerts; shown once, store it now):")
        print(f"  {key}")
        print("stop with Ctrl-C (or SIGTERM)", flush=True)
        finished = asyncio.create_task(source.finished.wait())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({finished, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if finished.done() and not stop.is_set():
            print(f"replay finished (data up to {source.replayed_to()}); still serving (Ctrl-C stops)", flush=True)
        await stop.wait()
        stopping.cancel()
        finished.cancel()
        print("\nstopping: the replay stops, what was received is stored, then the database stops", flush=True)
        analysed = await analytics_summary(service)
    finally:
        if service is not None:
            await service.stop()
        if server is not None and api_task is not None:
            server.should_exit = True
            await asyncio.gather(api_task, return_exceptions=True)
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)  # type: ignore[attr-defined]
    return print_accounting(service, data, None, time.perf_counter() - started, analysed)
