"""Smoke tests for the service fixtures: each one proves a real broker/database does what the
sources and storage rely on (fresh databases, consumer-group commits that survive a restart,
QoS 1 persistent sessions with manual acks and redelivery)."""

from __future__ import annotations

import threading
import time
import uuid

import asyncpg
import paho.mqtt.client as mqtt
import pytest
from aiokafka import AIOKafkaConsumer

import services

pytestmark = pytest.mark.integration


# ----------------------------------------------------------------------------- PostgreSQL


async def test_pg_connects(pg_dsn):
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


async def test_fresh_db_is_empty_and_private(fresh_db, pg_dsn):
    name = fresh_db.rsplit("/", 1)[1]
    assert name.startswith("up_test_")
    conn = await asyncpg.connect(fresh_db)
    try:
        assert await conn.fetchval("SELECT current_database()") == name
        n = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert n == 0
        await conn.execute("CREATE TABLE t (x int PRIMARY KEY)")
        await conn.execute("INSERT INTO t VALUES (1)")
    finally:
        await conn.close()


def test_fresh_db_sync_use(fresh_db):
    # the fixture is usable from plain sync tests too
    assert services.run_sync(_count_tables(fresh_db)) == 0


async def _count_tables(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()


# ----------------------------------------------------------------------------- Tansu / Kafka


# Tansu: joining a group takes roughly session_timeout_ms / 3, and a member that rejoins after
# a restart sometimes waits for the previous member's session to expire. Short timeouts keep the
# tests fast (aiokafka defaults, 10 s, make each join take 3-18 s).
GROUP_OPTS = dict(session_timeout_ms=2000, heartbeat_interval_ms=500)


async def _consume(bootstrap, topic, group, want, commit_after=None, idle=1.5, timeout=30.0):
    """Join ``group``, consume until ``want`` records or ``idle`` seconds without records (counted
    from partition assignment); commit manually the offsets of the first ``commit_after`` records
    (all if None). Returns (values seen, {partition: position at the end})."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest", **GROUP_OPTS)
    await consumer.start()
    seen, next_offsets = [], {}
    try:
        deadline = time.monotonic() + timeout
        last = None
        while len(seen) < want and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200, max_records=want - len(seen))
            if consumer.assignment() and last is None:
                last = time.monotonic()
            for tp, records in batch.items():
                for r in records:
                    seen.append(r.value)
                    last = time.monotonic()
                    if commit_after is None or len(seen) <= commit_after:
                        next_offsets[tp] = r.offset + 1
            if last is not None and time.monotonic() - last > idle:
                break
        assert consumer.assignment(), "consumer never got a partition assignment"
        if next_offsets:
            await consumer.commit(next_offsets)
            for tp, off in next_offsets.items():
                assert await consumer.committed(tp) == off
        positions = {tp.partition: await consumer.position(tp) for tp in consumer.assignment()}
    finally:
        await consumer.stop()
    return seen, positions


async def test_kafka_group_commit_survives_restart(kafka_bootstrap):
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    services.create_topic(kafka_bootstrap, topic, partitions=3)
    payloads = [f"m{i}".encode() for i in range(60)]
    for p in range(3):  # spread explicitly over the three partitions
        services.produce_kafka(kafka_bootstrap, topic, payloads[p::3], partition=p)

    group = f"g-{uuid.uuid4().hex[:8]}"
    first, _ = await _consume(kafka_bootstrap, topic, group, want=60)
    assert sorted(first) == sorted(payloads)

    # a restarted member of the same group resumes from the committed offsets: nothing new
    again, positions = await _consume(kafka_bootstrap, topic, group, want=1, idle=1.0)
    assert again == []
    assert positions == {0: 20, 1: 20, 2: 20}

    services.produce_kafka(kafka_bootstrap, topic, [b"late-1", b"late-2"], key=b"k")
    after, _ = await _consume(kafka_bootstrap, topic, group, want=2)
    assert sorted(after) == [b"late-1", b"late-2"]


async def test_kafka_uncommitted_records_are_redelivered(kafka_bootstrap):
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    services.create_topic(kafka_bootstrap, topic, partitions=1)
    payloads = [f"r{i}".encode() for i in range(20)]
    services.produce_kafka(kafka_bootstrap, topic, payloads)
    group = f"g-{uuid.uuid4().hex[:8]}"
    first, _ = await _consume(kafka_bootstrap, topic, group, want=20, commit_after=8)
    assert first == payloads  # one partition: in order
    rest, positions = await _consume(kafka_bootstrap, topic, group, want=12)
    assert rest == payloads[8:]
    assert positions == {0: 20}


def test_create_topic_partitions(kafka_bootstrap):
    from confluent_kafka.admin import AdminClient

    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    services.create_topic(kafka_bootstrap, topic, partitions=5)
    md = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(topic=topic, timeout=5)
    assert len(md.topics[topic].partitions) == 5


# ----------------------------------------------------------------------------- Mosquitto


class ManualAckSubscriber:
    """Persistent-session QoS 1 subscriber that acks only when told to."""

    def __init__(self, host, port, client_id, topic, protocol=mqtt.MQTTv311):
        self.lock = threading.Lock()
        self.received: list[tuple[int, bytes, bool]] = []  # (mid, payload, dup)
        self.subscribed = threading.Event()
        self.session_present = None
        self.c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             clean_session=False, protocol=protocol, manual_ack=True)
        self.c.on_connect = lambda c, u, flags, rc, props: (
            setattr(self, "session_present", flags.session_present), c.subscribe(topic, qos=1))
        self.c.on_subscribe = lambda c, u, mid, rcs, props: self.subscribed.set()
        self.c.on_message = self._on_message
        self.c.connect(host, port, keepalive=30)
        self.c.loop_start()
        assert self.subscribed.wait(10), "subscribe timed out"

    def _on_message(self, c, u, msg):
        with self.lock:
            self.received.append((msg.mid, msg.payload, msg.dup))

    def wait_for(self, n, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= n:
                    return list(self.received)
            time.sleep(0.05)
        with self.lock:
            return list(self.received)

    def ack_all(self):
        with self.lock:
            todo, self.received = self.received, []
        for mid, _, _ in todo:
            self.c.ack(mid, 1)
        return todo

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()

    def crash(self):
        """Drop the TCP connection without DISCONNECT, as a killed process would."""
        self.c.loop_stop()
        sock = self.c.socket()
        if sock is not None:
            sock.close()


def test_mqtt_qos1_manual_ack_roundtrip(mqtt_broker):
    host, port = mqtt_broker
    topic = f"smoke/{uuid.uuid4().hex[:8]}"
    sub = ManualAckSubscriber(host, port, f"sub-{uuid.uuid4().hex[:8]}", topic + "/#")
    try:
        payloads = [f"p{i}".encode() for i in range(2000)]
        services.publish_mqtt(host, port, topic + "/x", payloads, qos=1)
        got = sub.wait_for(len(payloads))
        # the broker does not throttle an acker that is slow: all 2000 are in flight un-acked
        assert [p for _, p, _ in got] == payloads
        sub.ack_all()
    finally:
        sub.close()


def test_mqtt_unacked_redelivered_after_crash_and_broker_restart(fresh_mosquitto):
    host, port = fresh_mosquitto.host, fresh_mosquitto.port
    topic, cid = "smoke/redeliver", f"sub-{uuid.uuid4().hex[:8]}"
    first = ManualAckSubscriber(host, port, cid, topic)
    payloads = [f"q{i}".encode() for i in range(300)]
    services.publish_mqtt(host, port, topic, payloads)
    got = first.wait_for(len(payloads))
    assert len(got) == len(payloads)
    for mid, _, _ in got[:100]:  # ack the first 100 only
        first.c.ack(mid, 1)
    time.sleep(0.5)
    first.crash()
    time.sleep(0.5)

    fresh_mosquitto.restart()  # graceful restart: sessions + in-flight messages are persisted

    second = ManualAckSubscriber(host, port, cid, topic)
    try:
        assert second.session_present is True
        again = second.wait_for(200)
        assert [p for _, p, _ in again] == payloads[100:]
        assert all(dup for _, _, dup in again)
        second.ack_all()
    finally:
        second.close()


def test_system_mqtt_answers(system_mqtt):
    host, port = system_mqtt
    topic = f"urbanpulse-smoke/{uuid.uuid4().hex[:8]}"
    sub = ManualAckSubscriber(host, port, f"sub-{uuid.uuid4().hex[:8]}", topic)
    try:
        services.publish_mqtt(host, port, topic, [b"hello"])
        assert [p for _, p, _ in sub.wait_for(1)] == [b"hello"]
        sub.ack_all()
    finally:
        sub.close()
        # remove the persistent session we created on the shared broker
        c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=sub.c._client_id.decode(),
                        clean_session=True)
        c.connect(host, port)
        c.loop_start()
        time.sleep(0.2)
        c.disconnect()
        c.loop_stop()
