"""Kafka records with a null value, a null key, and hostile headers (probe33).

A producer may send a tombstone (null value), no key, hundreds of headers, a header key that is
not UTF-8, a null header value, or one header of hundreds of KB. None of these is a reading's
business: the source must go on, every record must end stored or quarantined (a null value has
nothing to store: it must not stop or wedge the partition), and the group's offset must reach
the end only once all of it is durable. Produced raw (one batch each) against the real service,
PostgreSQL and Tansu, so the headers are exactly these bytes (aiokafka's producer only sends
``str`` header keys). A header key that is not UTF-8 costs nothing either: urbanpulse reads no
header, and its record's reading is stored (``hdr34``; before, its batch was quarantined whole).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from test_hostile_kafka_records import produce_raw, reading, record_batch, zigzag
from test_kafka_inflate_bound import gzip_batch

pytestmark = pytest.mark.integration


def record_h(key: bytes | None, value: bytes | None, headers: list[tuple[bytes, bytes | None]]) -> bytes:
    """One record with ``headers`` written as given (keys need not be UTF-8; a None value is null)."""
    def blob(b: bytes | None) -> bytes:
        return zigzag(-1) if b is None else zigzag(len(b)) + b
    hdrs = zigzag(len(headers)) + b"".join(zigzag(len(k)) + k + blob(v) for k, v in headers)
    body = b"\x00" + zigzag(0) + zigzag(0) + blob(key) + blob(value) + hdrs
    return zigzag(len(body)) + body


def test_null_values_null_keys_and_hostile_headers_neither_stop_nor_wedge_the_source(
        fresh_db: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    from service_process import ServiceProcess, db_value, wait_until
    from services import committed_offsets, create_topic

    topic, group = f"nullhdr-{uuid.uuid4().hex[:8]}", f"nullhdr-{uuid.uuid4().hex[:6]}"
    create_topic(kafka_bootstrap, topic)
    now = int(time.time() * 1000)
    cases = {  # name -> (key, value, headers); value None: nothing to store
        "good first": (b"k", reading("g0", now), []),
        "null value, null key": (None, None, []),
        "null value, a key": (b"sensor-1", None, [(b"h", b"v")]),
        "null key": (None, reading("g1", now), []),
        "300 headers": (b"k", reading("g2", now), [(b"h%d" % i, b"v" * 10) for i in range(300)]),
        "non-UTF-8 header key, null header value": (b"k", reading("g3", now), [(b"\xff\xfe\x00\xc3", None)]),
        "empty header key": (b"k", reading("g4", now), [(b"", b"")]),
        "one 400 KB header": (b"k", reading("g5", now), [(b"big", b"\x80" * 400_000)]),
        "gzip batch, non-UTF-8 header key": (b"k", reading("g7", now), [(b"\x80", b""), (b"h", b"v")]),
        "empty value": (b"k", b"", []),
        "good last": (None, reading("g6", now), []),
    }
    # one gzip batch: read again leniently after the bounded decoder inflated it, in a take that
    # must move the partition on (hdr35: hdr34's tests had that take defer for ever)
    batches = [gzip_batch([record_h(*c)], now) if name.startswith("gzip") else record_batch([record_h(*c)], ts_ms=now)
               for name, c in cases.items()]
    # a non-UTF-8 header key: aiokafka decodes header keys strictly and refuses it; urbanpulse reads
    # no header, so the batch is read again with header keys decoded leniently and its reading stored
    # (before hdr34 the batch was quarantined whole, malformed, reading included)
    good = sum(1 for k, v, h in cases.values() if v)
    svc = ServiceProcess({"database": {"dsn": fresh_db},
                          "kafka": {"enabled": True, "bootstrap_servers": kafka_bootstrap, "topics": [topic],
                                    "group_id": group}}, tmp_path).start()
    try:
        offsets = asyncio.run(produce_raw(kafka_bootstrap, topic, batches))
        assert offsets == list(range(len(batches)))

        def stored() -> int:
            assert svc.proc is not None and svc.proc.poll() is None, f"the service died ({svc.proc.returncode})"
            return int(db_value(fresh_db, "SELECT count(*) FROM readings"))

        wait_until(lambda: stored() == good, 90, what=f"the {good} readings among the hostile records")
        wait_until(lambda: asyncio.run(committed_offsets(kafka_bootstrap, topic, group, 1)) == {0: len(batches)}, 30,
                   what="the offsets committed past every record")
        # each record without a reading is accounted for: quarantined with a reason (or, for a
        # null/empty value, at least not stored twice); record what happened
        q = db_value(fresh_db, "SELECT coalesce(string_agg(reason || '@' || kafka_offset, ',' ORDER BY kafka_offset), '') "
                               "FROM quarantine")
        print("quarantine:", q)
        empties = [i for i, (k, v, h) in enumerate(cases.values()) if not v]
        assert q.split(",") == [f"empty_payload@{i}" for i in empties], q
        for sensor, name in (("g3", "non-UTF-8 header key, null header value"),
                             ("g7", "gzip batch, non-UTF-8 header key")):
            at = list(cases).index(name)
            assert db_value(fresh_db, "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id "
                                      "WHERE s.sensor_id = $1", sensor) == 1, \
                f"the reading of the record with the non-UTF-8 header key (offset {at}) is not stored"
        assert svc.health().status_code == 200
        assert svc.terminate() == 0
        log = svc.log_tail(500_000)
        assert "source kafka failed" not in log and "Traceback" not in log, log[-3000:]
    finally:
        svc.stop_quietly()
