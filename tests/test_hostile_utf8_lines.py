"""Invalid UTF-8 in one line of a line-protocol message, or one row of a CSV message, costs that
line or row, not the message (benchmarks/README.md ``input35``).

Before: both formats decoded the whole payload at once and refused the message as
``invalid_utf8`` on the first bad byte, so every good line of a multi-line message went to
quarantine with it. Now the payload is still decoded whole first (the usual case, no extra cost);
only when that fails is each line (line protocol) or row (CSV: parsed with the bad bytes escaped,
so a quoted field may still span lines) judged on its own: the bad ones are quarantined as
``invalid_utf8`` with their bytes as received, the others stored. A CSV header that is not UTF-8
still refuses the message (every row is read through it), with a detail saying so.

Driven through the real pipeline into PostgreSQL (Kafka-like provenance: one quarantine row per
item), every example on the same database, cleared in between.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings, strategies as st

import services
from urbanpulse.config import IngestSettings
from urbanpulse.formats.base import MessageBatch
from urbanpulse.formats.csv_columns import CsvFormat
from urbanpulse.formats.line_protocol import LineProtocolFormat
from urbanpulse.metrics import IngestMetrics
from urbanpulse.pipeline import Pipeline
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.writer import ReadingStore

EXAMPLES = int(os.environ.get("UTF8_LINES_EXAMPLES", "40"))
NOW_S = int(time.time()) - 120

#: byte sequences that are not UTF-8 on their own (and so not between ASCII characters either)
KNOWN_BAD = [b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82",
             b"\xf0\x9f\x98", b"\xbf\xbf"]


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


#: no ASCII byte (a newline, quote or delimiter would change where lines and cells end)
bad_bytes = st.one_of(st.sampled_from(KNOWN_BAD),
                      st.binary(min_size=1, max_size=4).map(lambda b: bytes(c | 0x80 for c in b)).filter(_not_utf8))


@dataclass
class Line:
    """One line (or CSV record) sent: its readings when it is clean, or the bytes inserted."""

    text: str
    readings: set[tuple[str, str, float]]
    #: where a byte may go without changing where cells end (CSV: not inside a quote's ``""``)
    places: list[int]
    bad: bytes | None = None

    def as_sent(self, at: int) -> bytes:
        """The line's bytes, with ``bad`` inserted before character ``at``."""
        if self.bad is None:
            return self.text.encode()
        return self.text[:at].encode() + self.bad + self.text[at:].encode()


@st.composite
def messages(draw, csv: bool) -> tuple[list[Line], list[bytes], str]:  # noqa: ANN001
    """(lines, each as sent, the separator): 2-12 lines of 1-2 readings, a random subset (at
    least one) with a non-UTF-8 sequence inserted at a random place."""
    n = draw(st.integers(2, 12))
    bad = draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n))
    lines: list[Line] = []
    for j in range(n):
        sensor = f"u-{j}"
        temp = float(draw(st.integers(-20, 40)))
        hum = draw(st.one_of(st.none(), st.integers(0, 100).map(float)))
        readings = {(sensor, "temperature", temp)} | ({(sensor, "humidity", hum)} if hum is not None else set())
        if csv:  # a quoted note that may hold a delimiter, a quote or a newline
            note = draw(st.text(st.sampled_from('ab ,"\n'), max_size=6))
            head = f'{sensor},{NOW_S - j},{temp:g},{"" if hum is None else f"{hum:g}"},'
            text = head + '"' + note.replace('"', '""') + '"'
            places = list(range(len(head)))  # before the note's comma, or inside its quotes:
            pos = len(head) + 1
            places.append(pos)
            for c in note:
                pos += 2 if c == '"' else 1
                places.append(pos)
        else:
            text = f"air,sensor_id={sensor} temperature={temp:g}" + (f",humidity={hum:g}" if hum is not None else "") \
                + f" {(NOW_S - j) * 10 ** 9}"
            places = list(range(len(text) + 1))
        lines.append(Line(text, readings, places, draw(bad_bytes) if j in bad else None))
    sent = [ln.as_sent(draw(st.sampled_from(ln.places))) for ln in lines]
    sep = draw(st.sampled_from(["\n", "\r\n"]))
    return lines, sent, sep


CSV_OPTIONS = {"sensor_id": "sid", "ts": "ts", "time_format": "epoch_s",
               "values": {"temp": "temperature", "hum": "humidity"}}
CSV_HEADER = "sid,ts,temp,hum,note"


async def _start(dsn: str, fmt: object) -> tuple:
    pool = await services.open_migrated_pool(dsn, min_size=1, max_size=2)
    parts = MonthlyPartitions()
    async with pool.acquire() as c:
        await parts.load(c)
    pipeline = Pipeline(ReadingStore(pool, parts), fmt, ReadingValidator(MetricCatalogue.load()),
                        IngestSettings(), IngestMetrics())
    await pipeline.start()
    return pool, pipeline


async def _through(pipeline: Pipeline, pool, payload: bytes, offset: int) -> tuple[list[tuple], list[dict]]:  # noqa: ANN001
    """``payload`` through the pipeline into PostgreSQL: (readings stored, quarantine rows); both cleared after."""
    await pipeline.submit(MessageBatch(source="kafka", payloads=[payload], topics=["city/lines"], partitions=[0],
                                       offsets=[offset], received_ns=time.time_ns()))
    await pipeline.drain()
    assert not pipeline.halted
    stored = [tuple(r) for r in await pool.fetch(
        "SELECT s.sensor_id, s.metric, r.value FROM readings r JOIN series s ON s.id = r.series_id")]
    rows = [dict(r) for r in await pool.fetch("SELECT reason, detail, payload, item FROM quarantine")]
    await pool.execute("DELETE FROM readings; DELETE FROM quarantine")
    return stored, rows


def check_message(loop: asyncio.AbstractEventLoop, pipeline: Pipeline, pool, offset: int,  # noqa: ANN001
                  message: tuple[list[Line], list[bytes], str], csv: bool) -> None:
    """One generated message through the pipeline into PostgreSQL; AssertionError if a line is lost,
    stored twice, or quarantined for another reason or with other bytes."""
    lines, sent, sep = message
    head = [CSV_HEADER.encode()] if csv else []
    payload = sep.encode().join(head + sent) + sep.encode()
    stored, rows = loop.run_until_complete(_through(pipeline, pool, payload, offset))
    first = 1 if csv else 0  # the item of line j (CSV: record j + 1, the header is record 0)
    expected = sorted(r for ln in lines if ln.bad is None for r in ln.readings)
    assert sorted(stored) == expected, (payload, rows)  # every clean line's readings, each once
    assert all(r["reason"] == "invalid_utf8" for r in rows), rows
    by_item = {r["item"]: r for r in rows}
    bad = {j + first: ln for j, ln in enumerate(lines) if ln.bad is not None}
    assert len(by_item) == len(rows) and sorted(by_item) == sorted(bad), (payload, rows)
    stored_lines = {s for s, _, _ in stored}
    assert len(stored_lines) + len(rows) == len(lines)  # conserved: no line lost, none twice
    for item, ln in bad.items():
        row = by_item[item]
        raw = bytes(row["payload"])
        assert ln.bad in raw and "not UTF-8" in row["detail"], (row, ln)
        if not csv:
            assert raw == sent[item], (raw, sent[item])  # the line as received
        else:  # the record's cells as received (the delimiter-joined cells, as every CSV row)
            assert raw.replace(b'"', b"") == sent[item - first].replace(b'"', b""), (raw, sent[item - first])


def _run_property(dsn: str, fmt: object, csv: bool) -> None:
    loop = asyncio.new_event_loop()
    pool, pipeline = loop.run_until_complete(_start(dsn, fmt))
    offsets = itertools.count()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(message=messages(csv))
    def check(message: tuple[list[Line], list[bytes], str]) -> None:
        check_message(loop, pipeline, pool, next(offsets), message, csv)

    try:
        check()
    finally:
        loop.run_until_complete(pipeline.stop())
        loop.run_until_complete(pool.close())
        loop.close()


def test_a_non_utf8_line_protocol_line_costs_that_line_only(fresh_db: str) -> None:
    _run_property(fresh_db, LineProtocolFormat(), csv=False)


def test_a_non_utf8_csv_row_costs_that_row_only(fresh_db: str) -> None:
    _run_property(fresh_db, CsvFormat(CSV_OPTIONS), csv=True)


def test_a_csv_header_that_is_not_utf8_refuses_the_message_and_says_why() -> None:
    fmt = CsvFormat(CSV_OPTIONS)
    payload = b"sid,ts,te\xffmp,hum,note\nu-1,1700000000,1,2,x\n"
    out = fmt.decode(MessageBatch(source="kafka", payloads=[payload], topics=["t"], partitions=[0], offsets=[0]))
    assert len(out.columns) == 0
    (r,) = out.rejections
    assert (r.reason.value, r.item, r.payload) == ("invalid_utf8", -1, payload)
    assert "header row is not UTF-8" in r.detail and "ff" in r.detail


def test_a_comment_line_that_is_not_utf8_is_still_a_comment() -> None:
    payload = f"# caf\xe9\nair,sensor_id=a temperature=1 {NOW_S * 10 ** 9}\n".encode("latin-1")
    out = LineProtocolFormat().decode(MessageBatch(source="kafka", payloads=[payload], topics=["t"], partitions=[0],
                                                   offsets=[0]))
    assert out.rejections == [] and out.columns.sensor_id == ["a"]
