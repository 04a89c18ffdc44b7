"""Canonical reading payloads at a fixed clock, shared by the decoder and validator tests."""

from __future__ import annotations

import json

#: 2023-11-14T22:13:20Z: the fixed "now" every validator clock in these tests returns.
FIXED = 1_700_000_000.0
NOW_MS = int(FIXED * 1000)
NOW_US = int(FIXED * 1_000_000)


def reading(**fields: object) -> dict:
    """A valid reading at NOW_MS; keyword arguments override or add fields."""
    base = {"sensor_id": "station-7", "metric": "temperature", "ts": NOW_MS, "value": 21.5}
    base.update(fields)
    return base


def encode(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()
