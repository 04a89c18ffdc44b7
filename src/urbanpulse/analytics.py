"""Stream analytics on the ingest path: windows, detectors and alerts, batch by batch.

Every batch is analysed when the pipeline forms it, strictly in batch order, and what it
changes about alerts is written in the same transaction as the batch's readings. So after a
crash either both the readings and their alert changes are stored, or neither is and the
broker redelivers the batch. A series seen for the first time by this process (a restart, a
Kafka rebalance, an evicted series coming back) has its detectors warmed from its last stored
readings; readings the detectors have already seen (redeliveries) are not scored again, and
open alerts are loaded at start-up, so a restart neither duplicates nor forgets alerts.

Per-series state lives in numpy arrays indexed by a dense *slot*; ``series id -> slot`` is an
array lookup, so the per-reading path has no Python objects.

The per-reading work (windows and detectors, Numba kernels that release the GIL) runs on one
worker thread, so it overlaps with the event loop decoding the next Kafka fetch instead of
adding to it: on a 2-core machine the event loop is the ingest path's bottleneck. Batches are
analysed strictly in the order they were formed (one worker, FIFO) and the alert lifecycle
step runs back on the event loop in the same order (:meth:`StreamAnalytics._pump`). Every
other change to the per-series state (admitting or evicting series, the periodic tick) waits
until the worker is idle, so the worker never sees arrays being replaced under it.

Start-up: the windows' and detectors' compiled kernels take 1-2 s to load from numba's on-disk
cache (about 17 s to compile on a first start), most of a start's own time. So loading begins
on a thread of its own as soon as the service starts (:func:`preload_kernels`), beside the
migrations, the pool and the Kafka group join, and ``start(background=True)`` does not wait
for it: batches formed meanwhile wait in :meth:`StreamAnalytics.prepare`, held by the pipeline
and unacknowledged, and are analysed and stored in their order once the kernels are in.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import csv
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import numpy as np

from urbanpulse.alerts.inputs import Detections
from urbanpulse.alerts.lifecycle import AlertChanges
from urbanpulse.alerts.service import AlertService
from urbanpulse.config import Settings
from urbanpulse.detect.bank import NO_TS, DetectorBank, Scores, Silences
from urbanpulse.errors import AnalyticsUnavailable
from urbanpulse.live.feed import LiveFeed
from urbanpulse.model import ReadingColumns
from urbanpulse.slots import SlotMap
from urbanpulse.storage.recent import last_readings
from urbanpulse.windows.state import ClosedWindows, WindowState

log = logging.getLogger(__name__)

#: the worker thread's result: detections, windows that closed, silences (the periodic check's, or those found by the
#: readings that ended a gap)
_Analysis = tuple[Detections | None, ClosedWindows, Silences | None]


#: Which detector a reading flagged by several is attributed to: operator-set limits first, then
#: data-quality faults, then the most specific statistical one.
ALERT_PRIORITY = ("threshold", "silence", "flatline", "spike", "robust_z", "ewma")


def compile_kernels() -> None:
    """Compile the windows' and detectors' Numba kernels now, or load them from numba's on-disk
    cache. The first start after an install or an upgrade spends about 17 s here on 2 cores;
    later starts under a second. Test sessions and benchmarks call it once up front, so that no
    service they start has to compile against a start-up timeout."""
    from urbanpulse.detect.settings import DetectionSettings
    from urbanpulse.windows.settings import WindowSettings

    WindowState(WindowSettings())
    DetectorBank(DetectionSettings())
    from urbanpulse.connectors.kafka_records import load_parser

    load_parser()  # the Kafka record parser, built and loaded with them (connectors/kafka_records.py)
    from urbanpulse.formats.canonical_compiled import load_kernel

    load_kernel()  # the canonical JSON decoder, likewise (formats/canonical_compiled.py)


_preload: concurrent.futures.Future[None] | None = None
_preload_lock = threading.Lock()


def preload_kernels() -> concurrent.futures.Future[None]:
    """Start :func:`compile_kernels` on a thread of its own, once per process; the future says
    when it is done (its exception, if loading failed). The service calls this first thing, so
    the kernels load while it migrates, opens its pool and joins its Kafka group."""
    global _preload
    with _preload_lock:
        if _preload is None:
            future: concurrent.futures.Future[None] = concurrent.futures.Future()
            # running from now on: a waiter that gives up (a timeout cancels what it awaits) cannot
            # cancel the load for everyone else sharing it
            future.set_running_or_notify_cancel()

            def load() -> None:
                try:
                    compile_kernels()
                except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the kernels
                    future.set_exception(exc)
                else:
                    future.set_result(None)

            threading.Thread(target=load, name="kernel-load", daemon=True).start()
            _preload = future
        return _preload


@dataclass(slots=True)
class Prepared:
    """One batch's analytics output, written with the batch and published after its commit."""

    changes: AlertChanges | None = None
    events: list[object] | None = None
    #: the worker thread's part; None once :attr:`done` is set
    analysis: asyncio.Future[_Analysis] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    started: float = 0.0  # perf_counter() at prepare
    #: (series ids, ts_us, values) of the batch, for the live pages after COMMIT (LiveFeed.offer)
    live: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


class StreamAnalytics:
    """Windows, detectors and alerts for the series this process ingests (see module doc)."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool,
                 expected_interval: Callable[[str, str], float | None] | None = None,
                 created_here: Callable[[np.ndarray], np.ndarray] | None = None,
                 sensors_of: Callable[[np.ndarray], list[str | None]] | None = None) -> None:
        self.settings = settings
        self.pool = pool
        #: the series registry's own sensor id string per series id (``SeriesRegistry.sensors_of``):
        #: the slot map keeps that one instead of the string decoded from the series' first reading,
        #: one copy per series, not two (~60 bytes a series); None: the reading's
        self._sensors_of = sensors_of
        #: which new series ids this process has just created, so have no stored history to warm
        #: from (``SeriesRegistry.created_here``); None: ask PostgreSQL for every new series
        self._created_here = created_here
        self.slots = SlotMap()
        # the sensor registry's expected interval of a series feeds silence (None: learned)
        self._expected_interval = expected_interval
        #: windows and detectors: built by start() on the analytics thread (see _build)
        self.windows: WindowState
        self.bank: DetectorBank
        self.warm_readings = 0
        self._priority = np.zeros(0, np.int64)
        self._loading: asyncio.Future[None] | None = None
        self.alerts = AlertService(settings.alerts, slots=self.slots)  # the one slot map, shared
        self.evicted = 0
        self.late = 0
        self.failed_batches = 0
        self.analysed_batches = 0
        self.analysis_seconds = 0.0  # prepare -> decided, summed over batches (queueing included)
        self.events_by_kind: Counter[str] = Counter()
        self._score_log = _ScoreLog(settings.detection.score_log) if settings.detection.score_log else None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="analytics")
        self._queue: asyncio.Queue[Prepared] = asyncio.Queue()
        self._pump_task: asyncio.Task[None] | None = None
        #: the live pages' feed (urbanpulse.live.feed.LiveFeed); committed batches go to it
        self.live: LiveFeed | None = None

    async def start(self, *, background: bool = False) -> None:
        """Build the windows and detectors on the analytics thread (their kernels loaded, see the
        module doc), load open alerts and maintenance windows (a restart updates alerts, never
        duplicates them), start the webhook sender and the in-order finishing of analysed batches.

        ``background=True`` returns without waiting for the windows and detectors: batches
        prepared before they are built wait in :meth:`prepare` (:meth:`loaded` waits for them)."""
        if self._loading is None:
            self._loading = asyncio.get_running_loop().run_in_executor(self._worker, self._build)
            self._loading.add_done_callback(_log_load_failure)
        await self.alerts.start(self.pool)
        if self._pump_task is None:
            self._pump_task = asyncio.create_task(self._pump(), name="analytics-pump")
        if not background:
            await self.loaded()

    def _build(self) -> None:
        """Windows, detectors and what depends on them; runs on the analytics thread, so that
        loading their kernels holds up neither the event loop nor the sources' start."""
        try:
            preload_kernels().result()
        except concurrent.futures.CancelledError as exc:  # asyncio would turn it into its own
            # CancelledError, a BaseException that no `except Exception` of the pipeline catches
            raise AnalyticsUnavailable("loading the compiled kernels was cancelled; readings are stored "
                                       "without analysis until the service is restarted") from exc
        self.windows = WindowState(self.settings.windows)
        self.bank = DetectorBank(self.settings.detection, self._expected_interval)
        self.warm_readings = int(self.bank.history_needed)
        # the bank's score columns, most specific detector first (see _detections)
        rank = {n: i for i, n in enumerate(ALERT_PRIORITY)}
        self._priority = np.array(sorted(range(len(self.bank.names)),
                                         key=lambda c: rank.get(self.bank.names[c], len(rank))), np.int64)

    async def loaded(self) -> None:
        """Wait until the windows and detectors are built; raises :class:`AnalyticsUnavailable`
        if building them failed."""
        if self._loading is None:
            raise RuntimeError("StreamAnalytics.start() must be awaited first")
        try:
            await asyncio.shield(self._loading)
        except Exception as exc:
            raise AnalyticsUnavailable(
                f"stream analytics could not load its compiled kernels ({type(exc).__name__}: {exc}); readings "
                f"are stored without analysis. Check the kernel directory (URBANPULSE_KERNEL_DIR, or numba's "
                f"NUMBA_CACHE_DIR) is writable and restart") from exc

    @property
    def is_loaded(self) -> bool:
        """Whether the windows and detectors are built (batches are analysed without waiting)."""
        return self._loading is not None and self._loading.done() and self._loading.exception() is None

    @property
    def load_error(self) -> str | None:
        """Why the windows and detectors could not be built (None: built, or still loading), for
        summaries that would otherwise report "0 alerts" for readings nobody analysed."""
        loading = self._loading
        if loading is None or not loading.done() or loading.cancelled() or loading.exception() is None:
            return None
        exc = loading.exception()
        return f"{type(exc).__name__}: {exc}"

    async def stop(self) -> None:
        """Finish the batches being analysed, stop the webhook sender (bounded flush)."""
        if self._pump_task is not None:
            await self._idle()
            self._pump_task.cancel()
            await asyncio.gather(self._pump_task, return_exceptions=True)
            self._pump_task = None
        if self._loading is not None:  # still loading: not blocking the event loop in shutdown() below
            await asyncio.gather(asyncio.shield(self._loading), return_exceptions=True)
        self._worker.shutdown(wait=True)
        await self.alerts.stop()
        if self._score_log is not None:
            self._score_log.close()

    # -- the pipeline's BatchAnalytics[Prepared] protocol (pipeline/handoff.py) -------------

    async def prepare(self, source: str, readings: ReadingColumns | None,
                      series_ids: np.ndarray | None) -> Prepared | None:
        """Start analysing a batch (called in batch order); :meth:`ready` gives the outcome."""
        now_us = time.time_ns() // 1000
        if readings is None or series_ids is None or not len(readings):
            return None
        if self._pump_task is None:
            raise RuntimeError("StreamAnalytics.start() must be awaited before batches are prepared")
        if not self.is_loaded:  # still loading its kernels: the pipeline holds this batch meanwhile
            await self.loaded()
        slots = self.slots.lookup(series_ids)
        if (slots < 0).any():
            await self._idle()  # admitting replaces per-slot arrays: not while the worker uses them
            slots = await self._admit(series_ids, slots, readings)
        if len(readings.flags) != len(readings):
            readings.flags = np.zeros(len(readings), np.int16)
        prepared = self._submit(self._analyse, source, readings, slots, now_us)
        if self.live is not None:  # references only; used after COMMIT if a page is open then
            prepared.live = (series_ids, readings.ts_us, readings.value)
        return prepared

    def _submit(self, work: Callable[..., _Analysis], *args: object) -> Prepared:
        """Queue work for the worker thread; the pump finishes it in the order submitted."""
        loop = asyncio.get_running_loop()
        prepared = Prepared(analysis=loop.run_in_executor(self._worker, work, *args), started=time.perf_counter())
        self._queue.put_nowait(prepared)
        return prepared

    async def ready(self, prepared: Prepared | None) -> Prepared | None:
        """Wait until the batch is analysed: its LATE flags are set and its alert changes decided.
        Returns what :meth:`write` and :meth:`committed` take (None: nothing to write)."""
        if prepared is None:
            return None
        await prepared.done.wait()
        if prepared.changes:
            return prepared
        # no alert changes: only worth a committed() call while a live page is open
        return prepared if prepared.live is not None and self.live is not None and self.live.wanted else None

    def _analyse(self, source: str, readings: ReadingColumns, slots: np.ndarray, now_us: int) -> _Analysis:
        """The worker thread's part of a batch: windows, late flags, detector scores."""
        closed = self._observe(source, readings, slots, now_us)
        # each reading's slot's last scored time before this batch (a silence trigger's gap)
        before = self.bank.last_ts[slots] if len(slots) and int(slots.max()) < len(self.bank.last_ts) else None
        scores = self.bank.score(slots, readings.ts_us, readings.value)
        if self._score_log is not None:
            self._score_log.write(scores, self.slots)
        detections, silences = self._detections(scores, before)
        return detections, closed, silences

    async def _pump(self) -> None:
        """Finish analysed batches in the order they were prepared: the alert lifecycle step
        (event-loop state, shared with the alert store) for each, then wake its writer."""
        while True:
            prepared = await self._queue.get()
            try:
                assert prepared.analysis is not None
                detections, closed, silences = await prepared.analysis
                prepared.changes = self.alerts.manager.process(detections, closed, silences)
            except Exception:  # noqa: BLE001 - analytics must never stop ingestion: store the readings anyway
                self.failed_batches += 1
                log.exception("analysing a batch failed; its readings are stored without alert changes")
            finally:
                # not kept while waiting for the next batch: the closed windows are views of the
                # window kernel's output buffer, sized by the series with an open window
                detections = closed = silences = None  # noqa: F841
                self.analysed_batches += 1
                self.analysis_seconds += time.perf_counter() - prepared.started
                prepared.analysis = None
                prepared.done.set()
                self._queue.task_done()

    async def _idle(self) -> None:
        """Wait until every prepared batch is analysed (the worker holds no per-slot arrays)."""
        await self._queue.join()

    def _observe(self, source: str, readings: ReadingColumns, slots: np.ndarray, now_us: int) -> ClosedWindows:
        """Windows and late flags, with a watermark per ordered sub-stream (Kafka partition).

        Partitions of one topic are consumed at different paces (a backlog drains unevenly), so
        one watermark for the whole source would call the lagging partitions' readings late and
        their sensors silent. Kafka orders within a partition only: that is the unit of "late"."""
        lanes = readings.lane if len(readings.lane) == len(readings) else None
        observed = self.windows.observe(source, slots, readings.ts_us, readings.value, readings.flags, now_us,
                                        lane=lanes)
        self.late += observed.late
        return observed.closed

    async def write(self, conn: asyncpg.Connection, prepared: Prepared) -> None:
        """The batch's alert changes, in the batch's transaction."""
        if prepared is not None:
            if prepared.changes:
                prepared.events = await self.alerts.store.apply(conn, prepared.changes)

    def committed(self, prepared: Prepared) -> None:
        """The batch and every earlier one are committed: its alert events (and readings, to open live
        pages) go live."""
        if prepared.events:
            for e in prepared.events:
                self.events_by_kind[e.kind] += 1
            self.alerts.publish(prepared.events)
        if prepared.live is not None and self.live is not None:
            self.live.offer(*prepared.live)

    async def tick(self) -> Prepared | None:
        """Idle windows and silence during a gap, queued behind the batches on the worker like a
        batch; when series are due for eviction, everything at once with the worker idle."""
        now_us = time.time_ns() // 1000
        if not self.is_loaded:
            return None  # no series held before the detectors exist
        w = self.windows
        # a read-only peek while the worker runs: it only decides whether to pause the worker
        if (w.in_use & (now_us - w.last_wall_us > w.evict_after_us)).any():
            await self._idle()  # eviction frees slots that batches being formed may look up
            detections, closed, silences = self._periodic(now_us)
            changes = self.alerts.manager.process(detections, closed, silences)
            self._forget(w.evict_idle(now_us))
            return _finished(changes) if changes else None
        return self._submit(self._periodic, now_us)

    def _periodic(self, now_us: int) -> _Analysis:
        """Windows of series gone quiet close by the wall clock; silences found during the gap."""
        closed = self.windows.close_idle(now_us)
        active = np.flatnonzero(self.slots.series_of[:self.slots.capacity] >= 0).astype(np.int32)
        silences = self.bank.check_silence(active, self._silence_clock(active, now_us), now_us)
        if len(silences):  # the same configured severity as a silence found by a reading
            self._attribute(silences)
        return None, closed, silences

    def _attribute(self, silences: Silences) -> Silences:
        """Give silences (the periodic check's or those found by readings) their configured severity and their
        source as the incident group: a whole source going quiet is one incident, not one per series."""
        silences.severity = [self.bank.severity(int(s), "silence") for s in silences.slot.tolist()]
        silences.group = self.windows.source_names(silences.slot)
        return silences

    def _silence_clock(self, slots: np.ndarray, now_us: int) -> np.ndarray:
        """"Now" per series for the silence check, in the series' own event time.

        Two clocks, whichever says the series has been quiet longer: the event-time watermark
        of its source (a replay of old data is judged in its own time; other sensors on the
        source keep it moving), and the wall-clock time since the series' last reading arrived
        (a whole source going quiet). Both minus the allowed lateness: within it a reading can
        still arrive on time (partition skew, batching), so it is not silence yet."""
        w = self.windows
        last = self.bank.last_ts[slots]
        by_watermark = np.asarray(w.event_now(slots), np.int64)
        by_wall = last + np.maximum(now_us - w.last_wall_us[slots], 0)
        floor = np.iinfo(np.int64).min + w.lateness_us  # "no reading yet" stays "no reading yet"
        return np.maximum(np.maximum(by_watermark, by_wall), floor) - w.lateness_us

    # -- internals ------------------------------------------------------------------------

    async def _admit(self, series_ids: np.ndarray, slots: np.ndarray, readings: ReadingColumns) -> np.ndarray:
        """Give new series a slot, configure it, and warm its detectors from stored history."""
        new_ids, first = np.unique(series_ids[slots < 0], return_index=True)
        where = np.flatnonzero(slots < 0)[first]
        over = len(self.slots) + len(new_ids) - self.settings.windows.max_series
        if over > 0:
            self._evict_least_recent(over, keep=np.unique(slots[slots >= 0]))
        sensors = [readings.sensor_id[i] for i in where.tolist()]
        if self._sensors_of is not None:  # equal strings; the registry's copy is kept anyway
            sensors = [held if held is not None else s for held, s in zip(self._sensors_of(new_ids), sensors)]
        metrics = [readings.metric[i] for i in where.tolist()]
        new_slots = self.slots.allocate(new_ids, sensors, metrics)
        cap = self.slots.capacity
        self.bank.ensure_capacity(cap)
        self.windows.ensure_capacity(cap)
        self.bank.assign(new_slots, sensors, metrics)
        self.windows.assign(new_slots, metrics)
        # a series this process has just created has nothing stored: no round trip for it
        # (under the batcher's lock, ~30 ms for a batch bringing ~500 new series)
        asked = new_ids if self._created_here is None else new_ids[~self._created_here(new_ids)]
        if not len(asked):
            return self.slots.slot_of[series_ids]
        async with self.pool.acquire() as conn:
            sid, ts, val = await last_readings(conn, asked, self.warm_readings)
        if len(sid):
            self.bank.warm(self.slots.slot_of[sid], ts, val)
        return self.slots.slot_of[series_ids]

    def _evict_least_recent(self, k: int, keep: np.ndarray) -> None:
        """Make room beyond ``windows.max_series``: forget the series heard from longest ago (not
        those in the current batch). They come back warm from stored history if they report."""
        cands = self.windows.least_recently_seen(k + len(keep))
        victims = cands[~np.isin(cands, keep)][:k].astype(np.int32)
        if len(victims):
            self.windows.evict(victims)
            self._forget(victims)
            log.warning("more than windows.max_series=%d series: evicted the %d least recently seen",
                        self.settings.windows.max_series, len(victims))

    def _forget(self, slots: np.ndarray) -> None:
        """Drop evicted slots (their windows already freed) from the detectors, alerts and slot map."""
        self.bank.evict(slots)
        self.slots.release(slots)
        self.evicted += len(slots)

    def _detections(self, scores: Scores,
                    before: np.ndarray | None = None) -> tuple[Detections | None, Silences | None]:
        """Anomalous readings for the alert manager, each attributed to ONE detector.

        A big spike is also a robust-z and an EWMA outlier; three alerts for one broken reading
        is the alert storm operators complain about. So a reading several detectors flag goes
        to the most specific of them (:data:`ALERT_PRIORITY`), and the others' alerts open only
        for what only they see (a level shift: robust_z; a slow excursion: ewma).

        A reading whose detector is silence (it ended a gap) is returned as a silence, as the periodic
        check reports one (``before``: each input reading's slot's last scored time before the batch):
        stamped at the series' last reading before the gap with the gap in seconds as its value
        (docs/alerts.md), so a silence opens at the same time whichever path finds it, and a gap the
        periodic check already reported is not counted again when its reading arrives."""
        if not len(scores) or not scores.alert.any():
            return None, None
        order = self._priority
        ranked = scores.decision[:, order]
        rows = np.flatnonzero(ranked.any(axis=1))
        cols = order[np.argmax(ranked[rows], axis=1)]
        silences = None
        if before is not None and "silence" in scores.names:
            silent = np.flatnonzero(cols == scores.names.index("silence"))
            prev = self._reading_before(scores, before, rows[silent])
            silent, prev = silent[prev != NO_TS], prev[prev != NO_TS]
            if len(silent):
                silences = self._silences_found(scores, rows[silent], cols[silent], prev)
                rest = np.ones(len(rows), bool)
                rest[silent] = False
                rows, cols = rows[rest], cols[rest]
        if not len(rows):
            return None, silences
        slot = scores.slot[rows]
        return Detections.build(
            slot=slot, series_id=self.slots.series_of[slot], ts_us=scores.ts_us[rows], value=scores.value[rows],
            score=scores.score[rows, cols], detector=[scores.names[c] for c in cols.tolist()],
            sensor_id=[self.slots.sensor[s] for s in slot.tolist()],
            metric=[self.slots.metric[s] for s in slot.tolist()],
            severity=[self.bank.severity(int(s), scores.names[c]) for s, c in zip(slot.tolist(), cols.tolist())],
            group=self.windows.source_names(slot)), silences

    @staticmethod
    def _reading_before(scores: Scores, before: np.ndarray, r: np.ndarray) -> np.ndarray:
        """The time of each row's series' reading before it (``NO_TS``: none known): scores are in (slot,
        time) order, so it is the previous row of the same slot, or for a slot's first row in the batch
        its last scored time before the batch."""
        prev = before[scores.index[r]]
        inside = (r > 0) & (scores.slot[np.maximum(r - 1, 0)] == scores.slot[r])
        return np.where(inside, scores.ts_us[np.maximum(r - 1, 0)], prev)

    def _silences_found(self, scores: Scores, r: np.ndarray, c: np.ndarray, prev: np.ndarray) -> Silences:
        """Rows ``r`` (silence decisions of readings that ended a gap) as the periodic check's silences:
        the last reading before the gap, the gap, the score, the configured severity and the source."""
        slot = scores.slot[r].astype(np.int32)
        return self._attribute(Silences(slot=slot, last_ts_us=prev.astype(np.int64),
                                        gap_us=(scores.ts_us[r] - prev).astype(np.int64),
                                        score=scores.score[r, c].astype(np.float64)))

    def nbytes_per_series(self) -> int:
        """Memory of one series' in-memory state (windows + detectors + slot map); 0 while loading."""
        if not self.is_loaded:
            return 0
        return int(self.windows.nbytes_per_slot() + self.bank.nbytes_per_slot() + 8)

    @property
    def late_within_lateness(self) -> int:
        """Readings older than the watermark but within the allowed lateness (0 while loading)."""
        return self.windows.counters.get("late_within_lateness", 0) if self.is_loaded else 0


def _log_load_failure(future: asyncio.Future[None]) -> None:
    """Say once, when it happens, that analytics failed to load (each batch then fails to prepare)."""
    if not future.cancelled() and future.exception() is not None:
        log.error("stream analytics could not be built; readings are stored without analysis",
                  exc_info=future.exception())


def _finished(changes: AlertChanges) -> Prepared:
    """A Prepared whose analysis is already done (the periodic tick's output)."""
    prepared = Prepared(changes)
    prepared.done.set()
    return prepared


class _ScoreLog:
    """Appends every live score to a CSV (shadow mode for tuning; compares with `urbanpulse detect`)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("a", buffering=1 << 16, newline="")
        self._csv = csv.writer(self._f)
        if self.path.stat().st_size == 0:
            self._csv.writerow(("sensor_id", "metric", "ts_us", "value", "anomaly_score", "alert"))

    def write(self, scores: Scores, slots: SlotMap) -> None:
        s = scores.slot.tolist()
        self._csv.writerows((slots.sensor[k], slots.metric[k], t, repr(v), repr(a), int(b)) for k, t, v, a, b in zip(
            s, scores.ts_us.tolist(), scores.value.tolist(), scores.anomaly_score.tolist(), scores.alert.tolist()))
        self._f.flush()

    def close(self) -> None:
        self._f.close()
