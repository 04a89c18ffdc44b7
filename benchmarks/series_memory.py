#!/usr/bin/env python
"""Memory per series, accounted in full (issue 14 item 5): a measurement.

In a fresh Python process against a throw-away database: the service's per-series holders
(``ReadingStore`` with its series registry and rollup writer, ``StreamAnalytics`` with windows,
detectors, slot map and alert state) are warmed up on 100 series, then ``--series`` more series
arrive, ``--readings`` readings each, in 20,000-reading batches through the same calls the
pipeline makes (series ids, analysis, write with the analysis in the transaction). Reported:
RSS growth per series (after ``gc.collect()``), the numpy arrays each holder reports, and what
``tracemalloc`` attributes to each source file (Python objects: dicts, lists, strings, tuples).

Run:  .venv/bin/python benchmarks/series_memory.py [--series 100000] [--readings 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import asyncpg  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402

import services  # noqa: E402

from urbanpulse.analytics import StreamAnalytics  # noqa: E402
from urbanpulse.config import load_settings  # noqa: E402
from urbanpulse.model import ReadingColumns  # noqa: E402
from urbanpulse.storage.migrations import migrate  # noqa: E402
from urbanpulse.storage.partitions import MonthlyPartitions  # noqa: E402
from urbanpulse.storage.rollups import RollupPolicy  # noqa: E402
from urbanpulse.storage.writer import ReadingStore, prepare_connection  # noqa: E402

BATCH = 20_000


def rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


def batches(first: int, series: int, readings: int) -> list[ReadingColumns]:
    base = int((time.time() - 7200) * 1e6)
    sid = np.tile(np.arange(first, first + series), readings)
    ts = base + np.repeat(np.arange(readings), series).astype(np.int64) * 10_000_000
    rng = np.random.default_rng(0)
    out = []
    for idx in np.array_split(np.arange(len(sid)), max(1, len(sid) // BATCH)):
        n = len(idx)
        out.append(ReadingColumns(
            [f"sensor-{s:06d}" for s in sid[idx]], ["temperature"] * n, ts[idx], 20 + rng.normal(0, 1, n),
            np.full(n, np.nan), np.full(n, np.nan), [None] * n, np.zeros(n, np.int32), np.full(n, -1, np.int32),
            np.zeros(n, bool), np.zeros(n, np.int16)))
    return out


async def feed(a: StreamAnalytics, store: ReadingStore, data: list[ReadingColumns]) -> None:
    for rc in data:
        sid = await store.series.ids_for(store.pool, rc.sensor_id, rc.metric)
        prepared = await a.ready(await a.prepare("kafka", rc, sid))
        await store.write(rc, [], "kafka", series_ids=sid, in_transaction=lambda c: a.write(c, prepared))
        if prepared is not None:
            a.committed(prepared)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--readings", type=int, default=3)
    ap.add_argument("--no-trace", action="store_true", help="RSS only (tracemalloc's own overhead left out)")
    args = ap.parse_args()
    name, dsn = services.create_database(services.PG_DSN, prefix="up_bench_memory")
    try:
        conn = await asyncpg.connect(dsn)
        await migrate(conn, "postgres")
        await conn.close()
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=3, init=prepare_connection)
        settings = load_settings(None, database={"dsn": dsn})
        a = StreamAnalytics(settings, pool)
        await a.start()
        store = ReadingStore(pool, MonthlyPartitions())
        store.rollups.policy = RollupPolicy(10, 8)
        await feed(a, store, batches(10**7, 100, args.readings))  # kernels loaded, buffers sized
        data = batches(0, args.series, args.readings)
        before = rss()
        if not args.no_trace:
            tracemalloc.start(1)
            snap0 = tracemalloc.take_snapshot()
        await feed(a, store, data)
        del data
        gc.collect()
        if not args.no_trace:
            snap1 = tracemalloc.take_snapshot()
            tracemalloc.stop()
        after = rss()
        n = args.series
        print(f"{n:,} series, {args.readings} readings each; RSS {before / 1e6:.1f} -> {after / 1e6:.1f} MB, "
              f"**{(after - before) / n:,.0f} bytes per series**"
              f"{' (tracemalloc on: its own overhead included)' if not args.no_trace else ''}\n")
        arrays = {
            "windows (numpy, per slot)": a.windows.nbytes_per_slot(),
            "detectors (numpy, per slot)": a.bank.nbytes_per_slot(),
            "analytics slot map (numpy)": 8,
            "rollup interval learner (numpy, per series id)": 8 + 4 * store.rollups.learner.RING + 16,
            "rollup level decisions (numpy, per series id)": 8,
        }
        print("| numpy arrays | bytes per series |\n|---|---|")
        for k, v in arrays.items():
            print(f"| {k} | {v} |")
        if args.no_trace:
            await a.stop()
            await pool.close()
            return
        by_file: dict[str, int] = defaultdict(int)
        for stat in snap1.compare_to(snap0, "filename"):
            f = stat.traceback[0].filename
            short = f.split("/src/")[-1] if "/src/" in f else f.split("site-packages/")[-1]
            by_file[short] += stat.size_diff
        print("\n| allocated by (tracemalloc, growth) | bytes per series |\n|---|---|")
        for f, size in sorted(by_file.items(), key=lambda kv: -kv[1])[:14]:
            print(f"| {f} | {size / n:,.0f} |")
        await a.stop()
        await pool.close()
    finally:
        services.drop_database(name)


if __name__ == "__main__":
    asyncio.run(main())
