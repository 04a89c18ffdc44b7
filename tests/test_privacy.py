"""The privacy stage without a database: keyed pseudonyms, coarsening, position-only readings,
redacted quarantine, and the start-up refusal without a key (docs/privacy.md)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from urbanpulse.config import IngestSettings, load_settings
from urbanpulse.errors import ConfigError
from urbanpulse.formats.base import DecodeLimits, MessageBatch
from urbanpulse.formats.router import build_router
from urbanpulse.metrics import IngestMetrics
from urbanpulse.pipeline import Pipeline
from urbanpulse.privacy import Pseudonymiser, build_privacy_stage
from urbanpulse.privacy.stage import coarsen
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator

KEY = b"k" * 32
ANNA = "phone-anna.mueller@example.org"
NOW_MS = int(time.time() * 1000)
DAY_US = 86_400_000_000

device_ids = st.text(min_size=1, max_size=64)
times_us = st.integers(min_value=0, max_value=4_000_000_000 * 1_000_000)


@settings(max_examples=200, deadline=None)
@given(device=device_ids, t=times_us, rotation=st.sampled_from(["day", "week", "month", "year", "never"]),
       offset_s=st.integers(min_value=0, max_value=40 * 86400))
def test_one_pseudonym_per_device_and_period(device: str, t: int, rotation: str, offset_s: int) -> None:
    p = Pseudonymiser(KEY, rotation)
    later = t + offset_s * 1_000_000
    a, b = p.apply([device], np.array([t]))[0], p.apply([device], np.array([later]))[0]
    assert a.startswith("psn-") and (len(device) < 8 or device not in a)
    assert a == Pseudonymiser(KEY, rotation).apply([device], np.array([float(t)]))[0]  # deterministic, any instance
    same_period = p.label_of(t) == p.label_of(later)
    assert (a == b) == same_period
    if rotation == "never":
        assert a == b


@settings(max_examples=100, deadline=None)
@given(device=device_ids, t=times_us)
def test_pseudonyms_change_across_months_and_with_the_key(device: str, t: int) -> None:
    p = Pseudonymiser(KEY, "month")
    next_month = t + 32 * DAY_US
    assert p.apply([device], np.array([t])) != p.apply([device], np.array([next_month]))
    assert p.apply([device], np.array([t])) != Pseudonymiser(b"other-key-0123456789", "month").apply(
        [device], np.array([t]))


@settings(max_examples=50, deadline=None)
@given(ids=st.lists(st.sampled_from(["a", "b", ANNA, "d"]), min_size=1, max_size=200), t=times_us)
def test_one_hmac_per_distinct_id_and_period(ids: list[str], t: int) -> None:
    p = Pseudonymiser(KEY, "month")
    out = p.apply(ids, np.full(len(ids), t))
    assert p.hmacs == len(set(ids))
    assert len(set(out)) == len(set(ids))  # distinct devices keep distinct series
    p.apply(ids, np.full(len(ids), t))
    assert p.hmacs == len(set(ids))  # cached


@settings(max_examples=200, deadline=None)
@given(lat=st.floats(-90, 90), lon=st.floats(-180, 180), decimals=st.integers(0, 6))
def test_coarsening_moves_a_position_by_at_most_half_a_step(lat: float, lon: float, decimals: int) -> None:
    rlat, rlon = coarsen(np.array([lat]), np.array([lon]), decimals)
    step = 10.0 ** -decimals
    assert abs(rlat[0] - lat) <= step / 2 + 1e-9 and abs(rlon[0] - lon) <= step / 2 + 1e-9
    assert abs(rlat[0] * 10**decimals - round(rlat[0] * 10**decimals)) < 1e-6  # on the grid
    again = coarsen(rlat, rlon, decimals)
    assert again[0][0] == rlat[0] and again[1][0] == rlon[0]  # idempotent


def _pipeline(privacy: dict, **config) -> Pipeline:
    s = load_settings(None, privacy={"key_file": None, **privacy}, **config)
    fmt = build_router(s, DecodeLimits(), MetricCatalogue.load())
    return Pipeline(None, fmt, ReadingValidator(MetricCatalogue.load()), IngestSettings(), IngestMetrics(),  # type: ignore[arg-type]
                    privacy=build_privacy_stage(s.privacy))


def test_personal_source_is_pseudonymised_coarsened_and_its_quarantine_redacted(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("URBANPULSE_PSEUDONYM_KEY", KEY.decode())
    pipe = _pipeline({"topics": {"phones/#": "personal"}})
    msgs = [
        {"sensor_id": ANNA, "metric": "speed", "ts": NOW_MS, "value": 12.5, "lat": 52.5200123, "lon": 13.4049456},
        {"sensor_id": ANNA, "metric": "speed", "ts": NOW_MS, "value": None, "lat": 52.5200123, "lon": 13.4049456},
        {"sensor_id": ANNA, "metric": "speed", "ts": NOW_MS, "value": 9999.0, "lat": 52.5200123, "lon": 13.4049456},
        {"sensor_id": ANNA, "metric": "speed", "ts": "not a time " + ANNA, "value": 1.0},
    ]
    payloads = [orjson.dumps(m) for m in msgs] + [b'{"sensor_id": "' + ANNA.encode() + b'", broken']
    batch = MessageBatch(source="mqtt", payloads=payloads, topics=[f"phones/{ANNA}"] * len(payloads))
    v = pipe._decode(batch)
    assert sorted(v.readings.metric) == ["position", "speed"]  # the value-less fix is a position reading
    assert set(v.readings.sensor_id) == {Pseudonymiser(KEY).apply([ANNA], np.array([NOW_MS * 1000.0]))[0]}
    assert v.readings.lat.tolist() == [52.52, 52.52] and v.readings.lon.tolist() == [13.405, 13.405]
    pos = v.readings.metric.index("position")
    assert v.readings.value[pos] == 1.0
    reasons = sorted(r.reason.value for r in v.rejections)
    assert reasons == ["bad_timestamp", "invalid_json", "out_of_range"]
    for r in v.rejections:
        text = r.payload + r.detail.encode() + (r.topic or "").encode()
        assert b"anna" not in text and b"52.5200123" not in text and b"13.4049456" not in text, r
        assert r.topic == "phones/#"
    out_of_range = next(r for r in v.rejections if r.reason.value == "out_of_range")
    kept = orjson.loads(out_of_range.payload)
    assert kept["redacted"] is True and kept["sensor_id"].startswith("psn-") and kept["lat"] == 52.52


def test_open_sources_are_untouched_next_to_a_personal_topic(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("URBANPULSE_PSEUDONYM_KEY", KEY.decode())
    pipe = _pipeline({"topics": {"phones/#": "personal"}})
    m = {"sensor_id": "station-1", "metric": "speed", "ts": NOW_MS, "value": 3.0, "lat": 52.5200123, "lon": 13.4}
    null = dict(m, value=None)
    batch = MessageBatch(source="mqtt", payloads=[orjson.dumps(m), orjson.dumps(null)], topics=["city/a", "city/a"])
    v = pipe._decode(batch)
    assert v.readings.sensor_id == ["station-1"] and v.readings.lat.tolist() == [52.5200123]
    assert [r.reason.value for r in v.rejections] == ["missing_value"]
    assert v.rejections[0].payload == orjson.dumps(null) and v.rejections[0].topic == "city/a"


def test_no_stage_without_a_personal_class_and_drop_rules() -> None:
    assert build_privacy_stage(load_settings(None).privacy) is None  # default: the hot path as before
    s = load_settings(None, privacy={"sources": {"mqtt": "restricted"},
                                     "policies": {"restricted": {"drop_fields": ["location", "unit"],
                                                                 "drop_metrics": ["battery"]}}})
    stage = build_privacy_stage(s.privacy)
    assert stage is not None and stage.pseudonymiser is None
    pipe = Pipeline(None, build_router(s, DecodeLimits()), ReadingValidator(MetricCatalogue.load()),  # type: ignore[arg-type]
                    IngestSettings(), IngestMetrics(), privacy=stage)
    msgs = [{"sensor_id": "bus-7", "metric": m, "ts": NOW_MS, "value": 50.0, "unit": u, "lat": 52.5, "lon": 13.4}
            for m, u in (("speed", "km/h"), ("battery", "%"))]
    v = pipe._decode(MessageBatch(source="mqtt", payloads=[orjson.dumps(m) for m in msgs]))
    assert v.readings.metric == ["speed"] and v.readings.sensor_id == ["bus-7"]
    assert np.isnan(v.readings.lat).all() and v.readings.unit == [None]


def test_start_up_refuses_a_personal_class_without_a_key(monkeypatch, tmp_path: Path) -> None:  # noqa: ANN001
    monkeypatch.delenv("URBANPULSE_PSEUDONYM_KEY", raising=False)
    s = load_settings(None, privacy={"sources": {"http": "personal"}})
    with pytest.raises(ConfigError, match="source http is personal.*no key.*URBANPULSE_PSEUDONYM_KEY"):
        build_privacy_stage(s.privacy)
    short = tmp_path / "key"
    short.write_text("short")
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        build_privacy_stage(load_settings(None, privacy={"sources": {"http": "personal"}, "key_file": str(short)}).privacy)
    short.write_text("a-long-enough-key-0123456789")
    assert build_privacy_stage(load_settings(None, privacy={"sources": {"http": "personal"},
                                                            "key_file": str(short)}).privacy) is not None


def test_cli_computes_the_stored_pseudonym_only_with_the_key(monkeypatch, capsys) -> None:  # noqa: ANN001
    from urbanpulse.cli import main

    monkeypatch.setenv("URBANPULSE_PSEUDONYM_KEY", KEY.decode())
    assert main(["privacy", "pseudonym", "--device", ANNA, "--at", "2026-11-30T12:00:00+00:00"]) == 0
    period, pseudonym = capsys.readouterr().out.split()
    at_us = 1_796_040_000 * 1e6  # 2026-11-30T12:00:00Z
    assert (period, pseudonym) == ("2026-11", Pseudonymiser(KEY).apply([ANNA], np.array([at_us]))[0])
    monkeypatch.delenv("URBANPULSE_PSEUDONYM_KEY")
    assert main(["privacy", "pseudonym", "--device", ANNA]) == 2


def test_a_personal_message_that_crashes_its_source_is_remembered_without_its_topic_or_text(monkeypatch) -> None:  # noqa: ANN001
    import asyncio

    from urbanpulse.connectors.poison import PoisonGuard

    monkeypatch.setenv("URBANPULSE_PSEUDONYM_KEY", KEY.decode())
    saved: list = []

    class Store:
        async def save(self, source: str, suspects: list) -> None:
            saved.extend(suspects)

    pipe = _pipeline({"topics": {"phones/#": "personal"}})
    guard = PoisonGuard(Store(), 3600)  # type: ignore[arg-type]
    view = guard.view("mqtt", pipe)
    batch = MessageBatch(source="mqtt", payloads=[b'{"sensor_id": "' + ANNA.encode() + b'"}'],
                         topics=[f"phones/{ANNA}"])
    view.current = batch
    asyncio.run(guard.record_failure("mqtt", f"RuntimeError: crashed on {ANNA}"))
    assert len(saved) == 1 and saved[0].topic == "phones/#" and "anna" not in saved[0].key
    assert "anna" not in saved[0].error and saved[0].error.startswith("RuntimeError")
    # the redelivery is still recognised: it goes to quarantine as poison, redacted
    quarantined: list = []

    async def quarantine(source: str, rejections: list, ack=None) -> None:  # noqa: ANN001
        pipe.privacy.scrub(source, rejections)  # type: ignore[union-attr]
        quarantined.extend(rejections)
    pipe.quarantine = quarantine  # type: ignore[method-assign]
    asyncio.run(view.submit(MessageBatch(source="mqtt", payloads=batch.payloads, topics=batch.topics)))
    assert [r.reason.value for r in quarantined] == ["poison_message"]
    assert b"anna" not in quarantined[0].payload and quarantined[0].topic == "phones/#"


def _geohash_bounds(gh: str) -> tuple[float, float, float, float]:
    """Reference decoder (independent of privacy/grid.py): the cell of a geohash string."""
    base32 = "0123456789bcdefghjkmnpqrstuvwxyz"
    lat, lon = [-90.0, 90.0], [-180.0, 180.0]
    even = True
    for ch in gh:
        v = base32.index(ch)
        for bit in (16, 8, 4, 2, 1):
            rng = lon if even else lat
            mid = (rng[0] + rng[1]) / 2
            if v & bit:
                rng[0] = mid
            else:
                rng[1] = mid
            even = not even
    return lat[0], lat[1], lon[0], lon[1]


@settings(max_examples=300, deadline=None)
@given(lat=st.floats(-89.999, 89.999), lon=st.floats(-179.999, 179.999), length=st.integers(1, 10))
def test_geohash_precision_snaps_to_the_centre_of_the_geohash_cell(lat: float, lon: float, length: int) -> None:
    from urbanpulse.privacy.grid import Grid, geohash_of

    grid = Grid("geohash", length)
    slat, slon = grid.snap(np.array([lat]), np.array([lon]))
    # the snapped point is the centre of a geohash cell (by the reference decoder) that holds the position
    lat0, lat1, lon0, lon1 = _geohash_bounds(geohash_of(float(slat[0]), float(slon[0]), length))
    assert slat[0] == (lat0 + lat1) / 2 and slon[0] == (lon0 + lon1) / 2
    eps = 1e-9  # (lon + 180) rounds a position within 1e-14 of a cell edge to either side of it
    assert lat0 - eps <= lat <= lat1 + eps and lon0 - eps <= lon <= lon1 + eps
    lat0, lat1, lon0, lon1 = _geohash_bounds(geohash_of(lat, lon, length))
    if min(lat - lat0, lat1 - lat, lon - lon0, lon1 - lon) > eps:  # not on an edge: exactly its own cell
        assert slat[0] == (lat0 + lat1) / 2 and slon[0] == (lon0 + lon1) / 2
    again = grid.snap(slat, slon)
    assert again[0][0] == slat[0] and again[1][0] == slon[0]  # idempotent


def test_precision_settings_refuse_finer_steps_and_both_kinds() -> None:
    with pytest.raises(ConfigError, match="not both"):
        load_settings(None, privacy={"policies": {"personal": {"location_decimals": 3, "location_geohash": 7}}})
    with pytest.raises(ConfigError, match="finer than"):
        load_settings(None, privacy={"policies": {"personal": {"location_decimals": 2, "coarsen_after": [
            {"after": "P7D", "decimals": 3}]}}})
    with pytest.raises(ConfigError, match="exactly one"):
        load_settings(None, privacy={"policies": {"personal": {"coarsen_after": [{"after": "P7D"}]}}})
    s = load_settings(None, privacy={"policies": {"personal": {"location_geohash": 7, "coarsen_after": [
        {"after": "P30D", "geohash": 5}, {"after": "P7D", "decimals": 2}]}}})
    assert [c.after.days for c in s.privacy.policies["personal"].coarsen_after] == [7, 30]


def test_a_registered_sensors_class_applies_to_its_readings_without_pseudonymising_it(monkeypatch) -> None:  # noqa: ANN001
    """Registry classes are for fixed-id sensors (a bus): the class's policy applies to readings
    from an open topic, its id stays (it is in the registry already); a personal topic stays stricter."""
    monkeypatch.setenv("URBANPULSE_PSEUDONYM_KEY", KEY.decode())
    s = load_settings(None, privacy={"topics": {"phones/#": "personal"}, "key_file": None, "policies": {
        "personal": {"pseudonymise": True, "location_geohash": 6},
        "restricted": {"location_decimals": 2, "drop_metrics": ["battery"]}}})
    registry = {"bus-7": "restricted"}
    stage = build_privacy_stage(s.privacy, lambda: registry)
    assert stage is not None
    pipe = Pipeline(None, build_router(s, DecodeLimits()), ReadingValidator(MetricCatalogue.load()),  # type: ignore[arg-type]
                    IngestSettings(), IngestMetrics(), privacy=stage)
    msgs = [{"sensor_id": sid, "metric": m, "ts": NOW_MS, "value": 50.0, "lat": 52.5234567, "lon": 13.4123456}
            for sid in ("bus-7", "station-1") for m in ("speed", "battery")]
    v = pipe._decode(MessageBatch(source="mqtt", payloads=[orjson.dumps(m) for m in msgs],
                                  topics=["city/x"] * len(msgs)))
    got = sorted(zip(v.readings.sensor_id, v.readings.metric, v.readings.lat.tolist()))
    assert got == [("bus-7", "speed", 52.52), ("station-1", "battery", 52.5234567), ("station-1", "speed", 52.5234567)]
    # the same bus on a personal topic: the stricter (personal) policy, pseudonymised
    v = pipe._decode(MessageBatch(source="mqtt", payloads=[orjson.dumps(msgs[0])], topics=["phones/bus-7"]))
    assert v.readings.sensor_id[0].startswith("psn-") and v.readings.lat[0] != 52.52
    assert stage.class_of_sensor(v.readings.sensor_id[0]) == "personal"  # its new series is recorded personal
    assert stage.class_of_sensor("bus-7") is None  # the registry classes it, not the ingest


_REGISTRY = {"bus-1": "restricted", "bike-2": "personal"}
_SENSORS = ["bus-1", "bike-2", "station-3"]
_TOPICS = {"phones/x": "personal", "fleet/x": "restricted", "city/x": "open"}
_RANK = {"open": 0, "restricted": 1, "personal": 2}


@settings(max_examples=150, deadline=None)
@given(msgs=st.lists(st.tuples(st.sampled_from(_SENSORS), st.sampled_from(list(_TOPICS)),
                               st.sampled_from(["speed", "battery"]), st.floats(-80, 80), st.floats(-170, 170)),
                     min_size=1, max_size=30))
def test_each_reading_gets_the_policy_of_the_stricter_of_its_topic_and_registry_class(msgs) -> None:  # noqa: ANN001
    """Generated batches mixing registered restricted/personal sensors and an unregistered one over
    personal, restricted and open topics: each stored reading got exactly the policy of the stricter
    class; ids pseudonymised only by a personal topic (never for a registry class alone)."""
    from urbanpulse.privacy.grid import Grid

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("URBANPULSE_PSEUDONYM_KEY", KEY.decode())
        _check_stricter_class(msgs, Grid)


def _check_stricter_class(msgs: list, Grid: type) -> None:  # noqa: N803
    s = load_settings(None, privacy={"topics": {"phones/#": "personal", "fleet/#": "restricted"}, "key_file": None,
                                     "policies": {"personal": {"pseudonymise": True, "location_geohash": 6,
                                                               "drop_metrics": ["battery"]},
                                                  "restricted": {"location_decimals": 2}}})
    stage = build_privacy_stage(s.privacy, lambda: _REGISTRY)
    pipe = Pipeline(None, build_router(s, DecodeLimits()), ReadingValidator(MetricCatalogue.load()),  # type: ignore[arg-type]
                    IngestSettings(), IngestMetrics(), privacy=stage)
    payloads = [orjson.dumps({"sensor_id": sid, "metric": m, "ts": NOW_MS + k, "value": 5.0, "lat": lat, "lon": lon})
                for k, (sid, _, m, lat, lon) in enumerate(msgs)]
    v = pipe._decode(MessageBatch(source="mqtt", payloads=payloads, topics=[t for _, t, _, _, _ in msgs]))
    grids = {"personal": Grid("geohash", 6), "restricted": Grid("decimals", 2)}
    expected = []
    for sid, topic, metric, lat, lon in msgs:
        cls = max(_TOPICS[topic], _REGISTRY.get(sid, "open"), key=_RANK.__getitem__)
        if cls == "personal" and metric == "battery":
            continue  # dropped by the personal policy
        expect_id = stage.pseudonymiser.apply([sid], np.array([NOW_MS * 1000.0]))[0] \
            if _TOPICS[topic] == "personal" else sid  # a registry class never pseudonymises
        if cls == "open":
            expected.append((expect_id, metric, lat, lon))
        else:
            glat, glon = grids[cls].snap(np.array([lat]), np.array([lon]))
            expected.append((expect_id, metric, float(glat[0]), float(glon[0])))
    got = list(zip(v.readings.sensor_id, v.readings.metric, v.readings.lat.tolist(), v.readings.lon.tolist()))
    assert [(a, b) for a, b, _, _ in got] == [(a, b) for a, b, _, _ in expected]
    for (_, _, la, lo), (_, _, ea, eo) in zip(got, expected):
        assert abs(la - ea) < 1e-9 and abs(lo - eo) < 1e-9
    for sid, topic, *_ in msgs:  # new series are recorded in their topic's class (the registry's is in the view)
        if _TOPICS[topic] != "open" and _RANK[_TOPICS[topic]] >= _RANK[_REGISTRY.get(sid, "open")]:
            recorded = stage.pseudonymiser.apply([sid], np.array([NOW_MS * 1000.0]))[0] \
                if _TOPICS[topic] == "personal" else sid
            assert stage.class_of_sensor(recorded) in (_TOPICS[topic], "personal")

