"""Run history queries: one page (keyset cursor) or every row in chunks (exports).

Limits (:class:`QueryLimits`) turn queries that would hurt the database into a clear 4xx
(413 with what to narrow) before they start, and a statement timeout into a 503.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from datetime import datetime, timedelta, timezone

import asyncpg

from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.query.buckets import boundaries, count_buckets, floor
from urbanpulse.query.cursor import Position, decode_cursor, encode_cursor
from urbanpulse.query.errors import QueryError, QueryTimeout, QueryTooLarge
from urbanpulse.query.fill import GapFiller, Grid, Out
from urbanpulse.query.plan import READINGS_SQL, ROLLUPS, Plan, plan_query
from urbanpulse.query.selection_cache import UNKNOWN, Selection, SelectionCache
from urbanpulse.query.series import SeriesInfo, resolve_series
from urbanpulse.query.spec import HistoryQuery

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class QueryLimits:
    """What one query may cost; each is answered with a message saying what to narrow."""

    max_page_rows: int = 10_000
    default_page_rows: int = 1_000
    max_series: int = 1_000
    max_buckets: int = 2_000_000  # output buckets (series x buckets) of one query
    max_scan_readings: int = 50_000_000  # stored readings a raw-path query may aggregate
    statement_timeout_s: float = 30.0
    export_timeout_s: float = 900.0  # a whole export (COPY or cursor) may run this long

    @classmethod
    def from_settings(cls, history: object | None) -> QueryLimits:
        """The limits of a ``history:`` section (:class:`urbanpulse.query.settings.HistorySettings`)."""
        if history is None:
            return cls()
        return cls(**{f: getattr(history, f) for f in cls.__dataclass_fields__ if hasattr(history, f)})


@dataclass(frozen=True)
class RollupAvailability:
    """Which rollup tables can answer: off entirely (``database.rollups.enabled: false``), and how long
    each keeps its rows (``database.retention``; None: forever)."""

    enabled: bool = True
    keep: dict[str, timedelta | None] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: object) -> RollupAvailability:
        """From a whole :class:`urbanpulse.config.Settings`."""
        retention = getattr(getattr(settings, "database", None), "retention", None)
        keep = {t: getattr(retention, t, None) for t, _ in ROLLUPS} if retention is not None else {}
        enabled = getattr(getattr(getattr(settings, "database", None), "rollups", None), "enabled", True)
        return cls(enabled is not False, keep)


@dataclass
class Page:
    """One page of results; ``rows`` are (series_id, bucket/ts us, values, filled).

    Without gap filling the page keeps the database records as they came (``records``, at most
    ``limit``) and builds ``rows`` only when asked: the JSON route reads the records directly,
    one pass per row instead of three."""

    query: HistoryQuery
    series: list[SeriesInfo]
    path: str
    columns: tuple[str, ...]
    filled_rows: list[tuple[int, int, tuple, bool]] | None
    next_cursor: str | None
    records: list[asyncpg.Record] | None = None

    @property
    def rows(self) -> list[tuple[int, int, tuple, bool]]:
        if self.filled_rows is not None:
            return self.filled_rows
        read = _row_reader(self.query)
        return [(*read(r), False) for r in self.records or ()]


def to_us(t: datetime) -> int:
    """Microseconds since the epoch, exactly (no float)."""
    return (t - EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def value_columns(q: HistoryQuery) -> tuple[str, ...]:
    """Columns after (series, bucket): aggregates and percentiles, or value and flags for readings."""
    return q.columns if q.bucket is not None else ("value", "flags")


#: readings of some series over a range, from the hourly rollups (whole hours around the range),
#: else the daily ones: every series reporting at least every 2.4 h keeps rollup_1d
#: (docs/rollups.md); slower ones hold few readings
ESTIMATE_SQL = """
SELECT coalesce(nullif(
    (SELECT coalesce(sum(count), 0) FROM rollup_1h WHERE series_id = ANY($1::int4[])
        AND bucket >= date_trunc('hour', $2::timestamptz) AND bucket < $3), 0),
    (SELECT coalesce(sum(count), 0) FROM rollup_1d WHERE series_id = ANY($1::int4[])
        AND bucket >= date_trunc('day', $2::timestamptz, 'UTC') AND bucket < $3))"""


def _check_size(q: HistoryQuery, n_series: int, limits: QueryLimits) -> None:
    if q.bucket is None:
        return
    total = count_buckets(q.start, q.end, q.bucket, q.tz) * n_series
    if total > limits.max_buckets:
        raise QueryTooLarge(f"the query spans about {total:,} buckets ({n_series} series); the limit is "
                            f"{limits.max_buckets:,}: choose a wider bucket, a shorter range or fewer series")


async def _check_scan(conn: asyncpg.Connection, q: HistoryQuery, plan: Plan, ids: list[int],
                      limits: QueryLimits) -> None:
    """Refuse a raw-path aggregation over more readings than allowed (counted from the rollups)."""
    if plan.path != "raw":
        return
    n = await conn.fetchval(ESTIMATE_SQL, ids, q.start, q.end, timeout=limits.statement_timeout_s)
    if n > limits.max_scan_readings:
        raise QueryTooLarge(f"the query would aggregate {n:,} stored readings; the limit is "
                            f"{limits.max_scan_readings:,}: shorten the range, select fewer series, or drop "
                            "percentiles and align start/end to whole minutes so the rollups answer it")


def _args(q: HistoryQuery, plan: Plan, ids: list[int], pos: Position, limit: int | None) -> list:
    return [ids, q.start, q.end, pos.series_id, from_us(pos.at_us), limit, *plan.bucket_args]


def _row_reader(q: HistoryQuery):  # noqa: ANN202
    """record -> (series_id, bucket us, values tuple); C-level itemgetter, no Python loop per value."""
    n = len(value_columns(q)) - len(q.percentiles) if q.bucket is not None else 2
    if q.percentiles:
        get = itemgetter(*range(2, 3 + n))
        if n == 0:
            return lambda r: (r[0], r[1], tuple(r[2]))
        return lambda r: (r[0], r[1], (*get(r)[:-1], *get(r)[-1]))
    if n == 1:
        return lambda r: (r[0], r[1], (r[2],))
    get = itemgetter(*range(2, 2 + n))
    return lambda r: (r[0], r[1], get(r))


def _rows(records: list[asyncpg.Record], q: HistoryQuery) -> Iterator[tuple[int, int, tuple]]:
    return map(_row_reader(q), records)


class HistoryRunner:
    """Answers :class:`HistoryQuery` objects on a pool with the given limits."""

    def __init__(self, pool: asyncpg.Pool, limits: QueryLimits | None = None,
                 data_classes: list[str] | None = None, rollups: RollupAvailability | None = None,
                 cache: SelectionCache | None = None, catalogue: MetricCatalogue | None = None) -> None:
        """``data_classes``: the caller's scope (``["open"]`` for anonymous open data), None for all.
        ``cache``: where resolved selections are kept briefly (the service's; None: resolve each time).
        ``catalogue``: the metric catalogue the service validates with, which gives the unit of a series the
        registry does not describe (its readings were stored in that unit, converted if sent in another)."""
        self.pool = pool
        self.catalogue = catalogue
        self.limits = limits or QueryLimits()
        self.data_classes = data_classes
        self.rollups = rollups or RollupAvailability()
        self.cache = cache

    def _wants_rollups(self, q: HistoryQuery) -> bool:
        return self.rollups.enabled and q.bucket is not None and not q.percentiles and q.path != "raw"

    async def usable_rollups(self, conn: asyncpg.Connection, q: HistoryQuery, ids: list[int]) -> set[str]:
        """Rollup tables holding every bucket of these series over the query's range: on, not cut
        by retention before ``q.start``, and kept by every series (``rollup_series.finest_us``;
        no row: every level)."""
        if not self._wants_rollups(q):
            return set()
        return self._usable(q, await self._finest(conn, ids))

    async def _finest(self, conn: asyncpg.Connection, ids: list[int]) -> int | None:
        return await conn.fetchval("SELECT max(finest_us) FROM rollup_series WHERE series_id = ANY($1::int4[])",
                                   ids, timeout=self.limits.statement_timeout_s)

    def _usable(self, q: HistoryQuery, finest: int | None) -> set[str]:
        now = datetime.now(timezone.utc)
        return {t for t, width in ROLLUPS
                if (finest is None or finest <= width * 1_000_000)
                and (self.rollups.keep.get(t) is None or q.start >= now - self.rollups.keep[t])}

    async def select(self, conn: asyncpg.Connection, q: HistoryQuery) -> Selection:
        """The query's series (and, when a rollup may answer, their levels): from the cache when
        it holds them, else from the registry (then cached)."""
        key = (q.series, None if self.data_classes is None else tuple(self.data_classes))
        sel = self.cache.get(key) if self.cache is not None else None
        if sel is None:
            series = await resolve_series(conn, q.series, self.limits.max_series, self.data_classes,
                                          catalogue=self.catalogue)
            sel = Selection(series, [s.series_id for s in series])
            if self.cache is not None:
                self.cache.put(key, sel)
        if sel.finest_us == UNKNOWN and self._wants_rollups(q):
            sel.finest_us = await self._finest(conn, sel.ids)
        return sel

    async def prepare(self, conn: asyncpg.Connection, q: HistoryQuery) -> tuple[list[SeriesInfo], Plan, list[int]]:
        """Series, plan and the size checks shared by pages and exports."""
        sel = await self.select(conn, q)
        series, ids = sel.series, sel.ids
        _check_size(q, len(series), self.limits)
        usable = self._usable(q, sel.finest_us) if self._wants_rollups(q) else set()
        plan = plan_query(q, max_buckets=self.limits.max_buckets, usable=usable)
        await _check_scan(conn, q, plan, ids, self.limits)
        return series, plan, ids

    async def page(self, q: HistoryQuery, limit: int | None = None, cursor: str | None = None) -> Page:
        """One page of at most ``limit`` rows and the cursor of the next (None on the last page)."""
        limit = min(self.limits.default_page_rows, self.limits.max_page_rows) if limit is None else limit
        if not 1 <= limit <= self.limits.max_page_rows:
            raise QueryError(f"limit={limit} is out of range; pages hold 1..{self.limits.max_page_rows} rows, "
                             "follow next_cursor for more (or use the export for whole files)")
        fp = q.fingerprint()
        pos = decode_cursor(fp, cursor) if cursor else Position(-1, to_us(q.start))
        # no transaction and no SET: each statement carries the time limit (asyncpg cancels it on
        # the server when it runs out), so a page costs two round trips (series, rows)
        try:
            async with self.pool.acquire() as conn:
                series, plan, ids = await self.prepare(conn, q)
                if plan.path == "readings":
                    records = await self._readings(conn, q, ids, pos, limit + 1)
                else:
                    records = await conn.fetch(plan.sql, *_args(q, plan, ids, pos, limit + 1),
                                               timeout=self.limits.statement_timeout_s)
        except (asyncpg.QueryCanceledError, TimeoutError) as exc:
            raise self._timeout_error() from exc
        next_cursor = None
        if not q.fill:  # the common case, without the filler's generator
            if len(records) > limit:
                next_cursor = encode_cursor(fp, Position(records[limit][0], records[limit][1]))
                records = records[:limit]
            return Page(q, series, plan.path, value_columns(q), None, next_cursor, records)
        else:
            out = list(self._assemble(q, ids, _rows(records, q), pos, exhausted=len(records) <= limit,
                                      stop=limit + 1))
            if len(out) > limit:
                sid, at, _, _, prev = out[limit]
                next_cursor = encode_cursor(fp, Position(sid, at, prev))
            rows = [(sid, at, vals, filled) for sid, at, vals, filled, _ in out[:limit]]
        return Page(q, series, plan.path, value_columns(q), rows, next_cursor)

    async def _readings(self, conn: asyncpg.Connection, q: HistoryQuery, ids: list[int], pos: Position,
                        limit: int) -> list[asyncpg.Record]:
        """Up to ``limit`` readings from ``pos`` on, series by series (each a primary-key range scan)."""
        out: list[asyncpg.Record] = []
        for sid in ids:
            if sid < pos.series_id:
                continue
            lo = from_us(max(pos.at_us, to_us(q.start))) if sid == pos.series_id else q.start
            out += await conn.fetch(READINGS_SQL, sid, lo, q.end, limit - len(out),
                                    timeout=self.limits.statement_timeout_s)
            if len(out) >= limit:
                break
        return out

    def _assemble(self, q: HistoryQuery, ids: list[int], rows: Iterator[tuple[int, int, tuple]], pos: Position,
                  exhausted: bool, stop: int | None) -> Iterator[Out]:
        if not q.fill:
            for n, (sid, at, vals) in enumerate(rows):
                if stop is not None and n >= stop:
                    return
                yield sid, at, vals, False, None
            return
        filler = self.filler(q, ids, pos)
        n = 0
        for o in filler.feed(rows):
            yield o
            n += 1
            if stop is not None and n >= stop:
                return
        if exhausted:
            for o in filler.finish():
                yield o
                n += 1
                if stop is not None and n >= stop:
                    return

    def filler(self, q: HistoryQuery, ids: list[int], pos: Position) -> GapFiller:
        """Gap filler over the query's bucket grid, resuming at ``pos``."""
        assert q.bucket is not None and q.fill is not None
        if q.bucket.is_fixed:
            first = to_us(floor(q.start, q.bucket, q.tz))
            step = q.bucket.seconds * 1_000_000
            grid = Grid(first=first, step=step, n=-(-(to_us(q.end) - first) // step))
        else:
            grid = Grid([to_us(b) for b in boundaries(q.start, q.end, q.bucket, q.tz, self.limits.max_buckets)])
        return GapFiller(ids, grid, value_columns(q), q.fill, pos.series_id, pos.at_us, pos.prev)

    async def stream(self, q: HistoryQuery, chunk: int = 50_000) -> AsyncIterator[tuple[list[SeriesInfo], str,
                                                                                         list[Out]]]:
        """Every row of the query in chunks (a server-side cursor), gap-filled when asked; constant memory."""
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            await self._timeout(conn, self.limits.export_timeout_s)
            try:
                series, plan, ids = await self.prepare(conn, q)
            except asyncpg.QueryCanceledError as exc:
                raise self._timeout_error() from exc
            pos = Position(-1, to_us(q.start))
            filler = self.filler(q, ids, pos) if q.fill else None
            if plan.path == "readings":
                for sid in ids:  # one series after the other, each in key order
                    cur = await conn.cursor(READINGS_SQL, sid, q.start, q.end, None)
                    while True:
                        records = await self._chunk(cur, chunk)
                        if records:
                            yield series, plan.path, [(r[0], r[1], (r[2], r[3]), False, None) for r in records]
                        if len(records) < chunk:
                            break
                return
            cur = await conn.cursor(plan.sql, *_args(q, plan, ids, pos, None))
            while True:
                records = await self._chunk(cur, chunk)
                rows = _rows(records, q)
                if filler is None:
                    out = [(sid, at, vals, False, None) for sid, at, vals in rows]
                else:
                    out = list(filler.feed(rows))
                    if len(records) < chunk:
                        out.extend(filler.finish())
                if out:
                    yield series, plan.path, out
                if len(records) < chunk:
                    return

    async def _chunk(self, cur: asyncpg.cursor.Cursor, n: int) -> list[asyncpg.Record]:
        try:
            return await cur.fetch(n)
        except asyncpg.QueryCanceledError as exc:
            raise self._timeout_error() from exc

    async def _timeout(self, conn: asyncpg.Connection, seconds: float | None = None) -> None:
        ms = int((seconds or self.limits.statement_timeout_s) * 1000)
        await conn.execute(f"SET LOCAL statement_timeout = {ms}")

    def _timeout_error(self) -> QueryTimeout:
        return QueryTimeout(f"the query took longer than {self.limits.statement_timeout_s:g} s and was stopped; "
                            "narrow it: a shorter range, fewer series, a wider bucket, or start/end on whole "
                            "minutes/hours so the rollups answer it")


async def latest(pool: asyncpg.Pool, sensor_id: str, data_classes: list[str] | None = None,
                 catalogue: MetricCatalogue | None = None) -> list[dict]:
    """The newest reading of each metric of a sensor (``GET /sensors/{id}/latest``), each with its ``unit``.

    The unit is what ``/readings`` says of the series (``select_series``): the ``catalogue``'s name for the unit
    every stored reading of the metric is in (``registry.select.stored_unit``; newcomer46:
    an unregistered sensor's newest temperature was a bare number). With ``data_classes`` (the open-data scope)
    only a registered sensor of those classes answers."""
    from urbanpulse.registry import select_series

    async with pool.acquire() as conn:
        described = await select_series(conn, sensor_ids=[sensor_id], data_classes=data_classes, catalogue=catalogue)
        if data_classes is not None and not described:
            return []
        rows = await conn.fetch("""
            SELECT s.metric, r.ts, r.value, r.flags FROM series s
            CROSS JOIN LATERAL (SELECT ts, value, flags FROM readings WHERE series_id = s.id
                                ORDER BY ts DESC LIMIT 1) r
            WHERE s.sensor_id = $1 ORDER BY s.metric""", sensor_id)
    units = {s.metric: s.unit for s in described}
    return [{"metric": r["metric"], "unit": units.get(r["metric"]), "ts": r["ts"], "value": r["value"],
             "flags": r["flags"]} for r in rows]
