"""Every vendor format against its specification's own examples, plus malformed variants.

The examples are in tests/fixtures/formats/<format>/ (each names its source); each must decode
to exactly the readings listed (values, units after conversion, event times, positions) with no
rejection. Malformed variants of the same examples (empty, too large, invalid UTF-8, UTF-16,
truncated, wrong types) must come back as rejections with a stable reason, never as an exception.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from format_fixtures import RECEIVED_NS, fixtures, load, matches, readings
from urbanpulse.formats.base import DecodeLimits, MessageBatch
from urbanpulse.model import Reason
from urbanpulse.plugins import build_format
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator, TimeRules

CATALOGUE = MetricCatalogue.load(extra={"voltage": {"unit": "V", "min": -1000, "max": 1000},
                                        "current": {"unit": "A", "min": -1000, "max": 1000},
                                        "fieldKey": {"unit": "1", "min": -1e300, "max": 1e300},
                                        "luminosity": {"unit": "1", "min": 0, "max": 1}})
ALL = fixtures()


def batch(*payloads: bytes, topic: str | None = None) -> MessageBatch:
    n = len(payloads)
    return MessageBatch(source="mqtt", payloads=list(payloads), topics=[topic or "t"] * n,
                        received_ns=RECEIVED_NS)


def fmt_for(name: str, doc: dict | None = None, limits: DecodeLimits | None = None):
    return build_format(name, (doc or {}).get("options"), limits, CATALOGUE)


@pytest.mark.parametrize("name,path", ALL, ids=[f"{n}/{p.stem}" for n, p in ALL])
def test_spec_example_decodes_to_the_expected_readings(name, path):
    doc = load(path)
    decoded = fmt_for(name, doc).decode(batch(doc["bytes"], topic=doc.get("topic")))
    assert decoded.rejections == [], [(r.reason, r.detail) for r in decoded.rejections]
    got = readings(decoded.columns)
    want = doc["expect"]
    assert len(got) == len(want), got
    for g, w in zip(got, want):
        assert matches(g, w), (g, w)


@pytest.mark.parametrize("name,path", ALL, ids=[f"{n}/{p.stem}" for n, p in ALL])
def test_spec_example_readings_pass_validation(name, path):
    """Decoded spec examples are valid readings (catalogue, units, positions) at their own time."""
    doc = load(path)
    fmt = fmt_for(name, doc)
    b = batch(doc["bytes"], topic=doc.get("topic"))
    decoded = fmt.decode(b)
    validator = ReadingValidator(CATALOGUE, TimeRules(max_age_s=None), clock=lambda: RECEIVED_NS / 1e9)
    out = validator.validate(b, decoded, lambda k: fmt.raw_of(b, decoded, k))
    assert [(r.reason, r.detail) for r in out.rejections] == []
    assert len(out.readings) == len(doc["expect"])


FORMATS = sorted({n for n, _ in ALL})


def _malformed(name: str, example: bytes) -> dict[str, bytes]:
    variants = {
        "empty": b"",
        "invalid_utf8": b"\xff\xfe\xfa" + example[:20],
        "utf16": example.decode("utf-8", "replace").encode("utf-16") if name != "senml_cbor" else b"\xff\xff\xff",
        "truncated": example[: max(1, len(example) // 2)],
        "wrong_types": b'{"value": [1, 2], "n": 5, "bn": {"x": 1}}' if name != "senml_cbor" else bytes.fromhex("a10263616263"),
        "not_a_container": b"42" if name != "senml_cbor" else bytes.fromhex("182a"),
        "deep": b"[" * 5000 + b"]" * 5000 if name != "senml_cbor" else bytes.fromhex("81" * 5000 + "80"),
    }
    return variants


@pytest.mark.parametrize("name", FORMATS)
def test_malformed_variants_become_rejections_with_reasons(name):
    doc = load(fixtures(name)[0][1])
    fmt = fmt_for(name, doc, DecodeLimits(max_payload_bytes=64 * 1024))
    variants = _malformed(name, doc["bytes"])
    variants["huge"] = doc["bytes"] * (64 * 1024 // max(1, len(doc["bytes"])) + 2)
    for label, payload in variants.items():
        decoded = fmt.decode(batch(payload))
        reasons = [r.reason for r in decoded.rejections]
        if label == "truncated" and name in ("influx_line", "csv") and len(decoded.columns):
            continue  # a text format cut at a line boundary is still valid lines
        assert reasons, f"{name}/{label}: no rejection (readings: {readings(decoded.columns)})"
        assert all(isinstance(r, Reason) and d for r, d in ((x.reason, x.detail) for x in decoded.rejections))
        if label == "empty":
            assert reasons == [Reason.EMPTY_PAYLOAD]
        if label == "huge":
            assert reasons == [Reason.PAYLOAD_TOO_LARGE]
        if label == "invalid_utf8" and name != "senml_cbor":
            assert Reason.INVALID_UTF8 in reasons or Reason.MALFORMED in reasons, reasons


@pytest.mark.parametrize("name", FORMATS)
def test_one_bad_message_leaves_its_neighbours_alone(name):
    doc = load(fixtures(name)[0][1])
    fmt = fmt_for(name, doc)
    decoded = fmt.decode(batch(doc["bytes"], b"\x00garbage", doc["bytes"]))
    assert len(decoded.columns) == 2 * len(doc["expect"])
    assert sorted(set(decoded.columns.msg.tolist())) == [0, 2]
    assert [r.item for r in decoded.rejections if r.offset is None] and decoded.rejections[0].topic == "t"


@pytest.mark.parametrize("name", FORMATS)
def test_decoding_is_deterministic(name):
    doc = load(fixtures(name)[0][1])
    a = fmt_for(name, doc).decode(batch(doc["bytes"]))
    b = fmt_for(name, doc).decode(batch(doc["bytes"]))
    assert readings(a.columns) == readings(b.columns)
    assert [(r.reason, r.detail) for r in a.rejections] == [(r.reason, r.detail) for r in b.rejections]


# -- format-specific rules ----------------------------------------------------------------------

def test_senml_relative_time_is_relative_to_receipt():
    fmt = fmt_for("senml")
    d = fmt.decode(batch(b'[{"bn":"s1:","n":"temp","u":"Cel","v":20,"t":-60}]'))
    assert d.columns.ts_us[0] == pytest.approx(RECEIVED_NS / 1000 - 60e6)


def test_senml_must_understand_label_rejects_the_pack():
    d = fmt_for("senml").decode(batch(b'[{"bn":"s1:","n":"temp","v":20,"sig_":"x"}]'))
    assert len(d.columns) == 0 and d.rejections[0].reason is Reason.BAD_TYPE
    assert "must-understand" in d.rejections[0].detail


def test_senml_record_without_value_is_rejected_alone():
    d = fmt_for("senml").decode(batch(b'[{"bn":"s1:","bt":1.7e9,"n":"temp","u":"Cel","v":20},{"n":"humidity"}]'))
    assert len(d.columns) == 1
    assert [(r.reason, r.item) for r in d.rejections] == [(Reason.MISSING_VALUE, 1)]


def test_senml_unit_conversion_instead_of_unit_mismatch():
    """°F and mg/m³ are converted to the catalogue's °C and µg/m³; an unknown unit is left alone."""
    p = b'[{"bn":"s1:","bt":1.7e9,"n":"temp","u":"degF","v":50},{"n":"co","u":"mg/m3","v":1.5},{"n":"no2","u":"ppb","v":3}]'
    d = fmt_for("senml").decode(batch(p))
    assert d.columns.value[:2].tolist() == pytest.approx([10.0, 1500.0])
    assert d.columns.unit == ["degC", "ug/m3", "ppb"]
    b = batch(p)
    out = ReadingValidator(CATALOGUE, TimeRules(max_age_s=None), clock=lambda: 1.7e9).validate(b, d, lambda k: b"")
    assert [r.reason for r in out.rejections] == [Reason.UNIT_MISMATCH]


def test_line_protocol_timestamp_precision_option():
    fmt = build_format("influx_line", {"precision": "s"}, None, CATALOGUE)
    d = fmt.decode(batch(b"air,sensor_id=a pm2_5=3 1700000000"))
    assert d.columns.ts_us[0] == 1700000000 * 1e6


def test_line_protocol_bad_line_is_rejected_alone_with_its_line_number():
    d = fmt_for("influx_line").decode(batch(b'air,sensor_id=a pm2_5=3 1700000000000000000\nair,sensor_id=b pm2_5="x\nair pm10=1'))
    assert len(d.columns) == 1
    assert [(r.reason, r.item) for r in d.rejections] == [(Reason.MALFORMED, 1), (Reason.MISSING_FIELD, 2)]
    assert "line 2" in d.rejections[0].detail


def test_line_protocol_escapes():
    from urbanpulse.formats.line_protocol import parse_line

    assert parse_line(r'my\ Measurement,tag\,k=v\=1 f\ k="a \"q\" \\ b" 1') == (
        "my Measurement", {"tag,k": "v=1"}, {"f k": 'a "q" \\ b'}, 1)
    assert parse_line(r"m,a=b\\c f=1")[1] == {"a": "b\\c"}


def test_unknown_vendor_metric_maps_through_configured_table():
    fmt = build_format("senml", {"metric_names": {"feinstaub": "pm10"}}, None, CATALOGUE)
    d = fmt.decode(batch(b'[{"bn":"s1:","bt":1.7e9,"n":"Feinstaub","v":20},{"n":"SDS_P2","v":5}]'))
    assert d.columns.metric == ["pm10", "pm2_5"]


def test_misconfigured_format_option_names_the_field():
    from urbanpulse.errors import ConfigError

    with pytest.raises(ConfigError, match=r"formats\.options\.influx_line\.precision"):
        build_format("influx_line", {"precision": "minutes"})
    with pytest.raises(ConfigError, match=r"formats\.options\.senml\.nonsense"):
        build_format("senml", {"nonsense": 1})


def test_raw_of_a_rejected_senml_record_is_that_record():
    fmt = fmt_for("senml")
    b = batch(b'[{"bn":"s1:","bt":1.7e9,"n":"temp","u":"Cel","v":20},{"n":"temp","u":"Cel","v":999}]')
    d = fmt.decode(b)
    assert json.loads(fmt.raw_of(b, d, 1))["v"] == 999
    assert np.array_equal(d.columns.item, [0, 1])


def test_tts_non_uplink_is_skipped_and_uplink_without_formatter_rejected():
    join = b'{"end_device_ids":{"device_id":"dev1","application_ids":{"application_id":"app1"}},"received_at":"2020-02-17T07:49:09.935284891Z","join_accept":{"session_key_id":"AXBSH1Pk6Z0G166RlH16CQ==","received_at":"2020-02-17T07:49:09.736532315Z"}}'
    bare = b'{"end_device_ids":{"device_id":"dev1"},"uplink_message":{"frm_payload":"gkHe","received_at":"2020-02-12T15:15:45.789585559Z"}}'
    d = fmt_for("ttn_v3").decode(batch(join, bare))
    assert len(d.columns) == 0
    assert [(r.reason, "payload formatter" in r.detail) for r in d.rejections] == [(Reason.MISSING_FIELD, True)]


def test_tts_options_choose_sensor_id_and_gateway_time():
    doc = load(fixtures("ttn_v3")[0][1])
    fmt = build_format("ttn_v3", {"sensor_id": "application_device", "time_source": "gateway_time",
                                  "use_locations": False}, None, CATALOGUE)
    d = fmt.decode(batch(doc["bytes"]))
    assert set(d.columns.sensor_id) == {"app1/dev1"}
    assert d.columns.ts_us[0] == pytest.approx(1581520545.787e6)
    assert np.isnan(d.columns.lat).all()


def test_chirpstack_docs_up_example_without_codec_is_rejected_with_the_fix():
    doc = load(fixtures("chirpstack_v4")[1][1])
    text = doc["payload"].replace('"object": {"temperature": 21.5, "humidity": 40, "status": "ok"},', "")
    d = fmt_for("chirpstack_v4").decode(batch(text.encode(), topic="application/x/device/y/event/up"))
    assert len(d.columns) == 0
    assert d.rejections[0].reason is Reason.MISSING_FIELD and "codec" in d.rejections[0].detail
    join = b'{"deduplicationId":"c9","time":"2022-07-18T09:33:28.823500726+00:00","deviceInfo":{"devEui":"01"},"devAddr":"00189440"}'
    assert fmt_for("chirpstack_v4").decode(batch(join, topic="application/x/device/01/event/join")).rejections == []


def test_owntracks_other_types_skipped_and_location_needs_tst():
    fmt = fmt_for("owntracks")
    d = fmt.decode(batch(b'{"_type":"lwt","tst":1610799026}', b'{"_type":"location","lat":51.2,"lon":-4,"batt":50}',
                         b'{"_type":"location","lat":"x","lon":-4,"tst":1,"batt":50}', topic="owntracks/jane/phone"))
    assert len(d.columns) == 0
    assert [r.reason for r in d.rejections] == [Reason.MISSING_FIELD, Reason.BAD_LOCATION]


def test_sensor_community_bad_value_rejected_alone_and_gps_is_position():
    p = (b'{"esp8266id": 42, "sensordatavalues":[{"value_type":"SDS_P2","value":"abc"},'
         b'{"value_type":"SDS_P1","value":"12.5"},{"value_type":"GPS_lat","value":"48.7"},{"value_type":"GPS_lon","value":"9.1"}]}')
    d = fmt_for("sensor_community").decode(batch(p))
    assert d.columns.sensor_id == ["esp8266-42"] and d.columns.metric == ["pm10"]
    assert (float(d.columns.lat[0]), float(d.columns.lon[0])) == (48.7, 9.1)
    assert [(r.reason, r.item) for r in d.rejections] == [(Reason.BAD_TYPE, 0)]


def test_csv_mapping_is_checked_at_start_up_and_against_each_message():
    from urbanpulse.errors import ConfigError

    with pytest.raises(ConfigError, match="formats.options.csv"):
        build_format("csv", {"sensor_id": "station"})
    fmt = build_format("csv", {"sensor_id": "s", "ts": "t", "time_format": "epoch_s", "metric": "m", "value": "v"},
                       None, CATALOGUE)
    d = fmt.decode(batch(b"s,t,m,v\na,1700000000,pm2_5,3\nb,1700000000,pm10,\nc,x,pm10,1\nd,1,2", b"x,y\n1,2"))
    assert d.columns.sensor_id == ["a"]
    assert [(r.reason, r.item) for r in d.rejections] == [
        (Reason.BAD_TIMESTAMP, 3), (Reason.MALFORMED, 4), (Reason.MISSING_FIELD, -1)]


@pytest.mark.parametrize("name", sorted(__import__("urbanpulse.testing.samples", fromlist=["SAMPLES"]).SAMPLES))
def test_realistic_samples_decode_and_validate_completely(name):
    from urbanpulse.testing.samples import SAMPLE_OPTIONS, sample

    payload, expected = sample(name, "s-1", RECEIVED_NS / 1e9 - 5, 10)
    fmt = build_format(name, SAMPLE_OPTIONS.get(name))
    b = batch(payload, topic="owntracks/u/d" if name == "owntracks" else None)
    d = fmt.decode(b)
    out = ReadingValidator(MetricCatalogue.load(), TimeRules(), clock=lambda: RECEIVED_NS / 1e9).validate(
        b, d, lambda k: fmt.raw_of(b, d, k))
    assert [(r.reason, r.detail) for r in out.rejections] == []
    assert len(out.readings) == expected


@pytest.mark.parametrize("unit,ts,expect_s", [("s", 1_700_000_000, 1_700_000_000), ("ms", 1_700_000_000_000, 1_700_000_000),
                                              ("auto", 1_700_000_000, 1_700_000_000),
                                              ("auto", 1_700_000_000_000, 1_700_000_000)])
def test_canonical_accepts_epoch_seconds_by_option_or_unambiguous_rule(unit, ts, expect_s):
    fmt = build_format("json", {"ts_unit": unit})
    p = b'[{"sensor_id":"a","metric":"pm2_5","ts":%d,"value":1},{"sensor_id":"a","metric":"pm2_5","ts":"2023-11-14T22:13:20Z","value":2}]' % ts
    for payloads in ([p], [p, b"{bad"]):  # the clean path and the per-message path
        d = fmt.decode(batch(*payloads))
        assert d.columns.ts_us.tolist()[:2] == [expect_s * 1e6, 1_700_000_000 * 1e6]


def test_too_old_from_seconds_read_as_ms_says_so():
    fmt = build_format("json")
    b = batch(b'{"sensor_id":"a","metric":"pm2_5","ts":1700000000,"value":1}',
              b'{"sensor_id":"a","metric":"pm2_5","ts":"2020-01-01T00:00:00Z","value":1}')
    d = fmt.decode(b)
    out = ReadingValidator(CATALOGUE, TimeRules(max_age_s=30 * 86400), clock=lambda: 1_700_000_100.0).validate(
        b, d, lambda k: b"")
    assert [r.reason for r in out.rejections] == [Reason.TOO_OLD, Reason.TOO_OLD]
    assert "epoch seconds read as milliseconds" in out.rejections[0].detail
    assert "ts_unit" in out.rejections[0].detail
    assert "seconds" not in out.rejections[1].detail


# the SenML batch fast path must give exactly what the per-message path gives
_senml_record = st_records = None


def _senml_packs():
    from hypothesis import strategies as st

    num = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False) | st.integers(-1000, 1000)
    rec = st.fixed_dictionaries({}, optional={
        "bn": st.sampled_from(["urn:dev:ow:10e2073a01080063:", "s1/", "", "dev"]), "bt": st.sampled_from([1.7e9, 0, -5.5]),
        "bu": st.sampled_from(["Cel", "%RH", "degF", "mg/m3"]), "bv": num, "n": st.sampled_from(["temp", "humidity", "co", "x"]),
        "u": st.sampled_from(["Cel", "%RH", "lat", "lon", "%EL", "ppb"]), "v": num, "t": num,
        "vs": st.just("s"), "s": num})
    return st.lists(st.lists(rec, min_size=1, max_size=6).map(lambda r: json.dumps(r).encode()), min_size=1, max_size=5)


from hypothesis import given as _given, settings as _settings  # noqa: E402


@_settings(max_examples=300, deadline=None)
@_given(packs=_senml_packs())
def test_senml_fast_path_equals_message_path(packs):
    from urbanpulse.formats.vendor import VendorFormat

    fmt = fmt_for("senml")
    b = batch(*packs)
    fast = fmt.decode(b)
    slow = VendorFormat.decode(fmt, b)
    assert readings(fast.columns) == readings(slow.columns) or (
        np.allclose(fast.columns.ts_us, slow.columns.ts_us) and fast.columns.metric == slow.columns.metric)
    assert fast.columns.msg.tolist() == slow.columns.msg.tolist()
    assert fast.columns.item.tolist() == slow.columns.item.tolist()
    assert [(r.reason, r.item) for r in fast.rejections] == [(r.reason, r.item) for r in slow.rejections]
    for k in range(len(fast.columns)):
        assert fmt.raw_of(b, fast, k) == fmt.raw_of(b, slow, k)


def test_senml_fast_path_is_taken_for_clean_packs():
    from urbanpulse.testing.samples import sample

    fmt = fmt_for("senml")
    payload, n = sample("senml", "s1", RECEIVED_NS / 1e9, 10)
    assert fmt._decode_fast(batch(payload, payload)) is not None
