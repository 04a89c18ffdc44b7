"""Rows of a history query as Arrow record batches, a bounded number in memory at a time.

Readings (no bucket) come through ``COPY (SELECT ...) TO STDOUT (FORMAT binary)``, a group of
series at a time (:data:`READINGS_COPY_SQL`: one bitmap scan of the group's heap pages, sorted
by series and time in PostgreSQL; groups hold about :data:`COPY_GROUP_ROWS` readings, estimated
from ``rollup_1d``, which bounds each sort; the next group's COPY runs ahead on a second
connection when the pool has one to spare, so its sort overlaps this group's rows). Every row is the same 40 bytes (series_id int4,
ts int8, value float8, flags int2, none NULL), parsed by numpy without a Python object per row.
The COPY is paused while the consumer is behind (the output callback awaits a bounded queue,
so the socket stops being read and PostgreSQL waits), which keeps memory flat however large
the export. Bucketed queries go through :meth:`HistoryRunner.stream` (a server-side cursor
fetched in chunks, gap filling included).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import numpy as np
import pyarrow as pa

from urbanpulse.quality.report import quality_section
from urbanpulse.query.errors import QueryTimeout
from urbanpulse.query.fill import Out
from urbanpulse.query.plan import READINGS_COPY_SQL
from urbanpulse.query.run import ESTIMATE_SQL, HistoryRunner, value_columns
from urbanpulse.query.series import SeriesInfo
from urbanpulse.query.spec import HistoryQuery
from urbanpulse.storage.binary_copy import PG_EPOCH_OFFSET_US

_HEADER_LEN = 19  # PGCOPY\n\377\r\n\0 + flags int32 + header extension length int32 (0)
_ROW = np.dtype([("nfields", ">i2"), ("l_sid", ">i4"), ("sid", ">i4"), ("l_ts", ">i4"), ("ts", ">i8"),
                 ("l_val", ">i4"), ("val", ">f8"), ("l_flags", ">i4"), ("flags", ">i2")])
assert _ROW.itemsize == 40


@dataclass
class ExportInfo:
    """What the file describes: the query, its series (with registry metadata) and the path used."""

    query: HistoryQuery
    series: list[SeriesInfo]
    path: str
    columns: tuple[str, ...]
    quality: dict | None = None  # the data-quality report of the exported series over the range


def schema(info: ExportInfo) -> pa.Schema:
    """Arrow schema of the rows: sensor, metric, time, then the value columns."""
    q = info.query
    fields = [pa.field("sensor_id", pa.dictionary(pa.int32(), pa.string())),
              pa.field("metric", pa.dictionary(pa.int32(), pa.string())),
              pa.field("ts" if q.bucket is None else "bucket", pa.timestamp("us", tz="UTC"))]
    if q.bucket is None:
        fields += [pa.field("value", pa.float64()), pa.field("flags", pa.int16())]
    else:
        fields += [pa.field(c, pa.int64() if c == "count" else pa.float64()) for c in info.columns]
        if q.fill:
            fields.append(pa.field("filled", pa.bool_()))
    return pa.schema(fields)


class _SeriesLookup:
    """series id -> dictionary index of its sensor and metric (numpy take, no per-row dict)."""

    def __init__(self, series: list[SeriesInfo]) -> None:
        self.sensors = pa.array(sorted({s.sensor_id for s in series}), pa.string())
        self.metrics = pa.array(sorted({s.metric for s in series}), pa.string())
        sensor_pos = {v: i for i, v in enumerate(self.sensors.to_pylist())}
        metric_pos = {v: i for i, v in enumerate(self.metrics.to_pylist())}
        ids = np.array([s.series_id for s in series], np.int64)
        self.ids = ids
        self.sensor_idx = np.array([sensor_pos[s.sensor_id] for s in series], np.int32)
        self.metric_idx = np.array([metric_pos[s.metric] for s in series], np.int32)
        self.order = np.argsort(ids)

    def columns(self, sid: np.ndarray) -> tuple[pa.Array, pa.Array]:
        pos = self.order[np.searchsorted(self.ids[self.order], sid)]
        return (pa.DictionaryArray.from_arrays(pa.array(self.sensor_idx[pos]), self.sensors),
                pa.DictionaryArray.from_arrays(pa.array(self.metric_idx[pos]), self.metrics))


def _readings_batch(rows: np.ndarray, lookup: _SeriesLookup, sch: pa.Schema) -> pa.RecordBatch:
    sid = rows["sid"].astype(np.int32)
    sensor, metric = lookup.columns(sid)
    ts = pa.array(rows["ts"].astype(np.int64) + PG_EPOCH_OFFSET_US, pa.timestamp("us", tz="UTC"))
    return pa.RecordBatch.from_arrays([sensor, metric, ts, pa.array(rows["val"].astype(np.float64)),
                                       pa.array(rows["flags"].astype(np.int16))], schema=sch)


def _bucket_batch(out: list[Out], info: ExportInfo, lookup: _SeriesLookup, sch: pa.Schema) -> pa.RecordBatch:
    sid = np.fromiter((o[0] for o in out), np.int32, len(out))
    sensor, metric = lookup.columns(sid)
    ts = pa.array(np.fromiter((o[1] for o in out), np.int64, len(out)), pa.timestamp("us", tz="UTC"))
    cols = [sensor, metric, ts]
    for i, name in enumerate(info.columns):
        cols.append(pa.array([o[2][i] for o in out], pa.int64() if name == "count" else pa.float64()))
    if info.query.fill:
        cols.append(pa.array([o[3] for o in out], pa.bool_()))
    return pa.RecordBatch.from_arrays(cols, schema=sch)


#: readings one COPY sorts at most (estimated): bounds PostgreSQL's sort (memory, temp files) and
#: the wait before the group's first row; a bigger group reads each heap page fewer times. With
#: read-ahead only the first group's sort is waited for: 400,000 (a 1,000,000-row export in three
#: groups) exported faster than 2,000,000, 200,000 or 100,000 (benchmarks/README.md, issue 9)
COPY_GROUP_ROWS = 400_000
#: readings per series over the range, from the daily rollups (whole days around the range);
#: a series without daily rollups counts 0 (it keeps none because it reports rarely)
GROUP_COUNTS_SQL = """
SELECT series_id, sum(count)::int8 FROM rollup_1d WHERE series_id = ANY($1::int4[])
   AND bucket >= date_trunc('day', $2::timestamptz, 'UTC') AND bucket < $3 GROUP BY series_id"""


def copy_groups(ids: list[int], counts: dict[int, int], target: int = COPY_GROUP_ROWS) -> list[list[int]]:
    """``ids`` (in order) cut into consecutive groups of about ``target`` readings each; a series
    bigger than ``target`` is a group of its own."""
    groups: list[list[int]] = []
    current: list[int] = []
    n = 0
    for sid in ids:
        c = counts.get(sid, 0)
        if current and n + c > target:
            groups.append(current)
            current, n = [], 0
        current.append(sid)
        n += c
    if current:
        groups.append(current)
    return groups


#: gaps listed per series in a file's quality section (counts and totals cover all of them;
#: GET /quality lists up to 1,000): the header stays small and its size does not grow with the range
GAPS_IN_FILE = 10


def _trim_gaps(report: dict) -> dict:
    for s in report.get("series", []):
        gaps = s.get("gaps")
        if isinstance(gaps, list) and len(gaps) > GAPS_IN_FILE:
            s["gaps"] = gaps[:GAPS_IN_FILE]
            s["gaps_listed"] = GAPS_IN_FILE
    return report


async def estimate_rows(runner: HistoryRunner, q: HistoryQuery, ids: list[int]) -> int:
    """Readings in range, from the rollups (whole days/hours around the range), for progress bars."""
    async with runner.pool.acquire() as conn:
        return int(await conn.fetchval(ESTIMATE_SQL, ids, q.start, q.end))


async def record_batches(runner: HistoryRunner, q: HistoryQuery, chunk_rows: int = 32_768,
                         use_copy: bool = True, quality: bool = False) -> tuple[ExportInfo,
                                                                              AsyncIterator[pa.RecordBatch]]:
    """The export's description and an iterator of its record batches (about ``chunk_rows`` each).

    ``use_copy=False`` reads readings through the cursor path too (servers without COPY);
    ``quality`` adds the data-quality report of the series over the range (one more pass over
    the readings, before the first row; the report holds up to 1,000 gaps per series in memory
    while it is built, so it is opt-in: without it the export's memory is flat)."""
    async with runner.pool.acquire() as conn:
        series, plan, ids = await runner.prepare(conn, q)
        report = _trim_gaps(await quality_section(conn, series, q.start, q.end)) if quality else None
    info = ExportInfo(q, series, plan.path, value_columns(q) if q.bucket is not None else ("value", "flags"),
                      report)
    sch = schema(info)
    lookup = _SeriesLookup(series)
    if q.bucket is None and use_copy:
        return info, _copy_batches(runner, q, ids, lookup, sch, chunk_rows)

    async def from_cursor() -> AsyncIterator[pa.RecordBatch]:
        async for _, _, out in runner.stream(q, chunk=chunk_rows):
            if q.bucket is None:
                rows = np.empty(len(out), _ROW)
                rows["sid"] = [o[0] for o in out]
                rows["ts"] = np.array([o[1] for o in out], np.int64) - PG_EPOCH_OFFSET_US
                rows["val"] = [o[2][0] for o in out]
                rows["flags"] = [o[2][1] for o in out]
                yield _readings_batch(rows, lookup, sch)
            else:
                yield _bucket_batch(out, info, lookup, sch)

    return info, from_cursor()


async def _second_connection(pool: asyncpg.Pool) -> asyncpg.pool.PoolConnectionProxy | None:
    """A connection for reading ahead, only when the pool can spare one at once (an idle one
    beyond the next request's, or room to open one): an export never waits for a second
    connection while holding its first, so concurrent exports cannot starve each other or the
    writers. None when there is none to spare."""
    if pool.get_idle_size() < 2 and pool.get_size() >= pool.get_max_size():
        return None
    try:
        return await pool.acquire(timeout=PREFETCH_ACQUIRE_S)
    except (TimeoutError, asyncio.TimeoutError):
        return None


#: how long an export tries for its read-ahead connection before going on with one
PREFETCH_ACQUIRE_S = 0.05


async def _copy_batches(runner: HistoryRunner, q: HistoryQuery, ids: list[int], lookup: _SeriesLookup,
                        sch: pa.Schema, chunk_rows: int) -> AsyncIterator[pa.RecordBatch]:
    """One binary COPY per group of series (:func:`copy_groups`), parsed into batches of about
    ``chunk_rows`` rows; the producer waits while a batch is queued.

    Read-ahead: PostgreSQL sorts a group before it sends its first row, so with one connection
    the export stood still for every group's sort. With a second connection (when the pool has
    one to spare, :func:`_second_connection`) group k+1's COPY starts when group k's starts, on
    the other connection, and its sort runs while group k streams; its rows are taken only once
    group k has ended (until then asyncpg stops reading its socket and PostgreSQL waits), so the
    order and the memory bound are those of one connection. Each statement sees its own snapshot,
    as before (READ COMMITTED)."""
    queue: asyncio.Queue = asyncio.Queue(maxsize=1)
    chunk_bytes = chunk_rows * _ROW.itemsize
    done = object()
    carry = bytearray()  # whole rows, then possibly part of a row or the 2-byte trailer

    async def emit(n_rows: int) -> None:
        rows = np.frombuffer(carry, _ROW, count=n_rows).copy()
        del carry[:n_rows * _ROW.itemsize]
        await queue.put(_readings_batch(rows, lookup, sch))

    async def copy_group(conn: asyncpg.Connection, group: list[int], turn: asyncio.Event | None) -> None:
        """COPY one group; its rows enter ``carry`` only after ``turn`` (the previous group's end)."""
        header_left = _HEADER_LEN

        async def on_data(data: bytes) -> None:
            nonlocal header_left
            if turn is not None:
                await turn.wait()
            if header_left:
                skip = min(header_left, len(data))
                data, header_left = data[skip:], header_left - skip
            carry.extend(data)
            whole = (len(carry) - 2) // _ROW.itemsize  # the last 2 bytes may be the trailer
            if whole * _ROW.itemsize >= chunk_bytes:
                await emit(whole)

        await conn.copy_from_query(READINGS_COPY_SQL, group, q.start, q.end, output=on_data, format="binary")
        if turn is not None:
            await turn.wait()
        if len(carry) % _ROW.itemsize != 2 or carry[-2:] != b"\xff\xff":
            raise RuntimeError("binary COPY of readings did not end with its trailer")
        del carry[-2:]

    async def prepare(conn: asyncpg.Connection) -> None:
        # no JIT: compiling the scan costs more than it saves on a plain read of stored rows
        await conn.execute(f"SET LOCAL statement_timeout = {int(runner.limits.export_timeout_s * 1000)}; "
                           "SET LOCAL jit = off")

    async def produce() -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                first = await stack.enter_async_context(runner.pool.acquire())
                await stack.enter_async_context(first.transaction(readonly=True))
                await prepare(first)
                counts = dict(await first.fetch(GROUP_COUNTS_SQL, ids, q.start, q.end))
                groups = copy_groups(ids, counts, COPY_GROUP_ROWS)
                conns = [first]
                if len(groups) > 1:
                    second = await _second_connection(runner.pool)
                    if second is not None:
                        stack.push_async_callback(runner.pool.release, second)
                        await stack.enter_async_context(second.transaction(readonly=True))
                        await prepare(second)
                        conns.append(second)
                running: list[asyncio.Task] = []
                try:
                    ended: asyncio.Event | None = None
                    for k, group in enumerate(groups):
                        if len(running) == len(conns):  # this group's connection is busy with group k-2
                            await running.pop(0)
                        mine = asyncio.Event()
                        task = asyncio.create_task(copy_group(conns[k % len(conns)], group, ended))
                        # the next group's turn comes when this one has ended well (after a
                        # failure it never comes: the failure is awaited first and ends the export)
                        task.add_done_callback(lambda t, e=mine: e.set() if not t.cancelled()
                                               and t.exception() is None else None)
                        running.append(task)
                        ended = mine
                    for task in running:
                        await task
                finally:
                    for task in running:
                        task.cancel()
                    for task in running:
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task
            if carry:
                await emit(len(carry) // _ROW.itemsize)
            await queue.put(done)
        except asyncio.CancelledError:
            raise  # the consumer went away (its finally cancels this task): nobody takes a put any more
        except asyncpg.QueryCanceledError:
            await queue.put(QueryTimeout(f"the export took longer than {runner.limits.export_timeout_s:g} s; "
                                         "export a shorter range or fewer series per file"))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            await queue.put(exc)

    task = asyncio.create_task(produce())
    try:
        while True:
            item = await queue.get()
            if item is done:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
