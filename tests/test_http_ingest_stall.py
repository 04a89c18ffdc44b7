"""A request with very many rejections no longer holds the event loop for seconds (ingest32).

With ``http_ingest.max_messages`` / ``max_readings`` raised to 1 M, one body of 1 M bad lines
held the loop 6-8 s in one go (benchmarks/README.md ``robust31``, ``ingest32``): the body was
split into lines in one pass (5.7 s), the answer's 1 M rejections were validated into pydantic
models and serialised at once, and every rejection cost a ``labels()`` call in the metrics. Now
the split pauses every ``SPLIT_STEP`` lines (:func:`split_async`), the answer is encoded
``ANSWER_CHUNK`` rejections at a time (:func:`encode_answer`), quarantine rows go in
``QUARANTINE_CHUNK`` per statement, and metrics are counted per reason.

Shown here: the same messages and the same answer document as before (properties against the
old framing and the route's pydantic model), other tasks run between the steps (counted, not
timed), the metrics equal the per-reason counts, and through the real service on PostgreSQL a
request spanning many steps of each kind is answered with every rejection listed and every one
of them already in the quarantine table when the 200 arrives.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from types import SimpleNamespace

import asyncpg
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import urbanpulse.http_ingest.answer as answer
import urbanpulse.http_ingest.body as body_mod
import urbanpulse.storage.writer as writer_mod
from urbanpulse.api.app import create_app
from urbanpulse.api.routes.ingest import IngestResult
from urbanpulse.auth.keys import KeyStore
from urbanpulse.auth.roles import Role
from urbanpulse.config import load_settings
from urbanpulse.http_ingest.body import JSON, NDJSON, TEXT, split, split_async
from urbanpulse.metrics import IngestMetrics
from urbanpulse.model import Reason, Rejection
from urbanpulse.pipeline.batch_writer import BatchWriter
from urbanpulse.service import IngestService
from urbanpulse.storage.writer import WriteResult

line_bodies = st.lists(st.sampled_from([b"", b" ", b"\r", b"#", b" #c", b"{}", b"x", b"\xff", b"  {} \r", b"\n",
                                        b"\r\n"]), max_size=60).map(b"".join)


class Turns:
    """Counts how often another task got the event loop while something ran (no clock)."""

    def __init__(self) -> None:
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    async def _spin(self) -> None:
        while True:  # each run of this loop is a turn the other task gave up
            self.count += 1
            await asyncio.sleep(0)

    def __enter__(self) -> "Turns":
        self._task = asyncio.get_running_loop().create_task(self._spin())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def with_attr(module: object, name: str, value: int):
    """Set a module constant for the duration of a ``with`` (hypothesis cannot use monkeypatch)."""
    class _Ctx:
        def __enter__(self) -> None:
            self.old = getattr(module, name)
            setattr(module, name, value)

        def __exit__(self, *exc: object) -> None:
            setattr(module, name, self.old)
    return _Ctx()


@settings(max_examples=200, deadline=None)
@given(line_bodies, st.integers(min_value=1, max_value=5), st.one_of(st.none(), st.integers(min_value=1, max_value=30)))
def test_split_async_frames_as_split_and_lets_other_tasks_run_every_step(body: bytes, step: int, limit: int | None):
    async def both():
        with with_attr(body_mod, "SPLIT_STEP", step):
            for framing, fmt in ((NDJSON, "json"), (TEXT, "influx_line")):
                try:
                    want = split(body, framing, fmt, limit)
                except Exception as exc:  # noqa: BLE001 - the async one must raise the same
                    with pytest.raises(type(exc)):
                        await split_async(body, framing, fmt, limit)
                    continue
                with Turns() as turns:
                    got = await split_async(body, framing, fmt, limit)
                assert (got.payloads, got.positions) == (want.payloads, want.positions)
                walked = sum(1 for line in body.split(b"\n") if line.strip())
                assert turns.count >= walked // step - 1  # the loop was free after every step
    asyncio.run(both())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.integers(), st.dictionaries(st.sampled_from("ab,"), st.integers(), max_size=2)),
                max_size=25), st.integers(min_value=1, max_value=4), st.integers(min_value=1, max_value=30))
def test_split_async_walks_a_json_array_as_split(items: list, step: int, limit: int):
    raw = json.dumps(items).encode()

    async def both():
        with with_attr(body_mod, "SPLIT_STEP", step):
            try:
                want = split(raw, JSON, "json", limit)
            except Exception as exc:  # noqa: BLE001
                with pytest.raises(type(exc)):
                    await split_async(raw, JSON, "json", limit)
                return
            got = await split_async(raw, JSON, "json", limit)
            assert (got.payloads, got.positions) == (want.payloads, want.positions)
    asyncio.run(both())


def old_answer(fmt: str, messages: int, stored: int, rejections: list[Rejection]) -> dict:
    """The answer as the route made it before ingest32: dicts validated and dumped by FastAPI
    through the route's response model."""
    listed = []
    for r in rejections:
        out = {"index": r.offset if r.offset is not None else 0, "reason": r.reason.value, "detail": r.detail}
        if r.item >= 0:
            out["item"] = r.item
        listed.append(out)
    return IngestResult.model_validate({"format": fmt, "messages": messages, "stored": stored,
                                        "rejected": listed}).model_dump(mode="json")


rejections_st = st.lists(st.builds(
    Rejection, reason=st.sampled_from(list(Reason)), detail=st.text(max_size=12), payload=st.binary(max_size=4),
    source=st.just("http"), offset=st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)),
    item=st.integers(min_value=-1, max_value=50)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(rejections_st, st.integers(min_value=1, max_value=6), st.integers(min_value=0, max_value=10**6),
       st.integers(min_value=0, max_value=10**6), st.sampled_from(["json", "senml", "influx_line"]))
def test_the_answer_is_the_same_document_encoded_in_steps(rejections, chunk, messages, stored, fmt):
    async def encode():
        with with_attr(answer, "ANSWER_CHUNK", chunk), Turns() as turns:
            raw = await answer.encode_answer(fmt, messages, stored, rejections)
        return raw, turns.count
    raw, turns = asyncio.run(encode())
    try:
        want = old_answer(fmt, messages, stored, rejections)
    except UnicodeEncodeError:  # a lone surrogate: the old route failed with a 500; now it is escaped
        want = None
    got = json.loads(raw)
    if want is not None:
        assert got == want
    else:
        assert [x["reason"] for x in got["rejected"]] == [r.reason.value for r in rejections]
    assert turns >= (len(rejections) - 1) // chunk  # the loop was free between chunks


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(list(Reason)), max_size=60), st.sampled_from(["http", "mqtt"]))
def test_metrics_count_every_rejection_by_reason(reasons: list[Reason], source: str):
    m = IngestMetrics()
    rejections = [Rejection(reason=r, detail="", payload=b"", source=source) for r in reasons]
    batch = SimpleNamespace(source=source, rejections=rejections)
    want = Counter(r.value for r in reasons)
    BatchWriter._count(SimpleNamespace(metrics=m), batch, WriteResult(0, 0, len(reasons), 0.01, False, dict(want)))
    assert dict(m.reasons) == dict(want)
    for reason in Reason:
        assert m.quarantined.labels(source, reason.value)._value.get() == want.get(reason.value, 0)
    assert m.tally["quarantined"] == len(reasons)


@pytest.fixture
async def ingest(fresh_db: str) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    s = load_settings(None, database={"dsn": fresh_db}, api={"enabled": False}, detection={"enabled": False},
                      http_ingest={"ack_timeout_s": 60, "max_messages": 20_000, "max_readings": 20_000})
    service = IngestService(s)
    await service.start()
    try:
        key = (await KeyStore(service.pool).create("gateway", Role.ingest)).secret
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(service)),
                                     base_url="http://test", timeout=120) as client:
            yield client, {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
    finally:
        await service.stop()


@pytest.mark.integration
async def test_a_request_of_many_rejections_lists_them_all_and_each_is_quarantined_before_the_200(
        ingest, fresh_db, monkeypatch):
    monkeypatch.setattr(body_mod, "SPLIT_STEP", 700)
    monkeypatch.setattr(answer, "ANSWER_CHUNK", 900)
    monkeypatch.setattr(writer_mod, "QUARANTINE_CHUNK", 500)
    client, h = ingest
    n = 12_000
    now_ms = int(time.time() * 1000)
    good = set(range(0, n, 10))
    lines = [json.dumps({"sensor_id": f"s-{k % 5}", "metric": "temperature", "ts": now_ms - 60_000 + k,
                         "value": 20.0}).encode() if k in good
             else (b"{}" if k % 3 else b"not json") for k in range(n)]
    with Turns() as turns:
        r = await client.post("/ingest", content=b"\n\n".join(lines), headers=h)  # a blank line between
        conn = await asyncpg.connect(fresh_db)
        try:
            quarantined = int(await conn.fetchval("SELECT count(*) FROM quarantine"))
            stored = int(await conn.fetchval("SELECT count(*) FROM readings"))
        finally:
            await conn.close()
    assert r.status_code == 200, r.text[:500]
    got = r.json()
    bad = [k for k in range(n) if k not in good]
    assert got["messages"] == n and got["stored"] == len(good) == stored and got["ignored"] is None
    assert [x["index"] for x in got["rejected"]] == [2 * k for k in bad]  # line numbers, blank lines between
    assert {x["reason"] for x in got["rejected"]} == {"missing_field", "invalid_json"}
    assert all(x["item"] is None and x["detail"] for x in got["rejected"])
    assert quarantined == len(bad)  # durable when the 200 came
    assert turns.count >= n // 700 + len(bad) // 900  # the loop was free between the steps
