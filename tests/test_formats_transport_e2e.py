"""Every format over real transports into the running service (``urbanpulse run``).

One service consumes Mosquitto and the Kafka broker at once, with a format per MQTT topic
filter and per Kafka topic (``ttn/#`` as TTS v3, ``senml/#`` as SenML, ..., ``city/#`` as the
canonical JSON default). Each format's realistic message is stored exactly once per transport;
sending everything again stores nothing (except Sensor.Community, whose pushes carry no time:
a resend is a new reading at its new receive time, as documented); one malformed message per
format and transport is quarantined with its topic and reason.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from format_fixtures import MALFORMED as BAD
from service_process import ServiceProcess, db_rows, readings_count, wait_settled, wait_until
from services import create_topic, produce_kafka, publish_mqtt
from urbanpulse.testing.samples import SAMPLE_OPTIONS, SAMPLES, sample

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FORMATS = sorted(SAMPLES)


def mqtt_topic(fmt: str, sensor: str) -> str:
    return f"owntracks/{sensor}/phone" if fmt == "owntracks" else f"{fmt}/{sensor}"


def test_each_format_over_mqtt_and_kafka_stored_once_resend_nothing_bad_quarantined(
        fresh_db: str, mosquitto, kafka_bootstrap: str, tmp_path: Path) -> None:  # noqa: ANN001
    run = uuid.uuid4().hex[:6]
    kafka_topics = {fmt: f"fmt-{run}-{fmt}" for fmt in FORMATS if fmt != "json"}
    for topic in kafka_topics.values():
        create_topic(kafka_bootstrap, topic, partitions=1)
    default_topic = f"fmt-{run}-canonical"
    create_topic(kafka_bootstrap, default_topic, partitions=1)
    mqtt_formats = {("owntracks/#" if f == "owntracks" else f"{f}/#"): f for f in FORMATS if f != "json"}
    config = {
        "database": {"dsn": fresh_db},
        "validation": {"max_age_s": 7 * 86400.0},
        "formats": {"default": "json", "options": {"csv": SAMPLE_OPTIONS["csv"]}},
        "mqtt": {"enabled": True, "host": mosquitto.host, "port": mosquitto.port,
                 "client_id": f"urbanpulse-fmt-{run}", "topics": ["json/#"], "formats": mqtt_formats},
        "kafka": {"enabled": True, "bootstrap_servers": kafka_bootstrap, "topics": [default_topic],
                  "group_id": f"fmt-{run}", "formats": {t: f for f, t in kafka_topics.items()}},
    }
    svc = ServiceProcess(config, tmp_path).start()
    try:
        t0 = time.time() - 60
        expected: dict[str, int] = {}
        sent: list[tuple[str, str, bytes]] = []  # (transport, topic, payload)
        for fmt in FORMATS:
            for transport in ("mqtt", "kafka"):
                sensor = f"{fmt.replace('_', '-')}-{transport}-{run}"
                payload, n = sample(fmt, sensor, t0, 10)
                topic = mqtt_topic(fmt, sensor) if transport == "mqtt" else kafka_topics.get(fmt, default_topic)
                sent.append((transport, topic, payload))
                stored_as = f"{sensor}/phone" if (fmt == "owntracks" and transport == "mqtt") else \
                    f"esp8266-{sensor}" if fmt == "sensor_community" else sensor
                expected[stored_as] = n
        _send(mosquitto, kafka_bootstrap, sent)
        total = sum(expected.values())
        wait_until(lambda: readings_count(fresh_db) >= total, 120, what=f"{total} readings of every format")
        wait_settled(svc, len(sent))  # everything sent was received and written: nothing more to come
        stored = {r["sensor_id"]: r["n"] for r in db_rows(
            fresh_db, "SELECT s.sensor_id, count(*) AS n FROM readings r JOIN series s ON s.id = r.series_id GROUP BY 1")}
        assert stored == expected, {k: (stored.get(k), v) for k, v in expected.items() if stored.get(k) != v}
        assert db_rows(fresh_db, "SELECT reason, detail FROM quarantine") == []

        # resend everything: storage absorbs it (Sensor.Community excepted: no time in its pushes)
        dup_before = svc.metric("urbanpulse_readings_duplicate_total")
        _send(mosquitto, kafka_bootstrap, sent)
        sc = sum(n for s, n in expected.items() if s.startswith("esp8266-"))
        wait_until(lambda: svc.metric("urbanpulse_readings_duplicate_total") - dup_before >= total - sc
                   and readings_count(fresh_db) >= total + sc, 120,
                   what="the resent readings to be recognised as duplicates")
        wait_settled(svc, 2 * len(sent))
        assert readings_count(fresh_db) == total + sc
        assert svc.metric("urbanpulse_readings_duplicate_total") - dup_before == total - sc

        # one malformed message per format and transport: quarantined with its topic and reason
        bad_sent = []
        for fmt in FORMATS:
            payload, _ = BAD[fmt]
            bad_sent.append(("mqtt", mqtt_topic(fmt, f"bad-{run}"), payload))
            bad_sent.append(("kafka", kafka_topics.get(fmt, default_topic), payload))
        _send(mosquitto, kafka_bootstrap, bad_sent)
        wait_until(lambda: len(db_rows(fresh_db, "SELECT id FROM quarantine")) >= len(bad_sent), 120,
                   what="the malformed messages to be quarantined")
        rows = db_rows(fresh_db, "SELECT source, topic, reason, payload FROM quarantine")
        got = {(r["source"], r["topic"]): (r["reason"], bytes(r["payload"])) for r in rows}
        for (transport, topic, payload), fmt in zip(bad_sent, [f for f in FORMATS for _ in (0, 1)]):
            assert got[(transport, topic)] == (BAD[fmt][1], payload), (fmt, transport, got.get((transport, topic)))
        assert readings_count(fresh_db) == total + sc
        assert svc.health().status_code == 200
        assert svc.terminate() == 0
    finally:
        svc.stop_quietly()


def _send(mosquitto, bootstrap: str, sent: list[tuple[str, str, bytes]]) -> None:  # noqa: ANN001
    by_topic: dict[tuple[str, str], list[bytes]] = {}
    for transport, topic, payload in sent:
        by_topic.setdefault((transport, topic), []).append(payload)
    for (transport, topic), payloads in by_topic.items():
        if transport == "mqtt":
            publish_mqtt(mosquitto.host, mosquitto.port, topic, payloads)
        else:
            produce_kafka(bootstrap, topic, payloads)
