"""A batch's series lookup never ends a source or the batch timer, and never holds the pipeline for
ever (pipeline/batch_writer.py ``BatchWriter.series_ids``, called from ``Pipeline._hand_off`` for every
batch formed with analytics on: by a source's submit at the size limit, by the age timer, by a drain).

Before (benchmarks/README.md ``robust29``): the lookup retried every ``PostgresError`` for ever, so a
series the database refuses (a SenML base name too long for the series index: real input, real
``ProgramLimitExceededError``) held the batcher's lock and no source formed a batch again; anything
else it raised escaped into the batcher, ending the age timer (no batch formed by age again, readings
waiting unacknowledged) or the submit of the source whose batch it was, the batch neither stored nor
acknowledged. Without analytics the same id parked its batch and halted its source.

Now validation refuses such an id (quarantined with a reason), a permanent lookup failure hands the
batch on unanalysed and its write parks it like any failed write (its source halted, ``/health`` says
why, retried every ``retry_max_s``, nothing acknowledged, other sources flowing), and a hand-off cut
short (a bounded drain cancelled while the lookup waits for the database) keeps its batch.

Real PostgreSQL throughout; a monkeypatched lookup stands in only for a bug and for an outage that
is cut short, which the test cannot otherwise cause on demand."""

from __future__ import annotations

import asyncio
import random

import asyncpg
import numpy as np
import orjson
import pytest
from hypothesis import example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from analytics_stubs import RecordingAnalytics
from test_pipeline import NOW_MS, make_pipeline
from test_series_lookup_retry import NEVER_MS, WITHIN_S, until
from urbanpulse.formats.base import Decoded, MessageBatch
from urbanpulse.formats.senml import SenmlJsonFormat
from urbanpulse.model import ReadingColumns, Reason
from urbanpulse.pipeline import Pipeline
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import MAX_SENSOR_ID_CHARS, ReadingValidator

#: the unique index on series (sensor_id, metric) refuses a key longer than this (btree version 4)
BTREE_MAX_BYTES = 2704


def incompressible(n: int, seed: int = 29) -> str:
    """``n`` random letters and digits: TOAST cannot compress them under the index limit."""
    rnd = random.Random(seed)
    return "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


def senml(sensor: str, ts_ms: int) -> bytes:
    return orjson.dumps([{"bn": sensor, "n": "humidity", "v": 50.0, "t": ts_ms / 1000}])


def canonical(sensor: str, ts_ms: int) -> bytes:
    return orjson.dumps({"sensor_id": sensor, "metric": "humidity", "ts": ts_ms, "value": 50.0})


#: one writer, quick retries (a parked batch is retried every retry_max_s)
QUICK_RETRY = {"writers": 1, "retry_initial_s": 0.05, "retry_max_s": 0.2}


async def submit_one(pipeline: Pipeline, source: str, sensor: str, ts_ms: int, acked: list, tag: object) -> None:
    """One canonical reading from ``source``; its ack appends ``tag`` to ``acked``."""
    await pipeline.submit(MessageBatch(source=source, payloads=[canonical(sensor, ts_ms)]),
                          ack=lambda: acked.append(tag))


def raising(exc: Exception):  # noqa: ANN201
    """A stand-in for ``SeriesRegistry.ids_for`` that raises ``exc`` every time."""
    async def ids_for(pool, sensors, metrics):  # noqa: ANN001, ANN202
        raise exc
    return ids_for


async def shut(pipeline: Pipeline, pool: asyncpg.Pool) -> None:
    """Stop the pipeline; if its drain hangs (the failure some of these tests show on old code),
    cancel its tasks rather than hang the suite."""
    try:
        await asyncio.wait_for(pipeline.stop(), WITHIN_S)
    except asyncio.TimeoutError:
        for t in pipeline._tasks:
            t.cancel()
    pool.terminate()


async def stored_sensors(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch("SELECT s.sensor_id FROM readings r JOIN series s ON s.id = r.series_id")
    return sorted(r[0] for r in rows)


# -- validation: what may reach the lookup ---------------------------------------------------------

#: any code point: lone surrogates, NUL, format and private-use characters included
ANY_CHAR = st.characters(exclude_categories=())
SENSOR_IDS = st.one_of(
    st.text(ANY_CHAR, max_size=40),
    st.text(ANY_CHAR, min_size=100, max_size=3000),
    st.builds(lambda c, n: c * n, ANY_CHAR, st.integers(100, 1200)),  # one wide character, repeated
    st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=120, max_size=3000),
)


@given(sensor=SENSOR_IDS)
@example(sensor="rp-x\ud800")  # a JSON-escaped lone surrogate, decoded
@example(sensor="a\x00b")
@example(sensor=incompressible(3000))  # what a SenML base name brought to the series table
@example(sensor="\U0001f600" * 700)  # 2,800 bytes of UTF-8
@example(sensor="x" * MAX_SENSOR_ID_CHARS)  # passes
@example(sensor="x" * (MAX_SENSOR_ID_CHARS + 1))  # does not
@example(sensor="")
@hsettings(max_examples=300, deadline=None)
def test_a_sensor_id_validation_passes_is_one_the_series_table_can_hold(sensor: str) -> None:
    """Every format hands its readings to this validator: an id it passes can be sent to PostgreSQL
    (valid UTF-8, no NUL) and fits the series index; one it does not is quarantined with a reason
    and costs its reading only."""
    validation_keeps_the_series_table_safe(sensor)


def validation_keeps_the_series_table_safe(sensor: str) -> None:
    """The property above (a function of its own, so a wide run can draw it under other seeds)."""
    n = 2
    cols = ReadingColumns(sensor_id=[sensor, "hsl-neighbour"], metric=["humidity"] * n,
                          ts_us=np.full(n, NOW_MS * 1000.0), value=np.full(n, 50.0), lat=np.full(n, np.nan),
                          lon=np.full(n, np.nan), unit=[None] * n, msg=np.arange(n, dtype=np.int32),
                          item=np.full(n, -1, np.int32), has_null_value=np.zeros(n, bool))
    batch = MessageBatch(source="http", payloads=[b"{}", b"{}"])
    out = ReadingValidator(MetricCatalogue.load()).validate(batch, Decoded(cols), lambda k: b"{}")
    assert "hsl-neighbour" in out.readings.sensor_id
    if len(out.readings) == 2:
        encoded = sensor.encode("utf-8")  # raises on a lone surrogate
        assert b"\x00" not in encoded and sensor.isprintable()
        assert 1 <= len(sensor) <= MAX_SENSOR_ID_CHARS and len(encoded) < BTREE_MAX_BYTES // 4
    else:
        [rejection] = out.rejections
        assert rejection.reason is Reason.BAD_SENSOR_ID and rejection.detail


@pytest.mark.integration
@pytest.mark.parametrize("analytics", [False, True], ids=["plain", "with-analytics"])
async def test_a_senml_base_name_too_long_for_the_series_index_is_quarantined_and_its_source_goes_on(
        fresh_db: str, analytics: bool) -> None:
    """Real input, real database: a SenML record whose base name is 3,000 incompressible characters
    (SenML, like line protocol and CSV, had no bound on the ids it builds). It used to reach the
    series table, whose index refused it: with analytics the lookup retried that for ever (the drain
    below never returned, no batch of any source formed again), without them the batch was parked
    and its source halted. Now it is quarantined with a reason, its neighbour stored, the source
    acknowledged and still accepting."""
    pipeline, pool = await make_pipeline(fresh_db, (lambda pool: RecordingAnalytics()) if analytics else None,
                                         fmt=SenmlJsonFormat(), batch_max_readings=100_000, batch_max_ms=NEVER_MS,
                                         **QUICK_RETRY)
    hostile = incompressible(3000)
    acked: list[int] = []
    try:
        await pipeline.submit(MessageBatch(source="http", payloads=[senml(hostile, NOW_MS), senml("hsl-ok-1", NOW_MS)]),
                              ack=lambda: acked.append(1))
        await asyncio.wait_for(pipeline.drain(), WITHIN_S)
        assert pipeline.halted == {} and pipeline.writer.parked == []
        assert acked == [1]
        assert await stored_sensors(pool) == ["hsl-ok-1"]
        rows = await pool.fetch("SELECT reason, detail, payload FROM quarantine")
        assert [(r["reason"], r["detail"]) for r in rows] == [
            ("bad_sensor_id", f"sensor_id is 3000 characters long; it must be 1 to {MAX_SENSOR_ID_CHARS}")]
        assert hostile.encode() in rows[0]["payload"]
        await pipeline.submit(MessageBatch(source="http", payloads=[senml("hsl-ok-2", NOW_MS)]),
                              ack=lambda: acked.append(2))
        await asyncio.wait_for(pipeline.drain(), WITHIN_S)
        assert acked == [1, 2] and await stored_sensors(pool) == ["hsl-ok-1", "hsl-ok-2"]
    finally:
        await shut(pipeline, pool)


# -- a lookup failure that would repeat: from every path that forms a batch ---------------------------

@pytest.mark.integration
@pytest.mark.parametrize("path", ["submit", "timer", "drain"])
async def test_a_series_the_database_refuses_parks_its_batch_and_every_other_source_flows(
        fresh_db: str, path: str) -> None:
    """An id that slipped through validation (put into the batcher directly, as a validation bug
    would) and that the series table refuses for real (``ProgramLimitExceededError``), formed by a
    source's submit at the size limit, by the age timer, or by a drain. Its batch is parked like a
    failed write: its source halted with the reason, nothing of it acknowledged (the broker
    redelivers it after a restart), retried every ``retry_max_s``; other sources are stored and
    acknowledged, and the age timer still forms batches. It used to hold the batcher for ever (the
    lookup retried a permanent error), so nothing below happened."""
    ingest = {"submit": {"batch_max_readings": 1, "batch_max_ms": NEVER_MS},
              "timer": {"batch_max_readings": 100_000, "batch_max_ms": 100},
              "drain": {"batch_max_readings": 100_000, "batch_max_ms": NEVER_MS}}[path]
    analytics = RecordingAnalytics()
    pipeline, pool = await make_pipeline(fresh_db, lambda pool: analytics, **ingest, **QUICK_RETRY)
    acked: list[str] = []
    drains: list[asyncio.Task] = []
    try:
        readings = pipeline.decoder.decode(MessageBatch(source="bad", payloads=[canonical("placeholder", NOW_MS)]))
        readings.readings.sensor_id[0] = incompressible(3000)
        await asyncio.wait_for(pipeline.batcher.add("bad", readings.readings, [], lambda: acked.append("bad")),
                               WITHIN_S)
        if path == "drain":
            drains.append(asyncio.create_task(pipeline.drain()))
        await until(lambda: "bad" in pipeline.halted, "the refused batch parked, its source halted")
        assert "ProgramLimitExceededError" in pipeline.halted["bad"]
        assert [b.source for b in pipeline.writer.parked] == ["bad"]
        assert analytics.ids == []  # handed on without ids, so not analysed
        await submit_one(pipeline, "good", "hsl-good", NOW_MS, acked, "good")
        if path != "timer":
            drains.append(asyncio.create_task(pipeline.drain()))
        await until(lambda: acked == ["good"], "the other source's batch stored and acknowledged")
        await asyncio.wait_for(asyncio.gather(*drains), WITHIN_S)  # a parked batch is held, not waited for
        assert await stored_sensors(pool) == ["hsl-good"]
        assert "bad" in pipeline.halted and acked == ["good"]
    finally:
        for t in drains:
            t.cancel()
        await shut(pipeline, pool)


@pytest.mark.integration
async def test_a_bug_in_the_lookup_does_not_end_the_age_timer_and_loses_nothing(
        fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lookup raising what no database causes (a bug: ``TypeError``) on the age timer's batch. It
    used to end the timer task: the batch was dropped unacknowledged and no batch formed by age again.
    Now the batch is parked (its write's own lookup raises too), and once the bug is gone (the patch
    removed) the parked batch is written and acknowledged, its source resumes, and the timer forms
    the next batch."""
    pipeline, pool = await make_pipeline(fresh_db, lambda pool: RecordingAnalytics(), batch_max_readings=100_000,
                                         batch_max_ms=100, **QUICK_RETRY)
    acked: list[int] = []
    try:
        monkeypatch.setattr(pipeline.store.series, "ids_for", raising(TypeError("a bug in the series lookup")))
        await submit_one(pipeline, "feed", "hsl-t1", NOW_MS, acked, 1)
        await until(lambda: "feed" in pipeline.halted, "the batch parked after the bug")
        assert "TypeError" in pipeline.halted["feed"] and acked == []
        monkeypatch.undo()
        await until(lambda: acked == [1], "the parked batch written once the bug is gone")
        await until(lambda: "feed" not in pipeline.halted, "the source resumed")
        await submit_one(pipeline, "feed", "hsl-t2", NOW_MS + 1, acked, 2)
        await until(lambda: acked == [1, 2], "the timer formed the next batch by age")
        assert await stored_sensors(pool) == ["hsl-t1", "hsl-t2"]
    finally:
        monkeypatch.undo()
        await shut(pipeline, pool)


@pytest.mark.integration
async def test_a_drain_cancelled_while_the_lookup_waits_for_the_database_keeps_the_batch(
        fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bounded drain (the Kafka connector's on a rebalance) cancelled while the lookup retries an
    outage (a patched ``ConnectionRefusedError``: an outage that ends when the test says). The batch
    had been taken from the source's pending ones: it used to be dropped, unacknowledged, while
    later batches of the source were acknowledged past it. Now it is put back and formed again."""
    pipeline, pool = await make_pipeline(fresh_db, lambda pool: RecordingAnalytics(), batch_max_readings=100_000,
                                         batch_max_ms=NEVER_MS, **QUICK_RETRY)
    acked: list[int] = []
    real = pipeline.store.series.ids_for
    try:
        monkeypatch.setattr(pipeline.store.series, "ids_for", raising(ConnectionRefusedError("restarting")))
        await submit_one(pipeline, "feed", "hsl-c1", NOW_MS, acked, 1)
        drain = asyncio.create_task(pipeline.drain())
        await until(lambda: pipeline.writer.last_error is not None, "the lookup failing")
        assert not pipeline.database_ok
        drain.cancel()
        await asyncio.gather(drain, return_exceptions=True)
        await submit_one(pipeline, "feed", "hsl-c2", NOW_MS + 1, acked, 2)
        monkeypatch.setattr(pipeline.store.series, "ids_for", real)
        await asyncio.wait_for(pipeline.drain(), WITHIN_S)
        assert acked == [1, 2] and pipeline.database_ok
        assert await stored_sensors(pool) == ["hsl-c1", "hsl-c2"]
    finally:
        monkeypatch.undo()
        await shut(pipeline, pool)
