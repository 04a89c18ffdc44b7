#!/usr/bin/env python
"""Where the start-up seconds go, and how soon `urbanpulse run` stores (issue 14 item 4).

Each phase of `urbanpulse run`'s start is replayed in a fresh Python process (so interpreter
and import costs are real), timed from the moment the parent spawned it:

* ``interpreter``: from spawn to the first line of the child;
* ``imports``: the modules `urbanpulse run` loads before its first batch (cli with its parser,
  runner, service, connectors; not the API, which is imported on a thread after the start);
* ``migrations (fresh)`` / ``(up to date)``: ``migrate()`` on an empty database and again;
* ``pool``: ``asyncpg.create_pool`` with the per-connection setup;
* ``analytics start``: loading open alerts and maintenance windows;
* ``first batch``: 100 readings: series registered, Numba kernels loaded (from their on-disk
  cache; ``--cold`` clears it first), analysed, COPY'd, committed; ``second batch`` beside it.

Then the Kafka consumer-group join on a private Tansu: from ``consumer.start()`` to the first
record, for a new group, a restart after a clean stop (the member left the group), and a
restart after a SIGKILL (the dead member still holds its partitions until its session times
out), each with and without ``group_instance_id`` (static membership). Figures, no pass/fail.

Then the whole service, before and after, in the same run (``--before REV``, default the main
commit before issue 14 item 4's changes, extracted with ``git archive`` into a temporary
directory and its kernels compiled there first): `urbanpulse run` spawned against a fresh
database, a private mosquitto and Tansu, with a publisher sending one reading every 10 ms
throughout. Timed by polling ``count(*) FROM readings`` every 20 ms from outside:

* ``first stored, MQTT``: spawn to the first reading committed (no group join in the way);
* ``first stored, Kafka (new group)``: spawn to the first Kafka reading committed;
* ``restart after SIGKILL, Kafka``: the service killed while readings flow, spawned again at
  once: spawn to the first reading committed after the kill (Kafka's group rejoin included);
* the same two Kafka figures with ``kafka.group_instance_id`` set (static membership, after only),
  with ``kafka.assignment: manual`` (every partition, no group join, offsets still committed
  to the group; after only), and with ``kafka.session_timeout_ms: 2000`` (variant ``short``: Tansu
  forms a new group in half the session, in whole seconds; after only). ``before-static``,
  ``before-manual`` and ``before-short`` run those settings on the "before" tree, so each pair
  is interleaved in one run; ``--before DIR`` takes an already extracted ``src/``.

Run:  .venv/bin/python benchmarks/startup.py [--repeat 3] [--cold] [--skip-phases] [--skip-join]
      [--skip-service] [--before REV] [--variants before,after,static,manual,short] [--sources mqtt,kafka]
      [--join-sessions 10000,6000,2000]
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
import tarfile
import tempfile
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
import urbanpulse.cli
urbanpulse.cli._parser()  # what `urbanpulse run` imports before start(); the API comes later, on a thread
import urbanpulse.runner, urbanpulse.connectors.kafka, urbanpulse.connectors.mqtt  # noqa: E401
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
                         enable_auto_commit=False, auto_offset_reset="earliest",
                         session_timeout_ms=int(os.environ["SESSION_MS"]),
                         heartbeat_interval_ms=min(3000, int(os.environ["SESSION_MS"]) // 3), **kw)
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


def kafka_join(repeat: int, sessions: tuple[int, ...] = (10_000,)) -> dict[str, list[float]]:
    import services

    tansu = services.start_tansu()
    rows: dict[str, list[float]] = {}
    try:
        for _, session, static in ((r, ms, st) for r in range(repeat) for ms in sessions for st in (False, True)):
            topic, group = f"startup-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
            services.create_topic(tansu.bootstrap, topic, partitions=4)
            services.produce_kafka(tansu.bootstrap, topic, [b'{"x": 1}'] * 40)
            env = {"BOOTSTRAP": tansu.bootstrap, "TOPIC": topic, "GROUP": group,
                   "INSTANCE": "bench-1" if static else "", "SESSION_MS": str(session)}
            tag = f" (session {session / 1000:g} s{', static member' if static else ''})"
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


#: the main commit before issue 14 item 4's start-up changes (the "before" of the service figures)
BEFORE_REV = "558675b"

PUBLISHER = r'''
import json, os, sys, time
kind, where, topic = sys.argv[1], sys.argv[2], sys.argv[3]
i = 0
def reading():
    global i
    i += 1
    return json.dumps({"sensor_id": f"s-{i % 50}", "metric": "temperature", "ts": int(time.time() * 1000),
                       "value": 20 + (i % 7) / 10}).encode()
if kind == "kafka":
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": where, "linger.ms": 0, "log_level": 0})
    while True:
        p.produce(topic, reading()); p.poll(0); time.sleep(0.01)
else:
    import paho.mqtt.client as mqtt
    host, port = where.split(":")
    c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}")
    c.connect(host, int(port)); c.loop_start()
    while True:
        c.publish(topic, reading(), qos=1); time.sleep(0.01)
'''


def source_tree(rev: str, into: Path) -> Path:
    """``src/`` of ``rev`` (git archive) in ``into``, with its Numba kernels compiled there."""
    archive = into / "src.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "-o", str(archive), rev, "src"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    src = into / "src"
    subprocess.run([sys.executable, "-c", "from urbanpulse.analytics import compile_kernels; compile_kernels()"],
                   env=dict(os.environ, PYTHONPATH=str(src)), check=True, timeout=1800)
    return src


class _Run:
    """One `urbanpulse run` process of a given source tree and config."""

    def __init__(self, src: Path, config: dict, workdir: Path) -> None:
        import yaml

        self.src, self.workdir = src, workdir
        self.config = workdir / f"cfg-{uuid.uuid4().hex[:6]}.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen | None = None

    def spawn(self) -> float:
        log = open(self.workdir / "service.log", "ab")
        t = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "urbanpulse.cli", "run", "--config", str(self.config)],
                                     env=dict(os.environ, PYTHONPATH=str(self.src)), stdout=log,
                                     stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()
        return t

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _count(dsn: str) -> int:
    import services

    async def q() -> int:
        import asyncpg

        conn = await asyncpg.connect(dsn)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM readings") or 0) if await conn.fetchval(
                "SELECT to_regclass('readings') IS NOT NULL") else 0
        finally:
            await conn.close()

    return services.run_sync(q())


def _until_more_than(dsn: str, floor: int, since: float, run: _Run, timeout: float = 120) -> float:
    """Seconds from ``since`` until readings exceed ``floor`` (polled every 20 ms)."""
    import asyncio

    import asyncpg

    async def poll() -> float:
        conn = None
        while time.monotonic() - since < timeout:
            if run.proc is not None and run.proc.poll() is not None:
                raise RuntimeError(f"urbanpulse exited with {run.proc.returncode}; see {run.workdir}/service.log")
            try:
                if conn is None:
                    conn = await asyncpg.connect(dsn)
                if await conn.fetchval("SELECT to_regclass('readings') IS NOT NULL") and \
                        await conn.fetchval("SELECT count(*) FROM readings") > floor:
                    return time.monotonic() - since
            except (OSError, asyncpg.PostgresError):
                pass
            await asyncio.sleep(0.02)
        log = (run.workdir / "service.log").read_text(errors="replace")[-6000:]
        raise RuntimeError(f"nothing stored within {timeout}s; the end of {run.workdir}/service.log:\n{log}")

    return asyncio.run(poll())


VARIANTS = ("before", "after", "static", "manual", "short")
#: ``before-short``, ``before-manual``, ``before-static``: the same Kafka settings on the "before" tree


def _base(variant: str) -> tuple[str, bool]:
    """(the variant's Kafka settings name, whether it runs the "before" tree)."""
    if variant.startswith("before-"):
        return variant.removeprefix("before-"), True
    return variant, variant == "before"
#: variant -> (source tree, extra kafka settings, label); MQTT runs only for the plain variants
_KAFKA_EXTRA = {"before": {}, "after": {}, "static": {"group_instance_id": "bench-worker-0"},
                "manual": {"assignment": "manual"},
                "short": {"session_timeout_ms": 2000, "heartbeat_interval_ms": 600}}
_LABEL = {"before": "before", "after": "after", "static": "after, static member", "manual": "after, manual assignment",
          "short": "after, 2 s session"}


def service_starts(repeat: int, before_rev: str, variants: tuple[str, ...] = VARIANTS,
                   sources: tuple[str, ...] = ("mqtt", "kafka")) -> dict[str, list[float]]:
    """The whole service from outside, before and after, interleaved (see the module doc);
    ``variants`` and ``sources`` pick a part of it (a shorter quiet slot)."""
    import services

    rows: dict[str, list[float]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="up-bench-startup-"))
    trees = {"after": REPO / "src"}
    if any(_base(v)[1] for v in variants):
        if Path(before_rev).is_dir():  # an extracted src/ whose kernels are built (``--before /tmp/x/src``)
            trees["before"] = Path(before_rev)
        else:
            (tmp / "before").mkdir()
            trees["before"] = source_tree(before_rev, tmp / "before")
    tansu = services.start_tansu(tmp / "tansu")
    mosq = services.start_mosquitto(tmp / "mosquitto")
    pubs: list[subprocess.Popen] = []
    try:
        for k in range(repeat):
            for variant in variants:
                base_variant, before = _base(variant)
                tree = trees["before" if before else "after"]
                static = base_variant in ("static", "manual", "short")  # Kafka options only: no MQTT run
                tag = _LABEL[base_variant] if not before or base_variant == "before" else \
                    _LABEL[base_variant].replace("after", "before")
                work = tmp / f"{tag.replace(', ', '-').replace(' ', '-')}-{k}"
                work.mkdir()
                topic = f"bench-{uuid.uuid4().hex[:8]}"
                services.create_topic(tansu.bootstrap, topic, partitions=4)
                base = {"api": {"enabled": True, "host": "127.0.0.1", "port": services.free_port()},
                        "ingest": {"batch_max_ms": 50}}
                if not static and "mqtt" in sources:  # MQTT: spawn -> first stored, nothing but the start in the way
                    name, dsn = services.create_database(services.PG_DSN, prefix="up_bench_startup")
                    mqtt_topic = f"bench/{uuid.uuid4().hex[:6]}"
                    pubs.append(subprocess.Popen([sys.executable, "-c", PUBLISHER, "mqtt",
                                                  f"{mosq.host}:{mosq.port}", mqtt_topic]))
                    run = _Run(tree, {**base, "database": {"dsn": dsn}, "mqtt": {
                        "enabled": True, "host": mosq.host, "port": mosq.port, "topics": [mqtt_topic],
                        "client_id": f"bench-{uuid.uuid4().hex[:6]}"}}, work)
                    try:
                        rows.setdefault(f"first stored, MQTT ({tag})", []).append(
                            _until_more_than(dsn, 0, run.spawn(), run))
                    finally:
                        run.kill(signal.SIGTERM)
                        pubs.pop().kill()
                        services.drop_database(name)
                if "kafka" not in sources:
                    print(f"  {tag} run {k + 1}: " + ", ".join(
                        f"{n.split(' (')[0]} {v[-1]:.2f}" for n, v in rows.items() if n.endswith(f"({tag})")),
                        file=sys.stderr, flush=True)
                    continue
                name, dsn = services.create_database(services.PG_DSN, prefix="up_bench_startup")
                kafka = {"enabled": True, "bootstrap_servers": tansu.bootstrap, "topics": [topic],
                         "group_id": f"bench-{uuid.uuid4().hex[:8]}"}
                kafka.update(_KAFKA_EXTRA[base_variant])
                pubs.append(subprocess.Popen([sys.executable, "-c", PUBLISHER, "kafka", tansu.bootstrap, topic]))
                run = _Run(tree, {**base, "database": {"dsn": dsn}, "kafka": kafka}, work)
                try:
                    rows.setdefault(f"first stored, Kafka new group ({tag})", []).append(
                        _until_more_than(dsn, 0, run.spawn(), run))
                    time.sleep(3)  # flowing
                    run.kill(signal.SIGKILL)
                    floor = _count(dsn)
                    rows.setdefault(f"restart after SIGKILL, Kafka ({tag})", []).append(
                        _until_more_than(dsn, floor, run.spawn(), run))
                finally:
                    run.kill(signal.SIGTERM)
                    pubs.pop().kill()
                    services.drop_database(name)
                print(f"  {tag} run {k + 1}: " + ", ".join(f"{n.split(' (')[0]} {v[-1]:.2f}"
                                                            for n, v in rows.items() if n.endswith(f"({tag})")),
                      file=sys.stderr, flush=True)
    finally:
        for p in pubs:
            p.kill()
        tansu.stop()
        mosq.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="clear the Numba cache before each run")
    ap.add_argument("--skip-phases", action="store_true", help="leave out the in-process phases")
    ap.add_argument("--skip-join", "--skip-kafka", action="store_true", help="leave out the bare group-join timings")
    ap.add_argument("--skip-service", action="store_true", help="leave out the whole-service runs")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="whole-service variants to run, comma-separated from before,after,static,manual,short "
                         "and before-static,before-manual,before-short (those settings on the before tree)")
    ap.add_argument("--join-sessions", default="10000",
                    help="session timeouts (ms) of the bare group-join timings, comma-separated")
    ap.add_argument("--sources", default="mqtt,kafka", help="whole-service sources: mqtt,kafka or one of them")
    ap.add_argument("--before", default=BEFORE_REV,
                    help=f"revision of the 'before' service (default {BEFORE_REV}), or a directory holding an "
                         "extracted src/ whose kernels are built")
    args = ap.parse_args()
    print(f"median of {args.repeat} runs (min-max), seconds")
    if not args.skip_service:
        print("\n| `urbanpulse run`, from spawn | seconds |\n|---|---|")
        for k, v in service_starts(args.repeat, args.before, tuple(args.variants.split(",")),
                                         tuple(args.sources.split(","))).items():
            print(f"| {k} | {statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f}) |", flush=True)
    if not args.skip_phases:
        print("\n| phase | seconds |\n|---|---|")
        total = 0.0
        for k, v in phases(args.repeat, args.cold).items():
            med = statistics.median(v)
            total += med if k != "second batch" and k != "migrations (up to date)" else 0
            print(f"| {k} | {med:.3f} ({min(v):.3f}-{max(v):.3f}) |", flush=True)
        print(f"| sum to the first batch stored (fresh database) | {total:.3f} |")
    if not args.skip_join:
        print("\n| Kafka group join, consumer.start() to the first record | seconds |\n|---|---|")
        for k, v in kafka_join(args.repeat, tuple(int(x) for x in args.join_sessions.split(","))).items():
            print(f"| {k} | {statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f}) |", flush=True)


if __name__ == "__main__":
    main()
