"""The message that stopped ingestion for good (issue 12) sent to the running service over MQTT
and Kafka: an array whose first item carries a JSON-escaped lone surrogate. It is quarantined,
its neighbours are stored, the sources keep running, /health stays 200, and after a restart
(with another such message waiting in the brokers) nothing dies again."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import orjson
import pytest

from service_process import ServiceProcess, db_rows, db_value, readings_count, wait_until
from services import create_topic, produce_kafka, publish_mqtt

pytestmark = pytest.mark.integration


def hostile_item(now_ms: int) -> bytes:
    """The bytes hold the six characters \\ud800 (a JSON escape), exactly as a sender wrote them."""
    return b'{"sensor_id": "rp-x\\ud800", "metric": "pm2_5", "ts": %d, "value": 1}' % now_ms


def hostile_array(now_ms: int, neighbours: list[str]) -> bytes:
    items = [hostile_item(now_ms)] + [orjson.dumps({"sensor_id": s, "metric": "pm2_5", "ts": now_ms, "value": 7.5})
                                      for s in neighbours]
    return b"[" + b", ".join(items) + b"]"


def marker(sensor: str) -> bytes:
    return orjson.dumps({"sensor_id": sensor, "metric": "pm2_5", "ts": int(time.time() * 1000), "value": 3.0})


def stored_sensors(dsn: str) -> set[str]:
    return {r["sensor_id"] for r in db_rows(dsn, "SELECT DISTINCT s.sensor_id FROM readings r "
                                                 "JOIN series s ON s.id = r.series_id")}


def test_a_lone_surrogate_array_item_is_quarantined_and_never_stops_a_source(
        fresh_db: str, mosquitto, kafka_bootstrap: str, tmp_path: Path) -> None:  # noqa: ANN001
    topic = f"hostile-{uuid.uuid4().hex[:8]}"
    create_topic(kafka_bootstrap, topic, partitions=1)
    config = {"database": {"dsn": fresh_db},
              "mqtt": {"enabled": True, "host": mosquitto.host, "port": mosquitto.port,
                       "client_id": f"urbanpulse-hostile-{uuid.uuid4().hex[:6]}", "topics": ["city/#"]},
              "kafka": {"enabled": True, "bootstrap_servers": kafka_bootstrap, "topics": [topic],
                        "group_id": f"hostile-{uuid.uuid4().hex[:6]}"}}
    now_ms = int(time.time() * 1000) - 60_000
    svc = ServiceProcess(config, tmp_path).start()
    restarted = ServiceProcess(config, tmp_path)
    try:
        publish_mqtt(mosquitto.host, mosquitto.port, "city/hostile/a", [hostile_array(now_ms, ["mq-left", "mq-right"])])
        produce_kafka(kafka_bootstrap, topic, [hostile_array(now_ms, ["kf-left", "kf-right"])])
        wait_until(lambda: db_value(fresh_db, "SELECT count(*) FROM quarantine") >= 2
                   and readings_count(fresh_db) >= 4, 60, what="the hostile arrays to be processed")
        rows = db_rows(fresh_db, "SELECT source, item, reason, payload, payload_size FROM quarantine ORDER BY source")
        assert [(r["source"], r["item"], r["reason"]) for r in rows] == [("kafka", 0, "bad_sensor_id"),
                                                                         ("mqtt", 0, "bad_sensor_id")]
        assert all(bytes(r["payload"]) == hostile_item(now_ms) for r in rows)  # as received, escape and all
        assert stored_sensors(fresh_db) == {"mq-left", "mq-right", "kf-left", "kf-right"}

        # both sources keep running: later messages are stored
        publish_mqtt(mosquitto.host, mosquitto.port, "city/hostile/b", [marker("mq-later")])
        produce_kafka(kafka_bootstrap, topic, [marker("kf-later")])
        wait_until(lambda: {"mq-later", "kf-later"} <= stored_sensors(fresh_db), 60, what="the later messages")
        health = svc.health()
        assert health.status_code == 200, health.text
        assert all(b["connected"] for b in health.json()["brokers"].values())
        assert svc.analytics_failed_batches() == 0
        assert svc.terminate() == 0
        assert "failed; the rest of the service keeps running" not in svc.log_tail(200_000)

        # while the service is down another hostile array waits in both brokers (the MQTT session
        # is persistent): the restarted service gets it first thing after connecting
        publish_mqtt(mosquitto.host, mosquitto.port, "city/hostile/c", [hostile_array(now_ms + 1, ["mq-queued"])])
        produce_kafka(kafka_bootstrap, topic, [hostile_array(now_ms + 1, ["kf-queued"])])
        restarted.start()
        wait_until(lambda: {"mq-queued", "kf-queued"} <= stored_sensors(fresh_db), 60,
                   what="the queued hostile arrays' neighbours")
        publish_mqtt(mosquitto.host, mosquitto.port, "city/hostile/d", [marker("mq-after-restart")])
        produce_kafka(kafka_bootstrap, topic, [marker("kf-after-restart")])
        wait_until(lambda: {"mq-after-restart", "kf-after-restart"} <= stored_sensors(fresh_db), 60,
                   what="messages after the restart")
        reasons = db_rows(fresh_db, "SELECT source, reason, count(*) AS n FROM quarantine GROUP BY 1, 2 ORDER BY 1")
        assert [(r["source"], r["reason"], r["n"]) for r in reasons] == [("kafka", "bad_sensor_id", 2),
                                                                         ("mqtt", "bad_sensor_id", 2)]
        assert readings_count(fresh_db) == 10
        assert restarted.health().status_code == 200
        assert restarted.analytics_failed_batches() == 0
        assert restarted.terminate() == 0
        assert "failed; the rest of the service keeps running" not in restarted.log_tail(200_000)
    finally:
        svc.stop_quietly()
        restarted.stop_quietly()
