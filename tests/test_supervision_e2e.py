"""Supervised sources over real brokers: a source that fails is restarted with back-off, the
failure is visible on /health and /metrics, what was published after it is stored, and the
message that crashed it is quarantined as poison_message when redelivered (also after a
process restart) instead of crashing it again."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

import pytest

from services import create_topic, produce_kafka, publish_mqtt
from supervision_helpers import FaultyFormat, eventually, fetch, fetchval, reading, settings_for, start_service

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _publish(transport: str, broker, topic: str, payloads: list[bytes]) -> None:  # noqa: ANN001
    if transport == "mqtt":
        await asyncio.to_thread(publish_mqtt, broker[0], broker[1], f"{topic}/d1/s1", payloads)
    else:
        await asyncio.to_thread(produce_kafka, broker, topic, payloads)


async def _service_on(transport: str, dsn: str, request: pytest.FixtureRequest, **supervision: float):
    """(broker, topic, settings) for an in-process service on one transport."""
    topic = f"sup-{uuid.uuid4().hex[:8]}"
    if transport == "mqtt":
        broker = request.getfixturevalue("mqtt_broker")
        return broker, topic, settings_for(dsn, mqtt=broker, topic=topic, **supervision)
    broker = request.getfixturevalue("kafka_bootstrap")
    await asyncio.to_thread(create_topic, broker, topic, 1)
    return broker, topic, settings_for(dsn, kafka=broker, topic=topic, **supervision)


POISON = reading("trips-the-fault", 0)


@pytest.mark.parametrize("transport", ["mqtt", "kafka"])
async def test_a_source_killed_by_a_format_fault_is_restarted_and_later_messages_are_stored(
        transport: str, fresh_db: str, request: pytest.FixtureRequest) -> None:
    broker, topic, settings = await _service_on(transport, fresh_db, request)
    fmt = FaultyFormat(marker=b"trips-the-fault")  # every batch holding that message raises
    svc = await start_service(settings, fmt)
    try:
        await eventually(lambda: _status(svc, 200), 60, "the source to connect")
        await _publish(transport, broker, topic, [reading("before", i) for i in range(20)])
        await eventually(lambda: _stored(fresh_db, 20), 60, "the readings before the fault")

        await _publish(transport, broker, topic, [POISON])
        await eventually(lambda: svc.metric("urbanpulse_source_restarts_total", source=transport), 60,
                         "the failed source to be restarted")
        body = (await svc.health()).json()["brokers"][transport]
        assert body["restarts"] >= 1
        assert "InjectedFault" in body["last_failure"] and body["last_failure_at"]

        await _publish(transport, broker, topic, [reading("after", i) for i in range(30)])
        await eventually(lambda: _stored(fresh_db, 50), 90, "the readings published after the fault")
        # it crashed the source alone: its redelivery is quarantined, not decoded again
        rows = await eventually(lambda: _quarantined(fresh_db), 60, "the poison message in quarantine")
        assert [(r["reason"], bytes(r["payload"])) for r in rows] == [("poison_message", POISON)]
        assert "InjectedFault" in rows[0]["detail"] and "decoded on its own" in rows[0]["detail"]
        assert fmt.fired == 1, "the poison message was decoded again after it had crashed the source"
        await eventually(lambda: _status(svc, 200), 60, "/health to be 200 again")
        assert await svc.metric("urbanpulse_source_up", source=transport) == 1
        assert await svc.metric("urbanpulse_source_restarts_total", source=transport) == 1
        assert await svc.metric("urbanpulse_readings_quarantined_total", source=transport,
                                reason="poison_message") == 1
        await _poison_suspect_settled(svc, transport, fresh_db)
        assert await fetchval(fresh_db, "SELECT count(*) FROM readings") == 50
    finally:
        await svc.stop()


@pytest.mark.parametrize("transport", ["mqtt", "kafka"])
async def test_a_poison_message_among_many_is_narrowed_down_and_quarantined_and_its_neighbours_stored(
        transport: str, fresh_db: str, request: pytest.FixtureRequest) -> None:
    broker, topic, settings = await _service_on(transport, fresh_db, request)
    fmt = FaultyFormat(marker=b"trips-the-fault")
    svc = await start_service(settings, fmt)
    try:
        await eventually(lambda: _status(svc, 200), 60, "the source to connect")
        batch = [reading("left", i) for i in range(40)] + [POISON] + [reading("right", i) for i in range(40)]
        await _publish(transport, broker, topic, batch)
        rows = await eventually(lambda: _quarantined(fresh_db), 90, "the poison message in quarantine")
        await eventually(lambda: _stored(fresh_db, 80), 90, "every neighbour of the poison message")
        assert [(r["reason"], bytes(r["payload"])) for r in rows] == [("poison_message", POISON)]
        restarts = await svc.metric("urbanpulse_source_restarts_total", source=transport)
        assert 1 <= restarts <= 2  # one to narrow the batch down to the message, one to name it
        assert fmt.fired == restarts
        await _publish(transport, broker, topic, [reading("later", i) for i in range(10)])
        await eventually(lambda: _stored(fresh_db, 90), 60, "the readings published later")
        await eventually(lambda: _status(svc, 200), 60, "/health to be 200 again")
        await _poison_suspect_settled(svc, transport, fresh_db)  # the neighbours cleared are forgotten
        assert await fetchval(fresh_db, "SELECT count(*) FROM readings") == 90
        assert len(await _quarantined(fresh_db)) == 1
    finally:
        await svc.stop()


@pytest.mark.parametrize("transport", ["mqtt", "kafka"])
async def test_a_poison_message_is_recognised_after_a_process_restart_and_never_decoded_again(
        transport: str, fresh_db: str, request: pytest.FixtureRequest) -> None:
    # the first process waits long before restarting its source, so it stops with the suspect unhandled
    broker, topic, settings = await _service_on(transport, fresh_db, request, restart_initial_s=300)
    first = await start_service(settings, FaultyFormat(marker=b"trips-the-fault"))
    try:
        await eventually(lambda: _status(first, 200), 60, "the source to connect")
        await _publish(transport, broker, topic, [POISON])
        await eventually(lambda: _status(first, 503), 60, "/health to report the failed source")
        body = (await first.health()).json()["brokers"][transport]
        assert body["state"] == "restarting" and "InjectedFault" in body["last_failure"]
        suspects = await eventually(lambda: fetch(fresh_db, "SELECT source, alone, crashes FROM source_suspects"),
                                    30, "the suspect to be stored")
        assert [tuple(r) for r in suspects] == [(transport, True, 1)]
    finally:
        await first.stop()
    assert await fetchval(fresh_db, "SELECT count(*) FROM quarantine") == 0

    fmt = FaultyFormat(marker=b"trips-the-fault")
    settings = settings.model_copy(update={"supervision": settings.supervision.model_copy(
        update={"restart_initial_s": 0.2})})
    second = await start_service(settings, fmt)  # same session / consumer group: the broker redelivers
    try:
        rows = await eventually(lambda: _quarantined(fresh_db), 90, "the redelivered poison message in quarantine")
        assert [(r["reason"], bytes(r["payload"])) for r in rows] == [("poison_message", POISON)]
        assert fmt.seen_marker == 0, "the new process decoded the message that had crashed the old one"
        await _publish(transport, broker, topic, [reading("after", i) for i in range(10)])
        await eventually(lambda: _stored(fresh_db, 10), 60, "the readings published after the restart")
        await _poison_suspect_settled(second, transport, fresh_db)
        assert await second.metric("urbanpulse_source_restarts_total", source=transport) == 0
        assert (await second.health()).status_code == 200
    finally:
        await second.stop()


async def _quarantined(dsn: str) -> list:
    return await fetch(dsn, "SELECT reason, payload, detail FROM quarantine ORDER BY id")


async def _poison_suspect_settled(svc, transport: str, dsn: str) -> None:  # noqa: ANN001
    """Once its quarantine is acknowledged, a Kafka poison record is forgotten (its commit took
    effect: it never comes back); an MQTT one stays a suspect until forget_after_s, because a PUBACK
    may be lost and mosquitto then redelivers it with DUP (ingest42, connectors/poison.py)."""
    if transport == "kafka":
        await eventually(lambda: _no_suspects(dsn), 30, "the acknowledged poison record to be forgotten")
        return
    await svc.service.pipeline.drain()  # every acknowledgement has run (a forget would follow it at once)
    await asyncio.sleep(0.5)
    rows = await fetch(dsn, "SELECT source, alone FROM source_suspects")
    assert [tuple(r) for r in rows] == [("mqtt", True)], "the MQTT poison suspect (alone) must be kept, no other"


async def _no_suspects(dsn: str) -> bool:
    return await fetchval(dsn, "SELECT count(*) FROM source_suspects") == 0


async def _status(svc, code: int) -> bool:  # noqa: ANN001
    return (await svc.health()).status_code == code


async def _stored(dsn: str, n: int) -> bool:
    return await fetchval(dsn, "SELECT count(*) FROM readings") >= n


async def test_a_permanent_write_error_halts_its_source_visibly_while_the_other_source_goes_on(
        fresh_db: str, mqtt_broker, kafka_bootstrap: str) -> None:  # noqa: ANN001
    topic = f"sup-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(create_topic, kafka_bootstrap, topic, 1)
    settings = settings_for(fresh_db, mqtt=mqtt_broker, kafka=kafka_bootstrap, topic=topic)
    settings = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"retry_max_s": 1.0})})
    svc = await start_service(settings)
    admin = await asyncpg.connect(fresh_db)
    try:
        await eventually(lambda: _status(svc, 200), 60, "both sources to connect")
        # a real permanent error: an operator moved the quarantine table away
        await admin.execute("ALTER TABLE quarantine RENAME TO quarantine_elsewhere")
        await _publish("kafka", kafka_bootstrap, topic, [reading("k", i) for i in range(10)] + [b"not json"])
        body = await eventually(lambda: _halted(svc, "kafka"), 60, "/health to show kafka halted")
        assert "UndefinedTableError" in body["database"]["halted_sources"]["kafka"]
        assert "UndefinedTableError" in body["brokers"]["kafka"]["acks_halted"]
        assert body["brokers"]["kafka"]["connected"] is False
        assert await svc.metric("urbanpulse_source_acks_halted", source="kafka") == 1
        assert await svc.metric("urbanpulse_batch_write_permanent_errors_total", source="kafka") >= 1

        await _publish("mqtt", mqtt_broker, topic, [reading("m", i) for i in range(20)])
        await eventually(lambda: _count(admin, "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id "
                                               "WHERE s.sensor_id = 'm'", 20), 60, "MQTT readings despite the halt")
        assert await admin.fetchval("SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id "
                                    "WHERE s.sensor_id = 'k'") == 0

        # the halted source takes nothing more: its next batch stops it until the parked one is written
        await _publish("kafka", kafka_bootstrap, topic, [reading("k", i) for i in range(20, 25)])
        await eventually(lambda: _state(svc, "kafka", "halted"), 60, "the kafka source to stop while halted")

        await admin.execute("ALTER TABLE quarantine_elsewhere RENAME TO quarantine")  # the operator's fix
        await eventually(lambda: _status(svc, 200), 90, "/health 200 once the parked batch is written")
        await eventually(lambda: _count(admin, "SELECT count(*) FROM quarantine", 1), 60, "the bad message quarantined")
        await _publish("kafka", kafka_bootstrap, topic, [reading("k", i) for i in range(10, 20)])
        await eventually(lambda: _count(admin, "SELECT count(*) FROM readings", 45), 90, "the Kafka readings")
        assert await svc.metric("urbanpulse_source_acks_halted", source="kafka") == 0
        assert (await svc.health()).json()["brokers"]["kafka"]["state"] == "running"
        assert await admin.fetchval("SELECT count(*) FROM readings") == 45
    finally:
        await admin.close()
        await svc.stop()


async def _halted(svc, source: str):  # noqa: ANN001, ANN202
    r = await svc.health()
    body = r.json()
    return body if r.status_code == 503 and source in body["database"].get("halted_sources", {}) else None


async def _state(svc, source: str, state: str) -> bool:  # noqa: ANN001
    return (await svc.health()).json()["brokers"][source]["state"] == state


async def _count(conn, sql: str, n: int) -> bool:  # noqa: ANN001
    return await conn.fetchval(sql) >= n
