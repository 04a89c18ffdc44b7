"""Every reason a CSV row is rejected for reaches the quarantine, the same way over MQTT, Kafka and HTTP.

payload45 (left alone): a CSV row with two rejected value columns is one item with one set of bytes as sent. Over
Kafka the quarantine's unique key (topic, partition, offset, item, payload digest) kept the first rejection and
dropped the second as a redelivery, so its reason was lost (``abc`` in one cell, ``1e5`` in the next: only
``bad_type`` stored); over MQTT and HTTP both rows were written, so the transports disagreed. Now (newcomer46) the
key holds the reason (migration 140) and rejections of one row for one reason are one row naming every cell
(``quality/same_part.py``): on every transport one row per (row, reason), and those rows are identical.

Hypothesis over CSV bodies (rows of three value columns, each cell good, not a number or out of range, some rows too
old) sent through ``urbanpulse run`` on a fresh PostgreSQL database over a private Mosquitto, Tansu and
``POST /ingest/csv``: per transport the rows are one per (row, reason) naming every cell, and the three transports'
rows are the same. Redeliveries under the new key are the existing tests' (test_mqtt_dup_redelivery.py,
test_quarantine_counted_once.py, test_hostile_broker_formats.py), which pass unchanged."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings, strategies as st

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOW_S = int(time.time()) - 600
COLUMNS = {"pm25": "pm2_5", "no2": "no2", "hum": "humidity"}
OPTIONS = {"csv": {"sensor_id": "sensor", "ts": "time", "time_format": "epoch_s", "values": COLUMNS}}
#: a cell and the reason it is rejected for (None: stored)
CELLS = {"12.5": None, "abc": "bad_type", "1e5": "out_of_range", "-3": "out_of_range", "x1": "bad_type"}
NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]


@st.composite
def csv_bodies(draw: st.DrawFn) -> tuple[str, dict[tuple[int, str], set[str]], int]:
    """(body with ``{S}`` for the sensor id, {(item, reason): metrics whose cells name it}, readings stored).
    The last row is good throughout: once it is stored, the message has been handled."""
    lines = ["sensor,time,pm25,no2,hum"]
    want: dict[tuple[int, str], set[str]] = {}
    good = 0
    n = draw(st.integers(1, 5))
    for j in range(1, n + 2):
        old = j <= n and draw(st.booleans())
        t = NOW_S - j - (30 * 86400 if old else 0)
        cells = [draw(st.sampled_from(sorted(CELLS))) if j <= n else "12.5" for _ in COLUMNS]
        for metric, cell in zip(COLUMNS.values(), cells):
            reason = CELLS[cell] or ("too_old" if old else None)
            if reason is None:
                good += 1
            else:
                want.setdefault((j, reason), set()).add(metric)
        lines.append(f"{{S}},{t}," + ",".join(cells))
    return "\n".join(lines) + "\n", want, good


def _rows(dsn: str, where: str, *args: object) -> list[tuple[int, str, str, bytes]]:
    from service_process import db_rows

    return sorted((r["item"], r["reason"], r["detail"], bytes(r["payload"])) for r in db_rows(
        dsn, f"SELECT item, reason, detail, payload FROM quarantine WHERE {where}", *args))


def _check(rows: list[tuple[int, str, str, bytes]], want: dict[tuple[int, str], set[str]], how: str) -> None:
    assert sorted((item, reason) for item, reason, _, _ in rows) == sorted(want), (how, rows)
    for item, reason, detail, _ in rows:
        if reason != "too_old":  # too_old's detail is about the row's time, not a cell
            for metric in want[(item, reason)]:
                assert f"{metric}=" in detail, (how, item, reason, metric, detail)


def test_every_reason_of_a_csv_row_is_a_row_on_every_transport(fresh_db: str, fresh_mosquitto,  # noqa: ANN001
                                                               kafka_bootstrap: str, tmp_path: Path) -> None:
    from service_process import ServiceProcess, db_value, wait_until
    from services import committed_offsets, create_topic, produce_kafka, run_sync

    run = uuid.uuid4().hex[:6]
    topic = f"nc46-{run}"
    create_topic(kafka_bootstrap, topic, partitions=1)
    group = f"nc46-{run}"
    m = fresh_mosquitto
    config = {"database": {"dsn": fresh_db}, "detection": {"enabled": False},
              "validation": {"max_age_s": 7 * 86400.0}, "formats": {"default": "csv", "options": OPTIONS},
              "mqtt": {"enabled": True, "host": m.host, "port": m.port, "client_id": f"up-nc46-{run}",
                       "topics": ["nc46/#"]},
              "kafka": {"enabled": True, "bootstrap_servers": kafka_bootstrap, "topics": [topic], "group_id": group}}
    svc = ServiceProcess(config, tmp_path).start()
    state = {"example": 0, "offset": 0}

    def stored(sensor: str) -> int:
        return int(db_value(fresh_db, "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id "
                                      "WHERE s.sensor_id = $1", sensor))

    try:
        import paho.mqtt.publish as publish

        @settings(max_examples=12, deadline=None, database=None, derandomize=True, phases=NO_SHRINK,
                  suppress_health_check=list(HealthCheck))
        @given(data=st.data())
        def check(data: st.DataObject) -> None:
            state["example"] += 1
            ex = state["example"]
            template, want, good = data.draw(csv_bodies(), label="csv")
            note(template)
            sensor = {how: f"s{run}e{ex}{how}" for how in ("mqtt", "kafka", "http")}
            body = {how: template.replace("{S}", s).encode() for how, s in sensor.items()}
            mqtt_topic = f"nc46/e{ex}"
            publish.single(mqtt_topic, body["mqtt"], qos=1, hostname=m.host, port=m.port)
            offset = state["offset"]
            produce_kafka(kafka_bootstrap, topic, [body["kafka"]])
            state["offset"] += 1
            r = httpx.post(svc.url + "/ingest/csv", content=body["http"],
                           headers={"Content-Type": "text/csv", **svc.auth("ingest")}, timeout=30)
            assert r.status_code < 500, r.text  # answered after commit
            wait_until(lambda: all(stored(s) == good for s in sensor.values()), 90,
                       what="the readings of every transport")

            def committed() -> bool:
                done = run_sync(committed_offsets(kafka_bootstrap, topic, group, 1)).get(0)
                return done is not None and done > offset

            wait_until(committed, 90, interval=0.5, what="the Kafka record committed")
            over = {"kafka": _rows(fresh_db, "source = 'kafka' AND topic = $1 AND kafka_offset = $2", topic, offset),
                    "mqtt": _rows(fresh_db, "source = 'mqtt' AND topic = $1", mqtt_topic),
                    "http": _rows(fresh_db, "source = 'http' AND payload = ANY($1::bytea[])",
                                  body["http"].splitlines()[1:])}
            for how, rows in over.items():
                _check(rows, want, how)
            # the same rows on every transport, detail and bytes as sent included (too_old's age may differ)
            same = {how: [(i, r, d.replace(sensor[how], "S") if r != "too_old" else "",
                           p.replace(sensor[how].encode(), b"S")) for i, r, d, p in rows] for how, rows in over.items()}
            assert same["mqtt"] == same["kafka"] == same["http"], same

        check()
        assert svc.metric("urbanpulse_source_restarts_total") == 0
        assert svc.terminate() == 0
        assert "Traceback" not in svc.log_tail(500_000)
    finally:
        svc.stop_quietly()
