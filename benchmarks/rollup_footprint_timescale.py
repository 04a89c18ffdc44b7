#!/usr/bin/env python
"""Rollup storage beside the readings on TimescaleDB, both compressed (issue 14: rollup storage at
most the readings' compressed size on TimescaleDB).

The only TimescaleDB here is the CI stand-in (PGlite: TimescaleDB 2.23 compiled to WASM, in
memory, one connection; tests/timescale). For each data shape (``--series`` series every 10 s, or
every minute) and each rollup policy (the default, a level kept where its bucket holds at least 10
readings of the series, its interval learned from the readings; and every level, the behaviour
before the level policy), a fresh stand-in gets the schema of ``migrate(conn, "auto")`` and the
readings in event-time order, ``--batch`` readings per transaction: the readings inserted
(``INSERT .. SELECT FROM unnest``: the stand-in has no COPY) and their rollup partials merged by
the writer's own ``RollupWriter`` (the ``unnest`` method) in the same transaction, as the
per-batch path does. Chunks are compressed as the compression policy would compress them (each
hypertable's chunks wholly before the current batch's day, as the data goes; everything at the
end): segment by ``series_id``, order by time, the settings of migrations 2 and 41.

Reported per table: ``hypertable_size`` (heap, indexes, TOAST of every chunk, compressed ones
included), the size its compressed chunks had before compression
(``hypertable_compression_stats``), and rows. Figures, no pass/fail.

What it is worth: sizes are PostgreSQL pages and carry over to a server (the same TimescaleDB
compression code); with few series each chunk's fixed cost (a compressed chunk is a table with
its index: a few 8 kB pages) weighs more than on a city's worth. Times are the WASM build's.

Run:  .venv/bin/python benchmarks/rollup_footprint_timescale.py [--series 1] [--days 365] [--batch 500]
      [--shapes 10s,1m] [--policies default,every]
      (--days is the one-minute span; the 10-second shape runs a sixth of it: the same readings.
      The stand-in dies ("RuntimeError: unreachable") on a merge of about 500 minute rows at once:
      one-minute data with every level needs --batch 100, and then a shorter span to finish soon)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import services  # noqa: E402

from urbanpulse.storage.migrations import migrate  # noqa: E402
from urbanpulse.storage.rollups import DAY_US, RollupPolicy, RollupWriter, rollup_partials  # noqa: E402
from urbanpulse.storage.writer import prepare_connection  # noqa: E402

BASE_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
TABLES = ("readings", "rollup_1m", "rollup_1h", "rollup_1d")


def readings(series: int, interval_s: float, days: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(series index, ts_us, value) of every series every ``interval_s`` (jittered by up to a
    tenth of it) for ``days``, in event-time order; values a daily cycle plus noise, rounded to
    0.1 as sensors report them."""
    rng = np.random.default_rng(seed)
    per = int(days * 86400 / interval_s)
    step = (np.arange(per) * interval_s * 1e6).astype(np.int64)
    ts = np.concatenate([BASE_US + step + rng.integers(0, int(interval_s * 1e5) + 1, per) for _ in range(series)])
    idx = np.repeat(np.arange(series), per)
    day = (ts % DAY_US) / DAY_US
    value = np.round(15 + 5 * np.sin(2 * np.pi * day) + idx + rng.normal(0, 0.5, len(ts)), 1)
    order = np.argsort(ts, kind="stable")
    return idx[order], ts[order], value[order]


async def compress_before(conn, ts_us: int) -> None:  # noqa: ANN001
    """Compress every chunk of each hypertable that ends at or before ``ts_us``."""
    for t in TABLES:
        await conn.fetch(f"""SELECT compress_chunk(format('%I.%I', chunk_schema, chunk_name)::regclass,
                                                  if_not_compressed => true)
                             FROM timescaledb_information.chunks
                             WHERE hypertable_name = '{t}' AND NOT is_compressed
                               AND range_end <= timestamptz 'epoch' + $1 * interval '1 microsecond'""", ts_us)


async def run(series: int, interval_s: float, days: float, k: int, batch: int) -> dict[str, dict[str, int]]:
    idx, ts, val = readings(series, interval_s, days)
    with tempfile.TemporaryDirectory(prefix="rollup-fp-ts-") as tmp:
        with services.timescale_standin(Path(tmp)) as (host, port):
            conn = await services.connect_timescale(host, port)
            try:
                assert await migrate(conn, "auto") == "timescaledb"
                await prepare_connection(conn)
                ids = np.array([await conn.fetchval(
                    "INSERT INTO series (sensor_id, metric) VALUES ($1, 'temperature') RETURNING id", f"s{i}")
                    for i in range(series)], np.int32)
                sid = ids[idx]
                writer = RollupWriter("unnest", RollupPolicy(k, 8))
                t0 = time.perf_counter()
                day = ts[0] // DAY_US
                for i in range(0, len(ts), batch):
                    s, t, v = sid[i:i + batch], ts[i:i + batch], val[i:i + batch]
                    async with conn.transaction():
                        await conn.execute("""
                            INSERT INTO readings (series_id, ts, value, flags, source)
                            SELECT s, timestamptz 'epoch' + t * interval '1 microsecond', v, 0, 2
                            FROM unnest($1::int4[], $2::int8[], $3::float8[]) AS u(s, t, v)""",
                                           s.tolist(), t.tolist(), v.tolist())
                        await writer.merge(conn, rollup_partials(s, t, v))
                    if t[-1] // DAY_US != day:  # a new day: what lies wholly before it is compressed
                        day = t[-1] // DAY_US
                        await compress_before(conn, int(day * DAY_US))
                await compress_before(conn, int(ts[-1] + 400 * DAY_US))
                elapsed = time.perf_counter() - t0
                out: dict[str, dict[str, int]] = {}
                for t in TABLES:
                    stats = await conn.fetchrow(f"""
                        SELECT coalesce(sum(before_compression_total_bytes), 0)::int8 AS before,
                               coalesce(sum(after_compression_total_bytes), 0)::int8 AS after,
                               coalesce(sum(number_compressed_chunks), 0)::int8 AS chunks
                        FROM hypertable_compression_stats('{t}')""")
                    out[t] = {"size": int(await conn.fetchval("SELECT hypertable_size($1::regclass)", t) or 0),
                              "before": int(stats["before"]), "after": int(stats["after"]),
                              "chunks": int(stats["chunks"]),
                              "rows": int(await conn.fetchval(f"SELECT count(*) FROM {t}"))}
                kept = await conn.fetch("SELECT finest_us, count(*) AS n FROM rollup_series GROUP BY 1 ORDER BY 1")
                out["_"] = {"seconds": int(elapsed), "decided": sum(r["n"] for r in kept),
                            "finest_us": int(kept[0]["finest_us"]) if kept else 0}
                return out
            finally:
                conn.terminate()


def kb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=1)
    ap.add_argument("--days", type=float, default=365.0, help="span of the one-minute shape")
    ap.add_argument("--batch", type=int, default=500, help="readings per transaction (the stand-in "
                    "crashes on one merge of 500 minute rows: 100 for one-minute data with every level)")
    ap.add_argument("--shapes", default="10s,1m")
    ap.add_argument("--policies", default="default,every")
    args = ap.parse_args()
    print(f"{args.series} series; TimescaleDB 2.23 stand-in; every chunk compressed (segment by series_id)\n")
    print("| data | policy | readings | rollup_1m | rollup_1h | rollup_1d | rollups / readings, compressed |"
          " rollups / readings, uncompressed |")
    print("|---|---|---|---|---|---|---|---|")
    shapes = {"10s": ("10-second", 10.0, args.days / 6), "1m": ("1-minute", 60.0, args.days)}
    for key in args.shapes.split(","):
        label, interval, days = shapes[key]
        for policy in args.policies.split(","):
            k = 10 if policy == "default" else 1
            r = await run(args.series, interval, days, k, args.batch)
            rollups = sum(r[t]["size"] for t in TABLES[1:])
            rollups_before = sum(r[t]["before"] for t in TABLES[1:])
            cells = " | ".join(f"{kb(r[t]['size'])} ({r[t]['rows']:,} rows, {r[t]['chunks']} chunks)"
                               for t in TABLES[1:])
            print(f"| {label}, {days:g} days, {r['readings']['rows']:,} readings | "
                  f"{'default (10 per bucket)' if k == 10 else 'every level'} | "
                  f"{kb(r['readings']['size'])} ({r['readings']['chunks']} chunks; {kb(r['readings']['before'])} "
                  f"before compression) | {cells} | **{100 * rollups / r['readings']['size']:.1f} %** | "
                  f"{100 * rollups_before / max(1, r['readings']['before']):.1f} % |", flush=True)
            print(f"  ({r['_']['seconds']} s; {r['_']['decided']} series decided, finest level "
                  f"{r['_']['finest_us'] / 60e6:g} min)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
