#!/usr/bin/env python
"""What rollups cost the batch writer, and how fast WindowState.observe is.

Against a throw-away database on the local PostgreSQL (127.0.0.1:5432), ``ReadingStore.write``
throughput for 5000-reading batches with rollups off, and on with each way of shipping the
partials (``stage``: binary COPY + INSERT .. SELECT; ``unnest``: array parameters), and deferred
(``database.rollups.flush_every_s``: partials buffered in memory and merged every ``--flush-s``;
the last flush is inside the clock):

* ``city``    - 1000 series at 1 reading/s: each batch is 5 s of the city (1000 minute rows
                and 1000 hour rows touched per batch, almost all of them updates);
* ``beijing`` - the twelve Beijing stations x eleven metrics, hourly: each reading is its own
                minute (5000 minute rows inserted per batch) and its own hour.

Rollups on use the service's level policy (a level kept where its bucket holds at least 10
readings of the series, learned from scratch in each run); ``all lvls`` keeps every level.
Each figure is the median of 3 runs of 40 batches, one writer at a time; ``x2`` runs two
writers at once, as the pipeline does by default. Figures, no pass/fail.

Run:  .venv/bin/python benchmarks/rollups.py [--batches 40]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import asyncpg
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import services  # noqa: E402

from urbanpulse.model import ReadingColumns  # noqa: E402
from urbanpulse.storage.migrations import migrate  # noqa: E402
from urbanpulse.storage.partitions import MonthlyPartitions  # noqa: E402
from urbanpulse.storage.rollups import RollupPolicy  # noqa: E402
from urbanpulse.storage.writer import ReadingStore, prepare_connection  # noqa: E402
from urbanpulse.windows import WindowSettings, WindowState  # noqa: E402

BATCH = 5000


def columns(sensor: list[str], metric: list[str], ts_us: np.ndarray, value: np.ndarray) -> ReadingColumns:
    n = len(ts_us)
    return ReadingColumns(sensor_id=sensor, metric=metric, ts_us=ts_us, value=value, lat=np.full(n, np.nan),
                          lon=np.full(n, np.nan), unit=[None] * n, msg=np.zeros(n, np.int32),
                          item=np.full(n, -1, np.int32), has_null_value=np.zeros(n, bool),
                          flags=np.zeros(n, np.int16))


def city_batches(n_batches: int) -> list[ReadingColumns]:
    base = (int(time.time()) - 86400) * 1_000_000
    sensors = [f"sensor-{i:04d}" for i in range(1000)]
    rng = np.random.default_rng(0)
    out = []
    for b in range(n_batches):
        sec = np.repeat(np.arange(5 * b, 5 * b + 5), 1000)
        out.append(columns(sensors * 5, ["temperature"] * BATCH, base + sec * 1_000_000,
                           rng.normal(20, 3, BATCH)))
    return out


def beijing_batches(n_batches: int) -> list[ReadingColumns]:
    from urbanpulse.datasets.beijing import read_station, station_files
    sensor, metric, ts, value = [], [], [], []
    for f in station_files():
        st = read_station(f)
        for m, v in st.values.items():
            ok = ~np.isnan(v)
            sensor += [st.sensor_id] * int(ok.sum())
            metric += [m] * int(ok.sum())
            ts.append(st.ts_ms[ok] * 1000)
            value.append(v[ok])
    ts_us, val = np.concatenate(ts), np.concatenate(value)
    order = np.argsort(ts_us, kind="stable")[: n_batches * BATCH]
    return [columns([sensor[i] for i in idx], [metric[i] for i in idx], ts_us[idx], val[idx])
            for idx in np.array_split(order, n_batches)]


async def run(pool: asyncpg.Pool, partitions: MonthlyPartitions, batches: list[ReadingColumns], rollups: bool,
              method: str, writers: int, min_readings: int = 10, flush_s: float = 0.0) -> float:
    async with pool.acquire() as c:
        await c.execute("TRUNCATE readings, rollup_1m, rollup_1h, rollup_1d, rollup_series, rollup_pending")
    store = ReadingStore(pool, partitions, rollups=rollups, rollup_method=method,  # type: ignore[arg-type]
                         rollup_flush_s=flush_s)
    if store.rollups is not None:  # the service's level policy (database.rollups), learned from scratch
        store.rollups.policy = RollupPolicy(min_readings)
    for b in batches:  # series ids and partitions outside the clock
        await store.series.ids_for(pool, b.sensor_id, b.metric)
        await partitions.ensure(pool, b.ts_us)
    queue = list(batches)

    async def writer() -> None:
        while queue:
            await store.write(queue.pop(0), [], "kafka")

    if store.rollup_buffer is not None:
        await store.rollup_buffer.start()  # its liveness lock, outside the clock
    t0 = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    await store.close()  # deferred: the last flush is inside the clock
    return sum(len(b) for b in batches) / (time.perf_counter() - t0)


def bench_windows(batches: list[ReadingColumns], series: int) -> tuple[float, int]:
    ids: dict[tuple[str, str], int] = {}
    w = WindowState(WindowSettings())
    slots = []
    for b in batches:
        slots.append(np.array([ids.setdefault(k, len(ids)) for k in zip(b.sensor_id, b.metric)], np.int32))
    w.assign(np.arange(len(ids)), [m for (_, m) in ids], now_wall_us=0)
    t0 = time.perf_counter()
    for b, s in zip(batches, slots):
        w.observe("kafka", s, b.ts_us, b.value, b.flags, 0)
    return sum(len(b) for b in batches) / (time.perf_counter() - t0), w.nbytes_per_slot()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--flush-s", type=float, default=1.0, help="deferred rollups' flush interval")
    ap.add_argument("--data", default="", help="comma-separated subset of city,beijing")
    ap.add_argument("--configs", default="", help="comma-separated subset, e.g. off,per-batch,deferred")
    args = ap.parse_args()
    name, dsn = services.create_database(services.PG_DSN, prefix="up_bench_rollups")
    try:
        conn = await asyncpg.connect(dsn)
        await migrate(conn, "postgres")
        await conn.close()
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=4, init=prepare_connection)
        partitions = MonthlyPartitions()
        data = {"city": city_batches(args.batches), "beijing": beijing_batches(args.batches)}
        if args.data:
            data = {k: v for k, v in data.items() if k in args.data.split(",")}
        f = args.flush_s
        configs = [("off", False, "stage", 1, 10, 0.0), ("per-batch", True, "stage", 1, 10, 0.0),
                   ("deferred", True, "stage", 1, 10, f), ("unnest", True, "unnest", 1, 10, 0.0),
                   ("all lvls", True, "stage", 1, 1, 0.0), ("defer all", True, "stage", 1, 1, f),
                   ("off x2", False, "stage", 2, 10, 0.0), ("per-b. x2", True, "stage", 2, 10, 0.0),
                   ("defer x2", True, "stage", 2, 10, f)]
        wanted = set(args.configs.split(",")) if args.configs else None
        print(f"{'data':8} {'rollups':10} readings/s (median of {args.repeat} x {args.batches} batches of {BATCH}; "
              f"deferred flushes every {f} s and at the end, inside the clock)  on/off")
        chosen = [c for c in configs if wanted is None or c[0] in wanted]
        for label, batches in data.items():
            rates: dict[str, list[float]] = {c[0]: [] for c in chosen}
            for _ in range(args.repeat):  # interleaved: a neighbour's burst hits every config alike
                for cfg, on, method, writers, k, flush_s in chosen:
                    rates[cfg].append(await run(pool, partitions, batches, on, method, writers, k, flush_s))
            off = {c[3]: statistics.median(rates[c[0]]) for c in chosen if not c[1]}
            for cfg, on, method, writers, k, flush_s in chosen:
                rate = statistics.median(rates[cfg])
                ratio = f"{rate / off[writers]:6.0%}" if on and writers in off else ""
                print(f"{label:8} {cfg:10} {rate:>12,.0f}  {ratio}", flush=True)
            rate, nbytes = bench_windows(batches, 0)
            print(f"{label:8} {'windows':10} {rate:>12,.0f}  (WindowState.observe, {nbytes} bytes/slot)")
        await pool.close()
    finally:
        services.drop_database(name, services.PG_DSN)


if __name__ == "__main__":
    asyncio.run(main())
