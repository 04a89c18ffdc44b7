"""Alerts end to end: a real Beijing station slice with injected faults goes through Kafka into
`urbanpulse run` (a subprocess on real PostgreSQL); the alerts appear on GET /alerts and on the
SSE stream, exactly one per fault; ack/resolve work; a second spike updates the open alert;
repeated spikes make a flapping alert; a SIGKILL mid-stream neither loses nor duplicates
alerts or rollups."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from faults import FLAT_METRIC, GAP_METRIC, SPIKE_METRIC, faulty_slice
from service_process import ServiceProcess, db_rows, db_value, flush_with_markers, readings_count, wait_until
from services import create_topic, produce_kafka

pytestmark = pytest.mark.integration


class SseRecorder(threading.Thread):
    """Collects (id, event, data) from GET /alerts/stream, optionally resuming after an id."""

    def __init__(self, svc: ServiceProcess, last_event_id: int | None = None) -> None:
        super().__init__(daemon=True)
        self.url = svc.url + "/alerts/stream"
        self.headers = svc.auth("viewer") | ({} if last_event_id is None else {"Last-Event-ID": str(last_event_id)})
        self.events: list[dict[str, Any]] = []
        self.connected = threading.Event()
        self.stop_event = threading.Event()

    def run(self) -> None:
        try:
            self._read()
        except httpx.HTTPError:
            if not self.stop_event.is_set():
                raise

    def _read(self) -> None:
        with httpx.Client(timeout=httpx.Timeout(5, read=None)) as client, \
                client.stream("GET", self.url, headers=self.headers) as r:
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith("text/event-stream")
            self.connected.set()
            current: dict[str, Any] = {}
            for line in r.iter_lines():
                if self.stop_event.is_set():
                    return
                if line.startswith("id:"):
                    current["id"] = int(line[3:].strip())
                elif line.startswith("event:"):
                    current["event"] = line[6:].strip()
                elif line.startswith("data:"):
                    current["data"] = json.loads(line[5:].strip())
                elif line == "" and "data" in current:
                    self.events.append(current)
                    current = {}

    def of_alert(self, alert_id: int) -> list[dict[str, Any]]:
        return [e for e in self.events if e["data"]["alert_id"] == alert_id]


def service_config(dsn: str, bootstrap: str, topic: str, **alerts: Any) -> dict[str, Any]:
    # every rollup level for every series: assert_rollups_match_readings checks them all
    return {"database": {"dsn": dsn, "rollups": {"min_readings_per_bucket": 1}}, "log_level": "INFO",
            "validation": {"max_age_s": None},
            "kafka": {"enabled": True, "bootstrap_servers": bootstrap, "topics": [topic],
                      "group_id": f"alerts-{uuid.uuid4().hex[:8]}", "session_timeout_ms": 6000,
                      "heartbeat_interval_ms": 500},
            "alerts": dict(alerts)}


def alerts(svc: ServiceProcess, **params: Any) -> list[dict[str, Any]]:
    r = httpx.get(svc.url + "/alerts", params=params, timeout=10, headers=svc.auth("viewer"))
    assert r.status_code == 200, r.text
    return r.json()["items"]


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = f"alerts-{uuid.uuid4().hex[:8]}"
    create_topic(kafka_bootstrap, name, partitions=1)
    return name


def test_injected_spike_flatline_and_gap_raise_exactly_one_alert_each_on_the_api_and_sse(
        fresh_db: str, kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    data = faulty_slice()
    payloads = data.payloads()
    expected_readings = sum(int(k.sum()) for k in data.keep.values())
    svc = ServiceProcess(service_config(fresh_db, kafka_bootstrap, topic), tmp_path).start()
    sse = SseRecorder(svc)
    try:
        sse.start()
        assert sse.connected.wait(10)
        produce_kafka(kafka_bootstrap, topic, payloads)
        wait_until(lambda: readings_count(fresh_db) >= expected_readings, 120, what="the slice to be stored")
        wait_until(lambda: len(alerts(svc)) >= 3, 30, what="three alerts")
        # a marker behind the slice (at its last event time: no watermark moves): once it is
        # stored, every batch before it committed with its alert changes
        flush_with_markers(fresh_db, int(data.ts_ms[-1]), kafka=(kafka_bootstrap, topic, 1))

        found = alerts(svc, sensor=data.sensor_id)
        by = {(a["metric"], a["detector"]) for a in found}
        assert len(found) == 3, [(a["metric"], a["detector"], a["opened_at"]) for a in found]
        assert by == {(SPIKE_METRIC, "spike"), (FLAT_METRIC, "flatline"), (GAP_METRIC, "silence")}
        spike = alerts(svc, detector="spike")[0]
        flat = alerts(svc, detector="flatline")[0]
        silence = alerts(svc, detector="silence")[0]

        # the second spike updated the open alert instead of opening another one
        assert spike["state"] == "open" and spike["trigger_count"] == 2
        spiked_at = [int(data.ts_ms[i]) for i in data.injected["spike"]]
        assert [_ms(t["ts"]) for t in spike["triggers"]] == spiked_at
        assert spike["triggers"][0]["value"] == pytest.approx(float(data.values[SPIKE_METRIC][data.injected["spike"][0]]))
        # the flatline and the gap are over: auto-resolved after normal windows
        assert flat["state"] == "resolved" and flat["resolved_by"] == "auto"
        assert silence["state"] == "resolved"
        g0 = data.injected["silence"][0]
        # opened during the gap (by the clock) or by the first reading after it (replay is fast)
        assert int(data.ts_ms[g0 - 1]) <= _ms(silence["opened_at"]) <= int(data.ts_ms[g0 + 6])

        # the SSE stream carried each alert's opening, in id order
        wait_until(lambda: {e["data"]["alert_id"] for e in sse.events if e["event"] == "opened"} >=
                   {spike["id"], flat["id"], silence["id"]}, 15, what="SSE opened events")
        ids = [e["id"] for e in sse.events]
        assert ids == sorted(ids) and len(ids) == len(set(ids))
        spike_events = sse.of_alert(spike["id"])
        assert spike_events[0]["event"] == "opened"  # updates in the same batch fold into it
        assert {e["event"] for e in spike_events} <= {"opened", "updated"}
        assert spike_events[-1]["data"]["alert"]["trigger_count"] == 2
        assert "resolved" in [e["event"] for e in sse.of_alert(flat["id"])]

        # operator actions: ack then resolve; both show on the stream
        r = httpx.post(f"{svc.url}/alerts/{spike['id']}/ack", json={"by": "ops-anna", "note": "checking"},
                       headers=svc.auth())
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "acknowledged" and r.json()["acknowledged_by"] == "ops-anna"
        r = httpx.post(f"{svc.url}/alerts/{spike['id']}/resolve", json={"by": "ops-anna"}, headers=svc.auth())
        assert r.status_code == 200 and r.json()["state"] == "resolved" and r.json()["resolved_by"] == "ops-anna"
        wait_until(lambda: [e["event"] for e in sse.of_alert(spike["id"])][-2:] == ["acknowledged", "resolved"],
                   10, what="ack and resolve events on the stream")
        # a resolved alert cannot be acknowledged
        r = httpx.post(f"{svc.url}/alerts/{spike['id']}/ack", headers=svc.auth())
        assert r.status_code == 409 and "resolved" in r.json()["detail"]
        assert httpx.get(f"{svc.url}/alerts/{spike['id']}", headers=svc.auth()).json()["state"] == "resolved"

        # resuming the stream after the first event replays the rest, exactly
        first = sse.events[0]["id"]
        resumed = SseRecorder(svc, last_event_id=first)
        resumed.start()
        wait_until(lambda: len(resumed.events) >= len(sse.events) - 1, 15, what="the resumed stream to catch up")
        assert [e["id"] for e in resumed.events] == [e["id"] for e in sse.events[1:]]
        resumed.stop_event.set()

        # stored once each; nothing else was raised
        assert db_value(fresh_db, "SELECT count(*) FROM alerts") == 3
        # operators see it on /metrics too
        assert svc.metric("urbanpulse_alert_events_total", kind="opened") == 3
        assert svc.metric("urbanpulse_series_in_memory") == 3 + 1  # the slice's three and the flush marker
        assert 0 < svc.metric("urbanpulse_series_state_bytes") < 10_000
        assert svc.metric("urbanpulse_alerts_open") == 0  # the spike alert was resolved by the operator
        assert svc.analytics_failed_batches() == 0
    finally:
        sse.stop_event.set()
        svc.stop_quietly()


def test_bad_alert_requests_get_4xx_with_a_message(fresh_db: str, kafka_bootstrap: str, topic: str,
                                                     tmp_path: Path) -> None:
    svc = ServiceProcess(service_config(fresh_db, kafka_bootstrap, topic), tmp_path).start()
    try:
        cases = [
            ("GET", "/alerts/999999", 404, "999999"),
            ("GET", "/alerts/abc", 422, "abc"),
            ("POST", "/alerts/999999/ack", 404, "999999"),
            ("POST", "/alerts/999999/resolve", 404, "999999"),
            ("GET", "/alerts?state=sleeping", 422, "state"),
            ("GET", "/alerts?severity=huge", 422, "severity"),
            ("GET", "/alerts?detector=crystal_ball", 422, "detector"),
            ("GET", "/alerts?since=yesterday", 422, "since"),
            ("GET", "/alerts?limit=0", 422, "limit"),
            ("GET", "/alerts?limit=100000", 422, "limit"),
            ("GET", "/alerts?cursor=not-a-cursor", 422, "cursor"),
            ("GET", "/alerts?flapping=maybe", 422, "flapping"),
        ]
        for method, path, status, needle in cases:
            r = httpx.request(method, svc.url + path, timeout=10, headers=svc.auth())
            assert r.status_code == status, (path, r.status_code, r.text)
            detail = r.json()["detail"]
            assert needle in str(detail), (path, detail)
        r = httpx.get(svc.url + "/alerts/stream", headers={"Last-Event-ID": "x"} | svc.auth(), timeout=10)
        assert r.status_code == 422
        # without a key, or with a key whose role is too small, nothing is read or changed
        r = httpx.get(svc.url + "/alerts", timeout=10)
        assert r.status_code == 401 and r.json()["error"] == "missing_key" and "Bearer" in r.json()["detail"]
        r = httpx.post(svc.url + "/alerts/999999/ack", timeout=10, headers=svc.auth("viewer"))
        assert r.status_code == 403 and r.json()["error"] == "insufficient_role", r.text
        assert svc.key("viewer") not in svc.log_tail(10**7) and svc.key() not in svc.log_tail(10**7)
    finally:
        svc.stop_quietly()


def test_repeated_spikes_make_one_flapping_alert_not_an_alert_storm(
        fresh_db: str, kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    """A sensor that spikes every 5 hours: each spike auto-resolves after 3 normal hourly windows
    and re-fires; within the flap window it re-opens the same alert, which becomes flapping."""
    base_ms = 1_483_228_800_000  # 2017-01-01
    hours = 24 * 8
    rng = np.random.default_rng(7)
    values = 10 + 3 * np.sin(np.arange(hours) * 2 * np.pi / 24) + rng.normal(0, 0.2, hours)
    spikes = list(range(96, hours, 5))[:8]
    values[spikes] += 20
    payloads = [orjson.dumps({"sensor_id": "flappy-1", "metric": "temperature", "ts": base_ms + h * 3_600_000,
                              "value": float(values[h])}) for h in range(hours)]
    svc = ServiceProcess(service_config(fresh_db, kafka_bootstrap, topic, flap_window="P1D", flap_threshold=3),
                         tmp_path).start()
    try:
        produce_kafka(kafka_bootstrap, topic, payloads)
        wait_until(lambda: readings_count(fresh_db) >= hours, 60, what="the readings")
        wait_until(lambda: alerts(svc, sensor="flappy-1", detector="spike") and
                   alerts(svc, sensor="flappy-1", detector="spike")[0]["reopen_count"] >= 3, 30,
                   what="the spike alert to be re-opened three times")
        found = alerts(svc, sensor="flappy-1", detector="spike")
        assert len(found) == 1, found  # re-opened, not re-created
        a = found[0]
        assert a["flapping"] is True and a["reopen_count"] == len(spikes) - 1
        assert a["trigger_count"] == len(spikes)
        assert alerts(svc, flapping="true")[0]["id"] == a["id"]
        kinds = [r["kind"] for r in db_rows(fresh_db, "SELECT kind FROM alert_events WHERE alert_id = $1 ORDER BY id",
                                             a["id"])]
        assert kinds.count("reopened") == len(spikes) - 1 and "flapping" in kinds
        assert svc.analytics_failed_batches() == 0
    finally:
        svc.stop_quietly()


def _ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def test_sigkill_mid_stream_neither_loses_nor_duplicates_alerts_or_rollups(
        fresh_db: str, kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    data = faulty_slice(hours=1500)
    expected_readings = sum(int(k.sum()) for k in data.keep.values())
    config = service_config(fresh_db, kafka_bootstrap, topic)
    config["ingest"] = {"batch_max_readings": 30, "batch_max_ms": 20, "max_in_flight_batches": 4}
    payloads = data.payloads()
    first = ServiceProcess(config, tmp_path).start()
    # produced in chunks while the service runs (and while it is dead), so the kill lands mid-stream
    producer = threading.Thread(target=lambda: [produce_kafka(kafka_bootstrap, topic, payloads[i:i + 100])
                                                for i in range(0, len(payloads), 100)], daemon=True)
    producer.start()
    try:
        wait_until(lambda: readings_count(fresh_db) >= expected_readings * 0.5, 120, what="half of the slice stored")
        first.kill()
    finally:
        first.stop_quietly()
    at_kill = readings_count(fresh_db)
    assert at_kill < expected_readings, "the kill came after everything was stored: the test proves nothing"

    second = ServiceProcess(config, tmp_path).start()  # same consumer group: resumes from the last commit
    try:
        producer.join(120)
        wait_until(lambda: readings_count(fresh_db) >= expected_readings, 120, what="the rest of the slice")
        wait_until(lambda: len(alerts(second)) >= 3, 30, what="three alerts")
        markers = flush_with_markers(fresh_db, int(data.ts_ms[-1]), kafka=(kafka_bootstrap, topic, 1))
        found = alerts(second)
        assert sorted((a["metric"], a["detector"]) for a in found) == sorted(
            [(SPIKE_METRIC, "spike"), (FLAT_METRIC, "flatline"), (GAP_METRIC, "silence")]), \
            [(a["metric"], a["detector"], a["opened_at"], a["triggers"]) for a in found]
        spike = next(a for a in found if a["detector"] == "spike")
        assert spike["trigger_count"] == 2 and spike["state"] == "open"
        opened = db_rows(fresh_db, "SELECT alert_id, count(*) AS n FROM alert_events WHERE kind = 'opened' "
                                   "GROUP BY alert_id")
        assert sorted(r["n"] for r in opened) == [1, 1, 1]
        assert readings_count(fresh_db) == expected_readings + markers
        assert second.analytics_failed_batches() == 0
        assert second.terminate() == 0
    finally:
        second.stop_quietly()
    assert_rollups_match_readings(fresh_db)


def assert_rollups_match_readings(dsn: str) -> None:
    """rollup_1m and rollup_1h equal a recomputation over every stored reading."""
    rows = db_rows(dsn, "SELECT series_id, (extract(epoch FROM ts) * 1000000)::int8 AS ts_us, value FROM readings "
                        "ORDER BY series_id, ts")
    sid = np.array([r["series_id"] for r in rows], np.int64)
    ts = np.array([r["ts_us"] for r in rows], np.int64)
    val = np.array([r["value"] for r in rows], np.float64)
    for table, bucket_us in (("rollup_1m_stats", 60_000_000), ("rollup_1h_stats", 3_600_000_000)):
        expected = _recompute(sid, ts, val, bucket_us)
        got = {(r["series_id"], r["bucket_us"]): r for r in db_rows(dsn, f"""
            SELECT series_id, (extract(epoch FROM bucket) * 1000000)::int8 AS bucket_us, count, mean, min, max, std,
                   (extract(epoch FROM first_ts) * 1000000)::int8 AS first_ts_us, first,
                   (extract(epoch FROM last_ts) * 1000000)::int8 AS last_ts_us, last FROM {table}""")}
        assert set(got) == set(expected), table
        for key, (n, mean, lo, hi, std, first, last) in expected.items():
            r = got[key]
            assert r["count"] == n, (table, key)
            assert r["mean"] == pytest.approx(mean, rel=1e-9, abs=1e-9)
            assert (r["min"], r["max"], r["first"], r["last"]) == (lo, hi, first, last)
            if n > 1:
                assert r["std"] == pytest.approx(std, rel=1e-9, abs=1e-9)


def _recompute(sid: np.ndarray, ts: np.ndarray, val: np.ndarray, bucket_us: int) -> dict:
    out = {}
    bucket = ts // bucket_us * bucket_us
    keys = np.stack([sid, bucket], axis=1)
    uniq, start = np.unique(keys, axis=0, return_index=True)
    ends = list(start[1:]) + [len(sid)]
    for (s, b), i, j in zip(uniq.tolist(), start.tolist(), ends):
        v = val[i:j]
        out[(s, b)] = (len(v), float(v.mean()), float(v.min()), float(v.max()),
                       float(v.std(ddof=1)) if len(v) > 1 else float("nan"), float(v[0]), float(v[-1]))
    return out
