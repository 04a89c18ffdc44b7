"""POST /ingest and /ingest/{format} against a running service on real PostgreSQL: 2xx only
after the batch is committed (with what was stored and each rejection's index and reason),
an ingest key required, vendor formats by name, NDJSON, gzip, size limits, and no 2xx while the
database cannot store the request."""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import time
from collections.abc import AsyncIterator

import asyncpg
import cbor2
import httpx
import pytest

from urbanpulse.api.app import create_app
from urbanpulse.auth.keys import KeyStore
from urbanpulse.auth.roles import Role
from urbanpulse.config import load_settings
from urbanpulse.service import IngestService
from urbanpulse.testing.samples import sample

pytestmark = pytest.mark.integration

NOW_MS = int(time.time() * 1000)


def reading(sensor: str, k: int, value: object = 21.5) -> dict:
    return {"sensor_id": sensor, "metric": "temperature", "ts": NOW_MS - 60_000 + k, "value": value}


@pytest.fixture
async def ingest(fresh_db: str) -> AsyncIterator[tuple[httpx.AsyncClient, IngestService, dict[str, str]]]:
    settings = load_settings(None, database={"dsn": fresh_db}, api={"enabled": False}, detection={"enabled": False},
                             http_ingest={"ack_timeout_s": 3, "max_decompressed_bytes": 64 * 1024},
                             formats={"options": {"influx_line": {"precision": "ms"}}})
    service = IngestService(settings)
    await service.start()
    try:
        store = KeyStore(service.pool)
        keys = {"ingest": (await store.create("gateway", Role.ingest)).secret,
                "viewer": (await store.create("dashboard", Role.viewer)).secret}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(service)),
                                     base_url="http://test", timeout=30) as client:
            yield client, service, keys
    finally:
        await service.stop()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def count(dsn: str, sql: str = "SELECT count(*) FROM readings") -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def test_a_2xx_means_stored_with_the_stored_count_and_each_rejection(ingest, fresh_db):
    client, service, keys = ingest
    body = [reading("h-1", 0), reading("h-1", 1, "hot"), reading("h-1", 2), reading("h-1", 3, 999)]
    r = await client.post("/ingest", json=body, headers=auth(keys["ingest"]))
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 2  # a canonical JSON array: each item is a message, index = its position
    assert [(x["index"], x.get("item"), x["reason"]) for x in r.json()["rejected"]] == [
        (1, None, "bad_type"), (3, None, "out_of_range")]
    assert await count(fresh_db) == 2  # already durable when the answer came
    assert await count(fresh_db, "SELECT count(*) FROM quarantine WHERE source = 'http'") == 2
    again = await client.post("/ingest", json=body, headers=auth(keys["ingest"]))
    assert again.status_code == 200 and await count(fresh_db) == 2  # a resend stores nothing twice
    assert await count(fresh_db, "SELECT count(*) FROM readings r JOIN sources s ON s.id = r.source "
                                 "WHERE s.name = 'http'") == 2


async def test_wrong_or_missing_key_is_401_and_other_roles_403(ingest):
    client, _, keys = ingest
    body = [reading("h-2", 0)]
    assert (await client.post("/ingest", json=body)).status_code == 401
    assert (await client.post("/ingest", json=body, headers=auth("upk_0000000000_nope"))).status_code == 401
    forbidden = await client.post("/ingest", json=body, headers=auth(keys["viewer"]))
    assert forbidden.status_code == 403 and forbidden.json()["error"]


async def test_vendor_formats_by_name_ndjson_and_gzip(ingest, fresh_db):
    client, _, keys = ingest
    h = auth(keys["ingest"])
    t0 = time.time() - 30
    ttn, n_ttn = sample("ttn_v3", "ttn-dev", t0)
    assert (await client.post("/ingest/ttn_v3", content=ttn, headers=h)).json() == {
        "format": "ttn_v3", "messages": 1, "stored": n_ttn, "rejected": [], "ignored": None}
    senml_records = [{"bn": "urn:dev:ow:phone-7:", "bt": t0, "n": "temp", "u": "Cel", "v": 20.5},
                     {"n": "humidity", "u": "%RH", "v": 40, "t": -5}]
    cb = cbor2.dumps([{({"bn": -2, "bt": -3, "n": 0, "u": 1, "v": 2, "t": 6}[k]): v for k, v in r.items()}
                      for r in senml_records])
    assert (await client.post("/ingest/senml_cbor", content=cb, headers=h)).json()["stored"] == 2
    line = f"air,sensor_id=lp-1 pm2_5=12.5,pm10=20i {int(t0 * 1000)}".encode()
    assert (await client.post("/ingest/influx_line", content=line, headers=h)).json()["stored"] == 2
    nd = b"\n".join(json.dumps(reading("nd-1", k)).encode() for k in range(3)) + b"\n{broken\n"
    r = await client.post("/ingest", content=nd, headers={**h, "Content-Type": "application/x-ndjson"})
    assert r.json()["stored"] == 3 and [(x["index"], x["reason"]) for x in r.json()["rejected"]] == [
        (3, "invalid_json")]
    gz = gzip.compress(json.dumps([reading("gz-1", k) for k in range(5)]).encode())
    r = await client.post("/ingest", content=gz, headers={**h, "Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.json()["stored"] == 5
    assert await count(fresh_db) == n_ttn + 2 + 2 + 3 + 5


async def test_limits_and_unknown_formats(ingest):
    client, _, keys = ingest
    h = auth(keys["ingest"])
    bomb = gzip.compress(b"[" + b" " * (1024 * 1024) + b"]")
    r = await client.post("/ingest", content=bomb, headers={**h, "Content-Encoding": "gzip"})
    assert r.status_code == 413 and "max_decompressed_bytes" in r.json()["detail"]
    assert (await client.post("/ingest", content=b"x" * (2 * 1024 * 1024), headers=h)).status_code == 413
    missing = await client.post("/ingest/acme_v9", content=b"{}", headers=h)
    assert missing.status_code == 404 and "acme_v9" in missing.json()["detail"]
    csv = await client.post("/ingest/csv", content=b"a,b\n1,2\n", headers=h)
    assert csv.status_code == 422 and "csv" in csv.json()["detail"]


async def test_no_2xx_when_the_database_connection_dies_mid_request(ingest, fresh_db):
    client, service, keys = ingest
    blocker = await asyncpg.connect(fresh_db)
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE")  # the batch's COPY will wait
        request = asyncio.create_task(
            client.post("/ingest", json=[reading("blocked", 0)], headers=auth(keys["ingest"])))
        killed = 0
        deadline = time.monotonic() + 10
        while not killed and time.monotonic() < deadline:  # the writer is inside its transaction: kill it
            for row in await blocker.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                           "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"):
                killed += bool(await blocker.fetchval("SELECT pg_terminate_backend($1)", row["pid"]))
            await asyncio.sleep(0.05)
        assert killed, "the request's write never reached the database"
        r = await request
        assert r.status_code == 503, r.text  # not stored, so no 2xx
        assert "send the same request again" in r.json()["detail"]
        assert await blocker.fetchval("SELECT count(*) FROM readings") == 0
        await tx.rollback()
    finally:
        await blocker.close()
    # the pipeline retried and stored it once the database was back; a resend stores nothing twice
    deadline = time.monotonic() + 30
    while await count(fresh_db) < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    r = await client.post("/ingest", json=[reading("blocked", 0)], headers=auth(keys["ingest"]))
    assert r.status_code == 200 and await count(fresh_db) == 1


async def test_a_senml_base_name_too_long_for_the_series_index_is_rejected_and_http_ingest_goes_on(ingest, fresh_db):
    """Over HTTP, the hostile id tests/test_hostile_series_lookup.py sends through the pipeline: a SenML
    base name of 3,000 characters the series index cannot hold. It used to pass validation (only the
    canonical format bounded ids), its batch's write failed with ``ProgramLimitExceededError`` and was
    parked, the ``http`` source halted: no 2xx for this request nor any later one. Now that record is
    rejected as ``bad_sensor_id`` and its neighbour stored."""
    client, service, keys = ingest
    h = auth(keys["ingest"])
    rnd = random.Random(29)  # random letters: TOAST cannot compress them under the index limit
    hostile = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(3000))
    t0 = time.time() - 30
    body = json.dumps([{"bn": hostile, "bt": t0, "n": "temperature", "v": 20.5},
                       {"bn": "hs-ok", "bt": t0, "n": "temperature", "v": 20.5}]).encode()
    r = await client.post("/ingest/senml", content=body, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 1 and [x["reason"] for x in r.json()["rejected"]] == ["bad_sensor_id"]
    later = await client.post("/ingest", json=[reading("hs-later", 0)], headers=h)
    assert later.status_code == 200 and later.json()["stored"] == 1
    assert await count(fresh_db) == 2 and not service.pipeline.halted
