#!/usr/bin/env python
"""Continuous aggregates against our rollups, on the only TimescaleDB here: the PGlite stand-in.

What it measures, on the same readings (``--series`` series every ``--interval-s`` for
``--hours``, inserted with INSERT: the stand-in has no COPY), one connection:

* **ours**: the time to merge the readings' partials (numpy, then ``merge_partials`` with the
  ``unnest`` method, every level kept) into ``rollup_1m/1h/1d``, and their size before and after
  ``compress_chunk`` (segment by series_id, order by bucket: migration 41);
* **cagg**: a 1-minute continuous aggregate over ``readings`` with the same columns (count, avg,
  stddev, min, max, first/last by ts) and a 1-hour one, created ``WITH NO DATA``: the time of
  ``refresh_continuous_aggregate`` over everything, and the materialisation's size before and
  after compressing it;
* **late readings**: ``--late`` readings spread over the whole span inserted afterwards; ours
  merges their partials, the cagg refreshes the invalidated range.

What it is worth: PGlite is PostgreSQL compiled to WASM running TimescaleDB's SQL in one
process, single-user, with its own storage layer; absolute times are not a server's, and the
ratio between two SQL paths carries over only roughly. Sizes (pages) are PostgreSQL's and carry
over better. Figures, no pass/fail.

Run:  .venv/bin/python benchmarks/rollup_cagg.py [--series 50 --hours 6 --interval-s 10]
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
from urbanpulse.storage.rollups import merge_partials, rollup_partials  # noqa: E402

BASE_US = 1_709_251_200_000_000  # 2024-03-01T00:00:00Z

CAGG = """
CREATE MATERIALIZED VIEW {name} WITH (timescaledb.continuous) AS
SELECT series_id, time_bucket('{width}', ts) AS bucket, count(*) AS count, avg(value) AS mean,
       stddev_samp(value) AS std, min(value) AS min, max(value) AS max,
       first(value, ts) AS first, last(value, ts) AS last
FROM readings GROUP BY 1, 2 WITH NO DATA"""


async def insert(conn, sid: np.ndarray, ts: np.ndarray, val: np.ndarray, chunk: int = 2_000) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    for i in range(0, len(sid), chunk):
        await conn.execute("""
            INSERT INTO readings (series_id, ts, value, flags, source)
            SELECT s, timestamptz 'epoch' + t * interval '1 microsecond', v, 0, 4
            FROM unnest($1::int4[], $2::int8[], $3::float8[]) AS u(s, t, v)""",
                           sid[i:i + chunk].tolist(), ts[i:i + chunk].tolist(), val[i:i + chunk].tolist())
    return time.perf_counter() - t0


async def ours(conn, sid: np.ndarray, ts: np.ndarray, val: np.ndarray, chunk: int = 2_000) -> float:  # noqa: ANN001
    """Merge in time order, ``chunk`` readings per transaction (a flush's worth; the stand-in
    drops the connection on one statement with very large array parameters)."""
    order = np.argsort(ts, kind="stable")
    t0 = time.perf_counter()
    for i in range(0, len(order), chunk):
        idx = order[i:i + chunk]
        async with conn.transaction():
            await merge_partials(conn, rollup_partials(sid[idx], ts[idx], val[idx]), "unnest")
    return time.perf_counter() - t0


async def sizes(conn, tables: list[str]) -> int:  # noqa: ANN001
    return sum([await conn.fetchval("SELECT hypertable_size($1::regclass)", t) or 0 for t in tables])


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=50)
    ap.add_argument("--hours", type=float, default=6)
    ap.add_argument("--interval-s", type=float, default=10)
    ap.add_argument("--late", type=int, default=500)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    per = int(args.hours * 3600 / args.interval_s)
    ts = BASE_US + (np.arange(per) * args.interval_s * 1e6).astype(np.int64)
    tmp = tempfile.mkdtemp(prefix="rollup-cagg-")
    with services.timescale_standin(Path(tmp)) as (h, p):
        conn = await services.connect_timescale(h, p)
        assert await migrate(conn, "auto") == "timescaledb"
        ids = [await conn.fetchval("INSERT INTO series (sensor_id, metric) VALUES ($1, 'pm2_5') RETURNING id",
                                   f"s{i}") for i in range(args.series)]
        sid = np.repeat(np.array(ids, np.int32), per)
        t_all = np.tile(ts, args.series)
        val = 20 + rng.normal(0, 3, len(sid))
        n = len(sid)
        t_ins = await insert(conn, sid, t_all, val)
        readings = await sizes(conn, ["readings"])
        print(f"{n:,} readings ({args.series} series every {args.interval_s:g} s for {args.hours:g} h), "
              f"INSERT {n / t_ins:,.0f}/s; readings {readings / 1e6:.1f} MB")
        t_ours = await ours(conn, sid, t_all, val)
        rollup_tables = ["rollup_1m", "rollup_1h", "rollup_1d"]
        ours_size = await sizes(conn, rollup_tables)
        print(f"ours   merge every level: {t_ours:6.2f} s ({n / t_ours:,.0f} readings/s); "
              f"size {ours_size / 1e6:.2f} MB (1m+1h+1d)")
        for name, width in (("cagg_1m", "1 minute"), ("cagg_1h", "1 hour")):
            await conn.execute(CAGG.format(name=name, width=width))
        t0 = time.perf_counter()
        for name in ("cagg_1m", "cagg_1h"):
            await conn.execute(f"CALL refresh_continuous_aggregate('{name}', NULL, NULL)")
        t_cagg = time.perf_counter() - t0
        mat = [r[0] for r in await conn.fetch("""
            SELECT format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name)
            FROM timescaledb_information.continuous_aggregates ORDER BY view_name""")]
        cagg_size = await sizes(conn, mat)
        print(f"cagg   refresh 1m+1h:     {t_cagg:6.2f} s ({n / t_cagg:,.0f} readings/s); "
              f"size {cagg_size / 1e6:.2f} MB (1m+1h)")
        # late readings spread over the span: ours merges them, the cagg refreshes what they invalidate
        k = args.late
        lsid = rng.choice(np.array(ids, np.int32), k)
        lts = BASE_US + rng.integers(0, int(args.hours * 3600e6), k) // 1000 * 1000 + 1  # between the readings
        lval = 20 + rng.normal(0, 3, k)
        await insert(conn, lsid, lts, lval)
        t_late_ours = await ours(conn, lsid, lts, lval)
        t0 = time.perf_counter()
        for name in ("cagg_1m", "cagg_1h"):
            await conn.execute(f"CALL refresh_continuous_aggregate('{name}', NULL, NULL)")
        t_late_cagg = time.perf_counter() - t0
        print(f"late   {k} readings: ours {t_late_ours:.2f} s, cagg refresh {t_late_cagg:.2f} s")
        for name in ("cagg_1m", "cagg_1h"):  # segments by the GROUP BY columns but the bucket: series_id
            await conn.execute(f"ALTER MATERIALIZED VIEW {name} SET (timescaledb.compress = true)")
        for t in rollup_tables + mat:
            await conn.fetch(f"SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('{t}') c")
        print(f"compressed: ours {await sizes(conn, rollup_tables) / 1e6:.2f} MB, cagg "
              f"{await sizes(conn, mat) / 1e6:.2f} MB, readings {readings / 1e6:.1f} MB uncompressed")
        conn.terminate()


if __name__ == "__main__":
    asyncio.run(main())
