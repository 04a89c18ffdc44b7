"""MQTT retained messages and repeated deliveries are stored once (probe33).

A retained reading is delivered again at every subscribe, so at every restart of the service;
a publisher that retries (QoS 1 DUP) sends the same reading again. Storage must be idempotent:
the reading is in ``readings`` once, nothing of it in quarantine, and the source goes on.
Runs a private Mosquitto (a retained message on the shared broker would reach other tests).
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from service_process import ServiceProcess, db_value, wait_until
from services import publish_mqtt
from test_delivery_e2e import service_config

pytestmark = pytest.mark.integration


def test_a_retained_reading_redelivered_at_each_restart_and_republished_is_stored_once(
        fresh_db: str, fresh_mosquitto, tmp_path: Path) -> None:  # noqa: ANN001
    ts = int(time.time() * 1000) - 3600 * 1000
    retained = orjson.dumps({"sensor_id": "retained-1", "metric": "temperature", "ts": ts, "value": 21.5})
    m = fresh_mosquitto
    assert publish_mqtt(m.host, m.port, "city/probe33/retained", [retained], qos=1, retain=True) == 1
    config = service_config(fresh_db, m, None, None)
    try:
        for restart in range(3):
            svc = ServiceProcess(config, tmp_path).start()
            try:
                # the same reading again, as a retrying publisher would, then a marker behind it
                marker = orjson.dumps({"sensor_id": f"marker-{restart}", "metric": "temperature",
                                       "ts": ts, "value": 1.0})
                publish_mqtt(m.host, m.port, "city/probe33/retained", [retained], qos=1)
                publish_mqtt(m.host, m.port, "city/probe33/retained", [marker], qos=1)
                wait_until(lambda: db_value(fresh_db, "SELECT count(*) FROM readings WHERE value = 1.0")
                           == restart + 1, 60, what=f"marker {restart} stored")
                assert db_value(fresh_db, "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id "
                                          "WHERE s.sensor_id = 'retained-1'") == 1, f"restart {restart}"
                assert db_value(fresh_db, "SELECT count(*) FROM quarantine") == 0
                assert svc.terminate() == 0
            finally:
                svc.stop_quietly()
    finally:  # clear the retained message
        publish_mqtt(m.host, m.port, "city/probe33/retained", [b""], qos=1, retain=True)
