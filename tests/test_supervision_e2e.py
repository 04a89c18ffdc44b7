"""Supervised sources over real brokers: a source that fails is restarted with back-off, the
failure is visible on /health and /metrics, and what was published after it is stored."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services import create_topic, produce_kafka, publish_mqtt
from supervision_helpers import FaultyFormat, eventually, fetchval, reading, settings_for, start_service

pytestmark = pytest.mark.integration


async def _publish(transport: str, broker, topic: str, payloads: list[bytes]) -> None:  # noqa: ANN001
    if transport == "mqtt":
        await asyncio.to_thread(publish_mqtt, broker[0], broker[1], f"{topic}/d1/s1", payloads)
    else:
        await asyncio.to_thread(produce_kafka, broker, topic, payloads)


@pytest.mark.parametrize("transport", ["mqtt", "kafka"])
async def test_a_source_killed_by_a_format_fault_is_restarted_and_later_messages_are_stored(
        transport: str, fresh_db: str, request: pytest.FixtureRequest) -> None:
    topic = f"sup-{uuid.uuid4().hex[:8]}"
    if transport == "mqtt":
        broker = request.getfixturevalue("mqtt_broker")
        settings = settings_for(fresh_db, mqtt=broker, topic=topic)
    else:
        broker = request.getfixturevalue("kafka_bootstrap")
        await asyncio.to_thread(create_topic, broker, topic, 1)
        settings = settings_for(fresh_db, kafka=broker, topic=topic)
    fmt = FaultyFormat(marker=b"trips-the-fault", times=1)  # a one-off fault: the redelivery decodes
    svc = await start_service(settings, fmt)
    try:
        await eventually(lambda: _status(svc, 200), 60, "the source to connect")
        before = [reading("before", i) for i in range(20)]
        await _publish(transport, broker, topic, before)
        await eventually(lambda: _stored(fresh_db, 20), 60, "the readings before the fault")

        await _publish(transport, broker, topic, [reading("trips-the-fault", 0)])
        await eventually(lambda: svc.metric("urbanpulse_source_restarts_total", source=transport), 60,
                         "the failed source to be restarted")
        assert fmt.fired == 1
        body = (await svc.health()).json()["brokers"][transport]
        assert body["restarts"] >= 1
        assert "InjectedFault" in body["last_failure"] and body["last_failure_at"]

        after = [reading("after", i) for i in range(30)]
        await _publish(transport, broker, topic, after)
        # the message that crashed the source was not acknowledged: the broker redelivers it
        await eventually(lambda: _stored(fresh_db, 20 + 1 + 30), 90, "the redelivery and the later readings")
        await eventually(lambda: _status(svc, 200), 60, "/health to be 200 again")
        assert await svc.metric("urbanpulse_source_up", source=transport) == 1
        assert await fetchval(fresh_db, "SELECT count(*) FROM readings") == 51
        assert await fetchval(fresh_db, "SELECT count(*) FROM quarantine") == 0
    finally:
        await svc.stop()


async def _status(svc, code: int) -> bool:  # noqa: ANN001
    return (await svc.health()).status_code == code


async def _stored(dsn: str, n: int) -> bool:
    return await fetchval(dsn, "SELECT count(*) FROM readings") >= n
