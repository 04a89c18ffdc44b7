"""A QoS 1 PUBLISH the broker redelivers with DUP set is stored once, quarantined once, and
acknowledged only after its write commits (dup39).

A private mosquitto runs with the project's own config (config/mosquitto.conf); the service reaches
it through a tap (tests/mqtt_tap.py) that records every packet both ways, so the tests *see* the
broker's DUP redelivery and when the service PUBACKs it, and can lose PUBACKs or the connection on
purpose. Two ways the broker redelivers:

- committed, PUBACK lost: the tap swallows the service's PUBACKs, then drops the connection; paho
  reconnects on its persistent session and mosquitto sends every unacknowledged message again with
  DUP. The readings are there already (natural key); a bad message's quarantine row is there already
  too, and the redelivery must not add a second one (before dup39 it did: MQTT rows have no key).
- not committed: the readings and quarantine tables are locked (EXCLUSIVE: reads go on, writes wait),
  the connection drops, the DUP redelivery arrives while the first write still waits; no PUBACK may
  go out and nothing is stored until the lock is released, then everything is stored once and PUBACKed.

And a publisher resending one message (the second PUBLISH with DUP, same packet id, raw socket):
mosquitto forwards both, with DUP clear (MQTT 3.1.1 section 3.3.1.1: the DUP flag is not propagated);
the reading is stored once, and a bad message gets one row per delivery (see the README section).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

from mqtt_tap import PUBACK, PUBLISH, MqttTap
from service_process import ServiceProcess, db_value, wait_until
from services import publish_mqtt
from test_delivery_e2e import service_config

pytestmark = pytest.mark.integration

TOPIC = "city/dup39/feed"
#: a failing example is reported as drawn: shrinking would replay whole broker round trips
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
NOW_MS = int(time.time() * 1000) - 3600 * 1000

#: one message: a valid reading (kind 0), a reading whose value is text (1), or bytes that are not JSON (2)
message_st = st.tuples(st.integers(0, 2), st.text("abcdefxyz0123456789", min_size=1, max_size=6),
                       st.integers(-4000, 6000).map(lambda n: n / 100))  # no tiny magnitude: validate.py quarantines it

batch_st = st.lists(message_st, min_size=1, max_size=6)


def payloads_of(example: int, drawn: list[tuple[int, str, float]]) -> list[tuple[int, str, bytes]]:
    """(kind, marker, payload) per drawn message; the marker names the message in readings or quarantine."""
    out = []
    for i, (kind, suffix, value) in enumerate(drawn):
        marker = f"dup39-{example}-{i}-{suffix}"
        if kind == 2:
            payload = b"not json " + marker.encode() + b" {"
        else:
            payload = orjson.dumps({"sensor_id": marker, "metric": "temperature", "ts": NOW_MS - i,
                                    "value": value if kind == 0 else f"warm {value}"})
        out.append((kind, marker, payload))
    return out


def stored(dsn: str, marker: str) -> int:
    return int(db_value(dsn, "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id "
                             "WHERE s.sensor_id = $1", marker))


def quarantined(dsn: str, marker: str) -> int:
    return int(db_value(dsn, "SELECT count(*) FROM quarantine WHERE position($1::bytea in payload) > 0",
                        marker.encode()))


def settled_once(dsn: str, msgs: list[tuple[int, str, bytes]]) -> bool:
    """Every valid reading stored once and every bad message quarantined once; AssertionError on more."""
    for kind, marker, _ in msgs:
        got = stored(dsn, marker) if kind == 0 else quarantined(dsn, marker)
        assert got <= 1, (marker, got)
        if got == 0:
            return False
    return True


def deliveries(tap: MqttTap, payload: bytes) -> list:
    return [p for p in tap.seen() if p.down and p.kind == PUBLISH and p.payload == payload]


def pubacks(tap: MqttTap, connection: int, pid: int, after: float) -> list:
    return [p for p in tap.seen() if not p.down and p.kind == PUBACK and p.connection == connection
            and p.pid == pid and p.at >= after and not p.dropped]


@pytest.fixture
def tapped_service(fresh_db: str, fresh_mosquitto,  # noqa: ANN001
                   tmp_path: Path) -> Iterator[tuple[ServiceProcess, MqttTap]]:
    m = fresh_mosquitto
    tap = MqttTap(m.host, m.port)
    svc = ServiceProcess(service_config(fresh_db, SimpleNamespace(host=tap.host, port=tap.port), None, None),
                         tmp_path).start()
    try:
        yield svc, tap
        svc.terminate_cleanly("mqtt")
    finally:
        svc.stop_quietly()
        tap.close()


def waited(svc: ServiceProcess, tap: MqttTap, predicate, timeout: float, what: str) -> None:  # noqa: ANN001
    """``wait_until``, with the tap's last packets and the service's log in the message on a timeout."""
    try:
        wait_until(predicate, timeout, what=what)
    except AssertionError as exc:
        packets = "\n".join(map(str, tap.seen()[-40:]))
        raise AssertionError(f"{exc}\nlast packets:\n{packets}\nservice log:\n{svc.log_tail(3000)}") from None


def redelivered_with_dup(svc: ServiceProcess, tap: MqttTap, msgs: list[tuple[int, str, bytes]],
                         after_connection: int) -> dict:
    """Waits until the broker sent every message again with DUP on a later connection; {payload: packet}."""
    found: dict[bytes, object] = {}

    def all_dup() -> bool:
        for _, _, payload in msgs:
            again = [p for p in deliveries(tap, payload) if p.dup and p.connection > after_connection]
            if again:
                found[payload] = again[-1]
        return len(found) == len(msgs)

    waited(svc, tap, all_dup, 60, what="the broker's DUP redelivery of every message")
    return found


def test_a_redelivery_after_a_lost_puback_is_stored_and_quarantined_once(fresh_db: str, fresh_mosquitto,  # noqa: ANN001
                                                                          tapped_service) -> None:
    svc, tap = tapped_service
    m = fresh_mosquitto
    state = {"example": 0}

    @settings(max_examples=4, deadline=None, database=None, derandomize=True, phases=NO_SHRINK,
              suppress_health_check=list(HealthCheck))
    @given(drawn=batch_st)
    def check(drawn: list[tuple[int, str, float]]) -> None:
        state["example"] += 1
        msgs = payloads_of(state["example"], drawn)
        tap.drop_pubacks = True
        publish_mqtt(m.host, m.port, TOPIC, [p for _, _, p in msgs])
        waited(svc, tap, lambda: settled_once(fresh_db, msgs), 60, what="the first delivery committed")
        first = {p: deliveries(tap, p)[-1] for _, _, p in msgs}
        assert not any(d.dup for d in first.values())
        waited(svc, tap, lambda: all(any(q.dropped and q.pid == d.pid and q.connection == d.connection
                                   for q in tap.seen() if q.kind == PUBACK) for d in first.values()),
                   30, what="the service's PUBACKs of the first delivery (swallowed by the tap)")
        connection = max(d.connection for d in first.values())
        tap.drop_pubacks = False
        tap.cut()  # the broker never got those PUBACKs: it must redeliver on the persistent session
        again = redelivered_with_dup(svc, tap, msgs, connection)
        waited(svc, tap, lambda: all(pubacks(tap, d.connection, d.pid, d.at) for d in again.values()), 60,
               what="the PUBACK of every redelivered message")
        assert settled_once(fresh_db, msgs), msgs  # still exactly one reading / one quarantine row each

    check()


def test_a_redelivery_while_the_first_write_waits_is_acknowledged_only_after_commit(
        fresh_db: str, fresh_mosquitto, tapped_service) -> None:  # noqa: ANN001
    svc, tap = tapped_service
    m = fresh_mosquitto
    msgs = payloads_of(0, [(0, "a", 20.5), (1, "b", 3.0), (2, "c", 0.0), (0, "d", -4.25)])
    loop = asyncio.new_event_loop()
    lock = loop.run_until_complete(asyncpg.connect(fresh_db))
    try:
        loop.run_until_complete(lock.execute("BEGIN; LOCK TABLE readings, quarantine IN EXCLUSIVE MODE"))
        publish_mqtt(m.host, m.port, TOPIC, [p for _, _, p in msgs])
        wait_until(lambda: all(deliveries(tap, p) for _, _, p in msgs), 30, what="the first delivery")
        connection = max(deliveries(tap, p)[-1].connection for _, _, p in msgs)
        tap.cut()
        again = redelivered_with_dup(svc, tap, msgs, connection)
        time.sleep(1.0)  # room for a wrong early PUBACK to show (not a speed check)
        assert not any(pubacks(tap, d.connection, d.pid, d.at) for d in again.values()), "PUBACK before commit"
        # read on the locking transaction: another session's read could queue behind a waiting write
        seen = loop.run_until_complete(lock.fetchval(
            "SELECT (SELECT count(*) FROM readings) + (SELECT count(*) FROM quarantine)"))
        assert seen == 0, f"{seen} rows committed while the tables were locked"
        released = time.monotonic()
        loop.run_until_complete(lock.execute("ROLLBACK"))
    finally:
        loop.run_until_complete(lock.close())
        loop.close()
    wait_until(lambda: all(pubacks(tap, d.connection, d.pid, d.at) for d in again.values()), 60,
               what="the PUBACK of every redelivered message after the commit")
    assert all(q.at >= released for d in again.values() for q in pubacks(tap, d.connection, d.pid, d.at))
    assert settled_once(fresh_db, msgs)


def _raw_publish_twice(host: str, port: int, payload: bytes) -> None:
    """CONNECT, then one QoS 1 PUBLISH sent twice with packet id 7, the second with DUP set (as a
    publisher does when it got no PUBACK), then DISCONNECT once both PUBACKs came."""
    def packet(first: int, body: bytes) -> bytes:
        n, length = len(body), bytearray()
        while True:
            n, digit = divmod(n, 128)
            length.append(digit | (0x80 if n else 0))
            if not n:
                return bytes([first]) + bytes(length) + body

    topic = TOPIC.encode()
    publish = len(topic).to_bytes(2, "big") + topic + (7).to_bytes(2, "big") + payload
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(packet(0x10, b"\x00\x04MQTT\x04\x02\x00\x1e\x00\x0bdup39-pub-1"))
        s.sendall(packet(0x32, publish) + packet(0x3A, publish))  # QoS 1; QoS 1 + DUP
        got = b""
        while got.count(b"\x40\x02\x00\x07") < 2:
            chunk = s.recv(4096)
            assert chunk, f"the broker closed the connection: {got!r}"
            got += chunk
        s.sendall(b"\xe0\x00")


def test_a_publisher_resending_with_dup_gives_one_reading(fresh_db: str, fresh_mosquitto,  # noqa: ANN001
                                                          tapped_service) -> None:
    svc, tap = tapped_service
    m = fresh_mosquitto
    good, bad = payloads_of(1, [(0, "r", 12.0)])[0], payloads_of(2, [(1, "q", 1.0)])[0]
    for _, _, payload in (good, bad):
        _raw_publish_twice(m.host, m.port, payload)
    wait_until(lambda: len(deliveries(tap, good[2])) == 2 and len(deliveries(tap, bad[2])) == 2, 30,
               what="both copies delivered to the service")
    # the broker forwarded the resend as a message of its own: DUP clear on both deliveries
    assert not any(p.dup for p in deliveries(tap, good[2]) + deliveries(tap, bad[2]))
    wait_until(lambda: all(pubacks(tap, d.connection, d.pid, d.at) for d in deliveries(tap, bad[2])), 30,
               what="both copies acknowledged")
    assert stored(fresh_db, good[1]) == 1
    assert quarantined(fresh_db, bad[1]) == 2  # two deliveries the service cannot tell from two messages
