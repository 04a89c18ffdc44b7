"""The format plugin docs/connectors.md shows ("A whole format plugin") runs: it passes the conformance kit, and the
payload the docs describe decodes as they say (`pm25` stored as pm2_5, a °F temperature in °C, a bad item rejected
alone).

newcomer45 wrote a format plugin for a new vendor from the docs alone: the checklist named `decode_message()` and
`rows.add(...)` but neither their arguments nor what a row may hold, so the plugin was written from vendor.py.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from urbanpulse.formats.base import MessageBatch
from urbanpulse.model import Reason
from urbanpulse.pipeline.decode import DecodeStage
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator, TimeRules
from urbanpulse.testing.kit import check_format

CATALOGUE = MetricCatalogue.load()
DOC = Path(__file__).resolve().parents[1] / "docs" / "connectors.md"


def _example() -> ModuleType:
    """The docs' plugin module, from its ```python block headed `# src/urbanpulse_acme/__init__.py`."""
    blocks = re.findall(r"```python\n(# src/urbanpulse_acme/__init__\.py\n.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1, "docs/connectors.md has no (or several) example format plugin blocks"
    module = ModuleType("urbanpulse_acme")
    exec(compile(blocks[0], str(DOC), "exec"), module.__dict__)  # noqa: S102 - our own docs
    return module


@pytest.fixture(scope="module")
def acme() -> ModuleType:
    return _example()


def _push(device: str, t: int, data: list[object]) -> bytes:
    return json.dumps({"device": device, "time": t, "data": data}).encode()


def test_the_docs_plugin_passes_the_conformance_kit(acme: ModuleType) -> None:
    check_format(acme.AcmeFormat(), valid=[_push("ab-1", 1764900000, [{"type": "pm25", "val": 3.1, "unit": "ug/m3"}])])


@given(t=st.integers(1_600_000_000, 1_900_000_000), pm=st.floats(0, 900), fahrenheit=st.floats(-40, 120),
       bad=st.sampled_from([{"val": 2}, {"type": "pm10", "val": "n/a"}, {"type": "pm10", "val": 1, "unit": 3}, 7]))
@settings(max_examples=50, deadline=None)
def test_the_docs_payload_decodes_as_the_docs_say(acme: ModuleType, t: int, pm: float, fahrenheit: float,
                                                  bad: object) -> None:
    fmt = acme.AcmeFormat()
    payload = _push("ab-1", t, [{"type": "pm25", "val": pm, "unit": "ug/m3"}, bad,
                                {"type": "temp", "val": fahrenheit, "unit": "°F"}])
    d = fmt.decode(MessageBatch(source="test", payloads=[payload]))
    c = d.columns
    assert c.sensor_id == ["acme-ab-1", "acme-ab-1"] and c.metric == ["pm2_5", "temperature"]
    assert c.ts_us.tolist() == [t * 1_000_000] * 2
    assert c.value[0] == pytest.approx(pm) and c.value[1] == pytest.approx((fahrenheit - 32) * 5 / 9)
    assert [(r.reason, r.item) for r in d.rejections] == [(Reason.BAD_TYPE, 1)]


SPACE = st.sampled_from(["", " ", "  ", "\n", "\t "])
NOW_S = int(time.time()) - 600


@st.composite
def _items(draw: st.DrawFn) -> tuple[str, tuple[Reason, str] | None]:
    """(a `data` item as JSON text with the spacing and number spelling a gateway may send, the reason it is
    quarantined for or None when it is stored). The exact text is what its quarantine row must hold."""
    sp = lambda: draw(SPACE)  # noqa: E731
    kind = draw(st.sampled_from(["good", "text_value", "no_type", "not_object", "out_of_range", "unknown_metric"]))
    value = draw(st.floats(0, 900).map(lambda x: round(x, 2)))
    number = draw(st.sampled_from([repr(value), f"{value!r}0", f"{value:e}"]))
    if kind == "not_object":
        return sp() + draw(st.sampled_from(["7", "null", '"pm25"', "[1, 2]"])) + sp(), (Reason.BAD_TYPE, "")
    if kind == "out_of_range":
        number = draw(st.sampled_from(["-5", "-3.50", "2.5e4"]))
    members = {"type": f'"type"{sp()}:{sp()}"{"pm10" if kind != "unknown_metric" else "glowiness"}"',
               "val": f'"val"{sp()}:{sp()}{number if kind != "text_value" else chr(34) + "n/a" + chr(34)}'}
    if kind == "no_type":
        del members["type"]
    order = draw(st.permutations(sorted(members)))
    text = "{" + sp() + ("," + sp()).join(members[k] for k in order) + sp() + "}"
    reason = {"good": None, "text_value": Reason.BAD_TYPE, "no_type": Reason.BAD_TYPE,
              "out_of_range": Reason.OUT_OF_RANGE, "unknown_metric": Reason.UNKNOWN_METRIC}[kind]
    return text, None if reason is None else (reason, "")


@given(items=st.lists(_items(), min_size=1, max_size=6))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_docs_plugin_quarantines_a_rejected_item_as_the_bytes_sent(acme: ModuleType,
                                                                       items: list[tuple[str, object]]) -> None:
    """Each rejected `data` item, whether the format rejects it (not a number, no type) or validation does (out of
    range, unknown metric), is quarantined as its own bytes as sent, never Python `repr` text and never the whole
    message (newcomer47: the example quarantined `{'type': 'pm10', 'val': 'n/a'}` and, for a reading out of range,
    the whole push, once per such reading)."""
    payload = ('{"device": "ab-1", "time": ' + str(NOW_S) + ', "data": [' + ", ".join(t for t, _ in items) + "]}").encode()
    assert json.loads(payload)  # the generator writes JSON
    validator = ReadingValidator(CATALOGUE, TimeRules(300.0, 7 * 86400.0, 946684800.0, 366))
    stage = DecodeStage(acme.AcmeFormat(catalogue=CATALOGUE), validator, None)
    out = stage.decode(MessageBatch(source="test", payloads=[payload], topics=["acme/gw"], received_ns=time.time_ns()))
    got = sorted((r.item, r.reason, r.payload) for r in out.rejections)
    want = sorted((j, bad[0], text.strip().encode()) for j, (text, bad) in enumerate(items) if bad is not None)
    assert got == want
    assert len(out.readings.value) == sum(bad is None for _, bad in items)
