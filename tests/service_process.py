"""Runs `urbanpulse run` as a real subprocess, so tests can SIGKILL and SIGTERM it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import yaml

from services import free_port, produce_kafka, publish_mqtt


class ServiceProcess:
    """One `urbanpulse run --config FILE` process with its log captured to a file."""

    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        self.port = free_port()
        config = dict(config)
        config.setdefault("api", {}).update({"enabled": True, "host": "127.0.0.1", "port": self.port})
        self.workdir = workdir
        self.config_path = workdir / f"urbanpulse-{self.port}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / f"urbanpulse-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        #: called with the process id right after the spawn (a profiler that must see the start)
        self.on_spawn: Callable[[int], None] | None = None
        self._keys: dict[str, str] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0, require_healthy: bool = True, full_api: bool = True) -> ServiceProcess:
        """Start and wait until /health answers (and says ok, unless ``require_healthy`` is False).
        ``full_api``: an answer of the interim app (503 ``starting``, while the full API is still
        being built: api/interim.py) does not count.

        The bound is generous: on a loaded 2-core machine a start (imports, kernel load,
        migrations, a Kafka group join) has been seen to take 20-30 s. A start that does not
        become healthy is killed, so a failed test leaves no service behind."""
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "urbanpulse.cli", "run", "--config", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.workdir,
            env=dict(os.environ, PYTHONUNBUFFERED="1"))
        log.close()
        if self.on_spawn is not None:
            self.on_spawn(self.proc.pid)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"urbanpulse exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                r = httpx.get(self.url + "/health", timeout=2)
                last = r.text
                starting = r.status_code == 503 and r.headers.get("retry-after") is not None and \
                    r.json().get("status") == "starting"
                if (r.status_code == 200 or not require_healthy) and not (full_api and starting):
                    return self
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.1)
        self.proc.kill()
        self.proc.wait(10)
        raise RuntimeError(f"urbanpulse not healthy after {timeout}s (last: {last}):\n{self.log_tail()}")

    def key(self, role: str = "operator") -> str:
        """An API key with ``role`` for this service's database (made once, after start-up has
        migrated the schema), as `urbanpulse keys create` makes it."""
        if role not in self._keys:
            from urbanpulse.auth.keys import KeyStore

            async def make() -> str:
                conn = await asyncpg.connect(self.dsn)
                try:
                    return (await KeyStore(conn).create(f"test {role}", role)).secret
                finally:
                    await conn.close()
            self._keys[role] = asyncio.run(make())
        return self._keys[role]

    def auth(self, role: str = "operator") -> dict[str, str]:
        """Headers that authenticate as a key with ``role``."""
        return {"Authorization": f"Bearer {self.key(role)}"}

    @property
    def dsn(self) -> str:
        return yaml.safe_load(self.config_path.read_text())["database"]["dsn"]

    def health(self) -> httpx.Response:
        return httpx.get(self.url + "/health", timeout=5)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a Prometheus sample (``name``) over series matching ``labels``."""
        return metric_sum(httpx.get(self.url + "/metrics", timeout=5).text, name, **labels)

    def analytics_failed_batches(self) -> float:
        """``urbanpulse_analytics_failed_batches`` from /metrics; AssertionError if it is not
        exposed (stream analytics off), so "== 0" can never pass by the metric being absent."""
        text = httpx.get(self.url + "/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith("urbanpulse_analytics_failed_batches_total "):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError("urbanpulse_analytics_failed_batches is not on /metrics (detection disabled?)")

    def kill(self) -> None:
        """SIGKILL: no flush, no ack, no goodbye."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for a graceful exit; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def terminate_cleanly(self, source: str) -> None:
        """SIGTERM; assert a graceful exit (code 0) and a log with no traceback and no "source <source> failed":
        the end of every "hostile input never stops a source" test."""
        assert self.terminate() == 0
        log = self.log_tail(500_000)
        assert "Traceback" not in log and f"source {source} failed" not in log, log[-3000:]

    def stop_quietly(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, n: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` in a Prometheus text exposition (``/metrics``) over the
    series whose labels include ``labels``; 0.0 when there is none."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head != name and not head.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


async def fetchval(dsn: str, sql: str, *args: Any) -> Any:
    """One value from the database, on a connection of its own."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Rows from the database, on a connection of its own."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def db_value(dsn: str, sql: str, *args: Any) -> Any:
    """One value from the database (sync, for subprocess-driven tests)."""
    return asyncio.run(fetchval(dsn, sql, *args))


def db_rows(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    return asyncio.run(fetch(dsn, sql, *args))


def readings_count(dsn: str) -> int:
    exists = db_value(dsn, "SELECT to_regclass('readings') IS NOT NULL")
    return int(db_value(dsn, "SELECT count(*) FROM readings")) if exists else 0


def wait_until(predicate, timeout: float, interval: float = 0.25, what: str = "condition") -> None:  # noqa: ANN001
    """Poll ``predicate`` until true; AssertionError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


MARKER_SENSOR = "flush-marker"


def flush_with_markers(dsn: str, ts_ms: int, mqtt: tuple[str, int, str] | None = None,
                       kafka: tuple[str, str, int] | None = None, timeout: float = 60.0) -> int:
    """Send one marker reading behind everything already sent on each stream -- the MQTT topic
    ``mqtt = (host, port, topic)`` and every partition of ``kafka = (bootstrap, topic, partitions)``
    -- and wait until all markers are stored. Then nothing sent before them is still on its way
    (MQTT delivers a session's messages in order, Kafka a partition's, and batches commit in the
    order they were formed): the condition to use instead of sleeping before "nothing more
    arrived". Markers are sensor ``flush-marker``, metric temperature, at ``ts_ms``, ``ts_ms`` + 1,
    ... (pick a time that moves no watermark). Returns the number of markers stored."""
    def marker(k: int) -> bytes:
        return b'{"sensor_id": "%s", "metric": "temperature", "ts": %d, "value": 1.0}' % (
            MARKER_SENSOR.encode(), ts_ms + k)

    sent = 0
    if mqtt is not None:
        host, port, topic = mqtt
        publish_mqtt(host, port, topic, [marker(sent)])
        sent += 1
    if kafka is not None:
        bootstrap, topic, partitions = kafka
        for partition in range(partitions):
            produce_kafka(bootstrap, topic, [marker(sent)], partition=partition)
            sent += 1
    stamps = list(range(ts_ms, ts_ms + sent))

    def stored() -> int:
        return int(db_value(dsn, "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id "
                                 "WHERE s.sensor_id = $1 AND (extract(epoch FROM r.ts) * 1000)::int8 = ANY($2)",
                            MARKER_SENSOR, stamps))

    wait_until(lambda: stored() == sent, timeout, what=f"{sent} marker(s) behind what was sent")
    return sent


def wait_settled(svc: ServiceProcess, messages: int, timeout: float = 120.0) -> None:
    """Wait until ``svc`` has received ``messages`` broker messages in all and every reading it
    received is accounted for on /metrics (stored, already stored, or quarantined): nothing it
    got is still on its way. For tests whose streams a marker cannot close (many topics, other
    formats); :func:`flush_with_markers` where it can."""
    def settled() -> bool:
        m = svc.metric
        return m("urbanpulse_messages_received_total") >= messages and \
            m("urbanpulse_readings_received_total") == m("urbanpulse_readings_stored_total") + \
            m("urbanpulse_readings_duplicate_total") + m("urbanpulse_readings_quarantined_total")

    wait_until(settled, timeout, what=f"{messages} messages received and every reading in them accounted for")
