"""A format plugin that hands `Rows.add` something that is not a number costs that message, not the batch.

An integrator's first format (docs/connectors.md: subclass VendorFormat, `rows.add(...)` the readings)
passed a payload's string field straight through as a value. `Rows.add` appended it and the
failure came later, in `Rows.columns()`, outside the per-message barrier: `VendorFormat.decode` raised
for the whole batch (the contract says it never raises) and `urbanpulse decode` printed a traceback.
Now `Rows.add` refuses a non-number at once (inside the barrier: that message alone is quarantined as
decode_error, saying what to call), and `urbanpulse decode` reports a format that raises in one line.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from urbanpulse import plugins
from urbanpulse.cli import main
from urbanpulse.formats.base import DecodeLimits, MessageBatch
from urbanpulse.formats.vendor import Rows, VendorFormat
from urbanpulse.model import Reason

T0_US = 1_764_000_000_000_000.0

numbers_ = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64), st.integers(-10**15, 10**15),
                     st.floats(width=32, allow_nan=False, allow_infinity=False).map(np.float32),
                     st.integers(-2**31, 2**31 - 1).map(np.int64))
not_numbers = st.one_of(st.text(max_size=8), st.booleans(), st.binary(max_size=4), st.lists(st.integers(), max_size=2),
                        st.dictionaries(st.text(max_size=2), st.integers(), max_size=1), st.just(np.bool_(True)))


class ListFormat(VendorFormat):
    """Each message is a JSON index into the test's table of values; every value is added as it is."""

    name = "list_test"
    table: list[list[object]] = []

    def decode_message(self, batch, i, payload, now_us, rows, rejections):  # noqa: ANN001
        for item, value in enumerate(self.table[json.loads(payload)]):
            rows.add(i, item, f"s{i}", "pm2_5", T0_US + item, value)


def is_number(x: object) -> bool:
    return not isinstance(x, (bool, np.bool_, str, bytes, list, dict))


@settings(max_examples=200, deadline=None)
@given(messages=st.lists(st.lists(st.one_of(numbers_, not_numbers, st.none()), min_size=1, max_size=4),
                         min_size=1, max_size=6))
def test_a_message_with_a_value_that_is_not_a_number_is_rejected_alone(messages: list[list[object]]) -> None:
    fmt = ListFormat(limits=DecodeLimits(1 << 20, 64))
    fmt.table = messages
    batch = MessageBatch(source="test", payloads=[str(i).encode() for i in range(len(messages))],
                         topics=["t"] * len(messages))
    decoded = fmt.decode(batch)  # never raises
    good = [i for i, values in enumerate(messages) if all(v is None or is_number(v) for v in values)]
    bad = [i for i in range(len(messages)) if i not in good]
    assert sorted({int(m) for m in decoded.columns.msg}) == [i for i in good if messages[i]]
    assert [int(r.payload) for r in decoded.rejections] == bad  # each payload is its index
    for r in decoded.rejections:
        assert r.reason == Reason.DECODE_ERROR and "Rows.add: value must be a number" in r.detail
        assert "as_number" in r.detail
    for k, m in enumerate(decoded.columns.msg):
        expected = messages[int(m)][int(decoded.columns.item[k])]
        stored = float(decoded.columns.value[k])
        assert math.isnan(stored) if expected is None else stored == float(expected)  # type: ignore[arg-type]


@given(field=st.sampled_from(["ts_us", "lat", "lon"]), bad=not_numbers)
def test_a_time_or_position_that_is_not_a_number_is_refused_naming_the_field(field: str, bad: object) -> None:
    args = {"ts_us": T0_US, "lat": 51.5, "lon": -0.1, field: bad}
    rows = Rows()
    with pytest.raises(TypeError, match=f"Rows.add: {field} must be a number"):
        rows.add(0, 0, "s", "pm2_5", args["ts_us"], 1.0, lat=args["lat"], lon=args["lon"])
    assert len(rows) == 0, "nothing half-added"


class RaisingFormat:
    """A format plugin that breaks the contract: its decode raises."""

    name = "raising"

    def decode(self, batch: MessageBatch) -> None:
        raise KeyError("dev")


def test_decode_command_reports_a_raising_format_in_one_line(tmp_path, monkeypatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.setattr(plugins, "build_format", lambda *a, **k: RaisingFormat())
    payload = tmp_path / "up.json"
    payload.write_text('{"t": 1}')
    code = main(["decode", "--format", "raising", str(payload)])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert "format 'raising' raised on this input (KeyError" in err and "never raise" in err
