"""Hostile messages of every JSON and text format over MQTT and Kafka (payload45).

The messages (tests/hostile_broker_messages.py) mix good and bad records, fields, items, lines and
rows, or are broken whole (truncated, not UTF-8, deeply nested, oversize, empty). The properties:

- in process, through the decode stage (format + validation), many examples: each good part is
  exactly one reading, each bad one exactly one rejection with its reason and its bytes as sent;
- through ``urbanpulse run`` on real PostgreSQL, reading a private Mosquitto (the project's
  config/mosquitto.conf) through a tap and a Tansu broker at once, with a format per MQTT topic
  filter and per Kafka topic: the moment every message is acknowledged (each PUBACK seen on the
  tap, the group's offsets committed past them) its readings and quarantine rows are already in
  PostgreSQL (nothing acknowledged before it is durable); each good part is stored exactly once,
  the quarantine rows are exactly the bad parts (item, reason, bytes as sent), and both sources
  keep consuming (the next example's messages, and a last good message, are stored; no restart).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings, strategies as st

from hostile_broker_messages import FORMATS, OPTIONS, Message, messages

NOW_S = int(time.time()) - 600
#: each example costs messages through a running service: a failure is reported as drawn, not shrunk
NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]


def _stage(fmt: str):  # noqa: ANN202
    from urbanpulse.formats.base import DecodeLimits
    from urbanpulse.pipeline.decode import DecodeStage
    from urbanpulse.plugins import build_format
    from urbanpulse.quality.catalogue import MetricCatalogue
    from urbanpulse.quality.validate import ReadingValidator, TimeRules

    catalogue = MetricCatalogue.load()
    built = build_format(fmt, OPTIONS.get(fmt), DecodeLimits(), catalogue, where="test")
    return DecodeStage(built, ReadingValidator(catalogue, TimeRules(300.0, 7 * 86400.0, 946684800.0, 366)), None)


STAGES: dict = {}


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_part_is_one_reading_or_one_row_of_its_bytes_as_sent(fmt: str) -> None:
    from urbanpulse.formats.base import MessageBatch

    stage = STAGES.setdefault(fmt, _stage(fmt))

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(batch=st.lists(messages(fmt, "s45", NOW_S), min_size=1, max_size=3))
    def check(batch: list[Message]) -> None:
        for m in batch:
            note(f"{m.drawn} {m.body[:2000]!r}")
        topics = [m.owntracks_topic or f"h45/{fmt}/{k}" for k, m in enumerate(batch)]
        out = stage.decode(MessageBatch(source="kafka", payloads=[m.body for m in batch], topics=topics,
                                        partitions=[0] * len(batch), offsets=list(range(len(batch))),
                                        received_ns=time.time_ns()))
        r = out.readings
        got = {}
        for k in map(int, r.msg):
            got[k] = got.get(k, 0) + 1
        assert got == {k: m.good for k, m in enumerate(batch) if m.good}, out.rejections
        assert set(r.sensor_id) <= {m.sensor for m in batch}
        rows = sorted((rej.offset, rej.item, rej.reason.value, rej.payload) for rej in out.rejections)
        want = sorted((k, item, reason, raw) for k, m in enumerate(batch) for item, reason, raw in m.bad)
        assert rows == want

    check()


# -- through the running service, over MQTT and Kafka ---------------------------------------------------

E2E_EXAMPLES = int(os.environ.get("HOSTILE_BROKER_EXAMPLES", "20"))


def _publish_many(host: str, port: int, sent: list[tuple[str, bytes]]) -> None:
    """Publish each (topic, payload) at QoS 1 from one paho client; returns once the broker has them all."""
    import paho.mqtt.client as mqtt

    c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"p45-{uuid.uuid4().hex[:8]}",
                    protocol=mqtt.MQTTv311, clean_session=True)
    c.max_queued_messages_set(0)
    c.connect(host, port, keepalive=30)
    c.loop_start()
    try:
        infos = [c.publish(topic, payload, qos=1) for topic, payload in sent]
        for info in infos:
            info.wait_for_publish(60)
            assert info.is_published(), "the broker did not take a message"
    finally:
        c.disconnect()
        c.loop_stop()


def _rows(dsn: str, where: str, *args: object) -> list[tuple[int, str, bytes, int]]:
    from service_process import db_rows

    return sorted((r["item"], r["reason"], bytes(r["payload"]), r["payload_size"]) for r in db_rows(
        dsn, f"SELECT item, reason, payload, payload_size FROM quarantine WHERE {where}", *args))


def _want(m: Message) -> list[tuple[int, str, bytes, int]]:
    return sorted((item, reason, raw[:65536], len(raw)) for item, reason, raw in m.bad)  # rows keep 64 KiB


@pytest.mark.integration
def test_hostile_messages_over_mqtt_and_kafka_stored_once_quarantined_as_sent_acked_only_when_durable(
        fresh_db: str, fresh_mosquitto, kafka_bootstrap: str, tmp_path: Path) -> None:  # noqa: ANN001
    from mqtt_tap import PUBACK, PUBLISH, MqttTap
    from service_process import ServiceProcess, db_value, wait_until
    from services import committed_offsets, create_topic, produce_kafka, run_sync

    run = uuid.uuid4().hex[:6]
    kafka_topic = {fmt: f"h45-{run}-{fmt}" for fmt in FORMATS}
    for topic in kafka_topic.values():
        create_topic(kafka_bootstrap, topic, partitions=1)
    next_offset = dict.fromkeys(FORMATS, 0)
    group = f"h45-{run}"
    m = fresh_mosquitto
    tap = MqttTap(m.host, m.port)
    mqtt_formats = {f"h45/{fmt}/#": fmt for fmt in FORMATS if fmt != "owntracks"} | {"owntracks/#": "owntracks"}
    config = {"database": {"dsn": fresh_db}, "detection": {"enabled": False},
              "validation": {"max_age_s": 7 * 86400.0},
              "formats": {"default": "json", "options": OPTIONS},
              "mqtt": {"enabled": True, "host": tap.host, "port": tap.port, "client_id": f"up-h45-{run}",
                       "topics": ["h45/json/#"], "formats": mqtt_formats},
              "kafka": {"enabled": True, "bootstrap_servers": kafka_bootstrap, "topics": [kafka_topic["json"]],
                        "group_id": group, "formats": {t: f for f, t in kafka_topic.items() if f != "json"}}}
    svc = ServiceProcess(config, tmp_path).start()
    state = {"example": 0}

    def stored(sensor: str) -> int:
        return int(db_value(fresh_db, "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id "
                                      "WHERE s.sensor_id = $1", sensor))

    try:
        @settings(max_examples=E2E_EXAMPLES, deadline=None, database=None, derandomize=True, phases=NO_SHRINK,
                  suppress_health_check=list(HealthCheck))
        @given(data=st.data())
        def check(data: st.DataObject) -> None:
            state["example"] += 1
            ex = state["example"]
            over_mqtt: list[tuple[str, Message]] = []
            over_kafka: list[tuple[str, int, Message]] = []
            for k in range(data.draw(st.integers(1, 4), label="messages")):
                fmt = data.draw(st.sampled_from(FORMATS), label="format")
                msg = data.draw(messages(fmt, f"m{run}e{ex}k{k}", NOW_S))
                note(f"mqtt {fmt} {msg.drawn} {msg.body[:600]!r}")
                over_mqtt.append((msg.owntracks_topic or f"h45/{fmt}/e{ex}k{k}", msg))
                msg = data.draw(messages(fmt, f"k{run}e{ex}k{k}", NOW_S))
                note(f"kafka {fmt} {msg.drawn} {msg.body[:600]!r}")
                over_kafka.append((kafka_topic[fmt], next_offset[fmt], msg))
                next_offset[fmt] += 1
            key = data.draw(st.sampled_from([None, b"", b"\xff\xfe\x00", b"k" * 10_000, "s\u00e9".encode()]),
                            label="kafka key")  # a record key is provenance only: it never costs a record
            started = time.monotonic()
            _publish_many(tap.host, tap.port, [(t, msg.body) for t, msg in over_mqtt])
            for fmt in FORMATS:  # in offset order, one producer per topic
                payloads = [msg.body for t, _, msg in over_kafka if t == kafka_topic[fmt]]
                if payloads:
                    produce_kafka(kafka_bootstrap, kafka_topic[fmt], payloads, key=key)
            mqtt_topics = {t for t, _ in over_mqtt}

            def all_pubacked() -> bool:
                assert svc.proc is not None and svc.proc.poll() is None, "the service died"
                got = [p for p in tap.seen() if p.down and p.kind == PUBLISH and p.topic in mqtt_topics
                       and p.at >= started]
                acks = {(p.connection, p.pid) for p in tap.seen() if not p.down and p.kind == PUBACK}
                return {p.topic for p in got} == mqtt_topics and all((p.connection, p.pid) in acks for p in got)

            seen: dict[str, int | None] = {}

            def all_committed() -> bool:
                for fmt in {fmt for fmt, t in kafka_topic.items() if any(t == x for x, _, _ in over_kafka)}:
                    done = seen[fmt] = run_sync(committed_offsets(kafka_bootstrap, kafka_topic[fmt], group, 1)).get(0)
                    if done is None or done < next_offset[fmt]:
                        return False
                return True

            # acknowledged -> already durable: the rows are checked the moment the acks are seen
            wait_until(all_pubacked, 90, interval=0.05, what="every MQTT message PUBACKed")
            for topic, msg in over_mqtt:
                assert stored(msg.sensor) == msg.good, (topic, msg.drawn)
                assert _rows(fresh_db, "source = 'mqtt' AND topic = $1", topic) == _want(msg), (topic, msg.drawn)
            wait_until(all_committed, 90, interval=0.5,
                       what=f"every Kafka offset committed (wanted {next_offset}; committed {seen})")
            for topic, offset, msg in over_kafka:
                assert stored(msg.sensor) == msg.good, (topic, offset, msg.drawn)
                assert _rows(fresh_db, "source = 'kafka' AND topic = $1 AND kafka_offset = $2", topic, offset) == \
                    _want(msg), (topic, offset, msg.drawn)

        check()
        # both sources still consume: a good message after everything is stored
        good = b'{"sensor_id":"after-%s","metric":"humidity","ts":%d,"value":40}'
        _publish_many(tap.host, tap.port, [("h45/json/after", good % (b"mqtt", NOW_S * 1000))])
        produce_kafka(kafka_bootstrap, kafka_topic["json"], [good % (b"kafka", NOW_S * 1000)])
        wait_until(lambda: stored("after-mqtt") == 1 and stored("after-kafka") == 1, 60, what="the last messages")
        assert svc.metric("urbanpulse_source_restarts_total") == 0
        assert svc.metric("urbanpulse_readings_quarantined_total", reason="decode_error") == 0
        assert svc.health().status_code == 200
        assert svc.terminate() == 0
        assert "Traceback" not in svc.log_tail(500_000)
    finally:
        svc.stop_quietly()
        tap.close()


# -- one batch of several formats (MQTT topic filters, Kafka topics: the router) -----------------------


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_a_batch_mixing_formats_quarantines_each_part_from_its_own_message(data: st.DataObject) -> None:
    """The router decodes each format's messages as a sub-batch; a reading's message index was made
    the whole batch's before its format was asked for the reading's bytes, so a SenML record or a
    vendor field rejected by validation was quarantined with another message's bytes (or the batch
    raised IndexError and was decoded again message by message)."""
    from urbanpulse.formats.base import DecodeLimits, MessageBatch
    from urbanpulse.formats.router import FormatRouter
    from urbanpulse.pipeline.decode import DecodeStage
    from urbanpulse.plugins import build_format
    from urbanpulse.quality.catalogue import MetricCatalogue
    from urbanpulse.quality.validate import ReadingValidator, TimeRules

    global ROUTED
    if ROUTED is None:
        catalogue = MetricCatalogue.load()
        built = {f: build_format(f, OPTIONS.get(f), DecodeLimits(), catalogue, where="test") for f in FORMATS}
        router = FormatRouter(built["json"], {f"h45/{f}/#": built[f] for f in FORMATS if f != "owntracks"}
                              | {"owntracks/#": built["owntracks"]})
        ROUTED = DecodeStage(router, ReadingValidator(catalogue, TimeRules(300.0, 7 * 86400.0, 946684800.0, 366)),
                             None)
    batch: list[Message] = []
    topics: list[str] = []
    for k in range(data.draw(st.integers(2, 6))):
        fmt = data.draw(st.sampled_from(FORMATS))
        m = data.draw(messages(fmt, f"r{k}", NOW_S))
        note(f"{fmt} {m.drawn} {m.body[:500]!r}")
        batch.append(m)
        topics.append(m.owntracks_topic or f"h45/{fmt}/{k}")
    out = ROUTED.decode(MessageBatch(source="mqtt", payloads=[m.body for m in batch], topics=topics,
                                     received_ns=time.time_ns()))
    got: dict[int, int] = {}
    for k in map(int, out.readings.msg):
        got[k] = got.get(k, 0) + 1
    assert got == {k: m.good for k, m in enumerate(batch) if m.good}
    rows = sorted((topics.index(r.topic), r.item, r.reason.value, r.payload) for r in out.rejections)
    assert rows == sorted((k, item, reason, raw) for k, m in enumerate(batch) for item, reason, raw in m.bad)


ROUTED = None


def test_a_routed_senml_record_is_not_quarantined_with_the_next_packs_bytes() -> None:
    """The example that named the router defect: on main the out-of-range record of ``senml/b``
    was quarantined with ``senml/c``'s (good) record as its bytes."""
    from urbanpulse.formats.base import DecodeLimits, MessageBatch
    from urbanpulse.formats.router import FormatRouter
    from urbanpulse.pipeline.decode import DecodeStage
    from urbanpulse.plugins import build_format
    from urbanpulse.quality.catalogue import MetricCatalogue
    from urbanpulse.quality.validate import ReadingValidator, TimeRules

    catalogue = MetricCatalogue.load()
    fmts = {f: build_format(f, None, DecodeLimits(), catalogue, where="test") for f in ("json", "senml")}
    stage = DecodeStage(FormatRouter(fmts["json"], {"senml/#": fmts["senml"]}),
                        ReadingValidator(catalogue, TimeRules(300.0, 7 * 86400.0, 946684800.0, 366)), None)
    bad = b'[{"bn":"b:","bt":%d,"n":"humidity","v":1e5}]' % NOW_S
    payloads = [b'{"sensor_id":"a","metric":"humidity","ts":%d,"value":40}' % (NOW_S * 1000), bad,
                b'[{"bn":"c:","bt":%d,"n":"humidity","v":50}]' % NOW_S]
    out = stage.decode(MessageBatch(source="mqtt", payloads=payloads, topics=["city/a", "senml/b", "senml/c"],
                                    received_ns=time.time_ns()))
    assert [(r.topic, r.item, r.reason.value, r.payload) for r in out.rejections] == \
        [("senml/b", 0, "out_of_range", bad[1:-1])]
    assert sorted(out.readings.sensor_id) == ["a", "c"]
