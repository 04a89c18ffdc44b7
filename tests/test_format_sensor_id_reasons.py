"""A sensor id is judged the same in every format: an id that validation refuses is quarantined
``bad_sensor_id`` whether it arrives in canonical JSON, InfluxDB line protocol or CSV, and an id it
accepts is stored (benchmarks/README.md, privacy38).

Before: line protocol quarantined an id over 128 characters as ``bad_type`` (an operator counting
``bad_sensor_id`` missed them), CSV's detail for it said "no sensor id", and CSV stripped a cell with
``str.strip()``, which also removes control characters such as ``\\x1c``-``\\x1f``, ``\\x85`` and
``\\u2028``: a CSV id ending in ``\\x1f`` was stored where the other formats refuse it. Now CSV strips
only the spaces and tabs around a cell (CSV layout), and both formats give ``bad_sensor_id``.

Decoded and validated as the service does (the format, then the validator), no database: the
property is about what the two steps decide.
"""

from __future__ import annotations

import csv
import io
import json

from hypothesis import given, settings, strategies as st

from urbanpulse.formats.base import MessageBatch
from urbanpulse.model import Reason
from urbanpulse.plugins import build_format
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import MAX_SENSOR_ID_CHARS, ReadingValidator, TimeRules, sensor_id_fault

RECEIVED_NS = 1_767_225_600_000_000_000  # 2026-01-01 00:00 UTC
TS_MS = RECEIVED_NS // 1_000_000 - 60_000
CATALOGUE = MetricCatalogue.load()
CSV_OPTIONS = {"sensor_id": "sensor", "ts": "t", "time_format": "epoch_ms", "metric": "metric", "value": "value"}
#: characters str.strip() removes that are no whitespace a CSV writer puts around a cell, and others that
#: validation refuses anywhere in an id
EDGE = ["\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\u2028", "\u2029", "\x0b", "\x0c", "\x07", "\x00", "\u200b"]


@st.composite
def sensor_ids(draw: st.DrawFn) -> str:
    """Ids around validation's limits: plain, exactly at / just over / far over the length limit, or with a
    control character at an edge or inside (never a newline, a comma or a quote: those are each format's
    syntax, not the id's)."""
    core = draw(st.text("abcdefgh-0123456789", min_size=1, max_size=12))
    length = draw(st.sampled_from([None, MAX_SENSOR_ID_CHARS, MAX_SENSOR_ID_CHARS + 1, 400]))
    if length is not None:
        core = (core * (length // len(core) + 1))[:length]
    where = draw(st.sampled_from(["none", "start", "end", "inside"]))
    c = draw(st.sampled_from(EDGE))
    return {"none": core, "start": c + core, "end": core + c, "inside": core[:1] + c + core[1:]}[where]


def outcome(fmt_name: str, options: dict | None, payload: bytes) -> str | None:
    """What the format and then validation decide for the message's one reading: None (stored) or the
    reason it is quarantined with."""
    fmt = build_format(fmt_name, options, None, CATALOGUE)
    b = MessageBatch(source="mqtt", payloads=[payload], topics=["t"], received_ns=RECEIVED_NS)
    decoded = fmt.decode(b)
    if decoded.rejections:
        assert len(decoded.rejections) == 1 and not len(decoded.columns), decoded.rejections
        return decoded.rejections[0].reason.value
    out = ReadingValidator(CATALOGUE, TimeRules(), clock=lambda: RECEIVED_NS / 1e9).validate(
        b, decoded, lambda k: fmt.raw_of(b, decoded, k))
    assert len(out.readings) + len(out.rejections) == 1, (len(out.readings), out.rejections)
    return None if len(out.readings) else out.rejections[0].reason.value


def csv_message(sensor: str) -> bytes:
    """One CSV row for ``sensor`` (written by csv.writer, so a cell needing quotes gets them)."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["sensor", "t", "metric", "value"])
    w.writerow([sensor, TS_MS, "temperature", 21.5])
    return buf.getvalue().encode()


def line_message(sensor: str) -> bytes:
    """One line-protocol point for ``sensor`` (its tag escaped)."""
    for c in "\\,= ":
        sensor = sensor.replace(c, "\\" + c)
    return f"temperature,sensor_id={sensor} value=21.5 {TS_MS}".encode()


@settings(max_examples=150, deadline=None, derandomize=True)
@given(sensor=sensor_ids())
def test_a_sensor_id_gets_one_verdict_in_every_format(sensor: str) -> None:
    """canonical JSON, line protocol and CSV store the reading exactly where validation accepts the id as
    sent, and otherwise quarantine it ``bad_sensor_id`` (CSV: NUL refuses its whole message, `malformed`)."""
    want = Reason.BAD_SENSOR_ID.value if sensor_id_fault(sensor) else None
    json_payload = ('[{"sensor_id": %s, "metric": "temperature", "ts": %d, "value": 21.5}]'
                    % (json.dumps(sensor), TS_MS)).encode()
    assert outcome("json", None, json_payload) == want, "json"
    if "\x00" not in sensor:  # a NUL in CSV text refuses the message whole (malformed), as csv.reader does
        assert outcome("csv", CSV_OPTIONS, csv_message(sensor)) == want, "csv"
    got = outcome("influx_line", {"precision": "ms"}, line_message(sensor))
    assert got == want, ("influx_line", got)


def test_a_csv_cell_keeps_its_spaces_trimmed_and_says_why_an_id_is_refused() -> None:
    """CSV layout (spaces around a cell) is trimmed; an over-long id's detail says so, not "no sensor id"."""
    assert outcome("csv", CSV_OPTIONS, csv_message("  dev-7 ")) is None
    fmt = build_format("csv", CSV_OPTIONS, None, CATALOGUE)
    long_id = "d" * (MAX_SENSOR_ID_CHARS + 1)
    d = fmt.decode(MessageBatch(source="mqtt", payloads=[csv_message(long_id)], topics=["t"],
                                received_ns=RECEIVED_NS))
    assert [(r.reason, r.detail) for r in d.rejections] == [
        (Reason.BAD_SENSOR_ID, f"row 2: sensor id longer than {MAX_SENSOR_ID_CHARS} characters")]
