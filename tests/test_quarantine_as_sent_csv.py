"""A rejected CSV row is quarantined as the bytes it arrived as (csv46).

Every other format quarantines a rejected part as sent (payload44, payload45, newcomer46); a CSV row was its cells
joined again with the delimiter, so ``"21,5"`` became ``21,5`` (a row of one cell more), ``"a""b"`` became ``a"b``,
spaces inside quotes and a ``\\r\\n`` inside a quoted field were lost. Property over generated CSV bodies (quoted
cells, embedded delimiters, quotes and line breaks, ``\\r\\n``/``\\n``/``\\r`` between rows, a UTF-8 byte order mark, a
bad cell anywhere, rejected at decoding or validation): every quarantine row's payload is exactly its row's bytes in
the body (every line a quoted field spans, without the line break that ends the row). DecodeStage in process."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from urbanpulse.formats.base import DecodeLimits, MessageBatch
from urbanpulse.pipeline.decode import DecodeStage
from urbanpulse.plugins import build_format
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator, TimeRules

NOW_S = int(time.time()) - 600
CATALOGUE = MetricCatalogue.load()
COLUMNS = {"pm25": "pm2_5", "hum": "humidity"}


def _stage(delimiter: str) -> DecodeStage:
    options = {"sensor_id": "sensor", "ts": "time", "time_format": "epoch_s", "values": COLUMNS,
               "delimiter": delimiter, "missing": "reject"}
    built = build_format("csv", options, DecodeLimits(), CATALOGUE, where="test")
    return DecodeStage(built, ReadingValidator(CATALOGUE, TimeRules(300.0, 7 * 86400.0, 946684800.0, 366)), None)


STAGES = {d: _stage(d) for d in (",", ";")}
#: a value cell as sent, given the delimiter, and whether it is stored
GOOD_CELLS = ["12.5", " 12.5", '"12.5"', '" 12.5 "', "12.50"]
BAD_CELLS = ["abc", '"12{d}5"', '"a""b"', '"1\r\n2"', '"1\n2"', "1e5", "-3", '""', '" "']
NOTES = ["", "x", '"a{d}b"', '"say ""hi"""', '"two\r\nlines"', '"two\nlines"', '"  spaced  "', '"{d}"', "café"]


@st.composite
def csv_bodies(draw: st.DrawFn) -> tuple[str, bytes, dict[int, bytes], int]:
    """(delimiter, body, {record index: the row's bytes as sent} of the rows rejected, readings stored)."""
    d = draw(st.sampled_from(sorted(STAGES)))
    ends = st.sampled_from(["\r\n", "\n", "\r"])
    sensor = draw(st.sampled_from(["s1", '"s1"', '" s1"', '"s{d}1"'])).format(d=d)
    rows = [d.join(["sensor", "time", "pm25", "note", "hum"])]
    bad: dict[int, bytes] = {}
    good = 0
    for j in range(1, draw(st.integers(1, 6)) + 1):
        cells = [draw(st.sampled_from(GOOD_CELLS + BAD_CELLS)).format(d=d) for _ in COLUMNS]
        time_cell = str(NOW_S - j) if draw(st.booleans()) else f'"{NOW_S - j}"'
        note = draw(st.sampled_from(NOTES)).format(d=d)
        row = d.join([sensor, time_cell, cells[0], note, cells[1]])
        rows.append(row)
        stored = sum(c in GOOD_CELLS for c in cells)
        good += stored
        if stored < len(cells):
            bad[j] = row.encode()
    seps = [draw(ends) for _ in rows]
    body = "".join(r + s for r, s in zip(rows, seps))
    if draw(st.booleans()):  # the last row without a line break
        body = body[: -len(seps[-1])]
    bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    return d, bom + body.encode(), bad, good


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_bodies())
def test_a_rejected_csv_row_is_quarantined_as_sent(case: tuple[str, bytes, dict[int, bytes], int]) -> None:
    delimiter, body, bad, good = case
    batch = MessageBatch(source="http", payloads=[body], topics=["csv"], received_ns=time.time_ns())
    out = STAGES[delimiter].decode(batch)
    got = {(r.item, r.payload) for r in out.rejections}
    assert got == set(bad.items()), (body, [(r.item, r.reason, r.detail) for r in out.rejections])
    assert len(out.readings) == good


def test_a_row_rejected_at_validation_and_one_at_decoding_keep_their_quoting() -> None:
    """The examples the property generalises: a value out of range (rejected by the validator, after decoding)
    and one not a number, each in a row with quoted cells, a doubled quote and a CRLF inside quotes."""
    rows = ['sensor,time,pm25,note,hum', f'"s1",{NOW_S},"1e5","say ""hi""",  12.5',
            f's1,"{NOW_S - 1}",12.5,"two\r\nlines","12,5"', f's1,{NOW_S - 2},12.5,,12.5']
    body = "\r\n".join(rows).encode()
    batch = MessageBatch(source="http", payloads=[body], topics=["csv"], received_ns=time.time_ns())
    out = STAGES[","].decode(batch)
    assert sorted((r.item, r.reason, r.payload) for r in out.rejections) == [
        (1, "out_of_range", rows[1].encode()), (2, "bad_type", rows[2].encode())]
    assert len(out.readings) == 4
