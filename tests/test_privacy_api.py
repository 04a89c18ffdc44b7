"""The privacy API of a running service (issue 15 items 4 and 6): personal devices sent over HTTP,
then

* ``GET /open/personal-aggregates`` anonymously: the cell with k devices is shown, the one with
  k-1 is not (only counted);
* ``POST /admin/subjects/export``: admin key only; lists exactly what the database holds for the
  device (JSON and CSV);
* ``POST /admin/subjects/erase``: every row derived from the device is gone, every remaining
  rollup row equals a recomputation from the remaining readings, the open aggregate no longer
  counts the device; both requests are in privacy_audit with the calling key's id.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from service_process import ServiceProcess, db_rows, wait_until
from urbanpulse.privacy import Pseudonymiser
from urbanpulse.privacy.grid import geohash_of

pytestmark = pytest.mark.integration

KEY = b"api-pseudonym-key-" + b"1" * 16
BERLIN, MUNICH = (52.5200123, 13.4049456), (48.1371234, 11.5754321)
DEVICES = {f"phone-{n}@example.org": BERLIN for n in ("anna", "ben", "cem")} | {
    f"phone-{n}@example.org": MUNICH for n in ("dora", "emil")}
ANNA = "phone-anna@example.org"


def _aggregates(svc: ServiceProcess, start: datetime) -> dict:
    r = httpx.get(svc.url + "/open/personal-aggregates", timeout=30, params={
        "metric": "speed", "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(),
        "bucket": "1h", "geohash": 5})
    assert r.status_code == 200, r.text
    return r.json()


def test_open_aggregates_export_and_erasure_through_the_api(fresh_db: str, tmp_path: Path) -> None:
    key_file = tmp_path / "pseudonym.key"
    key_file.write_bytes(KEY)
    config = {"database": {"dsn": fresh_db}, "api": {"open_data": True},
              "privacy": {"sources": {"http": "personal"}, "key_file": str(key_file), "k_anonymity": 3,
                          "policies": {"personal": {"pseudonymise": True, "location_decimals": 3,
                                                    "quarantine_payload": "redact",
                                                    "retention": {"readings": "P20D", "quarantine": "P7D"}}}}}
    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    svc = ServiceProcess(config, tmp_path).start(timeout=120)
    try:
        readings = [{"sensor_id": dev, "metric": "speed", "ts": int((hour + timedelta(minutes=m, seconds=s)).timestamp() * 1000),
                     "value": 10.0 + m + s, "lat": pos[0], "lon": pos[1]}
                    for s, (dev, pos) in enumerate(DEVICES.items()) for m in (1, 2, 30)]
        r = httpx.post(svc.url + "/ingest", headers=svc.auth("ingest"), content=orjson.dumps(readings), timeout=30)
        assert r.status_code in (200, 201, 202), r.text
        wait_until(lambda: db_rows(fresh_db, "SELECT count(*) AS n FROM readings")[0]["n"] == len(readings), 60,
                   what="readings stored")
        wait_until(lambda: db_rows(fresh_db, "SELECT coalesce(sum(count), 0) AS n FROM rollup_1m")[0]["n"]
                   == len(readings), 30, what="rollups written")

        # per-class retention runs in the service: on /metrics and in the audit table
        wait_until(lambda: svc.metric("urbanpulse_retention_last_run_timestamp_seconds", outcome="done") > 0, 30,
                   what="a retention run")
        assert svc.metric("urbanpulse_retention_runs_total", outcome="done") >= 1
        assert db_rows(fresh_db, "SELECT count(*) AS n FROM privacy_audit WHERE action = 'retention_run' "
                                 "AND subject LIKE '%class:personal%'")[0]["n"] >= 1

        # -- open aggregates: Berlin has k = 3 devices (shown), Munich k-1 = 2 (suppressed)
        agg = _aggregates(svc, hour)
        assert [(c["geohash"], c["devices"], c["count"]) for c in agg["cells"]] == [(geohash_of(52.52, 13.405, 5), 3, 9)]
        assert agg["suppressed_cells"] == 1 and agg["k"] == 3
        anna = Pseudonymiser(KEY, "month").apply([ANNA], np.array([hour.timestamp() * 1e6]))[0]
        assert httpx.get(svc.url + "/readings", params={"sensor": anna, "start": hour.isoformat()},
                         timeout=30).status_code in (401, 404)  # the personal series itself is never open

        # -- export: admin only, exactly what the database holds
        body = {"device": ANNA, "since": (hour - timedelta(days=40)).isoformat()}
        assert httpx.post(svc.url + "/admin/subjects/export", json=body, timeout=30).status_code == 401
        assert httpx.post(svc.url + "/admin/subjects/export", json=body, headers=svc.auth("viewer"),
                          timeout=30).status_code == 403
        r = httpx.post(svc.url + "/admin/subjects/export", json=body, headers=svc.auth("admin"), timeout=30)
        assert r.status_code == 200, r.text
        doc = r.json()
        held = db_rows(fresh_db, "SELECT s.sensor_id, s.metric, r.ts, r.value, r.lat, r.lon FROM readings r "
                                 "JOIN series s ON s.id = r.series_id WHERE s.sensor_id = $1 ORDER BY r.ts", anna)
        assert [(x["sensor_id"], x["metric"], datetime.fromisoformat(x["ts"]), x["value"], x["lat"], x["lon"])
                for x in doc["readings"]] == [tuple(h) for h in held] and len(held) == 3
        assert [x["sensor_id"] for x in doc["series"]] == [anna]
        assert all(ANNA not in orjson.dumps(v).decode() for v in doc.values())
        csv = httpx.post(svc.url + "/admin/subjects/export", json=body | {"format": "csv"},
                         headers=svc.auth("admin"), timeout=30)
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        assert csv.text.count(anna) == 4  # its series row and its three readings

        # -- erasure
        own = {"sensor": anna, "start": (hour - timedelta(days=1)).isoformat()}
        r = httpx.get(svc.url + "/readings", params=own, headers=svc.auth("viewer"), timeout=30)
        assert r.status_code == 200 and len(r.json()["items"]) == 3  # (the service now caches this selection)
        others = db_rows(fresh_db, "SELECT count(*) AS n FROM readings")[0]["n"] - 3
        r = httpx.post(svc.url + "/admin/subjects/erase", json=body, headers=svc.auth("admin"), timeout=30)
        assert r.status_code == 200, r.text
        gone = httpx.get(svc.url + "/readings", params=own, headers=svc.auth("viewer"), timeout=30)
        assert gone.status_code == 404, gone.text  # at once: the erased series is not served from the cache
        assert r.json()["readings"] == 3 and r.json()["series"] == 1
        assert db_rows(fresh_db, "SELECT count(*) AS n FROM readings")[0]["n"] == others
        assert db_rows(fresh_db, "SELECT count(*) AS n FROM series WHERE sensor_id = $1", anna)[0]["n"] == 0
        for table, width in (("rollup_1m", "1 minute"), ("rollup_1h", "1 hour"), ("rollup_1d", "1 day")):
            stored = {(x["series_id"], x["bucket"]): (x["count"], x["min"], x["max"], round(x["mean"], 9))
                      for x in db_rows(fresh_db, f"SELECT series_id, bucket, count, min, max, mean FROM {table}")}
            recomputed = {(x["series_id"], x["bucket"]): (x["n"], x["lo"], x["hi"], round(x["mean"], 9))
                          for x in db_rows(fresh_db, f"""
                              SELECT series_id, date_bin('{width}', ts, '2000-01-01T00:00:00Z') AS bucket,
                                     count(*) AS n, min(value) AS lo, max(value) AS hi, avg(value) AS mean
                              FROM readings GROUP BY 1, 2""")}
            assert stored and stored == {k: v for k, v in recomputed.items() if k in stored}, table
            assert set(stored) <= set(recomputed)  # no rollup row of the erased device is left
        # the open aggregate is computed from what is left: Berlin now has k-1 devices
        agg = _aggregates(svc, hour)
        assert agg["cells"] == [] and agg["suppressed_cells"] == 2

        # -- both in the audit table, by the calling key's id; the subject never by its id
        admin_id = svc.key("admin").split("_")[1]
        audit = db_rows(fresh_db, "SELECT actor, action, subject FROM privacy_audit "
                                  "WHERE action LIKE 'subject_%' ORDER BY id")
        assert [a["action"] for a in audit] == ["subject_export", "subject_export", "subject_erase"]
        assert all(a["actor"].startswith(f"api-key:{admin_id} ") for a in audit)
        assert all("anna" not in a["subject"] for a in audit)
        time.sleep(0.2)
    finally:
        svc.stop_quietly()
    assert "anna" not in svc.log_path.read_text(errors="replace")
