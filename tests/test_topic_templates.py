"""MQTT topic templates: ``city/{district}/{sensor_id}/{metric}`` fills fields from the topic."""

from __future__ import annotations

import json

import pytest

from urbanpulse.connectors.topics import TopicTemplates
from urbanpulse.errors import ConfigError
from urbanpulse.formats.base import MessageBatch
from urbanpulse.formats.canonical import CanonicalJsonFormat
from urbanpulse.model import Reason

CITY = "city/{district}/{sensor_id}/{metric}"


def test_matching_topic_yields_every_placeholder() -> None:
    t = TopicTemplates([CITY])
    assert t.fields("city/haidian/aotizhongxin-01/pm2_5") == {
        "district": "haidian", "sensor_id": "aotizhongxin-01", "metric": "pm2_5"}


def test_unicode_and_punctuation_in_topic_levels_are_captured_verbatim() -> None:
    t = TopicTemplates([CITY])
    assert t.fields("city/朝阳/北京-站点-01/temperature") == {
        "district": "朝阳", "sensor_id": "北京-站点-01", "metric": "temperature"}
    assert t.fields("city/a.b/s+1(x)/no2")["sensor_id"] == "s+1(x)"


@pytest.mark.parametrize("topic", [
    "city/haidian/aotizhongxin-01",  # too few levels
    "city/haidian/aotizhongxin-01/pm2_5/extra",  # too many levels
    "town/haidian/aotizhongxin-01/pm2_5",  # different literal prefix
    "city//aotizhongxin-01/pm2_5",  # empty level
    "xcity/haidian/s/pm2_5",
    "",
])
def test_non_matching_topic_gives_none(topic: str) -> None:
    assert TopicTemplates([CITY]).fields(topic) is None


def test_literal_parts_are_not_regular_expressions() -> None:
    t = TopicTemplates(["sensors.v1/{sensor_id}"])
    assert t.fields("sensors.v1/s1") == {"sensor_id": "s1"}
    assert t.fields("sensorsXv1/s1") is None


def test_first_matching_template_wins() -> None:
    t = TopicTemplates(["city/{district}/{sensor_id}/{metric}", "city/{district}/{sensor_id}/{other}"])
    assert t.fields("city/d/s/m") == {"district": "d", "sensor_id": "s", "metric": "m"}
    fallback = TopicTemplates(["devices/{sensor_id}", CITY])
    assert fallback.fields("city/d/s/m") == {"district": "d", "sensor_id": "s", "metric": "m"}
    assert fallback.fields("devices/phone-42") == {"sensor_id": "phone-42"}


def test_repeated_lookups_return_the_same_answer() -> None:
    t = TopicTemplates([CITY])
    first = t.fields("city/d/s/m")
    assert t.fields("city/d/s/m") == first
    assert t.fields("nope") is None and t.fields("nope") is None


@pytest.mark.parametrize("template", ["city/+/{sensor_id}/{metric}", "city/#", "city/{district}/+"])
def test_mqtt_wildcards_in_a_template_are_a_config_error(template: str) -> None:
    with pytest.raises(ConfigError, match="wildcard"):
        TopicTemplates([template])


def test_truthiness_tells_whether_any_template_is_configured() -> None:
    assert not TopicTemplates([])
    assert TopicTemplates([CITY])
    assert TopicTemplates([]).fields("city/d/s/m") is None


def test_topic_fields_fill_a_payload_without_sensor_id_and_metric() -> None:
    t = TopicTemplates([CITY])
    topics = ["city/haidian/s-1/temperature", "city/haidian/s-2/humidity"]
    payloads = [json.dumps({"ts": 1_700_000_000_000, "value": 21.5}).encode(),
                json.dumps([{"ts": 1_700_000_000_000, "value": 40}, {"ts": 1_700_000_001_000, "value": 41}]).encode()]
    batch = MessageBatch(source="mqtt", payloads=payloads, topics=topics, topic_fields=[t.fields(x) for x in topics])
    out = CanonicalJsonFormat().decode(batch)
    assert out.rejections == []
    assert out.columns.sensor_id == ["s-1", "s-2", "s-2"]
    assert out.columns.metric == ["temperature", "humidity", "humidity"]


def test_payload_contradicting_the_topic_is_topic_mismatch_with_item_index() -> None:
    t = TopicTemplates([CITY])
    topic = "city/haidian/s-1/temperature"
    payload = json.dumps([{"ts": 1_700_000_000_000, "value": 1},
                          {"sensor_id": "someone-else", "ts": 1_700_000_000_000, "value": 2},
                          {"sensor_id": "s-1", "ts": 1_700_000_001_000, "value": 3}]).encode()
    batch = MessageBatch(source="mqtt", payloads=[payload], topics=[topic], topic_fields=[t.fields(topic)])
    out = CanonicalJsonFormat().decode(batch)
    assert [(r.reason, r.item, r.topic) for r in out.rejections] == [(Reason.TOPIC_MISMATCH, 1, topic)]
    assert out.columns.value.tolist() == [1.0, 3.0]
    assert out.columns.item.tolist() == [0, 2]


def test_template_without_metric_requires_it_in_the_payload() -> None:
    t = TopicTemplates(["devices/{sensor_id}"])
    topic = "devices/phone-42"
    payloads = [json.dumps({"ts": 1_700_000_000_000, "value": 1}).encode(),
                json.dumps({"metric": "noise_db", "ts": 1_700_000_000_000, "value": 55}).encode()]
    batch = MessageBatch(source="mqtt", payloads=payloads, topics=[topic] * 2, topic_fields=[t.fields(topic)] * 2)
    out = CanonicalJsonFormat().decode(batch)
    assert [r.reason for r in out.rejections] == [Reason.MISSING_FIELD]
    assert "metric" in out.rejections[0].detail
    assert (out.columns.sensor_id, out.columns.metric) == (["phone-42"], ["noise_db"])


def test_reading_after_a_topic_mismatch_is_quarantined_with_its_own_item_index() -> None:
    from urbanpulse.quality.catalogue import MetricCatalogue
    from urbanpulse.quality.validate import ReadingValidator, TimeRules

    t = TopicTemplates([CITY])
    topic = "city/haidian/s-1/temperature"
    now_ms = 1_700_000_000_000
    payload = json.dumps([{"sensor_id": "intruder", "ts": now_ms, "value": 1},
                          {"ts": now_ms, "value": 2},
                          {"ts": now_ms + 1000, "value": 500}]).encode()  # item 2: out of range
    batch = MessageBatch(source="mqtt", payloads=[payload], topics=[topic], topic_fields=[t.fields(topic)])
    fmt = CanonicalJsonFormat()
    decoded = fmt.decode(batch)
    out = ReadingValidator(MetricCatalogue.load(), TimeRules(), clock=lambda: now_ms / 1000).validate(
        batch, decoded, lambda k: fmt.raw_of(batch, decoded, k))
    assert [(r.reason, r.item) for r in out.rejections] == [(Reason.TOPIC_MISMATCH, 0), (Reason.OUT_OF_RANGE, 2)]
    assert out.readings.item.tolist() == [1]
