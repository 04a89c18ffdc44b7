"""The format plugin docs/connectors.md shows ("A whole format plugin") runs: it passes the conformance kit, and the
payload the docs describe decodes as they say (`pm25` stored as pm2_5, a °F temperature in °C, a bad item rejected
alone).

newcomer45 wrote a format plugin for a new vendor from the docs alone: the checklist named `decode_message()` and
`rows.add(...)` but neither their arguments nor what a row may hold, so the plugin was written from vendor.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings, strategies as st

from urbanpulse.formats.base import MessageBatch
from urbanpulse.model import Reason
from urbanpulse.testing.kit import check_format

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
