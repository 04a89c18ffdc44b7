"""Hostile messages of every JSON and text format over MQTT and Kafka (payload45).

The messages (tests/hostile_broker_messages.py) mix good and bad records, fields, items, lines and
rows, or are broken whole (truncated, not UTF-8, deeply nested, oversize, empty). The properties:

- in process, through the decode stage (format + validation), many examples: each good part is
  exactly one reading, each bad one exactly one rejection with its reason and its bytes as sent;
- through ``urbanpulse run`` on real PostgreSQL, reading a private Mosquitto (the project's
  config/mosquitto.conf) through a tap and a Tansu broker at once, with a format per MQTT topic
  filter and per Kafka topic: the moment every message is acknowledged (each PUBACK seen on the
  tap, the group's offsets committed past them) its readings and quarantine rows are already in
  PostgreSQL (nothing acknowledged before it is durable); each good part is stored exactly once,
  the quarantine rows are exactly the bad parts (item, reason, bytes as sent), and both sources
  keep consuming (the next example's messages, and a last good message, are stored; no restart).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, note, settings, strategies as st

from hostile_broker_messages import FORMATS, OPTIONS, Message, messages

NOW_S = int(time.time()) - 600


def _stage(fmt: str):  # noqa: ANN202
    from urbanpulse.formats.base import DecodeLimits
    from urbanpulse.pipeline.decode import DecodeStage
    from urbanpulse.plugins import build_format
    from urbanpulse.quality.catalogue import MetricCatalogue
    from urbanpulse.quality.validate import ReadingValidator, TimeRules

    catalogue = MetricCatalogue.load()
    built = build_format(fmt, OPTIONS.get(fmt), DecodeLimits(), catalogue, where="test")
    return DecodeStage(built, ReadingValidator(catalogue, TimeRules(300.0, 7 * 86400.0, 946684800.0, 366)), None)


STAGES: dict = {}


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_part_is_one_reading_or_one_row_of_its_bytes_as_sent(fmt: str) -> None:
    from urbanpulse.formats.base import MessageBatch

    stage = STAGES.setdefault(fmt, _stage(fmt))

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(batch=st.lists(messages(fmt, "s45", NOW_S), min_size=1, max_size=3))
    def check(batch: list[Message]) -> None:
        for m in batch:
            note(f"{m.drawn} {m.body[:2000]!r}")
        topics = [m.owntracks_topic or f"h45/{fmt}/{k}" for k, m in enumerate(batch)]
        out = stage.decode(MessageBatch(source="kafka", payloads=[m.body for m in batch], topics=topics,
                                        partitions=[0] * len(batch), offsets=list(range(len(batch))),
                                        received_ns=time.time_ns()))
        r = out.readings
        got = {}
        for k in map(int, r.msg):
            got[k] = got.get(k, 0) + 1
        assert got == {k: m.good for k, m in enumerate(batch) if m.good}, out.rejections
        assert set(r.sensor_id) <= {m.sensor for m in batch}
        rows = sorted((rej.offset, rej.item, rej.reason.value, rej.payload) for rej in out.rejections)
        want = sorted((k, item, reason, raw) for k, m in enumerate(batch) for item, reason, raw in m.bad)
        assert rows == want

    check()
