"""Formats and sources are found by entry-point name; bad plugins fail with PluginError naming
the package; every decoder survives random bytes, random JSON and random CBOR (hypothesis)."""

from __future__ import annotations

import json
import sys
import textwrap
import tomllib
from pathlib import Path

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from urbanpulse import plugins
from urbanpulse.errors import PluginError
from urbanpulse.formats.base import DecodeLimits, MessageBatch
from urbanpulse.model import Reason

ROOT = Path(__file__).resolve().parents[1]


def test_builtin_table_matches_the_pyproject_entry_points():
    """The in-code fallback lists exactly what pyproject.toml registers, for both groups."""
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    declared = {n for n in eps[plugins.FORMAT_GROUP]}
    assert declared <= set(plugins.BUILTIN_FORMATS)
    for name in declared:
        assert eps[plugins.FORMAT_GROUP][name] == plugins.BUILTIN_FORMATS[name]
    assert eps[plugins.SOURCE_GROUP] == plugins.BUILTIN_SOURCES


def _fake_distribution(tmp_path: Path, name: str, entry_points: str, module: str | None = None) -> None:
    """An installed distribution on sys.path: dist-info with entry_points.txt (what pip writes)."""
    dist = tmp_path / f"{name}-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    if module is not None:
        (tmp_path / f"{name.replace('-', '_')}.py").write_text(textwrap.dedent(module))


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for mod in [m for m in sys.modules if m.startswith("acme_")]:
        del sys.modules[mod]


def test_third_party_format_is_found_by_entry_point_with_its_options(plugin_path):
    _fake_distribution(plugin_path, "acme-urbanpulse", """
        [urbanpulse.formats]
        acme = acme_urbanpulse:AcmeFormat
        """, module="""
        from pydantic import BaseModel
        from urbanpulse.formats.vendor import VendorFormat, FormatOptions

        class AcmeOptions(FormatOptions):
            prefix: str = "acme-"

        class AcmeFormat(VendorFormat):
            name = "acme"
            Options = AcmeOptions

            def decode_message(self, batch, i, payload, now_us, rows, rejections):
                sensor, value = payload.decode().split("=")
                rows.add(i, -1, self.options.prefix + sensor, "pm2_5", now_us, float(value))
        """)
    info = plugins.installed(plugins.FORMAT_GROUP)["acme"]
    assert (info.package, info.version) == ("acme-urbanpulse", "1.2.3")
    fmt = plugins.build_format("acme", {"prefix": "x-"})
    d = fmt.decode(MessageBatch("mqtt", [b"s1=3.5", b"broken"], received_ns=1))
    assert d.columns.sensor_id == ["x-s1"] and d.columns.value.tolist() == [3.5]
    assert d.rejections[0].reason is Reason.DECODE_ERROR and d.rejections[0].detail.startswith("acme: ValueError: ")


def test_broken_plugin_raises_plugin_error_naming_the_package(plugin_path):
    _fake_distribution(plugin_path, "acme-broken", """
        [urbanpulse.formats]
        broken = acme_broken:Missing
        """, module="X = 1\n")
    with pytest.raises(PluginError, match="acme-broken"):
        plugins.build_format("broken")


def test_unknown_format_lists_what_is_installed():
    with pytest.raises(PluginError, match="senml"):
        plugins.build_format("no-such-format")


# -- never raise, whatever arrives --------------------------------------------------------------

ALL_FORMATS = sorted(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][plugins.FORMAT_GROUP])
LIMITS = DecodeLimits(max_payload_bytes=8 * 1024, max_json_depth=16)
_DECODERS = {}


#: formats that cannot run without a declared mapping get a representative one
SAMPLE_OPTIONS = {"csv": {"sensor_id": "sensor_id", "ts": "ts", "metric": "metric", "value": "value"}}


def decoder(name: str):
    if name not in _DECODERS:
        _DECODERS[name] = plugins.build_format(name, SAMPLE_OPTIONS.get(name), LIMITS)
    return _DECODERS[name]


def _check(name: str, payloads: list[bytes]) -> None:
    b = MessageBatch("mqtt", payloads, topics=["x/y"] * len(payloads), received_ns=1_700_000_000 * 10**9)
    d = decoder(name).decode(b)  # must not raise
    for r in d.rejections:
        assert isinstance(r.reason, Reason) and r.detail
    assert len(d.columns.ts_us) == len(d.columns) == len(d.columns.value) == len(d.columns.msg)
    if len(d.columns):
        assert int(d.columns.msg.max()) < len(payloads)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(
        st.sampled_from(["n", "bn", "v", "t", "bt", "u", "bu", "vs", "sensor_id", "metric", "ts", "value", "lat",
                         "lon", "_type", "tst", "tid", "batt", "esp8266id", "sensordatavalues", "value_type",
                         "end_device_ids", "uplink_message", "decoded_payload", "received_at", "deviceInfo",
                         "object", "time", "devEui"]) | st.text(max_size=8),
        children, max_size=6),
    max_leaves=30)
cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**64, max_value=2**64) | st.floats() | st.text(max_size=10)
    | st.binary(max_size=10),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(
        st.integers(min_value=-8, max_value=10) | st.text(max_size=4), children, max_size=6),
    max_leaves=30)

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", ALL_FORMATS)
@FUZZ
@given(payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_random_bytes_never_raise(name, payloads):
    _check(name, payloads)


@pytest.mark.parametrize("name", ALL_FORMATS)
@FUZZ
@given(values=st.lists(json_values, min_size=1, max_size=4))
def test_random_json_never_raises(name, values):
    _check(name, [json.dumps(v, allow_nan=True).encode() for v in values])


@pytest.mark.parametrize("name", ALL_FORMATS)
@FUZZ
@given(values=st.lists(cbor_values, min_size=1, max_size=4))
def test_random_cbor_never_raises(name, values):
    _check(name, [cbor2.dumps(v) for v in values])
