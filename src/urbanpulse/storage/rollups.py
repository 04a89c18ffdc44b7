"""Rollups (``rollup_1m``, ``rollup_1h``, ``rollup_1d``) maintained inside each batch's transaction.

Why they stay right:
* Only the readings a transaction actually inserted are aggregated (the COPY path inserts the
  whole batch; the merge path takes them from ``INSERT ... ON CONFLICT DO NOTHING RETURNING``),
  and the rollup merge commits or rolls back with those readings. A redelivered batch inserts
  nothing, so it adds nothing; a crash loses the readings and their rollup contribution
  together. A late reading is an insert like any other and updates its (old) bucket.
* A batch's readings are summarised per (series, bucket) in numpy as partial aggregates
  (count, mean, M2, min, max, first, last) and merged into the stored row with Chan et al.'s
  parallel formulas, which are exact: the stored row equals a recomputation over all readings
  of the bucket (up to float rounding), whatever the batch boundaries or arrival order.
* Hierarchical: the hour partials are built from the minute partials and the day partials from
  the hour partials in numpy (no second pass over readings).
* A level earns its place per series (:class:`RollupPolicy`): it is stored only where its bucket
  holds at least ``min_readings_per_bucket`` readings of the series, judged from the series'
  interval (configured, or learned from the readings by :class:`IntervalLearner`). The decision
  is kept in ``rollup_series`` and only ever gets coarser; when a series' finest level becomes
  coarser its finer rows are deleted: up to :data:`INLINE_DROP_ROWS` per level in the same
  transaction (a series that is just learning has a few), the rest in the background in
  bounded transactions (:meth:`RollupWriter.keep_purging`): a series with a long history in a
  level it no longer keeps (a database filled before the level policy, 10 M readings) held its
  first batch after a start for minutes otherwise. Nothing reads a level a series does not keep
  (queries follow ``rollup_series``), so rows waiting for the purge are never seen. The merges
  skip the levels a series does not keep, in SQL, so several services agree on the decisions
  without talking to each other.
* Rows are merged in (series_id, bucket) order, so two concurrent batches touching the same
  rows wait for each other instead of deadlocking.

Two ways to ship partials to the server are kept: ``stage`` (one binary COPY of both tables'
partials into a temporary table, then both ``INSERT .. SELECT .. ON CONFLICT DO UPDATE`` in one
round trip; the default, measured faster) and ``unnest`` (one statement per table with array
parameters; for servers where COPY is unavailable). benchmarks/rollups.py has the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

import asyncpg
import numpy as np

from urbanpulse.capacity import grown
from urbanpulse.storage.binary_copy import HEADER, PG_EPOCH_OFFSET_US, TRAILER
from urbanpulse.windows.aggregate import Moments, group_starts, merge_runs, moments

log = logging.getLogger(__name__)

MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000
DAY_US = 86_400_000_000
#: the levels, finest first; each level's partials are built from the one before
ROLLUP_TABLES = {"rollup_1m": MINUTE_US, "rollup_1h": HOUR_US, "rollup_1d": DAY_US}
NO_LEVEL_US = 1 << 62  # rollup_series.finest_us of a series that keeps no level at all
#: advisory lock: shared by every rollup merge, exclusive while a level decision deletes rows
DECISION_LOCK_ID = 0x75_72_62_64  # "urbd"
MergeMethod = Literal["stage", "unnest"]

COLUMNS = ("series_id", "bucket", "count", "mean", "m2", "min", "max", "first_ts", "first", "last_ts", "last")

_COPY_ROW = np.dtype([
    ("nfields", ">i2"),
    ("l_sid", ">i4"), ("sid", ">i4"),
    ("l_bucket", ">i4"), ("bucket", ">i8"),
    ("l_count", ">i4"), ("count", ">i8"),
    ("l_mean", ">i4"), ("mean", ">f8"),
    ("l_m2", ">i4"), ("m2", ">f8"),
    ("l_min", ">i4"), ("min", ">f8"),
    ("l_max", ">i4"), ("max", ">f8"),
    ("l_first_ts", ">i4"), ("first_ts", ">i8"),
    ("l_first", ">i4"), ("first", ">f8"),
    ("l_last_ts", ">i4"), ("last_ts", ">i8"),
    ("l_last", ">i4"), ("last", ">f8"),
    ("l_width", ">i4"), ("width", ">i8"),
])


@dataclass(slots=True)
class Partials:
    """Partial aggregates of some readings, one element per (series_id, bucket), sorted by both."""

    series_id: np.ndarray  # int32
    bucket_us: np.ndarray  # int64, bucket start (us since the epoch)
    stats: Moments
    #: from the readings (not kept by coarsen): every step between consecutive readings of a
    #: series in these readings, for learning intervals
    step_sid: np.ndarray | None = None
    step_us: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.series_id)

    def take_rows(self, mask: np.ndarray) -> Partials:
        """The partials where ``mask`` is true (order kept; the learning steps are not)."""
        return Partials(self.series_id[mask], self.bucket_us[mask], self.stats.take(mask))


def partial_aggregates(series_id: np.ndarray, ts_us: np.ndarray, value: np.ndarray, bucket_us: int) -> Partials:
    """Group readings by (series, ``bucket_us``-wide bucket) in numpy: one lexsort, reduceat per column."""
    ts_us = np.asarray(ts_us, np.int64)
    bucket = ts_us - ts_us % bucket_us  # floor, also before 1970
    order = np.lexsort((ts_us, bucket, series_id))
    sid, bucket, ts, val = series_id[order], bucket[order], ts_us[order], value[order]
    starts = group_starts(sid, bucket)
    same = sid[1:] == sid[:-1]  # sorted by (series, bucket, ts) = by (series, ts)
    return Partials(sid[starts].astype(np.int32), bucket[starts], moments(starts, ts, val),
                    sid[1:][same], (ts[1:] - ts[:-1])[same])


def coarsen(p: Partials, bucket_us: int) -> Partials:
    """Merge partials into wider buckets (minute -> hour) without going back to the readings."""
    wide = p.bucket_us - p.bucket_us % bucket_us
    starts = group_starts(p.series_id, wide)  # input sorted by (series, bucket) => by (series, wide)
    return Partials(p.series_id[starts], wide[starts], merge_runs(starts, p.stats))


def rollup_partials(series_id: np.ndarray, ts_us: np.ndarray, value: np.ndarray) -> dict[str, Partials]:
    """The partials of every rollup level for these (inserted) readings: minute, then each
    coarser level from the one before."""
    minute = partial_aggregates(series_id, ts_us, value, MINUTE_US)
    hour = coarsen(minute, HOUR_US)
    return {"rollup_1m": minute, "rollup_1h": hour, "rollup_1d": coarsen(hour, DAY_US)}


def _merge_sql(table: str, source: str) -> str:
    # SET expressions all see the old row (r) and the new partial (EXCLUDED).
    return f"""
INSERT INTO {table} AS r ({", ".join(COLUMNS)})
{source}
ON CONFLICT (series_id, bucket) DO UPDATE SET
    count = r.count + EXCLUDED.count,
    mean = r.mean + (EXCLUDED.mean - r.mean) * (EXCLUDED.count::float8 / (r.count + EXCLUDED.count)),
    m2 = r.m2 + EXCLUDED.m2 + (EXCLUDED.mean - r.mean) * (EXCLUDED.mean - r.mean)
         * r.count * (EXCLUDED.count::float8 / (r.count + EXCLUDED.count)),
    min = least(r.min, EXCLUDED.min),
    max = greatest(r.max, EXCLUDED.max),
    first_ts = least(r.first_ts, EXCLUDED.first_ts),
    first = CASE WHEN EXCLUDED.first_ts < r.first_ts THEN EXCLUDED.first ELSE r.first END,
    last_ts = greatest(r.last_ts, EXCLUDED.last_ts),
    last = CASE WHEN EXCLUDED.last_ts > r.last_ts THEN EXCLUDED.last ELSE r.last END
"""


def _kept(sid: str, width: int) -> str:
    """SQL condition: the series ``sid`` keeps the level ``width`` (no decision, or one as fine)."""
    return f"NOT EXISTS (SELECT 1 FROM rollup_series d WHERE d.series_id = {sid} AND d.finest_us > {width})"


_US = "timestamptz 'epoch' + {} * interval '1 microsecond'"
_UNNEST_SOURCE = f"""
SELECT u.sid, {_US.format("u.bucket")}, u.n, u.mean, u.m2, u.mn, u.mx, {_US.format("u.fts")}, u.fv,
       {_US.format("u.lts")}, u.lv
FROM unnest($1::int4[], $2::int8[], $3::int8[], $4::float8[], $5::float8[], $6::float8[], $7::float8[],
            $8::int8[], $9::float8[], $10::int8[], $11::float8[]) AS u(sid, bucket, n, mean, m2, mn, mx, fts, fv, lts, lv)
"""

def _exists(sid: str) -> str:
    """SQL condition: the series still exists (a deferred flush must not bring back an erased one)."""
    return f"EXISTS (SELECT 1 FROM series x WHERE x.id = {sid})"


def _unnest_sql(existing_only: bool) -> dict[str, str]:
    extra = f" AND {_exists('u.sid')}" if existing_only else ""
    return {t: _merge_sql(t, _UNNEST_SOURCE + f" WHERE {_kept('u.sid', w)}{extra} ORDER BY 1, 2")
            for t, w in ROLLUP_TABLES.items()}


_SHARED_LOCK = f"SELECT pg_advisory_xact_lock_shared({DECISION_LOCK_ID})"


def _stage_sql(existing_only: bool) -> str:
    """Every table from one stage, in one round trip (a multi-statement simple query)."""
    extra = f" AND {_exists('s.series_id')}" if existing_only else ""
    return ";".join([_SHARED_LOCK] + [
        _merge_sql(t, f"SELECT {', '.join(COLUMNS)} FROM rollup_stage s WHERE width = {w} AND "
                      f"{_kept('s.series_id', w)}{extra} ORDER BY series_id, bucket")
        for t, w in ROLLUP_TABLES.items()])


MERGE_UNNEST_SQL = _unnest_sql(False)
MERGE_STAGE_SQL = _stage_sql(False)
_EXISTING_SQL = {"stage": _stage_sql(True), "unnest": _unnest_sql(True)}
STAGE_COLUMNS = (*COLUMNS, "width")


async def prepare_rollup_stage(conn: asyncpg.Connection) -> None:
    """Per-connection temporary table the ``stage`` method copies partials into."""
    await conn.execute("CREATE TEMP TABLE IF NOT EXISTS rollup_stage "
                       "(LIKE rollup_1m INCLUDING DEFAULTS, width int8 NOT NULL) ON COMMIT DELETE ROWS")


def encode_partials(parts: dict[str, Partials]) -> bytes:
    """Binary COPY stream of partials in :data:`STAGE_COLUMNS` order (numpy, no object per row)."""
    chunks = [HEADER]
    for table, p in parts.items():
        rows = np.empty(len(p), _COPY_ROW)
        rows["nfields"] = len(STAGE_COLUMNS)
        for name in _COPY_ROW.names:
            if name.startswith("l_"):
                rows[name] = 4 if name == "l_sid" else 8
        m = p.stats
        rows["sid"] = p.series_id
        rows["bucket"] = p.bucket_us - PG_EPOCH_OFFSET_US
        rows["count"] = m.count
        rows["mean"], rows["m2"], rows["min"], rows["max"] = m.mean, m.m2, m.min, m.max
        rows["first_ts"], rows["first"] = m.first_ts - PG_EPOCH_OFFSET_US, m.first
        rows["last_ts"], rows["last"] = m.last_ts - PG_EPOCH_OFFSET_US, m.last
        rows["width"] = ROLLUP_TABLES[table]
        chunks.append(rows.tobytes())
    chunks.append(TRAILER)
    return b"".join(chunks)


async def merge_partials(conn: asyncpg.Connection, parts: dict[str, Partials], method: MergeMethod = "stage",
                         existing_only: bool = False) -> None:
    """Merge partials (table name -> partials) into the rollup tables, inside the caller's transaction.

    Tables are merged in a fixed order (minute, hour, day), rows in key order: no lock-order
    inversions. A level a series does not keep (``rollup_series``) is skipped.
    """
    parts = {t: parts[t] for t in ROLLUP_TABLES if t in parts and len(parts[t])}
    if not parts:
        return
    if method == "stage":
        await conn.copy_to_table("rollup_stage", source=_once(encode_partials(parts)), columns=STAGE_COLUMNS,
                                 format="binary")
        await conn.execute(_EXISTING_SQL["stage"] if existing_only else MERGE_STAGE_SQL)
        return
    await conn.execute(_SHARED_LOCK)
    for table, p in parts.items():
        m = p.stats
        sql = _EXISTING_SQL["unnest"][table] if existing_only else MERGE_UNNEST_SQL[table]
        await conn.execute(sql, p.series_id.tolist(), p.bucket_us.tolist(), m.count.tolist(),
                           m.mean.tolist(), m.m2.tolist(), m.min.tolist(), m.max.tolist(), m.first_ts.tolist(),
                           m.first.tolist(), m.last_ts.tolist(), m.last.tolist())


#: interval hint: expected seconds between readings per series id (NaN: unknown); e.g. the
#: sensor registry's expected interval. Called with the int32 series ids of a batch.
IntervalHint = Callable[[np.ndarray], np.ndarray]


class ConfiguredIntervals:
    """An :data:`IntervalHint` from what the operator said: the sensor registry's expected
    interval of the series if it has one, else ``database.rollups.intervals`` for its metric."""

    def __init__(self, per_metric: dict[str, float], key_of: Callable[[int], tuple[str, str] | None],
                 registered: Callable[[str, str], float | None] | None = None) -> None:
        self.per_metric = dict(per_metric)
        self.key_of = key_of
        self.registered = registered

    def __call__(self, sid: np.ndarray) -> np.ndarray:
        """Seconds per series id; NaN where nothing is configured."""
        out = np.full(len(sid), np.nan)
        for i, s in enumerate(np.asarray(sid).tolist()):
            key = self.key_of(s)
            if key is None:
                continue
            got = self.registered(*key) if self.registered is not None else None
            if got is None:
                got = self.per_metric.get(key[1])
            if got is not None and got > 0:
                out[i] = got
        return out


@dataclass
class RollupPolicy:
    """Which rollup levels a series keeps: those whose bucket holds at least
    ``min_readings_per_bucket`` of its readings (1: every level for every series, nothing learned)."""

    min_readings_per_bucket: int = 1
    learn_after: int = 8  # intervals seen before a learned interval decides
    interval_hint: IntervalHint | None = None

    @classmethod
    def from_settings(cls, settings: object, key_of: Callable[[int], tuple[str, str] | None] | None = None,
                      registered: Callable[[str, str], float | None] | None = None) -> RollupPolicy:
        """The policy of a ``database.rollups`` section. ``key_of`` maps a series id to its
        (sensor id, metric); ``registered`` gives the registry's expected interval of one."""
        hint = ConfiguredIntervals(settings.intervals, key_of, registered) if key_of is not None else None  # type: ignore[attr-defined]
        return cls(settings.min_readings_per_bucket, settings.learn_after, hint)  # type: ignore[attr-defined]

    @property
    def prunes(self) -> bool:
        """Whether any level can be left out."""
        return self.min_readings_per_bucket > 1

    def finest_level_us(self, interval_s: np.ndarray) -> np.ndarray:
        """Per interval (seconds), the width of the finest level whose bucket holds at least
        ``min_readings_per_bucket`` readings; :data:`NO_LEVEL_US` where none does."""
        need_us = np.asarray(interval_s, np.float64) * 1e6 * self.min_readings_per_bucket
        out = np.full(len(need_us), NO_LEVEL_US, np.int64)
        for width in sorted(ROLLUP_TABLES.values(), reverse=True):
            out[need_us <= width] = width
        return out


class IntervalLearner:
    """Each series' typical interval between readings, learned from the readings stored.

    Per series (arrays indexed by series id, grown by a quarter): the newest event time seen and a
    ring of the last ``RING`` interval samples; the interval is their median (robust to a gap or
    a late reading). 77 bytes per series id.
    """

    RING = 16
    #: ``seen`` saturates here (int32; a series is decided after a few intervals)
    SEEN_MAX = np.iinfo(np.int32).max

    def __init__(self) -> None:
        self.last_ts = np.full(0, np.iinfo(np.int64).min, np.int64)
        self.ring = np.full((0, self.RING), np.nan, np.float32)
        self.seen = np.zeros(0, np.int32)  # intervals summarised so far (saturating)
        # samples written to the ring so far, modulo 256: only its value modulo RING (a divisor of
        # 256) is used, the next ring position
        self.slot = np.zeros(0, np.uint8)

    def _grow(self, top: int) -> None:
        n = len(self.seen)
        if top < n:
            return
        m = grown(top + 1, n)
        self.last_ts = np.concatenate([self.last_ts, np.full(m - n, np.iinfo(np.int64).min, np.int64)])
        self.ring = np.concatenate([self.ring, np.full((m - n, self.RING), np.nan, np.float32)])
        self.seen = np.concatenate([self.seen, np.zeros(m - n, np.int32)])
        self.slot = np.concatenate([self.slot, np.zeros(m - n, np.uint8)])

    def observe(self, minute: Partials, wanted: np.ndarray | None = None) -> np.ndarray:
        """Learn from one batch's minute partials; returns the series ids it touched.

        ``wanted``: a boolean mask by series id of the series still worth learning (None: all);
        the others only have their newest event time kept. One sample per series and batch: the
        lower median of its steps between consecutive readings, the step from the newest reading
        seen before the batch included (a late reading gives none), so a gap or a late reading
        is one outlier among many; it counts as as many samples as it has steps.
        """
        if not len(minute):
            return np.zeros(0, np.int32)
        m = minute.stats
        starts = group_starts(minute.series_id)
        sid = minute.series_id[starts].astype(np.int64)
        self._grow(int(sid.max()))
        first = np.minimum.reduceat(m.first_ts, starts)
        last = np.maximum.reduceat(m.last_ts, starts)
        prev = self.last_ts[sid]
        self.last_ts[sid] = np.maximum(prev, last)
        across = (prev > np.iinfo(np.int64).min) & (first > prev)  # a late first reading gives no step
        s_all, x_all = sid[across], first[across] - prev[across]
        if minute.step_sid is not None and len(minute.step_sid):
            s_all = np.concatenate([s_all, minute.step_sid.astype(np.int64)])
            x_all = np.concatenate([x_all, minute.step_us])
        if wanted is not None:
            keep = (s_all < len(wanted)) & wanted[np.minimum(s_all, len(wanted) - 1)]
            s_all, x_all = s_all[keep], x_all[keep]
        ok = x_all > 0
        s_all, x_all = s_all[ok], x_all[ok]
        if len(s_all):
            order = np.lexsort((x_all, s_all))
            s_all, x_all = s_all[order], x_all[order]
            g = group_starts(s_all)
            size = np.diff(np.append(g, len(s_all)))
            # the lower median per series: a missing reading makes a step too long, never too short,
            # and a shorter estimate only keeps a level more
            self._add(s_all[g], x_all[g + (size - 1) // 2] / 1e6, size)
        return sid.astype(np.int32)

    def _add(self, sid: np.ndarray, sample: np.ndarray, weight: np.ndarray) -> None:
        ok = np.isfinite(sample) & (sample > 0)
        sid, sample, weight = sid[ok], sample[ok], weight[ok]
        self.ring[sid, self.slot[sid] % self.RING] = sample
        self.slot[sid] += np.uint8(1)  # wraps at 256, a multiple of RING
        self.seen[sid] = np.minimum(self.seen[sid].astype(np.int64) + weight, self.SEEN_MAX)

    def interval_s(self, sid: np.ndarray, min_samples: int) -> np.ndarray:
        """The learned interval (seconds) of each series; NaN before ``min_samples`` samples."""
        sid = np.asarray(sid, np.int64)
        out = np.full(len(sid), np.nan)
        known = sid < len(self.seen)
        idx = sid[known]
        ready = self.seen[idx] >= min_samples
        with np.errstate(all="ignore"):
            med = np.nanmedian(self.ring[idx[ready]], axis=1) if ready.any() else np.zeros(0)
        vals = np.full(len(idx), np.nan)
        vals[ready] = med
        out[known] = vals
        return out


class LevelDecisions:
    """Each series' finest kept level as far as this process knows, by series id (numpy): 0 not
    decided, ``MINUTE_US`` every level (kept in memory only), coarser ones as ``rollup_series``
    holds them once seen committed. ``pending``: decisions made here and not yet seen committed
    (written again if their transaction turns out to have rolled back)."""

    def __init__(self) -> None:
        self.finest = np.zeros(0, np.int64)
        self.pending: dict[int, tuple[int, float, str]] = {}  # sid -> (finest_us, interval, source)
        self.loaded = False

    def grow(self, top: int) -> None:
        """Room for series ids up to ``top``."""
        n = len(self.finest)
        if top >= n:
            self.finest = np.concatenate([self.finest, np.zeros(grown(top + 1, n) - n, np.int64)])

    def set(self, sid: int, finest_us: int) -> None:
        """Record a committed (or in-memory "every level") decision; only ever coarser."""
        self.grow(sid)
        self.finest[sid] = max(self.finest[sid], finest_us)

    def of(self, sid: np.ndarray) -> np.ndarray:
        """The known finest level per series id (0: not decided)."""
        sid = np.asarray(sid, np.int64)
        self.grow(int(sid.max()) if len(sid) else 0)
        return self.finest[sid]


#: rows of a level a series no longer keeps deleted inside the deciding batch's transaction, per
#: level; more are left to the background purge (RollupWriter.keep_purging)
INLINE_DROP_ROWS = 5_000
#: rows per transaction of the background purge
PURGE_BATCH_ROWS = 10_000
#: seconds after a start before the first purge pass (the first batches go first)
PURGE_FIRST_AFTER_S = 10.0


def _drop_some_sql(table: str) -> str:
    """At most $2 rows of ``table`` of the series $1 (whose decisions drop the level)."""
    return f"""
WITH d AS (SELECT series_id, bucket FROM {table} WHERE series_id = ANY($1::int4[]) LIMIT $2)
DELETE FROM {table} t USING d WHERE t.series_id = d.series_id AND t.bucket = d.bucket"""


def _purge_sql(table: str, width: int) -> str:
    """At most $1 rows of ``table`` belonging to series that no longer keep it: one index probe
    per decided series, however long the history."""
    return f"""
WITH d AS (SELECT r.series_id, r.bucket FROM rollup_series s
           CROSS JOIN LATERAL (SELECT series_id, bucket FROM {table} WHERE series_id = s.series_id LIMIT $1) r
           WHERE s.finest_us > {width} LIMIT $1)
DELETE FROM {table} t USING d WHERE t.series_id = d.series_id AND t.bucket = d.bucket"""


async def purge_dropped_levels(pool: asyncpg.Pool, batch_rows: int = PURGE_BATCH_ROWS) -> dict[str, int]:
    """Delete every row of a level its series no longer keeps, ``batch_rows`` per transaction
    (short locks, no long transaction held against vacuum); returns the rows deleted per table."""
    deleted: dict[str, int] = {}
    for table, width in ROLLUP_TABLES.items():
        sql = _purge_sql(table, width)
        while True:
            async with pool.acquire() as conn:
                if await conn.fetchval("SELECT to_regclass('rollup_series') IS NULL"):
                    return deleted
                n = int((await conn.execute(sql, batch_rows)).rsplit(" ", 1)[-1])
            if n:
                deleted[table] = deleted.get(table, 0) + n
            if n < batch_rows:
                break
    return deleted


_DECIDE_SQL = """
INSERT INTO rollup_series AS r (series_id, finest_us, interval_s, source)
SELECT * FROM unnest($1::int4[], $2::int8[], $3::float8[], $4::text[]) ORDER BY 1
ON CONFLICT (series_id) DO UPDATE SET finest_us = EXCLUDED.finest_us, interval_s = EXCLUDED.interval_s,
    source = EXCLUDED.source, decided_at = now()
    WHERE EXCLUDED.finest_us > r.finest_us   -- only ever coarser
"""


class RollupWriter:
    """Merges the rollups of a batch's inserted readings; the writer calls it inside its transaction."""

    def __init__(self, method: MergeMethod = "stage", policy: RollupPolicy | None = None) -> None:
        self.method: MergeMethod = method
        self.policy = policy or RollupPolicy()
        self.learner = IntervalLearner()
        self.decisions = LevelDecisions()
        self._reload_at = 0.0
        self._hinted = np.zeros(1024, bool)  # by series id: interval_hint already asked
        self._learnt: dict[int, float] = {}  # deferred: series id -> interval when it became known
        self.applied: list[int] = []  # series whose pending decision the last merge's transaction wrote
        #: set when a decision left rows of a dropped level behind (see keep_purging)
        self.purge_wanted = asyncio.Event()
        self.purged: dict[str, int] = {}  # rows deleted by the background purge, per table

    async def merge(self, conn: asyncpg.Connection, partials: dict[str, Partials], *, learned: bool = False,
                    existing_only: bool = False) -> None:
        """Merge the partials of one batch (or of one deferred flush: ``learned``, the batches were
        learnt from by :meth:`learn` as they committed) into every level its series keep."""
        self.applied = []
        if self.policy.prunes and "rollup_1m" in partials:
            await self._decide(conn, partials["rollup_1m"], learn=not learned)
            partials = self._drop_decided(partials)
        await merge_partials(conn, partials, self.method, existing_only)

    def learn(self, minute: Partials) -> int:
        """Learn the intervals from one committed batch's minute partials (deferred rollups: in
        batch order, as the steps between batches need); returns how many series' intervals
        became known to drop a level (a decision worth flushing at once, so that their partials
        are buffered coarsened from then on; a series keeping every level gains nothing from it,
        and a flush per such batch at a start was most of a drain's flushes)."""
        if not self.policy.prunes or not len(minute):
            return 0
        d = self.decisions
        d.grow(int(minute.series_id.max()))
        touched = self.learner.observe(minute, d.finest == 0)
        # the interval as it stood at this batch, as the per-batch path would decide it: a flush
        # later must not decide from samples that came after (late readings' steps included)
        new = np.array([s for s in touched[d.of(touched) == 0].tolist() if s not in self._learnt], np.int32)
        if len(new):
            got = self.learner.interval_s(new, self.policy.learn_after)
            known = np.isfinite(got) & (got > 0)
            for s, i in zip(new[known].tolist(), got[known].tolist()):
                self._learnt[s] = i
            return int((self.policy.finest_level_us(got[known]) > MINUTE_US).sum())
        return 0

    async def _decide(self, conn: asyncpg.Connection, minute: Partials, learn: bool = True) -> None:
        """Learn from this batch; record the levels of series whose interval became known and
        delete their rows in levels they no longer keep (all inside the batch transaction)."""
        d = self.decisions
        if len(minute):
            d.grow(int(minute.series_id.max()))
        if learn:
            touched = self.learner.observe(minute, d.finest == 0)
        else:
            touched = np.unique(minute.series_id).astype(np.int32)
        stale: list[int] = []
        if not d.loaded:
            await self._reload(conn)
        elif d.pending and time.monotonic() >= self._reload_at:
            await self._reload(conn)
            stale = list(d.pending)  # still not committed: that transaction rolled back; write them again
        undecided = touched[d.of(touched) == 0]
        if d.pending and len(undecided):
            undecided = np.array([s for s in undecided.tolist() if s not in d.pending], np.int32)
        if len(undecided):
            interval = np.full(len(undecided), np.nan)
            source = np.full(len(undecided), "learned", object)
            if self.policy.interval_hint is not None:
                # asked once per series (at its first batch): a hint is a Python call per series
                top = int(undecided.max()) + 1
                if top > len(self._hinted):
                    self._hinted = np.concatenate([self._hinted, np.zeros(grown(top, len(self._hinted)) -
                                                                          len(self._hinted), bool)])
                new = ~self._hinted[undecided]
                hint = np.full(len(undecided), np.nan)
                if new.any():
                    hint[new] = np.asarray(self.policy.interval_hint(undecided[new]), np.float64)
                    self._hinted[undecided[new]] = True
                interval, source = np.where(np.isfinite(hint), hint, interval), np.where(np.isfinite(hint),
                                                                                          "configured", source)
            learned = self.learner.interval_s(undecided, self.policy.learn_after)
            if self._learnt:  # deferred: the interval as of the batch that made it known
                early = np.array([self._learnt.pop(s, np.nan) for s in undecided.tolist()])
                learned = np.where(np.isfinite(early), early, learned)
            interval = np.where(np.isfinite(interval), interval, learned)
            known = np.isfinite(interval) & (interval > 0)
            finest = self.policy.finest_level_us(np.where(known, interval, 0.0))
            for s, f, i, src in zip(undecided[known].tolist(), finest[known].tolist(), interval[known].tolist(),
                                    source[known].tolist()):
                if f > MINUTE_US:  # keeping every level needs no row
                    d.pending[s] = (f, i, src)
                    stale.append(s)
                else:
                    d.set(s, f)
        if stale:
            await self._apply(conn, sorted(set(stale)))

    async def _apply(self, conn: asyncpg.Connection, sids: list[int]) -> None:
        """Write these pending decisions and delete the rows of the levels they drop."""
        d = self.decisions
        self.applied.extend(sids)
        finest = [d.pending[s][0] for s in sids]
        # exclusive: no merge of another transaction is between reading the decisions and committing
        await conn.execute(f"SELECT pg_advisory_xact_lock({DECISION_LOCK_ID})")
        await conn.execute(_DECIDE_SQL, sids, finest, [d.pending[s][1] for s in sids], [d.pending[s][2] for s in sids])
        rows = await conn.fetch("SELECT series_id, finest_us FROM rollup_series WHERE series_id = ANY($1::int4[])", sids)
        for table, width in ROLLUP_TABLES.items():
            drop = [r["series_id"] for r in rows if r["finest_us"] > width]
            if drop:
                status = await conn.execute(_drop_some_sql(table), drop, INLINE_DROP_ROWS)
                deleted = int(status.rsplit(" ", 1)[-1])
                if deleted >= INLINE_DROP_ROWS:
                    self.purge_wanted.set()  # a long history: the rest in the background, not in this batch
                    log.info("rollups: %d series report too rarely for %s; deleted %d of its rows, the rest "
                             "follow in the background", len(drop), table, deleted)
                elif deleted:
                    log.info("rollups: %d series report too rarely for %s; deleted its %d rows", len(drop), table,
                             deleted)
        for s in sids:
            f, i, src = d.pending[s]
            log.debug("rollups: series %d (%s interval %.3g s) keeps levels from %s", s, src, i,
                      _level_name(f))
        self._reload_at = time.monotonic() + 5.0

    async def _reload(self, conn: asyncpg.Connection) -> None:
        """Read the committed decisions (every series at the first call, then the pending ones)."""
        d = self.decisions
        if not d.loaded:
            rows = await conn.fetch("SELECT series_id, finest_us FROM rollup_series")
            d.loaded = True
        else:
            rows = await conn.fetch("SELECT series_id, finest_us FROM rollup_series WHERE series_id = ANY($1::int4[])",
                                    sorted(d.pending))
        for r in rows:
            d.set(r["series_id"], r["finest_us"])
            d.pending.pop(r["series_id"], None)

    async def keep_purging(self, pool: asyncpg.Pool, stopping: asyncio.Event,
                           first_after_s: float | None = None) -> None:
        """Delete, in the background, the rows of levels their series no longer keep: once soon
        after the start (what a previous process left: it may have stopped half-way), then each
        time a decision leaves rows behind. Never in a batch's transaction; a failed pass is
        logged and tried again at the next occasion."""
        self.purge_wanted.set()
        waits = PURGE_FIRST_AFTER_S if first_after_s is None else first_after_s
        while not stopping.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), waits)
            waits = 1.0
            if stopping.is_set() or not self.purge_wanted.is_set():
                if not stopping.is_set():
                    await self._wait_for_work(stopping)
                continue
            self.purge_wanted.clear()
            try:
                deleted = await purge_dropped_levels(pool)
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                log.warning("rollups: deleting the rows of dropped levels failed (%s: %s); trying again later",
                            type(exc).__name__, exc)
                self.purge_wanted.set()
                waits = 60.0
                continue
            for table, n in deleted.items():
                self.purged[table] = self.purged.get(table, 0) + n
                log.info("rollups: deleted %d rows of %s that their series no longer keep", n, table)

    async def _wait_for_work(self, stopping: asyncio.Event) -> None:
        """Until a decision leaves rows behind, or the service stops."""
        waiting = {asyncio.ensure_future(self.purge_wanted.wait()), asyncio.ensure_future(stopping.wait())}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiting:
                w.cancel()

    def committed(self) -> None:
        """The last merge's transaction committed: its decisions hold (deferred rollups buffer
        these series at their level from now on instead of waiting for the reload)."""
        d = self.decisions
        for s in self.applied:
            if s in d.pending:
                d.set(s, d.pending.pop(s)[0])
        self.applied = []

    def _drop_decided(self, partials: dict[str, Partials]) -> dict[str, Partials]:
        """Leave out, before staging, the partials of levels a series is known not to keep (the
        SQL filter is what makes it right; this only saves work)."""
        out = {}
        pending = self.decisions.pending
        for table, p in partials.items():
            finest = self.decisions.of(p.series_id)
            if pending:  # decided in this very transaction: the SQL filter sees them already
                finest = np.maximum(finest, [pending[s][0] if s in pending else 0 for s in p.series_id.tolist()])
            keep = finest <= ROLLUP_TABLES[table]
            out[table] = p if keep.all() else Partials(p.series_id[keep], p.bucket_us[keep], p.stats.take(keep))
        return out


def _level_name(width: int) -> str:
    return next((t for t, w in ROLLUP_TABLES.items() if w == width), "none")


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
