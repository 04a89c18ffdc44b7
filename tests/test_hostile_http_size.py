"""A request of very many tiny messages or items is answered 413 with nothing stored, and one
within the limits is decoded in chunks without losing a message's position (robust31).

Before: an NDJSON body of 1 M lines ``{}`` (3 KB gzipped) was decoded in one go on the event
loop (18 s without a wake-up for any other source or the API, 61 s in all, every line
quarantined): ``http_ingest.max_messages`` and ``http_ingest.max_readings`` now bound what one
request costs, and the splitting itself looks at no more than ``max_messages + 1`` lines or items.
Framing properties over generated bodies; the service tests on real PostgreSQL over the app."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from urbanpulse.api.app import create_app
from urbanpulse.auth.keys import KeyStore
from urbanpulse.auth.roles import Role
from urbanpulse.config import load_settings
from urbanpulse.errors import PayloadTooLarge
from urbanpulse.http_ingest.body import JSON, NDJSON, TEXT, Messages, split
from urbanpulse.service import IngestService


def reference_lines(body: bytes, comments: bool) -> Messages:
    """The framing as it was before robust31 (one Python iteration per line, blank ones too)."""
    payloads, positions = [], []
    for n, line in enumerate(body.split(b"\n")):
        line = line.rstrip(b"\r")
        stripped = line.strip()
        if not stripped or (comments and stripped.startswith(b"#")):
            continue
        payloads.append(line)
        positions.append(n)
    return Messages(payloads, positions)


line_bodies = st.lists(st.sampled_from([b"", b" ", b"\t", b"\r", b"\x0b\x0c", b"#", b" #c", b"{}", b"x", b"\xff",
                                        b"a b", b"  {} \r", b"\n", b"\r\n"]), max_size=40).map(b"".join)


@settings(max_examples=400)
@given(line_bodies, st.one_of(st.none(), st.integers(min_value=1, max_value=12)))
def test_lines_are_framed_as_before_and_refused_only_past_the_limit(body: bytes, limit: int | None):
    for framing, fmt, comments in ((NDJSON, "json", False), (TEXT, "influx_line", True)):
        ref = reference_lines(body, comments)
        non_blank = sum(1 for line in body.split(b"\n") if line.strip())  # comments count towards the cap
        if limit is not None and non_blank > limit:
            with pytest.raises(PayloadTooLarge, match="http_ingest.max_messages"):
                split(body, framing, fmt, limit)
        else:
            got = split(body, framing, fmt, limit)
            assert (got.payloads, got.positions) == (ref.payloads, ref.positions)


json_items = st.one_of(st.integers(), st.text(alphabet=",[]{}\"\\ a", max_size=6),
                       st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(),
                                                                            max_size=2))


@settings(max_examples=300)
@given(st.lists(json_items, max_size=15), st.sampled_from([",", " , ", ",\n"]), st.integers(min_value=1, max_value=10))
def test_a_json_array_is_refused_exactly_when_it_has_more_items_than_the_limit(items: list, sep: str, limit: int):
    body = ("[" + sep.join(json.dumps(x) for x in items) + "]").encode()
    if len(items) > limit:
        with pytest.raises(PayloadTooLarge, match="http_ingest.max_messages"):
            split(body, JSON, "json", limit)
    else:
        got = split(body, JSON, "json", limit)
        assert [msgspec.json.decode(p) for p in got.payloads] == (items or [msgspec.json.decode(body)])


def test_splitting_a_huge_body_looks_at_no_more_than_the_limit():
    """32 MiB of blank lines, or millions of tiny lines: refused or empty without a Python pass
    per line (measured in the benchmark; here: the answer is right)."""
    assert split(b"\n \r\n" * 4_000_000, NDJSON, "json", 10).payloads == []
    with pytest.raises(PayloadTooLarge):
        split(b"{}\n" * 3_000_000, NDJSON, "json", 10)
    with pytest.raises(PayloadTooLarge):
        split(b"[" + b"0," * 3_000_000 + b"0]", JSON, "json", 10)


NOW_MS = int(time.time() * 1000)
MAX_MESSAGES, MAX_READINGS = 2500, 4000


@pytest.fixture
async def ingest(fresh_db: str) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    settings_ = load_settings(None, database={"dsn": fresh_db}, api={"enabled": False}, detection={"enabled": False},
                              http_ingest={"ack_timeout_s": 30, "max_messages": MAX_MESSAGES,
                                           "max_readings": MAX_READINGS})
    service = IngestService(settings_)
    await service.start()
    try:
        key = (await KeyStore(service.pool).create("gateway", Role.ingest)).secret
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(service)),
                                     base_url="http://test", timeout=60) as client:
            yield client, {"Authorization": f"Bearer {key}"}
    finally:
        await service.stop()


async def counts(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return (int(await conn.fetchval("SELECT count(*) FROM readings")),
                int(await conn.fetchval("SELECT count(*) FROM quarantine")))
    finally:
        await conn.close()


def reading(k: int) -> dict:
    return {"sensor_id": f"s-{k % 7}", "metric": "temperature", "ts": NOW_MS - 3_600_000 + k, "value": 20.5}


@pytest.mark.integration
async def test_too_many_messages_or_readings_is_413_and_nothing_is_stored(ingest, fresh_db):
    client, h = ingest
    nd = {**h, "Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
    r = await client.post("/ingest", content=gzip.compress(b"{}\n" * (MAX_MESSAGES + 1)), headers=nd)
    assert r.status_code == 413 and "http_ingest.max_messages" in r.json()["detail"], r.text
    r = await client.post("/ingest", content=gzip.compress(json.dumps([{}] * (MAX_MESSAGES + 1)).encode()),
                          headers={**h, "Content-Encoding": "gzip"})
    assert r.status_code == 413 and "http_ingest.max_messages" in r.json()["detail"], r.text
    # few messages, each an array of many readings: the decoded count is what is bounded
    lines = [json.dumps([reading(k) for k in range(j * 1000, j * 1000 + 1000)]) for j in range(5)]
    r = await client.post("/ingest", content=gzip.compress("\n".join(lines).encode()), headers=nd)
    assert r.status_code == 413 and "http_ingest.max_readings" in r.json()["detail"], r.text
    assert await counts(fresh_db) == (0, 0)  # nothing of a refused request stored nor quarantined
    ok = await client.post("/ingest", content="\n".join(lines[:4]).encode(), headers={**h, "Content-Type":
                                                                                      "application/x-ndjson"})
    assert ok.status_code == 200 and ok.json()["stored"] == 4000, ok.text


@pytest.mark.integration
async def test_a_request_decoded_in_chunks_keeps_every_position_and_stores_all(ingest, fresh_db):
    from urbanpulse.http_ingest.submit import CHUNK_MESSAGES

    client, h = ingest
    n = MAX_MESSAGES  # more than two chunks
    assert n > 2 * CHUNK_MESSAGES
    bad = {k for k in range(0, n, 97)} | {CHUNK_MESSAGES - 1, CHUNK_MESSAGES, 2 * CHUNK_MESSAGES}
    lines = [b"{}" if k in bad else json.dumps(reading(k)).encode() for k in range(n)]
    r = await client.post("/ingest", content=b"\n".join(lines), headers={**h, "Content-Type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["messages"] == n and body["stored"] == n - len(bad)
    assert sorted(x["index"] for x in body["rejected"]) == sorted(bad)
    assert await counts(fresh_db) == (n - len(bad), len(bad))
