"""The conformance kit (urbanpulse.testing): every built-in format and the MQTT and Kafka
sources pass it, and it catches formats and sources that break the contract."""

from __future__ import annotations

import asyncio
import json
import uuid

import numpy as np
import pytest

from services import create_topic, produce_kafka, publish_mqtt
from urbanpulse.config import KafkaSettings, MqttSettings
from urbanpulse.formats.base import Decoded, MessageBatch
from urbanpulse.metrics import IngestMetrics
from urbanpulse.model import ReadingColumns, Reason, Rejection
from urbanpulse.plugins import BUILTIN_FORMATS, build_format
from urbanpulse.testing import RecordingSink, check_format, check_source
from urbanpulse.testing.samples import SAMPLE_OPTIONS, sample

pytest_plugins = ["urbanpulse.testing.plugin"]


@pytest.mark.parametrize("name", sorted(BUILTIN_FORMATS))
def test_every_builtin_format_passes_the_kit(name, format_conformance):
    valid = [sample(name, f"kit-{k}", 1_700_000_000.0, 10)[0] for k in range(3)]
    report = format_conformance(build_format(name, SAMPLE_OPTIONS.get(name)), valid=valid,
                                topic="owntracks/kit/phone" if name == "owntracks" else None)
    assert report.readings["valid"] > 0
    assert report.rejections["invalid_utf8"] or name == "senml_cbor"


def _empty_columns() -> ReadingColumns:
    e = np.zeros(0)
    return ReadingColumns([], [], e, e, e, e, [], np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, bool))


class _Raises:
    name = "raises"

    def decode(self, batch: MessageBatch) -> Decoded:
        for p in batch.payloads:
            json.loads(p)
        return Decoded(_empty_columns())


class _SilentOnEmpty:
    name = "silent"

    def decode(self, batch: MessageBatch) -> Decoded:
        rej = [Rejection(Reason.MALFORMED, "bad", p, batch.source, batch.topics[i], batch.partitions[i],
                         batch.offsets[i]) for i, p in enumerate(batch.payloads) if p]
        return Decoded(_empty_columns(), rej)


class _Nondeterministic:
    """The canonical format, except that its details change from call to call."""

    name = "flaky"
    calls = 0

    def __init__(self) -> None:
        self.inner = build_format("json")

    def decode(self, batch: MessageBatch) -> Decoded:
        d = self.inner.decode(batch)
        _Nondeterministic.calls += 1
        for r in d.rejections:
            r.detail = f"{r.detail} (call {self.calls})"
        return d


@pytest.mark.parametrize("fmt,message", [(_Raises(), "decode raised"), (_SilentOnEmpty(), "'empty' produced no rejection"),
                                         (_Nondeterministic(), "different results")])
def test_the_kit_catches_a_broken_format(fmt, message):
    with pytest.raises(AssertionError, match=message):
        check_format(fmt, valid=[b'{"a": 1}'])


# -- sources -------------------------------------------------------------------------------------

class _MemoryBroker:
    """A queue with at-least-once delivery: unacknowledged messages go back to the next consumer."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.acked: set[int] = set()


class _MemorySource:
    name = "memory"

    def __init__(self, broker: _MemoryBroker, ack_early: bool = False) -> None:
        self.broker = broker
        self.ack_early = ack_early

    def health(self) -> dict[str, object]:
        return {"connected": True}

    async def run(self, sink, stopping: asyncio.Event) -> None:  # noqa: ANN001 - a Sink
        sent = set()
        while not stopping.is_set():
            todo = [k for k in range(len(self.broker.messages)) if k not in self.broker.acked and k not in sent]
            if todo:
                sent.update(todo)
                if self.ack_early:
                    self.broker.acked.update(todo)
                await sink.submit(MessageBatch(self.name, [self.broker.messages[k] for k in todo]),
                                  ack=lambda todo=todo: self.broker.acked.update(todo))
            await asyncio.sleep(0.01)
        await sink.drain()


async def test_the_kit_passes_a_correct_source_and_catches_one_that_acks_early():
    broker = _MemoryBroker()
    await check_source(lambda: _MemorySource(broker), broker.messages.extend, timeout=5)
    early = _MemoryBroker()
    with pytest.raises(AssertionError, match="did not arrive"):
        await check_source(lambda: _MemorySource(early, ack_early=True), early.messages.extend, timeout=2)


@pytest.mark.integration
async def test_mqtt_source_passes_the_kit(fresh_mosquitto, source_conformance):  # noqa: ANN001
    mosquitto = fresh_mosquitto
    topic = f"kit/{uuid.uuid4().hex[:8]}"
    settings = MqttSettings(enabled=True, host=mosquitto.host, port=mosquitto.port,
                            client_id=f"kit-{uuid.uuid4().hex[:8]}", topics=[topic], reconnect_max_s=1.0)
    from urbanpulse.connectors.mqtt import MqttSource

    # the first instance subscribes (creating the persistent session) before anything is published
    sink = RecordingSink(confirm=True)
    stopping = asyncio.Event()
    src = MqttSource(settings, IngestMetrics())
    task = asyncio.create_task(src.run(sink, stopping))
    for _ in range(100):
        if src.health().get("connected"):
            break
        await asyncio.sleep(0.1)
    stopping.set()
    await task

    async def publish(payloads: list[bytes]) -> None:
        await asyncio.to_thread(publish_mqtt, mosquitto.host, mosquitto.port, topic, payloads)

    async def restart_broker() -> None:
        await asyncio.to_thread(mosquitto.restart)

    await source_conformance(lambda: MqttSource(settings, IngestMetrics()), publish, reconnect=restart_broker)


@pytest.mark.integration
async def test_kafka_source_passes_the_kit(kafka_bootstrap, source_conformance):  # noqa: ANN001
    topic = f"kit-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(create_topic, kafka_bootstrap, topic, 1)
    settings = KafkaSettings(enabled=True, bootstrap_servers=kafka_bootstrap, topics=[topic],
                             group_id=f"kit-{uuid.uuid4().hex[:8]}")
    from urbanpulse.connectors.kafka import KafkaSource

    async def publish(payloads: list[bytes]) -> None:
        await asyncio.to_thread(produce_kafka, kafka_bootstrap, topic, payloads)

    await source_conformance(lambda: KafkaSource(settings, IngestMetrics()), publish, timeout=60)
