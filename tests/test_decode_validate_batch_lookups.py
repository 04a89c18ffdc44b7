"""The batch-shaped decode and validation give exactly what the per-reading code gave.

Decode and validation look each distinct metric, (unit, metric) pair and sensor id up once per
batch (and remember sensor ids found well-formed across batches), build an all-None location
column whole, and check UTF-8 message by message. The oracle below is the code these replaced,
kept here small: the catalogue's per-reading lookup, the per-reading unit and sensor-id checks
without memory, numpy's conversion of every None, and the canonical format's per-message path
(``_decode_each``, which the whole-batch fast path must agree with). Hypothesis feeds both the
same batches, mixing valid readings, readings that fail every check, arrays, and hostile bytes
from ``urbanpulse.fuzz``; the accepted readings (every column and flag) and the rejections
(reason, detail, bytes, position) must be identical, batch after batch on one validator.
"""

from __future__ import annotations

import json
import time

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from urbanpulse.formats.base import Decoded, MessageBatch
from urbanpulse.formats.canonical import CanonicalJsonFormat
from urbanpulse.fuzz import hostile_payloads
from urbanpulse.model import Reason
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator, TimeRules, Validated

NOW_MS = 1_700_000_000_000
SPECS = MetricCatalogue.load().specs


# -- the oracle: the per-reading code as it was -------------------------------------------


class PerReadingCatalogue(MetricCatalogue):
    def lookup(self, metrics: list[str]) -> np.ndarray:
        unknown = len(self.specs)
        get = self.index.get
        return np.array([get(m, unknown) for m in metrics], dtype=np.int32)


class PerReadingValidator(ReadingValidator):
    def _bad_sensor_ids(self, distinct_ids: set[str]) -> set[str]:
        return {s for s in distinct_ids if not s.isprintable() or s != s.strip()}

    def _unit_masks(self, units: list[str | None], midx: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        allowed, unknown = self.catalogue.units, len(self.catalogue.specs)
        bad_unit = np.array([u is not None and m != unknown and u not in allowed[m]
                             for u, m in zip(units, midx.tolist())])
        return bad_unit, np.array([u is not None for u in units])


class PerMessageFormat(CanonicalJsonFormat):
    compiled = False  # msgspec's per-message path only, not the compiled decoder (test_canonical_compiled)

    def _decode_clean(self, batch: MessageBatch) -> Decoded | None:
        return None

    @staticmethod
    def _optional_floats(items: list[float | None]) -> np.ndarray:
        return np.array(items, dtype=np.float64)


# -- generated batches ----------------------------------------------------------------------

SENSORS = ["station-7", "station-8", "北京-01", " padded", "tab\tin", "nul\x00id", "trailing ", "x" * 128]
METRICS = [s.name for s in SPECS[:6]] + ["no_such_metric", "Temperature"]
UNITS = [None, None, "degC", "C", "°C", "%", "hPa", "mbar", "furlongs", ""]
VALUES = [21.5, -89.9, 70.0, 70.0001, 1e308, 0.0, 101.0, 950.0, None, "NaN", "Infinity", "-Infinity"]
TS = [NOW_MS, NOW_MS - 60_000, NOW_MS + 3_600_000, NOW_MS - 40 * 86_400_000, 1e300, -1e18,
      "2023-11-14T22:13:20Z", "2023-11-14T22:13:20.5+02:00", "2023-11-14T22:13:20"]
LOCATIONS = [{}, {}, {"lat": 52.5, "lon": 13.4}, {"lat": 95.0, "lon": 0.0}, {"lat": 1.0}, {"lon": 181.0}]


@st.composite
def readings(draw) -> str:  # noqa: ANN001 - hypothesis' DrawFn
    """One reading as JSON text: any mix of well-formed and failing fields."""
    fields: dict[str, object] = {"sensor_id": draw(st.sampled_from(SENSORS)),
                                 "metric": draw(st.sampled_from(METRICS)),
                                 "ts": draw(st.sampled_from(TS))}
    value = draw(st.sampled_from(VALUES))
    if draw(st.booleans()):
        fields["value"] = value if not isinstance(value, str) else 0.0
    unit = draw(st.sampled_from(UNITS))
    if unit is not None:
        fields["unit"] = unit
    fields.update(draw(st.sampled_from(LOCATIONS)))
    if draw(st.integers(0, 9)) == 0:
        del fields[draw(st.sampled_from(["sensor_id", "metric", "ts"]))]
    text = json.dumps(fields, ensure_ascii=draw(st.booleans()))
    if isinstance(value, str) and "value" not in fields:  # a non-finite literal msgspec refuses
        text = text[:-1] + f', "value": {value}}}'
    return text


@st.composite
def messages(draw) -> bytes:  # noqa: ANN001
    kind = draw(st.integers(0, 9))
    if kind <= 5:
        return draw(readings()).encode()
    if kind <= 7:
        return ("[" + ",".join(draw(st.lists(readings(), min_size=1, max_size=5))) + "]").encode()
    return draw(hostile_payloads(NOW_MS, max_size=1))[0]


def clean_message() -> st.SearchStrategy[bytes]:
    """Readings the whole-batch fast path takes (no hostile bytes), so that path is exercised."""
    one = st.builds(lambda s, m, v, u, loc: json.dumps({"sensor_id": s, "metric": m, "ts": NOW_MS, "value": v,
                                                          **({"unit": u} if u else {}), **loc}).encode(),
                    st.sampled_from(SENSORS), st.sampled_from(METRICS), st.sampled_from([21.5, 70.5, -95.0, 5.0]),
                    st.sampled_from(UNITS), st.sampled_from(LOCATIONS))
    return st.one_of(one, st.lists(one, min_size=1, max_size=4).map(lambda items: b"[" + b",".join(items) + b"]"))


batches = st.lists(st.one_of(st.lists(messages(), min_size=1, max_size=12),
                             st.lists(clean_message(), min_size=1, max_size=12)), min_size=1, max_size=4)


def batch_of(payloads: list[bytes], first_offset: int) -> MessageBatch:
    n = len(payloads)
    return MessageBatch(source="kafka", payloads=payloads, topics=["city"] * n, partitions=[3] * n,
                        offsets=list(range(first_offset, first_offset + n)), received_ns=NOW_MS * 1_000_000)


def run(fmt: CanonicalJsonFormat, validator: ReadingValidator, batch: MessageBatch) -> Validated:
    decoded = fmt.decode(batch)
    return validator.validate(batch, decoded, lambda k: fmt.raw_of(batch, decoded, k))


def assert_same(new: Validated, old: Validated) -> None:
    a, b = new.readings, old.readings
    assert a.sensor_id == b.sensor_id and a.metric == b.metric and a.unit == b.unit
    for name in ("ts_us", "value", "lat", "lon", "msg", "item", "flags", "has_null_value"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)  # NaN equals NaN here
    assert [(r.reason, r.detail, r.payload, r.offset, r.item, r.topic, r.partition) for r in new.rejections] == \
        [(r.reason, r.detail, r.payload, r.offset, r.item, r.topic, r.partition) for r in old.rejections]


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(stream=batches, limit=st.sampled_from([1, 3, 200_000]))
def test_batch_lookups_give_what_per_reading_lookups_gave(stream: list[list[bytes]], limit: int) -> None:
    """Batch after batch on one validator (so remembered sensor ids carry over, and with a small
    ``limit`` are forgotten mid-stream), the new path and the oracle agree on everything."""
    rules = TimeRules()
    clock = lambda: NOW_MS / 1000  # noqa: E731
    new_fmt, old_fmt = CanonicalJsonFormat(), PerMessageFormat()
    new_val = ReadingValidator(MetricCatalogue(SPECS), rules, clock=clock)
    new_val.clean_ids_limit = limit
    old_val = PerReadingValidator(PerReadingCatalogue(SPECS), rules, clock=clock)
    offset = 0
    for payloads in stream:
        new = run(new_fmt, new_val, batch_of(payloads, offset))
        old = run(old_fmt, old_val, batch_of(payloads, offset))
        assert_same(new, old)
        # every message accounted for: hostile input is quarantined with a reason, never lost
        assert {r.offset for r in new.rejections} | {offset + int(m) for m in new.readings.msg} \
            == set(range(offset, offset + len(payloads)))
        assert all(isinstance(r.reason, Reason) and r.detail for r in new.rejections)
        offset += len(payloads)


def test_a_bad_sensor_id_is_rejected_again_after_a_clean_one_is_remembered() -> None:
    """The remembered ids are the well-formed ones only: a bad id stays bad in every batch."""
    fmt = CanonicalJsonFormat()
    validator = ReadingValidator(MetricCatalogue(SPECS), clock=time.time)
    now = int(time.time() * 1000)
    payloads = [json.dumps({"sensor_id": s, "metric": "temperature", "ts": now, "value": 1.0}).encode()
                for s in ("ok-1", "bad\x07", "ok-1")]
    for first in (0, 3):
        out = run(fmt, validator, batch_of(payloads, first))
        assert out.readings.sensor_id == ["ok-1", "ok-1"]
        assert [(r.reason, r.offset) for r in out.rejections] == [(Reason.BAD_SENSOR_ID, first + 1)]


def test_a_location_column_of_none_is_nan_as_numpy_makes_it() -> None:
    got = CanonicalJsonFormat._optional_floats([None, None, None])
    np.testing.assert_array_equal(got, np.array([None, None, None], dtype=np.float64))
    assert got.dtype == np.float64
    mixed = CanonicalJsonFormat._optional_floats([None, 1.5])
    assert np.isnan(mixed[0]) and mixed[1] == 1.5


# -- a batch of one metric (``MetricCatalogue.lookup``'s first path) ----------------------------------

NAMES = [s.name for s in SPECS[:4]] + ["no_such_metric", "Temperature", ""]


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.tuples(st.sampled_from(NAMES), st.integers(0, 50)).map(lambda t: [t[0]] * t[1]),  # one metric
    st.lists(st.sampled_from(NAMES), max_size=50)))  # any mix
def test_lookup_equals_the_per_reading_lookup_for_one_metric_or_many(metrics: list[str]) -> None:
    """Fresh string objects, as the decoder makes them (equal, not identical): a batch of one
    metric and a mixed one both map every name exactly as the per-reading lookup did."""
    fresh = [json.loads(json.dumps(m)) for m in metrics]
    got = MetricCatalogue(SPECS).lookup(fresh)
    want = PerReadingCatalogue(SPECS).lookup(metrics)
    assert got.dtype == np.int32 and got.tolist() == want.tolist()


def test_one_metric_but_the_middle_is_told_apart() -> None:
    """The first path needs every name equal: a different name between equal ends is looked up."""
    names = ["temperature", "humidity", "temperature"]
    assert MetricCatalogue(SPECS).lookup(names).tolist() == PerReadingCatalogue(SPECS).lookup(names).tolist()
    assert len(set(MetricCatalogue(SPECS).lookup(names).tolist())) == 2
