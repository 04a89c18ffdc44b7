#!/usr/bin/env python
"""Where the start-up seconds go (issue 14 item 4): a measurement, not a fix.

Each phase of `urbanpulse run`'s start is replayed in a fresh Python process (so interpreter
and import costs are real), timed from the moment the parent spawned it:

* ``interpreter``: from spawn to the first line of the child;
* ``imports``: the modules `urbanpulse run` loads (cli, service, api app, connectors);
* ``migrations (fresh)`` / ``(up to date)``: ``migrate()`` on an empty database and again;
* ``pool``: ``asyncpg.create_pool`` with the per-connection setup;
* ``analytics start``: loading open alerts and maintenance windows;
* ``first batch``: 100 readings: series registered, Numba kernels loaded (from their on-disk
  cache; ``--cold`` clears it first), analysed, COPY'd, committed; ``second batch`` beside it.

Then the Kafka consumer-group join on a private Tansu: from ``consumer.start()`` to the first
record, for a new group, a restart after a clean stop (the member left the group), and a
restart after a SIGKILL (the dead member still holds its partitions until its session times
out), each with and without ``group_instance_id`` (static membership). Figures, no pass/fail.

Run:  .venv/bin/python benchmarks/startup.py [--repeat 3] [--cold] [--skip-kafka]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

CHILD = r'''
import asyncio, json, os, sys, time
spawn = float(os.environ["SPAWN_AT"])
marks = {"interpreter": time.time() - spawn}
t = time.perf_counter()
def mark(name):
    global t
    now = time.perf_counter(); marks[name] = now - t; t = now
import urbanpulse.cli, urbanpulse.service, urbanpulse.api.app, urbanpulse.connectors.kafka  # noqa: E401
import asyncpg, numpy as np
mark("imports")
from urbanpulse.analytics import StreamAnalytics
from urbanpulse.config import load_settings
from urbanpulse.model import ReadingColumns
from urbanpulse.storage.migrations import migrate
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.writer import ReadingStore, prepare_connection

def batch(k, n=100):
    ts = np.int64(time.time() * 1e6) - np.int64(3600e6) + np.arange(n, dtype=np.int64) * 1_000_000 + k * n * 1_000_000
    return ReadingColumns([f"s{i % 20}" for i in range(n)], ["temperature"] * n, ts, 20 + np.random.rand(n),
                          np.full(n, np.nan), np.full(n, np.nan), [None] * n, np.zeros(n, np.int32),
                          np.full(n, -1, np.int32), np.zeros(n, bool), np.zeros(n, np.int16))

async def main():
    dsn = os.environ["DSN"]
    s = load_settings(None, database={"dsn": dsn})
    conn = await asyncpg.connect(dsn)
    await migrate(conn, "postgres"); mark("migrations (fresh)")
    await migrate(conn, "postgres"); mark("migrations (up to date)")
    await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=3, init=prepare_connection)
    parts = MonthlyPartitions()
    async with pool.acquire() as c:
        await parts.load(c)
    mark("pool")
    a = StreamAnalytics(s, pool); await a.start(); mark("analytics start")
    store = ReadingStore(pool, parts)
    for name, k in (("first batch", 0), ("second batch", 1)):
        rc = batch(k)
        sid = await store.series.ids_for(pool, rc.sensor_id, rc.metric)
        prepared = await a.ready(await a.prepare("kafka", rc, sid))
        await store.write(rc, [], "kafka", series_ids=sid, in_transaction=lambda c: a.write(c, prepared))
        if prepared is not None:
            a.committed(prepared)
        mark(name)
    await a.stop(); await pool.close()
    print(json.dumps(marks))

asyncio.run(main())
'''

KAFKA_CHILD = r'''
import asyncio, json, os, sys, time
from aiokafka import AIOKafkaConsumer
async def main():
    kw = {"group_instance_id": os.environ["INSTANCE"]} if os.environ.get("INSTANCE") else {}
    c = AIOKafkaConsumer(os.environ["TOPIC"], bootstrap_servers=os.environ["BOOTSTRAP"], group_id=os.environ["GROUP"],
                         enable_auto_commit=False, auto_offset_reset="earliest", session_timeout_ms=10000,
                         heartbeat_interval_ms=3000, **kw)
    t0 = time.perf_counter()
    await c.start()
    while True:
        got = await c.getmany(timeout_ms=200)
        if got:
            break
    print(json.dumps({"first_record_s": time.perf_counter() - t0}), flush=True)
    if os.environ.get("HANG"):
        await asyncio.sleep(3600)  # killed by the parent: leaves without a goodbye
    await c.stop()
asyncio.run(main())
'''


def run_child(code: str, env: dict[str, str], timeout: float = 300) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), SPAWN_AT=repr(time.time()), **env)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def phases(repeat: int, cold: bool) -> dict[str, list[float]]:
    import services

    rows: dict[str, list[float]] = {}
    for _ in range(repeat):
        if cold:
            for d in ("windows", "detect"):
                shutil.rmtree(REPO / "src/urbanpulse" / d / "__pycache__", ignore_errors=True)
        name, dsn = services.create_database(services.PG_DSN, prefix="up_bench_startup")
        try:
            for k, v in run_child(CHILD, {"DSN": dsn}).items():
                rows.setdefault(k, []).append(v)
        finally:
            services.drop_database(name)
    return rows


def kafka_join(repeat: int) -> dict[str, list[float]]:
    import services

    tansu = services.start_tansu()
    rows: dict[str, list[float]] = {}
    try:
        for _ in range(repeat):
            for static in (False, True):
                topic, group = f"startup-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
                services.create_topic(tansu.bootstrap, topic, partitions=4)
                services.produce_kafka(tansu.bootstrap, topic, [b'{"x": 1}'] * 40)
                env = {"BOOTSTRAP": tansu.bootstrap, "TOPIC": topic, "GROUP": group,
                       "INSTANCE": "bench-1" if static else ""}
                tag = " (static member)" if static else ""
                rows.setdefault("new group" + tag, []).append(run_child(KAFKA_CHILD, env)["first_record_s"])
                rows.setdefault("restart after a clean stop" + tag, []).append(
                    run_child(KAFKA_CHILD, env)["first_record_s"])
                # a member that dies without leaving
                penv = dict(os.environ, PYTHONPATH=str(REPO / "src"), SPAWN_AT=repr(time.time()), HANG="1", **env)
                proc = subprocess.Popen([sys.executable, "-c", KAFKA_CHILD], env=penv, stdout=subprocess.PIPE, text=True)
                proc.stdout.readline()
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                rows.setdefault("restart after SIGKILL" + tag, []).append(run_child(KAFKA_CHILD, env)["first_record_s"])
    finally:
        tansu.stop()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="clear the Numba cache before each run")
    ap.add_argument("--skip-kafka", action="store_true")
    args = ap.parse_args()
    print(f"median of {args.repeat} runs (min-max), seconds\n\n| phase | seconds |\n|---|---|")
    total = 0.0
    for k, v in phases(args.repeat, args.cold).items():
        med = statistics.median(v)
        total += med if k != "second batch" and k != "migrations (up to date)" else 0
        print(f"| {k} | {med:.3f} ({min(v):.3f}-{max(v):.3f}) |", flush=True)
    print(f"| sum to the first batch stored (fresh database) | {total:.3f} |")
    if not args.skip_kafka:
        print("\n| Kafka group join, consumer.start() to the first record | seconds |\n|---|---|")
        for k, v in kafka_join(args.repeat).items():
            print(f"| {k} | {statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f}) |", flush=True)


if __name__ == "__main__":
    main()
