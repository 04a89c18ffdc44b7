"""A whole source going quiet is one incident, through the running service (issue 11 item 4).

`urbanpulse run` (a subprocess on real PostgreSQL) reads a private Mosquitto; a publisher sends
the readings of several sensors every half second, all of them in one MQTT message (so the
service sees their last readings arrive together, as when a gateway or a broker link drops).
Then:
- one sensor with three metrics stops alone: three per-series silence alerts, no incident
  (``alerts.silence_group_min`` counts sensors, not series: one station's metrics count once);
- the remaining three sensors stop together: exactly one silence alert for the source
  (``sensor_id`` ``source:mqtt``), with their series as its triggers, and none of their own.

Silence is judged by the wall clock here (the live check during the gap), with a configured
expected interval; the test waits on conditions with deadlines, never on a speed.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest

from service_process import ServiceProcess, db_rows, wait_until

pytestmark = pytest.mark.integration

#: sensors that go quiet together (two metrics each), and one that goes quiet alone (three)
GROUP = {f"gw-{k}": ("temperature", "humidity") for k in (1, 2, 3)}
LONE = ("lone-1", ("temperature", "humidity", "pm2_5"))
PERIOD_S = 0.5
INTERVAL_S, FACTOR = 1.0, 5.0  # silent after 5 s without a reading: far above a publishing hiccup


class Publisher(threading.Thread):
    """Every ``PERIOD_S``, one MQTT message with a reading (ts = now) of every series of the
    sensors still in ``active``. One persistent paho connection, QoS 1."""

    def __init__(self, host: str, port: int, topic: str, sensors: dict[str, tuple[str, ...]]) -> None:
        super().__init__(daemon=True)
        self.topic = topic
        self.sensors = dict(sensors)
        self.active = set(sensors)
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.rounds = 0
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"up-test-silence-{uuid.uuid4().hex[:8]}", clean_session=True)
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()

    def quiet(self, *sensors: str) -> int:
        """Stop publishing for ``sensors``; returns the round count at that moment."""
        with self.lock:
            self.active -= set(sensors)
            return self.rounds

    def run(self) -> None:
        k = 0
        while not self.stop_event.is_set():
            now_ms = int(time.time() * 1000)
            with self.lock:
                items = [{"sensor_id": s, "metric": m, "ts": now_ms, "value": 20.0 + (k % 7) * 0.1 + j}
                         for s in sorted(self.active) for j, m in enumerate(self.sensors[s])]
                self.rounds += 1
            if items:
                self.client.publish(self.topic, orjson.dumps(items), qos=1).wait_for_publish(10)
            k += 1
            self.stop_event.wait(PERIOD_S)

    def close(self) -> None:
        self.stop_event.set()
        self.join(10)
        self.client.disconnect()
        self.client.loop_stop()


def service_config(dsn: str, host: str, port: int, topic_root: str) -> dict[str, Any]:
    return {"database": {"dsn": dsn}, "log_level": "INFO",
            "mqtt": {"enabled": True, "host": host, "port": port, "topics": [f"{topic_root}/#"],
                     "client_id": f"urbanpulse-test-{uuid.uuid4().hex[:8]}"},
            # 1 s windows, no lateness: the wall-clock silence check judges gaps at once
            "windows": {"size_s": 1, "allowed_lateness_s": 0, "evict_after_s": 600},
            "detection": {"defaults": {"silence": {"expected_interval_s": INTERVAL_S, "factor": FACTOR}}},
            "alerts": {"silence_group_min": 3}}


def silence_alerts(svc: ServiceProcess) -> list[dict[str, Any]]:
    r = httpx.get(svc.url + "/alerts", params={"detector": "silence", "limit": 100}, timeout=10,
                  headers=svc.auth("viewer"))
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_a_whole_source_going_quiet_is_one_incident_and_a_lone_sensor_keeps_its_own_alerts(
        fresh_db: str, mosquitto, tmp_path: Path) -> None:  # noqa: ANN001
    root = f"city/silence-{uuid.uuid4().hex[:8]}"
    svc = ServiceProcess(service_config(fresh_db, mosquitto.host, mosquitto.port, root), tmp_path).start()
    pub = Publisher(mosquitto.host, mosquitto.port, f"{root}/gateway", {**GROUP, LONE[0]: LONE[1]})
    try:
        pub.start()
        n_series = sum(len(m) for m in GROUP.values()) + len(LONE[1])
        wait_until(lambda: svc.metric("urbanpulse_readings_stored_total") >= 10 * n_series, 60,
                   what="ten rounds of readings stored")
        assert silence_alerts(svc) == [], "silence while every sensor was still publishing"

        # one sensor (three series) goes quiet while the others keep publishing
        pub.quiet(LONE[0])
        wait_until(lambda: len(silence_alerts(svc)) >= len(LONE[1]), 60,
                   what="the lone sensor's per-series silence alerts")
        lone = silence_alerts(svc)
        assert sorted((a["sensor_id"], a["metric"]) for a in lone) == sorted((LONE[0], m) for m in LONE[1]), lone
        assert all(a["series_id"] > 0 and a["state"] == "open" for a in lone)

        # the rest of the source goes quiet at once: one incident for the source
        pub.quiet(*GROUP)
        group_series = sum(len(m) for m in GROUP.values())

        def incident() -> dict[str, Any] | None:
            found = [a for a in silence_alerts(svc) if a["sensor_id"] == "source:mqtt"]
            return found[0] if found and found[0]["trigger_count"] >= group_series else None

        wait_until(incident, 60, what="the source's incident with a trigger per silent series")
        found = silence_alerts(svc)
        sources = [a for a in found if a["sensor_id"].startswith("source:")]
        assert len(sources) == 1, sources
        inc = sources[0]
        assert inc["metric"] == "*" and inc["series_id"] < 0 and inc["state"] == "open"
        assert inc["severity"] == "critical"
        # the group's sensors have no alerts of their own; the lone sensor's are still the three
        per_series = [a for a in found if a["series_id"] > 0]
        assert sorted(a["id"] for a in per_series) == sorted(a["id"] for a in lone), per_series
        assert not {a["sensor_id"] for a in per_series} & set(GROUP)

        # the stored events say the same: the incident opened once (no re-opens), no other opening
        opened = db_rows(fresh_db, "SELECT a.sensor_id, count(*) AS n FROM alert_events e "
                                   "JOIN alerts a ON a.id = e.alert_id WHERE e.kind IN ('opened', 'reopened') "
                                   "AND a.detector = 'silence' GROUP BY a.sensor_id")
        assert {r["sensor_id"]: r["n"] for r in opened} == {"source:mqtt": 1, LONE[0]: len(LONE[1])}
        assert svc.analytics_failed_batches() == 0
    finally:
        pub.close()
        svc.stop_quietly()
