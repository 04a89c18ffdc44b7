"""How long one hostile HTTP ingest request holds the event loop (robust31).

An in-process service (real PostgreSQL, API app over httpx's ASGI transport) receives one
gzipped NDJSON body of N lines ``{}`` (every line quarantined as not a reading). A ticker task
sleeping 5 ms records the longest gap between its wake-ups: the longest time nothing else on the
event loop (MQTT, Kafka, the batch timer, other requests) could run. Also reported: the answer's
status and the request's wall time.

    python benchmarks/http_ingest_stall.py --lines 1000000 [--max-messages N] [--max-readings N] [--array] [--json out.json]

Reports numbers; does not pass or fail.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

import services  # noqa: E402
from urbanpulse.api.app import create_app  # noqa: E402
from urbanpulse.auth.keys import KeyStore  # noqa: E402
from urbanpulse.auth.roles import Role  # noqa: E402
from urbanpulse.config import load_settings  # noqa: E402
from urbanpulse.service import IngestService  # noqa: E402


async def run(lines: int, max_messages: int | None, max_readings: int | None = None, array: bool = False) -> dict:
    name, dsn = services.create_database(services.PG_DSN, prefix="up_bench")
    try:
        http = {"ack_timeout_s": 600, "max_decompressed_bytes": 64 * 1024 * 1024}
        if max_messages is not None:
            http["max_messages"] = max_messages
        if max_readings is not None:
            http["max_readings"] = max_readings
        settings = load_settings(None, database={"dsn": dsn}, api={"enabled": False}, detection={"enabled": False},
                                 http_ingest=http)
        service = IngestService(settings)
        await service.start()
        try:
            key = (await KeyStore(service.pool).create("bench", Role.ingest)).secret
            # --array: one JSON array of N items ``{}`` (HTTP ingest's array path, hostile33) instead of NDJSON
            body = gzip.compress(b"[" + b",".join([b"{}"] * lines) + b"]" if array else b"{}\n" * lines)
            gaps = [0.0]
            stop = asyncio.Event()

            async def ticker() -> None:
                last = time.perf_counter()
                while not stop.is_set():
                    await asyncio.sleep(0.005)
                    now = time.perf_counter()
                    gaps[0] = max(gaps[0], now - last - 0.005)
                    last = now

            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(service)),
                                         base_url="http://bench", timeout=900) as client:
                tick = asyncio.create_task(ticker())
                t0 = time.perf_counter()
                r = await client.post("/ingest", content=body, headers={
                    "Authorization": f"Bearer {key}",
                    "Content-Type": "application/json" if array else "application/x-ndjson",
                    "Content-Encoding": "gzip"})
                wall = time.perf_counter() - t0
                stop.set()
                await tick
            return {"lines": lines, "array": array, "max_messages": max_messages, "max_readings": max_readings, "status": r.status_code,
                    "max_loop_gap_s": round(gaps[0], 3), "request_s": round(wall, 2),
                    "gzip_bytes": len(body), "answer": r.text[:300]}
        finally:
            await service.stop()
    finally:
        services.drop_database(name, services.PG_DSN)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--max-messages", type=int, default=None, help="http_ingest.max_messages (default: the setting's)")
    ap.add_argument("--max-readings", type=int, default=None, help="http_ingest.max_readings (default: the setting's)")
    ap.add_argument("--array", action="store_true", help="one JSON array of N items instead of N NDJSON lines")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    out = asyncio.run(run(a.lines, a.max_messages, a.max_readings, a.array))
    print(json.dumps(out))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
