"""Deferred rollups: merge a batch's partials into the tables every ``flush_every_s``, not per batch.

Why: merging every level per batch was what rollups cost (benchmarks/rollups.py: a 1000-series
city batch of 5 s updates ~3000 rollup rows for 5000 readings; the updates, not numpy, are the
time). A minute row of a series sending every second was updated 12 times before its minute was
over. Here each batch's minute partials (numpy, built anyway) wait in memory and are combined;
a flush builds the hour partials from the minutes and the days from the hours (hierarchical) and
merges each row once per flush, so the database work follows the rows, not the batches.

Why it stays right:
* Only committed readings count: partials join the buffer after their batch's COMMIT, from the
  rows that transaction inserted (a redelivery adds nothing, as before).
* Nothing is lost to a crash: the batch transaction records, per writer, the minutes its
  readings fall in (``rollup_pending``, one row per writer, minute and generation; the buffer
  knows which it wrote, so a batch of the current minute usually writes none). A flush merges
  the partials and deletes the marks they covered in one transaction. A writer killed before its
  flush leaves marks; a writer that finds marks of a writer no longer alive (its session
  advisory lock is free) rebuilds those buckets from the readings (storage/rollup_rebuild.py).
* A mark still needed by a batch in flight is never deleted: marks carry the buffer's generation,
  bumped at every flush, and a flush skips the (generation, minute) pairs claimed by batches that
  have not committed yet.
* Late and redelivered readings: a late reading is an insert like any other, marked and
  buffered under its own (old) minute; the next flush merges it into its old buckets.
* A series erased meanwhile (privacy) is not brought back: a flush merges only series that still
  exist.

When: every ``flush_every_s`` under load, and ``idle_s`` (0.1 s) after the last commit when no
batch is being written (:attr:`RollupBuffer.writing`, counted from the start of the write), so a
trickle of readings is in the rollups about 0.1 s after its COMMIT, while a drain flushes every
``flush_every_s`` (each flush re-merges the current minute, hour and day rows: their number is
what a drain pays).
What it costs: rollups are current up to ``flush_every_s`` after COMMIT, not at it (a stop
flushes everything); one held connection per writer for its liveness lock.

A flush that fails loses nothing: its partials go back into the buffer and its marks stay, so the
next flush (or, after a crash, a rebuild from the readings) merges them. It only delays the
rollups, for as long as the cause lasts: :meth:`RollupBuffer.health` says so on ``/health`` (the
service is ``degraded`` while the last flush failed) and ``urbanpulse_rollup_flush_failures`` /
``urbanpulse_rollup_flush_failing_seconds`` / ``urbanpulse_rollup_buffered_rows`` on ``/metrics``
(before robust31 it was a log line only).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields

import asyncpg
import numpy as np

from urbanpulse.storage.rollup_rebuild import rebuild_days
from urbanpulse.storage.rollups import DAY_US, HOUR_US, MINUTE_US, Partials, RollupWriter, coarsen
from urbanpulse.windows.aggregate import Moments, group_starts, merge_runs

log = logging.getLogger(__name__)

#: namespace of the writers' liveness locks (``pg_advisory_lock(LIVE_NS, writer_id)``)
LIVE_NS = 0x75727077  # "urpw"

_MARK_SQL = """
INSERT INTO rollup_pending (writer_id, gen, bucket)
SELECT $1::int8, $2::int8, timestamptz 'epoch' + b * interval '1 microsecond' FROM unnest($3::int8[]) AS u(b) ORDER BY 3
ON CONFLICT DO NOTHING"""

#: this writer's marks up to generation $2 but those of batches still in flight ($3, $4: few);
#: a plain range on the primary key, not a join with the (many) marks flushed
_UNMARK_SQL = """
DELETE FROM rollup_pending p WHERE p.writer_id = $1 AND p.gen <= $2 AND NOT EXISTS (
    SELECT 1 FROM unnest($3::int8[], $4::int8[]) AS u(g, b)
    WHERE u.g = p.gen AND p.bucket = timestamptz 'epoch' + u.b * interval '1 microsecond')
RETURNING p.gen, (extract(epoch FROM p.bucket) * 1000000)::int8"""


@dataclass(slots=True)
class Claim:
    """The (generation, minute) marks one batch relies on until its partials are buffered."""

    pairs: list[tuple[int, int]] = field(default_factory=list)
    done: bool = False


@dataclass(slots=True)
class RollupStats:
    """Where the deferred rollups' time went (wall seconds, server time included in the awaits),
    logged at the stop: what benchmarks/throughput.py reads to say what the rollups cost."""

    batches: int = 0
    partials_s: float = 0.0  # the batch's minute partials (numpy, on the event loop)
    marks: int = 0  # mark statements (batches with minutes not marked yet)
    mark_s: float = 0.0
    accept_s: float = 0.0  # after COMMIT: learning intervals, buffering
    flushes: int = 0
    flush_s: float = 0.0  # whole flush transactions, commit included
    prep_s: float = 0.0  # combining the buffered partials, the hour and day partials (numpy)
    merge_s: float = 0.0  # shipping and merging the partials (COPY + INSERT .. ON CONFLICT)
    unmark_s: float = 0.0
    rows_1m: int = 0
    rows_1h: int = 0
    rows_1d: int = 0
    last_flush_s: float = 0.0  # the stop's flush (after the last batch)
    why: dict[str, int] = field(default_factory=dict)  # flushes by what started them
    #: the first flushes: [s after the first batch, why, minute rows, s]
    timeline: list[list] = field(default_factory=list)
    _t0: float | None = None
    _why: str = ""

    def count(self, why: str) -> None:
        """One flush more started by ``why`` (timer, idle, decided, full, stop)."""
        self.why[why] = self.why.get(why, 0) + 1
        self._why = why

    def line(self) -> str:
        """One JSON object, rounded."""
        return json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()
                           if not k.startswith("_")})


class RollupBuffer:
    """Per-writer buffer of committed minute partials, flushed every ``flush_every_s``.

    Without a pool (a caller that flushes through :meth:`flush_on` on its own connection, as a
    backfill or a test does) the buffer never starts a flush by itself: there is nothing it could
    flush on, and a task that can only fail would be left for the event loop to report."""

    def __init__(self, writer: RollupWriter, pool: asyncpg.Pool | None, flush_every_s: float,
                 max_rows: int = 400_000, idle_s: float = 0.1) -> None:
        self.writer = writer
        self.pool = pool
        self.flush_every_s = flush_every_s
        #: flush this long after the last commit when no batch is in flight: a trickle of data is
        #: in the rollups within ~idle_s; under load (no gap) every flush_every_s
        self.idle_s = min(idle_s, flush_every_s)
        self._last_flush = self._last_accept = time.monotonic()
        self.max_rows = max_rows  # buffered partial rows that trigger a flush before its time
        self.writer_id = secrets.randbelow(2**31 - 2) + 1
        self.gen = 1
        self.parts: list[Partials] = []
        self.rows = 0
        self.db_marks: set[tuple[int, int]] = set()  # (gen, minute us) committed in rollup_pending
        self.inflight: Counter[tuple[int, int]] = Counter()
        #: batch writes under way (from the start of ReadingStore.write, before their marks): the
        #: idle flush waits for none, or it would flush between the batches of a drain
        self.writing = 0
        self.flushes = 0
        self.stats = RollupStats()
        self._lock_conn: asyncpg.Connection | None = None
        self._started = False
        self._start_lock = asyncio.Lock()
        self._flush_lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._kick: asyncio.Task | None = None
        #: flushes that raised (all time), the last one's error, and since when (wall clock) they
        #: fail in a row (None: the last flush succeeded)
        self.failed_flushes = 0
        self.last_error: str | None = None
        self.failing_since: float | None = None

    # -- the batch transaction ---------------------------------------------------------------

    async def mark(self, conn: asyncpg.Connection, minute: Partials, claim: Claim) -> None:
        """Inside the batch transaction: record the minutes these readings fall in."""
        g = self.gen
        minutes = np.unique(minute.bucket_us).tolist()
        claim.pairs = [(g, m) for m in minutes]
        self.inflight.update(claim.pairs)
        new = [m for m in minutes if (g, m) not in self.db_marks]
        if new:
            t0 = time.perf_counter()
            await conn.execute(_MARK_SQL, self.writer_id, g, new)
            self.stats.marks += 1
            self.stats.mark_s += time.perf_counter() - t0

    def accept(self, claim: Claim, minute: Partials) -> None:
        """After COMMIT: buffer the batch's minute partials; its marks are now the buffer's."""
        t0 = time.perf_counter()
        self.db_marks.update(claim.pairs)
        self.release(claim)
        decided = self.writer.learn(minute)
        part = self._coarsened(minute)
        self.parts.append(part)
        self.rows += len(part)
        self._last_accept = time.monotonic()
        self.stats.batches += 1
        if self.stats._t0 is None:
            self.stats._t0 = time.perf_counter()
        self.stats.accept_s += time.perf_counter() - t0
        # a series' level became known: flush now, so it is buffered at its level from then on
        # (a start-up's first seconds; an hourly sensor's readings are one partial each until then)
        if (self.pool is not None and (decided or self.rows >= self.max_rows)
                and (self._kick is None or self._kick.done())):
            self._kick = asyncio.create_task(self._kicked("decided" if decided else "full"), name="rollup-flush")

    def _coarsened(self, minute: Partials) -> Partials:
        """Buffer each series at the finest level it keeps (committed decisions only get coarser):
        an hourly sensor's readings wait as one partial per day, not one per reading, and a
        series that keeps no level is not buffered at all. Exact for every level it keeps."""
        finest = self.writer.decisions.of(minute.series_id)
        if not (finest > MINUTE_US).any():
            return Partials(minute.series_id, minute.bucket_us, minute.stats)
        out = [minute.take_rows(finest <= MINUTE_US)]
        for width in (HOUR_US, DAY_US):
            sel = finest == width
            if sel.any():
                out.append(coarsen(minute.take_rows(sel), width))
        return Partials(np.concatenate([p.series_id for p in out]), np.concatenate([p.bucket_us for p in out]),
                        Moments(*(np.concatenate([getattr(p.stats, f.name) for p in out]) for f in fields(Moments))))

    def release(self, claim: Claim) -> None:
        """The batch is over (committed and accepted, or rolled back)."""
        if claim.done:
            return
        claim.done = True
        self.inflight.subtract(claim.pairs)
        for p in claim.pairs:
            if self.inflight[p] <= 0:
                del self.inflight[p]

    # -- flushing ----------------------------------------------------------------------------

    def _combined(self, parts: list[Partials]) -> Partials:
        """All buffered minute partials, one per (series, minute)."""
        sid = np.concatenate([p.series_id for p in parts])
        bucket = np.concatenate([p.bucket_us for p in parts])
        stats = Moments(*(np.concatenate([getattr(p.stats, f.name) for p in parts]) for f in fields(Moments)))
        order = np.lexsort((bucket, sid))
        sid, bucket, stats = sid[order], bucket[order], stats.take(order)
        starts = group_starts(sid, bucket)
        return Partials(sid[starts], bucket[starts], merge_runs(starts, stats))

    async def flush_on(self, conn: asyncpg.Connection) -> int:
        """Merge everything buffered and delete the marks it covered, in one transaction on
        ``conn``; returns the minute rows merged. On failure the partials stay buffered."""
        g = self.gen
        self.gen += 1  # batches from now on mark anew: nothing they rely on is deleted below
        parts, self.parts, rows = self.parts, [], self.rows
        self.rows = 0
        done = sorted(p for p in self.db_marks if p[0] <= g and p not in self.inflight)
        held = [p for p in self.inflight if p[0] <= g]  # marks batches in flight rely on: kept
        merged = 0
        st = self.stats
        t_start = time.perf_counter()
        try:
            async with conn.transaction():
                lost_days: set[int] = set()
                if done:
                    t0 = time.perf_counter()
                    got = {(r[0], r[1]) for r in await conn.fetch(
                        _UNMARK_SQL, self.writer_id, g, [p[0] for p in held], [p[1] for p in held])}
                    lost_days = {p[1] - p[1] % DAY_US for p in done if p not in got}
                    st.unmark_s += time.perf_counter() - t0
                if parts:
                    t0 = time.perf_counter()
                    minute = self._combined(parts)
                    if lost_days:  # rebuilt from readings by another writer that took this one for dead
                        log.error("rollups: writer %d was taken for dead (its liveness lock was lost) and %d day(s) "
                                  "rebuilt from readings; dropping its buffered partials of those days",
                                  self.writer_id, len(lost_days))
                        keep = ~np.isin(minute.bucket_us - minute.bucket_us % DAY_US, list(lost_days))
                        minute = Partials(minute.series_id[keep], minute.bucket_us[keep], minute.stats.take(keep))
                    if len(minute):
                        hour = coarsen(minute, HOUR_US)
                        day = coarsen(hour, DAY_US)
                        t1 = time.perf_counter()
                        st.prep_s += t1 - t0
                        await self.writer.merge(conn, {"rollup_1m": minute, "rollup_1h": hour, "rollup_1d": day},
                                                learned=True, existing_only=True)
                        st.merge_s += time.perf_counter() - t1
                        merged = len(minute)
                        st.rows_1m, st.rows_1h, st.rows_1d = (st.rows_1m + len(minute), st.rows_1h + len(hour),
                                                              st.rows_1d + len(day))
        except BaseException:
            self.parts[:0] = parts
            self.rows += rows
            raise
        self.writer.committed()
        self.db_marks.difference_update(done)
        if lost_days:
            self.db_marks = {p for p in self.db_marks if p[1] - p[1] % DAY_US not in lost_days}
        self.flushes += 1
        st.flushes += 1
        st.last_flush_s = time.perf_counter() - t_start
        st.flush_s += st.last_flush_s
        if len(st.timeline) < 40:
            st.timeline.append([round(t_start - (st._t0 or t_start), 3), st._why, merged, round(st.last_flush_s, 4)])
        return merged

    async def flush(self, why: str = "other") -> int:
        """Flush on a pooled connection (one flush at a time); ``why`` is counted in :attr:`stats`.
        A failure is recorded for :meth:`health` and raised."""
        async with self._flush_lock:
            self._last_flush = time.monotonic()
            if not self.parts and not self.db_marks:
                return 0
            self.stats.count(why)
            try:
                async with self.pool.acquire() as conn:
                    merged = await self.flush_on(conn)
            except Exception as exc:
                self.failed_flushes += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                if self.failing_since is None:
                    self.failing_since = time.time()
                raise
            if self.failing_since is not None:
                log.warning("rollups: flushing works again after %.0f s; the delayed rows are merged",
                            time.time() - self.failing_since)
            self.failing_since = None
            return merged

    async def _kicked(self, why: str) -> None:
        """A flush started early (a decision, a full buffer): its failure is recorded and logged
        here (else the task's exception would only reach the event loop's handler), and retried
        by the timer like any other."""
        try:
            await self.flush(why)
        except Exception as exc:  # noqa: BLE001 - the partials are back in the buffer; the timer retries
            log.warning("rollups: flush (%s) failed, retried by the timer: %s", why, exc)

    def health(self) -> dict[str, object]:
        """For ``/health``: whether the last flush worked, what is waiting, and why not."""
        out: dict[str, object] = {"ok": self.failing_since is None, "buffered_rows": self.rows,
                                  "failed_flushes": self.failed_flushes}
        if self.failing_since is not None:
            out["failing_for_s"] = round(time.time() - self.failing_since, 1)
            out["error"] = self.last_error
            out["note"] = ("rollups are delayed, not lost: the buffered rows are merged once a flush succeeds "
                           "(readings are stored meanwhile)")
        return out

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Take this writer's liveness lock, rebuild what dead writers left, start the timer."""
        if self._started:
            return
        async with self._start_lock:
            if self._started:
                return
            conn = await self.pool.acquire()
            try:
                await conn.execute("SELECT pg_advisory_lock($1, $2)", LIVE_NS, self.writer_id)
                self._lock_conn = conn
                await self.recover()
            except BaseException:
                self._lock_conn = None
                await self.pool.release(conn)  # the pool's reset query unlocks its advisory locks
                raise
            self._task = asyncio.create_task(self._loop(), name="rollup-flush-timer")
            self._started = True

    async def recover(self) -> tuple[int, int]:
        """Rebuild the days writers that are gone left marks in; (days rebuilt, days waiting)."""
        conn = await self._hold_lock()
        others = [r[0] for r in await conn.fetch(
            "SELECT DISTINCT writer_id FROM rollup_pending WHERE writer_id <> $1", self.writer_id)]
        dead = [w for w in others if await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", LIVE_NS, int(w))]
        if not dead:
            return 0, 0
        try:
            async with self.pool.acquire() as c:
                return await rebuild_days(c, dead)
        finally:
            for w in dead:
                await conn.execute("SELECT pg_advisory_unlock($1, $2)", LIVE_NS, int(w))

    async def _hold_lock(self) -> asyncpg.Connection:
        """The connection holding this writer's liveness lock, taken again on a new connection
        when the database dropped the old one (a restart, a network cut, pg_terminate_backend):
        without it other writers would take this one for dead at their next recovery."""
        conn = self._lock_conn
        if conn is not None and not _connection_lost(conn):
            return conn
        self._lock_conn = None
        if conn is not None:
            await self.pool.release(conn)  # a no-op when the pool took the dead connection back
            log.warning("rollups: the connection holding this writer's liveness lock was lost; taking it again")
        conn = await self.pool.acquire()
        try:
            await conn.execute("SELECT pg_advisory_lock($1, $2)", LIVE_NS, self.writer_id)
        except BaseException:
            await self.pool.release(conn)
            raise
        self._lock_conn = conn
        return conn

    def _due(self) -> str | None:
        """Why a flush is due now (None: it is not)."""
        now = time.monotonic()
        if not self.parts and not self.db_marks:
            return None
        if now - self._last_flush >= self.flush_every_s:
            return "timer"
        if not self.inflight and not self.writing and now - self._last_accept >= self.idle_s:
            return "idle"
        return None

    async def _loop(self) -> None:
        last_recover = time.monotonic()
        while True:
            await asyncio.sleep(self.idle_s)
            try:
                why = self._due()
                if why:
                    await self.flush(why)
                if time.monotonic() - last_recover >= max(10.0, self.flush_every_s):
                    last_recover = time.monotonic()
                    await self.recover()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried at the next tick; the marks keep it safe
                log.warning("rollups: flush failed, retried in %.1f s: %s", self.flush_every_s, exc)
                await asyncio.sleep(self.flush_every_s)

    async def close(self) -> None:
        """Flush everything and give the liveness lock back (marks left by a failed last flush
        are rebuilt by the next writer)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._kick is not None:
            await asyncio.gather(self._kick, return_exceptions=True)
        try:
            if self._started:
                await self.flush("stop")
                log.info("rollup stats: %s", self.stats.line())
        except Exception as exc:  # noqa: BLE001
            log.warning("rollups: the last flush failed (%s); the next start rebuilds those buckets", exc)
        finally:
            conn, self._lock_conn = self._lock_conn, None
            if conn is not None:
                try:
                    if not _connection_lost(conn):  # a lost connection took its locks with it
                        await conn.execute("SELECT pg_advisory_unlock($1, $2)", LIVE_NS, self.writer_id)
                except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError) as exc:
                    log.info("rollups: the liveness lock went with its connection (%s)", exc)
                finally:
                    await self.pool.release(conn)
            self._started = False


def _connection_lost(conn: asyncpg.Connection) -> bool:
    """True when ``conn`` is closed or the pool already took it back because it died (asyncpg
    detaches the proxy of a connection it lost; using it then raises InterfaceError)."""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        return True
