"""The service rides out broker restarts and consumer-group rebalances without losing or
duplicating readings; /health and /metrics tell operators what is going on."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from service_process import ServiceProcess, flush_with_markers, readings_count, wait_until
from services import create_topic, produce_kafka, publish_mqtt
from test_delivery_e2e import BASE_MS, readings, service_config

pytestmark = pytest.mark.integration


def produce_over_partitions(bootstrap: str, topic: str, payloads: list[bytes], partitions: int) -> None:
    """Produce ``payloads`` round-robin over every partition, named explicitly: keyless records go
    where librdkafka's sticky partitioner puts them, which can be one worker's partitions only."""
    for p in range(partitions):
        produce_kafka(bootstrap, topic, payloads[p::partitions], partition=p)


def test_mqtt_broker_restart_reconnects_resubscribes_and_loses_nothing(
        fresh_db: str, fresh_mosquitto, tmp_path: Path) -> None:  # noqa: ANN001
    broker = fresh_mosquitto
    svc = ServiceProcess(service_config(fresh_db, broker, None, None), tmp_path).start()
    try:
        first, second = readings("before", 3_000), readings("after", 3_000)
        publish_mqtt(broker.host, broker.port, "city/a/b", first)
        wait_until(lambda: readings_count(fresh_db) >= 3_000, 60, what="readings before the restart")

        broker.restart()
        wait_until(lambda: svc.health().status_code == 200, 60, what="the service to reconnect and resubscribe")
        publish_mqtt(broker.host, broker.port, "city/a/b", second)
        wait_until(lambda: readings_count(fresh_db) >= 6_000, 60, what="readings after the restart")
        assert readings_count(fresh_db) == 6_000
        assert "MQTT disconnected" in svc.log_tail(20_000)
        assert svc.terminate() == 0
    finally:
        svc.stop_quietly()


def test_two_kafka_workers_in_one_group_split_partitions_and_store_each_reading_once(
        fresh_db: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = f"group-{uuid.uuid4().hex[:8]}"
    create_topic(kafka_bootstrap, topic, partitions=4)
    config = service_config(fresh_db, None, kafka_bootstrap, topic)
    config["kafka"].update(session_timeout_ms=6000, heartbeat_interval_ms=500)
    a = ServiceProcess(config, tmp_path).start()
    b = ServiceProcess(config, tmp_path)
    try:
        batch = readings("group", 12_000)
        produce_over_partitions(kafka_bootstrap, topic, batch[:4_000], 4)
        wait_until(lambda: readings_count(fresh_db) >= 4_000, 90, what="worker A to store the first part")

        b.start()  # joins the group: A drains and commits before its partitions move
        wait_until(lambda: b.health().json()["brokers"]["kafka"]["assigned"], 90,
                   what="worker B to be assigned partitions")
        produce_over_partitions(kafka_bootstrap, topic, batch[4_000:8_000], 4)
        wait_until(lambda: readings_count(fresh_db) >= 8_000, 90, what="both workers to store the second part")
        assert b.metric("urbanpulse_readings_received_total") > 0, "worker B never got any partition"

        assert a.terminate() == 0  # B takes over every partition from A's committed offsets
        produce_over_partitions(kafka_bootstrap, topic, batch[8_000:], 4)
        wait_until(lambda: readings_count(fresh_db) >= 12_000, 120, what="worker B to store the rest")
        markers = flush_with_markers(fresh_db, BASE_MS, kafka=(kafka_bootstrap, topic, 4))  # nothing more on its way
        assert readings_count(fresh_db) == 12_000 + markers
        assert b.analytics_failed_batches() == 0
        assert b.terminate() == 0
    finally:
        a.stop_quietly()
        b.stop_quietly()


def test_health_and_metrics_describe_storage_brokers_and_counters(
        fresh_db: str, mosquitto, kafka_bootstrap: str, tmp_path: Path) -> None:  # noqa: ANN001
    topic = f"health-{uuid.uuid4().hex[:8]}"
    create_topic(kafka_bootstrap, topic, partitions=1)
    svc = ServiceProcess(service_config(fresh_db, mosquitto, kafka_bootstrap, topic), tmp_path).start()
    try:
        produce_kafka(kafka_bootstrap, topic, [*readings("h", 10), b"not json"])
        wait_until(lambda: readings_count(fresh_db) >= 10, 60, what="10 readings")
        health = svc.health()
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "ok"
        assert body["storage_mode"] == "postgres"
        assert body["database"]["ok"] is True
        assert body["brokers"]["mqtt"]["connected"] is True
        assert body["brokers"]["kafka"]["connected"] is True
        wait_until(lambda: svc.metric("urbanpulse_readings_quarantined_total", reason="invalid_json") == 1, 30,
                   what="the invalid message to be counted")
        text = httpx.get(svc.url + "/metrics", timeout=5).text
        for name in ("urbanpulse_readings_received_total", "urbanpulse_readings_stored_total",
                     "urbanpulse_readings_quarantined_total", "urbanpulse_batch_write_seconds_bucket",
                     "urbanpulse_in_flight_batches", "urbanpulse_kafka_lag"):
            assert name in text, name
        assert svc.metric("urbanpulse_readings_stored_total", source="kafka") == 10
        assert svc.metric("urbanpulse_kafka_lag") == 0
        assert svc.analytics_failed_batches() == 0
    finally:
        svc.stop_quietly()


def test_health_is_503_with_the_reason_when_a_broker_is_unreachable(fresh_db: str, tmp_path: Path) -> None:
    from services import free_port

    config = {"database": {"dsn": fresh_db},
              "mqtt": {"enabled": True, "host": "127.0.0.1", "port": free_port(), "client_id": "nobody-home"}}
    svc = ServiceProcess(config, tmp_path).start(require_healthy=False)
    try:
        r = svc.health()
        assert r.status_code == 503
        assert r.json()["brokers"]["mqtt"]["connected"] is False
        assert r.json()["database"]["ok"] is True
    finally:
        svc.stop_quietly()


def test_demo_replays_real_data_into_an_embedded_database(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "urbanpulse.cli", "demo", "--stations", "2", "--hours", "500"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "embedded PostgreSQL" in out
    assert "received = stored + already stored + quarantined: yes" in out
    assert re.search(r"readings received\s+11,000", out), out
    assert (tmp_path / ".urbanpulse" / "pgdata").is_dir()
    again = subprocess.run([sys.executable, "-m", "urbanpulse.cli", "demo", "--stations", "2", "--hours", "500"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert re.search(r"\n\s+stored\s+0\n", again.stdout), again.stdout  # the second replay stores nothing twice
    assert re.search(r"already stored\s+10,", again.stdout), again.stdout
