"""Readings from sensors not in the register, both policies, through the real service pipeline
into PostgreSQL: ``accept`` stores them and lists the sensor as unregistered; ``quarantine``
quarantines exactly those readings with reason ``unknown_sensor`` and lets the neighbours in the
same message through; registering the sensor lets its readings in."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from urbanpulse.config import load_settings
from urbanpulse.formats.base import MessageBatch
from urbanpulse.formats.canonical import CanonicalJsonFormat
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator
from urbanpulse.registry.membership import RegisteredSensors
from urbanpulse.registry.model import SensorIn
from urbanpulse.registry.store import save_sensor, unregistered_sensors
from urbanpulse.service import IngestService
from urbanpulse.storage.migrations import migrate

NOW_MS = int(time.time() * 1000) - 600_000


def station(sid: str) -> SensorIn:
    return SensorIn(id=sid, name=sid, lat=51.5, lon=0.0, metrics={"humidity": {"unit": "%", "interval_s": 60}})


def message(sensors: list[str], k: int) -> bytes:
    return orjson.dumps([{"sensor_id": s, "metric": "humidity", "ts": NOW_MS + k * 1000 + i, "value": 50}
                         for i, s in enumerate(sensors)])


async def run_service(dsn: str, policy: str, batches: list[list[bytes]], *, register_after: str | None = None):
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, "postgres")
        await save_sensor(conn, station("known-1"))
    finally:
        await conn.close()
    settings_ = load_settings(None, database={"dsn": dsn}, api={"enabled": False},
                              registry={"unregistered": policy, "refresh_s": 0.1}, detection={"enabled": False})
    service = IngestService(settings_)
    await service.start()
    try:
        assert service.pipeline is not None and service.pool is not None
        for i, payloads in enumerate(batches):
            if register_after is not None and i == 1:
                await save_sensor(service.pool, station(register_after))  # as the CLI would: another connection
                for _ in range(100):  # picked up by the periodic reload (registry.refresh_s)
                    if register_after in service.registered.ids:
                        break
                    await asyncio.sleep(0.05)
            await service.pipeline.submit(MessageBatch(source="mqtt", payloads=payloads))
            await service.pipeline.drain()
    finally:
        await service.stop()
    conn = await asyncpg.connect(dsn)
    try:
        stored = dict(await conn.fetch(
            "SELECT s.sensor_id, count(*) FROM readings r JOIN series s ON s.id = r.series_id GROUP BY 1"))
        quarantined = [(r["reason"], orjson.loads(r["payload"])["sensor_id"], r["detail"]) for r in await conn.fetch(
            "SELECT reason, payload, detail FROM quarantine ORDER BY id")]
        unregistered = [u["sensor_id"] for u in await unregistered_sensors(conn)]
    finally:
        await conn.close()
    return stored, quarantined, unregistered


@pytest.mark.integration
async def test_accept_policy_stores_unregistered_readings_and_lists_the_sensor(fresh_db):
    stored, quarantined, unregistered = await run_service(
        fresh_db, "accept", [[message(["known-1", "stray-7", "known-1"], 0)]])
    assert stored == {"known-1": 2, "stray-7": 1}
    assert quarantined == []
    assert unregistered == ["stray-7"]


@pytest.mark.integration
async def test_quarantine_policy_rejects_exactly_the_unregistered_readings(fresh_db):
    batches = [[message(["known-1", "stray-7", "known-1", "stray-8"], 0)],
               [message(["stray-7", "known-1"], 10)]]
    stored, quarantined, unregistered = await run_service(fresh_db, "quarantine", batches, register_after="stray-7")
    # batch 0: both strays quarantined, the known sensor's neighbours stored; then stray-7 is
    # registered (from another connection) and its next reading is accepted
    assert stored == {"known-1": 3, "stray-7": 1}
    assert [(reason, sid) for reason, sid, _ in quarantined] == [("unknown_sensor", "stray-7"),
                                                               ("unknown_sensor", "stray-8")]
    assert "registry import" in quarantined[0][2]
    assert unregistered == []


@settings(max_examples=200, deadline=None)
@given(registered=st.sets(st.sampled_from("abcdefgh")), batch=st.lists(st.sampled_from("abcdefghij"), max_size=40))
def test_unknown_sensor_mask_matches_membership(registered, batch):
    known = RegisteredSensors()
    known.ids = frozenset(registered)
    mask = known.unknown_mask(batch)
    expected = [s not in registered for s in batch]
    assert (mask is None and not any(expected)) or list(mask) == expected
    # and through the validator: exactly those readings are rejected, with the reason
    validator = ReadingValidator(MetricCatalogue.load(), known_sensors=known)
    payloads = [orjson.dumps({"sensor_id": s, "metric": "humidity", "ts": NOW_MS, "value": 1}) for s in batch]
    mb = MessageBatch(source="mqtt", payloads=payloads)
    out = validator.validate(mb, CanonicalJsonFormat().decode(mb), lambda k: b"")
    assert [r.reason.value for r in out.rejections] == ["unknown_sensor"] * sum(expected)
    assert out.readings.sensor_id == [s for s in batch if s in registered]
    assert np.all(out.readings.ts_us == NOW_MS * 1000)
