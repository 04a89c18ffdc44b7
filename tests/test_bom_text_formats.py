"""A UTF-8 BOM opening a text body changes nothing that is stored, and its quarantine rows stay as sent (product47).

Before: CSV already read past a BOM (``utf-8-sig``), but line protocol kept it in the first line's measurement,
so ``\\ufefftemperature,sensor_id=s1 value=1`` gave the metric ``\\ufefftemperature`` (quarantined
``unknown_metric``) where the same line without the BOM was stored. Property over generated bodies of both
formats (line protocol: 1-4 lines, the measurement or a field naming the metric, good and bad values; CSV with
and without a header row): with a BOM the stored readings are exactly those without it, and the rejections are
the same but for the first record's row, which carries the BOM's bytes in front (the bytes as sent).
"""

from __future__ import annotations

import codecs
import time

from hypothesis import given, settings, strategies as st

from urbanpulse.formats.base import MessageBatch
from urbanpulse.plugins import build_format
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator

CATALOGUE = MetricCatalogue.load()
T = int(time.time()) - 60
CSV = {"sensor_id": "sensor", "ts": "time", "time_format": "epoch_s", "values": {"pm25": "pm2_5", "pm10": "pm10"}}
value_st = st.sampled_from(["12", "1e5", "abc", "-3", "7.5", ""])


@st.composite
def bodies(draw):  # noqa: ANN001, ANN201
    n = draw(st.integers(1, 4))
    if draw(st.booleans()):
        lines = []
        for k in range(n):
            metric = draw(st.sampled_from(["temperature", "humidity", "pm2_5", "vibes"]))
            if draw(st.booleans()):
                fields = f"value={draw(st.sampled_from(['21', '1e5', '-300', '40']))}"
                head = metric
            else:
                fields = f"{metric}={draw(st.sampled_from(['21', '1e5', '40']))},humidity=50"
                head = "air"
            lines.append(f"{head},sensor_id=s{k} {fields} {T * 10**9}")
        return "influx_line", None, "\n".join(lines).encode()
    header = draw(st.booleans())
    rows = [f"s{k},{T},{draw(value_st)},{draw(value_st)}" for k in range(n)]
    opts = dict(CSV) if header else dict(CSV, header=False, fieldnames=["sensor", "time", "pm25", "pm10"])
    text = ("sensor,time,pm25,pm10\n" if header else "") + "\n".join(rows) + draw(st.sampled_from(["", "\n", "\r\n"]))
    return "csv", opts, text.encode()


def _outcome(fmt_name: str, opts: dict | None, body: bytes):  # noqa: ANN202
    fmt = build_format(fmt_name, opts)
    batch = MessageBatch("mqtt", [body], topics=["t"], received_ns=time.time_ns())
    decoded = fmt.decode(batch)
    out = ReadingValidator(CATALOGUE).validate(batch, decoded, lambda k: fmt.raw_of(batch, decoded, k))
    stored = sorted(zip(out.readings.sensor_id, out.readings.metric, out.readings.value.tolist()))
    rejected = sorted((r.reason.value, r.item, bytes(r.payload)) for r in out.rejections)
    return stored, rejected


@settings(max_examples=200, deadline=None)
@given(case=bodies())
def test_a_bom_changes_nothing_stored_and_its_rows_stay_as_sent(case) -> None:  # noqa: ANN001
    fmt_name, opts, body = case
    plain_stored, plain_rejected = _outcome(fmt_name, opts, body)
    bom_stored, bom_rejected = _outcome(fmt_name, opts, codecs.BOM_UTF8 + body)
    assert bom_stored == plain_stored
    first = 1 if fmt_name == "csv" and opts.get("header", True) else 0  # the header is the body's first record
    expected = sorted((reason, item, codecs.BOM_UTF8 + raw if item == 0 and not first else raw)
                      for reason, item, raw in plain_rejected)
    assert bom_rejected == expected


def test_the_line_protocol_example() -> None:
    line = b"temperature,sensor_id=s1 value=21 %d" % (T * 10**9)
    assert _outcome("influx_line", None, codecs.BOM_UTF8 + line) == _outcome("influx_line", None, line)
