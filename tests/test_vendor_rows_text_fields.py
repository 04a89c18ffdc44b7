"""A vendor format plugin that hands `Rows.add` a sensor, metric or unit that is not text costs that message only.

newcomer45 wrote a format plugin for a new vendor by following docs/connectors.md ("subclass VendorFormat ... the
base class does ... the per-message exception barrier"), passing each item's `type` as the metric. An item without
`type` gave `metric=None`: `Rows.add` took it (it checks only numbers), and `decode()` raised AttributeError later,
outside the barrier, when the batch's metric names were mapped: the whole batch (every good message beside it)
raised, and `urbanpulse decode` blamed the plugin's decode() for raising. Now `Rows.add` refuses it inside the
barrier: that message alone is a `decode_error` naming the field, its neighbours decode as before.
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from urbanpulse.formats.base import MessageBatch
from urbanpulse.formats.vendor import Rows, VendorFormat
from urbanpulse.model import Reason, Rejection

NOT_TEXT = st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.binary(max_size=4),
                     st.lists(st.integers(), max_size=2),
                     st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))


class _Plugin(VendorFormat):
    """A plugin that passes each message's fields to Rows.add as they came (what the test puts in ``fields``)."""

    name = "careless"

    def __init__(self, fields: list[tuple[object, object, object]]) -> None:
        super().__init__()
        self.fields = fields

    def decode_message(self, batch: MessageBatch, i: int, payload: bytes, now_us: float, rows: Rows,
                       rejections: list[Rejection]) -> None:
        sensor, metric, unit = self.fields[i]
        rows.add(i, -1, sensor, metric, 1.7e15, 21.5, unit=unit)


@st.composite
def messages(draw: st.DrawFn) -> list[tuple[object, object, object, str | None]]:
    """Messages' (sensor, metric, unit) and which field of each is not text (None: all are)."""
    out = []
    for _ in range(draw(st.integers(1, 8))):
        sensor, metric, unit = "s-1", draw(st.sampled_from(["temperature", "temp", "pm25"])), draw(
            st.sampled_from([None, "degC", "°F", "ug/m3"]))
        bad = draw(st.sampled_from([None, None, "sensor", "metric", "unit"]))
        if bad == "sensor":
            sensor = draw(NOT_TEXT)
        elif bad == "metric":
            metric = draw(NOT_TEXT)
        elif bad == "unit":
            unit = draw(NOT_TEXT.filter(lambda x: x is not None))
        out.append((sensor, metric, unit, bad))
    return out


@given(messages())
@settings(max_examples=100, deadline=None)
def test_a_field_that_is_not_text_rejects_its_message_alone(case: list[tuple[object, object, object, str | None]]
                                                            ) -> None:
    fmt = _Plugin([(s, m, u) for s, m, u, _ in case])
    payloads = [b'{"message": %d}' % i for i in range(len(case))]
    decoded = fmt.decode(MessageBatch(source="test", payloads=payloads))
    rejected = {payloads.index(r.payload): r for r in decoded.rejections}
    for i, (_, _, _, bad) in enumerate(case):
        if bad is None:
            assert i not in rejected, rejected[i]
        else:
            assert rejected[i].reason == Reason.DECODE_ERROR, rejected[i]
            assert f"{bad} must be text" in rejected[i].detail, rejected[i].detail
    assert sorted(decoded.columns.msg.tolist()) == [i for i, c in enumerate(case) if c[3] is None]
