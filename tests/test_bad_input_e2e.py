"""A corpus of hostile and broken input sent to the running service over MQTT and Kafka:
each case is quarantined with the right reason, valid readings around it are stored, and
the service stays healthy."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import orjson
import pytest

from service_process import ServiceProcess, db_rows, readings_count, wait_until
from services import create_topic, produce_kafka, publish_mqtt

pytestmark = pytest.mark.integration

NOW_MS = int(time.time() * 1000)


def good(sensor: str, k: int) -> dict:
    return {"sensor_id": sensor, "metric": "temperature", "ts": NOW_MS - 3_600_000 + k * 1000, "value": 20.5}


def one(**fields: object) -> bytes:
    base = {"sensor_id": "bad-case", "metric": "temperature", "ts": NOW_MS - 60_000, "value": 1.0}
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not ...})


CORPUS: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "empty_payload"),
    "ten-megabytes": (b'{"sensor_id":"x","pad":"' + b"a" * (10 * 1024 * 1024) + b'"}', "payload_too_large"),
    "invalid-utf8": (b'{"sensor_id":"\xff\xfe","metric":"temperature","ts":1,"value":1}', "invalid_utf8"),
    "truncated-json": (b'{"sensor_id": "x", "metric": ', "invalid_json"),
    "deep-json": (b"[" * 5000 + b"]" * 5000, "too_deep"),
    "scalar": (b"42", "not_an_object"),
    "missing-value-field": (one(value=...), "missing_field"),
    "missing-metric": (one(metric=...), "missing_field"),
    "string-value": (one(value="12.5"), "bad_type"),
    "empty-sensor-id": (one(sensor_id=""), "bad_sensor_id"),
    "control-chars-in-id": (one(sensor_id="abc\u0007def"), "bad_sensor_id"),
    "naive-timestamp": (one(ts="2026-01-01T00:00:00"), "bad_timestamp"),
    "garbage-timestamp": (one(ts="yesterday"), "bad_timestamp"),
    "null-value": (one(value=None), "missing_value"),
    "nan-literal": (b'{"sensor_id":"x","metric":"temperature","ts":%d,"value":NaN}' % NOW_MS, "non_finite"),
    "infinity-literal": (b'{"sensor_id":"x","metric":"temperature","ts":%d,"value":-Infinity}' % NOW_MS, "non_finite"),
    "huge-number": (b'{"sensor_id":"x","metric":"temperature","ts":%d,"value":1e999}' % NOW_MS, "non_finite"),
    "lat-without-lon": (one(lat=52.5), "bad_location"),
    "unknown-metric": (one(metric="flux_capacitance"), "unknown_metric"),
    "wrong-unit": (one(unit="K"), "unit_mismatch"),
    "impossible-value": (one(value=1500.0), "out_of_range"),
    "future": (one(ts=NOW_MS + 86_400_000), "future_timestamp"),
    "ancient": (one(ts="1999-01-01T00:00:00Z"), "too_old"),
}

# accepted as ordinary data: stored verbatim, never interpreted
ODD_BUT_VALID = {
    "sql-looking-id": "'; DROP TABLE readings;--",
    "unicode-id": "北京-站点-01-🌫",
}


def test_every_bad_case_is_quarantined_with_its_reason_and_neighbours_are_stored(
        fresh_db: str, mosquitto, kafka_bootstrap: str, tmp_path: Path) -> None:  # noqa: ANN001
    topic = f"bad-{uuid.uuid4().hex[:8]}"
    create_topic(kafka_bootstrap, topic, partitions=1)
    config = {"database": {"dsn": fresh_db},
              "mqtt": {"enabled": True, "host": mosquitto.host, "port": mosquitto.port,
                       "client_id": f"urbanpulse-bad-{uuid.uuid4().hex[:6]}", "topics": ["city/#"]},
              "kafka": {"enabled": True, "bootstrap_servers": kafka_bootstrap, "topics": [topic],
                        "group_id": f"bad-{uuid.uuid4().hex[:6]}"}}
    svc = ServiceProcess(config, tmp_path).start()
    try:
        k = 0
        for name, (payload, _) in CORPUS.items():
            # a valid reading before and after each bad one, on the same topic
            publish_mqtt(mosquitto.host, mosquitto.port, f"city/corpus/{name}",
                         [orjson.dumps(good("neighbour", k)), payload, orjson.dumps(good("neighbour", k + 1))])
            k += 2
        for name, sensor in ODD_BUT_VALID.items():
            publish_mqtt(mosquitto.host, mosquitto.port, f"city/corpus/{name}", [orjson.dumps(good(sensor, 0))])
        # over Kafka, a mixed array: one bad item must not sink its neighbours
        mixed = orjson.dumps([good("kafka-array", 0), {"sensor_id": "kafka-array", "metric": "temperature",
                                                       "ts": NOW_MS - 1000, "value": "hot"}, good("kafka-array", 1)])
        kafka_bad = [payload for name, (payload, _) in CORPUS.items() if name != "ten-megabytes"]
        produce_kafka(kafka_bootstrap, topic, [mixed, *kafka_bad])

        expected_quarantine = len(CORPUS) + 1 + len(kafka_bad)
        expected_stored = 2 * len(CORPUS) + len(ODD_BUT_VALID) + 2
        wait_until(lambda: len(db_rows(fresh_db, "SELECT id FROM quarantine")) >= expected_quarantine
                   and readings_count(fresh_db) >= expected_stored, 120, what="the corpus to be processed")

        by_topic = {r["topic"]: r for r in db_rows(fresh_db, "SELECT * FROM quarantine WHERE source = 'mqtt'")}
        for name, (payload, reason) in CORPUS.items():
            row = by_topic[f"city/corpus/{name}"]
            assert row["reason"] == reason, f"{name}: got {row['reason']} ({row['detail']})"
            assert row["payload_size"] == len(payload)
            assert bytes(row["payload"]) == payload[:64 * 1024]
        kafka_rows = db_rows(fresh_db, "SELECT * FROM quarantine WHERE source = 'kafka' ORDER BY kafka_offset, item")
        assert [(r["kafka_offset"], r["item"], r["reason"]) for r in kafka_rows][0] == (0, 1, "bad_type")
        assert [r["reason"] for r in kafka_rows[1:]] == [CORPUS[n][1] for n in CORPUS if n != "ten-megabytes"]

        assert readings_count(fresh_db) == expected_stored
        sensors = {r["sensor_id"] for r in db_rows(fresh_db, "SELECT sensor_id FROM series")}
        assert set(ODD_BUT_VALID.values()) <= sensors
        assert {"neighbour", "kafka-array"} <= sensors
        assert svc.health().status_code == 200
        assert svc.metric("urbanpulse_readings_quarantined_total", reason="non_finite") == 6
        assert svc.analytics_failed_batches() == 0
        assert svc.terminate() == 0
    finally:
        svc.stop_quietly()
