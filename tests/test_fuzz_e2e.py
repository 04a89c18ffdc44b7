"""A generated hostile corpus (urbanpulse.fuzz, fixed seed) sent over the real brokers, MQTT and
Kafka, into the running service: every message, or every item of a message that is a JSON
array, is either stored or quarantined; the sources keep running and /health stays 200."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from service_process import ServiceProcess, db_value, wait_until
from services import create_topic, produce_kafka, publish_mqtt
from urbanpulse.fuzz import RandomChoices, canonical_units, hostile_payload

pytestmark = pytest.mark.integration

CORPUS_SIZE = 150  # messages per transport


def corpus(seed: int, now_ms: int) -> list[bytes]:
    c = RandomChoices(seed)
    return [hostile_payload(c, now_ms) for _ in range(CORPUS_SIZE)]


def marker(ts_ms: int) -> bytes:
    return b'{"sensor_id": "marker", "metric": "pm2_5", "ts": %d, "value": 1}' % ts_ms


def accounted(dsn: str, svc: ServiceProcess) -> int:
    """Items stored, found already stored (a generated reading repeated), or quarantined."""
    stored = db_value(dsn, "SELECT count(*) FROM readings")
    quarantined = db_value(dsn, "SELECT count(*) FROM quarantine")
    return int(stored + quarantined + svc.metric("urbanpulse_readings_duplicate_total"))


def test_a_generated_hostile_corpus_over_mqtt_and_kafka_is_stored_or_quarantined_item_by_item(
        fresh_db: str, mosquitto, kafka_bootstrap: str, tmp_path: Path) -> None:  # noqa: ANN001
    topic = f"fuzz-{uuid.uuid4().hex[:8]}"
    create_topic(kafka_bootstrap, topic, partitions=2)
    config = {"database": {"dsn": fresh_db},
              "mqtt": {"enabled": True, "host": mosquitto.host, "port": mosquitto.port,
                       "client_id": f"urbanpulse-fuzz-{uuid.uuid4().hex[:6]}", "topics": ["fuzz/#"]},
              "kafka": {"enabled": True, "bootstrap_servers": kafka_bootstrap, "topics": [topic],
                        "group_id": f"fuzz-{uuid.uuid4().hex[:6]}"}}
    now_ms = int(time.time() * 1000)
    over_mqtt, over_kafka = corpus(1, now_ms), corpus(2, now_ms)
    units = sum(len(canonical_units(p)) for p in over_mqtt + over_kafka)
    svc = ServiceProcess(config, tmp_path).start()
    try:
        publish_mqtt(mosquitto.host, mosquitto.port, "fuzz/corpus", over_mqtt)
        produce_kafka(kafka_bootstrap, topic, over_kafka)
        wait_until(lambda: accounted(fresh_db, svc) >= units, 120, what=f"{units} items stored or quarantined")
        # a marker after the corpus on each stream (MQTT topic, both Kafka partitions): when all are
        # stored, nothing of the corpus is still on its way
        publish_mqtt(mosquitto.host, mosquitto.port, "fuzz/corpus", [marker(now_ms)])
        for partition in (0, 1):
            produce_kafka(kafka_bootstrap, topic, [marker(now_ms + 1 + partition)], partition=partition)
        wait_until(lambda: db_value(fresh_db, "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id "
                                              "WHERE s.sensor_id = 'marker'") == 3, 60, what="the markers")
        assert accounted(fresh_db, svc) == units + 3
        assert svc.metric("urbanpulse_readings_received_total") == units + 3
        assert svc.metric("urbanpulse_readings_quarantined_total", reason="decode_error") == 0
        by_source = {r: db_value(fresh_db, "SELECT count(*) FROM quarantine WHERE source = $1", r)
                     for r in ("mqtt", "kafka")}
        assert by_source["mqtt"] > 0 and by_source["kafka"] > 0
        assert svc.health().status_code == 200
        assert svc.analytics_failed_batches() == 0
        assert svc.terminate() == 0
        assert "failed; the rest of the service keeps running" not in svc.log_tail(500_000)
    finally:
        svc.stop_quietly()
