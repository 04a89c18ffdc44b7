"""A personal reading that fails validation is quarantined, in real PostgreSQL, without its value,
its full-precision position or its raw device id anywhere but where docs/privacy.md says a
redacted form is kept (benchmarks/README.md ``privq34``).

Before: the quarantine row's ``detail`` of a rejected personal *reading* quoted its value
(``speed=7771.125 outside the physical range ...``) and, for a unit mismatch, its unit, although
the payload next to it was redacted. Now the detail names the reason, the field and the limit
only. The same readings from an open source keep their detail as before (value and unit quoted).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass

import orjson
from hypothesis import HealthCheck, example, given, settings, strategies as st

from privacy_pipeline import open_store, personal_pipeline, through
from urbanpulse.privacy.stage import REDACTED_MESSAGE

KEY = "quarantine-detail-key-0123456789"
NOW_MS = int(time.time() * 1000) - 60_000
#: what docs/privacy.md says a redacted reading's payload keeps
REDACTED_KEYS = {"redacted", "sensor_id", "metric", "ts_us", "value", "lat", "lon"}

#: a number as it appears in text (the value's ``:g`` form "401" must not match inside ts_us 1796401180496000.0)
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?")

#: how a generated reading fails validation -> the reason it must be quarantined with
KINDS = {"out_of_range": "out_of_range", "beyond_max": "out_of_range", "tiny": "out_of_range",
         "lat_beyond_90": "bad_location", "lat_only": "bad_location", "ts_after_2200": "bad_timestamp",
         "ts_text": "bad_timestamp", "ts_2001": "too_old", "ts_future": "future_timestamp",
         "unknown_metric": "unknown_metric", "unit_mismatch": "unit_mismatch"}


@dataclass
class Bad:
    """One generated reading that fails validation, and the texts of it that must not leak."""

    kind: str
    message: dict
    value: float
    lat: float
    lon: float
    unit: str
    ts_text: str

    def secrets(self, device: str) -> list[str]:
        """What must appear in no personal quarantine column (the value: only under the payload's ``value``)."""
        out = [device.lower(), repr(self.lat), repr(self.lon), repr(self.value)]
        if self.kind in ("out_of_range", "beyond_max", "tiny"):
            out.append(f"{self.value:g}")
        if self.kind == "unit_mismatch":
            out.append(self.unit)
        if self.kind == "ts_text":
            out.append(self.ts_text)
        return out


def _frac(n: int) -> float:
    """A fraction with 7 decimals, the last not 0: rounding to 3 decimals changes it."""
    return (10 * n + 1 + n % 9) / 100_000_000


@st.composite
def bad_readings(draw) -> Bad:  # noqa: ANN001
    kind = draw(st.sampled_from(sorted(KINDS)))
    lat = 40 + _frac(draw(st.integers(1, 9_999_999)))
    lon = 5 + _frac(draw(st.integers(1, 9_999_999)))
    value = 10 + _frac(draw(st.integers(1, 300_000_000)))  # 10..310 km/h: in range
    unit = "km/h"
    metric = "speed"
    ts: object = NOW_MS
    ts_text = ""
    if kind == "out_of_range":
        value = 401 + _frac(draw(st.integers(1, 10 ** 11)))
    elif kind == "beyond_max":
        value = draw(st.floats(2e100, 1e300))
    elif kind == "tiny":
        value = draw(st.floats(1e-250, 9e-101))
    elif kind == "lat_beyond_90":
        # (from just above 90: the privacy stage rounds 90.0004 to 90.0, but validation judges it as sent, input35)
        lat = 90 + _frac(draw(st.integers(1, 89_999_999)))
    elif kind == "ts_after_2200":
        ts = draw(st.integers(7_258_118_400_001, 10 ** 15))
    elif kind == "ts_text":
        ts = ts_text = "t-" + draw(st.text("abcdefghijklmnop0123456789", min_size=8, max_size=16))
    elif kind == "ts_2001":
        ts = draw(st.integers(978_307_200_000, 1_009_843_199_000))
    elif kind == "ts_future":
        ts = NOW_MS + draw(st.integers(10 * 86_400_000, 3000 * 86_400_000))
    elif kind == "unknown_metric":
        metric = "m_" + draw(st.text("qwxyz", min_size=6, max_size=10))
    elif kind == "unit_mismatch":
        unit = "u" + draw(st.text("qwxyz", min_size=6, max_size=10))
    message = {"metric": metric, "ts": ts, "value": value, "lat": lat, "lon": lon, "unit": unit}
    if kind == "lat_only":
        del message["lon"]
    return Bad(kind, message, value, lat, lon, unit, ts_text)


#: a value whose ``:g`` form ("401") is among the digits of its own ts_us: not a leak (CI failed on it, stop 35)
_TS_401 = NOW_MS - NOW_MS % 1_000_000 + 401_000
DIGITS_IN_TS = Bad("out_of_range", {"metric": "speed", "ts": _TS_401, "value": 401.00000012, "lat": 40.00000012,
                                    "lon": 5.00000012, "unit": "km/h"}, 401.00000012, 40.00000012, 5.00000012, "km/h", "")

devices = st.text("abcdefghijklmnopqrstuvwxyz.", min_size=8, max_size=20).map(lambda s: f"phone-{s}@example.org")


async def _start(dsn: str) -> tuple:
    """A migrated pool and a started pipeline of the service's parts, ``phones/#`` personal."""
    pool, parts = await open_store(dsn)
    return pool, await personal_pipeline(pool, parts, None)


async def _store(pipeline, pool, payloads: list[bytes], topics: list[str]) -> list[dict]:  # noqa: ANN001
    """``payloads`` through the pipeline's validation and quarantine into PostgreSQL; the rows written."""
    stored, rows = await through(pipeline, pool, payloads, topics, "s.sensor_id",
                                 "source, topic, reason, detail, payload, kafka_partition, kafka_offset, item")
    assert stored == []  # every generated reading fails
    return rows


def _check_personal_row(row: dict, bad: Bad, device: str) -> None:
    assert row["topic"] == "phones/#" and row["reason"] == KINDS[bad.kind], row
    payload = bytes(row["payload"])
    columns = {k: str(v).lower() for k, v in row.items() if k != "payload"}
    if payload == REDACTED_MESSAGE:  # refused by the format: nothing of it kept
        kept = {}
    else:
        kept = orjson.loads(payload)
        assert set(kept) == REDACTED_KEYS and kept["redacted"] is True, kept
        assert kept["sensor_id"].startswith("psn-")
        for name, raw in (("lat", bad.lat), ("lon", bad.lon)):  # the coarsened form only
            assert kept[name] is None or kept[name] == round(raw, 3), (name, kept, raw)
        kept.pop("value")  # the one place the docs keep the value
    elsewhere = json.dumps(kept).lower() + " ".join(columns.values())
    numbers = set(NUMBER.findall(elsewhere))
    for secret in bad.secrets(device):
        if NUMBER.fullmatch(secret):  # a number leaks as a number of its own, not as digits inside ts_us
            assert secret not in numbers, (secret, row)
        else:
            assert secret not in elsewhere, (secret, row)
    assert device.lower() not in payload.decode("utf-8", "replace").lower()


def _check_open_row(row: dict, bad: Bad) -> None:
    """An open source's row: the message as received, the detail as before (quoting value and unit)."""
    assert row["topic"] == "city/station-1" and row["reason"] == KINDS[bad.kind], row
    assert bytes(row["payload"]) == orjson.dumps(dict(bad.message, sensor_id="station-1"))
    if bad.kind == "out_of_range":
        assert f"speed={bad.value!r} outside the physical range" in row["detail"], row
    if bad.kind in ("beyond_max", "tiny"):
        assert f"speed={bad.value!r} is" in row["detail"], row
    if bad.kind == "unit_mismatch":
        assert f"unit {bad.unit!r} for speed" in row["detail"], row


def test_a_personal_readings_quarantine_row_keeps_no_value_position_or_id_outside_the_redacted_payload(
        fresh_db: str, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("URBANPULSE_PSEUDONYM_KEY", KEY)

    loop = asyncio.new_event_loop()
    pool, pipeline = loop.run_until_complete(_start(fresh_db))

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(device=devices, bads=st.lists(bad_readings(), min_size=1, max_size=8))
    @example(device="phone-aaaaaaaa@example.org", bads=[DIGITS_IN_TS])  # CI's failure of stop 35
    def check(device: str, bads: list[Bad]) -> None:
        # one message of the device's readings on a personal topic, the same readings of an open station
        personal = b"[" + b",".join(orjson.dumps(dict(b.message, sensor_id=device)) for b in bads) + b"]"
        open_ = b"[" + b",".join(orjson.dumps(dict(b.message, sensor_id="station-1")) for b in bads) + b"]"
        rows = loop.run_until_complete(
            _store(pipeline, pool, [personal, open_], [f"phones/{device}", "city/station-1"]))
        assert len(rows) == 2 * len(bads)  # each reading quarantined once, with a reason
        mine = {r["item"]: r for r in rows if r["topic"] == "phones/#"}
        station = {r["item"]: r for r in rows if r["topic"] == "city/station-1"}
        assert sorted(mine) == sorted(station) == list(range(len(bads))), rows
        for k, bad in enumerate(bads):
            _check_personal_row(mine[k], bad, device)
            _check_open_row(station[k], bad)

    try:
        check()
    finally:
        loop.run_until_complete(pipeline.stop())
        loop.run_until_complete(pool.close())
        loop.close()
