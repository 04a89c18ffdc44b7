"""A format per topic filter (router), the config that declares it, and the CLI commands
``urbanpulse plugins`` and ``urbanpulse decode``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from urbanpulse.config import load_settings
from urbanpulse.errors import ConfigError, PluginError
from urbanpulse.formats.base import DecodeLimits, MessageBatch
from urbanpulse.formats.canonical import CanonicalJsonFormat
from urbanpulse.formats.router import FormatRouter, build_router, topic_matches
from urbanpulse.model import Reason
from urbanpulse.testing.samples import sample

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.mark.parametrize("flt,topic,ok", [
    ("ttn/#", "ttn/v3/app/devices/d1/up", True), ("ttn/#", "ttn", True), ("city/+/x", "city/a/x", True),
    ("city/+/x", "city/a/b/x", False), ("city/#", "cityx/a", False), ("#", "$SYS/x", False),
    ("fmt.ttn", "fmt.ttn", True), ("fmt.ttn", "fmt.ttn2", False)])
def test_topic_filter_matching(flt, topic, ok):
    assert topic_matches(flt, topic) is ok


def test_router_decodes_each_message_with_its_topics_format_and_keeps_provenance():
    settings = load_settings(None, mqtt={"enabled": True, "formats": {"ttn/#": "ttn_v3", "sc/#": "sensor_community"}})
    assert "ttn/#" in settings.mqtt.topics and "city/#" in settings.mqtt.topics
    router = build_router(settings, DecodeLimits())
    assert isinstance(router, FormatRouter)
    t0 = 1_700_000_000.0
    ttn, n_ttn = sample("ttn_v3", "dev1", t0)
    js, n_js = sample("json", "c1", t0, 4)
    sc, n_sc = sample("sensor_community", "77", t0)
    batch = MessageBatch("mqtt", [js, ttn, b"garbage", sc, ttn], topics=["city/a", "ttn/x", "ttn/y", "sc/1", "ttn/z"],
                         offsets=[10, 11, 12, 13, 14], received_ns=int(t0 * 1e9))
    d = router.decode(batch)
    msgs = d.columns.msg.tolist()
    assert msgs.count(0) == n_js and msgs.count(1) == n_ttn and msgs.count(3) == n_sc and msgs.count(4) == n_ttn
    assert {d.columns.sensor_id[k] for k in range(len(d.columns)) if msgs[k] == 3} == {"esp8266-77"}
    assert [(r.reason, r.topic, r.offset) for r in d.rejections] == [(Reason.INVALID_JSON, "ttn/y", 12)]
    k_sc = msgs.index(3)
    assert b"value_type" in router.raw_of(batch, d, k_sc)
    assert router.raw_of(batch, d, msgs.index(0)) is not None


def test_single_format_config_hands_batches_straight_to_the_default():
    router = build_router(load_settings(None), DecodeLimits())
    assert isinstance(router.default, CanonicalJsonFormat) and router.routes == []
    js, n = sample("json", "c1", 1_700_000_000.0, 4)
    d = router.decode(MessageBatch("mqtt", [js], topics=["anything"]))
    assert len(d.columns) == n
    assert router.by_name("senml").name == "senml"  # HTTP ingest's per-request choice


def test_config_naming_an_unknown_format_or_bad_option_stops_start_up_naming_it():
    with pytest.raises(PluginError, match="acme"):
        build_router(load_settings(None, mqtt={"enabled": True, "formats": {"a/#": "acme"}}), DecodeLimits())
    with pytest.raises(ConfigError, match=r"formats\.options\.ttn_v3\.sensor_id"):
        build_router(load_settings(None, formats={"default": "ttn_v3", "options": {"ttn_v3": {"sensor_id": "imei"}}}),
                     DecodeLimits())
    with pytest.raises(ConfigError, match=r"formats\.options\.nope"):
        build_router(load_settings(None, formats={"options": {"nope": {}}}), DecodeLimits())


def _cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "urbanpulse.cli", *args], capture_output=True, input=stdin,
                          env=dict(os.environ, PYTHONPATH=SRC), timeout=120)


def test_cli_plugins_lists_formats_and_sources_with_versions():
    out = _cli("plugins", "--json")
    assert out.returncode == 0, out.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(out.stdout)}
    assert {("format", n) for n in ("json", "senml", "ttn_v3", "csv")} <= set(rows)
    assert ("source", "mqtt") in rows and rows[("format", "senml")]["package"] == "urbanpulse"
    assert rows[("format", "owntracks")]["time_unit"] == "s"


def test_cli_decode_prints_readings_and_rejections_with_reasons(tmp_path):
    p = tmp_path / "pack.json"
    p.write_bytes(b'[{"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","u":"degF","v":50},{"n":"flux","v":1}]')
    out = _cli("decode", "--format", "senml", str(p))
    lines = [json.loads(x) for x in out.stdout.decode().splitlines() if not x.startswith("#")]
    assert out.returncode == 1  # something was rejected
    assert lines[0]["reading"]["metric"] == "temperature" and lines[0]["reading"]["value"] == pytest.approx(10.0)
    assert lines[1]["rejected"]["reason"] == "unknown_metric" and lines[1]["rejected"]["item"] == 1
    bad = _cli("decode", "--format", "influx_line", "--options", '{"precision": "h"}', str(p))
    assert bad.returncode == 2 and b"precision" in bad.stderr


def test_urbanpulse_run_with_a_bad_format_option_stops_before_connecting(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("database: {dsn: 'postgresql://nobody@127.0.0.1:1/none'}\n"
                   "formats: {options: {influx_line: {precision: minutes}}}\n"
                   "mqtt: {enabled: true, formats: {'lp/#': influx_line}}\n")
    out = _cli("run", "--config", str(cfg))
    assert out.returncode == 2
    assert b"formats.options.influx_line.precision" in out.stderr
    assert b"database" not in out.stderr.lower()  # it never tried to connect


def test_formats_routes_apply_to_any_sources_topics():
    router = build_router(load_settings(None, formats={"routes": {"ttn/#": "ttn_v3"}}), DecodeLimits())
    assert isinstance(router, FormatRouter)
    ttn, n = sample("ttn_v3", "dev1", 1_700_000_000.0)
    d = router.decode(MessageBatch("ttn", [ttn], topics=["ttn/app1/dev1"]))
    assert len(d.columns) == n and d.rejections == []
