"""HTTP ingest end to end beside the Kafka path, in one run.

Phase HTTP: a fresh `urbanpulse run` (real PostgreSQL), 8 concurrent clients each POSTing
/ingest requests of 1,000 canonical readings with an ingest key; a request's 200 means its
readings are committed, so readings/s = readings / (time from the first request to the last
200). Phase Kafka: the same readings, pre-produced as messages of 1,000 readings to a Tansu
topic, consumed by a fresh `urbanpulse run`; readings/s = readings stored between the first and
the last commit seen (polled in the database every 20 ms) / the time between them (so the
consumer group's join is not counted). Both with detection off (ingest only).

    python benchmarks/http_ingest.py --readings 200000 [--clients 8] [--batch 1000] [--json out.json]

Reports numbers; does not pass or fail. Needs PostgreSQL on 127.0.0.1:5432 and the Tansu binary,
like the integration tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

import services  # noqa: E402
from service_process import ServiceProcess  # noqa: E402


def payload(k0: int, n: int, base_ms: int) -> bytes:
    return json.dumps([{"sensor_id": f"sensor-{i % 1000:04d}", "metric": "temperature",
                        "ts": base_ms + (i // 1000) * 1000, "value": round(-20 + (i * 7 % 800) / 10, 1)}
                       for i in range(k0, k0 + n)]).encode()


async def count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM readings"))
    finally:
        await conn.close()


async def make_key(dsn: str) -> str:
    from urbanpulse.auth.keys import KeyStore
    from urbanpulse.auth.roles import Role

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        return (await KeyStore(pool).create("bench", Role.ingest)).secret
    finally:
        await pool.close()


async def http_phase(url: str, key: str, n: int, batch: int, clients: int, base_ms: int) -> dict:
    bodies = [payload(k, min(batch, n - k), base_ms) for k in range(0, n, batch)]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    latencies: list[float] = []

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120,
                                     headers={"Authorization": f"Bearer {key}"}) as c:
            while not queue.empty():
                body = queue.get_nowait()
                t = time.perf_counter()
                r = await c.post("/ingest", content=body)
                r.raise_for_status()
                latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {"readings": n, "seconds": elapsed, "readings_per_s": n / elapsed, "requests": len(bodies),
            "p50_ms": 1000 * latencies[len(latencies) // 2], "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1]}


async def kafka_phase(dsn: str, n: int, timeout: float = 600) -> dict:
    first = last = None
    at_first = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c = await count(dsn)
        now = time.perf_counter()
        if c > 0 and first is None:
            first, at_first = now, c
        if c >= n:
            last = now
            break
        await asyncio.sleep(0.02)
    if first is None or last is None or last == first:
        raise RuntimeError("Kafka phase did not store everything in time (or all in one batch: use more readings)")
    # from the first commit seen to the last: the readings stored in between over the time between
    return {"readings": n, "seconds": last - first, "readings_per_s": (n - at_first) / (last - first)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readings", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="up-bench-http-"))
    base_ms = int(time.time() * 1000) - 3 * 86_400_000
    results: dict = {"readings": args.readings, "batch": args.batch, "clients": args.clients}
    tansu = services.start_tansu(work / "tansu")
    try:
        # HTTP
        name, dsn = services.create_database(prefix="up_bench_http")
        svc = ServiceProcess({"database": {"dsn": dsn}, "detection": {"enabled": False}}, work).start(timeout=120)
        try:
            key = asyncio.run(make_key(dsn))
            results["http"] = asyncio.run(http_phase(svc.url, key, args.readings, args.batch, args.clients, base_ms))
            assert asyncio.run(count(dsn)) == args.readings
        finally:
            svc.stop_quietly()
            services.drop_database(name)
        print(f"HTTP  {results['http']['readings_per_s']:>10,.0f} readings/s  "
              f"(p50 {results['http']['p50_ms']:.0f} ms, p99 {results['http']['p99_ms']:.0f} ms per 1,000-reading request)")
        # Kafka, same readings in messages of the same size
        topic = f"bench-http-{uuid.uuid4().hex[:6]}"
        services.create_topic(tansu.bootstrap, topic, partitions=1)
        services.produce_kafka(tansu.bootstrap, topic,
                               [payload(k, min(args.batch, args.readings - k), base_ms)
                                for k in range(0, args.readings, args.batch)])
        name, dsn = services.create_database(prefix="up_bench_kafka")
        svc = ServiceProcess({"database": {"dsn": dsn}, "detection": {"enabled": False},
                              "kafka": {"enabled": True, "bootstrap_servers": tansu.bootstrap, "topics": [topic],
                                        "group_id": f"bench-{uuid.uuid4().hex[:6]}"}}, work).start(timeout=120)
        try:
            results["kafka"] = asyncio.run(kafka_phase(dsn, args.readings))
        finally:
            svc.stop_quietly()
            services.drop_database(name)
        print(f"Kafka {results['kafka']['readings_per_s']:>10,.0f} readings/s  (same readings, 1,000 per message)")
    finally:
        tansu.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
