"""`urbanpulse detect` on a shared dataset file scores exactly what the live pipeline scored.

A real Beijing station (first station file, temperature and CO, the first 3,000 hours: CO has
hundreds of `NA` hours in there, including multi-day outages, so the silence detector scores
too) is replayed through Kafka (one partition, time order) into `urbanpulse run`, a subprocess
on real PostgreSQL, configured with small batches and `detection.score_log`. After SIGTERM
flushes the log, the same series is written as `timestamp,value` CSVs (NA hours as empty values)
and `urbanpulse detect` runs on them as a subprocess. Every live score must equal the CLI score
of the same timestamp bit for bit (floats compared with ==), alert decisions too.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from service_process import ServiceProcess, db_value, readings_count, wait_until
from services import create_topic, produce_kafka
from urbanpulse.datasets.beijing import read_station, station_files

pytestmark = pytest.mark.integration

URBANPULSE = Path(sys.executable).parent / "urbanpulse"
METRICS = ("temperature", "co")
HOURS = 3000


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).isoformat()


def _write_series_csv(path: Path, ts_ms: np.ndarray, values: np.ndarray) -> None:
    """`timestamp,value`, ISO 8601 UTC times, NA as an empty value, floats as repr (exact)."""
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["timestamp", "value"])
        for t, v in zip(ts_ms.tolist(), values.tolist()):
            w.writerow([_iso(t), "" if v != v else repr(v)])


def _read_live_log(path: Path) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["sensor_id", "metric", "ts_us", "value", "anomaly_score", "alert"]
        for row in reader:
            out.setdefault((row["sensor_id"], row["metric"]), []).append(
                {"ts_us": int(row["ts_us"]), "value": float(row["value"]),
                 "score": float(row["anomaly_score"]), "alert": int(row["alert"])})
    return out


def test_detect_cli_scores_equal_the_live_pipeline_scores_bit_for_bit(
        fresh_db: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    st = read_station(station_files()[0])
    ts_ms = st.ts_ms[:HOURS]
    values = {m: st.values[m][:HOURS] for m in METRICS}
    n_valid = {m: int(np.isfinite(v).sum()) for m, v in values.items()}
    assert n_valid["co"] < HOURS - 100  # NA rows (outages) are exercised
    payloads = [orjson.dumps({"sensor_id": st.sensor_id, "metric": m, "ts": int(t), "unit": st.units[m],
                              "value": None if values[m][i] != values[m][i] else float(values[m][i])})
                for i, t in enumerate(ts_ms.tolist()) for m in METRICS]

    topic = f"detect-live-{uuid.uuid4().hex[:8]}"
    create_topic(kafka_bootstrap, topic, partitions=1)
    score_log = tmp_path / "live" / "scores.csv"
    config = {"database": {"dsn": fresh_db}, "log_level": "INFO",
              "validation": {"max_age_s": None},
              "ingest": {"batch_max_readings": 500},
              # a batch is cut between polls, so small polls too (one poll of 10,000 is one batch)
              "kafka": {"enabled": True, "bootstrap_servers": kafka_bootstrap, "topics": [topic], "max_records": 100,
                        "group_id": f"detect-live-{uuid.uuid4().hex[:8]}", "session_timeout_ms": 6000,
                        "heartbeat_interval_ms": 500},
              "detection": {"score_log": str(score_log)}}
    svc = ServiceProcess(config, tmp_path).start()
    try:
        produce_kafka(kafka_bootstrap, topic, payloads)
        total_valid = sum(n_valid.values())
        wait_until(lambda: readings_count(fresh_db) >= total_valid, 180, what="the valid readings to be stored")
        n_missing = HOURS * len(METRICS) - total_valid
        wait_until(lambda: db_value(fresh_db, "SELECT count(*) FROM quarantine WHERE reason = 'missing_value'")
                   >= n_missing, 60, what="the NA readings to be quarantined")
        assert readings_count(fresh_db) == total_valid
        batches = svc.metric("urbanpulse_batch_write_seconds_count")
        assert svc.analytics_failed_batches() == 0
        assert svc.terminate() == 0, svc.log_tail()
    finally:
        svc.stop_quietly()
    # the live run was cut into many batches (unlike the CLI, which scores in 20,000-row chunks)
    assert batches >= total_valid / 500

    live = _read_live_log(score_log)
    assert set(live) == {(st.sensor_id, m) for m in METRICS}

    nonzero = 0
    for m in METRICS:
        src = tmp_path / "history" / f"{st.sensor_id}.csv"  # stem = sensor id, as the service sees it
        src.parent.mkdir(exist_ok=True)
        _write_series_csv(src, ts_ms, values[m])
        out = tmp_path / "scored" / f"{st.sensor_id}-{m}.csv"
        r = subprocess.run([str(URBANPULSE), "detect", "--input", str(src), "--metric", m, "--output", str(out)],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        with out.open(newline="") as f:
            cli = list(csv.DictReader(f))
        assert len(cli) == HOURS
        assert [row["timestamp"] for row in cli] == [_iso(t) for t in ts_ms.tolist()]
        cli_by_us = {int(t) * 1000: row for t, row in zip(ts_ms.tolist(), cli)}

        rows = live[(st.sensor_id, m)]
        live_ts = [r["ts_us"] for r in rows]
        # every stored (non-NA) reading scored exactly once, in time order, nothing else
        assert len(rows) == n_valid[m]
        assert len(set(live_ts)) == len(live_ts) and live_ts == sorted(live_ts)
        valid_us = {int(t) * 1000 for t, v in zip(ts_ms.tolist(), values[m].tolist()) if v == v}
        assert set(live_ts) == valid_us

        mismatches = []
        for r in rows:
            c = cli_by_us[r["ts_us"]]
            assert float(c["value"]) == r["value"]
            if not (float(c["anomaly_score"]) == r["score"] and int(c["alert"]) == r["alert"]):
                mismatches.append((_iso(r["ts_us"] // 1000), r["score"], r["alert"], c["anomaly_score"], c["alert"]))
        assert not mismatches, f"{m}: {len(mismatches)} live/CLI differences, first: {mismatches[:5]}"
        # NA rows are kept by the CLI with score 0, no alert
        for t, v in zip(ts_ms.tolist(), values[m].tolist()):
            if v != v:
                c = cli_by_us[int(t) * 1000]
                assert c["value"] == "" and float(c["anomaly_score"]) == 0.0 and c["alert"] == "0"
        nonzero += sum(1 for r in rows if r["score"] > 0)
    # the comparison is not vacuous: the detectors did fire on this real data
    assert nonzero >= 10, nonzero
