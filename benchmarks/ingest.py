#!/usr/bin/env python
"""End-to-end ingest benchmark for urbanpulse: Kafka and MQTT paths against a binary-COPY ceiling.

One run starts its own Tansu (Kafka protocol) and private mosquitto, creates a throw-away
PostgreSQL database, and reports figures (no pass/fail):

* ceiling   - the same rows the paths store, written with asyncpg ``copy_records_to_table``
              (binary COPY) into the service's own ``readings`` table: 5000 rows per
              transaction (the service's default batch) and one single COPY; measured before
              and after the paths, the mean is used;
* kafka     - N readings pre-produced to a 4-partition topic, then ``urbanpulse run`` drains
              them; sustained readings/s from the first stored batch to the last;
* mqtt      - the service runs first, then a separate process publishes N readings (JSON
              arrays, QoS 1) as fast as it can; stored readings/s and publish rate;
* latency   - per path, a paced publisher (default 20k readings/s for 10 s); p50/p99 of
              publish-to-stored (count based, see benchmarks/README.md);
* peak RSS  - of the service process per phase (psutil, every 100 ms).

Run:  .venv/bin/python benchmarks/ingest.py [--readings 1000000] [--json OUT]

The publishers run as separate processes (this file with the hidden ``--worker`` option).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
SENSORS = 1000           # distinct sensors (benchmarks/analytics.py --data-series changes it)
INVALID_EVERY = 0         # every k-th reading out of the physical range (quarantined); 0: none
INVALID_VALUE = 9999.0    # temperature far outside its catalogue range
STEP_MS = 1000            # per-sensor spacing of event times: (sensor, ts) stays unique
CEILING_BATCH = 5000      # = IngestSettings.batch_max_readings default
SOURCE_KAFKA = 2          # urbanpulse.storage.writer.SOURCE_IDS["kafka"]


# ----------------------------------------------------------------------------------------------
# the data: reading i is a pure function of (i, base_ms), shared by publishers and the ceiling


def reading_fields(i: int, base_ms: int) -> tuple[int, int, float]:
    """(sensor index, ts epoch ms, value) of reading ``i``."""
    value = INVALID_VALUE if INVALID_EVERY and i % INVALID_EVERY == INVALID_EVERY - 1 else ((i * 7919) % 800 - 200) / 10
    return i % SENSORS, base_ms + (i // SENSORS) * STEP_MS, value


def configure_data(sensors: int, invalid_every: int = 0) -> None:
    """Change the data's shape (in this process; workers get it through their spec)."""
    global SENSORS, INVALID_EVERY
    SENSORS, INVALID_EVERY = sensors, invalid_every


def invalid_count(n: int) -> int:
    """How many of readings 0..n-1 are out of range (quarantined, never stored)."""
    return n // INVALID_EVERY if INVALID_EVERY else 0


def reading_json(i: int, base_ms: int) -> str:
    s, ts, v = reading_fields(i, base_ms)
    return f'{{"sensor_id":"sensor-{s:04d}","metric":"temperature","ts":{ts},"value":{v!r}}}'


def message_payload(i0: int, i1: int, base_ms: int, array: bool) -> bytes:
    """One broker message holding readings i0..i1-1 (a JSON object, or an array of them)."""
    if not array:
        return reading_json(i0, base_ms).encode()
    return ("[" + ",".join(reading_json(i, base_ms) for i in range(i0, i1)) + "]").encode()


def default_base_ms(n: int) -> int:
    """Event times inside the last day (the validator rejects the future and > 30 days old)."""
    span_ms = ((n - 1) // SENSORS + 1) * STEP_MS
    if span_ms > 20 * 3600 * 1000:
        raise SystemExit(f"--readings {n} spans more than 20 h of event time at {SENSORS} sensors x {STEP_MS} ms")
    return int(time.time() * 1000) - span_ms - 3600 * 1000


# ----------------------------------------------------------------------------------------------
# worker processes (publishers): `python ingest.py --worker SPEC_JSON`


class _Pacer:
    """Paced mode: every ``tick_s``, publish up to rate*elapsed readings and record (time, cumulative)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.rate = spec["rate"]
        self.tick = spec.get("tick_s", 0.002)
        self.total = spec["readings"]
        self.timeline: list[tuple[float, int]] = []

    def run(self, publish_until, idle=time.sleep) -> None:  # noqa: ANN001 - publish_until(target) -> published
        t0 = time.time()
        done = 0
        self.timeline.append((t0, 0))
        next_tick = time.monotonic()
        while done < self.total:
            target = min(self.total, int(self.rate * (time.time() - t0)) + 1)
            if target > done:
                done = publish_until(target)
                self.timeline.append((time.time(), done))
            next_tick += self.tick
            delay = next_tick - time.monotonic()
            if delay > 0:
                idle(delay)


def worker_kafka(spec: dict[str, Any]) -> dict[str, Any]:
    from confluent_kafka import Producer

    errors: list[str] = []

    def cb(err, msg):  # noqa: ANN001
        if err is not None:
            errors.append(str(err))

    p = Producer({"bootstrap.servers": spec["bootstrap"], "acks": "all", "enable.idempotence": False,
                  "linger.ms": spec.get("linger_ms", 20), "batch.num.messages": 10000,
                  "queue.buffering.max.messages": 2_000_000, "queue.buffering.max.kbytes": 2_097_151,
                  "log_level": 0})
    n, per, base = spec["readings"], spec["per_message"], spec["base_ms"]
    array = per > 1
    topic = spec["topic"]
    state = {"i": 0}

    def publish_until(target: int) -> int:
        i = state["i"]
        while i < target:
            j = min(n, i + per)
            s, _, _ = reading_fields(i, base)
            value = message_payload(i, j, base, array)
            while True:
                try:
                    p.produce(topic, value=value, key=b"sensor-%04d" % s, on_delivery=cb)
                    break
                except BufferError:
                    p.poll(0.05)
            i = j
        p.poll(0)
        state["i"] = i
        return i

    out: dict[str, Any] = {"t_first": time.time()}
    if spec["mode"] == "paced":
        pacer = _Pacer(spec)
        pacer.run(publish_until)
        out["timeline"] = pacer.timeline
    else:
        publish_until(n)
    out["t_last_call"] = time.time()
    left = p.flush(120)
    out["t_done"] = time.time()
    out.update(readings=state["i"], undelivered=left, errors=errors[:5])
    return out


def worker_mqtt(spec: dict[str, Any]) -> dict[str, Any]:
    """paho publisher driven from ONE thread (no loop_start): with loop_start and a fast publishing
    thread, paho 2.1 left ~12 % of 100k queued QoS 1 messages unsent forever (seen twice at 1M
    readings; the broker's $SYS counters confirmed they never arrived)."""
    import paho.mqtt.client as mqtt

    n, per, base = spec["readings"], spec["per_message"], spec["base_ms"]
    array = per > 1
    acked = [0]
    connected = [False]
    c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                    client_id=f"up-bench-pub-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311, clean_session=True)
    # 0 = no client-side window. paho rescans every queued message on each PUBACK when a window is
    # set (_update_inflight), which is quadratic: 50k queued messages took 63 s to publish with 10000.
    c.max_inflight_messages_set(spec.get("inflight", 0))
    c.max_queued_messages_set(0)

    def on_connect(*_a):  # noqa: ANN002
        connected[0] = True

    def on_publish(client, userdata, mid, reason, properties):  # noqa: ANN001
        acked[0] += 1

    c.on_connect = on_connect
    c.on_publish = on_publish
    c.connect(spec["host"], spec["port"], keepalive=60)
    deadline = time.monotonic() + 10
    while not connected[0]:
        if time.monotonic() > deadline:
            raise SystemExit("publisher could not connect to mosquitto")
        c.loop(timeout=0.05)
    state = {"i": 0, "msgs": 0}

    def publish_until(target: int) -> int:
        i = state["i"]
        while i < target:
            j = min(n, i + per)
            c.publish(f"city/bench/gw{state['msgs'] % 50}", message_payload(i, j, base, array), qos=1)
            state["msgs"] += 1
            if state["msgs"] % 64 == 0:
                c.loop(timeout=0)  # write what is queued, read PUBACKs
            i = j
        c.loop(timeout=0)
        state["i"] = i
        return i

    out: dict[str, Any] = {"t_first": time.time()}
    if spec["mode"] == "paced":
        pacer = _Pacer(spec)
        pacer.run(publish_until, idle=lambda d: c.loop(timeout=d))
        out["timeline"] = pacer.timeline
    else:
        publish_until(n)
    out["t_last_call"] = time.time()
    deadline = time.monotonic() + spec.get("timeout", 600)
    while acked[0] < state["msgs"] and time.monotonic() < deadline:
        c.loop(timeout=0.01)
    out["t_done"] = time.time()
    out.update(readings=state["i"], messages=state["msgs"], acked=acked[0])
    c.disconnect()
    c.loop(timeout=0.1)
    if acked[0] < state["msgs"]:
        raise SystemExit(f"only {acked[0]}/{state['msgs']} PUBACKs received")
    return out


def run_worker(spec_json: str) -> int:
    spec = json.loads(spec_json)
    configure_data(spec.get("sensors", SENSORS), spec.get("invalid_every", 0))
    out = worker_kafka(spec) if spec["kind"] == "kafka" else worker_mqtt(spec)
    Path(spec["out"]).write_text(json.dumps(out))
    return 0


# ----------------------------------------------------------------------------------------------
# orchestration helpers


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Worker:
    """A publisher subprocess; ``result()`` waits and returns its JSON report."""

    def __init__(self, spec: dict[str, Any], workdir: Path, cleanup: contextlib.ExitStack) -> None:
        self.out = workdir / f"worker-{uuid.uuid4().hex[:8]}.json"
        spec = dict(spec, out=str(self.out), sensors=SENSORS, invalid_every=INVALID_EVERY)
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(spec)],
                                     stdin=subprocess.DEVNULL)
        cleanup.callback(self._kill)

    def _kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def result(self, timeout: float = 900) -> dict[str, Any]:
        rc = self.proc.wait(timeout)
        if rc != 0:
            raise RuntimeError(f"publisher worker exited with {rc}")
        return json.loads(self.out.read_text())


class StoredPoller(threading.Thread):
    """Polls ``urbanpulse_readings_stored_total{source=...}`` on /metrics; samples are
    (midpoint of the request in time.time(), stored count).

    Asks for that one counter (``/metrics?name[]=...``): rendering every metric costs the service
    ~4 ms a request, a fifth of a core at the latency phase's 50 Hz on the machine it measures.
    A service without the filter (before 2026-12-01) ignores it and sends everything, as before.
    ``THIN = False`` (``analytics.py --full-metrics-poll``) asks for everything, as before."""

    THIN = True

    def __init__(self, url: str, source: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.url, self.interval = url + "/metrics", interval
        if self.THIN:
            self.url += "?name[]=urbanpulse_readings_stored_total"
        self.needle = f'urbanpulse_readings_stored_total{{source="{source}"}} '
        self.samples: list[tuple[float, int]] = []
        self.stop_event = threading.Event()
        self.target: int | None = None
        self.reached = threading.Event()

    def run(self) -> None:
        import httpx

        with httpx.Client(timeout=2) as client:
            while not self.stop_event.is_set():
                t0 = time.time()
                try:
                    text = client.get(self.url).text
                except httpx.HTTPError:
                    time.sleep(self.interval)
                    continue
                t1 = time.time()
                value = 0
                for line in text.splitlines():
                    if line.startswith(self.needle):
                        value = int(float(line[len(self.needle):]))
                        break
                self.samples.append(((t0 + t1) / 2, value))
                if self.target is not None and value >= self.target:
                    self.reached.set()
                delay = self.interval - (time.time() - t0)
                if delay > 0:
                    time.sleep(delay)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(5)


class RssSampler(threading.Thread):
    """Peak RSS (and CPU seconds) of a process, sampled every ``interval`` seconds."""

    def __init__(self, get_pid, interval: float = 0.1) -> None:  # noqa: ANN001
        super().__init__(daemon=True)
        self.get_pid, self.interval = get_pid, interval
        self.peak = 0
        self.cpu_s = 0.0
        self.stop_event = threading.Event()

    def run(self) -> None:
        import psutil

        proc = None
        while not self.stop_event.is_set():
            try:
                if proc is None:
                    pid = self.get_pid()
                    if pid is not None:
                        proc = psutil.Process(pid)
                if proc is not None:
                    self.peak = max(self.peak, proc.memory_info().rss)
                    t = proc.cpu_times()
                    self.cpu_s = t.user + t.system
            except psutil.Error:
                pass
            self.stop_event.wait(self.interval)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(5)


def rate_from_samples(samples: list[tuple[float, int]], target: int) -> dict[str, Any]:
    """Sustained rate from the first sample showing a stored batch to the first showing ``target``."""
    first = next(((t, c) for t, c in samples if c > 0), None)
    last = next(((t, c) for t, c in samples if c >= target), None)
    if first is None or last is None or last[0] <= first[0]:
        return {"rate": None, "first_stored_at": first and first[0], "all_stored_at": last and last[0]}
    return {"rate": (last[1] - first[1]) / (last[0] - first[0]), "window_s": last[0] - first[0],
            "first_stored_at": first[0], "all_stored_at": last[0], "stored_at_first_sample": first[1]}


def latency_from(pub: list[tuple[float, int]], stored: list[tuple[float, int]]) -> dict[str, Any]:
    """Count-matched latency: reading k was published when the publisher's cumulative count
    reached k and stored when the stored counter reached k."""
    import numpy as np

    pt = np.array([p[0] for p in pub])
    pc = np.array([p[1] for p in pub])
    st = np.array([s[0] for s in stored])
    sc = np.array([s[1] for s in stored])
    k_max = int(min(pc[-1], sc[-1]))
    if k_max <= 0:
        return {"p50_ms": None, "p99_ms": None, "matched": 0}
    k = np.arange(1, k_max + 1)
    lat = st[np.searchsorted(sc, k, "left")] - pt[np.searchsorted(pc, k, "left")]
    p50, p90, p99 = np.percentile(lat, [50, 90, 99]) * 1000
    return {"p50_ms": round(float(p50), 1), "p90_ms": round(float(p90), 1), "p99_ms": round(float(p99), 1),
            "max_ms": round(float(lat.max() * 1000), 1), "matched": k_max,
            "pub_record_interval_ms": round(float(np.median(np.diff(pt)) * 1000), 2) if len(pt) > 1 else None,
            "stored_poll_interval_ms": round(float(np.median(np.diff(st)) * 1000), 2) if len(st) > 1 else None}


# ----------------------------------------------------------------------------------------------
# database


async def _db(dsn: str, fn):  # noqa: ANN001
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return await fn(conn)
    finally:
        await conn.close()


def db_call(dsn: str, fn):  # noqa: ANN001
    return asyncio.run(_db(dsn, fn))


def reset_tables(dsn: str) -> None:
    async def go(conn):  # noqa: ANN001
        await conn.execute("TRUNCATE readings, series, quarantine RESTART IDENTITY")
        await conn.execute("CHECKPOINT")  # no checkpoint debt carried into the next phase
    db_call(dsn, go)


def counts(dsn: str) -> dict[str, int]:
    async def go(conn):  # noqa: ANN001
        return {"readings": await conn.fetchval("SELECT count(*) FROM readings"),
                "quarantine": await conn.fetchval("SELECT count(*) FROM quarantine")}
    return db_call(dsn, go)


def prepare_schema(dsn: str, n: int, base_ms: int) -> None:
    """Migrate (plain PostgreSQL, monthly partitions) and create the partitions the data needs."""
    import numpy as np

    from urbanpulse.storage.migrations import migrate
    from urbanpulse.storage.partitions import MonthlyPartitions

    async def go() -> None:
        import asyncpg

        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn, "postgres")
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
        try:
            parts = MonthlyPartitions()
            async with pool.acquire() as c:
                await parts.load(c)
            last_ms = reading_fields(n - 1, base_ms)[1]
            await parts.ensure(pool, np.array([base_ms * 1000, last_ms * 1000], dtype=np.int64))
        finally:
            await pool.close()
    asyncio.run(go())


CEILING_COLUMNS = ["series_id", "ts", "value", "flags", "source", "lat", "lon"]


def ceiling_records(n: int, base_ms: int) -> list[tuple]:
    """The rows the paths store for readings 0..n-1 (the out-of-range ones left out), as
    ``readings`` records in CEILING_COLUMNS order, series ids 1..SENSORS."""
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    records = []
    for i in range(n):
        if INVALID_EVERY and i % INVALID_EVERY == INVALID_EVERY - 1:
            continue
        s, ts, v = reading_fields(i, base_ms)
        records.append((s + 1, epoch + dt.timedelta(milliseconds=ts), v, 0, SOURCE_KAFKA, None, None))
    return records


def ceiling(dsn: str, n: int, base_ms: int) -> dict[str, float]:
    """Binary COPY of the paths' rows: 5000 rows per transaction, then one single COPY."""
    records = ceiling_records(n, base_ms)
    columns = CEILING_COLUMNS

    async def go(conn) -> dict[str, float]:  # noqa: ANN001
        out = {}
        await conn.execute("TRUNCATE readings")
        await conn.execute("CHECKPOINT")
        t0 = time.perf_counter()
        for i in range(0, n, CEILING_BATCH):
            async with conn.transaction():
                await conn.copy_records_to_table("readings", records=records[i:i + CEILING_BATCH], columns=columns)
        out["batched_5000_per_tx"] = n / (time.perf_counter() - t0)
        assert await conn.fetchval("SELECT count(*) FROM readings") == n
        await conn.execute("TRUNCATE readings")
        await conn.execute("CHECKPOINT")
        t0 = time.perf_counter()
        await conn.copy_records_to_table("readings", records=records, columns=columns)
        out["single_copy"] = n / (time.perf_counter() - t0)
        await conn.execute("TRUNCATE readings")
        return out
    return db_call(dsn, go)


# ----------------------------------------------------------------------------------------------
# phases


def service_config(dsn: str, kafka: dict | None = None, mqtt: dict | None = None) -> dict[str, Any]:
    # the ingest path alone; benchmarks/analytics.py measures windows, rollups, detectors and alerts
    cfg: dict[str, Any] = {"database": {"dsn": dsn, "storage_mode": "postgres"}, "log_level": "INFO",
                           "kafka": {"enabled": False}, "mqtt": {"enabled": False},
                           "detection": {"enabled": False}}
    cfg["database"]["rollups"] = {"enabled": False}
    if kafka:
        cfg["kafka"] = {"enabled": True, **kafka}
    if mqtt:
        cfg["mqtt"] = {"enabled": True, **mqtt}
    return cfg


class Phase:
    """One service process with its /metrics poller and RSS sampler."""

    def __init__(self, ctx: Ctx, cfg: dict[str, Any], source: str, poll_s: float) -> None:
        from service_process import ServiceProcess

        self.ctx = ctx
        self.svc = ServiceProcess(cfg, ctx.workdir)
        self.poller = StoredPoller(self.svc.url, source, poll_s)
        self.rss = RssSampler(lambda: self.svc.proc.pid if self.svc.proc else None)
        ctx.cleanup.callback(self.svc.stop_quietly)

    def start(self) -> Phase:
        self.t_spawn = time.time()
        self.poller.start()
        self.rss.start()
        self.svc.start(timeout=60)
        self.t_ready = time.time()
        return self

    def wait_stored(self, target: int, timeout: float) -> None:
        self.poller.target = target
        if self.poller.samples and self.poller.samples[-1][1] >= target:
            return
        deadline = time.monotonic() + timeout
        while not self.poller.reached.wait(min(10.0, max(0.0, deadline - time.monotonic()))):
            last = self.poller.samples[-1][1] if self.poller.samples else 0
            if time.monotonic() < deadline:
                log(f"  ... {last:,}/{target:,} stored")
                continue
            raise RuntimeError(f"only {last}/{target} readings stored after {timeout}s; "
                               f"service log: {self.svc.log_path}\n{self.svc.log_tail(2000)}")

    def stop(self) -> dict[str, Any]:
        self.poller.stop()
        rc = self.svc.terminate(60)
        self.rss.stop()
        return {"exit_code": rc, "peak_rss_mb": round(self.rss.peak / 2**20, 1), "service_cpu_s": round(self.rss.cpu_s, 2),
                "log": str(self.svc.log_path)}


class Ctx:
    def __init__(self, args: argparse.Namespace, workdir: Path, cleanup: contextlib.ExitStack) -> None:
        self.args, self.workdir, self.cleanup = args, workdir, cleanup
        self.dsn = ""
        self.base_ms = 0
        self.tansu = None
        self.mosquitto = None

    def wait_kafka_assigned(self, phase: Phase, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            brokers = phase.svc.health().json().get("brokers", {})
            if brokers.get("kafka", {}).get("assigned"):
                return
            time.sleep(0.1)
        raise RuntimeError("Kafka consumer got no partitions assigned")


def kafka_throughput(ctx: Ctx, topic: str, produced: dict[str, Any]) -> dict[str, Any]:
    n = ctx.args.readings
    reset_tables(ctx.dsn)
    cfg = service_config(ctx.dsn, kafka={"bootstrap_servers": ctx.tansu.bootstrap, "topics": [topic],
                                         "group_id": f"bench-{topic}"})
    log(f"kafka: service draining {n:,} pre-produced readings from {topic}")
    ph = Phase(ctx, cfg, "kafka", 0.05).start()
    ph.wait_stored(n, timeout=max(300, n / 2000))
    rate = rate_from_samples(ph.poller.samples, n)
    stop = ph.stop()
    res = {**rate, **stop, "produce": {k: produced[k] for k in ("produce_rate", "produce_s")},
           "from_spawn_rate": n / (rate["all_stored_at"] - ph.t_spawn), "db": counts(ctx.dsn),
           "service_cpu_util": round(stop["service_cpu_s"] / (rate["all_stored_at"] - ph.t_spawn), 2)}
    log(f"kafka: {res['rate']:,.0f} readings/s sustained, peak RSS {res['peak_rss_mb']} MB")
    return res


def mqtt_throughput(ctx: Ctx) -> dict[str, Any]:
    """Two figures: draining a broker backlog (the service's capacity, measured like Kafka's
    pre-produced topic) and storing while a publisher runs (bounded by the one publisher)."""
    n, per = ctx.args.readings, ctx.args.mqtt_readings_per_message
    m = ctx.mosquitto
    client_id = f"up-bench-{uuid.uuid4().hex[:6]}"
    cfg = service_config(ctx.dsn, mqtt={"host": m.host, "port": m.port, "topics": ["city/#"], "client_id": client_id})

    # 1. backlog: the persistent session exists, the service is down, the broker queues n readings
    reset_tables(ctx.dsn)
    Phase(ctx, cfg, "mqtt", 0.05).start().stop()
    log(f"mqtt: publishing a backlog of {n:,} readings ({per}/message, QoS 1) while the service is down")
    pub = Worker({"kind": "mqtt", "mode": "burst", "host": m.host, "port": m.port, "readings": n,
                  "per_message": per, "base_ms": ctx.base_ms}, ctx.workdir, ctx.cleanup).result()
    ph = Phase(ctx, cfg, "mqtt", 0.05).start()
    ph.wait_stored(n, timeout=max(300, n / 2000))
    rate = rate_from_samples(ph.poller.samples, n)
    stop = ph.stop()
    pub_s = pub["t_done"] - pub["t_first"]
    res = {**rate, **stop, "method": "backlog drained from the broker's persistent session", "db": counts(ctx.dsn),
           "backlog_publish_rate": n / pub_s,
           "service_cpu_util": round(stop["service_cpu_s"] / (rate["all_stored_at"] - ph.t_spawn), 2)}
    log(f"mqtt: backlog drained at {res['rate']:,.0f} readings/s, peak RSS {res['peak_rss_mb']} MB")

    # 2. live: one publisher process while the service runs
    reset_tables(ctx.dsn)
    live_cfg = service_config(ctx.dsn, mqtt={"host": m.host, "port": m.port, "topics": ["city/#"],
                                             "client_id": f"up-bench-{uuid.uuid4().hex[:6]}"})
    ph = Phase(ctx, live_cfg, "mqtt", 0.05).start()
    log(f"mqtt: publishing {n:,} readings ({per}/message, QoS 1) while the service runs")
    w = Worker({"kind": "mqtt", "mode": "burst", "host": m.host, "port": m.port, "readings": n,
                "per_message": per, "base_ms": ctx.base_ms}, ctx.workdir, ctx.cleanup)
    ph.wait_stored(n, timeout=max(300, n / 2000))
    pub = w.result()
    live = rate_from_samples(ph.poller.samples, n)
    live_stop = ph.stop()
    pub_s = pub["t_done"] - pub["t_first"]
    res["live"] = {**live, **live_stop, "db": counts(ctx.dsn),
                   "publish": {"readings": pub["readings"], "messages": pub["messages"], "acked": pub["acked"],
                               "publish_s": round(pub_s, 3), "publish_rate": n / pub_s,
                               "publish_calls_rate": n / (pub["t_last_call"] - pub["t_first"])}}
    log(f"mqtt: live {live['rate']:,.0f} readings/s stored, publisher {n / pub_s:,.0f} readings/s")
    return res


def latency_phase(ctx: Ctx, kind: str) -> dict[str, Any]:
    a = ctx.args
    total = int(a.latency_rate * a.latency_seconds)
    reset_tables(ctx.dsn)
    if kind == "kafka":
        from services import create_topic

        topic = f"bench.latency.{uuid.uuid4().hex[:6]}"
        create_topic(ctx.tansu.bootstrap, topic, partitions=4)
        cfg = service_config(ctx.dsn, kafka={"bootstrap_servers": ctx.tansu.bootstrap, "topics": [topic],
                                             "group_id": f"bench-{topic}"})
        per = a.kafka_readings_per_message
        spec = {"kind": "kafka", "bootstrap": ctx.tansu.bootstrap, "topic": topic, "linger_ms": 1}
    else:
        m = ctx.mosquitto
        cfg = service_config(ctx.dsn, mqtt={"host": m.host, "port": m.port, "topics": ["city/#"],
                                            "client_id": f"up-bench-{uuid.uuid4().hex[:6]}"})
        per = a.mqtt_readings_per_message
        spec = {"kind": "mqtt", "host": m.host, "port": m.port}
    ph = Phase(ctx, cfg, kind, 0.01).start()
    if kind == "kafka":
        ctx.wait_kafka_assigned(ph)
    time.sleep(1.0)  # let the consumer settle into its fetch loop
    log(f"{kind} latency: {a.latency_rate:,} readings/s for {a.latency_seconds} s ({per}/message)")
    w = Worker({**spec, "mode": "paced", "rate": a.latency_rate, "readings": total, "per_message": per,
                "base_ms": ctx.base_ms}, ctx.workdir, ctx.cleanup)
    pub = w.result()
    ph.wait_stored(total, timeout=120)
    time.sleep(0.05)
    samples = list(ph.poller.samples)
    stop = ph.stop()
    res = latency_from(pub["timeline"], samples)
    res.update(readings=total, rate=a.latency_rate, seconds=a.latency_seconds,
               achieved_publish_rate=round(total / (pub["t_last_call"] - pub["t_first"])),
               peak_rss_mb=stop["peak_rss_mb"], log=stop["log"])
    log(f"{kind} latency: p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms")
    return res


def produce_kafka_backlog(ctx: Ctx, topic: str) -> dict[str, Any]:
    from services import create_topic

    n = ctx.args.readings
    create_topic(ctx.tansu.bootstrap, topic, partitions=4)
    log(f"kafka: pre-producing {n:,} readings ({ctx.args.kafka_readings_per_message}/message) to {topic} "
        f"(4 partitions, confluent_kafka in a separate process)")
    w = Worker({"kind": "kafka", "mode": "burst", "bootstrap": ctx.tansu.bootstrap, "topic": topic, "readings": n,
                "per_message": ctx.args.kafka_readings_per_message, "base_ms": ctx.base_ms},
               ctx.workdir, ctx.cleanup)
    out = w.result()
    if out["undelivered"] or out["errors"]:
        raise RuntimeError(f"Kafka produce failed: {out}")
    s = out["t_done"] - out["t_first"]
    log(f"kafka: produced in {s:.1f} s ({n / s:,.0f} readings/s)")
    return {"produce_s": round(s, 2), "produce_rate": n / s}


def measure_ceiling(ctx: Ctx, label: str) -> dict[str, float]:
    log(f"ceiling ({label}): binary COPY of {ctx.args.readings:,} rows, 5000/tx then single COPY")
    c = ceiling(ctx.dsn, ctx.args.readings, ctx.base_ms)
    log(f"ceiling ({label}): {c['batched_5000_per_tx']:,.0f} rows/s at 5000/tx, {c['single_copy']:,.0f} single COPY")
    return c


# ----------------------------------------------------------------------------------------------
# report


def machine_info(dsn: str) -> dict[str, Any]:
    import importlib.metadata as md

    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    async def go(conn):  # noqa: ANN001
        rows = await conn.fetch("SELECT name, setting, unit FROM pg_settings WHERE name IN ('shared_buffers', "
                                "'synchronous_commit', 'fsync', 'wal_level', 'max_wal_size', 'full_page_writes')")
        return {"version": await conn.fetchval("SHOW server_version"),
                **{r["name"]: r["setting"] + (r["unit"] or "") for r in rows}}

    versions = {}
    for pkg in ("asyncpg", "aiokafka", "paho-mqtt", "confluent-kafka", "numpy", "msgspec"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[pkg] = md.version(pkg)
    return {"nproc": os.cpu_count(), "cpu_affinity": len(os.sched_getaffinity(0)), "cpu_model": cpu,
            "python": platform.python_version(), "platform": platform.platform(),
            "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "postgres": db_call(dsn, go), "packages": versions}


def results_workdir(name: str) -> tuple[str, Path]:
    """A run's time stamp and its work dir under benchmarks/results/ (logs, configs, broker data)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return stamp, Path(tempfile.mkdtemp(prefix=f"{name}-{stamp}-", dir=RESULTS))


def write_results(r: dict[str, Any], name: str, stamp: str, also: Path | None) -> Path:
    """The run's JSON to benchmarks/results/<name>-<stamp>.json and to ``also`` if given."""
    text = json.dumps(r, indent=2, default=str)
    out = RESULTS / f"{name}-{stamp}.json"
    out.write_text(text)
    if also:
        also.parent.mkdir(parents=True, exist_ok=True)
        also.write_text(text)
    return also or out


def fmt_rate(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def print_table(r: dict[str, Any]) -> None:
    ceil = r.get("ceiling_rate")
    lines = [f"urbanpulse ingest benchmark  {r['date']}  readings={r['readings']:,}  "
             f"nproc={r['machine']['nproc']}  python={r['machine']['python']}",
             "", f"{'figure':<44}{'value':>16}   note", "-" * 100]

    def row(name: str, value: str, note: str = "") -> None:
        lines.append(f"{name:<44}{value:>16}   {note}")

    if ceil is not None:
        row("ceiling: binary COPY, 5000 rows/tx (rows/s)", fmt_rate(ceil),
            "mean of " + ", ".join(fmt_rate(c["batched_5000_per_tx"]) for c in r["ceiling"]["runs"]))
        row("ceiling: one single COPY (rows/s)", fmt_rate(r["single_copy_rate"]),
            "mean of " + ", ".join(fmt_rate(c["single_copy"]) for c in r["ceiling"]["runs"]))
    for path, target in (("kafka", 0.50), ("mqtt", 0.40)):
        p = r.get(path)
        if not p:
            continue
        per = r[f"{path}_readings_per_message"]
        row(f"{path}: sustained stored (readings/s)", fmt_rate(r[f"{path}_rate"]), f"{per} reading(s)/message")
        ratio = r.get(f"{path}_ceiling_ratio")
        if ratio is not None:
            row(f"{path}: / ceiling (5000/tx)", f"{ratio * 100:.1f} %", f"target >= {target * 100:.0f} %")
        if path == "mqtt":
            row("mqtt: (backlog drained from the broker)", "", "like Kafka's pre-produced topic")
            live = p["live"]
            row("mqtt: live, while one publisher runs", fmt_rate(live["rate"]),
                f"publisher {fmt_rate(live['publish']['publish_rate'])}/s, {live['publish']['messages']:,} messages")
        else:
            row("kafka: pre-produce rate (readings/s)", fmt_rate(p["produce"]["produce_rate"]), "not the service")
        row(f"{path}: peak RSS of service (MB)", f"{p['peak_rss_mb']}", "")
        row(f"{path}: service CPU / wall", f"{p['service_cpu_util']:.2f}", "cores, spawn to last stored")
        lat = r.get(f"{path}_latency")
        if lat:
            row(f"{path}: latency p50 / p99 (ms)", f"{lat['p50_ms']} / {lat['p99_ms']}",
                f"paced {lat['rate']:,}/s for {lat['seconds']} s, peak RSS {lat['peak_rss_mb']} MB")
    print("\n".join(lines))


# ----------------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="urbanpulse ingest benchmark: Kafka and MQTT paths vs. a binary COPY ceiling "
                    "(starts its own Tansu, mosquitto and a throw-away PostgreSQL database).")
    p.add_argument("--readings", type=int, default=1_000_000, help="readings per throughput phase (default 1000000)")
    p.add_argument("--mqtt-readings-per-message", type=int, default=10, help="readings per MQTT message (default 10)")
    p.add_argument("--kafka-readings-per-message", type=int, default=1, help="readings per Kafka message (default 1)")
    p.add_argument("--skip-mqtt", action="store_true", help="skip the MQTT throughput and latency phases")
    p.add_argument("--skip-kafka", action="store_true", help="skip the Kafka throughput and latency phases")
    p.add_argument("--skip-latency", action="store_true", help="skip the paced latency phases")
    p.add_argument("--latency-rate", type=int, default=20_000, help="readings/s in the latency phases (default 20000)")
    p.add_argument("--latency-seconds", type=float, default=10.0, help="length of each latency phase (default 10)")
    p.add_argument("--pg-dsn", default=None,
                   help="server to create the throw-away database on (default postgresql://postgres@127.0.0.1:5432/postgres)")
    p.add_argument("--json", metavar="OUT", type=Path, default=None,
                   help="write the results as JSON here (always also written to benchmarks/results/)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return run_worker(args.worker)
    for name in ("readings", "mqtt_readings_per_message", "kafka_readings_per_message"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1")
    sys.path.insert(0, str(REPO / "tests"))
    sys.path.insert(0, str(REPO / "src"))
    from services import PG_DSN, create_database, drop_database, start_mosquitto, start_tansu

    base_dsn = args.pg_dsn or PG_DSN
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below on SIGTERM too
    stamp, workdir = results_workdir("ingest")
    started = time.time()
    with contextlib.ExitStack() as cleanup:
        ctx = Ctx(args, workdir, cleanup)
        ctx.base_ms = default_base_ms(max(args.readings, int(args.latency_rate * args.latency_seconds)))
        log(f"work dir {workdir}")
        db_name, ctx.dsn = create_database(base_dsn, prefix="up_bench")
        cleanup.callback(lambda: (drop_database(db_name, base_dsn), log(f"dropped database {db_name}")))
        log(f"database {db_name}")
        if not args.skip_kafka:
            ctx.tansu = start_tansu(workdir / "tansu")
            cleanup.callback(ctx.tansu.stop)
            log(f"tansu on {ctx.tansu.bootstrap}")
        if not args.skip_mqtt:
            ctx.mosquitto = start_mosquitto(workdir / "mosquitto")
            cleanup.callback(ctx.mosquitto.stop)
            log(f"mosquitto on {ctx.mosquitto.port}")
        prepare_schema(ctx.dsn, args.readings, ctx.base_ms)

        r: dict[str, Any] = {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                             "readings": args.readings, "machine": machine_info(ctx.dsn),
                             "kafka_readings_per_message": args.kafka_readings_per_message,
                             "mqtt_readings_per_message": args.mqtt_readings_per_message,
                             "command": " ".join([Path(sys.executable).name, *sys.argv])}
        topic = f"bench.readings.{uuid.uuid4().hex[:6]}"
        produced = produce_kafka_backlog(ctx, topic) if not args.skip_kafka else None
        runs = [measure_ceiling(ctx, "before")]
        if not args.skip_kafka:
            r["kafka"] = kafka_throughput(ctx, topic, produced)
        if not args.skip_mqtt:
            r["mqtt"] = mqtt_throughput(ctx)
        if not args.skip_latency:
            if not args.skip_kafka:
                r["kafka_latency"] = latency_phase(ctx, "kafka")
            if not args.skip_mqtt:
                r["mqtt_latency"] = latency_phase(ctx, "mqtt")
        runs.append(measure_ceiling(ctx, "after"))

        ceil = sum(c["batched_5000_per_tx"] for c in runs) / len(runs)
        r["ceiling"] = {"runs": runs, "method": "asyncpg copy_records_to_table into readings; 5000 rows per "
                                                "transaction; ratios use this 5000/tx mean"}
        r["ceiling_rate"] = ceil
        r["single_copy_rate"] = sum(c["single_copy"] for c in runs) / len(runs)
        for path in ("kafka", "mqtt"):
            if path in r:
                r[f"{path}_rate"] = r[path]["rate"]
                r[f"{path}_ceiling_ratio"] = r[path]["rate"] / ceil if r[path]["rate"] else None
                r[f"{path}_peak_rss_mb"] = r[path]["peak_rss_mb"]
        r["wall_s"] = round(time.time() - started, 1)
        r["workdir"] = str(workdir)

    print_table(r)
    log(f"results: {write_results(r, 'ingest', stamp, args.json)} (wall {r['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
