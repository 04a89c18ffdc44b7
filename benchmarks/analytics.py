#!/usr/bin/env python
"""Stream-analytics benchmark: what windows, rollups, detectors and alerts cost on the Kafka path.

One run starts its own Tansu (Kafka protocol), creates a throw-away PostgreSQL database and
reports figures (no pass/fail):

* ingest-only vs analytics - the same N pre-produced readings (1,000 series, 1 s apart, one
  reading per message, 4 partitions) drained by ``urbanpulse run`` with analytics off
  (``detection.enabled: false``, ``database.rollups.enabled: false``) and with everything on (all six
  detectors, a threshold band on the benchmark metric so that detector runs too, 1-minute and
  1-hour rollups, alerts). Phases run in the order off, on, on, off (ABBA) so drift on a noisy
  machine cancels; the ratio is mean(on) / mean(off). Each phase uses its own consumer group.
* alert latency - the service runs with analytics on; a separate process produces a steady
  stream (``--latency-series`` series at ``--latency-rate`` readings/s) and, after a warm-up,
  one spike every 0.5 s on a fresh series, recording the wall time it handed each spike to
  the producer; an SSE client on ``GET /alerts/stream`` records when the event of that
  series' spike alert arrives. Latency = SSE arrival - publish, p50/p95/p99/max; also the
  time to the alert event's commit (database clock) and the readings' publish-to-stored
  latency in the same phase (count matched, as in ingest.py), to show where the time goes.
  The result records the server's and the machine's state over the run (WAL segments created,
  checkpoints, busy cores, other processes' cores; pg_state.py) and the stored p99 per 5 s;
  ``--latency-wal warm|cold`` sets PostgreSQL's pool of ready WAL segments first (default: as
  found), to tell a cold server's first run from the service's own tail.
* memory per series - in-process, the analytics state (slot map, windows, detectors) for
  ``--series`` (default 100,000) series fed 30 readings each: the arrays' bytes per series and
  the RSS growth per series.

Run:  .venv/bin/python benchmarks/analytics.py [--readings 1000000] [--json OUT]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "src"))

import ingest as ib  # noqa: E402 - the ingest benchmark's phases and publishers

RESULTS = REPO / "benchmarks" / "results"
SPIKE_VALUE = 65.0
BENCH_METRIC = "temperature"  # what the ingest benchmark's producer writes (values -20..60)


def analytics_config(dsn: str, kafka: dict[str, Any], on: bool, part: str = "all") -> dict[str, Any]:
    cfg = ib.service_config(dsn, kafka=kafka)
    if os.environ.get("UP_BENCH_INGEST"):  # experiments: ingest settings for both modes, as JSON
        cfg["ingest"] = json.loads(os.environ["UP_BENCH_INGEST"])
    if os.environ.get("UP_BENCH_KAFKA"):  # experiments: extra kafka settings, as JSON
        cfg["kafka"].update(json.loads(os.environ["UP_BENCH_KAFKA"]))
    if part == "off":
        cfg["detection"] = {"enabled": False}
        cfg["database"]["rollups"] = {"enabled": False}
    elif part == "detectors":
        cfg["detection"] = {"enabled": True}
        cfg["database"]["rollups"] = {"enabled": False}
    elif part == "rollups":
        cfg["detection"] = {"enabled": False}
        cfg["database"]["rollups"] = {"enabled": True}
    elif on:  # part "all", or "no-rollups": everything on but the rollups (what they cost)
        cfg["detection"] = {"enabled": True,
                            "metrics": {BENCH_METRIC: {"threshold": {"enabled": True, "high": 68.0,
                                                                     "clear_high": 66.0}}}}
        cfg["database"]["rollups"] = {"enabled": part != "no-rollups"}
    else:
        cfg["detection"] = {"enabled": False}
        cfg["database"]["rollups"] = {"enabled": False}
    return cfg


def reset_all(dsn: str) -> None:
    async def go(conn):  # noqa: ANN001
        await conn.execute("TRUNCATE readings, series, quarantine RESTART IDENTITY")
        # every rollup level and the per-series level decisions, whatever the schema has by now
        rollups = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                   "AND tablename LIKE 'rollup%'")
        for table in [r["tablename"] for r in rollups] + ["alert_events", "alerts"]:
            if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
                await conn.execute(f"TRUNCATE {table} CASCADE")
        await conn.execute("CHECKPOINT")
    ib.db_call(dsn, go)


def kafka_phase(ctx: ib.Ctx, topic: str, on: bool, label: str, part: str = "all",
                kafka_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    n = ctx.args.readings - ib.invalid_count(ctx.args.readings)  # the out-of-range ones are quarantined
    reset_all(ctx.dsn)
    cfg = analytics_config(ctx.dsn, {"bootstrap_servers": ctx.tansu.bootstrap, "topics": [topic],
                                     "group_id": f"bench-{label}-{uuid.uuid4().hex[:6]}", **(kafka_extra or {})},
                           on, part)
    ib.log(f"{label}: draining {n:,} readings, analytics {'ON' if on else 'off'}")
    # before the spawn: Phase.start waits for the full API, which is built once the backlog is drained
    cpu0 = _cpu_by_process_group(ctx)
    ph = ib.Phase(ctx, cfg, "kafka", 0.05)
    spies: list[subprocess.Popen | None] = []
    # from the spawn: Phase.start returns only once the drain is over (the full API is built after it)
    ph.svc.on_spawn = lambda pid: spies.append(_start_profiler(ctx, pid, label))
    ph.start()
    if not getattr(ctx.args, "fixed_poll", False):
        threading.Thread(target=_thin_polling, args=(ph.poller, n), daemon=True).start()
    spy = spies[0] if spies else None
    ph.wait_stored(n, timeout=max(300, n / 1000))
    cpu = {k: round(v - cpu0.get(k, 0.0), 2) for k, v in _cpu_by_process_group(ctx).items()}
    service_cpu = _service_cpu(ph)  # spawn -> last stored, as PostgreSQL's and the broker's are
    rate = ib.rate_from_samples(ph.poller.samples, n)
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)
    time.sleep(0.5)
    analysis = _analysis_latency(ph.svc.url)
    try:
        stages = latency_sources(ph.svc.url)
    except Exception as exc:  # noqa: BLE001 - an older service without the histograms
        stages = {"error": str(exc)}
    stop = ph.stop()
    res = {**rate, **stop, "analytics": on, "cpu_s": cpu, "service_cpu_at_stored_s": service_cpu, **analysis,
           "db": _db_counts(ctx.dsn),
           "from_spawn_rate": round(n / (rate["all_stored_at"] - ph.t_spawn)) if rate.get("all_stored_at") else None,
           "loadavg_1m_end": round(os.getloadavg()[0], 1), "service_stages": stages,
           "first_stored_s": round(rate["first_stored_at"] - ph.t_spawn, 2) if rate.get("first_stored_at") else None,
           "from_spawn_s": round(rate["all_stored_at"] - ph.t_spawn, 2) if rate.get("all_stored_at") else None}
    ib.log(f"{label}: {res['rate']:,.0f} readings/s, peak RSS {res['peak_rss_mb']} MB, cpu {cpu}, db {res['db']}")
    return res


def _thin_polling(poller: ib.StoredPoller, target: int, fine_s: float = 0.05, coarse_s: float = 0.5) -> None:
    """Poll /metrics every ``fine_s`` only where the sustained rate is read (until the first
    stored batch, and as the count nears ``target``), and up to ``coarse_s`` in between: the
    service renders every metric for each poll, which at 20 Hz cost it 8-12 % of its event loop
    in the throughput phases (issue 14). The rate's resolution at both ends is unchanged."""
    while not poller.stop_event.is_set() and not poller.reached.is_set():
        pos = [x for x in poller.samples if x[1] > 0]
        interval = fine_s
        if len(pos) >= 2 and pos[-1][1] > pos[0][1] and pos[-1][0] > pos[0][0]:
            rate = (pos[-1][1] - pos[0][1]) / (pos[-1][0] - pos[0][0])
            left_s = (target - pos[-1][1]) / rate - (time.time() - pos[-1][0])
            interval = min(coarse_s, max(fine_s, left_s / 4))
        poller.interval = interval
        time.sleep(fine_s / 2)
    poller.interval = fine_s


def _analysis_latency(url: str) -> dict[str, Any]:
    """Mean time from a batch being formed to its analysis being ready (the service's summary)."""
    import httpx

    vals = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("urbanpulse_analytics_batch_seconds_"):
            name, value = line.split()
            vals[name.rsplit("_", 1)[1]] = float(value)
    if not vals.get("count"):
        return {}
    return {"analysed_batches": int(vals["count"]), "analysis_ms_per_batch": round(1000 * vals["sum"] / vals["count"], 1)}


def _compile_kernels() -> None:
    """Fill numba's on-disk cache before the phases, so that a fresh checkout's first analytics
    phase does not pay the one-time compile (the service would, once, at its first start)."""
    code = "from urbanpulse.analytics import compile_kernels; compile_kernels()"
    t0 = time.time()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    ib.log(f"numba kernels compiled or loaded from cache in {time.time() - t0:.1f}s")


def _service_cpu(ph: ib.Phase) -> float | None:
    """CPU seconds of the service process so far (None if it is gone)."""
    import psutil

    try:
        t = psutil.Process(ph.svc.proc.pid).cpu_times()
    except (psutil.Error, AttributeError):
        return None
    return round(t.user + t.system, 2)


def _cpu_by_process_group(ctx: ib.Ctx) -> dict[str, float]:
    """CPU seconds so far of PostgreSQL (all backends) and the broker: the service shares the
    machine's 2 cores with both, so a cost can show up in either instead of the service."""
    import psutil

    out = {"postgres": 0.0, "broker": 0.0}
    broker_pid = ctx.tansu.proc.pid if ctx.tansu is not None else None
    for p in psutil.process_iter(["name", "cpu_times"]):
        t = p.info["cpu_times"]
        if t is None:
            continue
        if p.info["name"] == "postgres":
            out["postgres"] += t.user + t.system
        elif p.pid == broker_pid:
            out["broker"] += t.user + t.system
    return out


def _start_profiler(ctx: ib.Ctx, pid: int, label: str) -> subprocess.Popen | None:
    """With UP_BENCH_PYSPY=1, sample the service with py-spy from its spawn to the end of the drain
    (raw collapsed stacks per thread, idle excluded, in the workdir); UP_BENCH_PYSPY=gil samples
    only the thread holding the GIL. py-spy is taken from PATH or beside this Python."""
    import os
    import shutil

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not os.environ.get("UP_BENCH_PYSPY") or not Path(spy).exists():
        return None
    out = ctx.workdir / f"profile-{label}.txt"
    ib.log(f"{label}: profiling the service into {out}")
    gil = ["--gil"] if os.environ["UP_BENCH_PYSPY"] == "gil" else []
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "200", "--nonblocking", "--threads", *gil,
                             "--format", "raw", "--output", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _db_counts(dsn: str) -> dict[str, int]:
    async def go(conn):  # noqa: ANN001
        out = {}
        for table in ("readings", "rollup_1m", "rollup_1h", "alerts", "alert_events"):
            if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
                out[table] = await conn.fetchval(f"SELECT count(*) FROM {table}")
        return out
    return ib.db_call(dsn, go)


# ----------------------------------------------------------------------------------------------
# alert latency


def latency_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Producer process: steady readings for S series, then one spike per 0.5 s on a fresh series."""
    from functools import partial

    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": spec["bootstrap"], "acks": "all", "linger.ms": spec.get("linger_ms", 1),
                  "log_level": 0})
    # the producer's own leg: produce() -> the broker's acknowledgement, every 50th message
    delivered: list[float] = []

    def on_delivery(err, msg, t=0.0):  # noqa: ANN001
        if err is None:
            delivered.append(time.time() - t)

    full = [0]  # times the producer's local queue was full (the broker behind): waited, not dropped
    topic = spec["topic"]
    p_produce, p_poll = p.produce, p.poll

    def produce_waiting(value: bytes, key: bytes, **kwargs) -> None:  # noqa: ANN003
        while True:
            try:
                p_produce(topic, value, key, **kwargs)
                return
            except BufferError:  # "Local: Queue full": wait for deliveries instead of failing the run
                full[0] += 1
                p_poll(0.01)
    # the messages come from a pure generator (latency_stream.py, `lat28`): numpy values and byte
    # templates, the same bytes as the per-message dict + orjson before, for less of the shared cores
    from latency_stream import LatencyStream

    series, rate, seconds, warmup = spec["series"], spec["rate"], spec["seconds"], spec["warmup_s"]
    spikes: dict[str, float] = {}
    t0 = time.time()
    stream = LatencyStream(series, rate, t0, warmup, BENCH_METRIC, SPIKE_VALUE)
    timeline: list[tuple[float, int]] = [(t0, 0)]
    produced = 0
    while True:
        now = time.time()
        if now - t0 > seconds:
            break
        spike = stream.spike_due(now)
        if spike is not None:
            s, key, payload = spike
            produce_waiting(payload, key)
            produced += 1
            p_poll(0)
            at = time.time()
            stream.spike_sent(s, at)
            spikes[key.decode()] = at
        keys, payloads = stream.readings_due(now)
        for key, payload in zip(keys, payloads):
            if produced % 50:
                try:
                    p_produce(topic, payload, key)
                except BufferError:
                    produce_waiting(payload, key)
            else:  # every 50th message times its own produce -> broker acknowledgement
                produce_waiting(payload, key, on_delivery=partial(on_delivery, t=time.time()))
            produced += 1
        p_poll(0)
        timeline.append((time.time(), produced))
        time.sleep(0.002)
    p.flush(60)
    delivered.sort()
    acked = ({f"p{q}_ms": round(1000 * delivered[min(len(delivered) - 1, int(q / 100 * len(delivered)))], 1)
              for q in (50, 99)} if delivered else {})
    return {"spikes": spikes, "sent": produced, "t0": t0, "timeline": timeline[::10] + [timeline[-1]],
            "produce_to_acked": acked, "producer_queue_full": full[0]}


class SseClient(threading.Thread):
    """Records when the spike alert of each sensor first shows on /alerts/stream (an event whose
    alert has a trigger with the spike's value); other alert events are only counted."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.url = url + "/alerts/stream"
        self.headers = headers  # the stream needs a viewer key (api/access.py)
        self.status: int | None = None
        self.first_seen: dict[str, float] = {}
        self.events = 0
        self.background = 0  # events of alerts the spikes did not cause
        self.stop_event = threading.Event()
        self.connected = threading.Event()

    def run(self) -> None:
        import httpx

        with httpx.Client(timeout=httpx.Timeout(5, read=None)) as client, \
                client.stream("GET", self.url, headers=self.headers) as r:
            self.status = r.status_code
            self.connected.set()
            if r.status_code != 200:
                return
            data: list[str] = []
            for line in r.iter_lines():
                if self.stop_event.is_set():
                    return
                if line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    now = time.time()
                    try:
                        ev = json.loads("\n".join(data))
                    except ValueError:
                        data = []
                        continue
                    data = []
                    self.events += 1
                    alert = ev.get("alert", ev)
                    sensor = alert.get("sensor_id")
                    spiked = any(t.get("value") == SPIKE_VALUE for t in alert.get("triggers") or ())
                    if not spiked:
                        self.background += 1
                    elif sensor and sensor not in self.first_seen:
                        self.first_seen[sensor] = now


def _event_times(dsn: str) -> dict[str, float]:
    """When each sensor's first alert event was committed (the database clock: same machine)."""
    async def go(conn):  # noqa: ANN001
        rows = await conn.fetch("""SELECT DISTINCT ON (a.sensor_id) a.sensor_id, extract(epoch FROM e.at) AS at
                                   FROM alert_events e JOIN alerts a ON a.id = e.alert_id
                                   ORDER BY a.sensor_id, e.id""")
        return {r["sensor_id"]: float(r["at"]) for r in rows}
    return ib.db_call(dsn, go)


def _quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The q-quantile of a Prometheus histogram (cumulative (le, count) pairs), linearly
    interpolated inside its bucket, as PromQL's histogram_quantile does."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    rank = q * total
    lo_le, lo_n = 0.0, 0.0
    for le, n in buckets:
        if n >= rank:
            if le == float("inf"):
                return lo_le
            return lo_le + (le - lo_le) * ((rank - lo_n) / (n - lo_n) if n > lo_n else 1.0)
        lo_le, lo_n = le, n
    return lo_le


def latency_sources(url: str) -> dict[str, Any]:
    """Where the service's own time goes, from its /metrics histograms (p50/p99 in ms, counts):
    urbanpulse_batch_stage_seconds per stage, urbanpulse_received_to_committed_seconds and
    urbanpulse_gc_pause_seconds per generation."""
    import re

    import httpx

    hist: dict[tuple[str, str], list[tuple[float, float]]] = {}
    sums: dict[tuple[str, str], float] = {}
    pat = re.compile(r'^(urbanpulse_(?:batch_stage|received_to_committed|gc_pause|kafka_fetch_delay)_seconds)_(bucket|sum)'
                     r'(?:\{(.*)\})? ([0-9.e+-]+|\+Inf)$')
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        m = pat.match(line)
        if not m:
            continue
        name, kind, labels, value = m.groups()
        labels = labels or ""
        le = re.search(r'le="([^"]+)"', labels)
        key_labels = re.sub(r'le="[^"]+"', "", labels).strip(",")
        key = (name, key_labels)
        if kind == "bucket" and le:
            hist.setdefault(key, []).append((float(le.group(1)), float(value)))
        elif kind == "sum":
            sums[key] = float(value)
    out: dict[str, Any] = {}
    for (name, labels), buckets in sorted(hist.items()):
        buckets.sort()
        n = buckets[-1][1] if buckets else 0
        if not n:
            continue
        short = name.removeprefix("urbanpulse_").removesuffix("_seconds") + (f"{{{labels}}}" if labels else "")
        p50, p99 = _quantile(buckets, 0.5), _quantile(buckets, 0.99)
        out[short] = {"n": int(n), "p50_ms": round(1000 * p50, 1) if p50 is not None else None,
                      "p99_ms": round(1000 * p99, 1) if p99 is not None else None,
                      "mean_ms": round(1000 * sums.get((name, labels), 0.0) / n, 2)}
    return out


def stored_p99_by_slice(pub: list[tuple[float, int]], stored: list[tuple[float, int]],
                        slice_s: float = 5.0) -> list[float | None]:
    """publish -> stored p99 (ms) of the readings published in each ``slice_s`` of the run,
    count-matched as ``ib.latency_from``: shows whether a run's tail is its first seconds
    (a start-up or cold-server transient) or spread over the run."""
    import numpy as np

    pt = np.array([p[0] for p in pub])
    pc = np.array([p[1] for p in pub])
    st = np.array([s[0] for s in stored])
    sc = np.array([s[1] for s in stored])
    k_max = int(min(pc[-1], sc[-1])) if len(pc) and len(sc) else 0
    if k_max <= 0:
        return []
    k = np.arange(1, k_max + 1)
    t_pub = pt[np.searchsorted(pc, k, "left")]
    lat = st[np.searchsorted(sc, k, "left")] - t_pub
    which = ((t_pub - pt[0]) // slice_s).astype(int)
    out: list[float | None] = []
    for i in range(int(which.max()) + 1):
        sel = lat[which == i]
        out.append(round(float(np.percentile(sel, 99)) * 1000, 1) if len(sel) else None)
    return out


def latency_phase(ctx: ib.Ctx) -> dict[str, Any]:
    from services import create_topic

    import pg_state

    a = ctx.args
    reset_all(ctx.dsn)
    wal_pool = None
    if a.latency_wal != "found":
        t0 = time.time()
        wal_pool = pg_state.warm_wal(ctx.dsn) if a.latency_wal == "warm" else pg_state.cool_wal(ctx.dsn)
        ib.log(f"WAL pool made {a.latency_wal}: segments {wal_pool['segments_before']} -> "
               f"{wal_pool['segments_after']} ({time.time() - t0:.1f} s)")
    topic = f"bench.alerts.{uuid.uuid4().hex[:6]}"
    create_topic(ctx.tansu.bootstrap, topic, partitions=4)
    cfg = analytics_config(ctx.dsn, {"bootstrap_servers": ctx.tansu.bootstrap, "topics": [topic],
                                     "group_id": f"bench-{topic}", "auto_offset_reset": "earliest"}, True)
    cfg["validation"] = {"max_age_s": None}
    ph = ib.Phase(ctx, cfg, "kafka", 0.02).start()  # the stored counter polled at 50 Hz: 20 ms resolution
    ctx.wait_kafka_assigned(ph)
    sse = SseClient(ph.svc.url, ph.svc.auth("viewer"))
    sse.start()
    sse.connected.wait(10)
    if sse.status != 200:
        raise RuntimeError(f"GET /alerts/stream answered {sse.status}: the alert latency cannot be measured")
    time.sleep(1.0)
    ib.log(f"alert latency: {a.latency_series} series at {a.latency_rate:,} readings/s for {a.latency_seconds} s, "
           f"spikes every 0.5 s after {a.latency_warmup} s")
    out = ctx.workdir / f"latency-{uuid.uuid4().hex[:6]}.json"
    spec = {"kind": "alert_latency", "bootstrap": ctx.tansu.bootstrap, "topic": topic, "series": a.latency_series,
            "rate": a.latency_rate, "seconds": a.latency_seconds, "warmup_s": a.latency_warmup, "out": str(out),
            "linger_ms": a.latency_linger_ms}
    import resource

    import psutil

    service = psutil.Process(ph.svc.proc.pid)
    me = psutil.Process()
    pg0 = pg_state.snapshot(ctx.dsn)  # the server's WAL segments, checkpoints, the machine's CPU
    svc0, me0 = sum(service.cpu_times()[:2]), sum(me.cpu_times()[:2])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = _cpu_by_process_group(ctx)
    broker_pid = ctx.tansu.proc.pid if ctx.tansu is not None else None
    faults0 = {"service": pg_state.minor_faults(service.pid), "broker": pg_state.minor_faults(broker_pid)}
    t_produce = time.time()
    subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    produce_s = time.time() - t_produce
    # minor page faults while the producer ran: fresh pages each process took (`lat18`, `lat19`)
    faults = {k: (None if v is None or (now := pg_state.minor_faults(pid)) is None else now - v)
              for (k, v), pid in zip(faults0.items(), (service.pid, broker_pid))}
    faults["producer"] = after.ru_minflt - before.ru_minflt
    svc_cpu_producing = sum(service.cpu_times()[:2]) - svc0
    cpu_end = pg_state.proc_stat()
    svc_cores = (sum(service.cpu_times()[:2]) - svc0) / produce_s
    me_cores = (sum(me.cpu_times()[:2]) - me0) / produce_s
    # the broker and PostgreSQL share the cores too: their shares while the producer ran, in cores
    others = {k: round((v - cpu0.get(k, 0.0)) / produce_s, 2) for k, v in _cpu_by_process_group(ctx).items()}
    # the producer shares the 2 cores with the service, PostgreSQL and the broker: its share, in cores
    producer_cores = ((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)) / (time.time() - t_produce)
    load = os.getloadavg()[0]
    pub = json.loads(out.read_text())
    deadline = time.time() + 30
    while time.time() < deadline and not all(s in sse.first_seen for s in pub["spikes"]):
        time.sleep(0.2)
    ph.wait_stored(pub["sent"], timeout=120)
    pg = pg_state.difference(pg0, {**pg_state.snapshot(ctx.dsn), "cpu": cpu_end})
    if "machine_busy_cores" in pg:  # cores used by none of the benchmark's processes: someone else's
        ours = sum(others.values()) + producer_cores + svc_cores + me_cores
        pg["other_cores"] = round(max(0.0, pg["machine_busy_cores"] - ours), 2)
    stored = ib.latency_from([tuple(x) for x in pub["timeline"]], list(ph.poller.samples))
    sse.stop_event.set()
    committed = _event_times(ctx.dsn)
    try:
        sources = latency_sources(ph.svc.url)
    except Exception as exc:  # noqa: BLE001 - an older service without the histograms
        sources = {"error": str(exc)}
    stop = ph.stop()
    to_db = sorted((committed[s] - t) * 1000 for s, t in pub["spikes"].items() if s in committed)
    lat = sorted((sse.first_seen[s] - t) * 1000 for s, t in pub["spikes"].items() if s in sse.first_seen)
    missing = [s for s in pub["spikes"] if s not in sse.first_seen]

    def pct(q: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else None

    res = {"spikes": len(pub["spikes"]), "alerts_seen": len(lat), "missing": missing, "p50_ms": pct(0.50),
           "p95_ms": pct(0.95), "p99_ms": pct(0.99), "max_ms": round(lat[-1], 1) if lat else None,
           "to_commit_p50_ms": round(to_db[len(to_db) // 2], 1) if to_db else None,
           "to_commit_p99_ms": round(to_db[min(len(to_db) - 1, int(0.99 * len(to_db)))], 1) if to_db else None,
           "per_spike_ms": [round((sse.first_seen[s] - t) * 1000) for s, t in sorted(pub["spikes"].items(),
                            key=lambda kv: kv[1]) if s in sse.first_seen],
           "stored_latency": {k: stored.get(k) for k in ("p50_ms", "p99_ms")},
           "stored_p99_ms_by_5s": stored_p99_by_slice([tuple(x) for x in pub["timeline"]], list(ph.poller.samples)),
           "service_stages": sources, "producer_cores": round(producer_cores, 2),
           "minor_faults_while_producing": faults, "service_cpu_s_while_producing": round(svc_cpu_producing, 2), "linger_ms": a.latency_linger_ms,
           "cores_while_producing": others, "produce_to_acked": pub.get("produce_to_acked"),
           "producer_queue_full": pub.get("producer_queue_full"),
           "service_cpu_s": stop.get("service_cpu_s"), "loadavg_1m_end_of_produce": round(load, 1),
           "sse_events": sse.events, "background_alert_events": sse.background, "readings_sent": pub["sent"], "peak_rss_mb": stop["peak_rss_mb"],
           "db": _db_counts(ctx.dsn), "postgres_state": pg, "wal_pool": {"made": a.latency_wal, **(wal_pool or {})}}
    ib.log(f"alert latency: p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms over {len(lat)} spikes "
           f"({len(missing)} without an SSE event)")
    ib.log(f"server state: WAL segments {pg['wal_segments_before']} -> {pg['wal_segments_after']}, "
           f"{pg['wal_segments_created']} created during the run; {pg['wal_mb']} MB of WAL; "
           f"other processes {pg.get('other_cores')} cores")
    ib.log(f"while producing: minor page faults {faults}; service CPU {svc_cpu_producing:.2f} s, "
           f"producer {producer_cores:.2f} cores")
    return res


# ----------------------------------------------------------------------------------------------
# memory per series


def memory_per_series(n_series: int, per_series: int = 30) -> dict[str, Any]:
    """Analytics state for ``n_series`` series, measured in-process (arrays and RSS growth)."""
    import gc

    import numpy as np
    import psutil

    from urbanpulse.analytics import SlotMap
    from urbanpulse.config import load_settings
    from urbanpulse.detect.bank import DetectorBank
    from urbanpulse.windows.state import WindowState

    settings = load_settings(None)
    proc = psutil.Process()
    gc.collect()
    rss0 = proc.memory_info().rss
    slots, windows, bank = SlotMap(), WindowState(settings.windows), DetectorBank(settings.detection)
    ids = np.arange(1, n_series + 1, dtype=np.int32)
    sensors = [f"s{i}" for i in range(n_series)]
    metrics = [BENCH_METRIC] * n_series
    slots.lookup(ids)
    s = slots.allocate(ids, sensors, metrics)
    for part in (bank, windows):
        part.ensure_capacity(slots.capacity)
    bank.assign(s, sensors, metrics)
    windows.assign(s, metrics)
    base_us = 1_700_000_000_000_000
    rng = np.random.default_rng(1)
    t_start = time.perf_counter()
    fed = 0
    for k in range(per_series):
        for lo in range(0, n_series, 5000):
            sl = s[lo:lo + 5000]
            ts = np.full(len(sl), base_us + k * 1_000_000, np.int64)
            val = 20 + rng.normal(0, 1, len(sl))
            flags = np.zeros(len(sl), np.int16)
            windows.observe("bench", sl, ts, val, flags, base_us + k * 1_000_000)
            bank.score(sl, ts, val)
            fed += len(sl)
    seconds = time.perf_counter() - t_start
    gc.collect()
    rss1 = proc.memory_info().rss
    per = windows.nbytes_per_slot() + bank.nbytes_per_slot() + 8
    return {"series": n_series, "readings_fed": fed, "array_bytes_per_series": int(per),
            "rss_growth_bytes_per_series": round((rss1 - rss0) / n_series),
            "rss_mb": round(rss1 / 2**20, 1), "in_process_readings_per_s": round(fed / seconds)}


# ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--readings", type=int, default=1_000_000, help="readings per throughput phase (default 1000000)")
    p.add_argument("--series", type=int, default=100_000, help="series for the memory figure (default 100000)")
    p.add_argument("--latency-series", type=int, default=2000, help="series in the latency phase (default 2000)")
    p.add_argument("--latency-rate", type=int, default=20_000, help="readings/s in the latency phase (default 20000)")
    p.add_argument("--latency-seconds", type=float, default=40.0, help="length of the latency phase (default 40)")
    p.add_argument("--latency-linger-ms", type=int, default=1,
                   help="the latency producer's linger.ms (default 1: a produce request per ms and partition, "
                        "which costs the broker on the same 2 cores most of a core at 20k/s; see benchmarks/README.md)")
    p.add_argument("--latency-warmup", type=float, default=15.0, help="seconds before the first spike (default 15)")
    p.add_argument("--latency-wal", choices=("found", "warm", "cold"), default="found",
                   help="the server's pool of ready WAL segments before the latency phase: as found (default), "
                        "warm (as a server under this load has it: pg_state.warm_wal) or cold (as after a boot or "
                        "a quiet period: pg_state.cool_wal); the segments created during the run are reported")
    p.add_argument("--rounds", type=int, default=1,
                   help="ABBA rounds (off, on, on, off) of the throughput phases; the ratio uses all (default 1)")
    p.add_argument("--phases", default="off,on,on,off",
                   help="the throughput phases of one round, comma-separated off/on (default off,on,on,off: ABBA); "
                        "e.g. 'on' for the sustained rate with everything on alone")
    p.add_argument("--data-series", type=int, default=1000,
                   help="distinct series in the throughput data (default 1000; the issue's job has 2000)")
    p.add_argument("--invalid-every", type=int, default=0,
                   help="every k-th reading out of range, quarantined (default 0: none; 100 = the issue's 1 %%)")
    p.add_argument("--breakdown", action="store_true",
                   help="also run detectors-only and rollups-only phases, to see where the cost is")
    p.add_argument("--fixed-poll", action="store_true",
                   help="throughput phases: poll /metrics at 20 Hz throughout (before 2026-12-01), not thinned")
    p.add_argument("--full-metrics-poll", action="store_true",
                   help="the stored-counter poller asks for every metric (before 2026-12-01), not only the counter")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--pg-dsn", default=None, help="server for the throw-away database")
    p.add_argument("--json", metavar="OUT", type=Path, default=None, help="also write the results here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        Path(spec["out"]).write_text(json.dumps(latency_worker(spec)))
        return 0
    from services import PG_DSN, create_database, drop_database, start_tansu

    base_dsn = args.pg_dsn or PG_DSN
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = Path(tempfile.mkdtemp(prefix=f"analytics-{stamp}-", dir=RESULTS))
    started = time.time()
    r: dict[str, Any] = {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                         "readings": args.readings, "command": " ".join([Path(sys.executable).name, *sys.argv])}
    with contextlib.ExitStack() as cleanup:
        # the ingest benchmark's context, with its knobs for the shared phases
        ns = args  # the ingest benchmark's phases read the same knobs (readings, kafka_readings_per_message)
        ns.kafka_readings_per_message = 1
        ib.configure_data(args.data_series, args.invalid_every)
        ib.StoredPoller.THIN = not args.full_metrics_poll
        ctx = ib.Ctx(ns, workdir, cleanup)
        ctx.base_ms = ib.default_base_ms(args.readings)
        db_name, ctx.dsn = create_database(base_dsn, prefix="up_bench")
        cleanup.callback(lambda: drop_database(db_name, base_dsn))
        r["machine"] = ib.machine_info(ctx.dsn)
        if not (args.skip_throughput and args.skip_latency):
            ctx.tansu = start_tansu(workdir / "tansu")
            cleanup.callback(ctx.tansu.stop)
            ib.prepare_schema(ctx.dsn, args.readings, ctx.base_ms)
        if not args.skip_throughput:
            _compile_kernels()
            topic = f"bench.readings.{uuid.uuid4().hex[:6]}"
            # the ingest benchmark's producer writes BENCH metric readings; see ib.reading_json
            r["produce"] = ib.produce_kafka_backlog(ctx, topic)
            runs = []
            phases = [p.strip() for p in args.phases.split(",") if p.strip()]
            if not phases or set(phases) - {"on", "off"}:
                raise SystemExit("--phases: a comma-separated list of on/off")
            seen: dict[str, int] = {}
            for _ in range(args.rounds):  # ABBA per round by default
                for mode in phases:
                    seen[mode] = seen.get(mode, 0) + 1
                    label = f"{mode}-{seen[mode]}"
                    runs.append({"label": label, **kafka_phase(ctx, topic, mode == "on", label)})
            if args.breakdown:
                for label, part in (("detectors-only", "detectors"), ("rollups-only", "rollups")):
                    r.setdefault("breakdown", {})[label] = kafka_phase(ctx, topic, True, label, part)
            off = [x["rate"] for x in runs if not x["analytics"]]
            on_ = [x["rate"] for x in runs if x["analytics"]]
            r["throughput"] = {"runs": runs, "data_series": args.data_series, "invalid_every": args.invalid_every,
                               "ingest_only_rate": sum(off) / len(off) if off else None,
                               "analytics_rate": sum(on_) / len(on_) if on_ else None}
            t = r["throughput"]
            per = len(phases)
            if off and on_:
                t["ratio"] = t["analytics_rate"] / t["ingest_only_rate"]
                t["round_ratios"] = [
                    round(sum(x["rate"] for x in runs[per * k:per * k + per] if x["analytics"])
                          / sum(x["rate"] for x in runs[per * k:per * k + per] if not x["analytics"]), 3)
                    for k in range(args.rounds)]
            # CPU of service + PostgreSQL + broker per reading: less sensitive than rates to the VM's noise
            for mode, flag in (("off", False), ("on", True)):
                sel = [x for x in runs if x["analytics"] is flag]
                if sel:
                    cpu = sum(x["service_cpu_s"] + sum(x["cpu_s"].values()) for x in sel)
                    t[f"cpu_us_per_reading_{mode}"] = round(1e6 * cpu / (len(sel) * args.readings), 2)
            for x in runs:
                ib.log(f"{x['label']}: {x['rate']:,.0f} readings/s sustained, {x['from_spawn_rate']:,} from spawn")
            if "ratio" in t:
                ib.log(f"throughput: analytics {t['analytics_rate']:,.0f}/s vs ingest-only "
                       f"{t['ingest_only_rate']:,.0f}/s = {t['ratio']:.1%} (rounds {t['round_ratios']}); CPU per "
                       f"reading (service + PostgreSQL + broker) {t['cpu_us_per_reading_on']} us on vs "
                       f"{t['cpu_us_per_reading_off']} us off")
        if not args.skip_latency:
            if args.skip_throughput:
                _compile_kernels()  # else the service compiles them within its start-up timeout
            r["alert_latency"] = latency_phase(ctx)
        if not args.skip_memory:
            ib.log(f"memory: analytics state for {args.series:,} series")
            r["memory"] = memory_per_series(args.series)
            ib.log(f"memory: {r['memory']}")
    r["wall_s"] = round(time.time() - started, 1)
    text = json.dumps(r, indent=2, default=str)
    out = RESULTS / f"analytics-{stamp}.json"
    out.write_text(text)
    if args.json:
        args.json.write_text(text)
    print(text)
    ib.log(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
