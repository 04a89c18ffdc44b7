"""Hostile payloads in every built-in format, through the running service (hostile40).

tests/test_fuzz_decode.py feeds each format hostile input at the decoder; here the same generated
payloads (urbanpulse.fuzz: random bytes, mangled and deeply nested JSON, surrogates, NUL, huge
numbers, arrays mixing valid and invalid readings) go through the whole service: a private
mosquitto, the tap (tests/mqtt_tap.py), the format routing (``mqtt.formats``), validation, the
writer and PostgreSQL. Each message is published on a topic of its own, so its quarantine rows can
be found by topic. The property: every message is PUBACKed (the service acknowledges only what is
durable, dup39), every message has a quarantine row or added readings (never lost), and the MQTT
source never fails (a message that raised would restart it and show in the log).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mqtt_tap import PUBLISH, MqttTap
from service_process import ServiceProcess, db_value
from services import publish_mqtt
from test_delivery_e2e import service_config
from test_fuzz_decode import FORMAT_OPTIONS
from test_mqtt_dup_redelivery import NO_SHRINK, pubacks, waited
from urbanpulse.fuzz import hostile_payloads
from urbanpulse.plugins import BUILTIN_FORMATS

pytestmark = pytest.mark.integration

NOW_MS = int(time.time() * 1000)
FORMATS = sorted(BUILTIN_FORMATS)
EXAMPLES = int(os.environ.get("HOSTILE_FORMATS_EXAMPLES", "8"))


def test_hostile_payloads_in_every_format_are_stored_or_quarantined_and_the_source_runs_on(
        fresh_db: str, fresh_mosquitto, tmp_path: Path) -> None:  # noqa: ANN001
    m = fresh_mosquitto
    tap = MqttTap(m.host, m.port)
    cfg = service_config(fresh_db, SimpleNamespace(host=tap.host, port=tap.port), None, None)
    cfg["mqtt"]["formats"] = {f"h40/{name}/#": name for name in FORMATS}
    cfg["formats"] = {"options": FORMAT_OPTIONS}
    svc = ServiceProcess(cfg, tmp_path).start()
    state = {"example": 0, "messages": 0}
    try:
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, phases=NO_SHRINK,
                  suppress_health_check=list(HealthCheck))
        @given(fmt=st.sampled_from(FORMATS), payloads=hostile_payloads(NOW_MS, max_size=6))
        def check(fmt: str, payloads: list[bytes]) -> None:
            state["example"] += 1
            before = int(db_value(fresh_db, "SELECT count(*) FROM readings"))
            topics = [f"h40/{fmt}/e{state['example']}m{i}" for i in range(len(payloads))]
            for topic, payload in zip(topics, payloads):
                publish_mqtt(m.host, m.port, topic, [payload])
            state["messages"] += len(payloads)

            def acked() -> bool:
                assert svc.proc is not None and svc.proc.poll() is None, "the service died"
                got = [p for p in tap.seen() if p.down and p.kind == PUBLISH and p.topic in topics]
                return len({p.topic for p in got}) == len(topics) and \
                    all(pubacks(tap, p.connection, p.pid, p.at) for p in got)

            waited(svc, tap, acked, 60, what=f"every {fmt} message PUBACKed")
            rows = {t: int(db_value(fresh_db, "SELECT count(*) FROM quarantine WHERE topic = $1", t)) for t in topics}
            added = int(db_value(fresh_db, "SELECT count(*) FROM readings")) - before
            unquarantined = [t for t, n in rows.items() if n == 0]
            # a message with no quarantine row must have added readings (hostile input rarely repeats one)
            assert len(unquarantined) <= added, (fmt, rows, added, [p[:80] for p in payloads])

        check()
        assert svc.health().status_code == 200
        svc.terminate_cleanly("mqtt")
    finally:
        svc.stop_quietly()
        tap.close()
