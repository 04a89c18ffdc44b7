"""Whole-message quarantine rows survive a lost PUBACK and mosquitto's DUP redelivery once (hostile40),
and a poison message's DUP redelivery is not decoded again (ingest42).

dup39 made an MQTT redelivery (DUP set) add no second quarantine row: the source hands DUP messages
over as a batch marked ``redelivered`` and the writer inserts their rows only where none is there yet.
But the poison guard (connectors/poison.py) quarantines a message that crashed its source alone as
``poison_message`` through ``pipeline.quarantine``, and that row did not carry the flag: when its
PUBACK got lost, mosquitto redelivered the message with DUP, it was decoded, crashed the source
again, was named poison again and got a second row.

The service here runs in the test's event loop with a format plugin that kills the source on one
payload (supervision_helpers.FaultyFormat), against a private mosquitto (config/mosquitto.conf)
reached through tests/mqtt_tap.py, which swallows the PUBACKs and cuts the connection on purpose and
shows the DUP flag of every PUBLISH. The other whole-message paths (decode errors, payloads too
large, bytes that are not UTF-8 or not JSON, arrays with bad items) go through ``Pipeline.submit``,
which marks a redelivered batch's rejections: a property over generated hostile payloads checks
them through the same lost PUBACK.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mqtt_tap import PUBACK, MqttTap
from service_process import ServiceProcess, db_value
from services import publish_mqtt
from supervision_helpers import FaultyFormat, eventually, fetch, reading, settings_for, start_service
from test_delivery_e2e import service_config
from test_mqtt_dup_redelivery import NO_SHRINK, NOW_MS, deliveries, pubacks, redelivered_with_dup, waited

pytestmark = pytest.mark.integration

POISON = reading("hostile40-poison", 0)


def _quarantined_metric(svc, reason: str) -> float:  # noqa: ANN001
    """``urbanpulse_readings_quarantined_total`` of the MQTT source for ``reason``."""
    return svc.service.metrics.quarantined.labels("mqtt", reason)._value.get()


def _dup_puback_seen(tap: MqttTap, payload: bytes, dropped: bool, after: int = 0) -> bool:
    """A PUBACK (swallowed by the tap, or passed on) answered a DUP delivery of ``payload`` on a
    connection later than ``after``."""
    acks = [p for p in tap.seen() if p.kind == PUBACK and not p.down and p.dropped == dropped]
    return any(a.connection == d.connection and a.pid == d.pid and a.at >= d.at
               for d in deliveries(tap, payload) if d.dup and d.connection > after for a in acks)


async def test_a_poison_message_redelivered_after_a_lost_puback_is_quarantined_once(
        fresh_db: str, fresh_mosquitto) -> None:  # noqa: ANN001
    m = fresh_mosquitto
    tap = MqttTap(m.host, m.port)
    topic = f"h40-{uuid.uuid4().hex[:8]}"
    fmt = FaultyFormat(marker=b"hostile40-poison")  # every batch holding it kills the source
    svc = await start_service(settings_for(fresh_db, mqtt=(tap.host, tap.port), topic=topic), fmt)
    try:
        await eventually(lambda: _healthy(svc), 60, "the MQTT source to connect")
        tap.drop_pubacks = True
        await asyncio.to_thread(publish_mqtt, m.host, m.port, f"{topic}/d1/s1", [POISON])
        # it crashes the source; the restarted source gets it again with DUP and quarantines it as poison;
        # the tap swallows that PUBACK, so mosquitto still holds the message
        await eventually(lambda: _rows(fresh_db), 60, "the poison message in quarantine")
        await eventually(lambda: _async(_dup_puback_seen(tap, POISON, dropped=True)), 30,
                         "the PUBACK of the quarantined poison message (swallowed)")
        connection = max(d.connection for d in deliveries(tap, POISON))
        tap.drop_pubacks = False
        tap.cut()
        # paho reconnects on its persistent session: mosquitto redelivers the message with DUP again
        await eventually(lambda: _async(_dup_puback_seen(tap, POISON, dropped=False, after=connection)), 90,
                         "the PUBACK of the poison message's redelivery after the cut")
        await svc.service.pipeline.drain()
        rows = await _rows(fresh_db)
        assert [(r["reason"], bytes(r["payload"])) for r in rows] == [("poison_message", POISON)], \
            [(r["reason"], r["detail"]) for r in rows]
        assert all(d.dup for d in deliveries(tap, POISON)[1:])  # every redelivery was marked as one
        # the metric counts the row once: the redelivery added none (session 43; it was counted twice)
        assert _quarantined_metric(svc, "poison_message") == 1
        # an MQTT poison suspect is kept until forget_after_s (ingest42; poison.py): the DUP redelivery
        # after the lost PUBACK is quarantined again without being decoded, its row not written twice
        assert fmt.fired == 1, fmt.fired
        await eventually(lambda: _healthy(svc), 60, "/health 200 again")
        # a sensor sending the same bytes again (no DUP) gets a row of its own: never dropped, never decoded
        await asyncio.to_thread(publish_mqtt, m.host, m.port, f"{topic}/d1/s1", [POISON])
        await eventually(lambda: _n_rows(fresh_db, 2), 60, "a second poison_message row for the new sending")
        assert [r["reason"] for r in await _rows(fresh_db)] == ["poison_message"] * 2
        assert fmt.fired == 1 and fmt.seen_marker == 1, (fmt.fired, fmt.seen_marker)
    finally:
        await svc.stop()
        tap.close()


async def test_a_non_utf8_topic_redelivered_after_a_lost_puback_is_quarantined_once(
        fresh_db: str, fresh_mosquitto) -> None:  # noqa: ANN001
    """The ``invalid_utf8`` row of a topic that is not UTF-8 (mqtt.py quarantines it before decoding,
    not through ``Pipeline.submit``): mosquitto refuses such a topic, so a proxy turns one topic level
    into invalid UTF-8 on its way to the service (test_hostile_mqtt_topic.py), behind the tap."""
    from test_hostile_mqtt_topic import MARK, TopicRewritingProxy

    m = fresh_mosquitto
    proxy = TopicRewritingProxy(m.host, m.port)
    tap = MqttTap("127.0.0.1", proxy.port)
    topic = f"h40-{uuid.uuid4().hex[:8]}"
    payload = reading("hostile40-topic", 1)
    svc = await start_service(settings_for(fresh_db, mqtt=(tap.host, tap.port), topic=topic))
    try:
        await eventually(lambda: _healthy(svc), 60, "the MQTT source to connect")
        tap.drop_pubacks = True
        await asyncio.to_thread(publish_mqtt, m.host, m.port, f"{topic}/{MARK.decode()}", [payload])
        rows = await eventually(lambda: _rows(fresh_db), 60, "the message in quarantine")
        assert [r["reason"] for r in rows] == ["invalid_utf8"]
        first = deliveries(tap, payload)[-1]
        await eventually(lambda: _async(any(q.dropped and q.pid == first.pid and q.connection == first.connection
                                            for q in tap.seen() if q.kind == PUBACK)), 30,
                         "its PUBACK (swallowed)")
        tap.drop_pubacks = False
        tap.cut()
        await eventually(lambda: _async(_dup_puback_seen(tap, payload, dropped=False, after=first.connection)), 90,
                         "the PUBACK of its DUP redelivery")
        await svc.service.pipeline.drain()
        assert [r["reason"] for r in await _rows(fresh_db)] == ["invalid_utf8"]
    finally:
        await svc.stop()
        tap.close()
        proxy.close()


async def _async(value: object) -> object:
    return value


async def _rows(dsn: str) -> list:
    return await fetch(dsn, "SELECT reason, payload, detail FROM quarantine ORDER BY id")


async def _n_rows(dsn: str, n: int) -> bool:
    return len(await _rows(dsn)) >= n


async def _healthy(svc) -> bool:  # noqa: ANN001
    return (await svc.health()).status_code == 200


# -- hostile payloads through the real service (a subprocess) ---------------------------------

TOPIC = "city/hostile40/feed"
#: what validation.max_payload_bytes allows by default (config.py): one byte more is too large
MAX_PAYLOAD = 256 * 1024


def hostile_payload(kind: int, marker: str, noise: bytes, value: float) -> bytes:
    """A message of kind ``kind`` that names ``marker`` in every quarantine row or reading it makes."""
    m = marker.encode()
    if kind == 0:  # bytes that are not UTF-8 (and not JSON)
        return b"\xff\xfe" + m + b" " + noise
    if kind == 1:  # too large: quarantined whole (its first bytes kept)
        return m + b" " + b"x" * MAX_PAYLOAD
    if kind == 2:  # an array: a reading, an item that fails validation, an item that is not an object
        return orjson.dumps([{"sensor_id": marker, "metric": "temperature", "ts": NOW_MS, "value": value},
                             {"sensor_id": marker + "-bad", "metric": "temperature", "ts": NOW_MS, "value": "hot"},
                             marker])
    if kind == 3:  # JSON that breaks off, with any bytes after
        return b'{"sensor_id": "' + m + b'", "value": ' + noise
    return orjson.dumps({"sensor_id": marker, "metric": "temperature", "ts": NOW_MS, "value": value})  # valid


hostile_st = st.lists(st.tuples(st.integers(0, 4), st.binary(max_size=24),
                                st.integers(-4000, 6000).map(lambda n: n / 100)), min_size=1, max_size=5)


def outcome(dsn: str, marker: str) -> tuple[int, int]:
    """(quarantine rows, readings) that name ``marker``."""
    rows = int(db_value(dsn, "SELECT count(*) FROM quarantine WHERE position($1::bytea in payload) > 0",
                        marker.encode()))
    stored = int(db_value(dsn, "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id "
                               "WHERE s.sensor_id = $1", marker))
    return rows, stored


#: what each kind must leave: (quarantine rows, readings)
EXPECTED = {0: (1, 0), 1: (1, 0), 2: (2, 1), 3: (1, 0), 4: (0, 1)}


def test_hostile_payloads_redelivered_after_a_lost_puback_keep_one_outcome_each(
        fresh_db: str, fresh_mosquitto, tmp_path: Path) -> None:  # noqa: ANN001
    m = fresh_mosquitto
    tap = MqttTap(m.host, m.port)
    cfg = service_config(fresh_db, SimpleNamespace(host=tap.host, port=tap.port), None, None)
    svc = ServiceProcess(cfg, tmp_path).start()
    state = {"example": 0}
    try:
        @settings(max_examples=5, deadline=None, database=None, derandomize=True, phases=NO_SHRINK,
                  suppress_health_check=list(HealthCheck))
        @given(drawn=hostile_st)
        def check(drawn: list[tuple[int, bytes, float]]) -> None:
            state["example"] += 1
            msgs = [(kind, f"h40-{state['example']}-{i}", hostile_payload(kind, f"h40-{state['example']}-{i}",
                                                                           noise, value))
                    for i, (kind, noise, value) in enumerate(drawn)]
            tap.drop_pubacks = True
            publish_mqtt(m.host, m.port, TOPIC, [p for _, _, p in msgs])

            def first_stored() -> bool:
                assert svc.proc is not None and svc.proc.poll() is None, "the service died"
                return all(outcome(fresh_db, marker) == EXPECTED[kind] for kind, marker, _ in msgs)

            waited(svc, tap, first_stored, 60, what="every message stored or quarantined once")
            first = {p: deliveries(tap, p)[-1] for _, _, p in msgs}
            waited(svc, tap, lambda: all(any(q.dropped and q.pid == d.pid and q.connection == d.connection
                                             for q in tap.seen() if q.kind == PUBACK) for d in first.values()),
                   30, what="the PUBACKs of the first delivery (swallowed)")
            connection = max(d.connection for d in first.values())
            tap.drop_pubacks = False
            tap.cut()
            again = redelivered_with_dup(svc, tap, [(k, mk, p) for k, mk, p in msgs], connection)
            waited(svc, tap, lambda: all(pubacks(tap, d.connection, d.pid, d.at) for d in again.values()), 60,
                   what="the PUBACK of every redelivered message")
            got = {marker: outcome(fresh_db, marker) for _, marker, _ in msgs}
            assert got == {marker: EXPECTED[kind] for kind, marker, _ in msgs}, (drawn, got)

        check()
        assert svc.health().status_code == 200
        svc.terminate_cleanly("mqtt")
    finally:
        svc.stop_quietly()
        tap.close()
