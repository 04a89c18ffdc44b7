"""A Kafka broker that goes away is visible: with the broker killed while `urbanpulse run` runs,
/health turns 503 with the reason within the session timeout, and 200 again once the broker is
back; the Kafka client's connection errors are summarised per back-off step, so the log stays
small however long the outage lasts."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import pytest

from service_process import ServiceProcess, readings_count, wait_until
from services import create_topic, produce_kafka, start_tansu
from test_delivery_e2e import readings, service_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SESSION_TIMEOUT_MS = 6000
OUTAGE_S = 20


def test_a_killed_kafka_broker_turns_health_503_within_the_session_timeout_and_the_log_stays_small(
        fresh_db: str, tmp_path: Path) -> None:
    broker = start_tansu(tmp_path / "tansu")
    port = int(broker.bootstrap.rsplit(":", 1)[1])
    topic = f"outage-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, topic, partitions=1)
    config = service_config(fresh_db, None, broker.bootstrap, topic)
    config["kafka"].update(session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=1000)
    svc = ServiceProcess(config, tmp_path).start()
    try:
        produce_kafka(broker.bootstrap, topic, readings("pre", 100))
        wait_until(lambda: readings_count(fresh_db) >= 100, 60, what="readings before the outage")
        assert svc.health().status_code == 200

        log_before = svc.log_path.stat().st_size
        broker.proc.send_signal(signal.SIGKILL)
        broker.proc.wait(10)
        killed = time.monotonic()
        wait_until(lambda: svc.health().status_code == 503, SESSION_TIMEOUT_MS / 1000, interval=0.1,
                   what="/health to turn 503 within the session timeout")
        body = svc.health().json()["brokers"]["kafka"]
        assert body["connected"] is False
        assert "unreachable" in body["last_error"] and broker.bootstrap in body["last_error"]

        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - killed)))  # the outage goes on: what does it log?
        assert svc.health().status_code == 503
        outage_log = svc.log_path.read_bytes()[log_before:].decode(errors="replace")
        lines = outage_log.splitlines()
        # unthrottled, aiokafka logs ~60 errors a second: 1,200 lines in 20 s. Summarised per
        # back-off step (1, 2, 4, 8 s ...) per kind of message, a handful.
        assert len(lines) < 60, f"{len(lines)} log lines in a {OUTAGE_S} s outage:\n" + "\n".join(lines[-40:])
        assert "more time(s)" in outage_log, "repeated errors must be summarised with a count"

        broker = start_tansu(tmp_path / "tansu", port=port)  # memory storage: the topic is gone
        create_topic(broker.bootstrap, topic, partitions=1)
        wait_until(lambda: svc.health().status_code == 200, 60, what="/health to be 200 once the broker is back")
        produce_kafka(broker.bootstrap, topic, readings("post", 100))
        wait_until(lambda: readings_count(fresh_db) >= 200, 90, what="readings after the broker came back")
        assert svc.terminate() == 0
    finally:
        svc.stop_quietly()
        broker.stop()
