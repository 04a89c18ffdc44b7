"""The latest committed reading of each series, pushed to the open live pages.

Stream analytics hands every committed batch's (series id, time, value) columns to
:meth:`LiveFeed.offer` after its COMMIT (the same moment alert events are published), so a
page never shows a reading that could still be lost. Nothing is kept while no page is open:
``offer`` returns at once. With pages open, batches are coalesced for ``live.interval_s`` and
every page gets one frame per interval holding the newest reading of each series that changed,
encoded once per data-class scope (a page in the anonymous open-data scope gets only ``open``
sensors' readings). A page that falls ``live.queue_frames`` frames behind is dropped; it
reconnects and starts again from a snapshot, which comes from the database, not from memory.

Alert changes ride on the same stream (``event: alerts``, to pages with a key only): the feed
subscribes to the alert hub while pages are open and forwards what it publishes (after COMMIT)
once per interval. So a page holds ONE connection: browsers open at most 6 HTTP/1.1
connections per host, shared by every tab, and a page with two streams stalled the 4th tab.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import asyncpg
import numpy as np
import orjson

from urbanpulse.alerts.hub import AlertHub, Subscription
from urbanpulse.live.settings import LiveSettings
from urbanpulse.registry.series_class import SERIES_CLASS_CASE

log = logging.getLogger(__name__)

#: how long series -> (sensor, metric, data class) answers are trusted (a registry change of a
#: sensor's data class reaches open pages within this)
NAMES_TTL_S = 60.0

# a series' class is the stricter of its sensor's registry class and the class it was stored in
# (SERIES_CLASS_CASE; NULL for an unregistered sensor, which the open-data scope never shows)
_NAMES_SQL = f"""
SELECT s.id, s.sensor_id, s.metric, {SERIES_CLASS_CASE} AS data_class FROM series s
LEFT JOIN sensors h ON h.sensor_id = s.sensor_id
WHERE s.id = ANY($1::int4[])
"""
_SNAPSHOT_SQL = f"""
SELECT s.sensor_id, s.metric, (extract(epoch FROM r.ts) * 1000)::int8 AS ts_ms, r.value
FROM series s
LEFT JOIN sensors h ON h.sensor_id = s.sensor_id
CROSS JOIN LATERAL (SELECT ts, value FROM readings WHERE series_id = s.id ORDER BY ts DESC LIMIT 1) AS r
WHERE $1::text[] IS NULL OR {SERIES_CLASS_CASE} = ANY($1::text[])
ORDER BY s.sensor_id, s.metric
"""

Scope = tuple[str, ...] | None  # data classes a page may see; None: every series


def frame(event: str, rows: list[list[object]]) -> bytes:
    """One SSE frame: ``event:`` name and ``data:`` ``{"at": ms, "readings": [[sensor, metric, ts_ms, value]]}``."""
    data = orjson.dumps({"at": time.time_ns() // 1_000_000, "readings": rows})
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


class LiveSubscription:
    """One open page: its scope and its bounded queue of encoded frames."""

    def __init__(self, scope: Scope, maxsize: int) -> None:
        self.scope = scope
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize)
        self.dropped = asyncio.Event()

    async def get(self, timeout: float) -> bytes | None:
        """The next frame, or None after ``timeout`` seconds (or at once when dropped and drained)."""
        if not self.queue.empty():
            return self.queue.get_nowait()
        if self.dropped.is_set():
            return None
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


class LiveFeed:
    """Coalesced latest readings for the live pages (see module doc)."""

    def __init__(self, settings: LiveSettings | None = None) -> None:
        self.settings = settings or LiveSettings()
        self.pool: asyncpg.Pool | None = None
        #: True when stream analytics offers committed batches; else pages poll snapshots
        self.fed = False
        self.frames_sent = 0
        self.dropped_subscribers = 0
        self._subs: set[LiveSubscription] = set()
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._names: dict[int, tuple[str, str, str | None]] = {}
        self._names_at = 0.0
        self._task: asyncio.Task[None] | None = None
        #: the alert hub whose events go to keyed pages (None: alerts do not run here)
        self.alert_hub: AlertHub | None = None
        self._alerts: Subscription | None = None

    @property
    def wanted(self) -> bool:
        """Whether any page is open (else offered batches are not even kept)."""
        return bool(self._subs)

    @property
    def subscribers(self) -> int:
        """Pages open now."""
        return len(self._subs)

    def offer(self, series_ids: np.ndarray, ts_us: np.ndarray, values: np.ndarray) -> None:
        """A committed batch's columns (called after COMMIT, never blocks, keeps references only)."""
        if self._subs and len(series_ids):
            self._pending.append((series_ids, ts_us, values))

    def subscribe(self, scope: Scope) -> LiveSubscription:
        """A page opens: it gets every frame from now on (read the snapshot after this)."""
        sub = LiveSubscription(scope, self.settings.queue_frames)
        self._subs.add(sub)
        if self.alert_hub is not None and self._alerts is None:
            self._alerts = self.alert_hub.subscribe()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="live-feed")
        return sub

    def unsubscribe(self, sub: LiveSubscription) -> None:
        self._subs.discard(sub)

    async def close(self) -> None:
        """Stop the flusher (pages' streams end with the server)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._subs.clear()
        self._pending.clear()
        if self._alerts is not None and self.alert_hub is not None:
            self.alert_hub.unsubscribe(self._alerts)
        self._alerts = None

    async def snapshot(self, scope: Scope) -> bytes:
        """The newest stored reading of every series in ``scope``, as a ``snapshot`` frame."""
        if self.pool is None:
            return frame("snapshot", [])
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(_SNAPSHOT_SQL, list(scope) if scope is not None else None)
        return frame("snapshot", [[r[0], r[1], r[2], r[3]] for r in rows])

    async def _run(self) -> None:
        """Flush pending batches every ``interval_s`` while any page is open."""
        try:
            while self._subs:
                await asyncio.sleep(self.settings.interval_s)
                self._forward_alerts()
                if self._pending:
                    try:
                        await self.flush()
                    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as exc:
                        log.warning("live page update skipped: cannot name series (%s)", exc)
        finally:
            self._pending.clear()
            if self._alerts is not None and self.alert_hub is not None:
                self.alert_hub.unsubscribe(self._alerts)
            self._alerts = None

    def _forward_alerts(self) -> None:
        """Alert events published since the last interval, to every page with a key."""
        hub = self.alert_hub
        if hub is None:
            return
        sub = self._alerts
        if sub is None or sub.dropped.is_set():
            self._alerts = hub.subscribe()
            if sub is None:
                return
            # the hub dropped us (a burst of events): pages re-read the open alerts
            self._send_keyed(b"event: alerts\ndata: " + orjson.dumps({"reload": True, "events": []}) + b"\n\n")
            return
        events = []
        while not sub.queue.empty():
            events.append(sub.queue.get_nowait().to_json())
        if events:
            self._send_keyed(b"event: alerts\ndata: " + orjson.dumps({"reload": False, "events": events}) + b"\n\n")

    def _send_keyed(self, data: bytes) -> None:
        """To every page with a key (alerts need a viewer key; open-data pages get none)."""
        for page in list(self._subs):
            if page.scope is None:
                self._put(page, data)

    def _put(self, sub: LiveSubscription, data: bytes) -> None:
        """Queue a frame for a page; a page whose queue is full is dropped (it reconnects)."""
        try:
            sub.queue.put_nowait(data)
            self.frames_sent += 1
        except asyncio.QueueFull:
            sub.dropped.set()
            self._subs.discard(sub)
            self.dropped_subscribers += 1

    async def flush(self) -> None:
        """Coalesce what was offered since the last flush and queue one frame per page."""
        batches, self._pending = self._pending, []
        if not batches or not self._subs:
            return
        sids = np.concatenate([b[0] for b in batches]).astype(np.int64, copy=False)
        ts = np.concatenate([b[1] for b in batches])
        vals = np.concatenate([b[2] for b in batches])
        order = np.lexsort((ts, sids))  # by series, then time: the last of each run is the newest
        sids, ts, vals = sids[order], ts[order], vals[order]
        newest = np.ones(len(sids), bool)
        newest[:-1] = sids[1:] != sids[:-1]
        sids, ts, vals = sids[newest], ts[newest], vals[newest]
        names = await self._resolve(sids)
        rows: list[tuple[str | None, list[object]]] = []
        for sid, t, v in zip(sids.tolist(), (ts // 1000).tolist(), vals.tolist()):
            name = names.get(sid)
            if name is not None:
                rows.append((name[2], [name[0], name[1], t, v]))
        encoded: dict[Scope, bytes] = {}
        for sub in list(self._subs):
            data = encoded.get(sub.scope)
            if data is None:
                mine = [r for c, r in rows if sub.scope is None or c in sub.scope]
                data = encoded[sub.scope] = frame("readings", mine) if mine else b""
            if data:
                self._put(sub, data)

    async def _resolve(self, sids: np.ndarray) -> dict[int, tuple[str, str, str | None]]:
        """Sensor, metric and data class of each series id (cached for :data:`NAMES_TTL_S`)."""
        now = time.monotonic()
        if now - self._names_at > NAMES_TTL_S:
            self._names, self._names_at = {}, now
        missing = [s for s in sids.tolist() if s not in self._names]
        if missing and self.pool is not None:
            async with self.pool.acquire() as conn:
                for r in await conn.fetch(_NAMES_SQL, missing):
                    self._names[r[0]] = (r[1], r[2], r[3])
        return self._names


def scope_of(classes: Sequence[str] | None) -> Scope:
    """A caller's data classes as a hashable scope (None: every series)."""
    return None if classes is None else tuple(sorted(classes))
