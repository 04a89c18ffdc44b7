"""A lone surrogate in one SenML record costs that record, not its pack (benchmarks/README.md ``privq34``).

Before: a JSON-escaped ``"\\ud800"`` in a record's ``n``, ``u``, ``vs``, ``v``, ``t``, a base field
or an unknown label made msgspec raise ``UnicodeEncodeError`` (converting the record, or encoding it
for its rejection), and the whole message was quarantined as ``decode_error``: the good records of
the same pack were lost to quarantine. Now the record is rejected alone with a reason (and so is a
later record that needs a base field the bad one could not set), and the others are stored.
"""

from __future__ import annotations

import json
import time

from hypothesis import HealthCheck, given, settings, strategies as st

from urbanpulse.formats.base import MessageBatch
from urbanpulse.model import Reason
from urbanpulse.pipeline.decode import DecodeStage
from urbanpulse.plugins import build_format
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator

NOW_S = float(int(time.time()) - 120)
SURROGATES = ["\ud800", "\udfff", "a\udc80b", "\udbff"]
FIELDS = ["n", "u", "v", "t", "vs", "bn", "bu", "bt", "label", "record"]
STAGE = DecodeStage(build_format("senml", {"non_numeric": "reject"}), ReadingValidator(MetricCatalogue.load()), None)


def _dump(obj: object) -> bytes:
    """JSON with lone surrogates written as ``\\u`` escapes, as a hostile sender writes them."""
    return json.dumps(obj, ensure_ascii=True).encode("ascii")


@st.composite
def packs(draw) -> tuple[list[dict], list[dict], set[int]]:  # noqa: ANN001
    """(clean pack, the pack with surrogates injected, the records the injections make bad)."""
    n = draw(st.integers(2, 8))
    clean: list[dict] = [{"bn": "dev-1:", "bt": NOW_S, "bu": "Cel", "n": "temperature", "u": "Cel", "v": 20.5}]
    for k in range(1, n):
        rec = {"n": draw(st.sampled_from(["temperature", "humidity"])), "v": float(draw(st.integers(1, 60))),
               "t": float(-k)}
        if rec["n"] == "humidity":
            rec["u"] = "%RH"
        clean.append(rec)
    hostile = [dict(r) for r in clean]
    bad: set[int] = set()
    for _ in range(draw(st.integers(1, 3))):
        j = draw(st.integers(0, n - 1))
        field = draw(st.sampled_from(FIELDS))
        text = draw(st.sampled_from(SURROGATES))
        rec = hostile[j]
        if not isinstance(rec, dict):  # replaced by a string already
            continue
        if field == "record":  # the record itself a string (not record 0: its base fields would go with it)
            if j > 0 and rec == clean[j]:  # (an injected base field would go with it too)
                hostile[j] = text
                bad.add(j)
            continue
        if field == "label":  # an unknown label is ignored: the record stays good
            rec[text + "x"] = 1
            continue
        if field == "vs":  # a string value instead of the number
            rec.pop("v", None)
        rec[field] = text
        if field in ("n", "u", "v", "t", "vs"):
            bad.add(j)
        elif field in ("bn", "bt"):  # every record from here on resolves against it
            bad.update(range(j, n))
        else:  # bu: the unit of every record from here on that states none
            bad.update(k for k in range(j, n) if "u" not in clean[k])
    return clean, hostile, bad


def _decode(pack: list[dict]):  # noqa: ANN202
    batch = MessageBatch(source="kafka", payloads=[_dump(pack)], topics=["t"], partitions=[0], offsets=[0],
                         received_ns=time.time_ns())
    return STAGE.decode(batch)  # never raises


def _by_item(validated) -> dict[int, list[tuple]]:  # noqa: ANN001
    cols = validated.readings
    out: dict[int, list[tuple]] = {}
    for k in range(len(cols)):
        out.setdefault(int(cols.item[k]), []).append(
            (cols.sensor_id[k], cols.metric[k], int(cols.ts_us[k]), float(cols.value[k])))
    return out


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(pack=packs())
def test_a_surrogate_in_a_senml_record_rejects_that_record_and_keeps_the_others(pack) -> None:  # noqa: ANN001
    clean, hostile, bad = pack
    expected = _by_item(_decode(clean))
    assert sorted(expected) == list(range(len(clean)))  # the clean pack is all good
    validated = _decode(hostile)
    got = _by_item(validated)
    rejected: dict[int, list] = {}
    for r in validated.rejections:
        assert r.reason is not Reason.DECODE_ERROR and r.item >= 0, (r.reason, r.detail, hostile)
        assert r.detail and type(r.payload) is bytes and r.payload
        r.detail.encode("utf-8")  # storable
        rejected.setdefault(r.item, []).append(r.reason)
    for j in range(len(clean)):
        if j in bad:
            assert j not in got and rejected.get(j), (j, hostile, got, rejected)
        else:
            assert got.get(j) == expected[j] and j not in rejected, (j, hostile, got, rejected)


def test_the_rejected_records_payload_is_the_record_as_sent() -> None:
    pack = [{"bn": "dev-1:", "bt": NOW_S, "n": "temperature", "u": "Cel", "v": 20.5},
            {"n": "label", "vs": "\ud800"}, {"n": "humidity", "u": "%RH", "v": 50.0, "x\udfff": 1}]
    validated = _decode(pack)
    assert validated.readings.metric == ["temperature", "humidity"]
    (r,) = validated.rejections
    assert (r.reason, r.item) == (Reason.BAD_TYPE, 1)
    assert json.loads(r.payload) == {"label": "\ud800"}  # the field as sent, escaped as it came
