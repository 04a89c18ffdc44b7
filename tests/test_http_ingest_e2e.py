"""HTTP ingest (POST /ingest, /ingest/{format}) into the real service (`urbanpulse run`) on real PostgreSQL.

- every format over HTTP: the 200 comes after commit (the readings are in the database the
  moment the answer arrives, no waiting), stored exactly once, a resend stores nothing, a
  malformed message is quarantined with its reason and its position in the answer;
- POST /ingest picks the format by Content-Type (JSON array, NDJSON, gzip, CBOR, line protocol);
  vendor webhooks: The Things Stack, ChirpStack `?event=up` (other events ignored),
  Sensor.Community with its X-Sensor header and the key as the Basic password;
- no key / a wrong key 401, a key without the ingest role 403, body limits 413 (also for a
  gzip bomb), 400 / 415 / 404, and none of those store anything;
- the database connection is cut at the moment the request's batch is written: the client gets
  no 2xx and nothing is stored; once the database is back the resend is stored exactly once;
- 8 clients post while every backend of the service keeps being killed (pg_terminate_backend):
  every 200 is stored, and the rest sent again is stored once.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import cbor2
import httpx
import pytest

from format_fixtures import MALFORMED as BAD
from service_process import ServiceProcess, db_rows, db_value, readings_count
from tcp_proxy import CuttingProxy
from urbanpulse.testing.samples import SAMPLE_OPTIONS, SAMPLES, sample

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FORMATS = sorted(SAMPLES)
CONTENT_TYPE = {"senml_cbor": "application/cbor", "influx_line": "text/plain", "csv": "text/csv"}


def _config(dsn: str, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"database": {"dsn": dsn}, "validation": {"max_age_s": 7 * 86400.0},
                              "formats": {"options": {"csv": SAMPLE_OPTIONS["csv"]}},
                              "detection": {"enabled": False}}
    config.update(extra)
    return config


@pytest.fixture
def svc(fresh_db: str, tmp_path: Path):
    service = ServiceProcess(_config(fresh_db, api={"max_body_bytes": 256 * 1024},
                                     http_ingest={"max_decompressed_bytes": 1024 * 1024}), tmp_path).start()
    try:
        yield service
    finally:
        service.stop_quietly()


def _count(dsn: str, sensor: str) -> int:
    return int(db_value(dsn, "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id "
                             "WHERE s.sensor_id = $1", sensor))


def _post(svc: ServiceProcess, path: str, body: bytes, content_type: str = "application/json",
          role: str = "ingest", **headers: str) -> httpx.Response:
    h = {"Content-Type": content_type, **svc.auth(role), **headers}
    return httpx.post(svc.url + path, content=body, headers=h, timeout=30)


def _with_time(fmt: str, payload: bytes, t0: float) -> bytes:
    """Sensor.Community pushes carry no time (the receive time is used): give the sample one, as
    gateways do, so a resend is the same reading."""
    if fmt != "sensor_community":
        return payload
    doc = json.loads(payload)
    doc["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0))
    return json.dumps(doc).encode()


def test_each_format_over_http_stored_once_resend_nothing_bad_quarantined(svc: ServiceProcess, fresh_db: str):
    run = uuid.uuid4().hex[:6]
    t0 = time.time() - 60
    total = 0
    for fmt in FORMATS:
        sensor = f"{fmt.replace('_', '-')}-http-{run}"
        payload, n = sample(fmt, sensor, t0, 10)
        payload = _with_time(fmt, payload, t0)
        stored_as = f"esp8266-{sensor}" if fmt == "sensor_community" else sensor
        ctype = CONTENT_TYPE.get(fmt, "application/json")
        for attempt in ("first", "resend"):
            r = _post(svc, f"/ingest/{fmt}", payload, ctype)
            assert r.status_code == 200, (fmt, attempt, r.text)
            answer = r.json()
            assert answer["format"] == fmt and answer["stored"] == n and answer["rejected"] == [], (fmt, answer)
            # the answer came after the commit: the readings are there now, exactly once
            assert _count(fresh_db, stored_as) == n, (fmt, attempt)
        total += n
    assert readings_count(fresh_db) == total
    assert db_rows(fresh_db, "SELECT reason FROM quarantine") == []

    for fmt in FORMATS:
        payload, reason = BAD[fmt]
        r = _post(svc, f"/ingest/{fmt}", payload, CONTENT_TYPE.get(fmt, "application/json"))
        assert r.status_code == 200, (fmt, r.text)
        answer = r.json()
        assert answer["stored"] == 0 and [x["reason"] for x in answer["rejected"]] == [reason], (fmt, answer)
        assert answer["rejected"][0]["index"] == 0
        rows = db_rows(fresh_db, "SELECT source, reason, payload FROM quarantine WHERE topic = $1", f"http/{fmt}")
        assert [(x["source"], x["reason"], bytes(x["payload"])) for x in rows] == [("http", reason, payload)], fmt
    assert readings_count(fresh_db) == total


def test_ingest_by_content_type_and_vendor_webhooks(svc: ServiceProcess, fresh_db: str):
    run = uuid.uuid4().hex[:6]
    now_ms = int(time.time() * 1000) - 60_000
    # a JSON array: each reading's index in the answer is its array position
    items = [{"sensor_id": f"arr-{run}", "metric": "pm2_5", "ts": now_ms + k, "value": 10.0 + k} for k in range(5)]
    items[2]["value"] = -50.0
    items[4] = {"sensor_id": f"arr-{run}", "metric": "pm2_5"}
    r = _post(svc, "/ingest", json.dumps(items).encode())
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["format"] == "json" and a["messages"] == 5 and a["stored"] == 3
    assert sorted((x["index"], x["reason"]) for x in a["rejected"]) == [(2, "out_of_range"), (4, "missing_field")]
    assert _count(fresh_db, f"arr-{run}") == 3

    # NDJSON, gzip-compressed: index = line
    lines = [json.dumps({"sensor_id": f"nd-{run}", "metric": "pm2_5", "ts": now_ms + k, "value": 5.0}) for k in range(4)]
    lines.insert(1, "not json")
    body = gzip.compress(("\n".join(lines) + "\n").encode())
    r = _post(svc, "/ingest", body, "application/x-ndjson", **{"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["stored"] == 4 and [(x["index"], x["reason"]) for x in a["rejected"]] == [(1, "invalid_json")]
    assert _count(fresh_db, f"nd-{run}") == 4

    # line protocol by text/plain, SenML CBOR by application/cbor
    t0 = time.time() - 60
    payload, n = sample("influx_line", f"lp-{run}", t0, 10)
    r = _post(svc, "/ingest", b"# a comment\n" + payload, "text/plain; charset=utf-8")
    assert r.status_code == 200 and r.json()["format"] == "influx_line" and r.json()["stored"] == n, r.text
    assert _count(fresh_db, f"lp-{run}") == n
    payload, n = sample("senml_cbor", f"cb-{run}", t0, 6)
    r = _post(svc, "/ingest", payload, "application/senml+cbor")
    assert r.status_code == 200 and r.json()["format"] == "senml_cbor" and r.json()["stored"] == n, r.text
    assert cbor2.loads(payload)  # it was CBOR indeed

    # The Things Stack webhook (short name), ChirpStack ?event=up and other events
    payload, n = sample("ttn_v3", f"tts-{run}", t0)
    r = _post(svc, "/ingest/ttn", payload)
    assert r.status_code == 200 and r.json()["stored"] == n, r.text
    payload, n = sample("chirpstack_v4", f"cs-{run}", t0)
    r = _post(svc, "/ingest/chirpstack?event=join", payload)
    assert r.status_code == 200 and r.json()["stored"] == 0 and r.json()["ignored"] == "event join", r.text
    assert _count(fresh_db, f"cs-{run}") == 0
    r = _post(svc, "/ingest/chirpstack?event=up", payload)
    assert r.status_code == 200 and r.json()["stored"] == n, r.text
    assert _count(fresh_db, f"cs-{run}") == n

    # Sensor.Community firmware: Basic credentials (the key as password) and its X-Sensor header
    payload, n = sample("sensor_community", f"{run}", t0)
    basic = base64.b64encode(f"station:{svc.key('ingest')}".encode()).decode()
    r = httpx.post(svc.url + "/ingest/sensor_community", content=payload, timeout=30,
                   headers={"Content-Type": "application/json", "Authorization": f"Basic {basic}",
                            "X-Sensor": f"esp8266-{run}", "X-PIN": "1"})
    assert r.status_code == 200 and r.json()["stored"] == n, r.text
    assert _count(fresh_db, f"esp8266-{run}") == n
    bad = _post(svc, "/ingest/sensor_community", b'{"esp8266id": "1", "sensordatavalues": 5}',
                **{"X-Sensor": f"esp8266-{run}"})
    assert bad.status_code == 200 and bad.json()["rejected"][0]["reason"] == "missing_field"
    assert db_value(fresh_db, "SELECT count(*) FROM quarantine WHERE topic = $1",
                    f"http/sensor_community/esp8266-{run}") == 1


def test_keys_and_limits(svc: ServiceProcess, fresh_db: str):
    run = uuid.uuid4().hex[:6]
    reading = json.dumps({"sensor_id": f"k-{run}", "metric": "pm2_5", "ts": int(time.time() * 1000) - 1000,
                          "value": 3.0}).encode()
    url = svc.url + "/ingest"
    ct = {"Content-Type": "application/json"}
    assert httpx.post(url, content=reading, headers=ct).status_code == 401
    assert httpx.post(url, content=reading, headers={**ct, "Authorization": "Bearer upk_0000000000_nope"}
                      ).status_code == 401
    assert httpx.post(url, content=reading, headers={**ct, "Authorization": "Basic " + base64.b64encode(
        b"x:upk_0123456789_wrongsecretwrongsecret").decode()}).status_code == 401
    for role in ("viewer", "operator"):
        r = _post(svc, "/ingest", reading, role=role)
        assert r.status_code == 403 and r.json()["error"] == "insufficient_role", (role, r.text)
    assert _count(fresh_db, f"k-{run}") == 0

    big = b"[" + b",".join([reading] * 4000) + b"]"  # > api.max_body_bytes (256 KiB)
    r = _post(svc, "/ingest", big)
    assert r.status_code == 413, r.status_code
    bomb = gzip.compress(b"[" + b" " * (4 * 1024 * 1024) + b"]")  # small on the wire, 4 MiB inflated
    assert len(bomb) < 256 * 1024
    r = _post(svc, "/ingest", bomb, **{"Content-Encoding": "gzip"})
    assert r.status_code == 413 and "inflates" in r.json()["detail"], r.text
    r = _post(svc, "/ingest", b"\x1f\x8b not gzip", **{"Content-Encoding": "gzip"})
    assert r.status_code == 400, r.text
    r = _post(svc, "/ingest", reading, **{"Content-Encoding": "br"})
    assert r.status_code == 415, r.text
    r = _post(svc, "/ingest", reading, "application/xml")
    assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type", r.text
    r = _post(svc, "/ingest/no-such-format", reading)
    assert r.status_code == 404 and "ttn" in r.json()["detail"], r.text
    assert _count(fresh_db, f"k-{run}") == 0
    assert _post(svc, "/ingest", reading).status_code == 200
    assert _count(fresh_db, f"k-{run}") == 1


def test_no_2xx_when_the_database_connection_dies_mid_request(fresh_db: str, pg_dsn: str, tmp_path: Path):
    target = httpx.URL(fresh_db)
    proxy = CuttingProxy(target.host, target.port or 5432)
    proxied = fresh_db.replace(f"{target.host}:{target.port}", f"127.0.0.1:{proxy.port}")
    assert proxied != fresh_db
    svc = ServiceProcess(_config(proxied, http_ingest={"ack_timeout_s": 3.0},
                                 ingest={"retry_initial_s": 0.2, "retry_max_s": 0.5}), tmp_path).start()
    try:
        run = uuid.uuid4().hex[:6]
        now_ms = int(time.time() * 1000) - 60_000
        sensor = f"cut-{run}"
        batch = json.dumps([{"sensor_id": sensor, "metric": "pm2_5", "ts": now_ms + k, "value": 1.0 + k}
                            for k in range(1000)]).encode()
        key = svc.key("ingest")

        proxy.cut_on(b"COPY ")  # the moment the batch's COPY goes to PostgreSQL, every connection dies
        answers: list[httpx.Response | Exception] = []

        def send() -> None:
            try:
                answers.append(httpx.post(svc.url + "/ingest", content=batch, timeout=30,
                                          headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"}))
            except httpx.HTTPError as exc:
                answers.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        assert proxy.cut.wait(20), "the service never started writing the batch"
        sender.join(30)
        assert len(answers) == 1
        answer = answers[0]
        assert isinstance(answer, Exception) or not answer.is_success, answer.text  # type: ignore[union-attr]
        assert isinstance(answer, httpx.Response) and answer.status_code == 503, answer
        assert _count(fresh_db, sensor) == 0, "the client got no 2xx, and indeed nothing was stored"

        proxy.restore()  # the database is back: the resend is stored, once (the held batch merges into it)
        deadline = time.monotonic() + 60
        while True:
            r = httpx.post(svc.url + "/ingest", content=batch, timeout=30,
                           headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert r.status_code == 200 and r.json()["stored"] == 1000, r.text
        assert _count(fresh_db, sensor) == 1000
        assert svc.terminate() == 0
        assert _count(fresh_db, sensor) == 1000
    finally:
        svc.stop_quietly()
        proxy.close()


def test_every_2xx_is_stored_while_the_services_connections_keep_being_killed(fresh_db: str, tmp_path: Path):
    """8 clients post while a killer terminates every backend of the service (pg_terminate_backend)
    again and again: whatever got a 200 is in the database, whatever did not may or may not be,
    and sending the failed ones again stores each reading once."""
    svc = ServiceProcess(_config(fresh_db, http_ingest={"ack_timeout_s": 2.0},
                                 ingest={"retry_initial_s": 0.1, "retry_max_s": 0.5}), tmp_path).start()
    try:
        run = uuid.uuid4().hex[:6]
        now_ms = int(time.time() * 1000) - 60_000
        key = svc.key("ingest")
        bodies = {f"chaos-{run}-{i}": json.dumps([{"sensor_id": f"chaos-{run}-{i}", "metric": "pm2_5",
                                                  "ts": now_ms + k, "value": 1.0} for k in range(200)]).encode()
                  for i in range(40)}
        stop = threading.Event()
        kills = [0]

        def killer() -> None:
            while not stop.is_set():
                kills[0] += int(db_value(fresh_db, "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM "
                                                   "pg_stat_activity WHERE datname = current_database() AND "
                                                   "pid <> pg_backend_pid() AND backend_type = 'client backend') t"))
                time.sleep(0.15)

        answers: dict[str, int] = {}

        def client(names: list[str]) -> None:
            with httpx.Client(base_url=svc.url, timeout=30,
                              headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"}) as c:
                for name in names:
                    try:
                        answers[name] = c.post("/ingest", content=bodies[name]).status_code
                    except httpx.HTTPError:
                        answers[name] = 0

        names = sorted(bodies)
        k = threading.Thread(target=killer)
        k.start()
        clients = [threading.Thread(target=client, args=(names[i::8],)) for i in range(8)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(120)
        stop.set()
        k.join(10)
        assert kills[0] > 0, "the killer never found a connection of the service"
        ok = [n for n, status in answers.items() if status == 200]
        assert len(answers) == len(bodies)
        for name in ok:  # a 200 means stored: at the moment of the answer, and for good
            assert _count(fresh_db, name) == 200, name
        for name in names:  # the rest, sent again with the database left alone, is stored once
            if answers[name] != 200:
                r = httpx.post(svc.url + "/ingest", content=bodies[name], timeout=60,
                               headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
                assert r.status_code == 200, r.text
        assert readings_count(fresh_db) == 200 * len(bodies)
    finally:
        svc.stop_quietly()
