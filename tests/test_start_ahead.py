"""The start overlapped (issue 14 item 4): sources connect before the pipeline exists, and take
and acknowledge nothing until it does.

`urbanpulse run` lets its sources connect first thing (the Kafka group join is mostly a wait for
the broker) while the service imports its modules and migrates (src/urbanpulse/start_ahead.py).
Shown here on a private Tansu and mosquitto and real PostgreSQL, no timing:

* a Kafka source that joined (or took its partitions) ahead of the pipeline, even with records
  prefetched by its client, hands the pipeline every record once, from the first, and commits
  nothing before the pipeline has acknowledged;
* abandoned after a head start (the service's start failed), it leaves without a commit: the
  next consumer of the group reads everything from the beginning;
* `urbanpulse run` whose database is down, or whose migrations fail, exits with the error after
  its consumer joined, and the group's offsets are untouched; an MQTT source connected ahead and
  abandoned sends no PUBACK, so the broker redelivers.
"""

from __future__ import annotations

import ast
import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from aiokafka import TopicPartition
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

import services
from urbanpulse.config import KafkaSettings, MqttSettings
from urbanpulse.connectors.kafka import KafkaSource
from urbanpulse.connectors.mqtt import MqttSource
from urbanpulse.metrics import IngestMetrics
from urbanpulse.testing import RecordingSink

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration


def _source(bootstrap: str, topic: str, group: str, assignment: str) -> KafkaSource:
    cfg = KafkaSettings(enabled=True, bootstrap_servers=bootstrap, topics=[topic], group_id=group,
                        assignment=assignment, session_timeout_ms=2000)
    return KafkaSource(cfg, IngestMetrics())


async def _until(cond, timeout: float = 60, what: str = "") -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        await asyncio.sleep(0.05)


async def _run(source: KafkaSource, sink: RecordingSink, want: int, settle_s: float = 0.0) -> None:
    """Run ``source`` into ``sink`` until ``want`` messages arrived (and ``settle_s`` more), then stop."""
    stopping = asyncio.Event()
    task = asyncio.create_task(source.run(sink, stopping))
    try:
        await _until(lambda: sink.messages >= want or task.done(), what=f"{want} messages (got {sink.messages})")
        await asyncio.sleep(settle_s)  # room for a wrong implementation to deliver more
    finally:
        stopping.set()
        await asyncio.wait_for(task, 60)


def _assignment_of(source: KafkaSource) -> set[TopicPartition]:
    early = source._early  # noqa: SLF001 - the consumer opened ahead, to see that it holds partitions
    if early is None or not early.done() or early.result() is None:
        return set()
    return early.result().assignment()


@given(assignment=st.sampled_from(["group", "manual"]), partitions=st.integers(1, 3), n=st.integers(1, 40),
       ahead_s=st.sampled_from([0.0, 0.3, 1.0]))
@hsettings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_consumer_opened_ahead_hands_over_every_record_once_and_commits_only_after_the_ack(
        kafka_bootstrap: str, assignment: str, partitions: int, n: int, ahead_s: float) -> None:
    topic, group = f"ahead-{uuid.uuid4().hex[:8]}", f"ahead-{uuid.uuid4().hex[:8]}"
    services.create_topic(kafka_bootstrap, topic, partitions=partitions)
    sent = [b'{"n": %d}' % i for i in range(n)]
    services.produce_kafka(kafka_bootstrap, topic, sent)

    async def scenario() -> None:
        src = _source(kafka_bootstrap, topic, group, assignment)
        src.start_early()
        await _until(lambda: len(_assignment_of(src)) == partitions, what="the partitions, joined ahead")
        await asyncio.sleep(ahead_s)  # the client prefetches meanwhile; nobody takes anything
        assert await services.committed_offsets(kafka_bootstrap, topic, group, partitions) == dict.fromkeys(range(partitions))

        held = RecordingSink(confirm=False)  # the pipeline exists now, but stores nothing yet
        stopping = asyncio.Event()
        task = asyncio.create_task(src.run(held, stopping))
        try:
            await _until(lambda: held.messages >= n, what=f"{n} messages after the head start")
            await asyncio.sleep(0.5)
            assert sorted(held.payloads()) == sorted(sent)  # each once, none skipped by the prefetch
            for b in held.batches:  # and from each partition's start, in order
                by_partition: dict[int, list[int]] = {}
                for p, o in zip(b.partitions, b.offsets):
                    by_partition.setdefault(p, []).append(o)
                assert all(offs == sorted(offs) for offs in by_partition.values())
            firsts = {p: min(o for b in held.batches for q, o in zip(b.partitions, b.offsets) if q == p)
                      for b in held.batches for p in b.partitions}
            assert set(firsts.values()) == {0}
            assert await services.committed_offsets(kafka_bootstrap, topic, group, partitions) == dict.fromkeys(range(partitions))
            for ack in held.pending:  # stored: now the commits may go out
                await ack()
            ends = {p: max(o for b in held.batches for q, o in zip(b.partitions, b.offsets) if q == p) + 1
                    for p in firsts}
            got = await services.committed_offsets(kafka_bootstrap, topic, group, partitions)
            assert {p: got[p] for p in ends} == ends
        finally:
            stopping.set()
            await asyncio.wait_for(task, 60)

    asyncio.run(scenario())


@pytest.mark.parametrize("assignment", ["group", "manual"])
async def test_a_consumer_abandoned_after_its_head_start_commits_nothing(kafka_bootstrap: str,
                                                                         assignment: str) -> None:
    topic, group = f"abandon-{uuid.uuid4().hex[:8]}", f"abandon-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(services.create_topic, kafka_bootstrap, topic, 2)
    sent = [b'{"n": %d}' % i for i in range(25)]
    await asyncio.to_thread(services.produce_kafka, kafka_bootstrap, topic, sent)
    src = _source(kafka_bootstrap, topic, group, assignment)
    src.start_early()
    await _until(lambda: len(_assignment_of(src)) == 2, what="the partitions, joined ahead")
    await asyncio.sleep(0.5)  # prefetched
    await src.abandon_early()
    await src.abandon_early()  # idempotent
    assert await services.committed_offsets(kafka_bootstrap, topic, group, 2) == {0: None, 1: None}
    again = RecordingSink(confirm=True)
    await _run(_source(kafka_bootstrap, topic, group, assignment), again, 25, settle_s=0.5)
    assert sorted(again.payloads()) == sorted(sent)  # everything, from the beginning


async def _timescaledb_available(dsn: str) -> bool:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"))
    finally:
        await conn.close()


MEMBER = r'''
import asyncio, os
from aiokafka import AIOKafkaConsumer
async def main():
    c = AIOKafkaConsumer(os.environ["TOPIC"], bootstrap_servers=os.environ["BOOTSTRAP"], group_id=os.environ["GROUP"],
                         enable_auto_commit=False, session_timeout_ms=2000, heartbeat_interval_ms=600)
    await c.start()
    while not c.assignment():
        await asyncio.sleep(0.05)
    print("joined", flush=True)
    await asyncio.sleep(3600)  # killed by the test without leaving the group
asyncio.run(main())
'''


async def test_a_group_that_has_members_is_joined_when_the_pipeline_runs_not_ahead(kafka_bootstrap: str) -> None:
    """A member that was killed without leaving (a restart after SIGKILL) is still listed by
    Tansu; joining ahead then only waits longer. The source leaves the join to ``run``, which
    still gets every partition once the dead member's session is over, and reads everything."""
    topic, group = f"members-{uuid.uuid4().hex[:8]}", f"members-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(services.create_topic, kafka_bootstrap, topic, 2)
    sent = [b'{"n": %d}' % i for i in range(12)]
    await asyncio.to_thread(services.produce_kafka, kafka_bootstrap, topic, sent)
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), BOOTSTRAP=kafka_bootstrap, TOPIC=topic, GROUP=group)
    member = subprocess.Popen([sys.executable, "-c", MEMBER], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert (await asyncio.to_thread(member.stdout.readline)).strip() == "joined"
    finally:
        member.kill()
        member.wait(30)
    src = _source(kafka_bootstrap, topic, group, "group")
    src.start_early()
    early = src._early  # noqa: SLF001
    assert early is not None
    assert await asyncio.wait_for(early, 30) is None  # left to run(): no consumer opened ahead
    sink = RecordingSink(confirm=True)
    await _run(src, sink, 12, settle_s=0.5)
    assert sorted(sink.payloads()) == sorted(sent)


def _failed_start(config: dict, workdir: Path, timeout: float = 120) -> tuple[int, str]:
    path = workdir / f"cfg-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(config))
    out = subprocess.run([sys.executable, "-m", "urbanpulse.cli", "run", "--config", str(path)], cwd=workdir,
                         capture_output=True, text=True, timeout=timeout,
                         env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
    return out.returncode, out.stdout + out.stderr


@pytest.mark.slow
@pytest.mark.parametrize("failure", ["database down", "migrations fail"])
def test_a_start_that_fails_after_the_consumer_joined_commits_nothing(kafka_bootstrap: str, fresh_db: str,
                                                                      tmp_path: Path, failure: str) -> None:
    """The consumer joins ahead; then the database cannot be reached (retried for about half a
    minute, long after the join) or the migrations fail (TimescaleDB required where it is not
    installed): the process exits 2 with the reason, and the group's offsets are untouched."""
    topic, group = f"failstart-{uuid.uuid4().hex[:8]}", f"failstart-{uuid.uuid4().hex[:8]}"
    services.create_topic(kafka_bootstrap, topic, partitions=2)
    sent = [b'{"sensor_id": "f-%d", "metric": "temperature", "ts": 1700000000000, "value": 1}' % i
            for i in range(20)]
    services.produce_kafka(kafka_bootstrap, topic, sent)
    if failure == "database down":
        database = {"dsn": f"postgresql://postgres@127.0.0.1:{services.free_port()}/nowhere", "connect_timeout_s": 1}
    else:
        if services.run_sync(_timescaledb_available(fresh_db)):
            # the case needs a PostgreSQL without the extension (CI's has none): under CI=true that is a failure
            services.unavailable("this server has TimescaleDB: requiring it does not fail; run this case against a "
                                 "PostgreSQL without the timescaledb extension")
        database = {"dsn": fresh_db, "storage_mode": "timescaledb"}  # not installed here: MigrationError
    config = {"database": database, "log_level": "INFO", "api": {"enabled": False},
              "kafka": {"enabled": True, "bootstrap_servers": kafka_bootstrap, "topics": [topic],
                        "group_id": group, "session_timeout_ms": 2000}}
    code, log = _failed_start(config, tmp_path)
    assert code == 2, log
    assert "urbanpulse: error:" in log
    if failure == "database down":
        assert "Joined group" in log, log  # it had joined (and could prefetch) before the start failed
    assert services.run_sync(services.committed_offsets(kafka_bootstrap, topic, group, 2)) == {0: None, 1: None}

    async def reread() -> list[bytes]:
        again = RecordingSink(confirm=True)
        await _run(_source(kafka_bootstrap, topic, group, "group"), again, 20, settle_s=0.5)
        return again.payloads()

    assert sorted(services.run_sync(reread())) == sorted(sent)


async def test_an_mqtt_source_connected_ahead_and_abandoned_acknowledges_nothing(fresh_mosquitto) -> None:  # noqa: ANN001
    """QoS 1 messages delivered to a source connected ahead of a start that then failed are not
    PUBACKed: the broker redelivers them to the next session of the same client id."""
    host, port = fresh_mosquitto.host, fresh_mosquitto.port
    topic = f"ahead/{uuid.uuid4().hex[:6]}"
    cfg = MqttSettings(enabled=True, host=host, port=port, topics=[f"{topic}/#"],
                       client_id=f"ahead-{uuid.uuid4().hex[:6]}", qos=1)
    first = MqttSource(cfg, IngestMetrics())
    first.start_early()  # subscribes: the persistent session now exists
    await _until(lambda: first.health()["connected"], what="the MQTT connection made ahead")
    sent = [b'{"n": %d}' % i for i in range(10)]
    await asyncio.to_thread(services.publish_mqtt, host, port, f"{topic}/x", sent, 1)
    await _until(lambda: len(first._buffer) == 10, what="10 messages buffered")  # noqa: SLF001
    await first.abandon_early()
    await first.abandon_early()  # idempotent

    again = RecordingSink(confirm=True)
    stopping = asyncio.Event()
    task = asyncio.create_task(MqttSource(cfg, IngestMetrics()).run(again, stopping))
    try:
        await _until(lambda: again.messages >= 10, what="the redelivery")
        assert sorted(again.payloads()) == sorted(sent)
    finally:
        stopping.set()
        await asyncio.wait_for(task, 60)


LAZY_PACKAGES = ["urbanpulse.alerts", "urbanpulse.detect", "urbanpulse.privacy", "urbanpulse.registry",
                 "urbanpulse.windows"]


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_name_a_lazy_package_exports_resolves_to_its_module(package: str) -> None:
    """The packages import their names on first use (PEP 562); each exported name still works."""
    import importlib

    mod = importlib.import_module(package)
    for name in mod.__all__:
        value = getattr(mod, name)
        assert getattr(importlib.import_module(mod._LAZY[name]), name) is value  # noqa: SLF001
    with pytest.raises(AttributeError):
        getattr(mod, "no_such_name")


def test_reading_the_configuration_imports_no_pipeline_analytics_or_storage_code() -> None:
    """What `urbanpulse run` imports before its sources connect stays small: the settings
    models, not the packages they live in (alerts, detectors, privacy, the registry)."""
    code = ("import sys, urbanpulse.config; print(sorted(m for m in sys.modules if m.startswith(("
            "'urbanpulse.alerts.', 'urbanpulse.detect.', 'urbanpulse.privacy.', 'urbanpulse.registry.', "
            "'urbanpulse.windows.', 'urbanpulse.pipeline', 'urbanpulse.analytics', 'urbanpulse.storage'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
    loaded = ast.literal_eval(out.stdout)
    assert all(m.endswith(".settings") or m in ("urbanpulse.privacy.grid",) for m in loaded), loaded
