"""A personal device's readings sent to the running service over a real broker (OwnTracks and
canonical JSON over MQTT) and over HTTP: its raw id and full-precision position are nowhere in
the database (every column of every table), the service log or /metrics; one pseudonym per
device within the rotation period; position-only fixes are stored; the quarantine is redacted."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from service_process import ServiceProcess, db_rows, wait_until
from services import publish_mqtt
from urbanpulse.privacy import Pseudonymiser

pytestmark = pytest.mark.integration

ANNA = "phone-anna.mueller@example.org"
LAT, LON = 52.5200123, 13.4049456
SECRETS = ["anna", "mueller", "example.org", "52.5200123", "13.4049456", "52.520012", "13.404945"]
KEY = b"e2e-pseudonym-key-" + b"0" * 16


def _scan_database(dsn: str, secrets: list[str] = SECRETS) -> list[str]:
    """Every row of every table in the database as text (bytea also as escaped text), with a secret."""
    tables = db_rows(dsn, """
        SELECT table_schema, table_name FROM information_schema.tables
        WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')""")
    assert len(tables) > 5
    found = []
    for t in tables:
        name = f'"{t["table_schema"]}"."{t["table_name"]}"'
        cols = db_rows(dsn, "SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_schema = $1 AND table_name = $2", t["table_schema"], t["table_name"])
        exprs = ["x::text"] + [f"encode(x.\"{c['column_name']}\", 'escape')" for c in cols if c["data_type"] == "bytea"]
        for expr in exprs:
            for s in secrets:
                n = db_rows(dsn, f"SELECT count(*) AS n FROM {name} x WHERE strpos(lower({expr}), $1) > 0", s)[0]["n"]
                if n:
                    found.append(f"{name}: {s!r} in {n} row(s) ({expr})")
    return found


def test_no_raw_personal_id_or_precise_position_anywhere(fresh_db: str, mosquitto, tmp_path: Path) -> None:  # noqa: ANN001
    key_file = tmp_path / "pseudonym.key"
    key_file.write_bytes(KEY)
    config = {
        "database": {"dsn": fresh_db},
        "mqtt": {"enabled": True, "host": mosquitto.host, "port": mosquitto.port,
                 "client_id": f"urbanpulse-privacy-{uuid.uuid4().hex[:6]}",
                 "topics": ["city/#", "phones/#"], "formats": {"owntracks/#": "owntracks"}},
        "formats": {"options": {"owntracks": {"position_metric": "position"}}},
        "privacy": {"topics": {"owntracks/#": "personal", "phones/#": "personal"}, "sources": {"http": "personal"},
                    "key_file": str(key_file)},
        "log_level": "DEBUG",
    }
    now_s = int(time.time()) - 60
    now_ms = now_s * 1000
    svc = ServiceProcess(config, tmp_path).start(timeout=120)
    try:
        owntracks = [
            {"_type": "location", "lat": LAT, "lon": LON, "tst": now_s, "batt": 80, "vel": 12, "tid": "am"},
            {"_type": "location", "lat": LAT, "lon": LON, "tst": now_s + 10, "tid": "am"},  # position only
            {"_type": "location", "lat": LAT, "lon": LON, "batt": 50, "tid": "am"},  # no tst: quarantined
        ]
        publish_mqtt(mosquitto.host, mosquitto.port, f"owntracks/{ANNA}/phone", [orjson.dumps(m) for m in owntracks])
        canonical = [
            {"sensor_id": ANNA, "metric": "speed", "ts": now_ms + k * 1000, "value": 10.0 + k, "lat": LAT, "lon": LON}
            for k in range(5)]
        canonical.append({"sensor_id": ANNA, "metric": "speed", "ts": now_ms + 9000, "value": None,
                          "lat": LAT, "lon": LON})  # a fix without a value
        canonical.append({"sensor_id": ANNA, "metric": "speed", "ts": now_ms + 9500, "value": 9999.0,
                          "lat": LAT, "lon": LON})  # out of range: quarantined
        bad = [b'{"sensor_id": "' + ANNA.encode() + b'", "lat": 52.5200123, broken',
               orjson.dumps({"sensor_id": ANNA, "metric": "flux", "ts": now_ms, "value": 1, "lat": LAT, "lon": LON})]
        publish_mqtt(mosquitto.host, mosquitto.port, f"phones/{ANNA}", [orjson.dumps(m) for m in canonical] + bad)
        # an open station next to it: stored as sent
        publish_mqtt(mosquitto.host, mosquitto.port, "city/open/station-1",
                     [orjson.dumps({"sensor_id": "station-1", "metric": "speed", "ts": now_ms, "value": 3.0,
                                    "lat": 48.1234567, "lon": 11.7654321})])
        r = httpx.post(svc.url + "/ingest", headers=svc.auth("ingest"), timeout=30, content=orjson.dumps(
            [{"sensor_id": ANNA, "metric": "speed", "ts": now_ms + 30_000, "value": 7.0, "lat": LAT, "lon": LON}]))
        assert r.status_code in (200, 201, 202), r.text

        counts: list[tuple[int, int]] = []

        def stored() -> bool:
            counts.append((db_rows(fresh_db, "SELECT count(*) AS n FROM readings")[0]["n"],
                           db_rows(fresh_db, "SELECT count(*) AS n FROM quarantine")[0]["n"]))
            return counts[-1][0] >= 12 and counts[-1][1] >= 4
        try:
            wait_until(stored, 60, what="readings and quarantine rows stored")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; readings, quarantine: {counts[-1]}\n{svc.log_tail()}") from None
        time.sleep(1.0)  # anything the service still writes about this batch (rollups, alerts)

        rows = db_rows(fresh_db, """SELECT s.sensor_id, s.metric, r.value, r.lat, r.lon FROM readings r
                                    JOIN series s ON s.id = r.series_id ORDER BY s.sensor_id, s.metric, r.ts""")
        pseudo = Pseudonymiser(KEY, "month")
        anna = pseudo.apply([ANNA], np.array([now_ms * 1000.0]))[0]
        anna_owntracks = pseudo.apply([f"{ANNA}/phone"], np.array([now_s * 1e6]))[0]
        if pseudo.label_of(now_ms * 1000.0) == pseudo.label_of((now_ms + 30_000) * 1000.0):
            by_sensor = {}
            for row in rows:
                by_sensor.setdefault(row["sensor_id"], []).append(row)
            # one device -> one pseudonym (MQTT and HTTP alike); the open station as sent
            assert set(by_sensor) == {anna, anna_owntracks, "station-1"}, set(by_sensor)
            assert sorted(r["metric"] for r in by_sensor[anna]) == ["position"] + ["speed"] * 6
            assert sorted(r["metric"] for r in by_sensor[anna_owntracks]) == \
                ["battery", "position", "position", "speed"]
        # series are recorded with the class of their topic/source (per-class retention selects by it)
        classes = {r["sensor_id"]: r["data_class"] for r in db_rows(
            fresh_db, "SELECT sensor_id, data_class FROM series_classes")}
        assert {c for s, c in classes.items() if s != "station-1"} == {"personal"} and classes["station-1"] == "open"
        personal = [r for r in rows if r["sensor_id"] != "station-1"]
        assert {(r["lat"], r["lon"]) for r in personal} == {(52.52, 13.405)}  # coarsened to 3 decimals
        assert [(r["lat"], r["lon"]) for r in rows if r["sensor_id"] == "station-1"] == [(48.1234567, 11.7654321)]
        q = db_rows(fresh_db, "SELECT reason, detail, topic, payload FROM quarantine ORDER BY id")
        assert {r["reason"] for r in q} >= {"out_of_range", "invalid_json", "unknown_metric", "missing_field"}, q
        assert all(r["payload"].startswith(b'{"redacted":true') for r in q)
        assert {r["topic"] for r in q} <= {"phones/#", "owntracks/#"}

        assert _scan_database(fresh_db) == []
        # the scan finds what is there: the open station's position, stored as sent
        assert any("48.1234567" in hit for hit in _scan_database(fresh_db, ["48.1234567"]))
        metrics = httpx.get(svc.url + "/metrics", timeout=10).text.lower()
        assert [s for s in SECRETS if s in metrics] == []
    finally:
        svc.stop_quietly()
    log = svc.log_path.read_text(errors="replace").lower()
    assert "storage mode" in log  # the log is there and captured
    assert [s for s in SECRETS if s in log] == []
    _subject_phase(svc, fresh_db, anna, tmp_path)


def _subject_phase(svc: ServiceProcess, dsn: str, anna: str, tmp_path: Path) -> None:
    """Export lists exactly what the database holds for the device; erase removes every row derived
    from it and nothing else; both are in the append-only audit table."""
    from urbanpulse.cli import main

    held = db_rows(dsn, "SELECT count(*) AS n FROM readings r JOIN series s ON s.id = r.series_id "
                        "WHERE s.sensor_id = $1", anna)[0]["n"]
    assert held == 7
    out = tmp_path / "anna.json"
    assert main(["subject", "export", "--device", ANNA, "--config", str(svc.config_path), "--output", str(out),
                 "--actor", "dpo@city"]) == 0
    doc = orjson.loads(out.read_bytes())
    assert len(doc["readings"]) == held and {r["sensor_id"] for r in doc["readings"]} == {anna}
    assert {r["reason"] for r in doc["quarantine"]} == {"out_of_range", "unknown_metric"}
    csv_out = tmp_path / "anna.csv"
    assert main(["subject", "export", "--device", ANNA, "--config", str(svc.config_path), "--format", "csv",
                 "--output", str(csv_out)]) == 0
    text = csv_out.read_text()
    assert "# readings" in text and text.count(anna) >= held
    others = db_rows(dsn, "SELECT count(*) AS n FROM readings")[0]["n"] - held
    rollups_other = db_rows(dsn, "SELECT count(*) AS n FROM rollup_1m r JOIN series s ON s.id = r.series_id "
                                 "WHERE s.sensor_id <> $1", anna)[0]["n"]
    assert db_rows(dsn, "SELECT count(*) AS n FROM rollup_1m r JOIN series s ON s.id = r.series_id "
                        "WHERE s.sensor_id = $1", anna)[0]["n"] > 0  # its rollups exist before the erasure
    assert main(["subject", "erase", "--device", ANNA, "--config", str(svc.config_path), "--actor", "dpo@city"]) == 0
    assert db_rows(dsn, "SELECT count(*) AS n FROM series WHERE sensor_id = $1", anna)[0]["n"] == 0
    assert db_rows(dsn, "SELECT count(*) AS n FROM readings")[0]["n"] == others
    assert db_rows(dsn, "SELECT count(*) AS n FROM rollup_1m r WHERE NOT EXISTS "
                        "(SELECT 1 FROM series s WHERE s.id = r.series_id)")[0]["n"] == 0
    assert db_rows(dsn, "SELECT count(*) AS n FROM rollup_1m")[0]["n"] == rollups_other
    assert db_rows(dsn, "SELECT count(*) AS n FROM quarantine WHERE position(convert_to($1, 'UTF8') IN payload) > 0",
                   anna)[0]["n"] == 0
    audit = db_rows(dsn, "SELECT actor, action, subject, rows FROM privacy_audit WHERE action LIKE 'subject_%' "
                         "ORDER BY id")
    # the service's retention runs are audited too (the default 90-day quarantine retention)
    assert db_rows(dsn, "SELECT count(*) AS n FROM privacy_audit WHERE action = 'retention_run'")[0]["n"] >= 1
    assert [(a["actor"], a["action"]) for a in audit][0] == ("dpo@city", "subject_export")
    assert audit[-1]["action"] == "subject_erase" and orjson.loads(audit[-1]["rows"])["readings"] == held
    assert all("anna" not in a["subject"] for a in audit)
    with pytest.raises(Exception, match="append-only"):
        db_rows(dsn, "DELETE FROM privacy_audit")
