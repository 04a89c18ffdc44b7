#!/usr/bin/env python
"""History queries and exports over HTTP, each beside the same query run directly in PostgreSQL.

Data: 10,000,000 readings of 1,000 sensors (10 areas of 100, registered), one reading every
3,153.6 s per sensor (jittered) through 2023, generated in numpy and stored through the real
writer (binary COPY + rollup merge) in 200,000-reading batches, then ANALYZE. A real
``urbanpulse run`` subprocess serves the API (no sources); clients use a viewer key over HTTP.

Workloads, each with 1 and with 10 concurrent clients (different sensors/areas per request):

* (a) one sensor, one year, hourly means: ``/readings?sensor=S&bucket=1h&agg=mean`` (all
  ~8,760 rows on one page), in each page shape (``shape=items``: one object per row, the
  default; ``shape=columns``: one array per column); direct: ``SELECT bucket, mean FROM rollup_1h WHERE series_id = $1
  AND bucket >= $2 AND bucket < $3 ORDER BY bucket``.
* (b) one area of 100 sensors, one day, 1-minute buckets (count, mean, min, max): direct:
  the same columns from ``rollup_1m`` for the area's 100 series ids.
* (c) exports of the readings of 100 sensors for the year (1,000,000 rows) as CSV and as
  Parquet, rows/s (best of two rounds run in alternating order) (10 clients: 10 sensors each, 100,000 rows each, aggregate rows/s), without
  the data-quality report (the default) and with it (``quality=true``); direct:
  ``COPY (SELECT series_id, ts, value, flags ...) TO STDOUT`` (CSV for CSV, binary for Parquet)
  of the same rows into a null sink, read by asyncpg in this process.

Also the peak RSS (VmHWM) of a fresh service after a 100,000-row export of 100 sensors (their
first 36.5 days), then after 1,000,000-row Parquet and CSV exports of the same sensors (the year);
once without the data-quality report (the default) and, on another fresh service, with it.

Latency is measured per request by the client, including parsing the answer (``r.json()``
for the API, asyncpg's decoding for the direct query); p50/p95 over ``--requests`` requests
(after 5 warm-up requests). The variants of a workload (direct, API per shape, the baseline
service) are interleaved request by request, so they meet the same load and cache. The ratio
is API/direct (lower is better; 1.0 = no overhead).

On a shared machine, ``--renice N`` (negative needs root) sets the priority of the service
process and of every PostgreSQL backend connected to the benchmark database (re-applied before
each workload, so new pool connections are covered) to N; run the benchmark itself under
``nice -n N`` so all three sides (client, service, database) get the same priority.

Run:  .venv/bin/python benchmarks/history.py [--readings 10000000] [--requests 100] [--keep DB]
      [--shapes items,columns] [--renice -10] [--baseline OLD_CHECKOUT/src]
      [--only a,b,c,memory] [--clients 1,10] [--formats csv,parquet] [--no-quality] [--rounds 2]
      [--client-gc service|default]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import services  # noqa: E402
from service_process import ServiceProcess  # noqa: E402

from urbanpulse.model import ReadingColumns  # noqa: E402
from urbanpulse.registry.model import SensorIn  # noqa: E402
from urbanpulse.registry.store import save_sensor  # noqa: E402
from urbanpulse.storage.migrations import migrate  # noqa: E402
from urbanpulse.storage.partitions import MonthlyPartitions  # noqa: E402
from urbanpulse.storage.writer import ReadingStore, prepare_connection  # noqa: E402

SENSORS = 1000
AREA_SIZE = 100
YEAR_START = datetime(2023, 1, 1, tzinfo=timezone.utc)
YEAR_END = datetime(2024, 1, 1, tzinfo=timezone.utc)
BATCH = 200_000
EXPORT_ROUNDS = 2


def sensor_name(i: int) -> str:
    return f"bench-{i:04d}"


async def load(dsn: str, n: int) -> None:
    """Register the sensors and store ``n`` readings through the writer."""
    conn = await asyncpg.connect(dsn)
    await migrate(conn, "postgres")
    for i in range(SENSORS):
        await save_sensor(conn, SensorIn(id=sensor_name(i), name=f"Bench {i}", lat=39.9 + i * 1e-4,
                                         lon=116.4 + i * 1e-4, area=f"area-{i // AREA_SIZE}", licence="CC-BY-4.0",
                                         metrics={"pm2_5": {"unit": "ug/m3", "interval_s": 3153.6}}))
    await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=prepare_connection)
    store = ReadingStore(pool, MonthlyPartitions())
    per = n // SENSORS
    step = (YEAR_END - YEAR_START) / timedelta(microseconds=1) / per
    start_us = int(YEAR_START.timestamp() * 1e6)
    rng = np.random.default_rng(42)
    names = np.array([sensor_name(i) for i in range(SENSORS)], dtype=object)
    t0 = time.perf_counter()
    # time-major order, as a city delivers: each batch is every sensor over a stretch of time
    for b in range(0, n, BATCH):
        k = np.arange(b, min(b + BATCH, n))
        sensor, j = k % SENSORS, k // SENSORS
        ts = start_us + (j * step).astype(np.int64) + rng.integers(0, int(step * 0.9), len(k))
        vals = np.round(30 + 20 * np.sin(j / 500 + sensor) + rng.normal(0, 5, len(k)), 2)
        m = len(k)
        cols = ReadingColumns(sensor_id=list(names[sensor]), metric=["pm2_5"] * m, ts_us=ts, value=vals,
                              lat=np.full(m, np.nan), lon=np.full(m, np.nan), unit=[None] * m,
                              msg=np.zeros(m, np.int32), item=np.full(m, -1, np.int32),
                              has_null_value=np.zeros(m, bool), flags=np.zeros(m, np.int16))
        await store.write(cols, [], "replay")
        done = b + m
        if done % 1_000_000 == 0:
            print(f"  stored {done:,} readings ({done / (time.perf_counter() - t0):,.0f}/s)", flush=True)
    async with pool.acquire() as c:
        await c.execute("VACUUM ANALYZE")
    await pool.close()


RETRIES = {"count": 0}


async def get(client: httpx.AsyncClient, url: str, params: dict[str, str]) -> httpx.Response:
    """GET, sent once more if the server closed a kept-alive connection just as it was reused
    (uvicorn closes idle connections after 5 s, which a loaded machine reaches); counted."""
    try:
        return await client.get(url, params=params)
    except httpx.RemoteProtocolError:
        RETRIES["count"] += 1
        return await client.get(url, params=params)


async def gc_pauses(client: httpx.AsyncClient) -> dict[str, float]:
    """The service's garbage-collector pauses so far (``urbanpulse_gc_pause_seconds``): count and
    seconds per generation, to tell the service's own stalls from the database's."""
    r = await client.get("/metrics")
    out: dict[str, float] = {}
    for line in r.text.splitlines():
        for g in "012":
            for kind in ("count", "sum"):
                if line.startswith(f'urbanpulse_gc_pause_seconds_{kind}{{generation="{g}"}}'):
                    out[f"gen{g}_{kind}"] = float(line.split()[-1])
    return out


def diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after}


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(values, p))


async def timed(concurrency: int, requests: int, variants: dict) -> dict[str, list[float]]:
    """Latencies (ms) of each variant ``fn(i)`` for i in 0..requests-1, interleaved: a worker
    runs every variant for its request i, starting with a different one each time, so all of them
    meet the same machine load and cache; ``concurrency`` workers at once."""
    lat: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    counter = iter(range(requests))

    async def worker() -> None:
        for i in counter:
            for k in range(len(names)):
                name = names[(i + k) % len(names)]
                t0 = time.perf_counter()
                await variants[name](i)
                lat[name].append((time.perf_counter() - t0) * 1000)

    for i in range(5):
        for fn in variants.values():
            await fn(10_000 + i)
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return lat


async def renice(dsn: str, niceness: int | None, *pids: int) -> None:
    """Set the priority of ``pids`` and of every PostgreSQL backend on the benchmark database."""
    if niceness is None:
        return
    conn = await asyncpg.connect(dsn)
    try:
        backends = [r[0] for r in await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")]
    finally:
        await conn.close()
    for pid in (*pids, *backends):
        try:
            os.setpriority(os.PRIO_PROCESS, pid, niceness)
        except (ProcessLookupError, PermissionError):
            pass


@dataclass(frozen=True)
class Selection:
    """Which parts run (``--only``, ``--clients``, ``--formats``, ``--no-quality``, ``--rounds``):
    a quiet slot is short, so a run can measure just the workloads in question."""

    workloads: frozenset[str] = frozenset({"a", "b", "c", "memory"})
    clients: tuple[int, ...] = (1, 10)
    formats: tuple[str, ...] = ("csv", "parquet")
    quality: bool = True
    rounds: int = EXPORT_ROUNDS
    client_gc: str = "service"


async def bench(dsn: str, requests: int, workdir: Path, shapes: list[str], niceness: int | None,
                baseline: Path | None = None, sel: Selection = Selection()) -> dict:
    config = {"database": {"dsn": dsn, "storage_mode": "postgres", "pool_size": 12}, "log_level": "WARNING"}
    svc = ServiceProcess(config, workdir).start(timeout=600)
    base = None
    if baseline is not None:  # the same service from another source tree (the code before a change)
        saved = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = str(baseline)
        try:
            base = ServiceProcess(config, workdir).start(timeout=600)
        finally:
            if saved is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = saved
    pids = [p.proc.pid for p in (svc, base) if p is not None]
    results: dict = {"conditions": {"shapes": shapes, "renice": niceness, "own_nice": os.nice(0),
                                    "baseline": str(baseline) if baseline else None,
                                    "loadavg_start": os.getloadavg(), "workloads": sorted(sel.workloads),
                                    "clients": list(sel.clients), "formats": list(sel.formats),
                                    "export_quality": sel.quality, "export_rounds": sel.rounds,
                                    "requests": requests, "client_gc": sel.client_gc}}
    try:
        from urbanpulse.auth.keys import KeyStore

        conn = await asyncpg.connect(dsn)
        headers = {"Authorization": f"Bearer {(await KeyStore(conn).create('benchmark', 'viewer')).secret}"}
        await conn.close()
        pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
        ids = {r["sensor_id"]: r["id"] for r in await pool.fetch("SELECT id, sensor_id FROM series")}
        limits = httpx.Limits(max_connections=20)
        clients = {"api": httpx.AsyncClient(base_url=svc.url, headers=headers, timeout=300, limits=limits)}
        if base is not None:
            clients["baseline"] = httpx.AsyncClient(base_url=base.url, headers=headers, timeout=300, limits=limits)
        http = clients["api"]
        if sel.client_gc == "service":
            # this process's collector as the service's (urbanpulse.service): what set-up loaded
            # frozen, young objects collected every 100,000 allocations. With CPython's defaults
            # a full collection of this process (~90k objects: numpy, httpx, asyncpg) took
            # 40-80 ms every dozen requests and landed in whichever variant was running, the
            # direct query as often as the API (its p95 was above the API's in a quiet run).
            from urbanpulse.service import GC_THRESHOLDS

            gc.collect()
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLDS)
        try:
            shape_params: dict[str, dict[str, str]] = {"items": {}, "columns": {"shape": "columns"}}

            def api_a(client: httpx.AsyncClient, shape: str):  # noqa: ANN202
                async def one(i: int) -> None:
                    r = await get(client, "/readings", {
                        "sensor": sensor_name(i % SENSORS), "start": "2023-01-01", "end": "2024-01-01", "bucket": "1h",
                        "agg": "mean", "limit": "10000", **shape_params[shape]})
                    assert r.status_code == 200 and r.json()["next_cursor"] is None, r.text[:300]
                return one

            async def sql_a(i: int) -> None:
                async with pool.acquire() as c:
                    await c.fetch("SELECT bucket, mean FROM rollup_1h WHERE series_id = $1 AND bucket >= $2 "
                                  "AND bucket < $3 ORDER BY bucket", ids[sensor_name(i % SENSORS)], YEAR_START,
                                  YEAR_END)

            def day(i: int) -> datetime:
                return YEAR_START + timedelta(days=i % 360)

            def api_b(client: httpx.AsyncClient, shape: str):  # noqa: ANN202
                async def one(i: int) -> None:
                    d = day(i)
                    r = await get(client, "/readings", {
                        "area": f"area-{i % 10}", "metric": "pm2_5", "start": d.isoformat(),
                        "end": (d + timedelta(days=1)).isoformat(), "bucket": "1m", "limit": "10000",
                        **shape_params[shape]})
                    assert r.status_code == 200 and r.json()["next_cursor"] is None, r.text[:300]
                return one

            async def sql_b(i: int) -> None:
                d = day(i)
                area = [ids[sensor_name(s)] for s in range((i % 10) * AREA_SIZE, (i % 10 + 1) * AREA_SIZE)]
                async with pool.acquire() as c:
                    await c.fetch("SELECT series_id, bucket, count, mean, min, max FROM rollup_1m "
                                  "WHERE series_id = ANY($1::int4[]) AND bucket >= $2 AND bucket < $3 "
                                  "ORDER BY series_id, bucket", area, d, d + timedelta(days=1))

            for name, api, sql in (("a", api_a, sql_a), ("b", api_b, sql_b)):
                if name not in sel.workloads:
                    continue
                for conc in sel.clients:
                    await renice(dsn, niceness, *pids)
                    variants = {"direct": sql}
                    for shape in shapes:
                        variants["api" if shape == "items" else f"api_{shape}"] = api(http, shape)
                    if base is not None:
                        variants["baseline"] = api(clients["baseline"], "items")
                    gc0 = await gc_pauses(http)
                    lat = await timed(conc, requests, variants)
                    row: dict = {"service_gc": diff(await gc_pauses(http), gc0)}
                    for label, la in lat.items():
                        row.update({f"{label}_p50_ms": pct(la, 50), f"{label}_p95_ms": pct(la, 95)})
                    for label in variants:
                        if label != "direct":
                            tag = label[3:] if label.startswith("api") else f"_{label}"
                            row[f"ratio{tag}_p50"] = row[f"{label}_p50_ms"] / row["direct_p50_ms"]
                            row[f"ratio{tag}_p95"] = row[f"{label}_p95_ms"] / row["direct_p95_ms"]
                    results[f"{name}_c{conc}"] = row
                    print(name, conc, json.dumps(row), flush=True)

            # (c) exports
            def sensors_of(group: int, size: int) -> list[str]:
                return [sensor_name(s) for s in range(group * size, (group + 1) * size)]

            async def api_export(fmt: str, sensors: list[str], quality: bool = False,
                                 client: httpx.AsyncClient = http) -> int:
                n = 0
                async with client.stream("GET", "/readings/export", params={
                        "sensor": ",".join(sensors), "start": "2023-01-01", "end": "2024-01-01",
                        "format": fmt, "quality": str(quality).lower()}) as r:
                    assert r.status_code == 200
                    async for chunk in r.aiter_raw():
                        n += len(chunk)
                return n

            async def sql_export(fmt: str, sensors: list[str]) -> int:
                n = 0

                async def sink(data: bytes) -> None:
                    nonlocal n
                    n += len(data)

                sids = [ids[s] for s in sensors]
                async with pool.acquire() as c:
                    await c.copy_from_query(
                        "SELECT series_id, ts, value, flags FROM readings WHERE series_id = ANY($1::int4[]) "
                        "AND ts >= $2 AND ts < $3 ORDER BY series_id, ts", sids, YEAR_START, YEAR_END,
                        output=sink, format="csv" if fmt == "csv" else "binary")
                return n

            rows_per_sensor = await pool.fetchval(
                "SELECT count(*) FROM readings WHERE series_id = $1", ids[sensor_name(0)])
            for fmt in (sel.formats if "c" in sel.workloads else ()):
                for conc, size in ((c, 100 // c) for c in sel.clients):
                    row = {}
                    async def api_export_q(fmt: str, sensors: list[str]) -> int:
                        return await api_export(fmt, sensors, quality=True)

                    async def baseline_export(fmt: str, sensors: list[str]) -> int:
                        return await api_export(fmt, sensors, client=clients["baseline"])

                    await renice(dsn, niceness, *pids)
                    runs = [("direct", sql_export), ("api", api_export)]
                    if sel.quality:
                        runs.append(("api_with_quality", api_export_q))
                    if base is not None:
                        runs.append(("baseline", baseline_export))
                    for _, fn in runs:
                        await fn(fmt, sensors_of(9, 1))  # warm-up
                    rows = rows_per_sensor * size * conc
                    for rnd in range(sel.rounds):  # alternating order; the best round of each counts
                        for label, fn in (runs if rnd % 2 == 0 else runs[::-1]):
                            t0 = time.perf_counter()
                            sizes = await asyncio.gather(*(fn(fmt, sensors_of(g, size)) for g in range(conc)))
                            secs = time.perf_counter() - t0
                            row.setdefault(f"{label}_rounds_rows_per_s", []).append(rows / secs)
                            row[f"{label}_rows_per_s"] = max(row[f"{label}_rounds_rows_per_s"])
                            row[f"{label}_mb"] = sum(sizes) / 1e6
                    row["rows"] = rows
                    row["ratio"] = row["direct_rows_per_s"] / row["api_rows_per_s"]
                    if sel.quality:
                        row["ratio_with_quality"] = row["direct_rows_per_s"] / row["api_with_quality_rows_per_s"]
                    if base is not None:
                        row["ratio_baseline"] = row["direct_rows_per_s"] / row["baseline_rows_per_s"]
                    results[f"c_{fmt}_c{conc}"] = row
                    print("c", fmt, conc, json.dumps(row), flush=True)

        finally:
            for client in clients.values():
                await client.aclose()
        await pool.close()
    finally:
        svc.terminate()
        if base is not None:
            base.terminate()
    results["conditions"]["loadavg_end"] = os.getloadavg()
    results["conditions"]["requests_resent_after_keepalive_close"] = RETRIES["count"]
    if "memory" in sel.workloads:
        results["service_peak_rss_kb"] = await memory(dsn, headers, workdir)
        if sel.quality:
            results["service_peak_rss_kb_with_quality"] = await memory(dsn, headers, workdir, quality=True)
    return results


async def memory(dsn: str, headers: dict[str, str], workdir: Path, quality: bool = False) -> dict[str, int]:
    """Peak RSS (VmHWM) of a fresh ``urbanpulse run`` after a 100,000-row export, then after
    1,000,000-row Parquet and CSV exports: flat if the export streams."""
    svc = ServiceProcess({"database": {"dsn": dsn, "storage_mode": "postgres"}, "log_level": "WARNING"},
                         workdir).start(timeout=600)

    def hwm_kb() -> int:
        for line in Path(f"/proc/{svc.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return -1

    out = {"at_start": hwm_kb()}
    try:
        async with httpx.AsyncClient(base_url=svc.url, headers=headers, timeout=600) as http:
            # the same 100 sensors: 100,000 rows are their first 36.5 days, 1,000,000 the year
            sensors = ",".join(sensor_name(s) for s in range(100))
            for label, fmt, end in (("after_100k_parquet", "parquet", "2023-02-06T12:00:00Z"),
                                    ("after_1m_parquet", "parquet", "2024-01-01"), ("after_1m_csv", "csv", "2024-01-01")):
                async with http.stream("GET", "/readings/export", params={
                        "sensor": sensors, "start": "2023-01-01", "end": end, "format": fmt,
                        "quality": str(quality).lower()}) as r:
                    assert r.status_code == 200
                    async for _ in r.aiter_raw():
                        pass
                out[label] = hwm_kb()
    finally:
        svc.terminate()
    print("memory" + (" (quality=true)" if quality else ""), out, flush=True)
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--readings", type=int, default=10_000_000)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--keep", default=None, metavar="DB", help="reuse (and keep) this database if it exists")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--load-only", action="store_true", help="load the data (with --keep) and stop")
    ap.add_argument("--memory-only", action="store_true", help="only the service memory measurement")
    ap.add_argument("--shapes", default="items,columns",
                    help="page shapes to measure for (a) and (b), comma-separated (a service before "
                         "shape=columns existed: items)")
    ap.add_argument("--baseline", type=Path, default=None, metavar="SRC",
                    help="also run a service from this source tree (e.g. a checkout of the code before a "
                         "change) and measure it interleaved with the current one: before/after in one run")
    ap.add_argument("--only", default="a,b,c,memory",
                    help="workloads to run, comma-separated: a, b, c (exports), memory (peak RSS)")
    ap.add_argument("--clients", default="1,10", help="client counts, comma-separated (exports: 100 sensors "
                                                        "split over the clients)")
    ap.add_argument("--formats", default="csv,parquet", help="export formats of (c), comma-separated")
    ap.add_argument("--no-quality", action="store_true", help="skip the quality=true export variants")
    ap.add_argument("--rounds", type=int, default=EXPORT_ROUNDS, help="rounds of each export variant")
    ap.add_argument("--client-gc", choices=("service", "default"), default="service",
                    help="this process's garbage collector: as the service's (frozen after set-up, "
                         "thresholds urbanpulse.service.GC_THRESHOLDS) or CPython's defaults (the runs "
                         "before this option)")
    ap.add_argument("--renice", type=int, default=None, metavar="N",
                    help="priority for the service and the database backends (run this under nice -n N too)")
    args = ap.parse_args()
    if args.keep:
        name, dsn = args.keep, services.dsn_for(services.PG_DSN, args.keep)
        try:
            conn = await asyncpg.connect(dsn)
            await conn.close()
            fresh = False
        except asyncpg.InvalidCatalogNameError:
            await services._pg_execute(services.PG_DSN, f'CREATE DATABASE "{name}"')
            fresh = True
    else:
        name, dsn = services.create_database(services.PG_DSN, prefix="up_bench_history")
        fresh = True
    try:
        if fresh:
            t0 = time.perf_counter()
            print(f"loading {args.readings:,} readings of {SENSORS} sensors into {name}", flush=True)
            await load(dsn, args.readings)
            print(f"loaded in {time.perf_counter() - t0:.0f} s", flush=True)
        if args.load_only:
            return
        with tempfile.TemporaryDirectory() as tmp:
            if args.memory_only:
                from urbanpulse.auth.keys import KeyStore

                conn = await asyncpg.connect(dsn)
                headers = {"Authorization": f"Bearer {(await KeyStore(conn).create('benchmark', 'viewer')).secret}"}
                await conn.close()
                results = {"service_peak_rss_kb": await memory(dsn, headers, Path(tmp)),
                           "service_peak_rss_kb_with_quality": await memory(dsn, headers, Path(tmp), quality=True)}
            else:
                sel = Selection(frozenset(args.only.split(",")), tuple(int(c) for c in args.clients.split(",")),
                                tuple(args.formats.split(",")), not args.no_quality, args.rounds,
                                args.client_gc)
                results = await bench(dsn, args.requests, Path(tmp), args.shapes.split(","), args.renice,
                                      args.baseline, sel)
        results["readings"] = args.readings
        print(json.dumps(results, indent=1))
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    finally:
        if not args.keep:
            services.drop_database(name, services.PG_DSN)


if __name__ == "__main__":
    asyncio.run(main())
