#!/usr/bin/env python
"""How much disk the rollups take beside the readings they summarise (issue 14: rollup storage
at most 25 % of the readings' for 10-second data).

For each data shape, a throw-away database on the local PostgreSQL (127.0.0.1:5432, plain
PostgreSQL mode) gets ``--series`` series of synthetic readings through ``ReadingStore.write``
(20,000-reading batches in event-time order, as a live stream or a backlog delivers them), once
with the default rollup policy (a level kept where its bucket holds at least 10 readings of the
series) and once keeping every level (``min_readings_per_bucket: 1``, the behaviour before).
After ``VACUUM ANALYZE``: ``pg_total_relation_size`` (heap, indexes, TOAST) of ``readings``
(all partitions) and of each rollup table. Figures, no pass/fail.

Run:  .venv/bin/python benchmarks/rollup_footprint.py [--series 100] [--days 1]
"""

from __future__ import annotations

import argparse
import asyncio
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

BATCH = 20_000
TABLES = ("rollup_1m", "rollup_1h", "rollup_1d")


def batches(series: int, interval_s: float, days: float) -> list[ReadingColumns]:
    """Every series reporting every ``interval_s`` (with jitter) for ``days``, in event-time order."""
    rng = np.random.default_rng(1)
    per = int(days * 86400 / interval_s)
    base = (int(time.time()) // 86400 - int(days) - 2) * 86400 * 1_000_000
    step = (np.arange(per) * interval_s * 1e6).astype(np.int64)
    ts = np.concatenate([base + step + rng.integers(0, int(interval_s * 1e5) + 1, per) for _ in range(series)])
    sid = np.repeat(np.arange(series), per)
    value = 20 + rng.normal(0, 3, len(ts))
    order = np.argsort(ts, kind="stable")
    names = [f"sensor-{i:04d}" for i in range(series)]
    out = []
    for idx in np.array_split(order, max(1, len(order) // BATCH)):
        n = len(idx)
        out.append(ReadingColumns(
            sensor_id=[names[i] for i in sid[idx]], metric=["temperature"] * n, ts_us=ts[idx], value=value[idx],
            lat=np.full(n, np.nan), lon=np.full(n, np.nan), unit=[None] * n, msg=np.zeros(n, np.int32),
            item=np.full(n, -1, np.int32), has_null_value=np.zeros(n, bool), flags=np.zeros(n, np.int16)))
    return out


async def measure(data: list[ReadingColumns], min_readings: int) -> dict[str, int]:
    name, dsn = services.create_database(services.PG_DSN, prefix="up_bench_footprint")
    try:
        conn = await asyncpg.connect(dsn)
        await migrate(conn, "postgres")
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=prepare_connection)
        partitions = MonthlyPartitions()
        store = ReadingStore(pool, partitions)
        store.rollups.policy = RollupPolicy(min_readings, 8)
        for b in data:
            await store.write(b, [], "kafka")
        await pool.close()
        await conn.execute("VACUUM ANALYZE")
        sizes = {"readings": await conn.fetchval(
            "SELECT sum(pg_total_relation_size(relid))::int8 FROM pg_partition_tree('readings')")}
        for t in TABLES:
            sizes[t] = await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", t)
            sizes[t + "_rows"] = await conn.fetchval(f"SELECT count(*) FROM {t}")
        sizes["readings_rows"] = await conn.fetchval("SELECT count(*) FROM readings")
        await conn.close()
        return sizes
    finally:
        services.drop_database(name)


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=100)
    ap.add_argument("--days", type=float, default=1.0)
    args = ap.parse_args()
    print(f"{args.series} series, {args.days:g} days each; sizes after VACUUM ANALYZE (heap + indexes)\n")
    print("| data | policy | readings | rollup_1m | rollup_1h | rollup_1d | rollups / readings |")
    print("|---|---|---|---|---|---|---|")
    for label, interval in (("10-second", 10.0), ("1-minute", 60.0)):
        data = batches(args.series, interval, args.days if interval < 60 else args.days * 6)
        for policy, k in (("default (10 per bucket)", 10), ("every level", 1)):
            s = await measure(data, k)
            rollups = sum(s[t] for t in TABLES)
            cells = " | ".join(f"{mb(s[t])} ({s[t + '_rows']:,} rows)" for t in TABLES)
            print(f"| {label}, {s['readings_rows']:,} readings | {policy} | {mb(s['readings'])} | {cells} | "
                  f"{100 * rollups / s['readings']:.1f} % |", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
