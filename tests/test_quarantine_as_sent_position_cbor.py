"""OwnTracks ``position_metric`` readings and SenML CBOR records are quarantined as the bytes they arrived as.

payload44 and payload45 made SenML JSON records and the vendor formats' fields quarantined as sent
(``formats/as_sent.py``); two were left re-encoded (payload45, "noticed, left alone"):
- an OwnTracks location's position reading (``position_metric``) was quarantined as ``{"lat":..,"lon":..}`` rebuilt
  from the parsed numbers: ``"lat" : 91.50`` became ``{"lat":91.5,"lon":...}``;
- a rejected SenML CBOR record was quarantined as JSON of its parsed form (``{"n":"temperature","v":null}`` for a
  record whose ``v`` was a CBOR NaN), not CBOR at all.
Now the position row is the location's ``lat`` and ``lon`` members as sent, in the order sent, in one object; the
CBOR row is the record's bytes within its pack. Properties over generated messages (DecodeStage in process)."""

from __future__ import annotations

import json
import math
import time

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from urbanpulse.formats.base import DecodeLimits, MessageBatch
from urbanpulse.pipeline.decode import DecodeStage
from urbanpulse.plugins import build_format
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator, TimeRules

NOW_S = int(time.time()) - 600
CATALOGUE = MetricCatalogue.load()


def _stage(fmt: str, options: dict | None = None) -> DecodeStage:
    built = build_format(fmt, options, DecodeLimits(), CATALOGUE, where="test")
    return DecodeStage(built, ReadingValidator(CATALOGUE, TimeRules(300.0, 7 * 86400.0, 946684800.0, 366)), None)


OWNTRACKS = _stage("owntracks", {"position_metric": "position", "fields": {}})
SENML_CBOR = _stage("senml_cbor")
SPACE = st.sampled_from(["", " ", "  ", "\n", "\t "])


def _number(draw: st.DrawFn, value: float) -> str:
    """``value`` in one of the forms JSON allows (``51.5``, ``51.50``, ``5.15e1``)."""
    form = draw(st.sampled_from(["repr", "zeros", "exp"]))
    if form == "zeros":
        return f"{value!r}0"
    if form == "exp":
        return f"{value:e}"
    return repr(value)


@st.composite
def locations(draw: st.DrawFn) -> tuple[bytes, bytes | None]:
    """(an OwnTracks location, the position row's bytes as sent or None when the position is stored)."""
    bad = draw(st.sampled_from(["none", "lat", "lon", "old"]))
    lat = draw(st.floats(-89.9, 89.9).map(lambda x: round(x, 4)))
    lon = draw(st.floats(-179.9, 179.9).map(lambda x: round(x, 4)))
    if bad == "lat":
        lat = draw(st.sampled_from([91.5, -95.25, 1000.0]))
    if bad == "lon":
        lon = draw(st.sampled_from([180.5, -200.0]))
    tst = NOW_S - (30 * 86400 if bad == "old" else 5)
    sp = lambda: draw(SPACE)  # noqa: E731
    members = {"lat": f'"lat"{sp()}:{sp()}{_number(draw, lat)}', "lon": f'"lon"{sp()}:{sp()}{_number(draw, lon)}',
               "tst": f'"tst":{tst}', "_type": '"_type":"location"', "tid": '"tid":"ph"',
               "acc": f'"acc":{sp()}{draw(st.integers(1, 50))}'}
    order = draw(st.permutations(sorted(members)))
    body = "{" + sp() + ("," + sp()).join(members[k] for k in order) + sp() + "}"
    position = "{" + ",".join(members[k] for k in order if k in ("lat", "lon")) + "}"
    return body.encode(), None if bad == "none" else position.encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(locations(), min_size=1, max_size=4))
def test_a_rejected_owntracks_position_is_quarantined_as_sent(msgs: list[tuple[bytes, bytes | None]]) -> None:
    batch = MessageBatch(source="mqtt", payloads=[b for b, _ in msgs], topics=[f"owntracks/u/d{k}" for k in
                                                                            range(len(msgs))],
                         received_ns=time.time_ns())
    out = OWNTRACKS.decode(batch)
    got = sorted((r.topic, r.payload) for r in out.rejections)
    want = sorted((f"owntracks/u/d{k}", raw) for k, (_, raw) in enumerate(msgs) if raw is not None)
    assert got == want, [json.loads(b) for b, _ in msgs]
    assert len(out.readings) == sum(raw is None for _, raw in msgs)


def _cbor_float(draw: st.DrawFn, value: float) -> bytes:
    """``value`` as a CBOR float of a width a sender may choose (half where exact, single or double)."""
    width = draw(st.sampled_from(["double", "single"] + (["half"] if value in (0.0, 1.5, 1000.0) or
                                                         math.isnan(value) or math.isinf(value) else [])))
    import struct

    if width == "half":
        return b"\xf9" + struct.pack(">e", value)
    if width == "single":
        return b"\xfa" + struct.pack(">f", value)
    return b"\xfb" + struct.pack(">d", value)


@st.composite
def cbor_packs(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, bytes]], int]:
    """(a SenML CBOR pack, [(record index, its bytes as sent)] of the records rejected, readings stored)."""
    records: list[bytes] = []
    bad: list[tuple[int, bytes]] = []
    good = 0
    for j in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["good", "nan", "inf", "range", "metric", "old"]))
        value = {"good": 21.5, "nan": math.nan, "inf": math.inf, "range": 1000.0, "metric": 1.5,
                 "old": 21.5}[kind]
        name = "no_such_metric" if kind == "metric" else "temperature"
        t = NOW_S - (30 * 86400 if kind == "old" else j)
        fields = [cbor2.dumps(-2) + cbor2.dumps(f"dev{j}:") if j == 0 or draw(st.booleans()) else b"",
                  cbor2.dumps(0) + cbor2.dumps(name), cbor2.dumps(2) + _cbor_float(draw, value),
                  cbor2.dumps(6) + cbor2.dumps(t)]
        if draw(st.booleans()):
            fields.append(cbor2.dumps(1) + cbor2.dumps("Cel"))
        fields = [f for f in fields if f]
        record = bytes([0xA0 | len(fields)]) + b"".join(draw(st.permutations(fields)))
        records.append(record)
        if kind == "good":
            good += 1
        else:
            bad.append((j, record))
    head = bytes([0x80 | len(records)]) if draw(st.booleans()) else b"\x9f"
    return head + b"".join(records) + (b"\xff" if head == b"\x9f" else b""), bad, good


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cbor_packs())
def test_a_rejected_senml_cbor_record_is_quarantined_as_sent(pack: tuple[bytes, list[tuple[int, bytes]], int]) -> None:
    body, bad, good = pack
    batch = MessageBatch(source="http", payloads=[body], topics=["senml"], received_ns=time.time_ns())
    out = SENML_CBOR.decode(batch)
    assert sorted((r.item, r.payload) for r in out.rejections) == sorted(bad), cbor2.loads(body)
    assert len(out.readings) == good
