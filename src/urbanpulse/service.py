"""The running service: database, pipeline, sources and API wired together, with an orderly stop.

Start order: database (embedded if none is configured) -> migrations -> pool -> pipeline ->
sources, while the analytics' compiled kernels load on a thread of their own from the first
line on (analytics.py): a source's first batches wait for them, unacknowledged, instead of the
sources waiting to start (the Kafka group join alone takes seconds). Under `urbanpulse run` the
sources' connections (MQTT connect, the Kafka group join) and the migrations begin even earlier,
before this module is imported (start_ahead.py); the sources take nothing before the pipeline
runs. Stop order (SIGTERM/SIGINT): sources stop pulling -> partial batches flush -> acks and
commits go out -> pool closes -> embedded database stops.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence

import asyncpg

from urbanpulse.analytics import StreamAnalytics, preload_kernels
from urbanpulse.config import Settings
from urbanpulse.connectors.base import Source
from urbanpulse.connectors.poison import PoisonGuard
from urbanpulse.connectors.supervisor import SourceSupervisor
from urbanpulse.connectors.suspects import SuspectStore
from urbanpulse.errors import ConfigError, StorageUnavailable
from urbanpulse.formats.base import DecodeLimits, Format
from urbanpulse.formats.router import HTTP_SOURCE, build_router
from urbanpulse.http_ingest.submit import HttpIngestor
from urbanpulse.live.feed import LiveFeed
from urbanpulse.metrics import AnalyticsCollector, IngestMetrics, RollupCollector
from urbanpulse.pipeline import Pipeline
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator, TimeRules
from urbanpulse.privacy.retention import ClassRetention
from urbanpulse.privacy.stage import build_privacy_stage
from urbanpulse.registry.membership import RegisteredSensors
from urbanpulse.source_plugins import build_sources
from urbanpulse.start_ahead import StartAhead, connect_with_retry, migrated_database, resolve_dsn
from urbanpulse.storage.migrations import StorageMode
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.retention import Retention, RetentionPlan
from urbanpulse.storage.rollups import RollupPolicy
from urbanpulse.storage.source_registry import register_sources
from urbanpulse.storage.writer import ReadingStore, prepare_connection

log = logging.getLogger(__name__)

__all__ = ["IngestService", "connect_with_retry", "resolve_dsn"]  # the two live in start_ahead (imported early)


class IngestService:
    """Everything `urbanpulse run` keeps alive; also used directly by the demo and tests."""

    def __init__(self, settings: Settings, sources: Sequence[Source] | None = None,
                 fmt: Format | None = None, ahead: StartAhead | None = None) -> None:
        self.settings = settings
        self.fmt = fmt  # None: the canonical JSON format with the configured limits
        #: what `urbanpulse run` began before importing this module (sources connecting, migrations)
        self.ahead = ahead
        self.metrics = ahead.metrics if ahead is not None and ahead.metrics is not None else IngestMetrics()
        self.extra_sources = list(sources or [])
        self.sources: list[Source] = []
        self.supervisors: list[SourceSupervisor] = []
        self.poison: PoisonGuard | None = None
        self.storage_mode: StorageMode | None = None
        self.dsn: str | None = None
        self.pool: asyncpg.Pool | None = None
        self.pipeline: Pipeline | None = None
        self.store: ReadingStore | None = None
        self.analytics: StreamAnalytics | None = None
        self.stopping = asyncio.Event()
        self._embedded: object | None = None
        self._source_tasks: list[asyncio.Task[None]] = []
        #: registered sensor ids and expected intervals (the ingest check, silence, quality)
        self.registered = RegisteredSensors()
        self._registry_task: asyncio.Task[None] | None = None
        self.retention: Retention | None = None
        #: POST /ingest's way into the pipeline (None until started)
        self.http_ingest: HttpIngestor | None = None
        self._retention_task: asyncio.Task[None] | None = None
        self._freeze_task: asyncio.Task[None] | None = None
        self._purge_task: asyncio.Task[None] | None = None
        #: the latest committed readings for the live page (fed by stream analytics)
        self.live = LiveFeed(settings.live)

    async def start(self) -> None:
        """Connect, migrate and start pulling from every enabled source."""
        s = self.settings
        if s.detection.enabled:
            preload_kernels()  # the slowest part of a start (~1-2 s): beside everything below
        v = s.validation
        # formats first: a misconfigured or broken format plugin stops start-up before anything runs
        fmt = self.fmt or (self.ahead.fmt if self.ahead is not None else None) or build_router(
            s, DecodeLimits(v.max_payload_bytes, v.max_json_depth), MetricCatalogue.load(v.catalogue, v.metrics))
        if self.ahead is not None:  # built, and connecting, since before this module was imported
            configured_sources = list(self.ahead.sources)
        else:
            configured_sources = build_sources(s, self.metrics)  # by entry-point name; bad ones stop start-up here
        if any(src.name == HTTP_SOURCE for src in configured_sources):
            raise ConfigError(f"invalid configuration: sources: the name {HTTP_SOURCE!r} is HTTP ingest's; give "
                              f"that source another `name`")
        # a personal class without its pseudonym key stops start-up here
        privacy = build_privacy_stage(s.privacy, self.registered.class_map)
        # migrated ahead, beside the imports (start_ahead.py), or here
        database = self.ahead.database() if self.ahead is not None else migrated_database(s)
        self.dsn, self._embedded, self.storage_mode = await database
        log.info("storage mode: %s", self.storage_mode)
        deferred = bool(s.database.rollups.enabled) and s.database.rollups.flush_every_s > 0
        # deferred rollups hold one connection for their writer's liveness lock and flush on another
        self.pool = self.live.pool = await asyncpg.create_pool(
            self.dsn, min_size=2, max_size=max(s.database.pool_size, s.ingest.writers + 1) + (2 if deferred else 0),
            init=prepare_connection)
        partitions = None
        if self.storage_mode == "postgres":
            partitions = MonthlyPartitions()
            async with self.pool.acquire() as c:
                await partitions.load(c)
        self._start_retention(partitions)
        v = s.validation
        # read once per start: the one the formats were built with ahead, else read here (~5 ms of YAML)
        catalogue = (self.ahead.catalogue if self.ahead is not None and self.ahead.catalogue is not None
                     else MetricCatalogue.load(v.catalogue, v.metrics))
        store = self.store = ReadingStore(self.pool, partitions, v.quarantine_payload_limit,
                                          rollups=bool(s.database.rollups.enabled),
                                          rollup_flush_s=s.database.rollups.flush_every_s)
        if privacy is not None:  # new series are recorded with their message's data class
            store.series.class_of = privacy.class_of_sensor
        if store.rollups is not None:
            store.rollups.policy = RollupPolicy.from_settings(s.database.rollups, store.series.key_of,
                                                              self.registered.expected_interval)
            # rows of levels a series no longer keeps: deleted beside ingest, never in a batch
            self._purge_task = asyncio.create_task(store.rollups.keep_purging(self.pool, self.stopping),
                                                   name="rollup-purge")
        await self.registered.refresh(self.pool)
        self._registry_task = asyncio.create_task(self.registered.keep_fresh(self.pool, s.registry.refresh_s),
                                                  name="registry-refresh")
        validator = ReadingValidator(catalogue, TimeRules(v.max_future_skew_s, v.max_age_s, v.min_event_time_s, v.max_message_days),
                                     known_sensors=self.registered if s.registry.unregistered == "quarantine" else None)
        if s.detection.enabled:
            store.series.keep_created()  # new series skip the history lookup (nothing is stored for them)
            self.analytics = StreamAnalytics(s, self.pool, self.registered.expected_interval,
                                             created_here=store.series.created_here,
                                             sensors_of=store.series.sensors_of)
            await self.analytics.start(background=True)  # batches wait in prepare() until it is loaded
            self.analytics.live, self.live.fed = self.live, True
            self.live.alert_hub = self.analytics.alerts.hub  # alert changes ride on the pages' one stream
            self.metrics.registry.register(AnalyticsCollector(self.analytics))
        if store.rollup_buffer is not None:
            self.metrics.registry.register(RollupCollector(store.rollup_buffer))
        self.pipeline = Pipeline(store, fmt, validator, s.ingest, self.metrics, self.analytics, privacy=privacy)
        await self.pipeline.start()
        self.sources = configured_sources + self.extra_sources
        store.source_ids.update(await register_sources(self.pool, [src.name for src in self.sources] + [HTTP_SOURCE]))
        self.http_ingest = HttpIngestor(self.pipeline, s.http_ingest.ack_timeout_s, s.http_ingest.max_readings)
        freeze_long_lived_objects(collect=False)  # the first batches wait for this one: no full collection
        if self.analytics is not None:  # after the freeze above, so its collection walks only what came since
            self._freeze_task = asyncio.create_task(self._freeze_once_loaded(self.analytics), name="gc-freeze")
        _collect_less_often()
        self.metrics.gc_pauses.watch()  # urbanpulse_gc_pause_seconds: the event loop's stalls
        self.poison = PoisonGuard(SuspectStore(self.pool), s.supervision.forget_suspects_after_s)
        await self.poison.load()
        self.supervisors = [SourceSupervisor(src, self.pipeline, self.metrics, s.supervision, self.poison)
                            for src in self.sources]
        for sup in self.supervisors:
            self._source_tasks.append(asyncio.create_task(sup.run(self.stopping), name=f"source-{sup.name}"))

    @staticmethod
    async def _freeze_once_loaded(analytics: StreamAnalytics) -> None:
        """The kernels' objects (Numba's, when they are not built ahead of time) arrive after
        start() froze the rest: freeze again once they are in, without a full collection first.
        Kernels built ahead of time are usually loaded by the end of the start (the collection then
        took 0.0-1.2 ms), but where they load later it falls in a backlog's drain and walks every
        object of the batches in flight, on the event loop, to free the few import-time cycles
        loading leaves (benchmarks/README.md ``spawn19``, ``spawn20``)."""
        try:
            await analytics.loaded()
        except Exception:  # noqa: BLE001 - already logged by analytics; nothing more to freeze
            return
        freeze_long_lived_objects(collect=False)

    def _start_retention(self, partitions: MonthlyPartitions | None) -> None:
        """Old partitions and rows leave in the background (storage/retention.py)."""
        r = self.settings.database.retention
        self.retention = Retention(self.pool, self.storage_mode, RetentionPlan.from_settings(r), partitions,
                                   self.metrics.registry,
                                   classes=ClassRetention(self.settings.privacy, r.delete_batch_rows))
        self._retention_task = asyncio.create_task(self.retention.run(self.stopping, r.check_every),
                                                   name="retention")

    @property
    def alerts(self):  # noqa: ANN201 - AlertService | None; the API's alert routes use it
        """The alert components, when stream analytics run in this process."""
        return self.analytics.alerts if self.analytics is not None else None

    async def stop(self) -> None:
        """Stop pulling, write and acknowledge everything received, close. Idempotent."""
        self.stopping.set()
        self.metrics.gc_pauses.unwatch()
        if self._source_tasks:
            await asyncio.gather(*self._source_tasks, return_exceptions=True)
            self._source_tasks = []
        for name in ("_retention_task", "_purge_task"):
            task = getattr(self, name)
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                setattr(self, name, None)
        if self.http_ingest is not None:
            await self.http_ingest.close()
        if self.pipeline is not None:
            await self.pipeline.stop()
        if self.store is not None:
            await self.store.close()  # the rollups held in memory are written
            self.store = None
        if self._freeze_task is not None:
            self._freeze_task.cancel()
            await asyncio.gather(self._freeze_task, return_exceptions=True)
            self._freeze_task = None
        if self.analytics is not None:
            await self.analytics.stop()
        await self.live.close()
        if self._registry_task is not None:
            self._registry_task.cancel()
            await asyncio.gather(self._registry_task, return_exceptions=True)
            self._registry_task = None
        if self.pool is not None:
            await self.pool.close()
            self.pool = self.live.pool = None
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)  # type: ignore[attr-defined]
            self._embedded = None

    async def health(self) -> dict[str, object]:
        """Database reachability, storage mode and each source's state."""
        db: dict[str, object] = {"mode": self.storage_mode}
        ok = False
        if self.pool is not None:
            try:
                async with self.pool.acquire(timeout=2) as c:
                    await c.fetchval("SELECT 1", timeout=2)
                ok = self.pipeline is None or self.pipeline.database_ok
            except Exception as exc:  # noqa: BLE001 - health reports, never raises
                db["error"] = str(exc)
        if self.pipeline is not None and self.pipeline.last_error and not self.pipeline.database_ok:
            db["error"] = self.pipeline.last_error
        db["ok"] = ok
        brokers = {sup.name: sup.health() for sup in self.supervisors}
        halted = dict(self.pipeline.halted) if self.pipeline is not None else {}
        if halted:  # a batch failed with a permanent write error: those sources' acks are held back
            db["halted_sources"] = halted
            ok = False
        buffer = self.store.rollup_buffer if self.store is not None else None
        if buffer is not None:  # deferred rollups: a failing flush delays them (nothing is lost)
            rollups = buffer.health()
            db["rollups"] = rollups
            ok = ok and bool(rollups["ok"])
        healthy = ok and all(b.get("connected", True) for b in brokers.values())
        return {"status": "ok" if healthy else "degraded", "storage_mode": self.storage_mode,
                "database": db, "brokers": brokers, "counts": dict(self.metrics.tally)}


def freeze_long_lived_objects(collect: bool = True) -> None:
    """Take what start-up loaded (libraries, compiled kernels, settings, app) out of the garbage
    collector's sight: it lives as long as the process, yet every full collection would walk it
    again, and the ingest path allocates enough short-lived objects per Kafka message to trigger
    collections all the time. Measured here: with numba's ~120k objects loaded, allocation-heavy
    code ran 3x slower until frozen (benchmarks/README.md).

    ``collect``: collect the garbage first. The start's own freeze does not: a full collection of
    the ~105,000 objects a start has loaded took 50-125 ms on the event loop, just as the first
    batches arrive, to free about 1,250 objects (~0.5 MB, import-time reference cycles; measured
    with ``gc.DEBUG_SAVEALL``, benchmarks/README.md ``spawn16``), which now stay frozen instead; nor
    does the freeze once the kernels are loaded (it falls in a backlog's drain, ``spawn20``). The API's
    freeze, once it is built after a catch-up, collects first; frozen objects are not walked again.
    Frozen objects are still freed when their last reference goes: only garbage in reference cycles
    at the moment of a freeze is kept."""
    if collect:
        gc.collect()
    gc.freeze()


#: the collector's (young, middle, full) thresholds under `urbanpulse run`; CPython's are (700, 10, 10)
GC_THRESHOLDS = (100_000, 50, 20)


def _collect_less_often() -> None:
    """Collect young objects every 100,000 allocations instead of 700. A Kafka fetch allocates a
    record object per message and keeps it until its batch is formed, so with the default
    thresholds nearly every collection finds them alive and promotes them; the older
    generations then fill with soon-dead records and a full collection (one event-loop stall of
    100-500 ms on this machine, ``urbanpulse_gc_pause_seconds``) came every few seconds. With a
    bigger young generation most records die before they are looked at, and full collections
    become rare (benchmarks/README.md, alert latency). Reference cycles are still collected."""
    gc.set_threshold(*GC_THRESHOLDS)
