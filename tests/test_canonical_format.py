"""The canonical JSON decoder: every malformed message gets its own stable reason code,
good neighbours survive a bad array item, and provenance travels with each rejection.

These tests drive the real decoder (and, where the reason is decided after decoding, the
real validator) with realistic payloads; nothing is mocked.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import numpy as np
import pytest

from payloads import FIXED, NOW_MS, NOW_US, encode, reading
from urbanpulse.formats.base import DecodeLimits, MessageBatch
from urbanpulse.formats.canonical import CanonicalJsonFormat
from urbanpulse.model import Reason
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator, TimeRules, Validated



def kafka_batch(*payloads: bytes, first_offset: int = 100) -> MessageBatch:
    n = len(payloads)
    return MessageBatch(source="kafka", payloads=list(payloads), topics=["city.readings"] * n,
                        partitions=[3] * n, offsets=list(range(first_offset, first_offset + n)))


def decode(*payloads: bytes, limits: DecodeLimits | None = None):
    fmt = CanonicalJsonFormat(limits)
    batch = kafka_batch(*payloads)
    return fmt.decode(batch)


def pipeline(*payloads: bytes, limits: DecodeLimits | None = None) -> Validated:
    """Decode and validate like the service does, with a fixed clock."""
    fmt = CanonicalJsonFormat(limits)
    batch = kafka_batch(*payloads)
    decoded = fmt.decode(batch)
    validator = ReadingValidator(MetricCatalogue.load(), TimeRules(), clock=lambda: FIXED)
    return validator.validate(batch, decoded, lambda k: fmt.raw_of(batch, decoded, k))


def only_reason(result) -> Reason:
    assert len(result.rejections) == 1, [(r.reason, r.detail) for r in result.rejections]
    return result.rejections[0].reason


# -- a good message -----------------------------------------------------------------------


def test_valid_single_object_decodes_to_one_reading_without_rejections() -> None:
    out = pipeline(encode(reading()))
    assert out.rejections == []
    assert len(out.readings) == 1
    assert out.readings.sensor_id == ["station-7"]
    assert out.readings.metric == ["temperature"]
    assert out.readings.value.tolist() == [21.5]
    assert out.readings.ts_us.dtype == np.int64
    assert out.readings.ts_us.tolist() == [NOW_US]
    assert out.readings.item.tolist() == [-1]


def test_rfc3339_with_offset_and_epoch_ms_give_the_same_ts_us() -> None:
    local = datetime.fromtimestamp(FIXED, timezone.utc).astimezone().isoformat()
    out = pipeline(
        encode(reading(ts=NOW_MS)),
        encode(reading(ts="2023-11-15T06:13:20+08:00")),
        encode(reading(ts="2023-11-14T22:13:20Z")),
        encode(reading(ts=local)),
    )
    assert out.rejections == []
    assert out.readings.ts_us.tolist() == [NOW_US] * 4


def test_fractional_epoch_ms_and_rfc3339_microseconds_keep_microsecond_precision() -> None:
    out = pipeline(
        encode(reading(ts=NOW_MS + 0.123)),
        encode(reading(ts="2023-11-14T22:13:20.000123+00:00")),
    )
    assert out.rejections == []
    assert out.readings.ts_us.tolist() == [NOW_US + 123, NOW_US + 123]


# -- whole-message reasons (decided before or while parsing) ------------------------------


def test_empty_payload_is_rejected_as_empty_payload() -> None:
    assert only_reason(decode(b"")) is Reason.EMPTY_PAYLOAD


def test_empty_array_is_rejected_as_empty_payload() -> None:
    assert only_reason(decode(b"[]")) is Reason.EMPTY_PAYLOAD


def test_ten_megabyte_payload_is_rejected_as_too_large_without_being_parsed() -> None:
    # A syntactically valid reading padded to 10 MB: were it parsed, it would be accepted.
    big = encode(reading(pad="x" * (10 * 1024 * 1024)))
    assert len(big) > 10 * 1024 * 1024
    start = time.perf_counter()
    out = decode(big)
    elapsed = time.perf_counter() - start
    assert only_reason(out) is Reason.PAYLOAD_TOO_LARGE
    assert len(out.columns) == 0
    rej = out.rejections[0]
    assert "not parsed" in rej.detail and str(len(big)) in rej.detail
    assert rej.payload == big  # kept as received; the store truncates it
    assert elapsed < 1.0, f"rejecting an oversized payload took {elapsed:.3f}s: was it parsed?"


def test_payload_exactly_at_the_limit_is_still_parsed() -> None:
    payload = encode(reading())
    out = decode(payload, limits=DecodeLimits(max_payload_bytes=len(payload)))
    assert out.rejections == []
    assert len(out.columns) == 1
    over = decode(payload, limits=DecodeLimits(max_payload_bytes=len(payload) - 1))
    assert only_reason(over) is Reason.PAYLOAD_TOO_LARGE


@pytest.mark.parametrize("payload", [
    b"\xff\xfe{}",  # garbage before the JSON starts
    b'{"sensor_id": "st\xff\xfe", "metric": "temperature", "ts": 1700000000000, "value": 1}',  # inside a string
    b'{"sensor_id": "\xc3\x28", "metric": "temperature", "ts": 1700000000000, "value": 1}',  # broken 2-byte seq
], ids=["leading-bytes", "inside-string", "broken-sequence"])
def test_invalid_utf8_is_rejected_as_invalid_utf8(payload: bytes) -> None:
    out = decode(payload)
    assert only_reason(out) is Reason.INVALID_UTF8
    assert out.rejections[0].payload == payload


def test_invalid_utf8_message_does_not_cost_its_batch_neighbours() -> None:
    good = encode(reading())
    bad = b'{"sensor_id": "st\xff", "metric": "temperature", "ts": 1700000000000, "value": 1}'
    out = decode(good, bad, good)
    assert [r.reason for r in out.rejections] == [Reason.INVALID_UTF8]
    assert out.columns.msg.tolist() == [0, 2]


@pytest.mark.parametrize("payload", [
    b'{"sensor_id": "s1", "metric": "temperature"',  # truncated
    b"{sensor_id: s1}",
    b"not json at all",
    b'{"sensor_id": "s1",}',
])
def test_malformed_json_is_rejected_as_invalid_json(payload: bytes) -> None:
    assert only_reason(decode(payload)) is Reason.INVALID_JSON


def test_json_nested_deeper_than_the_limit_is_rejected_as_too_deep() -> None:
    payload = b'{"x":' * 20 + b"1" + b"}" * 20
    out = decode(payload)
    assert only_reason(out) is Reason.TOO_DEEP
    assert "max_json_depth" in out.rejections[0].detail


def test_hostile_nesting_beyond_the_parser_recursion_limit_is_too_deep_not_a_crash() -> None:
    payload = b"[" * 100_000 + b"]" * 100_000
    assert only_reason(decode(payload)) is Reason.TOO_DEEP


def test_nesting_within_the_limit_is_not_too_deep() -> None:
    # an extra nested field 3 levels deep is ignored, not rejected
    out = decode(encode(reading(extra={"a": {"b": [1, 2]}})))
    assert out.rejections == []
    assert len(out.columns) == 1


@pytest.mark.parametrize("payload", [b"5", b'"x"', b"null", b"true", b"12.5"])
def test_json_that_is_not_an_object_or_array_is_rejected_as_not_an_object(payload: bytes) -> None:
    assert only_reason(decode(payload)) is Reason.NOT_AN_OBJECT


def test_array_item_that_is_not_an_object_rejects_only_that_item() -> None:
    out = decode(b"[5, " + encode(reading()) + b"]")
    assert only_reason(out) is Reason.NOT_AN_OBJECT
    assert out.rejections[0].item == 0
    assert out.columns.item.tolist() == [1]


# -- per-reading reasons decided while decoding -------------------------------------------


@pytest.mark.parametrize("missing", ["sensor_id", "metric", "ts", "value"])
def test_reading_without_a_required_field_is_rejected_as_missing_field(missing: str) -> None:
    obj = reading()
    del obj[missing]
    out = decode(encode(obj))
    assert only_reason(out) is Reason.MISSING_FIELD
    assert missing in out.rejections[0].detail


def test_value_sent_as_a_string_is_rejected_as_bad_type() -> None:
    out = decode(encode(reading(value="12.5")))
    assert only_reason(out) is Reason.BAD_TYPE
    assert "value" in out.rejections[0].detail


def test_value_sent_as_a_bool_is_rejected_as_bad_type() -> None:
    assert only_reason(decode(encode(reading(value=True)))) is Reason.BAD_TYPE


def test_empty_sensor_id_is_rejected_as_bad_sensor_id() -> None:
    assert only_reason(decode(encode(reading(sensor_id="")))) is Reason.BAD_SENSOR_ID


def test_overlong_sensor_id_is_rejected_as_bad_sensor_id() -> None:
    assert only_reason(decode(encode(reading(sensor_id="s" * 129)))) is Reason.BAD_SENSOR_ID


def test_numeric_sensor_id_is_rejected_as_bad_sensor_id() -> None:
    assert only_reason(decode(encode(reading(sensor_id=42)))) is Reason.BAD_SENSOR_ID


def test_naive_rfc3339_timestamp_without_offset_is_rejected_as_bad_timestamp() -> None:
    out = decode(encode(reading(ts="2023-11-14T22:13:20")))
    assert only_reason(out) is Reason.BAD_TIMESTAMP


def test_garbage_timestamp_string_is_rejected_as_bad_timestamp() -> None:
    assert only_reason(decode(encode(reading(ts="yesterday at noon")))) is Reason.BAD_TIMESTAMP


def test_boolean_timestamp_is_rejected_as_bad_timestamp() -> None:
    assert only_reason(decode(encode(reading(ts=True)))) is Reason.BAD_TIMESTAMP


def test_non_numeric_latitude_is_rejected_as_bad_location() -> None:
    out = decode(encode(reading(lat="north", lon=116.4)))
    assert only_reason(out) is Reason.BAD_LOCATION


# -- arrays: one bad item never costs its neighbours --------------------------------------


def test_decode_error_in_one_array_item_keeps_the_neighbours() -> None:
    items = [reading(sensor_id="a"), reading(sensor_id="b", value="oops"), reading(sensor_id="c")]
    payload = encode(items)
    out = decode(payload)
    assert only_reason(out) is Reason.BAD_TYPE
    rej = out.rejections[0]
    assert rej.item == 1
    assert json.loads(rej.payload) == items[1]  # the item, not the whole message
    assert out.columns.sensor_id == ["a", "c"]
    assert out.columns.item.tolist() == [0, 2]
    assert out.columns.msg.tolist() == [0, 0]


def test_unknown_extra_fields_are_ignored() -> None:
    out = decode(encode(reading(firmware="1.2.3", battery_pct=80)))
    assert out.rejections == []
    assert len(out.columns) == 1


def test_null_value_is_flagged_as_null_but_nan_literal_is_not() -> None:
    out = decode(encode(reading(value=None)), b'{"sensor_id":"s","metric":"temperature","ts":1,"value":NaN}')
    assert out.rejections == []
    assert out.columns.has_null_value.tolist() == [True, False]
    assert np.isnan(out.columns.value).all()


# -- provenance ----------------------------------------------------------------------------


def test_rejections_carry_topic_partition_offset_and_source() -> None:
    out = decode(encode(reading()), b"", b"{broken", encode(reading()))
    assert [(r.reason, r.topic, r.partition, r.offset, r.source) for r in out.rejections] == [
        (Reason.EMPTY_PAYLOAD, "city.readings", 3, 101, "kafka"),
        (Reason.INVALID_JSON, "city.readings", 3, 102, "kafka"),
    ]
    assert out.columns.msg.tolist() == [0, 3]


def test_rejection_without_broker_provenance_has_none_fields() -> None:
    fmt = CanonicalJsonFormat()
    out = fmt.decode(MessageBatch(source="http", payloads=[b"{nope"]))
    rej = out.rejections[0]
    assert (rej.source, rej.topic, rej.partition, rej.offset, rej.item) == ("http", None, None, None, -1)
