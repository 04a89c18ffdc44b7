"""Loads the spec-example fixtures in tests/fixtures/formats/<format>/*.yaml.

Each fixture's header comment names the specification and section it was copied from; the
body holds ``payload`` (text) or ``payload_hex`` (binary formats), optional ``options``,
optional ``topic`` and ``expect``: the readings the example must decode to. ``ts: now`` means
the message's receive time (a relative or missing timestamp)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "formats"
#: receive time used when decoding fixtures (2026-11-30T12:00:00Z)
RECEIVED_NS = 1_796_040_000 * 1_000_000_000


def fixtures(fmt: str | None = None) -> list[tuple[str, Path]]:
    """(format name, fixture path) for every fixture, or those of ``fmt``."""
    out = []
    for d in sorted(FIXTURES.iterdir()):
        if d.is_dir() and (fmt is None or d.name == fmt):
            out.extend((d.name, p) for p in sorted(d.glob("*.yaml")))
    return out


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert path.read_text().startswith("# Source:"), f"{path} must start with '# Source:' naming the spec"
    if "payload_hex" in doc:
        doc["bytes"] = bytes.fromhex("".join(doc["payload_hex"].split()))
    else:
        doc["bytes"] = doc["payload"].encode("utf-8")
    return doc


def readings(columns) -> list[dict[str, Any]]:  # noqa: ANN001 - ReadingColumns
    out = []
    for k in range(len(columns)):
        r = {"sensor_id": columns.sensor_id[k], "metric": columns.metric[k], "ts_us": float(columns.ts_us[k]),
             "value": float(columns.value[k]), "unit": columns.unit[k]}
        lat, lon = float(columns.lat[k]), float(columns.lon[k])
        if not math.isnan(lat):
            r["lat"], r["lon"] = lat, lon
        out.append(r)
    return out


def matches(got: dict[str, Any], want: dict[str, Any]) -> bool:
    ts = RECEIVED_NS / 1000 if want["ts"] == "now" else float(want["ts"]) * 1e6
    if got["sensor_id"] != want["sensor_id"] or got["metric"] != want["metric"]:
        return False
    if abs(got["ts_us"] - ts) > 1.0:
        return False
    if not math.isclose(got["value"], float(want["value"]), rel_tol=1e-9, abs_tol=1e-9):
        return False
    if "unit" in want and got["unit"] != want["unit"]:
        return False
    if "lat" in want:
        return "lat" in got and math.isclose(got["lat"], want["lat"]) and math.isclose(got["lon"], want["lon"])
    return "lat" not in got


#: per format: a malformed message and the reason it must be quarantined with (transport tests)
MALFORMED = {
    "json": (b'{"sensor_id": "x", "metric": ', "invalid_json"),
    "senml": (b'{"bn": "not-a-pack"}', "not_an_object"),
    "senml_cbor": (b"\xa1\x02", "malformed"),
    "influx_line": (b"air,sensor_id=x pm2_5=\"unterminated", "malformed"),
    "ttn_v3": (b'{"end_device_ids": {"device_id": "d"}, "uplink_message": {"received_at": "2026-01-01T00:00:00Z"}}',
               "missing_field"),
    "chirpstack_v4": (b'{"deviceInfo": {"devEui": "01"}, "time": "yesterday", "object": {}}', "bad_timestamp"),
    "owntracks": (b'{"_type": "location", "lat": 1, "lon": 2}', "missing_field"),
    "sensor_community": (b'{"esp8266id": "1", "sensordatavalues": 5}', "missing_field"),
    "csv": (b"\xff\xfe", "invalid_utf8"),
}
