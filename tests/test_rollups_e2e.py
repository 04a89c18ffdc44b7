"""Rollups end to end: rollup_1m / rollup_1h equal a numpy recomputation over the stored readings.

A real Beijing station slice (first station file, temperature, pressure and PM2.5, 300 clean
hours) goes through Kafka (one partition, so arrival order is production order) into
`urbanpulse run` (a subprocess on real PostgreSQL), in tiny batches so that readings of one
bucket land in different batch transactions. On top of the hourly readings:

* for some hours, extra readings inside the hour that arrive out of order but within the 60 s
  allowed lateness (h:00:40, h:00:10, h:01:30, h:00:45 right after h:00:00): stored, NOT flagged
  late, and counted in their (already closed) minute and in their hour;
* at the end, readings hours behind the watermark: stored WITH the LATE flag, and still in
  their old minute and hour.

Then the whole input is produced a second time (a redelivery with new offsets): nothing is
stored again and no rollup row changes.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from service_process import ServiceProcess, db_rows, readings_count, wait_until
from services import create_topic, produce_kafka
from urbanpulse.datasets.beijing import read_station, station_files

pytestmark = pytest.mark.integration

METRICS = ("temperature", "pressure", "pm2_5")
HOURS = 300
MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000
LATE_FLAG = 1
#: within-lateness extras per chosen hour: (seconds after the hour, value offset), in arrival order.
#: Watermark after each: 40, 40, 90, 90 s -> each trails it by at most 45 s (< 60 s allowed).
EXTRAS = ((40, 0.25), (10, -0.5), (90, 0.75), (45, 0.1))
EXTRA_METRICS = ("temperature", "pm2_5")
EXTRA_HOURS = tuple(range(5, HOURS, 10))
#: readings far behind the watermark, sent after the last hour: (hour index, seconds after the hour)
FAR_LATE = ((3, 30), (50, 30), (120, 20), (200, 50))
FAR_LATE_METRICS = ("temperature", "pressure")


class Replay:
    """The messages to produce, in order, and what must be stored."""

    def __init__(self) -> None:
        st = read_station(station_files()[0])
        ok = np.all([np.isfinite(st.values[m]) for m in METRICS], axis=0)
        start = next(i for i in range(0, len(st) - HOURS, 24) if ok[i:i + HOURS].all())
        self.sensor_id = st.sensor_id
        self.units = st.units
        self.ts_ms = st.ts_ms[start:start + HOURS]
        self.values = {m: st.values[m][start:start + HOURS] for m in METRICS}
        self.payloads: list[bytes] = []
        self.expected: set[tuple[str, int]] = set()  # (metric, ts_us) of every reading to be stored
        self.far_late: set[tuple[str, int]] = set()
        self.extra_hours: list[int] = []
        for i, t in enumerate(self.ts_ms.tolist()):
            self.payloads.append(orjson.dumps([self._reading(m, t, float(self.values[m][i])) for m in METRICS]))
            if i in EXTRA_HOURS:
                self.extra_hours.append(t * 1000)
                for sec, dv in EXTRAS:
                    for m in EXTRA_METRICS:
                        extra = self._reading(m, t + sec * 1000, float(self.values[m][i]) + dv)
                        self.payloads.append(orjson.dumps(extra))
        for i, sec in FAR_LATE:
            t = int(self.ts_ms[i])
            for m in FAR_LATE_METRICS:
                self.payloads.append(orjson.dumps(self._reading(m, t + sec * 1000, float(self.values[m][i]) + 0.05)))
                self.far_late.add((m, (t + sec * 1000) * 1000))

    def _reading(self, metric: str, ts_ms: int, value: float) -> dict[str, Any]:
        self.expected.add((metric, ts_ms * 1000))
        return {"sensor_id": self.sensor_id, "metric": metric, "ts": ts_ms, "value": value, "unit": self.units[metric]}


def stored_readings(dsn: str) -> dict[str, np.ndarray]:
    rows = db_rows(dsn, "SELECT r.series_id, s.metric, (extract(epoch FROM r.ts) * 1000000)::int8 AS ts_us, "
                        "r.value, r.flags FROM readings r JOIN series s ON s.id = r.series_id")
    return {"series_id": np.array([r["series_id"] for r in rows], np.int64),
            "metric": np.array([r["metric"] for r in rows], object),
            "ts_us": np.array([r["ts_us"] for r in rows], np.int64),
            "value": np.array([r["value"] for r in rows], np.float64),
            "flags": np.array([r["flags"] for r in rows], np.int64)}


def recompute(r: dict[str, np.ndarray], width_us: int) -> dict[tuple[int, int], dict[str, float]]:
    """Batch recomputation per (series_id, bucket) with numpy, straight from the readings."""
    bucket = r["ts_us"] - r["ts_us"] % width_us
    order = np.lexsort((r["ts_us"], bucket, r["series_id"]))
    sid, b, ts, v = r["series_id"][order], bucket[order], r["ts_us"][order], r["value"][order]
    new = np.ones(len(sid), bool)
    new[1:] = (sid[1:] != sid[:-1]) | (b[1:] != b[:-1])
    bounds = np.append(np.flatnonzero(new), len(sid))
    out = {}
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        x = v[lo:hi]
        out[(int(sid[lo]), int(b[lo]))] = {
            "count": hi - lo, "mean": float(np.mean(x)), "min": float(np.min(x)), "max": float(np.max(x)),
            "std": float(np.std(x, ddof=1)) if hi - lo > 1 else float("nan"),
            "first": float(x[0]), "last": float(x[-1]), "first_ts": int(ts[lo]), "last_ts": int(ts[hi - 1])}
    return out


def stored_rollups(dsn: str, view: str) -> dict[tuple[int, int], dict[str, float]]:
    us = "(extract(epoch FROM {}) * 1000000)::int8"
    rows = db_rows(dsn, f"SELECT series_id, {us.format('bucket')} AS bucket, count, mean, std, min, max, first, last, "
                        f"{us.format('first_ts')} AS first_ts, {us.format('last_ts')} AS last_ts FROM {view}")
    out = {}
    for row in rows:
        d = dict(row)
        d["std"] = float("nan") if d["std"] is None else d["std"]
        out[(d.pop("series_id"), d.pop("bucket"))] = d
    return out


def rollup_total(dsn: str) -> int:
    """Readings counted in rollup_1h (every level is kept here)."""
    return int(db_rows(dsn, "SELECT coalesce(sum(count), 0) AS n FROM rollup_1h")[0]["n"])


def raw_rollups(dsn: str, table: str) -> list[tuple]:
    return [tuple(r) for r in db_rows(dsn, f"SELECT * FROM {table} ORDER BY series_id, bucket")]


def assert_rollups_equal(stored: dict, expected: dict, name: str) -> None:
    assert set(stored) == set(expected), (
        f"{name}: buckets only stored {sorted(set(stored) - set(expected))[:5]}, "
        f"only recomputed {sorted(set(expected) - set(stored))[:5]}")
    keys = sorted(expected)
    for col in ("count", "first_ts", "last_ts"):
        got = [stored[k][col] for k in keys]
        want = [expected[k][col] for k in keys]
        bad = [(k, g, w) for k, g, w in zip(keys, got, want) if g != w]
        assert not bad, f"{name}.{col}: {len(bad)} buckets differ, first {bad[:3]}"
    for col in ("mean", "min", "max", "std", "first", "last"):
        np.testing.assert_allclose([stored[k][col] for k in keys], [expected[k][col] for k in keys],
                                   rtol=1e-9, atol=0, equal_nan=True, err_msg=f"{name}.{col}")
    # NaN std exactly where the bucket holds a single reading (NULL in the view)
    assert all(np.isnan(stored[k]["std"]) == (expected[k]["count"] == 1) for k in keys), name


def test_rollups_equal_a_numpy_recomputation_with_late_readings_and_survive_a_redelivery(
        fresh_db: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    data = Replay()
    total = len(data.expected)
    assert total == HOURS * len(METRICS) + len(EXTRA_HOURS) * len(EXTRAS) * len(EXTRA_METRICS) + \
        len(FAR_LATE) * len(FAR_LATE_METRICS)
    topic = f"rollups-{uuid.uuid4().hex[:8]}"
    create_topic(kafka_bootstrap, topic, partitions=1)
    # every level for every series (min_readings_per_bucket 1): this test checks each level's
    # arithmetic; which levels a series keeps is tests/test_rollup_levels.py's
    config = {"database": {"dsn": fresh_db, "rollups": {"min_readings_per_bucket": 1}}, "log_level": "INFO",
              "validation": {"max_age_s": None},
              # tiny batches: a bucket's readings (and a late reading's bucket) span many transactions
              "ingest": {"batch_max_readings": 5},
              "kafka": {"enabled": True, "bootstrap_servers": kafka_bootstrap, "topics": [topic], "max_records": 5,
                        "group_id": f"rollups-{uuid.uuid4().hex[:8]}", "session_timeout_ms": 6000,
                        "heartbeat_interval_ms": 500}}
    svc = ServiceProcess(config, tmp_path).start()
    try:
        produce_kafka(kafka_bootstrap, topic, data.payloads)
        wait_until(lambda: readings_count(fresh_db) >= total, 180, what="every reading to be stored")
        # rollups are merged from memory (database.rollups.flush_every_s): shortly after the COMMIT
        wait_until(lambda: rollup_total(fresh_db) >= total, 30, what="the rollups of every reading to be merged")
        r = stored_readings(fresh_db)
        assert len(r["ts_us"]) == total
        assert set(zip(r["metric"].tolist(), r["ts_us"].tolist())) == data.expected
        assert not db_rows(fresh_db, "SELECT reason FROM quarantine")

        # LATE flag: exactly the readings hours behind the watermark; not the within-lateness ones
        late = {(m, t) for m, t, f in zip(r["metric"].tolist(), r["ts_us"].tolist(), r["flags"].tolist())
                if f & LATE_FLAG}
        assert late == data.far_late
        within = {(m, h + sec * 1_000_000) for h in data.extra_hours for sec, _ in EXTRAS for m in EXTRA_METRICS}
        assert within <= data.expected and not within & late

        # rollups == batch recomputation over the stored readings
        minute, hour = recompute(r, MINUTE_US), recompute(r, HOUR_US)
        assert_rollups_equal(stored_rollups(fresh_db, "rollup_1m_stats"), minute, "rollup_1m")
        assert_rollups_equal(stored_rollups(fresh_db, "rollup_1h_stats"), hour, "rollup_1h")

        # spot checks of what the late readings did to their buckets (independent of recompute())
        sid = {m: int(s) for m, s in zip(r["metric"].tolist(), r["series_id"].tolist())}
        i = EXTRA_HOURS[0]
        h_us = data.extra_hours[0]
        v = float(data.values["temperature"][i])
        m1 = stored_rollups(fresh_db, "rollup_1m_stats")
        first_min = m1[(sid["temperature"], h_us)]
        assert first_min["count"] == 4  # h:00:00, :10, :40, :45 (arrived :40, :10, :45)
        assert first_min["first"] == v and first_min["last"] == v + 0.1
        assert first_min["min"] == v - 0.5 and first_min["max"] == v + 0.25
        second_min = m1[(sid["temperature"], h_us + MINUTE_US)]
        assert second_min["count"] == 1 and np.isnan(second_min["std"]) and second_min["mean"] == v + 0.75
        h1 = stored_rollups(fresh_db, "rollup_1h_stats")
        assert h1[(sid["temperature"], h_us)]["count"] == 1 + len(EXTRAS)
        assert h1[(sid["pressure"], h_us)]["count"] == 1
        for m, t in data.far_late:
            hb = t - t % HOUR_US
            assert h1[(sid[m], hb)]["count"] == 2 and m1[(sid[m], hb)]["count"] == 2

        # redelivery of the whole input: nothing stored twice, no rollup row changes
        before_1m, before_1h = raw_rollups(fresh_db, "rollup_1m"), raw_rollups(fresh_db, "rollup_1h")
        dup0 = svc.metric("urbanpulse_readings_duplicate_total", source="kafka")
        produce_kafka(kafka_bootstrap, topic, data.payloads)
        wait_until(lambda: svc.metric("urbanpulse_readings_duplicate_total", source="kafka") >= dup0 + total, 180,
                   what="the redelivered readings to be recognised as duplicates")
        assert svc.metric("urbanpulse_readings_duplicate_total", source="kafka") == dup0 + total
        assert readings_count(fresh_db) == total
        assert raw_rollups(fresh_db, "rollup_1m") == before_1m
        assert raw_rollups(fresh_db, "rollup_1h") == before_1h
        r2 = stored_readings(fresh_db)
        assert sorted(zip(r2["metric"].tolist(), r2["ts_us"].tolist(), r2["flags"].tolist())) == \
            sorted(zip(r["metric"].tolist(), r["ts_us"].tolist(), r["flags"].tolist()))
        assert_rollups_equal(stored_rollups(fresh_db, "rollup_1m_stats"), recompute(r2, MINUTE_US), "rollup_1m")
        assert_rollups_equal(stored_rollups(fresh_db, "rollup_1h_stats"), recompute(r2, HOUR_US), "rollup_1h")
        assert svc.analytics_failed_batches() == 0
        assert svc.terminate() == 0, svc.log_tail()
    finally:
        svc.stop_quietly()
