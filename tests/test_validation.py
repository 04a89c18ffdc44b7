"""Vectorised validation against the shipped metric catalogue and time rules.

Every reading goes through the real decoder and the real ``ReadingValidator`` with a fixed
clock, so "future" and "too old" are deterministic.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from payloads import FIXED, NOW_MS, NOW_US, encode, reading
from urbanpulse.formats.base import MessageBatch
from urbanpulse.formats.canonical import CanonicalJsonFormat
from urbanpulse.model import Flag, Reason
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator, TimeRules, Validated

DAY_MS = 86_400_000


def validate(*payloads: bytes, rules: TimeRules | None = None, source: str = "kafka",
             offsets: list[int] | None = None) -> Validated:
    n = len(payloads)
    batch = MessageBatch(source=source, payloads=list(payloads), topics=[f"city.readings.{i}" for i in range(n)],
                         partitions=[i % 2 for i in range(n)],
                         offsets=offsets if offsets is not None else [1000 + i for i in range(n)])
    fmt = CanonicalJsonFormat()
    decoded = fmt.decode(batch)
    validator = ReadingValidator(MetricCatalogue.load(), rules or TimeRules(), clock=lambda: FIXED)
    return validator.validate(batch, decoded, lambda k: fmt.raw_of(batch, decoded, k))


def only_reason(result: Validated) -> Reason:
    assert len(result.rejections) == 1, [(r.reason, r.detail) for r in result.rejections]
    assert len(result.readings) == 0
    return result.rejections[0].reason


# -- accepted -----------------------------------------------------------------------------


def test_plausible_reading_passes_with_int64_microsecond_timestamp() -> None:
    out = validate(encode(reading()))
    assert out.rejections == []
    assert out.readings.ts_us.dtype == np.int64
    assert out.readings.ts_us.tolist() == [NOW_US]
    assert out.readings.flags.tolist() == [0]


@pytest.mark.parametrize("sensor_id", [
    "'; DROP TABLE readings;--",
    "Robert'); DELETE FROM series; --",
    "北京-站点-01",
    "🌡️-rooftop-3",
    "station 7 (north)",
])
def test_sql_looking_and_unicode_sensor_ids_are_accepted_verbatim(sensor_id: str) -> None:
    out = validate(encode(reading(sensor_id=sensor_id)))
    assert out.rejections == []
    assert out.readings.sensor_id == [sensor_id]


def test_unit_alias_is_accepted_and_flagged_has_unit() -> None:
    out = validate(encode(reading(unit="°C")), encode(reading(unit="degC", sensor_id="b")), encode(reading(sensor_id="c")))
    assert out.rejections == []
    assert out.readings.flags.tolist() == [int(Flag.HAS_UNIT), int(Flag.HAS_UNIT), 0]


def test_location_within_bounds_is_accepted() -> None:
    out = validate(encode(reading(lat=39.9042, lon=116.4074)), encode(reading(lat=-90, lon=-180, sensor_id="pole")))
    assert out.rejections == []
    assert out.readings.lat.tolist() == [39.9042, -90.0]
    assert out.readings.lon.tolist() == [116.4074, -180.0]


def test_range_bounds_are_inclusive() -> None:
    out = validate(encode(reading(value=-90)), encode(reading(value=70, sensor_id="b")))
    assert out.rejections == []


def test_timestamp_within_future_skew_and_age_is_accepted() -> None:
    out = validate(encode(reading(ts=NOW_MS + 299_000)), encode(reading(ts=NOW_MS - 29 * DAY_MS, sensor_id="b")))
    assert out.rejections == []


def test_max_age_none_accepts_historical_readings() -> None:
    out = validate(encode(reading(ts="2013-03-01T00:00:00+08:00")), rules=TimeRules(max_age_s=None))
    assert out.rejections == []


# -- one reason each ----------------------------------------------------------------------


@pytest.mark.parametrize("sensor_id", ["abc\u0001def", "tab\there", "line\nbreak", " padded", "padded ", "\u0000"])
def test_sensor_id_with_control_characters_or_surrounding_space_is_bad_sensor_id(sensor_id: str) -> None:
    out = validate(encode(reading(sensor_id=sensor_id)))
    assert only_reason(out) is Reason.BAD_SENSOR_ID


@pytest.mark.parametrize("literal", [b"1e400", b"NaN", b"-Infinity"])
def test_non_finite_timestamp_is_bad_timestamp(literal: bytes) -> None:
    payload = b'{"sensor_id": "s1", "metric": "temperature", "ts": %s, "value": 1}' % literal
    assert only_reason(validate(payload)) is Reason.BAD_TIMESTAMP


def test_timestamp_before_1900_is_bad_timestamp() -> None:
    assert only_reason(validate(encode(reading(ts="1850-01-01T00:00:00+00:00")))) is Reason.BAD_TIMESTAMP


def test_null_value_is_missing_value() -> None:
    out = validate(encode(reading(value=None)))
    assert only_reason(out) is Reason.MISSING_VALUE
    assert out.rejections[0].detail == "value is null"


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400"])
def test_non_finite_value_is_non_finite(literal: bytes) -> None:
    payload = b'{"sensor_id": "s1", "metric": "temperature", "ts": %d, "value": %s}' % (NOW_MS, literal)
    out = validate(payload)
    assert only_reason(out) is Reason.NON_FINITE
    assert out.rejections[0].payload == payload


def test_latitude_without_longitude_is_bad_location() -> None:
    assert only_reason(validate(encode(reading(lat=39.9)))) is Reason.BAD_LOCATION


def test_longitude_without_latitude_is_bad_location() -> None:
    assert only_reason(validate(encode(reading(lon=116.4)))) is Reason.BAD_LOCATION


@pytest.mark.parametrize("lat,lon", [(95, 116.4), (-90.5, 0), (39.9, 181), (39.9, -200)])
def test_coordinates_out_of_bounds_are_bad_location(lat: float, lon: float) -> None:
    assert only_reason(validate(encode(reading(lat=lat, lon=lon)))) is Reason.BAD_LOCATION


def test_nan_latitude_literal_is_bad_location() -> None:
    payload = b'{"sensor_id": "s1", "metric": "temperature", "ts": %d, "value": 1, "lat": NaN, "lon": 116.4}' % NOW_MS
    assert only_reason(validate(payload)) is Reason.BAD_LOCATION


def test_metric_not_in_catalogue_is_unknown_metric() -> None:
    out = validate(encode(reading(metric="radioactivity")))
    assert only_reason(out) is Reason.UNKNOWN_METRIC
    assert "radioactivity" in out.rejections[0].detail


def test_unit_neither_canonical_nor_alias_is_unit_mismatch() -> None:
    out = validate(encode(reading(unit="K")))
    assert only_reason(out) is Reason.UNIT_MISMATCH
    assert "'K'" in out.rejections[0].detail


@pytest.mark.parametrize("metric,value", [("temperature", 70.01), ("temperature", -273), ("humidity", 101),
                                          ("pm2_5", -1), ("pressure", 10)])
def test_physically_impossible_value_is_out_of_range(metric: str, value: float) -> None:
    out = validate(encode(reading(metric=metric, value=value)))
    assert only_reason(out) is Reason.OUT_OF_RANGE
    assert metric in out.rejections[0].detail


def test_event_time_beyond_future_skew_is_future_timestamp() -> None:
    assert only_reason(validate(encode(reading(ts=NOW_MS + 301_000)))) is Reason.FUTURE_TIMESTAMP


def test_event_time_older_than_max_age_is_too_old() -> None:
    assert only_reason(validate(encode(reading(ts=NOW_MS - 31 * DAY_MS)))) is Reason.TOO_OLD


def test_custom_time_rules_are_honoured() -> None:
    rules = TimeRules(max_future_skew_s=0, max_age_s=60)
    out = validate(encode(reading(ts=NOW_MS + 1000)), encode(reading(ts=NOW_MS - 61_000, sensor_id="b")),
                   encode(reading(ts=NOW_MS - 59_000, sensor_id="c")), rules=rules)
    assert [r.reason for r in out.rejections] == [Reason.FUTURE_TIMESTAMP, Reason.TOO_OLD]
    assert out.readings.sensor_id == ["c"]


def test_first_failing_check_decides_the_reason() -> None:
    # unknown metric AND in the future: unknown_metric comes first in the check order
    out = validate(encode(reading(metric="nope", ts=NOW_MS + 10 * DAY_MS)))
    assert only_reason(out) is Reason.UNKNOWN_METRIC


def test_every_reason_code_is_reachable_from_realistic_input() -> None:
    """One payload per reason (TOPIC_MISMATCH needs an MQTT topic template, covered apart;
    DECODE_ERROR is what a format or validation *raising* becomes, covered in test_hostile_input;
    MALFORMED belongs to the vendor formats, covered in test_vendor_formats; UNKNOWN_SENSOR needs
    the registry's quarantine policy, covered in test_registry_policy; TOO_MANY_DAYS needs one message
    of more than validation.max_message_days days, covered in test_message_days)."""
    payloads = {
        Reason.EMPTY_PAYLOAD: b"",
        Reason.PAYLOAD_TOO_LARGE: encode(reading(pad="x" * (300 * 1024))),
        Reason.INVALID_UTF8: b"\xff\xfe" + encode(reading()),
        Reason.INVALID_JSON: b'{"sensor_id": ',
        Reason.DUPLICATE_KEY: encode(reading())[:-1] + b', "value": 99}',
        Reason.TOO_DEEP: b"[" * 40 + b"]" * 40,
        Reason.NOT_AN_OBJECT: b"5",
        Reason.MISSING_FIELD: encode({"sensor_id": "s", "metric": "temperature", "ts": NOW_MS}),
        Reason.BAD_TYPE: encode(reading(value="12.5")),
        Reason.BAD_SENSOR_ID: encode(reading(sensor_id="a\u0007b")),
        Reason.BAD_TIMESTAMP: encode(reading(ts="1850-01-01T00:00:00Z")),
        Reason.MISSING_VALUE: encode(reading(value=None)),
        Reason.NON_FINITE: b'{"sensor_id": "s", "metric": "temperature", "ts": %d, "value": Infinity}' % NOW_MS,
        Reason.BAD_LOCATION: encode(reading(lat=95, lon=10)),
        Reason.UNKNOWN_METRIC: encode(reading(metric="vibes")),
        Reason.UNIT_MISMATCH: encode(reading(unit="fahrenheit")),
        Reason.OUT_OF_RANGE: encode(reading(value=500)),
        Reason.FUTURE_TIMESTAMP: encode(reading(ts=NOW_MS + DAY_MS)),
        Reason.TOO_OLD: encode(reading(ts=NOW_MS - 365 * DAY_MS)),
    }
    assert set(payloads) == set(Reason) - {Reason.TOPIC_MISMATCH, Reason.DECODE_ERROR, Reason.MALFORMED,
                                           Reason.UNKNOWN_SENSOR, Reason.POISON_MESSAGE, Reason.TOO_MANY_DAYS}
    reasons = list(payloads)
    out = validate(*payloads.values())
    assert len(out.readings) == 0
    got = {int(r.offset) - 1000: r.reason for r in out.rejections}
    assert got == {i: reason for i, reason in enumerate(reasons)}


def test_topic_mismatch_when_payload_contradicts_the_topic_template() -> None:
    fmt = CanonicalJsonFormat()
    batch = MessageBatch(source="mqtt", payloads=[encode(reading(sensor_id="other")), encode({"ts": NOW_MS, "value": 1})],
                         topics=["city/haidian/station-7/temperature"] * 2,
                         topic_fields=[{"district": "haidian", "sensor_id": "station-7", "metric": "temperature"}] * 2)
    decoded = fmt.decode(batch)
    assert [r.reason for r in decoded.rejections] == [Reason.TOPIC_MISMATCH]
    assert decoded.columns.sensor_id == ["station-7"]
    assert decoded.columns.metric == ["temperature"]


# -- arrays, provenance -------------------------------------------------------------------


def test_one_bad_reading_in_an_array_rejects_only_that_item() -> None:
    items = [reading(sensor_id="a"), reading(sensor_id="b", value=999), reading(sensor_id="c"),
             reading(sensor_id="d", metric="nope")]
    out = validate(encode(items))
    assert [(r.reason, r.item) for r in out.rejections] == [(Reason.OUT_OF_RANGE, 1), (Reason.UNKNOWN_METRIC, 3)]
    assert out.readings.sensor_id == ["a", "c"]
    assert out.readings.item.tolist() == [0, 2]
    assert json.loads(out.rejections[0].payload)["sensor_id"] == "b"  # the item's own JSON
    assert json.loads(out.rejections[0].payload)["value"] == 999


def test_non_finite_item_in_an_array_keeps_neighbours_and_quarantines_its_raw_json() -> None:
    payload = (b'[{"sensor_id": "a", "metric": "temperature", "ts": %d, "value": 1},'
               b' {"sensor_id": "b", "metric": "temperature", "ts": %d, "value": NaN},'
               b' {"sensor_id": "c", "metric": "temperature", "ts": %d, "value": 2}]') % (NOW_MS, NOW_MS, NOW_MS)
    out = validate(payload)
    assert [(r.reason, r.item) for r in out.rejections] == [(Reason.NON_FINITE, 1)]
    assert b'"b"' in out.rejections[0].payload and b'"a"' not in out.rejections[0].payload
    assert out.readings.sensor_id == ["a", "c"]
    assert out.readings.value.tolist() == [1.0, 2.0]


def test_validation_rejection_carries_the_provenance_of_its_message() -> None:
    out = validate(encode(reading()), encode(reading(value=None)), encode([reading(), reading(unit="K")]),
                   offsets=[7, 8, 9])
    assert [(r.reason, r.source, r.topic, r.partition, r.offset, r.item) for r in out.rejections] == [
        (Reason.MISSING_VALUE, "kafka", "city.readings.1", 1, 8, -1),
        (Reason.UNIT_MISMATCH, "kafka", "city.readings.2", 0, 9, 1),
    ]
    assert out.readings.msg.tolist() == [0, 2]


def test_single_object_rejection_quarantines_the_exact_original_bytes() -> None:
    payload = b'{"sensor_id":"s","metric":"temperature","ts":%d,"value":500,"note":"keep me"}' % NOW_MS
    out = validate(payload)
    assert out.rejections[0].payload == payload


def test_empty_batch_validates_to_empty_result() -> None:
    out = validate(b"")
    assert len(out.readings) == 0
    assert out.readings.ts_us.dtype == np.int64
    assert [r.reason for r in out.rejections] == [Reason.EMPTY_PAYLOAD]
