"""A rejected SenML record is quarantined as the bytes it arrived as (payload44).

README: the quarantine keeps "the raw payload exactly as received (for an array item, the item's
own bytes within the message)". For canonical JSON arrays that held; a SenML JSON record was
quarantined re-encoded from its parsed form instead: ``{"n":"temperature","v":NaN}`` became
``{"n":"temperature","v":null}`` (a ``non_finite`` row showing a null), ``"bt":1e309`` became
``"bt":null``, ``1796455833`` became ``1796455833.0`` and labels the decoder ignores vanished. So
the row neither replayed nor showed the sender what to fix.

The packs here are what an integrator sends: records in any key order, with whitespace between
tokens and items, numbers in every JSON form (``21``, ``2.15e1``, ``-0``), labels the decoder
ignores, escaped names, and bad records mixed with good ones (``NaN`` / ``Infinity`` / ``1e309``
values and times, values as strings, missing values, unknown or empty metrics, out-of-range
values and units, too-old times, records that are not objects). The properties:

- in process (every generated pack): each good record is exactly one reading, each bad record
  exactly one rejection with a reason, and its payload is the record's bytes as sent;
- through ``urbanpulse run`` on real PostgreSQL over HTTP (``/ingest/senml`` and
  ``application/senml+json``): the 200 counts what was stored and rejected, each good record is
  stored exactly once, the quarantine rows hold exactly the bad records' bytes as sent with the
  expected reasons, a resend stores nothing new, and a good pack after it is stored.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings, strategies as st

from service_process import ServiceProcess, db_rows, db_value

NOW_S = int(time.time()) - 3600
E2E_EXAMPLES = int(os.environ.get("SENML_BYTES_EXAMPLES", "15"))

#: bad record kinds: (the record's own fields as JSON text, the reason it must be quarantined with)
BAD: dict[str, tuple[list[tuple[str, str]], str]] = {
    "nan_value": ([("n", '"temperature"'), ("v", "NaN")], "non_finite"),
    "inf_value": ([("n", '"temperature"'), ("v", "Infinity")], "non_finite"),
    "neg_inf_value": ([("n", '"humidity"'), ("v", "-Infinity")], "non_finite"),
    "overflow_value": ([("n", '"temperature"'), ("v", "1e309")], "non_finite"),
    "string_value": ([("n", '"temperature"'), ("v", '"21.5"')], "bad_type"),
    "bool_value": ([("n", '"temperature"'), ("v", "true")], "bad_type"),
    "overflow_time": ([("n", '"temperature"'), ("v", "21"), ("t", "1e309")], "bad_timestamp"),
    "nan_time": ([("n", '"temperature"'), ("v", "21"), ("t", "NaN")], "bad_timestamp"),
    "string_time": ([("n", '"temperature"'), ("v", "21"), ("t", '"-5"')], "bad_timestamp"),
    "no_value": ([("n", '"temperature"'), ("u", '"Cel"')], "missing_value"),
    "unknown_metric": ([("n", '"nosuch_metric"'), ("v", "1")], "unknown_metric"),
    "empty_metric": ([("n", '""'), ("v", "1")], "missing_field"),  # no name part, and no unit to name it
    "out_of_range": ([("n", '"humidity"'), ("v", "1e5")], "out_of_range"),
    "kelvin_out_of_range": ([("n", '"temperature"'), ("v", "2.15e1"), ("u", '"K"')], "out_of_range"),
    "tiny_value": ([("n", '"temperature"'), ("v", "1e-320")], "out_of_range"),
    "too_old": ([("n", '"humidity"'), ("v", "50"), ("t", "-86400000")], "too_old"),
}
#: items that are not records at all (never the first, which carries the base fields)
NOT_OBJECTS = ["5", "null", "[]", '"temperature"', "[1, 2]"]
#: a good record's name: n, or no name part and a unit that names the metric (RFC 8428 §5.1.3)
GOOD_NAMES = [(("n", '"temperature"'),), (("n", '"humidity"'),), (("n", '"temp"'),), (("n", '"te\\u006dperature"'),),
              (("n", '""'), ("u", '"Cel"')), (("u", '"%RH"'),)]
GOOD_NUMBERS = ["21", "21.5", "2.15e1", "-0", "21.50", "1.8E1", "3.25"]
EXTRA_LABELS = [("ut", "60"), ("x-note", '"caf\\u00e9 \\"q\\""'), ("comment", '"fine"'), ("bs", "0")]
SPACES = ["", " ", "\n", "\t", "  "]


@dataclass
class Pack:
    """A generated pack: its bytes, and for each record what must become of it."""

    body: bytes
    sensor: str
    good: list[int] = field(default_factory=list)  # record indices that are readings
    bad: dict[int, tuple[bytes, str]] = field(default_factory=dict)  # index -> (bytes as sent, reason)
    drawn: list[str] = field(default_factory=list)


@st.composite
def packs(draw: st.DrawFn, sensor: str = "s44") -> Pack:
    """One SenML JSON pack of good and bad records, written the many ways JSON allows."""
    n = draw(st.integers(1, 8))
    gap = st.sampled_from(SPACES)
    items: list[bytes] = []
    pack = Pack(b"", sensor)
    for j in range(n):
        kind = draw(st.sampled_from(["good"] * 3 + sorted(BAD) + (["not_object"] if j else [])))
        pack.drawn.append(kind)
        if kind == "not_object":
            text = draw(st.sampled_from(NOT_OBJECTS))
            items.append(text.encode())
            pack.bad[j] = (text.encode(), "not_an_object")
            continue
        if kind == "good":
            fields = list(draw(st.sampled_from(GOOD_NAMES))) + [("v", draw(st.sampled_from(GOOD_NUMBERS)))]
        else:
            fields = list(BAD[kind][0])
        if not any(k == "t" for k, _ in fields):
            fields.append(("t", str(-j) if draw(st.booleans()) else f"{-j}.0"))
        if j == 0:
            fields += [("bn", json.dumps(sensor + draw(st.sampled_from([":", "/", "-", ""])))), ("bt", str(NOW_S))]
        fields += draw(st.lists(st.sampled_from(EXTRA_LABELS), max_size=2, unique=True))
        fields = draw(st.permutations(fields))
        text = "{" + ",".join(f"{draw(gap)}\"{k}\"{draw(gap)}:{draw(gap)}{v}{draw(gap)}" for k, v in fields) + "}"
        items.append(text.encode())
        if kind == "good":
            pack.good.append(j)
        else:
            pack.bad[j] = (text.encode(), BAD[kind][1])
    body = draw(gap).encode() + b"[" + b",".join(draw(gap).encode() + i + draw(gap).encode() for i in items) + b"]"
    pack.body = body
    return pack


# -- in process ------------------------------------------------------------------------------------


def _stage():
    from urbanpulse.formats.base import DecodeLimits
    from urbanpulse.pipeline.decode import DecodeStage
    from urbanpulse.plugins import build_format
    from urbanpulse.quality.catalogue import MetricCatalogue
    from urbanpulse.quality.validate import ReadingValidator, TimeRules

    catalogue = MetricCatalogue.load()
    fmt = build_format("senml", None, DecodeLimits(), catalogue, where="test")
    validator = ReadingValidator(catalogue, TimeRules(300.0, 7 * 86400.0, 946684800.0, 366))
    return DecodeStage(fmt, validator, None)


STAGE = None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(packs(), min_size=1, max_size=4))
def test_each_record_is_one_reading_or_quarantined_as_its_bytes_as_sent(batch: list[Pack]) -> None:
    from urbanpulse.formats.base import MessageBatch

    global STAGE
    STAGE = STAGE or _stage()
    for p in batch:
        note(f"{p.drawn} {p.body!r}")
    topics = [f"senml/{m}" for m in range(len(batch))]  # which message a rejection is of
    out = STAGE.decode(MessageBatch(source="test", payloads=[p.body for p in batch], topics=topics,
                                    received_ns=time.time_ns()))
    r = out.readings
    got_readings = sorted(zip(map(int, r.msg), map(int, r.item)))
    assert got_readings == sorted((m, j) for m, p in enumerate(batch) for j in p.good), out.rejections
    assert set(r.sensor_id) <= {"s44"}
    got: dict[tuple[str, int, bytes], list[str]] = {}
    for rej in out.rejections:
        got.setdefault((rej.topic, rej.item, rej.payload), []).append(rej.reason.value)
    want = {(topics[m], j, raw): [reason] for m, p in enumerate(batch) for j, (raw, reason) in p.bad.items()}
    assert got == want


# -- through the running service -------------------------------------------------------------------

#: each example costs requests to a running service: a failure is reported as drawn, not shrunk
NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]


def _post(svc: ServiceProcess, body: bytes, via_type: bool) -> httpx.Response:
    """``body`` to ``/ingest/senml``, or to ``/ingest`` named by its media type."""
    headers = dict(svc.auth("ingest"))
    if via_type:
        headers["Content-Type"] = "application/senml+json"
        return httpx.post(svc.url + "/ingest", content=body, headers=headers, timeout=60)
    headers["Content-Type"] = "application/json"
    return httpx.post(svc.url + "/ingest/senml", content=body, headers=headers, timeout=60)


def _stored(dsn: str, sensor: str) -> int:
    return int(db_value(dsn, "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id "
                             "WHERE s.sensor_id = $1", sensor))


@pytest.mark.integration
def test_senml_over_http_stores_good_records_once_and_quarantines_bad_ones_as_sent(fresh_db: str,
                                                                                   tmp_path: Path) -> None:
    config = {"database": {"dsn": fresh_db}, "detection": {"enabled": False},
              "validation": {"max_age_s": 7 * 86400.0}}
    svc = ServiceProcess(config, tmp_path).start()
    run = uuid.uuid4().hex[:6]
    n = {"i": 0}
    try:
        @settings(max_examples=E2E_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                  phases=NO_SHRINK)
        @given(data=st.data(), via_type=st.booleans())
        def check(data: st.DataObject, via_type: bool) -> None:
            n["i"] += 1
            sensor = f"sb{run}-{n['i']}"
            pack = data.draw(packs(sensor))
            note(f"{pack.drawn} {pack.body!r}")
            last_id = int(db_value(fresh_db, "SELECT coalesce(max(id), 0) FROM quarantine"))
            answer = _post(svc, pack.body, via_type)
            assert answer.status_code == 200, answer.text
            doc = answer.json()
            note(f"answer={doc}")
            assert doc["stored"] == len(pack.good), doc
            assert sorted((x["item"], x["reason"]) for x in doc["rejected"]) == \
                sorted((j, reason) for j, (_, reason) in pack.bad.items()), doc
            assert _stored(fresh_db, sensor) == len(pack.good)  # each good record exactly once
            rows = db_rows(fresh_db, "SELECT item, reason, payload FROM quarantine WHERE id > $1", last_id)
            assert sorted((r["item"], r["reason"], bytes(r["payload"])) for r in rows) == \
                sorted((j, reason, raw) for j, (raw, reason) in pack.bad.items())
            again = _post(svc, pack.body, not via_type)  # a resend: nothing stored twice
            assert again.status_code == 200 and again.json()["stored"] == len(pack.good), again.text
            assert _stored(fresh_db, sensor) == len(pack.good)
            after = f'[{{"bn":"{sensor}-next:","bt":{NOW_S},"n":"temperature","v":20}}]'.encode()
            assert _post(svc, after, via_type).json()["stored"] == 1  # the source keeps going
            assert _stored(fresh_db, f"{sensor}-next") == 1

        check()
    finally:
        svc.stop_quietly()
